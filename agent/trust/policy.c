/* agent/trust/policy.c - parses the admission policy (refusing with the offending path) and evaluates inputs against it (pure). */
#include "agent/trust/policy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "agent/base/jsonutil.h"
#include "agent/model/sla.h"

static const char *const rule_names[POLICY_NRULES] = {
	[POLICY_REGISTRIES] = "registries", [POLICY_DIGEST] = "digest",     [POLICY_RESOURCES] = "resources",
	[POLICY_REPLICAS] = "replicas",     [POLICY_FORBIDDEN] = "forbidden", [POLICY_ROLES] = "roles",
};
static const char *const mode_names[] = { "deny", "repair", "audit" };
static const char *const setting_names[] = { "host_network", "privileged", "host_mounts", "devices", "host_pid" };
#define N_SETTINGS (sizeof(setting_names) / sizeof(setting_names[0]))

const char *policy_rule_name(enum policy_rule r) { return (unsigned)r < POLICY_NRULES ? rule_names[r] : "?"; }
const char *policy_mode_name(enum policy_mode m) { return (unsigned)m < 3 ? mode_names[m] : "?"; }

/* --- parsing ------------------------------------------------------------------ */

#define BAD(path, ...) trust_err_set(e, -EINVAL, "bad_policy", path, __VA_ARGS__)

static int check_keys(const cJSON *o, const char *path, const char *const *allowed, size_t n, struct trust_err *e)
{
	for (const cJSON *c = o->child; c; c = c->next) {
		char sub[96];
		snprintf(sub, sizeof(sub), "%s%s%.40s", path, path[0] ? "." : "", c->string);
		if (jsonutil_key_repeated(o, c))
			return BAD(sub, "%s appears twice", sub);
		bool ok = false;
		for (size_t i = 0; i < n && !ok; i++)
			ok = strcmp(c->string, allowed[i]) == 0;
		if (!ok) {
			char list[160] = "";
			for (size_t i = 0; i < n; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "|" : "", allowed[i]);
			return BAD(sub, "%s is not a known %s (expected %s)", sub,
				   strcmp(path, "rules") == 0 ? "rule" : "field", list);
		}
	}
	return 0;
}

static int want_object(const cJSON *v, const char *path, struct trust_err *e)
{
	return cJSON_IsObject(v) ? 0 : BAD(path, "%s must be an object, got %s", path, jsonutil_type_name(v));
}

static int get_mode(const cJSON *rule, const char *path, enum policy_mode *out, struct trust_err *e)
{
	char sub[96];
	snprintf(sub, sizeof(sub), "%s.mode", path);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(rule, "mode");
	*out = POLICY_MODE_DENY;
	if (!m)
		return 0;
	if (!cJSON_IsString(m))
		return BAD(sub, "%s must be a string, got %s", sub, jsonutil_type_name(m));
	for (int i = 0; i < 3; i++)
		if (strcmp(m->valuestring, mode_names[i]) == 0) {
			*out = (enum policy_mode)i;
			return 0;
		}
	return BAD(sub, "%s \"%.32s\" is not one of deny|repair|audit", sub, m->valuestring);
}

/* A positive number of cores -> billionths. */
static int get_cpu(const cJSON *o, const char *path, uint64_t *out, struct trust_err *e)
{
	char sub[96];
	snprintf(sub, sizeof(sub), "%s.cpu", path);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "cpu");
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v))
		return BAD(sub, "%s must be a number of cores, got %s", sub, jsonutil_type_name(v));
	if (!(v->valuedouble >= 0.001 && v->valuedouble <= 1024))
		return BAD(sub, "%s is %g, expected 0.001..1024 cores", sub, v->valuedouble);
	*out = (uint64_t)llround(v->valuedouble * 1e9);
	return 0;
}

