/* agent/cmd/berth-sim.c - replays a request trace through the real scheduler in virtual time on the simulated gateway. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/scale/autoscale.h"
#include "agent/model/config.h"
#include "agent/scale/forecast.h"
#include "agent/base/log.h"
#include "agent/base/prng.h"
#include "agent/base/version.h"
#include "agent/cmd/sim_args.h"
#include "agent/cmd/sim_stats.h"
#include "agent/infer/sched.h"
#include "hal/clock.h"
#include "ports/sim/sim.h"

/*
 * Discrete-event replay. Events: arrivals (from the trace, times divided by
 * --speedup), completions (a request's true service time is the trace's
 * cost_ms; the scheduler only learns it when --oracle-cost is given, or
 * after the fact through sched_complete), and scheduler ticks
 * (sched_next_due_us), and replicas becoming ready. Periodic hooks (struct
 * sim_hook) run at fixed virtual intervals; controllers plug in there. The
 * virtual clock of the sim port (sim_clock_set_us) follows the event time, so
 * every module reading hal_clock_now_us sees the replay's time.
 *
 * With --autoscale the autoscaler (agent/autoscale.c, as in berthd) is such a
 * hook: every --interval-s it takes each model's window from the scheduler
 * (sched_window_take), evaluates, and the replay applies the counts to the
 * scheduler's replicas. A new replica is added not ready and becomes ready
 * --startup-ms later; a replica removed by a scale-down drains (a starting
 * one is cancelled first): no new requests, the in-flight ones finish, then
 * it is removed. The forecaster sees every arrival in every mode.
 */

#define SIM_MAX_HOOKS 4
#define SIM_T0_US 1000000u            /* the sim clock starts at 1 s */

struct trace_req {
	uint64_t t_us;                    /* arrival, after --speedup */
	uint64_t deadline_rel_us;
	uint32_t cost_us;                 /* true service time */
	uint32_t size;                    /* size known at arrival (trace's size column), 0 none */
	int model;                        /* index into sim.model_names / the scheduler's models */
	enum sla_class cls;
};

/* Per-request replay state. */
struct req_state {
	uint64_t id;
	uint64_t first_dispatch_us;
	uint64_t run_start_us;            /* start of the current run (after a resume) */
	uint64_t remaining_us;            /* true service still to do */
	uint32_t version;                 /* invalidates a completion event on pause */
	uint8_t outcome;                  /* 0 pending, 1 on time, 2 late, 3 refused */
	uint8_t refusal;
	uint8_t refused_late;             /* refused after acceptance */
	uint8_t dispatched;
	int8_t replica;                   /* where it runs (for drains) */
	uint64_t wait_pred_us;            /* the wait predicted at arrival */
	uint64_t latency_us;
};

enum ev_kind { EV_DONE = 0, EV_READY };

/* EV_DONE: request a completes unless its version moved on (paused).
 * EV_READY: replica b % SCHED_MAX_REPLICAS of model b / SCHED_MAX_REPLICAS
 * becomes ready unless its start (generation a) was cancelled. */
struct sim_ev {
	uint64_t at_us;
	uint32_t a, b;
	enum ev_kind kind;
};

struct sim;
struct sim_hook {
	uint64_t period_us;
	uint64_t next_us;
	void (*fn)(struct sim *sm, uint64_t now_us);
};

enum rep_state { REP_ABSENT = 0, REP_STARTING, REP_READY, REP_DRAINING };

struct sim {
	struct sim_opts o;
	struct prng rng;                  /* --seed: the service-time jitter */
	struct trace_req *reqs;
	size_t n;
	char model_names[SCHED_MAX_MODELS][DEPLOY_NAME_MAX];
	int nmodels;
	struct req_state *st;
	struct sim_ev *ev;                /* min-heap of completions and replica starts */
	size_t nev, cap_ev;
	struct sched *sched;
	uint64_t now_us;
	struct sim_hook hooks[SIM_MAX_HOOKS];
	int nhooks;
	uint64_t pauses, resumes;
	uint64_t refused_later;           /* accepted, then refused (dispatch or tick) */
	/* replicas, as the simulated supervisor runs them */
	enum rep_state rep[SCHED_MAX_MODELS][SCHED_MAX_REPLICAS];
	uint32_t rep_gen[SCHED_MAX_MODELS][SCHED_MAX_REPLICAS];
	unsigned desired[SCHED_MAX_MODELS];
	unsigned present;                 /* starting + ready + draining, all models */
	double replica_us;                /* integral of present over time */
	/* autoscaling */
	struct autoscale *as;
	FILE *csv;
	bool started_once;                /* a start-up time has been measured */
	bool measured[SCHED_MAX_MODELS];  /* a service time has been measured */
	uint64_t violation_windows[SCHED_MAX_MODELS];
	uint64_t blocked_events;
};

/* --- completion event heap ---------------------------------------------------- */

