/* agent/infer/dispatch.h - sends scheduled inference requests to replicas (hal_invoke), with per-replica breakers and one retry. */
#ifndef BERTH_DISPATCH_H
#define BERTH_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/infer/sched.h"
#include "agent/model/deploy.h"

struct loop;
struct hal_invoke;
struct dispatch;

/* Why a request was not served by a replica. Refusals are immediate (503). */
enum dispatch_reason {
	DISPATCH_OK = 0,
	DISPATCH_DEADLINE_INFEASIBLE,   /* 503: the estimate says it cannot finish in time */
	DISPATCH_QUEUE_FULL,            /* 503: its class's queue (or the request pool) is full */
	DISPATCH_NO_READY_REPLICA,      /* 503: the model has no ready replica */
	DISPATCH_BREAKER_OPEN,          /* 503: every ready replica's breaker is open */
	DISPATCH_REPLICA_FAILED,        /* 502: the replica failed and no retry was possible */
	DISPATCH_DEADLINE_EXCEEDED,     /* 504: the deadline passed while the replica worked */
	DISPATCH_SHUTDOWN,              /* 503: the agent is stopping */
	DISPATCH_NREASONS
};

/* Name used in JSON bodies and metric labels: "deadline_infeasible", ... */
const char *dispatch_reason_name(enum dispatch_reason r);

/* One inference request. Memory owned by the caller (the API's pool); it
 * must stay put from dispatch_submit() until done runs or dispatch_cancel(). */
struct dispatch_req {
	/* set by the caller */
	int model;                   /* from dispatch_model_find() */
	enum sla_class cls;
	uint64_t arrival_us;         /* monotonic, when the request arrived */
	uint64_t deadline_us;        /* monotonic, absolute */
	const void *body;            /* borrowed until done */
	size_t body_len;
	const char *content_type;    /* borrowed until done; NULL: none */
	uint32_t cost_hint_ms;       /* 0; X-Cost-Ms when the port honours it (hal_invoke_cost_hints: sim only) */
	uint32_t size;               /* the request's size for the scheduler's estimator
	                              * (sched_req.size), 0 unknown */

	/* filled before done runs (or when dispatch_submit refuses) */
	enum dispatch_reason reason;
	int http_status;             /* replica's status when served, else 502/503/504 */
	unsigned retry_after_s;      /* 0: no Retry-After */
	uint64_t queue_us;           /* arrival to (last) send to a replica */
	uint64_t service_us;         /* send to answer, of the attempt that answered */
	unsigned attempts;

	/* private to dispatch */
	struct dispatch *owner;
	uint64_t id;                 /* the scheduler's id */
	int replica;                 /* -1 while queued */
	int64_t handle;              /* hal_invoke transfer, 0 when none */
	int state;
	uint64_t sent_us;
};

/* Called once per submitted request, from the loop (never from inside
 * dispatch_submit). body/len: the replica's answer when reason is
 * DISPATCH_OK, valid only during the call. */
typedef void (*dispatch_done_fn)(void *arg, struct dispatch_req *r, const void *body, size_t len);

struct dispatch_config {
	const char *policy;          /* scheduler policy name ("edf-admit", ...) */
	unsigned slots;              /* compute slots; 0: one per CPU core */
	unsigned queue_cap[SLA_NCLASSES];
	unsigned urgent_reserve_slots;
};

/* Creates the dispatcher and its scheduler. inv is borrowed (must outlive
 * it). Returns NULL on allocation failure or a bad config. */
struct dispatch *dispatch_create(struct loop *l, struct hal_invoke *inv, const struct dispatch_config *cfg);
/* Applies a changed config to the running scheduler (a reload): policy, slots, class caps
 * and urgent reserve, under sched_set_params's rule (nothing queued or running is dropped).
 * Returns 0, -EINVAL (unknown policy, bad values: nothing changed) or -ENOMEM. */
