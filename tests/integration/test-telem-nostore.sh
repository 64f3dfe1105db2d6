#!/usr/bin/env bash
# An unopenable store (berth.db is a directory): berthd does not exit (no crash loop under
# Restart=always) but runs degraded: commands are still answered, nothing is buffered, the
# ticks it cannot store are counted, store_unavailable is in the reported state and on the
# events topic, and the store is tried again with a back-off. Once the directory is gone the
# store opens, a store_available event carries the drop counts, and telemetry flows again.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=200

mkdir -p "$T/data/berth.db/junk"
broker_up
consumer_up tel "berth/v1/$DEV/telemetry" "berth/v1/$DEV/events"
consumer_up state "berth/v1/$DEV/state/reported"
consumer_up replies "berth/v1/$DEV/cmd/+/reply"
sleep 0.3
berthd_up
wait_until 10 "berthd connected" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected: $(tail -5 "$T/berthd.log")"
grep -q 'event=store_unavailable' "$T/berthd.log" || fail "no store_unavailable in the log"
sleep 2
kill -0 "$BERTHD_PID" 2>/dev/null || fail "berthd exited with the store unopenable: $(tail -5 "$T/berthd.log")"

# the event (seq 0, sent at once) and the reported state say so
wait_until 5 "the condition" grep -q 'store_unavailable' "$T/tel.out" || fail "no store_unavailable event on the events topic"
# a command is answered (the replay window cannot be persisted: a store_failed error, nothing
# applied; a signed command is never applied without its replay record)
cmd ping '{"id":"p-1","verb":"ping"}'
wait_until 5 "a reply to p-1" grep -q 'p-1' "$T/replies.out" || fail "no reply to a command while degraded"
# the retained reported state says the store is unavailable
wait_until 10 "state/reported with the store unavailable" grep -qE 'available.{0,2}:false' "$T/state.out" \
  || fail "state does not report the store unavailable: $(tail -c 400 "$T/state.out")"
# nothing buffered: no telemetry batch was published
$PY - "$T/tel.out" <<'PYEOF' || fail "telemetry sent while the store was unavailable"
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line); p = json.loads(m["payload"])
    assert p["kind"] != "telemetry", p
PYEOF
retries=$(grep -c 'event=store_retry_failed' "$T/berthd.log")
[ "$retries" -ge 1 ] || fail "the store was not tried again"

# back: the directory goes, the next retry (back-off at most 60 s; here a few s) opens it
rm -rf "$T/data/berth.db"
wait_until 40 "the condition" grep -q 'event=store_available' "$T/berthd.log" || fail "store never reopened"
wait_until 10 "the condition" grep -q 'store_available' "$T/tel.out" || fail "no store_available event"
$PY - "$T/tel.out" <<'PYEOF' || fail "drop counts"
import json, sys
ev = None; tel = 0
for line in open(sys.argv[1]):
    p = json.loads(json.loads(line)["payload"])
    for r in p["rows"]:
        if r["data"].get("event") == "store_available":
            ev = r["data"]["detail"]
        if p["kind"] == "telemetry":
            tel += 1
assert ev and ev["dropped_telemetry"] >= 5, ev   # 200 ms ticks for several seconds
print("store_available", ev)
PYEOF
wait_until 5 "the condition" grep -q '"kind\\":\\"telemetry' "$T/tel.out" || fail "telemetry does not flow after the store came back"
sqlite3 "$T/data/berth.db" "SELECT value FROM kv WHERE key='store.dropped_telemetry'" | grep -q '^[1-9]' \
  || fail "drops while degraded not saved in the store's counters"
log "ok: degraded without a store ($retries retries), commands answered, drops counted, recovered"
