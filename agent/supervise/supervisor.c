/* agent/supervise/supervisor.c - the reconciler: desired deployments vs the engine's labelled containers, restarts and rolls. */
#include "agent/supervise/supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/backoff.h"
#include "agent/telemetry/events.h"
#include "agent/supervise/health.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "hal/clock.h"
#include "hal/engine.h"

#define LOG_TAG "superv"

#define LABEL_OWNER "io.berth.owner"
#define LABEL_DEPLOYMENT "io.berth.deployment"
#define LABEL_REPLICA "io.berth.replica"
#define LABEL_HASH "io.berth.spec-hash"
#define HOUSEKEEP_MS 1000u
#define BUSY_RETRY_MS 100u
#define JITTER_PERMILLE 100u
#define KILL_CHECK_MS 2000u
#define OP_WAIT_MS 10u

struct deployment;

struct replica {
	struct deployment *dep;
	unsigned slot;
	enum sup_replica_state st;
	char id[72];
	uint64_t hash;
	int pid;
	bool ready;
	bool draining;
	bool paused;
	bool remove_wanted;
	bool retiring;               /* draining before a scale-down/roll/removal takes it */
	bool liveness_killed;        /* the coming exit is a liveness restart */
	bool chaos_killed;           /* the coming exit is a chaos experiment's kill */
	bool half_open_try;          /* this start is the circuit's half-open trial */
	bool clear_pending;          /* gone, cleared when the last call in flight returns */
	bool die_pending;            /* a die event came while the start call was in flight */
	unsigned inflight;           /* engine calls in flight holding this replica */
	bool op_busy;                /* an exclusive lifecycle call is in flight */
	bool pause_busy;
	uint64_t known_since_us;     /* when its id became known (for list snapshots) */
	uint32_t generation;
	uint32_t restarts;
	uint64_t ready_since_ms;
	uint64_t exited_ms;
	uint64_t created_ms;         /* create sent, until its first ready (start-up time); 0 none */
	uint64_t retire_start_ms;
	uint64_t retire_until_ms;    /* removed then even with requests in flight */
	struct health_probe live;
	struct health_probe readiness;
	struct backoff bo;
	struct loop_timer restart_timer;
	struct loop_timer kill_check;
};

struct deployment {
	struct supervisor *sup;
	bool used;
	bool removing;
	struct deploy_spec spec;
	struct replica r[DEPLOY_MAX_REPLICAS];
	enum sup_circuit circuit;
	struct loop_timer circuit_timer;
	uint32_t restarts;
	bool migration_raised;
	char last_error[128];
	uint32_t startup_ms;             /* last measured create -> ready; 0 none yet */
	uint64_t create_not_before_ms;   /* after a failed create */
	struct backoff create_bo;
};

struct observer {
	sup_observer_fn fn;
	void *arg;
};

struct supervisor {
	struct loop *loop;
	struct hal_engine *engine;
	struct hal_invoke *inv;
	struct sup_config cfg;
	char name_prefix[80];            /* "berth-<device>-" */
	struct deployment deps[SUP_MAX_DEPLOYMENTS];
	uint64_t version;
	bool applied;
	bool started;
	bool engine_up;
	bool engine_known;               /* at least one answer (or failure) seen */
	bool list_fresh;                 /* a list answered since the last engine trouble */
	bool list_inflight;
	bool relist_wanted;
	uint64_t list_sent_us;
	struct prng rng;
	struct backoff engine_bo;
	struct loop_timer resync_timer;
	struct loop_timer kick_timer;
	struct loop_timer engine_timer;
	struct loop_timer housekeep_timer;
	struct observer obs[SUP_MAX_OBSERVERS];
	unsigned nobs;
	sup_inflight_fn inflight_fn;     /* requests a replica still serves (dispatcher) */
	void *inflight_arg;
	struct loop_timer drain_timer;   /* polls retiring replicas */
	char spec_json[EVENTS_DETAIL_MAX - 256]; /* scratch for migration_needed */
};

static void reconcile_all(struct supervisor *s);
static void replica_exited(struct replica *r, int exit_code, bool oom);
static void request_list(struct supervisor *s);
static void replica_remove(struct replica *r);

/* --- small helpers ------------------------------------------------------- */
static uint64_t now_ms(const struct supervisor *s) { return loop_now_ms(s->loop); }

/* Arms a one-shot timer. A full timer table is logged; the periodic list and
 * housekeeping recover what the lost timer would have done. */
static void arm(struct supervisor *s, struct loop_timer *t, uint32_t ms, const char *what)
{
	if (loop_timer_start(s->loop, t, ms, 0) < 0)
		log_err("event=timer_full what=%s", what);
}

static void kick_later(struct supervisor *s, unsigned ms)
{
	if (!loop_timer_armed(&s->kick_timer))
		arm(s, &s->kick_timer, ms, "kick");
}

static void kick(struct supervisor *s) { kick_later(s, 0); }

static uint16_t replica_port(const struct replica *r) { return (uint16_t)(r->dep->spec.port_base + r->slot); }

static void replica_view(const struct replica *r, struct sup_replica *v)
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
	v->paused = r->paused;
	v->current = r->hash == r->dep->spec.spec_hash;
	v->restarts = r->restarts;
	v->ready_since_ms = r->ready ? r->ready_since_ms : 0;
}

static void notify(struct supervisor *s, struct replica *r, enum sup_event ev)
{
	struct sup_replica v;
	replica_view(r, &v);
	for (unsigned i = 0; i < s->nobs; i++)
		s->obs[i].fn(s->obs[i].arg, ev, &v);
}

static bool serving(const struct replica *r)
{
	return r->ready && !r->draining && !r->paused && !r->remove_wanted && r->st == SUP_R_RUNNING;
}

/* Tells observers (and the log) when serving() changed from was. */
static void serving_changed(struct replica *r, bool was)
{
	struct supervisor *s = r->dep->sup;
	bool is = serving(r);
	if (is && !was) {
		log_inf("event=replica_ready deployment=%s replica=%u port=%u generation=%u restarts=%u wall_ms=%" PRId64,
			r->dep->spec.name, r->slot, replica_port(r), r->generation, r->restarts, hal_clock_wall_ms());
		notify(s, r, SUP_EV_READY);
	} else if (!is && was) {
		log_inf("event=replica_unready deployment=%s replica=%u wall_ms=%" PRId64, r->dep->spec.name, r->slot,
			hal_clock_wall_ms());
		notify(s, r, SUP_EV_UNREADY);
	}
}

/* Readiness as seen by dispatch changed? Tell observers. */
static void set_ready(struct replica *r, bool ready)
{
	struct supervisor *s = r->dep->sup;
	bool was = serving(r);
	r->ready = ready;
	if (ready) {
		r->ready_since_ms = now_ms(s);
		backoff_healthy(&r->bo, now_ms(s));
		if (r->created_ms) { /* the autoscaler's start-up time: create -> first ready */
			uint64_t took = r->ready_since_ms - r->created_ms;
			r->dep->startup_ms = took > UINT32_MAX ? UINT32_MAX : (uint32_t)took;
			r->created_ms = 0;
		}
	} else {
		backoff_unhealthy(&r->bo);
	}
	serving_changed(r, was);
}

static void set_error(struct deployment *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct deployment *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->last_error, sizeof(d->last_error), fmt, ap);
	va_end(ap);
}

static void stop_probes(struct replica *r)
{
	health_probe_stop(&r->live);
	health_probe_stop(&r->readiness);
}

/* The per-container flags, for a slot that holds a container new to it. */
static void clear_flags(struct replica *r)
{
	r->draining = r->paused = r->remove_wanted = r->liveness_killed = r->chaos_killed = r->half_open_try = false;
	r->retiring = false;
}

