/* agent/supervise/supervisor.c - the reconciler loop: lists the engine, runs the planner over the desired deployments and observed replicas, and carries its actions out. */
#include "agent/supervise/supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/backoff.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/supervise/health.h"
#include "agent/supervise/internal.h"
#include "agent/supervise/plan.h"
#include "agent/telemetry/events.h"
#include "hal/clock.h"
#include "hal/engine.h"

#define LOG_TAG "superv"

#define HOUSEKEEP_MS 1000u

static void reconcile_all(struct supervisor *s);
static void request_list(struct supervisor *s);

/* --- services for the other modules ---------------------------------------- */
uint64_t supervisor_now_ms(const struct supervisor *s) { return loop_now_ms(s->loop); }

void supervisor_arm(struct supervisor *s, struct loop_timer *t, uint32_t ms, const char *what)
{
	if (loop_timer_start(s->loop, t, ms, 0) < 0)
		log_err("event=timer_full what=%s", what);
}

void supervisor_kick_later(struct supervisor *s, unsigned ms)
{
	if (!loop_timer_armed(&s->kick_timer))
		supervisor_arm(s, &s->kick_timer, ms, "kick");
}

void supervisor_kick(struct supervisor *s) { supervisor_kick_later(s, 0); }

void supervisor_notify(struct supervisor *s, const struct replica *r, enum sup_event ev)
{
	struct sup_replica v;
	replica_view(r, &v);
	for (unsigned i = 0; i < s->nobs; i++)
		s->obs[i].fn(s->obs[i].arg, ev, &v);
}

bool supervisor_engine_trouble(int err) { return err == -EHOSTDOWN || err == -ETIMEDOUT || err == -ECONNREFUSED; }

void supervisor_engine_failed(struct supervisor *s, int err, const char *what)
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
		supervisor_arm(s, &s->engine_timer, d, "engine_retry");
	}
}

void supervisor_engine_answered(struct supervisor *s)
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

/* --- listing ------------------------------------------------------------------ */
static void on_list(void *arg, const struct hal_engine_result *res)
{
	struct supervisor *s = arg;
	s->list_inflight = false;
	if (res->err && res->err != -EOVERFLOW) {
		if (supervisor_engine_trouble(res->err)) {
			supervisor_engine_failed(s, res->err, "list");
		} else {
			log_wrn("event=list_failed err=%s msg=\"%s\"", strerror(-res->err), res->message ? res->message : "");
			s->list_fresh = false;
			supervisor_kick_later(s, 1000);
		}
		return;
	}
	supervisor_engine_answered(s);
	adopt_list(s, res);
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
	if (!s->engine)
		return; /* no engine (engine.socket ""): nothing to list or run */
	if (s->list_inflight) {
		s->relist_wanted = true;
		return;
	}
	s->list_sent_us = loop_now_us(s->loop);
	int rc = hal_engine_list(s->engine, SUP_LABEL_OWNER, s->cfg.device_id, on_list, s);
	if (rc == 0) {
		s->list_inflight = true;
		return;
	}
	log_dbg("event=list_not_sent err=%s", strerror(-rc));
	supervisor_kick_later(s, SUP_BUSY_RETRY_MS);
	s->relist_wanted = true;
}

/* --- reconciling: observe, plan, execute --------------------------------------- */
static void observe(struct deployment *d, struct plan_dep *pd)
{
	struct supervisor *s = d->sup;
	memset(pd, 0, sizeof(*pd));
	pd->spec = &d->spec;
	if (s->image_gate && !d->removing) {
		char why[96] = "";
		bool usable = s->image_gate(s->image_gate_arg, &d->spec, why, sizeof(why));
		if (!usable && !d->image_waiting)
			deployment_set_error(d, "waiting for image %s: %s", d->spec.image, why[0] ? why : "not in the store");
		else if (usable && d->image_waiting)
			d->last_error[0] = '\0';
		d->image_waiting = !usable;
		pd->image_pending = !usable;
	}
	pd->removing = d->removing;
	pd->circuit = d->circuit;
	pd->create_not_before_ms = d->create_not_before_ms;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		const struct replica *r = &d->r[i];
		pd->r[i] = (struct plan_replica){
			.st = r->st,
			.op = r->op,
			.intent = r->intent,
			.current = r->hash == d->spec.spec_hash,
			.serving = replica_serving(r),
			.draining = r->draining,
			.probed = r->readiness.probes > 0,
			.calls = r->inflight > 0,
			.restart_armed = loop_timer_armed(&r->restart_timer),
		};
	}
}

