/* tests/unit/test_sched_fit.c - the size-aware service-time fit: linear, noisy and size-free series, alone and inside the scheduler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "agent/base/log.h"
#include "agent/infer/sched.h"
#include "agent/infer/sched_fit.h"

#define MS 1000ull

/* A deterministic generator (the tests must not depend on libc's rand). */
static uint32_t lcg(uint32_t *x)
{
	*x = *x * 1664525u + 1013904223u;
	return *x >> 8;
}

/* Exact line: y = 4000 + 10 x. The fit recovers it and is usable. */
static void fit_recovers_a_line(void **state)
{
	(void)state;
	struct sched_fit f;
	sched_fit_init(&f);
	uint32_t r = 1;
	for (int i = 0; i < 15; i++)
		sched_fit_add(&f, 100 + lcg(&r) % 3000, 4000 + 10 * (100 + i));
	/* sizes and times unrelated for the first 15: still below the minimum weight */
	assert_false(sched_fit_usable(&f));
	sched_fit_init(&f);
	for (int i = 0; i < 200; i++) {
		uint32_t x = 100 + lcg(&r) % 3000;
		sched_fit_add(&f, x, 4000 + 10 * x);
		if (i + 1 < (int)SCHED_FIT_MIN_WEIGHT)
			assert_false(sched_fit_usable(&f));
	}
	assert_true(sched_fit_usable(&f));
	assert_true(fabs(f.b - 10.0) < 1e-6);
	assert_true(fabs(f.a - 4000.0) < 1e-2);
	assert_true(f.r2 > 0.999999);
	assert_in_range(sched_fit_mean_us(&f, 1000), 13999, 14001);
	/* no residuals: the upper estimate is the line (within the quantile's start-up) */
	assert_in_range(sched_fit_upper_us(&f, 1000), 13999, 14100);
}

/* y = 2000 + 5 x + noise uniform in [0, 8000): slope and intercept within a
 * few percent; the own estimate sits near the line's 90th percentile. */
static void fit_tracks_a_noisy_line(void **state)
{
	(void)state;
	struct sched_fit f;
	sched_fit_init(&f);
	uint32_t r = 7;
	for (int i = 0; i < 5000; i++) {
		uint32_t x = lcg(&r) % 4000;
		sched_fit_add(&f, x, 2000 + 5 * x + lcg(&r) % 8000);
	}
	assert_true(sched_fit_usable(&f));
	assert_true(fabs(f.b - 5.0) < 0.5);
	assert_true(fabs(f.a - 6000.0) < 1000.0); /* 2000 + the noise's mean */
	assert_true(f.r2 > 0.5 && f.r2 < 0.9);
	uint32_t mean = sched_fit_mean_us(&f, 2000), up = sched_fit_upper_us(&f, 2000);
	assert_in_range(mean, 15000, 17000);
	/* the 90th percentile of the noise is 7200, 3200 above its mean */
	assert_in_range(up - mean, 2200, 4200);
	/* the share of samples above the own estimate is near 10 % */
	int above = 0;
	for (int i = 0; i < 2000; i++) {
		uint32_t x = lcg(&r) % 4000;
		above += 2000 + 5 * x + lcg(&r) % 8000 > sched_fit_upper_us(&f, x);
	}
	assert_in_range(above, 100, 350);
}

/* Service time independent of size: the fit explains nothing and is not used. */
static void fit_rejects_size_free_series(void **state)
{
	(void)state;
	struct sched_fit f;
	sched_fit_init(&f);
	uint32_t r = 3;
	for (int i = 0; i < 3000; i++)
		sched_fit_add(&f, lcg(&r) % 4000, 10000 + lcg(&r) % 5000);
	assert_false(sched_fit_usable(&f));
	assert_true(f.r2 < SCHED_FIT_MIN_R2);
	/* one size only: no slope to fit */
	sched_fit_init(&f);
	for (int i = 0; i < 100; i++)
		sched_fit_add(&f, 512, 10000 + (uint32_t)i);
	assert_false(sched_fit_usable(&f));
}

/* The fit forgets: after the service time doubles, it follows within a few
 * effective windows. */
static void fit_follows_a_change(void **state)
{
	(void)state;
	struct sched_fit f;
	sched_fit_init(&f);
	uint32_t r = 11;
	for (int i = 0; i < 1000; i++) {
		uint32_t x = lcg(&r) % 2000;
		sched_fit_add(&f, x, 1000 + 4 * x);
	}
	for (int i = 0; i < 2000; i++) {
		uint32_t x = lcg(&r) % 2000;
		sched_fit_add(&f, x, 2000 + 8 * x);
	}
	assert_true(sched_fit_usable(&f));
	assert_true(fabs(f.b - 8.0) < 0.1);
}

