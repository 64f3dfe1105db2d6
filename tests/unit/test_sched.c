/* tests/unit/test_sched.c - the EDF scheduler: order, admission, estimator, caps, slots, replicas, policies, in virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/infer/sched.h"
#include "ports/sim/sim.h"

#define MS 1000ull
#define T0 (1000 * MS)   /* test time origin */

/* What the callbacks saw, in order. */
struct ev {
	char kind;               /* 'D' dispatch, 'R' refuse, 'P' pause, 'U' resume */
	int tag;                 /* ctx as an int */
	int replica;
	enum sched_refusal why;
	uint64_t id;
	uint64_t at_us;
};

struct rec {
	struct ev ev[64];
	int n;
	int complete_in_dispatch; /* re-entrancy test: fail the transfer at once */
	struct sched *s;
};

static void on_dispatch(void *arg, const struct sched_dispatch *d)
{
	struct rec *r = arg;
	assert_true(r->n < 64);
	r->ev[r->n++] = (struct ev){ 'D', (int)(intptr_t)d->ctx, d->replica, 0, d->id, d->now_us };
	if (r->complete_in_dispatch) {
		r->complete_in_dispatch--;
		assert_int_equal(sched_complete(r->s, d->id, SCHED_DONE_FAILED, 0, d->now_us), 0);
	}
}

static void on_refuse(void *arg, const struct sched_dispatch *d, enum sched_refusal why)
{
	struct rec *r = arg;
	assert_true(r->n < 64);
	r->ev[r->n++] = (struct ev){ 'R', (int)(intptr_t)d->ctx, d->replica, why, d->id, d->now_us };
}

static int on_pause(void *arg, const struct sched_dispatch *d)
{
	struct rec *r = arg;
	r->ev[r->n++] = (struct ev){ 'P', (int)(intptr_t)d->ctx, d->replica, 0, d->id, d->now_us };
	return 0;
}

static void on_resume(void *arg, const struct sched_dispatch *d)
{
	struct rec *r = arg;
	r->ev[r->n++] = (struct ev){ 'U', (int)(intptr_t)d->ctx, d->replica, 0, d->id, d->now_us };
}

/* Sequence of "D1 D3 R2 ..." for compact assertions. */
static const char *trail(const struct rec *r)
{
	static char buf[512];
	buf[0] = '\0';
	for (int i = 0; i < r->n; i++) {
		char one[16];
		snprintf(one, sizeof(one), "%s%c%d", i ? " " : "", r->ev[i].kind, r->ev[i].tag);
		strcat(buf, one);
	}
	return buf;
}

static uint64_t id_of(const struct rec *r, char kind, int tag)
{
	for (int i = 0; i < r->n; i++)
		if (r->ev[i].kind == kind && r->ev[i].tag == tag)
			return r->ev[i].id;
	fail_msg("no %c%d in %s", kind, tag, trail(r));
	return 0;
}

static struct sched *mk(struct rec *r, enum sched_policy pol, unsigned slots, unsigned reserve)
{
	struct sched_params p;
	sched_params_default(&p, slots);
	p.policy = pol;
	p.reserve_urgent = reserve;
	struct sched_callbacks cb = { on_dispatch, on_refuse, on_pause, on_resume, r };
	memset(r, 0, sizeof(*r));
	r->s = sched_create(&p, &cb);
	assert_non_null(r->s);
	return r->s;
}

/* Model with n ready replicas of concurrency 1. */
static int mk_model(struct sched *s, const char *name, int n)
{
	int m = sched_model_add(s, name, 0);
	assert_true(m >= 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(sched_replica_add(s, m, i, 1), 0);
		assert_int_equal(sched_replica_set_ready(s, m, i, true, T0), 0);
	}
	return m;
}

static int submit(struct sched *s, int model, enum sla_class c, int tag, uint64_t now, uint64_t deadline_rel_ms,
		  uint32_t hint_ms, enum sched_refusal *why)
{
	struct sched_req rq = {
		.model = model,
		.cls = c,
		.deadline_us = now + deadline_rel_ms * MS,
		.cost_hint_us = hint_ms * (uint32_t)MS,
		.ctx = (void *)(intptr_t)tag,
	};
	enum sched_refusal w = SCHED_REFUSE_NONE;
	int rc = sched_submit(s, &rq, now, NULL, &w);
	if (why)
		*why = w;
	return rc;
}

static void done(struct rec *r, int tag, uint64_t now, uint64_t service_ms)
{
	assert_int_equal(sched_complete(r->s, id_of(r, 'D', tag), SCHED_DONE_OK, service_ms * MS, now), 0);
}

static int setup(void **state)
{
	sim_reset();
	log_set_level(LOG_LEVEL_WRN);
	static struct rec r;
	*state = &r;
	return 0;
}

static int teardown(void **state)
{
	struct rec *r = *state;
	sched_destroy(r->s);
	r->s = NULL;
	return 0;
}

/* ------------------------------------------------------------------------- */

static void names_parse_both_ways(void **state)
{
	(void)state;
	for (int p = 0; p < SCHED_NPOLICIES; p++)
		assert_int_equal(sched_policy_parse(sched_policy_name((enum sched_policy)p)), p);
	assert_int_equal(sched_policy_parse("lifo"), -EINVAL);
	assert_string_equal(sched_refusal_name(SCHED_REFUSE_DEADLINE_INFEASIBLE), "deadline_infeasible");
	assert_string_equal(sched_refusal_name(SCHED_REFUSE_BREAKER_OPEN), "breaker_open");
	assert_int_equal(sla_class_parse("batch", strlen("batch"), false), SLA_BATCH);
	assert_int_equal(sla_class_parse("gold", strlen("gold"), false), -EINVAL);
}

