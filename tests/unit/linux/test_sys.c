/* tests/unit/linux/test_sys.c - the linux port's /proc, /sys and cgroup readers against captured layouts (v1, v2, hybrid). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal/sys.h"
#include "ports/linux/sys_internal.h"

/* The tests run from the repository root; BERTH_SRCDIR overrides it. */
static const char *fixture(const char *layout)
{
	static char path[512];
	const char *src = getenv("BERTH_SRCDIR");
	snprintf(path, sizeof(path), "%s/tests/fixtures/linux/%s", src ? src : ".", layout);
	return path;
}

static char *slurp(const char *layout, const char *rel)
{
	char path[768];
	snprintf(path, sizeof(path), "%s/%s", fixture(layout), rel);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open fixture %s", path);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

#define V1_ID "3f1c0a9d2b7e4c5f8a6b1d0e9c8f7a6b5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a"
#define V2_DOCKER_ID "9b2e5d7c1a3f4e6d8c0b2a4f6e8d0c2b4a6f8e0d2c4b6a8f0e2d4c6b8a0f2e4d"
#define V2_PODMAN_ID "c0ffee11d00d4a5b9c8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
#define HY_ID "f75ccc7fae6b611e83f7aceedd252de6845040377b0e3e673f4e3128b0b4c034"

static int teardown_root(void **state)
{
	(void)state;
	linux_sys_set_root(NULL);
	return 0;
}

static void assert_dir(const char *layout, int pid, enum linux_cg c, const char *want)
{
	struct linux_cg_mounts m;
	struct linux_cg_paths p;
	char rel[64], dir[LINUX_CG_PATH_MAX];
	assert_int_equal(linux_cg_parse_mountinfo(slurp(layout, "proc/self/mountinfo"), &m), 0);
	snprintf(rel, sizeof(rel), "proc/%d/cgroup", pid);
	assert_int_equal(linux_cg_parse_proc(slurp(layout, rel), &p), 0);
	if (!want) {
		assert_int_equal(linux_cg_dir(&m, &p, c, dir, sizeof(dir)), -ENOENT);
		return;
	}
	assert_int_equal(linux_cg_dir(&m, &p, c, dir, sizeof(dir)), 0);
	assert_string_equal(dir, want);
}

/* --- cgroup v1: podman with cgroupfs, cpu and cpuacct co-mounted -------- */

static void v1_mounts_found_by_controller(void **state)
{
	(void)state;
	struct linux_cg_mounts m;
	assert_int_equal(linux_cg_parse_mountinfo(slurp("cgroup-v1", "proc/self/mountinfo"), &m), 0);
	assert_string_equal(m.mnt[LINUX_CG_MEMORY], "/sys/fs/cgroup/memory");
	assert_string_equal(m.mnt[LINUX_CG_CPUACCT], "/sys/fs/cgroup/cpu,cpuacct");
	assert_string_equal(m.mnt[LINUX_CG_PIDS], "/sys/fs/cgroup/pids");
	assert_string_equal(m.mnt[LINUX_CG_UNIFIED], "");
	assert_string_equal(m.root[LINUX_CG_MEMORY], "/");
}

static void v1_container_dirs_derived_from_proc(void **state)
{
	(void)state;
	assert_dir("cgroup-v1", 3107, LINUX_CG_MEMORY, "/sys/fs/cgroup/memory/libpod_parent/libpod-" V1_ID);
	assert_dir("cgroup-v1", 3107, LINUX_CG_CPUACCT, "/sys/fs/cgroup/cpu,cpuacct/libpod_parent/libpod-" V1_ID);
	assert_dir("cgroup-v1", 3107, LINUX_CG_PIDS, "/sys/fs/cgroup/pids/libpod_parent/libpod-" V1_ID);
	assert_dir("cgroup-v1", 3107, LINUX_CG_UNIFIED, NULL);
}

static void v1_container_stats(void **state)
{
	(void)state;
	struct hal_ctr_stats st;
	linux_sys_set_root(fixture("cgroup-v1"));
	assert_int_equal(hal_sys_ctr_stats(3107, &st), 0);
	/* usage_in_bytes less total_inactive_file */
	assert_int_equal(st.mem_bytes, 52428800 - 12582912);
	assert_int_equal(st.mem_limit_bytes, 134217728);
	assert_int_equal(st.cpu_usage_ns, 987654321000ull);
	assert_int_equal(st.pids, 7);
	/* eth0 + wlan0; lo is not counted */
	assert_int_equal(st.net_rx_bytes, 1048576 + 4096);
	assert_int_equal(st.net_tx_bytes, 524288 + 2048);
}

static void v1_node_stats(void **state)
{
	(void)state;
	struct hal_node_stats st;
	linux_sys_set_root(fixture("cgroup-v1"));
	assert_int_equal(hal_sys_node_stats(".", &st), 0);
	assert_int_equal(st.cpu_busy_ticks, 81234 + 512 + 40321 + 0 + 1876 + 0);
	assert_int_equal(st.cpu_total_ticks, 81234 + 512 + 40321 + 1876 + 1203344 + 2210);
	assert_int_equal(st.ncpu, 4);
	assert_int_equal(st.mem_total_bytes, 1000000ull * 1024);
	assert_int_equal(st.mem_avail_bytes, 600000ull * 1024);
	assert_float_equal(st.load1, 1.25, 1e-9);
	assert_int_equal(st.uptime_s, 86400);
	assert_int_equal(st.temp_mc, 61234);
	/* the disk path is the caller's, read for real */
	assert_true(st.disk_total_bytes > 0);
	assert_true(st.disk_free_bytes <= st.disk_total_bytes);
}

static void v1_machine_id(void **state)
{
	(void)state;
	char id[64];
	linux_sys_set_root(fixture("cgroup-v1"));
	assert_int_equal(hal_sys_machine_id(id, sizeof(id)), 0);
	assert_string_equal(id, "0123456789abcdef0123456789abcdef");
	assert_int_equal(hal_sys_machine_id(id, 16), -ENOSPC);
}

/* --- cgroup v2: systemd scopes of docker and podman ---------------------- */

static void v2_container_dirs_derived_from_proc(void **state)
{
	(void)state;
	assert_dir("cgroup-v2", 1001, LINUX_CG_UNIFIED, "/sys/fs/cgroup/system.slice/docker-" V2_DOCKER_ID ".scope");
	assert_dir("cgroup-v2", 2002, LINUX_CG_UNIFIED,
		   "/sys/fs/cgroup/machine.slice/libpod-" V2_PODMAN_ID ".scope/container");
	assert_dir("cgroup-v2", 1001, LINUX_CG_MEMORY, NULL);
	assert_dir("cgroup-v2", 1001, LINUX_CG_CPUACCT, NULL);
}

static void v2_docker_scope_stats(void **state)
{
	(void)state;
	struct hal_ctr_stats st;
	linux_sys_set_root(fixture("cgroup-v2"));
	assert_int_equal(hal_sys_ctr_stats(1001, &st), 0);
	assert_int_equal(st.mem_bytes, 73400320 - 8388608);
	assert_int_equal(st.mem_limit_bytes, 0); /* "max" */
	assert_int_equal(st.cpu_usage_ns, 4500123ull * 1000);
	assert_int_equal(st.pids, 12);
	assert_int_equal(st.net_rx_bytes, 123456789);
	assert_int_equal(st.net_tx_bytes, 98765432);
}

static void v2_podman_scope_stats(void **state)
{
	(void)state;
	struct hal_ctr_stats st;
	linux_sys_set_root(fixture("cgroup-v2"));
	assert_int_equal(hal_sys_ctr_stats(2002, &st), 0);
	assert_int_equal(st.mem_bytes, 268435456 - 33554432);
	assert_int_equal(st.mem_limit_bytes, 536870912);
	assert_int_equal(st.cpu_usage_ns, 1000000);
	assert_int_equal(st.pids, 3);
}

static void v2_node_stats_and_machine_id_fallback(void **state)
{
	(void)state;
	struct hal_node_stats st;
	char id[64];
	linux_sys_set_root(fixture("cgroup-v2"));
	assert_int_equal(hal_sys_node_stats(".", &st), 0);
	assert_int_equal(st.cpu_busy_ticks, 500 + 100 + 300 + 10 + 40);
	assert_int_equal(st.cpu_total_ticks, 950 + 8000 + 50);
	assert_int_equal(st.ncpu, 2);
	assert_int_equal(st.mem_avail_bytes, 1536000ull * 1024);
	assert_int_equal(st.uptime_s, 12);
	assert_float_equal(st.load1, 0.05, 1e-9);
	/* hottest zone; the zone that fails to read is skipped */
	assert_int_equal(st.temp_mc, 52750);
	/* no /etc/machine-id in this layout: the dbus copy is used */
	assert_int_equal(hal_sys_machine_id(id, sizeof(id)), 0);
	assert_string_equal(id, "0fedcba9876543210fedcba987654321");
}

/* --- hybrid: captured from a podman container on a hybrid host ----------- */

static void hybrid_v1_controllers_win(void **state)
{
	(void)state;
	struct linux_cg_mounts m;
	assert_int_equal(linux_cg_parse_mountinfo(slurp("hybrid", "proc/self/mountinfo"), &m), 0);
	assert_string_equal(m.mnt[LINUX_CG_CPUACCT], "/sys/fs/cgroup/cpuacct");
	assert_string_equal(m.mnt[LINUX_CG_UNIFIED], "/sys/fs/cgroup/unified");
	assert_dir("hybrid", 20490, LINUX_CG_MEMORY, "/sys/fs/cgroup/memory/libpod_parent/libpod-" HY_ID);
	assert_dir("hybrid", 20490, LINUX_CG_UNIFIED, "/sys/fs/cgroup/unified/libpod_parent/libpod-" HY_ID);
}

static void hybrid_container_stats(void **state)
{
	(void)state;
	struct hal_ctr_stats st;
	linux_sys_set_root(fixture("hybrid"));
	assert_int_equal(hal_sys_ctr_stats(20490, &st), 0);
	assert_int_equal(st.mem_bytes, 528384);
	assert_int_equal(st.mem_limit_bytes, 67108864); /* podman run -m 64m */
	/* cpuacct.usage (ns) rather than the unified cpu.stat (us) */
	assert_int_equal(st.cpu_usage_ns, 41907301);
	assert_int_equal(st.pids, 1);
	/* host networking: the host's interfaces less lo */
	assert_int_equal(st.net_rx_bytes, 255732629 + 284);
	assert_int_equal(st.net_tx_bytes, 356601 + 524);
}

static void hybrid_node_without_thermal_zones(void **state)
{
	(void)state;
	struct hal_node_stats st;
	linux_sys_set_root(fixture("hybrid"));
	assert_int_equal(hal_sys_node_stats(".", &st), 0);
	assert_int_equal(st.ncpu, 2);
	assert_int_equal(st.temp_mc, INT32_MIN);
	assert_int_equal(st.mem_total_bytes, 24684092ull * 1024);
}

/* --- edges ------------------------------------------------------------- */

static void gone_process_is_esrch(void **state)
{
	(void)state;
	struct hal_ctr_stats st;
	linux_sys_set_root(fixture("cgroup-v1"));
	assert_int_equal(hal_sys_ctr_stats(999999, &st), -ESRCH);
	assert_int_equal(hal_sys_ctr_stats(0, &st), -ESRCH);
}

static void namespaced_mount_root_is_stripped(void **state)
{
	(void)state;
	struct linux_cg_mounts m;
	struct linux_cg_paths p;
	char dir[LINUX_CG_PATH_MAX];
	const char *mi = "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime shared:9 master:2 - cgroup cgroup rw,memory\n"
			 "36 31 0:33 / /sys/fs/cgroup/my\\040pids rw - cgroup cgroup rw,pids\n";
	assert_int_equal(linux_cg_parse_mountinfo(mi, &m), 0);
	assert_string_equal(m.root[LINUX_CG_MEMORY], "/docker/abc");
	assert_string_equal(m.mnt[LINUX_CG_PIDS], "/sys/fs/cgroup/my pids");
	assert_int_equal(linux_cg_parse_proc("5:pids:/x\n4:memory:/docker/abc/sub\n", &p), 0);
	assert_int_equal(linux_cg_dir(&m, &p, LINUX_CG_MEMORY, dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/memory/sub");
	assert_int_equal(linux_cg_dir(&m, &p, LINUX_CG_PIDS, dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/my pids/x");
	/* a path that is the mount's root maps to the mount point */
	assert_int_equal(linux_cg_parse_proc("4:memory:/docker/abc\n", &p), 0);
	assert_int_equal(linux_cg_dir(&m, &p, LINUX_CG_MEMORY, dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/memory");
	/* /docker/abcdef is not under /docker/abc */
	assert_int_equal(linux_cg_parse_proc("4:memory:/docker/abcdef\n", &p), 0);
	assert_int_equal(linux_cg_dir(&m, &p, LINUX_CG_MEMORY, dir, sizeof(dir)), 0);
	assert_string_equal(dir, "/sys/fs/cgroup/memory/docker/abcdef");
}

static void malformed_input_is_refused(void **state)
{
	(void)state;
	struct hal_node_stats st = { 0 };
	struct linux_cg_paths p;
	uint64_t v, rx, tx;
	double d;
	assert_int_equal(linux_parse_stat("", &st), -EINVAL);
	assert_int_equal(linux_parse_stat("cpu  1 2\n", &st), -EINVAL);
	assert_int_equal(linux_parse_meminfo("MemFree: 10 kB\n", &st), -EINVAL);
	assert_int_equal(linux_parse_loadavg("x", &d), -EINVAL);
	assert_int_equal(linux_parse_uptime("", &v), -EINVAL);
	assert_int_equal(linux_parse_net_dev("eth0: 1 2\n", &rx, &tx), -EINVAL);
	assert_int_equal(linux_cg_parse_proc("garbage\n", &p), -EINVAL);
	assert_int_equal(linux_cg_parse_proc("1:name=systemd:/x\n", &p), -ENOENT);
	assert_int_equal(linux_cg_parse_proc("4:memory:relative\n", &p), -EINVAL);
	assert_int_equal(linux_parse_u64("12abc", &v), -EINVAL);
	assert_int_equal(linux_parse_u64("99999999999999999999999", &v), -EINVAL);
	assert_int_equal(linux_parse_u64("max\n", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(linux_parse_u64(" 42\n", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(linux_parse_keyed_u64("a 1\nab 2\n", "ab", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(linux_parse_keyed_u64("a 1\n", "b", &v), -ENOENT);
}

static void meminfo_without_memavailable(void **state)
{
	(void)state;
	struct hal_node_stats st = { 0 };
	assert_int_equal(linux_parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n", &st), 0);
	assert_int_equal(st.mem_total_bytes, 1000 * 1024);
	assert_int_equal(st.mem_avail_bytes, 420 * 1024);
}

/* The real host: whatever its layout, the readers work and agree with it. */
static void live_host(void **state)
{
	(void)state;
	struct hal_node_stats st;
	struct hal_ctr_stats cs;
	linux_sys_set_root(NULL);
	assert_int_equal(hal_sys_node_stats("/", &st), 0);
	assert_true(st.ncpu >= 1);
	assert_true(st.mem_total_bytes > 0 && st.mem_avail_bytes <= st.mem_total_bytes);
	assert_true(st.cpu_busy_ticks <= st.cpu_total_ticks);
	assert_true(st.disk_total_bytes > 0);
	assert_true(hal_sys_ncpu() >= 1);
	int rc = hal_sys_ctr_stats(getpid(), &cs);
	/* the root cgroup of a pure v2 host has no memory.current */
	assert_true(rc == 0 || rc == -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(v1_mounts_found_by_controller, teardown_root),
		cmocka_unit_test_teardown(v1_container_dirs_derived_from_proc, teardown_root),
		cmocka_unit_test_teardown(v1_container_stats, teardown_root),
		cmocka_unit_test_teardown(v1_node_stats, teardown_root),
		cmocka_unit_test_teardown(v1_machine_id, teardown_root),
		cmocka_unit_test_teardown(v2_container_dirs_derived_from_proc, teardown_root),
		cmocka_unit_test_teardown(v2_docker_scope_stats, teardown_root),
		cmocka_unit_test_teardown(v2_podman_scope_stats, teardown_root),
		cmocka_unit_test_teardown(v2_node_stats_and_machine_id_fallback, teardown_root),
		cmocka_unit_test_teardown(hybrid_v1_controllers_win, teardown_root),
		cmocka_unit_test_teardown(hybrid_container_stats, teardown_root),
		cmocka_unit_test_teardown(hybrid_node_without_thermal_zones, teardown_root),
		cmocka_unit_test_teardown(gone_process_is_esrch, teardown_root),
		cmocka_unit_test_teardown(namespaced_mount_root_is_stripped, teardown_root),
		cmocka_unit_test_teardown(malformed_input_is_refused, teardown_root),
		cmocka_unit_test_teardown(meminfo_without_memavailable, teardown_root),
		cmocka_unit_test_teardown(live_host, teardown_root),
	};
	return cmocka_run_group_tests_name("linux_sys", tests, NULL, NULL);
}
