/* agent/console/command.c - parses and validates console commands and desired state (pure; a fuzz target). */
#include "agent/console/command.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/jsonutil.h"
#include "agent/model/groups.h"

static const char *const verb_names[CMD_NVERBS] = {
	[CMD_DEPLOY] = "deploy",           [CMD_SCALE] = "scale",
	[CMD_RESTART] = "restart",         [CMD_REMOVE] = "remove",
	[CMD_GET_STATE] = "get_state",     [CMD_SET_LOG_LEVEL] = "set_log_level",
	[CMD_CHAOS] = "chaos",             [CMD_PING] = "ping",
	[CMD_ROLLBACK] = "rollback",       [CMD_SITE_JOIN] = "site_join",
	[CMD_SITE_LEAVE] = "site_leave",
};

#define VERB_LIST "deploy|scale|restart|remove|get_state|set_log_level|chaos|ping|rollback|site_join|site_leave"

const char *command_verb_name(enum command_verb v)
{
	return (unsigned)v < CMD_NVERBS ? verb_names[v] : NULL;
}

int command_verb_parse(const char *name)
{
	for (int i = 0; i < CMD_NVERBS; i++)
		if (name && strcmp(name, verb_names[i]) == 0)
			return i;
	return -1;
}

static int set_err(struct command_error *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_err(struct command_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool id_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.' || c == ':';
}

/* Rejects duplicate keys and keys outside allowed ("a|b|c"). */
static int check_keys(const cJSON *obj, const char *prefix, const char *allowed, struct command_error *err)
{
	for (const cJSON *c = obj->child; c; c = c->next) {
		if (jsonutil_key_repeated(obj, c))
			return set_err(err, "bad_field", "%s%.64s appears twice", prefix, c->string);
		size_t n = strlen(c->string);
		bool found = false;
		for (const char *p = allowed; *p && !found;) {
			const char *bar = strchr(p, '|');
			size_t l = bar ? (size_t)(bar - p) : strlen(p);
			found = l == n && strncmp(p, c->string, n) == 0;
			p += l + (bar ? 1 : 0);
		}
		if (!found)
			return set_err(err, "unknown_field", "%s%.64s is not a known field (expected %s)", prefix,
				       c->string, allowed);
	}
	return 0;
}

static int get_uint(const cJSON *obj, const char *key, const char *path, bool required, uint64_t lo, uint64_t hi,
		    uint64_t *out, struct command_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v) {
		if (required)
			return set_err(err, "missing_field", "%s is missing", path);
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return set_err(err, "bad_type", "%s must be an integer, got %s", path, jsonutil_type_name(v));
	double d = v->valuedouble;
	if (!isfinite(d) || d != floor(d))
		return set_err(err, "bad_type", "%s must be an integer, got %g", path, d);
	if (d < (double)lo || d > (double)hi)
		return set_err(err, "out_of_range", "%s is %.0f, expected %llu..%llu", path, d, (unsigned long long)lo,
			       (unsigned long long)hi);
	*out = (uint64_t)d;
	return 0;
}

static int get_name(const cJSON *args, char *out, struct command_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, "deployment");
	if (!v)
		return set_err(err, "missing_field", "args.deployment is missing");
	if (!cJSON_IsString(v))
		return set_err(err, "bad_type", "args.deployment must be a string, got %s", jsonutil_type_name(v));
	size_t n = strlen(v->valuestring);
	if (n == 0 || n >= DEPLOY_NAME_MAX)
		return set_err(err, "bad_value", "args.deployment must be 1..%d characters", DEPLOY_NAME_MAX - 1);
	for (size_t i = 0; i < n; i++) {
		char c = v->valuestring[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return set_err(err, "bad_value", "args.deployment may hold only a-z, 0-9 and '-'");
	}
	memcpy(out, v->valuestring, n + 1);
	return 0;
}

/* site_join / site_leave: args.id (a device id) and, to join, args.address. The site checks the rest. */
static int get_member(const cJSON *args, bool join, struct command *cmd, struct command_error *err)
{
	const char *keys[2] = { "id", "address" };
	char *out[2] = { cmd->args.member, cmd->args.address };
	for (int i = 0; i < (join ? 2 : 1); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, keys[i]);
		if (!v)
			return set_err(err, "missing_field", "args.%s is missing", keys[i]);
		if (!cJSON_IsString(v))
			return set_err(err, "bad_type", "args.%s must be a string, got %s", keys[i], jsonutil_type_name(v));
		size_t n = strlen(v->valuestring);
		if (n == 0 || n >= sizeof(cmd->args.member))
			return set_err(err, "bad_value", "args.%s must be 1..63 characters", keys[i]);
		memcpy(out[i], v->valuestring, n + 1);
	}
	return 0;
}

