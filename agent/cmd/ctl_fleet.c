/* agent/cmd/ctl_fleet.c - berthctl's fleet commands: group members, group commands, staged rollouts over the broker. */
#include "agent/cmd/ctl_fleet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/base/loop.h"
#include "agent/cmd/ctl_rollout.h"
#include "agent/cmd/ctl_session.h"
#include "agent/cmd/ctl_sign.h"
#include "hal/clock.h"

#define FLEET_MAX 10000          /* devices tracked at most; more are counted and said */
#define FLEET_INFLIGHT 256       /* unacknowledged publishes at most (retained desired states, commands) */
#define TICK_MS 250              /* the gate looks at the devices this often */

struct fdev {
	char id[64];
	struct ctl_status st;
	char *reported;                 /* retained state/reported, owned */
	size_t rlen;
	bool member;
	char *desired;                  /* retained state/desired as on the broker, owned; NULL none */
	uint64_t desired_version;       /* its version; 0 none */
	/* group command / rollback replies */
	int reply;                      /* 0 none, 1 accepted, 2 refused */
	char reply_err[160];
	unsigned rb_sent, rb_answered, rb_ok; /* rollback commands sent / answered / accepted */
	/* rollout */
	struct ctl_dev_base base;
	struct ctl_dev_eval ev;
	char *prev_desired;             /* the retained desired state we replaced (restored on a halt), owned */
	bool published;
	int64_t watch_ms;               /* wall ms its wave started: its trust_refused events since count */
};

struct ctl_fleet {
	struct fdev *d;
	size_t n, cap, dropped;
	size_t *members;                /* indexes into d of the group's members, sorted by id */
	size_t nmembers;
	char reply_suffix[96];          /* "/cmd/<verb>/reply" */
	char cmd_id[64];                /* the group command's id; rollbacks: its prefix */
	size_t replies;
};

void ctl_fleet_destroy(struct ctl_fleet *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->d[i].reported);
		free(f->d[i].desired);
		free(f->d[i].prev_desired);
	}
	free(f->d);
	free(f->members);
	free(f);
}

static struct fdev *fleet_slot(struct ctl_fleet *f, const char *id, size_t idlen)
{
	if (idlen == 0 || idlen >= sizeof(f->d[0].id))
		return NULL;
	for (size_t i = 0; i < f->n; i++)
		if (strncmp(f->d[i].id, id, idlen) == 0 && f->d[i].id[idlen] == '\0')
			return &f->d[i];
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct fdev *d = f->n < FLEET_MAX ? realloc(f->d, (cap > FLEET_MAX ? FLEET_MAX : cap) * sizeof(*d)) : NULL;
		if (!d) {
			f->dropped++;
			return NULL;
		}
		f->d = d;
		f->cap = cap > FLEET_MAX ? FLEET_MAX : cap;
	}
	struct fdev *x = &f->d[f->n++];
	memset(x, 0, sizeof(*x));
	memcpy(x->id, id, idlen);
	return x;
}

/* A retained state/desired: its version (0 for an empty, deleting message). */
static void on_desired(struct fdev *d, const struct uplink_msg *m)
{
	free(d->desired);
	d->desired = m->len ? ctl_dup_payload(m) : NULL;
	d->desired_version = 0;
	cJSON *root = d->desired ? cJSON_ParseWithLength(d->desired, m->len) : NULL;
	const cJSON *v = root ? cJSON_GetObjectItemCaseSensitive(root, "version") : NULL;
	if (cJSON_IsNumber(v) && v->valuedouble >= 0)
		d->desired_version = (uint64_t)v->valuedouble;
	cJSON_Delete(root);
}

/* A reply on berth/v1/<device>/cmd/<verb>/reply: ours when its id is ours. */
static void on_reply(struct ctl_fleet *f, struct fdev *d, const struct uplink_msg *m)
{
	cJSON *root = cJSON_ParseWithLength(m->payload, m->len);
	const cJSON *id = root ? cJSON_GetObjectItemCaseSensitive(root, "id") : NULL;
	size_t pl = strlen(f->cmd_id);
	if (!cJSON_IsString(id) || !f->cmd_id[0] || strncmp(id->valuestring, f->cmd_id, pl) != 0 ||
	    (id->valuestring[pl] && id->valuestring[pl] != '.')) {
		cJSON_Delete(root);
		return;
	}
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "ok");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	const cJSON *code = e ? cJSON_GetObjectItemCaseSensitive(e, "code") : NULL;
	const cJSON *msg = e ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
	bool accepted = cJSON_IsTrue(ok) ||
			(cJSON_IsString(code) && strcmp(code->valuestring, "already_last_known_good") == 0);
	if (id->valuestring[pl] == '.') { /* a rollback of the rollout */
		d->rb_answered++;
		d->rb_ok += accepted;
	} else if (!d->reply && d->member) {
		f->replies++;
	}
	if (!d->reply || id->valuestring[pl] == '.') {
		d->reply = accepted ? 1 : 2;
		if (!accepted)
			snprintf(d->reply_err, sizeof(d->reply_err), "%s: %s", cJSON_IsString(code) ? code->valuestring : "?",
				 cJSON_IsString(msg) ? msg->valuestring : "");
	}
	cJSON_Delete(root);
}

