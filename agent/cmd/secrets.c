/* agent/cmd/secrets.c - berthd and berthctl refuse secrets that other users can read. */
#include "agent/cmd/secrets.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/model/config.h"
#include "hal/fs.h"

static int exposed(const char *path, const char *key, char *msg, size_t len)
{
	struct hal_fs_info fi;
	int rc = hal_fs_info(path, &fi);
	if (rc < 0) {
		snprintf(msg, len, "%s (%s): %s", path, key, strerror(-rc));
		return rc;
	}
	if (!(fi.perm & 04))
		return 0;
	snprintf(msg, len, "%s holds %s and is readable by others (mode %04o); run chmod o-r %s",
		 path, key, fi.perm, path);
	return -EACCES;
}

int secrets_check(const char *config_path, const struct berth_config *cfg, char *msg, size_t len)
{
	int rc = 0;
	if (cfg->broker.password[0])
		rc = exposed(config_path, "broker.password", msg, len);
	if (rc == 0 && cfg->broker.tls.key_file[0])
		rc = exposed(cfg->broker.tls.key_file, "the TLS key of broker.tls.key_file", msg, len);
	return rc;
}
