/* tests/unit/test_store.c - the SQLite store on a real temp file: outbox, budget, migrations, recovery, journal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/telemetry/store.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
};

static int setup(void **state)
{
	sim_reset();
	struct fx *f = calloc(1, sizeof(*f));
	if (test_tmpdir(f->dir, sizeof(f->dir), "store", f->path, sizeof(f->path)))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	if (test_rmtree(f->dir))
		return -1;
	free(f);
	return 0;
}

static struct store *open_store(struct fx *f, uint32_t budget_kb)
{
	struct store_opts o = { .path = f->path, .budget_kb = budget_kb, .sync_full = true };
	struct store *s = NULL;
	assert_int_equal(store_open(&o, &s), 0);
	return s;
}

struct collect {
	int n;
	int64_t seq[4096];
	int kind[4096];
	char first_body[128];
};

static int on_row(void *arg, const struct store_row *r)
{
	struct collect *c = arg;
	if (c->n == 0)
		snprintf(c->first_body, sizeof(c->first_body), "%.*s", (int)r->len, r->body);
	if (c->n < 4096) {
		c->seq[c->n] = r->seq;
		c->kind[c->n] = r->kind;
	}
	c->n++;
	return 0;
}

static void append_scan_ack_in_order(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 1024);
	assert_int_equal(store_begin(f->s), 0);
	for (int i = 0; i < 10; i++) {
		char b[32];
		int n = snprintf(b, sizeof(b), "{\"i\":%d}", i);
		int64_t seq;
		assert_int_equal(store_append(f->s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, 1000 + i, b, (size_t)n, &seq), 0);
		assert_int_equal(seq, i + 1);
	}
	assert_int_equal(store_commit(f->s), 0);
	struct collect c = { 0 };
	assert_int_equal(store_scan(f->s, 0, 0, 100, on_row, &c), 10);
	assert_string_equal(c.first_body, "{\"i\":0}");
	for (int i = 1; i < 10; i++)
		assert_true(c.seq[i] > c.seq[i - 1]);
	assert_int_equal(store_ack_range(f->s, 1, 4), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_scan(f->s, 0, 8, 100, on_row, &c), 3);
	assert_int_equal(c.seq[0], 5);
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_int_equal(st.rows, 6);
}

static void seq_never_reused_across_reopen(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 1024);
	int64_t seq = 0;
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_append(f->s, STORE_EVENT, STORE_PRIO_EVENT, 1, "{}", 2, &seq), 0);
	assert_int_equal(store_ack_range(f->s, 1, 5), 0);
	store_close(f->s);
	f->s = open_store(f, 1024);
	assert_int_equal(store_last_seq(f->s), 5);
	assert_int_equal(store_append(f->s, STORE_EVENT, STORE_PRIO_EVENT, 1, "{}", 2, &seq), 0);
	assert_int_equal(seq, 6);
}

static void budget_prunes_telemetry_before_events(void **state)
{
	struct fx *f = *state;
	const uint32_t budget_kb = 256;
	f->s = open_store(f, budget_kb);
	char body[1000];
	memset(body, 'x', sizeof(body));
	body[0] = '"';
	body[sizeof(body) - 1] = '"';
	/* A few events first, then far more telemetry than fits. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(store_append(f->s, STORE_EVENT, STORE_PRIO_EVENT, 1, "{\"event\":\"x\"}", 13, NULL), 0);
	for (int tick = 0; tick < 200; tick++) {
		assert_int_equal(store_begin(f->s), 0);
		for (int i = 0; i < 5; i++)
			assert_int_equal(store_append(f->s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, tick, body,
						      sizeof(body), NULL), 0);
		assert_int_equal(store_commit(f->s), 0);
		struct store_stats st;
		store_get_stats(f->s, &st);
		assert_true(st.file_bytes <= (uint64_t)budget_kb * 1024);
	}
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_true(st.dropped_telemetry > 0);
	assert_int_equal(st.dropped_events, 0);
	assert_true(st.used_bytes <= st.budget_bytes);
	/* The oldest telemetry went: the events are still the first rows. */
	struct collect c = { 0 };
	assert_true(store_scan(f->s, 0, 0, 4096, on_row, &c) > 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(c.kind[i], STORE_EVENT);
	assert_int_equal(c.seq[5] - 5 - 1, (int64_t)st.dropped_telemetry);
	/* Counters survive a restart. */
	uint64_t dropped = st.dropped_telemetry;
	store_close(f->s);
	f->s = open_store(f, budget_kb);
	store_get_stats(f->s, &st);
	assert_int_equal(st.dropped_telemetry, dropped);
	assert_int_equal(store_integrity_check(f->s), 0);
}

