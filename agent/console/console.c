/* agent/console/console.c - glues uplink, forwarder and control to the device's topics; status, reported state, replies. */
#include "agent/console/console.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/console/outbox.h"
#include "agent/base/log.h"
#include "agent/base/prom.h"
#include "agent/base/loop.h"
#include "agent/console/republish.h"
#include "agent/telemetry/store.h"
#include "agent/telemetry/collector.h"
#include "agent/console/uplink.h"
#include "agent/base/textfile.h"
#include "agent/trust/trust.h"
#include "agent/base/version.h"
#include "agent/model/groups.h"
#include "hal/clock.h"

#define LOG_TAG "console"

#define REPORT_CHECK_MS 1000   /* the reported state's structure is checked (and at most published) this often */
#define REPORT_MAX 32768

struct console {
	struct loop *loop;
	struct store *st;
	struct uplink *up;
	struct outbox *fwd;
	struct control *ctl;
	struct trust *trust;
	const struct control_target_ops *ops;
	void *target_ctx;
	char device_id[64];
	char base[96];                 /* berth/v1/<device>/ */
	char t_status[160], t_reported[160], t_desired[160], t_policy[160], t_keys[160], t_cmd_sub[160], t_cmd_prefix[160];
	char t_telemetry[160], t_events[160];
	char will[256];
	struct republish *reporter;     /* NULL without a broker */
	char topic_buf[256];
	struct loop_timer kick_timer;   /* sends queued replies after the command's transaction */
	struct loop_timer batch_timer;  /* commits the commands of one loop turn */
	bool batch_open;                /* a store transaction holds the commands of this turn */
	uint32_t batch_n;
	uint64_t replies_direct;        /* sent without the queue (store unavailable) */
	uint64_t replies_lost;          /* neither queued nor sent: counted, logged */
	struct groups subscribed;       /* group command topics subscribed on this connection */
	uint64_t group_commands;        /* received on a group topic of one of our groups */
	uint64_t group_refused;         /* received for a group this gateway is not in (not applied) */
	bool store_up;                  /* the store was available at the last kick */
};

static void publish_status(struct console *s, bool online)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "{\"schema\":1,\"device\":\"%s\",\"online\":%s,\"ts\":%lld,\"version\":\"%s\"}",
			 s->device_id, online ? "true" : "false", (long long)hal_clock_wall_ms(), BERTH_VERSION);
	if (uplink_publish(s->up, s->t_status, buf, (size_t)n, 1, true, NULL, 0, NULL))
		log_wrn("event=status_not_sent online=%d", online);
}

static int report_render(void *arg, char *buf, size_t len, bool figures)
{
	struct console *s = arg;
	return control_report(s->ctl, buf, len, figures);
}

static bool report_can_publish(void *arg)
{
	struct console *s = arg;
	return s->up && uplink_connected(s->up);
}

static int report_publish(void *arg, const char *json, size_t len)
{
	struct console *s = arg;
	return uplink_publish(s->up, s->t_reported, json, len, 1, true, NULL, 0, NULL);
}

/* Degraded mode: events cannot be buffered, so store_unavailable is published at once (QoS 1,
 * not retained) on every connection while it lasts, as a batch of one row with seq 0 (a row
 * that never was in the outbox; consumers do not deduplicate seq 0). */
static void publish_store_unavailable(struct console *s)
{
	struct store_stats ss;
	store_get_stats(s->st, &ss);
	if (!ss.open_err)
		return;
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "{\"schema\":1,\"device\":\"%s\",\"kind\":\"event\",\"first_seq\":0,\"last_seq\":0,\"rows\":[{\"seq\":0,"
			 "\"ts\":%lld,\"data\":{\"event\":\"store_unavailable\",\"detail\":{\"error\":\"%s\","
			 "\"dropped_telemetry\":%" PRIu64 ",\"dropped_events\":%" PRIu64 "}}}]}",
			 s->device_id, (long long)hal_clock_wall_ms(), strerror(-ss.open_err), ss.dropped_telemetry,
			 ss.dropped_events);
	if (n < 0 || (size_t)n >= sizeof(buf) ||
	    uplink_publish(s->up, s->t_events, buf, (size_t)n, 1, false, NULL, 0, NULL))
		log_wrn("event=event_not_sent type=store_unavailable");
}

