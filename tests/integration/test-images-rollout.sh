#!/usr/bin/env bash
# Images on the real engine and a real registry: v1 deployed by tag (pulled first), v2 pinned by
# digest rolled one replica at a time while requests flow (none refused for lack of a ready
# replica), the broken v3 rolled back to v2 by berthd itself with the reason in the event, never
# below min ready; berthctl-free: the deployments file and SIGHUP carry each version.
TEST=images-rollout
source "$(dirname "$0")/lib-supervise.sh"
source "$repo/scripts/test-registry.sh"
registry_start >/dev/null || { bad "registry did not start"; finish; }
D1=$(registry_push berth-worker:v1) && D2=$(registry_push berth-worker:v2) &&
  D3=$(registry_push berth-worker:v3 WORKER_FAULT=crash) || { bad "push failed"; finish; }
ok "registry $BERTH_REGISTRY holds v1, v2 ($D2) and the broken v3"
P=$(pick_ports)
API=$((P + 19))
EXTRA_CONFIG=", \"images\": { \"registries\": \"$BERTH_REGISTRY\", \"lkg_stable_s\": 3, \"rollout_window_s\": 20 }"
spec() { # VERSION IMAGE
  cat > "$WORK/deployments.json" <<EOF
{"version":$1,"deployments":[
 {"name":"img","image":"$2","env":{"WORKER_STARTUP_MS":"200"},
  "replicas":{"min":2,"max":3,"desired":3},"inference":{"port":$P},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "liveness":{"type":"http","path":"/v2/health/live","period_ms":500,"timeout_ms":500},
  "restart":{"policy":"always","backoff_initial_ms":200}}]}
EOF
}
# the local API on a port, so requests flow through berth during the roll
write_config() {
  cat > "$WORK/config.json" <<EOC
{ "device_id": "$DEV", "data_dir": "$WORK/data", "deployments_file": "$WORK/deployments.json",
  "log_level": "info", "engine": { "socket": "$BERTH_ENGINE_SOCK", "timeout_ms": 5000 },
  "broker": { "enabled": false }, "api": { "listen": "127.0.0.1", "port": $API },
  "autoscale": { "enabled": false } $EXTRA_CONFIG }
EOC
}
image_of() { owned_json | $PY -c 'import sys,json; print(sorted({c["Image"] for c in json.load(sys.stdin) if c["State"]=="running"}))'; }
ready_of_image() { # IMAGE N: N running replicas from IMAGE, all ready to berthd
  [ "$(owned_json | $PY -c 'import sys,json; print(sum(1 for c in json.load(sys.stdin) if c["State"]=="running" and c["Image"]==sys.argv[1]))' "$1")" -eq "$2" ] && ready_is img "$2"
}

spec 1 "$BERTH_REGISTRY/berth-worker:v1"
berthd_start
wait_until 60 "3 replicas of v1 ready" ready_of_image "$BERTH_REGISTRY/berth-worker:v1" 3 &&
  ok "v1 pulled by tag and 3 replicas ready" || bad "v1 not running"
log_has "event=image_pulled .*detail=.*berth-worker:v1" && ok "the image_pulled event names v1" || bad "no image_pulled event for v1"
wait_until 20 "v1 recorded as last-known-good" log_has "event=last_known_good .*detail=.*berth-worker:v1" &&
  ok "v1 became last-known-good" || bad "v1 never recorded"

# v2 by digest, with load running: the pull happens before any v1 replica is touched
${CC:-cc} -O2 -o "$WORK/loadgen" "$repo/tests/bench/loadgen.c"
awk 'BEGIN {print "t_ms,model,deadline_ms,class,cost_ms"; for (i = 0; i < 1200; i++) printf "%d,img,2000,normal,5\n", i * 12}' > "$WORK/trace.csv"
"$WORK/loadgen" --trace "$WORK/trace.csv" --target "127.0.0.1:$API" --conns 8 --raw "$WORK/load.csv" > "$WORK/load.out" 2>&1 &
LOAD=$!
sleep 1 # a second of requests on v1 alone before the change (a window, not a readiness wait)
mark=$(wc -l < "$WORK/berthd.log")
spec 2 "$BERTH_REGISTRY/berth-worker@$D2"
kill -HUP "$BERTHD_PID"
wait_until 60 "3 replicas of v2 ready" ready_of_image "$BERTH_REGISTRY/berth-worker@$D2" 3 &&
  ok "v2 (pinned by digest) rolled to 3 ready replicas" || bad "v2 not rolled: $(image_of)"