/* Forgets the slot's container (it is gone from the engine). */
static void replica_clear(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	if (r->inflight) {
		r->clear_pending = true;
		return;
	}
	bool had = r->st != SUP_R_EMPTY;
	if (r->ready)
		set_ready(r, false);
	stop_probes(r);
	loop_timer_stop(s->loop, &r->restart_timer);
	loop_timer_stop(s->loop, &r->kill_check);
	if (had) {
		log_inf("event=replica_gone deployment=%s replica=%u id=%.12s", r->dep->spec.name, r->slot, r->id);
		notify(s, r, SUP_EV_GONE);
	}
	r->st = SUP_R_EMPTY;
	r->id[0] = '\0';
	r->pid = 0;
	r->hash = 0;
	clear_flags(r);
	r->clear_pending = false;
	r->op_busy = r->pause_busy = false;
	kick(s);
}

/* Call-in-flight accounting: every engine callback starts with call_done(). Returns false
 * when the replica was cleared meanwhile (the callback must stop). */
static void call_sent(struct replica *r) { r->inflight++; }
static bool call_done(struct replica *r)
{
	if (r->inflight)
		r->inflight--;
	if (r->clear_pending) {
		if (!r->inflight)
			replica_clear(r);
		return false;
	}
	return true;
}

/* The same for the answer to an exclusive lifecycle call (op_busy). */
static bool op_done(struct replica *r)
{
	if (!call_done(r))
		return false;
	r->op_busy = false;
	return true;
}

static bool engine_trouble(int err) { return err == -EHOSTDOWN || err == -ETIMEDOUT || err == -ECONNREFUSED; }

static void engine_failed(struct supervisor *s, int err, const char *what)
{
	s->list_fresh = false;
	s->engine_known = true;
	if (s->engine_up) {
		s->engine_up = false;
		log_wrn("event=engine_unavailable call=%s err=%s", what, strerror(-err));
		events_emit(s->cfg.events, "engine_unavailable", "{\"call\":\"%s\",\"error\":\"%s\"}", what,
			    strerror(-err));
	}
	if (!loop_timer_armed(&s->engine_timer)) {
		uint32_t d = backoff_next_ms(&s->engine_bo);
		arm(s, &s->engine_timer, d, "engine_retry");
	}
}

static void engine_answered(struct supervisor *s)
{
	s->engine_known = true;
	if (!s->engine_up) {
		s->engine_up = true;
		backoff_reset(&s->engine_bo);
		loop_timer_stop(s->loop, &s->engine_timer);
		log_inf("event=engine_available");
		events_emit(s->cfg.events, "engine_available", "{}");
	}
}

/* Result of a call the engine refused for queueing (-EBUSY at send time): try again soon. */
static int sent_or_retry(struct supervisor *s, struct replica *r, int rc, const char *what)
{
	if (rc == 0) {
		call_sent(r);
		return 0;
	}
	if (rc != -EBUSY)
		log_wrn("event=engine_call_refused call=%s deployment=%s replica=%u err=%s", what, r->dep->spec.name,
			r->slot, strerror(-rc));
	kick_later(s, BUSY_RETRY_MS);
	return rc;
}

/* --- probes ---------------------------------------------------------------- */
static void on_liveness(void *arg, struct health_probe *p, bool ok);
static void on_readiness(void *arg, struct health_probe *p, bool ok);

static void start_probes(struct replica *r)
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

static void on_readiness(void *arg, struct health_probe *p, bool ok)
{
	struct replica *r = arg;
	(void)p;
	if (r->st != SUP_R_RUNNING)
		return;
	set_ready(r, ok);
	struct deployment *d = r->dep;
	if (ok && r->half_open_try && d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		/* The trial is ready; it closes the circuit if it stays up a while. */
		uint32_t stable = d->spec.backoff_reset_ms < SUP_CIRCUIT_STABLE_MS ? d->spec.backoff_reset_ms
										  : SUP_CIRCUIT_STABLE_MS;
		arm(d->sup, &d->circuit_timer, stable, "circuit");
	}
	kick(d->sup);
}

static void on_kill_inspect(void *arg, const struct hal_engine_result *res);
static void on_die_inspect(void *arg, const struct hal_engine_result *res);

static void check_killed(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	if (r->st != SUP_R_KILLING)
		return;
	(void)sent_or_retry(s, r, hal_engine_inspect(s->engine, r->id, on_kill_inspect, r), "inspect");
}

static void on_kill_check(void *arg) { check_killed(arg); }

static void on_kill_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!call_done(r))
		return;
	if (r->st != SUP_R_KILLING)
		return;
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	if (res->err) {
		if (engine_trouble(res->err))
			engine_failed(s, res->err, "inspect");
		arm(s, &r->kill_check, KILL_CHECK_MS, "kill_check");
		return;
	}
	const struct hal_ctr_info *c = &res->ctrs[0];
	if (res->nctrs && c->state != HAL_CTR_RUNNING && c->state != HAL_CTR_PAUSED) {
		replica_exited(r, c->exit_code, c->oom_killed);
		return;
	}
	/* Not down yet: the die event will come; look again in case it does not. */
	arm(s, &r->kill_check, KILL_CHECK_MS, "kill_check");
}

static void on_kill(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!op_done(r))
		return;
	if (res->err && engine_trouble(res->err)) {
		engine_failed(s, res->err, "kill");
		arm(s, &r->kill_check, KILL_CHECK_MS, "kill_check");
		return;
	}
	engine_answered(s);
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	/* -EBUSY: it was not running any more, which is what we wanted. */
	check_killed(r);
}

static void kill_replica(struct replica *r, const char *why)
{
	struct supervisor *s = r->dep->sup;
	bool was = serving(r);
	r->st = SUP_R_KILLING;
	stop_probes(r);
	serving_changed(r, was);
	log_inf("event=replica_kill deployment=%s replica=%u reason=%s liveness_failures=%u wall_ms=%" PRId64,
		r->dep->spec.name, r->slot, why, r->live.consecutive_fail, hal_clock_wall_ms());
	if (sent_or_retry(s, r, hal_engine_kill(s->engine, r->id, SIGKILL, on_kill, r), "kill") == 0)
		r->op_busy = true;
	else
		arm(s, &r->kill_check, BUSY_RETRY_MS, "kill_check");
}

static void on_liveness(void *arg, struct health_probe *p, bool ok)
{
	struct replica *r = arg;
	if (ok || r->st != SUP_R_RUNNING)
		return;
	set_error(r->dep, "replica %u failed liveness (%s)", r->slot, p->last_error);
	r->liveness_killed = true;
	kill_replica(r, "liveness");
}

/* --- lifecycle calls ----------------------------------------------------------- */
static void on_pid_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	if (!call_done(r))
		return;
	if (!res->err && res->nctrs && r->st == SUP_R_RUNNING)
		r->pid = res->ctrs[0].pid;
}

static void replica_running(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	r->st = SUP_R_RUNNING;
	r->generation++;
	r->pid = 0;
	log_inf("event=replica_started deployment=%s replica=%u id=%.12s restarts=%u wall_ms=%" PRId64,
		r->dep->spec.name, r->slot, r->id, r->restarts, hal_clock_wall_ms());
	start_probes(r);
	/* The pid is for metrics only; losing this call is harmless. */
	if (hal_engine_inspect(s->engine, r->id, on_pid_inspect, r) == 0)
		call_sent(r);
}

static void on_start(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!op_done(r))
		return;
	if (r->st != SUP_R_STARTING)
		return;
	if (res->err) {
		if (engine_trouble(res->err)) {
			engine_failed(s, res->err, "start");
			/* Unknown outcome: the next list tells. */
			r->st = SUP_R_BACKOFF;
			return;
		}
		engine_answered(s);
		if (res->err == -ENOENT) {
			replica_clear(r);
			return;
		}
		set_error(r->dep, "start of replica %u failed: %s", r->slot, res->message && *res->message ? res->message : strerror(-res->err));
		log_wrn("event=start_failed deployment=%s replica=%u err=%s msg=\"%s\"", r->dep->spec.name, r->slot,
			strerror(-res->err), res->message ? res->message : "");
		replica_exited(r, -1, false);
		return;
	}
	engine_answered(s);
	if (r->remove_wanted) {
		replica_remove(r);
		return;
	}
	replica_running(r);
	if (r->die_pending) {
		/* It may have died right after starting (a crash loop does): look. */
		r->die_pending = false;
		if (hal_engine_inspect(s->engine, r->id, on_die_inspect, r) == 0)
			call_sent(r);
	}
}

