/* agent/supervise/plan.h - the supervisor's pure planner: a desired deployment and its observed replicas in, the actions that converge them out; no engine calls, no clock. */
#ifndef BERTH_PLAN_H
#define BERTH_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/model/deploy.h"
#include "agent/supervise/replica.h"
#include "agent/supervise/supervisor.h"

/* What the planner sees of one replica slot. */
struct plan_replica {
	enum sup_replica_state st;
	enum replica_op op;          /* exclusive lifecycle call in flight */
	enum replica_intent intent;
	bool current;                /* runs the deployment's current spec */
	bool serving;                /* replica_serving(): ready, running, not draining/paused/going */
	bool draining;
	bool probed;                 /* its readiness probe ran at least once */
	bool calls;                  /* engine calls in flight still hold the slot */
	bool restart_armed;          /* its restart timer is armed */
};

/* What the planner sees of one deployment. spec is borrowed for the call. */
struct plan_dep {
	const struct deploy_spec *spec;
	bool removing;               /* no longer desired */
	enum sup_circuit circuit;
	uint64_t create_not_before_ms; /* a create failed: none before this */
	bool image_pending;          /* the current spec's image is not in the store yet: no replica of it is
				      * made and no old one retired, so the old version keeps serving */
	struct plan_replica r[DEPLOY_MAX_REPLICAS];
};

/* What the planner sees of the supervisor and the engine. */
struct plan_world {
	bool applied;                /* a desired set was applied */
	bool engine_up;
	bool list_fresh;             /* a complete list answered since the last engine trouble */
	uint64_t now_ms;             /* loop time */
};

enum plan_op {
	PLAN_RESTART = 0,            /* a replica in back-off: restart now */
	PLAN_RETIRE,                 /* goes by decision (drains first); why says which */
	PLAN_UNRETIRE,               /* scaled back up: keep a retiring replica */
	PLAN_CREATE,                 /* a missing replica; trial: the half-open circuit's trial */
	PLAN_FORGET,                 /* a removed deployment whose replicas are all gone */
};

enum plan_why {
	PLAN_WHY_NONE = 0,
	PLAN_WHY_REMOVED,            /* the deployment is no longer desired */
	PLAN_WHY_ROLL_UNREADY,       /* an old-spec replica that serves nothing */
	PLAN_WHY_ROLL,               /* an old-spec replica, one more than desired being ready */
	PLAN_WHY_SCALE_DOWN,
};

struct plan_action {
	enum plan_op op;
	unsigned slot;
	enum plan_why why;
	bool trial;
	unsigned ready;              /* PLAN_WHY_ROLL: replicas serving when it was decided */
};

/* Enough for any plan: a restart, a retire or unretire, and a create per slot. */
#define PLAN_MAX_ACTIONS (3 * DEPLOY_MAX_REPLICAS + 1)

/* Plans one deployment: writes the actions into out (at most max; give it
 * PLAN_MAX_ACTIONS) in the order they are to be run, and returns how many.
 * The executor runs them in order; when a CREATE cannot be sent, the CREATEs
 * after it are skipped (the next reconcile plans them again). Pure: reads
 * only its arguments. */
unsigned plan_deployment(const struct plan_dep *d, const struct plan_world *w, struct plan_action *out,
			 unsigned max);

const char *plan_op_name(enum plan_op op);
/* The reason as logged: "removed", "roll", "scale_down" ("roll" for both roll reasons). */
const char *plan_why_name(enum plan_why why);

#endif
