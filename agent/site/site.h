/* agent/site/site.h - a gateway's membership in a site cluster: heartbeats, lease, leader duties, the local share of site deployments. */
#ifndef BERTH_SITE_SITE_H
#define BERTH_SITE_SITE_H

/*
 * Contract
 * --------
 * Every site.heartbeat (lease/8, 50..250 ms) a member sends each other member
 * a heartbeat datagram (its headroom, its applied log index, its version of
 * the site deployments) and re-evaluates:
 *   lease: it has heard a majority of the site (itself included) within
 *     lease_ms AND its log is current (it is the leader with a committed
 *     barrier of its term, or it has applied at least the index the leader
 *     advertised in a heartbeat heard within lease_ms). Without the lease it
 *     runs none of the site-scoped replicas (node-scoped ones are untouched).
 *   leader duties (leader only): a member heard within failover_ms whose
 *     state is down, or whose headroom changed, is proposed up (M); a member
 *     not heard for failover_ms is proposed down (X) and placement moves its
 *     replicas; a newer site deployments document (its own desired state, or
 *     forwarded by a member) is proposed (D); a member whose local recovery
 *     of a site deployment keeps failing (migration_needed) is excluded for
 *     it (F).
 * site_filter() turns the whole desired state into what this gateway runs:
 * the node-scoped deployments, plus, while the lease holds, each site-scoped
 * deployment with as many replicas as the log assigns here. When that share
 * changes (log applied, lease lost or regained), the reapply callback asks
 * the owner to call site_filter() and the supervisor again.
 *
 * Bounds: datagrams at most CONSENSUS_DGRAM_MAX bytes, one heartbeat per
 * member per tick, one proposal per member per PROPOSE_GAP; everything
 * refused is counted in the report.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"

struct loop;
struct events;
struct supervisor;
struct berth_config;
struct site;

struct site_deps {
	struct loop *loop;
	struct events *events;        /* may be NULL */
	struct supervisor *sup;       /* migration_needed of site deployments; may be NULL */
	void (*reapply)(void *arg);   /* the local share changed */
	void *arg;
};

/* Opens the site's log in <data_dir>/site and joins. NULL when the config is
 * bad (it was checked by config_parse) or the log cannot be opened (logged). */
struct site *site_create(const struct site_deps *deps, const struct berth_config *cfg);
void site_destroy(struct site *s);

/* Remembers desired (copied) and writes into out what this gateway runs now.
 * Returns 0, or -EEXIST when a site deployment's name is also a node
 * deployment's here (the node one is kept, the site one left out; logged). */
int site_filter(struct site *s, const struct deploy_set *desired, struct deploy_set *out);

/* The site view as a JSON object (leader, role, lease, members, deployments
 * with their assignments). Returns the length or -ENOSPC. */
int site_report_json(const struct site *s, char *buf, size_t len);

/* The replicas of site deployments that run only on other members, for the
 * local API to forward requests to: fn(arg, spec, index, host, port) once
 * per replica on a member that is up, index counting from 0 per deployment,
 * host:port that member's address and the replica's inference port. Nothing
 * without the lease. Returns how many. */
typedef void (*site_remote_fn)(void *arg, const struct deploy_spec *spec, unsigned index, const char *host,
			       uint16_t port);
unsigned site_remote_replicas(const struct site *s, site_remote_fn fn, void *arg);

/* A console command: a member joins (address given) or leaves (address NULL).
 * Checked against this member's view of the log first: 0, or -errno with why
 * filled and nothing changed (-EEXIST id or address taken, -ENOENT unknown
 * member, -ENOSPC site full, -EBUSY fewer than 2 members or no up majority
 * would be left, -EINVAL malformed, -EAGAIN no leader known, not a member
 * yet, or another request still in flight). Then proposed when this member
 * leads, else carried to the leader (a datagram at most once a second) for
 * at most 10 s, until the log has it; the leader checks it again against the
 * log, and every member applies the same result (docs/site.md). */
int site_member_request(struct site *s, const char *id, const char *address, char *why, size_t why_len);

/* Whether this member now holds the lease (runs its site replicas). */
bool site_lease_held(const struct site *s);

#endif
