/* agent/site/placement.h - which member runs each replica of the site-scoped deployments (pure, deterministic). */
#ifndef BERTH_SITE_PLACEMENT_H
#define BERTH_SITE_PLACEMENT_H

/*
 * Contract
 * --------
 * placement_run() moves as little as it can:
 *   1. a replica keeps its member while that member is up, not excluded for
 *      the deployment (local recovery failed there) and, with spread, not
 *      already holding an earlier replica of the same deployment; replicas at
 *      or past the deployment's count are released. A kept replica is never
 *      moved for headroom (no thrashing when figures change);
 *   2. the replicas left unassigned are placed, urgent class first, then
 *      normal, then batch (ties: the order given), each on the up member with
 *      room for its CPU and memory (headroom minus what is already placed
 *      there) that has the most free CPU, then the most free memory, then the
 *      lowest index; with spread, only on a member holding none of the
 *      deployment's replicas yet.
 * A replica that fits nowhere stays unassigned and is counted in unplaced,
 * with why saying what it needs and the best member's figures. Same input,
 * same output: every member runs this over the same log and agrees.
 */

#include <stdbool.h>
#include <stdint.h>

#include "agent/model/deploy.h"

#define PLACEMENT_MAX_MEMBERS 5
#define PLACEMENT_WHY_MAX 192

struct placement_member {
	const char *id;               /* device id, for why */
	bool up;
	uint64_t cpu_milli;           /* headroom for site replicas */
	uint64_t mem_bytes;
};

struct placement_dep {
	const char *name;
	enum sla_class sla_class;
	uint32_t replicas;            /* wanted across the site */
	bool spread;
	uint64_t cpu_milli;           /* per replica (0: takes none) */
	uint64_t mem_bytes;
	uint32_t excluded;            /* bit i: never on member i */
	int8_t owner[DEPLOY_MAX_REPLICAS]; /* in/out: member index, -1 unassigned */
	uint32_t unplaced;            /* out */
	char why[PLACEMENT_WHY_MAX];  /* out: "" when all placed */
};

/* Places nd deployments on nm members (at most PLACEMENT_MAX_MEMBERS and
 * DEPLOY_MAX). Returns how many owner entries changed. */
unsigned placement_run(const struct placement_member *m, unsigned nm, struct placement_dep *d, unsigned nd);

#endif
