/* tests/unit/test_rollout.c - the verdict on a new version, table-driven over what the supervisor observes in time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agent/images/rollout.h"

/* One step: at t_ms the supervisor sees this; the judge must answer want (and why). */
struct step {
	uint64_t t_ms;
	uint64_t hash;
	uint32_t desired, ready, crashes;
	bool circuit, image;
	enum rollout_verdict want;
	enum rollout_reason why;
};

struct situation {
	const char *name;
	uint64_t lkg;
	struct step steps[8];
};

#define S(t, h, d, r, c, circ, img, w, y) { t, h, d, r, c, circ, img, w, y }
#define END { 0, 0, 0, 0, 0, false, false, ROLLOUT_WAIT, ROLLOUT_NONE }

static const struct situation cases[] = {
	{ "first version becomes good after the stable time, never failed (no lkg)", 0,
	  { S(1000, 7, 2, 0, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(200000, 7, 2, 1, 9, false, true, ROLLOUT_WAIT, ROLLOUT_NONE), /* slow and crashing: nothing to go back to */
	    S(201000, 7, 2, 2, 9, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(261000, 7, 2, 2, 9, false, true, ROLLOUT_GOOD, ROLLOUT_NONE),
	    S(400000, 7, 2, 2, 9, false, true, ROLLOUT_WAIT, ROLLOUT_NONE), END } },
	{ "ready dips reset the stable clock", 5,
	  { S(0, 7, 2, 2, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(50000, 7, 2, 1, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(60000, 7, 2, 2, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(119000, 7, 2, 2, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(120000, 7, 2, 2, 0, false, true, ROLLOUT_GOOD, ROLLOUT_NONE), END } },
	{ "crash loop of a new version fails it at once", 5,
	  { S(0, 7, 3, 0, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(3000, 7, 3, 0, 2, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(6000, 7, 3, 0, 3, false, true, ROLLOUT_FAILED, ROLLOUT_CRASH_LOOP),
	    S(9000, 7, 3, 0, 5, true, true, ROLLOUT_WAIT, ROLLOUT_NONE), END } },
	{ "an open breaker is a crash loop", 5,
	  { S(0, 7, 1, 0, 0, true, true, ROLLOUT_FAILED, ROLLOUT_CRASH_LOOP), END } },
	{ "never ready within the window fails", 5,
	  { S(0, 7, 2, 0, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(119999, 7, 2, 1, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(120000, 7, 2, 1, 0, false, true, ROLLOUT_FAILED, ROLLOUT_NOT_READY), END } },
	{ "the window starts when the image is there, not at the deploy", 5,
	  { S(0, 7, 2, 0, 0, false, false, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(300000, 7, 2, 0, 0, false, false, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(301000, 7, 2, 0, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(420000, 7, 2, 2, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(480000, 7, 2, 2, 0, false, true, ROLLOUT_GOOD, ROLLOUT_NONE), END } },
	{ "the last-known-good itself is never judged failed", 7,
	  { S(0, 7, 2, 0, 5, true, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(500000, 7, 2, 0, 9, true, true, ROLLOUT_WAIT, ROLLOUT_NONE), END } },
	{ "a new version starts a new judgement", 5,
	  { S(0, 7, 1, 0, 3, false, true, ROLLOUT_FAILED, ROLLOUT_CRASH_LOOP),
	    S(1000, 5, 1, 1, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(2000, 8, 1, 0, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(62000, 8, 1, 1, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(122000, 8, 1, 1, 0, false, true, ROLLOUT_GOOD, ROLLOUT_NONE), END } },
	{ "scaled to zero is never ready, so never good", 5,
	  { S(0, 7, 0, 0, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE),
	    S(100000, 7, 0, 0, 0, false, true, ROLLOUT_WAIT, ROLLOUT_NONE), END } },
};

static void verdicts_follow_the_situation(void **state)
{
	(void)state;
	const struct rollout_limits lim = { .stable_ms = 60000, .window_ms = 120000, .max_crashes = 3 };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rollout_track t;
		memset(&t, 0, sizeof(t));
		for (const struct step *s = cases[i].steps; s->hash; s++) {
			struct rollout_obs o = { .spec_hash = s->hash, .desired = s->desired, .ready = s->ready,
						 .crashes = s->crashes, .circuit_open = s->circuit, .image_ready = s->image };
			enum rollout_reason why;
			enum rollout_verdict v = rollout_observe(&t, &o, cases[i].lkg, &lim, s->t_ms, &why);
			if (v != s->want || why != s->why)
				fail_msg("%s: at %llu ms got verdict %d (%s), want %d (%s)", cases[i].name,
					 (unsigned long long)s->t_ms, v, rollout_reason_name(why), s->want,
					 rollout_reason_name(s->why));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(verdicts_follow_the_situation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