/* An event batch: a trust_refused row since the device's wave started means
 * it refused what we sent (a bad signature, another target, an older version). */
static void on_events(struct fdev *d, const struct uplink_msg *m)
{
	if (d->watch_ms && !d->base.refused &&
	    ctl_events_refusal(m->payload, m->len, d->watch_ms, d->base.refused_why, sizeof(d->base.refused_why)))
		d->base.refused = true;
}

static void on_fleet_message(struct ctl *c, const struct uplink_msg *m)
{
	struct ctl_fleet *f = c->fleet;
	const char *p = m->topic + strlen("berth/v1/");
	const char *slash = strchr(p, '/');
	if (strncmp(m->topic, "berth/v1/", 9) != 0 || !slash)
		return;
	struct fdev *d = fleet_slot(f, p, (size_t)(slash - p));
	if (!d)
		return;
	if (strcmp(slash, "/status") == 0) {
		if (m->len && ctl_status_parse(m->payload, m->len, &d->st))
			return;
	} else if (strcmp(slash, "/state/reported") == 0) {
		free(d->reported);
		d->reported = m->len ? ctl_dup_payload(m) : NULL;
		d->rlen = d->reported ? m->len : 0;
		d->member = ctl_reported_in_group(d->reported, d->rlen, c->a->group);
		ctl_status_seen(&d->st, ctl_payload_ts(m->payload, m->len));
	} else if (strcmp(slash, "/state/desired") == 0) {
		on_desired(d, m);
	} else if (strcmp(slash, "/events") == 0) {
		on_events(d, m);
	} else if (strcmp(slash, f->reply_suffix) == 0) {
		on_reply(f, d, m);
	}
}

static int by_id(const void *a, const void *b, void *arg)
{
	const struct ctl_fleet *f = arg;
	return strcmp(f->d[*(const size_t *)a].id, f->d[*(const size_t *)b].id);
}

/* The group's members now, sorted by device id. */
static int collect_members(struct ctl_fleet *f)
{
	free(f->members);
	f->members = malloc((f->n ? f->n : 1) * sizeof(*f->members));
	if (!f->members)
		return -ENOMEM;
	f->nmembers = 0;
	for (size_t i = 0; i < f->n; i++)
		if (f->d[i].member)
			f->members[f->nmembers++] = i;
	qsort_r(f->members, f->nmembers, sizeof(*f->members), by_id, f);
	return 0;
}

/* Subscribes to every device's status and reported state (plus the retained
 * desired states and a reply topic when asked), connects and waits for the
 * retained messages. Returns an exit code. */
static int fleet_start(struct ctl *c, bool desired, const char *reply_verb)
{
	c->fleet = calloc(1, sizeof(*c->fleet));
	if (!c->fleet)
		return CTL_EXIT_USAGE;
	c->on_msg = on_fleet_message;
	c->max_queued = FLEET_INFLIGHT;
	ctl_add_sub(c, "berth/v1/+/status", 0);
	ctl_add_sub(c, "berth/v1/+/state/reported", 0);
	if (desired) { /* a rollout: the retained desired states, and the events (refusals) */
		ctl_add_sub(c, "berth/v1/+/state/desired", 0);
		ctl_add_sub(c, "berth/v1/+/events", 1);
	}
	if (reply_verb) {
		char t[CTL_TOPIC_MAX];
		snprintf(c->fleet->reply_suffix, sizeof(c->fleet->reply_suffix), "/cmd/%s/reply", reply_verb);
		snprintf(t, sizeof(t), "berth/v1/+/cmd/%s/reply", reply_verb);
		ctl_add_sub(c, t, 1);
	}
	int rc = ctl_session_start(c);
	if (rc)
		return rc;
	if (c->fleet->dropped)
		fprintf(stderr, "berthctl: %zu devices beyond the first %d were not tracked\n", c->fleet->dropped, FLEET_MAX);
	return collect_members(c->fleet) ? CTL_EXIT_USAGE : CTL_EXIT_OK;
}