static void bad_params_are_refused(void **state)
{
	(void)state;
	struct rec r;
	struct sched_params p;
	struct sched_callbacks cb = { on_dispatch, on_refuse, NULL, NULL, &r };
	sched_params_default(&p, 2);
	p.slots = 0;
	assert_null(sched_create(&p, &cb));
	sched_params_default(&p, 2);
	p.policy = SCHED_EDF_RESERVE;
	p.reserve_urgent = 2;
	assert_null(sched_create(&p, &cb));
	sched_params_default(&p, 2);
	cb.dispatch = NULL;
	assert_null(sched_create(&p, &cb));
	sched_destroy(NULL);
}

/* One slot busy; queued B(100), C(100), A(300): EDF gives B, then C (tie:
 * earlier arrival), then A. */
static void edf_orders_by_deadline_then_arrival(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 9, T0, 1000, 0, NULL), 0);     /* runs */
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0 + 1 * MS, 300, 0, NULL), 0); /* A: due 301 */
	assert_int_equal(submit(s, m, SLA_URGENT, 2, T0 + 2 * MS, 99, 0, NULL), 0);  /* B: due 101 */
	assert_int_equal(submit(s, m, SLA_BATCH, 3, T0 + 3 * MS, 98, 0, NULL), 0);   /* C: due 101 */
	assert_string_equal(trail(r), "D9");
	done(r, 9, T0 + 10 * MS, 10);
	done(r, 2, T0 + 20 * MS, 10);
	done(r, 3, T0 + 30 * MS, 10);
	assert_string_equal(trail(r), "D9 D2 D3 D1");
}

/* The same requests under fifo run in arrival order. */
static void fifo_orders_by_arrival(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_FIFO, 1, 0);
	int m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 9, T0, 1000, 0, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0 + 1 * MS, 300, 0, NULL), 0);
	assert_int_equal(submit(s, m, SLA_URGENT, 2, T0 + 2 * MS, 99, 0, NULL), 0);
	done(r, 9, T0 + 10 * MS, 10);
	done(r, 1, T0 + 20 * MS, 10);
	assert_string_equal(trail(r), "D9 D1 D2");
}

/*
 * Hand-made trace, one slot, one replica, every cost 10 ms (known):
 *   t=0  R1 deadline 100   t=1  R2 deadline 200   t=2  R3 deadline 15
 * fifo:      R1 0-10, R2 10-20, R3 20-30 -> R3 late (due 15): 2 on time, 1 late
 * edf:       R1 0-10, R3 10-20 (due 15, late), R2 20-30: 2 on time, 1 late, but R3 ran before R2
 * edf-admit: at t=2, R3 cannot start before 10 and would end at 20 > 15:
 *            refused at arrival; R1, R2 on time, nothing late
 */
static void run_trace_1(struct rec *r, enum sched_policy pol, struct sched_class_stats *out)
{
	struct sched *s = mk(r, pol, 1, 0);
	int m = mk_model(s, "m", 1);
	enum sched_refusal why;
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 10, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0 + 1 * MS, 199, 10, NULL), 0);
	int rc = submit(s, m, SLA_NORMAL, 3, T0 + 2 * MS, 13, 10, &why);
	if (pol == SCHED_EDF_ADMIT) {
		assert_int_equal(rc, -EAGAIN);
		assert_int_equal(why, SCHED_REFUSE_DEADLINE_INFEASIBLE);
	} else {
		assert_int_equal(rc, 0);
	}
	/* complete whatever runs, 10 ms after it started */
	for (int i = 0; i < r->n; i++) {
		const struct ev *e = &r->ev[i];
		if (e->kind == 'D')
			assert_int_equal(sched_complete(s, e->id, SCHED_DONE_OK, 10 * MS, e->at_us + 10 * MS), 0);
	}
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	*out = st.cls[SLA_NORMAL];
}

static void fifo_edf_admit_differ_on_trace_1(void **state)
{
	struct rec *r = *state;
	struct sched_class_stats st;

	run_trace_1(r, SCHED_FIFO, &st);
	assert_string_equal(trail(r), "D1 D2 D3");
	assert_int_equal(st.on_time, 2);
	assert_int_equal(st.late, 1);
	sched_destroy(r->s);

	run_trace_1(r, SCHED_EDF, &st);
	assert_string_equal(trail(r), "D1 D3 D2");
	assert_int_equal(st.on_time, 2);
	assert_int_equal(st.late, 1);
	sched_destroy(r->s);

	run_trace_1(r, SCHED_EDF_ADMIT, &st);
	assert_string_equal(trail(r), "D1 D2");
	assert_int_equal(st.on_time, 2);
	assert_int_equal(st.late, 0);
	assert_int_equal(st.refused[SCHED_REFUSE_DEADLINE_INFEASIBLE], 1);
	assert_int_equal(st.offered, 3);
	assert_true(sched_compliance(&st) > 0.66 && sched_compliance(&st) < 0.67);
}

/*
 * Trace 2, one slot, costs 10 ms: t=0 R1 due 100, t=1 R2 due 200, t=2 R3 due 25.
 * fifo: R3 runs 20-30 and is late; edf: R3 runs 10-20, on time, R2 20-30 on time.
 */
static void edf_saves_what_fifo_makes_late(void **state)
{
	struct rec *r = *state;
	for (int k = 0; k < 2; k++) {
		enum sched_policy pol = k ? SCHED_EDF : SCHED_FIFO;
		struct sched *s = mk(r, pol, 1, 0);
		int m = mk_model(s, "m", 1);
		assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 10, NULL), 0);
		assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0 + 1 * MS, 199, 10, NULL), 0);
		assert_int_equal(submit(s, m, SLA_NORMAL, 3, T0 + 2 * MS, 23, 10, NULL), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(sched_complete(s, r->ev[i].id, SCHED_DONE_OK, 10 * MS, r->ev[i].at_us + 10 * MS),
					 0);
		struct sched_model_stats st;
		assert_int_equal(sched_model_stats(s, m, &st), 0);
		assert_int_equal(st.cls[SLA_NORMAL].on_time, k ? 3 : 2);
		assert_int_equal(st.cls[SLA_NORMAL].late, k ? 0 : 1);
		sched_destroy(r->s);
		r->s = NULL;
	}
}

