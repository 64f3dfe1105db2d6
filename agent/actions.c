/* agent/actions.c - maps console commands onto the supervisor: desired state, scale, restart, remove, chaos. */
#include "agent/actions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/supervise/chaos.h"
#include "agent/model/deploy.h"
#include "agent/infer/dispatch.h"
#include "agent/telemetry/events.h"
#include "agent/telemetry/sampler.h"
#include "agent/console/reported.h"
#include "agent/base/log.h"
#include "agent/supervise/supervisor.h"
#include "agent/telemetry/collector.h"
#include "agent/images/lkg.h"

#define LOG_TAG "actions"

struct actions {
	struct supervisor *sup;
	struct chaos *chaos;
	struct dispatch *dispatch;    /* request figures for the SLA fields; may be NULL */
	struct events *events;        /* trust refusals and decisions; may be NULL */
	struct lkg *lkg;              /* last-known-good and image fields; may be NULL */
	struct deploy_set cur;        /* last applied set */
	struct deploy_set scratch;    /* parse buffer (sets are large: not on the stack) */
	struct deploy_set local;      /* what the site filter left for this gateway */
	struct actions_site site;
	struct sup_status st[SUP_MAX_DEPLOYMENTS];
	struct sup_replica reps[SUP_MAX_DEPLOYMENTS * DEPLOY_MAX_REPLICAS];
};

struct actions *actions_create(struct supervisor *sup, struct chaos *chaos)
{
	struct actions *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->sup = sup;
	t->chaos = chaos;
	return t;
}

void actions_destroy(struct actions *t) { free(t); }

void actions_set_dispatch(struct actions *t, struct dispatch *d) { t->dispatch = d; }

void actions_set_site(struct actions *t, const struct actions_site *site)
{
	if (site)
		t->site = *site;
	else
		memset(&t->site, 0, sizeof(t->site));
}

/* The supervisor gets this gateway's share of set (all of it without a site). */
static int target_apply(struct actions *t, const struct deploy_set *set)
{
	if (!t->site.filter)
		return supervisor_apply(t->sup, set);
	(void)t->site.filter(t->site.arg, set, &t->local); /* a name clash is logged, the rest applies */
	return supervisor_apply(t->sup, &t->local);
}

int actions_reapply(struct actions *t) { return target_apply(t, &t->cur); }

void actions_set_events(struct actions *t, struct events *ev) { t->events = ev; }

static void emit_event(void *ctx, const char *type, const char *detail_json)
{
	struct actions *t = ctx;
	events_emit(t->events, type, "%s", detail_json);
}

void actions_set_lkg(struct actions *t, struct lkg *k) { t->lkg = k; }

static int rollback(void *ctx, const char *name, const char *reason, struct command_error *err)
{
	struct actions *t = ctx;
	if (!t->lkg) {
		err->code = "unsupported";
		snprintf(err->message, sizeof(err->message), "no images flow in this agent");
		return -ENOTSUP;
	}
	int rc = lkg_rollback(t->lkg, name, reason);
	if (rc == -ENODATA) {
		err->code = "no_last_known_good";
		snprintf(err->message, sizeof(err->message), "%s has no last-known-good version yet", name);
	} else if (rc == -EALREADY) {
		err->code = "already_last_known_good";
		snprintf(err->message, sizeof(err->message), "%s already runs its last-known-good version", name);
	} else if (rc) {
		err->code = rc == -ENOENT ? "unknown_deployment" : "internal";
		snprintf(err->message, sizeof(err->message), "rollback %s: %s", name, strerror(-rc));
	}
	return rc;
}

static int last_good(void *ctx, const char *name, char **doc)
{
	struct actions *t = ctx;
	*doc = NULL;
	return t->lkg ? lkg_last_good(t->lkg, name, doc) : -ENOTSUP;
}

unsigned actions_sampler_targets(void *arg, struct sampler_target *out, unsigned max)
{
	struct actions *t = arg;
	unsigned n = supervisor_replicas(t->sup, t->reps, SUP_MAX_DEPLOYMENTS * DEPLOY_MAX_REPLICAS);
	if (n > max)
		n = max;
	for (unsigned i = 0; i < n; i++) {
		const struct sup_replica *v = &t->reps[i];
		struct sampler_target *o = &out[i];
		snprintf(o->deployment, sizeof(o->deployment), "%s", v->deployment);
		o->slot = v->slot;
		o->pid = v->pid;
		o->restarts = v->restarts;
		o->ready = v->ready;
		o->live = v->live;
	}
	return n;
}

