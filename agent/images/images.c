/* agent/images/images.c - pulls wanted images one at a time with back-off, reports progress, keeps the disk budget. */
#include "agent/images/images.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/backoff.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/model/imageref.h"
#include "agent/images/regauth.h"
#include "agent/telemetry/events.h"
#include "agent/telemetry/store.h"
#include "hal/clock.h"
#include "hal/engine.h"

#define LOG_TAG "images"
#define IMAGES_TICK_MS 1000u
#define IMAGES_KV_PREFIX "image.pulled:"

struct image_slot {
	bool used;
	char ref[IMAGES_REF_MAX];    /* the engine's pull reference */
	char registry[IMAGEREF_REGISTRY_MAX];
	enum pull_policy policy;
	enum image_state state;
	bool have_copy;              /* the engine holds some copy (policy always: usable while it pulls) */
	bool pull_wanted;            /* always: a pull is due for this want */
	uint32_t attempts;
	struct backoff bo;
	uint64_t retry_at_ms;
	uint64_t pull_started_ms;
	uint64_t last_progress_ms;
	struct hal_pull_progress progress;
	char digest[80];
	char error[192];
};

struct images {
	struct loop *l;
	struct hal_engine *e;
	struct store *st;
	struct events *ev;
	struct images_opts o;
	images_change_fn fn;
	void *fn_arg;
	struct prng rng;
	struct image_slot s[IMAGES_MAX];
	int pulling;                 /* slot of the pull in flight, -1 none */
	int inspecting;              /* slot of the inspect in flight, -1 none */
	bool gc_running;
	uint64_t last_gc_ms;
	char keep[IMAGES_MAX][IMAGES_REF_MAX];
	unsigned nkeep;
	struct images_stats stats;
	struct loop_timer tick;
};

static const char *const state_names[] = {
	[IMAGE_CHECKING] = "checking", [IMAGE_PRESENT] = "present",     [IMAGE_QUEUED] = "queued",
	[IMAGE_PULLING] = "pulling",   [IMAGE_RETRY_WAIT] = "retry_wait", [IMAGE_MISSING] = "missing",
};

const char *images_state_name(enum image_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "unknown";
}

static uint64_t now_ms(void) { return hal_clock_now_us() / 1000u; }

static void set_state(struct images *im, struct image_slot *s, enum image_state st)
{
	if (s->state == st)
		return;
	log_inf("event=image_state image=%s from=%s to=%s", s->ref, images_state_name(s->state), images_state_name(st));
	s->state = st;
	if (im->fn)
		im->fn(im->fn_arg, s->ref, st);
}

static struct image_slot *find(const struct images *im, const char *ref)
{
	for (unsigned i = 0; i < IMAGES_MAX; i++)
		if (im->s[i].used && strcmp(im->s[i].ref, ref) == 0)
			return (struct image_slot *)&im->s[i];
	return NULL;
}

static const struct images_registry *registry_of(const struct images *im, const char *host)
{
	for (unsigned i = 0; i < im->o.nregistries; i++)
		if (strcmp(im->o.registries[i].host, host) == 0)
			return &im->o.registries[i];
	return NULL;
}

static void pump(struct images *im);

/* --- inspect: is it in the store? ------------------------------------------------ */

static void on_inspect(void *arg, const struct hal_engine_result *res)
{
	struct images *im = arg;
	struct image_slot *s = im->inspecting >= 0 ? &im->s[im->inspecting] : NULL;
	im->inspecting = -1;
	if (s && s->used && s->state == IMAGE_CHECKING) {
		if (res->err == 0 && res->nimages == 1) {
			s->have_copy = true;
			for (unsigned k = 0; k < res->images[0].ndigests && !s->digest[0]; k++) {
				const char *at = strchr(res->images[0].digests[k], '@');
				if (at)
					snprintf(s->digest, sizeof(s->digest), "%s", at + 1);
			}
			set_state(im, s, s->pull_wanted ? IMAGE_QUEUED : IMAGE_PRESENT);
		} else if (res->err == -ENOENT) {
			s->have_copy = false;
			set_state(im, s, s->policy == PULL_NEVER ? IMAGE_MISSING : IMAGE_QUEUED);
		}
		/* any other error (engine down): stays CHECKING, asked again at the next tick */
	}
	pump(im);
}

/* --- pulls --------------------------------------------------------------------- */

