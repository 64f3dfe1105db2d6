/* ports/sim/engine.c - a simulated container engine and its replicas, in virtual time, with fault injection. */
#include "hal/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/base/loop.h"
#include "hal/clock.h"
#include "ports/sim/sim.h"
#include "ports/sim/world.h"

#define SIM_MAX_CTRS 64
#define SIM_MAX_JOBS 4096
#define SIM_MAX_ENGINES 4
#define SIM_EV_QUEUE 256
#define SIM_ENV_MAX 16
#define SIM_STR 128
#define SIM_BODY 192

enum job_kind { JOB_CONTROL, JOB_INFER };

/* One request inside a replica. Jobs form per-container FIFO lists by index. */
struct job {
	int64_t token;          /* 0: free */
	int ctr;
	enum job_kind kind;
	bool running;
	uint64_t remaining_us;
	uint64_t started_us;
	int status;
	int err;                /* set: the connection broke; reply with it */
	char body[SIM_BODY];
	size_t body_len;
	sim_reply_fn fn;        /* NULL once the client gave up */
	void *arg;
	int next;               /* queue link, -1 ends */
	struct loop_timer t;
};

struct sim_ctr {
	bool used;
	char id[72];
	char name[SIM_STR];
	char image[SIM_STR];
	enum hal_ctr_state state;
	int pid;
	int exit_code;
	bool oom_killed;
	struct hal_label labels[HAL_ENGINE_MAX_LABELS];
	unsigned nlabels;
	uint16_t port;
	uint32_t startup_ms;
	uint32_t crash_after_ms;
	uint32_t cost_ms;
	unsigned concurrency;
	uint32_t start_latency_ms;
	char fault_at_start[16];
	int exec_exit;
	bool hung, unlive, unready;
	uint64_t listen_at_us;
	unsigned serving;
	unsigned ctl_waiting;   /* control jobs not yet started (paused, hung) */
	unsigned frozen;        /* infer jobs stopped mid-service (paused, hung) */
	int q_head, q_tail;     /* waiting infer jobs */
	unsigned queued;
	struct loop_timer crash_timer;
};

struct sim_event {
	enum hal_engine_event_type type;
	char id[72];
	int exit_code;
};

struct ecall {
	bool busy;
	struct hal_engine *e;
	int op;
	hal_engine_cb cb;
	void *arg;
	char ref[SIM_STR];
	struct hal_ctr_create spec;    /* create: copied strings below */
	char name[SIM_STR], image[SIM_STR];
	char env[SIM_ENV_MAX][SIM_STR];
	const char *envp[SIM_ENV_MAX + 1];
	struct hal_label labels[HAL_ENGINE_MAX_LABELS];
	char lkey[48], lval[96];
	unsigned stop_s;
	int signo;
	bool force;
	bool timed_out;                /* callback ran at the timeout, effect still due */
	uint64_t effect_at_us;
	struct loop_timer t;
};

struct hal_engine {
	struct loop *l;
	unsigned timeout_ms;
	struct ecall calls[CONFIG_ENGINE_MAX_INFLIGHT];
	hal_engine_event_fn fn;
	void *fn_arg;
	struct sim_event evq[SIM_EV_QUEUE];
	unsigned ev_head, ev_len;
	bool ev_overflow;
	struct loop_timer ev_timer;
	struct hal_ctr_info *ctrs;     /* CONFIG_ENGINE_LIST_MAX */
	char id_out[72];
};

static struct {
	struct loop *l;
	struct sim_ctr c[SIM_MAX_CTRS];
	struct job jobs[SIM_MAX_JOBS];
	int free_job;               /* free list head */
	int64_t next_token;
	struct hal_engine *engines[SIM_MAX_ENGINES];
	bool down;
	uint32_t latency_ms;
	uint32_t start_latency_ms;
	uint32_t default_cost_ms;
	int next_pid;
	unsigned next_id;
	uint64_t calls;
} W;

static void job_timer(void *arg);
static void ctr_kick(int ci);
static void on_crash_after(void *arg);

/* The timer heap is sized by Kconfig; running out is a sim set-up error. */
static void arm_us(struct loop *l, struct loop_timer *t, uint64_t delay_us)
{
	if (loop_timer_start_us(l, t, delay_us, 0))
		fprintf(stderr, "sim: loop timer heap full\n");
}

void sim_world_reset(void)
{
	for (int i = 0; i < SIM_MAX_JOBS; i++)
		if (W.l)
			loop_timer_stop(W.l, &W.jobs[i].t);
	for (int i = 0; i < SIM_MAX_CTRS; i++)
		if (W.l)
			loop_timer_stop(W.l, &W.c[i].crash_timer);
	memset(&W, 0, sizeof(W));
	for (int i = 0; i < SIM_MAX_JOBS; i++) {
		loop_timer_init(&W.jobs[i].t, job_timer, &W.jobs[i]);
		W.jobs[i].next = i + 1 < SIM_MAX_JOBS ? i + 1 : -1;
	}
	for (int i = 0; i < SIM_MAX_CTRS; i++)
		loop_timer_init(&W.c[i].crash_timer, on_crash_after, &W.c[i]);
	W.free_job = 0;
	W.next_token = 1;
	W.latency_ms = 1;
	W.start_latency_ms = 50;
	W.default_cost_ms = 10;
	W.next_pid = 4000;
}

