/* tests/unit/test_supervisor.c - reconciliation, restarts, circuit, rolls and engine outages on the simulated engine, in virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/actions.h"
#include "agent/supervise/chaos.h"
#include "agent/model/deploy.h"
#include "agent/telemetry/events.h"
#include "agent/base/loop.h"
#include "agent/telemetry/sampler.h"
#include "agent/supervise/supervisor.h"
#include "hal/clock.h"
#include "hal/engine.h"
#include "hal/invoke.h"
#include "ports/sim/sim.h"
#include "tests/unit/helpers.h"

#define DEV "gw1"

struct tracker {
	int ready[4];       /* per deployment index: a, b, c, d */
	int min_ready[4];
	int max_ready[4];
	bool tracking[4];
	unsigned readies;
	unsigned gones;
};

struct fx {
	struct loop *l;
	struct hal_engine *e;
	struct hal_invoke *inv;
	struct events *ev;
	struct supervisor *s;
	struct tracker t;
	struct deploy_set set;
};

static int dep_index(const char *name) { return name[0] >= 'a' && name[0] <= 'd' ? name[0] - 'a' : 3; }

static void observer(void *arg, enum sup_event ev, const struct sup_replica *r)
{
	struct tracker *t = arg;
	int i = dep_index(r->deployment);
	if (ev == SUP_EV_READY) {
		t->ready[i]++;
		t->readies++;
	} else if (ev == SUP_EV_UNREADY) {
		t->ready[i]--;
	} else {
		t->gones++;
	}
	if (!t->tracking[i])
		return;
	if (t->ready[i] < t->min_ready[i])
		t->min_ready[i] = t->ready[i];
	if (t->ready[i] > t->max_ready[i])
		t->max_ready[i] = t->ready[i];
}

static void track(struct fx *f, int i)
{
	f->t.tracking[i] = true;
	f->t.min_ready[i] = f->t.max_ready[i] = f->t.ready[i];
}

static void sup_up(struct fx *f, unsigned migrate_after)
{
	struct sup_config cfg = { .device_id = DEV, .resync_ms = 2000, .migrate_after_failures = migrate_after,
				  .seed = 1, .events = f->ev, .stop_timeout_s = 1 };
	f->e = hal_engine_create(f->l, "sim", 1000);
	f->inv = hal_invoke_create(f->l, 64);
	assert_non_null(f->e);
	assert_non_null(f->inv);
	f->s = supervisor_create(f->l, f->e, f->inv, &cfg);
	assert_non_null(f->s);
	assert_int_equal(supervisor_observe(f->s, observer, &f->t), 0);
	assert_int_equal(supervisor_start(f->s), 0);
}

static void sup_down(struct fx *f)
{
	supervisor_destroy(f->s);
	hal_engine_destroy(f->e);
	hal_invoke_destroy(f->inv);
	f->s = NULL;
	f->e = NULL;
	f->inv = NULL;
}

static int setup(void **state)
{
	sim_reset();
	struct fx *f = calloc(1, sizeof(*f));
	f->l = loop_create();
	f->ev = events_create(64);
	sup_up(f, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sup_down(f);
	events_destroy(f->ev);
	sim_reset(); /* the simulated world's timers live on this loop */
	loop_destroy(f->l);
	free(f);
	return 0;
}

static void run_ms(struct fx *f, uint64_t ms) { test_run_ms(f->l, ms, 10); }

/* Runs until cond holds (checked every 5 ms of virtual time) or max_ms passes. */
#define RUN_UNTIL(f, max_ms, cond)                                               \
	do {                                                                     \
		uint64_t end_ = hal_clock_now_us() + (uint64_t)(max_ms) * 1000u; \
		while (!(cond) && hal_clock_now_us() < end_)                     \
			run_ms((f), 5);                                          \
	} while (0)

static void apply(struct fx *f, const char *json)
{
	struct deploy_error err;
	int rc = deploy_parse(json, strlen(json), &f->set, &err);
	if (rc)
		fail_msg("%s: %s: %s", err.deployment, err.field, err.message);
	assert_int_equal(supervisor_apply(f->s, &f->set), 0);
}

static unsigned ready_of(struct fx *f, const char *dep)
{
	struct sup_replica r[DEPLOY_MAX_REPLICAS];
	return supervisor_ready_replicas(f->s, dep, r, DEPLOY_MAX_REPLICAS);
}

static const char *label(const struct hal_ctr_info *c, const char *key)
{
	for (unsigned i = 0; i < c->nlabels; i++)
		if (!strcmp(c->labels[i].key, key))
			return c->labels[i].value;
	return NULL;
}

/* Containers of deployment dep (any state) on the engine. */
static unsigned engine_count(const char *dep, bool running_only)
{
	unsigned n = 0;
	for (unsigned i = 0; i < sim_ctr_count(); i++) {
		struct hal_ctr_info c;
		if (sim_ctr_get(sim_ctr_id_at(i), &c))
			continue;
		const char *d = label(&c, "io.berth.deployment");
		if (d && !strcmp(d, dep) && (!running_only || c.state == HAL_CTR_RUNNING))
			n++;
	}
	return n;
}

static void ctr_id_of(struct fx *f, const char *dep, unsigned slot, char *id)
{
	struct sup_replica r[64];
	unsigned n = supervisor_replicas(f->s, r, 64);
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(r[i].deployment, dep) && r[i].slot == slot) {
			strcpy(id, r[i].ctr_id);
			return;
		}
	fail_msg("no replica %s/%u", dep, slot);
}