/* Accepted at arrival on the estimate; the running request overruns; the
 * queued one is refused at dispatch (edf-admit) instead of running late. */
static void refused_at_dispatch_when_time_ran_out(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_ADMIT, 1, 0);
	int m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 1000, 10, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0 + 1 * MS, 29, 10, NULL), 0); /* est. 10+10 <= 30 */
	/* R1 really takes 40 ms; nobody called sched_tick meanwhile. */
	done(r, 1, T0 + 40 * MS, 40);
	assert_string_equal(trail(r), "D1 R2");
	assert_int_equal(r->ev[1].why, SCHED_REFUSE_DEADLINE_INFEASIBLE);
	assert_int_equal(r->ev[1].replica, -1);
}

/* The same, but the loop's timer calls sched_tick when due: the refusal
 * comes as soon as the request can no longer finish (at deadline - cost). */
static void tick_refuses_as_soon_as_infeasible(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_ADMIT, 1, 0);
	int m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 1000, 10, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0 + 1 * MS, 29, 10, NULL), 0);
	uint64_t due = sched_next_due_us(s);
	assert_int_equal(due, T0 + 20 * MS + 1); /* deadline 30 - cost 10, strictly after */
	sched_tick(s, due - 1);
	assert_string_equal(trail(r), "D1");
	sched_tick(s, due);
	assert_string_equal(trail(r), "D1 R2");
	assert_int_equal(sched_next_due_us(s), UINT64_MAX);
	/* plain edf never refuses for time */
	sched_destroy(s);
	s = mk(r, SCHED_EDF, 1, 0);
	m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 1000, 10, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0 + 1 * MS, 29, 10, NULL), 0);
	assert_int_equal(sched_next_due_us(s), UINT64_MAX);
	done(r, 1, T0 + 40 * MS, 40);
	assert_string_equal(trail(r), "D1 D2");
}

static void estimator_converges(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_ADMIT, 1, 0);
	int m = mk_model(s, "m", 1);
	uint64_t t = T0;
	assert_int_equal(sched_ewma_us(s, m), SCHED_EST_INITIAL_US);
	assert_int_equal(sched_estimate_us(s, m), 0); /* not measured: admission does not refuse */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(submit(s, m, SLA_NORMAL, i, t, 1000, 0, NULL), 0);
		uint32_t cost_ms = 20 + (uint32_t)(i % 5); /* 20..24 ms */
		t += cost_ms * MS;
		done(r, i, t, cost_ms);
		r->n = 0;
		if (i == SCHED_EST_MIN_SAMPLES - 2)
			assert_int_equal(sched_estimate_us(s, m), 0);
	}
	/* p90 of a uniform 20..24 is 24 ms; the EWMA sits near the mean 22. */
	assert_int_equal(sched_estimate_us(s, m), 24 * MS);
	assert_true(sched_ewma_us(s, m) > 21 * MS && sched_ewma_us(s, m) < 23 * MS);
	/* Step to 40 ms: after a full ring every sample is new. */
	for (int i = 0; i < SCHED_EST_RING; i++) {
		assert_int_equal(submit(s, m, SLA_NORMAL, i, t, 1000, 0, NULL), 0);
		t += 40 * MS;
		done(r, i, t, 40);
		r->n = 0;
	}
	assert_int_equal(sched_estimate_us(s, m), 40 * MS);
	assert_true(sched_ewma_us(s, m) > 39 * MS);
	/* Now a request due in 30 ms cannot be met: refused at arrival. */
	enum sched_refusal why;
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, t, 30, 0, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_DEADLINE_INFEASIBLE);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, t, 50, 0, NULL), 0);
}

static void class_caps_refuse_queue_full(void **state)
{
	struct rec *r = *state;
	struct sched_params p;
	sched_params_default(&p, 1);
	p.policy = SCHED_EDF;
	p.queue_cap[SLA_URGENT] = 2;
	struct sched_callbacks cb = { on_dispatch, on_refuse, NULL, NULL, r };
	memset(r, 0, sizeof(*r));
	struct sched *s = r->s = sched_create(&p, &cb);
	assert_non_null(s);
	int m = mk_model(s, "m", 1);
	enum sched_refusal why;
	assert_int_equal(submit(s, m, SLA_BATCH, 1, T0, 1000, 0, NULL), 0); /* runs */
	assert_int_equal(submit(s, m, SLA_URGENT, 2, T0, 100, 0, NULL), 0);
	assert_int_equal(submit(s, m, SLA_URGENT, 3, T0, 100, 0, NULL), 0);
	assert_int_equal(submit(s, m, SLA_URGENT, 4, T0, 100, 0, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_QUEUE_FULL);
	assert_int_equal(submit(s, m, SLA_NORMAL, 5, T0, 100, 0, NULL), 0); /* other class unaffected */
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	assert_int_equal(st.cls[SLA_URGENT].queued, 2);
	assert_int_equal(st.cls[SLA_URGENT].refused[SCHED_REFUSE_QUEUE_FULL], 1);
	assert_int_equal(st.cls[SLA_NORMAL].queued, 1);
	assert_int_equal(st.cls[SLA_BATCH].running, 1);
	/* a slot frees: the cap has room again */
	done(r, 1, T0 + 5 * MS, 5);
	assert_int_equal(submit(s, m, SLA_URGENT, 6, T0 + 5 * MS, 100, 0, NULL), 0);
}

static void slots_bound_running_requests(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 2, 0);
	int m = mk_model(s, "m", 4);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(submit(s, m, SLA_NORMAL, i, T0, 1000, 0, NULL), 0);
	assert_string_equal(trail(r), "D1 D2");
	assert_int_equal(sched_slots_busy(s), 2);
	assert_int_not_equal(r->ev[0].replica, r->ev[1].replica);
	/* one slot fewer: nothing new until fewer than 1 run */
	assert_int_equal(sched_set_slots(s, 1, T0), 0);
	done(r, 1, T0 + 10 * MS, 10);
	assert_string_equal(trail(r), "D1 D2");
	assert_int_equal(sched_slots_busy(s), 1);
	done(r, 2, T0 + 20 * MS, 10);
	assert_string_equal(trail(r), "D1 D2 D3");
	assert_int_equal(sched_set_slots(s, 3, T0 + 20 * MS), 0);
	assert_string_equal(trail(r), "D1 D2 D3 D4");
	assert_int_equal(sched_slots_busy(s), 2);
	assert_int_equal(sched_set_slots(s, 0, T0), -EINVAL);
	/* completing twice or an unknown id is refused */
	assert_int_equal(sched_complete(s, id_of(r, 'D', 1), SCHED_DONE_OK, 0, T0 + 30 * MS), -ENOENT);
	assert_int_equal(sched_complete(s, 12345, SCHED_DONE_OK, 0, T0 + 30 * MS), -ENOENT);
	done(r, 3, T0 + 30 * MS, 10);
	done(r, 4, T0 + 30 * MS, 10);
	assert_int_equal(sched_slots_busy(s), 0);
}

