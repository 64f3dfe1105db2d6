/* agent/site/consensus.h - the site's replicated log (Raft) and its datagram side channel, behind one interface. */
#ifndef BERTH_SITE_CONSENSUS_H
#define BERTH_SITE_CONSENSUS_H

/*
 * Contract
 * --------
 * The only module that knows the consensus library (libraft 0.15 with its
 * libuv I/O) and libuv. It runs libuv inside berth's loop: the libuv backend
 * fd is watched by the loop and a loop timer follows uv_backend_timeout(), and
 * both call uv_run(UV_RUN_NOWAIT), so nothing here blocks and there is no
 * thread. Everything is called from the loop.
 *
 * Members are identified by small indexes 0..n-1 into the member list given
 * at create time (the same list, in any order, on every member; the Raft id
 * of a member is a hash of its device id, so the order does not matter).
 *
 * Log: consensus_propose() appends a command (text without NUL bytes: the
 * library pads entries with zeros; the leader only); once
 * committed, every member's apply callback receives it, in the same order on
 * every member. snapshot/restore let the library compact the log (every
 * CONSENSUS_SNAPSHOT_EVERY entries); the log and snapshots live in
 * <dir>, in segments of CONSENSUS_SEGMENT_BYTES.
 *
 * Datagrams: consensus_send() sends one UDP datagram (at most
 * CONSENSUS_DGRAM_MAX bytes) to a member's address (same host and port as
 * its Raft TCP address); received ones go to on_datagram with the sender's
 * address. Unreliable by design (heartbeats, headroom reports, forwarded
 * deployments); a full socket buffer drops the datagram and counts it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/siteconf.h"

struct loop;
struct consensus;

#define CONSENSUS_MAX_MEMBERS SITECONF_MAX_MEMBERS
#define CONSENSUS_DGRAM_MAX 60000
#define CONSENSUS_SNAPSHOT_EVERY 256u
#define CONSENSUS_SNAPSHOT_TRAILING 64u
#define CONSENSUS_SEGMENT_BYTES (256u * 1024u)

struct consensus_ops {
	/* A committed command (len bytes; valid during the call only). Must be
	 * deterministic: the same commands in the same order give the same state
	 * on every member. */
	void (*apply)(void *arg, const char *cmd, size_t len);
	/* Encodes the whole state into a malloc()ed buffer (*out, *len); 0 or -errno. */
	int (*snapshot)(void *arg, char **out, size_t *len);
	/* Replaces the whole state with a snapshot; 0 or -errno (state unchanged). */
	int (*restore)(void *arg, const char *buf, size_t len);
	/* A datagram from from_addr ("A.B.C.D:PORT"); buf valid during the call. */
	void (*on_datagram)(void *arg, const char *from_addr, const char *buf, size_t len);
	void *arg;
};

struct consensus_opts {
	const struct siteconf_member *members; /* n entries: the founding members (slots 0..n-1) */
	unsigned n;
	const struct siteconf_member *me;       /* this gateway (a founding member or one that joins) */
	bool bootstrap;                         /* a founding member: an empty log starts with members */
	const char *dir;                        /* log and snapshots (created when missing) */
	unsigned election_timeout_ms;           /* Raft election timeout (heartbeat: a tenth) */
};

enum consensus_role { CONSENSUS_UNAVAILABLE = 0, CONSENSUS_FOLLOWER, CONSENSUS_CANDIDATE, CONSENSUS_LEADER };

struct consensus_stats {
	uint64_t proposed;
	uint64_t propose_failed;       /* not committed (lost leadership, I/O error) */
	uint64_t applied;              /* commands applied on this member */
	uint64_t dgram_sent;
	uint64_t dgram_dropped;        /* send failed (socket buffer full, no route) */
	uint64_t dgram_received;
	uint64_t last_applied;         /* Raft index of the last applied entry */
	uint64_t last_index;
	uint64_t term;
	uint64_t config_changes;       /* membership changes started (add, assign, remove, transfer) */
	uint64_t config_failed;
};

/* Opens (or creates and bootstraps with the member list) the log in
 * opts->dir, binds the Raft TCP listener and the datagram socket to this
 * member's address and starts. Returns NULL on error (logged with the
 * library's message). ops is copied. */
struct consensus *consensus_create(struct loop *l, const struct consensus_opts *opts, const struct consensus_ops *ops);
/* Stops Raft (the log stays on disk), closes sockets, frees. NULL is safe.
 * Runs libuv until its handles are closed (bounded: a few loop turns). */
void consensus_destroy(struct consensus *c);

/* Appends cmd (copied) to the log. Returns 0 when proposed (the apply
 * callback follows once committed), -EPERM when this member is not the
 * leader, -E2BIG beyond CONSENSUS_DGRAM_MAX bytes, -ENOMEM, -EIO. */
int consensus_propose(struct consensus *c, const char *cmd, size_t len) __attribute__((warn_unused_result));

/* The member table follows the site's log: slot idx is now device_id at
 * address (set) or free (clear). Datagrams go to the table's addresses;
 * consensus_reconcile() moves the Raft configuration towards it. */
int consensus_member_set(struct consensus *c, unsigned idx, const char *device_id, const char *address);
void consensus_member_clear(struct consensus *c, unsigned idx);
/* Leader only, one change at a time: a member of the table missing from the
 * Raft configuration is added (raft_add) and then made a voter (raft_assign,
 * which catches it up first); a server of the configuration that is not in
 * the table is removed (raft_remove); the leader itself, when it is to go,
 * hands leadership to another voter first (raft_transfer). A change that
 * fails (e.g. a new member that never answers cannot be caught up) is tried
 * again after a second at the earliest. Returns 1 when a change was started,
 * 0 when none is needed, one is in flight or a retry is not due, -errno. */
int consensus_reconcile(struct consensus *c);

/* Sends a datagram to member idx. Returns 0, -EINVAL (bad index or free slot),
 * -E2BIG, or -EAGAIN/-errno when the socket refused it (counted as dropped). */
int consensus_send(struct consensus *c, unsigned idx, const char *buf, size_t len);

/* Sends a datagram to an address that is not a member's ("A.B.C.D:PORT", as
 * on_datagram gave it). Same returns as consensus_send. */
int consensus_send_to(struct consensus *c, const char *address, const char *buf, size_t len);

enum consensus_role consensus_role(const struct consensus *c);
/* Leader, and every entry of earlier terms is applied here (a barrier of
 * this term has committed): its view of the state is the site's. */
bool consensus_leader_ready(const struct consensus *c);
/* Index of the member this one believes is leader, or -1. */
int consensus_leader(const struct consensus *c);
void consensus_stats(const struct consensus *c, struct consensus_stats *out);
const char *consensus_role_name(enum consensus_role r);

/* The Raft id of a device id (FNV-1a 64, never 0). */
uint64_t consensus_member_id(const char *device_id);

#endif
