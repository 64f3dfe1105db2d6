/* agent/cmd/ctl_rollout.c - staged rollouts, the pure part: rollout file validation, wave planning, device verdicts. */
#include "agent/cmd/ctl_rollout.h"
#include "agent/cmd/ctl_args.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* An integer member lo..hi into *out (def when absent). */
static int get_u32(const cJSON *obj, const char *key, const char *path, uint32_t lo, uint32_t hi, uint32_t def,
		   uint32_t *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
		char *t = cJSON_PrintUnformatted(v);
		int rc = ctl_args_fail(err, errlen, "%s: expected an integer %u..%u, got %s", path, lo, hi, t ? t : "?");
		free(t);
		return rc;
	}
	*out = (uint32_t)v->valuedouble;
	return 0;
}

/* Refuses members of obj not in the '|'-separated list allowed. */
static int only_keys(const cJSON *obj, const char *prefix, const char *allowed, char *err, size_t errlen)
{
	for (const cJSON *m = obj->child; m; m = m->next) {
		size_t n = strlen(m->string);
		const char *p = allowed;
		bool found = false;
		while (*p && !found) {
			size_t k = strcspn(p, "|");
			found = k == n && strncmp(p, m->string, n) == 0;
			p += k + (p[k] == '|');
		}
		if (!found)
			return ctl_args_fail(err, errlen, "%s%s: unknown key (allowed: %s)", prefix, m->string, allowed);
	}
	return 0;
}

/* The deployment set, checked by berthd's own parser; its names and images kept. */
static int parse_set(const cJSON *root, struct ctl_rollout *r, char *err, size_t errlen)
{
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
	const cJSON *deps = cJSON_GetObjectItemCaseSensitive(root, "deployments");
	if (!cJSON_IsNumber(ver) || ver->valuedouble < 1 || ver->valuedouble > 9007199254740992.0 ||
	    ver->valuedouble != floor(ver->valuedouble))
		return ctl_args_fail(err, errlen, "version: expected the new desired-state version, an integer >= 1");
	if (!cJSON_IsArray(deps) || cJSON_GetArraySize(deps) == 0)
		return ctl_args_fail(err, errlen, "deployments: expected a non-empty array (the deployment set to roll out)");
	r->version = (uint64_t)ver->valuedouble;
	r->deployments_json = cJSON_PrintUnformatted(deps);
	struct deploy_set *set = malloc(sizeof(*set));
	char *doc = r->deployments_json ? malloc(strlen(r->deployments_json) + 64) : NULL;
	if (!set || !doc) {
		free(set);
		free(doc);
		return -ENOMEM;
	}
	sprintf(doc, "{\"version\":%llu,\"deployments\":%s}", (unsigned long long)r->version, r->deployments_json);
	struct deploy_error de;
	int rc = deploy_parse(doc, strlen(doc), set, &de);
	if (rc) {
		char msg[400];
		deploy_error_format(&de, msg, sizeof(msg));
		ctl_args_fail(err, errlen, "deployments: %s", msg);
	} else {
		r->ndeps = set->n;
		for (unsigned i = 0; i < set->n; i++) {
			snprintf(r->dep[i].name, sizeof(r->dep[i].name), "%s", set->d[i].name);
			snprintf(r->dep[i].image, sizeof(r->dep[i].image), "%s", set->d[i].image);
		}
	}
	free(set);
	free(doc);
	return rc ? -EINVAL : 0;
}

static int parse_gate(const cJSON *gate, struct ctl_rollout *r, char *err, size_t errlen)
{
	int rc;
	r->min_sla = -1;
	if (!cJSON_IsObject(gate))
		return ctl_args_fail(err, errlen, "gate: expected an object {\"soak_s\":..,\"ready_timeout_s\":..,\"min_sla\":..,"
					 "\"max_restarts\":..}");
	if ((rc = only_keys(gate, "gate.", "soak_s|ready_timeout_s|min_sla|max_restarts", err, errlen)) ||
	    (rc = get_u32(gate, "soak_s", "gate.soak_s", 1, 86400, 60, &r->soak_s, err, errlen)) ||
	    (rc = get_u32(gate, "ready_timeout_s", "gate.ready_timeout_s", 1, 86400, 300, &r->ready_timeout_s, err,
			  errlen)) ||
	    (rc = get_u32(gate, "max_restarts", "gate.max_restarts", 0, 1000, 0, &r->max_restarts, err, errlen)))
		return rc;
	const cJSON *sla = cJSON_GetObjectItemCaseSensitive(gate, "min_sla");
	if (sla) {
		if (!cJSON_IsNumber(sla) || sla->valuedouble < 0 || sla->valuedouble > 1)
			return ctl_args_fail(err, errlen, "gate.min_sla: expected a compliance ratio 0..1");
		r->min_sla = sla->valuedouble;
	}
	return 0;
}

