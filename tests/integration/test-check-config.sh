#!/usr/bin/env bash
# berthd's command line: --check-config on every config fixture and the documented
# example, --version/--help, and a daemon that starts with a valid config, tells
# systemd it is ready, answers its watchdog, reloads on SIGHUP and stops on SIGTERM
# within 1 s. Needs no broker or engine; uses them when the test services run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${BERTH_BUILD:-$repo/build}
berthd=$build/berthd
[ -x "$berthd" ] || { echo "no $berthd (run make first)"; exit 1; }
work=$(mktemp -d /tmp/berth-cc.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# shellcheck source=tests/integration/lib-common.sh
source "$repo/tests/integration/lib-common.sh"

# --- every bad fixture exits 2 and names the file and the key -----------------
# Expected keys come from the unit test's table, the one place they are written.
table=$(sed -n 's/^[[:space:]]*{ "\(bad-[^"]*\.json\)", "\([^"]*\)".*/\1 \2/p' "$repo/tests/unit/test_config.c")
n=0
for f in "$repo"/tests/fixtures/config/bad-*.json; do
  name=$(basename "$f")
  if ! grep -q "^$name " <<<"$table"; then bad "$name has no expected error in tests/unit/test_config.c"; continue; fi
  key=$(grep "^$name " <<<"$table" | cut -d' ' -f2)
  rc=0; out=$("$berthd" --check-config "$f" 2>&1) || rc=$?
  want="berthd: invalid config: $f: ${key:+$key: }"
  if [ $rc -ne 2 ]; then bad "$name: exit $rc, expected 2 ($out)"
  elif [[ "$out" != "$want"* ]]; then bad "$name: '$out' does not start with '$want'"
  else n=$((n + 1)); fi
done
[ $n -ge 15 ] && ok "$n bad configs exit 2 naming file and key" || bad "only $n bad configs checked"

for f in "$repo"/docs/examples/config.json "$repo"/tests/fixtures/config/good-minimal.json; do
  rc=0; out=$("$berthd" --check-config "$f" 2>&1) || rc=$?
  [ $rc -eq 0 ] && [[ "$out" == *": ok "* ]] && ok "valid: ${f#$repo/}" || bad "${f#$repo/}: exit $rc: $out"
done
rc=0; "$berthd" --check-config "$work/missing.json" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] && ok "missing file exits 2" || bad "missing file: exit $rc"

# --- --version, --help, bad usage -------------------------------------------------
out=$("$berthd" --version) && [[ "$out" =~ ^berthd\ [0-9]+\.[0-9]+\.[0-9]+ ]] && ok "--version: $out" || bad "--version: $out"
out=$("$berthd" --help) && [[ "$out" == *--check-config* ]] && ok "--help" || bad "--help: $out"
rc=0; "$berthd" --no-such-option >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] && ok "unknown option exits 2" || bad "unknown option: exit $rc"

# --- the daemon -----------------------------------------------------------------
mkdir -p "$work/data"
cat > "$work/config.json" <<JSON
{
  "device_id": "gw-cc-test",
  "data_dir": "$work/data",
  "log_level": "info",
  "engine": { "socket": "${BERTH_ENGINE_SOCK:-$work/no-engine.sock}" },
  "broker": { "host": "127.0.0.1", "port": ${BERTH_BROKER_PORT:-1883} },
  "api": { "enabled": false }
}
JSON
# A stand-in for systemd's end of the notify socket.
/usr/bin/python3 -u -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode(), flush=True)
' "$work/notify.sock" > "$work/notify.log" 2>&1 &
pids+=($!)
wait_until 5 "the NOTIFY_SOCKET listener" test -S "$work/notify.sock" || bad "no notify socket"

NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=200000 "$berthd" -c "$work/config.json" 2> "$work/berthd.log" &
bpid=$!; pids+=($bpid)

ready_or_gone() { grep -qx 'READY=1' "$work/notify.log" 2>/dev/null || ! kill -0 $bpid 2>/dev/null; }
wait_until 5 "READY=1 (or berthd's exit)" ready_or_gone || true
grep -qx 'READY=1' "$work/notify.log" && ok "READY=1 sent to NOTIFY_SOCKET" || bad "no READY=1 (log: $(tail -3 "$work/berthd.log"))"

# Stays up: still running 1.5 s later, and answered the watchdog meanwhile (every 100 ms).
sleep 1.5  # a window in which berthd keeps running and kicking
kill -0 $bpid 2>/dev/null && ok "still running after 1.5 s" || bad "berthd exited: $(tail -5 "$work/berthd.log")"
wd=$(grep -cx 'WATCHDOG=1' "$work/notify.log" || true)
[ "$wd" -ge 5 ] && ok "WATCHDOG=1 sent $wd times in ~1.5 s (WATCHDOG_USEC=200000)" || bad "only $wd WATCHDOG=1"

# SIGHUP with a broken file: refused, logged, still running. With a good one: reloaded.
cp "$work/config.json" "$work/config.good"
echo '{"device_id": "gw-cc-test", "data_dir": 7}' > "$work/config.json"
kill -HUP $bpid
wait_until 3 "event=reload_refused in berthd.log" grep -q 'event=reload_refused' "$work/berthd.log" || true
grep -q 'event=reload_refused.*data_dir' "$work/berthd.log" && kill -0 $bpid && ok "SIGHUP with a bad config refused, still running" \
  || bad "bad reload: $(tail -3 "$work/berthd.log")"
sed 's/"log_level": "info"/"log_level": "debug"/' "$work/config.good" > "$work/config.json"
kill -HUP $bpid
wait_until 3 "event=reloaded in berthd.log" grep -q 'event=reloaded' "$work/berthd.log" || true
grep -q 'event=reloaded .*applied=log_level .*log_level=dbg' "$work/berthd.log" && ok "SIGHUP reload applied log_level=debug" \
  || bad "reload: $(tail -3 "$work/berthd.log")"

# SIGTERM: clean exit 0 within 1 s.
t0=$(now_ms)
kill -TERM $bpid
rc=0; wait $bpid || rc=$?
t1=$(now_ms)
ms=$((t1 - t0))
[ $rc -eq 0 ] && ok "SIGTERM: exit code 0" || bad "SIGTERM: exit code $rc"
[ $ms -lt 1000 ] && ok "SIGTERM: exited in $ms ms (< 1000)" || bad "SIGTERM: took $ms ms"
grep -qx 'STOPPING=1' "$work/notify.log" && ok "STOPPING=1 sent" || bad "no STOPPING=1"
echo "sigterm_exit_ms=$ms"

[ $fails -eq 0 ] || { echo "check-config: $fails failed"; exit 1; }
echo "check-config: all passed"
