/* agent/model/siteconf.c - checks site.members and the site timings; sorts members so every gateway numbers them alike. */
#include "agent/model/siteconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/config.h"

static int bad(const char **key, const char *k, char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int bad(const char **key, const char *k, char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	*key = k;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int siteconf_address_ok(const char *a)
{
	unsigned b[4], port;
	char extra;
	if (sscanf(a, "%u.%u.%u.%u:%u%c", &b[0], &b[1], &b[2], &b[3], &port, &extra) != 5)
		return 0;
	for (int i = 0; i < 4; i++)
		if (b[i] > 255)
			return 0;
	return port >= 1 && port <= 65535;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct siteconf_member *)a)->device_id, ((const struct siteconf_member *)b)->device_id);
}

int siteconf_parse(const struct berth_config *cfg, struct siteconf *out, const char **key, char *why, size_t why_len)
{
	char list[sizeof(cfg->site.members)];
	memset(out, 0, sizeof(*out));
	snprintf(list, sizeof(list), "%s", cfg->site.members);
	char *save = NULL;
	for (char *e = strtok_r(list, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		while (*e == ' ')
			e++;
		char *eq = strchr(e, '=');
		if (!eq || eq == e)
			return bad(key, "site.members", why, why_len, "\"%.80s\" is not ID=A.B.C.D:PORT", e);
		*eq = '\0';
		if (out->n == SITECONF_MAX_MEMBERS)
			return bad(key, "site.members", why, why_len, "more than %s members", "5");
		if (strlen(e) >= sizeof(out->members[0].device_id) || strlen(eq + 1) >= sizeof(out->members[0].address))
			return bad(key, "site.members", why, why_len, "member \"%.80s\": id or address too long", e);
		if (!siteconf_address_ok(eq + 1))
			return bad(key, "site.members", why, why_len, "\"%.80s\" is not an IPv4 address with a port",
				   eq + 1);
		for (unsigned i = 0; i < out->n; i++) {
			if (!strcmp(out->members[i].device_id, e))
				return bad(key, "site.members", why, why_len, "member id \"%.64s\" appears twice", e);
			if (!strcmp(out->members[i].address, eq + 1))
				return bad(key, "site.members", why, why_len, "address %.64s appears twice", eq + 1);
		}
		snprintf(out->members[out->n].device_id, sizeof(out->members[0].device_id), "%s", e);
		snprintf(out->members[out->n].address, sizeof(out->members[0].address), "%s", eq + 1);
		out->n++;
	}
	if (out->n < SITECONF_MIN_MEMBERS)
		return bad(key, "site.members", why, why_len, "a site needs at least 2 members (ID=A.B.C.D:PORT,...)%s", "");
	qsort(out->members, out->n, sizeof(out->members[0]), cmp_member);
	unsigned long long h = 1469598103934665603ull;
	int self = -1;
	for (unsigned i = 0; i < out->n; i++) {
		if (!strcmp(out->members[i].device_id, cfg->device_id))
			self = (int)i;
		for (const char *p = out->members[i].device_id; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ '=') * 1099511628211ull;
		for (const char *p = out->members[i].address; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ ',') * 1099511628211ull;
	}
	const char *addr = cfg->site.address;
	if (self >= 0 && addr[0] && strcmp(addr, out->members[self].address))
		return bad(key, "site.address", why, why_len, "%.64s differs from this gateway's entry in site.members (%s)",
			   addr, out->members[self].address);
	if (self < 0 && !addr[0])
		return bad(key, "site.members", why, why_len,
			   "this gateway's device_id \"%.64s\" is not in the list (a gateway that joins by command "
			   "gives its own site.address)", cfg->device_id);
	if (self < 0 && !siteconf_address_ok(addr))
		return bad(key, "site.address", why, why_len, "\"%.64s\" is not an IPv4 address with a port", addr);
	for (unsigned i = 0; self < 0 && i < out->n; i++)
		if (!strcmp(out->members[i].address, addr))
			return bad(key, "site.address", why, why_len, "%.64s is member %s's address", addr,
				   out->members[i].device_id);
	out->self = self < 0 ? SITECONF_JOINER : (unsigned)self;
	snprintf(out->me.device_id, sizeof(out->me.device_id), "%s", cfg->device_id);
	snprintf(out->me.address, sizeof(out->me.address), "%s", self < 0 ? addr : out->members[self].address);
	out->members_hash = h;
	out->failover_ms = (unsigned)cfg->site.failover_ms;
	out->lease_ms = (unsigned)cfg->site.lease_ms;
	out->election_timeout_ms = (unsigned)cfg->site.election_timeout_ms;
	if (out->lease_ms >= out->failover_ms)
		return bad(key, "site.lease_ms", why, why_len, "must be below site.failover_ms%s", "");
	if (out->election_timeout_ms > out->lease_ms)
		return bad(key, "site.election_timeout_ms", why, why_len, "must not be above site.lease_ms%s", "");
	out->heartbeat_ms = out->lease_ms / 8 < 50 ? 50 : out->lease_ms / 8;
	if (out->heartbeat_ms > 250)
		out->heartbeat_ms = 250;
	return 0;
}
