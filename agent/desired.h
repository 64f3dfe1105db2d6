/* agent/desired.h - a command target that only records the desired state (builds without a supervisor, and tests). */
#ifndef BERTH_DESIRED_H
#define BERTH_DESIRED_H

#include "agent/control.h"

struct desired;

/* The ops act on a struct desired: deploy records each deployment's name and
 * desired replicas; scale, restart, remove and chaos update and count;
 * report lists the supervisor's status fields with nothing running. Nothing
 * is run. Used by berthd when no supervisor is wired in. */
extern const struct control_target_ops desired_ops;

struct telemetry_buf;

struct desired *desired_create(void);
/* Telemetry source "deployments": the report above, each tick. */
void desired_telemetry_source(void *d, struct telemetry_buf *b);
void desired_destroy(struct desired *d);

#endif
