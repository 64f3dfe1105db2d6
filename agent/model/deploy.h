/* agent/model/deploy.h - the deployment spec: what the gateway should run, parsed and validated from JSON. */
#ifndef BERTH_DEPLOY_H
#define BERTH_DEPLOY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/sla.h"

#define DEPLOY_MAX 16            /* deployments per gateway */
#define DEPLOY_MAX_ARGS 16       /* cmd words */
#define DEPLOY_MAX_ENV 16
#define DEPLOY_NAME_MAX 48       /* also the model name served */
#define DEPLOY_MAX_REPLICAS 16

enum probe_kind { PROBE_NONE = 0, PROBE_HTTP, PROBE_TCP, PROBE_EXEC };

struct probe_spec {
	enum probe_kind kind;
	char path[128];                  /* http: GET path */
	char exec[DEPLOY_MAX_ARGS][128]; /* exec: argv, "" terminated */
	uint32_t initial_delay_ms;
	uint32_t period_ms;
	uint32_t timeout_ms;
	uint32_t success_threshold;
	uint32_t failure_threshold;
};

enum restart_policy { RESTART_ALWAYS = 0, RESTART_ON_FAILURE, RESTART_NEVER };

/* When the image is pulled (Kubernetes' imagePullPolicy): if absent (the
 * default), before every rollout of the spec, or never (loaded by hand). */
enum pull_policy { PULL_IF_NOT_PRESENT = 0, PULL_ALWAYS, PULL_NEVER };

/* Restart back-off of a replica when the spec does not set it (the one home
 * of these defaults: the parser and the supervisor both use them). */
#define DEPLOY_DEFAULT_BACKOFF_INITIAL_MS 1000u
#define DEPLOY_DEFAULT_BACKOFF_MAX_MS 300000u
#define DEPLOY_DEFAULT_BACKOFF_RESET_MS 600000u   /* healthy this long resets the back-off */

/* Where a deployment runs: on this gateway (node), or placed by the site's
 * leader on the members of a site cluster (site; docs/site.md). */
enum deploy_scope { DEPLOY_SCOPE_NODE = 0, DEPLOY_SCOPE_SITE };

struct deploy_spec {
	char name[DEPLOY_NAME_MAX];      /* deployment and model name, [a-z0-9-] */
	char image[256];                 /* [registry/]name[:tag][@sha256:digest], checked by imageref_parse */
	enum pull_policy pull_policy;    /* "image_pull_policy" */
	char cmd[DEPLOY_MAX_ARGS][128];  /* "" terminated; empty: image default */
	char env[DEPLOY_MAX_ENV][160];   /* "KEY=value", "" terminated */
	uint32_t replicas_min;
	uint32_t replicas_max;
	uint32_t replicas;               /* desired now, min..max (autoscaler moves it) */
	uint64_t cpu_nano;               /* resources.cpu in billionths of a core; 0 unlimited */
	uint64_t mem_bytes;              /* resources.memory; 0 unlimited */
	enum sla_class sla_class;
	uint32_t deadline_ms;            /* default deadline of a request */
	uint16_t port_base;              /* replica i listens on port_base + i */
	uint32_t concurrency;            /* requests one replica serves at once */
	struct probe_spec liveness;
	struct probe_spec readiness;
	enum restart_policy restart;
	uint32_t backoff_initial_ms;     /* default DEPLOY_DEFAULT_BACKOFF_INITIAL_MS */
	uint32_t backoff_max_ms;         /* default DEPLOY_DEFAULT_BACKOFF_MAX_MS */
	uint32_t backoff_reset_ms;       /* healthy this long resets back-off; default DEPLOY_DEFAULT_BACKOFF_RESET_MS */
	uint32_t startup_ms;             /* expected start-up time (autoscaler's horizon); 0 = measure */
	enum deploy_scope scope;         /* placement.scope; default node */
	uint32_t site_replicas;          /* placement.replicas: replicas across the site (scope site) */
	bool spread;                     /* placement.spread: at most one replica per member */
	uint64_t spec_hash;              /* FNV-1a of the canonical spec, set by the parser */
};

struct deploy_set {
	uint64_t version;                /* desired-state version; newer replaces older */
	unsigned n;
	struct deploy_spec d[DEPLOY_MAX]; /* d[n..] unspecified (never read) */
};

struct deploy_error {
	char deployment[DEPLOY_NAME_MAX]; /* "" when not about one deployment */
	char field[64];                   /* e.g. "replicas.max" */
	char message[192];
};

/* Parses and validates a deployments document {"version":N,"deployments":[...]}
 * (len bytes of text, need not be NUL-terminated) into set, filling defaults
 * for absent fields (docs/deployments.md lists them) and each spec_hash.
 * Returns 0, or -EINVAL with err naming the deployment and field. Pure: no
 * I/O, no global state; set is unspecified on error. berthd (deployments
 * file, MQTT) and berthctl use this same function. */
int deploy_parse(const char *text, size_t len, struct deploy_set *set, struct deploy_error *err)
	__attribute__((warn_unused_result));

/* Reads path (at most CONFIG_CONFIG_MAX_BYTES) and parses it. Returns 0,
 * -errno when it cannot be read (-EFBIG too large), -EINVAL on bad content;
 * err is filled on every error. */
int deploy_load(const char *path, struct deploy_set *set, struct deploy_error *err)
	__attribute__((warn_unused_result));

/* "deployment 'NAME': FIELD: MESSAGE" (parts left out when empty). */
void deploy_error_format(const struct deploy_error *err, char *buf, size_t len);

/* FNV-1a (64 bit) over the fields that shape a replica's container: name,
 * image, cmd, env, resources, inference port and concurrency. Replica
 * counts, probes, SLA and restart settings are left out: changing them
 * applies in place, without replacing containers. */
uint64_t deploy_spec_hash(const struct deploy_spec *d);

/* Copies src's version and its n specs into dst (d[n..] left alone: a set
 * is large and mostly unused). */
void deploy_set_copy(struct deploy_set *dst, const struct deploy_set *src);

/* The deployment called name in set, or NULL. */
const struct deploy_spec *deploy_find(const struct deploy_set *set, const char *name);

/* Writes d as a JSON object in the document's own format (for events such
 * as migration_needed). Returns the length written, or -ENOSPC when buf is
 * too small (buf then holds a truncated, NUL-terminated prefix). */
int deploy_spec_to_json(const struct deploy_spec *d, char *buf, size_t len);

const char *deploy_restart_name(enum restart_policy p);
const char *deploy_pull_policy_name(enum pull_policy p);
const char *deploy_probe_kind_name(enum probe_kind k);

#endif