static uint32_t restarts_of(struct fx *f, const char *dep)
{
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, dep, &st), 0);
	return st.restarts;
}

static bool has_event(struct fx *f, const char *type)
{
	for (unsigned i = 0; i < events_count(f->ev); i++)
		if (!strcmp(events_get(f->ev, i)->type, type))
			return true;
	return false;
}

#define PROBES "\"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":100,\"timeout_ms\":50}," \
	       "\"liveness\":{\"type\":\"http\",\"path\":\"/v2/health/live\",\"period_ms\":100,\"timeout_ms\":50,"   \
	       "\"failure_threshold\":3}"

static const char *two_deployments =
	"{\"version\":1,\"deployments\":["
	"{\"name\":\"a\",\"image\":\"worker\",\"replicas\":{\"min\":1,\"max\":4,\"desired\":2},"
	"\"inference\":{\"port\":9000,\"concurrency\":2}," PROBES "},"
	"{\"name\":\"b\",\"image\":\"worker\",\"replicas\":1,\"inference\":{\"port\":9100},"
	"\"readiness\":{\"type\":\"tcp\",\"period_ms\":100}}]}";

static void converges_from_nothing(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2 && ready_of(f, "b") == 1);
	assert_int_equal(ready_of(f, "a"), 2);
	assert_int_equal(ready_of(f, "b"), 1);
	assert_int_equal(engine_count("a", true), 2);
	assert_int_equal(engine_count("b", true), 1);
	struct sup_replica r[4];
	assert_int_equal(supervisor_ready_replicas(f->s, "a", r, 4), 2);
	assert_int_not_equal(r[0].port, r[1].port);
	assert_true(r[0].port >= 9000 && r[0].port <= 9004);
	assert_string_equal(r[0].host, "127.0.0.1");
	assert_int_equal(r[0].concurrency, 2);
	/* names and labels */
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get("berth-gw1-a-0", &c), 0);
	assert_string_equal(label(&c, "io.berth.owner"), DEV);
	assert_string_equal(label(&c, "io.berth.deployment"), "a");
	assert_string_equal(label(&c, "io.berth.replica"), "0");
	char hash[24];
	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)f->set.d[0].spec_hash);
	assert_string_equal(label(&c, "io.berth.spec-hash"), hash);
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, "a", &st), 0);
	assert_string_equal(st.health, "healthy");
	assert_int_equal(st.replicas_ready, 2);
	assert_int_equal(st.replicas_desired, 2);
	assert_int_equal(st.circuit, SUP_CIRCUIT_CLOSED);
	/* nothing more happens once converged */
	uint64_t calls = sim_engine_calls();
	run_ms(f, 1000);
	assert_true(sim_engine_calls() - calls <= 2); /* at most the periodic re-list */
	/* removing a deployment from the set removes its containers */
	apply(f, "{\"version\":2,\"deployments\":[{\"name\":\"b\",\"image\":\"worker\",\"replicas\":1,"
		 "\"inference\":{\"port\":9100},\"readiness\":{\"type\":\"tcp\",\"period_ms\":100}}]}");
	RUN_UNTIL(f, 3000, engine_count("a", false) == 0);
	assert_int_equal(engine_count("a", false), 0);
	assert_int_equal(ready_of(f, "b"), 1);
	assert_int_equal(supervisor_status(f->s, "a", &st), -ENOENT);
	/* an older version is refused */
	f->set.version = 1;
	assert_int_equal(supervisor_apply(f->s, &f->set), -ESTALE);
}

static void foreign_containers_untouched(void **state)
{
	struct fx *f = *state;
	struct hal_label other[2] = { { "io.berth.owner", "gw2" }, { "io.berth.deployment", "a" } };
	struct hal_ctr_create foreign = { .name = "someone-else", .image = "x" };
	struct hal_ctr_create other_dev = { .name = "berth-gw2-a-0", .image = "x", .labels = other, .nlabels = 2 };
	char id1[80], id2[80];
	assert_int_equal(sim_ctr_add(&foreign, true, id1, sizeof(id1)), 0);
	assert_int_equal(sim_ctr_add(&other_dev, true, id2, sizeof(id2)), 0);
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2);
	apply(f, "{\"version\":2,\"deployments\":[]}");
	run_ms(f, 3000);
	assert_int_equal(engine_count("a", false), 1); /* only gw2's */
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get(id1, &c), 0);
	assert_int_equal(c.state, HAL_CTR_RUNNING);
	assert_int_equal(sim_ctr_get(id2, &c), 0);
	assert_int_equal(c.state, HAL_CTR_RUNNING);
	assert_int_equal(sim_ctr_count(), 2);
}

/* Gateways sharing one engine: a container whose name is ours but whose owner label is another
 * device's (device ids "gw1" + deployment "a" and device "gw1-a"... collide) is never adopted. */
