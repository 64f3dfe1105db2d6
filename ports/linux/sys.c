/* ports/linux/sys.c - node and container statistics from /proc, /sys and the cgroup hierarchies (v1, v2, hybrid). */
#include "hal/sys.h"
#include "ports/linux/sys_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Small files are read whole into stack buffers of these sizes; what the
 * parsers need sits at the start of each, so a truncated read of a huge
 * /proc/stat (many CPUs, long intr line) still yields the aggregate line. */
#define SMALL_FILE_MAX 256
#define TEXT_FILE_MAX 8192
#define STAT_FILE_MAX 16384
/* /proc/self/mountinfo is read line by line; longer lines (overlay mounts
 * with many layers) are skipped, they are never cgroup mounts. */
#define MOUNTINFO_LINE_MAX 4096

/* v1 memory.limit_in_bytes reports "no limit" as a page-rounded
 * LLONG_MAX; anything this large is no limit. */
#define UNLIMITED_FLOOR (UINT64_C(1) << 62)

static char g_root[LINUX_CG_PATH_MAX] = "";
/* Mount points of the hierarchies change only when someone remounts them:
 * parsed once, parsed again when the cgroup files of a container vanish. */
static struct linux_cg_mounts g_mounts;
static bool g_mounts_valid;

void linux_sys_set_root(const char *root)
{
	snprintf(g_root, sizeof(g_root), "%s", root && strcmp(root, "/") ? root : "");
	g_mounts_valid = false;
}

/* --- helpers ---------------------------------------------------------- */

static int host_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int host_path(char *buf, size_t len, const char *fmt, ...)
{
	size_t rl = strlen(g_root);
	if (rl >= len)
		return -ENAMETOOLONG;
	memcpy(buf, g_root, rl);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + rl, len - rl, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - rl)
		return -ENAMETOOLONG;
	return 0;
}

/* Reads at most len-1 bytes of the file (below the root) into buf,
 * NUL-terminated. Returns the byte count or -errno. */
static int read_text(const char *abs_path, char *buf, size_t len)
{
	char path[LINUX_CG_PATH_MAX * 2];
	int rc = host_path(path, sizeof(path), "%s", abs_path);
	if (rc)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (int)got;
}

static const char *next_line(const char *p)
{
	const char *nl = strchr(p, '\n');
	return nl ? nl + 1 : NULL;
}

/* Parses an unsigned decimal at *p, skipping leading blanks; advances *p. */
static bool take_u64(const char **p, uint64_t *val)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	uint64_t v = 0;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*val = v;
	return true;
}

/* --- node parsers ------------------------------------------------------- */

int linux_parse_stat(const char *text, struct hal_node_stats *out)
{
	bool have_cpu = false;
	uint32_t ncpu = 0;
	for (const char *line = text; line && *line; line = next_line(line)) {
		if (strncmp(line, "cpu", 3) != 0)
			continue;
		if (line[3] == ' ') {
			/* user nice system idle iowait irq softirq steal [guest guest_nice] */
			uint64_t v[8] = { 0 };
			const char *p = line + 3;
			int n = 0;
			while (n < 8 && take_u64(&p, &v[n]))
				n++;
			if (n < 4)
				return -EINVAL;
			out->cpu_busy_ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
			out->cpu_total_ticks = out->cpu_busy_ticks + v[3] + v[4];
			have_cpu = true;
		} else if (isdigit((unsigned char)line[3])) {
			ncpu++;
		}
	}
	if (!have_cpu)
		return -EINVAL;
	out->ncpu = ncpu ? ncpu : 1;
	return 0;
}

static bool meminfo_field(const char *text, const char *name, uint64_t *bytes)
{
	size_t nl = strlen(name);
	for (const char *line = text; line && *line; line = next_line(line)) {
		if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *p = line + nl + 1;
			uint64_t kb;
			if (!take_u64(&p, &kb))
				return false;
			*bytes = kb * 1024;
			return true;
		}
	}
	return false;
}