static int get_uint(const cJSON *o, const char *key, const char *path, uint64_t lo, uint64_t hi, uint64_t *out,
		    struct trust_err *e)
{
	char sub[96];
	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return BAD(sub, "%s must be an integer, got %s", sub, cJSON_IsNumber(v) ? "a fraction" : jsonutil_type_name(v));
	if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
		return BAD(sub, "%s is %.0f, expected %llu..%llu", sub, v->valuedouble, (unsigned long long)lo,
			   (unsigned long long)hi);
	*out = (uint64_t)v->valuedouble;
	return 0;
}

static int get_limits(const cJSON *o, const char *path, uint64_t *cpu, uint64_t *mem, struct trust_err *e)
{
	static const char *const keys[] = { "cpu", "memory_mb" };
	int rc;
	if ((rc = want_object(o, path, e)) || (rc = check_keys(o, path, keys, 2, e)))
		return rc;
	uint64_t mb = 0;
	if ((rc = get_cpu(o, path, cpu, e)) || (rc = get_uint(o, "memory_mb", path, 1, 1 << 24, &mb, e)))
		return rc;
	*mem = mb << 20;
	if (!*cpu && !*mem)
		return BAD(path, "%s caps nothing (give cpu and/or memory_mb): the rule could never match", path);
	return 0;
}

/* A non-empty array of distinct strings (each 1..POLICY_NAME_MAX-1 of the
 * characters in charset) into out. */
static int get_names(const cJSON *v, const char *path, const char *charset, char (*out)[POLICY_NAME_MAX],
		     unsigned *n, struct trust_err *e)
{
	if (!cJSON_IsArray(v))
		return BAD(path, "%s must be an array of strings, got %s", path, jsonutil_type_name(v));
	int count = cJSON_GetArraySize(v);
	if (count > POLICY_LIST_MAX)
		return BAD(path, "%s has %d entries, at most %d", path, count, POLICY_LIST_MAX);
	int i = 0;
	*n = 0;
	for (const cJSON *c = v->child; c; c = c->next, i++) {
		char sub[96];
		snprintf(sub, sizeof(sub), "%s[%d]", path, i);
		if (!cJSON_IsString(c))
			return BAD(sub, "%s must be a string, got %s", sub, jsonutil_type_name(c));
		size_t l = strlen(c->valuestring);
		if (l == 0 || l >= POLICY_NAME_MAX || strspn(c->valuestring, charset) != l)
			return BAD(sub, "%s must be 1..%d characters of [%s]", sub, POLICY_NAME_MAX - 1, charset);
		for (unsigned j = 0; j < *n; j++)
			if (strcmp(out[j], c->valuestring) == 0)
				return BAD(sub, "%s \"%s\" appears twice", sub, c->valuestring);
		memcpy(out[*n], c->valuestring, l + 1);
		(*n)++;
	}
	return 0;
}

#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:*"
#define ENV_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
#define VERB_CHARS "abcdefghijklmnopqrstuvwxyz_*"

static int parse_registries(const cJSON *r, struct policy *p, struct trust_err *e)
{
	static const char *const keys[] = { "mode", "allow" };
	const char *path = "rules.registries";
	int rc;
	if ((rc = check_keys(r, path, keys, 2, e)))
		return rc;
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, "allow");
	if (!a)
		return BAD("rules.registries.allow", "rules.registries.allow is missing");
	if ((rc = get_names(a, "rules.registries.allow", HOST_CHARS, p->registries, &p->n_registries, e)))
		return rc;
	for (unsigned i = 0; i < p->n_registries; i++) {
		const char *s = p->registries[i];
		const char *star = strchr(s, '*');
		if (star && (star != s || s[1] != '.' || strchr(s + 1, '*') || !s[2])) {
			char sub[64];
			snprintf(sub, sizeof(sub), "rules.registries.allow[%u]", i);
			return BAD(sub, "%s: '*' only as a leading \"*.\" (\"*.example.com\")", sub);
		}
	}
	return 0;
}

