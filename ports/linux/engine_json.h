/* ports/linux/engine_json.h - Docker Engine API JSON: requests built and replies parsed, no I/O (a fuzz target). */
#ifndef BERTH_PORTS_LINUX_ENGINE_JSON_H
#define BERTH_PORTS_LINUX_ENGINE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/engine.h"

/* Every parser takes (buf, len) that need not be NUL-terminated, never reads
 * past len, and returns 0 or -EINVAL (malformed or missing fields). */

/* GET /version: "ApiVersion":"1.41" -> major, minor. */
int engine_json_version(const char *buf, size_t len, int *major, int *minor);

/* Error reply {"message":..., "cause":...}: copies both (empty when absent,
 * truncated to fit). Always leaves valid strings. */
void engine_json_error(const char *buf, size_t len, char *msg, size_t msg_len, char *cause, size_t cause_len);

/* {"Id":"..."} from create and exec create. */
int engine_json_id(const char *buf, size_t len, char *id, size_t id_len);

/* GET /containers/{id}/json. */
int engine_json_inspect(const char *buf, size_t len, struct hal_ctr_info *out);

/* GET /containers/json: fills up to cap entries, *n = how many filled.
 * Returns 0, -EOVERFLOW when the reply held more than cap, or -EINVAL. */
int engine_json_list(const char *buf, size_t len, struct hal_ctr_info *out, unsigned cap, unsigned *n);

/* GET /exec/{id}/json: exit code and whether the command still runs. */
int engine_json_exec_inspect(const char *buf, size_t len, int *exit_code, bool *running);

/* One line of the /events stream. Returns 1 with *type, id and *exit_code
 * set for an event berth cares about (start, die, oom, pause, unpause,
 * destroy), 0 for any other well-formed event, -EINVAL when malformed. */
int engine_json_event(const char *buf, size_t len, enum hal_engine_event_type *type, char *id, size_t id_len,
		      int *exit_code);

/* State string ("running", "exited", podman's "stopped", ...) -> enum. */
enum hal_ctr_state engine_json_state(const char *s);

/* Body of POST /containers/create. Returns a string the caller frees with
 * free(), or NULL on allocation failure or a spec with too many labels. */
char *engine_json_create_body(const struct hal_ctr_create *spec);
/* Body of POST /containers/{id}/exec for argv (NULL-terminated). */
char *engine_json_exec_body(const char *const *argv);
/* The filters= value (before URL escaping) selecting containers with label
 * key=value: {"label":["key=value"]}. Caller frees. */
char *engine_json_label_filter(const char *key, const char *value);

/* Images: GET /images/{name}/json (one) and GET /images/json (a list, up to
 * cap; -EOVERFLOW when it held more). */
int engine_json_image(const char *buf, size_t len, struct hal_image_info *out);
int engine_json_images(const char *buf, size_t len, struct hal_image_info *out, unsigned cap, unsigned *n);

/* One line of the POST /images/create progress stream. */
enum engine_pull_line_kind {
	PULL_LINE_OTHER = 0,
	PULL_LINE_LAYER,      /* a layer named (to pull, or waiting) */
	PULL_LINE_BYTES,      /* bytes of a layer: current of total */
	PULL_LINE_LAYER_DONE, /* downloaded, already present or complete */
	PULL_LINE_ERROR,      /* the pull failed: text says why */
};
struct engine_pull_line {
	enum engine_pull_line_kind kind;
	char layer[80];
	char text[256];       /* status, or the error message (one line) */
	uint64_t current, total;
};
int engine_json_pull_line(const char *buf, size_t len, struct engine_pull_line *out);

#endif