static void nobody(const struct ctl *c)
{
	fprintf(stderr, "berthctl: group %s reaches nobody: no device on this broker reports it in its groups "
			"(fleet.groups in its config, or groups in its desired state); nothing was sent\n",
		c->a->group);
}

/* --- devices --group ----------------------------------------------------------- */

static void print_member(const struct ctl *c, const struct fdev *d, bool first)
{
	struct ctl_rollout none = { 0 };
	struct ctl_dev_eval ev;
	(void)ctl_rollout_eval(&none, d->reported, d->rlen, NULL, &ev);
	cJSON *root = cJSON_ParseWithLength(d->reported, d->rlen);
	const cJSON *deps = root ? cJSON_GetObjectItemCaseSensitive(root, "deployments") : NULL;
	int total = 0, ready = 0, restarts = 0;
	for (const cJSON *x = cJSON_IsArray(deps) ? deps->child : NULL; x; x = x->next) {
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(x, "replicas_ready");
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(x, "replicas_desired");
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(x, "restarts");
		total++;
		ready += cJSON_IsNumber(r) && cJSON_IsNumber(w) && r->valuedouble >= w->valuedouble;
		restarts += cJSON_IsNumber(n) ? (int)n->valuedouble : 0;
	}
	cJSON_Delete(root);
	char seen[48];
	ctl_fmt_age(hal_clock_wall_ms(), d->st.last_seen_ms, seen, sizeof(seen));
	if (c->a->json)
		printf("%s{\"device\":\"%s\",\"online\":%s,\"last_seen_ms\":%lld,\"desired_version\":%llu,"
		       "\"deployments\":%d,\"ready\":%d,\"restarts\":%d}",
		       first ? "" : ",", d->id, d->st.known ? (d->st.online ? "true" : "false") : "null",
		       (long long)d->st.last_seen_ms, (unsigned long long)ev.desired_version, total, ready, restarts);
	else
		printf("%-24s %-8s %-8llu %d/%-10d %-9d %s\n", d->id, !d->st.known ? "unknown" : d->st.online ? "online" : "offline",
		       (unsigned long long)ev.desired_version, ready, total, restarts, d->st.last_seen_ms ? seen : "-");
}

int ctl_fleet_devices(struct ctl *c)
{
	int rc = fleet_start(c, false, NULL);
	if (rc)
		return rc;
	struct ctl_fleet *f = c->fleet;
	if (!c->a->json)
		printf("%-24s %-8s %-8s %-12s %-9s %s\n", "DEVICE", "STATUS", "DESIRED", "READY", "RESTARTS", "LAST SEEN");
	else
		printf("[");
	for (size_t i = 0; i < f->nmembers; i++)
		print_member(c, &f->d[f->members[i]], i == 0);
	if (c->a->json)
		printf("]\n");
	if (!f->nmembers)
		fprintf(stderr, "berthctl: no device on this broker reports group %s\n", c->a->group);
	return CTL_EXIT_OK;
}

/* --- group commands -------------------------------------------------------------- */

static bool all_replied(const struct ctl *c) { return c->fleet->replies >= c->fleet->nmembers; }

static void print_replies(const struct ctl *c, const char *verb)
{
	const struct ctl_fleet *f = c->fleet;
	size_t refused = 0, missing = 0;
	if (c->a->json)
		printf("{\"group\":\"%s\",\"verb\":\"%s\",\"id\":\"%s\",\"members\":%zu,\"replied\":%zu,\"devices\":[",
		       c->a->group, verb, f->cmd_id, f->nmembers, f->replies);
	for (size_t i = 0; i < f->nmembers; i++) {
		const struct fdev *d = &f->d[f->members[i]];
		refused += d->reply == 2;
		missing += d->reply == 0;
		if (c->a->json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "device", d->id);
			cJSON_AddStringToObject(o, "reply", d->reply == 1 ? "ok" : d->reply == 2 ? "refused" : "none");
			if (d->reply == 2)
				cJSON_AddStringToObject(o, "error", d->reply_err);
			char *t = cJSON_PrintUnformatted(o);
			printf("%s%s", i ? "," : "", t ? t : "{}");
			free(t);
			cJSON_Delete(o);
		} else if (d->reply == 2) {
			printf("%-24s refused  %s\n", d->id, d->reply_err);
		} else if (d->reply == 1) {
			printf("%-24s ok\n", d->id);
		}
	}
	if (c->a->json) {
		printf("]}\n");
		return;
	}
	printf("group %s: %zu of %zu members replied to %s (%zu refused)", c->a->group, f->replies, f->nmembers, verb,
	       refused);
	if (missing) {
		printf("; no reply within %s from:", ctl_secs(c));
		for (size_t i = 0, k = 0; i < f->nmembers && k < 50; i++)
			if (!f->d[f->members[i]].reply && ++k)
				printf(" %s", f->d[f->members[i]].id);
		if (missing > 50)
			printf(" (and %zu more)", missing - 50);
	}
	printf("\n");
}

