#!/usr/bin/env bash
# scripts/demo.sh - `make demo`: the whole agent on a local broker and engine, a short story under load, a summary and a chart.
#
# Usage: scripts/demo.sh [--quick] [--keep] [--seconds N] [BUILD_DIR]
#   --quick       a 25 s story (what CI runs, tests/integration/test-demo.sh)
#   --seconds N   length of the load in seconds (default 100; DEMO_SECONDS)
#   --keep        keep broker, engine and berthd up after the summary, print the
#                 berthctl command line to explore them, stop on Ctrl-C (DEMO_KEEP=1)
# Env: DEMO_SPEEDUP (trace time compression, default 10), DEMO_TRACE_START_MIN (minute of
#   the trace where the slice starts, default 18), DEMO_POLICY (scheduler.policy, default
#   edf-mc: urgent requests as if alone, the rest admitted against what they leave; requests
#   carry their sizes as KServe v2 input shapes), DEMO_OUT (outputs, default BUILD_DIR/demo),
#   DEMO_SKIP_DEPS=1 (do not run scripts/install-deps.sh).
#
# What it does: installs missing Debian packages, builds, starts a private Mosquitto broker
# and podman's Docker API in a temporary directory (scripts/test-services.sh), starts berthd
# with three deployments of the reference worker (urgent detector, normal classifier, batch
# summarizer), then replays a slice of tests/fixtures/traces/azure-code-1h.csv through the
# local API fast enough to overload the machine; midway it SIGKILLs replicas through the
# engine, and cuts the broker for a while and restores it. A consumer subscribed to the
# device's telemetry and events records every sequence number. Everything is measured in
# this run; the summary goes to the terminal and BUILD_DIR/demo/summary.txt, the chart to
# BUILD_DIR/demo/demo.png. Everything started is stopped and removed on exit, Ctrl-C included.
# The whole script is one compound command, read before it runs: editing the file
# while a demo runs cannot derail it.
{
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

STORY_S=${DEMO_SECONDS:-100}
KEEP=${DEMO_KEEP:-0}
SPEEDUP=${DEMO_SPEEDUP:-10}
START_MIN=${DEMO_TRACE_START_MIN:-18}
POLICY=${DEMO_POLICY:-edf-mc}
BUILD=${O:-build}
while [ $# -gt 0 ]; do
  case $1 in
    --quick) STORY_S=${DEMO_SECONDS:-25} ;;
    --keep) KEEP=1 ;;
    --seconds) STORY_S=${2:?--seconds needs a value}; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) BUILD=$1 ;;
  esac
  shift
done
case $STORY_S in ''|*[!0-9]*) echo "demo: --seconds wants whole seconds" >&2; exit 2;; esac
[ "$STORY_S" -ge 10 ] || { echo "demo: at least 10 seconds of load" >&2; exit 2; }
mkdir -p "$BUILD" && BUILD=$(cd "$BUILD" && pwd)
OUT=${DEMO_OUT:-$BUILD/demo}
TRACE=$here/tests/fixtures/traces/azure-code-1h.csv
DEV=gw-demo
PY=/usr/bin/python3

# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"   # now_ms, wait_until
T_BEGIN=$(now_ms)
bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { bold "== $* ($(( ($(now_ms) - T_BEGIN) / 1000 )) s)"; }
die() { echo "demo: $*" >&2; exit 1; }
fact() { echo "$1=$2" >> "$OUT/facts"; }
# story KIND TEXT: a step of the story, time-stamped from the start of the load; the
# monitor prints it above the progress line, the report draws kills and outages.
story() { echo "$(awk -v n="$(now_ms)" -v t="$T0" 'BEGIN {printf "%.1f", (n - t) / 1000}')|$1|$2" >> "$OUT/story.log"; }
# free_range N: a base port with base..base+N-1 all free on 127.0.0.1.
free_range() {
  $PY - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
EOF
}
db_rows() { sqlite3 -cmd '.timeout 500' "$RUN/data/berth.db" 'SELECT COUNT(*) FROM outbox' 2>/dev/null || echo -1; }
backlog_at_most() { local n; n=$(db_rows); [ "$n" -ge 0 ] && [ "$n" -le "$1" ]; }
db_last_seq() { sqlite3 -cmd '.timeout 500' "$RUN/data/berth.db" "SELECT seq FROM sqlite_sequence WHERE name='outbox'" 2>/dev/null || echo 0; }
consumer_max_seq() {
  $PY - "$OUT/telemetry.jsonl" <<'EOF'
import json, sys
m = 0
for line in open(sys.argv[1], errors="replace"):
    try:
        p = json.loads(line)["payload"]
        p = json.loads(p) if isinstance(p, str) else p
        m = max([m] + [r["seq"] for r in p.get("rows", [])])
    except Exception:
        pass
print(m)
EOF
}

