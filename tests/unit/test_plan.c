/* tests/unit/test_plan.c - the supervisor's pure planner, table-driven over situations: fresh start, adoption, rolling update, crash loop, engine down, scaling with draining, removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "agent/supervise/plan.h"

/* A replica slot, written as a token:
 *   first letter, the lifecycle: '.' empty, 'c' creating, 's' starting, 'R' running,
 *     'k' killing, 'b' back-off, 'x' exited, 'd' removing;
 *   then any of: 'o' runs an old spec, '+' serving, 'p' its readiness was probed,
 *     'D' draining, 'r' retiring (draining before it goes), 'X' to be removed,
 *     '*' a lifecycle call in flight, 'i' an engine call holds the slot,
 *     'a' its restart timer is armed.
 * Slots not written are empty. */
static void parse_slot(const char *tok, size_t len, struct plan_replica *r)
{
	static const char life[] = ".csRkbxd";
	static const enum sup_replica_state st[] = { SUP_R_EMPTY, SUP_R_CREATING, SUP_R_STARTING, SUP_R_RUNNING,
						     SUP_R_KILLING, SUP_R_BACKOFF, SUP_R_EXITED, SUP_R_REMOVING };
	const char *p = strchr(life, tok[0]);
	assert_non_null(p);
	memset(r, 0, sizeof(*r));
	r->st = st[p - life];
	r->current = true;
	for (size_t i = 1; i < len; i++) {
		switch (tok[i]) {
		case 'o': r->current = false; break;
		case '+': r->serving = true; r->probed = true; break;
		case 'p': r->probed = true; break;
		case 'D': r->draining = true; break;
		case 'r': r->intent = REPLICA_RETIRE; r->draining = true; break;
		case 'X': r->intent = REPLICA_REMOVE; break;
		case '*': r->op = r->st == SUP_R_CREATING ? REPLICA_OP_CREATE : REPLICA_OP_START; r->calls = true; break;
		case 'i': r->calls = true; break;
		case 'a': r->restart_armed = true; break;
		default: fail_msg("bad slot token %.*s", (int)len, tok);
		}
	}
}

static void parse_slots(const char *s, struct plan_replica r[DEPLOY_MAX_REPLICAS])
{
	memset(r, 0, DEPLOY_MAX_REPLICAS * sizeof(*r));
	unsigned n = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		size_t len = strcspn(s, " ");
		if (!len)
			break;
		assert_true(n < DEPLOY_MAX_REPLICAS);
		parse_slot(s, len, &r[n++]);
		s += len;
	}
}

/* The plan as "S0 R2:down U1 C3 C4t F": Restart, Retire:why, Unretire, Create (t: trial), Forget. */
static const char *trail(const struct plan_action *a, unsigned n)
{
	static char buf[512];
	static const char *why[] = { [PLAN_WHY_NONE] = "", [PLAN_WHY_REMOVED] = ":removed",
				     [PLAN_WHY_ROLL_UNREADY] = ":unready", [PLAN_WHY_ROLL] = ":roll",
				     [PLAN_WHY_SCALE_DOWN] = ":down" };
	buf[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		char one[32];
		const char *sep = i ? " " : "";
		switch (a[i].op) {
		case PLAN_RESTART: snprintf(one, sizeof(one), "%sS%u", sep, a[i].slot); break;
		case PLAN_RETIRE: snprintf(one, sizeof(one), "%sR%u%s", sep, a[i].slot, why[a[i].why]); break;
		case PLAN_UNRETIRE: snprintf(one, sizeof(one), "%sU%u", sep, a[i].slot); break;
		case PLAN_CREATE: snprintf(one, sizeof(one), "%sC%u%s", sep, a[i].slot, a[i].trial ? "t" : ""); break;
		case PLAN_FORGET: snprintf(one, sizeof(one), "%sF", sep); break;
		}
		strcat(buf, one);
	}
	return buf;
}

enum world { UP = 0, DOWN, STALE, UNAPPLIED };

struct situation {
	const char *name;
	const char *slots;
	uint32_t desired;
	uint32_t max;                /* replicas_max; 0: desired */
	enum world world;            /* UP: applied, engine up, list fresh */
	enum sup_circuit circuit;
	bool removing;
	bool no_readiness;           /* the spec has no readiness probe */
	uint64_t not_before_ms;      /* a failed create holds creates until then (now is 5000) */
	const char *want;
};

