/* agent/infer/sched.c - EDF request scheduler: the request path (admission, queues, dispatch, completion, preemption; contract in sched.h). */
#include "agent/infer/sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/infer/sched_heap.h"
#include "agent/infer/sched_impl.h"

#define LOG_TAG "sched"

const uint64_t sched_lat_bounds_us[SCHED_LAT_NBUCKETS] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000, 10000000, 30000000, UINT64_MAX,
};

/* --- replica summaries ------------------------------------------------------ */

/* Keeps capmask in step with m's free_cap (call after changing it). */
static inline void cap_sync(struct sched *s, const struct model *m)
{
	if (m->free_cap)
		s->capmask |= m->heap_bits;
	else
		s->capmask &= ~m->heap_bits;
}

/* Recomputes model mi's replica summary (and each replica's usable flag)
 * after a replica's state changed. */
static void model_refresh(struct sched *s, unsigned mi)
{
	struct model *m = &s->models[mi];
	unsigned cap = 0, ur = 0, u = 0;
	uint32_t free_rep = 0;
	for (int i = 0; i < m->rep_hi; i++) {
		struct replica *r = &m->rep[i];
		r->usable = false;
		if (!r->present || !r->ready || r->draining)
			continue;
		ur++;
		if (r->breaker_open)
			continue;
		u++;
		if (r->paused)
			continue;
		r->usable = true;
		if (r->inflight < r->concurrency) {
			cap += r->concurrency - r->inflight;
			free_rep |= 1u << i;
		}
	}
	m->free_cap = cap;
	m->free_rep = free_rep;
	m->usable_ready = ur;
	m->usable = u;
	cap_sync(s, m);
}

/* Own service estimate of a request: its hint, else the model's percentile
 * (0 while the model has too few samples: never refuse what was never measured). */
/* A completion with a size feeds the model's size fit (out of line, as below). */
static __attribute__((noinline)) void fit_add(struct model *m, uint32_t size, uint64_t us)
{
	sched_fit_add(&m->est.fit, size, us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
}

/* A new request with a known cost (hint_us) or a size: with a known cost,
 * that is its own estimate and its work; with a size, once the model's size
 * fit is usable, its own estimate is fixed at arrival from the fit (kept in
 * hint_us) and its work is the fit's mean for its size; else the model's
 * EWMA is its work (and its own estimate the current percentile). Out of
 * line: the common path has neither. */
static __attribute__((noinline)) void est_fixed(const struct model *m, struct entry *e)
{
	if (e->hint_us) {
		e->work_us = e->hint_us;
	} else if (m->est.fit.usable) {
		e->hint_us = sched_fit_upper_us(&m->est.fit, e->size);
		e->work_us = sched_fit_mean_us(&m->est.fit, e->size);
	} else {
		e->work_us = m->est.ewma_us;
	}
}

/* --- counters --------------------------------------------------------------- */

/* Only the cumulative counters are counted (each request keeps a pointer
 * to those of its model and class); the autoscaler's window is their
 * difference from a copy taken at the previous sched_window_take. */

/* lat_first[k]: the first latency bucket whose bound (sched_lat_bounds_us)
 * is >= 2^k. Consecutive bounds are at least a factor 2 apart, so
 * [2^k, 2^(k+1)) holds at most one bound and a latency's bucket is
 * lat_first[log2] or the one after it (test_sched checks every bound). */
static const uint8_t lat_first[64] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 12, 13,
	14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14,
	14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14,
};

/* First bucket whose bound is >= lat_us (the last one is +Inf). */
static inline unsigned lat_bucket_of(uint64_t lat_us)
{
	unsigned b = lat_first[63 - __builtin_clzll(lat_us | 1)]; /* 0 us: bucket 0 */
	return b + (lat_us > sched_lat_bounds_us[b]);
}

static inline void count_latency(struct sched_class_stats *st, uint64_t lat_us)
{
	st->lat_bucket[lat_bucket_of(lat_us)]++;
	st->lat_sum_us += lat_us;
}

