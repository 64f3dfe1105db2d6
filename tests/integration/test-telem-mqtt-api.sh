#!/usr/bin/env bash
# docs/mqtt-api.md is the contract: every ```json NAME example block is loaded;
# the messages berthd produces have exactly the examples' keys and value types,
# and the examples berthd consumes (commands, desired state) are accepted.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
DEV=gw-0042
INTERVAL_MS=300
EX=$T/examples
mkdir -p "$EX" "$T/data"

$PY - "$TELEM_ROOT/docs/mqtt-api.md" "$EX" <<'EOF' || fail "examples"
import json, os, re, sys
text = open(sys.argv[1]).read()
n = 0
for name, body in re.findall(r"```json ([\w/-]+)\n(.*?)```", text, re.S):
    json.loads(body)  # every example is valid JSON
    open(os.path.join(sys.argv[2], name.replace("/", "_") + ".json"), "w").write(body.strip())
    n += 1
assert n >= 15, n
print(n, "examples")
EOF

# A corrupt database at start yields the store_recovered event of the example.
head -c 8192 /dev/urandom > "$T/data/berth.db"

broker_up
consumer_up all "berth/v1/$DEV/#"
berthd_up
wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"

# Consumed: the desired state (retained) and every command example.
# Signed here with the test's key, as the console signs them (docs/mqtt-api.md, "Signatures").
sign_msg desired "$DEV" "$EX/state_desired.json" > "$T/desired.signed" || fail "sign desired"
mosquitto_pub -p "$BROKER_PORT" -q 1 -r -t "berth/v1/$DEV/state/desired" -f "$T/desired.signed" || fail "desired"
wait_until 5 "event=desired_updated version=6 source=retained in berthd.log" grep -q 'event=desired_updated version=6 source=retained' "$T/berthd.log" || fail "desired state example refused"
for verb in deploy scale restart get_state set_log_level chaos ping remove; do
  sign_msg command "$DEV" "$EX/cmd_$verb.json" > "$T/cmd.signed" || fail "sign $verb"
  mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/$verb" -f "$T/cmd.signed" || fail "publish $verb"
  id=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$EX/cmd_$verb.json")
  wait_until 5 "\"topic\":\"berth/v1/$DEV/cmd/$verb/reply\".*$id in all.out" grep -q "\"topic\":\"berth/v1/$DEV/cmd/$verb/reply\".*$id" "$T/all.out" || fail "no reply to example $verb"
  grep "\"topic\":\"berth/v1/$DEV/cmd/$verb/reply\"" "$T/all.out" | grep "$id" | grep -q 'ok\\":true' \
    || fail "example $verb refused: $(grep "$id" "$T/all.out" | tail -1)"
done
# A refused one, for the error reply's shape (detector was removed above).
sed 's/"c-0002"/"c-0002-again"/' "$EX/cmd_scale.json" | sign_msg command "$DEV" > "$T/scale2.json"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/scale" -f "$T/scale2.json"
wait_until 5 "an unknown_deployment reply to scale" bash -c "grep 'cmd/scale/reply' '$T/all.out' | grep -q unknown_deployment" || fail "no error reply"
wait_until 10 "\"topic\":\"berth/v1/$DEV/events\" in all.out" grep -q "\"topic\":\"berth/v1/$DEV/events\"" "$T/all.out" || fail "no event published"
# The Last Will: berthd vanishes, the broker says offline after 1.5 x keepalive.
berthd_down KILL
wait_until 12 "the Last Will (online false) in all.out" grep -q '\\"online\\":false' "$T/all.out" || fail "no Last Will"

$PY - "$T/all.out" "$EX" "$DEV" <<'EOF' || fail "shapes differ from docs/mqtt-api.md"
import json, os, sys
out, ex, dev = sys.argv[1:]
OPTIONAL = {"cpu_pct", "temp_c"}
NULLABLE = {"sla_compliance", "compliance"}  # a ratio, null while nothing was decided
NULLABLE_OBJ = {"pull", "last_known_good", "last_rollback"}  # an object when there is one, else null
def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)
def shape_eq(want, got, path):
    if path.endswith(".detail"):  # an event's detail depends on its type
        assert isinstance(got, dict), (path, got)
        return
    if path.rsplit(".", 1)[-1] in NULLABLE_OBJ:
        assert isinstance(want, dict), (path, "example shows the object", want)
        if got is None:
            return
    if path.rsplit(".", 1)[-1] in NULLABLE:
        assert want is None or is_num(want), (path, "example", want)
        assert got is None or is_num(got), (path, got)
        return
    if isinstance(want, dict):
        assert isinstance(got, dict), (path, got)
        wk, gk = set(want) - OPTIONAL, set(got) - OPTIONAL
        assert wk == gk, (path, "keys differ", sorted(wk ^ gk))
        for k in wk:
            shape_eq(want[k], got[k], path + "." + k)
    elif isinstance(want, list):
        assert isinstance(got, list), (path, got)
        if want and got:
            for g in got:
                shape_eq(want[0], g, path + "[]")
    elif isinstance(want, bool) or want is None:
        assert isinstance(got, bool) or got is None, (path, got)
    elif isinstance(want, (int, float)):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), (path, got)
    else:
        assert type(want) == type(got), (path, want, got)
msgs = []
for line in open(out):
    m = json.loads(line)
    msgs.append((m["topic"][len("berth/v1/%s/" % dev):], json.loads(m["payload"])))
def load(n):
    return json.load(open(os.path.join(ex, n + ".json")))
def first(pred):
    for t, p in msgs:
        if pred(t, p):
            return p
    raise AssertionError("no message matching")
checks = {
    "status": first(lambda t, p: t == "status" and p.get("online") is True),
    "status-will": first(lambda t, p: t == "status" and p.get("online") is False and "ts" not in p),
    "state/reported": first(lambda t, p: t == "state/reported" and p["deployments"]),
    "telemetry": first(lambda t, p: t == "telemetry" and p["rows"][0]["seq"] > 2),
    "events": first(lambda t, p: t == "events"),
    "reply-ok": first(lambda t, p: t == "cmd/ping/reply"),
    "reply-error": first(lambda t, p: t == "cmd/scale/reply" and p["ok"] is False),
}
for name, got in checks.items():
    shape_eq(load(name.replace("/", "_")), got, name)
    print("shape ok:", name)
# No request was sent: no compliance figure yet (null, not 100%).
rep = checks["state/reported"]
assert all(d["sla_compliance"] is None for d in rep["deployments"]), rep["deployments"]
assert all(c["requests"] == 0 and c["compliance"] is None for c in rep["sla"].values()), rep["sla"]
print("compliance null without requests")
EOF
echo "ok: every docs/mqtt-api.md example accepted or matched"
