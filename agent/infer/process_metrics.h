/* agent/infer/process_metrics.h - /metrics' build info and berthd's own process series. */
#ifndef BERTH_PROCESS_METRICS_H
#define BERTH_PROCESS_METRICS_H

#include <stddef.h>

/* Writes berth_build_info and, where the port can read the process, process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
 * process_max_fds and process_start_time_seconds into buf (len bytes). Returns the length
 * needed, as snprintf does. */
size_t process_metrics_render(char *buf, size_t len);

#endif
