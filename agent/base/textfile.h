/* agent/base/textfile.h - reads a small text file (config, deployments) whole, with a size bound. */
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

/* Writes into msg (n bytes) what the error rc of textfile_read() means, with len as it returned
 * it. With path NULL: "not a regular file", "file is LEN bytes, at most MAX allowed", "out of
 * memory", "cannot open: <strerror>"; with a path, the file is named: "PATH is not a regular
 * file", "PATH is LEN bytes, at most MAX allowed", "cannot open PATH: <strerror>". */
void textfile_describe(int rc, const char *path, size_t len, size_t max_bytes, char *msg, size_t n);

#endif
