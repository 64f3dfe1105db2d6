/* ports/sim/invoke.c - replica calls answered by the simulated containers, in virtual time. */
#include "hal/invoke.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/loop.h"
#include "hal/clock.h"
#include "ports/sim/world.h"

#define SIM_PORTS_SEEN 64

struct xfer {
	struct hal_invoke *inv;
	int64_t handle;             /* 0 when free */
	hal_invoke_cb cb;
	void *arg;
	int64_t token;              /* the replica's request, 0: none */
	int pending_err;            /* decided at start, delivered from the loop */
	bool has_pending;
	uint64_t start_us;
	struct loop_timer timer;    /* timeout, or delivery of pending_err */
};

struct hal_invoke {
	struct loop *l;
	struct xfer *x;
	unsigned n;
	uint64_t seq;
	uint16_t seen[SIM_PORTS_SEEN]; /* ports with a kept-alive connection */
	struct hal_invoke_stats st;
};

static void deliver(struct xfer *x, int err, int status, const void *body, size_t len)
{
	struct hal_invoke *inv = x->inv;
	struct hal_invoke_res res = { .err = err, .http_status = err ? 0 : status, .body = err ? NULL : body,
				      .body_len = err ? 0 : len, .elapsed_us = hal_clock_now_us() - x->start_us };
	hal_invoke_cb cb = x->cb;
	void *arg = x->arg;
	loop_timer_stop(inv->l, &x->timer);
	x->handle = 0;
	x->token = 0;
	if (err)
		inv->st.failed++;
	else
		inv->st.completed_ok++;
	cb(arg, &res);
}

static void on_reply(void *arg, int err, int status, const char *body, size_t body_len)
{
	struct xfer *x = arg;
	if (!x->handle)
		return;
	deliver(x, err, status, body, body_len);
}

static void on_timer(void *arg)
{
	struct xfer *x = arg;
	if (x->has_pending) {
		x->has_pending = false;
		deliver(x, x->pending_err, 0, NULL, 0);
		return;
	}
	sim_world_abandon(x->token);
	deliver(x, -ETIMEDOUT, 0, NULL, 0);
}

static struct xfer *take(struct hal_invoke *inv)
{
	for (unsigned i = 0; i < inv->n; i++) {
		struct xfer *x = &inv->x[i];
		if (x->handle)
			continue;
		inv->seq++;
		x->handle = (int64_t)(inv->seq << 16) | (int64_t)i;
		x->token = 0;
		x->has_pending = false;
		x->start_us = hal_clock_now_us();
		return x;
	}
	inv->st.refused_busy++;
	return NULL;
}

static void note_port(struct hal_invoke *inv, uint16_t port)
{
	for (unsigned i = 0; i < SIM_PORTS_SEEN; i++) {
		if (inv->seen[i] == port)
			return;
		if (!inv->seen[i]) {
			inv->seen[i] = port;
			inv->st.conns_opened++;
			return;
		}
	}
}

static int64_t begin(struct hal_invoke *inv, struct xfer *x, int err, uint32_t delay_ms)
{
	int rc;
	if (err) {
		x->has_pending = true;
		x->pending_err = err;
		rc = loop_timer_start(inv->l, &x->timer, 0, 0);
	} else {
		rc = loop_timer_start(inv->l, &x->timer, delay_ms, 0);
	}
	if (rc) {
		sim_world_abandon(x->token);
		x->handle = 0;
		return rc;
	}
	inv->st.started++;
	return x->handle;
}

int64_t hal_invoke_start(struct hal_invoke *inv, const struct hal_invoke_req *req, hal_invoke_cb cb, void *arg)
{
	if (!inv || !req || !cb || !req->timeout_ms || !req->port || !req->host || !req->path ||
	    req->path[0] != '/' || (req->body_len && !req->body))
		return -EINVAL;
	const char *method = req->method ? req->method : "POST";
	if (strcmp(method, "POST") != 0 && strcmp(method, "GET") != 0)
		return -EINVAL;
	struct xfer *x = take(inv);
	if (!x)
		return -EBUSY;
	x->cb = cb;
	x->arg = arg;
	int64_t tok = sim_world_http(req->port, method, req->path, req->body, req->body_len, req->cost_hint_ms,
				     on_reply, x);
	if (tok < 0)
		return begin(inv, x, (int)tok, 0);
	x->token = tok;
	note_port(inv, req->port);
	/* on_reply may not have run yet (it runs from a world timer); the
	 * timeout timer covers a replica that never answers. */
	return begin(inv, x, 0, req->timeout_ms);
}

void hal_invoke_cancel(struct hal_invoke *inv, int64_t handle)
{
	if (!inv || handle <= 0)
		return;
	unsigned i = (unsigned)(handle & 0xffff);
	if (i >= inv->n || inv->x[i].handle != handle)
		return;
	struct xfer *x = &inv->x[i];
	loop_timer_stop(inv->l, &x->timer);
	sim_world_abandon(x->token);
	x->handle = 0;
	x->token = 0;
	inv->st.canceled++;
}

int64_t hal_invoke_tcp_probe(struct hal_invoke *inv, const char *host, uint16_t port, uint32_t timeout_ms,
			     hal_invoke_cb cb, void *arg)
{
	if (!inv || !cb || !host || !port || !timeout_ms)
		return -EINVAL;
	struct xfer *x = take(inv);
	if (!x)
		return -EBUSY;
	x->cb = cb;
	x->arg = arg;
	/* A hung replica still accepts connections: only listening matters. */
	x->has_pending = true;
	x->pending_err = sim_world_listening(port) ? 0 : -ECONNREFUSED;
	int rc = loop_timer_start(inv->l, &x->timer, 0, 0);
	if (rc) {
		x->handle = 0;
		return rc;
	}
	inv->st.started++;
	return x->handle;
}

struct hal_invoke *hal_invoke_create(struct loop *l, unsigned max_inflight)
{
	if (!l || !max_inflight || max_inflight > 0xffff)
		return NULL;
	struct hal_invoke *inv = calloc(1, sizeof(*inv));
	if (!inv)
		return NULL;
	inv->x = calloc(max_inflight, sizeof(*inv->x));
	if (!inv->x) {
		free(inv);
		return NULL;
	}
	inv->l = l;
	inv->n = max_inflight;
	for (unsigned i = 0; i < max_inflight; i++) {
		inv->x[i].inv = inv;
		loop_timer_init(&inv->x[i].timer, on_timer, &inv->x[i]);
	}
	sim_world_use_loop(l);
	return inv;
}

/* A simulated replica spends what the request says (X-Cost-Ms at the API). */
bool hal_invoke_cost_hints(void) { return true; }

void hal_invoke_destroy(struct hal_invoke *inv)
{
	if (!inv)
		return;
	for (unsigned i = 0; i < inv->n; i++) {
		struct xfer *x = &inv->x[i];
		loop_timer_stop(inv->l, &x->timer);
		if (x->handle)
			sim_world_abandon(x->token);
	}
	free(inv->x);
	free(inv);
}

void hal_invoke_get_stats(const struct hal_invoke *inv, struct hal_invoke_stats *out) { *out = inv->st; }
