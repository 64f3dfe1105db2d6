/* agent/cmd/ctl_fmt.h - berthctl's output: device status, reported state, replies, events and telemetry as tables or JSON. */
#ifndef BERTH_CTL_FMT_H
#define BERTH_CTL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What berthctl knows about a device's presence, from its retained status
 * message (berth/v1/<device>/status) and the timestamps of anything else it
 * published. */
struct ctl_status {
	bool known;              /* a status message was seen */
	bool online;
	int64_t since_ms;        /* the status message's ts (wall ms): when it went online or offline; 0 unknown */
	int64_t last_seen_ms;    /* newest ts from the device (status, state, telemetry); 0 unknown */
	char version[32];        /* berthd version from the status; "" unknown */
};

/* Parses a status payload {"online":bool,"ts":ms,"version":".."} into st
 * (known = true). Returns 0, or -EINVAL when it is not such an object (st
 * unchanged). */
int ctl_status_parse(const char *json, size_t len, struct ctl_status *st) __attribute__((warn_unused_result));
/* Notes a timestamp (wall ms) seen in anything the device published. */
void ctl_status_seen(struct ctl_status *st, int64_t ts_ms);

/* "12 s ago", "3 min ago", "2 h ago", "4 d ago" ("just now" under 1 s;
 * "in the future" when then_ms is ahead of now_ms by more than 1 s). */
void ctl_fmt_age(int64_t now_ms, int64_t then_ms, char *buf, size_t len);
/* "5 s", "0.5 s": a duration given in ms. */
void ctl_fmt_seconds(uint32_t ms, char *buf, size_t len);
/* Local time "YYYY-MM-DD HH:MM:SS", or "-" for 0. */
void ctl_fmt_time(int64_t ms, char *buf, size_t len);
/* "online since 2025-11-27 18:31:02 (3 min ago)", "offline since ... (...)",
 * "offline, last seen ... (...)", "offline (time unknown)", "never seen". */
void ctl_fmt_presence(const struct ctl_status *st, int64_t now_ms, char *buf, size_t len);
/* "device gw-01 did not answer within 5 s; last seen offline 3 min ago" and
 * its variants for an online or never-seen device. */
void ctl_fmt_no_answer(const char *device, uint32_t timeout_ms, const struct ctl_status *st, int64_t now_ms,
		       char *buf, size_t len);

/* One device of `berthctl devices`. */
struct ctl_device {
	char id[64];
	struct ctl_status st;
};
/* Prints the devices sorted by id: a table (DEVICE STATUS SINCE LAST-SEEN
 * VERSION), or with json one array of objects. */
void ctl_fmt_devices(FILE *out, struct ctl_device *devs, size_t n, int64_t now_ms, bool json);

/* Prints a reported state (berth/v1/<device>/state/reported, or the result
 * of get_state): a presence line, one row per deployment (DEPLOYMENT CLASS
 * READY/DESIRED MIN-MAX HEALTH CIRCUIT RESTARTS SLA), when the state
 * carries them SLA compliance per class and the last chaos run (kills,
 * mean/p95/max time to replacement, failed requests; nothing before the
 * first run). Fields the state lacks print as
 * "-". With json: {"device":..,"status":{..},"state":STATE}. Returns 0, or
 * -EINVAL when state_json is not a JSON object (nothing printed). */
int ctl_fmt_state(FILE *out, const char *device, const struct ctl_status *st, const char *state_json, size_t len,
		  int64_t now_ms, bool json) __attribute__((warn_unused_result));

/* Prints the outcome of a command reply {"id","ok","result"|"error"}:
 * accepted on out, refused on err (with its code and message). what is
 * deploy's summary of what was sent (e.g. "2 deployments: a, b"), may be
 * NULL. With json the reply object goes to out as it came. Returns 0 when
 * accepted, 1 when refused, -EINVAL when the reply is malformed. */
/* The "site" object of a reported state: role, leader, lease, members
 * (up, headroom, last heard) and each site deployment's assignment, or
 * "DEVICE is not in a site". json: the object itself. 0, or -EINVAL when
 * the state is not a JSON object. */
int ctl_fmt_site(FILE *out, const char *device, const char *state_json, size_t len, bool json);

int ctl_fmt_reply(FILE *out, FILE *err, const char *verb, const char *device, const char *reply, size_t len,
		  const char *what, bool json) __attribute__((warn_unused_result));

enum ctl_stream { CTL_STREAM_EVENTS = 0, CTL_STREAM_TELEMETRY };
/* Prints the rows of one events or telemetry batch {"rows":[{"seq","ts",
 * "data"}...]}: fixed-width table rows (the header first when *header is
 * false; it is then set), or with json one object per line. At most max_rows
 * rows (0: all). Returns the number of rows printed, or -EINVAL when the
 * batch is malformed. */
int ctl_fmt_batch(FILE *out, enum ctl_stream kind, const char *batch, size_t len, bool json, bool *header,
		  uint32_t max_rows) __attribute__((warn_unused_result));

#endif
