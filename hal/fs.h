/* hal/fs.h - the few filesystem calls the core makes: read a small file whole, make a directory, size and remove files. */
#ifndef BERTH_HAL_FS_H
#define BERTH_HAL_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads the regular file at path whole into a NUL-terminated buffer the
 * caller frees (*buf_out; *len_out bytes before the NUL). A file that shrinks
 * while read yields what was there. Returns 0, -EINVAL (not a regular file),
 * -EFBIG (larger than max_bytes: *len_out holds its size, *buf_out NULL),
 * -ENOMEM, or the open error (-ENOENT, -EACCES, ...). */
int hal_fs_read(const char *path, size_t max_bytes, char **buf_out, size_t *len_out)
	__attribute__((warn_unused_result));
/* Creates directory path with mode (e.g. 0750). Returns 0, -EEXIST when
 * something is there already, or another negative errno. */
int hal_fs_mkdir(const char *path, unsigned mode) __attribute__((warn_unused_result));
/* Size of the file at path in bytes. Returns 0 or a negative errno. */
int hal_fs_size(const char *path, uint64_t *bytes_out) __attribute__((warn_unused_result));
/* Permission bits of the file at path (st_mode & 07777), following links.
 * Returns 0 or a negative errno. A file holding a secret is refused when
 * (mode & 077) != 0: readable or writable by others than its owner. */
int hal_fs_mode(const char *path, unsigned *mode_out) __attribute__((warn_unused_result));

/* What hal_fs_info tells of a file. */
struct hal_fs_info {
	unsigned perm;      /* permission bits (07777) */
	uint32_t uid;       /* owner */
	bool is_dir;
	uint64_t size;      /* bytes */
};
/* The file at path (symbolic links followed). Returns 0 or a negative errno. */
int hal_fs_info(const char *path, struct hal_fs_info *out) __attribute__((warn_unused_result));
/* Device and inode of the open descriptor fd (to compare with JOURNAL_STREAM).
 * Returns 0 or a negative errno. */
int hal_fs_fd_id(int fd, uint64_t *dev, uint64_t *ino) __attribute__((warn_unused_result));

/* From now on, files and directories this process creates are its owner's
 * alone (umask 077): the data dir, the database, its WAL. */
void hal_fs_private_files(void);

/* Removes the file at path. Returns 0 or a negative errno (-ENOENT). */
int hal_fs_unlink(const char *path);

#endif
