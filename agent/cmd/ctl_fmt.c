/* agent/cmd/ctl_fmt.c - formats what berthctl receives (status, state, replies, batches) for people and scripts. */
#include "agent/cmd/ctl_fmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- a small column-aligned table (the CLI's output, not a hot path) ------- */

#define TABLE_MAX_COLS 10
#define CELL_MAX 96

struct table {
	unsigned ncols, nrows, cap;
	char (*cells)[TABLE_MAX_COLS][CELL_MAX];
	size_t width[TABLE_MAX_COLS];
};

static void table_row(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		unsigned cap = t->cap ? t->cap * 2 : 16;
		void *p = realloc(t->cells, (size_t)cap * sizeof(*t->cells));
		if (!p)
			return; /* the row is left out; the CLI prints what it could */
		t->cells = p;
		t->cap = cap;
	}
	for (unsigned c = 0; c < t->ncols; c++) {
		snprintf(t->cells[t->nrows][c], CELL_MAX, "%s", cells[c] ? cells[c] : "-");
		size_t w = strlen(t->cells[t->nrows][c]);
		if (w > t->width[c])
			t->width[c] = w;
	}
	t->nrows++;
}

static void table_print(struct table *t, FILE *out)
{
	for (unsigned r = 0; r < t->nrows; r++) {
		for (unsigned c = 0; c < t->ncols; c++) {
			if (c + 1 == t->ncols)
				fprintf(out, "%s\n", t->cells[r][c]);
			else
				fprintf(out, "%-*s  ", (int)t->width[c], t->cells[r][c]);
		}
	}
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* --- presence ------------------------------------------------------------------ */

static int64_t num_i64(const cJSON *o, const char *key, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? (int64_t)v->valuedouble : dflt;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int ctl_status_parse(const char *json, size_t len, struct ctl_status *st)
{
	cJSON *root = cJSON_ParseWithLength(json, len);
	const cJSON *online = root ? cJSON_GetObjectItemCaseSensitive(root, "online") : NULL;
	if (!cJSON_IsBool(online)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	st->known = true;
	st->online = cJSON_IsTrue(online);
	st->since_ms = num_i64(root, "ts", 0);
	const char *v = str(root, "version");
	snprintf(st->version, sizeof(st->version), "%s", v ? v : "");
	ctl_status_seen(st, st->since_ms);
	cJSON_Delete(root);
	return 0;
}

void ctl_status_seen(struct ctl_status *st, int64_t ts_ms)
{
	if (ts_ms > st->last_seen_ms)
		st->last_seen_ms = ts_ms;
}

void ctl_fmt_age(int64_t now_ms, int64_t then_ms, char *buf, size_t len)
{
	int64_t d = now_ms - then_ms;
	if (d < -1000) {
		snprintf(buf, len, "in the future");
		return;
	}
	int64_t s = d / 1000;
	if (s < 1)
		snprintf(buf, len, "just now");
	else if (s < 120)
		snprintf(buf, len, "%" PRId64 " s ago", s);
	else if (s < 120 * 60)
		snprintf(buf, len, "%" PRId64 " min ago", s / 60);
	else if (s < 48 * 3600)
		snprintf(buf, len, "%" PRId64 " h ago", s / 3600);
	else
		snprintf(buf, len, "%" PRId64 " d ago", s / 86400);
}

void ctl_fmt_time(int64_t ms, char *buf, size_t len)
{
	if (ms <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "%" PRId64, ms);
}

void ctl_fmt_presence(const struct ctl_status *st, int64_t now_ms, char *buf, size_t len)
{
	char when[32], age[32];
	if (!st->known) {
		if (st->last_seen_ms) {
			ctl_fmt_time(st->last_seen_ms, when, sizeof(when));
			ctl_fmt_age(now_ms, st->last_seen_ms, age, sizeof(age));
			snprintf(buf, len, "no status, last seen %s (%s)", when, age);
		} else {
			snprintf(buf, len, "never seen");
		}
		return;
	}
	/* A Last Will carries no time: fall back on the newest thing it sent. */
	int64_t t = st->since_ms ? st->since_ms : st->last_seen_ms;
	if (!t) {
		snprintf(buf, len, "%s (time unknown)", st->online ? "online" : "offline");
		return;
	}
	ctl_fmt_time(t, when, sizeof(when));
	ctl_fmt_age(now_ms, t, age, sizeof(age));
	if (st->since_ms)
		snprintf(buf, len, "%s since %s (%s)", st->online ? "online" : "offline", when, age);
	else
		snprintf(buf, len, "%s, last seen %s (%s)", st->online ? "online" : "offline", when, age);
}

void ctl_fmt_seconds(uint32_t ms, char *buf, size_t len)
{
	if (ms % 1000)
		snprintf(buf, len, "%.1f s", ms / 1000.0);
	else
		snprintf(buf, len, "%u s", ms / 1000);
}

void ctl_fmt_no_answer(const char *device, uint32_t timeout_ms, const struct ctl_status *st, int64_t now_ms,
		       char *buf, size_t len)
{
	char secs[24], age[32];
	ctl_fmt_seconds(timeout_ms, secs, sizeof(secs));
	int64_t t = st->since_ms ? st->since_ms : st->last_seen_ms;
	if (!st->known && !st->last_seen_ms) {
		snprintf(buf, len, "device %s did not answer within %s; it has no status on this broker "
			 "(never connected, or a different device id or broker)", device, secs);
	} else if (!st->known || !st->online) {
		if (t) {
			ctl_fmt_age(now_ms, t, age, sizeof(age));
			snprintf(buf, len, "device %s did not answer within %s; last seen offline %s", device, secs, age);
		} else {
			snprintf(buf, len, "device %s did not answer within %s; it is offline (since an unknown time)", device,
				 secs);
		}
	} else {
		ctl_fmt_age(now_ms, t, age, sizeof(age));
		snprintf(buf, len, "device %s did not answer within %s; it is online (since %s) but sent no reply", device,
			 secs, t ? age : "an unknown time");
	}
}

/* --- devices -------------------------------------------------------------------- */

static int cmp_dev(const void *a, const void *b)
{
	return strcmp(((const struct ctl_device *)a)->id, ((const struct ctl_device *)b)->id);
}

void ctl_fmt_devices(FILE *out, struct ctl_device *devs, size_t n, int64_t now_ms, bool json)
{
	qsort(devs, n, sizeof(*devs), cmp_dev);
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		for (size_t i = 0; arr && i < n; i++) {
			const struct ctl_status *st = &devs[i].st;
			cJSON *o = cJSON_CreateObject();
			if (!o)
				break;
			cJSON_AddStringToObject(o, "device", devs[i].id);
			if (st->known)
				cJSON_AddBoolToObject(o, "online", st->online);
			else
				cJSON_AddNullToObject(o, "online");
			if (st->since_ms)
				cJSON_AddNumberToObject(o, "since_ms", (double)st->since_ms);
			else
				cJSON_AddNullToObject(o, "since_ms");
			if (st->last_seen_ms)
				cJSON_AddNumberToObject(o, "last_seen_ms", (double)st->last_seen_ms);
			else
				cJSON_AddNullToObject(o, "last_seen_ms");
			cJSON_AddStringToObject(o, "version", st->version);
			cJSON_AddItemToArray(arr, o);
		}
		char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
		fprintf(out, "%s\n", s ? s : "[]");
		free(s);
		cJSON_Delete(arr);
		return;
	}
	if (n == 0) {
		fprintf(out, "no devices on this broker\n");
		return;
	}
	struct table t = { .ncols = 5 };
	table_row(&t, (const char *const[]){ "DEVICE", "STATUS", "SINCE", "LAST SEEN", "VERSION" });
	for (size_t i = 0; i < n; i++) {
		const struct ctl_status *st = &devs[i].st;
		char since[80] = "-", seen[32] = "-", when[32], age[32];
		if (st->since_ms) {
			ctl_fmt_time(st->since_ms, when, sizeof(when));
			ctl_fmt_age(now_ms, st->since_ms, age, sizeof(age));
			snprintf(since, sizeof(since), "%s (%s)", when, age);
		}
		if (st->last_seen_ms)
			ctl_fmt_age(now_ms, st->last_seen_ms, seen, sizeof(seen));
		table_row(&t, (const char *const[]){ devs[i].id, !st->known ? "unknown" : st->online ? "online" : "offline",
						      since, seen, st->version[0] ? st->version : "-" });
	}
	table_print(&t, out);
}

/* --- reported state ------------------------------------------------------------- */

static void fmt_u(const cJSON *o, const char *key, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsNumber(v))
		snprintf(buf, len, "%.0f", v->valuedouble);
	else
		snprintf(buf, len, "-");
}

static void fmt_pct(double ratio, char *buf, size_t len)
{
	if (!isfinite(ratio) || ratio < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%%", ratio * 100.0);
}

/* A compliance given as a number (0..1) or as {"compliance":x,...}; NAN when absent. */
static double compliance_of(const cJSON *v)
{
	if (cJSON_IsObject(v))
		v = cJSON_GetObjectItemCaseSensitive(v, "compliance");
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void state_json(FILE *out, const char *device, const struct ctl_status *st, cJSON *state)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *s = cJSON_CreateObject();
	if (!root || !s) {
		cJSON_Delete(root);
		cJSON_Delete(s);
		return;
	}
	cJSON_AddStringToObject(root, "device", device);
	if (st->known)
		cJSON_AddBoolToObject(s, "online", st->online);
	else
		cJSON_AddNullToObject(s, "online");
	if (st->since_ms)
		cJSON_AddNumberToObject(s, "since_ms", (double)st->since_ms);
	else
		cJSON_AddNullToObject(s, "since_ms");
	if (st->last_seen_ms)
		cJSON_AddNumberToObject(s, "last_seen_ms", (double)st->last_seen_ms);
	else
		cJSON_AddNullToObject(s, "last_seen_ms");
	cJSON_AddItemToObject(root, "status", s);
	cJSON_AddItemReferenceToObject(root, "state", state);
	char *txt = cJSON_PrintUnformatted(root);
	if (txt)
		fprintf(out, "%s\n", txt);
	free(txt);
	cJSON_Delete(root);
}

/* fmt_ms: a duration field in ms as "483 ms", or "-" when absent. */
static void fmt_ms(const cJSON *o, const char *key, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsNumber(v))
		snprintf(buf, len, "%.0f ms", v->valuedouble);
	else
		snprintf(buf, len, "-");
}

/* The last chaos experiment (the state's "chaos" object, as in its chaos_done
 * event), two lines; nothing before the first run. */
static void state_chaos(FILE *out, const cJSON *ch)
{
	if (!cJSON_IsObject(ch))
		return;
	int64_t runs = num_i64(ch, "runs", 0);
	bool running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ch, "running"));
	if (runs <= 0 && !running)
		return;
	const char *dep = str(ch, "deployment");
	char every[24] = "-", dur[24] = "-", minr[16], kills[16], skipped[16], rec[16], pend[16], failed[16];
	char mean[24], p95[24], max[24];
	int64_t iv = num_i64(ch, "interval_ms", -1), du = num_i64(ch, "duration_ms", -1);
	if (iv >= 0 && iv <= UINT32_MAX)
		ctl_fmt_seconds((uint32_t)iv, every, sizeof(every));
	if (du >= 0 && du <= UINT32_MAX)
		ctl_fmt_seconds((uint32_t)du, dur, sizeof(dur));
	fmt_u(ch, "min_running", minr, sizeof(minr));
	fmt_u(ch, "kills", kills, sizeof(kills));
	fmt_u(ch, "skipped", skipped, sizeof(skipped));
	fmt_u(ch, "recovered", rec, sizeof(rec));
	fmt_u(ch, "pending", pend, sizeof(pend));
	fmt_u(ch, "failed_requests", failed, sizeof(failed));
	fmt_ms(ch, "mttr_mean_ms", mean, sizeof(mean));
	fmt_ms(ch, "mttr_p95_ms", p95, sizeof(p95));
	fmt_ms(ch, "mttr_max_ms", max, sizeof(max));
	fprintf(out, "\nchaos: %s, run %" PRId64 " since berthd started (%s): a kill every %s for %s, at least %s running\n",
		dep && dep[0] ? dep : "-", runs, running ? "running" : "finished", every, dur, minr);
	fprintf(out, "  kills %s, skipped %s, replaced %s, pending %s; time to replacement mean %s, p95 %s, max %s; "
		     "failed requests %s\n",
		kills, skipped, rec, pend, mean, p95, max, failed);
}

