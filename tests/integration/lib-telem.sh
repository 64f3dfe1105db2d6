# tests/integration/lib-telem.sh - helpers for the telemetry/MQTT tests: a private broker, berthd, consumers.
# Source it; call telem_setup first. Each test gets its own mosquitto on a free
# loopback port (so stopping it for outage tests disturbs nobody), its own
# data dir, and everything is cleaned up by the EXIT trap.
set -u
# shellcheck source=tests/integration/lib-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib-common.sh"

TELEM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TELEM_BUILD=${BERTH_BUILD:-$TELEM_ROOT/build}
# shellcheck source=tests/integration/lib-trust.sh
source "$TELEM_ROOT/tests/integration/lib-trust.sh"
PY=/usr/bin/python3
TELEM_PIDS=()

fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*"; }


telem_cleanup() {
  local p
  for p in "${TELEM_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "${BROKER_PID:-}" ] && kill -9 "$BROKER_PID" 2>/dev/null
  [ -n "${BERTHD_PID:-}" ] && kill -9 "$BERTHD_PID" 2>/dev/null
  wait 2>/dev/null
  [ "${TELEM_KEEP:-0}" = 1 ] || rm -rf "$T"
}

telem_setup() {
  T=$(mktemp -d /tmp/berth-telem.XXXXXX)
  trap telem_cleanup EXIT INT TERM
  BROKER_PORT=$(free_port)
  BROKER_EXTRA=""
  DEV=${DEV:-gw-test}
  mkdir -p "$T/broker"
  # mosquitto started as root drops to user "mosquitto", which cannot write here.
  BROKER_USER=""
  [ "$(id -u)" -eq 0 ] && BROKER_USER="user root"
}

# broker_conf: writes $T/broker/mosquitto.conf (plain listener, persistence so
# that a consumer's persistent session survives restarts) plus $BROKER_EXTRA.
broker_conf() {
  cat > "$T/broker/mosquitto.conf" <<EOF
${BROKER_USER:-}
persistence true
persistence_location $T/broker/
autosave_interval 1
log_dest file $T/broker/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
${BROKER_LISTENER:-listener $BROKER_PORT 127.0.0.1
allow_anonymous true}
$BROKER_EXTRA
EOF
}

broker_up() {
  [ -f "$T/broker/mosquitto.conf" ] || broker_conf
  mosquitto -c "$T/broker/mosquitto.conf" &
  BROKER_PID=$!
  wait_until 5 "the broker listening on $BROKER_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BROKER_PORT" || fail "broker did not start"
}

broker_down() {
  [ -n "${BROKER_PID:-}" ] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null
  wait "$BROKER_PID" 2>/dev/null
  BROKER_PID=""
}

# berthd_config [extra json members]: writes $T/config.json (trusting the test's console key).
berthd_config() {
  local extra=${1:-}
  trust_keys "$T/trust" "$TELEM_BUILD" || fail "no signing key"
  cat > "$T/config.json" <<EOF
{
  "device_id": "$DEV",
  "data_dir": "$T/data",
  "log_level": "${BERTHD_LOG:-info}",
  "api": { "enabled": false },
  "broker": { "port": $BROKER_PORT, "reconnect_min_ms": 200, "reconnect_max_ms": 1000, "keepalive_s": 5 ${BROKER_JSON:-} },
  "telemetry": { "interval_ms": ${INTERVAL_MS:-200} ${TELEMETRY_JSON:-} },
  $TRUST_JSON
  $extra
}
EOF
}

berthd_up() {
  [ -f "$T/config.json" ] || berthd_config
  "$TELEM_BUILD/berthd" -c "$T/config.json" >> "$T/berthd.log" 2>&1 &
  BERTHD_PID=$!
}

berthd_down() {
  [ -n "${BERTHD_PID:-}" ] || return 0
  kill -"${1:-TERM}" "$BERTHD_PID" 2>/dev/null
  wait "$BERTHD_PID" 2>/dev/null
  BERTHD_PID=""
}

