#!/usr/bin/env bash
# scripts/fleet.sh - a fleet of berthd processes on this machine, for tests and benchmarks:
# N agents (each its own device id, data dir, config and log; all trusting one console signing
# key), no container engine by default (engine.socket ""), against one Mosquitto broker or against
# two site brokers bridged to a central one (Mosquitto's bridge). Each agent runs under an
# address-space bound (ulimit -v) so its memory is bounded; `status` reports RSS p50/p95.
#
# Usage: scripts/fleet.sh start N [options]   starts brokers and N agents; prints the settings
#        scripts/fleet.sh start N --brokers-only  brokers, key and configs only; then ...
#        scripts/fleet.sh launch               ... starts the agents (a test subscribes between)
#        scripts/fleet.sh stop                 stops agents (TERM) and brokers
#        scripts/fleet.sh status               alive agents, online (retained status), RSS p50/p95
#        scripts/fleet.sh restart-broker       restarts the brokers the agents talk to (the
#                                              central one, or both site brokers); prints the
#                                              wall time (ms) at which they were started again
#        scripts/fleet.sh rss                  the agents' RSS "p50 p95 max" and PSS "p50 p95" (kB)
#        scripts/fleet.sh env                  the settings as shell assignments (eval them)
# Options of start (and their environment variables):
#   --dir DIR          FLEET_DIR        where everything lives (default /tmp/berth-fleet)
#   --build DIR        FLEET_BUILD      berthd/berthctl build (default ./build)
#   --topology T       FLEET_TOPOLOGY   single (one broker) or bridged (agents split over two
#                                       site brokers, each bridged to the central one)
#   --groups LIST      FLEET_GROUPS     groups of every agent (default "fleet"); each agent is
#                                       also in shard-<i mod FLEET_SHARDS> (default 10 shards)
#   --window S         FLEET_WINDOW_S   broker.reconnect_window_s (default 20)
#   --rate R           FLEET_RATE       telemetry.forward_rate, backlog messages/s (default 20)
#   --interval-ms MS   FLEET_INTERVAL_MS telemetry interval (default 5000)
#   --vmem-kb KB       FLEET_VMEM_KB    address-space bound of each agent (default 131072)
#   --engine SOCK      FLEET_ENGINE     engine.socket ("" none, the default; agents sharing one
#                                       engine only see containers labelled with their own id)
# Agents are fleet-0001..fleet-N. The console key is DIR/trust/console.key (BERTH_SIGN_KEY);
# berthctl talks to the central broker: berthctl -b 127.0.0.1:$CENTRAL_PORT ...
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}; shift || true

DIR=${FLEET_DIR:-/tmp/berth-fleet}
BUILD=${FLEET_BUILD:-$here/build}
TOPOLOGY=${FLEET_TOPOLOGY:-single}
GROUPS_LIST=${FLEET_GROUPS:-fleet}
SHARDS=${FLEET_SHARDS:-10}
WINDOW_S=${FLEET_WINDOW_S:-20}
RATE=${FLEET_RATE:-20}
INTERVAL_MS=${FLEET_INTERVAL_MS:-5000}
VMEM_KB=${FLEET_VMEM_KB:-131072}
ENGINE=${FLEET_ENGINE:-}
N=0
BROKERS_ONLY=0

die() { echo "fleet: $*" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $(( 10#$t / 1000 )); }
dev_id() { printf 'fleet-%04d' "$1"; }

parse_opts() {
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) DIR=$2; shift;;
      --build) BUILD=$2; shift;;
      --topology) TOPOLOGY=$2; shift;;
      --groups) GROUPS_LIST=$2; shift;;
      --window) WINDOW_S=$2; shift;;
      --rate) RATE=$2; shift;;
      --interval-ms) INTERVAL_MS=$2; shift;;
      --vmem-kb) VMEM_KB=$2; shift;;
      --engine) ENGINE=$2; shift;;
      --brokers-only) BROKERS_ONLY=1;;
      *) die "unknown option $1 (see the head of $0)";;
    esac
    shift
  done
  case $TOPOLOGY in single|bridged) ;; *) die "--topology: single or bridged, got '$TOPOLOGY'";; esac
}

load_env() { [ -f "$DIR/fleet.env" ] || die "no fleet in $DIR (start one first)"; source "$DIR/fleet.env"; }

