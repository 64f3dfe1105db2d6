/* ports/sim/sys.c - scripted node and container statistics, and a simulated watchdog. */
#include "hal/sys.h"
#include "hal/watchdog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ports/sim/sim.h"
#include "ports/sim/world.h"

#define SIM_MAX_PIDS 64

static struct hal_node_stats g_node;
static struct { int pid; struct hal_ctr_stats st; } g_ctrs[SIM_MAX_PIDS];
static char g_machine_id[64];
static int g_inject_err;
static unsigned g_inject_n;
static unsigned g_kicks;
static int g_wd_open;

static void sys_defaults(void)
{
	memset(&g_node, 0, sizeof(g_node));
	g_node.ncpu = 2;
	g_node.mem_total_bytes = 1024ull << 20;
	g_node.mem_avail_bytes = 768ull << 20;
	g_node.disk_total_bytes = 8ull << 30;
	g_node.disk_free_bytes = 6ull << 30;
	g_node.temp_mc = 45000;
	memset(g_ctrs, 0, sizeof(g_ctrs));
	snprintf(g_machine_id, sizeof(g_machine_id), "sim-0000");
	g_inject_err = 0;
	g_inject_n = 0;
	g_kicks = 0;
	g_wd_open = 0;
}

static int take_injected(void)
{
	if (!g_inject_n)
		return 0;
	g_inject_n--;
	return g_inject_err;
}

void sim_sys_set_node(const struct hal_node_stats *st) { g_node = *st; }

int sim_sys_set_ctr(int pid, const struct hal_ctr_stats *st)
{
	int free_slot = -1;
	for (int i = 0; i < SIM_MAX_PIDS; i++) {
		if (g_ctrs[i].pid == pid) {
			g_ctrs[i].st = *st;
			return 0;
		}
		if (!g_ctrs[i].pid && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return -ENOSPC;
	g_ctrs[free_slot].pid = pid;
	g_ctrs[free_slot].st = *st;
	return 0;
}

void sim_sys_clear_ctr(int pid)
{
	for (int i = 0; i < SIM_MAX_PIDS; i++)
		if (g_ctrs[i].pid == pid)
			g_ctrs[i].pid = 0;
}

void sim_sys_set_machine_id(const char *id) { snprintf(g_machine_id, sizeof(g_machine_id), "%s", id); }
void sim_sys_inject_error(int err, unsigned n) { g_inject_err = err; g_inject_n = n; }

int hal_sys_node_stats(const char *disk_path, struct hal_node_stats *out)
{
	(void)disk_path;
	int err = take_injected();
	if (err)
		return err;
	*out = g_node;
	return 0;
}

int hal_sys_ctr_stats(int pid, struct hal_ctr_stats *out)
{
	int err = take_injected();
	if (err)
		return err;
	for (int i = 0; i < SIM_MAX_PIDS; i++) {
		if (pid > 0 && g_ctrs[i].pid == pid) {
			*out = g_ctrs[i].st;
			return 0;
		}
	}
	return -ESRCH;
}

int hal_sys_machine_id(char *buf, size_t len)
{
	if (strlen(g_machine_id) >= len)
		return -ENOSPC;
	strcpy(buf, g_machine_id);
	return 0;
}

unsigned hal_sys_ncpu(void) { return g_node.ncpu ? g_node.ncpu : 1; }

int hal_watchdog_open(const char *path, unsigned timeout_s)
{
	(void)path;
	(void)timeout_s;
	g_wd_open = 1;
	return 0;
}
void hal_watchdog_kick(void)
{
	if (g_wd_open)
		g_kicks++;
}
void hal_watchdog_close(void) { g_wd_open = 0; }
unsigned sim_watchdog_kicks(void) { return g_kicks; }
int hal_notify(const char *state)
{
	(void)state;
	return 0;
}
unsigned long long hal_notify_watchdog_usec(void) { return 0; }

void sim_clock_reset(void);
void sim_world_reset(void);
void sim_reset(void)
{
	sim_clock_reset();
	sys_defaults();
	sim_world_reset();
	sim_images_reset();
}

__attribute__((constructor)) static void sim_sys_init(void) { sys_defaults(); }

/* The simulated gateway has no process of its own to read. */
int hal_sys_proc_stats(struct hal_proc_stats *out)
{
	memset(out, 0, sizeof(*out));
	return -ENOSYS;
}

void hal_sys_tune_memory(void) {}
void hal_sys_trim_memory(void) {}
