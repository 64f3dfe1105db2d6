/* ports/sim/sim.h - control API of the simulated gateway, for tests and berth-sim. */
#ifndef BERTH_SIM_H
#define BERTH_SIM_H

#include <stdint.h>

#include "hal/sys.h"

/* --- virtual clock -------------------------------------------------------
 * Starts at 1 s. Only moves when told to, or when the loop waits in
 * hal_poll() with nothing ready: then it jumps to the end of the wait. */
void sim_clock_set_us(uint64_t now_us);
void sim_clock_advance_us(uint64_t delta_us);
static inline void sim_clock_advance_ms(uint64_t delta_ms) { sim_clock_advance_us(delta_ms * 1000u); }
/* Wall clock = wall_base_ms + virtual ms (default base: 2026-01-01T00:00:00Z). */
void sim_clock_set_wall_base_ms(int64_t wall_ms);
/* When set, hal_poll() really polls the fds (with timeout 0) before jumping;
 * tests that use real sockets (sd_notify, pipes) keep this on (default on). */
void sim_poll_real_fds(int on);

/* --- scripted system values ------------------------------------------------ */
void sim_sys_set_node(const struct hal_node_stats *st);
/* Stats returned for pid; up to 64 pids. A pid never set reads -ESRCH. */
int sim_sys_set_ctr(int pid, const struct hal_ctr_stats *st);
void sim_sys_clear_ctr(int pid);
void sim_sys_set_machine_id(const char *id);
/* Next n calls of hal_sys_node_stats / hal_sys_ctr_stats fail with err. */
void sim_sys_inject_error(int err, unsigned n);

/* --- watchdog ------------------------------------------------------------- */
unsigned sim_watchdog_kicks(void);

/* Resets every piece of sim state to its start value (call in test setup). */
void sim_reset(void);

#endif
