/* agent/agent.c - creates berthd's modules in order, ticks the watchdogs, tears down in reverse. */
#include "agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/infer/api.h"
#include "agent/supervise/chaos.h"
#include "agent/infer/dispatch.h"
#include "agent/model/deploy.h"
#include "agent/telemetry/events.h"
#include "agent/console/reported.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/telemetry/sampler.h"
#include "agent/scale/autoscaler.h"
#include "agent/infer/sched.h"
#include "agent/telemetry/store.h"
#include "agent/actions.h"
#include "agent/supervise/supervisor.h"
#include "agent/console/console.h"
#include "agent/telemetry/collector.h"
#include "agent/base/textfile.h"
#include "hal/clock.h"
#include "hal/engine.h"
#include "hal/invoke.h"
#include "hal/watchdog.h"
#if IS_ENABLED(CONFIG_SITE)
#include "agent/site/site.h"
#endif

#define LOG_TAG "agent"

struct agent {
	struct loop *loop;
	struct berth_config cfg;
	struct loop_timer watchdog_timer;
	bool hw_watchdog;
	uint64_t sd_watchdog_us;

	/* --- supervision: engine, replicas, probes, metrics, chaos --- */
	struct events *events;           /* shared sink of notable events */
	struct hal_engine *engine;
	struct hal_invoke *invoke;       /* probes (and, later, dispatch) */
	struct supervisor *sup;
	struct sampler *metrics;
	struct chaos *chaos;

	/* --- store, telemetry and MQTT sync --- */
	struct store *store;
	struct collector *telemetry;
	struct actions *target;        /* the commands' view of the supervisor */
	struct console *sync;
	struct site *site;               /* site cluster (site.enabled); NULL otherwise */

	/* --- inference path: local API -> dispatch (scheduler) -> replicas --- */
	struct hal_invoke *infer_invoke;
	struct dispatch *dispatch;
	struct api *api;

	/* --- autoscaling, request and container figures, reported state --- */
	struct reported *figures;
	struct autoscaler *scaler;
	/* --- inference wiring: supervisor -> dispatcher (see infer_*) --- */
	struct loop_timer infer_sync_timer;
	struct sup_replica *infer_views;     /* scratch of the level sync */
	struct sup_status infer_status[SUP_MAX_DEPLOYMENTS];
	bool infer_supervised[DEPLOY_MAX];   /* dispatcher models fed by the supervisor */
	bool infer_static[DEPLOY_MAX];       /* models of api.static_replicas: left alone */
	bool infer_site[DEPLOY_MAX];         /* site models served by other members' replicas */
	bool infer_full_logged;
};

/* --- store, telemetry and MQTT sync ------------------------------------- */

/* Reads the deployments file (the fallback desired state when the store has
 * none); NULL when unset or unreadable (logged). Caller frees. */
static char *read_deployments_file(const char *path)
{
	if (!path[0])
		return NULL;
	char *buf;
	size_t len;
	int rc = textfile_read(path, CONFIG_CONFIG_MAX_BYTES, &buf, &len);
	if (rc == -EFBIG)
		log_wrn("event=deployments_file_too_large path=%s max=%d", path, CONFIG_CONFIG_MAX_BYTES);
	else if (rc)
		log_wrn("event=deployments_file_unreadable path=%s err=%s", path, strerror(-rc));
	return buf;
}

static void on_event(void *arg, const struct event *ev)
{
	char buf[EVENTS_DETAIL_MAX + 256];
	int n = snprintf(buf, sizeof(buf), "{\"event\":\"%s\",\"detail\":%s}", ev->type,
			 ev->detail[0] ? ev->detail : "{}");
	if (n > 0 && (size_t)n < sizeof(buf) && collector_event(arg, buf, (size_t)n) != 0)
		log_wrn("event=event_not_stored type=%s", ev->type);
}

/* --- site cluster: between the desired state and the supervisor ------------ */

#if IS_ENABLED(CONFIG_SITE)
static int site_filter_fn(void *arg, const struct deploy_set *desired, struct deploy_set *out)
{
	return site_filter(arg, desired, out);
}

static int site_report_fn(const void *arg, char *buf, size_t len) { return site_report_json(arg, buf, len); }

static void site_reapply(void *arg)
{
	struct agent *a = arg;
	int rc = actions_reapply(a->target);
	if (rc)
		log_wrn("event=site_share_not_applied err=%s", strerror(-rc));
}

