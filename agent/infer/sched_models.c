/* agent/infer/sched_models.c - the scheduler's set-up, its models and replicas, and its readers (the request path is sched.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/infer/sched.h"
#include "agent/infer/sched_impl.h"

#define LOG_TAG "sched"

/* --- names ---------------------------------------------------------------- */

static const char *const policy_names[SCHED_NPOLICIES] = {
	"fifo", "edf", "edf-admit", "edf-reserve", "edf-preempt", "edf-mc",
};
static const char *const refusal_names[SCHED_NREFUSALS] = {
	"none", "deadline_infeasible", "queue_full", "no_ready_replica", "breaker_open",
};

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

/* --- policy ops ----------------------------------------------------------
 * The policies differ in three decisions; everything else is shared. */
struct policy_ops {
	bool edf;            /* key by deadline (else arrival order) */
	bool admit;          /* refuse predicted misses at arrival and dispatch */
	bool reserve;        /* keep reserve_urgent slots for urgent requests */
	bool preempt;        /* pause batch replicas for urgent requests */
	bool mc;             /* criticality-aware admission (urgent as if alone) */
};

static const struct policy_ops policy_ops[SCHED_NPOLICIES] = {
	[SCHED_FIFO] = { .edf = false },
	[SCHED_EDF] = { .edf = true },
	[SCHED_EDF_ADMIT] = { .edf = true, .admit = true },
	[SCHED_EDF_RESERVE] = { .edf = true, .admit = true, .reserve = true },
	[SCHED_EDF_PREEMPT] = { .edf = true, .admit = true, .preempt = true },
	[SCHED_EDF_MC] = { .edf = true, .admit = true, .preempt = true, .mc = true },
};


/* The heaps of every model's urgent class. */
static uint64_t urgent_heaps(void)
{
	uint64_t m = 0;
	for (unsigned mi = 0; mi < SCHED_MAX_MODELS; mi++)
		m |= 1ull << heap_id(mi, SLA_URGENT);
	return m;
}

/* --- set-up, models and replicas --------------------------------------------- */

void sched_params_default(struct sched_params *p, unsigned ncpu)
{
	memset(p, 0, sizeof(*p));
	int pol = sched_policy_parse(CONFIG_SCHED_DEFAULT_POLICY);
	p->policy = pol < 0 ? SCHED_EDF_MC : (enum sched_policy)pol;
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
			log_err("event=bad_params class=%s queue_cap=%u", sla_class_name((enum sla_class)c), p->queue_cap[c]);
			return -EINVAL;
		}
	}
	return 0;
}

/* The hot path's copies of the policy's ops. */
static void policy_flags(struct sched *s)
{
	const struct policy_ops *o = &policy_ops[s->p.policy];
	s->fifo = !o->edf;
	s->admit = o->admit;
	s->reserve = o->reserve;
	s->preempt = o->preempt;
	s->mc = o->mc;
	s->urgent_gate = s->reserve || s->mc;
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
	policy_flags(s);
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

int sched_set_slots(struct sched *s, unsigned slots, uint64_t now_us)
{
	if (slots < 1 || slots > CONFIG_SCHED_MAX_SLOTS)
		return -EINVAL;
	if (s->p.policy == SCHED_EDF_RESERVE && s->p.reserve_urgent >= slots)
		return -EINVAL;
	set_now(s, now_us);
	s->p.slots = slots;
	sched_impl_pump(s);
	return 0;
}

/* Grows model mi's heap of class c to hold cap queued requests (plus the held ones that may
 * come back on a retry); a smaller cap keeps the arrays. */
static int heap_grow(struct sched *s, unsigned mi, unsigned c, unsigned cap)
{
	struct heap *h = &s->heaps[heap_id(mi, c)];
	uint32_t want = cap + MAX_HELD;
	if (want <= h->cap)
		return 0;
	uint64_t *key = realloc(h->key, (want + HEAP_D) * sizeof(*key));
	if (!key)
		return -ENOMEM;
	h->key = key;
	uint32_t *id = realloc(h->id, want * sizeof(*id));
	if (!id)
		return -ENOMEM;
	h->id = id;
	h->cap = want;
	return 0;
}

int sched_set_params(struct sched *s, const struct sched_params *p, uint64_t now_us)
{
	if (params_check(p) < 0)
		return -EINVAL;
	for (unsigned mi = 0; mi < s->nmodels; mi++)
		for (unsigned c = 0; c < SLA_NCLASSES; c++)
			if (heap_grow(s, mi, c, p->queue_cap[c]) < 0)
				return -ENOMEM;
	set_now(s, now_us);
	bool was_fifo = s->fifo;
	enum sched_policy old = s->p.policy;
	s->p = *p;
	policy_flags(s);
	log_inf("event=params_changed policy=%s from=%s slots=%u reserve_urgent=%u queued=%u", policy_names[p->policy],
		policy_names[old], p->slots, p->reserve_urgent, s->queued_total);
	sched_impl_policy_switched(s, was_fifo);
	return 0;
}

unsigned sched_slots(const struct sched *s) { return s->p.slots; }
unsigned sched_slots_busy(const struct sched *s) { return s->busy; }
enum sched_policy sched_policy(const struct sched *s) { return s->p.policy; }

int sched_model_add(struct sched *s, const char *name, uint32_t initial_est_us)
{
	if (!name || !*name || strlen(name) >= SCHED_NAME_MAX)
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
		for (uint32_t i = 0; i <= HEAP_D; i++)
			h->key[i] = UINT64_MAX;
		h->key_init = HEAP_D + 1;
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
	sched_impl_refresh(s, (unsigned)model);
	return 0;
}

int sched_replica_remove(struct sched *s, int model, int idx, uint64_t now_us)
{
	struct replica *r = replica_get(s, model, idx);
	if (!r || !r->present)
		return -ENOENT;
	set_now(s, now_us);
	r->present = false;
	struct model *m = &s->models[model];
	sched_impl_refresh(s, (unsigned)model);
	bool any = false;
	for (int i = 0; i < SCHED_MAX_REPLICAS; i++)
		any |= m->rep[i].present;
	if (!any)
		sched_impl_refuse_queue(s, model, SCHED_REFUSE_NO_READY_REPLICA);
	sched_impl_pump(s);
	return 0;
}

static int replica_flag(struct sched *s, int model, bool *flag, bool v, uint64_t now_us)
{
	set_now(s, now_us);
	*flag = v;
	sched_impl_refresh(s, (unsigned)model);
	sched_impl_pump(s);
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
	sched_impl_refresh(s, (unsigned)model);
	sched_impl_pump(s);
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

/* --- readers ------------------------------------------------------------------ */

uint32_t sched_estimate_us(const struct sched *s, int model)
{
	const struct model *m = model_get(s, model);
	return m ? m->est.est_us : 0;
}

uint32_t sched_estimate_size_us(const struct sched *s, int model, uint32_t size)
{
	const struct model *m = model_get(s, model);
	if (!m)
		return 0;
	if (size && m->est.fit.usable)
		return sched_fit_upper_us(&m->est.fit, size);
	return m->est.est_us;
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
		uint64_t est = e->hint_us ? e->work_us : s->models[e->model].est.ewma_us;
		uint64_t end = e->dispatch_us + est;
		w += end > now_us ? end - now_us : 0;
	}
	uint64_t ms = w / s->p.slots / 1000;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
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
