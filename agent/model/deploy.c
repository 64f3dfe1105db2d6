/* agent/model/deploy.c - parsing, validation, canonical hash and JSON form of the deployment spec. */
#include "agent/model/deploy.h"
#include "agent/model/imageref.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/config.h"
#include "agent/base/jsonutil.h"
#include "agent/base/textfile.h"

/* Defaults of absent fields; docs/deployments.md lists the same values. */
#define DEF_PORT 8500
#define DEF_DEADLINE_MS 1000
#define DEF_PROBE_PERIOD_MS 10000
#define DEF_PROBE_TIMEOUT_MS 1000
#define DEF_PROBE_FAILURES 3
#define MIN_MEM_BYTES (6ull << 20) /* the engine refuses less */

struct pctx {
	struct deploy_error *err;
	const char *dep;   /* name of the deployment being parsed, "" before it is known */
};

static int fail(struct pctx *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct pctx *c, const char *field, const char *fmt, ...)
{
	va_list ap;
	snprintf(c->err->deployment, sizeof(c->err->deployment), "%s", c->dep);
	snprintf(c->err->field, sizeof(c->err->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(c->err->message, sizeof(c->err->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void join(char *out, size_t len, const char *prefix, const char *key)
{
	snprintf(out, len, "%s%s%s", prefix, *prefix ? "." : "", key);
}

/* Refuses keys of obj not in allowed (NULL-terminated), and duplicates. */
static int check_keys(struct pctx *c, const cJSON *obj, const char *prefix, const char *const *allowed)
{
	for (const cJSON *k = obj->child; k; k = k->next) {
		char path[64];
		join(path, sizeof(path), prefix, k->string);
		if (jsonutil_key_repeated(obj, k))
			return fail(c, path, "duplicate key");
		bool ok = false;
		const char *best = NULL;
		unsigned best_d = ~0u;
		for (const char *const *a = allowed; *a; a++) {
			if (strcmp(*a, k->string) == 0) {
				ok = true;
				break;
			}
			unsigned d = config_edit_distance(k->string, *a);
			if (d < best_d) {
				best_d = d;
				best = *a;
			}
		}
		if (ok)
			continue;
		if (best && best_d <= 1 + strlen(k->string) / 3)
			return fail(c, path, "unknown key (did you mean \"%s\"?)", best);
		return fail(c, path, "unknown key");
	}
	return 0;
}

static int get_obj(struct pctx *c, const cJSON *obj, const char *key, const char *prefix, const cJSON **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsObject(v)) {
		char path[64];
		join(path, sizeof(path), prefix, key);
		return fail(c, path, "expected an object, got %s", jsonutil_type_name(v));
	}
	*out = v;
	return 0;
}

/* Integer field in [lo, hi]; *out keeps its value when the key is absent. */
static int get_u64(struct pctx *c, const cJSON *obj, const char *key, const char *prefix, double lo, double hi,
		   uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	char path[64];
	if (!v)
		return 0;
	join(path, sizeof(path), prefix, key);
	if (!cJSON_IsNumber(v))
		return fail(c, path, "expected an integer, got %s", jsonutil_type_name(v));
	double d = v->valuedouble;
	if (!isfinite(d) || d != floor(d))
		return fail(c, path, "expected an integer, got %g", d);
	if (d < lo || d > hi)
		return fail(c, path, "%.0f is out of range [%.0f, %.0f]", d, lo, hi);
	*out = (uint64_t)d;
	return 0;
}

static int get_u32(struct pctx *c, const cJSON *obj, const char *key, const char *prefix, double lo, double hi,
		   uint32_t *out)
{
	uint64_t v = *out;
	int rc = get_u64(c, obj, key, prefix, lo, hi, &v);
	*out = (uint32_t)v;
	return rc;
}

/* String field copied into out (size bytes); absent keeps out. */
static int get_str(struct pctx *c, const cJSON *obj, const char *key, const char *prefix, char *out, size_t size,
		   bool required)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	char path[64];
	join(path, sizeof(path), prefix, key);
	if (!v)
		return required ? fail(c, path, "required field is missing") : 0;
	if (!cJSON_IsString(v))
		return fail(c, path, "expected a string, got %s", jsonutil_type_name(v));
	size_t n = strlen(v->valuestring);
	if (n >= size)
		return fail(c, path, "too long: %zu bytes, at most %zu", n, size - 1);
	if (required && n == 0)
		return fail(c, path, "must not be empty");
	if (!jsonutil_is_text(v->valuestring))
		return fail(c, path, "holds a control character");
	memcpy(out, v->valuestring, n + 1);
	return 0;
}

/* argv-like array of strings into rows of width w, "" terminated. */
static int get_argv(struct pctx *c, const cJSON *v, const char *path, char *rows, size_t w, size_t nrows)
{
	if (!cJSON_IsArray(v))
		return fail(c, path, "expected an array of strings, got %s", jsonutil_type_name(v));
	size_t i = 0;
	for (const cJSON *a = v->child; a; a = a->next, i++) {
		char p[64];
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		if (i >= nrows - 1)
			return fail(c, path, "too many words: at most %zu", nrows - 1);
		if (!cJSON_IsString(a))
			return fail(c, p, "expected a string, got %s", jsonutil_type_name(a));
		size_t n = strlen(a->valuestring);
		if (n == 0)
			return fail(c, p, "must not be empty");
		if (n >= w)
			return fail(c, p, "too long: %zu bytes, at most %zu", n, w - 1);
		memcpy(rows + i * w, a->valuestring, n + 1);
	}
	rows[i * w] = '\0';
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= DEPLOY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (!alnum && !(ch == '-' && i > 0 && i < n - 1))
			return false;
	}
	return true;
}

static bool valid_env_key(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static int cmp_env(const void *a, const void *b) { return strcmp(a, b); }

static int parse_env(struct pctx *c, const cJSON *v, struct deploy_spec *d)
{
	if (!cJSON_IsObject(v))
		return fail(c, "env", "expected an object of strings, got %s", jsonutil_type_name(v));
	size_t i = 0;
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		char path[64];
		snprintf(path, sizeof(path), "env.%s", e->string);
		if (i >= DEPLOY_MAX_ENV - 1)
			return fail(c, "env", "too many variables: at most %d", DEPLOY_MAX_ENV - 1);
		if (!valid_env_key(e->string))
			return fail(c, path, "not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
		if (!strcmp(e->string, "BERTH_PORT") || !strcmp(e->string, "BERTH_REPLICA") ||
		    !strcmp(e->string, "BERTH_MODEL"))
			return fail(c, path, "is set by berth for each replica");
		if (jsonutil_key_repeated(v, e))
			return fail(c, path, "duplicate key");
		if (!cJSON_IsString(e))
			return fail(c, path, "expected a string, got %s", jsonutil_type_name(e));
		int n = snprintf(d->env[i], sizeof(d->env[i]), "%s=%s", e->string, e->valuestring);
		if (n < 0 || (size_t)n >= sizeof(d->env[i]))
			return fail(c, path, "too long: KEY=value is %d bytes, at most %zu", n, sizeof(d->env[i]) - 1);
	}
	d->env[i][0] = '\0';
	/* Sorted, so that the order in the file does not change the spec hash. */
	qsort(d->env, i, sizeof(d->env[0]), cmp_env);
	return 0;
}

/* "500m" (millicores) or a number of cores. */
static int parse_cpu(struct pctx *c, const cJSON *v, uint64_t *nano)
{
	double cores;
	if (cJSON_IsNumber(v)) {
		cores = v->valuedouble;
	} else if (cJSON_IsString(v)) {
		char *end;
		double m = strtod(v->valuestring, &end);
		if (end == v->valuestring || strcmp(end, "m") != 0)
			return fail(c, "resources.cpu", "\"%.32s\" is not a number of cores or millicores (\"500m\")",
				    v->valuestring);
		cores = m / 1000.0;
	} else {
		return fail(c, "resources.cpu", "expected a number of cores or \"NNNm\", got %s", jsonutil_type_name(v));
	}
	if (!isfinite(cores) || cores < 0.001 || cores > 1024)
		return fail(c, "resources.cpu", "%g cores is out of range [0.001, 1024]", cores);
	*nano = (uint64_t)llround(cores * 1e9);
	return 0;
}

/* Bytes, or a string with a suffix: K/M/G (powers of 1000), Ki/Mi/Gi (powers of 1024). */
static int parse_mem(struct pctx *c, const cJSON *v, uint64_t *bytes)
{
	double b;
	if (cJSON_IsNumber(v)) {
		b = v->valuedouble;
	} else if (cJSON_IsString(v)) {
		static const struct { const char *suffix; double mult; } units[] = {
			{ "", 1 }, { "K", 1e3 }, { "M", 1e6 }, { "G", 1e9 },
			{ "Ki", 1024.0 }, { "Mi", 1048576.0 }, { "Gi", 1073741824.0 },
		};
		char *end;
		double n = strtod(v->valuestring, &end);
		size_t i;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strcmp(end, units[i].suffix) == 0)
				break;
		if (end == v->valuestring || i == sizeof(units) / sizeof(units[0]))
			return fail(c, "resources.memory", "\"%.32s\" is not a size (bytes, or with K/M/G/Ki/Mi/Gi)",
				    v->valuestring);
		b = n * units[i].mult;
	} else {
		return fail(c, "resources.memory", "expected a size, got %s", jsonutil_type_name(v));
	}
	if (!isfinite(b) || b < (double)MIN_MEM_BYTES || b > 1099511627776.0)
		return fail(c, "resources.memory", "%.0f bytes is out of range [6Mi, 1Ti]", b);
	*bytes = (uint64_t)b;
	return 0;
}

static int parse_probe(struct pctx *c, const cJSON *root, const char *key, struct probe_spec *p, bool liveness)
{
	static const char *const keys[] = { "type", "path", "command", "initial_delay_ms", "period_ms",
					    "timeout_ms", "success_threshold", "failure_threshold", NULL };
	const cJSON *o;
	int rc;
	char path[64];

	memset(p, 0, sizeof(*p));
	p->period_ms = DEF_PROBE_PERIOD_MS;
	p->timeout_ms = DEF_PROBE_TIMEOUT_MS;
	p->success_threshold = 1;
	p->failure_threshold = DEF_PROBE_FAILURES;
	if ((rc = get_obj(c, root, key, "", &o)) || !o)
		return rc;
	if ((rc = check_keys(c, o, key, keys)))
		return rc;
	char type[8] = "";
	if ((rc = get_str(c, o, "type", key, type, sizeof(type), true)))
		return rc;
	join(path, sizeof(path), key, "type");
	if (!strcmp(type, "http"))
		p->kind = PROBE_HTTP;
	else if (!strcmp(type, "tcp"))
		p->kind = PROBE_TCP;
	else if (!strcmp(type, "exec"))
		p->kind = PROBE_EXEC;
	else if (!strcmp(type, "none"))
		p->kind = PROBE_NONE;
	else
		return fail(c, path, "\"%s\" is not one of http|tcp|exec|none", type);

	strcpy(p->path, "/");
	if ((rc = get_str(c, o, "path", key, p->path, sizeof(p->path), false)))
		return rc;
	join(path, sizeof(path), key, "path");
	if (cJSON_GetObjectItemCaseSensitive(o, "path") && p->kind != PROBE_HTTP)
		return fail(c, path, "only for type http");
	if (p->path[0] != '/')
		return fail(c, path, "must start with '/'");
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
	join(path, sizeof(path), key, "command");
	if (cmd && p->kind != PROBE_EXEC)
		return fail(c, path, "only for type exec");
	if (p->kind == PROBE_EXEC) {
		if (!cmd)
			return fail(c, path, "required for type exec");
		if ((rc = get_argv(c, cmd, path, &p->exec[0][0], sizeof(p->exec[0]), DEPLOY_MAX_ARGS)))
			return rc;
		if (!p->exec[0][0])
			return fail(c, path, "must not be empty");
	}
	if ((rc = get_u32(c, o, "initial_delay_ms", key, 0, 3600000, &p->initial_delay_ms)) ||
	    (rc = get_u32(c, o, "period_ms", key, 50, 3600000, &p->period_ms)) ||
	    (rc = get_u32(c, o, "timeout_ms", key, 10, 600000, &p->timeout_ms)) ||
	    (rc = get_u32(c, o, "success_threshold", key, 1, 100, &p->success_threshold)) ||
	    (rc = get_u32(c, o, "failure_threshold", key, 1, 100, &p->failure_threshold)))
		return rc;
	join(path, sizeof(path), key, "success_threshold");
	if (liveness && p->success_threshold != 1)
		return fail(c, path, "must be 1 for a liveness probe");
	return 0;
}

/* replicas: an integer (min = max = desired) or {min, max, desired}. */
static int parse_replicas(struct pctx *c, const cJSON *o, struct deploy_spec *d)
{
	static const char *const rkeys[] = { "min", "max", "desired", NULL };
	const cJSON *v;
	int rc;

	d->replicas_min = 1;
	d->replicas_max = 0;
	d->replicas = 0;
	v = cJSON_GetObjectItemCaseSensitive(o, "replicas");
	if (v && cJSON_IsNumber(v)) {
		uint64_t n = 1;
		if ((rc = get_u64(c, o, "replicas", "", 1, DEPLOY_MAX_REPLICAS - 1, &n)))
			return rc;
		d->replicas_min = d->replicas_max = d->replicas = (uint32_t)n;
	} else if (v) {
		if (!cJSON_IsObject(v))
			return fail(c, "replicas", "expected an integer or an object, got %s", jsonutil_type_name(v));
		if ((rc = check_keys(c, v, "replicas", rkeys)) ||
		    (rc = get_u32(c, v, "min", "replicas", 0, DEPLOY_MAX_REPLICAS - 1, &d->replicas_min)) ||
		    (rc = get_u32(c, v, "max", "replicas", 1, DEPLOY_MAX_REPLICAS - 1, &d->replicas_max)) ||
		    (rc = get_u32(c, v, "desired", "replicas", 0, DEPLOY_MAX_REPLICAS - 1, &d->replicas)))
			return rc;
		bool has_max = cJSON_GetObjectItemCaseSensitive(v, "max") != NULL;
		bool has_des = cJSON_GetObjectItemCaseSensitive(v, "desired") != NULL;
		if (!has_des)
			d->replicas = d->replicas_min;
		if (!has_max)
			d->replicas_max = d->replicas > d->replicas_min ? d->replicas : d->replicas_min;
		if (d->replicas_max == 0)
			return fail(c, "replicas.max", "must be at least 1");
		if (d->replicas_min > d->replicas_max)
			return fail(c, "replicas.min", "%u is above replicas.max (%u)", d->replicas_min, d->replicas_max);
		if (d->replicas < d->replicas_min || d->replicas > d->replicas_max)
			return fail(c, "replicas.desired", "%u is outside replicas.min..max (%u..%u)", d->replicas,
				    d->replicas_min, d->replicas_max);
	} else {
		d->replicas_max = d->replicas = 1;
	}
	return 0;
}

static int parse_resources(struct pctx *c, const cJSON *o, struct deploy_spec *d)
{
	static const char *const reskeys[] = { "cpu", "memory", NULL };
	const cJSON *v;
	int rc;

	const cJSON *res;
	if ((rc = get_obj(c, o, "resources", "", &res)))
		return rc;
	if (res) {
		if ((rc = check_keys(c, res, "resources", reskeys)))
			return rc;
		if ((v = cJSON_GetObjectItemCaseSensitive(res, "cpu")) && (rc = parse_cpu(c, v, &d->cpu_nano)))
			return rc;
		if ((v = cJSON_GetObjectItemCaseSensitive(res, "memory")) && (rc = parse_mem(c, v, &d->mem_bytes)))
			return rc;
	}
	return 0;
}

static int parse_sla(struct pctx *c, const cJSON *o, struct deploy_spec *d)
{
	static const char *const slakeys[] = { "class", "deadline_ms", NULL };
	int rc;

	const cJSON *sla;
	d->sla_class = SLA_NORMAL;
	d->deadline_ms = DEF_DEADLINE_MS;
	if ((rc = get_obj(c, o, "sla", "", &sla)))
		return rc;
	if (sla) {
		char cls[16];
		snprintf(cls, sizeof(cls), "%s", sla_class_name(SLA_NORMAL));
		if ((rc = check_keys(c, sla, "sla", slakeys)) ||
		    (rc = get_str(c, sla, "class", "sla", cls, sizeof(cls), false)) ||
		    (rc = get_u32(c, sla, "deadline_ms", "sla", 1, 3600000, &d->deadline_ms)))
			return rc;
		int k = sla_class_parse(cls, strlen(cls), false);
		if (k < 0)
			return fail(c, "sla.class", "\"%s\" is not one of urgent|normal|batch", cls);
		d->sla_class = (enum sla_class)k;
	}
	return 0;
}

static int parse_inference(struct pctx *c, const cJSON *o, struct deploy_spec *d)
{
	static const char *const infkeys[] = { "port", "concurrency", NULL };
	int rc;

	const cJSON *inf;
	uint64_t port = DEF_PORT;
	d->concurrency = 1;
	if ((rc = get_obj(c, o, "inference", "", &inf)))
		return rc;
	if (inf) {
		if ((rc = check_keys(c, inf, "inference", infkeys)) ||
		    (rc = get_u64(c, inf, "port", "inference", 1024, 65535, &port)) ||
		    (rc = get_u32(c, inf, "concurrency", "inference", 1, 1024, &d->concurrency)))
			return rc;
	}
	/* Slots 0..max are used (max + 1: the extra one for rolling updates). */
	if (port + d->replicas_max > 65535)
		return fail(c, "inference.port", "%u + replicas.max (%u) passes 65535", (unsigned)port,
			    d->replicas_max);
	d->port_base = (uint16_t)port;
	return 0;
}

static int parse_restart(struct pctx *c, const cJSON *o, struct deploy_spec *d)
{
	static const char *const rskeys[] = { "policy", "backoff_initial_ms", "backoff_max_ms", "reset_after_ms",
					      NULL };
	int rc;

	const cJSON *rs;
	d->restart = RESTART_ALWAYS;
	d->backoff_initial_ms = DEPLOY_DEFAULT_BACKOFF_INITIAL_MS;
	d->backoff_max_ms = DEPLOY_DEFAULT_BACKOFF_MAX_MS;
	d->backoff_reset_ms = DEPLOY_DEFAULT_BACKOFF_RESET_MS;
	if ((rc = get_obj(c, o, "restart", "", &rs)))
		return rc;
	if (rs) {
		char pol[16] = "always";
		if ((rc = check_keys(c, rs, "restart", rskeys)) ||
		    (rc = get_str(c, rs, "policy", "restart", pol, sizeof(pol), false)) ||
		    (rc = get_u32(c, rs, "backoff_initial_ms", "restart", 10, 3600000, &d->backoff_initial_ms)) ||
		    (rc = get_u32(c, rs, "backoff_max_ms", "restart", 10, 86400000, &d->backoff_max_ms)) ||
		    (rc = get_u32(c, rs, "reset_after_ms", "restart", 100, 86400000, &d->backoff_reset_ms)))
			return rc;
		if (!strcmp(pol, "always"))
			d->restart = RESTART_ALWAYS;
		else if (!strcmp(pol, "on-failure"))
			d->restart = RESTART_ON_FAILURE;
		else if (!strcmp(pol, "never"))
			d->restart = RESTART_NEVER;
		else
			return fail(c, "restart.policy", "\"%s\" is not one of always|on-failure|never", pol);
		if (d->backoff_initial_ms > d->backoff_max_ms)
			return fail(c, "restart.backoff_initial_ms", "%u is above restart.backoff_max_ms (%u)",
				    d->backoff_initial_ms, d->backoff_max_ms);
	}
	return 0;
}

/* image: a reference checked by imageref_parse; image_pull_policy: when it is pulled. */
static int parse_image(struct pctx *c, const cJSON *o, struct deploy_spec *d)
{
	int rc;
	if ((rc = get_str(c, o, "image", "", d->image, sizeof(d->image), true)))
		return rc;
	struct imageref ref;
	char why[128];
	if (imageref_parse(d->image, &ref, why, sizeof(why)))
		return fail(c, "image", "\"%.64s\": %s", d->image, why);
	char pull[16] = "if-not-present";
	if ((rc = get_str(c, o, "image_pull_policy", "", pull, sizeof(pull), false)))
		return rc;
	if (!strcmp(pull, "if-not-present"))
		d->pull_policy = PULL_IF_NOT_PRESENT;
	else if (!strcmp(pull, "always"))
		d->pull_policy = PULL_ALWAYS;
	else if (!strcmp(pull, "never"))
		d->pull_policy = PULL_NEVER;
	else
		return fail(c, "image_pull_policy", "\"%s\" is not one of always|if-not-present|never", pull);
	return 0;
}

/* placement: {"scope": "node"|"site", "replicas": N, "spread": bool} (docs/site.md). */
static int parse_placement(struct pctx *c, const cJSON *o, struct deploy_spec *d)
{
	static const char *const plkeys[] = { "scope", "replicas", "spread", NULL };
	const cJSON *pl;
	int rc;
	if ((rc = get_obj(c, o, "placement", "", &pl)) || !pl)
		return rc;
	char scope[8] = "node";
	if ((rc = check_keys(c, pl, "placement", plkeys)) ||
	    (rc = get_str(c, pl, "scope", "placement", scope, sizeof(scope), false)))
		return rc;
	if (!strcmp(scope, "site"))
		d->scope = DEPLOY_SCOPE_SITE;
	else if (strcmp(scope, "node"))
		return fail(c, "placement.scope", "\"%s\" is not one of node|site", scope);
	const cJSON *sp = cJSON_GetObjectItemCaseSensitive(pl, "spread");
	if (sp && !cJSON_IsBool(sp))
		return fail(c, "placement.spread", "expected a boolean, got %s", jsonutil_type_name(sp));
	d->spread = sp && cJSON_IsTrue(sp);
	d->site_replicas = d->replicas;
	if ((rc = get_u32(c, pl, "replicas", "placement", 0, DEPLOY_MAX_REPLICAS - 1, &d->site_replicas)))
		return rc;
	if (d->scope == DEPLOY_SCOPE_NODE && (sp || cJSON_GetObjectItemCaseSensitive(pl, "replicas")))
		return fail(c, "placement.scope", "replicas and spread need scope \"site\"");
	return 0;
}

static int parse_deployment(struct pctx *c, const cJSON *o, unsigned idx, struct deploy_spec *d)
{
	static const char *const keys[] = { "name", "image", "cmd", "env", "replicas", "resources", "sla",
					    "inference", "liveness", "readiness", "restart", "startup_ms",
					    "image_pull_policy", "placement", NULL };
	char where[32];
	const cJSON *v;
	int rc;

	memset(d, 0, sizeof(*d));
	snprintf(where, sizeof(where), "deployments[%u]", idx);
	if (!cJSON_IsObject(o))
		return fail(c, where, "expected an object, got %s", jsonutil_type_name(o));
	v = cJSON_GetObjectItemCaseSensitive(o, "name");
	char nf[48];
	snprintf(nf, sizeof(nf), "%s.name", where);
	if (!v)
		return fail(c, nf, "required field is missing");
	if (!cJSON_IsString(v))
		return fail(c, nf, "expected a string, got %s", jsonutil_type_name(v));
	if (!valid_name(v->valuestring))
		return fail(c, nf, "\"%.48s\" is not a valid name (1-%d of a-z 0-9 -, not starting or ending with -)",
			    v->valuestring, DEPLOY_NAME_MAX - 1);
	strcpy(d->name, v->valuestring);
	c->dep = d->name;

	if ((rc = check_keys(c, o, "", keys)))
		return rc;
	if ((rc = parse_image(c, o, d)))
		return rc;
	if ((v = cJSON_GetObjectItemCaseSensitive(o, "cmd")) &&
	    (rc = get_argv(c, v, "cmd", &d->cmd[0][0], sizeof(d->cmd[0]), DEPLOY_MAX_ARGS)))
		return rc;
	if ((v = cJSON_GetObjectItemCaseSensitive(o, "env")) && (rc = parse_env(c, v, d)))
		return rc;

	if ((rc = parse_replicas(c, o, d)) || (rc = parse_resources(c, o, d)) || (rc = parse_sla(c, o, d)) ||
	    (rc = parse_inference(c, o, d)) || (rc = parse_probe(c, o, "liveness", &d->liveness, true)) ||
	    (rc = parse_probe(c, o, "readiness", &d->readiness, false)) || (rc = parse_restart(c, o, d)))
		return rc;

	if ((rc = get_u32(c, o, "startup_ms", "", 0, 3600000, &d->startup_ms)))
		return rc;

	if ((rc = parse_placement(c, o, d)))
		return rc;
	d->spec_hash = deploy_spec_hash(d);
	return 0;
}

int deploy_parse(const char *text, size_t len, struct deploy_set *set, struct deploy_error *err)
{
	static const char *const keys[] = { "version", "deployments", "groups", NULL }; /* groups: console/command.c */
	struct pctx c = { .err = err, .dep = "" };
	int rc = -EINVAL;

	memset(err, 0, sizeof(*err));
	/* Only the specs parsed are written: a set is 16 specs of 9 KiB, and
	 * pages of the ones not configured stay untouched. */
	set->version = 0;
	set->n = 0;
	size_t bad_off;
	const char *why;
	if (jsonutil_check_strings(text, len, &bad_off, &why)) {
		return fail(&c, "", "%s at byte %zu: not allowed in any string", why, bad_off);
	}
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!root) {
		size_t off = end ? (size_t)(end - text) : 0;
		unsigned line = 1;
		for (size_t i = 0; i < off && i < len; i++)
			line += text[i] == '\n';
		return fail(&c, "", "not valid JSON (syntax error at line %u, byte %zu)", line, off);
	}
	if (!cJSON_IsObject(root)) {
		rc = fail(&c, "", "the top level must be a JSON object, got %s", jsonutil_type_name(root));
		goto out;
	}
	if ((rc = check_keys(&c, root, "", keys)))
		goto out;
	if (!cJSON_GetObjectItemCaseSensitive(root, "version")) {
		rc = fail(&c, "version", "required field is missing");
		goto out;
	}
	if ((rc = get_u64(&c, root, "version", "", 0, 9007199254740991.0, &set->version)))
		goto out;
	const cJSON *deps = cJSON_GetObjectItemCaseSensitive(root, "deployments");
	if (!deps) {
		rc = fail(&c, "deployments", "required field is missing");
		goto out;
	}
	if (!cJSON_IsArray(deps)) {
		rc = fail(&c, "deployments", "expected an array, got %s", jsonutil_type_name(deps));
		goto out;
	}
	if (cJSON_GetArraySize(deps) > DEPLOY_MAX) {
		rc = fail(&c, "deployments", "%d deployments, at most %d", cJSON_GetArraySize(deps), DEPLOY_MAX);
		goto out;
	}
	for (const cJSON *o = deps->child; o; o = o->next) {
		struct deploy_spec *d = &set->d[set->n];
		c.dep = "";
		if ((rc = parse_deployment(&c, o, set->n, d)))
			goto out;
		for (unsigned i = 0; i < set->n; i++) {
			const struct deploy_spec *p = &set->d[i];
			if (!strcmp(p->name, d->name)) {
				rc = fail(&c, "name", "duplicate deployment name");
				goto out;
			}
			/* Each deployment owns ports port .. port + replicas.max. */
			if (d->port_base <= p->port_base + p->replicas_max && p->port_base <= d->port_base + d->replicas_max) {
				rc = fail(&c, "inference.port", "ports %u-%u overlap deployment '%s' (%u-%u)",
					  d->port_base, d->port_base + d->replicas_max, p->name, p->port_base,
					  p->port_base + p->replicas_max);
				goto out;
			}
		}
		set->n++;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

int deploy_load(const char *path, struct deploy_set *set, struct deploy_error *err)
{
	memset(err, 0, sizeof(*err));
	char *buf;
	size_t len;
	int rc = textfile_read(path, CONFIG_CONFIG_MAX_BYTES, &buf, &len);
	if (rc) {
		textfile_describe(rc, path, len, CONFIG_CONFIG_MAX_BYTES, err->message, sizeof(err->message));
		return rc;
	}
	rc = deploy_parse(buf, len, set, err);
	free(buf);
	return rc;
}

void deploy_error_format(const struct deploy_error *err, char *buf, size_t len)
{
	if (err->deployment[0] && err->field[0])
		snprintf(buf, len, "deployment '%s': %s: %s", err->deployment, err->field, err->message);
	else if (err->deployment[0])
		snprintf(buf, len, "deployment '%s': %s", err->deployment, err->message);
	else if (err->field[0])
		snprintf(buf, len, "%s: %s", err->field, err->message);
	else
		snprintf(buf, len, "%s", err->message);
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) { return fnv(h, s, strlen(s) + 1); }

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
	unsigned char le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)(v >> (8 * i));
	return fnv(h, le, sizeof(le));
}

uint64_t deploy_spec_hash(const struct deploy_spec *d)
{
	uint64_t h = FNV_OFFSET;
	h = fnv_str(h, d->name);
	h = fnv_str(h, d->image);
	for (unsigned i = 0; i < DEPLOY_MAX_ARGS && d->cmd[i][0]; i++)
		h = fnv_str(h, d->cmd[i]);
	h = fnv(h, "\x01", 1);
	for (unsigned i = 0; i < DEPLOY_MAX_ENV && d->env[i][0]; i++)
		h = fnv_str(h, d->env[i]);
	h = fnv(h, "\x01", 1);
	h = fnv_u64(h, d->cpu_nano);
	h = fnv_u64(h, d->mem_bytes);
	h = fnv_u64(h, d->port_base);
	h = fnv_u64(h, d->concurrency);
	return h;
}

void deploy_set_copy(struct deploy_set *dst, const struct deploy_set *src)
{
	dst->version = src->version;
	dst->n = src->n;
	memcpy(dst->d, src->d, src->n * sizeof(src->d[0]));
}

const struct deploy_spec *deploy_find(const struct deploy_set *set, const char *name)
{
	for (unsigned i = 0; i < set->n; i++)
		if (!strcmp(set->d[i].name, name))
			return &set->d[i];
	return NULL;
}

const char *deploy_restart_name(enum restart_policy p)
{
	switch (p) {
	case RESTART_ALWAYS: return "always";
	case RESTART_ON_FAILURE: return "on-failure";
	case RESTART_NEVER: return "never";
	default: return "?";
	}
}

const char *deploy_pull_policy_name(enum pull_policy p)
{
	switch (p) {
	case PULL_IF_NOT_PRESENT: return "if-not-present";
	case PULL_ALWAYS: return "always";
	case PULL_NEVER: return "never";
	default: return "?";
	}
}

const char *deploy_probe_kind_name(enum probe_kind k)
{
	switch (k) {
	case PROBE_NONE: return "none";
	case PROBE_HTTP: return "http";
	case PROBE_TCP: return "tcp";
	case PROBE_EXEC: return "exec";
	default: return "?";
	}
}

static cJSON *probe_json(const struct probe_spec *p)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", deploy_probe_kind_name(p->kind));
	if (p->kind == PROBE_HTTP)
		cJSON_AddStringToObject(o, "path", p->path);
	if (p->kind == PROBE_EXEC) {
		cJSON *a = cJSON_AddArrayToObject(o, "command");
		for (unsigned i = 0; a && i < DEPLOY_MAX_ARGS && p->exec[i][0]; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(p->exec[i]));
	}
	cJSON_AddNumberToObject(o, "initial_delay_ms", p->initial_delay_ms);
	cJSON_AddNumberToObject(o, "period_ms", p->period_ms);
	cJSON_AddNumberToObject(o, "timeout_ms", p->timeout_ms);
	cJSON_AddNumberToObject(o, "success_threshold", p->success_threshold);
	cJSON_AddNumberToObject(o, "failure_threshold", p->failure_threshold);
	return o;
}

