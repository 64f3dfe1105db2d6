/* agent/console/republish.h - when the retained reported state is published: structure changes promptly, figures now and then. */
#ifndef BERTH_REPUBLISH_H
#define BERTH_REPUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct republish;

struct republish_opts {
	/* How often the state is looked at, and the most often a change of its
	 * structure goes out (ms; 0: 1000). */
	uint32_t check_ms;
	/* The most often a change of the fast-moving figures alone (request
	 * counts, SLA compliance) goes out (ms; 0: check_ms). */
	uint32_t refresh_ms;
	/* Largest document (bytes); the buffer is allocated once. */
	size_t max_bytes;
	/* Renders the reported state into buf; figures false leaves the
	 * fast-moving figures out. Returns its length or -ENOSPC. Everything
	 * before "desired_version" (the timestamp) is not compared. */
	int (*render)(void *arg, char *buf, size_t len, bool figures);
	/* Whether a publish can go out now (the uplink is connected). */
	bool (*can_publish)(void *arg);
	/* Publishes the document (retained); 0 once the uplink took it. */
	int (*publish)(void *arg, const char *json, size_t len);
	void *arg;
};

/* Publishing policy:
 * - connected: published whatever it holds (the retained copy may be old);
 * - changed: after a command, published at once when anything in it changed;
 * - every check_ms: published when its structure (replicas, health, circuit,
 *   engine, desired version, migration, last error, ...) changed since the
 *   last publish, at most once per check_ms; when only the figures changed,
 *   published once refresh_ms passed since the last publish.
 * An unchanged state is never published again. The timer starts at once.
 * NULL on allocation failure or a full timer table. Free with
 * republish_destroy() (NULL is safe). */
struct republish *republish_create(struct loop *l, const struct republish_opts *o);
void republish_destroy(struct republish *r);

/* The uplink (re)connected: publish now. */
void republish_connected(struct republish *r);
/* A command changed the state: publish now if anything changed. */
void republish_changed(struct republish *r);

struct republish_stats {
	uint64_t published;      /* documents the uplink took */
	uint64_t structural;     /* of those, because the structure changed (checks) */
	uint64_t refreshes;      /* of those, because figures changed and refresh_ms passed */
	uint64_t too_large;      /* renders refused with -ENOSPC */
};
void republish_get_stats(const struct republish *r, struct republish_stats *out);

#endif
