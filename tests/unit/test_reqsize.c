/* tests/unit/test_reqsize.c - a request's size: X-Berth-Size values and KServe v2 input shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "agent/infer/reqsize.h"

static void size_header_values(void **state)
{
	(void)state;
	uint32_t n = 0;
	assert_int_equal(reqsize_parse_header("4808", &n), 0);
	assert_int_equal(n, 4808);
	assert_int_equal(reqsize_parse_header(" 0 ", &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(reqsize_parse_header("4294967295", &n), 0);
	assert_int_equal(n, UINT32_MAX);
	const char *bad[] = { "", "-1", "1e3", "12 tokens", "4294967296", "0x10", " ", "1.0" };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 77;
		assert_int_equal(reqsize_parse_header(bad[i], &n), -EINVAL);
		assert_int_equal(n, 77);
	}
	assert_int_equal(reqsize_parse_header(NULL, &n), -EINVAL);
}

static uint32_t v2(const char *body) { return reqsize_v2_inputs(body, strlen(body)); }

/* The size of a KServe v2 request is the sum of its inputs' shape products. */
static void v2_input_size_from_shapes(void **state)
{
	(void)state;
	assert_int_equal(v2("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,3000],\"datatype\":\"FP32\",\"data\":[1,2]}]}"), 3000);
	/* two inputs, members in any order, nested parameters and strings with brackets skipped */
	assert_int_equal(v2(" { \"id\" : \"a]\\\"}\", \"parameters\":{\"cost_ms\":3,\"t\":[{}]},"
			    "\"inputs\" : [ {\"data\":[[1,2],[3,4]],\"shape\":[2,2],\"name\":\"a\"},"
			    " {\"shape\":[4,8,2]} ] } "), 4 + 64);
	assert_int_equal(v2("{\"inputs\":[{\"shape\":[]}]}"), 1); /* a scalar */
	assert_int_equal(v2("{\"inputs\":[{\"shape\":[100000,100000]}]}"), UINT32_MAX);
	/* not such a request: unknown */
	const char *none[] = { "", "{}", "[]", "{\"inputs\":[]}", "{\"inputs\":[{\"name\":\"x\"}]}",
			       "{\"inputs\":[{\"shape\":[1,-3]}]}", "{\"inputs\":[{\"shape\":[1.5]}]}",
			       "{\"inputs\":[{\"shape\":[2]}]", "{\"inputs\":[{\"shape\":[2]}]} x",
			       "{\"outputs\":[{\"shape\":[2]}]}", "not json", "{\"inputs\":{\"shape\":[2]}}" };
	for (unsigned i = 0; i < sizeof(none) / sizeof(none[0]); i++)
		assert_int_equal(v2(none[i]), 0);
	assert_int_equal(reqsize_v2_inputs(NULL, 0), 0);
	/* a body cut short */
	const char *b = "{\"inputs\":[{\"shape\":[1,3000]}]}";
	assert_int_equal(reqsize_v2_inputs(b, strlen(b) - 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(size_header_values),
		cmocka_unit_test(v2_input_size_from_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
