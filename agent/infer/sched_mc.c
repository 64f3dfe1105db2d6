/* agent/infer/sched_mc.c - edf-mc, criticality-aware admission: urgent requests admitted as if alone, the other classes against the capacity the classes above them leave (measured online). */
#include <stdbool.h>
#include <stdint.h>

#include "agent/infer/sched_impl.h"

/* Arrivals are summed per class over windows of MC_WIN_US, and the load is
 * an EWMA of the windows with weight MC_LOAD_WEIGHT (a time constant of
 * 12.8 s); lower classes count MC_LOAD_SHARE of the load of the classes
 * above them as taken (docs/scheduling.md: the designs measured). */
#define MC_WIN_US 100000u
#define MC_LOAD_WEIGHT (1.0 / 128.0)
#define MC_LOAD_SHARE 0.8

/* Work queued in every model's urgent heap. */
static inline uint64_t urgent_queued_us(const struct sched *s)
{
	uint64_t w = 0;
	for (uint64_t mask = s->nonempty & s->urgent_mask; mask; mask &= mask - 1)
		w += s->heaps[__builtin_ctzll(mask)].work_us;
	return w;
}

/* Closes the load windows that ended before now (an idle stretch decays
 * the load as empty windows would, in one step past 64 of them). */
static __attribute__((noinline)) void load_roll(struct sched *s)
{
	if (!s->load_win_end_us) {
		s->load_win_end_us = s->now_us + MC_WIN_US;
		return;
	}
	while (s->now_us >= s->load_win_end_us) {
		for (int c = 0; c < SLA_NCLASSES; c++) {
			double r = (double)s->load_acc_us[c] / (double)MC_WIN_US;
			s->load[c] += MC_LOAD_WEIGHT * (r - s->load[c]);
			s->load_acc_us[c] = 0;
		}
		s->load_win_end_us += MC_WIN_US;
		if (s->now_us >= s->load_win_end_us + 64ull * MC_WIN_US) {
			uint64_t skip = (s->now_us - s->load_win_end_us) / MC_WIN_US;
			double keep = 1.0;
			for (uint64_t i = 0; i < skip && keep > 1e-9; i++)
				keep *= 1.0 - MC_LOAD_WEIGHT;
			for (int c = 0; c < SLA_NCLASSES; c++)
				s->load[c] *= keep;
			s->load_win_end_us += skip * MC_WIN_US;
		}
	}
	double above = 0;
	for (int c = 0; c < SLA_NCLASSES; c++) {
		s->load_above[c] = above;
		above += MC_LOAD_SHARE * s->load[c];
	}
}

/* Counts the estimated work of an arrival of class cls. */
static inline void load_note(struct sched *s, unsigned cls, uint32_t work_us)
{
	if (s->now_us >= s->load_win_end_us)
		load_roll(s);
	s->load_acc_us[cls] += work_us;
}

/* Predicted wait of a request of class cls with deadline d under edf-mc.
 * Urgent: as if alone - urgent requests run before any other class and
 * preempt them, so it waits for the urgent work queued ahead of it and the
 * running urgent work only.
 * Normal and batch: everything queued ahead of it (every urgent request,
 * and the lower-class work due before it) and all running work, served by
 * the capacity the classes above it are predicted not to need
 * (MC_LOAD_SHARE of their measured load). UINT64_MAX: no capacity left. */
uint64_t sched_mc_wait_us(const struct sched *s, unsigned cls, uint64_t d)
{
	uint64_t run = 0, soonest = UINT64_MAX;
	unsigned busy = 0;
	for (uint32_t i = 0; i < s->nheld; i++) {
		const struct entry *r = &s->pool[s->held[i]];
		if (r->state == ST_PAUSED || (cls == SLA_URGENT && r->cls != SLA_URGENT))
			continue;
		uint64_t rem = remaining_us(s, r);
		run += rem;
		busy++;
		if (rem < soonest)
			soonest = rem;
	}
	uint64_t ahead;
	if (cls == SLA_URGENT)
		ahead = sched_impl_work_ahead_us(s, d, s->urgent_mask);
	else
		ahead = sched_impl_work_ahead_us(s, d, ~s->urgent_mask) + urgent_queued_us(s);
	if (!ahead && busy < s->p.slots)
		return 0;
	double cap = (double)s->p.slots - s->load_above[cls];
	if (cap < 0.05 * (double)s->p.slots)
		return UINT64_MAX;
	double w = (double)(ahead + run) / cap;
	if (busy >= s->p.slots && soonest != UINT64_MAX && w < (double)soonest)
		w = (double)soonest;
	return w > 1e18 ? UINT64_MAX : (uint64_t)w;
}

/* Arrival admission under edf-mc. First an upper bound in O(slots): all
 * queued work and the whole estimates of the running requests, on the
 * capacity left for its class; admitted at once when that fits. Else the
 * wait from the work ahead of it (mc_wait_us). */
bool sched_mc_admit(struct sched *s, const struct entry *e)
{
	load_note(s, e->cls, e->work_us);
	uint64_t own = own_est(s, e);
	uint64_t slack = e->deadline_us - s->now_us;
	if (own > slack)
		return false;
	uint64_t run = 0;
	for (uint32_t i = 0; i < s->nheld; i++)
		run += s->pool[s->held[i]].work_us;
	double cap = (double)s->p.slots - s->load_above[e->cls];
	if ((double)(s->queued_work_us + run) <= (double)(slack - own) * cap)
		return true;
	uint64_t w = sched_mc_wait_us(s, e->cls, e->deadline_us);
	return w != UINT64_MAX && w <= slack - own;
}
