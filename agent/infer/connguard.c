/* agent/infer/connguard.c - the local API's flood guard: which open connections to close, and when. */
#include "agent/infer/connguard.h"

#define LOG_TAG "api"
#include "agent/base/log.h"

#include <string.h>

#include "hal/clock.h"
#include "hal/net.h"
#include "hal/sys.h"

#if IS_ENABLED(CONFIG_LOCAL_API) /* the table is sized by the API's Kconfig symbols */

void connguard_init(struct connguard *g, uint32_t pool, uint32_t per_client, uint32_t header_ms, uint32_t idle_ms,
		    uint32_t grace_ms)
{
	memset(g, 0, sizeof(*g));
	g->pool = pool;
	g->per_client = per_client;
	g->header_ms = header_ms;
	g->idle_ms = idle_ms;
	g->grace_ms = grace_ms;
}

static bool closable(const struct connguard_conn *k, uint64_t now_ms, uint32_t grace_ms)
{
	return k->owner && !k->in_request && k->fd >= 0 && now_ms - k->since_ms >= grace_ms;
}

/* The oldest closable connection (other than except); same: of that client only. */
static struct connguard_conn *oldest(struct connguard *g, const struct connguard_conn *except,
				     const struct connguard_conn *same, uint64_t now_ms)
{
	struct connguard_conn *best = NULL;
	for (unsigned i = 0; i < CONNGUARD_SLOTS; i++) {
		struct connguard_conn *k = &g->conns[i];
		if (k == except || !closable(k, now_ms, g->grace_ms))
			continue;
		if (same && (!k->has_addr || memcmp(k->addr, same->addr, sizeof(k->addr)) != 0))
			continue;
		if (!best || k->since_ms < best->since_ms)
			best = k;
	}
	return best;
}

static unsigned live(const struct connguard *g)
{
	unsigned n = 0;
	for (unsigned i = 0; i < CONNGUARD_SLOTS; i++)
		n += g->conns[i].owner && g->conns[i].fd >= 0;
	return n;
}

static void shut(struct connguard_conn *k)
{
	hal_net_shutdown(k->fd);
	k->fd = -1; /* once; the server reports it closed on its next run */
}

uint64_t connguard_now_ms(void) { return hal_clock_now_us() / 1000u; }

static void on_sweep(void *arg)
{
	struct connguard *g = arg;
	(void)connguard_sweep(g, connguard_now_ms());
	if (!g->open) /* idle: no wake-ups until the next connection (connguard_open) */
		loop_timer_stop(g->loop, &g->sweep);
}

int connguard_start(struct connguard *g, struct loop *l)
{
	g->loop = l;
	loop_timer_init(&g->sweep, on_sweep, g);
	return 0; /* the sweep runs while connections are open: armed by connguard_open */
}

void connguard_stop(struct connguard *g)
{
	if (g->loop)
		loop_timer_stop(g->loop, &g->sweep);
}

struct connguard_conn *connguard_open(struct connguard *g, const void *owner, int fd, const void *peer,
				      uint64_t now_ms)
{
	struct connguard_conn *k = NULL;
	for (unsigned i = 0; i < CONNGUARD_SLOTS && !k; i++)
		if (!g->conns[i].owner)
			k = &g->conns[i];
	if (!k) {
		g->refused++;
		hal_net_shutdown(fd);
		return NULL;
	}
	*k = (struct connguard_conn){ .owner = owner, .fd = fd, .since_ms = now_ms };
	if (g->loop && !loop_timer_armed(&g->sweep) &&
	    loop_timer_start(g->loop, &g->sweep, CONNGUARD_SWEEP_MS, CONNGUARD_SWEEP_MS) < 0)
		log_wrn("event=guard_sweep_not_started open=%u", g->open); /* next connection tries again */
	k->has_addr = peer && hal_net_peer_key(peer, k->addr);
	if (++g->open > g->peak)
		g->peak = g->open;
	struct connguard_conn *v = NULL;
	if (live(g) > g->pool) {
		v = oldest(g, k, NULL, now_ms);
	} else if (k->has_addr) {
		unsigned same = 0;
		for (unsigned i = 0; i < CONNGUARD_SLOTS; i++) {
			const struct connguard_conn *o = &g->conns[i];
			same += o->owner && !o->in_request && o->has_addr && memcmp(o->addr, k->addr, sizeof(k->addr)) == 0;
		}
		if (same > g->per_client)
			v = oldest(g, k, k, now_ms);
	}
	if (v) {
		g->evicted++;
		shut(v);
	}
	return k;
}

void connguard_close(struct connguard *g, struct connguard_conn *k)
{
	memset(k, 0, sizeof(*k));
	g->open--;
}

void connguard_request(struct connguard_conn *k) { k->in_request = true; }

void connguard_done(struct connguard_conn *k, uint64_t now_ms)
{
	k->in_request = false;
	k->served = true;
	k->since_ms = now_ms;
}

unsigned connguard_sweep(struct connguard *g, uint64_t now_ms)
{
	unsigned n = 0;
	/* Over the pool (connections came faster than they could be evicted at accept): back to it. */
	for (unsigned over = live(g); over > g->pool; over--, n++) {
		struct connguard_conn *v = oldest(g, NULL, NULL, now_ms);
		if (!v)
			break;
		g->evicted++;
		shut(v);
	}
	for (unsigned i = 0; i < CONNGUARD_SLOTS; i++) {
		struct connguard_conn *k = &g->conns[i];
		if (!closable(k, now_ms, 0))
			continue;
		if (now_ms - k->since_ms >= (k->served ? g->idle_ms : g->header_ms)) {
			g->header_timeouts++;
			shut(k);
			n++;
		}
	}
	/* The server's per-connection memory (16 KiB pools) sits in the heap, which the
	 * allocator keeps once freed: a flood would leave some megabytes resident. */
	if (g->peak > g->pool / 2 && g->open <= g->pool / 16) {
		hal_sys_trim_memory();
		g->trims++;
		g->peak = g->open;
	}
	return n;
}

#endif
