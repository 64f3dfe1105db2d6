#!/usr/bin/env bash
# Runs each unit-test binary (optionally under $TEST_RUNNER, e.g. qemu) and
# ends with one line "unit: N passed, N failed" counting cmocka test cases.
set -u
passed=0; failed=0; bad_bins=()
for t in "$@"; do
  out=$($TEST_RUNNER "$t" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -E '^\[  (PASSED|FAILED|  OK|ERROR) *\]|^\[ RUN|FAIL' | grep -v '^\[ RUN' | grep -v '^\[       OK' || true
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ $rc -ne 0 ] && [ -z "$f" ]; then
    failed=$((failed + 1)); printf '%s\n' "$out" | tail -20
  fi
  [ $rc -ne 0 ] && bad_bins+=("$(basename "$t")")
  printf '  %-28s %s\n' "$(basename "$t")" "$([ $rc -eq 0 ] && echo ok || echo FAIL)"
done
echo "unit: $passed passed, $failed failed"
[ ${#bad_bins[@]} -eq 0 ] || { echo "failing: ${bad_bins[*]}"; exit 1; }
