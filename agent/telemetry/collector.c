/* agent/telemetry/collector.c - samples node figures and registered sources each interval into one store transaction. */
#include "agent/telemetry/collector.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/backoff.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/telemetry/sampler.h"
#include "agent/telemetry/store.h"
#include "hal/clock.h"
#include "hal/sys.h"

#define LOG_TAG "collector"

struct source {
	char name[32];
	collector_source_fn fn;
	void *arg;
};

struct collector {
	struct loop *loop;
	struct store *st;
	char data_dir[256];
	struct collector_opts o;
	struct loop_timer timer;
	struct source sources[CONFIG_TELEMETRY_MAX_SOURCES];
	unsigned nsources;
	struct hal_node_stats prev;
	bool have_prev;
	const struct sampler *sampler; /* node figures from its latest sample; NULL: read them */
	char *row;
	struct collector_stats stats;
	/* Degraded store: reopened with a back-off (1 s doubling to 60 s) from the ticks. */
	struct backoff reopen;
	uint64_t reopen_at_ms;
};

void collector_buf_printf(struct collector_buf *b, const char *fmt, ...)
{
	if (b->overflow)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->overflow = true;
		b->p[b->len] = '\0';
		return;
	}
	b->len += (size_t)n;
}

static void on_timer(void *arg)
{
	struct collector *t = arg;
	if (collector_tick(t) != 0) {
		/* Counted in rows_failed and logged by collector_tick. */
	}
}

struct collector *collector_create(struct loop *l, struct store *st, const struct collector_opts *o)
{
	struct collector *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->loop = l;
	t->st = st;
	t->o = *o;
	snprintf(t->data_dir, sizeof(t->data_dir), "%s", o->data_dir ? o->data_dir : "/");
	t->o.data_dir = t->data_dir;
	t->row = malloc(CONFIG_TELEMETRY_ROW_BYTES);
	loop_timer_init(&t->timer, on_timer, t);
	backoff_init(&t->reopen, 1000, 60000, 0, 0, false, NULL);
	if (!t->row || (o->interval_ms && loop_timer_start(l, &t->timer, o->interval_ms, o->interval_ms) < 0)) {
		collector_destroy(t);
		return NULL;
	}
	return t;
}

int collector_set_interval(struct collector *t, uint32_t interval_ms)
{
	t->o.interval_ms = interval_ms;
	if (!interval_ms) {
		loop_timer_stop(t->loop, &t->timer);
		return 0;
	}
	return loop_timer_start(t->loop, &t->timer, interval_ms, interval_ms) < 0 ? -ENOSPC : 0;
}

void collector_destroy(struct collector *t)
{
	if (!t)
		return;
	loop_timer_stop(t->loop, &t->timer);
	free(t->row);
	free(t);
}

int collector_register(struct collector *t, const char *name, collector_source_fn fn, void *arg)
{
	for (unsigned i = 0; i < t->nsources; i++)
		if (strcmp(t->sources[i].name, name) == 0)
			return -EEXIST;
	if (t->nsources >= CONFIG_TELEMETRY_MAX_SOURCES || strlen(name) >= sizeof(t->sources[0].name))
		return -ENOSPC;
	struct source *s = &t->sources[t->nsources++];
	strcpy(s->name, name);
	s->fn = fn;
	s->arg = arg;
	return 0;
}

void collector_unregister(struct collector *t, const char *name)
{
	for (unsigned i = 0; i < t->nsources; i++) {
		if (strcmp(t->sources[i].name, name) == 0) {
			t->sources[i] = t->sources[--t->nsources];
			return;
		}
	}
}

void collector_set_sampler(struct collector *t, const struct sampler *m) { t->sampler = m; }

/* The sampler's node sample of this interval, as the collector's own reading would be. */
static bool node_from_sampler(struct collector *t, struct hal_node_stats *n, double *cpu_pct)
{
	struct metric_node_sample s;
	if (!t->sampler || sampler_node_latest(t->sampler, &s) < 0)
		return false;
	uint64_t now_ms = hal_clock_now_us() / 1000u;
	if (s.mono_ms + 2ull * (t->o.interval_ms ? t->o.interval_ms : 1000u) < now_ms)
		return false;
	memset(n, 0, sizeof(*n));
	n->ncpu = s.ncpu;
	n->mem_total_bytes = s.mem_total_bytes;
	n->mem_avail_bytes = s.mem_avail_bytes;
	n->load1 = s.load1;
	n->disk_total_bytes = s.disk_total_bytes;
	n->disk_free_bytes = s.disk_free_bytes;
	n->uptime_s = s.uptime_s;
	n->temp_mc = s.temp_mc;
	*cpu_pct = t->have_prev ? s.cpu_pct : -1; /* the sampler's first sample has none */
	t->have_prev = true;
	return true;
}

