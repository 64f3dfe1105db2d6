/* agent/cmd/berthctl.c - the console's command line (filled in by the berthctl issue). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/deploy.h"
#include "agent/version.h"

/* Validates a deployments document with the parser berthd uses: 0 valid, 2 invalid. */
static int check_deployments(const char *path)
{
	struct deploy_set *set = malloc(sizeof(*set));
	struct deploy_error err;
	if (!set)
		return 1;
	int rc = deploy_load(path, set, &err);
	if (rc) {
		char msg[512];
		deploy_error_format(&err, msg, sizeof(msg));
		fprintf(stderr, "berthctl: invalid deployments: %s: %s\n", path, msg);
		free(set);
		return 2;
	}
	printf("%s: ok (version %llu, %u deployments)\n", path, (unsigned long long)set->version, set->n);
	for (unsigned i = 0; i < set->n; i++)
		printf("  %s replicas=%u..%u desired=%u port=%u hash=%016llx\n", set->d[i].name, set->d[i].replicas_min,
		       set->d[i].replicas_max, set->d[i].replicas, set->d[i].port_base,
		       (unsigned long long)set->d[i].spec_hash);
	free(set);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)) {
		printf("berthctl %s\n", BERTH_VERSION);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "check-deployments") == 0)
		return check_deployments(argv[2]);
	fprintf(stderr, "usage: berthctl check-deployments FILE | --version\n");
	return 2;
}
