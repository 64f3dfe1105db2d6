/* agent/cmd/ctl_fleet.h - berthctl's fleet commands: a group's members, group commands, staged rollouts. */
#ifndef BERTH_CTL_FLEET_H
#define BERTH_CTL_FLEET_H

#include <cjson/cJSON.h>

struct ctl;
struct ctl_fleet;

/* berthctl devices --group G: the members (devices whose retained reported
 * state names G in its "groups") with status, desired version, readiness and
 * restarts. Returns an exit code. */
int ctl_fleet_devices(struct ctl *c);

/* berthctl --group G VERB ...: publishes one command (args consumed) to
 * berth/v1/group/G/cmd/VERB signed for group:G, collects each member's reply
 * within --timeout and says who replied, who refused and who did not answer.
 * A group no device reports reaches nobody: nothing is sent (exit 2). */
int ctl_fleet_command(struct ctl *c, const char *verb, cJSON *args);

/* berthctl rollout --group G FILE (docs/fleet.md, "Rollouts"). Returns an
 * exit code: 0 completed, 1 halted (a wave failed its gate and was rolled
 * back, now or in an earlier run), 2 invalid file (nothing sent), 3
 * interrupted, 4 broker. */
int ctl_fleet_rollout(struct ctl *c);

void ctl_fleet_destroy(struct ctl_fleet *f);

#endif