static const struct situation situations[] = {
	/* fresh start */
	{ "fresh start creates every replica at once", "", 3, 0, UP, 0, false, false, 0, "C0 C1 C2" },
	{ "nothing before a desired set is applied", "", 3, 0, UNAPPLIED, 0, false, false, 0, "" },
	{ "no create before the engine's list answered", "", 2, 0, STALE, 0, false, false, 0, "" },
	{ "a slot still held by a call is skipped", ".i", 2, 0, UP, 0, false, false, 0, "C1 C2" },
	{ "creates stay within replicas_max + 1 slots", ".i .i", 2, 2, UP, 0, false, false, 0, "C2" },
	/* adopt after restart */
	{ "adopted replicas count; only the missing one is made", "R+ R", 3, 0, UP, 0, false, false, 0, "C2" },
	{ "an adopted exited replica restarts", "b R+", 2, 0, UP, 0, false, false, 0, "S0" },
	{ "adopted old-spec replicas: one surge replica", "Ro+ Ro+", 2, 0, UP, 0, false, false, 0, "C2" },
	{ "an adopted orphan is retired, then forgotten", "R+ b", 0, 0, UP, 0, true, false, 0,
	  "S1 R0:removed R1:removed" },
	/* rolling update */
	{ "roll: an old ready replica goes once desired+1 are ready", "Ro+ Ro+ R+", 2, 3, UP, 0, false, false, 0,
	  "R0:roll C3" },
	{ "roll: the surge slot is within replicas_max + 1", "Ro+ Ro+ R+", 2, 2, UP, 0, false, false, 0, "R0:roll" },
	{ "roll: a probed unready old replica goes at once", "Rop", 1, 0, UP, 0, false, false, 0, "R0:unready C1" },
	{ "roll: an old replica not probed yet waits", "Ro", 1, 0, UP, 0, false, false, 0, "C1" },
	{ "roll: no readiness probe means judged", "Ro", 1, 0, UP, 0, false, true, 0, "R0:unready C1" },
	{ "roll: an old replica still starting is left", "so* R", 1, 0, UP, 0, false, false, 0, "" },
	{ "roll: an old replica in back-off goes", "bo R", 1, 0, UP, 0, false, false, 0, "S0 R0:unready" },
	{ "roll: an old replica with a call in flight is left", "Rop* R", 1, 0, UP, 0, false, false, 0, "" },
	{ "roll: never below desired ready", "Ro+ Ro+ R", 2, 0, UP, 0, false, false, 0, "" },
	/* crash loop */
	{ "crash loop: back-off waits for its timer", "ba", 1, 0, UP, 0, false, false, 0, "" },
	{ "crash loop: an open circuit holds restarts and creates", "b .", 2, 0, UP, SUP_CIRCUIT_OPEN, false,
	  false, 0, "" },
	{ "crash loop: half-open makes one trial", "b", 2, 0, UP, SUP_CIRCUIT_HALF_OPEN, false, false, 0, "C1t" },
	{ "crash loop: a failed create holds creates", "", 2, 0, UP, 0, false, false, 9000, "" },
	{ "crash loop: held creates resume after the hold", "", 2, 0, UP, 0, false, false, 5000, "C0 C1" },
	{ "an exited replica (restart policy) still counts", "x", 1, 0, UP, 0, false, false, 0, "" },
	/* engine down */
	{ "engine down: nothing", "b . R+", 3, 0, DOWN, 0, false, false, 0, "" },
	{ "engine back, list not yet: restarts only", "b . R+", 3, 0, STALE, 0, false, false, 0, "S0" },
	/* scale up/down with draining */
	{ "scale down: the highest slots go", "R+ R+ R+", 1, 0, UP, 0, false, false, 0, "R2:down R1:down" },
	{ "scale down: a draining replica goes first", "R+ RD R+", 2, 0, UP, 0, false, false, 0, "R1:down" },
	{ "scale down: an unready replica before a ready one", "R R+ R+", 2, 0, UP, 0, false, false, 0, "R0:down" },
	{ "scale down: a retiring replica is not counted", "R+ Rr R+", 2, 0, UP, 0, false, false, 0, "" },
	{ "scale up while one drains: it is kept", "R+ Rr", 2, 0, UP, 0, false, false, 0, "U1" },
	{ "scale up: an old draining replica is not kept", "R+ Ror", 2, 0, UP, 0, false, false, 0, "C2" },
	{ "scale up: a replica being removed is not counted", "R+ dX", 2, 0, UP, 0, false, false, 0, "C2" },
	/* removal */
	{ "removal: running replicas are retired", "R+ R", 0, 0, UP, 0, true, false, 0, "R0:removed R1:removed" },
	{ "removal: creating, removing and busy ones are left", "c* dX R*", 0, 0, UP, 0, true, false, 0, "" },
	{ "removal: gone when no replica is left", "", 0, 0, UP, 0, true, false, 0, "F" },
	{ "removal: nothing while the engine is down", "", 0, 0, DOWN, 0, true, false, 0, "" },
};

