/* tests/unit/test_trust.c - the gateway's trust state on a real SQLite store: admission persisted across a restart, an RTC-less boot judged at the persisted floor, policy and keys kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/console/control.h"
#include "agent/telemetry/store.h"
#include "agent/trust/trust.h"
#include "helpers.h"
#include "ports/sim/sim.h"

#define JAN_2026 1767225600000LL

struct fx {
	char dir[64], path[128];
	struct store *st;
	uint8_t sk[32], pk[32];
	char keys[512];
	int events;
	char last_event[64];
};

static void on_event(void *arg, const char *type, const char *json)
{
	struct fx *x = arg;
	x->events++;
	snprintf(x->last_event, sizeof(x->last_event), "%s", type);
}

static struct trust *make(struct fx *x, const char *policy)
{
	struct trust_opts o = { .device_id = "gw-1", .groups = "site-a,line-2", .require_signatures = true,
				.keys_json = x->keys, .policy_json = policy, .event = on_event, .event_arg = x };
	o.verbs = control_trust_verbs(&o.n_verbs);
	struct trust_err e = { 0 };
	struct trust *t = trust_create(x->st, &o, &e);
	if (!t)
		fail_msg("trust_create: %s %s", e.path, e.message);
	return t;
}

static char *sign(struct fx *x, const char *msg, const char *kind, const char *target, int64_t iat, int64_t exp)
{
	char *out = NULL;
	struct trust_err e = { 0 };
	assert_int_equal(envelope_sign(msg, strlen(msg), kind, "console-1", x->sk, target, iat, exp, &out, &e), 0);
	return out;
}

static int setup(void **state)
{
	sim_reset();
	struct fx *x = calloc(1, sizeof(*x));
	if (test_tmpdir(x->dir, sizeof(x->dir), "trust", x->path, sizeof(x->path)))
		return -1;
	struct store_opts so = { .path = x->path, .budget_kb = 1024, .sync_full = false };
	if (store_open(&so, &x->st))
		return -1;
	memset(x->sk, 7, sizeof(x->sk));
	if (sig_public_of(x->sk, x->pk))
		return -1;
	char pub64[64];
	envelope_b64_encode(x->pk, 32, pub64, sizeof(pub64));
	snprintf(x->keys, sizeof(x->keys),
		 "{\"schema\":1,\"version\":1,\"keys\":[{\"id\":\"console-1\",\"public\":\"%s\",\"not_before\":%lld,"
		 "\"not_after\":%lld}]}",
		 pub64, JAN_2026 - 86400000LL, JAN_2026 + 30 * 86400000LL);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	store_close(x->st);
	test_rmtree(x->dir);
	free(x);
	return 0;
}

static int verify_admit(struct trust *t, const char *msg, struct trust_err *e)
{
	struct trust_verdict v;
	int rc = trust_verify(t, msg, strlen(msg), NULL, &v, e);
	return rc ? rc : trust_admit(t, &v, e);
}

static void admitted_once_across_restart(void **state)
{
	struct fx *x = *state;
	struct trust *t = make(x, NULL);
	char *m = sign(x, "{\"id\":\"c-1\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 1000, 0);
	struct trust_err e = { 0 };
	assert_int_equal(verify_admit(t, m, &e), 0);
	assert_int_equal(verify_admit(t, m, &e), -EALREADY);
	trust_destroy(t);
	/* berthd restarts: the window comes back from the store. */
	t = make(x, NULL);
	assert_int_equal(verify_admit(t, m, &e), -EALREADY);
	assert_string_equal(e.code, "replayed");
	char *g = sign(x, "{\"id\":\"c-2\",\"verb\":\"ping\"}", NULL, "group:line-2", JAN_2026 + 2000, 0);
	assert_int_equal(verify_admit(t, g, &e), 0);
	char *other = sign(x, "{\"id\":\"c-3\",\"verb\":\"ping\"}", NULL, "group:line-3", JAN_2026 + 3000, 0);
	assert_int_equal(verify_admit(t, other, &e), -EPERM);
	assert_string_equal(e.code, "wrong_target");
	assert_string_equal(x->last_event, "trust_refused");
	trust_destroy(t);
	free(m);
	free(g);
	free(other);
}

