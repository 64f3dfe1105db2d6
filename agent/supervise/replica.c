/* agent/supervise/replica.c - a supervised replica's lifecycle: create, start, probe, kill, exit and back-off, drain, pause, remove, each an engine call and its answer. */
#include "agent/supervise/replica.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/supervise/internal.h"
#include "hal/clock.h"
#include "hal/engine.h"

#define LOG_TAG "superv"

#define KILL_CHECK_MS 2000u
#define OP_WAIT_MS 10u

static void on_liveness(void *arg, struct health_probe *p, bool ok);
static void on_readiness(void *arg, struct health_probe *p, bool ok);
static void on_restart_timer(void *arg);
static void on_kill_check(void *arg);

const char *replica_op_name(enum replica_op op)
{
	switch (op) {
	case REPLICA_OP_NONE: return "none";
	case REPLICA_OP_CREATE: return "create";
	case REPLICA_OP_INSPECT: return "inspect";
	case REPLICA_OP_START: return "start";
	case REPLICA_OP_START_DIED: return "start_died";
	case REPLICA_OP_KILL: return "kill";
	case REPLICA_OP_STOP: return "stop";
	case REPLICA_OP_REMOVE: return "remove";
	default: return "?";
	}
}

const char *replica_pause_name(enum replica_pause p)
{
	switch (p) {
	case REPLICA_UNPAUSED: return "unpaused";
	case REPLICA_PAUSING: return "pausing";
	case REPLICA_PAUSED: return "paused";
	case REPLICA_UNPAUSING: return "unpausing";
	default: return "?";
	}
}

const char *replica_intent_name(enum replica_intent i)
{
	switch (i) {
	case REPLICA_KEEP: return "keep";
	case REPLICA_RETIRE: return "retire";
	case REPLICA_REMOVE: return "remove";
	default: return "?";
	}
}

const char *replica_exit_name(enum replica_exit e)
{
	switch (e) {
	case REPLICA_EXIT_NONE: return "none";
	case REPLICA_EXIT_CRASH: return "crash";
	case REPLICA_EXIT_LIVENESS: return "liveness";
	case REPLICA_EXIT_CHAOS: return "chaos";
	default: return "?";
	}
}

void replica_init(struct replica *r, struct deployment *d, unsigned slot, struct loop *l)
{
	r->dep = d;
	r->slot = slot;
	health_probe_init(&r->live, l, HEALTH_LIVENESS, on_liveness, r);
	health_probe_init(&r->readiness, l, HEALTH_READINESS, on_readiness, r);
	loop_timer_init(&r->restart_timer, on_restart_timer, r);
	loop_timer_init(&r->kill_check, on_kill_check, r);
}

void replica_fini(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	replica_stop_probes(r);
	loop_timer_stop(s->loop, &r->restart_timer);
	loop_timer_stop(s->loop, &r->kill_check);
}

void replica_reset(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	r->st = SUP_R_EMPTY;
	r->id[0] = '\0';
	r->inflight = 0;
	r->op = REPLICA_OP_NONE;
	r->pause = REPLICA_UNPAUSED;
	r->forget = false;
	r->ready = r->draining = false;
	r->intent = REPLICA_KEEP;
	r->generation = 0;
	r->restarts = 0;
	backoff_init(&r->bo, DEPLOY_DEFAULT_BACKOFF_INITIAL_MS, DEPLOY_DEFAULT_BACKOFF_MAX_MS,
		     DEPLOY_DEFAULT_BACKOFF_RESET_MS, SUP_JITTER_PERMILLE, true, &s->rng);
}

uint16_t replica_port(const struct replica *r) { return (uint16_t)(r->dep->spec.port_base + r->slot); }

