/* agent/site/consensus.c - libraft (libuv I/O) run inside berth's loop: the site's log, its snapshots and a UDP side channel. */
#include "agent/site/consensus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"

#define LOG_TAG "consensus"

#define CONSENSUS_IDLE_POLL_MS 100u   /* libuv is run at least this often */
#define CONSENSUS_CLOSE_TURNS 1000    /* bound on the libuv turns spent closing */
#define CONSENSUS_CHANGE_RETRY_MS 1000u /* a failed membership change is tried again after this */

struct consensus_req {
	struct raft_apply req;
	struct consensus *c;
};

struct consensus {
	struct loop *loop;
	struct consensus_ops ops;
	struct siteconf_member members[CONSENSUS_MAX_MEMBERS];
	struct sockaddr_in member_sa[CONSENSUS_MAX_MEMBERS];
	bool present[CONSENSUS_MAX_MEMBERS];
	struct siteconf_member me;
	struct sockaddr_in me_sa;
	unsigned n;
	struct raft_change change;
	bool change_pending;
	uint64_t change_retry_ms;      /* loop time before which no change is started (after a failure) */
	struct raft_transfer transfer;
	bool transfer_pending;
	uv_loop_t uv;
	bool uv_ready, transport_ready, io_ready, raft_ready, udp_ready, raft_closed;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft raft;
	struct raft_fsm fsm;
	uv_udp_t udp;
	int backend_fd;
	struct loop_timer timer;
	char rxbuf[CONSENSUS_DGRAM_MAX + 1];
	struct consensus_stats st;
	struct raft_barrier barrier;
	bool barrier_pending;
	uint64_t ready_term;           /* term whose barrier committed; 0 none */
	uint64_t barrier_term;
};

uint64_t consensus_member_id(const char *device_id)
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)device_id; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h ? h : 1;
}

const char *consensus_role_name(enum consensus_role r)
{
	static const char *const names[] = { "unavailable", "follower", "candidate", "leader" };
	return (unsigned)r < 4 ? names[r] : "?";
}

/* libraft's codes, translated once. */
static int raft_errno(int rv)
{
	switch (rv) {
	case 0: return 0;
	case RAFT_NOMEM: return -ENOMEM;
	case RAFT_NOTLEADER: case RAFT_LEADERSHIPLOST: return -EPERM;
	case RAFT_TOOBIG: return -E2BIG;
	case RAFT_NOCONNECTION: return -ENOTCONN;
	case RAFT_CANCELED: return -ECANCELED;
	default: return -EIO;
	}
}

static int split_address(const char *addr, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return -EINVAL;
	return uv_ip4_addr(host, (int)port, sa) == 0 ? 0 : -EINVAL;
}

/* --- libuv inside the loop ------------------------------------------------ */

static void leader_check(struct consensus *c);

static void drive(struct consensus *c)
{
	uv_run(&c->uv, UV_RUN_NOWAIT);
	if (c->raft_ready)
		leader_check(c);
	int t = uv_backend_timeout(&c->uv);
	if (t < 0 || t > (int)CONSENSUS_IDLE_POLL_MS)
		t = (int)CONSENSUS_IDLE_POLL_MS;
	if (loop_timer_start(c->loop, &c->timer, (uint64_t)t, 0) < 0)
		log_err("event=timer_full what=consensus");
}

static void on_barrier(struct raft_barrier *req, int status)
{
	struct consensus *c = req->data;
	c->barrier_pending = false;
	if (status == 0)
		c->ready_term = c->barrier_term;
}

/* A new leader commits a barrier before it acts on its state. */
static void leader_check(struct consensus *c)
{
	if (raft_state(&c->raft) != RAFT_LEADER || c->barrier_pending || c->ready_term == c->raft.current_term)
		return;
	c->barrier.data = c;
	c->barrier_term = c->raft.current_term;
	if (raft_barrier(&c->raft, &c->barrier, on_barrier) == 0)
		c->barrier_pending = true;
}

bool consensus_leader_ready(const struct consensus *c)
{
	return raft_state((struct raft *)&c->raft) == RAFT_LEADER && c->ready_term == c->raft.current_term;
}

static void on_backend(void *arg, int fd, unsigned events)
{
	(void)fd;
	(void)events;
	drive(arg);
}

