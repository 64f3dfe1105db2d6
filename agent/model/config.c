/* agent/model/config.c - table-driven parsing and validation of the JSON runtime config. */
#include "agent/model/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/jsonutil.h"
#include "agent/base/textfile.h"
#include "agent/model/groups.h"
#include "agent/model/siteconf.h"

enum cfg_type { CT_STR, CT_INT, CT_DBL, CT_BOOL, CT_ENUM };

struct cfg_key {                /* packed small: one per key, about a hundred of them */
	const char *path;
	double min, max;        /* CT_INT/CT_DBL */
	const char *def;        /* default, as text ("" for none) */
	const char *choices;    /* CT_ENUM: "a|b|c" */
	uint16_t off;
	uint16_t size;          /* CT_STR/CT_ENUM: buffer size */
	uint8_t type;           /* enum cfg_type */
	bool required;
};
_Static_assert(sizeof(struct berth_config) <= UINT16_MAX, "struct cfg_key's offsets are 16-bit");

#define F(field) offsetof(struct berth_config, field), sizeof(((struct berth_config *)0)->field)
#define STR(p, field, req, d) { p, 0, 0, d, NULL, F(field), CT_STR, req }
#define INT(p, field, lo, hi, d) { p, lo, hi, d, NULL, F(field), CT_INT, false }
#define DBL(p, field, lo, hi, d) { p, lo, hi, d, NULL, F(field), CT_DBL, false }
#define BOOL(p, field, d) { p, 0, 0, d, NULL, F(field), CT_BOOL, false }
#define ENUM(p, field, choices, d) { p, 0, 0, d, choices, F(field), CT_ENUM, false }

/* The local API is on by default only in builds that have it, so the
 * same config file works on a minimal build. */
#if IS_ENABLED(CONFIG_LOCAL_API)
#define API_ENABLED_DEFAULT "true"
#else
#define API_ENABLED_DEFAULT "false"
#endif

#define XSTR(x) STR_(x)
#define STR_(x) #x

/* Every key the file may hold. docs/configuration.md documents each one;
 * tests/unit/test_config.c checks that the two agree. */
