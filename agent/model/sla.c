/* agent/model/sla.c - names of the SLA classes (the only copy of the table). */
#include "agent/model/sla.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static const char *const sla_names[SLA_NCLASSES] = { "urgent", "normal", "batch" };

const char *sla_class_name(enum sla_class c)
{
	return (unsigned)c < SLA_NCLASSES ? sla_names[c] : "?";
}

int sla_class_parse(const char *s, size_t n, bool ignore_case)
{
	for (int i = 0; s && i < SLA_NCLASSES; i++) {
		if (strlen(sla_names[i]) != n)
			continue;
		if (ignore_case ? strncasecmp(s, sla_names[i], n) == 0 : strncmp(s, sla_names[i], n) == 0)
			return i;
	}
	return -EINVAL;
}
