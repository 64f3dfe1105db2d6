/* agent/console/control.c - applies commands once (journal), persists desired state before acknowledging, replies. */
#include "agent/console/control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/model/groups.h"
#include "agent/telemetry/store.h"
#include "agent/trust/trust.h"
#include "hal/clock.h"

#define LOG_TAG "control"

#define REPLY_MAX 32768
#define DESIRED_MAX (CONFIG_COMMAND_MAX_BYTES + 1024)

struct control {
	struct store *st;
	char device_id[64];
	const struct control_target_ops *ops;
	void *tctx;
	struct control_cbs cbs;
	uint64_t version;
	char *desired;               /* current desired JSON, owned; NULL when none */
	bool from_file;              /* desired is the deployments file's (booted without a persisted one) */
	char reply[REPLY_MAX];
	char result[REPLY_MAX - 256];
	char scratch[DESIRED_MAX];
	struct control_stats stats;
	struct trust *trust;         /* borrowed; NULL: commands applied as parsed */
};

static const char *trust_verbs[CMD_NVERBS + 3];

const char *const *control_trust_verbs(size_t *n)
{
	if (!trust_verbs[0]) {
		for (int i = 0; i < CMD_NVERBS; i++)
			trust_verbs[i] = command_verb_name((enum command_verb)i);
		trust_verbs[CMD_NVERBS] = "desired";
		trust_verbs[CMD_NVERBS + 1] = "policy";
		trust_verbs[CMD_NVERBS + 2] = "keys";
	}
	*n = CMD_NVERBS + 3;
	return trust_verbs;
}

void control_set_trust(struct control *c, struct trust *t) { c->trust = t; }

static void refresh_drift(struct control *c);

struct control *control_create(struct store *st, const char *device_id, const struct control_target_ops *ops,
			       void *target_ctx, const struct control_cbs *cbs)
{
	struct control *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->st = st;
	snprintf(c->device_id, sizeof(c->device_id), "%s", device_id);
	c->ops = ops;
	c->tctx = target_ctx;
	c->cbs = *cbs;
	return c;
}

void control_destroy(struct control *c)
{
	if (!c)
		return;
	free(c->desired);
	free(c);
}

uint64_t control_desired_version(const struct control *c) { return c->version; }
void control_get_stats(const struct control *c, struct control_stats *out) { *out = c->stats; }

