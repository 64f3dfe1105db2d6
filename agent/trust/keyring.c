/* agent/trust/keyring.c - parses trusted key lists, judges key windows, rotates by a list signed with a trusted key (pure). */
#include "agent/trust/keyring.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "agent/base/jsonutil.h"

const struct keyring_key *keyring_find(const struct keyring *kr, const char *id)
{
	for (unsigned i = 0; i < kr->n; i++)
		if (strcmp(kr->k[i].id, id) == 0)
			return &kr->k[i];
	return NULL;
}

static int get_ms(const cJSON *o, const char *key, const char *prefix, int64_t *out, struct trust_err *e)
{
	char path[64];
	snprintf(path, sizeof(path), "%s.%s", prefix, key);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	*out = 0;
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 || v->valuedouble != floor(v->valuedouble))
		return trust_err_set(e, -EINVAL, "bad_keys", path, "%s must be milliseconds since the epoch, got %s", path,
				     jsonutil_type_name(v));
	*out = (int64_t)v->valuedouble;
	return 0;
}

static int parse_key(const cJSON *o, int i, struct keyring_key *k, struct trust_err *e)
{
	char path[48];
	snprintf(path, sizeof(path), "keys[%d]", i);
	if (!cJSON_IsObject(o))
		return trust_err_set(e, -EINVAL, "bad_keys", path, "%s must be an object, got %s", path,
				     jsonutil_type_name(o));
	for (const cJSON *c = o->child; c; c = c->next) {
		char sub[96];
		snprintf(sub, sizeof(sub), "%s.%.32s", path, c->string);
		if (jsonutil_key_repeated(o, c))
			return trust_err_set(e, -EINVAL, "bad_keys", sub, "%s appears twice", sub);
		if (strcmp(c->string, "id") && strcmp(c->string, "public") && strcmp(c->string, "not_before") &&
		    strcmp(c->string, "not_after"))
			return trust_err_set(e, -EINVAL, "bad_keys", sub,
					     "%s is not a known field (expected id|public|not_before|not_after)", sub);
	}
	char sub[64];
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
	snprintf(sub, sizeof(sub), "%s.id", path);
	if (!cJSON_IsString(id) || !id->valuestring[0] || strlen(id->valuestring) > ENVELOPE_KEY_ID_MAX ||
	    strspn(id->valuestring, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") !=
		    strlen(id->valuestring))
		return trust_err_set(e, -EINVAL, "bad_keys", sub, "%s must be 1..%d characters of A-Z a-z 0-9 - _ . :",
				     sub, ENVELOPE_KEY_ID_MAX);
	snprintf(k->id, sizeof(k->id), "%s", id->valuestring);
	const cJSON *pub = cJSON_GetObjectItemCaseSensitive(o, "public");
	snprintf(sub, sizeof(sub), "%s.public", path);
	if (!cJSON_IsString(pub) || strlen(pub->valuestring) != 44 ||
	    envelope_b64_decode(pub->valuestring, k->pub, sizeof(k->pub)) != SIG_PUBLIC_LEN)
		return trust_err_set(e, -EINVAL, "bad_keys", sub,
				     "%s must be a 32-byte Ed25519 public key in base64 (44 characters)", sub);
	int rc;
	if ((rc = get_ms(o, "not_before", path, &k->not_before_ms, e)) ||
	    (rc = get_ms(o, "not_after", path, &k->not_after_ms, e)))
		return rc;
	if (k->not_after_ms && k->not_after_ms <= k->not_before_ms) {
		snprintf(sub, sizeof(sub), "%s.not_after", path);
		return trust_err_set(e, -EINVAL, "bad_keys", sub, "%s is not after not_before: the key could never be valid",
				     sub);
	}
	return 0;
}

int keyring_parse(const char *text, size_t len, struct keyring *kr, struct trust_err *e)
{
	if (len > CONFIG_COMMAND_MAX_BYTES)
		return trust_err_set(e, -EINVAL, "bad_keys", "", "key list is %zu bytes, at most %d", len,
				     CONFIG_COMMAND_MAX_BYTES);
	cJSON *root = cJSON_ParseWithLength(text, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return trust_err_set(e, -EINVAL, "bad_keys", "", "the key list is not a JSON object");
	}
	struct keyring tmp = { 0 };
	int rc = 0;
	for (const cJSON *c = root->child; c && !rc; c = c->next) {
		if (jsonutil_key_repeated(root, c))
			rc = trust_err_set(e, -EINVAL, "bad_keys", c->string, "%.32s appears twice", c->string);
		else if (strcmp(c->string, "schema") && strcmp(c->string, "version") && strcmp(c->string, "keys") &&
			 strcmp(c->string, "auth"))
			rc = trust_err_set(e, -EINVAL, "bad_keys", c->string,
					   "%.32s is not a known field (expected schema|version|keys|auth)", c->string);
	}
	if (rc)
		goto out;
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
	if (schema && !(cJSON_IsNumber(schema) && schema->valuedouble == 1)) {
		rc = trust_err_set(e, -EINVAL, "bad_keys", "schema", "schema must be 1");
		goto out;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 9007199254740992.0 ||
	    v->valuedouble != floor(v->valuedouble)) {
		rc = trust_err_set(e, -EINVAL, "bad_keys", "version", "version must be an integer >= 1");
		goto out;
	}
	tmp.version = (uint64_t)v->valuedouble;
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if (!cJSON_IsArray(keys)) {
		rc = trust_err_set(e, -EINVAL, "bad_keys", "keys", "keys must be an array, got %s", jsonutil_type_name(keys));
		goto out;
	}
	int n = cJSON_GetArraySize(keys);
	if (n < 1 || n > KEYRING_MAX) {
		rc = trust_err_set(e, -EINVAL, "bad_keys", "keys", "keys has %d entries, expected 1..%d", n, KEYRING_MAX);
		goto out;
	}
	int i = 0;
	for (const cJSON *k = keys->child; k && !rc; k = k->next, i++) {
		rc = parse_key(k, i, &tmp.k[i], e);
		if (!rc && keyring_find(&tmp, tmp.k[i].id)) {
			char path[48];
			snprintf(path, sizeof(path), "keys[%d].id", i);
			rc = trust_err_set(e, -EINVAL, "bad_keys", path, "key id \"%s\" appears twice", tmp.k[i].id);
		}
		if (!rc)
			tmp.n++;
	}
	if (!rc)
		*kr = tmp;
out:
	cJSON_Delete(root);
	return rc;
}

int keyring_check(const struct keyring *kr, const struct envelope *env, int64_t now_ms, struct trust_err *e)
{
	const struct keyring_key *k = keyring_find(kr, env->key_id);
	if (!k)
		return trust_err_set(e, -EPERM, "unknown_key", "auth.key", "key %s is not trusted by this gateway",
				     env->key_id);
	if (k->not_before_ms && env->iat_ms < k->not_before_ms)
		return trust_err_set(e, -EPERM, "key_not_yet_valid", "auth.iat",
				     "key %s is valid from %lld; the message was issued at %lld", k->id,
				     (long long)k->not_before_ms, (long long)env->iat_ms);
	if (k->not_after_ms && (env->iat_ms > k->not_after_ms || now_ms > k->not_after_ms))
		return trust_err_set(e, -EPERM, "key_expired", "auth.key",
				     "key %s was valid until %lld (issued at %lld, trusted time %lld)", k->id,
				     (long long)k->not_after_ms, (long long)env->iat_ms, (long long)now_ms);
	int rc = envelope_verify(env, k->pub, e);
	return rc ? -EPERM : 0;
}

int keyring_rotate(struct keyring *kr, const char *doc, size_t len, const char *device_id, const char *const *groups,
		   size_t n_groups, int64_t now_ms, struct trust_err *e)
{
	struct envelope env;
	int rc = envelope_parse(doc, len, "keys", &env, e);
	if (rc)
		return rc;
	if (!envelope_targets(&env, device_id, groups, n_groups))
		return trust_err_set(e, -EPERM, "wrong_target", "auth.target", "signed for %s, not for this device",
				     env.target);
	if ((rc = keyring_check(kr, &env, now_ms, e)))
		return rc;
	struct keyring next;
	if ((rc = keyring_parse(doc, len, &next, e)))
		return rc;
	if (next.version <= kr->version)
		return trust_err_set(e, -ESTALE, "stale_version", "version",
				     "key list version %llu is not newer than the current %llu",
				     (unsigned long long)next.version, (unsigned long long)kr->version);
	*kr = next;
	return 0;
}
