/* agent/trust/trust_err.h - the error every trust module fills: a fixed code, the offending field's path, a message. */
#ifndef BERTH_TRUST_ERR_H
#define BERTH_TRUST_ERR_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* code: a fixed string the reply carries (docs/mqtt-api.md lists them);
 * path: the offending field as a dotted path ("rules.resources.per_class.urgent.cpu",
 * "auth.sig"), "" when the problem is not one field; message names the problem. */
struct trust_err {
	const char *code;
	char path[96];
	char message[192];
};

/* Fills e (NULL is allowed) and returns rc (a negative errno) so callers can
 * `return trust_err_set(e, -EINVAL, "bad_type", "rules.x", "... %s", ...)`. */
static inline int trust_err_set(struct trust_err *e, int rc, const char *code, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static inline int trust_err_set(struct trust_err *e, int rc, const char *code, const char *path, const char *fmt, ...)
{
	if (!e)
		return rc;
	va_list ap;
	e->code = code;
	snprintf(e->path, sizeof(e->path), "%s", path ? path : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return rc;
}

#endif