void replica_view(const struct replica *r, struct sup_replica *v)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->deployment, sizeof(v->deployment), "%s", r->dep->spec.name);
	v->slot = r->slot;
	v->generation = r->generation;
	strcpy(v->host, "127.0.0.1");
	v->port = replica_port(r);
	v->concurrency = r->dep->spec.concurrency;
	snprintf(v->ctr_id, sizeof(v->ctr_id), "%s", r->id);
	v->pid = r->st == SUP_R_RUNNING ? r->pid : 0;
	v->state = r->st;
	v->ready = r->ready;
	v->live = r->live.ok;
	v->draining = r->draining;
	v->paused = replica_paused(r);
	v->current = r->hash == r->dep->spec.spec_hash;
	v->restarts = r->restarts;
	v->ready_since_ms = r->ready ? r->ready_since_ms : 0;
}

bool replica_serving(const struct replica *r)
{
	return r->ready && !r->draining && !replica_paused(r) && r->intent != REPLICA_REMOVE && r->st == SUP_R_RUNNING;
}

void replica_serving_changed(struct replica *r, bool was)
{
	struct supervisor *s = r->dep->sup;
	bool is = replica_serving(r);
	if (is && !was) {
		log_inf("event=replica_ready deployment=%s replica=%u port=%u generation=%u restarts=%u wall_ms=%" PRId64,
			r->dep->spec.name, r->slot, replica_port(r), r->generation, r->restarts, hal_clock_wall_ms());
		supervisor_notify(s, r, SUP_EV_READY);
	} else if (!is && was) {
		log_inf("event=replica_unready deployment=%s replica=%u wall_ms=%" PRId64, r->dep->spec.name, r->slot,
			hal_clock_wall_ms());
		supervisor_notify(s, r, SUP_EV_UNREADY);
	}
}

/* The readiness verdict changed: back-off health, start-up time, observers. */
static void set_ready(struct replica *r, bool ready)
{
	struct supervisor *s = r->dep->sup;
	bool was = replica_serving(r);
	r->ready = ready;
	if (ready) {
		r->ready_since_ms = supervisor_now_ms(s);
		backoff_healthy(&r->bo, supervisor_now_ms(s));
		if (r->created_ms) { /* the autoscaler's start-up time: create -> first ready */
			uint64_t took = r->ready_since_ms - r->created_ms;
			r->dep->startup_ms = took > UINT32_MAX ? UINT32_MAX : (uint32_t)took;
			r->created_ms = 0;
		}
	} else {
		backoff_unhealthy(&r->bo);
	}
	replica_serving_changed(r, was);
}

void replica_stop_probes(struct replica *r)
{
	health_probe_stop(&r->live);
	health_probe_stop(&r->readiness);
}

void replica_start_probes(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	struct health_target t = { .inv = s->inv, .engine = s->engine, .port = replica_port(r) };
	strcpy(t.host, "127.0.0.1");
	snprintf(t.ctr_id, sizeof(t.ctr_id), "%s", r->id);
	snprintf(t.name, sizeof(t.name), "%s/%u", r->dep->spec.name, r->slot);
	if (health_probe_start(&r->live, &r->dep->spec.liveness, &t) < 0 ||
	    health_probe_start(&r->readiness, &r->dep->spec.readiness, &t) < 0)
		log_err("event=timer_full what=probe replica=%s", t.name);
}

/* The per-container state, for a slot that holds a container new to it. */
static void clear_flags(struct replica *r)
{
	r->draining = false;
	r->pause = REPLICA_UNPAUSED;
	r->intent = REPLICA_KEEP;
	r->exit = REPLICA_EXIT_NONE;
	r->trial = false;
}

void replica_clear(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	if (r->inflight) {
		r->forget = true;
		return;
	}
	bool had = r->st != SUP_R_EMPTY;
	if (r->ready)
		set_ready(r, false);
	replica_stop_probes(r);
	loop_timer_stop(s->loop, &r->restart_timer);
	loop_timer_stop(s->loop, &r->kill_check);
	if (had) {
		log_inf("event=replica_gone deployment=%s replica=%u id=%.12s state=%s", r->dep->spec.name, r->slot,
			r->id, supervisor_state_name(r->st));
		supervisor_notify(s, r, SUP_EV_GONE);
	}
	r->st = SUP_R_EMPTY;
	r->id[0] = '\0';
	r->pid = 0;
	r->hash = 0;
	clear_flags(r);
	r->forget = false;
	r->op = REPLICA_OP_NONE;
	supervisor_kick(s);
}

