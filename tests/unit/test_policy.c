/* tests/unit/test_policy.c - the admission policy: malformed documents refused with the offending path, and a table of evaluations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/trust/policy.h"

static const char *const verbs[] = { "deploy", "scale", "restart", "remove", "get_state", "set_log_level", "chaos",
				     "ping", "desired", "policy", "keys" };
#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

static const char *const POLICY =
	"{\"schema\":1,\"version\":3,\"rules\":{"
	"\"registries\":{\"mode\":\"deny\",\"allow\":[\"localhost\",\"registry.example.com:5000\",\"*.corp.example\"]},"
	"\"digest\":{\"mode\":\"audit\",\"required\":true},"
	"\"resources\":{\"mode\":\"deny\",\"per_deployment\":{\"cpu\":2,\"memory_mb\":1024},"
	"\"per_class\":{\"batch\":{\"cpu\":0.5,\"memory_mb\":256}}},"
	"\"replicas\":{\"mode\":\"repair\",\"max\":4},"
	"\"forbidden\":{\"mode\":\"deny\",\"settings\":[\"privileged\",\"host_mounts\"],\"env\":[\"LD_PRELOAD\"]},"
	"\"roles\":{\"mode\":\"deny\",\"keys\":{\"console-1\":[\"*\"],\"ops\":[\"restart\",\"scale\",\"get_state\",\"ping\"]},"
	"\"default\":[\"ping\",\"get_state\"]}}}";

#define DIGEST "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static const char env_ok[][160] = { "MODEL=det", "THREADS=2" };
static const char env_bad[][160] = { "MODEL=det", "LD_PRELOAD=/tmp/x.so" };

#define DEP(img, cls, cpu, mem, rmax, set, ev, nenv)                                                          \
	(&(const struct policy_deployment){ .name = "det", .image = img, .sla_class = cls, .cpu_nano = cpu,    \
					    .mem_bytes = mem, .replicas_max = rmax, .settings = set, .env = ev, \
					    .n_env = nenv })
#define GOOD_IMG "localhost/worker:1" DIGEST
#define CPU(c) ((uint64_t)((c) * 1e9))
#define MB(m) ((uint64_t)(m) << 20)
#define OKDEP DEP(GOOD_IMG, SLA_NORMAL, CPU(1), MB(512), 2, POLICY_SET_HOST_NETWORK, env_ok, 2)

struct eval_case {
	const char *name;
	struct policy_input in;
	bool allow;
	bool repair;
	const char *violated;   /* comma-joined rule names that must be violated ("" none) */
	const char *reason;     /* substring of the decision's reason ("" when allowed) */
};

