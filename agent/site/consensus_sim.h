/* agent/site/consensus_sim.h - the site's consensus over libraft's in-memory fixture: a simulated LAN in virtual time. */
#ifndef BERTH_SITE_CONSENSUS_SIM_H
#define BERTH_SITE_CONSENSUS_SIM_H

/*
 * Contract
 * --------
 * agent/site/consensus_sim.c implements consensus.h over raft/fixture.h
 * (libraft's deterministic in-memory cluster: the same Raft code berthd runs,
 * its network and disks simulated) instead of libraft's libuv backend. It is
 * linked instead of consensus.c into berth-sim (--site) and test_site_sim.
 * One world per process: gateways are numbered 0.. in the order
 * consensus_create() is called (the founding members first, in the site's
 * member order; later ones join). Datagrams (heartbeats, forwards) go
 * through a bounded queue (CONSENSUS_SIM_QMAX, drops counted) with a delay,
 * a seeded loss rate and partitions. Time is the caller's: step() advances
 * Raft to now_ms and delivers the datagrams due.
 */

#include <stdbool.h>
#include <stdint.h>

struct consensus;

#define CONSENSUS_SIM_MAX 5
#define CONSENSUS_SIM_QMAX 4096

/* A fresh world for a site of `founders` (bootstrapped once that many were
 * created). 0 or -errno. */
int consensus_sim_init(unsigned founders, uint64_t seed);
void consensus_sim_close(void);
/* Raft to now_ms (the loop's clock), barriers, the datagrams due. */
void consensus_sim_step(uint64_t now_ms);
void consensus_sim_set_loss(unsigned pct);
void consensus_sim_set_delay(unsigned ms);
void consensus_sim_set_disk_latency(unsigned ms);
/* Gateway i cut off from every other (both ways, Raft and datagrams) or back. */
void consensus_sim_cut(unsigned i, bool cut);
/* Gateway i gone for good (its Raft stops; it sends and receives nothing). */
void consensus_sim_kill(unsigned i);
bool consensus_sim_dead(unsigned i);
bool consensus_sim_is_cut(unsigned i);
unsigned consensus_sim_n(void);
struct consensus *consensus_sim_get(unsigned i);
uint64_t consensus_sim_dropped(void);
/* The Raft configuration's size as gateway i sees it. */
unsigned consensus_sim_config_n(unsigned i);

#endif