static void log_retire(const struct deployment *d, const struct plan_action *a)
{
	if (a->why == PLAN_WHY_ROLL_UNREADY)
		log_inf("event=roll_remove_unready deployment=%s replica=%u", d->spec.name, a->slot);
	else if (a->why == PLAN_WHY_ROLL)
		log_inf("event=roll_remove deployment=%s replica=%u ready=%u desired=%u", d->spec.name, a->slot, a->ready,
			d->spec.replicas);
	else if (a->why == PLAN_WHY_SCALE_DOWN)
		log_inf("event=scale_down deployment=%s replica=%u", d->spec.name, a->slot);
}

/* Carries one deployment's plan out. A create that cannot be sent ends the
 * creates (the kick retries); drains are checked once all decisions ran. */
static void execute(struct supervisor *s, struct deployment *d, const struct plan_action *act, unsigned n)
{
	bool retired = false, creating = true;
	for (unsigned i = 0; i < n; i++) {
		const struct plan_action *a = &act[i];
		struct replica *r = &d->r[a->slot];
		log_dbg("event=plan deployment=%s action=%s replica=%u why=%s", d->spec.name, plan_op_name(a->op),
			a->slot, plan_why_name(a->why));
		switch (a->op) {
		case PLAN_RESTART:
			supervisor_arm(s, &r->restart_timer, 0, "restart");
			break;
		case PLAN_RETIRE:
			log_retire(d, a);
			drain_retire(r, plan_why_name(a->why));
			retired = true;
			break;
		case PLAN_UNRETIRE:
			if (r->intent == REPLICA_RETIRE && r->st == SUP_R_RUNNING)
				drain_cancel(r);
			break;
		case PLAN_CREATE:
			if (!creating)
				break;
			replica_create(r);
			if (r->st != SUP_R_CREATING)
				creating = false; /* not sent; retried by the kick */
			else if (a->trial)
				r->trial = true;
			break;
		case PLAN_FORGET:
			log_inf("event=deployment_removed deployment=%s", d->spec.name);
			loop_timer_stop(s->loop, &d->circuit_timer);
			d->used = false;
			break;
		}
	}
	if (retired)
		drain_check(s);
}

static void reconcile_all(struct supervisor *s)
{
	struct plan_world w = {
		.applied = s->applied,
		.engine_up = s->engine_up,
		.list_fresh = s->list_fresh,
		.now_ms = supervisor_now_ms(s),
	};
	if (!w.applied || !w.engine_up)
		return;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = s->deps[i];
		if (!d || !d->used)
			continue;
		struct plan_dep pd;
		struct plan_action act[PLAN_MAX_ACTIONS];
		observe(d, &pd);
		execute(s, d, act, plan_deployment(&pd, &w, act, PLAN_MAX_ACTIONS));
	}
}

void supervisor_set_image_gate(struct supervisor *s, sup_image_gate_fn fn, void *arg)
{
	s->image_gate = fn;
	s->image_gate_arg = arg;
}

void supervisor_image_changed(struct supervisor *s) { supervisor_kick(s); }

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
static void on_drain_timer(void *arg) { drain_check(arg); }

