#!/usr/bin/env bash
# Test services for integration tests and benchmarks: a Mosquitto broker on a free loopback port
# and podman's Docker-compatible API on a unix socket, both private to one temporary directory.
#
# Source it and call the functions, or run it:
#   scripts/test-services.sh start          starts both; prints `export ...` lines to eval
#   scripts/test-services.sh stop [DIR]     stops what DIR ($SERVICES_DIR) holds, removes DIR
#   scripts/test-services.sh env  [DIR]     prints the export lines again
#
# Functions (all state lives in files under $SERVICES_DIR, so a test script run as a child
# of scripts/integration.sh can source this file and call broker_stop/broker_start or
# engine_stop/engine_start on the services its parent started):
#   services_start   broker + engine + test images; exports the variables below
#   services_stop    removes every container of this engine root, stops both, removes
#                    SERVICES_DIR; safe to call twice and from a trap
#   broker_stop      stops the broker (SIGTERM, it saves its persistence file)
#   broker_start     starts it again on the same port with the same persistence directory
#   engine_stop      stops the API service; containers keep running
#   engine_start     starts it again on the same socket and root; waits for /_ping
# Exports: SERVICES_DIR, BERTH_BROKER_PORT, BERTH_ENGINE_SOCK, BERTH_WORKER_IMAGE,
#   BERTH_BUSYBOX_IMAGE, BERTH_BUILD, CONTAINERS_CONF, BERTH_PODMAN (a podman command bound
#   to this root: "$BERTH_PODMAN" ps -a).
# Images: localhost/berth-busybox:latest (static busybox) and localhost/berth-worker:latest
# (the reference worker at /worker, its default command, plus busybox for exec probes).

_ts_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

BERTH_WORKER_IMAGE=localhost/berth-worker:latest
BERTH_BUSYBOX_IMAGE=localhost/berth-busybox:latest
export BERTH_WORKER_IMAGE BERTH_BUSYBOX_IMAGE

_ts_log() { echo "test-services: $*" >&2; }

_ts_now_ms() { date +%s%3N; }

# A free TCP port on 127.0.0.1 (the kernel picks it; the socket is closed again at once).
_ts_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

