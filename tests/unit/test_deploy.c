/* tests/unit/test_deploy.c - deployment spec parsing: the documented example, defaults, hash, and every error message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/deploy.h"

static struct deploy_set *new_set(void)
{
	struct deploy_set *s = malloc(sizeof(*s));
	assert_non_null(s);
	return s;
}

static int parse(const char *text, struct deploy_set *set, struct deploy_error *err)
{
	return deploy_parse(text, strlen(text), set, err);
}

static void example_file_loads(void **state)
{
	(void)state;
	struct deploy_set *s = new_set();
	struct deploy_error err;
	int rc = deploy_load("docs/examples/deployments.json", s, &err);
	if (rc) {
		char msg[512];
		deploy_error_format(&err, msg, sizeof(msg));
		fail_msg("%s", msg);
	}
	assert_int_equal(s->version, 1);
	assert_int_equal(s->n, 2);
	const struct deploy_spec *d = deploy_find(s, "detector");
	assert_non_null(d);
	assert_string_equal(d->image, "localhost/berth-worker:latest");
	assert_string_equal(d->cmd[0], "/worker");
	assert_string_equal(d->cmd[1], "");
	/* env is sorted by key */
	assert_string_equal(d->env[0], "WORKER_CONCURRENCY=2");
	assert_string_equal(d->env[1], "WORKER_COST_MS=20");
	assert_int_equal(d->replicas_min, 1);
	assert_int_equal(d->replicas_max, 4);
	assert_int_equal(d->replicas, 2);
	assert_int_equal(d->cpu_nano, 500000000ull);
	assert_int_equal(d->mem_bytes, 128ull << 20);
	assert_int_equal(d->sla_class, SLA_URGENT);
	assert_int_equal(d->deadline_ms, 200);
	assert_int_equal(d->port_base, 8500);
	assert_int_equal(d->concurrency, 2);
	assert_int_equal(d->liveness.kind, PROBE_HTTP);
	assert_string_equal(d->liveness.path, "/v2/health/live");
	assert_int_equal(d->liveness.period_ms, 1000);
	assert_int_equal(d->readiness.failure_threshold, 2);
	assert_int_equal(d->restart, RESTART_ALWAYS);
	assert_int_equal(d->startup_ms, 500);
	assert_int_equal(d->spec_hash, deploy_spec_hash(d));
	const struct deploy_spec *c = deploy_find(s, "classifier");
	assert_non_null(c);
	assert_int_equal(c->replicas_min, 1);
	assert_int_equal(c->replicas_max, 1);
	assert_int_equal(c->cpu_nano, 1000000000ull);
	assert_int_equal(c->liveness.kind, PROBE_TCP);
	assert_int_equal(c->readiness.kind, PROBE_EXEC);
	assert_string_equal(c->readiness.exec[0], "/worker");
	assert_int_equal(c->restart, RESTART_ON_FAILURE);
	free(s);
}

static void defaults_are_documented_values(void **state)
{
	(void)state;
	struct deploy_set *s = new_set();
	struct deploy_error err;
	assert_int_equal(parse("{\"version\":7,\"deployments\":[{\"name\":\"m\",\"image\":\"img\"}]}", s, &err), 0);
	const struct deploy_spec *d = &s->d[0];
	assert_int_equal(s->version, 7);
	assert_int_equal(d->replicas_min, 1);
	assert_int_equal(d->replicas_max, 1);
	assert_int_equal(d->replicas, 1);
	assert_int_equal(d->cpu_nano, 0);
	assert_int_equal(d->mem_bytes, 0);
	assert_int_equal(d->sla_class, SLA_NORMAL);
	assert_int_equal(d->deadline_ms, 1000);
	assert_int_equal(d->port_base, 8500);
	assert_int_equal(d->concurrency, 1);
	assert_int_equal(d->liveness.kind, PROBE_NONE);
	assert_int_equal(d->readiness.kind, PROBE_NONE);
	assert_int_equal(d->restart, RESTART_ALWAYS);
	assert_int_equal(d->backoff_initial_ms, 1000);
	assert_int_equal(d->backoff_max_ms, 300000);
	assert_int_equal(d->backoff_reset_ms, 600000);
	/* probe defaults (Kubernetes') */
	assert_int_equal(parse("{\"version\":1,\"deployments\":[{\"name\":\"m\",\"image\":\"i\","
			       "\"readiness\":{\"type\":\"http\"}}]}", s, &err), 0);
	assert_int_equal(s->d[0].readiness.period_ms, 10000);
	assert_int_equal(s->d[0].readiness.timeout_ms, 1000);
	assert_int_equal(s->d[0].readiness.success_threshold, 1);
	assert_int_equal(s->d[0].readiness.failure_threshold, 3);
	assert_int_equal(s->d[0].readiness.initial_delay_ms, 0);
	assert_string_equal(s->d[0].readiness.path, "/");
	/* replicas: only min given */
	assert_int_equal(parse("{\"version\":1,\"deployments\":[{\"name\":\"m\",\"image\":\"i\","
			       "\"replicas\":{\"min\":3}}]}", s, &err), 0);
	assert_int_equal(s->d[0].replicas, 3);
	assert_int_equal(s->d[0].replicas_max, 3);
	free(s);
}