__attribute__((constructor)) static void sim_world_init(void) { sim_world_reset(); }

void sim_world_use_loop(struct loop *l) { W.l = l; }

/* --- events ---------------------------------------------------------------- */

static void ev_deliver(void *arg)
{
	struct hal_engine *e = arg;
	/* One batch per timer run; events queued by callbacks wait for the next. */
	unsigned n = e->ev_len;
	while (n-- && e->ev_len) {
		struct sim_event ev = e->evq[e->ev_head];
		e->ev_head = (e->ev_head + 1) % SIM_EV_QUEUE;
		e->ev_len--;
		struct hal_engine_event out = { .type = ev.type, .id = ev.id, .exit_code = ev.exit_code };
		if (e->fn)
			e->fn(e->fn_arg, &out);
	}
	if (e->ev_len && !loop_timer_armed(&e->ev_timer))
		arm_us(e->l, &e->ev_timer, 0);
}

static void ev_push_one(struct hal_engine *e, enum hal_engine_event_type type, const char *id, int code)
{
	if (!e->fn)
		return;
	if (e->ev_len >= SIM_EV_QUEUE) {
		/* Like a stream that broke: the subscriber is told to re-list. */
		e->ev_overflow = true;
		return;
	}
	if (e->ev_overflow && type != HAL_EV_STREAM_LOST && e->ev_len + 2 < SIM_EV_QUEUE) {
		e->ev_overflow = false;
		ev_push_one(e, HAL_EV_STREAM_LOST, "", 0);
		ev_push_one(e, HAL_EV_STREAM_UP, "", 0);
	}
	struct sim_event *ev = &e->evq[(e->ev_head + e->ev_len) % SIM_EV_QUEUE];
	ev->type = type;
	snprintf(ev->id, sizeof(ev->id), "%s", id ? id : "");
	ev->exit_code = code;
	e->ev_len++;
	if (!loop_timer_armed(&e->ev_timer))
		arm_us(e->l, &e->ev_timer, 0);
}

static void ev_push(enum hal_engine_event_type type, const char *id, int code)
{
	if (W.down && type != HAL_EV_STREAM_LOST)
		return; /* no stream while the engine is down */
	for (int i = 0; i < SIM_MAX_ENGINES; i++)
		if (W.engines[i])
			ev_push_one(W.engines[i], type, id, code);
}

/* --- containers ------------------------------------------------------------ */

static int ctr_find(const char *ref)
{
	if (!ref || !*ref)
		return -1;
	for (int i = 0; i < SIM_MAX_CTRS; i++) {
		struct sim_ctr *c = &W.c[i];
		if (c->used && (strcmp(c->id, ref) == 0 || strcmp(c->name, ref) == 0))
			return i;
	}
	/* A unique prefix of the id, as the engine accepts. */
	int found = -1;
	size_t n = strlen(ref);
	for (int i = 0; i < SIM_MAX_CTRS && n >= 6; i++) {
		if (W.c[i].used && strncmp(W.c[i].id, ref, n) == 0) {
			if (found >= 0)
				return -1;
			found = i;
		}
	}
	return found;
}

static void job_free(int ji)
{
	struct job *j = &W.jobs[ji];
	if (W.l)
		loop_timer_stop(W.l, &j->t);
	j->token = 0;
	j->fn = NULL;
	j->next = W.free_job;
	W.free_job = ji;
}

static void job_reply(struct job *j, int err)
{
	sim_reply_fn fn = j->fn;
	void *arg = j->arg;
	j->fn = NULL;
	if (fn)
		fn(arg, err, j->status, j->body, j->body_len);
}

/* The process is gone: every request it held breaks. The replies go out
 * from the loop, since a test may kill a container from outside it. */
static void ctr_drop_jobs(int ci)
{
	for (int i = 0; i < SIM_MAX_JOBS; i++) {
		struct job *j = &W.jobs[i];
		if (j->token > 0 && j->ctr == ci && !j->err) {
			j->err = -ECONNRESET;
			if (!j->fn)
				job_free(i);
			else
				arm_us(W.l, &j->t, 0);
		}
	}
	W.c[ci].serving = 0;
	W.c[ci].queued = 0;
	W.c[ci].ctl_waiting = 0;
	W.c[ci].frozen = 0;
	W.c[ci].q_head = W.c[ci].q_tail = -1;
}

