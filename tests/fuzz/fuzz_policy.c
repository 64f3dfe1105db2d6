/* tests/fuzz/fuzz_policy.c - libFuzzer target for the policy and key list parsers, the evaluator and decision entries. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/trust/keyring.h"
#include "agent/trust/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const verbs[] = { "deploy", "scale", "restart", "remove", "get_state", "set_log_level",
					     "chaos", "ping", "desired", "policy", "keys" };
	static const char env[][160] = { "MODEL=x", "LD_PRELOAD=/x" };
	const char *text = (const char *)data;
	struct policy p;
	struct trust_err e = { 0 };
	if (policy_parse(text, size, verbs, sizeof(verbs) / sizeof(verbs[0]), &p, &e) == 0) {
		const struct policy_deployment dep = { "d", "registry.example.com:5000/d:1", SLA_BATCH, 500000000, 64u << 20,
						       4, POLICY_SET_HOST_NETWORK, env, 2 };
		const struct policy_input inputs[] = {
			{ "k", "deploy", "d", -1, &dep }, { "k", "scale", "d", 7, NULL }, { NULL, NULL, "d", -1, &dep },
			{ "console-1", "policy", NULL, -1, NULL },
		};
		char buf[4096];
		for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
			struct policy_decision d;
			policy_evaluate(&p, &inputs[i], &d);
			if (!d.allow && !d.reason[0])
				abort(); /* a denial names its rule */
			(void)policy_decision_json(buf, sizeof(buf), "id-1", p.version, &inputs[i], &d);
		}
	} else if (!e.code || !e.message[0]) {
		abort(); /* a refusal names the problem (and its path) */
	}
	struct keyring kr;
	memset(&e, 0, sizeof(e));
	if (keyring_parse(text, size, &kr, &e) != 0 && (!e.code || !e.message[0]))
		abort();
	return 0;
}