static void on_housekeep(void *arg)
{
	struct supervisor *s = arg;
	uint64_t t = supervisor_now_ms(s);
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = s->deps[i];
		if (!d || !d->used)
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
		if (!s->deps[i] || !s->deps[i]->used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &s->deps[i]->r[j];
			/* Events may carry the full id while we hold it too; compare the common prefix. */
			if (r->id[0] && !strncmp(r->id, id, n < strlen(r->id) ? n : strlen(r->id)))
				return r;
		}
	}
	return NULL;
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
		if (r->st == SUP_R_STARTING && r->op == REPLICA_OP_START)
			r->op = REPLICA_OP_START_DIED;
		if (r->st == SUP_R_RUNNING || r->st == SUP_R_KILLING)
			replica_confirm_die(r, ev->exit_code);
		break;
	case HAL_EV_OOM:
		deployment_set_error(r->dep, "replica %u was killed for lack of memory", r->slot);
		break;
	case HAL_EV_DESTROY:
		if (r->st != SUP_R_REMOVING && r->op == REPLICA_OP_NONE) {
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
	backoff_init(&s->engine_bo, SUP_ENGINE_RETRY_MIN_MS, SUP_ENGINE_RETRY_MAX_MS, 0, SUP_JITTER_PERMILLE, false,
		     &s->rng);
	s->engine_up = engine != NULL; /* until it fails */
	loop_timer_init(&s->resync_timer, on_resync, s);
	loop_timer_init(&s->kick_timer, on_kick, s);
	loop_timer_init(&s->engine_timer, on_engine_retry, s);
	loop_timer_init(&s->housekeep_timer, on_housekeep, s);
	loop_timer_init(&s->drain_timer, on_drain_timer, s);
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
		struct deployment *d = s->deps[i];
		if (!d)
			continue;
		loop_timer_stop(s->loop, &d->circuit_timer);
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
			replica_fini(&d->r[j]);
		free(d);
	}
	free(s);
}

int supervisor_start(struct supervisor *s)
{
	if (!s->engine) {
		log_inf("event=engine_none");
		return 0;
	}
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

/* Makes sp the desired spec of its deployment (after the spec filter). */
static int apply_one(struct supervisor *s, const struct deploy_spec *sp)
{
	struct deployment *d = deployment_find(s, sp->name);
	if (!d) {
		d = deployment_alloc(s);
		if (!d) {
			log_err("event=deployment_table_full deployment=%s", sp->name);
			return -ENOSPC;
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
	if (d->spec.spec_hash != sp->spec_hash)
		d->version_exits = 0;
	d->spec = *sp;
	d->spec.replicas = n;
	for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
		struct replica *r = &d->r[j];
		/* Back-off settings apply from the next failure on. */
		r->bo.initial_ms = sp->backoff_initial_ms;
		r->bo.max_ms = sp->backoff_max_ms;
		r->bo.reset_ms = sp->backoff_reset_ms;
		if (probes_changed && r->st == SUP_R_RUNNING && !replica_paused(r)) {
			bool was = r->ready;
			replica_start_probes(r);
			r->readiness.ok = was; /* keep serving while the new probe settles */
			r->readiness.consecutive_ok = 0;
		}
	}
	return 0;
}

int supervisor_apply(struct supervisor *s, const struct deploy_set *set)
{
	if (s->applied && set->version < s->version) {
		log_wrn("event=apply_refused reason=stale version=%" PRIu64 " applied=%" PRIu64, set->version, s->version);
		return -ESTALE;
	}
	/* Gone from the set: remove. */
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = s->deps[i];
		if (d && d->used && !d->removing && !deploy_find(set, d->spec.name)) {
			log_inf("event=deployment_removing deployment=%s", d->spec.name);
			d->removing = true;
		}
	}
	for (unsigned i = 0; i < set->n; i++) {
		const struct deploy_spec *sp = &set->d[i];
		if (s->spec_filter)
			sp = s->spec_filter(s->spec_filter_arg, sp);
		(void)apply_one(s, sp); /* a full table is logged; the others still apply */
	}
	s->version = set->version;
	s->applied = true;
	log_inf("event=applied version=%" PRIu64 " deployments=%u", set->version, set->n);
	supervisor_kick(s);
	return 0;
}

int supervisor_replace_spec(struct supervisor *s, const struct deploy_spec *sp)
{
	struct deployment *d = deployment_find(s, sp->name);
	if (!s->applied || !d || d->removing)
		return -ENOENT;
	int rc = apply_one(s, sp);
	if (!rc)
		supervisor_kick(s);
	return rc;
}

void supervisor_set_spec_filter(struct supervisor *s, sup_spec_filter_fn fn, void *arg)
{
	s->spec_filter = fn;
	s->spec_filter_arg = arg;
}

int supervisor_set_replicas(struct supervisor *s, const char *deployment, uint32_t n)
{
	struct deployment *d = deployment_find(s, deployment);
	if (!d || d->removing)
		return -ENOENT;
	if (n < d->spec.replicas_min || n > d->spec.replicas_max)
		return -ERANGE;
	if (d->spec.replicas != n)
		log_inf("event=replicas_set deployment=%s from=%u to=%u", deployment, d->spec.replicas, n);
	d->spec.replicas = n;
	supervisor_kick(s);
	return 0;
}

static struct replica *find_replica(struct supervisor *s, const char *deployment, unsigned slot)
{
	struct deployment *d = deployment_find(s, deployment);
	if (!d || slot >= DEPLOY_MAX_REPLICAS || d->r[slot].st == SUP_R_EMPTY)
		return NULL;
	return &d->r[slot];
}

int supervisor_replica_drain(struct supervisor *s, const char *deployment, unsigned slot)
{
	struct replica *r = find_replica(s, deployment, slot);
	if (!r)
		return -ENOENT;
	bool was = replica_serving(r);
	r->draining = true;
	replica_serving_changed(r, was);
	supervisor_kick(s);
	return 0;
}

int supervisor_replica_pause(struct supervisor *s, const char *deployment, unsigned slot, bool pause)
{
	struct replica *r = find_replica(s, deployment, slot);
	if (!r)
		return -ENOENT;
	return replica_pause(r, pause);
}

int supervisor_replica_kill(struct supervisor *s, const char *deployment, unsigned slot)
{
	struct replica *r = find_replica(s, deployment, slot);
	if (!r)
		return -ENOENT;
	if (r->st != SUP_R_RUNNING || r->op != REPLICA_OP_NONE)
		return -EBUSY;
	replica_kill(r, REPLICA_EXIT_CHAOS);
	return 0;
}

unsigned supervisor_ready_replicas(const struct supervisor *s, const char *model, struct sup_replica *out,
				   unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = s->deps[i];
		if (!d || !d->used || d->removing || strcmp(d->spec.name, model))
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS && n < max; j++)
			if (replica_serving(&d->r[j]))
				replica_view(&d->r[j], &out[n++]);
	}
	return n;
}

