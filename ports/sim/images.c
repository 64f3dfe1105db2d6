/* ports/sim/images.c - the simulated engine's image store and one registry: pulls in virtual time, with faults. */
#include "hal/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/base/loop.h"
#include "hal/clock.h"
#include "ports/sim/sim.h"
#include "ports/sim/world.h"

#define SIM_IMAGES 32
#define SIM_REGISTRY 32
#define SIM_PULLERS 4
#define SIM_REF 160
#define SIM_PULL_TICK_MS 1000u

struct sim_image {
	bool used;
	char id[80];
	char tag[2 * SIM_REF + 80];    /* "name:tag", "" when only pinned */
	char pinned[2 * SIM_REF + 80]; /* "name@sha256:...", "" for a local import */
	uint64_t size_bytes;
	int64_t created_s;
};

struct sim_blob {
	bool used;
	char name[SIM_REF];
	char tag[64];
	char digest[80];
	uint64_t size_bytes;
	uint64_t fetched;       /* kept across failed pulls: a retry resumes */
};

struct sim_puller {
	struct hal_engine *e;
	struct loop *l;
	bool active;
	int blob;
	int fail_err;           /* set: fail at the next tick (a cancel, a deferred refusal) */
	hal_pull_progress_fn progress;
	hal_engine_cb cb;
	void *arg;
	struct hal_image_info info;
	struct loop_timer t;
};

static struct {
	bool enforce;
	bool registry_down;
	uint64_t bandwidth;
	unsigned fail_n;
	int fail_err;
	unsigned pulls;
	unsigned next_id;
	struct sim_image img[SIM_IMAGES];
	struct sim_blob reg[SIM_REGISTRY];
	struct sim_puller p[SIM_PULLERS];
	struct hal_image_info out[SIM_IMAGES];
} I = { .bandwidth = 10u * 1000u * 1000u };

/* "name[:tag]" -> name and tag ("latest" when absent); "name@digest" -> name and digest. */
static void split_ref(const char *ref, char *name, size_t name_len, char *tag, size_t tag_len, bool *pinned)
{
	snprintf(name, name_len, "%s", ref);
	*pinned = false;
	char *at = strchr(name, '@');
	char *slash = strrchr(name, '/');
	char *colon = strrchr(name, ':');
	if (at) {
		*at = '\0';
		snprintf(tag, tag_len, "%s", at + 1);
		*pinned = true;
	} else if (colon && (!slash || colon > slash)) {
		*colon = '\0';
		snprintf(tag, tag_len, "%s", colon + 1);
	} else {
		snprintf(tag, tag_len, "latest");
	}
}

static int image_find(const char *ref)
{
	char name[SIM_REF], tag[SIM_REF], norm[SIM_REF * 2 + 2];
	bool pinned;
	split_ref(ref, name, sizeof(name), tag, sizeof(tag), &pinned);
	snprintf(norm, sizeof(norm), "%s%c%s", name, pinned ? '@' : ':', tag);
	for (int i = 0; i < SIM_IMAGES; i++) {
		const struct sim_image *m = &I.img[i];
		if (m->used && (strcmp(m->id, ref) == 0 || strcmp(m->tag, norm) == 0 || strcmp(m->pinned, norm) == 0))
			return i;
	}
	return -1;
}

static int blob_find(const char *ref)
{
	char name[SIM_REF], tag[SIM_REF];
	bool pinned;
	split_ref(ref, name, sizeof(name), tag, sizeof(tag), &pinned);
	for (int i = 0; i < SIM_REGISTRY; i++) {
		const struct sim_blob *b = &I.reg[i];
		if (b->used && strcmp(b->name, name) == 0 && strcmp(pinned ? b->digest : b->tag, tag) == 0)
			return i;
	}
	return -1;
}

static int image_slot(void)
{
	for (int i = 0; i < SIM_IMAGES; i++)
		if (!I.img[i].used)
			return i;
	return -1;
}

