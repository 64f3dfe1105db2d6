/* tests/unit/test_autoscale.c - the reactive rule on scripted compliance, predictive pre-scaling, and the headroom guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/scale/autoscale.h"
#include "agent/scale/forecast.h"

#define MB (1024ull * 1024ull)

struct blocked_rec {
	int n;
	struct autoscale_blocked last;
	char name[DEPLOY_NAME_MAX];
	char names[8][DEPLOY_NAME_MAX];
};

static void on_blocked(void *arg, const struct autoscale_blocked *b)
{
	struct blocked_rec *r = arg;
	if (r->n < 8)
		strcpy(r->names[r->n], b->name);
	r->n++;
	r->last = *b;
	strcpy(r->name, b->name);
	r->last.name = r->name;
}

struct fx {
	struct autoscale *a;
	struct blocked_rec rec;
	struct autoscale_window w[DEPLOY_MAX];
	struct autoscale_decision out[DEPLOY_MAX];
	struct autoscale_node node;
	uint64_t now_ms;
};

static void params(struct autoscale_params *p)
{
	memset(p, 0, sizeof(*p));
	p->interval_s = 30;
	p->target_low = 0.95;
	p->target_high = 0.98;
	p->cooldown_s = 300;
	p->cpu_ceiling_pct = 80;
	p->mem_ceiling_pct = 80;
	p->predictive = false;
	p->forecast = true;
	p->bucket_s = 60;
	p->season_s = 86400;
	p->util_pct = 80;
	p->slots = 8;
}

static int setup_with(void **state, const struct autoscale_params *p)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct autoscale_events ev = { on_blocked, &f->rec };
	f->a = autoscale_create(p, &ev);
	f->node = (struct autoscale_node){ .ncpu = 4, .cpu_used_cores = 0.5,
					   .mem_total_bytes = 4096 * MB, .mem_used_bytes = 512 * MB };
	f->now_ms = 1000;
	*state = f;
	return f->a ? 0 : -1;
}

static int setup(void **state)
{
	struct autoscale_params p;
	params(&p);
	return setup_with(state, &p);
}

static int setup_predictive(void **state)
{
	struct autoscale_params p;
	params(&p);
	p.predictive = true;
	return setup_with(state, &p);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	autoscale_destroy(f->a);
	free(f);
	return 0;
}

static int add(struct fx *f, const char *name, enum sla_class cls, uint32_t min, uint32_t max, uint64_t mem)
{
	struct autoscale_deploy d = { .cls = cls, .replicas_min = min, .replicas_max = max, .concurrency = 1,
				      .mem_bytes = mem, .startup_ms = 5000 };
	strcpy(d.name, name);
	int i = autoscale_add(f->a, &d, 0);
	assert_true(i >= 0);
	f->w[i].replicas = min;
	f->w[i].replicas_ready = min;
	f->w[i].cpu_cores = -1;
	return i;
}

/* One evaluation with compliance c (of 1000 requests) for deployment i;
 * applies the decision and makes every replica ready. */
static uint32_t step(struct fx *f, int i, double c)
{
	f->w[i].offered = 1000;
	f->w[i].on_time = (uint64_t)(c * 1000.0 + 0.5);
	autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
	f->now_ms += 30000;
	f->w[i].replicas = f->out[i].replicas;
	f->w[i].replicas_ready = f->out[i].replicas;
	return f->out[i].replicas;
}

static void low_compliance_doubles_up_to_max(void **state)
{
	struct fx *f = *state;
	int i = add(f, "cam", SLA_URGENT, 1, 6, 0);
	assert_int_equal(step(f, i, 0.90), 2);
	assert_int_equal(f->out[i].reason, AUTOSCALE_UP_SLA);
	assert_int_equal(step(f, i, 0.94), 4);
	assert_int_equal(step(f, i, 0.50), 6); /* replicas_max */
	assert_int_equal(step(f, i, 0.50), 6);
	assert_int_equal(f->out[i].reason, AUTOSCALE_HOLD);
}

