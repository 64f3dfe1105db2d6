#!/usr/bin/env bash
# A corrupt database at start: berthd moves it aside and starts fresh, never a crash loop.
# 1. data_dir/berth.db is garbage, with garbage -wal and -shm beside it and an older
#    berth.db.corrupt from an earlier recovery: berthd renames the three files to
#    berth.db.corrupt, berth.db.corrupt-wal and berth.db.corrupt-shm (the older copy is
#    replaced; the file and its WAL byte for byte as they were), creates a sound database, keeps running, goes
#    online, and the event store_recovered (moved_to the .corrupt path) reaches
#    berth/v1/<dev>/events as the first row of the new outbox (seq 1).
# 2. Restarted on that fresh database, berthd raises no second store_recovered.
# 3. After a power cut (SIGKILL: the WAL keeps its frames) the pages after the first of the
#    database are overwritten (a valid header, broken b-trees): found by the check at open,
#    and the file and its WAL are moved aside as they were (no checkpoint into the bad file).
source "$(dirname "$0")/lib-telem.sh"
DEV=gw-corrupt-$$
telem_setup
INTERVAL_MS=200
# No engine: not what this test is about.
berthd_config ", \"engine\": { \"socket\": \"$T/no-engine.sock\", \"timeout_ms\": 1000 }"
DB=$T/data/berth.db
mkdir -p "$T/data"
head -c 16384 /dev/urandom > "$DB"
head -c 8192 /dev/urandom > "$DB-wal"
head -c 32768 /dev/urandom > "$DB-shm"
echo "an older copy" > "$DB.corrupt"
for f in "$DB" "$DB-wal" "$DB-shm"; do cp "$f" "$f.orig"; done

broker_up
consumer_up events "berth/v1/$DEV/events"
consumer_up status "berth/v1/$DEV/status"
berthd_up

# recovered_rows: "seq moved_to" of every store_recovered row received so far
recovered_rows() {
  $PY - "$T/events.out" <<'EOF'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        m = json.loads(line); p = json.loads(m["payload"]) if isinstance(m["payload"], str) else m["payload"]
    except Exception:
        continue
    for r in p.get("rows", []) if isinstance(p, dict) else []:
        d = r.get("data", {})
        if d.get("event") == "store_recovered":
            print(r["seq"], d.get("detail", {}).get("moved_to"), d.get("detail", {}).get("reason"))
EOF
}
n_recovered() { recovered_rows | wc -l; }
has_n() { [ "$(n_recovered)" -ge "$1" ]; }

# --- 1. garbage ------------------------------------------------------------------------------------
wait_until 15 "store_recovered event #1 on the broker" has_n 1 || fail "no store_recovered event on berth/v1/$DEV/events (log: $(grep -E 'store' "$T/berthd.log" | head -5))"
row=$(recovered_rows | head -1)
[ "$row" = "1 $DB.corrupt corrupt" ] || fail "store_recovered row: '$row', want '1 $DB.corrupt corrupt'"
log "store_recovered on MQTT: seq, moved_to, reason = $row"
kill -0 "$BERTHD_PID" 2>/dev/null || fail "berthd exited: $(tail -5 "$T/berthd.log")"
online() { grep -q 'online.*true' "$T/status.out" 2>/dev/null; }
wait_until 10 "$DEV online on the broker" online || fail "berthd never reported online"
for s in "" -wal; do
  cmp -s "$DB$s.orig" "$DB.corrupt$s" || fail "berth.db.corrupt$s is not the former berth.db$s"
