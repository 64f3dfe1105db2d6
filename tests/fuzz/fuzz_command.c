/* tests/fuzz/fuzz_command.c - libFuzzer target for the command and desired-state parsers and the reply format. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/console/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte picks the topic's verb, the rest is the payload. */
	static const char *const verbs[] = { "deploy", "scale", "restart", "remove", "get_state",
					     "set_log_level", "chaos", "ping", "reboot", "" };
	if (size < 1)
		return 0;
	const char *verb = verbs[data[0] % (sizeof(verbs) / sizeof(verbs[0]))];
	const char *payload = (const char *)data + 1;
	size_t len = size - 1;
	struct command cmd;
	struct command_error err;
	char reply[1024];
	if (command_parse(verb, payload, len, &cmd, &err) == 0) {
		/* An accepted command holds no NUL in its payload's strings and no control character
		 * in its id or level: a NUL would have cut a string short (two ids as one key). */
		if (memchr(payload, 0, len))
			abort();
		for (const char *p = cmd.id; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
		for (const char *p = cmd.args.level; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
		(void)command_format_reply(reply, sizeof(reply), cmd.id, "gw-1", "{}", NULL);
		if (cmd.args.desired) {
			char *less = command_desired_without(cmd.args.desired, cmd.args.deployment[0] ? cmd.args.deployment : "x");
			free(less);
			(void)command_desired_has(cmd.args.desired, "x");
		}
		command_clear(&cmd);
	} else {
		if (!err.code || !err.message[0])
			abort(); /* every refusal must name its problem */
		(void)command_format_reply(reply, sizeof(reply), cmd.id, "gw-1", NULL, &err);
	}
	uint64_t version;
	char *desired = NULL;
	if (command_parse_desired(payload, len, &version, &desired, &err) == 0)
		free(desired);
	return 0;
}
