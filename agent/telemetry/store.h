/* agent/telemetry/store.h - the agent's one SQLite database: outbox, desired state, command journal, key-value state. */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* What a row of the outbox carries; kind decides the MQTT topic. */
enum store_kind { STORE_TELEMETRY = 0, STORE_EVENT = 1 };

/* Priority of a row: the budget prunes the lowest priority first (oldest
 * first inside one priority), so telemetry goes before events. */
enum { STORE_PRIO_TELEMETRY = 0, STORE_PRIO_EVENT = 10 };

/* Largest row body accepted by store_append (-EMSGSIZE above). */
#define STORE_ROW_MAX_BYTES CONFIG_TELEMETRY_ROW_BYTES

struct store_opts {
	const char *path;        /* database file; "-wal" and "-shm" live beside it */
	uint32_t budget_kb;      /* database + WAL cap (KiB), >= 256 */
	bool sync_full;          /* PRAGMA synchronous=FULL (else NORMAL) */
	bool degrade;            /* a file that cannot be opened gives an unavailable store, not an error */
};

/* One outbox row, valid only during the scan callback. */
struct store_row {
	int64_t seq;             /* monotonically increasing, never reused */
	int kind;                /* enum store_kind */
	int prio;
	int64_t ts_ms;           /* wall clock at append */
	const char *body;        /* JSON text, not NUL-terminated */
	size_t len;
};

struct store_stats {
	uint64_t rows;               /* rows in the outbox */
	uint64_t dropped_telemetry;  /* pruned by the budget, since the database was made */
	uint64_t dropped_events;
	uint64_t used_bytes;         /* pages in use * page size */
	uint64_t budget_bytes;
	uint64_t file_bytes;         /* database file + WAL on disk */
	int64_t last_seq;
	bool recovered;              /* a corrupt database was moved aside at open */
	int open_err;                /* degraded mode: -errno of the last failed open (0: available) */
	uint64_t replies;            /* command replies queued */
	uint64_t dropped_replies;    /* replies dropped past CONFIG_STORE_REPLY_QUEUE_MAX, this run */
};

/* Opens (creating if needed) the database, applies pragmas (WAL, synchronous,
 * busy_timeout, max_page_count) and forward migrations. A database that is
 * corrupt, not a database, or of a newer schema is renamed to
 * PATH.corrupt (its -wal/-shm too, replacing an older .corrupt) and a fresh
 * one is made with an event "store_recovered" in its outbox. Blocks on disk
 * I/O (an integrity quick_check: about a second per 100 MB on a gateway).
 * Returns 0 and *out, or -errno. Close with store_close(). */
int store_open(const struct store_opts *o, struct store **out) __attribute__((warn_unused_result));
void store_close(struct store *s);

/* Degraded mode. With opts.degrade, a database that cannot be opened at all
 * (a directory, no permission, an unwritable disk: anything but out of memory)
 * still gives a store: store_available() is false, nothing is buffered, every
 * row appended is counted as dropped (-ENODEV), every other call returns
 * -ENODEV. store_retry() tries to open the file again (the caller paces it
 * with a back-off); on success the counts of the rows dropped meanwhile are
 * added to the saved counters. store_retry on an available store returns 0. */
bool store_available(const struct store *s);
/* -errno of the last failed open (0 when available). */
int store_open_error(const struct store *s);
/* True inside a transaction (store_begin without commit or rollback yet): rows read now may
 * still be rolled back, so nothing read should leave the gateway before the commit. */
bool store_in_txn(const struct store *s);
/* Replies queued and dropped (cheap: no query). */
void store_reply_counts(const struct store *s, uint64_t *queued, uint64_t *dropped);
int store_retry(struct store *s) __attribute__((warn_unused_result));

/* One transaction around the appends of one tick. Without begin, every
 * append commits by itself. commit also enforces the budget.
 * Drop accounting: a pruned row is counted in the transaction that deletes
 * it, so a rollback takes the count back with the row; a refused row (too
 * large, or no room even after pruning) is counted at once and written to the
 * database outside the caller's transaction. A rollback by the caller
 * discards the rows it appended in the transaction; a rollback forced by
 * SQLite (a full database) counts them as dropped, and the transaction goes
 * on in a new one. The seqs of rows rolled back are given out again. */
