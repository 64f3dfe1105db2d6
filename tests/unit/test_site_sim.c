/* tests/unit/test_site_sim.c - a simulated site in virtual time: berth's site code over libraft's in-memory fixture, with datagram loss, partitions and kills. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>
#include <raft/fixture.h>

#include "agent/base/loop.h"
#include "agent/model/config.h"
#include "agent/model/deploy.h"
#include "agent/site/consensus.h"
#include "agent/site/site.h"
#include "ports/sim/sim.h"

/*
 * The site logic (site.c, sitestate.c, placement.c, siteconf.c) is the core's own; only the
 * consensus module is replaced, at link time, by this file: the same interface over
 * raft/fixture.h (libraft's deterministic in-memory cluster, the same Raft code berthd runs),
 * its time driven by the sim port's virtual clock. Datagrams (heartbeats, forwards) go through
 * a queue here with a latency, a seeded loss rate and partitions.
 */

#define N 3               /* founding members */
#define NMAX 4            /* with one that joins */
#define DGRAM_LATENCY_MS 2
#define STEP_MS 5
#define QMAX 4096

struct consensus {
	unsigned self;          /* fixture index (Raft id self + 1) */
	struct loop *loop;
	struct consensus_ops ops;
	struct siteconf_member me;
	struct siteconf_member members[CONSENSUS_MAX_MEMBERS]; /* the table, by slot */
	bool present[CONSENSUS_MAX_MEMBERS];
	struct raft_change change;
	bool change_pending;
	struct raft_fsm fsm;
	bool live;
	uint64_t ready_term;    /* term whose barrier committed (as the real module) */
	uint64_t barrier_term;
	bool barrier_pending;
	struct raft_barrier barrier;
};

struct dgram {
	uint64_t due_ms;
	unsigned from, to;
	size_t len;
	char *buf;
};

static struct {
	struct raft_fixture f;
	struct consensus c[NMAX];
	unsigned created;
	bool started;
	bool cut[NMAX];         /* partitioned from every other member */
	bool dead[NMAX];
	unsigned loss_pct;
	uint64_t rng;
	struct dgram q[QMAX];
	unsigned nq;
	uint64_t dropped;
} W;

static uint64_t now_ms(void) { return loop_now_ms(W.c[0].loop); }

static unsigned rnd(void)
{
	W.rng ^= W.rng << 13;
	W.rng ^= W.rng >> 7;
	W.rng ^= W.rng << 17;
	return (unsigned)(W.rng % 100u);
}

static bool linked(unsigned a, unsigned b) { return !W.cut[a] && !W.cut[b] && !W.dead[a] && !W.dead[b]; }

/* --- the consensus interface over the fixture ---------------------------------- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct consensus *c = fsm->data;
	c->ops.apply(c->ops.arg, buf->base, strnlen(buf->base, buf->len));
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
	struct consensus *c = fsm->data;
	char *text;
	size_t len;
	if (c->ops.snapshot(c->ops.arg, &text, &len))
		return RAFT_NOMEM;
	size_t padded = (len + 8) & ~(size_t)7;
	*bufs = raft_malloc(sizeof(**bufs));
	(*bufs)[0].base = raft_calloc(1, padded);
	memcpy((*bufs)[0].base, text, len);
	(*bufs)[0].len = padded;
	*n = 1;
	free(text);
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct consensus *c = fsm->data;
	if (c->ops.restore(c->ops.arg, buf->base, strnlen(buf->base, buf->len)))
		return RAFT_CORRUPT;
	raft_free(buf->base);
	return 0;
}

/* The fixture index of a device id, or -1. */
static int fixture_of(const char *device_id)
{
	for (unsigned j = 0; j < W.created; j++)
		if (!strcmp(W.c[j].me.device_id, device_id))
			return (int)j;
	return -1;
}

