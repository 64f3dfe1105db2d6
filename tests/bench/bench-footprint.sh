#!/usr/bin/env bash
# berthd's memory and idle cost next to the broker it talks to, in one run: the Mosquitto broker
# and podman's Docker API from scripts/test-services.sh, berthd with three deployments of the
# reference worker (one replica each), the broker connected. Measured from /proc/PID/smaps_rollup
# (RSS, PSS, USS = private clean + private dirty, private dirty) after 20 s idle and again after
# 10,000 zero-cost requests through the local API; live_ms is exec to /v2/health/live answering;
# idle_cpu_pct is berthd's CPU time over the 20 s idle window. FOOTPRINT_PRESET=minimal measures
# the minimal preset (no local API: no live_ms, no requests).
# Usage: tests/bench/bench-footprint.sh [BUILD_DIR]
# Env: FOOTPRINT_IDLE_S (20), FOOTPRINT_REQUESTS (10000), FOOTPRINT_PRESET (gateway|minimal),
#      FOOTPRINT_MAX_DIRTY_KB (when set: exit 1 if idle private dirty exceeds it - the regression check),
#      FOOTPRINT_MAX_GROWTH_KB (when set: exit 1 if private dirty after the requests exceeds idle by more),
#      FOOTPRINT_SMAPS (a file: berthd's /proc/PID/smaps at the idle reading is copied there, and
#      to FILE.after after the requests).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
IDLE_S=${FOOTPRINT_IDLE_S:-20}
REQUESTS=${FOOTPRINT_REQUESTS:-10000}
PRESET=${FOOTPRINT_PRESET:-gateway}
berthd=$build/berthd
if [ "$PRESET" = minimal ]; then
  make -C "$here" --no-print-directory O="$build/minimal" minimal_defconfig >/dev/null
  make -C "$here" --no-print-directory O="$build/minimal" -j2 "$build/minimal/berthd" >/dev/null
  berthd=$build/minimal/berthd
fi
[ -x "$berthd" ] || { echo "bench-footprint: $berthd missing (run make)" >&2; exit 1; }
export BERTH_BUILD=$build

# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
own=""
if [ -z "${SERVICES_DIR:-}" ]; then own=1; services_start; fi
# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"
tmp=$(mktemp -d)
containers=()
berthd_pid=""
dev="bench-footprint-$$"
cleanup() {
  [ -n "$berthd_pid" ] && kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null || true
  # the replicas berthd left running (it does not stop them on exit)
  for c in $("$BERTH_PODMAN" ps -aq --filter "label=io.berth.owner=$dev" 2>/dev/null); do containers+=("$c"); done
  scratch_cleanup
}
trap cleanup EXIT

# smaps FIELD PID: kB of one smaps_rollup field
smaps() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$2/smaps_rollup"; }
uss() { echo $(( $(smaps Private_Clean "$1") + $(smaps Private_Dirty "$1") )); }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

deployment() { # NAME CLASS DEADLINE PORT
  cat <<EOF
    { "name": "$1", "image": "$BERTH_WORKER_IMAGE", "replicas": 1,
      "sla": { "class": "$2", "deadline_ms": $3 }, "inference": { "port": $4 },
      "readiness": { "type": "http", "path": "/v2/health/ready", "period_ms": 500 } }
EOF
}
p1=$(free_port); p2=$(free_port); p3=$(free_port); api_port=$(free_port)
cat > "$tmp/deployments.json" <<EOF
{ "version": 1, "deployments": [
$(deployment m1 urgent 200 "$p1"),
$(deployment m2 normal 1000 "$p2"),
$(deployment m3 batch 10000 "$p3")
] }
EOF
api='"api": { "listen": "127.0.0.1", "port": '$api_port' },'
[ "$PRESET" = minimal ] && api=""
cat > "$tmp/config.json" <<EOF
{ "device_id": "$dev", "data_dir": "$tmp/data", "deployments_file": "$tmp/deployments.json",
  "log_level": "wrn", "engine": { "socket": "$BERTH_ENGINE_SOCK" },
  "broker": { "host": "127.0.0.1", "port": $BERTH_BROKER_PORT },
  $api
  "autoscale": { "enabled": false } }
EOF
mkdir -p "$tmp/data"

