#!/usr/bin/env bash
# Engine stall: podman's API service is stopped (SIGSTOP) for 20 s while the deployment is
# scaled 3 -> 1 -> 2 over MQTT. The stop calls time out and the engine carries them out after it
# resumes; within one reconcile period (the supervisor's re-list, 10 s) of the engine's return,
# with 5 s of slack, the engine holds exactly the 2 containers of berth's that should exist (no
# exited leftovers with berth's labels), both running and ready.
TEST=supervise-stall
WITH_BROKER=1
source "$(dirname "$0")/lib-infer.sh"
source "$repo/scripts/test-services.sh"
engine_pid=$(cat "$SERVICES_DIR/engine.pid")
cleanup_stall() { kill -CONT "$engine_pid" 2>/dev/null || true; cleanup; }
trap cleanup_stall EXIT INT TERM

echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 3 normal 2000)]}" > "$WORK/deployments.json"
berthd_start
wait_until 40 "the condition" ready_is w 3 || bad "w never got 3 ready replicas"
wait_until 10 "the condition" log_has 'event=connected' || bad "berthd never connected to the broker"
[ "$FAILS" -eq 0 ] || finish
# signed with the test's console key (lib-trust.sh): berthd refuses unsigned commands
scale() { echo "{\"id\":\"sc-$1-$RANDOM\",\"verb\":\"scale\",\"args\":{\"deployment\":\"w\",\"replicas\":$1}}" |
  sign_msg command "$DEV" > "$WORK/scale.json" &&
  mosquitto_pub -p "$BERTH_BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/scale" -f "$WORK/scale.json"; }

kill -STOP "$engine_pid"
ok "engine stopped (SIGSTOP pid $engine_pid)"
scale 1
sleep 8
scale 2
sleep 12
kill -CONT "$engine_pid"
back=$(now_ms)
ok "engine resumed after 20 s"
# one reconcile period (the 10 s re-list) plus 5 s of slack for a loaded host (measured 2.8-3.9 s)
exact2() { [ "$(ctr_count w)" -eq 2 ] && [ "$(ctr_count w running)" -eq 2 ]; }
if wait_until 15 "the condition" exact2; then
  ok "2 containers, both running, $(( $(now_ms) - back )) ms after the engine's return"
else
  bad "after the stall: $(ctr_count w) containers of berth's ($(ctr_count w running) running), want exactly 2: $(owned_json | $PY -c 'import sys,json; print([(c["Labels"].get("io.berth.replica"), c["State"]) for c in json.load(sys.stdin)])')"
fi
wait_until 20 "the condition" ready_is w 2 || bad "w not back at 2 ready replicas"
finish
