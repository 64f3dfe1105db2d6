/* ports/linux/engine.c - the Docker Engine API over its unix socket, asynchronous through libcurl multi. */
#include "hal/engine.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/log.h"
#include "agent/base/loop.h"
#include "ports/linux/curl_loop.h"
#include "ports/linux/engine_json.h"

#define LOG_TAG "engine"

/* The newest API version berth speaks; an older engine gets its own. */
#define ENGINE_API_MAJOR 1
#define ENGINE_API_MINOR 41
#define ENGINE_PATH_MAX 768
#define ENGINE_MSG_MAX 512
#define ENGINE_EXEC_POLLS 20       /* exec inspect retries while "Running" */
#define ENGINE_EXEC_POLL_MS 25
#define ENGINE_EVENTS_BUF 65536    /* one event line must fit */
#define ENGINE_EVENTS_BACKOFF_MIN_MS 250
#define ENGINE_RETAIN_BYTES (64u * 1024u)
#define ENGINE_INITIAL_BYTES 4096u

enum op {
	OP_PING,
	OP_VERSION,
	OP_CREATE,
	OP_START,
	OP_STOP,
	OP_KILL,
	OP_REMOVE,
	OP_PAUSE,
	OP_UNPAUSE,
	OP_INSPECT,
	OP_LIST,
	OP_EXEC_CREATE,
	OP_EXEC_START,
	OP_EXEC_INSPECT,
	OP_EVENTS,
	OP_IMAGE_INSPECT,
	OP_IMAGE_LIST,
	OP_IMAGE_REMOVE,
};

static const char *const op_names[] = {
	"ping", "version", "create", "start", "stop", "kill", "remove", "pause", "unpause",
	"inspect", "list", "exec_create", "exec_start", "exec_inspect", "events",
	"image_inspect", "image_list", "image_remove",
};

#define ENGINE_PULL_LINE_MAX 4096  /* one progress line must fit; longer ones are skipped */
#define ENGINE_PULL_LAYERS 32      /* layers tracked for progress; more still pull */

/* The one pull in flight: its own transfer, read line by line as it streams. */
struct pull {
	CURL *easy;
	bool active;
	hal_pull_progress_fn progress;
	hal_engine_cb cb;
	void *arg;
	char ref[256];
	struct curl_slist *hdrs;    /* Content-Type, and X-Registry-Auth when given */
	char line[ENGINE_PULL_LINE_MAX];
	size_t len;
	bool skip_line;
	struct {
		char id[80];
		uint64_t current, total;
		bool done;
	} layers[ENGINE_PULL_LAYERS];
	unsigned nlayers;
	char error[256];            /* the engine's error line, "" none */
	struct loop_timer timer;    /* delivers a cancel from the loop */
};

struct call {
	struct hal_engine *e;
	CURL *easy;
	bool busy;
	bool waiting_version;
	enum op op;                 /* the request on the wire now */
	hal_engine_cb cb;
	void *arg;
	const char *method;
	char path[ENGINE_PATH_MAX]; /* after the version prefix */
	bool versioned;
	char *body;                 /* owned; NULL: no body */
	unsigned timeout_ms;
	char target[128];           /* container (or exec) named in logs */
	char exec_id[72];
	unsigned exec_polls;
	/* reply */
	char *resp;
	size_t len, cap;
	bool overflow;
	bool discard;               /* exec output: counted, not kept */
	/* a result decided without the engine, delivered from the loop */
	struct loop_timer timer;
	int deferred_err;
};

struct watch {
	CURL *easy;
	hal_engine_event_fn fn;
	void *arg;
	bool active;                /* transfer attached */
	bool waiting_version;
	bool got_headers;           /* 200 seen, UP not yet told */
	bool up;
	bool lost_told;
	bool paused;
	bool skip_line;             /* dropping an over-long line */
	unsigned gen;               /* bumps when the stream is torn down */
	unsigned backoff_ms;
	char *buf;
	size_t len;
	struct loop_timer deliver;
	struct loop_timer reconnect;
	char url[ENGINE_PATH_MAX];
};

struct hal_engine {
	struct loop *l;
	struct curl_loop *cl;
	char sock[256];
	unsigned timeout_ms;
	struct curl_slist *json_hdrs;
	enum { VER_UNKNOWN, VER_PENDING, VER_KNOWN } ver_state;
	char api[16];               /* "v1.41" */
	struct call ver;
	struct call calls[CONFIG_ENGINE_MAX_INFLIGHT];
	struct watch w;
	struct pull p;
	/* results handed to callbacks (valid during the callback only) */
	struct hal_ctr_info *ctrs;  /* CONFIG_ENGINE_LIST_MAX */
	struct hal_image_info *images; /* CONFIG_ENGINE_LIST_MAX, allocated at the first image call */
	char msg[ENGINE_MSG_MAX];
	char res_id[72];
};

static void call_send(struct call *c);
static void version_start(struct hal_engine *e);
static void watch_connect(struct hal_engine *e);
static void watch_retry(struct hal_engine *e);
static void pull_done(struct hal_engine *e, CURLcode rc);
static int submit(struct call *c);

/* --- helpers ------------------------------------------------------------ */

static bool valid_ref(const char *s)
{
	if (!s || !*s || strlen(s) >= 128)
		return false;
	for (const char *p = s; *p; p++) {
		bool alnum = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
		if (!alnum && (p == s || (*p != '_' && *p != '.' && *p != '-')))
			return false;
	}
	return true;
}

static int map_curl(CURLcode rc, bool overflow)
{
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return -EHOSTDOWN;
	return curl_loop_errno(rc, overflow);
}

