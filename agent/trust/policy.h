/* agent/trust/policy.h - the local admission policy: a versioned JSON document, its parser, and a pure evaluator with decision records. */
#ifndef BERTH_POLICY_H
#define BERTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"
#include "agent/trust/envelope.h"
#include "agent/trust/trust_err.h"

/* The rules a policy may hold (each at most once, each optional). */
enum policy_rule {
	POLICY_REGISTRIES = 0, /* images only from the listed registries */
	POLICY_DIGEST,         /* images pinned by digest (name@sha256:...) */
	POLICY_RESOURCES,      /* cpu / memory of a replica capped, per deployment and per SLA class */
	POLICY_REPLICAS,       /* replicas capped (deploy: replicas.max; scale: the target) */
	POLICY_FORBIDDEN,      /* settings that widen a container's access to the host; env names */
	POLICY_ROLES,          /* which verbs each console key may use */
	POLICY_NRULES
};

/* What a violation does (per rule). */
enum policy_mode {
	POLICY_MODE_DENY = 0,  /* refused at admission; a running violator is reported, awaiting approval */
	POLICY_MODE_REPAIR,    /* refused at admission; a running violator is repaired (rolled back or stopped) */
	POLICY_MODE_AUDIT,     /* allowed; the violation is recorded and reported */
};

/* Host-widening settings a deployment can have (bits). Today's spec can
 * express only host networking (every replica runs with it); the others are
 * named so a policy written for a richer spec parses and means the same. */
enum {
	POLICY_SET_HOST_NETWORK = 1u << 0,
	POLICY_SET_PRIVILEGED = 1u << 1,
	POLICY_SET_HOST_MOUNTS = 1u << 2,
	POLICY_SET_DEVICES = 1u << 3,
	POLICY_SET_HOST_PID = 1u << 4,
};

#define POLICY_LIST_MAX 16         /* registries, env names, keys in roles */
#define POLICY_NAME_MAX 64
#define POLICY_VERBS_MAX 16

struct policy {
	uint64_t version;              /* 0: no policy installed (everything allowed) */
	bool has[POLICY_NRULES];
	enum policy_mode mode[POLICY_NRULES];
	unsigned n_registries;
	char registries[POLICY_LIST_MAX][POLICY_NAME_MAX];   /* "host[:port]" or "*.domain" */
	uint64_t dep_cpu_nano, dep_mem_bytes;                  /* 0: no cap */
	uint64_t class_cpu_nano[SLA_NCLASSES], class_mem_bytes[SLA_NCLASSES];
	uint32_t replicas_max;
	unsigned forbidden_settings;                           /* POLICY_SET_* */
	unsigned n_env;
	char env[POLICY_LIST_MAX][POLICY_NAME_MAX];
	unsigned n_roles;
	struct {
		char key[ENVELOPE_KEY_ID_MAX + 1];
		uint32_t verbs;                                /* bit i: verbs[i] of the parse call; all bits: "*" */
	} roles[POLICY_LIST_MAX];
	bool has_default_role;
	uint32_t default_verbs;
	const char *const *verb_names;                         /* as given to policy_parse (static) */
	size_t n_verbs;
};

/* Parses a policy document {"schema":1,"version":N,"rules":{...}} (an
 * "auth" member is allowed and ignored here; docs/security.md has the
 * semantics). verb_names (n_verbs <= POLICY_VERBS_MAX, static storage) are
 * the verbs roles may name. Refuses unknown rules and fields, wrong types,
 * out-of-range values and rules that can never match, with e->path naming
 * the offending field ("rules.resources.per_class.urgent.cpu"); p is
 * unchanged on error. Pure; a fuzz target. */
int policy_parse(const char *text, size_t len, const char *const *verb_names, size_t n_verbs, struct policy *p,
		 struct trust_err *e) __attribute__((warn_unused_result));

/* A deployment as the evaluator sees it. */
struct policy_deployment {
	const char *name;
	const char *image;
	enum sla_class sla_class;
	uint64_t cpu_nano;             /* per replica; 0 = unlimited */
	uint64_t mem_bytes;            /* per replica; 0 = unlimited */
	uint32_t replicas_max;
	unsigned settings;             /* POLICY_SET_* */
	const char (*env)[160];        /* "KEY=value" entries, n_env of them */
	unsigned n_env;
};

/* One evaluation's input: a command (verb + key), a deployment it brings,
 * or a running deployment checked against a new policy (verb NULL). */
struct policy_input {
	const char *key_id;            /* NULL: not a command */
	const char *verb;              /* NULL: drift check of dep */
	const char *deployment;        /* the deployment a command names ("" or NULL: none) */
	int64_t replicas;              /* scale target, -1 when none */
	const struct policy_deployment *dep;  /* NULL: none */
};

struct policy_match {
	enum policy_rule rule;
	enum policy_mode mode;
	bool violated;
	char reason[160];
};

struct policy_decision {
	bool allow;                    /* no violated rule in deny or repair mode */
	bool repair;                   /* a violated rule is in repair mode */
	unsigned n;                    /* rules that applied to the input */
	struct policy_match m[POLICY_NRULES];
	char reason[192];              /* the first denying violation, "" when allowed */
};

/* Evaluates in against p (NULL or version 0: allowed, no rule applied). Pure. */
void policy_evaluate(const struct policy *p, const struct policy_input *in, struct policy_decision *out);

/* A decision log entry as a JSON object: {"decision_id":..,"policy_version":N,
 * "input":{...},"result":"allow"|"deny","reason":..,"rules":[{"rule":..,
 * "mode":..,"violated":bool,"reason":..}]}. policy_version 0 (none
 * installed): result allow, reason "no policy installed", rules
 * [{"rule":"no_policy","violated":false}]. Returns the length or -ENOSPC. */
int policy_decision_json(char *buf, size_t len, const char *decision_id, uint64_t policy_version,
			 const struct policy_input *in, const struct policy_decision *d);

const char *policy_rule_name(enum policy_rule r);
const char *policy_mode_name(enum policy_mode m);

/* The registry of an image reference ("docker.io" when it names none) into
 * buf; and whether the image is pinned by a sha256 digest. */
void policy_image_registry(const char *image, char *buf, size_t len);
bool policy_image_pinned(const char *image);

#endif