static void events_pruned_only_when_no_telemetry_left(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 256);
	char body[2000];
	memset(body, 'e', sizeof(body));
	body[0] = '"';
	body[sizeof(body) - 1] = '"';
	for (int i = 0; i < 300; i++)
		assert_int_equal(store_append(f->s, STORE_EVENT, STORE_PRIO_EVENT, i, body, sizeof(body), NULL), 0);
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_true(st.dropped_events > 0);
	assert_true(st.file_bytes <= 256u * 1024);
}

static void empty_file_is_migrated_to_current_schema(void **state)
{
	struct fx *f = *state;
	int fd = open(f->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	f->s = open_store(f, 1024);
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_false(st.recovered);
	assert_int_equal(store_kv_set(f->s, "k", "v"), 0);
	char v[8];
	assert_int_equal(store_kv_get(f->s, "k", v, sizeof(v)), 0);
	assert_string_equal(v, "v");
	assert_int_equal(store_kv_get(f->s, "nope", v, sizeof(v)), -ENOENT);
}

static void corrupt_file_is_moved_aside_with_event(void **state)
{
	struct fx *f = *state;
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 2000; i++)
		fputs("this is not a database ", fp);
	fclose(fp);
	fp = fopen(strcat(strcpy((char[160]){ 0 }, f->path), "-wal"), "w");
	fputs("junk", fp);
	fclose(fp);
	f->s = open_store(f, 1024);
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_true(st.recovered);
	struct collect c = { 0 };
	assert_int_equal(store_scan(f->s, 0, 0, 10, on_row, &c), 1);
	assert_int_equal(c.kind[0], STORE_EVENT);
	assert_non_null(strstr(c.first_body, "store_recovered"));
	char aside[160];
	struct stat sb;
	snprintf(aside, sizeof(aside), "%s.corrupt", f->path);
	assert_int_equal(stat(aside, &sb), 0);
	assert_int_equal(sb.st_size, 2000 * 23);
	/* The -wal beside it is moved aside too, as it was (not deleted by the close). */
	char wal[4] = "";
	snprintf(aside, sizeof(aside), "%s.corrupt-wal", f->path);
	fp = fopen(aside, "r");
	assert_non_null(fp);
	assert_int_equal(fread(wal, 1, sizeof(wal), fp), 4);
	fclose(fp);
	assert_memory_equal(wal, "junk", 4);
	assert_int_equal(store_integrity_check(f->s), 0);
}

static void newer_schema_is_moved_aside(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 1024);
	assert_int_equal(store_desired_set(f->s, 3, "{\"deployments\":[]}"), 0);
	store_close(f->s);
	f->s = NULL;
	/* user_version lives at byte 60 of the header, big-endian. */
	int fd = open(f->path, O_WRONLY);
	unsigned char v[4] = { 0, 0, 0, 99 };
	assert_int_equal(pwrite(fd, v, 4, 60), 4);
	close(fd);
	f->s = open_store(f, 1024);
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_true(st.recovered);
	uint64_t ver;
	char buf[64];
	assert_int_equal(store_desired_get(f->s, &ver, buf, sizeof(buf)), -ENOENT);
}