/* HTTP status (and podman's "cause", which it sends with a 500 where Docker
 * sends 409) -> -errno, for a call that reached the engine. */
static int map_status(enum op op, long status, const char *cause)
{
	if (status >= 200 && status < 300)
		return 0;
	if (status == 304)
		return 0; /* already started / already stopped */
	if (status == 404)
		return -ENOENT;
	if (status == 409)
		return op == OP_CREATE ? -EEXIST : -EBUSY;
	if (cause && strstr(cause, "already in use"))
		return -EEXIST;
	if (cause && strstr(cause, "state improper"))
		return -EBUSY;
	if (cause && strstr(cause, "no such"))
		return -ENOENT;
	return -EIO;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct call *c = userp;
	size_t n = size * nmemb;
	if (c->discard)
		return n;
	int rc = curl_loop_body_append(&c->resp, &c->len, &c->cap, data, n, ENGINE_INITIAL_BYTES,
				       CONFIG_ENGINE_MAX_BODY_BYTES);
	if (rc == -EMSGSIZE)
		c->overflow = true;
	return rc ? 0 : n;
}

/* --- calls --------------------------------------------------------------- */

static struct call *call_take(struct hal_engine *e, enum op op, const char *target, hal_engine_cb cb, void *arg)
{
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++) {
		struct call *c = &e->calls[i];
		if (c->busy)
			continue;
		c->busy = true;
		c->waiting_version = false;
		c->op = op;
		c->cb = cb;
		c->arg = arg;
		c->method = "GET";
		c->path[0] = '\0';
		c->versioned = true;
		c->body = NULL;
		c->timeout_ms = e->timeout_ms;
		snprintf(c->target, sizeof(c->target), "%s", target ? target : "");
		c->exec_id[0] = '\0';
		c->exec_polls = 0;
		c->discard = false;
		return c;
	}
	return NULL;
}

static void call_release(struct call *c)
{
	free(c->body);
	c->body = NULL;
	if (c->cap > ENGINE_RETAIN_BYTES) {
		free(c->resp);
		c->resp = NULL;
		c->cap = 0;
	}
	c->len = 0;
	c->busy = false;
	c->waiting_version = false;
}

/* Delivers the result and frees the slot first, so the callback may issue
 * the next call. Logs the engine's message here, once. */
static void call_complete(struct call *c, int err, long status)
{
	struct hal_engine *e = c->e;
	struct hal_engine_result res = { .err = err, .message = "" };
	e->msg[0] = '\0';
	if (err && status && c->len && !c->discard) {
		char cause[128];
		engine_json_error(c->resp, c->len, e->msg, sizeof(e->msg), cause, sizeof(cause));
		res.message = e->msg;
	} else if (err) {
		snprintf(e->msg, sizeof(e->msg), "%s", strerror(-err));
		res.message = e->msg;
	}
	if (err == -ENOENT || err == -EEXIST || err == -EBUSY)
		log_inf("event=engine_call_refused op=%s target=%s status=%ld err=%d msg=\"%s\"", op_names[c->op],
			c->target, status, err, e->msg);
	else if (err)
		log_wrn("event=engine_call_failed op=%s target=%s status=%ld err=%d msg=\"%s\"", op_names[c->op],
			c->target, status, err, e->msg);

	if (!err) {
		int rc = 0;
		switch (c->op) {
		case OP_CREATE:
			rc = engine_json_id(c->resp, c->len, e->res_id, sizeof(e->res_id));
			res.id = e->res_id;
			break;
		case OP_INSPECT:
			rc = engine_json_inspect(c->resp, c->len, &e->ctrs[0]);
			res.ctrs = e->ctrs;
			res.nctrs = rc ? 0 : 1;
			break;
		case OP_LIST:
			rc = engine_json_list(c->resp, c->len, e->ctrs, CONFIG_ENGINE_LIST_MAX, &res.nctrs);
			res.ctrs = e->ctrs;
			if (rc == -EOVERFLOW)
				log_wrn("event=engine_list_truncated max=%d", CONFIG_ENGINE_LIST_MAX);
			break;
		case OP_EXEC_INSPECT: {
			bool running = false;
			rc = engine_json_exec_inspect(c->resp, c->len, &res.exec_exit_code, &running);
			break;
		}
		case OP_IMAGE_INSPECT:
			rc = engine_json_image(c->resp, c->len, &e->images[0]);
			res.images = e->images;
			res.nimages = rc ? 0 : 1;
			break;
		case OP_IMAGE_LIST:
			rc = engine_json_images(c->resp, c->len, e->images, CONFIG_ENGINE_LIST_MAX, &res.nimages);
			res.images = e->images;
			if (rc == -EOVERFLOW)
				log_wrn("event=engine_image_list_truncated max=%d", CONFIG_ENGINE_LIST_MAX);
			break;
		default:
			break;
		}
		if (rc) {
			if (rc == -EINVAL)
				log_wrn("event=engine_bad_reply op=%s target=%s", op_names[c->op], c->target);
			res.err = rc;
			res.message = rc == -EINVAL ? "malformed engine reply" : "too many containers";
		}
	}
	hal_engine_cb cb = c->cb;
	void *arg = c->arg;
	call_release(c);
	cb(arg, &res);
}

static void on_call_timer(void *arg)
{
	struct call *c = arg;
	if (c->op == OP_EXEC_INSPECT && !c->deferred_err) {
		call_send(c); /* re-poll an exec still running */
		return;
	}
	call_complete(c, c->deferred_err, 0);
}

