/* agent/trust/keyring.h - the console keys a gateway trusts, their validity windows, and rotation by a signed key list. */
#ifndef BERTH_KEYRING_H
#define BERTH_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "agent/trust/envelope.h"

#define KEYRING_MAX 8

struct keyring_key {
	char id[ENVELOPE_KEY_ID_MAX + 1];
	uint8_t pub[SIG_PUBLIC_LEN];
	int64_t not_before_ms;    /* 0: no lower bound */
	int64_t not_after_ms;     /* 0: no upper bound */
};

struct keyring {
	uint64_t version;         /* of the key list document; rotation needs a higher one */
	unsigned n;
	struct keyring_key k[KEYRING_MAX];
};

/* Parses a key list {"schema":1,"version":N,"keys":[{"id":..,"public":BASE64,
 * "not_before":MS,"not_after":MS},...]} (an "auth" member is allowed and
 * ignored here). Returns 0, or -EINVAL with e naming the offending field's
 * path ("keys[1].public"); kr is unchanged on error. Pure; a fuzz target. */
int keyring_parse(const char *text, size_t len, struct keyring *kr, struct trust_err *e)
	__attribute__((warn_unused_result));

/* Checks a parsed envelope against the ring at trusted time now_ms (see
 * trusttime.h): the key must be known, the command issued inside the key's
 * window (not_before <= iat <= not_after) and the window not over at now_ms;
 * then the signature must verify. Returns 0 or -EPERM with e->code one of
 * unknown_key, key_not_yet_valid, key_expired, bad_signature. */
int keyring_check(const struct keyring *kr, const struct envelope *env, int64_t now_ms, struct trust_err *e)
	__attribute__((warn_unused_result));

/* Rotation: doc is a key list signed (doc kind "keys") by a key of kr valid
 * at now_ms, targeted at this device or one of its groups, with a version
 * above kr's. On success kr becomes the new list and 0 is returned; else
 * -EPERM / -EINVAL / -ESTALE (code stale_version) with e filled and kr unchanged. */
int keyring_rotate(struct keyring *kr, const char *doc, size_t len, const char *device_id, const char *const *groups,
		   size_t n_groups, int64_t now_ms, struct trust_err *e) __attribute__((warn_unused_result));

const struct keyring_key *keyring_find(const struct keyring *kr, const char *id);

#endif
