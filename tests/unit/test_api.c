/* tests/unit/test_api.c - the local API's request parsing: routes, deadlines, classes, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/infer/api.h"
#include "tests/unit/fake_invoke.h" /* the API links the dispatcher */

static void routes_map_kserve_paths(void **state)
{
	struct api_route r;
	assert_int_equal(api_route_parse("POST", "/v2/models/resnet-50/infer", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_INFER);
	assert_string_equal(r.model, "resnet-50");
	assert_int_equal(api_route_parse("GET", "/v2/models/m1/ready", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_MODEL_READY);
	assert_string_equal(r.model, "m1");
	assert_int_equal(api_route_parse("GET", "/v2/health/live", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_LIVE);
	assert_int_equal(api_route_parse("GET", "/v2/health/ready", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_READY);
	assert_int_equal(api_route_parse("GET", "/metrics", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_METRICS);
	assert_int_equal(api_route_parse("GET", "/v1/state?pretty=1", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_STATE);
	assert_int_equal(api_route_parse("HEAD", "/v2/health/live", &r), 0);
	/* Open Inference Protocol metadata: server, model, and the versions forms */
	assert_int_equal(api_route_parse("GET", "/v2", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_SERVER_META);
	assert_int_equal(api_route_parse("GET", "/v2/models/m1", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_MODEL_META);
	assert_string_equal(r.model, "m1");
	assert_int_equal(api_route_parse("GET", "/v2/models/m1/versions/3", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_MODEL_META);
	assert_string_equal(r.model, "m1");
	assert_int_equal(api_route_parse("GET", "/v2/models/m1/versions/3/ready", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_MODEL_READY);
	assert_int_equal(api_route_parse("POST", "/v2/models/m1/versions/3/infer", &r), 0);
	assert_int_equal(r.kind, API_ROUTE_INFER);
	assert_string_equal(r.model, "m1");
	/* a query string does not change the route */
	assert_int_equal(api_route_parse("POST", "/v2/models/m/infer?x=1", &r), 0);
	assert_string_equal(r.model, "m");
}

static void unknown_paths_and_wrong_methods(void **state)
{
	struct api_route r;
	assert_int_equal(api_route_parse("GET", "/", &r), -ENOENT);
	assert_int_equal(api_route_parse("GET", "/v2/health/livex", &r), -ENOENT);
	assert_int_equal(api_route_parse("POST", "/v2/models/m/infer/extra", &r), -ENOENT);
	assert_int_equal(api_route_parse("POST", "/v2/models/m", &r), -EPERM);
	assert_int_equal(r.kind, API_ROUTE_MODEL_META);
	assert_int_equal(api_route_parse("GET", "/v2/models/m/versions/", &r), -ENOENT);
	assert_int_equal(api_route_parse("GET", "/v2/models/m/versions//ready", &r), -ENOENT);
	assert_int_equal(api_route_parse("GET", "/v2/models/m/versions/1/ready/x", &r), -ENOENT);
	assert_int_equal(api_route_parse("GET", "/v2/modelsx", &r), -ENOENT);
	assert_int_equal(api_route_parse("POST", "/v2/models//infer", &r), -EINVAL);
	char longname[128];
	memset(longname, 'a', sizeof(longname));
	char url[200];
	snprintf(url, sizeof(url), "/v2/models/%.100s/infer", longname);
	assert_int_equal(api_route_parse("POST", url, &r), -EINVAL);
	/* right path, wrong method: 405 */
	assert_int_equal(api_route_parse("GET", "/v2/models/m/infer", &r), -EPERM);
	assert_int_equal(r.kind, API_ROUTE_INFER);
	assert_int_equal(api_route_parse("POST", "/metrics", &r), -EPERM);
	assert_int_equal(api_route_parse("DELETE", "/v2/health/ready", &r), -EPERM);
}

static void deadline_header_values(void **state)
{
	uint32_t ms = 0;
	assert_int_equal(api_parse_deadline_ms("250", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(api_parse_deadline_ms(" 1 ", &ms), 0);
	assert_int_equal(ms, 1);
	assert_int_equal(api_parse_deadline_ms("3600000", &ms), 0);
	assert_int_equal(ms, CONFIG_API_MAX_DEADLINE_MS);
	const char *bad[] = { "", "0", "-5", "12ms", "1.5", "abc", "3600001", "99999999999999999999", " ", "1 2" };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 77;
		assert_int_equal(api_parse_deadline_ms(bad[i], &ms), -EINVAL);
		assert_int_equal(ms, 77);
	}
	assert_int_equal(api_parse_deadline_ms(NULL, &ms), -EINVAL);
}

static void class_header_values(void **state)
{
	enum sla_class c = SLA_BATCH;
	assert_int_equal(api_parse_class("urgent", &c), 0);
	assert_int_equal(c, SLA_URGENT);
	assert_int_equal(api_parse_class("Normal", &c), 0);
	assert_int_equal(c, SLA_NORMAL);
	assert_int_equal(api_parse_class(" BATCH ", &c), 0);
	assert_int_equal(c, SLA_BATCH);
	assert_int_equal(api_parse_class("urgentx", &c), -EINVAL);
	assert_int_equal(api_parse_class("", &c), -EINVAL);
	assert_int_equal(api_parse_class("high", &c), -EINVAL);
	assert_string_equal(sla_class_name(SLA_URGENT), "urgent");
	assert_string_equal(sla_class_name(SLA_BATCH), "batch");
}

static void infer_head_defaults_and_errors(void **state)
{
	struct api_infer_head h;
	const char *bad;
	/* no headers: the deployment's defaults */
	assert_int_equal(api_check_infer_head(NULL, NULL, NULL, 500, SLA_BATCH, 1024, &h, &bad), 0);
	assert_int_equal(h.deadline_ms, 500);
	assert_int_equal(h.cls, SLA_BATCH);
	assert_null(bad);
	/* headers override */
	assert_int_equal(api_check_infer_head("40", "urgent", "100", 500, SLA_BATCH, 1024, &h, &bad), 0);
	assert_int_equal(h.deadline_ms, 40);
	assert_int_equal(h.cls, SLA_URGENT);
	/* bad values: 400 naming the header */
	assert_int_equal(api_check_infer_head("soon", NULL, NULL, 500, SLA_NORMAL, 1024, &h, &bad), 400);
	assert_string_equal(bad, "X-Berth-Deadline-Ms");
	assert_int_equal(api_check_infer_head("10", "vip", NULL, 500, SLA_NORMAL, 1024, &h, &bad), 400);
	assert_string_equal(bad, "X-Berth-Class");
	/* a declared body over the cap: 413 before reading it */
	assert_int_equal(api_check_infer_head(NULL, NULL, "1025", 500, SLA_NORMAL, 1024, &h, &bad), 413);
	assert_string_equal(bad, "Content-Length");
	assert_int_equal(api_check_infer_head(NULL, NULL, "1024", 500, SLA_NORMAL, 1024, &h, &bad), 0);
	assert_int_equal(api_check_infer_head(NULL, NULL, "x", 500, SLA_NORMAL, 1024, &h, &bad), 400);
}

static void error_bodies_are_json(void **state)
{
	char buf[256];
	size_t n = api_error_json(buf, sizeof(buf), "queue full", "queue_full", NULL, "m1", 2);
	assert_string_equal(buf, "{\"error\":\"queue full\",\"reason\":\"queue_full\",\"model\":\"m1\",\"retry_after_s\":2}");
	assert_int_equal(n, strlen(buf));
	api_error_json(buf, sizeof(buf), "bad header X-Berth-Class", NULL, "X-Berth-Class", NULL, 0);
	assert_string_equal(buf, "{\"error\":\"bad header X-Berth-Class\",\"header\":\"X-Berth-Class\"}");
	/* quotes and control characters are escaped */
	api_error_json(buf, sizeof(buf), "a\"b\\c\n", NULL, NULL, NULL, 0);
	assert_string_equal(buf, "{\"error\":\"a\\\"b\\\\c\\u000a\"}");
	/* truncation keeps a terminated string */
	char small[8];
	n = api_error_json(small, sizeof(small), "long message", NULL, NULL, NULL, 0);
	assert_int_equal(strlen(small), 7);
	assert_int_equal(n, 7);
}

static void ms_text_has_three_decimals(void **state)
{
	char v[API_MS_TEXT];
	assert_string_equal(api_ms_text(v, 0), "0.000");
	assert_string_equal(api_ms_text(v, 7), "0.007");
	assert_string_equal(api_ms_text(v, 6023), "6.023");
	assert_string_equal(api_ms_text(v, 1234567), "1234.567");
	assert_string_equal(api_ms_text(v, UINT64_MAX), "18446744073709551.615");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(routes_map_kserve_paths),
		cmocka_unit_test(unknown_paths_and_wrong_methods),
		cmocka_unit_test(deadline_header_values),
		cmocka_unit_test(class_header_values),
		cmocka_unit_test(infer_head_defaults_and_errors),
		cmocka_unit_test(error_bodies_are_json),
		cmocka_unit_test(ms_text_has_three_decimals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