struct consensus *consensus_create(struct loop *l, const struct consensus_opts *opts, const struct consensus_ops *ops)
{
	assert_int_equal(opts->n, N);
	assert_true(W.created < NMAX);
	struct consensus *c = &W.c[W.created]; /* founding members in member order, then joiners */
	c->self = W.created;
	c->loop = l;
	c->ops = *ops;
	c->me = *opts->me;
	assert_int_equal(opts->bootstrap, W.created < N);
	memcpy(c->members, opts->members, sizeof(c->members[0]) * N);
	for (unsigned i = 0; i < N; i++)
		c->present[i] = true;
	c->fsm = (struct raft_fsm){ .version = 1, .data = c, .apply = fsm_apply, .snapshot = fsm_snapshot,
				    .restore = fsm_restore };
	c->live = true;
	assert_int_equal(raft_fixture_grow(&W.f, &c->fsm), 0);
	raft_set_election_timeout(raft_fixture_get(&W.f, c->self), opts->election_timeout_ms);
	raft_set_heartbeat_timeout(raft_fixture_get(&W.f, c->self), opts->election_timeout_ms / 10);
	if (++W.created == N) {
		struct raft_configuration conf;
		assert_int_equal(raft_fixture_configuration(&W.f, N, &conf), 0);
		assert_int_equal(raft_fixture_bootstrap(&W.f, &conf), 0);
		raft_configuration_close(&conf);
		assert_int_equal(raft_fixture_start(&W.f), 0);
		W.started = true;
	} else if (W.started) { /* a joiner: an empty log, started, waiting to be added */
		assert_int_equal(raft_start(raft_fixture_get(&W.f, c->self)), 0);
	}
	return c;
}

int consensus_member_set(struct consensus *c, unsigned idx, const char *device_id, const char *address)
{
	assert_true(idx < CONSENSUS_MAX_MEMBERS);
	snprintf(c->members[idx].device_id, sizeof(c->members[idx].device_id), "%s", device_id);
	snprintf(c->members[idx].address, sizeof(c->members[idx].address), "%s", address);
	c->present[idx] = true;
	return 0;
}

void consensus_member_clear(struct consensus *c, unsigned idx) { c->present[idx] = false; }

static void on_change(struct raft_change *req, int status)
{
	struct consensus *c = req->data;
	(void)status;
	c->change_pending = false;
}

static bool leader_ready(const struct consensus *c);

/* As the real module, with fixture ids (index + 1) for device ids; the leader itself never goes here. */
int consensus_reconcile(struct consensus *c)
{
	struct raft *r = raft_fixture_get(&W.f, c->self);
	if (!leader_ready(c) || c->change_pending || r->configuration_uncommitted_index)
		return 0;
	c->change.data = c;
	for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS; i++) {
		int j = c->present[i] ? fixture_of(c->members[i].device_id) : -1;
		if (j < 0)
			continue;
		const struct raft_server *srv = NULL;
		for (unsigned k = 0; k < r->configuration.n; k++)
			if (r->configuration.servers[k].id == (raft_id)j + 1)
				srv = &r->configuration.servers[k];
		if (srv && srv->role == RAFT_VOTER)
			continue;
		int rv = srv ? raft_assign(r, &c->change, (raft_id)j + 1, RAFT_VOTER, on_change)
			     : raft_add(r, &c->change, (raft_id)j + 1, c->members[i].address, on_change);
		c->change_pending = rv == 0;
		return rv == 0;
	}
	for (unsigned k = 0; k < r->configuration.n; k++) {
		raft_id id = r->configuration.servers[k].id;
		bool keep = id == r->id;
		for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS && !keep; i++)
			keep = c->present[i] && fixture_of(c->members[i].device_id) == (int)id - 1;
		if (keep)
			continue;
		int rv = raft_remove(r, &c->change, id, on_change);
		c->change_pending = rv == 0;
		return rv == 0;
	}
	return 0;
}

void consensus_destroy(struct consensus *c)
{
	if (c)
		c->live = false;
}

static void applied(struct raft_apply *req, int status, void *result)
{
	(void)status;
	(void)result;
	free(req);
}

int consensus_propose(struct consensus *c, const char *cmd, size_t len)
{
	struct raft *r = raft_fixture_get(&W.f, c->self);
	if (W.dead[c->self] || raft_state(r) != RAFT_LEADER)
		return -EPERM;
	struct raft_apply *req = calloc(1, sizeof(*req));
	size_t padded = (len + 8) & ~(size_t)7;
	struct raft_buffer b = { .base = raft_calloc(1, padded), .len = padded };
	memcpy(b.base, cmd, len);
	if (raft_apply(r, req, &b, 1, applied) != 0) {
		raft_free(b.base);
		free(req);
		return -EIO;
	}
	return 0;
}

