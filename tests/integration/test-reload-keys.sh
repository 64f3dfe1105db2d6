#!/usr/bin/env bash
# SIGHUP, key by key: the live keys (log_level, log_syslog, deployments_file) are applied; every
# other changed key (scheduler, API listener, broker, telemetry, autoscale, engine) is refused by
# name with "needs a restart" and keeps its running value (the old API port still answers, the new
# one does not); the reload line lists what changed, what was applied and what was refused; a
# config that others can read while it holds broker.password is refused whole, the path named.
TEST=reload-keys
source "$(dirname "$0")/lib-infer.sh"
echo '{"version":1,"deployments":[]}' > "$WORK/deployments.json"
berthd_start
wait_until 10 "the condition below" http_is 200 "$API/v2/health/live" && ok "berthd live on $API_PORT" || bad "berthd not live"
n_reloads() { grep -c 'event=reloaded ' "$WORK/berthd.log" || true; }
# hup: rewrite the config (write_config with the current SCHED_JSON/EXTRA_CONFIG), SIGHUP, wait for the reload line
hup() {
  local before; before=$(n_reloads)
  write_config; [ -n "${1:-}" ] && sed -i "$1" "$WORK/config.json"
  kill -HUP "$BERTHD_PID"
  wait_until 5 "the condition below" reloaded_since "$before"
}
reloaded_since() { [ "$(n_reloads)" -gt "$1" ]; }
last_reload() { grep 'event=reloaded ' "$WORK/berthd.log" | tail -1; }
reload_has() { last_reload | grep -F -- "$1" >/dev/null; }

# --- logging: applied live
hup 's/"log_level": "info"/"log_level": "debug"/' && reload_has 'changed=log_level applied=log_level needs_restart=- log_level=dbg' \
  && ok "log_level applied: $(last_reload | sed 's/.*event=//')" || bad "log_level: $(last_reload)"
hup && reload_has 'applied=log_level needs_restart=- log_level=inf' && ok "log_level back to info" || bad "log_level back: $(last_reload)"

# --- scheduler: refused, named
SCHED_JSON='"slots": 3, "policy": "fifo"' hup || bad "no reload line"
log_has 'event=reload_keys_refused keys=scheduler.slots,scheduler.policy reason="needs a restart"' \
  && reload_has 'changed=scheduler.slots,scheduler.policy applied=- needs_restart=scheduler.slots,scheduler.policy' \
  && ok "scheduler.slots and scheduler.policy refused: needs a restart" || bad "scheduler: $(last_reload)"

# --- API listener: refused; the running port keeps answering
new_port=$((P + 18))
hup "s/\"port\": $API_PORT/\"port\": $new_port/" && log_has 'keys=api.port reason="needs a restart"' \
  && ok "api.port refused: needs a restart" || bad "api.port: $(last_reload)"
http_is 200 "$API/v2/health/live" && ok "the running API port still answers" || bad "old API port gone"
http_is 000 "http://127.0.0.1:$new_port/v2/health/live" && ok "nothing listens on the refused new port" || bad "new port answers"

# --- broker, telemetry, autoscale, engine: refused, named in one line
EXTRA_CONFIG=', "telemetry": { "interval_ms": 2000 }' hup 's/"enabled": false }, "autoscale"/"enabled": true, "port": 1 }, "autoscale"/; s/"autoscale": { "enabled": false }/"autoscale": { "enabled": false, "interval_s": 7 }/; s/"timeout_ms": 5000/"timeout_ms": 6000/' || bad "no reload line"
for k in broker.enabled broker.port telemetry.interval_ms autoscale.interval_s engine.timeout_ms; do
  grep 'event=reload_keys_refused' "$WORK/berthd.log" | tail -1 | grep -E "keys=([a-z_.]+,)*$k(,| )" >/dev/null && ok "$k refused: needs a restart" || bad "$k not refused: $(last_reload)"
done

# --- the deployments file: applied (a new file name is read). A window first: berthd logs at most
# CONFIG_LOG_RATE_PER_S (5) lines a second from one site, and five reloads just happened.
sleep 1.1
echo '{"version":2,"deployments":[]}' > "$WORK/deployments2.json"
hup "s|deployments.json|deployments2.json|" && reload_has 'changed=deployments_file applied=deployments_file needs_restart=-' \
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
