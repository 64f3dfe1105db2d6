/* agent/infer/serve.h - feeds the dispatcher from the supervisor: models from deployment specs, replicas and their readiness, preemption pauses, chaos misses. */
#ifndef BERTH_SERVE_H
#define BERTH_SERVE_H

/*
 * The dispatcher learns models and replicas from the supervisor: every
 * replica event is applied at once (readiness exactly as the probes say),
 * and a level sync every SERVE_SYNC_MS (and soon after any event) declares
 * models from the deployment specs, removes replicas the supervisor no
 * longer has, and withdraws models whose deployment is gone. Models listed
 * in api.static_replicas (declared before serve_create) are left alone.
 * Pausing for edf-preempt goes through the supervisor (which holds the
 * probes of a paused replica); a replica left paused that the scheduler no
 * longer holds paused is resumed by the same sync. Requests a producer saw
 * fail count against an active chaos run.
 *
 * This is the one file of agent/infer/ that knows the supervisor. Not
 * thread-safe: call from the event loop only.
 */

#include <stdint.h>

struct loop;
struct supervisor;
struct deploy_spec;
struct dispatch;
struct chaos;
struct serve;

#define SERVE_SYNC_MS 250u
#define SERVE_RESUME_RETRY_MS 20u
#define SERVE_SHUTDOWN_RESUME_MS 2000u

/* Wires sup to d (and d's misses to ch, which may be NULL). Every argument
 * is borrowed and must outlive the serve. NULL on allocation failure or
 * when sup has no room for another observer (logged). */
struct serve *serve_create(struct loop *l, struct supervisor *sup, struct dispatch *d, struct chaos *ch);
/* Unwires before the dispatcher goes: no more pauses, every paused replica
 * resumed (runs the loop up to SERVE_SHUTDOWN_RESUME_MS for the engine's
 * answers), the supervisor no longer asks the dispatcher, and replica
 * events are ignored from then on. NULL is safe. */
void serve_stop(struct serve *s);
/* Replicas of models that run on other gateways (the members of a site):
 * every sync, fn(arg, add, ctx) calls add(ctx, spec, index, host, port) once
 * per such replica; the dispatcher gets them as replicas of the model (ready;
 * its breaker handles one that does not answer), and drops them when they
 * are no longer listed. A model the supervisor runs here is served from its
 * own replicas only. NULL fn: none. */
typedef void (*serve_remote_add_fn)(void *ctx, const struct deploy_spec *spec, unsigned index, const char *host,
				    uint16_t port);
typedef void (*serve_remote_fn)(void *arg, serve_remote_add_fn add, void *ctx);
void serve_set_remote(struct serve *s, serve_remote_fn fn, void *arg);

/* Frees s after serve_stop, once the supervisor is gone (it keeps s as an
 * observer's argument until then). NULL is safe. */
void serve_destroy(struct serve *s);

#endif
