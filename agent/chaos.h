/* agent/chaos.h - the built-in chaos experiment: kill random replicas, measure the time to a ready replacement. */
#ifndef BERTH_CHAOS_H
#define BERTH_CHAOS_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/deploy.h"

struct loop;
struct supervisor;
struct chaos;

#define CHAOS_MAX_SAMPLES 256  /* recovery times kept; later ones are counted, not kept */

struct chaos_config {
	char deployment[DEPLOY_NAME_MAX];
	unsigned interval_ms;          /* one kill per interval */
	unsigned duration_ms;          /* 0: until chaos_stop() */
	unsigned min_running;          /* never kill when fewer than min_running + 1 replicas are ready */
	uint64_t seed;                 /* victim choice; 0: from the clock */
};

struct chaos_report {
	bool running;
	uint32_t kills;
	uint32_t skipped;              /* intervals without a kill (min_running, nothing ready, engine busy) */
	uint32_t recovered;            /* kills followed by a ready replacement */
	uint32_t mttr_mean_ms;         /* kill -> replacement ready */
	uint32_t mttr_p95_ms;
	uint32_t mttr_max_ms;
	uint64_t failed_requests;      /* counted by chaos_note_failed_request() during the run */
};

/* The experiment observes sup (one of its observer places). NULL on failure. */
struct chaos *chaos_create(struct loop *l, struct supervisor *sup);
void chaos_destroy(struct chaos *c);

/* Starts a run (a running one is stopped first, its report kept). Returns
 * 0, -EINVAL (no deployment or interval 0), -ENOSPC (timer). */
int chaos_start(struct chaos *c, const struct chaos_config *cfg) __attribute__((warn_unused_result));
/* Ends the run: logs "event=chaos_done ..." with the report. */
void chaos_stop(struct chaos *c);
void chaos_report(const struct chaos *c, struct chaos_report *out);

/* The dispatcher calls this for every request to the deployment under test
 * that failed while a run is active. */
void chaos_note_failed_request(struct chaos *c, const char *model);

#endif
