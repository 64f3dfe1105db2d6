/* tests/unit/test_envelope.c - Ed25519 against RFC 8032's vectors, canonical JSON, base64, and the envelope's parse/sign/verify. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/trust/envelope.h"

static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = strlen(h) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* RFC 8032 section 7.1, TEST 1, 2, 3 and SHA(abc). */
static const struct {
	const char *secret, *public, *msg, *sig;
} rfc8032[] = {
	{ "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
	  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
	  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b" },
	{ "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
	  "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
	  "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00" },
	{ "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
	  "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
	  "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a" },
};

static void rfc8032_vectors(void **state)
{
	for (size_t i = 0; i < sizeof(rfc8032) / sizeof(rfc8032[0]); i++) {
		uint8_t sk[32], pk[32], pk2[32], msg[64], sig[64], sig2[64];
		unhex(rfc8032[i].secret, sk);
		unhex(rfc8032[i].public, pk);
		size_t n = unhex(rfc8032[i].msg, msg);
		unhex(rfc8032[i].sig, sig);
		assert_int_equal(sig_public_of(sk, pk2), 0);
		assert_memory_equal(pk, pk2, 32);
		assert_int_equal(sig_sign(sk, msg, n, sig2), 0);
		assert_memory_equal(sig, sig2, 64);
		assert_int_equal(sig_verify(pk, msg, n, sig), 0);
		/* One flipped bit anywhere: refused. */
		sig2[i * 7] ^= 1;
		assert_int_equal(sig_verify(pk, msg, n, sig2), -EBADMSG);
		msg[0] ^= 0x80;
		assert_int_equal(sig_verify(pk, msg, n ? n : 1, sig), -EBADMSG);
	}
}

static void sha256_vectors(void **state)
{
	uint8_t d[32], want[32];
	struct sig_sha256 *h = sig_sha256_create();
	assert_non_null(h);
	sig_sha256_update(h, "ab", 2);
	sig_sha256_update(h, "c", 1);
	assert_int_equal(sig_sha256_finish(h, d), 0);
	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
	assert_memory_equal(d, want, 32);
	sig_sha256_destroy(NULL);
}

static const struct {
	const char *in, *out;
} canon_table[] = {
	{ "{\"b\":1, \"a\":[true,false,null], \"c\":{\"z\":\"x\",\"y\":-0}}", "{\"a\":[true,false,null],\"b\":1,\"c\":{\"y\":0,\"z\":\"x\"}}" },
	{ "{\"cpu\":0.5,\"big\":9007199254740993,\"e\":1e-7,\"n\":-12.25}", "{\"big\":9007199254740992,\"cpu\":0.5,\"e\":1e-07,\"n\":-12.25}" },
	{ "{\"s\":\"q\\\"b\\\\ \\n\\t\\u0001/é\"}", "{\"s\":\"q\\\"b\\\\ \\n\\t\\u0001/é\"}" },
	{ "{\"B\":1,\"a\":2,\"_\":3}", "{\"B\":1,\"_\":3,\"a\":2}" },
	{ "[1, 2.0, 1e3, 0.1]", "[1,2,1000,0.1]" },
	{ "{}", "{}" },
};

static void canonical_json(void **state)
{
	char buf[256];
	for (size_t i = 0; i < sizeof(canon_table) / sizeof(canon_table[0]); i++) {
		int n = envelope_canonical(canon_table[i].in, strlen(canon_table[i].in), buf, sizeof(buf));
		assert_true(n > 0);
		assert_string_equal(buf, canon_table[i].out);
	}
	assert_int_equal(envelope_canonical("{\"a\":1,\"a\":2}", 13, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(envelope_canonical("{\"a\":", 5, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(envelope_canonical("{\"a\":1e999}", 11, buf, sizeof(buf)), -EINVAL); /* found by fuzz_envelope */
	assert_int_equal(envelope_canonical("{\"a\":1}", 7, buf, 4), -ENOSPC);
}

static void base64(void **state)
{
	static const struct { const char *bin, *txt; } t[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	char txt[32];
	uint8_t bin[32];
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(envelope_b64_encode((const uint8_t *)t[i].bin, strlen(t[i].bin), txt, sizeof(txt)),
				 (int)strlen(t[i].txt));
		assert_string_equal(txt, t[i].txt);
		assert_int_equal(envelope_b64_decode(t[i].txt, bin, sizeof(bin)), (int)strlen(t[i].bin));
		assert_memory_equal(bin, t[i].bin, strlen(t[i].bin));
	}
	static const char *const bad[] = { "Zg=", "Z===", "Zh==", "Zm9v!mFy", "=Zm9", "Zg==Zg==" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(envelope_b64_decode(bad[i], bin, sizeof(bin)), -EINVAL);
	assert_int_equal(envelope_b64_decode("Zm9vYmFy", bin, 5), -ENOSPC);
}

/* RFC 8032 TEST 1's key signs berth messages in these tests. */
static void test_key(uint8_t sk[32], uint8_t pk[32])
{
	unhex(rfc8032[0].secret, sk);
	unhex(rfc8032[0].public, pk);
}

#define SCALE "{\"schema\":1,\"id\":\"c-1\",\"verb\":\"scale\",\"args\":{\"deployment\":\"det\",\"replicas\":2}}"

static void sign_then_verify(void **state)
{
	uint8_t sk[32], pk[32];
	test_key(sk, pk);
	char *signed_msg = NULL;
	struct trust_err e = { 0 };
	assert_int_equal(envelope_sign(SCALE, strlen(SCALE), NULL, "console-1", sk, "device:gw-1", 1767225600000LL,
				       1767229200000LL, &signed_msg, &e),
			 0);
	struct envelope env;
	assert_int_equal(envelope_parse(signed_msg, strlen(signed_msg), NULL, &env, &e), 0);
	assert_string_equal(env.key_id, "console-1");
	assert_string_equal(env.target, "device:gw-1");
	assert_string_equal(env.verb, "scale");
	assert_string_equal(env.id, "c-1");
	assert_int_equal(env.iat_ms, 1767225600000LL);
	assert_int_equal(env.exp_ms, 1767229200000LL);
	assert_int_equal(envelope_verify(&env, pk, &e), 0);

	/* The signed form is fixed: a console in any language reproduces it. */
	char tbs[512];
	assert_true(envelope_signed_bytes(&env, tbs, sizeof(tbs)) > 0);
	char canon[256];
	assert_true(envelope_canonical(SCALE, strlen(SCALE), canon, sizeof(canon)) > 0);
	assert_string_equal(canon, "{\"args\":{\"deployment\":\"det\",\"replicas\":2},\"id\":\"c-1\",\"schema\":1,\"verb\":\"scale\"}");
	assert_string_equal(tbs, "berth-sig-v1\nkey=console-1\ntarget=device:gw-1\nverb=scale\nid=c-1\n"
				 "iat=1767225600000\nexp=1767229200000\n"
				 "body=" "383738c40f172532d3ba2608cf4ec246ebad2ca56d9fc6f19d037624b4d63241" "\n");
	/* And the signature of it, made independently with the openssl CLI
	 * (pkeyutl -sign -rawin, RFC 8032 TEST 1's key). */
	char sigtxt[96];
	assert_int_equal(envelope_b64_encode(env.sig, 64, sigtxt, sizeof(sigtxt)), 88);
	assert_string_equal(sigtxt, "gJApsMvZpMfhM6bhb1RYmH03PxoZHURTCxlzJiunMcnS1u8bQ4ZmvBPoXU94zl5G+jZW/xTXo8xtD+YsAv6KAg==");
	free(signed_msg);

	/* Key order and whitespace of the body do not matter; any change to it does. */
	const char *reordered = "{ \"verb\":\"scale\", \"args\":{\"replicas\":2,\"deployment\":\"det\"},\"schema\":1,\"id\":\"c-1\","
				"\"auth\":{\"key\":\"console-1\",\"target\":\"device:gw-1\",\"iat\":1767225600000,\"exp\":1767229200000,"
				"\"sig\":\"gJApsMvZpMfhM6bhb1RYmH03PxoZHURTCxlzJiunMcnS1u8bQ4ZmvBPoXU94zl5G+jZW/xTXo8xtD+YsAv6KAg==\"}}";
	assert_int_equal(envelope_parse(reordered, strlen(reordered), NULL, &env, &e), 0);
	assert_int_equal(envelope_verify(&env, pk, &e), 0);
	char *changed = strdup(reordered);
	*strstr(changed, "2,") = '3';
	assert_int_equal(envelope_parse(changed, strlen(changed), NULL, &env, &e), 0);
	assert_int_equal(envelope_verify(&env, pk, &e), -EBADMSG);
	assert_string_equal(e.code, "bad_signature");
	free(changed);
}

static void documents_and_targets(void **state)
{
	uint8_t sk[32], pk[32];
	test_key(sk, pk);
	const char *doc = "{\"schema\":1,\"version\":7,\"deployments\":[]}";
	char *s = NULL;
	struct trust_err e = { 0 };
	assert_int_equal(envelope_sign(doc, strlen(doc), "desired", "k", sk, "group:site-a", 5, 0, &s, &e), 0);
	struct envelope env;
	assert_int_equal(envelope_parse(s, strlen(s), "desired", &env, &e), 0);
	assert_string_equal(env.verb, "desired");
	assert_string_equal(env.id, "7");
	assert_int_equal(envelope_verify(&env, pk, &e), 0);
	/* The same bytes read as another kind of document do not verify. */
	assert_int_equal(envelope_parse(s, strlen(s), "policy", &env, &e), 0);
	assert_int_equal(envelope_verify(&env, pk, &e), -EBADMSG);
	free(s);

	static const char *const groups[] = { "site-b", "site-a" };
	struct envelope t = { 0 };
	strcpy(t.target, "group:site-a");
	assert_true(envelope_targets(&t, "gw-1", groups, 2));
	assert_false(envelope_targets(&t, "gw-1", groups, 1));
	strcpy(t.target, "device:gw-1");
	assert_true(envelope_targets(&t, "gw-1", NULL, 0));
	assert_false(envelope_targets(&t, "gw-10", NULL, 0));
	strcpy(t.target, "group:gw-1");
	assert_false(envelope_targets(&t, "gw-1", NULL, 0));
}

#define SIG88 "gJApsMvZpMfhM6bhb1RYmH03PxoZHURTCxlzJiunMcnS1u8bQ4ZmvBPoXU94zl5G+jZW/xTXo8xtD+YsAv6KAg=="
#define CMD(auth) "{\"id\":\"c-1\",\"verb\":\"ping\"" auth "}"

static const struct {
	const char *msg, *code, *path;
} bad_table[] = {
	{ "nope", "bad_json", "" },
	{ "[1]", "bad_json", "" },
	{ CMD(""), "unsigned", "auth" },
	{ CMD(",\"auth\":1"), "bad_envelope", "auth" },
	{ CMD(",\"auth\":{}"), "bad_envelope", "auth.key" },
	{ CMD(",\"auth\":{\"key\":\"a b\",\"target\":\"device:x\",\"iat\":1,\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth.key" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"gw\",\"iat\":1,\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth.target" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:\",\"iat\":1,\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth.target" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth.iat" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"iat\":-1,\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth.iat" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"iat\":1.5,\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth.iat" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"iat\":5,\"exp\":4,\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth.exp" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"iat\":5,\"sig\":\"Zm9v\"}"), "bad_envelope", "auth.sig" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"iat\":5}"), "bad_envelope", "auth.sig" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"iat\":5,\"sig\":\"" SIG88 "\",\"x\":1}"), "bad_envelope", "auth" },
	{ CMD(",\"auth\":{\"key\":\"k\",\"key\":\"k\",\"target\":\"device:x\",\"iat\":5,\"sig\":\"" SIG88 "\"}"), "bad_envelope", "auth" },
	{ "{\"id\":\"c-1\",\"auth\":{}}", "bad_envelope", "verb" },
	{ "{\"verb\":\"ping\",\"id\":\"a\\nb\",\"auth\":{}}", "bad_envelope", "id" },
	{ "{\"verb\":\"ping\",\"id\":\"c\",\"a\":1,\"a\":2,\"auth\":{\"key\":\"k\",\"target\":\"device:x\",\"iat\":5,\"sig\":\"" SIG88 "\"}}", "bad_json", "" },
};

static void malformed_envelopes(void **state)
{
	for (size_t i = 0; i < sizeof(bad_table) / sizeof(bad_table[0]); i++) {
		struct envelope env;
		struct trust_err e = { 0 };
		int rc = envelope_parse(bad_table[i].msg, strlen(bad_table[i].msg), NULL, &env, &e);
		if (rc != -EINVAL || strcmp(e.code, bad_table[i].code) || strcmp(e.path, bad_table[i].path))
			fail_msg("case %zu: rc=%d code=%s path=%s message=%s", i, rc, e.code ? e.code : "-", e.path, e.message);
	}
	struct envelope env;
	struct trust_err e = { 0 };
	const char *v0 = "{\"version\":0,\"auth\":{}}";
	assert_int_equal(envelope_parse(v0, strlen(v0), "policy", &env, &e), -EINVAL);
	assert_string_equal(e.path, "version");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc8032_vectors), cmocka_unit_test(sha256_vectors), cmocka_unit_test(canonical_json),
		cmocka_unit_test(base64),          cmocka_unit_test(sign_then_verify), cmocka_unit_test(documents_and_targets),
		cmocka_unit_test(malformed_envelopes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
