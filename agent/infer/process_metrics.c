/* agent/infer/process_metrics.c - /metrics' build info and berthd's own process series (Prometheus' process_* names). */
#include "agent/infer/process_metrics.h"

#include <stdio.h>

#include "agent/base/version.h"
#include "hal/sys.h"

/* Build information and berthd's own process, under Prometheus' usual names. */
size_t process_metrics_render(char *buf, size_t len)
{
	struct hal_proc_stats ps;
	int k = snprintf(buf, len,
			 "# HELP berth_build_info The running berth build (always 1).\n"
			 "# TYPE berth_build_info gauge\n"
			 "berth_build_info{version=\"" BERTH_VERSION "\"} 1\n");
	size_t n = (size_t)(k > 0 ? k : 0);
	if (hal_sys_proc_stats(&ps) != 0)
		return n;
	k = snprintf(buf + (n < len ? n : len), n < len ? len - n : 0,
		     "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
		     "# TYPE process_cpu_seconds_total counter\n"
		     "process_cpu_seconds_total %.2f\n"
		     "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
		     "# TYPE process_resident_memory_bytes gauge\n"
		     "process_resident_memory_bytes %llu\n"
		     "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
		     "# TYPE process_virtual_memory_bytes gauge\n"
		     "process_virtual_memory_bytes %llu\n"
		     "# HELP process_open_fds Number of open file descriptors.\n"
		     "# TYPE process_open_fds gauge\n"
		     "process_open_fds %u\n"
		     "# HELP process_max_fds Maximum number of open file descriptors.\n"
		     "# TYPE process_max_fds gauge\n"
		     "process_max_fds %u\n"
		     "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
		     "# TYPE process_start_time_seconds gauge\n"
		     "process_start_time_seconds %llu\n",
		     ps.cpu_seconds, (unsigned long long)ps.rss_bytes, (unsigned long long)ps.vsize_bytes, ps.open_fds,
		     ps.max_fds, (unsigned long long)ps.start_time_s);
	return n + (size_t)(k > 0 ? k : 0);
}
