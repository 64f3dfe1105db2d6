/* agent/images/rollout.h - judges a deployment's new version: becomes last-known-good, or has failed and is rolled back (pure, clock given). */
#ifndef BERTH_IMAGES_ROLLOUT_H
#define BERTH_IMAGES_ROLLOUT_H

#include <stdbool.h>
#include <stdint.h>

/* What the supervisor sees of one deployment's current version. */
struct rollout_obs {
	uint64_t spec_hash;          /* the version desired now */
	uint32_t desired;            /* replicas wanted */
	uint32_t ready;              /* replicas of this version ready */
	uint32_t crashes;            /* exits of this version's replicas since it was first desired */
	bool circuit_open;           /* the crash-loop breaker is open */
	bool image_ready;            /* its image is in the engine's store (false: still pulling) */
};

enum rollout_verdict {
	ROLLOUT_WAIT = 0,            /* nothing to do yet */
	ROLLOUT_GOOD,                /* record this version as last-known-good now */
	ROLLOUT_FAILED,              /* roll back to the last-known-good (reason says why) */
};

enum rollout_reason {
	ROLLOUT_NONE = 0,
	ROLLOUT_CRASH_LOOP,          /* the breaker opened, or crashes reached the threshold */
	ROLLOUT_NOT_READY,           /* not fully ready within the window */
};

/* One deployment's judge. Time runs only while the image is ready: a slow
 * pull never counts against the new version. */
struct rollout_track {
	uint64_t spec_hash;          /* the version being judged; 0 none */
	bool started;                /* seen with its image ready */
	uint64_t since_ms;           /* ... since then */
	bool all_ready;              /* fully ready now */
	uint64_t ready_since_ms;     /* ... since then */
	bool judged;                 /* a verdict was given for this version */
};

struct rollout_limits {
	uint32_t stable_ms;          /* fully ready this long: last-known-good */
	uint32_t window_ms;          /* not fully ready within this after its image: failed */
	uint32_t max_crashes;        /* crashes within the window that count as a crash loop */
};

/* Feeds one observation at now_ms. lkg_hash is the deployment's
 * last-known-good (0 none): a version equal to it is never judged failed
 * (there is nothing to go back to), only re-recorded when stable. */
enum rollout_verdict rollout_observe(struct rollout_track *t, const struct rollout_obs *o, uint64_t lkg_hash,
				     const struct rollout_limits *lim, uint64_t now_ms, enum rollout_reason *why);

const char *rollout_reason_name(enum rollout_reason r);

#endif
