/* agent/site/site.c - heartbeats, the lease, the leader's proposals and this gateway's share of the site deployments. */
#include "agent/site/site.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/config.h"
#include "agent/telemetry/events.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/site/consensus.h"
#include "agent/model/siteconf.h"
#include "agent/site/sitestate.h"
#include "agent/supervise/supervisor.h"
#include "hal/sys.h"

#define LOG_TAG "site"

#define SITE_PROPOSE_GAP_MS 1000u    /* one proposal per member (and per kind) at most this often */
#define SITE_FORWARD_GAP_MS 1000u    /* a follower forwards its newer document at most this often */
#define SITE_CMD_MAX 256
#define SITE_REQUEST_MS 10000u       /* a membership request is retried towards the leader this long */
#define SITE_UNKNOWN_LOG_MS 10000u   /* heartbeats of a non-member are logged at most this often */

struct site_peer {
	uint64_t heard_ms;               /* loop time of the last heartbeat; create time at first */
	bool reported;                   /* its headroom is known */
	uint64_t cpu_milli, mem_bytes;
	uint64_t doc_version;
	bool leader;                     /* said so in its last heartbeat */
	uint64_t applied;                /* its applied index, from that heartbeat */
	uint64_t proposed_ms;            /* last M/X proposed for it */
	bool disagree_logged;
	char id[64];                     /* the member this slot was reset for */
};

/* A join or leave asked of this member (console command), carried to the leader. */
struct site_request {
	bool active;
	bool join;
	char id[64], address[64];
	uint64_t until_ms, sent_ms;
};

struct site {
	struct loop *loop;
	struct site_deps deps;
	struct siteconf sc;
	struct consensus *cons;
	struct sitestate *state;
	unsigned self;                   /* this gateway's slot; SITECONF_JOINER until the log has it */
	bool evicted;                    /* the leader says its log has no such member (this one left) */
	struct site_request req;
	uint64_t unknown_logged_ms;
	struct loop_timer tick;
	struct site_peer peer[CONSENSUS_MAX_MEMBERS];
	int cpu_ceiling_pct, mem_ceiling_pct;
	uint64_t mem_total;

	/* the lease */
	bool lease;
	bool caught_up;
	uint64_t leader_applied;         /* advertised by the leader's last heartbeat */
	uint64_t leader_heard_ms;
	uint64_t lease_changes;

	/* the desired state given to site_filter() */
	struct deploy_set *desired;
	bool have_desired;
	char *doc;                       /* this gateway's site deployments document */
	size_t doc_len;
	uint64_t doc_version;
	uint64_t doc_proposed_ms, doc_forwarded_ms, fail_ms;
	uint64_t doc_inflight, doc_inflight_ms;  /* the document version proposed last, and when */
	uint64_t local_sig;

	/* counters (reported) */
	uint64_t refused_dgrams;         /* malformed, unknown sender, member list disagrees */
	uint64_t refused_cmds;           /* log entries sitestate refused */
	uint64_t unplaced_logged_gen;
	struct deploy_set *scratch;      /* for checking forwarded documents */
	struct sup_status st[SUP_MAX_DEPLOYMENTS];
};

static uint64_t now_ms(const struct site *s) { return loop_now_ms(s->loop); }

bool site_lease_held(const struct site *s) { return s->lease; }

/* --- members (they follow the log) --------------------------------------------- */

static int member_of(const struct site *s, const char *device_id) { return sitestate_member(s->state, device_id); }

static bool is_member(const struct site *s) { return s->self < s->state->n && !s->evicted; }

static const char *self_id(const struct site *s) { return s->sc.me.device_id; }

/* The leader's duties fall to a ready leader that is a member: one that left only hands over. */
static bool leading(const struct site *s) { return consensus_leader_ready(s->cons) && is_member(s); }

/* The consensus module's member table, this gateway's slot and the peers follow the log. */
static void sync_members(struct site *s)
{
	const struct sitestate *st = s->state;
	s->self = SITECONF_JOINER;
	for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS; i++) {
		const struct sitestate_member *m = &st->m[i];
		bool present = i < st->n && m->present;
		if (!present) {
			if (s->cons)
				consensus_member_clear(s->cons, i);
			s->peer[i].id[0] = '\0';
			continue;
		}
		if (!strcmp(m->device_id, self_id(s)))
			s->self = i;
		if (s->cons && m->address[0] && consensus_member_set(s->cons, i, m->device_id, m->address))
			log_err("event=site_member_address_bad member=%s address=%s", m->device_id, m->address);
		if (strcmp(s->peer[i].id, m->device_id)) { /* a new member in this slot: a grace of failover_ms */
			memset(&s->peer[i], 0, sizeof(s->peer[i]));
			snprintf(s->peer[i].id, sizeof(s->peer[i].id), "%s", m->device_id);
			s->peer[i].heard_ms = now_ms(s);
		}
	}
	if (is_member(s))
		s->peer[s->self].reported = true;
}