static const struct cfg_key keys[] = {
	STR("device_id", device_id, true, ""),
	STR("data_dir", data_dir, true, ""),
	STR("deployments_file", deployments_file, false, ""),
	ENUM("log_level", log_level, "err|wrn|inf|dbg|error|warn|warning|info|debug", "info"),
	BOOL("log_syslog", log_syslog, "false"),

	STR("engine.socket", engine.socket, false, "/var/run/docker.sock"),
	STR("engine.api_version", engine.api_version, false, "v1.41"),
	INT("engine.timeout_ms", engine.timeout_ms, 100, 600000, "10000"),

	BOOL("broker.enabled", broker.enabled, "true"),
	STR("broker.host", broker.host, false, "127.0.0.1"),
	INT("broker.port", broker.port, 1, 65535, "1883"),
	STR("broker.username", broker.username, false, ""),
	STR("broker.password", broker.password, false, ""),
	ENUM("broker.protocol", broker.protocol, "v5|v311", "v5"),
	INT("broker.keepalive_s", broker.keepalive_s, 5, 3600, "30"),
	INT("broker.reconnect_min_ms", broker.reconnect_min_ms, 100, 600000, "1000"),
	INT("broker.reconnect_max_ms", broker.reconnect_max_ms, 100, 3600000, "120000"),
	INT("broker.session_expiry_s", broker.session_expiry_s, 0, 2592000, "604800"),
	INT("broker.reconnect_window_s", broker.reconnect_window_s, 0, 3600, "0"),
	BOOL("broker.tls.enabled", broker.tls.enabled, "false"),
	STR("broker.tls.ca_file", broker.tls.ca_file, false, ""),
	STR("broker.tls.cert_file", broker.tls.cert_file, false, ""),
	STR("broker.tls.key_file", broker.tls.key_file, false, ""),
	BOOL("broker.tls.insecure", broker.tls.insecure, "false"),

	BOOL("api.enabled", api.enabled, API_ENABLED_DEFAULT),
	STR("api.listen", api.listen, false, "127.0.0.1"),
	INT("api.port", api.port, 0, 65535, "8480"),
	STR("api.unix_socket", api.unix_socket, false, ""),
	STR("api.token", api.token, false, ""),
	INT("api.max_body_bytes", api.max_body_bytes, 1024, 67108864, "4194304"),
	STR("api.static_replicas", api.static_replicas, false, ""),

	STR("trust.keys_file", trust.keys_file, false, ""),
	STR("trust.policy_file", trust.policy_file, false, ""),
	STR("trust.groups", trust.groups, false, ""),
	STR("fleet.groups", fleet.groups, false, ""),
	BOOL("trust.require_signatures", trust.require_signatures, "true"),

	INT("scheduler.slots", scheduler.slots, 0, CONFIG_SCHED_MAX_SLOTS, "0"),
	ENUM("scheduler.policy", scheduler.policy, "fifo|edf|edf-admit|edf-reserve|edf-preempt|edf-mc",
	     CONFIG_SCHED_DEFAULT_POLICY),
	INT("scheduler.queue_cap_urgent", scheduler.queue_cap_urgent, 1, CONFIG_SCHED_MAX_QUEUED,
	    XSTR(CONFIG_SCHED_MAX_QUEUED)),
	INT("scheduler.queue_cap_normal", scheduler.queue_cap_normal, 1, CONFIG_SCHED_MAX_QUEUED,
	    XSTR(CONFIG_SCHED_MAX_QUEUED)),
	INT("scheduler.queue_cap_batch", scheduler.queue_cap_batch, 1, CONFIG_SCHED_MAX_QUEUED,
	    XSTR(CONFIG_SCHED_MAX_QUEUED)),
	INT("scheduler.urgent_reserve_slots", scheduler.urgent_reserve_slots, 0, CONFIG_SCHED_MAX_SLOTS, "0"),

	INT("telemetry.interval_ms", telemetry.interval_ms, 100, 60000, XSTR(CONFIG_METRIC_INTERVAL_MS)),
	INT("telemetry.batch_max_bytes", telemetry.batch_max_bytes, 512, 262144, XSTR(CONFIG_UPLINK_BATCH_BYTES)),
	INT("telemetry.inflight_max", telemetry.inflight_max, 1, 100, XSTR(CONFIG_UPLINK_INFLIGHT)),
	INT("telemetry.disk_budget_kb", telemetry.disk_budget_kb, 256, 4194304, XSTR(CONFIG_STORE_BUDGET_KB)),
	ENUM("telemetry.synchronous", telemetry.synchronous, "full|normal", "full"),
	INT("telemetry.state_refresh_s", telemetry.state_refresh_s, 1, 3600, "30"),
	INT("telemetry.forward_rate", telemetry.forward_rate, 0, 100000, "0"),

	BOOL("autoscale.enabled", autoscale.enabled, "true"),
	INT("autoscale.interval_s", autoscale.interval_s, 1, 3600, "30"),
	DBL("autoscale.target_low", autoscale.target_low, 0, 1, "0.95"),
	DBL("autoscale.target_high", autoscale.target_high, 0, 1, "0.98"),
	INT("autoscale.cooldown_s", autoscale.cooldown_s, 0, 86400, "300"),
	INT("autoscale.cpu_ceiling_pct", autoscale.cpu_ceiling_pct, 10, 1000, "80"),
	INT("autoscale.mem_ceiling_pct", autoscale.mem_ceiling_pct, 10, 100, "80"),
	BOOL("autoscale.predictive", autoscale.predictive, "true"),
	INT("autoscale.bucket_s", autoscale.bucket_s, 1, 3600, "60"),

	BOOL("watchdog.enabled", watchdog.enabled, "false"),
	STR("watchdog.device", watchdog.device, false, "/dev/watchdog"),
	INT("watchdog.timeout_s", watchdog.timeout_s, 2, 600, "30"),

	INT("supervisor.migrate_after_failures", supervisor.migrate_after_failures, 1, 1000, "10"),

	STR("chaos.deployment", chaos.deployment, false, ""),
	INT("chaos.interval_s", chaos.interval_s, 1, 86400, "30"),
	INT("chaos.duration_s", chaos.duration_s, 0, 604800, "0"),
	INT("chaos.min_running", chaos.min_running, 0, 64, "1"),

	BOOL("site.enabled", site.enabled, "false"),
	STR("site.members", site.members, false, ""),
	STR("site.address", site.address, false, ""),
	INT("site.failover_ms", site.failover_ms, 500, 60000, "3000"),
	INT("site.lease_ms", site.lease_ms, 200, 60000, "2000"),
	INT("site.election_timeout_ms", site.election_timeout_ms, 100, 10000, "1000"),
	STR("images.registries", images.registries, false, ""),
	STR("images.credentials_file", images.credentials_file, false, ""),
	INT("images.budget_mb", images.budget_mb, 0, 16777216, "0"),
	INT("images.budget_pct", images.budget_pct, 0, 95, "0"),
	STR("images.engine_dir", images.engine_dir, false, "/var/lib/containers"),
	BOOL("images.remove_foreign", images.remove_foreign, "false"),
	INT("images.pull_stall_s", images.pull_stall_s, 5, 3600, "60"),
	INT("images.gc_interval_s", images.gc_interval_s, 10, 86400, "300"),
	BOOL("images.rollback", images.rollback, "true"),
	INT("images.lkg_stable_s", images.lkg_stable_s, 1, 86400, "60"),
	INT("images.rollout_window_s", images.rollout_window_s, 5, 3600, "120"),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static void set_err(struct config_error *err, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(struct config_error *err, const char *key, const char *fmt, ...)
{
	va_list ap;
	snprintf(err->key, sizeof(err->key), "%s", key);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

unsigned config_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[129];
	if (lb > 128)
		lb = 128;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		unsigned prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
			unsigned best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

static void *field(struct berth_config *cfg, const struct cfg_key *k) { return (char *)cfg + k->off; }

static bool enum_has(const char *choices, const char *s)
{
	size_t n = strlen(s);
	for (const char *p = choices; *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, s, n) == 0)
			return true;
		p += len + (bar ? 1 : 0);
	}
	return false;
}

static int set_text(struct berth_config *cfg, const struct cfg_key *k, const char *text)
{
	switch (k->type) {
	case CT_STR:
	case CT_ENUM:
		if (strlen(text) >= k->size)
			return -ENAMETOOLONG;
		strcpy(field(cfg, k), text);
		return 0;
	case CT_INT:
		*(int *)field(cfg, k) = atoi(text);
		return 0;
	case CT_DBL:
		*(double *)field(cfg, k) = atof(text);
		return 0;
	case CT_BOOL:
		*(bool *)field(cfg, k) = strcmp(text, "true") == 0;
		return 0;
	}
	return -EINVAL;
}

void config_defaults(struct berth_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++)
		(void)set_text(cfg, &keys[i], keys[i].def);
}

