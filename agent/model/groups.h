/* agent/model/groups.h - a gateway's fleet groups: names, validation, the list from config or desired state. */
#ifndef BERTH_GROUPS_H
#define BERTH_GROUPS_H

#include <stdbool.h>
#include <stddef.h>

#define GROUPS_MAX 8          /* groups one gateway belongs to */
#define GROUPS_NAME_MAX 32    /* characters of a name: [a-z0-9_-]{1,32} */

struct groups {
	char name[GROUPS_MAX][GROUPS_NAME_MAX + 1];
	unsigned n;
};

/* Whether s (n bytes) is a group name: 1-32 of a-z 0-9 '_' '-'. Pure. */
bool groups_name_valid(const char *s, size_t n);

/* Parses a comma-separated list ("" is the empty list) into g. Returns 0, or
 * -EINVAL with why (a sentence naming the bad entry) filled: an invalid name,
 * an empty entry, a repeated name, more than GROUPS_MAX names. Pure. */
int groups_parse_csv(const char *csv, struct groups *g, char *why, size_t why_len)
	__attribute__((warn_unused_result));

/* Appends name to g (validated, duplicates refused as for groups_parse_csv). */
int groups_add(struct groups *g, const char *name, char *why, size_t why_len) __attribute__((warn_unused_result));

bool groups_has(const struct groups *g, const char *name);
bool groups_equal(const struct groups *a, const struct groups *b);

/* g as a JSON array of strings (["a","b"]), NUL-terminated. Returns the length or -ENOSPC. */
int groups_format(const struct groups *g, char *buf, size_t len);

#endif
