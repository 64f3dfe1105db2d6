/* agent/cmd/berthctl.c - the console's command line: talks to berth gateways through the MQTT broker. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/model/config.h"
#include "agent/cmd/ctl_args.h"
#include "agent/cmd/ctl_check.h"
#include "agent/cmd/ctl_fmt.h"
#include "agent/cmd/ctl_sign.h"
#include "agent/cmd/ctl_site.h"
#include "agent/model/deploy.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/console/uplink.h"
#include "agent/base/version.h"
#include "agent/trust/envelope.h"
#include "hal/clock.h"

#define LOG_TAG "ctl"

#define MAX_SUBS 8
#define TOPIC_MAX 256
#define MAX_DEVICES 10000       /* devices listed at most; more are counted and said */
#define WAIT_SLICE_MS 200       /* the loop wakes at least this often to check deadlines and signals */

struct ctl {
	const struct ctl_args *a;
	struct berth_config cfg;
	struct loop *loop;
	struct uplink *up;
	char client_id[64];
	char subs[MAX_SUBS][TOPIC_MAX];
	int sub_qos[MAX_SUBS];
	unsigned nsubs;
	char console_topic[TOPIC_MAX];
	bool sync_sent, synced;

	/* One device's topics. */
	char t_status[TOPIC_MAX], t_reported[TOPIC_MAX], t_events[TOPIC_MAX], t_telemetry[TOPIC_MAX];
	char t_reply_v5[TOPIC_MAX], t_reply_v311[TOPIC_MAX];
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

static volatile sig_atomic_t interrupted;

static void on_signal(int signo)
{
	(void)signo;
	interrupted = 1;
}

static uint64_t now_ms(void) { return hal_clock_now_us() / 1000; }

static void add_sub(struct ctl *c, const char *topic, int qos)
{
	if (c->nsubs < MAX_SUBS) {
		snprintf(c->subs[c->nsubs], TOPIC_MAX, "%s", topic);
		c->sub_qos[c->nsubs++] = qos;
	}
}

static char *dup_payload(const struct uplink_msg *m)
{
	char *p = malloc(m->len + 1);
	if (p) {
		memcpy(p, m->payload, m->len);
		p[m->len] = '\0';
	}
	return p;
}

/* The "ts" of a JSON payload, 0 when absent. */
static int64_t payload_ts(const void *payload, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(payload, len);
	const cJSON *ts = root ? cJSON_GetObjectItemCaseSensitive(root, "ts") : NULL;
	int64_t v = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
	cJSON_Delete(root);
	return v;
}

/* The newest row ts of a telemetry/events batch, 0 when none. */
static int64_t batch_newest_ts(const void *payload, size_t len)
{
	cJSON *root = cJSON_ParseWithLength(payload, len);
	const cJSON *rows = root ? cJSON_GetObjectItemCaseSensitive(root, "rows") : NULL;
	int64_t best = 0;
	for (const cJSON *r = cJSON_IsArray(rows) ? rows->child : NULL; r; r = r->next) {
		const cJSON *ts = cJSON_GetObjectItemCaseSensitive(r, "ts");
		if (cJSON_IsNumber(ts) && (int64_t)ts->valuedouble > best)
			best = (int64_t)ts->valuedouble;
	}
	cJSON_Delete(root);
	return best;
}

static struct ctl_device *device_slot(struct ctl *c, const char *id, size_t idlen)
{
	if (idlen == 0 || idlen >= sizeof(c->devs[0].id))
		return NULL;
	for (size_t i = 0; i < c->ndevs; i++)
		if (strlen(c->devs[i].id) == idlen && memcmp(c->devs[i].id, id, idlen) == 0)
			return &c->devs[i];
	if (c->ndevs == MAX_DEVICES) {
		c->devs_dropped++;
		return NULL;
	}
	struct ctl_device *d = &c->devs[c->ndevs++];
	memset(d, 0, sizeof(*d));
	memcpy(d->id, id, idlen);
	return d;
}

/* berth/v1/<id>/status and berth/v1/<id>/state/reported of every device. */
static void on_device_message(struct ctl *c, const struct uplink_msg *m)
{
	const char *p = m->topic + strlen("berth/v1/");
	const char *slash = strchr(p, '/');
	if (strncmp(m->topic, "berth/v1/", 9) != 0 || !slash)
		return;
	struct ctl_device *d = device_slot(c, p, (size_t)(slash - p));
	if (!d)
		return;
	if (strcmp(slash, "/status") == 0) {
		if (ctl_status_parse(m->payload, m->len, &d->st))
			log_dbg("event=bad_status topic=%s", m->topic);
	} else {
		ctl_status_seen(&d->st, payload_ts(m->payload, m->len));
	}
}

static void on_message(void *arg, const struct uplink_msg *m)
{
	struct ctl *c = arg;
	if (strcmp(m->topic, c->console_topic) == 0) {
		c->synced = true;
		return;
	}
	if (c->a->verb == CTL_DEVICES) {
		on_device_message(c, m);
		return;
	}
	if (strcmp(m->topic, c->t_status) == 0) {
		if (m->len && ctl_status_parse(m->payload, m->len, &c->st))
			log_dbg("event=bad_status topic=%s", m->topic);
	} else if (strcmp(m->topic, c->t_reported) == 0) {
		free(c->reported);
		c->reported = dup_payload(m);
		c->reported_len = c->reported ? m->len : 0;
		ctl_status_seen(&c->st, payload_ts(m->payload, m->len));
	} else if (strcmp(m->topic, c->t_reply_v5) == 0 || strcmp(m->topic, c->t_reply_v311) == 0) {
		/* Other consoles' replies share the 3.1.1 topic: only ours counts. */
		cJSON *root = cJSON_ParseWithLength(m->payload, m->len);
		const cJSON *id = root ? cJSON_GetObjectItemCaseSensitive(root, "id") : NULL;
		if (c->cmd_id[0] && cJSON_IsString(id) && strcmp(id->valuestring, c->cmd_id) == 0 && !c->reply) {
			c->reply = dup_payload(m);
			c->reply_len = c->reply ? m->len : 0;
		}
		cJSON_Delete(root);
	} else if (strcmp(m->topic, c->t_events) == 0 || strcmp(m->topic, c->t_telemetry) == 0) {
		if (c->a->count && c->rows >= c->a->count)
			return;
		enum ctl_stream kind = strcmp(m->topic, c->t_events) == 0 ? CTL_STREAM_EVENTS : CTL_STREAM_TELEMETRY;
		ctl_status_seen(&c->st, batch_newest_ts(m->payload, m->len));
		int n = ctl_fmt_batch(stdout, kind, m->payload, m->len, c->a->json, &c->header,
				      c->a->count ? c->a->count - c->rows : 0);
		if (n < 0) {
			c->stream_err++;
			fprintf(stderr, "berthctl: ignored a malformed batch on %s\n", m->topic);
			return;
		}
		c->rows += (uint32_t)n;
		c->got_batch = true;
	}
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

typedef bool (*done_fn)(const struct ctl *c);

/* Runs the loop until done(c), the deadline (ms, monotonic; 0: none) or a
 * signal. Returns true when done. */
static bool run_until(struct ctl *c, done_fn done, uint64_t deadline_ms)
{
	while (!done(c)) {
		if (interrupted)
			return false;
		uint64_t now = now_ms();
		if (deadline_ms && now >= deadline_ms)
			return false;
		uint64_t wait = deadline_ms ? deadline_ms - now : WAIT_SLICE_MS;
		(void)loop_run_once(c->loop, (int)(wait < WAIT_SLICE_MS ? wait : WAIT_SLICE_MS));
	}
	return true;
}

static bool is_synced(const struct ctl *c) { return c->synced; }
static bool has_reply(const struct ctl *c) { return c->reply != NULL; }
static bool never(const struct ctl *c) { return false; }
static bool enough_rows(const struct ctl *c)
{
	return c->a->count ? c->rows >= c->a->count : c->got_batch;
}

static const char *secs(const struct ctl *c)
{
	static char buf[24];
	ctl_fmt_seconds(c->a->timeout_ms, buf, sizeof(buf));
	return buf;
}

static const char *broker_addr(const struct ctl *c, char *buf, size_t len)
{
	snprintf(buf, len, strchr(c->cfg.broker.host, ':') ? "[%s]:%d" : "%s:%d", c->cfg.broker.host,
		 c->cfg.broker.port);
	return buf;
}

/* Connects and waits for the retained messages of the subscriptions. */
static int session_start(struct ctl *c)
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
		.max_queued = 16,
	};
	struct uplink_cbs cbs = { .connected = on_connected, .message = on_message, .arg = c };
	c->up = uplink_create(c->loop, &uo, &cbs);
	if (!c->up) {
		fprintf(stderr, "berthctl: cannot set up the MQTT client (see the log line above)\n");
		return CTL_EXIT_USAGE;
	}
	uint64_t deadline = now_ms() + c->a->timeout_ms;
	while (!uplink_connected(c->up)) {
		struct uplink_stats s;
		uplink_get_stats(c->up, &s);
		if (s.last_error == -EACCES) {
			fprintf(stderr, "berthctl: the broker %s refused the connection: not authorised (check the user name, "
					"password or client certificate)\n",
				broker_addr(c, addr, sizeof(addr)));
			return CTL_EXIT_BROKER;
		}
		uint64_t now = now_ms();
		if (interrupted)
			return CTL_EXIT_TIMEOUT;
		/* Nothing listens there: waiting out the timeout would not change that. */
		if (now >= deadline || s.last_error == -ECONNREFUSED || s.last_error == -EHOSTUNREACH ||
		    s.last_error == -ENETUNREACH) {
			fprintf(stderr, "berthctl: cannot connect to the broker %s%s%s%s%s\n",
				broker_addr(c, addr, sizeof(addr)), now >= deadline ? " within " : "",
				now >= deadline ? secs(c) : "", s.last_error ? ": " : "",
				s.last_error ? strerror(-s.last_error) : "");
			fprintf(stderr, "berthctl: hint: name the broker with -b HOST[:PORT] or -c CONFIG (its broker.host "
					"and broker.port%s); on the gateway itself, berthctl state --local -c "
					"/etc/berth/config.json asks berthd without the broker\n",
				c->a->config_file || c->a->broker ? "" : "; none given, so 127.0.0.1:1883 was tried");
			return CTL_EXIT_BROKER;
		}
		(void)loop_run_once(c->loop, (int)(deadline - now < 50 ? deadline - now : 50));
	}
	if (!run_until(c, is_synced, now_ms() + c->a->timeout_ms)) {
		fprintf(stderr, "berthctl: the broker %s did not deliver our own message within %s "
				"(may this account publish and subscribe to berthctl/#?)\n",
			broker_addr(c, addr, sizeof(addr)), secs(c));
		return interrupted ? CTL_EXIT_TIMEOUT : CTL_EXIT_BROKER;
	}
	log_inf("event=subscribed topics=%u retained_delivered=1", c->nsubs);
	return CTL_EXIT_OK;
}


