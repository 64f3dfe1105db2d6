/* agent/base/loop.c - poll()-based event loop with a min-heap of monotonic timers. */
#include "agent/base/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hal/clock.h"

struct loop_fd {
	loop_fd_fn fn;
	void *arg;
};

struct loop {
	struct pollfd pfds[CONFIG_LOOP_MAX_FDS];
	struct loop_fd fds[CONFIG_LOOP_MAX_FDS];
	unsigned nfds;
	struct loop_timer *heap[CONFIG_LOOP_MAX_TIMERS];
	unsigned ntimers;
	uint64_t timer_starts;  /* start_id of the next (re)armed timer */
	uint64_t now_us;
	bool stop;
	bool fds_changed;   /* set by add/del during dispatch */
};

struct loop *loop_create(void)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->now_us = hal_clock_now_us();
	return l;
}

void loop_destroy(struct loop *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->ntimers; i++)
		l->heap[i]->heap_idx = -1;
	free(l);
}

static int fd_index(const struct loop *l, int fd)
{
	for (unsigned i = 0; i < l->nfds; i++)
		if (l->pfds[i].fd == fd)
			return (int)i;
	return -1;
}

static short to_poll(unsigned events)
{
	return (short)(((events & LOOP_IN) ? POLLIN : 0) | ((events & LOOP_OUT) ? POLLOUT : 0));
}

int loop_fd_add(struct loop *l, int fd, unsigned events, loop_fd_fn fn, void *arg)
{
	if (fd < 0 || !fn)
		return -EINVAL;
	if (fd_index(l, fd) >= 0)
		return -EEXIST;
	if (l->nfds >= CONFIG_LOOP_MAX_FDS)
		return -ENOSPC;
	l->pfds[l->nfds] = (struct pollfd){ .fd = fd, .events = to_poll(events) };
	l->fds[l->nfds] = (struct loop_fd){ .fn = fn, .arg = arg };
	l->nfds++;
	l->fds_changed = true;
	return 0;
}

int loop_fd_mod(struct loop *l, int fd, unsigned events)
{
	int i = fd_index(l, fd);
	if (i < 0)
		return -ENOENT;
	l->pfds[i].events = to_poll(events);
	return 0;
}

void loop_fd_del(struct loop *l, int fd)
{
	int i = fd_index(l, fd);
	if (i < 0)
		return;
	l->nfds--;
	l->pfds[i] = l->pfds[l->nfds];
	l->fds[i] = l->fds[l->nfds];
	l->fds_changed = true;
}

/* --- timer heap ------------------------------------------------------ */

static void heap_swap(struct loop *l, unsigned a, unsigned b)
{
	struct loop_timer *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_idx = (int)a;
	l->heap[b]->heap_idx = (int)b;
}

/* Due first; on equal due times the one started first (libuv's rule), so
 * timers armed for the same moment run in the order they were armed. */
static inline bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->due_us < b->due_us || (a->due_us == b->due_us && a->start_id < b->start_id);
}

static void heap_up(struct loop *l, unsigned i)
{
	while (i > 0) {
		unsigned p = (i - 1) / 2;
		if (!timer_before(l->heap[i], l->heap[p]))
			break;
		heap_swap(l, i, p);
		i = p;
	}
}

static void heap_down(struct loop *l, unsigned i)
{
	for (;;) {
		unsigned c = 2 * i + 1, m = i;
		if (c < l->ntimers && timer_before(l->heap[c], l->heap[m]))
			m = c;
		if (c + 1 < l->ntimers && timer_before(l->heap[c + 1], l->heap[m]))
			m = c + 1;
		if (m == i)
			break;
		heap_swap(l, i, m);
		i = m;
	}
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->arg = arg;
	t->heap_idx = -1;
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	if (t->heap_idx < 0)
		return;
	unsigned i = (unsigned)t->heap_idx;
	t->heap_idx = -1;
	l->ntimers--;
	if (i == l->ntimers)
		return;
	l->heap[i] = l->heap[l->ntimers];
	l->heap[i]->heap_idx = (int)i;
	heap_up(l, i);
	heap_down(l, (unsigned)l->heap[i]->heap_idx);
}