static int parse_digest(const cJSON *r, struct trust_err *e)
{
	static const char *const keys[] = { "mode", "required" };
	int rc;
	if ((rc = check_keys(r, "rules.digest", keys, 2, e)))
		return rc;
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(r, "required");
	if (!q)
		return BAD("rules.digest.required", "rules.digest.required is missing");
	if (!cJSON_IsBool(q))
		return BAD("rules.digest.required", "rules.digest.required must be a boolean, got %s", jsonutil_type_name(q));
	if (cJSON_IsFalse(q))
		return BAD("rules.digest.required", "rules.digest.required is false: the rule could never match (leave it out)");
	return 0;
}

static int parse_resources(const cJSON *r, struct policy *p, struct trust_err *e)
{
	static const char *const keys[] = { "mode", "per_deployment", "per_class" };
	int rc;
	if ((rc = check_keys(r, "rules.resources", keys, 3, e)))
		return rc;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "per_deployment");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "per_class");
	if (!d && !c)
		return BAD("rules.resources", "rules.resources has neither per_deployment nor per_class: it could never match");
	if (d && (rc = get_limits(d, "rules.resources.per_deployment", &p->dep_cpu_nano, &p->dep_mem_bytes, e)))
		return rc;
	if (c) {
		const char *path = "rules.resources.per_class";
		if ((rc = want_object(c, path, e)))
			return rc;
		if (!c->child)
			return BAD(path, "%s names no class: it could never match", path);
		const char *classes[SLA_NCLASSES];
		for (int i = 0; i < SLA_NCLASSES; i++)
			classes[i] = sla_class_name((enum sla_class)i);
		if ((rc = check_keys(c, path, classes, SLA_NCLASSES, e)))
			return rc;
		for (int i = 0; i < SLA_NCLASSES; i++) {
			const cJSON *l = cJSON_GetObjectItemCaseSensitive(c, classes[i]);
			char sub[96];
			snprintf(sub, sizeof(sub), "%s.%s", path, classes[i]);
			if (l && (rc = get_limits(l, sub, &p->class_cpu_nano[i], &p->class_mem_bytes[i], e)))
				return rc;
		}
	}
	return 0;
}

static int parse_replicas(const cJSON *r, struct policy *p, struct trust_err *e)
{
	static const char *const keys[] = { "mode", "max" };
	int rc;
	if ((rc = check_keys(r, "rules.replicas", keys, 2, e)))
		return rc;
	if (!cJSON_GetObjectItemCaseSensitive(r, "max"))
		return BAD("rules.replicas.max", "rules.replicas.max is missing");
	uint64_t v = 0;
	if ((rc = get_uint(r, "max", "rules.replicas", 0, DEPLOY_MAX_REPLICAS, &v, e)))
		return rc;
	p->replicas_max = (uint32_t)v;
	return 0;
}

static int parse_forbidden(const cJSON *r, struct policy *p, struct trust_err *e)
{
	static const char *const keys[] = { "mode", "settings", "env" };
	int rc;
	if ((rc = check_keys(r, "rules.forbidden", keys, 3, e)))
		return rc;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "settings");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "env");
	if (s) {
		char names[POLICY_LIST_MAX][POLICY_NAME_MAX];
		unsigned n = 0;
		if ((rc = get_names(s, "rules.forbidden.settings", VERB_CHARS, names, &n, e)))
			return rc;
		for (unsigned i = 0; i < n; i++) {
			size_t j = 0;
			while (j < N_SETTINGS && strcmp(names[i], setting_names[j]))
				j++;
			if (j == N_SETTINGS) {
				char sub[64];
				snprintf(sub, sizeof(sub), "rules.forbidden.settings[%u]", i);
				return BAD(sub, "%s \"%s\" is not one of host_network|privileged|host_mounts|devices|host_pid",
					   sub, names[i]);
			}
			p->forbidden_settings |= 1u << j;
		}
	}
	if (v && (rc = get_names(v, "rules.forbidden.env", ENV_CHARS, p->env, &p->n_env, e)))
		return rc;
	if (!p->forbidden_settings && !p->n_env)
		return BAD("rules.forbidden", "rules.forbidden forbids nothing: it could never match");
	return 0;
}

