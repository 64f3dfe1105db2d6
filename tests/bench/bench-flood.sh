#!/usr/bin/env bash
# bench-flood: load held under hostile load. berthd serves inference (load.py, FLOOD_RATE
# requests/s, deadline 500 ms, cost 5 ms) to two worker replicas on the real engine, first for
# FLOOD_S seconds alone (the baseline), then for FLOOD_S seconds while 2,000 connections that send
# nothing and 300 that send their headers one byte a second hold the local API, and a burst of
# 5,000 commands arrives on MQTT. Measured: /v2/health/live latency on fresh connections during
# the flood (p99), the on-time share of inference in both phases, replies received for the
# burst, and berthd's RSS growth across the flood (after it ended and settled).
# Usage: tests/bench/bench-flood.sh [BUILD_DIR]   (FLOOD_S default 30, FLOOD_RATE default 20)
# Last line: RESULT bench=flood live_p99_ms=.. infer_ontime_pct=.. baseline_ontime_pct=..
#            ontime_ratio=.. replies=../5000 rss_growth_kb=..
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
export BERTH_BUILD=$(cd "${1:-$here/build}" && pwd)
FLOOD_S=${FLOOD_S:-30}
RATE=${FLOOD_RATE:-20}
N=5000
started_services=0
if [ -z "${BERTH_ENGINE_SOCK:-}" ] || [ ! -S "${BERTH_ENGINE_SOCK:-/nonexistent}" ]; then
  source "$here/scripts/test-services.sh"
  services_start || { echo "bench-flood: the test services did not start"; exit 1; }
  started_services=1
fi
TEST=bench-flood
WITH_BROKER=1
source "$here/tests/integration/lib-infer.sh"
set +e
trap 'cleanup; [ $started_services -eq 1 ] && services_stop || true' EXIT INT TERM
ulimit -n 8192

echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 2 normal 500)]}" > "$WORK/deployments.json"
berthd_start
wait_until 40 "the condition" ready_is w 2 || { echo "bench-flood: replicas never ready"; exit 1; }
wait_until 10 "the condition" log_has 'event=connected' || { echo "bench-flood: berthd never connected"; exit 1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$BERTHD_PID/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$BERTHD_PID/stat"; }
# the scheduler's run-queue wait of berthd's thread (ns) and its number of runs: how long berthd
# waited for a CPU after it became runnable, which no code of berthd's can shorten
sched() { cat "/proc/$BERTHD_PID/schedstat" 2>/dev/null || echo "0 0 0"; }
hz=$(getconf CLK_TCK)
ontime() { awk -v p="$1" '$1 == p { n++; if ($2 == 200) ok++ } END { printf "%.1f", n ? 100 * ok / n : 0 }' "$WORK/load.out"; }

# phase 1: the baseline
c0=$(cpu_ticks)
$PY "$repo/tests/integration/load.py" "$API" w "$WORK/load.out" "base:$RATE:$FLOOD_S:500:5"
rss0=$(rss)
c1=$(cpu_ticks)
s1=$(sched)
base=$(ontime base)
echo "baseline: berthd CPU $(( (c1 - c0) * 100 / hz / FLOOD_S ))% of one core"
echo "baseline: on-time ${base}% of $(grep -c '^base ' "$WORK/load.out") requests; rss ${rss0} KiB"

# phase 2: the same load under the flood and the command burst
mosquitto_sub -p "$BERTH_BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/+/reply" -F '%p' > "$WORK/replies" 2>/dev/null &
sub=$!
sleep 0.3
$PY "$repo/tests/integration/load.py" "$API" w "$WORK/load.out" "flood:$RATE:$FLOOD_S:500:5" &
load=$!
$PY "$repo/tests/integration/flood.py" 127.0.0.1 "$API_PORT" --idle 2000 --slow 300 --secs "$FLOOD_S" --probe "" \
  > "$WORK/flood.out" 2>&1 &
flood=$!
FLOOD_PROBE_TRACE="$BERTH_BUILD/bench-flood-probes.txt" \
  $PY "$repo/tests/integration/flood.py" 127.0.0.1 "$API_PORT" --secs "$FLOOD_S" --probe /v2/health/live \
  > "$WORK/probe.out" 2>&1 &
probe=$!
sleep 3
$PY -c "
for i in range($N):
    print('{\"id\":\"fl-%d\",\"verb\":\"ping\"}' % i)" | \
  mosquitto_pub -p "$BERTH_BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/ping" -l
wait "$load" "$flood" "$probe"
c2=$(cpu_ticks)
s2=$(sched)
echo "flood: berthd CPU $(( (c2 - c1) * 100 / hz / FLOOD_S ))% of one core; $(echo "$s1 $s2" | awk '{ n = $6 - $3; printf "run-queue wait %.2f ms per wake-up (%d wake-ups)", n ? ($5 - $2) / n / 1e6 : 0, n }')"
replies_n() { grep -o '"id":"fl-[0-9]*"' "$WORK/replies" | sort -u | wc -l; }
wait_until 60 "the condition" bash -c "[ \$(grep -o '\"id\":\"fl-[0-9]*\"' '$WORK/replies' | sort -u | wc -l) -ge $N ]" || true
replies=$(replies_n)
kill "$sub" 2>/dev/null
sleep 5   # settled: the flood's connections are closed
rss1=$(rss)
cat "$WORK/flood.out" "$WORK/probe.out"
flood_ot=$(ontime flood)
echo "outcomes (phase status reason count):"
awk '{ c[$1" "$2" "$3]++ } END { for (k in c) print "  " k, c[k] }' "$WORK/load.out" | sort
p99=$(sed -n 's/^RESULT .*probe_p99_ms=\([0-9.]*\).*/\1/p' "$WORK/probe.out")
pfail=$(sed -n 's/^RESULT .*probe_fail=\([0-9]*\).*/\1/p' "$WORK/probe.out")
echo "flood: on-time ${flood_ot}% of $(grep -c '^flood ' "$WORK/load.out") requests; live probes failed: ${pfail:-?}; replies $replies/$N; rss ${rss1} KiB"
ratio=$(awk -v a="$flood_ot" -v b="$base" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
echo "RESULT bench=flood live_p99_ms=${p99:-nan} infer_ontime_pct=$flood_ot baseline_ontime_pct=$base ontime_ratio=$ratio replies=$replies/$N rss_growth_kb=$(( rss1 - rss0 ))"
