/* agent/infer/process_metrics.c - /metrics' build info and berthd's own process series (Prometheus' process_* names). */
#include "agent/infer/process_metrics.h"

#include <stdio.h>

#include "agent/base/prom.h"
#include "agent/base/version.h"
#include "hal/sys.h"

size_t process_metrics_render(char *buf, size_t len)
{
	struct hal_proc_stats ps;
	int k = snprintf(buf, len, "# HELP berth_build_info The running build.\n# TYPE berth_build_info gauge\n"
			 "berth_build_info{version=\"" BERTH_VERSION "\"} 1\n");
	size_t n = (size_t)(k > 0 ? k : 0);
	if (hal_sys_proc_stats(&ps) != 0)
		return n;
	static const char *const fam[][3] = {
		{ "process_cpu_seconds_total", "counter", "User and system CPU seconds." },
		{ "process_resident_memory_bytes", "gauge", "Resident memory." },
		{ "process_open_fds", "gauge", "Open file descriptors." },
		{ "process_start_time_seconds", "gauge", "Start time, Unix seconds." },
		{ "berth_heap_used_bytes", "gauge", "Memory the allocator has handed out (heap and mapped)." },
		{ "berth_heap_free_bytes", "gauge", "Memory freed but kept by the allocator (not back to the system)." },
	};
	const double v[] = { ps.cpu_seconds, (double)ps.rss_bytes, ps.open_fds, (double)ps.start_time_s,
			     (double)ps.heap_used_bytes, (double)ps.heap_free_bytes };
	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		prom_family(buf, len, &n, fam[i][0], fam[i][1], fam[i][2], v[i]);
	return n;
}