static void name_taken_by_another_owner_is_not_adopted(void **state)
{
	struct fx *f = *state;
	struct hal_label other[1] = { { "io.berth.owner", "gw1-x" } };
	struct hal_ctr_create taken = { .name = "berth-gw1-a-0", .image = "x", .labels = other, .nlabels = 1 };
	char id[80];
	assert_int_equal(sim_ctr_add(&taken, true, id, sizeof(id)), 0);
	apply(f, two_deployments);
	run_ms(f, 4000);
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get(id, &c), 0);
	assert_int_equal(c.state, HAL_CTR_RUNNING);
	assert_int_equal(c.nlabels, 1);
	assert_string_equal(c.labels[0].value, "gw1-x");
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, "a", &st), 0);
	assert_non_null(strstr(st.last_error, "taken by gw1-x"));
	assert_true(st.replicas_ready <= 1); /* slot 0 cannot be created; slot 1 can */
	apply(f, "{\"version\":2,\"deployments\":[]}");
	run_ms(f, 3000);
	assert_int_equal(sim_ctr_get(id, &c), 0); /* never removed either */
	assert_int_equal(c.state, HAL_CTR_RUNNING);
}

static void adopts_containers_after_restart(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2 && ready_of(f, "b") == 1);
	char before[3][80];
	ctr_id_of(f, "a", 0, before[0]);
	ctr_id_of(f, "a", 1, before[1]);
	ctr_id_of(f, "b", 0, before[2]);
	/* the agent goes away and comes back with the same desired state */
	sup_down(f);
	memset(&f->t, 0, sizeof(f->t));
	sup_up(f, 0);
	assert_int_equal(supervisor_apply(f->s, &f->set), 0);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2 && ready_of(f, "b") == 1);
	assert_int_equal(ready_of(f, "a"), 2);
	assert_int_equal(ready_of(f, "b"), 1);
	char after[80];
	ctr_id_of(f, "a", 0, after);
	assert_string_equal(after, before[0]);
	ctr_id_of(f, "a", 1, after);
	assert_string_equal(after, before[1]);
	ctr_id_of(f, "b", 0, after);
	assert_string_equal(after, before[2]);
	assert_int_equal(sim_ctr_count(), 3);
	assert_int_equal(restarts_of(f, "a"), 0);
}

static void crash_restarts_at_once_then_backs_off(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2);
	char id[80];
	ctr_id_of(f, "a", 0, id);
	uint64_t t0 = hal_clock_now_us();
	assert_int_equal(sim_ctr_crash(id, 137), 0);
	run_ms(f, 5);
	assert_int_equal(ready_of(f, "a"), 1);
	RUN_UNTIL(f, 2000, ready_of(f, "a") == 2);
	uint64_t mttr_ms = (hal_clock_now_us() - t0) / 1000;
	/* first restart is immediate: start latency 50 ms + a readiness period */
	assert_true(mttr_ms < 250);
	assert_int_equal(restarts_of(f, "a"), 1);
	char id2[80];
	ctr_id_of(f, "a", 0, id2);
	assert_string_equal(id, id2); /* restarted in place */
	/* second crash in a row waits the initial back-off, 1 s +-10% */
	t0 = hal_clock_now_us();
	assert_int_equal(sim_ctr_crash(id, 1), 0);
	run_ms(f, 850);
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get(id, &c), 0);
	assert_int_equal(c.state, HAL_CTR_EXITED);
	RUN_UNTIL(f, 1000, sim_ctr_get(id, &c) == 0 && c.state == HAL_CTR_RUNNING);
	uint64_t gap_ms = (hal_clock_now_us() - t0) / 1000;
	assert_true(gap_ms >= 900 && gap_ms <= 1100 + 20);
	assert_int_equal(restarts_of(f, "a"), 2);
	assert_int_equal(engine_count("a", false), 2); /* no extra containers */
}

static void liveness_failure_restarts_after_threshold(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2);
	char id[80];
	ctr_id_of(f, "a", 1, id);
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get(id, &c), 0);
	int pid0 = c.pid;
	assert_int_equal(sim_ctr_unlive(id, true), 0);
	/* three probes 100 ms apart must fail: not restarted after two periods... */
	run_ms(f, 200);
	assert_int_equal(restarts_of(f, "a"), 0);
	assert_int_equal(sim_ctr_get(id, &c), 0);
	assert_int_equal(c.pid, pid0);
	/* ...restarted after the third */
	RUN_UNTIL(f, 400, restarts_of(f, "a") == 1);
	assert_int_equal(restarts_of(f, "a"), 1);
	RUN_UNTIL(f, 1000, ready_of(f, "a") == 2);
	assert_int_equal(sim_ctr_get(id, &c), 0);
	assert_int_not_equal(c.pid, pid0);
	assert_int_equal(c.state, HAL_CTR_RUNNING);
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, "a", &st), 0);
	assert_non_null(strstr(st.last_error, "liveness"));
}

