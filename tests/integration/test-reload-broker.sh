#!/usr/bin/env bash
# SIGHUP with the real broker: broker.port moved to an address where nothing listens (status offline
# published first, the rows made meanwhile stay in the outbox) and then to a second broker (status
# online there, telemetry continues with no gap in the outbox's sequence); telemetry.interval_ms,
# batch_max_bytes and inflight_max applied live (rows arrive at the new period, compared with the
# old period in the same run); autoscale turned on (the scaler starts with the new interval and
# reports) and off; broker.enabled off (status offline) and on again.
TEST=reload-broker
WITH_BROKER=1
source "$(dirname "$0")/lib-infer.sh"
: "${BERTH_BROKER_PORT:?needs the test broker (scripts/test-services.sh)}"
B1=$BERTH_BROKER_PORT
B2=$(free_port)
mkdir -p "$WORK/b2"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$B2" > "$WORK/b2/mosquitto.conf"
mosquitto -c "$WORK/b2/mosquitto.conf" > "$WORK/b2/log" 2>&1 &
B2PID=$!
subs=()
trap 'kill "$B2PID" "${subs[@]}" 2>/dev/null; cleanup' EXIT INT TERM
port_open() { $PY -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null; }
wait_until 5 "broker 2 listening on $B2" port_open "$B2" || bad "broker 2 did not start: $(cat "$WORK/b2/log")"
EXTRA_CONFIG=', "telemetry": { "interval_ms": 1000 }'
echo '{"version":1,"deployments":[]}' > "$WORK/deployments.json"
T="berth/v1/$DEV"
mosquitto_sub -p "$B1" -t "$T/telemetry" > "$WORK/t1.log" 2>/dev/null & subs+=($!)
mosquitto_sub -p "$B2" -t "$T/telemetry" > "$WORK/t2.log" 2>/dev/null & subs+=($!)
berthd_start
status_on() { mosquitto_sub -p "$1" -t "$T/status" -C 1 -W 3 2>/dev/null | grep -q "\"online\":$2"; }
wait_until 15 "status online on broker 1" status_on "$B1" true && ok "online on broker 1 ($B1)" || bad "not online on broker 1"
n_reloads() { grep -c 'event=reloaded ' "$WORK/berthd.log" || true; }
reloaded_since() { [ "$(n_reloads)" -gt "$1" ]; }
hup() {
  local before; before=$(n_reloads)
  write_config; [ -n "${1:-}" ] && sed -i "$1" "$WORK/config.json"
  kill -HUP "$BERTHD_PID"
  wait_until 5 "the condition below" reloaded_since "$before"
}
last_reload() { grep 'event=reloaded ' "$WORK/berthd.log" | tail -1; }
reload_has() { last_reload | grep -F -- "$1" >/dev/null; }
# seqs FILE: "first_last max_last rows" over the telemetry batches in FILE
seqs() { $PY - "$1" <<'EOP'
import json, sys
firsts, lasts, rows = [], [], 0
for line in open(sys.argv[1], errors="replace"):
    try: d = json.loads(line)
    except Exception: continue
    firsts.append(d["first_seq"]); lasts.append(d["last_seq"]); rows += len(d["rows"])
print(min(firsts) if firsts else 0, max(lasts) if lasts else 0, rows)
EOP
}
# missing FILE FROM: seqs from FROM to the highest seen in FILE that no batch in FILE carried
missing() { $PY - "$1" "$2" <<'EOP'
import json, sys
seen = set()
for line in open(sys.argv[1], errors="replace"):
    try: seen.update(r["seq"] for r in json.loads(line)["rows"])
    except Exception: pass
lo = int(sys.argv[2]); hi = max(seen) if seen else lo
print(" ".join(str(q) for q in range(lo, hi + 1) if q not in seen) or "none", hi)
EOP
}
rows_in() { # rows_in FILE SECONDS: telemetry rows arriving in FILE during SECONDS
  local a b; a=$(seqs "$1" | cut -d' ' -f3); sleep "$2"; b=$(seqs "$1" | cut -d' ' -f3); echo $((b - a))
}
wait_until 10 "telemetry on broker 1" sh -c "[ \$(wc -l < '$WORK/t1.log') -ge 2 ]" || bad "no telemetry on broker 1"

# --- broker.port to an address where nothing listens: offline first, rows kept in the outbox
dead=$(free_port)
BERTH_BROKER_PORT=$dead hup && reload_has 'changed=broker.port applied=broker.port needs_restart=- not_applied=-' \
  && ok "broker.port applied: $(last_reload | sed 's/.*event=//')" || bad "broker.port: $(last_reload)"
status_on "$B1" false && ok "status offline published on broker 1 before the disconnect" || bad "broker 1 status still online"
sleep 3
read -r _ l1 _ <<< "$(seqs "$WORK/t1.log")"

