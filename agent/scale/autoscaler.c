/* agent/scale/autoscaler.c - berthd's autoscaling loop: windows in, autoscale_evaluate, replica counts out, forecasts persisted. */
#include "agent/scale/autoscaler.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/config.h"
#include "agent/infer/dispatch.h"
#include "agent/telemetry/events.h"
#include "agent/scale/forecast.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/telemetry/sampler.h"
#include "agent/telemetry/store.h"
#include "agent/supervise/supervisor.h"
#include "agent/telemetry/collector.h"
#include "hal/clock.h"
#include "hal/sys.h"

#define LOG_TAG "autoscaler"

#define KV_PREFIX "forecast."
#define SCALER_TELEMETRY_BUDGET 4096

struct blocked_state {
	bool active;
	uint32_t replicas, wanted, granted;
	const char *resource;
	uint64_t last_emit_ms;
	uint64_t suppressed;
};

struct sdep {
	bool used;
	struct autoscale_deploy ad;
	double service_ms;              /* last measured mean service time */
	bool have_decision;
	struct autoscale_decision last;
	uint32_t replicas, ready;       /* at the last evaluation */
	uint32_t startup_ms;
	uint64_t blocked_total;
	struct blocked_state blk;
};

struct autoscaler {
	struct autoscaler_deps deps;
	struct autoscale_params p;
	struct autoscale *as;
	struct loop_timer timer;
	uint64_t last_eval_ms;          /* 0: none yet */
	uint64_t last_save_ms;
	uint64_t evaluations;
	struct sdep dep[DEPLOY_MAX];
	int8_t model_map[SCHED_MAX_MODELS]; /* model -> autoscale index; -1 unresolved, -2 none */
	size_t blob_size;
	uint8_t *blob;
	char *hex;                      /* 2 * blob_size + 1 */
	/* Scratch for one evaluation (nothing allocated while running). */
	struct sup_status st[SUP_MAX_DEPLOYMENTS];
	struct sup_replica reps[DEPLOY_MAX_REPLICAS];
	struct metric_ctr_sample ctr[CONFIG_METRIC_RING_LEN];
	struct metric_node_sample node[CONFIG_METRIC_RING_LEN];
	struct autoscale_window w[DEPLOY_MAX];
	struct autoscale_decision out[DEPLOY_MAX];
};

/* --- pure helpers ------------------------------------------------------------ */

void autoscaler_window_build(const struct sched_window *sw, const struct sup_status *st, struct autoscale_window *w)
{
	memset(w, 0, sizeof(*w));
	w->cpu_cores = -1;
	if (sw) {
		uint64_t ok = 0, service_us = 0;
		for (unsigned c = 0; c < SLA_NCLASSES; c++) {
			const struct sched_class_stats *cs = &sw->st.cls[c];
			/* Decided in this window; refusals and failures are misses. */
			w->offered += cs->on_time + cs->late + cs->failed + sched_refused_total(cs) + cs->cancelled;
			w->on_time += cs->on_time;
			ok += cs->on_time + cs->late;
			service_us += cs->service_sum_us;
		}
		if (ok)
			w->service_ms = (double)service_us / (double)ok / 1000.0;
	}
	if (st) {
		w->replicas = st->replicas_desired;
		w->replicas_ready = st->replicas_ready;
		w->startup_ms = st->startup_ms;
	}
}

unsigned autoscaler_replica_usage(const struct metric_ctr_sample *s, unsigned n, uint64_t since_ms, double *cpu_cores,
			      uint64_t *mem_bytes)
{
	double sum = 0;
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (s[i].mono_ms < since_ms)
			continue;
		sum += s[i].cpu_pct;
		k++;
	}
	if (!k)
		return 0;
	*cpu_cores = sum / k / 100.0;
	*mem_bytes = s[n - 1].mem_bytes;
	return k;
}

int autoscaler_node_usage(const struct metric_node_sample *s, unsigned n, uint64_t since_ms, struct autoscale_node *out)
{
	if (!n)
		return -ENOENT;
	const struct metric_node_sample *last = &s[n - 1];
	double sum = 0;
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (s[i].mono_ms < since_ms)
			continue;
		sum += s[i].cpu_pct;
		k++;
	}
	memset(out, 0, sizeof(*out));
	out->ncpu = last->ncpu ? last->ncpu : 1;
	out->cpu_used_cores = (k ? sum / k : last->cpu_pct) / 100.0 * out->ncpu;
	out->mem_total_bytes = last->mem_total_bytes;
	out->mem_used_bytes = last->mem_total_bytes > last->mem_avail_bytes ? last->mem_total_bytes - last->mem_avail_bytes
									    : 0;
	return 0;
}

