/* agent/site/consensus_sim.c - consensus.h over libraft's in-memory fixture: Raft, datagrams, partitions and kills in virtual time. */
#include "agent/site/consensus.h"
#include "agent/site/consensus_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>
#include <raft/fixture.h>

#include "agent/base/loop.h"

/* The same interface as consensus.c, for berth-sim --site and test_site_sim (consensus_sim.h). */

#define NMAX CONSENSUS_SIM_MAX
#define QMAX CONSENSUS_SIM_QMAX

struct consensus {
	unsigned self;          /* fixture index (Raft id self + 1) */
	struct loop *loop;
	struct consensus_ops ops;
	struct siteconf_member me;
	struct siteconf_member members[CONSENSUS_MAX_MEMBERS]; /* the table, by slot */
	bool present[CONSENSUS_MAX_MEMBERS];
	struct raft_change change;
	bool change_pending;
	struct raft_transfer transfer;
	bool transfer_pending;
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
	unsigned loss_pct, delay_ms, founders, disk_ms;
	uint64_t rng, now;
	struct dgram q[QMAX];
	unsigned nq;
	uint64_t dropped;
} W;

static uint64_t now_ms(void) { return W.now; }

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

/* Founding members in member order (they bootstrap), then gateways that join. NULL on error. */
struct consensus *consensus_create(struct loop *l, const struct consensus_opts *opts, const struct consensus_ops *ops)
{
	if (opts->n != W.founders || W.created >= NMAX || opts->bootstrap != (W.created < W.founders))
		return NULL;
	struct consensus *c = &W.c[W.created]; /* founding members in member order, then joiners */
	c->self = W.created;
	c->loop = l;
	c->ops = *ops;
	c->me = *opts->me;
	memcpy(c->members, opts->members, sizeof(c->members[0]) * opts->n);
	for (unsigned i = 0; i < opts->n; i++)
		c->present[i] = true;
	c->fsm = (struct raft_fsm){ .version = 1, .data = c, .apply = fsm_apply, .snapshot = fsm_snapshot,
				    .restore = fsm_restore };
	c->live = true;
	if (raft_fixture_grow(&W.f, &c->fsm))
		return NULL;
	raft_set_election_timeout(raft_fixture_get(&W.f, c->self), opts->election_timeout_ms);
	raft_set_heartbeat_timeout(raft_fixture_get(&W.f, c->self), opts->election_timeout_ms / 10);
	raft_fixture_set_disk_latency(&W.f, c->self, W.disk_ms);
	if (++W.created == W.founders) {
		struct raft_configuration conf;
		int rv = raft_fixture_configuration(&W.f, W.founders, &conf);
		if (!rv)
			rv = raft_fixture_bootstrap(&W.f, &conf);
		raft_configuration_close(&conf);
		if (rv || raft_fixture_start(&W.f))
			return NULL;
		W.started = true;
	} else if (W.started && raft_start(raft_fixture_get(&W.f, c->self))) {
		return NULL; /* a joiner: an empty log, started, waiting to be added */
	}
	return c;
}