static void no_answer(const struct ctl *c)
{
	char msg[384];
	ctl_fmt_no_answer(c->a->device, c->a->timeout_ms, &c->st, hal_clock_wall_ms(), msg, sizeof(msg));
	fprintf(stderr, "berthctl: %s\n", msg);
}

/* Sends berth/v1/<device>/cmd/<verb> with args (consumed) and waits for the
 * reply. Returns an exit code; the reply is in c->reply on success. */
static int send_command(struct ctl *c, const char *verb, cJSON *args)
{
	static unsigned seq;
	snprintf(c->cmd_id, sizeof(c->cmd_id), "%.40s-%u", c->client_id, ++seq);
	cJSON *env = cJSON_CreateObject();
	if (!env || !cJSON_AddNumberToObject(env, "schema", 1) || !cJSON_AddStringToObject(env, "id", c->cmd_id) ||
	    !cJSON_AddStringToObject(env, "verb", verb) ||
	    !cJSON_AddNumberToObject(env, "ts", (double)hal_clock_wall_ms())) {
		cJSON_Delete(env);
		cJSON_Delete(args);
		return CTL_EXIT_USAGE;
	}
	cJSON_AddItemToObject(env, "args", args ? args : cJSON_CreateObject());
	char *payload = cJSON_PrintUnformatted(env);
	cJSON_Delete(env);
	if (!payload)
		return CTL_EXIT_USAGE;
	if (c->has_key) {
		char target[ENVELOPE_TARGET_MAX + 1];
		snprintf(target, sizeof(target), "%s%s", c->a->target ? "" : "device:", c->a->target ? c->a->target : c->a->device);
		char *signed_payload = ctl_sign_text(payload, strlen(payload), NULL, c->key_id, c->priv, target, c->a->expire_s);
		free(payload);
		if (!signed_payload)
			return CTL_EXIT_USAGE;
		payload = signed_payload;
	}
	char topic[TOPIC_MAX];
	snprintf(topic, sizeof(topic), "berth/v1/%s/cmd/%s", c->a->device, verb);
	/* The broker drops it unsent once it has waited --expire for an offline device. */
	int rc = uplink_publish_expiring(c->up, topic, payload, strlen(payload), 1, false, c->t_reply_v5, c->cmd_id,
					 strlen(c->cmd_id), c->a->expire_s, NULL);
	free(payload);
	if (rc) {
		fprintf(stderr, "berthctl: could not publish to %s: %s\n", topic, strerror(-rc));
		return CTL_EXIT_BROKER;
	}
	if (!run_until(c, has_reply, now_ms() + c->a->timeout_ms)) {
		no_answer(c);
		return CTL_EXIT_TIMEOUT;
	}
	return CTL_EXIT_OK;
}

