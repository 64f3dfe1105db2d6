#!/usr/bin/env bash
# SIGHUP reloads the deployments file as the desired state (while the console has sent none): a
# deployment added to the file is started, one dropped from it is removed, the reported state shows
# the file's version and deployments, and console commands act on the reloaded set - `berthctl scale`
# of the added deployment works, and `berthctl remove` of the last one does not bring back a
# deployment the file had dropped.
TEST=reload
WITH_BROKER=1
source "$(dirname "$0")/lib-infer.sh"
: "${BERTH_BROKER_PORT:?needs the test broker (scripts/test-services.sh)}"
CTL=("$build/berthctl" -b "127.0.0.1:$BERTH_BROKER_PORT")
dep() { # NAME PORT REPLICAS
  echo "{\"name\":\"$1\",\"image\":\"$BERTH_WORKER_IMAGE\",\"replicas\":{\"min\":1,\"max\":3,\"desired\":$3},\"inference\":{\"port\":$2},
   \"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":100,\"timeout_ms\":500}}"
}
echo "{\"version\":1,\"deployments\":[$(dep a "$P" 1)]}" > "$WORK/deployments.json"
berthd_start
wait_until 20 "ready replicas of a = 1" ready_is a 1 && ok "a ready from the deployments file" || bad "a never ready"
online() { "${CTL[@]}" devices --json 2>/dev/null | grep -q "\"$DEV\""; }
wait_until 10 "$DEV online on the broker" online || bad "$DEV not online on the broker"
# reported DESIRED_VERSION NAMES: berthctl state --json shows that version and exactly those deployments
reported() {
  "${CTL[@]}" state "$DEV" --json 2>/dev/null | $PY -c '
import json, sys
d = json.load(sys.stdin)["state"]
names = sorted(x["name"] for x in d["deployments"] if not x.get("removing"))
sys.exit(0 if d["desired_version"] == int(sys.argv[1]) and names == sys.argv[2].split(",") else 1)' "$1" "$2"
}
wait_until 10 "reported state version 1 with a" reported 1 a && ok "reported: version 1, a" || bad "reported state not version 1 with a"

# --- version 2 adds b
echo "{\"version\":2,\"deployments\":[$(dep a "$P" 1),$(dep b $((P + 5)) 1)]}" > "$WORK/deployments.json"
kill -HUP "$BERTHD_PID"
wait_until 20 "ready replicas of b = 1" ready_is b 1 && ok "SIGHUP: b started from the file" || bad "b not started after SIGHUP"
wait_until 10 "reported state version 2 with a,b" reported 2 a,b && ok "reported: version 2, a and b" || bad "reported state not version 2 with a, b"
"${CTL[@]}" scale "$DEV" b 2 > "$WORK/scale.out" 2>&1 && ok "berthctl scale b 2: $(cat "$WORK/scale.out")" \
  || bad "scale of the reloaded deployment b: $(cat "$WORK/scale.out")"
wait_until 20 "ready replicas of b = 2" ready_is b 2 && ok "b at 2 ready replicas" || bad "b not scaled to 2"

# --- version 3 drops a
echo "{\"version\":3,\"deployments\":[$(dep b $((P + 5)) 1)]}" > "$WORK/deployments.json"
kill -HUP "$BERTHD_PID"
wait_until 20 "0 containers of a on the engine" count_is a 0 && ok "SIGHUP: a removed" || bad "a still has $(ctr_count a) containers"
wait_until 10 "reported state version 3 with b" reported 3 b && ok "reported: version 3, b" || bad "reported state not version 3 with b"

# --- a broken file changes nothing
echo '{"version":4,"deployments":[{"name":"c"}]}' > "$WORK/deployments.json"
kill -HUP "$BERTHD_PID"
wait_until 5 "berthd log: event=boot_desired_refused from=deployments_file version=4" log_has "event=boot_desired_refused from=deployments_file version=4" && ok "a broken file is refused on SIGHUP" \
  || bad "no refusal logged for the broken file"
kill -0 "$BERTHD_PID" && [ "$(ctr_count b)" -ge 1 ] && reported 3 b && ok "still running version 3" || bad "a broken file changed the state"

# --- remove the last one: nothing comes back
"${CTL[@]}" remove "$DEV" b > "$WORK/remove.out" 2>&1 && ok "berthctl remove b: $(cat "$WORK/remove.out")" \
  || bad "remove b: $(cat "$WORK/remove.out")"
wait_until 20 "0 containers of b on the engine" count_is b 0 && ok "b removed" || bad "b still has $(ctr_count b) containers"
sleep 1  # a window in which nothing comes back
[ "$(ctr_count)" -eq 0 ] && ok "no container left (a, dropped by the file, did not come back)" \
  || bad "containers after remove: a $(ctr_count a), b $(ctr_count b)"
finish