static void on_timer(void *arg) { drive(arg); }

/* --- the state machine, as libraft sees it ---------------------------------- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct consensus *c = fsm->data;
	c->st.applied++;
	/* Entries read back from disk are padded to 8 bytes with zeros: commands
	 * are text, so their length is up to the first NUL. */
	c->ops.apply(c->ops.arg, buf->base, strnlen(buf->base, buf->len));
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct consensus *c = fsm->data;
	char *text;
	size_t len;
	int rc = c->ops.snapshot(c->ops.arg, &text, &len);
	if (rc)
		return RAFT_NOMEM;
	size_t padded = (len + 8) & ~(size_t)7;
	*bufs = raft_malloc(sizeof(**bufs));
	void *copy = raft_malloc(padded);
	if (!*bufs || !copy) {
		raft_free(*bufs);
		raft_free(copy);
		free(text);
		return RAFT_NOMEM;
	}
	memset(copy, 0, padded);
	memcpy(copy, text, len);
	free(text);
	(*bufs)[0].base = copy;
	(*bufs)[0].len = padded;
	*n_bufs = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct consensus *c = fsm->data;
	int rc = c->ops.restore(c->ops.arg, buf->base, strnlen(buf->base, buf->len));
	if (rc) {
		log_err("event=snapshot_restore_failed err=%s", strerror(-rc));
		return RAFT_CORRUPT;
	}
	raft_free(buf->base); /* ours on success */
	return 0;
}

/* --- datagrams ---------------------------------------------------------------- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct consensus *c = h->data;
	(void)suggested;
	buf->base = c->rxbuf;
	buf->len = CONSENSUS_DGRAM_MAX;
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from, unsigned flags)
{
	struct consensus *c = h->data;
	if (nread <= 0 || !from || from->sa_family != AF_INET || (flags & UV_UDP_PARTIAL))
		return;
	char addr[64], ip[32];
	const struct sockaddr_in *sin = (const struct sockaddr_in *)from;
	uv_ip4_name(sin, ip, sizeof(ip));
	snprintf(addr, sizeof(addr), "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
	c->st.dgram_received++;
	buf->base[nread] = '\0';
	c->ops.on_datagram(c->ops.arg, addr, buf->base, (size_t)nread);
}

int consensus_send(struct consensus *c, unsigned idx, const char *buf, size_t len)
{
	if (idx >= CONSENSUS_MAX_MEMBERS || !c->present[idx] || !strcmp(c->members[idx].device_id, c->me.device_id))
		return -EINVAL;
	if (len > CONSENSUS_DGRAM_MAX)
		return -E2BIG;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int rc = uv_udp_try_send(&c->udp, &b, 1, (const struct sockaddr *)&c->member_sa[idx]);
	if (rc < 0) {
		c->st.dgram_dropped++;
		return rc; /* libuv's codes are negative errno on Linux */
	}
	c->st.dgram_sent++;
	return 0;
}

int consensus_send_to(struct consensus *c, const char *address, const char *buf, size_t len)
{
	struct sockaddr_in sa;
	if (split_address(address, &sa))
		return -EINVAL;
	if (len > CONSENSUS_DGRAM_MAX)
		return -E2BIG;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int rc = uv_udp_try_send(&c->udp, &b, 1, (const struct sockaddr *)&sa);
	if (rc < 0) {
		c->st.dgram_dropped++;
		return rc;
	}
	c->st.dgram_sent++;
	return 0;
}

/* --- log ---------------------------------------------------------------------- */

static void on_applied(struct raft_apply *req, int status, void *result)
{
	struct consensus_req *r = (struct consensus_req *)req;
	(void)result;
	if (status) {
		r->c->st.propose_failed++;
		log_wrn("event=propose_not_committed err=%s", raft_strerror(status));
	}
	free(r);
}

