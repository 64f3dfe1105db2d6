/* ports/linux/invoke.c - HTTP calls to replicas over keep-alive connections (libcurl multi), and TCP probes. */
#include "hal/invoke.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "hal/clock.h"
#include "ports/linux/curl_loop.h"

#define LOG_TAG "invoke"

/* Buffers that grew past this for one large reply are shrunk back before
 * reuse, so one outlier does not pin memory in every slot. */
#define INVOKE_RETAIN_BYTES (64u * 1024u)
#define INVOKE_INITIAL_BYTES 4096u
#define INVOKE_URL_MAX 512
#define INVOKE_CTYPE_MAX 96

struct xfer {
	struct hal_invoke *inv;
	CURL *easy;
	int64_t handle;             /* 0 when the slot is free */
	hal_invoke_cb cb;
	void *arg;
	uint64_t start_us;
	/* reply body */
	char *buf;
	size_t len, cap;
	bool overflow;
	/* request headers, rebuilt only when the content type changes */
	struct curl_slist *hdrs;
	char ctype[INVOKE_CTYPE_MAX];
	/* tcp probe */
	bool probe;
	int fd;
	int probe_err;              /* result decided before the loop ran */
	struct loop_timer timer;
};

struct hal_invoke {
	struct loop *l;
	struct curl_loop *cl;
	struct xfer *x;
	unsigned n;
	unsigned *free_idx;         /* stack of free slot indices */
	unsigned nfree;
	uint64_t seq;
	struct hal_invoke_stats st;
};

static void xfer_release(struct hal_invoke *inv, struct xfer *x)
{
	x->handle = 0;
	x->cb = NULL;
	x->arg = NULL;
	inv->free_idx[inv->nfree++] = (unsigned)(x - inv->x);
}

static void finish(struct hal_invoke *inv, struct xfer *x, int err, int status)
{
	struct hal_invoke_res res = {
		.err = err,
		.http_status = err ? 0 : status,
		.body = err ? NULL : x->buf,
		.body_len = err ? 0 : x->len,
		.elapsed_us = hal_clock_now_us() - x->start_us,
	};
	hal_invoke_cb cb = x->cb;
	void *arg = x->arg;
	if (err)
		inv->st.failed++;
	else
		inv->st.completed_ok++;
	/* Released first so the callback may start a retry in this very slot;
	 * the body stays intact until the new transfer receives data, which
	 * only happens after the callback returns. */
	xfer_release(inv, x);
	cb(arg, &res);
}

static int map_curl(CURLcode rc, bool overflow)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	default:
		return curl_loop_errno(rc, overflow);
	}
}

static void on_done(void *arg, CURL *easy, CURLcode rc)
{
	struct hal_invoke *inv = arg;
	char *priv = NULL;
	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv)
		return;
	struct xfer *x = (struct xfer *)(void *)priv;
	if (!x->handle)
		return;
	long status = 0, nconn = 0;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &nconn) == CURLE_OK && nconn > 0)
		inv->st.conns_opened += (uint64_t)nconn;
	int err = map_curl(rc, x->overflow);
	if (err && err != -ECONNREFUSED)
		log_dbg("event=invoke_failed handle=%lld curl=%d err=\"%s\"", (long long)x->handle, (int)rc,
			curl_easy_strerror(rc));
	finish(inv, x, err, (int)status);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct xfer *x = userp;
	size_t n = size * nmemb;
	int rc = curl_loop_body_append(&x->buf, &x->len, &x->cap, data, n, INVOKE_INITIAL_BYTES,
				       CONFIG_INVOKE_MAX_BODY_BYTES);
	if (rc == -EMSGSIZE)
		x->overflow = true;
	return rc ? 0 : n; /* 0 aborts the transfer with CURLE_WRITE_ERROR */
}

/* Options that never change for a slot: set once when the handle is made. */
static int easy_init(struct xfer *x)
{
	x->easy = curl_easy_init();
	if (!x->easy)
		return -ENOMEM;
	CURL *e = x->easy;
	curl_loop_easy_defaults(e, x, on_write, x);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	return 0;
}

static int set_headers(struct xfer *x, const char *ctype)
{
	const char *want = ctype ? ctype : "";
	if (x->hdrs && strcmp(x->ctype, want) == 0)
		return 0;
	if (strlen(want) >= sizeof(x->ctype) - 16 || strpbrk(want, "\r\n"))
		return -EINVAL;
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	char line[INVOKE_CTYPE_MAX + 16];
	/* No "Expect: 100-continue" round trip before a body. */
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	if (h && *want) {
		snprintf(line, sizeof(line), "Content-Type: %s", want);
		struct curl_slist *h2 = curl_slist_append(h, line);
		if (!h2) {
			curl_slist_free_all(h);
			h = NULL;
		} else {
			h = h2;
		}
	}
	if (!h)
		return -ENOMEM;
	x->hdrs = h;
	snprintf(x->ctype, sizeof(x->ctype), "%s", want);
	return 0;
}

