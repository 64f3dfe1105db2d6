/* agent/model/sla.h - the SLA classes of a request or deployment: the one table of their names. */
#ifndef BERTH_SLA_H
#define BERTH_SLA_H

#include <stdbool.h>
#include <stddef.h>

/* In order of urgency; the index of per-class arrays everywhere. */
enum sla_class { SLA_URGENT = 0, SLA_NORMAL, SLA_BATCH, SLA_NCLASSES };

/* "urgent", "normal", "batch"; "?" for anything else. Never NULL. */
const char *sla_class_name(enum sla_class c);
/* The class named by the n bytes at s (exactly, or in any case when
 * ignore_case). Returns the class (>= 0) or -EINVAL. */
int sla_class_parse(const char *s, size_t n, bool ignore_case);

#endif
