/* agent/infer/sched.h - deadline-aware request scheduler: compute slots, one EDF order across models, admission control, replica gating. */
#ifndef BERTH_SCHED_H
#define BERTH_SCHED_H

/*
 * Contract
 * --------
 * The scheduler is pure: it never reads a clock, never does I/O and never
 * allocates after sched_create(). Time comes in as now_us arguments (the
 * monotonic clock of the caller: loop_now_us() in berthd, the virtual clock
 * in berth-sim and the unit tests); decisions go out through callbacks
 * (struct sched_callbacks) run synchronously from inside the sched_* call
 * that caused them.
 *
 * Resources. The box has `slots` compute slots (default: one per CPU core).
 * Each model (one per deployment, index 0..SCHED_MAX_MODELS-1) has a set of
 * replicas (index 0..SCHED_MAX_REPLICAS-1, the io.berth.replica label), each
 * serving up to `concurrency` requests at once. A request runs only while it
 * holds a slot AND a replica of its model that is present, ready, not
 * draining, breaker closed, not paused and below its concurrency.
 *
 * Order. All waiting requests of all models sit in one EDF order, keyed by
 * (absolute deadline, arrival sequence) - ties go to the earlier arrival
 * (exact unless 65536 requests share one deadline microsecond).
 * Under the fifo policy the key is the arrival sequence alone. Internally
 * there is one 4-ary heap per (model, class) over one preallocated pool of
 * request entries (a request arriving below everything queued in its heap
 * is held in front of the heap's array, so taking it is O(1)); the global order is the minimum over the heap heads, so a
 * model without a free replica never blocks another model's requests (a
 * bitmask of the heaps whose model has a free replica limits the heads
 * compared). When a slot frees, the earliest request whose model has a free
 * replica gets it.
 *
 * Policies (an ops table inside sched.c; choose with sched_params.policy):
 *   fifo        arrival order, never refuses for time.
 *   edf         earliest deadline first, never refuses for time (runs late).
 *   edf-admit   edf + admission control: refuses with deadline_infeasible
 *               at arrival when (now + estimated wait + estimated service) >
 *               deadline, and again at dispatch when (now + estimated
 *               service) > deadline. Never runs a request it predicts late.
 *   edf-reserve edf-admit + `reserve_urgent` slots that only urgent requests
 *               may take: a normal or batch request is dispatched only while
 *               more than reserve_urgent slots are free.
 *   edf-preempt edf-admit + preemption: an urgent request that could run
 *               now (its model has a free replica and it can still finish
 *               in time) but finds every slot taken makes the scheduler
 *               pause the replica running the latest-deadline batch request
 *               due after it (callbacks.pause; only a replica running that
 *               one request). Its slot goes to urgent work; the paused
 *               request keeps its replica and resumes (callbacks.resume)
 *               when a slot is free and it is the earliest deadline
 *               waiting. Urgent admission ignores the remaining work of
 *               running batch requests, since they yield.
 *   edf-mc      criticality-aware (the default, CONFIG_SCHED_DEFAULT_POLICY):
 *               a free slot goes to the earliest urgent request that can run
 *               before any other class; an urgent request that finds every
 *               slot taken pauses the replica running the latest-deadline
 *               normal or batch request (as edf-preempt); urgent admission
 *               counts only urgent work (as if alone); normal and batch
 *               admission counts everything ahead of them and running,
 *               served by slots - 0.8 x the load of the classes above them,
 *               measured online (work arriving per class, 100 ms windows,
 *               EWMA 1/128 per window). sched_predict_wait_us gives the
 *               predicted wait.
 *
 * Service-time estimator (per model, used by admission). Each successful
 * completion's service time updates an EWMA (weight 1/8; the first sample
 * replaces the initial estimate) and a ring of the last SCHED_EST_RING
 * samples (with its largest samples tracked, so the percentile is updated
 * per completion, not recomputed). A request's own service estimate is the
 * SCHED_EST_PCT percentile of the ring once it holds SCHED_EST_MIN_SAMPLES
 * samples; before that it is 0, so admission never refuses for a model it
 * has not measured yet (the initial estimate only feeds the wait of others).
 * The estimated wait of a new request is the EWMA work of everything ahead
 * of it in EDF order (queued requests with an earlier deadline, interpolated
 * per (model, class) heap between its earliest and latest deadline, plus the
 * remaining work of running requests) divided by slots, and at least the
 * soonest expected completion when every slot is busy. Since the work ahead
 * is at most all queued work (a running sum), a request whose wait computed
 * from all queued work still fits is admitted in O(1), without the per-heap
 * interpolation (the same decision). A request submitted
 * with cost_hint_us > 0 uses that value instead of the estimates (the
 * --oracle-cost reference of berth-sim). A request submitted with a size
 * (sched_req.size > 0) gets its own estimate and its queued work from the
 * model's size fit (sched_fit.h: service time = a + b x size, learnt from
 * completions with a size) once that fit is usable, fixed at arrival.
 *
 * Refusals. Every refusal carries a reason (enum sched_refusal):
 *   deadline_infeasible  admission predicts a miss (admit policies only)
 *   queue_full           class cap or the pool is full (all policies)
 *   no_ready_replica     the model has no present, ready, non-draining
 *                        replica (all policies, at arrival)
 *   breaker_open         the model has ready replicas but every one has its
 *                        circuit breaker open (all policies, at arrival)
 * A refusal at arrival is the return value of sched_submit(); a refusal of
 * an already accepted request (at dispatch, in sched_tick(), when its model
 * loses all replicas) goes out through callbacks.refuse.
 *
 * Counters. Per model and class: offered, on time, late, failed, refused by
 * reason, cancelled, retries, queue depth, running, an end-to-end latency
 * histogram (fixed buckets, sched_lat_bounds_us) and SLA compliance
 * (sched_compliance()). Cumulative counters never reset (for /metrics and
 * telemetry); a second copy per model is the autoscaler's window, read and
 * reset with sched_window_take().
 *
 * Re-entrancy. Callbacks may call sched_submit(), sched_complete(),
 * sched_cancel() and the replica functions (e.g. complete a request whose
 * transfer failed to start, from inside dispatch). The scheduler then
 * finishes the outer decision first and runs the nested one after it.
 * Callbacks must not call sched_destroy().
 *
 * Not thread-safe: call from the event loop only.
 */

