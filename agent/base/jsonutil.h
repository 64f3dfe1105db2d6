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

/* Checks the strings (keys and values) of JSON text before it is parsed:
 * a NUL byte (raw, or escaped as \u0000) anywhere, a raw control character
 * (U+0000..U+001F, U+007F) inside a string, or an escaped one other than
 * \t, \n and \r is refused. A C string cannot carry a NUL: cJSON would cut
 * "a\u0000b" to "a", so two different ids would become one journal key and
 * "dbg\u0000junk" would read as "dbg". Returns 0, or -EINVAL with *off set to
 * the offending byte and *why to a short reason (static text). Does not check
 * the rest of the syntax (the parser does). */
int jsonutil_check_strings(const char *text, size_t len, size_t *off, const char **why);

/* True when s holds no control character at all (bytes 0x01..0x1f, 0x7f):
 * for identifiers and enum strings, which may not even hold \t, \n or \r. */
bool jsonutil_is_text(const char *s);

#endif
