/* ports/sim/world.h - the simulated containers shared by the sim engine and the sim replica calls (port-private). */
#ifndef BERTH_PORTS_SIM_WORLD_H
#define BERTH_PORTS_SIM_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

/* Reply of a simulated replica; runs from the loop. err is 0 (status and
 * body valid during the call) or -ECONNRESET (the container went away). */
typedef void (*sim_reply_fn)(void *arg, int err, int status, const char *body, size_t body_len);

/* Lets the world arm its timers on l (the loop of the newest engine or
 * invoke client). */
void sim_world_use_loop(struct loop *l);

/* True when a running container whose environment has BERTH_PORT=port
 * accepts connections (started, past its startup delay). */
bool sim_world_listening(uint16_t port);

/* Sends one HTTP request to the replica on port. Returns a token > 0 (fn
 * runs later from the loop, or never if the replica hangs), or
 * -ECONNREFUSED when nothing listens. cost_ms 0: the replica's default. */
int64_t sim_world_http(uint16_t port, const char *method, const char *path, const void *body, size_t body_len,
		       uint32_t cost_ms, sim_reply_fn fn, void *arg);
/* The client gave up (timeout, cancel): fn never runs; the replica still
 * finishes the work it started, as a real server does. */
void sim_world_abandon(int64_t token);

void sim_world_reset(void);

/* --- images (ports/sim/images.c) --- */
struct hal_engine;
struct loop *sim_engine_loop(const struct hal_engine *e);
bool sim_engine_down(void);
/* True when the engine may create a container from ref: always while image
 * checks are off (sim_images_enforce), else when ref is in the store. */
bool sim_images_present(const char *ref);
void sim_images_attach(struct hal_engine *e);
void sim_images_detach(struct hal_engine *e);
void sim_images_reset(void);

#endif