int ctl_fleet_command(struct ctl *c, const char *verb, cJSON *args)
{
	int rc = fleet_start(c, false, verb);
	if (rc) {
		cJSON_Delete(args);
		return rc;
	}
	struct ctl_fleet *f = c->fleet;
	if (!f->nmembers) {
		cJSON_Delete(args);
		nobody(c);
		return CTL_EXIT_USAGE;
	}
	snprintf(f->cmd_id, sizeof(f->cmd_id), "%.40s-g1", c->client_id);
	char target[ENVELOPE_TARGET_MAX + 1], topic[CTL_TOPIC_MAX];
	snprintf(target, sizeof(target), "group:%s", c->a->group);
	char *payload = ctl_command_payload(c, f->cmd_id, verb, args, target);
	if (!payload)
		return CTL_EXIT_USAGE;
	snprintf(topic, sizeof(topic), "berth/v1/group/%s/cmd/%s", c->a->group, verb);
	/* No response topic: each member answers on its own berth/v1/<device>/cmd/<verb>/reply. */
	rc = ctl_publish(c, topic, payload, false, c->a->expire_s);
	free(payload);
	if (rc) {
		fprintf(stderr, "berthctl: could not publish to %s: %s\n", topic, strerror(-rc));
		return CTL_EXIT_BROKER;
	}
	(void)ctl_run_until(c, all_replied, ctl_now_ms() + c->a->timeout_ms);
	print_replies(c, verb);
	for (size_t i = 0; i < f->nmembers; i++)
		if (f->d[f->members[i]].reply == 2)
			return CTL_EXIT_REFUSED;
	return f->replies < f->nmembers ? CTL_EXIT_TIMEOUT : CTL_EXIT_OK;
}

/* --- rollout ------------------------------------------------------------------------ */

enum wave_state { W_WAITING = 0, W_DONE_EARLIER, W_APPLYING, W_SOAKING, W_PASSED, W_FAILED };
static const char *const wave_state_names[] = { "waiting", "done (earlier run)", "applying", "soaking", "passed",
						"failed" };

struct rollout {
	struct ctl *c;
	struct ctl_rollout r;
	size_t start[CTL_ROLLOUT_MAX_WAVES + 2];
	unsigned nw;
	bool canary;
	uint64_t t0_ms;
	bool live;                      /* a live table on a terminal */
	unsigned drawn;                 /* lines of the table drawn last */
	enum wave_state ws[CTL_ROLLOUT_MAX_WAVES + 1];
	size_t applied[CTL_ROLLOUT_MAX_WAVES + 1], ready[CTL_ROLLOUT_MAX_WAVES + 1],
		failed[CTL_ROLLOUT_MAX_WAVES + 1];
};

static struct fdev *wdev(struct rollout *ro, size_t k) { return &ro->c->fleet->d[ro->c->fleet->members[k]]; }
static double since_s(const struct rollout *ro) { return (double)(ctl_now_ms() - ro->t0_ms) / 1000.0; }

/* Evaluates every device of wave w; counts into applied/ready/failed[w]. */
static void eval_wave(struct rollout *ro, unsigned w)
{
	ro->applied[w] = ro->ready[w] = ro->failed[w] = 0;
	for (size_t k = ro->start[w]; k < ro->start[w + 1]; k++) {
		struct fdev *d = wdev(ro, k);
		enum ctl_dev_phase p = ctl_rollout_eval(&ro->r, d->reported, d->rlen, &d->base, &d->ev);
		ro->applied[w] += d->ev.desired_version >= ro->r.version;
		ro->ready[w] += p == CTL_DEV_READY;
		ro->failed[w] += p == CTL_DEV_FAILED;
	}
}

