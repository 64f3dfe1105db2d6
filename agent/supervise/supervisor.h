/* agent/supervise/supervisor.h - reconciles the desired deployments with the engine's containers and keeps replicas healthy. */
#ifndef BERTH_SUPERVISOR_H
#define BERTH_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/model/deploy.h"

struct loop;
struct hal_engine;
struct hal_invoke;
struct events;
struct supervisor;

/* Deployments tracked at once: the desired ones plus those being removed. */
#define SUP_MAX_DEPLOYMENTS (2 * DEPLOY_MAX)
#define SUP_MAX_OBSERVERS 4
#define SUP_DEFAULT_RESYNC_MS 10000u  /* full re-list of the engine */
#define SUP_DEFAULT_STOP_TIMEOUT_S 3u /* graceful stop of a replica that goes away */
#define SUP_CIRCUIT_STABLE_MS 10000u /* a half-open trial ready this long (at most reset_after_ms) closes the circuit */
#define SUP_ENGINE_RETRY_MIN_MS 500u  /* back-off while the engine is unavailable */
#define SUP_ENGINE_RETRY_MAX_MS 30000u
#define SUP_DRAIN_MIN_MS 1000u        /* a retiring replica drains at least this long (when busy) */
#define SUP_DRAIN_MAX_MS 30000u       /* and at most this long: 2 x the deployment's deadline, clamped */
#define SUP_DRAIN_POLL_MS 20u         /* how often its in-flight count is read while it drains */

struct sup_config {
	char device_id[64];            /* io.berth.owner of every container made */
	unsigned resync_ms;            /* 0: SUP_DEFAULT_RESYNC_MS */
	unsigned stop_timeout_s;       /* 0: SUP_DEFAULT_STOP_TIMEOUT_S */
	unsigned migrate_after_failures; /* failed restarts in a row before migration_needed; 0: never */
	uint64_t seed;                 /* jitter PRNG seed */
	struct events *events;         /* borrowed, may be NULL */
};

enum sup_replica_state {
	SUP_R_EMPTY = 0,
	SUP_R_CREATING,   /* create/start in flight */
	SUP_R_STARTING,
	SUP_R_RUNNING,    /* started; probes decide ready */
	SUP_R_KILLING,    /* liveness failed, being killed for a restart */
	SUP_R_BACKOFF,    /* exited, waiting to be restarted */
	SUP_R_EXITED,     /* exited and not restarted (restart policy) */
	SUP_R_REMOVING,   /* being stopped and removed */
};

/* A copy of one replica's public state. */
struct sup_replica {
	char deployment[DEPLOY_NAME_MAX];  /* also the model name */
	unsigned slot;                     /* replica index; port = port_base + slot */
	uint32_t generation;               /* changes with every (re)start of the slot */
	char host[16];                     /* "127.0.0.1" (host networking) */
	uint16_t port;
	uint32_t concurrency;
	char ctr_id[72];
	int pid;                           /* 0 when unknown or not running */
	enum sup_replica_state state;
	bool ready;                        /* readiness: may receive requests */
	bool live;                         /* liveness state */
	bool draining;
	bool paused;
	bool current;                      /* runs the current spec (not an old one being rolled) */
	uint32_t restarts;
	uint64_t ready_since_ms;           /* loop time; 0 when not ready */
};

enum sup_circuit { SUP_CIRCUIT_CLOSED = 0, SUP_CIRCUIT_OPEN, SUP_CIRCUIT_HALF_OPEN };

struct sup_status {
	char name[DEPLOY_NAME_MAX];
	uint32_t replicas_desired;
	uint32_t replicas_min;
	uint32_t replicas_max;
	uint32_t replicas_ready;
	uint32_t replicas_running;
	bool rolling;                      /* replicas of an older spec remain */
	bool removing;                     /* no longer desired; containers going */
	const char *health;                /* "healthy", "degraded", "unavailable", "stopped" */
	enum sup_circuit circuit;
	uint32_t restarts;                 /* since the agent started */
	uint64_t probe_failures;           /* liveness + readiness probe failures of its replica slots
	                                    * since the deployment was added */
	bool migration_needed;
	char last_error[128];
	uint64_t spec_hash;
	enum sla_class sla_class;          /* of the spec */
	uint32_t startup_ms;               /* last measured start-up (create to ready); 0 none yet */
	uint32_t current_ready;            /* ready replicas of the current spec */
	uint32_t version_exits;            /* exits of the current spec's replicas since it became current */
	bool image_waiting;                /* the current spec's image is not usable yet (see the image gate) */
};

enum sup_event { SUP_EV_READY = 1, SUP_EV_UNREADY, SUP_EV_GONE };
/* Called from the loop when a replica becomes ready, stops being ready
 * (unready, draining, paused, dying) or is gone for good. r is valid only
 * during the call. Observers must not call supervisor_apply() from here. */
typedef void (*sup_observer_fn)(void *arg, enum sup_event ev, const struct sup_replica *r);

/* Creates the supervisor on loop; engine, invoke and cfg->events are borrowed
 * and must outlive it. Nothing is sent until supervisor_start(). NULL on
 * allocation failure. */
struct supervisor *supervisor_create(struct loop *l, struct hal_engine *engine, struct hal_invoke *inv,
				     const struct sup_config *cfg);
/* Stops probes and timers and frees. Containers keep running (the next
 * start adopts them). Engine calls in flight still hold pointers into the
 * supervisor: destroy the engine before the loop runs again. NULL is safe. */
void supervisor_destroy(struct supervisor *s);

/* Subscribes to engine events and lists the engine; reconciling starts when
 * the list answers. Returns 0 or -errno. */