static void desired_state_persists(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 1024);
	uint64_t ver = 0;
	char buf[64];
	assert_int_equal(store_desired_get(f->s, &ver, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(store_desired_set(f->s, 7, "{\"a\":1}"), 0);
	store_close(f->s);
	f->s = open_store(f, 1024);
	assert_int_equal(store_desired_get(f->s, &ver, buf, sizeof(buf)), 0);
	assert_int_equal(ver, 7);
	assert_string_equal(buf, "{\"a\":1}");
	assert_int_equal(store_desired_get(f->s, &ver, buf, 4), -ENOSPC);
}

static void journal_answers_until_ttl_and_cap(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 1024);
	char buf[64];
	const int64_t t0 = 1767225600000LL;
	assert_int_equal(store_journal_get(f->s, "c1", t0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(store_journal_put(f->s, "c1", "{\"id\":\"c1\",\"ok\":true}", t0), 0);
	assert_int_equal(store_journal_get(f->s, "c1", t0 + 1000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "{\"id\":\"c1\",\"ok\":true}");
	const int64_t ttl_ms = (int64_t)CONFIG_STORE_JOURNAL_TTL_S * 1000;
	assert_int_equal(store_journal_get(f->s, "c1", t0 + ttl_ms + 1, buf, sizeof(buf)), -ENOENT);
	/* The cap evicts the oldest. */
	for (int i = 0; i < CONFIG_STORE_JOURNAL_MAX + 5; i++) {
		char id[16];
		snprintf(id, sizeof(id), "x%d", i);
		assert_int_equal(store_journal_put(f->s, id, "{}", t0 + 10 + i), 0);
	}
	assert_int_equal(store_journal_get(f->s, "x0", t0 + 20, buf, sizeof(buf)), -ENOENT);
	char last[16];
	snprintf(last, sizeof(last), "x%d", CONFIG_STORE_JOURNAL_MAX + 4);
	assert_int_equal(store_journal_get(f->s, last, t0 + 20, buf, sizeof(buf)), 0);
}

static void rollback_discards_the_tick(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 1024);
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_append(f->s, STORE_TELEMETRY, 0, 1, "{}", 2, NULL), 0);
	store_rollback(f->s);
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_int_equal(st.rows, 0);
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_begin(f->s), -EALREADY);
	assert_int_equal(store_commit(f->s), 0);
}

/* The invariant the forwarder relies on: every row appended is acknowledged,
 * still in the outbox, or counted as dropped - exactly; and every seq given
 * out and not acknowledged is in the outbox or among those counted. Ticks of
 * 1..23 rows make the cap hit mid-transaction too. */
static void every_row_is_acked_kept_or_counted(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 256);
	static bool acked[8192];
	memset(acked, 0, sizeof(acked));
	char body[700];
	memset(body, 'y', sizeof(body));
	body[0] = '"';
	body[sizeof(body) - 1] = '"';
	uint64_t calls = 0, nacked = 0;
	int64_t seq = 0;
	for (int i = 0; i < 300; i++) {
		assert_int_equal(store_begin(f->s), 0);
		for (int r = 0; r < 1 + i % 23; r++, calls++) {
			bool ev = calls % 50 == 0;
			int rc = store_append(f->s, ev ? STORE_EVENT : STORE_TELEMETRY,
					      ev ? STORE_PRIO_EVENT : STORE_PRIO_TELEMETRY, i, body, sizeof(body), &seq);
			assert_true(rc == 0 || rc == -ENOSPC);
		}
		assert_int_equal(store_commit(f->s), 0);
		/* Now and then a short "connection" acknowledges the oldest rows. */
		if (i % 80 == 79) {
			struct collect c = { 0 };
			assert_true(store_scan(f->s, 0, 0, 40, on_row, &c) > 0);
			for (int k = 0; k < c.n; k++)
				acked[c.seq[k]] = true;
			nacked += (uint64_t)c.n;
			assert_int_equal(store_ack_range(f->s, c.seq[0], c.seq[c.n - 1]), 0);
		}
	}
	struct collect c = { 0 };
	assert_true(store_scan(f->s, 0, 0, 4096, on_row, &c) > 0);
	static bool kept[8192];
	memset(kept, 0, sizeof(kept));
	for (int k = 0; k < c.n; k++)
		kept[c.seq[k]] = true;
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_true(st.last_seq < 8192);
	uint64_t missing = 0;
	for (int64_t q = 1; q <= st.last_seq; q++)
		missing += !acked[q] && !kept[q];
	uint64_t dropped = st.dropped_telemetry + st.dropped_events;
	assert_true(st.dropped_telemetry > 1000);
	assert_int_equal(calls, nacked + (uint64_t)c.n + dropped);
	assert_true(missing <= dropped);
	assert_int_equal(st.rows, (uint64_t)c.n);
	/* The counts survive a restart. */
	store_close(f->s);
	f->s = open_store(f, 256);
	store_get_stats(f->s, &st);
	assert_int_equal(st.dropped_telemetry + st.dropped_events, dropped);
}

