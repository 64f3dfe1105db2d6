/* tests/bench/bench_store.c - the store's append path against a plain SQLite loop with the same schema and pragmas. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agent/telemetry/store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* One tick's row: a node section and 20 containers, like a real gateway's. */
static size_t make_row(char *buf, size_t cap, unsigned tick)
{
	size_t o = (size_t)snprintf(buf, cap,
				    "{\"node\":{\"cpu_pct\":%u.5,\"ncpu\":4,\"mem_total_bytes\":4093640704,"
				    "\"mem_avail_bytes\":%u,\"load1\":0.42},\"containers\":[",
				    tick % 100, 2811207680u - tick);
	for (int c = 0; c < 20; c++)
		o += (size_t)snprintf(buf + o, cap - o,
				      "%s{\"name\":\"det-%d\",\"cpu_ns\":%u,\"mem_bytes\":%u,\"rx\":%u,\"tx\":%u}",
				      c ? "," : "", c, tick * 1000 + (unsigned)c, 50000000u + tick, tick * 7, tick * 3);
	o += (size_t)snprintf(buf + o, cap - o, "]}");
	return o;
}

static int run_store(const char *path, unsigned rows, const char *sync, double *wall, double *cpu)
{
	struct store_opts o = { .path = path, .budget_kb = 1u << 20, .sync_full = strcmp(sync, "full") == 0 };
	struct store *s;
	int rc = store_open(&o, &s);
	if (rc)
		return rc;
	char row[8192];
	double t0 = now_s(), c0 = cpu_s();
	for (unsigned i = 0; i < rows && rc == 0; i++) {
		size_t n = make_row(row, sizeof(row), i);
		if ((rc = store_begin(s)) == 0) {
			rc = store_append(s, STORE_TELEMETRY, STORE_PRIO_TELEMETRY, 1767225600000LL + i, row, n, NULL);
			if (rc == 0)
				rc = store_commit(s);
		}
	}
	*wall = now_s() - t0;
	*cpu = cpu_s() - c0;
	store_close(s);
	return rc;
}

/* The same schema, pragmas and transaction per tick, written directly. */
static int run_raw(const char *path, unsigned rows, const char *sync, double *wall, double *cpu)
{
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -EIO;
	char pragmas[256];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
		 " PRAGMA wal_autocheckpoint=1024; PRAGMA journal_size_limit=4194304;",
		 strcmp(sync, "full") == 0 ? "FULL" : "NORMAL");
	const char *schema = "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER NOT NULL,"
			     " prio INTEGER NOT NULL, ts_ms INTEGER NOT NULL, body TEXT NOT NULL);"
			     "CREATE INDEX outbox_prio ON outbox(prio, seq);";
	sqlite3_busy_timeout(db, 2000);
	if (sqlite3_exec(db, pragmas, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_stmt *b, *ins, *c;
	sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &b, NULL);
	sqlite3_prepare_v2(db, "INSERT INTO outbox(kind, prio, ts_ms, body) VALUES (?1, ?2, ?3, ?4)", -1, &ins, NULL);
	sqlite3_prepare_v2(db, "COMMIT", -1, &c, NULL);
	char row[8192];
	int rc = 0;
	double t0 = now_s(), c0 = cpu_s();
	for (unsigned i = 0; i < rows && rc == 0; i++) {
		size_t n = make_row(row, sizeof(row), i);
		sqlite3_step(b);
		sqlite3_reset(b);
		sqlite3_bind_int(ins, 1, 0);
		sqlite3_bind_int(ins, 2, 0);
		sqlite3_bind_int64(ins, 3, 1767225600000LL + i);
		sqlite3_bind_text(ins, 4, row, (int)n, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			rc = -EIO;
		sqlite3_reset(ins);
		if (sqlite3_step(c) != SQLITE_DONE)
			rc = -EIO;
		sqlite3_reset(c);
	}
	*wall = now_s() - t0;
	*cpu = cpu_s() - c0;
	sqlite3_finalize(b);
	sqlite3_finalize(ins);
	sqlite3_finalize(c);
	sqlite3_close(db);
	return rc;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	unsigned rows = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
	const char *sync = argc > 3 ? argv[3] : "full";
	double sw = 0, sc = 0, rw = 0, rcpu = 0;
	/* Interleaved, two rounds each, so neither side gets the warmer disk. */
	for (int round = 0; round < 2; round++) {
		char p[512];
		double w, c;
		snprintf(p, sizeof(p), "%s/raw-%d.db", dir, round);
		if (run_raw(p, rows, sync, &w, &c)) {
			fprintf(stderr, "raw run failed\n");
			return 1;
		}
		rw += w;
		rcpu += c;
		snprintf(p, sizeof(p), "%s/store-%d.db", dir, round);
		if (run_store(p, rows, sync, &w, &c)) {
			fprintf(stderr, "store run failed\n");
			return 1;
		}
		sw += w;
		sc += c;
	}
	double store_rps = 2.0 * rows / sw, raw_rps = 2.0 * rows / rw;
	printf("store: %u rows x2 in %.3f s (cpu %.3f s); raw sqlite: %.3f s (cpu %.3f s); synchronous=%s\n", rows, sw,
	       sc, rw, rcpu, sync);
	printf("RESULT bench=store rows_per_s=%.0f raw_rows_per_s=%.0f ratio=%.2f cpu_us_per_row=%.1f "
	       "raw_cpu_us_per_row=%.1f synchronous=%s\n",
	       store_rps, raw_rps, store_rps / raw_rps, sc * 1e6 / (2.0 * rows), rcpu * 1e6 / (2.0 * rows), sync);
	return 0;
}
