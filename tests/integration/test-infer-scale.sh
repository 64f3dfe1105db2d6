#!/usr/bin/env bash
# Scale-down without loss: three worker replicas serve a steady load through berthd's local API
# while `berthctl scale` lowers the deployment to one replica. The replicas that go are drained
# first (they get no new request, and are stopped only once their requests are answered), so
# every request succeeds, none needs a retry, and /metrics counts exactly what was sent.
TEST=infer-scale
WITH_BROKER=1
SCHED_JSON='"slots": 3, "policy": "edf-admit"'
source "$(dirname "$0")/lib-infer.sh"
: "${BERTH_BROKER_PORT:?needs the test broker (scripts/test-services.sh)}"
echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 3 normal 3000)]}" > "$WORK/deployments.json"
berthd_start
wait_until 20 "ready replicas of w = 3" ready_is w 3 || bad "w never got 3 ready replicas"
for i in 0 1 2; do wait_until 5 "w replica $i ready in the dispatcher" disp_ready w $i || bad "replica $i not ready in the dispatcher"; done
online() { "$build/berthctl" -b "127.0.0.1:$BERTH_BROKER_PORT" devices --json 2>/dev/null | grep -q "\"$DEV\""; }
wait_until 10 "$DEV online on the broker" online || bad "$DEV not online on the broker"

# --- steady load: 3 clients, requests of 150 ms, so each replica is nearly always busy
client() { # client N END_MS: requests until END_MS, one status per line
  while [ "$(now_ms)" -lt "$2" ]; do
    infer w 150 -H 'X-Berth-Deadline-Ms: 3000'
    echo "$st $reason" >> "$WORK/client.$1"
  done
}
end=$(( $(now_ms) + 5000 ))
pids=()
for c in 1 2 3; do client $c $end & pids+=($!); done
# the scale-down comes once the load runs: 2 replicas or more busy (asked directly)
busy_at_least() { busy=0; for i in 0 1 2; do [ "$(wstat $((P + i)) inflight)" = 1 ] && busy=$((busy + 1)); done; [ $busy -ge "$1" ]; }
wait_until 4 "2 replicas busy with the load" busy_at_least 2 || bad "the load keeps fewer than 2 replicas busy"
"$build/berthctl" -b "127.0.0.1:$BERTH_BROKER_PORT" scale "$DEV" w 1 > "$WORK/scale.out" 2>&1 \
  && ok "berthctl scale w 1 during load ($busy replicas busy): $(cat "$WORK/scale.out")" || bad "scale: $(cat "$WORK/scale.out")"
wait "${pids[@]}"
cat "$WORK"/client.* > "$WORK/all"
sent=$(wc -l < "$WORK/all"); good=$(grep -c '^200 ' "$WORK/all" || true)
[ "$sent" -ge 20 ] || bad "only $sent requests sent"
[ "$good" -eq "$sent" ] && ok "$good of $sent requests answered 200 across the scale-down" \
  || bad "$((sent - good)) of $sent requests failed: $(grep -v '^200 ' "$WORK/all" | sort | uniq -c | tr '\n' ';')"

# --- the drain: the two that went waited for their requests, and nothing was retried
drained=$(log_count "event=drain_done deployment=w ")
[ "$drained" -eq 2 ] && ok "2 replicas drained before they were stopped ($(grep -oE 'event=drain_done deployment=w replica=[0-9]+ waited_ms=[0-9]+' "$WORK/berthd.log" | sed 's/.*replica=//' | tr '\n' ' '))" \
  || bad "drain_done $drained times (timeouts: $(log_count 'event=drain_timeout'))"
wait_until 10 "1 containers of w on the engine" count_is w 1 && ok "one container left" || bad "$(ctr_count w) containers left"
retried=$(metric 'berth_requests_retried_total{model="w",class="normal"}')
failed=$(metric 'berth_requests_failed_total{model="w",class="normal"}')
[ "$retried" = 0 ] && [ "$failed" = 0 ] && ok "no request retried or failed" || bad "retried $retried failed $failed"
total=$(metric 'berth_requests_total{model="w",class="normal"}')
on_time=$(metric 'berth_requests_on_time_total{model="w",class="normal"}')
[ "$total" = "$sent" ] && [ "$on_time" = "$good" ] && ok "/metrics: $total requests, $on_time on time - as sent" \
  || bad "/metrics total $total on_time $on_time; sent $sent, 200: $good"
infer w 5; [ "$st" = 200 ] && ok "the remaining replica serves" || bad "after the scale-down: $st $reason"
finish