void replica_call_sent(struct replica *r) { r->inflight++; }

bool replica_call_done(struct replica *r)
{
	if (r->inflight)
		r->inflight--;
	if (r->forget) {
		if (!r->inflight)
			replica_clear(r);
		return false;
	}
	return true;
}

bool replica_op_done(struct replica *r)
{
	if (!replica_call_done(r))
		return false;
	r->op = REPLICA_OP_NONE;
	return true;
}

int replica_sent_or_retry(struct replica *r, int rc, const char *what)
{
	struct supervisor *s = r->dep->sup;
	if (rc == 0) {
		replica_call_sent(r);
		return 0;
	}
	if (rc != -EBUSY)
		log_wrn("event=engine_call_refused call=%s deployment=%s replica=%u err=%s", what, r->dep->spec.name,
			r->slot, strerror(-rc));
	supervisor_kick_later(s, SUP_BUSY_RETRY_MS);
	return rc;
}

/* Sends call (already made with rc) as the replica's exclusive lifecycle op. */
static bool send_op(struct replica *r, enum replica_op op, int rc, const char *what)
{
	if (replica_sent_or_retry(r, rc, what) != 0)
		return false;
	r->op = op;
	return true;
}

/* --- probes ---------------------------------------------------------------- */
static void on_readiness(void *arg, struct health_probe *p, bool ok)
{
	struct replica *r = arg;
	(void)p;
	if (r->st != SUP_R_RUNNING)
		return;
	set_ready(r, ok);
	struct deployment *d = r->dep;
	if (ok && r->trial && d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		/* The trial is ready; it closes the circuit if it stays up a while. */
		uint32_t stable = d->spec.backoff_reset_ms < SUP_CIRCUIT_STABLE_MS ? d->spec.backoff_reset_ms
										  : SUP_CIRCUIT_STABLE_MS;
		supervisor_arm(d->sup, &d->circuit_timer, stable, "circuit");
	}
	supervisor_kick(d->sup);
}

static void on_liveness(void *arg, struct health_probe *p, bool ok)
{
	struct replica *r = arg;
	if (ok || r->st != SUP_R_RUNNING)
		return;
	deployment_set_error(r->dep, "replica %u failed liveness (%s)", r->slot, p->last_error);
	replica_kill(r, REPLICA_EXIT_LIVENESS);
}

/* --- kill ------------------------------------------------------------------------ */
static void on_kill_inspect(void *arg, const struct hal_engine_result *res);

static void check_killed(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	if (r->st != SUP_R_KILLING)
		return;
	(void)replica_sent_or_retry(r, hal_engine_inspect(s->engine, r->id, on_kill_inspect, r), "inspect");
}

static void on_kill_check(void *arg) { check_killed(arg); }

static void on_kill_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!replica_call_done(r))
		return;
	if (r->st != SUP_R_KILLING)
		return;
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	if (res->err) {
		if (supervisor_engine_trouble(res->err))
			supervisor_engine_failed(s, res->err, "inspect");
		supervisor_arm(s, &r->kill_check, KILL_CHECK_MS, "kill_check");
		return;
	}
	const struct hal_ctr_info *c = &res->ctrs[0];
	if (res->nctrs && c->state != HAL_CTR_RUNNING && c->state != HAL_CTR_PAUSED) {
		replica_exited(r, c->exit_code, c->oom_killed);
		return;
	}
	/* Not down yet: the die event will come; look again in case it does not. */
	supervisor_arm(s, &r->kill_check, KILL_CHECK_MS, "kill_check");
}

