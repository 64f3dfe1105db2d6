/* tests/unit/test_outbox.c - the outbox's forwarding through a recording publish function, on a real store: delete only on PUBACK, resend after a disconnect, the fresh lane never starved by the backlog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/loop.h"
#include "agent/console/outbox.h"
#include "agent/telemetry/store.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

#define MAX_SENT 64

/* One message handed to the publish function. */
struct sent {
	int mid;
	int64_t first, last;           /* its seq range, from the payload */
	char topic[64];
};

struct fx {
	char dir[64];
	char path[128];
	struct loop *l;
	struct store *st;
	struct outbox *ob;
	struct sent sent[MAX_SENT];
	int nsent;
	int next_mid;
	int fail_rc;                   /* returned instead of publishing when set */
};

static int record(void *arg, const char *topic, const void *payload, size_t len, int *mid)
{
	struct fx *f = arg;
	if (f->fail_rc)
		return f->fail_rc;
	assert_true(f->nsent < MAX_SENT);
	struct sent *s = &f->sent[f->nsent++];
	char body[4096];
	snprintf(body, sizeof(body), "%.*s", (int)len, (const char *)payload);
	const char *a = strstr(body, "\"first_seq\":"), *b = strstr(body, "\"last_seq\":");
	assert_non_null(a);
	assert_non_null(b);
	s->first = strtoll(a + 12, NULL, 10);
	s->last = strtoll(b + 11, NULL, 10);
	snprintf(s->topic, sizeof(s->topic), "%s", topic);
	s->mid = *mid = ++f->next_mid;
	return 0;
}

static struct fx *fixture_rate(uint32_t batch_bytes, uint32_t window, uint32_t rate);
static struct fx *fixture(uint32_t batch_bytes, uint32_t window) { return fixture_rate(batch_bytes, window, 0); }

static struct fx *fixture_rate(uint32_t batch_bytes, uint32_t window, uint32_t rate)
{
	sim_reset();
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(test_tmpdir(f->dir, sizeof(f->dir), "outbox", f->path, sizeof(f->path)), 0);
	struct store_opts so = { .path = f->path, .budget_kb = 4096 };
	assert_int_equal(store_open(&so, &f->st), 0);
	f->l = loop_create();
	assert_non_null(f->l);
	struct outbox_opts o = { .telemetry_topic = "t", .events_topic = "e", .device_id = "d",
				 .batch_max_bytes = batch_bytes, .inflight_max = window, .forward_rate = rate };
	f->ob = outbox_create(f->l, f->st, record, f, &o);
	assert_non_null(f->ob);
	return f;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	outbox_destroy(f->ob);
	loop_destroy(f->l);
	store_close(f->st);
	int rc = test_rmtree(f->dir);
	free(f);
	return rc;
}

static void append(struct fx *f, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(store_append(f->st, STORE_TELEMETRY, 1, 1000 + i, "{\"v\":1}", 7, NULL), 0);
}

static int count_rows(void *arg, const struct store_row *r)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

/* Rows left in the store's outbox. */
static int rows_left(struct fx *f)
{
	int n = 0;
	assert_true(store_scan(f->st, 0, 0, 100000, count_rows, &n) >= 0);
	return n;
}

static void row_is_deleted_only_after_its_puback(void **state)
{
	struct fx *f = *state = fixture(4096, 4);
	append(f, 3);
	assert_int_equal(store_append(f->st, STORE_EVENT, 0, 2000, "{\"e\":1}", 7, NULL), 0);
	outbox_kick(f->ob); /* not connected yet: nothing leaves */
	assert_int_equal(f->nsent, 0);
	outbox_on_connected(f->ob); /* one message per kind: telemetry 1..3, event 4 */
	assert_int_equal(f->nsent, 2);
	assert_int_equal(f->sent[0].first, 1);
	assert_int_equal(f->sent[0].last, 3);
	assert_string_equal(f->sent[1].topic, "e");
	assert_int_equal(f->sent[1].first, 4);
	test_run_ms(f->l, 50, 10);
	assert_int_equal(rows_left(f), 4); /* sent, not acknowledged: kept */
	outbox_on_published(f->ob, 1000, 0); /* someone else's PUBACK */
	outbox_on_published(f->ob, f->sent[1].mid, 0); /* the event's: only row 4 goes */
	test_run_ms(f->l, 50, 10);
	assert_int_equal(rows_left(f), 3);
	outbox_on_published(f->ob, f->sent[0].mid, 0x87); /* refused: kept, sent again later */
	test_run_ms(f->l, 50, 10);
	assert_int_equal(rows_left(f), 3);
	f->nsent = 0;
	outbox_kick(f->ob);
	assert_int_equal(f->nsent, 0); /* paused after a refusal */
	sim_clock_advance_ms(6000);
	outbox_kick(f->ob);
	assert_int_equal(f->nsent, 1);
	assert_int_equal(f->sent[0].first, 1);
	outbox_on_published(f->ob, f->sent[0].mid, 0);
	test_run_ms(f->l, 50, 10);
	assert_int_equal(rows_left(f), 0);
	struct outbox_stats st;
	outbox_get_stats(f->ob, &st);
	assert_int_equal(st.msgs_refused, 1);
	assert_int_equal(st.rows_acked, 4);
	assert_int_equal(st.inflight, 0);
}

