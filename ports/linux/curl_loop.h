/* ports/linux/curl_loop.h - a libcurl multi handle driven by berth's event loop (port-private). */
#ifndef BERTH_PORTS_LINUX_CURL_LOOP_H
#define BERTH_PORTS_LINUX_CURL_LOOP_H

#include <curl/curl.h>
#include <stdbool.h>

struct loop;
struct curl_loop;

/* Called once per finished transfer, from the loop (never from inside a
 * libcurl callback), after the easy handle was removed from the multi: the
 * owner may re-add it, reuse it or clean it up, and may call curl_loop_add()
 * and curl_loop_remove() freely. */
typedef void (*curl_loop_done_fn)(void *arg, CURL *easy, CURLcode rc);

/* Wraps a new multi handle whose sockets and timeout live in l. max_conns
 * bounds the connection cache (CURLMOPT_MAXCONNECTS). Returns NULL on
 * allocation failure. Free with curl_loop_destroy(), which removes (and
 * does not clean up) easy handles still attached. */
struct curl_loop *curl_loop_create(struct loop *l, long max_conns, curl_loop_done_fn done, void *arg);
void curl_loop_destroy(struct curl_loop *cl);

/* Starts a transfer: adds easy to the multi and drives it at once (connect
 * and send happen before the call returns when the socket allows). The done
 * callback always runs later, from the loop. Returns 0 or -ENOMEM/-EIO. */
int curl_loop_add(struct curl_loop *cl, CURL *easy) __attribute__((warn_unused_result));
/* Aborts a transfer still attached (its done callback never runs). */
void curl_loop_remove(struct curl_loop *cl, CURL *easy);

/* Number of transfers attached. */
unsigned curl_loop_active(const struct curl_loop *cl);

/* Sets the options every berth transfer shares on a new or reset handle:
 * priv as CURLOPT_PRIVATE, the body to write_fn(write_arg), no signals, plain
 * http only, no redirects, and never a proxy from the environment. */
void curl_loop_easy_defaults(CURL *easy, void *priv, curl_write_callback write_fn, void *write_arg);

/* For write callbacks: appends n bytes of data to a response body kept
 * NUL-terminated in *buf (*len bytes used of *cap allocated), growing it by
 * doubling from initial_bytes and never past max_bytes + 1. Returns 0,
 * -EMSGSIZE when the body would pass max_bytes (nothing appended), or
 * -ENOMEM. The caller owns *buf. */
int curl_loop_body_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t initial_bytes,
			  size_t max_bytes) __attribute__((warn_unused_result));

/* Maps the CURLcode of a finished transfer to 0 or -errno for the errors
 * every caller reads alike: -ETIMEDOUT, -EMSGSIZE (a write error after the
 * body passed its bound: overflow), -ENOMEM, otherwise -EIO. Callers map
 * what they read differently (connect and connection errors) first. */
int curl_loop_errno(CURLcode rc, bool overflow);

/* Initialises libcurl once per process (curl_global_init is not thread-safe;
 * berth is single-threaded). */
void curl_loop_global_init(void);

#endif
