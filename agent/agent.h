/* agent/agent.h - the agent: owns every module of berthd and wires them to one loop. */
#ifndef BERTH_AGENT_H
#define BERTH_AGENT_H

#include "agent/model/config.h"

struct loop;
struct agent;

/* Creates every module from cfg (copied) on loop. Returns NULL and logs the
 * reason when a module cannot start. Free with agent_destroy(). */
struct agent *agent_create(struct loop *l, const struct berth_config *cfg);

/* Applies a reloaded config (SIGHUP): the keys that can change live are applied;
 * every other changed key is refused by name ("needs a restart") and keeps its
 * running value. Logs what changed, what was applied and what was refused.
 * Returns 0, or -EAGAIN when a key was refused (the rest is applied). */
int agent_reload(struct agent *a, const struct berth_config *cfg);

/* Stops modules in reverse order; NULL is safe. */
void agent_destroy(struct agent *a);

#endif
