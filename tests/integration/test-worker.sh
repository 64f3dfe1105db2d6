#!/usr/bin/env bash
# The reference worker keeps its contract (docs/testing.md): health while busy, cost and
# concurrency of infers, keep-alive, error statuses, startup delay and every fault.
# Runs the static binary directly on loopback; test-smoke.sh covers it inside a container.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BERTH_BUILD:-$here/build}
worker=$build/worker
[ -x "$worker" ] || "$here/scripts/build-worker-image.sh" "$build" >/dev/null

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"
WAIT_STEP=0.02

tmp=$(mktemp -d)
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# start_worker VAR=VALUE...: starts a worker on a fresh port; sets $port and $wpid
start_worker() {
  port=$(free_port)
  env BERTH_PORT="$port" "$@" "$worker" 2>>"$tmp/worker.log" &
  wpid=$!; pids+=("$wpid")
}
ready() { [ "$(T=1 code "http://127.0.0.1:$port/v2/health/ready")" = 200 ]; }
exit_status() { # exit_status PID MS: sets $st to the worker's exit status, or "running" after MS
  gone() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
  # still running after MS is an answer, not an error: the timeout report is not wanted
  wait_until "$(( $2 / 1000 )).$(printf %03d $(( $2 % 1000 )))" "worker $1 to exit" gone "$1" 2>/dev/null || { st=running; return; }
  st=0; wait "$1" || st=$?
}
infer_url() { echo "http://127.0.0.1:$port/v2/models/${1:-m}/infer"; }

# --- startup delay
t0=$(now_ms)
start_worker WORKER_STARTUP_MS=400
sleep 0.2  # a window: 200 ms into a 400 ms startup delay, the worker is not ready yet
ready && fail "ready 200 ms into a 400 ms startup delay"
wait_until 5 "the worker's /v2/health/ready" ready || fail "not ready 5 s after start"
[ $(( $(now_ms) - t0 )) -ge 400 ] || fail "ready before its 400 ms startup delay"
ok "WORKER_STARTUP_MS delays listening"

# --- infer reply, cost by header and by body, errors
out=$(curl -s -m 5 -H 'X-Cost-Ms: 30' -d '{"id":"r1","inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[0.5,1.5]}]}' "$(infer_url alpha)")
[ "$(echo "$out" | json 'd["model_name"], d["id"], d["outputs"][0]["shape"], len(d["outputs"][0]["data"])')" = "('alpha', 'r1', [1, 4], 4)" ] \
  || fail "infer reply: $out"
[ "$(echo "$out" | json 'd["parameters"]["compute_ms"] >= 30')" = True ] || fail "X-Cost-Ms 30 not spent: $out"
out2=$(curl -s -m 5 -H 'X-Cost-Ms: 0' -d '{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[-3,2]}]}' "$(infer_url)")
[ "$(echo "$out" | json 'd["outputs"][0]["data"]')" != "$(echo "$out2" | json 'd["outputs"][0]["data"]')" ] \
  || fail "output does not depend on the input"
out=$(curl -s -m 5 -d '{"parameters":{"cost_ms":40}}' "$(infer_url)")
[ "$(echo "$out" | json 'd["parameters"]["cost_ms"] == 40 and d["parameters"]["compute_ms"] >= 40')" = True ] \
  || fail "parameters.cost_ms 40 not spent: $out"
out=$(curl -s -m 5 -d '' "$(infer_url)")
[ "$(echo "$out" | json 'd["parameters"]["cost_ms"]')" = 10 ] || fail "default cost is not 10 ms: $out"
[ "$(code -d '{"inputs":[1,2' "$(infer_url)")" = 400 ] || fail "truncated JSON not 400"
[ "$(code -d '{"a":1} x' "$(infer_url)")" = 400 ] || fail "trailing garbage not 400"
[ "$(code -H 'X-Cost-Ms: ten' -d '{}' "$(infer_url)")" = 400 ] || fail "bad X-Cost-Ms not 400"
[ "$(code "$(infer_url)")" = 405 ] || fail "GET infer not 405"
[ "$(code "http://127.0.0.1:$port/v2/nothing")" = 404 ] || fail "unknown path not 404"
[ "$(code "http://127.0.0.1:$port/v2/models/m/ready")" = 200 ] || fail "model ready not 200"
python3 -c 'import json; print(json.dumps({"id":"big","inputs":[{"name":"x","shape":[1,20000],"datatype":"FP32","data":list(range(20000))}]}))' > "$tmp/big.json"
[ "$(code -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/big.json" "$(infer_url)")" = 200 ] || fail "chunked body"
[ "$(code -H 'Expect: 100-continue' --data-binary @"$tmp/big.json" "$(infer_url)")" = 200 ] || fail "Expect: 100-continue"
ok "infer: KServe v2 reply, cost by header/body/default, 400/404/405, chunked and 100-continue bodies"

# --- keep-alive: two requests on one connection
curl -s -v -m 5 "http://127.0.0.1:$port/v2/health/live" "http://127.0.0.1:$port/v2/health/ready" > /dev/null 2> "$tmp/ka"
grep -qi 're-using existing connection' "$tmp/ka" || fail "connection not kept alive: $(cat "$tmp/ka")"
ok "keep-alive"

# --- health answers while an infer runs
curl -s -m 10 -o /dev/null -H 'X-Cost-Ms: 600' -d '' "$(infer_url)" &
busy=$!
inflight1() { [ "$(curl -s -m 1 "http://127.0.0.1:$port/admin/stats" | json 'd["inflight"]')" = 1 ]; }
wait_until 2 "the 600 ms infer in flight" inflight1 || fail "the infer is not in flight"
t0=$(now_ms)
[ "$(code "http://127.0.0.1:$port/v2/health/live")" = 200 ] || fail "live during infer"
[ "$(code "http://127.0.0.1:$port/v2/health/ready")" = 200 ] || fail "ready during infer"
dt=$(( $(now_ms) - t0 ))
[ $dt -lt 300 ] || fail "health took $dt ms during a 600 ms infer"
wait $busy
ok "health answers during an infer ($dt ms)"
kill "$wpid"; { exit_status "$wpid" 2000; [ "$st" = 0 ]; } || fail "SIGTERM did not exit 0"
ok "SIGTERM exits 0"

# --- concurrency
for n in 1 2; do
  start_worker WORKER_CONCURRENCY=$n
  wait_until 5 "the worker's /v2/health/ready" ready || fail "concurrency $n worker not ready"
  t0=$(now_ms)
  for i in 1 2 3 4; do curl -s -m 20 -o "$tmp/c$i" -H 'X-Cost-Ms: 100' -d '' "$(infer_url)" & done
  wait_jobs=$(jobs -p); for j in $wait_jobs; do [ "$j" = "$wpid" ] || wait "$j" 2>/dev/null || true; done
  dt=$(( $(now_ms) - t0 ))
  stats=$(curl -s -m 5 "http://127.0.0.1:$port/admin/stats")
  [ "$(echo "$stats" | json 'd["served"], d["max_inflight"], d["concurrency"]')" = "(4, $n, $n)" ] \
    || fail "concurrency $n: stats $stats"
  [ $dt -ge $(( 400 / n - 10 )) ] || fail "4 infers of 100 ms at concurrency $n took only $dt ms"
  kill "$wpid"
  ok "WORKER_CONCURRENCY=$n: at most $n infers at once (4 x 100 ms in $dt ms)"
done

# --- faults by the admin endpoint
start_worker
wait_until 5 "the worker's /v2/health/ready" ready || fail "fault worker not ready"
adm() { curl -s -m 5 -o /dev/null -w '%{http_code}' -d "$1" "http://127.0.0.1:$port/admin/fault"; }
[ "$(adm unlive)" = 200 ] || fail "unlive not accepted"
[ "$(code "http://127.0.0.1:$port/v2/health/live")" = 500 ] || fail "unlive: live not 500"
[ "$(code "http://127.0.0.1:$port/v2/health/ready")" = 200 ] || fail "unlive changed readiness"
[ "$(adm unready)" = 200 ] || fail "unready not accepted"
[ "$(code "http://127.0.0.1:$port/v2/health/ready")" = 503 ] || fail "unready: ready not 503"
[ "$(code "http://127.0.0.1:$port/v2/models/m/ready")" = 503 ] || fail "unready: model ready not 503"
[ "$(code -d '' "$(infer_url)")" = 200 ] || fail "unready refused an infer"
[ "$(adm ok)" = 200 ] || fail "ok not accepted"
[ "$(code "http://127.0.0.1:$port/v2/health/live")" = 200 ] || fail "ok: live not 200"
[ "$(code "http://127.0.0.1:$port/v2/health/ready")" = 200 ] || fail "ok: ready not 200"
[ "$(adm explode)" = 400 ] || fail "unknown fault not 400"
ok "unlive / unready / ok / unknown fault"
[ "$(adm hang)" = 200 ] || fail "hang not accepted"
[ "$(T=1 code "http://127.0.0.1:$port/v2/health/live")" = 000 ] || fail "hung worker still answers"
{ exit_status "$wpid" 100; [ "$st" = running ]; } || fail "hung worker exited"
kill "$wpid"; { exit_status "$wpid" 2000; [ "$st" = 0 ]; } || fail "hung worker did not exit on SIGTERM"
ok "hang: nothing answers, SIGTERM still exits"
start_worker
wait_until 5 "the worker's /v2/health/ready" ready || fail "crash worker not ready"
[ "$(adm crash)" = 200 ] || fail "crash not acknowledged"
{ exit_status "$wpid" 2000; [ "$st" = 1 ]; } || fail "crash fault did not exit 1"
ok "crash: exit status 1"

# --- faults by the environment
start_worker WORKER_FAULT=crash
{ exit_status "$wpid" 2000; [ "$st" = 1 ]; } || fail "WORKER_FAULT=crash did not exit 1"
start_worker WORKER_FAULT=unready
wait_until 5 "the worker's /v2/health/live" curl -sf -m 1 -o /dev/null "http://127.0.0.1:$port/v2/health/live" || fail "WORKER_FAULT=unready not live"
[ "$(code "http://127.0.0.1:$port/v2/health/ready")" = 503 ] || fail "WORKER_FAULT=unready is ready"
kill "$wpid"
t0=$(now_ms)
start_worker WORKER_CRASH_AFTER_MS=300
wait_until 5 "the worker's /v2/health/ready" ready || fail "crash-after worker not ready"
{ exit_status "$wpid" 3000; [ "$st" = 1 ]; } || fail "WORKER_CRASH_AFTER_MS=300 did not exit 1"
dt=$(( $(now_ms) - t0 ))
[ $dt -ge 300 ] || fail "WORKER_CRASH_AFTER_MS=300 exited after $dt ms"
ok "WORKER_FAULT=crash, WORKER_FAULT=unready, WORKER_CRASH_AFTER_MS=300 (exited after $dt ms)"
echo "worker: all checks passed"
