#!/usr/bin/env bash
# The second half of bench-dispatch: scheduling on the real path. berthd supervises the shared
# trace's three models as reference-worker deployments on the real engine (detector: urgent,
# 100 ms, 2 replicas; classifier: normal, 1000 ms, 1; summarizer: batch, 10000 ms, 2), 2 compute
# slots. A slice of the shared trace is replayed with its sizes (tests/bench/loadgen.c --sizes:
# the input shape is [1,size], the worker spends 10 us of CPU per element of it plus the part of
# the cost the gateway cannot see, sent as parameters.cost_ms), at the speedup that puts the slice
# at an offered load of about 1.5. Each policy runs twice, in the order edf-mc, edf-preempt,
# edf-preempt, edf-mc (berthd restarted with the other policy; the replicas are adopted), so a
# drift in the shared machine's load falls on both alike. Prints per run the urgent misses and the
# share of requests answered on time, and a last line
#   DISPATCH_SCHED mc_urgent_miss_pct=.. mc_ontime_pct=.. preempt_urgent_miss_pct=.. preempt_ontime_pct=.. ...
# Needs the test services (BERTH_ENGINE_SOCK, BERTH_WORKER_IMAGE). Called by bench-dispatch.sh.
# Env: BENCH_SCHED_LIMIT (requests, default 600), BENCH_SCHED_SKIP (default 1000), BENCH_SCHED_LOAD
# (1.5), BENCH_SCHED_COST_SCALE (default 0.5: every cost, the size part included, scaled by it, and
# the speedup with it, so the load stays; it keeps CPU time short of the 100 ms urgent deadline on a
# busy machine), BENCH_SCHED_DEADLINE_SCALE (default 1: every deadline multiplied, for a machine so
# busy that CPU time inflates many times in wall time).
TEST=bench-dispatch-sched
SCHED_JSON='"slots": 2, "policy": "edf-mc"'
source "$(dirname "$0")/../integration/lib-infer.sh"
TRACE=${BERTH_TRACE:-$repo/tests/fixtures/traces/azure-code-1h.csv}
LIMIT=${BENCH_SCHED_LIMIT:-600}
SKIP=${BENCH_SCHED_SKIP:-1000}
LOAD=${BENCH_SCHED_LOAD:-1.5}
SCALE=${BENCH_SCHED_COST_SCALE:-0.5}
DSCALE=${BENCH_SCHED_DEADLINE_SCALE:-1}
dl() { awk -v d="$1" -v f="$DSCALE" 'BEGIN {printf "%d", d * f}'; }
US_PER_KELEM=10000   # the trace's cost: 4 + size/100 + generated/25 ms
WORKER_US=$(awk -v u=$US_PER_KELEM -v f="$SCALE" 'BEGIN {printf "%d", u * f}')

${CC:-cc} -O2 -o "$WORK/loadgen" "$repo/tests/bench/loadgen.c"

deployment() { # NAME PORT REPLICAS CLASS DEADLINE_MS
  cat <<EOD
{"name":"$1","image":"$BERTH_WORKER_IMAGE","replicas":{"min":1,"max":4,"desired":$3},
 "inference":{"port":$2,"concurrency":1},"sla":{"class":"$4","deadline_ms":$5},
 "env":{"WORKER_US_PER_KELEM":"$WORKER_US"},
 "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
 "liveness":{"type":"http","path":"/v2/health/live","period_ms":500,"timeout_ms":2000,"failure_threshold":5}}
EOD
}
echo "{\"version\":1,\"deployments\":[$(deployment detector "$P" 2 urgent "$(dl 100)"),
  $(deployment classifier $((P + 5)) 1 normal "$(dl 1000)"), $(deployment summarizer $((P + 10)) 2 batch "$(dl 10000)")]}" \
  > "$WORK/deployments.json"

# The slice and the speedup that gives it the offered load LOAD on 2 slots.
awk -F, -v s="$SKIP" -v n="$LIMIT" 'NR == 1 || (NR > s + 1 && NR <= s + n + 1)' "$TRACE" > "$WORK/slice.csv"
SPEEDUP=$(awk -F, -v l="$LOAD" -v f="$SCALE" 'NR == 1 {next} NR == 2 {t0 = $1} {w += $5; t = $1} END {printf "%.3f", l * 2 * (t - t0) / (w * f)}' "$WORK/slice.csv")

all_ready() { ready_is detector 2 && ready_is classifier 1 && ready_is summarizer 2; }
run() { # POLICY N
  SCHED_JSON="\"slots\": 2, \"policy\": \"$1\""
  berthd_start
  wait_until 90 "the replicas of the three models ready" all_ready || { bad "$1: replicas not ready"; exit 1; }
  wait_until 60 "berthd's /v2/health/ready" http_is 200 "$API/v2/health/ready" || { bad "$1: API not ready"; exit 1; }
  "$WORK/loadgen" --trace "$WORK/slice.csv" --target "127.0.0.1:$API_PORT" --speedup "$SPEEDUP" \
    --sizes "$US_PER_KELEM" --cost-scale "$SCALE" --deadline-scale "$DSCALE" --conns 128 --raw "$WORK/$1.$2.csv" > "$WORK/$1.$2.out"
  berthd_kill -TERM
  [ -n "${BENCH_SCHED_KEEP:-}" ] && cp "$WORK/$1.$2.csv" "$WORK/$1.$2.out" "$BENCH_SCHED_KEEP/" 2>/dev/null
  # urgent misses and on-time share of this run (latency_ms,class,status,deadline_ms,...)
  awk -F, -v p="$1" -v n="$2" '{t++; on = ($3 == 200 && $1 >= 0 && $1 <= $4); o += on;
      if ($2 == "urgent") {u++; um += !on}}
    END {printf "  %s run %d: %d requests, urgent miss %.2f%%, on time %.2f%%\n", p, n, t, 100 * um / u, 100 * o / t}' \
    "$WORK/$1.$2.csv"
}
echo "dispatch-sched: requests $SKIP..$((SKIP + LIMIT)) of $(basename "$TRACE") with sizes, costs x$SCALE, deadlines x$DSCALE, speedup $SPEEDUP (offered load $LOAD on 2 slots), 5 worker replicas; load average $(cut -d' ' -f1 /proc/loadavg)"
run edf-mc 1; run edf-preempt 1; run edf-preempt 2; run edf-mc 2
sum() { # POLICY: urgent miss % and on-time % over both runs
  cat "$WORK/$1".*.csv | awk -F, '{t++; on = ($3 == 200 && $1 >= 0 && $1 <= $4); o += on;
      if ($2 == "urgent") {u++; um += !on}} END {printf "%.2f %.2f", 100 * um / u, 100 * o / t}'
}
read -r mu mo <<< "$(sum edf-mc)"; read -r pu po <<< "$(sum edf-preempt)"
pre=$(log_count 'event=replica_paused')
echo "DISPATCH_SCHED load_average=$(cut -d' ' -f1 /proc/loadavg) mc_urgent_miss_pct=$mu mc_ontime_pct=$mo preempt_urgent_miss_pct=$pu preempt_ontime_pct=$po pauses=$pre speedup=$SPEEDUP requests=$((4 * LIMIT))"
finish
