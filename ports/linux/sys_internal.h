/* ports/linux/sys_internal.h - the linux port's /proc, /sys and cgroup parsers, exposed for tests. */
#ifndef BERTH_LINUX_SYS_INTERNAL_H
#define BERTH_LINUX_SYS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hal/sys.h"

/* Longest cgroup path or mount point handled; longer ones give -ENAMETOOLONG. */
#define LINUX_CG_PATH_MAX 512

/* Every absolute path the port reads (/proc, /sys, /etc, /var, and the
 * cgroup mount points found in /proc/self/mountinfo) is taken relative to
 * root: with root "tests/fixtures/linux/cgroup-v1", /proc/stat is read from
 * "tests/fixtures/linux/cgroup-v1/proc/stat". NULL or "" restores "/".
 * The disk path given to hal_sys_node_stats() is the caller's and is not
 * prefixed. Not thread-safe; for tests. */
void linux_sys_set_root(const char *root);

/* --- node: pure parsers (text in, numbers out; return 0 or -EINVAL) ---- */

/* /proc/stat: the aggregate "cpu" line into cpu_busy_ticks and
 * cpu_total_ticks (busy = user+nice+system+irq+softirq+steal, total = busy
 * + idle + iowait; guest time is already inside user), and the number of
 * "cpuN" lines into ncpu. */
int linux_parse_stat(const char *text, struct hal_node_stats *out) __attribute__((warn_unused_result));

/* /proc/meminfo: MemTotal and MemAvailable (kB) into bytes. Kernels older
 * than 3.14 have no MemAvailable: MemFree + Buffers + Cached is used then. */
int linux_parse_meminfo(const char *text, struct hal_node_stats *out) __attribute__((warn_unused_result));

/* /proc/loadavg: the 1-minute load average. */
int linux_parse_loadavg(const char *text, double *load1) __attribute__((warn_unused_result));

/* /proc/uptime: whole seconds since boot. */
int linux_parse_uptime(const char *text, uint64_t *uptime_s) __attribute__((warn_unused_result));

/* /proc/<pid>/net/dev: received and sent bytes summed over every interface
 * except the loopback "lo" (traffic between processes of one network
 * namespace is not network traffic of the container). */
int linux_parse_net_dev(const char *text, uint64_t *rx_bytes, uint64_t *tx_bytes)
	__attribute__((warn_unused_result));

/* A file holding one unsigned number (memory.current, pids.current, a
 * thermal zone's temp, ...). "max" yields UINT64_MAX. */
int linux_parse_u64(const char *text, uint64_t *val) __attribute__((warn_unused_result));

/* A "key value" line file (memory.stat, cpu.stat): the value of key.
 * Returns -ENOENT when the key is absent. */
int linux_parse_keyed_u64(const char *text, const char *key, uint64_t *val) __attribute__((warn_unused_result));

/* --- cgroups ------------------------------------------------------------ */

/* The hierarchies berth reads. On cgroup v1 each controller has its own
 * hierarchy (perhaps shared, e.g. "cpu,cpuacct"); on v2 there is one,
 * LINUX_CG_UNIFIED; a hybrid host has both, and the v1 controllers win. */
enum linux_cg {
	LINUX_CG_MEMORY,
	LINUX_CG_CPUACCT,
	LINUX_CG_PIDS,
	LINUX_CG_UNIFIED,
	LINUX_CG_COUNT
};

/* Where each hierarchy is mounted, from /proc/self/mountinfo. mnt[c] is
 * "" when the hierarchy is not mounted; root[c] is the mount's root inside
 * the hierarchy ("/" unless inside a container's cgroup namespace). */
struct linux_cg_mounts {
	char mnt[LINUX_CG_COUNT][LINUX_CG_PATH_MAX];
	char root[LINUX_CG_COUNT][LINUX_CG_PATH_MAX];
};

/* The cgroup of one process in each hierarchy, from /proc/<pid>/cgroup;
 * "" when the process has no line for it. */
struct linux_cg_paths {
	char path[LINUX_CG_COUNT][LINUX_CG_PATH_MAX];
};

/* Parses mountinfo text: "cgroup" mounts by the controllers in their
 * super options (named hierarchies such as name=systemd are skipped),
 * "cgroup2" as the unified one. Octal escapes (\040) are decoded. The
 * first mount of a hierarchy wins. Returns 0 or -EINVAL. */
int linux_cg_parse_mountinfo(const char *text, struct linux_cg_mounts *out) __attribute__((warn_unused_result));

/* Parses /proc/<pid>/cgroup text: "ID:controllers:path" lines (v1) and
 * "0::path" (v2). Returns 0, -ENOENT when no line names a hierarchy berth
 * reads, -ENAMETOOLONG or -EINVAL. */
int linux_cg_parse_proc(const char *text, struct linux_cg_paths *out) __attribute__((warn_unused_result));

/* The directory of the process's cgroup in hierarchy c: mount point plus
 * the path, less the mount's root when the path lies under it. Returns 0,
 * -ENOENT when the hierarchy is not mounted or the process has no path
 * in it, -ENAMETOOLONG. buf does not include the root prefix of
 * linux_sys_set_root(). */
int linux_cg_dir(const struct linux_cg_mounts *m, const struct linux_cg_paths *p, enum linux_cg c, char *buf,
		 size_t len) __attribute__((warn_unused_result));

#endif
