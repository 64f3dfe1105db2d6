/* agent/trust/trust.c - the trust state of one gateway: verifies, authorizes and admits commands and documents; persists keys, policy, replay window, time floor and decisions in the store. */
#include "agent/trust/trust.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/jsonutil.h"
#include "agent/base/log.h"
#include "agent/model/deploy.h"
#include "agent/model/groups.h"
#include "agent/telemetry/store.h"
#include "agent/trust/keyring.h"
#include "agent/trust/replay.h"
#include "agent/trust/trusttime.h"
#include "hal/clock.h"

#define LOG_TAG "trust"

#define DRIFT_ITEMS_MAX 32
#define KV_KEYS "trust.keys"
#define KV_POLICY "trust.policy"
#define KV_REPLAY "trust.replay"
#define REPLAY_TEXT_MAX (CONFIG_TRUST_REPLAY_MAX * 90 + 128) /* a legacy whole-window text */

struct drift_item {
	char deployment[DEPLOY_NAME_MAX];
	enum policy_rule rule;
	enum policy_mode mode;
	int repaired;                    /* 0, or enum trust_repair */
	char reason[160];
};

struct trust {
	struct store *st;
	struct trust_opts o;
	char device_id[64];
	struct groups conf_groups;       /* the config's list (fleet.groups) */
	struct groups groups;            /* in force: the desired state's, else the config's */
	const char *group_ptr[GROUPS_MAX];
	bool groups_from_desired;
	struct keyring keys;
	struct policy policy;
	struct replay *replay;
	struct trusttime time;
	uint64_t decision_seq;
	unsigned n_drift;
	struct drift_item drift[DRIFT_ITEMS_MAX];
	struct trust_stats stats;
	struct deploy_set set;           /* parse buffer (large: not on the stack) */
	char text[REPLAY_TEXT_MAX];      /* persistence buffer */
	char entry[4096];                /* one decision entry */
};

static void event(struct trust *t, const char *type, const char *json)
{
	if (t->o.event)
		t->o.event(t->o.event_arg, type, json);
}

static void refused_event(struct trust *t, const char *what, const struct trust_err *e)
{
	char msg[400], detail[640];
	jsonutil_quote(msg, sizeof(msg), e->message);
	snprintf(detail, sizeof(detail), "{\"what\":\"%s\",\"code\":\"%s\",\"path\":\"%s\",\"message\":%s}", what,
		 e->code ? e->code : "internal", e->path, msg);
	event(t, "trust_refused", detail);
}

/* The replay window is persisted incrementally: the header ("F FLOOR\n"
 * then the window's mark) under KV_REPLAY and one key per slot; an
 * admission writes its slot and the header, in the caller's transaction. */
static int persist_header(struct trust *t)
{
	int n = snprintf(t->text, sizeof(t->text), "F %" PRId64 "\n", t->time.floor_ms);
	int m = replay_save_header(t->replay, t->text + n, sizeof(t->text) - (size_t)n);
	return m < 0 ? m : store_kv_set(t->st, KV_REPLAY, t->text);
}

static int persist_slot(struct trust *t, unsigned slot)
{
	char key[48], val[96];
	snprintf(key, sizeof(key), KV_REPLAY ".%u", slot);
	int rc = replay_save_slot(t->replay, slot, val, sizeof(val));
	return rc < 0 ? rc : store_kv_set(t->st, key, val);
}

/* The whole window written as slots and header (one transaction). */
static int persist_window(struct trust *t)
{
	int rc = 0;
	bool txn = store_begin(t->st) == 0;
	for (unsigned i = 0; i < CONFIG_TRUST_REPLAY_MAX && !rc; i++)
		rc = persist_slot(t, i);
	if (!rc)
		rc = persist_header(t);
	if (txn && rc)
		store_rollback(t->st);
	else if (txn)
		rc = store_commit(t->st);
	return rc;
}

