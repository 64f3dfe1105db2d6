/* agent/cmd/ctl_args.c - parses berthctl's command line (pure: no I/O). */
#include "agent/cmd/ctl_args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/deploy.h"
#include "agent/model/siteconf.h"

static const char *const verb_names[] = {
	[CTL_HELP] = "help",       [CTL_VERSION] = "version", [CTL_DEVICES] = "devices",
	[CTL_STATE] = "state",     [CTL_DEPLOY] = "deploy",   [CTL_SCALE] = "scale",
	[CTL_RESTART] = "restart", [CTL_REMOVE] = "remove",   [CTL_CHAOS] = "chaos",
	[CTL_EVENTS] = "events",   [CTL_TELEMETRY] = "telemetry", [CTL_SITE] = "site",
	[CTL_ROLLBACK] = "rollback",
	[CTL_POLICY] = "policy", [CTL_SET_POLICY] = "set-policy", [CTL_SET_KEYS] = "set-keys",
	[CTL_CHECK_DEPLOYMENTS] = "check-deployments", [CTL_CHECK] = "check", [CTL_ROLLOUT] = "rollout",
	[CTL_SIGN] = "sign", [CTL_KEYGEN] = "keygen", [CTL_SITE_JOIN] = "site-join", [CTL_SITE_LEAVE] = "site-leave",
};
#define NVERBS (sizeof(verb_names) / sizeof(verb_names[0]))

/* Positional arguments after the subcommand: names for the messages. */
static const char *const positionals[][3] = {
	[CTL_HELP] = { NULL },
	[CTL_VERSION] = { NULL },
	[CTL_DEVICES] = { NULL },
	[CTL_STATE] = { "DEVICE" },
	[CTL_DEPLOY] = { "DEVICE", "FILE" },
	[CTL_SCALE] = { "DEVICE", "DEPLOYMENT", "N" },
	[CTL_RESTART] = { "DEVICE", "DEPLOYMENT" },
	[CTL_REMOVE] = { "DEVICE", "DEPLOYMENT" },
	[CTL_CHAOS] = { "DEVICE", "DEPLOYMENT" },
	[CTL_EVENTS] = { "DEVICE" },
	[CTL_TELEMETRY] = { "DEVICE" },
	[CTL_SITE] = { "DEVICE" },
	[CTL_ROLLBACK] = { "DEVICE", "DEPLOYMENT" },
	[CTL_POLICY] = { "DEVICE" },
	[CTL_SET_POLICY] = { "DEVICE", "FILE" },
	[CTL_SET_KEYS] = { "DEVICE", "FILE" },
	[CTL_CHECK_DEPLOYMENTS] = { "FILE" },
	[CTL_CHECK] = { NULL },
	[CTL_ROLLOUT] = { "FILE" },
	[CTL_SIGN] = { "KIND", "DEVICE", "FILE" },
	[CTL_KEYGEN] = { "ID", "FILE" },
	[CTL_SITE_JOIN] = { "DEVICE", "ID", "ADDRESS" },
	[CTL_SITE_LEAVE] = { "DEVICE", "ID" },
};

const char *ctl_verb_name(enum ctl_verb v) { return (size_t)v < NVERBS ? verb_names[v] : "?"; }

