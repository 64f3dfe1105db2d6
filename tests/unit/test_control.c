/* tests/unit/test_control.c - commands applied once, desired state persisted before the reply, bad input changes nothing. */
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
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

/* A fake supervisor: remembers what it was told. */
struct fake {
	uint64_t version;
	char desired[1024];
	int applies, restarts, scales, removes, chaos;
	uint32_t replicas;
	bool refuse_validate;
};

static int f_validate(void *ctx, const char *json, struct command_error *err)
{
	struct fake *f = ctx;
	if (f->refuse_validate) {
		err->code = "invalid_spec";
		snprintf(err->message, sizeof(err->message), "deployments[0].image is missing");
		return -EINVAL;
	}
	return 0;
}
static int f_apply(void *ctx, uint64_t v, const char *json, struct command_error *err)
{
	struct fake *f = ctx;
	f->version = v;
	snprintf(f->desired, sizeof(f->desired), "%s", json);
	f->applies++;
	return 0;
}
static bool f_has(void *ctx, const char *name)
{
	struct fake *f = ctx;
	char pat[80];
	snprintf(pat, sizeof(pat), "\"name\":\"%s\"", name);
	return strstr(f->desired, pat) != NULL;
}
static int f_scale(void *ctx, const char *n, uint32_t r, struct command_error *e)
{
	struct fake *f = ctx;
	f->scales++;
	f->replicas = r;
	return 0;
}
static int f_restart(void *ctx, const char *n, struct command_error *e) { ((struct fake *)ctx)->restarts++; return 0; }
static int f_remove(void *ctx, const char *n, struct command_error *e) { ((struct fake *)ctx)->removes++; return 0; }
static int f_chaos(void *ctx, const char *n, uint32_t a, uint32_t b, uint32_t c, struct command_error *e)
{
	((struct fake *)ctx)->chaos++;
	return 0;
}
static int f_report(void *ctx, char *buf, size_t len, bool figures)
{
	(void)figures;
	int n = snprintf(buf, len, "[]");
	return n < (int)len ? n : -ENOSPC;
}

static const struct control_target_ops fake_ops = {
	.validate = f_validate, .apply = f_apply, .has_deployment = f_has, .scale = f_scale,
	.restart = f_restart, .remove = f_remove, .chaos = f_chaos, .report = f_report,
};

struct fx {
	char dir[64], path[128];
	struct store *st;
	struct control *c;
	struct fake fake;
	int replies;
	char last[4096];
	char last_topic_verb[32];
	int changes;
};

static void on_reply(void *arg, const struct control_reply_to *rt, const char *json, size_t len)
{
	struct fx *x = arg;
	x->replies++;
	snprintf(x->last, sizeof(x->last), "%.*s", (int)len, json);
	snprintf(x->last_topic_verb, sizeof(x->last_topic_verb), "%s", rt->verb);
}
static void on_changed(void *arg) { ((struct fx *)arg)->changes++; }

static struct control *make_control(struct fx *x)
{
	struct control_cbs cbs = { .send_reply = on_reply, .state_changed = on_changed, .arg = x };
	return control_create(x->st, "gw-1", &fake_ops, &x->fake, &cbs);
}

static int setup(void **state)
{
	sim_reset();
	struct fx *x = calloc(1, sizeof(*x));
	if (test_tmpdir(x->dir, sizeof(x->dir), "ctl", x->path, sizeof(x->path)))
		return -1;
	struct store_opts o = { .path = x->path, .budget_kb = 1024, .sync_full = true };
	if (store_open(&o, &x->st))
		return -1;
	x->c = make_control(x);
	*state = x;
	return x->c ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	control_destroy(x->c);
	store_close(x->st);
	if (test_rmtree(x->dir))
		return -1;
	free(x);
	return 0;
}

static void send_cmd(struct fx *x, const char *verb, const char *payload)
{
	struct control_reply_to rt = { .verb = verb };
	control_handle(x->c, verb, payload, strlen(payload), &rt);
}

#define DEPLOY_V(v, id) \
	"{\"id\":\"" id "\",\"verb\":\"deploy\",\"args\":{\"version\":" #v ",\"deployments\":[{\"name\":\"det\",\"image\":\"i\"}]}}"

