/* tests/fuzz/fuzz_envelope.c - libFuzzer target for the signature envelope: parse, canonical JSON, signed form, verify, base64. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/trust/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte picks the kind (command or a document), the rest is the message. */
	static const char *const kinds[] = { NULL, "desired", "policy", "keys" };
	/* RFC 8032 TEST 1's public key: the seed corpus is signed with its private key. */
	static const uint8_t pub[SIG_PUBLIC_LEN] = {
		0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
		0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
	};
	if (size < 1)
		return 0;
	const char *kind = kinds[data[0] % 4];
	const char *msg = (const char *)data + 1;
	size_t len = size - 1;
	struct envelope env;
	struct trust_err e = { 0 };
	if (envelope_parse(msg, len, kind, &env, &e) == 0) {
		/* The signed form has its 8 lines whatever the message holds: no field can inject one. */
		char tbs[512];
		int n = envelope_signed_bytes(&env, tbs, sizeof(tbs)), lines = 0;
		for (int i = 0; i < n; i++)
			lines += tbs[i] == '\n';
		if (n < 0 || lines != 8 || strlen(tbs) != (size_t)n)
			abort();
		(void)envelope_verify(&env, pub, &e);
		(void)envelope_targets(&env, "gw-1", NULL, 0);
	} else if (!e.code || !e.message[0]) {
		abort(); /* every refusal names its problem */
	}
	/* Canonical JSON is a fixed point: canonicalizing it again changes nothing. */
	static char c1[1 << 17], c2[1 << 17];
	int n1 = envelope_canonical(msg, len, c1, sizeof(c1));
	if (n1 >= 0) {
		int n2 = envelope_canonical(c1, (size_t)n1, c2, sizeof(c2));
		if (n2 != n1 || memcmp(c1, c2, (size_t)n1) != 0)
			abort();
	}
	/* Base64: whatever decodes encodes back to the same text. */
	if (len < 200) {
		char txt[256], again[400];
		uint8_t bin[200];
		memcpy(txt, msg, len);
		txt[len] = '\0';
		int n = envelope_b64_decode(txt, bin, sizeof(bin));
		if (n >= 0 && (envelope_b64_encode(bin, (size_t)n, again, sizeof(again)) < 0 || strcmp(again, txt) != 0))
			abort();
	}
	return 0;
}