/* The live table: redrawn in place on a terminal. */
static void draw(struct rollout *ro)
{
	if (!ro->live)
		return;
	if (ro->drawn)
		printf("\033[%uA", ro->drawn);
	printf("\033[Krollout of version %llu to group %s: %zu devices, %.0f s\n", (unsigned long long)ro->r.version,
	       ro->c->a->group, ro->start[ro->nw], since_s(ro));
	printf("\033[K%-8s %-8s %-20s %-8s %-6s %s\n", "WAVE", "DEVICES", "STATE", "APPLIED", "READY", "FAILED");
	for (unsigned w = 0; w < ro->nw; w++) {
		char name[16];
		snprintf(name, sizeof(name), ro->canary && w == 0 ? "canary" : "%u", ro->canary ? w : w + 1);
		printf("\033[K%-8s %-8zu %-20s %-8zu %-6zu %zu\n", name, ro->start[w + 1] - ro->start[w],
		       wave_state_names[ro->ws[w]], ro->applied[w], ro->ready[w], ro->failed[w]);
	}
	ro->drawn = ro->nw + 2;
	fflush(stdout);
}

/* One line of progress: a JSON object with --json, text when not live. */
static void note(struct rollout *ro, unsigned w, const char *state, const char *text)
{
	if (ro->c->a->json)
		printf("{\"event\":\"wave\",\"wave\":%u,\"of\":%u,\"canary\":%s,\"devices\":%zu,\"state\":\"%s\","
		       "\"applied\":%zu,\"ready\":%zu,\"failed\":%zu,\"t_s\":%.1f}\n",
		       w, ro->nw, ro->canary && w == 0 ? "true" : "false", ro->start[w + 1] - ro->start[w], state,
		       ro->applied[w], ro->ready[w], ro->failed[w], since_s(ro));
	else if (!ro->live)
		printf("wave %u/%u%s (%zu device%s): %s\n", w + 1, ro->nw, ro->canary && w == 0 ? " canary" : "",
		       ro->start[w + 1] - ro->start[w], ro->start[w + 1] - ro->start[w] == 1 ? "" : "s", text);
	fflush(stdout);
}

/* The desired state of one device: the rollout's set, the device's groups
 * kept from its current desired state, signed for it. malloc'ed or NULL. */
static char *desired_for(struct rollout *ro, const struct fdev *d)
{
	char *groups = NULL;
	cJSON *prev = d->desired ? cJSON_Parse(d->desired) : NULL;
	const cJSON *g = prev ? cJSON_GetObjectItemCaseSensitive(prev, "groups") : NULL;
	if (cJSON_IsArray(g))
		groups = cJSON_PrintUnformatted(g);
	cJSON_Delete(prev);
	size_t n = strlen(ro->r.deployments_json) + (groups ? strlen(groups) : 0) + 96;
	char *doc = malloc(n);
	if (doc)
		snprintf(doc, n, "{\"schema\":1,\"version\":%llu,\"deployments\":%s%s%s}", (unsigned long long)ro->r.version,
			 ro->r.deployments_json, groups ? ",\"groups\":" : "", groups ? groups : "");
	free(groups);
	if (!doc)
		return NULL;
	char target[ENVELOPE_TARGET_MAX + 1];
	snprintf(target, sizeof(target), "device:%s", d->id);
	char *out = ctl_sign_text(doc, strlen(doc), "desired", ro->c->key_id, ro->c->priv, target, 0);
	free(doc);
	return out;
}

/* Publishes wave w's retained desired states (devices whose retained one is
 * already the rollout's are left alone: a resumed run). Each device's
 * counters now are the baseline of the gate's bounds. */
static int publish_wave(struct rollout *ro, unsigned w, size_t *published)
{
	*published = 0;
	for (size_t k = ro->start[w]; k < ro->start[w + 1]; k++) {
		struct fdev *d = wdev(ro, k);
		(void)ctl_rollout_eval(&ro->r, d->reported, d->rlen, NULL, &d->ev);
		d->base = (struct ctl_dev_base){ .set = true, .restarts = d->ev.restarts };
		d->watch_ms = hal_clock_wall_ms();
		if (d->desired_version >= ro->r.version || d->ev.desired_version >= ro->r.version)
			continue;
		char *doc = desired_for(ro, d);
		if (!doc)
			return -ENOMEM;
		char topic[CTL_TOPIC_MAX];
		snprintf(topic, sizeof(topic), "berth/v1/%s/state/desired", d->id);
		int rc = ctl_publish(ro->c, topic, doc, true, 0);
		free(doc);
		if (rc) {
			fprintf(stderr, "berthctl: could not publish to %s: %s\n", topic, strerror(-rc));
			return rc;
		}
		free(d->prev_desired);
		d->prev_desired = d->desired ? strdup(d->desired) : NULL;
		d->published = true;
		(*published)++;
	}
	return 0;
}

static bool never_done(const struct ctl *c)
{
	(void)c;
	return false;
}

