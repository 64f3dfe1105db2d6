#!/usr/bin/env bash
# The local API on the real engine: two reference-worker containers behind berthd. Feasible
# requests are served with timing headers, infeasible ones and requests without a ready replica
# are refused at once, a replica killed mid-request leads to a retry within the deadline, bad
# input gets 400/404/413, and /metrics counts what was sent.
# Run by scripts/integration.sh (services already started); alone it starts its own.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
own=""
if [ -z "${SERVICES_DIR:-}" ]; then
  own=1
  services_start
fi

fail() { echo "FAIL: $*" >&2; [ -f "$tmp/berthd.log" ] && tail -30 "$tmp/berthd.log" >&2; exit 1; }
ok() { echo "ok: $*"; }
# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"
is() { [ "$(code "$2")" = "$1" ]; }   # is STATUS URL (re-evaluated on every poll)

tmp=$(mktemp -d)
containers=()
berthd_pid=""
trap scratch_cleanup EXIT

# --- two worker replicas on the engine, host networking, one port each
ports=()
for i in 0 1; do
  p=$(free_port); ports+=("$p")
  worker_run "berth-test-api-$$-$i" "test-api-$$" "$i" "$p" BERTH_MODEL=m1 WORKER_COST_MS=5 \
    || fail "worker $i did not start"
done
for p in "${ports[@]}"; do
  wait_until 15 "HTTP 200 from http://127.0.0.1:$p/v2/health/ready" is 200 "http://127.0.0.1:$p/v2/health/ready" || fail "worker on $p not ready"
done
ok "two worker containers ready on ports ${ports[*]}"

# --- berthd with the two replicas listed
api_port=$(free_port)
cat > "$tmp/config.json" <<EOF
{ "device_id": "test-api", "data_dir": "$tmp", "log_level": "info",
  "engine": { "socket": "$BERTH_ENGINE_SOCK" },
  "broker": { "enabled": false },
  "api": { "port": $api_port, "max_body_bytes": 4096,
           "static_replicas": "m1=127.0.0.1:${ports[0]},m1=127.0.0.1:${ports[1]}" },
  "scheduler": { "slots": 2, "policy": "edf-admit" } }
EOF
"$BERTH_BUILD/berthd" -c "$tmp/config.json" > "$tmp/berthd.log" 2>&1 &
berthd_pid=$!
api="http://127.0.0.1:$api_port"
wait_until 10 "HTTP 200 from $api/v2/health/ready" is 200 "$api/v2/health/ready" || fail "berthd not ready"
[ "$(code "$api/v2/health/live")" = 200 ] || fail "live"
[ "$(code "$api/v2/models/m1/ready")" = 200 ] || fail "model ready"
ok "berthd ready with both replicas"

infer() { # infer [curl args...]: POST to m1; sets $st, $secs, $hdr, $out
  curl -s -m 10 -D "$tmp/hdr" -o "$tmp/out" -w '%{http_code} %{time_total}' "$@" > "$tmp/w" || true
  read -r st secs < "$tmp/w" || true; hdr=$(tr -d '\r' < "$tmp/hdr"); out=$(cat "$tmp/out")
}
body5='{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],"parameters":{"cost_ms":5}}'