# consumer_up NAME TOPIC...: a persistent-session QoS 1 subscriber writing
# JSON lines (mosquitto_sub -F %j) to $T/NAME.out. When the broker runs, returns once the broker
# has logged its subscription to the last TOPIC (client id consumer-NAME).
consumer_up() {
  local name=$1; shift
  local args=() t from
  for t in "$@"; do args+=(-t "$t"); done
  from=$(log_lines "$T/broker/mosquitto.log")
  mosquitto_sub -V mqttv5 -p "$BROKER_PORT" -q 1 -c -i "consumer-$name" -x 3600 -F '%j' "${args[@]}" \
    ${CONSUMER_OPTS:-} >> "$T/$name.out" 2>> "$T/$name.err" &
  TELEM_PIDS+=($!)
  eval "CONSUMER_PID_$name=$!"
  [ -z "${BROKER_PID:-}" ] || subscribed "consumer-$name" "${!#}" "$from"
}

# berthd_subscribed [AFTER]: waits until berthd (client id $DEV) has subscribed to its desired
# state, the last of its subscriptions after a connect, after line AFTER of the broker log.
berthd_subscribed() { subscribed "$DEV" "berth/v1/$DEV/state/desired" "${1:-0}"; }

# subscribed CLIENT TOPIC [AFTER]: waits (5 s) until the broker logs CLIENT's subscription to TOPIC
# after line AFTER of its log; fails the test when it does not.
subscribed() {
  wait_until 5 "$1 subscribed to $2" mqtt_subscribed "$T/broker/mosquitto.log" "$@" \
    || fail "$1 never subscribed to $2"
}

# seq_report FILE: prints "first last count unique dups gaps" over the rows of telemetry/events batches.
seq_report() {
  $PY - "$1" <<'EOF'
import json, sys
seqs = []
for line in open(sys.argv[1], errors="replace"):
    line = line.strip()
    if not line:
        continue
    try:
        m = json.loads(line)
        p = json.loads(m["payload"]) if isinstance(m["payload"], str) else m["payload"]
    except Exception:
        continue
    if not isinstance(p, dict) or "rows" not in p:
        continue
    seqs += [r["seq"] for r in p["rows"]]
u = sorted(set(seqs))
gaps = 0
if u:
    gaps = (u[-1] - u[0] + 1) - len(u)
print(u[0] if u else 0, u[-1] if u else 0, len(seqs), len(u), len(seqs) - len(u), gaps)
EOF
}

# seq_account TELFILE LAST KEPTFILE LOGFILE: accounts for every seq 1..LAST given
# out by a berthd that has stopped. A seq is delivered (a row in TELFILE), kept
# (listed in KEPTFILE: still in the outbox) or missing. Prints
# "missing outside in_range_delivered refused suppressed":
#   outside: missing seqs in no first_seq..last_seq range of an
#            event=budget_prune line of LOGFILE (must be 0);
#   in_range_delivered: delivered telemetry rows inside those ranges (a row
#            sent, then pruned before its PUBACK, is delivered and counted);
#   refused: rows counted as dropped that never had a seq (event=row_dropped,
#            and rows of a transaction SQLite rolled back: event=txn_rolled_back);
#   suppressed: budget_prune/row_dropped lines the log rate limit left out.
seq_account() {
  $PY - "$@" <<'EOF'
import json, re, sys
tel, last, keptf, logf = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
delivered, tel_rows = set(), set()
for line in open(tel, errors="replace"):
    try:
        m = json.loads(line)
        p = json.loads(m["payload"]) if isinstance(m["payload"], str) else m["payload"]
    except Exception:
        continue
    if not isinstance(p, dict) or "rows" not in p:
        continue
    for r in p["rows"]:
        delivered.add(r["seq"])
        if p.get("kind") == "telemetry":
            tel_rows.add(r["seq"])
kept = {int(x) for x in open(keptf).read().split()}
ranges, refused, suppressed = [], 0, 0
for line in open(logf, errors="replace"):
    if "event=budget_prune" in line:
        m = re.search(r"first_seq=(\d+) last_seq=(\d+)", line)
        ranges.append((int(m.group(1)), int(m.group(2))))
    elif "event=row_dropped" in line:
        refused += 1
    elif "event=txn_rolled_back" in line:
        refused += sum(int(x) for x in re.findall(r"dropped_\w+=(\d+)", line))
    else:
        continue
    m = re.search(r"suppressed=(\d+)", line)
    suppressed += int(m.group(1)) if m else 0
inr = lambda q: any(lo <= q <= hi for lo, hi in ranges)
missing = [q for q in range(1, last + 1) if q not in delivered and q not in kept]
outside = [q for q in missing if not inr(q)]
print(len(missing), len(outside), sum(1 for q in tel_rows if inr(q)), refused, suppressed)
EOF
}