static void on_kill(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!replica_op_done(r))
		return;
	if (res->err && supervisor_engine_trouble(res->err)) {
		supervisor_engine_failed(s, res->err, "kill");
		supervisor_arm(s, &r->kill_check, KILL_CHECK_MS, "kill_check");
		return;
	}
	supervisor_engine_answered(s);
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	/* -EBUSY: it was not running any more, which is what we wanted. */
	check_killed(r);
}

void replica_kill(struct replica *r, enum replica_exit why)
{
	struct supervisor *s = r->dep->sup;
	bool was = replica_serving(r);
	r->exit = why;
	r->st = SUP_R_KILLING;
	replica_stop_probes(r);
	replica_serving_changed(r, was);
	log_inf("event=replica_kill deployment=%s replica=%u reason=%s liveness_failures=%u wall_ms=%" PRId64,
		r->dep->spec.name, r->slot, replica_exit_name(why), r->live.consecutive_fail, hal_clock_wall_ms());
	if (!send_op(r, REPLICA_OP_KILL, hal_engine_kill(s->engine, r->id, SIGKILL, on_kill, r), "kill"))
		supervisor_arm(s, &r->kill_check, SUP_BUSY_RETRY_MS, "kill_check");
}

/* --- start ------------------------------------------------------------------------ */
static void on_pid_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	if (!replica_call_done(r))
		return;
	if (!res->err && res->nctrs && r->st == SUP_R_RUNNING)
		r->pid = res->ctrs[0].pid;
}

void replica_running(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	r->st = SUP_R_RUNNING;
	r->generation++;
	r->pid = 0;
	log_inf("event=replica_started deployment=%s replica=%u id=%.12s restarts=%u wall_ms=%" PRId64,
		r->dep->spec.name, r->slot, r->id, r->restarts, hal_clock_wall_ms());
	replica_start_probes(r);
	/* The pid is for metrics only; losing this call is harmless. */
	if (hal_engine_inspect(s->engine, r->id, on_pid_inspect, r) == 0)
		replica_call_sent(r);
}

static void on_die_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	if (!replica_call_done(r))
		return;
	if (r->st != SUP_R_RUNNING && r->st != SUP_R_KILLING)
		return;
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	if (res->err || !res->nctrs) {
		replica_exited(r, -1, false);
		return;
	}
	const struct hal_ctr_info *c = &res->ctrs[0];
	if (c->state == HAL_CTR_RUNNING || c->state == HAL_CTR_PAUSED)
		return; /* a stale event of an earlier run */
	replica_exited(r, c->exit_code, c->oom_killed);
}

void replica_confirm_die(struct replica *r, int exit_code)
{
	struct supervisor *s = r->dep->sup;
	/* Inspect also gives the OOM flag, and filters stale events. */
	if (hal_engine_inspect(s->engine, r->id, on_die_inspect, r) == 0)
		replica_call_sent(r);
	else
		replica_exited(r, exit_code, false);
}

static void start_failed(struct replica *r, const struct hal_engine_result *res)
{
	struct supervisor *s = r->dep->sup;
	if (supervisor_engine_trouble(res->err)) {
		supervisor_engine_failed(s, res->err, "start");
		/* Unknown outcome: the next list tells. */
		r->st = SUP_R_BACKOFF;
		return;
	}
	supervisor_engine_answered(s);
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	deployment_set_error(r->dep, "start of replica %u failed: %s", r->slot,
			     res->message && *res->message ? res->message : strerror(-res->err));
	log_wrn("event=start_failed deployment=%s replica=%u err=%s msg=\"%s\"", r->dep->spec.name, r->slot,
		strerror(-res->err), res->message ? res->message : "");
	replica_exited(r, -1, false);
}

static void on_start(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	bool died = r->op == REPLICA_OP_START_DIED;
	if (!replica_op_done(r))
		return;
	if (r->st != SUP_R_STARTING)
		return;
	if (res->err) {
		start_failed(r, res);
		return;
	}
	supervisor_engine_answered(s);
	if (r->intent == REPLICA_REMOVE) {
		replica_remove(r);
		return;
	}
	replica_running(r);
	if (died) {
		/* It may have died right after starting (a crash loop does): look. */
		if (hal_engine_inspect(s->engine, r->id, on_die_inspect, r) == 0)
			replica_call_sent(r);
	}
}

