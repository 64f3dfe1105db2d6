/* agent/base/backoff.c - jittered exponential back-off with a healthy-run reset. */
#include "agent/base/backoff.h"

void backoff_init(struct backoff *b, uint32_t initial_ms, uint32_t max_ms, uint32_t reset_ms,
		  uint32_t jitter_permille, bool immediate_first, struct prng *rng)
{
	b->initial_ms = initial_ms ? initial_ms : 1;
	b->max_ms = max_ms < b->initial_ms ? b->initial_ms : max_ms;
	b->reset_ms = reset_ms;
	b->jitter_permille = jitter_permille > 1000 ? 1000 : jitter_permille;
	b->immediate_first = immediate_first;
	b->failures = 0;
	b->last_delay_ms = 0;
	b->at_cap = false;
	b->healthy_since_ms = 0;
	b->rng = rng;
}

uint32_t backoff_nominal_ms(const struct backoff *b, uint32_t k)
{
	if (k == 0)
		return 0;
	if (b->immediate_first) {
		if (k == 1)
			return 0;
		k--;
	}
	uint64_t d = b->initial_ms;
	for (uint32_t i = 1; i < k && d < b->max_ms; i++)
		d *= 2;
	return d > b->max_ms ? b->max_ms : (uint32_t)d;
}

uint32_t backoff_next_ms(struct backoff *b)
{
	if (b->failures < UINT32_MAX)
		b->failures++;
	b->healthy_since_ms = 0;
	uint32_t nominal = backoff_nominal_ms(b, b->failures);
	b->at_cap = nominal >= b->max_ms;
	uint64_t d = nominal;
	if (nominal && b->jitter_permille && b->rng) {
		/* factor in [1000 - j, 1000 + j] permille, uniform. */
		uint32_t span = 2 * b->jitter_permille + 1;
		uint64_t f = 1000u - b->jitter_permille + prng_below(b->rng, span);
		d = d * f / 1000u;
	}
	b->last_delay_ms = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	return b->last_delay_ms;
}

void backoff_healthy(struct backoff *b, uint64_t now_ms)
{
	if (!b->healthy_since_ms)
		b->healthy_since_ms = now_ms ? now_ms : 1;
}

void backoff_unhealthy(struct backoff *b) { b->healthy_since_ms = 0; }

bool backoff_tick(struct backoff *b, uint64_t now_ms)
{
	if (!b->healthy_since_ms || !b->failures)
		return false;
	if (now_ms - b->healthy_since_ms < b->reset_ms)
		return false;
	backoff_reset(b);
	return true;
}

void backoff_reset(struct backoff *b)
{
	b->failures = 0;
	b->at_cap = false;
	b->last_delay_ms = 0;
}
