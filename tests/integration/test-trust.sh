#!/usr/bin/env bash
# Trust on the real broker: commands signed by an untrusted key, for another device, tampered or unsigned
# are refused with the reason and change nothing; a replayed command is applied once, also after a
# restart; a key list signed by the old key rotates in and the old key is refused after its window; a
# command sent while berthd is stopped is applied once when it starts and one whose expiry passed is
# refused as expired; a deploy violating the policy is denied naming the rule; a new policy repairs
# (stops) a running deployment violating a repair-mode rule and reports one violating a deny-mode rule.
set -u
here=$(cd "$(dirname "$0")" && pwd)
DEV=gw-trust
# shellcheck source=tests/integration/lib-telem.sh
source "$here/lib-telem.sh"
telem_setup
CTL="$TELEM_BUILD/berthctl"
broker_up
B=(-b "127.0.0.1:$BROKER_PORT")
# No engine: the trust gate decides before anything reaches it; desired state is what is checked.
berthd_config ", \"engine\": { \"socket\": \"$T/no-engine.sock\", \"timeout_ms\": 1000 }"
consumer_up replies "berth/v1/$DEV/cmd/+/reply"
consumer_up events "berth/v1/$DEV/events"
berthd_up
wait_until 10 "event=connected in berthd.log" grep -q 'event=connected' "$T/berthd.log" || fail "berthd never connected"
log() { echo "ok: $*"; }
json() { $PY -c "import json,sys; d=json.load(sys.stdin); $1"; }

# pub MSG_JSON VERB [SIGN_ARGS...]: signs (unless SIGN_ARGS is "unsigned") and publishes a command.
pub() {
  local msg=$1 verb=$2; shift 2
  local out=$msg
  if [ "${1:-}" != unsigned ]; then out=$(printf '%s' "$msg" | "$CTL" sign command "$DEV" - "$@") || fail "sign"; fi
  mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/$verb" -m "$out" || fail "publish"
}
wait_reply() { wait_until 10 "a reply to $1" has_reply "$1" || fail "no reply to $1"; reply_for "$1"; }
code_of() { wait_reply "$1" | json "print(d['error']['code'] if not d['ok'] else 'ok')"; }
desired_version() { "$CTL" "${B[@]}" state "$DEV" --json | json "print(d['state']['desired_version'])"; }

# --- a signed deploy is applied ---------------------------------------------------------------
cat > "$T/v1.json" <<'EOD'
{"version":1,"deployments":[
 {"name":"big","image":"localhost/berth-worker:latest","replicas":{"min":1,"max":3,"desired":1}},
 {"name":"foreign","image":"registry.example.com/x/det:1","replicas":{"min":1,"max":1,"desired":1},"inference":{"port":8600}}]}
EOD
"$CTL" "${B[@]}" deploy "$DEV" "$T/v1.json" > "$T/deploy1.out" 2>&1 || fail "signed deploy refused: $(cat "$T/deploy1.out")"
[ "$(desired_version)" = 1 ] || fail "desired version is not 1"
# No policy yet: the evaluation is logged all the same (policy version 0, rule no_policy).
wait_until 5 "a policy_decision event with rule no_policy" grep -q 'policy_decision.*no_policy' "$T/events.out" \
  || fail "no decision logged without a policy"
log "a deploy signed with the trusted key is applied; its decision (no policy) is logged and sent"

