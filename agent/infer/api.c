/* agent/infer/api.c - the local HTTP API on libmicrohttpd, driven from berth's loop (no MHD thread). */
#include "agent/infer/api.h"
#include "agent/infer/reqsize.h"

#include <ctype.h>
#include <errno.h>
#if IS_ENABLED(CONFIG_LOCAL_API)
#include <microhttpd.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/infer/api_listen.h"
#include "agent/infer/connguard.h"
#include "agent/infer/dispatch.h"
#include "agent/base/jsonutil.h"
#include "agent/base/log.h"
#include "agent/base/version.h"
#include "agent/infer/process_metrics.h"
#include "agent/base/loop.h"
#include "hal/clock.h"
#include "hal/invoke.h"
#include "hal/net.h"
#include "hal/sys.h"

#define LOG_TAG "api"

#define API_MAX_DAEMONS 2            /* TCP and unix socket: daemons[D_TCP], daemons[D_UNIX] */
enum { D_TCP, D_UNIX };
#define API_SCRATCH_INITIAL (64 * 1024)
#define API_BODY_STASH 4         /* body buffers kept between requests, whatever the concurrency was */
/* After a burst (this many requests, then none in progress for the quiet time) the allocator
 * hands back the free heap pages its transient allocations left (~180 kB per 10,000). */
#define API_TRIM_AFTER_REQUESTS 256
#define API_TRIM_QUIET_MS 100

/* --- the server ------------------------------------------------------------ */

#if IS_ENABLED(CONFIG_LOCAL_API)

static size_t json_str(char *buf, size_t len, size_t off, const char *s)
{
	return off + jsonutil_quote(off < len ? buf + off : NULL, off < len ? len - off : 0, s);
}

static size_t json_raw(char *buf, size_t len, size_t off, const char *s)
{
	int n = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0, "%s", s);
	return off + (size_t)(n > 0 ? n : 0);
}

enum ctx_state { CTX_FREE = 0, CTX_READING, CTX_QUEUED, CTX_DONE };

/* One inference request in progress; a fixed pool of these, one per allowed
 * connection, so the pool never runs dry before MHD refuses connections. */
struct api_ctx {
	struct api *api;
	struct MHD_Connection *conn;
	enum ctx_state state;
	bool too_large;
	char *body;                  /* from the stash or malloc; back to the stash at the end */
	size_t body_len, body_cap;
	char content_type[96];
	char model[DEPLOY_NAME_MAX];
	struct MHD_Response *resp;   /* prepared while suspended, queued on resume */
	unsigned resp_status;
	struct dispatch_req req;
	bool size_given;             /* X-Berth-Size present (else the v2 input shapes) */
	struct api_ctx *next_free;
};

struct api_daemon {
	struct MHD_Daemon *mhd;
	int epoll_fd;
	struct api *api;
	struct loop_timer timer;
	struct api_listener listener; /* berthd accepts; MHD gets each connection (MHD_add_connection) */
	unsigned conn_limit;
};

#define API_EVICT_GRACE_MS 50        /* a connection this young is never evicted: time to send its headers */

struct api {
	struct loop *loop;
	struct dispatch *dispatch;
	size_t max_body_bytes;
	char token[128];              /* "" none */
	struct api_daemon daemons[API_MAX_DAEMONS]; /* mhd NULL: that listener is off */
	char tcp_listen[64];          /* the TCP listener's address and port (0: none) */
	uint16_t tcp_port;
	char unix_path[CONFIG_API_UNIX_PATH_MAX];
	struct api_ctx ctx[CONFIG_API_MAX_CONNECTIONS];
	struct api_ctx *free_list;
	unsigned ctx_made;           /* ctx[0..ctx_made) have been handed out at least once */
	unsigned in_use;
	char *stash[API_BODY_STASH]; /* body buffers of at most CONFIG_API_BODY_KEEP_BYTES */
	size_t stash_cap[API_BODY_STASH];
	unsigned nstash;
	char *scratch;               /* /metrics and /v1/state text, grown as needed */
	size_t scratch_cap;
	api_state_fn state_fn;       /* the agent's state document for /v1/state; NULL: dispatch's alone */
	api_metrics_fn metrics_fn;   /* the rest of the agent's series for /metrics; NULL: none */
	void *metrics_arg;
	void *state_arg;
	uint64_t http_errors[6];     /* 400, 404, 405, 413, 500, pool exhausted */
	struct connguard guard;        /* flood guard: every open connection (agent/infer/connguard.h) */
	struct loop_timer trim_timer;  /* API_TRIM_QUIET_MS after the last request of a burst */
	unsigned since_trim;           /* requests ended since the last trim */
	uint64_t silent_closed;        /* TCP connections that sent nothing for API_DEFER_S (api_listen.h) */
};