# broker_conf NAME PORT [CENTRAL_PORT]: DIR/broker-NAME/mosquitto.conf (with a bridge to the
# central broker when CENTRAL_PORT is given). Connections are logged with epoch-second stamps
# (the benchmark counts them per second); persistence keeps sessions and retained state across
# a restart; the queues are unbounded for the test's consumer (a lost row would look like berth's).
broker_conf() {
  local d=$DIR/broker-$1
  mkdir -p "$d"
  {
    [ "$(id -u)" -eq 0 ] && echo "user root"
    echo "listener $2 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence true"
    echo "persistence_location $d/"
    echo "autosave_interval 30"
    echo "log_dest file $d/mosquitto.log"
    echo "log_type error"; echo "log_type warning"; echo "log_type notice"; echo "log_type subscribe"
    echo "log_timestamp true"
    echo "max_queued_messages 0"
    echo "max_inflight_messages 100"
    echo "max_connections -1"
    if [ -n "${3:-}" ]; then
      echo "connection bridge-$1"
      echo "address 127.0.0.1:$3"
      echo "remote_clientid bridge-$1"
      echo "cleansession false"
      echo "topic berth/# both 1"
      echo "try_private true"
      echo "notifications false"
      echo "restart_timeout 1 5"
    fi
  } > "$d/mosquitto.conf"
}

broker_start() { # NAME PORT
  local d=$DIR/broker-$1 i
  # fd 9: /work/slot.sh's lock, if the caller holds one; a broker must not keep it past the run.
  ( ulimit -n 65536 2>/dev/null || ulimit -n 16384; exec mosquitto -c "$d/mosquitto.conf" ) </dev/null >> "$d/stdout.log" 2>&1 9>&- &
  echo $! > "$d/pid"
  for i in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$2") 2>/dev/null && return 0
    sleep 0.05
  done
  die "broker $1 did not listen on $2"
}

broker_stop() { # NAME
  local f=$DIR/broker-$1/pid p
  [ -f "$f" ] || return 0
  p=$(cat "$f"); rm -f "$f"
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$p" 2>/dev/null
}

agent_config() { # I PORT
  local id; id=$(dev_id "$1")
  local d=$DIR/agents/$id
  mkdir -p "$d"
  cat > "$d/config.json" <<EOF
{ "device_id": "$id", "data_dir": "$d/data", "log_level": "${FLEET_LOG_LEVEL:-info}",
  "api": { "enabled": false },
  "engine": { "socket": "$ENGINE" },
  "autoscale": { "enabled": false },
  "broker": { "port": $2, "keepalive_s": 30, "reconnect_min_ms": 1000, "reconnect_max_ms": 30000,
              "reconnect_window_s": $WINDOW_S },
  "telemetry": { "interval_ms": $INTERVAL_MS, "synchronous": "normal", "disk_budget_kb": 2048,
                 "forward_rate": $RATE, "state_refresh_s": 300 },
  "trust": { "keys_file": "$DIR/trust/keys.json" },
  "fleet": { "groups": "$GROUPS_LIST,shard-$(( $1 % SHARDS ))" } }
EOF
}

agent_start() { # I
  local id; id=$(dev_id "$1")
  local d=$DIR/agents/$id
  ( ulimit -v "$VMEM_KB"; exec "$BUILD/berthd" -c "$d/config.json" ) </dev/null >> "$d/berthd.log" 2>&1 9>&- &
  echo $! > "$d/pid"
}

agent_port() { # I: the broker port agent I talks to
  if [ "$TOPOLOGY" = bridged ]; then
    if [ $(( $1 % 2 )) -eq 1 ]; then echo "$SITE_A_PORT"; else echo "$SITE_B_PORT"; fi
  else
    echo "$CENTRAL_PORT"
  fi
}

