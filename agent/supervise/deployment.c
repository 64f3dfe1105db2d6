/* agent/supervise/deployment.c - a tracked deployment: its table slot, circuit breaker, migration alarm, drain bound and status. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/supervise/internal.h"
#include "agent/telemetry/events.h"

#define LOG_TAG "superv"

struct deployment *deployment_find(struct supervisor *s, const char *name)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++)
		if (s->deps[i] && s->deps[i]->used && !strcmp(s->deps[i]->spec.name, name))
			return s->deps[i];
	return NULL;
}

struct deployment *deployment_alloc(struct supervisor *s)
{
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = s->deps[i];
		if (d && d->used)
			continue;
		if (!d) {
			/* The table grows as deployments are configured; a slot once
			 * made is kept for the next deployment (its replicas' timers
			 * and probes stay initialised). */
			d = calloc(1, sizeof(*d));
			if (!d)
				return NULL;
			d->sup = s;
			d->index = i;
			loop_timer_init(&d->circuit_timer, deployment_on_circuit_timer, d);
			for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
				replica_init(&d->r[j], d, j, s->loop);
			s->deps[i] = d;
		}
		d->used = true;
		d->removing = false;
		d->circuit = SUP_CIRCUIT_CLOSED;
		d->restarts = 0;
		d->migration_raised = false;
		d->last_error[0] = '\0';
		d->create_not_before_ms = 0;
		memset(&d->spec, 0, sizeof(d->spec));
		backoff_init(&d->create_bo, SUP_CREATE_RETRY_MIN_MS, SUP_CREATE_RETRY_MAX_MS, 0, SUP_JITTER_PERMILLE,
			     false, &s->rng);
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++)
			replica_reset(&d->r[j]);
		return d;
	}
	return NULL;
}

void deployment_set_error(struct deployment *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->last_error, sizeof(d->last_error), fmt, ap);
	va_end(ap);
}

static void close_circuit(struct deployment *d)
{
	d->circuit = SUP_CIRCUIT_CLOSED;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		d->r[i].trial = false;
	log_inf("event=circuit_closed deployment=%s", d->spec.name);
	events_emit(d->sup->cfg.events, "circuit_closed", "{\"deployment\":\"%s\"}", d->spec.name);
	/* Replicas held by the open circuit restart now. */
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		if (d->r[i].st == SUP_R_BACKOFF)
			supervisor_arm(d->sup, &d->r[i].restart_timer, 0, "restart");
	supervisor_kick(d->sup);
}

void deployment_on_circuit_timer(void *arg)
{
	struct deployment *d = arg;
	if (d->circuit == SUP_CIRCUIT_HALF_OPEN) {
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
			if (d->r[i].trial && replica_serving(&d->r[i])) {
				close_circuit(d);
				return;
			}
		return;
	}
	if (d->circuit != SUP_CIRCUIT_OPEN)
		return;
	d->circuit = SUP_CIRCUIT_HALF_OPEN;
	log_inf("event=circuit_half_open deployment=%s", d->spec.name);
	events_emit(d->sup->cfg.events, "circuit_half_open", "{\"deployment\":\"%s\"}", d->spec.name);
	/* Try the replica that waits longest. */
	struct replica *best = NULL;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
		struct replica *r = &d->r[i];
		if (r->st == SUP_R_BACKOFF && (!best || r->exited_ms < best->exited_ms))
			best = r;
	}
	if (best)
		replica_restart_due(best);
	else
		supervisor_kick(d->sup); /* nothing to restart: a new replica is the trial */
}

void deployment_open_circuit(struct deployment *d, uint32_t delay_ms)
{
	struct supervisor *s = d->sup;
	bool was_closed = d->circuit == SUP_CIRCUIT_CLOSED;
	d->circuit = SUP_CIRCUIT_OPEN;
	supervisor_arm(s, &d->circuit_timer, delay_ms, "circuit");
	log_wrn("event=circuit_open deployment=%s retry_in_ms=%u", d->spec.name, delay_ms);
	if (was_closed)
		events_emit(s->cfg.events, "circuit_open", "{\"deployment\":\"%s\",\"retry_in_ms\":%u,\"last_error\":\"%s\"}",
			    d->spec.name, delay_ms, d->last_error);
}

void deployment_raise_migration(struct deployment *d, uint32_t failures)
{
	struct supervisor *s = d->sup;
	if (d->migration_raised || !s->cfg.migrate_after_failures || failures < s->cfg.migrate_after_failures)
		return;
	d->migration_raised = true;
	char *spec_json = s->spec_json;
	if (deploy_spec_to_json(&d->spec, spec_json, sizeof(s->spec_json)) < 0)
		snprintf(spec_json, sizeof(s->spec_json), "{\"name\":\"%s\"}", d->spec.name);
	char err[160];
	events_json_escape(d->last_error, err, sizeof(err));
	log_wrn("event=migration_needed deployment=%s failed_recoveries=%u", d->spec.name, failures);
	events_emit(s->cfg.events, "migration_needed",
		    "{\"deployment\":\"%s\",\"failed_recoveries\":%u,\"last_error\":\"%s\",\"spec\":%s}", d->spec.name,
		    failures, err, spec_json);
}

uint32_t deployment_drain_bound_ms(const struct deployment *d)
{
	uint64_t ms = 2u * (uint64_t)d->spec.deadline_ms;
	if (ms < SUP_DRAIN_MIN_MS)
		ms = SUP_DRAIN_MIN_MS;
	return ms > SUP_DRAIN_MAX_MS ? SUP_DRAIN_MAX_MS : (uint32_t)ms;
}

void deployment_status(const struct supervisor *s, const struct deployment *d, struct sup_status *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", d->spec.name);
	o->replicas_desired = d->removing ? 0 : d->spec.replicas;
	o->replicas_min = d->spec.replicas_min;
	o->replicas_max = d->spec.replicas_max;
	o->removing = d->removing;
	o->circuit = d->circuit;
	o->restarts = d->restarts;
	o->migration_needed = d->migration_raised;
	o->spec_hash = d->spec.spec_hash;
	o->sla_class = d->spec.sla_class;
	o->startup_ms = d->startup_ms;
	o->version_exits = d->version_exits;
	o->image_waiting = d->image_waiting;
	snprintf(o->last_error, sizeof(o->last_error), "%s", d->last_error);
	for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
		const struct replica *r = &d->r[j];
		if (r->st == SUP_R_RUNNING)
			o->replicas_running++;
		if (replica_serving(r)) {
			o->replicas_ready++;
			o->current_ready += r->hash == d->spec.spec_hash;
		}
		if (r->st != SUP_R_EMPTY && r->hash != d->spec.spec_hash && !d->removing)
			o->rolling = true;
		o->probe_failures += r->live.failures + r->readiness.failures;
	}
	if (d->removing)
		o->health = "stopped";
	else if (!s->engine_up && o->replicas_ready == 0)
		o->health = "unavailable";
	else if (o->replicas_ready >= o->replicas_desired && d->circuit == SUP_CIRCUIT_CLOSED)
		o->health = "healthy";
	else if (o->replicas_ready == 0)
		o->health = "unavailable";
	else
		o->health = "degraded";
}
