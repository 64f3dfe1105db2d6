/* agent/console/outbox.c - outbox to broker: two lanes (fresh, backlog), contiguous seq ranges per message, ack deletes. */
#include "agent/console/outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/telemetry/store.h"
#include "hal/clock.h"

#define LOG_TAG "outbox"

#define MAX_ROWS_PER_MSG 2048
#define REFUSED_PAUSE_US 5000000u

enum lane { LANE_FRESH = 0, LANE_BACKLOG = 1, LANE_REPLY = 2 };

struct slot {
	bool used;
	enum lane lane;
	int mid;
	int64_t lo, hi;
	uint32_t rows;
};

struct ack {
	int64_t lo, hi;
	bool reply;                   /* a reply's id, not an outbox range */
};

struct outbox {
	struct loop *loop;
	struct store *st;
	outbox_publish_fn publish;
	outbox_publish_reply_fn publish_reply;
	void *publish_arg;
	char telemetry_topic[160];
	char events_topic[160];
	char device_id[64];
	uint32_t batch_max;
	uint32_t window;
	struct slot *slots;
	struct ack *acks;             /* acknowledged, not yet deleted (<= window) */
	uint32_t nacks;
	struct loop_timer flush_timer;
	uint32_t inflight, inflight_backlog, inflight_reply;
	int64_t cursor[3];            /* last seq (reply id) sent per lane */
	int64_t backlog_end;          /* backlog lane: seq < backlog_end */
	uint64_t paused_until_us;
	bool active;
	/* Backlog pacing (forward_rate messages/s, 0: none): a token bucket of
	 * at most one second's worth; a timer kicks again when it refills. */
	uint32_t rate;
	double tokens;
	uint64_t tokens_at_us;
	struct loop_timer pace_timer;
	/* One message being built. */
	char *buf;
	size_t buf_cap, len;
	int kind;
	int64_t lo, hi;
	uint32_t rows;
	struct outbox_stats stats;
};

static void flush_acks(void *arg);
static void pace_kick(void *arg);

struct outbox *outbox_create(struct loop *l, struct store *st, outbox_publish_fn publish, void *arg,
			     const struct outbox_opts *o)
{
	struct outbox *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->loop = l;
	loop_timer_init(&f->flush_timer, flush_acks, f);
	loop_timer_init(&f->pace_timer, pace_kick, f);
	f->rate = o->forward_rate;
	f->st = st;
	f->publish = publish;
	f->publish_reply = o->publish_reply;
	f->publish_arg = arg;
	snprintf(f->telemetry_topic, sizeof(f->telemetry_topic), "%s", o->telemetry_topic);
	snprintf(f->events_topic, sizeof(f->events_topic), "%s", o->events_topic);
	snprintf(f->device_id, sizeof(f->device_id), "%s", o->device_id);
	f->batch_max = o->batch_max_bytes >= 512 ? o->batch_max_bytes : 512;
	f->window = o->inflight_max ? o->inflight_max : 1;
	/* Room for one row of the largest size on top of a full batch. */
	f->buf_cap = f->batch_max + STORE_ROW_MAX_BYTES + 512;
	f->buf = malloc(f->buf_cap);
	f->slots = calloc(f->window, sizeof(*f->slots));
	f->acks = calloc(f->window, sizeof(*f->acks));
	if (!f->buf || !f->slots || !f->acks) {
		outbox_destroy(f);
		return NULL;
	}
	return f;
}

void outbox_destroy(struct outbox *f)
{
	if (!f)
		return;
	flush_acks(f);
	loop_timer_stop(f->loop, &f->flush_timer);
	loop_timer_stop(f->loop, &f->pace_timer);
	free(f->buf);
	free(f->slots);
	free(f->acks);
	free(f);
}

static void forget_inflight(struct outbox *f)
{
	memset(f->slots, 0, f->window * sizeof(*f->slots));
	f->inflight = f->inflight_backlog = f->inflight_reply = 0;
}

/* Everything not acknowledged becomes backlog; newer rows are fresh. */
static void rewind_lanes(struct outbox *f)
{
	int64_t last = store_last_seq(f->st);
	f->cursor[LANE_BACKLOG] = 0;
	f->backlog_end = last + 1;
	f->cursor[LANE_FRESH] = last;
	f->cursor[LANE_REPLY] = 0;
	f->stats.backlog_end = f->backlog_end;
}

void outbox_on_connected(struct outbox *f)
{
	forget_inflight(f);
	rewind_lanes(f);
	f->tokens = f->rate ? 1 : 0; /* a fresh connection starts with one message, not a second's burst */
	f->tokens_at_us = hal_clock_now_us();
	f->active = true;
	outbox_kick(f);
}

