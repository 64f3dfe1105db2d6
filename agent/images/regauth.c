/* agent/images/regauth.c - X-Registry-Auth encoding and the credentials file's parser; secrets never logged. */
#include "agent/images/regauth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/images/images.h"
#include "hal/fs.h"

#define REGAUTH_FILE_MAX 65536

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_encode(const unsigned char *in, size_t n, char *out, size_t len)
{
	size_t need = (n + 2) / 3 * 4 + 1;
	if (need > len)
		return -ENOSPC;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64url[(v >> 18) & 63];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64url[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64url[v & 63] : '=';
	}
	out[o] = '\0';
	return 0;
}

/* JSON string body of s (quotes and backslashes escaped; control characters refused). */
static int json_str(const char *s, char *out, size_t len)
{
	size_t o = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20)
			return -EINVAL;
		if (o + 3 > len)
			return -ENOSPC;
		if (c == '"' || c == '\\')
			out[o++] = '\\';
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

int regauth_header(const char *username, const char *password, const char *server, char *buf, size_t len)
{
	char u[256], p[512], s[256], json[1200];
	int rc = json_str(username, u, sizeof(u));
	if (!rc)
		rc = json_str(password, p, sizeof(p));
	if (!rc)
		rc = json_str(server, s, sizeof(s));
	if (!rc) {
		int n = snprintf(json, sizeof(json), "{\"username\":\"%s\",\"password\":\"%s\",\"serveraddress\":\"%s\"}",
				 u, p, s);
		rc = n < 0 || (size_t)n >= sizeof(json) ? -ENOSPC : b64url_encode((unsigned char *)json, (size_t)n, buf, len);
	}
	explicit_bzero(p, sizeof(p));
	explicit_bzero(json, sizeof(json));
	return rc;
}

static int field(const cJSON *o, const char *host, const char *key, char *dst, size_t dst_len, char *err,
		 size_t err_len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v) || !v->valuestring) {
		snprintf(err, err_len, "registries.%s.%s: must be a string", host, key);
		return -EINVAL;
	}
	size_t n = strlen(v->valuestring);
	if (n >= dst_len) {
		snprintf(err, err_len, "registries.%s.%s: too long", host, key);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v->valuestring[i] < 0x20) {
			snprintf(err, err_len, "registries.%s.%s: holds a control character", host, key);
			return -EINVAL;
		}
	memcpy(dst, v->valuestring, n + 1);
	return 0;
}

int regauth_parse(const char *text, size_t len, struct images_registry *regs, unsigned cap, unsigned *n, char *err,
		  size_t err_len)
{
	*n = 0;
	cJSON *root = cJSON_ParseWithLength(text, len);
	int rc = -EINVAL;
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "registries");
	if (!cJSON_IsObject(root)) {
		snprintf(err, err_len, "not a JSON object");
		goto out;
	}
	if (!cJSON_IsObject(map)) {
		snprintf(err, err_len, "registries: must be an object of host -> {username, password}");
		goto out;
	}
	const cJSON *o;
	cJSON_ArrayForEach(o, map)
	{
		if (*n >= cap) {
			snprintf(err, err_len, "registries: more than %u", cap);
			goto out;
		}
		struct images_registry *r = &regs[*n];
		memset(r, 0, sizeof(*r));
		if (!o->string || !*o->string || strlen(o->string) >= sizeof(r->host)) {
			snprintf(err, err_len, "registries: a host name is empty or too long");
			goto out;
		}
		snprintf(r->host, sizeof(r->host), "%s", o->string);
		if (!cJSON_IsObject(o)) {
			snprintf(err, err_len, "registries.%s: must be an object", r->host);
			goto out;
		}
		if (field(o, r->host, "username", r->username, sizeof(r->username), err, err_len) ||
		    field(o, r->host, "password", r->password, sizeof(r->password), err, err_len))
			goto out;
		(*n)++;
	}
	rc = 0;
out:
	if (root && rc) {
		for (unsigned i = 0; i < cap && i <= *n; i++)
			explicit_bzero(regs[i].password, sizeof(regs[i].password));
	}
	cJSON_Delete(root);
	return rc;
}

int regauth_load(const char *hosts, const char *path, struct images_registry *regs, unsigned cap, unsigned *n,
		 char *err, size_t err_len)
{
	*n = 0;
	for (const char *h = hosts; *h;) {
		size_t len = strcspn(h, ",");
		if (*n >= cap || len >= sizeof(regs[0].host)) {
			snprintf(err, err_len, "images.registries: more than %u registries or a host too long", cap);
			return -EINVAL;
		}
		memset(&regs[*n], 0, sizeof(regs[0]));
		memcpy(regs[*n].host, h, len);
		regs[(*n)++].host[len] = '\0';
		h += len + (h[len] == ',');
	}
	if (!path || !*path)
		return 0;
	unsigned mode;
	int rc = hal_fs_mode(path, &mode);
	if (rc) {
		snprintf(err, err_len, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (mode & 077) {
		snprintf(err, err_len, "%s: holds registry passwords but is readable by others (mode %04o; chmod 600)", path,
			 mode);
		return -EPERM;
	}
	char *text = NULL;
	size_t tlen = 0;
	if ((rc = hal_fs_read(path, REGAUTH_FILE_MAX, &text, &tlen))) {
		snprintf(err, err_len, "%s: %s", path, rc == -EFBIG ? "too large" : strerror(-rc));
		return rc;
	}
	struct images_registry creds[8];
	unsigned nc = 0;
	char why[160];
	rc = regauth_parse(text, tlen, creds, 8, &nc, why, sizeof(why));
	explicit_bzero(text, tlen);
	free(text);
	if (rc) {
		snprintf(err, err_len, "%s: %s", path, why);
		return rc;
	}
	for (unsigned i = 0; i < nc && !rc; i++) {
		unsigned j = 0;
		while (j < *n && strcmp(regs[j].host, creds[i].host) != 0)
			j++;
		if (j == *n) {
			snprintf(err, err_len, "%s: registries.%s: not in images.registries", path, creds[i].host);
			rc = -EINVAL;
			break;
		}
		memcpy(regs[j].username, creds[i].username, sizeof(regs[j].username));
		memcpy(regs[j].password, creds[i].password, sizeof(regs[j].password));
	}
	explicit_bzero(creds, sizeof(creds));
	return rc;
}