int consensus_send(struct consensus *c, unsigned idx, const char *buf, size_t len)
{
	int to = idx < CONSENSUS_MAX_MEMBERS && c->present[idx] ? fixture_of(c->members[idx].device_id) : -1;
	if (to < 0 || (unsigned)to == c->self || W.dead[c->self])
		return -EINVAL;
	if (!linked(c->self, (unsigned)to) || rnd() < W.loss_pct || W.nq == QMAX) {
		W.dropped++;
		return 0; /* lost on the way: the sender cannot tell */
	}
	struct dgram *d = &W.q[W.nq++];
	d->due_ms = now_ms() + DGRAM_LATENCY_MS;
	d->from = c->self;
	d->to = (unsigned)to;
	d->len = len;
	d->buf = malloc(len + 1);
	memcpy(d->buf, buf, len);
	d->buf[len] = '\0';
	return 0;
}

enum consensus_role consensus_role(const struct consensus *c)
{
	if (W.dead[c->self])
		return CONSENSUS_UNAVAILABLE;
	switch (raft_state(raft_fixture_get(&W.f, c->self))) {
	case RAFT_FOLLOWER: return CONSENSUS_FOLLOWER;
	case RAFT_CANDIDATE: return CONSENSUS_CANDIDATE;
	case RAFT_LEADER: return CONSENSUS_LEADER;
	default: return CONSENSUS_UNAVAILABLE;
	}
}

static void on_barrier(struct raft_barrier *req, int status)
{
	struct consensus *c = req->data;
	c->barrier_pending = false;
	if (status == 0)
		c->ready_term = c->barrier_term;
}

/* As the real module: a new leader commits a barrier before it is ready. */
static void leader_check(struct consensus *c)
{
	struct raft *r = raft_fixture_get(&W.f, c->self);
	if (W.dead[c->self] || raft_state(r) != RAFT_LEADER || c->barrier_pending || c->ready_term == r->current_term)
		return;
	c->barrier.data = c;
	c->barrier_term = r->current_term;
	if (raft_barrier(r, &c->barrier, on_barrier) == 0)
		c->barrier_pending = true;
}

bool consensus_leader_ready(const struct consensus *c) { return leader_ready(c); }

static bool leader_ready(const struct consensus *c)
{
	struct raft *r = raft_fixture_get(&W.f, c->self);
	return !W.dead[c->self] && raft_state(r) == RAFT_LEADER && c->ready_term == r->current_term;
}

int consensus_leader(const struct consensus *c)
{
	raft_id id;
	const char *addr;
	if (W.dead[c->self])
		return -1;
	raft_leader(raft_fixture_get(&W.f, c->self), &id, &addr);
	if (!id) /* fixture ids are 1..n; the table is by slot */
		return -1;
	for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS; i++)
		if (c->present[i] && !strcmp(c->members[i].device_id, W.c[id - 1].me.device_id))
			return (int)i;
	return -1;
}

void consensus_stats(const struct consensus *c, struct consensus_stats *out)
{
	struct raft *r = raft_fixture_get(&W.f, c->self);
	memset(out, 0, sizeof(*out));
	out->last_applied = raft_last_applied(r);
	out->last_index = raft_last_index(r);
	out->term = r->current_term;
}

const char *consensus_role_name(enum consensus_role r)
{
	static const char *const names[] = { "unavailable", "follower", "candidate", "leader" };
	return (unsigned)r < 4 ? names[r] : "?";
}

uint64_t consensus_member_id(const char *device_id) { return device_id[0] ? 1 : 0; }

/* --- the simulated site ----------------------------------------------------------- */

struct member {
	struct site *site;
	struct deploy_set desired, local;
	unsigned runs;          /* replicas of det this member runs (its supervisor, instantly) */
};

static struct member M[NMAX];
static struct loop *L;

static const char *const deployments =
	"{\"version\":1,\"deployments\":[{\"name\":\"det\",\"image\":\"i\",\"resources\":{\"cpu\":\"100m\","
	"\"memory\":\"32Mi\"},\"sla\":{\"class\":\"urgent\"},\"placement\":{\"scope\":\"site\",\"replicas\":2,"
	"\"spread\":true}},{\"name\":\"edge\",\"image\":\"i\",\"inference\":{\"port\":9000}}]}";

