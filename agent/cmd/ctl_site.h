/* agent/cmd/ctl_site.h - berthctl site-join and site-leave: their command verbs and arguments. */
#ifndef BERTH_CTL_SITE_H
#define BERTH_CTL_SITE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "agent/cmd/ctl_args.h"

/* The MQTT verb of a subcommand: site_join / site_leave for site-join / site-leave, else its name. */
const char *ctl_site_verb(enum ctl_verb v);
/* Adds {"id":..} (and "address" for site-join) to args. false when out of memory. */
bool ctl_site_args(const struct ctl_args *a, cJSON *args);

#endif
