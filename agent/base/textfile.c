/* agent/base/textfile.c - reads a small text file whole, refusing one over its size bound. */
#include "agent/base/textfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hal/fs.h"

int textfile_read(const char *path, size_t max_bytes, char **buf_out, size_t *len_out)
{
	return hal_fs_read(path, max_bytes, buf_out, len_out);
}

void textfile_describe(int rc, const char *path, size_t len, size_t max_bytes, char *msg, size_t n)
{
	switch (rc) {
	case -EINVAL:
		snprintf(msg, n, "%s%snot a regular file", path ? path : "", path ? " is " : "");
		break;
	case -EFBIG:
		snprintf(msg, n, "%s is %zu bytes, at most %zu allowed", path ? path : "file", len, max_bytes);
		break;
	case -ENOMEM:
		snprintf(msg, n, "out of memory");
		break;
	default:
		snprintf(msg, n, "cannot open%s%s: %s", path ? " " : "", path ? path : "", strerror(-rc));
		break;
	}
}
