/* hal/clock.h - monotonic and wall clocks, and the poll() the event loop waits in. */
#ifndef BERTH_HAL_CLOCK_H
#define BERTH_HAL_CLOCK_H

#include <poll.h>
#include <stdint.h>

/* Monotonic time in microseconds since an arbitrary origin. Never goes back.
 * All scheduling, timers and deadlines use this clock. Never blocks. */
uint64_t hal_clock_now_us(void);

/* Wall-clock time in milliseconds since the Unix epoch, for timestamps on
 * telemetry only (may jump, may be 1970 on a gateway without an RTC). */
int64_t hal_clock_wall_ms(void);

/* Wait up to timeout_ms (-1: forever) for events on fds, like poll(2).
 * Returns the number of ready fds, 0 on timeout, or -errno.
 * On the sim port, a wait with no ready fd advances the virtual clock to the
 * timeout instead of sleeping, which is what makes tests deterministic. */
int hal_poll(struct pollfd *fds, unsigned nfds, int timeout_ms);

#endif
