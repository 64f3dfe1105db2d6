/* tests/unit/test_autoscaler.c - berthd's autoscaling glue and figures: windows from counters, usage, hex, percentiles, SLA JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agent/console/reported.h"
#include "agent/telemetry/sampler.h"
#include "agent/scale/autoscaler.h"
#include "agent/infer/sched.h"
#include "agent/supervise/supervisor.h"
#include "agent/telemetry/collector.h"

#define T0 1000000000ull

/* --- windows -------------------------------------------------------------------- */

static void window_counts_decided_requests_and_refusals_as_misses(void **state)
{
	(void)state;
	struct sched_window sw;
	memset(&sw, 0, sizeof(sw));
	struct sched_class_stats *u = &sw.st.cls[SLA_URGENT], *n = &sw.st.cls[SLA_NORMAL];
	u->offered = 12; /* 2 still queued: not decided in this window */
	u->on_time = 6;
	u->late = 1;
	u->failed = 1;
	u->refused[SCHED_REFUSE_DEADLINE_INFEASIBLE] = 1;
	u->cancelled = 1;
	u->service_sum_us = 7 * 20000; /* 7 answered (on time + late), 20 ms each */
	n->offered = 4;
	n->on_time = 3;
	n->refused[SCHED_REFUSE_NO_READY_REPLICA] = 1;
	n->service_sum_us = 3 * 40000;
	struct sup_status st;
	memset(&st, 0, sizeof(st));
	st.replicas_desired = 3;
	st.replicas_ready = 2;
	st.startup_ms = 850;

	struct autoscale_window w;
	autoscaler_window_build(&sw, &st, &w);
	assert_int_equal(w.offered, 10 + 4);
	assert_int_equal(w.on_time, 9);
	assert_true(fabs(w.service_ms - (7 * 20.0 + 3 * 40.0) / 10.0) < 1e-9);
	assert_int_equal(w.replicas, 3);
	assert_int_equal(w.replicas_ready, 2);
	assert_int_equal(w.startup_ms, 850);
	assert_true(w.cpu_cores < 0);
	assert_int_equal(w.mem_bytes, 0);
}

static void window_without_requests_is_empty(void **state)
{
	(void)state;
	struct sup_status st;
	memset(&st, 0, sizeof(st));
	st.replicas_desired = 1;
	struct autoscale_window w;
	autoscaler_window_build(NULL, &st, &w);
	assert_int_equal(w.offered, 0);
	assert_int_equal(w.on_time, 0);
	assert_true(w.service_ms == 0);
	assert_int_equal(w.replicas, 1);
	/* No answered request: service unknown even with refusals. */
	struct sched_window sw;
	memset(&sw, 0, sizeof(sw));
	sw.st.cls[SLA_BATCH].refused[SCHED_REFUSE_QUEUE_FULL] = 5;
	autoscaler_window_build(&sw, &st, &w);
	assert_int_equal(w.offered, 5);
	assert_int_equal(w.on_time, 0);
	assert_true(w.service_ms == 0);
}

/* --- usage ----------------------------------------------------------------------- */

static void replica_usage_averages_the_window(void **state)
{
	(void)state;
	struct metric_ctr_sample s[4];
	memset(s, 0, sizeof(s));
	for (int i = 0; i < 4; i++) {
		s[i].mono_ms = 1000u * (uint64_t)(i + 1);
		s[i].cpu_pct = (float)(10 * (i + 1)); /* 10 20 30 40 */
		s[i].mem_bytes = 1000u * (uint64_t)(i + 1);
	}
	double cpu = -1;
	uint64_t mem = 0;
	assert_int_equal(autoscaler_replica_usage(s, 4, 2500, &cpu, &mem), 2);
	assert_true(fabs(cpu - 0.35) < 1e-9); /* mean of 30 and 40 % of a core */
	assert_int_equal(mem, 4000);
	cpu = -1;
	mem = 7;
	assert_int_equal(autoscaler_replica_usage(s, 4, 9000, &cpu, &mem), 0);
	assert_true(cpu == -1 && mem == 7);
	assert_int_equal(autoscaler_replica_usage(s, 0, 0, &cpu, &mem), 0);
}