static void call_fail_later(struct call *c, int err)
{
	c->deferred_err = err;
	if (loop_timer_start(c->e->l, &c->timer, 0, 0)) {
		/* No timer left: the slot would leak; say so and give it back. */
		log_err("event=engine_timer_full op=%s", op_names[c->op]);
		call_release(c);
	}
}

static void easy_setup(struct hal_engine *e, CURL *easy, void *priv, curl_write_callback write_fn, void *write_arg,
		       const char *url, unsigned timeout_ms)
{
	curl_easy_reset(easy);
	curl_loop_easy_defaults(easy, priv, write_fn, write_arg);
	curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, e->sock);
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
	if (timeout_ms)
		curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, e->json_hdrs);
}

static void call_send(struct call *c)
{
	struct hal_engine *e = c->e;
	if (c->versioned && e->ver_state != VER_KNOWN) {
		c->waiting_version = true;
		version_start(e);
		return;
	}
	if (!c->easy && !(c->easy = curl_easy_init())) {
		call_fail_later(c, -ENOMEM);
		return;
	}
	char url[ENGINE_PATH_MAX + 48];
	snprintf(url, sizeof(url), "http://localhost%s%s%s", c->versioned ? "/" : "", c->versioned ? e->api : "",
		 c->path);
	c->len = 0;
	c->overflow = false;
	easy_setup(e, c->easy, c, on_write, c, url, c->timeout_ms);
	if (strcmp(c->method, "POST") == 0) {
		curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body ? c->body : "");
		curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, c->body ? (long)strlen(c->body) : 0L);
	} else if (strcmp(c->method, "DELETE") == 0) {
		curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	int rc = curl_loop_add(e->cl, c->easy);
	if (rc)
		call_fail_later(c, rc);
}

static void call_done(struct call *c, CURLcode rc)
{
	struct hal_engine *e = c->e;
	long status = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		int err = map_curl(rc, c->overflow);
		if (err == -EHOSTDOWN && e->ver_state == VER_KNOWN)
			e->ver_state = VER_UNKNOWN; /* it may come back as another version */
		call_complete(c, err, 0);
		return;
	}
	char cause[128] = "";
	if (status >= 300 && status != 304 && c->len) {
		char msg[8];
		engine_json_error(c->resp, c->len, msg, sizeof(msg), cause, sizeof(cause));
	}
	int err = map_status(c->op, status, cause);
	if (err) {
		call_complete(c, err, status);
		return;
	}
	/* exec is a chain: create, start (waits for the command), inspect. */
	switch (c->op) {
	case OP_EXEC_CREATE:
		if (engine_json_id(c->resp, c->len, c->exec_id, sizeof(c->exec_id)) || !valid_ref(c->exec_id)) {
			call_complete(c, -EIO, 0);
			return;
		}
		free(c->body);
		c->body = strdup("{\"Detach\":false,\"Tty\":false}");
		if (!c->body) {
			call_complete(c, -ENOMEM, 0);
			return;
		}
		c->op = OP_EXEC_START;
		c->method = "POST";
		c->discard = true;
		snprintf(c->path, sizeof(c->path), "/exec/%s/start", c->exec_id);
		call_send(c);
		return;
	case OP_EXEC_START:
		c->op = OP_EXEC_INSPECT;
		c->method = "GET";
		c->discard = false;
		snprintf(c->path, sizeof(c->path), "/exec/%s/json", c->exec_id);
		call_send(c);
		return;
	case OP_EXEC_INSPECT: {
		int code;
		bool running = false;
		if (engine_json_exec_inspect(c->resp, c->len, &code, &running) == 0 && running &&
		    ++c->exec_polls < ENGINE_EXEC_POLLS) {
			c->deferred_err = 0;
			if (loop_timer_start(e->l, &c->timer, ENGINE_EXEC_POLL_MS, 0) == 0)
				return;
		}
		break;
	}
	default:
		break;
	}
	call_complete(c, 0, status);
}

/* --- version negotiation ------------------------------------------------- */

static void version_start(struct hal_engine *e)
{
	if (e->ver_state == VER_PENDING)
		return;
	struct call *c = &e->ver;
	if (c->easy || (c->easy = curl_easy_init())) {
		e->ver_state = VER_PENDING;
		c->len = 0;
		c->overflow = false;
		c->discard = false;
		easy_setup(e, c->easy, c, on_write, c, "http://localhost/version", e->timeout_ms);
	}
	if (!c->easy || curl_loop_add(e->cl, c->easy)) {
		e->ver_state = VER_UNKNOWN;
		/* Waiting calls fail from the loop through their own timers. */
		for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++)
			if (e->calls[i].busy && e->calls[i].waiting_version) {
				e->calls[i].waiting_version = false;
				call_fail_later(&e->calls[i], -ENOMEM);
			}
	}
}

