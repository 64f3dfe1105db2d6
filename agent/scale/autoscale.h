/* agent/scale/autoscale.h - replica counts from SLA compliance and the load forecast, within the node's headroom. */
#ifndef BERTH_AUTOSCALE_H
#define BERTH_AUTOSCALE_H

/*
 * Contract
 * --------
 * Pure: no clock, no I/O, no allocation after autoscale_create() (each
 * deployment's forecaster is allocated by autoscale_add()). The caller
 * passes time and measurements in, and applies the decisions it gets back.
 *
 * Every interval_s the caller takes each deployment's window from the
 * scheduler (offered and on-time requests, measured service time) and the
 * supervisor (replicas desired and ready, measured CPU and memory of the
 * replicas, measured start-up time), reads the node, and calls
 * autoscale_evaluate(). For each deployment it gets a replica count:
 *
 * Reactive rule. compliance = on_time / offered over the window (refusals
 * are in offered, not on time: they count as misses; no requests = 1.0).
 *   compliance < target_low   -> up: double (at least +1), capped at
 *                                replicas_max and at ceil(slots / concurrency),
 *                                the most replicas the model can keep busy.
 *                                Held while a previous scale-up is still
 *                                starting (ready < desired), for at most
 *                                2 x start-up + one interval.
 *   compliance > target_high  -> down by one once it stayed there for
 *                                cooldown_s (again cooldown_s per step),
 *                                never below replicas_min.
 *
 * Predictive (params.predictive). horizon = start-up time (measured, else
 * the spec's) + interval. need = ceil(peak forecast rate over the horizon /
 * (per-replica capacity x CONFIG_AUTOSCALE_UTIL_PCT%)), per-replica
 * capacity = concurrency / measured mean service time. The count is raised
 * to need (same caps) before the peak; it is never lowered on a forecast:
 * scale-in is the reactive rule's alone, and never below need.
 *
 * Headroom guard. A scale-up is granted only while the projected node stays
 * within the ceilings: projected memory = node used + replicas still starting
 * x per-replica memory + added x per-replica memory <= mem_ceiling_pct% of
 * total; CPU likewise against cpu_ceiling_pct% of the cores. Per-replica
 * usage is the measured usage of the deployment's ready replicas divided by
 * their number (the last measurement is kept), or the spec's limits before
 * any measurement (an unlimited, unmeasured resource projects 0). When
 * several deployments want replicas, grants go by class (urgent, normal,
 * batch), then lowest compliance first; a scale-up cut short by the guard
 * is granted partly when some replicas fit, and reported through
 * events.blocked with the numbers (and a log line).
 *
 * Scale-down is a count: the caller removes the highest-index replica by
 * draining it (no new requests, in-flight ones finish, then it stops).
 *
 * Not thread-safe: call from the event loop only.
 */

#include <stdbool.h>
#include <stdint.h>

#include "agent/model/deploy.h"

struct forecast;
struct berth_config;

struct autoscale_params {
	uint32_t interval_s;       /* evaluation period (autoscale.interval_s, 30) */
	double target_low;         /* scale up below this compliance (0.95) */
	double target_high;        /* scale down above this for cooldown_s (0.98) */
	uint32_t cooldown_s;       /* (300) */
	uint32_t cpu_ceiling_pct;  /* (80) */
	uint32_t mem_ceiling_pct;  /* (80) */
	bool predictive;           /* pre-scale on the forecast (true) */
	bool forecast;             /* run the forecasters at all (CONFIG_FORECAST; for MASE) */
	uint32_t bucket_s;         /* forecaster bucket (autoscale.bucket_s, 60) */
	uint32_t season_s;         /* forecaster season (86400) */
	uint32_t util_pct;         /* CONFIG_AUTOSCALE_UTIL_PCT */
	uint32_t slots;            /* compute slots of the node */
};

/* Fills p from the runtime config (season one day, util from Kconfig). */
void autoscale_params_from_config(struct autoscale_params *p, const struct berth_config *cfg,
				  unsigned slots);

/* What the autoscaler needs of a deployment's spec. */
struct autoscale_deploy {
	char name[DEPLOY_NAME_MAX];
	enum sla_class cls;
	uint32_t replicas_min, replicas_max;
	uint32_t concurrency;        /* >= 1 */
	uint64_t cpu_nano;           /* limit per replica, billionths of a core; 0 unlimited */
	uint64_t mem_bytes;          /* limit per replica; 0 unlimited */
	uint32_t startup_ms;         /* expected start-up time before one is measured */
};
void autoscale_deploy_from_spec(struct autoscale_deploy *d, const struct deploy_spec *s);

