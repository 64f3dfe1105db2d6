/* agent/trust/trusttime.h - the time a gateway may trust: its clock, never below the newest signed time it has seen. */
#ifndef BERTH_TRUSTTIME_H
#define BERTH_TRUSTTIME_H

#include <stdbool.h>
#include <stdint.h>

/* A gateway without a real-time clock boots at 1970; one whose clock was
 * stepped forward by a bad time source could see every key as expired. The
 * trusted time is max(wall clock, floor), where the floor is the newest
 * signed issue time the gateway verified, persisted by the caller and only
 * ever raised. So after a reboot at 1970 keys are judged at the last time
 * the console vouched for; the wall clock raises the trusted time but never
 * the floor (a forward step is not persisted, and passes when the clock is
 * corrected); nothing makes it go backwards. */
struct trusttime {
	int64_t floor_ms;
};

/* The trusted time at wall-clock time wall_ms. Pure. */
int64_t trusttime_now(const struct trusttime *t, int64_t wall_ms);

/* Raises the floor to signed_ms (a verified issue time) when that is newer.
 * Returns true when the floor moved (the caller persists it). */
bool trusttime_observe(struct trusttime *t, int64_t signed_ms);

#endif
