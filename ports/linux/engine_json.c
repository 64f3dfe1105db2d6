/* ports/linux/engine_json.c - Docker Engine API JSON: requests built and replies parsed, no I/O. */
#include "ports/linux/engine_json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse(const char *buf, size_t len)
{
	if (!buf || !len)
		return NULL;
	return cJSON_ParseWithLength(buf, len);
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Copies s into dst; false (dst emptied) when it does not fit. */
static bool copy_fit(char *dst, size_t dst_len, const char *s)
{
	size_t n = strlen(s);
	if (n >= dst_len) {
		dst[0] = '\0';
		return false;
	}
	memcpy(dst, s, n + 1);
	return true;
}

static void copy_trunc(char *dst, size_t dst_len, const char *s)
{
	if (!dst_len)
		return;
	snprintf(dst, dst_len, "%s", s ? s : "");
}

static int int_of(const cJSON *v, int *out)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d < INT_MIN || d > INT_MAX)
			return -EINVAL;
		*out = (int)d;
		return 0;
	}
	if (cJSON_IsString(v) && v->valuestring) {
		char *end;
		long x = strtol(v->valuestring, &end, 10);
		if (end == v->valuestring || *end || x < INT_MIN || x > INT_MAX)
			return -EINVAL;
		*out = (int)x;
		return 0;
	}
	return -EINVAL;
}

int engine_json_version(const char *buf, size_t len, int *major, int *minor)
{
	cJSON *root = parse(buf, len);
	int rc = -EINVAL;
	const char *v = str_of(root, "ApiVersion");
	int ma, mi;
	char tail;
	if (v && sscanf(v, "%d.%d%c", &ma, &mi, &tail) == 2 && ma >= 1 && ma < 100 && mi >= 0 && mi < 1000) {
		*major = ma;
		*minor = mi;
		rc = 0;
	}
	cJSON_Delete(root);
	return rc;
}

void engine_json_error(const char *buf, size_t len, char *msg, size_t msg_len, char *cause, size_t cause_len)
{
	cJSON *root = parse(buf, len);
	copy_trunc(msg, msg_len, str_of(root, "message"));
	copy_trunc(cause, cause_len, str_of(root, "cause"));
	/* One line in the log, whatever the engine sent. */
	for (char *p = msg; msg_len && *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '"')
			*p = '\'';
	cJSON_Delete(root);
}

int engine_json_id(const char *buf, size_t len, char *id, size_t id_len)
{
	cJSON *root = parse(buf, len);
	const char *v = str_of(root, "Id");
	int rc = v && *v && copy_fit(id, id_len, v) ? 0 : -EINVAL;
	cJSON_Delete(root);
	return rc;
}

enum hal_ctr_state engine_json_state(const char *s)
{
	static const struct { const char *name; enum hal_ctr_state st; } map[] = {
		{ "created", HAL_CTR_CREATED },   { "configured", HAL_CTR_CREATED },
		{ "initialized", HAL_CTR_CREATED }, { "running", HAL_CTR_RUNNING },
		{ "paused", HAL_CTR_PAUSED },     { "restarting", HAL_CTR_RESTARTING },
		{ "exited", HAL_CTR_EXITED },     { "stopped", HAL_CTR_EXITED },
		{ "stopping", HAL_CTR_RUNNING },  { "dead", HAL_CTR_DEAD },
		{ "removing", HAL_CTR_DEAD },
	};
	if (!s)
		return HAL_CTR_UNKNOWN;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i].name) == 0)
			return map[i].st;
	return HAL_CTR_UNKNOWN;
}

/* Keeps berth's own labels first so they survive images that carry many
 * labels of their own; labels that do not fit the fixed fields are skipped. */
static void labels_of(const cJSON *labels, struct hal_ctr_info *out)
{
	out->nlabels = 0;
	if (!cJSON_IsObject(labels))
		return;
	for (int pass = 0; pass < 2; pass++) {
		const cJSON *l;
		cJSON_ArrayForEach(l, labels)
		{
			if (out->nlabels >= HAL_ENGINE_MAX_LABELS)
				return;
			if (!l->string || !cJSON_IsString(l) || !l->valuestring)
				continue;
			bool ours = strncmp(l->string, "io.berth.", 9) == 0;
			if (ours != (pass == 0))
				continue;
			struct hal_label *hl = &out->labels[out->nlabels];
			if (!copy_fit(hl->key, sizeof(hl->key), l->string) ||
			    !copy_fit(hl->value, sizeof(hl->value), l->valuestring))
				continue;
			out->nlabels++;
		}
	}
}

static void name_of(const char *s, struct hal_ctr_info *out)
{
	if (!s)
		return;
	if (*s == '/')
		s++;
	copy_trunc(out->name, sizeof(out->name), s);
}

