/* agent/agent.c - creates berthd's modules in order, ticks the watchdogs, tears down in reverse. */
#include "agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/infer/api.h"
#include "agent/supervise/chaos.h"
#include "agent/infer/dispatch.h"
#include "agent/infer/serve.h"
#include "agent/model/deploy.h"
#include "agent/telemetry/events.h"
#include "agent/console/reported.h"
#include "agent/base/log.h"
#include "agent/images/images.h"
#include "agent/images/lkg.h"
#include "agent/images/regauth.h"
#include "agent/base/loop.h"
#include "agent/telemetry/sampler.h"
#include "agent/scale/autoscaler.h"
#include "agent/telemetry/store.h"
#include "agent/actions.h"
#include "agent/supervise/supervisor.h"
#include "agent/console/console.h"
#include "agent/telemetry/collector.h"
#include "agent/base/textfile.h"
#include "hal/clock.h"
#include "hal/engine.h"
#include "hal/fs.h"
#include "hal/invoke.h"
#include "hal/sys.h"
#include "hal/watchdog.h"
#if IS_ENABLED(CONFIG_SITE)
#include "agent/site/site.h"
#endif

#define LOG_TAG "agent"

#define LKG_MAX_CRASHES 3 /* exits of a new version that make it a crash loop */

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
	struct sampler *sampler;
	struct chaos *chaos;

	/* --- store, telemetry and MQTT console --- */
	struct store *store;
	struct collector *collector;
	struct actions *actions;       /* the commands' view of the supervisor */
	struct console *console;
	struct site *site;               /* site cluster (site.enabled); NULL otherwise */

	/* --- inference path: local API -> dispatch (scheduler) -> replicas --- */
	struct hal_invoke *infer_invoke;
	struct dispatch *dispatch;
	struct api *api;

	/* --- autoscaling, request and container figures, reported state --- */
	struct reported *reported;
	struct autoscaler *autoscaler;
	struct serve *serve;             /* supervisor -> dispatcher */

	/* --- images: pulls, last-known-good, rollback --- */
	struct images_registry registries[8];
	struct images *images;
	struct lkg *lkg;
};

/* --- store, telemetry and MQTT console ------------------------------------- */

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

/* The images flow sits between the supervisor and the desired state: it must
 * hook the supervisor before the first desired state is applied. */
static int images_start(struct agent *a, const struct berth_config *cfg)
{
	unsigned nreg = 0;
	char err[320];
	int rc = regauth_load(cfg->images.registries, cfg->images.credentials_file, a->registries,
			      sizeof(a->registries) / sizeof(a->registries[0]), &nreg, err, sizeof(err));
	if (rc) {
		log_err("event=registry_credentials_refused msg=\"%s\"", err);
		return rc;
	}
	uint64_t budget = (uint64_t)cfg->images.budget_mb * 1000000u;
	struct hal_node_stats ns;
	if (cfg->images.budget_pct && hal_sys_node_stats(cfg->images.engine_dir, &ns) == 0)
		budget = ns.disk_total_bytes / 100u * (uint64_t)cfg->images.budget_pct;
	else if (cfg->images.budget_pct)
		log_wrn("event=image_budget_unknown engine_dir=%s", cfg->images.engine_dir);
	struct images_opts io = {
		.stall_s = (unsigned)cfg->images.pull_stall_s,
		.budget_bytes = budget,
		.remove_foreign = cfg->images.remove_foreign,
		.gc_interval_s = (unsigned)cfg->images.gc_interval_s,
		.registries = a->registries,
		.nregistries = nreg,
	};
	a->images = images_create(a->loop, a->engine, a->store, a->events, &io);
	struct lkg_opts lo = {
		.rollback = cfg->images.rollback,
		.stable_ms = (uint32_t)cfg->images.lkg_stable_s * 1000u,
		.window_ms = (uint32_t)cfg->images.rollout_window_s * 1000u,
		.max_crashes = LKG_MAX_CRASHES,
	};
	a->lkg = a->images ? lkg_create(a->loop, a->sup, a->images, a->store, a->events, &lo) : NULL;
	return a->lkg ? 0 : -ENOMEM;
}

