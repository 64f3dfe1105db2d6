#!/usr/bin/env bash
# The local API on a unix socket only (api.port 0, api.unix_socket set): producers on the gateway
# reach health, inference (served by a real worker replica, with the timing headers), /metrics and
# /v1/state through the socket, and berthd opens no TCP listener; the socket goes with berthd.
TEST=api-unix
source "$(dirname "$0")/lib-infer.sh"
SOCK=$WORK/api.sock
write_config() {
  cat > "$WORK/config.json" <<EOC
{ "device_id": "$DEV", "data_dir": "$WORK/data", "deployments_file": "$WORK/deployments.json",
  "log_level": "info", "engine": { "socket": "$BERTH_ENGINE_SOCK", "timeout_ms": 5000 },
  "broker": { "enabled": false }, "autoscale": { "enabled": false },
  "api": { "port": 0, "unix_socket": "$SOCK" }, "scheduler": { $SCHED_JSON } }
EOC
}
echo "{\"version\":1,\"deployments\":[$(worker_deployment u "$P" 1 normal 2000)]}" > "$WORK/deployments.json"
berthd_start
ucode() { curl -s -m 5 --unix-socket "$SOCK" -o "$WORK/body" -D "$WORK/hdr" -w '%{http_code}' "$@" 2>/dev/null || true; }
live() { [ "$(ucode http://berth/v2/health/live)" = 200 ]; }
wait_until 10 "berthd's API on the unix socket" live && ok "GET /v2/health/live over $SOCK: 200" || bad "no API on the unix socket"
wait_until 20 "ready replicas of u = 1" ready_is u 1 || bad "u never ready"
wait_until 5 "u replica 0 ready in the dispatcher" disp_ready u 0 || bad "u not ready in the dispatcher"
model_ready() { [ "$(ucode http://berth/v2/models/u/ready)" = 200 ]; }
wait_until 5 "model u ready over the unix socket" model_ready && ok "GET /v2/models/u/ready: 200" || bad "model u not ready over the socket"
st=$(ucode -X POST -H 'X-Berth-Deadline-Ms: 2000' \
  -d '{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],"parameters":{"cost_ms":5}}' \
  http://berth/v2/models/u/infer)
[ "$st" = 200 ] && grep -qi '^X-Berth-Queue-Ms:' "$WORK/hdr" && grep -qi '^X-Berth-Service-Ms:' "$WORK/hdr" \
  && ok "POST /v2/models/u/infer served by the replica, with the timing headers" || bad "infer: $st $(cat "$WORK/body")"
[ "$(ucode http://berth/metrics)" = 200 ] && grep -q '^berth_requests_total{model="u",class="normal"} 1$' "$WORK/body" \
  && ok "/metrics counts the request" || bad "/metrics: $(grep berth_requests_total "$WORK/body")"
[ "$(ucode http://berth/v1/state)" = 200 ] && jget 'd["deployments"][0]["name"]' < "$WORK/body" | grep -qx u \
  && ok "/v1/state over the socket" || bad "/v1/state: $(head -c 200 "$WORK/body")"
listening=$(ss -ltnp 2>/dev/null | grep -c "pid=$BERTHD_PID," || true)
[ "$listening" -eq 0 ] && ok "no TCP listener (api.port 0)" || bad "berthd listens on TCP: $(ss -ltnp | grep "pid=$BERTHD_PID,")"
berthd_kill -TERM
[ ! -e "$SOCK" ] && ok "the socket is removed when berthd stops" || bad "$SOCK left behind"
finish
