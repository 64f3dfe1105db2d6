/* agent/actions.h - the console's commands acting on the supervisor (and its chaos experiment). */
#ifndef BERTH_ACTIONS_H
#define BERTH_ACTIONS_H

#include "agent/console/control.h"

struct supervisor;
struct chaos;
struct collector_buf;
struct actions;

/* ops act on a struct actions: validate and apply parse the desired state
 * with deploy_parse() and hand it to supervisor_apply(); scale sets the
 * replicas (within min..max); restart kills every replica of the deployment
 * (each is restarted like after a crash, with its back-off); remove applies
 * the current set without it; chaos starts the built-in experiment; report
 * lists supervisor_statuses(). */
extern const struct control_target_ops actions_ops;

struct dispatch;
struct deploy_set;

/* sup and chaos are borrowed (chaos may be NULL: the verb is refused). */
struct actions *actions_create(struct supervisor *sup, struct chaos *chaos);
void actions_destroy(struct actions *t);

struct lkg;
/* The images flow's last-known-good (borrowed; NULL: rollback unsupported,
 * no image fields in the reported state). */
void actions_set_lkg(struct actions *t, struct lkg *k);

/* Request figures for the reported state's SLA fields (borrowed; NULL:
 * none, compliance then reads null). Set once the dispatcher exists. */
/* Where trust refusals and policy decisions go as events (borrowed). */
struct events;
void actions_set_events(struct actions *t, struct events *ev);
void actions_set_dispatch(struct actions *t, struct dispatch *d);

/* The deployments array of the reported state (what ops.report writes):
 * per deployment name, sla_class, replicas desired/min/max/ready/running,
 * health, circuit, restarts, rolling, removing, migration_needed,
 * last_error, sla_compliance (on time / decided since berthd started, all
 * classes; null when nothing was decided). Returns the length or -ENOSPC.
 * ops.report_extra adds "sla" (per class: requests, on_time, late, failed,
 * refused, compliance) and "engine" ("available" or "unavailable"). */
int actions_report(struct actions *t, char *buf, size_t len) __attribute__((warn_unused_result));

/* A site cluster between the desired state and the supervisor: filter
 * turns the whole desired set into what this gateway runs (node-scoped
 * deployments plus its share of the site-scoped ones), report writes the
 * site view (a JSON object) into the reported state's "site" key. NULL
 * filter: the desired set goes to the supervisor as it is. */
struct actions_site {
	int (*filter)(void *arg, const struct deploy_set *desired, struct deploy_set *out);
	int (*report)(const void *arg, char *buf, size_t len);
	/* a member joins (address) or leaves (NULL): 0 or -errno with why (site_member_request) */
	int (*member)(void *arg, const char *id, const char *address, char *why, size_t len);
	void *arg;
};
void actions_set_site(struct actions *t, const struct actions_site *site);
/* Applies the current desired set again through the filter (the site's
 * share changed). Returns what supervisor_apply() returns. */
int actions_reapply(struct actions *t);
/* The sampler's targets (sampler_targets_fn; arg: the struct actions): the
 * supervisor's replicas. */
struct sampler_target;
unsigned actions_sampler_targets(void *t, struct sampler_target *out, unsigned max);

/* Telemetry source "deployments": the same entries as the reported state. */
void actions_telemetry_source(void *t, struct collector_buf *b);

#endif
