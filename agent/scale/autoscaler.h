/* agent/scale/autoscaler.h - runs the autoscaler in berthd: windows from the scheduler, supervisor and metrics in, replica counts out. */
#ifndef BERTH_AUTOSCALER_H
#define BERTH_AUTOSCALER_H

/*
 * Contract
 * --------
 * Every autoscale.interval_s the scaler
 *   1. keeps the autoscaler's deployments in step with the supervisor's
 *      desired ones (autoscale_add on a new or changed spec - class,
 *      replicas min/max, concurrency, resources, startup_ms - and
 *      autoscale_remove when one goes away);
 *   2. builds each deployment's window: requests decided and on time from
 *      the scheduler's window (sched_window_take; refusals count as misses,
 *      requests still queued or running count in the window they end in),
 *      mean service time of its answered requests (the last one measured
 *      when the window has none), replicas desired and ready and the last
 *      measured start-up time from the supervisor, CPU (mean over the
 *      window) and memory (latest) of its ready replicas from the metrics
 *      module; the node's CPU (mean over the window) and memory (latest);
 *   3. calls autoscale_evaluate() and supervisor_set_replicas() for every
 *      changed count (the supervisor drains a replica before it stops it).
 * Every request offered to a known model (dispatch's arrival hook) is
 * counted by that deployment's forecaster. The forecasters' state is saved
 * in the store's key-value table (key "forecast.<deployment>", hex) every
 * CONFIG_FORECAST_SAVE_S seconds and at autoscaler_destroy(), and loaded when a
 * deployment is first registered (the time berthd was down counts as
 * missing data, not as zero load). A scale-up stopped by the headroom guard
 * raises the event scale_blocked with the numbers: when it starts, when its
 * numbers change, and again every SCALER_BLOCKED_REPEAT_S while it lasts
 * (repeats in between are counted in "suppressed").
 *
 * Not thread-safe: call from the event loop only.
 */

#include <stddef.h>
#include <stdint.h>

#include "agent/scale/autoscale.h"
#include "agent/infer/sched.h"

struct loop;
struct supervisor;
struct dispatch;
struct sampler;
struct store;
struct events;
struct berth_config;
struct collector_buf;
struct sup_status;
struct metric_ctr_sample;
struct metric_node_sample;
struct autoscaler;

#define SCALER_BLOCKED_REPEAT_S 600u

struct autoscaler_deps {
	struct loop *loop;
	struct supervisor *sup;
	struct dispatch *dispatch;   /* may be NULL: no request figures, windows are empty */
	struct sampler *metrics;     /* may be NULL: no measured usage */
	struct store *store;         /* may be NULL: forecasts are not persisted */
	struct events *events;       /* may be NULL */
};

/* Starts the evaluation timer (first run one interval from now) and hooks
 * the dispatcher's arrivals. All borrowed pointers must outlive the scaler.
 * NULL on bad settings (logged) or allocation failure. */
struct autoscaler *autoscaler_create(const struct autoscaler_deps *deps, const struct berth_config *cfg);
/* Saves the forecasters, unhooks, frees. NULL is safe. */
void autoscaler_destroy(struct autoscaler *s);

/* One evaluation now (what the timer does). */
void autoscaler_evaluate(struct autoscaler *s);

/* Telemetry source "autoscale": per deployment the last decision. */
void autoscaler_telemetry_source(void *s, struct collector_buf *b);

/* --- pure helpers (unit tests) ------------------------------------------------ */

/* Fills w from the scheduler's window sw (NULL: the model has no requests
 * yet) and the supervisor's status st: offered = decided requests, on_time,
 * service_ms = mean service time of the window's answered requests (0 when
 * none), replicas = desired, replicas_ready, startup_ms. cpu_cores is set to
 * -1 and mem_bytes to 0 (unknown) for the caller to fill. */
void autoscaler_window_build(const struct sched_window *sw, const struct sup_status *st, struct autoscale_window *w);

/* Usage of one replica over the window from its samples (oldest first):
 * mean cpu_pct of the samples taken at or after since_ms, as cores, and
 * the newest sample's memory. Returns how many samples were in the window
 * (0: *cpu_cores and *mem_bytes untouched). */
unsigned autoscaler_replica_usage(const struct metric_ctr_sample *s, unsigned n, uint64_t since_ms, double *cpu_cores,
			      uint64_t *mem_bytes);

/* The node over the window: mean CPU of the samples at or after since_ms
 * (as cores used), and the newest sample's memory. Returns 0, or -ENOENT
 * when n is 0. */
int autoscaler_node_usage(const struct metric_node_sample *s, unsigned n, uint64_t since_ms, struct autoscale_node *out)
	__attribute__((warn_unused_result));

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void autoscaler_hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes hex text into out (cap bytes). Returns the byte count, or -EINVAL
 * (odd length, not hex) / -ENOSPC. */
long autoscaler_hex_decode(const char *hex, uint8_t *out, size_t cap) __attribute__((warn_unused_result));

#endif
