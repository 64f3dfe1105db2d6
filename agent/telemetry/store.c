/* agent/telemetry/store.c - SQLite (WAL) store: outbox with a disk budget, desired state, command journal, kv. */
#include "agent/telemetry/store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/telemetry/dbfile.h"
#include "hal/clock.h"

#define LOG_TAG "store"

#define PAGE_SIZE 4096
#define BUSY_TIMEOUT_MS 2000
#define PRUNE_CHUNK 16

/* Forward migrations: migrations[i] takes the schema from version i to i+1.
 * Never edit a released entry; append a new one. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE outbox (" " seq INTEGER PRIMARY KEY AUTOINCREMENT," " kind INTEGER NOT NULL,"
	" prio INTEGER NOT NULL," " ts_ms INTEGER NOT NULL," " body TEXT NOT NULL);"
	"CREATE INDEX outbox_prio ON outbox(prio, seq);"
	"CREATE TABLE desired (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL,"
	" body TEXT NOT NULL, updated_ms INTEGER NOT NULL);"
	"CREATE TABLE journal (id TEXT PRIMARY KEY, reply TEXT NOT NULL, at_ms INTEGER NOT NULL);"
	"CREATE INDEX journal_at ON journal(at_ms);"
	"CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
	/* 1 -> 2 */ "CREATE TABLE replies (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, corr BLOB,"
	" body TEXT NOT NULL, at_ms INTEGER NOT NULL);", /* command replies waiting for their PUBACK */
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_APPEND, ST_SCAN, ST_ACK,
	ST_PAGE_COUNT, ST_FREELIST,
	ST_MIN_PRIO, ST_PRUNE_COUNT, ST_PRUNE,
	ST_DESIRED_GET, ST_DESIRED_SET,
	ST_JOURNAL_GET, ST_JOURNAL_PUT, ST_JOURNAL_EXPIRE, ST_JOURNAL_CAP,
	ST_KV_GET, ST_KV_SET, ST_ROWS,
	ST_REPLY_PUT, ST_REPLY_SCAN, ST_REPLY_DEL, ST_REPLY_COUNT, ST_REPLY_DROP,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE", [ST_COMMIT] = "COMMIT", [ST_ROLLBACK] = "ROLLBACK",
	[ST_APPEND] = "INSERT INTO outbox(kind, prio, ts_ms, body) VALUES (?1, ?2, ?3, ?4)",
	[ST_SCAN] = "SELECT seq, kind, prio, ts_ms, body FROM outbox WHERE seq > ?1 AND seq < ?2 ORDER BY seq LIMIT ?3",
	[ST_ACK] = "DELETE FROM outbox WHERE seq BETWEEN ?1 AND ?2",
	[ST_PAGE_COUNT] = "PRAGMA page_count", [ST_FREELIST] = "PRAGMA freelist_count",
	[ST_MIN_PRIO] = "SELECT MIN(prio) FROM outbox",
	[ST_PRUNE_COUNT] = ("SELECT kind, COUNT(*), MIN(seq), MAX(seq) FROM"
			    " (SELECT kind, seq FROM outbox WHERE prio = ?1 ORDER BY seq LIMIT ?2) GROUP BY kind"),
	[ST_PRUNE] = "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE prio = ?1 ORDER BY seq LIMIT ?2)",
	[ST_DESIRED_GET] = "SELECT version, body FROM desired WHERE id = 1",
	[ST_DESIRED_SET] = "INSERT OR REPLACE INTO desired(id, version, body, updated_ms) VALUES (1, ?1, ?2, ?3)",
	[ST_JOURNAL_GET] = "SELECT reply FROM journal WHERE id = ?1 AND at_ms >= ?2",
	[ST_JOURNAL_PUT] = "INSERT OR REPLACE INTO journal(id, reply, at_ms) VALUES (?1, ?2, ?3)",
	[ST_JOURNAL_EXPIRE] = "DELETE FROM journal WHERE at_ms < ?1",
	[ST_JOURNAL_CAP] = "DELETE FROM journal WHERE id IN (SELECT id FROM journal ORDER BY at_ms DESC LIMIT -1 OFFSET ?1)",
	[ST_KV_GET] = "SELECT value FROM kv WHERE key = ?1",
	[ST_KV_SET] = "INSERT OR REPLACE INTO kv(key, value) VALUES (?1, ?2)",
	[ST_ROWS] = "SELECT COUNT(*) FROM outbox",
	[ST_REPLY_PUT] = "INSERT INTO replies(topic, corr, body, at_ms) VALUES (?1, ?2, ?3, ?4)",
	[ST_REPLY_SCAN] = "SELECT id, topic, corr, body FROM replies WHERE id > ?1 ORDER BY id LIMIT 1",
	[ST_REPLY_DEL] = "DELETE FROM replies WHERE id = ?1", [ST_REPLY_COUNT] = "SELECT COUNT(*) FROM replies",
	[ST_REPLY_DROP] = "DELETE FROM replies WHERE id IN (SELECT id FROM replies ORDER BY id LIMIT ?1)",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char path[512];
	uint64_t budget_bytes;
	uint32_t max_pages;      /* hard cap given to SQLite */
	uint32_t high_pages;     /* prune when used pages exceed this ... */
	uint32_t low_pages;      /* ... down to this */
	uint64_t wal_limit_bytes;
	uint64_t check_bytes;     /* budget checked after this many bytes appended ... */
	uint64_t appended;        /* ... counted here */
	uint32_t commits;
	bool pruned;              /* this transaction pruned: check the WAL at commit */
	int64_t last_seq;
	uint64_t dropped[2];     /* per kind, mirrored in kv */
	uint64_t txn_pruned[2];  /* of which pruned in the open transaction (undone by a rollback) */
	uint32_t txn_rows[2];    /* rows appended in the open transaction */
	int64_t txn_last_seq;    /* last_seq when it began */
	bool counters_dirty;     /* dropped[] changed outside a prune: kv not yet written (flush_counters) */
	bool in_txn;
	bool unsynced;           /* the open transaction commits without a sync (store_begin_unsynced) */
	bool recovered;
	uint64_t replies;         /* rows in the reply queue */
	uint64_t dropped_replies; /* dropped past CONFIG_STORE_REPLY_QUEUE_MAX (this run) */
	struct store_opts opts;   /* to open again in degraded mode (db NULL: open_err says why) */
	int open_err;
};

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EBADMSG;
	case SQLITE_TOOBIG: return -EMSGSIZE;
	case SQLITE_CONSTRAINT: return -EEXIST;
	default: return -EIO;
	}
}

