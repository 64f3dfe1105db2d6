/* tests/bench/bench_trust.c - what the trust gate costs per command: verify + policy alone, and a whole scale command applied with and without it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/console/control.h"
#include "agent/telemetry/store.h"
#include "agent/trust/trust.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* CPU time of this thread: what the work costs, whatever else the machine runs. */
static double cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return v[(size_t)(p * (double)(n - 1))];
}

/* The target: a gateway whose every deployment exists and scales at once. */
static int f_scale(void *ctx, const char *n, uint32_t r, struct command_error *e)
{
	(void)ctx, (void)n, (void)r, (void)e;
	return 0;
}
static bool f_has(void *ctx, const char *n)
{
	(void)ctx, (void)n;
	return true;
}
static int f_report(void *ctx, char *buf, size_t len, bool figures)
{
	(void)ctx, (void)figures;
	return snprintf(buf, len, "[]");
}
static const struct control_target_ops ops = { .has_deployment = f_has, .scale = f_scale, .report = f_report };

static int replies, refused;
static void on_reply(void *arg, const struct control_reply_to *rt, const char *json, size_t len)
{
	(void)arg, (void)rt, (void)len;
	replies++;
	if (strstr(json, "\"ok\":false"))
		refused++;
}

static struct store *open_store(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.db", dir, name);
	struct store_opts o = { .path = path, .budget_kb = 65536, .sync_full = true };
	struct store *st = NULL;
	return store_open(&o, &st) ? NULL : st;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench_trust DIR N\n");
		return 2;
	}
	const char *dir = argv[1];
	size_t n = (size_t)strtoul(argv[2], NULL, 10);
	uint8_t priv[SIG_PRIVATE_LEN], pub[SIG_PUBLIC_LEN];
	char pub64[64], keys[256];
	if (sig_keygen(priv, pub) || envelope_b64_encode(pub, sizeof(pub), pub64, sizeof(pub64)) < 0)
		return 1;
	snprintf(keys, sizeof(keys), "{\"schema\":1,\"version\":1,\"keys\":[{\"id\":\"bench\",\"public\":\"%s\"}]}", pub64);
	const char *policy = "{\"schema\":1,\"version\":1,\"rules\":{\"roles\":{\"keys\":{\"bench\":[\"*\"]}},"
			     "\"replicas\":{\"mode\":\"deny\",\"max\":8}}}";

	/* Every command is distinct (id, issue time) and made before timing. */
	char **plain = calloc(n, sizeof(char *)), **signed_ = calloc(n, sizeof(char *));
	long long t0 = 1767225600000LL;
	for (size_t i = 0; i < n; i++) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "{\"schema\":1,\"id\":\"c-%zu\",\"verb\":\"scale\",\"args\":{\"deployment\":\"det\",\"replicas\":%zu}}",
			 i, 1 + i % 4);
		plain[i] = strdup(msg);
		struct trust_err e = { 0 };
		if (envelope_sign(msg, strlen(msg), NULL, "bench", priv, "device:gw-bench", t0 + (long long)i, 0,
				  &signed_[i], &e)) {
			fprintf(stderr, "sign: %s\n", e.message);
			return 1;
		}
	}
	struct store *s_plain = open_store(dir, "plain"), *s_trust = open_store(dir, "trust"),
		     *s_verify = open_store(dir, "verify");
	if (!s_plain || !s_trust || !s_verify)
		return 1;
	struct control_cbs cbs = { .send_reply = on_reply };
	struct control *c_plain = control_create(s_plain, "gw-bench", &ops, NULL, &cbs);
	struct control *c_trust = control_create(s_trust, "gw-bench", &ops, NULL, &cbs);
	struct trust_opts to = { .device_id = "gw-bench", .require_signatures = true, .keys_json = keys,
				 .policy_json = policy };
	to.verbs = control_trust_verbs(&to.n_verbs);
	struct trust_err e = { 0 };
	struct trust *t_gate = trust_create(s_trust, &to, &e), *t_alone = trust_create(s_verify, &to, &e);
	if (!c_plain || !c_trust || !t_gate || !t_alone) {
		fprintf(stderr, "setup: %s\n", e.message);
		return 1;
	}
	control_set_trust(c_trust, t_gate);

	double *a = calloc(n, sizeof(double)), *b = calloc(n, sizeof(double)), *v = calloc(n, sizeof(double));
	double *vo = calloc(n, sizeof(double));
	double *ac = calloc(n, sizeof(double)), *bc = calloc(n, sizeof(double)), *vc = calloc(n, sizeof(double));
	struct control_reply_to rt = { .verb = "scale" };
	int denied = 0;
	/* verify + policy alone: its decision log entries go into one open
	 * transaction (committed at the end), so this is the computation and
	 * SQLite's statement cost, not the disk's sync. */
	if (store_begin(s_verify))
		return 1;
	/* Interleaved, so the three see the same machine at the same moments. */
	for (size_t i = 0; i < n; i++) {
		double s = now_us(), sc = cpu_us();
		control_handle(c_plain, "scale", plain[i], strlen(plain[i]), &rt);
		a[i] = now_us() - s;
		ac[i] = cpu_us() - sc;
		s = now_us();
		sc = cpu_us();
		control_handle(c_trust, "scale", signed_[i], strlen(signed_[i]), &rt);
		b[i] = now_us() - s;
		bc[i] = cpu_us() - sc;
		s = now_us();
		sc = cpu_us();
		struct trust_verdict vd;
		int rc = trust_verify(t_alone, signed_[i], strlen(signed_[i]), NULL, &vd, &e);
		vo[i] = now_us() - s;
		if (!rc)
			rc = trust_authorize(t_alone, &vd, "scale", "det", (int64_t)(1 + i % 4), NULL, &e);
		v[i] = now_us() - s;
		vc[i] = cpu_us() - sc;
		denied += rc != 0;
	}
	if (store_commit(s_verify))
		return 1;
	/* The same verify + policy in a loop of its own (warm caches, no disk work in between). */
	double *tl = calloc(n, sizeof(double));
	if (store_begin(s_verify))
		return 1;
	for (size_t i = 0; i < n; i++) {
		double sc = cpu_us();
		struct trust_verdict vd;
		int rc = trust_verify(t_alone, signed_[i], strlen(signed_[i]), NULL, &vd, &e);
		if (!rc)
			rc = trust_authorize(t_alone, &vd, "scale", "det", (int64_t)(1 + i % 4), NULL, &e);
		tl[i] = cpu_us() - sc;
		if (rc)
			return 1;
	}
	if (store_commit(s_verify))
		return 1;
	double tl50 = pct(tl, n, 0.5);
	/* The floor under it all: OpenSSL's Ed25519 verification of the same signed bytes. */
	double *r = calloc(n, sizeof(double));
	for (size_t i = 0; i < n; i++) {
		struct envelope env;
		char tbs[512];
		if (envelope_parse(signed_[i], strlen(signed_[i]), NULL, &env, &e))
			return 1;
		int len = envelope_signed_bytes(&env, tbs, sizeof(tbs));
		double sc = cpu_us();
		if (sig_verify(pub, tbs, (size_t)len, env.sig))
			return 1;
		r[i] = cpu_us() - sc;
	}
	double r50 = pct(r, n, 0.5);
	/* What one more synchronous commit costs on this disk (the admission's):
	 * a small row written and committed, alone. */
	struct store *s_commit = open_store(dir, "commit");
	double *cw = calloc(n, sizeof(double)), *cc = calloc(n, sizeof(double));
	if (!s_commit || !cw || !cc)
		return 1;
	for (size_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k.%zu", i % 512);
		double s = now_us(), sc = cpu_us();
		if (store_begin(s_commit) || store_kv_set(s_commit, key, "1767225600000 c-000000000") ||
		    store_commit(s_commit))
			return 1;
		cw[i] = now_us() - s;
		cc[i] = cpu_us() - sc;
	}
	double cw50 = pct(cw, n, 0.5), cc50 = pct(cc, n, 0.5);
	store_close(s_commit);
	if (refused || denied || replies != (int)(2 * n)) {
		fprintf(stderr, "bench_trust: %d refused, %d denied, %d replies of %zu: the bench measured refusals\n",
			refused, denied, replies, 2 * n);
		return 1;
	}
	double a50 = pct(a, n, 0.5), a99 = pct(a, n, 0.99), b50 = pct(b, n, 0.5), b99 = pct(b, n, 0.99);
	double v50 = pct(v, n, 0.5), v99 = pct(v, n, 0.99), vo50 = pct(vo, n, 0.5);
	double ac50 = pct(ac, n, 0.5), bc50 = pct(bc, n, 0.5), vc50 = pct(vc, n, 0.5);
	printf("commands: %zu scale commands per side, interleaved; store synchronous=full on %s\n", n, dir);
	printf("apply without trust (parse, journal, scale, reply): median %.1f us, p99 %.1f us\n", a50, a99);
	printf("apply with trust (+ verify, policy, decision log and replay window in one more synced commit): median %.1f us, p99 %.1f us\n",
	       b50, b99);
	printf("verify + policy (+ its decision log entry, not synced) alone: median %.1f us, p99 %.1f us\n", v50, v99);
	printf("of which verification (envelope, key window, Ed25519, replay check): median %.1f us\n", vo50);
	printf("verify + policy in a loop of its own (CPU): median %.1f us\n", tl50);
	printf("OpenSSL's Ed25519 verification alone (CPU): median %.1f us\n", r50);
	printf("one synchronous commit of a small row, alone: median %.1f us wall, %.1f us CPU\n", cw50, cc50);
	printf("CPU time (this thread) medians: apply %.1f us, apply with trust %.1f us (added %.1f us), verify + policy %.1f us\n",
	       ac50, bc50, bc50 - ac50, vc50);
	printf("RESULT commands=%zu apply_us=%.1f apply_trusted_us=%.1f added_us=%.1f verify_policy_us=%.1f "
	       "verify_policy_p99_us=%.1f verify_us=%.1f apply_cpu_us=%.1f apply_trusted_cpu_us=%.1f added_cpu_us=%.1f "
	       "verify_policy_cpu_us=%.1f verify_policy_alone_cpu_us=%.1f ed25519_cpu_us=%.1f commit_us=%.1f commit_cpu_us=%.1f "
	       "target_added_us=200\n",
	       n, a50, b50, b50 - a50, v50, v99, vo50, ac50, bc50, bc50 - ac50, vc50, tl50, r50, cw50, cc50);
	control_destroy(c_plain);
	control_destroy(c_trust);
	trust_destroy(t_gate);
	trust_destroy(t_alone);
	store_close(s_plain);
	store_close(s_trust);
	store_close(s_verify);
	return 0;
}