/* The outbox's batches: QoS 1, not retained. */
static int publish_batch(void *arg, const char *topic, const void *payload, size_t len, int *mid)
{
	struct console *s = arg;
	return uplink_publish(s->up, topic, payload, len, 1, false, NULL, 0, mid);
}

/* Queued command replies: QoS 1, not retained, with the command's correlation data. */
static int publish_reply(void *arg, const char *topic, const void *payload, size_t len, const void *corr,
			 size_t corr_len, int *mid)
{
	struct console *s = arg;
	return uplink_publish(s->up, topic, payload, len, 1, false, corr, corr_len, mid);
}

#define GROUP_PREFIX "berth/v1/group/"

static int group_topic(char *buf, size_t len, const char *group, bool sub)
{
	return snprintf(buf, len, GROUP_PREFIX "%s/cmd/%s", group, sub ? "+" : "");
}

/* Subscribes to the group command topics of the groups in force and drops
 * those of groups left (a desired state's "groups" changed the list). */
static void sync_groups(struct console *s)
{
	if (!s->up || !uplink_connected(s->up))
		return;
	const struct groups *want = trust_groups(s->trust);
	char topic[96];
	for (unsigned i = 0; i < s->subscribed.n; i++) {
		if (groups_has(want, s->subscribed.name[i]))
			continue;
		group_topic(topic, sizeof(topic), s->subscribed.name[i], true);
		if (uplink_unsubscribe(s->up, topic))
			log_wrn("event=group_sub_failed group=%s", s->subscribed.name[i]);
	}
	for (unsigned i = 0; i < want->n; i++) {
		if (groups_has(&s->subscribed, want->name[i]))
			continue;
		group_topic(topic, sizeof(topic), want->name[i], true);
		if (uplink_subscribe(s->up, topic, 1))
			log_wrn("event=group_sub_failed group=%s", want->name[i]);
	}
	s->subscribed = *want;
}

static void on_connected(void *arg)
{
	struct console *s = arg;
	s->subscribed.n = 0;
	sync_groups(s);
	/* Subscriptions are made again on every connection: a clean session
	 * starts without any, so none can be lost silently. */
	if (uplink_subscribe(s->up, s->t_cmd_sub, 1) || uplink_subscribe(s->up, s->t_desired, 1) ||
	    uplink_subscribe(s->up, s->t_policy, 1) || uplink_subscribe(s->up, s->t_keys, 1))
		log_err("event=subscribe_failed");
	publish_status(s, true);
	publish_store_unavailable(s);
	republish_connected(s->reporter);
	outbox_on_connected(s->fwd);
}

static void on_disconnected(void *arg)
{
	struct console *s = arg;
	outbox_on_disconnected(s->fwd);
}

static void on_published(void *arg, int mid, int reason)
{
	struct console *s = arg;
	outbox_on_published(s->fwd, mid, reason);
}

/* Group commit: the commands that arrive in one turn of the loop share one store
 * transaction (their journal entries and queued replies), committed at the end of the
 * turn or after BATCH_MAX commands; their replies leave only after the commit. A burst
 * of commands then costs one sync per turn, not one per command. A deploy or a desired
 * state is persisted in a transaction of its own: the batch is committed before it. */
#define BATCH_MAX 256

static void batch_commit(struct console *s)
{
	if (!s->batch_open)
		return;
	s->batch_open = false;
	s->batch_n = 0;
	loop_timer_stop(s->loop, &s->batch_timer);
	if (store_commit(s->st) != 0)
		log_wrn("event=command_batch_commit_failed");
	if (s->fwd)
		outbox_kick(s->fwd);
}

static void on_batch_timer(void *arg) { batch_commit(arg); }

