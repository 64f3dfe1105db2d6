/* agent/supervise/chaos.c - kills a random ready replica per interval while keeping min_running, and times recoveries. */
#include "agent/supervise/chaos.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/backoff.h"
#include "agent/telemetry/events.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/supervise/supervisor.h"
#include "hal/clock.h"

#define LOG_TAG "chaos"

struct victim {
	bool pending;
	uint64_t killed_us;
};

enum chaos_phase { CHAOS_IDLE = 0, CHAOS_KILLING, CHAOS_RECOVERING };

struct chaos {
	struct loop *loop;
	struct supervisor *sup;
	struct events *events;
	struct chaos_config cfg;
	enum chaos_phase phase;
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
	uint32_t pending = 0;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		pending += c->v[i].pending;
	c->rep.pending = pending;
	if (!c->rep.recovered) {
		c->rep.mttr_mean_ms = c->rep.mttr_p95_ms = c->rep.mttr_max_ms = 0;
		return;
	}
	uint32_t sorted[CHAOS_MAX_SAMPLES];
	memcpy(sorted, c->samples, c->nsamples * sizeof(sorted[0]));
	qsort(sorted, c->nsamples, sizeof(sorted[0]), cmp_u32);
	c->rep.mttr_mean_ms = (uint32_t)(c->sum_ms / c->rep.recovered);
	/* Nearest-rank p95 (of the kept samples). */
	unsigned rank = (95 * c->nsamples + 99) / 100;
	c->rep.mttr_p95_ms = sorted[rank ? rank - 1 : 0];
	if (sorted[c->nsamples - 1] > c->rep.mttr_max_ms)
		c->rep.mttr_max_ms = sorted[c->nsamples - 1];
}

/* Ends the active run: reports it in the log and as an event. */
static void finish(struct chaos *c, const char *why)
{
	loop_timer_stop(c->loop, &c->timer);
	c->phase = CHAOS_IDLE;
	c->rep.running = false;
	summarize(c);
	log_inf("event=chaos_done deployment=%s ended=%s kills=%u recovered=%u pending=%u skipped=%u mttr_mean_ms=%u "
		"mttr_p95_ms=%u mttr_max_ms=%u failed_requests=%" PRIu64,
		c->cfg.deployment, why, c->rep.kills, c->rep.recovered, c->rep.pending, c->rep.skipped,
		c->rep.mttr_mean_ms, c->rep.mttr_p95_ms, c->rep.mttr_max_ms, c->rep.failed_requests);
	char json[512];
	if (chaos_report_json(c, json, sizeof(json)) > 0)
		events_emit(c->events, "chaos_done", "%s", json);
}

static void on_replica(void *arg, enum sup_event ev, const struct sup_replica *r)
{
	struct chaos *c = arg;
	if (c->phase == CHAOS_IDLE || ev != SUP_EV_READY || strcmp(r->deployment, c->cfg.deployment))
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
	uint64_t ms64 = (loop_now_us(c->loop) - best->killed_us) / 1000u;
	uint32_t ms = ms64 > UINT32_MAX ? UINT32_MAX : (uint32_t)ms64;
	if (c->nsamples < CHAOS_MAX_SAMPLES)
		c->samples[c->nsamples++] = ms;
	if (ms > c->rep.mttr_max_ms)
		c->rep.mttr_max_ms = ms;
	c->sum_ms += ms;
	c->rep.recovered++;
	log_inf("event=chaos_recovered deployment=%s replica=%u mttr_ms=%u", r->deployment, r->slot, ms);
	summarize(c);
	if (c->phase == CHAOS_RECOVERING && c->rep.pending == 0)
		finish(c, "duration");
}

