/* agent/model/siteconf.h - the site settings of the runtime config, checked and put in the site's member order (pure). */
#ifndef BERTH_SITE_SITECONF_H
#define BERTH_SITE_SITECONF_H

#include <stddef.h>

struct berth_config;

#define SITECONF_MIN_MEMBERS 2
#define SITECONF_MAX_MEMBERS 5
#define SITECONF_JOINER 0xffu         /* self of a gateway not in site.members: it joins by command */

struct siteconf_member {
	char device_id[64];
	char address[64];              /* "A.B.C.D:PORT" (IPv4) */
};

struct siteconf {
	struct siteconf_member members[SITECONF_MAX_MEMBERS]; /* sorted by device id */
	unsigned n;
	unsigned self;                /* index of this gateway (config device_id); SITECONF_JOINER: not listed */
	struct siteconf_member me;    /* this gateway: its device id and the address it binds */
	unsigned failover_ms;
	unsigned lease_ms;
	unsigned election_timeout_ms;
	unsigned heartbeat_ms;
	unsigned long long members_hash; /* FNV-1a over the sorted "id=address," list */
};

/* Parses cfg->site.members ("ID=A.B.C.D:PORT,...") and the timings. Returns 0,
 * or -EINVAL with *key set to the offending config key and why filled:
 * fewer than 2 or more than SITECONF_MAX_MEMBERS members, a malformed entry
 * or address, a duplicate id or address, this device_id missing from the
 * list without site.address (a joining gateway gives its own address there;
 * it must not be a listed member's), site.address disagreeing with this
 * gateway's entry, lease_ms not below failover_ms, election_timeout_ms above lease_ms. */
int siteconf_parse(const struct berth_config *cfg, struct siteconf *out, const char **key, char *why, size_t why_len)
	__attribute__((warn_unused_result));

/* Whether a is "A.B.C.D:PORT" (IPv4, port 1..65535). */
int siteconf_address_ok(const char *a);

#endif