/* --- the log ----------------------------------------------------------------- */

static void warn_two(const struct site *s)
{
	if (sitestate_members(s->state, NULL) == 2)
		log_wrn("event=site_two_members reason=\"a 2-member site has no majority without both: when one is lost, "
			"the other stops its site replicas too; join a third member to fail over\"");
}

static void evaluate(struct site *s);

static void on_apply(void *arg, const char *cmd, size_t len)
{
	struct site *s = arg;
	char why[256];
	uint64_t gen = s->state->generation;
	int rc = sitestate_apply(s->state, cmd, len, why, sizeof(why));
	if (rc) {
		s->refused_cmds++;
		log_wrn("event=site_command_refused cmd=%.1s err=%s why=\"%s\"", len ? cmd : "?", strerror(-rc), why);
		return;
	}
	if (len && (cmd[0] == 'J' || cmd[0] == 'L')) {
		sync_members(s);
		if (cmd[0] == 'J' && s->self < s->state->n)
			s->evicted = false; /* (re)joined */
		log_inf("event=site_membership cmd=\"%.*s\" members=%u self=%s", (int)(len < 120 ? len : 120), cmd,
			sitestate_members(s->state, NULL), is_member(s) ? "member" : "not_member");
		events_emit(s->deps.events, cmd[0] == 'J' ? "site_member_joined" : "site_member_left",
			    "{\"members\":%u}", sitestate_members(s->state, NULL));
		warn_two(s);
	}
	if (s->state->generation != gen) {
		log_inf("event=site_assignments generation=%" PRIu64 " moves=%" PRIu64, s->state->generation,
			s->state->moves);
		evaluate(s);
	}
}

static int on_snapshot(void *arg, char **out, size_t *len)
{
	struct site *s = arg;
	return sitestate_encode(s->state, out, len);
}

static int on_restore(void *arg, const char *buf, size_t len)
{
	struct site *s = arg;
	int rc = sitestate_decode(s->state, buf, len);
	if (rc == 0) {
		sync_members(s);
		evaluate(s);
	}
	return rc;
}

static int propose(struct site *s, const char *cmd, size_t len)
{
	int rc = consensus_propose(s->cons, cmd, len);
	if (rc && rc != -EPERM)
		log_wrn("event=site_propose_failed cmd=%.1s err=%s", cmd, strerror(-rc));
	return rc;
}

/* --- datagrams --------------------------------------------------------------- */



/* A forwarded document is checked before it is proposed: a bad one never enters the log. */
static void propose_doc(struct site *s, uint64_t version, const char *doc, size_t doc_len, const char *from)
{
	struct deploy_error de;
	if (version <= s->state->version ||
	    (version == s->doc_inflight && now_ms(s) - s->doc_inflight_ms < 2 * SITE_PROPOSE_GAP_MS))
		return; /* proposed already, not applied yet: a second copy would only be refused as stale */
	if (deploy_parse(doc, doc_len, s->scratch, &de)) {
		char msg[256];
		deploy_error_format(&de, msg, sizeof(msg));
		log_wrn("event=site_deployments_refused from=%s version=%" PRIu64 " why=\"%s\"", from, version, msg);
		return;
	}
	char *cmd = malloc(doc_len + 32);
	if (!cmd)
		return;
	int n = sitestate_cmd_deployments(cmd, doc_len + 32, version, doc, doc_len);
	if (n > 0 && propose(s, cmd, (size_t)n) == 0) {
		s->doc_inflight = version;
		s->doc_inflight_ms = now_ms(s);
		log_inf("event=site_deployments_proposed from=%s version=%" PRIu64, from, version);
	}
	free(cmd);
}

