#!/usr/bin/env bash
# Policy repair on the real broker and engine: det v1 (64 MiB) becomes last-known-good, v2 asks
# 512 MiB; hog v1 asks 300 MiB, v2 512 MiB. A new policy capping memory at 256 MiB in repair mode rolls
# det back to v1 (its last-known-good complies: running, 64 MiB, in the desired state, a rollback
# event with reason policy) and stops hog (its last-known-good v1 violates the cap too: no
# compliant version to go back to); the reported state says which happened per item (action
# rolled_back / stopped).
set -u
here=$(cd "$(dirname "$0")" && pwd)
DEV=gw-repair-$$
# shellcheck source=tests/integration/lib-telem.sh
source "$here/lib-telem.sh"
telem_setup
[ -n "${BERTH_ENGINE_SOCK:-}" ] || fail "needs the real engine (BERTH_ENGINE_SOCK: run through scripts/integration.sh)"
CTL="$TELEM_BUILD/berthctl"
IMAGE=${BERTH_WORKER_IMAGE:-localhost/berth-worker:latest}
B=(-b "127.0.0.1:$BROKER_PORT")
eng() { curl -s --max-time 10 --unix-socket "$BERTH_ENGINE_SOCK" -X "$1" "http://d/v1.41$2"; }
# my_ctrs: "NAME MEMORY_BYTES" of this device's running containers
my_ctrs() {
  local ids
  ids=$(eng GET "/containers/json?filters=$($PY -c 'import sys,json,urllib.parse; print(urllib.parse.quote(json.dumps({"label":["io.berth.owner="+sys.argv[1]]})))' "$DEV")" \
    | $PY -c 'import sys,json; print(" ".join(c["Id"] for c in json.load(sys.stdin)))')
  for c in $ids; do
    eng GET "/containers/$c/json" | $PY -c 'import sys,json; d=json.load(sys.stdin); print(d["Name"].lstrip("/"), d["HostConfig"]["Memory"])'
  done
}
engine_cleanup() {
  local ids
  ids=$(eng GET "/containers/json?all=1&filters=$($PY -c 'import sys,json,urllib.parse; print(urllib.parse.quote(json.dumps({"label":["io.berth.owner="+sys.argv[1]]})))' "$DEV")" \
    | $PY -c 'import sys,json; print(" ".join(c["Id"] for c in json.load(sys.stdin)))' 2>/dev/null)
  for c in $ids; do eng DELETE "/containers/$c?force=1" >/dev/null; done
}
# berthd goes first: it would make the containers again.
trap 'telem_cleanup; engine_cleanup' EXIT INT TERM
log() { echo "ok: $*"; }
json() { $PY -c "import json,sys; d=json.load(sys.stdin); $1"; }
P1=$(free_port); P2=$(free_port)

broker_up
berthd_config ", \"engine\": { \"socket\": \"$BERTH_ENGINE_SOCK\", \"timeout_ms\": 5000 },
  \"images\": { \"lkg_stable_s\": 3, \"rollout_window_s\": 60 }"
consumer_up events "berth/v1/$DEV/events"
berthd_up
wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"

spec() { # VERSION DET_MEMORY HOG_MEMORY
  cat > "$T/v$1.json" <<EOD
{"version":$1,"deployments":[
 {"name":"det","image":"$IMAGE","env":{"BERTH_V":"$1"},"resources":{"memory":"$2"},"replicas":1,"inference":{"port":$P1}},
 {"name":"hog","image":"$IMAGE","env":{"BERTH_V":"$1"},"resources":{"memory":"$3"},"replicas":1,"inference":{"port":$P2}}]}
EOD
}
spec 1 64Mi 300Mi
"$CTL" "${B[@]}" deploy "$DEV" "$T/v1.json" > "$T/d1.out" 2>&1 || fail "deploy v1: $(cat "$T/d1.out")"
lkg_both() { grep -Eq 'event=last_known_good .*deployment[^a-z]+det[^a-z]' "$T/berthd.log" &&
  grep -Eq 'event=last_known_good .*deployment[^a-z]+hog[^a-z]' "$T/berthd.log"; }
