/* agent/infer/reqsize.h - a request's size for the scheduler's estimator (docs/api.md, request size). */
#ifndef BERTH_REQSIZE_H
#define BERTH_REQSIZE_H

#include <stddef.h>
#include <stdint.h>

/* Value of X-Berth-Size: the request's size for the scheduler's service-time
 * estimate (input elements, tokens, bytes: one unit per model, the producer's
 * choice), a decimal integer 0..4294967295 with optional surrounding blanks;
 * 0 is unknown. Returns 0 or -EINVAL. */
int reqsize_parse_header(const char *value, uint32_t *size)
	__attribute__((warn_unused_result));

/* The size of a KServe v2 JSON inference request: the sum over its
 * "inputs" of the product of each input's "shape" (saturating at
 * UINT32_MAX). 0 when the body is not such a request (not JSON, no
 * inputs, an input without a shape of whole numbers): unknown, not an
 * error - the model server judges the body. No allocation. */
uint32_t reqsize_v2_inputs(const char *body, size_t len);

#endif