/* Waits for wave w's gate: every device at the version, ready and within
 * bounds for soak_s, within ready_timeout_s. Returns 0 passed, -EPIPE failed,
 * -EINTR interrupted. */
static int gate(struct rollout *ro, unsigned w)
{
	uint64_t t_start = ctl_now_ms(), soak_since = 0;
	size_t n = ro->start[w + 1] - ro->start[w];
	ro->ws[w] = W_APPLYING;
	for (;;) {
		(void)ctl_run_until(ro->c, never_done, ctl_now_ms() + TICK_MS);
		if (ctl_interrupted)
			return -EINTR;
		eval_wave(ro, w);
		uint64_t now = ctl_now_ms();
		if (ro->failed[w])
			return -EPIPE;
		if (ro->ready[w] == n) {
			if (!soak_since) {
				soak_since = now;
				ro->ws[w] = W_SOAKING;
				note(ro, w, "soaking", "every device ready; soaking");
			}
			if (now - soak_since >= (uint64_t)ro->r.soak_s * 1000)
				return 0;
		} else if (soak_since) { /* one fell out of ready: the soak starts again once all are back */
			soak_since = 0;
			ro->ws[w] = W_APPLYING;
		}
		if (!soak_since && now - t_start >= (uint64_t)ro->r.ready_timeout_s * 1000) {
			for (size_t k = ro->start[w]; k < ro->start[w + 1]; k++) {
				struct fdev *d = wdev(ro, k);
				if (d->ev.phase != CTL_DEV_READY) {
					char why[sizeof(d->ev.why) + 48];
					snprintf(why, sizeof(why), "not ready within %u s: %s", ro->r.ready_timeout_s, d->ev.why);
					snprintf(d->ev.why, sizeof(d->ev.why), "%.*s", (int)sizeof(d->ev.why) - 1, why);
					d->ev.phase = CTL_DEV_FAILED;
					ro->failed[w]++;
				}
			}
			return -EPIPE;
		}
		draw(ro);
	}
}

static void device_failed(struct rollout *ro, unsigned w, const struct fdev *d)
{
	if (ro->c->a->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "event", "device_failed");
		cJSON_AddNumberToObject(o, "wave", w);
		cJSON_AddStringToObject(o, "device", d->id);
		cJSON_AddStringToObject(o, "why", d->ev.why);
		char *t = cJSON_PrintUnformatted(o);
		printf("%s\n", t ? t : "{}");
		free(t);
		cJSON_Delete(o);
	} else {
		printf("  %s failed: %s\n", d->id, d->ev.why);
	}
}

/* Rolls wave w back: a device that applied the version gets the rollback
 * command (its last-known-good, docs/images.md) for each deployment of the
 * set; one that did not gets its previous retained desired state back (none
 * known: the retained one is cleared), so it never applies the version. */
static int rollback_wave(struct rollout *ro, unsigned w)
{
	struct ctl *c = ro->c;
	size_t sent = 0;
	int rc = 0;
	for (size_t k = ro->start[w]; k < ro->start[w + 1] && !rc; k++) {
		struct fdev *d = wdev(ro, k);
		char topic[CTL_TOPIC_MAX], target[ENVELOPE_TARGET_MAX + 1], id[96];
		d->reply = 0;
		if (d->ev.desired_version < ro->r.version) {
			snprintf(topic, sizeof(topic), "berth/v1/%s/state/desired", d->id);
			rc = ctl_publish(c, topic, d->prev_desired ? d->prev_desired : "", true, 0);
			continue;
		}
		snprintf(target, sizeof(target), "device:%s", d->id);
		snprintf(topic, sizeof(topic), "berth/v1/%s/cmd/rollback", d->id);
		for (unsigned i = 0; i < ro->r.ndeps && !rc; i++) {
			cJSON *args = cJSON_CreateObject();
			cJSON_AddStringToObject(args, "deployment", ro->r.dep[i].name);
			snprintf(id, sizeof(id), "%s.%zu.%u", c->fleet->cmd_id, k, i);
			char *payload = ctl_command_payload(c, id, "rollback", args, target);
			rc = payload ? ctl_publish(c, topic, payload, false, c->a->expire_s) : -ENOMEM;
			free(payload);
			d->rb_sent += !rc;
			sent += !rc;
		}
	}
	if (rc)
		fprintf(stderr, "berthctl: rolling back wave %u: %s\n", w + 1, strerror(-rc));
	if (!ctl_flush(c))
		fprintf(stderr, "berthctl: the broker did not acknowledge every rollback within %s\n", ctl_secs(c));
	uint64_t deadline = ctl_now_ms() + c->a->timeout_ms;
	size_t answered = 0;
	while (answered < sent && ctl_now_ms() < deadline && !ctl_interrupted) {
		(void)ctl_run_until(c, never_done, ctl_now_ms() + TICK_MS);
		answered = 0;
		for (size_t k = ro->start[w]; k < ro->start[w + 1]; k++)
			answered += wdev(ro, k)->rb_answered;
	}
	for (size_t k = ro->start[w]; k < ro->start[w + 1]; k++) {
		const struct fdev *d = wdev(ro, k);
		if (!d->rb_sent)
			continue;
		const char *how = d->rb_answered < d->rb_sent ? "no answer to a rollback command"
				  : d->rb_ok == d->rb_sent ? "rolled back to its last-known-good"
							   : d->reply_err;
		if (c->a->json) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "event", "rollback");
			cJSON_AddStringToObject(o, "device", d->id);
			cJSON_AddBoolToObject(o, "ok", d->rb_ok == d->rb_sent);
			cJSON_AddStringToObject(o, "detail", how);
			char *t = cJSON_PrintUnformatted(o);
			printf("%s\n", t ? t : "{}");
			free(t);
			cJSON_Delete(o);
		} else {
			printf("  %s: %s\n", d->id, how);
		}
	}
	return rc;
}