/* The deployments table, then what needs the operator's attention. */
static void state_deployments(FILE *out, const cJSON *deps)
{
	int ndeps = cJSON_IsArray(deps) ? cJSON_GetArraySize(deps) : 0;
	fprintf(out, "\n");
	if (ndeps == 0) {
		fprintf(out, "no deployments\n");
	} else {
		struct table t = { .ncols = 8 };
		table_row(&t, (const char *const[]){ "DEPLOYMENT", "CLASS", "READY/DESIRED", "MIN-MAX", "HEALTH", "CIRCUIT",
						      "RESTARTS", "SLA" });
		for (const cJSON *d = deps->child; d; d = d->next) {
			char ready[16], desired[16], rd[40], lo[16], hi[16], mm[40], restarts[16], sla[16];
			fmt_u(d, "replicas_ready", ready, sizeof(ready));
			fmt_u(d, "replicas_desired", desired, sizeof(desired));
			if (!strcmp(desired, "-"))
				fmt_u(d, "replicas", desired, sizeof(desired));
			snprintf(rd, sizeof(rd), "%s/%s", ready, desired);
			fmt_u(d, "replicas_min", lo, sizeof(lo));
			fmt_u(d, "replicas_max", hi, sizeof(hi));
			if (!strcmp(lo, "-") && !strcmp(hi, "-"))
				snprintf(mm, sizeof(mm), "-");
			else
				snprintf(mm, sizeof(mm), "%s-%s", lo, hi);
			fmt_u(d, "restarts", restarts, sizeof(restarts));
			const cJSON *slao = cJSON_GetObjectItemCaseSensitive(d, "sla");
			double c = compliance_of(cJSON_GetObjectItemCaseSensitive(d, "sla_compliance"));
			if (isnan(c))
				c = compliance_of(slao);
			fmt_pct(c, sla, sizeof(sla));
			const char *cls = str(d, "sla_class");
			if (!cls && cJSON_IsObject(slao))
				cls = str(slao, "class");
			table_row(&t, (const char *const[]){ str(d, "name"), cls, rd, mm, str(d, "health"), str(d, "circuit"),
							      restarts, sla });
		}
		table_print(&t, out);
		/* What needs the operator's attention, one line each. */
		for (const cJSON *d = deps->child; d; d = d->next) {
			const char *name = str(d, "name");
			const char *last = str(d, "last_error");
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "migration_needed")))
				fprintf(out, "  %s: migration needed (local recovery keeps failing)\n", name ? name : "?");
			if (last && last[0])
				fprintf(out, "  %s: last error: %s\n", name ? name : "?", last);
			const char *ist = str(d, "image_state");
			if (ist && strcmp(ist, "present") != 0)
				fprintf(out, "  %s: image %s is %s\n", name ? name : "?", str(d, "image") ? str(d, "image") : "?", ist);
			const cJSON *lkg = cJSON_GetObjectItemCaseSensitive(d, "last_known_good");
			const cJSON *rb = cJSON_GetObjectItemCaseSensitive(d, "last_rollback");
			if (cJSON_IsObject(rb))
				fprintf(out, "  %s: rolled back (%s) from %s to %s\n", name ? name : "?",
					str(rb, "reason") ? str(rb, "reason") : "?", str(rb, "from_image") ? str(rb, "from_image") : "?",
					str(rb, "to_image") ? str(rb, "to_image") : "?");
			else if (cJSON_IsObject(lkg) && str(d, "image") && str(lkg, "image") &&
				 strcmp(str(d, "image"), str(lkg, "image")) != 0)
				fprintf(out, "  %s: last-known-good is %s\n", name ? name : "?", str(lkg, "image"));
		}
	}
}

