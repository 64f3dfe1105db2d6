/* agent/site/sitestate.c - applies the site's log commands and keeps the assignments placement derives from them. */
#include "agent/site/sitestate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/siteconf.h"

struct sitestate *sitestate_create(const char *const *device_ids, unsigned n)
{
	if (!n || n > SITESTATE_MAX_MEMBERS)
		return NULL;
	struct sitestate *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->n = n;
	uint64_t h = 1469598103934665603ull;
	for (unsigned i = 0; i < n; i++) {
		snprintf(s->m[i].device_id, sizeof(s->m[i].device_id), "%s", device_ids[i]);
		s->m[i].present = true;
		for (const char *p = device_ids[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ ',') * 1099511628211ull;
	}
	s->site_hash = h;
	return s;
}

void sitestate_set_address(struct sitestate *s, unsigned idx, const char *address)
{
	if (idx < s->n)
		snprintf(s->m[idx].address, sizeof(s->m[idx].address), "%s", address);
}

unsigned sitestate_members(const struct sitestate *s, unsigned *up)
{
	unsigned n = 0, u = 0;
	for (unsigned i = 0; i < s->n; i++) {
		n += s->m[i].present;
		u += s->m[i].present && s->m[i].up;
	}
	if (up)
		*up = u;
	return n;
}

void sitestate_destroy(struct sitestate *s)
{
	if (!s)
		return;
	free(s->doc);
	free(s);
}

int sitestate_member(const struct sitestate *s, const char *device_id)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->m[i].present && !strcmp(s->m[i].device_id, device_id))
			return (int)i;
	return -1;
}

unsigned sitestate_assigned(const struct sitestate *s, unsigned k, unsigned idx)
{
	unsigned c = 0;
	for (unsigned r = 0; k < s->deps.n && r < DEPLOY_MAX_REPLICAS; r++)
		c += s->place[k].owner[r] == (int)idx;
	return c;
}

