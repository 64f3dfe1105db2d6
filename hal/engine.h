/* hal/engine.h - the container engine (Docker Engine API on linux, simulated on sim), asynchronous. */
#ifndef BERTH_HAL_ENGINE_H
#define BERTH_HAL_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct hal_engine;

#define HAL_ENGINE_MAX_LABELS 8

struct hal_label {
	char key[48];
	char value[96];
};

/* What to create. All pointers are borrowed for the duration of the call
 * (the port copies what it needs). Arrays are NULL-terminated. */
struct hal_ctr_create {
	const char *name;            /* container name, unique on the engine */
	const char *image;
	const char *const *cmd;      /* NULL: the image's default */
	const char *const *env;      /* "KEY=value" */
	const struct hal_label *labels;
	unsigned nlabels;
	uint64_t nano_cpus;          /* 0: unlimited */
	uint64_t mem_bytes;          /* 0: unlimited */
	bool host_network;
};

enum hal_ctr_state {
	HAL_CTR_UNKNOWN = 0,
	HAL_CTR_CREATED,
	HAL_CTR_RUNNING,
	HAL_CTR_PAUSED,
	HAL_CTR_RESTARTING,
	HAL_CTR_EXITED,
	HAL_CTR_DEAD,
};

struct hal_ctr_info {
	char id[72];
	char name[128];
	char image[128];
	enum hal_ctr_state state;
	int pid;                     /* 0 when not running */
	int exit_code;
	bool oom_killed;
	struct hal_label labels[HAL_ENGINE_MAX_LABELS];
	unsigned nlabels;
};

/* Result of one call, valid only during the callback. err is 0 or -errno:
 * -ENOENT no such container (create: no such image), -EEXIST name in use,
 * -EBUSY the container is in the wrong state for the call (kill of a stopped
 * container, remove of a running one without force, pause of a paused one),
 * -ETIMEDOUT the engine did not answer within the timeout, -EHOSTDOWN the
 * engine is not reachable (socket missing or refusing), -EOVERFLOW (list)
 * more containers than CONFIG_ENGINE_LIST_MAX (the first ones are in ctrs),
 * -EMSGSIZE a reply larger than CONFIG_ENGINE_MAX_BODY_BYTES, -EIO any other
 * engine error (message says which). A call with nothing to do (start of a
 * running container, stop of a stopped one) succeeds with 0. */
struct hal_engine_result {
	int err;
	const char *message;            /* engine's own error text, or "" */
	const char *id;                 /* create: the new container's id */
	const struct hal_ctr_info *ctrs; /* inspect (1) and list (n) */
	unsigned nctrs;
	int exec_exit_code;             /* exec: exit status of the command */
	const struct hal_image_info *images; /* image inspect (1) and image list (n) */
	unsigned nimages;
};

#define HAL_IMAGE_MAX_TAGS 4

/* One image in the engine's store. */
struct hal_image_info {
	char id[80];                 /* "sha256:<64 hex>" */
	char tags[HAL_IMAGE_MAX_TAGS][160]; /* "name:tag" (first ones only) */
	unsigned ntags;
	char digests[HAL_IMAGE_MAX_TAGS][160]; /* "name@sha256:<64 hex>": the registry's manifest digests */
	unsigned ndigests;
	uint64_t size_bytes;
	int64_t created_s;           /* seconds since the epoch, as the image says; 0 unknown */
};

/* Progress of one pull, as the engine tells it (a best effort: an engine may
 * report few figures). Layers are counted as the engine names them. */
struct hal_pull_progress {
	unsigned layers_seen;
	unsigned layers_done;        /* downloaded, or already in the store */
	uint64_t bytes_done;         /* of the layers being downloaded now, and of finished ones that said */
	uint64_t bytes_total;        /* of every layer whose size the engine told; 0 unknown */
};
typedef void (*hal_pull_progress_fn)(void *arg, const struct hal_pull_progress *p);

typedef void (*hal_engine_cb)(void *arg, const struct hal_engine_result *res);

enum hal_engine_event_type {
	HAL_EV_START = 1,
	HAL_EV_DIE,      /* exit_code set */
	HAL_EV_OOM,
	HAL_EV_PAUSE,
	HAL_EV_UNPAUSE,
	HAL_EV_DESTROY,
	HAL_EV_STREAM_LOST, /* the event stream broke (or could not connect); the
			     * port reconnects by itself with back-off. Sent once
			     * per outage, not per failed attempt. */
	HAL_EV_STREAM_UP,   /* the stream is (re)connected: events from here on are
			     * delivered; re-list to learn what happened before */
};

