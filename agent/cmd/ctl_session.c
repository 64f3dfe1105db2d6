/* agent/cmd/ctl_session.c - berthctl's broker session: connect, subscribe, wait for retained messages, run the loop until done. */
#include "agent/cmd/ctl_session.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/cmd/ctl_fmt.h"
#include "agent/cmd/ctl_sign.h"
#include "hal/clock.h"

#define LOG_TAG "ctl"
#define WAIT_SLICE_MS 200       /* the loop wakes at least this often to check deadlines and signals */

volatile sig_atomic_t ctl_interrupted;

static void on_signal(int signo)
{
	(void)signo;
	ctl_interrupted = 1;
}

void ctl_session_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: poll returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

uint64_t ctl_now_ms(void) { return hal_clock_now_us() / 1000; }

void ctl_add_sub(struct ctl *c, const char *topic, int qos)
{
	if (c->nsubs < CTL_MAX_SUBS) {
		snprintf(c->subs[c->nsubs], CTL_TOPIC_MAX, "%s", topic);
		c->sub_qos[c->nsubs++] = qos;
	}
}

char *ctl_dup_payload(const struct uplink_msg *m)
{
	char *p = malloc(m->len + 1);
	if (p) {
		memcpy(p, m->payload, m->len);
		p[m->len] = '\0';
	}
	return p;
}

/* The "ts" of a JSON payload, 0 when absent. */
int64_t ctl_payload_ts(const void *payload, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(payload, len);
	const cJSON *ts = root ? cJSON_GetObjectItemCaseSensitive(root, "ts") : NULL;
	int64_t v = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
	cJSON_Delete(root);
	return v;
}

static void on_message(void *arg, const struct uplink_msg *m)
{
	struct ctl *c = arg;
	if (strcmp(m->topic, c->console_topic) == 0) {
		c->synced = true;
		return;
	}
	if (c->on_msg)
		c->on_msg(c, m);
}

static void on_connected(void *arg)
{
	struct ctl *c = arg;
	/* Made again on every connection: a clean session starts with none. */
	for (unsigned i = 0; i < c->nsubs; i++)
		if (uplink_subscribe(c->up, c->subs[i], c->sub_qos[i]))
			log_err("event=subscribe_failed topic=%s", c->subs[i]);
	/* Retained messages are delivered right after the subscription that
	 * matches them, and QoS 0 deliveries keep their order: once our own
	 * message to the sync topic comes back, every retained one is in. */
	if (!c->sync_sent && uplink_subscribe(c->up, c->console_topic, 0) == 0 &&
	    uplink_publish(c->up, c->console_topic, "sync", 4, 0, false, NULL, 0, NULL) == 0)
		c->sync_sent = true;
}


/* Runs the loop until done(c), the deadline (ms, monotonic; 0: none) or a
 * signal. Returns true when done. */
bool ctl_run_until(struct ctl *c, done_fn done, uint64_t deadline_ms)
{
	while (!done(c)) {
		if (ctl_interrupted)
			return false;
		uint64_t now = ctl_now_ms();
		if (deadline_ms && now >= deadline_ms)
			return false;
		uint64_t wait = deadline_ms ? deadline_ms - now : WAIT_SLICE_MS;
		(void)loop_run_once(c->loop, (int)(wait < WAIT_SLICE_MS ? wait : WAIT_SLICE_MS));
	}
	return true;
}

static bool is_synced(const struct ctl *c) { return c->synced; }

const char *ctl_secs(const struct ctl *c)
{
	static char buf[24];
	ctl_fmt_seconds(c->a->timeout_ms, buf, sizeof(buf));
	return buf;
}

const char *ctl_broker_addr(const struct ctl *c, char *buf, size_t len)
{
	snprintf(buf, len, strchr(c->cfg.broker.host, ':') ? "[%s]:%d" : "%s:%d", c->cfg.broker.host,
		 c->cfg.broker.port);
	return buf;
}

