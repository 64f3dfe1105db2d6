/* tests/unit/test_dispatch.c - dispatch from scheduler to replicas: timeouts, retries, breakers, refusals, /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "agent/infer/dispatch.h"
#include "agent/base/loop.h"
#include "agent/infer/sched.h"
#include "hal/clock.h"
#include "ports/sim/sim.h"
#include "tests/unit/fake_invoke.h"

#define MAX_DONE 32

struct fixture {
	struct loop *loop;
	struct hal_invoke *inv;
	struct dispatch *d;
	int m;
	struct dispatch_req req[MAX_DONE];
	struct dispatch_req *done[MAX_DONE];
	char done_body[MAX_DONE][64];
	unsigned ndone;
	unsigned pauses, resumes;
};

static void on_done(void *arg, struct dispatch_req *r, const void *body, size_t len)
{
	struct fixture *f = arg;
	assert_true(f->ndone < MAX_DONE);
	snprintf(f->done_body[f->ndone], sizeof(f->done_body[0]), "%.*s", (int)len, body ? (const char *)body : "");
	f->done[f->ndone++] = r;
}

static struct fixture *make(const char *policy, unsigned slots)
{
	sim_reset();
	struct fixture *f = calloc(1, sizeof(*f));
	f->loop = loop_create();
	f->inv = hal_invoke_create(f->loop, 16);
	struct dispatch_config cfg = { .policy = policy, .slots = slots };
	f->d = dispatch_create(f->loop, f->inv, &cfg);
	assert_non_null(f->d);
	dispatch_set_done_fn(f->d, on_done, f);
	f->m = dispatch_model_set(f->d, "m", 1000, SLA_NORMAL, 1);
	assert_true(f->m >= 0);
	return f;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	dispatch_destroy(f->d);
	hal_invoke_destroy(f->inv);
	loop_destroy(f->loop);
	free(f);
	return 0;
}

/* Submits request i of class cls with a deadline deadline_ms from now. */
static int submit(struct fixture *f, unsigned i, enum sla_class cls, uint32_t deadline_ms)
{
	struct dispatch_req *r = &f->req[i];
	memset(r, 0, sizeof(*r));
	r->model = f->m;
	r->cls = cls;
	r->arrival_us = hal_clock_now_us();
	r->deadline_us = r->arrival_us + (uint64_t)deadline_ms * 1000u;
	r->body = "{}";
	r->body_len = 2;
	r->content_type = "application/json";
	return dispatch_submit(f->d, r);
}

static void served_with_timeout_equal_to_time_left(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 200), 0);
	assert_int_equal(g_fake_inv->nstarted, 1);
	assert_int_equal(g_fake_inv->x[0].port, 9001);
	assert_string_equal(g_fake_inv->x[0].path, "/v2/models/m/infer");
	assert_int_equal(g_fake_inv->x[0].timeout_ms, 200);
	assert_int_equal(g_fake_inv->x[0].body_len, 2);

	sim_clock_advance_ms(30);
	fake_invoke_finish(0, 0, 200, "{\"outputs\":[]}");
	assert_int_equal(f->ndone, 1);
	assert_ptr_equal(f->done[0], &f->req[0]);
	assert_int_equal(f->req[0].reason, DISPATCH_OK);
	assert_int_equal(f->req[0].http_status, 200);
	assert_int_equal(f->req[0].queue_us, 0);
	assert_int_equal(f->req[0].service_us, 30000);
	assert_string_equal(f->done_body[0], "{\"outputs\":[]}");

	struct sched_model_stats ms;
	assert_int_equal(sched_model_stats(dispatch_sched(f->d), f->m, &ms), 0);
	assert_int_equal(ms.cls[SLA_NORMAL].on_time, 1);
}