int deploy_spec_to_json(const struct deploy_spec *d, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	cJSON_AddStringToObject(o, "name", d->name);
	cJSON_AddStringToObject(o, "image", d->image);
	if (d->pull_policy != PULL_IF_NOT_PRESENT)
		cJSON_AddStringToObject(o, "image_pull_policy", deploy_pull_policy_name(d->pull_policy));
	if (d->cmd[0][0]) {
		cJSON *a = cJSON_AddArrayToObject(o, "cmd");
		for (unsigned i = 0; a && i < DEPLOY_MAX_ARGS && d->cmd[i][0]; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(d->cmd[i]));
	}
	cJSON *env = cJSON_AddObjectToObject(o, "env");
	for (unsigned i = 0; env && i < DEPLOY_MAX_ENV && d->env[i][0]; i++) {
		char key[160];
		snprintf(key, sizeof(key), "%s", d->env[i]);
		char *eq = strchr(key, '=');
		if (!eq)
			continue;
		*eq = '\0';
		cJSON_AddStringToObject(env, key, eq + 1);
	}
	cJSON *r = cJSON_AddObjectToObject(o, "replicas");
	cJSON_AddNumberToObject(r, "min", d->replicas_min);
	cJSON_AddNumberToObject(r, "max", d->replicas_max);
	cJSON_AddNumberToObject(r, "desired", d->replicas);
	if (d->cpu_nano || d->mem_bytes) {
		cJSON *res = cJSON_AddObjectToObject(o, "resources");
		if (d->cpu_nano)
			cJSON_AddNumberToObject(res, "cpu", (double)d->cpu_nano / 1e9);
		if (d->mem_bytes)
			cJSON_AddNumberToObject(res, "memory", (double)d->mem_bytes);
	}
	cJSON *sla = cJSON_AddObjectToObject(o, "sla");
	cJSON_AddStringToObject(sla, "class", sla_class_name(d->sla_class));
	cJSON_AddNumberToObject(sla, "deadline_ms", d->deadline_ms);
	cJSON *inf = cJSON_AddObjectToObject(o, "inference");
	cJSON_AddNumberToObject(inf, "port", d->port_base);
	cJSON_AddNumberToObject(inf, "concurrency", d->concurrency);
	cJSON_AddItemToObject(o, "liveness", probe_json(&d->liveness));
	cJSON_AddItemToObject(o, "readiness", probe_json(&d->readiness));
	cJSON *rs = cJSON_AddObjectToObject(o, "restart");
	cJSON_AddStringToObject(rs, "policy", deploy_restart_name(d->restart));
	cJSON_AddNumberToObject(rs, "backoff_initial_ms", d->backoff_initial_ms);
	cJSON_AddNumberToObject(rs, "backoff_max_ms", d->backoff_max_ms);
	cJSON_AddNumberToObject(rs, "reset_after_ms", d->backoff_reset_ms);
	cJSON_AddNumberToObject(o, "startup_ms", d->startup_ms);
	if (d->scope == DEPLOY_SCOPE_SITE) {
		cJSON *pl = cJSON_AddObjectToObject(o, "placement");
		cJSON_AddStringToObject(pl, "scope", "site");
		cJSON_AddNumberToObject(pl, "replicas", d->site_replicas);
		cJSON_AddBoolToObject(pl, "spread", d->spread);
	}

	int rc = -ENOMEM;
	if (len > 0)
		buf[0] = '\0';
	char *s = cJSON_PrintUnformatted(o);
	if (s) {
		size_t n = strlen(s);
		if (len > 0)
			snprintf(buf, len, "%s", s);
		rc = n < len ? (int)n : -ENOSPC;
		free(s);
	}
	cJSON_Delete(o);
	return rc;
}
