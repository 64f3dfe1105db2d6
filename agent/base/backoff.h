/* agent/base/backoff.h - restart back-off (exponential, jittered, reset after a healthy run) (its jitter from agent/base/prng.h). */
#ifndef BERTH_BACKOFF_H
#define BERTH_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/base/prng.h"

/* Back-off of one restarting thing (a replica, the engine connection).
 *
 * Schedule: failure k (k = 1, 2, ... consecutive failures since the last
 * reset) waits 0 for k = 1 when immediate_first is set, otherwise
 * initial_ms * 2^(k-1-immediate_first), capped at max_ms, each delay
 * multiplied by a uniform factor in [1 - jitter, 1 + jitter] (never above
 * max_ms * (1 + jitter)). A run healthy for reset_ms (backoff_healthy_since()
 * then backoff_tick()) resets k to 0. */
struct backoff {
	uint32_t initial_ms;
	uint32_t max_ms;
	uint32_t reset_ms;
	uint32_t jitter_permille;    /* 100 = +-10% */
	bool immediate_first;
	uint32_t failures;           /* consecutive failures since the last reset */
	uint32_t last_delay_ms;      /* the delay returned by the last backoff_next_ms() */
	bool at_cap;                 /* the last delay was the capped one */
	uint64_t healthy_since_ms;   /* 0: not healthy now */
	struct prng *rng;            /* borrowed; shared by many back-offs */
};

void backoff_init(struct backoff *b, uint32_t initial_ms, uint32_t max_ms, uint32_t reset_ms,
		  uint32_t jitter_permille, bool immediate_first, struct prng *rng);

/* Records one failure and returns the delay (ms) to wait before the next try. */
uint32_t backoff_next_ms(struct backoff *b);

/* The un-jittered delay the k-th consecutive failure gets (k >= 1). */
uint32_t backoff_nominal_ms(const struct backoff *b, uint32_t k);

/* The thing became healthy at now_ms (a replica ready, the engine answering);
 * the reset clock starts. Calling again while healthy keeps the first time. */
void backoff_healthy(struct backoff *b, uint64_t now_ms);
/* It is unhealthy again: the reset clock stops. */
void backoff_unhealthy(struct backoff *b);
/* Resets failures when healthy for reset_ms by now_ms. Returns true when it
 * reset just now. */
bool backoff_tick(struct backoff *b, uint64_t now_ms);
/* Forgets every failure at once. */
void backoff_reset(struct backoff *b);

#endif
