/* agent/model/imageref.c - image references parsed and checked against the distribution grammar (pure). */
#include "agent/model/imageref.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t err_len, const char *why)
{
	if (err && err_len)
		snprintf(err, err_len, "%s", why);
	return -EINVAL;
}

static bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* path-component := [a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)* */
static bool path_component_ok(const char *s, size_t n)
{
	if (!n || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (lower_alnum(c))
			continue;
		if (c == '.' || c == '_' || c == '-') {
			if (c == '.' && (s[i - 1] == '.' || s[i - 1] == '_' || s[i - 1] == '-'))
				return false;
			if (c == '_' && s[i - 1] == '_' && i >= 2 && s[i - 2] == '_')
				return false;
			continue;
		}
		return false;
	}
	return true;
}

/* host[:port]: letters, digits, '-' and '.', then an optional numeric port */
static bool registry_ok(const char *s, size_t n)
{
	size_t i = 0;
	for (; i < n && s[i] != ':'; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	if (i == 0)
		return false;
	if (i == n)
		return true;
	size_t digits = n - i - 1;
	if (!digits || digits > 5)
		return false;
	for (i++; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool tag_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
		if (!word && (i == 0 || (c != '.' && c != '-')))
			return false;
	}
	return true;
}

static bool digest_ok(const char *s)
{
	if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != IMAGEREF_DIGEST_LEN)
		return false;
	for (const char *p = s + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static int parse_name(const char *name, size_t n, struct imageref *out, char *err, size_t err_len)
{
	const char *slash = memchr(name, '/', n);
	size_t first = slash ? (size_t)(slash - name) : n;
	bool host = slash && (memchr(name, '.', first) || memchr(name, ':', first) ||
			      (first == 9 && memcmp(name, "localhost", 9) == 0));
	const char *path = name;
	if (host) {
		if (!registry_ok(name, first) || first >= sizeof(out->registry))
			return fail(err, err_len, "registry host must be host[:port]");
		memcpy(out->registry, name, first);
		out->registry[first] = '\0';
		path = slash + 1;
	}
	const char *end = name + n;
	if (path >= end)
		return fail(err, err_len, "image name is empty");
	for (const char *c = path; c < end;) {
		const char *next = memchr(c, '/', (size_t)(end - c));
		size_t len = next ? (size_t)(next - c) : (size_t)(end - c);
		if (!path_component_ok(c, len))
			return fail(err, err_len,
				    "image name components hold lower-case letters, digits and single separators");
		c += len + (next ? 1 : 0);
		if (next && c >= end)
			return fail(err, err_len, "image name ends with '/'");
	}
	if (n >= sizeof(out->name))
		return fail(err, err_len, "image name too long");
	memcpy(out->name, name, n);
	out->name[n] = '\0';
	return 0;
}

int imageref_parse(const char *s, struct imageref *out, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return fail(err, err_len, "image reference is empty");
	size_t total = strlen(s);
	if (total >= IMAGEREF_NAME_MAX + IMAGEREF_TAG_MAX + IMAGEREF_DIGEST_LEN)
		return fail(err, err_len, "image reference too long");
	const char *at = strchr(s, '@');
	size_t head = at ? (size_t)(at - s) : total;
	if (at) {
		if (!digest_ok(at + 1))
			return fail(err, err_len, "digest must be sha256: followed by 64 lower-case hex digits");
		memcpy(out->digest, at + 1, IMAGEREF_DIGEST_LEN + 1);
	}
	/* a tag is after the last ':' that follows the last '/' */
	const char *last_slash = NULL, *colon = NULL;
	for (const char *p = s; p < s + head; p++) {
		if (*p == '/') {
			last_slash = p;
			colon = NULL;
		} else if (*p == ':') {
			colon = p;
		}
	}
	(void)last_slash;
	size_t name_len = colon ? (size_t)(colon - s) : head;
	if (colon) {
		size_t tlen = head - name_len - 1;
		if (tlen >= sizeof(out->tag))
			return fail(err, err_len, "tag too long (128 characters at most)");
		memcpy(out->tag, colon + 1, tlen);
		out->tag[tlen] = '\0';
		if (!tag_ok(out->tag))
			return fail(err, err_len, "tag holds letters, digits, '_', '.' and '-' (not first)");
	} else if (!at) {
		snprintf(out->tag, sizeof(out->tag), "latest");
	}
	return parse_name(s, name_len, out, err, err_len);
}

int imageref_pull_ref(const struct imageref *r, char *buf, size_t len)
{
	int n = r->digest[0] ? snprintf(buf, len, "%s@%s", r->name, r->digest)
			     : snprintf(buf, len, "%s:%s", r->name, r->tag[0] ? r->tag : "latest");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool imageref_is_local(const struct imageref *r) { return strcmp(r->registry, "localhost") == 0; }
