/* tests/unit/test_replay.c - the replay window: at most once whatever the clock does and however many commands came since; trusted time across an RTC-less boot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/trust/replay.h"
#include "agent/trust/trusttime.h"

#define DAY_MS 86400000LL

/* Steps: admit (0) or refuse (-ESTALE / -EALREADY) id at iat, in this order. */
struct step {
	const char *id;
	int64_t iat;
	int want;
};

static void run_steps(struct replay *r, const struct step *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = replay_record(r, s[i].id, s[i].iat);
		if (rc != s[i].want)
			fail_msg("step %zu (%s @%lld): got %d, want %d", i, s[i].id, (long long)s[i].iat, rc, s[i].want);
	}
}

static void window_table(void **state)
{
	struct replay *r = replay_create(8, DAY_MS);
	const struct step steps[] = {
		{ "a", 1000, 0 },
		{ "a", 1000, -EALREADY },                  /* redelivered */
		{ "a", 2000, -EALREADY },                  /* same id, other time: still the same command id */
		{ "b", 500, 0 },                           /* out of order, but inside the window */
		{ "c", 3 * DAY_MS, 0 },                    /* the window moves with signed issue times... */
		{ "d", 2 * DAY_MS, -ESTALE },              /* ...so this is before it: refused */
		{ "b", 500, -ESTALE },                     /* a left the set, the mark covers it */
		{ "e", 2 * DAY_MS + 1, 0 },
	};
	run_steps(r, steps, sizeof(steps) / sizeof(steps[0]));
	struct replay_stats st;
	replay_get_stats(r, &st);
	assert_int_equal(st.lwm_ms, 2 * DAY_MS);
	assert_int_equal(st.held, 2);
	replay_destroy(r);
}

/* The four ways the old journal was defeated. */
static void old_id_after_many_newer(void **state)
{
	struct replay *r = replay_create(1024, 365 * DAY_MS);
	assert_int_equal(replay_record(r, "old", 1000), 0);
	char id[16];
	for (int i = 0; i < 1024; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		assert_int_equal(replay_record(r, id, 2000 + i), 0);
	}
	/* The set was full: the mark rose over "old" instead of forgetting it. */
	assert_int_equal(replay_check(r, "old", 1000), -ESTALE);
	struct replay_stats st;
	replay_get_stats(r, &st);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(st.lwm_ms, 1000);
	/* Every newer id is still refused as a replay. */
	for (int i = 0; i < 1024; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		assert_int_equal(replay_check(r, id, 2000 + i), -EALREADY);
	}
	replay_destroy(r);
}

static void clock_steps_change_nothing(void **state)
{
	/* No gateway clock enters the window: the same sequence of signed
	 * commands gives the same verdicts whatever hal_clock_wall_ms says,
	 * so a forward jump cannot age ids out and a backward one cannot
	 * evict the newest. Eviction when full goes by signed issue time,
	 * not by arrival: the newest ids stay. */
	struct replay *r = replay_create(3, 365 * DAY_MS);
	const struct step steps[] = {
		{ "x3", 3000, 0 }, { "x1", 1000, 0 }, { "x2", 2000, 0 },
		{ "x4", 4000, 0 },            /* full: mark -> 1000, x1 retired */
		{ "x1", 1000, -ESTALE },
		{ "x3", 3000, -EALREADY },    /* arrived first, newest-but-one: kept */
		{ "x4", 4000, -EALREADY },
		{ "x0", 1000, -ESTALE },      /* an unseen id at the mark: refused, not applied */
	};
	run_steps(r, steps, sizeof(steps) / sizeof(steps[0]));
	replay_destroy(r);
}

static void retained_command_after_it_left(void **state)
{
	/* A retained command comes back on every reconnect. Once its id has left
	 * the set (window moved on), the mark still refuses it. */
	struct replay *r = replay_create(4, 1000);
	assert_int_equal(replay_record(r, "retained", 5000), 0);
	for (int i = 0; i < 10; i++) {
		char id[8];
		snprintf(id, sizeof(id), "c%d", i);
		assert_int_equal(replay_record(r, id, 7000 + i * 100), 0);
	}
	struct replay_stats st;
	replay_get_stats(r, &st);
	assert_true(st.held <= 4);
	assert_int_equal(replay_check(r, "retained", 5000), -ESTALE);
	replay_destroy(r);
}