/* A wave whose devices all passed and whose next wave has started was done
 * by an earlier run: it is not soaked again. */
static bool done_earlier(struct rollout *ro, unsigned w)
{
	eval_wave(ro, w);
	if (ro->ready[w] != ro->start[w + 1] - ro->start[w] || w + 1 >= ro->nw)
		return false;
	for (size_t k = ro->start[w + 1]; k < ro->start[w + 2]; k++)
		if (wdev(ro, k)->desired_version >= ro->r.version || wdev(ro, k)->ev.desired_version >= ro->r.version)
			return true;
	return false;
}

/* The last line: what happened, for people and for scripts (bench-fleet reads rollout_s). */
static void summary(struct rollout *ro, const char *result, int halted_wave)
{
	size_t n = ro->start[ro->nw], updated = 0, failed = 0;
	for (size_t k = 0; k < n; k++) {
		updated += wdev(ro, k)->ev.phase == CTL_DEV_READY;
		failed += wdev(ro, k)->ev.phase == CTL_DEV_FAILED;
	}
	draw(ro);
	int bad_canary = halted_wave == 0 && ro->canary;
	if (ro->c->a->json)
		printf("{\"event\":\"done\",\"result\":\"%s\",\"group\":\"%s\",\"version\":%llu,\"devices\":%zu,"
		       "\"waves\":%u,\"updated\":%zu,\"failed\":%zu,\"halted_wave\":%d,\"rollout_s\":%.1f,"
		       "\"halted_on_bad_canary\":%d}\n",
		       result, ro->c->a->group, (unsigned long long)ro->r.version, n, ro->nw, updated, failed, halted_wave,
		       since_s(ro), bad_canary);
	else
		printf("rollout of version %llu to group %s: %s; %zu of %zu devices on it, %zu failed, %.1f s%s\n",
		       (unsigned long long)ro->r.version, ro->c->a->group, result, updated, n, failed, since_s(ro),
		       bad_canary ? " (halted at the canary: the rest are untouched)" : "");
}

/* Reads and validates the rollout file before anything is sent. */
static int load_rollout(struct ctl *c, struct ctl_rollout *r)
{
	char err[512];
	size_t len = 0;
	char *text = ctl_read_file(c->a->file, &len, err, sizeof(err));
	if (!text) {
		fprintf(stderr, "berthctl: %s; nothing was sent\n", err);
		return CTL_EXIT_USAGE;
	}
	int rc = ctl_rollout_parse(text, len, r, err, sizeof(err));
	free(text);
	if (rc) {
		fprintf(stderr, "berthctl: %s: %s; nothing was sent\n", c->a->file, rc == -ENOMEM ? "out of memory" : err);
		return CTL_EXIT_USAGE;
	}
	if (!c->has_key) {
		fprintf(stderr, "berthctl: rollout: desired states are signed: a signing key is needed (--sign-key or "
				"$BERTH_SIGN_KEY); nothing was sent\n");
		ctl_rollout_free(r);
		return CTL_EXIT_USAGE;
	}
	return CTL_EXIT_OK;
}

/* A device at the version that failed there (rolled back, crash loop): the
 * rollout was halted by an earlier run; returns its wave, -1 when none. */
