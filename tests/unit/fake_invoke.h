/* tests/unit/fake_invoke.h - a scripted hal_invoke for dispatch tests: the test decides how each transfer ends. */
#ifndef BERTH_TEST_FAKE_INVOKE_H
#define BERTH_TEST_FAKE_INVOKE_H

/* Include from exactly one file of a test binary: it defines hal_invoke_*,
 * which then take precedence over any port's implementation in the archive. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hal/clock.h"
#include "hal/invoke.h"

#define FAKE_MAX_XFERS 64

struct fake_xfer {
	bool live;
	int64_t handle;
	char host[64];
	uint16_t port;
	char path[128];
	uint32_t timeout_ms;
	size_t body_len;
	uint64_t started_us;
	hal_invoke_cb cb;
	void *arg;
};

struct hal_invoke {
	struct fake_xfer x[FAKE_MAX_XFERS];
	unsigned nstarted;      /* transfers started since create (index of the next) */
	unsigned cancelled;
	int fail_start;         /* next hal_invoke_start returns this when < 0 */
};

static struct hal_invoke *g_fake_inv;

struct hal_invoke *hal_invoke_create(struct loop *l, unsigned max_inflight)
{
	(void)l;
	(void)max_inflight;
	g_fake_inv = calloc(1, sizeof(*g_fake_inv));
	return g_fake_inv;
}

/* Like the sim port: the test says what a request costs. */
bool hal_invoke_cost_hints(void) { return true; }

void hal_invoke_destroy(struct hal_invoke *inv)
{
	if (inv == g_fake_inv)
		g_fake_inv = NULL;
	free(inv);
}

int64_t hal_invoke_start(struct hal_invoke *inv, const struct hal_invoke_req *req, hal_invoke_cb cb, void *arg)
{
	if (inv->fail_start < 0) {
		int e = inv->fail_start;
		inv->fail_start = 0;
		return e;
	}
	if (req->timeout_ms == 0 || inv->nstarted >= FAKE_MAX_XFERS)
		return -EINVAL;
	struct fake_xfer *x = &inv->x[inv->nstarted];
	memset(x, 0, sizeof(*x));
	x->live = true;
	x->handle = (int64_t)inv->nstarted + 1;
	snprintf(x->host, sizeof(x->host), "%s", req->host);
	x->port = req->port;
	snprintf(x->path, sizeof(x->path), "%s", req->path);
	x->timeout_ms = req->timeout_ms;
	x->body_len = req->body_len;
	x->started_us = hal_clock_now_us();
	x->cb = cb;
	x->arg = arg;
	inv->nstarted++;
	return x->handle;
}

void hal_invoke_cancel(struct hal_invoke *inv, int64_t handle)
{
	if (handle < 1 || handle > (int64_t)inv->nstarted)
		return;
	if (inv->x[handle - 1].live)
		inv->cancelled++;
	inv->x[handle - 1].live = false;
}

int64_t hal_invoke_tcp_probe(struct hal_invoke *inv, const char *host, uint16_t port, uint32_t timeout_ms,
			     hal_invoke_cb cb, void *arg)
{
	(void)inv; (void)host; (void)port; (void)timeout_ms; (void)cb; (void)arg;
	return -ENOTSUP;
}

/* Ends transfer i (0-based start order) as the loop would: err, status, body. */
static inline void fake_invoke_finish(unsigned i, int err, int status, const char *body)
{
	struct fake_xfer *x = &g_fake_inv->x[i];
	if (!x->live)
		return;
	x->live = false;
	struct hal_invoke_res res = {
		.err = err,
		.http_status = err ? 0 : status,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.elapsed_us = hal_clock_now_us() - x->started_us,
	};
	x->cb(x->arg, &res);
}

#endif
