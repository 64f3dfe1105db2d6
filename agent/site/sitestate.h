/* agent/site/sitestate.h - the site's replicated state machine: members, headroom, site-scoped deployments, assignments. */
#ifndef BERTH_SITE_SITESTATE_H
#define BERTH_SITE_SITESTATE_H

/*
 * Contract
 * --------
 * Pure and deterministic: sitestate_apply() of the same commands in the same
 * order gives the same state on every member (no clock, no I/O, no global).
 * Assignments are not commands: after every command that changes a fact,
 * placement_run() recomputes them from the facts and the previous
 * assignments, so an assignment exists only once the log says so, and one
 * replica has at most one member at any index of the log (the consensus
 * "lock": two members never both own it).
 *
 * Commands (text, one per log entry; docs/site.md):
 *   D <version>\n<deployments document>   the site-scoped deployments (JSON,
 *        the deployments file's format); applied only when version is newer
 *   M <device> <cpu_milli> <mem_bytes>     member up, with its headroom
 *   X <device>                             member down (silent too long)
 *   F <device> <deployment>                local recovery of the deployment
 *        failed on that member: its replicas move elsewhere (cleared when the
 *        deployment's spec changes)
 *   J <device> <address>                   a member joins: it takes the first
 *        free slot (down until the leader hears it); refused for an id or an
 *        address already in the site, or with SITESTATE_MAX_MEMBERS members
 *   L <device>                             a member leaves: its replicas move;
 *        refused for an unknown id, when fewer than SITESTATE_MIN_MEMBERS
 *        would be left, or when the members left that are up are not a
 *        majority of the members left (the site could not commit anything)
 * Members live in slots 0..n-1 (a member that left leaves its slot free, the
 * next join takes the first free one), so indexes stay stable.
 * A command naming an unknown member or deployment, or malformed, is refused
 * (-EINVAL, -ENOENT) and changes nothing; a stale D is -ESTALE.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"
#include "agent/site/placement.h"

#define SITESTATE_MAX_MEMBERS PLACEMENT_MAX_MEMBERS
#define SITESTATE_MIN_MEMBERS 2
#define SITESTATE_DOC_MAX 60000

struct sitestate_member {
	char device_id[64];
	char address[64];                     /* "A.B.C.D:PORT" ("" when not known) */
	bool present;                         /* a member now (false: the slot is free) */
	bool up;
	uint64_t cpu_milli;
	uint64_t mem_bytes;
};

struct sitestate {
	unsigned n;                           /* slots in use (members present or gone) */
	uint64_t site_hash;                   /* of the founding ids: a snapshot of another site is refused */
	struct sitestate_member m[SITESTATE_MAX_MEMBERS];
	uint64_t version;                     /* of the site deployments document; 0 none */
	char *doc;                            /* the document (NUL-terminated), NULL none */
	size_t doc_len;
	struct deploy_set deps;               /* parsed doc */
	struct placement_dep place[DEPLOY_MAX];
	uint64_t applied;                     /* commands applied (refused ones included) */
	uint64_t refused;
	uint64_t moves;                       /* owner changes so far */
	uint64_t generation;                  /* changes whenever an assignment does */
};

/* Allocates the state for the given members (device ids, n at most
 * SITESTATE_MAX_MEMBERS, already in the site's order). NULL on error. */
struct sitestate *sitestate_create(const char *const *device_ids, unsigned n);
void sitestate_destroy(struct sitestate *s);

/* Applies one command (len bytes). Returns 0, or -EINVAL/-ENOENT/-ESTALE
 * (refused, state unchanged, why filled when not NULL). */
int sitestate_apply(struct sitestate *s, const char *cmd, size_t len, char *why, size_t why_len);

/* Sets the address of member idx (the founding list's, at create). */
void sitestate_set_address(struct sitestate *s, unsigned idx, const char *address);

/* Index of a present member, or -1. */
int sitestate_member(const struct sitestate *s, const char *device_id);
/* Members present; of those, how many are up. */
unsigned sitestate_members(const struct sitestate *s, unsigned *up);

/* Whether J (join, address given) or L (leave, address NULL) would be
 * applied to the state as it is: 0, or -EEXIST (id or address taken),
 * -ENOENT (unknown member), -ENOSPC (site full), -EBUSY (no majority would be
 * left), -EINVAL (malformed), with why filled. Pure; apply checks the same. */
int sitestate_check_change(const struct sitestate *s, const char *device_id, const char *address, char *why,
			   size_t why_len);

/* Replicas of deployment k assigned to member idx. */
unsigned sitestate_assigned(const struct sitestate *s, unsigned k, unsigned idx);

/* The whole state as text (malloc()ed, caller frees). 0 or -ENOMEM. */
int sitestate_encode(const struct sitestate *s, char **out, size_t *len);
/* Replaces the state with an encoded one. 0, or -EINVAL (state unchanged). */
int sitestate_decode(struct sitestate *s, const char *buf, size_t len);

/* Command builders (into buf; return the length or -ENOSPC). */
int sitestate_cmd_member(char *buf, size_t len, const char *device_id, uint64_t cpu_milli, uint64_t mem_bytes);
int sitestate_cmd_down(char *buf, size_t len, const char *device_id);
int sitestate_cmd_failed(char *buf, size_t len, const char *device_id, const char *deployment);
int sitestate_cmd_join(char *buf, size_t len, const char *device_id, const char *address);
int sitestate_cmd_leave(char *buf, size_t len, const char *device_id);
/* "D <version>\n" + doc. */
int sitestate_cmd_deployments(char *buf, size_t len, uint64_t version, const char *doc, size_t doc_len);

#endif