static void replicas_gate_dispatch(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_ADMIT, 4, 0);
	int m = sched_model_add(s, "m", 0);
	enum sched_refusal why;
	/* no replica at all */
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 0, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_NO_READY_REPLICA);
	/* present but not ready */
	assert_int_equal(sched_replica_add(s, m, 0, 1), 0);
	assert_int_equal(sched_replica_add(s, m, 0, 1), -EEXIST);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0, 100, 0, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_NO_READY_REPLICA);
	/* ready, breaker open */
	assert_int_equal(sched_replica_set_ready(s, m, 0, true, T0), 0);
	assert_int_equal(sched_replica_set_breaker(s, m, 0, true, T0), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 3, T0, 100, 0, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_BREAKER_OPEN);
	assert_int_equal(sched_replica_set_breaker(s, m, 0, false, T0), 0);
	/* ready: runs; a second waits for the replica although slots are free */
	assert_int_equal(submit(s, m, SLA_NORMAL, 4, T0, 100, 0, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 5, T0, 100, 0, NULL), 0);
	assert_string_equal(trail(r), "D4");
	/* replica turns unready: R5 stays queued, nothing is dispatched */
	assert_int_equal(sched_replica_set_ready(s, m, 0, false, T0 + 1 * MS), 0);
	done(r, 4, T0 + 2 * MS, 2);
	assert_string_equal(trail(r), "D4");
	/* a second replica comes up and gets it */
	assert_int_equal(sched_replica_add(s, m, 1, 1), 0);
	assert_int_equal(sched_replica_set_ready(s, m, 1, true, T0 + 3 * MS), 0);
	assert_string_equal(trail(r), "D4 D5");
	assert_int_equal(r->ev[1].replica, 1);
	/* draining: finishes R5, gets nothing new */
	assert_int_equal(sched_replica_set_draining(s, m, 1, true, T0 + 4 * MS), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 6, T0 + 4 * MS, 100, 0, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_NO_READY_REPLICA);
	struct sched_replica_info ri;
	assert_int_equal(sched_replica_get(s, m, 1, &ri), 0);
	assert_true(ri.draining);
	assert_int_equal(ri.inflight, 1);
	done(r, 5, T0 + 5 * MS, 1);
	assert_int_equal(sched_replica_get(s, m, 1, &ri), 0);
	assert_int_equal(ri.inflight, 0);
	assert_int_equal(ri.dispatched, 1);
}

/* Queued requests of a model that loses its last replica are refused at once;
 * under an admit policy, queued requests of an unready model are refused by
 * the tick once they can no longer finish. */
static void losing_replicas_refuses_queued(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 0, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0, 100, 0, NULL), 0);
	assert_int_equal(sched_replica_remove(s, m, 0, T0 + 1 * MS), 0);
	assert_string_equal(trail(r), "D1 R2");
	assert_int_equal(r->ev[1].why, SCHED_REFUSE_NO_READY_REPLICA);
	/* the running one still completes */
	done(r, 1, T0 + 5 * MS, 5);
	sched_destroy(s);

	s = mk(r, SCHED_EDF_ADMIT, 1, 0);
	m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 10, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0, 100, 10, NULL), 0);
	assert_int_equal(sched_replica_set_ready(s, m, 0, false, T0 + 1 * MS), 0);
	done(r, 1, T0 + 10 * MS, 10);
	assert_string_equal(trail(r), "D1");
	sched_tick(s, sched_next_due_us(s));
	assert_string_equal(trail(r), "D1 R2");
	assert_int_equal(r->ev[1].why, SCHED_REFUSE_NO_READY_REPLICA);
	assert_int_equal(r->ev[1].at_us, T0 + 90 * MS + 1);
}

/* A model without a free replica never blocks another model's requests. */
static void busy_model_does_not_block_others(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 2, 0);
	int a = mk_model(s, "a", 1);
	int b = mk_model(s, "b", 1);
	assert_int_equal(submit(s, a, SLA_NORMAL, 1, T0, 100, 0, NULL), 0);
	assert_int_equal(submit(s, a, SLA_URGENT, 2, T0, 10, 0, NULL), 0); /* earliest, but a is busy */
	assert_int_equal(submit(s, b, SLA_BATCH, 3, T0, 5000, 0, NULL), 0);
	assert_string_equal(trail(r), "D1 D3");
}

/* edf-reserve, 2 slots, 1 reserved: two batch requests take one slot; an
 * urgent one gets the reserved slot at once. */
