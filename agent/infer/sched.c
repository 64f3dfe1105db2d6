/* agent/infer/sched.c - EDF request scheduler with admission control over compute slots and replicas (contract in sched.h). */
#include "agent/infer/sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"

#define LOG_TAG "sched"

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
	uint64_t fifo_key;           /* arrival number: fifo heap key, edf tie-break */
	uint32_t hint_us;            /* caller-known cost, 0 unknown */
	uint32_t work_us;            /* what it adds to its heap's work sum */
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

/* Index of the SCHED_EST_PCT percentile among n sorted samples, and how
 * many samples of a full ring lie at or above it. */
#define EST_PIDX(n) ((((n) - 1) * SCHED_EST_PCT + 50) / 100)
#define EST_TOPK (SCHED_EST_RING - EST_PIDX(SCHED_EST_RING))
#define EST_TOPMAX 12                /* at most this many of the largest samples tracked */
_Static_assert(SCHED_EST_RING == 64, "the estimator's slot mask is 64 bits");
_Static_assert(EST_TOPK >= 1 && EST_TOPK < EST_TOPMAX, "EST_TOPK..EST_TOPMAX largest samples tracked");

struct estimator {
	uint32_t ring[SCHED_EST_RING];   /* arrival order of samples */
	uint32_t sorted[SCHED_EST_RING]; /* while the ring fills: the same samples, ascending */
	uint64_t top_mask;               /* full ring: the slots of the ntop largest samples */
	uint64_t top[EST_TOPMAX];        /* sample << 8 | slot of those, descending */
	uint32_t ntop;                   /* EST_TOPK..EST_TOPMAX */
	uint32_t n;
	uint32_t head;                   /* next ring slot to overwrite */
	uint32_t ewma_us;
	uint32_t init_us;
	uint32_t est_us;                 /* cached estimate of one request */
};

struct model {
	char name[DEPLOY_NAME_MAX];
	struct replica rep[SCHED_MAX_REPLICAS];
	unsigned free_cap;               /* spare concurrency on usable replicas */
	uint32_t free_rep;               /* bit i: replica i is usable and below its concurrency */
	uint64_t heap_bits;              /* its heaps in the heap bitmasks */
	unsigned usable_ready;           /* present + ready + !draining (breaker ignored) */
	unsigned usable;                 /* ... and breaker closed */
	int rep_hi;                      /* 1 + highest replica index ever added */
	struct estimator est;
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
};

const uint64_t sched_lat_bounds_us[SCHED_LAT_NBUCKETS] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000, 2000000, 5000000, 10000000, 30000000, UINT64_MAX,
};

/* --- names ---------------------------------------------------------------- */

static const char *const policy_names[SCHED_NPOLICIES] = {
	"fifo", "edf", "edf-admit", "edf-reserve", "edf-preempt",
};
static const char *const refusal_names[SCHED_NREFUSALS] = {
	"none", "deadline_infeasible", "queue_full", "no_ready_replica", "breaker_open",
};
static const char *const class_names[SLA_NCLASSES] = { "urgent", "normal", "batch" };

const char *sched_policy_name(enum sched_policy p)
{
	return (unsigned)p < SCHED_NPOLICIES ? policy_names[p] : "?";
}

int sched_policy_parse(const char *s)
{
	for (int i = 0; s && i < SCHED_NPOLICIES; i++)
		if (!strcmp(s, policy_names[i]))
			return i;
	return -EINVAL;
}

const char *sched_refusal_name(enum sched_refusal r)
{
	return (unsigned)r < SCHED_NREFUSALS ? refusal_names[r] : "?";
}

const char *sched_class_name(enum sla_class c)
{
	return (unsigned)c < SLA_NCLASSES ? class_names[c] : "?";
}

int sched_class_parse(const char *s)
{
	for (int i = 0; s && i < SLA_NCLASSES; i++)
		if (!strcmp(s, class_names[i]))
			return i;
	return -EINVAL;
}

/* --- policy ops ----------------------------------------------------------
 * The policies differ in three decisions; everything else is shared. */
struct policy_ops {
	bool edf;            /* key by deadline (else arrival order) */
	bool admit;          /* refuse predicted misses at arrival and dispatch */
	bool reserve;        /* keep reserve_urgent slots for urgent requests */
	bool preempt;        /* pause batch replicas for urgent requests */
};

static const struct policy_ops policy_ops[SCHED_NPOLICIES] = {
	[SCHED_FIFO] = { .edf = false },
	[SCHED_EDF] = { .edf = true },
	[SCHED_EDF_ADMIT] = { .edf = true, .admit = true },
	[SCHED_EDF_RESERVE] = { .edf = true, .admit = true, .reserve = true },
	[SCHED_EDF_PREEMPT] = { .edf = true, .admit = true, .preempt = true },
};


/* --- estimator -------------------------------------------------------------- */

static void est_init(struct estimator *e, uint32_t init_us)
{
	memset(e, 0, sizeof(*e));
	e->init_us = init_us ? init_us : SCHED_EST_INITIAL_US;
	e->ewma_us = e->init_us;
	e->est_us = 0;
}

/* First index of a[0..n) whose value is >= v (n when none), without
 * branches on the data. */
static inline uint32_t sorted_find(const uint32_t *a, uint32_t n, uint32_t v)
{
	if (!n)
		return 0;
	const uint32_t *base = a;
	while (n > 1) {
		uint32_t half = n / 2;
		base = base[half] < v ? base + half : base;
		n -= half;
	}
	return (uint32_t)(base - a) + (*base < v);
}

/* The percentile of a full ring is its EST_TOPK-th largest sample, so only
 * the largest samples are tracked: top[0..ntop) holds (sample << 8 | slot)
 * in descending order, EST_TOPK <= ntop <= EST_TOPMAX, and every other
 * sample is no larger than any of them. Most samples enter and leave below
 * them and cost a compare or two; one entering above the smallest of them
 * joins them (the smallest drops out when there are EST_TOPMAX); one of
 * them leaving just leaves, until fewer than EST_TOPK remain and a scan of
 * the ring takes the largest of the others back up to EST_TOPMAX. */
static inline uint64_t est_key(const struct estimator *e, uint32_t slot)
{
	return (uint64_t)e->ring[slot] << 8 | slot;
}

/* Tracks the largest untracked samples until EST_TOPMAX are tracked. Each
 * one is no larger than any tracked one, so they go behind them. */
static __attribute__((noinline)) void est_top_refill(struct estimator *e)
{
	uint64_t *t = e->top;
	uint32_t lo = e->ntop, n = lo;
	for (uint64_t cand = ~e->top_mask; cand; cand &= cand - 1) {
		uint64_t k = est_key(e, (uint32_t)__builtin_ctzll(cand));
		uint32_t p;
		if (n < EST_TOPMAX)
			p = n++;
		else if (k > t[EST_TOPMAX - 1])
			p = EST_TOPMAX - 1; /* the smallest drops out */
		else
			continue;
		while (p > lo && t[p - 1] < k) {
			t[p] = t[p - 1];
			p--;
		}
		t[p] = k;
	}
	for (uint32_t q = lo; q < n; q++)
		e->top_mask |= 1ull << (t[q] & 0xff);
	e->ntop = n;
}

