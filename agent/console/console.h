/* agent/console/console.h - the device's MQTT contract: topics, status with Last Will, reported state, commands, outbox drain. */
#ifndef BERTH_CONSOLE_H
#define BERTH_CONSOLE_H

#include <stdbool.h>

#include "agent/model/config.h"
#include "agent/console/control.h"

struct loop;
struct store;
struct collector_buf;
struct console;

/* Topics live under berth/v1/<device_id>/ (docs/mqtt-api.md):
 *   status          retained, QoS 1, Last Will {"online":false}
 *   state/reported  retained, QoS 1, on connect and on change (see console_state_changed)
 *   state/desired   subscribed, retained (console-owned)
 *   cmd/<verb>      subscribed (cmd/+), replies to the v5 response topic or cmd/<verb>/reply
 *   telemetry, events  QoS 1 batches from the outbox
 * Creates the uplink (connecting at once, never blocking), the forwarder and
 * the control from cfg; store, ops and target_ctx are borrowed. NULL on
 * failure (logged). */
struct console *console_create(struct loop *l, struct store *st, const struct berth_config *cfg,
			 const struct control_target_ops *ops, void *target_ctx);
/* Publishes status offline (retained), disconnects cleanly, frees. NULL is safe. */
void console_destroy(struct console *s);

/* Start-up desired state (see control_boot). */
int console_boot(struct console *s, const char *fallback_json) __attribute__((warn_unused_result));

/* Applies a reload's broker keys and the telemetry keys of the uplink (batch_max_bytes,
 * inflight_max, state_refresh_s): status offline is published (a clean DISCONNECT does not
 * fire the Last Will), the uplink, outbox and reported-state publisher are made again from
 * cfg (broker.enabled false: none) and the new uplink connects at once. The outbox's rows
 * stay in the store; what was in flight is sent again. The uplink's counters start over.
 * Returns 0 or -ENOMEM (logged). */
int console_reconfigure(struct console *s, const struct berth_config *cfg) __attribute__((warn_unused_result));

/* New rows are in the outbox: send what the window allows. */
void console_kick(void *s);
/* A command changed the state: the reported state is republished at once
 * (unchanged content is not). Other changes are found by a check once a
 * second: a change of the state's structure (replicas, health, circuit,
 * engine, ...) goes out then, a change of the request figures alone at most
 * every telemetry.state_refresh_s (agent/reporter.h). */
void console_state_changed(void *s);

/* Writes the reported state (control_report) into buf: GET /v1/state.
 * Returns its length or -ENOSPC. */
int console_report(struct console *s, char *buf, size_t len) __attribute__((warn_unused_result));

/* Telemetry source "uplink": connection, forwarding and command counters. */
void console_telemetry_source(void *s, struct collector_buf *b);

/* Whether the store holds a desired state from the console (a deploy or
 * state/desired); then the deployments file must not override it. */
bool console_has_desired_state(struct console *s);

/* Prometheus series of the uplink (connected, connects, reconnects, failures) and the
 * outbox (rows and bytes buffered, rows sent and acknowledged, rows dropped by the disk
 * budget) into buf (len bytes); returns the length needed, as snprintf does. */
size_t console_render_metrics(struct console *s, char *buf, size_t len);

/* Topic of name ("status", "telemetry", ...) for this device. */
const char *console_topic(const struct console *s, const char *name);

#endif