static void batch_add(struct console *s)
{
	if (!s->batch_open) {
		if (!store_available(s->st) || store_begin(s->st) != 0)
			return;
		if (loop_timer_start(s->loop, &s->batch_timer, 0, 0) < 0) {
			if (store_commit(s->st) != 0)
				log_wrn("event=command_batch_commit_failed");
			return;
		}
		s->batch_open = true;
	}
	s->batch_n++;
}

/* A message on berth/v1/group/<g>/cmd/<verb> (rest = "<g>/cmd/<verb>"):
 * the verb when g is one of this gateway's groups. A group it is not in (a
 * subscription the broker kept from before the list changed) is refused:
 * counted, an event, no reply (the sender addressed the group's members),
 * and the topic is unsubscribed. */
static const char *group_command(struct console *s, const char *rest, char gname[GROUPS_NAME_MAX + 1])
{
	size_t n = strcspn(rest, "/");
	if (!groups_name_valid(rest, n) || strncmp(rest + n, "/cmd/", 5) != 0)
		return NULL;
	memcpy(gname, rest, n);
	gname[n] = '\0';
	if (groups_has(trust_groups(s->trust), gname)) {
		s->group_commands++;
		return rest + n + 5;
	}
	s->group_refused++;
	log_wrn("event=group_refused group=%s n=%" PRIu64, gname, s->group_refused);
	char detail[128], topic[96];
	snprintf(detail, sizeof(detail), "{\"code\":\"not_member\",\"group\":\"%s\"}", gname);
	if (s->ops->event)
		s->ops->event(s->target_ctx, "command_refused", detail);
	group_topic(topic, sizeof(topic), gname, true);
	if (s->up && uplink_unsubscribe(s->up, topic))
		log_wrn("event=group_sub_failed group=%s", gname);
	return NULL;
}

static void on_message(void *arg, const struct uplink_msg *m)
{
	struct console *s = arg;
	if (strcmp(m->topic, s->t_desired) == 0) {
		batch_commit(s);
		(void)control_handle_desired(s->ctl, m->payload, m->len);
		return;
	}
	if (strcmp(m->topic, s->t_policy) == 0) {
		(void)control_handle_policy(s->ctl, m->payload, m->len);
		return;
	}
	if (strcmp(m->topic, s->t_keys) == 0) {
		(void)control_handle_keys(s->ctl, m->payload, m->len);
		return;
	}
	const char *group = NULL;
	char gname[GROUPS_NAME_MAX + 1];
	const char *verb;
	size_t pl = strlen(s->t_cmd_prefix);
	if (strncmp(m->topic, s->t_cmd_prefix, pl) == 0) {
		verb = m->topic + pl;
	} else if (strncmp(m->topic, GROUP_PREFIX, sizeof(GROUP_PREFIX) - 1) == 0) {
		if (!(verb = group_command(s, m->topic + sizeof(GROUP_PREFIX) - 1, gname)))
			return;
		group = gname;
	} else {
		return;
	}
	if (!*verb || strchr(verb, '/') || strlen(verb) > 32)
		return; /* our own replies or junk below cmd/ */
	struct control_reply_to rt = {
		.verb = verb,
		.response_topic = m->response_topic,
		.corr = m->corr,
		.corr_len = m->corr_len,
		.group = group,
	};
	if (strcmp(verb, "deploy") == 0)
		batch_commit(s);
	else
		batch_add(s);
	control_handle(s->ctl, verb, m->payload, m->len, &rt);
	if (s->batch_open && s->batch_n >= BATCH_MAX)
		batch_commit(s);
}

