/* tests/unit/test_keyring.c - trusted key lists: parse errors with paths, validity windows, rotation signed by a trusted key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/trust/keyring.h"

struct kp {
	uint8_t sk[32], pk[32];
	char pub64[48];
};

static void kp_make(struct kp *k, uint8_t seed)
{
	memset(k->sk, seed, sizeof(k->sk));
	assert_int_equal(sig_public_of(k->sk, k->pk), 0);
	assert_int_equal(envelope_b64_encode(k->pk, 32, k->pub64, sizeof(k->pub64)), 44);
}

static char *key_list(uint64_t version, const struct kp *a, const char *aid, int64_t a_nb, int64_t a_na,
		      const struct kp *b, const char *bid, int64_t b_nb, int64_t b_na)
{
	char *s = malloc(1024);
	int n = snprintf(s, 1024, "{\"schema\":1,\"version\":%llu,\"keys\":[{\"id\":\"%s\",\"public\":\"%s\",\"not_before\":%lld,"
				  "\"not_after\":%lld}",
			 (unsigned long long)version, aid, a->pub64, (long long)a_nb, (long long)a_na);
	if (b)
		n += snprintf(s + n, 1024 - (size_t)n, ",{\"id\":\"%s\",\"public\":\"%s\",\"not_before\":%lld,\"not_after\":%lld}",
			      bid, b->pub64, (long long)b_nb, (long long)b_na);
	snprintf(s + n, 1024 - (size_t)n, "]}");
	return s;
}

static char *sign(const char *msg, const char *kind, const struct kp *k, const char *kid, const char *target,
		  int64_t iat)
{
	char *out = NULL;
	struct trust_err e = { 0 };
	assert_int_equal(envelope_sign(msg, strlen(msg), kind, kid, k->sk, target, iat, 0, &out, &e), 0);
	return out;
}

static void windows(void **state)
{
	struct kp a;
	kp_make(&a, 1);
	char *list = key_list(1, &a, "console-1", 1000, 5000, NULL, NULL, 0, 0);
	struct keyring kr;
	struct trust_err e = { 0 };
	assert_int_equal(keyring_parse(list, strlen(list), &kr, &e), 0);
	assert_int_equal(kr.n, 1);
	assert_int_equal(kr.version, 1);
	free(list);

	static const struct {
		const char *kid;
		int64_t iat, now;
		const char *code;      /* NULL: accepted */
	} t[] = {
		{ "console-1", 2000, 2000, NULL },
		{ "console-1", 1000, 1000, NULL },                 /* window edges are inclusive */
		{ "console-1", 5000, 5000, NULL },
		{ "console-1", 999, 2000, "key_not_yet_valid" },
		{ "console-1", 5001, 5001, "key_expired" },
		{ "console-1", 2000, 5001, "key_expired" },        /* issued in the window, but the window is over */
		{ "console-1", 2000, 0, NULL },                    /* a 1970 clock alone never makes a key invalid */
		{ "console-9", 2000, 2000, "unknown_key" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *cmd = "{\"id\":\"c\",\"verb\":\"ping\"}";
		char *s = sign(cmd, NULL, &a, t[i].kid, "device:gw", t[i].iat);
		struct envelope env;
		assert_int_equal(envelope_parse(s, strlen(s), NULL, &env, &e), 0);
		memset(&e, 0, sizeof(e));
		int rc = keyring_check(&kr, &env, t[i].now, &e);
		if (t[i].code ? (rc != -EPERM || strcmp(e.code, t[i].code)) : rc != 0)
			fail_msg("case %zu: rc=%d code=%s", i, rc, e.code ? e.code : "-");
		free(s);
	}
	/* Signed by another key under a trusted key's name. */
	struct kp x;
	kp_make(&x, 9);
	char *s = sign("{\"id\":\"c\",\"verb\":\"ping\"}", NULL, &x, "console-1", "device:gw", 2000);
	struct envelope env;
	assert_int_equal(envelope_parse(s, strlen(s), NULL, &env, &e), 0);
	assert_int_equal(keyring_check(&kr, &env, 2000, &e), -EPERM);
	assert_string_equal(e.code, "bad_signature");
	free(s);
}

