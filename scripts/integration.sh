#!/usr/bin/env bash
# Runs every tests/integration/test-*.sh against a real broker and container
# engine started for this run (scripts/test-services.sh), and stops them after.
# Usage: scripts/integration.sh [BUILD_DIR] [TEST...]
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd); shift || true
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("$here"/tests/integration/test-*.sh)

export BERTH_BUILD="$build"
# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
services_start || { echo "integration: services failed to start"; echo "integration: 0 passed, 1 failed"; exit 1; }
trap services_stop EXIT INT TERM

passed=0; failed=0; failing=()
for t in "${tests[@]}"; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .sh)
  start=$(date +%s)
  if bash "$t" > "$SERVICES_DIR/$name.log" 2>&1; then
    passed=$((passed + 1)); printf '  %-34s ok   (%ss)\n' "$name" "$(( $(date +%s) - start ))"
  else
    failed=$((failed + 1)); failing+=("$name")
    printf '  %-34s FAIL (%ss)\n' "$name" "$(( $(date +%s) - start ))"
    tail -40 "$SERVICES_DIR/$name.log" | sed 's/^/    | /'
  fi
done
echo "integration: $passed passed, $failed failed"
[ $failed -eq 0 ]
