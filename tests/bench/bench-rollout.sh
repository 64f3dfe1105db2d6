#!/usr/bin/env bash
# A rolling update of a 3-replica deployment under steady load through the local API, on the real
# engine and a real registry on loopback: v1 -> v2 (a 50 MB layer, pulled first) -> the broken v3,
# which berthd rolls back to v2 by itself. Prints the phases and
#   RESULT bench=rollout pull_s=.. roll_s=.. refused_during_roll=.. rollback_s=.. window_s=..
# pull_s: the new version's desired -> its image pulled; roll_s: pulled -> 3 replicas of it ready;
# refused_during_roll: requests refused for lack of a ready replica (no_ready_replica) from the
# change to the end of the roll; rollback_s: the broken version's first replica exit -> the
# last-known-good fully ready with the broken version gone. Target: refused 0, rollback_s at most
# the failure window (images.rollout_window_s) + 5 s.
# Usage: tests/bench/bench-rollout.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
[ -x "$build/berthd" ] || { echo "bench-rollout: $build/berthd missing (run make)" >&2; exit 1; }
export BERTH_BUILD=$build
# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
own=""
if [ -z "${SERVICES_DIR:-}" ]; then own=1; services_start; fi
# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"
source "$here/scripts/test-registry.sh"
tmp=$(mktemp -d)
containers=()
berthd_pid=""
dev=bench-rollout-$$
WINDOW_S=20
finish_up() {
  [ -n "$berthd_pid" ] && kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null || true
  for c in $("$BERTH_PODMAN" ps -aq --filter "label=io.berth.owner=$dev" 2>/dev/null); do containers+=("$c"); done
  scratch_cleanup
}
trap finish_up EXIT

registry_start >/dev/null
registry_push berth-worker:v1 >/dev/null
registry_push berth-worker:v2 --big 50 >/dev/null
registry_push berth-worker:v3 WORKER_FAULT=crash >/dev/null
R=$BERTH_REGISTRY
port=$(free_port); api=$(free_port)
spec() { # VERSION TAG
  cat > "$tmp/deployments.json" <<EOF
{"version":$1,"deployments":[{"name":"m","image":"$R/berth-worker:$2","env":{"WORKER_STARTUP_MS":"300"},
 "replicas":{"min":2,"max":3,"desired":3},"inference":{"port":$port},
 "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
 "restart":{"policy":"always","backoff_initial_ms":200}}]}
EOF
}
cat > "$tmp/config.json" <<EOF
{ "device_id": "$dev", "data_dir": "$tmp/data", "deployments_file": "$tmp/deployments.json", "log_level": "info",
  "engine": { "socket": "$BERTH_ENGINE_SOCK" }, "broker": { "enabled": false },
  "api": { "listen": "127.0.0.1", "port": $api }, "autoscale": { "enabled": false },
  "images": { "registries": "$R", "lkg_stable_s": 5, "rollout_window_s": $WINDOW_S } }
