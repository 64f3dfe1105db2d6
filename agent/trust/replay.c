/* agent/trust/replay.c - the replay window: a rising mark on signed issue times plus the ids above it (pure). */
#include "agent/trust/replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct replay_entry {
	int64_t iat_ms;
	char id[ENVELOPE_ID_MAX + 1];    /* "": a free slot */
};

/* Entries live in fixed slots (a free one has an empty id) so that the store
 * can hold one key per slot: an admission writes its slot and the header,
 * never the whole window. A slot whose entry the mark retired is free here
 * and stale in the store, where loading skips it (its issue time is at or
 * under the persisted mark). */
struct replay {
	unsigned cap, n;
	unsigned hint;                   /* where the search for a free slot starts */
	int64_t window_ms;
	int64_t lwm_ms;
	int64_t newest_ms;
	uint64_t evicted;
	struct replay_entry *e;
};

struct replay *replay_create(unsigned cap, int64_t window_ms)
{
	if (cap < 1 || window_ms < 1)
		return NULL;
	struct replay *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->e = calloc(cap, sizeof(*r->e));
	if (!r->e) {
		free(r);
		return NULL;
	}
	r->cap = cap;
	r->window_ms = window_ms;
	return r;
}

void replay_destroy(struct replay *r)
{
	if (!r)
		return;
	free(r->e);
	free(r);
}

int replay_check(const struct replay *r, const char *id, int64_t iat_ms)
{
	if (iat_ms <= r->lwm_ms)
		return -ESTALE;
	for (unsigned i = 0, seen = 0; i < r->cap && seen < r->n; i++) {
		if (!r->e[i].id[0])
			continue;
		seen++;
		if (strcmp(r->e[i].id, id) == 0)
			return -EALREADY;
	}
	return 0;
}

/* Frees every slot at or under the mark. */
static void prune(struct replay *r)
{
	for (unsigned i = 0; i < r->cap; i++)
		if (r->e[i].id[0] && r->e[i].iat_ms <= r->lwm_ms) {
			r->e[i].id[0] = '\0';
			r->n--;
		}
}

static unsigned free_slot(struct replay *r)
{
	for (unsigned k = 0; k < r->cap; k++) {
		unsigned i = (r->hint + k) % r->cap;
		if (!r->e[i].id[0])
			return i;
	}
	return 0; /* not reached: called only when n < cap */
}

int replay_admit(struct replay *r, const char *id, int64_t iat_ms, unsigned *slot)
{
	int rc = replay_check(r, id, iat_ms);
	if (rc)
		return rc;
	if (!id[0] || strlen(id) > ENVELOPE_ID_MAX)
		return -EINVAL;
	if (r->n == r->cap) {
		/* Full: raise the mark to the oldest issue time held. */
		int64_t oldest = INT64_MAX;
		for (unsigned i = 0; i < r->cap; i++)
			if (r->e[i].id[0] && r->e[i].iat_ms < oldest)
				oldest = r->e[i].iat_ms;
		unsigned before = r->n;
		r->lwm_ms = oldest;
		prune(r);
		r->evicted += before - r->n;
		if (iat_ms <= r->lwm_ms)
			return -ESTALE; /* it was as old as the oldest: the mark now covers it */
	}
	unsigned i = free_slot(r);
	r->e[i].iat_ms = iat_ms;
	snprintf(r->e[i].id, sizeof(r->e[i].id), "%s", id);
	r->n++;
	r->hint = (i + 1) % r->cap;
	if (slot)
		*slot = i;
	if (iat_ms > r->newest_ms)
		r->newest_ms = iat_ms;
	if (r->newest_ms - r->window_ms > r->lwm_ms) {
		r->lwm_ms = r->newest_ms - r->window_ms;
		prune(r);
	}
	return 0;
}

int replay_record(struct replay *r, const char *id, int64_t iat_ms)
{
	return replay_admit(r, id, iat_ms, NULL);
}

void replay_get_stats(const struct replay *r, struct replay_stats *out)
{
	out->lwm_ms = r->lwm_ms;
	out->newest_iat_ms = r->newest_ms;
	out->held = r->n;
	out->cap = r->cap;
	out->evicted = r->evicted;
}

