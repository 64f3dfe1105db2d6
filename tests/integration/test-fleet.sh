#!/usr/bin/env bash
# A fleet of 100 berthd (scripts/fleet.sh, no container engine) on one broker, then on two site
# brokers bridged to a central one. In each topology: every agent comes online; a group command
# signed for group:fleet gets one reply from every agent (each on its own topic, naming itself);
# after the agents' broker restarts, every agent is online again within the reconnect window + 10 s,
# the broker saw at most 2 x N / window connections in any second, and once the backlogs drained
# no telemetry row is missing. Each agent's memory is bounded (ulimit -v) and its RSS reported.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/integration/lib-common.sh
source "$here/lib-common.sh"
FLEET_BUILD=${BERTH_BUILD:-$(cd "$here/../.." && pwd)/build}
FLEET_ROOT=$(mktemp -d /tmp/berth-fleet-test.XXXXXX)
# shellcheck source=tests/integration/lib-fleet.sh
source "$here/lib-fleet.sh"
N=${FLEET_N:-100}
WINDOW=${FLEET_TEST_WINDOW_S:-5}
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() { fleet_down; rm -rf "$FLEET_ROOT"; }
trap cleanup EXIT INT TERM

run_topology() {
  local topo=$1 t r secs n p50 p99 restart_ms peak lost dup rss
  fleet_up "$N" "$topo" --window "$WINDOW" --rate 20 --interval-ms 2000 || fail "$topo: fleet did not start"
  secs=$(fleet_online "$N" "$LAUNCHED_MS" 60) || fail "$topo: not every agent came online: $secs"
  echo "ok: $topo: $N agents online in ${secs} s"

  fleet_group_cmd fleet "ping-$topo" || fail "$topo: group command not sent"
  r=$(fleet_replies "ping-$topo" "$N" 30) || fail "$topo: replies to the group command: $r"
  read -r n p50 p99 _ ok pub <<< "$r"
  [ "$ok" -eq "$N" ] || fail "$topo: $ok of $N replies ok"
  [ "$pub" -ge 0 ] || fail "$topo: the consumer never saw the group command itself"
  echo "ok: $topo: a group command answered by all $N agents (p50 ${p50} ms, p99 ${p99} ms from its arrival; the publisher took ${pub} ms to send it)"

  restart_ms=$("$FLEET_SH" restart-broker) || fail "$topo: broker restart failed"
  secs=$(fleet_online "$N" "$restart_ms" $((WINDOW + 30))) || fail "$topo: not every agent back after the restart: $secs"
  awk -v s="$secs" -v w="$WINDOW" 'BEGIN { exit !(s <= w + 10) }' || fail "$topo: back online in $secs s, more than $WINDOW + 10 s"
  read -r peak _ <<< "$(fleet_probe peak $((restart_ms / 1000)) $(fleet_broker_logs))"
  [ "$peak" -le $((2 * N / WINDOW)) ] || fail "$topo: $peak connections in one second, more than 2 x $N / $WINDOW"
  echo "ok: $topo: after a broker restart all $N online in ${secs} s (window ${WINDOW} s), peak ${peak} connections/s"

  r=$(fleet_telemetry_settled 40)
  read -r n _ _ lost dup <<< "$r"
  [ "$n" -eq "$N" ] || fail "$topo: telemetry from $n of $N agents"
  [ "$lost" -eq 0 ] || fail "$topo: $lost telemetry rows missing ($r)"
  read -r p50 p95 _ <<< "$("$FLEET_SH" rss)"
  echo "ok: $topo: telemetry of $N agents: none missing, $dup duplicate rows; agent RSS p50 ${p50} kB p95 ${p95} kB"
  fleet_down
}

run_topology single
run_topology bridged
echo PASS