void outbox_store_back(struct outbox *f)
{
	/* Nothing of the store's was in flight while it was away (seq 0 and direct replies are
	 * not tracked); rows and replies queued before it went are backlog again. */
	rewind_lanes(f);
	outbox_kick(f);
}

void outbox_on_disconnected(struct outbox *f)
{
	f->active = false;
	forget_inflight(f);
}

static int add_row(void *arg, const struct store_row *r)
{
	struct outbox *f = arg;
	if (f->rows && r->kind != f->kind)
		return 1;
	char head[96];
	int hn = snprintf(head, sizeof(head), "%s{\"seq\":%" PRId64 ",\"ts\":%" PRId64 ",\"data\":", f->rows ? "," : "",
			  r->seq, r->ts_ms);
	size_t need = (size_t)hn + r->len + 1;
	/* Leave room for the closing "]}". */
	if (f->rows && f->len + need + 2 > f->batch_max)
		return 1;
	if (f->len + need + 2 > f->buf_cap)
		return 1; /* cannot happen: the store caps rows at STORE_ROW_MAX_BYTES */
	if (!f->rows) {
		f->kind = r->kind;
		f->lo = r->seq;
	}
	memcpy(f->buf + f->len, head, (size_t)hn);
	f->len += (size_t)hn;
	memcpy(f->buf + f->len, r->body, r->len);
	f->len += r->len;
	f->buf[f->len++] = '}';
	f->hi = r->seq;
	f->rows++;
	return 0;
}

static struct slot *free_slot(struct outbox *f)
{
	for (uint32_t i = 0; i < f->window; i++)
		if (!f->slots[i].used)
			return &f->slots[i];
	return NULL;
}

/* Builds and publishes one message from lane; true when one was sent. */
static bool send_one(struct outbox *f, enum lane lane)
{
	struct slot *s = free_slot(f);
	if (!s)
		return false;
	f->rows = 0;
	/* The header names the range after the rows are known; reserve room and
	 * write the rows first, then the header in front. */
	const size_t head_room = 160;
	f->len = head_room;
	int64_t before = lane == LANE_BACKLOG ? f->backlog_end : 0;
	int n = store_scan(f->st, f->cursor[lane], before, MAX_ROWS_PER_MSG, add_row, f);
	if (n <= 0)
		return false;
	char head[160];
	int hn = snprintf(head, sizeof(head),
			  "{\"schema\":1,\"device\":\"%s\",\"kind\":\"%s\",\"first_seq\":%" PRId64 ",\"last_seq\":%" PRId64
			  ",\"rows\":[",
			  f->device_id, f->kind == STORE_EVENT ? "event" : "telemetry", f->lo, f->hi);
	if (hn < 0 || (size_t)hn > head_room)
		return false;
	char *start = f->buf + head_room - hn;
	memcpy(start, head, (size_t)hn);
	f->buf[f->len++] = ']';
	f->buf[f->len++] = '}';
	size_t plen = f->len - head_room + (size_t)hn;
	int mid = 0;
	int rc = f->publish(f->publish_arg, f->kind == STORE_EVENT ? f->events_topic : f->telemetry_topic, start, plen,
			    &mid);
	if (rc) {
		if (rc != -ENOBUFS && rc != -ENOTCONN)
			log_wrn("event=publish_failed err=%s lo=%" PRId64 " hi=%" PRId64, strerror(-rc), f->lo, f->hi);
		return false;
	}
	*s = (struct slot){ .used = true, .lane = lane, .mid = mid, .lo = f->lo, .hi = f->hi, .rows = f->rows };
	f->cursor[lane] = f->hi;
	f->inflight++;
	if (lane == LANE_BACKLOG)
		f->inflight_backlog++;
	f->stats.msgs_sent++;
	f->stats.rows_sent += f->rows;
	return true;
}

static void reply_row(void *arg, int64_t id, const char *topic, const void *corr, size_t corr_len, const char *body,
		      size_t len)
{
	struct outbox *f = arg;
	struct slot *s = free_slot(f);
	int mid = 0;
	int rc = f->publish_reply(f->publish_arg, topic, body, len, corr, corr_len, &mid);
	if (rc) {
		if (rc != -ENOBUFS && rc != -ENOTCONN)
			log_wrn("event=publish_failed err=%s reply=%" PRId64, strerror(-rc), id);
		return;
	}
	*s = (struct slot){ .used = true, .lane = LANE_REPLY, .mid = mid, .lo = id, .hi = id, .rows = 0 };
	f->cursor[LANE_REPLY] = id;
	f->inflight++;
	f->inflight_reply++;
	f->stats.replies_sent++;
}