wait_until 40 "det and hog v1 recorded as last-known-good" lkg_both \
  || fail "v1 never became last-known-good: $(grep -E 'last_known_good|error|event=replica' "$T/berthd.log" | tail -5)"
log "v1 running; det (64 MiB) and hog (300 MiB) recorded as last-known-good"

# v2: det and hog ask 512 MiB. The policy follows at once, before v2 could become last-known-good (3 s ready).
spec 2 512Mi 512Mi
"$CTL" "${B[@]}" deploy "$DEV" "$T/v2.json" > "$T/d2.out" 2>&1 || fail "deploy v2: $(cat "$T/d2.out")"
cat > "$T/policy.json" <<'EOP'
{"schema":1,"version":1,"rules":{"resources":{"mode":"repair","per_deployment":{"memory_mb":256}}}}
EOP
"$CTL" "${B[@]}" set-policy "$DEV" "$T/policy.json" > "$T/pol.out" 2>&1 || fail "set-policy: $(cat "$T/pol.out")"
grep -q 'event=policy_repaired deployment=det rule=resources action=stopped' "$T/berthd.log" &&
  fail "det was stopped, not rolled back (did v2 become last-known-good before the policy arrived?)"
"$CTL" "${B[@]}" policy "$DEV" --json > "$T/policy-state.json" || fail "berthctl policy"
json "p=d['policy']; it={i['deployment']:i for i in p['items']}; \
assert p['version']==1 and p['violations']==0 and p['repaired']==2, p; \
assert it['det']['status']=='repaired' and it['det']['action']=='rolled_back', it; \
assert it['hog']['status']=='repaired' and it['hog']['action']=='stopped', it" < "$T/policy-state.json" \
  || fail "compliance after the policy: $(cat "$T/policy-state.json")"
log "reported: det repaired (rolled_back), hog repaired (stopped: its last-known-good violates the policy), no violation left"

grep -q 'event=policy_repaired deployment=det rule=resources action=rolled_back' "$T/berthd.log" || fail "no rollback repair logged"
grep -q 'event=policy_rollback_not_possible deployment=hog rule=resources reason="the last-known-good version violates the policy"' "$T/berthd.log" \
  || fail "hog's last-known-good was not judged against the policy: $(grep 'deployment=hog' "$T/berthd.log" | tail -3)"
wait_until 10 "a rollback event with reason policy" grep -q 'rollback.*reason.*policy' "$T/events.out" \
  || fail "no rollback event: $(tail -3 "$T/events.out")"
wait_until 10 "a policy_repaired event for each" bash -c "grep -q 'policy_repaired.*rolled_back' '$T/events.out' && grep -q 'policy_repaired.*stopped' '$T/events.out'" \
  || fail "no policy_repaired events"
# det runs v1 again (64 MiB limit on its container), hog is gone.
det_v1() { my_ctrs | grep -Eq "det.* 67108864$" && ! my_ctrs | grep -Eq "det.* 536870912$"; }
wait_until 30 "det's container back at 64 MiB" det_v1 || fail "det not rolled back: $(my_ctrs)"
hog_gone() { ! my_ctrs | grep -q hog; }
wait_until 30 "hog stopped" hog_gone || fail "hog still runs: $(my_ctrs)"
ready() { "$CTL" "${B[@]}" state "$DEV" --json | json "n={x['name']:x for x in d['state']['deployments']}; \
sys.exit(0 if n['det']['replicas_ready']>=1 and not n['det']['removing'] and ('hog' not in n or n['hog']['removing']) else 1)"; }
wait_until 30 "det ready, hog removed in the reported state" ready || fail "state: $("$CTL" "${B[@]}" state "$DEV" --json)"
# The desired state carries det's last-known-good spec now (a restart keeps v1, not v2).
sqlite3 "$T/data/berth.db" "SELECT body FROM desired" > "$T/desired.now"
grep -q '"name":"det"' "$T/desired.now" && grep -q '"BERTH_V":"1"' "$T/desired.now" && ! grep -q '"name":"hog"' "$T/desired.now" \
  || fail "desired state after repair: $(cat "$T/desired.now")"
log "det runs its last-known-good v1 (64 MiB) and is ready; hog stopped; the desired state holds det v1 and no hog"
echo "test-trust-repair: ok"
