/* agent/images/lkg.c - records each deployment's last-known-good, gates rollouts on their image, rolls failed versions back. */
#include "agent/images/lkg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/images/images.h"
#include "agent/images/rollout.h"
#include "agent/model/deploy.h"
#include "agent/supervise/supervisor.h"
#include "agent/telemetry/events.h"
#include "agent/telemetry/store.h"
#include "hal/clock.h"

#define LOG_TAG "lkg"
#define LKG_TICK_MS 1000u
#define LKG_RECORD_MAX 16384u        /* one stored record: the spec's JSON and a few fields */
#define LKG_KEY "lkg:"
#define LKG_BAD_KEY "lkg.bad:"

struct lkg_dep {
	bool used;
	char name[DEPLOY_NAME_MAX];
	struct rollout_track track;
	uint64_t lkg_hash;           /* 0: none */
	char lkg_image[256];
	char lkg_digest[80];
	int64_t lkg_wall_ms;
	uint64_t bad_hash;           /* the version rolled back from; 0 none */
	char rb_reason[32];
	char rb_from[256];
	int64_t rb_wall_ms;
};

struct lkg {
	struct loop *l;
	struct supervisor *sup;
	struct images *im;
	struct store *st;
	struct events *ev;
	struct lkg_opts o;
	struct lkg_dep d[DEPLOY_MAX];
	struct sup_status status[SUP_MAX_DEPLOYMENTS];
	struct deploy_set *scratch;  /* the last-known-good spec handed to the supervisor */
	char *rec;                   /* LKG_RECORD_MAX: a record read or written */
	struct lkg_stats stats;
	struct loop_timer tick;
};

static struct lkg_dep *dep_find(struct lkg *k, const char *name)
{
	for (unsigned i = 0; i < DEPLOY_MAX; i++)
		if (k->d[i].used && strcmp(k->d[i].name, name) == 0)
			return &k->d[i];
	return NULL;
}

/* Reads the stored record of name into k->rec: 0, -ENOENT, or -errno. */
static int record_read(struct lkg *k, const char *name)
{
	char key[sizeof(LKG_KEY) + DEPLOY_NAME_MAX];
	snprintf(key, sizeof(key), LKG_KEY "%s", name);
	return k->st ? store_kv_get(k->st, key, k->rec, LKG_RECORD_MAX) : -ENOENT;
}

static void record_load(struct lkg *k, struct lkg_dep *e)
{
	if (record_read(k, e->name) == 0) {
		cJSON *root = cJSON_Parse(k->rec);
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(root, "hash");
		const cJSON *im = cJSON_GetObjectItemCaseSensitive(root, "image");
		const cJSON *dg = cJSON_GetObjectItemCaseSensitive(root, "digest");
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "wall_ms");
		if (cJSON_IsString(h) && cJSON_IsString(im) && cJSON_IsString(dg) && cJSON_IsNumber(w)) {
			e->lkg_hash = strtoull(h->valuestring, NULL, 16);
			snprintf(e->lkg_image, sizeof(e->lkg_image), "%s", im->valuestring);
			snprintf(e->lkg_digest, sizeof(e->lkg_digest), "%s", dg->valuestring);
			e->lkg_wall_ms = (int64_t)w->valuedouble;
		} else {
			log_wrn("event=lkg_record_unreadable deployment=%s", e->name);
		}
		cJSON_Delete(root);
	}
	char key[sizeof(LKG_BAD_KEY) + DEPLOY_NAME_MAX], val[24];
	snprintf(key, sizeof(key), LKG_BAD_KEY "%s", e->name);
	if (k->st && store_kv_get(k->st, key, val, sizeof(val)) == 0 && val[0])
		e->bad_hash = strtoull(val, NULL, 16);
}

static struct lkg_dep *dep_get(struct lkg *k, const char *name)
{
	struct lkg_dep *e = dep_find(k, name);
	for (unsigned i = 0; i < DEPLOY_MAX && !e; i++)
		if (!k->d[i].used)
			e = &k->d[i];
	if (e && !e->used) {
		memset(e, 0, sizeof(*e));
		e->used = true;
		snprintf(e->name, sizeof(e->name), "%s", name);
		record_load(k, e);
	}
	return e;
}

static void bad_store(struct lkg *k, const struct lkg_dep *e)
{
	char key[sizeof(LKG_BAD_KEY) + DEPLOY_NAME_MAX], val[24] = "";
	snprintf(key, sizeof(key), LKG_BAD_KEY "%s", e->name);
	if (e->bad_hash)
		snprintf(val, sizeof(val), "%016" PRIx64, e->bad_hash);
	if (k->st && store_kv_set(k->st, key, val))
		log_wrn("event=lkg_store_failed deployment=%s", e->name);
}

