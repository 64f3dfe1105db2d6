/* tests/unit/test_ctl.c - berthctl's pure parts: argument parsing, config overrides, tables, replies, timeouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/model/config.h"
#include "agent/cmd/ctl_args.h"
#include "agent/cmd/ctl_fmt.h"

/* 2025-01-01 12:00:00 UTC */
#define NOW_MS 1735732800000LL

static int parse(struct ctl_args *a, char *err, const char *line)
{
	static char buf[512];
	char *argv[32];
	int argc = 0;
	snprintf(buf, sizeof(buf), "%s", line);
	argv[argc++] = "berthctl";
	for (char *tok = strtok(buf, " "); tok && argc < 31; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	return ctl_args_parse(argc, argv, a, err, 256);
}

static void args_subcommands_and_positionals(void **state)
{
	struct ctl_args a;
	char err[256];
	assert_int_equal(parse(&a, err, "devices"), 0);
	assert_int_equal(a.verb, CTL_DEVICES);
	assert_int_equal(a.timeout_ms, CTL_TIMEOUT_DEFAULT_MS);

	assert_int_equal(parse(&a, err, "--json state gw-01 -t 2.5"), 0);
	assert_int_equal(a.verb, CTL_STATE);
	assert_string_equal(a.device, "gw-01");
	assert_true(a.json);
	assert_int_equal(a.timeout_ms, 2500);

	assert_int_equal(parse(&a, err, "scale gw-01 detector 3"), 0);
	assert_string_equal(a.deployment, "detector");
	assert_int_equal(a.replicas, 3);

	assert_int_equal(parse(&a, err, "deploy gw-01 spec.json --version 7"), 0);
	assert_string_equal(a.file, "spec.json");
	assert_int_equal(a.version, 7);

	assert_int_equal(parse(&a, err, "chaos gw-01 detector --interval 10 --duration=60 --min-running 0"), 0);
	assert_int_equal(a.interval_s, 10);
	assert_int_equal(a.duration_s, 60);
	assert_true(a.min_running_set);
	assert_int_equal(a.min_running, 0);

	assert_int_equal(parse(&a, err, "events gw-01 -f -vv"), 0);
	assert_true(a.follow);
	assert_int_equal(a.verbose, 2);

	assert_int_equal(parse(&a, err, "--help"), 0);
	assert_int_equal(a.verb, CTL_HELP);
	assert_int_equal(parse(&a, err, "-V"), 0);
	assert_int_equal(a.verb, CTL_VERSION);
}

static void args_errors_name_the_problem(void **state)
{
	struct ctl_args a;
	char err[256];
	static const struct {
		const char *line;
		const char *msg;
	} cases[] = {
		{ "", "no command given" },
		{ "frobnicate", "unknown command 'frobnicate'" },
		{ "state", "state: missing DEVICE" },
		{ "scale gw-01 detector", "scale: missing N (usage: berthctl scale DEVICE DEPLOYMENT N)" },
		{ "scale gw-01 detector many", "scale: N must be an integer 0..15, got 'many'" },
		{ "scale gw-01 detector 16", "scale: N must be an integer 0..15, got '16'" },
		{ "scale gw-01 Detector 1", "scale: DEPLOYMENT 'Detector' must be 1..47 characters of a-z, 0-9 and '-'" },
		{ "state gw/01", "state: DEVICE 'gw/01' must be 1..63 characters" },
		{ "state gw-01 extra", "state: unexpected argument 'extra'" },
		{ "state gw-01 --follow", "state: option --follow does not apply" },
		{ "chaos gw-01 detector --interval 5", "chaos: --interval S and --duration S are required" },
		{ "devices --timeout 0", "--timeout: expected seconds 0.1..3600, got '0'" },
		{ "devices --timeout", "--timeout needs a value" },
		{ "devices --broker host:99999", "--broker 'host:99999': the port must be 1..65535" },
		{ "devices --frob", "unknown option '--frob'" },
		{ "devices --json=1", "--json takes no value" },
		{ "devices --cert c.pem", "--cert and --key go together" },
		{ "events gw-01 -f -n 3", "events: --follow and --count exclude each other" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(&a, err, cases[i].line), -EINVAL);
		if (!strstr(err, cases[i].msg)) {
			print_error("line '%s': got '%s', want '%s'\n", cases[i].line, err, cases[i].msg);
			fail();
		}
	}
}

/* getopt_long's forms: options anywhere, --opt=value, attached short values, "--", --version's two meanings,
 * group commands, sign and keygen; a second parse starts afresh. */
static void args_getopt_forms(void **state)
{
	(void)state;
	struct ctl_args a;
	char err[256];
	assert_int_equal(parse(&a, err, "--version"), 0);
	assert_int_equal(a.verb, CTL_VERSION);
	assert_int_equal(parse(&a, err, "deploy gw-01 spec.json --version"), 0);
	assert_int_equal(a.verb, CTL_VERSION); /* no number after it: berthctl's own */
	assert_int_equal(parse(&a, err, "deploy --version=9 gw-01 spec.json"), 0);
	assert_int_equal(a.verb, CTL_DEPLOY);
	assert_int_equal(a.version, 9);
	assert_int_equal(parse(&a, err, "-t5 -vv -c cfg.json check-deployments d.json"), 0);
	assert_int_equal(a.verb, CTL_CHECK_DEPLOYMENTS);
	assert_string_equal(a.file, "d.json");
	assert_string_equal(a.config_file, "cfg.json");
	assert_int_equal(a.timeout_ms, 5000);
	assert_int_equal(a.verbose, 2);
	assert_int_equal(parse(&a, err, "state --json -- -odd-device"), 0);
	assert_string_equal(a.device, "-odd-device");
	assert_true(a.json);

	assert_int_equal(parse(&a, err, "--group edge-eu restart detector -t 2"), 0);
	assert_int_equal(a.verb, CTL_RESTART);
	assert_null(a.device);
	assert_string_equal(a.group, "edge-eu");
	assert_string_equal(a.deployment, "detector");
	assert_int_equal(parse(&a, err, "scale --group g1 detector 2"), 0);
	assert_int_equal(a.replicas, 2);
	assert_int_equal(parse(&a, err, "deploy --group g1 v2.json"), 0);
	assert_string_equal(a.file, "v2.json");
	assert_int_equal(parse(&a, err, "devices --group g1 --json"), 0);
	assert_string_equal(a.group, "g1");
	assert_int_equal(parse(&a, err, "rollout --group g1 plan.json"), 0);
	assert_int_equal(a.verb, CTL_ROLLOUT);
	assert_string_equal(a.file, "plan.json");

	assert_int_equal(parse(&a, err, "sign desired gw-01 - --target group:g1 --expire 60"), 0);
	assert_int_equal(a.verb, CTL_SIGN);
	assert_string_equal(a.kind, "desired");
	assert_string_equal(a.device, "gw-01");
	assert_string_equal(a.file, "-");
	assert_string_equal(a.target, "group:g1");
	assert_int_equal(a.expire_s, 60);
	assert_int_equal(parse(&a, err, "keygen ops-1 /tmp/k.json"), 0);
	assert_string_equal(a.key_id, "ops-1");
	assert_string_equal(a.file, "/tmp/k.json");
	/* Parsed twice in a row: getopt's state does not leak into the second parse. */
	assert_int_equal(parse(&a, err, "devices"), 0);
	assert_null(a.group);
}

static void args_group_and_getopt_errors(void **state)
{
	(void)state;
	struct ctl_args a;
	char err[256];
	static const struct {
		const char *line;
		const char *msg;
	} cases[] = {
		{ "rollout plan.json", "rollout: --group G is required" },
		{ "rollout --group g1", "rollout: missing FILE" },
		{ "state gw-01 --group g1", "state: option --group does not apply (group commands:" },
		{ "restart --group g1", "restart: missing DEPLOYMENT (usage: berthctl --group G restart DEPLOYMENT)" },
		{ "devices --group Edge", "--group: a group name is 1..32 of a-z, 0-9, '_' and '-', got 'Edge'" },
		{ "restart --group g1 --target device:x w", "--target does not go with it" },
		{ "sign blob gw-01 f", "sign: KIND must be command, desired, policy or keys, got 'blob'" },
		{ "keygen only-id", "keygen: missing FILE" },
		{ "devices -x", "unknown option '-x'" },
		{ "devices --frob=1", "unknown option '--frob'" },
		{ "devices -t", "-t needs a value" },
		{ "deploy gw-01 f --version=x", "--version: expected a version 1..2^53, got 'x'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(&a, err, cases[i].line), -EINVAL);
		if (!strstr(err, cases[i].msg)) {
			print_error("line '%s': got '%s', want '%s'\n", cases[i].line, err, cases[i].msg);
			fail();
		}
	}
}

static void args_override_the_config(void **state)
{
	struct ctl_args a;
	char err[256];
	struct berth_config cfg;
	config_defaults(&cfg);
	assert_int_equal(parse(&a, err, "devices"), 0);
	ctl_args_apply(&a, &cfg);
	assert_string_equal(cfg.broker.host, "127.0.0.1");
	assert_int_equal(cfg.broker.port, 1883);

	config_defaults(&cfg);
	cfg.broker.port = 8883;
	assert_int_equal(parse(&a, err, "devices -b broker.lan -u ops -P s3cret --cafile ca.pem --mqtt311"), 0);
	ctl_args_apply(&a, &cfg);
	assert_string_equal(cfg.broker.host, "broker.lan");
	assert_int_equal(cfg.broker.port, 8883); /* no port given: the config's stays */
	assert_string_equal(cfg.broker.username, "ops");
	assert_string_equal(cfg.broker.password, "s3cret");
	assert_true(cfg.broker.tls.enabled);
	assert_string_equal(cfg.broker.tls.ca_file, "ca.pem");
	assert_string_equal(cfg.broker.protocol, "v311");

	assert_int_equal(parse(&a, err, "devices --broker [::1]:1884"), 0);
	ctl_args_apply(&a, &cfg);
	assert_string_equal(cfg.broker.host, "::1");
	assert_int_equal(cfg.broker.port, 1884);
}

/* Runs fn's output through a memory stream; returns it (static). */
static char outbuf[8192];
static FILE *mem_open(void)
{
	FILE *f = fmemopen(outbuf, sizeof(outbuf), "w");
	assert_non_null(f);
	memset(outbuf, 0, sizeof(outbuf));
	return f;
}

static void age_and_presence(void **state)
{
	char buf[160];
	ctl_fmt_age(NOW_MS, NOW_MS - 500, buf, sizeof(buf));
	assert_string_equal(buf, "just now");
	ctl_fmt_age(NOW_MS, NOW_MS - 42000, buf, sizeof(buf));
	assert_string_equal(buf, "42 s ago");
	ctl_fmt_age(NOW_MS, NOW_MS - 3 * 60000 - 5000, buf, sizeof(buf));
	assert_string_equal(buf, "3 min ago");
	ctl_fmt_age(NOW_MS, NOW_MS - 5 * 3600000LL, buf, sizeof(buf));
	assert_string_equal(buf, "5 h ago");
	ctl_fmt_age(NOW_MS, NOW_MS - 9 * 86400000LL, buf, sizeof(buf));
	assert_string_equal(buf, "9 d ago");

	struct ctl_status st = { 0 };
	const char *on = "{\"schema\":1,\"device\":\"gw-01\",\"online\":true,\"ts\":1735732620000,\"version\":\"0.1.0\"}";
	assert_int_equal(ctl_status_parse(on, strlen(on), &st), 0);
	ctl_fmt_presence(&st, NOW_MS, buf, sizeof(buf));
	assert_string_equal(buf, "online since 2025-01-01 11:57:00 (3 min ago)");
	assert_string_equal(st.version, "0.1.0");
	assert_int_equal(ctl_status_parse("[1]", 3, &st), -EINVAL);

	/* A Last Will has no ts: the newest thing the device sent stands in. */
	struct ctl_status lwt = { 0 };
	const char *will = "{\"schema\":1,\"device\":\"gw-01\",\"online\":false}";
	assert_int_equal(ctl_status_parse(will, strlen(will), &lwt), 0);
	ctl_fmt_presence(&lwt, NOW_MS, buf, sizeof(buf));
	assert_string_equal(buf, "offline (time unknown)");
	ctl_status_seen(&lwt, NOW_MS - 600000);
	ctl_fmt_presence(&lwt, NOW_MS, buf, sizeof(buf));
	assert_string_equal(buf, "offline, last seen 2025-01-01 11:50:00 (10 min ago)");
}

static void no_answer_messages(void **state)
{
	char buf[384];
	struct ctl_status st = { .known = true, .online = false, .since_ms = NOW_MS - 180000 };
	ctl_fmt_no_answer("gw-01", 5000, &st, NOW_MS, buf, sizeof(buf));
	assert_string_equal(buf, "device gw-01 did not answer within 5 s; last seen offline 3 min ago");

	struct ctl_status none = { 0 };
	ctl_fmt_no_answer("gw-02", 1500, &none, NOW_MS, buf, sizeof(buf));
	assert_string_equal(buf, "device gw-02 did not answer within 1.5 s; it has no status on this broker "
				 "(never connected, or a different device id or broker)");

	struct ctl_status on = { .known = true, .online = true, .since_ms = NOW_MS - 20000 };
	ctl_fmt_no_answer("gw-03", 5000, &on, NOW_MS, buf, sizeof(buf));
	assert_string_equal(buf, "device gw-03 did not answer within 5 s; it is online (since 20 s ago) but sent no reply");
}

static void devices_table_and_json(void **state)
{
	struct ctl_device d[3] = { 0 };
	snprintf(d[0].id, sizeof(d[0].id), "gw-02");
	d[0].st = (struct ctl_status){ .known = true, .online = false, .since_ms = NOW_MS - 180000,
				       .last_seen_ms = NOW_MS - 180000, .version = "0.1.0" };
	snprintf(d[1].id, sizeof(d[1].id), "gw-01");
	d[1].st = (struct ctl_status){ .known = true, .online = true, .since_ms = NOW_MS - 7200000,
				       .last_seen_ms = NOW_MS - 1000, .version = "0.1.0" };
	snprintf(d[2].id, sizeof(d[2].id), "gw-10");
	d[2].st = (struct ctl_status){ .known = true, .online = false, .last_seen_ms = NOW_MS - 60000 };
	FILE *f = mem_open();
	ctl_fmt_devices(f, d, 3, NOW_MS, false);
	fclose(f);
	assert_string_equal(outbuf, "DEVICE  STATUS   SINCE                            LAST SEEN  VERSION\n"
				    "gw-01   online   2025-01-01 10:00:00 (2 h ago)    1 s ago    0.1.0\n"
				    "gw-02   offline  2025-01-01 11:57:00 (3 min ago)  3 min ago  0.1.0\n"
				    "gw-10   offline  -                                60 s ago   -\n");
	f = mem_open();
	ctl_fmt_devices(f, d, 1, NOW_MS, true);
	fclose(f);
	assert_string_equal(outbuf, "[{\"device\":\"gw-01\",\"online\":true,\"since_ms\":1735725600000,"
				    "\"last_seen_ms\":1735732799000,\"version\":\"0.1.0\"}]\n");
}

static const char sample_state[] =
	"{\"schema\":1,\"device\":\"gw-01\",\"ts\":1735732798000,\"desired_version\":4,\"engine\":\"available\","
	"\"deployments\":["
	"{\"name\":\"detector\",\"sla_class\":\"urgent\",\"replicas_ready\":2,\"replicas_desired\":2,\"replicas_min\":1,"
	"\"replicas_max\":4,\"health\":\"healthy\",\"circuit\":\"closed\",\"restarts\":1,\"sla_compliance\":0.9925},"
	"{\"name\":\"summarizer\",\"sla\":{\"class\":\"batch\",\"compliance\":0.5},\"replicas_ready\":0,"
	"\"replicas_desired\":1,\"replicas_min\":1,\"replicas_max\":2,\"health\":\"unavailable\",\"circuit\":\"open\","
	"\"restarts\":7,\"migration_needed\":true,\"last_error\":\"exit code 137\"},"
	"{\"name\":\"old-agent\",\"replicas_desired\":1}],"
	"\"sla\":{\"urgent\":{\"requests\":1200,\"on_time\":1191,\"late\":0,\"refused\":9,\"compliance\":0.9925},"
	"\"batch\":0.5},"
	"\"chaos\":{\"deployment\":\"detector\",\"running\":false,\"interval_ms\":2000,\"duration_ms\":10000,"
	"\"min_running\":2,\"runs\":1,\"kills\":4,\"skipped\":1,\"recovered\":4,\"pending\":0,\"mttr_mean_ms\":483,"
	"\"mttr_p95_ms\":556,\"mttr_max_ms\":561,\"failed_requests\":3}}";

static void state_table_from_a_sample(void **state)
{
	struct ctl_status st = { .known = true, .online = true, .since_ms = NOW_MS - 3600000 };
	FILE *f = mem_open();
	assert_int_equal(ctl_fmt_state(f, "gw-01", &st, sample_state, strlen(sample_state), NOW_MS, false), 0);
	fclose(f);
	assert_string_equal(outbuf,
			    "device gw-01: online since 2025-01-01 11:00:00 (60 min ago); desired version 4; state reported 2 s ago\n"
			    "engine: available\n"
			    "\n"
			    "DEPLOYMENT  CLASS   READY/DESIRED  MIN-MAX  HEALTH       CIRCUIT  RESTARTS  SLA\n"
			    "detector    urgent  2/2            1-4      healthy      closed   1         99.2%\n"
			    "summarizer  batch   0/1            1-2      unavailable  open     7         50.0%\n"
			    "old-agent   -       -/1            -        -            -        -         -\n"
			    "  summarizer: migration needed (local recovery keeps failing)\n"
			    "  summarizer: last error: exit code 137\n"
			    "\n"
			    "CLASS   REQUESTS  ON TIME  LATE  REFUSED  COMPLIANCE\n"
			    "urgent  1200      1191     0     9        99.2%\n"
			    "batch   -         -        -     -        50.0%\n"
			    "\n"
			    "chaos: detector, run 1 since berthd started (finished): a kill every 2 s for 10 s, at least 2 "
			    "running\n"
			    "  kills 4, skipped 1, replaced 4, pending 0; time to replacement mean 483 ms, p95 556 ms, max 561 ms; "
			    "failed requests 3\n");

	f = mem_open();
	assert_int_equal(ctl_fmt_state(f, "gw-01", &st, "{\"deployments\":[]}", 18, NOW_MS, false), 0);
	fclose(f);
	assert_non_null(strstr(outbuf, "\nno deployments\n"));

	/* Before the first chaos run (runs 0) there is no chaos section; a run in progress says so and shows
	 * its figures so far, a figure the state lacks as "-". */
	const char *idle = "{\"deployments\":[],\"chaos\":{\"deployment\":\"\",\"running\":false,\"runs\":0,\"kills\":0}}";
	f = mem_open();
	assert_int_equal(ctl_fmt_state(f, "gw-01", &st, idle, strlen(idle), NOW_MS, false), 0);
	fclose(f);
	assert_null(strstr(outbuf, "chaos"));
	const char *busy = "{\"deployments\":[],\"chaos\":{\"deployment\":\"w\",\"running\":true,\"interval_ms\":500,"
			   "\"duration_ms\":60000,\"min_running\":1,\"runs\":2,\"kills\":1,\"skipped\":0,\"recovered\":0,"
			   "\"pending\":1,\"failed_requests\":0}}";
	f = mem_open();
	assert_int_equal(ctl_fmt_state(f, "gw-01", &st, busy, strlen(busy), NOW_MS, false), 0);
	fclose(f);
	assert_non_null(strstr(outbuf, "\nno deployments\n\nchaos: w, run 2 since berthd started (running): a kill every "
				       "0.5 s for 60 s, at least 1 running\n  kills 1, skipped 0, replaced 0, pending 1; "
				       "time to replacement mean -, p95 -, max -; failed requests 0\n"));

	f = mem_open();
	assert_int_equal(ctl_fmt_state(f, "gw-01", &st, "{\"ts\":1}", 8, NOW_MS, true), 0);
	fclose(f);
	assert_string_equal(outbuf, "{\"device\":\"gw-01\",\"status\":{\"online\":true,\"since_ms\":1735729200000,"
				    "\"last_seen_ms\":null},\"state\":{\"ts\":1}}\n");

	f = mem_open();
	assert_int_equal(ctl_fmt_state(f, "gw-01", &st, "not json", 8, NOW_MS, false), -EINVAL);
	fclose(f);
	assert_string_equal(outbuf, "");
}

/* berthd reports compliance null while nothing was decided: "-", not 100%. */
static void state_without_requests_shows_no_compliance(void **state)
{
	(void)state;
	static const char fresh[] =
		"{\"deployments\":[{\"name\":\"detector\",\"sla_class\":\"urgent\",\"replicas_ready\":1,"
		"\"replicas_desired\":1,\"replicas_min\":1,\"replicas_max\":2,\"health\":\"healthy\",\"circuit\":\"closed\","
		"\"restarts\":0,\"sla_compliance\":null},"
		"{\"name\":\"busy\",\"sla_class\":\"normal\",\"replicas_ready\":1,\"replicas_desired\":1,\"replicas_min\":1,"
		"\"replicas_max\":1,\"health\":\"healthy\",\"circuit\":\"closed\",\"restarts\":0,\"sla_compliance\":1}],"
		"\"sla\":{\"urgent\":{\"requests\":0,\"on_time\":0,\"late\":0,\"failed\":0,\"refused\":0,\"compliance\":null},"
		"\"normal\":{\"requests\":3,\"on_time\":3,\"late\":0,\"failed\":0,\"refused\":0,\"compliance\":1.0000}}}";
	struct ctl_status st = { .known = true, .online = true, .since_ms = NOW_MS - 3600000 };
	FILE *f = mem_open();
	assert_int_equal(ctl_fmt_state(f, "gw-01", &st, fresh, strlen(fresh), NOW_MS, false), 0);
	fclose(f);
	assert_non_null(strstr(outbuf, "DEPLOYMENT  CLASS   READY/DESIRED  MIN-MAX  HEALTH   CIRCUIT  RESTARTS  SLA\n"
				       "detector    urgent  1/1            1-2      healthy  closed   0         -\n"
				       "busy        normal  1/1            1-1      healthy  closed   0         100.0%\n"));
	assert_non_null(strstr(outbuf, "CLASS   REQUESTS  ON TIME  LATE  REFUSED  COMPLIANCE\n"
				       "urgent  0         0        0     0        -\n"
				       "normal  3         3        0     0        100.0%\n"));
}

static void site_view_of_a_member(void **state)
{
	(void)state;
	static const char st[] =
		"{\"deployments\":[],\"site\":{\"self\":\"gw2\",\"role\":\"follower\",\"leader\":\"gw1\",\"lease\":true,"
		"\"term\":3,\"applied\":41,\"version\":2,\"members\":[{\"id\":\"gw1\",\"address\":\"10.0.0.1:7400\","
		"\"up\":true,\"heard_ms_ago\":120,\"cpu_milli\":1600,\"mem_bytes\":1073741824},{\"id\":\"gw3\","
		"\"address\":\"10.0.0.3:7400\",\"up\":false,\"heard_ms_ago\":9000,\"cpu_milli\":0,\"mem_bytes\":0}],"
		"\"deployments\":[{\"name\":\"det\",\"replicas\":2,\"assigned\":[\"gw1\",null],\"unplaced\":1,"
		"\"why\":\"needs cpu=100m memory=32MiB: no member is up and eligible\"}]}}";
	FILE *f = mem_open();
	assert_int_equal(ctl_fmt_site(f, "gw2", st, strlen(st), false), 0);
	fclose(f);
	const char *o = outbuf;
	assert_non_null(strstr(o, "site: gw2 is follower, leader gw1, lease held; term 3, log applied 41"));
	assert_non_null(strstr(o, "gw3"));
	assert_non_null(strstr(o, "1024MiB"));
	assert_non_null(strstr(o, "det: replicas on gw1 (unplaced); unplaceable: needs cpu=100m"));
	f = mem_open();
	assert_int_equal(ctl_fmt_site(f, "gw2", "{\"deployments\":[]}", 18, false), 0);
	fclose(f);
	assert_string_equal(outbuf, "gw2 is not in a site\n");
	f = mem_open();
	assert_int_equal(ctl_fmt_site(f, "gw2", "nope", 4, false), -EINVAL);
	fclose(f);
}

static void replies_accepted_and_refused(void **state)
{
	char errbuf[512];
	FILE *e = fmemopen(errbuf, sizeof(errbuf), "w");
	memset(errbuf, 0, sizeof(errbuf));
	FILE *f = mem_open();
	const char *ok = "{\"schema\":1,\"id\":\"c-1\",\"ok\":true,\"result\":{\"version\":3}}";
	assert_int_equal(ctl_fmt_reply(f, e, "deploy", "gw-01", ok, strlen(ok), "2 deployments: a, b", false), 0);
	const char *sc = "{\"schema\":1,\"id\":\"c-2\",\"ok\":true,\"result\":{\"deployment\":\"a\",\"replicas\":3}}";
	assert_int_equal(ctl_fmt_reply(f, e, "scale", "gw-01", sc, strlen(sc), NULL, false), 0);
	const char *no = "{\"schema\":1,\"id\":\"c-3\",\"ok\":false,\"error\":{\"code\":\"stale_version\","
			 "\"message\":\"args.version 1 is not newer than the current 3\"}}";
	assert_int_equal(ctl_fmt_reply(f, e, "deploy", "gw-01", no, strlen(no), NULL, false), 1);
	assert_int_equal(ctl_fmt_reply(f, e, "deploy", "gw-01", "{}", 2, NULL, false), -EINVAL);
	fclose(f);
	fclose(e);
	assert_string_equal(outbuf, "gw-01 accepted desired version 3 (2 deployments: a, b)\n"
				    "gw-01: a scaled to 3 replicas\n");
	assert_string_equal(errbuf, "gw-01 refused the deploy command: stale_version: args.version 1 is not newer "
				    "than the current 3\n");

	f = mem_open();
	assert_int_equal(ctl_fmt_reply(f, stderr, "deploy", "gw-01", no, strlen(no), NULL, true), 1);
	fclose(f);
	assert_string_equal(outbuf, "{\"schema\":1,\"id\":\"c-3\",\"ok\":false,\"error\":{\"code\":\"stale_version\","
				    "\"message\":\"args.version 1 is not newer than the current 3\"}}\n");
}

static void batches_as_rows(void **state)
{
	const char *ev = "{\"schema\":1,\"device\":\"gw-01\",\"kind\":\"event\",\"first_seq\":7,\"last_seq\":8,\"rows\":["
			 "{\"seq\":7,\"ts\":1735732790000,\"data\":{\"event\":\"circuit_open\",\"detail\":{\"deployment\":\"a\"}}},"
			 "{\"seq\":8,\"ts\":1735732795000,\"data\":{\"type\":\"store_recovered\",\"moved_to\":\"x\"}}]}";
	bool header = false;
	FILE *f = mem_open();
	assert_int_equal(ctl_fmt_batch(f, CTL_STREAM_EVENTS, ev, strlen(ev), false, &header, 0), 2);
	assert_true(header);
	assert_int_equal(ctl_fmt_batch(f, CTL_STREAM_EVENTS, ev, strlen(ev), false, &header, 1), 1);
	fclose(f);
	assert_string_equal(outbuf,
			    "TIME                      SEQ  TYPE                    DETAIL\n"
			    "2025-01-01 11:59:50         7  circuit_open            {\"deployment\":\"a\"}\n"
			    "2025-01-01 11:59:55         8  store_recovered         {\"moved_to\":\"x\"}\n"
			    "2025-01-01 11:59:50         7  circuit_open            {\"deployment\":\"a\"}\n");

	const char *tm = "{\"schema\":1,\"kind\":\"telemetry\",\"rows\":[{\"seq\":3,\"ts\":1735732799000,\"data\":"
			 "{\"node\":{\"cpu_pct\":12.5,\"ncpu\":4,\"mem_total_bytes\":1000,\"mem_avail_bytes\":750,"
			 "\"load1\":0.42,\"disk_total_bytes\":0,\"disk_free_bytes\":3221225472,\"uptime_s\":5,\"temp_c\":48.5},"
			 "\"store\":{\"rows\":12,\"dropped_telemetry\":2,\"dropped_events\":1},\"uplink\":{\"connected\":true}}}]}";
	header = false;
	f = mem_open();
	assert_int_equal(ctl_fmt_batch(f, CTL_STREAM_TELEMETRY, tm, strlen(tm), false, &header, 0), 1);
	assert_int_equal(ctl_fmt_batch(f, CTL_STREAM_TELEMETRY, tm, strlen(tm), true, &header, 0), 1);
	assert_int_equal(ctl_fmt_batch(f, CTL_STREAM_TELEMETRY, "{\"rows\":3}", 10, false, &header, 0), -EINVAL);
	fclose(f);
	char *second = strchr(strchr(outbuf, '\n') + 1, '\n') + 1;
	assert_memory_equal(outbuf,
			    "TIME                      SEQ     CPU     MEM   LOAD1   DISK FREE     TEMP  BUFFERED  DROPPED  UPLINK\n"
			    "2025-01-01 11:59:59         3   12.5%   25.0%    0.42     3.0 GiB   48.5 C        12        3  yes\n",
			    (size_t)(second - outbuf));
	assert_int_equal(strncmp(second, "{\"seq\":3,\"ts\":1735732799000,\"data\":{\"node\":", 42), 0);
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(args_subcommands_and_positionals),
		cmocka_unit_test(args_errors_name_the_problem),
		cmocka_unit_test(args_getopt_forms),
		cmocka_unit_test(args_group_and_getopt_errors),
		cmocka_unit_test(args_override_the_config),
		cmocka_unit_test(age_and_presence),
		cmocka_unit_test(no_answer_messages),
		cmocka_unit_test(devices_table_and_json),
		cmocka_unit_test(state_table_from_a_sample),
		cmocka_unit_test(state_without_requests_shows_no_compliance),
		cmocka_unit_test(site_view_of_a_member),
		cmocka_unit_test(replies_accepted_and_refused),
		cmocka_unit_test(batches_as_rows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
