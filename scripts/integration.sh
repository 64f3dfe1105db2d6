#!/usr/bin/env bash
# Runs every tests/integration/test-*.sh against a real broker and container
# engine started for this run (scripts/test-services.sh), and stops them after.
# Usage: scripts/integration.sh [BUILD_DIR] [TEST...]
#   TEST is a path or a short name (smoke = tests/integration/test-smoke.sh).
# Each test runs in its own process group under a time limit (INTEGRATION_TIMEOUT seconds,
# default 600); between tests the broker and engine are brought back up if a test left
# them stopped, and containers a test left behind are removed (and reported).
# Logs: BUILD_DIR/integration-logs/NAME.log (kept after the run).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd) || { echo "integration: no build dir ${1:-build}"; exit 1; }
shift || true
tests=()
for t in "$@"; do
  if [ -e "$t" ]; then tests+=("$t"); else tests+=("$here/tests/integration/test-$t.sh"); fi
done
[ ${#tests[@]} -gt 0 ] || tests=("$here"/tests/integration/test-*.sh)
limit=${INTEGRATION_TIMEOUT:-600}
logs=$build/integration-logs
mkdir -p "$logs"

export BERTH_BUILD="$build"
# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
trap services_stop EXIT
trap 'echo "integration: interrupted"; exit 130' INT TERM
services_start || { echo "integration: services failed to start"; echo "integration: 0 passed, 1 failed"; exit 1; }

passed=0; failed=0; failing=()
for t in "${tests[@]}"; do
  name=$(basename "$t" .sh)
  [ -e "$t" ] || { failed=$((failed + 1)); failing+=("$name"); echo "  $name: no such test"; continue; }
  start=$(date +%s)
  timeout -k 10 "$limit" bash "$t" > "$logs/$name.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); printf '  %-34s ok   (%ss)\n' "$name" "$secs"
  else
    failed=$((failed + 1)); failing+=("$name")
    why="FAIL"; [ $rc -eq 124 ] || [ $rc -eq 137 ] && why="FAIL: timed out after ${limit}s"
    printf '  %-34s %s (%ss)\n' "$name" "$why" "$secs"
    tail -40 "$logs/$name.log" | sed 's/^/    | /'
    echo "    full log: $logs/$name.log"
  fi
  # the next test starts from running services and an empty engine
  broker_start >/dev/null 2>&1 || echo "  integration: broker did not come back after $name"
  engine_start >/dev/null 2>&1 || echo "  integration: engine did not come back after $name"
  left=$("$BERTH_PODMAN" ps -aq 2>/dev/null | wc -l)
  if [ "$left" -gt 0 ]; then
    echo "  integration: $name left $left container(s); removing them"
    "$BERTH_PODMAN" rm -fa -t 0 >/dev/null 2>&1 || true
  fi
done
# Repeated at the end so that a log that keeps only its tail still says why.
for name in "${failing[@]}"; do
  [ -f "$logs/$name.log" ] || continue
  echo "integration: $name: why (last lines of $logs/$name.log):"
  { grep -E 'FAIL|expected|timed out' "$logs/$name.log" | tail -4; tail -6 "$logs/$name.log"; } | sed 's/^/    | /'
done
[ $failed -eq 0 ] || echo "integration: failing: ${failing[*]}"
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