/* Full ring: sample us replaces the one in slot h. */
static inline void est_replace(struct estimator *e, uint32_t h, uint32_t us)
{
	uint64_t *t = e->top;
	uint64_t bit = 1ull << h;
	if (e->top_mask & bit) { /* the leaving sample is tracked: drop it */
		uint64_t old = est_key(e, h);
		uint32_t p = 0;
		while (t[p] != old)
			p++;
		uint32_t n = --e->ntop;
		for (; p < n; p++)
			t[p] = t[p + 1];
		e->top_mask &= ~bit;
	}
	e->ring[h] = us;
	uint64_t k = (uint64_t)us << 8 | h;
	uint32_t n = e->ntop;
	if (k > t[n - 1]) { /* ntop >= EST_TOPK - 1 >= 1 here */
		if (n == EST_TOPMAX) {
			e->top_mask &= ~(1ull << (t[n - 1] & 0xff));
			n--;
		}
		uint32_t p = n;
		while (p > 0 && t[p - 1] < k) {
			t[p] = t[p - 1];
			p--;
		}
		t[p] = k;
		e->top_mask |= bit;
		e->ntop = n + 1;
	} else if (n < EST_TOPK) {
		est_top_refill(e);
	}
}

/* Adds a completion's service time. While the ring fills, the samples are
 * also kept sorted; once it is full the oldest sample leaves as the new one
 * enters (est_replace). */
static void est_add(struct estimator *e, uint32_t us)
{
	if (e->n == SCHED_EST_RING) {
		est_replace(e, e->head, us);
		e->head = (e->head + 1) % SCHED_EST_RING;
		e->ewma_us = (uint32_t)(((uint64_t)e->ewma_us * 7 + us) / 8);
		e->est_us = (uint32_t)(e->top[EST_TOPK - 1] >> 8);
		return;
	}
	uint32_t *a = e->sorted;
	uint32_t i = sorted_find(a, e->n, us);
	memmove(&a[i + 1], &a[i], (e->n - i) * sizeof(uint32_t));
	a[i] = us;
	e->n++;
	e->ring[e->head] = us;
	e->head = (e->head + 1) % SCHED_EST_RING;
	if (e->n == 1)
		e->ewma_us = us;
	else
		e->ewma_us = (uint32_t)(((uint64_t)e->ewma_us * 7 + us) / 8);
	if (e->n >= SCHED_EST_MIN_SAMPLES)
		e->est_us = a[EST_PIDX(e->n)];
	else
		e->est_us = 0;
	if (e->n == SCHED_EST_RING) {
		e->top_mask = 0;
		e->ntop = 0;
		est_top_refill(e);
	}
}

/* --- heap ------------------------------------------------------------------- */

static inline bool entry_before(const struct entry *a, const struct entry *b)
{
	if (a->deadline_us != b->deadline_us)
		return a->deadline_us < b->deadline_us;
	return (int32_t)((uint32_t)a->fifo_key - (uint32_t)b->fifo_key) < 0;
}

static inline uint64_t entry_key(const struct sched *s, const struct entry *e)
{
	if (s->fifo)
		return e->fifo_key;
	uint64_t d = e->deadline_us < KEY_DEADLINE_MAX ? e->deadline_us : KEY_DEADLINE_MAX;
	return d << KEY_SEQ_BITS | (e->fifo_key & ((1u << KEY_SEQ_BITS) - 1));
}

/* Index of the smallest of the HEAP_D children starting at c (c < n; the
 * padding makes the missing ones UINT64_MAX). */
static inline uint32_t heap_min_child(const uint64_t *k, uint32_t c)
{
#if HEAP_D == 2
	return c + (k[c + 1] < k[c]);
#else
	uint32_t m01 = c + (k[c + 1] < k[c]);
	uint32_t m23 = c + 2 + (k[c + 3] < k[c + 2]);
	return k[m23] < k[m01] ? m23 : m01;
#endif
}

/* The sift loops keep the arrays, the length and the position table in
 * locals: the position stores would otherwise force reloads. */
static inline __attribute__((always_inline)) void heap_up(struct sched *s, struct heap *h, uint32_t i)
{
	uint64_t *k = h->key;
	uint32_t *id = h->id;
	uint32_t *pos = s->pos;
	const uint64_t nk = k[i];
	const uint32_t nid = id[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / HEAP_D;
		if (nk >= k[parent])
			break;
		k[i] = k[parent];
		id[i] = id[parent];
		pos[id[i]] = i;
		i = parent;
	}
	k[i] = nk;
	id[i] = nid;
	pos[nid] = i;
}

static void heap_down(struct sched *s, struct heap *h, uint32_t i)
{
	uint64_t *k = h->key;
	uint32_t *id = h->id;
	uint32_t *pos = s->pos;
	const uint32_t len = h->an;
	const uint64_t nk = k[i];
	const uint32_t nid = id[i];
	for (;;) {
		uint32_t c = HEAP_D * i + 1;
		if (c >= len)
			break;
		c = heap_min_child(k, c);
		if (k[c] >= nk)
			break;
		k[i] = k[c];
		id[i] = id[c];
		pos[id[i]] = i;
		i = c;
	}
	k[i] = nk;
	id[i] = nid;
	pos[nid] = i;
}

/* Root removal, bottom-up (Floyd): walk the hole down along the smallest
 * children to a leaf, then sift the last node up from there; it nearly
 * always belongs near the bottom. */
static inline __attribute__((always_inline)) void heap_pop_root(struct sched *s, struct heap *h)
{
	uint64_t *k = h->key;
	uint32_t *id = h->id;
	uint32_t *pos = s->pos;
	const uint32_t len = --h->an;
	const uint64_t lk = k[len];
	const uint32_t lid = id[len];
	k[len] = UINT64_MAX;
	if (!len) {
		k[0] = UINT64_MAX;
		return;
	}
	uint32_t i = 0;
	for (;;) {
		uint32_t c = HEAP_D * i + 1;
		if (c >= len)
			break;
		/* the smallest of the four children, keeping its key */
		const uint64_t *kc = &k[c];
		uint64_t k0 = kc[0], k1 = kc[1], k2 = kc[2], k3 = kc[3];
		uint32_t a = k1 < k0;
		uint64_t ka = a ? k1 : k0;
		uint32_t b = 2 + (k3 < k2);
		uint64_t kb = k3 < k2 ? k3 : k2;
		bool lo = kb < ka;
		c += lo ? b : a;
		k[i] = lo ? kb : ka;
		uint32_t cid = id[c];
		id[i] = cid;
		pos[cid] = i;
		i = c;
	}
	k[i] = lk;
	id[i] = lid;
	heap_up(s, h, i);
}

