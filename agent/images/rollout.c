/* agent/images/rollout.c - the verdict on a deployment's current version, from what the supervisor observes (pure). */
#include "agent/images/rollout.h"

#include <string.h>

const char *rollout_reason_name(enum rollout_reason r)
{
	switch (r) {
	case ROLLOUT_CRASH_LOOP: return "crash_loop";
	case ROLLOUT_NOT_READY: return "not_ready_in_window";
	default: return "none";
	}
}

enum rollout_verdict rollout_observe(struct rollout_track *t, const struct rollout_obs *o, uint64_t lkg_hash,
				     const struct rollout_limits *lim, uint64_t now_ms, enum rollout_reason *why)
{
	*why = ROLLOUT_NONE;
	if (t->spec_hash != o->spec_hash) {
		memset(t, 0, sizeof(*t));
		t->spec_hash = o->spec_hash;
	}
	if (t->judged || !o->image_ready)
		return ROLLOUT_WAIT;
	if (!t->started) {
		t->started = true;
		t->since_ms = now_ms;
	}
	bool all_ready = o->desired > 0 && o->ready >= o->desired;
	if (all_ready && !t->all_ready)
		t->ready_since_ms = now_ms;
	t->all_ready = all_ready;

	if (all_ready && now_ms - t->ready_since_ms >= lim->stable_ms && !o->circuit_open) {
		t->judged = true;
		return ROLLOUT_GOOD;
	}
	if (!lkg_hash || lkg_hash == o->spec_hash)
		return ROLLOUT_WAIT; /* nothing to roll back to: the supervisor's restarts go on */
	if (o->circuit_open || (lim->max_crashes && o->crashes >= lim->max_crashes)) {
		*why = ROLLOUT_CRASH_LOOP;
		t->judged = true;
		return ROLLOUT_FAILED;
	}
	if (!all_ready && now_ms - t->since_ms >= lim->window_ms) {
		*why = ROLLOUT_NOT_READY;
		t->judged = true;
		return ROLLOUT_FAILED;
	}
	return ROLLOUT_WAIT;
}
