#!/usr/bin/env bash
# The store comes back after berthd started without it (berth.db unopenable at the start):
# berthd reads what it skipped and converges, and what it refused meanwhile stays refused.
# 1. With the store, a signed deploy (version 3, deployment "stored") is persisted; a reply is
#    left queued in the store (as when berthd stops before its PUBACK).
# 2. berth.db is made unopenable (the file moved aside, a directory in its place); berthd starts
#    degraded on the deployments file (version 1, deployment "fromfile"); a signed scale is
#    refused with store_failed (its replay record cannot be persisted).
# 3. The file is put back: at the collector's next retry berthd re-reads the persisted desired
#    state and converges on it (version 3, "stored" only), sends the queued reply, and merges
#    its replay window with the persisted one: the same scale sent again is refused (replayed),
#    also after a restart (the merged window was saved), and never applied.
set -u
here=$(cd "$(dirname "$0")" && pwd)
DEV=gw-storeback-$$
# shellcheck source=tests/integration/lib-telem.sh
source "$here/lib-telem.sh"
telem_setup
INTERVAL_MS=200
CTL="$TELEM_BUILD/berthctl"
B=(-b "127.0.0.1:$BROKER_PORT")
DB=$T/data/berth.db
json() { $PY -c "import json,sys; d=json.load(sys.stdin); $1"; }
state() { "$CTL" "${B[@]}" state "$DEV" --json; }
# converged VERSION NAMES: the reported desired version and the set of deployments tracked
converged() {
  state 2>/dev/null | json "s=d['state']; n=sorted(x['name'] for x in s['deployments'] if not x.get('removing')); \
assert s['desired_version']==$1 and n==sorted('$2'.split()), (s['desired_version'], n)" 2>/dev/null
}
cat > "$T/deployments.json" <<'EOD'
{"version":1,"deployments":[{"name":"fromfile","image":"localhost/berth-worker:latest","replicas":{"min":1,"max":2,"desired":1}}]}
EOD
cat > "$T/v3.json" <<'EOD'
{"version":3,"deployments":[{"name":"stored","image":"localhost/berth-worker:latest","replicas":{"min":1,"max":2,"desired":1}}]}
EOD
# No engine: the desired state the supervisor tracks is what is checked.
berthd_config ", \"engine\": { \"socket\": \"$T/no-engine.sock\", \"timeout_ms\": 1000 }, \"deployments_file\": \"$T/deployments.json\""
broker_up
consumer_up replies "berth/v1/$DEV/cmd/+/reply"

# --- 1. with the store ---------------------------------------------------------------------------
berthd_up
wait_until 10 "berthd connected" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
"$CTL" "${B[@]}" deploy "$DEV" "$T/v3.json" > "$T/deploy.out" 2>&1 || fail "signed deploy refused: $(cat "$T/deploy.out")"
wait_until 10 "version 3 in force" converged 3 stored || fail "deploy of version 3 not in force"
berthd_down TERM
[ "$(sqlite3 "$DB" 'SELECT version FROM desired')" = 3 ] || fail "version 3 not persisted"
sqlite3 "$DB" "INSERT INTO replies(topic, corr, body, at_ms) VALUES ('berth/v1/$DEV/cmd/ping/reply', NULL, \
'{\"id\":\"queued-1\",\"ok\":true,\"result\":{}}', 0)" || fail "queue a reply"
log "persisted: desired version 3 (stored), one reply queued"

# --- 2. unopenable at the start --------------------------------------------------------------------
mkdir "$T/aside"
mv "$DB"* "$T/aside/"
mkdir -p "$DB/junk"
: > "$T/berthd.log"
berthd_up
wait_until 10 "berthd connected" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected degraded"
grep -q 'event=store_unavailable' "$T/berthd.log" || fail "not degraded: $(grep store "$T/berthd.log" | head -3)"
wait_until 10 "the deployments file in force" converged 1 fromfile || fail "degraded berthd does not run the deployments file: $(state | head -c 300)"
scale=$(printf '%s' '{"id":"d-1","verb":"scale","args":{"deployment":"fromfile","replicas":2}}' | "$CTL" sign command "$DEV" -) \
  || fail "sign"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/scale" -m "$scale" || fail "publish"
wait_until 10 "a reply to d-1" has_reply d-1 || fail "no reply to d-1"
reply_for d-1 | json "assert not d['ok'] and d['error']['code']=='store_failed', d" || fail "d-1 while degraded: $(reply_for d-1)"
has_reply queued-1 && fail "the queued reply was sent without the store"
log "degraded: version 1 (fromfile) from the file, d-1 refused with store_failed"

# --- 3. back --------------------------------------------------------------------------------------
rm -rf "$DB"
mv "$T/aside/"* "$T/data/"
wait_until 40 "store_available" grep -q 'event=store_available' "$T/berthd.log" || fail "the store never reopened"
wait_until 10 "version 3 in force again" converged 3 stored \
  || fail "not converged on the persisted desired state after the store came back: $(state | head -c 400)"
wait_until 10 "the queued reply" has_reply queued-1 || fail "the reply queued in the store was not sent"
state | json "assert d['state']['store']['available'], d['state']['store']" || fail "state still says the store is unavailable"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/scale" -m "$scale" || fail "publish"
wait_until 10 "a second reply to d-1" replies_at_least d-1 2 || fail "no reply to d-1 sent again"
log "back: version 3 (stored) in force, queued reply sent, d-1 again: $(code=$(grep -c 'command_rejected id=d-1' "$T/berthd.log"); echo "$code refusals")"
berthd_down TERM
berthd_up
wait_until 10 "berthd connected" bash -c "[ \$(grep -c 'event=connected' '$T/berthd.log') -ge 2 ]" || fail "no reconnect after the restart"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/scale" -m "$scale" || fail "publish"
wait_until 10 "a third reply to d-1" replies_at_least d-1 3 || fail "no reply to d-1 after the restart"
grep -q 'command_applied id=d-1' "$T/berthd.log" && fail "d-1, refused while the store was away, was applied later"
converged 3 stored || fail "the desired state changed: $(state | head -c 300)"
log "ok: store back: persisted desired state converged on, queued reply sent, a refused command stays refused (also after a restart)"