static const struct cfg_key *find_key(const char *path)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

/* An object node is a strict prefix of some key ("broker", "broker.tls"). */
static bool is_object_path(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
			return true;
	return false;
}

/* Candidates are every key and every object name ("broker", "broker.tls"),
 * so a typo in an object name ("brokr") is matched too. */
static const char *closest_key(const char *path, char *buf, size_t len)
{
	unsigned best_d = ~0u;
	buf[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		const char *kp = keys[i].path;
		for (const char *dot = kp;; dot++) {
			if (*dot != '.' && *dot != '\0')
				continue;
			size_t n = (size_t)(dot - kp);
			char cand[128];
			if (n < sizeof(cand)) {
				memcpy(cand, kp, n);
				cand[n] = '\0';
				unsigned d = config_edit_distance(path, cand);
				if (d < best_d) {
					best_d = d;
					snprintf(buf, len, "%s", cand);
				}
			}
			if (*dot == '\0')
				break;
		}
	}
	/* Only suggest what plausibly is a typo of the key. */
	return buf[0] && best_d <= 1 + strlen(path) / 3 ? buf : NULL;
}

const char *config_key_path(size_t i) { return i < NKEYS ? keys[i].path : NULL; }

bool config_key_differs(size_t i, const struct berth_config *a, const struct berth_config *b)
{
	if (i >= NKEYS)
		return false;
	const char *pa = (const char *)a + keys[i].off, *pb = (const char *)b + keys[i].off;
	if (keys[i].type == CT_STR || keys[i].type == CT_ENUM)
		return strncmp(pa, pb, keys[i].size) != 0;
	return memcmp(pa, pb, keys[i].size) != 0;
}

