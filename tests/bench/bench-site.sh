#!/usr/bin/env bash
# bench-site: failover of an urgent site-scoped deployment (2 spread replicas) on three gateways in
# network namespaces, each with its own engine, the broker unreachable. ROUNDS faults alternate:
# a member gone (berthd SIGKILLed and its containers killed) and a member partitioned (iptables
# DROP both ways). Each round: the fault, then the replacement ready on a survivor (failover), the
# time the same replica ran on two members (the victim's engine still running it after the
# survivor's started it), and, when the victim was the leader, the time until the others agree on a
# new one. Then the member comes back (restart with its data dir, or the partition healed) and the
# site settles before the next round. Baselines in the same run: the configured detection time
# (failover_ms, what any failover must wait) and the RSS of the same berthd with the site disabled.
# Usage: tests/bench/bench-site.sh [BUILD_DIR]     (root; ROUNDS=20 by default; make bench-site builds
# the site preset into build/site and passes it)
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
export BERTH_BUILD=$(cd "${1:-$here/build}" && pwd)
ROUNDS=${ROUNDS:-20}
TEST=bench-site
source "$here/tests/integration/lib-site.sh"

pct() { python3 -c 'import sys; v=sorted(int(x) for x in sys.argv[2:]); p=float(sys.argv[1])
print(v[min(len(v)-1, int(round(p/100*(len(v)-1))))] if v else -1)' "$@"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

site_up 3 || { echo "bench-site: the site network did not come up"; exit 1; }
echo '{"version":1,"deployments":[]}' > "$SITE_DIR/deployments.json"
for i in 1 2 3; do gw_start "$i"; done
agreed() { snap det; local i; for i in 1 2 3; do [ "${LEADER[$i]}" != - ] && [ "${LEADER[$i]}" = "${LEADER[1]}" ] || return 1; done; }
wait_until 30 "one leader named by every member" agreed || { echo "bench-site: no leader"; exit 1; }
sleep 3
rss_site=0; for i in 1 2 3; do rss_site=$(( rss_site + $(rss_kb "${BPID[$i]}") )); done; rss_site=$(( rss_site / 3 ))
# baseline: the same berthd, site disabled, same engine and namespace, empty deployments
d=$SITE_DIR/nosite; mkdir -p "$d/data"
sed -e 's/"enabled":true,"members"/"enabled":false,"members"/' -e "s|$SITE_DIR/m1/data|$d/data|" \
  -e 's/"device_id":"gw1"/"device_id":"gw-nosite"/' -e 's/"port":8480/"port":8490/' "$SITE_DIR/m1/config.json" > "$d/config.json"
nsenter --net="/run/netns/${SITE_NS[1]}" "$BERTH_BUILD/berthd" -c "$d/config.json" > "$d/berthd.log" 2>&1 &
nosite=$!
sleep 5
rss_nosite=$(rss_kb $nosite); kill $nosite; wait $nosite 2>/dev/null
echo "rss: berthd with the site ${rss_site} kB (mean of 3), without ${rss_nosite} kB"

cat > "$SITE_DIR/deployments.json" <<EOF
{"version":2,"deployments":[
 {"name":"det","image":"localhost/berth-worker:latest","inference":{"port":9100},
  "resources":{"cpu":"100m","memory":"32Mi"},"sla":{"class":"urgent","deadline_ms":500},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "placement":{"scope":"site","replicas":2,"spread":true}}]}
EOF
for i in 1 2 3; do gw_hup "$i"; done
settled() { snap det; local i t=0; for i in 1 2 3; do [ "${LEASE[$i]}" = yes ] && [ "${ASSIGNED[$i]}" = "${RUNNING[$i]}" ] || return 1; t=$(( t + READY[$i] )); done; [ $t = 2 ]; }
wait_until 30 "the site to settle" settled || { echo "bench-site: the deployment never settled"; exit 1; }

fail=(); double_kill=(); double_part=(); elect=(); missed=0
for r in $(seq 1 "$ROUNDS"); do
  snap det
  holders=(); spare=""
  for i in 1 2 3; do if [ "${ASSIGNED[$i]}" = 1 ]; then holders+=("$i"); else spare=$i; fi; done
  leader=${LEADER[1]#gw}
  victim=${holders[$(( r % 2 ))]}
  # every fourth round, the leader when it holds a replica
  [ $(( r % 4 )) = 0 ] && [ "${ASSIGNED[$leader]}" = 1 ] && victim=$leader
  kind=kill; [ $(( r % 2 )) = 0 ] && kind=partition
  t0=$(now_ms)
  if [ $kind = kill ]; then gw_kill "$victim"; gw_kill_containers "$victim"; else site_cut "$victim"; fi
  [ "$victim" = "$leader" ] && { python3 "$PROBE" leader "$victim" 20000 "$t0" > "$SITE_DIR/leader.out" & lp=$!; }
  read -r w < <(python3 "$PROBE" watch det "$victim" "$spare" 20000 "$t0")
  eval "${w// /; }"
  dr=-1; [ "$t_stop_ms" -ge 0 ] && [ "$t_start_ms" -ge 0 ] && dr=$(( t_stop_ms > t_start_ms ? t_stop_ms - t_start_ms : 0 ))
  le=""
  if [ "$victim" = "$leader" ]; then wait $lp; le=$(sed 's/t_leader_ms=//' "$SITE_DIR/leader.out"); [ "$le" -ge 0 ] && elect+=("$le"); fi
  printf 'round %2d %-9s gw%s%s: ready on gw%s at %s ms, double run %s ms%s\n' "$r" "$kind" "$victim" \
    "$([ "$victim" = "$leader" ] && echo ' (leader)')" "$spare" "$t_ready_ms" "$dr" "${le:+, new leader at $le ms}"
  if [ "$t_ready_ms" -ge 0 ]; then fail+=("$t_ready_ms"); else missed=$((missed + 1)); fi
  if [ $kind = kill ]; then [ $dr -ge 0 ] && double_kill+=("$dr"); else [ $dr -ge 0 ] && double_part+=("$dr"); fi
  if [ $kind = kill ]; then gw_start "$victim"; else site_heal "$victim"; fi
  wait_until 30 "the site to settle" settled || { echo "bench-site: round $r did not settle"; missed=$((missed + 1)); }
done

max() { local m=0 v; for v in "$@"; do [ "$v" -gt $m ] && m=$v; done; echo $m; }
echo "failover ms: ${fail[*]}"
echo "leader election ms: ${elect[*]:-none}"
echo "baseline: detection alone (site.failover_ms) $FAILOVER_MS ms; lease $LEASE_MS ms"
echo "double run ms: kills max $(max "${double_kill[@]}"), partitions max $(max "${double_part[@]}")"
echo "missed rounds: $missed"
echo "RESULT bench=site rounds=$ROUNDS failover_p50_ms=$(pct 50 "${fail[@]}") failover_p95_ms=$(pct 95 "${fail[@]}")" \
  "double_run_ms_max=$(max "${double_kill[@]}" "${double_part[@]}") double_run_kill_ms_max=$(max "${double_kill[@]}")" \
  "leader_election_p95_ms=$(pct 95 "${elect[@]}") raft_rss_kb=$(( rss_site - rss_nosite ))" \
  "detection_baseline_ms=$FAILOVER_MS missed=$missed"
