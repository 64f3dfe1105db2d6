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
};

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

/* Subscribes to container events (one subscriber; a second call replaces
 * the first, fn NULL stops watching). The port keeps the stream open and
 * reconnects with back-off (doubling up to CONFIG_ENGINE_EVENTS_BACKOFF_MAX_MS);
 * HAL_EV_STREAM_LOST and HAL_EV_STREAM_UP bracket an outage, and the caller
 * re-lists on UP since events may have been missed. Events are delivered
 * from the loop. Returns 0 or -errno. */
int hal_engine_watch(struct hal_engine *e, hal_engine_event_fn fn, void *arg);

#endif