static void hash_covers_container_fields_only(void **state)
{
	(void)state;
	struct deploy_set *a = new_set(), *b = new_set();
	struct deploy_error err;
	assert_int_equal(parse("{\"version\":1,\"deployments\":[{\"name\":\"m\",\"image\":\"i\","
			       "\"env\":{\"A\":\"1\",\"B\":\"2\"},\"replicas\":{\"min\":1,\"max\":3}}]}", a, &err), 0);
	/* env order, replica counts and probes do not change the hash */
	assert_int_equal(parse("{\"version\":2,\"deployments\":[{\"name\":\"m\",\"image\":\"i\","
			       "\"env\":{\"B\":\"2\",\"A\":\"1\"},\"replicas\":{\"min\":2,\"max\":3},"
			       "\"liveness\":{\"type\":\"tcp\"}}]}", b, &err), 0);
	assert_int_equal(a->d[0].spec_hash, b->d[0].spec_hash);
	/* the image does */
	assert_int_equal(parse("{\"version\":2,\"deployments\":[{\"name\":\"m\",\"image\":\"j\","
			       "\"env\":{\"A\":\"1\",\"B\":\"2\"}}]}", b, &err), 0);
	assert_int_not_equal(a->d[0].spec_hash, b->d[0].spec_hash);
	/* and env values */
	assert_int_equal(parse("{\"version\":2,\"deployments\":[{\"name\":\"m\",\"image\":\"i\","
			       "\"env\":{\"A\":\"1\",\"B\":\"3\"}}]}", b, &err), 0);
	assert_int_not_equal(a->d[0].spec_hash, b->d[0].spec_hash);
	free(a);
	free(b);
}

static void spec_json_round_trips(void **state)
{
	(void)state;
	struct deploy_set *s = new_set(), *t = new_set();
	struct deploy_error err;
	assert_int_equal(deploy_load("docs/examples/deployments.json", s, &err), 0);
	for (unsigned i = 0; i < s->n; i++) {
		char json[8192], doc[9000];
		int n = deploy_spec_to_json(&s->d[i], json, sizeof(json));
		assert_true(n > 0);
		snprintf(doc, sizeof(doc), "{\"version\":1,\"deployments\":[%s]}", json);
		int rc = parse(doc, t, &err);
		if (rc)
			fail_msg("%s: %s (%s)", err.field, err.message, json);
		assert_memory_equal(&s->d[i], &t->d[0], sizeof(s->d[i]));
	}
	char tiny[16];
	assert_int_equal(deploy_spec_to_json(&s->d[0], tiny, sizeof(tiny)), -ENOSPC);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	free(s);
	free(t);
}

/* Every bad spec gets an error naming the deployment and field, with this exact message. */
struct bad {
	const char *deployments; /* the array's content, or a whole document when it starts with '!' */
	const char *dep;
	const char *field;
	const char *message;
};

