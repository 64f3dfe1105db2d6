/* agent/model/imageref.h - image references (registry/name:tag@sha256:digest) parsed and checked (pure). */
#ifndef BERTH_MODEL_IMAGEREF_H
#define BERTH_MODEL_IMAGEREF_H

#include <stdbool.h>
#include <stddef.h>

#define IMAGEREF_REGISTRY_MAX 128
#define IMAGEREF_NAME_MAX 256
#define IMAGEREF_TAG_MAX 129
#define IMAGEREF_DIGEST_LEN 71 /* "sha256:" + 64 lower-case hex digits */

/* One image reference, as a deployment names it. The registry is the first
 * path component when it looks like a host (holds '.' or ':', or is
 * "localhost"); otherwise "" (the engine's default registry). A reference
 * with a digest is pinned: the engine fetches exactly that manifest. */
struct imageref {
	char registry[IMAGEREF_REGISTRY_MAX]; /* "127.0.0.1:5000", "localhost", "" */
	char name[IMAGEREF_NAME_MAX];         /* with the registry: "127.0.0.1:5000/berth-worker" */
	char tag[IMAGEREF_TAG_MAX];           /* "" when only pinned; "latest" when neither was given */
	char digest[IMAGEREF_DIGEST_LEN + 1]; /* "" when not pinned */
};

/* Parses s into out. Returns 0, or -EINVAL with why (a short phrase naming
 * the part at fault) in err: an empty or over-long reference, upper-case or
 * other characters a name may not hold, an empty component, a bad tag, a
 * digest not "sha256:" followed by exactly 64 lower-case hex digits. */
int imageref_parse(const char *s, struct imageref *out, char *err, size_t err_len)
	__attribute__((warn_unused_result));

/* The reference the engine pulls: "name@digest" when pinned, else "name:tag". */
int imageref_pull_ref(const struct imageref *r, char *buf, size_t len) __attribute__((warn_unused_result));

/* True when the reference names an image that lives only in the local store
 * ("localhost/..." or no registry at all with a name the engine keeps
 * locally): such images are never pulled. */
bool imageref_is_local(const struct imageref *r);

#endif