/* An admission writes its slot and the header, not the whole window: the
 * ids come back after a restart; a store in the old whole-window form is
 * read and converted; a damaged slot raises the mark over every id held. */
static void window_persisted_incrementally(void **state)
{
	struct fx *x = *state;
	struct trust *t = make(x, NULL);
	char *m[20];
	struct trust_err e = { 0 };
	for (int i = 0; i < 20; i++) {
		char body[64];
		snprintf(body, sizeof(body), "{\"id\":\"c-%d\",\"verb\":\"ping\"}", i);
		m[i] = sign(x, body, NULL, "device:gw-1", JAN_2026 + 1000 + i, 0);
		assert_int_equal(verify_admit(t, m[i], &e), 0);
	}
	trust_destroy(t);
	char val[128];
	assert_int_equal(store_kv_get(x->st, "trust.replay.19", val, sizeof(val)), 0);
	assert_string_equal(val, "1767225601019 c-19");
	t = make(x, NULL);
	for (int i = 0; i < 20; i++)
		assert_int_equal(verify_admit(t, m[i], &e), -EALREADY);
	trust_destroy(t);
	/* The old form: one text with every id. */
	char legacy[256];
	snprintf(legacy, sizeof(legacy), "F %lld\nR1 0 %lld 0\n%lld c-5\n", JAN_2026 + 1019, JAN_2026 + 1019,
		 JAN_2026 + 1005);
	for (int i = 0; i < 20; i++) {
		char key[32];
		snprintf(key, sizeof(key), "trust.replay.%d", i);
		assert_int_equal(store_kv_set(x->st, key, "-"), 0);
	}
	assert_int_equal(store_kv_set(x->st, "trust.replay", legacy), 0);
	t = make(x, NULL);
	assert_int_equal(verify_admit(t, m[5], &e), -EALREADY);
	assert_int_equal(verify_admit(t, m[6], &e), 0); /* only c-5 was in the old text */
	trust_destroy(t);
	t = make(x, NULL); /* converted to slots: still held */
	assert_int_equal(verify_admit(t, m[5], &e), -EALREADY);
	assert_int_equal(verify_admit(t, m[6], &e), -EALREADY);
	trust_destroy(t);
	/* A damaged slot: the id it held is unknown, so nothing up to the newest is admitted. */
	assert_int_equal(store_kv_set(x->st, "trust.replay.0", "garbage"), 0);
	t = make(x, NULL);
	assert_int_equal(verify_admit(t, m[7], &e), -EPERM);
	assert_string_equal(e.code, "replayed");
	char *next = sign(x, "{\"id\":\"c-99\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 1020, 0);
	assert_int_equal(verify_admit(t, next, &e), 0);
	trust_destroy(t);
	for (int i = 0; i < 20; i++)
		free(m[i]);
	free(next);
}

/* Every evaluation is logged, also without a policy (version 0, allow, rule
 * no_policy); the store keeps the newest CONFIG_TRUST_DECISIONS_KEPT, also
 * across a restart; each entry is sent as a policy_decision event. */
static void decisions_logged_without_policy_and_bounded(void **state)
{
	struct fx *x = *state;
	struct trust *t = make(x, NULL);
	struct trust_err e = { 0 };
	const int n = CONFIG_TRUST_DECISIONS_KEPT + 36;
	for (int i = 0; i < n; i++) {
		char body[128];
		snprintf(body, sizeof(body), "{\"id\":\"d-%d\",\"verb\":\"scale\",\"args\":{\"deployment\":\"d\",\"replicas\":1}}", i);
		char *m = sign(x, body, NULL, "device:gw-1", JAN_2026 + 100 + i, 0);
		struct trust_verdict v;
		x->events = 0;
		assert_int_equal(trust_verify(t, m, strlen(m), NULL, &v, &e), 0);
		assert_int_equal(trust_authorize(t, &v, "scale", "d", 1, NULL, &e), 0);
		assert_int_equal(x->events, 1);
		assert_string_equal(x->last_event, "policy_decision");
		free(m);
	}
	struct trust_stats ts;
	trust_get_stats(t, &ts);
	assert_int_equal(ts.decisions, n);
	char entry[2048], key[48];
	int kept = 0;
	for (int i = 0; i < CONFIG_TRUST_DECISIONS_KEPT + 8; i++) {
		snprintf(key, sizeof(key), "trust.decision.%d", i);
		if (store_kv_get(x->st, key, entry, sizeof(entry)) != 0)
			continue;
		kept++;
		assert_non_null(strstr(entry, "\"policy_version\":0,"));
		assert_non_null(strstr(entry, "\"result\":\"allow\""));
		assert_non_null(strstr(entry, "{\"rule\":\"no_policy\",\"violated\":false}"));
	}
	assert_int_equal(kept, CONFIG_TRUST_DECISIONS_KEPT);
	trust_destroy(t);
	/* After a restart the next entry replaces the oldest, not a newer one. */
	t = make(x, NULL);
	char *m = sign(x, "{\"id\":\"d-last\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 100 + n, 0);
	struct trust_verdict v;
	assert_int_equal(trust_verify(t, m, strlen(m), NULL, &v, &e), 0);
	assert_int_equal(trust_authorize(t, &v, "ping", NULL, -1, NULL, &e), 0);
	snprintf(key, sizeof(key), "trust.decision.%d", (n + 1) % CONFIG_TRUST_DECISIONS_KEPT);
	assert_int_equal(store_kv_get(x->st, key, entry, sizeof(entry)), 0);
	char want[32];
	snprintf(want, sizeof(want), "-%d\",", n + 1);
	assert_non_null(strstr(entry, want));
	assert_non_null(strstr(entry, "\"verb\":\"ping\""));
	trust_destroy(t);
	free(m);
}

static void rtc_less_boot_uses_the_floor(void **state)
{
	struct fx *x = *state;
	struct trust *t = make(x, NULL);
	/* Seen at 2026-01-20: the floor rises to that signed time. */
	char *late = sign(x, "{\"id\":\"c-1\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 19 * 86400000LL, 0);
	struct trust_err e = { 0 };
	assert_int_equal(verify_admit(t, late, &e), 0);
	trust_destroy(t);
	/* Reboot without an RTC: the clock says 1970. */
	sim_clock_set_wall_base_ms(0);
	t = make(x, NULL);
	/* A command that expired on 2026-01-10 is refused although the clock is at 1970. */
	char *stale = sign(x, "{\"id\":\"c-2\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 20 * 86400000LL,
			   JAN_2026 + 9 * 86400000LL + 1);
	assert_int_equal(verify_admit(t, stale, &e), -EINVAL); /* exp before iat: malformed */
	char *expired = sign(x, "{\"id\":\"c-3\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 86400000LL,
			     JAN_2026 + 2 * 86400000LL);
	assert_int_equal(verify_admit(t, expired, &e), -EPERM);
	assert_true(!strcmp(e.code, "expired") || !strcmp(e.code, "replayed"));
	/* Key window: a message issued after the key's not_after is refused whatever the clock. */
	char *outside = sign(x, "{\"id\":\"c-4\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 31 * 86400000LL, 0);
	assert_int_equal(verify_admit(t, outside, &e), -EPERM);
	assert_string_equal(e.code, "key_expired");
	/* A fresh one inside the window and after the floor is accepted at 1970. */
	char *fresh = sign(x, "{\"id\":\"c-5\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 19 * 86400000LL + 5, 0);
	assert_int_equal(verify_admit(t, fresh, &e), 0);
	trust_destroy(t);
	free(late), free(stale), free(expired), free(outside), free(fresh);
}

static void policy_and_keys_persist(void **state)
{
	struct fx *x = *state;
	struct trust *t = make(x, NULL);
	struct trust_err e = { 0 };
	const char *pol = "{\"schema\":1,\"version\":2,\"rules\":{\"replicas\":{\"mode\":\"deny\",\"max\":2},"
			  "\"roles\":{\"keys\":{\"console-1\":[\"*\"]}}}}";
	char *sp = sign(x, pol, "policy", "device:gw-1", JAN_2026 + 10, 0);
	assert_int_equal(trust_set_policy(t, sp, strlen(sp), &e), 0);
	assert_int_equal(trust_set_policy(t, sp, strlen(sp), &e), -ESTALE);
	/* A malformed newer policy: refused with the path, version 2 stays. */
	char *bad = sign(x, "{\"version\":3,\"rules\":{\"replicas\":{\"max\":99}}}", "policy", "device:gw-1", JAN_2026 + 11, 0);
	assert_int_equal(trust_set_policy(t, bad, strlen(bad), &e), -EINVAL);
	assert_string_equal(e.path, "rules.replicas.max");
	assert_int_equal(trust_policy_version(t), 2);
	/* A scale above the cap: denied, decision kept in the store. */
	char *sc = sign(x, "{\"id\":\"s-1\",\"verb\":\"scale\",\"args\":{\"deployment\":\"d\",\"replicas\":3}}", NULL,
			"device:gw-1", JAN_2026 + 20, 0);
	struct trust_verdict v;
	assert_int_equal(trust_verify(t, sc, strlen(sc), NULL, &v, &e), 0);
	assert_int_equal(trust_authorize(t, &v, "scale", "d", 3, NULL, &e), -EACCES);
	assert_string_equal(e.code, "policy_denied");
	assert_non_null(strstr(e.message, "replicas 3 is above the cap 2"));
	char entry[2048] = "";
	int found = 0;
	for (int i = 0; i < CONFIG_TRUST_DECISIONS_KEPT && !found; i++) {
		char key[48];
		snprintf(key, sizeof(key), "trust.decision.%d", i);
		found = store_kv_get(x->st, key, entry, sizeof(entry)) == 0 && strstr(entry, "\"result\":\"deny\"");
	}
	assert_true(found);
	trust_destroy(t);
	t = make(x, NULL);
	assert_int_equal(trust_policy_version(t), 2); /* from the store, over no policy file */
	char report[2048];
	assert_true(trust_report(t, report, sizeof(report)) > 0);
	assert_non_null(strstr(report, "\"policy\":{\"version\":2,"));
	trust_destroy(t);
	free(sp), free(bad), free(sc);
}

/* --- repair through last-known-good (control with a fake target) ---------- */

struct rtarget {
	int rollbacks, removes;
	char rolled[32], removed[32], reason[16];
};

static bool r_has(void *ctx, const char *n) { (void)ctx, (void)n; return true; }
static int r_report(void *ctx, char *buf, size_t len, bool figures)
{
	(void)ctx, (void)figures;
	return snprintf(buf, len, "[]");
}
static int r_remove(void *ctx, const char *n, struct command_error *e)
{
	struct rtarget *r = ctx;
	(void)e;
	r->removes++;
	snprintf(r->removed, sizeof(r->removed), "%s", n);
	return 0;
}
static int r_rollback(void *ctx, const char *n, const char *reason, struct command_error *e)
{
	struct rtarget *r = ctx;
	(void)e;
	r->rollbacks++;
	snprintf(r->rolled, sizeof(r->rolled), "%s", n);
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	return 0;
}
/* a's last-known-good asks 64 MiB (complies), b's 1 GiB (does not), c has none. */
static int r_last_good(void *ctx, const char *n, char **doc)
{
	(void)ctx;
	const char *mem = !strcmp(n, "a") ? "64Mi" : !strcmp(n, "b") ? "1Gi" : NULL;
	if (!mem)
		return -ENODATA;
	char buf[256];
	snprintf(buf, sizeof(buf), "{\"version\":1,\"deployments\":[{\"name\":\"%s\",\"image\":\"localhost/w:1\","
		 "\"resources\":{\"memory\":\"%s\"}}]}", n, mem);
	*doc = strdup(buf);
	return 0;
}
static const struct control_target_ops rops = { .has_deployment = r_has, .report = r_report, .remove = r_remove,
						 .rollback = r_rollback, .last_good = r_last_good };

static void repair_rolls_back_to_a_compliant_last_known_good(void **state)
{
	struct fx *x = *state;
	struct rtarget rt = { 0 };
	struct control *c = control_create(x->st, "gw-1", &rops, &rt, &(struct control_cbs){ 0 });
	struct trust *t = make(x, NULL);
	control_set_trust(c, t);
	const char *v2 = "{\"version\":2,\"deployments\":["
			 "{\"name\":\"a\",\"image\":\"localhost/w:2\",\"inference\":{\"port\":8600},\"resources\":{\"memory\":\"512Mi\"}},"
			 "{\"name\":\"b\",\"image\":\"localhost/w:2\",\"inference\":{\"port\":8610},\"resources\":{\"memory\":\"512Mi\"}},"
			 "{\"name\":\"c\",\"image\":\"localhost/w:2\",\"inference\":{\"port\":8620},\"resources\":{\"memory\":\"512Mi\"}},"
			 "{\"name\":\"d\",\"image\":\"localhost/w:2\",\"inference\":{\"port\":8630},\"resources\":{\"memory\":\"64Mi\"}}]}";
	char *sd = sign(x, v2, "desired", "device:gw-1", JAN_2026 + 10, 0);
	assert_int_equal(control_handle_desired(c, sd, strlen(sd)), 0);
	const char *pol = "{\"schema\":1,\"version\":1,\"rules\":{\"resources\":{\"mode\":\"repair\","
			  "\"per_deployment\":{\"memory_mb\":256}}}}";
	char *sp = sign(x, pol, "policy", "device:gw-1", JAN_2026 + 20, 0);
	x->events = 0;
	assert_int_equal(control_handle_policy(c, sp, strlen(sp)), 0);
	/* a: rolled back (its last-known-good complies); b: its last-known-good
	 * violates the policy too, c has none: both stopped; d complies. */
	assert_int_equal(rt.rollbacks, 1);
	assert_string_equal(rt.rolled, "a");
	assert_string_equal(rt.reason, "policy");
	assert_int_equal(rt.removes, 2);
	char report[4096];
	assert_true(trust_report(t, report, sizeof(report)) > 0);
	assert_non_null(strstr(report, "\"violations\":0,\"repaired\":3,"));
	assert_non_null(strstr(report, "{\"deployment\":\"a\",\"rule\":\"resources\",\"mode\":\"repair\","
				       "\"status\":\"repaired\",\"action\":\"rolled_back\""));
	assert_non_null(strstr(report, "{\"deployment\":\"b\",\"rule\":\"resources\",\"mode\":\"repair\","
				       "\"status\":\"repaired\",\"action\":\"stopped\""));
	assert_non_null(strstr(report, "{\"deployment\":\"c\",\"rule\":\"resources\",\"mode\":\"repair\","
				       "\"status\":\"repaired\",\"action\":\"stopped\""));
	assert_null(strstr(report, "\"deployment\":\"d\""));
	/* The desired state now holds a's last-known-good, not b or c, d as it was. */
	uint64_t ver = 0;
	char *body = calloc(1, 4096);
	assert_int_equal(store_desired_get(x->st, &ver, body, 4096), 0);
	assert_int_equal(ver, 2);
	assert_non_null(strstr(body, "{\"name\":\"a\",\"image\":\"localhost/w:1\""));
	assert_null(strstr(body, "\"name\":\"b\""));
	assert_null(strstr(body, "\"name\":\"c\""));
	assert_non_null(strstr(body, "\"name\":\"d\""));
	free(body);
	control_destroy(c);
	trust_destroy(t);
	free(sd), free(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(admitted_once_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(window_persisted_incrementally, setup, teardown),
		cmocka_unit_test_setup_teardown(decisions_logged_without_policy_and_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(rtc_less_boot_uses_the_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(policy_and_keys_persist, setup, teardown),
		cmocka_unit_test_setup_teardown(repair_rolls_back_to_a_compliant_last_known_good, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