/* The stored spec of e as a one-deployment desired state
 * {"deployments":[SPEC],"version":1} (malloc'ed): 0, -ENODATA, -EIO. */
static int lkg_doc(struct lkg *k, const struct lkg_dep *e, char **out)
{
	*out = NULL;
	if (!e->lkg_hash)
		return -ENODATA;
	if (record_read(k, e->name))
		return -EIO;
	cJSON *root = cJSON_Parse(k->rec);
	cJSON *spec = cJSON_DetachItemFromObjectCaseSensitive(root, "spec");
	cJSON_Delete(root);
	cJSON *doc = cJSON_CreateObject();
	cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "deployments") : NULL;
	if (spec && arr && cJSON_AddNumberToObject(doc, "version", 1)) {
		cJSON_AddItemToArray(arr, spec);
		spec = NULL;
		*out = cJSON_PrintUnformatted(doc);
	}
	cJSON_Delete(spec);
	cJSON_Delete(doc);
	return *out ? 0 : -EIO;
}

/* Parses the stored spec of e into k->scratch->d[0]. */
static int lkg_spec_load(struct lkg *k, const struct lkg_dep *e)
{
	char *text = NULL;
	int rc = lkg_doc(k, e, &text);
	if (rc)
		return rc;
	struct deploy_error de;
	if (deploy_parse(text, strlen(text), k->scratch, &de) != 0 || k->scratch->n != 1) {
		log_wrn("event=lkg_spec_unreadable deployment=%s", e->name);
		rc = -EIO;
	}
	free(text);
	return rc;
}

/* --- the supervisor's hooks ----------------------------------------------------- */

static bool image_gate(void *arg, const struct deploy_spec *spec, char *why, size_t why_len)
{
	struct lkg *k = arg;
	char err[160];
	int st = images_want(k->im, spec->image, spec->pull_policy, err, sizeof(err));
	if (st < 0) {
		snprintf(why, why_len, "%s", err);
		return false;
	}
	if (st == IMAGE_PRESENT)
		return true;
	struct image_status s;
	if (images_status(k->im, spec->image, &s) == 0 && s.state == IMAGE_PULLING && s.bytes_total)
		snprintf(why, why_len, "pulling %llu of %llu bytes", (unsigned long long)s.bytes_done,
			 (unsigned long long)s.bytes_total);
	else if (images_status(k->im, spec->image, &s) == 0 && s.last_error[0])
		snprintf(why, why_len, "%s (attempt %u): %.60s", images_state_name(s.state), s.attempts, s.last_error);
	else
		snprintf(why, why_len, "%s", images_state_name((enum image_state)st));
	return false;
}

static const struct deploy_spec *spec_filter(void *arg, const struct deploy_spec *sp)
{
	struct lkg *k = arg;
	struct lkg_dep *e = dep_get(k, sp->name);
	if (!e || !e->bad_hash)
		return sp;
	if (sp->spec_hash != e->bad_hash) {
		log_inf("event=rollback_cleared deployment=%s reason=new_version", e->name);
		e->bad_hash = 0;
		bad_store(k, e);
		return sp;
	}
	if (lkg_spec_load(k, e))
		return sp;
	struct deploy_spec *g = &k->scratch->d[0];
	g->replicas = sp->replicas < g->replicas_min ? g->replicas_min
		      : sp->replicas > g->replicas_max ? g->replicas_max
						       : sp->replicas;
	log_inf("event=rollback_kept deployment=%s version=%016" PRIx64 " instead_of=%016" PRIx64, e->name,
		g->spec_hash, sp->spec_hash);
	return g;
}

/* --- judging --------------------------------------------------------------------- */

static void record_good(struct lkg *k, struct lkg_dep *e, const struct deploy_spec *sp)
{
	if (e->lkg_hash == sp->spec_hash)
		return;
	struct image_status is;
	const char *digest = images_status(k->im, sp->image, &is) == 0 ? is.digest : "";
	char *spec_json = malloc(LKG_RECORD_MAX);
	if (!spec_json)
		return;
	int n = deploy_spec_to_json(sp, spec_json, LKG_RECORD_MAX - 1024);
	int64_t wall = hal_clock_wall_ms();
	int m = n > 0 ? snprintf(k->rec, LKG_RECORD_MAX,
				 "{\"hash\":\"%016" PRIx64 "\",\"image\":\"%s\",\"digest\":\"%s\",\"wall_ms\":%lld,\"spec\":%s}",
				 sp->spec_hash, sp->image, digest, (long long)wall, spec_json)
		      : -1;
	free(spec_json);
	char key[sizeof(LKG_KEY) + DEPLOY_NAME_MAX];
	snprintf(key, sizeof(key), LKG_KEY "%s", e->name);
	if (m < 0 || (size_t)m >= LKG_RECORD_MAX || !k->st || store_kv_set(k->st, key, k->rec)) {
		log_wrn("event=lkg_not_recorded deployment=%s", e->name);
		return;
	}
	e->lkg_hash = sp->spec_hash;
	snprintf(e->lkg_image, sizeof(e->lkg_image), "%s", sp->image);
	snprintf(e->lkg_digest, sizeof(e->lkg_digest), "%s", digest);
	e->lkg_wall_ms = wall;
	k->stats.recorded++;
	events_emit(k->ev, "last_known_good",
		    "{\"deployment\":\"%s\",\"image\":\"%s\",\"digest\":\"%s\",\"version\":\"%016" PRIx64 "\"}", e->name,
		    sp->image, digest, sp->spec_hash);
}

