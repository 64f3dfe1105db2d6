/* agent/supervise/replica.h - one supervised replica as explicit state, and its lifecycle calls to the engine (internal to agent/supervise/). */
#ifndef BERTH_REPLICA_H
#define BERTH_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/base/backoff.h"
#include "agent/base/loop.h"
#include "agent/supervise/health.h"
#include "agent/supervise/supervisor.h"

struct deployment;
struct hal_engine_result;
struct hal_ctr_info;

/* The exclusive lifecycle call in flight for the replica (at most one). */
enum replica_op {
	REPLICA_OP_NONE = 0,
	REPLICA_OP_CREATE,
	REPLICA_OP_INSPECT,      /* create found the name taken: what is there? */
	REPLICA_OP_START,
	REPLICA_OP_START_DIED,   /* start in flight, and a die event came meanwhile */
	REPLICA_OP_KILL,
	REPLICA_OP_STOP,
	REPLICA_OP_REMOVE,
};

/* Pause (freeze) calls have their own state: one may be in flight next to a
 * lifecycle call (a chaos kill or a removal of a replica being paused). */
enum replica_pause {
	REPLICA_UNPAUSED = 0,
	REPLICA_PAUSING,         /* pause sent: not ready, probes held */
	REPLICA_PAUSED,
	REPLICA_UNPAUSING,       /* unpause sent: still paused until it answers */
};

/* What we intend for the replica. */
enum replica_intent {
	REPLICA_KEEP = 0,
	REPLICA_RETIRE,          /* draining before a scale-down, roll or removal takes it */
	REPLICA_REMOVE,          /* being (or to be) stopped and removed */
};

/* Why it exited; while it is SUP_R_KILLING, why it is being killed. NONE
 * while it runs. */
enum replica_exit {
	REPLICA_EXIT_NONE = 0,
	REPLICA_EXIT_CRASH,      /* exited by itself (any code), or its start failed */
	REPLICA_EXIT_LIVENESS,   /* killed for failing liveness */
	REPLICA_EXIT_CHAOS,      /* killed by a chaos experiment */
};

struct replica {
	struct deployment *dep;
	unsigned slot;
	enum sup_replica_state st;   /* lifecycle */
	enum replica_op op;
	enum replica_pause pause;
	enum replica_intent intent;
	enum replica_exit exit;
	bool ready;                  /* the readiness probe's verdict */
	bool draining;               /* takes no new requests (asked to, or retiring) */
	bool trial;                  /* this start is the circuit's half-open trial */
	bool forget;                 /* gone from the engine; forgotten when the last call returns */
	unsigned inflight;           /* engine calls in flight holding this replica */
	char id[72];
	uint64_t hash;
	int pid;
	uint64_t known_since_us;     /* when its id became known (for list snapshots) */
	uint32_t generation;
	uint32_t restarts;
	uint64_t ready_since_ms;
	uint64_t exited_ms;
	uint64_t created_ms;         /* create sent, until its first ready (start-up time); 0 none */
	uint64_t retire_start_ms;
	uint64_t retire_until_ms;    /* removed then even with requests in flight */
	struct health_probe live;
	struct health_probe readiness;
	struct backoff bo;
	struct loop_timer restart_timer;
	struct loop_timer kill_check;
};

const char *replica_op_name(enum replica_op op);
const char *replica_pause_name(enum replica_pause p);
const char *replica_intent_name(enum replica_intent i);
const char *replica_exit_name(enum replica_exit e);

static inline bool replica_paused(const struct replica *r) { return r->pause != REPLICA_UNPAUSED; }
static inline bool replica_pause_busy(const struct replica *r)
{
	return r->pause == REPLICA_PAUSING || r->pause == REPLICA_UNPAUSING;
}

/* Binds the slot's probes and timers (once, at supervisor creation). */
void replica_init(struct replica *r, struct deployment *d, unsigned slot, struct loop *l);
/* Stops its probes and timers (supervisor teardown). */
void replica_fini(struct replica *r);
/* The slot's state for a deployment just (re)allocated. */
void replica_reset(struct replica *r);

uint16_t replica_port(const struct replica *r);
void replica_view(const struct replica *r, struct sup_replica *v);
/* May receive requests: ready, running, and not draining, paused or going. */
bool replica_serving(const struct replica *r);
/* Tells observers (and the log) when replica_serving() changed from was. */
void replica_serving_changed(struct replica *r, bool was);
void replica_start_probes(struct replica *r);
void replica_stop_probes(struct replica *r);

/* Engine-call accounting: call_sent after a call is queued; every callback
 * starts with call_done (op_done for the exclusive lifecycle call), which
 * returns false when the replica was forgotten meanwhile (stop there). */
void replica_call_sent(struct replica *r);
bool replica_call_done(struct replica *r);
bool replica_op_done(struct replica *r);
/* rc of a call just sent for r: counted when 0, else a retry is kicked. */
int replica_sent_or_retry(struct replica *r, int rc, const char *what);

/* Lifecycle. */
void replica_create(struct replica *r);
void replica_start(struct replica *r);
void replica_running(struct replica *r);
void replica_exited(struct replica *r, int exit_code, bool oom);
void replica_kill(struct replica *r, enum replica_exit why);
void replica_remove(struct replica *r);
void replica_clear(struct replica *r);
/* Restarts a replica waiting in back-off unless the circuit or engine hold it. */
void replica_restart_due(struct replica *r);
/* A die event or list says it may have exited: confirm with inspect. */
void replica_confirm_die(struct replica *r, int exit_code);

/* Pause (true) or unpause a running replica; see supervisor_replica_pause(). */
int replica_pause(struct replica *r, bool pause);

#endif