/* Translates and logs a failed call once, here. */
static int fail(struct store *s, int rc, const char *what)
{
	log_err("event=sqlite_error op=%s rc=%d msg=\"%s\"", what, rc, s->db ? sqlite3_errmsg(s->db) : "");
	return map_rc(rc);
}

#define NEED_DB(s, ret) do { if (!(s)->db) return (ret); } while (0) /* degraded mode */

static int step_done(struct store *s, enum stmt_id id)
{
	sqlite3_stmt *q = s->st[id];
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(s, rc, stmt_sql[id]);
	return 0;
}

static int64_t query_int(struct store *s, enum stmt_id id)
{
	sqlite3_stmt *q = s->st[id];
	int64_t v = -1;
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return v;
}

static int exec(struct store *s, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_err("event=sqlite_error op=\"%.80s\" rc=%d msg=\"%s\"", sql, rc, msg ? msg : "");
		sqlite3_free(msg);
		return map_rc(rc);
	}
	return 0;
}

static int pragma_int(struct store *s, const char *sql, int64_t *out)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return fail(s, rc, sql);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(s, rc, sql);
}

static void flush_counters(struct store *s);

static void close_db(struct store *s)
{
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	if (s->db)
		sqlite3_close_v2(s->db);
	s->db = NULL;
}