/* --- request life ------------------------------------------------------------- */

static inline struct sched_dispatch describe(const struct sched *s, uint32_t idx)
{
	const struct entry *e = &s->pool[idx];
	struct sched_dispatch d = {
		.id = ((uint64_t)e->gen << 32) | idx,
		.ctx = e->ctx,
		.model = e->model,
		.replica = e->replica,
		.cls = (enum sla_class)e->cls,
		.arrival_us = e->arrival_us,
		.deadline_us = e->deadline_us,
		.now_us = s->now_us,
		.attempt = e->attempt,
	};
	return d;
}

static void entry_free(struct sched *s, uint32_t idx)
{
	s->pool[idx].state = ST_FREE;
	s->pool[idx].ctx = NULL;
	s->free_idx[s->nfree++] = idx;
}

static void held_add(struct sched *s, uint32_t idx)
{
	s->pos[idx] = s->nheld;
	s->held[s->nheld++] = idx;
}

static void held_remove(struct sched *s, uint32_t idx)
{
	uint32_t i = s->pos[idx];
	s->nheld--;
	if (i != s->nheld) {
		s->held[i] = s->held[s->nheld];
		s->pos[s->held[i]] = i;
	}
}

/* Refuses a queued request (already out of its heap) through the callback. */
static void refuse_accepted(struct sched *s, uint32_t idx, enum sched_refusal why)
{
	struct entry *e = &s->pool[idx];
	e->st->refused[why]++;
	e->st->queued--;
	struct sched_dispatch d = describe(s, idx);
	d.replica = -1;
	entry_free(s, idx);
	s->cb.refuse(s->cb.arg, &d, why);
}

/* Picks the replica for a request of m: spare capacity, not the one that
 * just failed it when another is free, least loaded. -1 if none. */
static inline int pick_replica(const struct model *m, int avoid)
{
	uint32_t cand = m->free_rep;
	if (!(cand & (cand - 1))) /* none or one */
		return cand ? __builtin_ctz(cand) : -1;
	int best = -1, fallback = -1;
	for (; cand; cand &= cand - 1) {
		int i = __builtin_ctz(cand);
		const struct replica *r = &m->rep[i];
		if (i == avoid) {
			fallback = i;
			continue;
		}
		if (best < 0 || r->inflight < m->rep[best].inflight)
			best = i;
	}
	return best >= 0 ? best : fallback;
}

/* Dispatches idx, the head of heap hid. */
static inline __attribute__((always_inline)) void start(struct sched *s, unsigned hid, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	struct model *m = e->m;
	int r = pick_replica(m, e->last_replica);
	heap_take_head(s, hid, e);
	e->state = ST_RUNNING;
	e->replica = (int8_t)r;
	e->dispatch_us = s->now_us;
	struct replica *rp = &m->rep[r];
	if (++rp->inflight >= rp->concurrency)
		m->free_rep &= ~(1u << r);
	rp->dispatched++;
	if (!--m->free_cap) /* pick_replica chose a usable replica with spare capacity */
		cap_sync(s, m);
	s->busy++;
	held_add(s, idx);
	e->st->queued--;
	e->st->running++;
	struct sched_dispatch d = describe(s, idx);
	s->cb.dispatch(s->cb.arg, &d);
}

static void resume(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	struct model *m = &s->models[e->model];
	e->state = ST_RUNNING;
	e->paused_total_us += s->now_us - e->paused_at_us;
	e->dispatch_us += s->now_us - e->paused_at_us;
	m->rep[e->replica].paused = false;
	model_refresh(s, e->model);
	s->busy++;
	log_dbg("event=resume model=%s replica=%d", m->name, e->replica);
	struct sched_dispatch d = describe(s, idx);
	if (s->cb.resume)
		s->cb.resume(s->cb.arg, &d);
}

/* Earliest paused entry (EDF), or UINT32_MAX. */
static uint32_t best_paused(const struct sched *s)
{
	uint32_t best = UINT32_MAX;
	for (uint32_t i = 0; i < s->nheld; i++) {
		uint32_t idx = s->held[i];
		if (s->pool[idx].state != ST_PAUSED)
			continue;
		if (best == UINT32_MAX || entry_before(&s->pool[idx], &s->pool[best]))
			best = idx;
	}
	return best;
}

