/* tests/unit/linux/test_notify.c - the sd_notify protocol against a real AF_UNIX datagram socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "hal/watchdog.h"

/* The service manager's end: a datagram socket bound to a file in a
 * temporary directory, or to a name in the abstract namespace. */
struct manager {
	int fd;
	char dir[64];
	char env[100];   /* the value of NOTIFY_SOCKET */
};

static int manager_open(struct manager *m, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	memset(m->dir, 0, sizeof(m->dir));
	if (abstract) {
		snprintf(m->env, sizeof(m->env), "@berth-notify-test-%d", (int)getpid());
		memcpy(sa.sun_path, m->env, strlen(m->env));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(m->env));
	} else {
		snprintf(m->dir, sizeof(m->dir), "/tmp/berth-notify-XXXXXX");
		if (!mkdtemp(m->dir))
			return -1;
		snprintf(m->env, sizeof(m->env), "%s/notify", m->dir);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->env);
		len = sizeof(sa);
	}
	m->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0 || bind(m->fd, (struct sockaddr *)&sa, len) < 0)
		return -1;
	return setenv("NOTIFY_SOCKET", m->env, 1);
}

static void manager_close(struct manager *m)
{
	close(m->fd);
	if (m->dir[0]) {
		unlink(m->env);
		rmdir(m->dir);
	}
	unsetenv("NOTIFY_SOCKET");
}

/* The next datagram, or "" when none is queued (never waits). */
static const char *manager_recv(struct manager *m)
{
	static char buf[256];
	ssize_t n = recv(m->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int setup(void **state)
{
	static struct manager m;
	*state = &m;
	return manager_open(&m, false);
}

static int setup_abstract(void **state)
{
	static struct manager m;
	*state = &m;
	return manager_open(&m, true);
}

static int teardown(void **state)
{
	manager_close(*state);
	return 0;
}

static void ready_and_watchdog_reach_the_manager(void **state)
{
	struct manager *m = *state;
	assert_int_equal(hal_notify("READY=1"), 1);
	assert_string_equal(manager_recv(m), "READY=1");
	assert_int_equal(hal_notify("WATCHDOG=1"), 1);
	assert_int_equal(hal_notify("STATUS=converged 3/3 replicas"), 1);
	assert_string_equal(manager_recv(m), "WATCHDOG=1");
	assert_string_equal(manager_recv(m), "STATUS=converged 3/3 replicas");
	assert_string_equal(manager_recv(m), "");
}

static void abstract_socket(void **state)
{
	struct manager *m = *state;
	assert_int_equal(hal_notify("READY=1"), 1);
	assert_string_equal(manager_recv(m), "READY=1");
}

static void without_notify_socket_nothing_is_sent(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(hal_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(hal_notify("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void bad_socket_is_an_error_not_a_hang(void **state)
{
	(void)state;
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(hal_notify("READY=1"), -EAFNOSUPPORT);
	setenv("NOTIFY_SOCKET", "/nonexistent/berth/notify", 1);
	assert_true(hal_notify("READY=1") < 0);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longp, 1);
	assert_int_equal(hal_notify("READY=1"), -ENAMETOOLONG);
	unsetenv("NOTIFY_SOCKET");
}

static void watchdog_usec_honours_watchdog_pid(void **state)
{
	(void)state;
	char pid[32];
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_true(hal_notify_watchdog_usec() == 0);

	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_true(hal_notify_watchdog_usec() == 30000000ull);

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_true(hal_notify_watchdog_usec() == 30000000ull);

	/* meant for another process (e.g. our parent): not ours to answer */
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_true(hal_notify_watchdog_usec() == 0);
	setenv("WATCHDOG_PID", "garbage", 1);
	assert_true(hal_notify_watchdog_usec() == 0);

	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "abc", 1);
	assert_true(hal_notify_watchdog_usec() == 0);
	setenv("WATCHDOG_USEC", "-5", 1);
	assert_true(hal_notify_watchdog_usec() == 0);
	setenv("WATCHDOG_USEC", "10s", 1);
	assert_true(hal_notify_watchdog_usec() == 0);
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ready_and_watchdog_reach_the_manager, setup, teardown),
		cmocka_unit_test_setup_teardown(abstract_socket, setup_abstract, teardown),
		cmocka_unit_test(without_notify_socket_nothing_is_sent),
		cmocka_unit_test(bad_socket_is_an_error_not_a_hang),
		cmocka_unit_test(watchdog_usec_honours_watchdog_pid),
	};
	return cmocka_run_group_tests_name("linux_notify", tests, NULL, NULL);
}