#include <stdbool.h>
#include <stdint.h>

#include "agent/model/sla.h"

/* The scheduler's own bounds; the dispatcher checks at build time that they
 * match the deployment spec's (DEPLOY_MAX, DEPLOY_MAX_REPLICAS, DEPLOY_NAME_MAX). */
#define SCHED_MAX_MODELS 16
#define SCHED_MAX_REPLICAS 16
#define SCHED_NAME_MAX 48            /* model name, NUL included */
#define SCHED_EST_RING 64            /* completions kept per model for the percentile */
#define SCHED_EST_PCT 90             /* percentile of the ring used as a request's service estimate */
#define SCHED_EST_MIN_SAMPLES 8      /* below this, EWMA / initial estimate */
#define SCHED_EST_INITIAL_US 10000   /* initial estimate when sched_model_add gets 0 */
#define SCHED_MAX_RETRIES 1          /* SCHED_DONE_RETRY re-queues a request at most this often */
#define SCHED_LAT_NBUCKETS 15        /* latency histogram buckets, the last one is +Inf */

enum sched_policy {
	SCHED_FIFO = 0,
	SCHED_EDF,
	SCHED_EDF_ADMIT,
	SCHED_EDF_RESERVE,
	SCHED_EDF_PREEMPT,
	SCHED_EDF_MC,
	SCHED_NPOLICIES
};

