/* agent/images/images.h - the images flow: images pulled before use, retried, reported, and removed within a disk budget. */
#ifndef BERTH_IMAGES_H
#define BERTH_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/model/deploy.h"

struct loop;
struct hal_engine;
struct store;
struct events;

#define IMAGES_MAX 32            /* images tracked at once (wanted, kept or pulling) */
#define IMAGES_REF_MAX 256

/* Where one image is on its way to the engine's store. */
enum image_state {
	IMAGE_CHECKING = 0,      /* asking the engine whether it holds it */
	IMAGE_PRESENT,           /* in the store: containers can be created from it */
	IMAGE_QUEUED,            /* to be pulled (one pull runs at a time) */
	IMAGE_PULLING,
	IMAGE_RETRY_WAIT,        /* the last pull failed; the next one after a back-off */
	IMAGE_MISSING,           /* absent and pull policy "never": waits for someone to load it */
};

struct image_status {
	char ref[IMAGES_REF_MAX];
	enum image_state state;
	char digest[80];             /* the registry's manifest digest once known, else "" */
	uint64_t bytes_done, bytes_total;
	unsigned layers_done, layers_seen;
	uint32_t attempts;           /* failed pulls since it was last present */
	uint64_t retry_in_ms;        /* RETRY_WAIT: time left */
	char last_error[192];        /* why the last pull failed, "" none */
};

/* A registry the gateway may pull from; credentials are optional. */
struct images_registry {
	char host[128];              /* "127.0.0.1:5000", "registry.example" */
	char username[128];
	char password[256];          /* never logged, never reported */
};

struct images_opts {
	unsigned stall_s;            /* a pull that hears nothing this long fails (and is retried) */
	uint32_t retry_initial_ms;   /* back-off of failed pulls: the restart schedule's */
	uint32_t retry_max_ms;
	uint64_t budget_bytes;       /* 0: no budget */
	bool remove_foreign;         /* the budget may remove images berth did not pull */
	unsigned gc_interval_s;      /* how often the budget is checked (also after each pull) */
	unsigned progress_event_ms;  /* at most one image_pull_progress event per pull this often */
	const struct images_registry *registries; /* borrowed for the life of the flow */
	unsigned nregistries;
};

/* Told when an image changes state (from the loop). */
typedef void (*images_change_fn)(void *arg, const char *ref, enum image_state state);

/* Creates the flow on loop l with engine e; st (may be NULL: nothing
 * remembered across restarts) keeps which images berth pulled; ev (may be
 * NULL) receives image_pull_started, image_pull_progress, image_pulled,
 * image_pull_failed and image_removed events. NULL on allocation failure. */
struct images *images_create(struct loop *l, struct hal_engine *e, struct store *st, struct events *ev,
			     const struct images_opts *o);
/* Stops a pull in flight (its result is dropped) and frees. NULL is safe. */
void images_destroy(struct images *im);
void images_set_listener(struct images *im, images_change_fn fn, void *arg);

/* Declares that a deployment needs ref under policy and returns where the
 * image is now. The first call for a ref starts an engine inspect; an
 * absent image is queued for a pull unless policy is never (MISSING); with
 * policy always it is pulled once per want even when present, and stays
 * PRESENT (usable) meanwhile when the engine already holds a copy. Returns
 * -EINVAL for a malformed reference, -EACCES for a registry not configured
 * (the message names it in err), -ENOSPC when IMAGES_MAX images are tracked. */
int images_want(struct images *im, const char *ref, enum pull_policy policy, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/* The image set the budget must never remove: each deployment's current and
 * last-known-good image. Replaces the previous set; refs are copied. */
void images_keep(struct images *im, const char *const *refs, unsigned n);

/* Where ref is; -ENOENT when not tracked. */
int images_status(const struct images *im, const char *ref, struct image_status *out);

/* Runs the budget check now (also runs every gc_interval_s). */
void images_gc_now(struct images *im);

struct images_stats {
	uint64_t pulls_started, pulls_ok, pulls_failed;
	uint64_t removed, removed_bytes;
	uint64_t disk_bytes;         /* the engine's images, at the last budget check */
	uint64_t over_budget_bytes;  /* what the check could not free (kept or in use) */
};
void images_get_stats(const struct images *im, struct images_stats *out);

/* Writes {"images":[{"image","state","digest","bytes_done","bytes_total","layers_done","layers",
 * "attempts","retry_in_ms","last_error"}...],"disk_bytes":..,"budget_bytes":..} for the reported
 * state. Returns the length, or -ENOSPC. */
int images_report(const struct images *im, char *buf, size_t len);

const char *images_state_name(enum image_state s);

#endif