int consensus_propose(struct consensus *c, const char *cmd, size_t len)
{
	if (raft_state(&c->raft) != RAFT_LEADER)
		return -EPERM;
	if (len > CONSENSUS_DGRAM_MAX)
		return -E2BIG;
	struct consensus_req *r = calloc(1, sizeof(*r));
	/* libraft 0.15 writes an entry's bytes as given but reads them back as a
	 * multiple of 8: pad with zeros (read back as the end of the text). */
	size_t padded = (len + 8) & ~(size_t)7;
	struct raft_buffer b = { .base = raft_malloc(padded), .len = padded };
	if (!r || !b.base) {
		free(r);
		raft_free(b.base);
		return -ENOMEM;
	}
	memset(b.base, 0, padded);
	memcpy(b.base, cmd, len);
	r->c = c;
	int rv = raft_apply(&c->raft, &r->req, &b, 1, on_applied);
	if (rv) {
		raft_free(b.base);
		free(r);
		c->st.propose_failed++;
		return raft_errno(rv);
	}
	c->st.proposed++;
	drive(c); /* send it now rather than at the next timer */
	return 0;
}

enum consensus_role consensus_role(const struct consensus *c)
{
	switch (raft_state((struct raft *)&c->raft)) {
	case RAFT_FOLLOWER: return CONSENSUS_FOLLOWER;
	case RAFT_CANDIDATE: return CONSENSUS_CANDIDATE;
	case RAFT_LEADER: return CONSENSUS_LEADER;
	default: return CONSENSUS_UNAVAILABLE;
	}
}

int consensus_leader(const struct consensus *c)
{
	raft_id id;
	const char *addr;
	raft_leader((struct raft *)&c->raft, &id, &addr);
	if (!id)
		return -1;
	for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS; i++)
		if (c->present[i] && consensus_member_id(c->members[i].device_id) == id)
			return (int)i;
	return -1;
}

/* --- membership ------------------------------------------------------------------ */

int consensus_member_set(struct consensus *c, unsigned idx, const char *device_id, const char *address)
{
	if (idx >= CONSENSUS_MAX_MEMBERS)
		return -EINVAL;
	struct sockaddr_in sa;
	if (split_address(address, &sa))
		return -EINVAL;
	snprintf(c->members[idx].device_id, sizeof(c->members[idx].device_id), "%s", device_id);
	snprintf(c->members[idx].address, sizeof(c->members[idx].address), "%s", address);
	c->member_sa[idx] = sa;
	c->present[idx] = true;
	return 0;
}

void consensus_member_clear(struct consensus *c, unsigned idx)
{
	if (idx < CONSENSUS_MAX_MEMBERS)
		c->present[idx] = false;
}

static void on_change(struct raft_change *req, int status)
{
	struct consensus *c = req->data;
	c->change_pending = false;
	if (status) {
		c->change_retry_ms = loop_now_ms(c->loop) + CONSENSUS_CHANGE_RETRY_MS;
		c->st.config_failed++;
		log_wrn("event=membership_change_failed err=%s", raft_strerror(status));
	}
}

static void on_transfer(struct raft_transfer *req)
{
	struct consensus *c = req->data;
	c->transfer_pending = false;
}

static int change_started(struct consensus *c, int rv, const char *what, const char *device_id)
{
	if (rv) {
		c->change_retry_ms = loop_now_ms(c->loop) + CONSENSUS_CHANGE_RETRY_MS;
		c->st.config_failed++;
		log_wrn("event=membership_change_refused what=%s member=%s err=\"%s\"", what, device_id,
			raft_errmsg(&c->raft));
		return raft_errno(rv);
	}
	c->st.config_changes++;
	log_inf("event=membership_change what=%s member=%s", what, device_id);
	return 1;
}

