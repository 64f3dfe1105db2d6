/* agent/base/jsonutil.c - small cJSON helpers shared by the pure parsers. */
#include "agent/base/jsonutil.h"

#include <cjson/cJSON.h>
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