static void ctr_exit(int ci, int exit_code, bool oom)
{
	struct sim_ctr *c = &W.c[ci];
	if (c->state != HAL_CTR_RUNNING && c->state != HAL_CTR_PAUSED)
		return;
	c->state = HAL_CTR_EXITED;
	c->exit_code = exit_code;
	c->oom_killed = oom;
	c->pid = 0;
	loop_timer_stop(W.l, &c->crash_timer);
	ctr_drop_jobs(ci);
	if (oom)
		ev_push(HAL_EV_OOM, c->id, 0);
	ev_push(HAL_EV_DIE, c->id, exit_code);
}

static void on_crash_after(void *arg)
{
	struct sim_ctr *c = arg;
	ctr_exit((int)(c - W.c), 1, false);
}

static void apply_fault(struct sim_ctr *c, const char *fault)
{
	if (strcmp(fault, "crash") == 0) {
		ctr_exit((int)(c - W.c), 1, false);
	} else if (strcmp(fault, "hang") == 0) {
		c->hung = true;
	} else if (strcmp(fault, "unlive") == 0) {
		c->unlive = true;
	} else if (strcmp(fault, "unready") == 0) {
		c->unready = true;
	} else if (strcmp(fault, "ok") == 0) {
		c->hung = c->unlive = c->unready = false;
		ctr_kick((int)(c - W.c));
	}
}

static void ctr_start(int ci)
{
	struct sim_ctr *c = &W.c[ci];
	if (c->state == HAL_CTR_RUNNING || c->state == HAL_CTR_PAUSED)
		return;
	c->state = HAL_CTR_RUNNING;
	c->pid = W.next_pid++;
	c->exit_code = 0;
	c->oom_killed = false;
	c->hung = c->unlive = c->unready = false;
	c->listen_at_us = hal_clock_now_us() + (uint64_t)c->startup_ms * 1000u;
	ev_push(HAL_EV_START, c->id, 0);
	if (c->crash_after_ms && W.l)
		arm_us(W.l, &c->crash_timer, (uint64_t)c->crash_after_ms * 1000u);
	if (c->fault_at_start[0])
		apply_fault(c, c->fault_at_start);
}

static uint32_t env_u32(const char *const *env, const char *key, uint32_t dflt)
{
	size_t n = strlen(key);
	for (unsigned i = 0; env && env[i]; i++)
		if (strncmp(env[i], key, n) == 0 && env[i][n] == '=')
			return (uint32_t)strtoul(env[i] + n + 1, NULL, 10);
	return dflt;
}

