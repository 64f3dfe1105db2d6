/* agent/suptarget.h - the console's commands acting on the supervisor (and its chaos experiment). */
#ifndef BERTH_SUPTARGET_H
#define BERTH_SUPTARGET_H

#include "agent/control.h"

struct supervisor;
struct chaos;
struct telemetry_buf;
struct suptarget;

/* ops act on a struct suptarget: validate and apply parse the desired state
 * with deploy_parse() and hand it to supervisor_apply(); scale sets the
 * replicas (within min..max); restart kills every replica of the deployment
 * (each is restarted like after a crash, with its back-off); remove applies
 * the current set without it; chaos starts the built-in experiment; report
 * lists supervisor_statuses(). */
extern const struct control_target_ops suptarget_ops;

/* sup and chaos are borrowed (chaos may be NULL: the verb is refused). */
struct suptarget *suptarget_create(struct supervisor *sup, struct chaos *chaos);
void suptarget_destroy(struct suptarget *t);

/* Telemetry source "deployments": per deployment replicas, health, circuit, restarts. */
void suptarget_telemetry_source(void *t, struct telemetry_buf *b);

#endif
