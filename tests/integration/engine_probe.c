/* tests/integration/engine_probe.c - drives hal_engine and hal_invoke against a real engine and replicas; prints key=value lines. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "hal/clock.h"
#include "hal/engine.h"
#include "hal/invoke.h"

static struct loop *g_l;
static struct hal_engine *g_e;
static struct hal_invoke *g_inv;

/* --- synchronous wrappers: run the loop until the callback came ---------- */

struct wait {
	bool done;
	int err;
	char msg[256];
	char id[80];
	struct hal_ctr_info ctrs[16];
	unsigned n;
	int exec_code;
	int status;
	char body[4096];
	size_t body_len;
};

static void on_engine(void *arg, const struct hal_engine_result *r)
{
	struct wait *w = arg;
	w->done = true;
	w->err = r->err;
	snprintf(w->msg, sizeof(w->msg), "%s", r->message ? r->message : "");
	if (r->id)
		snprintf(w->id, sizeof(w->id), "%s", r->id);
	w->n = r->nctrs < 16 ? r->nctrs : 16;
	for (unsigned i = 0; i < w->n; i++)
		w->ctrs[i] = r->ctrs[i];
	w->exec_code = r->exec_exit_code;
}

static void on_invoke(void *arg, const struct hal_invoke_res *r)
{
	struct wait *w = arg;
	w->done = true;
	w->err = r->err;
	w->status = r->http_status;
	w->body_len = r->body_len < sizeof(w->body) - 1 ? r->body_len : sizeof(w->body) - 1;
	if (r->body_len)
		memcpy(w->body, r->body, w->body_len);
	w->body[w->body_len] = '\0';
}

static int run_until(struct wait *w, int rc, unsigned max_ms)
{
	if (rc < 0) {
		w->err = rc;
		return rc;
	}
	uint64_t end = hal_clock_now_us() + (uint64_t)max_ms * 1000u;
	while (!w->done && hal_clock_now_us() < end)
		loop_run_once(g_l, 50);
	if (!w->done)
		w->err = -ETIME; /* the callback never came: a bug */
	return w->err;
}

/* The call runs first and never calls back inside itself, so clearing w
 * after it is safe. */
static int eng(struct wait *w, int rc)
{
	memset(w, 0, sizeof(*w));
	return run_until(w, rc, 60000);
}
#define ENGINE(call) eng(&w, (call))

static int invoke(const char *method, uint16_t port, const char *path, const char *body, uint32_t timeout_ms,
		  struct wait *w)
{
	memset(w, 0, sizeof(*w));
	struct hal_invoke_req req = {
		.host = "127.0.0.1", .port = port, .method = method, .path = path, .body = body,
		.body_len = body ? strlen(body) : 0, .content_type = body ? "application/json" : NULL,
		.timeout_ms = timeout_ms,
	};
	int64_t h = hal_invoke_start(g_inv, &req, on_invoke, w);
	return run_until(w, h < 0 ? (int)h : 0, timeout_ms + 5000);
}

/* --- events ---------------------------------------------------------------- */

static const char *ev_name(enum hal_engine_event_type t)
{
	switch (t) {
	case HAL_EV_START: return "start";
	case HAL_EV_DIE: return "die";
	case HAL_EV_OOM: return "oom";
	case HAL_EV_PAUSE: return "pause";
	case HAL_EV_UNPAUSE: return "unpause";
	case HAL_EV_DESTROY: return "destroy";
	case HAL_EV_STREAM_LOST: return "lost";
	case HAL_EV_STREAM_UP: return "up";
	}
	return "?";
}

static char g_watch_id[80];
static unsigned g_ups, g_losts;

static void on_event(void *arg, const struct hal_engine_event *ev)
{
	(void)arg;
	if (ev->type == HAL_EV_STREAM_UP)
		g_ups++;
	if (ev->type == HAL_EV_STREAM_LOST)
		g_losts++;
	if (ev->type >= HAL_EV_STREAM_LOST || !g_watch_id[0] || strcmp(ev->id, g_watch_id) == 0) {
		printf("event=%s id=%.12s exit_code=%d\n", ev_name(ev->type), ev->id, ev->exit_code);
		fflush(stdout);
	}
}