static void start_replica(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	r->st = SUP_R_STARTING;
	r->die_pending = false;
	if (sent_or_retry(s, r, hal_engine_start(s->engine, r->id, on_start, r), "start") == 0)
		r->op_busy = true;
	else
		r->st = SUP_R_BACKOFF; /* the kick retries through the restart path */
}

static void on_restart_timer(void *arg)
{
	struct replica *r = arg;
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	if (r->st != SUP_R_BACKOFF)
		return;
	if (r->op_busy) {
		/* e.g. the kill call is still answering after the die was seen: look again shortly */
		arm(s, &r->restart_timer, OP_WAIT_MS, "restart");
		return;
	}
	if (r->remove_wanted || d->removing) {
		replica_remove(r);
		return;
	}
	if (!s->engine_up) {
		/* Restarted once the engine is back (reconcile arms this timer again). */
		return;
	}
	if (d->circuit == SUP_CIRCUIT_OPEN)
		return; /* the circuit timer moves it to half-open */
	if (d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
			if (d->r[i].half_open_try && &d->r[i] != r)
				return; /* one trial at a time */
		r->half_open_try = true;
		log_inf("event=circuit_half_open_try deployment=%s replica=%u", d->spec.name, r->slot);
	}
	log_inf("event=replica_restart deployment=%s replica=%u restarts=%u wall_ms=%" PRId64, d->spec.name, r->slot,
		r->restarts, hal_clock_wall_ms());
	start_replica(r);
}

static void close_circuit(struct deployment *d)
{
	d->circuit = SUP_CIRCUIT_CLOSED;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		d->r[i].half_open_try = false;
	log_inf("event=circuit_closed deployment=%s", d->spec.name);
	events_emit(d->sup->cfg.events, "circuit_closed", "{\"deployment\":\"%s\"}", d->spec.name);
	/* Replicas held by the open circuit restart now. */
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		if (d->r[i].st == SUP_R_BACKOFF)
			arm(d->sup, &d->r[i].restart_timer, 0, "restart");
	kick(d->sup);
}

static void on_circuit_timer(void *arg)
{
	struct deployment *d = arg;
	if (d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
			if (d->r[i].half_open_try && serving(&d->r[i])) {
				close_circuit(d);
				return;
			}
		return;
	}
	if (d->circuit != SUP_CIRCUIT_OPEN)
		return;
	d->circuit = SUP_CIRCUIT_HALF_OPEN;
	log_inf("event=circuit_half_open deployment=%s", d->spec.name);
	events_emit(d->sup->cfg.events, "circuit_half_open", "{\"deployment\":\"%s\"}", d->spec.name);
	/* Try the replica that waits longest. */
	struct replica *best = NULL;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		struct replica *r = &d->r[i];
		if (r->st == SUP_R_BACKOFF && (!best || r->exited_ms < best->exited_ms))
			best = r;
	}
	if (best)
		on_restart_timer(best);
	else
		kick(d->sup); /* nothing to restart: a new replica is the trial */
}

static void open_circuit(struct deployment *d, uint32_t delay_ms)
{
	struct supervisor *s = d->sup;
	bool was_closed = d->circuit == SUP_CIRCUIT_CLOSED;
	d->circuit = SUP_CIRCUIT_OPEN;
	arm(s, &d->circuit_timer, delay_ms, "circuit");
	log_wrn("event=circuit_open deployment=%s retry_in_ms=%u", d->spec.name, delay_ms);
	if (was_closed)
		events_emit(s->cfg.events, "circuit_open", "{\"deployment\":\"%s\",\"retry_in_ms\":%u,\"last_error\":\"%s\"}",
			    d->spec.name, delay_ms, d->last_error);
}

static void raise_migration(struct deployment *d, uint32_t failures)
{
	struct supervisor *s = d->sup;
	if (d->migration_raised || !s->cfg.migrate_after_failures || failures < s->cfg.migrate_after_failures)
		return;
	d->migration_raised = true;
	char *spec_json = s->spec_json;
	if (deploy_spec_to_json(&d->spec, spec_json, sizeof(s->spec_json)) < 0)
		snprintf(spec_json, sizeof(s->spec_json), "{\"name\":\"%s\"}", d->spec.name);
	char err[160];
	events_json_escape(d->last_error, err, sizeof(err));
	log_wrn("event=migration_needed deployment=%s failed_recoveries=%u", d->spec.name, failures);
	events_emit(s->cfg.events, "migration_needed",
		    "{\"deployment\":\"%s\",\"failed_recoveries\":%u,\"last_error\":\"%s\",\"spec\":%s}", d->spec.name,
		    failures, err, spec_json);
}

/* The replica's container exited (crash, liveness kill, or a failed start). */
static void replica_exited(struct replica *r, int exit_code, bool oom)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	bool was = serving(r);
	bool liveness = r->liveness_killed;
	bool chaos = r->chaos_killed;
	r->liveness_killed = r->chaos_killed = false;
	r->st = SUP_R_BACKOFF;
	r->pid = 0;
	r->exited_ms = now_ms(s);
	loop_timer_stop(s->loop, &r->kill_check);
	stop_probes(r);
	r->ready = false;
	serving_changed(r, was);
	if (!liveness && !chaos && exit_code != -1)
		set_error(d, "replica %u exited with code %d%s", r->slot, exit_code, oom ? " (out of memory)" : "");
	log_inf("event=replica_exited deployment=%s replica=%u exit_code=%d oom=%d liveness=%d wall_ms=%" PRId64,
		d->spec.name, r->slot, exit_code, oom, liveness, hal_clock_wall_ms());
	if (r->remove_wanted || r->retiring || d->removing) {
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
	raise_migration(d, r->bo.failures - 1);
	if (r->half_open_try || d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		r->half_open_try = false;
		open_circuit(d, delay);
	} else if (r->bo.at_cap && d->circuit == SUP_CIRCUIT_CLOSED) {
		open_circuit(d, delay);
	}
	log_inf("event=replica_backoff deployment=%s replica=%u failures=%u delay_ms=%u circuit=%s", d->spec.name,
		r->slot, r->bo.failures, delay, supervisor_circuit_name(d->circuit));
	if (d->circuit == SUP_CIRCUIT_CLOSED)
		arm(s, &r->restart_timer, delay, "restart");
}

static void on_remove(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!op_done(r))
		return;
	if (res->err && res->err != -ENOENT) {
		if (engine_trouble(res->err))
			engine_failed(s, res->err, "remove");
		else
			log_wrn("event=remove_failed deployment=%s replica=%u err=%s msg=\"%s\"", r->dep->spec.name,
				r->slot, strerror(-res->err), res->message ? res->message : "");
		kick_later(s, BUSY_RETRY_MS * 10);
		return;
	}
	engine_answered(s);
	log_inf("event=replica_removed deployment=%s replica=%u", r->dep->spec.name, r->slot);
	replica_clear(r);
}

static void on_stop(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!op_done(r))
		return;
	if (res->err == -ENOENT) {
		replica_clear(r);
		return;
	}
	if (res->err && engine_trouble(res->err)) {
		engine_failed(s, res->err, "stop");
		kick_later(s, BUSY_RETRY_MS * 10);
		return;
	}
	/* Stopped (or refused to stop gracefully): remove with force either way. */
	if (sent_or_retry(s, r, hal_engine_remove(s->engine, r->id, true, on_remove, r), "remove") == 0)
		r->op_busy = true;
}

/* Stops (gracefully when running) and removes the replica's container. */
static void replica_remove(struct replica *r)
{
	struct supervisor *s = r->dep->sup;
	bool was = serving(r);
	bool running = r->st == SUP_R_RUNNING;
	r->remove_wanted = true;
	if (r->op_busy)
		return; /* finished by the call in flight, which sees remove_wanted */
	serving_changed(r, was);
	stop_probes(r);
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
	if (sent_or_retry(s, r, rc, running ? "stop" : "remove") == 0)
		r->op_busy = true;
}