/* The leader proposes a join (address given) or leave checked against its state. 0 or -errno. */
static int propose_change(struct site *s, bool join, const char *id, const char *address, const char *from)
{
	char why[192], cmd[SITE_CMD_MAX];
	int rc = sitestate_check_change(s->state, id, address, why, sizeof(why));
	if (rc) {
		log_wrn("event=site_membership_refused from=%s member=%s why=\"%s\"", from, id, why);
		return rc;
	}
	int n = join ? sitestate_cmd_join(cmd, sizeof(cmd), id, address) : sitestate_cmd_leave(cmd, sizeof(cmd), id);
	if (n < 0)
		return n;
	if ((rc = propose(s, cmd, (size_t)n)) == 0)
		log_inf("event=site_membership_proposed from=%s cmd=\"%s\"", from, cmd);
	return rc;
}

/* A member's heartbeat: it is heard (its headroom, applied index, document version). 0 or -EINVAL. */
static int on_heartbeat(struct site *s, const char *from, const char *buf)
{
	char dev[64], role;
	unsigned long long hash, applied, cpu, mem, ver;
	int i;
	if (sscanf(buf, "H1 %63s %llx %c %llu %llu %llu %llu", dev, &hash, &role, &applied, &cpu, &mem, &ver) != 7)
		return -EINVAL;
	if ((i = member_of(s, dev)) < 0 || (unsigned)i == s->self) {
		if (i < 0 && is_member(s)) { /* a member that left and restarted: tell it */
			struct consensus_stats cs;
			consensus_stats(s->cons, &cs);
			char msg[96];
			int n = snprintf(msg, sizeof(msg), "N1 %s %" PRIu64, self_id(s), cs.last_applied);
			(void)consensus_send_to(s->cons, from, msg, (size_t)n);
		}
		if (now_ms(s) - s->unknown_logged_ms >= SITE_UNKNOWN_LOG_MS) {
			s->unknown_logged_ms = now_ms(s);
			log_wrn("event=site_unknown_member from=%s device=%s hint=\"not a member in this log: "
				"site_join it\"", from, dev);
		}
		return -EINVAL;
	}
	struct site_peer *p = &s->peer[i];
	if (hash != s->sc.members_hash) {
		if (!p->disagree_logged)
			log_err("event=site_members_disagree member=%s from=%s reason=\"its site.members differs "
				"from ours; its heartbeats are ignored\"", dev, from);
		p->disagree_logged = true;
		return -EINVAL;
	}
	p->disagree_logged = false;
	p->heard_ms = now_ms(s);
	p->reported = true;
	p->cpu_milli = cpu;
	p->mem_bytes = mem;
	p->doc_version = ver;
	p->leader = role == 'L';
	p->applied = applied;
	if (p->leader) {
		s->leader_applied = applied;
		s->leader_heard_ms = p->heard_ms;
	}
	return 0;
}

static void on_datagram(void *arg, const char *from, const char *buf, size_t len)
{
	struct site *s = arg;
	char dev[64], dep[DEPLOY_NAME_MAX];
	unsigned long long applied, ver;
	int i;
	if (len > 3 && !memcmp(buf, "H1 ", 3)) {
		if (on_heartbeat(s, from, buf))
			goto refused;
		return;
	}
	if (len > 3 && !memcmp(buf, "F1 ", 3)) {
		const char *nl = memchr(buf, '\n', len);
		if (!nl || sscanf(buf, "F1 %63s %llu", dev, &ver) != 2 || member_of(s, dev) < 0)
			goto refused;
		if (leading(s))
			propose_doc(s, ver, nl + 1, len - (size_t)(nl + 1 - buf), dev);
		return;
	}
	if (len > 3 && !memcmp(buf, "R1 ", 3)) {
		if (sscanf(buf, "R1 %63s %47s", dev, dep) != 2 || member_of(s, dev) < 0)
			goto refused;
		char cmd[SITE_CMD_MAX];
		int n = sitestate_cmd_failed(cmd, sizeof(cmd), dev, dep);
		if (n > 0 && leading(s) && propose(s, cmd, (size_t)n) == 0)
			log_inf("event=site_exclude_proposed member=%s deployment=%s", dev, dep);
		return;
	}
	if (len > 3 && !memcmp(buf, "N1 ", 3)) {
		/* a member that has applied all of this member's log has no member called like this one */
		struct consensus_stats cs;
		consensus_stats(s->cons, &cs);
		if (sscanf(buf, "N1 %63s %llu", dev, &applied) != 2 || (i = member_of(s, dev)) < 0 || !is_member(s))
			goto refused;
		if (applied < cs.last_index)
			return; /* it may not have applied what made this one a member yet */
		log_wrn("event=site_not_a_member by=%s applied=%llu reason=\"its log, which holds all of ours, has no "
			"member %s (it left): no lease, nothing runs here until a site_join\"", dev, applied, self_id(s));
		s->evicted = true;
		evaluate(s);
		return;
	}
	if (len > 3 && (!memcmp(buf, "J1 ", 3) || !memcmp(buf, "L1 ", 3))) {
		char who[64], addr[64] = "";
		bool join = buf[0] == 'J';
		if ((join ? sscanf(buf, "J1 %63s %63s %63s", dev, who, addr) != 3 : sscanf(buf, "L1 %63s %63s", dev, who) != 2) ||
		    member_of(s, dev) < 0)
			goto refused;
		if (leading(s))
			propose_change(s, join, who, join ? addr : NULL, dev);
		return;
	}
refused:
	s->refused_dgrams++;
}

