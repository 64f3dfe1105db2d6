/* agent/cmd/sim_args.c - berth-sim's command line (usage in --help). */
#include "agent/cmd/sim_args.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/version.h"

#define DEFAULT_COST_MS 10.0          /* when the trace has no cost_ms column */

const char *const sim_args_as_modes[3] = { "off", "reactive", "predictive" };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: berth-sim --trace FILE [--policy fifo|edf|edf-admit|edf-reserve|edf-preempt|edf-mc]\n"
		"                 [--slots N] [--replicas N] [--reserve N] [--speedup K] [--concurrency N]\n"
		"                 [--cost-ms N] [--oracle-cost] [--ignore-size] [--only-class urgent|normal|batch]\n"
		"                 [--cost-jitter-pct P [--seed S]] [--verbose]\n"
		"                 [--autoscale off|reactive|predictive [--replicas-min N] [--replicas-max N]\n"
		"                  [--startup-ms N] [--replica-mem-mb N] [--node-mem-mb N] [--base-mem-mb N]\n"
		"                  [--interval-s N] [--cooldown-s N] [--bucket-s N] [--day-s N]\n"
		"                  [--target-low X] [--target-high X] [--replicas-csv FILE]]\n"
		"Replays a CSV trace (t_ms,model,deadline_ms[,class][,cost_ms][,size]) through the scheduler in\n"
		"virtual time and prints per-class figures and a RESULT line. The size column goes to the\n"
		"scheduler's size-aware estimator unless --ignore-size. With --autoscale the\n"
		"autoscaler decides every model's replicas (off: --replicas N stay, the forecaster runs\n"
		"alongside) and the RESULT line carries autoscale=.. violation_s=.. replica_s=.. mase=..\n"
		"--cost-jitter-pct P scales each request's service time by a factor drawn uniformly from\n"
		"1 +- P/100 (0 <= P < 100), from a generator seeded with --seed (default 1).\n"
		"Defaults: policy " CONFIG_SCHED_DEFAULT_POLICY ", slots 2, replicas = slots (--autoscale: replicas-min), concurrency 1, cost 10 ms;\n"
		"replicas 1..8, start-up 3000 ms, 256 MiB each, node 2048 MiB with 256 MiB in use, interval\n"
		"30 s, cool-down 300 s, bucket 60 s, day 86400 s, targets 0.95 / 0.98.\n");
}

enum {
	OPT_CONCURRENCY = 256, OPT_COST_MS, OPT_AUTOSCALE, OPT_RMIN, OPT_RMAX, OPT_STARTUP_MS, OPT_REPLICA_MEM,
	OPT_NODE_MEM, OPT_BASE_MEM, OPT_INTERVAL_S, OPT_COOLDOWN_S, OPT_BUCKET_S, OPT_DAY_S, OPT_TARGET_LOW,
	OPT_TARGET_HIGH, OPT_CSV, OPT_JITTER, OPT_IGNORE_SIZE,
};

