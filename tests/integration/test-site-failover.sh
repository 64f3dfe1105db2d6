#!/usr/bin/env bash
# Site failover on three gateways (network namespaces, an engine each, the broker unreachable):
#  1. the leader is killed while it places a new site deployment set: a new leader finishes the
#     placement, no replica is assigned twice, every engine runs exactly what is assigned; the old
#     leader replaced by a gateway with the same id and an empty data dir catches up;
#  2. a member holding a replica is gone (berthd SIGKILLed, its containers killed): its replica is
#     ready on the third member within the target; restarted with its data dir, the killed member
#     does not start the moved replica again;
#  3. that member restarted with a member list that disagrees is ignored and runs no site replica.
TEST=site-failover
source "$(dirname "$0")/lib-site.sh"
TARGET_MS=${TARGET_MS:-10000}
docs() { # docs VERSION: deployments file; version 1 has no site deployment
  if [ "$1" = 1 ]; then echo '{"version":1,"deployments":[]}' > "$SITE_DIR/deployments.json"; return; fi
  cat > "$SITE_DIR/deployments.json" <<EOF
{"version":$1,"deployments":[
 {"name":"det","image":"localhost/berth-worker:latest","inference":{"port":9100},
  "resources":{"cpu":"100m","memory":"32Mi"},"sla":{"class":"urgent","deadline_ms":500},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "placement":{"scope":"site","replicas":2,"spread":true}},
 {"name":"bulk","image":"localhost/berth-worker:latest","inference":{"port":9300},
  "sla":{"class":"batch"},"placement":{"scope":"site","replicas":1}}]}
EOF
}
site_up 3 || { bad "site network did not come up"; finish; }
docs 1
for i in 1 2 3; do gw_start "$i"; done
agreed() { snap det; local i; for i in 1 2 3; do [ "${LEADER[$i]}" != - ] && [ "${LEADER[$i]}" = "${LEADER[1]}" ] || return 1; done; }
wait_until 20 "one leader named by every member" agreed && ok "one leader elected: ${LEADER[1]}" || bad "no agreed leader"

