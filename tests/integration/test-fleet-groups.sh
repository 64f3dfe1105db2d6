#!/usr/bin/env bash
# Group commands on the real broker with three berthd (no container engine: engine.socket ""):
# a command signed for group:line-1 on berth/v1/group/line-1/cmd/ping is applied once by each member
# and answered on each member's own reply topic with its device id, and by nobody else; the same
# message again is answered from the journal, not applied again; one signed for another target is
# refused as wrong_target; a signed desired state's "groups" replaces the config's list (the gateway
# leaves and joins group topics at once, the reported state says so); a group command reaching a
# gateway that is no longer in the group (a subscription its persistent session kept) is refused,
# counted and not answered; bad group names in the config are refused naming the key.
set -u
here=$(cd "$(dirname "$0")" && pwd)
DEV=gw-a
# shellcheck source=tests/integration/lib-telem.sh
source "$here/lib-telem.sh"
telem_setup
CTL="$TELEM_BUILD/berthctl"
broker_up
trust_keys "$T/trust" "$TELEM_BUILD" || fail "no signing key"
log() { echo "ok: $*"; }
PIDS=()

# agent ID GROUPS: writes $T/ID/config.json and starts berthd (log $T/ID/berthd.log).
agent() {
  mkdir -p "$T/$1"
  cat > "$T/$1/config.json" <<EOF
{ "device_id": "$1", "data_dir": "$T/$1/data", "api": { "enabled": false },
  "engine": { "socket": "" },
  "broker": { "port": $BROKER_PORT, "reconnect_min_ms": 200, "reconnect_max_ms": 1000, "keepalive_s": 5 },
  "telemetry": { "interval_ms": 1000 },
  "trust": { "keys_file": "$T/trust/keys.json" },
  "fleet": { "groups": "$2" } }
EOF
  "$TELEM_BUILD/berthd" -c "$T/$1/config.json" >> "$T/$1/berthd.log" 2>&1 &
  eval "PID_${1//-/_}=$!"
  TELEM_PIDS+=($!)
}

