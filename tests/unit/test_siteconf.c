/* tests/unit/test_siteconf.c - the site settings and a deployment's placement: bad input is refused with the key named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/config.h"
#include "agent/model/deploy.h"
#include "agent/model/siteconf.h"

/* The site object checked as berthd checks it: the config table first (types,
 * ranges, unknown keys), then siteconf_parse (what config_parse runs for
 * site.enabled in a CONFIG_SITE build). Returns 0 or -EINVAL with err filled. */
static int check_site(const char *device, const char *site, struct config_error *err)
{
	char text[1024], off[512];
	static struct berth_config cfg;
	/* the table's checks, without the build's: "enabled":true -> false */
	const char *en = strstr(site, "\"enabled\":true");
	if (en)
		snprintf(off, sizeof(off), "%.*s\"enabled\":false%s", (int)(en - site), site, en + 14);
	else
		snprintf(off, sizeof(off), "%s", site);
	snprintf(text, sizeof(text), "{\"device_id\":\"%s\",\"data_dir\":\"/tmp/x\",\"site\":%s}", device, off);
	int rc = config_parse(text, strlen(text), &cfg, err);
	if (rc)
		return rc;
	struct siteconf sc;
	const char *key = "";
	rc = siteconf_parse(&cfg, &sc, &key, err->message, sizeof(err->message));
	snprintf(err->key, sizeof(err->key), "%s", key);
	return rc;
}

static void good_site_is_sorted_and_self_found(void **state)
{
	(void)state;
	static struct berth_config cfg;
	struct config_error err;
	const char *text = "{\"device_id\":\"gw2\",\"data_dir\":\"/tmp/x\",\"site\":{\"enabled\":false,"
			   "\"members\":\"gw3=10.0.0.3:7400, gw1=10.0.0.1:7400,gw2=10.0.0.2:7400\"}}";
	assert_int_equal(config_parse(text, strlen(text), &cfg, &err), 0);
	struct siteconf a, b;
	const char *key;
	char why[200];
	assert_int_equal(siteconf_parse(&cfg, &a, &key, why, sizeof(why)), 0);
	assert_int_equal(a.n, 3);
	assert_string_equal(a.members[0].device_id, "gw1");
	assert_string_equal(a.members[2].address, "10.0.0.3:7400");
	assert_int_equal(a.self, 1);
	assert_int_equal(a.failover_ms, 3000);
	assert_true(a.lease_ms < a.failover_ms);
	/* the same list in another order on another member: same hash */
	snprintf(cfg.site.members, sizeof(cfg.site.members), "gw2=10.0.0.2:7400,gw1=10.0.0.1:7400,gw3=10.0.0.3:7400");
	snprintf(cfg.device_id, sizeof(cfg.device_id), "gw3");
	assert_int_equal(siteconf_parse(&cfg, &b, &key, why, sizeof(why)), 0);
	assert_true(a.members_hash == b.members_hash);
	/* a different address: a different hash (members disagree) */
	snprintf(cfg.site.members, sizeof(cfg.site.members), "gw2=10.0.0.2:7401,gw1=10.0.0.1:7400,gw3=10.0.0.3:7400");
	assert_int_equal(siteconf_parse(&cfg, &b, &key, why, sizeof(why)), 0);
	assert_true(a.members_hash != b.members_hash);
	/* site.enabled: checked in a site build, refused with its key in one without */
	const char *on = "{\"device_id\":\"gw1\",\"data_dir\":\"/tmp/x\",\"site\":{\"enabled\":true,"
			 "\"members\":\"gw1=10.0.0.1:7400,gw2=10.0.0.2:7400\"}}";
	int rc = config_parse(on, strlen(on), &cfg, &err);
	if (IS_ENABLED(CONFIG_SITE)) {
		assert_int_equal(rc, 0);
	} else {
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err.key, "site.enabled");
	}
}