static int ev_push(struct sim *sm, struct sim_ev e)
{
	if (sm->nev == sm->cap_ev) {
		size_t cap = sm->cap_ev ? sm->cap_ev * 2 : 64;
		struct sim_ev *p = realloc(sm->ev, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		sm->ev = p;
		sm->cap_ev = cap;
	}
	size_t i = sm->nev++;
	while (i > 0) {
		size_t par = (i - 1) / 2;
		if (sm->ev[par].at_us <= e.at_us)
			break;
		sm->ev[i] = sm->ev[par];
		i = par;
	}
	sm->ev[i] = e;
	return 0;
}

static struct sim_ev ev_pop(struct sim *sm)
{
	struct sim_ev top = sm->ev[0], last = sm->ev[--sm->nev];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= sm->nev)
			break;
		if (c + 1 < sm->nev && sm->ev[c + 1].at_us < sm->ev[c].at_us)
			c++;
		if (last.at_us <= sm->ev[c].at_us)
			break;
		sm->ev[i] = sm->ev[c];
		i = c;
	}
	if (sm->nev)
		sm->ev[i] = last;
	return top;
}

static void ev_push_or_die(struct sim *sm, struct sim_ev e)
{
	if (ev_push(sm, e) < 0) {
		fprintf(stderr, "berth-sim: out of memory\n");
		exit(1);
	}
}

/* --- scheduler callbacks: the simulated replicas ---------------------------------- */

static inline uint32_t req_of(const struct sched_dispatch *d) { return (uint32_t)(uintptr_t)d->ctx - 1; }

static void on_dispatch(void *arg, const struct sched_dispatch *d)
{
	struct sim *sm = arg;
	uint32_t i = req_of(d);
	struct req_state *r = &sm->st[i];
	r->id = d->id;
	if (!r->dispatched)
		r->first_dispatch_us = d->now_us;
	r->dispatched = 1;
	r->run_start_us = d->now_us;
	r->remaining_us = sm->reqs[i].cost_us;
	r->replica = (int8_t)d->replica;
	ev_push_or_die(sm, (struct sim_ev){ d->now_us + r->remaining_us, i, r->version, EV_DONE });
}

static void on_refuse(void *arg, const struct sched_dispatch *d, enum sched_refusal why)
{
	struct sim *sm = arg;
	struct req_state *r = &sm->st[req_of(d)];
	r->outcome = 3;
	r->refusal = (uint8_t)why;
	r->refused_late = 1;
	sm->refused_later++;
}

static int on_pause(void *arg, const struct sched_dispatch *d)
{
	struct sim *sm = arg;
	struct req_state *r = &sm->st[req_of(d)];
	uint64_t ran = d->now_us - r->run_start_us;
	r->remaining_us = ran < r->remaining_us ? r->remaining_us - ran : 0;
	r->version++;                  /* its completion event is void now */
	sm->pauses++;
	return 0;
}

static void on_resume(void *arg, const struct sched_dispatch *d)
{
	struct sim *sm = arg;
	uint32_t i = req_of(d);
	struct req_state *r = &sm->st[i];
	r->run_start_us = d->now_us;
	sm->resumes++;
	ev_push_or_die(sm, (struct sim_ev){ d->now_us + r->remaining_us, i, r->version, EV_DONE });
}

/* --- trace loading ------------------------------------------------------------------ */

static int model_index(struct sim *sm, const char *name)
{
	for (int i = 0; i < sm->nmodels; i++)
		if (!strcmp(sm->model_names[i], name))
			return i;
	if (sm->nmodels >= SCHED_MAX_MODELS || strlen(name) >= DEPLOY_NAME_MAX || !*name)
		return -1;
	strcpy(sm->model_names[sm->nmodels], name);
	return sm->nmodels++;
}

static int cmp_req(const void *a, const void *b)
{
	const struct trace_req *x = a, *y = b;
	return x->t_us < y->t_us ? -1 : x->t_us > y->t_us;
}

/* Reads the CSV trace: a header naming the columns (t_ms, model,
 * deadline_ms required; class, cost_ms, size optional), then one request a
 * line. size: a whole number (0 or empty: unknown). */
/* Columns of the trace's header line; -1 when absent. */
struct trace_cols {
	int t, model, dl, cls, cost, size;
};

static void trace_header(char *line, struct trace_cols *c)
{
	*c = (struct trace_cols){ -1, -1, -1, -1, -1, -1 };
	int i = 0;
	for (char *save = NULL, *tok = strtok_r(line, ",\r\n", &save); tok; tok = strtok_r(NULL, ",\r\n", &save), i++) {
		if (!strcmp(tok, "t_ms"))
			c->t = i;
		else if (!strcmp(tok, "model"))
			c->model = i;
		else if (!strcmp(tok, "deadline_ms"))
			c->dl = i;
		else if (!strcmp(tok, "class"))
			c->cls = i;
		else if (!strcmp(tok, "cost_ms"))
			c->cost = i;
		else if (!strcmp(tok, "size"))
			c->size = i;
	}
}

/* Parses one request line into *r. Returns 1 when kept, 0 when left out
 * (--only-class), -1 on a bad line (reported). */