# --- cleanup: always, Ctrl-C included -------------------------------------------
BERTHD_PID="" LOADGEN_PID="" MONITOR_PID="" CONSUMER_PID="" BG_PIDS=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  [ -n "${OUT:-}" ] && [ -d "$OUT" ] && touch "$OUT/stop"
  for p in "$LOADGEN_PID" "$MONITOR_PID" "${BG_PIDS[@]}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null
  done
  if [ -n "$BERTHD_PID" ] && kill -TERM "$BERTHD_PID" 2>/dev/null; then
    wait_until 5 "berthd to exit" bash -c "! kill -0 $BERTHD_PID" 2>/dev/null || kill -KILL "$BERTHD_PID" 2>/dev/null
  fi
  [ -n "$CONSUMER_PID" ] && kill "$CONSUMER_PID" 2>/dev/null
  for p in "$LOADGEN_PID" "$MONITOR_PID" "${BG_PIDS[@]}" "$BERTHD_PID" "$CONSUMER_PID"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null
  done
  if [ -n "${SERVICES_DIR:-}" ]; then
    echo "demo: stopping the broker and the engine, removing $SERVICES_DIR"
    services_stop
  fi
  exit $rc
}
trap cleanup EXIT
KEEP_WAITING=0   # Ctrl-C is the way out of --keep: then it is not an error
trap 'echo; if [ $KEEP_WAITING = 1 ]; then exit 0; fi; echo "demo: interrupted"; exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "run it as root (sudo make demo): it runs podman and Mosquitto and installs packages"
mkdir -p "$OUT"
rm -rf "$OUT"/{facts,story.log,kills.csv,samples.csv,raw.csv,progress,telemetry.jsonl,stop,demo.png,summary.txt,chart}

bold "berth demo: ${STORY_S} s of load on $(nproc) CPU cores; outputs in ${OUT#"$here"/}"

# --- 1. dependencies and build -------------------------------------------------------
if [ "${DEMO_SKIP_DEPS:-0}" != 1 ]; then
  step "1/6 Debian packages (scripts/install-deps.sh installs what is missing)"
  scripts/install-deps.sh || die "installing dependencies failed"
fi
step "2/6 build (make O=${BUILD#"$here"/})"
make --no-print-directory -j2 O="$BUILD" all > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; die "build failed (log: $OUT/build.log)"; }
${CC:-cc} -O2 -o "$OUT/loadgen" tests/bench/loadgen.c 2>> "$OUT/build.log" || die "building the load generator failed"
echo "  berthd, berthctl, the reference worker and the load generator are built"

# --- 2. broker, engine, worker image ---------------------------------------------------
step "3/6 a private Mosquitto broker and podman's Docker API; the reference worker image"
unset SERVICES_DIR BERTH_BROKER_PORT BERTH_ENGINE_SOCK
export BERTH_BUILD=$BUILD
# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
services_start 2> "$OUT/services.log" || { cat "$OUT/services.log"; die "the broker or the engine did not start"; }
grep 'test-services: up' "$OUT/services.log" | sed 's/^test-services: /  /'
RUN=$SERVICES_DIR/demo
mkdir -p "$RUN"

