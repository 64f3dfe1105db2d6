#!/usr/bin/env bash
# A private image registry on loopback for the images tests (Debian's docker-registry, the CNCF
# distribution registry), inside the test services' directory ($SERVICES_DIR from
# scripts/test-services.sh, whose engine trusts plain HTTP on 127.0.0.1).
# Source it after test-services.sh and call:
#   registry_start [USER PASS]   starts it on a free port (basic auth with USER/PASS when given);
#                                exports BERTH_REGISTRY (127.0.0.1:PORT) and BERTH_REGISTRY_DIR
#   registry_stop                stops it (SIGKILL: a crash in the middle of whatever it does)
#   registry_restart             starts it again on the same port and storage
#   registry_push NAME:TAG [ENV=VALUE...] [--big MB]
#                                pushes a worker image built from the reference worker's root
#                                filesystem with the given default environment (e.g.
#                                WORKER_FAULT=crash for a broken version) and, with --big, a file of
#                                MB random megabytes (a large layer); prints its registry digest
#   registry_digest NAME:TAG     the registry's manifest digest of NAME:TAG
# Images are built with podman in a private store of their own, so the engine under test never
# holds them until it pulls them.
# shellcheck shell=bash

_tr_log() { echo "test-registry: $*" >&2; }
# the helpers of scripts/test-services.sh (free ports, time), when a test was started by it
declare -F _ts_free_port >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/test-services.sh"

registry_start() {
  [ -n "${SERVICES_DIR:-}" ] && [ -d "$SERVICES_DIR" ] || { _tr_log "no SERVICES_DIR"; return 1; }
  command -v docker-registry >/dev/null || { _tr_log "docker-registry not found (scripts/install-deps.sh)"; return 1; }
  local d=$SERVICES_DIR/registry port
  mkdir -p "$d/data"
  BERTH_REGISTRY_DIR=$d; export BERTH_REGISTRY_DIR
  port=$(cat "$d/port" 2>/dev/null || _ts_free_port)
  echo "$port" > "$d/port"
  {
    echo "version: 0.1"
    echo "log: { level: error }"
    echo "storage: { filesystem: { rootdirectory: $d/data }, delete: { enabled: true } }"
    echo "http: { addr: 127.0.0.1:$port }"
  } > "$d/config.yml"
  if [ $# -ge 2 ]; then
    htpasswd -Bbn "$1" "$2" > "$d/htpasswd" 2>/dev/null || { _tr_log "htpasswd failed"; return 1; }
    echo "auth: { htpasswd: { realm: berth-test, path: $d/htpasswd } }" >> "$d/config.yml"
    printf '%s\n%s\n' "$1" "$2" > "$d/credentials"
  fi
  BERTH_REGISTRY=127.0.0.1:$port; export BERTH_REGISTRY
  registry_restart
}

registry_restart() {
  local d=$SERVICES_DIR/registry pid deadline
  docker-registry serve "$d/config.yml" </dev/null >>"$d/log" 2>&1 &
  pid=$!
  echo "$pid" > "$d/pid"
  deadline=$(( $(_ts_now_ms) + 10000 ))
  until curl -s -o /dev/null -m 1 "http://$BERTH_REGISTRY/v2/"; do
    if ! _ts_pid_alive "$pid" || [ "$(_ts_now_ms)" -gt $deadline ]; then
      _tr_log "registry did not answer on $BERTH_REGISTRY:"; tail -3 "$d/log" >&2; return 1
    fi
    sleep 0.05
  done
}

registry_stop() {
  local d=${SERVICES_DIR:-}/registry pid
  pid=$(cat "$d/pid" 2>/dev/null) || return 0
  kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  rm -f "$d/pid"
}

# A podman bound to the registry's own build store (not the engine under test).
_tr_podman() {
  local d=$SERVICES_DIR/registry
  mkdir -p "$d/build"/{root,runroot,tmp}
  CONTAINERS_CONF=$SERVICES_DIR/containers.conf CONTAINERS_REGISTRIES_CONF=$SERVICES_DIR/registries.conf \
    podman --root "$d/build/root" --runroot "$d/build/runroot" --tmpdir "$d/build/tmp" "$@"
}

_tr_creds() {
  local f=$SERVICES_DIR/registry/credentials
  [ -f "$f" ] && echo "--creds=$(sed -n 1p "$f"):$(sed -n 2p "$f")"
}

registry_push() {
  local ref=$1 big=0 changes=('CMD=["/worker"]') rootfs tarball
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --big) big=$2; shift 2 ;;
      *) changes+=("ENV=$1"); shift ;;
    esac
  done
  rootfs=$(mktemp -d "$SERVICES_DIR/registry/rootfs.XXXXXX")
  tar -xf "$BERTH_BUILD/images/berth-worker.tar" -C "$rootfs"
  # a marker file makes each version's layer (and so its digest) its own
  echo "$ref" > "$rootfs/version"
  [ "$big" -gt 0 ] && head -c $(( big * 1000000 )) /dev/urandom > "$rootfs/model.bin"
  tarball=$rootfs.tar
  tar -C "$rootfs" -cf "$tarball" . && rm -rf "$rootfs"
  local args=() c
  for c in "${changes[@]}"; do args+=(--change "$c"); done
  _tr_podman import -q "${args[@]}" "$tarball" "$BERTH_REGISTRY/$ref" >/dev/null || { _tr_log "import $ref failed"; return 1; }
  rm -f "$tarball"
  # shellcheck disable=SC2046
  _tr_podman push -q --tls-verify=false $(_tr_creds) "$BERTH_REGISTRY/$ref" >/dev/null 2>&1 \
    || { _tr_log "push $ref failed"; return 1; }
  registry_digest "$ref"
}

registry_digest() {
  local name=${1%%:*} tag=${1##*:} auth=()
  local f=$SERVICES_DIR/registry/credentials
  [ -f "$f" ] && auth=(-u "$(sed -n 1p "$f"):$(sed -n 2p "$f")")
  curl -sI -m 5 "${auth[@]}" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$BERTH_REGISTRY/v2/$name/manifests/$tag" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}'
}
