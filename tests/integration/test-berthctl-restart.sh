#!/usr/bin/env bash
# `berthctl restart DEVICE DEPLOYMENT` end to end on the real broker and engine: the reply is ok
# ("DEV: w is restarting", exit 0; --json gives ok true and restarting true), every replica of the
# deployment gets a new worker process in its container (the container stays, its process and
# start time change), both replicas are ready again, the reported restart count says so, and the
# other deployment is not touched. An unknown deployment is refused (unknown_deployment, exit 1).
TEST=ctlrestart
WITH_BROKER=1
source "$(dirname "$0")/lib-infer.sh"
: "${BERTH_BROKER_PORT:?needs the test broker (scripts/test-services.sh)}"
echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 2 normal 2000),
  $(worker_deployment other "$((P + 10))" 1 batch 5000)]}" > "$WORK/deployments.json"
CTL=("$build/berthctl" -b "127.0.0.1:$BERTH_BROKER_PORT")

berthd_start
wait_until 30 "ready replicas of w = 2" ready_is w 2 || bad "w never got 2 ready replicas"
wait_until 30 "ready replicas of other = 1" ready_is other 1 || bad "other never got its ready replica"
online() { "${CTL[@]}" devices --json 2>/dev/null | grep -q "\"$DEV\""; }
wait_until 10 "$DEV online on the broker" online || bad "$DEV not online on the broker"

started_at() { eng GET "/containers/$1/json" | $PY -c 'import sys,json; print(json.load(sys.stdin)["State"]["StartedAt"])'; }
ids=(); pids=(); starts=()
for i in 0 1; do
  ids[i]=$(ctr_field w $i Id); pids[i]=$(ctr_pid "${ids[i]}"); starts[i]=$(started_at "${ids[i]}")
done
oid=$(ctr_field other 0 Id); opid=$(ctr_pid "$oid")
ready_before=$(log_count "event=replica_ready deployment=w ")

# --- the command and its reply -----------------------------------------------------------------
rc=0; "${CTL[@]}" restart "$DEV" w > "$WORK/restart.out" 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -qx "$DEV: w is restarting" "$WORK/restart.out" \
  && ok "berthctl restart: exit 0, '$(cat "$WORK/restart.out")'" \
  || bad "berthctl restart: exit $rc, output: $(cat "$WORK/restart.out")"
log_has "event=restart deployment=w replicas=2" && ok "berthd killed both replicas of w for the restart" \
  || bad "no event=restart deployment=w replicas=2 in berthd's log"

# --- every replica restarted: new process, new start time, same container, ready again ----------
newproc() { local p; p=$(ctr_pid "${ids[$1]}" 2>/dev/null) && [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "${pids[$1]}" ]; }
for i in 0 1; do
  if wait_until 15 "a new worker process in the replica" newproc $i; then
    s=$(started_at "${ids[i]}")
    [ "$s" != "${starts[i]}" ] && ok "replica $i: new worker process (pid ${pids[i]} -> $(ctr_pid "${ids[i]}")), started again at $s" \
      || bad "replica $i: new pid but the same start time $s"
  else bad "replica $i: still the same process ${pids[i]}"; fi
  [ "$(ctr_field w $i Id)" = "${ids[i]}" ] || bad "replica $i: container replaced instead of restarted"
done
again() { [ "$(log_count "event=replica_ready deployment=w ")" -ge $((ready_before + 2)) ] && ready_is w 2; }
wait_until 20 "both replicas of w ready again" again && ok "both replicas of w ready again" || bad "w not ready again (ready $(ready_now w))"
[ "$(ctr_count w)" -eq 2 ] && ok "still exactly 2 containers of w" || bad "$(ctr_count w) containers of w"
restarts_of() {
  "${CTL[@]}" state "$DEV" --json 2>/dev/null | $PY -c '
import json, sys
d = json.load(sys.stdin)
print({x["name"]: x for x in d["state"]["deployments"]}[sys.argv[1]]["restarts"])' "$1" 2>/dev/null
}
restarts2() { [ "$(restarts_of w)" = 2 ]; }
wait_until 15 "restarts=2 for w in the reported state" restarts2 && ok "reported state: w restarts=2" || bad "reported restarts of w: $(restarts_of w) (want 2)"
[ "$(ctr_pid "$oid")" = "$opid" ] && [ "$(restarts_of other)" = 0 ] \
  && ok "deployment 'other' untouched" || bad "deployment 'other' was restarted too"

# --- --json reply, and a deployment the device does not run ---------------------------------------
rc=0; "${CTL[@]}" restart "$DEV" w --json > "$WORK/restart.json" 2>/dev/null || rc=$?
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] is True and d["result"]["restarting"] is True and d["result"]["deployment"] == "w", d' \
  "$WORK/restart.json" 2>/dev/null && [ $rc -eq 0 ] && ok "--json reply: ok true, restarting true" \
  || bad "--json reply (exit $rc): $(cat "$WORK/restart.json")"
rc=0; "${CTL[@]}" restart "$DEV" nosuch > "$WORK/nosuch.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "unknown_deployment" "$WORK/nosuch.out" && ok "unknown deployment refused (exit 1)" \
  || bad "restart of an unknown deployment: exit $rc, $(cat "$WORK/nosuch.out")"
wait_until 20 "ready replicas of w = 2" ready_is w 2 || bad "w not ready after the second restart"
finish
