/* agent/infer/dispatch.c - glue from the scheduler's decisions to hal_invoke transfers, breakers and retries. */
#include "agent/infer/dispatch.h"
#include "agent/infer/dispatch_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/infer/sched.h"
#include "hal/clock.h"
#include "hal/invoke.h"
#include "hal/sys.h"

_Static_assert(SCHED_MAX_MODELS == DEPLOY_MAX && SCHED_MAX_REPLICAS == DEPLOY_MAX_REPLICAS &&
		       SCHED_NAME_MAX == DEPLOY_NAME_MAX, "the scheduler's bounds are the deployment spec's");

#define LOG_TAG "dispatch"

static const char *const reason_names[DISPATCH_NREASONS] = {
	"ok", "deadline_infeasible", "queue_full", "no_ready_replica", "breaker_open",
	"replica_failed", "deadline_exceeded", "shutting_down",
};

const char *dispatch_reason_name(enum dispatch_reason r)
{
	return (unsigned)r < DISPATCH_NREASONS ? reason_names[r] : "unknown";
}

static uint64_t now_us(void)
{
	return hal_clock_now_us();
}

static void rearm_sched_timer(struct dispatch *d)
{
	uint64_t due = sched_next_due_us(d->sched);
	if (due == UINT64_MAX) {
		loop_timer_stop(d->loop, &d->sched_timer);
		return;
	}
	uint64_t now = now_us();
	if (loop_timer_start_us(d->loop, &d->sched_timer, due > now ? due - now : 0, 0) < 0)
		log_err("event=timer_failed what=sched");
}

static void on_sched_timer(void *arg)
{
	struct dispatch *d = arg;
	sched_tick(d->sched, now_us());
	rearm_sched_timer(d);
}

static enum dispatch_reason from_refusal(enum sched_refusal r)
{
	switch (r) {
	case SCHED_REFUSE_DEADLINE_INFEASIBLE: return DISPATCH_DEADLINE_INFEASIBLE;
	case SCHED_REFUSE_QUEUE_FULL: return DISPATCH_QUEUE_FULL;
	case SCHED_REFUSE_NO_READY_REPLICA: return DISPATCH_NO_READY_REPLICA;
	case SCHED_REFUSE_BREAKER_OPEN: return DISPATCH_BREAKER_OPEN;
	default: return DISPATCH_DEADLINE_INFEASIBLE;
	}
}

/* Seconds after which asking again has a chance; 0 when it would not help. */
static unsigned retry_after_s(const struct dispatch *d, const struct dispatch_req *r, enum dispatch_reason why)
{
	uint64_t now = now_us();
	switch (why) {
	case DISPATCH_QUEUE_FULL:
	case DISPATCH_DEADLINE_INFEASIBLE: {
		uint32_t ms = sched_backlog_ms(d->sched, now);
		return ms ? (ms + 999) / 1000 : (why == DISPATCH_QUEUE_FULL ? 1 : 0);
	}
	case DISPATCH_BREAKER_OPEN: {
		uint64_t soonest = UINT64_MAX;
		const struct model *m = &d->models[r->model];
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
			if (m->rep[i].present && m->rep[i].brk == BRK_OPEN && m->rep[i].open_until_us < soonest)
				soonest = m->rep[i].open_until_us;
		if (soonest == UINT64_MAX || soonest <= now)
			return 1;
		return (unsigned)((soonest - now + 999999) / 1000000);
	}
	case DISPATCH_NO_READY_REPLICA:
	case DISPATCH_SHUTDOWN:
		return 1;
	default:
		return 0;
	}
}

static void note_miss(struct dispatch *d, int model, enum dispatch_reason why, int http_status)
{
	if (d->miss_fn && model >= 0 && model < DEPLOY_MAX && d->models[model].used &&
	    (why != DISPATCH_OK || http_status >= 500))
		d->miss_fn(d->miss_arg, d->models[model].name, why, http_status);
}

/* Ends r: tells the API, or, while r is still inside dispatch_submit, leaves
 * the outcome for dispatch_submit to return. */