static void version_done(struct hal_engine *e, CURLcode rc)
{
	struct call *c = &e->ver;
	long status = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	int err = 0, major = 0, minor = 0;
	if (rc != CURLE_OK)
		err = map_curl(rc, c->overflow);
	else if (status != 200)
		err = -EIO;
	else if (engine_json_version(c->resp, c->len, &major, &minor))
		err = -EIO;
	if (err) {
		e->ver_state = VER_UNKNOWN;
		log_wrn("event=engine_version_failed status=%ld err=%d", status, err);
	} else {
		if (major > ENGINE_API_MAJOR || (major == ENGINE_API_MAJOR && minor > ENGINE_API_MINOR)) {
			major = ENGINE_API_MAJOR;
			minor = ENGINE_API_MINOR;
		}
		snprintf(e->api, sizeof(e->api), "v%d.%d", major, minor);
		e->ver_state = VER_KNOWN;
		log_inf("event=engine_connected api=%s socket=%s", e->api, e->sock);
	}
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++) {
		struct call *wc = &e->calls[i];
		if (!wc->busy || !wc->waiting_version)
			continue;
		wc->waiting_version = false;
		if (err)
			call_complete(wc, err, 0);
		else
			call_send(wc);
	}
	if (e->w.waiting_version) {
		e->w.waiting_version = false;
		if (err)
			watch_retry(e); /* back off; never spin on a dead engine */
		else
			watch_connect(e);
	}
}

/* --- event stream -------------------------------------------------------- */

static void watch_emit(struct hal_engine *e, enum hal_engine_event_type type, const char *id, int code)
{
	struct hal_engine_event ev = { .type = type, .id = id ? id : "", .exit_code = code };
	if (e->w.fn)
		e->w.fn(e->w.arg, &ev);
}

/* Parses and hands out complete lines; runs from the loop only. */
static void watch_drain(struct hal_engine *e)
{
	struct watch *w = &e->w;
	unsigned gen = w->gen;
	if (w->got_headers && !w->up) {
		w->got_headers = false;
		w->up = true;
		w->lost_told = false;
		w->backoff_ms = ENGINE_EVENTS_BACKOFF_MIN_MS;
		log_inf("event=engine_events_up");
		watch_emit(e, HAL_EV_STREAM_UP, NULL, 0);
		if (gen != w->gen)
			return;
	}
	size_t off = 0;
	while (off < w->len) {
		char *nl = memchr(w->buf + off, '\n', w->len - off);
		if (!nl)
			break;
		size_t n = (size_t)(nl - (w->buf + off));
		if (w->skip_line) {
			w->skip_line = false;
		} else if (n) {
			enum hal_engine_event_type type;
			char id[72];
			int code = 0;
			int rc = engine_json_event(w->buf + off, n, &type, id, sizeof(id), &code);
			if (rc < 0)
				log_wrn("event=engine_bad_event len=%zu", n);
			off += n + 1;
			if (rc == 1) {
				watch_emit(e, type, id, code);
				if (gen != w->gen)
					return;
			}
			continue;
		}
		off += n + 1;
	}
	memmove(w->buf, w->buf + off, w->len - off);
	w->len -= off;
	if (w->len == ENGINE_EVENTS_BUF) {
		log_wrn("event=engine_event_too_long max=%d", ENGINE_EVENTS_BUF);
		w->len = 0;
		w->skip_line = true;
	}
	if (w->paused && w->active) {
		w->paused = false;
		curl_easy_pause(w->easy, CURLPAUSE_CONT);
	}
}

static void on_watch_deliver(void *arg) { watch_drain(arg); }

static size_t watch_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct hal_engine *e = userp;
	struct watch *w = &e->w;
	size_t n = size * nmemb;
	if (w->len + n > ENGINE_EVENTS_BUF) {
		/* Full until the loop drains it: hold the stream, lose nothing. */
		w->paused = true;
		if (!loop_timer_armed(&w->deliver) && loop_timer_start(e->l, &w->deliver, 0, 0))
			log_err("event=engine_timer_full");
		return CURL_WRITEFUNC_PAUSE;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
	if (!loop_timer_armed(&w->deliver) && loop_timer_start(e->l, &w->deliver, 0, 0))
		log_err("event=engine_timer_full");
	return n;
}

static size_t watch_header(char *data, size_t size, size_t nmemb, void *userp)
{
	struct hal_engine *e = userp;
	size_t n = size * nmemb;
	if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) {
		long status = 0;
		curl_easy_getinfo(e->w.easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200) {
			e->w.got_headers = true;
			if (!loop_timer_armed(&e->w.deliver) && loop_timer_start(e->l, &e->w.deliver, 0, 0))
				log_err("event=engine_timer_full");
		}
	}
	return n;
}

static void watch_retry(struct hal_engine *e)
{
	struct watch *w = &e->w;
	if (!w->lost_told) {
		w->lost_told = true;
		log_wrn("event=engine_events_lost retry_ms=%u", w->backoff_ms);
		unsigned gen = w->gen;
		watch_emit(e, HAL_EV_STREAM_LOST, NULL, 0);
		if (gen != w->gen || !w->fn)
			return;
	}
	if (loop_timer_start(e->l, &w->reconnect, w->backoff_ms, 0))
		log_err("event=engine_timer_full");
	w->backoff_ms = w->backoff_ms * 2 > CONFIG_ENGINE_EVENTS_BACKOFF_MAX_MS ? CONFIG_ENGINE_EVENTS_BACKOFF_MAX_MS
									    : w->backoff_ms * 2;
}

static void watch_connect(struct hal_engine *e)
{
	struct watch *w = &e->w;
	if (!w->fn || w->active)
		return;
	if (e->ver_state != VER_KNOWN) {
		w->waiting_version = true;
		version_start(e);
		if (e->ver_state != VER_PENDING) {
			w->waiting_version = false;
			watch_retry(e);
		}
		return;
	}
	if (!w->easy && !(w->easy = curl_easy_init())) {
		watch_retry(e);
		return;
	}
	/* filters={"type":["container"]} */
	snprintf(w->url, sizeof(w->url),
		 "http://localhost/%s/events?filters=%%7B%%22type%%22%%3A%%5B%%22container%%22%%5D%%7D", e->api);
	easy_setup(e, w->easy, w, watch_write, e, w->url, 0); /* a stream: no total timeout */
	curl_easy_setopt(w->easy, CURLOPT_HEADERFUNCTION, watch_header);
	curl_easy_setopt(w->easy, CURLOPT_HEADERDATA, e);
	w->len = 0;
	w->skip_line = false;
	w->paused = false;
	w->got_headers = false;
	if (curl_loop_add(e->cl, w->easy)) {
		watch_retry(e);
		return;
	}
	w->active = true;
}