done
# -shm is SQLite's index of the WAL, rebuilt when the WAL is opened: moved aside, not kept verbatim
[ -e "$DB.corrupt-shm" ] || fail "no berth.db.corrupt-shm"
log "berth.db, -wal, -shm moved aside to berth.db.corrupt{,-wal,-shm} (the older copy replaced)"
grep -q "event=store_recovered path=$DB moved_to=$DB.corrupt" "$T/berthd.log" || fail "no store_recovered line in the log"
# the fresh database is sound and in use: telemetry rows get written and sent
rows_sent() { [ "$(db_last_seq)" -ge 5 ]; }
wait_until 10 "rows in the fresh database" rows_sent || fail "the fresh database takes no rows (last seq $(db_last_seq))"
[ "$(sqlite3 "$DB" 'PRAGMA quick_check' 2>&1)" = ok ] || fail "the fresh database fails quick_check"
log "fresh database: quick_check ok, last seq $(db_last_seq); berthd running (pid $BERTHD_PID)"

# --- 2. a restart on the fresh database is quiet -----------------------------------------------
berthd_down TERM
seq_restart=$(db_last_seq)
corrupt_sum=$(md5sum < "$DB.corrupt")
: > "$T/berthd.log"
berthd_up
wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd did not reconnect after the restart"
wait_until 5 "event=store_open in berthd.log" grep -q 'event=store_open' "$T/berthd.log" || fail "no store_open after the restart"
sleep 1  # a window of 5 telemetry intervals in which no second recovery shows
grep -q "event=store_corrupt\|event=store_recovered" "$T/berthd.log" && fail "the fresh database was found corrupt at the restart"
[ "$(n_recovered)" -eq 1 ] || fail "$(n_recovered) store_recovered events after a clean restart"
[ "$(md5sum < "$DB.corrupt")" = "$corrupt_sum" ] || fail "the aside copy changed at a clean restart"
log "clean restart: no second recovery, the aside copy kept"

# --- 3. a real database with broken pages, after a power cut ------------------------------------
# SIGKILL leaves the WAL with its frames; the pages after the first of the main file are then
# overwritten. The check at open finds it; the close must neither checkpoint the WAL into the bad
# file nor delete it: both are moved aside as they were.
# A power cut once there is something to cut: a database of 2 pages or more, with WAL frames.
killable() { [ -s "$DB-wal" ] && [ $(( $(stat -c %s "$DB") / 4096 )) -ge 2 ] && [ "$(db_last_seq)" -ge $((seq_restart + 3)) ]; }
wait_until 10 "a WAL with frames and 2 database pages" killable || fail "no WAL frames to cut"
berthd_down KILL
pages=$(( $(stat -c %s "$DB") / 4096 ))
[ "$pages" -ge 2 ] || fail "the database has only $pages page(s)"
[ -s "$DB-wal" ] || fail "no WAL left by the power cut"
dd if=/dev/urandom of="$DB" bs=4096 seek=1 count=$((pages - 1)) conv=notrunc status=none
head -c 16 "$DB" | grep -q "SQLite format 3" || fail "the header was overwritten"
cp "$DB" "$DB.orig"; cp "$DB-wal" "$DB-wal.orig"
: > "$T/berthd.log"
berthd_up
wait_until 15 "store_recovered event #2 on the broker" has_n 2 || fail "no second store_recovered event after pages were broken (log: $(grep store "$T/berthd.log" | head -3))"
row=$(recovered_rows | tail -1)
[ "$row" = "1 $DB.corrupt corrupt" ] || fail "second store_recovered row: '$row'"
cmp -s "$DB.orig" "$DB.corrupt" || fail "berth.db.corrupt is not the database with the broken pages as it was"
cmp -s "$DB-wal.orig" "$DB.corrupt-wal" || fail "berth.db.corrupt-wal is not the WAL the power cut left"
[ -e "$DB.corrupt-shm" ] || fail "no berth.db.corrupt-shm"
kill -0 "$BERTHD_PID" 2>/dev/null || fail "berthd exited after the second recovery"
[ "$(sqlite3 "$DB" 'PRAGMA quick_check' 2>&1)" = ok ] || fail "the second fresh database fails quick_check"
log "broken pages ($((pages - 1)) of $pages) found at open; file and its $(stat -c %s "$DB.corrupt-wal")-byte WAL moved aside untouched; event seq 1"

echo "PASS test-telem-corrupt"