static void pump(unsigned ms)
{
	uint64_t end = hal_clock_now_us() + (uint64_t)ms * 1000u;
	while (hal_clock_now_us() < end)
		loop_run_once(g_l, 20);
}

static void pump_until_ups(unsigned ups, unsigned max_ms)
{
	uint64_t end = hal_clock_now_us() + (uint64_t)max_ms * 1000u;
	while (g_ups < ups && hal_clock_now_us() < end)
		loop_run_once(g_l, 20);
}

/* --- scenarios --------------------------------------------------------------- */

/* Container lifecycle on a busybox image: every engine call once. */
static int scenario_lifecycle(const char *image)
{
	struct wait w;
	char name[64], owner[64];
	snprintf(name, sizeof(name), "berth-probe-%d", (int)getpid());
	snprintf(owner, sizeof(owner), "probe-%d", (int)getpid());
	if (hal_engine_watch(g_e, on_event, NULL))
		return 1;
	pump_until_ups(1, 10000);

	printf("ping err=%d\n", ENGINE(hal_engine_ping(g_e, on_engine, &w)));
	const char *cmd[] = { "sleep", "600", NULL };
	const char *env[] = { "BERTH_PORT=1", NULL };
	struct hal_label labels[2] = { { "io.berth.owner", "" }, { "io.berth.replica", "0" } };
	snprintf(labels[0].value, sizeof(labels[0].value), "%s", owner);
	struct hal_ctr_create spec = { .name = name, .image = image, .cmd = cmd, .env = env, .labels = labels,
				       .nlabels = 2, .nano_cpus = 500000000, .mem_bytes = 64u << 20,
				       .host_network = true };
	printf("create err=%d\n", ENGINE(hal_engine_create_ctr(g_e, &spec, on_engine, &w)));
	char id[80];
	snprintf(id, sizeof(id), "%s", w.id);
	snprintf(g_watch_id, sizeof(g_watch_id), "%s", id);
	printf("create_dup err=%d\n", ENGINE(hal_engine_create_ctr(g_e, &spec, on_engine, &w)));
	printf("start err=%d\n", ENGINE(hal_engine_start(g_e, id, on_engine, &w)));
	printf("start_again err=%d\n", ENGINE(hal_engine_start(g_e, id, on_engine, &w)));
	ENGINE(hal_engine_inspect(g_e, id, on_engine, &w));
	printf("inspect err=%d state=%d pid=%d name=%s image=%s label_owner=%s\n", w.err, w.ctrs[0].state,
	       w.ctrs[0].pid, w.ctrs[0].name, w.ctrs[0].image,
	       w.ctrs[0].nlabels ? w.ctrs[0].labels[0].value : "");
	ENGINE(hal_engine_list(g_e, "io.berth.owner", owner, on_engine, &w));
	printf("list err=%d n=%u match=%d\n", w.err, w.n, w.n == 1 && strcmp(w.ctrs[0].id, id) == 0);
	const char *ex3[] = { "sh", "-c", "echo out; exit 3", NULL };
	ENGINE(hal_engine_exec(g_e, id, ex3, on_engine, &w));
	printf("exec err=%d code=%d\n", w.err, w.exec_code);
	const char *ex0[] = { "true", NULL };
	ENGINE(hal_engine_exec(g_e, id, ex0, on_engine, &w));
	printf("exec0 err=%d code=%d\n", w.err, w.exec_code);
	printf("pause err=%d\n", ENGINE(hal_engine_pause(g_e, id, on_engine, &w)));
	ENGINE(hal_engine_inspect(g_e, id, on_engine, &w));
	printf("inspect_paused state=%d\n", w.ctrs[0].state);
	printf("pause_again err=%d\n", ENGINE(hal_engine_pause(g_e, id, on_engine, &w)));
	printf("unpause err=%d\n", ENGINE(hal_engine_unpause(g_e, id, on_engine, &w)));
	printf("kill err=%d\n", ENGINE(hal_engine_kill(g_e, id, SIGKILL, on_engine, &w)));
	/* The engine reaps the container after the kill returns: poll, never sleep a guess. */
	uint64_t t_kill = hal_clock_now_us();
	do {
		pump(100);
		ENGINE(hal_engine_inspect(g_e, id, on_engine, &w));
	} while (w.ctrs[0].state == HAL_CTR_RUNNING && hal_clock_now_us() - t_kill < 15000000u);
	printf("reaped_after_ms=%llu\n", (unsigned long long)((hal_clock_now_us() - t_kill) / 1000u));
	printf("inspect_dead state=%d pid=%d exit_code=%d\n", w.ctrs[0].state, w.ctrs[0].pid, w.ctrs[0].exit_code);
	printf("kill_stopped err=%d\n", ENGINE(hal_engine_kill(g_e, id, SIGKILL, on_engine, &w)));
	printf("start2 err=%d\n", ENGINE(hal_engine_start(g_e, id, on_engine, &w)));
	printf("stop err=%d\n", ENGINE(hal_engine_stop(g_e, id, 1, on_engine, &w)));
	printf("stop_again err=%d\n", ENGINE(hal_engine_stop(g_e, id, 1, on_engine, &w)));
	printf("remove err=%d\n", ENGINE(hal_engine_remove(g_e, id, true, on_engine, &w)));
	pump(500);
	printf("inspect_gone err=%d\n", ENGINE(hal_engine_inspect(g_e, id, on_engine, &w)));
	ENGINE(hal_engine_remove(g_e, id, true, on_engine, &w));
	printf("remove_gone err=%d msg_set=%d\n", w.err, w.msg[0] != 0);
	/* The in-flight bound: CONFIG_ENGINE_MAX_INFLIGHT calls, then -EBUSY. */
	struct wait many[CONFIG_ENGINE_MAX_INFLIGHT + 1];
	int busy = 0, okc = 0;
	memset(many, 0, sizeof(many));
	for (int i = 0; i <= CONFIG_ENGINE_MAX_INFLIGHT; i++) {
		int rc = hal_engine_ping(g_e, on_engine, &many[i]);
		if (rc == -EBUSY)
			busy++;
		else if (rc == 0 && !many[i].done)
			okc++;
	}
	for (int i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++)
		run_until(&many[i], 0, 10000);
	printf("inflight accepted=%d busy=%d\n", okc, busy);
	return 0;
}

