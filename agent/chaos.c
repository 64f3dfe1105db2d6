/* agent/chaos.c - kills a random ready replica per interval while keeping min_running, and times recoveries. */
#include "agent/chaos.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/backoff.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/supervisor.h"
#include "hal/clock.h"

#define LOG_TAG "chaos"

struct victim {
	bool pending;
	unsigned slot;
	uint64_t killed_us;
};

struct chaos {
	struct loop *loop;
	struct supervisor *sup;
	struct chaos_config cfg;
	bool running;
	bool observing;
	uint64_t end_us;
	struct loop_timer timer;
	struct prng rng;
	struct chaos_report rep;
	struct victim v[DEPLOY_MAX_REPLICAS];
	uint32_t samples[CHAOS_MAX_SAMPLES];
	unsigned nsamples;
	uint64_t sum_ms;
	struct sup_replica ready[DEPLOY_MAX_REPLICAS];
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void summarize(struct chaos *c)
{
	c->rep.recovered = (uint32_t)c->nsamples;
	if (!c->nsamples) {
		c->rep.mttr_mean_ms = c->rep.mttr_p95_ms = c->rep.mttr_max_ms = 0;
		return;
	}
	uint32_t sorted[CHAOS_MAX_SAMPLES];
	memcpy(sorted, c->samples, c->nsamples * sizeof(sorted[0]));
	qsort(sorted, c->nsamples, sizeof(sorted[0]), cmp_u32);
	c->rep.mttr_mean_ms = (uint32_t)(c->sum_ms / c->nsamples);
	/* Nearest-rank p95. */
	unsigned rank = (95 * c->nsamples + 99) / 100;
	c->rep.mttr_p95_ms = sorted[rank ? rank - 1 : 0];
	c->rep.mttr_max_ms = sorted[c->nsamples - 1];
}

static void on_replica(void *arg, enum sup_event ev, const struct sup_replica *r)
{
	struct chaos *c = arg;
	if (ev != SUP_EV_READY || strcmp(r->deployment, c->cfg.deployment))
		return;
	/* The same slot ready again (restart in place) or any other new replica
	 * replaces the oldest pending kill. */
	struct victim *best = NULL;
	if (r->slot < DEPLOY_MAX_REPLICAS && c->v[r->slot].pending)
		best = &c->v[r->slot];
	for (unsigned i = 0; !best && i < DEPLOY_MAX_REPLICAS; i++)
		if (c->v[i].pending && (!best || c->v[i].killed_us < best->killed_us))
			best = &c->v[i];
	if (!best)
		return;
	best->pending = false;
	uint32_t ms = (uint32_t)((loop_now_us(c->loop) - best->killed_us) / 1000u);
	if (c->nsamples < CHAOS_MAX_SAMPLES)
		c->samples[c->nsamples++] = ms;
	c->sum_ms += ms;
	LOG_INF("event=chaos_recovered deployment=%s replica=%u mttr_ms=%u", r->deployment, r->slot, ms);
	summarize(c);
}

static void on_tick(void *arg)
{
	struct chaos *c = arg;
	uint64_t now = loop_now_us(c->loop);
	if (c->cfg.duration_ms && now >= c->end_us) {
		chaos_stop(c);
		return;
	}
	unsigned n = supervisor_ready_replicas(c->sup, c->cfg.deployment, c->ready, DEPLOY_MAX_REPLICAS);
	/* Replicas killed and not yet back are not running: count only the ready ones. */
	if (n == 0 || n <= c->cfg.min_running) {
		c->rep.skipped++;
		LOG_INF("event=chaos_skip deployment=%s ready=%u min_running=%u", c->cfg.deployment, n,
			c->cfg.min_running);
		return;
	}
	const struct sup_replica *victim = &c->ready[prng_below(&c->rng, n)];
	int rc = supervisor_replica_kill(c->sup, victim->deployment, victim->slot);
	if (rc < 0) {
		c->rep.skipped++;
		LOG_INF("event=chaos_skip deployment=%s replica=%u err=%s", victim->deployment, victim->slot,
			strerror(-rc));
		return;
	}
	c->rep.kills++;
	c->v[victim->slot].pending = true;
	c->v[victim->slot].slot = victim->slot;
	c->v[victim->slot].killed_us = now;
	LOG_INF("event=chaos_kill deployment=%s replica=%u ready_before=%u wall_ms=%" PRId64, victim->deployment,
		victim->slot, n, hal_clock_wall_ms());
}

struct chaos *chaos_create(struct loop *l, struct supervisor *sup)
{
	struct chaos *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = l;
	c->sup = sup;
	loop_timer_init(&c->timer, on_tick, c);
	if (supervisor_observe(sup, on_replica, c) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

void chaos_destroy(struct chaos *c)
{
	if (!c)
		return;
	loop_timer_stop(c->loop, &c->timer);
	free(c);
}

int chaos_start(struct chaos *c, const struct chaos_config *cfg)
{
	if (!cfg->deployment[0] || !cfg->interval_ms)
		return -EINVAL;
	if (c->running)
		chaos_stop(c);
	c->cfg = *cfg;
	memset(&c->rep, 0, sizeof(c->rep));
	memset(c->v, 0, sizeof(c->v));
	c->nsamples = 0;
	c->sum_ms = 0;
	prng_seed(&c->rng, cfg->seed ? cfg->seed : (uint64_t)hal_clock_wall_ms());
	c->end_us = loop_now_us(c->loop) + (uint64_t)cfg->duration_ms * 1000u;
	int rc = loop_timer_start(c->loop, &c->timer, cfg->interval_ms, cfg->interval_ms);
	if (rc < 0)
		return rc;
	c->running = true;
	c->rep.running = true;
	LOG_INF("event=chaos_start deployment=%s interval_ms=%u duration_ms=%u min_running=%u", cfg->deployment,
		cfg->interval_ms, cfg->duration_ms, cfg->min_running);
	return 0;
}

void chaos_stop(struct chaos *c)
{
	if (!c->running)
		return;
	loop_timer_stop(c->loop, &c->timer);
	c->running = false;
	c->rep.running = false;
	summarize(c);
	LOG_INF("event=chaos_done deployment=%s kills=%u recovered=%u skipped=%u mttr_mean_ms=%u mttr_p95_ms=%u "
		"mttr_max_ms=%u failed_requests=%" PRIu64,
		c->cfg.deployment, c->rep.kills, c->rep.recovered, c->rep.skipped, c->rep.mttr_mean_ms,
		c->rep.mttr_p95_ms, c->rep.mttr_max_ms, c->rep.failed_requests);
}

void chaos_report(const struct chaos *c, struct chaos_report *out) { *out = c->rep; }

void chaos_note_failed_request(struct chaos *c, const char *model)
{
	if (c && c->running && !strcmp(model, c->cfg.deployment))
		c->rep.failed_requests++;
}