# --- broker.port to broker 2: online there, the outbox continues where broker 1 stopped
BERTH_BROKER_PORT=$B2 hup && reload_has 'applied=broker.port' || bad "broker.port to $B2: $(last_reload)"
wait_until 10 "status online on broker 2" status_on "$B2" true && ok "online on broker 2 ($B2) after the reload" || bad "not online on broker 2"
wait_until 10 "telemetry on broker 2" sh -c "[ -s '$WORK/t2.log' ]" || bad "no telemetry on broker 2"
read -r f2 _ _ <<< "$(seqs "$WORK/t2.log")"
wait_until 10 "broker 2 past seq $((l1 + 3))" sh -c "[ \$(missing '$WORK/t2.log' $((l1 + 1)) | cut -d' ' -f2) -ge $((l1 + 3)) ]" || true
read -r gaps hi <<< "$(missing "$WORK/t2.log" $((l1 + 1)))"
[ "$l1" -gt 0 ] && [ "$f2" -le $((l1 + 1)) ] && [ "$gaps" = none ] && [ "$hi" -ge $((l1 + 3)) ] \
  && ok "outbox kept: broker 1 got rows up to seq $l1; broker 2 got every row from seq $((l1 + 1)) to $hi, those made while unconnected included" \
  || bad "outbox: broker 1 up to $l1, broker 2 from $f2 to $hi, missing: $gaps"
BERTH_BROKER_PORT=$B2

# --- telemetry: a shorter period, a smaller batch and window
base=$(rows_in "$WORK/t2.log" 4)
EXTRA_CONFIG=', "telemetry": { "interval_ms": 250, "batch_max_bytes": 4096, "inflight_max": 4 }' hup \
  && reload_has 'changed=telemetry.interval_ms,telemetry.batch_max_bytes,telemetry.inflight_max applied=telemetry.interval_ms,telemetry.batch_max_bytes,telemetry.inflight_max' \
  && ok "telemetry keys applied: $(last_reload | sed 's/.*event=//')" || bad "telemetry: $(last_reload)"
sleep 1
fast=$(rows_in "$WORK/t2.log" 4)
[ "$fast" -ge $((base * 2)) ] && [ "$fast" -ge 8 ] && ok "telemetry rows in 4 s: $base at 1000 ms, $fast at 250 ms" \
  || bad "rows in 4 s: $base before, $fast after"
status_on "$B2" true && ok "still online on broker 2 after the window change" || bad "offline after the telemetry reload"

# --- autoscale: on with a 1 s interval, then off
EXTRA_CONFIG=', "telemetry": { "interval_ms": 250, "batch_max_bytes": 4096, "inflight_max": 4 }' \
  hup 's/"autoscale": { "enabled": false }/"autoscale": { "enabled": true, "interval_s": 1, "predictive": false }/' \
  && reload_has 'applied=autoscale.enabled,autoscale.interval_s,autoscale.predictive' && log_has 'event=autoscaler_started interval_s=1 predictive=0' \
  && ok "autoscale on: $(grep -o 'event=autoscaler_started.*' "$WORK/berthd.log" | tail -1)" || bad "autoscale on: $(last_reload)"
sleep 1.5
n=$(wc -l < "$WORK/t2.log")
wait_until 5 "an autoscale section in telemetry" sh -c "tail -n +$n '$WORK/t2.log' | grep -q '\"autoscale\"'" \
  && ok "telemetry carries the autoscaler's section" || bad "no autoscale section in telemetry"
EXTRA_CONFIG=', "telemetry": { "interval_ms": 250, "batch_max_bytes": 4096, "inflight_max": 4 }' hup \
  && reload_has 'applied=autoscale.enabled,autoscale.interval_s,autoscale.predictive' && [ "$(log_count 'event=autoscaler_disabled')" -ge 2 ] \
  && ok "autoscale off again" || bad "autoscale off: $(last_reload)"

# --- broker.enabled off and on
sleep 1.1 # at most 5 lines a second from one log site
EXTRA_CONFIG=', "telemetry": { "interval_ms": 250, "batch_max_bytes": 4096, "inflight_max": 4 }' \
  hup "s/\"broker\": { \"port\": $B2/\"broker\": { \"enabled\": false, \"port\": $B2/" && reload_has 'applied=broker.enabled' \
  && status_on "$B2" false && ok "broker.enabled false: status offline, no connection" || bad "broker off: $(last_reload)"
http_is 200 "$API/v2/health/live" && ok "berthd serves on without a broker" || bad "API down"
EXTRA_CONFIG=', "telemetry": { "interval_ms": 250, "batch_max_bytes": 4096, "inflight_max": 4 }' hup \
  && reload_has 'applied=broker.enabled' && wait_until 10 "status online on broker 2" status_on "$B2" true \
  && ok "broker.enabled true again: online on broker 2" || bad "broker on: $(last_reload)"
kill -0 "$BERTHD_PID" && ok "berthd still running" || bad "berthd died"
finish