static void queued_request_gets_the_time_left_at_dispatch(void **state)
{
	struct fixture *f = *state = make("edf-admit", 1);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 500), 0);
	assert_int_equal(submit(f, 1, SLA_NORMAL, 300), 0);
	assert_int_equal(g_fake_inv->nstarted, 1);   /* one slot: the second waits */
	sim_clock_advance_ms(40);
	fake_invoke_finish(0, 0, 200, "a");
	assert_int_equal(g_fake_inv->nstarted, 2);
	assert_int_equal(g_fake_inv->x[1].timeout_ms, 300 - 40);
	assert_int_equal(f->req[1].queue_us, 40000);
	sim_clock_advance_ms(10);
	fake_invoke_finish(1, 0, 200, "b");
	assert_int_equal(f->ndone, 2);
	assert_int_equal(f->req[1].service_us, 10000);
}

static void unready_replica_gets_nothing(void **state)
{
	struct fixture *f = *state = make("edf-admit", 4);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, false), 0);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 1, "127.0.0.1", 9002, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 500), 0);
	assert_int_equal(submit(f, 1, SLA_NORMAL, 500), 0);
	/* concurrency 1: the ready replica takes one, the other waits */
	assert_int_equal(g_fake_inv->nstarted, 1);
	assert_int_equal(g_fake_inv->x[0].port, 9002);
	fake_invoke_finish(0, 0, 200, "a");
	assert_int_equal(g_fake_inv->nstarted, 2);
	assert_int_equal(g_fake_inv->x[1].port, 9002);
	assert_true(dispatch_model_ready(f->d, f->m));
}

static void no_ready_replica_is_refused_at_once(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(submit(f, 0, SLA_URGENT, 100), -EAGAIN);
	assert_int_equal(f->req[0].reason, DISPATCH_NO_READY_REPLICA);
	assert_int_equal(f->req[0].http_status, 503);
	assert_int_equal(f->req[0].retry_after_s, 1);
	assert_int_equal(f->ndone, 0);
	assert_false(dispatch_model_ready(f->d, f->m));
	assert_false(dispatch_all_ready(f->d));
	assert_string_equal(dispatch_reason_name(f->req[0].reason), "no_ready_replica");
}

static void connection_failure_retries_on_another_replica(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 1, "127.0.0.1", 9002, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 500), 0);
	assert_int_equal(g_fake_inv->nstarted, 1);
	uint16_t first = g_fake_inv->x[0].port;
	sim_clock_advance_ms(5);
	fake_invoke_finish(0, -ECONNREFUSED, 0, NULL);
	assert_int_equal(f->ndone, 0);
	assert_int_equal(g_fake_inv->nstarted, 2);
	assert_int_not_equal(g_fake_inv->x[1].port, first);
	assert_int_equal(g_fake_inv->x[1].timeout_ms, 495);
	fake_invoke_finish(1, 0, 200, "ok");
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->req[0].reason, DISPATCH_OK);
	assert_int_equal(f->req[0].attempts, 2);

	struct sched_model_stats ms;
	assert_int_equal(sched_model_stats(dispatch_sched(f->d), f->m, &ms), 0);
	assert_int_equal(ms.cls[SLA_NORMAL].retries, 1);
	assert_int_equal(ms.cls[SLA_NORMAL].on_time, 1);
}

static void second_connection_failure_is_not_retried(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 1, "127.0.0.1", 9002, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 500), 0);
	fake_invoke_finish(0, -ECONNRESET, 0, NULL);
	assert_int_equal(g_fake_inv->nstarted, 2);
	fake_invoke_finish(1, -ECONNREFUSED, 0, NULL);
	assert_int_equal(g_fake_inv->nstarted, 2);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->req[0].reason, DISPATCH_REPLICA_FAILED);
	assert_int_equal(f->req[0].http_status, 502);
}

static void failure_after_the_deadline_is_not_retried(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 1, "127.0.0.1", 9002, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 50), 0);
	sim_clock_advance_ms(50);
	fake_invoke_finish(0, -ECONNRESET, 0, NULL);
	assert_int_equal(g_fake_inv->nstarted, 1);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->req[0].reason, DISPATCH_REPLICA_FAILED);
}

static void timeout_answers_504(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 100), 0);
	sim_clock_advance_ms(100);
	fake_invoke_finish(0, -ETIMEDOUT, 0, NULL);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->req[0].reason, DISPATCH_DEADLINE_EXCEEDED);
	assert_int_equal(f->req[0].http_status, 504);
}

