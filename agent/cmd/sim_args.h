/* agent/cmd/sim_args.h - berth-sim's command line: options, defaults and their checks. */
#ifndef BERTH_SIM_ARGS_H
#define BERTH_SIM_ARGS_H

#include <stdint.h>

#include "agent/infer/sched.h"

#define SIM_ARGS_MB (1024ull * 1024ull)

enum as_mode { AS_NONE = -1, AS_OFF = 0, AS_REACTIVE, AS_PREDICTIVE };

struct sim_opts {
	const char *trace;
	enum sched_policy policy;
	unsigned slots;
	unsigned replicas;
	unsigned reserve;
	unsigned concurrency;             /* of every replica */
	double speedup;
	double cost_ms;                   /* when the trace has no cost_ms */
	int oracle;
	int ignore_size;                  /* do not pass the size column to the scheduler */
	int only_class;                   /* -1: all */
	unsigned long seed;               /* of the service-time jitter */
	double cost_jitter_pct;           /* each request's service time times 1 +- this (0: none) */
	int verbose;
	/* autoscaling (--autoscale) */
	enum as_mode autoscale;
	unsigned rmin, rmax;
	uint32_t startup_ms, interval_s, cooldown_s, bucket_s, day_s;
	uint64_t replica_mem, node_mem, base_mem;
	double target_low, target_high;
	const char *csv_path;
};

/* "off", "reactive", "predictive" (indexed by enum as_mode >= 0). */
extern const char *const sim_args_as_modes[3];

/* Fills o from argv (defaults first, see --help). Returns 0 to run, 1 when
 * --help or --version was printed (exit 0), or -EINVAL after printing why
 * (and the usage) to stderr (exit 2). */
int sim_args_parse(int argc, char **argv, struct sim_opts *o);

/* berth-sim --site N ...: a simulated site (agent/cmd/sim_site.c, site preset only). Exit code. */
int sim_site_main(int argc, char **argv);

#endif