static int trace_line(struct sim *sm, char *line, const struct trace_cols *c, size_t lineno, struct trace_req *r)
{
	char *fields[8] = { 0 };
	int nf = 0;
	char *p = line;
	while (nf < 8) {
		fields[nf++] = p;
		char *comma = strchr(p, ',');
		if (!comma)
			break;
		*comma = '\0';
		p = comma + 1;
	}
	p[strcspn(p, "\r\n")] = '\0';
	if (nf <= c->t || nf <= c->model || nf <= c->dl) {
		fprintf(stderr, "berth-sim: %s:%zu: too few fields\n", sm->o.trace, lineno);
		return -1;
	}
	char *end;
	double t_ms = strtod(fields[c->t], &end);
	double dl_ms = strtod(fields[c->dl], &end);
	double cost_ms = sm->o.cost_ms;
	if (c->cost >= 0 && c->cost < nf && *fields[c->cost])
		cost_ms = strtod(fields[c->cost], &end);
	bool sized = c->size >= 0 && c->size < nf && *fields[c->size];
	double size = sized ? strtod(fields[c->size], &end) : 0;
	if (sized && (*end || !(size >= 0) || size > UINT32_MAX || size != floor(size))) {
		fprintf(stderr, "berth-sim: %s:%zu: bad size (a whole number 0..%u)\n", sm->o.trace, lineno, UINT32_MAX);
		return -1;
	}
	int cls = SLA_NORMAL;
	if (c->cls >= 0 && c->cls < nf && *fields[c->cls])
		cls = sla_class_parse(fields[c->cls], strlen(fields[c->cls]), false);
	int model = model_index(sm, fields[c->model]);
	if (!(t_ms >= 0) || !(dl_ms > 0) || !(cost_ms > 0) || cls < 0 || model < 0) {
		fprintf(stderr, "berth-sim: %s:%zu: bad request line\n", sm->o.trace, lineno);
		return -1;
	}
	if (sm->o.only_class >= 0 && cls != sm->o.only_class)
		return 0;
	if (sm->o.cost_jitter_pct > 0) /* uniform in +-jitter, in steps of 0.1% of it */
		cost_ms *= 1.0 + sm->o.cost_jitter_pct / 100.0 * ((double)prng_below(&sm->rng, 2001) / 1000.0 - 1.0);
	*r = (struct trace_req){
		.t_us = (uint64_t)llround(t_ms * 1000.0 / sm->o.speedup),
		.deadline_rel_us = (uint64_t)llround(dl_ms * 1000.0),
		.cost_us = (uint32_t)llround(cost_ms * 1000.0),
		.size = (uint32_t)size,
		.model = model,
		.cls = (enum sla_class)cls,
	};
	return 1;
}

static int load_trace(struct sim *sm)
{
	FILE *f = fopen(sm->o.trace, "r");
	if (!f) {
		fprintf(stderr, "berth-sim: %s: %s\n", sm->o.trace, strerror(errno));
		return -1;
	}
	char line[512];
	struct trace_cols cols;
	size_t cap = 0, lineno = 1;
	int rc = -1;
	if (!fgets(line, sizeof(line), f)) {
		fprintf(stderr, "berth-sim: %s: empty trace\n", sm->o.trace);
		goto out;
	}
	trace_header(line, &cols);
	if (cols.t < 0 || cols.model < 0 || cols.dl < 0) {
		fprintf(stderr, "berth-sim: %s:1: header must name t_ms, model, deadline_ms\n", sm->o.trace);
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (line[0] == '\n' || line[0] == '\r' || line[0] == '#')
			continue;
		if (sm->n == cap) {
			cap = cap ? cap * 2 : 1024;
			struct trace_req *np = realloc(sm->reqs, cap * sizeof(*np));
			if (!np)
				goto out;
			sm->reqs = np;
		}
		int kept = trace_line(sm, line, &cols, lineno, &sm->reqs[sm->n]);
		if (kept < 0)
			goto out;
		sm->n += (size_t)kept;
	}
	if (!sm->n) {
		fprintf(stderr, "berth-sim: %s: no requests%s\n", sm->o.trace,
			sm->o.only_class >= 0 ? " of that class" : "");
		goto out;
	}
	qsort(sm->reqs, sm->n, sizeof(*sm->reqs), cmp_req);
	rc = 0;
out:
	fclose(f);
	return rc;
}

/* --- replicas: started with a delay, drained on the way out ------------------------------ */

static void rep_set(struct sim *sm, int m, int r, enum rep_state st)
{
	sm->present += (st != REP_ABSENT) - (sm->rep[m][r] != REP_ABSENT);
	sm->rep[m][r] = st;
}

static void sched_ok(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "berth-sim: %s: %s\n", what, strerror(-rc));
		exit(1);
	}
}

/* Adds replica r of model m to the scheduler, not ready; it turns ready
 * --startup-ms later (at once with 0). */