static int print_reply(struct ctl *c, const char *verb, const char *what)
{
	int rc = ctl_fmt_reply(stdout, stderr, verb, c->a->device, c->reply, c->reply_len, what, c->a->json);
	if (rc < 0) {
		fprintf(stderr, "berthctl: %s sent a malformed reply: %.200s\n", c->a->device, c->reply);
		return CTL_EXIT_REFUSED;
	}
	return rc == 0 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
}

/* --- subcommands ------------------------------------------------------------- */

static int cmd_devices(struct ctl *c)
{
	c->devs = calloc(MAX_DEVICES, sizeof(*c->devs));
	if (!c->devs)
		return CTL_EXIT_USAGE;
	add_sub(c, "berth/v1/+/status", 0);
	add_sub(c, "berth/v1/+/state/reported", 0);
	int rc = session_start(c);
	if (rc)
		return rc;
	ctl_fmt_devices(stdout, c->devs, c->ndevs, hal_clock_wall_ms(), c->a->json);
	if (c->devs_dropped)
		fprintf(stderr, "berthctl: %zu more devices not listed (at most %d)\n", c->devs_dropped, MAX_DEVICES);
	return CTL_EXIT_OK;
}

static int cmd_state(struct ctl *c)
{
	int rc = session_start(c);
	if (rc)
		return rc;
	const char *state = c->reported;
	size_t len = c->reported_len;
	char *owned = NULL;
	if (!state) {
		/* Nothing retained: ask the device itself. */
		if ((rc = send_command(c, "get_state", NULL)))
			return rc;
		cJSON *root = cJSON_ParseWithLength(c->reply, c->reply_len);
		const cJSON *ok = root ? cJSON_GetObjectItemCaseSensitive(root, "ok") : NULL;
		const cJSON *res = root ? cJSON_GetObjectItemCaseSensitive(root, "result") : NULL;
		if (!cJSON_IsTrue(ok) || !cJSON_IsObject(res)) {
			cJSON_Delete(root);
			return print_reply(c, "get_state", NULL);
		}
		owned = cJSON_PrintUnformatted(res);
		cJSON_Delete(root);
		if (!owned)
			return CTL_EXIT_USAGE;
		state = owned;
		len = strlen(owned);
	}
	if (c->a->verb == CTL_SITE)
		rc = ctl_fmt_site(stdout, c->a->device, state, len, c->a->json);
	else
		rc = ctl_fmt_state(stdout, c->a->device, &c->st, state, len, hal_clock_wall_ms(), c->a->json);
	free(owned);
	if (rc) {
		fprintf(stderr, "berthctl: the reported state of %s is not a JSON object\n", c->a->device);
		return CTL_EXIT_REFUSED;
	}
	return CTL_EXIT_OK;
}

