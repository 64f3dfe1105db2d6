#!/usr/bin/env bash
# bench-heal: time to heal on the real engine. 20 SIGKILLs of worker replicas (kill -> the
# replica ready again) and 10 hangs caught by liveness (period 1 s, threshold 3; hang -> ready
# again), measured from berthd's replica_ready log lines (wall_ms). The baseline is what
# Kubernetes' default liveness settings (period 10 s, threshold 3) need just to detect a hang.
# Usage: tests/bench/bench-heal.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
export BERTH_BUILD=$(cd "${1:-$here/build}" && pwd)
KILLS=${HEAL_KILLS:-20}
HANGS=${HEAL_HANGS:-10}
REPLICAS=4
LIVE_PERIOD_MS=1000
LIVE_THRESHOLD=3

started_services=0
if [ -z "${BERTH_ENGINE_SOCK:-}" ] || [ ! -S "${BERTH_ENGINE_SOCK:-/nonexistent}" ]; then
  # shellcheck source=scripts/test-services.sh
  source "$here/scripts/test-services.sh"
  services_start || { echo "bench-heal: the test services did not start"; exit 1; }
  started_services=1
fi
TEST=bench-heal
source "$here/tests/integration/lib-supervise.sh"
trap 'cleanup; [ $started_services -eq 1 ] && services_stop || true' EXIT INT TERM

P=$(pick_ports)
# Readiness every 100 ms so a restarted replica is seen ready promptly; reset_after 2 s so
# kills of one replica a few seconds apart are separate incidents (first restart immediate).
cat > "$WORK/deployments.json" <<EOF
{"version":1,"deployments":[
 {"name":"heal","image":"$BERTH_WORKER_IMAGE","replicas":$REPLICAS,"inference":{"port":$P},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "liveness":{"type":"http","path":"/v2/health/live","period_ms":$LIVE_PERIOD_MS,"timeout_ms":500,
              "failure_threshold":$LIVE_THRESHOLD},
  "restart":{"policy":"always","backoff_initial_ms":1000,"backoff_max_ms":300000,"reset_after_ms":2000}}]}
EOF
berthd_start
wait_until 30 "ready replicas of heal = $REPLICAS" ready_is heal $REPLICAS || { echo "bench-heal: replicas never ready"; FAILS=1; exit 1; }

# ready_after REPLICA T_MS: wall_ms of the first replica_ready of REPLICA logged after T_MS
ready_after() {
  $PY - "$WORK/berthd.log" "$1" "$2" <<'EOP'
import re, sys
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"event=replica_ready deployment=heal replica=(\d+) .*wall_ms=(\d+)", line)
    if m and m.group(1) == sys.argv[2] and int(m.group(2)) > int(sys.argv[3]):
        print(m.group(2)); break
EOP
}
wait_ready_after() { # REPLICA T_MS TIMEOUT_S -> prints wall_ms
  local r=
  got() { r=$(ready_after "$1" "$2"); [ -n "$r" ]; }
  WAIT_STEP=0.02 wait_until "$3" "replica $1 ready after $2" got "$1" "$2" || return 1
  echo "$r"
}
declare -a last_ready=()
for i in $(seq 0 $((REPLICAS - 1))); do last_ready[$i]=$(now_ms); done
# (a pause by the clock, not a readiness guess: the replica is ready; the pause lets its restart
# count reset, so every kill is measured from the same state)
settle() { # REPLICA: wait until it has been ready for > reset_after (+1 s housekeeping tick)
  local due=$(( ${last_ready[$1]} + 3100 ))
  while [ "$(now_ms)" -lt $due ]; do sleep 0.05; done
}

crash=()
echo "bench-heal: $KILLS SIGKILLs over $REPLICAS replicas"
for k in $(seq 0 $((KILLS - 1))); do
  i=$((k % REPLICAS))
  settle $i
  id=$(ctr_field heal $i Id); pid=$(ctr_pid "$id")
  t=$(now_ms); kill -KILL "$pid"
  r=$(wait_ready_after $i "$t" 30) || { echo "  kill $k: replica $i not ready again"; FAILS=1; exit 1; }
  crash+=($((r - t))); last_ready[$i]=$r
done
echo "  crash mttr ms: ${crash[*]}"

hang=(); detect=()
echo "bench-heal: $HANGS hangs caught by liveness (period ${LIVE_PERIOD_MS} ms, threshold $LIVE_THRESHOLD)"
for k in $(seq 0 $((HANGS - 1))); do
  i=$((k % REPLICAS))
  settle $i
  kills0=$(log_count "event=replica_kill deployment=heal replica=$i reason=liveness")
  t=$(now_ms)
  curl -s --max-time 2 -X POST -d hang "http://127.0.0.1:$((P + i))/admin/fault" >/dev/null || true
  r=$(wait_ready_after $i "$t" 60) || { echo "  hang $k: replica $i not ready again"; FAILS=1; exit 1; }
  kl=$(grep -E "event=replica_kill deployment=heal replica=$i reason=liveness" "$WORK/berthd.log" | sed -n "$((kills0 + 1))p")
  detect+=($(( $(sed -E 's/.*wall_ms=([0-9]+).*/\1/' <<<"$kl") - t )))
  hang+=($((r - t))); last_ready[$i]=$r
done
echo "  hang mttr ms: ${hang[*]}"
echo "  hang detect ms (hang -> liveness kill): ${detect[*]}"

pct() { # P values... : nearest-rank percentile
  local p=$1; shift
  printf '%s\n' "$@" | sort -n | awk -v p="$p" '{v[NR]=$1} END {r=int((p*NR+99)/100); if (r<1) r=1; print v[r]}'
}
k8s=$(( 10000 * LIVE_THRESHOLD ))
echo "RESULT bench=heal crash_mttr_p50_ms=$(pct 50 "${crash[@]}") crash_mttr_p95_ms=$(pct 95 "${crash[@]}")" \
  "hang_mttr_p95_ms=$(pct 95 "${hang[@]}") hang_detect_p95_ms=$(pct 95 "${detect[@]}") k8s_default_detect_ms=$k8s"
