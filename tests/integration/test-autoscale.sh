#!/usr/bin/env bash
# Autoscaling in berthd on the real engine. A load ramp through the local API drives a deployment
# below its SLA target: it scales up (1 -> 2). When the ramp ends, a light load keeps flowing while
# it scales back down (2 -> 1) after the cool-down: every request of that light load is answered
# 200 (the replica that goes drains first). Then a deployment whose replica needs 60% of the
# node's memory and has not come up misses every request: its scale-up is refused by the memory
# ceiling, and the scale_blocked event with the numbers arrives on the events topic. Last, the
# forecasters' history is in the store after a stop and restored at the next start.
# Run by scripts/integration.sh (services already started); alone it starts its own.
TEST=autoscale
here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
own=""
if [ -z "${SERVICES_DIR:-}" ]; then
  own=1
  export BERTH_BUILD=${BERTH_BUILD:-$here/build}
  services_start >/dev/null
fi
# shellcheck source=tests/integration/lib-supervise.sh
source "$here/tests/integration/lib-supervise.sh"
SUB_PID=
LOAD_PID=
finish() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
  [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null
  cleanup
  [ -z "$own" ] || services_stop
}
trap finish EXIT INT TERM
die() { bad "$*"; exit 1; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
API="http://127.0.0.1:$API_PORT"
PORTS=$(pick_ports) || die "no free ports"
LOAD=$WORK/load.out

# The API, the broker and a fast autoscaler (2 s windows, 4 s cool-down). The CPU ceiling is
# lifted (1000% of the cores): on a shared test host the node's CPU is busy with other work, and
# this test is about the SLA rule, the drain and the memory guard.
write_config() {
  cat > "$WORK/config.json" <<EOC
{ "device_id": "$DEV", "data_dir": "$WORK/data", "deployments_file": "$WORK/deployments.json",
  "log_level": "info", "engine": { "socket": "$BERTH_ENGINE_SOCK", "timeout_ms": 5000 },
  "broker": { "host": "127.0.0.1", "port": $BERTH_BROKER_PORT },
  "api": { "port": $API_PORT },
  "telemetry": { "interval_ms": 500 },
  "scheduler": { "slots": 2, "policy": "edf-admit" },
  "autoscale": { "interval_s": 2, "cooldown_s": 4, "predictive": false, "cpu_ceiling_pct": 1000 } }
EOC
}
# state_field DEPLOYMENT FIELD: from GET /v1/state (the reported state)
state_field() {
  curl -s -m 5 "$API/v1/state" | $PY -c '
import sys, json
d = {x["name"]: x for x in json.load(sys.stdin)["deployments"]}
print(d.get(sys.argv[1], {}).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null
}
state_is() { [ "$(state_field "$1" "$2")" = "$3" ]; }
phase_count() { # phase_count PHASE [STATUS]: answers of that phase (with that status)
  awk -v p="$1" -v s="${2:-}" '$1 == p && (s == "" || $2 == s)' "$LOAD" | wc -l
}

worker_spec() { # NAME PORT MIN MAX DEADLINE_MS EXTRA_ENV RESOURCES
  cat <<EOS
{ "name": "$1", "image": "$BERTH_WORKER_IMAGE", "env": { "WORKER_COST_MS": "30" $6 },
  "replicas": { "min": $3, "max": $4, "desired": $3 }, $7
  "sla": { "class": "normal", "deadline_ms": $5 }, "inference": { "port": $2, "concurrency": 1 },
  "readiness": { "type": "http", "path": "/v2/health/ready", "period_ms": 200,
                 "success_threshold": 1, "failure_threshold": 1 } }
EOS
}

cat > "$WORK/deployments.json" <<EOD
{ "version": 1, "deployments": [ $(worker_spec m "$PORTS" 1 2 100 "" "") ] }
EOD
mosquitto_sub -p "$BERTH_BROKER_PORT" -q 1 -t "berth/v1/$DEV/events" > "$WORK/events.out" 2>/dev/null &
SUB_PID=$!
berthd_start
wait_until 20 "m replicas_ready=1 in /v1/state" state_is m replicas_ready 1 || die "m never ready: $(curl -s -m 5 "$API/v1/state")"
wait_until 5 "berthd log: event=autoscale_added deployment=m " log_has 'event=autoscale_added deployment=m ' || die "the autoscaler does not know m"
ok "m ready with 1 replica, autoscaler running (interval 2 s)"

# --- 1. the ramp: 10, 25, then 45 requests/s of 30 ms on one replica of concurrency 1 (about
# 33/s at most): misses and refusals bring compliance below 0.95, the rule doubles to 2 (the
# cap: 2 slots / concurrency 1, and replicas.max).
$PY "$here/tests/integration/load.py" "$API" m "$LOAD" ramp10:10:3:100:30 ramp25:25:3:100:30 \
  peak:45:0:100:30 light:5:0:5000:120 &
LOAD_PID=$!
wait_until 40 "berthd log: event=scale deployment=m from=1 to=2 reason=up_sla" log_has 'event=scale deployment=m from=1 to=2 reason=up_sla' \
  || die "no scale-up under the ramp (load: $(awk '{print $1,$2}' "$LOAD" | sort | uniq -c | tr '\n' ' '))"
wait_until 20 "m replicas_ready=2 in /v1/state" state_is m replicas_ready 2 || die "the second replica never became ready"
[ "$(state_field m replicas_desired)" = 2 ] || die "reported state does not show 2 desired"
peak_503=$(phase_count peak 503)
ok "scaled up 1 -> 2 under the ramp (reason up_sla; $peak_503 refusals at the peak before it)"

# --- 2. the ramp ends; a light load (5/s, 120 ms, generous deadline) keeps both replicas busy
# now and then while compliance stays above 0.98: after the cool-down it scales down to 1,
# draining the replica that goes.
touch "$LOAD.stop-peak"
wait_until 10 "the load generator's light phase" grep -qx light "$LOAD.phase" || die "load generator stuck"
light_from=$(now_ms)
wait_until 40 "berthd log: event=scale deployment=m from=2 to=1 reason=down" log_has 'event=scale deployment=m from=2 to=1 reason=down' || die "no scale-down after the load ended"
down_ms=$(( $(now_ms) - light_from ))
one_running() { [ "$(ctr_count m running)" = 1 ]; }
wait_until 20 "one running container of m" one_running || die "the drained replica's container was not stopped"
wait_until 10 "m replicas_ready=1 in /v1/state" state_is m replicas_ready 1 || die "reported state does not show 1 ready"
# requests sent after the removal, on the remaining replica (5/s: about 1 s of them)
light_at_removal=$(phase_count light)
light_after() { [ "$(phase_count light)" -ge $((light_at_removal + 5)) ]; }
wait_until 10 "5 light requests answered after the removal" light_after || die "no light request answered after the removal"
touch "$LOAD.stop-light"
wait_until 20 "the load generator to finish" grep -qx done "$LOAD.phase" || die "load generator did not stop"
wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=
light_total=$(phase_count light)
light_ok=$(phase_count light 200)
[ "$light_total" -gt 20 ] || die "too few light requests: $light_total"
[ "$light_ok" = "$light_total" ] \
  || die "requests lost around the scale-down: $light_ok of $light_total answered 200: $(awk '$1=="light" && $2!=200' "$LOAD" | sort | uniq -c | tr '\n' ' ')"
log_has 'event=replica_drain deployment=m replica=1 ' || die "replica 1 of m was not drained before it stopped"
log_has 'event=drain_timeout deployment=m' && die "the drain of m timed out"
drained=$(grep -oE 'event=drain_done deployment=m replica=1 waited_ms=[0-9]+' "$WORK/berthd.log" | tail -1)
ok "scaled down 2 -> 1 ${down_ms} ms after the peak (${drained#event=}); all $light_total light requests answered 200"

# --- 3. memory ceiling: a deployment whose replica needs 60% of the node's memory and has not
# come up (it takes a minute to start): every request is refused, the rule wants 2, but the
# projected memory (node used + the starting replica + one more, 60% each) is above 80%.
mem_mi=$(awk '/^MemTotal:/ {printf "%d", $2 * 0.6 / 1024}' /proc/meminfo)
cat > "$WORK/deployments.json" <<EOD
{ "version": 2, "deployments": [ $(worker_spec big "$((PORTS + 10))" 1 3 100 ', "WORKER_STARTUP_MS": "120000"' \
  "\"resources\": { \"memory\": \"${mem_mi}Mi\" },") ] }
EOD
kill -HUP "$BERTHD_PID"
wait_until 20 "berthd log: event=autoscale_added deployment=big " log_has 'event=autoscale_added deployment=big ' || die "the autoscaler did not follow the new desired state"
wait_until 10 "berthd log: event=autoscale_removed deployment=m" log_has 'event=autoscale_removed deployment=m' || die "m not removed from the autoscaler"
: > "$LOAD"
$PY "$here/tests/integration/load.py" "$API" big "$LOAD" miss:10:0:100:30 &
LOAD_PID=$!
wait_until 30 "\"event\":\"scale_blocked\" in events.out" grep -q '"event":"scale_blocked"' "$WORK/events.out" || die "no scale_blocked event (log: $(grep -c scale_blocked "$WORK/berthd.log"))"
touch "$LOAD.stop-miss"
$PY - "$WORK/events.out" "$mem_mi" <<'EOP' || die "scale_blocked event without the right numbers: $(grep scale_blocked "$WORK/events.out" | head -1)"
import json, sys
mem = int(sys.argv[2]) * 1024 * 1024
for line in open(sys.argv[1]):
    for row in json.loads(line)["rows"]:
        d = row["data"]
        if d.get("event") != "scale_blocked":
            continue
        x = d["detail"]
        assert x["deployment"] == "big" and x["resource"] == "memory", x
        assert x["replicas"] == 1 and x["wanted"] == 2 and x["granted"] == 0, x
        assert x["mem_per_replica_bytes"] == mem, x
        assert x["mem_projected_bytes"] > x["mem_ceiling_bytes"], x
        print("scale_blocked:", json.dumps(x))
        sys.exit(0)
sys.exit(1)
EOP
[ "$(state_field big replicas_desired)" = 1 ] || die "big was scaled up despite the ceiling"
log_has 'event=scale_blocked deployment=big .*resource=memory' || die "no scale_blocked log line"
ok "scale-up of big refused by the memory ceiling; event scale_blocked published with the numbers"
wait "$LOAD_PID" 2>/dev/null || true; LOAD_PID=

# --- 4. the forecasters' history survives a restart (store key-value table), a removed
# deployment's is cleared.
berthd_kill -TERM
$PY - "$WORK/data/berth.db" <<'EOP' || die "forecast state not saved at stop"
import sqlite3, sys
kv = dict(sqlite3.connect(sys.argv[1]).execute("SELECT key, value FROM kv WHERE key LIKE 'forecast.%'"))
assert len(kv.get("forecast.big", "")) > 1000, {k: len(v) for k, v in kv.items()}
assert kv.get("forecast.m") == "", {k: len(v) for k, v in kv.items()}
EOP
berthd_start
wait_until 10 "berthd log: event=forecast_restored deployment=big " log_has 'event=forecast_restored deployment=big ' || die "forecast state not restored at start"
ok "forecast history saved at stop (cleared for the removed deployment) and restored at start"

[ "$FAILS" -eq 0 ] && echo "ok: test-autoscale passed"
exit "$FAILS"