static const char *env_str(const char *const *env, const char *key)
{
	size_t n = strlen(key);
	for (unsigned i = 0; env && env[i]; i++)
		if (strncmp(env[i], key, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

static int ctr_create(const struct hal_ctr_create *spec, int *out)
{
	if (spec->name && ctr_find(spec->name) >= 0)
		return -EEXIST;
	int ci = -1;
	for (int i = 0; i < SIM_MAX_CTRS && ci < 0; i++)
		if (!W.c[i].used)
			ci = i;
	if (ci < 0)
		return -EIO;
	struct sim_ctr *c = &W.c[ci];
	loop_timer_stop(W.l, &c->crash_timer);
	memset(c, 0, sizeof(*c));
	loop_timer_init(&c->crash_timer, on_crash_after, c);
	c->used = true;
	W.next_id++;
	snprintf(c->id, sizeof(c->id), "%08x%056x", W.next_id * 2654435761u, W.next_id);
	if (spec->name)
		snprintf(c->name, sizeof(c->name), "%s", spec->name);
	else
		snprintf(c->name, sizeof(c->name), "sim_%u", W.next_id);
	snprintf(c->image, sizeof(c->image), "%s", spec->image);
	c->state = HAL_CTR_CREATED;
	for (unsigned i = 0; i < spec->nlabels && i < HAL_ENGINE_MAX_LABELS; i++)
		c->labels[c->nlabels++] = spec->labels[i];
	c->port = (uint16_t)env_u32(spec->env, "BERTH_PORT", 0);
	c->startup_ms = env_u32(spec->env, "WORKER_STARTUP_MS", 0);
	c->crash_after_ms = env_u32(spec->env, "WORKER_CRASH_AFTER_MS", 0);
	c->cost_ms = env_u32(spec->env, "WORKER_COST_MS", 0);
	c->concurrency = env_u32(spec->env, "WORKER_CONCURRENCY", 1);
	if (!c->concurrency)
		c->concurrency = 1;
	const char *fault = env_str(spec->env, "WORKER_FAULT");
	snprintf(c->fault_at_start, sizeof(c->fault_at_start), "%s", fault ? fault : "");
	c->start_latency_ms = W.start_latency_ms;
	c->q_head = c->q_tail = -1;
	*out = ci;
	return 0;
}

static void ctr_info(int ci, struct hal_ctr_info *out)
{
	const struct sim_ctr *c = &W.c[ci];
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", c->id);
	snprintf(out->name, sizeof(out->name), "%s", c->name);
	snprintf(out->image, sizeof(out->image), "%s", c->image);
	out->state = c->state;
	out->pid = c->pid;
	out->exit_code = c->exit_code;
	out->oom_killed = c->oom_killed;
	memcpy(out->labels, c->labels, sizeof(out->labels));
	out->nlabels = c->nlabels;
}

static void ctr_destroy(int ci)
{
	struct sim_ctr *c = &W.c[ci];
	ctr_drop_jobs(ci);
	loop_timer_stop(W.l, &c->crash_timer);
	ev_push(HAL_EV_DESTROY, c->id, 0);
	c->used = false;
}

/* --- replica side of HTTP ---------------------------------------------------- */

static bool ctr_listening(const struct sim_ctr *c)
{
	return c->used && (c->state == HAL_CTR_RUNNING || c->state == HAL_CTR_PAUSED) && c->port &&
	       hal_clock_now_us() >= c->listen_at_us;
}

bool sim_world_listening(uint16_t port)
{
	for (int i = 0; i < SIM_MAX_CTRS; i++)
		if (W.c[i].port == port && ctr_listening(&W.c[i]))
			return true;
	return false;
}

static void job_timer(void *arg)
{
	struct job *j = arg;
	int ji = (int)(j - W.jobs);
	if (j->err) {
		job_reply(j, j->err);
		job_free(ji);
		return;
	}
	struct sim_ctr *c = &W.c[j->ctr];
	if (j->kind == JOB_INFER && c->serving)
		c->serving--;
	job_reply(j, 0);
	job_free(ji);
	ctr_kick((int)(c - W.c));
}

static void job_run(int ji, uint64_t delay_us)
{
	struct job *j = &W.jobs[ji];
	j->running = true;
	j->started_us = hal_clock_now_us();
	if (loop_timer_start_us(W.l, &j->t, delay_us, 0)) {
		/* No timer left: answer as a broken connection rather than never. */
		job_reply(j, -ECONNRESET);
		if (j->kind == JOB_INFER && W.c[j->ctr].serving)
			W.c[j->ctr].serving--;
		job_free(ji);
	}
}

/* Starts what the replica can serve now: nothing while paused or hung. */
static void ctr_kick(int ci)
{
	struct sim_ctr *c = &W.c[ci];
	if (c->state != HAL_CTR_RUNNING || c->hung)
		return;
	/* Control requests (health, admin) never wait behind inference. */
	for (int i = 0; (c->ctl_waiting || c->frozen) && i < SIM_MAX_JOBS; i++) {
		struct job *j = &W.jobs[i];
		if (j->token <= 0 || j->ctr != ci || j->err)
			continue;
		if (j->kind == JOB_CONTROL && !j->running) {
			c->ctl_waiting--;
			job_run(i, 0);
		} else if (j->kind == JOB_INFER && j->running && !loop_timer_armed(&j->t)) {
			c->frozen--;
			job_run(i, j->remaining_us); /* resumed after pause or hang */
		}
	}
	while (c->serving < c->concurrency && c->q_head >= 0) {
		int ji = c->q_head;
		c->q_head = W.jobs[ji].next;
		if (c->q_head < 0)
			c->q_tail = -1;
		c->queued--;
		c->serving++;
		job_run(ji, W.jobs[ji].remaining_us);
	}
}

/* Freezes running inference (pause, hang): remaining time is kept. */
static void ctr_freeze(int ci)
{
	for (int i = 0; i < SIM_MAX_JOBS; i++) {
		struct job *j = &W.jobs[i];
		if (j->token > 0 && j->ctr == ci && !j->err && j->kind == JOB_INFER && j->running &&
		    loop_timer_armed(&j->t)) {
			uint64_t now = hal_clock_now_us();
			uint64_t end = j->t.due_us;
			j->remaining_us = end > now ? end - now : 0;
			loop_timer_stop(W.l, &j->t);
			W.c[ci].frozen++;
		}
	}
}

static void model_of(const char *path, char *out, size_t len)
{
	const char *p = path + strlen("/v2/models/");
	const char *end = strchr(p, '/');
	size_t n = end ? (size_t)(end - p) : strlen(p);
	if (n >= len)
		n = len - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

int64_t sim_world_http(uint16_t port, const char *method, const char *path, const void *body, size_t body_len,
		       uint32_t cost_ms, sim_reply_fn fn, void *arg)
{
	int ci = -1;
	for (int i = 0; i < SIM_MAX_CTRS && ci < 0; i++)
		if (W.c[i].port == port && ctr_listening(&W.c[i]))
			ci = i;
	if (ci < 0 || !W.l)
		return -ECONNREFUSED;
	if (W.free_job < 0)
		return -ECONNREFUSED; /* backlog full */
	struct sim_ctr *c = &W.c[ci];
	int ji = W.free_job;
	struct job *j = &W.jobs[ji];
	W.free_job = j->next;
	j->token = (W.next_token++ << 12) | ji;
	j->ctr = ci;
	j->fn = fn;
	j->arg = arg;
	j->running = false;
	j->remaining_us = 0;
	j->next = -1;
	j->kind = JOB_CONTROL;
	j->status = 200;
	j->err = 0;
	bool post = method && strcmp(method, "POST") == 0;
	const char *ok = "{}";
	if (strcmp(path, "/v2/health/live") == 0) {
		j->status = c->unlive ? 500 : 200;
	} else if (strcmp(path, "/v2/health/ready") == 0) {
		j->status = c->unready ? 503 : 200;
	} else if (strncmp(path, "/v2/models/", 11) == 0 && strstr(path, "/ready") && !post) {
		j->status = c->unready ? 503 : 200;
	} else if (strncmp(path, "/v2/models/", 11) == 0 && strstr(path, "/infer") && post) {
		char model[64];
		model_of(path, model, sizeof(model));
		j->kind = JOB_INFER;
		uint32_t ms = cost_ms ? cost_ms : (c->cost_ms ? c->cost_ms : W.default_cost_ms);
		j->remaining_us = (uint64_t)ms * 1000u;
		j->body_len = (size_t)snprintf(j->body, sizeof(j->body),
					       "{\"model_name\":\"%s\",\"outputs\":[{\"name\":\"output0\","
					       "\"datatype\":\"FP32\",\"shape\":[1],\"data\":[0.5]}]}",
					       model);
		ok = NULL;
	} else if (strcmp(path, "/admin/fault") == 0 && post) {
		char fault[16] = "";
		size_t n = body_len < sizeof(fault) - 1 ? body_len : sizeof(fault) - 1;
		if (body)
			memcpy(fault, body, n);
		fault[n] = '\0';
		apply_fault(c, fault);
		if (j->err)
			return j->token; /* crash: the connection resets, from the loop */
	} else {
		j->status = 404;
		ok = "{\"error\":\"not found\"}";
	}
	if (ok)
		j->body_len = (size_t)snprintf(j->body, sizeof(j->body), "%s", ok);
	if (j->kind == JOB_CONTROL)
		c->ctl_waiting++;
	if (j->kind == JOB_INFER) {
		if (c->q_tail >= 0)
			W.jobs[c->q_tail].next = ji;
		else
			c->q_head = ji;
		c->q_tail = ji;
		c->queued++;
	}
	ctr_kick(ci);
	return j->token;
}

void sim_world_abandon(int64_t token)
{
	if (token <= 0)
		return;
	int i = (int)(token & (SIM_MAX_JOBS - 1));
	struct job *j = &W.jobs[i];
	if (j->token != token)
		return;
	j->fn = NULL;
	/* Health checks of a hung replica would pile up forever: drop them.
	 * Inference keeps its slot until done, as a real worker does. */
	if (j->kind == JOB_CONTROL) {
		if (!j->running && W.c[j->ctr].ctl_waiting)
			W.c[j->ctr].ctl_waiting--;
		job_free(i);
	}
}

/* --- engine calls ---------------------------------------------------------- */

enum sim_op { S_PING, S_CREATE, S_START, S_STOP, S_KILL, S_REMOVE, S_PAUSE, S_UNPAUSE, S_INSPECT, S_LIST, S_EXEC };

static int do_op(struct hal_engine *e, struct ecall *c, struct hal_engine_result *res)
{
	if (c->op == S_PING)
		return 0;
	if (c->op == S_CREATE) {
		int ci;
		if (!sim_images_present(c->spec.image))
			return -ENOENT; /* the engine's "no such image" */
		int rc = ctr_create(&c->spec, &ci);
		if (rc == 0) {
			snprintf(e->id_out, sizeof(e->id_out), "%s", W.c[ci].id);
			res->id = e->id_out;
		}
		return rc;
	}
	if (c->op == S_LIST) {
		unsigned n = 0;
		int rc = 0;
		for (int i = 0; i < SIM_MAX_CTRS; i++) {
			if (!W.c[i].used)
				continue;
			bool match = false;
			for (unsigned k = 0; k < W.c[i].nlabels; k++)
				if (strcmp(W.c[i].labels[k].key, c->lkey) == 0 &&
				    (!c->lval[0] || strcmp(W.c[i].labels[k].value, c->lval) == 0))
					match = true;
			if (!match)
				continue;
			if (n >= CONFIG_ENGINE_LIST_MAX) {
				rc = -EOVERFLOW;
				break;
			}
			ctr_info(i, &e->ctrs[n++]);
		}
		res->ctrs = e->ctrs;
		res->nctrs = n;
		return rc;
	}
	int ci = ctr_find(c->ref);
	if (ci < 0)
		return -ENOENT;
	struct sim_ctr *sc = &W.c[ci];
	bool live = sc->state == HAL_CTR_RUNNING || sc->state == HAL_CTR_PAUSED;
	switch (c->op) {
	case S_START:
		ctr_start(ci);
		return 0;
	case S_STOP:
		if (sc->state == HAL_CTR_PAUSED)
			sc->state = HAL_CTR_RUNNING;
		ctr_exit(ci, sc->hung ? 137 : 143, false);
		return 0;
	case S_KILL:
		if (!live)
			return -EBUSY;
		ctr_exit(ci, 128 + c->signo, false);
		return 0;
	case S_REMOVE:
		if (live && !c->force)
			return -EBUSY;
		ctr_exit(ci, 137, false);
		ctr_destroy(ci);
		return 0;
	case S_PAUSE:
		if (sc->state != HAL_CTR_RUNNING)
			return -EBUSY;
		ctr_freeze(ci);
		sc->state = HAL_CTR_PAUSED;
		ev_push(HAL_EV_PAUSE, sc->id, 0);
		return 0;
	case S_UNPAUSE:
		if (sc->state != HAL_CTR_PAUSED)
			return -EBUSY;
		sc->state = HAL_CTR_RUNNING;
		ev_push(HAL_EV_UNPAUSE, sc->id, 0);
		ctr_kick(ci);
		return 0;
	case S_INSPECT:
		ctr_info(ci, &e->ctrs[0]);
		res->ctrs = e->ctrs;
		res->nctrs = 1;
		return 0;
	case S_EXEC:
		if (sc->state != HAL_CTR_RUNNING)
			return -EBUSY;
		res->exec_exit_code = sc->exec_exit;
		return 0;
	default:
		return -EINVAL;
	}
}

static const char *err_text(int err)
{
	switch (err) {
	case 0: return "";
	case -ENOENT: return "no such container";
	case -EEXIST: return "that name is already in use";
	case -EBUSY: return "container state improper";
	case -EHOSTDOWN: return "engine unavailable";
	case -ETIMEDOUT: return "engine timed out";
	default: return "engine error";
	}
}

static void on_call(void *arg)
{
	struct ecall *c = arg;
	struct hal_engine *e = c->e;
	struct hal_engine_result res = { .err = 0, .message = "" };
	if (c->timed_out) {
		/* The client heard -ETIMEDOUT already; now the engine acts. */
		if (!W.down)
			(void)do_op(e, c, &res);
		c->busy = false;
		return;
	}
	uint64_t now = hal_clock_now_us();
	if (W.down) {
		res.err = -EHOSTDOWN;
	} else if (c->effect_at_us > now) {
		res.err = -ETIMEDOUT;
		c->timed_out = true;
		arm_us(e->l, &c->t, c->effect_at_us - now);
	} else {
		res.err = do_op(e, c, &res);
	}
	res.message = err_text(res.err);
	hal_engine_cb cb = c->cb;
	void *cb_arg = c->arg;
	if (!c->timed_out)
		c->busy = false;
	cb(cb_arg, &res);
}

static struct ecall *call_take(struct hal_engine *e, int op, const char *ref, hal_engine_cb cb, void *arg)
{
	if (!e || !cb)
		return NULL;
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++) {
		struct ecall *c = &e->calls[i];
		if (c->busy)
			continue;
		c->busy = true;
		c->e = e;
		c->op = op;
		c->cb = cb;
		c->arg = arg;
		c->timed_out = false;
		snprintf(c->ref, sizeof(c->ref), "%s", ref ? ref : "");
		return c;
	}
	return NULL;
}

static int call_submit(struct hal_engine *e, struct ecall *c, uint32_t extra_ms)
{
	uint64_t lat_ms = W.down ? 0 : (uint64_t)W.latency_ms + extra_ms;
	uint64_t limit_ms = e->timeout_ms + (c->op == S_STOP ? c->stop_s * 1000u : 0);
	c->effect_at_us = hal_clock_now_us() + lat_ms * 1000u;
	W.calls++;
	int rc = loop_timer_start(e->l, &c->t, lat_ms < limit_ms ? lat_ms : limit_ms, 0);
	if (rc)
		c->busy = false;
	return rc;
}

struct loop *sim_engine_loop(const struct hal_engine *e) { return e->l; }
bool sim_engine_down(void) { return W.down; }

struct hal_engine *hal_engine_create(struct loop *l, const char *endpoint, unsigned timeout_ms)
{
	(void)endpoint;
	if (!l || !timeout_ms)
		return NULL;
	int slot = -1;
	for (int i = 0; i < SIM_MAX_ENGINES && slot < 0; i++)
		if (!W.engines[i])
			slot = i;
	if (slot < 0)
		return NULL;
	struct hal_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->ctrs = calloc(CONFIG_ENGINE_LIST_MAX, sizeof(*e->ctrs));
	if (!e->ctrs) {
		free(e);
		return NULL;
	}
	e->l = l;
	e->timeout_ms = timeout_ms;
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++)
		loop_timer_init(&e->calls[i].t, on_call, &e->calls[i]);
	loop_timer_init(&e->ev_timer, ev_deliver, e);
	W.engines[slot] = e;
	sim_images_attach(e);
	sim_world_use_loop(l);
	return e;
}

void hal_engine_destroy(struct hal_engine *e)
{
	if (!e)
		return;
	for (unsigned i = 0; i < CONFIG_ENGINE_MAX_INFLIGHT; i++)
		loop_timer_stop(e->l, &e->calls[i].t);
	loop_timer_stop(e->l, &e->ev_timer);
	for (int i = 0; i < SIM_MAX_ENGINES; i++)
		if (W.engines[i] == e)
			W.engines[i] = NULL;
	sim_images_detach(e);
	free(e->ctrs);
	free(e);
}

int hal_engine_ping(struct hal_engine *e, hal_engine_cb cb, void *arg)
{
	struct ecall *c = call_take(e, S_PING, "", cb, arg);
	return c ? call_submit(e, c, 0) : (e && cb ? -EBUSY : -EINVAL);
}

int hal_engine_create_ctr(struct hal_engine *e, const struct hal_ctr_create *spec, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !spec || !spec->image || spec->nlabels > HAL_ENGINE_MAX_LABELS ||
	    (spec->nlabels && !spec->labels))
		return -EINVAL;
	struct ecall *c = call_take(e, S_CREATE, spec->name, cb, arg);
	if (!c)
		return -EBUSY;
	/* Copy what the caller only lends for the duration of the call. */
	snprintf(c->name, sizeof(c->name), "%s", spec->name ? spec->name : "");
	snprintf(c->image, sizeof(c->image), "%s", spec->image);
	unsigned n = 0;
	for (; spec->env && spec->env[n] && n < SIM_ENV_MAX; n++) {
		snprintf(c->env[n], sizeof(c->env[n]), "%s", spec->env[n]);
		c->envp[n] = c->env[n];
	}
	c->envp[n] = NULL;
	if (spec->nlabels)
		memcpy(c->labels, spec->labels, spec->nlabels * sizeof(*spec->labels));
	c->spec = *spec;
	c->spec.name = spec->name ? c->name : NULL;
	c->spec.image = c->image;
	c->spec.cmd = NULL;
	c->spec.env = c->envp;
	c->spec.labels = c->labels;
	return call_submit(e, c, 0);
}

static int ref_call(struct hal_engine *e, int op, const char *id, hal_engine_cb cb, void *arg, uint32_t extra_ms)
{
	if (!e || !cb || !id || !*id)
		return -EINVAL;
	struct ecall *c = call_take(e, op, id, cb, arg);
	if (!c)
		return -EBUSY;
	return call_submit(e, c, extra_ms);
}

int hal_engine_start(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	int ci = ctr_find(id);
	return ref_call(e, S_START, id, cb, arg, ci >= 0 ? W.c[ci].start_latency_ms : 0);
}

int hal_engine_stop(struct hal_engine *e, const char *id, unsigned timeout_s, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !id || !*id)
		return -EINVAL;
	struct ecall *c = call_take(e, S_STOP, id, cb, arg);
	if (!c)
		return -EBUSY;
	c->stop_s = timeout_s;
	int ci = ctr_find(id);
	/* A hung process ignores SIGTERM: the engine waits the grace period. */
	return call_submit(e, c, ci >= 0 && W.c[ci].hung ? timeout_s * 1000u : 0);
}

