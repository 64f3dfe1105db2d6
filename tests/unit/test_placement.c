/* tests/unit/test_placement.c - site placement, table-driven: headroom, urgent first, spread, stickiness, exclusion, unplaceable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "agent/site/placement.h"

#define MiB (1024ull * 1024ull)
#define X (-1)

struct pcase {
	const char *name;
	unsigned nm;
	struct { bool up; uint64_t cpu, mem_mib; } m[PLACEMENT_MAX_MEMBERS];
	unsigned nd;
	struct {
		enum sla_class cls;
		uint32_t replicas;
		bool spread;
		uint64_t cpu, mem_mib;
		uint32_t excluded;
		int8_t before[4];    /* owners before (X: none) */
		int8_t after[4];     /* expected owners */
		uint32_t unplaced;
	} d[4];
	unsigned changes;
};

static const struct pcase cases[] = {
	{ "most free cpu wins, ties by memory then index", 3,
	  { { true, 1000, 512 }, { true, 2000, 256 }, { true, 2000, 512 } }, 1,
	  { { SLA_NORMAL, 1, false, 100, 10, 0, { X, X, X, X }, { 2, X, X, X }, 0 } }, 1 },
	{ "spread puts two replicas on two members", 3,
	  { { true, 4000, 4096 }, { true, 1000, 4096 }, { true, 500, 4096 } }, 1,
	  { { SLA_URGENT, 2, true, 100, 10, 0, { X, X, X, X }, { 0, 1, X, X }, 0 } }, 2 },
	{ "without spread both go to the roomiest", 3,
	  { { true, 4000, 4096 }, { true, 1000, 4096 }, { true, 500, 4096 } }, 1,
	  { { SLA_URGENT, 2, false, 100, 10, 0, { X, X, X, X }, { 0, 0, X, X }, 0 } }, 2 },
	{ "a down member loses its replica to a survivor, the other stays", 3,
	  { { false, 4000, 4096 }, { true, 1000, 4096 }, { true, 900, 4096 } }, 1,
	  { { SLA_URGENT, 2, true, 100, 10, 0, { 0, 1, X, X }, { 2, 1, X, X }, 0 } }, 2 },
	{ "kept replicas do not move when headroom changes", 3,
	  { { true, 100, 64 }, { true, 9000, 9000 }, { true, 9000, 9000 } }, 1,
	  { { SLA_NORMAL, 1, false, 500, 100, 0, { 0, X, X, X }, { 0, X, X, X }, 0 } }, 0 },
	{ "urgent placed before batch when room is short", 2,
	  { { true, 1000, 4096 }, { true, 0, 0 } }, 2,
	  { { SLA_BATCH, 1, false, 800, 10, 0, { X, X, X, X }, { X, X, X, X }, 1 },
	    { SLA_URGENT, 1, false, 800, 10, 0, { X, X, X, X }, { 0, X, X, X }, 0 } }, 1 },
	{ "spread with fewer members than replicas leaves the rest unplaced", 2,
	  { { true, 4000, 4096 }, { true, 4000, 4096 } }, 1,
	  { { SLA_NORMAL, 3, true, 100, 10, 0, { X, X, X, X }, { 0, 1, X, X }, 1 } }, 2 },
	{ "an excluded member (local recovery failed) gives its replica away", 3,
	  { { true, 4000, 4096 }, { true, 1000, 4096 }, { true, 2000, 4096 } }, 1,
	  { { SLA_NORMAL, 1, false, 100, 10, 1u << 0, { 0, X, X, X }, { 2, X, X, X }, 0 } }, 2 },
	{ "scale down releases the highest replicas", 3,
	  { { true, 4000, 4096 }, { true, 4000, 4096 }, { true, 4000, 4096 } }, 1,
	  { { SLA_NORMAL, 1, true, 100, 10, 0, { 1, 2, X, X }, { 1, X, X, X }, 0 } }, 1 },
	{ "memory decides when cpu fits everywhere", 3,
	  { { true, 4000, 100 }, { true, 3000, 300 }, { true, 2000, 50 } }, 1,
	  { { SLA_NORMAL, 1, false, 100, 200, 0, { X, X, X, X }, { 1, X, X, X }, 0 } }, 1 },
	{ "nothing up: all unplaced, nothing changes", 2,
	  { { false, 4000, 4096 }, { false, 4000, 4096 } }, 1,
	  { { SLA_URGENT, 2, false, 100, 10, 0, { X, X, X, X }, { X, X, X, X }, 2 } }, 0 },
	{ "spread repairs two replicas stacked on one member", 3,
	  { { true, 4000, 4096 }, { true, 1000, 4096 }, { true, 4000, 4096 } }, 1,
	  { { SLA_NORMAL, 2, true, 100, 10, 0, { 0, 0, X, X }, { 0, 2, X, X }, 0 } }, 2 },
};