int engine_json_inspect(const char *buf, size_t len, struct hal_ctr_info *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = parse(buf, len);
	int rc = -EINVAL;
	const char *id = str_of(root, "Id");
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "State");
	const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "Config");
	if (!id || !*id || !copy_fit(out->id, sizeof(out->id), id) || !cJSON_IsObject(state))
		goto out;
	name_of(str_of(root, "Name"), out);
	/* Config.Image is the name the container was created from; the top
	 * level Image is a digest. */
	const char *image = cJSON_IsObject(config) ? str_of(config, "Image") : NULL;
	copy_trunc(out->image, sizeof(out->image), image ? image : str_of(root, "Image"));
	out->state = engine_json_state(str_of(state, "Status"));
	if (out->state == HAL_CTR_UNKNOWN) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Paused")))
			out->state = HAL_CTR_PAUSED;
		else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Running")))
			out->state = HAL_CTR_RUNNING;
	}
	int v;
	if (int_of(cJSON_GetObjectItemCaseSensitive(state, "Pid"), &v) == 0 && v > 0)
		out->pid = v;
	if (int_of(cJSON_GetObjectItemCaseSensitive(state, "ExitCode"), &v) == 0)
		out->exit_code = v;
	out->oom_killed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "OOMKilled"));
	if (out->state != HAL_CTR_RUNNING && out->state != HAL_CTR_PAUSED)
		out->pid = 0;
	if (cJSON_IsObject(config))
		labels_of(cJSON_GetObjectItemCaseSensitive(config, "Labels"), out);
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

int engine_json_list(const char *buf, size_t len, struct hal_ctr_info *out, unsigned cap, unsigned *n)
{
	*n = 0;
	cJSON *root = parse(buf, len);
	int rc = -EINVAL;
	if (!cJSON_IsArray(root))
		goto out;
	rc = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, root)
	{
		const char *id = str_of(c, "Id");
		if (!cJSON_IsObject(c) || !id || !*id)
			continue; /* not a container: skipped, not fatal */
		if (*n >= cap) {
			rc = -EOVERFLOW;
			break;
		}
		struct hal_ctr_info *ci = &out[*n];
		memset(ci, 0, sizeof(*ci));
		if (!copy_fit(ci->id, sizeof(ci->id), id))
			continue;
		const cJSON *names = cJSON_GetObjectItemCaseSensitive(c, "Names");
		const cJSON *first = cJSON_IsArray(names) ? cJSON_GetArrayItem(names, 0) : NULL;
		name_of(cJSON_IsString(first) ? first->valuestring : NULL, ci);
		copy_trunc(ci->image, sizeof(ci->image), str_of(c, "Image"));
		ci->state = engine_json_state(str_of(c, "State"));
		/* The list has no exit code field; "Exited (137) 2 seconds ago" has. */
		const char *status = str_of(c, "Status");
		int code;
		if (status && sscanf(status, "Exited (%d)", &code) == 1)
			ci->exit_code = code;
		labels_of(cJSON_GetObjectItemCaseSensitive(c, "Labels"), ci);
		(*n)++;
	}
out:
	cJSON_Delete(root);
	return rc;
}

int engine_json_exec_inspect(const char *buf, size_t len, int *exit_code, bool *running)
{
	cJSON *root = parse(buf, len);
	int rc = -EINVAL;
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "ExitCode");
	*running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "Running"));
	if (int_of(code, exit_code) == 0)
		rc = 0;
	else if (*running && cJSON_IsNull(code))
		rc = 0, *exit_code = -1;
	cJSON_Delete(root);
	return rc;
}

int engine_json_event(const char *buf, size_t len, enum hal_engine_event_type *type, char *id, size_t id_len,
		      int *exit_code)
{
	static const struct { const char *action; enum hal_engine_event_type type; } map[] = {
		{ "start", HAL_EV_START },     { "die", HAL_EV_DIE },         { "died", HAL_EV_DIE },
		{ "oom", HAL_EV_OOM },         { "pause", HAL_EV_PAUSE },     { "unpause", HAL_EV_UNPAUSE },
		{ "destroy", HAL_EV_DESTROY }, { "remove", HAL_EV_DESTROY },
	};
	cJSON *root = parse(buf, len);
	int rc = -EINVAL;
	if (!cJSON_IsObject(root))
		goto out;
	rc = 0;
	const char *t = str_of(root, "Type");
	if (t && strcmp(t, "container") != 0)
		goto out;
	const char *action = str_of(root, "Action");
	if (!action)
		action = str_of(root, "status");
	const cJSON *actor = cJSON_GetObjectItemCaseSensitive(root, "Actor");
	const char *cid = cJSON_IsObject(actor) ? str_of(actor, "ID") : NULL;
	if (!cid)
		cid = str_of(root, "id");
	if (!action || !cid || !*cid)
		goto out;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(action, map[i].action) != 0)
			continue;
		if (!copy_fit(id, id_len, cid)) {
			rc = -EINVAL;
			goto out;
		}
		*type = map[i].type;
		*exit_code = 0;
		const cJSON *attrs = cJSON_IsObject(actor) ? cJSON_GetObjectItemCaseSensitive(actor, "Attributes") : NULL;
		if (*type == HAL_EV_DIE && cJSON_IsObject(attrs))
			(void)int_of(cJSON_GetObjectItemCaseSensitive(attrs, "exitCode"), exit_code);
		rc = 1;
		break;
	}
