/* agent/desired.c - records desired deployments and the commands applied to them, running nothing. */
#include "agent/desired.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/deploy.h"
#include "agent/telemetry.h"

struct desired_dep {
	char name[DEPLOY_NAME_MAX];
	uint32_t replicas, min, max;
	uint32_t restarts;
	uint32_t chaos_runs;
};

struct desired {
	unsigned n;
	struct desired_dep d[DEPLOY_MAX];
};

struct desired *desired_create(void) { return calloc(1, sizeof(struct desired)); }
void desired_destroy(struct desired *d) { free(d); }

static struct desired_dep *find(struct desired *d, const char *name)
{
	for (unsigned i = 0; i < d->n; i++)
		if (strcmp(d->d[i].name, name) == 0)
			return &d->d[i];
	return NULL;
}

static int apply(void *ctx, uint64_t version, const char *json, struct command_error *err)
{
	struct desired *d = ctx;
	cJSON *root = cJSON_Parse(json);
	const cJSON *deps = root ? cJSON_GetObjectItemCaseSensitive(root, "deployments") : NULL;
	if (!cJSON_IsArray(deps)) {
		cJSON_Delete(root);
		err->code = "invalid_spec";
		snprintf(err->message, sizeof(err->message), "deployments must be an array");
		return -EINVAL;
	}
	struct desired next = { 0 };
	for (const cJSON *e = deps->child; e && next.n < DEPLOY_MAX; e = e->next) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (!cJSON_IsString(name))
			continue;
		struct desired_dep *nd = &next.d[next.n++];
		snprintf(nd->name, sizeof(nd->name), "%s", name->valuestring);
		/* replicas: N, or {min, max, desired} (docs/deployments.md) */
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "replicas");
		nd->replicas = nd->min = nd->max = 1;
		if (cJSON_IsNumber(r) && r->valuedouble >= 0) {
			nd->replicas = nd->min = nd->max = (uint32_t)r->valuedouble;
		} else if (cJSON_IsObject(r)) {
			const cJSON *mn = cJSON_GetObjectItemCaseSensitive(r, "min");
			const cJSON *mx = cJSON_GetObjectItemCaseSensitive(r, "max");
			const cJSON *ds = cJSON_GetObjectItemCaseSensitive(r, "desired");
			nd->min = cJSON_IsNumber(mn) ? (uint32_t)mn->valuedouble : 1;
			nd->max = cJSON_IsNumber(mx) ? (uint32_t)mx->valuedouble : nd->min;
			nd->replicas = cJSON_IsNumber(ds) ? (uint32_t)ds->valuedouble : nd->min;
		}
		const struct desired_dep *old = find(d, nd->name);
		if (old) {
			nd->restarts = old->restarts;
			nd->chaos_runs = old->chaos_runs;
		}
	}
	cJSON_Delete(root);
	*d = next;
	return 0;
}

static bool has(void *ctx, const char *name) { return find(ctx, name) != NULL; }

static int scale(void *ctx, const char *name, uint32_t n, struct command_error *err)
{
	find(ctx, name)->replicas = n;
	return 0;
}

static int restart(void *ctx, const char *name, struct command_error *err)
{
	find(ctx, name)->restarts++;
	return 0;
}

static int remove_dep(void *ctx, const char *name, struct command_error *err)
{
	struct desired *d = ctx;
	struct desired_dep *e = find(d, name);
	*e = d->d[--d->n];
	return 0;
}

static int chaos(void *ctx, const char *name, uint32_t interval_s, uint32_t duration_s, uint32_t min_running,
		 struct command_error *err)
{
	find(ctx, name)->chaos_runs++;
	return 0;
}

static int report(void *ctx, char *buf, size_t len)
{
	struct desired *d = ctx;
	size_t o = 0;
	int n = snprintf(buf, len, "[");
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	o = (size_t)n;
	for (unsigned i = 0; i < d->n; i++) {
		/* The supervisor's report shape, with nothing running. */
		n = snprintf(buf + o, len - o,
			     "%s{\"name\":\"%s\",\"replicas_desired\":%u,\"replicas_min\":%u,\"replicas_max\":%u,"
			     "\"replicas_ready\":0,\"replicas_running\":0,\"health\":\"unknown\",\"circuit\":\"closed\","
			     "\"restarts\":%u,\"rolling\":false,\"removing\":false,\"migration_needed\":false}",
			     i ? "," : "", d->d[i].name, d->d[i].replicas, d->d[i].min, d->d[i].max, d->d[i].restarts);
		if (n < 0 || (size_t)n >= len - o)
			return -ENOSPC;
		o += (size_t)n;
	}
	if (o + 2 > len)
		return -ENOSPC;
	buf[o++] = ']';
	buf[o] = '\0';
	return (int)o;
}

void desired_telemetry_source(void *ctx, struct telemetry_buf *b)
{
	char tmp[4096];
	int n = report(ctx, tmp, sizeof(tmp));
	telemetry_buf_printf(b, "%s", n > 0 ? tmp : "[]");
}

const struct control_target_ops desired_ops = {
	.apply = apply,
	.has_deployment = has,
	.scale = scale,
	.restart = restart,
	.remove = remove_dep,
	.chaos = chaos,
	.report = report,
};