static int spec_error(const struct deploy_error *de, struct command_error *err)
{
	err->code = "invalid_spec";
	deploy_error_format(de, err->message, sizeof(err->message));
	return -EINVAL;
}

static int validate(void *ctx, const char *json, struct command_error *err)
{
	struct actions *t = ctx;
	struct deploy_error de;
	if (deploy_parse(json, strlen(json), &t->scratch, &de))
		return spec_error(&de, err);
	return 0;
}

static int apply(void *ctx, uint64_t version, const char *json, struct command_error *err)
{
	struct actions *t = ctx;
	struct deploy_error de;
	if (deploy_parse(json, strlen(json), &t->scratch, &de))
		return spec_error(&de, err);
	t->scratch.version = version;
	int rc = target_apply(t, &t->scratch);
	if (rc) {
		err->code = rc == -ESTALE ? "stale_version" : "internal";
		snprintf(err->message, sizeof(err->message), "supervisor refused version %llu: %s",
			 (unsigned long long)version, strerror(-rc));
		return rc;
	}
	deploy_set_copy(&t->cur, &t->scratch);
	return 0;
}

static bool has(void *ctx, const char *name)
{
	struct actions *t = ctx;
	return deploy_find(&t->cur, name) != NULL;
}

static int scale(void *ctx, const char *name, uint32_t n, struct command_error *err)
{
	struct actions *t = ctx;
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
	struct actions *t = ctx;
	unsigned n = supervisor_replicas(t->sup, t->reps, sizeof(t->reps) / sizeof(t->reps[0]));
	unsigned killed = 0;
	for (unsigned i = 0; i < n; i++)
		if (strcmp(t->reps[i].deployment, name) == 0 && supervisor_replica_kill(t->sup, name, t->reps[i].slot) == 0)
			killed++;
	log_inf("event=restart deployment=%s replicas=%u", name, killed);
	return 0;
}

static int remove_dep(void *ctx, const char *name, struct command_error *err)
{
	struct actions *t = ctx;
	deploy_set_copy(&t->scratch, &t->cur);
	unsigned o = 0;
	for (unsigned i = 0; i < t->scratch.n; i++)
		if (strcmp(t->scratch.d[i].name, name) != 0)
			t->scratch.d[o++] = t->scratch.d[i];
	t->scratch.n = o;
	int rc = target_apply(t, &t->scratch);
	if (rc) {
		err->code = "internal";
		snprintf(err->message, sizeof(err->message), "remove %s: %s", name, strerror(-rc));
		return rc;
	}
	deploy_set_copy(&t->cur, &t->scratch);
	return 0;
}