static inline unsigned heap_id(unsigned model, unsigned cls) { return model * SLA_NCLASSES + cls; }

/* The head of a heap is either the root of its array or, when a request
 * arrived with a key below every queued one, held in front of the array
 * (front = 1): such a request is queued and later taken in O(1) instead of
 * climbing to the root and being removed from it. The front is below every
 * node of the array; top_key/top_id name the head either way. */
#define POS_FRONT UINT32_MAX

/* Appends pool entry idx with key k to h's array. */
static inline __attribute__((always_inline)) void heap_array_push(struct sched *s, struct heap *h, uint32_t idx, uint64_t k)
{
	uint32_t i = h->an++;
	h->key[i] = k;
	h->id[i] = idx;
	heap_up(s, h, i);
}

/* The array's root is the head again (no front). */
static inline void heap_top_from_array(struct heap *h)
{
	h->front = 0;
	h->top_key = h->key[0];
	h->top_id = h->id[0];
}

static inline __attribute__((always_inline)) void heap_push(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	unsigned hid = heap_id(e->model, e->cls);
	struct heap *h = &s->heaps[hid];
	uint64_t k = entry_key(s, e);
	h->n++;
	if (k <= h->top_key) { /* UINT64_MAX when empty */
		if (h->front) /* the old head is below every node: it becomes the root */
			heap_array_push(s, h, h->top_id, h->top_key);
		h->front = 1;
		h->top_key = k;
		h->top_id = idx;
		s->pos[idx] = POS_FRONT;
	} else {
		heap_array_push(s, h, idx, k);
	}
	h->work_us += e->work_us;
	s->queued_work_us += e->work_us;
	if (e->deadline_us > h->max_deadline_us) /* 0 when it was empty */
		h->max_deadline_us = e->deadline_us;
	s->nonempty |= 1ull << hid;
	e->state = ST_QUEUED;
	s->queued_total++;
}

/* Heap bookkeeping after e left heap hid. */
static inline void heap_removed(struct sched *s, struct heap *h, unsigned hid, const struct entry *e)
{
	h->work_us -= e->work_us; /* exact integer sums: zero when the heap is empty */
	s->queued_work_us -= e->work_us;
	if (!--h->n) {
		s->nonempty &= ~(1ull << hid);
		h->max_deadline_us = 0;
	}
	s->queued_total--;
}

/* Takes the head e off heap hid. */
static inline __attribute__((always_inline)) void heap_take_head(struct sched *s, unsigned hid, const struct entry *e)
{
	struct heap *h = &s->heaps[hid];
	if (!h->front)
		heap_pop_root(s, h);
	heap_top_from_array(h);
	heap_removed(s, h, hid, e);
}

static void heap_remove(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	unsigned hid = heap_id(e->model, e->cls);
	struct heap *h = &s->heaps[hid];
	uint32_t i = s->pos[idx];
	if (i == POS_FRONT) {
		heap_top_from_array(h);
	} else if (i == 0) {
		heap_pop_root(s, h);
	} else {
		uint32_t last = --h->an;
		if (i != last) {
			uint32_t moved = h->id[last];
			h->key[i] = h->key[last];
			h->id[i] = moved;
			s->pos[moved] = i;
			h->key[last] = UINT64_MAX;
			heap_down(s, h, i);
			heap_up(s, h, s->pos[moved]);
		} else {
			h->key[last] = UINT64_MAX;
		}
	}
	if (!h->front)
		heap_top_from_array(h);
	heap_removed(s, h, hid, e);
}

/* Pool index of the head of heap h (h->n > 0). */
static inline uint32_t heap_head(const struct heap *h) { return h->top_id; }

/* --- models and replicas ---------------------------------------------------- */

/* Heaps of model mi in the heap bitmasks; and of every model's urgent class. */
#define MODEL_HEAPS(mi) (((1ull << SLA_NCLASSES) - 1) << ((mi) * SLA_NCLASSES))
static uint64_t urgent_heaps(void)
{
	uint64_t m = 0;
	for (unsigned mi = 0; mi < SCHED_MAX_MODELS; mi++)
		m |= 1ull << heap_id(mi, SLA_URGENT);
	return m;
}

/* Keeps capmask in step with m's free_cap (call after changing it). */
static inline void cap_sync(struct sched *s, const struct model *m)
{
	if (m->free_cap)
		s->capmask |= m->heap_bits;
	else
		s->capmask &= ~m->heap_bits;
}

/* Recomputes model mi's replica summary (and each replica's usable flag)
 * after a replica's state changed. */
static void model_refresh(struct sched *s, unsigned mi)
{
	struct model *m = &s->models[mi];
	unsigned cap = 0, ur = 0, u = 0;
	uint32_t free_rep = 0;
	for (int i = 0; i < m->rep_hi; i++) {
		struct replica *r = &m->rep[i];
		r->usable = false;
		if (!r->present || !r->ready || r->draining)
			continue;
		ur++;
		if (r->breaker_open)
			continue;
		u++;
		if (r->paused)
			continue;
		r->usable = true;
		if (r->inflight < r->concurrency) {
			cap += r->concurrency - r->inflight;
			free_rep |= 1u << i;
		}
	}
	m->free_cap = cap;
	m->free_rep = free_rep;
	m->usable_ready = ur;
	m->usable = u;
	cap_sync(s, m);
}

static struct model *model_get(const struct sched *s, int model)
{
	if (model < 0 || (unsigned)model >= s->nmodels)
		return NULL;
	return &s->models[model];
}

static struct replica *replica_get(const struct sched *s, int model, int idx)
{
	struct model *m = model_get(s, model);
	if (!m || idx < 0 || idx >= SCHED_MAX_REPLICAS)
		return NULL;
	return &m->rep[idx];
}

/* Own service estimate of a request: its hint, else the model's percentile
 * (0 while the model has too few samples: never refuse what was never measured). */
static inline uint32_t own_est(const struct sched *s, const struct entry *e)
{
	(void)s;
	return e->hint_us ? e->hint_us : e->m->est.est_us;
}

/* --- counters --------------------------------------------------------------- */

/* Only the cumulative counters are counted (each request keeps a pointer
 * to those of its model and class); the autoscaler's window is their
 * difference from a copy taken at the previous sched_window_take. */

/* lat_first[k]: the first latency bucket whose bound (sched_lat_bounds_us)
 * is >= 2^k. Consecutive bounds are at least a factor 2 apart, so
 * [2^k, 2^(k+1)) holds at most one bound and a latency's bucket is
 * lat_first[log2] or the one after it (test_sched checks every bound). */
static const uint8_t lat_first[64] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 12, 13,
	14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14,
	14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14,
};