static void judge(struct lkg *k, const struct sup_status *st)
{
	const struct deploy_spec *sp = supervisor_spec(k->sup, st->name);
	struct lkg_dep *e = sp ? dep_get(k, st->name) : NULL;
	if (!e)
		return;
	const struct rollout_obs o = {
		.spec_hash = st->spec_hash,
		.desired = st->replicas_desired,
		.ready = st->current_ready,
		.crashes = st->version_exits,
		.circuit_open = st->circuit == SUP_CIRCUIT_OPEN,
		.image_ready = !st->image_waiting,
	};
	const struct rollout_limits lim = { k->o.stable_ms, k->o.window_ms, k->o.max_crashes };
	enum rollout_reason why;
	uint64_t now = hal_clock_now_us() / 1000u;
	switch (rollout_observe(&e->track, &o, k->st && k->o.rollback ? e->lkg_hash : 0, &lim, now, &why)) {
	case ROLLOUT_GOOD:
		record_good(k, e, sp);
		break;
	case ROLLOUT_FAILED:
		if (lkg_rollback(k, st->name, rollout_reason_name(why)) == 0)
			break;
		log_wrn("event=rollback_not_done deployment=%s reason=%s", st->name, rollout_reason_name(why));
		break;
	case ROLLOUT_WAIT:
		break;
	}
}

static void on_tick(void *arg)
{
	struct lkg *k = arg;
	unsigned n = supervisor_statuses(k->sup, k->status, SUP_MAX_DEPLOYMENTS);
	const char *keep[2 * SUP_MAX_DEPLOYMENTS];
	unsigned nkeep = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct sup_status *st = &k->status[i];
		if (st->removing)
			continue;
		judge(k, st);
		const struct deploy_spec *sp = supervisor_spec(k->sup, st->name);
		const struct lkg_dep *e = dep_find(k, st->name);
		if (sp)
			keep[nkeep++] = sp->image;
		if (e && e->lkg_hash)
			keep[nkeep++] = e->lkg_image;
	}
	images_keep(k->im, keep, nkeep);
	/* forget deployments no longer tracked (their records stay in the store) */
	for (unsigned i = 0; i < DEPLOY_MAX; i++)
		if (k->d[i].used && !supervisor_spec(k->sup, k->d[i].name))
			k->d[i].used = false;
}

static void on_image_change(void *arg, const char *ref, enum image_state state)
{
	(void)ref;
	(void)state;
	supervisor_image_changed(((struct lkg *)arg)->sup);
}

/* --- the API ------------------------------------------------------------------------ */

/* The deployment's record when it has a last-known-good other than what runs: 0, or
 * -ENOENT (unknown), -ENODATA (none yet), -EALREADY (it runs it). */
static int other_good(struct lkg *k, const char *deployment, const struct deploy_spec **cur, struct lkg_dep **e)
{
	*cur = supervisor_spec(k->sup, deployment);
	*e = *cur ? dep_get(k, deployment) : NULL;
	if (!*e)
		return -ENOENT;
	if (!(*e)->lkg_hash)
		return -ENODATA;
	return (*e)->lkg_hash == (*cur)->spec_hash ? -EALREADY : 0;
}