/* A row refused outright has no seq; it is counted at once, and the count is
 * written with the next commit so that it survives a restart. */
static void refused_rows_are_counted_durably(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 256);
	static char big[STORE_ROW_MAX_BYTES + 1];
	memset(big, 'z', sizeof(big));
	assert_int_equal(store_append(f->s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, 1, big, sizeof(big), NULL),
			 -EMSGSIZE);
	assert_int_equal(store_append(f->s, STORE_EVENT, STORE_PRIO_EVENT, 1, big, sizeof(big), NULL), -EMSGSIZE);
	struct store_stats st;
	store_get_stats(f->s, &st);
	assert_int_equal(st.dropped_telemetry, 1);
	assert_int_equal(st.dropped_events, 1);
	assert_int_equal(store_append(f->s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, 2, "{}", 2, NULL), 0);
	store_close(f->s);
	f->s = open_store(f, 256);
	store_get_stats(f->s, &st);
	assert_int_equal(st.dropped_telemetry, 1);
	assert_int_equal(st.dropped_events, 1);
}

/* Hitting the cap mid-transaction: SQLite rolls the transaction back, so
 * the rows appended in it so far count as dropped and the transaction goes on
 * in a new one after a prune; if the caller then rolls back, the prune did
 * not happen and its count goes back, and the seqs are given out again. */
static void cap_mid_transaction_counts_exactly(void **state)
{
	struct fx *f = *state;
	f->s = open_store(f, 256);
	char body[1000];
	memset(body, 'w', sizeof(body));
	body[0] = '"';
	body[sizeof(body) - 1] = '"';
	/* Past one prune, then up to where the next commit would prune (above
	 * 7/8 of the database's 48 pages): a prune after the rollback has work. */
	struct store_stats st0, st;
	int n = 0;
	do {
		assert_int_equal(store_append(f->s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, n, body, sizeof(body), NULL), 0);
		store_get_stats(f->s, &st0);
	} while (++n < 1000 && (st0.dropped_telemetry == 0 || st0.used_bytes <= 42u * 4096));
	assert_true(st0.dropped_telemetry > 0);
	assert_true(st0.used_bytes > 42u * 4096);
	assert_int_equal(store_begin(f->s), 0);
	int before = -1;
	for (int i = 0; i < 100 && before < 0; i++) {
		assert_int_equal(store_append(f->s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, i, body, sizeof(body), NULL), 0);
		store_get_stats(f->s, &st);
		if (st.dropped_telemetry != st0.dropped_telemetry)
			before = i; /* rows appended in the transaction before the one that hit the cap */
	}
	assert_true(before > 0);
	/* Lost rows and a prune, both counted. */
	assert_true(st.dropped_telemetry > st0.dropped_telemetry + (uint64_t)before);
	assert_int_equal(st.rows, st0.rows - (st.dropped_telemetry - st0.dropped_telemetry - (uint64_t)before) + 1);
	store_rollback(f->s);
	store_get_stats(f->s, &st);
	assert_int_equal(st.dropped_telemetry, st0.dropped_telemetry + (uint64_t)before);
	assert_int_equal(st.rows, st0.rows);
	assert_int_equal(st.last_seq, n);
	int64_t seq = 0;
	assert_int_equal(store_append(f->s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, 1, "{}", 2, &seq), 0);
	assert_int_equal(seq, n + 1);
	uint64_t dropped = st.dropped_telemetry;
	store_close(f->s);
	f->s = open_store(f, 256);
	store_get_stats(f->s, &st);
	assert_int_equal(st.dropped_telemetry, dropped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_scan_ack_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(seq_never_reused_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(budget_prunes_telemetry_before_events, setup, teardown),
		cmocka_unit_test_setup_teardown(events_pruned_only_when_no_telemetry_left, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_file_is_migrated_to_current_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(corrupt_file_is_moved_aside_with_event, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_schema_is_moved_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(desired_state_persists, setup, teardown),
		cmocka_unit_test_setup_teardown(journal_answers_until_ttl_and_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback_discards_the_tick, setup, teardown),
		cmocka_unit_test_setup_teardown(every_row_is_acked_kept_or_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_rows_are_counted_durably, setup, teardown),
		cmocka_unit_test_setup_teardown(cap_mid_transaction_counts_exactly, setup, teardown),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