static void finish(struct dispatch *d, struct dispatch_req *r, enum dispatch_reason why, int http_status,
		   const void *body, size_t len)
{
	note_miss(d, r->model, why, http_status);
	r->state = REQ_IDLE;
	r->handle = 0;
	r->reason = why;
	r->http_status = http_status;
	r->retry_after_s = why == DISPATCH_OK ? 0 : retry_after_s(d, r, why);
	if (r == d->submitting) {
		d->submit_finished = true;
		return;
	}
	if (d->done)
		d->done(d->done_arg, r, body, len);
}

/* --- breakers ------------------------------------------------------------ */

static void rearm_breaker_timer(struct dispatch *d)
{
	uint64_t soonest = UINT64_MAX;
	for (unsigned m = 0; m < DEPLOY_MAX; m++) {
		if (!d->models[m].used)
			continue;
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
			const struct replica *rp = &d->models[m].rep[i];
			if (rp->present && rp->brk == BRK_OPEN && rp->open_until_us < soonest)
				soonest = rp->open_until_us;
		}
	}
	if (soonest == UINT64_MAX) {
		loop_timer_stop(d->loop, &d->breaker_timer);
		return;
	}
	uint64_t now = now_us();
	if (loop_timer_start_us(d->loop, &d->breaker_timer, soonest > now ? soonest - now : 0, 0) < 0)
		log_err("event=timer_failed what=breaker");
}

/* Open -> half-open: the scheduler may send the replica one probe request. */
static void on_breaker_timer(void *arg)
{
	struct dispatch *d = arg;
	uint64_t now = now_us();
	for (unsigned m = 0; m < DEPLOY_MAX; m++) {
		if (!d->models[m].used)
			continue;
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++) {
			struct replica *rp = &d->models[m].rep[i];
			if (!rp->present || rp->brk != BRK_OPEN || rp->open_until_us > now)
				continue;
			rp->brk = BRK_HALF_OPEN;
			log_inf("event=breaker_half_open model=%s replica=%u", d->models[m].name, i);
			(void)sched_replica_set_breaker(d->sched, (int)m, (int)i, false, now);
		}
	}
	rearm_breaker_timer(d);
	rearm_sched_timer(d);
}

static void breaker_open(struct dispatch *d, int m, int i, uint64_t now)
{
	struct replica *rp = &d->models[m].rep[i];
	bool was_closed = rp->brk == BRK_CLOSED;
	rp->brk = BRK_OPEN;
	rp->open_until_us = now + (uint64_t)CONFIG_DISPATCH_BREAKER_OPEN_MS * 1000u;
	rp->st.breaker_opens++;
	rp->st.breaker_open = true;
	if (was_closed)
		log_wrn("event=breaker_open model=%s replica=%d failures=%u open_ms=%u", d->models[m].name, i,
			rp->consecutive_failures, (unsigned)CONFIG_DISPATCH_BREAKER_OPEN_MS);
	else
		log_wrn("event=breaker_reopen model=%s replica=%d", d->models[m].name, i);
	(void)sched_replica_set_breaker(d->sched, m, i, true, now);
	rearm_breaker_timer(d);
}

static void breaker_result(struct dispatch *d, int m, int i, bool ok, uint64_t now)
{
	struct replica *rp = &d->models[m].rep[i];
	if (!rp->present)
		return;
	if (ok) {
		rp->consecutive_failures = 0;
		if (rp->brk == BRK_PROBING || rp->brk == BRK_HALF_OPEN) {
			rp->brk = BRK_CLOSED;
			rp->st.breaker_open = false;
			log_inf("event=breaker_closed model=%s replica=%d", d->models[m].name, i);
			(void)sched_replica_set_breaker(d->sched, m, i, false, now);
		}
		return;
	}
	rp->consecutive_failures++;
	rp->st.failures++;
	if (rp->brk == BRK_PROBING || rp->brk == BRK_HALF_OPEN ||
	    (rp->brk == BRK_CLOSED && rp->consecutive_failures >= CONFIG_DISPATCH_BREAKER_FAILURES))
		breaker_open(d, m, i, now);
}

/* --- transfers ----------------------------------------------------------- */

/* A timeout is the replica's fault (breaker) when it had at least this many
 * service-time estimates to answer. */
#define DISPATCH_TIMEOUT_FAULT_FACTOR 4u


static bool connection_failure(int err)
{
	return err == -ECONNREFUSED || err == -ECONNRESET || err == -EIO;
}

