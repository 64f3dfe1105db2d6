/* agent/trust/replay.c - the replay window: a rising mark on signed issue times plus the ids above it (pure). */
#include "agent/trust/replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct replay_entry {
	int64_t iat_ms;
	char id[ENVELOPE_ID_MAX + 1];
};

struct replay {
	unsigned cap, n;
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
	for (unsigned i = 0; i < r->n; i++)
		if (strcmp(r->e[i].id, id) == 0)
			return -EALREADY;
	return 0;
}

/* Drops every entry at or under the mark. */
static void prune(struct replay *r)
{
	unsigned w = 0;
	for (unsigned i = 0; i < r->n; i++)
		if (r->e[i].iat_ms > r->lwm_ms)
			r->e[w++] = r->e[i];
	r->n = w;
}

int replay_record(struct replay *r, const char *id, int64_t iat_ms)
{
	int rc = replay_check(r, id, iat_ms);
	if (rc)
		return rc;
	if (strlen(id) > ENVELOPE_ID_MAX)
		return -EINVAL;
	if (r->n == r->cap) {
		/* Full: raise the mark to the oldest issue time held. */
		int64_t oldest = r->e[0].iat_ms;
		for (unsigned i = 1; i < r->n; i++)
			if (r->e[i].iat_ms < oldest)
				oldest = r->e[i].iat_ms;
		unsigned before = r->n;
		r->lwm_ms = oldest;
		prune(r);
		r->evicted += before - r->n;
		if (iat_ms <= r->lwm_ms)
			return -ESTALE; /* it was as old as the oldest: the mark now covers it */
	}
	r->e[r->n].iat_ms = iat_ms;
	snprintf(r->e[r->n].id, sizeof(r->e[r->n].id), "%s", id);
	r->n++;
	if (iat_ms > r->newest_ms)
		r->newest_ms = iat_ms;
	if (r->newest_ms - r->window_ms > r->lwm_ms) {
		r->lwm_ms = r->newest_ms - r->window_ms;
		prune(r);
	}
	return 0;
}

void replay_get_stats(const struct replay *r, struct replay_stats *out)
{
	out->lwm_ms = r->lwm_ms;
	out->newest_iat_ms = r->newest_ms;
	out->held = r->n;
	out->cap = r->cap;
	out->evicted = r->evicted;
}

int replay_save(const struct replay *r, char *buf, size_t len)
{
	size_t used = 0;
	int n = snprintf(buf, len, "R1 %" PRId64 " %" PRId64 " %" PRIu64 "\n", r->lwm_ms, r->newest_ms, r->evicted);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	used = (size_t)n;
	for (unsigned i = 0; i < r->n; i++) {
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
		for (unsigned i = 0; i < o->n; i++)
			if (replay_record(r, o->e[i].id, o->e[i].iat_ms))
				continue; /* held already, or under the mark */
	}
	replay_destroy(o);
	return rc;
}