int hal_engine_kill(struct hal_engine *e, const char *id, int signo, hal_engine_cb cb, void *arg)
{
	if (signo <= 0 || signo >= 65)
		return -EINVAL;
	if (!e || !cb || !id || !*id)
		return -EINVAL;
	struct ecall *c = call_take(e, S_KILL, id, cb, arg);
	if (!c)
		return -EBUSY;
	c->signo = signo;
	return call_submit(e, c, 0);
}

int hal_engine_remove(struct hal_engine *e, const char *id, bool force, hal_engine_cb cb, void *arg)
{
	if (!e || !cb || !id || !*id)
		return -EINVAL;
	struct ecall *c = call_take(e, S_REMOVE, id, cb, arg);
	if (!c)
		return -EBUSY;
	c->force = force;
	return call_submit(e, c, 0);
}

int hal_engine_pause(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	return ref_call(e, S_PAUSE, id, cb, arg, 0);
}

int hal_engine_unpause(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	return ref_call(e, S_UNPAUSE, id, cb, arg, 0);
}

int hal_engine_inspect(struct hal_engine *e, const char *id, hal_engine_cb cb, void *arg)
{
	return ref_call(e, S_INSPECT, id, cb, arg, 0);
}

int hal_engine_list(struct hal_engine *e, const char *label_key, const char *label_value, hal_engine_cb cb,
		    void *arg)
{
	if (!e || !cb || !label_key || !*label_key)
		return -EINVAL;
	struct ecall *c = call_take(e, S_LIST, "", cb, arg);
	if (!c)
		return -EBUSY;
	snprintf(c->lkey, sizeof(c->lkey), "%s", label_key);
	snprintf(c->lval, sizeof(c->lval), "%s", label_value ? label_value : "");
	return call_submit(e, c, 0);
}

