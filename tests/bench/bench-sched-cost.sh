#!/usr/bin/env bash
# Cost of one scheduling decision (admit, enqueue, dequeue) with 10,000
# requests queued, in instructions under valgrind's callgrind, against a bare
# binary-heap push+pop in the same binary. Builds the core with a queue cap
# large enough (CONFIG_SCHED_MAX_QUEUED=16384) in its own build dir. Measures
# edf-admit (the figure tracked since the first round) and edf-mc.
# Usage: tests/bench/bench-sched-cost.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${1:-build}
BO=$O/bench-sched-cost
command -v valgrind >/dev/null || { echo "bench-sched-cost: valgrind not installed" >&2; exit 1; }
[ -f /usr/include/valgrind/callgrind.h ] || { echo "bench-sched-cost: valgrind/callgrind.h missing" >&2; exit 1; }

make --no-print-directory O="$BO" "$BO/.config" >/dev/null
sed -i 's/^CONFIG_SCHED_MAX_QUEUED=.*/CONFIG_SCHED_MAX_QUEUED=16384/' "$BO/.config"
make --no-print-directory -j2 O="$BO" "$BO/lib/libberth-core.a" "$BO/lib/libberth-sim.a" >/dev/null
${CC:-gcc} -O2 -g -std=c11 -D_GNU_SOURCE -I. -I"$BO/include" -imacros "$BO/include/generated/autoconf.h" \
  -include agent/base/kconfig.h -Wall -Wextra -o "$BO/sched_cost" tests/bench/sched_cost.c \
  -Wl,--start-group "$BO/lib/libberth-core.a" "$BO/lib/libberth-sim.a" -Wl,--end-group \
  -lmosquitto -lsqlite3 -lcjson -lcurl -lmicrohttpd -lm

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
total() { # instructions in the dump whose trigger names $2, of run $1
  local f; f=$(grep -l "^desc: Trigger: Client Request: $2" "$tmp/$1".cg.out* | head -1)
  sed -n 's/^summary: *\([0-9]*\).*/\1/p;s/^totals: *\([0-9]*\).*/\1/p' "$f" | head -1
}
rounds=10000
result=""; worst=0
for pol in edf-admit edf-mc; do
  valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$tmp/$pol.cg.out" \
    "$BO/sched_cost" $pol $([ $pol = edf-mc ] && echo 10) 2>"$tmp/vg.log" || { cat "$tmp/vg.log" >&2; exit 1; }
  s_ir=$(total $pol sched); h_ir=$(total $pol heap)
  line=$(awk -v s="$s_ir" -v h="$h_ir" -v n=$rounds -v p=$pol 'BEGIN {
    d = s / n; b = h / n;
    printf "%s: decision (sched_submit + sched_complete, 10000 queued): %.0f instructions, ", p, d;
    printf "bare binary heap push + pop: %.0f, ratio %.2f (target <= 3: %s)\n", b, d / b, (d / b <= 3) ? "holds" : "missed";
    printf "%.0f %.0f %.2f", d, b, d / b }')
  echo "$line" | head -1
  set -- $(echo "$line" | tail -1)
  key=${pol//-/_}
  result="$result ${key}_ir=$1 ${key}_ratio=$3"
  [ $pol = edf-admit ] && base="ir_per_decision=$1 heap_ir=$2 ratio=$3"
done
echo "RESULT bench=sched_cost $base$result"