enum sched_refusal {
	SCHED_REFUSE_NONE = 0,
	SCHED_REFUSE_DEADLINE_INFEASIBLE,
	SCHED_REFUSE_QUEUE_FULL,
	SCHED_REFUSE_NO_READY_REPLICA,
	SCHED_REFUSE_BREAKER_OPEN,
	SCHED_NREFUSALS
};

/* How a dispatched request ended, reported by the caller. */
enum sched_outcome {
	SCHED_DONE_OK = 0,    /* answered; on time iff now_us <= deadline */
	SCHED_DONE_FAILED,    /* error answer / transfer failed; counted failed (a miss) */
	SCHED_DONE_RETRY,     /* transfer failed and time remains: put it back in the queue
	                       * at its EDF position for another replica (a different one when
	                       * one is free); after SCHED_MAX_RETRIES it counts as FAILED */
};

/* "fifo", "edf", "edf-admit", "edf-reserve", "edf-preempt". */
const char *sched_policy_name(enum sched_policy p);
/* Returns the policy or -EINVAL. */
int sched_policy_parse(const char *s);
/* "deadline_infeasible", "queue_full", "no_ready_replica", "breaker_open" ("none"). */
const char *sched_refusal_name(enum sched_refusal r);

/* Upper bounds (inclusive, microseconds) of the latency histogram buckets;
 * the last bucket is +Inf (its bound is UINT64_MAX). Buckets: 1, 2, 5, 10,
 * 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000 ms, +Inf. */
extern const uint64_t sched_lat_bounds_us[SCHED_LAT_NBUCKETS];

struct sched_params {
	enum sched_policy policy;
	unsigned slots;                      /* 1..CONFIG_SCHED_MAX_SLOTS */
	unsigned reserve_urgent;             /* edf-reserve: slots only urgent may take (< slots) */
	unsigned queue_cap[SLA_NCLASSES];    /* max queued per class, 1..CONFIG_SCHED_MAX_QUEUED */
};

/* Defaults: CONFIG_SCHED_DEFAULT_POLICY (edf-mc), slots = ncpu (clamped to 1..CONFIG_SCHED_MAX_SLOTS),
 * reserve_urgent = 1 when slots > 1 (0 otherwise), every class cap =
 * CONFIG_SCHED_MAX_QUEUED. */
void sched_params_default(struct sched_params *p, unsigned ncpu);

/* What the callbacks are told about a request. Valid during the callback only. */
struct sched_dispatch {
	uint64_t id;                 /* the request id (see sched_submit) */
	void *ctx;                   /* the caller's pointer given to sched_submit */
	int model;
	int replica;                 /* -1 in refuse() of a request never dispatched */
	enum sla_class cls;
	uint64_t arrival_us;         /* when it was submitted */
	uint64_t deadline_us;        /* absolute */
	uint64_t now_us;             /* time of this decision */
	unsigned attempt;            /* 0 first dispatch, 1.. after SCHED_DONE_RETRY */
};

struct sched_callbacks {
	/* Run the request on d->replica now (queue time = now_us - arrival_us).
	 * The caller starts the transfer and later calls sched_complete(d->id)
	 * exactly once (or sched_cancel). Required. */
	void (*dispatch)(void *arg, const struct sched_dispatch *d);
	/* An accepted request is refused after all (reason as above); the
	 * caller answers 503. The id is dead after this. Required. */
	void (*refuse)(void *arg, const struct sched_dispatch *d, enum sched_refusal reason);
	/* edf-preempt only: freeze the replica running d (engine pause / cgroup
	 * freezer). Return 0 when paused; a negative errno keeps it running and
	 * the scheduler does not preempt it. NULL: edf-preempt never preempts. */
	int (*pause)(void *arg, const struct sched_dispatch *d);
	/* edf-preempt only: thaw the replica running d; its completion follows
	 * later through sched_complete as usual. NULL allowed with pause NULL. */
	void (*resume)(void *arg, const struct sched_dispatch *d);
	void *arg;
};

