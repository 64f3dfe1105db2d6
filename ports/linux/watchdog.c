/* ports/linux/watchdog.c - /dev/watchdog and the sd_notify datagram protocol, without libsystemd. */
#include "hal/watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int g_wd_fd = -1;

int hal_watchdog_open(const char *path, unsigned timeout_s)
{
	if (g_wd_fd >= 0)
		return 0;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int t = (int)timeout_s;
	/* Not every driver supports setting the timeout; keep its own then. */
	(void)ioctl(fd, WDIOC_SETTIMEOUT, &t);
	g_wd_fd = fd;
	return 0;
}

void hal_watchdog_kick(void)
{
	if (g_wd_fd >= 0)
		(void)ioctl(g_wd_fd, WDIOC_KEEPALIVE, 0);
}

void hal_watchdog_close(void)
{
	if (g_wd_fd < 0)
		return;
	/* Magic close: a clean shutdown disarms the timer. */
	if (write(g_wd_fd, "V", 1) != 1) {
		/* The driver may have nowayout set; nothing more we can do. */
	}
	close(g_wd_fd);
	g_wd_fd = -1;
}

int hal_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	if (plen >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@') /* abstract namespace */
		sa.sun_path[0] = '\0';
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	int err = n < 0 ? -errno : 1;
	close(fd);
	return err;
}

unsigned long long hal_notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	if (!usec)
		return 0;
	if (pid && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	return strtoull(usec, NULL, 10);
}
