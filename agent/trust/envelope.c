/* agent/trust/envelope.c - the signature envelope: canonical JSON, the signed byte form, base64 (pure; a fuzz target). */
#include "agent/trust/envelope.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/jsonutil.h"

/* --- canonical JSON, streamed into a sink (a hash or a buffer) ------------ */

struct canon_sink {
	void (*put)(void *arg, const char *s, size_t n);
	void *arg;
};

static void put(const struct canon_sink *k, const char *s, size_t n) { k->put(k->arg, s, n); }
static void puts_(const struct canon_sink *k, const char *s) { k->put(k->arg, s, strlen(s)); }

static void canon_string(const struct canon_sink *k, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;
	put(k, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(k, run, (size_t)(s - run));
		run = s + 1;
		char esc[7] = { '\\', 0 };
		switch (c) {
		case '"': esc[1] = '"'; put(k, esc, 2); break;
		case '\\': esc[1] = '\\'; put(k, esc, 2); break;
		case '\b': esc[1] = 'b'; put(k, esc, 2); break;
		case '\f': esc[1] = 'f'; put(k, esc, 2); break;
		case '\n': esc[1] = 'n'; put(k, esc, 2); break;
		case '\r': esc[1] = 'r'; put(k, esc, 2); break;
		case '\t': esc[1] = 't'; put(k, esc, 2); break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			put(k, esc, 6);
		}
	}
	put(k, run, (size_t)(s - run));
	put(k, "\"", 1);
}

static void canon_number(const struct canon_sink *k, double d)
{
	char buf[40];
	if (d == 0) {
		strcpy(buf, "0"); /* -0 too */
	} else if (d == floor(d) && fabs(d) < 9007199254740992.0) {
		snprintf(buf, sizeof(buf), "%.0f", d);
	} else {
		for (int p = 1; p <= 17; p++) {
			snprintf(buf, sizeof(buf), "%.*g", p, d);
			if (strtod(buf, NULL) == d)
				break;
		}
	}
	puts_(k, buf);
}

static int cmp_members(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string, y->string);
}

/* Returns 0, or -EINVAL for a repeated key or a non-finite number, -ENOMEM. */
static int canon_value(const struct canon_sink *k, const cJSON *v)
{
	if (cJSON_IsObject(v)) {
		size_t n = 0;
		for (const cJSON *c = v->child; c; c = c->next)
			n++;
		const cJSON **m = n ? malloc(n * sizeof(*m)) : NULL;
		if (n && !m)
			return -ENOMEM;
		size_t i = 0;
		for (const cJSON *c = v->child; c; c = c->next)
			m[i++] = c;
		if (n > 1)
			qsort(m, n, sizeof(*m), cmp_members);
		int rc = 0;
		put(k, "{", 1);
		for (i = 0; i < n && !rc; i++) {
			if (i && strcmp(m[i - 1]->string, m[i]->string) == 0) {
				rc = -EINVAL;
				break;
			}
			if (i)
				put(k, ",", 1);
			canon_string(k, m[i]->string);
			put(k, ":", 1);
			rc = canon_value(k, m[i]);
		}
		put(k, "}", 1);
		free(m);
		return rc;
	}
	if (cJSON_IsArray(v)) {
		put(k, "[", 1);
		for (const cJSON *c = v->child; c; c = c->next) {
			if (c != v->child)
				put(k, ",", 1);
			int rc = canon_value(k, c);
			if (rc)
				return rc;
		}
		put(k, "]", 1);
		return 0;
	}
	if (cJSON_IsString(v)) {
		canon_string(k, v->valuestring);
		return 0;
	}
	if (cJSON_IsNumber(v)) {
		if (!isfinite(v->valuedouble))
			return -EINVAL; /* 1e999: no JSON number reads back the same */
		canon_number(k, v->valuedouble);
		return 0;
	}
	if (cJSON_IsTrue(v))
		puts_(k, "true");
	else if (cJSON_IsFalse(v))
		puts_(k, "false");
	else if (cJSON_IsNull(v))
		puts_(k, "null");
	else
		return -EINVAL;
	return 0;
}

struct bufsink {
	char *buf;
	size_t len, used;
	bool over;
};

static void buf_put(void *arg, const char *s, size_t n)
{
	struct bufsink *b = arg;
	if (b->over || b->used + n >= b->len) {
		b->over = true;
		return;
	}
	memcpy(b->buf + b->used, s, n);
	b->used += n;
	b->buf[b->used] = '\0';
}