static void table(void **state)
{
	(void)state;
	static const char *const ids[] = { "gw-a", "gw-b", "gw-c", "gw-d", "gw-e" };
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct pcase *t = &cases[c];
		struct placement_member m[PLACEMENT_MAX_MEMBERS];
		struct placement_dep d[4];
		memset(d, 0, sizeof(d));
		for (unsigned i = 0; i < t->nm; i++)
			m[i] = (struct placement_member){ ids[i], t->m[i].up, t->m[i].cpu, t->m[i].mem_mib * MiB };
		for (unsigned k = 0; k < t->nd; k++) {
			d[k].name = "dep";
			d[k].sla_class = t->d[k].cls;
			d[k].replicas = t->d[k].replicas;
			d[k].spread = t->d[k].spread;
			d[k].cpu_milli = t->d[k].cpu;
			d[k].mem_bytes = t->d[k].mem_mib * MiB;
			d[k].excluded = t->d[k].excluded;
			memset(d[k].owner, -1, sizeof(d[k].owner));
			memcpy(d[k].owner, t->d[k].before, 4);
		}
		unsigned ch = placement_run(m, t->nm, d, t->nd);
		for (unsigned k = 0; k < t->nd; k++) {
			for (unsigned r = 0; r < 4; r++)
				if (d[k].owner[r] != t->d[k].after[r])
					fail_msg("case '%s': deployment %u replica %u on %d, expected %d", t->name, k, r,
						 d[k].owner[r], t->d[k].after[r]);
			if (d[k].unplaced != t->d[k].unplaced)
				fail_msg("case '%s': deployment %u unplaced %u, expected %u", t->name, k, d[k].unplaced,
					 t->d[k].unplaced);
			if (d[k].unplaced && !d[k].why[0])
				fail_msg("case '%s': unplaced without a reason", t->name);
		}
		if (ch != t->changes)
			fail_msg("case '%s': %u changes, expected %u", t->name, ch, t->changes);
		/* a placed state is a fixed point */
		if (placement_run(m, t->nm, d, t->nd) != 0)
			fail_msg("case '%s': a second run changed something", t->name);
	}
}

static void unplaceable_reason_has_the_numbers(void **state)
{
	(void)state;
	struct placement_member m[2] = { { "gw-a", true, 700, 512 * MiB }, { "gw-b", true, 300, 2048 * MiB } };
	struct placement_dep d = { .name = "big", .sla_class = SLA_URGENT, .replicas = 1, .cpu_milli = 2000,
				   .mem_bytes = 64 * MiB };
	memset(d.owner, -1, sizeof(d.owner));
	assert_int_equal(placement_run(m, 2, &d, 1), 0);
	assert_int_equal(d.unplaced, 1);
	assert_non_null(strstr(d.why, "cpu=2000m"));
	assert_non_null(strstr(d.why, "memory=64MiB"));
	assert_non_null(strstr(d.why, "gw-a cpu=700m memory=512MiB"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table),
		cmocka_unit_test(unplaceable_reason_has_the_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