static int site_start(struct agent *a, const struct berth_config *cfg)
{
	if (!cfg->site.enabled)
		return 0;
	struct site_deps sd = { .loop = a->loop, .events = a->events, .sup = a->sup, .reapply = site_reapply, .arg = a };
	a->site = site_create(&sd, cfg);
	if (!a->site)
		return -EIO;
	struct actions_site hook = { .filter = site_filter_fn, .report = site_report_fn, .arg = a->site };
	actions_set_site(a->target, &hook);
	return 0;
}

static void site_stop(struct agent *a)
{
	if (a->target)
		actions_set_site(a->target, NULL);
	site_destroy(a->site);
	a->site = NULL;
}
#else
static int site_start(struct agent *a, const struct berth_config *cfg) { return 0; }
static void site_stop(struct agent *a) {}
#endif

static int sync_start(struct agent *a, const struct berth_config *cfg)
{
	char path[CONFIG_STR_MAX + 16];
	if (mkdir(cfg->data_dir, 0750) < 0 && errno != EEXIST) {
		log_err("event=data_dir_unusable path=%s err=%s", cfg->data_dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/berth.db", cfg->data_dir);
	struct store_opts so = {
		.path = path,
		.budget_kb = (uint32_t)cfg->telemetry.disk_budget_kb,
		.sync_full = strcmp(cfg->telemetry.synchronous, "full") == 0,
	};
	int rc = store_open(&so, &a->store);
	if (rc) {
		log_err("event=store_open_failed path=%s err=%s", path, strerror(-rc));
		return rc;
	}
	a->target = actions_create(a->sup, a->chaos);
	if (!a->target)
		return -ENOMEM;
	if ((rc = site_start(a, cfg)))
		return rc;
	a->sync = console_create(a->loop, a->store, cfg, &actions_ops, a->target);
	if (!a->sync)
		return -ENOMEM;
	struct collector_opts to = {
		.data_dir = cfg->data_dir,
		.interval_ms = (uint32_t)cfg->telemetry.interval_ms,
		.after_tick = console_kick,
		.arg = a->sync,
	};
	a->telemetry = collector_create(a->loop, a->store, &to);
	if (!a->telemetry)
		return -ENOMEM;
	if ((rc = collector_register(a->telemetry, "uplink", console_telemetry_source, a->sync)) ||
	    (rc = collector_register(a->telemetry, "deployments", actions_telemetry_source, a->target)))
		return rc;
	/* Notable events (crash loops, migration_needed, ...) go to the outbox. */
	events_set_sink(a->events, on_event, a->telemetry);
	/* Offline autonomy: the last persisted desired state, else the file. */
	char *fallback = read_deployments_file(cfg->deployments_file);
	rc = console_boot(a->sync, fallback);
	free(fallback);
	if (rc && rc != -ENOENT)
		log_wrn("event=no_desired_state err=%s", strerror(-rc));
	return 0;
}

static void sync_stop(struct agent *a)
{
	if (a->events)
		events_set_sink(a->events, NULL, NULL); /* the telemetry goes first */
	collector_destroy(a->telemetry);
	console_destroy(a->sync);
	site_stop(a);
	actions_destroy(a->target);
	store_close(a->store);
}

#define AGENT_EVENTS_RING 64
#define AGENT_INVOKE_MAX_INFLIGHT 256

/* --- supervision ----------------------------------------------------------- */

static int supervision_create(struct agent *a, const struct berth_config *cfg)
{
	a->events = events_create(AGENT_EVENTS_RING);
	a->engine = hal_engine_create(a->loop, cfg->engine.socket, (unsigned)cfg->engine.timeout_ms);
	a->invoke = hal_invoke_create(a->loop, AGENT_INVOKE_MAX_INFLIGHT);
	if (!a->events || !a->engine || !a->invoke)
		return -ENOMEM;
	struct sup_config sc = {
		.migrate_after_failures = (unsigned)cfg->supervisor.migrate_after_failures,
		.seed = (uint64_t)hal_clock_wall_ms() ^ hal_clock_now_us(),
		.events = a->events,
	};
	snprintf(sc.device_id, sizeof(sc.device_id), "%s", cfg->device_id);
	a->sup = supervisor_create(a->loop, a->engine, a->invoke, &sc);
	if (!a->sup)
		return -ENOMEM;
	a->metrics = sampler_create(a->loop, a->sup, cfg->data_dir, (unsigned)cfg->telemetry.interval_ms);
	a->chaos = chaos_create(a->loop, a->sup, a->events);
	if (!a->metrics || !a->chaos)
		return -ENOMEM;
	int rc = supervisor_start(a->sup);
	if (rc < 0)
		return rc;
	if ((rc = sampler_start(a->metrics)) < 0)
		return rc;
	if (cfg->chaos.deployment[0]) { /* duration 0: until berthd stops */
		struct chaos_config cc = {
			.interval_ms = (unsigned)cfg->chaos.interval_s * 1000u,
			.duration_ms = (unsigned)cfg->chaos.duration_s * 1000u,
			.min_running = (unsigned)cfg->chaos.min_running,
		};
		snprintf(cc.deployment, sizeof(cc.deployment), "%.*s", (int)sizeof(cc.deployment) - 1, cfg->chaos.deployment);
		rc = chaos_start(a->chaos, &cc);
		if (rc < 0)
			log_wrn("event=chaos_not_started err=%s", strerror(-rc));
	}
	return 0;
}

/* The engine goes before the supervisor is freed: its calls in flight point into it. */
static void supervision_destroy(struct agent *a)
{
	chaos_destroy(a->chaos);
	sampler_destroy(a->metrics);
	supervisor_destroy(a->sup);
	hal_engine_destroy(a->engine);
	hal_invoke_destroy(a->invoke);
	events_destroy(a->events);
}

/* --- inference path: local API, scheduler and dispatch ----------------------
 * The dispatcher owns the scheduler; the API hands it requests. Models and
 * replicas come from the supervisor's observers, and from api.static_replicas
 * (replicas run outside berth). */

static int inference_start(struct agent *a, const struct berth_config *cfg)
{
	struct dispatch_config dc = {
		.policy = cfg->scheduler.policy,
		.slots = (unsigned)cfg->scheduler.slots,
		.queue_cap = { (unsigned)cfg->scheduler.queue_cap_urgent, (unsigned)cfg->scheduler.queue_cap_normal,
			       (unsigned)cfg->scheduler.queue_cap_batch },
		.urgent_reserve_slots = (unsigned)cfg->scheduler.urgent_reserve_slots,
	};
	/* Every running request holds a slot; paused ones keep their transfer. */
	a->infer_invoke = hal_invoke_create(a->loop, CONFIG_SCHED_MAX_SLOTS + DEPLOY_MAX_REPLICAS);
	if (!a->infer_invoke)
		return -ENOMEM;
	a->dispatch = dispatch_create(a->loop, a->infer_invoke, &dc);
	if (!a->dispatch)
		return -EINVAL;
	if (cfg->api.static_replicas[0] &&
	    dispatch_static_replicas(a->dispatch, cfg->api.static_replicas, CONFIG_DISPATCH_DEFAULT_DEADLINE_MS) < 0) {
		log_err("event=bad_static_replicas value=\"%s\"", cfg->api.static_replicas);
		return -EINVAL;
	}
	if (!IS_ENABLED(CONFIG_LOCAL_API) || !cfg->api.enabled)
		return 0;
	struct api_config ac = {
		.listen = cfg->api.listen,
		.port = (uint16_t)cfg->api.port,
		.unix_socket = cfg->api.unix_socket,
		.max_body_bytes = (size_t)cfg->api.max_body_bytes,
	};
	a->api = api_create(a->loop, &ac, a->dispatch);
	return a->api ? 0 : -EIO;
}

static void inference_stop(struct agent *a)
{
	api_destroy(a->api);
	a->api = NULL;
	dispatch_destroy(a->dispatch);
	a->dispatch = NULL;
	hal_invoke_destroy(a->infer_invoke);
	a->infer_invoke = NULL;
}

/* --- autoscaling, request and container figures, reported state -------------
 * Runs once supervision, sync and the inference path exist: the scheduler's
 * and the containers' figures become telemetry sources, the reported state
 * gains its SLA fields and is what GET /v1/state answers, and the
 * autoscaler (autoscale.enabled) moves replica counts. */

static int agent_state(void *arg, char *buf, size_t len)
{
	struct agent *a = arg;
	return console_report(a->sync, buf, len);
}

static int figures_start(struct agent *a, const struct berth_config *cfg)
{
	int rc;
	actions_set_dispatch(a->target, a->dispatch);
	a->figures = reported_create(a->metrics, a->dispatch, (unsigned)cfg->telemetry.interval_ms);
	if (!a->figures)
		return -ENOMEM;
	if ((rc = collector_register(a->telemetry, "containers", reported_containers_source, a->figures)) ||
	    (rc = collector_register(a->telemetry, "scheduler", reported_scheduler_source, a->figures)))
		return rc;
	if (a->api)
		api_set_state_fn(a->api, agent_state, a);
	if (!cfg->autoscale.enabled) {
		log_inf("event=autoscaler_disabled");
		return 0;
	}
	struct autoscaler_deps sd = {
		.loop = a->loop,
		.sup = a->sup,
		.dispatch = a->dispatch,
		.metrics = a->metrics,
		.store = a->store,
		.events = a->events,
	};
	a->scaler = autoscaler_create(&sd, cfg);
	if (!a->scaler)
		return -EINVAL;
	return collector_register(a->telemetry, "autoscale", autoscaler_telemetry_source, a->scaler);
}

/* Before the inference path and the store go: the scaler saves its forecasts. */
static void figures_stop(struct agent *a)
{
	if (a->telemetry) {
		collector_unregister(a->telemetry, "autoscale");
		collector_unregister(a->telemetry, "scheduler");
		collector_unregister(a->telemetry, "containers");
	}
	if (a->api)
		api_set_state_fn(a->api, NULL, NULL);
	autoscaler_destroy(a->scaler);
	a->scaler = NULL;
	reported_destroy(a->figures);
	a->figures = NULL;
	if (a->target)
		actions_set_dispatch(a->target, NULL);
}

/* --- inference wiring: supervisor -> dispatcher, preemption, drain, chaos ----
 * The dispatcher learns models and replicas from the supervisor: every
 * replica event is applied at once (readiness exactly as the probes say),
 * and a level sync every AGENT_INFER_SYNC_MS (and soon after any event)
 * declares models from the deployment specs, removes replicas the supervisor
 * no longer has, and withdraws models whose deployment is gone. Pausing for
 * edf-preempt goes through the supervisor (which holds the probes of a
 * paused replica); a replica left paused that the scheduler no longer holds
 * paused is resumed by the same sync. */

#define AGENT_INFER_VIEWS (SUP_MAX_DEPLOYMENTS * DEPLOY_MAX_REPLICAS)
#define AGENT_INFER_STATUSES SUP_MAX_DEPLOYMENTS
#define AGENT_INFER_SYNC_MS 250u
#define AGENT_RESUME_RETRY_MS 20u
#define AGENT_SHUTDOWN_RESUME_MS 2000

/* Dispatcher index of a supervised deployment's model, declared from its
 * spec; a deployment being removed keeps its model until its replicas are
 * gone. -ENOENT when neither. */
static int infer_model(struct agent *a, const char *name)
{
	const struct deploy_spec *sp = supervisor_spec(a->sup, name);
	int m;
	if (sp) {
		m = dispatch_model_set(a->dispatch, name, sp->deadline_ms, sp->sla_class, sp->concurrency);
		if (m < 0) {
			if (!a->infer_full_logged)
				log_err("event=model_not_declared model=%s err=%s", name, strerror(-m));
			a->infer_full_logged = true;
			return m;
		}
	} else {
		m = dispatch_model_find(a->dispatch, name);
		if (m < 0)
			return m;
	}
	if (m >= DEPLOY_MAX || a->infer_static[m])
		return -EEXIST; /* listed in api.static_replicas: not fed by the supervisor */
	a->infer_supervised[m] = true;
	return m;
}

static void infer_apply(struct agent *a, enum sup_event ev, const struct sup_replica *v)
{
	int m = infer_model(a, v->deployment);
	if (m < 0)
		return;
	if (ev == SUP_EV_GONE) {
		dispatch_replica_remove(a->dispatch, m, v->slot);
		return;
	}
	/* Paused is the scheduler's business (it paused it); readiness is the probe's. */
	bool ready = v->ready && v->state == SUP_R_RUNNING && !v->draining;
	int rc = dispatch_replica_set(a->dispatch, m, v->slot, v->host, v->port, ready);
	if (rc == 0)
		rc = dispatch_replica_set_draining(a->dispatch, m, v->slot, v->draining);
	if (rc < 0)
		log_wrn("event=replica_not_dispatched model=%s replica=%u err=%s", v->deployment, v->slot,
			strerror(-rc));
}

static void infer_sync_soon(struct agent *a, unsigned ms)
{
	if (a->dispatch && (!loop_timer_armed(&a->infer_sync_timer) || ms < AGENT_INFER_SYNC_MS) &&
	    loop_timer_start(a->loop, &a->infer_sync_timer, ms, AGENT_INFER_SYNC_MS) < 0)
		log_err("event=timer_full what=infer_sync");
}

static void on_sup_replica(void *arg, enum sup_event ev, const struct sup_replica *v)
{
	struct agent *a = arg;
	if (!a->dispatch)
		return;
	infer_apply(a, ev, v);
	if (ev == SUP_EV_GONE)
		infer_sync_soon(a, 0);
}

/* Whether the scheduler holds a request of this replica paused. */
static bool infer_sched_paused(const struct agent *a, const char *model, unsigned slot)
{
	int m = dispatch_model_find(a->dispatch, model);
	struct sched_replica_info ri;
	return m >= 0 && sched_replica_get(dispatch_sched(a->dispatch), m, (int)slot, &ri) == 0 && ri.paused;
}

/* Resumes replicas paused in the engine that nothing holds paused any more.
 * Returns how many are still paused (or on their way back). */
static unsigned infer_resume_orphans(struct agent *a, bool all)
{
	unsigned n = supervisor_replicas(a->sup, a->infer_views, AGENT_INFER_VIEWS), left = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct sup_replica *v = &a->infer_views[i];
		if (!v->paused || (!all && infer_sched_paused(a, v->deployment, v->slot)))
			continue;
		left++;
		int rc = supervisor_replica_pause(a->sup, v->deployment, v->slot, false);
		if (rc == 0)
			log_inf("event=replica_resume deployment=%s replica=%u reason=%s", v->deployment, v->slot,
				all ? "shutdown" : "not_held");
	}
	return left;
}

/* Site models that run only on other members: their replicas there are this
 * dispatcher's replicas too, so a request sent to any member is served (ready
 * while the log says their member is up; the dispatcher's breaker handles a
 * replica that does not answer). A model that runs here is the supervisor's. */
#if IS_ENABLED(CONFIG_SITE)
struct infer_remote {
	struct agent *a;
	bool seen[DEPLOY_MAX];
	bool has[DEPLOY_MAX][DEPLOY_MAX_REPLICAS];
};

static void infer_remote_replica(void *arg, const struct deploy_spec *sp, unsigned idx, const char *host, uint16_t port)
{
	struct infer_remote *c = arg;
	struct agent *a = c->a;
	if (supervisor_spec(a->sup, sp->name) || idx >= DEPLOY_MAX_REPLICAS)
		return;
	int m = dispatch_model_find(a->dispatch, sp->name);
	if (m >= 0 && m < DEPLOY_MAX && (a->infer_static[m] || a->infer_supervised[m]))
		return;
	m = dispatch_model_set(a->dispatch, sp->name, sp->deadline_ms, sp->sla_class, sp->concurrency);
	if (m < 0 || m >= DEPLOY_MAX)
		return;
	a->infer_site[m] = c->seen[m] = c->has[m][idx] = true;
	if (dispatch_replica_set(a->dispatch, m, idx, host, port, true) < 0)
		log_wrn("event=site_replica_not_dispatched model=%s replica=%u", sp->name, idx);
}

static void infer_site_sync(struct agent *a)
{
	if (!a->site)
		return;
	struct infer_remote *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->a = a;
	(void)site_remote_replicas(a->site, infer_remote_replica, c);
	for (int m = 0; m < DEPLOY_MAX; m++) {
		if (!a->infer_site[m] || a->infer_supervised[m]) {
			a->infer_site[m] = false;
			continue;
		}
		struct dispatch_replica_stats st;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
			if (!c->has[m][j] && dispatch_replica_stats(a->dispatch, m, j, &st) == 0)
				dispatch_replica_remove(a->dispatch, m, j);
		if (!c->seen[m]) {
			dispatch_model_withdraw(a->dispatch, m);
			a->infer_site[m] = false;
		}
	}
	free(c);
}
#else
static void infer_site_sync(struct agent *a) { (void)a; }
#endif

static void on_infer_sync(void *arg)
{
	struct agent *a = arg;
	bool seen[DEPLOY_MAX] = { false };
	bool has[DEPLOY_MAX][DEPLOY_MAX_REPLICAS];
	memset(has, 0, sizeof(has));
	unsigned n = supervisor_replicas(a->sup, a->infer_views, AGENT_INFER_VIEWS);
	for (unsigned i = 0; i < n; i++) {
		const struct sup_replica *v = &a->infer_views[i];
		int m = infer_model(a, v->deployment);
		if (m < 0)
			continue;
		seen[m] = true;
		if (v->slot < DEPLOY_MAX_REPLICAS)
			has[m][v->slot] = true;
		infer_apply(a, SUP_EV_READY, v);
	}
	unsigned ns = supervisor_statuses(a->sup, a->infer_status, AGENT_INFER_STATUSES);
	for (unsigned i = 0; i < ns; i++) {
		int m = infer_model(a, a->infer_status[i].name);
		if (m >= 0 && !a->infer_status[i].removing)
			seen[m] = true;
	}
	for (int m = 0; m < DEPLOY_MAX; m++) {
		if (!a->infer_supervised[m])
			continue;
		struct dispatch_replica_stats st;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
			if (!has[m][j] && dispatch_replica_stats(a->dispatch, m, j, &st) == 0)
				dispatch_replica_remove(a->dispatch, m, j);
		if (!seen[m]) {
			dispatch_model_withdraw(a->dispatch, m);
			a->infer_supervised[m] = false;
		}
	}
	infer_site_sync(a);
	if (infer_resume_orphans(a, false))
		infer_sync_soon(a, AGENT_RESUME_RETRY_MS);
}

static int infer_pause(void *arg, const char *model, unsigned replica, bool pause)
{
	struct agent *a = arg;
	int rc = supervisor_replica_pause(a->sup, model, replica, pause);
	log_inf("event=%s model=%s replica=%u rc=%d", pause ? "preempt_pause" : "preempt_resume", model, replica, rc);
	if (pause)
		return rc == -EALREADY ? 0 : rc;
	if (rc < 0 && rc != -EALREADY && rc != -ENOENT)
		infer_sync_soon(a, AGENT_RESUME_RETRY_MS); /* e.g. the pause call still in flight */
	return 0;
}

static unsigned infer_inflight(void *arg, const char *deployment, unsigned slot)
{
	struct agent *a = arg;
	int m = a->dispatch ? dispatch_model_find(a->dispatch, deployment) : -ENOENT;
	struct dispatch_replica_stats st;
	return m >= 0 && dispatch_replica_stats(a->dispatch, m, slot, &st) == 0 ? st.inflight : 0;
}

/* Every request a producer saw fail (refused, failed, timed out or answered
 * 5xx) while a chaos run is active counts against it, so its figure is what
 * the producers saw. */
static void infer_miss(void *arg, const char *model, enum dispatch_reason why, int http_status)
{
	struct agent *a = arg;
	(void)why;
	(void)http_status;
	chaos_note_failed_request(a->chaos, model);
}

static int infer_wire(struct agent *a)
{
	for (int m = 0; m < DEPLOY_MAX; m++) {
		struct dispatch_replica_stats st;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS && !a->infer_static[m]; j++)
			a->infer_static[m] = dispatch_replica_stats(a->dispatch, m, j, &st) == 0;
	}
	a->infer_views = calloc(AGENT_INFER_VIEWS, sizeof(*a->infer_views));
	if (!a->infer_views)
		return -ENOMEM;
	loop_timer_init(&a->infer_sync_timer, on_infer_sync, a);
	int rc = supervisor_observe(a->sup, on_sup_replica, a);
	if (rc < 0)
		return rc;
	supervisor_set_inflight_fn(a->sup, infer_inflight, a);
	dispatch_set_pause_fn(a->dispatch, infer_pause, a);
	dispatch_set_miss_fn(a->dispatch, infer_miss, a);
	infer_sync_soon(a, 0);
	return 0;
}