/* First bucket whose bound is >= lat_us (the last one is +Inf). */
static inline unsigned lat_bucket_of(uint64_t lat_us)
{
	unsigned b = lat_first[63 - __builtin_clzll(lat_us | 1)]; /* 0 us: bucket 0 */
	return b + (lat_us > sched_lat_bounds_us[b]);
}

static inline void count_latency(struct sched_class_stats *st, uint64_t lat_us)
{
	st->lat_bucket[lat_bucket_of(lat_us)]++;
	st->lat_sum_us += lat_us;
}

/* --- request life ------------------------------------------------------------- */

static inline struct sched_dispatch describe(const struct sched *s, uint32_t idx)
{
	const struct entry *e = &s->pool[idx];
	struct sched_dispatch d = {
		.id = ((uint64_t)e->gen << 32) | idx,
		.ctx = e->ctx,
		.model = e->model,
		.replica = e->replica,
		.cls = (enum sla_class)e->cls,
		.arrival_us = e->arrival_us,
		.deadline_us = e->deadline_us,
		.now_us = s->now_us,
		.attempt = e->attempt,
	};
	return d;
}

static void entry_free(struct sched *s, uint32_t idx)
{
	s->pool[idx].state = ST_FREE;
	s->pool[idx].ctx = NULL;
	s->free_idx[s->nfree++] = idx;
}

static void held_add(struct sched *s, uint32_t idx)
{
	s->pos[idx] = s->nheld;
	s->held[s->nheld++] = idx;
}

static void held_remove(struct sched *s, uint32_t idx)
{
	uint32_t i = s->pos[idx];
	s->nheld--;
	if (i != s->nheld) {
		s->held[i] = s->held[s->nheld];
		s->pos[s->held[i]] = i;
	}
}

/* Refuses a queued request (already out of its heap) through the callback. */
static void refuse_accepted(struct sched *s, uint32_t idx, enum sched_refusal why)
{
	struct entry *e = &s->pool[idx];
	e->st->refused[why]++;
	e->st->queued--;
	struct sched_dispatch d = describe(s, idx);
	d.replica = -1;
	entry_free(s, idx);
	s->cb.refuse(s->cb.arg, &d, why);
}

/* Picks the replica for a request of m: spare capacity, not the one that
 * just failed it when another is free, least loaded. -1 if none. */
static inline int pick_replica(const struct model *m, int avoid)
{
	uint32_t cand = m->free_rep;
	if (!(cand & (cand - 1))) /* none or one */
		return cand ? __builtin_ctz(cand) : -1;
	int best = -1, fallback = -1;
	for (; cand; cand &= cand - 1) {
		int i = __builtin_ctz(cand);
		const struct replica *r = &m->rep[i];
		if (i == avoid) {
			fallback = i;
			continue;
		}
		if (best < 0 || r->inflight < m->rep[best].inflight)
			best = i;
	}
	return best >= 0 ? best : fallback;
}

/* Dispatches idx, the head of heap hid. */
static inline __attribute__((always_inline)) void start(struct sched *s, unsigned hid, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	struct model *m = e->m;
	int r = pick_replica(m, e->last_replica);
	heap_take_head(s, hid, e);
	e->state = ST_RUNNING;
	e->replica = (int8_t)r;
	e->dispatch_us = s->now_us;
	struct replica *rp = &m->rep[r];
	if (++rp->inflight >= rp->concurrency)
		m->free_rep &= ~(1u << r);
	rp->dispatched++;
	if (!--m->free_cap) /* pick_replica chose a usable replica with spare capacity */
		cap_sync(s, m);
	s->busy++;
	held_add(s, idx);
	e->st->queued--;
	e->st->running++;
	struct sched_dispatch d = describe(s, idx);
	s->cb.dispatch(s->cb.arg, &d);
}

static void resume(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	struct model *m = &s->models[e->model];
	e->state = ST_RUNNING;
	e->paused_total_us += s->now_us - e->paused_at_us;
	e->dispatch_us += s->now_us - e->paused_at_us;
	m->rep[e->replica].paused = false;
	model_refresh(s, e->model);
	s->busy++;
	log_dbg("event=resume model=%s replica=%d", m->name, e->replica);
	struct sched_dispatch d = describe(s, idx);
	if (s->cb.resume)
		s->cb.resume(s->cb.arg, &d);
}

/* Estimated remaining service of a running request at now. */
static inline uint64_t remaining_us(const struct sched *s, const struct entry *e)
{
	uint64_t est = e->hint_us ? e->hint_us : e->m->est.ewma_us;
	uint64_t end = e->dispatch_us + est;
	return end > s->now_us ? end - s->now_us : 0;
}

/* Earliest paused entry (EDF), or UINT32_MAX. */
static uint32_t best_paused(const struct sched *s)
{
	uint32_t best = UINT32_MAX;
	for (uint32_t i = 0; i < s->nheld; i++) {
		uint32_t idx = s->held[i];
		if (s->pool[idx].state != ST_PAUSED)
			continue;
		if (best == UINT32_MAX || entry_before(&s->pool[idx], &s->pool[best]))
			best = idx;
	}
	return best;
}

/* edf-preempt: an urgent request that could run now (its model has a free
 * replica, and it can still finish in time if started now) but finds every
 * slot taken is treated as about to miss: the replica running the
 * latest-deadline batch request (due after the urgent one, alone on its
 * replica, since pausing a replica freezes everything it runs) is paused
 * and its slot goes to urgent work. A prediction from the current queue
 * alone (wait for the soonest completion, or the urgent backlog on the
 * slots batch does not hold) preempted too late under bursts, when more
 * urgent requests arrive right behind (docs/scheduling.md). Returns true
 * when it paused one. */
static bool try_preempt(struct sched *s)
{
	uint32_t u = UINT32_MAX;
	for (unsigned mi = 0; mi < s->nmodels; mi++) {
		const struct heap *h = &s->heaps[heap_id(mi, SLA_URGENT)];
		if (!h->n || !s->models[mi].free_cap)
			continue;
		if (u == UINT32_MAX || entry_before(&s->pool[heap_head(h)], &s->pool[u]))
			u = heap_head(h);
	}
	if (u == UINT32_MAX)
		return false;
	const struct entry *ue = &s->pool[u];
	if (s->now_us + own_est(s, ue) > ue->deadline_us)
		return false; /* too late even now: dispatch-time admission refuses it */
	uint32_t victim = UINT32_MAX;
	for (uint32_t i = 0; i < s->nheld; i++) {
		uint32_t idx = s->held[i];
		const struct entry *e = &s->pool[idx];
		if (e->state != ST_RUNNING || e->cls != SLA_BATCH || !entry_before(ue, e) ||
		    s->models[e->model].rep[e->replica].inflight != 1)
			continue;
		if (victim == UINT32_MAX || entry_before(&s->pool[victim], e))
			victim = idx;
	}
	if (victim == UINT32_MAX)
		return false;
	struct entry *v = &s->pool[victim];
	struct sched_dispatch d = describe(s, victim);
	if (!s->cb.pause || s->cb.pause(s->cb.arg, &d) != 0)
		return false;
	struct model *vm = &s->models[v->model];
	v->state = ST_PAUSED;
	v->paused_at_us = s->now_us;
	vm->rep[v->replica].paused = true;
	model_refresh(s, v->model);
	s->busy--;
	v->st->preempted++;
	log_dbg("event=preempt model=%s replica=%d for_model=%s", vm->name, v->replica, s->models[ue->model].name);
	return true;
}

