/* agent/model/config.h - the runtime configuration (a JSON file), its schema and its validation. */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_STR_MAX 256

struct berth_config {
	char device_id[64];
	char data_dir[CONFIG_STR_MAX];
	char deployments_file[CONFIG_STR_MAX];
	char log_level[8];
	bool log_syslog;

	struct {
		char socket[CONFIG_STR_MAX];
		char api_version[16];
		int timeout_ms;
	} engine;

	struct {
		bool enabled;
		char host[CONFIG_STR_MAX];
		int port;
		char username[128];
		char password[128];
		char protocol[8];          /* "v5" or "v311" */
		int keepalive_s;
		int reconnect_min_ms;
		int reconnect_max_ms;
		int session_expiry_s;      /* persistent session kept this long while offline; 0: clean */
		int reconnect_window_s;    /* >0: the first reconnect after a lost connection is uniform in [0, window] */
		struct {
			bool enabled;
			char ca_file[CONFIG_STR_MAX];
			char cert_file[CONFIG_STR_MAX];
			char key_file[CONFIG_STR_MAX];
			bool insecure;     /* skip server hostname check (test brokers) */
		} tls;
	} broker;

	struct {
		bool enabled;
		char listen[64];
		int port;
		char unix_socket[CONFIG_STR_MAX];
		char token[128];           /* bearer token; required to listen beyond loopback */
		int max_body_bytes;
		char static_replicas[1024]; /* "model=host:port,..." replicas run outside berth */
	} api;

	struct {
		char keys_file[CONFIG_STR_MAX];    /* the console keys trusted at first (a key list) */
		char policy_file[CONFIG_STR_MAX];  /* an initial admission policy; "" none */
		char groups[CONFIG_STR_MAX];       /* older name of fleet.groups (same list) */
		bool require_signatures;
	} trust;

	struct {
		char groups[CONFIG_STR_MAX];       /* comma-separated fleet groups (also trust.groups' value) */
	} fleet;

	struct {
		int slots;                 /* 0: one per CPU core */
		char policy[16];
		int queue_cap_urgent;
		int queue_cap_normal;
		int queue_cap_batch;
		int urgent_reserve_slots;
	} scheduler;

	struct {
		int interval_ms;
		int batch_max_bytes;
		int inflight_max;
		int disk_budget_kb;
		char synchronous[8];       /* "full" or "normal" */
		int state_refresh_s;
		int forward_rate;          /* backlog messages sent per second at most; 0: the window only */
	} telemetry;

	struct {
		bool enabled;
		int interval_s;
		double target_low;
		double target_high;
		int cooldown_s;
		int cpu_ceiling_pct;
		int mem_ceiling_pct;
		bool predictive;
		int bucket_s;
	} autoscale;

	struct {
		bool enabled;
		char device[CONFIG_STR_MAX];
		int timeout_s;
	} watchdog;

	struct {
		int migrate_after_failures;
	} supervisor;

	struct {
		bool enabled;
		char members[512];         /* "ID=A.B.C.D:PORT,..." the founding members (the seed list) */
		char address[64];          /* A.B.C.D:PORT: this gateway's, when it is not in members (joins) */
		int failover_ms;
		int lease_ms;
		int election_timeout_ms;
	} site;

	struct {
		char deployment[64];
		int interval_s;
		int duration_s;
		int min_running;
	} chaos;

	struct {
		char registries[1024];      /* "host[:port],..." the gateway may pull from */
		char credentials_file[CONFIG_STR_MAX]; /* root-only JSON: registries.HOST.username/password */
		int budget_mb;              /* images on disk at most this (0: no byte budget) */
		int budget_pct;             /* ... or this share of engine_dir's filesystem (0: none) */
		char engine_dir[CONFIG_STR_MAX]; /* where the engine keeps images (for budget_pct) */
		bool remove_foreign;        /* the budget may remove images berth did not pull */
		int pull_stall_s;           /* a pull silent this long fails and is retried */
		int gc_interval_s;
		bool rollback;              /* roll a failing new version back to the last-known-good */
		int lkg_stable_s;           /* ready this long makes a version last-known-good */
		int rollout_window_s;       /* a new version not ready within this fails */
	} images;
};

/* Where an error was found, for a message that names it. */
struct config_error {
	char key[128];        /* dotted path, e.g. "broker.port"; "" for the whole file */
	char message[256];    /* what is wrong */
};

/* Fills cfg with every default. */
void config_defaults(struct berth_config *cfg);

/* Parses and validates JSON text (len bytes). On success fills cfg (defaults
 * for absent keys) and returns 0. On error returns -EINVAL (bad content) and
 * fills err; cfg is then unspecified. Checks: JSON syntax, wrong types,
 * ranges and enumerations, unknown keys (with the closest known key
 * suggested), missing required keys. Pure: no I/O. */
int config_parse(const char *text, size_t len, struct berth_config *cfg, struct config_error *err)
	__attribute__((warn_unused_result));

/* Reads path (at most CONFIG_CONFIG_MAX_BYTES) and parses it. Returns 0,
 * -ENOENT/-EACCES/... when the file cannot be read, -EFBIG when too large,
 * -EINVAL on bad content; err is filled in every error case. */
int config_load(const char *path, struct berth_config *cfg, struct config_error *err)
	__attribute__((warn_unused_result));

/* Whether addr is a loopback address ("localhost", "::1", 127.0.0.0/8). */
bool config_loopback(const char *addr);

/* Formats "FILE: KEY: MESSAGE" (or "FILE: MESSAGE" without a key) into buf. */
void config_error_format(const char *path, const struct config_error *err, char *buf, size_t len);

/* The schema, for documentation checks: the dotted path and JSON type
 * ("string", "integer", "number", "boolean") of the i-th key; NULL past the
 * last. Static strings. */
const char *config_key_path(size_t i);
const char *config_key_type(size_t i);

/* Whether key i has different values in a and b; false past the last key. */
bool config_key_differs(size_t i, const struct berth_config *a, const struct berth_config *b);
/* Copies key i's value from src into dst (nothing past the last key). */
void config_key_copy(size_t i, struct berth_config *dst, const struct berth_config *src);

/* Levenshtein distance, used for "did you mean" hints (exposed for other
 * validators, e.g. the deployment spec). */
unsigned config_edit_distance(const char *a, const char *b);

#endif