/* Reads FILE (bounded) into a malloc'ed NUL-terminated buffer. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
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

static int cmd_deploy(struct ctl *c)
{
	char err[512];
	size_t len = 0;
	char *text = read_file(c->a->file, &len, err, sizeof(err));
	if (!text) {
		fprintf(stderr, "berthctl: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	/* The same parser as berthd's: a spec it would refuse is never sent. */
	struct deploy_set *set = malloc(sizeof(*set));
	struct deploy_error derr;
	int rc = set ? deploy_parse(text, len, set, &derr) : -ENOMEM;
	if (rc) {
		if (set)
			deploy_error_format(&derr, err, sizeof(err));
		fprintf(stderr, "berthctl: %s: %s; nothing was sent\n", c->a->file, set ? err : "out of memory");
		free(set);
		free(text);
		return CTL_EXIT_USAGE;
	}
	uint64_t version = c->a->version ? c->a->version : set->version;
	char what[256];
	int o = snprintf(what, sizeof(what), "%u deployment%s", set->n, set->n == 1 ? "" : "s");
	for (unsigned i = 0; i < set->n && o > 0 && (size_t)o < sizeof(what); i++)
		o += snprintf(what + o, sizeof(what) - (size_t)o, "%s%s", i ? ", " : ": ", set->d[i].name);
	free(set);
	if (version == 0) {
		fprintf(stderr, "berthctl: %s: version: a deploy needs a version of 1 or more (or --version N); "
				"nothing was sent\n",
			c->a->file);
		free(text);
		return CTL_EXIT_USAGE;
	}
	cJSON *doc = cJSON_ParseWithLength(text, len);
	free(text);
	cJSON *args = cJSON_CreateObject();
	cJSON *deps = doc ? cJSON_DetachItemFromObjectCaseSensitive(doc, "deployments") : NULL;
	cJSON_Delete(doc);
	if (!args || !deps || !cJSON_AddNumberToObject(args, "version", (double)version)) {
		cJSON_Delete(args);
		cJSON_Delete(deps);
		return CTL_EXIT_USAGE;
	}
	cJSON_AddItemToObject(args, "deployments", deps);

	if ((rc = session_start(c))) {
		cJSON_Delete(args);
		return rc;
	}
	if ((rc = send_command(c, "deploy", args)))
		return rc;
	return print_reply(c, "deploy", what);
}