# A binary just linked has dirty page-cache pages until written back; mapped by berthd alone they
# would count as its private dirty memory. Written back first, they count as clean.
sync "$berthd" 2>/dev/null || true
t0=$(now_ms)
"$berthd" -c "$tmp/config.json" > "$tmp/berthd.log" 2>&1 &
berthd_pid=$!
live_ms=-1
if [ "$PRESET" != minimal ]; then
  live() { [ "$(T=1 code "http://127.0.0.1:$api_port/v2/health/live")" = 200 ]; }
  WAIT_STEP=0.002 wait_until 10 "berthd's /v2/health/live" live || { cat "$tmp/berthd.log" >&2; exit 1; }
  live_ms=$(( $(now_ms) - t0 ))
fi
# all three replicas running and ready (the engine's view, so the minimal preset is measured alike)
ready3() {
  local n=0 p
  for p in $p1 $p2 $p3; do [ "$(T=1 code "http://127.0.0.1:$p/v2/health/ready")" = 200 ] && n=$((n + 1)); done
  [ $n -eq 3 ]
}
wait_until 60 "the three replicas ready" ready3 || { echo "bench-footprint: the three replicas did not become ready" >&2; cat "$tmp/berthd.log" >&2; exit 1; }
if [ "$PRESET" != minimal ]; then
  api_ready() { [ "$(T=1 code "http://127.0.0.1:$api_port/v2/health/ready")" = 200 ]; }
  wait_until 15 "berthd's /v2/health/ready" api_ready || true
fi
broker_pid=$(cat "$SERVICES_DIR/broker/pid")
hz=$(getconf CLK_TCK)
c0=$(cpu_ticks "$berthd_pid")
sleep "$IDLE_S"   # the idle window being measured: nothing is sent to berthd during it
c1=$(cpu_ticks "$berthd_pid")
idle_cpu=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v s="$IDLE_S" 'BEGIN {printf "%.2f", 100 * t / hz / s}')
[ -n "${FOOTPRINT_SMAPS:-}" ] && cp "/proc/$berthd_pid/smaps" "$FOOTPRINT_SMAPS"
rss=$(smaps Rss "$berthd_pid"); pss=$(smaps Pss "$berthd_pid"); u=$(uss "$berthd_pid"); pd=$(smaps Private_Dirty "$berthd_pid")
brss=$(smaps Rss "$broker_pid"); buss=$(uss "$broker_pid")
echo "bench-footprint ($PRESET): idle ${IDLE_S} s with 3 deployments and the broker connected"
printf '  %-8s rss %6s kB  pss %6s kB  uss %6s kB  private dirty %6s kB\n' berthd "$rss" "$pss" "$u" "$pd"
printf '  %-8s rss %6s kB  pss %6s kB  uss %6s kB  private dirty %6s kB\n' broker "$brss" "$(smaps Pss "$broker_pid")" "$buss" "$(smaps Private_Dirty "$broker_pid")"
echo "  exec to /v2/health/live: ${live_ms} ms; idle CPU ${idle_cpu}%"

pd_after=$pd
if [ "$PRESET" != minimal ]; then
  ${CC:-cc} -O2 -o "$tmp/loadgen" "$here/tests/bench/loadgen.c"
  # zero-cost requests: a trace of REQUESTS rows, 1 ms apart, across the three models
  awk -v n="$REQUESTS" 'BEGIN {print "t_ms,model,deadline_ms,class,cost_ms";
    for (i = 0; i < n; i++) { m = i % 3; printf "%d,m%d,%d,%s,0\n", i / 4, m + 1, (m == 0 ? 200 : (m == 1 ? 1000 : 10000)), (m == 0 ? "urgent" : (m == 1 ? "normal" : "batch")) } }' > "$tmp/trace.csv"
  "$tmp/loadgen" --trace "$tmp/trace.csv" --target "127.0.0.1:$api_port" --conns 16 > "$tmp/load.out"
  echo "  $REQUESTS requests: $(tail -1 "$tmp/load.out" | sed 's/^LOADGEN //')"
  # the second reading once berthd is idle again: no busy slot and no backlog in /v1/state
  idle() { [ "$(curl -s -m 1 "http://127.0.0.1:$api_port/v1/state" | json '(d["dispatch"]["scheduler"]["slots_busy"], d["dispatch"]["scheduler"]["backlog_ms"])')" = "(0, 0)" ]; }
  wait_until 10 "berthd idle after the requests (/v1/state)" idle || true
  pd_after=$(smaps Private_Dirty "$berthd_pid")
  [ -n "${FOOTPRINT_SMAPS:-}" ] && cp "/proc/$berthd_pid/smaps" "$FOOTPRINT_SMAPS.after"
  echo "  after the requests: rss $(smaps Rss "$berthd_pid") kB, private dirty $pd_after kB ($(( pd_after - pd )) kB more)"
fi
echo "RESULT bench=footprint preset=$PRESET berthd_rss_kb=$rss berthd_pss_kb=$pss berthd_uss_kb=$u berthd_private_dirty_kb=$pd broker_rss_kb=$brss broker_uss_kb=$buss live_ms=$live_ms idle_cpu_pct=$idle_cpu private_dirty_after_load_kb=$pd_after"
if [ -n "${FOOTPRINT_MAX_DIRTY_KB:-}" ] && [ "$pd" -gt "$FOOTPRINT_MAX_DIRTY_KB" ]; then
  echo "bench-footprint: idle private dirty $pd kB is over the limit of $FOOTPRINT_MAX_DIRTY_KB kB" >&2
  exit 1
fi
if [ -n "${FOOTPRINT_MAX_GROWTH_KB:-}" ] && [ $((pd_after - pd)) -gt "$FOOTPRINT_MAX_GROWTH_KB" ]; then
  echo "bench-footprint: private dirty grew by $((pd_after - pd)) kB under $REQUESTS requests, over the limit of $FOOTPRINT_MAX_GROWTH_KB kB" >&2
  exit 1
fi
