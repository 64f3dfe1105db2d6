/* tests/unit/test_command.c - the command parser: valid envelopes and a table of malformed ones with exact errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/console/command.h"

static void valid_commands_parse(void **state)
{
	struct command c;
	struct command_error e;
	const char *scale = "{\"id\":\"c-1\",\"verb\":\"scale\",\"ts\":1767225600000,\"schema\":1,"
			    "\"args\":{\"deployment\":\"detector\",\"replicas\":3}}";
	assert_int_equal(command_parse("scale", scale, strlen(scale), &c, &e), 0);
	assert_string_equal(c.id, "c-1");
	assert_int_equal(c.verb, CMD_SCALE);
	assert_string_equal(c.args.deployment, "detector");
	assert_int_equal(c.args.replicas, 3);
	assert_int_equal(c.ts_ms, 1767225600000LL);
	command_clear(&c);

	const char *ping = "{\"id\":\"p\",\"verb\":\"ping\"}";
	assert_int_equal(command_parse("ping", ping, strlen(ping), &c, &e), 0);
	assert_int_equal(c.verb, CMD_PING);

	const char *dep = "{\"id\":\"d1\",\"verb\":\"deploy\",\"args\":{\"version\":4,\"deployments\":"
			  "[{\"name\":\"a\",\"image\":\"x\"}]}}";
	assert_int_equal(command_parse("deploy", dep, strlen(dep), &c, &e), 0);
	assert_int_equal(c.args.version, 4);
	assert_string_equal(c.args.desired, "{\"version\":4,\"deployments\":[{\"name\":\"a\",\"image\":\"x\"}]}");
	command_clear(&c);

	const char *chaos = "{\"id\":\"x\",\"verb\":\"chaos\",\"args\":{\"deployment\":\"a\",\"interval_s\":5}}";
	assert_int_equal(command_parse("chaos", chaos, strlen(chaos), &c, &e), 0);
	assert_int_equal(c.args.interval_s, 5);
	assert_int_equal(c.args.duration_s, 300);
	assert_int_equal(c.args.min_running, 1);
}

struct bad {
	const char *topic_verb;
	const char *payload;
	const char *code;
	const char *message;
	const char *id;         /* id the error reply must carry */
};