static void on_progress(void *arg, const struct hal_pull_progress *p)
{
	struct images *im = arg;
	if (im->pulling < 0)
		return;
	struct image_slot *s = &im->s[im->pulling];
	s->progress = *p;
	uint64_t now = now_ms();
	if (now - s->last_progress_ms < im->o.progress_event_ms)
		return;
	s->last_progress_ms = now;
	events_emit(im->ev, "image_pull_progress",
		    "{\"image\":\"%s\",\"bytes_done\":%llu,\"bytes_total\":%llu,\"layers_done\":%u,\"layers\":%u}",
		    s->ref, (unsigned long long)p->bytes_done, (unsigned long long)p->bytes_total, p->layers_done,
		    p->layers_seen);
}

static const char *pull_error_class(int err)
{
	switch (err) {
	case -ENOENT: return "not in the registry";
	case -EACCES: return "refused by the registry";
	case -EHOSTUNREACH: return "registry unreachable";
	case -ETIMEDOUT: return "pull stalled";
	case -EHOSTDOWN: return "engine unreachable";
	case -ECANCELED: return "cancelled";
	default: return "pull failed";
	}
}

static void mark_pulled(struct images *im, const struct image_slot *s)
{
	if (!im->st)
		return;
	char key[sizeof(IMAGES_KV_PREFIX) + IMAGES_REF_MAX], val[32];
	snprintf(key, sizeof(key), IMAGES_KV_PREFIX "%s", s->ref);
	snprintf(val, sizeof(val), "%lld", (long long)hal_clock_wall_ms());
	if (store_kv_set(im->st, key, val))
		log_wrn("event=image_mark_failed image=%s", s->ref);
}

static void on_pulled(void *arg, const struct hal_engine_result *res)
{
	struct images *im = arg;
	struct image_slot *s = im->pulling >= 0 ? &im->s[im->pulling] : NULL;
	im->pulling = -1;
	if (!s || !s->used)
		goto out;
	uint64_t took = now_ms() - s->pull_started_ms;
	if (res->err == 0) {
		im->stats.pulls_ok++;
		s->attempts = 0;
		s->error[0] = '\0';
		s->have_copy = true;
		s->pull_wanted = false;
		backoff_reset(&s->bo);
		mark_pulled(im, s);
		events_emit(im->ev, "image_pulled", "{\"image\":\"%s\",\"bytes\":%llu,\"layers\":%u,\"took_ms\":%llu}",
			    s->ref, (unsigned long long)s->progress.bytes_total, s->progress.layers_seen,
			    (unsigned long long)took);
		s->digest[0] = '\0';
		set_state(im, s, IMAGE_CHECKING); /* learn its digest, then PRESENT */
		im->last_gc_ms = 0;               /* a new image: check the budget soon */
		goto out;
	}
	im->stats.pulls_failed++;
	s->attempts++;
	/* what kind of failure, then the end of the engine's words (where the cause is) */
	const char *msg = res->message && *res->message ? res->message : strerror(-res->err);
	size_t mlen = strlen(msg);
	snprintf(s->error, sizeof(s->error), "%s: %s", pull_error_class(res->err),
		 mlen > 120 ? msg + mlen - 120 : msg);
	uint32_t delay = backoff_next_ms(&s->bo);
	s->retry_at_ms = now_ms() + delay;
	char reason[sizeof(s->error) * 2];
	events_json_escape(s->error, reason, sizeof(reason));
	events_emit(im->ev, "image_pull_failed",
		    "{\"image\":\"%s\",\"err\":%d,\"reason\":\"%s\",\"attempt\":%u,\"retry_in_ms\":%u,\"bytes_done\":%llu}",
		    s->ref, res->err, reason, s->attempts, delay, (unsigned long long)s->progress.bytes_done);
	/* policy always with a copy on disk: the copy keeps serving while it retries */
	set_state(im, s, IMAGE_RETRY_WAIT);
out:
	pump(im);
}