int consensus_reconcile(struct consensus *c)
{
	if (!consensus_leader_ready(c) || c->change_pending || c->transfer_pending ||
	    c->raft.configuration_uncommitted_index || loop_now_ms(c->loop) < c->change_retry_ms)
		return 0;
	const struct raft_configuration *conf = &c->raft.configuration;
	c->change.data = c;
	for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS; i++) {
		if (!c->present[i])
			continue;
		raft_id id = consensus_member_id(c->members[i].device_id);
		const struct raft_server *srv = NULL;
		for (unsigned j = 0; j < conf->n && !srv; j++)
			if (conf->servers[j].id == id)
				srv = &conf->servers[j];
		if (srv && srv->role == RAFT_VOTER)
			continue;
		int rv = srv ? raft_assign(&c->raft, &c->change, id, RAFT_VOTER, on_change)
			     : raft_add(&c->raft, &c->change, id, c->members[i].address, on_change);
		c->change_pending = rv == 0;
		return change_started(c, rv, srv ? "assign_voter" : "add", c->members[i].device_id);
	}
	for (unsigned j = 0; j < conf->n; j++) {
		raft_id id = conf->servers[j].id;
		bool keep = false;
		for (unsigned i = 0; i < CONSENSUS_MAX_MEMBERS && !keep; i++)
			keep = c->present[i] && consensus_member_id(c->members[i].device_id) == id;
		if (keep)
			continue;
		if (id == c->raft.id) { /* this leader goes: another voter leads, then removes it */
			c->transfer.data = c;
			int rv = raft_transfer(&c->raft, &c->transfer, 0, on_transfer);
			c->transfer_pending = rv == 0;
			return change_started(c, rv, "transfer_leadership", c->me.device_id);
		}
		int rv = raft_remove(&c->raft, &c->change, id, on_change);
		c->change_pending = rv == 0;
		return change_started(c, rv, "remove", conf->servers[j].address);
	}
	return 0;
}

void consensus_stats(const struct consensus *c, struct consensus_stats *out)
{
	*out = c->st;
	out->last_applied = raft_last_applied((struct raft *)&c->raft);
	out->last_index = raft_last_index((struct raft *)&c->raft);
	out->term = c->raft.current_term;
}

/* --- life cycle ----------------------------------------------------------------- */

static int bootstrap(struct consensus *c, bool founding)
{
	if (!founding) {
		log_inf("event=joining reason=\"not a founding member: waits to be added by the leader\"");
		return 0;
	}
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	int rv = 0;
	for (unsigned i = 0; i < c->n && !rv; i++)
		rv = raft_configuration_add(&conf, consensus_member_id(c->members[i].device_id), c->members[i].address,
					    RAFT_VOTER);
	if (!rv)
		rv = raft_bootstrap(&c->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP) {
		log_inf("event=log_found");
		return 0; /* a log exists: this member restarts with its state */
	}
	if (rv) {
		log_err("event=bootstrap_failed err=\"%s\"", raft_errmsg(&c->raft));
		return -EIO;
	}
	log_inf("event=bootstrapped members=%u", c->n);
	return 0;
}

/* libuv's loop, the log directory, the TCP transport and the disk I/O. 0 or -EIO (logged). */
static int open_io(struct consensus *c, const char *dir)
{
	int rv = uv_loop_init(&c->uv);
	if (rv) {
		log_err("event=uv_loop_failed err=%s", uv_strerror(rv));
		return -EIO;
	}
	c->uv_ready = true;
	uv_fs_t mk;
	rv = uv_fs_mkdir(NULL, &mk, dir, 0750, NULL);
	uv_fs_req_cleanup(&mk);
	if (rv < 0 && rv != UV_EEXIST) {
		log_err("event=log_dir_unusable dir=%s err=%s", dir, uv_strerror(rv));
		return -EIO;
	}
	if ((rv = raft_uv_tcp_init(&c->transport, &c->uv))) {
		log_err("event=transport_failed err=%s", raft_strerror(rv));
		return -EIO;
	}
	c->transport_ready = true;
	if ((rv = raft_uv_init(&c->io, &c->uv, dir, &c->transport))) {
		log_err("event=io_failed dir=%s err=\"%s\"", dir, c->io.errmsg);
		return -EIO;
	}
	c->io_ready = true;
	raft_uv_set_segment_size(&c->io, CONSENSUS_SEGMENT_BYTES);
	raft_uv_set_connect_retry_delay(&c->io, 200);
	return 0;
}