static void on_create_inspect(void *arg, const struct hal_engine_result *res);

static const char *label_of(const struct hal_ctr_info *c, const char *key)
{
	for (unsigned i = 0; i < c->nlabels && i < HAL_ENGINE_MAX_LABELS; i++)
		if (!strcmp(c->labels[i].key, key))
			return c->labels[i].value;
	return NULL;
}

static void on_create(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	if (!op_done(r))
		return;
	if (res->err == -EEXIST) {
		/* A container of that name exists (made before a restart, or before the engine
		 * lost our answer): find out what it is instead of making a duplicate. */
		char name[160];
		snprintf(name, sizeof(name), "%s%s-%u", s->name_prefix, d->spec.name, r->slot);
		log_inf("event=create_conflict name=%s", name);
		if (sent_or_retry(s, r, hal_engine_inspect(s->engine, name, on_create_inspect, r), "inspect") == 0)
			r->op_busy = true;
		else
			replica_clear(r);
		return;
	}
	if (res->err) {
		if (engine_trouble(res->err)) {
			engine_failed(s, res->err, "create");
		} else {
			engine_answered(s);
			uint32_t delay = backoff_next_ms(&d->create_bo);
			d->create_not_before_ms = now_ms(s) + delay;
			set_error(d, "create failed: %s", res->message && *res->message ? res->message : strerror(-res->err));
			log_wrn("event=create_failed deployment=%s replica=%u err=%s msg=\"%s\" retry_in_ms=%u",
				d->spec.name, r->slot, strerror(-res->err), res->message ? res->message : "", delay);
			kick_later(s, delay);
		}
		replica_clear(r);
		return;
	}
	engine_answered(s);
	backoff_reset(&d->create_bo);
	snprintf(r->id, sizeof(r->id), "%s", res->id ? res->id : "");
	r->known_since_us = loop_now_us(s->loop);
	if (r->remove_wanted || d->removing) {
		r->st = SUP_R_BACKOFF;
		replica_remove(r);
		return;
	}
	start_replica(r);
}

static void on_create_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!op_done(r))
		return;
	if (res->err || !res->nctrs) {
		if (engine_trouble(res->err))
			engine_failed(s, res->err, "inspect");
		replica_clear(r);
		return;
	}
	/* Adopt what is there; a stale spec is rolled like any old replica. */
	const struct hal_ctr_info *c = &res->ctrs[0];
	snprintf(r->id, sizeof(r->id), "%s", c->id);
	r->known_since_us = loop_now_us(s->loop);
	const char *hash = label_of(c, LABEL_HASH);
	r->hash = hash ? strtoull(hash, NULL, 16) : 0;
	if (c->state == HAL_CTR_RUNNING || c->state == HAL_CTR_PAUSED) {
		replica_running(r);
	} else {
		r->st = SUP_R_BACKOFF;
		start_replica(r);
	}
}

static void create_replica(struct deployment *d, struct replica *r)
{
	struct supervisor *s = d->sup;
	const struct deploy_spec *sp = &d->spec;
	char name[160], port[32], idx[32], model[80], hash[24], slot[8];
	const char *env[DEPLOY_MAX_ENV + 4];
	const char *cmd[DEPLOY_MAX_ARGS + 1];
	unsigned ne = 0, nc = 0;

	snprintf(name, sizeof(name), "%s%s-%u", s->name_prefix, sp->name, r->slot);
	snprintf(port, sizeof(port), "BERTH_PORT=%u", replica_port(r));
	snprintf(idx, sizeof(idx), "BERTH_REPLICA=%u", r->slot);
	snprintf(model, sizeof(model), "BERTH_MODEL=%s", sp->name);
	snprintf(hash, sizeof(hash), "%016" PRIx64, sp->spec_hash);
	snprintf(slot, sizeof(slot), "%u", r->slot);
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
	memset(labels, 0, sizeof(labels));
	snprintf(labels[0].key, sizeof(labels[0].key), LABEL_OWNER);
	snprintf(labels[0].value, sizeof(labels[0].value), "%s", s->cfg.device_id);
	snprintf(labels[1].key, sizeof(labels[1].key), LABEL_DEPLOYMENT);
	snprintf(labels[1].value, sizeof(labels[1].value), "%s", sp->name);
	snprintf(labels[2].key, sizeof(labels[2].key), LABEL_REPLICA);
	snprintf(labels[2].value, sizeof(labels[2].value), "%s", slot);
	snprintf(labels[3].key, sizeof(labels[3].key), LABEL_HASH);
	snprintf(labels[3].value, sizeof(labels[3].value), "%s", hash);
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
	r->draining = r->paused = r->remove_wanted = r->liveness_killed = r->chaos_killed = r->retiring = false;
	r->restarts = 0;
	r->created_ms = now_ms(s);
	backoff_init(&r->bo, sp->backoff_initial_ms, sp->backoff_max_ms, sp->backoff_reset_ms, JITTER_PERMILLE, true,
		     &s->rng);
	log_inf("event=replica_create deployment=%s replica=%u name=%s port=%u", sp->name, r->slot, name,
		replica_port(r));
	if (sent_or_retry(s, r, hal_engine_create_ctr(s->engine, &spec, on_create, r), "create") == 0)
		r->op_busy = true;
	else
		r->st = SUP_R_EMPTY;
}

/* --- listing and merging ----------------------------------------------------------- */
static struct deployment *find_dep(struct supervisor *s, const char *name)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++)
		if (s->deps[i].used && !strcmp(s->deps[i].spec.name, name))
			return &s->deps[i];
	return NULL;
}

static struct deployment *alloc_dep(struct supervisor *s)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		if (!d->used) {
			d->used = true;
			d->removing = false;
			d->circuit = SUP_CIRCUIT_CLOSED;
			d->restarts = 0;
			d->migration_raised = false;
			d->last_error[0] = '\0';
			d->create_not_before_ms = 0;
			memset(&d->spec, 0, sizeof(d->spec));
			backoff_init(&d->create_bo, 1000, 60000, 0, JITTER_PERMILLE, false, &s->rng);
			for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
				struct replica *r = &d->r[j];
				r->st = SUP_R_EMPTY;
				r->id[0] = '\0';
				r->inflight = 0;
				r->op_busy = r->pause_busy = r->clear_pending = false;
				r->ready = r->draining = r->paused = r->remove_wanted = r->retiring = false;
				r->generation = 0;
				r->restarts = 0;
				backoff_init(&r->bo, 1000, 300000, 600000, JITTER_PERMILLE, true, &s->rng);
			}
			return d;
		}
	}
	return NULL;
}

static void adopt(struct replica *r, const struct hal_ctr_info *c, uint64_t hash)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	snprintf(r->id, sizeof(r->id), "%s", c->id);
	r->hash = hash;
	r->known_since_us = loop_now_us(s->loop);
	clear_flags(r);
	backoff_init(&r->bo, d->spec.backoff_initial_ms ? d->spec.backoff_initial_ms : 1000,
		     d->spec.backoff_max_ms ? d->spec.backoff_max_ms : 300000,
		     d->spec.backoff_reset_ms ? d->spec.backoff_reset_ms : 600000, JITTER_PERMILLE, true, &s->rng);
	log_inf("event=replica_adopted deployment=%s replica=%u id=%.12s state=%d current=%d", d->spec.name, r->slot,
		r->id, (int)c->state, hash == d->spec.spec_hash);
	if (d->removing) {
		r->st = c->state == HAL_CTR_RUNNING ? SUP_R_RUNNING : SUP_R_BACKOFF;
		replica_remove(r);
		return;
	}
	if (c->state == HAL_CTR_RUNNING) {
		replica_running(r);
		r->pid = c->pid;
	} else if (c->state == HAL_CTR_PAUSED) {
		/* Left paused by an earlier run: nobody will unpause it, so do it now. */
		replica_running(r);
		r->paused = true;
		stop_probes(r);
		if (supervisor_replica_pause(s, d->spec.name, r->slot, false) < 0)
			log_wrn("event=unpause_not_sent deployment=%s replica=%u", d->spec.name, r->slot);
	} else {
		r->st = SUP_R_RUNNING;
		replica_exited(r, c->exit_code, c->oom_killed);
	}
}