int linux_parse_meminfo(const char *text, struct hal_node_stats *out)
{
	uint64_t total, avail;
	if (!meminfo_field(text, "MemTotal", &total))
		return -EINVAL;
	if (!meminfo_field(text, "MemAvailable", &avail)) {
		uint64_t mfree = 0, buffers = 0, cached = 0;
		if (!meminfo_field(text, "MemFree", &mfree))
			return -EINVAL;
		(void)meminfo_field(text, "Buffers", &buffers);
		(void)meminfo_field(text, "Cached", &cached);
		avail = mfree + buffers + cached;
	}
	out->mem_total_bytes = total;
	out->mem_avail_bytes = avail < total ? avail : total;
	return 0;
}

int linux_parse_loadavg(const char *text, double *load1)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (end == text || errno || v < 0)
		return -EINVAL;
	*load1 = v;
	return 0;
}

int linux_parse_uptime(const char *text, uint64_t *uptime_s)
{
	const char *p = text;
	if (!take_u64(&p, uptime_s))
		return -EINVAL;
	return 0;
}

int linux_parse_net_dev(const char *text, uint64_t *rx_bytes, uint64_t *tx_bytes)
{
	uint64_t rx = 0, tx = 0;
	bool any = false;
	/* "  eth0: rx_bytes rx_packets errs drop fifo frame compressed multicast tx_bytes ..." */
	for (const char *line = text; line && *line; line = next_line(line)) {
		const char *colon = strchr(line, ':');
		const char *nl = strchr(line, '\n');
		if (!colon || (nl && colon > nl))
			continue; /* the two header lines have no colon */
		const char *name = line;
		while (*name == ' ')
			name++;
		size_t name_len = (size_t)(colon - name);
		const char *p = colon + 1;
		uint64_t v[9];
		int n = 0;
		while (n < 9 && take_u64(&p, &v[n]))
			n++;
		if (n < 9)
			return -EINVAL;
		any = true;
		if (name_len == 2 && strncmp(name, "lo", 2) == 0)
			continue;
		rx += v[0];
		tx += v[8];
	}
	if (!any && !strstr(text, "Inter-"))
		return -EINVAL;
	*rx_bytes = rx;
	*tx_bytes = tx;
	return 0;
}

int linux_parse_u64(const char *text, uint64_t *val)
{
	const char *p = text;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "max", 3) == 0 && (p[3] == '\0' || isspace((unsigned char)p[3]))) {
		*val = UINT64_MAX;
		return 0;
	}
	if (!take_u64(&p, val))
		return -EINVAL;
	return *p == '\0' || isspace((unsigned char)*p) ? 0 : -EINVAL;
}

int linux_parse_keyed_u64(const char *text, const char *key, uint64_t *val)
{
	size_t kl = strlen(key);
	for (const char *line = text; line && *line; line = next_line(line)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			const char *p = line + kl;
			return take_u64(&p, val) ? 0 : -EINVAL;
		}
	}
	return -ENOENT;
}

/* --- cgroup parsers ------------------------------------------------------ */

/* Copies the space-terminated mountinfo field at s, decoding \ooo escapes. */
static int copy_field(char *dst, size_t len, const char *s, const char *end)
{
	size_t n = 0;
	while (s < end && *s != ' ') {
		char ch = *s++;
		if (ch == '\\' && end - s >= 3 && s[0] >= '0' && s[0] <= '3' && s[1] >= '0' && s[1] <= '7' &&
		    s[2] >= '0' && s[2] <= '7') {
			ch = (char)((s[0] - '0') * 64 + (s[1] - '0') * 8 + (s[2] - '0'));
			s += 3;
		}
		if (n + 1 >= len)
			return -ENAMETOOLONG;
		dst[n++] = ch;
	}
	dst[n] = '\0';
	return 0;
}

/* Points at the start of field idx (0-based) of the space-separated line. */
static const char *field_at(const char *line, const char *end, int idx)
{
	const char *p = line;
	for (int i = 0; i < idx; i++) {
		p = memchr(p, ' ', (size_t)(end - p));
		if (!p)
			return NULL;
		p++;
	}
	return p < end ? p : NULL;
}