static int migrate(struct store *s)
{
	int64_t ver = 0;
	int rc = pragma_int(s, "PRAGMA user_version", &ver);
	if (rc)
		return rc;
	if (ver > SCHEMA_VERSION) {
		log_err("event=schema_newer found=%lld supported=%d", (long long)ver, SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	for (int v = (int)ver; v < SCHEMA_VERSION; v++) {
		char sql[64];
		if ((rc = exec(s, "BEGIN IMMEDIATE")))
			return rc;
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
		if ((rc = exec(s, migrations[v])) || (rc = exec(s, sql))) {
			(void)exec(s, "ROLLBACK");
			return rc;
		}
		if ((rc = exec(s, "COMMIT")))
			return rc;
		log_inf("event=schema_migrated from=%d to=%d", v, v + 1);
	}
	return 0;
}

static void load_counters(struct store *s)
{
	static const char *const keys[2] = { "store.dropped_telemetry", "store.dropped_events" };
	for (int k = 0; k < 2; k++) {
		char buf[32];
		uint64_t pending = s->dropped[k]; /* dropped while the store was unavailable: added */
		if (store_kv_get(s, keys[k], buf, sizeof(buf)) == 0)
			s->dropped[k] = strtoull(buf, NULL, 10) + pending;
		s->counters_dirty |= pending > 0;
	}
	sqlite3_stmt *q = NULL;
	s->last_seq = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'", -1, &q, NULL) ==
	    SQLITE_OK) {
		if (sqlite3_step(q) == SQLITE_ROW)
			s->last_seq = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
}

/* Opens path and brings it to the current schema; any failure that means
 * "this file is not a healthy database of ours" returns -EBADMSG. */
static int open_db(struct store *s, const struct store_opts *o)
{
	int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK)
		return fail(s, rc, "open");
	sqlite3_extended_result_codes(s->db, 0);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* Memory bounded by Kconfig: lookaside (before any statement runs),
	 * page cache, no memory-mapped I/O. */
	rc = sqlite3_db_config(s->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 256, CONFIG_STORE_LOOKASIDE_SLOTS);
	if (rc != SQLITE_OK)
		return fail(s, rc, "lookaside");

	/* The WAL gets a quarter of the budget (at most 4 MiB), the database the
	 * rest. Pruning starts at 15/16 of the database's pages and frees down to
	 * 7/8: the headroom lets a delete run even when the cap is reached, and
	 * one prune writes less to the WAL than the WAL's share. */
	uint64_t wal_bytes = s->budget_bytes / 4;
	if (wal_bytes > (4u << 20))
		wal_bytes = 4u << 20;
	s->wal_limit_bytes = wal_bytes;
	s->max_pages = (uint32_t)((s->budget_bytes - wal_bytes) / PAGE_SIZE);
	s->high_pages = s->max_pages - s->max_pages / 16;
	s->low_pages = s->max_pages - s->max_pages / 8;
	/* Page counts are read once per quarter of the headroom appended, not at
	 * every commit: the headroom absorbs what arrives in between, and a
	 * SQLITE_FULL still prunes at once. */
	s->check_bytes = (uint64_t)(s->max_pages - s->high_pages) * PAGE_SIZE / 4;
	uint32_t ckpt_pages = (uint32_t)(wal_bytes / PAGE_SIZE / 2);
	if (ckpt_pages < 4)
		ckpt_pages = 4;

	char sql[384];
	int64_t v = 0;
	snprintf(sql, sizeof(sql), "PRAGMA page_size=%d", PAGE_SIZE);
	if ((rc = exec(s, sql)))
		return rc;
	/* quick_check reads every page: a torn or foreign file is found now, not mid-run. */
	sqlite3_stmt *q = NULL;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return fail(s, rc, "quick_check");
	bool ok = sqlite3_step(q) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
	sqlite3_finalize(q);
	if (!ok) {
		log_err("event=store_corrupt path=%s rc=%d msg=\"%s\"", s->path, rc, sqlite3_errmsg(s->db));
		return -EBADMSG;
	}
	if ((rc = pragma_int(s, "PRAGMA journal_mode=WAL", &v)))
		return rc;
	snprintf(sql, sizeof(sql),
		 "PRAGMA synchronous=%s; PRAGMA max_page_count=%u; PRAGMA wal_autocheckpoint=%u;"
		 " PRAGMA journal_size_limit=%llu; PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
		 " PRAGMA cache_size=-%d; PRAGMA mmap_size=0",
		 o->sync_full ? "FULL" : "NORMAL", s->max_pages, ckpt_pages, (unsigned long long)wal_bytes, CONFIG_STORE_CACHE_KB);
	if ((rc = exec(s, sql)))
		return rc;
	if ((rc = migrate(s)))
		return rc == -EPROTONOSUPPORT ? -EBADMSG : rc;
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
		if (rc != SQLITE_OK)
			return fail(s, rc, stmt_sql[i]);
	}
	load_counters(s);
	s->replies = (uint64_t)(query_int(s, ST_REPLY_COUNT) > 0 ? query_int(s, ST_REPLY_COUNT) : 0);
	return 0;
}

