#!/usr/bin/env bash
# Open Inference Protocol metadata and /metrics as a scraper sees them: GET /v2 names the server
# and its version, GET /v2/models/{m} (and the versions/{v} forms of metadata, ready and infer)
# answer for a supervised model, an unknown model is a 404 with a JSON error; /metrics carries
# build info, berthd's process series, the uplink (connected to the real broker), the outbox and
# per-deployment restarts and probe failures, has no SLA compliance series for a model before it
# decided a request and has one after, and passes `promtool check metrics`.
TEST=api-metadata
WITH_BROKER=1
source "$(dirname "$0")/lib-infer.sh"
: "${BERTH_BROKER_PORT:?needs the test broker (scripts/test-services.sh)}"
# podman answers GET /version only after querying dpkg for its runtime's package (seconds on a
# loaded machine): give the engine calls room, so the metadata is what this test measures.
eval "orig_$(declare -f write_config)"
write_config() { orig_write_config; sed -i 's/"timeout_ms": 5000/"timeout_ms": 20000/' "$WORK/config.json"; }
command -v promtool >/dev/null || { echo "promtool missing (scripts/install-deps.sh installs prometheus)"; exit 1; }
echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 1 normal 2000)]}" > "$WORK/deployments.json"
berthd_start
wait_until 20 "the condition below" http_is 200 "$API/v2/models/w/ready" || bad "model w never ready through the API"
version=$(sed -n 's/^#define BERTH_VERSION "\(.*\)"$/\1/p' "$repo/agent/base/version.h")

body=$(curl -s -m 5 "$API/v2")
[ "$(echo "$body" | jget 'd["name"], d["version"], d["extensions"]')" = "('berth', '$version', [])" ] \
  && ok "GET /v2: $body" || bad "GET /v2: $body"
for path in /v2/models/w /v2/models/w/versions/1; do
  body=$(curl -s -m 5 "$API$path")
  [ "$(echo "$body" | jget 'd["name"], d["platform"], d["inputs"], d["outputs"]')" = "('w', 'berth', [], [])" ] \
    && ok "GET $path: $body" || bad "GET $path: $body"
done
http_is 200 "$API/v2/models/w/versions/1/ready" && ok "GET /v2/models/w/versions/1/ready 200" || bad "versions ready"
body=$(curl -s -m 5 -w ' %{http_code}' "$API/v2/models/nope")
[ "${body##* }" = 404 ] && echo "${body% *}" | jget 'd["error"]' | grep -q . && ok "unknown model: 404 ${body% *}" \
  || bad "unknown model: $body"
[ "$(code_of -X POST "$API/v2/models/w")" = 405 ] && ok "POST to model metadata: 405" || bad "POST metadata not 405"

scrape() { curl -s -m 5 "$API/metrics" > "$WORK/metrics.txt"; }
scrape
grep -q '^berth_sla_compliance{model="w"' "$WORK/metrics.txt" && bad "compliance series before any decided request" \
  || ok "no berth_sla_compliance series before a decided request"
promtool check metrics < "$WORK/metrics.txt" > "$WORK/promtool.out" 2>&1 \
  && ok "promtool check metrics: clean ($(wc -l < "$WORK/metrics.txt") lines)" || bad "promtool: $(head -5 "$WORK/promtool.out")"

infer w 5 -H 'X-Berth-Deadline-Ms: 2000'
[ "$st" = 200 ] && ok "infer through /v2/models/w/infer: 200" || bad "infer: $st $out"
st=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -d '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}' \
  "$API/v2/models/w/versions/1/infer")
[ "$st" = 200 ] && ok "infer through the versions form: 200" || bad "versions infer: $st"
scrape
for want in 'berth_sla_compliance{model="w",class="normal"} 1.000000' "berth_build_info{version=\"$version\"} 1" \
            'berth_uplink_connected 1' 'berth_deployment_restarts_total{deployment="w"} 0'; do
  grep -qF "$want" "$WORK/metrics.txt" && ok "metrics: $want" || bad "metrics lack: $want"
done
for series in process_cpu_seconds_total process_resident_memory_bytes process_open_fds process_start_time_seconds \
              berth_uplink_connects_total berth_uplink_reconnects_total berth_outbox_rows berth_outbox_bytes \
              'berth_outbox_dropped_total{kind="telemetry"}' 'berth_deployment_probe_failures_total{deployment="w"}'; do
  v=$(awk -v k="$series" '$1 == k { print $2 }' "$WORK/metrics.txt")
  [ -n "$v" ] && ok "metrics: $series $v" || bad "metrics lack $series"
done
rss=$(awk '$1 == "process_resident_memory_bytes" { print $2 }' "$WORK/metrics.txt")
[ "${rss:-0}" -gt 1000000 ] && [ "$rss" -lt 200000000 ] && ok "process RSS plausible: $rss bytes" || bad "RSS $rss"
start=$(awk '$1 == "process_start_time_seconds" { print $2 }' "$WORK/metrics.txt")
age=$(( $(date +%s) - ${start:-0} ))
[ "$age" -ge 0 ] && [ "$age" -lt 120 ] && ok "process start time ${age}s ago" || bad "start time $start (age $age)"
promtool check metrics < "$WORK/metrics.txt" > "$WORK/promtool.out" 2>&1 \
  && ok "promtool check metrics after requests: clean" || bad "promtool: $(head -5 "$WORK/promtool.out")"
finish