/* Before the dispatcher goes: no more pauses, every paused replica resumed
 * (the loop runs up to AGENT_SHUTDOWN_RESUME_MS for the engine's answers),
 * and the supervisor no longer asks the dispatcher. */
static void infer_unwire(struct agent *a)
{
	if (!a->infer_views)
		return;
	loop_timer_stop(a->loop, &a->infer_sync_timer);
	if (a->dispatch) {
		dispatch_set_pause_fn(a->dispatch, NULL, NULL);
		dispatch_set_miss_fn(a->dispatch, NULL, NULL);
	}
	if (a->sup) {
		supervisor_set_inflight_fn(a->sup, NULL, NULL);
		uint64_t end = hal_clock_now_us() + AGENT_SHUTDOWN_RESUME_MS * 1000ull;
		while (infer_resume_orphans(a, true) && hal_clock_now_us() < end)
			(void)loop_run_once(a->loop, (int)AGENT_RESUME_RETRY_MS);
	}
	free(a->infer_views);
	a->infer_views = NULL;
}

static void on_watchdog(void *arg)
{
	struct agent *a = arg;
	/* Kicked from the loop itself: if the loop stalls, the kicks stop. */
	if (a->hw_watchdog)
		hal_watchdog_kick();
	if (a->sd_watchdog_us)
		(void)hal_notify("WATCHDOG=1");
}