int supervisor_start(struct supervisor *s) __attribute__((warn_unused_result));

/* Makes set the desired state (copied). Deployments not in set are removed,
 * new ones created, changed ones rolled one replica at a time. Returns 0, or
 * -ESTALE when set->version is older than the applied one (nothing changes). */
int supervisor_apply(struct supervisor *s, const struct deploy_set *set) __attribute__((warn_unused_result));

/* Desired replicas of deployment (autoscaler). Returns 0, -ENOENT, or
 * -ERANGE outside replicas.min..max. */
int supervisor_set_replicas(struct supervisor *s, const char *deployment, uint32_t n)
	__attribute__((warn_unused_result));

/* Marks a replica draining: it leaves the ready list at once and is the first
 * removed when the deployment scales down. Returns 0 or -ENOENT. */
int supervisor_replica_drain(struct supervisor *s, const char *deployment, unsigned slot)
	__attribute__((warn_unused_result));

/* Pauses (freezes) or unpauses a running replica (preemption). A paused
 * replica is not ready and its probes are held. Asynchronous: returns 0 when
 * the call was sent, -ENOENT, -EBUSY (not running, or a call in flight),
 * -EALREADY when already in that state. */
int supervisor_replica_pause(struct supervisor *s, const char *deployment, unsigned slot, bool pause)
	__attribute__((warn_unused_result));

/* Sends SIGKILL to a replica's container (chaos experiment); it is then
 * restarted like any crash. Returns 0 when sent, -ENOENT, -EBUSY. */
int supervisor_replica_kill(struct supervisor *s, const char *deployment, unsigned slot)
	__attribute__((warn_unused_result));

/* Ready replicas of model (= deployment name), at most max into out.
 * Returns how many were written. */
unsigned supervisor_ready_replicas(const struct supervisor *s, const char *model, struct sup_replica *out,
				   unsigned max);
/* Every replica of every deployment (any state but empty), at most max. */
unsigned supervisor_replicas(const struct supervisor *s, struct sup_replica *out, unsigned max);

/* Status of one deployment: 0 or -ENOENT. */
int supervisor_status(const struct supervisor *s, const char *deployment, struct sup_status *out)
	__attribute__((warn_unused_result));
/* Status of every tracked deployment, at most max; returns how many. */
unsigned supervisor_statuses(const struct supervisor *s, struct sup_status *out, unsigned max);
/* Prometheus series per deployment (restarts, probe failures, ready and desired
 * replicas) into buf (len bytes); returns the length needed, as snprintf does. */
size_t supervisor_render_metrics(const struct supervisor *s, char *buf, size_t len);

/* Spec of a desired (not removing) deployment, or NULL. Valid until the
 * next supervisor_apply() or supervisor_set_replicas(); do not keep it. */
const struct deploy_spec *supervisor_spec(const struct supervisor *s, const char *deployment);

/* Requests replica slot of deployment still serves (the dispatcher's count).
 * With it set, a replica that goes by decision (scale-down, a roll retiring
 * an old replica, deployment removed) is first marked draining (observers
 * hear SUP_EV_UNREADY with draining set), then stopped once this returns 0,
 * or after 2 x the deployment's deadline_ms (clamped to SUP_DRAIN_MIN_MS..
 * SUP_DRAIN_MAX_MS). Without it, such replicas are stopped at once. A scale
 * back up while one drains keeps it instead of starting another. */
typedef unsigned (*sup_inflight_fn)(void *arg, const char *deployment, unsigned slot);
void supervisor_set_inflight_fn(struct supervisor *s, sup_inflight_fn fn, void *arg);

/* Whether spec's image can be used now. While it says no (why: what the
 * deployment waits for, e.g. "image pulling"), the supervisor makes no
 * replica of that spec and retires none of an older one: during a pull the
 * old version keeps serving. Asked at every reconcile; kick the supervisor
 * (supervisor_image_changed) when an answer changes. Without a gate every
 * image is usable. */
typedef bool (*sup_image_gate_fn)(void *arg, const struct deploy_spec *spec, char *why, size_t why_len);
void supervisor_set_image_gate(struct supervisor *s, sup_image_gate_fn fn, void *arg);
void supervisor_image_changed(struct supervisor *s);

/* Lets another flow substitute a spec as a desired set is applied: the
 * images flow puts a deployment's last-known-good in place of a version it
 * rolled back from. fn returns sp itself or a spec it owns (valid until its
 * next call). */
typedef const struct deploy_spec *(*sup_spec_filter_fn)(void *arg, const struct deploy_spec *sp);
void supervisor_set_spec_filter(struct supervisor *s, sup_spec_filter_fn fn, void *arg);
/* Replaces one desired deployment's spec as supervisor_apply would (same
 * version; replica count kept when only counts differ). 0, or -ENOENT when
 * the deployment is not desired. */
int supervisor_replace_spec(struct supervisor *s, const struct deploy_spec *sp) __attribute__((warn_unused_result));

/* Whether the engine answered its last call. */
bool supervisor_engine_available(const struct supervisor *s);
/* Whether berthd runs with a container engine (engine.socket "" : none,
 * deployments are accepted and reported but not run). */
bool supervisor_has_engine(const struct supervisor *s);

/* Adds an observer (up to SUP_MAX_OBSERVERS). Returns 0 or -ENOSPC. */
int supervisor_observe(struct supervisor *s, sup_observer_fn fn, void *arg) __attribute__((warn_unused_result));

const char *supervisor_circuit_name(enum sup_circuit c);
const char *supervisor_state_name(enum sup_replica_state st);

#endif