# --- bad config: the key is named ----------------------------------------------------------------
printf '{"device_id":"x","data_dir":"/tmp/x","fleet":{"groups":"Line-1"}}' > "$T/bad.json"
out=$("$TELEM_BUILD/berthd" --check-config "$T/bad.json" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q 'fleet.groups' || fail "bad group name not refused naming fleet.groups: rc=$rc $out"
printf '{"device_id":"x","data_dir":"/tmp/x","fleet":{"groups":"a"},"trust":{"groups":"b"}}' > "$T/bad2.json"
out=$("$TELEM_BUILD/berthd" --check-config "$T/bad2.json" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q 'trust.groups' || fail "two different lists not refused: rc=$rc $out"
log "a bad group name and two different lists (fleet.groups, trust.groups) are refused naming the key"

consumer_up replies 'berth/v1/+/cmd/+/reply'
consumer_up reported 'berth/v1/+/state/reported'
agent gw-a line-1
agent gw-b line-1,site-x
agent gw-c site-x
subscribed gw-a berth/v1/group/line-1/cmd/+
subscribed gw-b berth/v1/group/site-x/cmd/+
subscribed gw-c berth/v1/group/site-x/cmd/+
for d in gw-a gw-b gw-c; do subscribed "$d" "berth/v1/$d/state/desired"; done
grep -q 'engine_none' "$T/gw-a/berthd.log" || fail "no engine_none in the log"
log "three gateways without an engine subscribed to their groups' command topics"

# gpub GROUP ID [TARGET]: a signed ping on GROUP's topic (signed for TARGET, default group:GROUP).
gpub() {
  local msg
  msg=$(printf '{"id":"%s","verb":"ping"}' "$2" | "$CTL" sign command "$1" - --target "${3:-group:$1}") || fail "sign"
  echo "$msg" > "$T/msg-$2"
  mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/group/$1/cmd/ping" -m "$msg" || fail "publish"
}
# replies_from ID: the devices that answered ID (topic device, reply device), sorted, one per line.
replies_from() {
  $PY - "$T/replies.out" "$1" <<'EOF'
import json, sys
out = []
for line in open(sys.argv[1]):
    try:
        m = json.loads(line); p = json.loads(m["payload"]) if isinstance(m["payload"], str) else m["payload"]
    except Exception:
        continue
    if p.get("id") == sys.argv[2]:
        dev = m["topic"].split("/")[2]
        assert p.get("device") == dev, (p, m["topic"])
        out.append("%s:%s" % (dev, "ok" if p["ok"] else p["error"]["code"]))
print(" ".join(sorted(out)))
EOF
}
replies_are() { [ "$(replies_from "$1")" = "$2" ]; }
expect_replies() { # ID "dev:code ...": waits for exactly these replies
  wait_until 10 "replies to $1: $2" replies_are "$1" "$2" || fail "replies to $1: got '$(replies_from "$1")'"
}

gpub line-1 g-1
expect_replies g-1 "gw-a:ok gw-b:ok"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/group/line-1/cmd/ping" -m "$(cat "$T/msg-g-1")"
expect_replies g-1 "gw-a:ok gw-a:ok gw-b:ok gw-b:ok"
for d in gw-a gw-b; do
  [ "$(grep -c 'event=command_applied id=g-1' "$T/$d/berthd.log")" -eq 1 ] || fail "$d applied g-1 more than once"
done
grep -q 'id=g-1' "$T/gw-c/berthd.log" && fail "gw-c (not in line-1) saw g-1"
log "a group command is applied once by each member, answered on each member's topic with its device id, by nobody else"

gpub line-1 g-2 group:site-x
gpub line-1 g-3 device:gw-a
expect_replies g-2 "gw-a:wrong_target gw-b:wrong_target"
expect_replies g-3 "gw-a:wrong_target gw-b:wrong_target"
log "a command on a group topic signed for another group or for one device is refused (wrong_target)"

reported_groups() { # DEV: its last reported groups, comma-separated
  $PY - "$T/reported.out" "$1" <<'EOF'
import json, sys
g = None
for line in open(sys.argv[1]):
    try:
        m = json.loads(line); p = json.loads(m["payload"]) if isinstance(m["payload"], str) else m["payload"]
    except Exception:
        continue
    if m["topic"] == "berth/v1/%s/state/reported" % sys.argv[2] and "groups" in p:
        g = ",".join(p["groups"])
print(g)
EOF
}
reports_groups() { [ "$(reported_groups "$1")" = "$2" ]; }
wait_until 10 "gw-b reporting its groups" reports_groups gw-b line-1,site-x || fail "gw-b reports groups $(reported_groups gw-b)"
$PY - "$T/reported.out" <<'EOF' || fail "gw-b does not report engine none"
import json, sys
e = None
for line in open(sys.argv[1]):
    m = json.loads(line); p = json.loads(m["payload"]) if isinstance(m["payload"], str) else m["payload"]
    if m["topic"] == "berth/v1/gw-b/state/reported":
        e = p.get("engine")
assert e == "none", e
EOF
log "the reported state lists the groups in force and engine none"

# --- a signed desired state moves gw-a from line-1 to site-x -------------------------------------
from=$(log_lines "$T/broker/mosquitto.log")
echo '{"version":1,"deployments":[],"groups":["site-x"]}' | "$CTL" sign desired gw-a - > "$T/desired-a.json" || fail "sign desired"
mosquitto_pub -p "$BROKER_PORT" -q 1 -r -t berth/v1/gw-a/state/desired -f "$T/desired-a.json" || fail "publish desired"
subscribed gw-a berth/v1/group/site-x/cmd/+ "$from"
wait_until 10 "gw-a reporting groups site-x" reports_groups gw-a site-x || fail "gw-a reports groups $(reported_groups gw-a)"
gpub line-1 g-4
gpub site-x g-5
expect_replies g-4 "gw-b:ok"
expect_replies g-5 "gw-a:ok gw-b:ok gw-c:ok"
log "a signed desired state's groups replace the config's: the gateway leaves and joins group topics, reports them"

# --- a stale subscription from the persistent session: refused, counted, not answered -----------
kill -TERM "$PID_gw_c"; wait "$PID_gw_c" 2>/dev/null
sed -i 's/"groups": "site-x"/"groups": "other"/' "$T/gw-c/config.json"
from=$(log_lines "$T/broker/mosquitto.log")
agent gw-c other
subscribed gw-c berth/v1/group/other/cmd/+ "$from"
subscribed gw-c berth/v1/gw-c/state/desired "$from"
gpub site-x g-6
expect_replies g-6 "gw-a:ok gw-b:ok"
wait_until 5 "gw-c refusing g-6's group" grep -q 'event=group_refused group=site-x n=1' "$T/gw-c/berthd.log" \
  || fail "gw-c did not count the refusal"
gpub site-x g-7
expect_replies g-7 "gw-a:ok gw-b:ok"
[ "$(grep -c 'event=group_refused' "$T/gw-c/berthd.log")" -eq 1 ] || fail "gw-c kept the stale subscription"
log "a group command for a group the gateway left is refused, counted, not answered; the stale subscription is dropped"
echo "PASS"