static void on_invoke_done(void *arg, const struct hal_invoke_res *res)
{
	struct dispatch_req *r = arg;
	struct dispatch *d = r->owner;
	uint64_t now = now_us();
	int m = r->model, i = r->replica;
	r->handle = 0;
	r->service_us = now - r->sent_us;
	if (r->state == REQ_PAUSED && d->pause_fn) {
		/* Ended while frozen (its deadline passed): never leave the replica paused. */
		(void)d->pause_fn(d->pause_arg, d->models[m].name, (unsigned)i, false);
		r->state = REQ_SENDING;
	}
	if (res->err == 0) {
		/* The replica answered: pass its status and body through. A 5xx
		 * is the replica's failure (breaker, counted failed), a 4xx the
		 * producer's. */
		bool ok = res->http_status < 500;
		breaker_result(d, m, i, ok, now);
		(void)sched_complete(d->sched, r->id, ok ? SCHED_DONE_OK : SCHED_DONE_FAILED,
				     ok ? r->service_us : 0, now);
		finish(d, r, DISPATCH_OK, res->http_status, res->body, res->body_len);
	} else if (connection_failure(res->err) && r->attempts <= SCHED_MAX_RETRIES && now < r->deadline_us) {
		log_dbg("event=retry model=%s replica=%d err=%s remaining_us=%llu", d->models[m].name, i,
			strerror(-res->err), (unsigned long long)(r->deadline_us - now));
		breaker_result(d, m, i, false, now);
		r->state = REQ_QUEUED;
		r->replica = -1;
		/* Back into the EDF order; the scheduler picks another replica when
		 * one is free, or refuses it at dispatch when time ran out. */
		(void)sched_complete(d->sched, r->id, SCHED_DONE_RETRY, 0, now);
	} else {
		/* A transfer cut at the request's own deadline says little about a
		 * replica that had about one service time for it: under load a
		 * healthy replica runs slow. Such a timeout counts against the
		 * breaker only when the replica had several estimated service times
		 * (a hung replica still trips it) or answered a half-open probe. */
		uint64_t had_us = r->deadline_us > r->sent_us ? r->deadline_us - r->sent_us : 0;
		bool fault = res->err != -ETIMEDOUT || d->models[m].rep[i].brk == BRK_PROBING ||
			     had_us >= DISPATCH_TIMEOUT_FAULT_FACTOR * (uint64_t)sched_estimate_us(d->sched, m);
		if (fault)
			breaker_result(d, m, i, false, now);
		(void)sched_complete(d->sched, r->id, SCHED_DONE_FAILED, 0, now);
		if (res->err == -ETIMEDOUT)
			finish(d, r, DISPATCH_DEADLINE_EXCEEDED, 504, NULL, 0);
		else
			finish(d, r, DISPATCH_REPLICA_FAILED, 502, NULL, 0);
	}
	rearm_sched_timer(d);
}

/* --- scheduler callbacks ------------------------------------------------- */

static void cb_dispatch(void *arg, const struct sched_dispatch *sd)
{
	struct dispatch *d = arg;
	struct dispatch_req *r = sd->ctx;
	struct model *m = &d->models[sd->model];
	struct replica *rp = &m->rep[sd->replica];
	uint64_t now = sd->now_us;

	r->id = sd->id;
	r->replica = sd->replica;
	r->attempts = sd->attempt + 1;
	r->queue_us = now - r->arrival_us;
	if (rp->brk == BRK_HALF_OPEN) {
		/* This request is the half-open probe: nothing else goes to the
		 * replica until it answers. */
		rp->brk = BRK_PROBING;
		(void)sched_replica_set_breaker(d->sched, sd->model, sd->replica, true, now);
	}
	/* The transfer may take exactly the time left; policies that run late
	 * requests (fifo, edf) get at least the late allowance. */
	uint64_t left_us = r->deadline_us > now ? r->deadline_us - now : 0;
	uint64_t timeout_ms = (left_us + 999) / 1000;
	if (!d->admit && timeout_ms < CONFIG_DISPATCH_LATE_TIMEOUT_MS)
		timeout_ms = CONFIG_DISPATCH_LATE_TIMEOUT_MS;
	if (timeout_ms == 0)
		timeout_ms = 1;
	struct hal_invoke_req ir = {
		.host = rp->host,
		.port = rp->port,
		.method = "POST",
		.path = m->infer_path,
		.body = r->body,
		.body_len = r->body_len,
		.content_type = r->content_type,
		.timeout_ms = (uint32_t)(timeout_ms > UINT32_MAX ? UINT32_MAX : timeout_ms),
		.cost_hint_ms = r->cost_hint_ms,
	};
	r->state = REQ_SENDING;
	r->sent_us = now_us();
	int64_t h = hal_invoke_start(d->inv, &ir, on_invoke_done, r);
	if (h < 0) {
		log_wrn("event=send_failed model=%s replica=%d err=%s", m->name, sd->replica, strerror((int)-h));
		(void)sched_complete(d->sched, sd->id, SCHED_DONE_FAILED, 0, now);
		finish(d, r, DISPATCH_REPLICA_FAILED, 503, NULL, 0);
		return;
	}
	r->handle = h;
	rp->st.sent++;
}