static void reserve_keeps_a_slot_for_urgent(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_RESERVE, 2, 1);
	int b = mk_model(s, "batch", 2);
	int u = mk_model(s, "urgent", 1);
	assert_int_equal(submit(s, b, SLA_BATCH, 1, T0, 10000, 50, NULL), 0);
	assert_int_equal(submit(s, b, SLA_BATCH, 2, T0, 10000, 50, NULL), 0);
	assert_string_equal(trail(r), "D1");
	assert_int_equal(submit(s, u, SLA_URGENT, 3, T0 + 1 * MS, 100, 10, NULL), 0);
	assert_string_equal(trail(r), "D1 D3");
	done(r, 3, T0 + 11 * MS, 10);
	assert_string_equal(trail(r), "D1 D3");  /* still only one slot for batch */
	done(r, 1, T0 + 50 * MS, 50);
	assert_string_equal(trail(r), "D1 D3 D2");
	/* edf-admit, same requests: both batch run, the urgent one waits for a slot */
	sched_destroy(s);
	s = mk(r, SCHED_EDF_ADMIT, 2, 0);
	b = mk_model(s, "batch", 2);
	u = mk_model(s, "urgent", 1);
	assert_int_equal(submit(s, b, SLA_BATCH, 1, T0, 10000, 50, NULL), 0);
	assert_int_equal(submit(s, b, SLA_BATCH, 2, T0, 10000, 50, NULL), 0);
	assert_int_equal(submit(s, u, SLA_URGENT, 3, T0 + 1 * MS, 100, 10, NULL), 0);
	assert_string_equal(trail(r), "D1 D2");
}

/*
 * edf-preempt, 1 slot: batch B (50 ms) runs; urgent U due in 30 ms (10 ms)
 * would start at 50 and miss: B's replica is paused, U runs 1-11, then B
 * resumes and ends at 11 + 49 = 60. Its service sample is its active 50 ms.
 */
static void preempt_pauses_batch_for_urgent(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_PREEMPT, 1, 0);
	int b = mk_model(s, "batch", 1);
	int u = mk_model(s, "urgent", 1);
	assert_int_equal(submit(s, b, SLA_BATCH, 1, T0, 10000, 50, NULL), 0);
	assert_int_equal(submit(s, u, SLA_URGENT, 2, T0 + 1 * MS, 30, 10, NULL), 0);
	assert_string_equal(trail(r), "D1 P1 D2");
	struct sched_replica_info ri;
	assert_int_equal(sched_replica_get(s, b, 0, &ri), 0);
	assert_true(ri.paused);
	assert_int_equal(sched_slots_busy(s), 1);
	/* another batch request cannot use the paused replica */
	assert_int_equal(submit(s, b, SLA_BATCH, 3, T0 + 2 * MS, 10000, 50, NULL), 0);
	done(r, 2, T0 + 11 * MS, 10);
	assert_string_equal(trail(r), "D1 P1 D2 U1");
	/* B's wall time is 60 ms; the scheduler subtracts the 10 ms paused */
	assert_int_equal(sched_complete(s, id_of(r, 'D', 1), SCHED_DONE_OK, 60 * MS, T0 + 60 * MS), 0);
	assert_string_equal(trail(r), "D1 P1 D2 U1 D3");
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, b, &st), 0);
	assert_int_equal(st.cls[SLA_BATCH].preempted, 1);
	assert_int_equal(st.cls[SLA_BATCH].service_sum_us, 50 * MS);
	assert_int_equal(sched_model_stats(s, u, &st), 0);
	assert_int_equal(st.cls[SLA_URGENT].on_time, 1);
}

/* Only batch work yields, and only to an urgent request that can still make
 * it; edf-admit never preempts. */
static void preempt_only_batch_for_feasible_urgent(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_PREEMPT, 1, 0);
	int n = mk_model(s, "normal", 1);
	int u = mk_model(s, "urgent", 1);
	int b = mk_model(s, "batch", 1);
	/* a normal request holds the slot: the urgent one waits */
	assert_int_equal(submit(s, n, SLA_NORMAL, 1, T0, 1000, 20, NULL), 0);
	assert_int_equal(submit(s, u, SLA_URGENT, 2, T0 + 1 * MS, 100, 10, NULL), 0);
	assert_string_equal(trail(r), "D1");
	done(r, 1, T0 + 20 * MS, 20);
	assert_string_equal(trail(r), "D1 D2");
	done(r, 2, T0 + 30 * MS, 10);
	/* batch holds the slot; an urgent request that cannot finish even if
	 * started now (measured 10 ms, due in 5) is refused, no pause */
	for (int i = 0; i < SCHED_EST_MIN_SAMPLES; i++) {
		assert_int_equal(submit(s, u, SLA_URGENT, 10 + i, T0 + 30 * MS, 100, 0, NULL), 0);
		done(r, 10 + i, T0 + 30 * MS, 10);
	}
	r->n = 0;
	assert_int_equal(submit(s, b, SLA_BATCH, 3, T0 + 30 * MS, 10000, 50, NULL), 0);
	enum sched_refusal why;
	assert_int_equal(submit(s, u, SLA_URGENT, 4, T0 + 31 * MS, 5, 0, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_DEADLINE_INFEASIBLE);
	assert_string_equal(trail(r), "D3");
	sched_destroy(s);

	s = mk(r, SCHED_EDF_ADMIT, 1, 0);
	b = mk_model(s, "batch", 1);
	u = mk_model(s, "urgent", 1);
	assert_int_equal(submit(s, b, SLA_BATCH, 1, T0, 10000, 50, NULL), 0);
	assert_int_equal(submit(s, u, SLA_URGENT, 2, T0 + 1 * MS, 30, 10, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_DEADLINE_INFEASIBLE);
	assert_string_equal(trail(r), "D1");
}

/* A failed transfer with time left is retried on another replica. */
static void retry_goes_to_another_replica(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 2, 0);
	int m = mk_model(s, "m", 2);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 0, NULL), 0);
	int first = r->ev[0].replica;
	assert_int_equal(sched_complete(s, r->ev[0].id, SCHED_DONE_RETRY, 0, T0 + 1 * MS), 0);
	assert_string_equal(trail(r), "D1 D1");
	assert_int_not_equal(r->ev[1].replica, first);
	/* the second failure is final */
	assert_int_equal(sched_complete(s, r->ev[1].id, SCHED_DONE_RETRY, 0, T0 + 2 * MS), 0);
	assert_string_equal(trail(r), "D1 D1");
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	assert_int_equal(st.cls[SLA_NORMAL].retries, 1);
	assert_int_equal(st.cls[SLA_NORMAL].failed, 1);
	assert_int_equal(sched_slots_busy(s), 0);
}

