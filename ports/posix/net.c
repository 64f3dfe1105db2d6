/* ports/posix/net.c - hal/net.h on POSIX sockets (linked into both the linux and the sim port). */
#include "hal/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_listen(int fd, const struct sockaddr *sa, socklen_t sl, int backlog)
{
	if (bind(fd, sa, sl) < 0 || listen(fd, backlog) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int hal_net_listen_tcp(const char *addr, uint16_t port, int backlog, unsigned defer_s)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	int family;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		family = AF_INET;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		family = AF_INET6;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
#ifdef TCP_DEFER_ACCEPT
	int defer = (int)defer_s;
	if (defer > 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
#else
	(void)defer_s;
#endif
	return bind_listen(fd, (struct sockaddr *)&ss, sl, backlog);
}

void hal_net_unlink_unix(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
}

int hal_net_listen_unix(const char *path, unsigned mode, int backlog)
{
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A socket left by a previous run would make bind fail; replace only sockets. */
	hal_net_unlink_unix(path);
	fd = bind_listen(fd, (struct sockaddr *)&sun, sizeof(sun), backlog);
	if (fd >= 0)
		(void)chmod(path, (mode_t)mode);
	return fd;
}

void hal_net_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

int hal_net_connect(const char *unix_path, const char *host, uint16_t port, unsigned timeout_ms)
{
	int fd, rc, err;
	if (unix_path && *unix_path) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		if (strlen(unix_path) >= sizeof(sa.sun_path))
			return -ENAMETOOLONG;
		memcpy(sa.sun_path, unix_path, strlen(unix_path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		err = errno;
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
		char ps[8];
		snprintf(ps, sizeof(ps), "%u", (unsigned)port);
		if (getaddrinfo(host, ps, &hints, &res) != 0)
			return -EHOSTUNREACH;
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			freeaddrinfo(res);
			return -errno;
		}
		rc = connect(fd, res->ai_addr, res->ai_addrlen);
		err = errno;
		freeaddrinfo(res);
	}
	if (rc < 0 && err != EINPROGRESS && err != EAGAIN) {
		close(fd);
		return -err;
	}
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int r = poll(&p, 1, (int)timeout_ms);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
		close(fd);
		return r == 0 ? -ETIMEDOUT : -(soerr ? soerr : EIO);
	}
	return fd;
}

void hal_net_shutdown(int fd)
{
	if (fd >= 0)
		(void)shutdown(fd, SHUT_RDWR);
}

bool hal_net_peer_key(const void *sockaddr, uint8_t key[16])
{
	const struct sockaddr *sa = sockaddr;
	memset(key, 0, 16);
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)sockaddr)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sockaddr)->sin6_addr, 16);
		return true;
	}
	return false;
}

_Static_assert(sizeof(struct sockaddr_storage) <= HAL_NET_ADDR_MAX, "HAL_NET_ADDR_MAX holds any address");

int hal_net_accept(int lfd, void *addr, unsigned *addrlen)
{
	socklen_t sl = HAL_NET_ADDR_MAX;
	int fd = accept4(lfd, (struct sockaddr *)addr, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	*addrlen = sl;
	return fd;
}

bool hal_net_has_data(int fd)
{
	char c;
	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}