void replica_start(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	r->st = SUP_R_STARTING;
	r->exit = REPLICA_EXIT_NONE;
	if (!send_op(r, REPLICA_OP_START, hal_engine_start(s->engine, r->id, on_start, r), "start"))
		r->st = SUP_R_BACKOFF; /* the kick retries through the restart path */
}

void replica_restart_due(struct replica *r)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	if (r->st != SUP_R_BACKOFF)
		return;
	if (r->op != REPLICA_OP_NONE) {
		/* e.g. the kill call is still answering after the die was seen: look again shortly */
		supervisor_arm(s, &r->restart_timer, OP_WAIT_MS, "restart");
		return;
	}
	if (r->intent == REPLICA_REMOVE || d->removing) {
		replica_remove(r);
		return;
	}
	if (!s->engine_up)
		return; /* restarted once the engine is back (reconcile arms this timer again) */
	if (d->circuit == SUP_CIRCUIT_OPEN)
		return; /* the circuit timer moves it to half-open */
	if (d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
			if (d->r[i].trial && &d->r[i] != r)
				return; /* one trial at a time */
		r->trial = true;
		log_inf("event=circuit_half_open_try deployment=%s replica=%u", d->spec.name, r->slot);
	}
	log_inf("event=replica_restart deployment=%s replica=%u restarts=%u wall_ms=%" PRId64, d->spec.name, r->slot,
		r->restarts, hal_clock_wall_ms());
	replica_start(r);
}

static void on_restart_timer(void *arg) { replica_restart_due(arg); }

/* --- exit ------------------------------------------------------------------------- */
/* Back-off (or the circuit) after a counted exit that is to be restarted. */
static void exited_backoff(struct replica *r, bool chaos)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	if (chaos && d->circuit == SUP_CIRCUIT_CLOSED) {
		/* A kill on purpose is no failure of the workload: restarted at once,
		 * without a step of back-off, a failed recovery or the circuit. */
		log_inf("event=replica_backoff deployment=%s replica=%u failures=%u delay_ms=0 circuit=closed reason=chaos",
			d->spec.name, r->slot, r->bo.failures);
		if (loop_timer_start(s->loop, &r->restart_timer, 0, 0) < 0)
			log_err("event=timer_full what=restart");
		return;
	}
	uint32_t delay = backoff_next_ms(&r->bo);
	/* Failures after the first one in a row are failed recoveries. */
	deployment_raise_migration(d, r->bo.failures - 1);
	if (r->trial || d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		r->trial = false;
		deployment_open_circuit(d, delay);
	} else if (r->bo.at_cap && d->circuit == SUP_CIRCUIT_CLOSED) {
		deployment_open_circuit(d, delay);
	}
	log_inf("event=replica_backoff deployment=%s replica=%u failures=%u delay_ms=%u circuit=%s", d->spec.name,
		r->slot, r->bo.failures, delay, supervisor_circuit_name(d->circuit));
	if (d->circuit == SUP_CIRCUIT_CLOSED)
		supervisor_arm(s, &r->restart_timer, delay, "restart");
}

