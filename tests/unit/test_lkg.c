/* tests/unit/test_lkg.c - the images flow with the real supervisor on the simulated engine and registry, in virtual time: pull before roll, last-known-good, automatic and requested rollback, kept across a restart. */
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
#include "agent/images/images.h"
#include "agent/images/lkg.h"
#include "agent/model/deploy.h"
#include "agent/supervise/supervisor.h"
#include "agent/telemetry/events.h"
#include "agent/telemetry/store.h"
#include "hal/engine.h"
#include "hal/invoke.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

#define REG "127.0.0.1:5000"
#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

struct fx {
	struct loop *l;
	struct hal_engine *e;
	struct hal_invoke *inv;
	struct events *ev;
	struct store *st;
	struct supervisor *s;
	struct images *im;
	struct lkg *k;
	struct images_registry reg[1];
	struct deploy_set set;
	char dir[64], db[128];
	int min_ready;
	bool tracking;
	int ready;
};

static void observer(void *arg, enum sup_event ev, const struct sup_replica *r)
{
	(void)r;
	struct fx *f = arg;
	f->ready += ev == SUP_EV_READY ? 1 : ev == SUP_EV_UNREADY ? -1 : 0;
	if (f->tracking && f->ready < f->min_ready)
		f->min_ready = f->ready;
}

static void up(struct fx *f)
{
	struct sup_config cfg = { .device_id = "gw1", .resync_ms = 2000, .seed = 1, .events = f->ev, .stop_timeout_s = 1 };
	f->e = hal_engine_create(f->l, "sim", 1000);
	f->inv = hal_invoke_create(f->l, 64);
	f->s = supervisor_create(f->l, f->e, f->inv, &cfg);
	assert_non_null(f->s);
	assert_int_equal(supervisor_observe(f->s, observer, f), 0);
	struct store_opts so = { .path = f->db, .budget_kb = 1024, .sync_full = false };
	assert_int_equal(store_open(&so, &f->st), 0);
	struct images_opts io = { .stall_s = 30, .registries = f->reg, .nregistries = 1, .gc_interval_s = 60 };
	f->im = images_create(f->l, f->e, f->st, f->ev, &io);
	struct lkg_opts lo = { .rollback = true, .stable_ms = 5000, .window_ms = 30000, .max_crashes = 3 };
	f->k = lkg_create(f->l, f->s, f->im, f->st, f->ev, &lo);
	assert_non_null(f->k);
	assert_int_equal(supervisor_start(f->s), 0);
	f->ready = 0;
}

static void down(struct fx *f)
{
	lkg_destroy(f->k);
	images_destroy(f->im);
	supervisor_destroy(f->s);
	store_close(f->st);
	hal_engine_destroy(f->e);
	hal_invoke_destroy(f->inv);
}

static int setup(void **state)
{
	sim_reset();
	sim_images_enforce(true);
	sim_registry_add(REG "/m:v1", D1, 20u * 1000u * 1000u);
	sim_registry_add(REG "/m:v2", D2, 20u * 1000u * 1000u);
	struct fx *f = calloc(1, sizeof(*f));
	f->l = loop_create();
	f->ev = events_create(128);
	snprintf(f->reg[0].host, sizeof(f->reg[0].host), REG);
	assert_int_equal(test_tmpdir(f->dir, sizeof(f->dir), "lkg", f->db, sizeof(f->db)), 0);
	up(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	down(f);
	events_destroy(f->ev);
	sim_reset();
	loop_destroy(f->l);
	test_rmtree(f->dir);
	free(f);
	return 0;
}

/* v: the tag; env: extra environment ("" none). WORKER_FAULT=crash makes every replica exit at start. */
static void apply(struct fx *f, unsigned version, const char *tag, const char *env)
{
	char json[1024];
	snprintf(json, sizeof(json),
		 "{\"version\":%u,\"deployments\":[{\"name\":\"m\",\"image\":\"" REG "/m:%s\",\"env\":{%s},"
		 "\"replicas\":{\"min\":2,\"max\":3,\"desired\":3},\"inference\":{\"port\":9000},"
		 "\"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":100,\"timeout_ms\":50},"
		 "\"restart\":{\"policy\":\"always\",\"backoff_initial_ms\":100}}]}",
		 version, tag, env);
	struct deploy_error err;
	if (deploy_parse(json, strlen(json), &f->set, &err))
		fail_msg("%s: %s", err.field, err.message);
	assert_int_equal(supervisor_apply(f->s, &f->set), 0);
}

static unsigned running_with(const char *image)
{
	unsigned n = 0;
	for (unsigned i = 0; i < sim_ctr_count(); i++) {
		struct hal_ctr_info c;
		if (sim_ctr_get(sim_ctr_id_at(i), &c) == 0 && c.state == HAL_CTR_RUNNING && strcmp(c.image, image) == 0)
			n++;
	}
	return n;
}

static unsigned count_events(struct fx *f, const char *type)
{
	unsigned n = 0;
	for (unsigned i = 0; i < events_count(f->ev); i++)
		n += strcmp(events_get(f->ev, i)->type, type) == 0;
	return n;
}

static void pulls_before_rolling_and_rolls_back_a_crash_loop(void **state)
{
	struct fx *f = *state;
	apply(f, 1, "v1", "");
	test_run_ms(f->l, 1000, 50);
	assert_int_equal(running_with(REG "/m:v1"), 0); /* 20 MB at 10 MB/s: still pulling */
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, "m", &st), 0);
	assert_true(st.image_waiting);
	assert_non_null(strstr(st.last_error, "waiting for image"));
	test_run_ms(f->l, 4000, 50);
	assert_int_equal(running_with(REG "/m:v1"), 3);
	test_run_ms(f->l, 8000, 100);
	assert_int_equal(count_events(f, "last_known_good"), 1);

	/* v2: pulled while all of v1 keeps running */
	f->tracking = true;
	f->min_ready = f->ready;
	apply(f, 2, "v2", "");
	test_run_ms(f->l, 1500, 50);
	assert_int_equal(running_with(REG "/m:v1"), 3);
	assert_int_equal(running_with(REG "/m:v2"), 0);
	test_run_ms(f->l, 8000, 50);
	assert_int_equal(running_with(REG "/m:v2"), 3);
	assert_int_equal(running_with(REG "/m:v1"), 0);
	assert_true(f->min_ready >= 3);
	test_run_ms(f->l, 8000, 100);
	assert_int_equal(count_events(f, "last_known_good"), 2);

	/* v2 with a crashing environment: a new version that crash-loops */
	apply(f, 3, "v2", "\"WORKER_FAULT\":\"crash\"");
	test_run_ms(f->l, 10000, 50);
	assert_int_equal(count_events(f, "rollback"), 1);
	const struct event *rb = NULL;
	for (unsigned i = 0; i < events_count(f->ev); i++)
		if (!strcmp(events_get(f->ev, i)->type, "rollback"))
			rb = events_get(f->ev, i);
	assert_non_null(strstr(rb->detail, "\"reason\":\"crash_loop\""));
	test_run_ms(f->l, 3000, 50);
	assert_int_equal(running_with(REG "/m:v2"), 3);
	assert_true(f->min_ready >= 2); /* never below min ready */
	const struct deploy_spec *sp = supervisor_spec(f->s, "m");
	assert_non_null(sp);
	assert_int_equal(sp->env[0][0], '\0'); /* the good spec again */

	/* the same bad spec applied again (a reboot, a retained message) stays rolled back */
	apply(f, 3, "v2", "\"WORKER_FAULT\":\"crash\"");
	test_run_ms(f->l, 2000, 50);
	assert_int_equal(supervisor_spec(f->s, "m")->env[0][0], '\0');
	assert_int_equal(count_events(f, "rollback"), 1);
}