static void on_watch_reconnect(void *arg) { watch_connect(arg); }

static void watch_done(struct hal_engine *e, CURLcode rc)
{
	struct watch *w = &e->w;
	long status = 0;
	curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
	w->active = false;
	watch_drain(e); /* events that arrived before the end still count */
	if (!w->fn)
		return;
	loop_timer_stop(e->l, &w->deliver);
	if (rc == CURLE_COULDNT_CONNECT && e->ver_state == VER_KNOWN)
		e->ver_state = VER_UNKNOWN;
	if (status && status != 200)
		log_wrn("event=engine_events_refused status=%ld", status);
	else
		log_dbg("event=engine_events_ended curl=%d", (int)rc);
	w->up = false;
	w->got_headers = false;
	w->gen++;
	watch_retry(e);
}

static void watch_stop(struct hal_engine *e)
{
	struct watch *w = &e->w;
	if (w->active)
		curl_loop_remove(e->cl, w->easy);
	w->active = false;
	w->waiting_version = false;
	w->up = false;
	w->got_headers = false;
	w->lost_told = false;
	w->len = 0;
	w->gen++;
	loop_timer_stop(e->l, &w->deliver);
	loop_timer_stop(e->l, &w->reconnect);
}

int hal_engine_watch(struct hal_engine *e, hal_engine_event_fn fn, void *arg)
{
	if (!e)
		return -EINVAL;
	watch_stop(e);
	e->w.fn = fn;
	e->w.arg = arg;
	e->w.backoff_ms = ENGINE_EVENTS_BACKOFF_MIN_MS;
	if (!fn)
		return 0;
	if (!e->w.buf && !(e->w.buf = malloc(ENGINE_EVENTS_BUF)))
		return -ENOMEM;
	/* Connect from the loop so UP/LOST never run inside this call. */
	if (loop_timer_start(e->l, &e->w.reconnect, 0, 0))
		return -ENOSPC;
	return 0;
}

/* --- dispatch of finished transfers --------------------------------------- */

static void on_done(void *arg, CURL *easy, CURLcode rc)
{
	struct hal_engine *e = arg;
	char *priv = NULL;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
	if (!priv)
		return;
	if (priv == (char *)&e->ver)
		version_done(e, rc);
	else if (priv == (char *)&e->w)
		watch_done(e, rc);
	else if (priv == (char *)&e->p)
		pull_done(e, rc);
	else
		call_done((struct call *)(void *)priv, rc);
}

/* --- pulls ------------------------------------------------------------------ */

static void pull_progress_line(struct hal_engine *e, const struct engine_pull_line *ln)
{
	struct pull *p = &e->p;
	unsigned i;
	for (i = 0; i < p->nlayers; i++)
		if (strcmp(p->layers[i].id, ln->layer) == 0)
			break;
	if (i == p->nlayers) {
		if (!ln->layer[0] || p->nlayers >= ENGINE_PULL_LAYERS)
			return;
		snprintf(p->layers[p->nlayers++].id, sizeof(p->layers[0].id), "%s", ln->layer);
	}
	if (ln->kind == PULL_LINE_BYTES) {
		p->layers[i].current = ln->current;
		if (ln->total)
			p->layers[i].total = ln->total;
	} else if (ln->kind == PULL_LINE_LAYER_DONE) {
		p->layers[i].done = true;
		if (p->layers[i].total)
			p->layers[i].current = p->layers[i].total;
	}
	if (!p->progress)
		return;
	struct hal_pull_progress pr = { .layers_seen = p->nlayers };
	for (unsigned j = 0; j < p->nlayers; j++) {
		pr.layers_done += p->layers[j].done;
		pr.bytes_done += p->layers[j].current;
		pr.bytes_total += p->layers[j].total;
	}
	p->progress(p->arg, &pr);
}

static void pull_line(struct hal_engine *e, const char *buf, size_t len)
{
	struct engine_pull_line ln;
	if (!len || engine_json_pull_line(buf, len, &ln))
		return;
	if (ln.kind == PULL_LINE_ERROR) {
		if (!e->p.error[0])
			snprintf(e->p.error, sizeof(e->p.error), "%s", ln.text);
		return;
	}
	if (ln.kind == PULL_LINE_LAYER || ln.kind == PULL_LINE_BYTES || ln.kind == PULL_LINE_LAYER_DONE)
		pull_progress_line(e, &ln);
}

static size_t pull_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct hal_engine *e = userp;
	struct pull *p = &e->p;
	size_t n = size * nmemb;
	for (size_t i = 0; i < n; i++) {
		char ch = data[i];
		if (ch == '\n') {
			if (!p->skip_line)
				pull_line(e, p->line, p->len);
			p->len = 0;
			p->skip_line = false;
		} else if (p->len + 1 < sizeof(p->line)) {
			p->line[p->len++] = ch;
		} else {
			p->skip_line = true; /* an over-long line: not progress we can use */
		}
	}
	return n;
}

