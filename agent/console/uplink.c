/* agent/console/uplink.c - libmosquitto on berth's loop: one session object per connection attempt, jittered reconnects. */
#include "agent/console/uplink.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/base/prng.h"
#include "hal/clock.h"

#define LOG_TAG "uplink"

#define MISC_PERIOD_MS 500

struct uplink {
	struct loop *loop;
	struct uplink_cbs cbs;
	/* Copies of the options. */
	char host[256], client_id[64], username[128], password[128];
	char ca_file[256], cert_file[256], key_file[256];
	char will_topic[256], will_payload[256];
	int port, keepalive_s;
	uint32_t min_ms, max_ms, max_queued, window_ms;
	bool want_v5, tls, tls_insecure, has_will;
	uint32_t session_expiry_s;

	struct mosquitto *mosq;       /* NULL between attempts */
	int fd;                       /* watched fd, -1 when none */
	unsigned fd_events;
	bool connected, lost, v5;
	bool spread_next;             /* a connection was lost: the next attempt is spread over window_ms */
	bool spreading;               /* since then not yet connected: retries spread over the window's later half */
	uint64_t packets;             /* messages and acknowledgements read (the read loop's progress) */
	bool fallback_v311;           /* the broker refused v5 once: speak 3.1.1 from now on */
	bool attempt_noted;           /* this attempt's failure is in stats.last_error */
	uint64_t attempt_started_us;
	uint32_t unacked;
	struct prng rng;              /* reconnect jitter, seeded per device so a fleet does not retry in step */
	struct loop_timer retry_timer;
	struct loop_timer misc_timer;
	struct uplink_stats stats;
};

static int lib_refs;

uint32_t uplink_backoff_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint32_t rnd)
{
	uint64_t cap = min_ms ? min_ms : 1;
	for (uint32_t i = 0; i < attempt && cap < max_ms; i++)
		cap *= 2;
	if (cap > max_ms)
		cap = max_ms;
	if (cap < UPLINK_BACKOFF_FLOOR_MS)
		cap = UPLINK_BACKOFF_FLOOR_MS;
	return UPLINK_BACKOFF_FLOOR_MS + (uint32_t)((uint64_t)rnd % (cap - UPLINK_BACKOFF_FLOOR_MS + 1));
}

static int map_mosq(int rc)
{
	switch (rc) {
	case MOSQ_ERR_SUCCESS: return 0;
	case MOSQ_ERR_NOMEM: return -ENOMEM;
	case MOSQ_ERR_NO_CONN:
	case MOSQ_ERR_CONN_LOST: return -ENOTCONN;
	case MOSQ_ERR_INVAL: return -EINVAL;
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_OVERSIZE_PACKET: return -EMSGSIZE;
	case MOSQ_ERR_CONN_REFUSED: return -ECONNREFUSED;
	case MOSQ_ERR_ERRNO: return errno ? -errno : -EIO;
	default: return -EIO;
	}
}

static void on_log(struct mosquitto *m, void *obj, int level, const char *str)
{
	if (level & (MOSQ_LOG_ERR))
		log_err("event=mosquitto msg=\"%s\"", str);
	else if (level & MOSQ_LOG_WARNING)
		log_wrn("event=mosquitto msg=\"%s\"", str);
	else if (level & (MOSQ_LOG_NOTICE | MOSQ_LOG_INFO))
		log_inf("event=mosquitto msg=\"%s\"", str);
	else
		log_dbg("event=mosquitto msg=\"%s\"", str);
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags, const mosquitto_property *props)
{
	struct uplink *u = obj;
	if (rc != 0) {
		u->stats.connect_failures++;
		/* 3.1.1 codes 4/5 and v5 0x86/0x87: the credentials were refused. */
		u->stats.last_error = (rc == 4 || rc == 5 || rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD ||
				       rc == MQTT_RC_NOT_AUTHORIZED) ? -EACCES : -ECONNREFUSED;
		u->attempt_noted = true;
		/* 3.1.1 brokers answer a v5 CONNECT with "unacceptable protocol version" (1). */
		if (u->v5 && (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION || rc == 1)) {
			u->fallback_v311 = true;
			log_wrn("event=v5_refused fallback=v311");
		} else {
			log_err("event=connect_refused rc=%d reason=\"%s\"", rc, mosquitto_reason_string(rc));
		}
		u->lost = true;
		return;
	}
	u->connected = true;
	u->stats.connects++;
	u->stats.last_error = 0;
	u->stats.attempt = 0;
	u->spreading = false;
	log_inf("event=connected host=%s port=%d protocol=%s tls=%d", u->host, u->port, u->v5 ? "v5" : "v311", u->tls);
	if (u->cbs.connected)
		u->cbs.connected(u->cbs.arg);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc, const mosquitto_property *props)
{
	struct uplink *u = obj;
	/* Handled after libmosquitto returns: the session object is still in use here. */
	u->lost = true;
	if (u->connected)
		log_wrn("event=disconnected rc=%d reason=\"%s\"", rc, mosquitto_strerror(rc));
}

