/* ports/sim/berth-sim.c - replays a request trace through the scheduler on the simulated gateway. */
#include <stdio.h>
#include <string.h>

#include "agent/version.h"
#include "ports/sim/sim_autoscale.h"

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
		printf("berth-sim %s\n", BERTH_VERSION);
		return 0;
	}
	if (sim_autoscale_wanted(argc, argv))
		return sim_autoscale_main(argc, argv);
	fprintf(stderr, "berth-sim %s: trace replay arrives with the scheduler\n", BERTH_VERSION);
	return 2;
}
