#!/usr/bin/env bash
# berthctl against a real berthd and a real Mosquitto broker: devices, state, deploy (good spec, bad spec
# refused locally with the field named and nothing sent, older version refused by berthd), scale, events,
# telemetry, --json parsed, and the timeout message for an offline device.
set -u
here=$(cd "$(dirname "$0")" && pwd)
DEV=gw-ctl
# shellcheck source=tests/integration/lib-telem.sh
source "$here/lib-telem.sh"
telem_setup

CTL="$TELEM_BUILD/berthctl"
[ -x "$CTL" ] || fail "no $CTL (run make first)"
broker_up
B=(-b "127.0.0.1:$BROKER_PORT")
# No engine on purpose: berthd's first event is then always engine_unavailable (a reachable
# engine raises no event at start, so there would be nothing to wait for). Deploy and scale
# are accepted all the same; the containers are not what this test is about.
ENGINE_SOCK=$T/no-engine.sock
berthd_config ", \"engine\": { \"socket\": \"$ENGINE_SOCK\", \"timeout_ms\": 1000 }"

json() { $PY -c "import json,sys; d=json.load(sys.stdin); $1"; }

# --- events: subscribed before berthd starts, so its first event (engine_unavailable) is seen ----
"$CTL" "${B[@]}" -v events "$DEV" --count 1 --timeout 20 --json > "$T/events.out" 2> "$T/events.err" &
EV_PID=$!
wait_until 5 "event=subscribed in events.err" grep -q "event=subscribed" "$T/events.err" || fail "berthctl events did not subscribe"
berthd_up

online() { "$CTL" "${B[@]}" devices --json 2>/dev/null | json "sys.exit(0 if any(x['device']=='$DEV' and x['online'] for x in d) else 1)"; }
wait_until 10 "$DEV online on the broker" online || fail "berthctl devices never showed $DEV online"
log "devices: $DEV online"

"$CTL" "${B[@]}" devices > "$T/devices.txt" || fail "devices exit $?"
grep -Eq "^$DEV +online +20[0-9-]+ [0-9:]+ \(" "$T/devices.txt" || { cat "$T/devices.txt"; fail "devices table lacks '$DEV online since'"; }

wait "$EV_PID"; rc=$?
[ $rc -eq 0 ] || { cat "$T/events.err"; fail "events --count 1 exit $rc"; }
json "assert d['data']['event'] == 'engine_unavailable', d; assert d['seq'] >= 1" < "$T/events.out" \
  || { cat "$T/events.out"; fail "events --json: no engine event row"; }
log "events: $(head -c 160 "$T/events.out")"

# --- telemetry: two rows as JSON lines ---------------------------------------------------------------
"$CTL" "${B[@]}" telemetry "$DEV" --count 2 --json --timeout 10 > "$T/telemetry.out" || fail "telemetry exit $?"
[ "$(wc -l < "$T/telemetry.out")" -eq 2 ] || { cat "$T/telemetry.out"; fail "telemetry --count 2 printed other than 2 rows"; }
while read -r line; do
  echo "$line" | json "assert 'node' in d['data'] and 'store' in d['data'], d" || fail "telemetry row lacks node/store: $line"
done < "$T/telemetry.out"
"$CTL" "${B[@]}" telemetry "$DEV" > "$T/telemetry.txt" || fail "telemetry (table) exit $?"
grep -q "^TIME *SEQ *CPU" "$T/telemetry.txt" || fail "telemetry table has no header"

# --- deploy: good spec -------------------------------------------------------------------------------
ROOT=$(cd "$here/../.." && pwd)
$PY - "$ROOT/docs/examples/deployments.json" "$T/good.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d["version"] = 2
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF
"$CTL" "${B[@]}" deploy "$DEV" "$T/good.json" > "$T/deploy.out" 2>&1 || { cat "$T/deploy.out"; fail "deploy of a good spec exit $?"; }
grep -q "^$DEV accepted desired version 2 (2 deployments: detector, classifier)" "$T/deploy.out" \
  || { cat "$T/deploy.out"; fail "deploy output"; }
log "deploy: $(cat "$T/deploy.out")"

# --- deploy: bad spec, refused locally, nothing published ---------------------------------------------
from=$(log_lines "$T/broker/mosquitto.log")
mosquitto_sub -p "$BROKER_PORT" -i cmds-watch -t "berth/v1/$DEV/cmd/#" -F '%t %p' > "$T/cmds.out" 2>/dev/null &
TELEM_PIDS+=($!)
subscribed cmds-watch "berth/v1/$DEV/cmd/#" "$from"
$PY - "$T/good.json" "$T/bad.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d["version"] = 3; d["deployments"][0]["replicas"]["max"] = 99
json.dump(d, open(sys.argv[2], "w"))
EOF
"$CTL" "${B[@]}" deploy "$DEV" "$T/bad.json" > "$T/bad.out" 2>&1; rc=$?
[ $rc -eq 2 ] || { cat "$T/bad.out"; fail "bad spec: exit $rc, want 2"; }
grep -q "deployment 'detector': replicas.max: .*nothing was sent" "$T/bad.out" || { cat "$T/bad.out"; fail "bad spec: field not named"; }
# Validation happens before any connection: an unreachable broker changes nothing.
"$CTL" -b 127.0.0.1:1 deploy "$DEV" "$T/bad.json" > /dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "bad spec with no broker: exit $rc, want 2"
# A marker command after it: once the marker is seen, the bad spec would have been seen too.
"$CTL" "${B[@]}" scale "$DEV" detector 3 > "$T/scale.out" 2>&1 || { cat "$T/scale.out"; fail "scale exit $?"; }
wait_until 5 "cmd/scale in cmds.out" grep -q "cmd/scale " "$T/cmds.out" || fail "the scale command was not seen on the broker"
grep -q '"version":3' "$T/cmds.out" && fail "the bad spec was published"
grep -q "^$DEV: detector scaled to 3 replicas" "$T/scale.out" || { cat "$T/scale.out"; fail "scale output"; }
log "bad spec: $(cat "$T/bad.out")"