_ts_pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# _ts_kill PID [GRACE_MS]: SIGTERM, wait up to GRACE_MS (default 5000), then SIGKILL.
_ts_kill() {
  local pid=$1 grace=${2:-5000} deadline
  _ts_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  deadline=$(( $(_ts_now_ms) + grace ))
  while _ts_pid_alive "$pid" && [ "$(_ts_now_ms)" -lt $deadline ]; do
    # a zombie child of this shell counts as gone
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.05
  done
  if _ts_pid_alive "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

_ts_podman() {
  podman --root "$SERVICES_DIR/root" --runroot "$SERVICES_DIR/runroot" --tmpdir "$SERVICES_DIR/tmp" "$@"
}

# ---- broker -------------------------------------------------------------------

broker_start() {
  [ -n "${SERVICES_DIR:-}" ] && [ -d "$SERVICES_DIR" ] || { _ts_log "broker_start: no SERVICES_DIR"; return 1; }
  local d=$SERVICES_DIR/broker port try
  if _ts_pid_alive "$(cat "$d/pid" 2>/dev/null)"; then return 0; fi
  mkdir -p "$d/data"
  port=$(cat "$d/port" 2>/dev/null || true)
  if [ -n "$port" ]; then
    _ts_broker_run "$port" || return 1
  else
    # a fresh port can be taken by someone else between the probe and the bind: try another
    for try in 1 2 3; do
      port=$(_ts_free_port) || return 1
      _ts_broker_run "$port" && break
      [ $try -lt 3 ] || return 1
    done
    echo "$port" > "$d/port"
  fi
  BERTH_BROKER_PORT=$port; export BERTH_BROKER_PORT
}

# _ts_broker_run PORT: starts mosquitto on PORT; returns once it (not another process) listens.
_ts_broker_run() {
  local d=$SERVICES_DIR/broker port=$1 pid deadline
  cat > "$d/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $d/data/
autosave_interval 1
user root
log_dest file $d/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
max_queued_messages 100000
EOF
  mosquitto -c "$d/mosquitto.conf" </dev/null >>"$d/stdout.log" 2>&1 &
  pid=$!
  echo "$pid" > "$d/pid"
  deadline=$(( $(_ts_now_ms) + 5000 ))
  until ss -Hltnp "sport = :$port" 2>/dev/null | grep -q "pid=$pid,"; do
    if ! _ts_pid_alive "$pid" || [ "$(_ts_now_ms)" -gt $deadline ]; then
      _ts_log "broker did not start on port $port:"; tail -3 "$d/mosquitto.log" >&2
      _ts_kill "$pid" 500; rm -f "$d/pid"
      return 1
    fi
    sleep 0.02
  done
}

broker_stop() {
  [ -n "${SERVICES_DIR:-}" ] || return 0
  local d=$SERVICES_DIR/broker
  _ts_kill "$(cat "$d/pid" 2>/dev/null)" 5000
  rm -f "$d/pid"
}

# ---- engine -------------------------------------------------------------------

_ts_engine_ping() {
  curl -sf -m 2 --unix-socket "$BERTH_ENGINE_SOCK" http://localhost/v1.41/_ping >/dev/null 2>&1
}

engine_start() {
  [ -n "${SERVICES_DIR:-}" ] && [ -d "$SERVICES_DIR" ] || { _ts_log "engine_start: no SERVICES_DIR"; return 1; }
  local d=$SERVICES_DIR pid deadline
  BERTH_ENGINE_SOCK=$d/engine.sock; export BERTH_ENGINE_SOCK
  CONTAINERS_CONF=$d/containers.conf; export CONTAINERS_CONF
  # the test registries on loopback speak plain HTTP (scripts/test-registry.sh)
  CONTAINERS_REGISTRIES_CONF=$d/registries.conf; export CONTAINERS_REGISTRIES_CONF
  [ -f "$CONTAINERS_REGISTRIES_CONF" ] || printf '[[registry]]\nlocation = "127.0.0.1"\ninsecure = true\n' \
    > "$CONTAINERS_REGISTRIES_CONF"
  if _ts_pid_alive "$(cat "$d/engine.pid" 2>/dev/null)"; then return 0; fi
  rm -f "$BERTH_ENGINE_SOCK"
  podman --root "$d/root" --runroot "$d/runroot" --tmpdir "$d/tmp" \
    system service --time=0 "unix://$BERTH_ENGINE_SOCK" </dev/null >>"$d/engine.log" 2>&1 &
  pid=$!
  echo "$pid" > "$d/engine.pid"
  deadline=$(( $(_ts_now_ms) + 30000 ))
  until [ -S "$BERTH_ENGINE_SOCK" ] && _ts_engine_ping; do
    if ! _ts_pid_alive "$pid" || [ "$(_ts_now_ms)" -gt $deadline ]; then
      _ts_log "engine did not answer /_ping on $BERTH_ENGINE_SOCK:"; tail -5 "$d/engine.log" >&2
      _ts_kill "$pid" 1000; rm -f "$d/engine.pid"
      return 1
    fi
    sleep 0.05
  done
}

engine_stop() {
  [ -n "${SERVICES_DIR:-}" ] || return 0
  _ts_kill "$(cat "$SERVICES_DIR/engine.pid" 2>/dev/null)" 5000
  rm -f "$SERVICES_DIR/engine.pid" "$SERVICES_DIR/engine.sock"
}

# ---- all ------------------------------------------------------------------------

_ts_write_env() {
  {
    echo "export SERVICES_DIR='$SERVICES_DIR'"
    echo "export BERTH_BROKER_PORT='$BERTH_BROKER_PORT'"
    echo "export BERTH_ENGINE_SOCK='$BERTH_ENGINE_SOCK'"
    echo "export BERTH_WORKER_IMAGE='$BERTH_WORKER_IMAGE'"
    echo "export BERTH_BUSYBOX_IMAGE='$BERTH_BUSYBOX_IMAGE'"
    echo "export BERTH_BUILD='$BERTH_BUILD'"
    echo "export CONTAINERS_CONF='$CONTAINERS_CONF'"
    echo "export CONTAINERS_REGISTRIES_CONF='$CONTAINERS_REGISTRIES_CONF'"
    echo "export BERTH_PODMAN='$BERTH_PODMAN'"
  } > "$SERVICES_DIR/env"
}

services_start() {
  local t0 t1 b
  t0=$(_ts_now_ms)
  BERTH_BUILD=${BERTH_BUILD:-$_ts_repo/build}
  mkdir -p "$BERTH_BUILD" && BERTH_BUILD=$(cd "$BERTH_BUILD" && pwd); export BERTH_BUILD
  for b in mosquitto podman runc curl python3; do
    command -v "$b" >/dev/null || { _ts_log "$b not found (run scripts/install-deps.sh)"; return 1; }
  done
  SERVICES_DIR=$(mktemp -d /tmp/berth-services.XXXXXX) || return 1
  export SERVICES_DIR
  mkdir -p "$SERVICES_DIR"/{root,runroot,tmp,broker}
  CONTAINERS_CONF=$SERVICES_DIR/containers.conf; export CONTAINERS_CONF
  BERTH_ENGINE_SOCK=$SERVICES_DIR/engine.sock; export BERTH_ENGINE_SOCK
  cat > "$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$SERVICES_DIR/events.log"
tmp_dir = "$SERVICES_DIR/tmp"
EOF
  cat > "$SERVICES_DIR/podman" <<EOF
#!/bin/sh
# podman bound to this test run's private engine root
CONTAINERS_CONF='$CONTAINERS_CONF' CONTAINERS_REGISTRIES_CONF='$SERVICES_DIR/registries.conf' exec podman --root '$SERVICES_DIR/root' --runroot '$SERVICES_DIR/runroot' --tmpdir '$SERVICES_DIR/tmp' "\$@"
EOF
  chmod +x "$SERVICES_DIR/podman"
  BERTH_PODMAN=$SERVICES_DIR/podman; export BERTH_PODMAN

  "$_ts_repo/scripts/build-worker-image.sh" "$BERTH_BUILD" >&2 || { _ts_log "image build failed"; return 1; }
  t1=$(_ts_now_ms)
  broker_start || return 1
  # Imports go straight into the private store before the API service opens it.
  _ts_podman import -q "$BERTH_BUILD/images/berth-busybox.tar" "$BERTH_BUSYBOX_IMAGE" >/dev/null \
    || { _ts_log "import of $BERTH_BUSYBOX_IMAGE failed"; return 1; }
  _ts_podman import -q --change 'CMD=["/worker"]' "$BERTH_BUILD/images/berth-worker.tar" \
    "$BERTH_WORKER_IMAGE" >/dev/null || { _ts_log "import of $BERTH_WORKER_IMAGE failed"; return 1; }
  engine_start || return 1
  _ts_write_env
  _ts_log "up in $(( $(_ts_now_ms) - t0 )) ms (images $(( t1 - t0 )) ms): dir=$SERVICES_DIR" \
    "broker=127.0.0.1:$BERTH_BROKER_PORT engine=$BERTH_ENGINE_SOCK"
}

services_stop() {
  local d=${SERVICES_DIR:-} pid m
  [ -n "$d" ] && [ -d "$d" ] || return 0
  case $d in /tmp/berth-services.*) ;; *) _ts_log "refusing to remove $d"; return 1;; esac
  if [ -d "$d/root" ]; then
    CONTAINERS_CONF=$d/containers.conf timeout 60 \
      podman --root "$d/root" --runroot "$d/runroot" --tmpdir "$d/tmp" rm -fa -t 0 >/dev/null 2>&1 || true
  fi
  _ts_kill "$(cat "$d/engine.pid" 2>/dev/null)" 5000
  _ts_kill "$(cat "$d/broker/pid" 2>/dev/null)" 5000
  # Left-overs started here: podman/conmon/mosquitto naming this directory, and processes
  # inside the cgroups of this root's containers.
  for pid in $(grep -lsF "$d/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    case $(cat "/proc/$pid/comm" 2>/dev/null) in
      podman|conmon|mosquitto|runc) kill -KILL "$pid" 2>/dev/null;;
    esac
  done
  for m in "$d"/root/overlay-containers/*/; do
    m=$(basename "$m"); [ ${#m} -eq 64 ] || continue
    for pid in $(grep -ls "libpod-$m" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3); do
      kill -KILL "$pid" 2>/dev/null
    done
  done
  # Mounts podman left under the directory (overlay, shm), deepest first.
  for m in $(awk -v d="$d/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$d" 2>/dev/null || { sleep 0.2; rm -rf "$d"; }
  unset SERVICES_DIR
}

# ---- run as a command ---------------------------------------------------------------
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case ${1:-} in
    start)
      services_start || { services_stop; exit 1; }
      cat "$SERVICES_DIR/env"
      ;;
    stop)
      SERVICES_DIR=${2:-${SERVICES_DIR:-}}
      [ -n "$SERVICES_DIR" ] || { echo "usage: $0 stop SERVICES_DIR" >&2; exit 2; }
      services_stop
      ;;
    env)
      d=${2:-${SERVICES_DIR:-}}
      [ -n "$d" ] && [ -f "$d/env" ] || { echo "usage: $0 env SERVICES_DIR" >&2; exit 2; }
      cat "$d/env"
      ;;
    *)
      echo "usage: $0 start | stop [SERVICES_DIR] | env [SERVICES_DIR]" >&2
      exit 2
      ;;
  esac
fi
