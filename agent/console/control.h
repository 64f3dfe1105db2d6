/* agent/console/control.h - applies console commands and desired state: dedup journal, persistence, replies. */
#ifndef BERTH_CONTROL_H
#define BERTH_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/console/command.h"

struct store;
struct control;
struct trust;

/* What the commands act on: the supervisor in berthd, a fake in unit tests.
 * Every function runs on the loop, must not block, and returns 0, or -errno
 * with err filled (code + message naming the problem). Unset (NULL) entries
 * answer "unsupported". ctx is the target's own pointer. */
struct control_target_ops {
	/* Checks a whole desired state {"version":N,"deployments":[...]} without applying it. */
	int (*validate)(void *ctx, const char *desired_json, struct command_error *err);
	/* Makes it the desired state; called after it was persisted. */
	int (*apply)(void *ctx, uint64_t version, const char *desired_json, struct command_error *err);
	bool (*has_deployment)(void *ctx, const char *name);
	int (*scale)(void *ctx, const char *name, uint32_t replicas, struct command_error *err);
	int (*restart)(void *ctx, const char *name, struct command_error *err);
	int (*remove)(void *ctx, const char *name, struct command_error *err);
	/* Rolls the deployment back to its last-known-good version (NULL:
	 * unsupported); reason ("requested", "policy") goes into the event. */
	int (*rollback)(void *ctx, const char *name, const char *reason, struct command_error *err);
	/* The deployment's last-known-good spec as a one-deployment desired
	 * state {"deployments":[SPEC],"version":1} in *doc (malloc'ed, caller
	 * frees): 0, -ENODATA (none), -EALREADY (it runs it), -errno. NULL: none. */
	int (*last_good)(void *ctx, const char *name, char **doc);
	int (*chaos)(void *ctx, const char *name, uint32_t interval_s, uint32_t duration_s, uint32_t min_running,
		     struct command_error *err);
	/* Writes the deployments' state as a JSON array into buf; returns its
	 * length or -ENOSPC. figures false: without the fast-moving figures
	 * (request counts, SLA compliance), which change under steady load. */
	int (*report)(void *ctx, char *buf, size_t len, bool figures);
	/* Writes further top-level members of the reported state ("key":value
	 * pairs separated by commas, no leading comma) into buf; returns the
	 * length (0: none) or -ENOSPC. figures as for report. NULL: none. */
	int (*report_extra)(void *ctx, char *buf, size_t len, bool figures);
	/* A site member joins (address given) or leaves (address NULL); NULL: no site here. */
	int (*site_member)(void *ctx, const char *id, const char *address, struct command_error *err);
	/* A notable event (type, JSON object detail) for the event stream. NULL: none. */
	void (*event)(void *ctx, const char *type, const char *detail_json);
};

/* Where a reply goes: the v5 response topic with its correlation data when
 * the command carried one, else berth/v1/<device>/cmd/<verb>/reply. */
struct control_reply_to {
	const char *verb;             /* last level of the command's topic */
	const char *response_topic;   /* NULL for MQTT 3.1.1 or when absent */
	const void *corr;
	size_t corr_len;
	const char *group;            /* came on berth/v1/group/<group>/cmd/<verb>: must be signed for
	                               * "group:<group>"; NULL: the device's own topic */
};

struct control_cbs {
	/* Sends one reply (json, len bytes). */
	void (*send_reply)(void *arg, const struct control_reply_to *rt, const char *json, size_t len);
	/* The reported state changed (deploy, scale, remove, ...). */
	void (*state_changed)(void *arg);
	void *arg;
};

struct control_stats {
	uint64_t received;
	uint64_t applied;
	uint64_t duplicates;     /* answered from the journal */
	uint64_t rejected;       /* error replies */
};

/* store and ops are borrowed and must outlive the control. Returns NULL on
 * allocation failure. */
struct control *control_create(struct store *st, const char *device_id, const struct control_target_ops *ops,
			       void *target_ctx, const struct control_cbs *cbs);
void control_destroy(struct control *c);

/* Puts the gateway's trust state (borrowed, outlives c) in front of every
 * command and desired state: only verified, fresh, policy-allowed ones are
 * applied; anything else gets an error reply (commands) or a log line and an
 * event (documents), and changes nothing. Without it (unit tests of the
 * apply path) commands are applied as parsed. */
void control_set_trust(struct control *c, struct trust *t);

/* The verbs a policy's roles may name: every command verb, then "desired",
 * "policy" and "keys" (static storage). */
const char *const *control_trust_verbs(size_t *n);

/* A signed policy document (berth/v1/<device>/policy, retained): installed
 * when newer, then running deployments are checked against it; those
 * violating a rule in repair mode are rolled back to their last-known-good
 * version when it complies (ops->last_good, ops->rollback; it replaces them
 * in the desired state), else stopped (removed from the desired state); the
 * others are reported. Returns 0, -ESTALE, or -errno (previous policy stays). */
int control_handle_policy(struct control *c, const char *payload, size_t len);

/* A signed key list (berth/v1/<device>/keys, retained): rotation. */
int control_handle_keys(struct control *c, const char *payload, size_t len);

/* Start-up: applies the persisted desired state, or when there is none the
 * fallback (the deployments file's content as {"version":0,"deployments":[...]},
 * may be NULL). Returns 0, -ENOENT when there was nothing to apply, or -errno. */
int control_boot(struct control *c, const char *fallback_json) __attribute__((warn_unused_result));
/* The store opened after berthd ran without it: its persisted desired state, when there
 * is one, replaces the deployments file's (as at a start with the store) and is applied.
 * Returns 0 or -errno. */
int control_store_back(struct control *c);

/* Handles one command payload from berth/v1/<device>/cmd/<verb>. Always sends
 * exactly one reply (a redelivered id gets its first reply again). */
void control_handle(struct control *c, const char *topic_verb, const char *payload, size_t len,
		    const struct control_reply_to *rt);

/* Handles the retained state/desired message: applied when its version is
 * newer than the current one, ignored when equal, refused (logged) when older
 * or malformed. Returns 0, -ESTALE, or -EINVAL. */
int control_handle_desired(struct control *c, const char *payload, size_t len);

/* The reported state: {"schema":1,"device":..,"ts":..,"desired_version":N,
 * "deployments":[...]} plus the target's report_extra members. figures
 * false leaves out the fast-moving figures (see ops.report): what is left is
 * the state's structure, which a publisher compares to see what changed.
 * Returns its length or -ENOSPC. */
int control_report(struct control *c, char *buf, size_t len, bool figures);

uint64_t control_desired_version(const struct control *c);
void control_get_stats(const struct control *c, struct control_stats *out);

#endif
