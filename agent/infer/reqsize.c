/* agent/infer/reqsize.c - a request's size for the scheduler's estimator: the X-Berth-Size header, or the inputs' shapes of a KServe v2 JSON body. */
#include "agent/infer/reqsize.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

int reqsize_parse_header(const char *value, uint32_t *size)
{
	if (!value)
		return -EINVAL;
	while (*value == ' ' || *value == '\t')
		value++;
	if (!isdigit((unsigned char)*value))
		return -EINVAL;
	uint64_t v = 0;
	while (isdigit((unsigned char)*value)) {
		v = v * 10 + (uint64_t)(*value - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
		value++;
	}
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value)
		return -EINVAL;
	*size = (uint32_t)v;
	return 0;
}

/* --- KServe v2 input shapes: a JSON walk without allocation ---------------- */

struct v2scan {
	const char *p, *end;
	int depth;
};

static void v2_ws(struct v2scan *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool v2_eat(struct v2scan *j, char c)
{
	v2_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return true;
	}
	return false;
}

/* A string; its contents when they equal want (want may be NULL). */
static int v2_string(struct v2scan *j, const char *want, bool *equal)
{
	v2_ws(j);
	if (j->p >= j->end || *j->p != '"')
		return -1;
	const char *s = ++j->p;
	while (j->p < j->end && *j->p != '"') {
		if (*j->p == '\\')
			j->p++;
		j->p++;
	}
	if (j->p >= j->end)
		return -1;
	if (equal)
		*equal = want && (size_t)(j->p - s) == strlen(want) && !memcmp(s, want, (size_t)(j->p - s));
	j->p++;
	return 0;
}

static int v2_skip(struct v2scan *j);

/* The elements of an array or the members of an object, each skipped. */
static int v2_skip_seq(struct v2scan *j, char close, bool members)
{
	if (v2_eat(j, close))
		return 0;
	do {
		if (members && (v2_string(j, NULL, NULL) < 0 || !v2_eat(j, ':')))
			return -1;
		if (v2_skip(j) < 0)
			return -1;
	} while (v2_eat(j, ','));
	return v2_eat(j, close) ? 0 : -1;
}

static int v2_skip(struct v2scan *j)
{
	v2_ws(j);
	if (j->p >= j->end || ++j->depth > 64)
		return -1;
	int rc = 0;
	char c = *j->p;
	if (c == '"') {
		rc = v2_string(j, NULL, NULL);
	} else if (c == '{' || c == '[') {
		j->p++;
		rc = v2_skip_seq(j, c == '{' ? '}' : ']', c == '{');
	} else {
		const char *s = j->p;
		while (j->p < j->end && (isalnum((unsigned char)*j->p) || *j->p == '-' || *j->p == '+' || *j->p == '.'))
			j->p++;
		rc = j->p > s ? 0 : -1;
	}
	j->depth--;
	return rc;
}

/* [d0, d1, ...] of whole numbers: their product, saturating. */
static int v2_shape(struct v2scan *j, uint64_t *prod)
{
	if (!v2_eat(j, '['))
		return -1;
	*prod = 1;
	if (v2_eat(j, ']'))
		return 0;
	do {
		v2_ws(j);
		if (j->p >= j->end || !isdigit((unsigned char)*j->p))
			return -1;
		uint64_t d = 0;
		while (j->p < j->end && isdigit((unsigned char)*j->p)) {
			d = d * 10 + (uint64_t)(*j->p++ - '0');
			if (d > UINT32_MAX)
				d = UINT32_MAX;
		}
		*prod = *prod * d > UINT32_MAX ? UINT32_MAX : *prod * d;
	} while (v2_eat(j, ','));
	return v2_eat(j, ']') ? 0 : -1;
}

/* One input object: the product of its shape (-1 without one). */
static int v2_input(struct v2scan *j, uint64_t *elems)
{
	bool have = false;
	if (!v2_eat(j, '{'))
		return -1;
	if (!v2_eat(j, '}')) {
		do {
			bool is_shape;
			if (v2_string(j, "shape", &is_shape) < 0 || !v2_eat(j, ':'))
				return -1;
			if (is_shape) {
				if (v2_shape(j, elems) < 0)
					return -1;
				have = true;
			} else if (v2_skip(j) < 0) {
				return -1;
			}
		} while (v2_eat(j, ','));
		if (!v2_eat(j, '}'))
			return -1;
	}
	return have ? 0 : -1;
}

uint32_t reqsize_v2_inputs(const char *body, size_t len)
{
	if (!body)
		return 0;
	struct v2scan j = { body, body + len, 0 };
	uint64_t total = 0;
	bool inputs = false;
	if (!v2_eat(&j, '{') || v2_eat(&j, '}'))
		return 0;
	do {
		bool is_inputs;
		if (v2_string(&j, "inputs", &is_inputs) < 0 || !v2_eat(&j, ':'))
			return 0;
		if (!is_inputs) {
			if (v2_skip(&j) < 0)
				return 0;
			continue;
		}
		if (!v2_eat(&j, '[') || v2_eat(&j, ']'))
			return 0;
		do {
			uint64_t e = 0;
			if (v2_input(&j, &e) < 0)
				return 0;
			total = total + e > UINT32_MAX ? UINT32_MAX : total + e;
		} while (v2_eat(&j, ','));
		if (!v2_eat(&j, ']'))
			return 0;
		inputs = true;
	} while (v2_eat(&j, ','));
	if (!v2_eat(&j, '}'))
		return 0;
	v2_ws(&j);
	return inputs && j.p == j.end ? (uint32_t)total : 0;
}
