/* agent/console/command.h - pure parser of console commands and desired-state messages, and the reply format. */
#ifndef BERTH_COMMAND_H
#define BERTH_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"

#define COMMAND_SCHEMA 1
#define COMMAND_ID_MAX 64

enum command_verb {
	CMD_DEPLOY = 0,
	CMD_SCALE,
	CMD_RESTART,
	CMD_REMOVE,
	CMD_GET_STATE,
	CMD_SET_LOG_LEVEL,
	CMD_CHAOS,
	CMD_PING,
	CMD_ROLLBACK,
	CMD_SITE_JOIN,
	CMD_SITE_LEAVE,
	CMD_NVERBS
};

struct command {
	char id[COMMAND_ID_MAX + 1];     /* "" when the envelope had none usable */
	enum command_verb verb;
	int64_t ts_ms;                   /* 0 when absent */
	struct {
		char deployment[DEPLOY_NAME_MAX];
		uint32_t replicas;           /* scale */
		char level[8];               /* set_log_level: err|wrn|inf|dbg */
		uint32_t interval_s;         /* chaos */
		uint32_t duration_s;
		uint32_t min_running;
		uint64_t version;            /* deploy */
		char *desired;               /* deploy: {"version":N,"deployments":[...]} compact JSON, owned */
		char member[64];             /* site_join, site_leave: the member's device id */
		char address[64];            /* site_join: A.B.C.D:PORT */
	} args;
};

/* An error reply: code is a fixed string (see docs/mqtt-api.md), message
 * names the offending field or the problem. */
struct command_error {
	const char *code;
	char message[192];
};

/* Verb names as they appear in topics and envelopes; NULL when out of range. */
const char *command_verb_name(enum command_verb v);
/* Returns the verb, or -1 when name is not one. */
int command_verb_parse(const char *name);

/* Parses one command payload (len bytes, need not be NUL-terminated) that
 * arrived on the topic of verb topic_verb (the last topic level). On success
 * returns 0 and fills cmd (release with command_clear()). On error returns
 * -EINVAL, fills err, and cmd->id holds the envelope's id when one could be
 * read (so the error reply can name it). Pure: no I/O, no global state.
 * Payloads above CONFIG_COMMAND_MAX_BYTES are refused with too_large
 * before parsing. */
int command_parse(const char *topic_verb, const char *payload, size_t len, struct command *cmd,
		  struct command_error *err) __attribute__((warn_unused_result));
void command_clear(struct command *cmd);

/* Parses the retained state/desired message {"schema":1,"version":N,
 * "deployments":[...]}. On success *desired is malloc'ed compact JSON of
 * {"version":N,"deployments":[...]} (caller frees). Same errors as above. */
int command_parse_desired(const char *payload, size_t len, uint64_t *version, char **desired,
			  struct command_error *err) __attribute__((warn_unused_result));

/* Formats a reply into buf: {"schema":1,"id":ID|null,"device":DEVICE,"ok":true,"result":RESULT}
 * (result_json: JSON text, NULL for {}; device NULL or "": no "device") or
 * {"schema":1,"id":..,"device":..,"ok":false,"error":{"code":..,"message":..}}.
 * Returns the length, or -ENOSPC. */
int command_format_reply(char *buf, size_t len, const char *id, const char *device, const char *result_json,
			 const struct command_error *err);

/* The desired JSON without the deployment called name (malloc'ed, caller
 * frees; NULL on malformed input or no memory). */
char *command_desired_without(const char *desired_json, const char *name);

/* The desired JSON with the deployment called name replaced by the first
 * deployment of with_json (a desired state); with_json NULL: removed.
 * malloc'ed as above. */
char *command_desired_replace(const char *desired_json, const char *name, const char *with_json);
/* Whether the desired JSON names a deployment called name. */
bool command_desired_has(const char *desired_json, const char *name);

struct groups;
/* The "groups" member of a (normalized) desired state: 1 with g filled when
 * present, 0 when absent (g empty), -EINVAL when malformed. */
int command_desired_groups(const char *desired_json, struct groups *g);

/* Writes s as a JSON string (with quotes) into buf. Returns the length or -ENOSPC. */
int command_json_string(char *buf, size_t len, const char *s);

#endif