# --- 3. berthd with the demo deployments -------------------------------------------------
step "4/6 berthd with three deployments: detector (urgent), classifier (normal), summarizer (batch)"
API_PORT=$(free_port)
BASE=$(free_range 30)
[ -n "$BASE" ] || die "no free range of 30 ports on 127.0.0.1"
P_DET=$BASE P_CLS=$((BASE + 10)) P_SUM=$((BASE + 20))
probe_ready='"readiness": { "type": "http", "path": "/v2/health/ready", "period_ms": 100, "timeout_ms": 250, "failure_threshold": 2 }'
probe_live='"liveness": { "type": "http", "path": "/v2/health/live", "period_ms": 1000, "timeout_ms": 500, "failure_threshold": 3 }'
# demo_deployment NAME MAX CLASS DEADLINE_MS PORT: one worker deployment entry
demo_deployment() {
  cat <<EOF
    { "name": "$1", "image": "$BERTH_WORKER_IMAGE",
      "env": { "WORKER_STARTUP_MS": "300", "WORKER_US_PER_KELEM": "10000" },
      "replicas": { "min": 1, "max": $2, "desired": 1 },
      "resources": { "memory": "64Mi" },
      "sla": { "class": "$3", "deadline_ms": $4 },
      "inference": { "port": $5, "concurrency": 1 },
      $probe_live, $probe_ready,
      "restart": { "policy": "always", "backoff_initial_ms": 500 },
      "startup_ms": 300 }
EOF
}
cat > "$RUN/deployments.json" <<EOF
{
  "version": 1,
  "deployments": [
$(demo_deployment detector 3 urgent 100 "$P_DET"),
$(demo_deployment classifier 2 normal 1000 "$P_CLS"),
$(demo_deployment summarizer 2 batch 10000 "$P_SUM")
  ]
}
EOF
# edf-reserve keeps one slot for urgent requests (when there are at least two), so a
# long batch request never holds every slot while urgent ones wait.
RESERVE=0
[ "$POLICY" = edf-reserve ] && [ "$(nproc)" -ge 2 ] && RESERVE=1
[ "$POLICY" = edf-reserve ] && [ $RESERVE -eq 0 ] && POLICY=edf-admit
# The console's signing key: berthd trusts it, and only commands signed with it (docs/security.md).
mkdir -p "$RUN/trust"
[ -f "$RUN/trust/console.key" ] || "$BUILD/berthctl" keygen demo-console "$RUN/trust/console.key" > "$RUN/trust/keys.json" \
  || die "no signing key could be made"
cat > "$RUN/config.json" <<EOF
{
  "device_id": "$DEV",
  "data_dir": "$RUN/data",
  "deployments_file": "$RUN/deployments.json",
  "log_level": "info",
  "engine": { "socket": "$BERTH_ENGINE_SOCK" },
  "broker": { "host": "127.0.0.1", "port": $BERTH_BROKER_PORT, "keepalive_s": 5,
              "reconnect_min_ms": 250, "reconnect_max_ms": 2000 },
  "api": { "listen": "127.0.0.1", "port": $API_PORT },
  "scheduler": { "slots": 0, "policy": "$POLICY", "urgent_reserve_slots": $RESERVE },
  "telemetry": { "interval_ms": 500 },
  "autoscale": { "enabled": true, "interval_s": 5, "target_low": 0.95, "target_high": 0.98,
                 "cooldown_s": 60, "cpu_ceiling_pct": 200, "mem_ceiling_pct": 90, "predictive": false },
  "trust": { "keys_file": "$RUN/trust/keys.json" }
}
EOF
"$BUILD/berthd" --check-config "$RUN/config.json" > /dev/null || die "the demo's config is invalid"
"$BUILD/berthctl" check-deployments "$RUN/deployments.json" > /dev/null || die "the demo's deployments are invalid"
cp "$RUN/config.json" "$RUN/deployments.json" "$OUT/"

# The consumer first, so that it sees berthd's very first row: a persistent QoS 1 session
# (the broker keeps its messages across the outage), every batch as one JSON line.
mosquitto_sub -V mqttv5 -h 127.0.0.1 -p "$BERTH_BROKER_PORT" -q 1 -c -i berth-demo-consumer -x 3600 -F '%j' \
  -t "berth/v1/$DEV/telemetry" -t "berth/v1/$DEV/events" > "$OUT/telemetry.jsonl" 2> "$OUT/consumer.log" &
CONSUMER_PID=$!
wait_until 5 "as berth-demo-consumer in mosquitto.log" grep -q 'as berth-demo-consumer' "$SERVICES_DIR/broker/mosquitto.log" || die "the telemetry consumer did not connect"

t_start=$(now_ms)
"$BUILD/berthd" -c "$RUN/config.json" > "$OUT/berthd.log" 2>&1 &
BERTHD_PID=$!
is_ready() { [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/v2/health/ready")" = 200 ]; }
wait_until 60 "the demo models ready" is_ready || { tail -20 "$OUT/berthd.log"; die "berthd's models were not ready within 60 s"; }
echo "  berthd (pid $BERTHD_PID) serves every model $(( $(now_ms) - t_start )) ms after it started;" \
  "local API 127.0.0.1:$API_PORT, device $DEV"