static int parse_verbs(const cJSON *v, const char *path, struct policy *p, uint32_t *out, struct trust_err *e)
{
	char names[POLICY_LIST_MAX][POLICY_NAME_MAX];
	unsigned n = 0;
	int rc = get_names(v, path, VERB_CHARS, names, &n, e);
	if (rc)
		return rc;
	*out = 0;
	for (unsigned i = 0; i < n; i++) {
		if (strcmp(names[i], "*") == 0) {
			*out = UINT32_MAX;
			continue;
		}
		size_t j = 0;
		while (j < p->n_verbs && strcmp(names[i], p->verb_names[j]))
			j++;
		if (j == p->n_verbs) {
			char sub[96];
			snprintf(sub, sizeof(sub), "%s[%u]", path, i);
			return BAD(sub, "%s \"%s\" is not a verb this agent knows", sub, names[i]);
		}
		*out |= 1u << j;
	}
	return 0;
}

static int parse_roles(const cJSON *r, struct policy *p, struct trust_err *e)
{
	static const char *const keys[] = { "mode", "keys", "default" };
	int rc;
	if ((rc = check_keys(r, "rules.roles", keys, 3, e)))
		return rc;
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(r, "keys");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "default");
	if (!k && !d)
		return BAD("rules.roles", "rules.roles has neither keys nor default: it could never match");
	if (k) {
		if ((rc = want_object(k, "rules.roles.keys", e)))
			return rc;
		for (const cJSON *c = k->child; c; c = c->next) {
			char sub[96];
			snprintf(sub, sizeof(sub), "rules.roles.keys.%.40s", c->string);
			if (jsonutil_key_repeated(k, c))
				return BAD(sub, "%s appears twice", sub);
			if (p->n_roles == POLICY_LIST_MAX)
				return BAD("rules.roles.keys", "rules.roles.keys names more than %d keys", POLICY_LIST_MAX);
			size_t l = strlen(c->string);
			if (!l || l > ENVELOPE_KEY_ID_MAX ||
			    strspn(c->string, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") != l)
				return BAD(sub, "%s: a key id is 1..%d characters of A-Z a-z 0-9 - _ . :", sub,
					   ENVELOPE_KEY_ID_MAX);
			memcpy(p->roles[p->n_roles].key, c->string, l + 1);
			if ((rc = parse_verbs(c, sub, p, &p->roles[p->n_roles].verbs, e)))
				return rc;
			p->n_roles++;
		}
	}
	if (d) {
		p->has_default_role = true;
		if ((rc = parse_verbs(d, "rules.roles.default", p, &p->default_verbs, e)))
			return rc;
	}
	return 0;
}

int policy_parse(const char *text, size_t len, const char *const *verb_names, size_t n_verbs, struct policy *out,
		 struct trust_err *e)
{
	if (n_verbs > POLICY_VERBS_MAX)
		return BAD("", "too many verbs");
	if (len > CONFIG_COMMAND_MAX_BYTES)
		return BAD("", "the policy is %zu bytes, at most %d", len, CONFIG_COMMAND_MAX_BYTES);
	cJSON *root = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return BAD("", "the policy is not a JSON object");
	}
	struct policy p;
	memset(&p, 0, sizeof(p)); /* not "= {0}" from a static: GCC keeps that as kilobytes of read-only zeros */
	p.verb_names = verb_names;
	p.n_verbs = n_verbs;
	static const char *const top[] = { "schema", "version", "rules", "auth" };
	int rc = check_keys(root, "", top, 4, e);
	if (rc)
		goto out;
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if (schema && !(cJSON_IsNumber(schema) && schema->valuedouble == 1)) {
		rc = BAD("schema", "schema must be 1");
		goto out;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!v) {
		rc = BAD("version", "version is missing");
		goto out;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 9007199254740992.0 ||
	    v->valuedouble != floor(v->valuedouble)) {
		rc = BAD("version", "version must be an integer >= 1");
		goto out;
	}
	p.version = (uint64_t)v->valuedouble;
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(root, "rules");
	if (!rules) {
		rc = BAD("rules", "rules is missing");
		goto out;
	}
	if ((rc = want_object(rules, "rules", e)) || (rc = check_keys(rules, "rules", rule_names, POLICY_NRULES, e)))
		goto out;
	for (int i = 0; i < POLICY_NRULES && !rc; i++) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(rules, rule_names[i]);
		if (!r)
			continue;
		char path[48];
		snprintf(path, sizeof(path), "rules.%s", rule_names[i]);
		if ((rc = want_object(r, path, e)) || (rc = get_mode(r, path, &p.mode[i], e)))
			break;
		p.has[i] = true;
		switch ((enum policy_rule)i) {
		case POLICY_REGISTRIES: rc = parse_registries(r, &p, e); break;
		case POLICY_DIGEST: rc = parse_digest(r, e); break;
		case POLICY_RESOURCES: rc = parse_resources(r, &p, e); break;
		case POLICY_REPLICAS: rc = parse_replicas(r, &p, e); break;
		case POLICY_FORBIDDEN: rc = parse_forbidden(r, &p, e); break;
		case POLICY_ROLES: rc = parse_roles(r, &p, e); break;
		case POLICY_NRULES: break;
		}
	}
	if (!rc)
		*out = p;