static void on_publish(struct mosquitto *m, void *obj, int mid, int reason, const mosquitto_property *props)
{
	struct uplink *u = obj;
	u->packets++;
	if (u->unacked)
		u->unacked--;
	if (reason >= 0x80)
		log_wrn("event=publish_refused mid=%d reason=%d \"%s\"", mid, reason, mosquitto_reason_string(reason));
	if (u->cbs.published)
		u->cbs.published(u->cbs.arg, mid, reason);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	struct uplink *u = obj;
	char *rtopic = NULL;
	void *corr = NULL;
	uint16_t corr_len = 0;
	if (props) {
		mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &rtopic, false);
		mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false);
	}
	u->stats.received++;
	u->packets++;
	struct uplink_msg um = {
		.topic = msg->topic,
		.payload = msg->payload,
		.len = (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0),
		.retained = msg->retain,
		.response_topic = rtopic,
		.corr = corr,
		.corr_len = corr_len,
	};
	if (u->cbs.message)
		u->cbs.message(u->cbs.arg, &um);
	free(rtopic);
	free(corr);
}

#define READ_BURST 64
#define READ_BUDGET_US 5000

static void on_fd(void *arg, int fd, unsigned events);
static void schedule_retry(struct uplink *u);

static void update_events(struct uplink *u)
{
	if (!u->mosq || u->fd < 0)
		return;
	unsigned ev = LOOP_IN | (mosquitto_want_write(u->mosq) ? LOOP_OUT : 0);
	if (ev != u->fd_events) {
		(void)loop_fd_mod(u->loop, u->fd, ev);
		u->fd_events = ev;
	}
}

static void drop_session(struct uplink *u)
{
	bool was_connected = u->connected;
	if (u->fd >= 0)
		loop_fd_del(u->loop, u->fd);
	u->fd = -1;
	u->fd_events = 0;
	if (u->mosq)
		mosquitto_destroy(u->mosq);
	u->mosq = NULL;
	u->connected = false;
	u->lost = false;
	u->unacked = 0;
	if (was_connected) {
		u->spread_next = u->window_ms > 0;
		u->stats.disconnects++;
		if (u->cbs.disconnected)
			u->cbs.disconnected(u->cbs.arg);
	}
}

/* Called after every libmosquitto call: a lost session is torn down here. */
static void settle(struct uplink *u, int rc)
{
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN && u->mosq) {
		if (!u->connected && !u->attempt_noted) {
			u->stats.last_error = map_mosq(rc);
			u->attempt_noted = true;
		}
		u->lost = true;
	}
	if (u->lost) {
		drop_session(u);
		schedule_retry(u);
		return;
	}
	update_events(u);
}