static void merge_list(struct supervisor *s, const struct hal_engine_result *res)
{
	bool seen[SUP_MAX_DEPLOYMENTS][DEPLOY_MAX_REPLICAS];
	memset(seen, 0, sizeof(seen));
	for (unsigned i = 0; i < res->nctrs; i++) {
		const struct hal_ctr_info *c = &res->ctrs[i];
		const char *owner = label_of(c, LABEL_OWNER);
		const char *dname = label_of(c, LABEL_DEPLOYMENT);
		const char *slot_s = label_of(c, LABEL_REPLICA);
		const char *hash_s = label_of(c, LABEL_HASH);
		if (!owner || strcmp(owner, s->cfg.device_id))
			continue; /* never ours to touch */
		if (!dname || !slot_s) {
			log_wrn("event=unlabelled_owned_container id=%.12s name=%s", c->id, c->name);
			continue;
		}
		char *end;
		unsigned long slot = strtoul(slot_s, &end, 10);
		if (*end || slot >= DEPLOY_MAX_REPLICAS) {
			log_wrn("event=bad_replica_label id=%.12s value=%s", c->id, slot_s);
			continue;
		}
		uint64_t hash = hash_s ? strtoull(hash_s, NULL, 16) : 0;
		struct deployment *d = find_dep(s, dname);
		if (!d) {
			/* Ours, from a deployment no longer wanted: track it to remove it. */
			d = alloc_dep(s);
			if (!d) {
				log_wrn("event=deployment_table_full orphan=%s", dname);
				continue;
			}
			snprintf(d->spec.name, sizeof(d->spec.name), "%s", dname);
			d->removing = true;
			log_inf("event=orphan_deployment deployment=%s", dname);
		}
		struct replica *r = &d->r[slot];
		seen[d - s->deps][slot] = true;
		if (r->st == SUP_R_EMPTY) {
			adopt(r, c, hash);
			continue;
		}
		if (strcmp(r->id, c->id) != 0) {
			if (!r->id[0])
				continue; /* our create is in flight; its answer names it */
			log_wrn("event=slot_conflict deployment=%s replica=%u tracked=%.12s found=%.12s", dname,
				(unsigned)slot, r->id, c->id);
			continue;
		}
		/* Known container: catch up on anything the event stream missed. */
		bool down = c->state != HAL_CTR_RUNNING && c->state != HAL_CTR_PAUSED;
		if (down && (r->st == SUP_R_RUNNING || r->st == SUP_R_KILLING) && !r->op_busy)
			replica_exited(r, c->exit_code, c->oom_killed);
	}
	/* Tracked containers the engine no longer has were removed behind our back. */
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		if (!d->used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			if (r->st == SUP_R_EMPTY || seen[i][j] || !r->id[0] || r->op_busy)
				continue;
			if (r->known_since_us >= s->list_sent_us)
				continue; /* became known after the snapshot was taken */
			log_inf("event=replica_vanished deployment=%s replica=%u id=%.12s", d->spec.name, j, r->id);
			replica_clear(r);
		}
	}
}

static void on_list(void *arg, const struct hal_engine_result *res)
{
	struct supervisor *s = arg;
	s->list_inflight = false;
	if (res->err && res->err != -EOVERFLOW) {
		if (engine_trouble(res->err)) {
			engine_failed(s, res->err, "list");
		} else {
			log_wrn("event=list_failed err=%s msg=\"%s\"", strerror(-res->err), res->message ? res->message : "");
			s->list_fresh = false;
			kick_later(s, 1000);
		}
		return;
	}
	engine_answered(s);
	merge_list(s, res);
	/* -EOVERFLOW: containers beyond the list cap are unknown, so creating is not safe. */
	s->list_fresh = res->err == 0;
	if (s->relist_wanted) {
		s->relist_wanted = false;
		request_list(s);
		return;
	}
	reconcile_all(s);
}

static void request_list(struct supervisor *s)
{
	if (s->list_inflight) {
		s->relist_wanted = true;
		return;
	}
	s->list_sent_us = loop_now_us(s->loop);
	int rc = hal_engine_list(s->engine, LABEL_OWNER, s->cfg.device_id, on_list, s);
	if (rc == 0) {
		s->list_inflight = true;
		return;
	}
	log_dbg("event=list_not_sent err=%s", strerror(-rc));
	kick_later(s, BUSY_RETRY_MS);
	s->relist_wanted = true;
}

/* --- decisions ----------------------------------------------------------- */
static bool removable_now(const struct replica *r)
{
	return r->st != SUP_R_EMPTY && !r->remove_wanted && !r->retiring && r->st != SUP_R_REMOVING;
}

/* --- retiring without losing requests ---------------------------------------
 * A replica that goes away by decision (scale-down, roll, removal) first
 * drains: it leaves the ready list (observers mark it draining, so the
 * dispatcher sends it nothing new), and is stopped once the requests it runs
 * are answered (inflight_fn says 0) or after the drain bound. */
static uint32_t drain_bound_ms(const struct deployment *d)
{
	uint64_t ms = 2u * (uint64_t)d->spec.deadline_ms;
	if (ms < SUP_DRAIN_MIN_MS)
		ms = SUP_DRAIN_MIN_MS;
	return ms > SUP_DRAIN_MAX_MS ? SUP_DRAIN_MAX_MS : (uint32_t)ms;
}

static void drain_check(struct supervisor *s)
{
	bool waiting = false;
	uint64_t t = now_ms(s);
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		if (!d->used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			if (!r->retiring || r->remove_wanted)
				continue;
			if (r->st != SUP_R_RUNNING || r->op_busy) {
				/* Exited meanwhile (removed by the exit path) or a call in flight: look again. */
				if (r->st == SUP_R_BACKOFF || r->st == SUP_R_EXITED) {
					replica_remove(r);
					continue;
				}
				waiting = true;
				continue;
			}
			unsigned n = s->inflight_fn ? s->inflight_fn(s->inflight_arg, d->spec.name, r->slot) : 0;
			if (n && t < r->retire_until_ms) {
				waiting = true;
				continue;
			}
			if (n)
				log_wrn("event=drain_timeout deployment=%s replica=%u inflight=%u waited_ms=%" PRIu64,
					d->spec.name, r->slot, n, t - r->retire_start_ms);
			else
				log_inf("event=drain_done deployment=%s replica=%u waited_ms=%" PRIu64, d->spec.name, r->slot,
					t - r->retire_start_ms);
			replica_remove(r);
		}
	}
	if (waiting && !loop_timer_armed(&s->drain_timer))
		arm(s, &s->drain_timer, SUP_DRAIN_POLL_MS, "drain");
}

static void on_drain_timer(void *arg) { drain_check(arg); }

static void replica_retire(struct replica *r, const char *why)
{
	struct supervisor *s = r->dep->sup;
	if (r->retiring || r->remove_wanted)
		return;
	if (!s->inflight_fn || r->st != SUP_R_RUNNING || r->op_busy) {
		replica_remove(r);
		return;
	}
	bool was = serving(r);
	r->retiring = true;
	r->draining = true;
	r->retire_start_ms = now_ms(s);
	r->retire_until_ms = r->retire_start_ms + drain_bound_ms(r->dep);
	log_inf("event=replica_drain deployment=%s replica=%u reason=%s bound_ms=%u", r->dep->spec.name, r->slot, why,
		drain_bound_ms(r->dep));
	if (was)
		serving_changed(r, was);
	else
		notify(s, r, SUP_EV_UNREADY); /* observers learn it is draining */
	drain_check(s);
}

