/* agent/cmd/ctl_sign.h - berthctl's signing keys: keygen, loading a key file, signing a message. */
#ifndef BERTH_CTL_SIGN_H
#define BERTH_CTL_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "agent/cmd/ctl_args.h"
#include "agent/trust/envelope.h"

/* Loads a key file {"id","private","public"} into id (ENVELOPE_KEY_ID_MAX + 1
 * bytes) and priv. 0, or -errno / -EINVAL with the reason on stderr. */
int ctl_sign_key_load(const char *path, char *id, uint8_t priv[SIG_PRIVATE_LEN]);

/* berthctl keygen ID FILE: writes a new key (mode 0600, never over an
 * existing file) and prints a key list holding its public half. Returns an exit code. */
int ctl_sign_keygen(const char *id, const char *path);

/* msg signed for target as kind (NULL: a command, which expires expire_s
 * after now). Returns malloc'ed text (caller frees) or NULL (reason on stderr). */
char *ctl_sign_text(const char *msg, size_t len, const char *kind, const char *key_id, const uint8_t *priv,
		    const char *target, uint32_t expire_s);

/* The signing key's path: --sign-key, else $BERTH_SIGN_KEY; NULL when neither. */
const char *ctl_sign_key_path(const struct ctl_args *a);

/* berthctl sign KIND DEVICE FILE|- [--sign-key F] [--target T] [--expire S] (no broker), as a parsed
 * it (a->kind, a->device, a->file). Returns an exit code. */
int ctl_sign_main(const struct ctl_args *a);

#endif