void autoscaler_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long autoscaler_hex_decode(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex);
	if (n % 2)
		return -EINVAL;
	if (n / 2 > cap)
		return -ENOSPC;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

/* --- forecaster persistence ---------------------------------------------------- */

static void kv_key(const char *name, char *key, size_t len) { snprintf(key, len, KV_PREFIX "%s", name); }

static void forecast_restore(struct autoscaler *s, int idx, uint64_t wall_ms)
{
	struct forecast *fc = autoscale_forecast(s->as, idx);
	if (!fc || !s->deps.store || !s->blob)
		return;
	char key[sizeof(KV_PREFIX) + DEPLOY_NAME_MAX];
	kv_key(s->dep[idx].ad.name, key, sizeof(key));
	int rc = store_kv_get(s->deps.store, key, s->hex, 2 * s->blob_size + 1);
	if (rc == -ENOENT || (rc == 0 && !s->hex[0]))
		return;
	long n = rc == 0 ? autoscaler_hex_decode(s->hex, s->blob, s->blob_size) : rc;
	if (n < 0 || (rc = forecast_load(fc, s->blob, (size_t)n)) < 0) {
		log_wrn("event=forecast_not_restored deployment=%s err=%s", s->dep[idx].ad.name,
			strerror(n < 0 ? (int)-n : -rc));
		return;
	}
	forecast_skip_to(fc, wall_ms); /* the time berthd was down is missing data */
	struct forecast_stats fs;
	forecast_get_stats(fc, &fs);
	log_inf("event=forecast_restored deployment=%s buckets=%" PRIu64 " skipped=%" PRIu64 " seasonal=%d",
		s->dep[idx].ad.name, fs.buckets, fs.skipped, fs.seasonal);
}

static void forecast_persist(struct autoscaler *s, int idx)
{
	struct forecast *fc = autoscale_forecast(s->as, idx);
	if (!fc || !s->deps.store || !s->blob)
		return;
	long n = forecast_save(fc, s->blob, s->blob_size);
	if (n < 0) {
		log_wrn("event=forecast_not_saved deployment=%s err=%s", s->dep[idx].ad.name, strerror((int)-n));
		return;
	}
	char key[sizeof(KV_PREFIX) + DEPLOY_NAME_MAX];
	kv_key(s->dep[idx].ad.name, key, sizeof(key));
	autoscaler_hex_encode(s->blob, (size_t)n, s->hex);
	int rc = store_kv_set(s->deps.store, key, s->hex);
	if (rc)
		log_wrn("event=forecast_not_saved deployment=%s err=%s", s->dep[idx].ad.name, strerror(-rc));
}

static void save_all(struct autoscaler *s)
{
	for (int i = 0; i < DEPLOY_MAX; i++)
		if (s->dep[i].used)
			forecast_persist(s, i);
}

/* --- deployments ------------------------------------------------------------------ */

static bool same_deploy(const struct autoscale_deploy *a, const struct autoscale_deploy *b)
{
	return !strcmp(a->name, b->name) && a->cls == b->cls && a->replicas_min == b->replicas_min &&
	       a->replicas_max == b->replicas_max && a->concurrency == b->concurrency && a->cpu_nano == b->cpu_nano &&
	       a->mem_bytes == b->mem_bytes && a->startup_ms == b->startup_ms;
}

static int find_dep(const struct autoscaler *s, const char *name)
{
	for (int i = 0; i < DEPLOY_MAX; i++)
		if (s->dep[i].used && !strcmp(s->dep[i].ad.name, name))
			return i;
	return -1;
}

/* Follows the supervisor's desired deployments (a deploy, a remove, a
 * changed spec, a reloaded deployments file). */