static void cb_refuse(void *arg, const struct sched_dispatch *sd, enum sched_refusal why)
{
	struct dispatch *d = arg;
	struct dispatch_req *r = sd->ctx;
	r->queue_us = sd->now_us - r->arrival_us;
	finish(d, r, from_refusal(why), 503, NULL, 0);
}

static int cb_pause(void *arg, const struct sched_dispatch *sd)
{
	struct dispatch *d = arg;
	struct dispatch_req *r = sd->ctx;
	if (!d->pause_fn)
		return -ENOTSUP;
	int rc = d->pause_fn(d->pause_arg, d->models[sd->model].name, (unsigned)sd->replica, true);
	if (rc == 0)
		r->state = REQ_PAUSED;
	return rc;
}

static void cb_resume(void *arg, const struct sched_dispatch *sd)
{
	struct dispatch *d = arg;
	struct dispatch_req *r = sd->ctx;
	if (d->pause_fn)
		(void)d->pause_fn(d->pause_arg, d->models[sd->model].name, (unsigned)sd->replica, false);
	if (r->state == REQ_PAUSED)
		r->state = REQ_SENDING;
}

/* --- static replicas' readiness ---------------------------------------------- */

static void on_probe_done(void *arg, const struct hal_invoke_res *res)
{
	struct static_probe *p = arg;
	struct dispatch *d = p->d;
	p->handle = 0;
	struct model *m = &d->models[p->model];
	struct replica *rp = &m->rep[p->index];
	bool ready = res->err == 0 && res->http_status >= 200 && res->http_status < 400;
	if (rp->present && rp->ready != ready) {
		rp->ready = ready;
		log_inf("event=replica_%s model=%s replica=%u addr=%s:%u", ready ? "ready" : "unready", m->name,
			p->index, rp->host, rp->port);
		(void)sched_replica_set_ready(d->sched, p->model, (int)p->index, ready, now_us());
		rearm_sched_timer(d);
	}
}

static void on_probe_timer(void *arg)
{
	struct dispatch *d = arg;
	for (int m = 0; m < DEPLOY_MAX; m++) {
		for (unsigned i = 0; d->models[m].used && i < DEPLOY_MAX_REPLICAS; i++) {
			struct replica *rp = &d->models[m].rep[i];
			if (!rp->present || !rp->is_static || rp->probe.handle)
				continue;
			struct hal_invoke_req ir = {
				.host = rp->host,
				.port = rp->port,
				.method = "GET",
				.path = "/v2/health/ready",
				.timeout_ms = CONFIG_DISPATCH_STATIC_PROBE_MS / 2,
			};
			rp->probe = (struct static_probe){ .d = d, .model = m, .index = i };
			int64_t h = hal_invoke_start(d->inv, &ir, on_probe_done, &rp->probe);
			rp->probe.handle = h > 0 ? h : 0;
		}
	}
}

/* --- life cycle ---------------------------------------------------------- */

/* The scheduler's parameters from the config (0: the default). Returns 0 or -EINVAL (an
 * unknown policy, logged). */
