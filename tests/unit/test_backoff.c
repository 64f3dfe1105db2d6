/* tests/unit/test_backoff.c - restart back-off schedule, jitter bounds, healthy reset, and the events ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agent/base/backoff.h"
#include "agent/telemetry/events.h"
#include "ports/sim/sim.h"

static void schedule_doubles_to_the_cap_within_jitter(void **state)
{
	(void)state;
	struct prng rng;
	prng_seed(&rng, 42);
	struct backoff b;
	backoff_init(&b, 1000, 300000, 600000, 100, true, &rng);
	/* first restart immediate, then 1 s, 2 s, 4 s ... 256 s, then 300 s forever */
	const uint32_t nominal[] = { 0, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000 };
	for (unsigned k = 0; k < sizeof(nominal) / sizeof(nominal[0]); k++) {
		assert_int_equal(backoff_nominal_ms(&b, k + 1), nominal[k]);
		uint32_t d = backoff_next_ms(&b);
		assert_true(d >= nominal[k] * 0.9 && d <= nominal[k] * 1.1);
		assert_int_equal(b.failures, k + 1);
		assert_int_equal(b.at_cap, nominal[k] == 300000);
	}
}

static void jitter_spreads_and_is_seedable(void **state)
{
	(void)state;
	struct prng r1, r2;
	prng_seed(&r1, 7);
	prng_seed(&r2, 7);
	uint32_t lo = UINT32_MAX, hi = 0;
	for (int i = 0; i < 2000; i++) {
		struct backoff a, b;
		backoff_init(&a, 1000, 300000, 600000, 100, false, &r1);
		backoff_init(&b, 1000, 300000, 600000, 100, false, &r2);
		uint32_t da = backoff_next_ms(&a), db = backoff_next_ms(&b);
		assert_int_equal(da, db); /* same seed, same stream */
		if (da < lo)
			lo = da;
		if (da > hi)
			hi = da;
	}
	assert_true(lo >= 900 && lo < 910);
	assert_true(hi <= 1100 && hi > 1090);
	/* another seed, another stream */
	struct prng r3;
	prng_seed(&r3, 8);
	int same = 0;
	for (int i = 0; i < 100; i++)
		same += prng_next(&r1) == prng_next(&r3);
	assert_int_equal(same, 0);
}

static void healthy_for_reset_period_resets(void **state)
{
	(void)state;
	struct prng rng;
	prng_seed(&rng, 1);
	struct backoff b;
	backoff_init(&b, 1000, 300000, 600000, 0, true, &rng);
	for (int i = 0; i < 4; i++)
		(void)backoff_next_ms(&b);
	assert_int_equal(b.failures, 4);
	backoff_healthy(&b, 10000);
	assert_false(backoff_tick(&b, 10000 + 599999));
	assert_int_equal(b.failures, 4);
	/* unhealthy in between restarts the clock */
	backoff_unhealthy(&b);
	backoff_healthy(&b, 700000);
	assert_false(backoff_tick(&b, 700000 + 300000));
	assert_true(backoff_tick(&b, 700000 + 600000));
	assert_int_equal(b.failures, 0);
	assert_int_equal(backoff_next_ms(&b), 0); /* immediate again */
	/* a failure stops the healthy clock */
	backoff_healthy(&b, 2000000);
	(void)backoff_next_ms(&b);
	assert_false(backoff_tick(&b, 9000000));
	assert_int_equal(b.failures, 2);
}

static void without_immediate_first_starts_at_initial(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b, 500, 30000, 0, 0, false, NULL);
	assert_int_equal(backoff_next_ms(&b), 500);
	assert_int_equal(backoff_next_ms(&b), 1000);
	for (int i = 0; i < 20; i++)
		(void)backoff_next_ms(&b);
	assert_int_equal(backoff_next_ms(&b), 30000);
	backoff_reset(&b);
	assert_int_equal(backoff_next_ms(&b), 500);
}

static int sunk;
static void sink(void *arg, const struct event *ev)
{
	(void)arg;
	(void)ev;
	sunk++;
}

static void events_ring_keeps_the_newest(void **state)
{
	(void)state;
	sim_reset();
	struct events *ev = events_create(3);
	assert_non_null(ev);
	events_set_sink(ev, sink, NULL);
	for (int i = 0; i < 5; i++)
		events_emit(ev, "circuit_open", "{\"deployment\":\"d%d\"}", i);
	assert_int_equal(sunk, 5);
	assert_int_equal(events_count(ev), 3);
	assert_int_equal(events_total(ev), 5);
	assert_int_equal(events_overwritten(ev), 2);
	assert_string_equal(events_get(ev, 0)->detail, "{\"deployment\":\"d2\"}");
	assert_int_equal(events_get(ev, 0)->seq, 3);
	assert_string_equal(events_get(ev, 2)->type, "circuit_open");
	assert_null(events_get(ev, 3));
	char big[EVENTS_DETAIL_MAX + 10];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	events_emit(ev, "t", "{\"s\":\"%s\"}", big);
	assert_int_equal(events_truncated(ev), 1);
	assert_string_equal(events_get(ev, 2)->detail, "{\"truncated\":true}");
	char esc[32];
	events_json_escape("a\"b\\c\nd", esc, sizeof(esc));
	assert_string_equal(esc, "a\\\"b\\\\c\\nd");
	events_emit(NULL, "x", "{}"); /* no-op */
	events_destroy(ev);
	events_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(schedule_doubles_to_the_cap_within_jitter),
		cmocka_unit_test(jitter_spreads_and_is_seedable),
		cmocka_unit_test(healthy_for_reset_period_resets),
		cmocka_unit_test(without_immediate_first_starts_at_initial),
		cmocka_unit_test(events_ring_keeps_the_newest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
