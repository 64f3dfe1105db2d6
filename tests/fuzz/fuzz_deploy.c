/* tests/fuzz/fuzz_deploy.c - libFuzzer target: the deployment spec parser on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/deploy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct deploy_set set;
	struct deploy_error err;
	if (deploy_parse((const char *)data, size, &set, &err) == 0) {
		/* Whatever parses must serialize and parse back to the same spec. */
		static char json[16384], doc[17000];
		static struct deploy_set again;
		for (unsigned i = 0; i < set.n; i++) {
			if (set.d[i].spec_hash != deploy_spec_hash(&set.d[i]))
				abort();
			int n = deploy_spec_to_json(&set.d[i], json, sizeof(json));
			if (n < 0)
				abort();
			memcpy(doc, "{\"version\":0,\"deployments\":[", 28);
			memcpy(doc + 28, json, (size_t)n);
			memcpy(doc + 28 + n, "]}", 3);
			if (deploy_parse(doc, strlen(doc), &again, &err) != 0)
				abort();
			if (again.d[0].spec_hash != set.d[i].spec_hash)
				abort();
		}
	} else {
		char msg[512];
		deploy_error_format(&err, msg, sizeof(msg));
		if (!err.message[0])
			abort(); /* every refusal says why */
	}
	return 0;
}