static void full_set_refuses_the_oldest_newcomer(void **state)
{
	struct replay *r = replay_create(2, 365 * DAY_MS);
	assert_int_equal(replay_record(r, "a", 100), 0);
	assert_int_equal(replay_record(r, "b", 200), 0);
	/* As old as the oldest held: the raised mark covers it; not admitted. */
	assert_int_equal(replay_record(r, "c", 100), -ESTALE);
	assert_int_equal(replay_check(r, "b", 200), -EALREADY);
	replay_destroy(r);
}

static void persisted_across_restart(void **state)
{
	struct replay *r = replay_create(4, 1000);
	assert_int_equal(replay_record(r, "a", 5000), 0);
	assert_int_equal(replay_record(r, "b", 5500), 0);
	char buf[4 * 90 + 64];
	int n = replay_save(r, buf, sizeof(buf));
	assert_true(n > 0);
	assert_string_equal(buf, "R1 4500 5500 0\n5000 a\n5500 b\n");
	struct replay *r2 = replay_create(4, 1000);
	assert_int_equal(replay_load(r2, buf), 0);
	assert_int_equal(replay_check(r2, "a", 5000), -EALREADY);
	assert_int_equal(replay_check(r2, "z", 4500), -ESTALE);
	assert_int_equal(replay_check(r2, "z", 4501), 0);
	/* Malformed text is refused and changes nothing. */
	static const char *const bad[] = { "", "R2 0 0 0\n", "R1 10 0 0\n5 a\n", "R1 0 0 0\n5 a", "R1 0 0 0\nx a\n",
					   "R1 0 0 0\n1 a\n2 b\n3 c\n4 d\n5 e\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(replay_load(r2, bad[i]), -EINVAL);
	assert_int_equal(replay_check(r2, "a", 5000), -EALREADY);
	assert_int_equal(replay_save(r2, buf, 10), -ENOSPC);
	replay_destroy(r);
	replay_destroy(r2);
	replay_destroy(NULL);
	assert_null(replay_create(0, 1));
}

/* The store came back after berthd ran without it: the persisted window and the ids
 * recorded in memory meanwhile are both held; the higher mark wins. */
static void merged_after_store_back(void **state)
{
	struct replay *r = replay_create(8, 1000);
	assert_int_equal(replay_record(r, "mem", 6000), 0);   /* recorded while the store was away */
	assert_int_equal(replay_merge(r, "R1 5200 5500 0\n5300 a\n5500 b\n"), 0);
	assert_int_equal(replay_check(r, "mem", 6000), -EALREADY);
	assert_int_equal(replay_check(r, "a", 5300), -EALREADY);
	assert_int_equal(replay_check(r, "b", 5500), -EALREADY);
	assert_int_equal(replay_check(r, "z", 5200), -ESTALE); /* the persisted mark */
	assert_int_equal(replay_check(r, "z", 5201), 0);
	assert_int_equal(replay_merge(r, "R1 x\n"), -EINVAL); /* malformed: nothing changes */
	assert_int_equal(replay_check(r, "mem", 6000), -EALREADY);
	replay_destroy(r);
}

/* The store holds one key per slot plus a header: what an admission writes
 * is its slot and the header, and loading them gives the same window. */
static void persisted_by_slots(void **state)
{
	struct replay *r = replay_create(3, 1000);
	char slots[3][96] = { "", "", "" }, hdr[96];
	unsigned slot = 9;
	assert_int_equal(replay_admit(r, "a", 5000, &slot), 0);
	assert_int_equal(slot, 0);
	assert_true(replay_save_slot(r, slot, slots[slot], sizeof(slots[0])) > 0);
	assert_int_equal(replay_admit(r, "b", 5600, &slot), 0);
	assert_true(replay_save_slot(r, slot, slots[slot], sizeof(slots[0])) > 0);
	/* c raises the mark to 5100: a is retired (its slot is stale in the store). */
	assert_int_equal(replay_admit(r, "c", 6100, &slot), 0);
	assert_int_equal(slot, 2);
	assert_true(replay_save_slot(r, slot, slots[slot], sizeof(slots[0])) > 0);
	assert_true(replay_save_header(r, hdr, sizeof(hdr)) > 0);
	assert_string_equal(hdr, "R2 5100 6100 0\n");
	assert_string_equal(slots[0], "5000 a");
	/* The freed slot is reused by the next admission. */
	assert_int_equal(replay_admit(r, "d", 6200, &slot), 0);
	assert_int_equal(slot, 0);
	struct replay *r2 = replay_create(3, 1000);
	assert_int_equal(replay_load_header(r2, hdr), 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(replay_load_slot(r2, i, slots[i]), 0);
	struct replay_stats rs;
	replay_get_stats(r2, &rs);
	assert_int_equal(rs.held, 2); /* b and c; a was stale */
	assert_int_equal(replay_check(r2, "b", 5600), -EALREADY);
	assert_int_equal(replay_check(r2, "c", 6100), -EALREADY);
	assert_int_equal(replay_check(r2, "a", 5000), -ESTALE);
	assert_int_equal(replay_check(r2, "e", 5101), 0);
	/* Malformed slots and headers are refused. */
	static const char *const bad[] = { "", "x a", "5000", "5000 a b", "0 a" };
	assert_int_equal(replay_load_header(r2, hdr), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(replay_load_slot(r2, 1, bad[i]), -EINVAL);
	assert_int_equal(replay_load_slot(r2, 3, "6000 z"), -EINVAL);          /* no such slot */
	assert_int_equal(replay_load_slot(r2, 0, "6000 z"), 0);
	assert_int_equal(replay_load_slot(r2, 0, "6001 y"), -EINVAL);          /* slot taken */
	assert_int_equal(replay_load_slot(r2, 1, "6002 z"), -EINVAL);          /* id held twice */
	assert_int_equal(replay_load_header(r2, "R1 0 0 0\n"), -EINVAL);
	assert_int_equal(replay_load_header(r2, "R2 0 0 0\n5 a\n"), -EINVAL);
	assert_int_equal(replay_save_slot(r2, 7, hdr, sizeof(hdr)), -EINVAL);
	assert_int_equal(replay_admit(r2, "", 7000, NULL), -EINVAL);
	replay_destroy(r);
	replay_destroy(r2);
}

static void rtc_less_boot(void **state)
{
	/* Persisted floor from the last verified command: 2026-01-01. */
	struct trusttime t = { .floor_ms = 1767225600000LL };
	/* Boot at 1970 (no RTC): judged at the floor, never earlier. */
	assert_int_equal(trusttime_now(&t, 0), 1767225600000LL);
	assert_int_equal(trusttime_now(&t, 1000), 1767225600000LL);
	/* A correct clock later than the floor is used as it is. */
	assert_int_equal(trusttime_now(&t, 1767225700000LL), 1767225700000LL);
	/* The wall clock never moves the floor; a signed time does, only upwards. */
	assert_int_equal(trusttime_now(&t, 0), 1767225600000LL);
	assert_false(trusttime_observe(&t, 1767225500000LL));
	assert_int_equal(t.floor_ms, 1767225600000LL);
	assert_true(trusttime_observe(&t, 1767225900000LL));
	assert_int_equal(trusttime_now(&t, 0), 1767225900000LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(window_table),
		cmocka_unit_test(persisted_by_slots),
		cmocka_unit_test(old_id_after_many_newer),
		cmocka_unit_test(clock_steps_change_nothing),
		cmocka_unit_test(retained_command_after_it_left),
		cmocka_unit_test(full_set_refuses_the_oldest_newcomer),
		cmocka_unit_test(persisted_across_restart),
		cmocka_unit_test(merged_after_store_back),
		cmocka_unit_test(rtc_less_boot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
