/* ports/linux/watchdog.c - /dev/watchdog and the sd_notify datagram protocol, without libsystemd. */
#include "hal/watchdog.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/watchdog.h>
#include <stdbool.h>
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
	/* Non-blocking: a kick from the event loop must never wait. */
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
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
	if (g_wd_fd < 0)
		return;
	/* Any write also keeps a watchdog alive; used where the keepalive
	 * ioctl is not supported. */
	int dummy = 0; /* WDIOC_KEEPALIVE is declared with an int argument, unused by drivers */
	if (ioctl(g_wd_fd, WDIOC_KEEPALIVE, &dummy) < 0 && write(g_wd_fd, "k", 1) != 1) {
		/* Nothing to do: the next kick tries again. */
	}
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
	/* A file-system socket or "@name" in the abstract namespace; other
	 * forms (e.g. vsock:) are not spoken here. */
	if (path[0] != '/' && path[0] != '@')
		return -EAFNOSUPPORT;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	if (plen >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	/* No trailing NUL in the length: the abstract name is exactly plen bytes. */
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	int rc = n < 0 ? -errno : 1;
	close(fd);
	return rc;
}

/* A decimal number filling the whole string, or false. */
static bool parse_ull(const char *s, unsigned long long *out)
{
	if (!s || *s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

unsigned long long hal_notify_watchdog_usec(void)
{
	unsigned long long usec, pid;
	if (!parse_ull(getenv("WATCHDOG_USEC"), &usec))
		return 0;
	/* WATCHDOG_PID names the process the manager watches; a child that
	 * inherited the environment must not answer for its parent. */
	const char *pid_s = getenv("WATCHDOG_PID");
	if (pid_s && (!parse_ull(pid_s, &pid) || pid != (unsigned long long)getpid()))
		return 0;
	return usec;
}
