#!/usr/bin/env bash
# Two deployments converge from nothing on the real engine: containers named, labelled and
# given distinct ports; a foreign container without berth's label survives everything,
# including the removal of every deployment.
TEST=converge
source "$(dirname "$0")/lib-supervise.sh"
P=$(pick_ports)
cat > "$WORK/deployments.json" <<EOF
{"version":1,"deployments":[
 {"name":"alpha","image":"$BERTH_WORKER_IMAGE","replicas":{"min":1,"max":3,"desired":2},"inference":{"port":$P},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "liveness":{"type":"http","path":"/v2/health/live","period_ms":500,"timeout_ms":500}},
 {"name":"beta","image":"$BERTH_WORKER_IMAGE","replicas":1,"inference":{"port":$((P + 10))},
  "readiness":{"type":"tcp","period_ms":100}}]}
EOF
# a foreign container (no berth label) that must never be touched
foreign="foreign-$DEV"
fid=$(curl -s --unix-socket "$BERTH_ENGINE_SOCK" -H 'Content-Type: application/json' -X POST \
  "http://d/v1.41/containers/create?name=$foreign" \
  -d "{\"Image\":\"$BERTH_WORKER_IMAGE\",\"Env\":[\"BERTH_PORT=$((P + 19))\"],\"HostConfig\":{\"NetworkMode\":\"host\"}}" |
  $PY -c 'import sys,json; print(json.load(sys.stdin)["Id"])')
eng POST "/containers/$fid/start" >/dev/null
trap 'eng DELETE "/containers/$fid?force=true" >/dev/null; cleanup' EXIT

# the same parser from the command line
"$build/berthctl" check-deployments "$WORK/deployments.json" >/dev/null && ok "berthctl accepts the deployments file" ||
  bad "berthctl refuses the deployments file"
echo '{"version":1,"deployments":[{"name":"x","image":"i","replicas":{"max":0}}]}' > "$WORK/bad.json"
out=$("$build/berthctl" check-deployments "$WORK/bad.json" 2>&1) && rc=0 || rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"deployment 'x': replicas.max: 0 is out of range [1, 15]"* ]] &&
  ok "berthctl names deployment and field of a bad spec" || bad "berthctl: rc=$rc '$out'"

t0=$(now_ms)
berthd_start
if wait_until 20 "ready replicas of alpha = 2" ready_is alpha 2 && wait_until 5 "ready replicas of beta = 1" ready_is beta 1; then
  ok "converged from nothing in $(( $(now_ms) - t0 )) ms (alpha 2 ready, beta 1 ready)"
else
  bad "not converged: alpha ready $(ready_now alpha), beta ready $(ready_now beta)"
fi
count_is alpha 2 running && count_is beta 1 running && ok "2 + 1 containers running" ||
  bad "containers: alpha $(ctr_count alpha running), beta $(ctr_count beta running)"

# names, labels, ports and environment
info=$(eng GET "/containers/berth-$DEV-alpha-1/json")
if $PY -c '
import sys, json
c = json.loads(sys.argv[1]); l = c["Config"]["Labels"]; env = c["Config"]["Env"]
assert l["io.berth.owner"] == sys.argv[2], l
assert l["io.berth.deployment"] == "alpha" and l["io.berth.replica"] == "1", l
assert len(l["io.berth.spec-hash"]) == 16, l
assert "BERTH_PORT=%d" % (int(sys.argv[3]) + 1) in env and "BERTH_REPLICA=1" in env and "BERTH_MODEL=alpha" in env, env
assert c["HostConfig"]["NetworkMode"] == "host", c["HostConfig"]["NetworkMode"]
' "$info" "$DEV" "$P"; then ok "berth-$DEV-alpha-1 has the owner/deployment/replica/hash labels, host network and BERTH_PORT=$((P + 1))"
else bad "labels/env of alpha-1 wrong"; fi
# each replica answers on its own port
a0=$(curl -s --max-time 2 "http://127.0.0.1:$P/v2/health/ready" -o /dev/null -w '%{http_code}')
a1=$(curl -s --max-time 2 "http://127.0.0.1:$((P + 1))/v2/health/ready" -o /dev/null -w '%{http_code}')
[ "$a0" = 200 ] && [ "$a1" = 200 ] && ok "replicas listen on $P and $((P + 1))" || bad "ports answer $a0 $a1"

# restart berthd with no deployments at all: ours go, the foreign one stays
berthd_kill -TERM
echo '{"version":2,"deployments":[]}' > "$WORK/deployments.json"
berthd_start
wait_until 15 "0 containers of this run on the engine" count_is "" 0 && ok "all of berth's containers removed when no longer desired" ||
  bad "$(ctr_count) containers left"
state=$(eng GET "/containers/$fid/json" | $PY -c 'import sys,json; print(json.load(sys.stdin)["State"]["Status"])')
[ "$state" = running ] && ok "foreign container without the label still running" || bad "foreign container is $state"
log_has "$fid|$foreign" && bad "berthd mentions the foreign container" || ok "berthd never touched the foreign container"
finish
