/* agent/cmd/berthctl.c - the console's command line (filled in by the berthctl issue). */
#include <stdio.h>
#include <string.h>

#include "agent/version.h"

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
		printf("berthctl %s\n", BERTH_VERSION);
		return 0;
	}
	fprintf(stderr, "berthctl %s: no subcommands yet\n", BERTH_VERSION);
	return 2;
}
