#!/usr/bin/env bash
# berth-sim's output on the shared trace at offered loads 0.5, 0.9 and 1.5 under every
# policy, compared byte for byte with tests/fixtures/sim/ (a change of scheduling
# behaviour must update the fixture on purpose: run with --update and commit it; the
# release number in the first line is not compared).
# With --site (the site preset's berth-sim, make site-build): berth-sim --site scenarios instead,
# compared the same way with tests/fixtures/sim/site-*.txt, and each must end with no double run and
# every replica running again on the majority.
# Usage: tests/sim-fixture.sh BUILD_DIR [--update] [--site]
set -euo pipefail
cd "$(dirname "$0")/.."
O=${1:-build}; UPDATE=${2:-}; SITE=${3:-}
[ "$UPDATE" = --site ] && { SITE=--site; UPDATE=${3:-}; }
SIM=$O/berth-sim
if [ "$SITE" = --site ]; then
  DIR=tests/fixtures/sim; n=0; fail=0
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  # name: arguments (gateways cut off and healed, killed, with datagram loss and delay; a gateway that
  # joins, a holder and then the leader leaving, and a site of two that cannot fail over a cut)
  while IFS='|' read -r name args; do
    # shellcheck disable=SC2086
    "$SIM" --site $args > "$tmp/$name.txt" || { echo "sim-fixture: berth-sim --site $args failed" >&2; fail=1; continue; }
    n=$((n + 1))
    grep -q '^RESULT .* double_run_ms=0 .*unrecovered=0 ' "$tmp/$name.txt" ||
      { echo "sim-fixture: $name: $(tail -1 "$tmp/$name.txt")" >&2; fail=1; }
    if [ "$UPDATE" = --update ]; then cp "$tmp/$name.txt" "$DIR/$name.txt"
    elif ! cmp -s "$tmp/$name.txt" "$DIR/$name.txt"; then
      echo "sim-fixture: $name differs from $DIR/$name.txt:" >&2; diff "$DIR/$name.txt" "$tmp/$name.txt" | head -20 >&2 || true
      fail=1
    fi
  done <<'EOF2'
site-3-faults|3 --duration-s 45 --at 10:cut:1 --at 20:heal:1 --at 25:kill:2
site-5-loss|5 --replicas 3 --duration-s 40 --loss-pct 20 --delay-ms 20 --seed 7 --at 8:kill:1 --at 20:cut:3 --at 30:heal:3
site-join-leave|3 --joiners 1 --duration-s 30 --at 5:join:4 --at 12:leave:1 --at 20:leave:2 --at 25:cut:4 --at 27:heal:4
EOF2
  [ "$UPDATE" = --update ] && { echo "sim-fixture: wrote $n site outputs to $DIR"; exit $fail; }
  [ $fail -eq 0 ] || exit 1
  echo "sim-fixture: $n berth-sim --site outputs identical to $DIR"; exit 0
fi
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