struct consensus *consensus_create(struct loop *l, const struct consensus_opts *opts, const struct consensus_ops *ops)
{
	if (!opts->n || opts->n > CONSENSUS_MAX_MEMBERS || !opts->me)
		return NULL;
	struct consensus *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->loop = l;
	c->ops = *ops;
	c->n = opts->n;
	c->me = *opts->me;
	c->backend_fd = -1;
	loop_timer_init(&c->timer, on_timer, c);
	for (unsigned i = 0; i < c->n; i++) {
		if (consensus_member_set(c, i, opts->members[i].device_id, opts->members[i].address)) {
			log_err("event=bad_address member=%s address=%s", opts->members[i].device_id,
				opts->members[i].address);
			goto errout;
		}
	}
	if (split_address(c->me.address, &c->me_sa)) {
		log_err("event=bad_address member=%s address=%s", c->me.device_id, c->me.address);
		goto errout;
	}
	int rv;
	if (open_io(c, opts->dir))
		goto errout;
	c->fsm = (struct raft_fsm){ .version = 1, .data = c, .apply = fsm_apply, .snapshot = fsm_snapshot,
				    .restore = fsm_restore };
	const struct siteconf_member *me = &c->me;
	if ((rv = raft_init(&c->raft, &c->io, &c->fsm, consensus_member_id(me->device_id), me->address))) {
		log_err("event=raft_init_failed err=\"%s\"", raft_errmsg(&c->raft));
		goto errout;
	}
	c->raft_ready = true;
	unsigned et = opts->election_timeout_ms ? opts->election_timeout_ms : 1000u;
	raft_set_election_timeout(&c->raft, et);
	raft_set_heartbeat_timeout(&c->raft, et / 10 ? et / 10 : 1);
	raft_set_snapshot_threshold(&c->raft, CONSENSUS_SNAPSHOT_EVERY);
	raft_set_snapshot_trailing(&c->raft, CONSENSUS_SNAPSHOT_TRAILING);
	raft_set_pre_vote(&c->raft, true);
	if (bootstrap(c, opts->bootstrap))
		goto errout;
	if ((rv = raft_start(&c->raft))) {
		log_err("event=raft_start_failed address=%s err=\"%s\" io=\"%s\" hint=\"this member's address must be one of this host's, its port free\"",
			me->address, raft_strerror(rv),
			c->io.errmsg);
		goto errout;
	}
	if ((rv = uv_udp_init(&c->uv, &c->udp))) {
		log_err("event=udp_failed err=%s", uv_strerror(rv));
		goto errout;
	}
	c->udp.data = c;
	c->udp_ready = true;
	if ((rv = uv_udp_bind(&c->udp, (const struct sockaddr *)&c->me_sa, UV_UDP_REUSEADDR)) ||
	    (rv = uv_udp_recv_start(&c->udp, udp_alloc, udp_recv))) {
		log_err("event=udp_bind_failed address=%s err=%s", me->address, uv_strerror(rv));
		goto errout;
	}
	c->backend_fd = uv_backend_fd(&c->uv);
	if (loop_fd_add(l, c->backend_fd, LOOP_IN, on_backend, c) < 0) {
		c->backend_fd = -1;
		goto errout;
	}
	drive(c);
	log_inf("event=started id=%s address=%s members=%u dir=%s", me->device_id, me->address, c->n, opts->dir);
	return c;

errout:
	consensus_destroy(c);
	return NULL;
}

static void on_raft_closed(struct raft *r)
{
	struct consensus *c = r->data;
	c->raft_closed = true;
}

static void close_handle(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void consensus_destroy(struct consensus *c)
{
	if (!c)
		return;
	if (c->backend_fd >= 0)
		loop_fd_del(c->loop, c->backend_fd);
	loop_timer_stop(c->loop, &c->timer);
	if (c->udp_ready)
		uv_close((uv_handle_t *)&c->udp, NULL);
	if (c->raft_ready) {
		c->raft.data = c;
		raft_close(&c->raft, on_raft_closed);
		for (int i = 0; i < CONSENSUS_CLOSE_TURNS && !c->raft_closed; i++)
			uv_run(&c->uv, UV_RUN_ONCE);
	}
	if (c->io_ready)
		raft_uv_close(&c->io);
	if (c->transport_ready)
		raft_uv_tcp_close(&c->transport);
	if (c->uv_ready) {
		for (int i = 0; i < CONSENSUS_CLOSE_TURNS && uv_loop_alive(&c->uv); i++) {
			uv_walk(&c->uv, close_handle, NULL);
			uv_run(&c->uv, UV_RUN_NOWAIT);
		}
		if (uv_loop_close(&c->uv))
			log_wrn("event=uv_handles_left");
	}
	free(c);
}