static const struct eval_case eval_table[] = {
	{ "admin deploys a compliant spec", { "console-1", "deploy", "det", -1, OKDEP }, true, false, "", "" },
	{ "admin pings", { "console-1", "ping", NULL, -1, NULL }, true, false, "", "" },
	{ "ops restarts", { "ops", "restart", "det", -1, NULL }, true, false, "", "" },
	{ "ops scales within the cap", { "ops", "scale", "det", 4, NULL }, true, false, "", "" },
	{ "ops may not deploy", { "ops", "deploy", "det", -1, OKDEP }, false, false, "roles", "key ops may not use verb deploy" },
	{ "ops may not remove", { "ops", "remove", "det", -1, NULL }, false, false, "roles", "may not use verb remove" },
	{ "ops may not change the log level", { "ops", "set_log_level", NULL, -1, NULL }, false, false, "roles", "set_log_level" },
	{ "unknown key gets the default role: ping", { "k9", "ping", NULL, -1, NULL }, true, false, "", "" },
	{ "unknown key gets the default role: no scale", { "k9", "scale", "det", 1, NULL }, false, false, "roles", "default role applies" },
	{ "unknown key may read state", { "k9", "get_state", NULL, -1, NULL }, true, false, "", "" },
	{ "admin may rotate keys", { "console-1", "keys", NULL, -1, NULL }, true, false, "", "" },
	{ "ops may not install a policy", { "ops", "policy", NULL, -1, NULL }, false, false, "roles", "verb policy" },
	{ "scale above the cap: denied, repair mode", { "console-1", "scale", "det", 5, NULL }, false, true, "replicas", "replicas 5 is above the cap 4" },
	{ "scale to zero", { "ops", "scale", "det", 0, NULL }, true, false, "", "" },
	{ "registry not allowed (docker.io implied)", { "console-1", "deploy", "det", -1,
	  DEP("busybox:1.36" DIGEST, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, false, false, "registries", "registry docker.io" },
	{ "registry with port allowed", { "console-1", "deploy", "det", -1,
	  DEP("registry.example.com:5000/det:2" DIGEST, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, true, false, "", "" },
	{ "same host, other port: not allowed", { "console-1", "deploy", "det", -1,
	  DEP("registry.example.com:5001/det:2" DIGEST, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, false, false, "registries", "registry.example.com:5001" },
	{ "wildcard domain allowed", { "console-1", "deploy", "det", -1,
	  DEP("eu.corp.example/det:2" DIGEST, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, true, false, "", "" },
	{ "wildcard does not match the bare domain", { "console-1", "deploy", "det", -1,
	  DEP("corp.example/det:2" DIGEST, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, false, false, "registries", "corp.example" },
	{ "a path component is not a registry", { "console-1", "deploy", "det", -1,
	  DEP("library/det:2" DIGEST, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, false, false, "registries", "docker.io" },
	{ "tag only: digest rule is audit, still allowed", { "console-1", "deploy", "det", -1,
	  DEP("localhost/worker:1", SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, true, false, "digest", "" },
	{ "short digest is not a pin", { "console-1", "deploy", "det", -1,
	  DEP("localhost/worker@sha256:0123", SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, true, false, "digest", "" },
	{ "cpu above the per-deployment cap", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(2.5), MB(512), 2, 0, env_ok, 2) }, false, false, "resources", "cpu 2.5 cores is above the per-deployment cap 2 cores" },
	{ "cpu at the cap", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(2), MB(1024), 2, 0, env_ok, 2) }, true, false, "", "" },
	{ "unlimited cpu violates a cap", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, 0, MB(512), 2, 0, env_ok, 2) }, false, false, "resources", "cpu is unlimited" },
	{ "memory above the cap", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(1), MB(2048), 2, 0, env_ok, 2) }, false, false, "resources", "memory 2048 MB" },
	{ "batch class has its own lower cap", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_BATCH, CPU(1), MB(128), 2, 0, env_ok, 2) }, false, false, "resources", "class batch" },
	{ "batch within its cap", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_BATCH, CPU(0.5), MB(256), 2, 0, env_ok, 2) }, true, false, "", "" },
	{ "urgent has no class cap, only the deployment one", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_URGENT, CPU(2), MB(1024), 2, 0, env_ok, 2) }, true, false, "", "" },
	{ "replicas.max above the cap: repair mode", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(1), MB(512), 8, 0, env_ok, 2) }, false, true, "replicas", "replicas.max 8" },
	{ "privileged forbidden", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(1), MB(512), 2, POLICY_SET_PRIVILEGED, env_ok, 2) }, false, false, "forbidden", "setting privileged" },
	{ "host networking not forbidden by this policy", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(1), MB(512), 2, POLICY_SET_HOST_NETWORK, env_ok, 2) }, true, false, "", "" },
	{ "forbidden environment variable", { "console-1", "deploy", "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_bad, 2) }, false, false, "forbidden", "LD_PRELOAD" },
	{ "several violations: first denying one is the reason", { "ops", "deploy", "det", -1,
	  DEP("busybox", SLA_NORMAL, 0, 0, 9, POLICY_SET_DEVICES | POLICY_SET_HOST_MOUNTS, env_bad, 2) }, false, true,
	  "roles,registries,digest,resources,replicas,forbidden", "roles: key ops may not use verb deploy" },
	{ "drift check of a compliant running deployment", { NULL, NULL, "det", -1, OKDEP }, true, false, "", "" },
	{ "drift check: replicas repair", { NULL, NULL, "det", -1,
	  DEP(GOOD_IMG, SLA_NORMAL, CPU(1), MB(512), 6, 0, env_ok, 2) }, false, true, "replicas", "replicas.max 6" },
	{ "drift check: registry deny (awaiting approval)", { NULL, NULL, "det", -1,
	  DEP("quay.io/x/det:1" DIGEST, SLA_NORMAL, CPU(1), MB(512), 2, 0, env_ok, 2) }, false, false, "registries", "quay.io" },
};

static void evaluation_table(void **state)
{
	struct policy p;
	struct trust_err e = { 0 };
	assert_int_equal(policy_parse(POLICY, strlen(POLICY), verbs, NVERBS, &p, &e), 0);
	assert_int_equal(p.version, 3);
	size_t n = sizeof(eval_table) / sizeof(eval_table[0]);
	assert_true(n >= 30);
	for (size_t i = 0; i < n; i++) {
		const struct eval_case *c = &eval_table[i];
		struct policy_decision d;
		policy_evaluate(&p, &c->in, &d);
		char violated[128] = "";
		for (unsigned j = 0; j < d.n; j++)
			if (d.m[j].violated)
				snprintf(violated + strlen(violated), sizeof(violated) - strlen(violated), "%s%s",
					 violated[0] ? "," : "", policy_rule_name(d.m[j].rule));
		if (d.allow != c->allow || d.repair != c->repair || strcmp(violated, c->violated) ||
		    (c->reason[0] ? !strstr(d.reason, c->reason) : d.reason[0] != '\0'))
			fail_msg("case %zu \"%s\": allow=%d repair=%d violated=%s reason=\"%s\"", i, c->name, d.allow, d.repair,
				 violated, d.reason);
	}
}

static void no_policy_allows_everything(void **state)
{
	struct policy_decision d;
	struct policy_input in = { "anyone", "deploy", "x", -1,
				   DEP("evil.example/x:1", SLA_NORMAL, 0, 0, 16, POLICY_SET_PRIVILEGED, env_bad, 2) };
	policy_evaluate(NULL, &in, &d);
	assert_true(d.allow);
	assert_int_equal(d.n, 0);
	struct policy empty = { 0 };
	policy_evaluate(&empty, &in, &d);
	assert_true(d.allow);
}

static void decision_log_entry(void **state)
{
	struct policy p;
	struct trust_err e = { 0 };
	assert_int_equal(policy_parse(POLICY, strlen(POLICY), verbs, NVERBS, &p, &e), 0);
	struct policy_input in = { "ops", "scale", "det", 5, NULL };
	struct policy_decision d;
	policy_evaluate(&p, &in, &d);
	char buf[1024];
	int n = policy_decision_json(buf, sizeof(buf), "gw-1-7", p.version, &in, &d);
	assert_true(n > 0);
	assert_string_equal(buf, "{\"decision_id\":\"gw-1-7\",\"policy_version\":3,\"input\":{\"verb\":\"scale\",\"key\":\"ops\","
				 "\"deployment\":\"det\",\"replicas\":5},\"result\":\"deny\",\"reason\":\"replicas: replicas 5 is "
				 "above the cap 4\",\"rules\":[{\"rule\":\"roles\",\"mode\":\"deny\",\"violated\":false},"
				 "{\"rule\":\"replicas\",\"mode\":\"repair\",\"violated\":true,\"reason\":\"replicas 5 is above "
				 "the cap 4\"}]}");
	assert_int_equal(policy_decision_json(buf, 40, "gw-1-7", p.version, &in, &d), -ENOSPC);
}

static const struct {
	const char *rules;   /* the "rules" object text, or a whole document when it starts with '!' */
	const char *path;
} bad_table[] = {
	{ "!{\"version\":1}", "rules" },
	{ "!{\"rules\":{}}", "version" },
	{ "!{\"version\":\"1\",\"rules\":{}}", "version" },
	{ "!{\"version\":1,\"rules\":[]}", "rules" },
	{ "!{\"version\":1,\"rules\":{},\"x\":1}", "x" },
	{ "!{\"schema\":9,\"version\":1,\"rules\":{}}", "schema" },
	{ "{\"registry\":{}}", "rules.registry" },
	{ "{\"registries\":[]}", "rules.registries" },
	{ "{\"registries\":{\"mode\":\"block\",\"allow\":[\"a\"]}}", "rules.registries.mode" },
	{ "{\"registries\":{\"mode\":1,\"allow\":[\"a\"]}}", "rules.registries.mode" },
	{ "{\"registries\":{}}", "rules.registries.allow" },
	{ "{\"registries\":{\"allow\":\"localhost\"}}", "rules.registries.allow" },
	{ "{\"registries\":{\"allow\":[\"ok\",7]}}", "rules.registries.allow[1]" },
	{ "{\"registries\":{\"allow\":[\"\"]}}", "rules.registries.allow[0]" },
	{ "{\"registries\":{\"allow\":[\"a\",\"a\"]}}", "rules.registries.allow[1]" },
	{ "{\"registries\":{\"allow\":[\"a*.b\"]}}", "rules.registries.allow[0]" },
	{ "{\"registries\":{\"allow\":[\"a\"],\"deny\":[\"b\"]}}", "rules.registries.deny" },
	{ "{\"digest\":{\"required\":false}}", "rules.digest.required" },
	{ "{\"digest\":{\"required\":\"yes\"}}", "rules.digest.required" },
	{ "{\"resources\":{}}", "rules.resources" },
	{ "{\"resources\":{\"per_deployment\":{}}}", "rules.resources.per_deployment" },
	{ "{\"resources\":{\"per_deployment\":{\"cpu\":0}}}", "rules.resources.per_deployment.cpu" },
	{ "{\"resources\":{\"per_deployment\":{\"cpu\":\"2\"}}}", "rules.resources.per_deployment.cpu" },
	{ "{\"resources\":{\"per_deployment\":{\"memory_mb\":1.5}}}", "rules.resources.per_deployment.memory_mb" },
	{ "{\"resources\":{\"per_deployment\":{\"memory\":512}}}", "rules.resources.per_deployment.memory" },
	{ "{\"resources\":{\"per_class\":{}}}", "rules.resources.per_class" },
	{ "{\"resources\":{\"per_class\":{\"gold\":{\"cpu\":1}}}}", "rules.resources.per_class.gold" },
	{ "{\"resources\":{\"per_class\":{\"urgent\":{\"cpu\":-1}}}}", "rules.resources.per_class.urgent.cpu" },
	{ "{\"replicas\":{}}", "rules.replicas.max" },
	{ "{\"replicas\":{\"max\":17}}", "rules.replicas.max" },
	{ "{\"forbidden\":{}}", "rules.forbidden" },
	{ "{\"forbidden\":{\"settings\":[\"root\"]}}", "rules.forbidden.settings[0]" },
	{ "{\"forbidden\":{\"env\":[\"A-B\"]}}", "rules.forbidden.env[0]" },
	{ "{\"roles\":{}}", "rules.roles" },
	{ "{\"roles\":{\"keys\":{\"k\":[\"launch\"]}}}", "rules.roles.keys.k[0]" },
	{ "{\"roles\":{\"keys\":{\"k\":\"deploy\"}}}", "rules.roles.keys.k" },
	{ "{\"roles\":{\"keys\":{\"k\":[\"ping\"],\"k\":[\"ping\"]}}}", "rules.roles.keys.k" },
	{ "{\"roles\":{\"default\":[\"ping\",\"ping\"]}}", "rules.roles.default[1]" },
	{ "{\"roles\":{\"mode\":\"deny\",\"keys\":{\"bad key\":[\"ping\"]}}}", "rules.roles.keys.bad key" },
	{ "{\"replicas\":{\"max\":2},\"replicas\":{\"max\":3}}", "rules.replicas" },
};

static void malformed_policies(void **state)
{
	struct policy p = { .version = 77 };
	for (size_t i = 0; i < sizeof(bad_table) / sizeof(bad_table[0]); i++) {
		char doc[512];
		if (bad_table[i].rules[0] == '!')
			snprintf(doc, sizeof(doc), "%s", bad_table[i].rules + 1);
		else
			snprintf(doc, sizeof(doc), "{\"schema\":1,\"version\":2,\"rules\":%s}", bad_table[i].rules);
		struct trust_err e = { 0 };
		int rc = policy_parse(doc, strlen(doc), verbs, NVERBS, &p, &e);
		if (rc != -EINVAL || strcmp(e.code, "bad_policy") || strcmp(e.path, bad_table[i].path))
			fail_msg("case %zu %s: rc=%d path=%s message=%s", i, doc, rc, e.path, e.message);
		assert_int_equal(p.version, 77); /* the previous policy stays */
	}
	/* An empty rule set is a valid (allow-all) policy of its own version. */
	const char *empty = "{\"version\":5,\"rules\":{}}";
	struct trust_err e = { 0 };
	assert_int_equal(policy_parse(empty, strlen(empty), verbs, NVERBS, &p, &e), 0);
	assert_int_equal(p.version, 5);
}

static void image_references(void **state)
{
	static const struct { const char *image, *registry; bool pinned; } t[] = {
		{ "busybox", "docker.io", false },
		{ "library/busybox:1", "docker.io", false },
		{ "localhost/worker:1", "localhost", false },
		{ "localhost:5000/w", "localhost:5000", false },
		{ "127.0.0.1:5000/w:2" DIGEST, "127.0.0.1:5000", true },
		{ "w" DIGEST "0", "docker.io", false },
		{ "w@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "docker.io", false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char reg[64];
		policy_image_registry(t[i].image, reg, sizeof(reg));
		assert_string_equal(reg, t[i].registry);
		assert_int_equal(policy_image_pinned(t[i].image), t[i].pinned);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(evaluation_table),  cmocka_unit_test(no_policy_allows_everything),
		cmocka_unit_test(decision_log_entry), cmocka_unit_test(malformed_policies),
		cmocka_unit_test(image_references),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
