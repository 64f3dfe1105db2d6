#!/usr/bin/env bash
# `make demo` in its short form (scripts/demo.sh --quick, about 40 s): the whole agent on its own
# broker and engine under overload, a replica killed, the broker cut. Asserts what the summary
# promises a newcomer: every request class served, the killed replica replaced, no telemetry row
# lost across the outage (sequence numbers counted by a consumer), and a chart written.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BERTH_BUILD:-$here/build}
out=$(mktemp -d /tmp/berth-demo-test.XXXXXX)
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The demo starts (and removes) its own broker and engine, whatever the caller runs.
env -u SERVICES_DIR DEMO_SKIP_DEPS=1 DEMO_OUT="$out" timeout -k 10 120 \
  "$here/scripts/demo.sh" --quick "$build" > "$out/demo.log" 2>&1
rc=$?
cat "$out/demo.log"
[ $rc -eq 0 ] || fail "scripts/demo.sh --quick exited $rc"

result=$(grep '^RESULT demo ' "$out/demo.log" | tail -1)
[ -n "$result" ] || fail "no RESULT line in the summary"
val() { echo "$result" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
num() { local v; v=$(val "$1"); case $v in ''|*[!0-9]*) fail "$1 is '$v', not a count";; esac; echo "$v"; }

for c in urgent normal batch; do
  [ "$(num ${c}_requests)" -gt 0 ] || fail "no $c requests were sent"
  [ "$(num ${c}_on_time)" -gt 0 ] || fail "no $c request was answered on time"
done
[ "$(num kills)" -ge 1 ] || fail "no replica was killed"
[ "$(num replaced)" -eq "$(num kills)" ] || fail "$(num kills) kills but $(num replaced) replacements"
grep -q 'replaced and ready in [0-9]* ms' "$out/demo.log" || fail "the summary shows no replaced replica"
[ "$(num rows_buffered)" -gt 0 ] || fail "nothing was buffered while the broker was down"
[ "$(num rows_forwarded)" -gt 0 ] || fail "no telemetry row reached the consumer"
[ "$(num lost)" -eq 0 ] || fail "$(num lost) telemetry rows lost"
grep -Eq 'duplicates [0-9]+, lost 0$' "$out/demo.log" || fail "the summary does not show 0 lost rows"

png=$out/demo.png
[ -s "$png" ] || fail "no chart at $png"
[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$png is not a PNG"
[ "$(stat -c %s "$png")" -gt 20000 ] || fail "$png is suspiciously small"
svc=$(sed -n 's/^demo: stopping the broker and the engine, removing //p' "$out/demo.log" | tail -1)
[ -n "$svc" ] || fail "the demo did not say it stopped its services"
[ ! -e "$svc" ] || fail "the demo left its services directory behind: $svc"
echo "ok: demo summary: $(echo "$result" | sed 's/^RESULT demo //')"