/* Connects and waits for the retained messages of the subscriptions. */
int ctl_session_start(struct ctl *c)
{
	char addr[CONFIG_STR_MAX + 16];
	struct uplink_opts uo = {
		.host = c->cfg.broker.host,
		.port = c->cfg.broker.port,
		.client_id = c->client_id,
		.username = c->cfg.broker.username,
		.password = c->cfg.broker.password,
		.v5 = strcmp(c->cfg.broker.protocol, "v5") == 0,
		.keepalive_s = c->cfg.broker.keepalive_s,
		.reconnect_min_ms = 250,
		.reconnect_max_ms = 1000,
		.tls = c->cfg.broker.tls.enabled,
		.ca_file = c->cfg.broker.tls.ca_file,
		.cert_file = c->cfg.broker.tls.cert_file,
		.key_file = c->cfg.broker.tls.key_file,
		.tls_insecure = c->cfg.broker.tls.insecure,
		.max_queued = c->max_queued ? c->max_queued : 16,
	};
	struct uplink_cbs cbs = { .connected = on_connected, .message = on_message, .arg = c };
	if (c->nsubs >= CTL_MAX_SUBS)
		log_wrn("event=too_many_subscriptions max=%d", CTL_MAX_SUBS);
	c->up = uplink_create(c->loop, &uo, &cbs);
	if (!c->up) {
		fprintf(stderr, "berthctl: cannot set up the MQTT client (see the log line above)\n");
		return CTL_EXIT_USAGE;
	}
	uint64_t deadline = ctl_now_ms() + c->a->timeout_ms;
	while (!uplink_connected(c->up)) {
		struct uplink_stats s;
		uplink_get_stats(c->up, &s);
		if (s.last_error == -EACCES) {
			fprintf(stderr, "berthctl: the broker %s refused the connection: not authorised (check the user name, "
					"password or client certificate)\n",
				ctl_broker_addr(c, addr, sizeof(addr)));
			return CTL_EXIT_BROKER;
		}
		uint64_t now = ctl_now_ms();
		if (ctl_interrupted)
			return CTL_EXIT_TIMEOUT;
		/* Nothing listens there: waiting out the timeout would not change that. */
		if (now >= deadline || s.last_error == -ECONNREFUSED || s.last_error == -EHOSTUNREACH ||
		    s.last_error == -ENETUNREACH) {
			fprintf(stderr, "berthctl: cannot connect to the broker %s%s%s%s%s\n",
				ctl_broker_addr(c, addr, sizeof(addr)), now >= deadline ? " within " : "",
				now >= deadline ? ctl_secs(c) : "", s.last_error ? ": " : "",
				s.last_error ? strerror(-s.last_error) : "");
			fprintf(stderr, "berthctl: hint: name the broker with -b HOST[:PORT] or -c CONFIG (its broker.host "
					"and broker.port%s); on the gateway itself, berthctl state --local -c "
					"/etc/berth/config.json asks berthd without the broker\n",
				c->a->config_file || c->a->broker ? "" : "; none given, so 127.0.0.1:1883 was tried");
			return CTL_EXIT_BROKER;
		}
		(void)loop_run_once(c->loop, (int)(deadline - now < 50 ? deadline - now : 50));
	}
	if (!ctl_run_until(c, is_synced, ctl_now_ms() + c->a->timeout_ms)) {
		fprintf(stderr, "berthctl: the broker %s did not deliver our own message within %s "
				"(may this account publish and subscribe to berthctl/#?)\n",
			ctl_broker_addr(c, addr, sizeof(addr)), ctl_secs(c));
		return ctl_interrupted ? CTL_EXIT_TIMEOUT : CTL_EXIT_BROKER;
	}
	log_inf("event=subscribed topics=%u retained_delivered=1", c->nsubs);
	return CTL_EXIT_OK;
}


/* Reads FILE (bounded) into a malloc'ed NUL-terminated buffer. */
char *ctl_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(CONFIG_CONFIG_MAX_BYTES + 1);
	size_t n = buf ? fread(buf, 1, CONFIG_CONFIG_MAX_BYTES + 1, f) : 0;
	bool bad = ferror(f);
	fclose(f);
	if (!buf || bad || n > CONFIG_CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "%s: %s", path,
			 !buf ? "out of memory" : bad ? "read error" : "larger than the limit (CONFIG_CONFIG_MAX_BYTES)");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}


char *ctl_command_payload(struct ctl *c, const char *id, const char *verb, cJSON *args, const char *target)
{
	cJSON *env = cJSON_CreateObject();
	if (!env || !cJSON_AddNumberToObject(env, "schema", 1) || !cJSON_AddStringToObject(env, "id", id) ||
	    !cJSON_AddStringToObject(env, "verb", verb) ||
	    !cJSON_AddNumberToObject(env, "ts", (double)hal_clock_wall_ms())) {
		cJSON_Delete(env);
		cJSON_Delete(args);
		return NULL;
	}
	cJSON_AddItemToObject(env, "args", args ? args : cJSON_CreateObject());
	char *payload = cJSON_PrintUnformatted(env);
	cJSON_Delete(env);
	if (!payload || !c->has_key)
		return payload;
	char *signed_payload = ctl_sign_text(payload, strlen(payload), NULL, c->key_id, c->priv, target, c->a->expire_s);
	free(payload);
	return signed_payload;
}

int ctl_publish(struct ctl *c, const char *topic, const char *payload, bool retain, uint32_t expiry_s)
{
	uint64_t deadline = ctl_now_ms() + c->a->timeout_ms;
	for (;;) {
		int rc = uplink_publish_expiring(c->up, topic, payload, strlen(payload), 1, retain, NULL, NULL, 0, expiry_s,
						 NULL);
		/* Our in-flight window is full: let PUBACKs come back, then retry. */
		if (rc != -ENOBUFS || ctl_interrupted || ctl_now_ms() >= deadline)
			return rc;
		(void)loop_run_once(c->loop, 20);
	}
}

static bool all_acked(const struct ctl *c) { return uplink_unacked(c->up) == 0; }

bool ctl_flush(struct ctl *c) { return ctl_run_until(c, all_acked, ctl_now_ms() + c->a->timeout_ms); }
