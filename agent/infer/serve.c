/* agent/infer/serve.c - the supervisor -> dispatcher glue: models, replicas, preemption pauses, chaos misses (contract in serve.h). */
#include "agent/infer/serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/infer/dispatch.h"
#include "agent/model/deploy.h"
#include "agent/supervise/chaos.h"
#include "agent/supervise/supervisor.h"
#include "hal/clock.h"

#define LOG_TAG "serve"

#define SERVE_VIEWS (SUP_MAX_DEPLOYMENTS * DEPLOY_MAX_REPLICAS)

struct serve {
	struct loop *loop;
	struct supervisor *sup;
	struct dispatch *d;                  /* NULL once stopped */
	struct chaos *chaos;
	struct loop_timer sync_timer;
	struct sup_replica views[SERVE_VIEWS]; /* scratch of the level sync */
	struct sup_status status[SUP_MAX_DEPLOYMENTS];
	bool supervised[DEPLOY_MAX];         /* dispatcher models fed by the supervisor */
	bool is_static[DEPLOY_MAX];          /* models of api.static_replicas: left alone */
	bool remote[DEPLOY_MAX];             /* models served by other gateways' replicas */
	serve_remote_fn remote_fn;
	void *remote_arg;
	bool full_logged;
};

struct serve_remote {
	struct serve *s;
	bool seen[DEPLOY_MAX];
	bool has[DEPLOY_MAX][DEPLOY_MAX_REPLICAS];
};

void serve_set_remote(struct serve *s, serve_remote_fn fn, void *arg)
{
	s->remote_fn = fn;
	s->remote_arg = arg;
}

static void serve_remote_add(void *ctx, const struct deploy_spec *sp, unsigned idx, const char *host, uint16_t port)
{
	struct serve_remote *c = ctx;
	struct serve *s = c->s;
	if (supervisor_spec(s->sup, sp->name) || idx >= DEPLOY_MAX_REPLICAS)
		return;
	int m = dispatch_model_find(s->d, sp->name);
	if (m >= 0 && m < DEPLOY_MAX && (s->is_static[m] || s->supervised[m]))
		return;
	m = dispatch_model_set(s->d, sp->name, sp->deadline_ms, sp->sla_class, sp->concurrency);
	if (m < 0 || m >= DEPLOY_MAX)
		return;
	s->remote[m] = c->seen[m] = c->has[m][idx] = true;
	if (dispatch_replica_set(s->d, m, idx, host, port, true) < 0)
		log_wrn("event=remote_replica_not_dispatched model=%s replica=%u", sp->name, idx);
}

/* The other gateways' replicas, as listed now; the ones no longer listed go. */
static void serve_remote_sync(struct serve *s)
{
	if (!s->remote_fn)
		return;
	struct serve_remote *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->s = s;
	s->remote_fn(s->remote_arg, serve_remote_add, c);
	for (int m = 0; m < DEPLOY_MAX; m++) {
		if (!s->remote[m] || s->supervised[m]) {
			s->remote[m] = false;
			continue;
		}
		struct dispatch_replica_stats st;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
			if (!c->has[m][j] && dispatch_replica_stats(s->d, m, j, &st) == 0)
				dispatch_replica_remove(s->d, m, j);
		if (!c->seen[m]) {
			dispatch_model_withdraw(s->d, m);
			s->remote[m] = false;
		}
	}
	free(c);
}

/* Dispatcher index of a supervised deployment's model, declared from its
 * spec; a deployment being removed keeps its model until its replicas are
 * gone. -ENOENT when neither. */
static int serve_model(struct serve *s, const char *name)
{
	const struct deploy_spec *sp = supervisor_spec(s->sup, name);
	int m;
	if (sp) {
		m = dispatch_model_set(s->d, name, sp->deadline_ms, sp->sla_class, sp->concurrency);
		if (m < 0) {
			if (!s->full_logged)
				log_err("event=model_not_declared model=%s err=%s", name, strerror(-m));
			s->full_logged = true;
			return m;
		}
	} else {
		m = dispatch_model_find(s->d, name);
		if (m < 0)
			return m;
	}
	if (m >= DEPLOY_MAX || s->is_static[m])
		return -EEXIST; /* listed in api.static_replicas: not fed by the supervisor */
	s->supervised[m] = true;
	return m;
}

static void serve_apply(struct serve *s, enum sup_event ev, const struct sup_replica *v)
{
	int m = serve_model(s, v->deployment);
	if (m < 0)
		return;
	if (ev == SUP_EV_GONE) {
		dispatch_replica_remove(s->d, m, v->slot);
		return;
	}
	/* Paused is the scheduler's business (it paused it); readiness is the probe's. */
	bool ready = v->ready && v->state == SUP_R_RUNNING && !v->draining;
	int rc = dispatch_replica_set(s->d, m, v->slot, v->host, v->port, ready);
	if (rc == 0)
		rc = dispatch_replica_set_draining(s->d, m, v->slot, v->draining);
	if (rc < 0)
		log_wrn("event=replica_not_dispatched model=%s replica=%u err=%s", v->deployment, v->slot,
			strerror(-rc));
}

static void serve_sync_soon(struct serve *s, unsigned ms)
{
	if (s->d && (!loop_timer_armed(&s->sync_timer) || ms < SERVE_SYNC_MS) &&
	    loop_timer_start(s->loop, &s->sync_timer, ms, SERVE_SYNC_MS) < 0)
		log_err("event=timer_full what=infer_sync");
}

static void on_sup_replica(void *arg, enum sup_event ev, const struct sup_replica *v)
{
	struct serve *s = arg;
	if (!s->d)
		return;
	serve_apply(s, ev, v);
	if (ev == SUP_EV_GONE)
		serve_sync_soon(s, 0);
}

