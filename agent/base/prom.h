/* agent/base/prom.h - one Prometheus text-format family (HELP, TYPE, one sample) into a caller's buffer. */
#ifndef BERTH_PROM_H
#define BERTH_PROM_H

#include <stddef.h>

/* Appends "# HELP name help", "# TYPE name type" and "name value" (%.15g: integers up to
 * 1e15 print whole) at buf + *off (len bytes in all); *off grows by the length needed,
 * as snprintf counts, so a caller learns the size for a larger buffer. */
void prom_family(char *buf, size_t len, size_t *off, const char *name, const char *type, const char *help,
		 double value);

#endif