static void deploy_is_persisted_and_survives_restart(void **state)
{
	struct fx *x = *state;
	send_cmd(x, "deploy", DEPLOY_V(3, "d1"));
	assert_string_equal(x->last, "{\"schema\":1,\"id\":\"d1\",\"device\":\"gw-1\",\"ok\":true,\"result\":{\"version\":3}}");
	assert_int_equal(x->fake.version, 3);
	uint64_t v;
	char buf[256];
	assert_int_equal(store_desired_get(x->st, &v, buf, sizeof(buf)), 0);
	assert_int_equal(v, 3);
	/* A restart (no broker) converges on it. */
	control_destroy(x->c);
	memset(&x->fake, 0, sizeof(x->fake));
	x->c = make_control(x);
	assert_int_equal(control_boot(x->c, "{\"version\":0,\"deployments\":[]}"), 0);
	assert_int_equal(x->fake.version, 3);
	assert_non_null(strstr(x->fake.desired, "\"det\""));
	assert_int_equal(control_desired_version(x->c), 3);
}

static void boot_falls_back_to_deployments_file(void **state)
{
	struct fx *x = *state;
	assert_int_equal(control_boot(x->c, NULL), -ENOENT);
	assert_int_equal(control_boot(x->c, "{\"version\":0,\"deployments\":[{\"name\":\"f\"}]}"), 0);
	assert_true(f_has(&x->fake, "f"));
}

static void older_version_is_refused(void **state)
{
	struct fx *x = *state;
	send_cmd(x, "deploy", DEPLOY_V(5, "a"));
	send_cmd(x, "deploy", DEPLOY_V(4, "b"));
	assert_string_equal(x->last, "{\"schema\":1,\"id\":\"b\",\"device\":\"gw-1\",\"ok\":false,\"error\":{\"code\":\"stale_version\","
				     "\"message\":\"args.version 4 is not newer than the current 5\"}}");
	assert_int_equal(x->fake.applies, 1);
	send_cmd(x, "deploy", DEPLOY_V(5, "c"));
	assert_non_null(strstr(x->last, "\"unchanged\":true"));
	assert_int_equal(x->fake.applies, 1);
}

static void same_command_twice_is_applied_once(void **state)
{
	struct fx *x = *state;
	send_cmd(x, "deploy", DEPLOY_V(1, "d"));
	const char *r = "{\"id\":\"r-7\",\"verb\":\"restart\",\"args\":{\"deployment\":\"det\"}}";
	send_cmd(x, "restart", r);
	char first[4096];
	strcpy(first, x->last);
	send_cmd(x, "restart", r);
	assert_int_equal(x->fake.restarts, 1);
	assert_string_equal(x->last, first);
	struct control_stats st;
	control_get_stats(x->c, &st);
	assert_int_equal(st.duplicates, 1);
	/* The journal outlives a restart of the agent. */
	control_destroy(x->c);
	x->c = make_control(x);
	assert_int_equal(control_boot(x->c, NULL), 0);
	send_cmd(x, "restart", r);
	assert_int_equal(x->fake.restarts, 1);
	assert_string_equal(x->last, first);
	/* Deploy redelivered: same reply, applied once. */
	int applies = x->fake.applies;
	send_cmd(x, "deploy", DEPLOY_V(1, "d"));
	assert_int_equal(x->fake.applies, applies);
	assert_string_equal(x->last, "{\"schema\":1,\"id\":\"d\",\"device\":\"gw-1\",\"ok\":true,\"result\":{\"version\":1}}");
}

/* With trust.require_signatures off an unsigned command passes the trust gate: the journal
 * still keeps it to one application. */
static void unsigned_command_with_optional_signatures_is_applied_once(void **state)
{
	struct fx *x = *state;
	struct trust_opts o = { .device_id = "gw-1", .require_signatures = false };
	o.verbs = control_trust_verbs(&o.n_verbs);
	struct trust_err e = { 0 };
	struct trust *t = trust_create(x->st, &o, &e);
	assert_non_null(t);
	control_set_trust(x->c, t);
	send_cmd(x, "deploy", DEPLOY_V(1, "d"));
	const char *r = "{\"id\":\"r-8\",\"verb\":\"restart\",\"args\":{\"deployment\":\"det\"}}";
	send_cmd(x, "restart", r);
	assert_non_null(strstr(x->last, "\"ok\":true"));
	send_cmd(x, "restart", r);
	assert_int_equal(x->fake.restarts, 1);
	struct control_stats st;
	control_get_stats(x->c, &st);
	assert_int_equal(st.duplicates, 1);
	control_set_trust(x->c, NULL);
	trust_destroy(t);
}

