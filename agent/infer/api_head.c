/* agent/infer/api_head.c - the local API's pure request-head helpers: route, deadline and class headers, error bodies. */
#include "agent/infer/api.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/base/jsonutil.h"
#include "agent/infer/reqsize.h"

int api_parse_deadline_ms(const char *value, uint32_t *deadline_ms)
{
	/* the same header decimal as X-Berth-Size, bounded and never 0 */
	uint32_t v;
	if (reqsize_parse_header(value, &v) || v == 0 || v > CONFIG_API_MAX_DEADLINE_MS)
		return -EINVAL;
	*deadline_ms = v;
	return 0;
}

int api_parse_class(const char *value, enum sla_class *cls)
{
	if (!value)
		return -EINVAL;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t n = strlen(value);
	while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	int k = sla_class_parse(value, n, true);
	if (k < 0)
		return k;
	*cls = (enum sla_class)k;
	return 0;
}

/* Appends s as a JSON string (quoted, escaped). */
static size_t json_str(char *buf, size_t len, size_t off, const char *s)
{
	return off + jsonutil_quote(off < len ? buf + off : NULL, off < len ? len - off : 0, s);
}

static size_t json_raw(char *buf, size_t len, size_t off, const char *s)
{
	int n = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0, "%s", s);
	return off + (size_t)(n > 0 ? n : 0);
}

size_t api_error_json(char *buf, size_t len, const char *msg, const char *reason,
		      const char *header, const char *model, unsigned retry_after_s)
{
	size_t off = json_raw(buf, len, 0, "{\"error\":");
	off = json_str(buf, len, off, msg ? msg : "");
	if (reason && *reason) {
		off = json_raw(buf, len, off, ",\"reason\":");
		off = json_str(buf, len, off, reason);
	}
	if (header && *header) {
		off = json_raw(buf, len, off, ",\"header\":");
		off = json_str(buf, len, off, header);
	}
	if (model && *model) {
		off = json_raw(buf, len, off, ",\"model\":");
		off = json_str(buf, len, off, model);
	}
	if (retry_after_s) {
		char num[32];
		snprintf(num, sizeof(num), ",\"retry_after_s\":%u", retry_after_s);
		off = json_raw(buf, len, off, num);
	}
	off = json_raw(buf, len, off, "}");
	if (len && off >= len)
		buf[len - 1] = '\0';
	return off < len ? off : (len ? len - 1 : 0);
}

int api_check_infer_head(const char *deadline_hdr, const char *class_hdr, const char *content_length,
			 uint32_t default_deadline_ms, enum sla_class default_class, size_t max_body_bytes,
			 struct api_infer_head *head, const char **bad_header)
{
	head->deadline_ms = default_deadline_ms;
	head->cls = default_class;
	*bad_header = NULL;
	if (deadline_hdr && api_parse_deadline_ms(deadline_hdr, &head->deadline_ms) < 0) {
		*bad_header = "X-Berth-Deadline-Ms";
		return 400;
	}
	if (class_hdr && api_parse_class(class_hdr, &head->cls) < 0) {
		*bad_header = "X-Berth-Class";
		return 400;
	}
	if (content_length) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(content_length, &end, 10);
		if (errno || end == content_length || n > max_body_bytes) {
			*bad_header = "Content-Length";
			return errno || end == content_length ? 400 : 413;
		}
	}
	return 0;
}

const char *api_ms_text(char buf[API_MS_TEXT], uint64_t us)
{
	char *p = buf + API_MS_TEXT;
	*--p = '\0';
	for (int i = 0; i < 3; i++, us /= 10)
		*--p = (char)('0' + us % 10);
	*--p = '.';
	do
		*--p = (char)('0' + us % 10);
	while (us /= 10);
	return p;
}
