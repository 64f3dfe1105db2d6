/* tests/unit/test_api_listen.c - the local API's listener on a real socket: what it accepts, closes and holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/loop.h"
#include "agent/infer/api_listen.h"
#include "hal/net.h"
#include "helpers.h"

struct server {
	unsigned taken, batches;
	bool room;
	int fds[API_ACCEPT_BATCH + 8];
};

static void take(void *arg, int fd, const void *addr, unsigned addrlen)
{
	struct server *s = arg;
	s->fds[s->taken++] = fd;
}
static void batch(void *arg) { ((struct server *)arg)->batches++; }
static bool room(void *arg) { return ((struct server *)arg)->room; }
static const struct api_listen_ops ops = { take, batch, room };

struct fixture {
	char dir[64], path[96];
	struct loop *l;
	struct api_listener li;
	struct server s;
	uint64_t silent;
};

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof(f));
	if (test_tmpdir(f.dir, sizeof(f.dir), "listen", NULL, 0))
		return -1;
	snprintf(f.path, sizeof(f.path), "%s/api.sock", f.dir);
	f.l = loop_create();
	int fd = api_listen_unix(f.path);
	f.s.room = true;
	/* deferred on a unix socket: the rule for silent connections, without waiting out TCP's defer */
	if (!f.l || fd < 0 || api_listener_start(&f.li, f.l, fd, true, &f.silent, &ops, &f.s))
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (unsigned i = 0; i < f->s.taken; i++)
		close(f->s.fds[i]);
	api_listener_stop(&f->li);
	api_listener_stop(&f->li); /* twice: a no-op */
	loop_destroy(f->l);
	return test_rmtree(f->dir);
}

static int client(struct fixture *f, const char *send)
{
	int fd = hal_net_connect(f->path, NULL, 0, 1000);
	assert_true(fd >= 0);
	if (send)
		assert_int_equal(write(fd, send, strlen(send)), (ssize_t)strlen(send));
	return fd;
}

/* A connection with a request waiting is handed over; one that sent nothing is closed and counted. */
static void silent_connections_are_closed_at_the_accept(void **state)
{
	struct fixture *f = *state;
	int quiet = client(f, NULL), talker = client(f, "GET /v2/health/live HTTP/1.1\r\n");
	loop_run_once(f->l, 200);
	assert_int_equal(f->s.taken, 1);
	assert_int_equal(f->s.batches, 1);
	assert_int_equal(f->silent, 1);
	char c;
	assert_int_equal(read(quiet, &c, 1), 0); /* closed by the listener */
	close(quiet);
	close(talker);
}

/* With no room in the server, nothing is accepted (the connection waits in the kernel) until resume. */
static void a_full_server_holds_the_listener_until_resume(void **state)
{
	struct fixture *f = *state;
	f->s.room = false;
	int c = client(f, "GET / HTTP/1.1\r\n");
	loop_run_once(f->l, 200);
	assert_int_equal(f->s.taken, 0);
	assert_true(f->li.held);
	loop_run_once(f->l, 50); /* held: the listening socket no longer wakes the loop */
	assert_int_equal(f->s.taken, 0);
	f->s.room = true;
	api_listener_resume(&f->li);
	assert_false(f->li.held);
	loop_run_once(f->l, 200);
	assert_int_equal(f->s.taken, 1);
	assert_int_equal(f->silent, 0);
	close(c);
}

/* A turn of the loop accepts at most API_ACCEPT_BATCH; the rest on the next turn. */
static void accepts_are_batched(void **state)
{
	struct fixture *f = *state;
	enum { N = API_ACCEPT_BATCH + 5 };
	int c[N];
	for (int i = 0; i < N; i++)
		c[i] = client(f, "G");
	loop_run_once(f->l, 200);
	assert_int_equal(f->s.taken, API_ACCEPT_BATCH);
	loop_run_once(f->l, 200);
	assert_int_equal(f->s.taken, N);
	assert_int_equal(f->s.batches, 2);
	for (int i = 0; i < N; i++)
		close(c[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(silent_connections_are_closed_at_the_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(a_full_server_holds_the_listener_until_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(accepts_are_batched, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
