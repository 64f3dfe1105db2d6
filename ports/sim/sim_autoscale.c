/* ports/sim/sim_autoscale.c - trace replay on a simulated gateway whose replica counts the autoscaler decides. */
#include "ports/sim/sim_autoscale.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/autoscale.h"
#include "agent/forecast.h"
#include "agent/log.h"
#include "ports/sim/sim.h"

/*
 * The gateway: `slots` compute slots; per model up to DEPLOY_MAX_REPLICAS
 * replicas, each serving `concurrency` requests at once. A request runs while
 * it holds a slot and a free place on a ready replica of its model; it runs
 * for its cost (the trace's cost_ms column, else --cost-ms). Waiting requests
 * of all models form one EDF order (earliest deadline first among models with
 * a free replica). Admission refuses a request at arrival when the estimated
 * wait (queued requests of its model x mean service time / its ready
 * capacity) plus its mean service time overshoots the deadline, and at
 * dispatch when it can no longer finish in time; refusals are misses.
 *
 * A new replica is ready startup_ms after the autoscaler asks for it. A
 * replica removed by a scale-down drains: no new requests, in-flight ones
 * finish, then it is gone (a starting replica is cancelled first).
 */

#define MAXM DEPLOY_MAX
#define MAXR DEPLOY_MAX_REPLICAS
#define QCAP 4096u

enum rstate { R_ABSENT = 0, R_STARTING, R_READY, R_DRAINING };

struct req {
	uint64_t deadline_us, cost_us;
};

struct model {
	char name[DEPLOY_NAME_MAX];
	enum sla_class cls;
	int as_idx;
	enum rstate rs[MAXR];
	uint64_t ready_at_us[MAXR];
	unsigned inflight[MAXR];
	struct req *q;             /* min-heap by deadline, QCAP */
	unsigned qn;
	double est_us;             /* EWMA of service time */
	/* window */
	uint64_t w_on_time, w_missed, w_done, w_busy_us;
	/* totals */
	uint64_t offered, on_time, missed, refused_arrival;
	uint32_t desired;
	double last_compliance;
	uint64_t violation_windows;
};

struct completion {
	uint64_t at_us;
	int m, r;
	uint64_t cost_us;
	uint64_t deadline_us;
};

struct sim {
	/* options */
	const char *trace_path, *csv_path, *mode;
	unsigned slots, concurrency, rmin, rmax, static_replicas;
	uint32_t startup_ms, interval_s, cooldown_s, bucket_s, day_s, cost_ms;
	uint64_t replica_mem, node_mem, base_mem;
	double target_low, target_high;
	/* state */
	struct model m[MAXM];
	unsigned nm;
	struct completion *heap;   /* slots entries */
	unsigned hn, busy;
	uint64_t now_us;
	double replica_us;         /* integral of present replicas */
	bool started_once;
	struct autoscale *as;
	FILE *csv;
	uint64_t blocked_events;
};

static void qpush(struct model *m, struct req r)
{
	unsigned i = m->qn++;
	while (i > 0) {
		unsigned p = (i - 1) / 2;
		if (m->q[p].deadline_us <= r.deadline_us)
			break;
		m->q[i] = m->q[p];
		i = p;
	}
	m->q[i] = r;
}

static struct req qpop(struct model *m)
{
	struct req top = m->q[0], last = m->q[--m->qn];
	unsigned i = 0;
	for (;;) {
		unsigned c = 2 * i + 1;
		if (c >= m->qn)
			break;
		if (c + 1 < m->qn && m->q[c + 1].deadline_us < m->q[c].deadline_us)
			c++;
		if (last.deadline_us <= m->q[c].deadline_us)
			break;
		m->q[i] = m->q[c];
		i = c;
	}
	if (m->qn)
		m->q[i] = last;
	return top;
}

static void hpush(struct sim *s, struct completion c)
{
	unsigned i = s->hn++;
	while (i > 0) {
		unsigned p = (i - 1) / 2;
		if (s->heap[p].at_us <= c.at_us)
			break;
		s->heap[i] = s->heap[p];
		i = p;
	}
	s->heap[i] = c;
}

