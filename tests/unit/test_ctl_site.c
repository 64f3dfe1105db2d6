/* tests/unit/test_ctl_site.c - berthctl site-join / site-leave: arguments, their checks, the command they send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cmd/ctl_args.h"
#include "agent/cmd/ctl_site.h"

static int parse(struct ctl_args *a, char *err, const char *line)
{
	static char buf[512];
	char *argv[32];
	int argc = 0;
	snprintf(buf, sizeof(buf), "%s", line);
	argv[argc++] = "berthctl";
	for (char *tok = strtok(buf, " "); tok && argc < 31; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	return ctl_args_parse(argc, argv, a, err, 256);
}

static char *args_json(const struct ctl_args *a)
{
	cJSON *o = cJSON_CreateObject();
	assert_true(ctl_site_args(a, o));
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void join_and_leave_parse_to_their_commands(void **state)
{
	(void)state;
	struct ctl_args a;
	char err[256];
	assert_int_equal(parse(&a, err, "site-join gw1 gw4 10.0.0.4:7400"), 0);
	assert_int_equal(a.verb, CTL_SITE_JOIN);
	assert_string_equal(a.device, "gw1");
	assert_string_equal(ctl_site_verb(a.verb), "site_join");
	char *s = args_json(&a);
	assert_string_equal(s, "{\"id\":\"gw4\",\"address\":\"10.0.0.4:7400\"}");
	free(s);
	assert_int_equal(parse(&a, err, "-t 9 site-leave gw2 gw4"), 0);
	assert_int_equal(a.verb, CTL_SITE_LEAVE);
	assert_string_equal(ctl_site_verb(a.verb), "site_leave");
	s = args_json(&a);
	assert_string_equal(s, "{\"id\":\"gw4\"}");
	free(s);
	assert_string_equal(ctl_site_verb(CTL_RESTART), "restart");
}

static void bad_arguments_are_refused_before_sending(void **state)
{
	(void)state;
	struct ctl_args a;
	char err[256];
	static const struct { const char *line, *msg; } bad[] = {
		{ "site-join gw1 gw4", "site-join: missing ADDRESS" },
		{ "site-join gw1 gw4 10.0.0.4", "ADDRESS '10.0.0.4' must be A.B.C.D:PORT" },
		{ "site-join gw1 gw4 10.0.0.400:7400", "must be A.B.C.D:PORT" },
		{ "site-leave gw1 g/w", "ID 'g/w' must be 1..63 characters" },
		{ "site-leave gw1", "site-leave: missing ID" },
		{ "site-leave gw1 gw4 10.0.0.4:7400", "unexpected argument '10.0.0.4:7400'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(parse(&a, err, bad[i].line), 0);
		if (!strstr(err, bad[i].msg))
			fail_msg("%s: got \"%s\", expected \"%s\"", bad[i].line, err, bad[i].msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(join_and_leave_parse_to_their_commands),
		cmocka_unit_test(bad_arguments_are_refused_before_sending),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