wait "$LOAD" || true
refused=$(awk -F, '$9 == "no_ready_replica"' "$WORK/load.csv" | wc -l)
answered=$(awk -F, '$3 == 200' "$WORK/load.csv" | wc -l)
[ "$refused" -eq 0 ] && ok "no request refused for no_ready_replica during the roll ($answered answered)" ||
  bad "$refused requests refused for no_ready_replica"
$PY - "$WORK/berthd.log" "$mark" <<'EOP' && ok "the pull finished before the first v1 replica went" || bad "a v1 replica went before v2 was pulled"
import sys
lines = open(sys.argv[1], errors="replace").read().splitlines()[int(sys.argv[2]):]
pulled = next((i for i, l in enumerate(lines) if "event=image_pulled" in l), None)
first_roll = next((i for i, l in enumerate(lines) if "event=roll_remove" in l), None)
sys.exit(0 if pulled is not None and first_roll is not None and pulled < first_roll else 1)
EOP
wait_until 20 "v2 recorded as last-known-good" log_has "event=last_known_good .*detail=.*$D2" &&
  ok "v2 became last-known-good" || bad "v2 never recorded"

# the broken v3: berthd goes back to v2 by itself; ready never below min (2)
mark=$(wc -l < "$WORK/berthd.log")
t0=$(now_ms)
spec 3 "$BERTH_REGISTRY/berth-worker:v3"
kill -HUP "$BERTHD_PID"
wait_until 40 "a rollback event" log_has "event=rollback .*detail=" && ok "rolled back after $(( $(now_ms) - t0 )) ms" || bad "no rollback"
grep -E "event=rollback .*detail=.*\"reason\":\"(crash_loop|not_ready_in_window)\".*\"to_image\":\"$BERTH_REGISTRY/berth-worker@$D2\"" "$WORK/berthd.log" >/dev/null &&
  ok "the rollback event carries the reason and the last-known-good image" || bad "rollback event: $(grep 'event=rollback' "$WORK/berthd.log" | tail -1)"
wait_until 30 "3 replicas of v2 ready again" ready_of_image "$BERTH_REGISTRY/berth-worker@$D2" 3 &&
  ok "v2 runs again on 3 ready replicas, v3 gone" || bad "after rollback: $(image_of)"
min_ready=$($PY - "$WORK/berthd.log" "$mark" <<'EOP'
import re, sys
ready = set(); low = None
for i, line in enumerate(open(sys.argv[1], errors="replace")):
    m = re.search(r"event=replica_(ready|unready) deployment=img replica=(\d+)", line)
    if not m: continue
    (ready.add if m.group(1) == "ready" else ready.discard)(m.group(2))
    if i >= int(sys.argv[2]):
        low = len(ready) if low is None else min(low, len(ready))
print(low if low is not None else 3)
EOP
)
[ "$min_ready" -ge 2 ] && ok "ready replicas never below min (2) through the bad version and the rollback (min $min_ready)" ||
  bad "ready fell to $min_ready"
# the same bad version applied again stays rolled back
kill -HUP "$BERTHD_PID"
sleep 2 # a window: nothing of v3 may start again
[ "$(owned_json | $PY -c 'import sys,json; print(sum(1 for c in json.load(sys.stdin) if c["Image"].endswith(":v3")))')" -eq 0 ] &&
  ok "re-applying v3 keeps v2 (rolled back until a new version is desired)" || bad "v3 came back"
finish