/* One deployment's measurements over the window just ended. */
struct autoscale_window {
	uint64_t offered;            /* requests offered (refusals included) */
	uint64_t on_time;            /* requests answered by their deadline */
	uint32_t replicas;           /* desired now (as the supervisor holds it) */
	uint32_t replicas_ready;     /* ready, not draining */
	double service_ms;           /* mean measured service time; 0 unknown */
	double cpu_cores;            /* CPU used by its ready replicas together; < 0 unknown */
	uint64_t mem_bytes;          /* memory used by its ready replicas together; 0 unknown */
	uint32_t startup_ms;         /* measured start-up time (create to ready); 0 unknown */
};

struct autoscale_node {
	uint32_t ncpu;
	double cpu_used_cores;       /* whole node, measured */
	uint64_t mem_total_bytes;
	uint64_t mem_used_bytes;     /* whole node, measured (total - available) */
};

enum autoscale_reason {
	AUTOSCALE_HOLD = 0,
	AUTOSCALE_UP_SLA,            /* compliance below target_low */
	AUTOSCALE_UP_FORECAST,       /* forecast load above the replicas' capacity */
	AUTOSCALE_DOWN,              /* above target_high for the cool-down */
	AUTOSCALE_BLOCKED,           /* wanted more, the headroom guard granted none */
	AUTOSCALE_PARTIAL,           /* wanted more, the guard granted some */
};
const char *autoscale_reason_name(enum autoscale_reason r);

struct autoscale_decision {
	uint32_t replicas;           /* apply this desired count */
	uint32_t wanted;             /* before the headroom guard */
	enum autoscale_reason reason;
	double compliance;           /* of the window */
	double forecast_rps;         /* peak forecast over the horizon; 0 without forecaster */
	uint32_t need;               /* replicas the forecast needs; 0 without a measured service time */
};

/* A scale-up the headroom guard stopped (wholly or partly). Valid during
 * the callback only. */
struct autoscale_blocked {
	const char *name;
	enum sla_class cls;
	const char *resource;        /* "memory" or "cpu": the ceiling hit first */
	uint32_t replicas, wanted, granted;
	uint64_t mem_per_replica_bytes, mem_projected_bytes, mem_ceiling_bytes;
	double cpu_per_replica_cores, cpu_projected_cores, cpu_ceiling_cores;
};

struct autoscale_events {
	/* Raise the scale_blocked event (projected = with the wanted count). */
	void (*blocked)(void *arg, const struct autoscale_blocked *b);
	void *arg;
};

struct autoscale;

/* Returns NULL on bad params (logged) or allocation failure. ev is copied
 * (may be NULL). Free with autoscale_destroy() (NULL safe). */
struct autoscale *autoscale_create(const struct autoscale_params *p, const struct autoscale_events *ev);
void autoscale_destroy(struct autoscale *a);

/* Registers a deployment; returns its index (0..DEPLOY_MAX-1; the existing
 * index when the name is known, with the spec updated), -ENOSPC when full,
 * -EINVAL on a bad spec, -ENOMEM. wall_ms starts its forecaster. */
int autoscale_add(struct autoscale *a, const struct autoscale_deploy *d, uint64_t wall_ms)
	__attribute__((warn_unused_result));
/* Forgets deployment idx (its slot may be reused). */
void autoscale_remove(struct autoscale *a, int idx);

/* Counts n arrivals of deployment idx at wall_ms (wall-clock ms, for the
 * forecaster's daily phase; the simulator passes virtual time). O(1). */
void autoscale_observe(struct autoscale *a, int idx, uint64_t wall_ms, uint32_t n);

/* Evaluates every registered deployment. w and out are indexed by
 * deployment index (arrays of DEPLOY_MAX; unregistered entries are ignored
 * and left untouched). now_ms: monotonic, for the cool-down. wall_ms: the
 * forecasters' clock (closes their buckets). Fires events.blocked. */
void autoscale_evaluate(struct autoscale *a, uint64_t now_ms, uint64_t wall_ms,
			const struct autoscale_window *w, const struct autoscale_node *node,
			struct autoscale_decision *out);

/* The forecaster of deployment idx (to save/load its state with the store,
 * and read its MASE); NULL when none. Owned by the autoscaler. */
struct forecast *autoscale_forecast(struct autoscale *a, int idx);

#endif
