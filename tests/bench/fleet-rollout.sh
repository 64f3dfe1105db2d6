#!/usr/bin/env bash
# The rollout part of bench-fleet: against a running fleet (scripts/fleet.sh, agents without a
# container engine, all in group "fleet"), a staged rollout of a new version to every agent in
# waves of 10% after a 1% canary (rollout_s: berthctl's own figure for the run), then a broken
# version (one replica wanted: an agent without an engine never gets it ready) that must halt at
# the canary with every other agent still on the good version (halted_on_bad_canary 1).
# Env: FLEET_BUILD, CENTRAL_PORT, BERTH_SIGN_KEY, N (agents), FLEET_GROUP (default fleet),
# ROLLOUT_SOAK_S (default 5). Prints the berthctl summaries, then
# "rollout_s=.. halted_on_bad_canary=..".
set -u
: "${FLEET_BUILD:?}" "${CENTRAL_PORT:?}" "${BERTH_SIGN_KEY:?}" "${N:?}"
G=${FLEET_GROUP:-fleet}
SOAK=${ROLLOUT_SOAK_S:-5}
CTL=("$FLEET_BUILD/berthctl" -b "127.0.0.1:$CENTRAL_PORT" -t 30)
tmp=$(mktemp -d /tmp/berth-fleet-rollout.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
v=$(date +%s) # newer than any version the agents hold
file() { # VERSION DESIRED_REPLICAS READY_TIMEOUT_S
  cat > "$tmp/r$1.json" <<EOF
{"version":$1,"deployments":[{"name":"bench","image":"localhost/bench:$1","replicas":{"min":0,"max":1,"desired":$2}}],
 "canary_pct":1,"wave_pct":10,"pause_s":0,"gate":{"soak_s":$SOAK,"ready_timeout_s":$3}}
EOF
}
file "$v" 0 120
file $((v + 1)) 1 20
good=$("${CTL[@]}" rollout --group "$G" "$tmp/r$v.json" --json 2>"$tmp/good.err" | tail -1)
echo "good: $good"
rollout_s=$(echo "$good" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["rollout_s"] if d["result"]=="completed" else -1)' 2>/dev/null || echo -1)
bad=$("${CTL[@]}" rollout --group "$G" "$tmp/r$((v + 1)).json" --json 2>"$tmp/bad.err" | tail -1)
echo "bad: $bad"
halted=$(echo "$bad" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(1 if d["halted_on_bad_canary"]==1 else 0)' 2>/dev/null || echo 0)
# the rest untouched: every agent but the canary still on the good version
on_good=$("${CTL[@]}" devices --group "$G" --json 2>/dev/null | python3 -c "import json,sys; print(sum(1 for x in json.load(sys.stdin) if x['desired_version']==$v))" 2>/dev/null || echo 0)
canary=$(( (N + 99) / 100 ))
echo "agents on the good version after the broken one halted: $on_good of $N (canary $canary)"
[ "$on_good" -eq $((N - canary)) ] || halted=0
echo "rollout_s=$rollout_s halted_on_bad_canary=$halted"