/* open_db, and a corrupt file moved aside for a fresh one. */
static int open_recover(struct store *s, const struct store_opts *o)
{
	int rc = open_db(s, o);
	if (rc == -EBADMSG) {
		/* Closed as found: the last connection's close would otherwise checkpoint the
		 * WAL into the bad file and delete the -wal and -shm that move_aside() keeps. */
		if (s->db)
			(void)sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
		close_db(s);
		dbfile_move_aside(s->path);
		s->recovered = true;
		rc = open_db(s, o);
		if (rc == 0) {
			char ev[384];
			int n = snprintf(ev, sizeof(ev),
					 "{\"event\":\"store_recovered\",\"detail\":{\"reason\":\"corrupt\",\"moved_to\":\"%s.corrupt\"}}",
					 s->path);
			int64_t seq;
			if (store_append(s, STORE_EVENT, STORE_PRIO_EVENT, hal_clock_wall_ms(), ev, (size_t)n, &seq))
				log_wrn("event=recovery_event_lost");
			log_wrn("event=store_recovered path=%s moved_to=%s.corrupt", s->path, s->path);
		}
	}
	if (rc) {
		if (s->db)
			(void)sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
		close_db(s);
	}
	return rc;
}

int store_open(const struct store_opts *o, struct store **out)
{
	*out = NULL;
	if (!o->path || !o->path[0] || o->budget_kb < 256)
		return -EINVAL;
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (strlen(o->path) >= sizeof(s->path)) {
		free(s);
		return -ENAMETOOLONG;
	}
	strcpy(s->path, o->path);
	s->opts = *o;
	s->opts.path = s->path;
	s->budget_bytes = (uint64_t)o->budget_kb * 1024u;

	int rc = open_recover(s, o);
	if (rc && o->degrade && rc != -ENOMEM) { /* degraded: runs without a database */
		log_err("event=store_unavailable path=%s err=%s mode=degraded", s->path, strerror(-rc));
		s->open_err = rc;
		rc = 0;
	} else if (rc == 0) {
		log_inf("event=store_open path=%s schema=%d budget_kb=%u max_pages=%u last_seq=%lld", s->path,
			SCHEMA_VERSION, o->budget_kb, s->max_pages, (long long)s->last_seq);
	}
	if (rc)
		store_close(s);
	else
		*out = s;
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->in_txn && s->db)
		store_rollback(s);
	close_db(s);
	free(s);
}

int store_schema_version(void) { return SCHEMA_VERSION; }
bool store_available(const struct store *s) { return s && s->db; }
int store_open_error(const struct store *s) { return s->db ? 0 : s->open_err; }
bool store_in_txn(const struct store *s) { return s->in_txn; }
void store_reply_counts(const struct store *s, uint64_t *queued, uint64_t *dropped)
{
	*queued = s->db ? s->replies : 0, *dropped = s->dropped_replies;
}

int store_retry(struct store *s)
{
	if (s->db)
		return 0;
	if ((s->open_err = open_recover(s, &s->opts)))
		return s->open_err;
	flush_counters(s);
	log_wrn("event=store_available path=%s last_seq=%lld dropped_telemetry=%llu dropped_events=%llu", s->path,
		(long long)s->last_seq, (unsigned long long)s->dropped[0], (unsigned long long)s->dropped[1]);
	return 0;
}

int store_begin(struct store *s)
{
	NEED_DB(s, -ENODEV);
	if (s->in_txn)
		return -EALREADY;
	int rc = step_done(s, ST_BEGIN);
	if (rc == 0) {
		s->in_txn = true;
		s->txn_last_seq = s->last_seq;
	}
	return rc;
}

static uint32_t used_pages(struct store *s)
{
	int64_t pc = query_int(s, ST_PAGE_COUNT), fl = query_int(s, ST_FREELIST);
	return pc > fl && fl >= 0 ? (uint32_t)(pc - fl) : 0;
}

static int save_counters(struct store *s)
{
	static const char *const keys[2] = { "store.dropped_telemetry", "store.dropped_events" };
	int rc = 0;
	for (int k = 0; k < 2 && rc == 0; k++) {
		char v[32];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)s->dropped[k]);
		rc = store_kv_set(s, keys[k], v);
	}
	return rc;
}

/* Counts a row that never made it into the outbox (it has no seq). */
static void count_refused(struct store *s, enum store_kind kind)
{
	s->dropped[kind == STORE_EVENT ? 1 : 0]++;
	s->counters_dirty = true;
}

