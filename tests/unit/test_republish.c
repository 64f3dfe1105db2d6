/* tests/unit/test_republish.c - when the retained reported state goes out: structure promptly, figures on refresh, in virtual time. */
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
#include "agent/console/republish.h"
#include "hal/clock.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

#define REFRESH_MS 30000u

/* A gateway's state as the reported state shows it. */
struct fx {
	struct loop *l;
	struct republish *r;
	bool connected;
	unsigned desired, ready;
	uint64_t requests, on_time;      /* figures: move with every request */
	unsigned published;
	char last[512];
};

static int render(void *arg, char *buf, size_t len, bool figures)
{
	struct fx *f = arg;
	int n = snprintf(buf, len,
			 "{\"schema\":1,\"ts\":%llu,\"desired_version\":3,\"deployments\":[{\"name\":\"m\","
			 "\"replicas_desired\":%u,\"replicas_ready\":%u,\"health\":\"%s\"",
			 (unsigned long long)hal_clock_now_us(), f->desired, f->ready,
			 f->ready >= f->desired ? "healthy" : "degraded");
	if (figures)
		n += snprintf(buf + n, len - (size_t)n, ",\"sla_compliance\":%.4f}],\"sla\":{\"requests\":%llu}}",
			      f->requests ? (double)f->on_time / (double)f->requests : 1.0,
			      (unsigned long long)f->requests);
	else
		n += snprintf(buf + n, len - (size_t)n, "}]}");
	return n < (int)len ? n : -ENOSPC;
}

static bool can_publish(void *arg) { return ((struct fx *)arg)->connected; }

static int publish(void *arg, const char *json, size_t len)
{
	struct fx *f = arg;
	f->published++;
	snprintf(f->last, sizeof(f->last), "%.*s", (int)len, json);
	return 0;
}

static int setup(void **state)
{
	sim_reset();
	struct fx *f = calloc(1, sizeof(*f));
	f->l = loop_create();
	f->desired = f->ready = 2;
	f->connected = true;
	struct republish_opts o = {
		.check_ms = 1000,
		.refresh_ms = REFRESH_MS,
		.max_bytes = 512,
		.render = render,
		.can_publish = can_publish,
		.publish = publish,
		.arg = f,
	};
	f->r = republish_create(f->l, &o);
	*state = f;
	return f->l && f->r ? 0 : -1;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	republish_destroy(f->r);
	loop_destroy(f->l);
	free(f);
	return 0;
}

/* One second of steady load: 100 requests, 99 on time. */
static void serve_a_second(struct fx *f)
{
	f->requests += 100;
	f->on_time += 99;
	test_run_ms(f->l, 1000, 10);
}

static void steady_load_refreshes_only_every_refresh_period(void **state)
{
	struct fx *f = *state;
	republish_connected(f->r);
	assert_int_equal(f->published, 1);
	/* 65 s of load: the figures move every second, the structure never. */
	for (int s = 0; s < 65; s++)
		serve_a_second(f);
	assert_int_equal(f->published, 3); /* the connect, then at 30 s and 60 s */
	struct republish_stats st;
	republish_get_stats(f->r, &st);
	assert_int_equal(st.refreshes, 2);
	assert_int_equal(st.structural, 0);
	/* what went out carries the figures of its time */
	char want[64];
	snprintf(want, sizeof(want), "\"requests\":%u", 60 * 100);
	assert_non_null(strstr(f->last, want));
}

static void replica_going_unready_goes_out_within_a_second(void **state)
{
	struct fx *f = *state;
	republish_connected(f->r);
	for (int s = 0; s < 5; s++)
		serve_a_second(f);
	assert_int_equal(f->published, 1);
	test_run_ms(f->l, 300, 10);
	f->ready = 1;
	serve_a_second(f);
	assert_int_equal(f->published, 2);
	assert_non_null(strstr(f->last, "\"replicas_ready\":1,\"health\":\"degraded\""));
	/* and back: again within a second, and at most one per second */
	f->ready = 2;
	test_run_ms(f->l, 1000, 10);
	assert_int_equal(f->published, 3);
	assert_non_null(strstr(f->last, "\"replicas_ready\":2"));
	/* A replica flapping ten times within a second (it ends unready): one
	 * publish in that second, the rest at the next check. */
	test_run_ms(f->l, 50, 10);
	for (int s = 0; s < 10; s++) {
		f->ready = (unsigned)(s % 2 ? 0 : 1);
		test_run_ms(f->l, 95, 5);
	}
	assert_int_equal(f->published, 4);
	test_run_ms(f->l, 1000, 10);
	assert_non_null(strstr(f->last, "\"replicas_ready\":0"));
	assert_true(f->published <= 5);
}

static void command_publishes_at_once_unless_nothing_changed(void **state)
{
	struct fx *f = *state;
	republish_connected(f->r);
	republish_changed(f->r);
	assert_int_equal(f->published, 1); /* nothing changed */
	f->desired = 3;
	republish_changed(f->r);
	assert_int_equal(f->published, 2); /* at once, no loop turn */
	assert_non_null(strstr(f->last, "\"replicas_desired\":3"));
	/* the check a moment later has nothing new to say */
	test_run_ms(f->l, 2000, 10);
	assert_int_equal(f->published, 2);
}

static void nothing_goes_out_while_disconnected_and_all_on_connect(void **state)
{
	struct fx *f = *state;
	f->connected = false;
	f->ready = 1;
	republish_changed(f->r);
	for (int s = 0; s < 40; s++)
		serve_a_second(f);
	assert_int_equal(f->published, 0);
	f->connected = true;
	republish_connected(f->r);
	assert_int_equal(f->published, 1);
	assert_non_null(strstr(f->last, "\"requests\":4000"));
	republish_connected(f->r); /* a reconnect publishes again: the broker may have lost it */
	assert_int_equal(f->published, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(steady_load_refreshes_only_every_refresh_period, setup, teardown),
		cmocka_unit_test_setup_teardown(replica_going_unready_goes_out_within_a_second, setup, teardown),
		cmocka_unit_test_setup_teardown(command_publishes_at_once_unless_nothing_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(nothing_goes_out_while_disconnected_and_all_on_connect, setup, teardown),
	};
	return cmocka_run_group_tests_name("reporter", tests, NULL, NULL);
}