/* Publishes the next queued command reply; true when one was sent. */
static bool send_reply(struct outbox *f)
{
	if (!f->publish_reply || !free_slot(f))
		return false;
	int64_t before = f->cursor[LANE_REPLY];
	return store_reply_next(f->st, before, reply_row, f) == 1 && f->cursor[LANE_REPLY] != before;
}

static void pace_kick(void *arg) { outbox_kick(arg); }

/* Whether the backlog may send one more message now (forward_rate); when
 * not, the pace timer kicks again once a token is there. */
static bool backlog_paced(struct outbox *f)
{
	if (!f->rate)
		return false;
	uint64_t now = hal_clock_now_us();
	f->tokens += (double)(now - f->tokens_at_us) * f->rate / 1e6;
	f->tokens_at_us = now;
	if (f->tokens > f->rate)
		f->tokens = f->rate;
	if (f->tokens >= 1)
		return false;
	f->stats.backlog_paced++;
	if (!loop_timer_armed(&f->pace_timer)) {
		uint32_t wait_ms = (uint32_t)((1 - f->tokens) * 1000.0 / f->rate) + 1;
		if (loop_timer_start(f->loop, &f->pace_timer, wait_ms, 0) < 0)
			return false; /* no timer: send rather than stall the backlog */
	}
	return true;
}

void outbox_kick(struct outbox *f)
{
	if (!f->active || store_in_txn(f->st))
		return; /* rows of an open transaction may still be rolled back: kicked again after it */
	if (f->paused_until_us && hal_clock_now_us() < f->paused_until_us)
		return;
	f->paused_until_us = 0;
	uint32_t backlog_cap = f->window > 1 ? f->window - 1 : 1;
	while (f->inflight < f->window) {
		/* Replies first, but never the whole window: one slot stays for fresh rows. */
		if (f->inflight_reply < backlog_cap && send_reply(f))
			continue;
		if (send_one(f, LANE_FRESH))
			continue;
		if (f->inflight_backlog < backlog_cap && !backlog_paced(f) && send_one(f, LANE_BACKLOG)) {
			if (f->rate)
				f->tokens -= 1;
			continue;
		}
		break;
	}
}

void outbox_on_published(struct outbox *f, int mid, int reason)
{
	struct slot *s = NULL;
	for (uint32_t i = 0; i < f->window && !s; i++)
		if (f->slots[i].used && f->slots[i].mid == mid)
			s = &f->slots[i];
	if (!s)
		return; /* a reply or status publish, not ours */
	s->used = false;
	f->inflight--;
	if (s->lane == LANE_BACKLOG)
		f->inflight_backlog--;
	if (s->lane == LANE_REPLY)
		f->inflight_reply--;
	if (reason >= 0x80) {
		/* Refused (e.g. not authorised): keep the rows, send everything again later. */
		f->stats.msgs_refused++;
		forget_inflight(f);
		rewind_lanes(f);
		f->paused_until_us = hal_clock_now_us() + REFUSED_PAUSE_US;
		return;
	}
	f->stats.msgs_acked++;
	f->stats.rows_acked += s->rows;
	if (s->lane == LANE_REPLY)
		f->stats.replies_acked++;
	f->acks[f->nacks++] = (struct ack){ .lo = s->lo, .hi = s->hi, .reply = s->lane == LANE_REPLY };
	if (f->nacks >= f->window)
		flush_acks(f);
	else if (!loop_timer_armed(&f->flush_timer) && loop_timer_start(f->loop, &f->flush_timer, 0, 0) < 0)
		flush_acks(f);
	outbox_kick(f);
}

/* Deletes the acknowledged ranges in one transaction, which does not wait for the disk
 * (it held up the loop, and so the local API, for up to 120 ms under a burst of replies).
 * A crash or power cut before it reaches the disk only means those rows are sent again. */
static void flush_acks(void *arg)
{
	struct outbox *f = arg;
	if (!f->nacks)
		return;
	int rc = store_begin_unsynced(f->st);
	bool txn = rc == 0;
	for (uint32_t i = 0; i < f->nacks && (rc == 0 || !txn); i++) {
		rc = f->acks[i].reply ? store_reply_ack(f->st, f->acks[i].lo)
				      : store_ack_range(f->st, f->acks[i].lo, f->acks[i].hi);
		if (rc)
			log_err("event=ack_delete_failed lo=%" PRId64 " hi=%" PRId64 " err=%s", f->acks[i].lo,
				f->acks[i].hi, strerror(-rc));
	}
	if (txn) {
		if (rc == 0)
			rc = store_commit(f->st);
		else
			store_rollback(f->st);
	}
	f->nacks = 0;
}

void outbox_get_stats(const struct outbox *f, struct outbox_stats *out)
{
	*out = f->stats;
	out->inflight = f->inflight;
}