static void crash_loop_backs_off_then_opens_circuit(void **state)
{
	struct fx *f = *state;
	sup_down(f);
	sup_up(f, 4);
	apply(f, "{\"version\":1,\"deployments\":[{\"name\":\"c\",\"image\":\"worker\",\"replicas\":1,"
		 "\"env\":{\"WORKER_FAULT\":\"crash\"},\"inference\":{\"port\":9200},"
		 "\"restart\":{\"backoff_initial_ms\":100,\"backoff_max_ms\":800,\"reset_after_ms\":10000}}]}");
	/* record the times at which the restart count grows */
	uint64_t at_us[16];
	unsigned n = 0;
	uint32_t last = 0;
	uint64_t end = hal_clock_now_us() + 3000000;
	while (hal_clock_now_us() < end && n < 16) {
		run_ms(f, 1);
		uint32_t r = restarts_of(f, "c");
		if (r != last) {
			at_us[n++] = hal_clock_now_us();
			last = r;
		}
	}
	/* exits k and k+1 are separated by back-off k+1 (0, 100, 200, 400, 800 ms, +-10%)
	 * plus one start (engine latency + 50 ms start latency) */
	const uint32_t nominal[] = { 0, 100, 200, 400, 800 };
	assert_true(n >= 5);
	for (unsigned k = 1; k < 5; k++) {
		double gap_ms = (double)(at_us[k] - at_us[k - 1]) / 1000.0;
		double lo = nominal[k - 1] * 0.9 + 50, hi = nominal[k - 1] * 1.1 + 50 + 10;
		if (gap_ms < lo || gap_ms > hi)
			fail_msg("gap %u: %.1f ms, want %.0f..%.0f", k, gap_ms, lo, hi);
	}
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, "c", &st), 0);
	/* the back-off reached its cap: the circuit opened, and half-open tries fail again */
	assert_true(has_event(f, "circuit_open"));
	assert_true(st.circuit == SUP_CIRCUIT_OPEN || st.circuit == SUP_CIRCUIT_HALF_OPEN);
	assert_string_equal(st.health, "unavailable");
	assert_non_null(strstr(st.last_error, "exited with code 1"));
	/* after 4 failed recoveries the console is told, with the spec */
	assert_true(has_event(f, "migration_needed"));
	assert_true(st.migration_needed);
	for (unsigned i = 0; i < events_count(f->ev); i++) {
		const struct event *e = events_get(f->ev, i);
		if (!strcmp(e->type, "migration_needed")) {
			assert_non_null(strstr(e->detail, "\"deployment\":\"c\""));
			assert_non_null(strstr(e->detail, "\"spec\":{\"name\":\"c\""));
		}
	}
	/* half-open retries come at the cap */
	uint32_t r0 = restarts_of(f, "c");
	run_ms(f, 700);
	assert_true(restarts_of(f, "c") - r0 <= 1);
	run_ms(f, 1200);
	assert_true(restarts_of(f, "c") - r0 >= 1);
	assert_int_equal(engine_count("c", false), 1);
}

static void circuit_closes_when_the_half_open_try_is_ready(void **state)
{
	struct fx *f = *state;
	apply(f, "{\"version\":1,\"deployments\":[{\"name\":\"c\",\"image\":\"worker\",\"replicas\":1,"
		 "\"inference\":{\"port\":9200},\"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":50},"
		 "\"restart\":{\"backoff_initial_ms\":100,\"backoff_max_ms\":200,\"reset_after_ms\":10000}}]}");
	RUN_UNTIL(f, 2000, ready_of(f, "c") == 1);
	char id[80];
	ctr_id_of(f, "c", 0, id);
	/* crash it each time it starts until the circuit opens */
	struct sup_status st;
	for (int i = 0; i < 20; i++) {
		struct hal_ctr_info c;
		RUN_UNTIL(f, 1000, sim_ctr_get(id, &c) == 0 && c.state == HAL_CTR_RUNNING);
		(void)sim_ctr_crash(id, 1);
		run_ms(f, 5);
		assert_int_equal(supervisor_status(f->s, "c", &st), 0);
		if (st.circuit == SUP_CIRCUIT_OPEN)
			break;
	}
	assert_int_equal(st.circuit, SUP_CIRCUIT_OPEN);
	/* it stops crashing: the half-open try gets ready and closes the circuit */
	RUN_UNTIL(f, 2000, ready_of(f, "c") == 1);
	assert_int_equal(ready_of(f, "c"), 1);
	assert_int_equal(supervisor_status(f->s, "c", &st), 0);
	assert_int_equal(st.circuit, SUP_CIRCUIT_HALF_OPEN);
	/* ...once it has stayed ready for reset_after_ms (at most 10 s) */
	run_ms(f, 9000);
	assert_int_equal(supervisor_status(f->s, "c", &st), 0);
	assert_int_equal(st.circuit, SUP_CIRCUIT_HALF_OPEN);
	run_ms(f, 1100);
	assert_int_equal(supervisor_status(f->s, "c", &st), 0);
	assert_int_equal(st.circuit, SUP_CIRCUIT_CLOSED);
	assert_true(has_event(f, "circuit_closed"));
}

static void rolling_update_never_below_desired_ready(void **state)
{
	struct fx *f = *state;
	const char *v1 = "{\"version\":1,\"deployments\":[{\"name\":\"d\",\"image\":\"worker\","
			 "\"replicas\":{\"min\":2,\"max\":3,\"desired\":3},\"inference\":{\"port\":9300},"
			 "\"env\":{\"V\":\"1\"}," PROBES "}]}";
	const char *v2 = "{\"version\":2,\"deployments\":[{\"name\":\"d\",\"image\":\"worker\","
			 "\"replicas\":{\"min\":2,\"max\":3,\"desired\":3},\"inference\":{\"port\":9300},"
			 "\"env\":{\"V\":\"2\",\"WORKER_STARTUP_MS\":\"150\"}," PROBES "}]}";
	apply(f, v1);
	RUN_UNTIL(f, 3000, ready_of(f, "d") == 3);
	uint64_t h1 = f->set.d[0].spec_hash;
	track(f, 3);
	unsigned max_ctrs = 0;
	apply(f, v2);
	uint64_t h2 = f->set.d[0].spec_hash;
	assert_int_not_equal(h1, h2);
	struct sup_status st;
	uint64_t end = hal_clock_now_us() + 8000000;
	do {
		run_ms(f, 5);
		unsigned n = engine_count("d", false);
		if (n > max_ctrs)
			max_ctrs = n;
		assert_int_equal(supervisor_status(f->s, "d", &st), 0);
	} while ((st.rolling || st.replicas_ready < 3) && hal_clock_now_us() < end);
	assert_false(st.rolling);
	assert_int_equal(st.replicas_ready, 3);
	/* never below desired ready (3), one surge replica at most */
	assert_true(f->t.min_ready[3] >= 3);
	assert_true(max_ctrs <= 4);
	assert_int_equal(engine_count("d", false), 3);
	struct sup_replica r[4];
	assert_int_equal(supervisor_ready_replicas(f->s, "d", r, 4), 3);
	for (int i = 0; i < 3; i++)
		assert_true(r[i].current);
}

