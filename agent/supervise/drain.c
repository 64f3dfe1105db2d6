/* agent/supervise/drain.c - a replica that goes by decision (scale-down, roll, removal) drains its requests before it is stopped. */
#include <inttypes.h>

#include "agent/base/log.h"
#include "agent/supervise/internal.h"

#define LOG_TAG "superv"

/* --- retiring without losing requests ---------------------------------------
 * A replica that goes away by decision (scale-down, roll, removal) first
 * drains: it leaves the ready list (observers mark it draining, so the
 * dispatcher sends it nothing new), and is stopped once the requests it runs
 * are answered (inflight_fn says 0) or after the drain bound. */
static bool drain_one(struct supervisor *s, struct replica *r, uint64_t t)
{
	if (r->st != SUP_R_RUNNING || r->op != REPLICA_OP_NONE) {
		/* Exited meanwhile (removed by the exit path) or a call in flight: look again. */
		if (r->st == SUP_R_BACKOFF || r->st == SUP_R_EXITED) {
			replica_remove(r);
			return false;
		}
		return true;
	}
	const char *name = r->dep->spec.name;
	unsigned n = s->inflight_fn ? s->inflight_fn(s->inflight_arg, name, r->slot) : 0;
	if (n && t < r->retire_until_ms)
		return true;
	if (n)
		log_wrn("event=drain_timeout deployment=%s replica=%u inflight=%u waited_ms=%" PRIu64, name, r->slot, n,
			t - r->retire_start_ms);
	else
		log_inf("event=drain_done deployment=%s replica=%u waited_ms=%" PRIu64, name, r->slot,
			t - r->retire_start_ms);
	replica_remove(r);
	return false;
}

void drain_check(struct supervisor *s)
{
	bool waiting = false;
	uint64_t t = supervisor_now_ms(s);
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = s->deps[i];
		if (!d || !d->used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
			if (d->r[j].intent == REPLICA_RETIRE && drain_one(s, &d->r[j], t))
				waiting = true;
	}
	if (waiting && !loop_timer_armed(&s->drain_timer))
		supervisor_arm(s, &s->drain_timer, SUP_DRAIN_POLL_MS, "drain");
}

void drain_retire(struct replica *r, const char *why)
{
	struct supervisor *s = r->dep->sup;
	if (r->intent != REPLICA_KEEP)
		return;
	if (!s->inflight_fn || r->st != SUP_R_RUNNING || r->op != REPLICA_OP_NONE) {
		replica_remove(r);
		return;
	}
	bool was = replica_serving(r);
	r->intent = REPLICA_RETIRE;
	r->draining = true;
	r->retire_start_ms = supervisor_now_ms(s);
	r->retire_until_ms = r->retire_start_ms + deployment_drain_bound_ms(r->dep);
	log_inf("event=replica_drain deployment=%s replica=%u reason=%s bound_ms=%u", r->dep->spec.name, r->slot, why,
		deployment_drain_bound_ms(r->dep));
	if (was)
		replica_serving_changed(r, was);
	else
		supervisor_notify(s, r, SUP_EV_UNREADY); /* observers learn it is draining */
}

void drain_cancel(struct replica *r)
{
	bool was = replica_serving(r);
	r->intent = REPLICA_KEEP;
	r->draining = false;
	log_inf("event=replica_drain_cancelled deployment=%s replica=%u", r->dep->spec.name, r->slot);
	if (replica_serving(r) != was)
		replica_serving_changed(r, was);
	else
		supervisor_notify(r->dep->sup, r, r->ready ? SUP_EV_READY : SUP_EV_UNREADY);
}