static int setup_session(struct uplink *u)
{
	u->v5 = u->want_v5 && !u->fallback_v311;
	/* A persistent session: the broker keeps the subscriptions and queues
	 * the QoS 1 commands published while the gateway is away. */
	u->mosq = mosquitto_new(u->client_id, u->session_expiry_s == 0, u);
	if (!u->mosq)
		return -ENOMEM;
	struct mosquitto *m = u->mosq;
	int rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, u->v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
	if (rc == MOSQ_ERR_SUCCESS && u->v5 && u->session_expiry_s) {
		/* libmosquitto takes CONNECT properties only through its blocking
		 * connect call, which stores them before it checks the host: a call
		 * without a host stores them and returns MOSQ_ERR_INVAL without
		 * touching the network; connect_async then sends them. */
		mosquitto_property *props = NULL;
		rc = mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, u->session_expiry_s);
		if (rc == MOSQ_ERR_SUCCESS) {
			rc = mosquitto_connect_bind_v5(m, NULL, 0, u->keepalive_s, NULL, props);
			rc = rc == MOSQ_ERR_INVAL ? MOSQ_ERR_SUCCESS : rc;
		}
		mosquitto_property_free_all(&props);
	}
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, (int)u->max_queued);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_log_callback_set(m, on_log);
	mosquitto_connect_v5_callback_set(m, on_connect);
	mosquitto_disconnect_v5_callback_set(m, on_disconnect);
	mosquitto_publish_v5_callback_set(m, on_publish);
	mosquitto_message_v5_callback_set(m, on_message);
	if (rc == MOSQ_ERR_SUCCESS && u->username[0])
		rc = mosquitto_username_pw_set(m, u->username, u->password[0] ? u->password : NULL);
	if (rc == MOSQ_ERR_SUCCESS && u->has_will)
		rc = mosquitto_will_set(m, u->will_topic, (int)strlen(u->will_payload), u->will_payload, 1, true);
	if (rc == MOSQ_ERR_SUCCESS && u->tls) {
		rc = mosquitto_tls_set(m, u->ca_file, NULL, u->cert_file[0] ? u->cert_file : NULL,
				       u->key_file[0] ? u->key_file : NULL, NULL);
		/* TLS 1.2 is the minimum, said explicitly (1.3 is allowed). */
		if (rc == MOSQ_ERR_SUCCESS)
			rc = mosquitto_tls_opts_set(m, 1, "tlsv1.2", NULL);
		if (rc == MOSQ_ERR_SUCCESS && u->tls_insecure)
			rc = mosquitto_tls_insecure_set(m, true);
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		log_err("event=session_setup_failed err=\"%s\"", mosquitto_strerror(rc));
		return map_mosq(rc);
	}
	return 0;
}

static void attempt(void *arg)
{
	struct uplink *u = arg;
	if (u->mosq)
		drop_session(u);
	int rc = setup_session(u);
	if (rc) {
		drop_session(u);
		schedule_retry(u);
		return;
	}
	u->attempt_started_us = hal_clock_now_us();
	u->attempt_noted = false;
	errno = 0;
	int mrc = mosquitto_connect_async(u->mosq, u->host, u->port, u->keepalive_s);
	if (mrc != MOSQ_ERR_SUCCESS) {
		u->stats.connect_failures++;
		u->stats.last_error = map_mosq(mrc);
		log_dbg("event=connect_failed host=%s port=%d err=\"%s\"", u->host, u->port,
			mrc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(mrc));
		drop_session(u);
		schedule_retry(u);
		return;
	}
	u->fd = mosquitto_socket(u->mosq);
	u->fd_events = LOOP_IN | LOOP_OUT;
	if (u->fd < 0 || loop_fd_add(u->loop, u->fd, u->fd_events, on_fd, u) < 0) {
		log_err("event=fd_watch_failed fd=%d", u->fd);
		u->fd = -1;
		drop_session(u);
		schedule_retry(u);
	}
}

static void schedule_retry(struct uplink *u)
{
	uint32_t rnd = (uint32_t)(prng_next(&u->rng) >> 32);
	/* After a lost connection (a broker restart drops the whole fleet at
	 * once) the first attempt is uniform over the window, so the broker
	 * sees about N / window connections a second. Those that find it still
	 * down retry uniformly over the window's later half (not the short
	 * back-off, which would bring them all back in the second it returns),
	 * until connected; without a window, the back-off alone. */
	uint32_t half = u->window_ms / 2;
	uint32_t d = u->spread_next ? rnd % (u->window_ms + 1)
		     : u->spreading ? u->window_ms - half + rnd % (half + 1)
				    : uplink_backoff_ms(u->stats.attempt, u->min_ms, u->max_ms, rnd);
	u->spreading = u->spreading || u->spread_next;
	u->spread_next = false;
	if (u->stats.attempt < 31)
		u->stats.attempt++;
	u->stats.next_retry_ms = d;
	log_dbg("event=retry_scheduled delay_ms=%u attempt=%u", d, u->stats.attempt);
	if (loop_timer_start(u->loop, &u->retry_timer, d, 0) < 0)
		log_err("event=timer_full what=reconnect");
}

