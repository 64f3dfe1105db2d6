/* tests/unit/test_images.c - the images flow in virtual time: pulls, retries with back-off, resume, policies, the budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "agent/base/loop.h"
#include "agent/images/images.h"
#include "agent/images/regauth.h"
#include "agent/telemetry/events.h"
#include "agent/telemetry/store.h"
#include "hal/engine.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

#define REG "127.0.0.1:5000"
#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

struct fx {
	struct loop *l;
	struct hal_engine *e;
	struct events *ev;
	struct store *st;
	struct images *im;
	struct images_registry regs[1];
	char dir[64];
	unsigned changes;
};

static unsigned count_events(const struct events *ev, const char *type)
{
	unsigned n = 0;
	for (unsigned i = 0; i < events_count(ev); i++)
		n += strcmp(events_get(ev, i)->type, type) == 0;
	return n;
}

static void on_change(void *arg, const char *ref, enum image_state st)
{
	(void)ref;
	(void)st;
	((struct fx *)arg)->changes++;
}

static struct images *make(struct fx *f, uint64_t budget)
{
	struct images_opts o = { .stall_s = 30, .retry_initial_ms = 1000, .retry_max_ms = 8000,
				 .budget_bytes = budget, .gc_interval_s = 10, .progress_event_ms = 2000,
				 .registries = f->regs, .nregistries = 1 };
	f->im = images_create(f->l, f->e, f->st, f->ev, &o);
	assert_non_null(f->im);
	images_set_listener(f->im, on_change, f);
	return f->im;
}

static int setup(void **state)
{
	static struct fx f;
	memset(&f, 0, sizeof(f));
	sim_reset();
	sim_images_enforce(true);
	f.l = loop_create();
	f.e = hal_engine_create(f.l, "sim", 5000);
	f.ev = events_create(64);
	char db[128];
	assert_int_equal(test_tmpdir(f.dir, sizeof(f.dir), "images", db, sizeof(db)), 0);
	struct store_opts so = { .path = db, .budget_kb = 1024, .sync_full = false };
	assert_int_equal(store_open(&so, &f.st), 0);
	snprintf(f.regs[0].host, sizeof(f.regs[0].host), REG);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	images_destroy(f->im);
	store_close(f->st);
	events_destroy(f->ev);
	hal_engine_destroy(f->e);
	loop_destroy(f->l);
	test_rmtree(f->dir);
	return 0;
}

static enum image_state state_of(struct fx *f, const char *ref)
{
	struct image_status s;
	assert_int_equal(images_status(f->im, ref, &s), 0);
	return s.state;
}

static void absent_image_is_pulled_then_present(void **state)
{
	struct fx *f = *state;
	sim_registry_add(REG "/m:v1", D1, 30u * 1000u * 1000u); /* 30 MB at 10 MB/s: 3 s */
	make(f, 0);
	char err[128];
	assert_int_equal(images_want(f->im, REG "/m:v1", PULL_IF_NOT_PRESENT, err, sizeof(err)), IMAGE_CHECKING);
	test_run_ms(f->l, 100, 10);
	assert_int_equal(state_of(f, REG "/m:v1"), IMAGE_PULLING);
	test_run_ms(f->l, 2000, 100);
	struct image_status s;
	assert_int_equal(images_status(f->im, REG "/m:v1", &s), 0);
	assert_true(s.bytes_done > 0 && s.bytes_done < s.bytes_total);
	test_run_ms(f->l, 2000, 100);
	assert_int_equal(state_of(f, REG "/m:v1"), IMAGE_PRESENT);
	assert_true(sim_image_exists(REG "/m:v1"));
	assert_int_equal(count_events(f->ev, "image_pulled"), 1);
	assert_true(count_events(f->ev, "image_pull_progress") >= 1);
	assert_true(count_events(f->ev, "image_pull_progress") <= 2); /* at most one per 2 s over ~3 s */
	assert_int_equal(images_status(f->im, REG "/m:v1", &s), 0);
	assert_string_equal(s.digest, D1);
	assert_true(f->changes >= 3);
}

static void present_image_is_not_pulled_when_if_not_present(void **state)
{
	struct fx *f = *state;
	sim_image_add(REG "/m:v1", 1000, 1);
	sim_registry_set_available(false); /* offline boot */
	make(f, 0);
	char err[128];
	assert_true(images_want(f->im, REG "/m:v1", PULL_IF_NOT_PRESENT, err, sizeof(err)) >= 0);
	test_run_ms(f->l, 50, 10);
	assert_int_equal(state_of(f, REG "/m:v1"), IMAGE_PRESENT);
	assert_int_equal(sim_pulls_started(), 0);
}

static void never_policy_waits_and_always_pulls(void **state)
{
	struct fx *f = *state;
	sim_registry_add(REG "/m:v1", D1, 1000);
	sim_image_add(REG "/m:v2", 1000, 1);
	sim_registry_add(REG "/m:v2", D2, 1000);
	make(f, 0);
	char err[128];
	assert_true(images_want(f->im, REG "/m:v1", PULL_NEVER, err, sizeof(err)) >= 0);
	assert_true(images_want(f->im, REG "/m:v2", PULL_ALWAYS, err, sizeof(err)) >= 0);
	test_run_ms(f->l, 3000, 50);
	assert_int_equal(state_of(f, REG "/m:v1"), IMAGE_MISSING);
	assert_int_equal(state_of(f, REG "/m:v2"), IMAGE_PRESENT);
	assert_int_equal(sim_pulls_started(), 1); /* v2 pulled although present; v1 never */
}