/* Checks {"version":N,"deployments":[...]} (extra allowed keys in allowed)
 * and builds the compact desired JSON. Deployment specs themselves are
 * validated by the supervisor's parser; here only the shape and names. */
/* A desired state's "groups": an array of at most GROUPS_MAX distinct group names. */
static int check_groups(const cJSON *groups, const char *prefix, struct command_error *err)
{
	if (!cJSON_IsArray(groups))
		return set_err(err, "bad_type", "%sgroups must be an array, got %s", prefix, jsonutil_type_name(groups));
	struct groups g = { .n = 0 };
	char why[160];
	int i = 0;
	for (const cJSON *n = groups->child; n; n = n->next, i++) {
		if (!cJSON_IsString(n))
			return set_err(err, "bad_type", "%sgroups[%d] must be a string, got %s", prefix, i,
				       jsonutil_type_name(n));
		if (groups_add(&g, n->valuestring, why, sizeof(why)))
			return set_err(err, "bad_value", "%sgroups[%d]: %s", prefix, i, why);
	}
	return 0;
}

int command_desired_groups(const char *desired_json, struct groups *g)
{
	cJSON *root = cJSON_Parse(desired_json);
	const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "groups") : NULL;
	int rc = 0;
	g->n = 0;
	if (cJSON_IsArray(arr)) {
		char why[160];
		rc = 1;
		for (const cJSON *n = arr->child; n && rc == 1; n = n->next)
			if (!cJSON_IsString(n) || groups_add(g, n->valuestring, why, sizeof(why)))
				rc = -EINVAL;
	} else if (arr) {
		rc = -EINVAL;
	}
	cJSON_Delete(root);
	return rc;
}

static int parse_desired_obj(const cJSON *obj, const char *prefix, uint64_t *version, char **desired,
			     struct command_error *err)
{
	char path[48];
	snprintf(path, sizeof(path), "%sversion", prefix);
	int rc = get_uint(obj, "version", path, true, 1, (uint64_t)1 << 53, version, err);
	if (rc)
		return rc;
	const cJSON *deps = cJSON_GetObjectItemCaseSensitive(obj, "deployments");
	if (!deps)
		return set_err(err, "missing_field", "%sdeployments is missing", prefix);
	if (!cJSON_IsArray(deps))
		return set_err(err, "bad_type", "%sdeployments must be an array, got %s", prefix, jsonutil_type_name(deps));
	int n = cJSON_GetArraySize(deps);
	if (n > DEPLOY_MAX)
		return set_err(err, "out_of_range", "%sdeployments has %d entries, at most %d", prefix, n, DEPLOY_MAX);
	int i = 0;
	for (const cJSON *d = deps->child; d; d = d->next, i++) {
		if (!cJSON_IsObject(d))
			return set_err(err, "bad_type", "%sdeployments[%d] must be an object, got %s", prefix, i,
				       jsonutil_type_name(d));
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
		if (!cJSON_IsString(name) || !name->valuestring[0])
			return set_err(err, "missing_field", "%sdeployments[%d].name is missing", prefix, i);
		for (const cJSON *e = deps->child; e != d; e = e->next) {
			const cJSON *en = cJSON_GetObjectItemCaseSensitive(e, "name");
			if (strcmp(en->valuestring, name->valuestring) == 0)
				return set_err(err, "bad_value", "%sdeployments[%d].name \"%.48s\" appears twice",
					       prefix, i, name->valuestring);
		}
	}
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(obj, "groups");
	if (groups && (rc = check_groups(groups, prefix, err)))
		return rc;
	cJSON *out = cJSON_CreateObject();
	if (!out || !cJSON_AddNumberToObject(out, "version", (double)*version) ||
	    !cJSON_AddItemToObject(out, "deployments", cJSON_Duplicate(deps, true)) ||
	    (groups && !cJSON_AddItemToObject(out, "groups", cJSON_Duplicate(groups, true)))) {
		cJSON_Delete(out);
		return set_err(err, "internal", "out of memory");
	}
	*desired = cJSON_PrintUnformatted(out);
	cJSON_Delete(out);
	if (!*desired)
		return set_err(err, "internal", "out of memory");
	return 0;
}