/* The engine's words for why a pull failed -> -errno. */
static int pull_errno(const char *msg)
{
	static const struct { const char *needle; int err; } map[] = {
		{ "manifest unknown", -ENOENT },     { "not found", -ENOENT },
		{ "name unknown", -ENOENT },         { "unauthorized", -EACCES },
		{ "authentication required", -EACCES }, { "denied", -EACCES },
		{ "connection refused", -EHOSTUNREACH }, { "no such host", -EHOSTUNREACH },
		{ "i/o timeout", -EHOSTUNREACH },    { "connection reset", -EHOSTUNREACH },
		{ "EOF", -EHOSTUNREACH },            { "network is unreachable", -EHOSTUNREACH },
		{ "digest", -EBADMSG },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strstr(msg, map[i].needle))
			return map[i].err;
	return -EIO;
}

static void pull_finish(struct hal_engine *e, int err, const char *message)
{
	struct pull *p = &e->p;
	struct hal_engine_result res = { .err = err, .message = message ? message : "" };
	if (err == -ECANCELED)
		log_inf("event=engine_pull_cancelled image=%s", p->ref);
	else if (err)
		log_wrn("event=engine_pull_failed image=%s err=%d msg=\"%s\"", p->ref, err, res.message);
	else
		log_inf("event=engine_pulled image=%s layers=%u", p->ref, p->nlayers);
	p->active = false;
	curl_slist_free_all(p->hdrs);
	p->hdrs = NULL;
	p->cb(p->arg, &res);
}

static void pull_done(struct hal_engine *e, CURLcode rc)
{
	struct pull *p = &e->p;
	long status = 0;
	curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
	if (p->len && !p->skip_line)
		pull_line(e, p->line, p->len); /* a last line without its newline */
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		pull_finish(e, -ETIMEDOUT, "the engine sent no progress within the stall limit");
		return;
	}
	if (rc != CURLE_OK) {
		int err = map_curl(rc, false);
		snprintf(e->msg, sizeof(e->msg), "%s", strerror(-err));
		pull_finish(e, err, e->msg);
		return;
	}
	if (status >= 300) {
		char cause[128];
		engine_json_error(p->line, p->len, e->msg, sizeof(e->msg), cause, sizeof(cause));
		if (!e->msg[0])
			snprintf(e->msg, sizeof(e->msg), "engine answered %ld", status);
		pull_finish(e, status == 404 ? -ENOENT : pull_errno(e->msg), e->msg);
		return;
	}
	if (p->error[0]) {
		snprintf(e->msg, sizeof(e->msg), "%s", p->error);
		pull_finish(e, pull_errno(e->msg), e->msg);
		return;
	}
	pull_finish(e, 0, "");
}

static void on_pull_timer(void *arg)
{
	pull_finish(arg, -ECANCELED, "cancelled");
}

int hal_engine_pull(struct hal_engine *e, const char *ref, const char *registry_auth, unsigned stall_s,
		    hal_pull_progress_fn progress, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !ref || !*ref || strlen(ref) >= sizeof(e->p.ref) || !stall_s)
		return -EINVAL;
	struct pull *p = &e->p;
	if (p->active)
		return -EBUSY;
	if (!p->easy && !(p->easy = curl_easy_init()))
		return -ENOMEM;
	/* name[:tag] or name@digest -> fromImage and tag (the digest goes as the tag) */
	char name[256], url[ENGINE_PATH_MAX + 64];
	snprintf(name, sizeof(name), "%s", ref);
	const char *tag = "latest";
	char *at = strchr(name, '@');
	char *slash = strrchr(name, '/');
	char *colon = strrchr(name, ':');
	if (at) {
		*at = '\0';
		tag = at + 1;
	} else if (colon && (!slash || colon > slash)) {
		*colon = '\0';
		tag = colon + 1;
	}
	char *n_esc = curl_easy_escape(p->easy, name, 0);
	char *t_esc = curl_easy_escape(p->easy, tag, 0);
	int len = n_esc && t_esc ? snprintf(url, sizeof(url), "http://localhost/images/create?fromImage=%s&tag=%s",
					    n_esc, t_esc)
				 : -1;
	curl_free(n_esc);
	curl_free(t_esc);
	if (len < 0 || (size_t)len >= sizeof(url))
		return -EINVAL;
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	if (h && registry_auth && *registry_auth) {
		char auth[2048];
		int an = snprintf(auth, sizeof(auth), "X-Registry-Auth: %s", registry_auth);
		struct curl_slist *h2 = an > 0 && (size_t)an < sizeof(auth) ? curl_slist_append(h, auth) : NULL;
		explicit_bzero(auth, sizeof(auth));
		if (!h2) {
			curl_slist_free_all(h);
			return -EINVAL;
		}
		h = h2;
	}
	if (!h)
		return -ENOMEM;
	snprintf(p->ref, sizeof(p->ref), "%s", ref);
	p->hdrs = h;
	p->progress = progress;
	p->cb = cb;
	p->arg = arg;
	p->len = 0;
	p->skip_line = false;
	p->nlayers = 0;
	p->error[0] = '\0';
	curl_easy_reset(p->easy);
	curl_loop_easy_defaults(p->easy, p, pull_write, e);
	curl_easy_setopt(p->easy, CURLOPT_UNIX_SOCKET_PATH, e->sock);
	curl_easy_setopt(p->easy, CURLOPT_URL, url);
	curl_easy_setopt(p->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(p->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(p->easy, CURLOPT_LOW_SPEED_TIME, (long)stall_s);
	curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->hdrs);
	curl_easy_setopt(p->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE, 0L);
	int rc = curl_loop_add(e->cl, p->easy);
	if (rc) {
		curl_slist_free_all(p->hdrs);
		p->hdrs = NULL;
		return rc;
	}
	p->active = true;
	log_inf("event=engine_pull_started image=%s auth=%s", ref, registry_auth && *registry_auth ? "yes" : "no");
	return 0;
}

