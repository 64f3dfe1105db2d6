#!/usr/bin/env bash
# Commands over the real broker: v5 replies go to the response topic with the
# correlation data, 3.1.1 replies to cmd/<verb>/reply; the same command twice
# is applied once and answered twice alike; 15+ malformed commands each get an
# error reply naming the problem and leave the reported state unchanged; a
# deploy is persisted before its reply (it survives a restart without broker).
source "$(dirname "$0")/lib-telem.sh"
telem_setup
INTERVAL_MS=1000

broker_up
consumer_up replies "berth/v1/$DEV/cmd/+/reply" "resp/#"
berthd_up
wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
berthd_subscribed

# --- v5: response topic and correlation data ---------------------------------
mosquitto_pub -V mqttv5 -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/deploy" \
  -D publish response-topic "resp/console-1" -D publish correlation-data "corr-42" \
  -m "$(sign_msg command "$DEV" <<< '{"id":"dep-1","verb":"deploy","ts":1767225600000,"schema":1,"args":{"version":5,"deployments":[{"name":"detector","image":"localhost/berth-worker:latest","replicas":{"min":1,"max":4,"desired":2}}]}}')"
wait_until 5 "\"topic\":\"resp/console-1\" in replies.out" grep -q '"topic":"resp/console-1"' "$T/replies.out" || fail "no v5 reply on the response topic"
$PY - "$T/replies.out" <<'EOF' || fail "v5 reply shape"
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["topic"] == "resp/console-1":
        assert m["properties"]["correlation-data"] == "corr-42", m
        p = json.loads(m["payload"])
        assert p == {"schema": 1, "id": "dep-1", "device": "gw-test", "ok": True, "result": {"version": 5}}, p
        break
EOF

state() { cmd get_state "{\"id\":\"$1\",\"verb\":\"get_state\"}"; wait_until 5 "a reply to $1" has_reply "$1" || fail "no reply to $1"; reply_for "$1" | $PY -c 'import json,sys; r=json.load(sys.stdin)["result"]; r.pop("ts"); r.pop("trust", None); print(json.dumps(r, sort_keys=True))'; }

# --- the same command twice: applied once, same reply -------------------------
cmd restart '{"id":"rs-1","verb":"restart","args":{"deployment":"detector"}}'
cmd restart '{"id":"rs-1","verb":"restart","args":{"deployment":"detector"}}'
wait_until 5 "a second reply to rs-1" replies_at_least rs-1 2 || fail "duplicate not answered"
state st-1 > /dev/null
[ "$(grep -c 'event=command_applied id=rs-1' "$T/berthd.log")" -eq 1 ] || fail "restart applied more than once"
grep -q 'event=command_duplicate id=rs-1' "$T/berthd.log" || fail "duplicate not recognised"
[ "$(reply_for rs-1)" = '{"device": "gw-test", "id": "rs-1", "ok": true, "result": {"deployment": "detector", "restarting": true}, "schema": 1}' ] \
  || fail "unexpected reply $(reply_for rs-1)"

# --- malformed commands: error reply each, no state change ---------------------
before=$(state st-2)
i=0
bad() { # VERB PAYLOAD CODE
  i=$((i + 1))
  local id="bad-$i"
  cmd "$1" "$2"
  printf '%s %s %s\n' "$i" "$3" "$1" >> "$T/bad.txt"
}
bad ping 'not json' bad_json
bad ping '[1,2,3]' bad_envelope
bad ping '{"verb":"ping"}' missing_field
bad ping '{"id":17,"verb":"ping"}' bad_type
bad ping '{"id":"b5","verb":"ping","schema":9}' unsupported_schema
bad reboot '{"id":"b6","verb":"reboot"}' unknown_verb
bad ping '{"id":"b7","verb":"scale"}' verb_mismatch
bad scale '{"id":"b8","verb":"scale","args":{"deployment":"ghost","replicas":2}}' unknown_deployment
bad scale '{"id":"b9","verb":"scale","args":{"deployment":"detector","replicas":"two"}}' bad_type
bad scale '{"id":"b10","verb":"scale","args":{"deployment":"detector","replicas":500}}' out_of_range
bad restart '{"id":"b11","verb":"restart","args":{"deployment":"Detector!"}}' bad_value
bad remove '{"id":"b12","verb":"remove"}' missing_field
bad deploy '{"id":"b13","verb":"deploy","args":{"version":4,"deployments":[]}}' stale_version
bad deploy '{"id":"b14","verb":"deploy","args":{"version":9,"deployments":"all"}}' bad_type
bad set_log_level '{"id":"b15","verb":"set_log_level","args":{"level":"chatty"}}' bad_value
bad chaos '{"id":"b16","verb":"chaos","args":{"deployment":"detector","surprise":1}}' unknown_field
big=$($PY -c 'print("{\"id\":\"b17\",\"verb\":\"ping\",\"pad\":\"" + "x"*70000 + "\"}")')
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/ping" -s <<< "$big"
printf '17 too_large ping\n' >> "$T/bad.txt"
wait_until 10 "17 refusals in the replies" bash -c "[ \$(grep -c '\"ok\\\\\":false' '$T/replies.out') -ge 17 ]" || fail "not every malformed command was answered: $(grep -c 'ok\\\":false' "$T/replies.out")"
$PY - "$T/replies.out" "$T/bad.txt" <<'EOF' || fail "error replies"
import json, sys
errs = []
for line in open(sys.argv[1]):
    m = json.loads(line)
    p = json.loads(m["payload"])
    if p.get("ok") is False:
        errs.append((m["topic"].split("/")[4], p["error"]["code"], p["error"]["message"]))
want = [l.split() for l in open(sys.argv[2])]
assert len(errs) == len(want), (len(errs), errs)
for (n, code, verb), (gverb, gcode, msg) in zip(want, errs):
    assert gcode == code and gverb == verb, (n, code, verb, gcode, gverb, msg)
    assert msg, (n, "empty message")
print("\n".join("%s %s: %s" % e for e in errs))
EOF
after=$(state st-3)
[ "$before" = "$after" ] || fail "state changed by malformed commands: $before -> $after"

# --- persisted before acknowledged: restart with the broker gone ---------------
berthd_down KILL
broker_down
berthd_up
wait_until 5 "event=boot_desired from=store version=5 in berthd.log" grep -q 'event=boot_desired from=store version=5' "$T/berthd.log" || fail "desired state not restored offline"
echo "ok: v5 reply + correlation, duplicate applied once, 17 malformed rejected, desired state restored offline"
