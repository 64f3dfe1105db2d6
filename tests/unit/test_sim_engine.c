/* tests/unit/test_sim_engine.c - the simulated engine and replicas behave as ports/sim/sim.h documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agent/base/loop.h"
#include "hal/clock.h"
#include "hal/engine.h"
#include "hal/invoke.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

struct fx {
	struct loop *l;
	struct hal_engine *e;
	struct hal_invoke *inv;
};

struct res {
	int calls;
	int err;
	char id[80];
	struct hal_ctr_info ctrs[8];
	unsigned n;
	int exec_code;
	int status;
	char body[256];
	uint64_t at_us;
};

struct evlog {
	int n;
	enum hal_engine_event_type type[32];
	int code[32];
	char id[32][80];
};

static void on_eng(void *arg, const struct hal_engine_result *r)
{
	struct res *s = arg;
	s->calls++;
	s->err = r->err;
	if (r->id)
		snprintf(s->id, sizeof(s->id), "%s", r->id);
	s->n = r->nctrs < 8 ? r->nctrs : 8;
	for (unsigned i = 0; i < s->n; i++)
		s->ctrs[i] = r->ctrs[i];
	s->exec_code = r->exec_exit_code;
	s->at_us = hal_clock_now_us();
}

static void on_inv(void *arg, const struct hal_invoke_res *r)
{
	struct res *s = arg;
	s->calls++;
	s->err = r->err;
	s->status = r->http_status;
	size_t n = r->body_len < sizeof(s->body) - 1 ? r->body_len : sizeof(s->body) - 1;
	if (n)
		memcpy(s->body, r->body, n);
	s->body[n] = '\0';
	s->at_us = hal_clock_now_us();
}

static void on_ev(void *arg, const struct hal_engine_event *ev)
{
	struct evlog *lg = arg;
	if (lg->n >= 32)
		return;
	lg->type[lg->n] = ev->type;
	lg->code[lg->n] = ev->exit_code;
	snprintf(lg->id[lg->n], sizeof(lg->id[0]), "%s", ev->id);
	lg->n++;
}

static int setup(void **state)
{
	static struct fx f;
	sim_reset();
	f.l = loop_create();
	f.e = hal_engine_create(f.l, "sim", 5000);
	f.inv = hal_invoke_create(f.l, 8);
	*state = &f;
	return f.l && f.e && f.inv ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	hal_invoke_destroy(f->inv);
	hal_engine_destroy(f->e);
	loop_destroy(f->l);
	return 0;
}

static void run_until(struct fx *f, struct res *r, int calls)
{
	for (int i = 0; i < 10000 && r->calls < calls; i++)
		loop_run_once(f->l, 100);
	assert_int_equal(r->calls, calls);
}

static void run_ms(struct fx *f, uint64_t ms) { test_run_ms(f->l, ms, UINT64_MAX); }

static const struct hal_label g_labels[2] = { { "io.berth.owner", "dev1" }, { "io.berth.replica", "0" } };

/* Creates and starts a worker-like container on port; returns its id in r. */
static void make_replica(struct fx *f, const char *name, uint16_t port, const char *extra_env, struct res *r)
{
	char envp[32];
	snprintf(envp, sizeof(envp), "BERTH_PORT=%u", (unsigned)port);
	const char *env[] = { envp, extra_env, NULL };
	struct hal_ctr_create spec = { .name = name, .image = "localhost/berth-worker:latest", .env = env,
				       .labels = g_labels, .nlabels = 2, .host_network = true };
	memset(r, 0, sizeof(*r));
	assert_int_equal(hal_engine_create_ctr(f->e, &spec, on_eng, r), 0);
	run_until(f, r, 1);
	assert_int_equal(r->err, 0);
	char id[80];
	snprintf(id, sizeof(id), "%s", r->id);
	assert_int_equal(hal_engine_start(f->e, id, on_eng, r), 0);
	run_until(f, r, 2);
	assert_int_equal(r->err, 0);
	snprintf(r->id, sizeof(r->id), "%s", id);
}

static int64_t infer(struct fx *f, uint16_t port, uint32_t cost_ms, uint32_t timeout_ms, struct res *r)
{
	static const char body[] = "{\"inputs\":[]}";
	struct hal_invoke_req req = { .host = "127.0.0.1", .port = port, .method = "POST",
				      .path = "/v2/models/m/infer", .body = body, .body_len = sizeof(body) - 1,
				      .content_type = "application/json", .timeout_ms = timeout_ms,
				      .cost_hint_ms = cost_ms };
	return hal_invoke_start(f->inv, &req, on_inv, r);
}

