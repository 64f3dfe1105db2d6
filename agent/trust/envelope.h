/* agent/trust/envelope.h - the signature envelope of commands and signed documents: parsing, canonical form, signing, verifying. */
#ifndef BERTH_ENVELOPE_H
#define BERTH_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/trust/sig.h"
#include "agent/trust/trust_err.h"

#define ENVELOPE_KEY_ID_MAX 64    /* characters of a key id */
#define ENVELOPE_TARGET_MAX 80    /* "device:<id>" or "group:<name>" */
#define ENVELOPE_VERB_MAX 32
#define ENVELOPE_ID_MAX 64
#define ENVELOPE_VERSION "berth-sig-v1"

/* A signed message is the JSON object the console means (a command, a
 * desired state, a policy, a key list) plus one member "auth":
 *   {"key":KEY_ID,"target":"device:ID"|"group:NAME","iat":MS,"exp":MS,"sig":BASE64}
 * (exp optional, 0 = none). The signature covers the canonical bytes
 * (envelope_signed_bytes) naming the key, the target, the verb, the id, iat,
 * exp and the SHA-256 of the canonical JSON of the message without "auth".
 * For a command, verb and id are the message's "verb" and "id"; for a
 * document, verb is the document's kind ("desired", "policy", "keys") and id
 * its "version" in decimal. docs/mqtt-api.md has the exact format. */
struct envelope {
	char key_id[ENVELOPE_KEY_ID_MAX + 1];
	char target[ENVELOPE_TARGET_MAX + 1];
	char verb[ENVELOPE_VERB_MAX + 1];
	char id[ENVELOPE_ID_MAX + 1];
	int64_t iat_ms;                       /* issued at, ms since the epoch (console's clock) */
	int64_t exp_ms;                       /* expires at, 0 = never */
	uint8_t body_sha256[SIG_SHA256_LEN];
	uint8_t sig[SIG_LEN];
};

/* Parses the "auth" member of the JSON message (len bytes, need not be
 * NUL-terminated) and hashes the rest. doc_kind NULL: a command (verb and id
 * from the message); else a document of that kind (id = its "version").
 * Returns 0, or -EINVAL with e naming the field: code "unsigned" when there
 * is no auth member, "bad_envelope" for a malformed one, "bad_json" when the
 * message is not a JSON object. Pure. A fuzz target. */
int envelope_parse(const char *msg, size_t len, const char *doc_kind, struct envelope *env, struct trust_err *e)
	__attribute__((warn_unused_result));

/* The bytes the signature covers, NUL-terminated in buf:
 * "berth-sig-v1\nkey=K\ntarget=T\nverb=V\nid=I\niat=N\nexp=N\nbody=HEX\n".
 * Returns the length, or -ENOSPC (256 bytes always suffice). */
int envelope_signed_bytes(const struct envelope *env, char *buf, size_t len);

/* Verifies env's signature with the raw public key pub: 0, or -EBADMSG
 * (code "bad_signature"). */
int envelope_verify(const struct envelope *env, const uint8_t pub[SIG_PUBLIC_LEN], struct trust_err *e)
	__attribute__((warn_unused_result));

/* Whether env's target names this device ("device:<device_id>") or one of
 * its groups ("group:<g>" with g in groups, n_groups entries). */
bool envelope_targets(const struct envelope *env, const char *device_id, const char *const *groups, size_t n_groups);

/* Signs msg (a JSON object without "auth") for the console side (berthctl):
 * writes msg with an "auth" member added into *out (malloc'ed, caller frees).
 * doc_kind as for envelope_parse. Returns 0, -EINVAL (e filled) or -ENOMEM. */
int envelope_sign(const char *msg, size_t len, const char *doc_kind, const char *key_id,
		  const uint8_t priv[SIG_PRIVATE_LEN], const char *target, int64_t iat_ms, int64_t exp_ms, char **out,
		  struct trust_err *e) __attribute__((warn_unused_result));

/* The canonical JSON of text (len bytes): members sorted by key bytes, no
 * whitespace, shortest round-trip numbers (integers below 2^53 without a
 * fraction), strings escaping only '"', '\\' and control characters. Written
 * into buf (NUL-terminated); returns the length, -ENOSPC, or -EINVAL for
 * text that is not JSON or has a repeated key. For tests and tools. */
int envelope_canonical(const char *text, size_t len, char *buf, size_t buflen);

/* Base64 (RFC 4648, with padding). encode returns the length written
 * (NUL-terminated) or -ENOSPC; decode returns the number of bytes, -EINVAL
 * for malformed input or -ENOSPC. */
int envelope_b64_encode(const uint8_t *in, size_t n, char *out, size_t outlen);
int envelope_b64_decode(const char *in, uint8_t *out, size_t outlen);

#endif