# last_seq: the highest seq berthd has given out (from its database).
db_last_seq() { sqlite3 "$T/data/berth.db" "SELECT seq FROM sqlite_sequence WHERE name='outbox'" 2>/dev/null || echo 0; }
db_rows() { sqlite3 "$T/data/berth.db" "SELECT COUNT(*) FROM outbox" 2>/dev/null || echo -1; }

# outbox_at_most N / outbox_at_least N: whether berthd's outbox holds N rows or fewer / or more.
outbox_at_most() { [ "$(sqlite3 "$T/data/berth.db" 'SELECT COUNT(*) FROM outbox')" -le "$1" ]; }
outbox_at_least() { [ "$(sqlite3 "$T/data/berth.db" 'SELECT COUNT(*) FROM outbox')" -ge "$1" ]; }

# seq_reached FILE LAST: whether the rows in consumer output FILE reach seq LAST.
seq_reached() { local r; r=$(seq_report "$1"); [ "$(echo "$r" | cut -d' ' -f2)" -ge "$2" ]; }

# telem_flow_up: the broker, consumer "tel" of telemetry and events (they share one sequence),
# then berthd; fails unless berthd connects within 10 s.
telem_flow_up() {
  broker_up
  consumer_up tel "berth/v1/$DEV/telemetry" "berth/v1/$DEV/events"
  berthd_up
  wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
}

# telem_flow_check MAXROWS: waits (30 s) for the outbox to drain to MAXROWS rows, stops berthd
# (TERM), waits (20 s) for consumer "tel" to reach the last seq berthd gave out, then sets
# last, first, lastseen, count, unique, dups and gaps, and fails unless the rows received start
# at seq 1 and have no gap.
# shellcheck disable=SC2034 # the figures are for the caller
telem_flow_check() {
  wait_until 30 "the outbox to drain" outbox_at_most "$1" || fail "backlog did not drain"
  berthd_down TERM
  last=$(db_last_seq)
  wait_until 20 "the consumer to reach the last seq" seq_reached "$T/tel.out" "$last" \
    || fail "consumer never reached seq $last: $(seq_report "$T/tel.out")"
  read -r first lastseen count unique dups gaps <<< "$(seq_report "$T/tel.out")"
  log "rows: first=$first last=$lastseen received=$count unique=$unique duplicates=$dups gaps=$gaps db_last=$last"
  [ "$first" -eq 1 ] || fail "first seq is $first, expected 1"
  [ "$gaps" -eq 0 ] || fail "$gaps sequence numbers missing"
}

# cmd VERB JSON: publishes a command (v3.1.1) and returns; replies land in the "replies" consumer.
# Signed with the test's console key when it is a JSON object (malformed input goes as it is).
cmd() {
  local msg
  msg=$(printf '%s' "$2" | sign_msg command "$DEV" 2>/dev/null) || msg=$2
  mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/$1" -m "$msg" || fail "publish $1"
}

# reply_for ID: prints the first reply payload carrying id ID (from $T/replies.out).
reply_for() {
  $PY - "$T/replies.out" "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        m = json.loads(line)
        p = json.loads(m["payload"])
    except Exception:
        continue
    if m["topic"].endswith("/reply") or not "/cmd/" in m["topic"]:
        if isinstance(p, dict) and p.get("id") == sys.argv[2]:
            print(json.dumps(p, sort_keys=True))
            break
EOF
}

# has_reply ID / replies_at_least ID N: whether a reply (N replies) carrying id ID came.
has_reply() { [ -n "$(reply_for "$1")" ]; }
replies_at_least() { [ "$(replies_count "$1")" -ge "$2" ]; }

# replies_count ID: how many replies carried id ID.
replies_count() {
  $PY - "$T/replies.out" "$1" <<'EOF'
import json, sys
n = 0
for line in open(sys.argv[1], errors="replace"):
    try:
        m = json.loads(line); p = json.loads(m["payload"])
    except Exception:
        continue
    if m["topic"].endswith("/reply") and isinstance(p, dict) and p.get("id") == sys.argv[2]:
        n += 1
print(n)
EOF
}