static int halted_before(struct rollout *ro)
{
	for (unsigned w = 0; w < ro->nw; w++) {
		eval_wave(ro, w);
		if (ro->failed[w]) {
			ro->ws[w] = W_FAILED;
			for (size_t k = ro->start[w]; k < ro->start[w + 1]; k++)
				if (wdev(ro, k)->ev.phase == CTL_DEV_FAILED)
					device_failed(ro, w, wdev(ro, k));
			return (int)w;
		}
	}
	return -1;
}

/* Runs wave w: publish, gate, pause. 0 passed, -EPIPE halted, -EINTR, or an error. */
static int run_wave(struct rollout *ro, unsigned w)
{
	size_t published = 0;
	int rc = publish_wave(ro, w, &published);
	if (rc)
		return rc;
	char text[96];
	snprintf(text, sizeof(text), "%zu desired states published (%zu already there)", published,
		 ro->start[w + 1] - ro->start[w] - published);
	eval_wave(ro, w);
	note(ro, w, "published", text);
	rc = gate(ro, w);
	if (rc == -EPIPE) {
		ro->ws[w] = W_FAILED;
		note(ro, w, "failed", "the gate failed; halting and rolling the wave back");
		for (size_t k = ro->start[w]; k < ro->start[w + 1]; k++)
			if (wdev(ro, k)->ev.phase == CTL_DEV_FAILED)
				device_failed(ro, w, wdev(ro, k));
		(void)rollback_wave(ro, w);
		return -EPIPE;
	}
	if (rc)
		return rc;
	ro->ws[w] = W_PASSED;
	snprintf(text, sizeof(text), "passed (every device ready for %u s)", ro->r.soak_s);
	note(ro, w, "passed", text);
	if (w + 1 < ro->nw && ro->r.pause_s) {
		(void)ctl_run_until(ro->c, never_done, ctl_now_ms() + (uint64_t)ro->r.pause_s * 1000);
		if (ctl_interrupted)
			return -EINTR;
	}
	return 0;
}

int ctl_fleet_rollout(struct ctl *c)
{
	struct rollout *ro = calloc(1, sizeof(*ro));
	if (!ro)
		return CTL_EXIT_USAGE;
	ro->c = c;
	int rc = load_rollout(c, &ro->r);
	if (rc) {
		free(ro);
		return rc;
	}
	if ((rc = fleet_start(c, true, "rollback")))
		goto out;
	snprintf(c->fleet->cmd_id, sizeof(c->fleet->cmd_id), "%.40s-rb", c->client_id);
	if (!c->fleet->nmembers) {
		nobody(c);
		rc = CTL_EXIT_USAGE;
		goto out;
	}
	ro->t0_ms = ctl_now_ms();
	ro->live = !c->a->json && isatty(STDOUT_FILENO);
	ro->nw = ctl_rollout_plan(&ro->r, c->fleet->nmembers, ro->start, &ro->canary);
	if (c->a->json)
		printf("{\"event\":\"plan\",\"group\":\"%s\",\"version\":%llu,\"devices\":%zu,\"waves\":%u,\"canary\":%zu}\n",
		       c->a->group, (unsigned long long)ro->r.version, c->fleet->nmembers, ro->nw,
		       ro->canary ? ro->start[1] : 0);
	else
		printf("rollout of version %llu to group %s: %zu devices in %u waves%s\n", (unsigned long long)ro->r.version,
		       c->a->group, c->fleet->nmembers, ro->nw, ro->canary ? " (the first a canary)" : "");
	int hw = halted_before(ro);
	if (hw >= 0) {
		summary(ro, c->a->json ? "halted_earlier" : "halted in an earlier run", hw);
		rc = CTL_EXIT_REFUSED;
		goto out;
	}
	unsigned w;
	for (w = 0, rc = 0; w < ro->nw && !rc; w++) {
		if (done_earlier(ro, w)) {
			ro->ws[w] = W_DONE_EARLIER;
			note(ro, w, "done", "done in an earlier run (from the devices' state)");
			continue;
		}
		rc = run_wave(ro, w);
	}
	summary(ro, !rc ? "completed" : rc == -EPIPE ? "halted" : rc == -EINTR ? "interrupted" : "error",
		rc == -EPIPE ? (int)w - 1 : -1);
	rc = !rc ? CTL_EXIT_OK : rc == -EPIPE ? CTL_EXIT_REFUSED : rc == -EINTR ? CTL_EXIT_TIMEOUT : CTL_EXIT_BROKER;
out:
	ctl_rollout_free(&ro->r);
	free(ro);
	return rc;
}
