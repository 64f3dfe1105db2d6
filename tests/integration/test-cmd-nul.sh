#!/usr/bin/env bash
# NUL bytes and other control characters in identifiers and enum strings, on the real broker:
# ids "nul-a\u0000x" and "nul-a\u0000y" are two different strings to the console; berthd must not
# collapse them into one journal key (nor apply "dbg\u0000junk" as log level dbg). Each such command
# gets an error reply naming the problem, and nothing changes (no journal entry, same log level).
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=1000

broker_up
consumer_up replies "berth/v1/$DEV/cmd/+/reply"
berthd_up
wait_until 10 "berthd connected" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
sleep 0.3

n=0
send() { # VERB FILE-CONTENT (printf format)
  n=$((n + 1))
  printf "$2" > "$T/cmd-$n.json"
  mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/$1" -f "$T/cmd-$n.json" || fail "publish $n"
}

send ping '{"id":"nul-a\\u0000x","verb":"ping"}'
send ping '{"id":"nul-a\\u0000y","verb":"ping"}'
send set_log_level '{"id":"lvl-1","verb":"set_log_level","args":{"level":"dbg\\u0000junk"}}'
send set_log_level '{"id":"lvl-2","verb":"set_log_level","args":{"level":"dbg\\u0001"}}'
send ping '{"id":"raw-\001","verb":"ping"}'
send ping '{"id":"raw-nul\000z","verb":"ping"}'
send ping '{"id":"tab\\tid","verb":"ping"}'
send ping '{"id\\u0000":"k","verb":"ping"}'
send restart '{"id":"dep-1","verb":"restart","args":{"deployment":"det\\u0000ector"}}'
send ping '{"id":"ok-1","verb":"ping\\u0000"}'
wait_until 10 "the condition" bash -c "[ \$(grep -c 'ok..:false' '$T/replies.out') -ge $n ]" || fail "only $(grep -c 'ok..:false' "$T/replies.out") of $n refused: $(cat "$T/replies.out")"
$PY - "$T/replies.out" <<'PYEOF' || fail "error replies"
import json, sys
for line in open(sys.argv[1]):
    p = json.loads(json.loads(line)["payload"])
    assert p["ok"] is False, p
    assert p["error"]["code"] in ("bad_json", "bad_value"), p
    assert p["error"]["message"], p
    print(p.get("id"), p["error"]["code"], p["error"]["message"])
PYEOF
# nothing applied, nothing journaled, the log level unchanged
! grep -q 'event=command_applied' "$T/berthd.log" || fail "a command with a control character was applied"
! grep -q 'event=command_duplicate' "$T/berthd.log" || fail "two ids collapsed into one journal key"
! grep -q 'event=log_level' "$T/berthd.log" || fail "log level changed"
jn=$(sqlite3 "$T/data/berth.db" "SELECT COUNT(*) FROM journal WHERE id LIKE 'nul-%' OR id LIKE 'raw-%'")
[ "$jn" -eq 0 ] || fail "$jn journal entries for refused ids"
# berthd is still healthy: a clean command is applied
refused=$n
cmd ping '{"id":"ok-2","verb":"ping"}'   # signed (lib-telem's cmd)
wait_until 5 "the condition" grep -q 'event=command_applied id=ok-2' "$T/berthd.log" || fail "clean command not applied"
log "ok: $refused commands with control characters refused with a named error, nothing applied or journaled"
