#!/usr/bin/env bash
# edf-preempt on the real engine: two long batch requests hold both compute slots; an urgent
# request for another model then meets its deadline because berthd pauses the container of one
# batch replica (engine pause, seen in the engine and in berthd's log), and the batch requests
# still complete once the urgent one is done; no container is left paused.
TEST=infer-preempt
SCHED_JSON='"slots": 2, "policy": "edf-preempt"'
source "$(dirname "$0")/lib-infer.sh"
echo "{\"version\":1,\"deployments\":[$(worker_deployment bulk "$P" 2 batch 20000),
  $(worker_deployment fast $((P + 10)) 1 urgent 500)]}" > "$WORK/deployments.json"
berthd_start
wait_until 20 "ready replicas of bulk = 2" ready_is bulk 2 || bad "bulk never got 2 ready replicas"
wait_until 20 "ready replicas of fast = 1" ready_is fast 1 || bad "fast never ready"
wait_until 5 "fast replica 0 ready in the dispatcher" disp_ready fast 0 || bad "fast not ready in the dispatcher"
infer fast 5; [ "$st" = 200 ] || bad "warm-up request to fast: $st $reason"

# --- both slots taken by batch requests of 3 s
bpids=()
for b in 0 1; do
  ( infer bulk 3000 -H 'X-Berth-Deadline-Ms: 20000'; echo "$st $ms" > "$WORK/batch.$b" ) & bpids+=($!)
done
both_busy() { [ "$(wstat "$P" inflight)" = 1 ] && [ "$(wstat $((P + 1)) inflight)" = 1 ]; }
wait_until 5 "both bulk replicas busy" both_busy && ok "two batch requests hold both slots" || bad "batch requests not running on both replicas"
busy=$(metric 'berth_sched_slots_busy'); [ "$busy" = 2 ] || bad "slots busy: $busy"

# --- an urgent request meets its deadline: a batch replica is paused for it
paused_seen=""
paused_now() { # records which bulk container the engine shows paused
  owned_json | $PY -c '
import sys, json
for c in json.load(sys.stdin):
    l = c["Labels"]
    if l.get("io.berth.deployment") == "bulk" and c["State"] == "paused":
        print(l["io.berth.replica"]); sys.exit(0)
sys.exit(1)' > "$WORK/paused.now" && mv "$WORK/paused.now" "$WORK/paused"
}
# the pause is short: asked as often as the engine answers, for 3 s
watch_paused() { WAIT_STEP=0 wait_until 3 "a bulk container paused on the engine" paused_now; }
watch_paused & wpid=$!
infer fast 150 -H 'X-Berth-Deadline-Ms: 2000' -H 'X-Berth-Class: urgent'
u_st=$st; u_ms=$ms; echo "urgent: $(grep -i "^X-Berth" <<<"$hdr" | tr "\n" " ")"
wait "$wpid" || true
[ "$u_st" = 200 ] && [ "$u_ms" -lt 2000 ] && ok "urgent request 200 in $u_ms ms (deadline 2000) while batch held every slot" \
  || bad "urgent request: $u_st $reason in $u_ms ms"
log_has "event=replica_paused deployment=bulk replica=[01]" && ok "berthd paused a batch replica: $(grep -oE 'event=replica_paused deployment=bulk replica=[01]' "$WORK/berthd.log" | head -1)" \
  || bad "no replica_paused in berthd's log"
[ -s "$WORK/paused" ] && ok "the engine showed bulk replica $(cat "$WORK/paused") paused" || bad "the engine never showed a bulk container paused"
pre=$(metric 'berth_requests_preempted_total{model="bulk",class="batch"}')
[ "${pre:-0}" -ge 1 ] && ok "berth_requests_preempted_total{bulk,batch} = $pre" || bad "preempted counter ${pre:-none}"

# --- the batch requests still complete, and nothing stays paused
wait "${bpids[@]}"
for b in 0 1; do
  read -r bst bms < "$WORK/batch.$b"
  [ "$bst" = 200 ] && ok "batch request $b completed: 200 in $bms ms" || bad "batch request $b: $bst in $bms ms"
done
log_has "event=replica_unpaused deployment=bulk" && ok "the paused replica was resumed" || bad "no replica_unpaused in the log"
for i in 0 1; do
  s=$(ctr_field bulk $i State); [ "$s" = running ] || bad "bulk replica $i is $s"
done
wait_until 5 "bulk replica 0 ready in the dispatcher" disp_ready bulk 0 && wait_until 5 "bulk replica 1 ready in the dispatcher" disp_ready bulk 1 && ok "both bulk replicas running and ready" || bad "bulk not ready after"
log_has "event=replica_kill deployment=bulk" && bad "a paused replica was killed by its liveness probe" || true

# --- berthd stopped while a replica is paused: it resumes it before it exits
rm -f "$WORK/paused"
for b in 0 1; do ( infer bulk 3000 -H 'X-Berth-Deadline-Ms: 20000' ) & done
wait_until 5 "both bulk replicas busy" both_busy || bad "second round: batch requests not running on both replicas"
# 3 s of urgent work due in 5 s behind 3 s of batch work: only a pause meets it
( infer fast 3000 -H 'X-Berth-Deadline-Ms: 5000' -H 'X-Berth-Class: urgent' ) &
watch_paused
[ -s "$WORK/paused" ] || bad "second round: no bulk replica paused"
berthd_kill -TERM
states=$(for i in 0 1; do ctr_field bulk $i State; done | tr '\n' ' ')
[ "$states" = "running running " ] && ok "berthd stopped during a pause: bulk replicas left $states" \
  || bad "after berthd stopped, bulk replicas are: $states"
log_has "event=replica_resume deployment=bulk replica=[01] reason=shutdown" && ok "resumed at shutdown" \
  || bad "no replica_resume reason=shutdown in the log"
finish
