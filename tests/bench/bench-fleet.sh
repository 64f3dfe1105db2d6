#!/usr/bin/env bash
# A fleet of FLEET_N (default 1000) berthd on this machine (scripts/fleet.sh, no container engine):
#  - baseline: one broker, broker.reconnect_window_s 0 (every gateway's first reconnect within
#    broker.reconnect_min_ms, the behaviour before the window): broker restart, connections/s;
#  - single: one broker, window FLEET_WINDOW_S (default 30): time until all online, a group command
#    to all (time to each reply, p99), broker restart (time until all online again, peak
#    connections in one second from the broker's log), telemetry rows missing/duplicated once the
#    backlogs (paced at telemetry.forward_rate) drained, agent RSS;
#  - bridged: the same through two site brokers bridged to a central one (site brokers restarted).
# rollout_s and halted_on_bad_canary come from berthctl's rollout verb: when berthctl has it and
# tests/bench/fleet-rollout.sh exists, that script is run against the single-topology fleet (env:
# FLEET_DIR, CENTRAL_PORT, BERTH_SIGN_KEY, FLEET_BUILD, N) and prints
# "rollout_s=.. halted_on_bad_canary=.."; else both are -1.
# Usage: tests/bench/bench-fleet.sh [BUILD_DIR]     (run it through /work/slot.sh --all)
set -u
export WAIT_STEP=${WAIT_STEP:-1} # the figures are read from files that grow to tens of MB
cd "$(dirname "$0")/../.."
here=$(pwd)
O=${1:-build}
FLEET_BUILD=$(cd "$O" && pwd)
# shellcheck source=tests/integration/lib-common.sh
source tests/integration/lib-common.sh
FLEET_ROOT=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-fleet.XXXXXX")
source tests/integration/lib-fleet.sh
N=${FLEET_N:-1000}
W=${FLEET_WINDOW_S:-30}
RATE=${FLEET_RATE:-20}
IV=${FLEET_INTERVAL_MS:-5000}
cleanup() { fleet_down; rm -rf "$FLEET_ROOT"; }
trap cleanup EXIT INT TERM
say() { echo "bench-fleet: $*" >&2; }
mem() { free -m | awk '/^Mem:/ { print "used_mb=" $3 " avail_mb=" $7 }'; }

# phase TOPOLOGY WINDOW: one run; sets P_online P_restart P_peak P_lost P_dup P_p99 P_pub P_rss50 P_rss95
phase() {
  local topo=$1 win=$2 r restart_ms
  P_online=-1 P_restart=-1 P_peak=-1 P_lost=-1 P_dup=-1 P_p99=-1 P_rss50=-1 P_rss95=-1 P_pss50=-1 P_pub=-1
  say "$topo window=$win: starting $N agents ($(mem), load $(cut -d' ' -f1 /proc/loadavg))"
  fleet_up "$N" "$topo" --window "$win" --rate "$RATE" --interval-ms "$IV" || { say "$topo: fleet did not start"; return 1; }
  P_online=$(fleet_online "$N" "$LAUNCHED_MS" 600) || { say "$topo: not all online: $P_online"; return 1; }
  read -r P_rss50 P_rss95 _ P_pss50 _ <<< "$("$FLEET_SH" rss)"
  say "$topo: all online in $P_online s; agent RSS p50 $P_rss50 kB p95 $P_rss95 kB, PSS p50 $P_pss50 kB ($(mem))"
  if [ "$win" -gt 0 ]; then
    fleet_group_cmd fleet "bench-$topo" && r=$(fleet_replies "bench-$topo" "$N" 120) && read -r _ _ P_p99 _ _ P_pub <<< "$r"
    say "$topo: group command: replies ${r:-none} (count p50 p99 max ok pub_ms; times from the command's arrival at the console)"
  fi
  sleep 5 # a few telemetry intervals: each agent has rows on the broker before the restart
  restart_ms=$("$FLEET_SH" restart-broker) || { say "$topo: restart failed"; return 1; }
  P_restart=$(fleet_online "$N" "$restart_ms" $((win + 300))) || say "$topo: not all back: $P_restart"
  read -r P_peak _ <<< "$(fleet_probe peak $((restart_ms / 1000)) $(fleet_broker_logs))"
  say "$topo: after the restart all online in $P_restart s, peak $P_peak connections/s (load $(cut -d' ' -f1 /proc/loadavg))"
  if [ "$win" -gt 0 ]; then
    r=$(fleet_telemetry_settled 300)
    read -r _ _ _ P_lost P_dup <<< "$r"
    say "$topo: telemetry devices rows unique lost dup: $r"
  fi
  fleet_down
}

phase single 0 || exit 1
B_peak=$P_peak B_restart=$P_restart
phase single "$W" || exit 1
S_online=$P_online S_restart=$P_restart S_peak=$P_peak S_lost=$P_lost S_dup=$P_dup S_p99=$P_p99 S_pub=$P_pub S_rss50=$P_rss50 S_rss95=$P_rss95 S_pss50=$P_pss50
phase bridged "$W" || exit 1

rollout_s=-1 halted=-1
if "$FLEET_BUILD/berthctl" rollout --help >/dev/null 2>&1 && [ -x tests/bench/fleet-rollout.sh ]; then
  out=$(N=$N FLEET_BUILD=$FLEET_BUILD FLEET_ROOT=$FLEET_ROOT tests/bench/fleet-rollout.sh) || say "rollout hook failed"
  eval "$(echo "$out" | grep -o 'rollout_s=[-0-9.]* halted_on_bad_canary=[-0-9]*' | tail -1 | sed 's/halted_on_bad_canary/halted/')"
else
  say "berthctl has no rollout verb (or no tests/bench/fleet-rollout.sh): rollout_s and halted_on_bad_canary are -1"
fi
say "targets: restart_online_s <= $((W + 10)), reconnect_peak_per_s <= $((2 * N / W)), telemetry_lost 0, group_cmd_p99_ms <= 2000"
echo "RESULT bench=fleet agents=$N online_s=$S_online restart_online_s=$S_restart reconnect_peak_per_s=$S_peak" \
  "telemetry_lost=$S_lost telemetry_dup=$S_dup group_cmd_p99_ms=$S_p99 group_cmd_pub_ms=$S_pub rollout_s=$rollout_s" \
  "halted_on_bad_canary=$halted agent_rss_kb_p50=$S_rss50 agent_rss_kb_p95=$S_rss95 agent_pss_kb_p50=$S_pss50 window_s=$W forward_rate=$RATE" \
  "baseline_window0_reconnect_peak_per_s=$B_peak baseline_window0_restart_online_s=$B_restart" \
  "bridged_online_s=$P_online bridged_restart_online_s=$P_restart bridged_reconnect_peak_per_s=$P_peak" \
  "bridged_telemetry_lost=$P_lost bridged_telemetry_dup=$P_dup bridged_group_cmd_p99_ms=$P_p99 bridged_group_cmd_pub_ms=$P_pub" \
  "load1=$(cut -d' ' -f1 /proc/loadavg)"
