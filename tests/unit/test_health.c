/* tests/unit/test_health.c - probe state machines (http, tcp, exec) against simulated replicas, in virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/supervise/health.h"
#include "agent/base/loop.h"
#include "hal/clock.h"
#include "hal/engine.h"
#include "hal/invoke.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

struct fx {
	struct loop *l;
	struct hal_engine *e;
	struct hal_invoke *inv;
	char id[80];
	struct health_probe p;
	int changes;
	bool last;
	uint64_t changed_at_us;
};

static void on_change(void *arg, struct health_probe *p, bool ok)
{
	struct fx *f = arg;
	(void)p;
	f->changes++;
	f->last = ok;
	f->changed_at_us = hal_clock_now_us();
}

static int setup(void **state)
{
	sim_reset();
	struct fx *f = calloc(1, sizeof(*f));
	f->l = loop_create();
	f->e = hal_engine_create(f->l, "sim", 1000);
	f->inv = hal_invoke_create(f->l, 16);
	const char *env[] = { "BERTH_PORT=9400", NULL };
	struct hal_ctr_create c = { .name = "w", .image = "worker", .env = env };
	assert_int_equal(sim_ctr_add(&c, true, f->id, sizeof(f->id)), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	health_probe_stop(&f->p);
	hal_engine_destroy(f->e);
	hal_invoke_destroy(f->inv);
	sim_reset();
	loop_destroy(f->l);
	free(f);
	return 0;
}

static void run_ms(struct fx *f, uint64_t ms) { test_run_ms(f->l, ms, 5); }

static struct health_target target(struct fx *f)
{
	struct health_target t = { .inv = f->inv, .engine = f->e, .host = "127.0.0.1", .port = 9400, .name = "w/0" };
	strcpy(t.ctr_id, f->id);
	return t;
}

static struct probe_spec http(const char *path, uint32_t delay, uint32_t period, uint32_t succ, uint32_t fail)
{
	struct probe_spec s = { .kind = PROBE_HTTP, .initial_delay_ms = delay, .period_ms = period, .timeout_ms = 50,
				.success_threshold = succ, .failure_threshold = fail };
	strcpy(s.path, path);
	return s;
}

static void readiness_starts_false_and_needs_success_threshold(void **state)
{
	struct fx *f = *state;
	health_probe_init(&f->p, f->l, HEALTH_READINESS, on_change, f);
	struct probe_spec s = http("/v2/health/ready", 300, 100, 3, 2);
	struct health_target t = target(f);
	uint64_t t0 = hal_clock_now_us();
	assert_int_equal(health_probe_start(&f->p, &s, &t), 0);
	assert_false(health_probe_ok(&f->p));
	run_ms(f, 250);
	assert_int_equal(f->p.probes, 0); /* initial delay */
	/* probes at 300, 400, 500 ms: ready after the third */
	run_ms(f, 530);
	assert_int_equal(f->changes, 1);
	assert_true(f->last);
	uint64_t at = (f->changed_at_us - t0) / 1000;
	assert_true(at >= 500 && at < 520);
	/* two failures make it unready, one is not enough */
	assert_int_equal(sim_ctr_unready(f->id, true), 0);
	run_ms(f, 100);
	assert_int_equal(f->changes, 1);
	run_ms(f, 100);
	assert_int_equal(f->changes, 2);
	assert_false(f->last);
	assert_int_equal(f->p.consecutive_fail, 2);
	/* one success is not three */
	assert_int_equal(sim_ctr_unready(f->id, false), 0);
	run_ms(f, 200);
	assert_int_equal(f->changes, 2);
	run_ms(f, 100);
	assert_int_equal(f->changes, 3);
	assert_true(f->last);
}

static void liveness_starts_true_fails_after_threshold_and_stops(void **state)
{
	struct fx *f = *state;
	health_probe_init(&f->p, f->l, HEALTH_LIVENESS, on_change, f);
	struct probe_spec s = http("/v2/health/live", 0, 100, 1, 3);
	struct health_target t = target(f);
	assert_int_equal(health_probe_start(&f->p, &s, &t), 0);
	assert_true(health_probe_ok(&f->p));
	run_ms(f, 350);
	assert_int_equal(f->changes, 0); /* successes change nothing */
	assert_int_equal(sim_ctr_unlive(f->id, true), 0);
	run_ms(f, 200);
	assert_int_equal(f->changes, 0);
	assert_int_equal(f->p.consecutive_fail, 2);
	run_ms(f, 100);
	assert_int_equal(f->changes, 1);
	assert_false(f->last);
	assert_string_equal(f->p.last_error, "http 500");
	/* stopped itself: no further probes */
	uint64_t n = f->p.probes;
	run_ms(f, 500);
	assert_int_equal(f->p.probes, n);
	assert_false(f->p.running);
}