int hal_engine_exec(struct hal_engine *e, const char *id, const char *const *argv, hal_engine_cb cb, void *arg)
{
	if (!argv || !argv[0])
		return -EINVAL;
	return ref_call(e, S_EXEC, id, cb, arg, 0);
}

int hal_engine_watch(struct hal_engine *e, hal_engine_event_fn fn, void *arg)
{
	if (!e)
		return -EINVAL;
	e->fn = fn;
	e->fn_arg = arg;
	e->ev_len = 0;
	e->ev_overflow = false;
	if (fn)
		ev_push_one(e, W.down ? HAL_EV_STREAM_LOST : HAL_EV_STREAM_UP, "", 0);
	return 0;
}

/* --- control API (ports/sim/sim.h) ------------------------------------------- */

void sim_engine_set_available(bool up)
{
	if (up == !W.down)
		return;
	if (!up) {
		ev_push(HAL_EV_STREAM_LOST, "", 0);
		W.down = true;
	} else {
		W.down = false;
		ev_push(HAL_EV_STREAM_UP, "", 0);
	}
}

void sim_engine_set_latency_ms(uint32_t ms) { W.latency_ms = ms; }
void sim_engine_set_start_latency_ms(uint32_t ms) { W.start_latency_ms = ms; }
void sim_engine_set_default_cost_ms(uint32_t ms) { W.default_cost_ms = ms; }
uint64_t sim_engine_calls(void) { return W.calls; }

