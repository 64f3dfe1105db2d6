/* tests/unit/test_ctl_rollout.c - berthctl's staged rollouts, the pure part: rollout file validation, wave plans, device verdicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/cmd/ctl_rollout.h"

#define DEPS "\"deployments\":[{\"name\":\"det\",\"image\":\"localhost/berth-worker:v2\",\"replicas\":1}]"

static void file_validation(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *err; /* NULL: valid */
	} cases[] = {
		{ "{\"version\":7," DEPS ",\"canary_pct\":1,\"wave_pct\":10,\"pause_s\":5,"
		  "\"gate\":{\"soak_s\":30,\"ready_timeout_s\":120,\"min_sla\":0.95,\"max_restarts\":2}}",
		  NULL },
		{ "{\"schema\":1,\"version\":2," DEPS ",\"waves\":3,\"gate\":{}}", NULL },
		{ "not json", "not a JSON object" },
		{ "{\"version\":7," DEPS ",\"waves\":3}", "gate: expected an object" },
		{ "{\"version\":0," DEPS ",\"waves\":3,\"gate\":{}}", "version: expected the new desired-state version" },
		{ "{\"version\":7,\"deployments\":[],\"waves\":3,\"gate\":{}}", "deployments: expected a non-empty array" },
		{ "{\"version\":7,\"deployments\":[{\"name\":\"Det\",\"image\":\"x\"}],\"waves\":3,\"gate\":{}}",
		  "deployments: " },
		{ "{\"version\":7," DEPS ",\"gate\":{}}", "waves, wave_pct: give exactly one" },
		{ "{\"version\":7," DEPS ",\"waves\":2,\"wave_pct\":10,\"gate\":{}}", "waves, wave_pct: give exactly one" },
		{ "{\"version\":7," DEPS ",\"waves\":0,\"gate\":{}}", "waves: expected an integer 1..100, got 0" },
		{ "{\"version\":7," DEPS ",\"wave_pct\":101,\"gate\":{}}", "wave_pct: expected an integer 1..100, got 101" },
		{ "{\"version\":7," DEPS ",\"waves\":2,\"canary_pct\":60,\"gate\":{}}", "canary_pct: expected an integer 0..50" },
		{ "{\"version\":7," DEPS ",\"waves\":2,\"pause_s\":-1,\"gate\":{}}", "pause_s: expected an integer 0..86400, got -1" },
		{ "{\"version\":7," DEPS ",\"waves\":2,\"gate\":{\"soak_s\":0}}", "gate.soak_s: expected an integer 1..86400, got 0" },
		{ "{\"version\":7," DEPS ",\"waves\":2,\"gate\":{\"min_sla\":1.5}}", "gate.min_sla: expected a compliance ratio 0..1" },
		{ "{\"version\":7," DEPS ",\"waves\":2,\"gate\":{\"soak\":5}}", "gate.soak: unknown key" },
		{ "{\"version\":7," DEPS ",\"waves\":2,\"gate\":{},\"canary\":1}", "canary: unknown key" },
		{ "{\"schema\":2,\"version\":7," DEPS ",\"waves\":2,\"gate\":{}}", "schema: expected 1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_rollout r;
		char err[256] = "";
		int rc = ctl_rollout_parse(cases[i].text, strlen(cases[i].text), &r, err, sizeof(err));
		if (cases[i].err ? (rc != -EINVAL || !strstr(err, cases[i].err)) : rc != 0) {
			print_error("case %zu: rc %d err '%s', want '%s'\n", i, rc, err, cases[i].err ? cases[i].err : "ok");
			fail();
		}
		if (rc == 0)
			ctl_rollout_free(&r);
	}
	struct ctl_rollout r;
	char err[256];
	const char *t = cases[0].text;
	assert_int_equal(ctl_rollout_parse(t, strlen(t), &r, err, sizeof(err)), 0);
	assert_int_equal(r.version, 7);
	assert_int_equal(r.ndeps, 1);
	assert_string_equal(r.dep[0].name, "det");
	assert_string_equal(r.dep[0].image, "localhost/berth-worker:v2");
	assert_int_equal(r.canary_pct, 1);
	assert_int_equal(r.wave_pct, 10);
	assert_int_equal(r.soak_s, 30);
	assert_int_equal(r.ready_timeout_s, 120);
	assert_int_equal(r.max_restarts, 2);
	assert_true(r.min_sla > 0.949 && r.min_sla < 0.951);
	assert_non_null(strstr(r.deployments_json, "localhost/berth-worker:v2"));
	ctl_rollout_free(&r);
}