#define D(x) "{\"name\":\"m\",\"image\":\"i\"," x "}"
static const struct bad bad_specs[] = {
	{ "!{\"version\":1,\"deployments\":[", "", "", "not valid JSON (syntax error at line 1, byte 27)" },
	{ "![]", "", "", "the top level must be a JSON object, got an array" },
	{ "!{\"deployments\":[]}", "", "version", "required field is missing" },
	{ "!{\"version\":-1,\"deployments\":[]}", "", "version", "-1 is out of range [0, 9007199254740991]" },
	{ "!{\"version\":1}", "", "deployments", "required field is missing" },
	{ "!{\"version\":1,\"deployments\":{}}", "", "deployments", "expected an array, got an object" },
	{ "!{\"version\":1,\"deploymets\":[]}", "", "deploymets", "unknown key (did you mean \"deployments\"?)" },
	{ "1", "", "deployments[0]", "expected an object, got a number" },
	{ "{\"image\":\"i\"}", "", "deployments[0].name", "required field is missing" },
	{ "{\"name\":\"Big\",\"image\":\"i\"}", "", "deployments[0].name",
	  "\"Big\" is not a valid name (1-47 of a-z 0-9 -, not starting or ending with -)" },
	{ "{\"name\":\"m-\",\"image\":\"i\"}", "", "deployments[0].name",
	  "\"m-\" is not a valid name (1-47 of a-z 0-9 -, not starting or ending with -)" },
	{ "{\"name\":\"m\"}", "m", "image", "required field is missing" },
	{ "{\"name\":\"m\",\"image\":\"\"}", "m", "image", "must not be empty" },
	{ "{\"name\":\"m\",\"image\":5}", "m", "image", "expected a string, got a number" },
	{ D("\"imgae\":\"x\""), "m", "imgae", "unknown key (did you mean \"image\"?)" },
	{ D("\"image\":\"x\""), "m", "image", "duplicate key" },
	{ D("\"cmd\":\"run\""), "m", "cmd", "expected an array of strings, got a string" },
	{ D("\"cmd\":[\"a\",2]"), "m", "cmd[1]", "expected a string, got a number" },
	{ D("\"cmd\":[\"\"]"), "m", "cmd[0]", "must not be empty" },
	{ D("\"cmd\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\"]"),
	  "m", "cmd", "too many words: at most 15" },
	{ D("\"env\":[\"A=1\"]"), "m", "env", "expected an object of strings, got an array" },
	{ D("\"env\":{\"A\":1}"), "m", "env.A", "expected a string, got a number" },
	{ D("\"env\":{\"1A\":\"x\"}"), "m", "env.1A", "not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)" },
	{ D("\"env\":{\"BERTH_PORT\":\"1\"}"), "m", "env.BERTH_PORT", "is set by berth for each replica" },
	{ D("\"replicas\":0"), "m", "replicas", "0 is out of range [1, 15]" },
	{ D("\"replicas\":16"), "m", "replicas", "16 is out of range [1, 15]" },
	{ D("\"replicas\":1.5"), "m", "replicas", "expected an integer, got 1.5" },
	{ D("\"replicas\":\"2\""), "m", "replicas", "expected an integer or an object, got a string" },
	{ D("\"replicas\":{\"min\":3,\"max\":2}"), "m", "replicas.min", "3 is above replicas.max (2)" },
	{ D("\"replicas\":{\"min\":1,\"max\":2,\"desired\":3}"), "m", "replicas.desired",
	  "3 is outside replicas.min..max (1..2)" },
	{ D("\"replicas\":{\"min\":0,\"max\":0}"), "m", "replicas.max", "0 is out of range [1, 15]" },
	{ D("\"replicas\":{\"mx\":2}"), "m", "replicas.mx", "unknown key (did you mean \"max\"?)" },
	{ D("\"resources\":{\"cpu\":\"half\"}"), "m", "resources.cpu",
	  "\"half\" is not a number of cores or millicores (\"500m\")" },
	{ D("\"resources\":{\"cpu\":0}"), "m", "resources.cpu", "0 cores is out of range [0.001, 1024]" },
	{ D("\"resources\":{\"memory\":\"12XB\"}"), "m", "resources.memory",
	  "\"12XB\" is not a size (bytes, or with K/M/G/Ki/Mi/Gi)" },
	{ D("\"resources\":{\"memory\":\"1Mi\"}"), "m", "resources.memory", "1048576 bytes is out of range [6Mi, 1Ti]" },
	{ D("\"resources\":[]"), "m", "resources", "expected an object, got an array" },
	{ D("\"sla\":{\"class\":\"gold\"}"), "m", "sla.class", "\"gold\" is not one of urgent|normal|batch" },
	{ D("\"sla\":{\"deadline_ms\":0}"), "m", "sla.deadline_ms", "0 is out of range [1, 3600000]" },
	{ D("\"inference\":{\"port\":80}"), "m", "inference.port", "80 is out of range [1024, 65535]" },
	{ D("\"inference\":{\"port\":65530,\"concurrency\":1},\"replicas\":{\"max\":8}"), "m", "inference.port",
	  "65530 + replicas.max (8) passes 65535" },
	{ D("\"inference\":{\"concurrency\":0}"), "m", "inference.concurrency", "0 is out of range [1, 1024]" },
	{ D("\"liveness\":{\"path\":\"/\"}"), "m", "liveness.type", "required field is missing" },
	{ D("\"liveness\":{\"type\":\"grpc\"}"), "m", "liveness.type", "\"grpc\" is not one of http|tcp|exec|none" },
	{ D("\"liveness\":{\"type\":\"http\",\"path\":\"live\"}"), "m", "liveness.path", "must start with '/'" },
	{ D("\"liveness\":{\"type\":\"tcp\",\"path\":\"/\"}"), "m", "liveness.path", "only for type http" },
	{ D("\"readiness\":{\"type\":\"exec\"}"), "m", "readiness.command", "required for type exec" },
	{ D("\"readiness\":{\"type\":\"exec\",\"command\":[]}"), "m", "readiness.command", "must not be empty" },
	{ D("\"readiness\":{\"type\":\"http\",\"command\":[\"x\"]}"), "m", "readiness.command", "only for type exec" },
	{ D("\"liveness\":{\"type\":\"http\",\"success_threshold\":2}"), "m", "liveness.success_threshold",
	  "must be 1 for a liveness probe" },
	{ D("\"readiness\":{\"type\":\"http\",\"period_ms\":10}"), "m", "readiness.period_ms",
	  "10 is out of range [50, 3600000]" },
	{ D("\"readiness\":{\"type\":\"http\",\"failure_threshold\":0}"), "m", "readiness.failure_threshold",
	  "0 is out of range [1, 100]" },
	{ D("\"readiness\":{\"type\":\"http\",\"perod_ms\":100}"), "m", "readiness.perod_ms",
	  "unknown key (did you mean \"period_ms\"?)" },
	{ D("\"restart\":{\"policy\":\"sometimes\"}"), "m", "restart.policy",
	  "\"sometimes\" is not one of always|on-failure|never" },
	{ D("\"restart\":{\"backoff_initial_ms\":5000,\"backoff_max_ms\":1000}"), "m", "restart.backoff_initial_ms",
	  "5000 is above restart.backoff_max_ms (1000)" },
	{ D("\"restart\":{\"backoff_initial_ms\":1}"), "m", "restart.backoff_initial_ms", "1 is out of range [10, 3600000]" },
	{ D("\"startup_ms\":-5"), "m", "startup_ms", "-5 is out of range [0, 3600000]" },
	{ D("\"colour\":\"red\""), "m", "colour", "unknown key" },
	{ D("\"inference\":{\"port\":9000}") "," D("\"inference\":{\"port\":9100}"), "m", "name",
	  "duplicate deployment name" },
	{ "{\"name\":\"a\",\"image\":\"i\",\"inference\":{\"port\":9000},\"replicas\":{\"max\":4}},"
	  "{\"name\":\"b\",\"image\":\"i\",\"inference\":{\"port\":9004}}",
	  "b", "inference.port", "ports 9004-9005 overlap deployment 'a' (9000-9004)" },
};