static void start_pull(struct images *im, struct image_slot *s)
{
	char auth[1024] = "";
	const struct images_registry *reg = s->registry[0] ? registry_of(im, s->registry) : NULL;
	if (reg && reg->username[0] &&
	    regauth_header(reg->username, reg->password, reg->host, auth, sizeof(auth)) != 0)
		auth[0] = '\0';
	memset(&s->progress, 0, sizeof(s->progress));
	int rc = hal_engine_pull(im->e, s->ref, auth[0] ? auth : NULL, im->o.stall_s, on_progress, on_pulled, im);
	explicit_bzero(auth, sizeof(auth));
	if (rc) {
		log_wrn("event=image_pull_not_started image=%s err=%d", s->ref, rc);
		return; /* tried again at the next tick */
	}
	im->pulling = (int)(s - im->s);
	im->stats.pulls_started++;
	s->pull_started_ms = now_ms();
	s->last_progress_ms = s->pull_started_ms;
	events_emit(im->ev, "image_pull_started", "{\"image\":\"%s\",\"attempt\":%u}", s->ref, s->attempts + 1);
	set_state(im, s, IMAGE_PULLING);
}

/* --- the budget ------------------------------------------------------------------ */

static bool kept(const struct images *im, const struct hal_image_info *img)
{
	for (unsigned k = 0; k < im->nkeep; k++) {
		for (unsigned t = 0; t < img->ntags; t++)
			if (strcmp(img->tags[t], im->keep[k]) == 0)
				return true;
		for (unsigned t = 0; t < img->ndigests; t++)
			if (strcmp(img->digests[t], im->keep[k]) == 0)
				return true;
	}
	for (unsigned i = 0; i < IMAGES_MAX; i++) {
		const struct image_slot *s = &im->s[i];
		if (!s->used)
			continue;
		for (unsigned t = 0; t < img->ntags; t++)
			if (strcmp(img->tags[t], s->ref) == 0)
				return true; /* wanted now */
	}
	return false;
}

static bool pulled_by_berth(const struct images *im, const struct hal_image_info *img)
{
	char key[sizeof(IMAGES_KV_PREFIX) + 160], val[32];
	for (unsigned t = 0; t < img->ntags + img->ndigests; t++) {
		const char *ref = t < img->ntags ? img->tags[t] : img->digests[t - img->ntags];
		snprintf(key, sizeof(key), IMAGES_KV_PREFIX "%s", ref);
		if (im->st && store_kv_get(im->st, key, val, sizeof(val)) == 0)
			return true;
	}
	return false;
}

static void gc_remove_next(struct images *im, const struct hal_engine_result *res);

static void on_removed(void *arg, const struct hal_engine_result *res)
{
	struct images *im = arg;
	if (res->err && res->err != -ENOENT)
		log_wrn("event=image_remove_failed err=%d msg=\"%s\"", res->err, res->message);
	im->gc_running = false;
	/* list again: what is left decides whether another removal is due */
	if (res->err == 0)
		images_gc_now(im);
}

/* Picks the oldest removable image while over budget and removes it. */
static void gc_remove_next(struct images *im, const struct hal_engine_result *res)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < res->nimages; i++)
		total += res->images[i].size_bytes;
	im->stats.disk_bytes = total;
	im->stats.over_budget_bytes = 0;
	if (!im->o.budget_bytes || total <= im->o.budget_bytes)
		return;
	const struct hal_image_info *victim = NULL;
	for (unsigned i = 0; i < res->nimages; i++) {
		const struct hal_image_info *img = &res->images[i];
		if (kept(im, img) || (!im->o.remove_foreign && !pulled_by_berth(im, img)))
			continue;
		if (!victim || img->created_s < victim->created_s)
			victim = img;
	}
	if (!victim) {
		im->stats.over_budget_bytes = total - im->o.budget_bytes;
		log_wrn("event=image_budget_exceeded disk_bytes=%llu budget_bytes=%llu reason=nothing_removable",
			(unsigned long long)total, (unsigned long long)im->o.budget_bytes);
		return;
	}
	/* by id, so every tag of it goes (they are all unused) */
	if (hal_engine_image_remove(im->e, victim->id, false, on_removed, im) == 0) {
		im->gc_running = true;
		im->stats.removed++;
		im->stats.removed_bytes += victim->size_bytes;
		events_emit(im->ev, "image_removed",
			    "{\"image\":\"%s\",\"id\":\"%s\",\"bytes\":%llu,\"reason\":\"budget\",\"disk_bytes\":%llu,"
			    "\"budget_bytes\":%llu}",
			    victim->ntags ? victim->tags[0] : (victim->ndigests ? victim->digests[0] : victim->id),
			    victim->id, (unsigned long long)victim->size_bytes, (unsigned long long)total,
			    (unsigned long long)im->o.budget_bytes);
	}
}

