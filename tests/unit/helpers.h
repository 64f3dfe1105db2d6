/* tests/unit/helpers.h - helpers the unit tests share: a scratch directory for a store, and running the loop in virtual time. */
#ifndef BERTH_TEST_HELPERS_H
#define BERTH_TEST_HELPERS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "agent/base/loop.h"
#include "hal/clock.h"

/* Makes a fresh directory /tmp/berth-<stem>-XXXXXX in dir (dir_len bytes)
 * and, when db_path is not NULL, names the store file in it ("<dir>/berth.db").
 * Returns 0 or -1. */
static inline int test_tmpdir(char *dir, size_t dir_len, const char *stem, char *db_path, size_t db_path_len)
{
	snprintf(dir, dir_len, "/tmp/berth-%s-XXXXXX", stem);
	if (!mkdtemp(dir))
		return -1;
	if (db_path)
		snprintf(db_path, db_path_len, "%s/berth.db", dir);
	return 0;
}

/* Removes a directory made by test_tmpdir() with all it holds. Returns 0 or -1. */
static inline int test_rmtree(const char *dir)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Runs the loop for ms of virtual time, waking at least every max_step_ms. */
static inline void test_run_ms(struct loop *l, uint64_t ms, uint64_t max_step_ms)
{
	uint64_t end = hal_clock_now_us() + ms * 1000u;
	while (hal_clock_now_us() < end) {
		uint64_t left_ms = (end - hal_clock_now_us() + 999) / 1000;
		loop_run_once(l, (int)(left_ms < max_step_ms ? left_ms : max_step_ms));
	}
}

#endif