int lkg_rollback(struct lkg *k, const char *deployment, const char *reason)
{
	const struct deploy_spec *cur;
	struct lkg_dep *e;
	int rc = other_good(k, deployment, &cur, &e);
	if (rc)
		return rc;
	rc = lkg_spec_load(k, e);
	if (rc)
		return rc;
	char from[256];
	uint64_t from_hash = cur->spec_hash;
	snprintf(from, sizeof(from), "%s", cur->image);
	struct deploy_spec *g = &k->scratch->d[0];
	g->replicas = cur->replicas < g->replicas_min ? g->replicas_min
		      : cur->replicas > g->replicas_max ? g->replicas_max
							: cur->replicas;
	e->bad_hash = from_hash;
	bad_store(k, e);
	rc = supervisor_replace_spec(k->sup, g);
	if (rc) {
		e->bad_hash = 0;
		bad_store(k, e);
		return rc;
	}
	snprintf(e->rb_reason, sizeof(e->rb_reason), "%s", reason);
	snprintf(e->rb_from, sizeof(e->rb_from), "%s", from);
	e->rb_wall_ms = hal_clock_wall_ms();
	k->stats.rollbacks++;
	events_emit(k->ev, "rollback",
		    "{\"deployment\":\"%s\",\"reason\":\"%s\",\"from_image\":\"%s\",\"to_image\":\"%s\",\"from_version\":\"%016" PRIx64
		    "\",\"to_version\":\"%016" PRIx64 "\",\"to_digest\":\"%s\"}",
		    deployment, reason, from, e->lkg_image, from_hash, e->lkg_hash, e->lkg_digest);
	return 0;
}

int lkg_last_good(struct lkg *k, const char *deployment, char **doc)
{
	*doc = NULL;
	const struct deploy_spec *cur;
	struct lkg_dep *e;
	int rc = other_good(k, deployment, &cur, &e);
	return rc ? rc : lkg_doc(k, e, doc);
}

int lkg_report(struct lkg *k, const char *deployment, bool figures, char *buf, size_t len)
{
	const struct deploy_spec *sp = supervisor_spec(k->sup, deployment);
	struct lkg_dep *e = sp ? dep_get(k, deployment) : NULL;
	if (!e)
		return snprintf(buf, len, "\"image\":null,\"image_state\":null,\"pull\":null,\"last_known_good\":null,"
					  "\"last_rollback\":null") >= (int)len ? -ENOSPC : (int)strlen(buf);
	struct image_status is;
	bool known = images_status(k->im, sp->image, &is) == 0;
	char lkg[512] = "null", rb[640] = "null", pull[160] = "null";
	if (e->lkg_hash)
		snprintf(lkg, sizeof(lkg), "{\"image\":\"%s\",\"digest\":\"%s\",\"wall_ms\":%lld}", e->lkg_image,
			 e->lkg_digest, (long long)e->lkg_wall_ms);
	if (e->rb_wall_ms)
		snprintf(rb, sizeof(rb), "{\"reason\":\"%s\",\"from_image\":\"%s\",\"to_image\":\"%s\",\"wall_ms\":%lld}",
			 e->rb_reason, e->rb_from, e->lkg_image, (long long)e->rb_wall_ms);
	if (figures && known && (is.state == IMAGE_PULLING || is.state == IMAGE_RETRY_WAIT)) {
		char err[sizeof(is.last_error) * 2];
		events_json_escape(is.last_error, err, sizeof(err));
		snprintf(pull, sizeof(pull), "{\"bytes_done\":%llu,\"bytes_total\":%llu,\"attempts\":%u,\"last_error\":\"%.60s\"}",
			 (unsigned long long)is.bytes_done, (unsigned long long)is.bytes_total, is.attempts, err);
	}
	int n = snprintf(buf, len, "\"image\":\"%s\",\"image_state\":\"%s\",\"pull\":%s,\"last_known_good\":%s,\"last_rollback\":%s",
			 sp->image, known ? images_state_name(is.state) : "unknown", pull, lkg, rb);
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

void lkg_get_stats(const struct lkg *k, struct lkg_stats *out) { *out = k->stats; }

struct lkg *lkg_create(struct loop *l, struct supervisor *sup, struct images *im, struct store *st,
		       struct events *ev, const struct lkg_opts *o)
{
	if (!l || !sup || !im || !o)
		return NULL;
	struct lkg *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->scratch = calloc(1, sizeof(*k->scratch));
	k->rec = malloc(LKG_RECORD_MAX);
	if (!k->scratch || !k->rec)
		goto errout;
	k->l = l;
	k->sup = sup;
	k->im = im;
	k->st = st;
	k->ev = ev;
	k->o = *o;
	loop_timer_init(&k->tick, on_tick, k);
	if (loop_timer_start(l, &k->tick, LKG_TICK_MS, LKG_TICK_MS))
		goto errout;
	supervisor_set_image_gate(sup, image_gate, k);
	images_set_listener(im, on_image_change, k);
	supervisor_set_spec_filter(sup, spec_filter, k);
	return k;

errout:
	free(k->rec);
	free(k->scratch);
	free(k);
	return NULL;
}

void lkg_destroy(struct lkg *k)
{
	if (!k)
		return;
	supervisor_set_image_gate(k->sup, NULL, NULL);
	images_set_listener(k->im, NULL, NULL);
	supervisor_set_spec_filter(k->sup, NULL, NULL);
	loop_timer_stop(k->l, &k->tick);
	free(k->rec);
	free(k->scratch);
	free(k);
}
