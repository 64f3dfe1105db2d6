/* tests/unit/test_sitestate.c - the site state machine: assignments follow the log, refusals change nothing, snapshots round-trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/site/sitestate.h"

static const char *const ids[] = { "gw1", "gw2", "gw3" };

static const char doc_v3[] =
	"{\"version\":3,\"deployments\":[{\"name\":\"det\",\"image\":\"img\",\"resources\":{\"cpu\":\"500m\","
	"\"memory\":\"64Mi\"},\"sla\":{\"class\":\"urgent\"},\"placement\":{\"scope\":\"site\",\"replicas\":2,"
	"\"spread\":true}},{\"name\":\"bulk\",\"image\":\"img\",\"inference\":{\"port\":8600},\"sla\":{\"class\":\"batch\"},"
	"\"placement\":{\"scope\":\"site\",\"replicas\":1}}]}";

static int run(struct sitestate *s, const char *cmd)
{
	char why[256];
	return sitestate_apply(s, cmd, strlen(cmd), why, sizeof(why));
}

static int run_doc(struct sitestate *s, uint64_t version, const char *doc)
{
	char buf[4096], why[256];
	int n = sitestate_cmd_deployments(buf, sizeof(buf), version, doc, strlen(doc));
	assert_true(n > 0);
	int rc = sitestate_apply(s, buf, (size_t)n, why, sizeof(why));
	if (rc)
		print_message("refused: %s\n", why);
	return rc;
}

static struct sitestate *three_up(void)
{
	struct sitestate *s = sitestate_create(ids, 3);
	assert_non_null(s);
	assert_int_equal(run(s, "M gw1 2000 1073741824"), 0);
	assert_int_equal(run(s, "M gw2 1500 1073741824"), 0);
	assert_int_equal(run(s, "M gw3 1000 1073741824"), 0);
	assert_int_equal(run_doc(s, 3, doc_v3), 0);
	return s;
}

static unsigned total(const struct sitestate *s, unsigned k)
{
	unsigned t = 0;
	for (unsigned i = 0; i < s->n; i++)
		t += sitestate_assigned(s, k, i);
	return t;
}

static void places_spread_and_moves_on_down(void **state)
{
	(void)state;
	struct sitestate *s = three_up();
	assert_int_equal(s->deps.n, 2);
	assert_int_equal(sitestate_assigned(s, 0, 0), 1); /* det: gw1 (most cpu) and gw2 */
	assert_int_equal(sitestate_assigned(s, 0, 1), 1);
	assert_int_equal(total(s, 1), 1);
	uint64_t gen = s->generation;
	assert_int_equal(run(s, "X gw1"), 0);
	assert_true(s->generation > gen);
	assert_int_equal(sitestate_assigned(s, 0, 0), 0);
	assert_int_equal(sitestate_assigned(s, 0, 1), 1);
	assert_int_equal(sitestate_assigned(s, 0, 2), 1);
	/* gw1 back: nothing moves back (no thrashing) */
	gen = s->generation;
	assert_int_equal(run(s, "M gw1 2000 1073741824"), 0);
	assert_int_equal(sitestate_assigned(s, 0, 0), 0);
	assert_true(s->generation == gen || total(s, 0) == 2);
	sitestate_destroy(s);
}

