/* agent/console/reported.h - telemetry sources of the scheduler and of the replicas' metrics, and SLA summaries for the reported state. */
#ifndef BERTH_REPORTED_H
#define BERTH_REPORTED_H

/*
 * Contract
 * --------
 * Two telemetry sources (collector_register), each one JSON object per row,
 * each capped at a byte budget: entries that do not fit are left out and
 * counted in the object's "truncated" member (the row stays valid):
 *
 *   "containers" (FIGURES_CONTAINERS_BUDGET bytes): per replica sampled by
 *   the metrics module in the last two metric intervals, its latest
 *   reading: deployment, replica, cpu_pct (of one core), mem_bytes,
 *   mem_limit_bytes (0: unlimited), net_rx_bytes / net_tx_bytes
 *   (cumulative), pids, restarts, ready, live.
 *
 *   "scheduler" (FIGURES_SCHEDULER_BUDGET bytes): policy, slots, slots_busy,
 *   backlog_ms, and per model and class that has seen a request: counters
 *   since berthd started (requests, on_time, late, failed, cancelled,
 *   refused by reason, deadline_misses = late + failed + refused +
 *   cancelled), gauges (queued, running), SLA compliance since start, and
 *   latency percentiles (p50/p95/p99, ms, end to end) of the requests
 *   answered since the previous row (latency_n of them; 0 when none).
 *
 * The SLA helpers read the scheduler's cumulative counters for the
 * reported state. Nothing here allocates after reported_create(). Not
 * thread-safe: call from the event loop only.
 */

#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"
#include "agent/infer/sched.h"

struct sampler;
struct dispatch;
struct collector_buf;
struct reported;

#define FIGURES_CONTAINERS_BUDGET 8192
#define FIGURES_SCHEDULER_BUDGET 12288

/* m and d are borrowed (either may be NULL: that source writes an empty
 * object). interval_ms: the metric interval (freshness of a reading).
 * NULL on allocation failure. Free with reported_destroy() (NULL safe). */
struct reported *reported_create(struct sampler *m, struct dispatch *d, unsigned interval_ms);
void reported_destroy(struct reported *f);
/* The sampling period after a reload (a series older than two periods is stale). */
void reported_set_interval(struct reported *f, unsigned interval_ms);

/* Telemetry sources (arg: the struct reported). now is the loop's time. */
void reported_containers_source(void *f, struct collector_buf *b);
void reported_scheduler_source(void *f, struct collector_buf *b);

/* --- pure helpers ---------------------------------------------------------- */

/* The q-quantile (0 < q <= 1) of a latency histogram with the scheduler's
 * buckets (sched_lat_bounds_us), in ms, interpolated linearly inside its
 * bucket; a quantile in the +Inf bucket is that bucket's lower bound. 0 when
 * the histogram is empty. */
double reported_percentile_ms(const uint64_t counts[SCHED_LAT_NBUCKETS], double q);

/* Requests decided (on time + late + failed + refused + cancelled). */
uint64_t reported_decided(const struct sched_class_stats *st);

/* A ratio as a JSON value into buf: "%.4f", or null when r is not finite
 * (NAN: nothing to measure yet). Returns buf. */
const char *reported_ratio_json(double r, char *buf, size_t len);

/* Writes the reported state's "sla" object from the per-class totals
 * (dispatch_class_totals): per class requests, on_time,
 * late, failed, refused, compliance (every class present; compliance null
 * while the class has no request decided). Returns the
 * length or -ENOSPC. */
int reported_sla_json(const struct sched_class_stats tot[SLA_NCLASSES], char *buf, size_t len) __attribute__((warn_unused_result));

#endif
