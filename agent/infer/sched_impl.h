/* agent/infer/sched_impl.h - the scheduler's state, shared by its files (sched.c: the request path; sched_models.c: models, replicas, set-up and readers). Private to agent/infer/sched*.c. */
#ifndef BERTH_SCHED_IMPL_H
#define BERTH_SCHED_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/infer/sched.h"
#include "agent/infer/sched_est.h"

#define NHEAPS (SCHED_MAX_MODELS * SLA_NCLASSES)
#define MAX_HELD (CONFIG_SCHED_MAX_SLOTS + SCHED_MAX_MODELS * SCHED_MAX_REPLICAS)
#define POOL_SIZE (CONFIG_SCHED_MAX_QUEUED + MAX_HELD)

_Static_assert(NHEAPS <= 64, "heap bitmask is 64 bits");

enum entry_state { ST_FREE = 0, ST_QUEUED, ST_RUNNING, ST_PAUSED };

struct entry {
	uint64_t deadline_us;
	uint64_t arrival_us;
	uint64_t dispatch_us;        /* running: start of the current run (moved on resume) */
	uint64_t paused_at_us;
	uint64_t paused_total_us;
	void *ctx;
	struct model *m;               /* its model */
	struct sched_class_stats *st;  /* its model's cumulative counters of its class */
	uint32_t gen;
	uint32_t size;               /* request size (sched_req.size), 0 unknown */
	uint64_t fifo_key;           /* arrival number: fifo heap key, edf tie-break */
	uint32_t hint_us;            /* own estimate fixed at arrival: the caller's known cost
	                              * (cost_hint_us) or the size fit's; 0: the model's percentile */
	uint32_t work_us;            /* what it adds to its heap's work sum (its mean estimate) */
	uint8_t model;
	uint8_t cls;
	uint8_t state;
	uint8_t attempt;
	int8_t replica;
	int8_t last_replica;
};

/* Heap keys are kept inline (one array of keys beside one of pool indices),
 * so sifting never touches the pool except to record positions, and a
 * comparison is one unsigned compare. edf: the absolute deadline (us, below
 * 2^48: 8.9 years of monotonic clock) shifted left 16 bits, plus the low 16
 * bits of the arrival number, so equal deadlines go to the earlier arrival
 * (exact unless 65536 requests share one deadline microsecond). fifo: the
 * arrival number. */
#define KEY_SEQ_BITS 16
#define KEY_DEADLINE_MAX ((1ull << (64 - KEY_SEQ_BITS)) - 1)

/* 4-ary min-heap of pool entries for one (model, class): half the levels of
 * a binary heap, so a removal moves a node and records its position half as
 * often, for three key compares a level instead of one. key[] has HEAP_D
 * slots beyond cap, and every slot at or past an holds UINT64_MAX, so the
 * children of a node are compared without bounds checks (on equal keys the
 * lower index wins, so a real child always beats the padding). */
#define HEAP_D 4
struct heap {
	uint64_t *key;               /* cap + HEAP_D */
	uint32_t *id;                /* cap: pool index of each node */
	uint32_t an;                 /* nodes in key[]/id[] */
	uint32_t n;                  /* queued: an + front */
	uint32_t cap;
	uint32_t key_init;           /* key[0..key_init) hold keys or UINT64_MAX; the rest untouched */
	uint32_t front;              /* 1: the head is held in front of the array */
	uint64_t top_key;            /* key of the head; UINT64_MAX when n == 0 */
	uint32_t top_id;             /* pool index of the head (n > 0) */
	uint64_t work_us;            /* sum of entries' work_us */
	uint64_t max_deadline_us;    /* upper bound of deadlines in the heap (exact until removals) */
};

struct replica {
	bool present, ready, draining, breaker_open, paused;
	bool usable;                     /* present, ready, !draining, breaker closed, !paused (model_refresh) */
	unsigned concurrency;
	unsigned inflight;
	uint64_t dispatched;
};

struct model {
	char name[SCHED_NAME_MAX];
	struct replica rep[SCHED_MAX_REPLICAS];
	unsigned free_cap;               /* spare concurrency on usable replicas */
	uint32_t free_rep;               /* bit i: replica i is usable and below its concurrency */
	uint64_t heap_bits;              /* its heaps in the heap bitmasks */
	unsigned usable_ready;           /* present + ready + !draining (breaker ignored) */
	unsigned usable;                 /* ... and breaker closed */
	int rep_hi;                      /* 1 + highest replica index ever added */
	struct sched_est est;
	struct sched_model_stats cum;
	struct sched_model_stats win_base; /* cum at the previous window take */
	uint64_t win_start_us;
};