static void bad_site_names_the_key(void **state)
{
	(void)state;
	static const struct {
		const char *site, *key, *words;
	} bad[] = {
		{ "{\"enabled\":true,\"members\":\"gw1=10.0.0.1:7400\"}", "site.members", "at least 2" },
		{ "{\"enabled\":true,\"members\":\"gw1=10.0.0.1:7400,gw1=10.0.0.2:7400\"}", "site.members", "twice" },
		{ "{\"enabled\":true,\"members\":\"gw1=10.0.0.1:7400,gw2=10.0.0.1:7400\"}", "site.members", "twice" },
		{ "{\"enabled\":true,\"members\":\"gw2=10.0.0.2:7400,gw3=10.0.0.3:7400\"}", "site.members", "not in the list" },
		{ "{\"enabled\":true,\"members\":\"gw1=10.0.0.1,gw2=10.0.0.2:7400\"}", "site.members", "IPv4" },
		{ "{\"enabled\":true,\"members\":\"gw1=10.0.0.1:7400,gw2\"}", "site.members", "ID=" },
		{ "{\"enabled\":true,\"members\":\"gw1=10.0.0.1:7400,gw2=10.0.0.2:7400\",\"lease_ms\":3000}", "site.lease_ms",
		  "below" },
		{ "{\"enabled\":true,\"members\":\"gw1=10.0.0.1:7400,gw2=10.0.0.2:7400\",\"election_timeout_ms\":2500}",
		  "site.election_timeout_ms", "lease" },
		{ "{\"enabled\":true,\"failover_ms\":100}", "site.failover_ms", "" },
		{ "{\"enabeld\":true}", "site.enabeld", "" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config_error err;
		if (check_site("gw1", bad[i].site, &err) != -EINVAL)
			fail_msg("accepted: %s", bad[i].site);
		if (strcmp(err.key, bad[i].key) || !strstr(err.message, bad[i].words))
			fail_msg("%s: got key '%s' message '%s'", bad[i].site, err.key, err.message);
	}
}

static void placement_is_parsed_and_checked(void **state)
{
	(void)state;
	static struct deploy_set set;
	struct deploy_error err;
	const char *good = "{\"version\":1,\"deployments\":[{\"name\":\"a\",\"image\":\"i\",\"placement\":"
			   "{\"scope\":\"site\",\"replicas\":3,\"spread\":true}},{\"name\":\"b\",\"image\":\"i\","
			   "\"inference\":{\"port\":9000}}]}";
	assert_int_equal(deploy_parse(good, strlen(good), &set, &err), 0);
	assert_int_equal(set.d[0].scope, DEPLOY_SCOPE_SITE);
	assert_int_equal(set.d[0].site_replicas, 3);
	assert_true(set.d[0].spread);
	assert_int_equal(set.d[1].scope, DEPLOY_SCOPE_NODE);
	/* the JSON form keeps the placement (the site log carries it) */
	char json[4096];
	assert_true(deploy_spec_to_json(&set.d[0], json, sizeof(json)) > 0);
	assert_non_null(strstr(json, "\"placement\":{\"scope\":\"site\",\"replicas\":3,\"spread\":true}"));
	static const struct {
		const char *placement, *field;
	} bad[] = {
		{ "{\"scope\":\"region\"}", "placement.scope" },
		{ "{\"scope\":\"site\",\"replicas\":99}", "placement.replicas" },
		{ "{\"scope\":\"site\",\"spread\":1}", "placement.spread" },
		{ "{\"scope\":\"node\",\"replicas\":2}", "placement.scope" },
		{ "{\"scope\":\"site\",\"spred\":true}", "placement.spred" },
		{ "\"site\"", "placement" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text), "{\"version\":1,\"deployments\":[{\"name\":\"a\",\"image\":\"i\",\"placement\":%s}]}",
			 bad[i].placement);
		if (deploy_parse(text, strlen(text), &set, &err) != -EINVAL)
			fail_msg("accepted placement %s", bad[i].placement);
		if (strcmp(err.field, bad[i].field))
			fail_msg("placement %s: field '%s', expected '%s' (%s)", bad[i].placement, err.field, bad[i].field,
				 err.message);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_site_is_sorted_and_self_found),
		cmocka_unit_test(bad_site_names_the_key),
		cmocka_unit_test(placement_is_parsed_and_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