/* SLA compliance per class: {"urgent":0.99,...} or {"urgent":{"compliance":..,"requests":..}}. */
static void state_sla(FILE *out, const cJSON *sla)
{
	if (cJSON_IsObject(sla) && sla->child) {
		struct table t = { .ncols = 6 };
		fprintf(out, "\n");
		table_row(&t, (const char *const[]){ "CLASS", "REQUESTS", "ON TIME", "LATE", "REFUSED", "COMPLIANCE" });
		for (const cJSON *c = sla->child; c; c = c->next) {
			char req[16] = "-", ontime[16] = "-", late[16] = "-", refused[16] = "-", comp[16];
			if (cJSON_IsObject(c)) {
				fmt_u(c, "requests", req, sizeof(req));
				fmt_u(c, "on_time", ontime, sizeof(ontime));
				fmt_u(c, "late", late, sizeof(late));
				fmt_u(c, "refused", refused, sizeof(refused));
			}
			fmt_pct(compliance_of(c), comp, sizeof(comp));
			table_row(&t, (const char *const[]){ c->string, req, ontime, late, refused, comp });
		}
		table_print(&t, out);
	}
}

/* The site view: one line on the site, a table of members, one line per site deployment. */
static void state_site(FILE *out, const cJSON *v)
{
	if (!cJSON_IsObject(v))
		return;
	const cJSON *lease = cJSON_GetObjectItemCaseSensitive(v, "lease");
	fprintf(out, "\nsite: %s is %s, leader %s, lease %s; term %" PRId64 ", log applied %" PRId64
		     ", deployments version %" PRId64 "\n",
		str(v, "self") ? str(v, "self") : "?", str(v, "role") ? str(v, "role") : "?",
		str(v, "leader") ? str(v, "leader") : "none", cJSON_IsTrue(lease) ? "held" : "NOT held (site replicas stopped)",
		num_i64(v, "term", 0), num_i64(v, "applied", 0), num_i64(v, "version", 0));
	const cJSON *ms = cJSON_GetObjectItemCaseSensitive(v, "members");
	if (cJSON_IsArray(ms) && ms->child) {
		struct table t = { .ncols = 6 };
		table_row(&t, (const char *const[]){ "MEMBER", "ADDRESS", "UP", "CPU", "MEMORY", "HEARD" });
		for (const cJSON *m = ms->child; m; m = m->next) {
			char cpu[24], mem[24], heard[24];
			snprintf(cpu, sizeof(cpu), "%" PRId64 "m", num_i64(m, "cpu_milli", 0));
			snprintf(mem, sizeof(mem), "%" PRId64 "MiB", num_i64(m, "mem_bytes", 0) >> 20);
			snprintf(heard, sizeof(heard), "%" PRId64 " ms ago", num_i64(m, "heard_ms_ago", 0));
			table_row(&t, (const char *const[]){ str(m, "id"), str(m, "address"),
							      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "up")) ? "yes" : "no",
							      cpu, mem, heard });
		}
		table_print(&t, out);
	}
	const cJSON *ds = cJSON_GetObjectItemCaseSensitive(v, "deployments");
	for (const cJSON *d = cJSON_IsArray(ds) ? ds->child : NULL; d; d = d->next) {
		fprintf(out, "  %s: replicas on", str(d, "name") ? str(d, "name") : "?");
		const cJSON *as = cJSON_GetObjectItemCaseSensitive(d, "assigned");
		for (const cJSON *a = cJSON_IsArray(as) ? as->child : NULL; a; a = a->next)
			fprintf(out, " %s", cJSON_IsString(a) ? a->valuestring : "(unplaced)");
		const char *why = str(d, "why");
		if (why && why[0])
			fprintf(out, "; unplaceable: %s", why);
		fprintf(out, "\n");
	}
}