void config_key_copy(size_t i, struct berth_config *dst, const struct berth_config *src)
{
	if (i < NKEYS)
		memcpy((char *)dst + keys[i].off, (const char *)src + keys[i].off, keys[i].size);
}

const char *config_key_type(size_t i)
{
	static const char *const names[] = {
		[CT_STR] = "string", [CT_INT] = "integer", [CT_DBL] = "number",
		[CT_BOOL] = "boolean", [CT_ENUM] = "string",
	};
	return i < NKEYS ? names[keys[i].type] : NULL;
}

static int apply_value(struct berth_config *cfg, const struct cfg_key *k, const cJSON *v,
		       struct config_error *err)
{
	switch (k->type) {
	case CT_STR:
		if (!cJSON_IsString(v)) {
			set_err(err, k->path, "expected a string, got %s", jsonutil_type_name(v));
			return -EINVAL;
		}
		if (strlen(v->valuestring) >= k->size) {
			set_err(err, k->path, "too long: %zu bytes, at most %zu", strlen(v->valuestring),
				(size_t)k->size - 1);
			return -EINVAL;
		}
		if (k->required && v->valuestring[0] == '\0') {
			set_err(err, k->path, "must not be empty");
			return -EINVAL;
		}
		if (!jsonutil_is_text(v->valuestring)) {
			set_err(err, k->path, "holds a control character");
			return -EINVAL;
		}
		strcpy(field(cfg, k), v->valuestring);
		return 0;
	case CT_ENUM:
		if (!cJSON_IsString(v)) {
			set_err(err, k->path, "expected a string, got %s", jsonutil_type_name(v));
			return -EINVAL;
		}
		if (!enum_has(k->choices, v->valuestring) || strlen(v->valuestring) >= k->size) {
			set_err(err, k->path, "\"%.64s\" is not one of %s", v->valuestring, k->choices);
			return -EINVAL;
		}
		strcpy(field(cfg, k), v->valuestring);
		return 0;
	case CT_INT: {
		if (!cJSON_IsNumber(v)) {
			set_err(err, k->path, "expected an integer, got %s", jsonutil_type_name(v));
			return -EINVAL;
		}
		/* Range before any conversion: casting 1e300 to an integer is undefined. */
		double d = v->valuedouble;
		if (d != floor(d)) {
			set_err(err, k->path, "expected an integer, got %g", d);
			return -EINVAL;
		}
		if (d < k->min || d > k->max) {
			if (fabs(d) < 1e15)
				set_err(err, k->path, "%lld is out of range [%lld, %lld]", (long long)d,
					(long long)k->min, (long long)k->max);
			else
				set_err(err, k->path, "%g is out of range [%lld, %lld]", d, (long long)k->min,
					(long long)k->max);
			return -EINVAL;
		}
		*(int *)field(cfg, k) = (int)d;
		return 0;
	}
	case CT_DBL:
		if (!cJSON_IsNumber(v)) {
			set_err(err, k->path, "expected a number, got %s", jsonutil_type_name(v));
			return -EINVAL;
		}
		if (v->valuedouble < k->min || v->valuedouble > k->max) {
			set_err(err, k->path, "%g is out of range [%g, %g]", v->valuedouble, k->min, k->max);
			return -EINVAL;
		}
		*(double *)field(cfg, k) = v->valuedouble;
		return 0;
	case CT_BOOL:
		if (!cJSON_IsBool(v)) {
			set_err(err, k->path, "expected true or false, got %s", jsonutil_type_name(v));
			return -EINVAL;
		}
		*(bool *)field(cfg, k) = cJSON_IsTrue(v);
		return 0;
	}
	return -EINVAL;
}