/* --- headroom and this gateway's document -------------------------------------- */

static void headroom(const struct site *s, uint64_t *cpu_milli, uint64_t *mem_bytes)
{
	int64_t cpu = (int64_t)hal_sys_ncpu() * 10 * s->cpu_ceiling_pct;
	int64_t mem = (int64_t)(s->mem_total / 100u * (uint64_t)s->mem_ceiling_pct);
	for (unsigned k = 0; s->have_desired && k < s->desired->n; k++) {
		const struct deploy_spec *d = &s->desired->d[k];
		if (d->scope != DEPLOY_SCOPE_NODE)
			continue;
		cpu -= (int64_t)((d->cpu_nano + 999999u) / 1000000u * d->replicas);
		mem -= (int64_t)(d->mem_bytes * d->replicas);
	}
	*cpu_milli = cpu > 0 ? (uint64_t)cpu : 0;
	*mem_bytes = mem > 0 ? (uint64_t)mem : 0;
}

/* {"version":V,"deployments":[site-scoped specs]} of the desired state. Built
 * even without site deployments: a newer document without them removes them
 * from the site. */
static void build_doc(struct site *s)
{
	size_t cap = CONSENSUS_DGRAM_MAX - 128, o = 0;
	char *doc = malloc(cap);
	if (!doc)
		return;
	o = (size_t)snprintf(doc, cap, "{\"version\":%" PRIu64 ",\"deployments\":[", s->desired->version);
	unsigned found = 0;
	for (unsigned k = 0; k < s->desired->n; k++) {
		const struct deploy_spec *d = &s->desired->d[k];
		if (d->scope != DEPLOY_SCOPE_SITE)
			continue;
		if (found++)
			doc[o++] = ',';
		int n = deploy_spec_to_json(d, doc + o, cap - o - 4);
		if (n < 0) {
			log_err("event=site_document_too_large max=%zu", cap);
			free(doc);
			return;
		}
		o += (size_t)n;
	}
	o += (size_t)snprintf(doc + o, cap - o, "]}");
	free(s->doc);
	s->doc = doc;
	s->doc_len = o;
	s->doc_version = s->desired->version;
}

/* --- this gateway's share ------------------------------------------------------- */

int site_filter(struct site *s, const struct deploy_set *desired, struct deploy_set *out)
{
	int rc = 0;
	if (desired != s->desired) {
		*s->desired = *desired;
		s->have_desired = true;
		build_doc(s);
	}
	out->version = desired->version;
	out->n = 0;
	for (unsigned k = 0; k < desired->n; k++)
		if (desired->d[k].scope == DEPLOY_SCOPE_NODE)
			out->d[out->n++] = desired->d[k];
	const struct sitestate *st = s->state;
	for (unsigned k = 0; s->lease && k < st->deps.n; k++) {
		unsigned c = sitestate_assigned(st, k, s->self);
		if (!c)
			continue;
		if (deploy_find(out, st->deps.d[k].name) || out->n == DEPLOY_MAX) {
			log_err("event=site_deployment_skipped deployment=%s reason=%s", st->deps.d[k].name,
				out->n == DEPLOY_MAX ? "too_many_deployments" : "name_taken_by_node_deployment");
			rc = -EEXIST;
			continue;
		}
		struct deploy_spec *d = &out->d[out->n++];
		*d = st->deps.d[k];
		d->replicas = d->replicas_min = d->replicas_max = c;
	}
	return rc;
}