static int64_t get(struct fx *f, uint16_t port, const char *path, uint32_t timeout_ms, struct res *r)
{
	struct hal_invoke_req req = { .host = "127.0.0.1", .port = port, .method = "GET", .path = path,
				      .timeout_ms = timeout_ms };
	return hal_invoke_start(f->inv, &req, on_inv, r);
}

static void start_takes_latency_and_callbacks_come_from_the_loop(void **state)
{
	struct fx *f = *state;
	struct evlog lg = { 0 };
	assert_int_equal(hal_engine_watch(f->e, on_ev, &lg), 0);
	assert_int_equal(lg.n, 0); /* never inside the call */
	const char *env[] = { "BERTH_PORT=9000", NULL };
	struct hal_ctr_create spec = { .name = "w0", .image = "img", .env = env, .labels = g_labels, .nlabels = 2 };
	struct res r = { 0 };
	uint64_t t0 = hal_clock_now_us();
	assert_int_equal(hal_engine_create_ctr(f->e, &spec, on_eng, &r), 0);
	assert_int_equal(r.calls, 0);
	run_until(f, &r, 1);
	assert_int_equal(r.err, 0);
	assert_true(strlen(r.id) >= 12);
	assert_int_equal(r.at_us - t0, 1000); /* engine latency 1 ms */
	char id[80];
	snprintf(id, sizeof(id), "%s", r.id);

	sim_engine_set_start_latency_ms(0);
	assert_int_equal(sim_ctr_set_start_latency_ms(id, 200), 0);
	t0 = hal_clock_now_us();
	assert_int_equal(hal_engine_start(f->e, id, on_eng, &r), 0);
	run_until(f, &r, 2);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.at_us - t0, 201000);
	assert_int_equal(hal_engine_inspect(f->e, "w0", on_eng, &r), 0);
	run_until(f, &r, 3);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.ctrs[0].state, HAL_CTR_RUNNING);
	assert_true(r.ctrs[0].pid > 0);
	assert_string_equal(r.ctrs[0].name, "w0");
	assert_string_equal(r.ctrs[0].labels[0].value, "dev1");
	run_ms(f, 1);
	assert_int_equal(lg.n, 2);
	assert_int_equal(lg.type[0], HAL_EV_STREAM_UP);
	assert_int_equal(lg.type[1], HAL_EV_START);
	assert_string_equal(lg.id[1], id);
	/* Starting a running container is a no-op that succeeds. */
	assert_int_equal(hal_engine_start(f->e, id, on_eng, &r), 0);
	run_until(f, &r, 4);
	assert_int_equal(r.err, 0);
}

static void errors_match_the_real_engine(void **state)
{
	struct fx *f = *state;
	struct res w, r = { 0 };
	make_replica(f, "w0", 9000, NULL, &w);
	const char *env[] = { NULL };
	struct hal_ctr_create spec = { .name = "w0", .image = "img", .env = env };
	assert_int_equal(hal_engine_create_ctr(f->e, &spec, on_eng, &r), 0);
	run_until(f, &r, 1);
	assert_int_equal(r.err, -EEXIST);
	assert_int_equal(hal_engine_remove(f->e, w.id, false, on_eng, &r), 0);
	run_until(f, &r, 2);
	assert_int_equal(r.err, -EBUSY);
	assert_int_equal(hal_engine_inspect(f->e, "nope", on_eng, &r), 0);
	run_until(f, &r, 3);
	assert_int_equal(r.err, -ENOENT);
	assert_int_equal(hal_engine_pause(f->e, w.id, on_eng, &r), 0);
	run_until(f, &r, 4);
	assert_int_equal(r.err, 0);
	assert_int_equal(hal_engine_pause(f->e, w.id, on_eng, &r), 0);
	run_until(f, &r, 5);
	assert_int_equal(r.err, -EBUSY);
	assert_int_equal(hal_engine_remove(f->e, w.id, true, on_eng, &r), 0);
	run_until(f, &r, 6);
	assert_int_equal(r.err, 0);
	assert_int_equal(sim_ctr_count(), 0);
}

