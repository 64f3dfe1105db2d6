/* agent/site/placement.c - keeps replicas where they are, places the rest by headroom, urgent first, spread when asked. */
#include "agent/site/placement.h"

#include <stdio.h>
#include <string.h>

static bool holds(const struct placement_dep *d, unsigned upto, int member)
{
	for (unsigned r = 0; r < upto; r++)
		if (d->owner[r] == member)
			return true;
	return false;
}

static bool holds_any(const struct placement_dep *d, int member, unsigned except)
{
	for (unsigned r = 0; r < DEPLOY_MAX_REPLICAS; r++)
		if (r != except && d->owner[r] == member)
			return true;
	return false;
}

unsigned placement_run(const struct placement_member *m, unsigned nm, struct placement_dep *d, unsigned nd)
{
	int64_t cpu[PLACEMENT_MAX_MEMBERS], mem[PLACEMENT_MAX_MEMBERS];
	unsigned changes = 0;
	if (nm > PLACEMENT_MAX_MEMBERS)
		nm = PLACEMENT_MAX_MEMBERS;
	if (nd > DEPLOY_MAX)
		nd = DEPLOY_MAX;
	for (unsigned i = 0; i < nm; i++) {
		cpu[i] = m[i].up ? (int64_t)m[i].cpu_milli : 0;
		mem[i] = m[i].up ? (int64_t)m[i].mem_bytes : 0;
	}
	/* 1. keep what may stay, release the rest */
	for (unsigned k = 0; k < nd; k++) {
		struct placement_dep *p = &d[k];
		p->unplaced = 0;
		p->why[0] = '\0';
		for (unsigned r = 0; r < DEPLOY_MAX_REPLICAS; r++) {
			int o = p->owner[r];
			if (o < 0)
				continue;
			bool keep = r < p->replicas && (unsigned)o < nm && m[o].up && !(p->excluded & (1u << o)) &&
				    !(p->spread && holds(p, r, o));
			if (!keep) {
				p->owner[r] = -1;
				changes++;
				continue;
			}
			cpu[o] -= (int64_t)p->cpu_milli;
			mem[o] -= (int64_t)p->mem_bytes;
		}
	}
	/* 2. place the unassigned, by class */
	for (int cls = 0; cls < SLA_NCLASSES; cls++) {
		for (unsigned k = 0; k < nd; k++) {
			struct placement_dep *p = &d[k];
			if ((int)p->sla_class != cls)
				continue;
			for (unsigned r = 0; r < p->replicas && r < DEPLOY_MAX_REPLICAS; r++) {
				if (p->owner[r] >= 0)
					continue;
				int best = -1, near = -1;
				for (unsigned i = 0; i < nm; i++) {
					if (!m[i].up || (p->excluded & (1u << i)) || (p->spread && holds_any(p, (int)i, r)))
						continue;
					if (near < 0 || cpu[i] > cpu[near] || (cpu[i] == cpu[near] && mem[i] > mem[near]))
						near = (int)i;
					if (cpu[i] < (int64_t)p->cpu_milli || mem[i] < (int64_t)p->mem_bytes)
						continue;
					if (best < 0 || cpu[i] > cpu[best] || (cpu[i] == cpu[best] && mem[i] > mem[best]))
						best = (int)i;
				}
				if (best < 0) {
					p->unplaced++;
					if (near < 0)
						snprintf(p->why, sizeof(p->why),
							 "needs cpu=%llum memory=%lluMiB: no member is up and eligible%s",
							 (unsigned long long)p->cpu_milli,
							 (unsigned long long)(p->mem_bytes >> 20),
							 p->spread ? " (spread: one replica per member)" : "");
					else
						snprintf(p->why, sizeof(p->why),
							 "needs cpu=%llum memory=%lluMiB; most room: %s cpu=%lldm memory=%lldMiB",
							 (unsigned long long)p->cpu_milli,
							 (unsigned long long)(p->mem_bytes >> 20), m[near].id ? m[near].id : "?",
							 (long long)cpu[near], (long long)(mem[near] / (1 << 20)));
					continue;
				}
				p->owner[r] = (int8_t)best;
				cpu[best] -= (int64_t)p->cpu_milli;
				mem[best] -= (int64_t)p->mem_bytes;
				changes++;
			}
		}
	}
	return changes;
}
