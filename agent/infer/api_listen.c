/* agent/infer/api_listen.c - the local API's listening sockets: berthd accepts, the HTTP server serves. */
#include "agent/infer/api_listen.h"

#define LOG_TAG "api"
#include "agent/base/log.h"

#include <errno.h>
#include <string.h>

#include "hal/net.h"

int api_listen_tcp(const char *addr, uint16_t port)
{
	int fd = hal_net_listen_tcp(addr, port, API_LISTEN_BACKLOG, API_DEFER_S);
	if (fd < 0)
		log_err("event=listen_failed on=%s:%u err=%s", addr, port, strerror(-fd));
	return fd;
}

int api_listen_unix(const char *path)
{
	int fd = hal_net_listen_unix(path, API_UNIX_MODE, API_LISTEN_BACKLOG);
	if (fd < 0)
		log_err("event=listen_failed on=%s err=%s", path, strerror(-fd));
	return fd;
}

static void on_resume(void *arg)
{
	struct api_listener *li = arg;
	(void)loop_fd_mod(li->loop, li->fd, LOOP_IN);
}

void api_listener_resume(struct api_listener *li)
{
	if (li->held && li->fd >= 0) {
		li->held = false;
		on_resume(li);
	}
}

/* Out of descriptors or memory: the connection stays queued in the kernel, and the
 * listening socket would wake the loop at once again; wait a little instead. */
static void pause_accepting(struct api_listener *li, int err)
{
	log_wrn("event=accept_paused err=%s pause_ms=%u", strerror(-err), API_ACCEPT_PAUSE_MS);
	(void)loop_fd_mod(li->loop, li->fd, 0);
	if (loop_timer_start(li->loop, &li->resume, API_ACCEPT_PAUSE_MS, 0) < 0)
		on_resume(li);
}

static void on_ready(void *arg, int fd, unsigned events)
{
	struct api_listener *li = arg;
	unsigned taken = 0;
	for (unsigned i = 0; i < API_ACCEPT_BATCH; i++) {
		if (!li->ops->room(li->arg)) {
			/* the server closes some first (those the guard shut down): the rest wait queued */
			li->held = true;
			(void)loop_fd_mod(li->loop, fd, 0);
			break;
		}
		unsigned char addr[HAL_NET_ADDR_MAX];
		unsigned addrlen = 0;
		int c = hal_net_accept(fd, addr, &addrlen);
		if (c == -EAGAIN)
			break;
		if (c == -EMFILE || c == -ENFILE || c == -ENOBUFS || c == -ENOMEM) {
			pause_accepting(li, c);
			break;
		}
		if (c < 0)
			continue; /* that connection failed before it was accepted (reset, aborted) */
		if (li->deferred && !hal_net_has_data(c)) {
			hal_net_close(c);
			(*li->silent)++;
			continue;
		}
		li->ops->take(li->arg, c, addr, addrlen);
		taken++;
	}
	if (taken)
		li->ops->batch(li->arg);
}

int api_listener_start(struct api_listener *li, struct loop *l, int fd, bool deferred, uint64_t *silent,
		       const struct api_listen_ops *ops, void *arg)
{
	*li = (struct api_listener){ .loop = l, .fd = fd, .deferred = deferred, .silent = silent, .ops = ops, .arg = arg };
	loop_timer_init(&li->resume, on_resume, li);
	int rc = loop_fd_add(l, fd, LOOP_IN, on_ready, li);
	if (rc < 0) {
		hal_net_close(fd);
		li->fd = -1;
	}
	return rc;
}

void api_listener_stop(struct api_listener *li)
{
	if (!li->loop || li->fd < 0)
		return;
	loop_timer_stop(li->loop, &li->resume);
	loop_fd_del(li->loop, li->fd);
	hal_net_close(li->fd);
	li->fd = -1;
}