static int params_from_config(const struct dispatch_config *cfg, struct sched_params *p)
{
	sched_params_default(p, hal_sys_ncpu());
	if (cfg->policy && *cfg->policy) {
		int pol = sched_policy_parse(cfg->policy);
		if (pol < 0) {
			log_err("event=bad_policy policy=%s", cfg->policy);
			return -EINVAL;
		}
		p->policy = (enum sched_policy)pol;
	}
	if (cfg->slots)
		p->slots = cfg->slots;
	for (unsigned c = 0; c < SLA_NCLASSES; c++)
		if (cfg->queue_cap[c])
			p->queue_cap[c] = cfg->queue_cap[c];
	if (cfg->urgent_reserve_slots)
		p->reserve_urgent = cfg->urgent_reserve_slots;
	if (p->reserve_urgent >= p->slots)
		p->reserve_urgent = p->slots - 1;
	return 0;
}

int dispatch_reconfigure(struct dispatch *d, const struct dispatch_config *cfg)
{
	struct sched_params p;
	int rc = params_from_config(cfg, &p);
	if (rc == 0)
		rc = sched_set_params(d->sched, &p, loop_now_us(d->loop));
	if (rc)
		return rc;
	d->admit = p.policy != SCHED_FIFO && p.policy != SCHED_EDF;
	rearm_sched_timer(d);
	return 0;
}

struct dispatch *dispatch_create(struct loop *l, struct hal_invoke *inv, const struct dispatch_config *cfg)
{
	struct dispatch *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->loop = l;
	d->inv = inv;
	loop_timer_init(&d->sched_timer, on_sched_timer, d);
	loop_timer_init(&d->breaker_timer, on_breaker_timer, d);
	loop_timer_init(&d->probe_timer, on_probe_timer, d);

	struct sched_params p;
	if (params_from_config(cfg, &p) < 0)
		goto errout;
	d->admit = p.policy != SCHED_FIFO && p.policy != SCHED_EDF;
	struct sched_callbacks cb = {
		.dispatch = cb_dispatch,
		.refuse = cb_refuse,
		.pause = cb_pause,
		.resume = cb_resume,
		.arg = d,
	};
	d->sched = sched_create(&p, &cb);
	if (!d->sched)
		goto errout;
	log_inf("event=dispatch_ready policy=%s slots=%u reserve_urgent=%u", sched_policy_name(p.policy), p.slots,
		p.reserve_urgent);
	return d;

errout:
	dispatch_destroy(d);
	return NULL;
}

void dispatch_set_done_fn(struct dispatch *d, dispatch_done_fn done, void *arg)
{
	d->done = done;
	d->done_arg = arg;
}

void dispatch_set_arrival_fn(struct dispatch *d, dispatch_arrival_fn fn, void *arg)
{
	d->arrival_fn = fn;
	d->arrival_arg = arg;
}

void dispatch_set_pause_fn(struct dispatch *d, dispatch_pause_fn fn, void *arg)
{
	d->pause_fn = fn;
	d->pause_arg = arg;
}

void dispatch_set_miss_fn(struct dispatch *d, dispatch_miss_fn fn, void *arg)
{
	d->miss_fn = fn;
	d->miss_arg = arg;
}

void dispatch_destroy(struct dispatch *d)
{
	if (!d)
		return;
	loop_timer_stop(d->loop, &d->sched_timer);
	loop_timer_stop(d->loop, &d->breaker_timer);
	loop_timer_stop(d->loop, &d->probe_timer);
	for (int m = 0; m < DEPLOY_MAX; m++)
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
			if (d->models[m].rep[i].probe.handle)
				hal_invoke_cancel(d->inv, d->models[m].rep[i].probe.handle);
	sched_destroy(d->sched);
	free(d);
}

struct sched *dispatch_sched(const struct dispatch *d)
{
	return d->sched;
}

/* --- models and replicas ------------------------------------------------- */