static uint32_t desired_of(struct fx *f, const char *dep)
{
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, dep, &st), 0);
	return st.replicas_desired;
}

/* A deploy leaves a deployment whose spec changed only in its replica counts
 * at its current count (clamped into min..max); a changed spec takes desired. */
static void redeploy_keeps_scaled_count_of_unchanged_spec(void **state)
{
	struct fx *f = *state;
#define RDOC(ver, image, min, max, desired)                                                                  \
	"{\"version\":" #ver ",\"deployments\":[{\"name\":\"a\",\"image\":\"" image "\",\"replicas\":{\"min\":" #min \
	",\"max\":" #max ",\"desired\":" #desired "},\"inference\":{\"port\":9000}," PROBES "},"                  \
	"{\"name\":\"b\",\"image\":\"worker\",\"replicas\":{\"min\":1,\"max\":4,\"desired\":1},"                    \
	"\"inference\":{\"port\":9100},\"readiness\":{\"type\":\"tcp\",\"period_ms\":100}}]}"
	apply(f, RDOC(1, "worker", 1, 4, 1));
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 1 && ready_of(f, "b") == 1);
	assert_int_equal(supervisor_set_replicas(f->s, "a", 3), 0); /* as the autoscaler or `scale` does */
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 3);
	assert_int_equal(ready_of(f, "a"), 3);
	char id0[80];
	ctr_id_of(f, "a", 0, id0);

	/* same spec, desired 1: stays at 3, nothing replaced */
	apply(f, RDOC(2, "worker", 1, 4, 1));
	run_ms(f, 3000);
	assert_int_equal(desired_of(f, "a"), 3);
	assert_int_equal(ready_of(f, "a"), 3);
	assert_int_equal(engine_count("a", false), 3);
	char now[80];
	ctr_id_of(f, "a", 0, now);
	assert_string_equal(now, id0);
	assert_int_equal(desired_of(f, "b"), 1);

	/* only the bounds change and 3 is above the new max: clamped to 2 */
	apply(f, RDOC(3, "worker", 1, 2, 1));
	RUN_UNTIL(f, 3000, engine_count("a", false) == 2);
	assert_int_equal(desired_of(f, "a"), 2);
	assert_int_equal(engine_count("a", false), 2);
	ctr_id_of(f, "a", 0, now);
	assert_string_equal(now, id0);
	/* below a raised min: clamped up to it */
	apply(f, RDOC(4, "worker", 3, 4, 3));
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 3);
	assert_int_equal(desired_of(f, "a"), 3);
	assert_int_equal(ready_of(f, "a"), 3);

	/* a changed image rolls and takes the new desired count */
	uint64_t h_old = f->set.d[0].spec_hash;
	apply(f, RDOC(5, "worker2", 1, 4, 2));
	assert_int_not_equal(f->set.d[0].spec_hash, h_old);
	assert_int_equal(desired_of(f, "a"), 2);
	struct sup_status st;
	uint64_t end = hal_clock_now_us() + 8000000;
	do {
		run_ms(f, 5);
		assert_int_equal(supervisor_status(f->s, "a", &st), 0);
	} while ((st.rolling || st.replicas_ready < 2 || engine_count("a", false) != 2) && hal_clock_now_us() < end);
	assert_false(st.rolling);
	assert_int_equal(st.replicas_ready, 2);
	assert_int_equal(engine_count("a", false), 2);
	struct sup_replica r[4];
	assert_int_equal(supervisor_ready_replicas(f->s, "a", r, 4), 2);
	for (int i = 0; i < 2; i++)
		assert_true(r[i].current);
	assert_int_equal(sim_ctr_get(id0, &(struct hal_ctr_info){ 0 }), -ENOENT);
#undef RDOC
}

static void engine_outage_backs_off_and_recovers_without_duplicates(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2 && ready_of(f, "b") == 1);
	char id[80];
	ctr_id_of(f, "a", 0, id);
	sim_engine_set_available(false);
	(void)sim_ctr_crash(id, 1); /* dies while the engine cannot be asked */
	uint64_t calls0 = sim_engine_calls();
	run_ms(f, 5000);
	assert_false(supervisor_engine_available(f->s));
	assert_true(has_event(f, "engine_unavailable"));
	/* backs off: a handful of attempts in 5 s, not hundreds */
	assert_true(sim_engine_calls() - calls0 <= 10);
	/* the rest keeps being served */
	assert_int_equal(ready_of(f, "b"), 1);
	sim_engine_set_available(true);
	RUN_UNTIL(f, 40000, supervisor_engine_available(f->s) && ready_of(f, "a") == 2);
	assert_true(supervisor_engine_available(f->s));
	assert_int_equal(ready_of(f, "a"), 2);
	assert_int_equal(engine_count("a", false), 2);
	assert_int_equal(engine_count("b", false), 1);
}