static void list_selects_by_label_and_sees_foreign_containers_apart(void **state)
{
	struct fx *f = *state;
	struct res w, r = { 0 };
	make_replica(f, "w0", 9000, NULL, &w);
	make_replica(f, "w1", 9001, NULL, &w);
	struct hal_ctr_create foreign = { .name = "other", .image = "nginx" };
	assert_int_equal(sim_ctr_add(&foreign, true, NULL, 0), 0);
	assert_int_equal(hal_engine_list(f->e, "io.berth.owner", "dev1", on_eng, &r), 0);
	run_until(f, &r, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(hal_engine_list(f->e, "io.berth.owner", "dev2", on_eng, &r), 0);
	run_until(f, &r, 2);
	assert_int_equal(r.n, 0);
	assert_int_equal(sim_ctr_count(), 3);
}

static void oom_sends_oom_then_die(void **state)
{
	struct fx *f = *state;
	struct evlog lg = { 0 };
	struct res w;
	make_replica(f, "w0", 9000, NULL, &w);
	assert_int_equal(hal_engine_watch(f->e, on_ev, &lg), 0);
	run_ms(f, 1);
	assert_int_equal(sim_ctr_oom("w0"), 0);
	run_ms(f, 1);
	assert_int_equal(lg.n, 3);
	assert_int_equal(lg.type[1], HAL_EV_OOM);
	assert_int_equal(lg.type[2], HAL_EV_DIE);
	assert_int_equal(lg.code[2], 137);
	assert_int_equal(sim_ctr_get(w.id, &w.ctrs[0]), 0);
	assert_true(w.ctrs[0].oom_killed);
}

static void infer_respects_cost_and_concurrency(void **state)
{
	struct fx *f = *state;
	struct res w, a = { 0 }, b = { 0 }, c = { 0 };
	make_replica(f, "w0", 9000, "WORKER_CONCURRENCY=1", &w);
	uint64_t t0 = hal_clock_now_us();
	assert_true(infer(f, 9000, 100, 1000, &a) > 0);
	assert_true(infer(f, 9000, 100, 1000, &b) > 0);
	assert_int_equal(a.calls + b.calls, 0);
	unsigned serving, queued;
	assert_int_equal(sim_ctr_load("w0", &serving, &queued), 0);
	assert_int_equal(serving, 1);
	assert_int_equal(queued, 1);
	run_until(f, &b, 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "\"model_name\":\"m\""));
	assert_int_equal(a.at_us - t0, 100000);
	assert_int_equal(b.at_us - t0, 200000);

	/* Two at once when the replica serves two. */
	assert_int_equal(sim_ctr_set_service("w0", 50, 2), 0);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	t0 = hal_clock_now_us();
	assert_true(infer(f, 9000, 0, 1000, &a) > 0);
	assert_true(infer(f, 9000, 0, 1000, &b) > 0);
	run_until(f, &b, 1);
	assert_int_equal(a.at_us - t0, 50000);
	assert_int_equal(b.at_us - t0, 50000);

	/* A request slower than its timeout: -ETIMEDOUT at the timeout. */
	assert_true(infer(f, 9000, 500, 100, &c) > 0);
	t0 = hal_clock_now_us();
	run_until(f, &c, 1);
	assert_int_equal(c.err, -ETIMEDOUT);
	assert_int_equal(c.at_us - t0, 100000);
}