struct agent *agent_create(struct loop *l, const struct berth_config *cfg)
{
	struct agent *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->loop = l;
	a->cfg = *cfg;
	loop_timer_init(&a->watchdog_timer, on_watchdog, a);

	if (IS_ENABLED(CONFIG_HW_WATCHDOG) && cfg->watchdog.enabled) {
		int rc = hal_watchdog_open(cfg->watchdog.device, (unsigned)cfg->watchdog.timeout_s);
		if (rc == 0)
			a->hw_watchdog = true;
		else
			log_wrn("event=watchdog_unavailable device=%s err=%s", cfg->watchdog.device, strerror(-rc));
	}
	a->sd_watchdog_us = hal_notify_watchdog_usec();

	uint64_t period_us = 0;
	if (a->hw_watchdog)
		period_us = (uint64_t)cfg->watchdog.timeout_s * 1000000u / 3;
	if (a->sd_watchdog_us && (!period_us || a->sd_watchdog_us / 2 < period_us))
		period_us = a->sd_watchdog_us / 2;
	if (period_us && loop_timer_start_us(l, &a->watchdog_timer, 0, period_us) < 0)
		goto errout;

	int src = supervision_create(a, cfg);
	if (src < 0) {
		log_err("event=supervision_failed err=%s", strerror(-src));
		goto errout;
	}
	if (sync_start(a, cfg) < 0)
		goto errout;
	if (inference_start(a, cfg) < 0)
		goto errout;
	int frc = figures_start(a, cfg);
	if (frc < 0) {
		log_err("event=figures_failed err=%s", strerror(-frc));
		goto errout;
	}
	if (infer_wire(a) < 0)
		goto errout;

