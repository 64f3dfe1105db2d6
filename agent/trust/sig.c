/* agent/trust/sig.c - Ed25519 and SHA-256 through OpenSSL's EVP interface; OpenSSL's codes end here. */
#include "agent/trust/sig.h"

#include <errno.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Verification keys are cached per thread, keyed by the raw public key:
 * building an EVP_PKEY (a key-management fetch and import) and a digest
 * context for every command cost about 35,000 instructions of the ~1.57
 * million a verification took (OpenSSL 3.0, callgrind). The ring holds at
 * most SIG_KEY_CACHE keys (KEYRING_MAX trusted ones fit); a new key replaces
 * the oldest entry. Only the public key is cached, never a decision: the
 * keyring still judges every key on every message. */
#define SIG_KEY_CACHE 8

struct sig_cached_key {
	uint8_t pub[SIG_PUBLIC_LEN];
	EVP_PKEY *pk;
	EVP_MD_CTX *md;
};

static _Thread_local struct sig_cached_key key_cache[SIG_KEY_CACHE];
static _Thread_local unsigned key_cache_next;

static struct sig_cached_key *cached_key(const uint8_t pub[SIG_PUBLIC_LEN])
{
	for (unsigned i = 0; i < SIG_KEY_CACHE; i++)
		if (key_cache[i].pk && memcmp(key_cache[i].pub, pub, SIG_PUBLIC_LEN) == 0)
			return &key_cache[i];
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SIG_PUBLIC_LEN);
	if (!pk)
		return NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md) {
		EVP_PKEY_free(pk);
		return NULL;
	}
	struct sig_cached_key *k = &key_cache[key_cache_next];
	key_cache_next = (key_cache_next + 1) % SIG_KEY_CACHE;
	EVP_MD_CTX_free(k->md);
	EVP_PKEY_free(k->pk);
	memcpy(k->pub, pub, SIG_PUBLIC_LEN);
	k->pk = pk;
	k->md = md;
	return k;
}

void sig_cache_clear(void)
{
	for (unsigned i = 0; i < SIG_KEY_CACHE; i++) {
		EVP_MD_CTX_free(key_cache[i].md);
		EVP_PKEY_free(key_cache[i].pk);
		memset(&key_cache[i], 0, sizeof(key_cache[i]));
	}
	key_cache_next = 0;
}

int sig_verify(const uint8_t pub[SIG_PUBLIC_LEN], const void *msg, size_t len, const uint8_t sig[SIG_LEN])
{
	struct sig_cached_key *k = cached_key(pub);
	if (!k)
		return -EBADMSG; /* not a valid point (or no memory: refused all the same) */
	/* Ed25519 is one-shot: no digest, the whole message at once; the
	 * context is re-initialised (reset) for every message. */
	if (EVP_DigestVerifyInit(k->md, NULL, NULL, NULL, k->pk) == 1 &&
	    EVP_DigestVerify(k->md, sig, SIG_LEN, msg, len) == 1)
		return 0;
	return -EBADMSG;
}

int sig_sign(const uint8_t priv[SIG_PRIVATE_LEN], const void *msg, size_t len, uint8_t sig[SIG_LEN])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, SIG_PRIVATE_LEN);
	if (!pk)
		return -EINVAL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -ENOMEM;
	if (!md)
		goto errout_with_key;
	size_t siglen = SIG_LEN;
	rc = -EINVAL;
	if (EVP_DigestSignInit(md, NULL, NULL, NULL, pk) == 1 && EVP_DigestSign(md, sig, &siglen, msg, len) == 1 &&
	    siglen == SIG_LEN)
		rc = 0;
	EVP_MD_CTX_free(md);
errout_with_key:
	EVP_PKEY_free(pk);
	return rc;
}

int sig_public_of(const uint8_t priv[SIG_PRIVATE_LEN], uint8_t pub[SIG_PUBLIC_LEN])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, SIG_PRIVATE_LEN);
	if (!pk)
		return -EINVAL;
	size_t n = SIG_PUBLIC_LEN;
	int rc = EVP_PKEY_get_raw_public_key(pk, pub, &n) == 1 && n == SIG_PUBLIC_LEN ? 0 : -EINVAL;
	EVP_PKEY_free(pk);
	return rc;
}

int sig_keygen(uint8_t priv[SIG_PRIVATE_LEN], uint8_t pub[SIG_PUBLIC_LEN])
{
	if (RAND_bytes(priv, SIG_PRIVATE_LEN) != 1)
		return -EIO;
	return sig_public_of(priv, pub) ? -EIO : 0;
}

/* struct sig_sha256 is never defined: the handle is OpenSSL's digest context. */
struct sig_sha256 *sig_sha256_create(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		return NULL;
	/* Fetched once per thread: EVP_sha256() would be looked up by name on every init. */
	static _Thread_local EVP_MD *sha256;
	if (!sha256)
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256 || EVP_DigestInit_ex(md, sha256, NULL) != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	return (struct sig_sha256 *)md;
}

void sig_sha256_update(struct sig_sha256 *h, const void *data, size_t len)
{
	if (h && len)
		(void)EVP_DigestUpdate((EVP_MD_CTX *)h, data, len);
}

int sig_sha256_finish(struct sig_sha256 *h, uint8_t out[SIG_SHA256_LEN])
{
	if (!h)
		return -EIO;
	unsigned n = 0;
	int rc = EVP_DigestFinal_ex((EVP_MD_CTX *)h, out, &n) == 1 && n == SIG_SHA256_LEN ? 0 : -EIO;
	EVP_MD_CTX_free((EVP_MD_CTX *)h);
	return rc;
}

void sig_sha256_destroy(struct sig_sha256 *h)
{
	EVP_MD_CTX_free((EVP_MD_CTX *)h);
}
