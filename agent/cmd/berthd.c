/* agent/cmd/berthd.c - the berth daemon: options, signals, config and the main loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/cmd/secrets.h"
#include "agent/model/config.h"
#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "agent/base/version.h"
#include "hal/fs.h"
#include "hal/sys.h"
#include "hal/watchdog.h"

#define LOG_TAG "main"
#define EXIT_CONFIG 2

static int g_sig_pipe[2] = { -1, -1 };

static void on_signal(int signo)
{
	unsigned char b = (unsigned char)signo;
	int saved = errno;
	if (write(g_sig_pipe[1], &b, 1) < 0) {
		/* Pipe full: a signal is already pending, nothing is lost that matters. */
	}
	errno = saved;
}

struct daemon_ctx {
	struct loop *loop;
	struct agent *agent;
	const char *config_path;
};

static void on_sig_readable(void *arg, int fd, unsigned events)
{
	struct daemon_ctx *d = arg;
	unsigned char sigs[16];
	ssize_t n = read(fd, sigs, sizeof(sigs));
	for (ssize_t i = 0; i < n; i++) {
		if (sigs[i] == SIGHUP) {
			struct berth_config cfg;
			struct config_error err;
			char smsg[512];
			int lrc = config_load(d->config_path, &cfg, &err);
			if (lrc == 0 && secrets_check(d->config_path, &cfg, smsg, sizeof(smsg)) != 0) {
				log_err("event=reload_refused reason=\"%s\"", smsg);
			} else if (lrc == 0) {
				(void)agent_reload(d->agent, &cfg);
			} else {
				char msg[512];
				config_error_format(d->config_path, &err, msg, sizeof(msg));
				log_err("event=reload_refused reason=\"%s\"", msg);
			}
		} else {
			log_inf("event=shutdown signal=%s", sigs[i] == SIGTERM ? "TERM" : "INT");
			loop_stop(d->loop);
		}
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: berthd [-c FILE] [options]\n"
		"  -c, --config FILE        runtime config (default /etc/berth/config.json)\n"
		"      --check-config FILE  validate FILE and exit: 0 valid, 2 invalid (the key is named)\n"
		"  -v, --version            print the version and exit\n"
		"  -h, --help               this text\n"
		"Signals: TERM/INT stop cleanly, HUP reloads the config.\n");
}

/* Loads and validates path, secrets private included; 0, or EXIT_CONFIG with the reason on stderr. */
static int load_config(const char *path, struct berth_config *cfg)
{
	struct config_error err;
	char msg[512];
	if (config_load(path, cfg, &err) != 0) {
		config_error_format(path, &err, msg, sizeof(msg));
		fprintf(stderr, "berthd: invalid config: %s\n", msg);
		return EXIT_CONFIG;
	}
	if (secrets_check(path, cfg, msg, sizeof(msg)) != 0) {
		fprintf(stderr, "berthd: refused config: %s\n", msg);
		return EXIT_CONFIG;
	}
	return 0;
}

static int check_config(const char *path)
{
	struct berth_config cfg;
	if (load_config(path, &cfg))
		return EXIT_CONFIG;
	printf("%s: ok (device_id=%s)\n", path, cfg.device_id);
	return 0;
}

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the journal stream it gave us; only when it
 * is still our stderr (not redirected since) do lines carry sd-daemon priority prefixes. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	uint64_t d, i;
	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || hal_fs_fd_id(STDERR_FILENO, &d, &i) < 0)
		return false;
	return d == dev && i == ino;
}

/* The data dir, the database and its WAL hold commands and telemetry: berth's alone;
 * log lines carry journald priorities when stderr is the journal. */
static void setup_process(void)
{
	hal_fs_private_files();
	log_set_journal(stderr_is_journal());
}

static int setup_signals(void)
{
	if (pipe2(g_sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int main(int argc, char **argv)
{
	hal_sys_tune_memory();
	setup_process();
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = "/etc/berth/config.json";
	int c;
	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			return check_config(optarg);
		case 'v':
			printf("berthd %s\n", BERTH_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_CONFIG;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "berthd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_CONFIG;
	}

	struct berth_config cfg;
	if (load_config(config_path, &cfg))
		return EXIT_CONFIG;
	int lvl = log_level_parse(cfg.log_level);
	log_set_level(lvl >= 0 ? (enum log_level)lvl : LOG_LEVEL_INF);
	if (cfg.log_syslog)
		log_set_syslog("berthd");

	int rc = EXIT_FAILURE;
	struct daemon_ctx d = { .config_path = config_path };
	if (setup_signals() < 0) {
		log_err("event=signal_setup_failed err=%s", strerror(errno));
		return EXIT_FAILURE;
	}
	d.loop = loop_create();
	if (!d.loop) {
		log_err("event=oom what=loop");
		goto errout;
	}
	if (loop_fd_add(d.loop, g_sig_pipe[0], LOOP_IN, on_sig_readable, &d) < 0)
		goto errout_with_loop;
	d.agent = agent_create(d.loop, &cfg);
	if (!d.agent)
		goto errout_with_loop;

	(void)hal_notify("READY=1");
	int lrc = loop_run(d.loop);
	if (lrc < 0)
		log_err("event=loop_failed err=%s", strerror(-lrc));
	(void)hal_notify("STOPPING=1");
	rc = lrc < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

	agent_destroy(d.agent);
errout_with_loop:
	loop_destroy(d.loop);
errout:
	log_inf("event=exit code=%d", rc);
	return rc;
}