out:
	cJSON_Delete(root);
	return rc;
}

static cJSON *str_array(const char *const *v)
{
	cJSON *a = cJSON_CreateArray();
	for (unsigned i = 0; a && v && v[i]; i++) {
		cJSON *s = cJSON_CreateString(v[i]);
		if (!s || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

char *engine_json_create_body(const struct hal_ctr_create *spec)
{
	if (!spec || !spec->image || (spec->nlabels && !spec->labels))
		return NULL;
	char *out = NULL;
	cJSON *root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "Image", spec->image))
		goto out;
	if (spec->cmd) {
		cJSON *cmd = str_array(spec->cmd);
		if (!cmd || !cJSON_AddItemToObject(root, "Cmd", cmd)) {
			cJSON_Delete(cmd);
			goto out;
		}
	}
	cJSON *env = str_array(spec->env);
	if (!env || !cJSON_AddItemToObject(root, "Env", env)) {
		cJSON_Delete(env);
		goto out;
	}
	cJSON *labels = cJSON_AddObjectToObject(root, "Labels");
	if (!labels)
		goto out;
	for (unsigned i = 0; i < spec->nlabels; i++)
		if (!cJSON_AddStringToObject(labels, spec->labels[i].key, spec->labels[i].value))
			goto out;
	cJSON *host = cJSON_AddObjectToObject(root, "HostConfig");
	if (!host)
		goto out;
	if (spec->host_network && !cJSON_AddStringToObject(host, "NetworkMode", "host"))
		goto out;
	/* Integers up to 2^53 are exact in a double, far above any real limit. */
	if (spec->nano_cpus && !cJSON_AddNumberToObject(host, "NanoCpus", (double)spec->nano_cpus))
		goto out;
	if (spec->mem_bytes && !cJSON_AddNumberToObject(host, "Memory", (double)spec->mem_bytes))
		goto out;
	out = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return out;
}

char *engine_json_exec_body(const char *const *argv)
{
	if (!argv || !argv[0])
		return NULL;
	char *out = NULL;
	cJSON *root = cJSON_CreateObject();
	cJSON *cmd = str_array(argv);
	if (!root || !cmd || !cJSON_AddItemToObject(root, "Cmd", cmd)) {
		cJSON_Delete(cmd);
		goto out;
	}
	if (!cJSON_AddFalseToObject(root, "AttachStdin") || !cJSON_AddTrueToObject(root, "AttachStdout") ||
	    !cJSON_AddTrueToObject(root, "AttachStderr"))
		goto out;
	out = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return out;
}

char *engine_json_label_filter(const char *key, const char *value)
{
	if (!key || !*key)
		return NULL;
	char kv[sizeof(((struct hal_label *)0)->key) + sizeof(((struct hal_label *)0)->value) + 2];
	int n = value ? snprintf(kv, sizeof(kv), "%s=%s", key, value) : snprintf(kv, sizeof(kv), "%s", key);
	if (n < 0 || (size_t)n >= sizeof(kv))
		return NULL;
	char *out = NULL;
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = root ? cJSON_AddArrayToObject(root, "label") : NULL;
	cJSON *s = cJSON_CreateString(kv);
	if (!arr || !s || !cJSON_AddItemToArray(arr, s)) {
		cJSON_Delete(s);
		goto out;
	}
	out = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return out;
}

/* --- images ---------------------------------------------------------------- */

/* "2026-12-02T03:35:50.751794904Z" -> seconds since the epoch (UTC), 0 when unreadable. */
static int64_t rfc3339_s(const char *s)
{
	int y, mo, d, h, mi, sec;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6 || y < 1970 || mo < 1 ||
	    mo > 12 || d < 1 || d > 31)
		return 0;
	/* days from civil (Howard Hinnant's algorithm), no timezone database needed */
	y -= mo <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153u * (unsigned)(mo + (mo > 2 ? -3 : 9)) + 2u) / 5u + (unsigned)d - 1u;
	unsigned doe = yoe * 365u + yoe / 4u - yoe / 100u + doy;
	int64_t days = era * 146097 + (int64_t)doe - 719468;
	return days * 86400 + h * 3600 + mi * 60 + sec;
}