static int walk(struct berth_config *cfg, const cJSON *obj, const char *prefix, bool *seen,
		struct config_error *err)
{
	for (const cJSON *c = obj->child; c; c = c->next) {
		char path[128];
		int n = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", c->string);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			set_err(err, prefix, "key name too long");
			return -EINVAL;
		}
		if (jsonutil_key_repeated(obj, c)) {
			set_err(err, path, "duplicate key");
			return -EINVAL;
		}
		if (is_object_path(path)) {
			if (!cJSON_IsObject(c)) {
				set_err(err, path, "expected an object, got %s", jsonutil_type_name(c));
				return -EINVAL;
			}
			int rc = walk(cfg, c, path, seen, err);
			if (rc)
				return rc;
			continue;
		}
		const struct cfg_key *k = find_key(path);
		if (!k) {
			char hint_buf[128];
			const char *hint = closest_key(path, hint_buf, sizeof(hint_buf));
			if (hint)
				set_err(err, path, "unknown key (did you mean \"%s\"?)", hint);
			else
				set_err(err, path, "unknown key");
			return -EINVAL;
		}
		int rc = apply_value(cfg, k, c, err);
		if (rc)
			return rc;
		seen[k - keys] = true;
	}
	return 0;
}

bool config_loopback(const char *addr)
{
	return strcmp(addr, "localhost") == 0 || strcmp(addr, "::1") == 0 || strncmp(addr, "127.", 4) == 0;
}

/* The site object (site.enabled): members and timings, or no site in this build. */
static int site_check(const struct berth_config *cfg, struct config_error *err)
{
	if (!IS_ENABLED(CONFIG_SITE)) {
		set_err(err, "site.enabled", "this build has no site cluster support (CONFIG_SITE)");
		return -EINVAL;
	}
	struct siteconf sc;
	const char *key = "site";
	char why[200];
	if (siteconf_parse(cfg, &sc, &key, why, sizeof(why))) {
		set_err(err, key, "%s", why);
		return -EINVAL;
	}
	return 0;
}

/* fleet.groups is the one group list; trust.groups is its older name (same
 * list): either may be given, both only with the same value. The list is
 * kept in fleet.groups. */
static int groups_check(struct berth_config *cfg, struct config_error *err)
{
	struct groups g, t;
	char why[160];
	if (groups_parse_csv(cfg->fleet.groups, &g, why, sizeof(why))) {
		set_err(err, "fleet.groups", "%s", why);
		return -EINVAL;
	}
	if (groups_parse_csv(cfg->trust.groups, &t, why, sizeof(why))) {
		set_err(err, "trust.groups", "%s", why);
		return -EINVAL;
	}
	if (g.n && t.n && !groups_equal(&g, &t)) {
		set_err(err, "trust.groups", "differs from fleet.groups (its older name): give one list");
		return -EINVAL;
	}
	if (!g.n)
		memcpy(cfg->fleet.groups, cfg->trust.groups, sizeof(cfg->fleet.groups));
	return 0;
}