static void failures_retry_with_backoff_and_resume(void **state)
{
	struct fx *f = *state;
	sim_registry_add(REG "/m:v1", D1, 50u * 1000u * 1000u); /* 5 s */
	make(f, 0);
	char err[128];
	assert_true(images_want(f->im, REG "/m:v1", PULL_IF_NOT_PRESENT, err, sizeof(err)) >= 0);
	test_run_ms(f->l, 2500, 100);
	assert_int_equal(state_of(f, REG "/m:v1"), IMAGE_PULLING);
	sim_registry_set_available(false); /* the uplink is cut mid-pull */
	test_run_ms(f->l, 1200, 100);
	struct image_status s;
	assert_int_equal(images_status(f->im, REG "/m:v1", &s), 0);
	assert_int_equal(s.state, IMAGE_RETRY_WAIT);
	assert_int_equal(s.attempts, 1);
	assert_non_null(strstr(s.last_error, "unreachable"));
	uint64_t fetched = s.bytes_done;
	assert_true(fetched >= 20u * 1000u * 1000u);
	test_run_ms(f->l, 20000, 200); /* still down: more attempts, delays growing */
	assert_int_equal(images_status(f->im, REG "/m:v1", &s), 0);
	assert_true(s.attempts >= 3 && s.attempts <= 5);
	sim_registry_set_available(true);
	test_run_ms(f->l, 12000, 200);
	assert_int_equal(state_of(f, REG "/m:v1"), IMAGE_PRESENT);
	assert_int_equal(count_events(f->ev, "image_pulled"), 1);
	/* the second successful pull carried on from what the first fetched: under 5 s of transfer */
	assert_true(sim_pulls_started() >= 2);
}

static void unknown_digest_and_registry_are_refused(void **state)
{
	struct fx *f = *state;
	sim_registry_add(REG "/m:v1", D1, 1000);
	make(f, 0);
	char err[128];
	assert_int_equal(images_want(f->im, "other.example:5000/m:v1", PULL_IF_NOT_PRESENT, err, sizeof(err)),
			 -EACCES);
	assert_non_null(strstr(err, "other.example:5000"));
	assert_int_equal(images_want(f->im, REG "/m@sha256:12", PULL_IF_NOT_PRESENT, err, sizeof(err)), -EINVAL);
	assert_true(images_want(f->im, REG "/m@" D3, PULL_IF_NOT_PRESENT, err, sizeof(err)) >= 0);
	test_run_ms(f->l, 500, 50);
	struct image_status s;
	assert_int_equal(images_status(f->im, REG "/m@" D3, &s), 0);
	assert_int_equal(s.state, IMAGE_RETRY_WAIT);
	assert_non_null(strstr(s.last_error, "manifest unknown"));
	assert_false(sim_image_exists(REG "/m@" D3));
}

static void budget_removes_oldest_unkept_images_berth_pulled(void **state)
{
	struct fx *f = *state;
	sim_registry_add(REG "/m:v1", D1, 400);
	sim_registry_add(REG "/m:v2", D2, 400);
	sim_registry_add(REG "/m:v3", D3, 400);
	sim_image_add("localhost/foreign:1", 400, 0); /* not berth's: left alone */
	make(f, 1000);
	char err[128];
	const char *v[] = { REG "/m:v1", REG "/m:v2", REG "/m:v3" };
	for (int i = 0; i < 3; i++) {
		assert_true(images_want(f->im, v[i], PULL_IF_NOT_PRESENT, err, sizeof(err)) >= 0);
		test_run_ms(f->l, 3000, 100);
		assert_int_equal(state_of(f, v[i]), IMAGE_PRESENT);
	}
	/* v3 current, v2 last-known-good: v1 (oldest, berth's) is the one to go */
	const char *keep[] = { v[2], v[1] };
	images_keep(f->im, keep, 2);
	images_gc_now(f->im);
	test_run_ms(f->l, 2000, 50);
	assert_false(sim_image_exists(v[0]));
	assert_true(sim_image_exists(v[1]) && sim_image_exists(v[2]) && sim_image_exists("localhost/foreign:1"));
	assert_int_equal(count_events(f->ev, "image_removed"), 1);
	struct images_stats st;
	images_get_stats(f->im, &st);
	assert_int_equal(st.disk_bytes, 1200);
	assert_int_equal(st.over_budget_bytes, 200); /* the rest is kept or foreign: said, not removed */
}

static void auth_header_is_base64url_json(void **state)
{
	(void)state;
	char buf[512];
	assert_int_equal(regauth_header("u", "p\"w", "r:1", buf, sizeof(buf)), 0);
	/* {"username":"u","password":"p\"w","serveraddress":"r:1"} */
	assert_string_equal(buf, "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InBcInciLCJzZXJ2ZXJhZGRyZXNzIjoicjoxIn0=");
	assert_int_equal(regauth_header("u", "p", "r", buf, 8), -ENOSPC);
	struct images_registry regs[2];
	unsigned n;
	char err[128];
	const char *ok = "{\"registries\":{\"r:1\":{\"username\":\"a\",\"password\":\"b\"}}}";
	assert_int_equal(regauth_parse(ok, strlen(ok), regs, 2, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(regs[0].host, "r:1");
	const char *bad = "{\"registries\":{\"r:1\":{\"username\":\"a\",\"password\":7}}}";
	assert_int_equal(regauth_parse(bad, strlen(bad), regs, 2, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "registries.r:1.password: must be a string");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(absent_image_is_pulled_then_present, setup, teardown),
		cmocka_unit_test_setup_teardown(present_image_is_not_pulled_when_if_not_present, setup, teardown),
		cmocka_unit_test_setup_teardown(never_policy_waits_and_always_pulls, setup, teardown),
		cmocka_unit_test_setup_teardown(failures_retry_with_backoff_and_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_digest_and_registry_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(budget_removes_oldest_unkept_images_berth_pulled, setup, teardown),
		cmocka_unit_test(auth_header_is_base64url_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
