/* tests/unit/test_config.c - runtime config validation: bad fixtures with their exact errors, good ones, and the docs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/model/config.h"

/* The tests run from the repository root; BERTH_SRCDIR overrides it. */
static const char *src_path(const char *rel)
{
	static char path[512];
	const char *src = getenv("BERTH_SRCDIR");
	snprintf(path, sizeof(path), "%s/%s", src ? src : ".", rel);
	return path;
}

struct bad_case {
	const char *file;      /* under tests/fixtures/config/ */
	const char *key;       /* err.key expected */
	const char *message;   /* err.message expected, exactly */
};

static const struct bad_case bad_cases[] = {
	{ "bad-wrong-type.json", "broker.port", "expected an integer, got a string" },
	{ "bad-out-of-range.json", "broker.port", "70000 is out of range [1, 65535]" },
	{ "bad-huge-number.json", "engine.timeout_ms", "1e+300 is out of range [100, 600000]" },
	{ "bad-api-public-no-token.json", "api.token", "api.listen \"0.0.0.0\" is not a loopback address: set api.token (clients send \"Authorization: Bearer TOKEN\") or listen on 127.0.0.1, ::1 or a unix socket" },
	{ "bad-not-integer.json", "telemetry.interval_ms", "expected an integer, got 1.5" },
	{ "bad-ratio-range.json", "autoscale.target_high", "1.5 is out of range [0, 1]" },
	{ "bad-unknown-object.json", "brokr", "unknown key (did you mean \"broker\"?)" },
	{ "bad-unknown-nested.json", "broker.prot", "unknown key (did you mean \"broker.port\"?)" },
	{ "bad-unknown-no-hint.json", "colour", "unknown key" },
	{ "bad-missing-device-id.json", "device_id", "required key is missing" },
	{ "bad-missing-data-dir.json", "data_dir", "required key is missing" },
	{ "bad-empty-data-dir.json", "data_dir", "must not be empty" },
	{ "bad-not-json.json", "", "not valid JSON (syntax error at line 4, byte 84)" },
	{ "bad-empty-file.json", "", "not valid JSON (syntax error at line 1, byte 0)" },
	{ "bad-top-level-array.json", "", "the top level must be a JSON object, got an array" },
	{ "bad-duplicate-key.json", "device_id", "duplicate key" },
	{ "bad-enum.json", "broker.protocol", "\"v4\" is not one of v5|v311" },
	{ "bad-too-long.json", "device_id", "too long: 70 bytes, at most 63" },
	{ "bad-device-id-slash.json", "device_id",
	  "\"site-a/gw-1\" contains '/', not allowed in an MQTT topic level or a JSON string" },
	{ "bad-device-id-quote.json", "device_id",
	  "\"gw\"1\" contains '\"', not allowed in an MQTT topic level or a JSON string" },
	{ "bad-tls-without-ca.json", "broker.tls.ca_file", "required when broker.tls.enabled is true" },
	{ "bad-cert-without-key.json", "broker.tls.key_file", "client certificate and key must be given together" },
	{ "bad-reconnect-min-max.json", "broker.reconnect_min_ms", "5000 is above broker.reconnect_max_ms (1000)" },
	{ "bad-target-order.json", "autoscale.target_low", "0.99 is above autoscale.target_high (0.9)" },
	{ "bad-object-expected.json", "broker", "expected an object, got a string" },
	{ "bad-bool-type.json", "broker.tls.insecure", "expected true or false, got a string" },
	{ "bad-null-value.json", "log_level", "expected a string, got null" },
	{ "bad-reserve-slots.json", "scheduler.urgent_reserve_slots", "2 leaves no slot for other classes (slots 2)" },
};
#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

static void bad_fixture_gives_its_error(void **state)
{
	const struct bad_case *c = *state;
	char rel[256];
	struct berth_config cfg;
	struct config_error err;
	snprintf(rel, sizeof(rel), "tests/fixtures/config/%s", c->file);
	int rc = config_load(src_path(rel), &cfg, &err);
	if (rc != -EINVAL)
		fail_msg("%s: rc %d, expected -EINVAL", c->file, rc);
	if (strcmp(err.key, c->key) || strcmp(err.message, c->message))
		fail_msg("%s:\n  got      key=\"%s\" message=\"%s\"\n  expected key=\"%s\" message=\"%s\"", c->file,
			 err.key, err.message, c->key, c->message);
}

static void load_ok(const char *rel, struct berth_config *cfg)
{
	struct config_error err;
	int rc = config_load(src_path(rel), cfg, &err);
	if (rc)
		fail_msg("%s: rc %d key=\"%s\" message=\"%s\"", rel, rc, err.key, err.message);
}