int replay_save_header(const struct replay *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, "R2 %" PRId64 " %" PRId64 " %" PRIu64 "\n", r->lwm_ms, r->newest_ms, r->evicted);
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int replay_save_slot(const struct replay *r, unsigned slot, char *buf, size_t len)
{
	if (slot >= r->cap)
		return -EINVAL;
	int n = r->e[slot].id[0] ? snprintf(buf, len, "%" PRId64 " %s", r->e[slot].iat_ms, r->e[slot].id)
				 : snprintf(buf, len, "-");
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int replay_load_header(struct replay *r, const char *text)
{
	long long lwm, newest;
	unsigned long long evicted;
	int off = 0;
	if (sscanf(text, "R2 %lld %lld %llu\n%n", &lwm, &newest, &evicted, &off) != 3 || off == 0 || text[off] ||
	    lwm < 0 || newest < 0)
		return -EINVAL;
	memset(r->e, 0, r->cap * sizeof(*r->e));
	r->n = 0;
	r->hint = 0;
	r->lwm_ms = lwm;
	r->newest_ms = newest;
	r->evicted = evicted;
	return 0;
}

int replay_load_slot(struct replay *r, unsigned slot, const char *text)
{
	if (slot >= r->cap || r->e[slot].id[0])
		return -EINVAL;
	if (strcmp(text, "-") == 0)
		return 0;
	long long iat;
	char id[ENVELOPE_ID_MAX + 2];
	int used = 0;
	if (sscanf(text, "%lld %65s%n", &iat, id, &used) != 2 || text[used] || strlen(id) > ENVELOPE_ID_MAX || iat < 1)
		return -EINVAL;
	if (iat <= r->lwm_ms)
		return 0; /* retired by the mark after it was written: stale, skipped */
	if (replay_check(r, id, iat) == -EALREADY)
		return -EINVAL;
	r->e[slot].iat_ms = iat;
	memcpy(r->e[slot].id, id, strlen(id) + 1);
	r->n++;
	return 0;
}

int replay_save(const struct replay *r, char *buf, size_t len)
{
	size_t used = 0;
	int n = snprintf(buf, len, "R1 %" PRId64 " %" PRId64 " %" PRIu64 "\n", r->lwm_ms, r->newest_ms, r->evicted);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	used = (size_t)n;
	for (unsigned i = 0; i < r->cap; i++) {
		if (!r->e[i].id[0])
			continue;
		n = snprintf(buf + used, len - used, "%" PRId64 " %s\n", r->e[i].iat_ms, r->e[i].id);
		if (n < 0 || (size_t)n >= len - used)
			return -ENOSPC;
		used += (size_t)n;
	}
	return (int)used;
}

int replay_load(struct replay *r, const char *text)
{
	long long lwm, newest;
	unsigned long long evicted;
	int off = 0;
	if (sscanf(text, "R1 %lld %lld %llu\n%n", &lwm, &newest, &evicted, &off) != 3 || off == 0 || lwm < 0 ||
	    newest < 0)
		return -EINVAL;
	struct replay_entry *tmp = calloc(r->cap, sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	unsigned n = 0;
	const char *p = text + off;
	while (*p) {
		long long iat;
		char id[ENVELOPE_ID_MAX + 2];
		int used = 0;
		if (sscanf(p, "%lld %65s%n", &iat, id, &used) != 2 || p[used] != '\n' || strlen(id) > ENVELOPE_ID_MAX ||
		    iat <= lwm || n == r->cap) {
			free(tmp);
			return -EINVAL;
		}
		tmp[n].iat_ms = iat;
		memcpy(tmp[n].id, id, strlen(id) + 1);
		n++;
		p += used + 1;
	}
	free(r->e);
	r->e = tmp;
	r->n = n;
	r->hint = n % r->cap;
	r->lwm_ms = lwm;
	r->newest_ms = newest;
	r->evicted = evicted;
	return 0;
}

int replay_merge(struct replay *r, const char *text)
{
	struct replay *o = replay_create(r->cap, r->window_ms);
	if (!o)
		return -ENOMEM;
	int rc = replay_load(o, text);
	if (rc == 0) {
		if (o->lwm_ms > r->lwm_ms) {
			r->lwm_ms = o->lwm_ms;
			prune(r);
		}
		r->evicted += o->evicted;
		for (unsigned i = 0; i < o->cap; i++)
			if (o->e[i].id[0] && replay_record(r, o->e[i].id, o->e[i].iat_ms))
				continue; /* held already, or under the mark */
	}
	replay_destroy(o);
	return rc;
}
