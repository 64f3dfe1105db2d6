/* tests/bench/bench_drain.c - buffers an hour of 1 Hz telemetry (20 containers), then drains it into a real broker. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/console/outbox.h"
#include "agent/base/loop.h"
#include "agent/telemetry/store.h"
#include "agent/telemetry/collector.h"
#include "agent/console/uplink.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* The figures of 20 containers, as the supervisor's source would add them. */
static void containers(void *arg, struct collector_buf *b)
{
	unsigned *tick = arg;
	collector_buf_printf(b, "[");
	for (int c = 0; c < 20; c++)
		collector_buf_printf(b,
				     "%s{\"deployment\":\"model-%d\",\"replica\":%d,\"cpu_pct\":%u.%u,\"mem_bytes\":%u,"
				     "\"mem_limit_bytes\":268435456,\"net_rx_bytes\":%u,\"net_tx_bytes\":%u,\"pids\":4,"
				     "\"ready\":true,\"restarts\":0}",
				     c ? "," : "", c / 2, c % 2, (*tick + (unsigned)c) % 100, *tick % 10,
				     100000000u + *tick * 13u, *tick * 1000u, *tick * 800u);
	collector_buf_printf(b, "]");
	(*tick)++;
}

struct drain {
	struct loop *loop;
	struct store *st;
	struct uplink *up;
	struct outbox *fwd;
	struct loop_timer sample;
	long rss_start, rss_max;
	double t_connected;
	bool done;
};

static void on_connected(void *arg)
{
	struct drain *d = arg;
	d->t_connected = now_s();
	d->rss_start = rss_kb();
	outbox_on_connected(d->fwd);
}
static void on_disconnected(void *arg) { outbox_on_disconnected(((struct drain *)arg)->fwd); }
static void on_published(void *arg, int mid, int reason) { outbox_on_published(((struct drain *)arg)->fwd, mid, reason); }

static int publish_batch(void *arg, const char *topic, const void *payload, size_t len, int *mid)
{
	struct drain *d = arg;
	return uplink_publish(d->up, topic, payload, len, 1, false, NULL, 0, mid);
}

static void on_sample(void *arg)
{
	struct drain *d = arg;
	long r = rss_kb();
	if (r > d->rss_max)
		d->rss_max = r;
	struct store_stats st;
	store_get_stats(d->st, &st);
	if (d->t_connected > 0 && st.rows == 0) {
		d->done = true;
		loop_stop(d->loop);
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: bench_drain DIR PORT TOPIC [TICKS]\n");
		return 2;
	}
	const char *dir = argv[1];
	int port = atoi(argv[2]);
	const char *topic = argv[3];
	unsigned ticks = argc > 4 ? (unsigned)atoi(argv[4]) : 3600;
	char path[512];
	snprintf(path, sizeof(path), "%s/berth.db", dir);

	/* 1. Buffer: an hour of ticks, written by the real sampler (fast: NORMAL sync). */
	struct loop *l = loop_create();
	struct store_opts so = { .path = path, .budget_kb = 1u << 20, .sync_full = false };
	struct store *st;
	if (!l || store_open(&so, &st))
		return 1;
	struct collector_opts to = { .data_dir = dir, .interval_ms = 0 };
	struct collector *t = collector_create(l, st, &to);
	unsigned tick = 0;
	if (!t || collector_register(t, "containers", containers, &tick))
		return 1;
	double f0 = now_s();
	for (unsigned i = 0; i < ticks; i++)
		if (collector_tick(t))
			return 1;
	collector_destroy(t);
	struct store_stats ss;
	store_get_stats(st, &ss);
	fprintf(stderr, "buffered %" PRIu64 " rows, %" PRIu64 " KiB in %.1f s\n", ss.rows, ss.file_bytes / 1024,
		now_s() - f0);
	store_close(st);

	/* 2. Drain with berthd's defaults (FULL sync, 16 KiB batches, 8 in flight). */
	so.sync_full = true;
	struct drain d = { .loop = l };
	if (store_open(&so, &d.st))
		return 1;
	struct uplink_opts uo = { .host = "127.0.0.1", .port = port, .client_id = "bench-drain", .v5 = true,
				  .keepalive_s = 30, .reconnect_min_ms = 100, .reconnect_max_ms = 1000, .max_queued = 24 };
	struct uplink_cbs cb = { .connected = on_connected, .disconnected = on_disconnected,
				 .published = on_published, .arg = &d };
	d.up = uplink_create(l, &uo, &cb);
	struct outbox_opts fo = { .telemetry_topic = topic, .events_topic = topic, .device_id = "bench",
				   .batch_max_bytes = CONFIG_UPLINK_BATCH_BYTES, .inflight_max = CONFIG_UPLINK_INFLIGHT };
	d.fwd = outbox_create(l, d.st, publish_batch, &d, &fo);
	loop_timer_init(&d.sample, on_sample, &d);
	if (!d.up || !d.fwd || loop_timer_start(l, &d.sample, 20, 20) < 0)
		return 1;
	double deadline = now_s() + 300;
	while (!d.done && now_s() < deadline)
		loop_run_once(l, 50);
	double drain_s = now_s() - d.t_connected;
	struct outbox_stats fs;
	outbox_get_stats(d.fwd, &fs);
	if (!d.done) {
		fprintf(stderr, "drain did not finish: %" PRIu64 " msgs acked\n", fs.msgs_acked);
		return 1;
	}
	printf("DRAIN msgs=%" PRIu64 " rows=%" PRIu64 " drain_s=%.3f rss_start_kb=%ld rss_max_kb=%ld\n", fs.msgs_acked,
	       fs.rows_acked, drain_s, d.rss_start, d.rss_max);
	outbox_destroy(d.fwd);
	uplink_destroy(d.up);
	store_close(d.st);
	loop_destroy(l);
	return 0;
}
