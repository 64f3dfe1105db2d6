/* agent/telemetry/events.c - fixed ring of recent events, logged and handed to one sink. */
#include "agent/telemetry/events.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "hal/clock.h"

#define LOG_TAG "events"

struct events {
	unsigned cap;
	unsigned head;       /* index of the oldest */
	unsigned count;
	uint64_t seq;
	uint64_t overwritten;
	uint64_t truncated;
	events_sink_fn sink;
	void *sink_arg;
	struct event ring[];
};

struct events *events_create(unsigned cap)
{
	if (cap == 0)
		return NULL;
	struct events *ev = calloc(1, sizeof(*ev) + (size_t)cap * sizeof(struct event));
	if (!ev)
		return NULL;
	ev->cap = cap;
	return ev;
}

void events_destroy(struct events *ev) { free(ev); }

void events_set_sink(struct events *ev, events_sink_fn fn, void *arg)
{
	ev->sink = fn;
	ev->sink_arg = arg;
}

void events_emit(struct events *ev, const char *type, const char *detail_fmt, ...)
{
	if (!ev)
		return;
	struct event *e;
	if (ev->count == ev->cap) {
		e = &ev->ring[ev->head];
		ev->head = (ev->head + 1) % ev->cap;
		ev->overwritten++;
	} else {
		e = &ev->ring[(ev->head + ev->count) % ev->cap];
		ev->count++;
	}
	e->seq = ++ev->seq;
	e->wall_ms = hal_clock_wall_ms();
	e->mono_ms = hal_clock_now_us() / 1000u;
	snprintf(e->type, sizeof(e->type), "%s", type);
	va_list ap;
	va_start(ap, detail_fmt);
	int n = vsnprintf(e->detail, sizeof(e->detail), detail_fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(e->detail)) {
		ev->truncated++;
		/* Keep the text valid JSON: a marker object instead of a cut one. */
		snprintf(e->detail, sizeof(e->detail), "{\"truncated\":true}");
	}
	log_inf("event=%s seq=%llu detail=%s", e->type, (unsigned long long)e->seq, e->detail);
	if (ev->sink)
		ev->sink(ev->sink_arg, e);
}

unsigned events_count(const struct events *ev) { return ev ? ev->count : 0; }

const struct event *events_get(const struct events *ev, unsigned i)
{
	if (!ev || i >= ev->count)
		return NULL;
	return &ev->ring[(ev->head + i) % ev->cap];
}

uint64_t events_total(const struct events *ev) { return ev ? ev->seq : 0; }
uint64_t events_overwritten(const struct events *ev) { return ev ? ev->overwritten : 0; }
uint64_t events_truncated(const struct events *ev) { return ev ? ev->truncated : 0; }

void events_json_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;
	if (len == 0)
		return;
	for (; *s && o + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		const char *rep = NULL;
		char tmp[8];
		if (ch == '"')
			rep = "\\\"";
		else if (ch == '\\')
			rep = "\\\\";
		else if (ch == '\n')
			rep = "\\n";
		else if (ch < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
			rep = tmp;
		}
		if (rep) {
			size_t n = strlen(rep);
			if (o + n >= len)
				break;
			memcpy(buf + o, rep, n);
			o += n;
		} else {
			buf[o++] = (char)ch;
		}
	}
	buf[o] = '\0';
}