enum { ERR_400, ERR_404, ERR_405, ERR_413, ERR_500, ERR_POOL };
/* --- flood guard (connguard.h): MHD's own idle timeout restarts with every byte received. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct api *a = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (*socket_context)
			connguard_close(&a->guard, *socket_context);
		*socket_context = NULL;
		for (unsigned i = 0; i < API_MAX_DAEMONS; i++)
			api_listener_resume(&a->daemons[i].listener);
		return;
	}
	const union MHD_ConnectionInfo *fi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	*socket_context = connguard_open(&a->guard, conn, fi ? fi->connect_fd : -1, ai ? ai->client_addr : NULL,
					 connguard_now_ms());
}

static struct connguard_conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static void rearm(struct api_daemon *ad)
{
	MHD_UNSIGNED_LONG_LONG to_ms = 0;
	if (MHD_get_timeout(ad->mhd, &to_ms) == MHD_YES) {
		if (loop_timer_start(ad->api->loop, &ad->timer, to_ms, 0) < 0)
			log_err("event=timer_failed");
	} else {
		loop_timer_stop(ad->api->loop, &ad->timer);
	}
}

static void daemon_run(void *arg) /* also the daemon's timer and the listener's batch callback */
{
	struct api_daemon *ad = arg;
	(void)MHD_run(ad->mhd);
	rearm(ad);
}

static void on_epoll_ready(void *arg, int fd, unsigned events)
{
	daemon_run(arg);
}

static void on_accepted(void *arg, int fd, const void *addr, unsigned addrlen)
{
	struct api_daemon *ad = arg;
	if (MHD_add_connection(ad->mhd, fd, addr, (socklen_t)addrlen) != MHD_YES)
		ad->api->guard.refused++; /* MHD closed it: out of memory */
}