int ctl_rollout_parse(const char *text, size_t len, struct ctl_rollout *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	cJSON *root = cJSON_ParseWithLength(text, len);
	int rc;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return ctl_args_fail(err, errlen, "not a JSON object");
	}
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if ((rc = only_keys(root, "", "schema|version|deployments|canary_pct|waves|wave_pct|pause_s|gate", err, errlen)))
		goto out;
	if (schema && (!cJSON_IsNumber(schema) || schema->valuedouble != 1)) {
		rc = ctl_args_fail(err, errlen, "schema: expected 1");
		goto out;
	}
	if ((rc = parse_set(root, r, err, errlen)) ||
	    (rc = get_u32(root, "canary_pct", "canary_pct", 0, 50, 0, &r->canary_pct, err, errlen)) ||
	    (rc = get_u32(root, "waves", "waves", 1, CTL_ROLLOUT_MAX_WAVES, 0, &r->waves, err, errlen)) ||
	    (rc = get_u32(root, "wave_pct", "wave_pct", 1, 100, 0, &r->wave_pct, err, errlen)) ||
	    (rc = get_u32(root, "pause_s", "pause_s", 0, 86400, 0, &r->pause_s, err, errlen)) ||
	    (rc = parse_gate(cJSON_GetObjectItemCaseSensitive(root, "gate"), r, err, errlen)))
		goto out;
	if (!r->waves == !r->wave_pct)
		rc = ctl_args_fail(err, errlen, "waves, wave_pct: give exactly one (a count of waves, or each wave's %% of the group)");
out:
	cJSON_Delete(root);
	if (rc)
		ctl_rollout_free(r);
	return rc;
}

void ctl_rollout_free(struct ctl_rollout *r)
{
	if (!r)
		return;
	free(r->deployments_json);
	r->deployments_json = NULL;
}

static size_t pct_of(size_t n, uint32_t pct) { return (n * pct + 99) / 100; }

unsigned ctl_rollout_plan(const struct ctl_rollout *r, size_t n, size_t *start, bool *has_canary)
{
	unsigned w = 0;
	size_t at = 0;
	*has_canary = false;
	if (n == 0) {
		start[0] = 0;
		return 0;
	}
	if (r->canary_pct) {
		size_t c = pct_of(n, r->canary_pct);
		c = c < 1 ? 1 : c > n ? n : c;
		start[w++] = 0;
		at = c;
		*has_canary = true;
	}
	size_t rest = n - at;
	if (r->waves) {
		unsigned k = r->waves < rest ? r->waves : (unsigned)rest;
		for (unsigned i = 0; i < k; i++) {
			start[w++] = at;
			at += rest / k + (i < rest % k);
		}
	} else {
		size_t size = pct_of(n, r->wave_pct);
		size = size < 1 ? 1 : size;
		while (at < n && w < CTL_ROLLOUT_MAX_WAVES + 1) {
			start[w++] = at;
			at += size;
		}
		if (at < n) /* more than the cap: the last wave takes the rest */
			at = n;
	}
	start[w] = n;
	return w;
}

bool ctl_reported_in_group(const char *reported, size_t len, const char *group)
{
	cJSON *root = reported ? cJSON_ParseWithLength(reported, len) : NULL;
	const cJSON *g = root ? cJSON_GetObjectItemCaseSensitive(root, "groups") : NULL;
	bool in = false;
	for (const cJSON *x = cJSON_IsArray(g) ? g->child : NULL; x && !in; x = x->next)
		in = cJSON_IsString(x) && strcmp(x->valuestring, group) == 0;
	cJSON_Delete(root);
	return in;
}

static double num(const cJSON *obj, const char *key, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsNumber(v) ? v->valuedouble : def;
}
static const char *str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* One deployment of the rollout against its reported object d (NULL: not
 * reported). Returns the phase; why says what holds or failed it. */
static enum ctl_dev_phase eval_dep(const struct ctl_rollout *r, unsigned i, const cJSON *d, char *why, size_t len)
{
	const char *name = r->dep[i].name;
	if (!d) {
		snprintf(why, len, "%s: not reported yet", name);
		return CTL_DEV_APPLYING;
	}
	const cJSON *rb = cJSON_GetObjectItemCaseSensitive(d, "last_rollback");
	if (cJSON_IsObject(rb) && strcmp(str(rb, "from_image"), r->dep[i].image) == 0) {
		snprintf(why, len, "%s: rolled back by the device (%s)", name, str(rb, "reason"));
		return CTL_DEV_FAILED;
	}
	if (strcmp(str(d, "circuit"), "open") == 0) {
		snprintf(why, len, "%s: circuit open (crash loop)", name);
		return CTL_DEV_FAILED;
	}
	const cJSON *sla = cJSON_GetObjectItemCaseSensitive(d, "sla_compliance");
	if (r->min_sla >= 0 && cJSON_IsNumber(sla) && sla->valuedouble < r->min_sla) {
		snprintf(why, len, "%s: SLA compliance %.3f below %.3f", name, sla->valuedouble, r->min_sla);
		return CTL_DEV_FAILED;
	}
	const char *img = str(d, "image");
	if (img[0] && strcmp(img, r->dep[i].image) != 0) {
		snprintf(why, len, "%s: image %s, not yet %s", name, img, r->dep[i].image);
		return CTL_DEV_APPLYING;
	}
	double ready = num(d, "replicas_ready", 0), want = num(d, "replicas_desired", 1);
	const cJSON *rolling = cJSON_GetObjectItemCaseSensitive(d, "rolling");
	if (ready < want || cJSON_IsTrue(rolling)) {
		snprintf(why, len, "%s: ready %.0f/%.0f%s", name, ready, want, cJSON_IsTrue(rolling) ? ", rolling" : "");
		return CTL_DEV_APPLYING;
	}
	return CTL_DEV_READY;
}