/* Deletes the oldest rows of the lowest priority until used pages fall to
 * low_pages, inside the caller's transaction. The rows are counted before
 * they are deleted, the counters are written in the same transaction, and a
 * rollback takes the counts back with the rows. */
static int prune(struct store *s)
{
	uint64_t before[2] = { s->dropped[0], s->dropped[1] };
	int64_t lo = INT64_MAX, hi = 0;
	int rc = 0;
	unsigned rounds = 0;
	while (used_pages(s) > s->low_pages && rounds++ < 100000) {
		sqlite3_stmt *mp = s->st[ST_MIN_PRIO];
		bool any = sqlite3_step(mp) == SQLITE_ROW && sqlite3_column_type(mp, 0) != SQLITE_NULL;
		int64_t prio = any ? sqlite3_column_int64(mp, 0) : 0;
		sqlite3_reset(mp);
		if (!any)
			break;
		sqlite3_stmt *c = s->st[ST_PRUNE_COUNT];
		sqlite3_bind_int64(c, 1, prio);
		sqlite3_bind_int(c, 2, PRUNE_CHUNK);
		uint64_t n = 0;
		while (sqlite3_step(c) == SQLITE_ROW) {
			int kind = sqlite3_column_int(c, 0);
			int64_t cnt = sqlite3_column_int64(c, 1);
			int64_t first = sqlite3_column_int64(c, 2), last = sqlite3_column_int64(c, 3);
			s->dropped[kind == STORE_EVENT ? 1 : 0] += (uint64_t)cnt;
			s->txn_pruned[kind == STORE_EVENT ? 1 : 0] += (uint64_t)cnt;
			n += (uint64_t)cnt;
			lo = first < lo ? first : lo;
			hi = last > hi ? last : hi;
		}
		sqlite3_reset(c);
		if (!n)
			break;
		sqlite3_bind_int64(s->st[ST_PRUNE], 1, prio);
		sqlite3_bind_int(s->st[ST_PRUNE], 2, PRUNE_CHUNK);
		if ((rc = step_done(s, ST_PRUNE)))
			break;
	}
	if (s->dropped[0] == before[0] && s->dropped[1] == before[1])
		return rc;
	if (rc == 0)
		rc = save_counters(s);
	/* The rows dropped all lie in first_seq..last_seq (rows of that range
	 * not dropped were acknowledged before, or have a higher priority). */
	log_wrn("event=budget_prune dropped_telemetry=%llu dropped_events=%llu first_seq=%lld last_seq=%lld "
		"total_telemetry=%llu total_events=%llu",
		(unsigned long long)(s->dropped[0] - before[0]), (unsigned long long)(s->dropped[1] - before[1]),
		(long long)lo, (long long)hi, (unsigned long long)s->dropped[0], (unsigned long long)s->dropped[1]);
	return rc;
}

static int maybe_prune(struct store *s)
{
	if (s->appended < s->check_bytes)
		return 0;
	s->appended = 0;
	if (used_pages(s) <= s->high_pages)
		return 0;
	s->pruned = true;
	return prune(s);
}

static void txn_reset(struct store *s)
{
	for (int k = 0; k < 2; k++) {
		s->txn_pruned[k] = 0;
		s->txn_rows[k] = 0;
	}
	s->in_txn = false;
	if (s->unsynced)
		(void)exec(s, "PRAGMA synchronous=FULL");
	s->unsynced = false;
}

/* The transaction ended without its changes: its prunes did not happen. */
static void txn_undone(struct store *s)
{
	for (int k = 0; k < 2; k++)
		s->dropped[k] -= s->txn_pruned[k];
	s->last_seq = s->txn_last_seq; /* the rolled back seqs are given out again */
	s->replies = (uint64_t)(query_int(s, ST_REPLY_COUNT) > 0 ? query_int(s, ST_REPLY_COUNT) : 0);
	txn_reset(s);
}

/* SQLite rolled the open transaction back by itself (a FULL outside a
 * statement journal does, as do IOERR and NOMEM): the rows appended in it
 * are lost, not by the caller's choice, so they count as dropped. */
static void txn_lost(struct store *s, const char *op, int src)
{
	uint32_t lost[2] = { s->txn_rows[0], s->txn_rows[1] };
	txn_undone(s);
	for (int k = 0; k < 2; k++)
		s->dropped[k] += lost[k];
	if (lost[0] || lost[1])
		s->counters_dirty = true;
	log_wrn("event=txn_rolled_back op=%s rc=%d dropped_telemetry=%u dropped_events=%u", op, src, lost[0], lost[1]);
}