void replica_exited(struct replica *r, int exit_code, bool oom)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	bool was = replica_serving(r);
	enum replica_exit cause = r->exit == REPLICA_EXIT_LIVENESS || r->exit == REPLICA_EXIT_CHAOS ? r->exit
												     : REPLICA_EXIT_CRASH;
	bool liveness = cause == REPLICA_EXIT_LIVENESS;
	r->exit = cause;
	r->st = SUP_R_BACKOFF;
	r->pid = 0;
	r->exited_ms = supervisor_now_ms(s);
	loop_timer_stop(s->loop, &r->kill_check);
	replica_stop_probes(r);
	r->ready = false;
	replica_serving_changed(r, was);
	if (cause == REPLICA_EXIT_CRASH && exit_code != -1)
		deployment_set_error(d, "replica %u exited with code %d%s", r->slot, exit_code,
				     oom ? " (out of memory)" : "");
	log_inf("event=replica_exited deployment=%s replica=%u exit_code=%d oom=%d liveness=%d cause=%s wall_ms=%" PRId64,
		d->spec.name, r->slot, exit_code, oom, liveness, replica_exit_name(cause), hal_clock_wall_ms());
	if (r->intent != REPLICA_KEEP || d->removing) {
		replica_remove(r);
		return;
	}
	bool failed = liveness || oom || exit_code != 0;
	if (d->spec.restart == RESTART_NEVER || (d->spec.restart == RESTART_ON_FAILURE && !failed)) {
		r->st = SUP_R_EXITED;
		log_inf("event=replica_not_restarted deployment=%s replica=%u policy=%s", d->spec.name, r->slot,
			deploy_restart_name(d->spec.restart));
		return;
	}
	r->restarts++;
	d->restarts++;
	if (r->hash == d->spec.spec_hash && cause != REPLICA_EXIT_CHAOS)
		d->version_exits++;
	exited_backoff(r, cause == REPLICA_EXIT_CHAOS);
}

/* --- remove ------------------------------------------------------------------------ */
static void on_remove(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!replica_op_done(r))
		return;
	if (res->err && res->err != -ENOENT) {
		if (supervisor_engine_trouble(res->err))
			supervisor_engine_failed(s, res->err, "remove");
		else
			log_wrn("event=remove_failed deployment=%s replica=%u err=%s msg=\"%s\"", r->dep->spec.name,
				r->slot, strerror(-res->err), res->message ? res->message : "");
		supervisor_kick_later(s, SUP_BUSY_RETRY_MS * 10);
		return;
	}
	supervisor_engine_answered(s);
	log_inf("event=replica_removed deployment=%s replica=%u", r->dep->spec.name, r->slot);
	replica_clear(r);
}

static void on_stop(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!replica_op_done(r))
		return;
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	if (res->err && supervisor_engine_trouble(res->err)) {
		supervisor_engine_failed(s, res->err, "stop");
		supervisor_kick_later(s, SUP_BUSY_RETRY_MS * 10);
		return;
	}
	/* Stopped (or refused to stop gracefully): remove with force either way. */
	(void)send_op(r, REPLICA_OP_REMOVE, hal_engine_remove(s->engine, r->id, true, on_remove, r), "remove");
}

void replica_remove(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	bool was = replica_serving(r);
	bool running = r->st == SUP_R_RUNNING;
	r->intent = REPLICA_REMOVE;
	if (r->op != REPLICA_OP_NONE)
		return; /* finished by the call in flight, which sees the intent */
	replica_serving_changed(r, was);
	replica_stop_probes(r);
	loop_timer_stop(s->loop, &r->restart_timer);
	loop_timer_stop(s->loop, &r->kill_check);
	r->st = SUP_R_REMOVING;
	if (!r->id[0]) {
		replica_clear(r);
		return;
	}
	log_inf("event=replica_remove deployment=%s replica=%u id=%.12s", r->dep->spec.name, r->slot, r->id);
	int rc = running ? hal_engine_stop(s->engine, r->id, s->cfg.stop_timeout_s, on_stop, r)
			 : hal_engine_remove(s->engine, r->id, true, on_remove, r);
	(void)send_op(r, running ? REPLICA_OP_STOP : REPLICA_OP_REMOVE, rc, running ? "stop" : "remove");
}

/* --- create ------------------------------------------------------------------------ */
static void create_conflict(struct replica *r)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	/* A container of that name exists (made before a restart, or before the engine
	 * lost our answer): find out what it is instead of making a duplicate. */
	char name[160];
	snprintf(name, sizeof(name), "%s%s-%u", s->name_prefix, d->spec.name, r->slot);
	log_inf("event=create_conflict name=%s", name);
	if (!send_op(r, REPLICA_OP_INSPECT, hal_engine_inspect(s->engine, name, adopt_on_conflict_inspect, r),
		     "inspect"))
		replica_clear(r);
}