/* Wave sizes for a group of n: canary first, then the waves. */
static void wave_plans(void **state)
{
	(void)state;
	static const struct {
		uint32_t canary_pct, waves, wave_pct;
		size_t n;
		const char *sizes; /* wave sizes, space separated */
		bool canary;
	} cases[] = {
		{ 1, 0, 10, 1000, "10 100 100 100 100 100 100 100 100 100 90", true }, /* the bench: 1% canary, 10% waves */
		{ 1, 0, 10, 100, "1 10 10 10 10 10 10 10 10 10 9", true },
		{ 10, 3, 0, 10, "1 3 3 3", true },
		{ 0, 3, 0, 10, "4 3 3", false },
		{ 0, 4, 0, 2, "1 1", false },                                         /* more waves than devices */
		{ 50, 2, 0, 1, "1", true },                                           /* the canary is the group */
		{ 20, 0, 100, 5, "1 4", true },
		{ 1, 0, 1, 3, "1 1 1", true },                                        /* at least one a wave */
		{ 5, 2, 0, 0, "", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_rollout r = { .canary_pct = cases[i].canary_pct, .waves = cases[i].waves,
					 .wave_pct = cases[i].wave_pct };
		size_t start[CTL_ROLLOUT_MAX_WAVES + 2];
		bool canary = false;
		unsigned nw = ctl_rollout_plan(&r, cases[i].n, start, &canary);
		char got[256] = "";
		size_t o = 0;
		for (unsigned w = 0; w < nw; w++)
			o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%zu", w ? " " : "", start[w + 1] - start[w]);
		if (strcmp(got, cases[i].sizes) || canary != cases[i].canary || start[nw] != cases[i].n) {
			print_error("case %zu: sizes '%s' canary %d, want '%s' canary %d\n", i, got, canary, cases[i].sizes,
				    cases[i].canary);
			fail();
		}
	}
	/* 1% waves of 10,000 devices: at most CTL_ROLLOUT_MAX_WAVES after the canary, the last takes the rest. */
	struct ctl_rollout r = { .canary_pct = 0, .wave_pct = 1 };
	size_t start[CTL_ROLLOUT_MAX_WAVES + 2];
	bool canary;
	assert_int_equal(ctl_rollout_plan(&r, 10000, start, &canary), 100);
	assert_int_equal(start[100], 10000);
}

#define REP(dv, deps, extra) "{\"desired_version\":" #dv ",\"groups\":[\"edge\",\"eu\"],\"trust\":{\"refused\":2}" extra \
	",\"deployments\":[" deps "]}"
#define DEP(img, ready, want, restarts, more) "{\"name\":\"det\",\"image\":\"" img "\",\"replicas_ready\":" #ready \
	",\"replicas_desired\":" #want ",\"restarts\":" #restarts ",\"circuit\":\"closed\"" more "}"

/* The gate's verdict on one device from its reported state. */
static void device_verdicts(void **state)
{
	(void)state;
	struct ctl_rollout r = { .version = 7, .ndeps = 1, .min_sla = 0.9, .max_restarts = 1 };
	snprintf(r.dep[0].name, sizeof(r.dep[0].name), "det");
	snprintf(r.dep[0].image, sizeof(r.dep[0].image), "localhost/w:v2");
	struct ctl_dev_base base = { .set = true, .restarts = 3 };
	struct ctl_dev_base refused_more = { .set = true, .restarts = 0, .refused = true,
					     .refused_why = "bad_signature: auth.sig" };
	static const struct {
		const char *rep;
		int base; /* 0 none, 1 base, 2 refused_more */
		enum ctl_dev_phase want;
		const char *why;
	} cases[] = {
		{ NULL, 0, CTL_DEV_PENDING, "no reported state" },
		{ REP(6, DEP("localhost/w:v1", 1, 1, 0, ""), ""), 0, CTL_DEV_PENDING, "at desired version 6" },
		{ REP(6, DEP("localhost/w:v1", 1, 1, 0, ""), ""), 2, CTL_DEV_FAILED,
		  "refused what was sent (bad_signature: auth.sig) and stays at desired version 6" },
		{ REP(7, DEP("localhost/w:v2", 0, 1, 3, ""), ""), 1, CTL_DEV_APPLYING, "det: ready 0/1" },
		{ REP(7, DEP("localhost/w:v1", 1, 1, 3, ""), ""), 1, CTL_DEV_APPLYING, "det: image localhost/w:v1, not yet" },
		{ REP(7, DEP("localhost/w:v2", 1, 1, 4, ""), ""), 1, CTL_DEV_READY, "" },
		{ REP(7, DEP("localhost/w:v2", 0, 0, 3, ""), ""), 1, CTL_DEV_READY, "" }, /* scaled to 0: nothing to wait for */
		{ REP(7, DEP("localhost/w:v2", 1, 1, 5, ""), ""), 1, CTL_DEV_FAILED, "2 restarts since the wave started (at most 1)" },
		{ REP(7, DEP("localhost/w:v2", 1, 1, 9, ""), ""), 0, CTL_DEV_READY, "" }, /* no baseline: no restart bound */
		{ REP(7, DEP("localhost/w:v2", 1, 1, 3, ",\"sla_compliance\":0.5"), ""), 1, CTL_DEV_FAILED,
		  "det: SLA compliance 0.500 below 0.900" },
		{ REP(7, DEP("localhost/w:v2", 1, 1, 3, ",\"sla_compliance\":null"), ""), 1, CTL_DEV_READY, "" },
		{ REP(7, "{\"name\":\"det\",\"image\":\"localhost/w:v1\",\"replicas_ready\":1,\"replicas_desired\":1,"
			 "\"last_rollback\":{\"reason\":\"crash_loop\",\"from_image\":\"localhost/w:v2\",\"to_image\":\"localhost/w:v1\"}}",
		      ""),
		  1, CTL_DEV_FAILED, "det: rolled back by the device (crash_loop)" },
		{ REP(7, "{\"name\":\"det\",\"image\":\"localhost/w:v2\",\"circuit\":\"open\"}", ""), 1, CTL_DEV_FAILED,
		  "det: circuit open" },
		{ REP(7, "{\"name\":\"other\"}", ""), 1, CTL_DEV_APPLYING, "det: not reported yet" },
		{ REP(7, DEP("localhost/w:v2", 2, 2, 3, ",\"rolling\":true"), ""), 1, CTL_DEV_APPLYING, "rolling" },
		{ REP(8, DEP("localhost/w:v3", 1, 1, 0, ""), ""), 1, CTL_DEV_READY, "already at a newer desired version 8" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ctl_dev_eval ev;
		const struct ctl_dev_base *b = cases[i].base == 1 ? &base : cases[i].base == 2 ? &refused_more : NULL;
		enum ctl_dev_phase p =
			ctl_rollout_eval(&r, cases[i].rep, cases[i].rep ? strlen(cases[i].rep) : 0, b, &ev);
		if (p != cases[i].want || ev.phase != p || !strstr(ev.why, cases[i].why)) {
			print_error("case %zu: phase %d why '%s', want %d '%s'\n", i, p, ev.why, cases[i].want, cases[i].why);
			fail();
		}
	}
	const char *rep = REP(7, DEP("localhost/w:v2", 1, 1, 0, ""), "");
	assert_true(ctl_reported_in_group(rep, strlen(rep), "eu"));
	assert_false(ctl_reported_in_group(rep, strlen(rep), "e"));
	assert_false(ctl_reported_in_group("{}", 2, "eu"));
	assert_false(ctl_reported_in_group(NULL, 0, "eu"));
}

/* A refusal counts only when it is a trust_refused row stamped after the wave started. */
static void refusal_events(void **state)
{
	(void)state;
	char why[96];
	const char *b = "{\"schema\":1,\"rows\":[{\"seq\":4,\"ts\":1000,\"data\":{\"event\":\"trust_refused\",\"detail\":"
			"{\"what\":\"message\",\"code\":\"old\",\"message\":\"before\"}}},{\"seq\":5,\"ts\":2000,\"data\":"
			"{\"event\":\"rollback\",\"detail\":{}}},{\"seq\":6,\"ts\":3000,\"data\":{\"event\":\"trust_refused\","
			"\"detail\":{\"what\":\"message\",\"code\":\"unknown_key\",\"path\":\"auth.key\",\"message\":\"key "
			"intruder is not trusted\"}}}]}";
	assert_true(ctl_events_refusal(b, strlen(b), 2500, why, sizeof(why)));
	assert_string_equal(why, "unknown_key: key intruder is not trusted");
	assert_true(ctl_events_refusal(b, strlen(b), 500, why, sizeof(why)));
	assert_string_equal(why, "old: before");
	assert_false(ctl_events_refusal(b, strlen(b), 3001, why, sizeof(why)));
	assert_false(ctl_events_refusal("nope", 4, 0, why, sizeof(why)));
	const char *other = "{\"rows\":[{\"ts\":5,\"data\":{\"event\":\"rollback\"}}]}";
	assert_false(ctl_events_refusal(other, strlen(other), 0, why, sizeof(why)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(file_validation),
		cmocka_unit_test(wave_plans),
		cmocka_unit_test(device_verdicts),
		cmocka_unit_test(refusal_events),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
