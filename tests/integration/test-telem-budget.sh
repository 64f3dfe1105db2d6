#!/usr/bin/env bash
# An outage long enough to fill a small disk budget: the database (with its
# WAL) never exceeds the budget, dropped rows are counted and reported in the
# telemetry itself, and forwarding resumes afterwards.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
BUDGET_KB=256
INTERVAL_MS=100
TELEMETRY_JSON=", \"disk_budget_kb\": $BUDGET_KB, \"synchronous\": \"normal\""

broker_up
consumer_up tel "berth/v1/$DEV/telemetry" "berth/v1/$DEV/events"
berthd_up
wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
wait_until 10 "the consumer to receive the first rows" seq_reached "$T/tel.out" 3 || fail "no rows forwarded before the outage"
broker_down
log "broker down; filling a ${BUDGET_KB} KiB budget"

size_kb() { echo $(( ( $(stat -c %s "$T/data/berth.db" 2>/dev/null || echo 0) + $(stat -c %s "$T/data/berth.db-wal" 2>/dev/null || echo 0) ) / 1024 )); }
max_kb=0
end=$((SECONDS + ${BERTH_BUDGET_WAIT_S:-90}))
while [ $SECONDS -lt $end ]; do
  s=$(size_kb); (( s > max_kb )) && max_kb=$s
  (( s > BUDGET_KB )) && fail "database + WAL is ${s} KiB, budget ${BUDGET_KB} KiB"
  grep -q 'event=budget_prune' "$T/berthd.log" && break
  sleep 0.2  # a size sample every 0.2 s until the first prune
done
grep -q 'event=budget_prune' "$T/berthd.log" || fail "budget never reached (max ${max_kb} KiB)"
# Keep going a while past the first prune, still watching the size: 5 s in which the database and
# its WAL never exceed the budget (a window, sampled every 0.2 s).
for _ in $(seq 1 25); do
  s=$(size_kb); (( s > max_kb )) && max_kb=$s
  (( s > BUDGET_KB )) && fail "database + WAL is ${s} KiB, budget ${BUDGET_KB} KiB"
  sleep 0.2
done
dropped=$(sqlite3 "$T/data/berth.db" "SELECT value FROM kv WHERE key='store.dropped_telemetry'")
log "pruned so far: dropped_telemetry=$dropped max size ${max_kb} KiB"
[ "${dropped:-0}" -gt 0 ] || fail "no drop counted"
outage_last=$(db_last_seq)

# Berthd keeps sampling, and pruning, until the backlog has drained: only the
# counters read after that are final.
broker_up
wait_until 30 "the outbox to drain to 3 rows" outbox_at_most 3 || fail "forwarding did not resume"
kv() { sqlite3 "$T/data/berth.db" "SELECT value FROM kv WHERE key='store.$1'" 2>/dev/null; }
# reported: the highest dropped_telemetry the delivered telemetry rows carry.
reported() {
  $PY - "$T/tel.out" <<'EOF'
import json, sys
best = 0
for line in open(sys.argv[1], errors="replace"):
    try:
        m = json.loads(line)
        p = json.loads(m["payload"]) if isinstance(m["payload"], str) else m["payload"]
        for r in p.get("rows", []):
            if isinstance(r.get("data"), dict) and "store" in r["data"]:
                best = max(best, r["data"]["store"]["dropped_telemetry"])
    except Exception:
        pass
print(best)
EOF
}
# The drops are reported in the telemetry rows themselves, up to the last one
# (no prune happens once the backlog is gone, so the count is final).
reported_final() { [ "$(reported)" = "$(kv dropped_telemetry)" ]; }
wait_until 15 "the reported dropped_telemetry to match the store" reported_final || fail "telemetry reports dropped_telemetry=$(reported), the store counted $(kv dropped_telemetry)"

# Freeze: with berthd stopped, the seqs given out and the counters are final.
berthd_down TERM
last=$(db_last_seq)
sqlite3 "$T/data/berth.db" "SELECT seq FROM outbox" > "$T/kept"
dt=$(kv dropped_telemetry) de=$(kv dropped_events)
dropped=$(( ${dt:-0} + ${de:-0} ))
(( last > outage_last )) || fail "nothing appended after the outage (last seq $last)"
# Every seq is delivered, still in the outbox, or counted as dropped. The
# consumer may still be receiving what the broker acknowledged: wait for it.
account() { seq_account "$T/tel.out" "$last" "$T/kept" "$T/berthd.log"; }
settled() { read -r m o _ <<< "$(account)"; (( o == 0 && m <= dropped )); }
wait_until 15 "the counters to settle" settled || true
read -r missing outside in_range refused suppressed <<< "$(account)"
read -r first lastseen count unique dups gaps <<< "$(seq_report "$T/tel.out")"
log "seqs 1..$last: $unique delivered, $(wc -l < "$T/kept") kept, $missing missing; dropped=$dropped" \
    "(in pruned ranges and delivered: $in_range, refused without a seq: $refused)"
(( suppressed == 0 )) || fail "$suppressed prune/drop log lines suppressed: cannot attribute every gap"
(( outside == 0 )) || fail "$outside missing seqs lie outside every pruned range: rows lost uncounted"
(( missing <= dropped )) || fail "$missing rows missing but only $dropped counted as dropped"
# ... and the count is not inflated: each drop is a missing seq, a row sent and
# then pruned before its acknowledgement, or a row refused before it had a seq.
(( dropped <= missing + in_range + refused )) \
  || fail "$dropped counted as dropped but only $missing missing (+$in_range sent, +$refused refused)"
(( lastseen > outage_last )) || fail "nothing received after the outage"
echo "ok: max ${max_kb} KiB of ${BUDGET_KB} KiB, $dropped rows dropped, reported and accounted for, forwarding resumed"
