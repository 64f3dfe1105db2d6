#!/usr/bin/env bash
# Site membership by command, on three gateways (network namespaces, an engine each; a broker on the
# host side of the bridge carries the signed console commands):
#  1. gw1 and gw2 found a site of two (the warning that two cannot fail over is logged); a site
#     deployment with 2 spread replicas runs one on each. gw3 starts outside site.members (its own
#     site.address): it is not a member, runs nothing;
#  2. bad membership commands (berthctl site-join / site-leave, signed) are refused with the problem
#     named (exit 1) and the site unchanged: a join with
#     a member's id, a join with a member's address, a leave of an unknown id, a leave that would
#     leave one member;
#  3. site_join gw3 sent to a follower: every member lists three, gw3 holds the lease;
#  4. site_leave of a member holding a replica: the replica moves to gw3 (ready within the target),
#     the member that left runs nothing and says it is not a member;
#  5. every gateway restarted with its data dir: the joined member is still a member, the one that
#     left is still out (its founding config lists it: the log wins), exactly 2 replicas run.
TEST=site-membership
source "$(dirname "$0")/lib-site.sh"
source "$here/tests/integration/lib-trust.sh"
TARGET_MS=${TARGET_MS:-10000}
SITE_FOUNDERS=2
site_up 3 || { bad "site network did not come up"; finish; }
trust_keys "$SITE_DIR/keys" "$build" || { bad "no console key"; finish; }
# the console's broker: on the host's side of the bridge, which every namespace reaches
BPORT=$(free_port)
cat > "$SITE_DIR/mosquitto.conf" <<EOF
listener $BPORT $SITE_HOST_SUBNET.254
allow_anonymous true
persistence false
EOF
mosquitto -c "$SITE_DIR/mosquitto.conf" > "$SITE_DIR/mosquitto.log" 2>&1 &
MOSQ=$!
trap 'kill "$MOSQ" 2>/dev/null; echo "  [$(_t)] cleaning up"; site_net_down; echo "  [$(_t)] done"' EXIT
SITE_BROKER=$SITE_HOST_SUBNET.254:$BPORT
cat > "$SITE_DIR/deployments.json" <<EOF
{"version":1,"deployments":[
 {"name":"det","image":"localhost/berth-worker:latest","inference":{"port":9100},
  "resources":{"cpu":"100m","memory":"32Mi"},"sla":{"class":"urgent","deadline_ms":500},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "placement":{"scope":"site","replicas":2,"spread":true}}]}
EOF