/* True when the comma-separated list [s, end) holds word. */
static bool list_has(const char *s, const char *end, const char *word)
{
	size_t wl = strlen(word);
	while (s < end) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *e = comma ? comma : end;
		if ((size_t)(e - s) == wl && strncmp(s, word, wl) == 0)
			return true;
		s = e + 1;
	}
	return false;
}

static const char *const v1_names[] = {
	[LINUX_CG_MEMORY] = "memory",
	[LINUX_CG_CPUACCT] = "cpuacct",
	[LINUX_CG_PIDS] = "pids",
};

static int mountinfo_line(const char *line, const char *end, struct linux_cg_mounts *out)
{
	/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
	const char *sep = line;
	for (;;) {
		sep = memchr(sep, '-', (size_t)(end - sep));
		if (!sep)
			return 0;
		if (sep > line && sep[-1] == ' ' && sep + 1 < end && sep[1] == ' ')
			break;
		sep++;
	}
	const char *fstype = sep + 2;
	const char *fs_end = memchr(fstype, ' ', (size_t)(end - fstype));
	if (!fs_end)
		return 0;
	bool v2 = (size_t)(fs_end - fstype) == 7 && strncmp(fstype, "cgroup2", 7) == 0;
	bool v1 = (size_t)(fs_end - fstype) == 6 && strncmp(fstype, "cgroup", 6) == 0;
	if (!v1 && !v2)
		return 0;
	const char *root = field_at(line, sep, 3);
	const char *mnt = field_at(line, sep, 4);
	if (!root || !mnt)
		return -EINVAL;

	const char *super = field_at(fs_end + 1, end, 1);
	for (int c = 0; c < LINUX_CG_COUNT; c++) {
		bool match;
		if (c == LINUX_CG_UNIFIED)
			match = v2;
		else
			match = v1 && super && list_has(super, end, v1_names[c]);
		if (!match || out->mnt[c][0])
			continue;
		int rc = copy_field(out->root[c], sizeof(out->root[c]), root, sep);
		if (!rc)
			rc = copy_field(out->mnt[c], sizeof(out->mnt[c]), mnt, sep);
		if (rc)
			return rc;
	}
	return 0;
}

int linux_cg_parse_mountinfo(const char *text, struct linux_cg_mounts *out)
{
	memset(out, 0, sizeof(*out));
	for (const char *line = text; line && *line; line = next_line(line)) {
		const char *end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		int rc = mountinfo_line(line, end, out);
		if (rc)
			return rc;
	}
	return 0;
}