/* A store written before slots existed holds the whole window in one text:
 * loaded, then written again as slots. */
static int load_legacy_replay(struct trust *t, const char *text)
{
	int rc = replay_load(t->replay, text);
	if (rc)
		return rc;
	if ((rc = persist_window(t)))
		log_err("event=replay_state_not_converted error=%s", strerror(-rc));
	return 0;
}

static void load_slots(struct trust *t)
{
	char key[48], val[96];
	for (unsigned i = 0; i < CONFIG_TRUST_REPLAY_MAX; i++) {
		snprintf(key, sizeof(key), KV_REPLAY ".%u", i);
		if (store_kv_get(t->st, key, val, sizeof(val)) != 0)
			continue;
		if (replay_load_slot(t->replay, i, val) != 0) {
			/* An id lost: refuse everything issued up to the newest admitted. */
			struct replay_stats rs;
			replay_get_stats(t->replay, &rs);
			char hdr[96];
			snprintf(hdr, sizeof(hdr), "R2 %" PRId64 " %" PRId64 " %" PRIu64 "\n", rs.newest_iat_ms,
				 rs.newest_iat_ms, rs.evicted);
			if (replay_load_header(t->replay, hdr) == 0)
				log_err("event=replay_slot_unreadable slot=%u action=mark_raised_to_newest mark_ms=%" PRId64,
					i, rs.newest_iat_ms);
			return;
		}
	}
}

static void load_replay(struct trust *t)
{
	if (store_kv_get(t->st, KV_REPLAY, t->text, sizeof(t->text)) != 0)
		return;
	long long floor_ms = 0;
	int off = 0;
	if (sscanf(t->text, "F %lld\n%n", &floor_ms, &off) != 1 || off == 0 || floor_ms < 0 ||
	    (strncmp(t->text + off, "R1 ", 3) == 0 ? load_legacy_replay(t, t->text + off)
						    : replay_load_header(t->replay, t->text + off)) != 0) {
		/* Unreadable: refuse everything issued before now's floor rather than forget. */
		log_err("event=replay_state_unreadable action=window_starts_at_floor");
		return;
	}
	t->time.floor_ms = floor_ms;
	if (strncmp(t->text + off, "R2 ", 3) == 0)
		load_slots(t);
}

/* A stored document wins over the operator's file when its version is higher. */
static int load_doc(struct trust *t, const char *kv, const char *file_json, bool is_policy, struct trust_err *e)
{
	int rc;
	if (file_json) {
		rc = is_policy ? policy_parse(file_json, strlen(file_json), t->o.verbs, t->o.n_verbs, &t->policy, e)
			       : keyring_parse(file_json, strlen(file_json), &t->keys, e);
		if (rc)
			return rc;
	}
	char *buf = malloc(CONFIG_COMMAND_MAX_BYTES + 1);
	if (!buf)
		return -ENOMEM;
	if (store_kv_get(t->st, kv, buf, CONFIG_COMMAND_MAX_BYTES + 1) == 0 && buf[0]) {
		struct trust_err se = { 0 };
		if (is_policy) {
			struct policy p;
			if (policy_parse(buf, strlen(buf), t->o.verbs, t->o.n_verbs, &p, &se) == 0 &&
			    p.version > t->policy.version)
				t->policy = p;
		} else {
			struct keyring k;
			if (keyring_parse(buf, strlen(buf), &k, &se) == 0 && k.version > t->keys.version)
				t->keys = k;
		}
		if (se.code)
			log_err("event=stored_document_unreadable key=%s path=%s message=\"%s\"", kv, se.path, se.message);
	}
	free(buf);
	return 0;
}

/* The decision ring continues where the last run stopped (the highest
 * sequence number kept), so that it always holds the newest entries. */
