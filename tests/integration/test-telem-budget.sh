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
sleep 0.3
berthd_up
wait_for 10 grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
sleep 1
broker_down
log "broker down; filling a ${BUDGET_KB} KiB budget"

size_kb() { echo $(( ( $(stat -c %s "$T/data/berth.db" 2>/dev/null || echo 0) + $(stat -c %s "$T/data/berth.db-wal" 2>/dev/null || echo 0) ) / 1024 )); }
max_kb=0
end=$((SECONDS + ${BERTH_BUDGET_WAIT_S:-90}))
while [ $SECONDS -lt $end ]; do
  s=$(size_kb); (( s > max_kb )) && max_kb=$s
  (( s > BUDGET_KB )) && fail "database + WAL is ${s} KiB, budget ${BUDGET_KB} KiB"
  grep -q 'event=budget_prune' "$T/berthd.log" && break
  sleep 0.2
done
grep -q 'event=budget_prune' "$T/berthd.log" || fail "budget never reached (max ${max_kb} KiB)"
# Keep going a while past the first prune, still watching the size.
for _ in $(seq 1 25); do
  s=$(size_kb); (( s > max_kb )) && max_kb=$s
  (( s > BUDGET_KB )) && fail "database + WAL is ${s} KiB, budget ${BUDGET_KB} KiB"
  sleep 0.2
done
dropped=$(sqlite3 "$T/data/berth.db" "SELECT value FROM kv WHERE key='store.dropped_telemetry'")
log "pruned: dropped_telemetry=$dropped max size ${max_kb} KiB"
[ "${dropped:-0}" -gt 0 ] || fail "no drop counted"

broker_up
wait_for 30 bash -c "[ \"\$(sqlite3 '$T/data/berth.db' 'SELECT COUNT(*) FROM outbox')\" -le 3 ]" || fail "forwarding did not resume"
# The drops are reported in the telemetry rows themselves.
wait_for 10 grep -q '\\"dropped_telemetry\\":[1-9]' "$T/tel.out" || fail "drops not reported in telemetry"
read -r first lastseen count unique dups gaps <<< "$(seq_report "$T/tel.out")"
log "consumer: first=$first last=$lastseen unique=$unique gaps(=pruned)=$gaps"
(( gaps <= dropped )) || fail "$gaps rows missing but only $dropped counted as dropped"
(( lastseen > 0 )) || fail "nothing received after the outage"
echo "ok: max ${max_kb} KiB of ${BUDGET_KB} KiB, $dropped rows dropped and reported, forwarding resumed"