/* The canonical form arrives in pieces of a few bytes: gathered into blocks
 * before they reach the digest (one EVP call per block, not per piece). */
struct hashsink {
	struct sig_sha256 *h;
	size_t used;
	char buf[512];
};

static void hash_put(void *arg, const char *s, size_t n)
{
	struct hashsink *hs = arg;
	if (hs->used + n > sizeof(hs->buf)) {
		sig_sha256_update(hs->h, hs->buf, hs->used);
		hs->used = 0;
	}
	if (n > sizeof(hs->buf)) {
		sig_sha256_update(hs->h, s, n);
		return;
	}
	memcpy(hs->buf + hs->used, s, n);
	hs->used += n;
}

static cJSON *parse_object(const char *text, size_t len)
{
	if (len > CONFIG_COMMAND_MAX_BYTES)
		return NULL;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!root)
		return NULL;
	while (end && (size_t)(end - text) < len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if ((end && (size_t)(end - text) < len) || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int envelope_canonical(const char *text, size_t len, char *buf, size_t buflen)
{
	if (!buflen)
		return -ENOSPC;
	buf[0] = '\0';
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!root)
		return -EINVAL;
	struct bufsink b = { buf, buflen, 0, false };
	struct canon_sink k = { buf_put, &b };
	int rc = canon_value(&k, root);
	cJSON_Delete(root);
	if (rc)
		return rc;
	return b.over ? -ENOSPC : (int)b.used;
}

static int body_hash(const cJSON *body, uint8_t out[SIG_SHA256_LEN])
{
	struct hashsink hs = { .h = sig_sha256_create() };
	if (!hs.h)
		return -ENOMEM;
	struct canon_sink k = { hash_put, &hs };
	int rc = canon_value(&k, body);
	if (rc) {
		sig_sha256_destroy(hs.h);
		return rc;
	}
	sig_sha256_update(hs.h, hs.buf, hs.used);
	return sig_sha256_finish(hs.h, out);
}

/* --- base64 ---------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int envelope_b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen)
{
	size_t need = (n + 2) / 3 * 4;
	if (need + 1 > outlen)
		return -ENOSPC;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int b64_val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

int envelope_b64_decode(const char *in, uint8_t *out, size_t outlen)
{
	size_t n = strlen(in);
	if (n % 4)
		return -EINVAL;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = b64_val(in[i + j])) < 0)
				return -EINVAL;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		size_t take = 3 - (size_t)pad;
		if (o + take > outlen)
			return -ENOSPC;
		/* Bits under the padding must be zero: one text per byte string. */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -EINVAL;
		out[o++] = (uint8_t)(w >> 16);
		if (take > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (take > 2)
			out[o++] = (uint8_t)w;
	}
	return (int)o;
}

/* --- the envelope ---------------------------------------------------------- */

static bool token_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == ':'))
			return false;
	}
	return true;
}

static int get_ms(const cJSON *auth, const char *key, bool required, int64_t *out, struct trust_err *e)
{
	char path[32];
	snprintf(path, sizeof(path), "auth.%s", key);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(auth, key);
	if (!v) {
		if (required)
			return trust_err_set(e, -EINVAL, "bad_envelope", path, "%s is missing", path);
		*out = 0;
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 || v->valuedouble != floor(v->valuedouble))
		return trust_err_set(e, -EINVAL, "bad_envelope", path, "%s must be milliseconds since the epoch, got %s",
				     path, cJSON_IsNumber(v) ? "another number" : jsonutil_type_name(v));
	*out = (int64_t)v->valuedouble;
	return 0;
}

static int get_token(const cJSON *obj, const char *key, const char *path, size_t max, char *out, struct trust_err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v)
		return trust_err_set(e, -EINVAL, "bad_envelope", path, "%s is missing", path);
	if (!cJSON_IsString(v))
		return trust_err_set(e, -EINVAL, "bad_envelope", path, "%s must be a string, got %s", path,
				     jsonutil_type_name(v));
	if (!token_ok(v->valuestring, max))
		return trust_err_set(e, -EINVAL, "bad_envelope", path,
				     "%s must be 1..%zu characters of A-Z a-z 0-9 - _ . :", path, max);
	memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

