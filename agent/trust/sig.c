/* agent/trust/sig.c - Ed25519 and SHA-256 through OpenSSL's EVP interface; OpenSSL's codes end here. */
#include "agent/trust/sig.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

int sig_verify(const uint8_t pub[SIG_PUBLIC_LEN], const void *msg, size_t len, const uint8_t sig[SIG_LEN])
{
	EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SIG_PUBLIC_LEN);
	if (!pk)
		return -EBADMSG;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -ENOMEM;
	if (!md)
		goto errout_with_key;
	rc = -EBADMSG;
	/* Ed25519 is one-shot: no digest, the whole message at once. */
	if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
	    EVP_DigestVerify(md, sig, SIG_LEN, msg, len) == 1)
		rc = 0;
	EVP_MD_CTX_free(md);
errout_with_key:
	EVP_PKEY_free(pk);
	return rc;
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
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
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
