#!/usr/bin/env bash
# Site failover on three gateways (network namespaces, an engine each, no broker): a site-scoped
# deployment with 2 spread replicas lands on two members; one of them is gone (berthd SIGKILLed,
# its containers killed): its replica is ready on the third member within the target, and the
# killed member, restarted with its data dir, does not start the moved replica again.
TEST=site-failover
source "$(dirname "$0")/lib-site.sh"
TARGET_MS=${TARGET_MS:-10000}

site_net_up 3 || { bad "site network did not come up"; finish; }
cat > "$SITE_DIR/deployments.json" <<EOF
{"version":1,"deployments":[
 {"name":"det","image":"localhost/berth-worker:latest","inference":{"port":9100},
  "resources":{"cpu":"100m","memory":"32Mi"},"sla":{"class":"urgent","deadline_ms":500},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "placement":{"scope":"site","replicas":2,"spread":true}}]}
EOF
for i in 1 2 3; do gw_start "$i"; done
wait_for 15000 one_leader 1 2 3 && ok "one leader elected: gw$LEADER" || bad "no agreed leader"

placed() { local t=0 i; for i in 1 2 3; do t=$(( t + $(ready_on "$i" det) )); done; [ "$t" -eq 2 ]; }
wait_for 30000 placed && ok "2 replicas ready" || bad "det never had 2 ready replicas"
holders=(); spare=""
for i in 1 2 3; do
  a=$(assigned_to "$i" det)
  [ "$(running_on "$i" det)" = "$a" ] || bad "gw$i runs $(running_on "$i" det) det containers, assigned $a"
  if [ "$a" = 1 ]; then holders+=("$i"); else spare=$i; fi
done
[ ${#holders[@]} -eq 2 ] && [ -n "$spare" ] && ok "spread: gw${holders[0]} and gw${holders[1]} hold one each" ||
  bad "not spread: holders ${holders[*]}"

victim=${holders[0]}
gw_kill "$victim"; gw_kill_containers "$victim"; t0=$(now_ms)
moved() { [ "$(ready_on "$spare" det)" = 1 ]; }
if wait_for 20000 moved; then
  dt=$(( $(now_ms) - t0 ))
  [ $dt -le "$TARGET_MS" ] && ok "replica ready on gw$spare ${dt} ms after gw$victim was gone (target $TARGET_MS)" ||
    bad "failover took $dt ms (target $TARGET_MS)"
else bad "replica never ready on gw$spare"; fi
[ "$(running_on "${holders[1]}" det)" = 1 ] && ok "the other replica stayed on gw${holders[1]}" || bad "other replica moved"

gw_start "$victim"
back() { [ "$(lease_of "$victim")" = True ]; }
wait_for 15000 back && ok "gw$victim restarted with its data dir and holds the lease again" || bad "gw$victim never got the lease back"
never_again=1
for _ in $(seq 1 30); do
  [ "$(running_on "$victim" det)" = 0 ] || { never_again=0; break; }
  sleep 0.1
done
[ $never_again = 1 ] && ok "gw$victim did not start the moved replica again (3 s watched)" || bad "gw$victim runs det again"
total=0; for i in 1 2 3; do total=$(( total + $(running_on "$i" det) )); done
[ "$total" = 2 ] && ok "exactly 2 det containers run across the three engines" || bad "$total det containers run"
grep -q "event=site_member_silent member=gw$victim" "$SITE_DIR"/m*/berthd.log && ok "leader logged gw$victim silent" ||
  bad "no site_member_silent logged"
finish