static void scale_up_is_capped_at_usable_slots(void **state)
{
	struct fx *f = *state;
	struct autoscale_deploy d = { .cls = SLA_NORMAL, .replicas_min = 1, .replicas_max = 16,
				      .concurrency = 3, .startup_ms = 1000 };
	strcpy(d.name, "det");
	int i = autoscale_add(f->a, &d, 0);
	f->w[i] = (struct autoscale_window){ .replicas = 1, .replicas_ready = 1, .cpu_cores = -1 };
	assert_int_equal(step(f, i, 0.2), 2);
	assert_int_equal(step(f, i, 0.2), 3); /* ceil(8 slots / 3) */
	assert_int_equal(step(f, i, 0.2), 3);
}

static void refusals_count_as_misses(void **state)
{
	struct fx *f = *state;
	int i = add(f, "cam", SLA_URGENT, 1, 4, 0);
	/* 100 offered, 94 answered on time, 6 refused at the door. */
	f->w[i].offered = 100;
	f->w[i].on_time = 94;
	autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
	assert_float_equal(f->out[i].compliance, 0.94, 1e-9);
	assert_int_equal(f->out[i].replicas, 2);
}

static void holds_while_a_scale_up_is_starting(void **state)
{
	struct fx *f = *state;
	int i = add(f, "cam", SLA_URGENT, 1, 8, 0);
	f->w[i].offered = 100;
	f->w[i].on_time = 50;
	autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
	assert_int_equal(f->out[i].replicas, 2);
	f->w[i].replicas = 2; /* second replica still starting */
	f->now_ms += 1000;
	autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
	assert_int_equal(f->out[i].replicas, 2);
	/* Still not ready after 2 x start-up + interval: a stuck start does not freeze scaling. */
	f->now_ms += 2 * 5000 + 30000;
	autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
	assert_int_equal(f->out[i].replicas, 4);
}

static void scales_down_by_one_per_cooldown_never_below_min(void **state)
{
	struct fx *f = *state;
	int i = add(f, "cam", SLA_URGENT, 2, 8, 0);
	f->w[i].replicas = f->w[i].replicas_ready = 4;
	uint32_t r = 4;
	int steps = 0;
	/* 300 s cool-down at 30 s windows: the first window starts the clock. */
	for (; steps < 10; steps++)
		r = step(f, i, 0.99);
	assert_int_equal(r, 3);
	assert_int_equal(step(f, i, 0.97), 3); /* inside the band: clock reset */
	for (int k = 0; k < 9; k++)
		assert_int_equal(step(f, i, 0.99), 3);
	assert_int_equal(step(f, i, 0.99), 2);
	for (int k = 0; k < 40; k++)
		assert_int_equal(step(f, i, 1.0), 2); /* min */
}

static void idle_deployment_scales_down_to_min(void **state)
{
	struct fx *f = *state;
	int i = add(f, "cam", SLA_URGENT, 1, 8, 0);
	f->w[i].replicas = f->w[i].replicas_ready = 3;
	for (int k = 0; k < 30; k++) {
		f->w[i].offered = f->w[i].on_time = 0;
		autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
		f->now_ms += 30000;
		f->w[i].replicas = f->w[i].replicas_ready = f->out[i].replicas;
	}
	assert_int_equal(f->w[i].replicas, 1);
}

static void memory_ceiling_grants_part_and_reports_numbers(void **state)
{
	struct fx *f = *state;
	/* 4096 MB node, 80% ceiling = 3276.8 MB; 2900 MB used; 200 MB per replica. */
	f->node.mem_used_bytes = 2900 * MB;
	int i = add(f, "cam", SLA_URGENT, 2, 8, 200 * MB);
	assert_int_equal(step(f, i, 0.5), 3);
	assert_int_equal(f->out[i].reason, AUTOSCALE_PARTIAL);
	assert_int_equal(f->rec.n, 1);
	assert_string_equal(f->rec.last.resource, "memory");
	assert_int_equal(f->rec.last.replicas, 2);
	assert_int_equal(f->rec.last.wanted, 4);
	assert_int_equal(f->rec.last.granted, 1);
	assert_int_equal(f->rec.last.mem_per_replica_bytes, 200 * MB);
	assert_int_equal(f->rec.last.mem_projected_bytes, 3300 * MB);
	assert_int_equal(f->rec.last.mem_ceiling_bytes, (uint64_t)(4096 * MB * 0.8));
	/* Nothing fits at all: blocked, the count stays. */
	f->node.mem_used_bytes = 3200 * MB;
	assert_int_equal(step(f, i, 0.5), 3);
	assert_int_equal(f->out[i].reason, AUTOSCALE_BLOCKED);
	assert_int_equal(f->rec.n, 2);
}

