/* agent/supervise/chaos.h - the built-in chaos experiment: kill random replicas, measure the time to a ready replacement. */
#ifndef BERTH_CHAOS_H
#define BERTH_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"

struct events;
struct loop;
struct supervisor;
struct chaos;

#define CHAOS_MAX_SAMPLES 256          /* recovery times kept; later ones are counted, not kept */
#define CHAOS_RECOVERY_WAIT_MS 30000u  /* after the last interval, how long the run waits for
					* its killed replicas to come back before it reports */

struct chaos_config {
	char deployment[DEPLOY_NAME_MAX];
	unsigned interval_ms;          /* one kill per interval */
	unsigned duration_ms;          /* 0: until chaos_stop() */
	unsigned min_running;          /* never kill when fewer than min_running + 1 replicas are ready */
	uint64_t seed;                 /* victim choice; 0: from the clock */
};

/* A run is active from chaos_start() until its duration is over and every
 * replica it killed is ready again (at most CHAOS_RECOVERY_WAIT_MS more),
 * or until chaos_stop(). */
struct chaos_report {
	bool running;                  /* the run is active (killing, or waiting for recoveries) */
	uint32_t runs;                 /* runs started since the agent started */
	uint32_t kills;
	uint32_t skipped;              /* intervals without a kill (min_running, nothing ready, engine busy) */
	uint32_t recovered;            /* kills followed by a ready replacement */
	uint32_t pending;              /* kills not (yet) followed by a ready replacement */
	uint32_t mttr_mean_ms;         /* kill -> replacement ready */
	uint32_t mttr_p95_ms;
	uint32_t mttr_max_ms;
	uint64_t failed_requests;      /* counted by chaos_note_failed_request() while active */
};

/* The experiment observes sup (one of its observer places). events (may be
 * NULL) receives "chaos_started" and "chaos_done" with the report. NULL on
 * failure. */
struct chaos *chaos_create(struct loop *l, struct supervisor *sup, struct events *events);
void chaos_destroy(struct chaos *c);

/* Starts a run (a running one is stopped first and reported). Returns
 * 0, -EINVAL (no deployment or interval 0), -ENOSPC (timer). */
int chaos_start(struct chaos *c, const struct chaos_config *cfg) __attribute__((warn_unused_result));
/* Ends an active run at once: logs and emits "chaos_done" with the report. */
void chaos_stop(struct chaos *c);
void chaos_report(const struct chaos *c, struct chaos_report *out);
/* The last (or current) run as a JSON object {"deployment":..,"running":..,
 * "kills":..,...} into buf (before the first run: deployment "", runs 0 and
 * zeros). Returns the length, or -ENOSPC. */
int chaos_report_json(const struct chaos *c, char *buf, size_t len);

/* The dispatcher calls this for every request to a model that did not get a
 * replica's answer below 500 (refused, failed, timed out, 5xx); it is counted
 * when the model is the deployment of an active run. */
void chaos_note_failed_request(struct chaos *c, const char *model);

#endif
