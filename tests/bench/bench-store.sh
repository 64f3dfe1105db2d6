#!/usr/bin/env bash
# The store's append path (one transaction per tick, budget check at commit)
# against a plain SQLite loop with the same schema and pragmas, in the same
# run, on the same disk. Rows are 1 Hz ticks of a gateway with 20 containers
# (~1.8 KB). BENCH_ROWS (default 2000) rows per side per round, two rounds
# interleaved; BENCH_SYNC=full|normal (default full, berthd's default).
# Usage: tests/bench/bench-store.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${1:-build}
make --no-print-directory -j2 O="$O" "$O/lib/libberth-core.a" "$O/lib/libberth-linux.a" >/dev/null
${CC:-gcc} -O2 -g -std=c11 -D_GNU_SOURCE -I. -I"$O/include" -imacros "$O/include/generated/autoconf.h" \
  -include agent/base/kconfig.h -Wall -Wextra -o "$O/bench_store" tests/bench/bench_store.c \
  -Wl,--start-group "$O/lib/libberth-core.a" "$O/lib/libberth-linux.a" -Wl,--end-group \
  -lmosquitto -lsqlite3 -lcjson -lcurl -lmicrohttpd -lm
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-store.XXXXXX"); trap 'rm -rf "$dir"' EXIT
"$O/bench_store" "$dir" "${BENCH_ROWS:-2000}" "${BENCH_SYNC:-full}" 2> "$dir/log" || { cat "$dir/log" >&2; exit 1; }
