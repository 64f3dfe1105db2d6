/* agent/console/republish.c - decides when the retained reported state goes out, so a steady load does not republish it each second. */
#include "agent/console/republish.h"

#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"

#define LOG_TAG "republish"

#define DEFAULT_CHECK_MS 1000u

enum why { WHY_CONNECTED, WHY_COMMAND, WHY_CHECK };

struct republish {
	struct loop *loop;
	struct republish_opts o;
	char *buf;                   /* o.max_bytes */
	bool published;              /* something went out on this or an earlier connection */
	uint64_t shape_hash;         /* of the last published document: structure only */
	uint64_t full_hash;          /* ... and with its figures */
	uint64_t last_ms;            /* when it was published (monotonic) */
	struct loop_timer timer;
	struct republish_stats st;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* Renders into r->buf; its hash without the leading timestamp. */
static int render(struct republish *r, bool figures, uint64_t *hash)
{
	int n = r->o.render(r->o.arg, r->buf, r->o.max_bytes, figures);
	if (n < 0) {
		if (!r->st.too_large++)
			log_err("event=report_too_large max=%zu", r->o.max_bytes);
		return n;
	}
	const char *body = strstr(r->buf, "\"desired_version\"");
	*hash = fnv1a(body ? body : r->buf);
	return n;
}

static void check(struct republish *r, enum why why)
{
	if (!r->o.can_publish(r->o.arg))
		return;
	uint64_t now = loop_now_ms(r->loop);
	uint64_t shape, full;
	if (render(r, false, &shape) < 0)
		return;
	bool shape_changed = !r->published || shape != r->shape_hash;
	/* Half a period of slack: the timer may fire a little late or early. */
	uint64_t since = now - r->last_ms + r->o.check_ms / 2;
	if (why == WHY_CHECK && r->published && since < r->o.check_ms)
		return; /* a command's publish just went out: at most one a check period */
	if (why == WHY_CHECK && r->published && !shape_changed && since < r->o.refresh_ms)
		return; /* figures alone wait for the refresh */
	int n = render(r, true, &full);
	if (n < 0)
		return;
	if (why != WHY_CONNECTED && !shape_changed && full == r->full_hash)
		return;
	if (r->o.publish(r->o.arg, r->buf, (size_t)n) != 0)
		return; /* the next check tries again */
	r->published = true;
	r->shape_hash = shape;
	r->full_hash = full;
	r->last_ms = now;
	r->st.published++;
	if (why == WHY_CHECK) {
		if (shape_changed)
			r->st.structural++;
		else
			r->st.refreshes++;
	}
}

static void on_timer(void *arg) { check(arg, WHY_CHECK); }

struct republish *republish_create(struct loop *l, const struct republish_opts *o)
{
	struct republish *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->loop = l;
	r->o = *o;
	if (!r->o.check_ms)
		r->o.check_ms = DEFAULT_CHECK_MS;
	if (r->o.refresh_ms < r->o.check_ms)
		r->o.refresh_ms = r->o.check_ms;
	r->buf = malloc(o->max_bytes);
	loop_timer_init(&r->timer, on_timer, r);
	if (!r->buf || loop_timer_start(l, &r->timer, r->o.check_ms, r->o.check_ms) < 0) {
		republish_destroy(r);
		return NULL;
	}
	return r;
}

void republish_destroy(struct republish *r)
{
	if (!r)
		return;
	loop_timer_stop(r->loop, &r->timer);
	free(r->buf);
	free(r);
}

void republish_connected(struct republish *r) { check(r, WHY_CONNECTED); }

void republish_changed(struct republish *r) { check(r, WHY_COMMAND); }

void republish_get_stats(const struct republish *r, struct republish_stats *out) { *out = r->st; }
