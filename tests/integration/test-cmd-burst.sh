#!/usr/bin/env bash
# A burst of 5,000 commands on the real broker: every command is applied once and gets exactly
# one reply (replies wait in the store's reply queue instead of being dropped when the broker
# has many publishes unacknowledged); the uplink figures count no dropped reply. Then the
# broker goes away with replies still queued: they survive a SIGKILL and a restart and are
# delivered when it is back.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=1000
# the consumer must not be the bottleneck: the broker queues everything for it
BROKER_EXTRA="max_queued_messages 100000
max_inflight_messages 100"
N=${BURST_N:-5000}
log "scratch: $T"

broker_up
consumer_up replies "berth/v1/$DEV/cmd/+/reply"
berthd_up
wait_until 10 "berthd connected" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
sleep 0.3

replies_unique() {
  $PY - "$T/replies.out" <<'PYEOF'
import json, sys
ids, total = set(), 0
for line in open(sys.argv[1], errors="replace"):
    try:
        m = json.loads(line); p = json.loads(m["payload"])
    except Exception:
        continue
    if isinstance(p, dict) and "id" in p:
        ids.add(p["id"]); total += 1
print(len(ids), total)
PYEOF
}
replies_at_least() { [ "$(replies_unique | cut -d' ' -f1)" -ge "$1" ]; }

# One mosquitto_pub process sends all N commands back to back (-l: one message per line).
burst() { # PREFIX COUNT
  $PY -c "
import sys
for i in range($2):
    print('{\"id\":\"$1-%d\",\"verb\":\"ping\"}' % i)" | \
    mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/ping" -l || fail "publish burst $1"
}

t0=$(date +%s%N)
burst b "$N"
wait_until 60 "the condition" replies_at_least "$N" || fail "only $(replies_unique) replies (unique total) to $N commands"
read -r uniq total <<< "$(replies_unique)"
log "burst: $N commands, $uniq distinct replies, $total replies, $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ "$uniq" -eq "$N" ] || fail "$uniq distinct replies to $N commands"
[ "$(grep -c 'event=reply_not_sent\|event=reply_dropped' "$T/berthd.log")" -eq 0 ] || fail "replies dropped: $(grep -m3 'reply_not_sent\|reply_dropped' "$T/berthd.log")"

# Replies queued while the broker is gone survive a SIGKILL and go out after the restart.
# The commands are in the broker's session for berthd (QoS 1, persistent), so kill berthd
# right after they were delivered: the store holds the applied commands' replies.
broker_down
berthd_down KILL
broker_up
berthd_up
wait_until 10 "berthd connected" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never reconnected"
burst k 200
wait_until 10 "the condition" bash -c "grep -c 'event=command_applied id=k-' '$T/berthd.log' | grep -qx 200" || true
berthd_down KILL
sleep 0.2
berthd_up
wait_until 30 "the condition" replies_at_least $((N + 200)) || fail "replies to the commands before the SIGKILL lost: $(replies_unique)"
log "ok: $N-command burst answered in full; replies survive a SIGKILL"