/* edf-preempt: an urgent request that could run now (its model has a free
 * replica, and it can still finish in time if started now) but finds every
 * slot taken is treated as about to miss: the replica running the
 * latest-deadline batch request (due after the urgent one, alone on its
 * replica, since pausing a replica freezes everything it runs) is paused
 * and its slot goes to urgent work. A prediction from the current queue
 * alone (wait for the soonest completion, or the urgent backlog on the
 * slots batch does not hold) preempted too late under bursts, when more
 * urgent requests arrive right behind (docs/scheduling.md). edf-mc: the
 * victim is the latest-deadline normal or batch request, whatever its
 * deadline (urgent work runs first). Returns true when it paused one. */
static bool try_preempt(struct sched *s)
{
	uint32_t u = UINT32_MAX;
	for (unsigned mi = 0; mi < s->nmodels; mi++) {
		const struct heap *h = &s->heaps[heap_id(mi, SLA_URGENT)];
		if (!h->n || !s->models[mi].free_cap)
			continue;
		if (u == UINT32_MAX || entry_before(&s->pool[heap_head(h)], &s->pool[u]))
			u = heap_head(h);
	}
	if (u == UINT32_MAX)
		return false;
	const struct entry *ue = &s->pool[u];
	if (s->now_us + own_est(s, ue) > ue->deadline_us)
		return false; /* too late even now: dispatch-time admission refuses it */
	uint32_t victim = UINT32_MAX;
	for (uint32_t i = 0; i < s->nheld; i++) {
		uint32_t idx = s->held[i];
		const struct entry *e = &s->pool[idx];
		/* edf-preempt: a batch request due after the urgent one; edf-mc: any
		 * normal or batch request (urgent work runs first) */
		bool victim_class = s->mc ? e->cls != SLA_URGENT : e->cls == SLA_BATCH && entry_before(ue, e);
		if (e->state != ST_RUNNING || !victim_class ||
		    s->models[e->model].rep[e->replica].inflight != 1)
			continue;
		if (victim == UINT32_MAX || entry_before(&s->pool[victim], e))
			victim = idx;
	}
	if (victim == UINT32_MAX)
		return false;
	struct entry *v = &s->pool[victim];
	struct sched_dispatch d = describe(s, victim);
	if (!s->cb.pause || s->cb.pause(s->cb.arg, &d) != 0)
		return false;
	struct model *vm = &s->models[v->model];
	v->state = ST_PAUSED;
	v->paused_at_us = s->now_us;
	vm->rep[v->replica].paused = true;
	model_refresh(s, v->model);
	s->busy--;
	v->st->preempted++;
	log_dbg("event=preempt model=%s replica=%d for_model=%s", vm->name, v->replica, s->models[ue->model].name);
	return true;
}

/* An urgent request waits whose model has a free replica: the condition
 * for preempting (try_preempt), cheap to test first. */
static inline bool urgent_may_preempt(const struct sched *s)
{
	return (s->nonempty & s->urgent_mask & s->capmask) != 0;
}

/* edf-reserve: only urgent heads while the free slots are all reserved;
 * edf-mc: urgent heads before all others. */
static inline uint64_t urgent_gate(const struct sched *s, uint64_t mask)
{
	if (s->reserve ? s->p.slots - s->busy <= s->p.reserve_urgent : (mask & s->urgent_mask) != 0)
		mask &= s->urgent_mask;
	return mask;
}

/* Gives free slots to the earliest requests that can run. Runs the
 * callbacks; nested calls from callbacks only mark that another pass is due. */
