/* agent/base/textfile.c - reads a small text file whole, refusing one over its size bound. */
#include "agent/base/textfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int textfile_read(const char *path, size_t max_bytes, char **buf_out, size_t *len_out)
{
	*buf_out = NULL;
	*len_out = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto errout_with_fd;
	}
	if ((unsigned long long)st.st_size > max_bytes) {
		*len_out = (size_t)st.st_size;
		rc = -EFBIG;
		goto errout_with_fd;
	}
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto errout_with_fd;
	}
	/* A file that shrinks while read yields what was there. */
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*buf_out = buf;
	*len_out = got;
	return 0;

errout_with_fd:
	close(fd);
	return rc;
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