EOF
log() { grep -cE "$1" "$tmp/berthd.log" || true; }
ready_of() { # TAG N: N running replicas of TAG and berthd serving N
  local n
  n=$("$BERTH_PODMAN" ps --filter "label=io.berth.owner=$dev" --format '{{.Image}}' | grep -c ":$1\$" || true)
  [ "$n" -eq "$2" ] && [ "$(T=1 code "http://127.0.0.1:$api/v2/models/m/ready")" = 200 ] &&
    [ "$(log "event=replica_ready deployment=m")" -ge 1 ]
}
all_ready() { # TAG: 3 replicas of TAG running, no other
  [ "$("$BERTH_PODMAN" ps --filter "label=io.berth.owner=$dev" --format '{{.Image}}' | sort -u)" = "$R/berth-worker:$1" ] &&
    [ "$("$BERTH_PODMAN" ps --filter "label=io.berth.owner=$dev" -q | wc -l)" -eq 3 ]
}
spec 1 v1
mkdir -p "$tmp/data"
"$build/berthd" -c "$tmp/config.json" > "$tmp/berthd.log" 2>&1 &
berthd_pid=$!
WAIT_STEP=0.05 wait_until 90 "v1 on 3 replicas" all_ready v1 >/dev/null
WAIT_STEP=0.05 wait_until 30 "v1 last-known-good" grep -q "event=last_known_good" "$tmp/berthd.log"

${CC:-cc} -O2 -o "$tmp/loadgen" "$here/tests/bench/loadgen.c"
awk 'BEGIN {print "t_ms,model,deadline_ms,class,cost_ms"; for (i = 0; i < 6000; i++) printf "%d,m,1000,normal,2\n", i * 10}' > "$tmp/trace.csv"
"$tmp/loadgen" --trace "$tmp/trace.csv" --target "127.0.0.1:$api" --conns 8 --raw "$tmp/load.csv" > "$tmp/load.out" 2>&1 &
load=$!
sleep 2 # steady load on v1 before the change (part of what is measured)
spec 2 v2
t_change=$(now_ms)
kill -HUP "$berthd_pid"
WAIT_STEP=0.02 wait_until 300 "v2 pulled" grep -q "event=image_pulled .*berth-worker:v2" "$tmp/berthd.log"
t_pulled=$(now_ms)
WAIT_STEP=0.02 wait_until 120 "v2 on 3 replicas" all_ready v2
t_rolled=$(now_ms)
sent_roll_end=$(( t_rolled - t_change ))
WAIT_STEP=0.05 wait_until 30 "v2 last-known-good" grep -q "event=last_known_good .*berth-worker:v2" "$tmp/berthd.log"
mark=$(wc -l < "$tmp/berthd.log")
spec 3 v3
kill -HUP "$berthd_pid"
first_exit() { tail -n +"$mark" "$tmp/berthd.log" | grep -q "event=replica_exited deployment=m"; }
WAIT_STEP=0.02 wait_until 120 "v3's first exit" first_exit
t_fail=$(now_ms)
back() { tail -n +"$mark" "$tmp/berthd.log" | grep -q "event=rollback " && all_ready v2; }
WAIT_STEP=0.02 wait_until 120 "back on v2" back
t_back=$(now_ms)
wait "$load" 2>/dev/null || true # the load runs to its end: its answers are written then

refused=$(awk -F, -v a=2000 -v b=$(( sent_roll_end + 2000 )) '$9 == "no_ready_replica" && $5 >= a && $5 <= b' "$tmp/load.csv" | wc -l)
answered=$(awk -F, '$3 == 200' "$tmp/load.csv" | wc -l)
reason=$(grep -o 'event=rollback .*"reason":"[a-z_]*"' "$tmp/berthd.log" | sed 's/.*"reason":"\([a-z_]*\)"/\1/' | tail -1)
pull_s=$(awk -v a="$t_change" -v b="$t_pulled" 'BEGIN {printf "%.2f", (b - a) / 1000}')
roll_s=$(awk -v a="$t_pulled" -v b="$t_rolled" 'BEGIN {printf "%.2f", (b - a) / 1000}')
rollback_s=$(awk -v a="$t_fail" -v b="$t_back" 'BEGIN {printf "%.2f", (b - a) / 1000}')
echo "bench-rollout: 3 replicas under ~100 requests/s through the local API ($answered answered)"
echo "  v1 -> v2 (50 MB layer): pulled in $pull_s s, then rolled in $roll_s s; refused for lack of a ready replica: $refused"
echo "  v2 -> broken v3: rolled back ($reason) $rollback_s s after its first exit; window $WINDOW_S s"
echo "  targets: refused_during_roll = 0: $([ "$refused" -eq 0 ] && echo met || echo MISSED); rollback_s <= $((WINDOW_S + 5)): $(awk -v x="$rollback_s" -v w=$((WINDOW_S + 5)) 'BEGIN {print (x <= w) ? "met" : "MISSED"}')"
echo "RESULT bench=rollout pull_s=$pull_s roll_s=$roll_s refused_during_roll=$refused rollback_s=$rollback_s window_s=$WINDOW_S reason=$reason"