static void create_failed(struct replica *r, const struct hal_engine_result *res)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	if (supervisor_engine_trouble(res->err)) {
		supervisor_engine_failed(s, res->err, "create");
	} else {
		supervisor_engine_answered(s);
		uint32_t delay = backoff_next_ms(&d->create_bo);
		d->create_not_before_ms = supervisor_now_ms(s) + delay;
		deployment_set_error(d, "create failed: %s",
				     res->message && *res->message ? res->message : strerror(-res->err));
		log_wrn("event=create_failed deployment=%s replica=%u err=%s msg=\"%s\" retry_in_ms=%u", d->spec.name,
			r->slot, strerror(-res->err), res->message ? res->message : "", delay);
		supervisor_kick_later(s, delay);
	}
	replica_clear(r);
}

static void on_create(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	if (!replica_op_done(r))
		return;
	if (res->err == -EEXIST) {
		create_conflict(r);
		return;
	}
	if (res->err) {
		create_failed(r, res);
		return;
	}
	supervisor_engine_answered(s);
	backoff_reset(&d->create_bo);
	snprintf(r->id, sizeof(r->id), "%s", res->id ? res->id : "");
	r->known_since_us = loop_now_us(s->loop);
	if (r->intent == REPLICA_REMOVE || d->removing) {
		r->st = SUP_R_BACKOFF;
		replica_remove(r);
		return;
	}
	replica_start(r);
}

/* The container's labels: who owns it, which deployment, slot and spec. */
static void create_labels(const struct replica *r, struct hal_label labels[4])
{
	const struct supervisor *s = r->dep->sup;
	const struct deploy_spec *sp = &r->dep->spec;
	memset(labels, 0, 4 * sizeof(*labels));
	snprintf(labels[0].key, sizeof(labels[0].key), SUP_LABEL_OWNER);
	snprintf(labels[0].value, sizeof(labels[0].value), "%s", s->cfg.device_id);
	snprintf(labels[1].key, sizeof(labels[1].key), SUP_LABEL_DEPLOYMENT);
	snprintf(labels[1].value, sizeof(labels[1].value), "%s", sp->name);
	snprintf(labels[2].key, sizeof(labels[2].key), SUP_LABEL_REPLICA);
	snprintf(labels[2].value, sizeof(labels[2].value), "%u", r->slot);
	snprintf(labels[3].key, sizeof(labels[3].key), SUP_LABEL_HASH);
	snprintf(labels[3].value, sizeof(labels[3].value), "%016" PRIx64, sp->spec_hash);
}

