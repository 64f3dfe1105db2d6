/* agent/cmd/ctl_args.c - parses berthctl's command line (pure: no I/O). */
#include "agent/cmd/ctl_args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/deploy.h"

static const char *const verb_names[] = {
	[CTL_HELP] = "help",       [CTL_VERSION] = "version", [CTL_DEVICES] = "devices",
	[CTL_STATE] = "state",     [CTL_DEPLOY] = "deploy",   [CTL_SCALE] = "scale",
	[CTL_RESTART] = "restart", [CTL_REMOVE] = "remove",   [CTL_CHAOS] = "chaos",
	[CTL_EVENTS] = "events",   [CTL_TELEMETRY] = "telemetry", [CTL_SITE] = "site",
	[CTL_ROLLBACK] = "rollback",
	[CTL_POLICY] = "policy", [CTL_SET_POLICY] = "set-policy", [CTL_SET_KEYS] = "set-keys",
	[CTL_CHECK_DEPLOYMENTS] = "check-deployments", [CTL_CHECK] = "check",
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
};

const char *ctl_verb_name(enum ctl_verb v) { return (size_t)v < NVERBS ? verb_names[v] : "?"; }

const char *ctl_usage(void)
{
	return "usage: berthctl [OPTIONS] COMMAND [ARGS]\n"
	       "\n"
	       "The console's command line for berth gateways, through the MQTT broker.\n"
	       "\n"
	       "Commands:\n"
	       "  devices                         every device seen on the broker, online or offline, since when\n"
	       "  state DEVICE                    the device's reported state as a table\n"
	       "  site DEVICE                     the site the device belongs to: leader, members, assignments\n"
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

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
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
			return fail(err, errlen, "--broker '%s': missing ']'", s);
		host = s + 1;
		hlen = (size_t)(close - host);
		if (close[1] == ':')
			colon = close + 1;
		else if (close[1])
			return fail(err, errlen, "--broker '%s': expected ':PORT' after ']'", s);
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
		hlen = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (hlen == 0 || hlen >= sizeof(a->host))
		return fail(err, errlen, "--broker '%s': the host is empty or too long", s);
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	a->port = 0;
	if (colon) {
		uint64_t p;
		if (!parse_u64(colon + 1, 1, 65535, &p))
			return fail(err, errlen, "--broker '%s': the port must be 1..65535", s);
		a->port = (int)p;
	}
	a->broker = s;
	return 0;
}