int linux_cg_parse_proc(const char *text, struct linux_cg_paths *out)
{
	bool any = false;
	memset(out, 0, sizeof(*out));
	for (const char *line = text; line && *line; line = next_line(line)) {
		const char *end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		if (end == line)
			continue;
		const char *c1 = memchr(line, ':', (size_t)(end - line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		if (!c2)
			return -EINVAL;
		const char *ctrls = c1 + 1, *path = c2 + 1;
		size_t plen = (size_t)(end - path);
		if (plen == 0 || path[0] != '/')
			return -EINVAL;
		for (int c = 0; c < LINUX_CG_COUNT; c++) {
			bool match;
			if (c == LINUX_CG_UNIFIED)
				match = ctrls == c2 && (size_t)(c1 - line) == 1 && line[0] == '0';
			else
				match = list_has(ctrls, c2, v1_names[c]);
			if (!match)
				continue;
			if (plen >= sizeof(out->path[c]))
				return -ENAMETOOLONG;
			memcpy(out->path[c], path, plen);
			out->path[c][plen] = '\0';
			any = true;
		}
	}
	return any ? 0 : -ENOENT;
}

int linux_cg_dir(const struct linux_cg_mounts *m, const struct linux_cg_paths *p, enum linux_cg c, char *buf,
		 size_t len)
{
	if ((unsigned)c >= LINUX_CG_COUNT || !m->mnt[c][0] || !p->path[c][0])
		return -ENOENT;
	const char *path = p->path[c];
	const char *root = m->root[c];
	size_t rl = strlen(root);
	/* Inside a cgroup namespace or a bind-mounted sub-tree the mount shows
	 * only part of the hierarchy: strip its root from the process's path. */
	if (rl > 1 && strncmp(path, root, rl) == 0 && (path[rl] == '/' || path[rl] == '\0'))
		path += rl;
	if (strcmp(path, "/") == 0)
		path = "";
	int n = snprintf(buf, len, "%s%s", m->mnt[c], path);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* --- reading -------------------------------------------------------------- */

static int load_mounts(void)
{
	char path[LINUX_CG_PATH_MAX * 2];
	int rc = host_path(path, sizeof(path), "/proc/self/mountinfo");
	if (rc)
		return rc;
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	memset(&g_mounts, 0, sizeof(g_mounts));
	char line[MOUNTINFO_LINE_MAX];
	bool skipping = false;
	rc = 0;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		bool whole = n > 0 && line[n - 1] == '\n';
		if (!skipping && whole)
			rc = mountinfo_line(line, line + n - 1, &g_mounts);
		skipping = !whole;
		if (rc)
			break;
	}
	fclose(f);
	g_mounts_valid = rc == 0;
	return rc;
}

int hal_sys_node_stats(const char *disk_path, struct hal_node_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->temp_mc = INT32_MIN;
	int first_err = 0;
	char buf[STAT_FILE_MAX];
	int n;

	if ((n = read_text("/proc/stat", buf, sizeof(buf))) < 0 || linux_parse_stat(buf, out) < 0)
		first_err = n < 0 ? n : -EINVAL;
	if ((n = read_text("/proc/meminfo", buf, sizeof(buf))) < 0 || linux_parse_meminfo(buf, out) < 0)
		first_err = first_err ? first_err : (n < 0 ? n : -EINVAL);
	/* Fields that cannot be read stay 0, as the contract says. */
	if (read_text("/proc/loadavg", buf, SMALL_FILE_MAX) < 0 || linux_parse_loadavg(buf, &out->load1) < 0)
		out->load1 = 0;
	if (read_text("/proc/uptime", buf, SMALL_FILE_MAX) < 0 || linux_parse_uptime(buf, &out->uptime_s) < 0)
		out->uptime_s = 0;

	char dir_path[LINUX_CG_PATH_MAX];
	if (host_path(dir_path, sizeof(dir_path), "/sys/class/thermal") == 0) {
		DIR *d = opendir(dir_path);
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL) {
			char zone[LINUX_CG_PATH_MAX];
			if (strncmp(de->d_name, "thermal_zone", 12) != 0)
				continue;
			snprintf(zone, sizeof(zone), "/sys/class/thermal/%.200s/temp", de->d_name);
			/* Some zones fail to read (sensor asleep, -ENODATA): skip them. */
			if (read_text(zone, buf, SMALL_FILE_MAX) <= 0)
				continue;
			char *end;
			long long mc = strtoll(buf, &end, 10);
			if (end != buf && mc > INT32_MIN && mc <= INT32_MAX && mc > out->temp_mc)
				out->temp_mc = (int32_t)mc;
		}
		if (d)
			closedir(d);
	}

	struct statvfs vfs;
	if (disk_path && statvfs(disk_path, &vfs) == 0) {
		out->disk_total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		out->disk_free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	}
	return first_err;
}

/* Reads file name in the process's cgroup directory of hierarchy c. */
static int read_cg(const struct linux_cg_paths *p, enum linux_cg c, const char *name, char *buf, size_t len)
{
	char dir[LINUX_CG_PATH_MAX], file[LINUX_CG_PATH_MAX + 64];
	int rc = linux_cg_dir(&g_mounts, p, c, dir, sizeof(dir));
	if (rc)
		return rc;
	if (snprintf(file, sizeof(file), "%s/%s", dir, name) >= (int)sizeof(file))
		return -ENAMETOOLONG;
	return read_text(file, buf, len);
}

static int read_cg_u64(const struct linux_cg_paths *p, enum linux_cg c, const char *name, uint64_t *val)
{
	char buf[SMALL_FILE_MAX];
	int n = read_cg(p, c, name, buf, sizeof(buf));
	return n < 0 ? n : linux_parse_u64(buf, val);
}

static int read_cg_keyed(const struct linux_cg_paths *p, enum linux_cg c, const char *name, const char *key,
			 uint64_t *val)
{
	char buf[TEXT_FILE_MAX];
	int n = read_cg(p, c, name, buf, sizeof(buf));
	return n < 0 ? n : linux_parse_keyed_u64(buf, key, val);
}

/* Memory as docker stats and the kubelet report it: usage less the
 * inactive page cache the kernel reclaims first (the working set). */
static int ctr_memory(const struct linux_cg_paths *p, struct hal_ctr_stats *out)
{
	uint64_t usage, limit = 0, inactive = 0;
	if (read_cg_u64(p, LINUX_CG_MEMORY, "memory.usage_in_bytes", &usage) == 0) {
		(void)read_cg_u64(p, LINUX_CG_MEMORY, "memory.limit_in_bytes", &limit);
		(void)read_cg_keyed(p, LINUX_CG_MEMORY, "memory.stat", "total_inactive_file", &inactive);
	} else if (read_cg_u64(p, LINUX_CG_UNIFIED, "memory.current", &usage) == 0) {
		(void)read_cg_u64(p, LINUX_CG_UNIFIED, "memory.max", &limit);
		(void)read_cg_keyed(p, LINUX_CG_UNIFIED, "memory.stat", "inactive_file", &inactive);
	} else {
		return -ENOENT;
	}
	out->mem_bytes = inactive < usage ? usage - inactive : 0;
	out->mem_limit_bytes = limit >= UNLIMITED_FLOOR ? 0 : limit;
	return 0;
}

static int ctr_cpu(const struct linux_cg_paths *p, struct hal_ctr_stats *out)
{
	uint64_t v;
	if (read_cg_u64(p, LINUX_CG_CPUACCT, "cpuacct.usage", &v) == 0) {
		out->cpu_usage_ns = v;
		return 0;
	}
	if (read_cg_keyed(p, LINUX_CG_UNIFIED, "cpu.stat", "usage_usec", &v) == 0) {
		out->cpu_usage_ns = v * 1000;
		return 0;
	}
	return -ENOENT;
}

static int ctr_pids(const struct linux_cg_paths *p, struct hal_ctr_stats *out)
{
	uint64_t v;
	if (read_cg_u64(p, LINUX_CG_PIDS, "pids.current", &v) != 0 &&
	    read_cg_u64(p, LINUX_CG_UNIFIED, "pids.current", &v) != 0)
		return -ENOENT;
	out->pids = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	return 0;
}

int hal_sys_ctr_stats(int pid, struct hal_ctr_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (pid <= 0)
		return -ESRCH;
	char file[64], buf[TEXT_FILE_MAX];
	snprintf(file, sizeof(file), "/proc/%d/cgroup", pid);
	int n = read_text(file, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : n;
	struct linux_cg_paths paths;
	int rc = linux_cg_parse_proc(buf, &paths);
	if (rc)
		return rc;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!g_mounts_valid && (rc = load_mounts()) != 0)
			return rc;
		int got = 0;
		got += ctr_memory(&paths, out) == 0;
		got += ctr_cpu(&paths, out) == 0;
		got += ctr_pids(&paths, out) == 0;
		if (got)
			break;
		if (attempt == 1)
			return -ENOENT;
		/* Nothing readable: the hierarchies may have been remounted. */
		g_mounts_valid = false;
	}

	snprintf(file, sizeof(file), "/proc/%d/net/dev", pid);
	if (read_text(file, buf, sizeof(buf)) < 0 ||
	    linux_parse_net_dev(buf, &out->net_rx_bytes, &out->net_tx_bytes) < 0)
		out->net_rx_bytes = out->net_tx_bytes = 0;
	/* The process may have exited between the reads. */
	snprintf(file, sizeof(file), "/proc/%d", pid);
	char path[LINUX_CG_PATH_MAX * 2];
	if (host_path(path, sizeof(path), "%s", file) == 0 && access(path, F_OK) != 0)
		return -ESRCH;
	return 0;
}