fleet_start() {
  [ "$N" -ge 1 ] 2>/dev/null || die "start: N must be a positive number"
  [ -x "$BUILD/berthd" ] && [ -x "$BUILD/berthctl" ] || die "no berthd/berthctl in $BUILD (make first)"
  [ -f "$DIR/fleet.env" ] && die "a fleet is already in $DIR (stop it first)"
  mkdir -p "$DIR/trust" "$DIR/agents"
  [ -f "$DIR/trust/console.key" ] || "$BUILD/berthctl" keygen fleet-console "$DIR/trust/console.key" > "$DIR/trust/keys.json" \
    || die "keygen failed"
  CENTRAL_PORT=$(free_port); SITE_A_PORT=""; SITE_B_PORT=""
  broker_conf central "$CENTRAL_PORT"
  broker_start central "$CENTRAL_PORT"
  if [ "$TOPOLOGY" = bridged ]; then
    SITE_A_PORT=$(free_port); SITE_B_PORT=$(free_port)
    broker_conf site-a "$SITE_A_PORT" "$CENTRAL_PORT"; broker_start site-a "$SITE_A_PORT"
    broker_conf site-b "$SITE_B_PORT" "$CENTRAL_PORT"; broker_start site-b "$SITE_B_PORT"
    # A site broker forwards (and queues for the bridge) only once its bridge has connected once:
    # the agents start after both bridges are up.
    local b
    for b in site-a site-b; do
      for _ in $(seq 200); do grep -q "as bridge-$b " "$DIR/broker-central/mosquitto.log" && break; sleep 0.05; done
      grep -q "as bridge-$b " "$DIR/broker-central/mosquitto.log" || die "the bridge of $b did not connect"
    done
  fi
  cat > "$DIR/fleet.env" <<EOF
N=$N
TOPOLOGY=$TOPOLOGY
BUILD=$BUILD
CENTRAL_PORT=$CENTRAL_PORT
SITE_A_PORT=$SITE_A_PORT
SITE_B_PORT=$SITE_B_PORT
WINDOW_S=$WINDOW_S
RATE=$RATE
INTERVAL_MS=$INTERVAL_MS
VMEM_KB=$VMEM_KB
GROUPS_LIST=$GROUPS_LIST
SHARDS=$SHARDS
BERTH_SIGN_KEY=$DIR/trust/console.key
FLEET_STARTED_MS=$(now_ms)
EOF
  local i
  for i in $(seq "$N"); do agent_config "$i" "$(agent_port "$i")"; done
  [ "$BROKERS_ONLY" = 1 ] || fleet_launch
  echo "fleet: $N agents, topology $TOPOLOGY, central broker 127.0.0.1:$CENTRAL_PORT${SITE_A_PORT:+, sites $SITE_A_PORT $SITE_B_PORT}"
  echo "fleet: export BERTH_SIGN_KEY=$DIR/trust/console.key; berthctl -b 127.0.0.1:$CENTRAL_PORT ..."
}

fleet_launch() {
  local i t0
  t0=$(now_ms)
  for i in $(seq "$N"); do agent_start "$i"; done
  echo "LAUNCHED_MS=$t0" >> "$DIR/fleet.env"
}

agent_pids() { cat "$DIR"/agents/*/pid 2>/dev/null; }

fleet_stop() {
  local p pids
  pids=$(agent_pids)
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 200); do
    local alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && { alive=1; break; }; done
    [ $alive -eq 0 ] && break
    sleep 0.05
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  rm -f "$DIR"/agents/*/pid
  broker_stop site-a; broker_stop site-b; broker_stop central
  rm -f "$DIR/fleet.env"
}

# pctl: "p50 p95 max" of the numbers on stdin.
pctl() {
  sort -n | awk '{ v[NR] = $1 } END { if (!NR) { printf "0 0 0"; exit }
                   printf "%d %d %d", v[int((NR - 1) * 0.50) + 1], v[int((NR - 1) * 0.95) + 1], v[NR] }'
}

# "rss_p50 rss_p95 rss_max pss_p50 pss_p95" in kB: RSS counts the shared libraries' pages in every
# agent; PSS (proportional set size) shares them out, so N x PSS is what the fleet costs.
fleet_rss() {
  local p pids
  pids=$(agent_pids)
  echo "$(for p in $pids; do awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null; done | pctl)" \
       "$(for p in $pids; do awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null; done | pctl | cut -d' ' -f1,2)"
}

fleet_status() {
  local alive=0 p online
  for p in $(agent_pids); do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  online=$(timeout 10 mosquitto_sub -p "$CENTRAL_PORT" -t 'berth/v1/+/status' -W 2 -F '%p' 2>/dev/null | grep -c '"online":true')
  read -r p50 p95 max pss50 pss95 < <(fleet_rss)
  echo "fleet: agents=$N alive=$alive online=$online topology=$TOPOLOGY rss_kb_p50=$p50 rss_kb_p95=$p95" \
       "rss_kb_max=$max pss_kb_p50=$pss50 pss_kb_p95=$pss95"
}

# Prints the time (ms) at which the stopped broker(s) were started again: every connection after
# the restart is later than it.
fleet_restart_broker() {
  local t
  if [ "$TOPOLOGY" = bridged ]; then
    broker_stop site-a; broker_stop site-b
    t=$(now_ms)
    broker_start site-a "$SITE_A_PORT"; broker_start site-b "$SITE_B_PORT"
  else
    broker_stop central
    t=$(now_ms)
    broker_start central "$CENTRAL_PORT"
  fi
  echo "$t"
}

case $cmd in
  start) N=${1:-0}; shift || true; parse_opts "$@"; fleet_start;;
  launch) parse_opts "$@"; load_env; fleet_launch;;
  stop) parse_opts "$@"; [ -f "$DIR/fleet.env" ] || exit 0; load_env; fleet_stop;;
  status) parse_opts "$@"; load_env; fleet_status;;
  restart-broker) parse_opts "$@"; load_env; fleet_restart_broker;;
  rss) parse_opts "$@"; load_env; fleet_rss;;
  env) parse_opts "$@"; load_env; cat "$DIR/fleet.env";;
  *) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; [ -z "$cmd" ] || exit 2;;
esac
