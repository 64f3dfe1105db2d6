/* agent/base/prng.h - the one seedable pseudo-random generator: back-off jitter, chaos victims, the uplink's reconnect jitter, berth-sim's service-time jitter. */
#ifndef BERTH_PRNG_H
#define BERTH_PRNG_H

#include <stdint.h>

/* xorshift64* generator: deterministic for a given seed (tests), never 0 state. */
struct prng {
	uint64_t s;
};
void prng_seed(struct prng *p, uint64_t seed);
uint64_t prng_next(struct prng *p);
/* Uniform in [0, n) (n > 0). */
uint32_t prng_below(struct prng *p, uint32_t n);

#endif