static void send_reply(void *arg, const struct control_reply_to *rt, const char *json, size_t len)
{
	struct console *s = arg;
	const char *topic = rt->response_topic;
	if (!topic || !topic[0] || !uplink_is_v5(s->up)) {
		snprintf(s->topic_buf, sizeof(s->topic_buf), "%s%s/reply", s->t_cmd_prefix, rt->verb);
		topic = s->topic_buf;
	}
	if (!s->up)
		return;
	/* Queued in the store (inside the command's transaction when one is open) and sent by
	 * the outbox before telemetry, so a burst of commands gets every reply, also across a
	 * reconnect or a restart. Only without a store is it published at once. */
	int rc = store_reply_put(s->st, topic, rt->corr, rt->corr_len, json, len, hal_clock_wall_ms());
	if (rc == 0) {
		if (s->batch_open)
			return; /* sent after the batch's commit */
		if (!loop_timer_armed(&s->kick_timer) && loop_timer_start(s->loop, &s->kick_timer, 0, 0) < 0)
			outbox_kick(s->fwd);
		return;
	}
	rc = uplink_publish(s->up, topic, json, len, 1, false, rt->corr, rt->corr_len, NULL);
	if (rc == 0) {
		s->replies_direct++;
		return;
	}
	s->replies_lost++;
	log_wrn("event=reply_not_sent topic=%s err=%s lost=%" PRIu64, topic, strerror(-rc), s->replies_lost);
}

static void kick_replies(void *arg)
{
	struct console *s = arg;
	if (s->fwd)
		outbox_kick(s->fwd);
}

void console_state_changed(void *arg)
{
	struct console *s = arg;
	/* A command's change goes out at once (commands are few, and each has a
	 * reply anyway); other changes are left to the reporter's checks. */
	if (s->reporter)
		republish_changed(s->reporter);
	sync_groups(s); /* a desired state may have changed the groups */
}

int console_report(struct console *s, char *buf, size_t len) { return control_report(s->ctl, buf, len, true); }

/* The store opened after berthd ran without it (the collector retries it, then ticks):
 * what was skipped meanwhile is read now. The replay window and stored trust documents,
 * the persisted desired state (converged on), the queued replies and rows, and the
 * retained desired state, policy and keys (subscribed again: the broker sends its
 * retained copies, refused while nothing could be persisted). */
static void store_back(struct console *s)
{
	log_inf("event=store_back action=reread");
	trust_store_back(s->trust);
	int rc = control_store_back(s->ctl);
	if (rc)
		log_err("event=store_back_desired_failed err=%s", strerror(-rc));
	if (s->fwd)
		outbox_store_back(s->fwd);
	if (s->up && uplink_connected(s->up) &&
	    (uplink_subscribe(s->up, s->t_desired, 1) || uplink_subscribe(s->up, s->t_policy, 1) ||
	     uplink_subscribe(s->up, s->t_keys, 1)))
		log_err("event=subscribe_failed");
	console_state_changed(s);
}

void console_kick(void *arg)
{
	struct console *s = arg;
	bool up = store_available(s->st);
	if (up && !s->store_up)
		store_back(s);
	s->store_up = up;
	if (s->fwd)
		outbox_kick(s->fwd);
}

const char *console_topic(const struct console *s, const char *name)
{
	if (strcmp(name, "status") == 0) return s->t_status;
	if (strcmp(name, "telemetry") == 0) return s->t_telemetry;
	if (strcmp(name, "events") == 0) return s->t_events;
	if (strcmp(name, "state/reported") == 0) return s->t_reported;
	if (strcmp(name, "state/desired") == 0) return s->t_desired;
	if (strcmp(name, "policy") == 0) return s->t_policy;
	if (strcmp(name, "keys") == 0) return s->t_keys;
	return NULL;
}

static void trust_event(void *arg, const char *type, const char *detail_json)
{
	struct console *s = arg;
	if (s->ops->event)
		s->ops->event(s->target_ctx, type, detail_json);
}

/* Reads an operator's file (key list, policy) named by key; NULL when unset. */
static int read_doc(const char *key, const char *path, char **out)
{
	*out = NULL;
	if (!path[0])
		return 0;
	size_t len = 0;
	int rc = textfile_read(path, CONFIG_COMMAND_MAX_BYTES, out, &len);
	if (rc) {
		char msg[256];
		textfile_describe(rc, path, len, CONFIG_COMMAND_MAX_BYTES, msg, sizeof(msg));
		log_err("event=trust_file_unreadable key=%s message=\"%s\"", key, msg);
	}
	return rc;
}

