#!/usr/bin/env bash
# Restarts on the real engine: berthd killed with SIGKILL and started again adopts its running
# containers (same ids, nothing created); the engine service stopped and started again is
# reported unavailable, then reconciled without duplicate containers, and a replica that died
# during the outage is restarted.
TEST=restart
source "$(dirname "$0")/lib-supervise.sh"
declare -F engine_stop >/dev/null || source "$repo/scripts/test-services.sh"
P=$(pick_ports)
cat > "$WORK/deployments.json" <<EOF
{"version":1,"deployments":[
 {"name":"eps","image":"$BERTH_WORKER_IMAGE","replicas":2,"inference":{"port":$P},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500}},
 {"name":"zeta","image":"$BERTH_WORKER_IMAGE","replicas":1,"inference":{"port":$((P + 10))},
  "readiness":{"type":"tcp","period_ms":100}}]}
EOF
ids() { owned_json | $PY -c 'import sys,json; print(" ".join(sorted(c["Id"] for c in json.load(sys.stdin))))'; }
berthd_start
wait_until 20 "ready replicas of eps = 2" ready_is eps 2 && wait_until 5 "ready replicas of zeta = 1" ready_is zeta 1 && ok "converged" || bad "not converged"
before=$(ids)

# --- berthd killed and restarted: adopt ---------------------------------------
berthd_kill -KILL
mark=$(wc -l < "$WORK/berthd.log")
berthd_start
adopted() { [ "$(tail -n +$((mark + 1)) "$WORK/berthd.log" | grep -c 'event=replica_adopted')" -ge 3 ]; }
wait_until 10 "3 running containers adopted" adopted && ok "3 running containers adopted after SIGKILL of berthd" || bad "not adopted"
ready_again() { [ "$(tail -n +$((mark + 1)) "$WORK/berthd.log" | grep -c 'event=replica_ready')" -ge 3 ]; }
wait_until 10 "the adopted replicas ready again" ready_again && ok "adopted replicas ready again" || bad "adopted replicas not ready"
[ "$(ids)" = "$before" ] && ok "same container ids, none recreated" || bad "containers changed: $before -> $(ids)"
tail -n +$((mark + 1)) "$WORK/berthd.log" | grep -q 'event=replica_create' && bad "berthd created a container on restart" ||
  ok "no create after restart"

# --- the engine service goes away and comes back ---------------------------------
victim=$(ctr_field eps 1 Id)
vpid=$(ctr_pid "$victim")
engine_stop || true
unavailable() { log_has "event=engine_unavailable"; }
wait_until 15 "event=engine_unavailable" unavailable && ok "engine reported unavailable" || bad "engine outage not reported"
kill -KILL "$vpid" 2>/dev/null || true   # a replica dies while nobody can ask the engine
sleep 2  # a window of the outage in which the other replicas stay ready
ready_is zeta 1 && ok "other replicas still ready while the engine is away" || bad "zeta lost readiness"
engine_start || bad "engine_start failed"
back() { log_has "event=engine_available"; }
wait_until 40 "event=engine_available" back && ok "engine available again" || bad "engine never back"
wait_until 20 "ready replicas of eps = 2" ready_is eps 2 && ok "the replica that died during the outage is back and ready" ||
  bad "eps ready $(ready_now eps)"
sleep 1  # a window in which no duplicate container appears
[ "$(ctr_count eps)" -eq 2 ] && [ "$(ctr_count zeta)" -eq 1 ] && ok "no duplicate containers (2 + 1)" ||
  bad "containers: eps $(ctr_count eps), zeta $(ctr_count zeta)"
[ "$(ids)" = "$before" ] && ok "same containers as before the outage" || bad "containers changed across the outage"
finish