/* Scaled back up while a replica of the current spec still drains: keep it. */
static bool unretire_one(struct deployment *d)
{
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		struct replica *r = &d->r[i];
		if (!r->retiring || r->remove_wanted || r->st != SUP_R_RUNNING || r->hash != d->spec.spec_hash)
			continue;
		bool was = serving(r);
		r->retiring = false;
		r->draining = false;
		log_inf("event=replica_drain_cancelled deployment=%s replica=%u", d->spec.name, r->slot);
		if (serving(r) != was)
			serving_changed(r, was);
		else
			notify(d->sup, r, r->ready ? SUP_EV_READY : SUP_EV_UNREADY);
		return true;
	}
	return false;
}

static void reconcile_dep(struct supervisor *s, struct deployment *d)
{
	if (d->removing) {
		bool any = false;
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
			struct replica *r = &d->r[i];
			if (r->st == SUP_R_EMPTY)
				continue;
			any = true;
			if (!r->op_busy && !r->retiring && r->st != SUP_R_REMOVING && r->st != SUP_R_CREATING)
				replica_retire(r, "removed");
		}
		if (!any) {
			log_inf("event=deployment_removed deployment=%s", d->spec.name);
			loop_timer_stop(s->loop, &d->circuit_timer);
			d->used = false;
		}
		return;
	}
	const struct deploy_spec *sp = &d->spec;
	unsigned cur = 0, old = 0, ready = 0;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		struct replica *r = &d->r[i];
		if (!removable_now(r))
			continue;
		if (r->hash == sp->spec_hash)
			cur++;
		else
			old++;
		if (serving(r))
			ready++;
	}
	/* Old replicas: the not-ready ones go at once (they serve nothing, once their
	 * readiness probe had its say); a ready one goes only when one more than
	 * desired is ready, so the ready count never drops during a roll. */
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS && old; i++) {
		struct replica *r = &d->r[i];
		if (!removable_now(r) || r->hash == sp->spec_hash || r->op_busy)
			continue;
		bool judged = r->st != SUP_R_RUNNING || r->readiness.probes > 0 || sp->readiness.kind == PROBE_NONE;
		if (!serving(r) && judged && r->st != SUP_R_CREATING && r->st != SUP_R_STARTING) {
			log_inf("event=roll_remove_unready deployment=%s replica=%u", sp->name, i);
			replica_retire(r, "roll");
			old--;
		} else if (serving(r) && ready >= sp->replicas + 1) {
			log_inf("event=roll_remove deployment=%s replica=%u ready=%u desired=%u", sp->name, i, ready,
				sp->replicas);
			replica_retire(r, "roll");
			old--;
			ready--;
		}
	}
	/* Too many current replicas (scale-down): draining first, then not ready, then the highest slot. */
	while (cur > sp->replicas) {
		struct replica *victim = NULL;
		int best = -1;
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
			struct replica *r = &d->r[i];
			if (!removable_now(r) || r->hash != sp->spec_hash)
				continue;
			int score = (r->draining ? 4 : 0) + (serving(r) ? 0 : 2);
			if (score >= best) {
				best = score;
				victim = r;
			}
		}
		if (!victim)
			break;
		log_inf("event=scale_down deployment=%s replica=%u", sp->name, victim->slot);
		replica_retire(victim, "scale_down");
		cur--;
	}
	while (cur < sp->replicas && unretire_one(d))
		cur++;
	/* Missing replicas: all at once, or one surge replica at a time while old ones remain. */
	if (!s->list_fresh || !s->engine_up || now_ms(s) < d->create_not_before_ms)
		return;
	if (d->circuit == SUP_CIRCUIT_OPEN)
		return;
	unsigned limit = old ? sp->replicas + 1 : sp->replicas;
	unsigned total = cur + old;
	unsigned slots = sp->replicas_max + 1 <= DEPLOY_MAX_REPLICAS ? sp->replicas_max + 1 : DEPLOY_MAX_REPLICAS;
	if (sp->replicas + 1 > slots)
		slots = sp->replicas + 1 <= DEPLOY_MAX_REPLICAS ? sp->replicas + 1 : DEPLOY_MAX_REPLICAS;
	if (d->circuit == SUP_CIRCUIT_HALF_OPEN && cur < sp->replicas)
		limit = total + 1; /* one trial */
	for (unsigned i = 0; i < slots && cur < sp->replicas && total < limit; i++) {
		struct replica *r = &d->r[i];
		if (r->st != SUP_R_EMPTY || r->inflight)
			continue;
		create_replica(d, r);
		if (r->st != SUP_R_CREATING)
			break; /* not sent; retried by the kick */
		if (d->circuit == SUP_CIRCUIT_HALF_OPEN)
			r->half_open_try = true;
		cur++;
		total++;
	}
}

static void reconcile_all(struct supervisor *s)
{
	if (!s->applied || !s->engine_up)
		return;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		if (!d->used)
			continue;
		/* Replicas left in back-off while the engine was away restart now. */
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			if (r->st == SUP_R_BACKOFF && !r->op_busy && !loop_timer_armed(&r->restart_timer) &&
			    d->circuit == SUP_CIRCUIT_CLOSED)
				arm(s, &r->restart_timer, 0, "restart");
		}
		reconcile_dep(s, d);
	}
}

/* --- timers and events ---------------------------------------------------- */
static void on_kick(void *arg)
{
	struct supervisor *s = arg;
	if (s->relist_wanted && s->engine_up) {
		s->relist_wanted = false;
		request_list(s);
		return;
	}
	if (!s->list_fresh && s->engine_up) {
		request_list(s);
		return;
	}
	reconcile_all(s);
}

static void on_resync(void *arg) { request_list(arg); }
static void on_engine_retry(void *arg) { request_list(arg); }

static void on_housekeep(void *arg)
{
	struct supervisor *s = arg;
	uint64_t t = now_ms(s);
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		if (!d->used)
			continue;
		bool all_clear = true;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			if (backoff_tick(&r->bo, t))
				log_inf("event=backoff_reset deployment=%s replica=%u", d->spec.name, j);
			if (r->bo.failures)
				all_clear = false;
		}
		if (all_clear && d->migration_raised) {
			d->migration_raised = false;
			log_inf("event=migration_cleared deployment=%s", d->spec.name);
		}
	}
}

static struct replica *find_by_id(struct supervisor *s, const char *id)
{
	if (!id || !*id)
		return NULL;
	size_t n = strlen(id);
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		if (!s->deps[i].used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &s->deps[i].r[j];
			/* Events may carry the full id while we hold it too; compare the common prefix. */
			if (r->id[0] && !strncmp(r->id, id, n < strlen(r->id) ? n : strlen(r->id)))
				return r;
		}
	}
	return NULL;
}

static void on_die_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	if (!call_done(r))
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

static void on_engine_event(void *arg, const struct hal_engine_event *ev)
{
	struct supervisor *s = arg;
	if (ev->type == HAL_EV_STREAM_UP) {
		request_list(s);
		return;
	}
	if (ev->type == HAL_EV_STREAM_LOST) {
		/* Ask the engine now: if it is down, that is reported at once. */
		log_wrn("event=engine_events_lost");
		request_list(s);
		return;
	}
	struct replica *r = find_by_id(s, ev->id);
	if (!r)
		return;
	switch (ev->type) {
	case HAL_EV_DIE:
		if (r->st == SUP_R_STARTING)
			r->die_pending = true;
		if (r->st != SUP_R_RUNNING && r->st != SUP_R_KILLING)
			break;
		/* Confirm with inspect: it also gives the OOM flag, and filters stale events. */
		if (hal_engine_inspect(s->engine, r->id, on_die_inspect, r) == 0)
			call_sent(r);
		else
			replica_exited(r, ev->exit_code, false);
		break;
	case HAL_EV_OOM:
		set_error(r->dep, "replica %u was killed for lack of memory", r->slot);
		break;
	case HAL_EV_DESTROY:
		if (r->st != SUP_R_REMOVING && !r->op_busy) {
			log_inf("event=replica_destroyed_outside deployment=%s replica=%u", r->dep->spec.name, r->slot);
			replica_clear(r);
		}
		break;
	default:
		break;
	}
}

