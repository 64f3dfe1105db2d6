/* hal/invoke.h - calls to replicas over the network: inference requests and health probes, asynchronous. */
#ifndef BERTH_HAL_INVOKE_H
#define BERTH_HAL_INVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct hal_invoke;

struct hal_invoke_req {
	const char *host;           /* "127.0.0.1" */
	uint16_t port;
	const char *method;         /* "GET" or "POST" */
	const char *path;           /* "/v2/models/m/infer" */
	const void *body;           /* borrowed until the callback runs */
	size_t body_len;
	const char *content_type;   /* NULL: none */
	uint32_t timeout_ms;        /* whole transfer; 0 is refused with -EINVAL */
	uint32_t cost_hint_ms;      /* sim only: service time of this request; 0 = replica default */
};

/* err: 0 (status and body valid), -ETIMEDOUT, -ECONNREFUSED (nothing
 * listening), -ECONNRESET (connection broke mid-request), -EMSGSIZE (reply
 * body larger than CONFIG_INVOKE_MAX_BODY_BYTES), -EIO.
 * body is valid only during the callback. */
struct hal_invoke_res {
	int err;
	int http_status;
	const void *body;
	size_t body_len;
	uint64_t elapsed_us;
};
typedef void (*hal_invoke_cb)(void *arg, const struct hal_invoke_res *res);

/* max_inflight bounds concurrent transfers; connections are kept alive per
 * host:port and reused. Returns NULL on allocation failure. */
struct hal_invoke *hal_invoke_create(struct loop *l, unsigned max_inflight);
/* Cancels transfers in flight without running their callbacks. NULL is safe. */
void hal_invoke_destroy(struct hal_invoke *inv);
/* Whether this port honours cost_hint_ms (the sim port's simulated service
 * times). Only then does the local API take a request's cost from its
 * X-Cost-Ms header; a real port ignores the header. */
bool hal_invoke_cost_hints(void);

/* Starts one HTTP transfer. Returns a handle > 0, or -EBUSY when max_inflight
 * transfers are running, -EINVAL on a bad request. cb runs exactly once, from
 * the loop, unless hal_invoke_cancel() is called first. */
int64_t hal_invoke_start(struct hal_invoke *inv, const struct hal_invoke_req *req, hal_invoke_cb cb, void *arg);
/* Cancels a transfer; its callback does not run. Unknown handles are ignored. */
void hal_invoke_cancel(struct hal_invoke *inv, int64_t handle);

/* Counters since create, for metrics and tests. */
struct hal_invoke_stats {
	uint64_t started;        /* transfers and probes accepted */
	uint64_t completed_ok;   /* callbacks with err 0 */
	uint64_t failed;         /* callbacks with err != 0 */
	uint64_t refused_busy;   /* starts refused with -EBUSY */
	uint64_t canceled;
	uint64_t conns_opened;   /* new TCP connections (keep-alive reuse keeps this low) */
};
void hal_invoke_get_stats(const struct hal_invoke *inv, struct hal_invoke_stats *out);

/* TCP probe: connects to host:port within timeout_ms; cb gets err 0 on
 * success. Same return convention as hal_invoke_start. */
int64_t hal_invoke_tcp_probe(struct hal_invoke *inv, const char *host, uint16_t port,
			     uint32_t timeout_ms, hal_invoke_cb cb, void *arg);

#endif
