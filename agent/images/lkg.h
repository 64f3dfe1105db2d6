/* agent/images/lkg.h - each deployment's last-known-good version, the image gate of rollouts, and automatic rollback. */
#ifndef BERTH_IMAGES_LKG_H
#define BERTH_IMAGES_LKG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct supervisor;
struct images;
struct store;
struct events;
struct lkg;

struct lkg_opts {
	bool rollback;               /* roll a failed new version back by itself */
	uint32_t stable_ms;          /* fully ready this long: last-known-good */
	uint32_t window_ms;          /* not fully ready this long after its image arrived: failed */
	uint32_t max_crashes;        /* exits of the new version that make a crash loop */
};

/* Joins the supervisor and the images flow: registers the supervisor's image
 * gate (a spec's replicas are made only once its image is in the store,
 * pulled under its pull policy) and spec filter (a version rolled back from
 * is replaced by the last-known-good whenever it is applied again, until a
 * different version is desired), and judges each deployment's current
 * version once a second (agent/images/rollout.h). A version that stayed fully
 * ready for stable_ms is recorded as last-known-good in the store (its spec,
 * image and digest; kept across restarts), and its image is kept by the
 * budget. A new version that fails is replaced by the last-known-good, with
 * a "rollback" event naming the reason. st may be NULL (nothing persisted:
 * then no rollback either); ev may be NULL. */
struct lkg *lkg_create(struct loop *l, struct supervisor *sup, struct images *im, struct store *st,
		       struct events *ev, const struct lkg_opts *o);
void lkg_destroy(struct lkg *k);

/* Rolls deployment back to its last-known-good now (berthctl rollback).
 * Returns 0, -ENOENT (no such deployment), -ENODATA (it has no
 * last-known-good), -EALREADY (it runs it already), -EIO (the stored record
 * could not be read). reason is logged and sent in the event. */
int lkg_rollback(struct lkg *k, const char *deployment, const char *reason) __attribute__((warn_unused_result));

/* The last-known-good spec of deployment, as a one-deployment desired state
 * {"deployments":[SPEC],"version":1} in *doc (malloc'ed, caller frees), so
 * that it can be checked (the policy) before lkg_rollback. Returns 0, or
 * -ENOENT, -ENODATA, -EALREADY, -EIO as lkg_rollback. */
int lkg_last_good(struct lkg *k, const char *deployment, char **doc) __attribute__((warn_unused_result));

/* The reported state's fields for one deployment, without braces:
 * "image":..,"image_state":..,"pull":{bytes..}|null,"last_known_good":{image,digest,since_ms}|null,
 * "last_rollback":{reason,from_image,to_image,wall_ms}|null; "pull" (progress, a figure) only
 * when figures. Returns the length or -ENOSPC. */
int lkg_report(struct lkg *k, const char *deployment, bool figures, char *buf, size_t len);

struct lkg_stats {
	uint64_t recorded;           /* versions recorded as last-known-good */
	uint64_t rollbacks;          /* automatic and requested */
};
void lkg_get_stats(const struct lkg *k, struct lkg_stats *out);

#endif