#define WITH_CTR(ref)                      \
	int ci = ctr_find(ref);            \
	if (ci < 0)                        \
		return -ENOENT;            \
	struct sim_ctr *c = &W.c[ci];      \
	(void)c

int sim_ctr_crash(const char *ref, int exit_code)
{
	WITH_CTR(ref);
	ctr_exit(ci, exit_code, false);
	return 0;
}

int sim_ctr_oom(const char *ref)
{
	WITH_CTR(ref);
	ctr_exit(ci, 137, true);
	return 0;
}

int sim_ctr_hang(const char *ref)
{
	WITH_CTR(ref);
	c->hung = true;
	ctr_freeze(ci);
	return 0;
}

int sim_ctr_unlive(const char *ref, bool on)
{
	WITH_CTR(ref);
	c->unlive = on;
	return 0;
}

int sim_ctr_unready(const char *ref, bool on)
{
	WITH_CTR(ref);
	c->unready = on;
	return 0;
}

int sim_ctr_heal(const char *ref)
{
	WITH_CTR(ref);
	apply_fault(c, "ok");
	return 0;
}

int sim_ctr_set_start_latency_ms(const char *ref, uint32_t ms)
{
	WITH_CTR(ref);
	c->start_latency_ms = ms;
	return 0;
}

int sim_ctr_set_service(const char *ref, uint32_t cost_ms, unsigned concurrency)
{
	WITH_CTR(ref);
	c->cost_ms = cost_ms;
	c->concurrency = concurrency ? concurrency : 1;
	ctr_kick(ci);
	return 0;
}