static struct completion hpop(struct sim *s)
{
	struct completion top = s->heap[0], last = s->heap[--s->hn];
	unsigned i = 0;
	for (;;) {
		unsigned c = 2 * i + 1;
		if (c >= s->hn)
			break;
		if (c + 1 < s->hn && s->heap[c + 1].at_us < s->heap[c].at_us)
			c++;
		if (last.at_us <= s->heap[c].at_us)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->hn)
		s->heap[i] = last;
	return top;
}

static unsigned count(const struct model *m, enum rstate st)
{
	unsigned n = 0;
	for (int r = 0; r < MAXR; r++)
		n += m->rs[r] == st;
	return n;
}

static unsigned present(const struct model *m) { return MAXR - count(m, R_ABSENT); }

static int free_replica(const struct sim *s, const struct model *m)
{
	int best = -1;
	for (int r = 0; r < MAXR; r++)
		if (m->rs[r] == R_READY && m->inflight[r] < s->concurrency &&
		    (best < 0 || m->inflight[r] < m->inflight[best]))
			best = r;
	return best;
}

static void miss(struct model *m)
{
	m->missed++;
	m->w_missed++;
}

static void dispatch(struct sim *s)
{
	while (s->busy < s->slots) {
		int bm = -1, br = -1;
		for (unsigned i = 0; i < s->nm; i++) {
			struct model *m = &s->m[i];
			if (!m->qn)
				continue;
			int r = free_replica(s, m);
			if (r < 0)
				continue;
			if (bm < 0 || m->q[0].deadline_us < s->m[bm].q[0].deadline_us) {
				bm = (int)i;
				br = r;
			}
		}
		if (bm < 0)
			return;
		struct model *m = &s->m[bm];
		struct req rq = qpop(m);
		if (s->now_us + rq.cost_us > rq.deadline_us) {
			miss(m); /* refused at dispatch: can no longer finish in time */
			continue;
		}
		m->inflight[br]++;
		s->busy++;
		hpush(s, (struct completion){ s->now_us + rq.cost_us, bm, br, rq.cost_us, rq.deadline_us });
	}
}

static void complete(struct sim *s, struct completion c)
{
	struct model *m = &s->m[c.m];
	m->inflight[c.r]--;
	s->busy--;
	m->w_done++;
	m->w_busy_us += c.cost_us;
	m->est_us += ((double)c.cost_us - m->est_us) / 8.0;
	if (c.at_us <= c.deadline_us) {
		m->on_time++;
		m->w_on_time++;
	} else {
		miss(m);
	}
	if (m->rs[c.r] == R_DRAINING && m->inflight[c.r] == 0)
		m->rs[c.r] = R_ABSENT;
}

static void arrive(struct sim *s, int mi, uint64_t deadline_us, uint64_t cost_us)
{
	struct model *m = &s->m[mi];
	m->offered++;
	if (s->as)
		autoscale_observe(s->as, m->as_idx, s->now_us / 1000u, 1);
	if (m->est_us <= 0)
		m->est_us = (double)cost_us;
	unsigned ready = count(m, R_READY);
	unsigned cap = ready * s->concurrency;
	if (cap > s->slots)
		cap = s->slots;
	double wait_us = cap ? (double)m->qn * m->est_us / cap : 0;
	if (!ready || m->qn >= QCAP || (double)s->now_us + wait_us + m->est_us > (double)deadline_us) {
		m->refused_arrival++;
		miss(m);
		return;
	}
	qpush(m, (struct req){ deadline_us, cost_us });
	dispatch(s);
}

static void set_replicas(struct sim *s, struct model *m, unsigned want)
{
	unsigned have = count(m, R_STARTING) + count(m, R_READY);
	for (int r = 0; r < MAXR && have < want; r++) {
		if (m->rs[r] != R_ABSENT)
			continue;
		m->rs[r] = R_STARTING;
		m->ready_at_us[r] = s->now_us + (uint64_t)s->startup_ms * 1000u;
		have++;
	}
	/* Cancel starting replicas first, then drain the highest ready one. */
	for (int r = MAXR - 1; r >= 0 && have > want; r--)
		if (m->rs[r] == R_STARTING) {
			m->rs[r] = R_ABSENT;
			have--;
		}
	for (int r = MAXR - 1; r >= 0 && have > want; r--)
		if (m->rs[r] == R_READY) {
			m->rs[r] = m->inflight[r] ? R_DRAINING : R_ABSENT;
			have--;
		}
	m->desired = want;
}