static int refuse(struct sitestate *s, int rc, char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int refuse(struct sitestate *s, int rc, char *why, size_t len, const char *fmt, ...)
{
	s->refused++;
	if (why && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void replace(struct sitestate *s)
{
	struct placement_member pm[SITESTATE_MAX_MEMBERS];
	for (unsigned i = 0; i < s->n; i++)
		pm[i] = (struct placement_member){ .id = s->m[i].device_id, .up = s->m[i].present && s->m[i].up,
						   .cpu_milli = s->m[i].cpu_milli, .mem_bytes = s->m[i].mem_bytes };
	unsigned ch = placement_run(pm, s->n, s->place, s->deps.n);
	if (ch) {
		s->moves += ch;
		s->generation++;
	}
}

/* Fills place[] for a new set, keeping owners and exclusions of unchanged deployments. */
static void adopt(struct sitestate *s, const struct deploy_set *set)
{
	struct placement_dep old[DEPLOY_MAX];
	uint64_t old_hash[DEPLOY_MAX];
	char old_name[DEPLOY_MAX][DEPLOY_NAME_MAX];
	unsigned on = s->deps.n;
	for (unsigned k = 0; k < on; k++) {
		old[k] = s->place[k];
		old_hash[k] = s->deps.d[k].spec_hash;
		memcpy(old_name[k], s->deps.d[k].name, DEPLOY_NAME_MAX);
	}
	s->deps = *set;
	for (unsigned k = 0; k < set->n; k++) {
		const struct deploy_spec *d = &s->deps.d[k];
		struct placement_dep *p = &s->place[k];
		memset(p, 0, sizeof(*p));
		memset(p->owner, -1, sizeof(p->owner));
		for (unsigned j = 0; j < on; j++) {
			if (strcmp(old_name[j], d->name))
				continue;
			memcpy(p->owner, old[j].owner, sizeof(p->owner));
			if (old_hash[j] == d->spec_hash)
				p->excluded = old[j].excluded;
			else if (old[j].excluded)
				p->excluded = 0; /* a new spec gets a new chance everywhere */
		}
		p->name = d->name;
		p->sla_class = d->sla_class;
		p->replicas = d->site_replicas;
		p->spread = d->spread;
		p->cpu_milli = (d->cpu_nano + 999999u) / 1000000u;
		p->mem_bytes = d->mem_bytes;
	}
	/* owners of deployments that went are released */
	for (unsigned j = 0; j < on; j++) {
		bool kept = false;
		for (unsigned k = 0; k < set->n && !kept; k++)
			kept = !strcmp(old_name[j], set->d[k].name);
		for (unsigned r = 0; !kept && r < DEPLOY_MAX_REPLICAS; r++)
			if (old[j].owner[r] >= 0) {
				s->moves++;
				s->generation++;
			}
	}
}

static int parse_doc(const char *doc, size_t len, struct deploy_set *set, char *why, size_t why_len)
{
	struct deploy_error de;
	if (deploy_parse(doc, len, set, &de)) {
		if (why)
			deploy_error_format(&de, why, why_len);
		return -EINVAL;
	}
	for (unsigned k = 0; k < set->n; k++)
		if (set->d[k].scope != DEPLOY_SCOPE_SITE) {
			if (why)
				snprintf(why, why_len, "deployment '%s' is not site-scoped", set->d[k].name);
			return -EINVAL;
		}
	return 0;
}

static int apply_deployments(struct sitestate *s, const char *cmd, size_t len, char *why, size_t why_len)
{
	const char *nl = memchr(cmd, '\n', len);
	char head[32];
	if (!nl || (size_t)(nl - cmd) >= sizeof(head))
		return refuse(s, -EINVAL, why, why_len, "D: no version line");
	memcpy(head, cmd, (size_t)(nl - cmd));
	head[nl - cmd] = '\0';
	uint64_t version;
	char extra;
	if (sscanf(head, "D %" SCNu64 " %c", &version, &extra) != 1 || !version)
		return refuse(s, -EINVAL, why, why_len, "D: bad version line");
	if (version <= s->version)
		return refuse(s, -ESTALE, why, why_len, "D: version %" PRIu64 " is not newer than %" PRIu64, version,
			      s->version);
	const char *doc = nl + 1;
	size_t doc_len = len - (size_t)(doc - cmd);
	if (doc_len > SITESTATE_DOC_MAX)
		return refuse(s, -EINVAL, why, why_len, "D: document of %zu bytes (max %d)", doc_len, SITESTATE_DOC_MAX);
	struct deploy_set *set = malloc(sizeof(*set));
	char *copy = malloc(doc_len + 1);
	int rc = -ENOMEM;
	if (!set || !copy)
		goto out;
	char msg[256] = "";
	if ((rc = parse_doc(doc, doc_len, set, msg, sizeof(msg)))) {
		refuse(s, rc, why, why_len, "D: %s", msg);
		goto out;
	}
	memcpy(copy, doc, doc_len);
	copy[doc_len] = '\0';
	free(s->doc);
	s->doc = copy;
	copy = NULL;
	s->doc_len = doc_len;
	s->version = version;
	adopt(s, set);
	replace(s);
	rc = 0;
out:
	free(copy);
	free(set);
	return rc;
}

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
	if (!why || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	for (const char *p = id; *p; p++)
		if (*p <= ' ' || *p == '=' || *p == ',' || *p == '/' || *p == '+' || *p == '#' || *p == 0x7f)
			return false;
	return n > 0 && n < sizeof(((struct sitestate_member *)0)->device_id);
}

int sitestate_check_change(const struct sitestate *s, const char *device_id, const char *address, char *why,
			   size_t why_len)
{
	if (!id_ok(device_id))
		return say(why, why_len, "member id \"%.64s\" must be 1..63 characters without spaces, '=' or ','",
			   device_id), -EINVAL;
	unsigned up, n = sitestate_members(s, &up);
	int idx = sitestate_member(s, device_id);
	if (address) { /* join */
		if (!siteconf_address_ok(address))
			return say(why, why_len, "address \"%.64s\" is not A.B.C.D:PORT", address), -EINVAL;
		if (idx >= 0)
			return say(why, why_len, "member %s is already in the site (at %s)", device_id, s->m[idx].address),
			       -EEXIST;
		for (unsigned i = 0; i < s->n; i++)
			if (s->m[i].present && !strcmp(s->m[i].address, address))
				return say(why, why_len, "address %s is member %s's", address, s->m[i].device_id), -EEXIST;
		if (n >= SITESTATE_MAX_MEMBERS)
			return say(why, why_len, "the site has %u members already (at most %d)", n, SITESTATE_MAX_MEMBERS),
			       -ENOSPC;
		return 0;
	}
	if (idx < 0)
		return say(why, why_len, "no member %.64s in the site", device_id), -ENOENT;
	unsigned left = n - 1, left_up = up - (s->m[idx].up ? 1u : 0u);
	if (left < SITESTATE_MIN_MEMBERS)
		return say(why, why_len, "%u member(s) would be left, a site needs at least %d", left,
			   SITESTATE_MIN_MEMBERS), -EBUSY;
	if (left_up * 2 <= left)
		return say(why, why_len, "of the %u members left only %u would be up: not a majority", left, left_up),
		       -EBUSY;
	return 0;
}

/* J and L: a member joins (first free slot, down until heard) or leaves (its replicas move). */
static int apply_membership(struct sitestate *s, const char *dev, const char *addr, char *why, size_t why_len)
{
	char msg[192];
	int rc = sitestate_check_change(s, dev, addr, msg, sizeof(msg));
	if (rc)
		return refuse(s, rc, why, why_len, "%c: %s", addr ? 'J' : 'L', msg);
	if (!addr) {
		int idx = sitestate_member(s, dev);
		s->m[idx].present = s->m[idx].up = false;
		s->m[idx].cpu_milli = s->m[idx].mem_bytes = 0;
		for (unsigned k = 0; k < s->deps.n; k++)
			s->place[k].excluded &= ~(1u << idx);
		return 0;
	}
	unsigned i = 0;
	while (i < s->n && s->m[i].present)
		i++;
	if (i == s->n)
		s->n++;
	memset(&s->m[i], 0, sizeof(s->m[i]));
	snprintf(s->m[i].device_id, sizeof(s->m[i].device_id), "%s", dev);
	snprintf(s->m[i].address, sizeof(s->m[i].address), "%s", addr);
	s->m[i].present = true;
	for (unsigned k = 0; k < s->deps.n; k++)
		s->place[k].excluded &= ~(1u << i);
	return 0;
}

int sitestate_apply(struct sitestate *s, const char *cmd, size_t len, char *why, size_t why_len)
{
	char line[192], dev[64], dep[DEPLOY_NAME_MAX], addr[64], extra;
	uint64_t cpu, mem;
	s->applied++;
	if (why && why_len)
		why[0] = '\0';
	if (len >= 2 && cmd[0] == 'D' && cmd[1] == ' ')
		return apply_deployments(s, cmd, len, why, why_len);
	if (len >= sizeof(line) || memchr(cmd, '\0', len))
		return refuse(s, -EINVAL, why, why_len, "malformed command");
	memcpy(line, cmd, len);
	line[len] = '\0';
	int idx;
	if (sscanf(line, "M %63s %" SCNu64 " %" SCNu64 " %c", dev, &cpu, &mem, &extra) == 3) {
		if ((idx = sitestate_member(s, dev)) < 0)
			return refuse(s, -ENOENT, why, why_len, "unknown member %s", dev);
		s->m[idx].up = true;
		s->m[idx].cpu_milli = cpu;
		s->m[idx].mem_bytes = mem;
	} else if (sscanf(line, "X %63s %c", dev, &extra) == 1) {
		if ((idx = sitestate_member(s, dev)) < 0)
			return refuse(s, -ENOENT, why, why_len, "unknown member %s", dev);
		s->m[idx].up = false;
	} else if (sscanf(line, "J %63s %63s %c", dev, addr, &extra) == 2 || sscanf(line, "L %63s %c", dev, &extra) == 1) {
		int rc = apply_membership(s, dev, line[0] == 'J' ? addr : NULL, why, why_len);
		if (rc)
			return rc;
	} else if (sscanf(line, "F %63s %47s %c", dev, dep, &extra) == 2) {
		if ((idx = sitestate_member(s, dev)) < 0)
			return refuse(s, -ENOENT, why, why_len, "unknown member %s", dev);
		unsigned k = 0;
		while (k < s->deps.n && strcmp(s->deps.d[k].name, dep))
			k++;
		if (k == s->deps.n)
			return refuse(s, -ENOENT, why, why_len, "unknown site deployment %s", dep);
		s->place[k].excluded |= 1u << idx;
	} else {
		return refuse(s, -EINVAL, why, why_len, "malformed command");
	}
	replace(s);
	return 0;
}

/* --- snapshots ------------------------------------------------------------------ */

int sitestate_encode(const struct sitestate *s, char **out, size_t *len)
{
	size_t cap = 512 + s->n * 128 + DEPLOY_MAX * (DEPLOY_NAME_MAX + 32 + DEPLOY_MAX_REPLICAS * 4) + s->doc_len;
	char *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	size_t o = 0;
	o += (size_t)snprintf(b + o, cap - o,
			      "S2 %u %016" PRIx64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", s->n,
			      s->site_hash, s->version, s->applied, s->refused, s->moves, s->generation);
	for (unsigned i = 0; i < s->n; i++)
		o += (size_t)snprintf(b + o, cap - o, "M %s %d %" PRIu64 " %" PRIu64 " %d %s\n", s->m[i].device_id,
				      s->m[i].up, s->m[i].cpu_milli, s->m[i].mem_bytes, s->m[i].present,
				      s->m[i].address[0] ? s->m[i].address : "-");
	for (unsigned k = 0; k < s->deps.n; k++) {
		o += (size_t)snprintf(b + o, cap - o, "A %s %u ", s->deps.d[k].name, s->place[k].excluded);
		for (unsigned r = 0; r < DEPLOY_MAX_REPLICAS; r++)
			o += (size_t)snprintf(b + o, cap - o, "%s%d", r ? "," : "", s->place[k].owner[r]);
		b[o++] = '\n';
	}
	o += (size_t)snprintf(b + o, cap - o, "D\n");
	if (s->doc_len)
		memcpy(b + o, s->doc, s->doc_len);
	o += s->doc_len;
	*out = b;
	*len = o;
	return 0;
}

static const char *next_line(const char *p, const char *end, char *line, size_t size)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl || (size_t)(nl - p) >= size)
		return NULL;
	memcpy(line, p, (size_t)(nl - p));
	line[nl - p] = '\0';
	return nl + 1;
}

/* "A <name> <excluded> <o0>,<o1>,..." of a snapshot. 0 or -EINVAL. */
static int decode_owners(const char *line, unsigned n, char *name, uint32_t *excl, int8_t *owners)
{
	int off = 0;
	if (sscanf(line, "A %47s %u %n", name, excl, &off) != 2 || !off)
		return -EINVAL;
	const char *q = line + off;
	for (unsigned r = 0; r < DEPLOY_MAX_REPLICAS; r++) {
		char *e;
		long v = strtol(q, &e, 10);
		if (e == q || v < -1 || v >= (long)n)
			return -EINVAL;
		owners[r] = (int8_t)v;
		q = *e == ',' ? e + 1 : e;
	}
	return 0;
}

int sitestate_decode(struct sitestate *s, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	char line[256];
	struct sitestate *t = calloc(1, sizeof(*t));
	int rc = -EINVAL;
	if (!t)
		return -ENOMEM;
	unsigned n;
	if (!(p = next_line(p, end, line, sizeof(line))) ||
	    sscanf(line, "S2 %u %" SCNx64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &n,
		   &t->site_hash, &t->version, &t->applied, &t->refused, &t->moves, &t->generation) != 7 ||
	    !n || n > SITESTATE_MAX_MEMBERS || t->site_hash != s->site_hash)
		goto out;
	t->n = n;
	for (unsigned i = 0; i < n; i++) {
		int up, present;
		if (!(p = next_line(p, end, line, sizeof(line))) ||
		    sscanf(line, "M %63s %d %" SCNu64 " %" SCNu64 " %d %63s", t->m[i].device_id, &up, &t->m[i].cpu_milli,
			   &t->m[i].mem_bytes, &present, t->m[i].address) != 6)
			goto out;
		t->m[i].up = up != 0;
		t->m[i].present = present != 0;
		if (!strcmp(t->m[i].address, "-"))
			t->m[i].address[0] = '\0';
	}
	char names[DEPLOY_MAX][DEPLOY_NAME_MAX];
	uint32_t excl[DEPLOY_MAX];
	int8_t owners[DEPLOY_MAX][DEPLOY_MAX_REPLICAS];
	unsigned na = 0;
	for (;;) {
		if (!(p = next_line(p, end, line, sizeof(line))))
			goto out;
		if (!strcmp(line, "D"))
			break;
		if (na == DEPLOY_MAX || decode_owners(line, n, names[na], &excl[na], owners[na]))
			goto out;
		na++;
	}
	size_t doc_len = (size_t)(end - p);
	if (doc_len) {
		if (!(t->doc = malloc(doc_len + 1)))
			goto out;
		memcpy(t->doc, p, doc_len);
		t->doc[doc_len] = '\0';
		t->doc_len = doc_len;
		if (parse_doc(t->doc, doc_len, &t->deps, NULL, 0))
			goto out;
	}
	struct deploy_set *set = malloc(sizeof(*set));
	if (!set)
		goto out;
	*set = t->deps;
	t->deps.n = 0;
	adopt(t, set);
	free(set);
	for (unsigned k = 0; k < t->deps.n; k++)
		for (unsigned a = 0; a < na; a++)
			if (!strcmp(names[a], t->deps.d[k].name)) {
				memcpy(t->place[k].owner, owners[a], sizeof(owners[a]));
				t->place[k].excluded = excl[a];
			}
	/* recomputes unplaced and why; a placed state is a fixed point */
	uint64_t moves = t->moves, gen = t->generation;
	replace(t);
	t->moves = moves;
	t->generation = gen;
	free(s->doc);
	*s = *t;
	for (unsigned k = 0; k < s->deps.n; k++)
		s->place[k].name = s->deps.d[k].name;
	t->doc = NULL;
	rc = 0;
out:
	if (rc)
		free(t->doc);
	free(t);
	return rc;
}

/* --- commands ---------------------------------------------------------------------- */

static int fmt(char *buf, size_t len, int n) { return n < 0 || (size_t)n >= len ? -ENOSPC : n; }

int sitestate_cmd_member(char *buf, size_t len, const char *device_id, uint64_t cpu_milli, uint64_t mem_bytes)
{
	return fmt(buf, len, snprintf(buf, len, "M %s %" PRIu64 " %" PRIu64, device_id, cpu_milli, mem_bytes));
}

int sitestate_cmd_down(char *buf, size_t len, const char *device_id)
{
	return fmt(buf, len, snprintf(buf, len, "X %s", device_id));
}

int sitestate_cmd_join(char *buf, size_t len, const char *device_id, const char *address)
{
	return fmt(buf, len, snprintf(buf, len, "J %s %s", device_id, address));
}

int sitestate_cmd_leave(char *buf, size_t len, const char *device_id)
{
	return fmt(buf, len, snprintf(buf, len, "L %s", device_id));
}

int sitestate_cmd_failed(char *buf, size_t len, const char *device_id, const char *deployment)
{
	return fmt(buf, len, snprintf(buf, len, "F %s %s", device_id, deployment));
}

int sitestate_cmd_deployments(char *buf, size_t len, uint64_t version, const char *doc, size_t doc_len)
{
	int n = snprintf(buf, len, "D %" PRIu64 "\n", version);
	if (n < 0 || (size_t)n + doc_len >= len)
		return -ENOSPC;
	memcpy(buf + n, doc, doc_len);
	buf[n + doc_len] = '\0';
	return n + (int)doc_len;
}