int dispatch_reconfigure(struct dispatch *d, const struct dispatch_config *cfg)
	__attribute__((warn_unused_result));
/* Sets who hears of finished requests (the API); NULL stops it. */
void dispatch_set_done_fn(struct dispatch *d, dispatch_done_fn done, void *arg);
/* Hears every request offered to a known model, accepted or refused, from
 * inside dispatch_submit before it is scheduled (the autoscaler's arrival
 * count for the forecaster). Must not call dispatch_*. NULL stops it. */
typedef void (*dispatch_arrival_fn)(void *arg, int model);
void dispatch_set_arrival_fn(struct dispatch *d, dispatch_arrival_fn fn, void *arg);
/* Cancels transfers in flight (their requests' done does not run). NULL is safe. */
void dispatch_destroy(struct dispatch *d);

/* --- models and replicas (fed by the supervisor, or statically) ---------- */

/* Declares (or updates) model name with its default deadline and class.
 * Returns its index >= 0, or -ENOSPC (DEPLOY_MAX models), -EINVAL. */
int dispatch_model_set(struct dispatch *d, const char *name, uint32_t deadline_ms, enum sla_class cls,
		       uint32_t concurrency)
	__attribute__((warn_unused_result));
/* Index of model name, or -ENOENT (unknown, or withdrawn). */
int dispatch_model_find(const struct dispatch *d, const char *name);
/* Withdraws model idx (its deployment was removed): its replicas are removed
 * (queued requests are refused with no_ready_replica), new requests for it
 * get -ENOENT from dispatch_model_find (404 at the API), its counters stay in
 * /metrics. dispatch_model_set() of the same name brings it back. */
void dispatch_model_withdraw(struct dispatch *d, int model);
/* Default deadline and class of model idx. Returns 0 or -ENOENT. */
int dispatch_model_defaults(const struct dispatch *d, int model, uint32_t *deadline_ms, enum sla_class *cls);
/* A model is ready when at least one replica is ready with its breaker not open. */
bool dispatch_model_ready(const struct dispatch *d, int model);
/* Every declared model is ready (and at least one is declared). */
bool dispatch_all_ready(const struct dispatch *d);

/* Sets replica index of model to host:port with its readiness. A replica
 * that becomes not ready receives nothing more (requests in flight finish).
 * Returns 0, -ENOENT (no such model), -ENOSPC (index >= DEPLOY_MAX_REPLICAS). */
int dispatch_replica_set(struct dispatch *d, int model, unsigned index, const char *host, uint16_t port,
			 bool ready)
	__attribute__((warn_unused_result));
/* Draining (scale-down, update): finishes what it runs, gets nothing new.
 * Returns 0 or -ENOENT. */
int dispatch_replica_set_draining(struct dispatch *d, int model, unsigned index, bool draining);
/* Removes a replica (stopped or deleted). */
void dispatch_replica_remove(struct dispatch *d, int model, unsigned index);

/* Parses "model=host:port[,model=host:port...]" (a fixed replica list, for
 * replicas not run by berth) and declares them. Each is ready while GET
 * /v2/health/ready answers 2xx/3xx, probed every CONFIG_DISPATCH_STATIC_PROBE_MS
 * starting now. Models unknown so far are declared with deadline
 * default_deadline_ms and class normal. Returns 0 or -EINVAL (nothing declared). */
int dispatch_static_replicas(struct dispatch *d, const char *list, uint32_t default_deadline_ms)
	__attribute__((warn_unused_result));

/* Preemption (edf-preempt): pause_fn(arg, model, replica, pause) pauses or
 * resumes a replica's container and returns 0 when it will (a negative errno
 * keeps it running). Without it, preemption is not used. A paused request
 * that ends (answer, timeout, cancel) resumes its replica first. */
typedef int (*dispatch_pause_fn)(void *arg, const char *model, unsigned replica, bool pause);
void dispatch_set_pause_fn(struct dispatch *d, dispatch_pause_fn fn, void *arg);

