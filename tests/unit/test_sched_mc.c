/* tests/unit/test_sched_mc.c - edf-mc: urgent work as if alone, lower classes admitted against the capacity urgent work leaves, predicted waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/infer/sched.h"

#define MS 1000ull
#define T0 (1000 * MS)

struct rec {
	int dispatched[64];          /* tags in dispatch order */
	uint64_t ids[64];            /* id by tag */
	int nd;
	int paused[64];
	int np;
	int refused;
};

static void on_dispatch(void *arg, const struct sched_dispatch *d)
{
	struct rec *r = arg;
	int tag = (int)(intptr_t)d->ctx;
	r->ids[tag] = d->id;
	if (d->attempt == 0 && r->nd < 64)
		r->dispatched[r->nd++] = tag;
}

static void on_refuse(void *arg, const struct sched_dispatch *d, enum sched_refusal why)
{
	struct rec *r = arg;
	(void)d;
	(void)why;
	r->refused++;
}

static int on_pause(void *arg, const struct sched_dispatch *d)
{
	struct rec *r = arg;
	r->paused[r->np++] = (int)(intptr_t)d->ctx;
	return 0;
}

static void on_resume(void *arg, const struct sched_dispatch *d)
{
	(void)arg;
	(void)d;
}

/* One slot; models "u" (urgent), "n" (normal), "b" (batch) with two replicas
 * each; b's requests are estimated at 200 ms, the others' at 10 ms. */
static struct sched *mk(struct rec *r, enum sched_policy pol)
{
	memset(r, 0, sizeof(*r));
	struct sched_params p;
	sched_params_default(&p, 1);
	p.policy = pol;
	struct sched_callbacks cb = { on_dispatch, on_refuse, on_pause, on_resume, r };
	struct sched *s = sched_create(&p, &cb);
	assert_non_null(s);
	const char *names[] = { "u", "n", "b" };
	for (int m = 0; m < 3; m++) {
		assert_int_equal(sched_model_add(s, names[m], m == 2 ? 200 * MS : 10 * MS), m);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(sched_replica_add(s, m, i, 1), 0);
			assert_int_equal(sched_replica_set_ready(s, m, i, true, T0), 0);
		}
	}
	return s;
}

static int submit(struct sched *s, int model, enum sla_class c, uint64_t now, uint64_t deadline_rel, int tag)
{
	struct sched_req q = { .model = model, .cls = c, .deadline_us = now + deadline_rel, .ctx = (void *)(intptr_t)tag };
	return sched_submit(s, &q, now, NULL, NULL);
}

/* A running normal request is paused for an urgent one under edf-mc; under
 * edf-preempt only batch requests are. */
static void urgent_preempts_normal(void **state)
{
	(void)state;
	for (int pol = 0; pol < 2; pol++) {
		struct rec r;
		struct sched *s = mk(&r, pol ? SCHED_EDF_MC : SCHED_EDF_PREEMPT);
		assert_int_equal(submit(s, 1, SLA_NORMAL, T0, 1000 * MS, 1), 0);
		assert_int_equal(r.nd, 1);
		assert_int_equal(submit(s, 0, SLA_URGENT, T0 + 1 * MS, 100 * MS, 2), 0);
		if (pol) {
			assert_int_equal(r.np, 1);
			assert_int_equal(r.paused[0], 1);
			assert_int_equal(r.nd, 2);
			assert_int_equal(r.dispatched[1], 2);
		} else {
			assert_int_equal(r.np, 0);
			assert_int_equal(r.nd, 1);
		}
		sched_destroy(s);
	}
}

/* An urgent request runs before a normal one due earlier (edf-mc), not
 * after it (edf-preempt, plain EDF). */