static int cmd_deployment_verb(struct ctl *c, const char *verb)
{
	cJSON *args = cJSON_CreateObject();
	if (!args || !(c->a->member ? ctl_site_args(c->a, args)
				    : cJSON_AddStringToObject(args, "deployment", c->a->deployment) != NULL)) {
		cJSON_Delete(args);
		return CTL_EXIT_USAGE;
	}
	if (c->a->verb == CTL_SCALE)
		cJSON_AddNumberToObject(args, "replicas", c->a->replicas);
	if (c->a->verb == CTL_CHAOS) {
		cJSON_AddNumberToObject(args, "interval_s", c->a->interval_s);
		cJSON_AddNumberToObject(args, "duration_s", c->a->duration_s);
		if (c->a->min_running_set)
			cJSON_AddNumberToObject(args, "min_running", c->a->min_running);
	}
	int rc = session_start(c);
	if (rc) {
		cJSON_Delete(args);
		return rc;
	}
	if ((rc = send_command(c, verb, args)))
		return rc;
	return print_reply(c, verb, NULL);
}

static int cmd_stream(struct ctl *c, bool events)
{
	int rc = session_start(c);
	if (rc)
		return rc;
	char presence[160];
	ctl_fmt_presence(&c->st, hal_clock_wall_ms(), presence, sizeof(presence));
	if (!c->a->json && (!c->st.known || !c->st.online))
		fprintf(stderr, "berthctl: device %s is %s; waiting for what it sends\n", c->a->device, presence);
	if (c->a->follow) {
		run_until(c, never, 0);
		return CTL_EXIT_OK; /* interrupted */
	}
	bool done = run_until(c, events && !c->a->count ? never : enough_rows, now_ms() + c->a->timeout_ms);
	if (done || (events && !c->a->count))
		goto out;
	if (interrupted)
		return CTL_EXIT_OK;
	if (c->rows == 0) {
		fprintf(stderr, "berthctl: no %s from %s within %s; it is %s\n", events ? "events" : "telemetry",
			c->a->device, secs(c), presence);
	} else {
		fprintf(stderr, "berthctl: %u of %u rows within %s\n", c->rows, c->a->count, secs(c));
	}
	return CTL_EXIT_TIMEOUT;
out:
	if (events && c->rows == 0 && !c->a->json)
		fprintf(stderr, "berthctl: no events from %s within %s; it is %s\n", c->a->device, secs(c),
			presence);
	return CTL_EXIT_OK;
}


