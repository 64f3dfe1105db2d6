/* agent/base/prng.c - the one pseudo-random generator of berth (xorshift64*, splitmix64-seeded). */
#include "agent/base/prng.h"

void prng_seed(struct prng *p, uint64_t seed)
{
	/* splitmix64 of the seed, so that small seeds give unrelated streams. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	p->s = z ? z : 0x2545f4914f6cdd1dull;
}

uint64_t prng_next(struct prng *p)
{
	uint64_t x = p->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	p->s = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint32_t prng_below(struct prng *p, uint32_t n)
{
	return (uint32_t)((prng_next(p) >> 32) % n);
}
