#!/usr/bin/env bash
# Self-healing on the real engine: a replica killed with SIGKILL is restarted and ready again;
# a replica whose liveness fails (POST /admin/fault unlive) is restarted after exactly the
# failure threshold of failed probes, no sooner and no later.
TEST=heal
source "$(dirname "$0")/lib-supervise.sh"
P=$(pick_ports)
cat > "$WORK/deployments.json" <<EOF
{"version":1,"deployments":[
 {"name":"gamma","image":"$BERTH_WORKER_IMAGE","replicas":2,"inference":{"port":$P},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "liveness":{"type":"http","path":"/v2/health/live","period_ms":200,"timeout_ms":500,"failure_threshold":3}}]}
EOF
berthd_start
wait_until 20 "ready replicas of gamma = 2" ready_is gamma 2 || bad "gamma never got 2 ready replicas"

# --- SIGKILL straight to the worker process -------------------------------------
id0=$(ctr_field gamma 0 Id)
pid=$(ctr_pid "$id0")
t0=$(now_ms)
kill -KILL "$pid"
wait_until 5 "ready replicas of gamma = 1" ready_is gamma 1 2>/dev/null || true  # the drop may pass unseen
if wait_until 10 "ready replicas of gamma = 2" ready_is gamma 2; then
  ok "SIGKILLed replica (pid $pid) restarted and ready again after $(( $(now_ms) - t0 )) ms"
else bad "killed replica not ready again (ready $(ready_now gamma))"; fi
[ "$(ctr_field gamma 0 Id)" = "$id0" ] && ok "restarted in place (same container)" || bad "container replaced"
[ "$(ctr_count gamma)" -eq 2 ] && ok "still exactly 2 containers" || bad "$(ctr_count gamma) containers"
log_has "event=replica_exited deployment=gamma replica=0 exit_code=137" && ok "exit 137 seen" || bad "no exit 137 logged"

# --- liveness: exactly failure_threshold failures ----------------------------------
# Probes every 200 ms, threshold 3: the first failing probe comes within 200 ms of the
# fault, the third within 600 ms; the kill must come after the third, not before.
kills() { log_count "event=replica_kill deployment=gamma replica=1 reason=liveness"; }
t1=$(now_ms)
curl -s --max-time 2 -X POST -d unlive "http://127.0.0.1:$((P + 1))/admin/fault" >/dev/null
kills_ge1() { [ "$(kills)" -ge 1 ]; }
wait_until 10 "a liveness kill" kills_ge1 || true
line=$(grep -E "event=replica_kill deployment=gamma replica=1 reason=liveness" "$WORK/berthd.log" | head -1)
if [ -n "$line" ]; then
  kill_ms=$(sed -E 's/.*wall_ms=([0-9]+).*/\1/' <<<"$line")
  failures=$(sed -E 's/.*liveness_failures=([0-9]+).*/\1/' <<<"$line")
  dt=$(( kill_ms - t1 ))
  if [ "$failures" -eq 3 ] && [ $dt -gt 400 ] && [ $dt -le 800 ]; then
    ok "killed for liveness $dt ms after the fault, after exactly 3 failed probes (period 200 ms)"
  else bad "liveness kill after $dt ms with $failures failures (want 3, in 400..800 ms)"; fi
else bad "unlive replica not killed for liveness"; fi
restarted1() { log_has "event=replica_started deployment=gamma replica=1 .*restarts=1 "; }
wait_until 5 "replica 1 restarted" restarted1 && ok "unlive replica restarted" || bad "unlive replica not restarted"
wait_until 10 "ready replicas of gamma = 2" ready_is gamma 2 && ok "restarted replica ready again" || bad "not ready after liveness restart"
code=$(curl -s --max-time 2 "http://127.0.0.1:$((P + 1))/v2/health/live" -o /dev/null -w '%{http_code}')
[ "$code" = 200 ] && ok "fresh process answers liveness 200" || bad "liveness answers $code after restart"
finish