/* The policy block of the device's reported state: version, violations, items. */
static int cmd_policy(struct ctl *c)
{
	int rc = session_start(c);
	if (rc)
		return rc;
	if (!c->reported) {
		fprintf(stderr, "berthctl: %s has no reported state on the broker\n", c->a->device);
		return CTL_EXIT_TIMEOUT;
	}
	cJSON *root = cJSON_ParseWithLength(c->reported, c->reported_len);
	const cJSON *trust = root ? cJSON_GetObjectItemCaseSensitive(root, "trust") : NULL;
	const cJSON *pol = trust ? cJSON_GetObjectItemCaseSensitive(trust, "policy") : NULL;
	if (!cJSON_IsObject(pol)) {
		cJSON_Delete(root);
		fprintf(stderr, "berthctl: the reported state of %s carries no policy (an agent without trust support?)\n",
			c->a->device);
		return CTL_EXIT_REFUSED;
	}
	if (c->a->json) {
		char *txt = cJSON_PrintUnformatted(trust);
		printf("%s\n", txt ? txt : "{}");
		free(txt);
		cJSON_Delete(root);
		return CTL_EXIT_OK;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(pol, "version");
	const cJSON *nv = cJSON_GetObjectItemCaseSensitive(pol, "violations");
	const cJSON *nr = cJSON_GetObjectItemCaseSensitive(pol, "repaired");
	const cJSON *kv = cJSON_GetObjectItemCaseSensitive(trust, "keys_version");
	const cJSON *sg = cJSON_GetObjectItemCaseSensitive(trust, "signatures");
	const cJSON *rf = cJSON_GetObjectItemCaseSensitive(trust, "refused");
	printf("device:      %s\n", c->a->device);
	printf("policy:      version %.0f%s\n", cJSON_IsNumber(v) ? v->valuedouble : 0,
	       cJSON_IsNumber(v) && v->valuedouble == 0 ? " (none installed: everything allowed)" : "");
	printf("violations:  %.0f   repaired: %.0f\n", cJSON_IsNumber(nv) ? nv->valuedouble : 0,
	       cJSON_IsNumber(nr) ? nr->valuedouble : 0);
	printf("keys:        list version %.0f, signatures %s, refused messages %.0f\n",
	       cJSON_IsNumber(kv) ? kv->valuedouble : 0, cJSON_IsString(sg) ? sg->valuestring : "?",
	       cJSON_IsNumber(rf) ? rf->valuedouble : 0);
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(pol, "items");
	if (cJSON_GetArraySize(items) > 0) {
		printf("\n%-20s %-11s %-7s %-18s %s\n", "DEPLOYMENT", "RULE", "MODE", "STATUS", "REASON");
		for (const cJSON *it = items->child; it; it = it->next) {
			const char *f[5] = { "deployment", "rule", "mode", "status", "reason" };
			const char *val[5];
			for (int i = 0; i < 5; i++) {
				const cJSON *x = cJSON_GetObjectItemCaseSensitive(it, f[i]);
				val[i] = cJSON_IsString(x) ? x->valuestring : "-";
			}
			printf("%-20s %-11s %-7s %-18s %s\n", val[0], val[1], val[2], val[3], val[4]);
		}
	}
	cJSON_Delete(root);
	return CTL_EXIT_OK;
}

/* The reported version of a policy (policy) or key list (keys), -1 when unknown. */
static double reported_version(const struct ctl *c, bool policy)
{
	cJSON *root = c->reported ? cJSON_ParseWithLength(c->reported, c->reported_len) : NULL;
	const cJSON *t = root ? cJSON_GetObjectItemCaseSensitive(root, "trust") : NULL;
	const cJSON *v = NULL;
	if (t && policy) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "policy");
		v = p ? cJSON_GetObjectItemCaseSensitive(p, "version") : NULL;
	} else if (t) {
		v = cJSON_GetObjectItemCaseSensitive(t, "keys_version");
	}
	double out = cJSON_IsNumber(v) ? v->valuedouble : -1;
	cJSON_Delete(root);
	return out;
}
static bool policy_seen(const struct ctl *c) { return reported_version(c, true) >= (double)c->want_version; }
static bool keys_seen(const struct ctl *c) { return reported_version(c, false) >= (double)c->want_version; }