static void load_decision_seq(struct trust *t)
{
	for (unsigned i = 0; i < CONFIG_TRUST_DECISIONS_KEPT; i++) {
		char key[48];
		snprintf(key, sizeof(key), "trust.decision.%u", i);
		if (store_kv_get(t->st, key, t->entry, sizeof(t->entry)) != 0)
			continue;
		const char *id = strstr(t->entry, "\"decision_id\":\"");
		const char *end = id ? strchr(id + 15, '"') : NULL;
		const char *dash = end ? end : NULL;
		while (dash && dash > id + 15 && dash[-1] != '-')
			dash--;
		unsigned long long seq = dash ? strtoull(dash, NULL, 10) : 0;
		if (seq > t->decision_seq)
			t->decision_seq = seq;
	}
}

struct trust *trust_create(struct store *st, const struct trust_opts *o, struct trust_err *e)
{
	struct trust *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->st = st;
	t->o = *o;
	snprintf(t->device_id, sizeof(t->device_id), "%s", o->device_id);
	char why[160];
	if (groups_parse_csv(o->groups, &t->conf_groups, why, sizeof(why))) {
		(void)trust_err_set(e, -EINVAL, "bad_value", "fleet.groups", "%s", why);
		goto errout;
	}
	t->o.groups = NULL; /* borrowed from the caller: the copy above is used */
	(void)trust_set_groups(t, NULL);
	t->replay = replay_create(CONFIG_TRUST_REPLAY_MAX, (int64_t)CONFIG_TRUST_REPLAY_WINDOW_S * 1000);
	if (!t->replay)
		goto errout;
	if (load_doc(t, KV_KEYS, o->keys_json, false, e) || load_doc(t, KV_POLICY, o->policy_json, true, e))
		goto errout;
	load_replay(t);
	load_decision_seq(t);
	log_inf("event=trust_ready signatures=%s keys=%u keys_version=%llu policy_version=%llu time_floor_ms=%lld",
		o->require_signatures ? "required" : "optional", t->keys.n, (unsigned long long)t->keys.version,
		(unsigned long long)t->policy.version, (long long)t->time.floor_ms);
	return t;
errout:
	trust_destroy(t);
	return NULL;
}

void trust_destroy(struct trust *t)
{
	if (!t)
		return;
	replay_destroy(t->replay);
	free(t);
}

bool trust_set_groups(struct trust *t, const struct groups *from_desired)
{
	const struct groups *g = from_desired ? from_desired : &t->conf_groups;
	bool changed = !groups_equal(g, &t->groups);
	t->groups = *g;
	t->groups_from_desired = from_desired != NULL;
	for (unsigned i = 0; i < t->groups.n; i++)
		t->group_ptr[i] = t->groups.name[i];
	if (changed)
		log_inf("event=groups_changed n=%u from=%s", t->groups.n, from_desired ? "desired" : "config");
	return changed;
}

const struct groups *trust_groups(const struct trust *t) { return &t->groups; }

void trust_store_back(struct trust *t)
{
	struct trust_err e = { 0 };
	if (load_doc(t, KV_KEYS, NULL, false, &e) || load_doc(t, KV_POLICY, NULL, true, &e))
		log_err("event=trust_reload_failed message=\"%s\"", e.message);
	/* The window kept in memory meanwhile (ids admitted, or refused with store_failed after
	 * their record): merged into the persisted one, so that they stay refused. */
	size_t cap = (size_t)CONFIG_TRUST_REPLAY_MAX * 90 + 64;
	char *mem = malloc(cap);
	int64_t floor_ms = t->time.floor_ms;
	int rc = mem && replay_save(t->replay, mem, cap) > 0 ? 0 : -ENOMEM;
	if (rc == 0) {
		load_replay(t);
		if ((rc = replay_merge(t->replay, mem)))
			log_err("event=replay_merge_failed err=%s", strerror(-rc));
		if (floor_ms > t->time.floor_ms)
			t->time.floor_ms = floor_ms;
		rc = persist_window(t);
	}
	free(mem);
	log_inf("event=trust_store_back keys_version=%llu policy_version=%llu persisted=%s",
		(unsigned long long)t->keys.version, (unsigned long long)t->policy.version, rc ? "no" : "yes");
}