void hal_engine_pull_cancel(struct hal_engine *e)
{
	if (!e || !e->p.active || loop_timer_armed(&e->p.timer))
		return;
	curl_loop_remove(e->cl, e->p.easy);
	if (loop_timer_start(e->l, &e->p.timer, 0, 0))
		pull_finish(e, -ECANCELED, "cancelled"); /* no timer left: deliver now rather than never */
}

static int images_ready(struct hal_engine *e)
{
	if (!e->images && !(e->images = calloc(CONFIG_ENGINE_LIST_MAX, sizeof(*e->images))))
		return -ENOMEM;
	return 0;
}

/* An image reference in a path: registry host, name, tag or digest characters only. */
static bool valid_image_ref(const char *s)
{
	if (!s || !*s || strlen(s) >= 256)
		return false;
	for (const char *q = s; *q; q++)
		if (!isalnum((unsigned char)*q) && !strchr("._-/:@", *q))
			return false;
	return true;
}

int hal_engine_image_inspect(struct hal_engine *e, const char *ref, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !valid_image_ref(ref))
		return -EINVAL;
	if (images_ready(e))
		return -ENOMEM;
	struct call *c = call_take(e, OP_IMAGE_INSPECT, ref, cb, arg);
	if (!c)
		return -EBUSY;
	snprintf(c->path, sizeof(c->path), "/images/%s/json", ref);
	return submit(c);
}

int hal_engine_image_list(struct hal_engine *e, hal_engine_cb cb, void *arg)
{
	if (!e || !cb)
		return -EINVAL;
	if (images_ready(e))
		return -ENOMEM;
	struct call *c = call_take(e, OP_IMAGE_LIST, "images", cb, arg);
	if (!c)
		return -EBUSY;
	snprintf(c->path, sizeof(c->path), "/images/json");
	return submit(c);
}

int hal_engine_image_remove(struct hal_engine *e, const char *ref, bool force, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !valid_image_ref(ref))
		return -EINVAL;
	struct call *c = call_take(e, OP_IMAGE_REMOVE, ref, cb, arg);
	if (!c)
		return -EBUSY;
	c->method = "DELETE";
	snprintf(c->path, sizeof(c->path), "/images/%s?force=%d", ref, force ? 1 : 0);
	return submit(c);
}

/* --- lifetime ------------------------------------------------------------ */

struct hal_engine *hal_engine_create(struct loop *l, const char *endpoint, unsigned timeout_ms)
{
	if (!l || !endpoint || strlen(endpoint) >= sizeof(((struct hal_engine *)0)->sock) || !timeout_ms)
		return NULL;
	struct hal_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->l = l;
	e->timeout_ms = timeout_ms;
	snprintf(e->sock, sizeof(e->sock), "%s", endpoint);
	e->ctrs = calloc(CONFIG_ENGINE_LIST_MAX, sizeof(*e->ctrs));
	if (!e->ctrs)
		goto errout_with_e;
	e->json_hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *h2 = e->json_hdrs ? curl_slist_append(e->json_hdrs, "Expect:") : NULL;
	if (!h2)
		goto errout_with_hdrs;
	e->json_hdrs = h2;
	e->cl = curl_loop_create(l, 8, on_done, e);
	if (!e->cl)
		goto errout_with_hdrs;
	e->ver.e = e;
	loop_timer_init(&e->ver.timer, on_call_timer, &e->ver);
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++) {
		e->calls[i].e = e;
		loop_timer_init(&e->calls[i].timer, on_call_timer, &e->calls[i]);
	}
	loop_timer_init(&e->w.deliver, on_watch_deliver, e);
	loop_timer_init(&e->p.timer, on_pull_timer, e);
	loop_timer_init(&e->w.reconnect, on_watch_reconnect, e);
	e->w.backoff_ms = ENGINE_EVENTS_BACKOFF_MIN_MS;
	return e;

errout_with_hdrs:
	curl_slist_free_all(e->json_hdrs);
	free(e->ctrs);
errout_with_e:
	free(e);
	return NULL;
}

void hal_engine_destroy(struct hal_engine *e)
{
	if (!e)
		return;
	watch_stop(e);
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++) {
		struct call *c = &e->calls[i];
		loop_timer_stop(e->l, &c->timer);
		if (c->busy && !c->waiting_version)
			curl_loop_remove(e->cl, c->easy);
	}
	if (e->ver_state == VER_PENDING)
		curl_loop_remove(e->cl, e->ver.easy);
	loop_timer_stop(e->l, &e->p.timer);
	if (e->p.active)
		curl_loop_remove(e->cl, e->p.easy);
	curl_loop_destroy(e->cl);
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++) {
		struct call *c = &e->calls[i];
		if (c->easy)
			curl_easy_cleanup(c->easy);
		free(c->body);
		free(c->resp);
	}
	if (e->ver.easy)
		curl_easy_cleanup(e->ver.easy);
	free(e->ver.resp);
	if (e->w.easy)
		curl_easy_cleanup(e->w.easy);
	if (e->p.easy)
		curl_easy_cleanup(e->p.easy);
	curl_slist_free_all(e->p.hdrs);
	free(e->images);
	free(e->w.buf);
	curl_slist_free_all(e->json_hdrs);
	free(e->ctrs);
	free(e);
}