/* set-policy / set-keys: sign FILE, publish it retained, wait until the device reports its version. */
static int cmd_set_doc(struct ctl *c, bool policy)
{
	const char *kind = policy ? "policy" : "keys";
	char err[512];
	size_t len = 0;
	char *text = read_file(c->a->file, &len, err, sizeof(err));
	if (!text) {
		fprintf(stderr, "berthctl: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	cJSON *doc = cJSON_ParseWithLength(text, len);
	const cJSON *ver = doc ? cJSON_GetObjectItemCaseSensitive(doc, "version") : NULL;
	c->want_version = cJSON_IsNumber(ver) && ver->valuedouble >= 1 ? (uint64_t)ver->valuedouble : 0;
	cJSON_Delete(doc);
	if (!c->want_version || !c->has_key) {
		fprintf(stderr, "berthctl: %s: %s; nothing was sent\n", c->a->file,
			!c->has_key ? "a signing key is needed (--sign-key or $BERTH_SIGN_KEY)"
				    : "version: an integer >= 1 is needed");
		free(text);
		return CTL_EXIT_USAGE;
	}
	char target[ENVELOPE_TARGET_MAX + 1];
	snprintf(target, sizeof(target), "%s%s", c->a->target ? "" : "device:", c->a->target ? c->a->target : c->a->device);
	char *signed_doc = ctl_sign_text(text, len, kind, c->key_id, c->priv, target, 0);
	free(text);
	if (!signed_doc)
		return CTL_EXIT_USAGE;
	int rc = session_start(c);
	if (!rc) {
		char topic[TOPIC_MAX];
		snprintf(topic, sizeof(topic), "berth/v1/%s/%s", c->a->device, kind);
		rc = uplink_publish(c->up, topic, signed_doc, strlen(signed_doc), 1, true, NULL, 0, NULL) ? CTL_EXIT_BROKER : 0;
		if (!rc && !run_until(c, policy ? policy_seen : keys_seen, now_ms() + c->a->timeout_ms)) {
			fprintf(stderr, "berthctl: %s did not report %s version %llu within %s s (refused? see berthctl events %s)\n",
				c->a->device, kind, (unsigned long long)c->want_version, secs(c), c->a->device);
			rc = CTL_EXIT_TIMEOUT;
		}
	}
	free(signed_doc);
	if (!rc)
		printf("%s: %s version %llu in force\n", c->a->device, kind, (unsigned long long)c->want_version);
	return rc;
}

/* --- main --------------------------------------------------------------------- */

static int load_settings(struct ctl *c)
{
	config_defaults(&c->cfg);
	if (c->a->config_file) {
		struct config_error err;
		if (config_load(c->a->config_file, &c->cfg, &err)) {
			char msg[512];
			config_error_format(c->a->config_file, &err, msg, sizeof(msg));
			fprintf(stderr, "berthctl: %s\n", msg);
			return CTL_EXIT_USAGE;
		}
	}
	ctl_args_apply(c->a, &c->cfg);
	if (c->cfg.broker.tls.enabled && !c->cfg.broker.tls.ca_file[0]) {
		fprintf(stderr, "berthctl: TLS needs a CA file (--cafile or broker.tls.ca_file)\n");
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

static void set_topics(struct ctl *c)
{
	const char *d = c->a->device;
	snprintf(c->console_topic, sizeof(c->console_topic), "berthctl/%s/sync", c->client_id);
	if (!d)
		return;
	snprintf(c->t_status, TOPIC_MAX, "berth/v1/%s/status", d);
	snprintf(c->t_reported, TOPIC_MAX, "berth/v1/%s/state/reported", d);
	snprintf(c->t_events, TOPIC_MAX, "berth/v1/%s/events", d);
	snprintf(c->t_telemetry, TOPIC_MAX, "berth/v1/%s/telemetry", d);
	const char *verb = c->a->verb == CTL_STATE || c->a->verb == CTL_SITE ? "get_state" : ctl_site_verb(c->a->verb);
	/* v5: a reply topic of our own; 3.1.1: the device's documented fallback. */
	snprintf(c->t_reply_v5, TOPIC_MAX, "berth/v1/%s/cmd/%s/reply/%s", d, verb, c->client_id);
	snprintf(c->t_reply_v311, TOPIC_MAX, "berth/v1/%s/cmd/%s/reply", d, verb);
	/* The status says whether it is online; the reported state's ts when it
	 * was last seen (a Last Will carries no time). */
	add_sub(c, c->t_status, 0);
	add_sub(c, c->t_reported, 0);
	switch (c->a->verb) {
	case CTL_STATE: /* get_state when nothing is retained */
	case CTL_SITE:
	case CTL_DEPLOY:
	case CTL_SCALE:
	case CTL_RESTART:
	case CTL_REMOVE:
	case CTL_CHAOS:
	case CTL_ROLLBACK:
	case CTL_SITE_JOIN:
	case CTL_SITE_LEAVE:
		add_sub(c, c->t_reply_v5, 1);
		add_sub(c, c->t_reply_v311, 1);
		break;
	case CTL_EVENTS:
		add_sub(c, c->t_events, 1);
		break;
	case CTL_TELEMETRY:
		add_sub(c, c->t_telemetry, 1);
		break;
	default:
		break;
	}
}

/* Validates a deployments document with the parser berthd uses: 0 valid, 2 invalid. */
static int check_deployments(const char *path)
{
	struct deploy_set *set = malloc(sizeof(*set));
	struct deploy_error err;
	if (!set)
		return 1;
	int rc = deploy_load(path, set, &err);
	if (rc) {
		char msg[512];
		deploy_error_format(&err, msg, sizeof(msg));
		fprintf(stderr, "berthctl: invalid deployments: %s: %s\n", path, msg);
		free(set);
		return 2;
	}
	printf("%s: ok (version %llu, %u deployments)\n", path, (unsigned long long)set->version, set->n);
	for (unsigned i = 0; i < set->n; i++)
		printf("  %s replicas=%u..%u desired=%u port=%u hash=%016llx\n", set->d[i].name, set->d[i].replicas_min,
		       set->d[i].replicas_max, set->d[i].replicas, set->d[i].port_base,
		       (unsigned long long)set->d[i].spec_hash);
	free(set);
	return 0;
}

/* The subcommands answered on this machine without a broker (berthd's parser, the
 * gateway's checks, its local API, signing); -1 for the others. */
static int local_command(const struct ctl_args *a)
{
	if (a->verb == CTL_CHECK_DEPLOYMENTS)
		return check_deployments(a->file);
	if (a->verb == CTL_CHECK)
		return (int)ctl_check_run(stdout, a->config_file ? a->config_file : "/etc/berth/config.json",
					  a->timeout_ms);
	if (a->verb == CTL_STATE && a->local)
		return ctl_local_state(a);
	if (a->verb == CTL_SIGN)
		return ctl_sign_main(a);
	if (a->verb == CTL_KEYGEN)
		return ctl_sign_keygen(a->key_id, a->file);
	return -1;
}

static int run_verb(struct ctl *c)
{
	int rc;
	switch (c->a->verb) {
	case CTL_DEVICES: rc = cmd_devices(c); break;
	case CTL_STATE:
	case CTL_SITE: rc = cmd_state(c); break;
	case CTL_DEPLOY: rc = cmd_deploy(c); break;
	case CTL_SCALE: rc = cmd_deployment_verb(c, "scale"); break;
	case CTL_RESTART: rc = cmd_deployment_verb(c, "restart"); break;
	case CTL_ROLLBACK: rc = cmd_deployment_verb(c, "rollback"); break;
	case CTL_REMOVE: rc = cmd_deployment_verb(c, "remove"); break;
	case CTL_CHAOS: rc = cmd_deployment_verb(c, "chaos"); break;
	case CTL_EVENTS: rc = cmd_stream(c, true); break;
	case CTL_TELEMETRY: rc = cmd_stream(c, false); break;
	case CTL_POLICY: rc = cmd_policy(c); break;
	case CTL_SET_POLICY: rc = cmd_set_doc(c, true); break;
	case CTL_SET_KEYS: rc = cmd_set_doc(c, false); break;
	default: rc = c->a->member ? cmd_deployment_verb(c, ctl_site_verb(c->a->verb)) : CTL_EXIT_USAGE; break;
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct ctl_args a;
	char err[512];
	/* A reader that stops early (grep -q) must not turn into an exit by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (ctl_args_parse(argc, argv, &a, err, sizeof(err))) {
		fprintf(stderr, "berthctl: %s\n", err);
		return CTL_EXIT_USAGE;
	}
	if (a.verb == CTL_HELP) {
		fputs(ctl_usage(), stdout);
		return argc > 1 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	if (a.verb == CTL_VERSION) {
		printf("berthctl %s\n", BERTH_VERSION);
		return CTL_EXIT_OK;
	}
	if (a.group) {
		fprintf(stderr, "berthctl: --group: groups are not supported by this berthctl yet; nothing was sent\n");
		return CTL_EXIT_USAGE;
	}
	int lrc = local_command(&a);
	if (lrc >= 0)
		return lrc;
	/* The uplink's log lines only on request: the output is for people and scripts. */
	log_set_level(a.verbose >= 2 ? LOG_LEVEL_DBG : a.verbose ? LOG_LEVEL_INF : LOG_LEVEL_ERR);

	struct ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return CTL_EXIT_USAGE;
	c->a = &a;
	int rc = load_settings(c);
	if (rc)
		goto out;
	const char *kp = ctl_sign_key_path(&a);
	if (kp) {
		if (ctl_sign_key_load(kp, c->key_id, c->priv)) {
			rc = CTL_EXIT_USAGE;
			goto out;
		}
		c->has_key = true;
	}
	snprintf(c->client_id, sizeof(c->client_id), "berthctl-%ld-%04x", (long)getpid(),
		 (unsigned)(hal_clock_now_us() & 0xffff));
	set_topics(c);

	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: poll returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	c->loop = loop_create();
	if (!c->loop) {
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	rc = run_verb(c);
out:
	fflush(stdout);
	uplink_destroy(c->up);
	loop_destroy(c->loop);
	free(c->reported);
	free(c->reply);
	free(c->devs);
	memset(c->priv, 0, sizeof(c->priv));
	free(c);
	return rc;
}