/* Runs for secs seconds printing stream transitions; the test script stops
 * and restarts the engine meanwhile. */
static int scenario_watch(unsigned secs, unsigned want_ups)
{
	if (hal_engine_watch(g_e, on_event, NULL))
		return 1;
	pump_until_ups(want_ups, secs * 1000u);
	printf("watch ups=%u losts=%u\n", g_ups, g_losts);
	return 0;
}

static int wait_ready(uint16_t port, unsigned max_ms)
{
	struct wait w;
	uint64_t end = hal_clock_now_us() + (uint64_t)max_ms * 1000u;
	while (hal_clock_now_us() < end) {
		if (invoke("GET", port, "/v2/health/ready", NULL, 500, &w) == 0 && w.status == 200)
			return 0;
		pump(50);
	}
	return -ETIMEDOUT;
}

/* Replica calls against a worker on port (the caller started it). */
static int scenario_invoke(uint16_t port, uint16_t dead_port)
{
	struct wait w;
	printf("ready err=%d\n", wait_ready(port, 20000));
	struct hal_invoke_stats st0, st1;
	hal_invoke_get_stats(g_inv, &st0);
	const char *body = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],"
			   "\"parameters\":{\"cost_ms\":1}}";
	int ok = 0;
	uint64_t worst_us = 0;
	for (int i = 0; i < 20; i++) {
		uint64_t t0 = hal_clock_now_us();
		if (invoke("POST", port, "/v2/models/m/infer", body, 5000, &w) == 0 && w.status == 200 && w.body_len)
			ok++;
		uint64_t d = hal_clock_now_us() - t0;
		if (d > worst_us)
			worst_us = d;
	}
	hal_invoke_get_stats(g_inv, &st1);
	printf("infer ok=%d of=20 conns_opened=%llu worst_us=%llu\n", ok,
	       (unsigned long long)(st1.conns_opened - st0.conns_opened), (unsigned long long)worst_us);
	printf("infer_body has_outputs=%d\n", strstr(w.body, "outputs") != NULL);
	const char *slow = "{\"inputs\":[],\"parameters\":{\"cost_ms\":1500}}";
	invoke("POST", port, "/v2/models/m/infer", slow, 200, &w);
	printf("timeout err=%d\n", w.err);
	invoke("GET", dead_port, "/v2/health/live", NULL, 1000, &w);
	printf("refused err=%d\n", w.err);
	memset(&w, 0, sizeof(w));
	run_until(&w, (int)hal_invoke_tcp_probe(g_inv, "127.0.0.1", port, 1000, on_invoke, &w), 3000);
	printf("tcp_probe err=%d\n", w.err);
	memset(&w, 0, sizeof(w));
	run_until(&w, (int)hal_invoke_tcp_probe(g_inv, "127.0.0.1", dead_port, 1000, on_invoke, &w), 3000);
	printf("tcp_probe_dead err=%d\n", w.err);
	/* Cancel: the callback must never run. */
	memset(&w, 0, sizeof(w));
	struct hal_invoke_req req = { .host = "127.0.0.1", .port = port, .method = "POST",
				      .path = "/v2/models/m/infer", .body = slow, .body_len = strlen(slow),
				      .content_type = "application/json", .timeout_ms = 3000 };
	int64_t h = hal_invoke_start(g_inv, &req, on_invoke, &w);
	pump(50);
	hal_invoke_cancel(g_inv, h);
	pump(300);
	printf("cancel handle_ok=%d called=%d\n", h > 0, w.done);
	return 0;
}

