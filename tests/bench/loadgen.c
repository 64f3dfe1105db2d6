/* tests/bench/loadgen.c - replays a trace slice as KServe v2 requests over keep-alive HTTP/1.1, open loop, and reports latencies. */
/*
 * usage: loadgen --trace FILE --target HOST:PORT[,HOST:PORT...] [--model M]
 *                [--skip N] [--limit N] [--speedup K] [--cost-scale F]
 *                [--conns N] [--raw FILE] [--progress FILE] [--sizes US_PER_KELEM]
 *                [--deadline-scale D]
 * Each trace row (t_ms,model,deadline_ms[,class][,cost_ms]) becomes one POST
 * /v2/models/M/infer at t_ms/K with X-Berth-Deadline-Ms, X-Berth-Class and
 * body parameters.cost_ms = cost_ms*F; M is --model, or the row's model.
 * --deadline-scale D multiplies every deadline (a busy test machine).
 * --sizes U (the trace's 6th column, size, required): the input's shape is
 * [1,size] and parameters.cost_ms = (cost_ms - size*U/1e6)*F, the part of the
 * cost a gateway cannot see; a reference worker with WORKER_US_PER_KELEM=U*F
 * adds the rest from the shape (the data stay 4 numbers). With several targets each request goes
 * to the target with the fewest requests in flight (a client balancing over
 * replicas by itself). Open loop: a request is sent at its time on an idle
 * keep-alive connection, or a new one (up to --conns per target).
 * Prints one line per class and a last line
 *   LOADGEN n=.. ok=.. p50_ms=.. p90_ms=.. p99_ms=.. urgent_miss_pct=.. overhead_p50_ms=.. overhead_p99_ms=..
 * (overhead_*: latency minus X-Berth-Queue-Ms minus X-Berth-Service-Ms, when present).
 * --raw writes "latency_ms,class,status,deadline_ms,sent_ms,model,queue_ms,service_ms,reason"
 * per request (sent_ms from the start of the replay; latency -1 when unanswered; reason
 * from the JSON error body of a refusal, else empty).
 * --progress FILE is rewritten (atomically) every 250 ms and at the end with
 * "sent=N ok=N refused=N failed=N inflight=N total=N done=0|1" (refused: 503).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 8
#define MAX_CONNS 256
#define BUF_SIZE 65536
#define MAX_MODELS 16
#define MODEL_NAME_MAX 48

struct row {
	double t_ms, deadline_ms, cost_ms;
	unsigned size;             /* --sizes: the trace's size */
	int cls;                   /* 0 urgent, 1 normal, 2 batch */
	int model;                 /* index into g_models */
	/* results */
	int status;
	double latency_ms, queue_ms, service_ms, sent_ms;
	bool done, have_berth;
	char reason[24];           /* "reason" of an error body (503 refusals) */
};

struct conn {
	int fd;
	int target;
	bool busy;
	struct row *req;
	double sent_ms;
	char buf[BUF_SIZE];
	size_t len;
	char out[2048];
	size_t out_len, out_off;
};

static struct row *g_rows;
static size_t g_nrows;
static struct conn g_conns[MAX_CONNS * MAX_TARGETS];
static unsigned g_nconns;
static struct sockaddr_in g_targets[MAX_TARGETS];
static unsigned g_ntargets, g_inflight[MAX_TARGETS];
static const char *g_model;   /* --model; NULL: each row's own */
static char g_models[MAX_MODELS][MODEL_NAME_MAX];
static unsigned g_nmodels;
static unsigned g_max_conns = 64;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int class_of(const char *s)
{
	if (!strncmp(s, "urgent", 6))
		return 0;
	if (!strncmp(s, "batch", 5))
		return 2;
	return 1;
}
static const char *const class_names[3] = { "urgent", "normal", "batch" };

/* Index of model name s (interned), or -1 when the table is full. */
static int model_of(const char *s)
{
	for (unsigned i = 0; i < g_nmodels; i++)
		if (!strcmp(g_models[i], s))
			return (int)i;
	if (g_nmodels == MAX_MODELS)
		return -1;
	snprintf(g_models[g_nmodels], MODEL_NAME_MAX, "%s", s);
	return (int)g_nmodels++;
}

static double g_us_per_kelem = -1; /* --sizes, -1: off */
static double g_deadline_scale = 1;