int consensus_member_set(struct consensus *c, unsigned idx, const char *device_id, const char *address)
{
	if (idx >= CONSENSUS_MAX_MEMBERS)
		return -EINVAL;
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

static void on_transfer(struct raft_transfer *req)
{
	struct consensus *c = req->data;
	c->transfer_pending = false;
}

/* As the real module, with fixture ids (index + 1) for device ids; the leader itself never goes here. */
int consensus_reconcile(struct consensus *c)
{
	struct raft *r = raft_fixture_get(&W.f, c->self);
	if (!leader_ready(c) || c->change_pending || c->transfer_pending || r->configuration_uncommitted_index)
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
	bool self_kept = false;
	for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS; i++)
		self_kept |= c->present[i] && !strcmp(c->members[i].device_id, c->me.device_id);
	if (!self_kept) { /* as the real module: this leader goes, another voter leads first */
		c->transfer.data = c;
		c->transfer_pending = raft_transfer(r, &c->transfer, 0, on_transfer) == 0;
		return c->transfer_pending;
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
	d->due_ms = now_ms() + W.delay_ms;
	d->from = c->self;
	d->to = (unsigned)to;
	d->len = len;
	d->buf = malloc(len + 1);
	memcpy(d->buf, buf, len);
	d->buf[len] = '\0';
	return 0;
}

int consensus_send_to(struct consensus *c, const char *address, const char *buf, size_t len)
{
	for (unsigned j = 0; j < W.created; j++)
		if (!strcmp(W.c[j].me.address, address)) {
			struct consensus *to = &W.c[j];
			for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS; i++) /* a slot of c's table, or a stranger */
				if (c->present[i] && !strcmp(c->members[i].address, address))
					return consensus_send(c, i, buf, len);
			bool was = c->present[CONSENSUS_MAX_MEMBERS - 1];
			struct siteconf_member keep = c->members[CONSENSUS_MAX_MEMBERS - 1];
			c->members[CONSENSUS_MAX_MEMBERS - 1] = to->me;
			c->present[CONSENSUS_MAX_MEMBERS - 1] = true;
			int rc = consensus_send(c, CONSENSUS_MAX_MEMBERS - 1, buf, len);
			c->members[CONSENSUS_MAX_MEMBERS - 1] = keep;
			c->present[CONSENSUS_MAX_MEMBERS - 1] = was;
			return rc;
		}
	return -EINVAL;
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

/* --- the world ------------------------------------------------------------------- */

int consensus_sim_init(unsigned founders, uint64_t seed)
{
	if (founders < 1 || founders > NMAX)
		return -EINVAL;
	memset(&W, 0, sizeof(W));
	W.founders = founders;
	W.rng = seed ? seed : 0x9e3779b97f4a7c15ull;
	W.delay_ms = 2;
	return raft_fixture_initialize(&W.f) ? -ENOMEM : 0;
}

void consensus_sim_close(void)
{
	raft_fixture_close(&W.f);
	for (unsigned i = 0; i < W.nq; i++)
		free(W.q[i].buf);
	W.nq = 0;
}

void consensus_sim_step(uint64_t now)
{
	W.now = now;
	/* Raft in the fixture's time, kept level with the virtual clock */
	while (W.started && raft_fixture_time(&W.f) < now)
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
		if (linked(x.from, x.to) && W.c[x.to].live)
			W.c[x.to].ops.on_datagram(W.c[x.to].ops.arg, W.c[x.from].me.address, x.buf, x.len);
		free(x.buf);
	}
}

void consensus_sim_set_loss(unsigned pct) { W.loss_pct = pct; }
void consensus_sim_set_delay(unsigned ms) { W.delay_ms = ms; }

void consensus_sim_set_disk_latency(unsigned ms)
{
	W.disk_ms = ms;
	for (unsigned i = 0; i < W.created; i++)
		raft_fixture_set_disk_latency(&W.f, i, ms);
}

void consensus_sim_cut(unsigned i, bool cut)
{
	if (i >= W.created || W.cut[i] == cut)
		return;
	for (unsigned j = 0; j < W.created; j++) {
		if (j == i)
			continue;
		if (cut) {
			raft_fixture_saturate(&W.f, i, j);
			raft_fixture_saturate(&W.f, j, i);
		} else {
			raft_fixture_desaturate(&W.f, i, j);
			raft_fixture_desaturate(&W.f, j, i);
		}
	}
	W.cut[i] = cut;
}

void consensus_sim_kill(unsigned i)
{
	if (i >= W.created || W.dead[i])
		return;
	W.dead[i] = true;
	raft_fixture_kill(&W.f, i);
}

bool consensus_sim_dead(unsigned i) { return i < W.created && W.dead[i]; }
bool consensus_sim_is_cut(unsigned i) { return i < W.created && W.cut[i]; }
unsigned consensus_sim_n(void) { return W.created; }
struct consensus *consensus_sim_get(unsigned i) { return i < W.created ? &W.c[i] : NULL; }
uint64_t consensus_sim_dropped(void) { return W.dropped; }
unsigned consensus_sim_config_n(unsigned i)
{
	return i < W.created ? raft_fixture_get(&W.f, i)->configuration.n : 0;
}