/* Completing from inside the dispatch callback (transfer failed to start). */
static void callbacks_may_reenter(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 1);
	r->complete_in_dispatch = 1;
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 0, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 2, T0, 100, 0, NULL), 0);
	assert_string_equal(trail(r), "D1 D2");
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	assert_int_equal(st.cls[SLA_NORMAL].failed, 1);
	assert_int_equal(st.cls[SLA_NORMAL].running, 1);
	assert_int_equal(sched_slots_busy(s), 1);
}

static void cancel_frees_queue_and_slot(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 1);
	uint64_t id2 = 0;
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 100, 0, NULL), 0);
	struct sched_req rq = { .model = m, .cls = SLA_NORMAL, .deadline_us = T0 + 100 * MS, .ctx = (void *)2 };
	assert_int_equal(sched_submit(s, &rq, T0, &id2, NULL), 0);
	assert_int_equal(submit(s, m, SLA_NORMAL, 3, T0, 100, 0, NULL), 0);
	assert_int_equal(sched_cancel(s, id2, T0 + 1 * MS), 0);
	assert_int_equal(sched_cancel(s, id2, T0 + 1 * MS), -ENOENT);
	assert_int_equal(sched_cancel(s, id_of(r, 'D', 1), T0 + 2 * MS), 0);
	assert_string_equal(trail(r), "D1 D3");
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	assert_int_equal(st.cls[SLA_NORMAL].cancelled, 2);
	assert_int_equal(st.cls[SLA_NORMAL].queued, 0);
	assert_int_equal(st.cls[SLA_NORMAL].running, 1);
}

static void window_counts_and_resets(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_ADMIT, 1, 0);
	int m = mk_model(s, "m", 1);
	struct sched_window w;
	assert_int_equal(submit(s, m, SLA_URGENT, 1, T0, 100, 0, NULL), 0);
	done(r, 1, T0 + 30 * MS, 30);        /* on time, latency 30 ms */
	assert_int_equal(submit(s, m, SLA_URGENT, 2, T0 + 30 * MS, 10, 0, NULL), 0);
	done(r, 2, T0 + 50 * MS, 20);        /* late */
	assert_int_equal(sched_window_take(s, m, T0 + 60 * MS, &w), 0);
	assert_true(w.start_us <= T0);
	assert_int_equal(w.end_us, T0 + 60 * MS);
	assert_int_equal(w.st.cls[SLA_URGENT].offered, 2);
	assert_int_equal(w.st.cls[SLA_URGENT].on_time, 1);
	assert_int_equal(w.st.cls[SLA_URGENT].late, 1);
	assert_int_equal(w.st.cls[SLA_URGENT].lat_bucket[5], 1);  /* 30 ms: <= 50 ms */
	assert_int_equal(w.st.cls[SLA_URGENT].lat_bucket[4], 1);  /* 20 ms: <= 20 ms */
	assert_int_equal(w.busy_us, 50 * MS);
	assert_int_equal(w.replicas_ready, 1);
	assert_int_equal(w.concurrency_total, 1);
	assert_true(sched_compliance(&w.st.cls[SLA_URGENT]) == 0.5);
	assert_int_equal(sched_window_take(s, m, T0 + 70 * MS, &w), 0);
	assert_int_equal(w.st.cls[SLA_URGENT].offered, 0);
	assert_int_equal(w.busy_us, 0);
	assert_true(sched_compliance(&w.st.cls[SLA_URGENT]) == 1.0);
	/* cumulative counters keep everything */
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	assert_int_equal(st.cls[SLA_URGENT].offered, 2);
	assert_int_equal(sched_window_take(s, 7, T0, &w), -ENOENT);
}

/* Thousands of requests through the pool: ids stay valid, the pool never leaks. */
static void pool_recycles_under_churn(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 2, 0);
	int m = mk_model(s, "m", 2);
	uint64_t t = T0;
	for (int round = 0; round < 50; round++) {
		r->n = 0;
		for (int i = 0; i < 40; i++)
			assert_int_equal(submit(s, m, (enum sla_class)(i % 3), i, t, 1000 + (uint64_t)(i * 7 % 13), 0, NULL), 0);
		for (int i = 0; i < r->n; i++) {
			t += MS;
			assert_int_equal(sched_complete(s, r->ev[i].id, SCHED_DONE_OK, MS, t), 0);
		}
		assert_int_equal(r->n, 40);
	}
	assert_int_equal(sched_slots_busy(s), 0);
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	assert_int_equal(st.cls[0].queued + st.cls[1].queued + st.cls[2].queued, 0);
	assert_int_equal(st.cls[0].on_time + st.cls[1].on_time + st.cls[2].on_time, 2000);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* The estimate is always the SCHED_EST_PCT percentile of the last
 * SCHED_EST_RING samples (sorted, index ((n-1)*pct+50)/100), whatever the
 * samples: wide random values, few distinct values (ties), slow ramps up and
 * down (the largest samples leave together). */
static void estimator_is_the_ring_percentile(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 1);
	uint64_t t = T0;
	uint32_t ring[SCHED_EST_RING];
	unsigned n = 0, head = 0;
	for (int i = 0; i < 6000; i++) {
		uint32_t us;
		switch ((i / 1000) % 3) {
		case 0: us = 1 + (uint32_t)(rnd() % 100000); break;
		case 1: us = 1000 * (1 + (uint32_t)(rnd() % 4)); break;
		default: us = 5000 + 37 * (uint32_t)(i % 200 < 100 ? i % 200 : 200 - i % 200); break;
		}
		r->n = 0;
		assert_int_equal(submit(s, m, SLA_NORMAL, i, t, 100000, 0, NULL), 0);
		t += us;
		assert_int_equal(sched_complete(s, r->ev[0].id, SCHED_DONE_OK, us, t), 0);
		ring[head] = us;
		head = (head + 1) % SCHED_EST_RING;
		if (n < SCHED_EST_RING)
			n++;
		uint32_t sorted[SCHED_EST_RING];
		memcpy(sorted, ring, n * sizeof(*sorted));
		for (unsigned a = 1; a < n; a++) /* insertion sort */
			for (unsigned b = a; b > 0 && sorted[b - 1] > sorted[b]; b--) {
				uint32_t x = sorted[b];
				sorted[b] = sorted[b - 1];
				sorted[b - 1] = x;
			}
		uint32_t want = n < SCHED_EST_MIN_SAMPLES ? 0 : sorted[((n - 1) * SCHED_EST_PCT + 50) / 100];
		if (sched_estimate_us(s, m) != want)
			fail_msg("sample %d: estimate %u, ring percentile %u", i, sched_estimate_us(s, m), want);
	}
}

