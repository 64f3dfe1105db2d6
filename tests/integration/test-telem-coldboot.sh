#!/usr/bin/env bash
# Offline cold boot: the console deploys, the gateway loses power (SIGKILL) and
# boots with the broker unreachable. berthd converges on the persisted desired
# state at once, keeps measuring and buffers; when the broker returns, the
# backlog drains and the reported state catches up.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=200
# A deployments file with an older spec: the persisted desired state must win.
cat > "$T/deployments.json" <<'EOF'
{"version":1,"deployments":[{"name":"from-file","image":"localhost/berth-worker:latest"}]}
EOF
berthd_config ", \"deployments_file\": \"$T/deployments.json\""

broker_up
berthd_up
wait_for 10 grep -q 'event=boot_desired from=deployments_file' "$T/berthd.log" || fail "deployments file not used on first boot"
wait_for 10 grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
cmd deploy '{"id":"cb-1","verb":"deploy","args":{"version":3,"deployments":[{"name":"detector","image":"localhost/berth-worker:latest","replicas":2}]}}'
wait_for 5 grep -q 'event=desired_updated version=3' "$T/berthd.log" || fail "deploy not applied"

berthd_down KILL
broker_down
before=$(db_last_seq)
t0=$(date +%s%N)
berthd_up
wait_for 5 grep -q 'event=boot_desired from=store version=3' "$T/berthd.log" || fail "did not converge on the persisted desired state offline"
log "converged offline on version 3 in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
wait_for 10 bash -c "[ \$(sqlite3 '$T/data/berth.db' 'SELECT COUNT(*) FROM outbox') -ge 10 ]" || fail "not buffering while offline"
log "buffered $(db_rows) rows offline (seq $before -> $(db_last_seq))"

consumer_up all "berth/v1/$DEV/#"   # fails to connect until the broker is up; mosquitto_sub retries
broker_up
wait_for 30 bash -c "[ \$(sqlite3 '$T/data/berth.db' 'SELECT COUNT(*) FROM outbox') -le 2 ]" || fail "backlog not drained"
# The retained reported state caught up: version 3 with the detector deployment.
mosquitto_sub -p "$BROKER_PORT" -t "berth/v1/$DEV/state/reported" -C 1 -W 5 > "$T/reported.json" || fail "no retained reported state"
$PY - "$T/reported.json" <<'EOF' || fail "reported state did not catch up: $(cat "$T/reported.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["desired_version"] == 3, r
assert [d["name"] for d in r["deployments"]] == ["detector"], r
EOF
echo "ok: offline cold boot converged on version 3, buffered, drained and reported on reconnect"