static const cJSON *find_dep(const cJSON *deps, const char *name)
{
	for (const cJSON *d = cJSON_IsArray(deps) ? deps->child : NULL; d; d = d->next)
		if (strcmp(str(d, "name"), name) == 0)
			return d;
	return NULL;
}

/* The deployments of a device at the rollout's version. */
static enum ctl_dev_phase eval_deps(const struct ctl_rollout *r, const cJSON *deps, const struct ctl_dev_base *base,
				    struct ctl_dev_eval *out)
{
	enum ctl_dev_phase worst = CTL_DEV_READY;
	char why[160] = "";
	for (unsigned i = 0; i < r->ndeps; i++) {
		const cJSON *d = find_dep(deps, r->dep[i].name);
		out->restarts += d ? (uint32_t)num(d, "restarts", 0) : 0;
		char w[160];
		enum ctl_dev_phase p = eval_dep(r, i, d, w, sizeof(w));
		out->ready += p == CTL_DEV_READY;
		if (p == CTL_DEV_FAILED || (p == CTL_DEV_APPLYING && worst == CTL_DEV_READY)) {
			snprintf(why, sizeof(why), "%s", w);
			worst = p == CTL_DEV_FAILED ? p : worst == CTL_DEV_FAILED ? worst : p;
		}
		if (worst == CTL_DEV_FAILED)
			break;
	}
	if (worst != CTL_DEV_FAILED && base && base->set && out->restarts > base->restarts + r->max_restarts) {
		snprintf(why, sizeof(why), "%u restarts since the wave started (at most %u)", out->restarts - base->restarts,
			 r->max_restarts);
		worst = CTL_DEV_FAILED;
	}
	snprintf(out->why, sizeof(out->why), "%s", why);
	return worst;
}

enum ctl_dev_phase ctl_rollout_eval(const struct ctl_rollout *r, const char *reported, size_t len,
				    const struct ctl_dev_base *base, struct ctl_dev_eval *out)
{
	memset(out, 0, sizeof(*out));
	out->total = r->ndeps;
	cJSON *root = reported ? cJSON_ParseWithLength(reported, len) : NULL;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		snprintf(out->why, sizeof(out->why), "no reported state");
		return out->phase = CTL_DEV_PENDING;
	}
	out->desired_version = (uint64_t)num(root, "desired_version", 0);
	if (out->desired_version < r->version) {
		if (base && base->set && base->refused) {
			snprintf(out->why, sizeof(out->why), "refused what was sent (%s) and stays at desired version %llu",
				 base->refused_why, (unsigned long long)out->desired_version);
			out->phase = CTL_DEV_FAILED;
		} else {
			snprintf(out->why, sizeof(out->why), "at desired version %llu",
				 (unsigned long long)out->desired_version);
			out->phase = CTL_DEV_PENDING;
		}
	} else if (out->desired_version > r->version) {
		snprintf(out->why, sizeof(out->why), "already at a newer desired version %llu",
			 (unsigned long long)out->desired_version);
		out->phase = CTL_DEV_READY;
		out->ready = out->total;
	} else {
		out->phase = eval_deps(r, cJSON_GetObjectItemCaseSensitive(root, "deployments"), base, out);
	}
	cJSON_Delete(root);
	return out->phase;
}

bool ctl_events_refusal(const char *batch, size_t len, int64_t since_ms, char *why, size_t whylen)
{
	cJSON *root = cJSON_ParseWithLength(batch, len);
	const cJSON *rows = root ? cJSON_GetObjectItemCaseSensitive(root, "rows") : NULL;
	bool found = false;
	for (const cJSON *r = cJSON_IsArray(rows) ? rows->child : NULL; r && !found; r = r->next) {
		const cJSON *ts = cJSON_GetObjectItemCaseSensitive(r, "ts");
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(r, "data");
		const char *type = str(data, "event")[0] ? str(data, "event") : str(data, "type");
		if (!cJSON_IsNumber(ts) || ts->valuedouble < (double)since_ms || strcmp(type, "trust_refused") != 0)
			continue;
		const cJSON *det = cJSON_GetObjectItemCaseSensitive(data, "detail");
		const cJSON *from = cJSON_IsObject(det) ? det : data;
		snprintf(why, whylen, "%s: %s", str(from, "code")[0] ? str(from, "code") : "refused", str(from, "message"));
		found = true;
	}
	cJSON_Delete(root);
	return found;
}
