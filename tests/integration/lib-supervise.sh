# tests/integration/lib-supervise.sh - shared by test-supervise-*.sh: berthd with a deployments file on the real engine.
# Source it after setting TEST (a short name). Needs BERTH_ENGINE_SOCK and BERTH_WORKER_IMAGE
# (scripts/test-services.sh). Every container this run makes carries io.berth.owner=$DEV and is
# removed by the trap, with berthd.
set -euo pipefail
# shellcheck source=tests/integration/lib-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-common.sh"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BERTH_BUILD:-$repo/build}
: "${BERTH_ENGINE_SOCK:?needs the test services (scripts/test-services.sh)}"
: "${BERTH_WORKER_IMAGE:?needs the test services}"
PY=/usr/bin/python3
WORK=$(mktemp -d "/tmp/berth-$TEST.XXXXXX")
DEV="it-$TEST-$$"
# shellcheck source=tests/integration/lib-trust.sh
source "$repo/tests/integration/lib-trust.sh"
trust_keys "$WORK/trust" "$build"
BERTHD_PID=
FAILS=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

eng() { # METHOD PATH: one Engine API call, body on stdout
  curl -s --max-time 10 --unix-socket "$BERTH_ENGINE_SOCK" -X "$1" "http://d/v1.41$2"
}
owned_json() {
  eng GET "/containers/json?all=1&filters=$($PY -c 'import sys,json,urllib.parse; print(urllib.parse.quote(json.dumps({"label":["io.berth.owner="+sys.argv[1]]})))' "$DEV")"
}
# ctr_count [DEPLOYMENT] [running]: containers of this run (of DEPLOYMENT), optionally only running
ctr_count() {
  owned_json | $PY -c '
import sys, json
dep = sys.argv[1]; running = sys.argv[2] == "running"
n = 0
for c in json.load(sys.stdin):
    if dep and c["Labels"].get("io.berth.deployment") != dep: continue
    if running and c["State"] != "running": continue
    n += 1
print(n)' "${1:-}" "${2:-}"
}
# ctr_field DEPLOYMENT INDEX FIELD: Id|State|hash of that replica's container ("" if none)
ctr_field() {
  owned_json | $PY -c '
import sys, json
d, i, f = sys.argv[1:4]
for c in json.load(sys.stdin):
    l = c["Labels"]
    if l.get("io.berth.deployment") == d and l.get("io.berth.replica") == i:
        print(l.get("io.berth.spec-hash") if f == "hash" else c[f]); break' "$1" "$2" "$3"
}
ctr_pid() { eng GET "/containers/$1/json" | $PY -c 'import sys,json; print(json.load(sys.stdin)["State"]["Pid"])'; }

# A free block of 20 loopback ports (the machine is shared).
pick_ports() {
  local base
  for _ in $(seq 50); do
    base=$(( 20000 + (RANDOM % 600) * 20 ))  # below the ephemeral range (32768+)
    if ! ss -ltn | awk '{print $4}' | grep -qE ":($(seq -s'|' $base $((base + 19))))\$"; then
      echo $base; return 0
    fi
  done
  return 1
}

write_config() {
  cat > "$WORK/config.json" <<EOC
{ "device_id": "$DEV", "data_dir": "$WORK/data", "deployments_file": "$WORK/deployments.json",
  "log_level": "info", "engine": { "socket": "$BERTH_ENGINE_SOCK", "timeout_ms": 5000 },
  "broker": { "enabled": false }, "api": { "enabled": false }, "autoscale": { "enabled": false }, $TRUST_JSON ${EXTRA_CONFIG:-} }
EOC
}
berthd_start() {
  mkdir -p "$WORK/data"
  write_config
  "$build/berthd" -c "$WORK/config.json" >> "$WORK/berthd.log" 2>&1 &
  BERTHD_PID=$!
}
berthd_kill() { # -9 or -TERM
  [ -n "$BERTHD_PID" ] || return 0
  kill "${1:--TERM}" "$BERTHD_PID" 2>/dev/null || true
  wait "$BERTHD_PID" 2>/dev/null || true
  BERTHD_PID=
}
cleanup() {
  berthd_kill -TERM
  if [ -S "$BERTH_ENGINE_SOCK" ]; then
    for id in $(owned_json | $PY -c 'import sys,json; [print(c["Id"]) for c in json.load(sys.stdin)]' 2>/dev/null); do
      eng DELETE "/containers/$id?force=true" >/dev/null || true
    done
  fi
  if [ "$FAILS" -ne 0 ] || [ -n "${KEEP:-}" ]; then
    echo "--- berthd log (last 60 lines) ---"; tail -60 "$WORK/berthd.log" 2>/dev/null || true
  fi
  [ -n "${KEEP_LOG:-}" ] && cp "$WORK/berthd.log" "$KEEP_LOG" || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log_has() { grep -qE "$1" "$WORK/berthd.log"; }
log_count() { grep -cE "$1" "$WORK/berthd.log" || true; }

# ready_now DEPLOYMENT: replicas berthd considers ready, replaying its ready/unready lines.
ready_now() {
  $PY - "$1" "$WORK/berthd.log" <<'EOP'
import re, sys
dep, path = sys.argv[1], sys.argv[2]
ready = set()
for line in open(path, errors="replace"):
    m = re.search(r"event=replica_(ready|unready) deployment=(\S+) replica=(\d+)", line)
    if m and m.group(2) == dep:
        (ready.add if m.group(1) == "ready" else ready.discard)(m.group(3))
print(len(ready))
EOP
}
ready_is() { [ "$(ready_now "$1")" -eq "$2" ]; }
count_is() { [ "$(ctr_count "$1" "${3:-}")" -eq "$2" ]; }

finish() {
  if [ "$FAILS" -eq 0 ]; then echo "$TEST: all passed"; exit 0; fi
  echo "$TEST: $FAILS failed"; exit 1
}
