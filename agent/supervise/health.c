/* agent/supervise/health.c - probe state machines; one ops entry per probe kind. */
#include "agent/supervise/health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/base/log.h"
#include "hal/engine.h"
#include "hal/invoke.h"

#define LOG_TAG "health"

struct probe_ops {
	/* Sends one probe; the answer comes to probe_result(). 0 or -errno. */
	int (*send)(struct health_probe *p);
	/* Drops the probe in flight without an answer. */
	void (*cancel)(struct health_probe *p);
};

static void probe_result(struct health_probe *p, bool ok, const char *why);

const char *health_role_name(enum health_role r) { return r == HEALTH_LIVENESS ? "liveness" : "readiness"; }

/* --- http and tcp: through hal_invoke ------------------------------------ */
static void on_invoke(void *arg, const struct hal_invoke_res *res)
{
	struct health_probe *p = arg;
	char why[48];
	p->invoke_handle = 0;
	if (res->err) {
		snprintf(why, sizeof(why), "%s", res->err == -ETIMEDOUT ? "timeout" : strerror(-res->err));
		probe_result(p, false, why);
		return;
	}
	if (p->spec.kind == PROBE_TCP) {
		probe_result(p, true, "");
		return;
	}
	bool ok = res->http_status >= 200 && res->http_status < 400;
	snprintf(why, sizeof(why), "http %d", res->http_status);
	probe_result(p, ok, why);
}

static int http_send(struct health_probe *p)
{
	struct hal_invoke_req req = {
		.host = p->t.host,
		.port = p->t.port,
		.method = "GET",
		.path = p->text->path,
		.timeout_ms = p->spec.timeout_ms,
	};
	int64_t h = hal_invoke_start(p->t.inv, &req, on_invoke, p);
	if (h < 0)
		return (int)h;
	p->invoke_handle = h;
	return 0;
}

static int tcp_send(struct health_probe *p)
{
	int64_t h = hal_invoke_tcp_probe(p->t.inv, p->t.host, p->t.port, p->spec.timeout_ms, on_invoke, p);
	if (h < 0)
		return (int)h;
	p->invoke_handle = h;
	return 0;
}

static void invoke_cancel(struct health_probe *p)
{
	if (p->invoke_handle > 0)
		hal_invoke_cancel(p->t.inv, p->invoke_handle);
	p->invoke_handle = 0;
}

/* --- exec: through the engine --------------------------------------------- */
static void on_exec(void *arg, const struct hal_engine_result *res)
{
	struct health_probe *p = arg;
	bool abandoned = p->exec_abandoned;
	p->exec_inflight = false;
	p->exec_abandoned = false;
	if (abandoned)
		return; /* already counted as a timeout */
	loop_timer_stop(p->loop, &p->exec_timeout);
	char why[48];
	if (res->err) {
		snprintf(why, sizeof(why), "exec: %s", strerror(-res->err));
		probe_result(p, false, why);
		return;
	}
	snprintf(why, sizeof(why), "exit %d", res->exec_exit_code);
	probe_result(p, res->exec_exit_code == 0, why);
}

static void on_exec_timeout(void *arg)
{
	struct health_probe *p = arg;
	if (!p->exec_inflight || p->exec_abandoned)
		return;
	p->exec_abandoned = true;
	probe_result(p, false, "timeout");
}

static int exec_send(struct health_probe *p)
{
	const char *argv[DEPLOY_MAX_ARGS + 1];
	unsigned n = 0;
	if (p->exec_inflight)
		return -EBUSY; /* an abandoned one still holds the slot */
	for (; n < DEPLOY_MAX_ARGS && p->text->exec[n][0]; n++)
		argv[n] = p->text->exec[n];
	argv[n] = NULL;
	int rc = hal_engine_exec(p->t.engine, p->t.ctr_id, argv, on_exec, p);
	if (rc < 0)
		return rc;
	p->exec_inflight = true;
	p->exec_abandoned = false;
	rc = loop_timer_start(p->loop, &p->exec_timeout, p->spec.timeout_ms, 0);
	return rc < 0 ? rc : 0;
}

static void exec_cancel(struct health_probe *p)
{
	loop_timer_stop(p->loop, &p->exec_timeout);
	if (p->exec_inflight)
		p->exec_abandoned = true;
}

static const struct probe_ops ops_by_kind[] = {
	[PROBE_NONE] = { NULL, NULL },
	[PROBE_HTTP] = { http_send, invoke_cancel },
	[PROBE_TCP] = { tcp_send, invoke_cancel },
	[PROBE_EXEC] = { exec_send, exec_cancel },
};