/* Worker lifecycle around scenario_invoke: create, start, call, remove. */
static int scenario_worker(const char *image, uint16_t port, uint16_t dead_port)
{
	struct wait w;
	char name[64], envp[32];
	snprintf(name, sizeof(name), "berth-probe-w%d", (int)getpid());
	snprintf(envp, sizeof(envp), "BERTH_PORT=%u", (unsigned)port);
	const char *env[] = { envp, "WORKER_CONCURRENCY=2", NULL };
	struct hal_label labels[1] = { { "io.berth.owner", "probe" } };
	struct hal_ctr_create spec = { .name = name, .image = image, .env = env, .labels = labels, .nlabels = 1,
				       .host_network = true };
	ENGINE(hal_engine_create_ctr(g_e, &spec, on_engine, &w));
	printf("worker_create err=%d msg=\"%s\"\n", w.err, w.msg);
	char id[80];
	snprintf(id, sizeof(id), "%s", w.id);
	printf("worker_start err=%d\n", ENGINE(hal_engine_start(g_e, id, on_engine, &w)));
	int rc = scenario_invoke(port, dead_port);
	printf("worker_remove err=%d\n", ENGINE(hal_engine_remove(g_e, id, true, on_engine, &w)));
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: engine_probe SOCK lifecycle IMAGE | watch SECS UPS | invoke PORT DEADPORT |"
				" worker IMAGE PORT DEADPORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("PROBE_DEBUG") ? LOG_LEVEL_DBG : LOG_LEVEL_WRN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	g_l = loop_create();
	g_e = hal_engine_create(g_l, argv[1], 10000);
	g_inv = hal_invoke_create(g_l, 16);
	if (!g_l || !g_e || !g_inv)
		return 1;
	int rc = 2;
	if (strcmp(argv[2], "lifecycle") == 0 && argc > 3)
		rc = scenario_lifecycle(argv[3]);
	else if (strcmp(argv[2], "watch") == 0 && argc > 4)
		rc = scenario_watch((unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	else if (strcmp(argv[2], "invoke") == 0 && argc > 4)
		rc = scenario_invoke((uint16_t)atoi(argv[3]), (uint16_t)atoi(argv[4]));
	else if (strcmp(argv[2], "worker") == 0 && argc > 5)
		rc = scenario_worker(argv[3], (uint16_t)atoi(argv[4]), (uint16_t)atoi(argv[5]));
	hal_invoke_destroy(g_inv);
	hal_engine_destroy(g_e);
	loop_destroy(g_l);
	return rc;
}