uint64_t trust_policy_version(const struct trust *t) { return t->policy.version; }
const struct policy *trust_policy(const struct trust *t) { return &t->policy; }
void trust_get_stats(const struct trust *t, struct trust_stats *out) { *out = t->stats; }

static int refuse(struct trust *t, int rc, struct trust_err *e)
{
	t->stats.refused++;
	refused_event(t, "message", e);
	return rc;
}

int trust_verify(struct trust *t, const char *msg, size_t len, const char *doc_kind, struct trust_verdict *v,
		 struct trust_err *e)
{
	memset(v, 0, sizeof(*v));
	v->now_ms = trusttime_now(&t->time, hal_clock_wall_ms());
	int rc = envelope_parse(msg, len, doc_kind, &v->env, e);
	if (rc) {
		if (!t->o.require_signatures && e->code && strcmp(e->code, "unsigned") == 0) {
			memset(e, 0, sizeof(*e));
			return 0; /* accepted unsigned: signed_ stays false */
		}
		return refuse(t, rc, e);
	}
	v->signed_ = true;
	if (!envelope_targets(&v->env, t->device_id, t->group_ptr, t->groups.n))
		return refuse(t, trust_err_set(e, -EPERM, "wrong_target", "auth.target",
					       "signed for %s, not for device %s or its groups", v->env.target, t->device_id),
			      e);
	if (t->keys.n == 0)
		return refuse(t, trust_err_set(e, -EPERM, "unknown_key", "auth.key",
					       "this gateway trusts no key yet (trust.keys_file)"),
			      e);
	if ((rc = keyring_check(&t->keys, &v->env, v->now_ms, e)))
		return refuse(t, rc, e);
	if (v->env.exp_ms && v->now_ms > v->env.exp_ms)
		return refuse(t, trust_err_set(e, -EPERM, "expired", "auth.exp",
					       "expired at %lld, trusted time is %lld", (long long)v->env.exp_ms,
					       (long long)v->now_ms),
			      e);
	if (!doc_kind) {
		rc = replay_check(t->replay, v->env.id, v->env.iat_ms);
		if (rc == -EALREADY) {
			t->stats.refused++;
			return trust_err_set(e, -EALREADY, "replayed", "id", "command %s was already applied", v->env.id);
		}
		if (rc) {
			struct replay_stats rs;
			replay_get_stats(t->replay, &rs);
			return refuse(t, trust_err_set(e, -EPERM, "replayed", "auth.iat",
						       "issued at %lld, at or before the replay window's mark %lld",
						       (long long)v->env.iat_ms, (long long)rs.lwm_ms),
				      e);
		}
	}
	t->stats.verified++;
	return 0;
}

static void spec_view(const struct deploy_spec *d, struct policy_deployment *pd)
{
	memset(pd, 0, sizeof(*pd));
	pd->name = d->name;
	pd->image = d->image;
	pd->sla_class = d->sla_class;
	pd->cpu_nano = d->cpu_nano;
	pd->mem_bytes = d->mem_bytes;
	pd->replicas_max = d->replicas_max;
	pd->settings = POLICY_SET_HOST_NETWORK; /* every replica runs with the host's network */
	pd->env = d->env;
	while (pd->n_env < DEPLOY_MAX_ENV && d->env[pd->n_env][0])
		pd->n_env++;
}

/* Evaluates one input and logs the decision: kept in the store (a bounded
 * ring of CONFIG_TRUST_DECISIONS_KEPT entries) and sent as an event; also
 * without a policy (version 0, allowed, rule no_policy), so that every
 * command's evaluation is in the trail. */