static struct xfer *slot_take(struct hal_invoke *inv)
{
	if (!inv->nfree) {
		inv->st.refused_busy++;
		return NULL;
	}
	struct xfer *x = &inv->x[inv->free_idx[--inv->nfree]];
	inv->seq++;
	x->handle = (int64_t)(inv->seq << 16) | (int64_t)(x - inv->x);
	return x;
}

static void slot_giveback(struct hal_invoke *inv, struct xfer *x)
{
	xfer_release(inv, x);
}

static bool valid_host(const char *h)
{
	if (!h || !*h || strlen(h) > 253)
		return false;
	for (const char *p = h; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      *p == '.' || *p == '-' || *p == ':'))
			return false;
	return true;
}

int64_t hal_invoke_start(struct hal_invoke *inv, const struct hal_invoke_req *req, hal_invoke_cb cb, void *arg)
{
	if (!inv || !req || !cb || !req->timeout_ms || !req->port || !valid_host(req->host) || !req->path ||
	    req->path[0] != '/' || strpbrk(req->path, " \r\n") || (req->body_len && !req->body))
		return -EINVAL;
	bool post = !req->method || strcmp(req->method, "POST") == 0;
	bool get = req->method && strcmp(req->method, "GET") == 0;
	if (!post && !get)
		return -EINVAL;

	char url[INVOKE_URL_MAX];
	bool v6 = strchr(req->host, ':') != NULL;
	int n = snprintf(url, sizeof(url), v6 ? "http://[%s]:%u%s" : "http://%s:%u%s", req->host,
			 (unsigned)req->port, req->path);
	if (n < 0 || (size_t)n >= sizeof(url))
		return -EINVAL;

	struct xfer *x = slot_take(inv);
	if (!x)
		return -EBUSY;
	int rc;
	if (!x->easy && (rc = easy_init(x)))
		goto errout_with_slot;
	if ((rc = set_headers(x, post ? req->content_type : NULL)))
		goto errout_with_slot;
	if (x->cap > INVOKE_RETAIN_BYTES) {
		free(x->buf);
		x->buf = NULL;
		x->cap = 0;
	}
	x->len = 0;
	x->overflow = false;
	x->probe = false;
	x->cb = cb;
	x->arg = arg;
	x->start_us = hal_clock_now_us();

	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->timeout_ms);
	if (post) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		/* Borrowed until the callback, as hal/invoke.h says: no copy. */
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	if ((rc = curl_loop_add(inv->cl, e)))
		goto errout_with_slot;
	inv->st.started++;
	return x->handle;

errout_with_slot:
	slot_giveback(inv, x);
	return rc;
}

static struct xfer *find(struct hal_invoke *inv, int64_t handle)
{
	if (handle <= 0)
		return NULL;
	unsigned idx = (unsigned)(handle & 0xffff);
	if (idx >= inv->n || inv->x[idx].handle != handle)
		return NULL;
	return &inv->x[idx];
}

static void probe_close(struct hal_invoke *inv, struct xfer *x)
{
	loop_timer_stop(inv->l, &x->timer);
	if (x->fd >= 0) {
		loop_fd_del(inv->l, x->fd);
		close(x->fd);
		x->fd = -1;
	}
}

void hal_invoke_cancel(struct hal_invoke *inv, int64_t handle)
{
	if (!inv)
		return;
	struct xfer *x = find(inv, handle);
	if (!x)
		return;
	if (x->probe)
		probe_close(inv, x);
	else
		curl_loop_remove(inv->cl, x->easy);
	inv->st.canceled++;
	xfer_release(inv, x);
}

/* --- tcp probe ----------------------------------------------------------- */

static void probe_finish(struct hal_invoke *inv, struct xfer *x, int err)
{
	probe_close(inv, x);
	finish(inv, x, err, 0);
}

static void on_probe_fd(void *arg, int fd, unsigned events)
{
	struct xfer *x = arg;
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (!soerr && (events & LOOP_ERR) && !(events & LOOP_OUT))
		soerr = ECONNREFUSED;
	probe_finish(x->inv, x, soerr == 0 ? 0 : (soerr == ECONNREFUSED ? -ECONNREFUSED : -soerr));
}

