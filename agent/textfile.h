/* agent/textfile.h - reads a small text file (config, deployments) whole, with a size bound. */
#ifndef BERTH_TEXTFILE_H
#define BERTH_TEXTFILE_H

#include <stddef.h>

/* Reads the regular file at path into a new NUL-terminated buffer that the
 * caller frees; *len_out is its length. A file larger than max_bytes is
 * refused before anything is allocated. Blocks on the read (local disk).
 * Returns 0; the -errno of open() (e.g. -ENOENT, -EACCES); -EINVAL when it
 * is not a regular file; -EFBIG when it is larger than max_bytes (*len_out
 * then holds its size); -ENOMEM. *buf_out is NULL on error. */
int textfile_read(const char *path, size_t max_bytes, char **buf_out, size_t *len_out)
	__attribute__((warn_unused_result));

#endif