static int load_trace(const char *path, size_t skip, size_t limit, double speedup, double cost_scale)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	char line[512];
	size_t cap = limit ? limit : 1024, idx = 0;
	g_rows = calloc(cap, sizeof(*g_rows));
	double t0 = -1;
	while (fgets(line, sizeof(line), f)) {
		if (!(line[0] >= '0' && line[0] <= '9'))
			continue;   /* header */
		if (idx++ < skip)
			continue;
		if (limit && g_nrows >= limit)
			break;
		if (g_nrows == cap) {
			cap *= 2;
			g_rows = realloc(g_rows, cap * sizeof(*g_rows));
		}
		char *save = NULL;
		char *t = strtok_r(line, ",\n", &save);
		char *mo = strtok_r(NULL, ",\n", &save);
		char *dl = strtok_r(NULL, ",\n", &save);
		char *cl = strtok_r(NULL, ",\n", &save);
		char *co = strtok_r(NULL, ",\n", &save);
		char *sz = strtok_r(NULL, ",\n", &save);
		if (!t || !mo || !dl)
			continue;
		if (g_us_per_kelem >= 0 && !sz) {
			fprintf(stderr, "loadgen: --sizes needs a size column in %s\n", path);
			fclose(f);
			return -EINVAL;
		}
		int mi = model_of(g_model ? g_model : mo);
		if (mi < 0) {
			fprintf(stderr, "loadgen: more than %d models in %s\n", MAX_MODELS, path);
			fclose(f);
			return -E2BIG;
		}
		struct row *r = &g_rows[g_nrows++];
		memset(r, 0, sizeof(*r));
		r->model = mi;
		double tm = atof(t);
		if (t0 < 0)
			t0 = tm;
		r->t_ms = (tm - t0) / speedup;
		r->deadline_ms = atof(dl) * g_deadline_scale;
		r->cls = cl ? class_of(cl) : 1;
		r->cost_ms = (co ? atof(co) : 10) * cost_scale;
		if (g_us_per_kelem >= 0) {
			r->size = (unsigned)atol(sz);
			double hidden = (co ? atof(co) : 10) - r->size * g_us_per_kelem / 1e6;
			r->cost_ms = (hidden > 0 ? hidden : 0) * cost_scale;
		}
	}
	fclose(f);
	return 0;
}

static int open_conn(int target)
{
	if (g_nconns >= sizeof(g_conns) / sizeof(g_conns[0]))
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&g_targets[target], sizeof(g_targets[target])) < 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	struct conn *c = &g_conns[g_nconns];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->target = target;
	return (int)g_nconns++;
}

static struct conn *idle_conn(int target)
{
	unsigned n = 0;
	for (unsigned i = 0; i < g_nconns; i++) {
		if (g_conns[i].target != target || g_conns[i].fd < 0)
			continue;
		n++;
		if (!g_conns[i].busy)
			return &g_conns[i];
	}
	if (n >= g_max_conns)
		return NULL;
	int i = open_conn(target);
	return i < 0 ? NULL : &g_conns[i];
}

static void finish(struct conn *c, int status, double t)
{
	struct row *r = c->req;
	r->status = status;
	r->latency_ms = t - c->sent_ms;
	r->done = true;
	c->busy = false;
	c->req = NULL;
	c->len = 0;
	g_inflight[c->target]--;
}

static void fail_conn(struct conn *c, double t)
{
	if (c->busy)
		finish(c, 0, t);
	close(c->fd);
	c->fd = -1;
}

static bool send_req(struct row *r, double t)
{
	int target = 0;
	for (unsigned i = 1; i < g_ntargets; i++)
		if (g_inflight[i] < g_inflight[target])
			target = (int)i;
	struct conn *c = idle_conn(target);
	if (!c)
		return false;
	char body[256];
	int bl = g_us_per_kelem >= 0 ?
		snprintf(body, sizeof(body),
			 "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,%u],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}],"
			 "\"parameters\":{\"cost_ms\":%.3f}}",
			 r->size, r->cost_ms) :
		snprintf(body, sizeof(body),
			 "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,4]}],"
			 "\"parameters\":{\"cost_ms\":%d}}",
			 r->cost_ms < 1 ? 1 : (int)(r->cost_ms + 0.5));
	r->sent_ms = t;
	c->out_len = (size_t)snprintf(c->out, sizeof(c->out),
				      "POST /v2/models/%s/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				      "Content-Type: application/json\r\nContent-Length: %d\r\n"
				      "X-Berth-Deadline-Ms: %d\r\nX-Berth-Class: %s\r\n\r\n%s",
				      g_models[r->model], bl, (int)(r->deadline_ms + 0.5), class_names[r->cls], body);
	c->out_off = 0;
	c->busy = true;
	c->req = r;
	c->sent_ms = t;
	c->len = 0;
	g_inflight[target]++;
	ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
	if (n > 0)
		c->out_off = (size_t)n;
	else if (n < 0 && errno != EAGAIN)
		fail_conn(c, t);
	return true;
}

