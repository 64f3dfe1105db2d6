#!/usr/bin/env bash
# Offline cold boot: the console deploys, the gateway loses power (SIGKILL, and
# its containers are gone as after a reboot) and boots with the broker
# unreachable. berthd converges on the persisted desired state at once: with
# the real engine (BERTH_ENGINE_SOCK, from scripts/integration.sh) the replica
# is running and ready within seconds. It keeps measuring and buffers; when the
# broker returns, the backlog drains and the reported state catches up.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=200
# A deployments file with an older spec: the persisted desired state must win.
cat > "$T/deployments.json" <<'EOF'
{"version":1,"deployments":[]}
EOF
ENGINE_JSON=""
if [ -n "${BERTH_ENGINE_SOCK:-}" ]; then
  ENGINE_JSON=", \"engine\": { \"socket\": \"$BERTH_ENGINE_SOCK\" }"
  DEV=gw-cold-$$
fi
WPORT=$(free_port)
IMAGE=${BERTH_WORKER_IMAGE:-localhost/berth-worker:latest}
berthd_config ", \"deployments_file\": \"$T/deployments.json\" $ENGINE_JSON"
eng() { curl -s --max-time 10 --unix-socket "$BERTH_ENGINE_SOCK" -X "$1" "http://d/v1.41$2"; }
my_ctrs() {
  eng GET "/containers/json?all=1&filters=$($PY -c 'import sys,json,urllib.parse; print(urllib.parse.quote(json.dumps({"label":["io.berth.owner="+sys.argv[1]]})))' "$DEV")" \
    | $PY -c 'import sys,json; print(" ".join(c["Id"] for c in json.load(sys.stdin)))'
}
engine_cleanup() { [ -n "${BERTH_ENGINE_SOCK:-}" ] && for c in $(my_ctrs); do eng DELETE "/containers/$c?force=1" >/dev/null; done; }
trap 'engine_cleanup; telem_cleanup' EXIT INT TERM

broker_up
berthd_up
wait_until 10 "event=boot_desired from=deployments_file in berthd.log" grep -q 'event=boot_desired from=deployments_file' "$T/berthd.log" || fail "deployments file not used on first boot"
wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
cmd deploy "{\"id\":\"cb-1\",\"verb\":\"deploy\",\"args\":{\"version\":3,\"deployments\":[{\"name\":\"detector\",\"image\":\"$IMAGE\",\"replicas\":1,\"inference\":{\"port\":$WPORT,\"concurrency\":1},\"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":200}}]}}"
wait_until 5 "event=desired_updated version=3 in berthd.log" grep -q 'event=desired_updated version=3' "$T/berthd.log" || fail "deploy not applied"

berthd_down KILL
broker_down
if [ -n "${BERTH_ENGINE_SOCK:-}" ]; then
  # A reboot: the containers are gone too.
  engine_cleanup
  [ -z "$(my_ctrs)" ] || fail "containers survived the simulated reboot"
fi
before=$(db_last_seq)
t0=$(date +%s%N)
berthd_up
wait_until 5 "event=boot_desired from=store version=3 in berthd.log" grep -q 'event=boot_desired from=store version=3' "$T/berthd.log" || fail "did not converge on the persisted desired state offline"
log "desired state version 3 restored offline in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
if [ -n "${BERTH_ENGINE_SOCK:-}" ]; then
  wait_until 30 "the worker ready on port $WPORT" curl -sf --max-time 1 "http://127.0.0.1:$WPORT/v2/health/ready" -o /dev/null \
    || fail "the deployment is not running and ready after an offline boot"
  log "replica running and ready $(( ($(date +%s%N) - t0) / 1000000 )) ms after the offline boot"
fi
wait_until 10 "10 rows buffered in the outbox" outbox_at_least 10 || fail "not buffering while offline"
log "buffered $(db_rows) rows offline (seq $before -> $(db_last_seq))"

consumer_up all "berth/v1/$DEV/#"   # fails to connect until the broker is up; mosquitto_sub retries
broker_up
wait_until 30 "the outbox to drain to 2 rows" outbox_at_most 2 || fail "backlog not drained"
# The retained reported state caught up: version 3 with the detector deployment.
mosquitto_sub -p "$BROKER_PORT" -t "berth/v1/$DEV/state/reported" -C 1 -W 5 > "$T/reported.json" || fail "no retained reported state"
$PY - "$T/reported.json" <<'EOF' || fail "reported state did not catch up: $(cat "$T/reported.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["desired_version"] == 3, r
assert [d["name"] for d in r["deployments"]] == ["detector"], r
EOF
echo "ok: offline cold boot converged on version 3, buffered, drained and reported on reconnect"
