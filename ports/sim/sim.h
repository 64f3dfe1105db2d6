/* ports/sim/sim.h - control API of the simulated gateway, for tests and berth-sim. */
#ifndef BERTH_SIM_H
#define BERTH_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/engine.h"
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

/* --- container engine and replicas ----------------------------------------
 * One simulated engine per process, shared by every hal_engine and
 * hal_invoke client (timers run on the loop of the newest one). Containers
 * behave like the reference worker: the environment keys BERTH_PORT,
 * WORKER_STARTUP_MS, WORKER_COST_MS, WORKER_CONCURRENCY, WORKER_FAULT
 * (crash|hang|unlive|unready) and WORKER_CRASH_AFTER_MS are honoured, and
 * the replica answers GET /v2/health/live, /v2/health/ready,
 * /v2/models/{m}/ready, POST /v2/models/{m}/infer and POST /admin/fault.
 * Every engine call takes the engine latency (default 1 ms) of virtual
 * time, a start also the container's start latency (default 50 ms); a call
 * slower than the client's timeout fails with -ETIMEDOUT at the timeout but
 * is still carried out, as a real engine does. Calls and events reach their
 * callbacks from loop timers, never inside the call.
 * Functions taking ref accept a container id or name and return 0 or -ENOENT. */
void sim_engine_set_available(bool up);       /* down: calls fail -EHOSTDOWN, stream lost; up: stream back */
void sim_engine_set_latency_ms(uint32_t ms);  /* per call */
void sim_engine_set_start_latency_ms(uint32_t ms); /* default for containers created from now on */
void sim_engine_set_default_cost_ms(uint32_t ms);  /* infer cost when neither request nor env says (10) */
uint64_t sim_engine_calls(void);              /* engine calls accepted since reset */
int sim_ctr_crash(const char *ref, int exit_code); /* the process dies: die event, requests reset */
int sim_ctr_oom(const char *ref);             /* OOM kill: oom + die 137 events */
int sim_ctr_hang(const char *ref);            /* stops answering HTTP (TCP still connects) */
int sim_ctr_unlive(const char *ref, bool on); /* GET /v2/health/live answers 500 */
int sim_ctr_unready(const char *ref, bool on); /* readiness endpoints answer 503 */
int sim_ctr_heal(const char *ref);            /* clears hang, unlive and unready */
int sim_ctr_set_start_latency_ms(const char *ref, uint32_t ms);
int sim_ctr_set_service(const char *ref, uint32_t cost_ms, unsigned concurrency);
int sim_ctr_set_exec_exit(const char *ref, int exit_code); /* exit status of every exec (default 0) */
/* Current view of one container, as inspect would return it. */
int sim_ctr_get(const char *ref, struct hal_ctr_info *out);
/* Containers that exist (any state), and the id of the i-th of them. */
unsigned sim_ctr_count(void);
const char *sim_ctr_id_at(unsigned i);
/* Requests a replica is serving and holding queued (for concurrency tests). */
int sim_ctr_load(const char *ref, unsigned *serving, unsigned *queued);
/* Creates and (if start) starts a container at once, outside any client,
 * e.g. a foreign container without berth's labels. id may be NULL. */
int sim_ctr_add(const struct hal_ctr_create *spec, bool start, char *id, size_t id_len);

/* --- images and a registry ------------------------------------------------
 * The engine's image store and one registry, in virtual time. Image checks
 * are off by default (any image can be created, as before images were
 * modelled); sim_images_enforce(true) makes create fail -ENOENT for an image
 * not in the store. A pull of a registry image takes size / bandwidth of
 * virtual time, reports progress once per virtual second, keeps the bytes it
 * already fetched when it fails (a retry resumes), and puts the image in the
 * store under its tag and "name@digest". */
void sim_images_enforce(bool on);
/* Registry content: ref "name:tag" with its digest ("sha256:<64 hex>") and size. */
int sim_registry_add(const char *ref, const char *digest, uint64_t size_bytes);
void sim_registry_set_available(bool up);        /* down: pulls fail -EHOSTUNREACH (one in flight too) */
void sim_registry_set_bandwidth(uint64_t bytes_per_s); /* default 10 MB/s */
void sim_registry_fail_pulls(unsigned n, int err); /* the next n pulls fail at once with err */
/* Puts an image straight into the store (a local import); created_s orders GC. */
int sim_image_add(const char *ref, uint64_t size_bytes, int64_t created_s);
bool sim_image_exists(const char *ref);
unsigned sim_image_count(void);
unsigned sim_pulls_started(void);

/* Resets every piece of sim state to its start value (call in test setup). */
void sim_reset(void);

#endif
