/* agent/base/jsonutil.c - small cJSON helpers shared by the pure parsers. */
#include "agent/base/jsonutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

const char *jsonutil_type_name(const cJSON *v)
{
	if (cJSON_IsString(v)) return "a string";
	if (cJSON_IsNumber(v)) return "a number";
	if (cJSON_IsBool(v)) return "a boolean";
	if (cJSON_IsNull(v)) return "null";
	if (cJSON_IsArray(v)) return "an array";
	if (cJSON_IsObject(v)) return "an object";
	return "invalid";
}

bool jsonutil_key_repeated(const cJSON *obj, const cJSON *item)
{
	for (const cJSON *d = obj->child; d && d != item; d = d->next)
		if (strcmp(d->string, item->string) == 0)
			return true;
	return false;
}

size_t jsonutil_quote(char *buf, size_t len, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
#define PUT(c) do { if (o + 1 < len) buf[o] = (c); o++; } while (0)
	PUT('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			PUT('\\');
			PUT((char)*p);
		} else if (*p < 0x20) {
			PUT('\\'); PUT('u'); PUT('0'); PUT('0');
			PUT(hex[*p >> 4]);
			PUT(hex[*p & 15]);
		} else {
			PUT((char)*p);
		}
	}
	PUT('"');
#undef PUT
	if (len)
		buf[o < len ? o : len - 1] = '\0';
	return o;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int jsonutil_check_strings(const char *text, size_t len, size_t *off, const char **why)
{
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		*off = i;
		if (c == 0) {
			*why = "a NUL byte";
			return -EINVAL;
		}
		if (!in_str) {
			in_str = c == '"';
			continue;
		}
		if (c == '"') {
			in_str = false;
		} else if (c < 0x20 || c == 0x7f) {
			*why = "a control character in a string";
			return -EINVAL;
		} else if (c == '\\' && i + 1 < len) {
			unsigned char e = (unsigned char)text[++i];
			*off = i;
			if (e == 0) {
				*why = "a NUL byte";
				return -EINVAL;
			}
			if (e < 0x20 || e == 0x7f || e == 'b' || e == 'f') {
				*why = "a control character in a string";
				return -EINVAL;
			}
			if (e == 'u' && i + 4 < len) {
				int v = 0;
				for (int k = 1; k <= 4 && v >= 0; k++) {
					int h = hexval(text[i + k]);
					v = h < 0 ? -1 : v * 16 + h;
				}
				if (v < 0)
					continue; /* not four hex digits: the scan goes on, the parser names the error */
				if (v == 0) {
					*why = "a NUL character (\\u0000)";
					return -EINVAL;
				}
				if ((v < 0x20 && v != '\t' && v != '\n' && v != '\r') || v == 0x7f) {
					*why = "a control character in a string";
					return -EINVAL;
				}
				i += 4;
			}
		}
	}
	return 0;
}

bool jsonutil_is_text(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}