static void sync_deployments(struct autoscaler *s, uint64_t wall_ms)
{
	bool seen[DEPLOY_MAX] = { false };
	bool changed = false;
	unsigned n = supervisor_statuses(s->deps.sup, s->st, SUP_MAX_DEPLOYMENTS);
	for (unsigned k = 0; k < n; k++) {
		const struct deploy_spec *sp = s->st[k].removing ? NULL : supervisor_spec(s->deps.sup, s->st[k].name);
		if (!sp)
			continue;
		struct autoscale_deploy ad;
		autoscale_deploy_from_spec(&ad, sp);
		int i = find_dep(s, ad.name);
		if (i >= 0 && same_deploy(&s->dep[i].ad, &ad)) {
			seen[i] = true;
			continue;
		}
		int idx = autoscale_add(s->as, &ad, wall_ms);
		if (idx < 0) {
			log_wrn("event=autoscale_add_failed deployment=%s err=%s", ad.name, strerror(-idx));
			continue;
		}
		bool fresh = !s->dep[idx].used;
		if (fresh)
			memset(&s->dep[idx], 0, sizeof(s->dep[idx]));
		s->dep[idx].used = true;
		s->dep[idx].ad = ad;
		seen[idx] = true;
		changed = true;
		log_inf("event=autoscale_%s deployment=%s class=%s min=%u max=%u concurrency=%u", fresh ? "added" : "updated",
			ad.name, sla_class_name(ad.cls), ad.replicas_min, ad.replicas_max, ad.concurrency);
		if (fresh)
			forecast_restore(s, idx, wall_ms);
	}
	for (int i = 0; i < DEPLOY_MAX; i++) {
		if (!s->dep[i].used || seen[i])
			continue;
		log_inf("event=autoscale_removed deployment=%s", s->dep[i].ad.name);
		if (s->deps.store) { /* its history goes with it: the kv table stays small */
			char key[sizeof(KV_PREFIX) + DEPLOY_NAME_MAX];
			kv_key(s->dep[i].ad.name, key, sizeof(key));
			if (store_kv_set(s->deps.store, key, "") < 0)
				log_wrn("event=forecast_not_cleared deployment=%s", s->dep[i].ad.name);
		}
		autoscale_remove(s->as, i);
		memset(&s->dep[i], 0, sizeof(s->dep[i]));
		changed = true;
	}
	if (changed)
		memset(s->model_map, -1, sizeof(s->model_map));
}

/* --- arrivals ------------------------------------------------------------------------ */

static void on_arrival(void *arg, int model)
{
	struct autoscaler *s = arg;
	if (model < 0 || model >= SCHED_MAX_MODELS)
		return;
	int idx = s->model_map[model];
	if (idx == -1) {
		const char *name = dispatch_model_name(s->deps.dispatch, model);
		idx = name ? find_dep(s, name) : -1;
		s->model_map[model] = (int8_t)(idx >= 0 ? idx : -2);
	}
	if (idx >= 0)
		autoscale_observe(s->as, idx, (uint64_t)hal_clock_wall_ms(), 1);
}

/* --- headroom guard events ------------------------------------------------------------ */

static void on_blocked(void *arg, const struct autoscale_blocked *b)
{
	struct autoscaler *s = arg;
	int i = find_dep(s, b->name);
	if (i < 0)
		return;
	struct sdep *e = &s->dep[i];
	struct blocked_state *k = &e->blk;
	uint64_t now = loop_now_ms(s->deps.loop);
	e->blocked_total++;
	bool same = k->active && k->replicas == b->replicas && k->wanted == b->wanted && k->granted == b->granted &&
		    k->resource == b->resource;
	if (same && now - k->last_emit_ms < SCALER_BLOCKED_REPEAT_S * 1000ull) {
		k->suppressed++;
		return;
	}
	events_emit(s->deps.events, "scale_blocked",
		    "{\"deployment\":\"%s\",\"class\":\"%s\",\"resource\":\"%s\",\"replicas\":%u,\"wanted\":%u,"
		    "\"granted\":%u,\"mem_per_replica_bytes\":%" PRIu64 ",\"mem_projected_bytes\":%" PRIu64
		    ",\"mem_ceiling_bytes\":%" PRIu64 ",\"cpu_per_replica_cores\":%.3f,\"cpu_projected_cores\":%.3f,"
		    "\"cpu_ceiling_cores\":%.3f,\"suppressed\":%" PRIu64 "}",
		    b->name, sla_class_name(b->cls), b->resource ? b->resource : "none", b->replicas, b->wanted,
		    b->granted, b->mem_per_replica_bytes, b->mem_projected_bytes, b->mem_ceiling_bytes,
		    b->cpu_per_replica_cores, b->cpu_projected_cores, b->cpu_ceiling_cores, k->suppressed);
	k->active = true;
	k->replicas = b->replicas;
	k->wanted = b->wanted;
	k->granted = b->granted;
	k->resource = b->resource;
	k->last_emit_ms = now;
	k->suppressed = 0;
}

/* --- evaluation ------------------------------------------------------------------------ */