/* Gives free slots to the earliest requests that can run. Runs the
 * callbacks; nested calls from callbacks only mark that another pass is due. */
static inline __attribute__((always_inline)) void pump_body(struct sched *s)
{
	s->pumping = true;
	do {
		s->repump = false;
		while (s->busy < s->p.slots) {
			/* Heads of heaps whose model has a free replica (urgent ones
			 * only while the free slots are all reserved). */
			uint64_t mask = s->nonempty & s->capmask;
			if (s->reserve && s->p.slots - s->busy <= s->p.reserve_urgent)
				mask &= s->urgent_mask;
			uint32_t best = UINT32_MAX;
			unsigned bhid = 0;
			if (mask) {
				bhid = (unsigned)__builtin_ctzll(mask);
				uint64_t bkey = s->heaps[bhid].top_key;
				mask &= mask - 1;
				while (mask) {
					unsigned hid = (unsigned)__builtin_ctzll(mask);
					mask &= mask - 1;
					if (s->heaps[hid].top_key < bkey) {
						bkey = s->heaps[hid].top_key;
						bhid = hid;
					}
				}
				best = heap_head(&s->heaps[bhid]);
			}
			if (s->preempt && s->nheld > s->busy) {
				uint32_t p = best_paused(s);
				if (p != UINT32_MAX && (best == UINT32_MAX || entry_before(&s->pool[p], &s->pool[best]))) {
					resume(s, p);
					continue;
				}
			}
			if (best == UINT32_MAX)
				break;
			struct entry *e = &s->pool[best];
			if (s->admit && s->now_us + own_est(s, e) > e->deadline_us) {
				heap_remove(s, best);
				refuse_accepted(s, best, SCHED_REFUSE_DEADLINE_INFEASIBLE);
				continue;
			}
			start(s, bhid, best);
		}
		if (s->preempt && s->busy >= s->p.slots && try_preempt(s))
			s->repump = true;
	} while (s->repump);
	s->pumping = false;
}

static __attribute__((noinline)) void pump_run(struct sched *s) { pump_body(s); }

static inline void pump(struct sched *s)
{
	if (s->pumping) {
		s->repump = true;
		return;
	}
	/* Every slot taken and nothing to preempt: nothing can change. */
	if (s->busy >= s->p.slots && !s->preempt)
		return;
	pump_run(s);
}

/* The same, with the pass inlined (sched_complete: a slot just freed). */
static inline __attribute__((always_inline)) void pump_inline(struct sched *s)
{
	if (s->pumping)
		s->repump = true;
	else
		pump_body(s);
}

/* --- arrival admission ---------------------------------------------------------- */

/* EWMA work (us) queued ahead of a request with deadline d: whole heaps whose
 * latest deadline is <= d, a linear share of heaps straddling d. */
static uint64_t work_ahead_us(const struct sched *s, uint64_t d)
{
	uint64_t w = 0;
	uint64_t mask = s->nonempty;
	while (mask) {
		unsigned hid = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		const struct heap *h = &s->heaps[hid];
		uint64_t lo = s->pool[heap_head(h)].deadline_us;
		if (lo > d)
			continue;
		uint64_t span = h->max_deadline_us - lo;
		if (h->max_deadline_us <= d || !span)
			w += h->work_us;
		else if ((h->work_us | span) >> 62)
			w += (uint64_t)((double)h->work_us * (double)(d - lo) / (double)span);
		else /* the same, converted through signed integers (fewer instructions) */
			w += (uint64_t)(int64_t)((double)(int64_t)h->work_us * (double)(int64_t)(d - lo) /
						 (double)(int64_t)span);
	}
	return w;
}

/* Predicted wait for a slot of a new request, given the work queued ahead
 * of it and the remaining work of the running requests (and the soonest of
 * those to end). Never decreases as ahead grows. */
static inline uint64_t wait_est_us(const struct sched *s, uint64_t ahead, uint64_t run, uint64_t soonest)
{
	if (!ahead && s->busy < s->p.slots)
		return 0;
	uint64_t w = (ahead + run) / s->p.slots;
	if (s->busy >= s->p.slots && soonest != UINT64_MAX && w < soonest)
		w = soonest;
	return w;
}

/* Arrival admission of e (not yet queued): false when now + estimated wait
 * + own estimate > deadline. The work ahead of e is at most all queued
 * work, so when the wait that would give still fits, the request is admitted
 * without interpolating the heaps (the same decision, in O(1)). */
static bool admit_at_arrival(const struct sched *s, const struct entry *e)
{
	bool skip_batch = s->preempt && e->cls == SLA_URGENT;
	uint64_t run = 0, soonest = UINT64_MAX;
	for (uint32_t i = 0; i < s->nheld; i++) {
		const struct entry *r = &s->pool[s->held[i]];
		if (skip_batch && r->cls == SLA_BATCH)
			continue;
		uint64_t rem = r->state == ST_PAUSED ? 0 : remaining_us(s, r);
		run += rem;
		if (rem < soonest)
			soonest = rem;
	}
	uint64_t own = own_est(s, e);
	uint64_t slack = e->deadline_us - s->now_us; /* > 0: checked by sched_submit */
	if (own <= slack && s->queued_work_us < (1ull << 50) &&
	    wait_est_us(s, s->queued_work_us, run, soonest) <= slack - own)
		return true;
	uint64_t ahead = work_ahead_us(s, e->deadline_us);
	return !(s->now_us + wait_est_us(s, ahead, run, soonest) + own > e->deadline_us);
}

/* --- public API -------------------------------------------------------------------- */

void sched_params_default(struct sched_params *p, unsigned ncpu)
{
	memset(p, 0, sizeof(*p));
	p->policy = SCHED_EDF_ADMIT;
	p->slots = ncpu < 1 ? 1 : ncpu > CONFIG_SCHED_MAX_SLOTS ? CONFIG_SCHED_MAX_SLOTS : ncpu;
	p->reserve_urgent = p->slots > 1 ? 1 : 0;
	for (int c = 0; c < SLA_NCLASSES; c++)
		p->queue_cap[c] = CONFIG_SCHED_MAX_QUEUED;
}

