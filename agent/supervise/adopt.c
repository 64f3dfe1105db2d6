/* agent/supervise/adopt.c - takes over the engine's containers labelled as ours: after a restart, when the event stream missed something, or when a create finds its name taken. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/supervise/internal.h"
#include "hal/engine.h"

#define LOG_TAG "superv"

const char *adopt_label(const struct hal_ctr_info *c, const char *key)
{
	for (unsigned i = 0; i < c->nlabels && i < HAL_ENGINE_MAX_LABELS; i++)
		if (!strcmp(c->labels[i].key, key))
			return c->labels[i].value;
	return NULL;
}

void adopt_on_conflict_inspect(void *arg, const struct hal_engine_result *res)
{
	struct replica *r = arg;
	struct supervisor *s = r->dep->sup;
	if (!replica_op_done(r))
		return;
	if (res->err || !res->nctrs) {
		if (supervisor_engine_trouble(res->err))
			supervisor_engine_failed(s, res->err, "inspect");
		replica_clear(r);
		return;
	}
	/* Adopt what is there; a stale spec is rolled like any old replica. */
	const struct hal_ctr_info *c = &res->ctrs[0];
	const char *owner = adopt_label(c, SUP_LABEL_OWNER);
	if (!owner || strcmp(owner, s->cfg.device_id)) {
		/* Not ours (gateways sharing an engine whose names collide, "gw-1"+"a-b" and
		 * "gw-1-a"+"b", or a container berth did not make): never adopted; retried with
		 * the create back-off, the deployment showing why. */
		struct deployment *d = r->dep;
		uint32_t delay = backoff_next_ms(&d->create_bo);
		d->create_not_before_ms = supervisor_now_ms(s) + delay;
		deployment_set_error(d, "container name %s is taken by %s", c->name, owner ? owner : "-");
		log_wrn("event=name_taken deployment=%s replica=%u owner=%s", d->spec.name, r->slot, owner ? owner : "-");
		supervisor_kick_later(s, delay);
		replica_clear(r);
		return;
	}
	snprintf(r->id, sizeof(r->id), "%s", c->id);
	r->known_since_us = loop_now_us(s->loop);
	const char *hash = adopt_label(c, SUP_LABEL_HASH);
	r->hash = hash ? strtoull(hash, NULL, 16) : 0;
	if (c->state == HAL_CTR_RUNNING || c->state == HAL_CTR_PAUSED) {
		replica_running(r);
	} else {
		r->st = SUP_R_BACKOFF;
		replica_start(r);
	}
}

static const char *ctr_state_name(enum hal_ctr_state st)
{
	switch (st) {
	case HAL_CTR_CREATED: return "created";
	case HAL_CTR_RUNNING: return "running";
	case HAL_CTR_PAUSED: return "paused";
	case HAL_CTR_RESTARTING: return "restarting";
	case HAL_CTR_EXITED: return "exited";
	case HAL_CTR_DEAD: return "dead";
	default: return "unknown";
	}
}

/* An empty slot takes the container found in it. */
static void adopt_one(struct replica *r, const struct hal_ctr_info *c, uint64_t hash)
{
	struct deployment *d = r->dep;
	struct supervisor *s = d->sup;
	snprintf(r->id, sizeof(r->id), "%s", c->id);
	r->hash = hash;
	r->known_since_us = loop_now_us(s->loop);
	r->draining = false;
	r->pause = REPLICA_UNPAUSED;
	r->intent = REPLICA_KEEP;
	r->exit = REPLICA_EXIT_NONE;
	r->trial = false;
	backoff_init(&r->bo, d->spec.backoff_initial_ms ? d->spec.backoff_initial_ms : DEPLOY_DEFAULT_BACKOFF_INITIAL_MS,
		     d->spec.backoff_max_ms ? d->spec.backoff_max_ms : DEPLOY_DEFAULT_BACKOFF_MAX_MS,
		     d->spec.backoff_reset_ms ? d->spec.backoff_reset_ms : DEPLOY_DEFAULT_BACKOFF_RESET_MS,
		     SUP_JITTER_PERMILLE, true, &s->rng);
	log_inf("event=replica_adopted deployment=%s replica=%u id=%.12s state=%s current=%d", d->spec.name, r->slot,
		r->id, ctr_state_name(c->state), hash == d->spec.spec_hash);
	if (d->removing) {
		r->st = c->state == HAL_CTR_RUNNING ? SUP_R_RUNNING : SUP_R_BACKOFF;
		replica_remove(r);
		return;
	}
	if (c->state == HAL_CTR_RUNNING) {
		replica_running(r);
		r->pid = c->pid;
	} else if (c->state == HAL_CTR_PAUSED) {
		/* Left paused by an earlier run: nobody will unpause it, so do it now. */
		replica_running(r);
		r->pause = REPLICA_PAUSED;
		replica_stop_probes(r);
		if (replica_pause(r, false) < 0)
			log_wrn("event=unpause_not_sent deployment=%s replica=%u", d->spec.name, r->slot);
	} else {
		r->st = SUP_R_RUNNING;
		replica_exited(r, c->exit_code, c->oom_killed);
	}
}

