/* agent/supervise/health.h - liveness and readiness probes of one replica (http, tcp, exec) with Kubernetes semantics. */
#ifndef BERTH_HEALTH_H
#define BERTH_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "agent/model/deploy.h"
#include "agent/base/loop.h"

struct hal_invoke;
struct hal_engine;

enum health_role { HEALTH_LIVENESS = 0, HEALTH_READINESS };

/* Where a probe goes. Copied by health_probe_start(). */
struct health_target {
	struct hal_invoke *inv;      /* http and tcp probes */
	struct hal_engine *engine;   /* exec probes */
	char host[64];               /* "127.0.0.1" */
	uint16_t port;
	char ctr_id[72];             /* exec probes run inside this container */
	char name[96];               /* for log lines: "detector/0" */
};

struct health_probe;
/* A state change: readiness turned ready (ok) or unready (!ok); liveness
 * failed (!ok, the probe has stopped itself). Called from the loop, never
 * from inside health_probe_start(). The callee may stop or restart p. */
typedef void (*health_change_fn)(void *arg, struct health_probe *p, bool ok);

/* Semantics (as Kubernetes): the first probe runs initial_delay_ms after
 * start, then one every period_ms; a probe that has not answered within
 * timeout_ms fails (http: 2xx/3xx succeeds; tcp: a connection succeeds;
 * exec: exit status 0 succeeds). success_threshold consecutive successes
 * make it ok, failure_threshold consecutive failures make it not ok.
 * Readiness starts not ok; liveness starts ok. A kind of PROBE_NONE is ok at
 * once (readiness: right after start) and never fails. A tick that comes
 * while the previous probe is still in flight is skipped. */
/* The part of a probe_spec a running probe keeps for itself. */
struct health_probe_params {
	enum probe_kind kind;
	uint32_t initial_delay_ms;
	uint32_t period_ms;
	uint32_t timeout_ms;
	uint32_t success_threshold;
	uint32_t failure_threshold;
};

struct health_probe {
	struct loop *loop;
	enum health_role role;
	struct health_probe_params spec; /* the spec's numbers and kind, copied */
	const struct probe_spec *text;   /* its path and exec argv, not copied (2 KiB) */
	struct health_target t;
	health_change_fn fn;
	void *arg;
	struct loop_timer tick;
	struct loop_timer exec_timeout;
	bool running;
	bool ok;
	uint32_t consecutive_ok;
	uint32_t consecutive_fail;
	int64_t invoke_handle;       /* > 0 while an http/tcp probe is in flight */
	bool exec_inflight;
	bool exec_abandoned;         /* timed out; its late answer is ignored */
	uint64_t sent_us;
	/* Counters since init, and the reason of the last failure ("http 500", "timeout", ...). */
	uint64_t probes;
	uint64_t failures;
	uint64_t skipped;
	char last_error[64];
};

/* Prepares p (no timers armed). Call once per struct. */
void health_probe_init(struct health_probe *p, struct loop *l, enum health_role role, health_change_fn fn,
		       void *arg);
/* Starts probing t with spec, resetting state and counters of consecutive
 * results. t and spec's kind and numbers are copied; spec's path and exec
 * argv are read from spec while the probe runs, so spec must outlive it
 * (a replica's probes point into its deployment's spec; a changed probe
 * spec restarts them). Returns 0 or -ENOSPC (timer heap full). */
int health_probe_start(struct health_probe *p, const struct probe_spec *spec, const struct health_target *t)
	__attribute__((warn_unused_result));
/* Stops: cancels an http/tcp probe in flight (an exec in flight is
 * abandoned), disarms timers. Safe when not running. ok is kept. */
void health_probe_stop(struct health_probe *p);
/* Resumes a stopped probe (after a pause of its container) keeping its
 * state: the next probe runs one period from now. Returns 0 or -ENOSPC. */
int health_probe_resume(struct health_probe *p) __attribute__((warn_unused_result));
static inline bool health_probe_ok(const struct health_probe *p) { return p->ok; }

const char *health_role_name(enum health_role r);

#endif
