/* agent/base/prom.c - one Prometheus text-format family into a caller's buffer, counting past its end. */
#include "agent/base/prom.h"

#include <stdio.h>

void prom_family(char *buf, size_t len, size_t *off, const char *name, const char *type, const char *help,
		 double value)
{
	int k = snprintf(*off < len ? buf + *off : NULL, *off < len ? len - *off : 0,
			 "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, value);
	if (k > 0)
		*off += (size_t)k;
}