static bool has_room(void *arg)
{
	struct api_daemon *ad = arg;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(ad->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return di && di->num_connections < ad->conn_limit;
}

static const struct api_listen_ops listen_ops = { on_accepted, daemon_run, has_room };

static struct api_ctx *ctx_get(struct api *a)
{
	struct api_ctx *c = a->free_list;
	if (c) {
		a->free_list = c->next_free;
	} else if (a->ctx_made < CONFIG_API_MAX_CONNECTIONS) {
		/* contexts are touched as concurrency first reaches them */
		c = &a->ctx[a->ctx_made++];
		c->api = a;
	} else {
		return NULL;
	}
	a->in_use++;
	if (!c->body && a->nstash) {
		a->nstash--;
		c->body = a->stash[a->nstash];
		c->body_cap = a->stash_cap[a->nstash];
	}
	c->state = CTX_READING;
	c->too_large = false;
	c->body_len = 0;
	c->content_type[0] = '\0';
	c->resp = NULL;
	c->resp_status = 0;
	memset(&c->req, 0, sizeof(c->req));
	return c;
}

static void ctx_put(struct api *a, struct api_ctx *c)
{
	if (c->resp) {
		MHD_destroy_response(c->resp);
		c->resp = NULL;
	}
	if (c->body && c->body_cap <= CONFIG_API_BODY_KEEP_BYTES && a->nstash < API_BODY_STASH) {
		a->stash[a->nstash] = c->body;
		a->stash_cap[a->nstash++] = c->body_cap;
	} else {
		/* A rare large body, or one past the stash, does not pin its memory. */
		free(c->body);
	}
	c->body = NULL;
	c->body_cap = 0;
	c->state = CTX_FREE;
	c->conn = NULL;
	c->next_free = a->free_list;
	a->free_list = c;
	a->in_use--;
	if (++a->since_trim >= API_TRIM_AFTER_REQUESTS && !a->in_use &&
	    loop_timer_start(a->loop, &a->trim_timer, API_TRIM_QUIET_MS, 0) < 0)
		log_err("event=timer_failed what=trim");
}

static void on_trim_timer(void *arg)
{
	struct api *a = arg;
	if (a->in_use)
		return; /* a request came: the next quiet moment trims */
	hal_sys_trim_memory(), a->since_trim = 0;
}

static int ctx_append(struct api_ctx *c, const char *data, size_t n, size_t max)
{
	if (c->body_len + n > max)
		return -EFBIG;
	if (c->body_len + n > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 4096;
		while (cap < c->body_len + n)
			cap *= 2;
		if (cap > max)
			cap = max;
		char *nb = realloc(c->body, cap);
		if (!nb)
			return -ENOMEM;
		c->body = nb;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, data, n);
	c->body_len += n;
	return 0;
}

static void add_ms_header(struct MHD_Response *r, const char *name, uint64_t us)
{
	char v[API_MS_TEXT];
	MHD_add_response_header(r, name, api_ms_text(v, us));
}

static struct MHD_Response *make_json(const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (r)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return r;
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, const char *body, size_t len,
				const char *ctype)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_error(struct api *a, struct MHD_Connection *conn, unsigned status, const char *msg,
				  const char *reason, const char *header, const char *model, unsigned retry_after_s)
{
	char body[512];
	size_t n = api_error_json(body, sizeof(body), msg, reason, header, model, retry_after_s);
	struct MHD_Response *r = make_json(body, n);
	if (!r)
		return MHD_NO;
	if (retry_after_s) {
		char v[16];
		snprintf(v, sizeof(v), "%u", retry_after_s);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	if (status == 405)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, strstr(msg, "POST") ? "POST" : "GET, HEAD");
	switch (status) {
	case 400: a->http_errors[ERR_400]++; break;
	case 404: a->http_errors[ERR_404]++; break;
	case 405: a->http_errors[ERR_405]++; break;
	case 413: a->http_errors[ERR_413]++; break;
	case 500: a->http_errors[ERR_500]++; break;
	default: break;
	}
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

#define API_SCRATCH_MAX (4u * 1024 * 1024)

/* /v1/state with the agent's document: {..state.., "dispatch": {..figures..}}.
 * The scratch buffer doubles (up to API_SCRATCH_MAX) until both fit. */
static enum MHD_Result send_state(struct api *a, struct MHD_Connection *conn)
{
	for (;;) {
		int n = a->state_fn(a->state_arg, a->scratch, a->scratch_cap);
		if (n > 1 && a->scratch[n - 1] == '}') {
			size_t o = (size_t)n - 1;
			const char key[] = ",\"dispatch\":";
			if (o + sizeof(key) < a->scratch_cap) {
				memcpy(a->scratch + o, key, sizeof(key) - 1);
				o += sizeof(key) - 1;
				o += dispatch_render_state(a->dispatch, a->scratch + o, a->scratch_cap - o);
				if (o + 2 <= a->scratch_cap) {
					a->scratch[o++] = '}';
					return send_buf(conn, 200, a->scratch, o, "application/json");
				}
			}
		} else if (n >= 0) {
			break; /* not an object: a bug in the renderer */
		}
		size_t cap = a->scratch_cap * 2;
		char *nb = cap <= API_SCRATCH_MAX ? realloc(a->scratch, cap) : NULL;
		if (!nb)
			break;
		a->scratch = nb;
		a->scratch_cap = cap;
	}
	return send_error(a, conn, 500, "state too large to render", NULL, NULL, NULL, 0);
}

void api_set_metrics_fn(struct api *a, api_metrics_fn fn, void *arg)
{
	a->metrics_fn = fn;
	a->metrics_arg = arg;
}

void api_set_state_fn(struct api *a, api_state_fn fn, void *arg)
{
	a->state_fn = fn;
	a->state_arg = arg;
}

/* Renders /metrics or /v1/state into the scratch buffer, growing it once
 * when the text outgrew it (figures grow with models, not with requests). */
static enum MHD_Result send_rendered(struct api *a, struct MHD_Connection *conn, bool metrics)
{
	if (!metrics && a->state_fn)
		return send_state(a, conn);
	for (int attempt = 0; attempt < 2; attempt++) {
		size_t n = metrics ? dispatch_render_metrics(a->dispatch, a->scratch, a->scratch_cap)
				   : dispatch_render_state(a->dispatch, a->scratch, a->scratch_cap);
		if (metrics && n < a->scratch_cap) {
			int k = snprintf(a->scratch + n, a->scratch_cap - n,
					 "# HELP berth_api_errors_total Requests answered with an HTTP error by the API itself.\n"
					 "# TYPE berth_api_errors_total counter\n"
					 "berth_api_errors_total{code=\"400\"} %llu\n"
					 "berth_api_errors_total{code=\"404\"} %llu\n"
					 "berth_api_errors_total{code=\"405\"} %llu\n"
					 "berth_api_errors_total{code=\"413\"} %llu\n"
					 "berth_api_errors_total{code=\"500\"} %llu\n"
					 "# HELP berth_api_pool_exhausted_total Requests refused because every request context was busy.\n"
					 "# TYPE berth_api_pool_exhausted_total counter\n"
					 "berth_api_pool_exhausted_total %llu\n"
					 "# HELP berth_api_connections Open API connections.\n# TYPE berth_api_connections gauge\nberth_api_connections %u\n"
					 "# HELP berth_api_evicted_total Connections outside a request closed to make room (pool or per-client share full).\n# TYPE berth_api_evicted_total counter\nberth_api_evicted_total %llu\n"
					 "# HELP berth_api_header_timeouts_total Connections closed for not sending a request's headers in time.\n# TYPE berth_api_header_timeouts_total counter\nberth_api_header_timeouts_total %llu\n",
					 (unsigned long long)a->http_errors[ERR_400], (unsigned long long)a->http_errors[ERR_404],
					 (unsigned long long)a->http_errors[ERR_405], (unsigned long long)a->http_errors[ERR_413],
					 (unsigned long long)a->http_errors[ERR_500], (unsigned long long)a->http_errors[ERR_POOL],
					 a->guard.open, (unsigned long long)a->guard.evicted,
					 (unsigned long long)(a->guard.header_timeouts + a->silent_closed));
			n += (size_t)(k > 0 ? k : 0);
			n += process_metrics_render(a->scratch + (n < a->scratch_cap ? n : a->scratch_cap),
					    n < a->scratch_cap ? a->scratch_cap - n : 0);
			if (a->metrics_fn)
				n += a->metrics_fn(a->metrics_arg, a->scratch + (n < a->scratch_cap ? n : a->scratch_cap),
						   n < a->scratch_cap ? a->scratch_cap - n : 0);
		}
		if (n < a->scratch_cap)
			return send_buf(conn, 200, a->scratch, n,
					metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json");
		size_t cap = n + 4096;
		char *nb = realloc(a->scratch, cap);
		if (!nb)
			break;
		a->scratch = nb;
		a->scratch_cap = cap;
	}
	return send_error(a, conn, 500, "out of memory rendering figures", NULL, NULL, NULL, 0);
}

static enum MHD_Result answer_simple(struct api *a, struct MHD_Connection *conn, const struct api_route *rt)
{
	switch (rt->kind) {
	case API_ROUTE_LIVE:
		return send_buf(conn, 200, "{\"live\":true}", 13, "application/json");
	case API_ROUTE_READY:
		if (dispatch_all_ready(a->dispatch))
			return send_buf(conn, 200, "{\"ready\":true}", 14, "application/json");
		return send_buf(conn, 503, "{\"ready\":false}", 15, "application/json");
	case API_ROUTE_MODEL_READY: {
		int m = dispatch_model_find(a->dispatch, rt->model);
		if (m < 0)
			return send_error(a, conn, 404, "unknown model", NULL, NULL, rt->model, 0);
		char body[128];
		bool ok = dispatch_model_ready(a->dispatch, m);
		size_t n = json_raw(body, sizeof(body), 0, "{\"name\":");
		n = json_str(body, sizeof(body), n, rt->model);
		n = json_raw(body, sizeof(body), n, ok ? ",\"ready\":true}" : ",\"ready\":false}");
		return send_buf(conn, ok ? 200 : 503, body, n, "application/json");
	}
	case API_ROUTE_SERVER_META: {
		static const char body[] = "{\"name\":\"berth\",\"version\":\"" BERTH_VERSION "\",\"extensions\":[]}";
		return send_buf(conn, 200, body, sizeof(body) - 1, "application/json");
	}
	case API_ROUTE_MODEL_META: {
		/* The tensors are the worker's own: berth does not know them, so inputs and
		 * outputs are empty (the protocol requires the arrays, not their content). */
		if (dispatch_model_find(a->dispatch, rt->model) < 0)
			return send_error(a, conn, 404, "unknown model", NULL, NULL, rt->model, 0);
		char body[160];
		size_t n = json_raw(body, sizeof(body), 0, "{\"name\":");
		n = json_str(body, sizeof(body), n, rt->model);
		n = json_raw(body, sizeof(body), n, ",\"platform\":\"berth\",\"inputs\":[],\"outputs\":[]}");
		return send_buf(conn, 200, body, n, "application/json");
	}
	case API_ROUTE_METRICS:
		return send_rendered(a, conn, true);
	case API_ROUTE_STATE:
		return send_rendered(a, conn, false);
	default:
		return send_error(a, conn, 404, "not found", NULL, NULL, NULL, 0);
	}
}

static unsigned reason_status(const struct dispatch_req *r)
{
	return r->http_status ? (unsigned)r->http_status : 503;
}

static struct MHD_Response *make_refusal(struct dispatch_req *r, const char *model)
{
	char body[256];
	const char *what;
	switch (r->reason) {
	case DISPATCH_DEADLINE_INFEASIBLE: what = "deadline cannot be met"; break;
	case DISPATCH_QUEUE_FULL: what = "queue full"; break;
	case DISPATCH_NO_READY_REPLICA: what = "no ready replica"; break;
	case DISPATCH_BREAKER_OPEN: what = "every replica's circuit breaker is open"; break;
	case DISPATCH_REPLICA_FAILED: what = "replica failed"; break;
	case DISPATCH_DEADLINE_EXCEEDED: what = "deadline exceeded at the replica"; break;
	case DISPATCH_SHUTDOWN: what = "shutting down"; break;
	default: what = "not served"; break;
	}
	size_t n = api_error_json(body, sizeof(body), what, dispatch_reason_name(r->reason), NULL, model,
				  r->retry_after_s);
	struct MHD_Response *resp = make_json(body, n);
	if (resp && r->retry_after_s) {
		char v[16];
		snprintf(v, sizeof(v), "%u", r->retry_after_s);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	return resp;
}

static void add_timing(struct MHD_Response *resp, const struct dispatch_req *r)
{
	if (!resp)
		return;
	add_ms_header(resp, "X-Berth-Queue-Ms", r->queue_us);
	add_ms_header(resp, "X-Berth-Service-Ms", r->service_us);
}

/* dispatch finished a request that waited (connection suspended). */
static void on_done(void *arg, struct dispatch_req *r, const void *body, size_t len)
{
	struct api_ctx *c = (struct api_ctx *)((char *)r - offsetof(struct api_ctx, req));
	struct api *a = arg;
	if (r->reason == DISPATCH_OK) {
		c->resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
		if (c->resp)
			MHD_add_response_header(c->resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
		c->resp_status = (unsigned)r->http_status;
	} else {
		c->resp = make_refusal(r, c->model);
		c->resp_status = reason_status(r);
	}
	add_timing(c->resp, r);
	c->state = CTX_DONE;
	MHD_resume_connection(c->conn);
	/* Run MHD from the loop (not from inside this callback, which may sit in
	 * another library's callback) at once rather than at the next wake-up. */
	for (unsigned i = 0; i < API_MAX_DAEMONS; i++)
		if (a->daemons[i].mhd && loop_timer_start(a->loop, &a->daemons[i].timer, 0, 0) < 0)
			log_err("event=timer_failed");
}

static enum MHD_Result begin_infer(struct api *a, struct MHD_Connection *conn, const struct api_route *rt,
				   void **con_cls)
{
	uint64_t now_us = hal_clock_now_us();
	int m = dispatch_model_find(a->dispatch, rt->model);
	if (m < 0)
		return send_error(a, conn, 404, "unknown model", NULL, NULL, rt->model, 0);
	uint32_t def_deadline_ms = 0;
	enum sla_class def_cls = SLA_NORMAL;
	if (dispatch_model_defaults(a->dispatch, m, &def_deadline_ms, &def_cls) < 0)
		return send_error(a, conn, 404, "unknown model", NULL, NULL, rt->model, 0);

	struct api_infer_head head;
	const char *bad = NULL;
	int st = api_check_infer_head(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Berth-Deadline-Ms"),
				      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Berth-Class"),
				      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
				      def_deadline_ms, def_cls, a->max_body_bytes, &head, &bad);
	if (st == 413)
		return send_error(a, conn, 413, "request body too large", NULL, bad, rt->model, 0);
	if (st) {
		char msg[96];
		snprintf(msg, sizeof(msg), "bad header %s", bad);
		return send_error(a, conn, 400, msg, NULL, bad, rt->model, 0);
	}

	const char *size_hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Berth-Size");
	uint32_t size = 0;
	if (size_hdr && reqsize_parse_header(size_hdr, &size) < 0)
		return send_error(a, conn, 400, "bad header X-Berth-Size", NULL, "X-Berth-Size", rt->model, 0);

	struct api_ctx *c = ctx_get(a);
	if (!c) {
		a->http_errors[ERR_POOL]++;
		return send_error(a, conn, 503, "too many requests in progress", "queue_full", NULL, rt->model, 1);
	}
	c->conn = conn;
	snprintf(c->model, sizeof(c->model), "%s", rt->model);
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ct)
		snprintf(c->content_type, sizeof(c->content_type), "%s", ct);
	c->req.model = m;
	c->req.cls = head.cls;
	c->req.arrival_us = now_us;
	c->req.deadline_us = now_us + (uint64_t)head.deadline_ms * 1000u;
	c->size_given = size_hdr != NULL;
	c->req.size = size;
	/* The sim port's simulated service time; production ignores the header. */
	const char *cost = hal_invoke_cost_hints() ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Cost-Ms") : NULL;
	if (cost)
		c->req.cost_hint_ms = (uint32_t)strtoul(cost, NULL, 10);
	*con_cls = c;
	return MHD_YES;
}

static enum MHD_Result finish_infer(struct api *a, struct api_ctx *c)
{
	if (c->too_large)
		return send_error(a, c->conn, 413, "request body too large", NULL, NULL, c->model, 0);
	c->req.body = c->body;
	c->req.body_len = c->body_len;
	if (!c->size_given)
		c->req.size = reqsize_v2_inputs(c->body, c->body_len);
	c->req.content_type = c->content_type[0] ? c->content_type : "application/json";
	if (dispatch_submit(a->dispatch, &c->req) == 0) {
		c->state = CTX_QUEUED;
		MHD_suspend_connection(c->conn);
		return MHD_YES;
	}
	c->state = CTX_DONE;
	struct MHD_Response *resp = make_refusal(&c->req, c->model);
	if (!resp)
		return MHD_NO;
	add_timing(resp, &c->req);
	enum MHD_Result ret = MHD_queue_response(c->conn, reason_status(&c->req), resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Constant-time comparison: the time taken does not tell how much matched. */
static bool token_ok(const struct api *a, struct MHD_Connection *conn)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	size_t n = strlen(a->token);
	if (strlen(h) != n)
		return false;
	unsigned char diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(h[i] ^ a->token[i]);
	return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct api *a = cls;
	struct api_ctx *c = *con_cls;
	if (!c && a->token[0] && !token_ok(a, conn))
		return send_error(a, conn, 401, "unauthorized (Authorization: Bearer TOKEN)", NULL, NULL, NULL, 0);
	if (!c) {
		struct connguard_conn *k = conn_of(conn);
		if (k)
			connguard_request(k);
		struct api_route rt;
		int rc = api_route_parse(method, url, &rt);
		if (rc == -EPERM)
			return send_error(a, conn, 405,
					  rt.kind == API_ROUTE_INFER ? "method not allowed (use POST)"
								     : "method not allowed (use GET)",
					  NULL, NULL, NULL, 0);
		if (rc < 0)
			return send_error(a, conn, 404, "not found", NULL, NULL, rt.model[0] ? rt.model : NULL, 0);
		if (rt.kind != API_ROUTE_INFER)
			return answer_simple(a, conn, &rt);
		return begin_infer(a, conn, &rt, con_cls);
	}
	switch (c->state) {
	case CTX_READING:
		if (*upload_data_size) {
			if (!c->too_large) {
				int rc = ctx_append(c, upload_data, *upload_data_size, a->max_body_bytes);
				if (rc == -EFBIG)
					c->too_large = true;
				else if (rc < 0)
					return MHD_NO;
			}
			*upload_data_size = 0;
			return MHD_YES;
		}
		return finish_infer(a, c);
	case CTX_DONE: {
		if (!c->resp)
			return MHD_NO;
		enum MHD_Result ret = MHD_queue_response(conn, c->resp_status, c->resp);
		MHD_destroy_response(c->resp);
		c->resp = NULL;
		return ret;
	}
	default:
		return MHD_YES;
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api *a = cls;
	struct api_ctx *c = *con_cls;
	struct connguard_conn *k = conn_of(conn);
	if (k)
		connguard_done(k, connguard_now_ms());
	if (!c)
		return;
	if (c->state == CTX_QUEUED)
		dispatch_cancel(a->dispatch, &c->req);
	*con_cls = NULL;
	ctx_put(a, c);
}

__attribute__((format(printf, 2, 0)))
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_wrn("event=mhd_error msg=\"%s\"", msg);
}

static int start_daemon(struct api *a, unsigned slot, int listen_fd, const char *what, unsigned nlisteners)
{
	struct api_daemon *ad = &a->daemons[slot];
	ad->api = a;
	loop_timer_init(&ad->timer, daemon_run, ad);
	/* Both listeners together never exceed the guard's slots (the pool plus the reserve). */
	unsigned conn_limit = ad->conn_limit = CONNGUARD_SLOTS / nlisteners;
	ad->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
				   0, NULL, NULL, on_request, a,
				   MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
				   MHD_OPTION_CONNECTION_LIMIT, conn_limit,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONFIG_API_IDLE_TIMEOUT_S,
				   /* headers and read buffer only (bodies are copied out): 16 KiB, not 32 */
				   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
				   MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
				   MHD_OPTION_NOTIFY_CONNECTION, on_connection, a,
				   MHD_OPTION_END);
	if (!ad->mhd) {
		hal_net_close(listen_fd);
		log_err("event=listen_failed on=%s err=\"MHD_start_daemon failed\"", what);
		return -EIO;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(ad->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	ad->epoll_fd = info ? info->epoll_fd : -1;
	if (ad->epoll_fd < 0 || loop_fd_add(a->loop, ad->epoll_fd, LOOP_IN, on_epoll_ready, ad) < 0) {
		MHD_stop_daemon(ad->mhd);
		ad->mhd = NULL;
		hal_net_close(listen_fd);
		log_err("event=listen_failed on=%s err=\"cannot watch the server's epoll fd\"", what);
		return -EIO;
	}
	if (api_listener_start(&ad->listener, a->loop, listen_fd, slot == D_TCP, &a->silent_closed, &listen_ops, ad) < 0) {
		loop_fd_del(a->loop, ad->epoll_fd);
		MHD_stop_daemon(ad->mhd);
		ad->mhd = NULL;
		log_err("event=listen_failed on=%s err=\"cannot watch the listening socket\"", what);
		return -EIO;
	}
	rearm(ad);
	return 0;
}

/* Answers the requests still queued on ad's connections with 503 (shutting down), lets MHD
 * send those answers, closes its listener and stops it. */
static void daemon_stop(struct api *a, struct api_daemon *ad)
{
	if (!ad->mhd)
		return;
	for (unsigned i = 0; i < a->ctx_made; i++) {
		struct api_ctx *c = &a->ctx[i];
		if (c->state != CTX_QUEUED)
			continue;
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_DAEMON);
		if (ci && ci->daemon != ad->mhd)
			continue;
		dispatch_cancel(a->dispatch, &c->req);
		c->req.reason = DISPATCH_SHUTDOWN;
		c->req.http_status = 503;
		c->resp = make_refusal(&c->req, c->model);
		c->resp_status = 503;
		c->state = CTX_DONE;
		MHD_resume_connection(c->conn);
	}
	(void)MHD_run(ad->mhd);
	loop_timer_stop(a->loop, &ad->timer);
	loop_fd_del(a->loop, ad->epoll_fd);
	api_listener_stop(&ad->listener);
	MHD_stop_daemon(ad->mhd);
	ad->mhd = NULL;
}

/* Opens the listening sockets of cfg that differ from the running ones (fd[D_TCP],
 * fd[D_UNIX]; -1 where unchanged or off). Returns 0, or a negative errno with nothing open. */
static int listeners_open(struct api *a, const struct api_config *cfg, int fd[API_MAX_DAEMONS])
{
	bool want_unix = cfg->unix_socket && *cfg->unix_socket;
	fd[D_TCP] = fd[D_UNIX] = -1;
	if (cfg->port && (cfg->port != a->tcp_port || strcmp(cfg->listen, a->tcp_listen))) {
		if ((fd[D_TCP] = api_listen_tcp(cfg->listen, cfg->port)) < 0)
			return fd[D_TCP];
	}
	if (want_unix && strcmp(cfg->unix_socket, a->unix_path)) {
		if ((fd[D_UNIX] = api_listen_unix(cfg->unix_socket)) < 0) {
			hal_net_close(fd[D_TCP]);
			return fd[D_UNIX];
		}
	}
	return 0;
}

/* Swaps in the listeners listeners_open opened (fd), stops those cfg changed or turned off. */
static int listeners_swap(struct api *a, const struct api_config *cfg, const int fd[API_MAX_DAEMONS])
{
	bool want_unix = cfg->unix_socket && *cfg->unix_socket;
	unsigned n = (cfg->port ? 1u : 0u) + (want_unix ? 1u : 0u);
	int rc = 0;
	if (fd[D_TCP] >= 0 || !cfg->port) {
		daemon_stop(a, &a->daemons[D_TCP]);
		a->tcp_port = 0;
		a->tcp_listen[0] = '\0';
	}
	if (fd[D_TCP] >= 0 && (rc = start_daemon(a, D_TCP, fd[D_TCP], "tcp", n)) == 0) {
		a->tcp_port = cfg->port;
		snprintf(a->tcp_listen, sizeof(a->tcp_listen), "%s", cfg->listen);
		log_inf("event=listening on=%s:%u", cfg->listen, cfg->port);
	}
	if (fd[D_UNIX] >= 0 || !want_unix) {
		daemon_stop(a, &a->daemons[D_UNIX]);
		if (a->unix_path[0])
			hal_net_unlink_unix(a->unix_path);
		a->unix_path[0] = '\0';
	}
	if (fd[D_UNIX] >= 0) {
		int urc = start_daemon(a, D_UNIX, fd[D_UNIX], "unix", n);
		if (urc == 0) {
			snprintf(a->unix_path, sizeof(a->unix_path), "%s", cfg->unix_socket);
			log_inf("event=listening on=unix:%s", cfg->unix_socket);
		} else {
			hal_net_unlink_unix(cfg->unix_socket);
			rc = urc;
		}
	}
	return rc;
}

int api_reconfigure(struct api *a, const struct api_config *cfg)
{
	if (!cfg->port && !(cfg->unix_socket && *cfg->unix_socket))
		return -EINVAL;
	int fd[API_MAX_DAEMONS];
	int rc = listeners_open(a, cfg, fd);
	if (rc)
		return rc;
	a->max_body_bytes = cfg->max_body_bytes;
	snprintf(a->token, sizeof(a->token), "%s", cfg->token ? cfg->token : "");
	return listeners_swap(a, cfg, fd);
}

struct api *api_create(struct loop *l, const struct api_config *cfg, struct dispatch *d)
{
	if (!cfg->port && !(cfg->unix_socket && *cfg->unix_socket)) {
		log_err("event=api_config_invalid why=\"neither api.port nor api.unix_socket set\"");
		return NULL;
	}
	struct api *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->loop = l;
	a->dispatch = d;
	a->max_body_bytes = cfg->max_body_bytes;
	snprintf(a->token, sizeof(a->token), "%s", cfg->token ? cfg->token : "");
	loop_timer_init(&a->trim_timer, on_trim_timer, a);
	connguard_init(&a->guard, CONFIG_API_MAX_CONNECTIONS, CONFIG_API_PER_CLIENT_MAX, CONFIG_API_HEADER_TIMEOUT_MS,
		       (uint32_t)CONFIG_API_IDLE_TIMEOUT_S * 1000u, API_EVICT_GRACE_MS);
	if (connguard_start(&a->guard, l) < 0)
		goto errout;
	a->scratch_cap = API_SCRATCH_INITIAL;
	a->scratch = malloc(a->scratch_cap);
	if (!a->scratch)
		goto errout;

	int fd[API_MAX_DAEMONS];
	if (listeners_open(a, cfg, fd) < 0 || listeners_swap(a, cfg, fd) < 0)
		goto errout;
	dispatch_set_done_fn(d, on_done, a);
	return a;

errout:
	api_destroy(a);
	return NULL;
}

void api_destroy(struct api *a)
{
	if (!a)
		return;
	/* Requests still queued get 503 shutting down (daemon_stop). */
	connguard_stop(&a->guard);
	loop_timer_stop(a->loop, &a->trim_timer);
	for (unsigned i = 0; i < API_MAX_DAEMONS; i++)
		daemon_stop(a, &a->daemons[i]);
	if (a->unix_path[0])
		hal_net_unlink_unix(a->unix_path);
	for (unsigned i = 0; i < a->ctx_made; i++)
		free(a->ctx[i].body);
	for (unsigned i = 0; i < a->nstash; i++)
		free(a->stash[i]);
	if (a->dispatch)
		dispatch_set_done_fn(a->dispatch, NULL, NULL);
	free(a->scratch);
	free(a);
}

#else /* !CONFIG_LOCAL_API: the pure parsers above stay, the server is left out. */

struct api *api_create(struct loop *l, const struct api_config *cfg, struct dispatch *d)
{
	(void)l;
	(void)cfg;
	(void)d;
	log_err("event=api_unavailable reason=\"built without CONFIG_LOCAL_API\"");
	return NULL;
}

void api_set_state_fn(struct api *a, api_state_fn fn, void *arg) { (void)a, (void)fn, (void)arg; }
void api_set_metrics_fn(struct api *a, api_metrics_fn fn, void *arg) { (void)a, (void)fn, (void)arg; }
void api_destroy(struct api *a) { (void)a; }
int api_reconfigure(struct api *a, const struct api_config *cfg) { (void)a, (void)cfg; return -ENOTSUP; }

#endif
