/* ports/sim/berth-sim.c - replays a request trace through the real scheduler in virtual time on the simulated gateway. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/sched.h"
#include "agent/version.h"
#include "hal/clock.h"
#include "ports/sim/sim.h"
#include "ports/sim/sim_autoscale.h"

/*
 * Discrete-event replay. Events: arrivals (from the trace, times divided by
 * --speedup), completions (a request's true service time is the trace's
 * cost_ms; the scheduler only learns it when --oracle-cost is given, or
 * after the fact through sched_complete), and scheduler ticks
 * (sched_next_due_us). Periodic hooks (struct sim_hook) run at fixed virtual
 * intervals; controllers such as an autoscaler plug in there. The virtual
 * clock of the sim port (sim_clock_set_us) follows the event time, so every
 * module reading hal_clock_now_us sees the replay's time.
 */

#define SIM_MAX_HOOKS 4
#define SIM_T0_US 1000000u            /* the sim clock starts at 1 s */
#define DEFAULT_COST_MS 10.0          /* when the trace has no cost_ms column */

struct trace_req {
	uint64_t t_us;                    /* arrival, after --speedup */
	uint64_t deadline_rel_us;
	uint32_t cost_us;                 /* true service time */
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
	uint64_t latency_us;
};

struct done_ev {
	uint64_t at_us;
	uint32_t req;
	uint32_t version;
};

struct sim;
struct sim_hook {
	uint64_t period_us;
	uint64_t next_us;
	void (*fn)(struct sim *sm, uint64_t now_us);
};

struct sim_opts {
	const char *trace;
	enum sched_policy policy;
	unsigned slots;
	unsigned replicas;
	unsigned reserve;
	double speedup;
	int oracle;
	int only_class;                   /* -1: all */
	unsigned long seed;
	int verbose;
};

struct sim {
	struct sim_opts o;
	struct trace_req *reqs;
	size_t n;
	char model_names[SCHED_MAX_MODELS][DEPLOY_NAME_MAX];
	int nmodels;
	struct req_state *st;
	struct done_ev *ev;               /* min-heap of completions */
	size_t nev, cap_ev;
	struct sched *sched;
	uint64_t now_us;
	struct sim_hook hooks[SIM_MAX_HOOKS];
	int nhooks;
	uint64_t pauses, resumes;
	uint64_t refused_later;           /* accepted, then refused (dispatch or tick) */
};

/* --- completion event heap ---------------------------------------------------- */

