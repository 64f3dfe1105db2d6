/* agent/telemetry/sampler.h - per-container and node metrics sampled at the metric interval into fixed rings. */
#ifndef BERTH_SAMPLER_H
#define BERTH_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/model/deploy.h"

struct loop;
struct supervisor;
struct sampler;

#define METRICS_MAX_CTRS 32   /* container series kept; the stalest is reused when full */

/* One container reading. cpu_pct is of one core (200 = two cores busy). */
struct metric_ctr_sample {
	int64_t wall_ms;
	uint64_t mono_ms;
	float cpu_pct;
	uint64_t mem_bytes;
	uint64_t mem_limit_bytes;   /* 0: unlimited */
	uint64_t net_rx_bytes;      /* cumulative */
	uint64_t net_tx_bytes;
	uint32_t pids;
	uint32_t restarts;
	uint8_t ready;
	uint8_t live;
};

struct metric_node_sample {
	int64_t wall_ms;
	uint64_t mono_ms;
	float cpu_pct;              /* of the whole node, 0..100 */
	uint32_t ncpu;
	uint64_t mem_total_bytes;
	uint64_t mem_avail_bytes;
	float load1;
	int32_t temp_mc;            /* INT32_MIN: no sensor */
	uint64_t disk_total_bytes;
	uint64_t disk_free_bytes;
	uint64_t uptime_s;
};

/* Identity of a container series. */
struct metric_series_info {
	char deployment[DEPLOY_NAME_MAX];
	unsigned slot;
	unsigned count;             /* samples held, <= CONFIG_METRIC_RING_LEN */
	uint64_t last_mono_ms;
};

/* Called after each tick with that tick's readings (valid during the call):
 * the node, then every container read this tick (names in infos). */
typedef void (*sampler_sink_fn)(void *arg, const struct metric_node_sample *node,
				const struct metric_series_info *infos, const struct metric_ctr_sample *ctrs,
				unsigned nctrs);

/* A container to sample: its replica's identity and what the supervisor
 * knows of it (copied into each sample). */
struct sampler_target {
	char deployment[DEPLOY_NAME_MAX];
	unsigned slot;
	int pid;                    /* <= 0: not running, skipped */
	unsigned restarts;
	bool ready, live;
};
/* Fills out[0..max) with the containers to sample now; returns how many.
 * Called from sampler_sample (the supervisor's side registers it: the
 * sampler knows no supervisor). */
typedef unsigned (*sampler_targets_fn)(void *arg, struct sampler_target *out, unsigned max);

/* Samples every interval_ms (0: CONFIG_METRIC_INTERVAL_MS) the node and the
 * containers the targets function names (none until one is set); disk_path
 * names the filesystem of the data dir. All memory is allocated here, once.
 * NULL on failure. */
struct sampler *sampler_create(struct loop *l, const char *disk_path, unsigned interval_ms);
/* Sets (NULL: clears) who names the containers to sample. */
void sampler_set_targets(struct sampler *m, sampler_targets_fn fn, void *arg);
void sampler_destroy(struct sampler *m);
int sampler_start(struct sampler *m) __attribute__((warn_unused_result));
/* A new period (a reload; 0: CONFIG_METRIC_INTERVAL_MS), the next sample one period from now.
 * The rings keep their samples. Returns 0 or a negative errno (no timer). */
int sampler_set_interval(struct sampler *m, unsigned interval_ms) __attribute__((warn_unused_result));
/* Takes one sample now (also what the timer does). */
void sampler_sample(struct sampler *m);
void sampler_set_sink(struct sampler *m, sampler_sink_fn fn, void *arg);

/* Reading. *_read copy up to max samples, oldest first, and return how many. */
unsigned sampler_node_read(const struct sampler *m, struct metric_node_sample *out, unsigned max);
int sampler_node_latest(const struct sampler *m, struct metric_node_sample *out)
	__attribute__((warn_unused_result)); /* 0 or -ENOENT */
unsigned sampler_series_count(const struct sampler *m);
int sampler_series_info(const struct sampler *m, unsigned i, struct metric_series_info *out)
	__attribute__((warn_unused_result)); /* 0 or -ENOENT */
unsigned sampler_ctr_read(const struct sampler *m, const char *deployment, unsigned slot,
			  struct metric_ctr_sample *out, unsigned max);
int sampler_ctr_latest(const struct sampler *m, const char *deployment, unsigned slot, struct metric_ctr_sample *out)
	__attribute__((warn_unused_result)); /* 0 or -ENOENT */

/* Counters: samples overwritten in full rings, readings that failed, and
 * series dropped because the table was full of fresh series. */
struct sampler_stats {
	uint64_t ticks;
	uint64_t overwritten;
	uint64_t read_errors;
	uint64_t series_full;
};
void sampler_get_stats(const struct sampler *m, struct sampler_stats *out);

#endif