static cJSON *parse_root(const char *payload, size_t len, struct command_error *err)
{
	if (len > CONFIG_COMMAND_MAX_BYTES) {
		set_err(err, "too_large", "payload is %zu bytes, at most %d", len, CONFIG_COMMAND_MAX_BYTES);
		return NULL;
	}
	size_t bad_off;
	const char *why;
	if (jsonutil_check_strings(payload, len, &bad_off, &why)) {
		set_err(err, "bad_value", "%s at byte %zu: not allowed in any string", why, bad_off);
		return NULL;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(payload, len, &end, false);
	if (!root) {
		size_t off = end && end >= payload ? (size_t)(end - payload) : 0;
		set_err(err, "bad_json", "not valid JSON (syntax error at byte %zu)", off);
		return NULL;
	}
	/* Trailing garbage after the value is an error too. */
	while (end && (size_t)(end - payload) < len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if (end && (size_t)(end - payload) < len) {
		set_err(err, "bad_json", "not valid JSON (trailing data at byte %zu)", (size_t)(end - payload));
		cJSON_Delete(root);
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		set_err(err, "bad_envelope", "the message must be a JSON object, got %s", jsonutil_type_name(root));
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

static int check_schema(const cJSON *root, struct command_error *err)
{
	uint64_t schema = COMMAND_SCHEMA;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if (v && !cJSON_IsNumber(v))
		return set_err(err, "bad_type", "schema must be an integer, got %s", jsonutil_type_name(v));
	if (v && (v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e9))
		return set_err(err, "bad_type", "schema must be an integer");
	if (v)
		schema = (uint64_t)v->valuedouble;
	if (schema != COMMAND_SCHEMA)
		return set_err(err, "unsupported_schema", "schema %llu is not supported (this agent speaks %d)",
			       (unsigned long long)schema, COMMAND_SCHEMA);
	return 0;
}

static int parse_args(struct command *cmd, const cJSON *args, struct command_error *err)
{
	uint64_t v = 0;
	int rc;
	switch (cmd->verb) {
	case CMD_DEPLOY:
		if ((rc = check_keys(args, "args.", "version|deployments|groups", err)))
			return rc;
		return parse_desired_obj(args, "args.", &cmd->args.version, &cmd->args.desired, err);
	case CMD_SCALE:
		if ((rc = check_keys(args, "args.", "deployment|replicas", err)) || (rc = get_name(args, cmd->args.deployment, err)))
			return rc;
		if ((rc = get_uint(args, "replicas", "args.replicas", true, 0, DEPLOY_MAX_REPLICAS - 1, &v, err)))
			return rc;
		cmd->args.replicas = (uint32_t)v;
		return 0;
	case CMD_RESTART:
	case CMD_REMOVE:
	case CMD_ROLLBACK:
		if ((rc = check_keys(args, "args.", "deployment", err)))
			return rc;
		return get_name(args, cmd->args.deployment, err);
	case CMD_CHAOS:
		if ((rc = check_keys(args, "args.", "deployment|interval_s|duration_s|min_running", err)) ||
		    (rc = get_name(args, cmd->args.deployment, err)))
			return rc;
		v = 30;
		if ((rc = get_uint(args, "interval_s", "args.interval_s", false, 1, 86400, &v, err)))
			return rc;
		cmd->args.interval_s = (uint32_t)v;
		v = 300;
		if ((rc = get_uint(args, "duration_s", "args.duration_s", false, 1, 604800, &v, err)))
			return rc;
		cmd->args.duration_s = (uint32_t)v;
		v = 1;
		if ((rc = get_uint(args, "min_running", "args.min_running", false, 0, DEPLOY_MAX_REPLICAS - 1, &v, err)))
			return rc;
		cmd->args.min_running = (uint32_t)v;
		return 0;
	case CMD_SET_LOG_LEVEL: {
		if ((rc = check_keys(args, "args.", "level", err)))
			return rc;
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(args, "level");
		if (!l)
			return set_err(err, "missing_field", "args.level is missing");
		if (!cJSON_IsString(l))
			return set_err(err, "bad_type", "args.level must be a string, got %s", jsonutil_type_name(l));
		static const char *const levels[] = { "err", "wrn", "inf", "dbg" };
		for (size_t i = 0; i < 4; i++) {
			if (strcmp(l->valuestring, levels[i]) == 0) {
				strcpy(cmd->args.level, levels[i]);
				return 0;
			}
		}
		return set_err(err, "bad_value", "args.level \"%.16s\" is not one of err|wrn|inf|dbg", l->valuestring);
	}
	case CMD_GET_STATE:
	case CMD_PING:
		return check_keys(args, "args.", "", err);
	case CMD_SITE_JOIN:
	case CMD_SITE_LEAVE:
		if ((rc = check_keys(args, "args.", cmd->verb == CMD_SITE_JOIN ? "id|address" : "id", err)))
			return rc;
		return get_member(args, cmd->verb == CMD_SITE_JOIN, cmd, err);
	case CMD_NVERBS:
		break;
	}
	return set_err(err, "unknown_verb", "unknown verb");
}

/* The command's id: 1..COMMAND_ID_MAX characters of A-Z a-z 0-9 - _ . : */
static int parse_id(const cJSON *root, struct command *cmd, struct command_error *err)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	if (!id)
		return set_err(err, "missing_field", "id is missing");
	if (!cJSON_IsString(id))
		return set_err(err, "bad_type", "id must be a string, got %s", jsonutil_type_name(id));
	size_t idlen = strlen(id->valuestring);
	bool id_ok = idlen > 0 && idlen <= COMMAND_ID_MAX;
	for (size_t i = 0; id_ok && i < idlen; i++)
		id_ok = id_char_ok(id->valuestring[i]);
	if (!id_ok)
		return set_err(err, "bad_value", "id must be 1..%d characters of A-Z a-z 0-9 - _ . :", COMMAND_ID_MAX);
	memcpy(cmd->id, id->valuestring, idlen + 1);
	return 0;
}

int command_parse(const char *topic_verb, const char *payload, size_t len, struct command *cmd,
		  struct command_error *err)
{
	memset(cmd, 0, sizeof(*cmd));
	memset(err, 0, sizeof(*err));
	cJSON *root = parse_root(payload, len, err);
	if (!root)
		return -EINVAL;
	int rc;
	/* The id first, so that every later error reply can carry it. */
	if ((rc = parse_id(root, cmd, err)))
		goto out;

	if ((rc = check_keys(root, "", "id|verb|args|ts|schema|auth", err)) || (rc = check_schema(root, err)))
		goto out;
	int tv = command_verb_parse(topic_verb);
	if (tv < 0) {
		rc = set_err(err, "unknown_verb", "verb \"%.32s\" is not one of " VERB_LIST, topic_verb ? topic_verb : "");
		goto out;
	}
	const cJSON *verb = cJSON_GetObjectItemCaseSensitive(root, "verb");
	if (!verb) {
		rc = set_err(err, "missing_field", "verb is missing");
		goto out;
	}
	if (!cJSON_IsString(verb)) {
		rc = set_err(err, "bad_type", "verb must be a string, got %s", jsonutil_type_name(verb));
		goto out;
	}
	if (command_verb_parse(verb->valuestring) < 0) {
		rc = set_err(err, "unknown_verb", "verb \"%.32s\" is not one of " VERB_LIST, verb->valuestring);
		goto out;
	}
	if (strcmp(verb->valuestring, topic_verb) != 0) {
		rc = set_err(err, "verb_mismatch", "verb \"%.32s\" does not match the topic's verb \"%.32s\"",
			     verb->valuestring, topic_verb);
		goto out;
	}
	cmd->verb = (enum command_verb)tv;
	const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "ts");
	if (ts) {
		if (!cJSON_IsNumber(ts) || ts->valuedouble < 0 || ts->valuedouble > 9e15 ||
		    ts->valuedouble != floor(ts->valuedouble)) {
			rc = set_err(err, "bad_type", "ts must be milliseconds since the epoch, got %s", jsonutil_type_name(ts));
			goto out;
		}
		cmd->ts_ms = (int64_t)ts->valuedouble;
	}
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(root, "args");
	cJSON *empty = NULL;
	if (!args) {
		if (cmd->verb != CMD_GET_STATE && cmd->verb != CMD_PING) {
			rc = set_err(err, "missing_field", "args is missing");
			goto out;
		}
		args = empty = cJSON_CreateObject();
	} else if (!cJSON_IsObject(args)) {
		rc = set_err(err, "bad_type", "args must be an object, got %s", jsonutil_type_name(args));
		goto out;
	}
	rc = args ? parse_args(cmd, args, err) : set_err(err, "internal", "out of memory");
	cJSON_Delete(empty);
out:
	cJSON_Delete(root);
	if (rc) {
		free(cmd->args.desired);
		cmd->args.desired = NULL;
	}
	return rc;
}

void command_clear(struct command *cmd)
{
	free(cmd->args.desired);
	cmd->args.desired = NULL;
}

int command_parse_desired(const char *payload, size_t len, uint64_t *version, char **desired,
			  struct command_error *err)
{
	memset(err, 0, sizeof(*err));
	*desired = NULL;
	cJSON *root = parse_root(payload, len, err);
	if (!root)
		return -EINVAL;
	int rc = check_keys(root, "", "schema|version|deployments|groups|ts|auth", err);
	if (!rc)
		rc = check_schema(root, err);
	if (!rc)
		rc = parse_desired_obj(root, "", version, desired, err);
	cJSON_Delete(root);
	return rc;
}

int command_json_string(char *buf, size_t len, const char *s)
{
	size_t n = jsonutil_quote(buf, len, s);
	return n < len ? (int)n : -ENOSPC;
}

int command_format_reply(char *buf, size_t len, const char *id, const char *device, const char *result_json,
			 const struct command_error *err)
{
	char dev[64 * 6 + 16] = "";
	if (device && device[0]) {
		strcpy(dev, ",\"device\":");
		if (command_json_string(dev + 10, sizeof(dev) - 10, device) < 0)
			return -ENOSPC;
	}
	char idq[COMMAND_ID_MAX * 6 + 8];
	if (id && id[0]) {
		if (command_json_string(idq, sizeof(idq), id) < 0)
			return -ENOSPC;
	} else {
		strcpy(idq, "null");
	}
	int n;
	if (err && err->code) {
		char msg[sizeof(err->message) * 6 + 8];
		if (command_json_string(msg, sizeof(msg), err->message) < 0)
			return -ENOSPC;
		n = snprintf(buf, len, "{\"schema\":%d,\"id\":%s%s,\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":%s}}",
			     COMMAND_SCHEMA, idq, dev, err->code, msg);
	} else {
		n = snprintf(buf, len, "{\"schema\":%d,\"id\":%s%s,\"ok\":true,\"result\":%s}", COMMAND_SCHEMA, idq,
			     dev, result_json && result_json[0] ? result_json : "{}");
	}
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

char *command_desired_replace(const char *desired_json, const char *name, const char *with_json)
{
	cJSON *root = cJSON_Parse(desired_json);
	cJSON *deps = root ? cJSON_GetObjectItemCaseSensitive(root, "deployments") : NULL;
	cJSON *with = with_json ? cJSON_Parse(with_json) : NULL;
	cJSON *wd = with ? cJSON_GetObjectItemCaseSensitive(with, "deployments") : NULL;
	cJSON *spec = cJSON_IsArray(wd) ? cJSON_DetachItemFromArray(wd, 0) : NULL;
	char *out = NULL;
	if (cJSON_IsArray(deps) && (!with_json || spec)) {
		int i = 0;
		for (cJSON *d = deps->child; d; d = d->next, i++) {
			const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "name");
			if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) {
				if (spec)
					cJSON_ReplaceItemInArray(deps, i, spec);
				else
					cJSON_DeleteItemFromArray(deps, i);
				spec = NULL;
				break;
			}
		}
		out = cJSON_PrintUnformatted(root);
	}
	cJSON_Delete(spec);
	cJSON_Delete(with);
	cJSON_Delete(root);
	return out;
}

char *command_desired_without(const char *desired_json, const char *name)
{
	return command_desired_replace(desired_json, name, NULL);
}

bool command_desired_has(const char *desired_json, const char *name)
{
	cJSON *root = cJSON_Parse(desired_json);
	const cJSON *deps = root ? cJSON_GetObjectItemCaseSensitive(root, "deployments") : NULL;
	bool found = false;
	for (const cJSON *d = cJSON_IsArray(deps) ? deps->child : NULL; d && !found; d = d->next) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "name");
		found = cJSON_IsString(n) && strcmp(n->valuestring, name) == 0;
	}
	cJSON_Delete(root);
	return found;
}
