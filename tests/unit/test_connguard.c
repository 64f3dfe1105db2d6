/* tests/unit/test_connguard.c - the local API's flood guard: deadlines, room, per-client share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "agent/base/loop.h"
#include "agent/infer/connguard.h"

#if IS_ENABLED(CONFIG_LOCAL_API)
static struct sockaddr_in sa_a = { .sin_family = AF_INET, .sin_addr = { 0x0100007f } };
static struct sockaddr_in sa_b = { .sin_family = AF_INET, .sin_addr = { 0x0200000a } };
#define A (&sa_a)
#define B (&sa_b)
/* descriptors that are no sockets: shutting them down fails harmlessly */
enum { FD0 = 900 };

/* Over the pool, a new connection makes the oldest one outside a request go; one inside a
 * request or younger than the grace is never chosen. */
static void room_takes_the_oldest_idle(void **state)
{
	(void)state;
	static struct connguard g;
	connguard_init(&g, 2, 100, 5000, 60000, 50);
	struct connguard_conn *c0 = connguard_open(&g, (void *)1, FD0, A, 1000);
	struct connguard_conn *c1 = connguard_open(&g, (void *)2, FD0 + 1, A, 1100);
	connguard_request(c0);                     /* inside a request: not closable */
	struct connguard_conn *c2 = connguard_open(&g, (void *)3, FD0 + 2, B, 1200);
	assert_non_null(c2);
	assert_int_equal(g.evicted, 1);
	assert_int_equal(c1->fd, -1);              /* the oldest outside a request */
	assert_int_equal(c0->fd, FD0);
	struct connguard_conn *c3 = connguard_open(&g, (void *)4, FD0 + 3, B, 1210);
	assert_int_equal(g.evicted, 1);            /* c2 is younger than the grace: kept */
	assert_int_equal(c2->fd, FD0 + 2);
	assert_int_equal(connguard_sweep(&g, 1300), 1); /* over the pool: the sweep takes c2 now */
	assert_int_equal(c2->fd, -1);
	assert_int_equal(c3->fd, FD0 + 3);
	connguard_close(&g, c1);
	connguard_close(&g, c2);
	assert_int_equal(g.open, 2);
}

/* The header deadline counts from the accept whatever arrives; after a response the idle
 * limit applies. */
static void deadlines_from_accept_and_response(void **state)
{
	(void)state;
	static struct connguard g;
	connguard_init(&g, 10, 100, 5000, 60000, 50);
	struct connguard_conn *slow = connguard_open(&g, (void *)1, FD0, A, 0);
	struct connguard_conn *kept = connguard_open(&g, (void *)2, FD0 + 1, A, 0);
	connguard_request(kept);
	connguard_done(kept, 4000);
	assert_int_equal(connguard_sweep(&g, 4999), 0);
	assert_int_equal(connguard_sweep(&g, 5000), 1);
	assert_int_equal(slow->fd, -1);
	assert_int_equal(g.header_timeouts, 1);
	assert_int_equal(connguard_sweep(&g, 63999), 0);
	assert_int_equal(connguard_sweep(&g, 64000), 1);
	assert_int_equal(kept->fd, -1);
}

/* One address may hold per_client connections outside a request; another address is not
 * touched. */
static void per_client_share(void **state)
{
	(void)state;
	static struct connguard g;
	connguard_init(&g, 100, 2, 5000, 60000, 0);
	struct connguard_conn *a0 = connguard_open(&g, (void *)1, FD0, A, 0);
	struct connguard_conn *b0 = connguard_open(&g, (void *)2, FD0 + 1, B, 1);
	(void)connguard_open(&g, (void *)3, FD0 + 2, A, 2);
	assert_int_equal(g.evicted, 0);
	(void)connguard_open(&g, (void *)4, FD0 + 3, A, 3);
	assert_int_equal(g.evicted, 1);
	assert_int_equal(a0->fd, -1);
	assert_int_equal(b0->fd, FD0 + 1);
}

/* After a flood (more than half the pool open) has ebbed to a sixteenth of the pool, the
 * freed memory is handed back once; a quiet API never trims. */
static void trim_after_flood(void **state)
{
	(void)state;
	static struct connguard g;
	connguard_init(&g, 32, 100, 5000, 60000, 0);
	for (uintptr_t i = 1; i <= 20; i++)
		(void)connguard_open(&g, (void *)i, (int)(FD0 + i), NULL, 0);
	assert_int_equal(g.peak, 20);
	(void)connguard_sweep(&g, 1);
	assert_int_equal(g.trims, 0);              /* still 20 open */
	for (unsigned i = 0; i < CONNGUARD_SLOTS && g.open > 2; i++)
		if (g.conns[i].owner)
			connguard_close(&g, &g.conns[i]);
	(void)connguard_sweep(&g, 2);
	assert_int_equal(g.trims, 1);
	(void)connguard_sweep(&g, 3);
	assert_int_equal(g.trims, 1);              /* once per flood */
	(void)connguard_open(&g, (void *)99, FD0 + 99, NULL, 4);
	(void)connguard_sweep(&g, 5);
	assert_int_equal(g.trims, 1);
}

/* The sweep timer runs only while a connection is open: an idle API does not wake the loop. */
static void sweep_only_while_open(void **state)
{
	(void)state;
	static struct connguard g;
	struct loop *l = loop_create();
	assert_non_null(l);
	connguard_init(&g, 4, 100, 5000, 60000, 0);
	assert_int_equal(connguard_start(&g, l), 0);
	assert_false(loop_timer_armed(&g.sweep));  /* no connection yet */
	struct connguard_conn *c = connguard_open(&g, (void *)1, FD0, NULL, connguard_now_ms());
	assert_true(loop_timer_armed(&g.sweep));
	(void)loop_run_once(l, 200);               /* one sweep with the connection open */
	assert_true(loop_timer_armed(&g.sweep));
	connguard_close(&g, c);
	(void)loop_run_once(l, 200);               /* the next sweep finds none and stops */
	assert_false(loop_timer_armed(&g.sweep));
	connguard_stop(&g);
	loop_destroy(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(room_takes_the_oldest_idle),
		cmocka_unit_test(deadlines_from_accept_and_response),
		cmocka_unit_test(per_client_share),
		cmocka_unit_test(trim_after_flood),
		cmocka_unit_test(sweep_only_while_open),
	};
	return cmocka_run_group_tests_name("connguard", tests, NULL, NULL);
}
#else
int main(void) { return 0; } /* no local API in this build */
#endif
