/* tests/fuzz/fuzz_config.c - libFuzzer target for the runtime config parser and validator. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct berth_config cfg;
	struct config_error err;
	char msg[512];
	if (config_parse((const char *)data, size, &cfg, &err) != 0) {
		if (!err.message[0])
			abort(); /* every refusal must say what is wrong */
		config_error_format("fuzz.json", &err, msg, sizeof(msg));
	}
	return 0;
}