out:
	cJSON_Delete(root);
	return rc;
}

/* --- evaluation ------------------------------------------------------------------ */

void policy_image_registry(const char *image, char *buf, size_t len)
{
	const char *slash = strchr(image, '/');
	size_t n = slash ? (size_t)(slash - image) : 0;
	bool named = slash && (memchr(image, '.', n) || memchr(image, ':', n) || (n == 9 && !strncmp(image, "localhost", 9)));
	if (!named)
		snprintf(buf, len, "docker.io");
	else
		snprintf(buf, len, "%.*s", (int)n, image);
}

bool policy_image_pinned(const char *image)
{
	const char *at = strstr(image, "@sha256:");
	if (!at)
		return false;
	const char *h = at + 8;
	return strlen(h) == 64 && strspn(h, "0123456789abcdef") == 64;
}

static bool registry_allowed(const struct policy *p, const char *reg)
{
	for (unsigned i = 0; i < p->n_registries; i++) {
		const char *a = p->registries[i];
		if (a[0] == '*') {
			size_t la = strlen(a + 1), lr = strlen(reg);
			if (lr > la && strcmp(reg + lr - la, a + 1) == 0)
				return true;
		} else if (strcmp(a, reg) == 0) {
			return true;
		}
	}
	return false;
}

static struct policy_match *add(struct policy_decision *d, const struct policy *p, enum policy_rule r)
{
	struct policy_match *m = &d->m[d->n++];
	m->rule = r;
	m->mode = p->mode[r];
	m->violated = false;
	m->reason[0] = '\0';
	return m;
}

