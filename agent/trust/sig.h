/* agent/trust/sig.h - Ed25519 signatures and SHA-256 (the only home of OpenSSL's libcrypto in berth). */
#ifndef BERTH_SIG_H
#define BERTH_SIG_H

#include <stddef.h>
#include <stdint.h>

#define SIG_PUBLIC_LEN 32   /* Ed25519 public key, raw (RFC 8032) */
#define SIG_PRIVATE_LEN 32  /* Ed25519 private key (seed), raw */
#define SIG_LEN 64          /* Ed25519 signature */
#define SIG_SHA256_LEN 32

/* Verifies sig over msg (len bytes) with the raw public key pub. Returns 0
 * when it is valid, -EBADMSG when it is not (or pub is not a valid point),
 * -ENOMEM. No I/O; thread-safe. The key's OpenSSL form is cached per
 * thread (at most 8 keys, the oldest replaced): see sig.c. */
int sig_verify(const uint8_t pub[SIG_PUBLIC_LEN], const void *msg, size_t len, const uint8_t sig[SIG_LEN])
	__attribute__((warn_unused_result));

/* Frees this thread's verification key cache (tests, leak checkers). */
void sig_cache_clear(void);

/* Signs msg with the raw private key priv into sig. 0 or -ENOMEM/-EINVAL. */
int sig_sign(const uint8_t priv[SIG_PRIVATE_LEN], const void *msg, size_t len, uint8_t sig[SIG_LEN])
	__attribute__((warn_unused_result));

/* The public key of priv. 0 or -EINVAL. */
int sig_public_of(const uint8_t priv[SIG_PRIVATE_LEN], uint8_t pub[SIG_PUBLIC_LEN]) __attribute__((warn_unused_result));

/* A new key pair from the system's random source. 0 or -EIO. */
int sig_keygen(uint8_t priv[SIG_PRIVATE_LEN], uint8_t pub[SIG_PUBLIC_LEN]) __attribute__((warn_unused_result));

/* Incremental SHA-256: create, feed any number of times, finish (which frees).
 * sig_sha256_destroy(NULL) is safe; create returns NULL without memory. */
struct sig_sha256;
struct sig_sha256 *sig_sha256_create(void);
void sig_sha256_update(struct sig_sha256 *h, const void *data, size_t len);
/* Writes the digest and frees h. 0 or -EIO. */
int sig_sha256_finish(struct sig_sha256 *h, uint8_t out[SIG_SHA256_LEN]) __attribute__((warn_unused_result));
void sig_sha256_destroy(struct sig_sha256 *h);

#endif