static void on_fd(void *arg, int fd, unsigned events)
{
	struct uplink *u = arg;
	if (!u->mosq)
		return;
	int rc = MOSQ_ERR_SUCCESS;
	/* libmosquitto reads one packet per call: read on while whole packets are there (at
	 * most READ_BURST, for at most READ_BUDGET_US so that the rest of the loop, the local
	 * API's health answers among it, is not held up), so a burst of commands is handled in
	 * a few turns of the loop (its journal written in one transaction each) instead of one
	 * turn per packet. */
	uint64_t t0_us = hal_clock_now_us();
	for (int i = 0; (events & (LOOP_IN | LOOP_ERR)) && i < READ_BURST && u->mosq && !u->lost &&
			hal_clock_now_us() - t0_us < READ_BUDGET_US;
	     i++) {
		uint64_t before = u->packets;
		rc = mosquitto_loop_read(u->mosq, 1);
		if (rc != MOSQ_ERR_SUCCESS || u->packets == before)
			break;
	}
	if (rc == MOSQ_ERR_SUCCESS && !u->lost && u->mosq && (events & LOOP_OUT))
		rc = mosquitto_loop_write(u->mosq, 1);
	settle(u, rc);
}

static void on_misc(void *arg)
{
	struct uplink *u = arg;
	if (!u->mosq)
		return;
	/* A CONNACK that never comes (hung broker, black-holed route) ends the attempt. */
	if (!u->connected && hal_clock_now_us() - u->attempt_started_us > (uint64_t)u->keepalive_s * 1000000u) {
		log_wrn("event=connect_timeout host=%s port=%d", u->host, u->port);
		u->stats.connect_failures++;
		u->stats.last_error = -ETIMEDOUT;
		u->attempt_noted = true;
		u->lost = true;
		settle(u, MOSQ_ERR_SUCCESS);
		return;
	}
	settle(u, mosquitto_loop_misc(u->mosq));
}

#define COPY(dst, src)                                                        \
	do {                                                                  \
		const char *s_ = (src) ? (src) : "";                          \
		if (strlen(s_) >= sizeof(dst)) {                              \
			log_err("event=option_too_long option=%s", #dst);     \
			goto errout;                                          \
		}                                                             \
		strcpy((dst), s_);                                            \
	} while (0)

struct uplink *uplink_create(struct loop *l, const struct uplink_opts *o, const struct uplink_cbs *cbs)
{
	struct uplink *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->loop = l;
	u->cbs = *cbs;
	u->fd = -1;
	COPY(u->host, o->host);
	COPY(u->client_id, o->client_id);
	COPY(u->username, o->username);
	COPY(u->password, o->password);
	COPY(u->ca_file, o->ca_file);
	COPY(u->cert_file, o->cert_file);
	COPY(u->key_file, o->key_file);
	COPY(u->will_topic, o->will_topic);
	COPY(u->will_payload, o->will_payload);
	u->has_will = o->will_topic && o->will_topic[0];
	u->port = o->port;
	u->keepalive_s = o->keepalive_s > 0 ? o->keepalive_s : 30;
	u->min_ms = o->reconnect_min_ms ? o->reconnect_min_ms : 1000;
	u->max_ms = o->reconnect_max_ms >= u->min_ms ? o->reconnect_max_ms : u->min_ms;
	u->max_queued = o->max_queued ? o->max_queued : 32;
	u->window_ms = o->reconnect_window_ms;
	u->want_v5 = o->v5;
	u->session_expiry_s = o->session_expiry_s;
	u->tls = o->tls;
	u->tls_insecure = o->tls_insecure;
	uint64_t seed = hal_clock_now_us() ^ (uint64_t)hal_clock_wall_ms();
	for (const char *p = u->client_id; *p; p++)
		seed = seed * 1099511628211ull ^ (uint8_t)*p;
	prng_seed(&u->rng, seed);
	loop_timer_init(&u->retry_timer, attempt, u);
	loop_timer_init(&u->misc_timer, on_misc, u);
	if (lib_refs++ == 0)
		mosquitto_lib_init();
	if (loop_timer_start(l, &u->misc_timer, MISC_PERIOD_MS, MISC_PERIOD_MS) < 0 ||
	    loop_timer_start(l, &u->retry_timer, 0, 0) < 0) {
		uplink_destroy(u);
		return NULL;
	}
	return u;
errout:
	free(u);
	return NULL;
}

void uplink_destroy(struct uplink *u)
{
	if (!u)
		return;
	loop_timer_stop(u->loop, &u->retry_timer);
	loop_timer_stop(u->loop, &u->misc_timer);
	if (u->mosq && u->connected) {
		/* A clean DISCONNECT: flush what is queued, briefly, then close. */
		u->connected = false;
		log_inf("event=disconnecting");
		(void)mosquitto_disconnect(u->mosq);
		for (int i = 0; i < 10 && mosquitto_want_write(u->mosq); i++)
			(void)mosquitto_loop_write(u->mosq, 1);
	}
	u->connected = false; /* no disconnected callback during teardown */
	if (u->fd >= 0)
		loop_fd_del(u->loop, u->fd);
	if (u->mosq)
		mosquitto_destroy(u->mosq);
	if (--lib_refs == 0)
		mosquitto_lib_cleanup();
	free(u);
}

static int publish_props(struct uplink *u, const char *topic, const void *payload, size_t len, int qos, bool retain,
			 const char *response_topic, const void *corr, size_t corr_len, uint32_t expiry_s, int *mid)
{
	if (!u->mosq || !u->connected)
		return -ENOTCONN;
	if (qos > 0 && u->unacked >= u->max_queued)
		return -ENOBUFS;
	if (len > 256u * 1024 * 1024)
		return -EMSGSIZE;
	mosquitto_property *props = NULL;
	int prc = MOSQ_ERR_SUCCESS;
	if (u->v5 && corr && corr_len && corr_len <= UINT16_MAX)
		prc = mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr, (uint16_t)corr_len);
	if (prc == MOSQ_ERR_SUCCESS && u->v5 && response_topic && response_topic[0])
		prc = mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, response_topic);
	if (prc == MOSQ_ERR_SUCCESS && u->v5 && expiry_s)
		prc = mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s);
	if (prc != MOSQ_ERR_SUCCESS) {
		mosquitto_property_free_all(&props);
		return map_mosq(prc);
	}
	int m = 0;
	int rc = mosquitto_publish_v5(u->mosq, &m, topic, (int)len, payload, qos, retain, props);
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_wrn("event=publish_failed topic=%s err=\"%s\"", topic, mosquitto_strerror(rc));
		return map_mosq(rc);
	}
	if (qos > 0)
		u->unacked++;
	u->stats.published++;
	if (mid)
		*mid = m;
	update_events(u);
	return 0;
}