static void rollback_on_request_and_across_a_restart(void **state)
{
	struct fx *f = *state;
	apply(f, 1, "v1", "");
	test_run_ms(f->l, 14000, 100);
	assert_int_equal(count_events(f, "last_known_good"), 1);
	assert_int_equal(lkg_rollback(f->k, "m", "requested"), -EALREADY);
	assert_int_equal(lkg_rollback(f->k, "nope", "requested"), -ENOENT);
	apply(f, 2, "v2", "");
	test_run_ms(f->l, 6000, 50);
	assert_int_equal(running_with(REG "/m:v2"), 3);
	/* The last-known-good spec, for the policy to check before a repair. */
	char *doc = NULL;
	assert_int_equal(lkg_last_good(f->k, "m", &doc), 0);
	struct deploy_set *g = calloc(1, sizeof(*g));
	struct deploy_error de;
	assert_int_equal(deploy_parse(doc, strlen(doc), g, &de), 0);
	assert_int_equal(g->n, 1);
	assert_string_equal(g->d[0].image, REG "/m:v1");
	free(g);
	free(doc);
	assert_int_equal(lkg_last_good(f->k, "nope", &doc), -ENOENT);
	assert_null(doc);
	/* asked for before v2 became last-known-good */
	assert_int_equal(lkg_rollback(f->k, "m", "requested"), 0);
	assert_int_equal(lkg_last_good(f->k, "m", &doc), -EALREADY);
	test_run_ms(f->l, 3000, 50);
	assert_int_equal(running_with(REG "/m:v1"), 3);
	assert_int_equal(running_with(REG "/m:v2"), 0);
	char buf[1024];
	assert_true(lkg_report(f->k, "m", true, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"last_rollback\":{\"reason\":\"requested\""));
	assert_non_null(strstr(buf, "\"last_known_good\":{\"image\":\"" REG "/m:v1\",\"digest\":\"" D1 "\""));

	/* berthd restarts: the record and the rollback survive in the store */
	down(f);
	up(f);
	apply(f, 2, "v2", "");
	test_run_ms(f->l, 3000, 50);
	assert_string_equal(supervisor_spec(f->s, "m")->image, REG "/m:v1");
	/* a different version ends it */
	apply(f, 4, "v2", "\"NEW\":\"1\"");
	test_run_ms(f->l, 6000, 50);
	assert_string_equal(supervisor_spec(f->s, "m")->image, REG "/m:v2");
}

static void first_version_has_nothing_to_roll_back_to(void **state)
{
	struct fx *f = *state;
	apply(f, 1, "v1", "\"WORKER_FAULT\":\"crash\"");
	test_run_ms(f->l, 40000, 100);
	assert_int_equal(count_events(f, "rollback"), 0);
	assert_int_equal(count_events(f, "last_known_good"), 0);
	assert_int_equal(lkg_rollback(f->k, "m", "requested"), -ENODATA);
	char *doc = NULL;
	assert_int_equal(lkg_last_good(f->k, "m", &doc), -ENODATA);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(pulls_before_rolling_and_rolls_back_a_crash_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback_on_request_and_across_a_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(first_version_has_nothing_to_roll_back_to, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