int loop_timer_start_us(struct loop *l, struct loop_timer *t, uint64_t delay_us, uint64_t period_us)
{
	loop_timer_stop(l, t);
	if (l->ntimers >= CONFIG_LOOP_MAX_TIMERS)
		return -ENOSPC;
	/* Relative to the real clock, not the cached iteration time, so a timer
	 * armed late in a long callback is not due early. The reading also
	 * refreshes the iteration time, so a timer armed for "now" from an fd
	 * callback runs in this iteration's timer phase instead of costing
	 * another poll() (run_timers keeps its own copy: a timer re-armed for
	 * now by its own callback still waits for the next iteration). */
	uint64_t now = hal_clock_now_us();
	l->now_us = now;
	t->due_us = now + delay_us;
	t->period_us = period_us;
	t->start_id = l->timer_starts++;
	t->heap_idx = (int)l->ntimers;
	l->heap[l->ntimers++] = t;
	heap_up(l, (unsigned)t->heap_idx);
	return 0;
}

int loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms, uint64_t period_ms)
{
	return loop_timer_start_us(l, t, delay_ms * 1000u, period_ms * 1000u);
}

uint64_t loop_now_us(struct loop *l) { return l->now_us; }

static int run_timers(struct loop *l)
{
	int ran = 0;
	/* At most as many runs as there were timers: a timer re-armed for "now"
	 * by a callback (its own or another's: l->now_us moves with each start)
	 * runs in this phase while the budget lasts, so a chain of zero-delay
	 * timers costs no extra poll() but cannot starve the fds. */
	unsigned budget = l->ntimers;
	while (l->ntimers && l->heap[0]->due_us <= l->now_us && budget--) {
		uint64_t now = l->now_us;
		struct loop_timer *t = l->heap[0];
		loop_timer_stop(l, t);
		if (t->period_us) {
			uint64_t next = t->due_us + t->period_us;
			if (next <= now) /* fell behind: skip missed periods */
				next = now + t->period_us;
			t->due_us = next;
			t->start_id = l->timer_starts++;
			t->heap_idx = (int)l->ntimers;
			l->heap[l->ntimers++] = t;
			heap_up(l, (unsigned)t->heap_idx);
		}
		t->fn(t->arg);
		ran++;
		if (l->stop)
			break;
	}
	return ran;
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	int wait_ms = max_wait_ms;
	l->now_us = hal_clock_now_us();
	if (l->ntimers) {
		uint64_t due = l->heap[0]->due_us;
		int64_t until = due > l->now_us ? (int64_t)((due - l->now_us + 999) / 1000) : 0;
		if (wait_ms < 0 || until < wait_ms)
			wait_ms = (int)until;
	}

	int n = hal_poll(l->pfds, l->nfds, wait_ms);
	if (n < 0 && n != -EINTR)
		return n;
	l->now_us = hal_clock_now_us();

	int ran = 0;
	if (n > 0) {
		l->fds_changed = false;
		for (unsigned i = 0; i < l->nfds && !l->stop; i++) {
			short re = l->pfds[i].revents;
			if (!re)
				continue;
			l->pfds[i].revents = 0;
			unsigned ev = ((re & POLLIN) ? LOOP_IN : 0) | ((re & POLLOUT) ? LOOP_OUT : 0) |
				      ((re & (POLLERR | POLLHUP | POLLNVAL)) ? LOOP_ERR : 0);
			int fd = l->pfds[i].fd;
			struct loop_fd cb = l->fds[i];
			cb.fn(cb.arg, fd, ev);
			ran++;
			if (l->fds_changed) {
				/* The table moved under us; the rest is picked up next time. */
				for (unsigned j = 0; j < l->nfds; j++)
					l->pfds[j].revents = 0;
				break;
			}
		}
	}
	if (!l->stop)
		ran += run_timers(l);
	return ran;
}

int loop_run(struct loop *l)
{
	l->stop = false;
	while (!l->stop) {
		int rc = loop_run_once(l, -1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void loop_stop(struct loop *l) { l->stop = true; }
bool loop_stopped(const struct loop *l) { return l->stop; }