/* Options taking a value: long name, short name. */
enum opt_id {
	O_CONFIG, O_BROKER, O_USER, O_PASS, O_CAFILE, O_CERT, O_KEY, O_INSECURE, O_V311, O_JSON, O_TIMEOUT,
	O_FOLLOW, O_COUNT, O_VERSION, O_INTERVAL, O_DURATION, O_MIN_RUNNING, O_VERBOSE, O_HELP, O_SHOW_VERSION,
	O_SIGN_KEY, O_TARGET, O_EXPIRE,
	O_LOCAL,
};
static const struct {
	const char *lng;
	char shrt;
	bool has_value;
	enum opt_id id;
} opts[] = {
	{ "config", 'c', true, O_CONFIG },     { "broker", 'b', true, O_BROKER },
	{ "username", 'u', true, O_USER },     { "password", 'P', true, O_PASS },
	{ "cafile", 0, true, O_CAFILE },       { "cert", 0, true, O_CERT },
	{ "key", 0, true, O_KEY },             { "insecure", 0, false, O_INSECURE },
	{ "mqtt311", 0, false, O_V311 },       { "json", 0, false, O_JSON },
	{ "timeout", 't', true, O_TIMEOUT },   { "follow", 'f', false, O_FOLLOW },
	{ "count", 'n', true, O_COUNT },       { "version", 0, true, O_VERSION },
	{ "interval", 0, true, O_INTERVAL },   { "duration", 0, true, O_DURATION },
	{ "min-running", 0, true, O_MIN_RUNNING }, { "verbose", 'v', false, O_VERBOSE },
	{ "help", 'h', false, O_HELP },        { NULL, 'V', false, O_SHOW_VERSION },
	{ "sign-key", 0, true, O_SIGN_KEY },   { "target", 0, true, O_TARGET },
	{ "expire", 0, true, O_EXPIRE },
	{ "local", 0, false, O_LOCAL },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int apply_opt(struct ctl_args *a, enum opt_id id, const char *name, const char *v, char *err, size_t errlen)
{
	uint64_t u;
	switch (id) {
	case O_CONFIG: a->config_file = v; return 0;
	case O_BROKER: return parse_broker(a, v, err, errlen);
	case O_USER: a->username = v; return 0;
	case O_PASS: a->password = v; return 0;
	case O_CAFILE: a->ca_file = v; return 0;
	case O_CERT: a->cert_file = v; return 0;
	case O_KEY: a->key_file = v; return 0;
	case O_INSECURE: a->tls_insecure = true; return 0;
	case O_V311: a->v311 = true; return 0;
	case O_JSON: a->json = true; return 0;
	case O_LOCAL: a->local = true; return 0;
	case O_FOLLOW: a->follow = true; return 0;
	case O_VERBOSE: a->verbose++; return 0;
	case O_HELP: a->verb = CTL_HELP; return 1;
	case O_SHOW_VERSION: a->verb = CTL_VERSION; return 1;
	case O_SIGN_KEY: a->sign_key = v; return 0;
	case O_TARGET:
		if (strncmp(v, "device:", 7) && strncmp(v, "group:", 6))
			return fail(err, errlen, "%s: expected device:ID or group:NAME, got '%s'", name, v);
		a->target = v;
		return 0;
	case O_EXPIRE:
		if (!parse_u64(v, 1, 2592000, &u))
			return fail(err, errlen, "%s: expected seconds 1..2592000, got '%s'", name, v);
		a->expire_s = (uint32_t)u;
		return 0;
	case O_TIMEOUT:
		if (!parse_seconds_ms(v, 100, CTL_TIMEOUT_MAX_MS, &a->timeout_ms))
			return fail(err, errlen, "%s: expected seconds 0.1..%u, got '%s'", name, CTL_TIMEOUT_MAX_MS / 1000, v);
		return 0;
	case O_COUNT:
		if (!parse_u64(v, 1, 1000000, &u))
			return fail(err, errlen, "%s: expected a count 1..1000000, got '%s'", name, v);
		a->count = (uint32_t)u;
		return 0;
	case O_VERSION:
		if (!parse_u64(v, 1, (uint64_t)1 << 53, &u))
			return fail(err, errlen, "%s: expected a version 1..2^53, got '%s'", name, v);
		a->version = u;
		return 0;
	case O_INTERVAL:
		if (!parse_u64(v, 1, 86400, &u))
			return fail(err, errlen, "%s: expected seconds 1..86400, got '%s'", name, v);
		a->interval_s = (uint32_t)u;
		return 0;
	case O_DURATION:
		if (!parse_u64(v, 1, 604800, &u))
			return fail(err, errlen, "%s: expected seconds 1..604800, got '%s'", name, v);
		a->duration_s = (uint32_t)u;
		return 0;
	case O_MIN_RUNNING:
		if (!parse_u64(v, 0, DEPLOY_MAX_REPLICAS - 1, &u))
			return fail(err, errlen, "%s: expected 0..%d, got '%s'", name, DEPLOY_MAX_REPLICAS - 1, v);
		a->min_running = (uint32_t)u;
		a->min_running_set = true;
		return 0;
	}
	return fail(err, errlen, "%s: unhandled option", name);
}

/* Which subcommands accept which options (the broker, output and verbose
 * options are accepted everywhere). */
static bool opt_allowed(enum opt_id id, enum ctl_verb v)
{
	switch (id) {
	case O_FOLLOW:
	case O_COUNT: return v == CTL_EVENTS || v == CTL_TELEMETRY;
	case O_VERSION: return v == CTL_DEPLOY;
	case O_LOCAL: return v == CTL_STATE;
	case O_INTERVAL:
	case O_DURATION:
	case O_MIN_RUNNING: return v == CTL_CHAOS;
	default: return true;
	}
}

/* The option argv[*i] names: its table index (*k), its value (*val, from
 * "--opt=value" or the next argument, which *i then moves past) and how to
 * call it in messages (name). Returns 0 or -EINVAL (err says why). */
static int lookup_opt(int argc, char *const argv[], int *i, size_t *k_out, const char **val, char *name, size_t namelen,
		      char *err, size_t errlen)
{
	const char *s = argv[*i];
	size_t k;
	if (s[1] == '-') {
		const char *eq = strchr(s + 2, '=');
		size_t nl = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
		for (k = 0; k < NOPTS; k++)
			if (opts[k].lng && strlen(opts[k].lng) == nl && strncmp(opts[k].lng, s + 2, nl) == 0)
				break;
		if (k == NOPTS)
			return fail(err, errlen, "unknown option '%.*s' (see berthctl --help)", (int)(nl + 2), s);
		/* --version N is deploy's version; --version alone is berthctl's own. */
		if (opts[k].id == O_VERSION && !eq &&
		    (*i + 1 >= argc || !argv[*i + 1][0] || strspn(argv[*i + 1], "0123456789") != strlen(argv[*i + 1])))
			for (k = 0; k < NOPTS && opts[k].id != O_SHOW_VERSION; k++)
				;
		snprintf(name, namelen, "--%s", opts[k].lng ? opts[k].lng : "version");
		if (eq) {
			if (!opts[k].has_value)
				return fail(err, errlen, "%s takes no value", name);
			*val = eq + 1;
		}
	} else {
		if (s[2])
			return fail(err, errlen, "unknown option '%s' (see berthctl --help)", s);
		for (k = 0; k < NOPTS; k++)
			if (opts[k].shrt && opts[k].shrt == s[1])
				break;
		if (k == NOPTS)
			return fail(err, errlen, "unknown option '%s' (see berthctl --help)", s);
		snprintf(name, namelen, "-%c", s[1]);
	}
	if (opts[k].has_value && !*val) {
		if (*i + 1 >= argc)
			return fail(err, errlen, "%s needs a value", name);
		*val = argv[++*i];
	}
	*k_out = k;
	return 0;
}

/* The verb's positional arguments: their number, DEVICE, DEPLOYMENT and N. */
static int check_positionals(struct ctl_args *a, const char *const *pos, unsigned npos, char *err, size_t errlen)
{
	unsigned want = 0;
	while (want < 3 && positionals[a->verb][want])
		want++;
	if (a->verb == CTL_STATE && a->local)
		want = 0; /* this gateway's own state: no DEVICE */
	if (npos != want) {
		if (npos < want)
			return fail(err, errlen, "%s: missing %s (usage: berthctl %s%s%s%s%s%s%s)", verb_names[a->verb],
				    positionals[a->verb][npos], verb_names[a->verb], want > 0 ? " " : "",
				    want > 0 ? positionals[a->verb][0] : "", want > 1 ? " " : "",
				    want > 1 ? positionals[a->verb][1] : "", want > 2 ? " " : "",
				    want > 2 ? positionals[a->verb][2] : "");
		return fail(err, errlen, "%s: unexpected argument '%s'", verb_names[a->verb], pos[want]);
	}
	if (a->verb == CTL_CHECK_DEPLOYMENTS)
		a->file = pos[0];
	else if (want > 0) {
		a->device = pos[0];
		if (!valid_device(a->device))
			return fail(err, errlen, "%s: DEVICE '%s' must be 1..63 characters without '/', '+', '#' or spaces",
				    verb_names[a->verb], a->device);
	}
	switch (a->verb) {
	case CTL_DEPLOY:
	case CTL_SET_POLICY:
	case CTL_SET_KEYS:
		a->file = pos[1];
		break;
	case CTL_SCALE: {
		uint64_t n;
		if (!parse_u64(pos[2], 0, DEPLOY_MAX_REPLICAS - 1, &n))
			return fail(err, errlen, "scale: N must be an integer 0..%d, got '%s'", DEPLOY_MAX_REPLICAS - 1,
				    pos[2]);
		a->replicas = (uint32_t)n;
	}
		__attribute__((fallthrough));
	case CTL_RESTART:
	case CTL_REMOVE:
	case CTL_CHAOS:
	case CTL_ROLLBACK:
		a->deployment = pos[1];
		if (!valid_deployment(a->deployment))
			return fail(err, errlen, "%s: DEPLOYMENT '%s' must be 1..%d characters of a-z, 0-9 and '-'",
				    verb_names[a->verb], a->deployment, DEPLOY_NAME_MAX - 1);
		break;
	default:
		break;
	}
	return 0;
}

int ctl_args_parse(int argc, char *const argv[], struct ctl_args *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	a->timeout_ms = CTL_TIMEOUT_DEFAULT_MS;
	a->expire_s = 3600;
	a->verb = CTL_HELP;
	const char *pos[8];
	unsigned npos = 0;
	bool have_verb = false, only_positionals = false;
	enum opt_id given[NOPTS];
	const char *given_name[NOPTS];
	unsigned ngiven = 0;
	err[0] = '\0';

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		if (only_positionals || s[0] != '-' || s[1] == '\0') {
			if (!have_verb) {
				size_t k;
				for (k = 0; k < NVERBS && strcmp(s, verb_names[k]) != 0; k++)
					;
				if (k == NVERBS)
					return fail(err, errlen, "unknown command '%s' (see berthctl --help)", s);
				a->verb = (enum ctl_verb)k;
				have_verb = true;
			} else if (npos < sizeof(pos) / sizeof(pos[0])) {
				pos[npos++] = s;
			} else {
				return fail(err, errlen, "too many arguments");
			}
			continue;
		}
		if (strcmp(s, "--") == 0) {
			only_positionals = true;
			continue;
		}
		/* -vv: repeated short flags without values. */
		if (s[1] != '-' && s[2] && !strchr(s, '=')) {
			bool all_v = true;
			for (const char *p = s + 1; *p; p++)
				all_v = all_v && *p == 'v';
			if (all_v) {
				a->verbose += (int)strlen(s + 1);
				continue;
			}
		}
		const char *val = NULL;
		char name[40];
		size_t k = 0;
		int rc = lookup_opt(argc, argv, &i, &k, &val, name, sizeof(name), err, errlen);
		if (rc < 0)
			return rc;
		rc = apply_opt(a, opts[k].id, name, val, err, errlen);
		if (rc < 0)
			return rc;
		if (rc > 0) /* --help, -V: nothing else matters */
			return 0;
		if (ngiven < NOPTS) {
			given[ngiven] = opts[k].id;
			given_name[ngiven++] = opts[k].lng ? opts[k].lng : "V";
		}
	}
	if (!have_verb)
		return fail(err, errlen, "no command given (see berthctl --help)");

	for (unsigned i = 0; i < ngiven; i++)
		if (!opt_allowed(given[i], a->verb))
			return fail(err, errlen, "%s: option --%s does not apply", verb_names[a->verb], given_name[i]);

	int prc = check_positionals(a, pos, npos, err, errlen);
	if (prc < 0)
		return prc;
	if (a->verb == CTL_CHAOS && (!a->interval_s || !a->duration_s))
		return fail(err, errlen, "chaos: --interval S and --duration S are required");
	if (a->follow && a->count)
		return fail(err, errlen, "%s: --follow and --count exclude each other", verb_names[a->verb]);
	if (!a->cert_file != !a->key_file)
		return fail(err, errlen, "--cert and --key go together");
	return 0;
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
