#!/usr/bin/env bash
# The hardware watchdog path of berthd: with watchdog.enabled and watchdog.device pointing at a FIFO
# (standing in for /dev/watchdog, whose driver reboots the gateway when kicks stop), berthd kicks it
# from its event loop every timeout_s / 3; a stalled loop (berthd stopped with SIGSTOP) stops the
# kicks, so the watchdog would fire; a clean stop disarms it with the magic close ('V').
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${BERTH_BUILD:-$repo/build}
PY=/usr/bin/python3
W=$(mktemp -d /tmp/berth-watchdog.XXXXXX)
BPID=; RPID=
cleanup() {
  [ -n "$BPID" ] && { kill -CONT "$BPID"; kill -TERM "$BPID"; wait "$BPID"; } 2>/dev/null
  [ -n "$RPID" ] && { kill "$RPID"; wait "$RPID"; } 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
FAILS=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
# shellcheck source=tests/integration/lib-common.sh
source "$repo/tests/integration/lib-common.sh"

mkfifo "$W/watchdog"
# The "driver": logs "MS BYTE" for every byte berthd writes, "MS EOF" when it closes the device.
$PY - "$W/watchdog" "$W/kicks" <<'EOP' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)  # open before berthd is: it opens without waiting
out = open(sys.argv[2], "w", buffering=1)
seen = False
while True:
    try:
        b = os.read(fd, 64)
    except BlockingIOError:  # a writer, no data yet
        time.sleep(0.01); continue
    ms = int(time.time() * 1000)
    if not b:
        if seen:
            out.write(f"{ms} EOF\n"); break
        time.sleep(0.01); continue  # no writer yet
    seen = True
    for c in b.decode(errors="replace"):
        out.write(f"{ms} {c}\n")
EOP
RPID=$!
wait_until 5 "the watchdog reader's kicks file" test -e "$W/kicks" || bad "the watchdog reader did not start"
cat > "$W/config.json" <<EOC
{ "device_id": "it-watchdog-$$", "data_dir": "$W/data", "log_level": "info",
  "engine": { "socket": "$W/no-engine.sock" }, "broker": { "enabled": false }, "api": { "enabled": false },
  "watchdog": { "enabled": true, "device": "$W/watchdog", "timeout_s": 3 } }
EOC
"$build/berthd" -c "$W/config.json" > "$W/berthd.log" 2>&1 &
BPID=$!
kicks() { awk '$2 == "k" { n++ } END { print n + 0 }' "$W/kicks" 2>/dev/null || echo 0; }
kicks_at_least() { [ "$(kicks)" -ge "$1" ]; }
wait_until 10 "4 watchdog kicks" kicks_at_least 4 && ok "berthd kicks the watchdog ($(kicks) kicks)" || { bad "only $(kicks) kicks"; cat "$W/berthd.log"; }
sleep 2  # a window of kicks to measure their gaps over
# every 1 s (timeout 3 s / 3): no gap near the timeout
gap=$(awk '$2 == "k" { if (p) { d = $1 - p; if (d > m) m = d } p = $1 } END { print m + 0 }' "$W/kicks")
[ "$gap" -gt 500 ] && [ "$gap" -lt 1600 ] && ok "largest gap between kicks $gap ms (timeout 3000 ms)" || bad "largest gap $gap ms"

# a stalled loop: no kick for as long as it stalls (sleep 3.5: that window)
n0=$(kicks); kill -STOP "$BPID"; sleep 3.5; n1=$(kicks); kill -CONT "$BPID"
[ "$n1" -eq "$n0" ] && ok "no kick while berthd is stalled 3.5 s (the watchdog would fire)" || bad "$((n1 - n0)) kicks while stopped"
wait_until 3 "$((n1 + 1)) watchdog kicks" kicks_at_least $((n1 + 1)) && ok "kicks resume when the loop runs again" || bad "no kick after SIGCONT"

# a clean stop disarms it
kill -TERM "$BPID"; wait "$BPID"; rc=$?; BPID=
wait "$RPID" 2>/dev/null; RPID=
[ $rc -eq 0 ] && ok "berthd exits 0 on SIGTERM" || bad "exit $rc"
tail -2 "$W/kicks" | awk '{print $2}' | tr '\n' ' ' | grep -q '^V EOF $' && ok "magic close: 'V', then the device closed" \
  || bad "did not end with the magic close: $(tail -3 "$W/kicks" | tr '\n' ' ')"
grep -q "event=watchdog_unavailable" "$W/berthd.log" && bad "berthd said the watchdog was unavailable"

[ "$FAILS" -eq 0 ] && { echo "watchdog: all passed"; exit 0; }
echo "watchdog: $FAILS failed"; exit 1
