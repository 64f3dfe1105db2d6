#!/usr/bin/env bash
# Crash-point sweep of the store: berthd is killed (SIGKILL) at CRASH_POINTS distinct points of
# SQLite's write and sync path while it writes telemetry every 100 ms and forwards it through a
# broker that is down one run in three, then restarted. Points: the N-th pwrite64 (WAL and
# database page writes) and the N-th fdatasync (commits, checkpoints) of a run, picked by
# strace's syscall fault injection (strace -e inject=SYSCALL:signal=SIGKILL:when=N), so every
# point is a real syscall of the real binary, in order, with no shim. After each kill the
# database passes PRAGMA integrity_check; after the last run has drained the outbox the consumer
# holds every seq ever given out (no row lost), and rows delivered twice stay within the
# duplicate window (messages in flight or acknowledged-but-not-yet-deleted at the kill: at most
# telemetry.inflight_max messages per kill).
# CRASH_POINTS (default 20; `make crashpoints` runs 200).
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=100
P=${CRASH_POINTS:-20}
INFLIGHT=4
TELEMETRY_JSON=", \"inflight_max\": $INFLIGHT, \"batch_max_bytes\": 4096"
command -v strace >/dev/null || fail "strace not installed"

broker_up
consumer_up tel "berth/v1/$DEV/telemetry" "berth/v1/$DEV/events"
sleep 0.3
berthd_config

# the points: 3/4 on pwrite64, 1/4 on fdatasync, spread over the first ~300 writes / ~60 syncs
npw=$(( P * 3 / 4 )); nfs=$(( P - npw ))
stw=$(( 300 / npw )); [ $stw -ge 1 ] || stw=1
stf=$(( 60 / nfs )); [ $stf -ge 1 ] || stf=1
points=()
for ((i = 0; i < npw; i++)); do points+=("pwrite64:$((1 + i * stw))"); done
for ((i = 0; i < nfs; i++)); do points+=("fdatasync:$((1 + i * stf))"); done

killed=0; notreached=0; run=0
for pt in "${points[@]}"; do
  run=$((run + 1))
  sc=${pt%%:*}; n=${pt##*:}
  if [ $((run % 3)) -eq 0 ]; then broker_down; else [ -n "${BROKER_PID:-}" ] || broker_up; fi
  strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc:signal=SIGKILL:when=$n" \
    "$TELEM_BUILD/berthd" -c "$T/config.json" >> "$T/berthd.log" 2>&1 &
  sp=$!
  # the strace exits when berthd was killed; a point not reached within 20 s is given up
  if wait_until 20 "the condition" bash -c "! kill -0 $sp 2>/dev/null"; then
    wait "$sp" 2>/dev/null; rc=$?
    # strace ends the way its tracee did: killed by SIGKILL is 137
    [ "$rc" -eq 137 ] || fail "berthd ended with status $rc at point $pt, not by the injected SIGKILL: $(tail -3 "$T/berthd.log")"
    killed=$((killed + 1))
  else
    notreached=$((notreached + 1)); kill -9 "$sp" 2>/dev/null; pkill -9 -P "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
    log "point $pt not reached in 20 s"
  fi
  # berthd's own process is gone (killed): check the database as it was left
  [ -e "$T/data/berth.db" ] || { log "point $pt: before the database file existed"; continue; }
  ic=$(sqlite3 -readonly "$T/data/berth.db" 'PRAGMA integrity_check' 2>&1)
  [ "$ic" = ok ] || fail "integrity_check after the kill at $pt: $ic"
done
log "kills: $killed at distinct points ($notreached not reached) of ${#points[@]}"
[ "$killed" -ge $(( P * 9 / 10 )) ] || fail "only $killed of $P points reached"
grep -q 'event=store_recovered' "$T/berthd.log" && fail "a kill left a database the store had to move aside"

# the last run: broker up, runs until the outbox is drained, stops cleanly
[ -n "${BROKER_PID:-}" ] || broker_up
berthd_up
wait_until 15 "the condition" grep -q 'event=connected' <(tail -n 50 "$T/berthd.log") || true
wait_until 60 "the condition" outbox_at_most 0 || fail "backlog did not drain"
berthd_down TERM
last=$(db_last_seq)
# a row written after the drain (a tick, the stop) may still be in the outbox: kept, not lost
sqlite3 -readonly "$T/data/berth.db" 'SELECT seq FROM outbox' > "$T/kept"
wait_until 20 "the condition" bash -c "source '$TELEM_ROOT/tests/integration/lib-telem.sh'; seq_reached '$T/tel.out' $(( last - $(wc -l < "$T/kept") ))" || true
read -r first lastseen count unique dups gaps <<< "$(seq_report "$T/tel.out")"
read -r missing outside _ _ _ <<< "$(seq_account "$T/tel.out" "$last" "$T/kept" "$T/berthd.log")"
log "rows: first=$first last=$lastseen received=$count unique=$unique duplicates=$dups db_last=$last kept=$(wc -l < "$T/kept") missing=$missing"
[ "$missing" -eq 0 ] || fail "$missing seqs neither delivered nor kept"
[ "$(sqlite3 -readonly "$T/data/berth.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check at the end"
# duplicates: at most INFLIGHT messages of at most the largest batch per kill
maxrows=$($PY - "$T/tel.out" <<'PYEOF'
import json, sys
m = 0
for line in open(sys.argv[1]):
    p = json.loads(json.loads(line)["payload"]); m = max(m, len(p["rows"]))
print(m)
PYEOF
)
window=$(( killed * INFLIGHT * maxrows ))
log "duplicates: $dups rows (window: $killed kills x $INFLIGHT messages x $maxrows rows = $window)"
[ "$dups" -le "$window" ] || fail "$dups duplicate rows, above the duplicate window $window"
echo "ok: $killed kills in SQLite's write/sync path: integrity ok every time, seqs 1..$last all delivered, $dups duplicates (window $window)"