static void minimal_config_takes_every_default(void **state)
{
	(void)state;
	struct berth_config cfg;
	load_ok("tests/fixtures/config/good-minimal.json", &cfg);
	assert_string_equal(cfg.device_id, "gw-1");
	assert_string_equal(cfg.data_dir, "/var/lib/berth");
	assert_string_equal(cfg.deployments_file, "");
	assert_string_equal(cfg.log_level, "info");
	assert_string_equal(cfg.engine.socket, "/var/run/docker.sock");
	assert_int_equal(cfg.engine.timeout_ms, 10000);
	assert_true(cfg.broker.enabled);
	assert_string_equal(cfg.broker.host, "127.0.0.1");
	assert_int_equal(cfg.broker.port, 1883);
	assert_string_equal(cfg.broker.protocol, "v5");
	assert_int_equal(cfg.broker.reconnect_min_ms, 1000);
	assert_int_equal(cfg.broker.reconnect_max_ms, 120000);
	assert_false(cfg.broker.tls.enabled);
	assert_int_equal(cfg.api.enabled, IS_ENABLED(CONFIG_LOCAL_API));
	assert_int_equal(cfg.api.port, 8480);
	assert_string_equal(cfg.scheduler.policy, CONFIG_SCHED_DEFAULT_POLICY);
	assert_int_equal(cfg.scheduler.queue_cap_normal, CONFIG_SCHED_MAX_QUEUED);
	assert_int_equal(cfg.telemetry.interval_ms, CONFIG_METRIC_INTERVAL_MS);
	assert_int_equal(cfg.telemetry.disk_budget_kb, CONFIG_STORE_BUDGET_KB);
	assert_string_equal(cfg.telemetry.synchronous, "full");
	assert_int_equal(cfg.telemetry.state_refresh_s, 30);
	assert_float_equal(cfg.autoscale.target_low, 0.95, 1e-12);
	assert_float_equal(cfg.autoscale.target_high, 0.98, 1e-12);
	assert_false(cfg.watchdog.enabled);
	assert_string_equal(cfg.watchdog.device, "/dev/watchdog");
	assert_int_equal(cfg.supervisor.migrate_after_failures, 10);
	assert_string_equal(cfg.chaos.deployment, "");
}

static void documented_example_is_valid(void **state)
{
	(void)state;
	struct berth_config cfg;
	load_ok("docs/examples/config.json", &cfg);
	assert_string_equal(cfg.device_id, "gw-0001");
	assert_string_equal(cfg.deployments_file, "/etc/berth/deployments.json");
	assert_int_equal(cfg.scheduler.queue_cap_batch, 64);
	/* docs/configuration.md: every other value in it is the default */
	static const char *const tuned[] = { "device_id", "data_dir", "deployments_file", "scheduler.queue_cap_urgent",
					     "scheduler.queue_cap_normal", "scheduler.queue_cap_batch" };
	struct berth_config def;
	config_defaults(&def);
	for (size_t i = 0; config_key_path(i); i++) {
		bool is_tuned = false;
		for (size_t t = 0; t < sizeof(tuned) / sizeof(tuned[0]); t++)
			is_tuned |= !strcmp(config_key_path(i), tuned[t]);
		if (!is_tuned && config_key_differs(i, &cfg, &def))
			fail_msg("docs/examples/config.json: %s differs from its default", config_key_path(i));
	}
}

static void tls_example_needs_a_tls_build(void **state)
{
	(void)state;
	struct berth_config cfg;
	struct config_error err;
	int rc = config_load(src_path("tests/fixtures/config/good-tls.json"), &cfg, &err);
	if (IS_ENABLED(CONFIG_TLS)) {
		assert_int_equal(rc, 0);
		assert_true(cfg.broker.tls.enabled);
		assert_int_equal(cfg.broker.port, 8883);
		assert_string_equal(cfg.broker.tls.key_file, "/etc/berth/gw-0001.key");
	} else {
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err.key, "broker.tls.enabled");
		assert_string_equal(err.message, "this build has no TLS support (CONFIG_TLS)");
	}
}

static void local_api_needs_a_build_with_it(void **state)
{
	(void)state;
	static const char text[] = "{\"device_id\":\"gw\",\"data_dir\":\"/d\",\"api\":{\"enabled\":true}}";
	struct berth_config cfg;
	struct config_error err;
	int rc = config_parse(text, strlen(text), &cfg, &err);
	if (IS_ENABLED(CONFIG_LOCAL_API)) {
		assert_int_equal(rc, 0);
	} else {
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err.key, "api.enabled");
	}
}

static void typos_get_the_closest_key_or_section(void **state)
{
	(void)state;
	static const struct { const char *json, *key, *hint; } cases[] = {
		{ "\"brokr\":{}", "brokr", "broker" },
		{ "\"broker\":{\"prot\":1}", "broker.prot", "broker.port" },
		{ "\"broker\":{\"protocl\":\"v5\"}", "broker.protocl", "broker.protocol" },
		{ "\"broker\":{\"tsl\":{}}", "broker.tsl", "broker.tls" },
		{ "\"telemetry\":{\"intervl_ms\":1000}", "telemetry.intervl_ms", "telemetry.interval_ms" },
		{ "\"Device_id\":\"x\"", "Device_id", "device_id" },
		{ "\"shceduler\":{}", "shceduler", "scheduler" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256], want[128];
		struct berth_config cfg;
		struct config_error err;
		snprintf(text, sizeof(text), "{\"device_id\":\"gw\",\"data_dir\":\"/d\",%s}", cases[i].json);
		assert_int_equal(config_parse(text, strlen(text), &cfg, &err), -EINVAL);
		assert_string_equal(err.key, cases[i].key);
		snprintf(want, sizeof(want), "unknown key (did you mean \"%s\"?)", cases[i].hint);
		assert_string_equal(err.message, want);
	}
	assert_int_equal(config_edit_distance("broker", "brokr"), 1);
	assert_int_equal(config_edit_distance("", "abc"), 3);
	assert_int_equal(config_edit_distance("kitten", "sitting"), 3);
}