static void replica_5xx_is_passed_through_and_counted_failed(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 100), 0);
	fake_invoke_finish(0, 0, 500, "{\"error\":\"boom\"}");
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->req[0].reason, DISPATCH_OK);
	assert_int_equal(f->req[0].http_status, 500);
	assert_string_equal(f->done_body[0], "{\"error\":\"boom\"}");
	struct sched_model_stats ms;
	assert_int_equal(sched_model_stats(dispatch_sched(f->d), f->m, &ms), 0);
	assert_int_equal(ms.cls[SLA_NORMAL].failed, 1);
}

/* Runs the loop until the breaker's open time has passed. */
static void wait_breaker(struct fixture *f)
{
	uint64_t until = hal_clock_now_us() + (uint64_t)CONFIG_DISPATCH_BREAKER_OPEN_MS * 1000u;
	while (hal_clock_now_us() < until)
		loop_run_once(f->loop, 100);
	loop_run_once(f->loop, 0);
}

static void breaker_opens_half_opens_and_closes(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	struct dispatch_replica_stats rs;
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	unsigned n = 0;
	for (unsigned i = 0; i < CONFIG_DISPATCH_BREAKER_FAILURES; i++) {
		assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &rs), 0);
		assert_false(rs.breaker_open);
		assert_int_equal(submit(f, n, SLA_NORMAL, 500), 0);
		fake_invoke_finish(g_fake_inv->nstarted - 1, 0, 503, "busy");
		n++;
	}
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &rs), 0);
	assert_true(rs.breaker_open);
	assert_int_equal(rs.breaker_opens, 1);
	assert_false(dispatch_model_ready(f->d, f->m));

	/* open: refused at once, with a Retry-After of the open time */
	unsigned started = g_fake_inv->nstarted;
	assert_int_equal(submit(f, n, SLA_NORMAL, 500), -EAGAIN);
	assert_int_equal(f->req[n].reason, DISPATCH_BREAKER_OPEN);
	assert_int_equal(f->req[n].retry_after_s, (CONFIG_DISPATCH_BREAKER_OPEN_MS + 999) / 1000);
	assert_int_equal(g_fake_inv->nstarted, started);
	n++;

	/* half-open: exactly one probe goes through */
	wait_breaker(f);
	assert_int_equal(submit(f, n, SLA_NORMAL, 500), 0);
	assert_int_equal(g_fake_inv->nstarted, started + 1);
	unsigned probe = g_fake_inv->nstarted - 1;
	n++;
	assert_int_equal(submit(f, n, SLA_NORMAL, 500), -EAGAIN);
	assert_int_equal(f->req[n].reason, DISPATCH_BREAKER_OPEN);
	n++;
	/* probe fails: open again */
	fake_invoke_finish(probe, 0, 500, "still broken");
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &rs), 0);
	assert_true(rs.breaker_open);
	assert_int_equal(rs.breaker_opens, 2);

	/* next probe succeeds: closed, traffic flows */
	wait_breaker(f);
	assert_int_equal(submit(f, n, SLA_NORMAL, 500), 0);
	fake_invoke_finish(g_fake_inv->nstarted - 1, 0, 200, "ok");
	n++;
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &rs), 0);
	assert_false(rs.breaker_open);
	assert_true(dispatch_model_ready(f->d, f->m));
	assert_int_equal(submit(f, n, SLA_NORMAL, 500), 0);
	fake_invoke_finish(g_fake_inv->nstarted - 1, 0, 200, "ok");
}

static void success_resets_the_failure_count(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	struct dispatch_replica_stats rs;
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	unsigned n = 0;
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i + 1 < CONFIG_DISPATCH_BREAKER_FAILURES; i++) {
			assert_int_equal(submit(f, n++, SLA_NORMAL, 500), 0);
			fake_invoke_finish(g_fake_inv->nstarted - 1, 0, 500, "x");
		}
		assert_int_equal(submit(f, n++, SLA_NORMAL, 500), 0);
		fake_invoke_finish(g_fake_inv->nstarted - 1, 0, 200, "ok");
	}
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &rs), 0);
	assert_false(rs.breaker_open);
	assert_int_equal(rs.breaker_opens, 0);
}

