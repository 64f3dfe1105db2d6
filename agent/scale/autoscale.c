/* agent/scale/autoscale.c - reactive SLA rule, forecast pre-scaling and the node headroom guard. */
#include "agent/scale/autoscale.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/config.h"
#include "agent/model/deploy.h"
#include "agent/model/sla.h"
#include "agent/scale/forecast.h"
#include "agent/base/log.h"

#define LOG_TAG "autoscale"

struct as_dep {
	bool used;
	struct autoscale_deploy d;
	struct forecast *fc;
	bool above;                  /* compliance above target_high since above_since_ms */
	uint64_t above_since_ms;
	uint64_t last_up_ms;         /* last granted scale-up; 0 never */
	uint32_t startup_ms;         /* last measured, else spec */
	double cpu_per_replica;      /* last measured; < 0 unknown */
	uint64_t mem_per_replica;    /* last measured; 0 unknown */
};

struct autoscale {
	struct autoscale_params p;
	struct autoscale_events ev;
	struct as_dep dep[DEPLOY_MAX];
};

const char *autoscale_reason_name(enum autoscale_reason r)
{
	switch (r) {
	case AUTOSCALE_HOLD: return "hold";
	case AUTOSCALE_UP_SLA: return "up_sla";
	case AUTOSCALE_UP_FORECAST: return "up_forecast";
	case AUTOSCALE_DOWN: return "down";
	case AUTOSCALE_BLOCKED: return "blocked";
	case AUTOSCALE_PARTIAL: return "partial";
	}
	return "?";
}

void autoscale_params_from_config(struct autoscale_params *p, const struct berth_config *cfg, unsigned slots)
{
	memset(p, 0, sizeof(*p));
	p->interval_s = (uint32_t)cfg->autoscale.interval_s;
	p->target_low = cfg->autoscale.target_low;
	p->target_high = cfg->autoscale.target_high;
	p->cooldown_s = (uint32_t)cfg->autoscale.cooldown_s;
	p->cpu_ceiling_pct = (uint32_t)cfg->autoscale.cpu_ceiling_pct;
	p->mem_ceiling_pct = (uint32_t)cfg->autoscale.mem_ceiling_pct;
	p->forecast = IS_ENABLED(CONFIG_FORECAST);
	p->predictive = p->forecast && cfg->autoscale.predictive;
	p->bucket_s = (uint32_t)cfg->autoscale.bucket_s;
	p->season_s = 86400;
	p->util_pct = CONFIG_AUTOSCALE_UTIL_PCT;
	p->slots = slots;
}

void autoscale_deploy_from_spec(struct autoscale_deploy *d, const struct deploy_spec *s)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->name, s->name, sizeof(d->name));
	d->name[sizeof(d->name) - 1] = '\0';
	d->cls = s->sla_class;
	d->replicas_min = s->replicas_min;
	d->replicas_max = s->replicas_max;
	d->concurrency = s->concurrency ? s->concurrency : 1;
	d->cpu_nano = s->cpu_nano;
	d->mem_bytes = s->mem_bytes;
	d->startup_ms = s->startup_ms;
}

struct autoscale *autoscale_create(const struct autoscale_params *p, const struct autoscale_events *ev)
{
	if (!p || p->interval_s == 0 || p->slots == 0 || p->bucket_s == 0 || p->util_pct == 0 ||
	    p->target_low < 0 || p->target_high > 1 || p->target_low > p->target_high ||
	    p->cpu_ceiling_pct == 0 || p->mem_ceiling_pct == 0) {
		log_err("event=bad_params");
		return NULL;
	}
	struct autoscale *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->p = *p;
	if (ev)
		a->ev = *ev;
	return a;
}

void autoscale_destroy(struct autoscale *a)
{
	if (!a)
		return;
	for (int i = 0; i < DEPLOY_MAX; i++)
		forecast_destroy(a->dep[i].fc);
	free(a);
}

