/* ports/linux/curl_loop.h - a libcurl multi handle driven by berth's event loop (port-private). */
#ifndef BERTH_PORTS_LINUX_CURL_LOOP_H
#define BERTH_PORTS_LINUX_CURL_LOOP_H

#include <curl/curl.h>

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

/* Initialises libcurl once per process (curl_global_init is not thread-safe;
 * berth is single-threaded). */
void curl_loop_global_init(void);

#endif