static void on_gc_list(void *arg, const struct hal_engine_result *res)
{
	struct images *im = arg;
	im->gc_running = false;
	if (res->err && res->err != -EOVERFLOW)
		return;
	gc_remove_next(im, res);
}

void images_gc_now(struct images *im)
{
	if (!im || im->gc_running)
		return;
	im->last_gc_ms = now_ms();
	if (hal_engine_image_list(im->e, on_gc_list, im) == 0)
		im->gc_running = true;
}

/* --- the pump: one inspect and one pull at a time --------------------------------- */

static void pump(struct images *im)
{
	if (!im->e)
		return; /* no engine: nothing is pulled, inspected or removed */
	uint64_t now = now_ms();
	for (unsigned i = 0; i < IMAGES_MAX && im->inspecting < 0; i++) {
		struct image_slot *s = &im->s[i];
		if (s->used && s->state == IMAGE_CHECKING &&
		    hal_engine_image_inspect(im->e, s->ref, on_inspect, im) == 0)
			im->inspecting = (int)i;
	}
	for (unsigned i = 0; i < IMAGES_MAX; i++) {
		struct image_slot *s = &im->s[i];
		if (s->used && s->state == IMAGE_RETRY_WAIT && now >= s->retry_at_ms)
			set_state(im, s, IMAGE_QUEUED);
	}
	if (im->pulling < 0) {
		/* the longest-waiting first: slots are reused, so pick by fewest attempts then index */
		struct image_slot *next = NULL;
		for (unsigned i = 0; i < IMAGES_MAX; i++) {
			struct image_slot *s = &im->s[i];
			if (s->used && s->state == IMAGE_QUEUED && (!next || s->attempts < next->attempts))
				next = s;
		}
		if (next)
			start_pull(im, next);
	}
	if (im->o.gc_interval_s && now - im->last_gc_ms >= (uint64_t)im->o.gc_interval_s * 1000u && im->pulling < 0)
		images_gc_now(im);
}

static void on_tick(void *arg) { pump(arg); }

/* --- the API ------------------------------------------------------------------------ */

struct images *images_create(struct loop *l, struct hal_engine *e, struct store *st, struct events *ev,
			     const struct images_opts *o)
{
	if (!l || !o)
		return NULL;
	struct images *im = calloc(1, sizeof(*im));
	if (!im)
		return NULL;
	im->l = l;
	im->e = e;
	im->st = st;
	im->ev = ev;
	im->o = *o;
	if (!im->o.stall_s)
		im->o.stall_s = 60;
	if (!im->o.retry_initial_ms)
		im->o.retry_initial_ms = 1000;
	if (!im->o.retry_max_ms)
		im->o.retry_max_ms = 300000;
	if (!im->o.progress_event_ms)
		im->o.progress_event_ms = 5000;
	im->pulling = -1;
	im->inspecting = -1;
	prng_seed(&im->rng, hal_clock_now_us() ^ (uint64_t)(uintptr_t)im);
	loop_timer_init(&im->tick, on_tick, im);
	if (loop_timer_start(l, &im->tick, IMAGES_TICK_MS, IMAGES_TICK_MS)) {
		free(im);
		return NULL;
	}
	return im;
}

void images_destroy(struct images *im)
{
	if (!im)
		return;
	loop_timer_stop(im->l, &im->tick);
	if (im->pulling >= 0)
		hal_engine_pull_cancel(im->e);
	free(im);
}

void images_set_listener(struct images *im, images_change_fn fn, void *arg)
{
	im->fn = fn;
	im->fn_arg = arg;
}

int images_want(struct images *im, const char *ref, enum pull_policy policy, char *err, size_t err_len)
{
	struct imageref r;
	char pull[IMAGES_REF_MAX];
	if (imageref_parse(ref, &r, err, err_len) || imageref_pull_ref(&r, pull, sizeof(pull)))
		return -EINVAL;
	if (r.registry[0] && !imageref_is_local(&r) && !registry_of(im, r.registry)) {
		snprintf(err, err_len, "registry %s is not configured (images.registries)", r.registry);
		return -EACCES;
	}
	struct image_slot *s = find(im, pull);
	if (!s) {
		for (unsigned i = 0; i < IMAGES_MAX && !s; i++)
			if (!im->s[i].used)
				s = &im->s[i];
		if (!s) {
			snprintf(err, err_len, "more than %d images tracked", IMAGES_MAX);
			return -ENOSPC;
		}
		memset(s, 0, sizeof(*s));
		s->used = true;
		snprintf(s->ref, sizeof(s->ref), "%s", pull);
		snprintf(s->registry, sizeof(s->registry), "%s", r.registry);
		s->policy = imageref_is_local(&r) ? PULL_NEVER : policy;
		s->pull_wanted = s->policy == PULL_ALWAYS;
		s->state = IMAGE_CHECKING;
		backoff_init(&s->bo, im->o.retry_initial_ms, im->o.retry_max_ms, 0, 100, false, &im->rng);
		pump(im);
	}
	return (int)s->state;
}