void replica_create(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	const struct deploy_spec *sp = &r->dep->spec;
	char name[160], port[32], idx[32], model[80];
	const char *env[DEPLOY_MAX_ENV + 4];
	const char *cmd[DEPLOY_MAX_ARGS + 1];
	unsigned ne = 0, nc = 0;

	snprintf(name, sizeof(name), "%s%s-%u", s->name_prefix, sp->name, r->slot);
	snprintf(port, sizeof(port), "BERTH_PORT=%u", replica_port(r));
	snprintf(idx, sizeof(idx), "BERTH_REPLICA=%u", r->slot);
	snprintf(model, sizeof(model), "BERTH_MODEL=%s", sp->name);
	for (unsigned i = 0; i < DEPLOY_MAX_ENV && sp->env[i][0]; i++)
		env[ne++] = sp->env[i];
	env[ne++] = port;
	env[ne++] = idx;
	env[ne++] = model;
	env[ne] = NULL;
	for (unsigned i = 0; i < DEPLOY_MAX_ARGS && sp->cmd[i][0]; i++)
		cmd[nc++] = sp->cmd[i];
	cmd[nc] = NULL;
	struct hal_label labels[4];
	create_labels(r, labels);
	struct hal_ctr_create spec = {
		.name = name,
		.image = sp->image,
		.cmd = nc ? cmd : NULL,
		.env = env,
		.labels = labels,
		.nlabels = 4,
		.nano_cpus = sp->cpu_nano,
		.mem_bytes = sp->mem_bytes,
		.host_network = true,
	};
	r->st = SUP_R_CREATING;
	r->hash = sp->spec_hash;
	r->id[0] = '\0';
	r->draining = false;
	r->pause = REPLICA_UNPAUSED;
	r->intent = REPLICA_KEEP;
	r->exit = REPLICA_EXIT_NONE;
	r->restarts = 0;
	r->created_ms = supervisor_now_ms(s);
	backoff_init(&r->bo, sp->backoff_initial_ms, sp->backoff_max_ms, sp->backoff_reset_ms, SUP_JITTER_PERMILLE,
		     true, &s->rng);
	log_inf("event=replica_create deployment=%s replica=%u name=%s port=%u", sp->name, r->slot, name,
		replica_port(r));
	if (!send_op(r, REPLICA_OP_CREATE, hal_engine_create_ctr(s->engine, &spec, on_create, r), "create"))
		r->st = SUP_R_EMPTY;
}

/* --- pause ------------------------------------------------------------------------- */
/* Out of a pause (or a pause that failed): probes run again and it may serve. */
static void resumed(struct replica *r)
{
	bool was = replica_serving(r);
	r->pause = REPLICA_UNPAUSED;
	if (health_probe_resume(&r->live) < 0 || health_probe_resume(&r->readiness) < 0)
		log_err("event=timer_full what=probe");
	replica_serving_changed(r, was);
}

static void on_pause(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!replica_call_done(r))
		return;
	r->pause = REPLICA_PAUSED;
	if (res->err) {
		if (supervisor_engine_trouble(res->err))
			supervisor_engine_failed(s, res->err, "pause");
		log_wrn("event=pause_failed deployment=%s replica=%u err=%s", r->dep->spec.name, r->slot,
			strerror(-res->err));
		/* Probes were held for the pause; resume them. */
		if (r->st == SUP_R_RUNNING)
			resumed(r);
		return;
	}
	log_inf("event=replica_paused deployment=%s replica=%u", r->dep->spec.name, r->slot);
}

static void on_unpause(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!replica_call_done(r))
		return;
	r->pause = REPLICA_PAUSED;
	if (res->err && res->err != -EBUSY) {
		if (supervisor_engine_trouble(res->err))
			supervisor_engine_failed(s, res->err, "unpause");
		log_wrn("event=unpause_failed deployment=%s replica=%u err=%s", r->dep->spec.name, r->slot,
			strerror(-res->err));
		return;
	}
	if (r->st != SUP_R_RUNNING)
		return;
	log_inf("event=replica_unpaused deployment=%s replica=%u", r->dep->spec.name, r->slot);
	resumed(r);
}

int replica_pause(struct replica *r, bool pause)
{
	struct supervisor *s = r->dep->sup;
	if (r->st != SUP_R_RUNNING || replica_pause_busy(r) || r->op != REPLICA_OP_NONE)
		return -EBUSY;
	if (pause && replica_paused(r))
		return -EALREADY;
	if (pause) {
		int rc = hal_engine_pause(s->engine, r->id, on_pause, r);
		if (rc < 0)
			return rc;
		replica_call_sent(r);
		/* Not ready from now: nothing new is sent to a replica being frozen. */
		bool was = replica_serving(r);
		r->pause = REPLICA_PAUSING;
		replica_stop_probes(r);
		replica_serving_changed(r, was);
		return 0;
	}
	if (!replica_paused(r))
		return -EALREADY;
	int rc = hal_engine_unpause(s->engine, r->id, on_unpause, r);
	if (rc < 0)
		return rc;
	replica_call_sent(r);
	r->pause = REPLICA_UNPAUSING;
	return 0;
}
