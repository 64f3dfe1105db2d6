/* agent/telemetry/dbfile.c - the store's files on disk: sizes, and moving a bad database aside. */
#include "agent/telemetry/dbfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/base/log.h"
#include "hal/fs.h"

#define LOG_TAG "store"

uint64_t dbfile_size(const char *path, const char *sfx)
{
	char p[600];
	uint64_t bytes;
	snprintf(p, sizeof(p), "%s%s", path, sfx);
	return hal_fs_size(p, &bytes) == 0 ? bytes : 0;
}

void dbfile_move_aside(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < 3; i++) {
		char from[600], to[640];
		snprintf(from, sizeof(from), "%s%s", path, sfx[i]);
		snprintf(to, sizeof(to), "%s.corrupt%s", path, sfx[i]);
		(void)hal_fs_unlink(to);
		if (rename(from, to) < 0 && errno != ENOENT)
			log_err("event=move_aside_failed from=%s err=%s", from, strerror(errno));
	}
}