# --- 1. the leader killed during placement ---------------------------------------------------
old=${LEADER[1]#gw}; survivors=(); for i in 1 2 3; do [ "$i" = "$old" ] || survivors+=("$i"); done
docs 2
for i in 1 2 3; do gw_hup "$i"; done
sleep 0.3
gw_kill "$old"; gw_kill_containers "$old"; t0=$(now_ms)
finished() {
  local a=0 b=0 i
  snap det
  for i in "${survivors[@]}"; do
    [ "${LEADER[$i]}" != - ] && [ "${LEADER[$i]}" != "gw$old" ] || return 1
    [ "${ASSIGNED[$i]}" = 1 ] && [ "${RUNNING[$i]}" = 1 ] || return 1
  done
  snap bulk
  for i in "${survivors[@]}"; do a=$(( a + ASSIGNED[$i] )); b=$(( b + RUNNING[$i] )); done
  [ $a = 1 ] && [ $b = 1 ]
}
if wait_until 25 "a new leader to finish the placement" finished; then
  ok "new leader ${LEADER[${survivors[0]}]} finished the placement $(( $(now_ms) - t0 )) ms after the old one died: det on gw${survivors[0]} and gw${survivors[1]}, bulk on one"
else bad "placement not finished by a new leader"; fi
snap det
twice=0; for i in "${survivors[@]}"; do [ "${ASSIGNED[$i]}" -le 1 ] || twice=1; done
[ $twice = 0 ] && ok "no det replica assigned twice (spread holds)" || bad "a member holds two det replicas"
# the old leader's hardware replaced: same device id and address, an empty data dir
rm -rf "$SITE_DIR/m$old/data"
gw_start "$old"
back() { snap det; [ "${LEASE[$old]}" = yes ]; }
wait_until 15 "the member to hold the lease again" back && ok "gw$old replaced (empty data dir): caught up from the leader, holds the lease" ||
  bad "replaced gw$old never got the lease"
exact() { local d i; for d in det bulk; do snap $d; for i in 1 2 3; do [ "${ASSIGNED[$i]}" = "${RUNNING[$i]}" ] || return 1; done; done; }
wait_until 5 "every engine to run what the log assigns" exact && ok "every engine runs exactly what the log assigns it" || bad "engines and log disagree"

# --- 2. a member holding a replica is gone --------------------------------------------------
snap det
holders=(); spare=""
for i in 1 2 3; do if [ "${ASSIGNED[$i]}" = 1 ]; then holders+=("$i"); else spare=$i; fi; done
victim=${holders[0]}
gw_kill "$victim"; gw_kill_containers "$victim"; t0=$(now_ms)
read -r w < <(python3 "$PROBE" watch det "$victim" "$spare" 20000 "$t0")
eval "${w// /; }"
if [ "$t_ready_ms" -ge 0 ]; then
  [ "$t_ready_ms" -le "$TARGET_MS" ] && ok "replica ready on gw$spare ${t_ready_ms} ms after gw$victim was gone (started at ${t_start_ms} ms; target $TARGET_MS)" ||
    bad "failover took $t_ready_ms ms (target $TARGET_MS)"
else bad "replica never ready on gw$spare ($w)"; fi
snap det
[ "${RUNNING[${holders[1]}]}" = 1 ] && ok "the other replica stayed on gw${holders[1]}" || bad "other replica moved"
gw_start "$victim"
back() { snap det; [ "${LEASE[$victim]}" = yes ]; }
wait_until 15 "the member to hold the lease again" back && ok "gw$victim restarted with its data dir and holds the lease again" || bad "gw$victim never got the lease back"
never_again=1
for _ in 1 2 3 4 5 6; do snap det; [ "${RUNNING[$victim]}" = 0 ] || { never_again=0; break; }; sleep 0.3; done
[ $never_again = 1 ] && ok "gw$victim did not start the moved replica again (watched 2 s)" || bad "gw$victim runs det again"
snap det
[ $(( RUNNING[1] + RUNNING[2] + RUNNING[3] )) = 2 ] && ok "exactly 2 det containers run across the three engines" ||
  bad "${RUNNING[*]} det containers run"
grep -q "event=site_member_silent member=gw$victim" "$SITE_DIR"/m*/berthd.log && ok "the leader logged gw$victim silent" ||
  bad "no site_member_silent logged"
# --- a member whose site.members disagrees is ignored by the others and runs no site replica
kill -TERM "${BPID[$victim]}"; wait "${BPID[$victim]}" 2>/dev/null
sed -i "s/gw$spare=10.77.0.$spare:7400/gw$spare=10.77.0.$spare:7401/" "$SITE_DIR/m$victim/config.json"
nsenter --net="/run/netns/${SITE_NS[$victim]}" "$build/berthd" -c "$SITE_DIR/m$victim/config.json" \
  >> "$SITE_DIR/m$victim/berthd.log" 2>&1 &
BPID[$victim]=$!
# (its heartbeats to gw$spare go to the wrong port; gw${holders[1]} receives them and refuses them)
ignored() { grep -q "event=site_members_disagree member=gw$victim" "$SITE_DIR/m${holders[1]}/berthd.log"; }
wait_until 10 "the others to refuse the member list" ignored && ok "gw$victim with another member list is refused by gw${holders[1]} (site_members_disagree)" ||
  bad "no site_members_disagree logged for gw$victim"
sleep 1; snap det   # a window: it must not get the lease in it
[ "${LEASE[$victim]}" = no ] && [ "${RUNNING[$victim]}" = 0 ] && ok "gw$victim holds no lease and runs no det" ||
  bad "gw$victim: lease ${LEASE[$victim]}, runs ${RUNNING[$victim]}"
finish
