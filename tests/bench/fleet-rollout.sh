#!/usr/bin/env bash
# The rollout part of bench-fleet: against a running fleet (scripts/fleet.sh, agents without a
# container engine, all in group "fleet"), a staged rollout of a new version to every agent in
# waves of 10% after a 1% canary (rollout_s: berthctl's own figure for the run), then a broken
# version (one replica wanted: an agent without an engine never gets it ready) that must halt at
# the canary with every other agent still on the good version (halted_on_bad_canary 1).
# Env: FLEET_BUILD, N (agents), FLEET_GROUP (default fleet), ROLLOUT_SOAK_S (default 5); with
# CENTRAL_PORT and BERTH_SIGN_KEY set it uses that running fleet, else it starts one itself with
# scripts/fleet.sh (single broker, in FLEET_ROOT or a temporary dir) and stops it at the end.
# Prints the berthctl summaries, then "rollout_s=.. halted_on_bad_canary=..".
set -u
: "${FLEET_BUILD:?}" "${N:?}"
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${FLEET_ROOT:-/tmp}/berth-fleet-rollout.XXXXXX")
own_fleet=0
trap '[ $own_fleet -eq 0 ] || FLEET_DIR=$tmp/fleet "$here/scripts/fleet.sh" stop >/dev/null 2>&1; rm -rf "$tmp"' EXIT
if [ -z "${CENTRAL_PORT:-}" ]; then
  own_fleet=1
  export FLEET_DIR=$tmp/fleet FLEET_BUILD
  "$here/scripts/fleet.sh" start "$N" --topology single > "$tmp/fleet.out" 2>&1 || { cat "$tmp/fleet.out" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$FLEET_DIR/fleet.env"
  export CENTRAL_PORT BERTH_SIGN_KEY
fi
: "${CENTRAL_PORT:?}" "${BERTH_SIGN_KEY:?}"
G=${FLEET_GROUP:-fleet}
SOAK=${ROLLOUT_SOAK_S:-5}
CTL=("$FLEET_BUILD/berthctl" -b "127.0.0.1:$CENTRAL_PORT" -t 30)
members() { "${CTL[@]}" devices --group "$G" --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0; }
for _ in $(seq 600); do [ "$(members)" -ge "$N" ] && break; sleep 1; done
echo "members of $G: $(members) of $N (load $(cut -d' ' -f1 /proc/loadavg))"
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