/* The trust gate in front of control: keys, policy, replay window. */
static int trust_setup(struct console *s, struct store *st, const struct berth_config *cfg)
{
	char *keys = NULL, *policy = NULL;
	int rc = read_doc("trust.keys_file", cfg->trust.keys_file, &keys);
	if (!rc)
		rc = read_doc("trust.policy_file", cfg->trust.policy_file, &policy);
	if (!rc) {
		struct trust_opts to = {
			.device_id = cfg->device_id,
			.groups = cfg->fleet.groups,
			.require_signatures = cfg->trust.require_signatures,
			.keys_json = keys,
			.policy_json = policy,
			.event = trust_event,
			.event_arg = s,
		};
		to.verbs = control_trust_verbs(&to.n_verbs);
		struct trust_err e = { 0 };
		s->trust = trust_create(st, &to, &e);
		if (!s->trust) {
			log_err("event=trust_refused code=%s path=%s message=\"%s\"", e.code ? e.code : "internal", e.path,
				e.message);
			rc = -EINVAL;
		} else {
			control_set_trust(s->ctl, s->trust);
		}
	}
	free(keys);
	free(policy);
	return rc;
}

/* The uplink's options from the broker config (strings borrowed from cfg and s). */
static void uplink_options(const struct console *s, const struct berth_config *cfg, struct uplink_opts *uo)
{
	*uo = (struct uplink_opts){
		.host = cfg->broker.host,
		.port = cfg->broker.port,
		.client_id = cfg->device_id,
		.username = cfg->broker.username,
		.password = cfg->broker.password,
		.v5 = strcmp(cfg->broker.protocol, "v5") == 0,
		.keepalive_s = cfg->broker.keepalive_s,
		.reconnect_min_ms = (uint32_t)cfg->broker.reconnect_min_ms,
		.reconnect_max_ms = (uint32_t)cfg->broker.reconnect_max_ms,
		.reconnect_window_ms = (uint32_t)cfg->broker.reconnect_window_s * 1000u,
		.tls = cfg->broker.tls.enabled,
		.ca_file = cfg->broker.tls.ca_file,
		.cert_file = cfg->broker.tls.cert_file,
		.key_file = cfg->broker.tls.key_file,
		.tls_insecure = cfg->broker.tls.insecure,
		.will_topic = s->t_status,
		.will_payload = s->will,
		/* The forwarder's window plus room for replies and state. */
		.max_queued = (uint32_t)cfg->telemetry.inflight_max + 16,
		.session_expiry_s = (uint32_t)cfg->broker.session_expiry_s,
	};
}

/* The outbox with the telemetry keys of cfg (its rows stay in the store across a re-creation). */
static int outbox_start(struct console *s, const struct berth_config *cfg)
{
	struct outbox_opts fo = {
		.telemetry_topic = s->t_telemetry,
		.events_topic = s->t_events,
		.device_id = cfg->device_id,
		.batch_max_bytes = (uint32_t)cfg->telemetry.batch_max_bytes,
		.inflight_max = (uint32_t)cfg->telemetry.inflight_max,
		.publish_reply = publish_reply,
		.forward_rate = (uint32_t)cfg->telemetry.forward_rate,
	};
	s->fwd = outbox_create(s->loop, s->st, publish_batch, s, &fo);
	return s->fwd ? 0 : -ENOMEM;
}

/* The reported state's publisher, with telemetry.state_refresh_s of cfg. */
static int reporter_start(struct console *s, const struct berth_config *cfg)
{
	struct republish_opts ro = {
		.check_ms = REPORT_CHECK_MS,
		.refresh_ms = (uint32_t)cfg->telemetry.state_refresh_s * 1000u,
		.max_bytes = REPORT_MAX,
		.render = report_render,
		.can_publish = report_can_publish,
		.publish = report_publish,
		.arg = s,
	};
	s->reporter = republish_create(s->loop, &ro);
	return s->reporter ? 0 : -ENOMEM;
}

