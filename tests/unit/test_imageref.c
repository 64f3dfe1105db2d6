/* tests/unit/test_imageref.c - image references: the accepted forms, and each refusal naming its part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "agent/model/imageref.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct good {
	const char *in, *registry, *name, *tag, *digest, *pull;
	bool local;
};

static void accepted_forms_parse_into_their_parts(void **state)
{
	(void)state;
	static const struct good cases[] = {
		{ "busybox", "", "busybox", "latest", "", "busybox:latest", false },
		{ "library/busybox:1.36", "", "library/busybox", "1.36", "", "library/busybox:1.36", false },
		{ "localhost/berth-worker:latest", "localhost", "localhost/berth-worker", "latest", "",
		  "localhost/berth-worker:latest", true },
		{ "127.0.0.1:5000/berth-worker:v2", "127.0.0.1:5000", "127.0.0.1:5000/berth-worker", "v2", "",
		  "127.0.0.1:5000/berth-worker:v2", false },
		{ "registry.example:443/team/model_a__b:v1.2-rc", "registry.example:443",
		  "registry.example:443/team/model_a__b", "v1.2-rc", "", "registry.example:443/team/model_a__b:v1.2-rc",
		  false },
		{ "127.0.0.1:5000/berth-worker@sha256:" D64, "127.0.0.1:5000", "127.0.0.1:5000/berth-worker", "",
		  "sha256:" D64, "127.0.0.1:5000/berth-worker@sha256:" D64, false },
		{ "127.0.0.1:5000/berth-worker:v2@sha256:" D64, "127.0.0.1:5000", "127.0.0.1:5000/berth-worker", "v2",
		  "sha256:" D64, "127.0.0.1:5000/berth-worker@sha256:" D64, false },
		{ "localhost:5000/m", "localhost:5000", "localhost:5000/m", "latest", "", "localhost:5000/m:latest",
		  false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct good *c = &cases[i];
		struct imageref r;
		char err[128] = "", pull[512];
		assert_int_equal(imageref_parse(c->in, &r, err, sizeof(err)), 0);
		assert_string_equal(r.registry, c->registry);
		assert_string_equal(r.name, c->name);
		assert_string_equal(r.tag, c->tag);
		assert_string_equal(r.digest, c->digest);
		assert_int_equal(imageref_pull_ref(&r, pull, sizeof(pull)), 0);
		assert_string_equal(pull, c->pull);
		assert_int_equal(imageref_is_local(&r), c->local);
	}
}

struct bad {
	const char *in, *why;
};

static void malformed_references_are_refused_naming_the_part(void **state)
{
	(void)state;
	static const struct bad cases[] = {
		{ "", "empty" },
		{ "Busybox", "lower-case" },
		{ "busy box", "lower-case" },
		{ "a//b", "lower-case" },
		{ "a/", "ends with" },
		{ "reg.example/", "name is empty" },
		{ "a:", "tag holds" },
		{ "a:-x", "tag holds" },
		{ "a:x/y", "host[:port]" },
		{ "a@sha256:abc", "64 lower-case hex" },
		{ "a@sha256:" D64 "0", "64 lower-case hex" },
		{ "a@sha512:" D64, "64 lower-case hex" },
		{ "a@sha256:" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "64 lower-case hex" },
		{ "reg.example:99999999/a", "host[:port]" },
		{ "reg_x.example/a", "host[:port]" },
		{ "a..b", "lower-case" },
		{ "a\x01" "b", "lower-case" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imageref r;
		char err[128] = "";
		assert_int_equal(imageref_parse(cases[i].in, &r, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].why))
			fail_msg("'%s': error '%s' does not say '%s'", cases[i].in, err, cases[i].why);
	}
	char longref[700];
	memset(longref, 'a', sizeof(longref) - 1);
	longref[sizeof(longref) - 1] = '\0';
	struct imageref r;
	char err[128];
	assert_int_equal(imageref_parse(longref, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too long"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepted_forms_parse_into_their_parts),
		cmocka_unit_test(malformed_references_are_refused_naming_the_part),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