static void info_of(const struct sim_image *m, struct hal_image_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", m->id);
	if (m->tag[0])
		snprintf(out->tags[out->ntags++], sizeof(out->tags[0]), "%.159s", m->tag);
	if (m->pinned[0])
		snprintf(out->digests[out->ndigests++], sizeof(out->digests[0]), "%.159s", m->pinned);
	out->size_bytes = m->size_bytes;
	out->created_s = m->created_s;
}

/* A pulled blob becomes (or refreshes) an image: its tag moves to it, as an engine's does. */
static void image_from_blob(const struct sim_blob *b)
{
	char tag[sizeof(I.img[0].tag)], pinned[sizeof(I.img[0].pinned)];
	snprintf(tag, sizeof(tag), "%s:%s", b->name, b->tag);
	snprintf(pinned, sizeof(pinned), "%s@%s", b->name, b->digest);
	int i = image_find(pinned);
	int old = image_find(tag);
	if (old >= 0 && old != i)
		I.img[old].tag[0] = '\0';
	if (i < 0 && (i = image_slot()) < 0)
		return;
	struct sim_image *m = &I.img[i];
	m->used = true;
	snprintf(m->id, sizeof(m->id), "%s", b->digest);
	snprintf(m->tag, sizeof(m->tag), "%s", tag);
	snprintf(m->pinned, sizeof(m->pinned), "%s", pinned);
	m->size_bytes = b->size_bytes;
	m->created_s = (int64_t)(hal_clock_now_us() / 1000000u);
}

/* The timer heap is sized by Kconfig; running out is a sim set-up error. */
static int arm(struct loop *l, struct loop_timer *t, uint64_t ms)
{
	int rc = loop_timer_start(l, t, ms, 0);
	if (rc)
		fprintf(stderr, "sim: loop timer heap full\n");
	return rc;
}

static struct sim_puller *puller_of(const struct hal_engine *e)
{
	for (int i = 0; i < SIM_PULLERS; i++)
		if (I.p[i].e == e)
			return &I.p[i];
	return NULL;
}

static void pull_end(struct sim_puller *p, int err)
{
	static const struct { int err; const char *text; } words[] = {
		{ -ENOENT, "manifest unknown" },       { -EHOSTUNREACH, "registry unreachable" },
		{ -EACCES, "unauthorized" },           { -ECANCELED, "cancelled" },
		{ -EHOSTDOWN, "engine unavailable" },
	};
	struct hal_engine_result res = { .err = err, .message = err ? "pull failed" : "" };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (words[i].err == err)
			res.message = words[i].text;
	p->active = false;
	p->cb(p->arg, &res);
}

static void on_pull_tick(void *arg)
{
	struct sim_puller *p = arg;
	if (p->fail_err) {
		pull_end(p, p->fail_err);
		return;
	}
	if (sim_engine_down()) {
		pull_end(p, -EHOSTDOWN);
		return;
	}
	if (I.registry_down) {
		pull_end(p, -EHOSTUNREACH);
		return;
	}
	struct sim_blob *b = &I.reg[p->blob];
	uint64_t step = I.bandwidth * SIM_PULL_TICK_MS / 1000u;
	b->fetched = b->size_bytes - b->fetched > step ? b->fetched + step : b->size_bytes;
	if (p->progress) {
		struct hal_pull_progress pr = { .layers_seen = 1, .layers_done = b->fetched == b->size_bytes,
						.bytes_done = b->fetched, .bytes_total = b->size_bytes };
		p->progress(p->arg, &pr);
	}
	if (b->fetched < b->size_bytes) {
		uint64_t left = b->size_bytes - b->fetched;
		uint64_t ms = left >= step ? SIM_PULL_TICK_MS : left * 1000u / I.bandwidth + 1u;
		if (arm(p->l, &p->t, ms) == 0)
			return;
		pull_end(p, -ENOMEM);
		return;
	}
	image_from_blob(b);
	b->fetched = 0; /* a later pull of the same blob downloads again (the store holds it) */
	pull_end(p, 0);
}