const char *ctl_usage(void)
{
	return "usage: berthctl [OPTIONS] COMMAND [ARGS]\n"
	       "\n"
	       "The console's command line for berth gateways, through the MQTT broker.\n"
	       "\n"
	       "Commands:\n"
	       "  devices [--group G]             every device seen on the broker (or G's members), online or offline,\n"
	       "                                  since when (with --group: desired version, readiness)\n"
	       "  state DEVICE                    the device's reported state as a table\n"
	       "  site DEVICE                     the site the device belongs to: leader, members, assignments\n"
	       "  site-join DEVICE ID ADDRESS     gateway ID (its site address A.B.C.D:PORT) joins DEVICE's site\n"
	       "  site-leave DEVICE ID            member ID leaves DEVICE's site (its site replicas move)\n"
	       "  deploy DEVICE FILE              validate a deployments file locally, send it, print the outcome\n"
	       "  scale DEVICE DEPLOYMENT N       set the desired replicas of a deployment\n"
	       "  restart DEVICE DEPLOYMENT       restart a deployment's replicas\n"
	       "  remove DEVICE DEPLOYMENT        remove a deployment (its containers are stopped)\n"
	       "  chaos DEVICE DEPLOYMENT         kill replicas now and then: --interval S --duration S [--min-running N]\n"
	       "  events DEVICE [--follow]        events as they arrive (without --follow: those within --timeout)\n"
	       "  telemetry DEVICE [--follow]     telemetry samples (without --follow: the next batch)\n"
	       "  policy DEVICE                   policy version, violations, repaired / awaiting approval\n"
	       "  set-policy DEVICE FILE          sign a policy document and publish it to the device (retained)\n"
	       "  set-keys DEVICE FILE            sign a trusted key list with a key the device trusts now (rotation)\n"
	       "  keygen ID FILE                  make an Ed25519 signing key FILE (mode 0600); prints a key list with it\n"
	       "  sign KIND DEVICE FILE|-         print FILE signed: KIND command|desired|policy|keys (no broker)\n"
	       "  state --local                   this gateway's state from berthd's local API (no broker)\n"
	       "  check-deployments FILE          validate a deployments file with berthd's parser (no broker)\n"
	       "  check                           on the gateway: config, data dir, engine, broker, clock, disk\n"
	       "                                  and memory, each ok/warn/fail with a fix (exit: the worst)\n"
	       "\n"
	       "Groups (a device's groups: its config's fleet.groups or its desired state's groups):\n"
	       "  --group G VERB ARGS             a group command: deploy FILE, scale DEPLOYMENT N, restart|remove|\n"
	       "                                  rollback|chaos DEPLOYMENT; one reply per member within --timeout\n"
	       "  rollout --group G FILE          staged rollout: canary, waves, health gate, halt and roll back;\n"
	       "                                  resumable (progress is read from the devices)\n"
	       "\n"
	       "Broker (a berthd config gives the same settings; options override it):\n"
	       "  -c, --config FILE               read broker settings from a berthd config file\n"
	       "  -b, --broker HOST[:PORT]        broker address (default 127.0.0.1:1883)\n"
	       "  -u, --username NAME             -P, --password SECRET\n"
	       "      --cafile FILE               TLS with this CA (minimum TLS 1.2)\n"
	       "      --cert FILE --key FILE      TLS client certificate and key\n"
	       "      --insecure                  do not check the broker's host name\n"
	       "      --mqtt311                   speak MQTT 3.1.1 (default: v5)\n"
	       "\n"
	       "Signing (every command, desired state, policy and key list is signed):\n"
	       "      --sign-key FILE             the signing key (default: $BERTH_SIGN_KEY)\n"
	       "      --target device:ID|group:G  whom the signature names (default device:DEVICE)\n"
	       "      --expire S                  a command expires S seconds after signing (default 3600)\n"
	       "\n"
	       "Output and waiting:\n"
	       "      --json                      machine-readable output (one JSON document; events and\n"
	       "                                  telemetry: one JSON object per line)\n"
	       "  -t, --timeout S                 wait at most S seconds for the broker and the device (default 5)\n"
	       "  -f, --follow                    events/telemetry: keep printing until interrupted\n"
	       "  -n, --count N                   events/telemetry: stop after N rows\n"
	       "      --version N                 deploy: send the file's deployments as version N\n"
	       "      --local                     state: ask berthd's local API (-c gives its address)\n"
	       "      --group G                   devices, rollout and group commands: the group\n"
	       "  -v, --verbose                   connection log on stderr (twice: debug)\n"
	       "  -V, --version                   berthctl's version (without a number after it)\n"
	       "  -h, --help                      this text\n"
	       "\n"
	       "Exit codes:\n"
	       "  0  done (the device accepted the command, or the output was printed)\n"
	       "  1  the device refused the command (its error code and message are printed)\n"
	       "  2  bad arguments, config or deployments file (nothing was sent)\n"
	       "  3  timeout: the device did not answer, or nothing arrived, within --timeout\n"
	       "  4  the broker could not be reached, or refused the connection or credentials\n";
}

int ctl_args_fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* Seconds with an optional fraction, "5" or "0.5", into ms. */
static bool parse_seconds_ms(const char *s, uint32_t min_ms, uint32_t max_ms, uint32_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return false;
	double ms = v * 1000.0;
	if (ms < min_ms || ms > max_ms)
		return false;
	*out = (uint32_t)llround(ms);
	return true;
}

static bool valid_device(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= 64)
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == '+' || *s == '#' || (unsigned char)*s < 0x21)
			return false;
	return true;
}