int dispatch_model_set(struct dispatch *d, const char *name, uint32_t deadline_ms, enum sla_class cls,
		       uint32_t concurrency)
{
	if ((unsigned)cls >= SLA_NCLASSES)
		return -EINVAL;
	int idx = sched_model_add(d->sched, name, 0);
	if (idx < 0)
		return idx;
	if (idx >= DEPLOY_MAX)
		return -ENOSPC;
	struct model *m = &d->models[idx];
	if (m->withdrawn)
		log_inf("event=model_restored model=%s", name);
	m->withdrawn = false;
	if (!m->used) {
		m->used = true;
		snprintf(m->name, sizeof(m->name), "%s", name);
		snprintf(m->infer_path, sizeof(m->infer_path), "/v2/models/%s/infer", name);
	}
	m->deadline_ms = deadline_ms ? deadline_ms : CONFIG_DISPATCH_DEFAULT_DEADLINE_MS;
	m->cls = cls;
	uint32_t conc = concurrency ? concurrency : 1;
	if (conc != m->concurrency) {
		m->concurrency = conc;
		for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
			if (m->rep[i].present)
				(void)sched_replica_set_concurrency(d->sched, idx, (int)i, conc, now_us());
	}
	rearm_sched_timer(d);
	return idx;
}

int dispatch_model_find(const struct dispatch *d, const char *name)
{
	int m = sched_model_find(d->sched, name);
	const struct model *md = model_at(d, m);
	return md && !md->withdrawn ? m : -ENOENT;
}

void dispatch_model_withdraw(struct dispatch *d, int model)
{
	struct model *m = model_at(d, model);
	if (!m || m->withdrawn)
		return;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		if (m->rep[i].present)
			dispatch_replica_remove(d, model, i);
	m->withdrawn = true;
	log_inf("event=model_withdrawn model=%s", m->name);
}

int dispatch_model_defaults(const struct dispatch *d, int model, uint32_t *deadline_ms, enum sla_class *cls)
{
	const struct model *m = model_at(d, model);
	if (!m)
		return -ENOENT;
	*deadline_ms = m->deadline_ms;
	*cls = m->cls;
	return 0;
}

bool dispatch_model_ready(const struct dispatch *d, int model)
{
	const struct model *m = model_at(d, model);
	if (!m || m->withdrawn)
		return false;
	for (unsigned i = 0; i < DEPLOY_MAX_REPLICAS; i++)
		if (m->rep[i].present && m->rep[i].ready && m->rep[i].brk != BRK_OPEN)
			return true;
	return false;
}

bool dispatch_all_ready(const struct dispatch *d)
{
	unsigned n = 0;
	for (int m = 0; m < DEPLOY_MAX; m++) {
		if (!d->models[m].used || d->models[m].withdrawn)
			continue;
		n++;
		if (!dispatch_model_ready(d, m))
			return false;
	}
	return n > 0;
}

int dispatch_replica_set(struct dispatch *d, int model, unsigned index, const char *host, uint16_t port,
			 bool ready)
{
	struct model *m = model_at(d, model);
	if (!m)
		return -ENOENT;
	if (index >= DEPLOY_MAX_REPLICAS)
		return -ENOSPC;
	struct replica *rp = &m->rep[index];
	uint64_t now = now_us();
	if (!rp->present) {
		int rc = sched_replica_add(d->sched, model, (int)index, m->concurrency);
		if (rc < 0 && rc != -EEXIST)
			return rc;
		memset(rp, 0, sizeof(*rp));
		rp->present = true;
	}
	snprintf(rp->host, sizeof(rp->host), "%s", host);
	rp->port = port;
	if (rp->ready != ready) {
		rp->ready = ready;
		log_inf("event=replica_%s model=%s replica=%u addr=%s:%u", ready ? "ready" : "unready", m->name, index,
			host, port);
		(void)sched_replica_set_ready(d->sched, model, (int)index, ready, now);
	}
	rearm_sched_timer(d);
	return 0;
}

int dispatch_replica_set_draining(struct dispatch *d, int model, unsigned index, bool draining)
{
	struct model *m = model_at(d, model);
	if (!m || index >= DEPLOY_MAX_REPLICAS || !m->rep[index].present)
		return -ENOENT;
	int rc = sched_replica_set_draining(d->sched, model, (int)index, draining, now_us());
	rearm_sched_timer(d);
	return rc;
}

void dispatch_replica_remove(struct dispatch *d, int model, unsigned index)
{
	struct model *m = model_at(d, model);
	if (!m || index >= DEPLOY_MAX_REPLICAS || !m->rep[index].present)
		return;
	(void)sched_replica_remove(d->sched, model, (int)index, now_us());
	if (m->rep[index].probe.handle)
		hal_invoke_cancel(d->inv, m->rep[index].probe.handle);
	memset(&m->rep[index], 0, sizeof(m->rep[index]));
	rearm_breaker_timer(d);
	rearm_sched_timer(d);
}

