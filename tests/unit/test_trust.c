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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(admitted_once_across_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(window_persisted_incrementally, setup, teardown),
		cmocka_unit_test_setup_teardown(rtc_less_boot_uses_the_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(policy_and_keys_persist, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