static inline __attribute__((always_inline)) void pump_body(struct sched *s)
{
	s->pumping = true;
	do {
		s->repump = false;
		while (s->busy < s->p.slots) {
			/* Heads of heaps whose model has a free replica (urgent ones
			 * only while the free slots are all reserved, or first: edf-mc). */
			uint64_t mask = s->nonempty & s->capmask;
			if (s->urgent_gate)
				mask = urgent_gate(s, mask);
			uint32_t best = UINT32_MAX;
			unsigned bhid = 0;
			if (mask) {
				bhid = (unsigned)__builtin_ctzll(mask);
				uint64_t bkey = s->heaps[bhid].top_key;
				mask &= mask - 1;
				while (mask) {
					unsigned hid = (unsigned)__builtin_ctzll(mask);
					mask &= mask - 1;
					if (s->heaps[hid].top_key < bkey) {
						bkey = s->heaps[hid].top_key;
						bhid = hid;
					}
				}
				best = heap_head(&s->heaps[bhid]);
			}
			if (s->preempt && s->nheld > s->busy) {
				uint32_t p = best_paused(s);
				if (p != UINT32_MAX && (best == UINT32_MAX ||
							(!(s->mc && s->pool[best].cls == SLA_URGENT) &&
							 entry_before(&s->pool[p], &s->pool[best])))) {
					resume(s, p);
					continue;
				}
			}
			if (best == UINT32_MAX)
				break;
			struct entry *e = &s->pool[best];
			if (s->admit && s->now_us + own_est(s, e) > e->deadline_us) {
				heap_remove(s, best);
				refuse_accepted(s, best, SCHED_REFUSE_DEADLINE_INFEASIBLE);
				continue;
			}
			start(s, bhid, best);
		}
		if (s->preempt && s->busy >= s->p.slots && urgent_may_preempt(s) && try_preempt(s))
			s->repump = true;
	} while (s->repump);
	s->pumping = false;
}

static __attribute__((noinline)) void pump_run(struct sched *s) { pump_body(s); }

static inline void pump(struct sched *s)
{
	if (s->pumping) {
		s->repump = true;
		return;
	}
	/* Every slot taken and nothing to preempt: nothing can change. */
	if (s->busy >= s->p.slots && !(s->preempt && urgent_may_preempt(s)))
		return;
	pump_run(s);
}

/* The same, with the pass inlined (sched_complete: a slot just freed). */
static inline __attribute__((always_inline)) void pump_inline(struct sched *s)
{
	if (s->pumping)
		s->repump = true;
	else
		pump_body(s);
}

/* --- arrival admission ---------------------------------------------------------- */

uint64_t sched_impl_work_ahead_us(const struct sched *s, uint64_t d, uint64_t heaps)
{
	uint64_t w = 0;
	uint64_t mask = s->nonempty & heaps;
	while (mask) {
		unsigned hid = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		const struct heap *h = &s->heaps[hid];
		uint64_t lo = s->pool[heap_head(h)].deadline_us;
		if (lo > d)
			continue;
		uint64_t span = h->max_deadline_us - lo;
		if (h->max_deadline_us <= d || !span)
			w += h->work_us;
		else if ((h->work_us | span) >> 62)
			w += (uint64_t)((double)h->work_us * (double)(d - lo) / (double)span);
		else /* the same, converted through signed integers (fewer instructions) */
			w += (uint64_t)(int64_t)((double)(int64_t)h->work_us * (double)(int64_t)(d - lo) /
						 (double)(int64_t)span);
	}
	return w;
}

/* Predicted wait for a slot of a new request, given the work queued ahead
 * of it and the remaining work of the running requests (and the soonest of
 * those to end). Never decreases as ahead grows. */
static inline uint64_t wait_est_us(const struct sched *s, uint64_t ahead, uint64_t run, uint64_t soonest)
{
	if (!ahead && s->busy < s->p.slots)
		return 0;
	uint64_t w = (ahead + run) / s->p.slots;
	if (s->busy >= s->p.slots && soonest != UINT64_MAX && w < soonest)
		w = soonest;
	return w;
}

/* Remaining work of the running requests that a new request of class cls
 * waits for (edf-preempt: an urgent one does not wait for batch, which
 * yields), and the soonest of them to end (UINT64_MAX: none). */
