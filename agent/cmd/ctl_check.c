/* agent/cmd/ctl_check.c - `berthctl check`: each part of a gateway that berthd needs, ok/warn/fail with the fix. */
#include "agent/cmd/ctl_check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/cmd/ctl_args.h"
#include "agent/cmd/ctl_fmt.h"
#include "agent/cmd/secrets.h"
#include "agent/model/config.h"
#include "hal/clock.h"
#include "hal/fs.h"
#include "hal/net.h"
#include "hal/sys.h"

#define HTTP_BODY_MAX (1024u * 1024u)   /* a /v1/state or /version answer larger than this is cut */
#define CLOCK_SANE_S 1704067200LL        /* 2024-01-01: a clock before this has not been set */
#define CERT_WARN_DAYS 30
#define MEM_WARN_BYTES (128ull << 20)
#define MEM_FAIL_BYTES (32ull << 20)

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One HTTP/1.0 GET on fd (consumed); returns the status and *body (malloc'd) or -errno. */
static int http_get(int fd, const char *path, unsigned timeout_ms, char **body)
{
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	uint64_t deadline = mono_ms() + timeout_ms;
	size_t cap = 8192, got = 0;
	char *buf = malloc(cap);
	int rc = -ENOMEM;
	if (!buf)
		goto out;
	if (write(fd, req, (size_t)n) != n) { /* berthctl ignores SIGPIPE */
		rc = -EIO;
		goto out;
	}
	for (;;) {
		uint64_t now = mono_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0) {
			rc = -ETIMEDOUT;
			goto out;
		}
		if (got + 1 >= cap) {
			if (cap >= HTTP_BODY_MAX)
				break;
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				goto out;
			buf = nb;
			cap *= 2;
		}
		ssize_t k = read(fd, buf + got, cap - 1 - got);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	buf[got] = '\0';
	int status;
	char *sep = strstr(buf, "\r\n\r\n");
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !sep) {
		rc = -EPROTO;
		goto out;
	}
	memmove(buf, sep + 4, strlen(sep + 4) + 1);
	*body = buf;
	buf = NULL;
	rc = status;
out:
	free(buf);
	hal_net_close(fd);
	return rc;
}

int ctl_local_get(const struct berth_config *cfg, const char *path, unsigned timeout_ms, char **body, char *msg,
		  size_t msglen)
{
	const char *host = cfg->api.listen[0] && strcmp(cfg->api.listen, "0.0.0.0") ? cfg->api.listen : "127.0.0.1";
	int fd = hal_net_connect(cfg->api.unix_socket, host, (uint16_t)cfg->api.port, timeout_ms);
	if (fd < 0) {
		if (cfg->api.unix_socket[0])
			snprintf(msg, msglen, "berthd's local API at %s: %s", cfg->api.unix_socket, strerror(-fd));
		else
			snprintf(msg, msglen, "berthd's local API at %s:%d: %s", host, cfg->api.port, strerror(-fd));
		return fd;
	}
	int rc = http_get(fd, path, timeout_ms, body);
	if (rc < 0)
		snprintf(msg, msglen, "berthd's local API: GET %s: %s", path, strerror(-rc));
	return rc;
}

/* --- certificates: PEM -> DER -> tbsCertificate.validity.notAfter ------------ */

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