/* Allocates everything once: a pool of CONFIG_SCHED_MAX_QUEUED +
 * CONFIG_SCHED_MAX_SLOTS + SCHED_MAX_MODELS*SCHED_MAX_REPLICAS request
 * entries and the heaps. Returns NULL on bad params (logged) or allocation
 * failure. cb is copied. Free with sched_destroy() (NULL safe); requests
 * still queued or running are dropped without callbacks. */
struct sched *sched_create(const struct sched_params *p, const struct sched_callbacks *cb);
void sched_destroy(struct sched *s);

/* Changes the slot count (1..CONFIG_SCHED_MAX_SLOTS) at run time; running
 * requests keep their slots, dispatch waits until fewer than n are used.
 * May dispatch. Returns 0 or -EINVAL. */
int sched_set_slots(struct sched *s, unsigned slots, uint64_t now_us)
	__attribute__((warn_unused_result));
/* Changes every parameter at run time (a reload). Nothing accepted is lost: queued requests
 * stay queued, in the new policy's order (re-keyed when the order changes between fifo and
 * the edf family); above a smaller class cap they stay, and new ones of that class are
 * refused (queue_full) until the queue is below it; running requests keep their slots
 * (dispatch waits until fewer than slots are used); requests paused by a preempting policy
 * resume at once when the new one does not preempt. The new policy's admission applies to
 * arrivals and to dispatch from now on. May dispatch. Returns 0, -EINVAL (bad params:
 * nothing changed), -ENOMEM (a larger queue cap could not be allocated: nothing changed). */
int sched_set_params(struct sched *s, const struct sched_params *p, uint64_t now_us)
	__attribute__((warn_unused_result));
unsigned sched_slots(const struct sched *s);
unsigned sched_slots_busy(const struct sched *s);
enum sched_policy sched_policy(const struct sched *s);

/* --- models and replicas ------------------------------------------------- */

/* Registers a model (a deployment's name) with an initial service estimate
 * (0: SCHED_EST_INITIAL_US). Returns its index >= 0 (the existing index when
 * the name is known), -ENOSPC beyond SCHED_MAX_MODELS, -EINVAL on a bad
 * name. Models are never removed: a deployment that goes away removes its
 * replicas, and its requests are then refused with no_ready_replica. */
int sched_model_add(struct sched *s, const char *name, uint32_t initial_est_us)
	__attribute__((warn_unused_result));
/* Index of the model named name, or -ENOENT. */
int sched_model_find(const struct sched *s, const char *name);
unsigned sched_model_count(const struct sched *s);
/* Name of model m, or NULL when m is not a model. */
const char *sched_model_name(const struct sched *s, int model);

/* Adds replica idx of model with the given concurrency (>= 1). It starts
 * NOT ready (call sched_replica_set_ready once its readiness probe passes).
 * Returns 0, -EEXIST, -EINVAL (bad model, idx or concurrency). */
int sched_replica_add(struct sched *s, int model, int idx, unsigned concurrency)
	__attribute__((warn_unused_result));
/* Removes replica idx: it gets no new work. Requests running on it stay
 * running until the caller completes them (their completions are accepted).
 * Queued requests of a model left without replicas are refused
 * (no_ready_replica) through callbacks.refuse. Returns 0 or -ENOENT. */
int sched_replica_remove(struct sched *s, int model, int idx, uint64_t now_us);
/* Readiness from the health probe. Ready may dispatch at once. When the last
 * ready replica of a model turns unready, its queued requests stay queued
 * (a replica may come back) and sched_tick refuses those that can no
 * longer finish in time (admit policies) with no_ready_replica. Returns 0 or -ENOENT. */
int sched_replica_set_ready(struct sched *s, int model, int idx, bool ready, uint64_t now_us);
/* Draining: finishes what it runs, gets nothing new (scale-down, update). */
int sched_replica_set_draining(struct sched *s, int model, int idx, bool draining, uint64_t now_us);
/* The dispatcher's circuit breaker for the replica: open -> no new work.
 * Closing it (half-open probe or recovery) may dispatch at once. */
