/* agent/trust/trust.h - the gateway's trust state: keys, replay window, trusted time and policy, persisted in the store; verdicts for the console. */
#ifndef BERTH_TRUST_H
#define BERTH_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/trust/envelope.h"
#include "agent/trust/policy.h"
#include "agent/trust/trust_err.h"

struct store;
struct trust;

struct trust_opts {
	const char *device_id;
	const char *groups;              /* the config's groups, comma-separated ("" none; copied) */
	bool require_signatures;         /* false: unsigned commands are applied (labs only) */
	const char *keys_json;           /* the operator's key list (trust.keys_file), NULL: none */
	const char *policy_json;         /* the operator's policy (trust.policy_file), NULL: none */
	const char *const *verbs;        /* verbs roles may name (static), n_verbs of them */
	size_t n_verbs;
	/* Called for every refusal and decision: type ("command_refused",
	 * "policy_decision", ...) and a JSON object. May be NULL. */
	void (*event)(void *arg, const char *type, const char *detail_json);
	void *event_arg;
};

/* What verification learnt of one signed message. */
struct trust_verdict {
	bool signed_;                    /* false: accepted unsigned (require_signatures off) */
	struct envelope env;
	int64_t now_ms;                  /* trusted time at verification */
};

/* Loads the persisted state (key list, policy, replay window, time floor)
 * from st; the operator's files count when the store holds no newer version.
 * st is borrowed. Returns NULL (e filled) on a malformed key list or policy
 * file, or without memory. */
struct trust *trust_create(struct store *st, const struct trust_opts *o, struct trust_err *e);
void trust_destroy(struct trust *t);
/* The store opened after berthd ran without it: stored keys and policy newer than the
 * ones in force are taken, and the persisted replay window is merged with the one
 * kept in memory meanwhile (a command refused then stays refused), then saved. */
void trust_store_back(struct trust *t);

/* Verifies a command (doc_kind NULL) or a signed document ("desired",
 * "policy", "keys"): envelope, target, key and its window at trusted time,
 * expiry, and for commands the replay window. Returns 0; -EALREADY when the
 * command's id was already admitted (code replayed: the caller may answer
 * from its journal); -EPERM / -EINVAL with e filled (codes unsigned,
 * bad_envelope, bad_signature, unknown_key, key_expired, key_not_yet_valid,
 * wrong_target, expired, replayed). Changes nothing. */
int trust_verify(struct trust *t, const char *msg, size_t len, const char *doc_kind, struct trust_verdict *v,
		 struct trust_err *e) __attribute__((warn_unused_result));

/* Evaluates the policy for a verified command: verb, the deployment it
 * names, a scale target (replicas, -1 none) and, for deploy / desired state,
 * every deployment of desired_json. Writes a decision log entry per
 * evaluation (store + event). 0 allowed, -EACCES denied (code policy_denied,
 * the rule named in the message). */
int trust_authorize(struct trust *t, const struct trust_verdict *v, const char *verb, const char *deployment,
		    int64_t replicas, const char *desired_json, struct trust_err *e) __attribute__((warn_unused_result));

/* Admits a verified command before it is applied: its id enters the replay
 * window and the trusted-time floor rises to its issue time; both are
 * persisted. 0 or -errno (the command must not be applied then). */
int trust_admit(struct trust *t, const struct trust_verdict *v, struct trust_err *e) __attribute__((warn_unused_result));

/* Installs a signed policy document (newer version, key allowed the verb
 * "policy" by the policy in force) and persists it. -ESTALE for an equal or
 * older version; the previous policy stays on any error. */
int trust_set_policy(struct trust *t, const char *msg, size_t len, struct trust_err *e) __attribute__((warn_unused_result));

/* Replaces the key list by a signed one (see keyring_rotate) and persists it. */
int trust_rotate_keys(struct trust *t, const char *msg, size_t len, struct trust_err *e) __attribute__((warn_unused_result));

/* How a repair-mode violation was repaired (the repair callback's answer). */
enum trust_repair { TRUST_ROLLED_BACK = 1, TRUST_STOPPED = 2 };

/* Checks every deployment of desired_json against the policy in force and
 * records the violations (for the reported state); calls repair(arg, name,
 * rule) for each one whose violated rule is in repair mode, which returns
 * TRUST_ROLLED_BACK (it now runs a compliant last-known-good version) or
 * TRUST_STOPPED when it repaired the deployment, -errno when it could not.
 * Each repair is sent as a policy_repaired event naming the action. Returns
 * the number of current (unrepaired) violations. */
int trust_drift(struct trust *t, const char *desired_json, int (*repair)(void *arg, const char *name, const char *rule),
		void *arg);

/* Whether every deployment of desired_json complies with the policy in
 * force: no violated rule in deny or repair mode (audit-mode violations are
 * only reported). Each evaluation is logged (input verb "repair_check").
 * False for a document that does not parse or without memory. */
bool trust_complies(struct trust *t, const char *desired_json);

/* The "trust" member of the reported state ("trust":{...}, no comma).
 * Returns the length or -ENOSPC. */
int trust_report(const struct trust *t, char *buf, size_t len);

struct groups;
/* The groups in force: from_desired (a signed desired state's "groups"),
 * or with NULL the config's list again. Returns whether the list changed. */
bool trust_set_groups(struct trust *t, const struct groups *from_desired);
/* The groups in force (borrowed, valid until the next trust_set_groups). */
const struct groups *trust_groups(const struct trust *t);

uint64_t trust_policy_version(const struct trust *t);
const struct policy *trust_policy(const struct trust *t);

struct trust_stats {
	uint64_t verified, refused, denied, admitted, decisions;
};
void trust_get_stats(const struct trust *t, struct trust_stats *out);

#endif