static bool valid_deployment(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= DEPLOY_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

static int parse_broker(struct ctl_args *a, const char *s, char *err, size_t errlen)
{
	const char *host = s, *colon = NULL;
	size_t hlen;
	if (s[0] == '[') { /* [::1]:1883 */
		const char *close = strchr(s, ']');
		if (!close)
			return ctl_args_fail(err, errlen, "--broker '%s': missing ']'", s);
		host = s + 1;
		hlen = (size_t)(close - host);
		if (close[1] == ':')
			colon = close + 1;
		else if (close[1])
			return ctl_args_fail(err, errlen, "--broker '%s': expected ':PORT' after ']'", s);
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
		hlen = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (hlen == 0 || hlen >= sizeof(a->host))
		return ctl_args_fail(err, errlen, "--broker '%s': the host is empty or too long", s);
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = 0;
	if (colon) {
		uint64_t p;
		if (!parse_u64(colon + 1, 1, 65535, &p))
			return ctl_args_fail(err, errlen, "--broker '%s': the port must be 1..65535", s);
		a->port = (int)p;
	}
	a->broker = s;
	return 0;
}

/* Options without a short form: getopt_long returns these (above any char). */
enum opt_id {
	O_CAFILE = 256, O_CERT, O_KEY, O_INSECURE, O_V311, O_JSON, O_VERSION, O_INTERVAL, O_DURATION, O_MIN_RUNNING,
	O_SIGN_KEY, O_TARGET, O_EXPIRE, O_LOCAL, O_GROUP,
};
static const struct option longopts[] = {
	{ "config", required_argument, NULL, 'c' },      { "broker", required_argument, NULL, 'b' },
	{ "username", required_argument, NULL, 'u' },    { "password", required_argument, NULL, 'P' },
	{ "cafile", required_argument, NULL, O_CAFILE }, { "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },       { "insecure", no_argument, NULL, O_INSECURE },
	{ "mqtt311", no_argument, NULL, O_V311 },        { "json", no_argument, NULL, O_JSON },
	{ "timeout", required_argument, NULL, 't' },     { "follow", no_argument, NULL, 'f' },
	{ "count", required_argument, NULL, 'n' },       { "version", optional_argument, NULL, O_VERSION },
	{ "interval", required_argument, NULL, O_INTERVAL }, { "duration", required_argument, NULL, O_DURATION },
	{ "min-running", required_argument, NULL, O_MIN_RUNNING }, { "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },              { "sign-key", required_argument, NULL, O_SIGN_KEY },
	{ "target", required_argument, NULL, O_TARGET }, { "expire", required_argument, NULL, O_EXPIRE },
	{ "local", no_argument, NULL, O_LOCAL },         { "group", required_argument, NULL, O_GROUP },
	{ NULL, 0, NULL, 0 },
};
/* '-': non-options come back in order (code 1), whatever POSIXLY_CORRECT says;
 * ':': a missing value is told apart from an unknown option. */
static const char shortopts[] = "-:c:b:u:P:t:fn:vhV";

static bool valid_group(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-");
	return n >= 1 && n <= 32 && s[n] == '\0';
}

/* Applies option id with value v (NULL when it takes none). Returns 0, 1
 * when nothing else matters (--help, -V), or -EINVAL (err says why). */
static int apply_opt(struct ctl_args *a, int id, const char *name, const char *v, char *err, size_t errlen)
{
	uint64_t u;
	switch (id) {
	case 'c': a->config_file = v; return 0;
	case 'b': return parse_broker(a, v, err, errlen);
	case 'u': a->username = v; return 0;
	case 'P': a->password = v; return 0;
	case O_CAFILE: a->ca_file = v; return 0;
	case O_CERT: a->cert_file = v; return 0;
	case O_KEY: a->key_file = v; return 0;
	case O_INSECURE: a->tls_insecure = true; return 0;
	case O_V311: a->v311 = true; return 0;
	case O_JSON: a->json = true; return 0;
	case O_LOCAL: a->local = true; return 0;
	case 'f': a->follow = true; return 0;
	case 'v': a->verbose++; return 0;
	case 'h': a->verb = CTL_HELP; return 1;
	case 'V': a->verb = CTL_VERSION; return 1;
	case O_SIGN_KEY: a->sign_key = v; return 0;
	case O_GROUP:
		if (!valid_group(v))
			return ctl_args_fail(err, errlen, "%s: a group name is 1..32 of a-z, 0-9, '_' and '-', got '%s'", name, v);
		a->group = v;
		return 0;
	case O_TARGET:
		if (strncmp(v, "device:", 7) && strncmp(v, "group:", 6))
			return ctl_args_fail(err, errlen, "%s: expected device:ID or group:NAME, got '%s'", name, v);
		a->target = v;
		return 0;
	case O_EXPIRE:
		if (!parse_u64(v, 1, 2592000, &u))
			return ctl_args_fail(err, errlen, "%s: expected seconds 1..2592000, got '%s'", name, v);
		a->expire_s = (uint32_t)u;
		return 0;
	case 't':
		if (!parse_seconds_ms(v, 100, CTL_TIMEOUT_MAX_MS, &a->timeout_ms))
			return ctl_args_fail(err, errlen, "%s: expected seconds 0.1..%u, got '%s'", name, CTL_TIMEOUT_MAX_MS / 1000, v);
		return 0;
	case 'n':
		if (!parse_u64(v, 1, 1000000, &u))
			return ctl_args_fail(err, errlen, "%s: expected a count 1..1000000, got '%s'", name, v);
		a->count = (uint32_t)u;
		return 0;
	case O_VERSION:
		if (!v) { /* --version alone: berthctl's own */
			a->verb = CTL_VERSION;
			return 1;
		}
		if (!parse_u64(v, 1, (uint64_t)1 << 53, &u))
			return ctl_args_fail(err, errlen, "%s: expected a version 1..2^53, got '%s'", name, v);
		a->version = u;
		return 0;
	case O_INTERVAL:
		if (!parse_u64(v, 1, 86400, &u))
			return ctl_args_fail(err, errlen, "%s: expected seconds 1..86400, got '%s'", name, v);
		a->interval_s = (uint32_t)u;
		return 0;
	case O_DURATION:
		if (!parse_u64(v, 1, 604800, &u))
			return ctl_args_fail(err, errlen, "%s: expected seconds 1..604800, got '%s'", name, v);
		a->duration_s = (uint32_t)u;
		return 0;
	case O_MIN_RUNNING:
		if (!parse_u64(v, 0, DEPLOY_MAX_REPLICAS - 1, &u))
			return ctl_args_fail(err, errlen, "%s: expected 0..%d, got '%s'", name, DEPLOY_MAX_REPLICAS - 1, v);
		a->min_running = (uint32_t)u;
		a->min_running_set = true;
		return 0;
	}
	return ctl_args_fail(err, errlen, "%s: unhandled option", name);
}

/* The verbs a group command may carry (berth/v1/group/G/cmd/VERB). */
static bool group_verb(enum ctl_verb v)
{
	return v == CTL_DEPLOY || v == CTL_SCALE || v == CTL_RESTART || v == CTL_REMOVE || v == CTL_CHAOS ||
	       v == CTL_ROLLBACK;
}

/* Which subcommands accept which options (the broker, signing, output and
 * verbose options are accepted everywhere). */
static bool opt_allowed(int id, enum ctl_verb v)
{
	switch (id) {
	case 'f':
	case 'n': return v == CTL_EVENTS || v == CTL_TELEMETRY;
	case O_VERSION: return v == CTL_DEPLOY;
	case O_LOCAL: return v == CTL_STATE;
	case O_GROUP: return v == CTL_DEVICES || v == CTL_ROLLOUT || group_verb(v);
	case O_INTERVAL:
	case O_DURATION:
	case O_MIN_RUNNING: return v == CTL_CHAOS;
	default: return true;
	}
}

/* The long name of option id, for messages ("V" for -V). */
static const char *opt_name(int id)
{
	for (const struct option *o = longopts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "V";
}

/* getopt_long's complaint about argv[optind - 1] as a message. */
static int getopt_error(int c, char *const argv[], char *err, size_t errlen)
{
	const char *s = argv[optind - 1] ? argv[optind - 1] : "";
	size_t nl = strcspn(s, "=");
	if (c == ':')
		return ctl_args_fail(err, errlen, "%.*s needs a value", (int)nl, s);
	if (optopt && strncmp(s, "--", 2) == 0)
		return ctl_args_fail(err, errlen, "%.*s takes no value", (int)nl, s);
	if (optopt)
		return ctl_args_fail(err, errlen, "unknown option '-%c' (see berthctl --help)", optopt);
	return ctl_args_fail(err, errlen, "unknown option '%.*s' (see berthctl --help)", (int)nl, s);
}

/* Takes the subcommand name or the next positional argument s. */
static int take_word(struct ctl_args *a, const char *s, bool *have_verb, const char **pos, unsigned *npos, char *err,
		     size_t errlen)
{
	if (*have_verb) {
		if (*npos >= 8)
			return ctl_args_fail(err, errlen, "too many arguments");
		pos[(*npos)++] = s;
		return 0;
	}
	size_t k;
	for (k = 0; k < NVERBS && strcmp(s, verb_names[k]) != 0; k++)
		;
	if (k == NVERBS)
		return ctl_args_fail(err, errlen, "unknown command '%s' (see berthctl --help)", s);
	a->verb = (enum ctl_verb)k;
	*have_verb = true;
	return 0;
}

/* The verb's positional arguments: their number, DEVICE, DEPLOYMENT and N. */
static int check_positionals(struct ctl_args *a, const char *const *pos, unsigned npos, char *err, size_t errlen)
{
	const char *const *names = positionals[a->verb];
	unsigned want = 0;
	while (want < 3 && names[want])
		want++;
	if ((a->verb == CTL_STATE && a->local) || (a->group && a->verb == CTL_DEVICES))
		want = 0; /* this gateway's own state: no DEVICE */
	bool group_cmd = a->group && group_verb(a->verb);
	if (group_cmd) { /* a group command: no DEVICE */
		names++;
		want--;
	}
	if (npos != want) {
		if (npos < want)
			return ctl_args_fail(err, errlen, "%s: missing %s (usage: berthctl %s%s%s%s%s%s%s%s)", verb_names[a->verb],
				    names[npos], group_cmd ? "--group G " : "", verb_names[a->verb],
				    want > 0 ? " " : "", want > 0 ? names[0] : "", want > 1 ? " " : "",
				    want > 1 ? names[1] : "", want > 2 ? " " : "", want > 2 ? names[2] : "");
		return ctl_args_fail(err, errlen, "%s: unexpected argument '%s'", verb_names[a->verb], pos[want]);
	}
	const char *const *p = pos;
	switch (a->verb) {
	case CTL_CHECK_DEPLOYMENTS:
	case CTL_ROLLOUT: a->file = pos[0]; return 0;
	case CTL_KEYGEN: a->key_id = pos[0]; a->file = pos[1]; return 0;
	case CTL_SIGN:
		if (strcmp(pos[0], "command") && strcmp(pos[0], "desired") && strcmp(pos[0], "policy") &&
		    strcmp(pos[0], "keys"))
			return ctl_args_fail(err, errlen, "sign: KIND must be command, desired, policy or keys, got '%s'", pos[0]);
		a->kind = pos[0];
		a->file = pos[2];
		p++;
		names++;
		break;
	default: break;
	}
	if (!group_cmd && want > 0 && names[0] && strcmp(names[0], "DEVICE") == 0) {
		a->device = *p++;
		if (!valid_device(a->device))
			return ctl_args_fail(err, errlen, "%s: DEVICE '%s' must be 1..63 characters without '/', '+', '#' or spaces",
				    verb_names[a->verb], a->device);
	}
	switch (a->verb) {
	case CTL_DEPLOY:
	case CTL_SET_POLICY:
	case CTL_SET_KEYS: a->file = p[0]; break;
	case CTL_SCALE: {
		uint64_t n;
		if (!parse_u64(p[1], 0, DEPLOY_MAX_REPLICAS - 1, &n))
			return ctl_args_fail(err, errlen, "scale: N must be an integer 0..%d, got '%s'", DEPLOY_MAX_REPLICAS - 1, p[1]);
		a->replicas = (uint32_t)n;
	}
		__attribute__((fallthrough));
	case CTL_RESTART:
	case CTL_REMOVE:
	case CTL_CHAOS:
	case CTL_ROLLBACK:
		a->deployment = p[0];
		if (!valid_deployment(a->deployment))
			return ctl_args_fail(err, errlen, "%s: DEPLOYMENT '%s' must be 1..%d characters of a-z, 0-9 and '-'",
				    verb_names[a->verb], a->deployment, DEPLOY_NAME_MAX - 1);
		break;
	case CTL_SITE_JOIN:
	case CTL_SITE_LEAVE:
		a->member = p[0];
		a->address = a->verb == CTL_SITE_JOIN ? p[1] : NULL;
		if (!valid_device(a->member))
			return ctl_args_fail(err, errlen, "%s: ID '%s' must be 1..63 characters without '/', '+', '#' or spaces",
				    verb_names[a->verb], a->member);
		if (a->address && !siteconf_address_ok(a->address))
			return ctl_args_fail(err, errlen, "site-join: ADDRESS '%s' must be A.B.C.D:PORT", a->address);
		break;
	default: break;
	}
	return 0;
}

/* The checks that need the verb and every option. */
static int check_combination(struct ctl_args *a, const int *given, unsigned ngiven, char *err, size_t errlen)
{
	for (unsigned i = 0; i < ngiven; i++)
		if (!opt_allowed(given[i], a->verb))
			return ctl_args_fail(err, errlen, "%s: option --%s does not apply%s", verb_names[a->verb], opt_name(given[i]),
				    given[i] == O_GROUP ? " (group commands: deploy, scale, restart, remove, chaos, rollback)"
							: "");
	if (a->verb == CTL_ROLLOUT && !a->group)
		return ctl_args_fail(err, errlen, "rollout: --group G is required (usage: berthctl rollout --group G FILE)");
	if (a->group && a->target)
		return ctl_args_fail(err, errlen, "--group signs for group:%s; --target does not go with it", a->group);
	if (a->verb == CTL_CHAOS && (!a->interval_s || !a->duration_s))
		return ctl_args_fail(err, errlen, "chaos: --interval S and --duration S are required");
	if (a->follow && a->count)
		return ctl_args_fail(err, errlen, "%s: --follow and --count exclude each other", verb_names[a->verb]);
	if (!a->cert_file != !a->key_file)
		return ctl_args_fail(err, errlen, "--cert and --key go together");
	return 0;
}

int ctl_args_parse(int argc, char *const argv[], struct ctl_args *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	a->timeout_ms = CTL_TIMEOUT_DEFAULT_MS;
	a->expire_s = 3600;
	a->verb = CTL_HELP;
	const char *pos[8];
	unsigned npos = 0, ngiven = 0;
	int given[64];
	bool have_verb = false;
	int c, rc;
	err[0] = '\0';
	optind = 0; /* glibc: 0 re-initialises, so a second parse starts afresh */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == 1) {
			if ((rc = take_word(a, optarg, &have_verb, pos, &npos, err, errlen)))
				return rc;
			continue;
		}
		if (c == '?' || c == ':')
			return getopt_error(c, argv, err, errlen);
		const char *v = optarg;
		/* --version N (a number after it) is deploy's version; --version alone berthctl's own. */
		if (c == O_VERSION && !v && optind < argc && argv[optind][0] &&
		    strspn(argv[optind], "0123456789") == strlen(argv[optind]))
			v = argv[optind++];
		char name[40];
		snprintf(name, sizeof(name), "--%s", opt_name(c));
		if ((rc = apply_opt(a, c, name, v, err, errlen)) != 0)
			return rc < 0 ? rc : 0; /* --help, -V: nothing else matters */
		if (ngiven < sizeof(given) / sizeof(given[0]))
			given[ngiven++] = c;
	}
	for (; optind < argc; optind++) /* after "--" */
		if ((rc = take_word(a, argv[optind], &have_verb, pos, &npos, err, errlen)))
			return rc;
	if (!have_verb)
		return ctl_args_fail(err, errlen, "no command given (see berthctl --help)");
	if ((rc = check_combination(a, given, ngiven, err, errlen)))
		return rc;
	return check_positionals(a, pos, npos, err, errlen);
}

void ctl_args_apply(const struct ctl_args *a, struct berth_config *cfg)
{
#define SET(dst, src) snprintf((dst), sizeof(dst), "%s", (src))
	if (a->broker) {
		SET(cfg->broker.host, a->host);
		if (a->port)
			cfg->broker.port = a->port;
	}
	if (a->username)
		SET(cfg->broker.username, a->username);
	if (a->password)
		SET(cfg->broker.password, a->password);
	if (a->ca_file) {
		SET(cfg->broker.tls.ca_file, a->ca_file);
		cfg->broker.tls.enabled = true;
	}
	if (a->cert_file)
		SET(cfg->broker.tls.cert_file, a->cert_file);
	if (a->key_file)
		SET(cfg->broker.tls.key_file, a->key_file);
	if (a->tls_insecure)
		cfg->broker.tls.insecure = true;
	if (a->v311)
		SET(cfg->broker.protocol, "v311");
#undef SET
}