unsigned site_remote_replicas(const struct site *s, site_remote_fn fn, void *arg)
{
	const struct sitestate *st = s->state;
	unsigned n = 0;
	for (unsigned k = 0; s->lease && k < st->deps.n; k++) {
		if (sitestate_assigned(st, k, s->self))
			continue;
		const struct deploy_spec *d = &st->deps.d[k];
		unsigned per_member[CONSENSUS_MAX_MEMBERS] = { 0 }, idx = 0;
		for (unsigned r = 0; r < DEPLOY_MAX_REPLICAS; r++) {
			int o = st->place[k].owner[r];
			if (o < 0 || !st->m[o].up)
				continue;
			char host[64];
			snprintf(host, sizeof(host), "%s", st->m[o].address);
			char *colon = strrchr(host, ':');
			if (colon)
				*colon = '\0';
			/* the owner runs its share in slots 0..count-1, port_base + slot */
			fn(arg, d, idx++, host, (uint16_t)(d->port_base + per_member[o]++));
			n++;
		}
	}
	return n;
}

static uint64_t local_signature(const struct site *s)
{
	uint64_t h = 1469598103934665603ull ^ (s->lease ? 1u : 2u);
	const struct sitestate *st = s->state;
	h = (h ^ st->version) * 1099511628211ull;
	for (unsigned k = 0; s->lease && k < st->deps.n; k++) {
		h = (h ^ st->deps.d[k].spec_hash) * 1099511628211ull;
		h = (h ^ sitestate_assigned(st, k, s->self)) * 1099511628211ull;
	}
	return h;
}

/* Lease, then the share: the owner re-applies when it changed. */
static void evaluate(struct site *s)
{
	if (!s->cons)
		return; /* raft_start() restores a snapshot before consensus_create() returns */
	uint64_t now = now_ms(s);
	unsigned heard = 1, members = sitestate_members(s->state, NULL);
	for (unsigned i = 0; i < s->state->n; i++)
		if (i != s->self && s->state->m[i].present && now - s->peer[i].heard_ms < s->sc.lease_ms)
			heard++;
	bool majority = is_member(s) && heard * 2 > members;
	struct consensus_stats cs;
	consensus_stats(s->cons, &cs);
	/* A follower that was caught up and is elected stays caught up (Raft gave it
	 * every committed entry); one that was not waits for its barrier. */
	if (!majority)
		s->caught_up = false;
	else if (consensus_leader_ready(s->cons))
		s->caught_up = true;
	else if (consensus_role(s->cons) == CONSENSUS_LEADER)
		; /* elected, barrier pending: unchanged */
	else if (now - s->leader_heard_ms < s->sc.lease_ms && cs.last_applied >= s->leader_applied)
		s->caught_up = true;
	bool lease = majority && s->caught_up;
	if (lease != s->lease) {
		s->lease = lease;
		s->lease_changes++;
		log_inf("event=%s heard=%u members=%u applied=%" PRIu64, lease ? "site_lease_held" : "site_lease_lost",
			heard, members, cs.last_applied);
		events_emit(s->deps.events, lease ? "site_lease_held" : "site_lease_lost",
			    "{\"heard\":%u,\"members\":%u}", heard, members);
	}
	uint64_t sig = local_signature(s);
	if (sig != s->local_sig && s->have_desired) {
		s->local_sig = sig;
		if (s->deps.reapply)
			s->deps.reapply(s->deps.arg);
	}
}

/* --- the tick ------------------------------------------------------------------- */

static void heartbeat(struct site *s)
{
	struct consensus_stats cs;
	consensus_stats(s->cons, &cs);
	uint64_t cpu, mem;
	headroom(s, &cpu, &mem);
	char hb[256];
	enum consensus_role r = consensus_role(s->cons);
	int n = snprintf(hb, sizeof(hb), "H1 %s %llx %c %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
			 self_id(s), s->sc.members_hash,
			 consensus_leader_ready(s->cons) ? 'L' : r == CONSENSUS_CANDIDATE ? 'C' : 'F', cs.last_applied,
			 cpu, mem, s->doc_version);
	for (unsigned i = 0; i < s->state->n; i++)
		if (i != s->self && s->state->m[i].present)
			(void)consensus_send(s->cons, i, hb, (size_t)n);
}

