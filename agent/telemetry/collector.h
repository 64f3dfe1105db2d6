/* agent/telemetry/collector.h - the periodic sampler: node metrics plus registered sources, one row per tick, and events. */
#ifndef BERTH_COLLECTOR_H
#define BERTH_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct store;
struct collector;

/* A JSON text being built into a fixed buffer (no allocation). Once a write
 * does not fit, overflow is set and later writes are ignored. */
struct collector_buf {
	char *p;
	size_t len;
	size_t cap;
	bool overflow;
};
void collector_buf_printf(struct collector_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A source writes exactly one JSON value (usually an object) describing its
 * figures for this tick; the sampler puts it under "name" in the row. A value
 * that does not fit is left out of the row and counted (sources_truncated). */
typedef void (*collector_source_fn)(void *arg, struct collector_buf *b);

struct collector_opts {
	const char *data_dir;      /* its filesystem is reported as disk */
	uint32_t interval_ms;
	void (*after_tick)(void *arg); /* e.g. kick the forwarder */
	void *arg;
};

struct collector_stats {
	uint64_t ticks;
	uint64_t rows_written;
	uint64_t rows_failed;       /* the tick's transaction failed (counted by the store when dropped) */
	uint64_t sources_truncated;
	uint64_t events;
	uint64_t store_retries;     /* failed attempts to open an unavailable store */
};

/* Starts sampling every interval_ms on loop into st (borrowed). Returns NULL
 * on allocation failure. */
struct collector *collector_create(struct loop *l, struct store *st, const struct collector_opts *o);
void collector_destroy(struct collector *t);
/* A new period (a reload): the next row interval_ms from now, then every interval_ms
 * (0: only collector_tick). Returns 0 or -ENOSPC (no timer). */
int collector_set_interval(struct collector *t, uint32_t interval_ms) __attribute__((warn_unused_result));

struct sampler;
/* Takes the node figures from the sampler's latest node sample (read on the
 * same interval, same filesystem) instead of reading /proc and statfs a second
 * time each tick; falls back to its own reading while the sampler has none
 * newer than two intervals. NULL: always its own reading. */
void collector_set_sampler(struct collector *t, const struct sampler *m);

/* Registers a source (name: a JSON key, copied). Returns 0, -EEXIST, or
 * -ENOSPC beyond CONFIG_TELEMETRY_MAX_SOURCES. */
int collector_register(struct collector *t, const char *name, collector_source_fn fn, void *arg)
	__attribute__((warn_unused_result));
void collector_unregister(struct collector *t, const char *name);

/* Takes one sample now: node stats and every source, written in one
 * transaction. Returns 0 or -errno. */
int collector_tick(struct collector *t) __attribute__((warn_unused_result));

/* Appends an event (a JSON object text, e.g. {"event":"crash_loop",...}) to
 * the outbox with event priority, committed at once. Returns 0 or -errno. */
int collector_event(struct collector *t, const char *json, size_t len) __attribute__((warn_unused_result));

void collector_get_stats(const struct collector *t, struct collector_stats *out);

#endif