static void reapply(void *arg)
{
	struct member *m = arg;
	(void)site_filter(m->site, &m->desired, &m->local);
	const struct deploy_spec *d = deploy_find(&m->local, "det");
	m->runs = d ? d->replicas : 0;
}

static void step(void)
{
	sim_clock_advance_ms(STEP_MS);
	uint64_t now = now_ms();
	/* Raft in the fixture's time, kept level with the virtual clock */
	while (raft_fixture_time(&W.f) < now)
		raft_fixture_step(&W.f);
	for (unsigned i = 0; i < W.created; i++)
		leader_check(&W.c[i]);
	for (unsigned i = 0; i < W.nq;) {
		struct dgram *d = &W.q[i];
		if (d->due_ms > now) {
			i++;
			continue;
		}
		struct dgram x = *d;
		*d = W.q[--W.nq];
		if (linked(x.from, x.to))
			W.c[x.to].ops.on_datagram(W.c[x.to].ops.arg, W.c[x.from].me.address, x.buf, x.len);
		free(x.buf);
	}
	(void)loop_run_once(L, 0);
}

static void run_ms(unsigned ms)
{
	for (unsigned t = 0; t < ms; t += STEP_MS)
		step();
}

static unsigned total_runs(void)
{
	unsigned t = 0;
	for (unsigned i = 0; i < W.created; i++)
		t += W.dead[i] ? 0 : M[i].runs;
	return t;
}

/* Gateway i (gw<i+1>): a founding member for i < N, else one that joins (site.address). */
static void add_member(unsigned i)
{
	static struct berth_config cfg;
	struct config_error err;
	char text[512], addr[64] = "";
	if (i >= N)
		snprintf(addr, sizeof(addr), ",\"address\":\"10.0.0.%u:7400\"", i + 1);
	snprintf(text, sizeof(text),
		 "{\"device_id\":\"gw%u\",\"data_dir\":\"/tmp/unused\",\"site\":{\"enabled\":true,"
		 "\"members\":\"gw1=10.0.0.1:7400,gw2=10.0.0.2:7400,gw3=10.0.0.3:7400\"%s}}",
		 i + 1, addr);
	assert_int_equal(config_parse(text, strlen(text), &cfg, &err), 0);
	struct deploy_error de;
	assert_int_equal(deploy_parse(deployments, strlen(deployments), &M[i].desired, &de), 0);
	struct site_deps sd = { .loop = L, .reapply = reapply, .arg = &M[i] };
	M[i].site = site_create(&sd, &cfg);
	assert_non_null(M[i].site);
	reapply(&M[i]); /* the desired state arrives (actions -> site_filter) */
}

static int setup(void **state)
{
	(void)state;
	memset(&W, 0, sizeof(W));
	W.rng = 0x9e3779b97f4a7c15ull;
	assert_int_equal(raft_fixture_initialize(&W.f), 0);
	struct hal_node_stats ns = { .ncpu = 2, .mem_total_bytes = 2ull << 30 };
	sim_sys_set_node(&ns);
	L = loop_create();
	assert_non_null(L);
	for (unsigned i = 0; i < N; i++)
		add_member(i);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < W.created; i++)
		site_destroy(M[i].site);
	memset(M, 0, sizeof(M));
	loop_destroy(L);
	raft_fixture_close(&W.f);
	for (unsigned i = 0; i < W.nq; i++)
		free(W.q[i].buf);
	return 0;
}

/* Until every live member holds the lease and det runs twice, spread. */
static bool settled(void)
{
	for (unsigned i = 0; i < N; i++)
		if (!W.dead[i] && !W.cut[i] && (!site_lease_held(M[i].site) || M[i].runs > 1))
			return false;
	return total_runs() == 2;
}

static unsigned settle(unsigned max_ms)
{
	unsigned t = 0;
	while (!settled() && t < max_ms) {
		step();
		t += STEP_MS;
	}
	assert_true(settled());
	return t;
}

static int holder(int skip)
{
	for (int i = 0; i < N; i++)
		if (i != skip && !W.dead[i] && M[i].runs)
			return i;
	return -1;
}

static int spare(void)
{
	for (int i = 0; i < N; i++)
		if (!W.dead[i] && !M[i].runs)
			return i;
	return -1;
}