int ctl_fmt_site(FILE *out, const char *device, const char *state_json_text, size_t len, bool json)
{
	cJSON *root = cJSON_ParseWithLength(state_json_text, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "site");
	if (json) {
		char *s = cJSON_IsObject(v) ? cJSON_PrintUnformatted(v) : NULL;
		fprintf(out, "%s\n", s ? s : "null");
		free(s);
	} else if (!cJSON_IsObject(v)) {
		fprintf(out, "%s is not in a site\n", device);
	} else {
		state_site(out, v);
	}
	cJSON_Delete(root);
	return 0;
}

int ctl_fmt_state(FILE *out, const char *device, const struct ctl_status *st, const char *state_json_text,
		  size_t len, int64_t now_ms, bool json)
{
	cJSON *root = cJSON_ParseWithLength(state_json_text, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	if (json) {
		state_json(out, device, st, root);
		cJSON_Delete(root);
		return 0;
	}
	char presence[160], age[32];
	ctl_fmt_presence(st, now_ms, presence, sizeof(presence));
	fprintf(out, "device %s: %s", device, presence);
	int64_t dv = num_i64(root, "desired_version", -1);
	if (dv >= 0)
		fprintf(out, "; desired version %" PRId64, dv);
	int64_t ts = num_i64(root, "ts", 0);
	if (ts) {
		ctl_fmt_age(now_ms, ts, age, sizeof(age));
		fprintf(out, "; state reported %s", age);
	}
	fprintf(out, "\n");
	const cJSON *engine = cJSON_GetObjectItemCaseSensitive(root, "engine");
	if (cJSON_IsBool(engine) || cJSON_IsString(engine))
		fprintf(out, "engine: %s\n",
			cJSON_IsString(engine) ? engine->valuestring : cJSON_IsTrue(engine) ? "available" : "unavailable");

	state_deployments(out, cJSON_GetObjectItemCaseSensitive(root, "deployments"));
	state_sla(out, cJSON_GetObjectItemCaseSensitive(root, "sla"));
	state_chaos(out, cJSON_GetObjectItemCaseSensitive(root, "chaos"));
	state_site(out, cJSON_GetObjectItemCaseSensitive(root, "site"));
	cJSON_Delete(root);
	return 0;
}

/* --- replies ------------------------------------------------------------------- */

int ctl_fmt_reply(FILE *out, FILE *err, const char *verb, const char *device, const char *reply, size_t len,
		  const char *what, bool json)
{
	cJSON *root = cJSON_ParseWithLength(reply, len);
	const cJSON *ok = root ? cJSON_GetObjectItemCaseSensitive(root, "ok") : NULL;
	if (!cJSON_IsBool(ok)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	int rc = cJSON_IsTrue(ok) ? 0 : 1;
	if (json) {
		char *s = cJSON_PrintUnformatted(root);
		fprintf(out, "%s\n", s ? s : "{}");
		free(s);
		cJSON_Delete(root);
		return rc;
	}
	if (rc) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
		const char *code = cJSON_IsObject(e) ? str(e, "code") : NULL;
		const char *msg = cJSON_IsObject(e) ? str(e, "message") : NULL;
		fprintf(err, "%s refused the %s command: %s: %s\n", device, verb, code ? code : "error", msg ? msg : "");
		cJSON_Delete(root);
		return rc;
	}
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "result");
	const char *dep = cJSON_IsObject(r) ? str(r, "deployment") : NULL;
	if (!dep)
		dep = "?";
	if (!strcmp(verb, "deploy")) {
		int64_t v = cJSON_IsObject(r) ? num_i64(r, "version", -1) : -1;
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "unchanged")))
			fprintf(out, "%s already runs desired version %" PRId64 " (unchanged)\n", device, v);
		else
			fprintf(out, "%s accepted desired version %" PRId64 "%s%s%s\n", device, v, what ? " (" : "",
				what ? what : "", what ? ")" : "");
	} else if (!strcmp(verb, "scale")) {
		fprintf(out, "%s: %s scaled to %" PRId64 " replicas\n", device, dep, num_i64(r, "replicas", -1));
	} else if (!strcmp(verb, "restart")) {
		fprintf(out, "%s: %s is restarting\n", device, dep);
	} else if (!strcmp(verb, "rollback")) {
		fprintf(out, "%s: %s is rolling back to its last-known-good version\n", device, dep);
	} else if (!strcmp(verb, "remove")) {
		fprintf(out, "%s: %s removed\n", device, dep);
	} else if (!strcmp(verb, "chaos")) {
		fprintf(out, "%s: chaos on %s: a replica killed every %" PRId64 " s for %" PRId64 " s, at least %" PRId64
			     " kept running\n",
			device, dep, num_i64(r, "interval_s", -1), num_i64(r, "duration_s", -1), num_i64(r, "min_running", -1));
	} else {
		char *s = r ? cJSON_PrintUnformatted(r) : NULL;
		fprintf(out, "%s: %s done%s%s\n", device, verb, s ? ": " : "", s ? s : "");
		free(s);
	}
	cJSON_Delete(root);
	return 0;
}