static void refusals_change_nothing(void **state)
{
	(void)state;
	struct sitestate *s = three_up();
	char *before, *after;
	size_t lb, la;
	assert_int_equal(sitestate_encode(s, &before, &lb), 0);
	char why[256];
	static const char *const bad[] = { "M gw9 1 1", "X nobody", "F gw1 nosuch", "Z what", "M gw1 x y", "", "D 1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_true(sitestate_apply(s, bad[i], strlen(bad[i]), why, sizeof(why)) < 0);
	assert_int_equal(run_doc(s, 3, doc_v3), -ESTALE);                                   /* not newer */
	assert_int_equal(run_doc(s, 9, "{\"version\":9,\"deployments\":[{\"name\":\"x\"}]}"), -EINVAL); /* no image */
	assert_int_equal(run_doc(s, 9, "{\"version\":9,\"deployments\":[{\"name\":\"x\",\"image\":\"i\"}]}"),
			 -EINVAL); /* node-scoped */
	assert_int_equal(sitestate_apply(s, "M gw9 1 1", 9, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "gw9"));
	assert_int_equal(sitestate_encode(s, &after, &la), 0);
	/* only the applied/refused counters in the header differ */
	const char *b = strchr(before, '\n'), *a = strchr(after, '\n');
	assert_int_equal(lb - (size_t)(b - before), la - (size_t)(a - after));
	assert_memory_equal(b, a, la - (size_t)(a - after));
	free(before);
	free(after);
	sitestate_destroy(s);
}

static void exclusion_moves_and_new_spec_clears_it(void **state)
{
	(void)state;
	struct sitestate *s = three_up();
	assert_int_equal(sitestate_assigned(s, 1, 0), 1); /* bulk on gw1 */
	assert_int_equal(run(s, "F gw1 bulk"), 0);
	assert_int_equal(sitestate_assigned(s, 1, 0), 0);
	assert_int_equal(total(s, 1), 1);
	/* the same spec, newer version: the exclusion stays */
	assert_int_equal(run_doc(s, 4, doc_v3), 0);
	assert_int_equal(sitestate_assigned(s, 1, 0), 0);
	sitestate_destroy(s);
}

static void unplaceable_is_reported(void **state)
{
	(void)state;
	struct sitestate *s = three_up();
	assert_int_equal(run_doc(s, 5,
				 "{\"version\":5,\"deployments\":[{\"name\":\"huge\",\"image\":\"i\",\"resources\":"
				 "{\"cpu\":64},\"placement\":{\"scope\":\"site\",\"replicas\":1}}]}"),
			 0);
	assert_int_equal(s->deps.n, 1);
	assert_int_equal(s->place[0].unplaced, 1);
	assert_non_null(strstr(s->place[0].why, "cpu=64000m"));
	assert_int_equal(total(s, 0), 0);
	sitestate_destroy(s);
}

static void same_log_same_state_and_snapshot_round_trip(void **state)
{
	(void)state;
	static const char *const log[] = { "M gw2 800 1000000000", "M gw3 900 1000000000", "M gw1 700 1000000000",
					   "X gw3", "M gw3 950 1000000000", "F gw2 det", "J gw4 10.0.0.4:7400",
					   "M gw4 990 1000000000", "L gw3", "X gw1" };
	struct sitestate *a = sitestate_create(ids, 3), *b = sitestate_create(ids, 3);
	assert_int_equal(run_doc(a, 3, doc_v3), 0);
	assert_int_equal(run_doc(b, 3, doc_v3), 0);
	char *ea, *eb;
	size_t la, lb;
	for (size_t i = 0; i < sizeof(log) / sizeof(log[0]); i++) {
		assert_int_equal(run(a, log[i]), 0);
		assert_int_equal(run(b, log[i]), 0);
		/* a restart from a snapshot at any point continues identically */
		struct sitestate *c = sitestate_create(ids, 3);
		assert_int_equal(sitestate_encode(a, &ea, &la), 0);
		assert_int_equal(sitestate_decode(c, ea, la), 0);
		assert_int_equal(sitestate_encode(c, &eb, &lb), 0);
		assert_int_equal(la, lb);
		assert_memory_equal(ea, eb, la);
		free(ea);
		free(eb);
		sitestate_destroy(c);
	}
	assert_int_equal(sitestate_encode(a, &ea, &la), 0);
	assert_int_equal(sitestate_encode(b, &eb, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(ea, eb, la);
	free(ea);
	free(eb);
	/* every replica has one member at most, never a down or excluded one */
	for (unsigned k = 0; k < a->deps.n; k++)
		for (unsigned r = 0; r < DEPLOY_MAX_REPLICAS; r++) {
			int o = a->place[k].owner[r];
			if (o >= 0) {
				assert_true(a->m[o].up);
				assert_false(a->place[k].excluded & (1u << o));
			}
		}
	/* a snapshot of other members is refused */
	static const char *const other[] = { "gw1", "gw2", "gw4" };
	struct sitestate *d = sitestate_create(other, 3);
	assert_int_equal(sitestate_encode(a, &ea, &la), 0);
	assert_int_equal(sitestate_decode(d, ea, la), -EINVAL);
	free(ea);
	sitestate_destroy(d);
	sitestate_destroy(a);
	sitestate_destroy(b);
}

/* J and L: a joined member takes a free slot and gets replicas once up; a leaving member's replicas
 * move; bad changes are refused and change nothing (encoded state byte for byte). */
static void join_and_leave(void **state)
{
	(void)state;
	struct sitestate *s = sitestate_create(ids, 3);
	char why[192], *before, *after;
	size_t lb, la;
	assert_int_equal(run(s, "M gw1 2000 1073741824"), 0);
	assert_int_equal(run(s, "M gw2 1500 1073741824"), 0);
	assert_int_equal(run_doc(s, 3, doc_v3), 0);
	assert_int_equal(sitestate_members(s, NULL), 3);
	/* refusals, each naming the problem, none changing the state */
	static const struct { const char *cmd; int rc; const char *why; } bad[] = {
		{ "J gw2 10.0.0.9:7400", -EEXIST, "already in the site" },
		{ "J gw9 10.0.0.1:7400", -EEXIST, "is member gw1's" },
		{ "J gw9 10.0.0:7400", -EINVAL, "not A.B.C.D:PORT" },
		{ "L gw9", -ENOENT, "no member gw9" },
		{ "L gw1", -EBUSY, "not a majority" }, /* gw3 was never heard: 1 of 2 left up */
	};
	for (unsigned i = 0; i < 3; i++)
		sitestate_set_address(s, i, i == 0 ? "10.0.0.1:7400" : i == 1 ? "10.0.0.2:7400" : "10.0.0.3:7400");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sitestate_encode(s, &before, &lb), 0);
		uint64_t refused = s->refused;
		assert_int_equal(sitestate_apply(s, bad[i].cmd, strlen(bad[i].cmd), why, sizeof(why)), bad[i].rc);
		print_message("%s: %s\n", bad[i].cmd, why);
		assert_non_null(strstr(why, bad[i].why));
		assert_int_equal(s->refused, refused + 1);
		s->applied--, s->refused--; /* the counters aside, nothing changed */
		assert_int_equal(sitestate_encode(s, &after, &la), 0);
		assert_int_equal(la, lb);
		assert_memory_equal(before, after, la);
		free(before);
		free(after);
	}
	/* gw3 leaves (down, the two others up): slot 2 is free, gw4 takes it */
	assert_int_equal(run(s, "L gw3"), 0);
	assert_int_equal(sitestate_members(s, NULL), 2);
	assert_int_equal(sitestate_member(s, "gw3"), -1);
	assert_int_equal(run(s, "L gw2"), -EBUSY); /* a site of one is refused */
	assert_int_equal(run(s, "J gw4 10.0.0.3:7400"), 0); /* gw3's old address is free again */
	assert_int_equal(sitestate_member(s, "gw4"), 2);
	assert_int_equal(s->n, 3);
	assert_int_equal(sitestate_assigned(s, 0, 2), 0); /* down until heard */
	assert_int_equal(run(s, "M gw4 3000 1073741824"), 0);
	assert_int_equal(run(s, "J gw5 10.0.0.5:7400"), 0);
	assert_int_equal(run(s, "J gw6 10.0.0.6:7400"), 0);
	assert_int_equal(run(s, "J gw7 10.0.0.7:7400"), -ENOSPC); /* five members at most */
	assert_int_equal(s->n, 5);
	/* gw1 holds a det replica; it leaves: the replica moves to a member up without one */
	assert_int_equal(run(s, "M gw5 100 1073741824"), 0);
	assert_int_equal(sitestate_assigned(s, 0, 0), 1);
	uint64_t moves = s->moves;
	assert_int_equal(run(s, "L gw1"), 0);
	assert_int_equal(sitestate_assigned(s, 0, 0), 0);
	assert_int_equal(total(s, 0), 2);
	assert_true(s->moves > moves);
	/* a snapshot keeps the slots and addresses */
	struct sitestate *c = sitestate_create(ids, 3);
	assert_int_equal(sitestate_encode(s, &before, &lb), 0);
	assert_int_equal(sitestate_decode(c, before, lb), 0);
	assert_int_equal(sitestate_member(c, "gw4"), 2);
	assert_string_equal(c->m[2].address, "10.0.0.3:7400");
	assert_int_equal(sitestate_member(c, "gw1"), -1);
	free(before);
	sitestate_destroy(c);
	sitestate_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(places_spread_and_moves_on_down),
		cmocka_unit_test(refusals_change_nothing),
		cmocka_unit_test(exclusion_moves_and_new_spec_clears_it),
		cmocka_unit_test(unplaceable_is_reported),
		cmocka_unit_test(same_log_same_state_and_snapshot_round_trip),
		cmocka_unit_test(join_and_leave),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