int sched_replica_set_breaker(struct sched *s, int model, int idx, bool open, uint64_t now_us);
/* Replica concurrency may change (spec update). Returns 0, -ENOENT, -EINVAL. */
int sched_replica_set_concurrency(struct sched *s, int model, int idx, unsigned concurrency, uint64_t now_us);

struct sched_replica_info {
	bool present, ready, draining, breaker_open, paused;
	unsigned concurrency;
	unsigned inflight;           /* requests dispatched to it and not completed (paused included) */
	uint64_t dispatched;         /* total requests sent to it */
};
/* Returns 0 or -ENOENT. */
int sched_replica_get(const struct sched *s, int model, int idx, struct sched_replica_info *out);
/* Number of replicas of model that could take new work now or later
 * (present, ready, not draining; breaker state ignored). */
unsigned sched_model_ready_replicas(const struct sched *s, int model);

/* --- requests ------------------------------------------------------------ */

struct sched_req {
	int model;                   /* from sched_model_add / sched_model_find */
	enum sla_class cls;
	uint64_t deadline_us;        /* absolute, same clock as now_us; must be > now_us */
	uint32_t cost_hint_us;       /* 0: unknown (estimator); > 0: known service time (oracle) */
	uint32_t size;               /* request size known at arrival (input elements, tokens,
	                              * bytes: one unit per model), 0 unknown */
	void *ctx;                   /* returned in every callback about this request */
};

/* Offers a request at now_us. Returns:
 *   0        accepted: *id_out set (ids are > 0 and never reused). It is
 *            queued or already dispatched - callbacks.dispatch may have run
 *            for it before sched_submit returns (identify it by ctx).
 *   -EAGAIN  refused at arrival; *reason_out says why. Counted; no callback.
 *   -EINVAL  bad model, class or deadline (not counted).
 * id_out and reason_out may be NULL. */
int sched_submit(struct sched *s, const struct sched_req *r, uint64_t now_us,
		 uint64_t *id_out, enum sched_refusal *reason_out)
	__attribute__((warn_unused_result));

/* Reports the end of a dispatched request. service_us is the measured
 * service time (dispatch to answer, wall time; the scheduler subtracts the
 * time the request spent paused) fed to the estimator on SCHED_DONE_OK
 * (0: not measured, not fed). Frees its slot and replica capacity and
 * dispatches what can run. Returns 0, or -ENOENT when id is not running
 * (unknown, already completed, or still queued). */
int sched_complete(struct sched *s, uint64_t id, enum sched_outcome outcome,
		   uint64_t service_us, uint64_t now_us);

/* Drops a request the caller gave up on (client gone, caller's timeout),
 * queued or running (a running one frees its slot and replica capacity at
 * once: the caller must already have stopped its transfer). Counted as
 * cancelled (a miss). Returns 0 or -ENOENT. No callback. */
int sched_cancel(struct sched *s, uint64_t id, uint64_t now_us);

/* Time (absolute, us) at which sched_tick must next run: the earliest moment
 * a queued request becomes infeasible under an admit policy; UINT64_MAX when
 * nothing is due. Arm a loop timer for it after every sched_* call. */
uint64_t sched_next_due_us(const struct sched *s);
/* Refuses (callbacks.refuse) queued requests that can no longer finish by
 * their deadline - deadline_infeasible, or no_ready_replica/breaker_open
 * when their model has no usable replica - and dispatches what can run. */
void sched_tick(struct sched *s, uint64_t now_us);

/* Current service-time estimate of one request of model (us), as used by
 * admission. 0 when model is not a model. */
uint32_t sched_estimate_us(const struct sched *s, int model);
/* The same for a request of the given size (0: unknown): the size fit's
 * estimate once it is usable for model (sched_fit.h), else sched_estimate_us. */
