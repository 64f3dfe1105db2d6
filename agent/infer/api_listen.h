/* agent/infer/api_listen.h - the local API's listening sockets: berthd accepts, the HTTP server serves. */
#ifndef BERTH_API_LISTEN_H
#define BERTH_API_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/base/loop.h"

/* Hands an accepted connection (fd, its peer's struct sockaddr) to the server, which owns fd from then on. */
typedef void (*api_take_fn)(void *arg, int fd, const void *addr, unsigned addrlen);
/* After a batch of connections was handed over: let the server run. */
typedef void (*api_batch_fn)(void *arg);
/* Whether the server can take one more connection now (below its connection limit). */
typedef bool (*api_room_fn)(void *arg);

struct api_listen_ops {
	api_take_fn take;
	api_batch_fn batch;
	api_room_fn room;
};

/* A TCP connection that sends nothing waits in the kernel, not in the accept queue, for this long
 * (TCP_DEFER_ACCEPT), then is closed at the accept: idle connections never queue ahead of a health check. */
#define API_DEFER_S 60
#define API_LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn; a flood must not fill the accept queue */
#define API_UNIX_MODE 0660      /* owner and group may connect */

/* At most this many accepts per wake-up; the rest wait for the next turn of the loop. */
#define API_ACCEPT_BATCH 128
/* Out of descriptors or memory: accepting pauses this long instead of spinning. */
#define API_ACCEPT_PAUSE_MS 100

struct api_listener {
	struct loop *loop;
	int fd;                       /* -1: not listening */
	bool deferred;                /* TCP_DEFER_ACCEPT: a connection accepted without data sent nothing for that long */
	const struct api_listen_ops *ops;
	void *arg;
	uint64_t *silent;             /* counts the deferred connections closed at the accept (not handed over) */
	struct loop_timer resume;     /* after a pause */
	bool held;                    /* the server is full: not accepting until api_listener_resume */
};

/* The local API's listening sockets (deferred TCP on addr:port; a unix socket of API_UNIX_MODE):
 * the descriptor, or -errno, logged (event=listen_failed). */
int api_listen_tcp(const char *addr, uint16_t port);
int api_listen_unix(const char *path);

/* Watches listening socket fd on l: every connection waiting is accepted at once
 * (up to API_ACCEPT_BATCH a turn, and only while ops->room says the server has
 * room: else the listener holds until api_listener_resume, and connections wait
 * in the kernel's queue) and handed to ops->take, except, on a deferred
 * listener, one with nothing to read: the kernel hands such a connection over
 * only once it has been silent for the whole defer time, so it is closed there
 * and counted in *silent. Takes fd (closed by api_listener_stop, or here on
 * failure). Returns 0 or -errno. */
int api_listener_start(struct api_listener *li, struct loop *l, int fd, bool deferred, uint64_t *silent,
		       const struct api_listen_ops *ops, void *arg);
/* The server closed a connection: a held listener accepts again. */
void api_listener_resume(struct api_listener *li);
/* Stops watching and closes the socket. Safe on a listener never started or already stopped. */
void api_listener_stop(struct api_listener *li);

#endif