static int ev_push(struct sim *sm, struct done_ev e)
{
	if (sm->nev == sm->cap_ev) {
		size_t cap = sm->cap_ev ? sm->cap_ev * 2 : 64;
		struct done_ev *p = realloc(sm->ev, cap * sizeof(*p));
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

static struct done_ev ev_pop(struct sim *sm)
{
	struct done_ev top = sm->ev[0], last = sm->ev[--sm->nev];
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

/* --- scheduler callbacks: the simulated replicas ---------------------------------- */

static inline uint32_t req_of(const struct sched_dispatch *d) { return (uint32_t)(uintptr_t)d->ctx - 1; }

static void on_dispatch(void *arg, const struct sched_dispatch *d)
{
	struct sim *sm = arg;
	uint32_t i = req_of(d);
	struct req_state *r = &sm->st[i];
	r->id = d->id;
	r->first_dispatch_us = d->now_us;
	r->run_start_us = d->now_us;
	r->remaining_us = sm->reqs[i].cost_us;
	if (ev_push(sm, (struct done_ev){ d->now_us + r->remaining_us, i, r->version }) < 0) {
		fprintf(stderr, "berth-sim: out of memory\n");
		exit(1);
	}
}

static void on_refuse(void *arg, const struct sched_dispatch *d, enum sched_refusal why)
{
	struct sim *sm = arg;
	struct req_state *r = &sm->st[req_of(d)];
	r->outcome = 3;
	r->refusal = (uint8_t)why;
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
	if (ev_push(sm, (struct done_ev){ d->now_us + r->remaining_us, i, r->version }) < 0) {
		fprintf(stderr, "berth-sim: out of memory\n");
		exit(1);
	}
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
 * deadline_ms required; class, cost_ms optional), then one request a line. */
static int load_trace(struct sim *sm)
{
	FILE *f = fopen(sm->o.trace, "r");
	if (!f) {
		fprintf(stderr, "berth-sim: %s: %s\n", sm->o.trace, strerror(errno));
		return -1;
	}
	char line[512];
	int col_t = -1, col_model = -1, col_dl = -1, col_cls = -1, col_cost = -1;
	size_t cap = 0, lineno = 0;
	int rc = -1;
	if (!fgets(line, sizeof(line), f)) {
		fprintf(stderr, "berth-sim: %s: empty trace\n", sm->o.trace);
		goto out;
	}
	lineno = 1;
	{
		int c = 0;
		for (char *save = NULL, *tok = strtok_r(line, ",\r\n", &save); tok;
		     tok = strtok_r(NULL, ",\r\n", &save), c++) {
			if (!strcmp(tok, "t_ms"))
				col_t = c;
			else if (!strcmp(tok, "model"))
				col_model = c;
			else if (!strcmp(tok, "deadline_ms"))
				col_dl = c;
			else if (!strcmp(tok, "class"))
				col_cls = c;
			else if (!strcmp(tok, "cost_ms"))
				col_cost = c;
		}
	}
	if (col_t < 0 || col_model < 0 || col_dl < 0) {
		fprintf(stderr, "berth-sim: %s:1: header must name t_ms, model, deadline_ms\n", sm->o.trace);
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (line[0] == '\n' || line[0] == '\r' || line[0] == '#')
			continue;
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
		if (nf <= col_t || nf <= col_model || nf <= col_dl) {
			fprintf(stderr, "berth-sim: %s:%zu: too few fields\n", sm->o.trace, lineno);
			goto out;
		}
		char *end;
		double t_ms = strtod(fields[col_t], &end);
		double dl_ms = strtod(fields[col_dl], &end);
		double cost_ms = DEFAULT_COST_MS;
		if (col_cost >= 0 && col_cost < nf && *fields[col_cost])
			cost_ms = strtod(fields[col_cost], &end);
		int cls = SLA_NORMAL;
		if (col_cls >= 0 && col_cls < nf && *fields[col_cls])
			cls = sched_class_parse(fields[col_cls]);
		int model = model_index(sm, fields[col_model]);
		if (!(t_ms >= 0) || !(dl_ms > 0) || !(cost_ms > 0) || cls < 0 || model < 0) {
			fprintf(stderr, "berth-sim: %s:%zu: bad request line\n", sm->o.trace, lineno);
			goto out;
		}
		if (sm->o.only_class >= 0 && cls != sm->o.only_class)
			continue;
		if (sm->n == cap) {
			cap = cap ? cap * 2 : 1024;
			struct trace_req *np = realloc(sm->reqs, cap * sizeof(*np));
			if (!np)
				goto out;
			sm->reqs = np;
		}
		sm->reqs[sm->n++] = (struct trace_req){
			.t_us = (uint64_t)llround(t_ms * 1000.0 / sm->o.speedup),
			.deadline_rel_us = (uint64_t)llround(dl_ms * 1000.0),
			.cost_us = (uint32_t)llround(cost_ms * 1000.0),
			.model = model,
			.cls = (enum sla_class)cls,
		};
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

/* --- the replay ------------------------------------------------------------------------ */

static void advance(struct sim *sm, uint64_t t)
{
	if (t > sm->now_us)
		sm->now_us = t;
	sim_clock_set_us(sm->now_us);
}

static void complete_due(struct sim *sm, struct done_ev e)
{
	struct req_state *r = &sm->st[e.req];
	if (e.version != r->version || r->outcome)
		return;
	const struct trace_req *q = &sm->reqs[e.req];
	uint64_t deadline = SIM_T0_US + q->t_us + q->deadline_rel_us;
	r->latency_us = sm->now_us - (SIM_T0_US + q->t_us);
	r->outcome = sm->now_us <= deadline ? 1 : 2;
	/* Wall time from dispatch, as a real dispatcher measures it; the
	 * scheduler removes the time the replica spent paused. */
	if (sched_complete(sm->sched, r->id, SCHED_DONE_OK, sm->now_us - r->first_dispatch_us, sm->now_us) < 0) {
		fprintf(stderr, "berth-sim: completion of an unknown request\n");
		exit(1);
	}
}

static int replay(struct sim *sm)
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
	for (int m = 0; m < sm->nmodels; m++) {
		int mi = sched_model_add(sm->sched, sm->model_names[m], 0);
		if (mi != m)
			return -1;
		for (unsigned r = 0; r < sm->o.replicas; r++) {
			if (sched_replica_add(sm->sched, mi, (int)r, 1) < 0 ||
			    sched_replica_set_ready(sm->sched, mi, (int)r, true, SIM_T0_US) < 0)
				return -1;
		}
	}
	sm->now_us = SIM_T0_US;
	sim_clock_set_us(sm->now_us);
	for (int h = 0; h < sm->nhooks; h++)
		sm->hooks[h].next_us = SIM_T0_US + sm->hooks[h].period_us;

	size_t next = 0;
	for (;;) {
		uint64_t t_arr = next < sm->n ? SIM_T0_US + sm->reqs[next].t_us : UINT64_MAX;
		uint64_t t_done = sm->nev ? sm->ev[0].at_us : UINT64_MAX;
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
		if (t_arr == UINT64_MAX && t_done == UINT64_MAX && t_tick == UINT64_MAX)
			break;
		if (t_done <= t_arr && t_done <= t_tick && t_done <= t_hook) {
			advance(sm, t_done);
			complete_due(sm, ev_pop(sm));
		} else if (t_tick <= t_arr && t_tick <= t_hook) {
			advance(sm, t_tick);
			sched_tick(sm->sched, sm->now_us);
		} else if (t_hook <= t_arr) {
			advance(sm, t_hook);
			sm->hooks[hook].next_us += sm->hooks[hook].period_us;
			sm->hooks[hook].fn(sm, sm->now_us);
		} else {
			const struct trace_req *q = &sm->reqs[next];
			advance(sm, t_arr);
			struct sched_req rq = {
				.model = q->model,
				.cls = q->cls,
				.deadline_us = sm->now_us + q->deadline_rel_us,
				.cost_hint_us = sm->o.oracle ? q->cost_us : 0,
				.ctx = (void *)(uintptr_t)(next + 1),
			};
			enum sched_refusal why;
			int rc = sched_submit(sm->sched, &rq, sm->now_us, NULL, &why);
			if (rc == -EAGAIN) {
				sm->st[next].outcome = 3;
				sm->st[next].refusal = (uint8_t)why;
			} else if (rc < 0) {
				fprintf(stderr, "berth-sim: submit failed: %s\n", strerror(-rc));
				return -1;
			}
			next++;
		}
	}
	return 0;
}

/* --- report ------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, size_t n, double pct)
{
	if (!n)
		return 0;
	size_t i = (size_t)ceil(pct / 100.0 * (double)n);
	if (i)
		i--;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
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

	printf("berth-sim %s trace=%s requests=%zu policy=%s slots=%u replicas=%u reserve=%u speedup=%g "
	       "oracle_cost=%s only_class=%s seed=%lu\n",
	       BERTH_VERSION, sm->o.trace, sm->n, sched_policy_name(sm->o.policy), sm->o.slots, sm->o.replicas,
	       sm->o.policy == SCHED_EDF_RESERVE ? sm->o.reserve : 0, sm->o.speedup, sm->o.oracle ? "yes" : "no",
	       sm->o.only_class >= 0 ? sched_class_name((enum sla_class)sm->o.only_class) : "all", sm->o.seed);
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
		qsort(lat, nl, sizeof(*lat), cmp_u64);
		miss_pct[c] = off ? 100.0 * (double)(late + ref) / (double)off : 0;
		ontime_all += on;
		printf("%-7s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %7.2f %9.2f %9.2f\n",
		       sched_class_name((enum sla_class)c), off, on, late, ref, miss_pct[c], pct_ms(lat, nl, 50),
		       pct_ms(lat, nl, 99));
	}
	double load = work_s / (sm->o.slots * dur_s);
	double useful = useful_s / (sm->o.slots * dur_s);
	double goodput = (double)ontime_all / dur_s;
	printf("refused_by_reason");
	for (int r = 1; r < SCHED_NREFUSALS; r++)
		printf(" %s=%" PRIu64, sched_refusal_name((enum sched_refusal)r), refused_by[r]);
	printf(" (after acceptance: %" PRIu64 ")\npreemptions=%" PRIu64 " resumes=%" PRIu64 "\n", sm->refused_later,
	       sm->pauses, sm->resumes);
	printf("duration_s=%.3f offered_load=%.3f goodput_per_s=%.3f useful_util=%.3f\n", dur_s, load, goodput,
	       useful);
	printf("RESULT policy=%s load=%.3f urgent_miss_pct=%.2f normal_miss_pct=%.2f batch_miss_pct=%.2f "
	       "goodput_per_s=%.3f useful_util=%.3f ontime=%" PRIu64 " oracle_cost=%d only_class=%s\n",
	       sched_policy_name(sm->o.policy), load, miss_pct[SLA_URGENT], miss_pct[SLA_NORMAL],
	       miss_pct[SLA_BATCH], goodput, useful, ontime_all, sm->o.oracle,
	       sm->o.only_class >= 0 ? sched_class_name((enum sla_class)sm->o.only_class) : "all");
	free(lat);
	return 0;
}

/* --- main ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: berth-sim --trace FILE [--policy fifo|edf|edf-admit|edf-reserve|edf-preempt]\n"
		"                 [--slots N] [--replicas N] [--reserve N] [--speedup K]\n"
		"                 [--oracle-cost] [--only-class urgent|normal|batch] [--seed S] [--verbose]\n"
		"Replays a CSV trace (t_ms,model,deadline_ms[,class][,cost_ms]) through the scheduler in\n"
		"virtual time and prints per-class figures and a RESULT line.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "policy", required_argument, NULL, 'p' },
		{ "slots", required_argument, NULL, 's' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "reserve", required_argument, NULL, 'R' },
		{ "speedup", required_argument, NULL, 'k' },
		{ "oracle-cost", no_argument, NULL, 'o' },
		{ "only-class", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 'S' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	/* Autoscaling replays run in their own driver until it moves onto this one. */
	if (sim_autoscale_wanted(argc, argv))
		return sim_autoscale_main(argc, argv);
	struct sim sm;
	memset(&sm, 0, sizeof(sm));
	sm.o.policy = SCHED_EDF_ADMIT;
	sm.o.slots = 2;
	sm.o.replicas = 0;
	sm.o.reserve = 1;
	sm.o.speedup = 1.0;
	sm.o.only_class = -1;
	sm.o.seed = 1;
	int opt, rc;
	while ((opt = getopt_long(argc, argv, "t:p:s:r:R:k:oc:S:vVh", longopts, NULL)) != -1) {
		char *end = NULL;
		switch (opt) {
		case 't': sm.o.trace = optarg; break;
		case 'p':
			rc = sched_policy_parse(optarg);
			if (rc < 0) {
				fprintf(stderr, "berth-sim: unknown policy '%s'\n", optarg);
				return 2;
			}
			sm.o.policy = (enum sched_policy)rc;
			break;
		case 's': sm.o.slots = (unsigned)strtoul(optarg, &end, 10); break;
		case 'r': sm.o.replicas = (unsigned)strtoul(optarg, &end, 10); break;
		case 'R': sm.o.reserve = (unsigned)strtoul(optarg, &end, 10); break;
		case 'k': sm.o.speedup = strtod(optarg, &end); break;
		case 'o': sm.o.oracle = 1; break;
		case 'c':
			sm.o.only_class = sched_class_parse(optarg);
			if (sm.o.only_class < 0) {
				fprintf(stderr, "berth-sim: unknown class '%s'\n", optarg);
				return 2;
			}
			break;
		case 'S': sm.o.seed = strtoul(optarg, &end, 10); break;
		case 'v': sm.o.verbose = 1; break;
		case 'V': printf("berth-sim %s\n", BERTH_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (end && *end) {
			fprintf(stderr, "berth-sim: bad number '%s'\n", optarg);
			return 2;
		}
	}
	if (!sm.o.trace || sm.o.slots < 1 || sm.o.slots > CONFIG_SCHED_MAX_SLOTS || !(sm.o.speedup > 0) ||
	    sm.o.replicas > SCHED_MAX_REPLICAS) {
		usage(stderr);
		return 2;
	}
	if (!sm.o.replicas)
		sm.o.replicas = sm.o.slots < SCHED_MAX_REPLICAS ? sm.o.slots : SCHED_MAX_REPLICAS;
	log_set_level(sm.o.verbose ? LOG_LEVEL_DBG : LOG_LEVEL_WRN);
	srand((unsigned)sm.o.seed);

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
	sched_destroy(sm.sched);
	free(sm.ev);
	free(sm.st);
	free(sm.reqs);
	return rc;
}