static void measured_memory_replaces_the_spec_limit(void **state)
{
	struct fx *f = *state;
	f->node.mem_used_bytes = 2900 * MB;
	int i = add(f, "cam", SLA_URGENT, 2, 8, 1024 * MB); /* limit 1 GB: nothing would fit */
	f->w[i].mem_bytes = 2 * 50 * MB;                    /* measured 50 MB each */
	assert_int_equal(step(f, i, 0.5), 4);
	assert_int_equal(f->rec.n, 0);
}

static void cpu_ceiling_blocks_too(void **state)
{
	struct fx *f = *state;
	/* 4 cores, ceiling 3.2; node at 2.5; each replica measured at 0.5 core. */
	f->node.cpu_used_cores = 2.5;
	int i = add(f, "cam", SLA_NORMAL, 1, 8, 0);
	f->w[i].cpu_cores = 0.5;
	assert_int_equal(step(f, i, 0.5), 2);
	assert_int_equal(f->out[i].reason, AUTOSCALE_UP_SLA);
	f->node.cpu_used_cores = 3.0;
	f->w[i].cpu_cores = 1.0;
	assert_int_equal(step(f, i, 0.5), 2);
	assert_int_equal(f->out[i].reason, AUTOSCALE_BLOCKED);
	assert_string_equal(f->rec.last.resource, "cpu");
	assert_float_equal(f->rec.last.cpu_ceiling_cores, 3.2, 1e-9);
}

static void urgent_class_first_when_headroom_is_short(void **state)
{
	struct fx *f = *state;
	/* Room for two 200 MB replicas: 3276.8 - 2800 = 476.8 MB. Batch is
	 * registered first and has the worse compliance, urgent still wins. */
	f->node.mem_used_bytes = 2800 * MB;
	int b = add(f, "batchy", SLA_BATCH, 2, 8, 200 * MB);
	int n = add(f, "normy", SLA_NORMAL, 2, 8, 200 * MB);
	int u = add(f, "cam", SLA_URGENT, 1, 8, 200 * MB);
	f->w[b].offered = 100; f->w[b].on_time = 10;
	f->w[n].offered = 100; f->w[n].on_time = 80;
	f->w[u].offered = 100; f->w[u].on_time = 90;
	autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
	assert_int_equal(f->out[u].replicas, 2);
	assert_int_equal(f->out[u].reason, AUTOSCALE_UP_SLA);
	assert_int_equal(f->out[n].replicas, 3);
	assert_int_equal(f->out[n].reason, AUTOSCALE_PARTIAL);
	assert_int_equal(f->out[b].replicas, 2);
	assert_int_equal(f->out[b].reason, AUTOSCALE_BLOCKED);
	assert_int_equal(f->rec.n, 2);
	assert_string_equal(f->rec.names[0], "normy");
	assert_string_equal(f->rec.names[1], "batchy");
}

static void starting_replicas_count_against_headroom(void **state)
{
	struct fx *f = *state;
	f->node.mem_used_bytes = 2800 * MB;
	int i = add(f, "cam", SLA_URGENT, 1, 8, 200 * MB);
	f->w[i].replicas = 3; /* two not ready yet: 400 MB on their way */
	f->w[i].replicas_ready = 1;
	f->now_ms += 3600000;
	f->w[i].offered = 100;
	f->w[i].on_time = 10;
	autoscale_evaluate(f->a, f->now_ms, f->now_ms, f->w, &f->node, f->out);
	assert_int_equal(f->out[i].replicas, 3);
	assert_int_equal(f->out[i].reason, AUTOSCALE_BLOCKED);
}

