/* agent/cmd/sim_stats.h - berth-sim's percentiles of per-request figures. */
#ifndef BERTH_SIM_STATS_H
#define BERTH_SIM_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Sorts v[0..n) ascending. */
void sim_stats_sort(uint64_t *v, size_t n);
/* The pct percentile (nearest rank) of sorted microseconds v[0..n), in ms; 0 when n is 0. */
double sim_stats_pct_ms(const uint64_t *v, size_t n, double pct);

#endif