# --- bad input: 404, 400 naming the header, 413
infer -d "$body5" "$api/v2/models/nosuch/infer"
[ "$st" = 404 ] && [ "$(echo "$out" | json 'd["model"]')" = nosuch ] || fail "unknown model: $st $out"
infer -H 'X-Berth-Deadline-Ms: soon' -d "$body5" "$api/v2/models/m1/infer"
[ "$st" = 400 ] && [ "$(echo "$out" | json 'd["header"]')" = X-Berth-Deadline-Ms ] || fail "bad deadline: $st $out"
infer -H 'X-Berth-Class: vip' -d "$body5" "$api/v2/models/m1/infer"
[ "$st" = 400 ] && [ "$(echo "$out" | json 'd["header"]')" = X-Berth-Class ] || fail "bad class: $st $out"
infer -H 'X-Berth-Size: 12 tokens' -d "$body5" "$api/v2/models/m1/infer"
[ "$st" = 400 ] && [ "$(echo "$out" | json 'd["header"]')" = X-Berth-Size ] || fail "bad size: $st $out"
head -c 10000 /dev/zero | tr '\0' x > "$tmp/big"
infer --data-binary @"$tmp/big" "$api/v2/models/m1/infer"
[ "$st" = 413 ] || fail "oversized body (Content-Length): $st"
infer -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big" "$api/v2/models/m1/infer"
[ "$st" = 413 ] || fail "oversized body (chunked): $st"
[ "$(code -X GET "$api/v2/models/m1/infer")" = 405 ] || fail "GET on infer not 405"
ok "404 unknown model, 400 naming the bad header, 413 oversized body, 405 wrong method"

# --- feasible requests are served, with the timing headers
for i in $(seq 20); do
  infer -H 'X-Berth-Deadline-Ms: 1000' -d "$body5" "$api/v2/models/m1/infer"
  [ "$st" = 200 ] || fail "feasible request $i: $st $out"
  echo "$hdr" | grep -qi '^X-Berth-Queue-Ms: [0-9.]*$' || fail "no X-Berth-Queue-Ms: $hdr"
  echo "$hdr" | grep -qi '^X-Berth-Service-Ms: [0-9.]*$' || fail "no X-Berth-Service-Ms: $hdr"
  [ "$(echo "$out" | json 'd["model_name"]')" = m1 ] || fail "reply not from the worker: $out"
done
ok "20 requests with feasible deadlines served (200, X-Berth-Queue-Ms, X-Berth-Service-Ms)"

# --- an infeasible deadline is refused at once
infer -H 'X-Berth-Deadline-Ms: 1' -H 'X-Berth-Class: urgent' -d "$body5" "$api/v2/models/m1/infer"
[ "$st" = 503 ] && [ "$(echo "$out" | json 'd["reason"]')" = deadline_infeasible ] || fail "infeasible: $st $out"
python3 -c "import sys; sys.exit(0 if float('$secs') < 0.05 else 1)" || fail "refusal took ${secs}s"
ok "1 ms deadline refused with 503 deadline_infeasible in ${secs}s"

# --- a replica killed mid-request: the request is retried on the other one within its deadline
# The request runs 1.2 s so that the kill always lands while it is in the worker, even on a busy host.
inflight() { curl -s -m 1 "http://127.0.0.1:$1/admin/stats" | json 'd["inflight"]' 2>/dev/null || echo 0; }
slow='{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],"parameters":{"cost_ms":1200}}'
t0=$(now_ms)
( curl -s -m 10 -o "$tmp/kout" -w '%{http_code}' -H 'X-Berth-Deadline-Ms: 5000' -d "$slow" \
    "$api/v2/models/m1/infer" > "$tmp/kst" || true ) &
kpid=$!
busy=""
busy_idx() { for i in 0 1; do [ "$(inflight "${ports[$i]}")" -ge 1 ] && { busy=$i; return 0; }; done; return 1; }
wait_until 2 "a worker busy with the slow request" busy_idx || fail "no worker busy with the slow request"
engine_call POST "/containers/${containers[$busy]}/kill"
[ "$status" = 204 ] || fail "kill worker $busy: $status $body"
wait "$kpid" || true
elapsed=$(( $(now_ms) - t0 ))
kst=$(cat "$tmp/kst"); kout=$(cat "$tmp/kout")
[ "$kst" = 200 ] || fail "killed mid-request: status $kst $kout"
[ "$(echo "$kout" | json 'd["parameters"]["replica"]' 2>/dev/null || echo "$kout")" != "$busy" ] \
  || fail "answer came from the killed replica: $kout"
[ "$elapsed" -lt 5000 ] || fail "answer after the deadline: ${elapsed} ms"
ok "replica $busy killed mid-request: retried on the other, 200 in ${elapsed} ms (deadline 5000)"