	log_inf("event=started device=%s data_dir=%s", cfg->device_id, cfg->data_dir);
	return a;

errout:
	agent_destroy(a);
	return NULL;
}

int agent_reload(struct agent *a, const struct berth_config *cfg)
{
	int lvl = log_level_parse(cfg->log_level);
	if (lvl >= 0)
		log_set_level((enum log_level)lvl);
	if (strcmp(cfg->device_id, a->cfg.device_id) || strcmp(cfg->data_dir, a->cfg.data_dir))
		log_wrn("event=reload_needs_restart keys=device_id,data_dir");

	/* --- supervision: the deployments file is read again and becomes the
	 * desired state the way it did at start (through the command target, so
	 * commands and the reported state see it); a bad file changes nothing. */
	snprintf(a->cfg.deployments_file, sizeof(a->cfg.deployments_file), "%s", cfg->deployments_file);
	if (!console_has_desired_state(a->sync)) {
		char *file = read_deployments_file(cfg->deployments_file);
		int rc = file ? console_boot(a->sync, file) : 0;
		free(file);
		if (rc)
			log_wrn("event=deployments_file_not_applied path=%s err=%s", cfg->deployments_file, strerror(-rc));
	} else {
		log_inf("event=deployments_file_ignored reason=console_desired_state");
	}
	log_inf("event=reloaded log_level=%s", log_level_name(log_get_level()));
	return 0;
}

void agent_destroy(struct agent *a)
{
	if (!a)
		return;
	figures_stop(a);
	infer_unwire(a);
	inference_stop(a);
	sync_stop(a);
	loop_timer_stop(a->loop, &a->watchdog_timer);
	supervision_destroy(a);
	if (a->hw_watchdog)
		hal_watchdog_close();
	free(a);
}