/* A request that reaches a healthy replica with about one service time left
 * times out under load; that is not the replica's fault and must not shut it
 * out of every other request. Timeouts with ample time still open it. */
static void tight_deadline_timeouts_leave_the_breaker_closed(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	struct dispatch_replica_stats rs;
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	/* teach the estimator a 10 ms service time */
	unsigned n = 0;
	for (unsigned i = 0; i < 8; i++) {
		assert_int_equal(submit(f, n++, SLA_NORMAL, 500), 0);
		sim_clock_advance_ms(10);
		fake_invoke_finish(g_fake_inv->nstarted - 1, 0, 200, "ok");
	}
	uint32_t est_ms = (sched_estimate_us(dispatch_sched(f->d), f->m) + 999) / 1000;
	assert_true(est_ms >= 1 && est_ms < 100);

	for (unsigned i = 0; i < 2 * CONFIG_DISPATCH_BREAKER_FAILURES; i++) {
		assert_int_equal(submit(f, n, SLA_NORMAL, 2 * est_ms), 0);
		sim_clock_advance_ms(2 * est_ms);
		fake_invoke_finish(g_fake_inv->nstarted - 1, -ETIMEDOUT, 0, NULL);
		assert_int_equal(f->req[n].http_status, 504);
		n++;
	}
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &rs), 0);
	assert_false(rs.breaker_open);
	assert_true(dispatch_model_ready(f->d, f->m));

	/* a replica that lets requests with 10 service times left run out is hung */
	for (unsigned i = 0; i < CONFIG_DISPATCH_BREAKER_FAILURES; i++) {
		assert_int_equal(submit(f, n, SLA_NORMAL, 10 * est_ms), 0);
		sim_clock_advance_ms(10 * est_ms);
		fake_invoke_finish(g_fake_inv->nstarted - 1, -ETIMEDOUT, 0, NULL);
		n++;
	}
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &rs), 0);
	assert_true(rs.breaker_open);
}

static void cancel_stops_the_transfer_without_done(void **state)
{
	struct fixture *f = *state = make("edf-admit", 1);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 500), 0);
	assert_int_equal(submit(f, 1, SLA_NORMAL, 500), 0);
	dispatch_cancel(f->d, &f->req[0]);
	assert_int_equal(g_fake_inv->cancelled, 1);
	/* its slot went to the waiting request */
	assert_int_equal(g_fake_inv->nstarted, 2);
	dispatch_cancel(f->d, &f->req[1]);
	assert_int_equal(f->ndone, 0);
	dispatch_cancel(f->d, &f->req[1]);   /* twice is harmless */
}

static void start_failure_finishes_inside_submit(void **state)
{
	struct fixture *f = *state = make("edf-admit", 1);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	g_fake_inv->fail_start = -EBUSY;
	assert_int_equal(submit(f, 0, SLA_NORMAL, 500), -EAGAIN);
	assert_int_equal(f->req[0].reason, DISPATCH_REPLICA_FAILED);
	assert_int_equal(f->ndone, 0);
	/* the slot was given back */
	assert_int_equal(submit(f, 1, SLA_NORMAL, 500), 0);
	assert_int_equal(g_fake_inv->nstarted, 1);
}