static void on_blocked(void *arg, const struct autoscale_blocked *b)
{
	struct sim *s = arg;
	s->blocked_events++;
}

static void evaluate(struct sim *s, uint64_t window_us)
{
	struct autoscale_window w[DEPLOY_MAX];
	struct autoscale_decision out[DEPLOY_MAX];
	struct autoscale_node node = { .ncpu = s->slots, .mem_total_bytes = s->node_mem,
				       .mem_used_bytes = s->base_mem };
	memset(w, 0, sizeof(w));
	memset(out, 0, sizeof(out));
	double busy_total = 0;
	for (unsigned i = 0; i < s->nm; i++) {
		struct model *m = &s->m[i];
		struct autoscale_window *x = &w[m->as_idx];
		unsigned ready = count(m, R_READY);
		x->offered = m->w_on_time + m->w_missed;
		x->on_time = m->w_on_time;
		x->replicas = m->desired;
		x->replicas_ready = ready;
		x->service_ms = m->w_done ? (double)m->w_busy_us / (double)m->w_done / 1000.0 : 0;
		x->cpu_cores = (double)m->w_busy_us / (double)window_us;
		x->mem_bytes = (uint64_t)ready * s->replica_mem;
		x->startup_ms = s->started_once ? s->startup_ms : 0;
		busy_total += (double)m->w_busy_us;
		node.mem_used_bytes += (uint64_t)(ready + count(m, R_DRAINING)) * s->replica_mem;
	}
	node.cpu_used_cores = busy_total / (double)window_us;
	uint64_t now_ms = s->now_us / 1000u;
	autoscale_evaluate(s->as, now_ms, now_ms, w, &node, out);
	for (unsigned i = 0; i < s->nm; i++) {
		struct model *m = &s->m[i];
		const struct autoscale_window *x = &w[m->as_idx];
		double c = x->offered ? (double)x->on_time / (double)x->offered : 1.0;
		m->last_compliance = c;
		if (x->offered && c < s->target_low)
			m->violation_windows++;
		if (strcmp(s->mode, "off") != 0)
			set_replicas(s, m, out[m->as_idx].replicas);
		if (s->csv)
			fprintf(s->csv, "%.3f,%s,%u,%u,%.4f,%" PRIu64 ",%.2f,%u\n", (double)s->now_us / 1e6, m->name,
				m->desired, count(m, R_READY), c, x->offered, out[m->as_idx].forecast_rps,
				out[m->as_idx].need);
		m->w_on_time = m->w_missed = m->w_done = m->w_busy_us = 0;
	}
	dispatch(s);
}

static int model_of(struct sim *s, const char *name, enum sla_class cls)
{
	for (unsigned i = 0; i < s->nm; i++)
		if (strcmp(s->m[i].name, name) == 0)
			return (int)i;
	if (s->nm >= MAXM)
		return -ENOSPC;
	struct model *m = &s->m[s->nm];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->cls = cls;
	m->q = calloc(QCAP, sizeof(*m->q));
	if (!m->q)
		return -ENOMEM;
	struct autoscale_deploy d = { .cls = cls, .replicas_min = s->rmin, .replicas_max = s->rmax,
				      .concurrency = s->concurrency, .mem_bytes = s->replica_mem,
				      .startup_ms = s->startup_ms };
	snprintf(d.name, sizeof(d.name), "%s", name);
	int idx = autoscale_add(s->as, &d, s->now_us / 1000u);
	if (idx < 0)
		return idx;
	m->as_idx = idx;
	/* Initial replicas are up when the replay starts. */
	unsigned n = strcmp(s->mode, "off") == 0 ? s->static_replicas : s->rmin;
	for (unsigned r = 0; r < n && r < MAXR; r++)
		m->rs[r] = R_READY;
	m->desired = n;
	return (int)s->nm++;
}

