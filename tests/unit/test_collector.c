/* tests/unit/test_collector.c - the sampler (one row per tick, registered sources, truncation) and the reconnect back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/loop.h"
#include "agent/telemetry/store.h"
#include "agent/telemetry/collector.h"
#include "agent/telemetry/sampler.h"
#include "agent/console/uplink.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

struct fx {
	char dir[64], path[128];
	struct loop *loop;
	struct store *st;
	struct collector *t;
	int kicks;
};

static void on_after(void *arg) { ((struct fx *)arg)->kicks++; }

static int setup(void **state)
{
	sim_reset();
	struct fx *x = calloc(1, sizeof(*x));
	if (test_tmpdir(x->dir, sizeof(x->dir), "tel", x->path, sizeof(x->path)))
		return -1;
	struct store_opts o = { .path = x->path, .budget_kb = 1024, .sync_full = false };
	if (store_open(&o, &x->st))
		return -1;
	x->loop = loop_create();
	struct collector_opts to = { .data_dir = x->dir, .interval_ms = 1000, .after_tick = on_after, .arg = x };
	x->t = collector_create(x->loop, x->st, &to);
	*state = x;
	return x->t ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	collector_destroy(x->t);
	loop_destroy(x->loop);
	store_close(x->st);
	if (test_rmtree(x->dir))
		return -1;
	free(x);
	return 0;
}

struct rows {
	int n;
	char body[8][CONFIG_TELEMETRY_ROW_BYTES];
	int kind[8];
};

static int collect(void *arg, const struct store_row *r)
{
	struct rows *rs = arg;
	if (rs->n < 8) {
		snprintf(rs->body[rs->n], sizeof(rs->body[0]), "%.*s", (int)r->len, r->body);
		rs->kind[rs->n] = r->kind;
	}
	rs->n++;
	return 0;
}

static void ctr_source(void *arg, struct collector_buf *b)
{
	int *n = arg;
	collector_buf_printf(b, "[");
	for (int i = 0; i < *n; i++)
		collector_buf_printf(b, "%s{\"name\":\"replica-%d\",\"cpu_pct\":12.5}", i ? "," : "", i);
	collector_buf_printf(b, "]");
}

static void one_row_per_tick_with_node_store_and_sources(void **state)
{
	struct fx *x = *state;
	int ctrs = 2;
	assert_int_equal(collector_register(x->t, "containers", ctr_source, &ctrs), 0);
	assert_int_equal(collector_register(x->t, "containers", ctr_source, &ctrs), -EEXIST);
	struct hal_node_stats n = { .cpu_busy_ticks = 100, .cpu_total_ticks = 400, .ncpu = 4,
				    .mem_total_bytes = 1000, .mem_avail_bytes = 600, .temp_mc = 51000 };
	sim_sys_set_node(&n);
	/* Three intervals of virtual time: three rows, kicked each time. */
	for (int i = 0; i < 3; i++) {
		sim_clock_advance_ms(1000);
		loop_run_once(x->loop, 0);
		n.cpu_busy_ticks += 50;
		n.cpu_total_ticks += 100;
		sim_sys_set_node(&n);
	}
	static struct rows rs;
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(store_scan(x->st, 0, 0, 10, collect, &rs), 3);
	assert_int_equal(x->kicks, 3);
	assert_null(strstr(rs.body[0], "cpu_pct\":5")); /* first tick: no rate yet */
	assert_non_null(strstr(rs.body[1], "\"node\":{\"cpu_pct\":50.0,\"ncpu\":4"));
	assert_non_null(strstr(rs.body[1], "\"temp_c\":51.0"));
	assert_non_null(strstr(rs.body[1], "\"store\":{\"rows\":1,\"dropped_telemetry\":0"));
	assert_non_null(strstr(rs.body[1], "\"containers\":[{\"name\":\"replica-0\""));
}

static void oversized_source_is_left_out_and_counted(void **state)
{
	struct fx *x = *state;
	int many = 100000;
	int few = 1;
	assert_int_equal(collector_register(x->t, "huge", ctr_source, &many), 0);
	assert_int_equal(collector_register(x->t, "small", ctr_source, &few), 0);
	assert_int_equal(collector_tick(x->t), 0);
	static struct rows rs;
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(store_scan(x->st, 0, 0, 10, collect, &rs), 1);
	assert_null(strstr(rs.body[0], "\"huge\""));
	assert_non_null(strstr(rs.body[0], "\"small\":[{\"name\":\"replica-0\""));
	struct collector_stats ts;
	collector_get_stats(x->t, &ts);
	assert_int_equal(ts.sources_truncated, 1);
	collector_unregister(x->t, "huge");
	assert_int_equal(collector_tick(x->t), 0);
	collector_get_stats(x->t, &ts);
	assert_int_equal(ts.sources_truncated, 1);
}

