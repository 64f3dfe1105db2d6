/* agent/cmd/ctl_args.h - berthctl's command line: subcommands, options, and how they override a berthd config. */
#ifndef BERTH_CTL_ARGS_H
#define BERTH_CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/config.h"

/* Exit codes (berthctl --help and docs/berthctl.md list them). */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1,     /* the device answered with an error */
	CTL_EXIT_USAGE = 2,       /* bad arguments, config or spec: nothing was sent */
	CTL_EXIT_TIMEOUT = 3,     /* no answer (or nothing arrived) within --timeout */
	CTL_EXIT_BROKER = 4,      /* the broker could not be reached or refused us */
};

enum ctl_verb {
	CTL_HELP = 0,
	CTL_VERSION,
	CTL_DEVICES,
	CTL_STATE,
	CTL_DEPLOY,
	CTL_SCALE,
	CTL_RESTART,
	CTL_REMOVE,
	CTL_CHAOS,
	CTL_EVENTS,
	CTL_TELEMETRY,
	CTL_SITE,
	CTL_ROLLBACK,
	CTL_POLICY,          /* the device's policy compliance (from its reported state) */
	CTL_SET_POLICY,      /* sign and publish a policy document (retained) */
	CTL_SET_KEYS,        /* sign and publish a trusted key list (retained): rotation */
	CTL_CHECK_DEPLOYMENTS,  /* offline: validate a deployments file with berthd's parser */
	CTL_CHECK,              /* on the gateway: config, data dir, engine, broker, clock, disk, memory */
	CTL_ROLLOUT,            /* staged rollout of a desired state to a group (--group G FILE) */
	CTL_SIGN,               /* offline: print a message signed (KIND DEVICE FILE|-) */
	CTL_KEYGEN,             /* offline: make a signing key (ID FILE) */
	CTL_SITE_JOIN,          /* site-join DEVICE ID ADDRESS: a member joins the device's site */
	CTL_SITE_LEAVE,         /* site-leave DEVICE ID: a member leaves it */
};

#define CTL_TIMEOUT_DEFAULT_MS 5000u
#define CTL_TIMEOUT_MAX_MS 3600000u

struct ctl_args {
	enum ctl_verb verb;
	const char *config_file;          /* -c FILE: a berthd config (broker settings); NULL: none */
	/* Broker overrides; NULL / 0 / false: not given on the command line. */
	const char *broker;               /* --broker HOST[:PORT] as given */
	char host[CONFIG_STR_MAX];        /* parsed from --broker */
	int port;                         /* parsed from --broker; 0: keep the config's */
	const char *username;
	const char *password;
	const char *ca_file;              /* --cafile (turns TLS on) */
	const char *cert_file;
	const char *key_file;
	bool tls_insecure;
	bool v311;                        /* --mqtt311: speak MQTT 3.1.1 (replies on the fallback topic) */

	bool json;
	bool local;                       /* state: read the local API (the config's api settings), not the broker */
	bool follow;
	int verbose;                      /* -v: uplink log lines on stderr (-vv: debug) */
	uint32_t timeout_ms;
	uint32_t count;                   /* events/telemetry: stop after this many rows; 0: no limit */

	const char *device;               /* NULL with --group (a group command) */
	const char *group;                /* --group G: devices of the group, a group command, rollout */
	const char *kind;                 /* sign: command, desired, policy or keys */
	const char *key_id;               /* keygen: the new key's id */
	const char *deployment;
	const char *member;               /* site-join, site-leave: the member's device id */
	const char *address;              /* site-join: its A.B.C.D:PORT */
	const char *file;                 /* deploy, check-deployments, rollout, set-*, sign, keygen */
	uint64_t version;                 /* deploy --version override; 0: the file's */
	uint32_t replicas;                /* scale */
	uint32_t interval_s;              /* chaos */
	uint32_t duration_s;
	uint32_t min_running;
	bool min_running_set;

	const char *sign_key;             /* --sign-key FILE: a berthctl keygen key; NULL: $BERTH_SIGN_KEY or unsigned */
	const char *target;               /* --target device:ID|group:NAME; NULL: device:DEVICE */
	uint32_t expire_s;                /* --expire S: commands expire this long after signing (default 3600) */
};

/* Parses argv with getopt_long (options may come before or after the
 * subcommand, "--" ends them). argv strings are borrowed: a's pointers point
 * into them. Returns 0, or -EINVAL with a one-line message in err (e.g.
 * "scale: N must be an integer 0..15, got 'x'"). Pure apart from getopt's
 * globals (optind is reset, so it may be called again). */
int ctl_args_parse(int argc, char *const argv[], struct ctl_args *a, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Applies the broker options of a over cfg->broker (a config file's or the
 * defaults). Giving --cafile enables TLS. */
void ctl_args_apply(const struct ctl_args *a, struct berth_config *cfg);

/* The subcommand's name ("devices", ...). */
const char *ctl_verb_name(enum ctl_verb v);

/* Formats an error for the user into err; returns -EINVAL. */
int ctl_args_fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The text of `berthctl --help`. */
const char *ctl_usage(void);

#endif