static double header_ms(const char *hdr, const char *name, bool *found)
{
	const char *p = strcasestr(hdr, name);
	if (!p)
		return 0;
	*found = true;
	return atof(p + strlen(name));
}

static void on_readable(struct conn *c, double t)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			fail_conn(c, t);
			return;
		}
		if (n < 0)
			break;
		c->len += (size_t)n;
		c->buf[c->len] = '\0';
		if (c->len >= sizeof(c->buf) - 1)
			break;
	}
	if (!c->busy)
		return;
	char *hend = strstr(c->buf, "\r\n\r\n");
	if (!hend)
		return;
	*hend = '\0';
	const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
	size_t body = cl ? (size_t)atol(cl + 17) : 0;
	size_t have = c->len - (size_t)(hend + 4 - c->buf);
	if (have < body) {
		*hend = '\r';
		return;
	}
	int status = atoi(c->buf + 9);
	bool found = false;
	struct row *r = c->req;
	r->queue_ms = header_ms(c->buf, "\r\nX-Berth-Queue-Ms:", &found);
	r->service_ms = header_ms(c->buf, "\r\nX-Berth-Service-Ms:", &found);
	r->have_berth = found;
	if (status != 200) {
		const char *rs = strstr(hend + 4, "\"reason\":\"");
		if (rs) {
			rs += 10;
			size_t n = strcspn(rs, "\"");
			if (n >= sizeof(r->reason))
				n = sizeof(r->reason) - 1;
			memcpy(r->reason, rs, n);
			r->reason[n] = '\0';
		}
	}
	bool close_after = strcasestr(c->buf, "\r\nConnection: close") != NULL;
	finish(c, status, t);
	if (close_after) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Rewrites the progress file (write to a temporary name, then rename, so a
 * reader never sees half a line). */
static void write_progress(const char *path, size_t sent, bool done)
{
	if (!path)
		return;
	size_t ok = 0, refused = 0, failed = 0, inflight = 0;
	for (size_t i = 0; i < sent; i++) {
		const struct row *r = &g_rows[i];
		if (!r->done)
			inflight++;
		else if (r->status == 200)
			ok++;
		else if (r->status == 503)
			refused++;
		else
			failed++;
	}
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "sent=%zu ok=%zu refused=%zu failed=%zu inflight=%zu total=%zu done=%d\n", sent, ok, refused, failed,
		inflight, g_nrows, done);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i];
}