static void forecast_pre_scales_and_never_scales_in_alone(void **state)
{
	struct fx *f = *state;
	int i = add(f, "cam", SLA_URGENT, 1, 8, 0);
	/* Ramp: +600 requests per minute each minute; 20 ms service, one per replica:
	 * 50 rps per replica, 40 at 80% utilisation. */
	uint64_t t = 0;
	for (int k = 0; k < 30; k++, t += 60000)
		autoscale_observe(f->a, i, t + 1, (uint32_t)(600 * k));
	f->w[i].offered = 1000;
	f->w[i].on_time = 1000; /* compliance fine: the reactive rule holds */
	f->w[i].service_ms = 20;
	f->w[i].replicas = f->w[i].replicas_ready = 3;
	autoscale_evaluate(f->a, t, t, f->w, &f->node, f->out);
	/* about 290 rps or more at 40 per replica: 8 (max) */
	assert_true(f->out[i].forecast_rps > 250);
	assert_int_equal(f->out[i].reason, AUTOSCALE_UP_FORECAST);
	assert_int_equal(f->out[i].replicas, 8);
	assert_int_equal(f->out[i].need, 8);
	assert_non_null(autoscale_forecast(f->a, i));
	/* A falling forecast never scales in by itself ... */
	f->w[i].replicas = f->w[i].replicas_ready = 8;
	f->w[i].offered = 1000;
	f->w[i].on_time = 970; /* inside the band */
	for (int k = 0; k < 5; k++, t += 60000) {
		autoscale_observe(f->a, i, t + 1, 10);
		autoscale_evaluate(f->a, t + 30000, t + 30000, f->w, &f->node, f->out);
		assert_int_equal(f->out[i].replicas, 8);
	}
}

static void forecast_sets_a_floor_for_scale_in(void **state)
{
	struct fx *f = *state;
	int i = add(f, "cam", SLA_URGENT, 1, 8, 0);
	uint64_t t = 0;
	for (int k = 0; k < 30; k++, t += 60000)
		autoscale_observe(f->a, i, t + 1, 6000); /* 100 rps flat: need 3 at 40 rps */
	f->w[i].service_ms = 20;
	f->w[i].replicas = f->w[i].replicas_ready = 5;
	f->w[i].offered = 1000;
	f->w[i].on_time = 1000;
	for (int k = 0; k < 60; k++) {
		autoscale_observe(f->a, i, t + 1, 3000);
		t += 30000;
		autoscale_evaluate(f->a, t, t, f->w, &f->node, f->out);
		f->w[i].replicas = f->w[i].replicas_ready = f->out[i].replicas;
	}
	assert_int_equal(f->out[i].need, 3);
	assert_int_equal(f->w[i].replicas, 3);
}

static void rejects_bad_input(void **state)
{
	struct autoscale_params p;
	params(&p);
	p.target_low = 0.99;
	p.target_high = 0.9;
	assert_null(autoscale_create(&p, NULL));
	params(&p);
	struct autoscale *a = autoscale_create(&p, NULL);
	struct autoscale_deploy d = { .replicas_min = 3, .replicas_max = 2, .concurrency = 1 };
	strcpy(d.name, "x");
	assert_int_equal(autoscale_add(a, &d, 0), -EINVAL);
	d.replicas_min = 1;
	int i = autoscale_add(a, &d, 0);
	assert_true(i >= 0);
	assert_int_equal(autoscale_add(a, &d, 0), i);
	autoscale_remove(a, i);
	assert_null(autoscale_forecast(a, i));
	autoscale_destroy(a);
	autoscale_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(low_compliance_doubles_up_to_max, setup, teardown),
		cmocka_unit_test_setup_teardown(scale_up_is_capped_at_usable_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(refusals_count_as_misses, setup, teardown),
		cmocka_unit_test_setup_teardown(holds_while_a_scale_up_is_starting, setup, teardown),
		cmocka_unit_test_setup_teardown(scales_down_by_one_per_cooldown_never_below_min, setup, teardown),
		cmocka_unit_test_setup_teardown(idle_deployment_scales_down_to_min, setup, teardown),
		cmocka_unit_test_setup_teardown(memory_ceiling_grants_part_and_reports_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(measured_memory_replaces_the_spec_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(cpu_ceiling_blocks_too, setup, teardown),
		cmocka_unit_test_setup_teardown(urgent_class_first_when_headroom_is_short, setup, teardown),
		cmocka_unit_test_setup_teardown(starting_replicas_count_against_headroom, setup, teardown),
		cmocka_unit_test_setup_teardown(forecast_pre_scales_and_never_scales_in_alone, setup_predictive,
						teardown),
		cmocka_unit_test_setup_teardown(forecast_sets_a_floor_for_scale_in, setup_predictive, teardown),
		cmocka_unit_test(rejects_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