static void converges_spread_with_a_leader(void **state)
{
	(void)state;
	unsigned t = settle(15000);
	print_message("settled after %u ms of virtual time\n", t);
	int leader = consensus_leader(&W.c[0]);
	assert_true(leader >= 0);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(consensus_leader(&W.c[i]), leader);
		const struct deploy_spec *e = deploy_find(&M[i].local, "edge");
		assert_non_null(e); /* node-scoped: everywhere */
	}
	char view[4096];
	assert_true(site_report_json(M[leader].site, view, sizeof(view)) > 0);
	assert_non_null(strstr(view, "\"lease\":true"));
}

/* Virtual time at which a member stops/starts running det, at STEP_MS resolution. */
static void partition_then_heal(unsigned loss_pct)
{
	settle(15000);
	W.loss_pct = loss_pct;
	int v = holder(-1), s = spare();
	assert_true(v >= 0 && s >= 0);
	for (unsigned j = 0; j < N; j++)
		if (j != (unsigned)v) {
			raft_fixture_saturate(&W.f, (unsigned)v, j);
			raft_fixture_saturate(&W.f, j, (unsigned)v);
		}
	W.cut[v] = true;
	int keep = holder(v);
	assert_true(keep >= 0);
	uint64_t t0 = now_ms(), t_stop = 0, t_start = 0;
	while (now_ms() - t0 < 15000 && (!t_stop || !t_start)) {
		step();
		if (!t_stop && !M[v].runs)
			t_stop = now_ms() - t0;
		if (!t_start && M[s].runs)
			t_start = now_ms() - t0;
		/* the majority's holder keeps its replica; the replacement never starts before the
		 * cut-off member has stopped its own (no double run) */
		assert_int_equal(M[keep].runs, 1);
		assert_true(!M[s].runs || !M[v].runs);
	}
	print_message("loss %u%%: minority stopped at %llu ms, replacement at %llu ms\n", loss_pct,
		      (unsigned long long)t_stop, (unsigned long long)t_start);
	assert_true(t_stop > 0 && t_stop <= 2000 + 2 * 250);
	assert_true(t_start > 0 && t_start >= t_stop);
	assert_true(t_start <= 3000 + 2000);
	assert_false(site_lease_held(M[v].site));
	/* heal: the cut-off member comes back and runs nothing (its replica moved) */
	for (unsigned j = 0; j < N; j++)
		if (j != (unsigned)v) {
			raft_fixture_desaturate(&W.f, (unsigned)v, j);
			raft_fixture_desaturate(&W.f, j, (unsigned)v);
		}
	W.cut[v] = false;
	run_ms(5000);
	assert_true(site_lease_held(M[v].site));
	assert_int_equal(M[v].runs, 0);
	assert_int_equal(total_runs(), 2);
}

static void partition_moves_the_replica_within_the_lease(void **state)
{
	(void)state;
	partition_then_heal(0);
}

static void datagram_loss_does_not_break_the_bound(void **state)
{
	(void)state;
	partition_then_heal(20);
	print_message("datagrams lost: %llu\n", (unsigned long long)W.dropped);
}

static void leader_killed_a_new_one_moves_its_replica(void **state)
{
	(void)state;
	settle(15000);
	int leader = consensus_leader(&W.c[0]);
	if (!M[leader].runs) { /* make the leader a holder: kill a holder that leads, else any holder */
		leader = holder(-1);
	}
	bool was_leader = leader == consensus_leader(&W.c[0]);
	/* slow disks: the new leader's barrier takes longer than a site tick, so a lease
	 * that waited for it would be seen dropping */
	for (unsigned i = 0; i < N; i++)
		raft_fixture_set_disk_latency(&W.f, i, 400);
	int other = holder(leader);
	assert_true(other >= 0);
	W.dead[leader] = true;
	raft_fixture_kill(&W.f, (unsigned)leader);
	M[leader].runs = 0; /* the whole member is gone, its containers with it */
	uint64_t t0 = now_ms();
	unsigned t = 0;
	while (total_runs() < 2 && t < 15000) {
		step();
		t += STEP_MS;
		/* the surviving holder keeps its replica through the election (no bounce) */
		assert_int_equal(M[other].runs, 1);
		assert_true(site_lease_held(M[other].site));
	}
	print_message("%s gw%d killed; replacement after %llu ms\n", was_leader ? "leader" : "holder", leader + 1,
		      (unsigned long long)(now_ms() - t0));
	assert_int_equal(total_runs(), 2);
	assert_true(now_ms() - t0 <= 3000 + 2500);
	int nl = -1;
	for (unsigned i = 0; i < N; i++)
		if (!W.dead[i]) {
			assert_int_equal(M[i].runs, 1);
			nl = consensus_leader(&W.c[i]);
			assert_true(nl >= 0 && nl != leader);
		}
}

