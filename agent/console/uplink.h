/* agent/console/uplink.h - the MQTT connection (libmosquitto driven from berth's loop): connect, back-off, publish, subscribe. */
#ifndef BERTH_UPLINK_H
#define BERTH_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct uplink;

struct uplink_opts {
	const char *host;
	int port;
	const char *client_id;        /* the device id */
	const char *username;         /* "" or NULL: none */
	const char *password;
	bool v5;                      /* MQTT v5 (falls back to 3.1.1 when the broker refuses v5) */
	int keepalive_s;
	uint32_t reconnect_min_ms;    /* back-off cap of the first retry ... */
	uint32_t reconnect_max_ms;    /* ... and of every later one */
	uint32_t reconnect_window_ms; /* >0: the first attempt after a lost connection is uniform in [0, window] */
	bool tls;
	const char *ca_file;
	const char *cert_file;        /* "" or NULL: no client certificate */
	const char *key_file;
	bool tls_insecure;            /* skip the server hostname check */
	const char *will_topic;       /* retained QoS 1 Last Will; NULL: none */
	const char *will_payload;
	uint32_t max_queued;          /* publishes libmosquitto may hold unacknowledged (bound) */
	uint32_t session_expiry_s;    /* >0: persistent session (clean start off) kept this long offline */
};

struct uplink_msg {
	const char *topic;
	const void *payload;
	size_t len;
	bool retained;
	const char *response_topic;   /* v5 only; NULL when absent */
	const void *corr;             /* v5 correlation data; NULL when absent */
	size_t corr_len;
};

/* All callbacks run on the loop. */
struct uplink_cbs {
	void (*connected)(void *arg);                 /* CONNACK accepted: (re)subscribe and publish state */
	void (*disconnected)(void *arg);              /* every unacknowledged publish is forgotten */
	void (*message)(void *arg, const struct uplink_msg *m);
	void (*published)(void *arg, int mid, int reason); /* PUBACK of a QoS 1 publish; reason >= 0x80 refused */
	void *arg;
};

struct uplink_stats {
	uint64_t connects;
	uint64_t disconnects;
	uint64_t connect_failures;
	uint64_t published;
	uint64_t received;
	uint32_t attempt;             /* consecutive failed attempts */
	uint32_t next_retry_ms;       /* delay chosen for the next attempt */
	bool connected;
	bool v5;
	int last_error;               /* -errno of the last failed attempt: -ECONNREFUSED, -EACCES (credentials
	                               * refused), -ETIMEDOUT (no CONNACK), ...; 0 before any failure */
};

/* Copies opts and starts connecting at once (never blocks on the network;
 * the host name is resolved with getaddrinfo, so give an address or a name
 * from /etc/hosts on gateways without DNS). Returns NULL on allocation
 * failure or invalid options (logged). */
struct uplink *uplink_create(struct loop *l, const struct uplink_opts *o, const struct uplink_cbs *cbs);
/* Disconnects (the broker then does NOT publish the Last Will) and frees. NULL is safe. */
void uplink_destroy(struct uplink *u);

/* Publishes; *mid (optional) gets the message id matched by cbs.published.
 * corr/corr_len: v5 correlation data to attach (ignored on 3.1.1).
 * Returns 0, -ENOTCONN when not connected, -ENOBUFS when max_queued publishes
 * are unacknowledged, -EMSGSIZE, or -EIO. */
int uplink_publish(struct uplink *u, const char *topic, const void *payload, size_t len, int qos, bool retain,
		   const void *corr, size_t corr_len, int *mid) __attribute__((warn_unused_result));
/* A request (console side): like uplink_publish, not retained, plus the v5
 * response topic the answer should go to (dropped on a 3.1.1 session, where
 * the answerer falls back to a documented reply topic). */
int uplink_publish_request(struct uplink *u, const char *topic, const void *payload, size_t len, int qos,
			   const char *response_topic, const void *corr, size_t corr_len, int *mid)
	__attribute__((warn_unused_result));
/* As uplink_publish_request, retained or not, with an MQTT v5 message expiry
 * interval (expiry_s > 0): the broker drops the message, never delivering
 * it, once it has waited that long for an offline subscriber. */
int uplink_publish_expiring(struct uplink *u, const char *topic, const void *payload, size_t len, int qos, bool retain,
			    const char *response_topic, const void *corr, size_t corr_len, uint32_t expiry_s, int *mid)
	__attribute__((warn_unused_result));
int uplink_subscribe(struct uplink *u, const char *topic, int qos) __attribute__((warn_unused_result));
int uplink_unsubscribe(struct uplink *u, const char *topic) __attribute__((warn_unused_result));

bool uplink_connected(const struct uplink *u);
/* Whether the current session speaks v5. */
bool uplink_is_v5(const struct uplink *u);
/* Unacknowledged QoS 1 publishes of this session. */
uint32_t uplink_unacked(const struct uplink *u);
void uplink_get_stats(const struct uplink *u, struct uplink_stats *out);

/* Full-jitter exponential back-off: the delay before retry number attempt
 * (0 for the first) is uniform in [UPLINK_BACKOFF_FLOOR_MS, cap] with
 * cap = min(max_ms, min_ms * 2^attempt), drawn from rnd (any 32-bit random
 * number). Pure; exposed for tests. */
#define UPLINK_BACKOFF_FLOOR_MS 50
uint32_t uplink_backoff_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint32_t rnd);

#endif