static void slow_engine_create_is_not_duplicated(void **state)
{
	struct fx *f = *state;
	/* every call takes longer than the client's 1 s timeout, but is carried out */
	sim_engine_set_latency_ms(1500);
	apply(f, two_deployments);
	run_ms(f, 4000);
	sim_engine_set_latency_ms(1);
	RUN_UNTIL(f, 60000, ready_of(f, "a") == 2 && ready_of(f, "b") == 1);
	assert_int_equal(ready_of(f, "a"), 2);
	assert_int_equal(ready_of(f, "b"), 1);
	run_ms(f, 3000);
	assert_int_equal(engine_count("a", false), 2);
	assert_int_equal(engine_count("b", false), 1);
}

static void scale_drain_and_pause(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2);
	assert_int_equal(supervisor_set_replicas(f->s, "a", 5), -ERANGE);
	assert_int_equal(supervisor_set_replicas(f->s, "zz", 1), -ENOENT);
	assert_int_equal(supervisor_set_replicas(f->s, "a", 4), 0);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 4);
	assert_int_equal(ready_of(f, "a"), 4);
	/* drain replica 1, then scale to 3: replica 1 is the one that goes */
	assert_int_equal(supervisor_replica_drain(f->s, "a", 1), 0);
	assert_int_equal(ready_of(f, "a"), 3);
	assert_int_equal(supervisor_set_replicas(f->s, "a", 3), 0);
	RUN_UNTIL(f, 3000, engine_count("a", false) == 3);
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get("berth-gw1-a-1", &c), -ENOENT);
	assert_int_equal(ready_of(f, "a"), 3);
	/* pause: out of the ready list, probes held (liveness would fail otherwise) */
	assert_int_equal(supervisor_replica_pause(f->s, "a", 0, true), 0);
	assert_int_equal(ready_of(f, "a"), 2);
	run_ms(f, 1000);
	assert_int_equal(sim_ctr_get("berth-gw1-a-0", &c), 0);
	assert_int_equal(c.state, HAL_CTR_PAUSED);
	assert_int_equal(restarts_of(f, "a"), 0);
	assert_int_equal(supervisor_replica_pause(f->s, "a", 0, false), 0);
	run_ms(f, 50);
	assert_int_equal(ready_of(f, "a"), 3);
	assert_int_equal(sim_ctr_get("berth-gw1-a-0", &c), 0);
	assert_int_equal(c.state, HAL_CTR_RUNNING);
}

/* The dispatcher's in-flight count of each replica of "a", set by the tests. */
static unsigned g_inflight[DEPLOY_MAX_REPLICAS];
static unsigned inflight_of(void *arg, const char *deployment, unsigned slot)
{
	(void)arg;
	return !strcmp(deployment, "a") && slot < DEPLOY_MAX_REPLICAS ? g_inflight[slot] : 0;
}

static bool draining_of(struct fx *f, const char *dep, unsigned slot)
{
	struct sup_replica r[SUP_MAX_DEPLOYMENTS * DEPLOY_MAX_REPLICAS];
	unsigned n = supervisor_replicas(f->s, r, SUP_MAX_DEPLOYMENTS * DEPLOY_MAX_REPLICAS);
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(r[i].deployment, dep) && r[i].slot == slot)
			return r[i].draining;
	return false;
}

static void scale_down_waits_for_requests_in_flight(void **state)
{
	struct fx *f = *state;
	memset(g_inflight, 0, sizeof(g_inflight));
	supervisor_set_inflight_fn(f->s, inflight_of, NULL);
	/* deadline 400 ms: the drain bound is 2 x 400, clamped up to SUP_DRAIN_MIN_MS */
	apply(f, "{\"version\":1,\"deployments\":[{\"name\":\"a\",\"image\":\"w\",\"replicas\":{\"min\":1,\"max\":4,\"desired\":3},"
		 "\"sla\":{\"deadline_ms\":400},\"inference\":{\"port\":9000}," PROBES "}]}");
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 3);
	assert_non_null(supervisor_spec(f->s, "a"));
	assert_int_equal(supervisor_spec(f->s, "a")->deadline_ms, 400);
	assert_null(supervisor_spec(f->s, "zz"));

	/* 3 -> 2: replica 2 drains (out of the ready list at once) while it serves a request */
	g_inflight[2] = 1;
	assert_int_equal(supervisor_set_replicas(f->s, "a", 2), 0);
	run_ms(f, 5);
	assert_int_equal(ready_of(f, "a"), 2);
	assert_true(draining_of(f, "a", 2));
	run_ms(f, 500);
	assert_int_equal(engine_count("a", true), 3);   /* still running: its request is not answered */
	g_inflight[2] = 0;
	RUN_UNTIL(f, 1000, engine_count("a", false) == 2);
	assert_int_equal(engine_count("a", false), 2);
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get("berth-gw1-a-2", &c), -ENOENT);

	/* a request that never ends: stopped at the bound (1 s), not later */
	g_inflight[1] = 1;
	assert_int_equal(supervisor_set_replicas(f->s, "a", 1), 0);
	run_ms(f, SUP_DRAIN_MIN_MS - 100);
	assert_int_equal(engine_count("a", true), 2);
	RUN_UNTIL(f, 1500, engine_count("a", false) == 1);
	assert_int_equal(engine_count("a", false), 1);
	g_inflight[1] = 0;

	/* scaled back up while one drains: the draining replica is kept, nothing new is made */
	assert_int_equal(supervisor_set_replicas(f->s, "a", 2), 0);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2);
	g_inflight[1] = 1;
	assert_int_equal(supervisor_set_replicas(f->s, "a", 1), 0);
	run_ms(f, 50);
	assert_int_equal(ready_of(f, "a"), 1);
	unsigned creates = engine_count("a", false);
	assert_int_equal(supervisor_set_replicas(f->s, "a", 2), 0);
	run_ms(f, 50);
	assert_int_equal(ready_of(f, "a"), 2);
	assert_false(draining_of(f, "a", 1));
	assert_int_equal(engine_count("a", false), creates);
	run_ms(f, 2000);
	assert_int_equal(engine_count("a", true), 2);
}

