/* hal/sys.h - node and per-container resource statistics, and the device identity. */
#ifndef BERTH_HAL_SYS_H
#define BERTH_HAL_SYS_H

#include <stddef.h>
#include <stdint.h>

/* One reading of the node. Counters are cumulative since boot; the caller
 * takes differences between two readings to get rates. */
struct hal_node_stats {
	uint64_t cpu_busy_ticks;    /* user+nice+system+irq+softirq+steal */
	uint64_t cpu_total_ticks;   /* busy + idle + iowait */
	uint32_t ncpu;              /* online CPUs */
	uint64_t mem_total_bytes;
	uint64_t mem_avail_bytes;   /* MemAvailable */
	double load1;               /* 1-minute load average */
	int32_t temp_mc;            /* hottest thermal zone, milli-degC; INT32_MIN if none */
	uint64_t disk_total_bytes;  /* of the filesystem holding the data dir */
	uint64_t disk_free_bytes;   /* available to unprivileged users */
	uint64_t uptime_s;
};

/* One reading of a container, found through the pid of its init process.
 * The port derives the container's cgroup from /proc/<pid>/cgroup itself
 * (v1 and v2 both); nothing is hard-coded. */
struct hal_ctr_stats {
	uint64_t cpu_usage_ns;      /* cumulative CPU time of the cgroup */
	uint64_t mem_bytes;         /* usage less inactive page cache (the working
	                             * set, as docker stats and the kubelet report it) */
	uint64_t mem_limit_bytes;   /* 0: unlimited */
	uint64_t net_rx_bytes;      /* of the netns of pid, all interfaces but lo
	                             * (the host's when the container uses host networking) */
	uint64_t net_tx_bytes;
	uint32_t pids;              /* tasks in the cgroup */
};

/* berthd's own process, for /metrics (Prometheus' process_* series). */
struct hal_proc_stats {
	double cpu_seconds;         /* user + system CPU time */
	uint64_t rss_bytes;         /* resident set size */
	uint64_t vsize_bytes;       /* virtual memory size */
	uint32_t open_fds;
	uint32_t max_fds;           /* soft limit */
	uint64_t start_time_s;      /* Unix time the process started */
	uint64_t heap_used_bytes;   /* the allocator's bytes handed out (0: unknown) */
	uint64_t heap_free_bytes;   /* freed but kept by the allocator, not returned to the system */
};

/* Reads the calling process. Returns 0 or -errno; fields it cannot read are left 0. */
int hal_sys_proc_stats(struct hal_proc_stats *out) __attribute__((warn_unused_result));

/* Reads the node. disk_path names a directory on the filesystem to report
 * (the data dir). Returns 0 or -errno; fields it cannot read are left 0. */
int hal_sys_node_stats(const char *disk_path, struct hal_node_stats *out)
	__attribute__((warn_unused_result));

/* Reads the container whose init process is pid. Returns 0, -ESRCH if the
 * process is gone, or another -errno. */
int hal_sys_ctr_stats(int pid, struct hal_ctr_stats *out)
	__attribute__((warn_unused_result));

/* A stable identity of this machine (e.g. /etc/machine-id), NUL-terminated
 * into buf. Returns 0 or -errno (-ENOSPC when len is too small). */
int hal_sys_machine_id(char *buf, size_t len) __attribute__((warn_unused_result));

/* Tunes the process's allocator for a small resident set, once at start
 * before anything is allocated: allocations of 24 KiB and more (the
 * modules' tables, the HTTP server's connection pools) get pages of their own that stay untouched, and
 * uncounted, until used, and return to the system when freed; one arena.
 * A no-op where the C library has no such knobs. */
void hal_sys_tune_memory(void);

/* Hands the memory the allocator holds free (in the middle of the heap too) back to the
 * system, e.g. after a burst of connections. A no-op where the C library cannot. */
void hal_sys_trim_memory(void);

/* Number of online CPUs, at least 1. */
unsigned hal_sys_ncpu(void);

#endif