struct hal_engine_event {
	enum hal_engine_event_type type;
	const char *id;
	int exit_code;
};
typedef void (*hal_engine_event_fn)(void *arg, const struct hal_engine_event *ev);

/* Creates an engine client on loop, talking to the engine at endpoint (a unix
 * socket path on linux). timeout_ms bounds every call. Never blocks: nothing
 * is sent until the first call. Returns NULL on allocation failure. */
struct hal_engine *hal_engine_create(struct loop *l, const char *endpoint, unsigned timeout_ms);
/* Cancels calls in flight (their callbacks are not run) and frees. NULL is safe. */
void hal_engine_destroy(struct hal_engine *e);

/* Every call below queues one request and returns 0, or -EBUSY when
 * CONFIG_ENGINE_MAX_INFLIGHT calls are already in flight (nothing queued, cb
 * never runs). Otherwise cb runs exactly once, from the loop, never from
 * inside the call itself. */
int hal_engine_ping(struct hal_engine *e, hal_engine_cb cb, void *arg);
int hal_engine_create_ctr(struct hal_engine *e, const struct hal_ctr_create *spec, hal_engine_cb cb, void *arg);
int hal_engine_start(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg);
int hal_engine_stop(struct hal_engine *e, const char *id, unsigned timeout_s, hal_engine_cb cb, void *arg);
int hal_engine_kill(struct hal_engine *e, const char *id, int signo, hal_engine_cb cb, void *arg);
int hal_engine_remove(struct hal_engine *e, const char *id, bool force, hal_engine_cb cb, void *arg);
int hal_engine_pause(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg);
int hal_engine_unpause(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg);
int hal_engine_inspect(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg);
/* All containers (running or not) carrying label key=value. */
int hal_engine_list(struct hal_engine *e, const char *label_key, const char *label_value, hal_engine_cb cb, void *arg);
/* Runs argv (NULL-terminated) inside the container and waits for it to end
 * (bounded by the client's timeout); res->exec_exit_code. */
int hal_engine_exec(struct hal_engine *e, const char *id, const char *const *argv, hal_engine_cb cb, void *arg);

/* Pulls image ref ("name:tag" or "name@sha256:<64 hex>", with the registry
 * host first when not the engine's default) into the engine's store.
 * registry_auth: the X-Registry-Auth header value (base64url JSON), or NULL;
 * the port sends it and never logs it. One pull at a time per client (a
 * second while one runs: -EBUSY), on its own transfer so container calls
 * are not held up. It has no overall timeout: a slow uplink may take long;
 * instead it fails with -ETIMEDOUT when the engine has sent nothing for
 * stall_s seconds. progress (may be NULL) runs from the loop as the engine
 * reports, at most once per progress line. cb's err: 0 pulled (the engine
 * verified a pinned digest), -ENOENT no such image or digest in the
 * registry, -EACCES refused by the registry (credentials), -EHOSTUNREACH
 * registry unreachable, -ETIMEDOUT stalled, -EHOSTDOWN engine unreachable,
 * -ECANCELED cancelled, -EIO other (message says what the engine said). */
int hal_engine_pull(struct hal_engine *e, const char *ref, const char *registry_auth, unsigned stall_s,
		    hal_pull_progress_fn progress, hal_engine_cb cb, void *arg);
/* Stops the pull in flight, if any: its cb runs with -ECANCELED. */
void hal_engine_pull_cancel(struct hal_engine *e);
/* One image by reference or id: res->images[0]; -ENOENT when absent. */
int hal_engine_image_inspect(struct hal_engine *e, const char *ref, hal_engine_cb cb, void *arg);
/* Every image in the store (up to CONFIG_ENGINE_LIST_MAX; -EOVERFLOW past it). */
int hal_engine_image_list(struct hal_engine *e, hal_engine_cb cb, void *arg);
/* Removes an image (by reference: only that tag goes when others remain; by
 * id: the image). -EBUSY when a container uses it (force false), -ENOENT. */
int hal_engine_image_remove(struct hal_engine *e, const char *ref, bool force, hal_engine_cb cb, void *arg);

/* Subscribes to container events (one subscriber; a second call replaces
 * the first, fn NULL stops watching). The port keeps the stream open and
 * reconnects with back-off (doubling up to CONFIG_ENGINE_EVENTS_BACKOFF_MAX_MS);
 * HAL_EV_STREAM_LOST and HAL_EV_STREAM_UP bracket an outage, and the caller
 * re-lists on UP since events may have been missed. Events are delivered
 * from the loop. Returns 0 or -errno. */
int hal_engine_watch(struct hal_engine *e, hal_engine_event_fn fn, void *arg);

#endif
