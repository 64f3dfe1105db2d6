/* agent/cmd/ctl_site.c - berthctl site-join and site-leave: the site_join/site_leave commands (docs/site.md). */
#include "agent/cmd/ctl_site.h"

const char *ctl_site_verb(enum ctl_verb v)
{
	return v == CTL_SITE_JOIN ? "site_join" : v == CTL_SITE_LEAVE ? "site_leave" : ctl_verb_name(v);
}

bool ctl_site_args(const struct ctl_args *a, cJSON *args)
{
	if (!cJSON_AddStringToObject(args, "id", a->member))
		return false;
	return !a->address || cJSON_AddStringToObject(args, "address", a->address);
}