static void faults_hang_unlive_and_crash(void **state)
{
	struct fx *f = *state;
	struct evlog lg = { 0 };
	struct res w, r = { 0 };
	make_replica(f, "w0", 9000, NULL, &w);
	assert_int_equal(hal_engine_watch(f->e, on_ev, &lg), 0);
	run_ms(f, 1);

	assert_int_equal(sim_ctr_unlive("w0", true), 0);
	assert_true(get(f, 9000, "/v2/health/live", 1000, &r) > 0);
	run_until(f, &r, 1);
	assert_int_equal(r.status, 500);

	assert_int_equal(sim_ctr_hang("w0"), 0);
	assert_true(get(f, 9000, "/v2/health/live", 1000, &r) > 0);
	run_until(f, &r, 2);
	assert_int_equal(r.err, -ETIMEDOUT);
	assert_true(hal_invoke_tcp_probe(f->inv, "127.0.0.1", 9000, 1000, on_inv, &r) > 0);
	run_until(f, &r, 3);
	assert_int_equal(r.err, 0); /* a hung process still accepts TCP */

	struct res inflight = { 0 };
	assert_int_equal(sim_ctr_heal("w0"), 0);
	assert_true(infer(f, 9000, 1000, 5000, &inflight) > 0);
	run_ms(f, 10);
	assert_int_equal(sim_ctr_crash("w0", 3), 0);
	assert_int_equal(inflight.calls, 0); /* delivered from the loop */
	run_until(f, &inflight, 1);
	assert_int_equal(inflight.err, -ECONNRESET);
	run_ms(f, 1);
	assert_int_equal(lg.type[lg.n - 1], HAL_EV_DIE);
	assert_int_equal(lg.code[lg.n - 1], 3);
	assert_true(get(f, 9000, "/v2/health/live", 1000, &r) > 0);
	run_until(f, &r, 4);
	assert_int_equal(r.err, -ECONNREFUSED);
	assert_int_equal(sim_ctr_get("w0", &w.ctrs[0]), 0);
	assert_int_equal(w.ctrs[0].state, HAL_CTR_EXITED);
	assert_int_equal(w.ctrs[0].exit_code, 3);
}

static void worker_env_faults_and_startup_delay(void **state)
{
	struct fx *f = *state;
	struct res w, r = { 0 };
	struct evlog lg = { 0 };
	assert_int_equal(hal_engine_watch(f->e, on_ev, &lg), 0);
	make_replica(f, "w0", 9000, "WORKER_STARTUP_MS=300", &w);
	assert_true(get(f, 9000, "/v2/health/ready", 100, &r) > 0);
	run_until(f, &r, 1);
	assert_int_equal(r.err, -ECONNREFUSED);
	run_ms(f, 300);
	assert_true(get(f, 9000, "/v2/health/ready", 100, &r) > 0);
	run_until(f, &r, 2);
	assert_int_equal(r.status, 200);

	make_replica(f, "w1", 9001, "WORKER_CRASH_AFTER_MS=500", &w);
	run_ms(f, 600);
	assert_int_equal(sim_ctr_get("w1", &w.ctrs[0]), 0);
	assert_int_equal(w.ctrs[0].state, HAL_CTR_EXITED);
	assert_int_equal(lg.type[lg.n - 1], HAL_EV_DIE);
	assert_int_equal(lg.code[lg.n - 1], 1);

	/* The admin endpoint sets faults as on the reference worker. */
	make_replica(f, "w2", 9002, NULL, &w);
	struct hal_invoke_req req = { .host = "127.0.0.1", .port = 9002, .method = "POST", .path = "/admin/fault",
				      .body = "unready", .body_len = 7, .timeout_ms = 100 };
	memset(&r, 0, sizeof(r));
	assert_true(hal_invoke_start(f->inv, &req, on_inv, &r) > 0);
	run_until(f, &r, 1);
	assert_true(get(f, 9002, "/v2/models/m/ready", 100, &r) > 0);
	run_until(f, &r, 2);
	assert_int_equal(r.status, 503);
}

static void pause_freezes_service_and_unpause_resumes(void **state)
{
	struct fx *f = *state;
	struct res w, a = { 0 }, r = { 0 };
	make_replica(f, "w0", 9000, NULL, &w);
	uint64_t t0 = hal_clock_now_us();
	assert_true(infer(f, 9000, 100, 5000, &a) > 0);
	run_ms(f, 40);
	assert_int_equal(hal_engine_pause(f->e, "w0", on_eng, &r), 0);
	run_until(f, &r, 1);
	run_ms(f, 500);
	assert_int_equal(a.calls, 0);
	assert_int_equal(hal_engine_unpause(f->e, "w0", on_eng, &r), 0);
	run_until(f, &a, 1);
	/* 41 ms before the pause took effect, 59 ms after the unpause did. */
	uint64_t paused_us = 500000 + 2000;
	assert_true(a.at_us - t0 >= 100000 + paused_us - 2000 && a.at_us - t0 <= 100000 + paused_us + 2000);
}