static void rotation(void **state)
{
	struct kp a, b, x;
	kp_make(&a, 1);
	kp_make(&b, 2);
	kp_make(&x, 3);
	char *l1 = key_list(1, &a, "old", 0, 0, NULL, NULL, 0, 0);
	struct keyring kr;
	struct trust_err e = { 0 };
	assert_int_equal(keyring_parse(l1, strlen(l1), &kr, &e), 0);

	/* The new list keeps the old key until 10000 and adds the new one. */
	char *l2 = key_list(2, &a, "old", 0, 10000, &b, "new", 0, 0);
	char *by_untrusted = sign(l2, "keys", &x, "new", "device:gw", 100);
	assert_int_equal(keyring_rotate(&kr, by_untrusted, strlen(by_untrusted), "gw", NULL, 0, 100, &e), -EPERM);
	assert_string_equal(e.code, "unknown_key");
	char *other_dev = sign(l2, "keys", &a, "old", "device:gw-2", 100);
	assert_int_equal(keyring_rotate(&kr, other_dev, strlen(other_dev), "gw", NULL, 0, 100, &e), -EPERM);
	assert_string_equal(e.code, "wrong_target");
	char *unsigned_doc = l2;
	assert_int_equal(keyring_rotate(&kr, unsigned_doc, strlen(unsigned_doc), "gw", NULL, 0, 100, &e), -EINVAL);
	assert_string_equal(e.code, "unsigned");
	assert_int_equal(kr.version, 1);

	char *ok = sign(l2, "keys", &a, "old", "device:gw", 100);
	assert_int_equal(keyring_rotate(&kr, ok, strlen(ok), "gw", NULL, 0, 100, &e), 0);
	assert_int_equal(kr.version, 2);
	assert_int_equal(kr.n, 2);
	/* The same document again: stale. */
	assert_int_equal(keyring_rotate(&kr, ok, strlen(ok), "gw", NULL, 0, 100, &e), -ESTALE);
	assert_string_equal(e.code, "stale_version");

	/* After its window the old key is refused, the new one accepted. */
	const char *cmd = "{\"id\":\"c\",\"verb\":\"ping\"}";
	char *by_old = sign(cmd, NULL, &a, "old", "device:gw", 9000);
	char *by_new = sign(cmd, NULL, &b, "new", "device:gw", 10001);
	struct envelope env;
	assert_int_equal(envelope_parse(by_old, strlen(by_old), NULL, &env, &e), 0);
	assert_int_equal(keyring_check(&kr, &env, 9500, &e), 0);
	assert_int_equal(keyring_check(&kr, &env, 10001, &e), -EPERM);
	assert_string_equal(e.code, "key_expired");
	assert_int_equal(envelope_parse(by_new, strlen(by_new), NULL, &env, &e), 0);
	assert_int_equal(keyring_check(&kr, &env, 10001, &e), 0);

	/* A list signed by the expired old key no longer rotates anything. */
	char *l3 = key_list(3, &a, "old", 0, 0, NULL, NULL, 0, 0);
	char *late = sign(l3, "keys", &a, "old", "device:gw", 9999);
	assert_int_equal(keyring_rotate(&kr, late, strlen(late), "gw", NULL, 0, 10001, &e), -EPERM);
	assert_string_equal(e.code, "key_expired");
	assert_int_equal(kr.version, 2);
	free(l1); free(l2); free(l3); free(by_untrusted); free(other_dev); free(ok); free(by_old); free(by_new); free(late);
}

#define PUB "\"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\""

static const struct {
	const char *doc, *path;
} bad_table[] = {
	{ "[]", "" },
	{ "{\"version\":1}", "keys" },
	{ "{\"keys\":[]}", "version" },
	{ "{\"version\":0,\"keys\":[]}", "version" },
	{ "{\"version\":1,\"keys\":[]}", "keys" },
	{ "{\"version\":1,\"keys\":{}}", "keys" },
	{ "{\"version\":1,\"keys\":[1]}", "keys[0]" },
	{ "{\"version\":1,\"keys\":[{\"public\":" PUB "}]}", "keys[0].id" },
	{ "{\"version\":1,\"keys\":[{\"id\":\"a\"}]}", "keys[0].public" },
	{ "{\"version\":1,\"keys\":[{\"id\":\"a\",\"public\":\"Zm9v\"}]}", "keys[0].public" },
	{ "{\"version\":1,\"keys\":[{\"id\":\"a\",\"public\":" PUB ",\"not_after\":\"soon\"}]}", "keys[0].not_after" },
	{ "{\"version\":1,\"keys\":[{\"id\":\"a\",\"public\":" PUB ",\"not_before\":5,\"not_after\":5}]}", "keys[0].not_after" },
	{ "{\"version\":1,\"keys\":[{\"id\":\"a\",\"public\":" PUB ",\"role\":\"x\"}]}", "keys[0].role" },
	{ "{\"version\":1,\"keys\":[{\"id\":\"a\",\"public\":" PUB "},{\"id\":\"a\",\"public\":" PUB "}]}", "keys[1].id" },
	{ "{\"version\":1,\"keys\":[{\"id\":\"a\",\"public\":" PUB "}],\"extra\":1}", "extra" },
	{ "{\"schema\":2,\"version\":1,\"keys\":[{\"id\":\"a\",\"public\":" PUB "}]}", "schema" },
};

static void malformed_lists(void **state)
{
	struct keyring kr = { .version = 42 };
	for (size_t i = 0; i < sizeof(bad_table) / sizeof(bad_table[0]); i++) {
		struct trust_err e = { 0 };
		int rc = keyring_parse(bad_table[i].doc, strlen(bad_table[i].doc), &kr, &e);
		if (rc != -EINVAL || strcmp(e.code, "bad_keys") || strcmp(e.path, bad_table[i].path))
			fail_msg("case %zu: rc=%d path=%s message=%s", i, rc, e.path, e.message);
		assert_int_equal(kr.version, 42); /* unchanged */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(windows),
		cmocka_unit_test(rotation),
		cmocka_unit_test(malformed_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