static void static_replica_list(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	assert_int_equal(dispatch_static_replicas(f->d, "a=127.0.0.1:7001,a=127.0.0.1:7002, b=::1:7003", 250), 0);
	int a = dispatch_model_find(f->d, "a");
	int b = dispatch_model_find(f->d, "b");
	assert_true(a >= 0 && b >= 0 && a != b);
	uint32_t dl;
	enum sla_class cls;
	assert_int_equal(dispatch_model_defaults(f->d, a, &dl, &cls), 0);
	assert_int_equal(dl, 250);
	assert_int_equal(cls, SLA_NORMAL);
	/* not ready until their readiness endpoint answers */
	assert_false(dispatch_model_ready(f->d, b));
	loop_run_once(f->loop, 0);
	assert_int_equal(g_fake_inv->nstarted, 3);
	for (unsigned i = 0; i < 3; i++)
		assert_string_equal(g_fake_inv->x[i].path, "/v2/health/ready");
	fake_invoke_finish(2, 0, 200, "");
	assert_true(dispatch_model_ready(f->d, b));
	assert_false(dispatch_model_ready(f->d, a));
	fake_invoke_finish(0, -ECONNREFUSED, 0, NULL);
	fake_invoke_finish(1, 0, 503, "");
	assert_false(dispatch_model_ready(f->d, a));
	/* probed again every period: a replica that starts answering turns ready */
	loop_run_once(f->loop, CONFIG_DISPATCH_STATIC_PROBE_MS);
	assert_int_equal(g_fake_inv->nstarted, 6);
	fake_invoke_finish(3, 0, 200, "");
	assert_true(dispatch_model_ready(f->d, a));
	struct dispatch_replica_stats rs;
	assert_int_equal(dispatch_replica_stats(f->d, a, 1, &rs), 0);
	assert_int_equal(dispatch_static_replicas(f->d, "c=127.0.0.1", 250), -EINVAL);
	assert_int_equal(dispatch_static_replicas(f->d, "c=127.0.0.1:0", 250), -EINVAL);
	assert_int_equal(dispatch_static_replicas(f->d, "ok=127.0.0.1:1,=x:1", 250), -EINVAL);
	assert_int_equal(dispatch_model_find(f->d, "ok"), -ENOENT);   /* nothing half-declared */
	assert_int_equal(dispatch_model_find(f->d, "zzz"), -ENOENT);
}

/* Every line of the text format is a comment or "name{labels} value". */
static void assert_prometheus_lines(const char *text)
{
	regex_t re;
	assert_int_equal(regcomp(&re,
				 "^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\\{([a-z_]+=\"[^\"]*\",?)+\\})? -?[0-9.e+-]+)$",
				 REG_EXTENDED | REG_NOSUB), 0);
	char line[512];
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		snprintf(line, sizeof(line), "%.*s", (int)(nl - p), p);
		if (regexec(&re, line, 0, NULL, 0) != 0)
			fail_msg("bad metrics line: %s", line);
		p = nl + 1;
	}
	regfree(&re);
}