static void hung_replica_times_out_but_tcp_still_connects(void **state)
{
	struct fx *f = *state;
	assert_int_equal(sim_ctr_hang(f->id), 0);
	health_probe_init(&f->p, f->l, HEALTH_LIVENESS, on_change, f);
	struct probe_spec s = http("/v2/health/live", 0, 100, 1, 2);
	struct health_target t = target(f);
	assert_int_equal(health_probe_start(&f->p, &s, &t), 0);
	run_ms(f, 60);
	assert_int_equal(f->p.failures, 1);
	assert_string_equal(f->p.last_error, "timeout");
	run_ms(f, 100);
	assert_int_equal(f->changes, 1);
	/* a tcp probe only connects: a hung worker still passes it */
	struct health_probe tp;
	int changes = f->changes;
	health_probe_init(&tp, f->l, HEALTH_READINESS, on_change, f);
	struct probe_spec ts = { .kind = PROBE_TCP, .period_ms = 100, .timeout_ms = 50, .success_threshold = 1,
				 .failure_threshold = 1 };
	assert_int_equal(health_probe_start(&tp, &ts, &t), 0);
	run_ms(f, 50);
	assert_int_equal(f->changes, changes + 1);
	assert_true(health_probe_ok(&tp));
	health_probe_stop(&tp);
	/* nothing listening: tcp fails */
	struct health_target none = t;
	none.port = 9499;
	health_probe_init(&tp, f->l, HEALTH_LIVENESS, on_change, f);
	assert_int_equal(health_probe_start(&tp, &ts, &none), 0);
	run_ms(f, 50);
	assert_false(health_probe_ok(&tp));
	health_probe_stop(&tp);
}

static void exec_probe_follows_exit_status(void **state)
{
	struct fx *f = *state;
	health_probe_init(&f->p, f->l, HEALTH_READINESS, on_change, f);
	struct probe_spec s = { .kind = PROBE_EXEC, .period_ms = 100, .timeout_ms = 50, .success_threshold = 1,
				.failure_threshold = 1 };
	strcpy(s.exec[0], "/worker");
	strcpy(s.exec[1], "--help");
	struct health_target t = target(f);
	assert_int_equal(health_probe_start(&f->p, &s, &t), 0);
	run_ms(f, 50);
	assert_true(health_probe_ok(&f->p));
	assert_int_equal(sim_ctr_set_exec_exit(f->id, 3), 0);
	run_ms(f, 100);
	assert_false(health_probe_ok(&f->p));
	assert_string_equal(f->p.last_error, "exit 3");
	/* an engine slower than the probe timeout: the probe fails at its timeout */
	assert_int_equal(sim_ctr_set_exec_exit(f->id, 0), 0);
	run_ms(f, 100);
	assert_true(health_probe_ok(&f->p));
	sim_engine_set_latency_ms(80);
	run_ms(f, 100);
	assert_false(health_probe_ok(&f->p));
	assert_string_equal(f->p.last_error, "timeout");
}

static void no_probe_is_ready_at_once_and_pause_keeps_state(void **state)
{
	struct fx *f = *state;
	health_probe_init(&f->p, f->l, HEALTH_READINESS, on_change, f);
	struct probe_spec none = { .kind = PROBE_NONE };
	struct health_target t = target(f);
	assert_int_equal(health_probe_start(&f->p, &none, &t), 0);
	assert_false(health_probe_ok(&f->p)); /* never from inside start */
	run_ms(f, 1);
	assert_true(health_probe_ok(&f->p));
	assert_int_equal(f->changes, 1);
	/* a stopped probe resumed keeps its state */
	struct probe_spec s = http("/v2/health/ready", 0, 100, 1, 1);
	assert_int_equal(health_probe_start(&f->p, &s, &t), 0);
	run_ms(f, 10);
	assert_true(health_probe_ok(&f->p));
	health_probe_stop(&f->p);
	run_ms(f, 500);
	assert_int_equal(health_probe_resume(&f->p), 0);
	assert_true(health_probe_ok(&f->p));
	assert_int_equal(sim_ctr_unready(f->id, true), 0);
	run_ms(f, 110);
	assert_false(health_probe_ok(&f->p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(readiness_starts_false_and_needs_success_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(liveness_starts_true_fails_after_threshold_and_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(hung_replica_times_out_but_tcp_still_connects, setup, teardown),
		cmocka_unit_test_setup_teardown(exec_probe_follows_exit_status, setup, teardown),
		cmocka_unit_test_setup_teardown(no_probe_is_ready_at_once_and_pause_keeps_state, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