static void usage_of(struct autoscaler *s, const char *name, uint64_t since_ms, struct autoscale_window *w)
{
	if (!s->deps.metrics)
		return;
	unsigned nr = supervisor_ready_replicas(s->deps.sup, name, s->reps, DEPLOY_MAX_REPLICAS);
	double cpu = 0;
	uint64_t mem = 0;
	bool any = false;
	for (unsigned r = 0; r < nr; r++) {
		unsigned k = sampler_ctr_read(s->deps.metrics, name, s->reps[r].slot, s->ctr, CONFIG_METRIC_RING_LEN);
		double c = 0;
		uint64_t m = 0;
		if (autoscaler_replica_usage(s->ctr, k, since_ms, &c, &m)) {
			cpu += c;
			mem += m;
			any = true;
		}
	}
	if (any) {
		w->cpu_cores = cpu;
		w->mem_bytes = mem;
	}
}

void autoscaler_evaluate(struct autoscaler *s)
{
	uint64_t now_ms = loop_now_ms(s->deps.loop);
	uint64_t wall_ms = (uint64_t)hal_clock_wall_ms();
	uint64_t since_ms = s->last_eval_ms;
	sync_deployments(s, wall_ms);

	struct autoscale_node node;
	unsigned nn = s->deps.metrics ? sampler_node_read(s->deps.metrics, s->node, CONFIG_METRIC_RING_LEN) : 0;
	if (autoscaler_node_usage(s->node, nn, since_ms, &node) < 0) {
		log_dbg("event=evaluation_skipped reason=no_node_reading");
		return;
	}
	for (int i = 0; i < DEPLOY_MAX; i++) {
		struct sdep *e = &s->dep[i];
		if (!e->used)
			continue;
		struct sup_status st;
		if (supervisor_status(s->deps.sup, e->ad.name, &st) < 0) {
			autoscaler_window_build(NULL, NULL, &s->w[i]);
			continue;
		}
		struct sched_window sw;
		int model = s->deps.dispatch ? dispatch_model_find(s->deps.dispatch, e->ad.name) : -ENOENT;
		bool have = model >= 0 && dispatch_window_take(s->deps.dispatch, model, loop_now_us(s->deps.loop), &sw) == 0;
		autoscaler_window_build(have ? &sw : NULL, &st, &s->w[i]);
		if (s->w[i].service_ms > 0)
			e->service_ms = s->w[i].service_ms;
		else
			s->w[i].service_ms = e->service_ms;
		usage_of(s, e->ad.name, since_ms, &s->w[i]);
	}
	autoscale_evaluate(s->as, now_ms, wall_ms, s->w, &node, s->out);
	s->evaluations++;
	for (int i = 0; i < DEPLOY_MAX; i++) {
		struct sdep *e = &s->dep[i];
		if (!e->used)
			continue;
		const struct autoscale_decision *o = &s->out[i];
		e->last = *o;
		e->have_decision = true;
		e->replicas = s->w[i].replicas;
		e->ready = s->w[i].replicas_ready;
		e->startup_ms = s->w[i].startup_ms;
		if (o->reason != AUTOSCALE_BLOCKED && o->reason != AUTOSCALE_PARTIAL)
			e->blk.active = false;
		if (o->replicas == s->w[i].replicas)
			continue;
		int rc = supervisor_set_replicas(s->deps.sup, e->ad.name, o->replicas);
		if (rc)
			log_wrn("event=scale_not_applied deployment=%s to=%u err=%s", e->ad.name, o->replicas, strerror(-rc));
	}
	s->last_eval_ms = now_ms;
	if (now_ms - s->last_save_ms >= CONFIG_FORECAST_SAVE_S * 1000ull) {
		save_all(s);
		s->last_save_ms = now_ms;
	}
}

static void on_timer(void *arg) { autoscaler_evaluate(arg); }

/* --- life cycle --------------------------------------------------------------------------- */

