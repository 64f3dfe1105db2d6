/* agent/base/jsonutil.h - small cJSON helpers shared by the pure parsers (config, deployments, commands). */
#ifndef BERTH_JSONUTIL_H
#define BERTH_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* "a string", "a number", "a boolean", "null", "an array", "an object" or
 * "invalid": the JSON type of v, for error messages ("expected X, got %s"). */
const char *jsonutil_type_name(const struct cJSON *v);

/* True when a member of obj before item (a member of obj) has the same key:
 * cJSON keeps duplicate keys, the parsers refuse them. */
bool jsonutil_key_repeated(const struct cJSON *obj, const struct cJSON *item);

/* Writes s as a JSON string (quoted; '"', '\\' and control characters
 * escaped) into buf (len bytes, NUL-terminated when len > 0), like
 * snprintf: returns the length the whole string needs, so a result >= len
 * means it was cut. buf may be NULL when len is 0. */
size_t jsonutil_quote(char *buf, size_t len, const char *s);

#endif