/* A fourth gateway joins by a command given to a follower; then a member holding a det replica
 * leaves by command: its replica moves, it runs nothing, and the Raft configuration follows. */
static void join_then_leave_by_command(void **state)
{
	(void)state;
	char why[200], view[4096];
	settle(15000);
	add_member(3);
	int leader = consensus_leader(&W.c[0]);
	unsigned f = (unsigned)(leader + 1) % N;
	static const struct { const char *id, *addr; int rc; } bad[] = {
		{ "gw2", "10.0.0.9:7400", -EEXIST }, { "gw9", "10.0.0.1:7400", -EEXIST },
		{ "gw9", "10.0.0.9", -EINVAL }, { "gw9", NULL, -ENOENT },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(site_member_request(M[f].site, bad[i].id, bad[i].addr, why, sizeof(why)), bad[i].rc);
		print_message("refused %s %s: %s\n", bad[i].id, bad[i].addr ? bad[i].addr : "(leave)", why);
	}
	assert_int_equal(site_member_request(M[f].site, "gw4", "10.0.0.4:7400", why, sizeof(why)), 0);
	assert_int_equal(site_member_request(M[f].site, "gw5", "10.0.0.5:7400", why, sizeof(why)), -EAGAIN);
	uint64_t t0 = now_ms();
	while (!site_lease_held(M[3].site) && now_ms() - t0 < 15000)
		step();
	print_message("gw4 joined and holds the lease after %llu ms\n", (unsigned long long)(now_ms() - t0));
	assert_true(site_lease_held(M[3].site));
	struct raft *lr = raft_fixture_get(&W.f, (unsigned)leader);
	assert_int_equal(lr->configuration.n, 4);
	for (unsigned i = 0; i < 4; i++) {
		assert_true(site_report_json(M[i].site, view, sizeof(view)) > 0);
		assert_non_null(strstr(view, "\"id\":\"gw4\",\"address\":\"10.0.0.4:7400\""));
	}
	assert_int_equal(total_runs(), 2);
	/* a det holder that does not lead leaves, asked of another member */
	int h = -1;
	for (int i = 0; i < N && h < 0; i++)
		if (M[i].runs && i != leader)
			h = i;
	assert_true(h >= 0);
	unsigned asker = (unsigned)leader == (unsigned)(h + 1) % N ? (unsigned)(h + 2) % N : (unsigned)(h + 1) % N;
	char hid[8];
	snprintf(hid, sizeof(hid), "gw%d", h + 1);
	assert_int_equal(site_member_request(M[asker].site, hid, NULL, why, sizeof(why)), 0);
	t0 = now_ms();
	uint64_t both = 0;
	while ((M[h].runs || total_runs() != 2) && now_ms() - t0 < 15000) {
		step();
		if (total_runs() > 2)
			both += STEP_MS;
	}
	print_message("%s left: its replica moved after %llu ms, ran twice for %llu ms\n", hid,
		      (unsigned long long)(now_ms() - t0), (unsigned long long)both);
	assert_int_equal(M[h].runs, 0);
	assert_int_equal(total_runs(), 2);
	assert_true(both <= 200); /* the leaving member stops as it applies L, the new owner starts as it does */
	run_ms(3000);
	assert_int_equal(lr->configuration.n, 3);
	assert_false(site_lease_held(M[h].site));
	assert_true(site_report_json(M[h].site, view, sizeof(view)) > 0);
	assert_non_null(strstr(view, "\"member\":false"));
	/* leaving again, or a leave that leaves one member: refused */
	assert_int_equal(site_member_request(M[asker].site, hid, NULL, why, sizeof(why)), -ENOENT);
	print_message("refused leave of %s again: %s\n", hid, why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(converges_spread_with_a_leader, setup, teardown),
		cmocka_unit_test_setup_teardown(partition_moves_the_replica_within_the_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(datagram_loss_does_not_break_the_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(leader_killed_a_new_one_moves_its_replica, setup, teardown),
		cmocka_unit_test_setup_teardown(join_then_leave_by_command, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