int sim_ctr_set_exec_exit(const char *ref, int exit_code)
{
	WITH_CTR(ref);
	c->exec_exit = exit_code;
	return 0;
}

int sim_ctr_get(const char *ref, struct hal_ctr_info *out)
{
	WITH_CTR(ref);
	ctr_info(ci, out);
	return 0;
}

unsigned sim_ctr_count(void)
{
	unsigned n = 0;
	for (int i = 0; i < SIM_MAX_CTRS; i++)
		n += W.c[i].used;
	return n;
}

const char *sim_ctr_id_at(unsigned idx)
{
	for (int i = 0; i < SIM_MAX_CTRS; i++)
		if (W.c[i].used && idx-- == 0)
			return W.c[i].id;
	return NULL;
}

int sim_ctr_load(const char *ref, unsigned *serving, unsigned *queued)
{
	WITH_CTR(ref);
	*serving = c->serving;
	*queued = c->queued;
	return 0;
}

int sim_ctr_add(const struct hal_ctr_create *spec, bool start, char *id, size_t id_len)
{
	if (!spec || !spec->image)
		return -EINVAL;
	int ci;
	int rc = ctr_create(spec, &ci);
	if (rc)
		return rc;
	if (start)
		ctr_start(ci);
	if (id)
		snprintf(id, id_len, "%s", W.c[ci].id);
	return 0;
}