/* --- site cluster: between the desired state and the supervisor ------------ */

#if IS_ENABLED(CONFIG_SITE)
static int site_filter_fn(void *arg, const struct deploy_set *desired, struct deploy_set *out)
{
	return site_filter(arg, desired, out);
}

static int site_report_fn(const void *arg, char *buf, size_t len) { return site_report_json(arg, buf, len); }

static int site_member_fn(void *arg, const char *id, const char *address, char *why, size_t len)
{
	return site_member_request(arg, id, address, why, len);
}

static void site_reapply(void *arg)
{
	struct agent *a = arg;
	int rc = actions_reapply(a->actions);
	if (rc)
		log_wrn("event=site_share_not_applied err=%s", strerror(-rc));
}

/* Requests for a site model this gateway does not run go to the members that do. */
static void site_remote_each(void *arg, serve_remote_add_fn add, void *ctx)
{
	(void)site_remote_replicas(arg, add, ctx);
}

static int site_start(struct agent *a, const struct berth_config *cfg)
{
	if (!cfg->site.enabled)
		return 0;
	struct site_deps sd = { .loop = a->loop, .events = a->events, .sup = a->sup, .reapply = site_reapply, .arg = a };
	a->site = site_create(&sd, cfg);
	if (!a->site)
		return -EIO;
	struct actions_site hook = { .filter = site_filter_fn, .report = site_report_fn, .member = site_member_fn,
				     .arg = a->site };
	actions_set_site(a->actions, &hook);
	return 0;
}

static void site_serve(struct agent *a)
{
	if (a->site)
		serve_set_remote(a->serve, site_remote_each, a->site);
}

static void site_stop(struct agent *a)
{
	if (a->actions)
		actions_set_site(a->actions, NULL);
	site_destroy(a->site);
	a->site = NULL;
}
#else
static int site_start(struct agent *a, const struct berth_config *cfg) { return 0; }
static void site_serve(struct agent *a) {}
static void site_stop(struct agent *a) {}
#endif