static void replica_start(struct sim *sm, int m, int r)
{
	sched_ok(sched_replica_add(sm->sched, m, r, sm->o.concurrency), "replica add");
	rep_set(sm, m, r, REP_STARTING);
	uint32_t gen = ++sm->rep_gen[m][r];
	ev_push_or_die(sm, (struct sim_ev){ sm->now_us + (uint64_t)sm->o.startup_ms * 1000u, gen,
					    (uint32_t)(m * SCHED_MAX_REPLICAS + r), EV_READY });
}

static void replica_ready(struct sim *sm, struct sim_ev e)
{
	int m = (int)(e.b / SCHED_MAX_REPLICAS), r = (int)(e.b % SCHED_MAX_REPLICAS);
	if (sm->rep[m][r] != REP_STARTING || sm->rep_gen[m][r] != e.a)
		return; /* cancelled by a scale-down */
	rep_set(sm, m, r, REP_READY);
	sm->started_once = true;
	sched_ok(sched_replica_set_ready(sm->sched, m, r, true, sm->now_us), "replica ready");
}

/* A draining replica leaves once nothing runs on it any more. */
static void replica_reap(struct sim *sm, int m, int r)
{
	struct sched_replica_info ri;
	if (sm->rep[m][r] != REP_DRAINING || sched_replica_get(sm->sched, m, r, &ri) < 0 || ri.inflight)
		return;
	sched_ok(sched_replica_remove(sm->sched, m, r, sm->now_us), "replica remove");
	rep_set(sm, m, r, REP_ABSENT);
}

/* Applies a desired count: starts replicas in the lowest free indices;
 * removes by cancelling starting ones first, then draining the highest
 * ready ones. */
static void set_replicas(struct sim *sm, int m, unsigned want)
{
	unsigned have = 0;
	for (int r = 0; r < SCHED_MAX_REPLICAS; r++)
		have += sm->rep[m][r] == REP_STARTING || sm->rep[m][r] == REP_READY;
	for (int r = 0; r < SCHED_MAX_REPLICAS && have < want; r++) {
		if (sm->rep[m][r] == REP_ABSENT) {
			replica_start(sm, m, r);
			have++;
		}
	}
	for (int r = SCHED_MAX_REPLICAS - 1; r >= 0 && have > want; r--) {
		if (sm->rep[m][r] == REP_STARTING) {
			sched_ok(sched_replica_remove(sm->sched, m, r, sm->now_us), "replica cancel");
			rep_set(sm, m, r, REP_ABSENT);
			have--;
		}
	}
	for (int r = SCHED_MAX_REPLICAS - 1; r >= 0 && have > want; r--) {
		if (sm->rep[m][r] == REP_READY) {
			sched_ok(sched_replica_set_draining(sm->sched, m, r, true, sm->now_us), "replica drain");
			rep_set(sm, m, r, REP_DRAINING);
			replica_reap(sm, m, r);
			have--;
		}
	}
	sm->desired[m] = want;
}

static unsigned count_state(const struct sim *sm, int m, enum rep_state st)
{
	unsigned n = 0;
	for (int r = 0; r < SCHED_MAX_REPLICAS; r++)
		n += sm->rep[m][r] == st;
	return n;
}

/* --- autoscaling hook ------------------------------------------------------------------------ */

/* The forecasters' clock: trace time, so that the daily phase follows the trace. */
static uint64_t wall_ms(uint64_t now_us) { return (now_us - SIM_T0_US) / 1000u; }

static void on_blocked(void *arg, const struct autoscale_blocked *b)
{
	struct sim *sm = arg;
	(void)b;
	if (sm->o.autoscale != AS_OFF) /* off: the decisions are not applied */
		sm->blocked_events++;
}

/* Requests of a window whose outcome is known (the denominator of sched_compliance). */
static uint64_t window_decided(const struct sched_model_stats *st, uint64_t *on_time, uint64_t *ok)
{
	uint64_t d = 0;
	*on_time = *ok = 0;
	for (int c = 0; c < SLA_NCLASSES; c++) {
		const struct sched_class_stats *x = &st->cls[c];
		*on_time += x->on_time;
		*ok += x->on_time + x->late;
		d += x->on_time + x->late + x->failed + sched_refused_total(x) + x->cancelled;
	}
	return d;
}

/* Every --interval-s: the scheduler's windows and the node go to
 * autoscale_evaluate; its counts are applied to the replicas (not with
 * --autoscale off, where only the forecaster runs alongside). */
