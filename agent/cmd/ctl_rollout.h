/* agent/cmd/ctl_rollout.h - staged rollouts, the pure part: the rollout file, the wave plan, and each device's verdict from its reported state. */
#ifndef BERTH_CTL_ROLLOUT_H
#define BERTH_CTL_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"

#define CTL_ROLLOUT_MAX_WAVES 100   /* waves after the canary at most */

/* A rollout file (docs/fleet.md, "Rollouts"), validated. */
struct ctl_rollout {
	uint64_t version;               /* the new desired-state version (>= 1) */
	unsigned ndeps;
	struct {
		char name[DEPLOY_NAME_MAX];
		char image[256];
	} dep[DEPLOY_MAX];              /* the deployment set's names and images, as the gate checks them */
	char *deployments_json;         /* the "deployments" array as sent (malloc'ed; ctl_rollout_free) */
	uint32_t canary_pct;            /* 0..50; 0: no canary */
	uint32_t waves;                 /* waves after the canary (1..CTL_ROLLOUT_MAX_WAVES); 0: by wave_pct */
	uint32_t wave_pct;              /* devices per wave in % of the group (1..100); 0: by waves */
	uint32_t pause_s;               /* between a wave passing and the next one starting */
	uint32_t soak_s;                /* every device of a wave ready and within bounds this long */
	uint32_t ready_timeout_s;       /* a wave not all ready this long after it started fails */
	double min_sla;                 /* a deployment's sla_compliance below it fails the gate; < 0: none */
	uint32_t max_restarts;          /* restarts of a device's rolled deployments during the wave, at most */
};

/* Parses and validates a rollout file: the deployment set with berthd's own
 * parser, every other key named with its range. Unknown keys are refused.
 * Returns 0, or -EINVAL with the offending key in err ("gate.soak_s: expected
 * seconds 1..86400, got -1"); -ENOMEM. r is cleared first; on success the
 * caller frees it with ctl_rollout_free. */
int ctl_rollout_parse(const char *text, size_t len, struct ctl_rollout *r, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void ctl_rollout_free(struct ctl_rollout *r);

/* The wave plan of n devices (sorted by the caller): wave 0 is the canary
 * (ceil(n * canary_pct / 100), at least 1 when canary_pct > 0; none when 0),
 * then the rest in `waves` waves as equal as possible (the first ones one
 * larger), or in waves of ceil(n * wave_pct / 100) devices (at least 1).
 * start[w] is the index of wave w's first device, start[nwaves] = n; start
 * has room for CTL_ROLLOUT_MAX_WAVES + 2 entries. Returns nwaves (0 for n =
 * 0). *has_canary says whether wave 0 is a canary. Pure. */
unsigned ctl_rollout_plan(const struct ctl_rollout *r, size_t n, size_t *start, bool *has_canary);

enum ctl_dev_phase {
	CTL_DEV_PENDING = 0,   /* not (yet) at the rollout's version */
	CTL_DEV_APPLYING,      /* at the version, not every deployment ready */
	CTL_DEV_READY,         /* at the version, every deployment ready and within bounds */
	CTL_DEV_FAILED,        /* rolled back, crash-looping, out of bounds, or refused the desired state */
};

/* A device's counters when its wave started (the gate bounds their growth),
 * and what its events said since its desired state was published. */
struct ctl_dev_base {
	bool set;
	uint32_t restarts;     /* sum over the rollout's deployments */
	bool refused;          /* a trust_refused event since the publish */
	char refused_why[96];  /* its code and message */
};

struct ctl_dev_eval {
	enum ctl_dev_phase phase;
	uint64_t desired_version;
	uint32_t restarts;
	unsigned ready, total;          /* the rollout's deployments ready / in the set */
	char why[192];                  /* what holds it, or why it failed */
};

/* The verdict on one device from its reported state (NULL: none seen). Pure. */
enum ctl_dev_phase ctl_rollout_eval(const struct ctl_rollout *r, const char *reported, size_t len,
				    const struct ctl_dev_base *base, struct ctl_dev_eval *out);

/* Whether an events batch {"rows":[{"ts","data":{"event","detail"}}]} holds a
 * trust_refused row stamped at or after since_ms (wall ms); why gets its
 * "code: message". Pure. */
bool ctl_events_refusal(const char *batch, size_t len, int64_t since_ms, char *why, size_t whylen);

/* Whether a reported state's "groups" names group. */
bool ctl_reported_in_group(const char *reported, size_t len, const char *group);

#endif