/* --- the state machine ---------------------------------------------------- */
static void set_state(struct health_probe *p, bool ok)
{
	if (p->ok == ok)
		return;
	p->ok = ok;
	if (!ok && p->role == HEALTH_LIVENESS)
		health_probe_stop(p);
	p->fn(p->arg, p, ok);
}

static void probe_result(struct health_probe *p, bool ok, const char *why)
{
	p->probes++;
	if (ok) {
		p->consecutive_fail = 0;
		if (p->consecutive_ok < UINT32_MAX)
			p->consecutive_ok++;
		if (!p->ok && p->consecutive_ok >= p->spec.success_threshold) {
			log_inf("event=probe_ok probe=%s replica=%s", health_role_name(p->role), p->t.name);
			set_state(p, true);
		}
		return;
	}
	p->failures++;
	snprintf(p->last_error, sizeof(p->last_error), "%s", why);
	p->consecutive_ok = 0;
	if (p->consecutive_fail < UINT32_MAX)
		p->consecutive_fail++;
	log_inf("event=probe_failed probe=%s replica=%s consecutive=%u threshold=%u reason=\"%s\"",
		health_role_name(p->role), p->t.name, p->consecutive_fail, p->spec.failure_threshold, why);
	if (p->ok && p->consecutive_fail >= p->spec.failure_threshold)
		set_state(p, false);
}

static void on_tick(void *arg)
{
	struct health_probe *p = arg;
	if (p->spec.kind == PROBE_NONE) {
		/* No probe: ready once started, and nothing more to do. */
		loop_timer_stop(p->loop, &p->tick);
		set_state(p, true);
		return;
	}
	if (p->invoke_handle > 0 || p->exec_inflight) {
		if (p->exec_inflight && p->exec_abandoned) {
			/* The engine still has not answered the timed-out exec: this period fails too. */
			probe_result(p, false, "timeout");
			return;
		}
		p->skipped++;
		return;
	}
	p->sent_us = loop_now_us(p->loop);
	int rc = ops_by_kind[p->spec.kind].send(p);
	if (rc < 0) {
		char why[48];
		snprintf(why, sizeof(why), "not sent: %s", strerror(-rc));
		probe_result(p, false, why);
	}
}

void health_probe_init(struct health_probe *p, struct loop *l, enum health_role role, health_change_fn fn,
		       void *arg)
{
	memset(p, 0, sizeof(*p));
	p->loop = l;
	p->role = role;
	p->fn = fn;
	p->arg = arg;
	p->ok = role == HEALTH_LIVENESS;
	loop_timer_init(&p->tick, on_tick, p);
	loop_timer_init(&p->exec_timeout, on_exec_timeout, p);
}

int health_probe_start(struct health_probe *p, const struct probe_spec *spec, const struct health_target *t)
{
	health_probe_stop(p);
	p->spec = (struct health_probe_params){
		.kind = spec->kind,
		.initial_delay_ms = spec->initial_delay_ms,
		.period_ms = spec->period_ms,
		.timeout_ms = spec->timeout_ms,
		.success_threshold = spec->success_threshold,
		.failure_threshold = spec->failure_threshold,
	};
	p->text = spec;
	p->t = *t;
	p->ok = p->role == HEALTH_LIVENESS;
	p->consecutive_ok = 0;
	p->consecutive_fail = 0;
	p->running = true;
	if (spec->kind == PROBE_NONE && p->role == HEALTH_LIVENESS)
		return 0; /* nothing to watch: alive for as long as it runs */
	uint64_t period = spec->kind == PROBE_NONE ? 0 : spec->period_ms;
	uint64_t delay = spec->kind == PROBE_NONE ? 0 : spec->initial_delay_ms;
	int rc = loop_timer_start(p->loop, &p->tick, delay, period);
	if (rc < 0)
		p->running = false;
	return rc;
}

void health_probe_stop(struct health_probe *p)
{
	if (!p->loop)
		return;
	loop_timer_stop(p->loop, &p->tick);
	if (p->spec.kind < sizeof(ops_by_kind) / sizeof(ops_by_kind[0]) && ops_by_kind[p->spec.kind].cancel)
		ops_by_kind[p->spec.kind].cancel(p);
	p->running = false;
}

int health_probe_resume(struct health_probe *p)
{
	if (p->running || !p->loop)
		return 0;
	p->running = true;
	if (p->spec.kind == PROBE_NONE)
		return 0;
	p->consecutive_ok = 0;
	p->consecutive_fail = 0;
	int rc = loop_timer_start(p->loop, &p->tick, p->spec.period_ms, p->spec.period_ms);
	if (rc < 0)
		p->running = false;
	return rc;
}