int main(int argc, char **argv)
{
	const char *trace = NULL, *targets = NULL, *raw = NULL, *progress = NULL;
	size_t skip = 0, limit = 0;
	double speedup = 1, cost_scale = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "loadgen: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--trace")) trace = v;
		else if (!strcmp(a, "--target")) targets = v;
		else if (!strcmp(a, "--model")) g_model = v;
		else if (!strcmp(a, "--skip")) skip = (size_t)atol(v);
		else if (!strcmp(a, "--limit")) limit = (size_t)atol(v);
		else if (!strcmp(a, "--speedup")) speedup = atof(v);
		else if (!strcmp(a, "--cost-scale")) cost_scale = atof(v);
		else if (!strcmp(a, "--conns")) g_max_conns = (unsigned)atoi(v);
		else if (!strcmp(a, "--raw")) raw = v;
		else if (!strcmp(a, "--progress")) progress = v;
		else if (!strcmp(a, "--sizes")) g_us_per_kelem = atof(v);
		else if (!strcmp(a, "--deadline-scale")) g_deadline_scale = atof(v);
		else {
			fprintf(stderr, "loadgen: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	if (!trace || !targets || speedup <= 0 || g_max_conns < 1 || g_max_conns > MAX_CONNS) {
		fprintf(stderr, "usage: loadgen --trace FILE --target HOST:PORT[,..] [--model M] [--skip N] [--limit N]"
				" [--speedup K] [--cost-scale F] [--conns N] [--raw FILE] [--progress FILE]\n");
		return 2;
	}
	char tbuf[512];
	snprintf(tbuf, sizeof(tbuf), "%s", targets);
	char *save = NULL;
	for (char *tok = strtok_r(tbuf, ",", &save); tok && g_ntargets < MAX_TARGETS; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(tok, ':');
		if (!colon)
			return 2;
		*colon = '\0';
		struct sockaddr_in *sa = &g_targets[g_ntargets++];
		sa->sin_family = AF_INET;
		sa->sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, tok, &sa->sin_addr) != 1)
			return 2;
	}
	int rc = load_trace(trace, skip, limit, speedup, cost_scale);
	if (rc < 0 || !g_nrows) {
		fprintf(stderr, "loadgen: cannot read %s\n", trace);
		return 1;
	}

	struct pollfd pfd[MAX_CONNS * MAX_TARGETS];
	int map[MAX_CONNS * MAX_TARGETS];
	size_t next = 0, ndone = 0;
	double start = now_ms() + 50;
	double give_up = 0, next_progress = 0;
	while (ndone < g_nrows) {
		double t = now_ms();
		if (t >= next_progress) {
			write_progress(progress, next, false);
			next_progress = t + 250;
		}
		while (next < g_nrows && start + g_rows[next].t_ms <= t) {
			if (!send_req(&g_rows[next], t))
				break;   /* every connection busy: send when one frees */
			next++;
		}
		if (next == g_nrows && !give_up)
			give_up = t + 30000;
		if (give_up && t > give_up)
			break;
		unsigned n = 0;
		for (unsigned i = 0; i < g_nconns; i++) {
			if (g_conns[i].fd < 0)
				continue;
			pfd[n].fd = g_conns[i].fd;
			pfd[n].events = POLLIN | (g_conns[i].out_off < g_conns[i].out_len && g_conns[i].busy ? POLLOUT : 0);
			map[n++] = (int)i;
		}
		int wait = 10;
		if (next < g_nrows) {
			double d = start + g_rows[next].t_ms - now_ms();
			wait = d <= 0 ? 0 : (int)d;
			if (wait > 10)
				wait = 10;
		}
		int pr = poll(pfd, n, wait);
		if (pr <= 0)
			continue;
		t = now_ms();
		for (unsigned k = 0; k < n; k++) {
			struct conn *c = &g_conns[map[k]];
			if (pfd[k].revents & POLLOUT) {
				ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
				if (w > 0)
					c->out_off += (size_t)w;
			}
			if (pfd[k].revents & (POLLIN | POLLERR | POLLHUP))
				on_readable(c, t);
		}
		ndone = 0;
		for (size_t i = 0; i < next; i++)
			ndone += g_rows[i].done;
	}

	write_progress(progress, next, true);

	/* Summary. */
	double *lat = calloc(g_nrows, sizeof(double)), *ovh = calloc(g_nrows, sizeof(double));
	size_t nlat = 0, novh = 0, ok = 0;
	size_t offered[3] = { 0 }, miss[3] = { 0 };
	FILE *rf = raw ? fopen(raw, "w") : NULL;
	for (size_t i = 0; i < g_nrows; i++) {
		struct row *r = &g_rows[i];
		offered[r->cls]++;
		bool on_time = r->done && r->status == 200 && r->latency_ms <= r->deadline_ms;
		if (!on_time)
			miss[r->cls]++;
		if (rf)
			fprintf(rf, "%.4f,%s,%d,%.1f,%.3f,%s,%.3f,%.3f,%s\n", r->done ? r->latency_ms : -1.0,
				class_names[r->cls], r->status, r->deadline_ms, r->sent_ms ? r->sent_ms - start : -1.0,
				g_models[r->model], r->queue_ms, r->service_ms, r->reason);
		if (r->done && r->status == 200) {
			ok++;
			lat[nlat++] = r->latency_ms;
			if (r->have_berth)
				ovh[novh++] = r->latency_ms - r->queue_ms - r->service_ms;
		}
	}
	if (rf)
		fclose(rf);
	qsort(lat, nlat, sizeof(double), cmp_double);
	qsort(ovh, novh, sizeof(double), cmp_double);
	for (int c = 0; c < 3; c++)
		printf("class=%s offered=%zu miss=%zu\n", class_names[c], offered[c], miss[c]);
	printf("LOADGEN n=%zu ok=%zu p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f urgent_miss_pct=%.2f"
	       " overhead_p50_ms=%.3f overhead_p99_ms=%.3f conns=%u\n",
	       g_nrows, ok, pct(lat, nlat, 50), pct(lat, nlat, 90), pct(lat, nlat, 99),
	       offered[0] ? 100.0 * (double)miss[0] / (double)offered[0] : 0.0, pct(ovh, novh, 50), pct(ovh, novh, 99),
	       g_nconns);
	free(lat);
	free(ovh);
	return 0;
}