static inline uint64_t running_ahead_us(const struct sched *s, unsigned cls, uint64_t *soonest_out)
{
	bool skip_batch = s->preempt && cls == SLA_URGENT;
	uint64_t run = 0, soonest = UINT64_MAX;
	for (uint32_t i = 0; i < s->nheld; i++) {
		const struct entry *r = &s->pool[s->held[i]];
		if (skip_batch && r->cls == SLA_BATCH)
			continue;
		uint64_t rem = r->state == ST_PAUSED ? 0 : remaining_us(s, r);
		run += rem;
		if (rem < soonest)
			soonest = rem;
	}
	*soonest_out = soonest;
	return run;
}

/* Arrival admission of e (not yet queued): false when now + estimated wait
 * + own estimate > deadline. The work ahead of e is at most all queued
 * work, so when the wait that would give still fits, the request is admitted
 * without interpolating the heaps (the same decision, in O(1)). */
static bool admit_at_arrival(const struct sched *s, const struct entry *e)
{
	uint64_t soonest;
	uint64_t run = running_ahead_us(s, e->cls, &soonest);
	uint64_t own = own_est(s, e);
	uint64_t slack = e->deadline_us - s->now_us; /* > 0: checked by sched_submit */
	if (own <= slack && s->queued_work_us < (1ull << 50) &&
	    wait_est_us(s, s->queued_work_us, run, soonest) <= slack - own)
		return true;
	uint64_t ahead = sched_impl_work_ahead_us(s, e->deadline_us, UINT64_MAX);
	return !(s->now_us + wait_est_us(s, ahead, run, soonest) + own > e->deadline_us);
}

uint64_t sched_predict_wait_us(struct sched *s, enum sla_class cls, uint64_t deadline_us, uint64_t now_us)
{
	if ((unsigned)cls >= SLA_NCLASSES)
		return 0;
	set_now(s, now_us);
	if (s->mc)
		return sched_mc_wait_us(s, cls, deadline_us);
	uint64_t soonest;
	uint64_t run = running_ahead_us(s, cls, &soonest);
	return wait_est_us(s, sched_impl_work_ahead_us(s, deadline_us, UINT64_MAX), run, soonest);
}

/* --- requests ---------------------------------------------------------------------- */

int sched_submit(struct sched *s, const struct sched_req *r, uint64_t now_us, uint64_t *id_out,
		 enum sched_refusal *reason_out)
{
	struct model *m = model_get(s, r->model);
	if (!m || (unsigned)r->cls >= SLA_NCLASSES || r->deadline_us <= now_us)
		return -EINVAL;
	set_now(s, now_us);
	unsigned c = (unsigned)r->cls;
	enum sched_refusal why = SCHED_REFUSE_NONE;
	struct sched_class_stats *st = &m->cum.cls[c];
	st->offered++;
	if (!m->usable_ready)
		why = SCHED_REFUSE_NO_READY_REPLICA;
	else if (!m->usable)
		why = SCHED_REFUSE_BREAKER_OPEN;
	else if (st->queued >= s->p.queue_cap[c] || s->queued_total >= CONFIG_SCHED_MAX_QUEUED ||
		 !s->nfree)
		why = SCHED_REFUSE_QUEUE_FULL;
	if (why)
		goto refused;

	uint32_t idx = s->free_idx[--s->nfree];
	struct entry *e = &s->pool[idx];
	if (++e->gen == 0)
		e->gen = 1;
	e->deadline_us = r->deadline_us;
	e->arrival_us = s->now_us;
	e->paused_total_us = 0;
	e->ctx = r->ctx;
	e->st = st;
	e->m = m;
	e->fifo_key = s->arrivals++;
	e->hint_us = r->cost_hint_us;
	e->size = r->size;
	if (r->cost_hint_us | r->size)
		est_fixed(m, e);
	else
		e->work_us = m->est.ewma_us;
	e->model = (uint8_t)r->model;
	e->cls = (uint8_t)c;
	e->attempt = 0;
	e->replica = -1;
	e->last_replica = -1;

