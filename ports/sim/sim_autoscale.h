/* ports/sim/sim_autoscale.h - berth-sim's autoscaling replay (--autoscale off|reactive|predictive). */
#ifndef BERTH_SIM_AUTOSCALE_H
#define BERTH_SIM_AUTOSCALE_H

/* True when argv asks for the autoscaling replay (carries --autoscale). */
int sim_autoscale_wanted(int argc, char **argv);

/* Replays the trace with the autoscaler (agent/autoscale.c, the same code
 * berthd runs) deciding replica counts on the simulated gateway, and prints
 * `RESULT autoscale=.. violation_s=.. replica_s=.. mase=.. urgent_miss_pct=..`.
 * Returns the process exit code (0, or 2 on bad arguments / unreadable trace). */
int sim_autoscale_main(int argc, char **argv);

#endif
