/* agent/telemetry/sampler.c - samples hal_sys stats of the node and of each replica's init pid into fixed rings. */
#include "agent/telemetry/sampler.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "hal/clock.h"
#include "hal/sys.h"

#define LOG_TAG "sampler"
#define RING CONFIG_METRIC_RING_LEN
#define MAX_VIEWS (2 * METRICS_MAX_CTRS)

struct series {
	bool used;
	struct metric_series_info info;
	unsigned head;                 /* next write */
	int prev_pid;
	uint64_t prev_cpu_ns;
	uint64_t prev_mono_us;
	struct metric_ctr_sample s[RING];
};

struct sampler {
	struct loop *loop;
	sampler_targets_fn targets;
	void *targets_arg;
	char disk_path[256];
	unsigned interval_ms;
	struct loop_timer timer;
	sampler_sink_fn sink;
	void *sink_arg;
	struct sampler_stats st;
	/* node */
	unsigned node_head, node_count;
	bool node_prev_ok;
	uint64_t prev_busy, prev_total;
	struct metric_node_sample node[RING];
	/* containers */
	struct series ctr[METRICS_MAX_CTRS];
	/* scratch for one tick (no allocation while sampling) */
	struct sampler_target views[MAX_VIEWS];
	struct metric_series_info tick_info[METRICS_MAX_CTRS];
	struct metric_ctr_sample tick_s[METRICS_MAX_CTRS];
};

static void on_timer(void *arg) { sampler_sample(arg); }

struct sampler *sampler_create(struct loop *l, const char *disk_path, unsigned interval_ms)
{
	struct sampler *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->loop = l;
	snprintf(m->disk_path, sizeof(m->disk_path), "%s", disk_path && *disk_path ? disk_path : "/");
	m->interval_ms = interval_ms ? interval_ms : CONFIG_METRIC_INTERVAL_MS;
	loop_timer_init(&m->timer, on_timer, m);
	return m;
}

void sampler_set_targets(struct sampler *m, sampler_targets_fn fn, void *arg)
{
	m->targets = fn;
	m->targets_arg = arg;
}

void sampler_destroy(struct sampler *m)
{
	if (!m)
		return;
	loop_timer_stop(m->loop, &m->timer);
	free(m);
}

int sampler_start(struct sampler *m) { return loop_timer_start(m->loop, &m->timer, m->interval_ms, m->interval_ms); }

int sampler_set_interval(struct sampler *m, unsigned interval_ms)
{
	m->interval_ms = interval_ms ? interval_ms : CONFIG_METRIC_INTERVAL_MS;
	return sampler_start(m);
}

void sampler_set_sink(struct sampler *m, sampler_sink_fn fn, void *arg)
{
	m->sink = fn;
	m->sink_arg = arg;
}

static struct series *find_series(struct sampler *m, const char *dep, unsigned slot)
{
	for (unsigned i = 0; i < METRICS_MAX_CTRS; i++)
		if (m->ctr[i].used && m->ctr[i].info.slot == slot && !strcmp(m->ctr[i].info.deployment, dep))
			return &m->ctr[i];
	return NULL;
}

static const struct series *find_series_c(const struct sampler *m, const char *dep, unsigned slot)
{
	return find_series((struct sampler *)m, dep, slot);
}

static struct series *get_series(struct sampler *m, const char *dep, unsigned slot, uint64_t now_ms)
{
	struct series *s = find_series(m, dep, slot);
	if (s)
		return s;
	struct series *stalest = NULL;
	for (unsigned i = 0; i < METRICS_MAX_CTRS; i++) {
		struct series *c = &m->ctr[i];
		if (!c->used) {
			stalest = c;
			break;
		}
		if (!stalest || c->info.last_mono_ms < stalest->info.last_mono_ms)
			stalest = c;
	}
	/* Reuse only a series that missed at least two ticks (its replica is gone). */
	if (stalest->used && now_ms - stalest->info.last_mono_ms < 2ull * m->interval_ms) {
		m->st.series_full++;
		return NULL;
	}
	memset(stalest, 0, sizeof(*stalest));
	stalest->used = true;
	snprintf(stalest->info.deployment, sizeof(stalest->info.deployment), "%s", dep);
	stalest->info.slot = slot;
	return stalest;
}

static void sample_node(struct sampler *m, uint64_t mono_us, int64_t wall_ms)
{
	struct hal_node_stats ns;
	if (hal_sys_node_stats(m->disk_path, &ns) < 0) {
		m->st.read_errors++;
		return;
	}
	struct metric_node_sample *o = &m->node[m->node_head];
	memset(o, 0, sizeof(*o));
	o->wall_ms = wall_ms;
	o->mono_ms = mono_us / 1000u;
	if (m->node_prev_ok && ns.cpu_total_ticks > m->prev_total)
		o->cpu_pct = (float)(100.0 * (double)(ns.cpu_busy_ticks - m->prev_busy) /
				     (double)(ns.cpu_total_ticks - m->prev_total));
	m->prev_busy = ns.cpu_busy_ticks;
	m->prev_total = ns.cpu_total_ticks;
	m->node_prev_ok = true;
	o->ncpu = ns.ncpu;
	o->mem_total_bytes = ns.mem_total_bytes;
	o->mem_avail_bytes = ns.mem_avail_bytes;
	o->load1 = (float)ns.load1;
	o->temp_mc = ns.temp_mc;
	o->disk_total_bytes = ns.disk_total_bytes;
	o->disk_free_bytes = ns.disk_free_bytes;
	o->uptime_s = ns.uptime_s;
	m->node_head = (m->node_head + 1) % RING;
	if (m->node_count < RING)
		m->node_count++;
	else
		m->st.overwritten++;
}

