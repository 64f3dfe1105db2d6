/* agent/infer/connguard.h - the local API's flood guard: which open connections to close, and when. */
#ifndef BERTH_CONNGUARD_H
#define BERTH_CONNGUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/base/loop.h"

#if IS_ENABLED(CONFIG_LOCAL_API) /* sized by the local API's Kconfig symbols */

/* Bookkeeping over a fixed table of CONNGUARD_SLOTS connections; the caller
 * passes now_ms. A connection the guard picks is shut down (hal_net_shutdown:
 * the HTTP server then sees the end of the stream and closes it). Only a connection outside a request (waiting for
 * its headers, or idle between keep-alive requests) is ever chosen:
 *  - header deadline: the first request's headers within header_ms of the
 *    accept, the next one's within idle_ms of the previous response;
 *  - room: more than pool live connections -> the oldest goes (none younger
 *    than grace_ms: time to send its headers);
 *  - per client: more than per_client of one address -> its oldest goes. */
#define CONNGUARD_SLOTS (CONFIG_API_MAX_CONNECTIONS + CONFIG_API_RESERVE_CONNECTIONS)

struct connguard_conn {
	const void *owner;            /* the server's connection; NULL: slot free */
	int fd;                       /* -1 once told to close */
	uint64_t since_ms;            /* accepted, or its last request completed */
	bool in_request;
	bool served;                  /* answered a request before (keep-alive) */
	bool has_addr;
	uint8_t addr[16];
};

struct connguard {
	struct connguard_conn conns[CONNGUARD_SLOTS];
	unsigned open;                /* slots in use (told-to-close ones until the server closes them) */
	uint32_t pool, per_client, header_ms, idle_ms, grace_ms;
	uint64_t evicted;             /* closed to make room */
	uint64_t header_timeouts;     /* closed by the header deadline */
	uint64_t refused;             /* no slot at all */
	unsigned peak;                /* most open since the last trim */
	uint64_t trims;                /* memory handed back after a flood (hal_sys_trim_memory) */
	struct loop *loop;
	struct loop_timer sweep;      /* every CONNGUARD_SWEEP_MS while open: connguard_sweep */
};

#define CONNGUARD_SWEEP_MS 50

void connguard_init(struct connguard *g, uint32_t pool, uint32_t per_client, uint32_t header_ms, uint32_t idle_ms,
		    uint32_t grace_ms);

/* Sweeps every CONNGUARD_SWEEP_MS on loop while a connection is open, until connguard_stop. 0 or -errno. */
int connguard_start(struct connguard *g, struct loop *l);
void connguard_stop(struct connguard *g);

/* A connection was accepted (peer: its struct sockaddr, or NULL). Returns its slot,
 * or NULL when none is free (fd is shut down). Shuts down a connection to make
 * room when the pool or the client's share is full. */
struct connguard_conn *connguard_open(struct connguard *g, const void *owner, int fd, const void *peer,
				      uint64_t now_ms);
void connguard_close(struct connguard *g, struct connguard_conn *k);
/* The monotonic clock in ms, as the guard counts it. */
uint64_t connguard_now_ms(void);
/* Its request's headers are complete / its request completed. */
void connguard_request(struct connguard_conn *k);
void connguard_done(struct connguard_conn *k, uint64_t now_ms);
/* Shuts down the connections past their deadline, and the oldest while over the pool;
 * returns how many. After a flood (more than half the pool open at once) has ebbed to a
 * sixteenth of the pool, hands the freed connection memory back to the system. */
unsigned connguard_sweep(struct connguard *g, uint64_t now_ms);

#endif /* CONFIG_LOCAL_API */
#endif