static void on_tick(void *arg)
{
	struct chaos *c = arg;
	uint64_t now = loop_now_us(c->loop);
	if (c->phase == CHAOS_RECOVERING) { /* CHAOS_RECOVERY_WAIT_MS over */
		finish(c, "recovery_wait");
		return;
	}
	if (c->cfg.duration_ms && now >= c->end_us) {
		summarize(c);
		if (c->rep.pending == 0) {
			finish(c, "duration");
			return;
		}
		/* No more kills; the run stays active until its victims are back. */
		c->phase = CHAOS_RECOVERING;
		if (loop_timer_start(c->loop, &c->timer, CHAOS_RECOVERY_WAIT_MS, 0) < 0)
			finish(c, "duration");
		return;
	}
	unsigned n = supervisor_ready_replicas(c->sup, c->cfg.deployment, c->ready, DEPLOY_MAX_REPLICAS);
	/* Replicas killed and not yet back are not ready: count only the ready ones. */
	if (n == 0 || n <= c->cfg.min_running) {
		c->rep.skipped++;
		log_inf("event=chaos_skip deployment=%s ready=%u min_running=%u wall_ms=%" PRId64, c->cfg.deployment, n,
			c->cfg.min_running, hal_clock_wall_ms());
		return;
	}
	const struct sup_replica *victim = &c->ready[prng_below(&c->rng, n)];
	int rc = supervisor_replica_kill(c->sup, victim->deployment, victim->slot);
	if (rc < 0) {
		c->rep.skipped++;
		log_inf("event=chaos_skip deployment=%s replica=%u err=%s wall_ms=%" PRId64, victim->deployment,
			victim->slot, strerror(-rc), hal_clock_wall_ms());
		return;
	}
	c->rep.kills++;
	if (victim->slot < DEPLOY_MAX_REPLICAS) {
		c->v[victim->slot].pending = true;
		c->v[victim->slot].killed_us = now;
	}
	summarize(c);
	log_inf("event=chaos_kill deployment=%s replica=%u ready_before=%u wall_ms=%" PRId64, victim->deployment,
		victim->slot, n, hal_clock_wall_ms());
}

struct chaos *chaos_create(struct loop *l, struct supervisor *sup, struct events *events)
{
	struct chaos *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = l;
	c->sup = sup;
	c->events = events;
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
	if (c->phase != CHAOS_IDLE)
		finish(c, "replaced");
	uint32_t runs = c->rep.runs;
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
	c->phase = CHAOS_KILLING;
	c->rep.running = true;
	c->rep.runs = runs + 1;
	log_inf("event=chaos_start deployment=%s interval_ms=%u duration_ms=%u min_running=%u", cfg->deployment,
		cfg->interval_ms, cfg->duration_ms, cfg->min_running);
	events_emit(c->events, "chaos_started",
		    "{\"deployment\":\"%s\",\"interval_ms\":%u,\"duration_ms\":%u,\"min_running\":%u}", cfg->deployment,
		    cfg->interval_ms, cfg->duration_ms, cfg->min_running);
	return 0;
}

void chaos_stop(struct chaos *c)
{
	if (c->phase != CHAOS_IDLE)
		finish(c, "stopped");
}

void chaos_report(const struct chaos *c, struct chaos_report *out) { *out = c->rep; }

int chaos_report_json(const struct chaos *c, char *buf, size_t len)
{
	const struct chaos_report *r = &c->rep;
	int n = snprintf(buf, len,
			 "{\"deployment\":\"%s\",\"running\":%s,\"interval_ms\":%u,\"duration_ms\":%u,"
			 "\"min_running\":%u,\"runs\":%u,\"kills\":%u,\"skipped\":%u,\"recovered\":%u,"
			 "\"pending\":%u,\"mttr_mean_ms\":%u,\"mttr_p95_ms\":%u,\"mttr_max_ms\":%u,"
			 "\"failed_requests\":%" PRIu64 "}",
			 c->cfg.deployment, r->running ? "true" : "false", c->cfg.interval_ms, c->cfg.duration_ms,
			 c->cfg.min_running, r->runs, r->kills, r->skipped, r->recovered, r->pending, r->mttr_mean_ms,
			 r->mttr_p95_ms, r->mttr_max_ms, r->failed_requests);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

void chaos_note_failed_request(struct chaos *c, const char *model)
{
	if (c && c->phase != CHAOS_IDLE && !strcmp(model, c->cfg.deployment))
		c->rep.failed_requests++;
}