static size_t b64_decode(const char *s, const char *end, unsigned char *out, size_t cap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	for (; s < end && n < cap; s++) {
		int v = b64val((unsigned char)*s);
		if (v < 0)
			continue;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return n;
}

/* The next DER element at *p: its tag, content and length; -1 when malformed. */
static int der_next(const unsigned char **p, const unsigned char *end, unsigned *tag, const unsigned char **content,
		    size_t *len)
{
	if (end - *p < 2)
		return -1;
	*tag = *(*p)++;
	size_t l = *(*p)++;
	if (l & 0x80) {
		unsigned nb = l & 0x7f;
		if (nb == 0 || nb > 4 || (size_t)(end - *p) < nb)
			return -1;
		for (l = 0; nb--;)
			l = (l << 8) | *(*p)++;
	}
	if (l > (size_t)(end - *p))
		return -1;
	*content = *p;
	*len = l;
	*p += l;
	return 0;
}

static int der_time(unsigned tag, const unsigned char *c, size_t len, long long *out)
{
	char s[20];
	if (len >= sizeof(s))
		return -1;
	memcpy(s, c, len);
	s[len] = '\0';
	struct tm tm = { 0 };
	int yy;
	if (tag == 0x17 && sscanf(s, "%2d%2d%2d%2d%2d%2d", &yy, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
				 &tm.tm_sec) == 6)
		tm.tm_year = yy < 50 ? yy + 100 : yy;
	else if (tag == 0x18 && sscanf(s, "%4d%2d%2d%2d%2d%2d", &yy, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				       &tm.tm_min, &tm.tm_sec) == 6)
		tm.tm_year = yy - 1900;
	else
		return -1;
	tm.tm_mon -= 1;
	*out = (long long)timegm(&tm);
	return 0;
}

static int cert_not_after(const unsigned char *der, size_t n, long long *not_after)
{
	const unsigned char *p = der, *end = der + n, *c, *t;
	size_t len;
	unsigned tag;
	if (der_next(&p, end, &tag, &c, &len) || tag != 0x30)
		return -1;
	p = c;
	end = c + len;
	if (der_next(&p, end, &tag, &t, &len) || tag != 0x30) /* tbsCertificate */
		return -1;
	p = t;
	end = t + len;
	if (der_next(&p, end, &tag, &c, &len)) /* [0] version, or the serial */
		return -1;
	if (tag == 0xa0 && der_next(&p, end, &tag, &c, &len)) /* serial */
		return -1;
	for (int i = 0; i < 2; i++) /* signature algorithm, issuer */
		if (der_next(&p, end, &tag, &c, &len))
			return -1;
	if (der_next(&p, end, &tag, &c, &len) || tag != 0x30) /* validity */
		return -1;
	p = c;
	end = c + len;
	if (der_next(&p, end, &tag, &c, &len) || der_next(&p, end, &tag, &c, &len))
		return -1;
	return der_time(tag, c, len, not_after);
}

int ctl_cert_days_left(const char *pem_path, long long now_s, long long *days)
{
	int fd = open(pem_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char text[65536];
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	text[n] = '\0';
	static const char begin[] = "-----BEGIN CERTIFICATE-----", finish[] = "-----END CERTIFICATE-----";
	long long soonest = 0;
	bool found = false;
	unsigned char der[16384];
	for (const char *s = strstr(text, begin); s; s = strstr(s, begin)) {
		s += sizeof(begin) - 1;
		const char *e = strstr(s, finish);
		if (!e)
			break;
		long long na;
		if (cert_not_after(der, b64_decode(s, e, der, sizeof(der)), &na) == 0 && (!found || na < soonest)) {
			soonest = na;
			found = true;
		}
		s = e;
	}
	if (!found)
		return -EINVAL;
	long long left = soonest - now_s;
	*days = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
	return 0;
}

/* --- the checks ------------------------------------------------------------ */

struct checker {
	FILE *out;
	enum ctl_check_result worst;
};

static void report(struct checker *k, enum ctl_check_result r, const char *what, const char *found, const char *fix)
{
	static const char *const words[] = { "ok", "warn", "fail" };
	fprintf(k->out, "%-4s %-10s %s\n", words[r], what, found);
	if (r != CTL_CHECK_OK && fix && *fix)
		fprintf(k->out, "     %-10s fix: %s\n", "", fix);
	if (r > k->worst)
		k->worst = r;
}

static void check_data_dir(struct checker *k, const struct berth_config *cfg)
{
	char found[512], fix[512];
	struct hal_fs_info st;
	int rc = hal_fs_info(cfg->data_dir, &st);
	if (rc < 0) {
		snprintf(found, sizeof(found), "%s: %s (berthd makes it, 0700, at start)", cfg->data_dir, strerror(-rc));
		snprintf(fix, sizeof(fix), "start berthd once, or: install -d -m 0700 -o berth -g berth %s", cfg->data_dir);
		report(k, rc == -ENOENT ? CTL_CHECK_WARN : CTL_CHECK_FAIL, "data dir", found, fix);
		return;
	}
	if (!st.is_dir) {
		snprintf(found, sizeof(found), "%s is not a directory", cfg->data_dir);
		report(k, CTL_CHECK_FAIL, "data dir", found, "set data_dir to a directory");
		return;
	}
	struct passwd *pw = getpwnam("berth");
	if (pw && st.uid != (uint32_t)pw->pw_uid) {
		snprintf(found, sizeof(found), "%s is owned by uid %u, not the berth user", cfg->data_dir,
			 (unsigned)st.uid);
		snprintf(fix, sizeof(fix), "chown -R berth:berth %s", cfg->data_dir);
		report(k, CTL_CHECK_WARN, "data dir", found, fix);
	}
	if (st.perm & 077) {
		snprintf(found, sizeof(found), "%s is mode %04o: others may read the command and telemetry buffer",
			 cfg->data_dir, st.perm);
		snprintf(fix, sizeof(fix), "chmod 0700 %s", cfg->data_dir);
		report(k, CTL_CHECK_WARN, "data dir", found, fix);
		return;
	}
	char db[CONFIG_STR_MAX + 16];
	snprintf(db, sizeof(db), "%s/berth.db", cfg->data_dir);
	if (hal_fs_info(db, &st) == 0 && (st.perm & 077)) {
		snprintf(found, sizeof(found), "%s is mode %04o", db, st.perm);
		snprintf(fix, sizeof(fix), "chmod 0600 %s*", db);
		report(k, CTL_CHECK_WARN, "data dir", found, fix);
		return;
	}
	snprintf(found, sizeof(found), "%s 0700%s", cfg->data_dir, pw ? ", owned by berth" : "");
	report(k, CTL_CHECK_OK, "data dir", found, NULL);
}

/* The value of "key":"..." in a JSON text (first match), or "?". */
static void json_string(const char *json, const char *key, char *out, size_t len)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = strstr(json, pat);
	snprintf(out, len, "?");
	if (p) {
		p += strlen(pat);
		size_t n = strcspn(p, "\"");
		snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
	}
}

static void check_engine(struct checker *k, const struct berth_config *cfg, unsigned timeout_ms)
{
	char found[512], fix[512];
	int fd = hal_net_connect(cfg->engine.socket, NULL, 0, timeout_ms);
	char *body = NULL;
	int st = fd < 0 ? fd : http_get(fd, "/version", timeout_ms, &body);
	if (st != 200) {
		snprintf(found, sizeof(found), "%s: %s", cfg->engine.socket,
			 st < 0 ? strerror(-st) : "answered GET /version with an error");
		if (st == -EACCES)
			snprintf(fix, sizeof(fix), "let the berth user use the socket: adduser berth docker (Docker); "
				 "for podman see docs/packaging.md");
		else
			snprintf(fix, sizeof(fix), "start the engine (systemctl start docker, or systemctl start "
				 "podman.socket) and set engine.socket to its socket");
		report(k, CTL_CHECK_FAIL, "engine", found, fix);
		free(body);
		return;
	}
	char name[64] = "?", ver[32], api[32];
	const char *comp = strstr(body, "\"Components\":[{\"Name\":\"");
	if (comp)
		json_string(comp + 14, "Name", name, sizeof(name));
	json_string(body, "Version", ver, sizeof(ver));
	json_string(body, "ApiVersion", api, sizeof(api));
	snprintf(found, sizeof(found), "%s %s (API %s) at %s", comp ? name : "engine", ver, api, cfg->engine.socket);
	report(k, CTL_CHECK_OK, "engine", found, NULL);
	free(body);
}

static void check_cert(struct checker *k, const char *key, const char *path)
{
	char found[512], fix[512];
	long long days;
	int rc = ctl_cert_days_left(path, (long long)time(NULL), &days);
	if (rc) {
		snprintf(found, sizeof(found), "%s %s: %s", key, path,
			 rc == -EINVAL ? "no PEM certificate could be read" : strerror(-rc));
		snprintf(fix, sizeof(fix), "point %s at a readable PEM certificate", key);
		report(k, CTL_CHECK_FAIL, "broker tls", found, fix);
		return;
	}
	snprintf(found, sizeof(found), "%s %s %s %lld days", key, path, days < 0 ? "expired" : "expires in",
		 days < 0 ? -days : days);
	snprintf(fix, sizeof(fix), "renew the certificate in %s", path);
	report(k, days < 0 ? CTL_CHECK_FAIL : days < CERT_WARN_DAYS ? CTL_CHECK_WARN : CTL_CHECK_OK, "broker tls",
	       found, fix);
}

static void check_broker(struct checker *k, const struct berth_config *cfg, const char *config_path,
			 unsigned timeout_ms)
{
	char found[512], fix[512];
	if (!cfg->broker.enabled) {
		report(k, CTL_CHECK_OK, "broker", "disabled (broker.enabled is false): no console link", NULL);
		return;
	}
	int fd = hal_net_connect(NULL, cfg->broker.host, (uint16_t)cfg->broker.port, timeout_ms);
	if (fd < 0) {
		snprintf(found, sizeof(found), "%s:%d: %s", cfg->broker.host, cfg->broker.port, strerror(-fd));
		snprintf(fix, sizeof(fix), "%s; broker.host and broker.port in %s name it",
			 fd == -ECONNREFUSED ? "nothing listens there: start the broker or correct the address"
					     : "check the network and firewall to the broker",
			 config_path);
		report(k, CTL_CHECK_FAIL, "broker", found, fix);
	} else {
		hal_net_close(fd);
		snprintf(found, sizeof(found), "%s:%d reachable (TCP%s)", cfg->broker.host, cfg->broker.port,
			 cfg->broker.tls.enabled ? ", TLS" : "");
		report(k, CTL_CHECK_OK, "broker", found, NULL);
	}
	if (cfg->broker.tls.enabled) {
		if (cfg->broker.tls.ca_file[0])
			check_cert(k, "broker.tls.ca_file", cfg->broker.tls.ca_file);
		if (cfg->broker.tls.cert_file[0])
			check_cert(k, "broker.tls.cert_file", cfg->broker.tls.cert_file);
	}
}

static void check_clock(struct checker *k)
{
	char found[128];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(found, sizeof(found), "wall clock %Y-%m-%dT%H:%M:%SZ", &tm);
	if ((long long)now < CLOCK_SANE_S)
		report(k, CTL_CHECK_FAIL, "clock", found,
		       "the clock was never set (no RTC?): enable NTP (timedatectl set-ntp true) before TLS and telemetry");
	else
		report(k, CTL_CHECK_OK, "clock", found, NULL);
}

static void check_node(struct checker *k, const struct berth_config *cfg)
{
	char found[512], fix[256];
	struct hal_node_stats ns;
	struct hal_fs_info st;
	const char *where = hal_fs_info(cfg->data_dir, &st) == 0 ? cfg->data_dir : "/";
	if (hal_sys_node_stats(where, &ns) != 0) {
		report(k, CTL_CHECK_WARN, "disk", "node figures unreadable (/proc, statvfs)", "run on the gateway itself");
		return;
	}
	uint64_t budget = (uint64_t)cfg->telemetry.disk_budget_kb * 1024u;
	char db[CONFIG_STR_MAX + 16];
	snprintf(db, sizeof(db), "%s/berth.db", cfg->data_dir);
	uint64_t used = hal_fs_info(db, &st) == 0 ? st.size : 0;
	uint64_t need = budget > used ? budget - used : 0;
	snprintf(found, sizeof(found), "%llu MB free on %s for a telemetry budget of %llu MB (%llu MB used)",
		 (unsigned long long)(ns.disk_free_bytes >> 20), where, (unsigned long long)(budget >> 20),
		 (unsigned long long)(used >> 20));
	snprintf(fix, sizeof(fix), "free disk space, or lower telemetry.disk_budget_kb");
	report(k, ns.disk_free_bytes < need / 4 ? CTL_CHECK_FAIL : ns.disk_free_bytes < need ? CTL_CHECK_WARN : CTL_CHECK_OK,
	       "disk", found, fix);
	snprintf(found, sizeof(found), "%llu MB available of %llu MB", (unsigned long long)(ns.mem_avail_bytes >> 20),
		 (unsigned long long)(ns.mem_total_bytes >> 20));
	report(k, ns.mem_avail_bytes < MEM_FAIL_BYTES ? CTL_CHECK_FAIL
		  : ns.mem_avail_bytes < MEM_WARN_BYTES ? CTL_CHECK_WARN : CTL_CHECK_OK,
	       "memory", found, "fewer or smaller replicas (resources.memory), or more memory");
}

enum ctl_check_result ctl_check_run(FILE *out, const char *config_path, unsigned timeout_ms)
{
	struct checker k = { .out = out, .worst = CTL_CHECK_OK };
	struct berth_config *cfg = malloc(sizeof(*cfg));
	struct config_error err;
	char msg[640];
	if (!cfg) {
		report(&k, CTL_CHECK_FAIL, "config", "out of memory", NULL);
		return k.worst;
	}
	if (config_load(config_path, cfg, &err) != 0) {
		config_error_format(config_path, &err, msg, sizeof(msg));
		report(&k, CTL_CHECK_FAIL, "config", msg, "correct the key named (berthd --check-config FILE says the same)");
		free(cfg);
		return k.worst; /* every other check reads the config */
	}
	if (secrets_check(config_path, cfg, msg, sizeof(msg)) != 0) {
		report(&k, CTL_CHECK_FAIL, "config", msg, "berthd refuses to start until the file is private");
	} else {
		snprintf(msg, sizeof(msg), "%s is valid (device %s)", config_path, cfg->device_id);
		report(&k, CTL_CHECK_OK, "config", msg, NULL);
	}
	check_data_dir(&k, cfg);
	check_engine(&k, cfg, timeout_ms);
	check_broker(&k, cfg, config_path, timeout_ms);
	check_clock(&k);
	check_node(&k, cfg);
	free(cfg);
	return k.worst;
}

/* state --local: /v1/state from berthd's local API, formatted as the reported state. */
int ctl_local_state(const struct ctl_args *a)
{
	const char *path = a->config_file ? a->config_file : "/etc/berth/config.json";
	struct berth_config *cfg = malloc(sizeof(*cfg));
	struct config_error err;
	char msg[512];
	char *body = NULL;
	int rc = CTL_EXIT_USAGE;
	if (!cfg)
		return rc;
	if (config_load(path, cfg, &err) != 0) {
		config_error_format(path, &err, msg, sizeof(msg));
		fprintf(stderr, "berthctl: %s\n", msg);
		goto out;
	}
	int st = ctl_local_get(cfg, "/v1/state", a->timeout_ms, &body, msg, sizeof(msg));
	if (st < 0 || st != 200) {
		if (st < 0)
			fprintf(stderr, "berthctl: %s (is berthd running with api.enabled?)\n", msg);
		else
			fprintf(stderr, "berthctl: berthd's local API answered GET /v1/state with %d\n", st);
		rc = CTL_EXIT_BROKER;
		goto out;
	}
	struct ctl_status cs = { .known = true, .online = true };
	if (ctl_fmt_state(stdout, cfg->device_id, &cs, body, strlen(body), hal_clock_wall_ms(), a->json)) {
		fprintf(stderr, "berthctl: berthd's /v1/state is not a JSON object\n");
		rc = CTL_EXIT_REFUSED;
		goto out;
	}
	rc = CTL_EXIT_OK;
out:
	free(body);
	free(cfg);
	return rc;
}
