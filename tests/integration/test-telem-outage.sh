#!/usr/bin/env bash
# Broker outages while telemetry flows: the consumer (of telemetry and events,
# which share one sequence) gets every sequence number
# (no gap), duplicates are counted. Default 5 outages of 4 s to keep `make check`
# short; BERTH_OUTAGE_S=20 runs the full 5 x 20 s variant.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
OUTAGES=${BERTH_OUTAGES:-5}
OUTAGE_S=${BERTH_OUTAGE_S:-4}

broker_up
consumer_up tel "berth/v1/$DEV/telemetry" "berth/v1/$DEV/events"
sleep 0.3
berthd_up
wait_for 10 grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"

for i in $(seq 1 "$OUTAGES"); do
  sleep 2
  log "outage $i: broker down for ${OUTAGE_S}s (last_seq=$(db_last_seq))"
  broker_down
  sleep "$OUTAGE_S"
  buffered=$(db_rows)
  [ "$buffered" -gt 0 ] || fail "nothing buffered during outage $i"
  broker_up
  log "outage $i over: $buffered rows buffered"
done

# Let the backlog drain, then stop producing and compare.
wait_for 30 bash -c "[ \"\$(sqlite3 '$T/data/berth.db' 'SELECT COUNT(*) FROM outbox')\" -le 2 ]" || fail "backlog did not drain"
berthd_down TERM
last=$(db_last_seq)
wait_for 20 bash -c "r=\$(source '$TELEM_ROOT/tests/integration/lib-telem.sh'; T='$T'; seq_report '$T/tel.out'); [ \"\$(echo \$r | cut -d' ' -f2)\" -ge $last ]" \
  || fail "consumer never reached seq $last: $(seq_report "$T/tel.out")"
read -r first lastseen count unique dups gaps <<< "$(seq_report "$T/tel.out")"
log "rows: first=$first last=$lastseen received=$count unique=$unique duplicates=$dups gaps=$gaps db_last=$last"
[ "$first" -eq 1 ] || fail "first seq is $first, expected 1"
[ "$gaps" -eq 0 ] || fail "$gaps sequence numbers missing"
[ "$lastseen" -eq "$last" ] || fail "last seq $lastseen != $last"
grep -q 'event=connected' "$T/berthd.log"
n=$(grep -c 'event=connected' "$T/berthd.log")
[ "$n" -ge $((OUTAGES + 1)) ] || fail "only $n connections for $OUTAGES outages"
echo "ok: $OUTAGES outages of ${OUTAGE_S}s, $unique rows, 0 gaps, $dups duplicates"
