/* ports/linux/clock.c - CLOCK_MONOTONIC, CLOCK_REALTIME and poll(2). */
#include "hal/clock.h"

#include <errno.h>
#include <time.h>

uint64_t hal_clock_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t hal_clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hal_poll(struct pollfd *fds, unsigned nfds, int timeout_ms)
{
	int n = poll(fds, nfds, timeout_ms);
	return n < 0 ? -errno : n;
}