static void plan_situation(const struct situation *c, struct plan_dep *d, struct plan_world *w,
			   struct deploy_spec *sp)
{
	memset(sp, 0, sizeof(*sp));
	snprintf(sp->name, sizeof(sp->name), "x");
	sp->replicas = c->desired;
	sp->replicas_min = 0;
	sp->replicas_max = c->max ? c->max : c->desired;
	sp->readiness.kind = c->no_readiness ? PROBE_NONE : PROBE_HTTP;
	memset(d, 0, sizeof(*d));
	d->spec = sp;
	d->removing = c->removing;
	d->circuit = c->circuit;
	d->create_not_before_ms = c->not_before_ms;
	parse_slots(c->slots, d->r);
	*w = (struct plan_world){ .applied = c->world != UNAPPLIED,
				  .engine_up = c->world != DOWN,
				  .list_fresh = c->world == UP,
				  .now_ms = 5000 };
}

static void plans_every_situation(void **state)
{
	(void)state;
	unsigned failed = 0;
	for (size_t i = 0; i < sizeof(situations) / sizeof(situations[0]); i++) {
		const struct situation *c = &situations[i];
		struct deploy_spec sp;
		struct plan_dep d;
		struct plan_world w;
		struct plan_action a[PLAN_MAX_ACTIONS];
		plan_situation(c, &d, &w, &sp);
		const char *got = trail(a, plan_deployment(&d, &w, a, PLAN_MAX_ACTIONS));
		if (strcmp(got, c->want)) {
			print_error("situation \"%s\" [%s]: want \"%s\", got \"%s\"\n", c->name, c->slots, c->want, got);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* Same input, same plan; the input is not touched (decisions mark a copy). */
static void planning_is_pure(void **state)
{
	(void)state;
	const struct situation *c = &situations[9]; /* the roll */
	struct deploy_spec sp;
	struct plan_dep d, before;
	struct plan_world w;
	struct plan_action a[PLAN_MAX_ACTIONS], b[PLAN_MAX_ACTIONS];
	plan_situation(c, &d, &w, &sp);
	before = d;
	unsigned n = plan_deployment(&d, &w, a, PLAN_MAX_ACTIONS);
	assert_memory_equal(&d, &before, sizeof(d));
	assert_int_equal(plan_deployment(&d, &w, b, PLAN_MAX_ACTIONS), n);
	assert_memory_equal(a, b, n * sizeof(a[0]));
	assert_string_equal(trail(a, n), "R0:roll C3");
	assert_int_equal(a[0].ready, 3); /* logged with the decision */
}

/* The biggest plans fit PLAN_MAX_ACTIONS; a smaller out is cut, never overrun. */
static void plans_are_bounded(void **state)
{
	(void)state;
	struct deploy_spec sp;
	struct plan_dep d;
	struct plan_world w;
	struct plan_action a[PLAN_MAX_ACTIONS + 1];
	struct situation c = { "every slot in back-off, all removed", "", 0, 0, UP, 0, true, false, 0, "" };
	plan_situation(&c, &d, &w, &sp);
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		d.r[i].st = SUP_R_BACKOFF;
	assert_int_equal(plan_deployment(&d, &w, a, PLAN_MAX_ACTIONS), 2 * DEPLOY_MAX_REPLICAS);
	memset(a, 0xee, sizeof(a));
	assert_int_equal(plan_deployment(&d, &w, a, 3), 3);
	unsigned char guard[sizeof(a[3])];
	memset(guard, 0xee, sizeof(guard));
	assert_memory_equal(&a[3], guard, sizeof(guard));
	/* a full scale-up from nothing */
	c = (struct situation){ "fresh, maximum", "", DEPLOY_MAX_REPLICAS, 0, UP, 0, false, false, 0, "" };
	plan_situation(&c, &d, &w, &sp);
	assert_int_equal(plan_deployment(&d, &w, a, PLAN_MAX_ACTIONS), DEPLOY_MAX_REPLICAS);
}

static void names(void **state)
{
	(void)state;
	assert_string_equal(plan_op_name(PLAN_UNRETIRE), "unretire");
	assert_string_equal(plan_why_name(PLAN_WHY_SCALE_DOWN), "scale_down");
	assert_string_equal(replica_op_name(REPLICA_OP_START_DIED), "start_died");
	assert_string_equal(replica_pause_name(REPLICA_UNPAUSING), "unpausing");
	assert_string_equal(replica_intent_name(REPLICA_RETIRE), "retire");
	assert_string_equal(replica_exit_name(REPLICA_EXIT_CHAOS), "chaos");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plans_every_situation),
		cmocka_unit_test(planning_is_pure),
		cmocka_unit_test(plans_are_bounded),
		cmocka_unit_test(names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