struct autoscaler *autoscaler_create(const struct autoscaler_deps *deps, const struct berth_config *cfg)
{
	if (!deps->loop || !deps->sup)
		return NULL;
	struct autoscaler *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->deps = *deps;
	memset(s->model_map, -1, sizeof(s->model_map));
	struct dispatch_load ld = { .slots = hal_sys_ncpu() };
	if (deps->dispatch)
		dispatch_load(deps->dispatch, loop_now_us(deps->loop), &ld);
	unsigned slots = ld.slots;
	autoscale_params_from_config(&s->p, cfg, slots);
	struct autoscale_events ev = { .blocked = on_blocked, .arg = s };
	s->as = autoscale_create(&s->p, &ev);
	if (!s->as)
		goto errout;
	if (s->p.forecast) {
		/* Every forecaster has the same bucket and season: one blob size. */
		struct forecast_params fp = { .bucket_s = s->p.bucket_s, .season_s = s->p.season_s, .horizon = 1,
					      .alpha = 0, .beta = -1, .gamma = -1 };
		struct forecast *probe = forecast_create(&fp, 0);
		if (!probe)
			goto errout;
		s->blob_size = forecast_blob_size(probe);
		forecast_destroy(probe);
		s->blob = malloc(s->blob_size);
		s->hex = malloc(2 * s->blob_size + 1);
		if (!s->blob || !s->hex)
			goto errout;
	}
	s->last_save_ms = loop_now_ms(deps->loop);
	loop_timer_init(&s->timer, on_timer, s);
	uint64_t period_ms = (uint64_t)s->p.interval_s * 1000u;
	if (loop_timer_start(deps->loop, &s->timer, period_ms, period_ms) < 0)
		goto errout;
	if (deps->dispatch)
		dispatch_set_arrival_fn(deps->dispatch, on_arrival, s);
	sync_deployments(s, (uint64_t)hal_clock_wall_ms()); /* the desired state applied at boot */
	log_inf("event=autoscaler_started interval_s=%u predictive=%d forecast=%d slots=%u cooldown_s=%u "
		"cpu_ceiling_pct=%u mem_ceiling_pct=%u",
		s->p.interval_s, s->p.predictive, s->p.forecast, s->p.slots, s->p.cooldown_s, s->p.cpu_ceiling_pct,
		s->p.mem_ceiling_pct);
	return s;
errout:
	log_err("event=autoscaler_not_started");
	autoscaler_destroy(s);
	return NULL;
}

void autoscaler_destroy(struct autoscaler *s)
{
	if (!s)
		return;
	if (s->deps.dispatch)
		dispatch_set_arrival_fn(s->deps.dispatch, NULL, NULL);
	loop_timer_stop(s->deps.loop, &s->timer);
	if (s->as)
		save_all(s);
	autoscale_destroy(s->as);
	free(s->blob);
	free(s->hex);
	free(s);
}

/* --- telemetry ------------------------------------------------------------------------------ */

void autoscaler_telemetry_source(void *arg, struct collector_buf *b)
{
	struct autoscaler *s = arg;
	collector_buf_printf(b, "{\"predictive\":%s,\"interval_s\":%u,\"evaluations\":%" PRIu64 ",\"deployments\":[",
			     s->p.predictive ? "true" : "false", s->p.interval_s, s->evaluations);
	size_t end = b->len + SCALER_TELEMETRY_BUDGET;
	end = (end > b->cap ? b->cap : end);
	end = end > 64 ? end - 64 : 0;
	unsigned n = 0;
	uint64_t truncated = 0;
	for (int i = 0; i < DEPLOY_MAX; i++) {
		const struct sdep *e = &s->dep[i];
		if (!e->used)
			continue;
		struct forecast_stats fs = { 0 };
		struct forecast *fc = autoscale_forecast(s->as, i);
		if (fc)
			forecast_get_stats(fc, &fs);
		size_t mark = b->len;
		collector_buf_printf(b,
				     "%s{\"name\":\"%s\",\"replicas\":%u,\"ready\":%u,\"decided\":%u,\"reason\":\"%s\","
				     "\"compliance\":%.4f,\"forecast_rps\":%.3f,\"need\":%u,\"service_ms\":%.2f,"
				     "\"startup_ms\":%u,\"mase\":%.3f,\"blocked\":%" PRIu64 "}",
				     n ? "," : "", e->ad.name, e->replicas, e->ready,
				     e->have_decision ? e->last.replicas : e->replicas,
				     autoscale_reason_name(e->have_decision ? e->last.reason : AUTOSCALE_HOLD),
				     e->have_decision ? e->last.compliance : 1.0, e->last.forecast_rps, e->last.need,
				     e->service_ms, e->startup_ms, fs.mase, e->blocked_total);
		if (!b->overflow && b->len <= end) {
			n++;
			continue;
		}
		b->overflow = false;
		b->len = mark;
		b->p[b->len] = '\0';
		truncated++;
	}
	collector_buf_printf(b, "],\"truncated\":%" PRIu64 "}", truncated);
}