static void autoscale_hook(struct sim *sm, uint64_t now_us)
{
	struct autoscale_window w[DEPLOY_MAX];
	struct autoscale_decision out[DEPLOY_MAX];
	struct autoscale_node node = { .ncpu = sm->o.slots, .mem_total_bytes = sm->o.node_mem,
				       .mem_used_bytes = sm->o.base_mem };
	memset(w, 0, sizeof(w));
	memset(out, 0, sizeof(out));
	double busy_us = 0, window_us = 1;
	for (int m = 0; m < sm->nmodels; m++) {
		struct sched_window sw;
		sched_ok(sched_window_take(sm->sched, m, now_us, &sw), "window");
		uint64_t ok;
		struct autoscale_window *x = &w[m];
		x->offered = window_decided(&sw.st, &x->on_time, &ok);
		x->replicas = sm->desired[m];
		x->replicas_ready = sw.replicas_ready;
		window_us = sw.end_us > sw.start_us ? (double)(sw.end_us - sw.start_us) : 1;
		/* Mean service time of the window; the EWMA once the model has
		 * been measured but nothing finished in this window. */
		if (ok) {
			x->service_ms = (double)sw.busy_us / (double)ok / 1000.0;
			sm->measured[m] = true;
		} else if (sm->measured[m]) {
			x->service_ms = sw.ewma_us / 1000.0;
		}
		x->cpu_cores = (double)sw.busy_us / window_us;
		x->mem_bytes = (uint64_t)sw.replicas_ready * sm->o.replica_mem;
		x->startup_ms = sm->started_once ? sm->o.startup_ms : 0;
		busy_us += (double)sw.busy_us;
		node.mem_used_bytes += (uint64_t)(count_state(sm, m, REP_READY) + count_state(sm, m, REP_DRAINING)) *
				       sm->o.replica_mem;
	}
	node.cpu_used_cores = busy_us / window_us;
	autoscale_evaluate(sm->as, now_us / 1000u, wall_ms(now_us), w, &node, out);
	for (int m = 0; m < sm->nmodels; m++) {
		const struct autoscale_window *x = &w[m];
		if (x->offered && out[m].compliance < sm->o.target_low)
			sm->violation_windows[m]++;
		if (sm->o.autoscale != AS_OFF)
			set_replicas(sm, m, out[m].replicas);
		if (sm->csv)
			fprintf(sm->csv, "%.3f,%s,%u,%u,%.4f,%" PRIu64 ",%.2f,%u\n", (double)wall_ms(now_us) / 1e3,
				sm->model_names[m], sm->desired[m], count_state(sm, m, REP_READY), out[m].compliance,
				x->offered, out[m].forecast_rps, out[m].need);
	}
}

static int autoscale_setup(struct sim *sm)
{
	struct autoscale_params p = {
		.interval_s = sm->o.interval_s, .target_low = sm->o.target_low, .target_high = sm->o.target_high,
		.cooldown_s = sm->o.cooldown_s, .cpu_ceiling_pct = 80, .mem_ceiling_pct = 80,
		.predictive = sm->o.autoscale == AS_PREDICTIVE, .forecast = true, .bucket_s = sm->o.bucket_s,
		.season_s = sm->o.day_s, .util_pct = CONFIG_AUTOSCALE_UTIL_PCT, .slots = sm->o.slots,
	};
	struct autoscale_events ev = { on_blocked, sm };
	sm->as = autoscale_create(&p, &ev);
	if (!sm->as)
		return -1;
	for (int m = 0; m < sm->nmodels; m++) {
		struct autoscale_deploy d = { .cls = SLA_NORMAL, .replicas_min = sm->o.rmin,
					      .replicas_max = sm->o.rmax, .concurrency = sm->o.concurrency,
					      .mem_bytes = sm->o.replica_mem, .startup_ms = sm->o.startup_ms };
		for (size_t i = 0; i < sm->n; i++) {
			if (sm->reqs[i].model == m) {
				d.cls = sm->reqs[i].cls; /* the class of its first request */
				break;
			}
		}
		snprintf(d.name, sizeof(d.name), "%s", sm->model_names[m]);
		if (autoscale_add(sm->as, &d, wall_ms(SIM_T0_US)) != m)
			return -1;
	}
	if (sm->o.csv_path) {
		sm->csv = fopen(sm->o.csv_path, "w");
		if (!sm->csv) {
			fprintf(stderr, "berth-sim: %s: %s\n", sm->o.csv_path, strerror(errno));
			return -1;
		}
		fprintf(sm->csv, "t_s,model,replicas,ready,compliance,offered,forecast_rps,need\n");
	}
	sm->hooks[sm->nhooks++] = (struct sim_hook){ .period_us = (uint64_t)sm->o.interval_s * 1000000u,
						      .fn = autoscale_hook };
	return 0;
}

/* --- the replay ------------------------------------------------------------------------ */

static void advance(struct sim *sm, uint64_t t)
{
	if (t > sm->now_us) {
		sm->replica_us += (double)sm->present * (double)(t - sm->now_us);
		sm->now_us = t;
	}
	sim_clock_set_us(sm->now_us);
}

static void complete_due(struct sim *sm, struct sim_ev e)
{
	struct req_state *r = &sm->st[e.a];
	if (e.b != r->version || r->outcome)
		return;
	const struct trace_req *q = &sm->reqs[e.a];
	uint64_t deadline = SIM_T0_US + q->t_us + q->deadline_rel_us;
	r->latency_us = sm->now_us - (SIM_T0_US + q->t_us);
	r->outcome = sm->now_us <= deadline ? 1 : 2;
	/* Wall time from dispatch, as a real dispatcher measures it; the
	 * scheduler removes the time the replica spent paused. */
	if (sched_complete(sm->sched, r->id, SCHED_DONE_OK, sm->now_us - r->first_dispatch_us, sm->now_us) < 0) {
		fprintf(stderr, "berth-sim: completion of an unknown request\n");
		exit(1);
	}
	replica_reap(sm, q->model, r->replica);
}