static const struct bad bad_table[] = {
	{ "ping", "hello", "bad_json", "not valid JSON (syntax error at byte 0)", "" },
	{ "ping", "{\"id\":\"a\",", "bad_json", "not valid JSON (syntax error at byte 9)", "" },
	{ "ping", "[1,2]", "bad_envelope", "the message must be a JSON object, got an array", "" },
	{ "ping", "{\"id\":\"a\",\"verb\":\"ping\"} x", "bad_json", "not valid JSON (trailing data at byte 25)", "" },
	{ "ping", "{\"verb\":\"ping\"}", "missing_field", "id is missing", "" },
	{ "ping", "{\"id\":7,\"verb\":\"ping\"}", "bad_type", "id must be a string, got a number", "" },
	{ "ping", "{\"id\":\"\",\"verb\":\"ping\"}", "bad_value", "id must be 1..64 characters of A-Z a-z 0-9 - _ . :", "" },
	{ "ping", "{\"id\":\"a b\",\"verb\":\"ping\"}", "bad_value", "id must be 1..64 characters of A-Z a-z 0-9 - _ . :", "" },
	{ "ping", "{\"id\":\"a\"}", "missing_field", "verb is missing", "a" },
	{ "ping", "{\"id\":\"a\",\"verb\":true}", "bad_type", "verb must be a string, got a boolean", "a" },
	{ "reboot", "{\"id\":\"a\",\"verb\":\"reboot\"}", "unknown_verb",
	  "verb \"reboot\" is not one of deploy|scale|restart|remove|get_state|set_log_level|chaos|ping|rollback|"
	  "site_join|site_leave", "a" },
	{ "ping", "{\"id\":\"a\",\"verb\":\"scale\"}", "verb_mismatch",
	  "verb \"scale\" does not match the topic's verb \"ping\"", "a" },
	{ "ping", "{\"id\":\"a\",\"verb\":\"ping\",\"schema\":2}", "unsupported_schema",
	  "schema 2 is not supported (this agent speaks 1)", "a" },
	{ "ping", "{\"id\":\"a\",\"verb\":\"ping\",\"color\":1}", "unknown_field",
	  "color is not a known field (expected id|verb|args|ts|schema|auth)", "a" },
	{ "scale", "{\"id\":\"a\",\"verb\":\"scale\"}", "missing_field", "args is missing", "a" },
	{ "scale", "{\"id\":\"a\",\"verb\":\"scale\",\"args\":[]}", "bad_type", "args must be an object, got an array", "a" },
	{ "scale", "{\"id\":\"a\",\"verb\":\"scale\",\"args\":{\"replicas\":2}}", "missing_field",
	  "args.deployment is missing", "a" },
	{ "scale", "{\"id\":\"a\",\"verb\":\"scale\",\"args\":{\"deployment\":\"d\",\"replicas\":\"2\"}}", "bad_type",
	  "args.replicas must be an integer, got a string", "a" },
	{ "scale", "{\"id\":\"a\",\"verb\":\"scale\",\"args\":{\"deployment\":\"d\",\"replicas\":1.5}}", "bad_type",
	  "args.replicas must be an integer, got 1.5", "a" },
	{ "scale", "{\"id\":\"a\",\"verb\":\"scale\",\"args\":{\"deployment\":\"d\",\"replicas\":99}}", "out_of_range",
	  "args.replicas is 99, expected 0..15", "a" },
	{ "restart", "{\"id\":\"a\",\"verb\":\"restart\",\"args\":{\"deployment\":\"Bad Name\"}}", "bad_value",
	  "args.deployment may hold only a-z, 0-9 and '-'", "a" },
	{ "restart", "{\"id\":\"a\",\"verb\":\"restart\",\"args\":{\"deployment\":\"d\",\"force\":true}}", "unknown_field",
	  "args.force is not a known field (expected deployment)", "a" },
	{ "set_log_level", "{\"id\":\"a\",\"verb\":\"set_log_level\",\"args\":{\"level\":\"loud\"}}", "bad_value",
	  "args.level \"loud\" is not one of err|wrn|inf|dbg", "a" },
	{ "deploy", "{\"id\":\"a\",\"verb\":\"deploy\",\"args\":{\"deployments\":[]}}", "missing_field",
	  "args.version is missing", "a" },
	{ "deploy", "{\"id\":\"a\",\"verb\":\"deploy\",\"args\":{\"version\":0,\"deployments\":[]}}", "out_of_range",
	  "args.version is 0, expected 1..9007199254740992", "a" },
	{ "deploy", "{\"id\":\"a\",\"verb\":\"deploy\",\"args\":{\"version\":2,\"deployments\":{}}}", "bad_type",
	  "args.deployments must be an array, got an object", "a" },
	{ "deploy", "{\"id\":\"a\",\"verb\":\"deploy\",\"args\":{\"version\":2,\"deployments\":[{\"image\":\"x\"}]}}",
	  "missing_field", "args.deployments[0].name is missing", "a" },
	{ "deploy",
	  "{\"id\":\"a\",\"verb\":\"deploy\",\"args\":{\"version\":2,\"deployments\":[{\"name\":\"x\"},{\"name\":\"x\"}]}}",
	  "bad_value", "args.deployments[1].name \"x\" appears twice", "a" },
	{ "ping", "{\"id\":\"a\",\"id\":\"b\",\"verb\":\"ping\"}", "bad_field", "id appears twice", "a" },
	{ "site_join", "{\"id\":\"a\",\"verb\":\"site_join\",\"args\":{\"id\":\"gw4\"}}", "missing_field",
	  "args.address is missing", "a" },
	{ "site_leave", "{\"id\":\"a\",\"verb\":\"site_leave\",\"args\":{\"id\":\"gw4\",\"address\":\"x\"}}",
	  "unknown_field", "args.address is not a known field (expected id)", "a" },
	{ "site_leave", "{\"id\":\"a\",\"verb\":\"site_leave\",\"args\":{\"id\":4}}", "bad_type",
	  "args.id must be a string, got a number", "a" },
	{ "ping", "{\"id\":\"a\",\"verb\":\"ping\",\"ts\":\"now\"}", "bad_type",
	  "ts must be milliseconds since the epoch, got a string", "a" },
};

static void malformed_commands_get_exact_errors(void **state)
{
	assert_true(sizeof(bad_table) / sizeof(bad_table[0]) >= 15);
	for (size_t i = 0; i < sizeof(bad_table) / sizeof(bad_table[0]); i++) {
		const struct bad *b = &bad_table[i];
		struct command c;
		struct command_error e;
		int rc = command_parse(b->topic_verb, b->payload, strlen(b->payload), &c, &e);
		if (rc != -EINVAL || strcmp(e.code, b->code) || strcmp(e.message, b->message) || strcmp(c.id, b->id))
			fail_msg("case %zu (%s): rc=%d code=%s message=\"%s\" id=\"%s\"", i, b->payload, rc,
				 e.code ? e.code : "(null)", e.message, c.id);
		assert_null(c.args.desired);
	}
}

static void oversized_payload_is_refused_before_parsing(void **state)
{
	size_t len = CONFIG_COMMAND_MAX_BYTES + 1;
	char *p = malloc(len);
	memset(p, ' ', len);
	struct command c;
	struct command_error e;
	assert_int_equal(command_parse("ping", p, len, &c, &e), -EINVAL);
	assert_string_equal(e.code, "too_large");
	free(p);
}