/* The deployment and slot a container of ours belongs to, or NULL (logged). */
static struct replica *slot_of(struct supervisor *s, const struct hal_ctr_info *c)
{
	const char *dname = adopt_label(c, SUP_LABEL_DEPLOYMENT);
	const char *slot_s = adopt_label(c, SUP_LABEL_REPLICA);
	if (!dname || !slot_s) {
		log_wrn("event=unlabelled_owned_container id=%.12s name=%s", c->id, c->name);
		return NULL;
	}
	char *end;
	unsigned long slot = strtoul(slot_s, &end, 10);
	if (*end || slot >= DEPLOY_MAX_REPLICAS) {
		log_wrn("event=bad_replica_label id=%.12s value=%s", c->id, slot_s);
		return NULL;
	}
	struct deployment *d = deployment_find(s, dname);
	if (!d) {
		/* Ours, from a deployment no longer wanted: track it to remove it. */
		d = deployment_alloc(s);
		if (!d) {
			log_wrn("event=deployment_table_full orphan=%s", dname);
			return NULL;
		}
		snprintf(d->spec.name, sizeof(d->spec.name), "%s", dname);
		d->removing = true;
		log_inf("event=orphan_deployment deployment=%s", dname);
	}
	return &d->r[slot];
}

static void on_stray_removed(void *arg, const struct hal_engine_result *res)
{
	struct supervisor *s = arg;
	if (res->err && res->err != -ENOENT)
		log_wrn("event=stray_remove_failed err=%s msg=\"%s\"", strerror(-res->err), res->message ? res->message : "");
	else
		s->strays_removed++;
}

/* Force-removes a container of ours that no replica tracks (not waited for: the next list
 * shows whether it went). */
static void remove_stray(struct supervisor *s, const struct hal_ctr_info *c)
{
	int rc = hal_engine_remove(s->engine, c->id, true, on_stray_removed, s);
	if (rc)
		log_wrn("event=stray_remove_failed id=%.12s err=%s", c->id, strerror(-rc));
}

/* One listed container: adopt it into an empty slot, or catch up on its state. */
static void merge_one(struct replica *r, const struct hal_ctr_info *c)
{
	const char *hash_s = adopt_label(c, SUP_LABEL_HASH);
	uint64_t hash = hash_s ? strtoull(hash_s, NULL, 16) : 0;
	if (r->st == SUP_R_EMPTY) {
		adopt_one(r, c, hash);
		return;
	}
	if (strcmp(r->id, c->id) != 0) {
		if (!r->id[0])
			return; /* our create is in flight; its answer names it */
		/* Ours by its labels, in a slot another container holds: a leftover (a call the
		 * engine carried out after it had timed out, e.g. during a stall). Removed. */
		log_wrn("event=slot_conflict deployment=%s replica=%u tracked=%.12s found=%.12s action=remove",
			r->dep->spec.name, r->slot, r->id, c->id);
		remove_stray(r->dep->sup, c);
		return;
	}
	/* A removal the engine did not answer (timed out, engine unavailable) is retried as soon as
	 * the engine lists again: a replica that should not exist does not outlive one re-list. */
	if (r->st == SUP_R_REMOVING && r->op == REPLICA_OP_NONE) {
		log_inf("event=remove_retry deployment=%s replica=%u id=%.12s", r->dep->spec.name, r->slot, r->id);
		replica_remove(r);
		return;
	}
	/* Known container: catch up on anything the event stream missed. */
	bool down = c->state != HAL_CTR_RUNNING && c->state != HAL_CTR_PAUSED;
	if (down && (r->st == SUP_R_RUNNING || r->st == SUP_R_KILLING) && r->op == REPLICA_OP_NONE)
		replica_exited(r, c->exit_code, c->oom_killed);
}

void adopt_list(struct supervisor *s, const struct hal_engine_result *res)
{
	bool seen[SUP_MAX_DEPLOYMENTS][DEPLOY_MAX_REPLICAS];
	memset(seen, 0, sizeof(seen));
	for (unsigned i = 0; i < res->nctrs; i++) {
		const struct hal_ctr_info *c = &res->ctrs[i];
		const char *owner = adopt_label(c, SUP_LABEL_OWNER);
		if (!owner || strcmp(owner, s->cfg.device_id))
			continue; /* never ours to touch */
		struct replica *r = slot_of(s, c);
		if (!r)
			continue;
		seen[r->dep->index][r->slot] = true;
		merge_one(r, c);
	}
	/* Tracked containers the engine no longer has were removed behind our back. */
	for (unsigned i = 0; i < SUP_MAX_DEPLOYMENTS; i++) {
		struct deployment *d = s->deps[i];
		if (!d || !d->used)
			continue;
		for (unsigned j = 0; j < DEPLOY_MAX_REPLICAS; j++) {
			struct replica *r = &d->r[j];
			if (r->st == SUP_R_EMPTY || seen[i][j] || !r->id[0] || r->op != REPLICA_OP_NONE)
				continue;
			if (r->known_since_us >= s->list_sent_us)
				continue; /* became known after the snapshot was taken */
			log_inf("event=replica_vanished deployment=%s replica=%u id=%.12s", d->spec.name, j, r->id);
			replica_clear(r);
		}
	}
}
