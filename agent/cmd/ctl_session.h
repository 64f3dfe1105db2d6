/* agent/cmd/ctl_session.h - berthctl's broker session: the state of one run, connecting, waiting for retained messages. */
#ifndef BERTH_CTL_SESSION_H
#define BERTH_CTL_SESSION_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "agent/cmd/ctl_args.h"
#include "agent/cmd/ctl_fmt.h"
#include "agent/console/uplink.h"
#include "agent/model/config.h"
#include "agent/trust/envelope.h"

#define CTL_MAX_SUBS 8
#define CTL_TOPIC_MAX 256

struct ctl_fleet;

struct ctl {
	const struct ctl_args *a;
	struct berth_config cfg;
	struct loop *loop;
	struct uplink *up;
	char client_id[64];
	char subs[CTL_MAX_SUBS][CTL_TOPIC_MAX];
	int sub_qos[CTL_MAX_SUBS];
	unsigned nsubs;
	char console_topic[CTL_TOPIC_MAX];
	bool sync_sent, synced;
	/* Every message but our own sync: berthctl.c's or the fleet's handler. */
	void (*on_msg)(struct ctl *c, const struct uplink_msg *m);
	struct ctl_fleet *fleet;        /* devices --group, group commands, rollout; owned */
	uint32_t max_queued;            /* unacknowledged publishes at most; 0: 16 */

	/* One device's topics. */
	char t_status[CTL_TOPIC_MAX], t_reported[CTL_TOPIC_MAX], t_events[CTL_TOPIC_MAX], t_telemetry[CTL_TOPIC_MAX];
	char t_reply_v5[CTL_TOPIC_MAX], t_reply_v311[CTL_TOPIC_MAX];
	struct ctl_status st;
	char *reported;                 /* retained state/reported, owned */
	size_t reported_len;

	/* The command in flight and its reply. */
	char cmd_id[64];
	char *reply;                    /* owned */
	size_t reply_len;

	/* devices */
	struct ctl_device *devs;
	size_t ndevs, devs_dropped;

	/* events / telemetry */
	bool header;
	uint32_t rows;
	bool got_batch;
	int stream_err;

	/* Signing: the key of --sign-key / $BERTH_SIGN_KEY; has_key false: unsigned. */
	bool has_key;
	char key_id[ENVELOPE_KEY_ID_MAX + 1];
	uint8_t priv[SIG_PRIVATE_LEN];
	uint64_t want_version;          /* set-policy / set-keys: the version to see reported */
};

/* Set by SIGINT/SIGTERM once ctl_session_signals() installed the handlers. */
extern volatile sig_atomic_t ctl_interrupted;
void ctl_session_signals(void);

/* Monotonic ms. */
uint64_t ctl_now_ms(void);
/* Adds a subscription made on every connection (at most CTL_MAX_SUBS; more are ignored). */
void ctl_add_sub(struct ctl *c, const char *topic, int qos);
/* The payload as a malloc'ed NUL-terminated string (caller frees); NULL when out of memory. */
char *ctl_dup_payload(const struct uplink_msg *m);
/* The "ts" of a JSON payload, 0 when absent. */
int64_t ctl_payload_ts(const void *payload, size_t len);

typedef bool (*done_fn)(const struct ctl *c);
/* Runs the loop until done(c), the deadline (ms, monotonic; 0: none) or a
 * signal. Returns true when done. */
bool ctl_run_until(struct ctl *c, done_fn done, uint64_t deadline_ms);

/* --timeout as "5 s" (a static buffer). */
const char *ctl_secs(const struct ctl *c);
/* "host:port" of the broker in force. */
const char *ctl_broker_addr(const struct ctl *c, char *buf, size_t len);
/* Connects and waits for the retained messages of the subscriptions (c->subs).
 * Returns a berthctl exit code (the reason on stderr). */
int ctl_session_start(struct ctl *c);
/* Reads FILE (at most CONFIG_CONFIG_MAX_BYTES) into a malloc'ed NUL-terminated
 * buffer (caller frees); NULL with the reason in err. */
char *ctl_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* A command {"schema","id","verb","ts","args"} (args consumed; NULL: {}),
 * signed for target when c has a key. malloc'ed text (caller frees), NULL on failure. */
char *ctl_command_payload(struct ctl *c, const char *id, const char *verb, cJSON *args, const char *target);
/* Publishes payload with QoS 1 (an MQTT v5 expiry when expiry_s > 0), waiting
 * for acknowledgements while the in-flight window (c->max_queued) is full, at
 * most --timeout. 0 or a negative errno. */
int ctl_publish(struct ctl *c, const char *topic, const char *payload, bool retain, uint32_t expiry_s);
/* Runs the loop until the broker acknowledged every publish (at most --timeout). */
bool ctl_flush(struct ctl *c);

#endif