static uint32_t horizon_ms(const struct autoscale *a, const struct as_dep *e)
{
	return e->startup_ms + a->p.interval_s * 1000u;
}

static uint32_t horizon_buckets(const struct autoscale *a, const struct as_dep *e)
{
	uint32_t b = a->p.bucket_s * 1000u;
	return (horizon_ms(a, e) + b - 1) / b;
}

int autoscale_add(struct autoscale *a, const struct autoscale_deploy *d, uint64_t wall_ms)
{
	if (!d->name[0] || d->concurrency == 0 || d->replicas_min > d->replicas_max)
		return -EINVAL;
	int slot = -1;
	for (int i = 0; i < DEPLOY_MAX; i++) {
		if (a->dep[i].used && strcmp(a->dep[i].d.name, d->name) == 0) {
			a->dep[i].d = *d;
			return i;
		}
		if (!a->dep[i].used && slot < 0)
			slot = i;
	}
	if (slot < 0)
		return -ENOSPC;
	struct as_dep *e = &a->dep[slot];
	memset(e, 0, sizeof(*e));
	e->d = *d;
	e->startup_ms = d->startup_ms;
	e->cpu_per_replica = -1;
	if (a->p.forecast) {
		struct forecast_params fp = { .bucket_s = a->p.bucket_s, .season_s = a->p.season_s,
					      .horizon = horizon_buckets(a, e), .alpha = 0, .beta = -1,
					      .gamma = -1 };
		e->fc = forecast_create(&fp, wall_ms);
		if (!e->fc)
			return -ENOMEM;
	}
	e->used = true;
	return slot;
}

void autoscale_remove(struct autoscale *a, int idx)
{
	if (idx < 0 || idx >= DEPLOY_MAX || !a->dep[idx].used)
		return;
	forecast_destroy(a->dep[idx].fc);
	memset(&a->dep[idx], 0, sizeof(a->dep[idx]));
}

void autoscale_observe(struct autoscale *a, int idx, uint64_t wall_ms, uint32_t n)
{
	if (idx < 0 || idx >= DEPLOY_MAX || !a->dep[idx].used || !a->dep[idx].fc)
		return;
	forecast_observe(a->dep[idx].fc, wall_ms, n);
}

struct forecast *autoscale_forecast(struct autoscale *a, int idx)
{
	if (idx < 0 || idx >= DEPLOY_MAX || !a->dep[idx].used)
		return NULL;
	return a->dep[idx].fc;
}

static uint32_t cap_of(const struct autoscale *a, const struct as_dep *e)
{
	uint32_t c = (a->p.slots + e->d.concurrency - 1) / e->d.concurrency;
	if (c > e->d.replicas_max)
		c = e->d.replicas_max;
	if (c < e->d.replicas_min)
		c = e->d.replicas_min;
	return c;
}