/* --- public API ------------------------------------------------------------- */
static void name_prefix(struct supervisor *s)
{
	/* Container names allow [a-zA-Z0-9_.-]; anything else in the device id becomes '_'. */
	char dev[48];
	size_t i = 0;
	for (const char *p = s->cfg.device_id; *p && i < sizeof(dev) - 1; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
			  c == '.' || c == '-';
		dev[i++] = ok ? c : '_';
	}
	dev[i] = '\0';
	snprintf(s->name_prefix, sizeof(s->name_prefix), "berth-%s-", dev);
}

struct supervisor *supervisor_create(struct loop *l, struct hal_engine *engine, struct hal_invoke *inv,
				     const struct sup_config *cfg)
{
	struct supervisor *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = l;
	s->engine = engine;
	s->inv = inv;
	s->cfg = *cfg;
	if (!s->cfg.resync_ms)
		s->cfg.resync_ms = SUP_DEFAULT_RESYNC_MS;
	if (!s->cfg.stop_timeout_s)
		s->cfg.stop_timeout_s = SUP_DEFAULT_STOP_TIMEOUT_S;
	name_prefix(s);
	prng_seed(&s->rng, cfg->seed ? cfg->seed : (uint64_t)hal_clock_wall_ms() ^ hal_clock_now_us());
	backoff_init(&s->engine_bo, SUP_ENGINE_RETRY_MIN_MS, SUP_ENGINE_RETRY_MAX_MS, 0, JITTER_PERMILLE, false,
		     &s->rng);
	s->engine_up = true; /* until it fails */
	loop_timer_init(&s->resync_timer, on_resync, s);
	loop_timer_init(&s->kick_timer, on_kick, s);
	loop_timer_init(&s->engine_timer, on_engine_retry, s);
	loop_timer_init(&s->housekeep_timer, on_housekeep, s);
	loop_timer_init(&s->drain_timer, on_drain_timer, s);
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		d->sup = s;
		loop_timer_init(&d->circuit_timer, on_circuit_timer, d);
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			r->dep = d;
			r->slot = j;
			health_probe_init(&r->live, l, HEALTH_LIVENESS, on_liveness, r);
			health_probe_init(&r->readiness, l, HEALTH_READINESS, on_readiness, r);
			loop_timer_init(&r->restart_timer, on_restart_timer, r);
			loop_timer_init(&r->kill_check, on_kill_check, r);
		}
	}
	return s;
}

void supervisor_destroy(struct supervisor *s)
{
	if (!s)
		return;
	if (s->started)
		(void)hal_engine_watch(s->engine, NULL, NULL);
	loop_timer_stop(s->loop, &s->resync_timer);
	loop_timer_stop(s->loop, &s->kick_timer);
	loop_timer_stop(s->loop, &s->engine_timer);
	loop_timer_stop(s->loop, &s->housekeep_timer);
	loop_timer_stop(s->loop, &s->drain_timer);
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		loop_timer_stop(s->loop, &d->circuit_timer);
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			stop_probes(r);
			loop_timer_stop(s->loop, &r->restart_timer);
			loop_timer_stop(s->loop, &r->kill_check);
		}
	}
	free(s);
}

int supervisor_start(struct supervisor *s)
{
	int rc = hal_engine_watch(s->engine, on_engine_event, s);
	if (rc < 0) {
		log_err("event=engine_watch_failed err=%s", strerror(-rc));
		return rc;
	}
	s->started = true;
	if ((rc = loop_timer_start(s->loop, &s->resync_timer, s->cfg.resync_ms, s->cfg.resync_ms)) < 0 ||
	    (rc = loop_timer_start(s->loop, &s->housekeep_timer, HOUSEKEEP_MS, HOUSEKEEP_MS)) < 0)
		return rc;
	request_list(s);
	return 0;
}

/* Everything but replicas min/max/desired equal (spec_hash covers the
 * container-shaping fields). */
static bool same_but_replicas(const struct deploy_spec *a, const struct deploy_spec *b)
{
	return a->spec_hash == b->spec_hash && a->sla_class == b->sla_class && a->deadline_ms == b->deadline_ms &&
	       !memcmp(&a->liveness, &b->liveness, sizeof(a->liveness)) &&
	       !memcmp(&a->readiness, &b->readiness, sizeof(a->readiness)) && a->restart == b->restart &&
	       a->backoff_initial_ms == b->backoff_initial_ms && a->backoff_max_ms == b->backoff_max_ms &&
	       a->backoff_reset_ms == b->backoff_reset_ms && a->startup_ms == b->startup_ms;
}

static uint32_t clamp_replicas(uint32_t n, const struct deploy_spec *sp)
{
	if (n < sp->replicas_min)
		return sp->replicas_min;
	if (n > sp->replicas_max)
		return sp->replicas_max;
	return n;
}

int supervisor_apply(struct supervisor *s, const struct deploy_set *set)
{
	if (s->applied && set->version < s->version) {
		log_wrn("event=apply_refused reason=stale version=%" PRIu64 " applied=%" PRIu64, set->version, s->version);
		return -ESTALE;
	}
	/* Gone from the set: remove. */
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = &s->deps[i];
		if (d->used && !d->removing && !deploy_find(set, d->spec.name)) {
			log_inf("event=deployment_removing deployment=%s", d->spec.name);
			d->removing = true;
		}
	}
	for (unsigned i = 0; i < set->n; i++) {
		const struct deploy_spec *sp = &set->d[i];
		struct deployment *d = find_dep(s, sp->name);
		if (!d) {
			d = alloc_dep(s);
			if (!d) {
				log_err("event=deployment_table_full deployment=%s", sp->name);
				continue;
			}
			log_inf("event=deployment_added deployment=%s replicas=%u hash=%016" PRIx64, sp->name, sp->replicas,
				sp->spec_hash);
		} else if (d->spec.spec_hash != sp->spec_hash) {
			log_inf("event=deployment_changed deployment=%s old_hash=%016" PRIx64 " new_hash=%016" PRIx64,
				sp->name, d->spec.spec_hash, sp->spec_hash);
		}
		bool probes_changed = memcmp(&d->spec.liveness, &sp->liveness, sizeof(sp->liveness)) ||
				      memcmp(&d->spec.readiness, &sp->readiness, sizeof(sp->readiness));
		/* A deployment whose spec is unchanged apart from its replica counts
		 * keeps its current count (the autoscaler's or a scale command's),
		 * clamped into the new min..max; a new or changed one takes desired. */
		bool keep = d->used && !d->removing && same_but_replicas(&d->spec, sp);
		uint32_t n = keep ? clamp_replicas(d->spec.replicas, sp) : sp->replicas;
		if (keep && n != sp->replicas)
			log_inf("event=replicas_kept deployment=%s replicas=%u desired=%u min=%u max=%u", sp->name, n,
				sp->replicas, sp->replicas_min, sp->replicas_max);
		d->removing = false;
		d->spec = *sp;
		d->spec.replicas = n;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			/* Back-off settings apply from the next failure on. */
			r->bo.initial_ms = sp->backoff_initial_ms;
			r->bo.max_ms = sp->backoff_max_ms;
			r->bo.reset_ms = sp->backoff_reset_ms;
			if (probes_changed && r->st == SUP_R_RUNNING && !r->paused) {
				bool was = r->ready;
				start_probes(r);
				r->readiness.ok = was; /* keep serving while the new probe settles */
				r->readiness.consecutive_ok = 0;
			}
		}
	}
	s->version = set->version;
	s->applied = true;
	log_inf("event=applied version=%" PRIu64 " deployments=%u", set->version, set->n);
	kick(s);
	return 0;
}