static void node_usage_in_cores_and_bytes(void **state)
{
	(void)state;
	struct metric_node_sample s[3];
	memset(s, 0, sizeof(s));
	for (int i = 0; i < 3; i++) {
		s[i].mono_ms = 1000u * (uint64_t)(i + 1);
		s[i].ncpu = 4;
		s[i].cpu_pct = (float)(20 * (i + 1)); /* 20 40 60 */
		s[i].mem_total_bytes = 1000;
		s[i].mem_avail_bytes = 900 - 100 * (uint64_t)i;
	}
	struct autoscale_node n;
	assert_int_equal(autoscaler_node_usage(s, 3, 1500, &n), 0);
	assert_int_equal(n.ncpu, 4);
	assert_true(fabs(n.cpu_used_cores - 0.5 * 4) < 1e-9);
	assert_int_equal(n.mem_total_bytes, 1000);
	assert_int_equal(n.mem_used_bytes, 300);
	/* Nothing in the window: the newest reading. */
	assert_int_equal(autoscaler_node_usage(s, 3, 99999, &n), 0);
	assert_true(fabs(n.cpu_used_cores - 0.6 * 4) < 1e-6);
	assert_int_equal(autoscaler_node_usage(s, 0, 0, &n), -ENOENT);
}

/* --- hex ---------------------------------------------------------------------------- */

static void hex_round_trip_and_errors(void **state)
{
	(void)state;
	uint8_t in[256], out[256];
	char hex[513];
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)(255 - i);
	autoscaler_hex_encode(in, sizeof(in), hex);
	assert_int_equal(strlen(hex), 512);
	assert_int_equal(autoscaler_hex_decode(hex, out, sizeof(out)), 256);
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(autoscaler_hex_decode("0aFf", out, 2), 2);
	assert_int_equal(out[0], 0x0a);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(autoscaler_hex_decode("abc", out, 8), -EINVAL);
	assert_int_equal(autoscaler_hex_decode("zz", out, 8), -EINVAL);
	assert_int_equal(autoscaler_hex_decode("0011", out, 1), -ENOSPC);
	assert_int_equal(autoscaler_hex_decode("", out, 1), 0);
}

/* --- figures ---------------------------------------------------------------------- */

static void percentiles_interpolate_inside_buckets(void **state)
{
	(void)state;
	uint64_t h[SCHED_LAT_NBUCKETS] = { 0 };
	assert_true(reported_percentile_ms(h, 0.5) == 0);
	/* 100 requests in (10, 20] ms: p50 at the middle of the bucket. */
	h[4] = 100;
	assert_true(fabs(reported_percentile_ms(h, 0.5) - 15.0) < 1e-9);
	assert_true(fabs(reported_percentile_ms(h, 0.99) - 19.9) < 1e-9);
	/* 90 fast (<= 1 ms), 10 in (50, 100] ms: p50 fast, p95 in the slow bucket. */
	memset(h, 0, sizeof(h));
	h[0] = 90;
	h[6] = 10;
	assert_true(reported_percentile_ms(h, 0.5) < 1.0);
	assert_true(fabs(reported_percentile_ms(h, 0.95) - 75.0) < 1e-9);
	/* Beyond the last bound: its lower bound (30 s). */
	memset(h, 0, sizeof(h));
	h[SCHED_LAT_NBUCKETS - 1] = 3;
	assert_true(fabs(reported_percentile_ms(h, 0.99) - 30000.0) < 1e-9);
}

/* A scheduler with model "m" (2 replicas) and "idle" (none). */
struct rec {
	uint64_t ids[16];
	int n;
};
static void on_dispatch(void *arg, const struct sched_dispatch *d)
{
	struct rec *r = arg;
	r->ids[r->n++] = d->id;
}
static void on_refuse(void *arg, const struct sched_dispatch *d, enum sched_refusal why)
{
	(void)arg;
	(void)d;
	(void)why;
}

static struct sched *sched_with_traffic(struct rec *r)
{
	struct sched_params p;
	sched_params_default(&p, 2);
	p.policy = SCHED_EDF;
	struct sched_callbacks cb = { on_dispatch, on_refuse, NULL, NULL, r };
	memset(r, 0, sizeof(*r));
	struct sched *s = sched_create(&p, &cb);
	assert_non_null(s);
	int m = sched_model_add(s, "m", 0);
	int idle = sched_model_add(s, "idle", 0);
	assert_true(m >= 0 && idle >= 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sched_replica_add(s, m, i, 1), 0);
		assert_int_equal(sched_replica_set_ready(s, m, i, true, T0), 0);
	}
	/* urgent: 2 answered, one on time (5 ms) and one late; normal: refused (no replica). */
	struct sched_req u = { .model = m, .cls = SLA_URGENT, .deadline_us = T0 + 10000 };
	assert_int_equal(sched_submit(s, &u, T0, NULL, NULL), 0);
	assert_int_equal(sched_submit(s, &u, T0, NULL, NULL), 0);
	assert_int_equal(r->n, 2);
	assert_int_equal(sched_complete(s, r->ids[0], SCHED_DONE_OK, 5000, T0 + 5000), 0);
	assert_int_equal(sched_complete(s, r->ids[1], SCHED_DONE_OK, 20000, T0 + 20000), 0);
	struct sched_req n = { .model = idle, .cls = SLA_NORMAL, .deadline_us = T0 + 10000 };
	enum sched_refusal why;
	assert_int_equal(sched_submit(s, &n, T0, NULL, &why), -EAGAIN);
	assert_int_equal(why, SCHED_REFUSE_NO_READY_REPLICA);
	return s;
}