/* --- events and telemetry ---------------------------------------------------- */

static void fmt_bytes(const cJSON *o, const char *key, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
		snprintf(buf, len, "-");
		return;
	}
	double b = v->valuedouble;
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;
	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

static void telemetry_row(FILE *out, int64_t seq, const char *when, const cJSON *data)
{
	const cJSON *node = cJSON_GetObjectItemCaseSensitive(data, "node");
	const cJSON *store = cJSON_GetObjectItemCaseSensitive(data, "store");
	const cJSON *uplink = cJSON_GetObjectItemCaseSensitive(data, "uplink");
	char cpu[16] = "-", mem[24] = "-", load[16] = "-", disk[24] = "-", temp[16] = "-", rows[16] = "-",
	     dropped[24] = "-", up[8] = "-";
	const cJSON *v;
	if (cJSON_IsObject(node)) {
		if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(node, "cpu_pct")))
			snprintf(cpu, sizeof(cpu), "%.1f%%", v->valuedouble);
		const cJSON *tot = cJSON_GetObjectItemCaseSensitive(node, "mem_total_bytes");
		const cJSON *av = cJSON_GetObjectItemCaseSensitive(node, "mem_avail_bytes");
		if (cJSON_IsNumber(tot) && cJSON_IsNumber(av) && tot->valuedouble > 0)
			snprintf(mem, sizeof(mem), "%.1f%%", 100.0 * (1.0 - av->valuedouble / tot->valuedouble));
		if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(node, "load1")))
			snprintf(load, sizeof(load), "%.2f", v->valuedouble);
		fmt_bytes(node, "disk_free_bytes", disk, sizeof(disk));
		if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(node, "temp_c")))
			snprintf(temp, sizeof(temp), "%.1f C", v->valuedouble);
	}
	if (cJSON_IsObject(store)) {
		fmt_u(store, "rows", rows, sizeof(rows));
		const cJSON *dt = cJSON_GetObjectItemCaseSensitive(store, "dropped_telemetry");
		const cJSON *de = cJSON_GetObjectItemCaseSensitive(store, "dropped_events");
		if (cJSON_IsNumber(dt) || cJSON_IsNumber(de))
			snprintf(dropped, sizeof(dropped), "%.0f", (cJSON_IsNumber(dt) ? dt->valuedouble : 0) +
									 (cJSON_IsNumber(de) ? de->valuedouble : 0));
	}
	if (cJSON_IsObject(uplink) && cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(uplink, "connected")))
		snprintf(up, sizeof(up), "%s", cJSON_IsTrue(v) ? "yes" : "no");
	fprintf(out, "%-19s  %8" PRId64 "  %6s  %6s  %6s  %10s  %7s  %8s  %7s  %s\n", when, seq, cpu, mem, load, disk,
		temp, rows, dropped, up);
}

