/* agent/infer/dispatch_figures.c - the dispatcher's figures: per-replica stats, the scheduler's counters read through the dispatcher, /metrics and /v1/state renderings. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/infer/dispatch.h"
#include "agent/infer/dispatch_impl.h"
#include "hal/clock.h"

/* --- figures ------------------------------------------------------------- */

int dispatch_replica_stats(const struct dispatch *d, int model, unsigned index, struct dispatch_replica_stats *st)
{
	const struct model *m = model_at(d, model);
	if (!m || index >= DEPLOY_MAX_REPLICAS || !m->rep[index].present)
		return -ENOENT;
	*st = m->rep[index].st;
	struct sched_replica_info ri;
	st->inflight = sched_replica_get(d->sched, model, (int)index, &ri) == 0 ? ri.inflight : 0;
	return 0;
}

/* --- the scheduler's figures, read through the dispatcher --------------------
 * Everything outside agent/infer/ reads the scheduler here, never through
 * dispatch_sched(). */

const char *dispatch_model_name(const struct dispatch *d, int model)
{
	return d ? sched_model_name(d->sched, model) : NULL;
}

int dispatch_model_stats(const struct dispatch *d, int model, struct sched_model_stats *out)
{
	return d ? sched_model_stats(d->sched, model, out) : -ENOENT;
}

int dispatch_window_take(struct dispatch *d, int model, uint64_t now_us, struct sched_window *out)
{
	return d ? sched_window_take(d->sched, model, now_us, out) : -ENOENT;
}

void dispatch_load(const struct dispatch *d, uint64_t now_us, struct dispatch_load *out)
{
	out->policy = sched_policy_name(sched_policy(d->sched));
	out->slots = sched_slots(d->sched);
	out->slots_busy = sched_slots_busy(d->sched);
	out->backlog_ms = sched_backlog_ms(d->sched, now_us);
}

bool dispatch_replica_paused(const struct dispatch *d, int model, unsigned index)
{
	struct sched_replica_info ri;
	return d && sched_replica_get(d->sched, model, (int)index, &ri) == 0 && ri.paused;
}

void dispatch_class_totals(const struct dispatch *d, struct sched_class_stats out[SLA_NCLASSES])
{
	sched_class_totals(d ? d->sched : NULL, out);
}

double dispatch_model_compliance(const struct dispatch *d, int model)
{
	return d ? sched_model_compliance(d->sched, model) : NAN;
}

/* snprintf that keeps counting past the end, so the caller learns the size needed. */
struct out {
	char *buf;
	size_t len, off;
};

__attribute__((format(printf, 2, 3)))
static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->off < o->len ? o->buf + o->off : NULL, o->off < o->len ? o->len - o->off : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->off += (size_t)n;
}

