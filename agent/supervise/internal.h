/* agent/supervise/internal.h - the supervisor's state and the calls between its modules (supervisor, replica, deployment, adopt); nothing outside agent/supervise/ includes it. */
#ifndef BERTH_SUPERVISE_INTERNAL_H
#define BERTH_SUPERVISE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/base/backoff.h"
#include "agent/base/loop.h"
#include "agent/model/deploy.h"
#include "agent/supervise/replica.h"
#include "agent/supervise/supervisor.h"
#include "agent/telemetry/events.h"

#define SUP_LABEL_OWNER "io.berth.owner"
#define SUP_LABEL_DEPLOYMENT "io.berth.deployment"
#define SUP_LABEL_REPLICA "io.berth.replica"
#define SUP_LABEL_HASH "io.berth.spec-hash"
#define SUP_JITTER_PERMILLE 100u
#define SUP_BUSY_RETRY_MS 100u        /* the engine's queue was full: try again */
#define SUP_CREATE_RETRY_MIN_MS 1000u /* back-off after a create the engine refused */
#define SUP_CREATE_RETRY_MAX_MS 60000u

struct hal_engine;
struct hal_invoke;

struct deployment {
	struct supervisor *sup;
	unsigned index;                  /* in sup->deps */
	bool used;
	bool removing;
	struct deploy_spec spec;
	struct replica r[DEPLOY_MAX_REPLICAS];
	enum sup_circuit circuit;
	struct loop_timer circuit_timer;
	uint32_t restarts;
	bool migration_raised;
	char last_error[128];
	uint32_t startup_ms;             /* last measured create -> ready; 0 none yet */
	uint64_t create_not_before_ms;   /* after a failed create */
	bool image_waiting;              /* the gate said no at the last reconcile */
	uint32_t version_exits;          /* exits of current-spec replicas since the spec became current */
	struct backoff create_bo;
};

struct sup_observer {
	sup_observer_fn fn;
	void *arg;
};

struct supervisor {
	struct loop *loop;
	struct hal_engine *engine;
	struct hal_invoke *inv;
	struct sup_config cfg;
	char name_prefix[80];            /* "berth-<device>-" */
	struct deployment *deps[SUP_MAX_DEPLOYMENTS]; /* made on first use (deployment_alloc) */
	uint64_t version;
	bool applied;
	bool started;
	bool engine_up;
	bool engine_known;               /* at least one answer (or failure) seen */
	bool list_fresh;                 /* a list answered since the last engine trouble */
	bool list_inflight;
	bool relist_wanted;
	uint64_t list_sent_us;
	struct prng rng;
	struct backoff engine_bo;
	struct loop_timer resync_timer;
	struct loop_timer kick_timer;
	struct loop_timer engine_timer;
	struct loop_timer housekeep_timer;
	struct sup_observer obs[SUP_MAX_OBSERVERS];
	unsigned nobs;
	sup_image_gate_fn image_gate;    /* whether a spec's image is usable (images flow) */
	sup_spec_filter_fn spec_filter;  /* substitutes a spec as it is applied (images flow) */
	void *spec_filter_arg;
	void *image_gate_arg;
	sup_inflight_fn inflight_fn;     /* requests a replica still serves (dispatcher) */
	void *inflight_arg;
	struct loop_timer drain_timer;   /* polls retiring replicas */
	char spec_json[EVENTS_DETAIL_MAX - 256]; /* scratch for migration_needed */
};

/* supervisor.c: services for the other modules. */
uint64_t supervisor_now_ms(const struct supervisor *s);
/* Arms a one-shot timer; a full timer table is logged (the periodic list and
 * housekeeping recover what the lost timer would have done). */
void supervisor_arm(struct supervisor *s, struct loop_timer *t, uint32_t ms, const char *what);
/* Reconciles again in ms (0: on the next loop turn) unless already due. */
void supervisor_kick_later(struct supervisor *s, unsigned ms);
void supervisor_kick(struct supervisor *s);
void supervisor_notify(struct supervisor *s, const struct replica *r, enum sup_event ev);
/* The engine failed a call for lack of service (down, timing out): mark it
 * away and retry with back-off; or it answered: mark it back. */
bool supervisor_engine_trouble(int err);
void supervisor_engine_failed(struct supervisor *s, int err, const char *what);
void supervisor_engine_answered(struct supervisor *s);

/* deployment.c: a tracked deployment, its circuit breaker and status. */
struct deployment *deployment_find(struct supervisor *s, const char *name);
struct deployment *deployment_alloc(struct supervisor *s);
void deployment_set_error(struct deployment *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void deployment_open_circuit(struct deployment *d, uint32_t delay_ms);
void deployment_on_circuit_timer(void *arg);
/* Raises migration_needed once failures reach the configured count. */
void deployment_raise_migration(struct deployment *d, uint32_t failures);
/* How long a retiring replica may drain: 2 x deadline, clamped. */
uint32_t deployment_drain_bound_ms(const struct deployment *d);
void deployment_status(const struct supervisor *s, const struct deployment *d, struct sup_status *o);

/* drain.c: a replica that goes by decision drains first. drain_retire: when
 * requests may run on it (see supervisor_set_inflight_fn) it leaves the ready
 * list and is removed once they are answered or its bound passed; otherwise
 * it is removed at once. The caller runs drain_check() once its decisions are
 * done. drain_cancel: scaled back up while it drains, keep it. drain_check:
 * removes the retiring replicas whose requests are answered or whose bound
 * passed, and polls again while any waits. */
void drain_retire(struct replica *r, const char *why);
void drain_cancel(struct replica *r);
void drain_check(struct supervisor *s);

/* adopt.c: the engine's labelled containers taken over (after a restart, or
 * when a create finds its name taken). */
const char *adopt_label(const struct hal_ctr_info *c, const char *key);
/* Merges a list answer (a snapshot taken at s->list_sent_us) into the replicas. */
void adopt_list(struct supervisor *s, const struct hal_engine_result *res);
/* Callback of the inspect sent when a create found its name taken. */
void adopt_on_conflict_inspect(void *arg, const struct hal_engine_result *res);

#endif