/* Writes counts of refused or lost rows, in a transaction of their own so
 * that a full database cannot cost another transaction its rows. On failure
 * they stay pending for the next commit. */
static void flush_counters(struct store *s)
{
	if (!s->counters_dirty || s->in_txn || !s->db)
		return;
	if (step_done(s, ST_BEGIN))
		return;
	int rc = save_counters(s);
	if (rc == 0)
		rc = step_done(s, ST_COMMIT);
	if (rc && !sqlite3_get_autocommit(s->db))
		(void)step_done(s, ST_ROLLBACK);
	if (rc == 0)
		s->counters_dirty = false;
}

int store_commit(struct store *s)
{
	if (!s->in_txn)
		return -EINVAL;
	int rc = maybe_prune(s);
	if (rc == 0 && sqlite3_get_autocommit(s->db)) {
		txn_lost(s, "commit", rc);
		flush_counters(s);
		return -EIO;
	}
	if (rc == 0)
		rc = step_done(s, ST_COMMIT);
	if (rc) {
		/* The rows of a transaction that could not commit (disk full, I/O error) are
		 * lost, not by the caller's choice: counted as dropped. */
		if (sqlite3_get_autocommit(s->db) == 0)
			(void)step_done(s, ST_ROLLBACK);
		txn_lost(s, "commit", rc);
		flush_counters(s);
		return rc;
	}
	txn_reset(s);
	flush_counters(s);
	/* A large transaction (a prune) can leave the WAL above its share:
	 * checkpoint and truncate it now so the budget holds on disk. */
	bool check_wal = s->pruned || ++s->commits % 32 == 0;
	s->pruned = false;
	if (check_wal && dbfile_size(s->path, "-wal") > s->wal_limit_bytes) {
		int crc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
		if (crc != SQLITE_OK)
			log_wrn("event=checkpoint_failed rc=%d msg=\"%s\"", crc, sqlite3_errmsg(s->db));
	}
	return 0;
}

void store_rollback(struct store *s)
{
	if (!s->in_txn)
		return;
	if (sqlite3_get_autocommit(s->db) == 0)
		(void)step_done(s, ST_ROLLBACK);
	txn_undone(s);
	flush_counters(s);
}

int store_begin_unsynced(struct store *s)
{
	s->unsynced = s->db && s->opts.sync_full && !s->in_txn && exec(s, "PRAGMA synchronous=NORMAL") == 0;
	int rc = store_begin(s);
	if (rc && s->unsynced)
		txn_reset(s); /* back to FULL */
	return rc;
}