static void leader_duties(struct site *s)
{
	uint64_t now = now_ms(s);
	char cmd[SITE_CMD_MAX];
	for (unsigned i = 0; i < s->state->n; i++) {
		struct site_peer *p = &s->peer[i];
		const struct sitestate_member *m = &s->state->m[i];
		if (!m->present || now - p->proposed_ms < SITE_PROPOSE_GAP_MS)
			continue;
		int n = 0;
		uint64_t cpu = p->cpu_milli, mem = p->mem_bytes;
		bool alive = i == s->self || now - p->heard_ms < s->sc.failover_ms;
		if (i == s->self)
			headroom(s, &cpu, &mem);
		if (alive && (i == s->self || p->reported) && (!m->up || m->cpu_milli != cpu || m->mem_bytes != mem))
			n = sitestate_cmd_member(cmd, sizeof(cmd), m->device_id, cpu, mem);
		else if (!alive && m->up) {
			n = sitestate_cmd_down(cmd, sizeof(cmd), m->device_id);
			log_wrn("event=site_member_silent member=%s silent_ms=%" PRIu64, m->device_id, now - p->heard_ms);
			events_emit(s->deps.events, "site_member_down", "{\"member\":\"%s\",\"silent_ms\":%" PRIu64 "}",
				    m->device_id, now - p->heard_ms);
		}
		if (n > 0 && propose(s, cmd, (size_t)n) == 0)
			p->proposed_ms = now;
	}
	if (s->doc && s->doc_version > s->state->version && now - s->doc_proposed_ms >= SITE_PROPOSE_GAP_MS) {
		s->doc_proposed_ms = now;
		propose_doc(s, s->doc_version, s->doc, s->doc_len, self_id(s));
	}
	(void)consensus_reconcile(s->cons);
}

static void follower_duties(struct site *s)
{
	uint64_t now = now_ms(s);
	int leader = consensus_leader(s->cons);
	if (leader < 0 || (unsigned)leader == s->self)
		return;
	if (s->doc && s->doc_version > s->state->version && now - s->doc_forwarded_ms >= SITE_FORWARD_GAP_MS) {
		char *msg = malloc(s->doc_len + 96);
		if (!msg)
			return;
		int n = snprintf(msg, 96, "F1 %s %" PRIu64 "\n", self_id(s), s->doc_version);
		memcpy(msg + n, s->doc, s->doc_len);
		if (consensus_send(s->cons, (unsigned)leader, msg, (size_t)n + s->doc_len) == 0)
			log_inf("event=site_deployments_forwarded leader=%s version=%" PRIu64,
				s->state->m[leader].device_id, s->doc_version);
		free(msg);
		s->doc_forwarded_ms = now;
	}
}

/* Local recovery of a site deployment kept failing here: ask that it move. */
static void report_failures(struct site *s)
{
	uint64_t now = now_ms(s);
	if (!s->deps.sup || !is_member(s) || now - s->fail_ms < SITE_PROPOSE_GAP_MS)
		return;
	unsigned n = supervisor_statuses(s->deps.sup, s->st, SUP_MAX_DEPLOYMENTS);
	for (unsigned i = 0; i < n; i++) {
		int k = -1;
		for (unsigned j = 0; j < s->state->deps.n && k < 0; j++)
			if (!strcmp(s->state->deps.d[j].name, s->st[i].name))
				k = (int)j;
		if (k < 0 || !s->st[i].migration_needed || (s->state->place[k].excluded & (1u << s->self)))
			continue;
		char msg[SITE_CMD_MAX];
		const char *self = self_id(s);
		s->fail_ms = now;
		if (leading(s)) {
			int m = sitestate_cmd_failed(msg, sizeof(msg), self, s->st[i].name);
			if (m > 0)
				(void)propose(s, msg, (size_t)m);
		} else if (consensus_leader(s->cons) >= 0) {
			int m = snprintf(msg, sizeof(msg), "R1 %s %s", self, s->st[i].name);
			(void)consensus_send(s->cons, (unsigned)consensus_leader(s->cons), msg, (size_t)m);
		}
		log_wrn("event=site_local_recovery_failed deployment=%s action=move_elsewhere", s->st[i].name);
	}
}

/* --- membership requests (console commands) ------------------------------------------ */

static bool request_done(const struct site *s)
{
	return (member_of(s, s->req.id) >= 0) == s->req.join;
}

int site_member_request(struct site *s, const char *id, const char *address, char *why, size_t why_len)
{
	if (s->req.active && !request_done(s) && now_ms(s) < s->req.until_ms) {
		snprintf(why, why_len, "a %s of %s is still being carried out", s->req.join ? "join" : "leave", s->req.id);
		return -EAGAIN;
	}
	int rc = sitestate_check_change(s->state, id, address, why, why_len);
	if (rc)
		return rc;
	if (!is_member(s) || consensus_leader(s->cons) < 0) {
		snprintf(why, why_len, "%s", is_member(s) ? "no leader is known now (no majority?)" :
							"this gateway is not a member of the site yet");
		return -EAGAIN;
	}
	s->req = (struct site_request){ .active = true, .join = address != NULL, .until_ms = now_ms(s) + SITE_REQUEST_MS };
	snprintf(s->req.id, sizeof(s->req.id), "%s", id);
	snprintf(s->req.address, sizeof(s->req.address), "%s", address ? address : "");
	log_inf("event=site_membership_requested what=%s member=%s address=%s", address ? "join" : "leave", id,
		address ? address : "-");
	return 0;
}

