#!/usr/bin/env bash
# Smoke test of the test services: the engine runs containers through its Docker API, the broker
# carries a message, and the reference worker image serves infers and obeys its crash fault.
# Run by scripts/integration.sh (services already started); alone it starts its own.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
own=""
if [ -z "${SERVICES_DIR:-}" ]; then
  own=1
  trap services_stop EXIT
  services_start
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"

tmp=$(mktemp -d)
containers=()
cleanup() {
  engine_rm "${containers[@]}"
  rm -rf "$tmp"
}
trap 'cleanup; [ -z "$own" ] || services_stop' EXIT

# 1. the engine answers /_ping
engine_call GET /_ping
[ "$status" = 200 ] && [ "$body" = OK ] || fail "engine /_ping: status=$status body=$body"
ok "engine /_ping"

# 2. create + start + remove a busybox container with labels and host networking
engine_call POST "/containers/create?name=berth-smoke-$$" \
  "{\"Image\":\"$BERTH_BUSYBOX_IMAGE\",\"Cmd\":[\"sleep\",\"300\"],
    \"Labels\":{\"io.berth.owner\":\"smoke\",\"io.berth.replica\":\"0\"},
    \"HostConfig\":{\"NetworkMode\":\"host\"}}"
[ "$status" = 201 ] || fail "create busybox: status=$status body=$body"
cid=$(echo "$body" | json 'd["Id"]'); containers+=("$cid")
engine_call POST "/containers/$cid/start"
[ "$status" = 204 ] || fail "start busybox: status=$status"
engine_call GET "/containers/$cid/json"
[ "$(echo "$body" | json 'd["State"]["Running"]')" = True ] || fail "busybox not running: $body"
[ "$(echo "$body" | json 'd["Config"]["Labels"]["io.berth.owner"]')" = smoke ] || fail "label lost: $body"
[ "$(echo "$body" | json 'd["HostConfig"]["NetworkMode"]')" = host ] || fail "network mode not host"
engine_call GET '/containers/json?filters=%7B%22label%22%3A%5B%22io.berth.owner%3Dsmoke%22%5D%7D'
[ "$(echo "$body" | json 'len(d)')" = 1 ] || fail "list by label: $body"
engine_call DELETE "/containers/$cid?force=true"
[ "$status" = 204 ] || fail "remove busybox: status=$status"
engine_call GET "/containers/$cid/json"
[ "$status" = 404 ] || fail "busybox still there after remove: status=$status"
containers=()
ok "busybox container created, started, listed by label and removed"

# 3. the broker carries a message
topic="berth/smoke/$$"
timeout 10 mosquitto_sub -h 127.0.0.1 -p "$BERTH_BROKER_PORT" -t "$topic" -C 1 -W 10 > "$tmp/sub" &
sub=$!
# the subscriber must be subscribed before the publish: publish again on every poll until it arrives
carried() { grep -q "hello $$" "$tmp/sub" || { mosquitto_pub -h 127.0.0.1 -p "$BERTH_BROKER_PORT" -t "$topic" -m "hello $$" -q 1; false; }; }
WAIT_STEP=0.3 wait_until 8 "the message on $topic" carried || fail "broker did not carry the message on $topic"
wait "$sub" || true
ok "broker carried a message"

# 4. the worker image serves infers
port=$(free_port)
engine_call POST "/containers/create?name=berth-smoke-worker-$$" \
  "{\"Image\":\"$BERTH_WORKER_IMAGE\",\"Env\":[\"BERTH_PORT=$port\",\"BERTH_REPLICA=0\"],
    \"Labels\":{\"io.berth.owner\":\"smoke\"},\"HostConfig\":{\"NetworkMode\":\"host\"}}"
[ "$status" = 201 ] || fail "create worker: status=$status body=$body"
wid=$(echo "$body" | json 'd["Id"]'); containers+=("$wid")
t0=$(now_ms)
engine_call POST "/containers/$wid/start"
[ "$status" = 204 ] || fail "start worker: status=$status"
ready() { curl -sf -m 1 "http://127.0.0.1:$port/v2/health/ready" >/dev/null; }
wait_until 10 "the worker's /v2/health/ready" ready || fail "worker not ready on port $port within 10 s"
ok "worker ready $(( $(now_ms) - t0 )) ms after start"

curl -s -m 5 -o "$tmp/live" -w '%{http_code}' "http://127.0.0.1:$port/v2/health/live" > "$tmp/code"
[ "$(cat "$tmp/code")" = 200 ] || fail "live: $(cat "$tmp/code")"
curl -s -m 10 -o "$tmp/infer" -w '%{http_code} %{time_total}\n' -H 'X-Cost-Ms: 20' \
  -d '{"id":"smoke-1","inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}' \
  "http://127.0.0.1:$port/v2/models/smoke/infer" > "$tmp/code"
read -r code secs < "$tmp/code"
[ "$code" = 200 ] || fail "infer status $code: $(cat "$tmp/infer")"
python3 - "$tmp/infer" "$secs" <<'EOF' || fail "infer reply: $(cat "$tmp/infer")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["model_name"] == "smoke", r
assert r["id"] == "smoke-1", r
o = r["outputs"][0]
assert o["name"] == "y" and o["shape"] == [1, 4] and o["datatype"] == "FP32", o
assert len(o["data"]) == 4 and all(isinstance(v, (int, float)) for v in o["data"]), o
assert float(sys.argv[2]) >= 0.020, "infer took %s s, less than its 20 ms cost" % sys.argv[2]
EOF
ok "infer with X-Cost-Ms: 20 answered KServe v2 JSON in ${secs}s"
curl -s -m 5 -o /dev/null -w '%{http_code}' -d '{"inputs":' "http://127.0.0.1:$port/v2/models/smoke/infer" > "$tmp/code"
[ "$(cat "$tmp/code")" = 400 ] || fail "bad JSON answered $(cat "$tmp/code"), not 400"
curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope" > "$tmp/code"
[ "$(cat "$tmp/code")" = 404 ] || fail "unknown path answered $(cat "$tmp/code"), not 404"
ok "bad JSON gets 400, unknown path 404"

# 5. the crash fault makes the container exit
curl -s -m 5 -d crash "http://127.0.0.1:$port/admin/fault" >/dev/null || true
exited() {
  engine_call GET "/containers/$wid/json"
  [ "$(echo "$body" | json 'd["State"]["Status"]')" = exited ]
}
wait_until 10 "the worker container to exit" exited || fail "worker did not exit after the crash fault: $body"
code=$(echo "$body" | json 'd["State"]["ExitCode"]')
[ "$code" = 1 ] || fail "crashed worker exit code $code, expected 1"
ok "crash fault: container exited with code 1"
echo "smoke: all checks passed"