uint32_t sched_estimate_size_us(const struct sched *s, int model, uint32_t size);
/* EWMA of the model's service time (us). */
uint32_t sched_ewma_us(const struct sched *s, int model);
/* The wait for a slot that arrival admission predicts at now_us for a request of class cls with the given absolute deadline
 * (the work queued ahead of it in EDF order, interpolated per heap, and
 * the remaining work of the running requests it waits for, over the
 * slots). For producers and for measuring the prediction (berth-sim). */
uint64_t sched_predict_wait_us(struct sched *s, enum sla_class cls, uint64_t deadline_us, uint64_t now_us);
/* Estimated time (ms) until the current backlog (queued + running work)
 * drains at the current slot count: a Retry-After hint for queue_full and
 * deadline_infeasible answers. */
uint32_t sched_backlog_ms(const struct sched *s, uint64_t now_us);

/* --- counters ------------------------------------------------------------ */

struct sched_class_stats {
	uint64_t offered;            /* submitted (valid requests), incl. refused at arrival */
	uint64_t on_time;            /* completed OK by the deadline */
	uint64_t late;               /* completed OK after the deadline */
	uint64_t failed;             /* completed FAILED (or retries exhausted) */
	uint64_t refused[SCHED_NREFUSALS];   /* by reason, at arrival and later */
	uint64_t cancelled;
	uint64_t retries;            /* SCHED_DONE_RETRY re-queues */
	uint64_t preempted;          /* times a request of this class was paused */
	uint64_t lat_bucket[SCHED_LAT_NBUCKETS]; /* end-to-end latency (arrival to
	                              * completion) of OK completions, non-cumulative
	                              * counts per bucket (sched_lat_bounds_us) */
	uint64_t lat_sum_us;         /* sum of those latencies */
	uint64_t service_sum_us;     /* sum of measured service times of OK completions */
	uint32_t queued;             /* gauge: waiting now */
	uint32_t running;            /* gauge: dispatched and not completed (paused included) */
};

struct sched_model_stats {
	struct sched_class_stats cls[SLA_NCLASSES];
};

/* SLA compliance of st: on_time / decided, where decided = on_time + late +
 * failed + refused (all reasons) + cancelled, i.e. refusals count as
 * misses; once nothing is queued or running this is on_time / offered.
 * 1.0 when nothing was decided. */
double sched_compliance(const struct sched_class_stats *st);
/* Total refusals of st (all reasons). */
uint64_t sched_refused_total(const struct sched_class_stats *st);
/* Every model's counters of s summed per class (gauges too); zeros when s is NULL. */
void sched_class_totals(const struct sched *s, struct sched_class_stats out[SLA_NCLASSES]);
/* SLA compliance of model over every class since start: on_time / decided,
 * NAN when nothing was decided, the model is unknown or s is NULL. */
double sched_model_compliance(const struct sched *s, int model);

/* Cumulative counters of model since sched_create (never reset), with the
 * gauges current. Returns 0 or -ENOENT. */
int sched_model_stats(const struct sched *s, int model, struct sched_model_stats *out);

/* The autoscaler's window: the same counters accumulated since the previous
 * sched_window_take() of this model (or since sched_model_add), plus what
 * the autoscaler needs to size replicas. One reader only. */
struct sched_window {
	uint64_t start_us;           /* previous take (or model add) */
	uint64_t end_us;             /* now_us of this take */
	struct sched_model_stats st; /* counts in [start_us, end_us); gauges at end_us */
	uint64_t busy_us;            /* service time completed in the window (all classes) */
	uint32_t est_us;             /* sched_estimate_us at end_us */
	uint32_t ewma_us;            /* sched_ewma_us at end_us */
	uint32_t replicas_ready;     /* sched_model_ready_replicas at end_us */
	uint32_t replicas_present;
	uint32_t concurrency_total;  /* sum of concurrency of ready, non-draining replicas */
};
/* Copies model's window into out and starts a new one at now_us. Returns 0 or -ENOENT. */
int sched_window_take(struct sched *s, int model, uint64_t now_us, struct sched_window *out);

#endif
