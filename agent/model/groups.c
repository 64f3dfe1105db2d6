/* agent/model/groups.c - validation and formatting of a gateway's fleet group list. */
#include "agent/model/groups.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool groups_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > GROUPS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool groups_has(const struct groups *g, const char *name)
{
	for (unsigned i = 0; i < g->n; i++)
		if (strcmp(g->name[i], name) == 0)
			return true;
	return false;
}

bool groups_equal(const struct groups *a, const struct groups *b)
{
	if (a->n != b->n)
		return false;
	for (unsigned i = 0; i < a->n; i++)
		if (!groups_has(b, a->name[i]))
			return false;
	return true;
}

static int add_n(struct groups *g, const char *s, size_t n, char *why, size_t why_len)
{
	if (!groups_name_valid(s, n)) {
		snprintf(why, why_len, "\"%.*s\" is not a group name (1-%d of a-z, 0-9, '_', '-')", (int)(n > 40 ? 40 : n),
			 s, GROUPS_NAME_MAX);
		return -EINVAL;
	}
	char name[GROUPS_NAME_MAX + 1];
	memcpy(name, s, n);
	name[n] = '\0';
	if (groups_has(g, name)) {
		snprintf(why, why_len, "group \"%s\" is listed twice", name);
		return -EINVAL;
	}
	if (g->n >= GROUPS_MAX) {
		snprintf(why, why_len, "more than %d groups", GROUPS_MAX);
		return -EINVAL;
	}
	memcpy(g->name[g->n++], name, n + 1);
	return 0;
}

int groups_add(struct groups *g, const char *name, char *why, size_t why_len)
{
	return add_n(g, name, strlen(name), why, why_len);
}

int groups_parse_csv(const char *csv, struct groups *g, char *why, size_t why_len)
{
	g->n = 0;
	if (!csv || !*csv)
		return 0;
	for (const char *p = csv;;) {
		size_t n = strcspn(p, ",");
		int rc = add_n(g, p, n, why, why_len);
		if (rc)
			return rc;
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

int groups_format(const struct groups *g, char *buf, size_t len)
{
	size_t n = 0;
	int k = snprintf(buf, len, "[");
	for (unsigned i = 0; k >= 0 && (size_t)k < len - n && i < g->n; i++) {
		n += (size_t)k;
		k = snprintf(buf + n, len - n, "%s\"%s\"", i ? "," : "", g->name[i]);
	}
	if (k < 0 || (size_t)k + 2 > len - n)
		return -ENOSPC;
	n += (size_t)k;
	buf[n++] = ']';
	buf[n] = '\0';
	return (int)n;
}
