#!/usr/bin/env bash
# The chaos experiment end to end on the real engine: three worker replicas serve a light load through
# berthd's local API while `berthctl chaos DEV w --interval 2 --duration 10 --min-running 2` kills one
# random replica every 2 s. The kills come at the interval, the engine never runs fewer than 2 of the
# replicas, every victim is replaced, and the run's report (the chaos_done event on MQTT and the chaos
# section of /v1/state) gives the kills, a plausible mean and p95 time from kill to a ready
# replacement, and exactly as many failed requests as the producers saw fail (a second producer
# sends requests whose deadline cannot be met, so the count is not trivially 0). Then the same
# experiment from the config's chaos.* keys, after a restart of berthd that adopts its replicas.
TEST=chaos
WITH_BROKER=1
SCHED_JSON='"slots": 3, "policy": "edf-admit"'
source "$(dirname "$0")/lib-infer.sh"
: "${BERTH_BROKER_PORT:?needs the test broker (scripts/test-services.sh)}"
echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 3 normal 2000)]}" > "$WORK/deployments.json"
CTL=("$build/berthctl" -b "127.0.0.1:$BERTH_BROKER_PORT")
SUB_PID=; POLL_PID=; LOAD_PIDS=()
stop_helpers() {
  touch "$WORK/poll.stop" "$WORK/load.stop-run" "$WORK/tight.stop-run"
  for p in "${LOAD_PIDS[@]}" $POLL_PID; do wait "$p" 2>/dev/null || true; done
  [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null; wait "$SUB_PID" 2>/dev/null || true
  SUB_PID=; POLL_PID=; LOAD_PIDS=()
}
trap 'stop_helpers; cleanup' EXIT INT TERM

# --- the events of this device, one JSON payload a line
mosquitto_sub -p "$BERTH_BROKER_PORT" -q 1 -t "berth/v1/$DEV/events" > "$WORK/events" 2>/dev/null &
SUB_PID=$!

berthd_start
wait_until 30 "ready replicas of w = 3" ready_is w 3 || bad "w never got 3 ready replicas"
for i in 0 1 2; do wait_until 5 "w replica $i ready in the dispatcher" disp_ready w $i || bad "replica $i not ready in the dispatcher"; done
online() { "${CTL[@]}" devices --json 2>/dev/null | grep -q "\"$DEV\""; }
wait_until 10 "$DEV online on the broker" online || bad "$DEV not online on the broker"

# --- polled every 100 ms while the test runs: running containers of w in the engine, and replicas
# answering ready when asked directly (not through berthd)
workers_ready() {
  local n=0 i
  for i in 0 1 2; do [ "$(code_of -m 0.3 "http://127.0.0.1:$((P + i))/v2/health/ready")" = 200 ] && n=$((n + 1)); done
  echo $n
}
poll_engine() {
  while [ ! -e "$WORK/poll.stop" ]; do
    echo "$(now_ms) $(ctr_count w running) $(workers_ready)" >> "$WORK/running"
    sleep 0.1  # a sample every 0.1 s (a sampler, not a wait)
  done
}
# chaos_done_count: chaos_done events received so far
chaos_done_count() { grep -o '"event":"chaos_done"' "$WORK/events" 2>/dev/null | wc -l; }
chaos_done_seen() { [ "$(chaos_done_count)" -ge "$1" ]; }
# chaos_done_n N: the detail of the N-th chaos_done event, as JSON
chaos_done_n() {
  $PY - "$WORK/events" "$1" <<'EOP'
import json, sys
found = []
for line in open(sys.argv[1]):
    try: batch = json.loads(line)
    except ValueError: continue
    for row in batch.get("rows", []):
        if row["data"].get("event") == "chaos_done":
            found.append(row["data"]["detail"])
print(json.dumps(found[int(sys.argv[2]) - 1]))
EOP
}
# min_running FROM_MS TO_MS: the fewest running replicas the engine showed between the two times
# (COLUMN 2: running in the engine, 3: answering ready)
min_running() { awk -v a="$1" -v b="$2" -v c="${3:-2}" '$1 >= a && $1 <= b { if (m == "" || $c < m) m = $c } END { print m }' "$WORK/running"; }

# ticks FROM_MS: wall times of the run's ticks (kills and skips) logged after FROM_MS, one a line
ticks() { grep -oE "event=chaos_(kill|skip) deployment=w .*wall_ms=[0-9]+" "$WORK/berthd.log" \
  | sed 's/.*wall_ms=//' | awk -v a="$1" '$1 >= a'; }
# at_interval START_MS: every tick after START_MS falls 2000 ms after the previous one (+-300 ms)
at_interval() {
  ticks "$1" | awk 'NR > 1 { d = $1 - p; if (d < 1700 || d > 2300) { print "gap " d; bad = 1 } } { p = $1 }
    END { exit bad }'
}

poll_engine & POLL_PID=$!
# --- the load: 20 requests/s of 5 ms, deadline 2 s, all along
$PY "$repo/tests/integration/load.py" "$API" w "$WORK/load" run:20:0:2000:5 & LOAD_PIDS+=($!)
wait_until 10 "the load generator's first results" test -s "$WORK/load" || bad "the load generator sent nothing"
# some load before the first kill: 20 answers (about 1 s at 20/s)
answered_at_least() { [ "$(wc -l < "$WORK/load")" -ge "$1" ]; }
wait_until 10 "20 answered requests" answered_at_least 20 || bad "the load generator got few answers"

# ======================= 1. from berthctl ==========================================================
t0=$(now_ms)
"${CTL[@]}" chaos "$DEV" w --interval 2 --duration 10 --min-running 2 > "$WORK/chaos.out" 2>&1 \
  && ok "berthctl chaos: $(cat "$WORK/chaos.out")" || bad "berthctl chaos: $(cat "$WORK/chaos.out")"
# a second producer while the run is surely active (from its first kill, for 4 s): 3 requests/s
# whose deadline (1 ms) cannot be met, refused or timed out - failures the run must count
wait_until 5 "berthd log: event=chaos_(kill|skip) deployment=w" log_has "event=chaos_(kill|skip) deployment=w" || bad "no chaos tick within 5 s"
$PY "$repo/tests/integration/load.py" "$API" w "$WORK/tight" run:3:4:1:5
wait_until 60 "chaos_done event #1 on the broker" chaos_done_seen 1 || bad "no chaos_done event within 60 s"
t1=$(now_ms)
# load after the run: 10 more answers (about 0.5 s at 20/s)
n_at_done=$(wc -l < "$WORK/load")
wait_until 10 "10 requests answered after the run" answered_at_least $((n_at_done + 10)) || bad "no answers after the run"
touch "$WORK/load.stop-run"
for p in "${LOAD_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
LOAD_PIDS=()


rep=$(chaos_done_n 1)
echo "chaos_done: $rep"
get() { echo "$rep" | jget "d[\"$1\"]"; }
kills=$(get kills); skipped=$(get skipped); recovered=$(get recovered); pending=$(get pending)
mean=$(get mttr_mean_ms); p95=$(get mttr_p95_ms); failed=$(get failed_requests)
[ "$(get deployment)" = w ] && [ "$(get running)" = False ] && [ "$(get interval_ms)" = 2000 ] \
  && [ "$(get duration_ms)" = 10000 ] && [ "$(get min_running)" = 2 ] \
  && ok "chaos_done event on MQTT for w (interval 2 s, duration 10 s, min_running 2)" || bad "event: $rep"
# ticks at 2, 4, 6 and 8 s; the one at 10 s ends the run
[ "$((kills + skipped))" -eq 4 ] && [ "$kills" -ge 3 ] && ok "$kills kills, $skipped skipped in 4 intervals" \
  || bad "kills $kills skipped $skipped (4 intervals expected)"
start_log=$(grep -oE "event=chaos_kill deployment=w .*wall_ms=[0-9]+|event=chaos_skip deployment=w .*wall_ms=[0-9]+" \
  "$WORK/berthd.log" | head -1 | sed 's/.*wall_ms=//')
first=$((start_log - t0))
[ "$first" -ge 1500 ] && [ "$first" -le 3000 ] && ok "first kill ${first} ms after the command" \
  || bad "first tick ${first} ms after the command"
gaps=$(ticks "$start_log" | awk 'NR > 1 { printf "%d ", $1 - p } { p = $1 }')
at_interval "$start_log" >/dev/null && ok "kills every 2 s (gaps ms: $gaps)" || bad "ticks not at the interval: $gaps"
[ "$recovered" -eq "$kills" ] && [ "$pending" -eq 0 ] && ok "every victim replaced and ready ($recovered)" \
  || bad "recovered $recovered pending $pending of $kills"
[ "$mean" -gt 0 ] && [ "$mean" -lt 5000 ] && [ "$p95" -ge "$mean" ] && [ "$p95" -lt 5000 ] \
  && ok "kill to ready replacement: mean $mean ms, p95 $p95 ms" || bad "mttr mean $mean p95 $p95"
# the logged recoveries are the ones reported
logged=$(grep -oE "event=chaos_recovered deployment=w replica=[0-9]+ mttr_ms=[0-9]+" "$WORK/berthd.log" | sed 's/.*mttr_ms=//')
lmean=$(echo "$logged" | awk '{ s += $1; n++ } END { if (n) printf "%d", s / n }')
[ "$(echo "$logged" | grep -c .)" -eq "$recovered" ] && [ "$lmean" = "$mean" ] && ok "the log's recoveries match ($lmean ms)" \
  || bad "logged recoveries: $(echo "$logged" | tr '\n' ' ') (mean $lmean)"
# the engine: never fewer than 2 running (and the dips seen)
lo=$(min_running "$t0" "$t1")
dips=$(awk -v a="$t0" -v b="$t1" '$1 >= a && $1 <= b && $2 < 3' "$WORK/running" | wc -l)
[ -n "$lo" ] && [ "$lo" -ge 2 ] && ok "the engine ran at least $lo replicas throughout ($dips of $(wc -l < "$WORK/running") polls at 2)" \
  || bad "the engine ran only ${lo:-?} replicas at some point"
lo=$(min_running "$t0" "$t1" 3)
[ -n "$lo" ] && [ "$lo" -ge 2 ] && ok "at least $lo replicas answered ready throughout" \
  || bad "only ${lo:-?} replicas answered ready at some point"
# failed requests: what the producers saw
cat "$WORK/load" "$WORK/tight" > "$WORK/all"
sent=$(wc -l < "$WORK/all"); cfail=$(grep -vc '^run 200 ' "$WORK/all" || true)
echo "client: $sent requests, $cfail failed: $(grep -v '^run 200 ' "$WORK/all" | sort | uniq -c | tr '\n' ';')"
[ "$sent" -ge 150 ] || bad "only $sent requests sent"
[ "$cfail" -ge 1 ] || bad "no request failed: the tight producer should have been refused"
[ "$failed" -eq "$cfail" ] && ok "failed_requests $failed = the producers' failed requests" \
  || bad "failed_requests $failed, producers saw $cfail fail"
lfail=$(grep -vc '^run 200 ' "$WORK/load" || true)
echo "   (the 2 s-deadline producer: $lfail failed of $(wc -l < "$WORK/load"))"
# /v1/state carries the same report
st=$(curl -s -m 5 "$API/v1/state")
sk=$(echo "$st" | jget 'd["chaos"]["kills"]'); sf=$(echo "$st" | jget 'd["chaos"]["failed_requests"]')
sr=$(echo "$st" | jget 'd["chaos"]["running"]'); sm=$(echo "$st" | jget 'd["chaos"]["mttr_p95_ms"]')
[ "$sk" = "$kills" ] && [ "$sf" = "$failed" ] && [ "$sr" = False ] && [ "$sm" = "$p95" ] \
  && ok "/v1/state chaos: kills $sk, p95 $sm ms, failed $sf" || bad "/v1/state chaos: $(echo "$st" | jget 'd.get("chaos")')"
# berthctl state shows the same run from the retained reported state
ctl_chaos() {
  "${CTL[@]}" state "$DEV" > "$WORK/state.txt" 2>/dev/null \
    && grep -qx "chaos: w, run 1 since berthd started (finished): a kill every 2 s for 10 s, at least 2 running" "$WORK/state.txt"
}
if wait_until 5 "berthctl chaos summary" ctl_chaos && grep -Eqx "  kills $kills, skipped $skipped, replaced $recovered, pending $pending; time to replacement mean $mean ms, p95 $p95 ms, max [0-9]+ ms; failed requests $failed" "$WORK/state.txt"; then
  ok "berthctl state: $(grep -A1 '^chaos:' "$WORK/state.txt" | tr '\n' ' ')"
else bad "berthctl state lacks the chaos run: $(cat "$WORK/state.txt")"; fi
log_has "event=migration_needed" && bad "a chaos kill raised migration_needed" || ok "no migration_needed, no back-off for kills on purpose"
wait_until 10 "ready replicas of w = 3" ready_is w 3 || bad "w not back to 3 ready"

# min_running as large as the deployment: every interval is skipped, nothing is killed
"${CTL[@]}" chaos "$DEV" w --interval 1 --duration 3 --min-running 3 > "$WORK/chaos.out" 2>&1 || bad "berthctl chaos: $(cat "$WORK/chaos.out")"
wait_until 20 "chaos_done event #2 on the broker" chaos_done_seen 2 || bad "no chaos_done event for the min_running 3 run"
rep=$(chaos_done_n 2)
[ "$(get kills)" = 0 ] && [ "$(get skipped)" = 2 ] && [ "$(get min_running)" = 3 ] \
  && ok "min_running 3 of 3: no kill, 2 intervals skipped" || bad "min_running 3 run: $rep"

# ======================= 2. from the config's chaos.* keys =======================================
berthd_kill -TERM
EXTRA_CONFIG=', "chaos": { "deployment": "w", "interval_s": 2, "duration_s": 6, "min_running": 2 }'
t2=$(now_ms)
berthd_start
wait_until 30 "chaos_done event #3 on the broker" chaos_done_seen 3 || bad "no second chaos_done event within 30 s"
t3=$(now_ms)
rep=$(chaos_done_n 3)
echo "chaos_done (config): $rep"
kills=$(get kills); skipped=$(get skipped); recovered=$(get recovered); mean=$(get mttr_mean_ms)
[ "$(get duration_ms)" = 6000 ] && [ "$((kills + skipped))" -eq 2 ] && [ "$kills" -ge 1 ] \
  && [ "$recovered" -eq "$kills" ] && [ "$mean" -gt 0 ] && [ "$mean" -lt 5000 ] \
  && ok "from the config: $kills kills, $skipped skipped, mean $mean ms" || bad "config run: $rep"
lo=$(min_running "$t2" "$t3")
[ -n "$lo" ] && [ "$lo" -ge 2 ] && ok "the engine ran at least $lo replicas during the config run" \
  || bad "the engine ran only ${lo:-?} replicas during the config run"
lo=$(min_running "$(( t2 + 5000 ))" "$t3" 3)  # after berthd's start-up
[ -n "$lo" ] && [ "$lo" -ge 2 ] && ok "at least $lo replicas answered ready during the config run" \
  || bad "only ${lo:-?} replicas answered ready during the config run"
wait_until 10 "3 containers of w on the engine" count_is w 3 && ok "3 containers, no duplicates after the restart" || bad "$(ctr_count w) containers of w"
stop_helpers
finish
