/* tests/unit/test_loop.c - the event loop's timers and fds, in virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <unistd.h>

#include "agent/base/loop.h"
#include "hal/clock.h"
#include "ports/sim/sim.h"

struct rec {
	int n;
	uint64_t at_us[16];
};

static void on_timer(void *arg)
{
	struct rec *r = arg;
	if (r->n < 16)
		r->at_us[r->n] = hal_clock_now_us();
	r->n++;
}

static int setup(void **state)
{
	sim_reset();
	*state = loop_create();
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	loop_destroy(*state);
	return 0;
}

static void oneshot_fires_once_at_its_time(void **state)
{
	struct loop *l = *state;
	struct loop_timer t;
	struct rec r = { 0 };
	uint64_t t0 = hal_clock_now_us();
	loop_timer_init(&t, on_timer, &r);
	assert_int_equal(loop_timer_start(l, &t, 250, 0), 0);
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 1000);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.at_us[0] - t0, 250000);
	assert_false(loop_timer_armed(&t));
}

static void timers_fire_in_deadline_order(void **state)
{
	struct loop *l = *state;
	struct loop_timer t[3];
	struct rec r[3] = { { 0 } };
	const uint64_t delays[3] = { 300, 100, 200 };
	for (int i = 0; i < 3; i++) {
		loop_timer_init(&t[i], on_timer, &r[i]);
		assert_int_equal(loop_timer_start(l, &t[i], delays[i], 0), 0);
	}
	for (int i = 0; i < 3; i++)
		loop_run_once(l, -1);
	assert_true(r[1].at_us[0] < r[2].at_us[0]);
	assert_true(r[2].at_us[0] < r[0].at_us[0]);
}

static void periodic_timer_keeps_its_period(void **state)
{
	struct loop *l = *state;
	struct loop_timer t;
	struct rec r = { 0 };
	loop_timer_init(&t, on_timer, &r);
	assert_int_equal(loop_timer_start(l, &t, 100, 100), 0);
	while (r.n < 5)
		loop_run_once(l, -1);
	for (int i = 1; i < 5; i++)
		assert_int_equal(r.at_us[i] - r.at_us[i - 1], 100000);
	loop_timer_stop(l, &t);
	sim_clock_advance_ms(1000);
	loop_run_once(l, 0);
	assert_int_equal(r.n, 5);
}

static void stopped_timer_never_fires(void **state)
{
	struct loop *l = *state;
	struct loop_timer a, b;
	struct rec ra = { 0 }, rb = { 0 };
	loop_timer_init(&a, on_timer, &ra);
	loop_timer_init(&b, on_timer, &rb);
	assert_int_equal(loop_timer_start(l, &a, 50, 0), 0);
	assert_int_equal(loop_timer_start(l, &b, 60, 0), 0);
	loop_timer_stop(l, &a);
	loop_run_once(l, 1000);
	assert_int_equal(ra.n, 0);
	assert_int_equal(rb.n, 1);
}

struct fd_rec {
	int calls;
	char last;
};

static void on_readable(void *arg, int fd, unsigned events)
{
	struct fd_rec *r = arg;
	assert_true(events & LOOP_IN);
	assert_int_equal(read(fd, &r->last, 1), 1);
	r->calls++;
}

static void fd_callback_runs_when_readable(void **state)
{
	struct loop *l = *state;
	int p[2];
	struct fd_rec r = { 0 };
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_IN, on_readable, &r), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_IN, on_readable, &r), -EEXIST);
	loop_run_once(l, 10);
	assert_int_equal(r.calls, 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	loop_run_once(l, 10);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.last, 'x');
	loop_fd_del(l, p[0]);
	assert_int_equal(write(p[1], "y", 1), 1);
	loop_run_once(l, 10);
	assert_int_equal(r.calls, 1);
	close(p[0]);
	close(p[1]);
}

struct arm_rec {
	struct loop *l;
	struct loop_timer t;
	struct rec fired;
	bool rearm;
};

static void on_arm_timer(void *arg)
{
	struct arm_rec *a = arg;
	on_timer(&a->fired);
	if (a->rearm)
		assert_int_equal(loop_timer_start(a->l, &a->t, 0, 0), 0);
}

static void on_readable_arm(void *arg, int fd, unsigned events)
{
	struct arm_rec *a = arg;
	char c;
	assert_true(events & LOOP_IN);
	assert_int_equal(read(fd, &c, 1), 1);
	sim_clock_advance_us(5); /* the callback took time */
	assert_int_equal(loop_timer_start(a->l, &a->t, 0, 0), 0);
}

