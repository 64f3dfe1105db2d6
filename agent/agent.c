/* agent/agent.c - creates berthd's modules in order, ticks the watchdogs, tears down in reverse. */
#include "agent/agent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/api.h"
#include "agent/dispatch.h"
#include "agent/log.h"
#include "agent/loop.h"
#include "hal/invoke.h"
#include "hal/watchdog.h"

#define LOG_TAG "agent"

struct agent {
	struct loop *loop;
	struct berth_config cfg;
	struct loop_timer watchdog_timer;
	bool hw_watchdog;
	uint64_t sd_watchdog_us;

	/* inference path: local API -> dispatch (scheduler) -> replicas */
	struct hal_invoke *invoke;
	struct dispatch *dispatch;
	struct api *api;
};

/* --- inference path: local API, scheduler and dispatch ----------------------
 * The dispatcher owns the scheduler; the API hands it requests. Models and
 * replicas come from the supervisor's observers, and from api.static_replicas
 * (replicas run outside berth). */

static int inference_start(struct agent *a, const struct berth_config *cfg)
{
	struct dispatch_config dc = {
		.policy = cfg->scheduler.policy,
		.slots = (unsigned)cfg->scheduler.slots,
		.queue_cap = { (unsigned)cfg->scheduler.queue_cap_urgent, (unsigned)cfg->scheduler.queue_cap_normal,
			       (unsigned)cfg->scheduler.queue_cap_batch },
		.urgent_reserve_slots = (unsigned)cfg->scheduler.urgent_reserve_slots,
	};
	/* Every running request holds a slot; paused ones keep their transfer. */
	a->invoke = hal_invoke_create(a->loop, CONFIG_SCHED_MAX_SLOTS + DEPLOY_MAX_REPLICAS);
	if (!a->invoke)
		return -ENOMEM;
	a->dispatch = dispatch_create(a->loop, a->invoke, &dc);
	if (!a->dispatch)
		return -EINVAL;
	if (cfg->api.static_replicas[0] &&
	    dispatch_static_replicas(a->dispatch, cfg->api.static_replicas, CONFIG_DISPATCH_DEFAULT_DEADLINE_MS) < 0) {
		LOG_ERR("event=bad_static_replicas value=\"%s\"", cfg->api.static_replicas);
		return -EINVAL;
	}
	if (!IS_ENABLED(CONFIG_LOCAL_API) || !cfg->api.enabled)
		return 0;
	struct api_config ac = {
		.listen = cfg->api.listen,
		.port = (uint16_t)cfg->api.port,
		.unix_socket = cfg->api.unix_socket,
		.max_body_bytes = (size_t)cfg->api.max_body_bytes,
	};
	a->api = api_create(a->loop, &ac, a->dispatch);
	return a->api ? 0 : -EIO;
}

static void inference_stop(struct agent *a)
{
	api_destroy(a->api);
	a->api = NULL;
	dispatch_destroy(a->dispatch);
	a->dispatch = NULL;
	hal_invoke_destroy(a->invoke);
	a->invoke = NULL;
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

	if (inference_start(a, cfg) < 0)
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
	inference_stop(a);
	loop_timer_stop(a->loop, &a->watchdog_timer);
	if (a->hw_watchdog)
		hal_watchdog_close();
	free(a);
}