/* Fills env's verb and id from the body. */
static int body_names(const cJSON *root, const char *doc_kind, struct envelope *env, struct trust_err *e)
{
	if (!doc_kind) {
		int rc = get_token(root, "verb", "verb", ENVELOPE_VERB_MAX, env->verb, e);
		return rc ? rc : get_token(root, "id", "id", ENVELOPE_ID_MAX, env->id, e);
	}
	snprintf(env->verb, sizeof(env->verb), "%s", doc_kind);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 9007199254740992.0 ||
	    v->valuedouble != floor(v->valuedouble))
		return trust_err_set(e, -EINVAL, "bad_envelope", "version",
				     "a signed %s document needs an integer version >= 1", doc_kind);
	snprintf(env->id, sizeof(env->id), "%.0f", v->valuedouble);
	return 0;
}

static int parse_auth(const cJSON *auth, struct envelope *env, struct trust_err *e)
{
	if (!cJSON_IsObject(auth))
		return trust_err_set(e, -EINVAL, "bad_envelope", "auth", "auth must be an object, got %s",
				     jsonutil_type_name(auth));
	for (const cJSON *c = auth->child; c; c = c->next) {
		if (jsonutil_key_repeated(auth, c))
			return trust_err_set(e, -EINVAL, "bad_envelope", "auth", "auth.%.32s appears twice", c->string);
		if (strcmp(c->string, "key") && strcmp(c->string, "target") && strcmp(c->string, "iat") &&
		    strcmp(c->string, "exp") && strcmp(c->string, "sig"))
			return trust_err_set(e, -EINVAL, "bad_envelope", "auth",
					     "auth.%.32s is not a known field (expected key|target|iat|exp|sig)", c->string);
	}
	int rc;
	if ((rc = get_token(auth, "key", "auth.key", ENVELOPE_KEY_ID_MAX, env->key_id, e)) ||
	    (rc = get_token(auth, "target", "auth.target", ENVELOPE_TARGET_MAX, env->target, e)) ||
	    (rc = get_ms(auth, "iat", true, &env->iat_ms, e)) || (rc = get_ms(auth, "exp", false, &env->exp_ms, e)))
		return rc;
	if (strncmp(env->target, "device:", 7) != 0 && strncmp(env->target, "group:", 6) != 0)
		return trust_err_set(e, -EINVAL, "bad_envelope", "auth.target",
				     "auth.target must be \"device:ID\" or \"group:NAME\"");
	if (!env->target[env->target[0] == 'd' ? 7 : 6])
		return trust_err_set(e, -EINVAL, "bad_envelope", "auth.target", "auth.target names nothing");
	if (env->exp_ms && env->exp_ms < env->iat_ms)
		return trust_err_set(e, -EINVAL, "bad_envelope", "auth.exp", "auth.exp is before auth.iat");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(auth, "sig");
	if (!cJSON_IsString(s))
		return trust_err_set(e, -EINVAL, "bad_envelope", "auth.sig", "auth.sig must be a base64 string");
	if (strlen(s->valuestring) != 88 || envelope_b64_decode(s->valuestring, env->sig, sizeof(env->sig)) != SIG_LEN)
		return trust_err_set(e, -EINVAL, "bad_envelope", "auth.sig",
				     "auth.sig must be the 64-byte signature in base64 (88 characters)");
	return 0;
}

int envelope_parse(const char *msg, size_t len, const char *doc_kind, struct envelope *env, struct trust_err *e)
{
	memset(env, 0, sizeof(*env));
	cJSON *root = parse_object(msg, len);
	if (!root)
		return trust_err_set(e, -EINVAL, "bad_json", "", "the message is not one JSON object of at most %d bytes",
				     CONFIG_COMMAND_MAX_BYTES);
	int rc;
	int n_auth = 0;
	for (const cJSON *c = root->child; c; c = c->next)
		n_auth += strcmp(c->string, "auth") == 0;
	cJSON *auth = cJSON_DetachItemFromObjectCaseSensitive(root, "auth");
	if (!auth) {
		rc = trust_err_set(e, -EINVAL, "unsigned", "auth", "the message carries no signature (auth is missing)");
		goto out;
	}
	if (n_auth > 1) {
		rc = trust_err_set(e, -EINVAL, "bad_envelope", "auth", "auth appears twice");
		goto out;
	}
	if ((rc = body_names(root, doc_kind, env, e)) || (rc = parse_auth(auth, env, e)))
		goto out;
	if ((rc = body_hash(root, env->body_sha256)))
		rc = trust_err_set(e, rc, rc == -EINVAL ? "bad_json" : "internal", "",
				   rc == -EINVAL ? "the message has a repeated key or a number out of range"
						 : "could not hash the message");
out:
	cJSON_Delete(auth);
	cJSON_Delete(root);
	return rc;
}