static int insert(struct store *s, enum store_kind kind, int prio, int64_t ts_ms, const char *body, size_t len)
{
	sqlite3_stmt *q = s->st[ST_APPEND];
	sqlite3_bind_int(q, 1, (int)kind);
	sqlite3_bind_int(q, 2, prio);
	sqlite3_bind_int64(q, 3, ts_ms);
	sqlite3_bind_text(q, 4, body, (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

static const char *kind_name(enum store_kind kind) { return kind == STORE_TELEMETRY ? "telemetry" : "event"; }

int store_append(struct store *s, enum store_kind kind, int prio, int64_t ts_ms, const char *body, size_t len,
		 int64_t *seq)
{
	if (kind != STORE_TELEMETRY && kind != STORE_EVENT)
		return -EINVAL;
	if (!s->db) {
		/* Degraded: nothing is buffered; the row is counted (saved when the store is back). */
		count_refused(s, kind);
		return -ENODEV;
	}
	if (len > STORE_ROW_MAX_BYTES) {
		count_refused(s, kind);
		log_wrn("event=row_dropped reason=too_large kind=%s len=%zu max=%d", kind_name(kind), len, STORE_ROW_MAX_BYTES);
		flush_counters(s);
		return -EMSGSIZE;
	}
	bool own_txn = !s->in_txn;
	int rc;
	if (own_txn && (rc = store_begin(s)))
		return rc;
	int src = insert(s, kind, prio, ts_ms, body, len);
	if (src == SQLITE_FULL) {
		/* The hard cap was hit between two budget checks. SQLite has most
		 * likely rolled the transaction back: begin again (the caller's
		 * transaction goes on in the new one), prune in it, retry once. */
		if (sqlite3_get_autocommit(s->db))
			txn_lost(s, "append", src);
		if (s->in_txn || store_begin(s) == 0) {
			s->pruned = true;
			if (prune(s) == 0)
				src = insert(s, kind, prio, ts_ms, body, len);
		}
	}
	if (src == SQLITE_DONE) {
		s->last_seq = sqlite3_last_insert_rowid(s->db);
		s->appended += len + 64;
		s->txn_rows[kind == STORE_EVENT ? 1 : 0]++;
		if (seq)
			*seq = s->last_seq;
		return own_txn ? store_commit(s) : 0;
	}
	if (s->in_txn && sqlite3_get_autocommit(s->db))
		txn_lost(s, "append", src);
	if (src == SQLITE_FULL) {
		count_refused(s, kind);
		log_wrn("event=row_dropped reason=store_full kind=%s len=%zu", kind_name(kind), len);
		rc = -ENOSPC;
	} else {
		rc = fail(s, src, "append");
	}
	if (own_txn)
		store_rollback(s);
	flush_counters(s);
	return rc;
}

int store_scan(struct store *s, int64_t after_seq, int64_t before_seq, unsigned max_rows, store_row_fn fn, void *arg)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_SCAN];
	sqlite3_bind_int64(q, 1, after_seq);
	sqlite3_bind_int64(q, 2, before_seq > 0 ? before_seq : INT64_MAX);
	sqlite3_bind_int(q, 3, (int)max_rows);
	int n = 0, rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_row r = {
			.seq = sqlite3_column_int64(q, 0),
			.kind = sqlite3_column_int(q, 1),
			.prio = sqlite3_column_int(q, 2),
			.ts_ms = sqlite3_column_int64(q, 3),
			.body = (const char *)sqlite3_column_text(q, 4),
			.len = (size_t)sqlite3_column_bytes(q, 4),
		};
		if (fn(arg, &r))
			break;
		n++;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(s, rc, "scan");
	return n;
}

int store_ack_range(struct store *s, int64_t lo, int64_t hi)
{
	NEED_DB(s, -ENODEV);
	sqlite3_bind_int64(s->st[ST_ACK], 1, lo);
	sqlite3_bind_int64(s->st[ST_ACK], 2, hi);
	return step_done(s, ST_ACK);
}

int64_t store_last_seq(const struct store *s) { return s->last_seq; }

static int copy_text(sqlite3_stmt *q, int col, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(q, col);
	size_t n = (size_t)sqlite3_column_bytes(q, col);
	if (n + 1 > len)
		return -ENOSPC;
	memcpy(buf, t ? (const char *)t : "", n);
	buf[n] = '\0';
	return 0;
}

/* Steps statement id (bound by the caller) for one row and copies its first column into buf.
 * Returns 0; -ENOENT without a row; -ENOSPC when it does not fit; the SQLite error, logged as
 * what. Resets the statement and clears its bindings. */
static int step_text(struct store *s, enum stmt_id id, const char *what, char *buf, size_t len)
{
	sqlite3_stmt *q = s->st[id];
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		rc = copy_text(q, 0, buf, len);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, what);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}

int store_desired_get(struct store *s, uint64_t *version, char *buf, size_t len)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_DESIRED_GET];
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*version = (uint64_t)sqlite3_column_int64(q, 0);
		rc = copy_text(q, 1, buf, len);
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : fail(s, rc, "desired_get");
	}
	sqlite3_reset(q);
	return rc;
}

int store_desired_set(struct store *s, uint64_t version, const char *json)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_DESIRED_SET];
	sqlite3_bind_int64(q, 1, (int64_t)version);
	sqlite3_bind_text(q, 2, json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, hal_clock_wall_ms());
	return step_done(s, ST_DESIRED_SET);
}

int store_journal_get(struct store *s, const char *id, int64_t now_ms, char *buf, size_t len)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_JOURNAL_GET];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, now_ms - (int64_t)CONFIG_STORE_JOURNAL_TTL_S * 1000);
	return step_text(s, ST_JOURNAL_GET, "journal_get", buf, len);
}