# --- 4. the story ------------------------------------------------------------------------
from_ms=$((START_MIN * 60000)) to_ms=$((START_MIN * 60000 + STORY_S * SPEEDUP * 1000))
read -r SKIP LIMIT < <(awk -F, -v a="$from_ms" -v b="$to_ms" \
  'NR > 1 { if ($1 < a) s++; else if ($1 < b) n++ } END { print s + 0, n + 0 }' "$TRACE")
[ "$LIMIT" -gt 0 ] || die "the trace slice is empty"
T0=$(( $(now_ms) + 50 ))   # the load generator sends its first request 50 ms after it starts
{
  echo "T0_MS=$T0"; echo "API_PORT=$API_PORT"; echo "DB=$RUN/data/berth.db"
  echo "BROKER_PID_FILE=$SERVICES_DIR/broker/pid"; echo "DEVICE=$DEV"
  echo "DEPLOYMENTS=detector:urgent:100,classifier:normal:1000,summarizer:batch:10000"
  echo "STORY_S=$STORY_S"; echo "SPEEDUP=$SPEEDUP"; echo "NCPU=$(nproc)"; echo "POLICY=$POLICY$([ $RESERVE -gt 0 ] && echo " ($RESERVE of $(nproc) slots kept for urgent requests)")"
  echo "LOADAVG=$(cut -d' ' -f1 /proc/loadavg)"
  echo "SLICE=minutes $START_MIN-$((START_MIN + (STORY_S * SPEEDUP + 59) / 60)) of $(basename "$TRACE")"
} >> "$OUT/facts"
step "5/6 the story: ${LIMIT} requests of $(basename "$TRACE") at ${SPEEDUP}x through the local API"
"$OUT/loadgen" --trace "$TRACE" --target "127.0.0.1:$API_PORT" --skip "$SKIP" --limit "$LIMIT" \
  --speedup "$SPEEDUP" --sizes 10000 --conns 200 --raw "$OUT/raw.csv" --progress "$OUT/progress" > "$OUT/loadgen.out" 2>&1 &
LOADGEN_PID=$!
$PY scripts/demo-tool.py monitor "$OUT" &
MONITOR_PID=$!

# kill_replica DEPLOYMENT SLOT: SIGKILL through the engine (as a crash would), then the time
# until berthd's supervisor has a replacement ready (its replica_ready line, wall clock).
kill_replica() {
  local dep=$1 slot=$2 t ready=""
  t=$(now_ms)
  story kill "kill $dep/$slot"
  curl -s -m 10 -X POST --unix-socket "$BERTH_ENGINE_SOCK" \
    "http://localhost/v1.41/containers/berth-$DEV-$dep-$slot/kill?signal=KILL" > /dev/null &
  local t_rel
  t_rel=$(awk -v n="$t" -v z="$T0" 'BEGIN {printf "%.1f", (n - z) / 1000}')
  ready_again() {
    ready=$(grep -o "event=replica_ready deployment=$dep replica=$slot .*wall_ms=[0-9]*" "$OUT/berthd.log" \
      | sed 's/.*wall_ms=//' | awk -v t="$t" '$1 > t { print $1; exit }')
    [ -n "$ready" ]
  }
  if WAIT_STEP=0.05 wait_until 30 "$dep replica $slot ready after the kill" ready_again 2>/dev/null; then
    echo "$dep,$slot,$t_rel,$((ready - t))" >> "$OUT/kills.csv"
    story info "$dep replica $slot replaced: ready $((ready - t)) ms after the kill"
  else
    echo "$dep,$slot,$t_rel,-1" >> "$OUT/kills.csv"
    story info "$dep replica $slot NOT ready again within 30 s"
  fi
}

# at MS: the story's clock (a schedule, not a wait for readiness): returns MS after the load began.
at() { local due=$(( T0 + $1 )); while [ "$(now_ms)" -lt $due ]; do sleep 0.1; done; }
KILL1_MS=$(( STORY_S * 300 ))
CUT_MS=$(( STORY_S * 450 ))
OUTAGE_MS=$(( STORY_S * 200 ))
KILL2_MS=$(( STORY_S * 800 ))