/* The scheduler with the trace's models, the initial replicas up, and the hooks armed. */
static int replay_setup(struct sim *sm)
{
	struct sched_params p;
	sched_params_default(&p, sm->o.slots);
	p.policy = sm->o.policy;
	p.slots = sm->o.slots;
	p.reserve_urgent = sm->o.reserve;
	if (p.reserve_urgent >= p.slots)
		p.reserve_urgent = p.slots - 1;
	struct sched_callbacks cb = {
		.dispatch = on_dispatch,
		.refuse = on_refuse,
		.pause = on_pause,
		.resume = on_resume,
		.arg = sm,
	};
	sm->sched = sched_create(&p, &cb);
	if (!sm->sched)
		return -1;
	sm->now_us = SIM_T0_US;
	sim_clock_set_us(sm->now_us);
	for (int m = 0; m < sm->nmodels; m++) {
		int mi = sched_model_add(sm->sched, sm->model_names[m], 0);
		if (mi != m)
			return -1;
		/* The initial replicas are up when the replay starts. */
		for (unsigned r = 0; r < sm->o.replicas; r++) {
			if (sched_replica_add(sm->sched, mi, (int)r, sm->o.concurrency) < 0 ||
			    sched_replica_set_ready(sm->sched, mi, (int)r, true, SIM_T0_US) < 0)
				return -1;
			rep_set(sm, m, (int)r, REP_READY);
		}
		sm->desired[m] = sm->o.replicas;
	}
	if (sm->o.autoscale != AS_NONE && autoscale_setup(sm) < 0)
		return -1;
	for (int h = 0; h < sm->nhooks; h++)
		sm->hooks[h].next_us = SIM_T0_US + sm->hooks[h].period_us;
	return 0;
}

/* Request next of the trace arrives now. */
static int arrive(struct sim *sm, size_t next)
{
	const struct trace_req *q = &sm->reqs[next];
	advance(sm, SIM_T0_US + q->t_us); /* its arrival time */
	if (sm->as)
		autoscale_observe(sm->as, q->model, wall_ms(sm->now_us), 1);
	struct sched_req rq = {
		.model = q->model,
		.cls = q->cls,
		.deadline_us = sm->now_us + q->deadline_rel_us,
		.cost_hint_us = sm->o.oracle ? q->cost_us : 0,
		.size = sm->o.ignore_size ? 0 : q->size,
		.ctx = (void *)(uintptr_t)(next + 1),
	};
	enum sched_refusal why;
	sm->st[next].wait_pred_us = sched_predict_wait_us(sm->sched, q->cls, rq.deadline_us, sm->now_us);
	int rc = sched_submit(sm->sched, &rq, sm->now_us, NULL, &why);
	if (rc == -EAGAIN) {
		sm->st[next].outcome = 3;
		sm->st[next].refusal = (uint8_t)why;
	} else if (rc < 0) {
		fprintf(stderr, "berth-sim: submit failed: %s\n", strerror(-rc));
		return -1;
	}
	return 0;
}

static int replay(struct sim *sm)
{
	if (replay_setup(sm) < 0)
		return -1;
	size_t next = 0;
	for (;;) {
		uint64_t t_arr = next < sm->n ? SIM_T0_US + sm->reqs[next].t_us : UINT64_MAX;
		uint64_t t_ev = sm->nev ? sm->ev[0].at_us : UINT64_MAX;
		uint64_t t_tick = sched_next_due_us(sm->sched);
		uint64_t t_hook = UINT64_MAX;
		int hook = -1;
		for (int h = 0; h < sm->nhooks; h++) {
			if (sm->hooks[h].next_us < t_hook) {
				t_hook = sm->hooks[h].next_us;
				hook = h;
			}
		}
		/* Hooks only run while there is work left, so the replay ends. */
		if (t_arr == UINT64_MAX && t_ev == UINT64_MAX && t_tick == UINT64_MAX)
			break;
		if (t_ev <= t_arr && t_ev <= t_tick && t_ev <= t_hook) {
			advance(sm, t_ev);
			struct sim_ev e = ev_pop(sm);
			if (e.kind == EV_DONE)
				complete_due(sm, e);
			else
				replica_ready(sm, e);
		} else if (t_tick <= t_arr && t_tick <= t_hook) {
			advance(sm, t_tick);
			sched_tick(sm->sched, sm->now_us);
		} else if (t_hook <= t_arr) {
			advance(sm, t_hook);
			sm->hooks[hook].next_us += sm->hooks[hook].period_us;
			sm->hooks[hook].fn(sm, sm->now_us);
		} else {
			if (arrive(sm, next) < 0)
				return -1;
			next++;
		}
	}
	return 0;
}

