#!/usr/bin/env bash
# The trust gate's cost per command: Ed25519 verification + policy evaluation (with its decision log
# entry) alone, and a whole scale command applied through control with the gate against without it,
# interleaved in one run on the same disk; medians of BENCH_COMMANDS (default 10000) commands.
# Usage: tests/bench/bench-trust.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${1:-build}
make --no-print-directory -j2 O="$O" "$O/lib/libberth-core.a" "$O/lib/libberth-linux.a" >/dev/null
${CC:-gcc} -O2 -g -std=c11 -D_GNU_SOURCE -I. -I"$O/include" -imacros "$O/include/generated/autoconf.h" \
  -include agent/base/kconfig.h -Wall -Wextra -o "$O/bench_trust" tests/bench/bench_trust.c \
  -Wl,--start-group "$O/lib/libberth-core.a" "$O/lib/libberth-linux.a" -Wl,--end-group \
  -lmosquitto -lsqlite3 -lcjson -lcurl -lmicrohttpd -lcrypto -lm
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-trust.XXXXXX"); trap 'rm -rf "$dir"' EXIT
"$O/bench_trust" "$dir" "${BENCH_COMMANDS:-10000}" 2> "$dir/log" || { cat "$dir/log" >&2; exit 1; }
