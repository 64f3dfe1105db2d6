#!/usr/bin/env bash
# berthctl's fleet commands against N real berthd (default 10) on the real broker, sharing the real
# podman service (each device's containers carry io.berth.owner=<its id>): devices --group lists the
# members; a group command is answered by every member, an unknown group reaches nobody; a rollout file
# that fails validation sends nothing; a good rollout (10% canary, then 3 waves) is interrupted after
# its second wave and a second berthctl resumes it from the devices' state and completes it; a bad
# version (its readiness probe never passes) halts at the canary, the canary is rolled back to its
# last-known-good, and the other devices are untouched.
set -euo pipefail
TEST=fleet-rollout
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib-common.sh
source "$here/lib-common.sh"
repo=$(cd "$here/../.." && pwd)
build=${BERTH_BUILD:-$repo/build}
: "${BERTH_ENGINE_SOCK:?needs the test services (scripts/test-services.sh)}"
: "${BERTH_WORKER_IMAGE:?needs the test services}"
: "${BERTH_BROKER_PORT:?needs the test services}"
PY=/usr/bin/python3
N=${FLEET_ROLLOUT_N:-10}
WORK=$(mktemp -d "/tmp/berth-$TEST.XXXXXX")
G="fr$$"
# shellcheck source=tests/integration/lib-trust.sh
source "$here/lib-trust.sh"
trust_keys "$WORK/trust" "$build"
CTL=("$build/berthctl" -b "127.0.0.1:$BERTH_BROKER_PORT")
FAILS=0
PIDS=()
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
dev() { printf 'fr%s-%02d' "$$" "$1"; }

eng() { curl -s --max-time 20 --unix-socket "$BERTH_ENGINE_SOCK" -X "$1" "http://d/v1.41$2"; }
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for i in $(seq 1 "$N"); do
    for id in $(eng GET "/containers/json?all=1&filters=$($PY -c 'import sys,json,urllib.parse; print(urllib.parse.quote(json.dumps({"label":["io.berth.owner="+sys.argv[1]]})))' "$(dev "$i")")" |
                $PY -c 'import sys,json; [print(c["Id"]) for c in json.load(sys.stdin)]' 2>/dev/null); do
      eng DELETE "/containers/$id?force=true" >/dev/null || true
    done
    mosquitto_pub -p "$BERTH_BROKER_PORT" -r -n -t "berth/v1/$(dev "$i")/state/desired" 2>/dev/null || true
  done
  for t in v1 v2 v3; do eng DELETE "/images/localhost/fr$$-worker:$t" >/dev/null 2>&1 || true; done
  if [ "$FAILS" -ne 0 ]; then
    for i in 1 2; do echo "--- berthd $(dev "$i") log (last 30 lines) ---"; tail -30 "$WORK/$(dev "$i").log" 2>/dev/null || true; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# Three tags of one static busybox image: v1 and v2 healthy, v3 "broken" (its readiness probe fails).