static void event_row(FILE *out, int64_t seq, const char *when, const cJSON *data)
{
	/* berthd's rows are {"event": TYPE, "detail": {..}}; "type" is read too. */
	const char *key = cJSON_IsObject(data) && str(data, "event") ? "event" : "type";
	const char *type = cJSON_IsObject(data) ? str(data, key) : NULL;
	const cJSON *detail = cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, "detail") : NULL;
	char *d = NULL;
	if (detail) {
		d = cJSON_PrintUnformatted(detail);
	} else if (data) {
		/* Everything but the type. */
		cJSON *copy = cJSON_Duplicate(data, true);
		if (copy && cJSON_IsObject(copy))
			cJSON_DeleteItemFromObjectCaseSensitive(copy, key);
		d = copy ? cJSON_PrintUnformatted(copy) : NULL;
		cJSON_Delete(copy);
	}
	fprintf(out, "%-19s  %8" PRId64 "  %-22s  %s\n", when, seq, type ? type : "-", d ? d : "-");
	free(d);
}

int ctl_fmt_batch(FILE *out, enum ctl_stream kind, const char *batch, size_t len, bool json, bool *header,
		  uint32_t max_rows)
{
	cJSON *root = cJSON_ParseWithLength(batch, len);
	const cJSON *rows = root ? cJSON_GetObjectItemCaseSensitive(root, "rows") : NULL;
	if (!cJSON_IsArray(rows)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	if (!json && !*header) {
		if (kind == CTL_STREAM_TELEMETRY)
			fprintf(out, "%-19s  %8s  %6s  %6s  %6s  %10s  %7s  %8s  %7s  %s\n", "TIME", "SEQ", "CPU", "MEM",
				"LOAD1", "DISK FREE", "TEMP", "BUFFERED", "DROPPED", "UPLINK");
		else
			fprintf(out, "%-19s  %8s  %-22s  %s\n", "TIME", "SEQ", "TYPE", "DETAIL");
		*header = true;
	}
	int n = 0;
	for (const cJSON *r = rows->child; r && (!max_rows || (uint32_t)n < max_rows); r = r->next) {
		if (!cJSON_IsObject(r))
			continue;
		int64_t seq = num_i64(r, "seq", -1), ts = num_i64(r, "ts", 0);
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(r, "data");
		if (json) {
			char *s = cJSON_PrintUnformatted(r);
			if (s)
				fprintf(out, "%s\n", s);
			free(s);
		} else {
			char when[32];
			ctl_fmt_time(ts, when, sizeof(when));
			if (kind == CTL_STREAM_TELEMETRY)
				telemetry_row(out, seq, when, data);
			else
				event_row(out, seq, when, data);
		}
		n++;
	}
	fflush(out);
	cJSON_Delete(root);
	return n;
}