/* --- report ------------------------------------------------------------------------------- */

/* Per model: violation seconds and the forecaster's MASE; then the RESULT
 * line (MASE over all models: summed errors, model over naive). */
static void report_autoscale(struct sim *sm, double urgent_miss_pct)
{
	uint64_t viol = 0;
	double em = 0, en = 0;
	for (int m = 0; m < sm->nmodels; m++) {
		struct forecast_stats st;
		forecast_get_stats(autoscale_forecast(sm->as, m), &st);
		em += st.abs_err_model;
		en += st.abs_err_naive;
		viol += sm->violation_windows[m];
		printf("model=%s replicas=%u violation_s=%" PRIu64 " mase=%.3f forecast_buckets=%" PRIu64
		       " seasonal=%d\n",
		       sm->model_names[m], sm->desired[m], sm->violation_windows[m] * sm->o.interval_s, st.mase,
		       st.buckets, st.seasonal);
	}
	printf("RESULT autoscale=%s violation_s=%" PRIu64 " replica_s=%.0f mase=%.3f urgent_miss_pct=%.3f "
	       "blocked_events=%" PRIu64 " policy=%s\n",
	       sim_args_as_modes[sm->o.autoscale], viol * sm->o.interval_s, sm->replica_us / 1e6, en > 0 ? em / en : 0.0,
	       urgent_miss_pct, sm->blocked_events, sched_policy_name(sm->o.policy));
}

/* Refusals after acceptance, and the wait predicted at arrival against the
 * actual wait for a first slot of the requests that were dispatched. */
struct wait_figs {
	uint64_t refused, refused_late;
	double late_pct, err_p50_ms, err_p95_ms;
};

static void report_waits(struct sim *sm, uint64_t *buf, struct wait_figs *w)
{
	uint64_t late_cls[SLA_NCLASSES] = { 0 };
	size_t nw = 0;
	*w = (struct wait_figs){ 0 };
	for (size_t i = 0; i < sm->n; i++) {
		const struct req_state *r = &sm->st[i];
		if (r->outcome == 3) {
			w->refused++;
			w->refused_late += r->refused_late;
			late_cls[sm->reqs[i].cls] += r->refused_late;
		}
		if (r->dispatched) {
			uint64_t actual = r->first_dispatch_us - (SIM_T0_US + sm->reqs[i].t_us);
			buf[nw++] = actual > r->wait_pred_us ? actual - r->wait_pred_us : r->wait_pred_us - actual;
		}
	}
	sim_stats_sort(buf, nw);
	w->err_p50_ms = sim_stats_pct_ms(buf, nw, 50);
	w->err_p95_ms = sim_stats_pct_ms(buf, nw, 95);
	w->late_pct = w->refused ? 100.0 * (double)w->refused_late / (double)w->refused : 0;
	printf("refusals=%" PRIu64 " after_acceptance=%" PRIu64 " (%.1f%%: urgent=%" PRIu64 " normal=%" PRIu64
	       " batch=%" PRIu64 ")\n",
	       w->refused, w->refused_late, w->late_pct, late_cls[SLA_URGENT], late_cls[SLA_NORMAL], late_cls[SLA_BATCH]);
	printf("wait_error_ms (|predicted at arrival - actual|, %zu dispatched): p50=%.2f p95=%.2f\n", nw,
	       w->err_p50_ms, w->err_p95_ms);
}