/* A timer armed for "now" from an fd callback runs in the same iteration
 * (no extra poll); one re-armed for now by its own callback waits for the
 * next iteration, so it cannot starve the fds. */
static void zero_timer_from_fd_runs_in_same_iteration(void **state)
{
	struct loop *l = *state;
	int p[2];
	struct arm_rec a = { .l = l };
	loop_timer_init(&a.t, on_arm_timer, &a);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(loop_fd_add(l, p[0], LOOP_IN, on_readable_arm, &a), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	loop_run_once(l, 10);
	assert_int_equal(a.fired.n, 1);
	a.rearm = true;
	assert_int_equal(write(p[1], "y", 1), 1);
	loop_run_once(l, 10);
	assert_int_equal(a.fired.n, 2);
	loop_run_once(l, 10);
	assert_int_equal(a.fired.n, 3);
	a.rearm = false;
	loop_run_once(l, 10);
	assert_int_equal(a.fired.n, 4);
	loop_run_once(l, 10);
	assert_int_equal(a.fired.n, 4);
	loop_fd_del(l, p[0]);
	close(p[0]);
	close(p[1]);
}

static void timer_heap_is_bounded(void **state)
{
	struct loop *l = *state;
	static struct loop_timer t[CONFIG_LOOP_MAX_TIMERS + 1];
	struct rec r = { 0 };
	for (int i = 0; i < CONFIG_LOOP_MAX_TIMERS; i++) {
		loop_timer_init(&t[i], on_timer, &r);
		assert_int_equal(loop_timer_start(l, &t[i], (uint64_t)i + 1, 0), 0);
	}
	loop_timer_init(&t[CONFIG_LOOP_MAX_TIMERS], on_timer, &r);
	assert_int_equal(loop_timer_start(l, &t[CONFIG_LOOP_MAX_TIMERS], 1, 0), -ENOSPC);
	sim_clock_advance_ms(CONFIG_LOOP_MAX_TIMERS + 1);
	loop_run_once(l, 0);
	assert_int_equal(r.n, CONFIG_LOOP_MAX_TIMERS);
}

static void stop_ends_run(void *arg) { loop_stop(arg); }

static void run_returns_after_stop(void **state)
{
	struct loop *l = *state;
	struct loop_timer t;
	loop_timer_init(&t, stop_ends_run, l);
	assert_int_equal(loop_timer_start(l, &t, 5000, 0), 0);
	uint64_t t0 = hal_clock_now_us();
	assert_int_equal(loop_run(l), 0);
	assert_true(loop_stopped(l));
	assert_int_equal(hal_clock_now_us() - t0, 5000000);
}

/* Timers due at the same time fire in the order they were started (libuv's
 * rule), whatever the heap's shape; re-arming one starts it anew (last). */
struct order {
	int fired[16];
	int n;
};
struct order_timer {
	struct loop_timer t;
	struct order *o;
	int id;
};

static void on_order(void *arg)
{
	struct order_timer *ot = arg;
	if (ot->o->n < 16)
		ot->o->fired[ot->o->n] = ot->id;
	ot->o->n++;
}

static void equal_time_timers_fire_in_start_order(void **state)
{
	struct loop *l = *state;
	struct order o = { { 0 }, 0 };
	struct order_timer ot[12];
	for (int i = 0; i < 12; i++) {
		ot[i] = (struct order_timer){ .o = &o, .id = i };
		loop_timer_init(&ot[i].t, on_order, &ot[i]);
		assert_int_equal(loop_timer_start(l, &ot[i].t, 100, 0), 0);
	}
	/* 3 is started again (same due time): it now comes after every other. */
	assert_int_equal(loop_timer_start(l, &ot[3].t, 100, 0), 0);
	for (int i = 0; i < 5 && o.n < 12; i++)
		loop_run_once(l, 1000);
	assert_int_equal(o.n, 12);
	static const int want[12] = { 0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 3 };
	for (int i = 0; i < 12; i++)
		assert_int_equal(o.fired[i], want[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(oneshot_fires_once_at_its_time, setup, teardown),
		cmocka_unit_test_setup_teardown(timers_fire_in_deadline_order, setup, teardown),
		cmocka_unit_test_setup_teardown(periodic_timer_keeps_its_period, setup, teardown),
		cmocka_unit_test_setup_teardown(stopped_timer_never_fires, setup, teardown),
		cmocka_unit_test_setup_teardown(fd_callback_runs_when_readable, setup, teardown),
		cmocka_unit_test_setup_teardown(zero_timer_from_fd_runs_in_same_iteration, setup, teardown),
		cmocka_unit_test_setup_teardown(timer_heap_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(run_returns_after_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(equal_time_timers_fire_in_start_order, setup, teardown),
	};
	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
