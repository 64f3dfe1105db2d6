/* tests/unit/linux/test_watchdog.c - the hardware watchdog port against a FIFO standing in for /dev/watchdog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hal/watchdog.h"

struct fx {
	char dir[64];
	char path[96];
	int rd;            /* the "driver" end: what berth writes arrives here */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/berth-wd-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/watchdog", f->dir);
	if (mkfifo(f->path, 0600) < 0)
		return -1;
	f->rd = open(f->path, O_RDONLY | O_NONBLOCK);
	*state = f;
	return f->rd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	hal_watchdog_close();
	close(f->rd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static ssize_t drain(struct fx *f, char *buf, size_t len)
{
	ssize_t n = read(f->rd, buf, len);
	return n < 0 && errno == EAGAIN ? 0 : n;
}

/* Each kick reaches the device (by the keepalive ioctl, or a write where the
 * device does not take it, as here); close disarms it with the magic 'V'. */
static void kicks_then_magic_close(void **state)
{
	struct fx *f = *state;
	char buf[64];
	assert_int_equal(hal_watchdog_open(f->path, 10), 0);
	assert_int_equal(hal_watchdog_open(f->path, 10), 0); /* already open: no second fd */
	assert_int_equal(drain(f, buf, sizeof(buf)), 0);
	hal_watchdog_kick();
	hal_watchdog_kick();
	hal_watchdog_kick();
	assert_int_equal(drain(f, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "kkk", 3);
	hal_watchdog_close();
	assert_int_equal(drain(f, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'V');
	assert_int_equal(drain(f, buf, sizeof(buf)), 0); /* EOF: the device was closed */
	hal_watchdog_kick();                               /* closed: a no-op */
	hal_watchdog_close();                              /* twice: safe */
}

/* A missing device is -ENOENT (berthd carries on without it); a kick never
 * blocks, even when nothing drains the device. */
static void missing_device_and_full_device(void **state)
{
	struct fx *f = *state;
	char p[128];
	snprintf(p, sizeof(p), "%s/none", f->dir);
	assert_int_equal(hal_watchdog_open(p, 10), -ENOENT);
	hal_watchdog_kick(); /* not open: a no-op */
	assert_int_equal(hal_watchdog_open(f->path, 10), 0);
	for (int i = 0; i < 200000; i++) /* far beyond a pipe's buffer */
		hal_watchdog_kick();
	char buf[4096];
	assert_true(drain(f, buf, sizeof(buf)) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(kicks_then_magic_close, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_device_and_full_device, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