int uplink_publish(struct uplink *u, const char *topic, const void *payload, size_t len, int qos, bool retain,
		   const void *corr, size_t corr_len, int *mid)
{
	return publish_props(u, topic, payload, len, qos, retain, NULL, corr, corr_len, 0, mid);
}

int uplink_publish_request(struct uplink *u, const char *topic, const void *payload, size_t len, int qos,
			   const char *response_topic, const void *corr, size_t corr_len, int *mid)
{
	return publish_props(u, topic, payload, len, qos, false, response_topic, corr, corr_len, 0, mid);
}

int uplink_publish_expiring(struct uplink *u, const char *topic, const void *payload, size_t len, int qos, bool retain,
			    const char *response_topic, const void *corr, size_t corr_len, uint32_t expiry_s, int *mid)
{
	return publish_props(u, topic, payload, len, qos, retain, response_topic, corr, corr_len, expiry_s, mid);
}

int uplink_subscribe(struct uplink *u, const char *topic, int qos)
{
	if (!u->mosq || !u->connected)
		return -ENOTCONN;
	int rc = mosquitto_subscribe_v5(u->mosq, NULL, topic, qos, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_wrn("event=subscribe_failed topic=%s err=\"%s\"", topic, mosquitto_strerror(rc));
		return map_mosq(rc);
	}
	update_events(u);
	return 0;
}

int uplink_unsubscribe(struct uplink *u, const char *topic)
{
	if (!u->mosq || !u->connected)
		return -ENOTCONN;
	int rc = mosquitto_unsubscribe(u->mosq, NULL, topic);
	if (rc != MOSQ_ERR_SUCCESS)
		return map_mosq(rc);
	update_events(u);
	return 0;
}

bool uplink_connected(const struct uplink *u) { return u->connected; }
bool uplink_is_v5(const struct uplink *u) { return u->v5; }
uint32_t uplink_unacked(const struct uplink *u) { return u->unacked; }

void uplink_get_stats(const struct uplink *u, struct uplink_stats *out)
{
	*out = u->stats;
	out->connected = u->connected;
	out->v5 = u->v5;
}