/* --- inside the scheduler ------------------------------------------------------ */

struct run {
	struct sched *s;
	uint64_t last_id;
	int dispatched, refused;
};

static void on_dispatch(void *arg, const struct sched_dispatch *d)
{
	struct run *r = arg;
	r->last_id = d->id;
	r->dispatched++;
}

static void on_refuse(void *arg, const struct sched_dispatch *d, enum sched_refusal why)
{
	struct run *r = arg;
	(void)d;
	(void)why;
	r->refused++;
}

static struct sched *mk(struct run *r, enum sched_policy pol)
{
	struct sched_params p;
	sched_params_default(&p, 1);
	p.policy = pol;
	struct sched_callbacks cb = { .dispatch = on_dispatch, .refuse = on_refuse, .arg = r };
	struct sched *s = sched_create(&p, &cb);
	assert_non_null(s);
	assert_int_equal(sched_model_add(s, "m", 0), 0);
	assert_int_equal(sched_replica_add(s, 0, 0, 1), 0);
	assert_int_equal(sched_replica_set_ready(s, 0, 0, true, 0), 0);
	r->s = s;
	return s;
}

/* Runs one request of the given size taking svc_us, alone, from now. */
static uint64_t run_one(struct run *r, uint64_t now, uint32_t size, uint32_t svc_us)
{
	struct sched_req q = { .model = 0, .cls = SLA_NORMAL, .deadline_us = now + 10000 * MS, .size = size };
	uint64_t id;
	assert_int_equal(sched_submit(r->s, &q, now, &id, NULL), 0);
	assert_int_equal(r->last_id, id);
	assert_int_equal(sched_complete(r->s, id, SCHED_DONE_OK, svc_us, now + svc_us), 0);
	return now + svc_us;
}

/* Completions with sizes make the estimate follow the size; a request
 * without a size keeps the size-blind percentile. */
static void scheduler_estimate_follows_size(void **state)
{
	(void)state;
	struct run r = { 0 };
	struct sched *s = mk(&r, SCHED_EDF_ADMIT);
	uint64_t now = 1000 * MS;
	uint32_t x = 1;
	for (int i = 0; i < 200; i++) {
		uint32_t size = 100 + lcg(&x) % 3000;
		now = run_one(&r, now, size, 3000 + 10 * size);
	}
	uint32_t small = sched_estimate_size_us(s, 0, 200), big = sched_estimate_size_us(s, 0, 3000);
	assert_in_range(small, 4900, 5300);
	assert_in_range(big, 32900, 33300);
	/* the size-blind estimate: the ring's p90, between the two */
	uint32_t blind = sched_estimate_size_us(s, 0, 0);
	assert_int_equal(blind, sched_estimate_us(s, 0));
	assert_true(blind > small && blind < big + 1000);
	/* Admission uses it: with 20 ms left, a small request is admitted and a
	 * big one refused at arrival. */
	struct sched_req q = { .model = 0, .cls = SLA_URGENT, .deadline_us = now + 20 * MS, .size = 200 };
	uint64_t id;
	enum sched_refusal why;
	assert_int_equal(sched_submit(s, &q, now, &id, &why), 0);
	assert_int_equal(sched_complete(s, id, SCHED_DONE_OK, 5000, now + 5 * MS), 0);
	now += 5 * MS;
	q.deadline_us = now + 20 * MS;
	q.size = 3000;
	assert_int_equal(sched_submit(s, &q, now, &id, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_DEADLINE_INFEASIBLE);
	sched_destroy(s);
}

/* Sizes that say nothing about the time: the scheduler falls back to the
 * size-blind percentile for every size. */
static void scheduler_falls_back_without_correlation(void **state)
{
	(void)state;
	struct run r = { 0 };
	struct sched *s = mk(&r, SCHED_EDF_ADMIT);
	uint64_t now = 1000 * MS;
	uint32_t x = 5;
	for (int i = 0; i < 300; i++)
		now = run_one(&r, now, 1 + lcg(&x) % 5000, 8000 + lcg(&x) % 4000);
	uint32_t blind = sched_estimate_us(s, 0);
	assert_true(blind >= 10000 && blind <= 12000);
	assert_int_equal(sched_estimate_size_us(s, 0, 10), blind);
	assert_int_equal(sched_estimate_size_us(s, 0, 5000), blind);
	sched_destroy(s);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fit_recovers_a_line),
		cmocka_unit_test(fit_tracks_a_noisy_line),
		cmocka_unit_test(fit_rejects_size_free_series),
		cmocka_unit_test(fit_follows_a_change),
		cmocka_unit_test(scheduler_estimate_follows_size),
		cmocka_unit_test(scheduler_falls_back_without_correlation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