static void help(struct out *o, const char *name, const char *type, const char *text)
{
	outf(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static const char *class_name(unsigned c)
{
	return sla_class_name((enum sla_class)c);
}

/* The scheduler's per model and class counters, gauges and histograms. */
static void render_request_metrics(const struct dispatch *d, struct out *op, const struct sched_model_stats *ms)
{
	struct out o = *op;

#define EACH_MC for (int m = 0; m < DEPLOY_MAX; m++) if (d->models[m].used) for (unsigned c = 0; c < SLA_NCLASSES; c++)
#define LBL "model=\"%s\",class=\"%s\""
#define LBLV d->models[m].name, class_name(c)
#define COUNTER(name, text, field)                                                                     \
	do {                                                                                           \
		help(&o, name, "counter", text);                                                       \
		EACH_MC outf(&o, name "{" LBL "} %llu\n", LBLV, (unsigned long long)ms[m].cls[c].field); \
	} while (0)

	COUNTER("berth_requests_total", "Inference requests offered (served, refused or failed).", offered);
	COUNTER("berth_requests_on_time_total", "Requests answered by a replica by their deadline.", on_time);
	COUNTER("berth_requests_late_total", "Requests answered by a replica after their deadline.", late);
	COUNTER("berth_requests_failed_total", "Requests whose replica failed, timed out or answered 5xx.", failed);
	COUNTER("berth_requests_cancelled_total", "Requests withdrawn before an answer.", cancelled);
	COUNTER("berth_requests_retried_total", "Requests sent again to another replica after a connection failure.", retries);
	COUNTER("berth_requests_preempted_total", "Times a request's replica was paused for an urgent request.", preempted);

	help(&o, "berth_requests_refused_total", "counter", "Requests refused at once (503), by reason.");
	EACH_MC for (unsigned r = 1; r < SCHED_NREFUSALS; r++)
		outf(&o, "berth_requests_refused_total{" LBL ",reason=\"%s\"} %llu\n", LBLV,
		     sched_refusal_name((enum sched_refusal)r), (unsigned long long)ms[m].cls[c].refused[r]);

	help(&o, "berth_queue_depth", "gauge", "Requests waiting in the scheduler's queue.");
	EACH_MC outf(&o, "berth_queue_depth{" LBL "} %u\n", LBLV, ms[m].cls[c].queued);
	help(&o, "berth_requests_running", "gauge", "Requests at a replica now.");
	EACH_MC outf(&o, "berth_requests_running{" LBL "} %u\n", LBLV, ms[m].cls[c].running);

	help(&o, "berth_request_latency_seconds", "histogram",
	     "End-to-end latency (arrival to answer) of requests answered by a replica.");
	EACH_MC {
		const struct sched_class_stats *st = &ms[m].cls[c];
		uint64_t cum = 0;
		for (unsigned b = 0; b < SCHED_LAT_NBUCKETS; b++) {
			cum += st->lat_bucket[b];
			if (sched_lat_bounds_us[b] == UINT64_MAX)
				outf(&o, "berth_request_latency_seconds_bucket{" LBL ",le=\"+Inf\"} %llu\n", LBLV,
				     (unsigned long long)cum);
			else
				outf(&o, "berth_request_latency_seconds_bucket{" LBL ",le=\"%g\"} %llu\n", LBLV,
				     (double)sched_lat_bounds_us[b] / 1e6, (unsigned long long)cum);
		}
		outf(&o, "berth_request_latency_seconds_sum{" LBL "} %.6f\n", LBLV, (double)st->lat_sum_us / 1e6);
		outf(&o, "berth_request_latency_seconds_count{" LBL "} %llu\n", LBLV, (unsigned long long)cum);
	}

	/* A model and class with no decided request has no compliance (the state JSON says
	 * null): no series rather than a made-up 1. */
	help(&o, "berth_sla_compliance", "gauge",
	     "Share of decided requests answered on time (refusals count as misses); absent when none was decided.");
	EACH_MC if (ms[m].cls[c].on_time + ms[m].cls[c].late + ms[m].cls[c].failed + ms[m].cls[c].cancelled +
		    sched_refused_total(&ms[m].cls[c]))
		outf(&o, "berth_sla_compliance{" LBL "} %.6f\n", LBLV, sched_compliance(&ms[m].cls[c]));
#undef COUNTER
#undef LBLV
#undef LBL
#undef EACH_MC
	*op = o;
}

/* Estimates, the replicas' readiness, breakers and failures, and the slots. */
static void render_replica_metrics(const struct dispatch *d, struct out *op)
{
	struct out o = *op;

	help(&o, "berth_service_estimate_seconds", "gauge", "Service time the scheduler expects of one request.");
	for (int m = 0; m < DEPLOY_MAX; m++)
		if (d->models[m].used)
			outf(&o, "berth_service_estimate_seconds{model=\"%s\"} %.6f\n", d->models[m].name,
			     (double)sched_estimate_us(d->sched, m) / 1e6);

	help(&o, "berth_replica_ready", "gauge", "1 when the replica passes its readiness probe.");
	for (int m = 0; m < DEPLOY_MAX; m++)
		for (unsigned i = 0; d->models[m].used && i < DEPLOY_MAX_REPLICAS; i++)
			if (d->models[m].rep[i].present)
				outf(&o, "berth_replica_ready{model=\"%s\",replica=\"%u\"} %d\n", d->models[m].name, i,
				     d->models[m].rep[i].ready);
	help(&o, "berth_replica_breaker_open", "gauge", "1 while the replica's circuit breaker is open or half-open.");
	for (int m = 0; m < DEPLOY_MAX; m++)
		for (unsigned i = 0; d->models[m].used && i < DEPLOY_MAX_REPLICAS; i++)
			if (d->models[m].rep[i].present)
				outf(&o, "berth_replica_breaker_open{model=\"%s\",replica=\"%u\"} %d\n", d->models[m].name,
				     i, d->models[m].rep[i].st.breaker_open);
	help(&o, "berth_replica_failures_total", "counter", "Connection errors, timeouts and 5xx answers of the replica.");
	for (int m = 0; m < DEPLOY_MAX; m++)
		for (unsigned i = 0; d->models[m].used && i < DEPLOY_MAX_REPLICAS; i++)
			if (d->models[m].rep[i].present)
				outf(&o, "berth_replica_failures_total{model=\"%s\",replica=\"%u\"} %llu\n",
				     d->models[m].name, i, (unsigned long long)d->models[m].rep[i].st.failures);

	help(&o, "berth_sched_slots", "gauge", "Compute slots of the scheduler.");
	outf(&o, "berth_sched_slots %u\n", sched_slots(d->sched));
	help(&o, "berth_sched_slots_busy", "gauge", "Compute slots in use.");
	outf(&o, "berth_sched_slots_busy %u\n", sched_slots_busy(d->sched));
	*op = o;
}

size_t dispatch_render_metrics(const struct dispatch *d, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };
	struct sched_model_stats ms[DEPLOY_MAX];
	for (int m = 0; m < DEPLOY_MAX; m++)
		if (!d->models[m].used || sched_model_stats(d->sched, m, &ms[m]) < 0)
			memset(&ms[m], 0, sizeof(ms[m]));
	render_request_metrics(d, &o, ms);
	render_replica_metrics(d, &o);
	if (len && o.off < len)
		buf[o.off] = '\0';
	return o.off;
}

static void json_name(struct out *o, const char *s)
{
	/* Model names are [a-z0-9-] (validated by the spec parser); escape
	 * anyway so a static replica name cannot break the document. */
	outf(o, "\"");
	for (; *s; s++)
		outf(o, (*s == '"' || *s == '\\') ? "\\%c" : ((unsigned char)*s < 0x20 ? "?" : "%c"), *s);
	outf(o, "\"");
}

size_t dispatch_render_state(const struct dispatch *d, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };
	uint64_t now = hal_clock_now_us();
	outf(&o, "{\"schema\":1,\"scheduler\":{\"policy\":\"%s\",\"slots\":%u,\"slots_busy\":%u,\"backlog_ms\":%u},",
	     sched_policy_name(sched_policy(d->sched)), sched_slots(d->sched), sched_slots_busy(d->sched),
	     sched_backlog_ms(d->sched, now));
	outf(&o, "\"deployments\":[");
	bool first = true;
	for (int m = 0; m < DEPLOY_MAX; m++) {
		const struct model *md = &d->models[m];
		if (!md->used)
			continue;
		struct sched_model_stats ms;
		if (sched_model_stats(d->sched, m, &ms) < 0)
			memset(&ms, 0, sizeof(ms));
		outf(&o, "%s{\"name\":", first ? "" : ",");
		json_name(&o, md->name);
		first = false;
		if (md->withdrawn)
			outf(&o, ",\"withdrawn\":true");
		outf(&o, ",\"ready\":%s,\"default_deadline_ms\":%u,\"default_class\":\"%s\",\"concurrency\":%u,"
			 "\"estimate_us\":%u,\"ewma_us\":%u,\"classes\":{",
		     dispatch_model_ready(d, m) ? "true" : "false", md->deadline_ms, class_name(md->cls),
		     md->concurrency, sched_estimate_us(d->sched, m), sched_ewma_us(d->sched, m));
		for (unsigned c = 0; c < SLA_NCLASSES; c++) {
			const struct sched_class_stats *st = &ms.cls[c];
			outf(&o, "%s\"%s\":{\"requests\":%llu,\"on_time\":%llu,\"late\":%llu,\"failed\":%llu,"
				 "\"refused\":%llu,\"queued\":%u,\"running\":%u,\"compliance\":%.4f}",
			     c ? "," : "", class_name(c), (unsigned long long)st->offered,
			     (unsigned long long)st->on_time, (unsigned long long)st->late,
			     (unsigned long long)st->failed, (unsigned long long)sched_refused_total(st), st->queued,
			     st->running, sched_compliance(st));
		}
		outf(&o, "},\"replicas\":[");
		bool rfirst = true;
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
			const struct replica *rp = &md->rep[i];
			if (!rp->present)
				continue;
			struct sched_replica_info ri;
			if (sched_replica_get(d->sched, m, (int)i, &ri) < 0)
				memset(&ri, 0, sizeof(ri));
			static const char *const brk[] = { "closed", "open", "half_open", "probing" };
			outf(&o, "%s{\"index\":%u,\"address\":\"%s:%u\",\"ready\":%s,\"draining\":%s,\"paused\":%s,"
				 "\"breaker\":\"%s\",\"inflight\":%u,\"sent\":%llu,\"failures\":%llu}",
			     rfirst ? "" : ",", i, rp->host, rp->port, rp->ready ? "true" : "false",
			     ri.draining ? "true" : "false", ri.paused ? "true" : "false", brk[rp->brk], ri.inflight,
			     (unsigned long long)rp->st.sent, (unsigned long long)rp->st.failures);
			rfirst = false;
		}
		outf(&o, "]}");
	}
	outf(&o, "]}");
	if (len && o.off < len)
		buf[o.off] = '\0';
	return o.off;
}