/* Until the log has it: proposed here when leading, else carried to the leader (bounded in time). */
static void carry_request(struct site *s)
{
	struct site_request *q = &s->req;
	uint64_t now = now_ms(s);
	if (!q->active)
		return;
	if (request_done(s) || now >= q->until_ms) {
		if (!request_done(s))
			log_wrn("event=site_membership_expired member=%s after_ms=%u", q->id, SITE_REQUEST_MS);
		q->active = false;
		return;
	}
	if (now - q->sent_ms < SITE_PROPOSE_GAP_MS)
		return;
	q->sent_ms = now;
	int leader = consensus_leader(s->cons);
	if (leading(s)) {
		(void)propose_change(s, q->join, q->id, q->join ? q->address : NULL, self_id(s));
	} else if (leader >= 0) {
		char msg[SITE_CMD_MAX];
		int n = q->join ? snprintf(msg, sizeof(msg), "J1 %s %s %s", self_id(s), q->id, q->address)
				: snprintf(msg, sizeof(msg), "L1 %s %s", self_id(s), q->id);
		(void)consensus_send(s->cons, (unsigned)leader, msg, (size_t)n);
	}
}

static void log_unplaced(struct site *s)
{
	if (s->unplaced_logged_gen == s->state->applied)
		return;
	s->unplaced_logged_gen = s->state->applied;
	for (unsigned k = 0; k < s->state->deps.n; k++)
		if (s->state->place[k].unplaced && leading(s))
			events_emit(s->deps.events, "site_unplaceable", "{\"deployment\":\"%s\",\"unplaced\":%u}",
				    s->state->deps.d[k].name, s->state->place[k].unplaced);
}

static void on_tick(void *arg)
{
	struct site *s = arg;
	heartbeat(s);
	if (leading(s))
		leader_duties(s);
	else if (consensus_leader_ready(s->cons))
		(void)consensus_reconcile(s->cons); /* a leader that left hands leadership over */
	else
		follower_duties(s);
	report_failures(s);
	carry_request(s);
	log_unplaced(s);
	evaluate(s);
}

/* --- report ---------------------------------------------------------------------- */

int site_report_json(const struct site *s, char *buf, size_t len)
{
	struct consensus_stats cs;
	consensus_stats(s->cons, &cs);
	int leader = consensus_leader(s->cons);
	uint64_t now = now_ms(s);
	size_t o = 0;
	int w;
#define OUT(...)                                                    \
	do {                                                        \
		w = snprintf(buf + o, len - o, __VA_ARGS__);        \
		if (w < 0 || (size_t)w >= len - o)                  \
			return -ENOSPC;                             \
		o += (size_t)w;                                     \
	} while (0)
	OUT("{\"self\":\"%s\",\"member\":%s,\"role\":\"%s\",\"leader\":", self_id(s),
	    is_member(s) ? "true" : "false", consensus_role_name(consensus_role(s->cons)));
	if (leader >= 0)
		OUT("\"%s\"", s->state->m[leader].device_id);
	else
		OUT("null");
	OUT(",\"lease\":%s,\"term\":%" PRIu64 ",\"applied\":%" PRIu64 ",\"version\":%" PRIu64
	    ",\"generation\":%" PRIu64 ",\"moves\":%" PRIu64 ",\"refused_commands\":%" PRIu64
	    ",\"refused_datagrams\":%" PRIu64 ",\"members\":[",
	    s->lease ? "true" : "false", cs.term, cs.last_applied, s->state->version, s->state->generation,
	    s->state->moves, s->refused_cmds + s->state->refused, s->refused_dgrams);
	for (unsigned i = 0, first = 1; i < s->state->n; i++) {
		const struct sitestate_member *m = &s->state->m[i];
		if (!m->present)
			continue;
		long long ago = i == s->self ? 0 : (long long)(now - s->peer[i].heard_ms);
		OUT("%s{\"id\":\"%s\",\"address\":\"%s\",\"up\":%s,\"heard_ms_ago\":%lld,\"cpu_milli\":%" PRIu64
		    ",\"mem_bytes\":%" PRIu64 "}",
		    first ? "" : ",", m->device_id, m->address, m->up ? "true" : "false", ago, m->cpu_milli,
		    m->mem_bytes);
		first = 0;
	}
	OUT("],\"deployments\":[");
	for (unsigned k = 0; k < s->state->deps.n; k++) {
		const struct placement_dep *p = &s->state->place[k];
		OUT("%s{\"name\":\"%s\",\"replicas\":%u,\"spread\":%s,\"assigned\":[", k ? "," : "", p->name, p->replicas,
		    p->spread ? "true" : "false");
		for (unsigned r = 0; r < p->replicas && r < DEPLOY_MAX_REPLICAS; r++) {
			if (p->owner[r] >= 0)
				OUT("%s\"%s\"", r ? "," : "", s->state->m[p->owner[r]].device_id);
			else
				OUT("%snull", r ? "," : "");
		}
		char why[2 * PLACEMENT_WHY_MAX];
		events_json_escape(p->why, why, sizeof(why));
		OUT("],\"unplaced\":%u,\"why\":\"%s\"}", p->unplaced, why);
	}
	OUT("]}");
#undef OUT
	return (int)o;
}

