/* ports/posix/fs.c - hal/fs.h on POSIX (linked into both the linux and the sim port: the sim reads real files). */
#include "hal/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int hal_fs_read(const char *path, size_t max_bytes, char **buf_out, size_t *len_out)
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

int hal_fs_mkdir(const char *path, unsigned mode)
{
	return mkdir(path, (mode_t)mode) < 0 ? -errno : 0;
}

int hal_fs_size(const char *path, uint64_t *bytes_out)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	*bytes_out = (uint64_t)st.st_size;
	return 0;
}

int hal_fs_mode(const char *path, unsigned *mode_out)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	*mode_out = (unsigned)(st.st_mode & 07777);
	return 0;
}

int hal_fs_unlink(const char *path)
{
	return unlink(path) < 0 ? -errno : 0;
}

int hal_fs_info(const char *path, struct hal_fs_info *out)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	out->perm = (unsigned)(st.st_mode & 07777);
	out->uid = (uint32_t)st.st_uid;
	out->is_dir = S_ISDIR(st.st_mode);
	out->size = (uint64_t)st.st_size;
	return 0;
}

int hal_fs_fd_id(int fd, uint64_t *dev, uint64_t *ino)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	return 0;
}

void hal_fs_private_files(void)
{
	umask(0077);
}