int hal_engine_pull(struct hal_engine *e, const char *ref, const char *registry_auth, unsigned stall_s,
		    hal_pull_progress_fn progress, hal_engine_cb cb, void *arg)
{
	(void)registry_auth;
	struct sim_puller *p = puller_of(e);
	if (!e || !p || !cb || !ref || !*ref || !stall_s)
		return -EINVAL;
	if (p->active)
		return -EBUSY;
	p->active = true;
	p->progress = progress;
	p->cb = cb;
	p->arg = arg;
	p->fail_err = 0;
	I.pulls++;
	p->blob = blob_find(ref);
	if (I.fail_n) {
		I.fail_n--;
		p->fail_err = I.fail_err;
	} else if (p->blob < 0) {
		p->fail_err = -ENOENT;
	}
	/* the first tick comes after the engine's latency; refusals arrive then too */
	if (arm(p->l, &p->t, p->fail_err || I.registry_down ? 1u : SIM_PULL_TICK_MS)) {
		p->active = false;
		return -ENOMEM;
	}
	return 0;
}

void hal_engine_pull_cancel(struct hal_engine *e)
{
	struct sim_puller *p = puller_of(e);
	if (!p || !p->active)
		return;
	p->fail_err = -ECANCELED;
	(void)arm(p->l, &p->t, 0);
}

/* Image calls answer at once from the loop, through the puller's timer-free path:
 * a one-shot timer per call would need a call table; the store is small and
 * the answers are immediate, so they run on a zero-delay timer of their own. */
struct sim_icall {
	bool busy;
	hal_engine_cb cb;
	void *arg;
	int err;
	unsigned n;
	struct loop_timer t;
};
static struct sim_icall icalls[8];

static void on_icall(void *arg)
{
	struct sim_icall *c = arg;
	struct hal_engine_result res = { .err = c->err, .message = c->err == -ENOENT ? "no such image"
								  : c->err == -EBUSY ? "image is in use by a container"
										     : "",
					 .images = I.out, .nimages = c->n };
	c->busy = false;
	c->cb(c->arg, &res);
}

static int icall(struct hal_engine *e, hal_engine_cb cb, void *arg, int err, unsigned n)
{
	if (!e || !cb)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(icalls) / sizeof(icalls[0]); i++) {
		struct sim_icall *c = &icalls[i];
		if (c->busy)
			continue;
		c->busy = true;
		c->cb = cb;
		c->arg = arg;
		c->err = sim_engine_down() ? -EHOSTDOWN : err;
		c->n = c->err ? 0 : n;
		loop_timer_init(&c->t, on_icall, c);
		int rc = arm(sim_engine_loop(e), &c->t, 1);
		c->busy = rc == 0;
		return rc;
	}
	return -EBUSY;
}

int hal_engine_image_inspect(struct hal_engine *e, const char *ref, hal_engine_cb cb, void *arg)
{
	if (!ref || !*ref)
		return -EINVAL;
	int i = image_find(ref);
	if (i >= 0)
		info_of(&I.img[i], &I.out[0]);
	return icall(e, cb, arg, i >= 0 ? 0 : -ENOENT, 1);
}

int hal_engine_image_list(struct hal_engine *e, hal_engine_cb cb, void *arg)
{
	unsigned n = 0;
	for (int i = 0; i < SIM_IMAGES; i++)
		if (I.img[i].used)
			info_of(&I.img[i], &I.out[n++]);
	return icall(e, cb, arg, 0, n);
}

static bool image_in_use(const struct sim_image *m)
{
	for (unsigned k = 0; k < sim_ctr_count(); k++) {
		struct hal_ctr_info ci;
		if (sim_ctr_get(sim_ctr_id_at(k), &ci) == 0 && ci.image[0] &&
		    (strcmp(ci.image, m->tag) == 0 || strcmp(ci.image, m->pinned) == 0 || strcmp(ci.image, m->id) == 0))
			return true;
	}
	return false;
}