# --- deploy: an older version is refused by berthd ---------------------------------------------------
"$CTL" "${B[@]}" deploy "$DEV" "$T/good.json" --version 1 > "$T/old.out" 2>&1; rc=$?
[ $rc -eq 1 ] || { cat "$T/old.out"; fail "older version: exit $rc, want 1"; }
grep -q "refused the deploy command: stale_version: args.version 1 is not newer than the current 2" "$T/old.out" \
  || { cat "$T/old.out"; fail "older version: message"; }
"$CTL" "${B[@]}" deploy "$DEV" "$T/good.json" --version 1 --json > "$T/old.json" 2>/dev/null
json "assert d['ok'] is False and d['error']['code'] == 'stale_version', d" < "$T/old.json" || fail "--json refusal"
log "older version: $(cat "$T/old.out")"

# --- scale errors and state ----------------------------------------------------------------------------
"$CTL" "${B[@]}" scale "$DEV" nosuch 1 > "$T/nosuch.out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "unknown_deployment" "$T/nosuch.out" || { cat "$T/nosuch.out"; fail "scale of an unknown deployment: exit $rc"; }

scaled() {
  "$CTL" "${B[@]}" state "$DEV" --json 2>/dev/null | json "
deps = {x['name']: x for x in d['state']['deployments']}
assert d['status']['online'] is True and d['state']['desired_version'] == 2
sys.exit(0 if deps['detector'].get('replicas_desired', deps['detector'].get('replicas')) == 3 else 1)"
}
wait_until 10 "detector at 3 desired replicas in berthctl state" scaled || fail "state --json never showed detector at 3 desired replicas"
"$CTL" "${B[@]}" state "$DEV" > "$T/state.txt" || fail "state exit $?"
grep -q "^device $DEV: online since .*; desired version 2" "$T/state.txt" || { cat "$T/state.txt"; fail "state header"; }
grep -Eq "^detector +.* [0-9-]+/3 " "$T/state.txt" || { cat "$T/state.txt"; fail "state table lacks detector ?/3"; }
grep -Eq "^classifier " "$T/state.txt" || { cat "$T/state.txt"; fail "state table lacks classifier"; }
log "state:"; cat "$T/state.txt"

# --- an offline device: the timeout says so --------------------------------------------------------
berthd_down KILL
offline() { "$CTL" "${B[@]}" devices --json 2>/dev/null | json "sys.exit(0 if any(x['device']=='$DEV' and x['online'] is False for x in d) else 1)"; }
wait_until 10 "$DEV offline on the broker" offline || fail "the Last Will did not turn $DEV offline"
start=$(date +%s%N)
"$CTL" "${B[@]}" scale "$DEV" detector 1 --timeout 1 > "$T/offline.out" 2>&1; rc=$?
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ $rc -eq 3 ] || { cat "$T/offline.out"; fail "offline device: exit $rc, want 3"; }
grep -Eq "device $DEV did not answer within 1 s; last seen offline [0-9]+ s ago" "$T/offline.out" \
  || { cat "$T/offline.out"; fail "offline device: message"; }
[ $took_ms -lt 4000 ] || fail "the 1 s timeout took $took_ms ms"
log "offline: $(cat "$T/offline.out") (${took_ms} ms)"

"$CTL" "${B[@]}" state nosuch-device --timeout 0.5 > "$T/unknown.out" 2>&1; rc=$?
[ $rc -eq 3 ] && grep -q "device nosuch-device did not answer within 0.5 s; it has no status on this broker" "$T/unknown.out" \
  || { cat "$T/unknown.out"; fail "unknown device: exit $rc"; }

# --- a broker that is not there ---------------------------------------------------------------------
"$CTL" -b "127.0.0.1:$(free_port)" devices --timeout 0.5 > "$T/nobroker.out" 2>&1; rc=$?
[ $rc -eq 4 ] && grep -q "cannot connect to the broker 127.0.0.1:[0-9]*" "$T/nobroker.out" && grep -q "hint: name the broker" "$T/nobroker.out" \
  || { cat "$T/nobroker.out"; fail "no broker: exit $rc"; }

# --- config file instead of flags ----------------------------------------------------------------------
"$CTL" -c "$T/config.json" devices --json | json "assert any(x['device']=='$DEV' for x in d)" || fail "-c config.json"

echo "PASS test-berthctl"
