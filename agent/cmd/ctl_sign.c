/* agent/cmd/ctl_sign.c - berthctl's signing keys: keygen, key files, signing messages for the console. */
#include "agent/cmd/ctl_sign.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal/clock.h"

/* A key file is {"id":ID,"private":BASE64,"public":BASE64} (mode 0600). */
int ctl_sign_key_load(const char *path, char *id, uint8_t priv[SIG_PRIVATE_LEN])
{
	char buf[1024];
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "berthctl: signing key %s: %s\n", path, strerror(errno));
		return -errno;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	cJSON *root = cJSON_Parse(buf);
	const cJSON *jid = cJSON_GetObjectItemCaseSensitive(root, "id");
	const cJSON *jpriv = cJSON_GetObjectItemCaseSensitive(root, "private");
	int rc = -EINVAL;
	if (cJSON_IsString(jid) && strlen(jid->valuestring) <= ENVELOPE_KEY_ID_MAX && jid->valuestring[0] &&
	    cJSON_IsString(jpriv) && envelope_b64_decode(jpriv->valuestring, priv, SIG_PRIVATE_LEN) == SIG_PRIVATE_LEN) {
		strcpy(id, jid->valuestring);
		rc = 0;
	} else {
		fprintf(stderr, "berthctl: signing key %s: not a berthctl key file ({\"id\",\"private\",\"public\"})\n", path);
	}
	cJSON_Delete(root);
	memset(buf, 0, sizeof(buf));
	return rc;
}

/* berthctl keygen ID FILE: writes the key, prints a key list holding it. */
int ctl_sign_keygen(const char *id, const char *path)
{
	uint8_t priv[SIG_PRIVATE_LEN], pub[SIG_PUBLIC_LEN];
	char p64[64], q64[64];
	if (!id[0] || strlen(id) > ENVELOPE_KEY_ID_MAX ||
	    strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") != strlen(id)) {
		fprintf(stderr, "berthctl: keygen: ID must be 1..%d characters of A-Z a-z 0-9 - _ . :\n",
			ENVELOPE_KEY_ID_MAX);
		return CTL_EXIT_USAGE;
	}
	if (sig_keygen(priv, pub) || envelope_b64_encode(priv, sizeof(priv), p64, sizeof(p64)) < 0 ||
	    envelope_b64_encode(pub, sizeof(pub), q64, sizeof(q64)) < 0) {
		fprintf(stderr, "berthctl: keygen: no key could be made\n");
		return CTL_EXIT_USAGE;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		fprintf(stderr, "berthctl: keygen: %s: %s (an existing key is never overwritten)\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CTL_EXIT_USAGE;
	}
	fprintf(f, "{\"id\":\"%s\",\"private\":\"%s\",\"public\":\"%s\"}\n", id, p64, q64);
	memset(priv, 0, sizeof(priv));
	memset(p64, 0, sizeof(p64));
	if (fclose(f)) {
		fprintf(stderr, "berthctl: keygen: %s: %s\n", path, strerror(errno));
		return CTL_EXIT_USAGE;
	}
	printf("{\"schema\":1,\"version\":1,\"keys\":[{\"id\":\"%s\",\"public\":\"%s\"}]}\n", id, q64);
	return CTL_EXIT_OK;
}

/* Signs msg for device as kind (NULL: a command). Returns malloc'ed text or NULL. */
char *ctl_sign_text(const char *msg, size_t len, const char *kind, const char *key_id, const uint8_t *priv,
		       const char *target, uint32_t expire_s)
{
	int64_t now = hal_clock_wall_ms();
	char *out = NULL;
	struct trust_err e = { 0 };
	if (envelope_sign(msg, len, kind, key_id, priv, target, now, kind ? 0 : now + (int64_t)expire_s * 1000, &out,
			  &e)) {
		fprintf(stderr, "berthctl: cannot sign: %s%s%s\n", e.path, e.path[0] ? ": " : "", e.message);
		return NULL;
	}
	return out;
}

const char *ctl_sign_key_path(const struct ctl_args *a)
{
	const char *p = a && a->sign_key ? a->sign_key : getenv("BERTH_SIGN_KEY");
	return p && p[0] ? p : NULL;
}

/* berthctl sign KIND DEVICE FILE|- (--sign-key, --target, --expire as parsed): no broker. */
int ctl_sign_main(const struct ctl_args *a)
{
	const char *key = ctl_sign_key_path(a);
	if (!key) {
		fprintf(stderr, "berthctl: sign: a signing key is needed (--sign-key FILE or $BERTH_SIGN_KEY)\n");
		return CTL_EXIT_USAGE;
	}
	char id[ENVELOPE_KEY_ID_MAX + 1];
	uint8_t priv[SIG_PRIVATE_LEN];
	if (ctl_sign_key_load(key, id, priv))
		return CTL_EXIT_USAGE;
	char *buf = malloc(CONFIG_COMMAND_MAX_BYTES + 1);
	FILE *f = strcmp(a->file, "-") ? fopen(a->file, "rb") : stdin;
	size_t n = buf && f ? fread(buf, 1, CONFIG_COMMAND_MAX_BYTES + 1, f) : 0;
	if (f && f != stdin)
		fclose(f);
	if (!buf || !f || n > CONFIG_COMMAND_MAX_BYTES) {
		fprintf(stderr, "berthctl: sign: %s: %s\n", a->file, !f ? strerror(errno) : "unreadable or too large");
		free(buf);
		return CTL_EXIT_USAGE;
	}
	char tgt[ENVELOPE_TARGET_MAX + 1];
	snprintf(tgt, sizeof(tgt), "%s%s", a->target ? "" : "device:", a->target ? a->target : a->device);
	char *out = ctl_sign_text(buf, n, strcmp(a->kind, "command") ? a->kind : NULL, id, priv, tgt, a->expire_s);
	free(buf);
	memset(priv, 0, sizeof(priv));
	if (!out)
		return CTL_EXIT_USAGE;
	printf("%s\n", out);
	free(out);
	return CTL_EXIT_OK;
}