static void noop_cb(void *arg, const struct hal_engine_result *res)
{
	(void)arg;
	(void)res;
}

static void removed_outside_is_recreated(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "b") == 1);
	/* someone removes our container behind our back: it comes back */
	struct hal_engine *other = hal_engine_create(f->l, "sim", 1000);
	char id[80];
	ctr_id_of(f, "b", 0, id);
	assert_int_equal(hal_engine_remove(other, id, true, noop_cb, NULL), 0);
	RUN_UNTIL(f, 1000, engine_count("b", false) == 0);
	hal_engine_destroy(other);
	RUN_UNTIL(f, 3000, ready_of(f, "b") == 1);
	assert_int_equal(ready_of(f, "b"), 1);
	assert_int_equal(engine_count("b", false), 1);
}

static void on_failure_and_never_policies(void **state)
{
	struct fx *f = *state;
	apply(f, "{\"version\":1,\"deployments\":["
		 "{\"name\":\"a\",\"image\":\"w\",\"inference\":{\"port\":9000},\"restart\":{\"policy\":\"on-failure\"}},"
		 "{\"name\":\"b\",\"image\":\"w\",\"inference\":{\"port\":9100},\"restart\":{\"policy\":\"never\"}}]}");
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 1 && ready_of(f, "b") == 1);
	char a[80], b[80];
	ctr_id_of(f, "a", 0, a);
	ctr_id_of(f, "b", 0, b);
	/* a clean exit is not restarted under on-failure; a failure is */
	assert_int_equal(sim_ctr_crash(a, 0), 0);
	assert_int_equal(sim_ctr_crash(b, 1), 0);
	run_ms(f, 3000);
	struct hal_ctr_info c;
	assert_int_equal(sim_ctr_get(a, &c), 0);
	assert_int_equal(c.state, HAL_CTR_EXITED);
	assert_int_equal(sim_ctr_get(b, &c), 0);
	assert_int_equal(c.state, HAL_CTR_EXITED);
	assert_int_equal(engine_count("a", false), 1);
	assert_int_equal(engine_count("b", false), 1);
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, "b", &st), 0);
	assert_string_equal(st.health, "unavailable");
}

static void chaos_keeps_min_running_and_times_recovery(void **state)
{
	struct fx *f = *state;
	/* A kill on purpose takes no step of back-off: with back-off it would be
	 * 2 s, 4 s, ... and the circuit would open. */
	apply(f, "{\"version\":1,\"deployments\":[{\"name\":\"a\",\"image\":\"w\",\"replicas\":3,"
		 "\"inference\":{\"port\":9000},\"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":50},"
		 "\"restart\":{\"backoff_initial_ms\":2000,\"backoff_max_ms\":4000,\"reset_after_ms\":600000}}]}");
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 3);
	struct chaos *c = chaos_create(f->l, f->s, f->ev);
	assert_non_null(c);
	char json[512];
	assert_true(chaos_report_json(c, json, sizeof(json)) > 0);
	assert_non_null(strstr(json, "{\"deployment\":\"\",\"running\":false,"));
	assert_non_null(strstr(json, "\"runs\":0,\"kills\":0,"));
	track(f, 0);
	struct chaos_config cc = { .deployment = "a", .interval_ms = 20, .duration_ms = 3000, .min_running = 2,
				   .seed = 3 };
	assert_int_equal(chaos_start(c, &cc), 0);
	assert_true(has_event(f, "chaos_started"));
	chaos_note_failed_request(c, "a");
	chaos_note_failed_request(c, "other");
	run_ms(f, 2990);
	struct chaos_report rep;
	chaos_report(c, &rep);
	assert_true(rep.running);
	run_ms(f, 1000); /* the duration is over and the last victim is back */
	chaos_report(c, &rep);
	assert_false(rep.running);
	assert_int_equal(rep.runs, 1);
	assert_true(rep.kills >= 20);
	assert_true(rep.skipped >= 1);     /* min_running held some intervals back */
	assert_int_equal(rep.recovered, rep.kills);
	assert_int_equal(rep.pending, 0);
	assert_true(rep.mttr_mean_ms > 0 && rep.mttr_mean_ms < 1000);
	assert_true(rep.mttr_p95_ms >= rep.mttr_mean_ms / 2 && rep.mttr_p95_ms <= rep.mttr_max_ms);
	assert_int_equal(rep.failed_requests, 1);
	assert_true(f->t.min_ready[0] >= 2);
	/* No back-off, no circuit, no migration for kills on purpose. */
	struct sup_status st;
	assert_int_equal(supervisor_status(f->s, "a", &st), 0);
	assert_int_equal(st.circuit, SUP_CIRCUIT_CLOSED);
	assert_false(st.migration_needed);
	assert_false(has_event(f, "migration_needed"));
	assert_false(has_event(f, "circuit_open"));
	assert_true(has_event(f, "chaos_done"));
	assert_true(chaos_report_json(c, json, sizeof(json)) > 0);
	assert_non_null(strstr(json, "\"running\":false"));
	assert_non_null(strstr(json, "\"failed_requests\":1}"));
	chaos_destroy(c);
}