struct sched {
	struct sched_params p;
	struct sched_callbacks cb;
	unsigned busy;                   /* slots held */
	unsigned nmodels;
	struct model *models;            /* SCHED_MAX_MODELS */
	struct heap heaps[NHEAPS];
	uint64_t nonempty;               /* bit h set: heaps[h].n > 0 */
	struct entry *pool;
	uint32_t *pos;                   /* per pool entry: index in its heap, or in held[] */
	uint32_t *free_idx;
	uint32_t nfree;
	uint32_t *held;                  /* running and paused entries */
	uint32_t nheld;
	uint32_t queued_total;
	uint64_t queued_work_us;         /* sum of heaps[].work_us */
	uint64_t arrivals;               /* fifo key */
	uint64_t now_us;
	bool pumping;
	bool repump;
	bool fifo;                       /* key by arrival only (hot-path copies of the policy ops) */
	bool admit;
	bool reserve;
	bool preempt;
	uint64_t capmask;                /* bit h set: the model of heaps[h] has free_cap > 0 */
	uint64_t urgent_mask;            /* bits of every model's urgent heap */
	bool mc;
	bool urgent_gate;                /* reserve || mc */
	/* edf-mc: work arriving per class, measured online (load_note) */
	uint64_t load_acc_us[SLA_NCLASSES]; /* work arrived in the current window */
	uint64_t load_win_end_us;           /* end of the current window */
	double load[SLA_NCLASSES];          /* slots' worth of work arriving (EWMA over windows) */
	double load_above[SLA_NCLASSES];    /* MC_LOAD_SHARE x the load of the classes above */
};

/* Heap of (model, class); and the heaps of model mi in the heap bitmasks. */
static inline unsigned heap_id(unsigned model, unsigned cls) { return model * SLA_NCLASSES + cls; }
#define MODEL_HEAPS(mi) (((1ull << SLA_NCLASSES) - 1) << ((mi) * SLA_NCLASSES))

static inline struct model *model_get(const struct sched *s, int model)
{
	if ((unsigned)model >= s->nmodels) /* a negative model too */
		return NULL;
	return &s->models[model];
}

static inline struct replica *replica_get(const struct sched *s, int model, int idx)
{
	struct model *m = model_get(s, model);
	if (!m || idx < 0 || idx >= SCHED_MAX_REPLICAS)
		return NULL;
	return &m->rep[idx];
}

static inline void set_now(struct sched *s, uint64_t now_us)
{
	if (now_us > s->now_us)
		s->now_us = now_us;
}

/* Own service estimate of a request: fixed at arrival (a known cost or the
 * size fit's), else the model's percentile (0 while the model has too few
 * samples: never refuse what was never measured). */
static inline uint32_t own_est(const struct sched *s, const struct entry *e)
{
	(void)s;
	return e->hint_us ? e->hint_us : e->m->est.est_us;
}

/* Estimated remaining service of a running request at now: its mean
 * estimate at arrival (work_us) less the time it has run. */
static inline uint64_t remaining_us(const struct sched *s, const struct entry *e)
{
	uint64_t end = e->dispatch_us + e->work_us;
	return end > s->now_us ? end - s->now_us : 0;
}

/* EWMA work (us) queued in the given heaps (bitmask) ahead of a request with
 * deadline d: whole heaps whose latest deadline is <= d, a linear share of
 * heaps straddling d (sched.c). */
uint64_t sched_impl_work_ahead_us(const struct sched *s, uint64_t d, uint64_t heaps);

/* edf-mc (sched_mc.c): arrival admission of e (not yet queued), counting
 * its work in its class's load; and the wait it predicts for a request of
 * class cls with deadline d (UINT64_MAX: no capacity left for it). */
bool sched_mc_admit(struct sched *s, const struct entry *e);
uint64_t sched_mc_wait_us(const struct sched *s, unsigned cls, uint64_t d);

/* The request path's passes, for the model and replica calls (sched.c). */
/* Recomputes model mi's replica summary after a replica's state changed. */
void sched_impl_refresh(struct sched *s, unsigned mi);
/* Starts what can start now (a no-op while a pass runs: it repeats). */
void sched_impl_pump(struct sched *s);
/* After s->p.policy and its flags changed (sched_set_params): queued requests re-keyed when the
 * order changed (was_fifo: the old policy's), paused ones resumed when the new policy does
 * not preempt, then a pass. */
void sched_impl_policy_switched(struct sched *s, bool was_fifo);
/* Refuses every queued request of model (it has no replica left). */
void sched_impl_refuse_queue(struct sched *s, int model, enum sched_refusal why);

#endif
