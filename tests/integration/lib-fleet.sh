# tests/integration/lib-fleet.sh - a fleet run for test-fleet and bench-fleet: scripts/fleet.sh's
# agents, a console-side consumer on the central broker, and the figures (fleet_probe.py).
# Source it after lib-common.sh; set FLEET_BUILD (build dir) and FLEET_ROOT (scratch dir) first.
# shellcheck shell=bash

FLEET_SH=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/fleet.sh
FLEET_PROBE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fleet_probe.py
FLEET_CONSUMER_PID=""

# fleet_up N TOPOLOGY [fleet.sh options...]: brokers, the consumer (persistent session, QoS 1:
# status, telemetry, events, replies of every device), then the agents. Sets FLEET_DIR, the
# fleet's settings (CENTRAL_PORT, ...) and LAUNCHED_MS.
fleet_up() {
  local n=$1 topo=$2; shift 2
  export FLEET_DIR=$FLEET_ROOT/fleet-$topo FLEET_BUILD
  "$FLEET_SH" start "$n" --topology "$topo" --brokers-only "$@" > "$FLEET_ROOT/fleet-$topo.out" || return 1
  source "$FLEET_DIR/fleet.env"
  export BERTH_SIGN_KEY
  FLEET_OUT=$FLEET_DIR/consumer.out
  mosquitto_sub -V mqttv5 -p "$CENTRAL_PORT" -q 1 -c -i "fleet-console" -x 3600 -F '%U %t %p' \
    -t 'berth/v1/+/status' -t 'berth/v1/+/telemetry' -t 'berth/v1/+/events' -t 'berth/v1/+/cmd/+/reply' \
    -t 'berth/v1/group/+/cmd/+' \
    >> "$FLEET_OUT" 2>> "$FLEET_DIR/consumer.err" &
  FLEET_CONSUMER_PID=$!
  wait_until 5 "the consumer subscribed" grep -q 'fleet-console 1 berth/v1/group/+/cmd/+' \
    "$FLEET_DIR/broker-central/mosquitto.log" || return 1
  "$FLEET_SH" launch || return 1
  source "$FLEET_DIR/fleet.env"
}

fleet_down() {
  [ -n "${FLEET_DIR:-}" ] || return 0
  "$FLEET_SH" stop
  [ -z "$FLEET_CONSUMER_PID" ] || { kill "$FLEET_CONSUMER_PID" 2>/dev/null; wait "$FLEET_CONSUMER_PID" 2>/dev/null; }
  FLEET_CONSUMER_PID=""
}

fleet_probe() { /usr/bin/python3 "$FLEET_PROBE" "$@"; }

# fleet_online N SINCE_MS TIMEOUT_S: waits until every agent said online (status ts >= SINCE_MS);
# prints the seconds it took (from the status' own time stamps), or fails.
fleet_online() {
  local r
  _fo_all() { r=$(fleet_probe online "$FLEET_OUT" "$1" "$2"); [ "${r%% *}" != -1 ]; }
  wait_until "$3" "all $1 agents online since $2" _fo_all "$1" "$2" || { echo "${r:-}"; return 1; }
  echo "${r%% *}"
}

# fleet_group_cmd GROUP ID: a ping signed for group:GROUP published on its group topic (central
# broker); sets CMD_T0_MS.
fleet_group_cmd() {
  local msg
  msg=$(printf '{"id":"%s","verb":"ping"}' "$2" | "$FLEET_BUILD/berthctl" sign command "$1" - --target "group:$1") || return 1
  CMD_T0_MS=$(now_ms)
  mosquitto_pub -p "$CENTRAL_PORT" -q 1 -t "berth/v1/group/$1/cmd/ping" -m "$msg"
}

# fleet_replies ID N TIMEOUT_S: waits for N distinct devices' replies to ID; prints
# "count p50_ms p99_ms max_ms ok pub_ms" (fleet_probe replies: times from the command's arrival
# at the consumer, pub_ms the publisher's start and connect before it).
fleet_replies() {
  local r
  _fr_all() { r=$(fleet_probe replies "$FLEET_OUT" "$1" "$CMD_T0_MS"); [ "${r%% *}" -ge "$2" ]; }
  wait_until "$3" "$2 replies to $1" _fr_all "$1" "$2" || { echo "${r:-}"; return 1; }
  echo "$r"
}

# fleet_broker_logs: the logs of the brokers the agents connect to.
fleet_broker_logs() {
  if [ "$TOPOLOGY" = bridged ]; then echo "$FLEET_DIR/broker-site-a/mosquitto.log $FLEET_DIR/broker-site-b/mosquitto.log"
  else echo "$FLEET_DIR/broker-central/mosquitto.log"; fi
}

# fleet_telemetry_settled TIMEOUT_S: waits until no row is missing (the backlogs drained);
# prints "devices rows unique lost dup" as it stands then.
fleet_telemetry_settled() {
  local r
  _ft_ok() { r=$(fleet_probe telemetry "$FLEET_OUT"); set -- $r; [ "$4" -eq 0 ]; }
  wait_until "$1" "no telemetry row missing" _ft_ok || true
  echo "$r"
}