/* Whether the scheduler holds a request of this replica paused. */
static bool serve_sched_paused(const struct serve *s, const char *model, unsigned slot)
{
	int m = dispatch_model_find(s->d, model);
	return m >= 0 && dispatch_replica_paused(s->d, m, slot);
}

/* Resumes replicas paused in the engine that nothing holds paused any more.
 * Returns how many are still paused (or on their way back). */
static unsigned serve_resume_orphans(struct serve *s, bool all)
{
	unsigned n = supervisor_replicas(s->sup, s->views, SERVE_VIEWS), left = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct sup_replica *v = &s->views[i];
		if (!v->paused || (!all && serve_sched_paused(s, v->deployment, v->slot)))
			continue;
		left++;
		int rc = supervisor_replica_pause(s->sup, v->deployment, v->slot, false);
		if (rc == 0)
			log_inf("event=replica_resume deployment=%s replica=%u reason=%s", v->deployment, v->slot,
				all ? "shutdown" : "not_held");
	}
	return left;
}

static void on_sync(void *arg)
{
	struct serve *s = arg;
	bool seen[DEPLOY_MAX] = { false };
	bool has[DEPLOY_MAX][DEPLOY_MAX_REPLICAS];
	memset(has, 0, sizeof(has));
	unsigned n = supervisor_replicas(s->sup, s->views, SERVE_VIEWS);
	for (unsigned i = 0; i < n; i++) {
		const struct sup_replica *v = &s->views[i];
		int m = serve_model(s, v->deployment);
		if (m < 0)
			continue;
		seen[m] = true;
		if (v->slot < DEPLOY_MAX_REPLICAS)
			has[m][v->slot] = true;
		serve_apply(s, SUP_EV_READY, v);
	}
	unsigned ns = supervisor_statuses(s->sup, s->status, SUP_MAX_DEPLOYMENTS);
	for (unsigned i = 0; i < ns; i++) {
		int m = serve_model(s, s->status[i].name);
		if (m >= 0 && !s->status[i].removing)
			seen[m] = true;
	}
	for (int m = 0; m < DEPLOY_MAX; m++) {
		if (!s->supervised[m])
			continue;
		struct dispatch_replica_stats st;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
			if (!has[m][j] && dispatch_replica_stats(s->d, m, j, &st) == 0)
				dispatch_replica_remove(s->d, m, j);
		if (!seen[m]) {
			dispatch_model_withdraw(s->d, m);
			s->supervised[m] = false;
		}
	}
	serve_remote_sync(s);
	if (serve_resume_orphans(s, false))
		serve_sync_soon(s, SERVE_RESUME_RETRY_MS);
}

static int serve_pause(void *arg, const char *model, unsigned replica, bool pause)
{
	struct serve *s = arg;
	int rc = supervisor_replica_pause(s->sup, model, replica, pause);
	log_inf("event=%s model=%s replica=%u rc=%d", pause ? "preempt_pause" : "preempt_resume", model, replica, rc);
	if (pause)
		return rc == -EALREADY ? 0 : rc;
	if (rc < 0 && rc != -EALREADY && rc != -ENOENT)
		serve_sync_soon(s, SERVE_RESUME_RETRY_MS); /* e.g. the pause call still in flight */
	return 0;
}

static unsigned serve_inflight(void *arg, const char *deployment, unsigned slot)
{
	struct serve *s = arg;
	int m = s->d ? dispatch_model_find(s->d, deployment) : -ENOENT;
	struct dispatch_replica_stats st;
	return m >= 0 && dispatch_replica_stats(s->d, m, slot, &st) == 0 ? st.inflight : 0;
}

/* Every request a producer saw fail (refused, failed, timed out or answered
 * 5xx) while a chaos run is active counts against it, so its figure is what
 * the producers saw. */
static void serve_miss(void *arg, const char *model, enum dispatch_reason why, int http_status)
{
	struct serve *s = arg;
	(void)why;
	(void)http_status;
	if (s->chaos)
		chaos_note_failed_request(s->chaos, model);
}

struct serve *serve_create(struct loop *l, struct supervisor *sup, struct dispatch *d, struct chaos *ch)
{
	struct serve *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = l;
	s->sup = sup;
	s->d = d;
	s->chaos = ch;
	for (int m = 0; m < DEPLOY_MAX; m++) {
		struct dispatch_replica_stats st;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS && !s->is_static[m]; j++)
			s->is_static[m] = dispatch_replica_stats(d, m, j, &st) == 0;
	}
	loop_timer_init(&s->sync_timer, on_sync, s);
	int rc = supervisor_observe(sup, on_sup_replica, s);
	if (rc < 0) {
		log_err("event=serve_not_wired err=%s", strerror(-rc));
		free(s);
		return NULL;
	}
	supervisor_set_inflight_fn(sup, serve_inflight, s);
	dispatch_set_pause_fn(d, serve_pause, s);
	dispatch_set_miss_fn(d, serve_miss, s);
	serve_sync_soon(s, 0);
	return s;
}

void serve_stop(struct serve *s)
{
	if (!s || !s->d)
		return;
	loop_timer_stop(s->loop, &s->sync_timer);
	dispatch_set_pause_fn(s->d, NULL, NULL);
	dispatch_set_miss_fn(s->d, NULL, NULL);
	supervisor_set_inflight_fn(s->sup, NULL, NULL);
	uint64_t end = hal_clock_now_us() + SERVE_SHUTDOWN_RESUME_MS * 1000ull;
	while (serve_resume_orphans(s, true) && hal_clock_now_us() < end)
		(void)loop_run_once(s->loop, (int)SERVE_RESUME_RETRY_MS);
	s->d = NULL;
}

void serve_destroy(struct serve *s)
{
	free(s);
}