static void reply_format_escapes_and_carries_id(void **state)
{
	char buf[256];
	struct command_error e = { .code = "bad_value" };
	strcpy(e.message, "say \"hi\"\n");
	int n = command_format_reply(buf, sizeof(buf), "c-1", NULL, NULL, &e);
	assert_true(n > 0);
	assert_string_equal(buf, "{\"schema\":1,\"id\":\"c-1\",\"ok\":false,\"error\":{\"code\":\"bad_value\","
				 "\"message\":\"say \\\"hi\\\"\\u000a\"}}");
	n = command_format_reply(buf, sizeof(buf), "", NULL, "{\"pong\":true}", NULL);
	assert_string_equal(buf, "{\"schema\":1,\"id\":null,\"ok\":true,\"result\":{\"pong\":true}}");
	n = command_format_reply(buf, sizeof(buf), "c-2", "gw-7", "{}", NULL);
	assert_string_equal(buf, "{\"schema\":1,\"id\":\"c-2\",\"device\":\"gw-7\",\"ok\":true,\"result\":{}}");
	assert_int_equal(command_format_reply(buf, 10, "c", NULL, NULL, NULL), -ENOSPC);
}

static void desired_message_parses_and_edits(void **state)
{
	const char *m = "{\"schema\":1,\"version\":9,\"deployments\":[{\"name\":\"a\"},{\"name\":\"b\"}]}";
	uint64_t v;
	char *json;
	struct command_error e;
	assert_int_equal(command_parse_desired(m, strlen(m), &v, &json, &e), 0);
	assert_int_equal(v, 9);
	assert_true(command_desired_has(json, "b"));
	char *less = command_desired_without(json, "b");
	assert_false(command_desired_has(less, "b"));
	assert_true(command_desired_has(less, "a"));
	free(less);
	free(json);
	assert_int_equal(command_parse_desired("{\"version\":\"9\"}", 15, &v, &json, &e), -EINVAL);
	assert_string_equal(e.code, "bad_type");
}

/* A NUL (raw or escaped) or another control character never reaches a parsed string: ids that
 * differ only after a NUL are both refused, and so is a level "dbg\u0000junk". */
static void control_characters_are_refused(void **state)
{
	(void)state;
	static const struct { const char *verb; const char *payload; size_t len; } bad[] = {
		{ "ping", "{\"id\":\"a\\u0000x\",\"verb\":\"ping\"}", 0 },
		{ "ping", "{\"id\":\"a\\u0000y\",\"verb\":\"ping\"}", 0 },
		{ "set_log_level", "{\"id\":\"l\",\"verb\":\"set_log_level\",\"args\":{\"level\":\"dbg\\u0000junk\"}}", 0 },
		{ "set_log_level", "{\"id\":\"l\",\"verb\":\"set_log_level\",\"args\":{\"level\":\"dbg\\u001f\"}}", 0 },
		{ "ping", "{\"id\":\"tab\\tid\",\"verb\":\"ping\"}", 0 },
		{ "ping", "{\"id\":\"raw\001\",\"verb\":\"ping\"}", 0 },
		{ "ping", "{\"id\":\"r\0z\",\"verb\":\"ping\"}", 26 },
		{ "ping", "{\"id\":\"e\\\0z\",\"verb\":\"ping\"}", 27 },
		{ "ping", "{\"id\":\"c-\\ud\0\0\0\0\",\"verb\":\"ping\"}", 32 },
		{ "ping", "{\"id\":\"d\",\"verb\":\"ping\\u007f\"}", 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct command cmd;
		struct command_error err;
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].payload);
		assert_int_equal(command_parse(bad[i].verb, bad[i].payload, len, &cmd, &err), -EINVAL);
		assert_string_equal(err.code, "bad_value");
		assert_true(err.message[0] != '\0');
		command_clear(&cmd);
	}
	/* \t \n \r stay allowed in free text; the parser sees the whole command */
	struct command cmd;
	struct command_error err;
	const char *ok = "{\"id\":\"ok-1\",\"verb\":\"ping\"}";
	assert_int_equal(command_parse("ping", ok, strlen(ok), &cmd, &err), 0);
	command_clear(&cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_commands_parse),
		cmocka_unit_test(control_characters_are_refused),
		cmocka_unit_test(malformed_commands_get_exact_errors),
		cmocka_unit_test(oversized_payload_is_refused_before_parsing),
		cmocka_unit_test(reply_format_escapes_and_carries_id),
		cmocka_unit_test(desired_message_parses_and_edits),
	};
	return cmocka_run_group_tests_name("command", tests, NULL, NULL);
}