unsigned supervisor_replicas(const struct supervisor *s, struct sup_replica *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = s->deps[i];
		if (!d || !d->used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS && n < max; j++)
			if (d->r[j].st != SUP_R_EMPTY)
				replica_view(&d->r[j], &out[n++]);
	}
	return n;
}

int supervisor_status(const struct supervisor *s, const char *deployment, struct sup_status *out)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = s->deps[i];
		if (d && d->used && !strcmp(d->spec.name, deployment)) {
			deployment_status(s, d, out);
			return 0;
		}
	}
	return -ENOENT;
}

unsigned supervisor_statuses(const struct supervisor *s, struct sup_status *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS && n < max; i++)
		if (s->deps[i] && s->deps[i]->used)
			deployment_status(s, s->deps[i], &out[n++]);
	return n;
}

bool supervisor_engine_available(const struct supervisor *s) { return s->engine_up; }
bool supervisor_has_engine(const struct supervisor *s) { return s->engine != NULL; }

const struct deploy_spec *supervisor_spec(const struct supervisor *s, const char *deployment)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		const struct deployment *d = s->deps[i];
		if (d && d->used && !d->removing && !strcmp(d->spec.name, deployment))
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

size_t supervisor_render_metrics(const struct supervisor *s, char *buf, size_t len)
{
	static const struct { const char *name, *type, *help; } fam[] = {
		{ "berth_deployment_restarts_total", "counter", "Replica restarts." },
		{ "berth_deployment_probe_failures_total", "counter", "Liveness and readiness probe failures." },
	};
	struct sup_status st;
	size_t n = 0;
	for (unsigned f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		int k = snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, "# HELP %s %s\n# TYPE %s %s\n",
				 fam[f].name, fam[f].help, fam[f].name, fam[f].type);
		n += (size_t)(k > 0 ? k : 0);
		for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
			const struct deployment *d = s->deps[i];
			if (!d || !d->used)
				continue;
			deployment_status(s, d, &st);
			unsigned long long v = f == 0 ? st.restarts : st.probe_failures;
			k = snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, "%s{deployment=\"%s\"} %llu\n",
				     fam[f].name, st.name, v);
			n += (size_t)(k > 0 ? k : 0);
		}
	}
	return n;
}
