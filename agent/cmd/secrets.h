/* agent/cmd/secrets.h - refuses a config or credentials file that other users can read while it holds a secret. */
#ifndef BERTH_SECRETS_H
#define BERTH_SECRETS_H

#include <stddef.h>

struct berth_config;

/* Checks the files of cfg that hold secrets: config_path itself when it sets
 * broker.password, and broker.tls.key_file. Returns 0 when none is readable by
 * others, -EACCES with msg naming the file, its mode and the key (and the fix),
 * or -errno from stat(2) for the key file (msg says which). Never blocks. */
int secrets_check(const char *config_path, const struct berth_config *cfg, char *msg, size_t len)
	__attribute__((warn_unused_result));

#endif
