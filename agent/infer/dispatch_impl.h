/* agent/infer/dispatch_impl.h - the dispatcher's state, shared by its files (dispatch.c: requests, replicas, breakers; dispatch_figures.c: figures). Private to agent/infer/. */
#ifndef BERTH_DISPATCH_IMPL_H
#define BERTH_DISPATCH_IMPL_H

#include "agent/base/loop.h"
#include "agent/infer/dispatch.h"
#include "agent/infer/sched.h"

enum req_state { REQ_IDLE = 0, REQ_QUEUED, REQ_SENDING, REQ_PAUSED };
enum breaker_state { BRK_CLOSED = 0, BRK_OPEN, BRK_HALF_OPEN, BRK_PROBING };

struct replica;

/* Readiness probe of a replica listed in api.static_replicas (run outside
 * berth, so no supervisor watches it). */
struct static_probe {
	struct dispatch *d;
	int model;
	unsigned index;
	int64_t handle;              /* probe in flight, 0 when none */
};

struct replica {
	bool present;
	bool ready;
	bool is_static;
	struct static_probe probe;
	char host[64];
	uint16_t port;
	enum breaker_state brk;
	unsigned consecutive_failures;
	uint64_t open_until_us;
	struct dispatch_replica_stats st;
};

struct model {
	bool used;
	bool withdrawn;              /* its deployment went away: unknown to new requests */
	char name[DEPLOY_NAME_MAX];
	char infer_path[DEPLOY_NAME_MAX + 24];
	uint32_t deadline_ms;
	enum sla_class cls;
	uint32_t concurrency;
	struct replica rep[DEPLOY_MAX_REPLICAS];
};

struct dispatch {
	struct loop *loop;
	struct hal_invoke *inv;
	struct sched *sched;
	bool admit;                        /* policy refuses what it predicts late */
	dispatch_done_fn done;
	void *done_arg;
	dispatch_arrival_fn arrival_fn;
	void *arrival_arg;
	dispatch_pause_fn pause_fn;
	void *pause_arg;
	dispatch_miss_fn miss_fn;
	void *miss_arg;
	struct model models[DEPLOY_MAX];
	struct loop_timer sched_timer;     /* sched_tick at sched_next_due_us */
	struct loop_timer breaker_timer;   /* earliest open breaker turning half-open */
	struct loop_timer probe_timer;     /* readiness of static replicas */
	struct dispatch_req *submitting;   /* request inside dispatch_submit, finished synchronously */
	bool submit_finished;
};

static inline struct model *model_at(const struct dispatch *d, int m)
{
	if (m < 0 || m >= DEPLOY_MAX || !d->models[m].used)
		return NULL;
	return (struct model *)&d->models[m];
}

#endif
