#!/usr/bin/env bash
# Runs every libFuzzer binary in DIR for $FUZZ_SECONDS each, on its committed
# seed corpus (tests/fuzz/corpus/NAME/), into a scratch corpus copy, with the JSON dictionary
# tests/fuzz/json.dict (tokens, escapes, NUL and other control characters).
set -u
dir=$1; here=$(cd "$(dirname "$0")" && pwd)
secs=${FUZZ_SECONDS:-10}
passed=0; failed=0
for f in "$dir"/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  cp -r "$here/corpus/$name/." "$work/" 2>/dev/null || true
  dict=()
  [ -f "$here/json.dict" ] && dict=(-dict="$here/json.dict")
  if "$f" -max_total_time="$secs" -max_len=65536 -print_final_stats=0 "${dict[@]}" "$work" > "$work.log" 2>&1; then
    passed=$((passed + 1)); echo "  $name ok ($(grep -c . <(ls "$work")) inputs)"
  else
    failed=$((failed + 1)); echo "  $name FAIL"; tail -30 "$work.log"
  fi
  rm -rf "$work" "$work.log"
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
