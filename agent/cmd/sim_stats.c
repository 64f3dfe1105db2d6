/* agent/cmd/sim_stats.c - berth-sim's percentiles of per-request figures (latencies, wait errors). */
#include "agent/cmd/sim_stats.h"

#include <math.h>
#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void sim_stats_sort(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
}

double sim_stats_pct_ms(const uint64_t *v, size_t n, double pct)
{
	if (!n)
		return 0;
	size_t i = (size_t)ceil(pct / 100.0 * (double)n);
	if (i)
		i--;
	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1000.0;
}
