/* agent/infer/api.h - the local HTTP API (KServe v2 inference and health, /metrics, /v1/state) served from the event loop. */
#ifndef BERTH_API_H
#define BERTH_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"

struct loop;
struct api;
struct dispatch;

/* Where and how the API listens (the api.* keys of the runtime config). */
struct api_config {
	const char *listen;        /* numeric IPv4/IPv6 address, e.g. "127.0.0.1" */
	uint16_t port;             /* 0: no TCP listener (then unix_socket must be set) */
	const char *unix_socket;   /* "" or NULL: none; else a path, replaced if stale */
	size_t max_body_bytes;     /* larger request bodies get 413 */
	const char *token;         /* "" or NULL: none; else every request needs "Authorization: Bearer TOKEN" (401) */
};

/* Starts the listeners and hooks them into loop; requests go to d (borrowed,
 * must outlive the API). Never blocks. Returns NULL and logs why when a
 * listener cannot be opened. Free with api_destroy(). */
struct api *api_create(struct loop *l, const struct api_config *cfg, struct dispatch *d);
/* Applies a changed config to the running API (a reload): the token and the body limit at
 * once; a listener whose address, port or socket path changed is opened first and only then
 * is the old one closed (requests still queued on the old listener's connections are
 * answered 503 shutting down; unchanged listeners are untouched). When a new listener cannot
 * be opened nothing changes and the error is returned (-EADDRINUSE, -EACCES, -EINVAL for
 * neither a port nor a socket). */
int api_reconfigure(struct api *a, const struct api_config *cfg) __attribute__((warn_unused_result));
/* Renders the document of GET /v1/state (a JSON object) into buf: returns
 * its length, or -ENOSPC when len is too small (the API retries with a
 * larger buffer). */
typedef int (*api_state_fn)(void *arg, char *buf, size_t len);
/* With fn set, GET /v1/state answers fn's document (the reported state)
 * with the dispatcher's figures - what it answers without fn - added as the
 * member "dispatch". NULL restores the dispatcher's figures alone. */
void api_set_state_fn(struct api *a, api_state_fn fn, void *arg);
/* Series of the rest of the agent (uplink, outbox, supervision) appended to
 * /metrics after the API's own: fn writes Prometheus text into buf (len bytes)
 * and returns the length it needed, as snprintf does (more than len: called
 * again with a larger buffer). NULL removes it. */
typedef size_t (*api_metrics_fn)(void *arg, char *buf, size_t len);
void api_set_metrics_fn(struct api *a, api_metrics_fn fn, void *arg);
/* Answers requests still waiting in the queue with 503, closes the
 * listeners and frees. NULL is safe. */
void api_destroy(struct api *a);

/* --- pure helpers (no I/O; exposed for the unit tests and the fuzzer) ---- */

enum api_route_kind {
	API_ROUTE_NOT_FOUND = 0,
	API_ROUTE_INFER,          /* POST /v2/models/{model}/infer */
	API_ROUTE_LIVE,           /* GET  /v2/health/live */
	API_ROUTE_READY,          /* GET  /v2/health/ready */
	API_ROUTE_MODEL_READY,    /* GET  /v2/models/{model}/ready */
	API_ROUTE_METRICS,        /* GET  /metrics */
	API_ROUTE_STATE,          /* GET  /v1/state */
	API_ROUTE_SERVER_META,    /* GET  /v2 */
	API_ROUTE_MODEL_META,     /* GET  /v2/models/{model} */
};

struct api_route {
	enum api_route_kind kind;
	char model[DEPLOY_NAME_MAX];  /* INFER and MODEL_READY */
};

/* Maps method and path (query string ignored) to a route. The model routes also
 * come in the Open Inference Protocol's versions form, /v2/models/{model}/versions/
 * {version}[/infer|/ready]: berth serves one version of a model (its running
 * deployment), so any non-empty version names it. Returns 0, or
 * -ENOENT (no such path: 404), -EINVAL (model name too long or empty: 404),
 * -EPERM (path exists but not with this method: 405; route->kind says which). */
int api_route_parse(const char *method, const char *url, struct api_route *route)
	__attribute__((warn_unused_result));

/* Value of X-Berth-Deadline-Ms: a decimal integer of milliseconds, relative
 * to the arrival of the request, 1..CONFIG_API_MAX_DEADLINE_MS, optional
 * surrounding blanks. Returns 0 or -EINVAL. */
int api_parse_deadline_ms(const char *value, uint32_t *deadline_ms)
	__attribute__((warn_unused_result));

/* Value of X-Berth-Class: "urgent", "normal" or "batch", any case.
 * Returns 0 or -EINVAL. */
int api_parse_class(const char *value, enum sla_class *cls)
	__attribute__((warn_unused_result));


/* Formats a JSON error body {"error":msg[,"reason":reason][,"header":header]
 * [,"model":model][,"retry_after_s":n]}; NULL/"" members and retry_after_s 0
 * are left out. Strings are escaped. Returns the length (truncated to len-1). */
size_t api_error_json(char *buf, size_t len, const char *msg, const char *reason,
		      const char *header, const char *model, unsigned retry_after_s);

/* "MS.UUU" (milliseconds with three decimals) from microseconds, formatted by hand
 * (two per proxied request): written at the end of buf, returns where it starts. */
#define API_MS_TEXT 32
const char *api_ms_text(char buf[API_MS_TEXT], uint64_t us);

/* Checks the head of an inference request and fills what it asks for.
 * deadline_hdr/class_hdr/content_length are the raw header values (NULL when
 * absent). On error returns the HTTP status (400 or 413) and names the
 * offending header in *bad_header; 0 when acceptable. */
struct api_infer_head {
	uint32_t deadline_ms;        /* from the header, else default_deadline_ms */
	enum sla_class cls;          /* from the header, else default_class */
};
int api_check_infer_head(const char *deadline_hdr, const char *class_hdr, const char *content_length,
			 uint32_t default_deadline_ms, enum sla_class default_class, size_t max_body_bytes,
			 struct api_infer_head *head, const char **bad_header);

#endif