void images_keep(struct images *im, const char *const *refs, unsigned n)
{
	im->nkeep = 0;
	for (unsigned i = 0; i < n && im->nkeep < IMAGES_MAX; i++) {
		struct imageref r;
		char err[8];
		if (refs[i] && imageref_parse(refs[i], &r, err, sizeof(err)) == 0 &&
		    imageref_pull_ref(&r, im->keep[im->nkeep], sizeof(im->keep[0])) == 0)
			im->nkeep++;
	}
	/* slots no longer kept nor pulling are forgotten, so the table does not fill */
	for (unsigned i = 0; i < IMAGES_MAX; i++) {
		struct image_slot *s = &im->s[i];
		if (!s->used || (int)i == im->pulling || (int)i == im->inspecting)
			continue;
		bool still = false;
		for (unsigned k = 0; k < im->nkeep && !still; k++)
			still = strcmp(im->keep[k], s->ref) == 0;
		if (!still)
			s->used = false;
	}
}

int images_status(const struct images *im, const char *ref, struct image_status *out)
{
	struct imageref r;
	char pull[IMAGES_REF_MAX], err[8];
	if (imageref_parse(ref, &r, err, sizeof(err)) || imageref_pull_ref(&r, pull, sizeof(pull)))
		return -EINVAL;
	const struct image_slot *s = find(im, pull);
	if (!s)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	snprintf(out->ref, sizeof(out->ref), "%s", s->ref);
	out->state = s->state;
	snprintf(out->digest, sizeof(out->digest), "%s", s->digest);
	out->bytes_done = s->progress.bytes_done;
	out->bytes_total = s->progress.bytes_total;
	out->layers_done = s->progress.layers_done;
	out->layers_seen = s->progress.layers_seen;
	out->attempts = s->attempts;
	uint64_t now = now_ms();
	out->retry_in_ms = s->state == IMAGE_RETRY_WAIT && s->retry_at_ms > now ? s->retry_at_ms - now : 0;
	snprintf(out->last_error, sizeof(out->last_error), "%s", s->error);
	return 0;
}

void images_get_stats(const struct images *im, struct images_stats *out) { *out = im->stats; }

int images_report(const struct images *im, char *buf, size_t len)
{
	size_t off = 0;
	int n = snprintf(buf, len, "{\"images\":[");
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	off = (size_t)n;
	bool first = true;
	for (unsigned i = 0; i < IMAGES_MAX; i++) {
		const struct image_slot *s = &im->s[i];
		if (!s->used)
			continue;
		struct image_status st;
		if (images_status(im, s->ref, &st))
			continue;
		char e[sizeof(st.last_error) * 2];
		events_json_escape(st.last_error, e, sizeof(e));
		n = snprintf(buf + off, len - off,
			     "%s{\"image\":\"%s\",\"state\":\"%s\",\"digest\":\"%s\",\"bytes_done\":%llu,"
			     "\"bytes_total\":%llu,\"layers_done\":%u,\"layers\":%u,\"attempts\":%u,\"retry_in_ms\":%llu,"
			     "\"last_error\":\"%s\"}",
			     first ? "" : ",", st.ref, images_state_name(st.state), st.digest,
			     (unsigned long long)st.bytes_done, (unsigned long long)st.bytes_total, st.layers_done,
			     st.layers_seen, st.attempts, (unsigned long long)st.retry_in_ms, e);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOSPC;
		off += (size_t)n;
		first = false;
	}
	n = snprintf(buf + off, len - off, "],\"disk_bytes\":%llu,\"budget_bytes\":%llu,\"removed\":%llu}",
		     (unsigned long long)im->stats.disk_bytes, (unsigned long long)im->o.budget_bytes,
		     (unsigned long long)im->stats.removed);
	if (n < 0 || (size_t)n >= len - off)
		return -ENOSPC;
	return (int)(off + (size_t)n);
}