int envelope_signed_bytes(const struct envelope *env, char *buf, size_t len)
{
	char hex[SIG_SHA256_LEN * 2 + 1];
	for (int i = 0; i < SIG_SHA256_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", env->body_sha256[i]);
	int n = snprintf(buf, len, ENVELOPE_VERSION "\nkey=%s\ntarget=%s\nverb=%s\nid=%s\niat=%lld\nexp=%lld\nbody=%s\n",
			 env->key_id, env->target, env->verb, env->id, (long long)env->iat_ms, (long long)env->exp_ms, hex);
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int envelope_verify(const struct envelope *env, const uint8_t pub[SIG_PUBLIC_LEN], struct trust_err *e)
{
	char tbs[512];
	int n = envelope_signed_bytes(env, tbs, sizeof(tbs));
	if (n < 0)
		return trust_err_set(e, n, "internal", "", "signed form does not fit");
	int rc = sig_verify(pub, tbs, (size_t)n, env->sig);
	if (rc)
		return trust_err_set(e, rc, "bad_signature", "auth.sig", "the signature does not verify with key %s",
				     env->key_id);
	return 0;
}

bool envelope_targets(const struct envelope *env, const char *device_id, const char *const *groups, size_t n_groups)
{
	if (strncmp(env->target, "device:", 7) == 0)
		return device_id && strcmp(env->target + 7, device_id) == 0;
	for (size_t i = 0; i < n_groups; i++)
		if (groups[i] && strcmp(env->target + 6, groups[i]) == 0)
			return true;
	return false;
}

int envelope_sign(const char *msg, size_t len, const char *doc_kind, const char *key_id,
		  const uint8_t priv[SIG_PRIVATE_LEN], const char *target, int64_t iat_ms, int64_t exp_ms, char **out,
		  struct trust_err *e)
{
	*out = NULL;
	cJSON *root = parse_object(msg, len);
	if (!root)
		return trust_err_set(e, -EINVAL, "bad_json", "", "the message to sign is not one JSON object");
	struct envelope env = { .iat_ms = iat_ms, .exp_ms = exp_ms };
	int rc;
	if (cJSON_GetObjectItemCaseSensitive(root, "auth")) {
		rc = trust_err_set(e, -EINVAL, "bad_envelope", "auth", "the message is already signed");
		goto out;
	}
	if ((rc = body_names(root, doc_kind, &env, e)))
		goto out;
	if (!token_ok(key_id, ENVELOPE_KEY_ID_MAX) || !token_ok(target, ENVELOPE_TARGET_MAX) ||
	    (strncmp(target, "device:", 7) && strncmp(target, "group:", 6))) {
		rc = trust_err_set(e, -EINVAL, "bad_envelope", "auth", "bad key id or target (\"device:ID\"|\"group:NAME\")");
		goto out;
	}
	snprintf(env.key_id, sizeof(env.key_id), "%s", key_id);
	snprintf(env.target, sizeof(env.target), "%s", target);
	if ((rc = body_hash(root, env.body_sha256))) {
		rc = trust_err_set(e, rc, "bad_json", "", "the message has a repeated key or a number out of range");
		goto out;
	}
	char tbs[512], sigtxt[96];
	int n = envelope_signed_bytes(&env, tbs, sizeof(tbs));
	if (n < 0 || (rc = sig_sign(priv, tbs, (size_t)n, env.sig)) ||
	    envelope_b64_encode(env.sig, SIG_LEN, sigtxt, sizeof(sigtxt)) < 0) {
		rc = trust_err_set(e, -EINVAL, "internal", "", "signing failed");
		goto out;
	}
	cJSON *auth = cJSON_AddObjectToObject(root, "auth");
	if (!auth || !cJSON_AddStringToObject(auth, "key", key_id) || !cJSON_AddStringToObject(auth, "target", target) ||
	    !cJSON_AddNumberToObject(auth, "iat", (double)iat_ms) ||
	    (exp_ms && !cJSON_AddNumberToObject(auth, "exp", (double)exp_ms)) ||
	    !cJSON_AddStringToObject(auth, "sig", sigtxt) || !(*out = cJSON_PrintUnformatted(root)))
		rc = -ENOMEM;
out:
	cJSON_Delete(root);
	return rc;
}
