/* agent/jsonutil.c - small cJSON helpers shared by the pure parsers. */
#include "agent/jsonutil.h"

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