static void disconnect_before_puback_resends(void **state)
{
	struct fx *f = *state = fixture(4096, 4);
	append(f, 5);
	outbox_on_connected(f->ob);
	assert_int_equal(f->nsent, 1);
	int old_mid = f->sent[0].mid;
	outbox_on_disconnected(f->ob);
	append(f, 1);
	outbox_kick(f->ob); /* disconnected: nothing leaves */
	assert_int_equal(f->nsent, 1);
	outbox_on_connected(f->ob);
	assert_int_equal(f->nsent, 2);
	assert_int_equal(f->sent[1].first, 1); /* the unacknowledged rows again, and the new one */
	assert_int_equal(f->sent[1].last, 6);
	outbox_on_published(f->ob, old_mid, 0); /* a late PUBACK of the old session changes nothing */
	test_run_ms(f->l, 50, 10);
	assert_int_equal(rows_left(f), 6);
	outbox_on_published(f->ob, f->sent[1].mid, 0);
	test_run_ms(f->l, 50, 10);
	assert_int_equal(rows_left(f), 0);
}

static void fresh_lane_is_never_starved_by_the_backlog(void **state)
{
	/* Small batches: each row of the backlog is a message of its own. */
	struct fx *f = *state = fixture(512, 4);
	char big[400];
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 40; i++) {
		char body[440];
		int n = snprintf(body, sizeof(body), "{\"v\":\"%.*s\"}", 380, big);
		assert_int_equal(store_append(f->st, STORE_TELEMETRY, 1, i, body, (size_t)n, NULL), 0);
	}
	outbox_on_connected(f->ob);
	assert_int_equal(f->nsent, 3); /* the backlog takes window - 1 slots */
	for (int round = 0; round < 5; round++) {
		int before = f->nsent;
		append(f, 1); /* live telemetry */
		int64_t seq = store_last_seq(f->st);
		outbox_kick(f->ob);
		assert_int_equal(f->nsent, before + 1);
		assert_int_equal(f->sent[before].first, seq); /* at once, ahead of 30-odd backlog rows */
		assert_int_equal(f->sent[before].last, seq);
		/* Its PUBACK frees the fresh slot; a backlog PUBACK lets one more backlog message out. */
		outbox_on_published(f->ob, f->sent[before].mid, 0);
		assert_int_equal(f->nsent, before + 1);
		outbox_on_published(f->ob, f->sent[before - 1].mid, 0);
		assert_int_equal(f->nsent, before + 2);
		assert_true(f->sent[before + 1].first < seq);
	}
	struct outbox_stats st;
	outbox_get_stats(f->ob, &st);
	assert_int_equal(st.inflight, 3);
}

/* telemetry.forward_rate: the backlog leaves at most rate messages a second (one at once on
 * connecting), whatever the window and however fast the broker acknowledges; fresh rows are not held. */
static void backlog_is_paced_by_forward_rate(void **state)
{
	struct fx *f = *state = fixture_rate(512, 8, 5);
	char body[440];
	int n = snprintf(body, sizeof(body), "{\"v\":\"%0380d\"}", 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(store_append(f->st, STORE_TELEMETRY, 1, i, body, (size_t)n, NULL), 0);
	outbox_on_connected(f->ob);
	assert_int_equal(f->nsent, 1);
	int acked = 0;
	for (int ms = 0; ms < 2000; ms += 10) {
		test_run_ms(f->l, 10, 10);
		while (acked < f->nsent)
			outbox_on_published(f->ob, f->sent[acked++].mid, 0);
	}
	/* 1 at once + 5/s for 2 s (give or take the last token) */
	assert_in_range(f->nsent, 10, 12);
	int before = f->nsent;
	append(f, 1);
	outbox_kick(f->ob);
	assert_int_equal(f->nsent, before + 1); /* a fresh row goes at once */
	assert_int_equal(f->sent[before].first, store_last_seq(f->st));
	struct outbox_stats st;
	outbox_get_stats(f->ob, &st);
	assert_true(st.backlog_paced > 0);
}

static void link_queue_full_is_retried(void **state)
{
	struct fx *f = *state = fixture(4096, 2);
	append(f, 2);
	f->fail_rc = -ENOBUFS;
	outbox_on_connected(f->ob);
	assert_int_equal(f->nsent, 0);
	f->fail_rc = 0;
	outbox_kick(f->ob);
	assert_int_equal(f->nsent, 1);
	assert_int_equal(f->sent[0].first, 1);
	assert_int_equal(f->sent[0].last, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(row_is_deleted_only_after_its_puback, teardown),
		cmocka_unit_test_teardown(disconnect_before_puback_resends, teardown),
		cmocka_unit_test_teardown(fresh_lane_is_never_starved_by_the_backlog, teardown),
		cmocka_unit_test_teardown(link_queue_full_is_retried, teardown),
		cmocka_unit_test_teardown(backlog_is_paced_by_forward_rate, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