static void metrics_text_matches_the_counters(void **state)
{
	struct fixture *f = *state = make("edf-admit", 1);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	/* two served (3 ms and 30 ms end to end), one running, and one refused
	 * because model "n" has no replica */
	assert_int_equal(submit(f, 0, SLA_URGENT, 500), 0);
	sim_clock_advance_ms(3);
	fake_invoke_finish(0, 0, 200, "a");
	assert_int_equal(submit(f, 1, SLA_URGENT, 500), 0);
	assert_int_equal(submit(f, 2, SLA_BATCH, 5000), 0);
	sim_clock_advance_ms(30);
	fake_invoke_finish(1, 0, 200, "b");
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, false), 0);
	int n = dispatch_model_set(f->d, "n", 100, SLA_URGENT, 1);
	assert_true(n >= 0);
	f->m = n;
	assert_int_equal(submit(f, 3, SLA_URGENT, 100), -EAGAIN);

	char buf[32768];
	size_t len = dispatch_render_metrics(f->d, buf, sizeof(buf));
	assert_true(len < sizeof(buf));
	assert_int_equal(strlen(buf), len);
	assert_prometheus_lines(buf);
	assert_non_null(strstr(buf, "# TYPE berth_requests_total counter\n"));
	assert_non_null(strstr(buf, "berth_requests_total{model=\"m\",class=\"urgent\"} 2\n"));
	assert_non_null(strstr(buf, "berth_requests_total{model=\"m\",class=\"batch\"} 1\n"));
	assert_non_null(strstr(buf, "berth_requests_on_time_total{model=\"m\",class=\"urgent\"} 2\n"));
	/* the batch request took the slot when the second urgent one finished */
	assert_non_null(strstr(buf, "berth_queue_depth{model=\"m\",class=\"batch\"} 0\n"));
	assert_non_null(strstr(buf, "berth_requests_running{model=\"m\",class=\"batch\"} 1\n"));
	assert_non_null(strstr(buf, "berth_requests_refused_total{model=\"n\",class=\"urgent\",reason=\"no_ready_replica\"} 1\n"));
	assert_non_null(strstr(buf, "berth_requests_refused_total{model=\"m\",class=\"urgent\",reason=\"deadline_infeasible\"} 0\n"));
	/* histogram: cumulative buckets; 3 ms <= 5 ms, 30 ms only from 50 ms */
	assert_non_null(strstr(buf, "# TYPE berth_request_latency_seconds histogram\n"));
	assert_non_null(strstr(buf, "berth_request_latency_seconds_bucket{model=\"m\",class=\"urgent\",le=\"0.002\"} 0\n"));
	assert_non_null(strstr(buf, "berth_request_latency_seconds_bucket{model=\"m\",class=\"urgent\",le=\"0.005\"} 1\n"));
	assert_non_null(strstr(buf, "berth_request_latency_seconds_bucket{model=\"m\",class=\"urgent\",le=\"0.02\"} 1\n"));
	assert_non_null(strstr(buf, "berth_request_latency_seconds_bucket{model=\"m\",class=\"urgent\",le=\"0.05\"} 2\n"));
	assert_non_null(strstr(buf, "berth_request_latency_seconds_bucket{model=\"m\",class=\"urgent\",le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(buf, "berth_request_latency_seconds_count{model=\"m\",class=\"urgent\"} 2\n"));
	assert_non_null(strstr(buf, "berth_request_latency_seconds_sum{model=\"m\",class=\"urgent\"} 0.033000\n"));
	assert_non_null(strstr(buf, "berth_sla_compliance{model=\"m\",class=\"urgent\"} 1.000000\n"));
	assert_non_null(strstr(buf, "berth_sla_compliance{model=\"n\",class=\"urgent\"} 0.000000\n"));
	assert_non_null(strstr(buf, "berth_replica_ready{model=\"m\",replica=\"0\"} 0\n"));
	assert_non_null(strstr(buf, "berth_sched_slots 1\n"));

	/* too small a buffer: the length needed, and a terminated prefix */
	char small[64];
	size_t need = dispatch_render_metrics(f->d, small, sizeof(small));
	assert_int_equal(need, len);
	assert_int_equal(strlen(small), sizeof(small) - 1);

	char js[8192];
	size_t jl = dispatch_render_state(f->d, js, sizeof(js));
	assert_true(jl < sizeof(js));
	assert_non_null(strstr(js, "\"policy\":\"edf-admit\""));
	assert_non_null(strstr(js, "{\"name\":\"m\",\"ready\":false"));
	assert_non_null(strstr(js, "\"address\":\"127.0.0.1:9001\""));
}

static void on_miss(void *arg, const char *model, enum dispatch_reason why, int http_status)
{
	struct fixture *f = arg;
	(void)model;
	(void)http_status;
	if (why == DISPATCH_NO_READY_REPLICA || why == DISPATCH_REPLICA_FAILED || http_status >= 500)
		f->pauses += 100; /* counted in hundreds, apart from the pause calls */
}

static int on_pause(void *arg, const char *model, unsigned replica, bool pause)
{
	struct fixture *f = arg;
	assert_string_equal(model, "m");
	assert_int_equal(replica, 0);
	if (pause)
		f->pauses++;
	else
		f->resumes++;
	return 0;
}