	if (s->admit && !(s->mc ? sched_mc_admit(s, e) : admit_at_arrival(s, e))) {
		entry_free(s, idx);
		why = SCHED_REFUSE_DEADLINE_INFEASIBLE;
		goto refused;
	}
	heap_push(s, idx);
	st->queued++;
	if (id_out)
		*id_out = ((uint64_t)e->gen << 32) | idx;
	if (reason_out)
		*reason_out = SCHED_REFUSE_NONE;
	pump(s);
	return 0;

refused:
	st->refused[why]++;
	if (reason_out)
		*reason_out = why;
	return -EAGAIN;
}

static struct entry *entry_by_id(const struct sched *s, uint64_t id, uint32_t *idx_out)
{
	uint32_t idx = (uint32_t)id;
	if (idx >= POOL_SIZE)
		return NULL;
	struct entry *e = &s->pool[idx];
	if (e->state == ST_FREE || e->gen != (uint32_t)(id >> 32))
		return NULL;
	*idx_out = idx;
	return e;
}

/* Takes a running/paused entry off its replica and slot. */
static inline __attribute__((always_inline)) void release(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	struct model *m = e->m;
	struct replica *rp = &m->rep[e->replica];
	bool was_paused = e->state == ST_PAUSED;
	if (was_paused) {
		e->paused_total_us += s->now_us - e->paused_at_us;
		rp->paused = false;
	} else {
		s->busy--;
	}
	if (rp->inflight)
		rp->inflight--;
	if (was_paused) {
		model_refresh(s, e->model);
	} else if (rp->usable && rp->inflight < rp->concurrency) {
		m->free_rep |= 1u << e->replica;
		if (!m->free_cap++)
			cap_sync(s, m);
	}
	held_remove(s, idx);
	e->st->running--;
}

/* SCHED_DONE_RETRY with time left: idx (released) goes back to its queue. */
static __attribute__((noinline)) void requeue(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	e->attempt++;
	e->last_replica = e->replica;
	e->replica = -1;
	e->st->retries++;
	heap_push(s, idx);
	e->st->queued++;
	pump(s);
}

int sched_complete(struct sched *s, uint64_t id, enum sched_outcome outcome, uint64_t service_us, uint64_t now_us)
{
	uint32_t idx;
	struct entry *e = entry_by_id(s, id, &idx);
	if (!e || (e->state != ST_RUNNING && e->state != ST_PAUSED))
		return -ENOENT;
	set_now(s, now_us);
	struct sched_class_stats *st = e->st;
	release(s, idx);
	if (outcome == SCHED_DONE_OK) {
		uint64_t active = service_us > e->paused_total_us ? service_us - e->paused_total_us : service_us;
		if (service_us) {
			est_add(&e->m->est, active > UINT32_MAX ? UINT32_MAX : (uint32_t)active);
			if (e->size)
				fit_add(e->m, e->size, active);
			st->service_sum_us += active;
		}
		if (s->now_us <= e->deadline_us)
			st->on_time++;
		else
			st->late++;
		count_latency(st, s->now_us - e->arrival_us);
	} else if (outcome == SCHED_DONE_RETRY && e->attempt < SCHED_MAX_RETRIES && s->now_us < e->deadline_us) {
		requeue(s, idx);
		return 0;
	} else {
		st->failed++;
	}
	entry_free(s, idx);
	pump_inline(s);
	return 0;
}

int sched_cancel(struct sched *s, uint64_t id, uint64_t now_us)
{
	uint32_t idx;
	struct entry *e = entry_by_id(s, id, &idx);
	if (!e)
		return -ENOENT;
	set_now(s, now_us);
	if (e->state == ST_QUEUED) {
		heap_remove(s, idx);
		e->st->queued--;
	} else {
		release(s, idx);
	}
	e->st->cancelled++;
	entry_free(s, idx);
	pump(s);
	return 0;
}

/* When the head of heap hid must be refused: admit policies refuse once it
 * cannot finish in time; a model without usable replicas, once its deadline
 * passed (every policy). UINT64_MAX: never. */
