/* agent/infer/sched_heap.h - the scheduler's queues: one 4-ary min-heap of pool entries per (model, class), with the head held in front. */
#ifndef BERTH_SCHED_HEAP_H
#define BERTH_SCHED_HEAP_H

/*
 * Header-only on purpose: every push and pop is inside the decision that
 * bench-sched-cost counts in instructions, and the sift loops are inlined
 * into it. Included by sched.c only (after sched_impl.h).
 */

#include "agent/infer/sched_impl.h"

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
	/* The sift reads up to HEAP_D slots past the last node: they must hold
	 * UINT64_MAX. They are filled as the heap first grows, so memory is
	 * touched for the depth reached, not for the cap. */
	if (__builtin_expect(h->an + HEAP_D > h->key_init, 0)) {
		for (uint32_t j = h->key_init; j < h->an + HEAP_D; j++)
			h->key[j] = UINT64_MAX;
		h->key_init = h->an + HEAP_D;
	}
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

#endif
