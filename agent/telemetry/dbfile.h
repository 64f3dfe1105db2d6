/* agent/telemetry/dbfile.h - the store's files on disk: sizes, and moving a bad database aside. */
#ifndef BERTH_DBFILE_H
#define BERTH_DBFILE_H

#include <stdint.h>

/* Size in bytes of the file path+sfx (e.g. "-wal"); 0 when it does not exist. */
uint64_t dbfile_size(const char *path, const char *sfx);

/* Renames path, path-wal and path-shm to path.corrupt, path.corrupt-wal and
 * path.corrupt-shm, replacing older ones; missing files are skipped, other
 * failures logged. */
void dbfile_move_aside(const char *path);

#endif