void sampler_sample(struct sampler *m)
{
	uint64_t mono_us = loop_now_us(m->loop);
	int64_t wall_ms = hal_clock_wall_ms();
	unsigned nt = 0;
	m->st.ticks++;
	sample_node(m, mono_us, wall_ms);

	unsigned nv = m->targets ? m->targets(m->targets_arg, m->views, MAX_VIEWS) : 0;
	for (unsigned i = 0; i < nv; i++) {
		const struct sampler_target *v = &m->views[i];
		if (v->pid <= 0)
			continue;
		struct hal_ctr_stats cs;
		int rc = hal_sys_ctr_stats(v->pid, &cs);
		if (rc < 0) {
			if (rc != -ESRCH)
				m->st.read_errors++;
			continue;
		}
		struct series *s = get_series(m, v->deployment, v->slot, mono_us / 1000u);
		if (!s)
			continue;
		struct metric_ctr_sample *o = &s->s[s->head];
		memset(o, 0, sizeof(*o));
		o->wall_ms = wall_ms;
		o->mono_ms = mono_us / 1000u;
		if (s->prev_pid == v->pid && mono_us > s->prev_mono_us && cs.cpu_usage_ns >= s->prev_cpu_ns)
			o->cpu_pct = (float)(100.0 * (double)(cs.cpu_usage_ns - s->prev_cpu_ns) /
					     ((double)(mono_us - s->prev_mono_us) * 1000.0));
		s->prev_pid = v->pid;
		s->prev_cpu_ns = cs.cpu_usage_ns;
		s->prev_mono_us = mono_us;
		o->mem_bytes = cs.mem_bytes;
		o->mem_limit_bytes = cs.mem_limit_bytes;
		o->net_rx_bytes = cs.net_rx_bytes;
		o->net_tx_bytes = cs.net_tx_bytes;
		o->pids = cs.pids;
		o->restarts = v->restarts;
		o->ready = v->ready;
		o->live = v->live;
		s->head = (s->head + 1) % RING;
		if (s->info.count < RING)
			s->info.count++;
		else
			m->st.overwritten++;
		s->info.last_mono_ms = o->mono_ms;
		if (nt < METRICS_MAX_CTRS) {
			m->tick_info[nt] = s->info;
			m->tick_s[nt++] = *o;
		}
	}
	if (m->sink && m->node_count)
		m->sink(m->sink_arg, &m->node[(m->node_head + RING - 1) % RING], m->tick_info, m->tick_s, nt);
}

unsigned sampler_node_read(const struct sampler *m, struct metric_node_sample *out, unsigned max)
{
	unsigned n = m->node_count < max ? m->node_count : max;
	unsigned start = (m->node_head + RING - n) % RING;
	for (unsigned i = 0; i < n; i++)
		out[i] = m->node[(start + i) % RING];
	return n;
}

int sampler_node_latest(const struct sampler *m, struct metric_node_sample *out)
{
	if (!m->node_count)
		return -ENOENT;
	*out = m->node[(m->node_head + RING - 1) % RING];
	return 0;
}

unsigned sampler_series_count(const struct sampler *m)
{
	unsigned n = 0;
	for (unsigned i = 0; i < METRICS_MAX_CTRS; i++)
		n += m->ctr[i].used;
	return n;
}

int sampler_series_info(const struct sampler *m, unsigned i, struct metric_series_info *out)
{
	for (unsigned k = 0; k < METRICS_MAX_CTRS; k++) {
		if (!m->ctr[k].used)
			continue;
		if (i-- == 0) {
			*out = m->ctr[k].info;
			return 0;
		}
	}
	return -ENOENT;
}

unsigned sampler_ctr_read(const struct sampler *m, const char *deployment, unsigned slot,
			  struct metric_ctr_sample *out, unsigned max)
{
	const struct series *s = find_series_c(m, deployment, slot);
	if (!s)
		return 0;
	unsigned n = s->info.count < max ? s->info.count : max;
	unsigned start = (s->head + RING - n) % RING;
	for (unsigned i = 0; i < n; i++)
		out[i] = s->s[(start + i) % RING];
	return n;
}

int sampler_ctr_latest(const struct sampler *m, const char *deployment, unsigned slot, struct metric_ctr_sample *out)
{
	const struct series *s = find_series_c(m, deployment, slot);
	if (!s || !s->info.count)
		return -ENOENT;
	*out = s->s[(s->head + RING - 1) % RING];
	return 0;
}

void sampler_get_stats(const struct sampler *m, struct sampler_stats *out) { *out = m->st; }