static int params_check(const struct sched_params *p)
{
	if ((unsigned)p->policy >= SCHED_NPOLICIES) {
		log_err("event=bad_params policy=%d", (int)p->policy);
		return -EINVAL;
	}
	if (p->slots < 1 || p->slots > CONFIG_SCHED_MAX_SLOTS) {
		log_err("event=bad_params slots=%u max=%d", p->slots, CONFIG_SCHED_MAX_SLOTS);
		return -EINVAL;
	}
	if (p->reserve_urgent >= p->slots && p->policy == SCHED_EDF_RESERVE) {
		log_err("event=bad_params reserve_urgent=%u slots=%u", p->reserve_urgent, p->slots);
		return -EINVAL;
	}
	for (int c = 0; c < SLA_NCLASSES; c++) {
		if (p->queue_cap[c] < 1 || p->queue_cap[c] > CONFIG_SCHED_MAX_QUEUED) {
			log_err("event=bad_params class=%s queue_cap=%u", class_names[c], p->queue_cap[c]);
			return -EINVAL;
		}
	}
	return 0;
}

struct sched *sched_create(const struct sched_params *p, const struct sched_callbacks *cb)
{
	if (!p || !cb || !cb->dispatch || !cb->refuse || params_check(p) < 0)
		return NULL;
	struct sched *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->p = *p;
	s->cb = *cb;
	s->fifo = !policy_ops[p->policy].edf;
	s->admit = policy_ops[p->policy].admit;
	s->reserve = policy_ops[p->policy].reserve;
	s->preempt = policy_ops[p->policy].preempt;
	s->urgent_mask = urgent_heaps();
	s->models = calloc(SCHED_MAX_MODELS, sizeof(*s->models));
	s->pool = calloc(POOL_SIZE, sizeof(*s->pool));
	s->free_idx = calloc(POOL_SIZE, sizeof(*s->free_idx));
	s->pos = calloc(POOL_SIZE, sizeof(*s->pos));
	s->held = calloc(MAX_HELD, sizeof(*s->held));
	if (!s->models || !s->pool || !s->free_idx || !s->held || !s->pos)
		goto errout;
	/* Pop order: lowest index first (keeps the hot part of the pool small). */
	for (uint32_t i = 0; i < POOL_SIZE; i++)
		s->free_idx[i] = POOL_SIZE - 1 - i;
	s->nfree = POOL_SIZE;
	log_inf("event=created policy=%s slots=%u reserve_urgent=%u pool=%d", policy_names[p->policy], p->slots,
		p->reserve_urgent, POOL_SIZE);
	return s;
errout:
	sched_destroy(s);
	return NULL;
}

void sched_destroy(struct sched *s)
{
	if (!s)
		return;
	for (int h = 0; h < NHEAPS; h++) {
		free(s->heaps[h].key);
		free(s->heaps[h].id);
	}
	free(s->held);
	free(s->free_idx);
	free(s->pos);
	free(s->pool);
	free(s->models);
	free(s);
}

static inline void set_now(struct sched *s, uint64_t now_us)
{
	if (now_us > s->now_us)
		s->now_us = now_us;
}

int sched_set_slots(struct sched *s, unsigned slots, uint64_t now_us)
{
	if (slots < 1 || slots > CONFIG_SCHED_MAX_SLOTS)
		return -EINVAL;
	if (s->p.policy == SCHED_EDF_RESERVE && s->p.reserve_urgent >= slots)
		return -EINVAL;
	set_now(s, now_us);
	s->p.slots = slots;
	pump(s);
	return 0;
}

unsigned sched_slots(const struct sched *s) { return s->p.slots; }
unsigned sched_slots_busy(const struct sched *s) { return s->busy; }
enum sched_policy sched_policy(const struct sched *s) { return s->p.policy; }

int sched_model_add(struct sched *s, const char *name, uint32_t initial_est_us)
{
	if (!name || !*name || strlen(name) >= DEPLOY_NAME_MAX)
		return -EINVAL;
	int found = sched_model_find(s, name);
	if (found >= 0)
		return found;
	if (s->nmodels >= SCHED_MAX_MODELS)
		return -ENOSPC;
	unsigned mi = s->nmodels;
	for (unsigned c = 0; c < SLA_NCLASSES; c++) {
		struct heap *h = &s->heaps[heap_id(mi, c)];
		/* Retried requests re-enter the heap past the cap: room for every held one. */
		h->cap = s->p.queue_cap[c] + MAX_HELD;
		free(h->key); /* left by an earlier attempt that ran out of memory */
		free(h->id);
		h->key = malloc((h->cap + HEAP_D) * sizeof(*h->key));
		h->id = calloc(h->cap, sizeof(*h->id));
		if (!h->key || !h->id) {
			free(h->key);
			free(h->id);
			h->key = NULL;
			h->id = NULL;
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < h->cap + HEAP_D; i++)
			h->key[i] = UINT64_MAX;
		h->top_key = UINT64_MAX;
	}
	struct model *m = &s->models[mi];
	memset(m, 0, sizeof(*m));
	strcpy(m->name, name);
	m->heap_bits = MODEL_HEAPS(mi);
	est_init(&m->est, initial_est_us);
	m->win_start_us = s->now_us;
	s->nmodels++;
	return (int)mi;
}

int sched_model_find(const struct sched *s, const char *name)
{
	for (unsigned i = 0; name && i < s->nmodels; i++)
		if (!strcmp(s->models[i].name, name))
			return (int)i;
	return -ENOENT;
}

unsigned sched_model_count(const struct sched *s) { return s->nmodels; }

const char *sched_model_name(const struct sched *s, int model)
{
	const struct model *m = model_get(s, model);
	return m ? m->name : NULL;
}

int sched_replica_add(struct sched *s, int model, int idx, unsigned concurrency)
{
	struct replica *r = replica_get(s, model, idx);
	if (!r || concurrency < 1)
		return -EINVAL;
	if (r->present)
		return -EEXIST;
	r->present = true;
	r->ready = false;
	r->draining = false;
	r->breaker_open = false;
	r->concurrency = concurrency;
	if (idx >= s->models[model].rep_hi)
		s->models[model].rep_hi = idx + 1;
	/* inflight and paused survive a remove/add of the same index: completions
	 * of requests dispatched before the remove are still to come. */
	model_refresh(s, (unsigned)model);
	return 0;
}

/* Refuses every queued request of model (it has no replica left). */
static void refuse_model_queue(struct sched *s, int model, enum sched_refusal why)
{
	for (unsigned c = 0; c < SLA_NCLASSES; c++) {
		struct heap *h = &s->heaps[heap_id((unsigned)model, c)];
		while (h->n) {
			uint32_t idx = heap_head(h);
			heap_remove(s, idx);
			refuse_accepted(s, idx, why);
		}
	}
}