# --- no ready replica: immediate 503
other=$(( 1 - busy ))
engine_call POST "/containers/${containers[$other]}/kill"
[ "$status" = 204 ] || fail "kill worker $other: $status"
wait_until 5 "HTTP 503 from $api/v2/models/m1/ready" is 503 "$api/v2/models/m1/ready" || fail "model still ready with both replicas dead: $(curl -s "$api/v1/state")"
infer -d "$body5" "$api/v2/models/m1/infer"
[ "$st" = 503 ] && [ "$(echo "$out" | json 'd["reason"]')" = no_ready_replica ] || fail "no replica: $st $out"
echo "$hdr" | grep -qi '^Retry-After: [0-9]' || fail "no Retry-After: $hdr"
python3 -c "import sys; sys.exit(0 if float('$secs') < 0.05 else 1)" || fail "refusal took ${secs}s"
[ "$(code "$api/v2/health/ready")" = 503 ] || fail "health/ready still 200"
ok "no ready replica: 503 no_ready_replica with Retry-After in ${secs}s"

# --- /metrics counts what was sent
curl -s -m 5 "$api/metrics" > "$tmp/metrics"
metric() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/metrics"; }
expect() { local v; v=$(metric "$1"); [ "$v" = "$2" ] || fail "$1 = '$v', expected $2"; }
expect 'berth_requests_total{model="m1",class="normal"}' 22
expect 'berth_requests_on_time_total{model="m1",class="normal"}' 21
expect 'berth_requests_total{model="m1",class="urgent"}' 1
expect 'berth_requests_refused_total{model="m1",class="urgent",reason="deadline_infeasible"}' 1
expect 'berth_requests_refused_total{model="m1",class="normal",reason="no_ready_replica"}' 1
expect 'berth_requests_retried_total{model="m1",class="normal"}' 1
expect 'berth_request_latency_seconds_count{model="m1",class="normal"}' 21
expect 'berth_api_errors_total{code="400"}' 3
expect 'berth_api_errors_total{code="404"}' 1
expect 'berth_api_errors_total{code="413"}' 2
expect 'berth_api_errors_total{code="405"}' 1
curl -s -m 5 "$api/v1/state" | json 'd["dispatch"]["deployments"][0]["classes"]["normal"]["on_time"]' | grep -qx 21 \
  || fail "/v1/state does not match"
ok "/metrics and /v1/state count exactly what was sent"

kill "$berthd_pid"; wait "$berthd_pid" || fail "berthd exit status $?"
berthd_pid=""
grep -q 'event=exit code=0' "$tmp/berthd.log" || fail "berthd did not exit cleanly"
ok "berthd stopped cleanly"

# --- a token: every request without "Authorization: Bearer TOKEN" gets 401
sed 's/"max_body_bytes": 4096,/"max_body_bytes": 4096, "token": "t0ken-for-test",/' "$tmp/config.json" > "$tmp/config-token.json"
"$BERTH_BUILD/berthd" -c "$tmp/config-token.json" > "$tmp/berthd-token.log" 2>&1 &
berthd_pid=$!
is_auth() { [ "$(code -H "Authorization: Bearer t0ken-for-test" "$1")" = 200 ]; }
wait_until 10 "berthd with a token live" is_auth "$api/v2/health/live" || fail "berthd with a token not live"
[ "$(code "$api/v2/health/ready")" = 401 ] || fail "no token: $(code "$api/v2/health/ready"), expected 401"
[ "$(code -H "Authorization: Bearer wrong-token-xx" "$api/v1/state")" = 401 ] || fail "wrong token accepted"
[ "$(code -H "Authorization: Bearer t0ken-for-test" "$api/v1/state")" = 200 ] || fail "right token refused"
kill "$berthd_pid"; wait "$berthd_pid" || true
berthd_pid=""
ok "api.token: 401 without it or with a wrong one, 200 with it"