static int start_store_and_console(struct agent *a, const struct berth_config *cfg)
{
	char path[CONFIG_STR_MAX + 16];
	int rc = hal_fs_mkdir(cfg->data_dir, 0700);
	if (rc < 0 && rc != -EEXIST) {
		log_err("event=data_dir_unusable path=%s err=%s", cfg->data_dir, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/berth.db", cfg->data_dir);
	struct store_opts so = {
		.path = path,
		.budget_kb = (uint32_t)cfg->telemetry.disk_budget_kb,
		.sync_full = strcmp(cfg->telemetry.synchronous, "full") == 0,
		.degrade = true, /* an unopenable file: run without buffering, never a crash loop */
	};
	rc = store_open(&so, &a->store);
	if (rc) {
		log_err("event=store_open_failed path=%s err=%s", path, strerror(-rc));
		return rc;
	}
	if ((rc = images_start(a, cfg)))
		return rc;
	a->actions = actions_create(a->sup, a->chaos);
	if (!a->actions)
		return -ENOMEM;
	actions_set_events(a->actions, a->events);
	actions_set_lkg(a->actions, a->lkg);
	sampler_set_targets(a->sampler, actions_sampler_targets, a->actions);
	if ((rc = site_start(a, cfg)))
		return rc;
	a->console = console_create(a->loop, a->store, cfg, &actions_ops, a->actions);
	if (!a->console)
		return -ENOMEM;
	struct collector_opts to = {
		.data_dir = cfg->data_dir,
		.interval_ms = (uint32_t)cfg->telemetry.interval_ms,
		.after_tick = console_kick,
		.arg = a->console,
	};
	a->collector = collector_create(a->loop, a->store, &to);
	if (!a->collector)
		return -ENOMEM;
	collector_set_sampler(a->collector, a->sampler); /* one reading of the node per interval, not two */
	if ((rc = collector_register(a->collector, "uplink", console_telemetry_source, a->console)) ||
	    (rc = collector_register(a->collector, "deployments", actions_telemetry_source, a->actions)))
		return rc;
	/* Notable events (crash loops, migration_needed, ...) go to the outbox. */
	events_set_sink(a->events, on_event, a->collector);
	/* Offline autonomy: the last persisted desired state, else the file. */
	char *fallback = read_deployments_file(cfg->deployments_file);
	rc = console_boot(a->console, fallback);
	free(fallback);
	if (rc && rc != -ENOENT)
		log_wrn("event=no_desired_state err=%s", strerror(-rc));
	return 0;
}

static void stop_store_and_console(struct agent *a)
{
	if (a->events)
		events_set_sink(a->events, NULL, NULL); /* the telemetry goes first */
	collector_destroy(a->collector);
	console_destroy(a->console);
	if (a->sampler)
		sampler_set_targets(a->sampler, NULL, NULL);
	site_stop(a);
	actions_destroy(a->actions);
	lkg_destroy(a->lkg);
	images_destroy(a->images);
	store_close(a->store);
}

/* The telemetry sink persists and forwards every event as it is emitted; nothing in berthd reads
 * the ring back, so it holds just the event being emitted (a 4 kB slot). With 64 slots each new
 * event touched a fresh page until the ring wrapped: ~4 kB of RSS per event for the first 64,
 * which the 1800 s soak saw as growth after its warm-up. */
#define AGENT_EVENTS_RING 1
#define AGENT_INVOKE_MAX_INFLIGHT 256

/* --- supervision ----------------------------------------------------------- */

static int supervision_create(struct agent *a, const struct berth_config *cfg)
{
	a->events = events_create(AGENT_EVENTS_RING);
	/* engine.socket "": no engine at all (telemetry, console, trust and groups only). */
	bool engine = cfg->engine.socket[0] != '\0';
	a->engine = engine ? hal_engine_create(a->loop, cfg->engine.socket, (unsigned)cfg->engine.timeout_ms) : NULL;
	a->invoke = hal_invoke_create(a->loop, AGENT_INVOKE_MAX_INFLIGHT);
	if (!a->events || (engine && !a->engine) || !a->invoke)
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
	a->sampler = sampler_create(a->loop, cfg->data_dir, (unsigned)cfg->telemetry.interval_ms);
	a->chaos = chaos_create(a->loop, a->sup, a->events);
	if (!a->sampler || !a->chaos)
		return -ENOMEM;
	int rc = supervisor_start(a->sup);
	if (rc < 0)
		return rc;
	if ((rc = sampler_start(a->sampler)) < 0)
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
	sampler_destroy(a->sampler);
	supervisor_destroy(a->sup);
	hal_engine_destroy(a->engine);
	hal_invoke_destroy(a->invoke);
	events_destroy(a->events);
}

/* --- inference path: local API, scheduler and dispatch ----------------------
 * The dispatcher owns the scheduler; the API hands it requests. Models and
 * replicas come from the supervisor's observers, and from api.static_replicas
 * (replicas run outside berth). */

static struct dispatch_config dispatch_config_of(const struct berth_config *cfg)
{
	return (struct dispatch_config){
		.policy = cfg->scheduler.policy,
		.slots = (unsigned)cfg->scheduler.slots,
		.queue_cap = { (unsigned)cfg->scheduler.queue_cap_urgent, (unsigned)cfg->scheduler.queue_cap_normal,
			       (unsigned)cfg->scheduler.queue_cap_batch },
		.urgent_reserve_slots = (unsigned)cfg->scheduler.urgent_reserve_slots,
	};
}

static struct api_config api_config_of(const struct berth_config *cfg)
{
	return (struct api_config){
		.listen = cfg->api.listen,
		.port = (uint16_t)cfg->api.port,
		.unix_socket = cfg->api.unix_socket,
		.max_body_bytes = (size_t)cfg->api.max_body_bytes,
		.token = cfg->api.token,
	};
}

static int inference_start(struct agent *a, const struct berth_config *cfg)
{
	struct dispatch_config dc = dispatch_config_of(cfg);
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
	struct api_config ac = api_config_of(cfg);
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
 * Runs once supervision, the console and the inference path exist: the scheduler's
 * and the containers' figures become telemetry sources, the reported state
 * gains its SLA fields and is what GET /v1/state answers, and the
 * autoscaler (autoscale.enabled) moves replica counts. */

static int agent_state(void *arg, char *buf, size_t len)
{
	struct agent *a = arg;
	return console_report(a->console, buf, len);
}

static size_t agent_metrics(void *arg, char *buf, size_t len)
{
	struct agent *a = arg;
	size_t n = console_render_metrics(a->console, buf, len);
	return n + supervisor_render_metrics(a->sup, buf + (n < len ? n : len), n < len ? len - n : 0);
}

static int autoscaler_start(struct agent *a, const struct berth_config *cfg);

static int start_scaling_and_reports(struct agent *a, const struct berth_config *cfg)
{
	int rc;
	actions_set_dispatch(a->actions, a->dispatch);
	a->reported = reported_create(a->sampler, a->dispatch, (unsigned)cfg->telemetry.interval_ms);
	if (!a->reported)
		return -ENOMEM;
	if ((rc = collector_register(a->collector, "containers", reported_containers_source, a->reported)) ||
	    (rc = collector_register(a->collector, "scheduler", reported_scheduler_source, a->reported)))
		return rc;
	if (a->api) {
		api_set_state_fn(a->api, agent_state, a);
		api_set_metrics_fn(a->api, agent_metrics, a);
	}
	return autoscaler_start(a, cfg);
}

/* The autoscaler (autoscale.enabled) and its telemetry source. */
static int autoscaler_start(struct agent *a, const struct berth_config *cfg)
{
	if (!cfg->autoscale.enabled) {
		log_inf("event=autoscaler_disabled");
		return 0;
	}
	struct autoscaler_deps sd = {
		.loop = a->loop,
		.sup = a->sup,
		.dispatch = a->dispatch,
		.metrics = a->sampler,
		.store = a->store,
		.events = a->events,
	};
	a->autoscaler = autoscaler_create(&sd, cfg);
	if (!a->autoscaler)
		return -EINVAL;
	return collector_register(a->collector, "autoscale", autoscaler_telemetry_source, a->autoscaler);
}

/* Before the inference path and the store go: the scaler saves its forecasts. */
static void stop_scaling_and_reports(struct agent *a)
{
	if (a->collector) {
		collector_unregister(a->collector, "autoscale");
		collector_unregister(a->collector, "scheduler");
		collector_unregister(a->collector, "containers");
	}
	if (a->api) {
		api_set_state_fn(a->api, NULL, NULL);
		api_set_metrics_fn(a->api, NULL, NULL);
	}
	autoscaler_destroy(a->autoscaler);
	a->autoscaler = NULL;
	reported_destroy(a->reported);
	a->reported = NULL;
	if (a->actions)
		actions_set_dispatch(a->actions, NULL);
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
	if (start_store_and_console(a, cfg) < 0)
		goto errout;
	if (inference_start(a, cfg) < 0)
		goto errout;
	int frc = start_scaling_and_reports(a, cfg);
	if (frc < 0) {
		log_err("event=reporting_failed err=%s", strerror(-frc));
		goto errout;
	}
	a->serve = serve_create(a->loop, a->sup, a->dispatch, a->chaos);
	if (!a->serve)
		goto errout;
	site_serve(a);

	log_inf("event=started device=%s data_dir=%s", cfg->device_id, cfg->data_dir);
	return a;

errout:
	agent_destroy(a);
	return NULL;
}

/* --- reload (SIGHUP) --------------------------------------------------------
 * Changed keys are applied group by group, each group from the new file's values of its
 * keys over the running config; a group that fails keeps its running values (logged,
 * listed as not_applied). Keys outside these groups need a restart: they are refused by
 * name and keep their running values, while the rest of the file is applied. */

enum reload_group { RG_RESTART, RG_LOG, RG_DEPLOY, RG_SCHED, RG_API, RG_BROKER, RG_TELEM, RG_SCALE, RG_N };

static const char *const reload_group_names[RG_N] = { "restart", "log", "deployments", "scheduler",
						      "api", "broker", "telemetry", "autoscale" };

static enum reload_group reload_group_of(const char *key)
{
	static const struct { const char *prefix; enum reload_group g; } t[] = {
		{ "log_", RG_LOG }, { "deployments_file", RG_DEPLOY }, { "scheduler.", RG_SCHED },
		{ "api.static_replicas", RG_RESTART }, { "api.enabled", RG_RESTART }, { "api.", RG_API }, { "broker.", RG_BROKER },
		/* the store's page cap, WAL limit and sync mode are set when the database opens */
		{ "telemetry.disk_budget_kb", RG_RESTART }, { "telemetry.synchronous", RG_RESTART },
		{ "telemetry.", RG_TELEM }, { "autoscale.", RG_SCALE },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strncmp(key, t[i].prefix, strlen(t[i].prefix)))
			return t[i].g;
	return RG_RESTART;
}

/* Appends key to a comma-separated list, bounded (snprintf cuts what does not fit). */
static void list_add(char *list, size_t len, const char *key)
{
	size_t n = strlen(list);
	snprintf(list + n, len - n, "%s%s", n ? "," : "", key);
}

/* api.enabled needs a restart: without the API there is nothing to reconfigure. */
static int reload_api(struct agent *a, const struct berth_config *c)
{
	struct api_config ac = api_config_of(c);
	return a->api ? api_reconfigure(a->api, &ac) : 0;
}

static int reload_telemetry(struct agent *a, const struct berth_config *c)
{
	const struct berth_config *o = &a->cfg;
	int rc = 0;
	if (c->telemetry.batch_max_bytes != o->telemetry.batch_max_bytes ||
	    c->telemetry.inflight_max != o->telemetry.inflight_max || c->telemetry.state_refresh_s != o->telemetry.state_refresh_s)
		rc = console_reconfigure(a->console, c);
	if (rc == 0 && c->telemetry.interval_ms != o->telemetry.interval_ms) {
		rc = collector_set_interval(a->collector, (uint32_t)c->telemetry.interval_ms);
		if (rc == 0)
			rc = sampler_set_interval(a->sampler, (unsigned)c->telemetry.interval_ms);
		reported_set_interval(a->reported, (unsigned)c->telemetry.interval_ms);
	}
	return rc;
}

/* A new autoscaler from c: the old one saves its forecasts in the store, the new one loads them. */
static int reload_autoscale(struct agent *a, const struct berth_config *c)
{
	collector_unregister(a->collector, "autoscale");
	autoscaler_destroy(a->autoscaler);
	a->autoscaler = NULL;
	int rc = autoscaler_start(a, c);
	if (rc && autoscaler_start(a, &a->cfg)) /* the running settings again */
		log_wrn("event=autoscaler_stopped reason=reload");
	return rc;
}

static int reload_apply(struct agent *a, enum reload_group g, const struct berth_config *c)
{
	switch (g) {
	case RG_LOG: {
		int lvl = log_level_parse(c->log_level);
		if (lvl < 0)
			return -EINVAL;
		log_set_level((enum log_level)lvl);
		if (c->log_syslog != a->cfg.log_syslog)
			log_set_syslog(c->log_syslog ? "berthd" : NULL);
		return 0;
	}
	case RG_SCHED: {
		struct dispatch_config dc = dispatch_config_of(c);
		return dispatch_reconfigure(a->dispatch, &dc);
	}
	case RG_API: return reload_api(a, c);
	case RG_BROKER: return console_reconfigure(a->console, c);
	case RG_TELEM: return reload_telemetry(a, c);
	case RG_SCALE: return reload_autoscale(a, c);
	default: return 0; /* RG_DEPLOY: read below, whatever changed */
	}
}

struct reload_lists {
	char changed[512], applied[512], refused[512], failed[512];
};

/* Applies the changed keys of group g (cfg's values over the running ones); on success they
 * become the running values. */
static void reload_group(struct agent *a, enum reload_group g, const struct berth_config *cfg, struct reload_lists *l)
{
	struct berth_config trial = a->cfg;
	char keys[512] = "";
	for (size_t i = 0; config_key_path(i); i++) {
		if (reload_group_of(config_key_path(i)) != g || !config_key_differs(i, &a->cfg, cfg))
			continue;
		config_key_copy(i, &trial, cfg);
		list_add(keys, sizeof(keys), config_key_path(i));
	}
	if (!keys[0])
		return;
	int rc = reload_apply(a, g, &trial);
	if (rc) {
		log_wrn("event=reload_not_applied group=%s keys=%s err=\"%s\" kept=running", reload_group_names[g], keys,
			strerror(-rc));
		list_add(l->failed, sizeof(l->failed), keys);
		return;
	}
	bool slots_changed = trial.scheduler.slots != a->cfg.scheduler.slots;
	a->cfg = trial;
	list_add(l->applied, sizeof(l->applied), keys);
	/* The autoscaler sizes replicas against the slots it read when it was made. */
	if (g == RG_SCHED && slots_changed && a->autoscaler && reload_autoscale(a, &a->cfg))
		log_wrn("event=autoscaler_not_restarted reason=scheduler.slots");
}

/* The deployments file is read again (its content may have changed under the same name) and
 * becomes the desired state the way it did at start (through the command target, so commands
 * and the reported state see it); a bad file changes nothing. */
static void reload_deployments(struct agent *a)
{
	if (console_has_desired_state(a->console)) {
		log_inf("event=deployments_file_ignored reason=console_desired_state");
		return;
	}
	char *file = read_deployments_file(a->cfg.deployments_file);
	int rc = file ? console_boot(a->console, file) : 0;
	free(file);
	if (rc)
		log_wrn("event=deployments_file_not_applied path=%s err=%s", a->cfg.deployments_file, strerror(-rc));
}

int agent_reload(struct agent *a, const struct berth_config *cfg)
{
	struct reload_lists l = { "", "", "", "" };
	for (size_t i = 0; config_key_path(i); i++) {
		if (!config_key_differs(i, &a->cfg, cfg))
			continue;
		list_add(l.changed, sizeof(l.changed), config_key_path(i));
		if (reload_group_of(config_key_path(i)) == RG_RESTART)
			list_add(l.refused, sizeof(l.refused), config_key_path(i));
	}
	/* one line for all of them: a per-key line would meet the per-site rate limit */
	if (l.refused[0])
		log_wrn("event=reload_keys_refused keys=%s reason=\"needs a restart\"", l.refused);
	for (enum reload_group g = RG_LOG; g < RG_N; g++)
		reload_group(a, g, cfg, &l);
	reload_deployments(a);
	log_inf("event=reloaded changed=%s applied=%s needs_restart=%s not_applied=%s log_level=%s",
		l.changed[0] ? l.changed : "-", l.applied[0] ? l.applied : "-", l.refused[0] ? l.refused : "-",
		l.failed[0] ? l.failed : "-", log_level_name(log_get_level()));
	return l.refused[0] || l.failed[0] ? -EAGAIN : 0;
}

void agent_destroy(struct agent *a)
{
	if (!a)
		return;
	stop_scaling_and_reports(a);
	serve_stop(a->serve);
	inference_stop(a);
	stop_store_and_console(a);
	loop_timer_stop(a->loop, &a->watchdog_timer);
	supervision_destroy(a);
	serve_destroy(a->serve); /* the supervisor kept it as an observer until now */
	if (a->hw_watchdog)
		hal_watchdog_close();
	free(a);
}
