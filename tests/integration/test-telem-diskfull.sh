#!/usr/bin/env bash
# Disk full: berthd's data dir sits on a 3 MiB tmpfs (its budget is larger than the disk), the
# broker is down so the outbox grows, and a file then fills the rest of the disk. Ticks keep
# coming (200 ms); every tick is either delivered once the disk has room and the broker is
# back, or counted in dropped_telemetry: for the last row received, rows delivered with a tick
# number up to its own plus its dropped_telemetry equals its tick number. berthd stays up.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=200
mkdir -p "$T/data"
mount -t tmpfs -o size=3m tmpfs "$T/data" || fail "cannot mount a tmpfs (root needed)"
cleanup_mount() { umount -l "$T/data" 2>/dev/null; telem_cleanup; }
trap cleanup_mount EXIT INT TERM
TELEMETRY_JSON=', "disk_budget_kb": 16384'

broker_up
consumer_up tel "berth/v1/$DEV/telemetry"
sleep 0.3
berthd_up
wait_until 10 "berthd connected" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
broker_down
sleep 1
# fill the disk: what is left goes to a filler file (dd stops at ENOSPC)
dd if=/dev/zero of="$T/data/filler" bs=64k 2>/dev/null || true
log "disk: $(df -k "$T/data" | tail -1)"
sleep 8
kill -0 "$BERTHD_PID" 2>/dev/null || fail "berthd died on a full disk: $(tail -5 "$T/berthd.log")"
grep -q 'event=row_dropped\|event=txn_rolled_back\|event=tick_not_stored' "$T/berthd.log" \
  || fail "the full disk was never hit: $(tail -3 "$T/berthd.log")"
# room again, broker back: the backlog drains
rm -f "$T/data/filler"
broker_up
sleep 4
berthd_down TERM
wait_until 20 "the condition" bash -c "[ -s '$T/tel.out' ]" || fail "nothing delivered"
sleep 2
$PY - "$T/tel.out" <<'PYEOF' || fail "ticks not accounted for"
import json, sys
rows = {}
for line in open(sys.argv[1]):
    p = json.loads(json.loads(line)["payload"])
    for r in p["rows"]:
        rows[r["seq"]] = r["data"]["store"]
last = max(rows.values(), key=lambda s: s["ticks"])
t, d = last["ticks"], last["dropped_telemetry"]
delivered = sum(1 for s in rows.values() if s["ticks"] <= t)
print("last row: ticks=%d dropped_telemetry=%d delivered=%d (%d + %d = %d)" % (t, d, delivered, delivered, d, delivered + d))
assert d > 0, "nothing dropped: the disk never filled"
assert delivered + d == t, "ticks %d != delivered %d + dropped %d" % (t, delivered, d)
PYEOF
log "ok: every tick on a full disk delivered or counted"