static int report(struct sim *sm)
{
	uint64_t *lat = malloc(sm->n * sizeof(*lat));
	if (!lat)
		return -1;
	uint64_t span_us = sm->reqs[sm->n - 1].t_us - sm->reqs[0].t_us;
	double dur_s = (double)(span_us ? span_us : 1) / 1e6;
	double work_s = 0, useful_s = 0;
	uint64_t ontime_all = 0;
	double miss_pct[SLA_NCLASSES] = { 0 };
	uint64_t refused_by[SCHED_NREFUSALS] = { 0 };

	printf("berth-sim %s trace=%s requests=%zu policy=%s slots=%u replicas=%u autoscale=%s reserve=%u "
	       "speedup=%g oracle_cost=%s only_class=%s seed=%lu",
	       BERTH_VERSION, sm->o.trace, sm->n, sched_policy_name(sm->o.policy), sm->o.slots, sm->o.replicas,
	       sm->o.autoscale == AS_NONE ? "none" : sim_args_as_modes[sm->o.autoscale],
	       sm->o.policy == SCHED_EDF_RESERVE ? sm->o.reserve : 0, sm->o.speedup, sm->o.oracle ? "yes" : "no",
	       sm->o.only_class >= 0 ? sla_class_name((enum sla_class)sm->o.only_class) : "all", sm->o.seed);
	if (sm->o.cost_jitter_pct > 0) /* the seed matters only then */
		printf(" cost_jitter_pct=%g", sm->o.cost_jitter_pct);
	printf("\n");
	printf("%-7s %8s %8s %8s %8s %7s %9s %9s\n", "class", "offered", "on_time", "late", "refused", "miss%",
	       "p50_ms", "p99_ms");
	for (int c = 0; c < SLA_NCLASSES; c++) {
		uint64_t off = 0, on = 0, late = 0, ref = 0;
		size_t nl = 0;
		for (size_t i = 0; i < sm->n; i++) {
			if (sm->reqs[i].cls != (enum sla_class)c)
				continue;
			const struct req_state *r = &sm->st[i];
			off++;
			work_s += sm->reqs[i].cost_us / 1e6;
			if (r->outcome == 1) {
				on++;
				lat[nl++] = r->latency_us;
				useful_s += sm->reqs[i].cost_us / 1e6;
			} else if (r->outcome == 2) {
				late++;
			} else if (r->outcome == 3) {
				ref++;
				refused_by[r->refusal]++;
			}
		}
		sim_stats_sort(lat, nl);
		miss_pct[c] = off ? 100.0 * (double)(late + ref) / (double)off : 0;
		ontime_all += on;
		printf("%-7s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %7.2f %9.2f %9.2f\n",
		       sla_class_name((enum sla_class)c), off, on, late, ref, miss_pct[c], sim_stats_pct_ms(lat, nl, 50),
		       sim_stats_pct_ms(lat, nl, 99));
	}
	double load = work_s / (sm->o.slots * dur_s);
	double useful = useful_s / (sm->o.slots * dur_s);
	double goodput = (double)ontime_all / dur_s;
	struct wait_figs wf;
	report_waits(sm, lat, &wf);
	printf("refused_by_reason");
	for (int r = 1; r < SCHED_NREFUSALS; r++)
		printf(" %s=%" PRIu64, sched_refusal_name((enum sched_refusal)r), refused_by[r]);
	printf(" (after acceptance: %" PRIu64 ")\npreemptions=%" PRIu64 " resumes=%" PRIu64 "\n", sm->refused_later,
	       sm->pauses, sm->resumes);
	printf("duration_s=%.3f offered_load=%.3f goodput_per_s=%.3f useful_util=%.3f\n", dur_s, load, goodput,
	       useful);
	if (sm->as) {
		report_autoscale(sm, miss_pct[SLA_URGENT]);
		free(lat);
		return 0;
	}
	printf("RESULT policy=%s load=%.3f urgent_miss_pct=%.2f normal_miss_pct=%.2f batch_miss_pct=%.2f "
	       "goodput_per_s=%.3f useful_util=%.3f ontime=%" PRIu64 " oracle_cost=%d only_class=%s size=%s "
	       "refused=%" PRIu64 " refused_late=%" PRIu64 " late_refusal_pct=%.1f wait_err_p50_ms=%.2f "
	       "wait_err_p95_ms=%.2f\n",
	       sched_policy_name(sm->o.policy), load, miss_pct[SLA_URGENT], miss_pct[SLA_NORMAL],
	       miss_pct[SLA_BATCH], goodput, useful, ontime_all, sm->o.oracle,
	       sm->o.only_class >= 0 ? sla_class_name((enum sla_class)sm->o.only_class) : "all",
	       sm->o.ignore_size ? "ignored" : "used", wf.refused, wf.refused_late, wf.late_pct, wf.err_p50_ms,
	       wf.err_p95_ms);
	free(lat);
	return 0;
}

/* --- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	if (IS_ENABLED(CONFIG_SITE) && argc > 1 && !strcmp(argv[1], "--site"))
		return sim_site_main(argc, argv);
	struct sim sm;
	memset(&sm, 0, sizeof(sm));
	int rc = sim_args_parse(argc, argv, &sm.o);
	if (rc)
		return rc < 0 ? 2 : 0;
	prng_seed(&sm.rng, sm.o.seed);
	if (sm.o.autoscale == AS_REACTIVE || sm.o.autoscale == AS_PREDICTIVE)
		sm.o.replicas = sm.o.rmin;
	else if (!sm.o.replicas && sm.o.autoscale == AS_OFF)
		sm.o.replicas = sm.o.rmin;
	else if (!sm.o.replicas)
		sm.o.replicas = sm.o.slots < SCHED_MAX_REPLICAS ? sm.o.slots : SCHED_MAX_REPLICAS;
	/* scale_blocked warnings are counted in the RESULT line instead */
	log_set_level(sm.o.verbose ? LOG_LEVEL_DBG : sm.o.autoscale == AS_NONE ? LOG_LEVEL_WRN : LOG_LEVEL_ERR);

	rc = 1;
	if (load_trace(&sm) < 0)
		goto out;
	sm.st = calloc(sm.n, sizeof(*sm.st));
	if (!sm.st)
		goto out;
	if (replay(&sm) < 0) {
		fprintf(stderr, "berth-sim: replay failed\n");
		goto out;
	}
	if (report(&sm) < 0)
		goto out;
	rc = 0;
out:
	if (sm.csv)
		fclose(sm.csv);
	autoscale_destroy(sm.as);
	sched_destroy(sm.sched);
	free(sm.ev);
	free(sm.st);
	free(sm.reqs);
	return rc;
}
