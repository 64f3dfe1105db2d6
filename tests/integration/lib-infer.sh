# tests/integration/lib-infer.sh - shared by test-infer-*.sh: berthd supervising worker replicas and serving the local API.
# Source it after setting TEST. Builds on lib-supervise.sh (engine helpers, ports, log replay, cleanup);
# berthd's config here has the local API on API_PORT and the scheduler settings of SCHED_JSON, and the
# broker when WITH_BROKER=1. Requests go through infer().
# shellcheck source=tests/integration/lib-supervise.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-supervise.sh"

P=$(pick_ports) || { echo "no free port block"; exit 1; }
API_PORT=$((P + 19))
API="http://127.0.0.1:$API_PORT"
SCHED_JSON=${SCHED_JSON:-'"slots": 2, "policy": "edf-admit"'}

write_config() {
  local broker='"enabled": false'
  [ -n "${WITH_BROKER:-}" ] && broker="\"port\": $BERTH_BROKER_PORT, \"reconnect_min_ms\": 200, \"reconnect_max_ms\": 1000"
  cat > "$WORK/config.json" <<EOC
{ "device_id": "$DEV", "data_dir": "$WORK/data", "deployments_file": "$WORK/deployments.json",
  "log_level": "info", "engine": { "socket": "$BERTH_ENGINE_SOCK", "timeout_ms": 5000 },
  "broker": { $broker }, "autoscale": { "enabled": false },
  "api": { "port": $API_PORT, "max_body_bytes": 65536 },
  "scheduler": { $SCHED_JSON }, $TRUST_JSON ${EXTRA_CONFIG:-} }
EOC
}

# worker_deployment NAME PORT REPLICAS CLASS DEADLINE_MS: one deployment of the reference worker
# (readiness every 100 ms, liveness every 200 ms), as a JSON object on stdout.
worker_deployment() {
  cat <<EOD
{"name":"$1","image":"$BERTH_WORKER_IMAGE","replicas":{"min":1,"max":4,"desired":$3},
 "inference":{"port":$2,"concurrency":1},"sla":{"class":"$4","deadline_ms":$5},
 "env":{"WORKER_COST_MS":"5"},
 "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
 "liveness":{"type":"http","path":"/v2/health/live","period_ms":200,"timeout_ms":1000,"failure_threshold":3}}
EOD
}

code_of() { curl -s -m 5 -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true; }
http_is() { [ "$(code_of "$2")" = "$1" ]; }
jget() { $PY -c 'import json,sys
try: d=json.load(sys.stdin)
except Exception: print(""); sys.exit(0)
print(eval(sys.argv[1], {"d": d}))' "$1"; }

# Worker figures straight from a replica (not through berthd).
wstat() { curl -s -m 2 "http://127.0.0.1:$1/admin/stats" | jget "d[\"$2\"]"; }
wfault() { curl -s -m 2 -o /dev/null -X POST -d "$2" "http://127.0.0.1:$1/admin/fault"; }

# The dispatcher's view of a replica, from berthd's log (replayed).
disp_ready() { # disp_ready MODEL INDEX -> 0 when berthd's dispatcher has it ready
  $PY - "$1" "$2" "$WORK/berthd.log" <<'EOP'
import re, sys
model, idx, path = sys.argv[1], sys.argv[2], sys.argv[3]
st = False
for line in open(path, errors="replace"):
    m = re.search(r"dispatch: event=replica_(ready|unready) model=(\S+) replica=(\d+)", line)
    if m and m.group(2) == model and m.group(3) == idx:
        st = m.group(1) == "ready"
sys.exit(0 if st else 1)
EOP
}
disp_unready() { ! disp_ready "$@"; }

# infer MODEL COST_MS [curl args...]: one request; sets st, ms (client time), reason, hdr, out.
infer() {
  local model=$1 cost=$2; shift 2
  local f="$WORK/infer.$BASHPID"
  curl -s -m 30 -D "$f.h" -o "$f.o" -w '%{http_code} %{time_total}\n' "$@" \
    -d "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,2],\"datatype\":\"FP32\",\"data\":[1,2]}],\"parameters\":{\"cost_ms\":$cost}}" \
    "$API/v2/models/$model/infer" > "$f.w" 2>/dev/null || true
  read -r st secs < "$f.w" || { st=000; secs=0; }
  ms=$($PY -c "print(int(float('${secs:-0}') * 1000))")
  hdr=$(tr -d '\r' < "$f.h" 2>/dev/null); out=$(cat "$f.o" 2>/dev/null)
  reason=""
  [ "$st" = 200 ] || reason=$(echo "$out" | jget 'd.get("reason", "")')
}

# metric NAME{LABELS}: its value in a fresh /metrics scrape ("" when absent)
metric() { curl -s -m 5 "$API/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