int supervisor_set_replicas(struct supervisor *s, const char *deployment, uint32_t n)
{
	struct deployment *d = find_dep(s, deployment);
	if (!d || d->removing)
		return -ENOENT;
	if (n < d->spec.replicas_min || n > d->spec.replicas_max)
		return -ERANGE;
	if (d->spec.replicas != n)
		log_inf("event=replicas_set deployment=%s from=%u to=%u", deployment, d->spec.replicas, n);
	d->spec.replicas = n;
	kick(s);
	return 0;
}

static struct replica *find_replica(struct supervisor *s, const char *deployment, unsigned slot)
{
	struct deployment *d = find_dep(s, deployment);
	if (!d || slot >= DEPLOY_MAX_REPLICAS || d->r[slot].st == SUP_R_EMPTY)
		return NULL;
	return &d->r[slot];
}

int supervisor_replica_drain(struct supervisor *s, const char *deployment, unsigned slot)
{
	struct replica *r = find_replica(s, deployment, slot);
	if (!r)
		return -ENOENT;
	bool was = serving(r);
	r->draining = true;
	serving_changed(r, was);
	kick(s);
	return 0;
}

/* Out of a pause (or a pause that failed): probes run again and it may serve. */
static void replica_resumed(struct replica *r)
{
	bool was = serving(r);
	r->paused = false;
	if (health_probe_resume(&r->live) < 0 || health_probe_resume(&r->readiness) < 0)
		log_err("event=timer_full what=probe");
	serving_changed(r, was);
}

static void on_pause(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!call_done(r))
		return;
	r->pause_busy = false;
	if (res->err) {
		if (engine_trouble(res->err))
			engine_failed(s, res->err, "pause");
		log_wrn("event=pause_failed deployment=%s replica=%u err=%s", r->dep->spec.name, r->slot,
			strerror(-res->err));
		/* Probes were held for the pause; resume them. */
		if (r->st == SUP_R_RUNNING && r->paused)
			replica_resumed(r);
		return;
	}
	log_inf("event=replica_paused deployment=%s replica=%u", r->dep->spec.name, r->slot);
}

static void on_unpause(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!call_done(r))
		return;
	r->pause_busy = false;
	if (res->err && res->err != -EBUSY) {
		if (engine_trouble(res->err))
			engine_failed(s, res->err, "unpause");
		log_wrn("event=unpause_failed deployment=%s replica=%u err=%s", r->dep->spec.name, r->slot,
			strerror(-res->err));
		return;
	}
	if (r->st != SUP_R_RUNNING || !r->paused)
		return;
	log_inf("event=replica_unpaused deployment=%s replica=%u", r->dep->spec.name, r->slot);
	replica_resumed(r);
}

int supervisor_replica_pause(struct supervisor *s, const char *deployment, unsigned slot, bool pause)
{
	struct replica *r = find_replica(s, deployment, slot);
	if (!r)
		return -ENOENT;
	if (r->st != SUP_R_RUNNING || r->pause_busy || r->op_busy)
		return -EBUSY;
	if (pause && r->paused)
		return -EALREADY;
	if (pause) {
		int rc = hal_engine_pause(s->engine, r->id, on_pause, r);
		if (rc < 0)
			return rc;
		call_sent(r);
		r->pause_busy = true;
		/* Not ready from now: nothing new is sent to a replica being frozen. */
		bool was = serving(r);
		r->paused = true;
		stop_probes(r);
		serving_changed(r, was);
		return 0;
	}
	if (!r->paused)
		return -EALREADY;
	int rc = hal_engine_unpause(s->engine, r->id, on_unpause, r);
	if (rc < 0)
		return rc;
	call_sent(r);
	r->pause_busy = true;
	return 0;
}

int supervisor_replica_kill(struct supervisor *s, const char *deployment, unsigned slot)
{
	struct replica *r = find_replica(s, deployment, slot);
	if (!r)
		return -ENOENT;
	if (r->st != SUP_R_RUNNING || r->op_busy)
		return -EBUSY;
	r->chaos_killed = true;
	kill_replica(r, "chaos");
	return 0;
}

unsigned supervisor_ready_replicas(const struct supervisor *s, const char *model, struct sup_replica *out,
				   unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = &s->deps[i];
		if (!d->used || d->removing || strcmp(d->spec.name, model))
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS && n < max; j++)
			if (serving(&d->r[j]))
				replica_view(&d->r[j], &out[n++]);
	}
	return n;
}

unsigned supervisor_replicas(const struct supervisor *s, struct sup_replica *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = &s->deps[i];
		if (!d->used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS && n < max; j++)
			if (d->r[j].st != SUP_R_EMPTY)
				replica_view(&d->r[j], &out[n++]);
	}
	return n;
}

static void fill_status(const struct supervisor *s, const struct deployment *d, struct sup_status *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", d->spec.name);
	o->replicas_desired = d->removing ? 0 : d->spec.replicas;
	o->replicas_min = d->spec.replicas_min;
	o->replicas_max = d->spec.replicas_max;
	o->removing = d->removing;
	o->circuit = d->circuit;
	o->restarts = d->restarts;
	o->migration_needed = d->migration_raised;
	o->spec_hash = d->spec.spec_hash;
	o->sla_class = d->spec.sla_class;
	o->startup_ms = d->startup_ms;
	snprintf(o->last_error, sizeof(o->last_error), "%s", d->last_error);
	for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
		const struct replica *r = &d->r[j];
		if (r->st == SUP_R_RUNNING)
			o->replicas_running++;
		if (serving(r))
			o->replicas_ready++;
		if (r->st != SUP_R_EMPTY && r->hash != d->spec.spec_hash && !d->removing)
			o->rolling = true;
	}
	if (d->removing)
		o->health = "stopped";
	else if (!s->engine_up && o->replicas_ready == 0)
		o->health = "unavailable";
	else if (o->replicas_ready >= o->replicas_desired && d->circuit == SUP_CIRCUIT_CLOSED)
		o->health = "healthy";
	else if (o->replicas_ready == 0)
		o->health = "unavailable";
	else
		o->health = "degraded";
}

int supervisor_status(const struct supervisor *s, const char *deployment, struct sup_status *out)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = &s->deps[i];
		if (d->used && !strcmp(d->spec.name, deployment)) {
			fill_status(s, d, out);
			return 0;
		}
	}
	return -ENOENT;
}

unsigned supervisor_statuses(const struct supervisor *s, struct sup_status *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS && n < max; i++)
		if (s->deps[i].used)
			fill_status(s, &s->deps[i], &out[n++]);
	return n;
}

bool supervisor_engine_available(const struct supervisor *s) { return s->engine_up; }

const struct deploy_spec *supervisor_spec(const struct supervisor *s, const char *deployment)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = &s->deps[i];
		if (d->used && !d->removing && !strcmp(d->spec.name, deployment))
			return &d->spec;
	}
	return NULL;
}

void supervisor_set_inflight_fn(struct supervisor *s, sup_inflight_fn fn, void *arg)
{
	s->inflight_fn = fn;
	s->inflight_arg = arg;
}

int supervisor_observe(struct supervisor *s, sup_observer_fn fn, void *arg)
{
	if (s->nobs >= SUP_MAX_OBSERVERS)
		return -ENOSPC;
	s->obs[s->nobs].fn = fn;
	s->obs[s->nobs].arg = arg;
	s->nobs++;
	return 0;
}

const char *supervisor_circuit_name(enum sup_circuit c)
{
	switch (c) {
	case SUP_CIRCUIT_CLOSED: return "closed";
	case SUP_CIRCUIT_OPEN: return "open";
	case SUP_CIRCUIT_HALF_OPEN: return "half-open";
	default: return "?";
	}
}

const char *supervisor_state_name(enum sup_replica_state st)
{
	switch (st) {
	case SUP_R_EMPTY: return "empty";
	case SUP_R_CREATING: return "creating";
	case SUP_R_STARTING: return "starting";
	case SUP_R_RUNNING: return "running";
	case SUP_R_KILLING: return "killing";
	case SUP_R_BACKOFF: return "backoff";
	case SUP_R_EXITED: return "exited";
	case SUP_R_REMOVING: return "removing";
	default: return "?";
	}
}
