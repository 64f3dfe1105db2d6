/* tests/fuzz/fuzz_engine_json.c - libFuzzer target for the Docker Engine API reply parsers. */
#include <stddef.h>
#include <stdint.h>

/* The parser lives in the linux port, which fuzz binaries do not link;
 * it is pure (cJSON only), so it is compiled in here. */
#include "ports/linux/engine_json.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	static struct hal_ctr_info ctrs[16];
	struct hal_ctr_info one;
	unsigned n;
	int major, minor, code;
	bool running;
	char msg[64], cause[32], id[72];
	enum hal_engine_event_type type;

	(void)engine_json_version(buf, size, &major, &minor);
	engine_json_error(buf, size, msg, sizeof(msg), cause, sizeof(cause));
	(void)engine_json_id(buf, size, id, sizeof(id));
	(void)engine_json_inspect(buf, size, &one);
	(void)engine_json_list(buf, size, ctrs, 16, &n);
	(void)engine_json_exec_inspect(buf, size, &code, &running);
	(void)engine_json_event(buf, size, &type, id, sizeof(id), &code);
	return 0;
}