static const struct uplink_cbs console_uplink_cbs = {
	.connected = on_connected,
	.disconnected = on_disconnected,
	.message = on_message,
	.published = on_published,
};

/* Uplink, outbox and reporter when broker.enabled (the uplink connects on the loop's next
 * turn, after the outbox exists). */
static int broker_start(struct console *s, const struct berth_config *cfg)
{
	if (!cfg->broker.enabled) {
		log_inf("event=broker_disabled");
		return 0;
	}
	struct uplink_cbs ucbs = console_uplink_cbs;
	ucbs.arg = s;
	struct uplink_opts uo;
	uplink_options(s, cfg, &uo);
	s->up = uplink_create(s->loop, &uo, &ucbs);
	if (!s->up || outbox_start(s, cfg) || reporter_start(s, cfg))
		return -ENOMEM;
	return 0;
}

/* Status offline (retained), a clean disconnect; the outbox's rows stay in the store. */
static void broker_stop(struct console *s)
{
	republish_destroy(s->reporter);
	s->reporter = NULL;
	if (s->up && uplink_connected(s->up))
		publish_status(s, false);
	uplink_destroy(s->up);
	s->up = NULL;
	outbox_destroy(s->fwd);
	s->fwd = NULL;
}

struct console *console_create(struct loop *l, struct store *st, const struct berth_config *cfg,
			 const struct control_target_ops *ops, void *target_ctx)
{
	struct console *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = l;
	s->st = st;
	s->store_up = store_available(st);
	loop_timer_init(&s->kick_timer, kick_replies, s);
	loop_timer_init(&s->batch_timer, on_batch_timer, s);
	snprintf(s->device_id, sizeof(s->device_id), "%s", cfg->device_id);
	snprintf(s->base, sizeof(s->base), "berth/v1/%s/", cfg->device_id);
	snprintf(s->t_status, sizeof(s->t_status), "%sstatus", s->base);
	snprintf(s->t_reported, sizeof(s->t_reported), "%sstate/reported", s->base);
	snprintf(s->t_desired, sizeof(s->t_desired), "%sstate/desired", s->base);
	snprintf(s->t_cmd_sub, sizeof(s->t_cmd_sub), "%scmd/+", s->base);
	snprintf(s->t_policy, sizeof(s->t_policy), "%spolicy", s->base);
	snprintf(s->t_keys, sizeof(s->t_keys), "%skeys", s->base);
	snprintf(s->t_cmd_prefix, sizeof(s->t_cmd_prefix), "%scmd/", s->base);
	snprintf(s->t_telemetry, sizeof(s->t_telemetry), "%stelemetry", s->base);
	snprintf(s->t_events, sizeof(s->t_events), "%sevents", s->base);
	snprintf(s->will, sizeof(s->will), "{\"schema\":1,\"device\":\"%s\",\"online\":false}", cfg->device_id);
	struct control_cbs ccbs = { .send_reply = send_reply, .state_changed = console_state_changed, .arg = s };
	s->ctl = control_create(st, cfg->device_id, ops, target_ctx, &ccbs);
	if (!s->ctl)
		goto errout;
	s->ops = ops;
	s->target_ctx = target_ctx;
	if (trust_setup(s, st, cfg))
		goto errout;

	if (broker_start(s, cfg))
		goto errout;
	return s;
errout:
	log_err("event=console_create_failed");
	console_destroy(s);
	return NULL;
}

void console_destroy(struct console *s)
{
	if (!s)
		return;
	batch_commit(s);
	loop_timer_stop(s->loop, &s->kick_timer);
	loop_timer_stop(s->loop, &s->batch_timer);
	broker_stop(s);
	control_destroy(s->ctl);
	trust_destroy(s->trust);
	free(s);
}

int console_boot(struct console *s, const char *fallback_json) { return control_boot(s->ctl, fallback_json); }