int sched_replica_remove(struct sched *s, int model, int idx, uint64_t now_us)
{
	struct replica *r = replica_get(s, model, idx);
	if (!r || !r->present)
		return -ENOENT;
	set_now(s, now_us);
	r->present = false;
	struct model *m = &s->models[model];
	model_refresh(s, (unsigned)model);
	bool any = false;
	for (int i = 0; i < SCHED_MAX_REPLICAS; i++)
		any |= m->rep[i].present;
	if (!any)
		refuse_model_queue(s, model, SCHED_REFUSE_NO_READY_REPLICA);
	pump(s);
	return 0;
}

static int replica_flag(struct sched *s, int model, bool *flag, bool v, uint64_t now_us)
{
	set_now(s, now_us);
	*flag = v;
	model_refresh(s, (unsigned)model);
	pump(s);
	return 0;
}

int sched_replica_set_ready(struct sched *s, int model, int idx, bool ready, uint64_t now_us)
{
	struct replica *r = replica_get(s, model, idx);
	if (!r || !r->present)
		return -ENOENT;
	return replica_flag(s, model, &r->ready, ready, now_us);
}

int sched_replica_set_draining(struct sched *s, int model, int idx, bool draining, uint64_t now_us)
{
	struct replica *r = replica_get(s, model, idx);
	if (!r || !r->present)
		return -ENOENT;
	return replica_flag(s, model, &r->draining, draining, now_us);
}

int sched_replica_set_breaker(struct sched *s, int model, int idx, bool open, uint64_t now_us)
{
	struct replica *r = replica_get(s, model, idx);
	if (!r || !r->present)
		return -ENOENT;
	return replica_flag(s, model, &r->breaker_open, open, now_us);
}

int sched_replica_set_concurrency(struct sched *s, int model, int idx, unsigned concurrency, uint64_t now_us)
{
	struct replica *r = replica_get(s, model, idx);
	if (!r || !r->present)
		return -ENOENT;
	if (concurrency < 1)
		return -EINVAL;
	set_now(s, now_us);
	r->concurrency = concurrency;
	model_refresh(s, (unsigned)model);
	pump(s);
	return 0;
}

int sched_replica_get(const struct sched *s, int model, int idx, struct sched_replica_info *out)
{
	const struct replica *r = replica_get(s, model, idx);
	if (!r || (!r->present && !r->inflight))
		return -ENOENT;
	*out = (struct sched_replica_info){
		.present = r->present,
		.ready = r->ready,
		.draining = r->draining,
		.breaker_open = r->breaker_open,
		.paused = r->paused,
		.concurrency = r->concurrency,
		.inflight = r->inflight,
		.dispatched = r->dispatched,
	};
	return 0;
}

unsigned sched_model_ready_replicas(const struct sched *s, int model)
{
	const struct model *m = model_get(s, model);
	return m ? m->usable_ready : 0;
}

int sched_submit(struct sched *s, const struct sched_req *r, uint64_t now_us, uint64_t *id_out,
		 enum sched_refusal *reason_out)
{
	struct model *m = model_get(s, r->model);
	if (!m || (unsigned)r->cls >= SLA_NCLASSES || r->deadline_us <= now_us)
		return -EINVAL;
	set_now(s, now_us);
	unsigned c = (unsigned)r->cls;
	enum sched_refusal why = SCHED_REFUSE_NONE;
	struct sched_class_stats *st = &m->cum.cls[c];
	st->offered++;
	if (!m->usable_ready)
		why = SCHED_REFUSE_NO_READY_REPLICA;
	else if (!m->usable)
		why = SCHED_REFUSE_BREAKER_OPEN;
	else if (st->queued >= s->p.queue_cap[c] || s->queued_total >= CONFIG_SCHED_MAX_QUEUED ||
		 !s->nfree)
		why = SCHED_REFUSE_QUEUE_FULL;
	if (why)
		goto refused;

	uint32_t idx = s->free_idx[--s->nfree];
	struct entry *e = &s->pool[idx];
	if (++e->gen == 0)
		e->gen = 1;
	e->deadline_us = r->deadline_us;
	e->arrival_us = s->now_us;
	e->paused_total_us = 0;
	e->ctx = r->ctx;
	e->st = st;
	e->m = m;
	e->fifo_key = s->arrivals++;
	e->hint_us = r->cost_hint_us;
	e->work_us = r->cost_hint_us ? r->cost_hint_us : m->est.ewma_us;
	e->model = (uint8_t)r->model;
	e->cls = (uint8_t)c;
	e->attempt = 0;
	e->replica = -1;
	e->last_replica = -1;

	if (s->admit && !admit_at_arrival(s, e)) {
		entry_free(s, idx);
		why = SCHED_REFUSE_DEADLINE_INFEASIBLE;
		goto refused;
	}
	heap_push(s, idx);
	st->queued++;
	if (id_out)
		*id_out = ((uint64_t)e->gen << 32) | idx;
	if (reason_out)
		*reason_out = SCHED_REFUSE_NONE;
	pump(s);
	return 0;

refused:
	st->refused[why]++;
	if (reason_out)
		*reason_out = why;
	return -EAGAIN;
}

static struct entry *entry_by_id(const struct sched *s, uint64_t id, uint32_t *idx_out)
{
	uint32_t idx = (uint32_t)id;
	if (idx >= POOL_SIZE)
		return NULL;
	struct entry *e = &s->pool[idx];
	if (e->state == ST_FREE || e->gen != (uint32_t)(id >> 32))
		return NULL;
	*idx_out = idx;
	return e;
}

/* Takes a running/paused entry off its replica and slot. */
static inline __attribute__((always_inline)) void release(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	struct model *m = e->m;
	struct replica *rp = &m->rep[e->replica];
	bool was_paused = e->state == ST_PAUSED;
	if (was_paused) {
		e->paused_total_us += s->now_us - e->paused_at_us;
		rp->paused = false;
	} else {
		s->busy--;
	}
	if (rp->inflight)
		rp->inflight--;
	if (was_paused) {
		model_refresh(s, e->model);
	} else if (rp->usable && rp->inflight < rp->concurrency) {
		m->free_rep |= 1u << e->replica;
		if (!m->free_cap++)
			cap_sync(s, m);
	}
	held_remove(s, idx);
	e->st->running--;
}

/* SCHED_DONE_RETRY with time left: idx (released) goes back to its queue. */
static __attribute__((noinline)) void requeue(struct sched *s, uint32_t idx)
{
	struct entry *e = &s->pool[idx];
	e->attempt++;
	e->last_replica = e->replica;
	e->replica = -1;
	e->st->retries++;
	heap_push(s, idx);
	e->st->queued++;
	pump(s);
}