static void malformed_commands_change_nothing(void **state)
{
	struct fx *x = *state;
	send_cmd(x, "deploy", DEPLOY_V(2, "base"));
	struct fake before = x->fake;
	static const struct { const char *verb, *payload, *code; } bad[] = {
		{ "ping", "not json", "bad_json" },
		{ "scale", "{\"id\":\"m1\",\"verb\":\"scale\",\"args\":{\"deployment\":\"nope\",\"replicas\":2}}",
		  "unknown_deployment" },
		{ "restart", "{\"id\":\"m2\",\"verb\":\"restart\",\"args\":{\"deployment\":\"ghost\"}}", "unknown_deployment" },
		{ "remove", "{\"id\":\"m3\",\"verb\":\"remove\",\"args\":{}}", "missing_field" },
		{ "scale", "{\"id\":\"m4\",\"verb\":\"scale\",\"args\":{\"deployment\":\"det\",\"replicas\":-1}}", "out_of_range" },
		{ "deploy", "{\"id\":\"m5\",\"verb\":\"deploy\",\"args\":{\"version\":1,\"deployments\":[]}}", "stale_version" },
		{ "frobnicate", "{\"id\":\"m6\",\"verb\":\"frobnicate\"}", "unknown_verb" },
		{ "chaos", "{\"id\":\"m7\",\"verb\":\"chaos\",\"args\":{\"deployment\":\"det\",\"interval_s\":0}}", "out_of_range" },
		{ "scale", "{\"verb\":\"scale\",\"args\":{\"deployment\":\"det\",\"replicas\":1}}", "missing_field" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		send_cmd(x, bad[i].verb, bad[i].payload);
		char code[64];
		snprintf(code, sizeof(code), "\"code\":\"%s\"", bad[i].code);
		if (!strstr(x->last, code) || !strstr(x->last, "\"ok\":false"))
			fail_msg("case %zu: %s", i, x->last);
	}
	assert_memory_equal(&before, &x->fake, sizeof(before));
	uint64_t v;
	char buf[256];
	assert_int_equal(store_desired_get(x->st, &v, buf, sizeof(buf)), 0);
	assert_int_equal(v, 2);
	/* A spec the supervisor refuses is neither persisted nor applied. */
	x->fake.refuse_validate = true;
	send_cmd(x, "deploy", DEPLOY_V(3, "bad-spec"));
	assert_non_null(strstr(x->last, "\"code\":\"invalid_spec\""));
	assert_int_equal(store_desired_get(x->st, &v, buf, sizeof(buf)), 0);
	assert_int_equal(v, 2);
}

static void verbs_reach_the_target(void **state)
{
	struct fx *x = *state;
	send_cmd(x, "deploy", DEPLOY_V(1, "d"));
	send_cmd(x, "scale", "{\"id\":\"s\",\"verb\":\"scale\",\"args\":{\"deployment\":\"det\",\"replicas\":4}}");
	assert_int_equal(x->fake.replicas, 4);
	send_cmd(x, "chaos", "{\"id\":\"c\",\"verb\":\"chaos\",\"args\":{\"deployment\":\"det\"}}");
	assert_int_equal(x->fake.chaos, 1);
	send_cmd(x, "get_state", "{\"id\":\"g\",\"verb\":\"get_state\"}");
	assert_non_null(strstr(x->last, "\"desired_version\":1"));
	send_cmd(x, "set_log_level", "{\"id\":\"l\",\"verb\":\"set_log_level\",\"args\":{\"level\":\"wrn\"}}");
	assert_non_null(strstr(x->last, "\"level\":\"wrn\""));
	send_cmd(x, "remove", "{\"id\":\"r\",\"verb\":\"remove\",\"args\":{\"deployment\":\"det\"}}");
	assert_int_equal(x->fake.removes, 1);
	uint64_t v;
	char buf[256];
	assert_int_equal(store_desired_get(x->st, &v, buf, sizeof(buf)), 0);
	assert_null(strstr(buf, "\"det\""));
}

static void retained_desired_applies_only_newer(void **state)
{
	struct fx *x = *state;
	const char *d = "{\"schema\":1,\"version\":6,\"deployments\":[{\"name\":\"r\"}]}";
	assert_int_equal(control_handle_desired(x->c, d, strlen(d)), 0);
	assert_int_equal(x->fake.version, 6);
	assert_int_equal(control_handle_desired(x->c, d, strlen(d)), 0);
	assert_int_equal(x->fake.applies, 1);
	const char *old = "{\"schema\":1,\"version\":2,\"deployments\":[]}";
	assert_int_equal(control_handle_desired(x->c, old, strlen(old)), -ESTALE);
	assert_int_equal(control_handle_desired(x->c, "{", 1), -EINVAL);
	assert_int_equal(x->fake.version, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(deploy_is_persisted_and_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(boot_falls_back_to_deployments_file, setup, teardown),
		cmocka_unit_test_setup_teardown(older_version_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(same_command_twice_is_applied_once, setup, teardown),
		cmocka_unit_test_setup_teardown(unsigned_command_with_optional_signatures_is_applied_once, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_commands_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(verbs_reach_the_target, setup, teardown),
		cmocka_unit_test_setup_teardown(retained_desired_applies_only_newer, setup, teardown),
	};
	return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