int hal_engine_image_remove(struct hal_engine *e, const char *ref, bool force, hal_engine_cb cb, void *arg)
{
	if (!ref || !*ref)
		return -EINVAL;
	int i = image_find(ref);
	int err = i < 0 ? -ENOENT : (!force && image_in_use(&I.img[i])) ? -EBUSY : 0;
	if (!err && !sim_engine_down())
		memset(&I.img[i], 0, sizeof(I.img[i]));
	return icall(e, cb, arg, err, 0);
}

/* --- world hooks and control API ----------------------------------------------- */

bool sim_images_present(const char *ref) { return !I.enforce || image_find(ref) >= 0; }

void sim_images_attach(struct hal_engine *e)
{
	for (int i = 0; i < SIM_PULLERS; i++) {
		struct sim_puller *p = &I.p[i];
		if (p->e)
			continue;
		memset(p, 0, sizeof(*p));
		p->e = e;
		p->l = sim_engine_loop(e);
		loop_timer_init(&p->t, on_pull_tick, p);
		return;
	}
}

void sim_images_detach(struct hal_engine *e)
{
	struct sim_puller *p = puller_of(e);
	if (!p)
		return;
	loop_timer_stop(p->l, &p->t);
	p->e = NULL;
	p->active = false;
}

void sim_images_reset(void)
{
	for (int i = 0; i < SIM_PULLERS; i++)
		if (I.p[i].e)
			loop_timer_stop(I.p[i].l, &I.p[i].t);
	memset(I.img, 0, sizeof(I.img));
	memset(I.reg, 0, sizeof(I.reg));
	for (size_t i = 0; i < sizeof(icalls) / sizeof(icalls[0]); i++)
		icalls[i].busy = false;
	I.enforce = false;
	I.registry_down = false;
	I.bandwidth = 10u * 1000u * 1000u;
	I.fail_n = 0;
	I.pulls = 0;
	for (int i = 0; i < SIM_PULLERS; i++)
		I.p[i].active = false;
}

void sim_images_enforce(bool on) { I.enforce = on; }
void sim_registry_set_available(bool up) { I.registry_down = !up; }
void sim_registry_set_bandwidth(uint64_t bytes_per_s) { I.bandwidth = bytes_per_s ? bytes_per_s : 1; }
unsigned sim_pulls_started(void) { return I.pulls; }

void sim_registry_fail_pulls(unsigned n, int err)
{
	I.fail_n = n;
	I.fail_err = err;
}

int sim_registry_add(const char *ref, const char *digest, uint64_t size_bytes)
{
	if (!ref || !digest || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71)
		return -EINVAL;
	for (int i = 0; i < SIM_REGISTRY; i++) {
		struct sim_blob *b = &I.reg[i];
		if (b->used)
			continue;
		bool pinned;
		split_ref(ref, b->name, sizeof(b->name), b->tag, sizeof(b->tag), &pinned);
		snprintf(b->digest, sizeof(b->digest), "%s", digest);
		b->size_bytes = size_bytes ? size_bytes : 1;
		b->fetched = 0;
		b->used = true;
		return 0;
	}
	return -ENOSPC;
}

int sim_image_add(const char *ref, uint64_t size_bytes, int64_t created_s)
{
	int i = image_slot();
	if (!ref || i < 0)
		return -ENOSPC;
	char name[SIM_REF], tag[SIM_REF];
	bool pinned;
	split_ref(ref, name, sizeof(name), tag, sizeof(tag), &pinned);
	struct sim_image *m = &I.img[i];
	m->used = true;
	snprintf(m->id, sizeof(m->id), "sha256:%064x", ++I.next_id);
	snprintf(m->tag, sizeof(m->tag), "%s:%.64s", name, tag);
	m->size_bytes = size_bytes;
	m->created_s = created_s;
	return 0;
}

bool sim_image_exists(const char *ref) { return image_find(ref) >= 0; }

unsigned sim_image_count(void)
{
	unsigned n = 0;
	for (int i = 0; i < SIM_IMAGES; i++)
		n += I.img[i].used;
	return n;
}