/* --- life cycle ----------------------------------------------------------------------- */

struct site *site_create(const struct site_deps *deps, const struct berth_config *cfg)
{
	struct site *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = deps->loop;
	s->deps = *deps;
	loop_timer_init(&s->tick, on_tick, s); /* before any way out: site_destroy stops it */
	const char *key = "";
	char why[200];
	if (siteconf_parse(cfg, &s->sc, &key, why, sizeof(why))) {
		log_err("event=site_config_invalid key=%s why=\"%s\"", key, why);
		goto errout;
	}
	s->cpu_ceiling_pct = cfg->autoscale.cpu_ceiling_pct;
	s->mem_ceiling_pct = cfg->autoscale.mem_ceiling_pct;
	struct hal_node_stats ns;
	if (hal_sys_node_stats(cfg->data_dir, &ns) == 0)
		s->mem_total = ns.mem_total_bytes;
	const char *ids[CONSENSUS_MAX_MEMBERS];
	for (unsigned i = 0; i < s->sc.n; i++)
		ids[i] = s->sc.members[i].device_id;
	s->state = sitestate_create(ids, s->sc.n);
	s->desired = calloc(1, sizeof(*s->desired));
	s->scratch = calloc(1, sizeof(*s->scratch));
	if (!s->state || !s->desired || !s->scratch)
		goto errout;
	for (unsigned i = 0; i < s->sc.n; i++)
		sitestate_set_address(s->state, i, s->sc.members[i].address);
	sync_members(s); /* every member a grace of failover_ms after start */
	char dir[CONFIG_STR_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/site", cfg->data_dir);
	struct consensus_opts co = { .members = s->sc.members, .n = s->sc.n, .me = &s->sc.me,
				     .bootstrap = s->sc.self != SITECONF_JOINER, .dir = dir,
				     .election_timeout_ms = s->sc.election_timeout_ms };
	struct consensus_ops ops = { .apply = on_apply, .snapshot = on_snapshot, .restore = on_restore,
				     .on_datagram = on_datagram, .arg = s };
	s->cons = consensus_create(s->loop, &co, &ops);
	if (!s->cons)
		goto errout;
	sync_members(s); /* the log read at start may have changed the members */
	if (loop_timer_start(s->loop, &s->tick, s->sc.heartbeat_ms, s->sc.heartbeat_ms) < 0)
		goto errout;
	s->local_sig = local_signature(s);
	log_inf("event=site_joined self=%s members=%u failover_ms=%u lease_ms=%u heartbeat_ms=%u",
		self_id(s), sitestate_members(s->state, NULL), s->sc.failover_ms, s->sc.lease_ms, s->sc.heartbeat_ms);
	warn_two(s);
	return s;
errout:
	site_destroy(s);
	return NULL;
}

void site_destroy(struct site *s)
{
	if (!s)
		return;
	s->deps.reapply = NULL; /* closing the log may still apply entries */
	loop_timer_stop(s->loop, &s->tick);
	consensus_destroy(s->cons);
	sitestate_destroy(s->state);
	free(s->desired);
	free(s->scratch);
	free(s->doc);
	free(s);
}