static uint64_t head_due_us(const struct sched *s, unsigned hid)
{
	const struct heap *h = &s->heaps[hid];
	const struct entry *e = &s->pool[heap_head(h)];
	const struct model *m = &s->models[hid / SLA_NCLASSES];
	if (s->admit) {
		uint64_t own = own_est(s, e);
		return e->deadline_us > own ? e->deadline_us - own : 0;
	}
	if (!m->usable)
		return e->deadline_us;
	return UINT64_MAX;
}

uint64_t sched_next_due_us(const struct sched *s)
{
	uint64_t due = UINT64_MAX;
	uint64_t mask = s->nonempty;
	while (mask) {
		unsigned hid = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		uint64_t d = head_due_us(s, hid);
		if (d < due)
			due = d;
	}
	/* Strictly after the moment it becomes infeasible. */
	return due == UINT64_MAX ? due : due + 1;
}

void sched_tick(struct sched *s, uint64_t now_us)
{
	set_now(s, now_us);
	uint64_t mask = s->nonempty;
	while (mask) {
		unsigned hid = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		struct heap *h = &s->heaps[hid];
		const struct model *m = &s->models[hid / SLA_NCLASSES];
		while (h->n) {
			uint32_t idx = heap_head(h);
			uint64_t due = head_due_us(s, hid);
			if (due == UINT64_MAX || s->now_us <= due)
				break;
			enum sched_refusal why = !m->usable_ready ? SCHED_REFUSE_NO_READY_REPLICA :
						 !m->usable ? SCHED_REFUSE_BREAKER_OPEN :
							      SCHED_REFUSE_DEADLINE_INFEASIBLE;
			heap_remove(s, idx);
			refuse_accepted(s, idx, why);
		}
	}
	pump(s);
}

/* --- passes for sched_models.c --------------------------------------------------- */

void sched_impl_refuse_queue(struct sched *s, int model, enum sched_refusal why)
{
	for (unsigned c = 0; c < SLA_NCLASSES; c++) {
		struct heap *h = &s->heaps[heap_id((unsigned)model, c)];
		while (h->n) {
			uint32_t idx = heap_head(h);
			heap_remove(s, idx);
			refuse_accepted(s, idx, why);
		}
	}
}

/* Re-keys every queued request under the current policy's order (fifo: arrival; the edf
 * family: deadline) and restores each heap (Floyd's heapify over its array, the front
 * entry folded into it first). */
static __attribute__((cold)) void heaps_rekey(struct sched *s)
{
	for (unsigned hid = 0; hid < NHEAPS; hid++) {
		struct heap *h = &s->heaps[hid];
		if (!h->n)
			continue;
		if (h->front) { /* the front entry joins the array (its key is set below) */
			h->id[h->an++] = h->top_id;
			for (; h->key_init < h->an + HEAP_D; h->key_init++)
				h->key[h->key_init] = UINT64_MAX;
		}
		h->front = 0;
		for (uint32_t i = 0; i < h->an; i++) {
			h->key[i] = entry_key(s, &s->pool[h->id[i]]);
			s->pos[h->id[i]] = i;
		}
		for (uint32_t i = h->an / HEAP_D + 1; i-- > 0;)
			if (i < h->an)
				heap_down(s, h, i);
		heap_top_from_array(h);
	}
}

__attribute__((cold)) void sched_impl_policy_switched(struct sched *s, bool was_fifo)
{
	if (s->fifo != was_fifo)
		heaps_rekey(s);
	/* Nothing pauses under the new policy and nothing would resume what is paused: it
	 * runs again now (it held its replica all along; busy may exceed the slots briefly). */
	for (uint32_t i = 0; !s->preempt && i < s->nheld; i++)
		if (s->pool[s->held[i]].state == ST_PAUSED)
			resume(s, s->held[i]);
	pump(s);
}

void sched_impl_refresh(struct sched *s, unsigned mi) { model_refresh(s, mi); }
void sched_impl_pump(struct sched *s) { pump(s); }