static int err_set(struct command_error *e, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int err_set(struct command_error *e, const char *code, const char *fmt, ...)
{
	va_list ap;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The desired state's "groups" replace the config's while it holds (checked
 * when it was parsed; a stored one that no longer parses falls back to the config's). */
static void apply_groups(struct control *c)
{
	if (!c->trust)
		return;
	struct groups g;
	int rc = c->desired ? command_desired_groups(c->desired, &g) : 0;
	(void)trust_set_groups(c->trust, rc == 1 ? &g : NULL);
}

static void set_desired(struct control *c, uint64_t version, char *json)
{
	free(c->desired);
	c->desired = json;
	c->version = version;
	c->from_file = false;
	apply_groups(c);
}

static void changed(struct control *c)
{
	if (c->cbs.state_changed)
		c->cbs.state_changed(c->cbs.arg);
}

/* Applies the desired state in c->scratch (version) as the one in force. */
static int adopt(struct control *c, uint64_t version, const char *from)
{
	char *copy = strdup(c->scratch);
	if (!copy)
		return -ENOMEM;
	struct command_error err = { 0 };
	int rc;
	if (c->ops->apply && (rc = c->ops->apply(c->tctx, version, copy, &err))) {
		log_err("event=boot_desired_refused from=%s version=%llu code=%s message=\"%s\"", from,
			(unsigned long long)version, err.code ? err.code : "", err.message);
		free(copy);
		return rc;
	}
	set_desired(c, version, copy);
	c->from_file = strcmp(from, "deployments_file") == 0;
	log_inf("event=boot_desired from=%s version=%llu", from, (unsigned long long)version);
	changed(c);
	return 0;
}

int control_boot(struct control *c, const char *fallback_json)
{
	uint64_t version = 0;
	const char *from = "store";
	int rc = store_desired_get(c->st, &version, c->scratch, sizeof(c->scratch));
	if (rc == -ENOENT || rc == -ENODEV) { /* none persisted, or the store is unavailable */
		if (!fallback_json)
			return -ENOENT;
		from = "deployments_file";
		if (strlen(fallback_json) >= sizeof(c->scratch))
			return -EFBIG;
		strcpy(c->scratch, fallback_json);
		/* Its version, when it has one (the target validates the rest). */
		char *norm = NULL;
		struct command_error perr;
		if (command_parse_desired(fallback_json, strlen(fallback_json), &version, &norm, &perr) != 0)
			version = 0;
		free(norm);
	} else if (rc) {
		return rc;
	}
	return adopt(c, version, from);
}

int control_store_back(struct control *c)
{
	uint64_t version = 0;
	int rc = store_desired_get(c->st, &version, c->scratch, sizeof(c->scratch));
	if (rc)
		return rc == -ENOENT ? 0 : rc; /* none persisted: what runs stays */
	/* As at a start with the store: the persisted state wins over the file's. Nothing
	 * else can have been taken meanwhile (a deploy needs the store). */
	if (c->desired && !c->from_file && version <= c->version)
		return 0;
	if ((rc = adopt(c, version, "store_back")) == 0)
		refresh_drift(c);
	return rc;
}

int control_report(struct control *c, char *buf, size_t len, bool figures)
{
	int n = snprintf(buf, len, "{\"schema\":%d,\"device\":\"%s\",\"ts\":%lld,\"desired_version\":%llu,\"deployments\":",
			 COMMAND_SCHEMA, c->device_id, (long long)hal_clock_wall_ms(), (unsigned long long)c->version);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	int m = 2;
	if (c->ops->report) {
		m = c->ops->report(c->tctx, buf + n, len - (size_t)n, figures);
		if (m < 0)
			return m;
	} else {
		if ((size_t)n + 3 > len)
			return -ENOSPC;
		memcpy(buf + n, "[]", 3);
	}
	n += m;
	if (c->ops->report_extra) {
		if ((size_t)n + 2 > len)
			return -ENOSPC;
		buf[n] = ',';
		m = c->ops->report_extra(c->tctx, buf + n + 1, len - (size_t)n - 1, figures);
		if (m < 0)
			return m;
		if (m > 0)
			n += 1 + m;
	}
	/* The store's availability (degraded mode: nothing buffered, drops counted). */
	int open_err = store_open_error(c->st);
	m = snprintf(buf + n, len - (size_t)n, ",\"store\":{\"available\":%s,\"error\":\"%s\"}",
		     open_err ? "false" : "true", open_err ? strerror(-open_err) : "");
	if (m < 0 || (size_t)m >= len - (size_t)n)
		return -ENOSPC;
	n += m;
	if (c->trust) {
		m = snprintf(buf + n, len - (size_t)n, ",\"groups\":");
		if (m < 0 || (size_t)m >= len - (size_t)n)
			return -ENOSPC;
		n += m;
		m = groups_format(trust_groups(c->trust), buf + n, len - (size_t)n);
		if (m < 0)
			return m;
		n += m;
		if ((size_t)n + 2 > len)
			return -ENOSPC;
		buf[n] = ',';
		m = trust_report(c->trust, buf + n + 1, len - (size_t)n - 1);
		if (m < 0)
			return m;
		n += 1 + m;
	}
	if ((size_t)n + 2 > len)
		return -ENOSPC;
	buf[n++] = '}';
	buf[n] = '\0';
	return n;
}

static bool deployment_known(struct control *c, const char *name)
{
	if (c->ops->has_deployment)
		return c->ops->has_deployment(c->tctx, name);
	return c->desired && command_desired_has(c->desired, name);
}

/* Deploy: refuse older, persist (with its reply in the journal, one
 * transaction), then apply. Returns 0 when the reply in c->reply is final. */
static int do_deploy(struct control *c, struct command *cmd, struct command_error *err, int64_t now_ms)
{
	if (cmd->args.version < c->version ||
	    (cmd->args.version == c->version && (!c->desired || strcmp(c->desired, cmd->args.desired) != 0))) {
		err->code = "stale_version";
		snprintf(err->message, sizeof(err->message), "args.version %llu is not newer than the current %llu",
			 (unsigned long long)cmd->args.version, (unsigned long long)c->version);
		return -ESTALE;
	}
	if (cmd->args.version == c->version) {
		snprintf(c->result, sizeof(c->result), "{\"version\":%llu,\"unchanged\":true}",
			 (unsigned long long)c->version);
		return 1;
	}
	int rc;
	if (c->ops->validate && (rc = c->ops->validate(c->tctx, cmd->args.desired, err)))
		return rc;
	snprintf(c->result, sizeof(c->result), "{\"version\":%llu}", (unsigned long long)cmd->args.version);
	int n = command_format_reply(c->reply, sizeof(c->reply), cmd->id, c->device_id, c->result, NULL);
	if (n < 0)
		return err_set(err, "internal", "reply too large%s", "");
	if ((rc = store_begin(c->st)) == 0) {
		if ((rc = store_desired_set(c->st, cmd->args.version, cmd->args.desired)) == 0 &&
		    (rc = store_journal_put(c->st, cmd->id, c->reply, now_ms)) == 0)
			rc = store_commit(c->st);
		else
			store_rollback(c->st);
	}
	if (rc) {
		err->code = "store_failed";
		snprintf(err->message, sizeof(err->message), "desired state could not be persisted: %s", strerror(-rc));
		return rc;
	}
	uint64_t version = cmd->args.version;
	char *json = cmd->args.desired;
	cmd->args.desired = NULL;
	if (c->ops->apply && (rc = c->ops->apply(c->tctx, version, json, err)))
		log_err("event=apply_failed version=%llu code=%s message=\"%s\"", (unsigned long long)version,
			err->code ? err->code : "", err->message);
	set_desired(c, version, json);
	log_inf("event=desired_updated version=%llu source=command id=%s", (unsigned long long)version, cmd->id);
	refresh_drift(c);
	return 0;
}

static int do_remove(struct control *c, const struct command *cmd, struct command_error *err)
{
	int rc = c->ops->remove ? c->ops->remove(c->tctx, cmd->args.deployment, err) : 0;
	if (rc)
		return rc;
	if (c->desired) {
		char *next = command_desired_without(c->desired, cmd->args.deployment);
		if (next && store_desired_set(c->st, c->version, next) == 0) {
			set_desired(c, c->version, next);
		} else {
			free(next);
			log_err("event=remove_not_persisted deployment=%s", cmd->args.deployment);
		}
	}
	return 0;
}

static int unsupported(struct command_error *err, const char *verb)
{
	return err_set(err, "unsupported", "verb %s is not supported by this agent", verb);
}

static int execute(struct control *c, struct command *cmd, struct command_error *err, int64_t now_ms)
{
	const struct control_target_ops *o = c->ops;
	strcpy(c->result, "{}");
	switch (cmd->verb) {
	case CMD_DEPLOY:
		return do_deploy(c, cmd, err, now_ms);
	case CMD_PING:
		snprintf(c->result, sizeof(c->result), "{\"pong\":true,\"ts\":%lld}", (long long)now_ms);
		return 0;
	case CMD_GET_STATE:
		return control_report(c, c->result, sizeof(c->result), true) < 0
			       ? err_set(err, "internal", "state too large%s", "")
			       : 0;
	case CMD_SITE_JOIN:
	case CMD_SITE_LEAVE: {
		bool join = cmd->verb == CMD_SITE_JOIN;
		if (!o->site_member)
			return err_set(err, "unsupported", "%s: this gateway is not in a site (site.enabled)",
				       command_verb_name(cmd->verb));
		char idq[sizeof(cmd->args.member) * 6 + 8];
		if (command_json_string(idq, sizeof(idq), cmd->args.member) < 0)
			return err_set(err, "bad_value", "args.id cannot be quoted%s", "");
		snprintf(c->result, sizeof(c->result), "{\"member\":%s,\"%s\":\"requested\"}", idq,
			 join ? "join" : "leave");
		return o->site_member(c->tctx, cmd->args.member, join ? cmd->args.address : NULL, err);
	}
	case CMD_SET_LOG_LEVEL: {
		int lvl = log_level_parse(cmd->args.level);
		if (lvl < 0)
			return err_set(err, "bad_value", "args.level \"%s\" is not a level", cmd->args.level);
		log_set_level((enum log_level)lvl);
		snprintf(c->result, sizeof(c->result), "{\"level\":\"%s\"}", log_level_name((enum log_level)lvl));
		return 0;
	}
	default:
		break;
	}
	/* The rest act on one deployment that must exist. */
	if (!deployment_known(c, cmd->args.deployment))
		return err_set(err, "unknown_deployment", "deployment \"%s\" is not deployed", cmd->args.deployment);
	switch (cmd->verb) {
	case CMD_SCALE:
		if (!o->scale)
			return unsupported(err, "scale");
		snprintf(c->result, sizeof(c->result), "{\"deployment\":\"%s\",\"replicas\":%u}", cmd->args.deployment,
			 cmd->args.replicas);
		return o->scale(c->tctx, cmd->args.deployment, cmd->args.replicas, err);
	case CMD_RESTART:
		if (!o->restart)
			return unsupported(err, "restart");
		snprintf(c->result, sizeof(c->result), "{\"deployment\":\"%s\",\"restarting\":true}", cmd->args.deployment);
		return o->restart(c->tctx, cmd->args.deployment, err);
	case CMD_ROLLBACK:
		if (!o->rollback)
			return unsupported(err, "rollback");
		snprintf(c->result, sizeof(c->result), "{\"deployment\":\"%s\",\"rolled_back\":true}",
			 cmd->args.deployment);
		return o->rollback(c->tctx, cmd->args.deployment, "requested", err);
	case CMD_REMOVE:
		snprintf(c->result, sizeof(c->result), "{\"deployment\":\"%s\",\"removed\":true}", cmd->args.deployment);
		return do_remove(c, cmd, err);
	case CMD_CHAOS:
		if (!o->chaos)
			return unsupported(err, "chaos");
		snprintf(c->result, sizeof(c->result),
			 "{\"deployment\":\"%s\",\"interval_s\":%u,\"duration_s\":%u,\"min_running\":%u}",
			 cmd->args.deployment, cmd->args.interval_s, cmd->args.duration_s, cmd->args.min_running);
		return o->chaos(c->tctx, cmd->args.deployment, cmd->args.interval_s, cmd->args.duration_s,
				cmd->args.min_running, err);
	default:
		return err_set(err, "unknown_verb", "unknown verb%s", "");
	}
}


static void trust_to_command_err(const struct trust_err *te, struct command_error *err)
{
	err->code = te->code ? te->code : "internal";
	snprintf(err->message, sizeof(err->message), "%s", te->message);
}

/* The trust gate in front of a parsed command: verified, fresh, allowed by
 * the policy, then admitted (its id persisted in the replay window) before
 * anything is applied. 0, -EALREADY (already applied: answer from the
 * journal), or -errno with err filled. */
static int gate(struct control *c, const struct command *cmd, const char *payload, size_t len, const char *group,
		struct command_error *err, bool *signed_out)
{
	struct trust_verdict v;
	struct trust_err te = { 0 };
	/* The decision log entries and the admission reach the disk in one
	 * commit, before the command is applied (at most once). */
	bool txn = store_begin(c->st) == 0;
	int rc = trust_verify(c->trust, payload, len, NULL, &v, &te);
	*signed_out = rc == 0 && v.signed_;
	/* A group topic's command must be signed for that group (not for this
	 * device or another of its groups): what was signed is what was sent. */
	if (rc == 0 && group && v.signed_ && (strncmp(v.env.target, "group:", 6) || strcmp(v.env.target + 6, group)))
		rc = trust_err_set(&te, -EPERM, "wrong_target", "auth.target",
				   "signed for %s, sent to group %s", v.env.target, group);
	if (rc == 0) {
		int64_t replicas = cmd->verb == CMD_SCALE ? (int64_t)cmd->args.replicas : -1;
		rc = trust_authorize(c->trust, &v, command_verb_name(cmd->verb), cmd->args.deployment, replicas,
				     cmd->verb == CMD_DEPLOY ? cmd->args.desired : NULL, &te);
	}
	if (rc == 0)
		rc = trust_admit(c->trust, &v, &te);
	if (txn) {
		int crc = store_commit(c->st);
		if (crc && rc == 0)
			rc = trust_err_set(&te, crc, "store_failed", "", "the admission could not be persisted: %s",
					   strerror(-crc));
	}
	if (rc)
		trust_to_command_err(&te, err);
	return rc;
}

static void send(struct control *c, const struct control_reply_to *rt, const char *json, size_t len)
{
	if (c->cbs.send_reply)
		c->cbs.send_reply(c->cbs.arg, rt, json, len);
}

void control_handle(struct control *c, const char *topic_verb, const char *payload, size_t len,
		    const struct control_reply_to *rt)
{
	struct command cmd;
	struct command_error err;
	int64_t now_ms = hal_clock_wall_ms();
	c->stats.received++;

	int rc = command_parse(topic_verb, payload, len, &cmd, &err);
	bool signed_ = false, dup = false;
	if (c->trust && rc == 0) {
		rc = gate(c, &cmd, payload, len, rt->group, &err, &signed_);
		dup = rc == -EALREADY && store_journal_get(c->st, cmd.id, now_ms, c->reply, sizeof(c->reply)) == 0;
	}
	/* A signed command is kept once by the replay window; an unsigned one (no trust gate, or
	 * trust.require_signatures off) by the journal alone. */
	if (!dup && !signed_ && (!c->trust || rc == 0) && cmd.id[0])
		dup = store_journal_get(c->st, cmd.id, now_ms, c->reply, sizeof(c->reply)) == 0;
	if (dup) {
		c->stats.duplicates++;
		log_inf("event=command_duplicate id=%s verb=%s", cmd.id, topic_verb);
		send(c, rt, c->reply, strlen(c->reply));
		command_clear(&cmd);
		return;
	}
	/* With a trust gate only admitted commands enter the journal: a refused
	 * message must not occupy the id a genuine command will carry. */
	bool journaled = c->trust && rc != 0;
	if (rc == 0) {
		rc = execute(c, &cmd, &err, now_ms);
		if (rc == 0 && cmd.verb == CMD_DEPLOY)
			journaled = true; /* do_deploy wrote reply and journal in one transaction */
		if (rc > 0)
			rc = 0;
	}
	int n;
	if (rc) {
		c->stats.rejected++;
		log_wrn("event=command_rejected id=%s verb=%.32s code=%s message=\"%s\"", cmd.id[0] ? cmd.id : "-",
			topic_verb, err.code ? err.code : "internal", err.message);
		if (!err.code)
			err.code = "internal";
		n = command_format_reply(c->reply, sizeof(c->reply), cmd.id, c->device_id, NULL, &err);
	} else {
		c->stats.applied++;
		log_inf("event=command_applied id=%s verb=%s", cmd.id, topic_verb);
		n = journaled ? (int)strlen(c->reply) : command_format_reply(c->reply, sizeof(c->reply), cmd.id, c->device_id, c->result, NULL);
		if (cmd.verb != CMD_GET_STATE && cmd.verb != CMD_PING)
			changed(c);
	}
	if (n < 0) {
		struct command_error big = { .code = "internal" };
		snprintf(big.message, sizeof(big.message), "reply does not fit in %d bytes", REPLY_MAX);
		n = command_format_reply(c->reply, sizeof(c->reply), cmd.id, c->device_id, NULL, &big);
	}
	/* The journal entry and the queued reply are written in one transaction (one sync). */
	bool txn = store_begin(c->st) == 0;
	if (cmd.id[0] && !journaled && store_journal_put(c->st, cmd.id, c->reply, now_ms) != 0)
		log_wrn("event=journal_put_failed id=%s", cmd.id);
	send(c, rt, c->reply, (size_t)n);
	if (txn && store_commit(c->st) != 0)
		log_wrn("event=reply_commit_failed id=%s", cmd.id[0] ? cmd.id : "-");
	command_clear(&cmd);
}

int control_handle_desired(struct control *c, const char *payload, size_t len)
{
	uint64_t version;
	char *json = NULL;
	struct command_error err = { 0 };
	if (len == 0)
		return 0; /* retained message cleared by the console */
	int rc = command_parse_desired(payload, len, &version, &json, &err);
	if (rc) {
		log_wrn("event=desired_refused source=retained code=%s message=\"%s\"", err.code, err.message);
		return -EINVAL;
	}
	struct trust_verdict v;
	struct trust_err te = { 0 };
	bool txn = c->trust && version > c->version && store_begin(c->st) == 0;
	if (c->trust && version > c->version &&
	    ((rc = trust_verify(c->trust, payload, len, "desired", &v, &te)) ||
	     (rc = trust_authorize(c->trust, &v, "desired", NULL, -1, json, &te)))) {
		if (txn)
			if (store_commit(c->st)) /* the decision entries stay */
				log_err("event=decisions_not_persisted source=retained");
		log_wrn("event=desired_refused source=retained version=%llu code=%s message=\"%s\"",
			(unsigned long long)version, te.code ? te.code : "internal", te.message);
		free(json);
		return rc;
	}
	if (txn && store_commit(c->st))
		log_err("event=decisions_not_persisted source=retained");
	if (version <= c->version) {
		if (version < c->version)
			log_inf("event=desired_ignored source=retained version=%llu current=%llu",
				(unsigned long long)version, (unsigned long long)c->version);
		free(json);
		return version < c->version ? -ESTALE : 0;
	}
	if (c->ops->validate && (rc = c->ops->validate(c->tctx, json, &err))) {
		log_wrn("event=desired_refused source=retained version=%llu code=%s message=\"%s\"",
			(unsigned long long)version, err.code ? err.code : "", err.message);
		free(json);
		return -EINVAL;
	}
	if ((rc = store_desired_set(c->st, version, json))) {
		free(json);
		return rc;
	}
	if (c->ops->apply && c->ops->apply(c->tctx, version, json, &err))
		log_err("event=apply_failed version=%llu message=\"%s\"", (unsigned long long)version, err.message);
	set_desired(c, version, json);
	log_inf("event=desired_updated version=%llu source=retained", (unsigned long long)version);
	refresh_drift(c);
	changed(c);
	return 0;
}

/* Repair by rollback: the deployment's last-known-good version, if it has
 * one that complies with the policy, replaces it (the rollback verb's path)
 * and takes its place in the desired state (persisted). TRUST_ROLLED_BACK or
 * -errno (no such version, or it does not comply: then it is stopped). */
static int repair_rollback(struct control *c, const char *name, const char *rule)
{
	char *doc = NULL;
	struct command_error err = { 0 };
	int rc = c->ops->last_good && c->ops->rollback ? c->ops->last_good(c->tctx, name, &doc) : -ENOTSUP;
	if (rc == 0 && !trust_complies(c->trust, doc))
		rc = -EACCES;
	if (rc == 0)
		rc = c->ops->rollback(c->tctx, name, "policy", &err);
	if (rc) {
		log_inf("event=policy_rollback_not_possible deployment=%s rule=%s reason=\"%s\"", name, rule,
			rc == -EACCES ? "the last-known-good version violates the policy" : strerror(-rc));
		free(doc);
		return rc;
	}
	char *next = c->desired ? command_desired_replace(c->desired, name, doc) : NULL;
	if (next && store_desired_set(c->st, c->version, next) == 0)
		set_desired(c, c->version, next);
	else
		free(next);
	free(doc);
	log_wrn("event=policy_repaired deployment=%s rule=%s action=rolled_back", name, rule);
	return TRUST_ROLLED_BACK;
}

/* Repair of a running deployment that violates a rule in repair mode:
 * rolled back to a compliant last-known-good version, else stopped
 * (removed from the desired state, persisted). */
static int repair(void *arg, const char *name, const char *rule)
{
	struct control *c = arg;
	if (repair_rollback(c, name, rule) == TRUST_ROLLED_BACK)
		return TRUST_ROLLED_BACK;
	struct command_error err = { 0 };
	int rc = c->ops->remove ? c->ops->remove(c->tctx, name, &err) : -ENOTSUP;
	if (rc) {
		log_err("event=policy_repair_failed deployment=%s rule=%s message=\"%s\"", name, rule, err.message);
		return rc;
	}
	char *next = c->desired ? command_desired_without(c->desired, name) : NULL;
	if (next && store_desired_set(c->st, c->version, next) == 0)
		set_desired(c, c->version, next);
	else
		free(next);
	log_wrn("event=policy_repaired deployment=%s rule=%s action=stopped", name, rule);
	return TRUST_STOPPED;
}

static void refresh_drift(struct control *c)
{
	if (!c->trust || !c->desired)
		return;
	/* The repair edits c->desired: check a copy. Its decision entries and
	 * repairs reach the disk in one commit. */
	char *copy = strdup(c->desired);
	if (!copy)
		return;
	bool txn = store_begin(c->st) == 0;
	int v = trust_drift(c->trust, copy, repair, c);
	if (txn && store_commit(c->st))
		log_err("event=drift_not_persisted");
	free(copy);
	if (v > 0)
		log_wrn("event=policy_violations count=%d policy_version=%llu", v,
			(unsigned long long)trust_policy_version(c->trust));
}

int control_handle_policy(struct control *c, const char *payload, size_t len)
{
	if (!c->trust || len == 0)
		return 0;
	struct trust_err te = { 0 };
	int rc = trust_set_policy(c->trust, payload, len, &te);
	if (rc == -ESTALE)
		return rc; /* the retained copy of the policy in force, seen again */
	if (rc) {
		log_wrn("event=policy_refused code=%s path=%s message=\"%s\"", te.code ? te.code : "internal", te.path,
			te.message);
		return rc;
	}
	refresh_drift(c);
	changed(c);
	return 0;
}

int control_handle_keys(struct control *c, const char *payload, size_t len)
{
	if (!c->trust || len == 0)
		return 0;
	struct trust_err te = { 0 };
	int rc = trust_rotate_keys(c->trust, payload, len, &te);
	if (rc == -ESTALE)
		return rc;
	if (rc) {
		log_wrn("event=keys_refused code=%s path=%s message=\"%s\"", te.code ? te.code : "internal", te.path,
			te.message);
		return rc;
	}
	changed(c);
	return 0;
}