static int chaos(void *ctx, const char *name, uint32_t interval_s, uint32_t duration_s, uint32_t min_running,
		 struct command_error *err)
{
	struct actions *t = ctx;
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

/* --- reported state --------------------------------------------------------- */

static int report(void *ctx, char *buf, size_t len, bool figures)
{
	struct actions *t = ctx;
	unsigned n = supervisor_statuses(t->sup, t->st, SUP_MAX_DEPLOYMENTS);
	size_t o = 0;
	int w = snprintf(buf, len, "[");
	if (w < 0 || (size_t)w >= len)
		return -ENOSPC;
	o = (size_t)w;
	for (unsigned i = 0; i < n; i++) {
		const struct sup_status *s = &t->st[i];
		char err[sizeof(s->last_error) * 2];
		events_json_escape(s->last_error, err, sizeof(err));
		int model = t->dispatch ? dispatch_model_find(t->dispatch, s->name) : -ENOENT;
		w = snprintf(buf + o, len - o,
			     "%s{\"name\":\"%s\",\"sla_class\":\"%s\",\"replicas_desired\":%u,\"replicas_min\":%u,"
			     "\"replicas_max\":%u,\"replicas_ready\":%u,\"replicas_running\":%u,\"health\":\"%s\","
			     "\"circuit\":\"%s\",\"restarts\":%u,\"rolling\":%s,\"removing\":%s,\"migration_needed\":%s,"
			     "\"last_error\":\"%s\"",
			     i ? "," : "", s->name, sla_class_name(s->sla_class), s->replicas_desired, s->replicas_min,
			     s->replicas_max, s->replicas_ready, s->replicas_running, s->health ? s->health : "unknown",
			     supervisor_circuit_name(s->circuit), s->restarts, s->rolling ? "true" : "false",
			     s->removing ? "true" : "false", s->migration_needed ? "true" : "false", err);
		if (w < 0 || (size_t)w >= len - o)
			return -ENOSPC;
		o += (size_t)w;
		if (t->lkg && !s->removing) {
			if (o + 2 > len)
				return -ENOSPC;
			buf[o++] = ',';
			w = lkg_report(t->lkg, s->name, figures, buf + o, len - o);
			if (w < 0)
				return w;
			o += (size_t)w;
		}
		if (figures) {
			char comp[24];
			w = snprintf(buf + o, len - o, ",\"sla_compliance\":%s}",
				     reported_ratio_json(dispatch_model_compliance(t->dispatch, model), comp, sizeof(comp)));
		} else
			w = snprintf(buf + o, len - o, "}");
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

/* Top level: SLA compliance per class (every model together; a figure) and the engine. */
static int report_extra(void *ctx, char *buf, size_t len, bool figures)
{
	struct actions *t = ctx;
	int n = 0;
	if (figures) {
		n = snprintf(buf, len, "\"sla\":");
		if (n < 0 || (size_t)n >= len)
			return -ENOSPC;
		struct sched_class_stats tot[SLA_NCLASSES];
		dispatch_class_totals(t->dispatch, tot);
		int m = reported_sla_json(tot, buf + n, len - (size_t)n);
		if (m < 0)
			return m;
		n += m;
	}
	int w = snprintf(buf + n, len - (size_t)n, "%s\"engine\":\"%s\"", figures ? "," : "",
			 !supervisor_has_engine(t->sup)	     ? "none"
			 : supervisor_engine_available(t->sup) ? "available"
							       : "unavailable");
	if (w < 0 || (size_t)w >= len - (size_t)n)
		return -ENOSPC;
	n += w;
	if (t->site.report) {
		w = snprintf(buf + n, len - (size_t)n, ",\"site\":");
		if (w < 0 || (size_t)w >= len - (size_t)n)
			return -ENOSPC;
		n += w;
		int m = t->site.report(t->site.arg, buf + n, len - (size_t)n);
		if (m < 0)
			return m;
		n += m;
	}
	if (!t->chaos)
		return n;
	/* The last chaos run (runs 0 before the first). */
	w = snprintf(buf + n, len - (size_t)n, ",\"chaos\":");
	if (w < 0 || (size_t)w >= len - (size_t)n)
		return -ENOSPC;
	n += w;
	int m = chaos_report_json(t->chaos, buf + n, len - (size_t)n);
	return m < 0 ? m : n + m;
}

int actions_report(struct actions *t, char *buf, size_t len) { return report(t, buf, len, true); }

/* Written in place: a table larger than the row leaves the source out
 * (counted by the sampler as sources_truncated). */
void actions_telemetry_source(void *ctx, struct collector_buf *b)
{
	if (b->overflow)
		return;
	int n = report(ctx, b->p + b->len, b->cap - b->len, true);
	if (n < 0) {
		b->overflow = true;
		b->p[b->len] = '\0';
		return;
	}
	b->len += (size_t)n;
}

/* site_join / site_leave: the site checks them against its log and carries them to the leader. */
static int site_member(void *ctx, const char *id, const char *address, struct command_error *err)
{
	struct actions *t = ctx;
	if (!t->site.member) {
		err->code = "unsupported";
		snprintf(err->message, sizeof(err->message), "this gateway is not in a site (site.enabled)");
		return -ENOTSUP;
	}
	int rc = t->site.member(t->site.arg, id, address, err->message, sizeof(err->message));
	switch (rc) {
	case 0: return 0;
	case -EEXIST: err->code = "duplicate_member"; break;
	case -ENOENT: err->code = "unknown_member"; break;
	case -ENOSPC: err->code = "site_full"; break;
	case -EBUSY: err->code = "no_majority"; break;
	case -EAGAIN: err->code = "unavailable"; break;
	default: err->code = "bad_value"; break;
	}
	return rc;
}

const struct control_target_ops actions_ops = {
	.validate = validate,
	.apply = apply,
	.has_deployment = has,
	.scale = scale,
	.restart = restart,
	.remove = remove_dep,
	.rollback = rollback,
	.last_good = last_good,
	.chaos = chaos,
	.report = report,
	.report_extra = report_extra,
	.event = emit_event,
	.site_member = site_member,
};