static void events_go_to_the_outbox_with_event_priority(void **state)
{
	struct fx *x = *state;
	const char *ev = "{\"event\":\"circuit_open\",\"deployment\":\"det\"}";
	assert_int_equal(collector_event(x->t, ev, strlen(ev)), 0);
	static struct rows rs;
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(store_scan(x->st, 0, 0, 10, collect, &rs), 1);
	assert_int_equal(rs.kind[0], STORE_EVENT);
	assert_string_equal(rs.body[0], ev);
}

static void node_read_error_is_reported_not_fatal(void **state)
{
	struct fx *x = *state;
	sim_sys_inject_error(-EIO, 1);
	assert_int_equal(collector_tick(x->t), 0);
	static struct rows rs;
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(store_scan(x->st, 0, 0, 10, collect, &rs), 1);
	assert_non_null(strstr(rs.body[0], "\"node\":{\"error\":"));
}

/* With the sampler set, the row's node figures are the sampler's reading of the interval: the
 * collector does not read the node again (an injected read error stays for the next reader). */
static void node_figures_come_from_the_sampler(void **state)
{
	struct fx *x = *state;
	struct sampler *m = sampler_create(x->loop, x->dir, 1000);
	assert_non_null(m);
	sampler_sample(m);
	collector_set_sampler(x->t, m);
	sim_sys_inject_error(-EIO, 1);
	assert_int_equal(collector_tick(x->t), 0);
	static struct rows rs;
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(store_scan(x->st, 0, 0, 10, collect, &rs), 1);
	assert_null(strstr(rs.body[0], "\"node\":{\"error\":"));
	assert_non_null(strstr(rs.body[0], "\"mem_total_bytes\":"));
	/* a stale sample (older than two intervals) is not used: the collector reads, and fails */
	sim_clock_advance_ms(2500);
	assert_int_equal(collector_tick(x->t), 0);
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(store_scan(x->st, 0, 0, 10, collect, &rs), 2);
	assert_non_null(strstr(rs.body[1], "\"node\":{\"error\":"));
	collector_set_sampler(x->t, NULL);
	sampler_destroy(m);
}

static void backoff_is_full_jitter_within_bounds(void **state)
{
	const uint32_t min_ms = 1000, max_ms = 120000;
	uint32_t rng = 12345;
	for (uint32_t attempt = 0; attempt < 20; attempt++) {
		uint64_t cap = (uint64_t)min_ms << (attempt < 16 ? attempt : 16);
		if (cap > max_ms)
			cap = max_ms;
		uint32_t lo = UINT32_MAX, hi = 0;
		for (int i = 0; i < 2000; i++) {
			rng ^= rng << 13;
			rng ^= rng >> 17;
			rng ^= rng << 5;
			uint32_t d = uplink_backoff_ms(attempt, min_ms, max_ms, rng);
			assert_true(d >= UPLINK_BACKOFF_FLOOR_MS);
			assert_true(d <= cap);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		/* Spread over the whole range, not clustered at the cap. */
		assert_true(lo < UPLINK_BACKOFF_FLOOR_MS + cap / 10);
		assert_true(hi > cap - cap / 10);
	}
	assert_int_equal(uplink_backoff_ms(0, 1000, 120000, 0), UPLINK_BACKOFF_FLOOR_MS);
	assert_int_equal(uplink_backoff_ms(50, 1000, 120000, UINT32_MAX) <= 120000, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(one_row_per_tick_with_node_store_and_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_source_is_left_out_and_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(events_go_to_the_outbox_with_event_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(node_read_error_is_reported_not_fatal, setup, teardown),
		cmocka_unit_test_setup_teardown(node_figures_come_from_the_sampler, setup, teardown),
		cmocka_unit_test(backoff_is_full_jitter_within_bounds),
	};
	return cmocka_run_group_tests_name("telemetry", tests, NULL, NULL);
}