# site_cmd site-join|site-leave DEVICE ID [ADDRESS]: berthctl sends it signed; prints the reply (JSON).
site_cmd() {
  "$build/berthctl" --json -b "$SITE_HOST_SUBNET.254:$BPORT" -t 15 "$@" 2>>"$SITE_DIR/berthctl.err"
}
# field JSON EXPR: EXPR over the JSON (r)
field() { python3 -c 'import json,sys
try: r=json.loads(sys.argv[1])
except Exception: print(""); sys.exit(0)
print(eval(sys.argv[2]))' "$1" "$2"; }
members_of() { site_view "$1" '",".join(sorted(m["id"] for m in v["members"]))'; }

# --- 1. a site of two, and a gateway outside it -------------------------------------------------
gw_start 1; gw_start 2
two() { snap det; [ "${READY[1]}" = 1 ] && [ "${READY[2]}" = 1 ]; }
wait_until 30 "det ready on gw1 and gw2" two && ok "a site of two: det runs once on gw1 and once on gw2 (leader ${LEADER[1]})" ||
  bad "det not on gw1 and gw2"
grep -q "event=site_two_members" "$SITE_DIR/m1/berthd.log" && ok "a 2-member site logs that it cannot fail over (site_two_members)" ||
  bad "no site_two_members warning"
gw_start 3
online() { grep -q "event=connected host=$SITE_HOST_SUBNET.254" "$SITE_DIR/m$1/berthd.log"; }
for i in 1 2 3; do wait_until 15 "gw$i on the broker" online "$i" || bad "gw$i never connected to the broker"; done
outside() { [ "$(site_view 3 'v["member"]')" = False ] && [ "$(members_of 3)" = gw1,gw2 ]; }
wait_until 10 "gw3 to report the site it is not in" outside && ok "gw3 (site.address, not in site.members) runs as a non-member" ||
  bad "gw3: member=$(site_view 3 'v["member"]') members=$(members_of 3)"
snap det
[ "${RUNNING[3]}" = 0 ] && [ "${LEASE[3]}" = no ] && ok "gw3 holds no lease and runs no det" || bad "gw3 lease ${LEASE[3]} runs ${RUNNING[3]}"

# --- 2. refused membership commands change nothing ------------------------------------------------
leader=${LEADER[1]#gw}; follower=$(( 3 - leader ))
before=$(site_view 1 'json.dumps([v["members"][0]["id"],v["members"][1]["id"],v["deployments"]])' 2>/dev/null)
applied=$(site_view 1 'v["applied"]')
check_refused() { # CODE TEXT BERTHCTL-ARGS...: exit 1, the code and the reason in the reply
  local code=$1 text=$2 r rc; shift 2
  r=$(site_cmd "$@"); rc=$?
  if [ $rc = 1 ] && [ "$(field "$r" 'r["ok"]')" = False ] && [ "$(field "$r" 'r["error"]["code"]')" = "$code" ] &&
     [[ "$(field "$r" 'r["error"]["message"]')" == *"$text"* ]]; then
    ok "berthctl $* refused (exit 1): $code ($(field "$r" 'r["error"]["message"]'))"
  else bad "berthctl $*: expected exit 1, $code '$text', got exit $rc: ${r:-no reply}"; fi
}
check_refused duplicate_member "already in the site" site-join "gw$follower" gw2 10.77.0.9:7400
check_refused duplicate_member "is member gw1's" site-join "gw$leader" gw9 10.77.0.1:7400
check_refused unknown_member "no member gw9" site-leave "gw$follower" gw9
check_refused no_majority "would be left" site-leave "gw$leader" "gw$follower"
check_refused unavailable "not a member" site-join gw3 gw3 10.77.0.3:7400
sleep 1 # a window in which nothing may reach the log
after=$(site_view 1 'json.dumps([v["members"][0]["id"],v["members"][1]["id"],v["deployments"]])' 2>/dev/null)
[ -n "$before" ] && [ "$before" = "$after" ] && [ "$(site_view 1 'len(v["members"])')" = 2 ] &&
  ok "the site is unchanged: members and assignments as before (log index $applied -> $(site_view 1 'v["applied"]'))" ||
  bad "the site changed: $before -> $after"

# --- 3. gw3 joins by a command given to a follower ------------------------------------------------
t0=$(now_ms)
r=$("$build/berthctl" -b "$SITE_HOST_SUBNET.254:$BPORT" -t 15 site-join "gw$follower" gw3 10.77.0.3:7400 2>&1); rc=$?
[ $rc = 0 ] && ok "berthctl site-join gw$follower gw3 10.77.0.3:7400 accepted by a follower (exit 0): $r" ||
  bad "site-join gw3: exit $rc: $r"
joined() { local i; for i in 1 2 3; do [ "$(members_of $i)" = gw1,gw2,gw3 ] || return 1; done; [ "$(lease_of 3)" = True ]; }
wait_until 20 "every member to list gw3 and gw3 to hold the lease" joined &&
  ok "gw3 is a member on every gateway and holds the lease $(( $(now_ms) - t0 )) ms after the command" || bad "gw3 never joined"
grep -q "event=membership_change what=assign_voter member=gw3" "$SITE_DIR"/m*/berthd.log && ok "the leader made gw3 a Raft voter" ||
  bad "no raft_assign of gw3 logged"

# --- 4. a member holding a replica leaves by command ----------------------------------------------
snap det
victim=1; [ "${ASSIGNED[1]}" = 1 ] || victim=2
keep=$(( 3 - victim ))
t0=$(now_ms)
r=$(site_cmd site-leave "gw$keep" "gw$victim")
[ "$(field "$r" 'r["ok"]')" = True ] && ok "site_leave gw$victim accepted by gw$keep" || bad "site_leave gw$victim: ${r:-no reply}"
read -r w < <(python3 "$PROBE" watch det "$victim" 3 20000 "$t0")
eval "${w// /; }"
if [ "$t_ready_ms" -ge 0 ] && [ "$t_ready_ms" -le "$TARGET_MS" ]; then
  ok "gw$victim's replica ready on gw3 ${t_ready_ms} ms after the command (gw$victim stopped it at ${t_stop_ms} ms, gw3 started at ${t_start_ms} ms)"
else bad "replica not ready on gw3 within $TARGET_MS ms ($w)"; fi
left() { [ "$(site_view "$victim" 'v["member"]')" = False ] && [ "$(running_on "$victim" det)" = 0 ] &&
  [ "$(members_of "$keep")" = "$(printf 'gw%s\n' "$keep" 3 | sort | paste -sd,)" ]; }
wait_until 10 "gw$victim out of the site" left && ok "gw$victim is not a member, runs no det; the others list two members" ||
  bad "gw$victim: member=$(site_view "$victim" 'v["member"]') runs=$(running_on "$victim" det) members=$(members_of "$keep")"
grep -q "event=membership_change what=\(remove\|transfer_leadership\)" "$SITE_DIR"/m*/berthd.log &&
  ok "the Raft configuration follows: gw$victim removed" || bad "no raft_remove logged"

# --- 5. every member restarted with its data dir ----------------------------------------------------
for i in 1 2 3; do kill -TERM "${BPID[$i]}"; done
for i in 1 2 3; do wait "${BPID[$i]}" 2>/dev/null; done
for i in 1 2 3; do gw_start "$i"; done
again() {
  [ "$(members_of "$keep")" = "$(members_of 3)" ] && [ "$(members_of 3)" = "$(printf 'gw%s\n' "$keep" 3 | sort | paste -sd,)" ] &&
  [ "$(lease_of 3)" = True ] && [ "$(lease_of "$keep")" = True ] && [ "$(site_view "$victim" 'v["member"]')" = False ]
}
wait_until 30 "the same site after restarting every member" again &&
  ok "after restarting all three: gw3 still a member, gw$victim still out (its site.members lists it: the log wins)" ||
  bad "after restart: members gw3=$(members_of 3) gw$keep=$(members_of "$keep") gw$victim member=$(site_view "$victim" 'v["member"]')"
exact() { snap det; [ "${RUNNING[$victim]}" = 0 ] && [ "${RUNNING[$keep]}" = 1 ] && [ "${RUNNING[3]}" = 1 ]; }
wait_until 15 "det on gw$keep and gw3 only" exact && ok "exactly 2 det containers run, on gw$keep and gw3 (checked through every engine)" ||
  bad "det runs ${RUNNING[*]}"
finish