static void decide(struct trust *t, const struct policy_input *in, struct policy_decision *d)
{
	policy_evaluate(&t->policy, in, d);
	t->stats.decisions++;
	char id[96], key[48];
	snprintf(id, sizeof(id), "%s-%" PRId64 "-%" PRIu64, t->device_id, trusttime_now(&t->time, hal_clock_wall_ms()),
		 ++t->decision_seq);
	if (policy_decision_json(t->entry, sizeof(t->entry), id, t->policy.version, in, d) < 0)
		snprintf(t->entry, sizeof(t->entry), "{\"decision_id\":\"%s\",\"result\":\"%s\",\"truncated\":true}", id,
			 d->allow ? "allow" : "deny");
	snprintf(key, sizeof(key), "trust.decision.%" PRIu64, t->decision_seq % CONFIG_TRUST_DECISIONS_KEPT);
	if (store_kv_set(t->st, key, t->entry) != 0)
		log_wrn("event=decision_not_stored id=%s", id);
	event(t, "policy_decision", t->entry);
}

int trust_authorize(struct trust *t, const struct trust_verdict *v, const char *verb, const char *deployment,
		    int64_t replicas, const char *desired_json, struct trust_err *e)
{
	struct policy_input in = {
		.key_id = v->signed_ ? v->env.key_id : "unsigned",
		.verb = verb,
		.deployment = deployment,
		.replicas = replicas,
	};
	struct policy_decision d;
	int rc = 0;
	if (desired_json && t->policy.version) {
		struct deploy_error de;
		if (deploy_parse(desired_json, strlen(desired_json), &t->set, &de) == 0) {
			for (unsigned i = 0; i < t->set.n && !rc; i++) {
				struct policy_deployment pd;
				spec_view(&t->set.d[i], &pd);
				in.dep = &pd;
				in.deployment = t->set.d[i].name;
				decide(t, &in, &d);
				if (!d.allow)
					rc = trust_err_set(e, -EACCES, "policy_denied", "", "deployment %s: %s (policy %llu)",
							   t->set.d[i].name, d.reason, (unsigned long long)t->policy.version);
			}
			if (t->set.n)
				goto out;
		}
		in.dep = NULL; /* invalid specs are the target's to refuse; roles still apply */
	}
	decide(t, &in, &d);
	if (!d.allow)
		rc = trust_err_set(e, -EACCES, "policy_denied", "", "%s (policy %llu)", d.reason,
				   (unsigned long long)t->policy.version);
out:
	if (rc) {
		t->stats.denied++;
		refused_event(t, verb, e);
	}
	return rc;
}

int trust_admit(struct trust *t, const struct trust_verdict *v, struct trust_err *e)
{
	if (!v->signed_)
		return 0;
	unsigned slot = 0;
	int rc = replay_admit(t->replay, v->env.id, v->env.iat_ms, &slot);
	if (rc)
		return refuse(t, trust_err_set(e, rc, "replayed", "auth.iat",
					       "issued at %lld: the full replay window's mark now covers it",
					       (long long)v->env.iat_ms),
			      e);
	trusttime_observe(&t->time, v->env.iat_ms);
	if ((rc = persist_slot(t, slot)) || (rc = persist_header(t)))
		return trust_err_set(e, rc, "store_failed", "", "the replay window could not be persisted: %s",
				     strerror(-rc));
	t->stats.admitted++;
	return 0;
}

/* A document is stored as received (NUL-terminated copy). */
static int store_doc(struct trust *t, const char *kv, const char *msg, size_t len)
{
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, msg, len);
	copy[len] = '\0';
	int rc = store_kv_set(t->st, kv, copy);
	free(copy);
	return rc;
}

