/* agent/console/reported.c - the "containers" and "scheduler" telemetry sources, and SLA sums for the reported state. */
#include "agent/console/reported.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/infer/dispatch.h"
#include "agent/telemetry/events.h"
#include "agent/telemetry/sampler.h"
#include "agent/telemetry/collector.h"
#include "hal/clock.h"

struct reported {
	struct sampler *m;
	struct dispatch *d;
	unsigned interval_ms;
	uint64_t truncated_containers;   /* entries left out, since start */
	uint64_t truncated_scheduler;
	/* Latency histograms at the previous row, for per-row percentiles. */
	uint64_t prev_lat[SCHED_MAX_MODELS][SLA_NCLASSES][SCHED_LAT_NBUCKETS];
};

struct reported *reported_create(struct sampler *m, struct dispatch *d, unsigned interval_ms)
{
	struct reported *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->m = m;
	f->d = d;
	f->interval_ms = interval_ms ? interval_ms : CONFIG_METRIC_INTERVAL_MS;
	return f;
}

void reported_destroy(struct reported *f) { free(f); }
void reported_set_interval(struct reported *f, unsigned interval_ms)
{
	f->interval_ms = interval_ms ? interval_ms : CONFIG_METRIC_INTERVAL_MS;
}

/* --- pure helpers ---------------------------------------------------------- */

double reported_percentile_ms(const uint64_t counts[SCHED_LAT_NBUCKETS], double q)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < SCHED_LAT_NBUCKETS; i++)
		n += counts[i];
	if (n == 0)
		return 0;
	double rank = q * (double)n;
	uint64_t below = 0;
	for (unsigned i = 0; i < SCHED_LAT_NBUCKETS; i++) {
		if (!counts[i])
			continue;
		double lo = i ? (double)sched_lat_bounds_us[i - 1] : 0;
		if ((double)(below + counts[i]) >= rank || i == SCHED_LAT_NBUCKETS - 1) {
			if (i == SCHED_LAT_NBUCKETS - 1)
				return lo / 1000.0;
			double hi = (double)sched_lat_bounds_us[i];
			double frac = (rank - (double)below) / (double)counts[i];
			if (frac < 0)
				frac = 0;
			return (lo + (hi - lo) * frac) / 1000.0;
		}
		below += counts[i];
	}
	return 0;
}

uint64_t reported_decided(const struct sched_class_stats *st)
{
	return st->on_time + st->late + st->failed + sched_refused_total(st) + st->cancelled;
}

const char *reported_ratio_json(double r, char *buf, size_t len)
{
	if (!isfinite(r))
		snprintf(buf, len, "null");
	else
		snprintf(buf, len, "%.4f", r);
	return buf;
}

int reported_sla_json(const struct sched_class_stats tot[SLA_NCLASSES], char *buf, size_t len)
{
	size_t o = 0;
	for (unsigned c = 0; c < SLA_NCLASSES; c++) {
		const struct sched_class_stats *t = &tot[c];
		uint64_t decided = reported_decided(t);
		char comp[24];
		reported_ratio_json(decided ? (double)t->on_time / (double)decided : NAN, comp, sizeof(comp));
		int w = snprintf(buf + o, len - o,
				 "%s\"%s\":{\"requests\":%" PRIu64 ",\"on_time\":%" PRIu64 ",\"late\":%" PRIu64
				 ",\"failed\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"compliance\":%s}",
				 c ? "," : "{", sla_class_name((enum sla_class)c), t->offered, t->on_time, t->late,
				 t->failed, sched_refused_total(t), comp);
		if (w < 0 || (size_t)w >= len - o)
			return -ENOSPC;
		o += (size_t)w;
	}
	if (o + 2 > len)
		return -ENOSPC;
	buf[o++] = '}';
	buf[o] = '\0';
	return (int)o;
}

/* --- sources ------------------------------------------------------------------
 * Each entry is written in place and taken back when it passes the source's
 * budget, so a row never loses a whole source to one large table. */

static bool entry_fits(struct collector_buf *b, size_t mark, size_t end)
{
	if (!b->overflow && b->len <= end)
		return true;
	b->overflow = false;
	b->len = mark;
	b->p[b->len] = '\0';
	return false;
}

/* Where a source's entries must end: its budget, less room for the trailer. */
static size_t budget_end(const struct collector_buf *b, size_t budget)
{
	size_t end = b->len + budget;
	if (end > b->cap)
		end = b->cap;
	return end > 64 ? end - 64 : 0;
}

