#!/usr/bin/env bash
# berth-sim's output on the shared trace at offered loads 0.5, 0.9 and 1.5 under every
# policy, compared byte for byte with tests/fixtures/sim/ (a change of scheduling
# behaviour must update the fixture on purpose: run with --update and commit it; the
# release number in the first line is not compared).
# Usage: tests/sim-fixture.sh BUILD_DIR [--update]
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}; UPDATE=${2:-}
SIM=$O/berth-sim
TRACE=tests/fixtures/traces/azure-code-1h.csv
DIR=tests/fixtures/sim
SLOTS=2
[ -x "$SIM" ] || { echo "sim-fixture: $SIM missing (run make)" >&2; exit 1; }
load1=$(awk -F, -v s=$SLOTS 'NR==1 {next} NR==2 {t0=$1} {w+=$5; t=$1} END {printf "%.6f", w/(s*(t-t0))}' "$TRACE")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
# The header's release number is not scheduling behaviour: a version bump leaves the fixtures be.
unversioned() { sed '1s/^berth-sim [^ ]* /berth-sim - /' "$1"; }
for load in 0.5 0.9 1.5; do
  k=$(awk -v l="$load" -v b="$load1" 'BEGIN {printf "%.3f", l/b}')
  for p in fifo edf edf-admit edf-reserve edf-preempt edf-mc; do
    name=$p-$load.txt
    "$SIM" --trace "$TRACE" --policy "$p" --slots $SLOTS --replicas 2 --speedup "$k" > "$tmp/$name"
    n=$((n + 1))
    if [ "$UPDATE" = --update ]; then
      mkdir -p "$DIR"; cp "$tmp/$name" "$DIR/$name"
    elif ! cmp -s <(unversioned "$tmp/$name") <(unversioned "$DIR/$name"); then
      echo "sim-fixture: $p at load $load differs from $DIR/$name:" >&2
      diff <(unversioned "$DIR/$name") <(unversioned "$tmp/$name") | head -20 >&2 || true
      fail=1
    fi
  done
done
[ "$UPDATE" = --update ] && { echo "sim-fixture: wrote $n outputs to $DIR"; exit 0; }
[ $fail -eq 0 ] || exit 1
echo "sim-fixture: $n berth-sim outputs identical to $DIR"
