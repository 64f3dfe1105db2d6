/* ports/linux/curl_loop.c - libcurl multi glued into the event loop: sockets, timeout, completions. */
#include "ports/linux/curl_loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"

#define LOG_TAG "curl"

struct curl_loop {
	struct loop *l;
	CURLM *multi;
	curl_loop_done_fn done;
	void *done_arg;
	struct loop_timer timeout;  /* libcurl's single timeout (CURLMOPT_TIMERFUNCTION) */
	struct loop_timer drain;    /* completions found outside a loop callback */
	unsigned nattached;
	int running;
	bool in_action;             /* inside curl_multi_socket_action: no re-entry */
};

static bool g_curl_inited;

void curl_loop_global_init(void)
{
	if (g_curl_inited)
		return;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
		g_curl_inited = true;
	else
		log_err("event=curl_global_init_failed");
}

int curl_loop_errno(CURLcode rc, bool overflow)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_WRITE_ERROR:
		return overflow ? -EMSGSIZE : -EIO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

void curl_loop_easy_defaults(CURL *easy, void *priv, curl_write_callback write_fn, void *write_arg)
{
	curl_easy_setopt(easy, CURLOPT_PRIVATE, priv);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_fn);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, write_arg);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_PROXY, ""); /* never through $http_proxy */
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
}

int curl_loop_body_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t initial_bytes,
			  size_t max_bytes)
{
	if (*len + n > max_bytes)
		return -EMSGSIZE;
	if (*len + n + 1 > *cap) {
		size_t want = *cap ? *cap : initial_bytes;
		while (want < *len + n + 1)
			want *= 2;
		if (want > max_bytes + 1)
			want = max_bytes + 1;
		char *nb = realloc(*buf, want);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = want;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* Hands every finished transfer to the owner. Only ever called from a loop
 * callback, so the owner's callback runs from the loop as hal/ promises. */
static void drain_done(struct curl_loop *cl)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(cl->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;
		curl_multi_remove_handle(cl->multi, easy);
		cl->nattached--;
		cl->done(cl->done_arg, easy, rc);
	}
}

static void socket_action(struct curl_loop *cl, curl_socket_t s, int mask)
{
	cl->in_action = true;
	CURLMcode mc = curl_multi_socket_action(cl->multi, s, mask, &cl->running);
	cl->in_action = false;
	if (mc != CURLM_OK)
		log_err("event=multi_socket_action_failed err=\"%s\"", curl_multi_strerror(mc));
}

static void on_fd(void *arg, int fd, unsigned events)
{
	struct curl_loop *cl = arg;
	int mask = ((events & LOOP_IN) ? CURL_CSELECT_IN : 0) | ((events & LOOP_OUT) ? CURL_CSELECT_OUT : 0) |
		   ((events & LOOP_ERR) ? CURL_CSELECT_ERR : 0);
	socket_action(cl, fd, mask);
	drain_done(cl);
}

static void on_timeout(void *arg)
{
	struct curl_loop *cl = arg;
	socket_action(cl, CURL_SOCKET_TIMEOUT, 0);
	drain_done(cl);
}

static void on_drain(void *arg) { drain_done(arg); }

static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy;
	struct curl_loop *cl = userp;
	if (what == CURL_POLL_REMOVE) {
		loop_fd_del(cl->l, s);
		curl_multi_assign(cl->multi, s, NULL);
		return 0;
	}
	unsigned ev = ((what & CURL_POLL_IN) ? LOOP_IN : 0) | ((what & CURL_POLL_OUT) ? LOOP_OUT : 0);
	if (socketp) {
		if (loop_fd_mod(cl->l, s, ev) == 0)
			return 0;
	}
	int rc = loop_fd_add(cl->l, s, ev, on_fd, cl);
	if (rc == -EEXIST)
		rc = loop_fd_mod(cl->l, s, ev);
	if (rc) {
		/* The transfer then ends by its own timeout; nothing hangs forever. */
		log_err("event=loop_fd_add_failed fd=%d err=%d", (int)s, rc);
		return 0;
	}
	curl_multi_assign(cl->multi, s, cl);
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct curl_loop *cl = userp;
	if (timeout_ms < 0) {
		loop_timer_stop(cl->l, &cl->timeout);
		return 0;
	}
	if (loop_timer_start(cl->l, &cl->timeout, (uint64_t)timeout_ms, 0)) {
		log_err("event=loop_timer_full");
		return -1;
	}
	return 0;
}

struct curl_loop *curl_loop_create(struct loop *l, long max_conns, curl_loop_done_fn done, void *arg)
{
	curl_loop_global_init();
	struct curl_loop *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return NULL;
	cl->l = l;
	cl->done = done;
	cl->done_arg = arg;
	loop_timer_init(&cl->timeout, on_timeout, cl);
	loop_timer_init(&cl->drain, on_drain, cl);
	cl->multi = curl_multi_init();
	if (!cl->multi)
		goto errout_with_cl;
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_MAXCONNECTS, max_conns);
	return cl;

errout_with_cl:
	free(cl);
	return NULL;
}

void curl_loop_destroy(struct curl_loop *cl)
{
	if (!cl)
		return;
	loop_timer_stop(cl->l, &cl->timeout);
	loop_timer_stop(cl->l, &cl->drain);
	/* Closing the multi closes cached connections; the socket callback
	 * removes their fds from the loop. */
	curl_multi_cleanup(cl->multi);
	free(cl);
}

int curl_loop_add(struct curl_loop *cl, CURL *easy)
{
	CURLMcode mc = curl_multi_add_handle(cl->multi, easy);
	if (mc != CURLM_OK) {
		log_err("event=multi_add_failed err=\"%s\"", curl_multi_strerror(mc));
		return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	cl->nattached++;
	if (cl->in_action)
		return 0; /* the 0 ms timer libcurl just asked for drives it */
	/* Drive it now rather than on the next iteration: the request is on the
	 * wire before we return, which is most of the dispatch latency. */
	socket_action(cl, CURL_SOCKET_TIMEOUT, 0);
	if ((unsigned)cl->running < cl->nattached &&
	    loop_timer_start(cl->l, &cl->drain, 0, 0))
		log_err("event=loop_timer_full");
	return 0;
}

void curl_loop_remove(struct curl_loop *cl, CURL *easy)
{
	if (curl_multi_remove_handle(cl->multi, easy) == CURLM_OK && cl->nattached)
		cl->nattached--;
}

unsigned curl_loop_active(const struct curl_loop *cl) { return cl->nattached; }