void reported_containers_source(void *arg, struct collector_buf *b)
{
	struct reported *f = arg;
	size_t end = budget_end(b, FIGURES_CONTAINERS_BUDGET);
	uint64_t truncated = 0;
	unsigned n = 0;
	collector_buf_printf(b, "{\"replicas\":[");
	unsigned ns = f->m ? sampler_series_count(f->m) : 0;
	uint64_t now_ms = hal_clock_now_us() / 1000u;
	for (unsigned i = 0; i < ns; i++) {
		struct metric_series_info info;
		struct metric_ctr_sample s;
		if (sampler_series_info(f->m, i, &info) < 0)
			continue;
		/* Only replicas read in the last two intervals: gone ones drop out. */
		if (info.count == 0 || now_ms - info.last_mono_ms > 2ull * f->interval_ms + 500u)
			continue;
		if (sampler_ctr_latest(f->m, info.deployment, info.slot, &s) < 0)
			continue;
		size_t mark = b->len;
		collector_buf_printf(b,
				     "%s{\"deployment\":\"%s\",\"replica\":%u,\"cpu_pct\":%.1f,\"mem_bytes\":%" PRIu64
				     ",\"mem_limit_bytes\":%" PRIu64 ",\"net_rx_bytes\":%" PRIu64 ",\"net_tx_bytes\":%" PRIu64
				     ",\"pids\":%u,\"restarts\":%u,\"ready\":%s,\"live\":%s}",
				     n ? "," : "", info.deployment, info.slot, (double)s.cpu_pct, s.mem_bytes,
				     s.mem_limit_bytes, s.net_rx_bytes, s.net_tx_bytes, s.pids, s.restarts,
				     s.ready ? "true" : "false", s.live ? "true" : "false");
		if (entry_fits(b, mark, end))
			n++;
		else
			truncated++;
	}
	f->truncated_containers += truncated;
	collector_buf_printf(b, "],\"truncated\":%" PRIu64 "}", truncated);
}

static void refused_json(struct collector_buf *b, const struct sched_class_stats *st)
{
	collector_buf_printf(b, "{");
	for (unsigned r = 1; r < SCHED_NREFUSALS; r++)
		collector_buf_printf(b, "%s\"%s\":%" PRIu64, r > 1 ? "," : "", sched_refusal_name((enum sched_refusal)r),
				     st->refused[r]);
	collector_buf_printf(b, "}");
}

void reported_scheduler_source(void *arg, struct collector_buf *b)
{
	struct reported *f = arg;
	if (!f->d) {
		collector_buf_printf(b, "{}");
		return;
	}
	uint64_t now_us = hal_clock_now_us();
	struct dispatch_load ld;
	dispatch_load(f->d, now_us, &ld);
	collector_buf_printf(b, "{\"policy\":\"%s\",\"slots\":%u,\"slots_busy\":%u,\"backlog_ms\":%u,\"models\":[",
			     ld.policy, ld.slots, ld.slots_busy, ld.backlog_ms);
	size_t end = budget_end(b, FIGURES_SCHEDULER_BUDGET);
	uint64_t truncated = 0;
	unsigned n = 0;
	for (int m = 0; m < SCHED_MAX_MODELS; m++) {
		struct sched_model_stats ms;
		const char *name = dispatch_model_name(f->d, m);
		if (!name || dispatch_model_stats(f->d, m, &ms) < 0)
			continue;
		char esc[2 * DEPLOY_NAME_MAX + 8];
		events_json_escape(name, esc, sizeof(esc));
		for (unsigned c = 0; c < SLA_NCLASSES; c++) {
			const struct sched_class_stats *st = &ms.cls[c];
			uint64_t *prev = f->prev_lat[m][c];
			uint64_t win[SCHED_LAT_NBUCKETS], nwin = 0;
			for (unsigned k = 0; k < SCHED_LAT_NBUCKETS; k++) {
				win[k] = st->lat_bucket[k] >= prev[k] ? st->lat_bucket[k] - prev[k] : st->lat_bucket[k];
				nwin += win[k];
				prev[k] = st->lat_bucket[k];
			}
			if (!st->offered && !st->queued && !st->running)
				continue;
			uint64_t decided = reported_decided(st);
			char comp[24];
			reported_ratio_json(decided ? (double)st->on_time / (double)decided : NAN, comp, sizeof(comp));
			size_t mark = b->len;
			collector_buf_printf(b,
					     "%s{\"model\":\"%s\",\"class\":\"%s\",\"requests\":%" PRIu64 ",\"on_time\":%" PRIu64
					     ",\"late\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"cancelled\":%" PRIu64
					     ",\"refused\":",
					     n ? "," : "", esc, sla_class_name((enum sla_class)c), st->offered, st->on_time,
					     st->late, st->failed, st->cancelled);
			refused_json(b, st);
			collector_buf_printf(b,
					     ",\"deadline_misses\":%" PRIu64 ",\"queued\":%u,\"running\":%u,"
					     "\"compliance\":%s,\"latency_n\":%" PRIu64
					     ",\"p50_ms\":%.1f,\"p95_ms\":%.1f,\"p99_ms\":%.1f}",
					     decided - st->on_time, st->queued, st->running,
					     comp, nwin,
					     reported_percentile_ms(win, 0.50), reported_percentile_ms(win, 0.95),
					     reported_percentile_ms(win, 0.99));
			if (entry_fits(b, mark, end))
				n++;
			else
				truncated++;
		}
	}
	f->truncated_scheduler += truncated;
	collector_buf_printf(b, "],\"truncated\":%" PRIu64 "}", truncated);
}
