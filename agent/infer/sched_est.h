/* agent/infer/sched_est.h - the scheduler's service-time estimator per model: a ring of the last SCHED_EST_RING completions, its SCHED_EST_PCT percentile and an EWMA. */
#ifndef BERTH_SCHED_EST_H
#define BERTH_SCHED_EST_H

/*
 * Header-only on purpose: est_add runs on every completion, inside the
 * decision that bench-sched-cost counts in instructions, and a call into
 * another file would add to it. Private to agent/infer/sched*.c.
 */

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "agent/infer/sched_fit.h"

#include "agent/infer/sched.h"

/* Index of the SCHED_EST_PCT percentile among n sorted samples, and how
 * many samples of a full ring lie at or above it. */
#define EST_PIDX(n) ((((n) - 1) * SCHED_EST_PCT + 50) / 100)
#define EST_TOPK (SCHED_EST_RING - EST_PIDX(SCHED_EST_RING))
#define EST_TOPMAX 12                /* at most this many of the largest samples tracked */
_Static_assert(SCHED_EST_RING == 64, "the estimator's slot mask is 64 bits");
_Static_assert(EST_TOPK >= 1 && EST_TOPK < EST_TOPMAX, "EST_TOPK..EST_TOPMAX largest samples tracked");

struct sched_est {
	uint32_t ring[SCHED_EST_RING];   /* arrival order of samples */
	uint32_t sorted[SCHED_EST_RING]; /* while the ring fills: the same samples, ascending */
	uint64_t top_mask;               /* full ring: the slots of the ntop largest samples */
	uint64_t top[EST_TOPMAX];        /* sample << 8 | slot of those, descending */
	uint32_t ntop;                   /* EST_TOPK..EST_TOPMAX */
	uint32_t n;
	uint32_t head;                   /* next ring slot to overwrite */
	uint32_t ewma_us;
	uint32_t init_us;
	uint32_t est_us;                 /* cached estimate of one request */
	struct sched_fit fit;            /* service time against size (sched_fit.h) */
};

static inline void est_init(struct sched_est *e, uint32_t init_us)
{
	memset(e, 0, sizeof(*e));
	e->init_us = init_us ? init_us : SCHED_EST_INITIAL_US;
	e->ewma_us = e->init_us;
	e->est_us = 0;
}

/* First index of a[0..n) whose value is >= v (n when none), without
 * branches on the data. */
static inline uint32_t sorted_find(const uint32_t *a, uint32_t n, uint32_t v)
{
	if (!n)
		return 0;
	const uint32_t *base = a;
	while (n > 1) {
		uint32_t half = n / 2;
		base = base[half] < v ? base + half : base;
		n -= half;
	}
	return (uint32_t)(base - a) + (*base < v);
}

/* The percentile of a full ring is its EST_TOPK-th largest sample, so only
 * the largest samples are tracked: top[0..ntop) holds (sample << 8 | slot)
 * in descending order, EST_TOPK <= ntop <= EST_TOPMAX, and every other
 * sample is no larger than any of them. Most samples enter and leave below
 * them and cost a compare or two; one entering above the smallest of them
 * joins them (the smallest drops out when there are EST_TOPMAX); one of
 * them leaving just leaves, until fewer than EST_TOPK remain and a scan of
 * the ring takes the largest of the others back up to EST_TOPMAX. */
static inline uint64_t est_key(const struct sched_est *e, uint32_t slot)
{
	return (uint64_t)e->ring[slot] << 8 | slot;
}

/* Tracks the largest untracked samples until EST_TOPMAX are tracked. Each
 * one is no larger than any tracked one, so they go behind them. */
static __attribute__((noinline, unused)) void est_top_refill(struct sched_est *e)
{
	uint64_t *t = e->top;
	uint32_t lo = e->ntop, n = lo;
	for (uint64_t cand = ~e->top_mask; cand; cand &= cand - 1) {
		uint64_t k = est_key(e, (uint32_t)__builtin_ctzll(cand));
		uint32_t p;
		if (n < EST_TOPMAX)
			p = n++;
		else if (k > t[EST_TOPMAX - 1])
			p = EST_TOPMAX - 1; /* the smallest drops out */
		else
			continue;
		while (p > lo && t[p - 1] < k) {
			t[p] = t[p - 1];
			p--;
		}
		t[p] = k;
	}
	for (uint32_t q = lo; q < n; q++)
		e->top_mask |= 1ull << (t[q] & 0xff);
	e->ntop = n;
}

/* Full ring: sample us replaces the one in slot h. */
static inline void est_replace(struct sched_est *e, uint32_t h, uint32_t us)
{
	uint64_t *t = e->top;
	uint64_t bit = 1ull << h;
	if (e->top_mask & bit) { /* the leaving sample is tracked: drop it */
		uint64_t old = est_key(e, h);
		uint32_t p = 0;
		while (t[p] != old)
			p++;
		uint32_t n = --e->ntop;
		for (; p < n; p++)
			t[p] = t[p + 1];
		e->top_mask &= ~bit;
	}
	e->ring[h] = us;
	uint64_t k = (uint64_t)us << 8 | h;
	uint32_t n = e->ntop;
	if (k > t[n - 1]) { /* ntop >= EST_TOPK - 1 >= 1 here */
		if (n == EST_TOPMAX) {
			e->top_mask &= ~(1ull << (t[n - 1] & 0xff));
			n--;
		}
		uint32_t p = n;
		while (p > 0 && t[p - 1] < k) {
			t[p] = t[p - 1];
			p--;
		}
		t[p] = k;
		e->top_mask |= bit;
		e->ntop = n + 1;
	} else if (n < EST_TOPK) {
		est_top_refill(e);
	}
}

/* Adds a completion's service time. While the ring fills, the samples are
 * also kept sorted; once it is full the oldest sample leaves as the new one
 * enters (est_replace). */
static inline void est_add(struct sched_est *e, uint32_t us)
{
	if (e->n == SCHED_EST_RING) {
		est_replace(e, e->head, us);
		e->head = (e->head + 1) % SCHED_EST_RING;
		e->ewma_us = (uint32_t)(((uint64_t)e->ewma_us * 7 + us) / 8);
		e->est_us = (uint32_t)(e->top[EST_TOPK - 1] >> 8);
		return;
	}
	uint32_t *a = e->sorted;
	uint32_t i = sorted_find(a, e->n, us);
	memmove(&a[i + 1], &a[i], (e->n - i) * sizeof(uint32_t));
	a[i] = us;
	e->n++;
	e->ring[e->head] = us;
	e->head = (e->head + 1) % SCHED_EST_RING;
	if (e->n == 1)
		e->ewma_us = us;
	else
		e->ewma_us = (uint32_t)(((uint64_t)e->ewma_us * 7 + us) / 8);
	if (e->n >= SCHED_EST_MIN_SAMPLES)
		e->est_us = a[EST_PIDX(e->n)];
	else
		e->est_us = 0;
	if (e->n == SCHED_EST_RING) {
		e->top_mask = 0;
		e->ntop = 0;
		est_top_refill(e);
	}
}

#endif