# One deployment set serves every device, and the devices share this host: the containers listen on
# nothing (a port would collide), and readiness is an exec probe.
q() { $PY -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
for t in v1 v2 v3; do eng POST "/images/$(q "$BERTH_BUSYBOX_IMAGE")/tag?repo=localhost/fr$$-worker&tag=$t" >/dev/null; done
deps() { # TAG PROBE(true|false): the deployment set of that version (one deployment "w", 1 replica)
  echo "[{\"name\":\"w\",\"image\":\"localhost/fr$$-worker:$1\",\"cmd\":[\"/bin/sleep\",\"3600\"],
    \"replicas\":{\"min\":1,\"max\":1,\"desired\":1},
    \"readiness\":{\"type\":\"exec\",\"command\":[\"/bin/$2\"],\"period_ms\":1000,\"timeout_ms\":5000}}]"
}

for i in $(seq 1 "$N"); do
  d=$(dev "$i"); mkdir -p "$WORK/$d"
  echo "{\"version\":1,\"deployments\":$(deps v1 true)}" > "$WORK/$d/deployments.json"
  cat > "$WORK/$d/config.json" <<EOC
{ "device_id": "$d", "data_dir": "$WORK/$d/data", "deployments_file": "$WORK/$d/deployments.json", "log_level": "info",
  "engine": { "socket": "$BERTH_ENGINE_SOCK", "timeout_ms": 20000 },
  "broker": { "host": "127.0.0.1", "port": $BERTH_BROKER_PORT }, "api": { "enabled": false },
  "autoscale": { "enabled": false }, "images": { "lkg_stable_s": 2, "rollout_window_s": 600 },
  "fleet": { "groups": "$G" }, $TRUST_JSON }
EOC
  if [ "$i" -eq 1 ] && ! out=$("$build/berthd" --check-config "$WORK/$d/config.json" 2>&1); then
    bad "berthd refuses the fleet config (groups need berthd's fleet.groups): $out"; exit 1
  fi
  "$build/berthd" -c "$WORK/$d/config.json" >> "$WORK/$d.log" 2>&1 &
  PIDS+=($!)
done

# members DONE_PY: berthctl devices --group G --json checked by a Python expression over d (the list)
members() { "${CTL[@]}" -t 10 devices --group "$G" --json 2>/dev/null | json "$1" 2>/dev/null | grep -qx True; }
wait_until 180 "$N members of $G, each with w ready" members "len(d)==$N and all(x['ready']==1 and x['desired_version']==1 for x in d)" \
  && ok "devices --group $G: $N members at version 1, ready" || { bad "the group never showed $N ready members"; exit 1; }
"${CTL[@]}" devices --group "$G" | head -3

# --- group commands ---------------------------------------------------------------------------------
rc=0; "${CTL[@]}" -t 30 --group "$G" restart w > "$WORK/gcmd.out" 2>&1 || rc=$?
[ $rc -eq 0 ] && grep -q "group $G: $N of $N members replied to restart (0 refused)" "$WORK/gcmd.out" \
  && ok "group restart: $(tail -1 "$WORK/gcmd.out")" || bad "group restart: exit $rc, $(tail -3 "$WORK/gcmd.out")"
rc=0; "${CTL[@]}" -t 5 --group "nobody$$" restart w > "$WORK/gnone.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "reaches nobody" "$WORK/gnone.out" && ok "unknown group: exit 2, '$(cat "$WORK/gnone.out")'" \
  || bad "unknown group: exit $rc, $(cat "$WORK/gnone.out")"
wait_until 60 "every member ready again after the restart" members "all(x['ready']==1 for x in d)" || bad "not ready after restart"

# --- a rollout file that fails validation sends nothing -----------------------------------------------
rollout_file() { # FILE VERSION TAG READY_PATH EXTRA
  $PY - "$1" "$2" "$(deps "$3" "$4")" "$5" <<'EOP'
import json, sys
path, ver, deps, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
doc = {"version": ver, "deployments": json.loads(deps), "canary_pct": 10, "waves": 3,
       "pause_s": 1, "gate": {"soak_s": 3, "ready_timeout_s": 40, "max_restarts": 2}}
doc.update(json.loads(extra or "{}"))
json.dump(doc, open(path, "w"))
EOP
}
rollout_file "$WORK/bad.json" 2 v2 true '{"waves":0}'
rc=0; "${CTL[@]}" rollout --group "$G" "$WORK/bad.json" > "$WORK/bad.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "waves: expected an integer 1..100, got 0; nothing was sent" "$WORK/bad.out" \
  && ok "invalid rollout file refused: $(cat "$WORK/bad.out")" || bad "invalid rollout file: exit $rc, $(cat "$WORK/bad.out")"
n=$(timeout 3 mosquitto_sub -p "$BERTH_BROKER_PORT" -t "berth/v1/+/state/desired" -W 2 2>/dev/null | grep -c . || true)
[ "$n" -eq 0 ] && ok "no desired state was published" || bad "$n desired states on the broker after a refused file"

# --- a good rollout, interrupted after its second wave, resumed by another berthctl ------------------
rollout_file "$WORK/v2.json" 2 v2 true ''
t0=$(now_ms)
"${CTL[@]}" -t 20 rollout --group "$G" "$WORK/v2.json" --json > "$WORK/run1.out" 2>&1 &
run1=$!
passed() { [ "$(grep -c '"state":"passed"' "$WORK/run1.out" || true)" -ge "$1" ]; }
wait_until 180 "the canary and wave 1 passed" passed 2 || bad "run 1: $(tail -3 "$WORK/run1.out")"
kill -INT "$run1" 2>/dev/null || true
rc=0; wait "$run1" || rc=$?
grep -q '"result":"interrupted"' "$WORK/run1.out" && [ $rc -eq 3 ] && ok "run 1 interrupted after 2 waves (exit $rc)" \
  || bad "run 1: exit $rc, $(tail -2 "$WORK/run1.out")"
rc=0; "${CTL[@]}" -t 20 rollout --group "$G" "$WORK/v2.json" --json > "$WORK/run2.out" 2>&1 || rc=$?
rollout_s=$(( ($(now_ms) - t0) / 1000 ))
done_line=$(grep '"event":"done"' "$WORK/run2.out" || true)
[ $rc -eq 0 ] && echo "$done_line" | json "d['result']=='completed' and d['updated']==$N" | grep -qx True \
  && ok "run 2 resumed and completed: $done_line" || bad "run 2: exit $rc, $(tail -3 "$WORK/run2.out")"
earlier=$(grep -c '"state":"done"' "$WORK/run2.out" || true)
[ "$earlier" -ge 1 ] && ok "run 2 took $earlier waves as done from the devices' state" || bad "run 2 redid every wave"
# every wave was published only after the one before passed (canary first): order of the events
$PY - "$WORK/run1.out" "$WORK/run2.out" <<'EOP' && ok "waves in order: canary, then each wave after the previous passed" || bad "waves out of order"
import json, sys
for f in sys.argv[1:]:  # each run on its own: a wave is published only after the one before passed (or was done)
    last = -1
    for e in (json.loads(l) for l in open(f) if l.startswith("{")):
        if e.get("event") != "wave": continue
        if e["state"] == "published": assert e["wave"] == last + 1, (f, e)
        if e["state"] in ("passed", "done"): last = max(last, e["wave"])
assert last == 3, last
EOP
wait_until 30 "every member at version 2, ready" members "all(x['desired_version']==2 and x['ready']==1 for x in d)" \
  && ok "all $N devices at version 2, ready (good rollout ${rollout_s} s with the interruption)" || bad "not all at version 2"

# --- a broken version halts at the canary; the canary is rolled back; the rest are untouched ----------
sleep 3 # lkg_stable_s is 2 s: version 2 becomes every device's last-known-good
rollout_file "$WORK/v3.json" 3 v3 false '{"gate":{"soak_s":3,"ready_timeout_s":20,"max_restarts":2}}'
rc=0; "${CTL[@]}" -t 20 rollout --group "$G" "$WORK/v3.json" --json > "$WORK/run3.out" 2>&1 || rc=$?
done_line=$(grep '"event":"done"' "$WORK/run3.out" || true)
[ $rc -eq 1 ] && echo "$done_line" | json "d['result']=='halted' and d['halted_on_bad_canary']==1 and d['halted_wave']==0" | grep -qx True \
  && ok "broken version halted at the canary: $done_line" || bad "run 3: exit $rc, $(cat "$WORK/run3.out")"
why=$(grep '"event":"device_failed"' "$WORK/run3.out" || true)
echo "$why" | grep -q '"device":"'"$(dev 1)"'".*not ready within 20 s' && [ "$(echo "$why" | grep -c .)" -eq 1 ] \
  && ok "the canary failed the gate: $why" || bad "the canary's failure: $why"
grep -q '"event":"rollback".*"ok":true' "$WORK/run3.out" && ok "canary rolled back: $(grep '"event":"rollback"' "$WORK/run3.out")" \
  || bad "no rollback of the canary: $(grep rollback "$WORK/run3.out")"
canary=$(dev 1)
at_v2() { "${CTL[@]}" -t 10 devices --group "$G" --json | json "sum(1 for x in d if x['desired_version']==2)"; }
[ "$(at_v2)" -eq $((N - 1)) ] && ok "the other $((N - 1)) devices untouched at version 2" || bad "$(at_v2) devices at version 2"
lkg() { "${CTL[@]}" -t 10 state "$canary" --json | json "[x for x in d['state']['deployments'] if x['name']=='w'][0]['image']" | grep -qx "localhost/fr$$-worker:v2"; }
wait_until 30 "the canary back on the v2 image" lkg && ok "canary $canary runs its last-known-good (v2) image again" || bad "canary not back on v2"
# a second run derives the halt from the devices and sends nothing
rc=0; "${CTL[@]}" -t 20 rollout --group "$G" "$WORK/v3.json" --json > "$WORK/run4.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q '"result":"halted_earlier"' "$WORK/run4.out" && ok "re-run: halted earlier (from the devices' state)" \
  || bad "re-run: exit $rc, $(tail -2 "$WORK/run4.out")"
[ "$(at_v2)" -eq $((N - 1)) ] || bad "the re-run touched other devices"

# --- signed with a key the devices do not trust: the canary refuses it, the rollout halts there -------
"$build/berthctl" keygen intruder "$WORK/intruder.key" > /dev/null
rollout_file "$WORK/v4.json" 4 v2 true '{"gate":{"soak_s":3,"ready_timeout_s":60}}'
t5=$(now_ms)
rc=0; "${CTL[@]}" -t 20 --sign-key "$WORK/intruder.key" rollout --group "$G" "$WORK/v4.json" --json > "$WORK/run5.out" 2>&1 || rc=$?
why=$(grep '"event":"device_failed"' "$WORK/run5.out" || true)
[ $rc -eq 1 ] && grep -q '"halted_on_bad_canary":1' "$WORK/run5.out" && echo "$why" | grep -q 'refused what was sent (unknown_key' \
  && ok "an untrusted signature fails the canary in $(( ($(now_ms) - t5) / 1000 )) s (not the 60 s timeout): $why" \
  || bad "untrusted key: exit $rc, $(cat "$WORK/run5.out")"
v=$(timeout 5 mosquitto_sub -p "$BERTH_BROKER_PORT" -t "berth/v1/$(dev 1)/state/desired" -C 1 -W 4 2>/dev/null | json "d['version']" || true)
[ "$v" = 3 ] && ok "the canary's retained desired state is back at version 3" || bad "canary's retained desired state: version '$v'"
[ "$(at_v2)" -eq $((N - 1)) ] && ok "the other devices still untouched" || bad "$(at_v2) devices at version 2 after run 5"
echo "RESULT test=fleet-rollout devices=$N good_rollout_s=$rollout_s"
[ "$FAILS" -eq 0 ] && { echo "$TEST: all passed"; exit 0; }
echo "$TEST: $FAILS failed"; exit 1