static int cross_check(struct berth_config *cfg, struct config_error *err)
{
	if (groups_check(cfg, err))
		return -EINVAL;
	if (cfg->broker.reconnect_min_ms > cfg->broker.reconnect_max_ms) {
		set_err(err, "broker.reconnect_min_ms", "%d is above broker.reconnect_max_ms (%d)",
			cfg->broker.reconnect_min_ms, cfg->broker.reconnect_max_ms);
		return -EINVAL;
	}
	if (cfg->autoscale.target_low > cfg->autoscale.target_high) {
		set_err(err, "autoscale.target_low", "%g is above autoscale.target_high (%g)",
			cfg->autoscale.target_low, cfg->autoscale.target_high);
		return -EINVAL;
	}
	if (cfg->broker.tls.enabled && !cfg->broker.tls.ca_file[0]) {
		set_err(err, "broker.tls.ca_file", "required when broker.tls.enabled is true");
		return -EINVAL;
	}
	if (!cfg->broker.tls.cert_file[0] != !cfg->broker.tls.key_file[0]) {
		set_err(err, cfg->broker.tls.cert_file[0] ? "broker.tls.key_file" : "broker.tls.cert_file",
			"client certificate and key must be given together");
		return -EINVAL;
	}
	if (cfg->broker.tls.enabled && !IS_ENABLED(CONFIG_TLS)) {
		set_err(err, "broker.tls.enabled", "this build has no TLS support (CONFIG_TLS)");
		return -EINVAL;
	}
	if (cfg->images.budget_mb && cfg->images.budget_pct) {
		set_err(err, "images.budget_pct", "give images.budget_mb or images.budget_pct, not both");
		return -EINVAL;
	}
	for (const char *h = cfg->images.registries; *h;) {
		size_t n = strcspn(h, ",");
		char one[160];
		if (!n || n >= sizeof(one)) {
			set_err(err, "images.registries", "an empty or over-long entry (a comma-separated list of host[:port])");
			return -EINVAL;
		}
		memcpy(one, h, n);
		one[n] = '\0';
		for (size_t i = 0; i < n; i++) {
			char ch = one[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
			      ch == '-' || ch == ':')) {
				set_err(err, "images.registries", "\"%s\" is not a host[:port]", one);
				return -EINVAL;
			}
		}
		h += n + (h[n] == ',');
	}
	if (cfg->api.enabled && !IS_ENABLED(CONFIG_LOCAL_API)) {
		set_err(err, "api.enabled", "this build has no local API (CONFIG_LOCAL_API)");
		return -EINVAL;
	}
	if (cfg->api.enabled && cfg->api.port != 0 && !config_loopback(cfg->api.listen) && !cfg->api.token[0]) {
		set_err(err, "api.token", "api.listen \"%s\" is not a loopback address: set api.token (clients send "
			"\"Authorization: Bearer TOKEN\") or listen on 127.0.0.1, ::1 or a unix socket", cfg->api.listen);
		return -EINVAL;
	}
	if (cfg->scheduler.slots && cfg->scheduler.urgent_reserve_slots >= cfg->scheduler.slots) {
		set_err(err, "scheduler.urgent_reserve_slots", "%d leaves no slot for other classes (slots %d)",
			cfg->scheduler.urgent_reserve_slots, cfg->scheduler.slots);
		return -EINVAL;
	}
	for (const char *p = cfg->device_id; *p; p++) {
		/* '"' and '\\' too: the id is written into JSON documents (state, replies, the will) as is */
		if (strchr("/+#\"\\", *p) || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
			set_err(err, "device_id", "\"%s\" contains '%c', not allowed in an MQTT topic level or a JSON string",
				cfg->device_id, *p);
			return -EINVAL;
		}
	}
	if (cfg->site.enabled && site_check(cfg, err))
		return -EINVAL;
	return 0;
}

int config_parse(const char *text, size_t len, struct berth_config *cfg, struct config_error *err)
{
	bool seen[NKEYS] = { false };
	int rc = -EINVAL;

	memset(err, 0, sizeof(*err));
	config_defaults(cfg);
	size_t bad_off;
	const char *why;
	if (jsonutil_check_strings(text, len, &bad_off, &why)) {
		set_err(err, "", "%s at byte %zu: not allowed in any string", why, bad_off);
		return -EINVAL;
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!root) {
		size_t off = end ? (size_t)(end - text) : 0;
		unsigned line = 1;
		for (size_t i = 0; i < off && i < len; i++)
			line += text[i] == '\n';
		set_err(err, "", "not valid JSON (syntax error at line %u, byte %zu)", line, off);
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		set_err(err, "", "the top level must be a JSON object, got %s", jsonutil_type_name(root));
		goto out;
	}
	rc = walk(cfg, root, "", seen, err);
	if (rc)
		goto out;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].required && !seen[i]) {
			set_err(err, keys[i].path, "required key is missing");
			rc = -EINVAL;
			goto out;
		}
	}
	rc = cross_check(cfg, err);
out:
	cJSON_Delete(root);
	return rc;
}

int config_load(const char *path, struct berth_config *cfg, struct config_error *err)
{
	memset(err, 0, sizeof(*err));
	char *buf;
	size_t len;
	int rc = textfile_read(path, CONFIG_CONFIG_MAX_BYTES, &buf, &len);
	if (rc) {
		textfile_describe(rc, NULL, len, CONFIG_CONFIG_MAX_BYTES, err->message, sizeof(err->message));
		return rc;
	}
	rc = config_parse(buf, len, cfg, err);
	free(buf);
	return rc;
}

void config_error_format(const char *path, const struct config_error *err, char *buf, size_t len)
{
	if (err->key[0])
		snprintf(buf, len, "%s: %s: %s", path, err->key, err->message);
	else
		snprintf(buf, len, "%s: %s", path, err->message);
}