static void urgent_runs_before_earlier_normal(void **state)
{
	(void)state;
	for (int pol = 0; pol < 2; pol++) {
		struct rec r;
		struct sched *s = mk(&r, pol ? SCHED_EDF_MC : SCHED_EDF_ADMIT);
		assert_int_equal(submit(s, 0, SLA_URGENT, T0, 1000 * MS, 1), 0); /* holds the slot */
		assert_int_equal(submit(s, 1, SLA_NORMAL, T0, 50 * MS, 2), 0);
		assert_int_equal(submit(s, 0, SLA_URGENT, T0, 100 * MS, 3), 0);
		assert_int_equal(sched_complete(s, r.ids[1], SCHED_DONE_OK, 5 * MS, T0 + 5 * MS), 0);
		assert_int_equal(r.nd, 2);
		assert_int_equal(r.dispatched[1], pol ? 3 : 2);
		sched_destroy(s);
	}
}

/* Urgent admission ignores lower-class work (it would preempt it): with a
 * batch request of 200 ms running, an urgent request with 50 ms left is
 * admitted under edf-mc and refused under edf-admit. */
static void urgent_admitted_as_if_alone(void **state)
{
	(void)state;
	for (int pol = 0; pol < 2; pol++) {
		struct rec r;
		struct sched *s = mk(&r, pol ? SCHED_EDF_MC : SCHED_EDF_ADMIT);
		assert_int_equal(submit(s, 2, SLA_BATCH, T0, 10000 * MS, 10), 0);
		uint64_t w = sched_predict_wait_us(s, SLA_URGENT, T0 + 50 * MS, T0);
		int rc = submit(s, 0, SLA_URGENT, T0, 50 * MS, 1);
		if (pol) {
			assert_int_equal(rc, 0);
			assert_int_equal(w, 0);
			assert_int_equal(r.np, 1); /* the running batch request yields */
		} else {
			assert_int_equal(rc, -EAGAIN);
			assert_true(w > 50 * MS);
		}
		sched_destroy(s);
	}
}

/* Feeds a steady urgent load of about 0.6 slots for 30 s (10 ms requests
 * every 16 ms, completed at once) and returns the time reached. */
static uint64_t urgent_stream(struct sched *s, struct rec *r, uint64_t now)
{
	for (int i = 0; i < 30000 / 16; i++) {
		assert_int_equal(submit(s, 0, SLA_URGENT, now, 100 * MS, 1), 0);
		assert_int_equal(sched_complete(s, r->ids[1], SCHED_DONE_OK, 10 * MS, now + 10 * MS), 0);
		now += 16 * MS;
	}
	return now;
}

/* Lower classes are admitted against what urgent work leaves: after a
 * measured urgent load, a batch request whose deadline fits the running
 * work on a whole slot, but not on what urgent work leaves of it, is
 * refused at arrival under edf-mc and admitted under edf-admit. */
static void lower_class_counts_urgent_load(void **state)
{
	(void)state;
	for (int pol = 0; pol < 2; pol++) {
		struct rec r;
		struct sched *s = mk(&r, pol ? SCHED_EDF_MC : SCHED_EDF_ADMIT);
		uint64_t now = urgent_stream(s, &r, T0);
		/* a normal request of model b (estimated 200 ms) runs */
		assert_int_equal(submit(s, 2, SLA_NORMAL, now, 1000 * MS, 10), 0);
		uint64_t w = sched_predict_wait_us(s, SLA_BATCH, now + 300 * MS, now);
		int rc = submit(s, 1, SLA_BATCH, now, 300 * MS, 2);
		if (pol) {
			/* 200 ms / (1 - 0.8 x 0.57) slots = 367 ms (the urgent
			 * load's EWMA has reached 0.57 of its 0.625) */
			assert_in_range(w, 330 * MS, 400 * MS);
			assert_int_equal(rc, -EAGAIN);
		} else {
			assert_int_equal(w, 200 * MS);
			assert_int_equal(rc, 0);
		}
		/* with time enough it is admitted either way */
		assert_int_equal(submit(s, 1, SLA_BATCH, now, 2000 * MS, 3), 0);
		sched_destroy(s);
	}
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(urgent_preempts_normal),
		cmocka_unit_test(urgent_runs_before_earlier_normal),
		cmocka_unit_test(urgent_admitted_as_if_alone),
		cmocka_unit_test(lower_class_counts_urgent_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