static void violate(struct policy_match *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violate(struct policy_match *m, const char *fmt, ...)
{
	va_list ap;
	m->violated = true;
	va_start(ap, fmt);
	vsnprintf(m->reason, sizeof(m->reason), fmt, ap);
	va_end(ap);
}

static void cap_check(struct policy_match *m, const char *what, const char *unit_name, uint64_t have, uint64_t cap,
		      double scale, const char *scope)
{
	if (!cap || m->violated)
		return;
	if (have == 0)
		violate(m, "%s is unlimited, the %s cap is %g %s", what, scope, (double)cap / scale, unit_name);
	else if (have > cap)
		violate(m, "%s %g %s is above the %s cap %g %s", what, (double)have / scale, unit_name, scope,
			(double)cap / scale, unit_name);
}

static int verb_index(const struct policy *p, const char *verb)
{
	for (size_t i = 0; i < p->n_verbs; i++)
		if (strcmp(p->verb_names[i], verb) == 0)
			return (int)i;
	return -1;
}

/* The rules about a deployment's spec (a deploy, a desired state, a drift check). */
static void evaluate_deployment(const struct policy *p, const struct policy_input *in, struct policy_decision *d)
{
	const struct policy_deployment *dep = in->dep;
	if (p->has[POLICY_REGISTRIES]) {
		struct policy_match *m = add(d, p, POLICY_REGISTRIES);
		char reg[128];
		policy_image_registry(dep->image, reg, sizeof(reg));
		if (!registry_allowed(p, reg))
			violate(m, "image %.80s comes from registry %.40s, not in rules.registries.allow", dep->image,
				reg);
	}
	if (p->has[POLICY_DIGEST]) {
		struct policy_match *m = add(d, p, POLICY_DIGEST);
		if (!policy_image_pinned(dep->image))
			violate(m, "image %.100s is not pinned by digest (name@sha256:...)", dep->image);
	}
	if (p->has[POLICY_RESOURCES]) {
		struct policy_match *m = add(d, p, POLICY_RESOURCES);
		const char *cls = sla_class_name(dep->sla_class);
		char scope[48];
		cap_check(m, "cpu", "cores", dep->cpu_nano, p->dep_cpu_nano, 1e9, "per-deployment");
		cap_check(m, "memory", "MB", dep->mem_bytes, p->dep_mem_bytes, 1048576.0, "per-deployment");
		if ((unsigned)dep->sla_class < SLA_NCLASSES) {
			snprintf(scope, sizeof(scope), "class %s", cls);
			cap_check(m, "cpu", "cores", dep->cpu_nano, p->class_cpu_nano[dep->sla_class], 1e9, scope);
			cap_check(m, "memory", "MB", dep->mem_bytes, p->class_mem_bytes[dep->sla_class], 1048576.0,
				  scope);
		}
	}
	if (p->has[POLICY_REPLICAS] && in->replicas < 0) {
		struct policy_match *m = add(d, p, POLICY_REPLICAS);
		if (dep->replicas_max > p->replicas_max)
			violate(m, "replicas.max %u is above the cap %u", dep->replicas_max, p->replicas_max);
	}
	if (p->has[POLICY_FORBIDDEN]) {
		struct policy_match *m = add(d, p, POLICY_FORBIDDEN);
		unsigned bad = dep->settings & p->forbidden_settings;
		for (size_t j = 0; j < N_SETTINGS && bad; j++)
			if (bad & (1u << j)) {
				violate(m, "setting %s is forbidden", setting_names[j]);
				bad = 0;
			}
		for (unsigned i = 0; i < dep->n_env && !m->violated; i++)
			for (unsigned j = 0; j < p->n_env; j++) {
				size_t l = strlen(p->env[j]);
				if (strncmp(dep->env[i], p->env[j], l) == 0 && dep->env[i][l] == '=') {
					violate(m, "environment variable %s is forbidden", p->env[j]);
					break;
				}
			}
	}
}

void policy_evaluate(const struct policy *p, const struct policy_input *in, struct policy_decision *d)
{
	memset(d, 0, sizeof(*d));
	d->allow = true;
	if (!p || !p->version)
		return;
	if (p->has[POLICY_ROLES] && in->verb && in->key_id) {
		struct policy_match *m = add(d, p, POLICY_ROLES);
		uint32_t verbs = 0;
		bool found = false;
		for (unsigned i = 0; i < p->n_roles && !found; i++)
			if (strcmp(p->roles[i].key, in->key_id) == 0) {
				found = true;
				verbs = p->roles[i].verbs;
			}
		if (!found)
			verbs = p->has_default_role ? p->default_verbs : 0;
		int vi = verb_index(p, in->verb);
		if (vi < 0 || !(verbs & (1u << vi)))
			violate(m, "key %s may not use verb %s%s", in->key_id, in->verb,
				found ? "" : " (key not in rules.roles.keys; default role applies)");
	}
	if (p->has[POLICY_REPLICAS] && in->replicas >= 0) {
		struct policy_match *m = add(d, p, POLICY_REPLICAS);
		if ((uint64_t)in->replicas > p->replicas_max)
			violate(m, "replicas %lld is above the cap %u", (long long)in->replicas, p->replicas_max);
	}
	if (in->dep)
		evaluate_deployment(p, in, d);
	for (unsigned i = 0; i < d->n; i++) {
		const struct policy_match *m = &d->m[i];
		if (!m->violated || m->mode == POLICY_MODE_AUDIT)
			continue;
		if (d->allow)
			snprintf(d->reason, sizeof(d->reason), "%s: %s", rule_names[m->rule], m->reason);
		d->allow = false;
		if (m->mode == POLICY_MODE_REPAIR)
			d->repair = true;
	}
}

/* --- decision log entries ------------------------------------------------------------ */

struct out {
	char *buf;
	size_t len, used;
	bool over;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
	if (o->over)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->used)
		o->over = true;
	else
		o->used += (size_t)n;
}