int trust_set_policy(struct trust *t, const char *msg, size_t len, struct trust_err *e)
{
	struct trust_verdict v;
	int rc = trust_verify(t, msg, len, "policy", &v, e);
	if (rc)
		return rc;
	if ((rc = trust_authorize(t, &v, "policy", NULL, -1, NULL, e)))
		return rc;
	struct policy p;
	if ((rc = policy_parse(msg, len, t->o.verbs, t->o.n_verbs, &p, e)))
		return refuse(t, rc, e);
	if (p.version <= t->policy.version)
		return trust_err_set(e, -ESTALE, "stale_version", "version", "policy version %llu is not newer than %llu",
				     (unsigned long long)p.version, (unsigned long long)t->policy.version);
	if ((rc = store_doc(t, KV_POLICY, msg, len)))
		return trust_err_set(e, rc, "store_failed", "", "the policy could not be persisted");
	if (v.signed_)
		trusttime_observe(&t->time, v.env.iat_ms);
	t->policy = p;
	t->n_drift = 0;
	log_inf("event=policy_installed version=%llu key=%s", (unsigned long long)p.version,
		v.signed_ ? v.env.key_id : "unsigned");
	return 0;
}

int trust_rotate_keys(struct trust *t, const char *msg, size_t len, struct trust_err *e)
{
	int64_t now = trusttime_now(&t->time, hal_clock_wall_ms());
	struct keyring next = t->keys;
	int rc = keyring_rotate(&next, msg, len, t->device_id, t->group_ptr, t->groups.n, now, e);
	if (rc == 0) {
		/* Verified by rotate: now the policy's roles (may this key replace keys?). */
		struct trust_verdict v = { .signed_ = true, .now_ms = now };
		if (envelope_parse(msg, len, "keys", &v.env, e) == 0 && (rc = trust_authorize(t, &v, "keys", NULL, -1, NULL, e)))
			return rc;
	}
	if (rc == -ESTALE)
		return rc;
	if (rc)
		return refuse(t, rc, e);
	if ((rc = store_doc(t, KV_KEYS, msg, len)))
		return trust_err_set(e, rc, "store_failed", "", "the key list could not be persisted");
	t->keys = next;
	log_inf("event=keys_rotated version=%llu keys=%u", (unsigned long long)next.version, next.n);
	return 0;
}

/* Records the violated rules of one decision as drift items; returns the
 * first violated rule in repair mode, or NULL. */
static const struct policy_match *drift_record(struct trust *t, const char *name, const struct policy_decision *d)
{
	const struct policy_match *fix = NULL;
	for (unsigned j = 0; j < d->n; j++) {
		const struct policy_match *m = &d->m[j];
		if (!m->violated)
			continue;
		if (m->mode == POLICY_MODE_REPAIR && !fix)
			fix = m;
		if (t->n_drift < DRIFT_ITEMS_MAX) {
			struct drift_item *it = &t->drift[t->n_drift++];
			snprintf(it->deployment, sizeof(it->deployment), "%s", name);
			it->rule = m->rule;
			it->mode = m->mode;
			it->repaired = 0;
			snprintf(it->reason, sizeof(it->reason), "%s", m->reason);
		}
	}
	return fix;
}

static const char *repair_name(int how) { return how == TRUST_ROLLED_BACK ? "rolled_back" : "stopped"; }

int trust_drift(struct trust *t, const char *desired_json, int (*repair)(void *arg, const char *name, const char *rule),
		void *arg)
{
	t->n_drift = 0;
	struct deploy_error de;
	if (!t->policy.version || !desired_json || deploy_parse(desired_json, strlen(desired_json), &t->set, &de) != 0)
		return 0;
	unsigned n = t->set.n;
	int violations = 0;
	for (unsigned i = 0; i < n; i++) {
		struct policy_deployment pd;
		spec_view(&t->set.d[i], &pd);
		struct policy_input in = { .deployment = t->set.d[i].name, .replicas = -1, .dep = &pd };
		struct policy_decision d;
		decide(t, &in, &d);
		const struct policy_match *fix = drift_record(t, t->set.d[i].name, &d);
		int how = fix && repair ? repair(arg, t->set.d[i].name, policy_rule_name(fix->rule)) : 0;
		if (how != TRUST_ROLLED_BACK && how != TRUST_STOPPED)
			continue;
		for (unsigned k = 0; k < t->n_drift; k++)
			if (strcmp(t->drift[k].deployment, t->set.d[i].name) == 0)
				t->drift[k].repaired = how;
		char detail[256];
		snprintf(detail, sizeof(detail), "{\"deployment\":\"%s\",\"rule\":\"%s\",\"action\":\"%s\",\"policy_version\":%llu}",
			 t->set.d[i].name, policy_rule_name(fix->rule), repair_name(how),
			 (unsigned long long)t->policy.version);
		event(t, "policy_repaired", detail);
	}
	for (unsigned k = 0; k < t->n_drift; k++)
		violations += !t->drift[k].repaired;
	return violations;
}