/* Observer of requests that end without a replica's successful answer:
 * refused (at arrival or later), failed (502/504), or answered 5xx by the
 * replica (reason DISPATCH_OK, http_status >= 500). Called from the loop,
 * also from inside dispatch_submit for refusals at arrival. NULL stops it. */
typedef void (*dispatch_miss_fn)(void *arg, const char *model, enum dispatch_reason reason, int http_status);
void dispatch_set_miss_fn(struct dispatch *d, dispatch_miss_fn fn, void *arg);

/* --- requests ------------------------------------------------------------ */

/* Admits r (fields "set by the caller" filled). Returns 0 when queued or sent
 * (done runs later), or -EAGAIN when refused at once: r->reason,
 * r->http_status (503) and r->retry_after_s are set and done never runs. */
int dispatch_submit(struct dispatch *d, struct dispatch_req *r) __attribute__((warn_unused_result));
/* Withdraws r (queued or in flight); done does not run. Unknown r is ignored. */
void dispatch_cancel(struct dispatch *d, struct dispatch_req *r);

/* --- figures ------------------------------------------------------------- */

/* Per-replica figures kept by the dispatcher (the scheduler keeps the
 * per-request counters: sched_model_stats()). */
struct dispatch_replica_stats {
	uint64_t sent;               /* transfers started */
	uint64_t failures;           /* connection errors, timeouts and 5xx answers */
	uint64_t breaker_opens;
	bool breaker_open;           /* open or half-open */
	unsigned inflight;           /* requests at the replica now (paused ones included) */
};
/* Returns 0 or -ENOENT. */
int dispatch_replica_stats(const struct dispatch *d, int model, unsigned index, struct dispatch_replica_stats *st);

/* The scheduler's figures, read through the dispatcher (the only way code
 * outside agent/infer/ reads them; d may be NULL: nothing). */
/* Name of model index, NULL when none. */
const char *dispatch_model_name(const struct dispatch *d, int model);
/* Cumulative counters of model since start. Returns 0 or -ENOENT. */
int dispatch_model_stats(const struct dispatch *d, int model, struct sched_model_stats *out);
/* Counters since the previous take (sched_window_take). Returns 0 or -ENOENT. */
int dispatch_window_take(struct dispatch *d, int model, uint64_t now_us, struct sched_window *out);
/* Every model's counters summed per class (zeros when d is NULL). */
void dispatch_class_totals(const struct dispatch *d, struct sched_class_stats out[SLA_NCLASSES]);
/* SLA compliance of model over every class since start; NAN when none decided. */
double dispatch_model_compliance(const struct dispatch *d, int model);
/* Whether the scheduler holds a request of the replica paused (edf-preempt). */
bool dispatch_replica_paused(const struct dispatch *d, int model, unsigned index);
struct dispatch_load {
	const char *policy;          /* static string */
	unsigned slots, slots_busy;
	uint32_t backlog_ms;         /* queued work ahead of a new request */
};
/* The scheduler's policy, slots and backlog now (d not NULL). */
void dispatch_load(const struct dispatch *d, uint64_t now_us, struct dispatch_load *out);

/* The scheduler behind the dispatcher: for agent/infer/ and its unit tests
 * only (scripts/check-layering.sh holds everyone else to the calls above). */
struct sched *dispatch_sched(const struct dispatch *d);

/* Renders every counter in Prometheus text format (version 0.0.4) into buf.
 * Returns the length written, or the length needed when it does not fit
 * (like snprintf). */
size_t dispatch_render_metrics(const struct dispatch *d, char *buf, size_t len);
/* Renders models, replicas (address, readiness, breaker, in flight) and the
 * scheduler's figures as JSON. Same return convention. */
size_t dispatch_render_state(const struct dispatch *d, char *buf, size_t len);

#endif