static int machine_id_from(const char *abs_path, char *buf, size_t len)
{
	char text[SMALL_FILE_MAX];
	int n = read_text(abs_path, text, sizeof(text));
	if (n < 0)
		return n;
	size_t l = 0;
	while (l < (size_t)n && isxdigit((unsigned char)text[l]))
		l++;
	/* An empty or uninitialized ("uninitialized\n" during first boot) id is no id. */
	if (l == 0 || (text[l] != '\0' && !isspace((unsigned char)text[l])))
		return -ENOENT;
	if (l >= len)
		return -ENOSPC;
	memcpy(buf, text, l);
	buf[l] = '\0';
	return 0;
}

int hal_sys_machine_id(char *buf, size_t len)
{
	int rc = machine_id_from("/etc/machine-id", buf, len);
	if (rc == 0 || rc == -ENOSPC)
		return rc;
	return machine_id_from("/var/lib/dbus/machine-id", buf, len);
}

unsigned hal_sys_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* Reads a small /proc file of this process (never under the test root). */
static int read_self(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	return (int)n;
}

int hal_sys_proc_stats(struct hal_proc_stats *out)
{
	memset(out, 0, sizeof(*out));
	char buf[1024];
	int rc = read_self("/proc/self/stat", buf, sizeof(buf));
	if (rc < 0)
		return rc;
	/* the command name may hold spaces and parentheses: fields start after the last ')' */
	const char *p = strrchr(buf, ')');
	unsigned long long utime, stime, start, vsize;
	long long rss;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
			 "%llu %llu %lld", &utime, &stime, &start, &vsize, &rss) != 5)
		return -EINVAL;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	if (hz <= 0 || page <= 0)
		return -EINVAL;
	out->cpu_seconds = (double)(utime + stime) / (double)hz;
	out->vsize_bytes = vsize;
	out->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
	struct mallinfo2 mi = mallinfo2();
	out->heap_used_bytes = mi.uordblks + mi.hblkhd;
	out->heap_free_bytes = mi.fordblks;
	char st[4096];
	if (read_self("/proc/stat", st, sizeof(st)) > 0) {
		const char *b = strstr(st, "\nbtime ");
		if (b)
			out->start_time_s = strtoull(b + 7, NULL, 10) + start / (unsigned long long)hz;
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		uint32_t n = 0;
		for (struct dirent *e; (e = readdir(d));)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		out->open_fds = n ? n - 1 : 0; /* less the directory's own descriptor */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		out->max_fds = (uint32_t)rl.rlim_cur;
	return 0;
}

/* glibc's default threshold (128 KiB, raised as mmapped chunks are freed)
 * puts tables of 16-128 KiB in the heap, where calloc clears reused memory
 * and so touches every page; a fixed threshold keeps them untouched. The
 * local API's connection pools (16 KiB each: libmicrohttpd takes them from
 * malloc below 32 KiB) get their own pages too and go back to the system
 * when the connection closes, so a burst of connections leaves no dirty
 * heap behind (with a 24 KiB threshold they stayed in the heap: 16 kept-
 * alive connections left ~256 kB of dirty free chunks). So do libcurl's
 * 16 KiB receive buffers, one per transfer slot used. */
#define SYS_MMAP_THRESHOLD_BYTES (16 * 1024)
#define SYS_TRIM_THRESHOLD_BYTES (64 * 1024)

void hal_sys_tune_memory(void)
{
	(void)mallopt(M_MMAP_THRESHOLD, SYS_MMAP_THRESHOLD_BYTES);
	(void)mallopt(M_TRIM_THRESHOLD, SYS_TRIM_THRESHOLD_BYTES);
	(void)mallopt(M_ARENA_MAX, 1);
}

void hal_sys_trim_memory(void) { (void)malloc_trim(0); }
