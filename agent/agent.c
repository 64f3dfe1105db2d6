/* agent/agent.c - creates berthd's modules in order, ticks the watchdogs, tears down in reverse. */
#include "agent/agent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/loop.h"
#include "hal/watchdog.h"

#define LOG_TAG "agent"

struct agent {
	struct loop *loop;
	struct berth_config cfg;
	struct loop_timer watchdog_timer;
	bool hw_watchdog;
	uint64_t sd_watchdog_us;
};

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
	loop_timer_stop(a->loop, &a->watchdog_timer);
	if (a->hw_watchdog)
		hal_watchdog_close();
	free(a);
}