int store_begin(struct store *s) __attribute__((warn_unused_result));
/* A transaction whose loss in a power cut costs only duplicates (deletes of acknowledged
 * rows and replies): with telemetry.synchronous full its commit does not wait for the
 * disk (SQLite's synchronous NORMAL for it; a process kill loses nothing, and the next
 * synced commit makes it durable). Otherwise as store_begin. */
int store_begin_unsynced(struct store *s) __attribute__((warn_unused_result));
int store_commit(struct store *s) __attribute__((warn_unused_result));
void store_rollback(struct store *s);

/* Appends one row (body: JSON text of len bytes, copied). *seq (optional)
 * gets its sequence number. When the database is full even after pruning the
 * row is dropped, counted, and -ENOSPC returned; a body above
 * STORE_ROW_MAX_BYTES is refused with -EMSGSIZE (and counted likewise). */
int store_append(struct store *s, enum store_kind kind, int prio, int64_t ts_ms, const char *body,
		 size_t len, int64_t *seq) __attribute__((warn_unused_result));

/* Calls fn for the rows with after_seq < seq < before_seq (before_seq <= 0:
 * no upper bound) in ascending seq order, at most max_rows. fn returns 0 to go
 * on, 1 to stop (that row is not consumed). Returns the number of rows
 * consumed, or -errno. */
typedef int (*store_row_fn)(void *arg, const struct store_row *row);
int store_scan(struct store *s, int64_t after_seq, int64_t before_seq, unsigned max_rows, store_row_fn fn,
	       void *arg) __attribute__((warn_unused_result));

/* Deletes the rows lo <= seq <= hi (acknowledged by the broker). */
int store_ack_range(struct store *s, int64_t lo, int64_t hi) __attribute__((warn_unused_result));

/* Highest seq ever given out (0 for a new database). */
int64_t store_last_seq(const struct store *s);

/* Last desired state. get: -ENOENT when none, -ENOSPC when len is too small. */
int store_desired_get(struct store *s, uint64_t *version, char *buf, size_t len)
	__attribute__((warn_unused_result));
int store_desired_set(struct store *s, uint64_t version, const char *json) __attribute__((warn_unused_result));

/* Command journal: the reply given to a command id, kept CONFIG_STORE_JOURNAL_TTL_S
 * seconds and at most CONFIG_STORE_JOURNAL_MAX entries (oldest go first).
 * get: -ENOENT when unknown or expired. */
int store_journal_get(struct store *s, const char *id, int64_t now_ms, char *buf, size_t len)
	__attribute__((warn_unused_result));
int store_journal_put(struct store *s, const char *id, const char *reply, int64_t now_ms)
	__attribute__((warn_unused_result));

/* Command replies waiting for the broker (a queue apart from the outbox, so
 * the outbox's seqs stay contiguous for telemetry consumers). put queues one
 * (topic, correlation data, body), inside the caller's transaction when one is
 * open; past CONFIG_STORE_REPLY_QUEUE_MAX queued the oldest are deleted and
 * counted in dropped_replies. next calls fn with the first reply whose id is
 * above after_id (pointers valid during the call) and returns 1, or 0 when
 * there is none. ack deletes reply id (acknowledged by the broker). */
typedef void (*store_reply_fn)(void *arg, int64_t id, const char *topic, const void *corr, size_t corr_len,
			       const char *body, size_t len);
int store_reply_put(struct store *s, const char *topic, const void *corr, size_t corr_len, const char *body,
		    size_t len, int64_t now_ms) __attribute__((warn_unused_result));
int store_reply_next(struct store *s, int64_t after_id, store_reply_fn fn, void *arg)
	__attribute__((warn_unused_result));
int store_reply_ack(struct store *s, int64_t id) __attribute__((warn_unused_result));

/* Small key-value state (strings). get: -ENOENT when absent. */
int store_kv_get(struct store *s, const char *key, char *buf, size_t len) __attribute__((warn_unused_result));
int store_kv_set(struct store *s, const char *key, const char *value) __attribute__((warn_unused_result));

void store_get_stats(struct store *s, struct store_stats *out);

/* PRAGMA integrity_check; 0 when "ok", -EIO otherwise (for tests and tools). */
int store_integrity_check(struct store *s) __attribute__((warn_unused_result));

/* Schema version this build writes. */
int store_schema_version(void);

#endif