int sched_complete(struct sched *s, uint64_t id, enum sched_outcome outcome, uint64_t service_us, uint64_t now_us)
{
	uint32_t idx;
	struct entry *e = entry_by_id(s, id, &idx);
	if (!e || (e->state != ST_RUNNING && e->state != ST_PAUSED))
		return -ENOENT;
	set_now(s, now_us);
	struct sched_class_stats *st = e->st;
	release(s, idx);
	if (outcome == SCHED_DONE_OK) {
		uint64_t active = service_us > e->paused_total_us ? service_us - e->paused_total_us : service_us;
		if (service_us) {
			est_add(&e->m->est, active > UINT32_MAX ? UINT32_MAX : (uint32_t)active);
			st->service_sum_us += active;
		}
		if (s->now_us <= e->deadline_us)
			st->on_time++;
		else
			st->late++;
		count_latency(st, s->now_us - e->arrival_us);
	} else if (outcome == SCHED_DONE_RETRY && e->attempt < SCHED_MAX_RETRIES && s->now_us < e->deadline_us) {
		requeue(s, idx);
		return 0;
	} else {
		st->failed++;
	}
	entry_free(s, idx);
	pump_inline(s);
	return 0;
}

int sched_cancel(struct sched *s, uint64_t id, uint64_t now_us)
{
	uint32_t idx;
	struct entry *e = entry_by_id(s, id, &idx);
	if (!e)
		return -ENOENT;
	set_now(s, now_us);
	if (e->state == ST_QUEUED) {
		heap_remove(s, idx);
		e->st->queued--;
	} else {
		release(s, idx);
	}
	e->st->cancelled++;
	entry_free(s, idx);
	pump(s);
	return 0;
}

/* When the head of heap hid must be refused: admit policies refuse once it
 * cannot finish in time; a model without usable replicas, once its deadline
 * passed (every policy). UINT64_MAX: never. */
static uint64_t head_due_us(const struct sched *s, unsigned hid)
{
	const struct heap *h = &s->heaps[hid];
	const struct entry *e = &s->pool[heap_head(h)];
	const struct model *m = &s->models[hid / SLA_NCLASSES];
	if (s->admit) {
		uint64_t own = own_est(s, e);
		return e->deadline_us > own ? e->deadline_us - own : 0;
	}
	if (!m->usable)
		return e->deadline_us;
	return UINT64_MAX;
}

uint64_t sched_next_due_us(const struct sched *s)
{
	uint64_t due = UINT64_MAX;
	uint64_t mask = s->nonempty;
	while (mask) {
		unsigned hid = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		uint64_t d = head_due_us(s, hid);
		if (d < due)
			due = d;
	}
	/* Strictly after the moment it becomes infeasible. */
	return due == UINT64_MAX ? due : due + 1;
}

void sched_tick(struct sched *s, uint64_t now_us)
{
	set_now(s, now_us);
	uint64_t mask = s->nonempty;
	while (mask) {
		unsigned hid = (unsigned)__builtin_ctzll(mask);
		mask &= mask - 1;
		struct heap *h = &s->heaps[hid];
		const struct model *m = &s->models[hid / SLA_NCLASSES];
		while (h->n) {
			uint32_t idx = heap_head(h);
			uint64_t due = head_due_us(s, hid);
			if (due == UINT64_MAX || s->now_us <= due)
				break;
			enum sched_refusal why = !m->usable_ready ? SCHED_REFUSE_NO_READY_REPLICA :
						 !m->usable ? SCHED_REFUSE_BREAKER_OPEN :
							      SCHED_REFUSE_DEADLINE_INFEASIBLE;
			heap_remove(s, idx);
			refuse_accepted(s, idx, why);
		}
	}
	pump(s);
}

uint32_t sched_estimate_us(const struct sched *s, int model)
{
	const struct model *m = model_get(s, model);
	return m ? m->est.est_us : 0;
}

uint32_t sched_ewma_us(const struct sched *s, int model)
{
	const struct model *m = model_get(s, model);
	return m ? m->est.ewma_us : 0;
}

uint32_t sched_backlog_ms(const struct sched *s, uint64_t now_us)
{
	uint64_t w = 0;
	for (unsigned h = 0; h < NHEAPS; h++)
		w += s->heaps[h].work_us;
	for (uint32_t i = 0; i < s->nheld; i++) {
		const struct entry *e = &s->pool[s->held[i]];
		uint64_t est = e->hint_us ? e->hint_us : s->models[e->model].est.ewma_us;
		uint64_t end = e->dispatch_us + est;
		w += end > now_us ? end - now_us : 0;
	}
	uint64_t ms = w / s->p.slots / 1000;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

double sched_compliance(const struct sched_class_stats *st)
{
	uint64_t decided = st->on_time + st->late + st->failed + sched_refused_total(st) + st->cancelled;
	return decided ? (double)st->on_time / (double)decided : 1.0;
}

uint64_t sched_refused_total(const struct sched_class_stats *st)
{
	uint64_t n = 0;
	for (int r = 1; r < SCHED_NREFUSALS; r++)
		n += st->refused[r];
	return n;
}

int sched_model_stats(const struct sched *s, int model, struct sched_model_stats *out)
{
	const struct model *m = model_get(s, model);
	if (!m)
		return -ENOENT;
	*out = m->cum;
	return 0;
}

int sched_window_take(struct sched *s, int model, uint64_t now_us, struct sched_window *out)
{
	struct model *m = model_get(s, model);
	if (!m)
		return -ENOENT;
	set_now(s, now_us);
	memset(out, 0, sizeof(*out));
	out->start_us = m->win_start_us;
	out->end_us = s->now_us;
	for (int c = 0; c < SLA_NCLASSES; c++) {
		const struct sched_class_stats *a = &m->cum.cls[c], *b = &m->win_base.cls[c];
		struct sched_class_stats *o = &out->st.cls[c];
		o->offered = a->offered - b->offered;
		o->on_time = a->on_time - b->on_time;
		o->late = a->late - b->late;
		o->failed = a->failed - b->failed;
		for (int r = 0; r < SCHED_NREFUSALS; r++)
			o->refused[r] = a->refused[r] - b->refused[r];
		o->cancelled = a->cancelled - b->cancelled;
		o->retries = a->retries - b->retries;
		o->preempted = a->preempted - b->preempted;
		for (int k = 0; k < SCHED_LAT_NBUCKETS; k++)
			o->lat_bucket[k] = a->lat_bucket[k] - b->lat_bucket[k];
		o->lat_sum_us = a->lat_sum_us - b->lat_sum_us;
		o->service_sum_us = a->service_sum_us - b->service_sum_us;
		o->queued = a->queued;
		o->running = a->running;
		out->busy_us += o->service_sum_us;
	}
	out->est_us = m->est.est_us;
	out->ewma_us = m->est.ewma_us;
	out->replicas_ready = m->usable_ready;
	for (int i = 0; i < SCHED_MAX_REPLICAS; i++) {
		const struct replica *r = &m->rep[i];
		out->replicas_present += r->present;
		if (r->present && r->ready && !r->draining)
			out->concurrency_total += r->concurrency;
	}
	m->win_base = m->cum;
	m->win_start_us = s->now_us;
	return 0;
}