static enum sla_class parse_class(const char *c)
{
	if (strncmp(c, "urgent", 6) == 0)
		return SLA_URGENT;
	if (strncmp(c, "batch", 5) == 0)
		return SLA_BATCH;
	return SLA_NORMAL;
}

/* Reads the next trace line: t_ms,model,deadline_ms[,class][,cost_ms]. 1 ok, 0 eof, -1 bad. */
static int next_line(FILE *f, uint64_t *t_ms, char *model, uint64_t *deadline_ms, enum sla_class *cls,
		     uint64_t *cost_ms, unsigned *lineno)
{
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		(*lineno)++;
		if (line[0] == '#' || line[0] == '\n' || strncmp(line, "t_ms", 4) == 0)
			continue;
		char *save = NULL, *tok[5] = { 0 };
		int n = 0;
		for (char *p = strtok_r(line, ",\r\n", &save); p && n < 5; p = strtok_r(NULL, ",\r\n", &save))
			tok[n++] = p;
		if (n < 3)
			return -1;
		*t_ms = strtoull(tok[0], NULL, 10);
		snprintf(model, DEPLOY_NAME_MAX, "%s", tok[1]);
		*deadline_ms = strtoull(tok[2], NULL, 10);
		*cls = n >= 4 ? parse_class(tok[3]) : SLA_NORMAL;
		*cost_ms = n >= 5 ? strtoull(tok[4], NULL, 10) : 0;
		return 1;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: berth-sim --trace FILE --autoscale off|reactive|predictive [options]\n"
		"  --replicas N        replicas of every model with --autoscale off (default: min)\n"
		"  --replicas-min N    (1)    --replicas-max N (8)    --concurrency N (1)\n"
		"  --slots N           compute slots (4)\n"
		"  --startup-ms N      replica start-up time (3000)\n"
		"  --replica-mem-mb N  memory of one replica (256)\n"
		"  --node-mem-mb N     node memory (2048)  --base-mem-mb N  used by the rest (256)\n"
		"  --interval-s N (30) --cooldown-s N (300) --bucket-s N (60) --day-s N (86400)\n"
		"  --target-low X (0.95) --target-high X (0.98)  --cost-ms N (10, when the trace has none)\n"
		"  --replicas-csv FILE t_s,model,replicas,ready,compliance,offered,forecast_rps,need per window\n");
}

int sim_autoscale_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--autoscale") == 0 || strncmp(argv[i], "--autoscale=", 12) == 0)
			return 1;
	return 0;
}