story info "load starts: ${LIMIT} requests over ${STORY_S} s"
at $KILL1_MS
kill_replica detector 0 &
BG_PIDS+=($!)
at $CUT_MS
pre=$(db_rows)
broker_stop
story broker_down "broker stopped: the uplink is cut"
at $((CUT_MS + OUTAGE_MS))
BUFFERED=$(db_rows)
broker_start 2>> "$OUT/services.log" || die "the broker did not come back"
story broker_up "broker back after $((OUTAGE_MS / 1000)) s; $BUFFERED telemetry rows buffered"
fact OUTAGE_S "$((OUTAGE_MS / 1000))"
fact BUFFERED "$BUFFERED"
t_up=$(now_ms)
(
  floor=$(( pre > 2 ? pre : 2 ))
  if wait_until 60 "the backlog to drain to $floor rows" backlog_at_most "$floor"; then
    s=$(awk -v a="$t_up" -v b="$(now_ms)" 'BEGIN {printf "%.1f", (b - a) / 1000}')
    echo "DRAIN_S=$s" >> "$OUT/facts"
    story info "telemetry backlog drained ${s} s after the broker came back"
  else
    echo "DRAIN_S=not within 60" >> "$OUT/facts"
  fi
) &
BG_PIDS+=($!)
if [ "$STORY_S" -ge 60 ]; then
  at $KILL2_MS
  kill_replica summarizer 0 &
  BG_PIDS+=($!)
fi
wait "$LOADGEN_PID"
LOADGEN_PID=""
story info "the load generator is done: $(tail -1 "$OUT/loadgen.out" | sed 's/^LOADGEN //; s/ p50.*//')"
for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
BG_PIDS=()

# Every row berthd gave out must reach the consumer: wait for the backlog to empty, take
# berthd's last sequence number, and wait for the consumer to have seen it.
wait_until 30 "the backlog to drain to 2 rows" backlog_at_most 2
LAST_SEQ=$(db_last_seq)
fact LAST_SEQ "$LAST_SEQ"
consumer_has() { [ "$(consumer_max_seq)" -ge "$1" ]; }
wait_until 20 "the consumer to reach the last seq" consumer_has "$LAST_SEQ" || story info "the consumer did not reach seq $LAST_SEQ within 20 s"
sleep 1   # a last sample of the steady state
touch "$OUT/stop"
wait "$MONITOR_PID" 2>/dev/null
MONITOR_PID=""

# --- 5. summary and chart -----------------------------------------------------------------
step "6/6 summary"
$PY scripts/demo-tool.py report "$OUT" || die "the report failed"
echo "  details: ${OUT#"$here"/}/ (summary.txt, raw.csv per request, samples.csv, berthd.log, telemetry.jsonl)"
echo "  demo ran $(( ($(now_ms) - T_BEGIN) / 1000 )) s in all"

if [ "$KEEP" = 1 ]; then
  # For the tour: the same deployments as version 2, plus a model whose container crashes
  # at start, to watch the restarts back off, the circuit open and the events arrive.
  $PY - "$RUN/deployments.json" "$OUT/tour-crashloop.json" "$((BASE + 25))" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["version"] = 2
flaky = dict(doc["deployments"][1])
flaky.update(name="flaky", env={"WORKER_FAULT": "crash"}, replicas=1,
             inference={"port": int(sys.argv[3]), "concurrency": 1},
             restart={"policy": "always", "backoff_initial_ms": 250, "backoff_max_ms": 2000})
doc["deployments"].append(flaky)
json.dump(doc, open(sys.argv[2], "w"), indent=2)
EOF
  ctl="${BUILD#"$here"/}/berthctl --broker 127.0.0.1:$BERTH_BROKER_PORT --sign-key $RUN/trust/console.key"
  echo
  bold "Everything is still running (DEMO_KEEP). Explore the gateway from the console side:"
  echo "  $ctl devices"
  echo "  $ctl state $DEV"
  echo "  $ctl scale $DEV classifier 2"
  echo "  $ctl events $DEV --follow &"
  echo "  $ctl deploy $DEV ${OUT#"$here"/}/tour-crashloop.json   # adds a model that crashes at start"
  echo "  curl -s http://127.0.0.1:$API_PORT/v1/state"
  echo "BERTHCTL=\"$ctl\" API=127.0.0.1:$API_PORT DEVICE=$DEV" > "$OUT/keep.env"
  echo "  (also in ${OUT#"$here"/}/keep.env) Ctrl-C stops everything."
  KEEP_WAITING=1
  while kill -0 "$BERTHD_PID" 2>/dev/null; do sleep 1; done
  echo "demo: berthd exited"
fi
exit 0
}
