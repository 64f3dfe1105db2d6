/* tests/unit/test_log.c - journald priority prefixes and escaping of quoted values in log lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/log.h"

/* Runs one log_write of msg (as formatted by the caller) with stderr captured; returns the line written (static buffer). */
static const char *captured(enum log_level lvl, const char *msg)
{
	static char line[2048];
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	dup2(fileno(tmp), STDERR_FILENO);
	log_write(NULL, lvl, "t", "%s", msg);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	line[0] = '\0';
	if (!fgets(line, sizeof(line), tmp))
		line[0] = '\0';
	fclose(tmp);
	line[strcspn(line, "\n")] = '\0';
	return line;
}

static void journal_prefix_by_level(void **state)
{
	(void)state;
	log_set_level(LOG_LEVEL_DBG);
	assert_string_equal(captured(LOG_LEVEL_WRN, "event=x"), "wrn t: event=x");
	log_set_journal(true);
	assert_string_equal(captured(LOG_LEVEL_ERR, "event=x"), "<3>err t: event=x");
	assert_string_equal(captured(LOG_LEVEL_WRN, "event=x"), "<4>wrn t: event=x");
	assert_string_equal(captured(LOG_LEVEL_INF, "event=x"), "<6>inf t: event=x");
	assert_string_equal(captured(LOG_LEVEL_DBG, "event=x"), "<7>dbg t: event=x");
	log_set_journal(false);
	assert_string_equal(captured(LOG_LEVEL_INF, "event=x"), "inf t: event=x");
}

static void quotes_inside_values_are_escaped(void **state)
{
	(void)state;
	assert_string_equal(captured(LOG_LEVEL_INF, "event=x reason=\"say \"hi\" to C:\\dir\" n=1"),
			    "inf t: event=x reason=\"say \\\"hi\\\" to C:\\\\dir\" n=1");
	/* a value at the end of the line */
	assert_string_equal(captured(LOG_LEVEL_INF, "event=x msg=\"a\"b\""), "inf t: event=x msg=\"a\\\"b\"");
	/* newlines and tabs keep the line one line */
	assert_string_equal(captured(LOG_LEVEL_INF, "event=x msg=\"one\ntwo\tthree\""),
			    "inf t: event=x msg=\"one\\ntwo\\tthree\"");
	/* a quote followed by something that is not a key stays inside the value */
	assert_string_equal(captured(LOG_LEVEL_INF, "event=x msg=\"\"quoted\" words\" k=v"),
			    "inf t: event=x msg=\"\\\"quoted\\\" words\" k=v");
	/* unquoted values and JSON details pass unchanged */
	assert_string_equal(captured(LOG_LEVEL_INF, "event=x detail={\"a\":\"b\"}"),
			    "inf t: event=x detail={\"a\":\"b\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(journal_prefix_by_level),
		cmocka_unit_test(quotes_inside_values_are_escaped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