static void misses_withdrawn_models_and_inflight(void **state)
{
	struct fixture *f = *state = make("edf-admit", 2);
	dispatch_set_miss_fn(f->d, on_miss, f);
	assert_int_equal(submit(f, 0, SLA_NORMAL, 100), -EAGAIN); /* no replica yet */
	assert_int_equal(f->pauses, 100);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(submit(f, 1, SLA_NORMAL, 500), 0);
	struct dispatch_replica_stats st;
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &st), 0);
	assert_int_equal(st.inflight, 1);
	fake_invoke_finish(0, 0, 500, "{}");              /* the replica's 5xx is a miss too */
	assert_int_equal(f->pauses, 200);
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &st), 0);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(submit(f, 2, SLA_NORMAL, 500), 0);
	fake_invoke_finish(1, 0, 200, "{}");              /* a success is not */
	assert_int_equal(f->pauses, 200);

	/* withdrawn: unknown to new requests, counters kept, back with dispatch_model_set */
	dispatch_model_withdraw(f->d, f->m);
	assert_int_equal(dispatch_model_find(f->d, "m"), -ENOENT);
	assert_false(dispatch_all_ready(f->d));
	assert_int_equal(dispatch_replica_stats(f->d, f->m, 0, &st), -ENOENT);
	char buf[8192];
	dispatch_render_metrics(f->d, buf, sizeof(buf));
	assert_non_null(strstr(buf, "berth_requests_total{model=\"m\",class=\"normal\"} 3"));
	assert_int_equal(dispatch_model_set(f->d, "m", 1000, SLA_NORMAL, 1), f->m);
	assert_int_equal(dispatch_model_find(f->d, "m"), f->m);
}

static void paused_request_that_ends_resumes_its_replica(void **state)
{
	struct fixture *f = *state = make("edf-preempt", 1);
	dispatch_set_pause_fn(f->d, on_pause, f);
	int u = dispatch_model_set(f->d, "u", 1000, SLA_URGENT, 1);
	assert_true(u >= 0);
	assert_int_equal(dispatch_replica_set(f->d, f->m, 0, "127.0.0.1", 9001, true), 0);
	assert_int_equal(dispatch_replica_set(f->d, u, 0, "127.0.0.1", 9101, true), 0);
	assert_int_equal(submit(f, 0, SLA_BATCH, 300), 0);   /* takes the only slot */
	f->req[1] = (struct dispatch_req){ .model = u, .cls = SLA_URGENT, .arrival_us = hal_clock_now_us(),
					   .deadline_us = hal_clock_now_us() + 100000, .body = "{}", .body_len = 2 };
	assert_int_equal(dispatch_submit(f->d, &f->req[1]), 0);
	assert_int_equal(f->pauses, 1);                      /* the batch replica was paused for it */
	assert_int_equal(g_fake_inv->nstarted, 2);
	/* the batch transfer times out while still paused: its replica is resumed */
	sim_clock_advance_ms(300);
	fake_invoke_finish(0, -ETIMEDOUT, 0, NULL);
	assert_int_equal(f->resumes, 1);
	assert_int_equal(f->req[0].reason, DISPATCH_DEADLINE_EXCEEDED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(served_with_timeout_equal_to_time_left, teardown),
		cmocka_unit_test_teardown(queued_request_gets_the_time_left_at_dispatch, teardown),
		cmocka_unit_test_teardown(unready_replica_gets_nothing, teardown),
		cmocka_unit_test_teardown(no_ready_replica_is_refused_at_once, teardown),
		cmocka_unit_test_teardown(connection_failure_retries_on_another_replica, teardown),
		cmocka_unit_test_teardown(second_connection_failure_is_not_retried, teardown),
		cmocka_unit_test_teardown(failure_after_the_deadline_is_not_retried, teardown),
		cmocka_unit_test_teardown(timeout_answers_504, teardown),
		cmocka_unit_test_teardown(replica_5xx_is_passed_through_and_counted_failed, teardown),
		cmocka_unit_test_teardown(breaker_opens_half_opens_and_closes, teardown),
		cmocka_unit_test_teardown(tight_deadline_timeouts_leave_the_breaker_closed, teardown),
		cmocka_unit_test_teardown(success_resets_the_failure_count, teardown),
		cmocka_unit_test_teardown(cancel_stops_the_transfer_without_done, teardown),
		cmocka_unit_test_teardown(start_failure_finishes_inside_submit, teardown),
		cmocka_unit_test_teardown(static_replica_list, teardown),
		cmocka_unit_test_teardown(metrics_text_matches_the_counters, teardown),
		cmocka_unit_test_teardown(misses_withdrawn_models_and_inflight, teardown),
		cmocka_unit_test_teardown(paused_request_that_ends_resumes_its_replica, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
