/* tests/unit/test_groups.c - fleet groups: name rules, the config's one list (fleet.groups, trust.groups), group commands signed for the group applied once, a signed desired state's groups replacing the config's. */
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
#include "agent/model/config.h"
#include "agent/model/groups.h"
#include "agent/telemetry/store.h"
#include "agent/trust/trust.h"
#include "helpers.h"
#include "ports/sim/sim.h"

#define JAN_2026 1767225600000LL

static void names_and_lists(void **state)
{
	struct groups g;
	char why[160];
	assert_int_equal(groups_parse_csv("", &g, why, sizeof(why)), 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(groups_parse_csv("site-a,line_2,x9", &g, why, sizeof(why)), 0);
	assert_int_equal(g.n, 3);
	assert_true(groups_has(&g, "line_2"));
	assert_false(groups_has(&g, "line"));
	char buf[128];
	assert_int_equal(groups_format(&g, buf, sizeof(buf)), (int)strlen("[\"site-a\",\"line_2\",\"x9\"]"));
	assert_string_equal(buf, "[\"site-a\",\"line_2\",\"x9\"]");
	assert_int_equal(groups_format(&g, buf, 8), -ENOSPC);
	assert_int_equal(groups_format(&g, buf, 24), -ENOSPC); /* no room for the NUL */
	assert_int_equal(groups_format(&g, buf, 25), 24);
	static const char *const bad[] = {
		"Site",                                  /* upper case */
		"a,,b",                                  /* empty entry */
		"a,",                                    /* empty last entry */
		"a b",                                   /* space */
		"a/b",                                   /* topic separator */
		"a+",                                    /* wildcard */
		"a,a",                                   /* repeated */
		"abcdefghijabcdefghijabcdefghijabc",     /* 33 characters */
		"a,b,c,d,e,f,g,h,i",                     /* 9 groups */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(groups_parse_csv(bad[i], &g, why, sizeof(why)), -EINVAL);
		assert_true(why[0] != '\0');
	}
	assert_int_equal(groups_parse_csv("abcdefghijabcdefghijabcdefghijab", &g, why, sizeof(why)), 0);
	assert_int_equal(groups_parse_csv("a,b,c,d,e,f,g,h", &g, why, sizeof(why)), 0);
}

static int parse_cfg(const char *extra, struct berth_config *cfg, struct config_error *err)
{
	char text[512];
	snprintf(text, sizeof(text), "{\"device_id\":\"gw-1\",\"data_dir\":\"/tmp\"%s}", extra);
	return config_parse(text, strlen(text), cfg, err);
}

static void one_list_in_the_config(void **state)
{
	struct berth_config *cfg = malloc(sizeof(*cfg));
	struct config_error err;
	assert_int_equal(parse_cfg(",\"fleet\":{\"groups\":\"site-a,line-2\"}", cfg, &err), 0);
	assert_string_equal(cfg->fleet.groups, "site-a,line-2");
	/* trust.groups is the same list under its older name. */
	assert_int_equal(parse_cfg(",\"trust\":{\"groups\":\"site-b\"}", cfg, &err), 0);
	assert_string_equal(cfg->fleet.groups, "site-b");
	assert_int_equal(parse_cfg(",\"trust\":{\"groups\":\"b,a\"},\"fleet\":{\"groups\":\"a,b\"}", cfg, &err), 0);
	assert_int_equal(parse_cfg(",\"trust\":{\"groups\":\"a\"},\"fleet\":{\"groups\":\"b\"}", cfg, &err), -EINVAL);
	assert_string_equal(err.key, "trust.groups");
	assert_int_equal(parse_cfg(",\"fleet\":{\"groups\":\"Line-2\"}", cfg, &err), -EINVAL);
	assert_string_equal(err.key, "fleet.groups");
	assert_non_null(strstr(err.message, "Line-2"));
	assert_int_equal(parse_cfg(",\"broker\":{\"reconnect_window_s\":30},\"telemetry\":{\"forward_rate\":20}", cfg, &err),
			 0);
	assert_int_equal(cfg->broker.reconnect_window_s, 30);
	assert_int_equal(cfg->telemetry.forward_rate, 20);
	free(cfg);
}

/* --- control and trust: group commands and desired-state groups --- */

struct fx {
	char dir[64], path[128];
	struct store *st;
	uint8_t sk[32], pk[32];
	char keys[512];
	struct trust *trust;
	struct control *ctl;
	char last[4096];
	int replies, changes;
};

static void on_reply(void *arg, const struct control_reply_to *rt, const char *json, size_t len)
{
	struct fx *x = arg;
	snprintf(x->last, sizeof(x->last), "%.*s", (int)len, json);
	x->replies++;
}

static void on_changed(void *arg) { ((struct fx *)arg)->changes++; }

static const struct control_target_ops no_ops = { 0 };

static int setup(void **state)
{
	sim_reset();
	struct fx *x = calloc(1, sizeof(*x));
	if (test_tmpdir(x->dir, sizeof(x->dir), "groups", x->path, sizeof(x->path)))
		return -1;
	struct store_opts so = { .path = x->path, .budget_kb = 1024, .sync_full = false };
	if (store_open(&so, &x->st))
		return -1;
	memset(x->sk, 9, sizeof(x->sk));
	if (sig_public_of(x->sk, x->pk))
		return -1;
	char pub64[64];
	envelope_b64_encode(x->pk, 32, pub64, sizeof(pub64));
	snprintf(x->keys, sizeof(x->keys),
		 "{\"schema\":1,\"version\":1,\"keys\":[{\"id\":\"console-1\",\"public\":\"%s\",\"not_before\":%lld,"
		 "\"not_after\":%lld}]}",
		 pub64, JAN_2026 - 86400000LL, JAN_2026 + 30 * 86400000LL);
	struct trust_opts o = { .device_id = "gw-1", .groups = "site-a", .require_signatures = true,
				.keys_json = x->keys };
	o.verbs = control_trust_verbs(&o.n_verbs);
	struct trust_err e = { 0 };
	x->trust = trust_create(x->st, &o, &e);
	struct control_cbs cbs = { .send_reply = on_reply, .state_changed = on_changed, .arg = x };
	x->ctl = control_create(x->st, "gw-1", &no_ops, NULL, &cbs);
	if (!x->trust || !x->ctl)
		return -1;
	control_set_trust(x->ctl, x->trust);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	control_destroy(x->ctl);
	trust_destroy(x->trust);
	store_close(x->st);
	test_rmtree(x->dir);
	free(x);
	return 0;
}

static char *sign(struct fx *x, const char *msg, const char *kind, const char *target, int64_t iat)
{
	char *out = NULL;
	struct trust_err e = { 0 };
	assert_int_equal(envelope_sign(msg, strlen(msg), kind, "console-1", x->sk, target, iat, 0, &out, &e), 0);
	return out;
}

static void group_cmd(struct fx *x, const char *group, const char *payload)
{
	struct control_reply_to rt = { .verb = "ping", .group = group };
	control_handle(x->ctl, "ping", payload, strlen(payload), &rt);
}

static void group_command_applied_once(void **state)
{
	struct fx *x = *state;
	char *m = sign(x, "{\"id\":\"g-1\",\"verb\":\"ping\"}", NULL, "group:site-a", JAN_2026 + 1000);
	group_cmd(x, "site-a", m);
	assert_non_null(strstr(x->last, "\"id\":\"g-1\",\"device\":\"gw-1\",\"ok\":true"));
	/* The same group command again (redelivered, or on the device topic too): not applied twice. */
	group_cmd(x, "site-a", m);
	struct control_stats cs;
	control_get_stats(x->ctl, &cs);
	assert_int_equal(cs.applied, 1);
	assert_int_equal(cs.duplicates, 1);
	assert_int_equal(x->replies, 2);
	/* Signed for this device, sent on the group topic: refused, nothing applied. */
	char *d = sign(x, "{\"id\":\"g-2\",\"verb\":\"ping\"}", NULL, "device:gw-1", JAN_2026 + 2000);
	group_cmd(x, "site-a", d);
	assert_non_null(strstr(x->last, "\"code\":\"wrong_target\""));
	/* Signed for a group the gateway is not in. */
	char *o = sign(x, "{\"id\":\"g-3\",\"verb\":\"ping\"}", NULL, "group:site-b", JAN_2026 + 3000);
	group_cmd(x, "site-a", o);
	assert_non_null(strstr(x->last, "\"code\":\"wrong_target\""));
	control_get_stats(x->ctl, &cs);
	assert_int_equal(cs.applied, 1);
	assert_int_equal(cs.rejected, 2);
	free(m);
	free(d);
	free(o);
}

static void desired_state_groups_replace_the_config(void **state)
{
	struct fx *x = *state;
	char rep[8192];
	assert_true(control_report(x->ctl, rep, sizeof(rep), false) > 0);
	assert_non_null(strstr(rep, "\"groups\":[\"site-a\"]"));
	char *d = sign(x, "{\"version\":2,\"deployments\":[],\"groups\":[\"line-9\",\"site-c\"]}", "desired", "device:gw-1",
		       JAN_2026 + 1000);
	assert_int_equal(control_handle_desired(x->ctl, d, strlen(d)), 0);
	const struct groups *g = trust_groups(x->trust);
	assert_int_equal(g->n, 2);
	assert_true(groups_has(g, "line-9") && !groups_has(g, "site-a"));
	assert_true(control_report(x->ctl, rep, sizeof(rep), false) > 0);
	assert_non_null(strstr(rep, "\"groups\":[\"line-9\",\"site-c\"]"));
	/* The old group's commands no longer reach it. */
	char *m = sign(x, "{\"id\":\"g-1\",\"verb\":\"ping\"}", NULL, "group:site-a", JAN_2026 + 2000);
	group_cmd(x, "site-a", m);
	assert_non_null(strstr(x->last, "\"code\":\"wrong_target\""));
	/* A bad group name refuses the whole desired state: the groups stay. */
	char *bad = sign(x, "{\"version\":3,\"deployments\":[],\"groups\":[\"Line-9\"]}", "desired", "device:gw-1",
			 JAN_2026 + 3000);
	assert_int_equal(control_handle_desired(x->ctl, bad, strlen(bad)), -EINVAL);
	assert_int_equal(control_desired_version(x->ctl), 2);
	assert_true(groups_has(trust_groups(x->trust), "line-9"));
	/* A desired state without groups: the config's list again. */
	char *none = sign(x, "{\"version\":4,\"deployments\":[]}", "desired", "device:gw-1", JAN_2026 + 4000);
	assert_int_equal(control_handle_desired(x->ctl, none, strlen(none)), 0);
	g = trust_groups(x->trust);
	assert_true(g->n == 1 && groups_has(g, "site-a"));
	/* After a restart the persisted desired state's groups are in force again. */
	char *again = sign(x, "{\"version\":5,\"deployments\":[],\"groups\":[\"line-9\"]}", "desired", "device:gw-1",
			   JAN_2026 + 5000);
	assert_int_equal(control_handle_desired(x->ctl, again, strlen(again)), 0);
	control_destroy(x->ctl);
	struct control_cbs cbs = { .send_reply = on_reply, .state_changed = on_changed, .arg = x };
	x->ctl = control_create(x->st, "gw-1", &no_ops, NULL, &cbs);
	(void)trust_set_groups(x->trust, NULL);
	control_set_trust(x->ctl, x->trust);
	assert_int_equal(control_boot(x->ctl, NULL), 0);
	assert_true(groups_has(trust_groups(x->trust), "line-9"));
	free(d);
	free(m);
	free(bad);
	free(none);
	free(again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_and_lists),
		cmocka_unit_test(one_list_in_the_config),
		cmocka_unit_test_setup_teardown(group_command_applied_once, setup, teardown),
		cmocka_unit_test_setup_teardown(desired_state_groups_replace_the_config, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
