/* agent/suptarget.c - maps console commands onto the supervisor: desired state, scale, restart, remove, chaos. */
#include "agent/suptarget.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/chaos.h"
#include "agent/deploy.h"
#include "agent/log.h"
#include "agent/supervisor.h"
#include "agent/telemetry.h"

#define LOG_TAG "suptarget"

struct suptarget {
	struct supervisor *sup;
	struct chaos *chaos;
	struct deploy_set cur;        /* last applied set */
	struct deploy_set scratch;    /* parse buffer (sets are large: not on the stack) */
	struct sup_status st[SUP_MAX_DEPLOYMENTS];
	struct sup_replica reps[SUP_MAX_DEPLOYMENTS * DEPLOY_MAX_REPLICAS];
};

struct suptarget *suptarget_create(struct supervisor *sup, struct chaos *chaos)
{
	struct suptarget *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->sup = sup;
	t->chaos = chaos;
	return t;
}

void suptarget_destroy(struct suptarget *t) { free(t); }

static int spec_error(const struct deploy_error *de, struct command_error *err)
{
	err->code = "invalid_spec";
	deploy_error_format(de, err->message, sizeof(err->message));
	return -EINVAL;
}

static int validate(void *ctx, const char *json, struct command_error *err)
{
	struct suptarget *t = ctx;
	struct deploy_error de;
	if (deploy_parse(json, strlen(json), &t->scratch, &de))
		return spec_error(&de, err);
	return 0;
}

static int apply(void *ctx, uint64_t version, const char *json, struct command_error *err)
{
	struct suptarget *t = ctx;
	struct deploy_error de;
	if (deploy_parse(json, strlen(json), &t->scratch, &de))
		return spec_error(&de, err);
	t->scratch.version = version;
	int rc = supervisor_apply(t->sup, &t->scratch);
	if (rc) {
		err->code = rc == -ESTALE ? "stale_version" : "internal";
		snprintf(err->message, sizeof(err->message), "supervisor refused version %llu: %s",
			 (unsigned long long)version, strerror(-rc));
		return rc;
	}
	t->cur = t->scratch;
	return 0;
}

static bool has(void *ctx, const char *name)
{
	struct suptarget *t = ctx;
	return deploy_find(&t->cur, name) != NULL;
}

static int scale(void *ctx, const char *name, uint32_t n, struct command_error *err)
{
	struct suptarget *t = ctx;
	int rc = supervisor_set_replicas(t->sup, name, n);
	if (rc == -ERANGE) {
		const struct deploy_spec *d = deploy_find(&t->cur, name);
		err->code = "out_of_range";
		snprintf(err->message, sizeof(err->message), "args.replicas %u is outside replicas.min..max (%u..%u)", n,
			 d ? d->replicas_min : 0, d ? d->replicas_max : 0);
	} else if (rc) {
		err->code = rc == -ENOENT ? "unknown_deployment" : "internal";
		snprintf(err->message, sizeof(err->message), "scale %s: %s", name, strerror(-rc));
	}
	return rc;
}

static int restart(void *ctx, const char *name, struct command_error *err)
{
	struct suptarget *t = ctx;
	unsigned n = supervisor_replicas(t->sup, t->reps, sizeof(t->reps) / sizeof(t->reps[0]));
	unsigned killed = 0;
	for (unsigned i = 0; i < n; i++)
		if (strcmp(t->reps[i].deployment, name) == 0 && supervisor_replica_kill(t->sup, name, t->reps[i].slot) == 0)
			killed++;
	LOG_INF("event=restart deployment=%s replicas=%u", name, killed);
	return 0;
}

static int remove_dep(void *ctx, const char *name, struct command_error *err)
{
	struct suptarget *t = ctx;
	t->scratch = t->cur;
	unsigned o = 0;
	for (unsigned i = 0; i < t->scratch.n; i++)
		if (strcmp(t->scratch.d[i].name, name) != 0)
			t->scratch.d[o++] = t->scratch.d[i];
	t->scratch.n = o;
	int rc = supervisor_apply(t->sup, &t->scratch);
	if (rc) {
		err->code = "internal";
		snprintf(err->message, sizeof(err->message), "remove %s: %s", name, strerror(-rc));
		return rc;
	}
	t->cur = t->scratch;
	return 0;
}

static int chaos(void *ctx, const char *name, uint32_t interval_s, uint32_t duration_s, uint32_t min_running,
		 struct command_error *err)
{
	struct suptarget *t = ctx;
	if (!t->chaos) {
		err->code = "unsupported";
		snprintf(err->message, sizeof(err->message), "no chaos experiment in this agent");
		return -ENOTSUP;
	}
	struct chaos_config cc = {
		.interval_ms = interval_s * 1000u,
		.duration_ms = duration_s * 1000u,
		.min_running = min_running,
	};
	snprintf(cc.deployment, sizeof(cc.deployment), "%s", name);
	int rc = chaos_start(t->chaos, &cc);
	if (rc) {
		err->code = "internal";
		snprintf(err->message, sizeof(err->message), "chaos: %s", strerror(-rc));
	}
	return rc;
}

static int report(void *ctx, char *buf, size_t len)
{
	struct suptarget *t = ctx;
	unsigned n = supervisor_statuses(t->sup, t->st, SUP_MAX_DEPLOYMENTS);
	size_t o = 0;
	int w = snprintf(buf, len, "[");
	if (w < 0 || (size_t)w >= len)
		return -ENOSPC;
	o = (size_t)w;
	for (unsigned i = 0; i < n; i++) {
		const struct sup_status *s = &t->st[i];
		w = snprintf(buf + o, len - o,
			     "%s{\"name\":\"%s\",\"replicas_desired\":%u,\"replicas_min\":%u,\"replicas_max\":%u,"
			     "\"replicas_ready\":%u,\"replicas_running\":%u,\"health\":\"%s\",\"circuit\":\"%s\","
			     "\"restarts\":%u,\"rolling\":%s,\"removing\":%s,\"migration_needed\":%s}",
			     i ? "," : "", s->name, s->replicas_desired, s->replicas_min, s->replicas_max, s->replicas_ready,
			     s->replicas_running, s->health ? s->health : "unknown", supervisor_circuit_name(s->circuit),
			     s->restarts, s->rolling ? "true" : "false", s->removing ? "true" : "false",
			     s->migration_needed ? "true" : "false");
		if (w < 0 || (size_t)w >= len - o)
			return -ENOSPC;
		o += (size_t)w;
	}
	if (o + 2 > len)
		return -ENOSPC;
	buf[o++] = ']';
	buf[o] = '\0';
	return (int)o;
}

void suptarget_telemetry_source(void *ctx, struct telemetry_buf *b)
{
	char tmp[8192];
	int n = report(ctx, tmp, sizeof(tmp));
	telemetry_buf_printf(b, "%s", n > 0 ? tmp : "[]");
}

const struct control_target_ops suptarget_ops = {
	.validate = validate,
	.apply = apply,
	.has_deployment = has,
	.scale = scale,
	.restart = restart,
	.remove = remove_dep,
	.chaos = chaos,
	.report = report,
};