bool trust_complies(struct trust *t, const char *desired_json)
{
	/* Called from a repair, while trust_drift iterates t->set: a set of its own. */
	struct deploy_set *set = malloc(sizeof(*set));
	struct deploy_error de;
	bool ok = set && deploy_parse(desired_json, strlen(desired_json), set, &de) == 0;
	for (unsigned i = 0; ok && i < set->n; i++) {
		struct policy_deployment pd;
		spec_view(&set->d[i], &pd);
		struct policy_input in = { .verb = "repair_check", .deployment = set->d[i].name, .replicas = -1, .dep = &pd };
		struct policy_decision d;
		decide(t, &in, &d);
		ok = d.allow && !d.repair;
	}
	free(set);
	return ok;
}

int trust_report(const struct trust *t, char *buf, size_t len)
{
	struct replay_stats rs;
	replay_get_stats(t->replay, &rs);
	unsigned violations = 0, repaired = 0;
	for (unsigned k = 0; k < t->n_drift; k++) {
		violations += !t->drift[k].repaired;
		repaired += t->drift[k].repaired != 0;
	}
	int n = snprintf(buf, len,
			 "\"trust\":{\"signatures\":\"%s\",\"keys_version\":%llu,\"keys\":%u,\"time_floor_ms\":%" PRId64
			 ",\"replay\":{\"mark_ms\":%" PRId64 ",\"held\":%u,\"cap\":%u,\"evicted\":%" PRIu64 "},"
			 "\"refused\":%" PRIu64 ",\"denied\":%" PRIu64 ",\"policy\":{\"version\":%llu,\"violations\":%u,"
			 "\"repaired\":%u,\"items\":[",
			 t->o.require_signatures ? "required" : "optional", (unsigned long long)t->keys.version, t->keys.n,
			 t->time.floor_ms, rs.lwm_ms, rs.held, rs.cap, rs.evicted, t->stats.refused, t->stats.denied,
			 (unsigned long long)t->policy.version, violations, repaired);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	for (unsigned k = 0; k < t->n_drift; k++) {
		const struct drift_item *it = &t->drift[k];
		char reason[400];
		jsonutil_quote(reason, sizeof(reason), it->reason);
		const char *status = it->repaired ? "repaired"
				     : it->mode == POLICY_MODE_AUDIT ? "reported"
								     : "awaiting_approval";
		int m = snprintf(buf + n, len - (size_t)n,
				 "%s{\"deployment\":\"%s\",\"rule\":\"%s\",\"mode\":\"%s\",\"status\":\"%s\",\"action\":%s%s%s,"
				 "\"reason\":%s}",
				 k ? "," : "", it->deployment, policy_rule_name(it->rule), policy_mode_name(it->mode), status,
				 it->repaired ? "\"" : "", it->repaired ? repair_name(it->repaired) : "null",
				 it->repaired ? "\"" : "", reason);
		if (m < 0 || (size_t)m >= len - (size_t)n)
			return -ENOSPC;
		n += m;
	}
	if ((size_t)n + 4 > len)
		return -ENOSPC;
	memcpy(buf + n, "]}}", 4);
	return n + 3;
}
