/* agent/agent.c - creates berthd's modules in order, ticks the watchdogs, tears down in reverse. */
#include "agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/desired.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "agent/store.h"
#include "agent/sync.h"
#include "agent/telemetry.h"
#include "hal/watchdog.h"

#define LOG_TAG "agent"

struct agent {
	struct loop *loop;
	struct berth_config cfg;
	struct loop_timer watchdog_timer;
	bool hw_watchdog;
	uint64_t sd_watchdog_us;

	/* store, telemetry and MQTT sync */
	struct store *store;
	struct telemetry *telemetry;
	struct desired *desired;     /* command target until a supervisor is wired in */
	struct sync *sync;
};

/* --- store, telemetry and MQTT sync ------------------------------------- */

/* Reads the deployments file (the fallback desired state when the store has
 * none); NULL when unset or unreadable (logged). Caller frees. */
static char *read_deployments_file(const char *path)
{
	if (!path[0])
		return NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		LOG_WRN("event=deployments_file_unreadable path=%s err=%s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(CONFIG_CONFIG_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, CONFIG_CONFIG_MAX_BYTES + 1, f) : 0;
	fclose(f);
	if (!buf || n > CONFIG_CONFIG_MAX_BYTES) {
		LOG_WRN("event=deployments_file_too_large path=%s max=%d", path, CONFIG_CONFIG_MAX_BYTES);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int sync_start(struct agent *a, const struct berth_config *cfg)
{
	char path[CONFIG_STR_MAX + 16];
	if (mkdir(cfg->data_dir, 0750) < 0 && errno != EEXIST) {
		LOG_ERR("event=data_dir_unusable path=%s err=%s", cfg->data_dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/berth.db", cfg->data_dir);
	struct store_opts so = {
		.path = path,
		.budget_kb = (uint32_t)cfg->telemetry.disk_budget_kb,
		.sync_full = strcmp(cfg->telemetry.synchronous, "full") == 0,
	};
	int rc = store_open(&so, &a->store);
	if (rc) {
		LOG_ERR("event=store_open_failed path=%s err=%s", path, strerror(-rc));
		return rc;
	}
	a->desired = desired_create();
	if (!a->desired)
		return -ENOMEM;
	a->sync = sync_create(a->loop, a->store, cfg, &desired_ops, a->desired);
	if (!a->sync)
		return -ENOMEM;
	struct telemetry_opts to = {
		.data_dir = cfg->data_dir,
		.interval_ms = (uint32_t)cfg->telemetry.interval_ms,
		.after_tick = sync_kick,
		.arg = a->sync,
	};
	a->telemetry = telemetry_create(a->loop, a->store, &to);
	if (!a->telemetry)
		return -ENOMEM;
	if ((rc = telemetry_register(a->telemetry, "uplink", sync_telemetry_source, a->sync)) ||
	    (rc = telemetry_register(a->telemetry, "deployments", desired_telemetry_source, a->desired)))
		return rc;
	/* Offline autonomy: the last persisted desired state, else the file. */
	char *fallback = read_deployments_file(cfg->deployments_file);
	rc = sync_boot(a->sync, fallback);
	free(fallback);
	if (rc && rc != -ENOENT)
		LOG_WRN("event=no_desired_state err=%s", strerror(-rc));
	return 0;
}

static void sync_stop(struct agent *a)
{
	telemetry_destroy(a->telemetry);
	sync_destroy(a->sync);
	desired_destroy(a->desired);
	store_close(a->store);
}

static void on_watchdog(void *arg)
{
	struct agent *a = arg;
	/* Kicked from the loop itself: if the loop stalls, the kicks stop. */
	if (a->hw_watchdog)
		hal_watchdog_kick();
	if (a->sd_watchdog_us)
		(void)hal_notify("WATCHDOG=1");
}

struct agent *agent_create(struct loop *l, const struct berth_config *cfg)
{
	struct agent *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->loop = l;
	a->cfg = *cfg;
	loop_timer_init(&a->watchdog_timer, on_watchdog, a);

	if (IS_ENABLED(CONFIG_HW_WATCHDOG) && cfg->watchdog.enabled) {
		int rc = hal_watchdog_open(cfg->watchdog.device, (unsigned)cfg->watchdog.timeout_s);
		if (rc == 0)
			a->hw_watchdog = true;
		else
			LOG_WRN("event=watchdog_unavailable device=%s err=%s", cfg->watchdog.device, strerror(-rc));
	}
	a->sd_watchdog_us = hal_notify_watchdog_usec();

	uint64_t period_us = 0;
	if (a->hw_watchdog)
		period_us = (uint64_t)cfg->watchdog.timeout_s * 1000000u / 3;
	if (a->sd_watchdog_us && (!period_us || a->sd_watchdog_us / 2 < period_us))
		period_us = a->sd_watchdog_us / 2;
	if (period_us && loop_timer_start_us(l, &a->watchdog_timer, 0, period_us) < 0)
		goto errout;

	if (sync_start(a, cfg) < 0)
		goto errout;

	LOG_INF("event=started device=%s data_dir=%s", cfg->device_id, cfg->data_dir);
	return a;

errout:
	agent_destroy(a);
	return NULL;
}

int agent_reload(struct agent *a, const struct berth_config *cfg)
{
	int lvl = log_level_parse(cfg->log_level);
	if (lvl >= 0)
		log_set_level((enum log_level)lvl);
	if (strcmp(cfg->device_id, a->cfg.device_id) || strcmp(cfg->data_dir, a->cfg.data_dir))
		LOG_WRN("event=reload_needs_restart keys=device_id,data_dir");
	LOG_INF("event=reloaded log_level=%s", log_level_name(log_get_level()));
	return 0;
}

void agent_destroy(struct agent *a)
{
	if (!a)
		return;
	sync_stop(a);
	loop_timer_stop(a->loop, &a->watchdog_timer);
	if (a->hw_watchdog)
		hal_watchdog_close();
	free(a);
}