/* Every latency lands in the first bucket whose bound is >= it. */
static void latency_buckets_at_every_bound(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 1);
	uint64_t t = T0;
	for (int b = 0; b < SCHED_LAT_NBUCKETS - 1; b++) {
		for (int d = -1; d <= 1; d++) {
			uint64_t lat = sched_lat_bounds_us[b] + (uint64_t)(int64_t)d;
			struct sched_model_stats before, after;
			assert_int_equal(sched_model_stats(s, m, &before), 0);
			r->n = 0;
			assert_int_equal(submit(s, m, SLA_BATCH, 1, t, 100000, 0, NULL), 0);
			t += lat;
			assert_int_equal(sched_complete(s, r->ev[0].id, SCHED_DONE_OK, 0, t), 0);
			assert_int_equal(sched_model_stats(s, m, &after), 0);
			int want = d > 0 ? b + 1 : b;
			for (int k = 0; k < SCHED_LAT_NBUCKETS; k++)
				assert_int_equal(after.cls[SLA_BATCH].lat_bucket[k] - before.cls[SLA_BATCH].lat_bucket[k],
						 k == want);
		}
	}
}

/* Random arrivals (few distinct deadlines: many ties), cancellations of
 * queued requests anywhere in their heaps and completions: each dispatch is
 * the earliest deadline waiting, ties to the earlier arrival. */
static void dispatch_order_under_random_cancel(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 1);
	int m2 = mk_model(s, "m2", 1);
	enum { N = CONFIG_SCHED_MAX_QUEUED < 3000 ? CONFIG_SCHED_MAX_QUEUED : 3000 }; /* never more queued than the build allows */
	static struct { uint64_t id, deadline; int live; } q[N];
	int nq = 0;
	uint64_t t = T0, running = 0;
	for (int step = 0; step < 6 * N; step++) {
		unsigned op = (unsigned)(rnd() % 8);
		r->n = 0;
		if (op < 4 && nq < N) {
			struct sched_req rq = {
				.model = (rnd() & 1) ? m : m2,
				.cls = (enum sla_class)(rnd() % SLA_NCLASSES),
				.deadline_us = t + 1000 * MS + (rnd() % 50) * MS,
				.ctx = (void *)(intptr_t)nq,
			};
			q[nq].deadline = rq.deadline_us;
			q[nq].live = 1;
			assert_int_equal(sched_submit(s, &rq, t, &q[nq].id, NULL), 0);
			nq++;
		} else if (op < 6 && nq) {
			int k = (int)(rnd() % (unsigned)nq);
			if (q[k].live && q[k].id != running) {
				assert_int_equal(sched_cancel(s, q[k].id, t), 0);
				q[k].live = 0;
			}
		} else if (running) {
			t += MS;
			assert_int_equal(sched_complete(s, running, SCHED_DONE_OK, MS, t), 0);
			running = 0;
		}
		for (int i = 0; i < r->n; i++) {
			assert_int_equal(r->ev[i].kind, 'D');
			int k = r->ev[i].tag;
			/* the earliest (deadline, arrival) of everything still waiting */
			int best = -1;
			for (int j = 0; j < nq; j++)
				if (q[j].live && (best < 0 || q[j].deadline < q[best].deadline))
					best = j;
			assert_int_equal(k, best);
			q[k].live = 0;
			running = r->ev[i].id;
		}
	}
}

/* --- sched_set_params: a reload changes the policy, slots and caps of a running scheduler --- */

static struct sched_params params_of(enum sched_policy pol, unsigned slots)
{
	struct sched_params p;
	sched_params_default(&p, slots);
	p.policy = pol;
	p.reserve_urgent = 0;
	return p;
}

/* fifo -> edf: the queued requests are kept and re-ordered by deadline; edf -> fifo: by arrival again. */
static void set_params_reorders_queue(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_FIFO, 1, 0);
	int m = mk_model(s, "m", 1);
	assert_int_equal(submit(s, m, SLA_NORMAL, 1, T0, 10000, 10, NULL), 0);
	for (int t = 2; t <= 6; t++) /* deadlines 9000, 8000, ... 5000: fifo runs 2..6, edf 6..2 */
		assert_int_equal(submit(s, m, SLA_NORMAL, t, T0, 10000 - (uint64_t)(t - 1) * 1000, 10, NULL), 0);
	assert_string_equal(trail(r), "D1");
	struct sched_params p = params_of(SCHED_EDF, 1);
	assert_int_equal(sched_set_params(s, &p, T0 + 1 * MS), 0);
	assert_int_equal(sched_policy(s), SCHED_EDF);
	done(r, 1, T0 + 10 * MS, 10);
	assert_string_equal(trail(r), "D1 D6");
	p = params_of(SCHED_FIFO, 1);
	assert_int_equal(sched_set_params(s, &p, T0 + 11 * MS), 0);
	done(r, 6, T0 + 20 * MS, 10);
	done(r, 2, T0 + 30 * MS, 10);
	assert_string_equal(trail(r), "D1 D6 D2 D3");
}