static void emit_str(struct out *o, const char *s)
{
	if (o->over)
		return;
	size_t n = jsonutil_quote(o->buf + o->used, o->len - o->used, s ? s : "");
	if (n >= o->len - o->used)
		o->over = true;
	else
		o->used += n;
}

int policy_decision_json(char *buf, size_t len, const char *decision_id, uint64_t policy_version,
			 const struct policy_input *in, const struct policy_decision *d)
{
	struct out o = { buf, len, 0, len == 0 };
	emit(&o, "{\"decision_id\":");
	emit_str(&o, decision_id);
	emit(&o, ",\"policy_version\":%llu,\"input\":{\"verb\":", (unsigned long long)policy_version);
	emit_str(&o, in->verb ? in->verb : "drift_check");
	if (in->key_id) {
		emit(&o, ",\"key\":");
		emit_str(&o, in->key_id);
	}
	if (in->deployment && in->deployment[0]) {
		emit(&o, ",\"deployment\":");
		emit_str(&o, in->deployment);
	}
	if (in->replicas >= 0)
		emit(&o, ",\"replicas\":%lld", (long long)in->replicas);
	if (in->dep) {
		emit(&o, ",\"spec\":{\"name\":");
		emit_str(&o, in->dep->name);
		emit(&o, ",\"image\":");
		emit_str(&o, in->dep->image);
		emit(&o, ",\"class\":\"%s\",\"cpu\":%g,\"memory_mb\":%llu,\"replicas_max\":%u}",
		     sla_class_name(in->dep->sla_class), (double)in->dep->cpu_nano / 1e9,
		     (unsigned long long)(in->dep->mem_bytes >> 20), in->dep->replicas_max);
	}
	if (!policy_version) {
		/* No policy installed: allowed, and logged so the audit trail has no gap. */
		emit(&o, "},\"result\":\"allow\",\"reason\":\"no policy installed\","
			 "\"rules\":[{\"rule\":\"no_policy\",\"violated\":false}]}");
		goto out;
	}
	emit(&o, "},\"result\":\"%s\",\"reason\":", d->allow ? "allow" : "deny");
	emit_str(&o, d->reason);
	emit(&o, ",\"rules\":[");
	for (unsigned i = 0; i < d->n; i++) {
		emit(&o, "%s{\"rule\":\"%s\",\"mode\":\"%s\",\"violated\":%s", i ? "," : "", rule_names[d->m[i].rule],
		     mode_names[d->m[i].mode], d->m[i].violated ? "true" : "false");
		if (d->m[i].violated) {
			emit(&o, ",\"reason\":");
			emit_str(&o, d->m[i].reason);
		}
		emit(&o, "}");
	}
	emit(&o, "]}");
out:
	if (o.over) {
		if (len)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return (int)o.used;
}