int console_reconfigure(struct console *s, const struct berth_config *cfg)
{
	/* A new uplink with the new settings connects on the loop's next turn; the outbox's
	 * rows stay in the store and the new outbox sends what was never acknowledged. */
	broker_stop(s);
	return broker_start(s, cfg);
}

void console_telemetry_source(void *arg, struct collector_buf *b)
{
	struct console *s = arg;
	struct uplink_stats us = { 0 };
	struct outbox_stats fs = { 0 };
	struct control_stats cs;
	uint64_t replies_queued, replies_dropped;
	store_reply_counts(s->st, &replies_queued, &replies_dropped);
	if (s->up) {
		uplink_get_stats(s->up, &us);
		outbox_get_stats(s->fwd, &fs);
	}
	control_get_stats(s->ctl, &cs);
	collector_buf_printf(b,
			     "{\"connected\":%s,\"protocol\":\"%s\",\"connects\":%" PRIu64 ",\"disconnects\":%" PRIu64
			     ",\"connect_failures\":%" PRIu64 ",\"msgs_sent\":%" PRIu64 ",\"rows_acked\":%" PRIu64
			     ",\"msgs_refused\":%" PRIu64 ",\"inflight\":%u,\"commands\":%" PRIu64 ",\"command_duplicates\":%" PRIu64
			     ",\"command_errors\":%" PRIu64 ",\"replies_queued\":%" PRIu64 ",\"replies_sent\":%" PRIu64
			     ",\"replies_dropped\":%" PRIu64 ",\"group_commands\":%" PRIu64 ",\"group_refused\":%" PRIu64 "}",
			     us.connected ? "true" : "false", us.v5 ? "v5" : "v311", us.connects, us.disconnects,
			     us.connect_failures, fs.msgs_sent, fs.rows_acked, fs.msgs_refused, fs.inflight, cs.received,
			     cs.duplicates, cs.rejected, replies_queued, fs.replies_sent + s->replies_direct,
			     replies_dropped + s->replies_lost, s->group_commands, s->group_refused);
}

bool console_has_desired_state(struct console *s)
{
	uint64_t version;
	char probe[2];
	int rc = store_desired_get(s->st, &version, probe, sizeof(probe));
	return rc == 0 || rc == -ENOSPC;
}

size_t console_render_metrics(struct console *s, char *buf, size_t len)
{
	static const char *const fam[][3] = {
		{ "berth_uplink_connected", "gauge", "Broker connected (1) or not." },
		{ "berth_uplink_connects_total", "counter", "Connections made." },
		{ "berth_uplink_reconnects_total", "counter", "Connections after the first." },
		{ "berth_outbox_rows", "gauge", "Rows buffered for the broker." },
		{ "berth_outbox_bytes", "gauge", "Database bytes in use." },
		{ "berth_outbox_rows_acked_total", "counter", "Rows the broker acknowledged." },
	};
	struct uplink_stats us = { 0 };
	struct outbox_stats fs = { 0 };
	struct store_stats ss;
	if (s->up) {
		uplink_get_stats(s->up, &us);
		outbox_get_stats(s->fwd, &fs);
	}
	store_get_stats(s->st, &ss);
	const double v[] = { us.connected, (double)us.connects, (double)(us.connects ? us.connects - 1 : 0),
			     (double)ss.rows, (double)ss.used_bytes, (double)fs.rows_acked };
	size_t n = 0;
	for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		prom_family(buf, len, &n, fam[i][0], fam[i][1], fam[i][2], v[i]);
	int k = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
			 "# HELP berth_outbox_dropped_total Rows pruned by the disk budget.\n"
			 "# TYPE berth_outbox_dropped_total counter\n"
			 "berth_outbox_dropped_total{kind=\"telemetry\"} %llu\n"
			 "berth_outbox_dropped_total{kind=\"event\"} %llu\n",
			 (unsigned long long)ss.dropped_telemetry, (unsigned long long)ss.dropped_events);
	return n + (size_t)(k > 0 ? k : 0);
}