int dispatch_static_replicas(struct dispatch *d, const char *list, uint32_t default_deadline_ms)
{
	char buf[1024];
	if (!list || strlen(list) >= sizeof(buf))
		return -EINVAL;
	/* Validate everything before declaring anything. */
	for (int pass = 0; pass < 2; pass++) {
		unsigned next_idx[DEPLOY_MAX] = { 0 };
		snprintf(buf, sizeof(buf), "%s", list);
		char *save = NULL;
		for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
			char *eq = strchr(tok, '=');
			char *colon = strrchr(tok, ':');
			if (!eq || !colon || colon < eq || eq == tok || colon == eq + 1)
				return -EINVAL;
			*eq = '\0';
			*colon = '\0';
			char *end;
			unsigned long port = strtoul(colon + 1, &end, 10);
			if (*end || port == 0 || port > 65535 || strlen(tok) >= DEPLOY_NAME_MAX)
				return -EINVAL;
			if (pass == 0)
				continue;
			int m = dispatch_model_find(d, tok);
			if (m < 0) {
				m = dispatch_model_set(d, tok, default_deadline_ms, SLA_NORMAL, 1);
				if (m < 0)
					return m;
			}
			if (next_idx[m] >= DEPLOY_MAX_REPLICAS)
				return -ENOSPC;
			unsigned idx = next_idx[m]++;
			int rc = dispatch_replica_set(d, m, idx, eq + 1, (uint16_t)port, false);
			if (rc < 0)
				return rc;
			d->models[m].rep[idx].is_static = true;
		}
	}
	/* Ready once their readiness endpoint answers; probed from now on. */
	if (loop_timer_start(d->loop, &d->probe_timer, 0, CONFIG_DISPATCH_STATIC_PROBE_MS) < 0)
		return -ENOSPC;
	return 0;
}

/* --- requests ------------------------------------------------------------ */

int dispatch_submit(struct dispatch *d, struct dispatch_req *r)
{
	r->owner = d;
	r->state = REQ_QUEUED;
	r->replica = -1;
	r->handle = 0;
	r->id = 0;
	r->attempts = 0;
	r->queue_us = 0;
	r->service_us = 0;
	r->reason = DISPATCH_OK;
	r->http_status = 0;
	r->retry_after_s = 0;
	uint64_t now = now_us();
	enum dispatch_reason why = DISPATCH_NO_READY_REPLICA;

	if (model_at(d, r->model)) {
		if (d->arrival_fn)
			d->arrival_fn(d->arrival_arg, r->model);
		struct sched_req sr = {
			.model = r->model,
			.cls = r->cls,
			.deadline_us = r->deadline_us,
			.size = r->size,
			.ctx = r,
		};
		enum sched_refusal refusal = SCHED_REFUSE_NONE;
		uint64_t id = 0;
		d->submitting = r;
		d->submit_finished = false;
		int rc = sched_submit(d->sched, &sr, now, &id, &refusal);
		d->submitting = NULL;
		rearm_sched_timer(d);
		if (rc == 0 && !d->submit_finished) {
			r->id = id;
			return 0;
		}
		if (rc == 0)
			return -EAGAIN;   /* finished inside: reason and status already set */
		/* -EINVAL: the deadline already passed while the body arrived. */
		why = rc == -EAGAIN ? from_refusal(refusal) : DISPATCH_DEADLINE_INFEASIBLE;
		note_miss(d, r->model, why, 503);
	}
	r->state = REQ_IDLE;
	r->reason = why;
	r->http_status = 503;
	r->retry_after_s = retry_after_s(d, r, why);
	return -EAGAIN;
}

void dispatch_cancel(struct dispatch *d, struct dispatch_req *r)
{
	if (r->owner != d || r->state == REQ_IDLE)
		return;
	if (r->handle)
		hal_invoke_cancel(d->inv, r->handle);
	if (r->state == REQ_PAUSED && d->pause_fn)
		(void)d->pause_fn(d->pause_arg, d->models[r->model].name, (unsigned)r->replica, false);
	r->handle = 0;
	r->state = REQ_IDLE;
	if (r->id)
		(void)sched_cancel(d->sched, r->id, now_us());
	rearm_sched_timer(d);
}