/* --- the calls ------------------------------------------------------------ */

static int submit(struct call *c)
{
	call_send(c);
	return 0;
}

static int simple_post(struct hal_engine *e, enum op op, const char *id, const char *suffix, hal_engine_cb cb,
		       void *arg)
{
	if (!e || !cb || !valid_ref(id))
		return -EINVAL;
	struct call *c = call_take(e, op, id, cb, arg);
	if (!c)
		return -EBUSY;
	c->method = "POST";
	snprintf(c->path, sizeof(c->path), "/containers/%s/%s", id, suffix);
	return submit(c);
}

int hal_engine_ping(struct hal_engine *e, hal_engine_cb cb, void *arg)
{
	if (!e || !cb)
		return -EINVAL;
	struct call *c = call_take(e, OP_PING, "", cb, arg);
	if (!c)
		return -EBUSY;
	c->versioned = false;
	snprintf(c->path, sizeof(c->path), "/_ping");
	return submit(c);
}

int hal_engine_create_ctr(struct hal_engine *e, const struct hal_ctr_create *spec, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !spec || !spec->image || (spec->name && !valid_ref(spec->name)))
		return -EINVAL;
	char *body = engine_json_create_body(spec);
	if (!body)
		return -ENOMEM;
	struct call *c = call_take(e, OP_CREATE, spec->name ? spec->name : spec->image, cb, arg);
	if (!c) {
		free(body);
		return -EBUSY;
	}
	c->method = "POST";
	c->body = body;
	if (spec->name)
		snprintf(c->path, sizeof(c->path), "/containers/create?name=%s", spec->name);
	else
		snprintf(c->path, sizeof(c->path), "/containers/create");
	return submit(c);
}

int hal_engine_start(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	return simple_post(e, OP_START, id, "start", cb, arg);
}

int hal_engine_stop(struct hal_engine *e, const char *id, unsigned timeout_s, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !valid_ref(id) || timeout_s > 3600)
		return -EINVAL;
	struct call *c = call_take(e, OP_STOP, id, cb, arg);
	if (!c)
		return -EBUSY;
	c->method = "POST";
	/* The engine waits up to timeout_s before SIGKILL; allow for it. */
	c->timeout_ms = e->timeout_ms + timeout_s * 1000u;
	snprintf(c->path, sizeof(c->path), "/containers/%s/stop?t=%u", id, timeout_s);
	return submit(c);
}

int hal_engine_kill(struct hal_engine *e, const char *id, int signo, hal_engine_cb cb, void *arg)
{
	char suffix[32];
	if (signo <= 0 || signo >= 65)
		return -EINVAL;
	snprintf(suffix, sizeof(suffix), "kill?signal=%d", signo);
	return simple_post(e, OP_KILL, id, suffix, cb, arg);
}

int hal_engine_remove(struct hal_engine *e, const char *id, bool force, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !valid_ref(id))
		return -EINVAL;
	struct call *c = call_take(e, OP_REMOVE, id, cb, arg);
	if (!c)
		return -EBUSY;
	c->method = "DELETE";
	/* v=1: anonymous volumes go with the container, so the disk does not fill. */
	snprintf(c->path, sizeof(c->path), "/containers/%s?force=%d&v=1", id, force ? 1 : 0);
	return submit(c);
}

int hal_engine_pause(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	return simple_post(e, OP_PAUSE, id, "pause", cb, arg);
}

int hal_engine_unpause(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	return simple_post(e, OP_UNPAUSE, id, "unpause", cb, arg);
}

int hal_engine_inspect(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !valid_ref(id))
		return -EINVAL;
	struct call *c = call_take(e, OP_INSPECT, id, cb, arg);
	if (!c)
		return -EBUSY;
	snprintf(c->path, sizeof(c->path), "/containers/%s/json", id);
	return submit(c);
}

int hal_engine_list(struct hal_engine *e, const char *label_key, const char *label_value, hal_engine_cb cb,
		    void *arg)
{
	if (!e || !cb || !label_key || !*label_key)
		return -EINVAL;
	char *filter = engine_json_label_filter(label_key, label_value);
	if (!filter)
		return -EINVAL;
	struct call *c = call_take(e, OP_LIST, label_key, cb, arg);
	int rc = -EBUSY;
	if (!c)
		goto errout_with_filter;
	rc = -ENOMEM;
	if (!c->easy && !(c->easy = curl_easy_init()))
		goto errout_with_call;
	char *esc = curl_easy_escape(c->easy, filter, 0);
	if (!esc)
		goto errout_with_call;
	int n = snprintf(c->path, sizeof(c->path), "/containers/json?all=1&filters=%s", esc);
	curl_free(esc);
	rc = -EINVAL;
	if (n < 0 || (size_t)n >= sizeof(c->path))
		goto errout_with_call;
	free(filter);
	return submit(c);

errout_with_call:
	call_release(c);
errout_with_filter:
	free(filter);
	return rc;
}

int hal_engine_exec(struct hal_engine *e, const char *id, const char *const *argv, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !valid_ref(id) || !argv || !argv[0])
		return -EINVAL;
	char *body = engine_json_exec_body(argv);
	if (!body)
		return -ENOMEM;
	struct call *c = call_take(e, OP_EXEC_CREATE, id, cb, arg);
	if (!c) {
		free(body);
		return -EBUSY;
	}
	c->method = "POST";
	c->body = body;
	snprintf(c->path, sizeof(c->path), "/containers/%s/exec", id);
	return submit(c);
}