static void errors_name_the_file(void **state)
{
	(void)state;
	struct berth_config cfg;
	struct config_error err;
	char msg[512];
	assert_int_equal(config_load(src_path("tests/fixtures/config/bad-out-of-range.json"), &cfg, &err), -EINVAL);
	config_error_format("/etc/berth/config.json", &err, msg, sizeof(msg));
	assert_string_equal(msg, "/etc/berth/config.json: broker.port: 70000 is out of range [1, 65535]");

	assert_int_equal(config_load("/nonexistent/berth.json", &cfg, &err), -ENOENT);
	config_error_format("/nonexistent/berth.json", &err, msg, sizeof(msg));
	assert_string_equal(msg, "/nonexistent/berth.json: cannot open: No such file or directory");

	assert_int_equal(config_load(src_path("tests"), &cfg, &err), -EINVAL);
	assert_string_equal(err.message, "not a regular file");
}

static void oversized_file_is_refused(void **state)
{
	(void)state;
	char path[] = "/tmp/berth-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, CONFIG_CONFIG_MAX_BYTES + 1), 0);
	close(fd);
	struct berth_config cfg;
	struct config_error err;
	assert_int_equal(config_load(path, &cfg, &err), -EFBIG);
	unlink(path);
}

/* --- the documentation ------------------------------------------------ */

static char *read_doc(void)
{
	FILE *f = fopen(src_path("docs/configuration.md"), "r");
	if (!f)
		fail_msg("cannot open docs/configuration.md");
	static char buf[1 << 17];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* The row of key: a line starting "| `key` |". */
static const char *doc_row(const char *doc, const char *key)
{
	char head[160];
	snprintf(head, sizeof(head), "\n| `%s` |", key);
	return strstr(doc, head);
}

static void every_key_is_documented_with_its_type(void **state)
{
	(void)state;
	const char *doc = read_doc();
	size_t n = 0;
	for (const char *k; (k = config_key_path(n)) != NULL; n++) {
		const char *row = doc_row(doc, k);
		if (!row)
			fail_msg("key %s has no row in docs/configuration.md", k);
		char type_cell[64];
		snprintf(type_cell, sizeof(type_cell), "` | %s |", config_key_type(n));
		const char *eol = strchr(row + 1, '\n');
		const char *t = strstr(row, type_cell);
		if (!t || (eol && t > eol))
			fail_msg("key %s: docs/configuration.md does not give its type as %s", k, config_key_type(n));
	}
	assert_true(n >= 50);
}

static void every_documented_key_exists(void **state)
{
	(void)state;
	const char *doc = read_doc();
	for (const char *p = strstr(doc, "\n| `"); p; p = strstr(p + 1, "\n| `")) {
		char key[128];
		const char *s = p + 4, *e = strchr(s, '`');
		assert_non_null(e);
		snprintf(key, sizeof(key), "%.*s", (int)(e - s), s);
		bool found = false;
		for (size_t i = 0; config_key_path(i); i++)
			found = found || strcmp(config_key_path(i), key) == 0;
		if (!found)
			fail_msg("docs/configuration.md documents \"%s\", which is not a key", key);
	}
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(minimal_config_takes_every_default),
		cmocka_unit_test(documented_example_is_valid),
		cmocka_unit_test(tls_example_needs_a_tls_build),
		cmocka_unit_test(local_api_needs_a_build_with_it),
		cmocka_unit_test(typos_get_the_closest_key_or_section),
		cmocka_unit_test(errors_name_the_file),
		cmocka_unit_test(oversized_file_is_refused),
		cmocka_unit_test(every_key_is_documented_with_its_type),
		cmocka_unit_test(every_documented_key_exists),
	};
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	struct CMUnitTest tests[N_BAD + sizeof(fixed) / sizeof(fixed[0])];
	/* One test case per bad fixture, named after the file. */
	for (size_t i = 0; i < N_BAD; i++) {
		tests[i] = (struct CMUnitTest){ .name = bad_cases[i].file, .test_func = bad_fixture_gives_its_error,
						.initial_state = (void *)&bad_cases[i] };
	}
	for (size_t i = 0; i < nfixed; i++)
		tests[N_BAD + i] = fixed[i];
	return _cmocka_run_group_tests("config", tests, N_BAD + nfixed, NULL, NULL);
}