static void str_list(const cJSON *arr, char (*out)[160], unsigned cap, unsigned *n)
{
	*n = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, arr)
	{
		if (*n >= cap)
			return;
		if (cJSON_IsString(v) && v->valuestring && copy_fit(out[*n], sizeof(out[0]), v->valuestring))
			(*n)++;
	}
}

static int image_of(const cJSON *o, struct hal_image_info *out)
{
	memset(out, 0, sizeof(*out));
	const char *id = str_of(o, "Id");
	if (!id || !copy_fit(out->id, sizeof(out->id), id))
		return -EINVAL;
	if (strncmp(out->id, "sha256:", 7) != 0) { /* some engines give the bare hex */
		char tmp[sizeof(out->id)];
		snprintf(tmp, sizeof(tmp), "sha256:%s", id);
		if (!copy_fit(out->id, sizeof(out->id), tmp))
			return -EINVAL;
	}
	str_list(cJSON_GetObjectItemCaseSensitive(o, "RepoTags"), out->tags, HAL_IMAGE_MAX_TAGS, &out->ntags);
	str_list(cJSON_GetObjectItemCaseSensitive(o, "RepoDigests"), out->digests, HAL_IMAGE_MAX_TAGS,
		 &out->ndigests);
	const cJSON *size = cJSON_GetObjectItemCaseSensitive(o, "Size");
	if (cJSON_IsNumber(size) && size->valuedouble >= 0)
		out->size_bytes = (uint64_t)size->valuedouble;
	const cJSON *created = cJSON_GetObjectItemCaseSensitive(o, "Created");
	if (cJSON_IsNumber(created) && created->valuedouble > 0)
		out->created_s = (int64_t)created->valuedouble; /* the list gives seconds */
	else if (cJSON_IsString(created))
		out->created_s = rfc3339_s(created->valuestring); /* inspect gives RFC 3339 */
	return 0;
}

int engine_json_image(const char *buf, size_t len, struct hal_image_info *out)
{
	cJSON *root = parse(buf, len);
	int rc = cJSON_IsObject(root) ? image_of(root, out) : -EINVAL;
	cJSON_Delete(root);
	return rc;
}

int engine_json_images(const char *buf, size_t len, struct hal_image_info *out, unsigned cap, unsigned *n)
{
	cJSON *root = parse(buf, len);
	*n = 0;
	int rc = cJSON_IsArray(root) ? 0 : -EINVAL;
	const cJSON *o;
	cJSON_ArrayForEach(o, root)
	{
		if (*n >= cap) {
			rc = -EOVERFLOW;
			break;
		}
		if (image_of(o, &out[*n]) == 0)
			(*n)++;
	}
	cJSON_Delete(root);
	return rc;
}

int engine_json_pull_line(const char *buf, size_t len, struct engine_pull_line *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = parse(buf, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	const char *err = str_of(root, "error");
	const cJSON *detail = cJSON_GetObjectItemCaseSensitive(root, "errorDetail");
	if (!err && cJSON_IsObject(detail))
		err = str_of(detail, "message");
	if (err) {
		out->kind = PULL_LINE_ERROR;
		/* the cause comes last ("...: manifest unknown"): keep the tail of a long message */
		size_t n = strlen(err);
		copy_trunc(out->text, sizeof(out->text), n >= sizeof(out->text) ? err + n - (sizeof(out->text) - 1) : err);
		for (char *p = out->text; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '"')
				*p = '\'';
		cJSON_Delete(root);
		return 0;
	}
	const char *status = str_of(root, "status");
	copy_trunc(out->layer, sizeof(out->layer), str_of(root, "id"));
	copy_trunc(out->text, sizeof(out->text), status);
	const cJSON *pd = cJSON_GetObjectItemCaseSensitive(root, "progressDetail");
	const cJSON *cur = cJSON_GetObjectItemCaseSensitive(pd, "current");
	const cJSON *tot = cJSON_GetObjectItemCaseSensitive(pd, "total");
	if (cJSON_IsNumber(cur) && cur->valuedouble >= 0)
		out->current = (uint64_t)cur->valuedouble;
	if (cJSON_IsNumber(tot) && tot->valuedouble >= 0)
		out->total = (uint64_t)tot->valuedouble;
	if (!status)
		out->kind = PULL_LINE_OTHER;
	else if (strcmp(status, "Pulling fs layer") == 0 || strcmp(status, "Waiting") == 0)
		out->kind = PULL_LINE_LAYER;
	else if (strcmp(status, "Downloading") == 0 || strcmp(status, "Extracting") == 0)
		out->kind = PULL_LINE_BYTES;
	else if (strcmp(status, "Download complete") == 0 || strcmp(status, "Already exists") == 0 ||
		 strcmp(status, "Pull complete") == 0)
		out->kind = PULL_LINE_LAYER_DONE;
	else
		out->kind = PULL_LINE_OTHER;
	cJSON_Delete(root);
	return 0;
}