static void bad_specs_name_deployment_and_field(void **state)
{
	(void)state;
	struct deploy_set *s = new_set();
	for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
		const struct bad *b = &bad_specs[i];
		char doc[2048];
		if (b->deployments[0] == '!')
			snprintf(doc, sizeof(doc), "%s", b->deployments + 1);
		else
			snprintf(doc, sizeof(doc), "{\"version\":1,\"deployments\":[%s]}", b->deployments);
		struct deploy_error err;
		int rc = parse(doc, s, &err);
		if (rc != -EINVAL || strcmp(err.deployment, b->dep) || strcmp(err.field, b->field) ||
		    strcmp(err.message, b->message))
			fail_msg("case %zu %s\n got rc=%d dep='%s' field='%s' msg='%s'\n want dep='%s' field='%s' msg='%s'",
				 i, doc, rc, err.deployment, err.field, err.message, b->dep, b->field, b->message);
	}
	free(s);
}

static void too_many_deployments_refused(void **state)
{
	(void)state;
	struct deploy_set *s = new_set();
	char doc[8192];
	size_t o = (size_t)snprintf(doc, sizeof(doc), "{\"version\":1,\"deployments\":[");
	for (int i = 0; i <= DEPLOY_MAX; i++)
		o += (size_t)snprintf(doc + o, sizeof(doc) - o, "%s{\"name\":\"d%d\",\"image\":\"i\"}", i ? "," : "", i);
	snprintf(doc + o, sizeof(doc) - o, "]}");
	struct deploy_error err;
	assert_int_equal(parse(doc, s, &err), -EINVAL);
	assert_string_equal(err.field, "deployments");
	assert_string_equal(err.message, "17 deployments, at most 16");
	free(s);
}

