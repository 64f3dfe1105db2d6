#!/usr/bin/env bash
# SIGHUP, key by key, on the real engine: log keys applied; scheduler policy and slots applied live
# with the requests queued at that moment kept (all answered 200); the API listener moved to a new
# port (new one answers, old one is closed), a unix socket added, a token applied; a new port that
# is taken leaves the old listener serving and says so; keys that need a restart (device_id,
# data_dir, engine.timeout_ms, telemetry.disk_budget_kb) are refused by name while the rest of the
# same file is applied; a config that others can read while it holds broker.password is refused
# whole, the path named. (Broker, telemetry and autoscale keys: test-reload-broker.sh.)
TEST=reload-keys
source "$(dirname "$0")/lib-infer.sh"
SCHED_JSON='"slots": 1, "policy": "fifo"'
MPORT=$((P + 1))
echo "{\"version\":1,\"deployments\":[$(worker_deployment m "$MPORT" 1 normal 20000)]}" > "$WORK/deployments.json"
berthd_start
wait_until 10 "the condition below" http_is 200 "$API/v2/health/live" && ok "berthd live on $API_PORT" || bad "berthd not live"
n_reloads() { grep -c 'event=reloaded ' "$WORK/berthd.log" || true; }
# hup [SED]: rewrite the config (write_config with the current SCHED_JSON/EXTRA_CONFIG, then SED), SIGHUP,
# wait for the reload line
hup() {
  local before; before=$(n_reloads)
  write_config; [ -n "${1:-}" ] && sed -i "$1" "$WORK/config.json"
  kill -HUP "$BERTHD_PID"
  wait_until 5 "the condition below" reloaded_since "$before"
}
reloaded_since() { [ "$(n_reloads)" -gt "$1" ]; }
last_reload() { grep 'event=reloaded ' "$WORK/berthd.log" | tail -1; }
reload_has() { last_reload | grep -F -- "$1" >/dev/null; }
state() { curl -s -m 5 "$1/v1/state" | jget "$2"; }

# --- logging
hup 's/"log_level": "info"/"log_level": "debug"/' && reload_has 'changed=log_level applied=log_level needs_restart=- not_applied=- log_level=dbg' \
  && ok "log_level applied: $(last_reload | sed 's/.*event=//')" || bad "log_level: $(last_reload)"
hup && reload_has 'applied=log_level needs_restart=- not_applied=- log_level=inf' && ok "log_level back to info" || bad "log_level back: $(last_reload)"

# --- scheduler: policy and slots applied while requests wait; none of them is lost
wait_until 20 "ready replicas of m = 1" ready_is m 1 || bad "m never ready"
qpids=()
for i in 1 2 3 4; do
  curl -s -m 30 -o /dev/null -w '%{http_code}\n' -d '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}],"parameters":{"cost_ms":600}}' \
    "$API/v2/models/m/infer" > "$WORK/q$i.code" 2>/dev/null &
  qpids+=($!)
done
sleep 0.3
SCHED_JSON='"slots": 3, "policy": "edf"'
hup || bad "no reload line"
wait "${qpids[@]}"
codes=$(cat "$WORK"/q?.code | tr '\n' ' ')
queued=$(grep -o 'event=params_changed policy=edf from=fifo slots=3 [^ ]* queued=[0-9]*' "$WORK/berthd.log" | tail -1 | sed 's/.*queued=//')
reload_has 'changed=scheduler.slots,scheduler.policy applied=scheduler.slots,scheduler.policy needs_restart=-' \
  && [ "$(state "$API" 'd["dispatch"]["scheduler"]["policy"]')" = edf ] && [ "$(state "$API" 'd["dispatch"]["scheduler"]["slots"]')" = 3 ] \
  && ok "scheduler.policy fifo->edf and scheduler.slots 1->3 applied live (GET /v1/state: edf, 3 slots)" \
  || bad "scheduler: $(last_reload) state $(state "$API" 'd["dispatch"]["scheduler"]')"
[ "${queued:-0}" -ge 1 ] && [ "$codes" = "200 200 200 200 " ] \
  && ok "the $queued requests queued at the switch were kept and answered: $codes" || bad "queued=$queued codes: $codes"

# --- API listener: a new port is opened, then the old one closed; a unix socket is added; a token
old_api=$API
new_port=$((P + 18))
hup "s/\"port\": $API_PORT/\"port\": $new_port/; s|\"max_body_bytes\": 65536|\"max_body_bytes\": 65536, \"unix_socket\": \"$WORK/api.sock\"|" \
  && reload_has 'changed=api.port,api.unix_socket applied=api.port,api.unix_socket' \
  && ok "api.port and api.unix_socket applied: $(last_reload | sed 's/.*event=//')" || bad "api: $(last_reload)"
API="http://127.0.0.1:$new_port"
http_is 200 "$API/v2/health/live" && ok "the new port $new_port answers" || bad "new port does not answer"
http_is 000 "$old_api/v2/health/live" && ok "the old port $API_PORT is closed" || bad "old port still answers"
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' --unix-socket "$WORK/api.sock" http://localhost/v2/health/live)" = 200 ] \
  && ok "the new unix socket answers" || bad "unix socket does not answer"