int sim_autoscale_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "trace", required_argument, 0, 't' },      { "autoscale", required_argument, 0, 'a' },
		{ "replicas", required_argument, 0, 'r' },   { "replicas-min", required_argument, 0, 1 },
		{ "replicas-max", required_argument, 0, 2 }, { "concurrency", required_argument, 0, 3 },
		{ "slots", required_argument, 0, 4 },        { "startup-ms", required_argument, 0, 5 },
		{ "replica-mem-mb", required_argument, 0, 6 }, { "node-mem-mb", required_argument, 0, 7 },
		{ "base-mem-mb", required_argument, 0, 8 },  { "interval-s", required_argument, 0, 9 },
		{ "cooldown-s", required_argument, 0, 10 },  { "bucket-s", required_argument, 0, 11 },
		{ "day-s", required_argument, 0, 12 },       { "target-low", required_argument, 0, 13 },
		{ "target-high", required_argument, 0, 14 }, { "cost-ms", required_argument, 0, 15 },
		{ "replicas-csv", required_argument, 0, 16 }, { "policy", required_argument, 0, 17 },
		{ "speedup", required_argument, 0, 18 },     { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct sim *s = calloc(1, sizeof(*s));
	int rc = 2;
	FILE *tf = NULL;
	if (!s)
		return 1;
	s->mode = "reactive";
	s->slots = 4;
	s->concurrency = 1;
	s->rmin = 1;
	s->rmax = 8;
	s->startup_ms = 3000;
	s->interval_s = 30;
	s->cooldown_s = 300;
	s->bucket_s = 60;
	s->day_s = 86400;
	s->cost_ms = 10;
	s->replica_mem = 256ull << 20;
	s->node_mem = 2048ull << 20;
	s->base_mem = 256ull << 20;
	s->target_low = 0.95;
	s->target_high = 0.98;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		unsigned long v = optarg ? strtoul(optarg, NULL, 10) : 0;
		switch (c) {
		case 't': s->trace_path = optarg; break;
		case 'a': s->mode = optarg; break;
		case 'r': s->static_replicas = (unsigned)v; break;
		case 1: s->rmin = (unsigned)v; break;
		case 2: s->rmax = (unsigned)v; break;
		case 3: s->concurrency = (unsigned)v; break;
		case 4: s->slots = (unsigned)v; break;
		case 5: s->startup_ms = (uint32_t)v; break;
		case 6: s->replica_mem = (uint64_t)v << 20; break;
		case 7: s->node_mem = (uint64_t)v << 20; break;
		case 8: s->base_mem = (uint64_t)v << 20; break;
		case 9: s->interval_s = (uint32_t)v; break;
		case 10: s->cooldown_s = (uint32_t)v; break;
		case 11: s->bucket_s = (uint32_t)v; break;
		case 12: s->day_s = (uint32_t)v; break;
		case 13: s->target_low = strtod(optarg, NULL); break;
		case 14: s->target_high = strtod(optarg, NULL); break;
		case 15: s->cost_ms = (uint32_t)v; break;
		case 16: s->csv_path = optarg; break;
		case 17: case 18: break; /* scheduler replay options: EDF with admission here */
		default: usage(); goto out;
		}
	}
	bool pred = strcmp(s->mode, "predictive") == 0;
	if (!s->trace_path || (!pred && strcmp(s->mode, "reactive") != 0 && strcmp(s->mode, "off") != 0) ||
	    !s->slots || !s->concurrency || !s->rmax || s->rmin > s->rmax || s->rmax > MAXR || !s->interval_s) {
		usage();
		goto out;
	}
	if (!s->static_replicas)
		s->static_replicas = s->rmin;
	if (s->static_replicas > MAXR)
		s->static_replicas = MAXR;
	log_set_level(LOG_LEVEL_ERR);
	struct autoscale_params p = {
		.interval_s = s->interval_s, .target_low = s->target_low, .target_high = s->target_high,
		.cooldown_s = s->cooldown_s, .cpu_ceiling_pct = 80, .mem_ceiling_pct = 80, .predictive = pred,
		.forecast = true, .bucket_s = s->bucket_s, .season_s = s->day_s,
		.util_pct = CONFIG_AUTOSCALE_UTIL_PCT, .slots = s->slots,
	};
	struct autoscale_events ev = { on_blocked, s };
	s->as = autoscale_create(&p, &ev);
	s->heap = calloc(s->slots + 1, sizeof(*s->heap));
	tf = fopen(s->trace_path, "r");
	if (!s->as || !s->heap || !tf) {
		fprintf(stderr, "berth-sim: cannot start: %s\n", !tf ? strerror(errno) : "bad parameters");
		goto out;
	}
	if (s->csv_path) {
		s->csv = fopen(s->csv_path, "w");
		if (!s->csv) {
			fprintf(stderr, "berth-sim: %s: %s\n", s->csv_path, strerror(errno));
			goto out;
		}
		fprintf(s->csv, "t_s,model,replicas,ready,compliance,offered,forecast_rps,need\n");
	}

	uint64_t interval_us = (uint64_t)s->interval_s * 1000000u;
	uint64_t next_eval = interval_us, last_eval = 0;
	uint64_t t_ms = 0, dl_ms = 0, cost_ms = 0;
	char name[DEPLOY_NAME_MAX];
	enum sla_class cls;
	unsigned lineno = 0;
	int have = next_line(tf, &t_ms, name, &dl_ms, &cls, &cost_ms, &lineno);
	while (have > 0 || s->hn || s->busy) {
		/* The earliest of: arrival, completion, replica ready, evaluation. */
		uint64_t t = UINT64_MAX;
		if (have > 0)
			t = t_ms * 1000u;
		if (s->hn && s->heap[0].at_us < t)
			t = s->heap[0].at_us;
		for (unsigned i = 0; i < s->nm; i++)
			for (int r = 0; r < MAXR; r++)
				if (s->m[i].rs[r] == R_STARTING && s->m[i].ready_at_us[r] < t)
					t = s->m[i].ready_at_us[r];
		if (have > 0 && next_eval < t)
			t = next_eval;
		if (t < s->now_us)
			t = s->now_us;
		unsigned np = 0;
		for (unsigned i = 0; i < s->nm; i++)
			np += present(&s->m[i]);
		s->replica_us += (double)np * (double)(t - s->now_us);
		s->now_us = t;
		sim_clock_set_us(t);

		if (s->hn && s->heap[0].at_us == t) {
			complete(s, hpop(s));
			dispatch(s);
			continue;
		}
		bool woke = false;
		for (unsigned i = 0; i < s->nm; i++)
			for (int r = 0; r < MAXR; r++)
				if (s->m[i].rs[r] == R_STARTING && s->m[i].ready_at_us[r] <= t) {
					s->m[i].rs[r] = R_READY;
					s->started_once = true;
					woke = true;
				}
		if (woke) {
			dispatch(s);
			continue;
		}
		if (have > 0 && next_eval == t) {
			evaluate(s, t - last_eval);
			last_eval = t;
			next_eval += interval_us;
			continue;
		}
		if (have > 0 && t_ms * 1000u == t) {
			int mi = model_of(s, name, cls);
			if (mi < 0) {
				fprintf(stderr, "berth-sim: %s:%u: too many models\n", s->trace_path, lineno);
				goto out;
			}
			uint64_t cu = (cost_ms ? cost_ms : s->cost_ms) * 1000u;
			arrive(s, mi, t + dl_ms * 1000u, cu);
			have = next_line(tf, &t_ms, name, &dl_ms, &cls, &cost_ms, &lineno);
			if (have < 0) {
				fprintf(stderr, "berth-sim: %s:%u: bad line\n", s->trace_path, lineno);
				goto out;
			}
		}
	}
	/* Requests still queued when the trace ends with nothing running. */
	for (unsigned i = 0; i < s->nm; i++)
		while (s->m[i].qn) {
			(void)qpop(&s->m[i]);
			miss(&s->m[i]);
		}

	uint64_t urgent_off = 0, urgent_miss = 0, viol = 0;
	double em = 0, en = 0;
	for (unsigned i = 0; i < s->nm; i++) {
		struct model *m = &s->m[i];
		struct forecast_stats st;
		forecast_get_stats(autoscale_forecast(s->as, m->as_idx), &st);
		em += st.abs_err_model;
		en += st.abs_err_naive;
		viol += m->violation_windows;
		if (m->cls == SLA_URGENT) {
			urgent_off += m->offered;
			urgent_miss += m->missed;
		}
		printf("model=%s class=%d offered=%" PRIu64 " on_time=%" PRIu64 " missed=%" PRIu64
		       " refused_arrival=%" PRIu64 " violation_s=%" PRIu64 " mase=%.3f\n",
		       m->name, (int)m->cls, m->offered, m->on_time, m->missed, m->refused_arrival,
		       m->violation_windows * s->interval_s, st.abs_err_naive > 0 ? st.mase : 0.0);
	}
	printf("RESULT autoscale=%s violation_s=%" PRIu64 " replica_s=%.0f mase=%.3f urgent_miss_pct=%.3f "
	       "blocked_events=%" PRIu64 "\n",
	       s->mode, viol * s->interval_s, s->replica_us / 1e6, en > 0 ? em / en : 0.0,
	       urgent_off ? 100.0 * (double)urgent_miss / (double)urgent_off : 0.0, s->blocked_events);
	rc = 0;
out:
	if (tf)
		fclose(tf);
	if (s->csv)
		fclose(s->csv);
	for (unsigned i = 0; i < s->nm; i++)
		free(s->m[i].q);
	free(s->heap);
	autoscale_destroy(s->as);
	free(s);
	return rc;
}
