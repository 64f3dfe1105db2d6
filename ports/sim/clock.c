/* ports/sim/clock.c - the virtual clock; hal_poll jumps it forward instead of sleeping. */
#include "hal/clock.h"

#include <errno.h>

#include "ports/sim/sim.h"

#define SIM_START_US 1000000u
#define SIM_WALL_BASE_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

static uint64_t g_now_us = SIM_START_US;
static int64_t g_wall_base_ms = SIM_WALL_BASE_MS;
static int g_poll_real = 1;

uint64_t hal_clock_now_us(void) { return g_now_us; }
int64_t hal_clock_wall_ms(void) { return g_wall_base_ms + (int64_t)(g_now_us / 1000u); }

void sim_clock_set_us(uint64_t now_us)
{
	if (now_us > g_now_us)
		g_now_us = now_us;
}
void sim_clock_advance_us(uint64_t delta_us) { g_now_us += delta_us; }
void sim_clock_set_wall_base_ms(int64_t wall_ms) { g_wall_base_ms = wall_ms; }
void sim_poll_real_fds(int on) { g_poll_real = on; }

void sim_clock_reset(void);
void sim_clock_reset(void)
{
	g_now_us = SIM_START_US;
	g_wall_base_ms = SIM_WALL_BASE_MS;
	g_poll_real = 1;
}

int hal_poll(struct pollfd *fds, unsigned nfds, int timeout_ms)
{
	if (g_poll_real && nfds) {
		int n = poll(fds, nfds, 0);
		if (n < 0)
			return -errno;
		if (n > 0)
			return n;
	}
	if (timeout_ms > 0)
		g_now_us += (uint64_t)timeout_ms * 1000u;
	else if (timeout_ms < 0 && !nfds)
		return -EDEADLK; /* nothing can ever wake a virtual wait forever */
	return 0;
}