static const struct option longopts[] = {
	{ "trace", required_argument, NULL, 't' },
	{ "policy", required_argument, NULL, 'p' },
	{ "slots", required_argument, NULL, 's' },
	{ "replicas", required_argument, NULL, 'r' },
	{ "reserve", required_argument, NULL, 'R' },
	{ "speedup", required_argument, NULL, 'k' },
	{ "oracle-cost", no_argument, NULL, 'o' },
	{ "ignore-size", no_argument, NULL, OPT_IGNORE_SIZE },
	{ "only-class", required_argument, NULL, 'c' },
	{ "seed", required_argument, NULL, 'S' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
	{ "cost-ms", required_argument, NULL, OPT_COST_MS },
	{ "autoscale", required_argument, NULL, OPT_AUTOSCALE },
	{ "replicas-min", required_argument, NULL, OPT_RMIN },
	{ "replicas-max", required_argument, NULL, OPT_RMAX },
	{ "startup-ms", required_argument, NULL, OPT_STARTUP_MS },
	{ "replica-mem-mb", required_argument, NULL, OPT_REPLICA_MEM },
	{ "node-mem-mb", required_argument, NULL, OPT_NODE_MEM },
	{ "base-mem-mb", required_argument, NULL, OPT_BASE_MEM },
	{ "interval-s", required_argument, NULL, OPT_INTERVAL_S },
	{ "cooldown-s", required_argument, NULL, OPT_COOLDOWN_S },
	{ "bucket-s", required_argument, NULL, OPT_BUCKET_S },
	{ "day-s", required_argument, NULL, OPT_DAY_S },
	{ "target-low", required_argument, NULL, OPT_TARGET_LOW },
	{ "target-high", required_argument, NULL, OPT_TARGET_HIGH },
	{ "replicas-csv", required_argument, NULL, OPT_CSV },
	{ "cost-jitter-pct", required_argument, NULL, OPT_JITTER },
	{ 0, 0, 0, 0 },
};

static void defaults(struct sim_opts *o)
{
	memset(o, 0, sizeof(*o));
	int def_policy = sched_policy_parse(CONFIG_SCHED_DEFAULT_POLICY);
	o->policy = def_policy < 0 ? SCHED_EDF_MC : (enum sched_policy)def_policy;
	o->slots = 2;
	o->replicas = 0;
	o->reserve = 1;
	o->concurrency = 1;
	o->speedup = 1.0;
	o->cost_ms = DEFAULT_COST_MS;
	o->only_class = -1;
	o->seed = 1;
	o->autoscale = AS_NONE;
	o->rmin = 1;
	o->rmax = 8;
	o->startup_ms = 3000;
	o->interval_s = 30;
	o->cooldown_s = 300;
	o->bucket_s = 60;
	o->day_s = 86400;
	o->replica_mem = 256 * SIM_ARGS_MB;
	o->node_mem = 2048 * SIM_ARGS_MB;
	o->base_mem = 256 * SIM_ARGS_MB;
	o->target_low = 0.95;
	o->target_high = 0.98;
}

/* One option. Returns 0, 1 (printed help or version: done), or -EINVAL. */
static int option(int opt, const char *arg, struct sim_opts *o, char **end)
{
	int rc;
	switch (opt) {
	case 't': o->trace = arg; break;
	case 'p':
		rc = sched_policy_parse(arg);
		if (rc < 0) {
			fprintf(stderr, "berth-sim: unknown policy '%s'\n", arg);
			return -EINVAL;
		}
		o->policy = (enum sched_policy)rc;
		break;
	case 's': o->slots = (unsigned)strtoul(arg, end, 10); break;
	case 'r': o->replicas = (unsigned)strtoul(arg, end, 10); break;
	case 'R': o->reserve = (unsigned)strtoul(arg, end, 10); break;
	case 'k': o->speedup = strtod(arg, end); break;
	case 'o': o->oracle = 1; break;
	case OPT_IGNORE_SIZE: o->ignore_size = 1; break;
	case 'c':
		o->only_class = sla_class_parse(arg, strlen(arg), false);
		if (o->only_class < 0) {
			fprintf(stderr, "berth-sim: unknown class '%s'\n", arg);
			return -EINVAL;
		}
		break;
	case 'S': o->seed = strtoul(arg, end, 10); break;
	case 'v': o->verbose = 1; break;
	case 'V': printf("berth-sim %s\n", BERTH_VERSION); return 1;
	case 'h': usage(stdout); return 1;
	case OPT_CONCURRENCY: o->concurrency = (unsigned)strtoul(arg, end, 10); break;
	case OPT_COST_MS: o->cost_ms = strtod(arg, end); break;
	case OPT_AUTOSCALE:
		o->autoscale = AS_NONE;
		for (int i = 0; i < 3; i++)
			if (!strcmp(arg, sim_args_as_modes[i]))
				o->autoscale = (enum as_mode)i;
		if (o->autoscale == AS_NONE) {
			fprintf(stderr, "berth-sim: unknown autoscale mode '%s'\n", arg);
			return -EINVAL;
		}
		break;
	case OPT_RMIN: o->rmin = (unsigned)strtoul(arg, end, 10); break;
	case OPT_RMAX: o->rmax = (unsigned)strtoul(arg, end, 10); break;
	case OPT_STARTUP_MS: o->startup_ms = (uint32_t)strtoul(arg, end, 10); break;
	case OPT_REPLICA_MEM: o->replica_mem = strtoull(arg, end, 10) * SIM_ARGS_MB; break;
	case OPT_NODE_MEM: o->node_mem = strtoull(arg, end, 10) * SIM_ARGS_MB; break;
	case OPT_BASE_MEM: o->base_mem = strtoull(arg, end, 10) * SIM_ARGS_MB; break;
	case OPT_INTERVAL_S: o->interval_s = (uint32_t)strtoul(arg, end, 10); break;
	case OPT_COOLDOWN_S: o->cooldown_s = (uint32_t)strtoul(arg, end, 10); break;
	case OPT_BUCKET_S: o->bucket_s = (uint32_t)strtoul(arg, end, 10); break;
	case OPT_DAY_S: o->day_s = (uint32_t)strtoul(arg, end, 10); break;
	case OPT_TARGET_LOW: o->target_low = strtod(arg, end); break;
	case OPT_TARGET_HIGH: o->target_high = strtod(arg, end); break;
	case OPT_CSV: o->csv_path = arg; break;
	case OPT_JITTER: o->cost_jitter_pct = strtod(arg, end); break;
	default: usage(stderr); return -EINVAL;
	}
	return 0;
}

int sim_args_parse(int argc, char **argv, struct sim_opts *o)
{
	defaults(o);
	if (argc > 1 && !strcmp(argv[1], "--site")) { /* a site preset's berth-sim takes it before this */
		fprintf(stderr, "berth-sim: --site: this berth-sim is built without CONFIG_SITE (make site-build: "
				"build/site/berth-sim)\n");
		return -EINVAL;
	}
	int opt;
	while ((opt = getopt_long(argc, argv, "t:p:s:r:R:k:oc:S:vVh", longopts, NULL)) != -1) {
		char *end = NULL;
		int rc = option(opt, optarg, o, &end);
		if (rc)
			return rc;
		if (end && *end) {
			fprintf(stderr, "berth-sim: bad number '%s'\n", optarg);
			return -EINVAL;
		}
	}
	if (!o->trace || o->slots < 1 || o->slots > CONFIG_SCHED_MAX_SLOTS || !(o->speedup > 0) ||
	    o->replicas > SCHED_MAX_REPLICAS || o->concurrency < 1 || !(o->cost_ms > 0) ||
	    o->rmin > o->rmax || o->rmax < 1 || o->rmax > SCHED_MAX_REPLICAS || !o->interval_s ||
	    !o->bucket_s || !(o->target_low <= o->target_high)) {
		usage(stderr);
		return -EINVAL;
	}
	if (!(o->cost_jitter_pct >= 0 && o->cost_jitter_pct < 100)) {
		fprintf(stderr, "berth-sim: --cost-jitter-pct must be in [0, 100)\n");
		return -EINVAL;
	}
	return 0;
}
