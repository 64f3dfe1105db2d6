/* agent/base/loop.h - the single poll()-based event loop: file descriptors and monotonic timers. */
#ifndef BERTH_LOOP_H
#define BERTH_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

enum { LOOP_IN = 1u << 0, LOOP_OUT = 1u << 1, LOOP_ERR = 1u << 2 };

/* Called with the events that are ready (LOOP_IN/OUT/ERR). */
typedef void (*loop_fd_fn)(void *arg, int fd, unsigned events);

/* Timer: memory owned by the caller (no allocation in the loop). Initialise
 * once with loop_timer_init(); start/stop as often as needed. */
typedef void (*loop_timer_fn)(void *arg);
struct loop_timer {
	uint64_t due_us;
	uint64_t period_us;   /* 0: one-shot */
	loop_timer_fn fn;
	void *arg;
	int heap_idx;         /* -1 when not armed */
	uint64_t start_id;    /* order of (re)arming: equal due times fire first-started first */
};

/* Creates a loop able to watch CONFIG_LOOP_MAX_FDS fds and CONFIG_LOOP_MAX_TIMERS
 * armed timers. Returns NULL on allocation failure. Free with loop_destroy(). */
struct loop *loop_create(void);
void loop_destroy(struct loop *l);

/* Watch fd for events (LOOP_IN|LOOP_OUT). Returns 0, -EEXIST if already
 * watched, -ENOSPC when the fd table is full. */
int loop_fd_add(struct loop *l, int fd, unsigned events, loop_fd_fn fn, void *arg)
	__attribute__((warn_unused_result));
/* Change the events watched on fd. Returns 0 or -ENOENT. */
int loop_fd_mod(struct loop *l, int fd, unsigned events);
/* Stop watching fd (safe from inside its own callback; no-op if unknown). */
void loop_fd_del(struct loop *l, int fd);

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg);
/* Arms t to fire after delay_ms, then every period_ms (0: once). Re-arming an
 * armed timer moves it. Returns 0 or -ENOSPC when the timer heap is full. */
int loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms, uint64_t period_ms)
	__attribute__((warn_unused_result));
/* Same with microsecond resolution. */
int loop_timer_start_us(struct loop *l, struct loop_timer *t, uint64_t delay_us, uint64_t period_us)
	__attribute__((warn_unused_result));
void loop_timer_stop(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t) { return t->heap_idx >= 0; }

/* Monotonic time of the current iteration (hal_clock_now_us refreshed once per wake-up). */
uint64_t loop_now_us(struct loop *l);
static inline uint64_t loop_now_ms(struct loop *l) { return loop_now_us(l) / 1000; }

/* Waits at most max_wait_ms (-1: until the next timer) and dispatches what is
 * ready: fd callbacks first, then due timers. Returns the number of callbacks
 * run, or -errno from poll. */
int loop_run_once(struct loop *l, int max_wait_ms);

/* Runs until loop_stop(). Returns 0, or -errno on a poll failure. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);
bool loop_stopped(const struct loop *l);

#endif