/* A run whose victim does not come back reports once the recovery wait is over. */
static void chaos_reports_a_victim_that_never_returns(void **state)
{
	struct fx *f = *state;
	apply(f, "{\"version\":1,\"deployments\":[{\"name\":\"a\",\"image\":\"w\",\"replicas\":2,"
		 "\"inference\":{\"port\":9000},\"restart\":{\"policy\":\"never\"},"
		 "\"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":50}}]}");
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2);
	struct chaos *c = chaos_create(f->l, f->s, f->ev);
	assert_non_null(c);
	struct chaos_config cc = { .deployment = "a", .interval_ms = 100, .duration_ms = 150, .min_running = 1,
				   .seed = 1 };
	assert_int_equal(chaos_start(c, &cc), 0);
	run_ms(f, 250);
	struct chaos_report rep;
	chaos_report(c, &rep);
	assert_true(rep.running);
	assert_int_equal(rep.kills, 1);
	assert_int_equal(rep.pending, 1);
	run_ms(f, CHAOS_RECOVERY_WAIT_MS);
	chaos_report(c, &rep);
	assert_false(rep.running);
	assert_int_equal(rep.recovered, 0);
	assert_int_equal(rep.pending, 1);
	assert_true(has_event(f, "chaos_done"));
	chaos_destroy(c);
}

static void metrics_sample_replicas_and_node(void **state)
{
	struct fx *f = *state;
	apply(f, two_deployments);
	RUN_UNTIL(f, 3000, ready_of(f, "a") == 2);
	run_ms(f, 50); /* pids known */
	struct sup_replica r[8];
	unsigned n = supervisor_replicas(f->s, r, 8);
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < n; i++) {
		assert_true(r[i].pid > 0);
		struct hal_ctr_stats cs = { .cpu_usage_ns = 1000000000ull, .mem_bytes = 1000 + i,
					    .mem_limit_bytes = 1 << 20, .pids = 3 };
		assert_int_equal(sim_sys_set_ctr(r[i].pid, &cs), 0);
	}
	struct actions *t = actions_create(f->s, NULL);
	struct sampler *m = sampler_create(f->l, "/", 100);
	assert_non_null(m);
	assert_non_null(t);
	sampler_set_targets(m, actions_sampler_targets, t);
	assert_int_equal(sampler_start(m), 0);
	run_ms(f, 100);
	/* half a core for the next 100 ms on every replica */
	for (unsigned i = 0; i < n; i++) {
		struct hal_ctr_stats cs = { .cpu_usage_ns = 1050000000ull, .mem_bytes = 2000 + i,
					    .mem_limit_bytes = 1 << 20, .pids = 4 };
		assert_int_equal(sim_sys_set_ctr(r[i].pid, &cs), 0);
	}
	run_ms(f, 100);
	assert_int_equal(sampler_series_count(m), 3);
	struct metric_ctr_sample s[4];
	assert_int_equal(sampler_ctr_read(m, r[0].deployment, r[0].slot, s, 4), 2);
	assert_true(s[1].cpu_pct > 49.0f && s[1].cpu_pct < 51.0f);
	assert_int_equal(s[1].mem_bytes, 2000);
	assert_int_equal(s[1].mem_limit_bytes, 1 << 20);
	assert_int_equal(s[1].pids, 4);
	assert_int_equal(s[1].ready, 1);
	struct metric_node_sample ns;
	assert_int_equal(sampler_node_latest(m, &ns), 0);
	assert_int_equal(ns.ncpu, 2);
	/* the ring stays bounded */
	run_ms(f, 100ull * (CONFIG_METRIC_RING_LEN + 10));
	assert_int_equal(sampler_ctr_read(m, r[0].deployment, r[0].slot, s, 4), 4);
	struct sampler_stats ms;
	sampler_get_stats(m, &ms);
	assert_true(ms.overwritten > 0);
	sampler_destroy(m);
	actions_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(converges_from_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(foreign_containers_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(adopts_containers_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(crash_restarts_at_once_then_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(liveness_failure_restarts_after_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(crash_loop_backs_off_then_opens_circuit, setup, teardown),
		cmocka_unit_test_setup_teardown(circuit_closes_when_the_half_open_try_is_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(rolling_update_never_below_desired_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(redeploy_keeps_scaled_count_of_unchanged_spec, setup, teardown),
		cmocka_unit_test_setup_teardown(engine_outage_backs_off_and_recovers_without_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(slow_engine_create_is_not_duplicated, setup, teardown),
		cmocka_unit_test_setup_teardown(scale_drain_and_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(scale_down_waits_for_requests_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(removed_outside_is_recreated, setup, teardown),
		cmocka_unit_test_setup_teardown(on_failure_and_never_policies, setup, teardown),
		cmocka_unit_test_setup_teardown(chaos_keeps_min_running_and_times_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(chaos_reports_a_victim_that_never_returns, setup, teardown),
		cmocka_unit_test_setup_teardown(metrics_sample_replicas_and_node, setup, teardown),
		cmocka_unit_test_setup_teardown(name_taken_by_another_owner_is_not_adopted, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