static void sla_json_has_every_class(void **state)
{
	(void)state;
	struct rec r;
	struct sched *s = sched_with_traffic(&r);
	char buf[1024];
	struct sched_class_stats tot[SLA_NCLASSES];
	sched_class_totals(s, tot);
	int n = reported_sla_json(tot, buf, sizeof(buf));
	assert_true(n > 0 && (size_t)n == strlen(buf));
	cJSON *j = cJSON_Parse(buf);
	assert_non_null(j);
	const char *cls[] = { "urgent", "normal", "batch" };
	for (int i = 0; i < 3; i++) {
		cJSON *c = cJSON_GetObjectItemCaseSensitive(j, cls[i]);
		assert_true(cJSON_IsObject(c));
		const char *keys[] = { "requests", "on_time", "late", "failed", "refused" };
		for (int k = 0; k < 5; k++)
			assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c, keys[k])));
	}
	cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "urgent");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(u, "requests")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(u, "on_time")->valueint, 1);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(u, "late")->valueint, 1);
	assert_true(fabs(cJSON_GetObjectItemCaseSensitive(u, "compliance")->valuedouble - 0.5) < 1e-9);
	cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "normal");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(nm, "refused")->valueint, 1);
	assert_true(cJSON_GetObjectItemCaseSensitive(nm, "compliance")->valuedouble == 0);
	/* batch saw no request: compliance null (no figure), not 100% */
	cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "batch");
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(b, "requests")->valueint, 0);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b, "compliance")));
	assert_non_null(strstr(buf, "\"batch\":{\"requests\":0,\"on_time\":0,\"late\":0,\"failed\":0,\"refused\":0,"
				    "\"compliance\":null}"));
	cJSON_Delete(j);
	/* Too small a buffer. */
	assert_int_equal(reported_sla_json(tot, buf, 40), -ENOSPC);
	/* Per model, all classes: m 1 of 2, idle 0 of 1, unknown or without figures NAN (JSON null). */
	assert_true(fabs(sched_model_compliance(s, sched_model_find(s, "m")) - 0.5) < 1e-9);
	assert_true(sched_model_compliance(s, sched_model_find(s, "idle")) == 0);
	int fresh = sched_model_add(s, "fresh", 0);
	assert_true(fresh >= 0);
	assert_true(isnan(sched_model_compliance(s, fresh)));
	assert_true(isnan(sched_model_compliance(s, -ENOENT)));
	assert_true(isnan(sched_model_compliance(NULL, 0)));
	char v[24];
	assert_string_equal(reported_ratio_json(sched_model_compliance(NULL, 0), v, sizeof(v)), "null");
	assert_string_equal(reported_ratio_json(0.5, v, sizeof(v)), "0.5000");
	assert_string_equal(reported_ratio_json(0, v, sizeof(v)), "0.0000");
	sched_destroy(s);
}

static void figures_without_sources_write_valid_objects(void **state)
{
	(void)state;
	struct reported *f = reported_create(NULL, NULL, 1000);
	assert_non_null(f);
	char buf[256];
	struct collector_buf b = { .p = buf, .cap = sizeof(buf) };
	reported_containers_source(f, &b);
	assert_false(b.overflow);
	assert_string_equal(buf, "{\"replicas\":[],\"truncated\":0}");
	b.len = 0;
	reported_scheduler_source(f, &b);
	assert_string_equal(buf, "{}");
	reported_destroy(f);
	reported_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(window_counts_decided_requests_and_refusals_as_misses),
		cmocka_unit_test(window_without_requests_is_empty),
		cmocka_unit_test(replica_usage_averages_the_window),
		cmocka_unit_test(node_usage_in_cores_and_bytes),
		cmocka_unit_test(hex_round_trip_and_errors),
		cmocka_unit_test(percentiles_interpolate_inside_buckets),
		cmocka_unit_test(sla_json_has_every_class),
		cmocka_unit_test(figures_without_sources_write_valid_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