/* More slots dispatch at once; fewer keep what runs and wait. */
static void set_params_changes_slots(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF, 1, 0);
	int m = mk_model(s, "m", 3);
	for (int t = 1; t <= 3; t++)
		assert_int_equal(submit(s, m, SLA_NORMAL, t, T0, 1000, 10, NULL), 0);
	assert_string_equal(trail(r), "D1");
	struct sched_params p = params_of(SCHED_EDF, 3);
	assert_int_equal(sched_set_params(s, &p, T0 + 1 * MS), 0);
	assert_string_equal(trail(r), "D1 D2 D3");
	p.slots = 1;
	assert_int_equal(sched_set_params(s, &p, T0 + 2 * MS), 0);
	assert_int_equal(sched_slots_busy(s), 3);
	assert_int_equal(submit(s, m, SLA_NORMAL, 4, T0 + 2 * MS, 1000, 10, NULL), 0);
	done(r, 1, T0 + 10 * MS, 8);
	done(r, 2, T0 + 10 * MS, 8);
	assert_string_equal(trail(r), "D1 D2 D3"); /* still 1 busy of 1 slot */
	done(r, 3, T0 + 10 * MS, 8);
	assert_string_equal(trail(r), "D1 D2 D3 D4");
}

/* A request paused by edf-preempt resumes at once when the new policy does not preempt. */
static void set_params_resumes_paused(void **state)
{
	struct rec *r = *state;
	struct sched *s = mk(r, SCHED_EDF_PREEMPT, 1, 0);
	int b = mk_model(s, "batch", 1);
	int u = mk_model(s, "urgent", 1);
	assert_int_equal(submit(s, b, SLA_BATCH, 1, T0, 10000, 50, NULL), 0);
	assert_int_equal(submit(s, u, SLA_URGENT, 2, T0 + 1 * MS, 30, 10, NULL), 0);
	assert_string_equal(trail(r), "D1 P1 D2");
	struct sched_params p = params_of(SCHED_EDF_ADMIT, 1);
	assert_int_equal(sched_set_params(s, &p, T0 + 2 * MS), 0);
	assert_string_equal(trail(r), "D1 P1 D2 U1");
	assert_int_equal(sched_slots_busy(s), 2);
	struct sched_replica_info ri;
	assert_int_equal(sched_replica_get(s, b, 0, &ri), 0);
	assert_false(ri.paused);
}

/* Bad params change nothing; a smaller cap keeps the queue and refuses new arrivals; a larger
 * cap than at create time is allocated and used. */
static void set_params_caps_and_bad_params(void **state)
{
	struct rec *r = *state;
	struct sched_params p0 = params_of(SCHED_EDF, 1);
	p0.queue_cap[SLA_NORMAL] = 4;
	struct sched_callbacks cb = { on_dispatch, on_refuse, on_pause, on_resume, r };
	memset(r, 0, sizeof(*r));
	struct sched *s = r->s = sched_create(&p0, &cb);
	assert_non_null(s);
	int m = mk_model(s, "m", 1);
	for (int t = 1; t <= 5; t++) /* one runs, four queue */
		assert_int_equal(submit(s, m, SLA_NORMAL, t, T0, 100000, 1, NULL), 0);
	struct sched_params bad = p0;
	bad.slots = 0;
	assert_int_equal(sched_set_params(s, &bad, T0), -EINVAL);
	assert_int_equal(sched_slots(s), 1);
	struct sched_params p = p0;
	p.queue_cap[SLA_NORMAL] = 2;
	assert_int_equal(sched_set_params(s, &p, T0), 0);
	enum sched_refusal why;
	assert_int_equal(submit(s, m, SLA_NORMAL, 6, T0, 100000, 1, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_QUEUE_FULL);
	p.queue_cap[SLA_NORMAL] = 40;
	assert_int_equal(sched_set_params(s, &p, T0), 0);
	for (int t = 7; t < 40; t++)
		assert_int_equal(submit(s, m, SLA_NORMAL, t, T0, 100000, 1, NULL), 0);
	struct sched_model_stats st;
	assert_int_equal(sched_model_stats(s, m, &st), 0);
	assert_int_equal(st.cls[SLA_NORMAL].queued, 4 + 33);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_parse_both_ways),
		cmocka_unit_test(bad_params_are_refused),
		cmocka_unit_test_setup_teardown(edf_orders_by_deadline_then_arrival, setup, teardown),
		cmocka_unit_test_setup_teardown(fifo_orders_by_arrival, setup, teardown),
		cmocka_unit_test_setup_teardown(fifo_edf_admit_differ_on_trace_1, setup, teardown),
		cmocka_unit_test_setup_teardown(edf_saves_what_fifo_makes_late, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_at_dispatch_when_time_ran_out, setup, teardown),
		cmocka_unit_test_setup_teardown(tick_refuses_as_soon_as_infeasible, setup, teardown),
		cmocka_unit_test_setup_teardown(estimator_converges, setup, teardown),
		cmocka_unit_test_setup_teardown(class_caps_refuse_queue_full, setup, teardown),
		cmocka_unit_test_setup_teardown(slots_bound_running_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(replicas_gate_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(losing_replicas_refuses_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_model_does_not_block_others, setup, teardown),
		cmocka_unit_test_setup_teardown(reserve_keeps_a_slot_for_urgent, setup, teardown),
		cmocka_unit_test_setup_teardown(preempt_pauses_batch_for_urgent, setup, teardown),
		cmocka_unit_test_setup_teardown(preempt_only_batch_for_feasible_urgent, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_goes_to_another_replica, setup, teardown),
		cmocka_unit_test_setup_teardown(callbacks_may_reenter, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_frees_queue_and_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(window_counts_and_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(pool_recycles_under_churn, setup, teardown),
		cmocka_unit_test_setup_teardown(estimator_is_the_ring_percentile, setup, teardown),
		cmocka_unit_test_setup_teardown(latency_buckets_at_every_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(dispatch_order_under_random_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(set_params_reorders_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(set_params_changes_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(set_params_resumes_paused, setup, teardown),
		cmocka_unit_test_setup_teardown(set_params_caps_and_bad_params, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