int store_journal_put(struct store *s, const char *id, const char *reply, int64_t now_ms)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_JOURNAL_PUT];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, reply, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, now_ms);
	int rc = step_done(s, ST_JOURNAL_PUT);
	if (rc)
		return rc;
	sqlite3_bind_int64(s->st[ST_JOURNAL_EXPIRE], 1, now_ms - (int64_t)CONFIG_STORE_JOURNAL_TTL_S * 1000);
	if ((rc = step_done(s, ST_JOURNAL_EXPIRE)))
		return rc;
	sqlite3_bind_int(s->st[ST_JOURNAL_CAP], 1, CONFIG_STORE_JOURNAL_MAX);
	return step_done(s, ST_JOURNAL_CAP);
}

int store_kv_get(struct store *s, const char *key, char *buf, size_t len)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_KV_GET];
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	return step_text(s, ST_KV_GET, "kv_get", buf, len);
}

int store_kv_set(struct store *s, const char *key, const char *value)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_KV_SET];
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
	return step_done(s, ST_KV_SET);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->dropped_telemetry = s->dropped[0];
	out->dropped_events = s->dropped[1];
	out->dropped_replies = s->dropped_replies;
	out->budget_bytes = s->budget_bytes;
	out->open_err = s->open_err;
	if (!s->db)
		return;
	out->replies = s->replies;
	int64_t rows = query_int(s, ST_ROWS);
	out->rows = rows > 0 ? (uint64_t)rows : 0;
	out->used_bytes = (uint64_t)used_pages(s) * PAGE_SIZE;
	out->file_bytes = dbfile_size(s->path, "") + dbfile_size(s->path, "-wal");
	out->last_seq = s->last_seq;
	out->recovered = s->recovered;
}

int store_integrity_check(struct store *s)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return fail(s, rc, "integrity_check");
	rc = sqlite3_step(q);
	bool ok = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0;
	sqlite3_finalize(q);
	return ok ? 0 : -EIO;
}

int store_reply_put(struct store *s, const char *topic, const void *corr, size_t corr_len, const char *body,
		    size_t len, int64_t now_ms)
{
	bool own_txn = !s->in_txn;
	int rc = s->db ? 0 : -ENODEV;
	if (rc || (own_txn && (rc = store_begin(s)))) {
		s->dropped_replies++;
		return rc;
	}
	if (s->replies >= CONFIG_STORE_REPLY_QUEUE_MAX) { /* full: the oldest goes (its reply stays journaled) */
		uint64_t n = s->replies - CONFIG_STORE_REPLY_QUEUE_MAX + 1;
		sqlite3_bind_int64(s->st[ST_REPLY_DROP], 1, (int64_t)n);
		if ((rc = step_done(s, ST_REPLY_DROP)))
			goto out;
		s->replies -= n;
		s->dropped_replies += n;
		log_wrn("event=reply_dropped reason=queue_full dropped=%llu total=%llu max=%d", (unsigned long long)n,
			(unsigned long long)s->dropped_replies, CONFIG_STORE_REPLY_QUEUE_MAX);
	}
	sqlite3_stmt *q = s->st[ST_REPLY_PUT];
	sqlite3_bind_text(q, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 2, corr_len ? corr : NULL, (int)corr_len, SQLITE_STATIC); /* NULL: none */
	sqlite3_bind_text(q, 3, body, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, now_ms);
	if ((rc = step_done(s, ST_REPLY_PUT)) == 0)
		s->replies++;
out:
	if (own_txn && rc == 0)
		return store_commit(s);
	if (own_txn)
		store_rollback(s);
	return rc;
}

int store_reply_next(struct store *s, int64_t after_id, store_reply_fn fn, void *arg)
{
	NEED_DB(s, -ENODEV);
	sqlite3_stmt *q = s->st[ST_REPLY_SCAN];
	sqlite3_bind_int64(q, 1, after_id);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		fn(arg, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1), sqlite3_column_blob(q, 2),
		   (size_t)sqlite3_column_bytes(q, 2), (const char *)sqlite3_column_text(q, 3),
		   (size_t)sqlite3_column_bytes(q, 3));
	sqlite3_reset(q);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : fail(s, rc, "reply_next");
}

int store_reply_ack(struct store *s, int64_t id)
{
	NEED_DB(s, -ENODEV);
	sqlite3_bind_int64(s->st[ST_REPLY_DEL], 1, id);
	int rc = step_done(s, ST_REPLY_DEL);
	if (rc == 0 && sqlite3_changes(s->db) > 0 && s->replies > 0)
		s->replies--;
	return rc;
}