static void node_figures(struct collector *t, struct collector_buf *b)
{
	struct hal_node_stats n;
	double cpu_pct = -1;
	if (!node_from_sampler(t, &n, &cpu_pct)) {
		int rc = hal_sys_node_stats(t->data_dir, &n);
		if (rc) {
			collector_buf_printf(b, "\"node\":{\"error\":\"%s\"}", strerror(-rc));
			return;
		}
		if (t->have_prev && n.cpu_total_ticks > t->prev.cpu_total_ticks)
			cpu_pct = 100.0 * (double)(n.cpu_busy_ticks - t->prev.cpu_busy_ticks) /
				  (double)(n.cpu_total_ticks - t->prev.cpu_total_ticks);
		t->prev = n;
		t->have_prev = true;
	}
	collector_buf_printf(b, "\"node\":{");
	if (cpu_pct >= 0) /* needs two readings */
		collector_buf_printf(b, "\"cpu_pct\":%.1f,", cpu_pct);
	collector_buf_printf(b,
			     "\"ncpu\":%u,\"mem_total_bytes\":%" PRIu64
			     ",\"mem_avail_bytes\":%" PRIu64 ",\"load1\":%.2f,\"disk_total_bytes\":%" PRIu64
			     ",\"disk_free_bytes\":%" PRIu64 ",\"uptime_s\":%" PRIu64,
			     n.ncpu, n.mem_total_bytes, n.mem_avail_bytes, n.load1, n.disk_total_bytes,
			     n.disk_free_bytes, n.uptime_s);
	if (n.temp_mc != INT32_MIN)
		collector_buf_printf(b, ",\"temp_c\":%.1f", n.temp_mc / 1000.0);
	collector_buf_printf(b, "}");
}

/* An unavailable store is tried again when its back-off allows; the ticks meanwhile are
 * dropped and counted by the store. Back again, an event says so (it is buffered). */
static void store_reopen(struct collector *t)
{
	if (store_available(t->st))
		return;
	uint64_t now = hal_clock_now_us() / 1000u;
	if (now < t->reopen_at_ms)
		return;
	int rc = store_retry(t->st);
	if (rc) {
		uint32_t d = backoff_next_ms(&t->reopen);
		t->reopen_at_ms = now + d;
		t->stats.store_retries++;
		log_wrn("event=store_retry_failed err=%s next_ms=%u", strerror(-rc), d);
		return;
	}
	backoff_reset(&t->reopen);
	struct store_stats ss;
	store_get_stats(t->st, &ss);
	char ev[256];
	int n = snprintf(ev, sizeof(ev),
			 "{\"event\":\"store_available\",\"detail\":{\"dropped_telemetry\":%" PRIu64
			 ",\"dropped_events\":%" PRIu64 "}}",
			 ss.dropped_telemetry, ss.dropped_events);
	if (store_append(t->st, STORE_EVENT, STORE_PRIO_EVENT, hal_clock_wall_ms(), ev, (size_t)n, NULL))
		log_wrn("event=event_not_stored type=store_available");
}

int collector_tick(struct collector *t)
{
	store_reopen(t);
	struct collector_buf b = { .p = t->row, .cap = CONFIG_TELEMETRY_ROW_BYTES };
	t->stats.ticks++;
	collector_buf_printf(&b, "{");
	node_figures(t, &b);
	struct store_stats ss;
	store_get_stats(t->st, &ss);
	/* Dropped rows are reported as telemetry themselves. */
	collector_buf_printf(&b,
			     ",\"store\":{\"rows\":%" PRIu64 ",\"dropped_telemetry\":%" PRIu64 ",\"dropped_events\":%" PRIu64
			     ",\"used_bytes\":%" PRIu64 ",\"budget_bytes\":%" PRIu64 ",\"file_bytes\":%" PRIu64
			     ",\"ticks\":%" PRIu64 "}",
			     ss.rows, ss.dropped_telemetry, ss.dropped_events, ss.used_bytes, ss.budget_bytes,
			     ss.file_bytes, t->stats.ticks);
	for (unsigned i = 0; i < t->nsources && !b.overflow; i++) {
		size_t mark = b.len;
		collector_buf_printf(&b, ",\"%s\":", t->sources[i].name);
		struct collector_buf sub = { .p = b.p + b.len, .cap = b.overflow ? 0 : b.cap - b.len - 2 };
		if (!b.overflow && sub.cap > 1) {
			t->sources[i].fn(t->sources[i].arg, &sub);
			if (!sub.overflow && sub.len) {
				b.len += sub.len;
				continue;
			}
		}
		/* Did not fit (or wrote nothing): leave it out, keep the row valid. */
		t->stats.sources_truncated++;
		log_wrn("event=source_truncated source=%s", t->sources[i].name);
		b.overflow = false;
		b.len = mark;
		b.p[b.len] = '\0';
	}
	collector_buf_printf(&b, "}");
	if (b.overflow) {
		t->stats.rows_failed++;
		/* counted by the store as a row too large (-EMSGSIZE; the body is not read) */
		return store_append(t->st, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, 0, NULL, STORE_ROW_MAX_BYTES + 1, NULL);
	}
	/* Whatever fails, the row is counted as dropped by the store: an append that cannot
	 * write counts it, and a commit that fails counts the rows it loses; without a
	 * transaction (begin failed) the append tries one of its own. */
	bool txn = store_begin(t->st) == 0;
	int rc = store_append(t->st, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, hal_clock_wall_ms(), b.p, b.len, NULL);
	if (txn) {
		if (rc == 0)
			rc = store_commit(t->st);
		else
			store_rollback(t->st);
	}
	if (rc) {
		t->stats.rows_failed++;
		log_wrn("event=tick_not_stored err=%s", strerror(-rc));
	} else {
		t->stats.rows_written++;
	}
	if (t->o.after_tick)
		t->o.after_tick(t->o.arg);
	return rc;
}

int collector_event(struct collector *t, const char *json, size_t len)
{
	int rc = store_append(t->st, STORE_EVENT, STORE_PRIO_EVENT, hal_clock_wall_ms(), json, len, NULL);
	if (rc == 0)
		t->stats.events++;
	if (t->o.after_tick)
		t->o.after_tick(t->o.arg);
	return rc;
}

void collector_get_stats(const struct collector *t, struct collector_stats *out) { *out = t->stats; }