# --- refused: unsigned, untrusted key, other device, tampered --------------------------------------
"$CTL" keygen intruder "$T/intruder.key" > /dev/null || fail "keygen"
pub '{"id":"u-1","verb":"scale","args":{"deployment":"big","replicas":3}}' scale unsigned
pub '{"id":"u-2","verb":"scale","args":{"deployment":"big","replicas":3}}' scale --sign-key "$T/intruder.key"
pub '{"id":"u-3","verb":"scale","args":{"deployment":"big","replicas":3}}' scale --target device:gw-other
good=$(printf '%s' '{"id":"u-4","verb":"scale","args":{"deployment":"big","replicas":2}}' | "$CTL" sign command "$DEV" -)
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/scale" -m "${good/\"replicas\":2/\"replicas\":3}"
for p in "u-1 unsigned" "u-2 unknown_key" "u-3 wrong_target" "u-4 bad_signature"; do
  set -- $p
  c=$(code_of "$1"); [ "$c" = "$2" ] || fail "$1: expected $2, got $c"
done
"$CTL" "${B[@]}" state "$DEV" --json | json "b=[x for x in d['state']['deployments'] if x['name']=='big'][0]; assert b['replicas_desired']==1, b" \
  || fail "a refused command changed the replicas"
grep -q 'command_applied id=u-' "$T/berthd.log" && fail "a refused command was applied"
wait_until 5 "a trust_refused event" grep -q 'trust_refused' "$T/events.out" || fail "no trust_refused event"
log "unsigned, untrusted key, other device, tampered: refused (unsigned, unknown_key, wrong_target, bad_signature), nothing changed, events sent"

# --- replay: the same signed message again, and after a restart ------------------------------------
signed=$(printf '%s' '{"id":"r-1","verb":"restart","args":{"deployment":"big"}}' | "$CTL" sign command "$DEV" -)
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/restart" -m "$signed"
wait_reply r-1 > /dev/null
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/restart" -m "$signed"
replies_at_least() { [ "$(replies_count "$1")" -ge "$2" ]; }
wait_until 5 "two replies to r-1" replies_at_least r-1 2 || fail "replay not answered"
berthd_down TERM
berthd_up
wait_until 10 "a second event=connected" bash -c "[ \$(grep -c 'event=connected' '$T/berthd.log') -ge 2 ]" || fail "berthd did not reconnect"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t "berth/v1/$DEV/cmd/restart" -m "$signed"
wait_until 5 "three replies to r-1" replies_at_least r-1 3 || fail "replay after restart not answered"
[ "$(grep -c 'event=command_applied id=r-1' "$T/berthd.log")" -eq 1 ] || fail "r-1 applied more than once"
log "a replayed command is answered with its first reply and applied once, also after a restart"

# --- rotation: a key list signed by the old key; the old key refused after its window --------------
"$CTL" keygen console-2 "$T/k2.key" > "$T/k2.list" || fail "keygen k2"
old_pub=$(json "print(d['keys'][0]['public'])" < "$T/trust/keys.json")
new_pub=$(json "print(d['keys'][0]['public'])" < "$T/k2.list")
until_ms=$(( $(date +%s%3N) + 4000 ))
cat > "$T/keys2.json" <<EOK
{"schema":1,"version":2,"keys":[{"id":"test-console","public":"$old_pub","not_after":$until_ms},
 {"id":"console-2","public":"$new_pub"}]}
EOK
"$CTL" "${B[@]}" -t 2 set-keys "$DEV" "$T/keys2.json" --sign-key "$T/intruder.key" > "$T/rot-bad.out" 2>&1 \
  && fail "a key list signed by an untrusted key was accepted"
"$CTL" "${B[@]}" set-keys "$DEV" "$T/keys2.json" > "$T/rot.out" 2>&1 || fail "rotation refused: $(cat "$T/rot.out")"
"$CTL" "${B[@]}" --sign-key "$T/k2.key" scale "$DEV" big 2 > /dev/null 2>&1 || fail "the new key is refused"
past_window() { [ "$(date +%s%3N)" -gt $((until_ms + 200)) ]; }
wait_until 10 "the old key's not_after to pass" past_window || fail "clock did not pass the key's window"
pub '{"id":"k-1","verb":"ping"}' ping
c=$(code_of k-1); [ "$c" = key_expired ] || fail "the old key after its window: $c"
log "key list v2 signed by the old key rotated in (one signed by an untrusted key refused); the new key works; the old key is refused after its window"
export BERTH_SIGN_KEY=$T/k2.key

# --- durable delivery: commands sent while berthd is stopped -------------------------------------
berthd_down TERM
pub '{"id":"o-1","verb":"scale","args":{"deployment":"big","replicas":3}}' scale
pub '{"id":"o-2","verb":"scale","args":{"deployment":"big","replicas":1}}' scale --expire 1
sleep 1.5  # a window: o-2's signed expiry (1 s) passes while berthd is down
berthd_up
c=$(code_of o-1); [ "$c" = ok ] || fail "o-1 sent while offline: $c"
c=$(code_of o-2); [ "$c" = expired ] || fail "o-2 past its expiry: $c"
[ "$(grep -c 'event=command_applied id=o-1' "$T/berthd.log")" -eq 1 ] || fail "o-1 not applied exactly once"
"$CTL" "${B[@]}" state "$DEV" --json | json "b=[x for x in d['state']['deployments'] if x['name']=='big'][0]; assert b['replicas_desired']==3, b" \
  || fail "o-1 did not take effect"
log "a scale sent while berthd was stopped is applied once after it starts; one past its expiry is refused as expired"

# --- policy: deny at admission, repair / report on arrival -----------------------------------------
cat > "$T/policy.json" <<'EOP'
{"schema":1,"version":1,"rules":{
 "registries":{"mode":"deny","allow":["localhost"]},
 "replicas":{"mode":"repair","max":2},
 "digest":{"mode":"audit","required":true}}}
EOP
"$CTL" "${B[@]}" set-policy "$DEV" "$T/policy.json" > "$T/pol.out" 2>&1 || fail "set-policy: $(cat "$T/pol.out")"
"$CTL" "${B[@]}" policy "$DEV" --json > "$T/policy-state.json" || fail "berthctl policy"
json "p=d['policy']; assert p['version']==1, p; st={(i['deployment'],i['rule']):i['status'] for i in p['items']}; \
assert st[('big','replicas')]=='repaired', st; assert st[('foreign','registries')]=='awaiting_approval', st; \
assert st[('big','digest')]=='repaired', st; assert p['violations']>=1 and p['repaired']>=1, p; \
assert [i['action'] for i in p['items'] if i['deployment']=='big']==['stopped','stopped'], p" < "$T/policy-state.json" \
  || fail "compliance after the policy: $(cat "$T/policy-state.json")"
# Stopped: gone from the deployments, or being removed (without an engine its replicas never confirm).
"$CTL" "${B[@]}" state "$DEV" --json | json "n={x['name']:x for x in d['state']['deployments']}; \
assert ('big' not in n or n['big']['removing']) and 'foreign' in n and not n['foreign']['removing'], n" \
  || fail "big was not stopped"
"$CTL" "${B[@]}" policy "$DEV" > "$T/policy.txt" || fail "berthctl policy (table)"
cat "$T/policy.txt"
grep -Eq '^big +replicas +repair +repaired' "$T/policy.txt" || fail "policy table: $(cat "$T/policy.txt")"
wait_until 5 "a policy_decision event" grep -q 'policy_decision' "$T/events.out" || fail "no policy_decision event"
log "policy v1: big (replicas 3 > 2, repair) stopped, foreign (registry, deny) awaiting approval, decisions sent as events"
cat > "$T/v2.json" <<'EOD'
{"version":2,"deployments":[{"name":"evil","image":"docker.io/evil/miner:1"}]}
EOD
"$CTL" "${B[@]}" deploy "$DEV" "$T/v2.json" > "$T/deploy2.out" 2>&1 && fail "a deploy violating the policy was applied"
grep -q 'policy_denied' "$T/deploy2.out" && grep -q 'registries' "$T/deploy2.out" || fail "deny does not name the rule: $(cat "$T/deploy2.out")"
[ "$(desired_version)" = 1 ] || fail "a denied deploy changed the desired version"
log "a deploy from a registry the policy does not allow: denied naming the rule, desired state unchanged"
echo "test-trust: ok"