static void error_format_and_load_errors(void **state)
{
	(void)state;
	struct deploy_error err = { "detector", "replicas.max", "0 is out of range [1, 15]" };
	char buf[256];
	deploy_error_format(&err, buf, sizeof(buf));
	assert_string_equal(buf, "deployment 'detector': replicas.max: 0 is out of range [1, 15]");
	struct deploy_set *s = new_set();
	assert_int_equal(deploy_load("/nonexistent/deployments.json", s, &err), -ENOENT);
	assert_string_equal(err.message, "cannot open /nonexistent/deployments.json: No such file or directory");
	free(s);
}

/* A copy carries the version and the n specs, and writes nothing past them
 * (a set is 16 specs of 9 kB; the unused ones stay untouched). */
static void set_copy_writes_only_the_used_specs(void **state)
{
	(void)state;
	struct deploy_set *src = new_set(), *dst = new_set();
	struct deploy_error err;
	assert_int_equal(deploy_load("docs/examples/deployments.json", src, &err), 0);
	memset(dst, 0xa5, sizeof(*dst));
	deploy_set_copy(dst, src);
	assert_int_equal(dst->version, src->version);
	assert_int_equal(dst->n, src->n);
	assert_memory_equal(dst->d, src->d, src->n * sizeof(src->d[0]));
	assert_non_null(deploy_find(dst, "detector"));
	const unsigned char *rest = (const unsigned char *)&dst->d[dst->n];
	for (size_t i = 0; i < sizeof(dst->d[0]); i++)
		assert_int_equal(rest[i], 0xa5);
	/* parsing again into a used set leaves no stale spec visible */
	assert_int_equal(parse("{\"version\": 2, \"deployments\": []}", dst, &err), 0);
	assert_int_equal(dst->n, 0);
	assert_null(deploy_find(dst, "detector"));
	free(src);
	free(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(example_file_loads),
		cmocka_unit_test(defaults_are_documented_values),
		cmocka_unit_test(hash_covers_container_fields_only),
		cmocka_unit_test(spec_json_round_trips),
		cmocka_unit_test(bad_specs_name_deployment_and_field),
		cmocka_unit_test(too_many_deployments_refused),
		cmocka_unit_test(error_format_and_load_errors),
		cmocka_unit_test(set_copy_writes_only_the_used_specs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
