#!/usr/bin/env bash
# Broker outages while telemetry flows: the consumer (of telemetry and events,
# which share one sequence) gets every sequence number
# (no gap), duplicates are counted. Default 5 outages of 4 s to keep `make check`
# short; BERTH_OUTAGE_S=20 runs the full 5 x 20 s variant.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
OUTAGES=${BERTH_OUTAGES:-5}
OUTAGE_S=${BERTH_OUTAGE_S:-4}

telem_flow_up

connects() { grep -c 'event=connected' "$T/berthd.log"; }
reconnected() { [ "$(connects)" -gt "$1" ]; }
for i in $(seq 1 "$OUTAGES"); do
  # the next outage once the rows of the last one are delivered and a few new ones with them
  from=$(db_last_seq)
  flowing() { outbox_at_most 2 && seq_reached "$T/tel.out" $((from + 3)); }
  wait_until 20 "the backlog delivered and new rows flowing" flowing || fail "rows not flowing before outage $i"
  log "outage $i: broker down for ${OUTAGE_S}s (last_seq=$(db_last_seq))"
  n=$(connects)
  broker_down
  sleep "$OUTAGE_S"  # the outage itself: a window in which berthd buffers and nothing is delivered
  buffered=$(db_rows)
  [ "$buffered" -gt 0 ] || fail "nothing buffered during outage $i"
  broker_up
  wait_until 10 "berthd to reconnect" reconnected "$n" || fail "berthd did not reconnect after outage $i"
  log "outage $i over: $buffered rows buffered"
done

# Let the backlog drain, then stop producing and compare.
telem_flow_check 2
[ "$lastseen" -eq "$last" ] || fail "last seq $lastseen != $last"
grep -q 'event=connected' "$T/berthd.log"
n=$(grep -c 'event=connected' "$T/berthd.log")
[ "$n" -ge $((OUTAGES + 1)) ] || fail "only $n connections for $OUTAGES outages"
echo "ok: $OUTAGES outages of ${OUTAGE_S}s, $unique rows, 0 gaps, $dups duplicates"