static uint32_t clampu(uint32_t v, uint32_t lo, uint32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Reactive and predictive wants of one deployment, before the guard. */
static void decide(struct autoscale *a, struct as_dep *e, uint64_t now_ms, uint64_t wall_ms,
		   const struct autoscale_window *w, struct autoscale_decision *o)
{
	uint32_t cur = w->replicas;
	uint32_t cap = cap_of(a, e);
	memset(o, 0, sizeof(*o));
	o->compliance = w->offered ? (double)w->on_time / (double)w->offered : 1.0;
	o->replicas = cur;
	o->reason = AUTOSCALE_HOLD;

	if (w->startup_ms)
		e->startup_ms = w->startup_ms;
	if (e->fc) {
		forecast_set_horizon(e->fc, horizon_buckets(a, e));
		forecast_advance(e->fc, wall_ms);
		/* One bucket more than the horizon: the open bucket is partly gone. */
		o->forecast_rps = forecast_peak_rate(e->fc, horizon_buckets(a, e) + 1);
		if (w->service_ms > 0) {
			double cap_rps = e->d.concurrency * 1000.0 / w->service_ms * a->p.util_pct / 100.0;
			double need = ceil(o->forecast_rps / cap_rps - 1e-9);
			o->need = need > cap ? cap : (uint32_t)need;
		}
	}

	uint32_t want = cur;
	bool starting = w->replicas_ready < cur &&
			now_ms - e->last_up_ms < 2ull * e->startup_ms + a->p.interval_s * 1000ull;
	if (o->compliance < a->p.target_low) {
		e->above = false;
		if (!starting) {
			uint32_t up = cur ? cur * 2 : 1;
			want = clampu(up, e->d.replicas_min, cap > cur ? cap : cur);
			if (want > cur)
				o->reason = AUTOSCALE_UP_SLA;
		}
	} else if (o->compliance > a->p.target_high) {
		if (!e->above) {
			/* The window that was above began one interval ago. */
			e->above = true;
			e->above_since_ms = now_ms - a->p.interval_s * 1000ull;
		}
		if (now_ms - e->above_since_ms >= a->p.cooldown_s * 1000ull && cur > e->d.replicas_min) {
			uint32_t floor_ = e->d.replicas_min;
			if (a->p.predictive && o->need > floor_)
				floor_ = o->need;
			if (cur - 1 >= floor_) {
				want = cur - 1;
				o->reason = AUTOSCALE_DOWN;
				e->above_since_ms = now_ms;
			}
		}
	} else {
		e->above = false;
	}
	if (a->p.predictive && o->need > want && o->need > cur) {
		want = o->need;
		if (o->reason != AUTOSCALE_UP_SLA)
			o->reason = AUTOSCALE_UP_FORECAST;
	}
	if (want < e->d.replicas_min)
		want = e->d.replicas_min;
	o->wanted = want;
	o->replicas = want;
	if (want > cur)
		e->above = false;
}

static void measure(struct as_dep *e, const struct autoscale_window *w)
{
	if (w->replicas_ready == 0)
		return;
	if (w->mem_bytes)
		e->mem_per_replica = w->mem_bytes / w->replicas_ready;
	if (w->cpu_cores >= 0 && w->offered)
		e->cpu_per_replica = w->cpu_cores / w->replicas_ready;
}

static uint64_t mem_per(const struct as_dep *e) { return e->mem_per_replica ? e->mem_per_replica : e->d.mem_bytes; }
static double cpu_per(const struct as_dep *e)
{
	return e->cpu_per_replica >= 0 ? e->cpu_per_replica : (double)e->d.cpu_nano / 1e9;
}

/* Urgent first, then the worst compliance (insertion sort of the few
 * deployments that want more replicas). */
static void sort_scale_ups(const struct autoscale *a, const struct autoscale_decision *out, int *order, int nup)
{
	for (int i = 1; i < nup; i++) {
		int k = order[i], j = i - 1;
		while (j >= 0) {
			const struct as_dep *x = &a->dep[order[j]], *y = &a->dep[k];
			bool after = x->d.cls > y->d.cls ||
				     (x->d.cls == y->d.cls && out[order[j]].compliance > out[k].compliance);
			if (!after)
				break;
			order[j + 1] = order[j];
			j--;
		}
		order[j + 1] = k;
	}
}

/* e got granted of the replicas it wanted beyond cur: the node's ceiling
 * (hit) stopped the rest. Logs it and tells the blocked hook. */
static void report_blocked(struct autoscale *a, const struct as_dep *e, struct autoscale_decision *o, const char *hit,
			   uint32_t cur, uint32_t granted, double mem_proj, double mem_ceil, double cpu_proj,
			   double cpu_ceil)
{
	double mp = (double)mem_per(e), cp = cpu_per(e);
	o->reason = granted ? AUTOSCALE_PARTIAL : AUTOSCALE_BLOCKED;
	struct autoscale_blocked b = {
		.name = e->d.name, .cls = e->d.cls, .resource = hit,
		.replicas = cur, .wanted = o->wanted, .granted = granted,
		.mem_per_replica_bytes = (uint64_t)mp,
		.mem_projected_bytes = (uint64_t)(mem_proj + mp * (o->wanted - cur - granted)),
		.mem_ceiling_bytes = (uint64_t)mem_ceil,
		.cpu_per_replica_cores = cp,
		.cpu_projected_cores = cpu_proj + cp * (o->wanted - cur - granted),
		.cpu_ceiling_cores = cpu_ceil,
	};
	log_wrn("event=scale_blocked deployment=%s class=%s resource=%s replicas=%u wanted=%u "
		"granted=%u mem_projected=%llu mem_ceiling=%llu cpu_projected=%.2f cpu_ceiling=%.2f",
		b.name, sla_class_name(b.cls), b.resource, b.replicas, b.wanted, b.granted,
		(unsigned long long)b.mem_projected_bytes, (unsigned long long)b.mem_ceiling_bytes,
		b.cpu_projected_cores, b.cpu_ceiling_cores);
	if (a->ev.blocked)
		a->ev.blocked(a->ev.arg, &b);
}

void autoscale_evaluate(struct autoscale *a, uint64_t now_ms, uint64_t wall_ms, const struct autoscale_window *w,
			const struct autoscale_node *node, struct autoscale_decision *out)
{
	int order[DEPLOY_MAX];
	int nup = 0;
	/* Projection starts from the node as measured plus replicas that were
	 * decided but are not ready yet (not in the measurement). */
	double mem_proj = (double)node->mem_used_bytes;
	double cpu_proj = node->cpu_used_cores;
	for (int i = 0; i < DEPLOY_MAX; i++) {
		struct as_dep *e = &a->dep[i];
		if (!e->used)
			continue;
		measure(e, &w[i]);
		decide(a, e, now_ms, wall_ms, &w[i], &out[i]);
		if (w[i].replicas > w[i].replicas_ready) {
			uint32_t pending = w[i].replicas - w[i].replicas_ready;
			mem_proj += (double)pending * (double)mem_per(e);
			cpu_proj += pending * cpu_per(e);
		}
		if (out[i].wanted > w[i].replicas)
			order[nup++] = i;
	}
	sort_scale_ups(a, out, order, nup);
	double mem_ceil = (double)node->mem_total_bytes * a->p.mem_ceiling_pct / 100.0;
	double cpu_ceil = (double)node->ncpu * a->p.cpu_ceiling_pct / 100.0;
	for (int n = 0; n < nup; n++) {
		int i = order[n];
		struct as_dep *e = &a->dep[i];
		struct autoscale_decision *o = &out[i];
		uint32_t cur = w[i].replicas, add = o->wanted - cur, granted = 0;
		double mp = (double)mem_per(e), cp = cpu_per(e);
		const char *hit = NULL;
		while (granted < add) {
			if (mp > 0 && mem_proj + mp > mem_ceil) {
				hit = "memory";
				break;
			}
			if (cp > 0 && cpu_proj + cp > cpu_ceil) {
				hit = "cpu";
				break;
			}
			mem_proj += mp;
			cpu_proj += cp;
			granted++;
		}
		o->replicas = cur + granted;
		if (granted)
			e->last_up_ms = now_ms;
		if (granted < add)
			report_blocked(a, e, o, hit, cur, granted, mem_proj, mem_ceil, cpu_proj, cpu_ceil);
	}
	for (int i = 0; i < DEPLOY_MAX; i++) {
		if (!a->dep[i].used || out[i].replicas == w[i].replicas)
			continue;
		log_inf("event=scale deployment=%s from=%u to=%u reason=%s compliance=%.3f forecast_rps=%.2f need=%u",
			a->dep[i].d.name, w[i].replicas, out[i].replicas, autoscale_reason_name(out[i].reason),
			out[i].compliance, out[i].forecast_rps, out[i].need);
	}
}