static void engine_down_and_slow(void **state)
{
	struct fx *f = *state;
	struct evlog lg = { 0 };
	struct res w, r = { 0 };
	make_replica(f, "w0", 9000, NULL, &w);
	assert_int_equal(hal_engine_watch(f->e, on_ev, &lg), 0);
	run_ms(f, 1);
	sim_engine_set_available(false);
	assert_int_equal(hal_engine_ping(f->e, on_eng, &r), 0);
	run_until(f, &r, 1);
	assert_int_equal(r.err, -EHOSTDOWN);
	assert_int_equal(lg.type[lg.n - 1], HAL_EV_STREAM_LOST);
	/* Containers keep running while the engine is away. */
	assert_true(get(f, 9000, "/v2/health/live", 100, &r) > 0);
	run_until(f, &r, 2);
	assert_int_equal(r.status, 200);
	sim_engine_set_available(true);
	run_ms(f, 1);
	assert_int_equal(lg.type[lg.n - 1], HAL_EV_STREAM_UP);

	/* Slower than the 5 s timeout: -ETIMEDOUT, but the stop still happens. */
	sim_engine_set_latency_ms(8000);
	uint64_t t0 = hal_clock_now_us();
	assert_int_equal(hal_engine_stop(f->e, "w0", 0, on_eng, &r), 0);
	run_until(f, &r, 3);
	assert_int_equal(r.err, -ETIMEDOUT);
	assert_int_equal(r.at_us - t0, 5000000);
	assert_int_equal(sim_ctr_get("w0", &w.ctrs[0]), 0);
	assert_int_equal(w.ctrs[0].state, HAL_CTR_RUNNING);
	run_ms(f, 3001);
	assert_int_equal(sim_ctr_get("w0", &w.ctrs[0]), 0);
	assert_int_equal(w.ctrs[0].state, HAL_CTR_EXITED);
}

static void inflight_is_bounded_and_exec_reports_exit(void **state)
{
	struct fx *f = *state;
	struct res w, r[CONFIG_ENGINE_MAX_INFLIGHT + 1];
	make_replica(f, "w0", 9000, NULL, &w);
	memset(r, 0, sizeof(r));
	for (int i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++)
		assert_int_equal(hal_engine_ping(f->e, on_eng, &r[i]), 0);
	assert_int_equal(hal_engine_ping(f->e, on_eng, &r[CONFIG_ENGINE_MAX_INFLIGHT]), -EBUSY);
	run_until(f, &r[CONFIG_ENGINE_MAX_INFLIGHT - 1], 1);
	assert_int_equal(r[CONFIG_ENGINE_MAX_INFLIGHT].calls, 0);

	struct res x = { 0 };
	const char *argv[] = { "/bin/check", NULL };
	assert_int_equal(sim_ctr_set_exec_exit("w0", 3), 0);
	assert_int_equal(hal_engine_exec(f->e, "w0", argv, on_eng, &x), 0);
	run_until(f, &x, 1);
	assert_int_equal(x.err, 0);
	assert_int_equal(x.exec_code, 3);
	assert_int_equal(hal_engine_kill(f->e, "w0", SIGKILL, on_eng, &x), 0);
	run_until(f, &x, 2);
	assert_int_equal(sim_ctr_get("w0", &w.ctrs[0]), 0);
	assert_int_equal(w.ctrs[0].exit_code, 137);
	assert_int_equal(w.ctrs[0].pid, 0);
}

static void cancel_suppresses_callback(void **state)
{
	struct fx *f = *state;
	struct res w, a = { 0 };
	make_replica(f, "w0", 9000, NULL, &w);
	int64_t h = infer(f, 9000, 100, 1000, &a);
	assert_true(h > 0);
	hal_invoke_cancel(f->inv, h);
	run_ms(f, 2000);
	assert_int_equal(a.calls, 0);
	struct hal_invoke_stats st;
	hal_invoke_get_stats(f->inv, &st);
	assert_int_equal(st.canceled, 1);
	assert_int_equal(st.conns_opened, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(start_takes_latency_and_callbacks_come_from_the_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(errors_match_the_real_engine, setup, teardown),
		cmocka_unit_test_setup_teardown(list_selects_by_label_and_sees_foreign_containers_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(oom_sends_oom_then_die, setup, teardown),
		cmocka_unit_test_setup_teardown(infer_respects_cost_and_concurrency, setup, teardown),
		cmocka_unit_test_setup_teardown(faults_hang_unlive_and_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(worker_env_faults_and_startup_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(pause_freezes_service_and_unpause_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(engine_down_and_slow, setup, teardown),
		cmocka_unit_test_setup_teardown(inflight_is_bounded_and_exec_reports_exit, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_suppresses_callback, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