static void on_probe_timer(void *arg)
{
	struct xfer *x = arg;
	/* Either the timeout, or a result known at connect() time delivered
	 * from the loop. */
	probe_finish(x->inv, x, x->fd >= 0 && x->probe_err == 1 ? -ETIMEDOUT : x->probe_err);
}

int64_t hal_invoke_tcp_probe(struct hal_invoke *inv, const char *host, uint16_t port, uint32_t timeout_ms,
			     hal_invoke_cb cb, void *arg)
{
	if (!inv || !cb || !timeout_ms || !port || !valid_host(host))
		return -EINVAL;
	struct sockaddr_storage ss;
	socklen_t sslen;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		sslen = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		sslen = sizeof(*a6);
	} else {
		return -EINVAL; /* numeric addresses only: a probe must never block on DNS */
	}

	struct xfer *x = slot_take(inv);
	if (!x)
		return -EBUSY;
	int rc;
	x->probe = true;
	x->cb = cb;
	x->arg = arg;
	x->len = 0;
	x->start_us = hal_clock_now_us();
	x->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (x->fd < 0) {
		rc = -errno;
		goto errout_with_slot;
	}
	if (connect(x->fd, (struct sockaddr *)&ss, sslen) == 0) {
		x->probe_err = 0;
		close(x->fd);
		x->fd = -1;
		rc = loop_timer_start(inv->l, &x->timer, 0, 0);
	} else if (errno == EINPROGRESS) {
		x->probe_err = 1; /* marks "timer means timeout" */
		if ((rc = loop_fd_add(inv->l, x->fd, LOOP_OUT, on_probe_fd, x)))
			goto errout_with_fd;
		rc = loop_timer_start(inv->l, &x->timer, timeout_ms, 0);
	} else {
		x->probe_err = errno == ECONNREFUSED ? -ECONNREFUSED : -errno;
		close(x->fd);
		x->fd = -1;
		rc = loop_timer_start(inv->l, &x->timer, 0, 0);
	}
	if (rc)
		goto errout_with_fd;
	inv->st.started++;
	inv->st.conns_opened++;
	return x->handle;

errout_with_fd:
	if (x->fd >= 0) {
		loop_fd_del(inv->l, x->fd);
		close(x->fd);
		x->fd = -1;
	}
errout_with_slot:
	slot_giveback(inv, x);
	return rc;
}

/* --- lifetime ------------------------------------------------------------- */

struct hal_invoke *hal_invoke_create(struct loop *l, unsigned max_inflight)
{
	if (!l || !max_inflight || max_inflight > 0xffff)
		return NULL;
	struct hal_invoke *inv = calloc(1, sizeof(*inv));
	if (!inv)
		return NULL;
	inv->l = l;
	inv->n = max_inflight;
	inv->x = calloc(max_inflight, sizeof(*inv->x));
	inv->free_idx = calloc(max_inflight, sizeof(*inv->free_idx));
	if (!inv->x || !inv->free_idx)
		goto errout_with_inv;
	for (unsigned i = 0; i < max_inflight; i++) {
		struct xfer *x = &inv->x[i];
		x->inv = inv;
		x->fd = -1;
		loop_timer_init(&x->timer, on_probe_timer, x);
		inv->free_idx[inv->nfree++] = max_inflight - 1 - i;
	}
	inv->cl = curl_loop_create(l, CONFIG_INVOKE_MAX_CONNS, on_done, inv);
	if (!inv->cl)
		goto errout_with_inv;
	return inv;

errout_with_inv:
	free(inv->free_idx);
	free(inv->x);
	free(inv);
	return NULL;
}

/* Real replicas take the time they take: no request sets it. */
bool hal_invoke_cost_hints(void) { return false; }

void hal_invoke_destroy(struct hal_invoke *inv)
{
	if (!inv)
		return;
	for (unsigned i = 0; i < inv->n; i++) {
		struct xfer *x = &inv->x[i];
		if (x->handle && x->probe)
			probe_close(inv, x);
		else if (x->handle)
			curl_loop_remove(inv->cl, x->easy);
		loop_timer_stop(inv->l, &x->timer);
	}
	curl_loop_destroy(inv->cl);
	for (unsigned i = 0; i < inv->n; i++) {
		struct xfer *x = &inv->x[i];
		if (x->easy)
			curl_easy_cleanup(x->easy);
		curl_slist_free_all(x->hdrs);
		free(x->buf);
	}
	free(inv->free_idx);
	free(inv->x);
	free(inv);
}

void hal_invoke_get_stats(const struct hal_invoke *inv, struct hal_invoke_stats *out)
{
	*out = inv->st;
}
