/* agent/telemetry/events.h - notable agent events (migration_needed, circuit_open, ...): a bounded ring plus one forwarding sink. */
#ifndef BERTH_EVENTS_H
#define BERTH_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#define EVENTS_TYPE_MAX 32
#define EVENTS_DETAIL_MAX 4096   /* JSON object text, truncated beyond (counted) */

struct event {
	uint64_t seq;                /* 1, 2, ... per events instance */
	int64_t wall_ms;             /* hal_clock_wall_ms() when emitted */
	uint64_t mono_ms;            /* hal_clock_now_us() / 1000 when emitted */
	char type[EVENTS_TYPE_MAX];  /* "migration_needed", "circuit_open", ... */
	char detail[EVENTS_DETAIL_MAX]; /* a JSON object: {"deployment":"x",...} */
};

struct events;

/* Called for every event, from inside events_emit(); ev is valid only during
 * the call (copy what is kept). The telemetry module persists and forwards
 * them through this. */
typedef void (*events_sink_fn)(void *arg, const struct event *ev);

/* A ring of the last cap events (cap >= 1); when full the oldest is
 * overwritten and counted in events_overwritten(). NULL on allocation failure. */
struct events *events_create(unsigned cap);
void events_destroy(struct events *ev);

/* One sink (NULL to remove). */
void events_set_sink(struct events *ev, events_sink_fn fn, void *arg);

/* Records an event of type with a detail given as printf-formatted JSON
 * object text (e.g. "{\"deployment\":\"%s\"}"); also logs it as
 * "event=TYPE detail=...". Never blocks, never allocates. ev NULL is a no-op. */
void events_emit(struct events *ev, const char *type, const char *detail_fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Number of events held (<= cap), and the i-th oldest (0 = oldest held);
 * NULL when i is out of range. */
unsigned events_count(const struct events *ev);
const struct event *events_get(const struct events *ev, unsigned i);
/* Events emitted since creation, and those overwritten before anyone read them
 * from the ring (a sink still saw them). Details cut at EVENTS_DETAIL_MAX are
 * counted in events_truncated(). */
uint64_t events_total(const struct events *ev);
uint64_t events_overwritten(const struct events *ev);
uint64_t events_truncated(const struct events *ev);

/* Escapes s for inclusion inside a JSON string into buf (always NUL-terminated). */
void events_json_escape(const char *s, char *buf, size_t len);

#endif