API_PORT=$new_port
hup "s|\"max_body_bytes\": 65536|\"max_body_bytes\": 65536, \"unix_socket\": \"$WORK/api.sock\", \"token\": \"t0ken-1234567890\"|" \
  && reload_has 'applied=api.token' && http_is 401 "$API/v2/health/ready" \
  && [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer t0ken-1234567890' "$API/v2/health/live")" = 200 ] \
  && ok "api.token applied: 401 without it, 200 with it" || bad "token: $(last_reload) code $(code_of "$API/v2/health/ready")"
hup && reload_has 'changed=api.unix_socket,api.token applied=api.unix_socket,api.token' && [ ! -e "$WORK/api.sock" ] \
  && http_is 200 "$API/v2/health/ready" && ok "unix socket and token removed again (socket file gone, no token needed)" \
  || bad "removal: $(last_reload)"
# a taken port: the running listener stays and the reload says so
taken=$(free_port)
$PY -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1); time.sleep(30)' "$taken" &
holder=$!
sleep 0.3
hup "s/\"port\": $API_PORT/\"port\": $taken/" && reload_has "not_applied=api.port" \
  && log_has "event=reload_not_applied group=api keys=api.port err=\"Address already in use\" kept=running" \
  && http_is 200 "$API/v2/health/live" && ok "api.port to a taken port: not applied, the running listener still answers" \
  || bad "taken port: $(last_reload)"
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true

# --- keys that need a restart: refused by name, the rest of the file applied
sleep 1.1 # berthd logs at most CONFIG_LOG_RATE_PER_S (5) lines a second from one site
hup "s/\"device_id\": \"$DEV\"/\"device_id\": \"other\"/; s|\"data_dir\": \"$WORK/data\"|\"data_dir\": \"$WORK/data2\"|; s/\"timeout_ms\": 5000/\"timeout_ms\": 6000/; s/\"log_level\": \"info\"/\"log_level\": \"debug\", \"telemetry\": { \"disk_budget_kb\": 4096 }/" \
  || bad "no reload line"
log_has 'event=reload_keys_refused keys=device_id,data_dir,engine.timeout_ms,telemetry.disk_budget_kb reason="needs a restart"' \
  && reload_has 'applied=log_level needs_restart=device_id,data_dir,engine.timeout_ms,telemetry.disk_budget_kb not_applied=-' \
  && ok "device_id, data_dir, engine.timeout_ms, telemetry.disk_budget_kb refused (needs a restart); log_level applied" \
  || bad "restart keys: $(grep reload_keys_refused "$WORK/berthd.log" | tail -1) / $(last_reload)"
[ "$(state "$API" 'd["device"]')" = "$DEV" ] && ok "device_id still $DEV" || bad "device id now $(state "$API" 'd["device"]')"

# --- the deployments file: applied (a new file name is read)
sleep 1.1
echo "{\"version\":2,\"deployments\":[$(worker_deployment m "$MPORT" 1 normal 20000)]}" > "$WORK/deployments2.json"
hup "s|deployments.json|deployments2.json|" && reload_has 'applied=log_level,deployments_file needs_restart=-' \
  && ok "deployments_file applied" || bad "deployments_file: $(last_reload)"

# --- a secret others can read: the whole reload is refused, the file named
before=$(grep -c 'event=reload_refused' "$WORK/berthd.log" || true)
write_config; sed -i 's/"broker": { "enabled": false }/"broker": { "enabled": false, "password": "s3cret" }/' "$WORK/config.json"
chmod 0644 "$WORK/config.json"; kill -HUP "$BERTHD_PID"
refused_since() { [ "$(grep -c 'event=reload_refused' "$WORK/berthd.log" || true)" -gt "$1" ]; }
wait_until 5 "the condition below" refused_since "$before" && log_has "event=reload_refused reason=\"$WORK/config.json holds broker.password and is readable by others" \
  && ok "a world-readable config with broker.password is refused, the path named" || bad "no refusal: $(tail -2 "$WORK/berthd.log")"
rc=0; "$build/berthd" --check-config "$WORK/config.json" > "$WORK/cc.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "readable by others (mode 0644)" "$WORK/cc.out" && ok "--check-config refuses it too: $(cat "$WORK/cc.out")" \
  || bad "--check-config rc=$rc: $(cat "$WORK/cc.out")"
chmod 0600 "$WORK/config.json"
"$build/berthd" --check-config "$WORK/config.json" >/dev/null 2>&1 && ok "the same file at 0600 passes" || bad "0600 config refused"
[ "$(stat -c %a "$WORK/data/berth.db")" = 600 ] && [ "$(stat -c %a "$WORK/data/berth.db-wal")" = 600 ] \
  && ok "berth.db and its WAL 0600 (berthd's umask)" || bad "modes: db $(stat -c %a "$WORK/data/berth.db"*)"
kill -0 "$BERTHD_PID" && ok "berthd still running" || bad "berthd died"
finish
