#!/usr/bin/env bash
# Several gateways on one machine, for the site cluster's tests and benchmark (root only): a network
# namespace per gateway, joined by veth pairs to a private bridge, each with its own podman API
# service and storage started inside its namespace (so a container's host networking is that
# gateway's network) and the test images imported. Nothing is routed off the bridge.
#
# Source it, then:
#   site_net_up N        N gateways (N <= 5); sets SITE_DIR, SITE_NS[i], SITE_IP[i], SITE_SOCK[i]
#                        for i = 1..N (10.77.0.i/24 for the site; 10.78.0.i/24 too, which the
#                        host reaches as 10.78.0.254 and partitions leave alone)
#   site_net_down        kills what runs in the namespaces, removes containers, namespaces,
#                        bridge and SITE_DIR; safe to call twice and from a trap
#   site_podman I ARGS   podman bound to gateway I's storage
#   site_exec I CMD...   runs CMD inside gateway I's namespace
#   site_cut I           partitions gateway I from the others (iptables DROP both ways)
#   site_heal I          removes that partition
#   site_links_down I    its link down (the whole gateway gone from the LAN); site_links_up I
# Needs: ip, iptables, podman, runc, curl, and the images scripts/build-worker-image.sh builds
# into $BERTH_BUILD/images.
# shellcheck shell=bash

_sn_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SITE_SUBNET=10.77.0
SITE_HOST_SUBNET=10.78.0
declare -a SITE_NS SITE_IP SITE_SOCK
SITE_N=0

_sn_log() { echo "site-net: $*" >&2; }
_sn_now_ms() { date +%s%3N; }

site_podman() {
  local d=$SITE_DIR/m$1; shift
  CONTAINERS_CONF=$SITE_DIR/containers.conf podman --root "$d/root" --runroot "$d/runroot" --tmpdir "$d/tmp" "$@"
}

# nsenter --net, not `ip netns exec`: the latter also remounts /sys for the namespace, which hides
# the cgroup mounts from runc ("no cgroup mount found in mountinfo").
site_exec() { local i=$1; shift; nsenter --net="/run/netns/${SITE_NS[$i]}" "$@"; }

_sn_engine_start() {
  local i=$1 d=$SITE_DIR/m$1 deadline
  CONTAINERS_CONF="$SITE_DIR/containers.conf" nsenter --net="/run/netns/${SITE_NS[$i]}" \
    podman --root "$d/root" --runroot "$d/runroot" --tmpdir "$d/tmp" \
    system service --time=0 "unix://$d/engine.sock" </dev/null >>"$d/engine.log" 2>&1 &
  echo $! > "$d/engine.pid"
  SITE_SOCK[$i]=$d/engine.sock
  deadline=$(( $(_sn_now_ms) + 30000 ))
  until [ -S "$d/engine.sock" ] && curl -sf -m 2 --unix-socket "$d/engine.sock" http://localhost/v1.41/_ping >/dev/null 2>&1; do
    [ "$(_sn_now_ms)" -lt $deadline ] || { _sn_log "engine $i did not answer"; tail -5 "$d/engine.log" >&2; return 1; }
    sleep 0.05
  done
}

site_net_up() {
  local n=$1 i id ns d pids=()
  [ "$(id -u)" -eq 0 ] || { _sn_log "needs root (ip netns)"; return 1; }
  [ "$n" -ge 1 ] && [ "$n" -le 5 ] || { _sn_log "1..5 gateways"; return 1; }
  BERTH_BUILD=${BERTH_BUILD:-$_sn_repo/build}
  [ -f "$BERTH_BUILD/images/berth-worker.tar" ] || "$_sn_repo/scripts/build-worker-image.sh" "$BERTH_BUILD" >&2 || return 1
  SITE_DIR=$(mktemp -d /tmp/berth-site.XXXXXX) || return 1
  export SITE_DIR
  id=$(printf '%04x' $(( $$ % 65536 )))
  echo "$id" > "$SITE_DIR/id"
  SITE_BR=bsb$id
  cat > "$SITE_DIR/containers.conf" <<EOF2
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$SITE_DIR/events.log"
EOF2
  ip link add "$SITE_BR" type bridge || return 1
  ip link set "$SITE_BR" up
  # the host's side of the bridge, on a second subnet that partitions leave alone: tests read each
  # gateway's local API from here while it is cut off from the others
  ip addr add "$SITE_HOST_SUBNET.254/24" dev "$SITE_BR"
  for i in $(seq 1 "$n"); do
    ns=bsite$id-$i; d=$SITE_DIR/m$i
    mkdir -p "$d"/{root,runroot,tmp,data}
    ip netns add "$ns" || return 1
    SITE_NS[$i]=$ns; SITE_IP[$i]=$SITE_SUBNET.$i
    echo "$ns" >> "$SITE_DIR/namespaces"
    ip link add "bsv$id$i" type veth peer name eth0 netns "$ns" || return 1
    ip link set "bsv$id$i" master "$SITE_BR" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "${SITE_IP[$i]}/24" dev eth0
    ip netns exec "$ns" ip addr add "$SITE_HOST_SUBNET.$i/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    # images straight into the private store, before its API service opens it (in parallel)
    ( site_podman "$i" import -q "$BERTH_BUILD/images/berth-busybox.tar" localhost/berth-busybox:latest >/dev/null &&
      site_podman "$i" import -q --change 'CMD=["/worker"]' "$BERTH_BUILD/images/berth-worker.tar" \
        localhost/berth-worker:latest >/dev/null ) &
    pids+=($!)
  done
  SITE_N=$n
  for i in "${pids[@]}"; do wait "$i" || { _sn_log "image import failed"; return 1; }; done
  for i in $(seq 1 "$n"); do _sn_engine_start "$i" || return 1; done
}

site_cut() {
  local i=$1
  site_exec "$i" iptables -I INPUT -s "$SITE_SUBNET.0/24" -j DROP
  site_exec "$i" iptables -I OUTPUT -d "$SITE_SUBNET.0/24" -j DROP
}
site_heal() {
  local i=$1
  site_exec "$i" iptables -D INPUT -s "$SITE_SUBNET.0/24" -j DROP 2>/dev/null || true
  site_exec "$i" iptables -D OUTPUT -d "$SITE_SUBNET.0/24" -j DROP 2>/dev/null || true
}
site_links_down() { site_exec "$1" ip link set eth0 down; }
site_links_up() { site_exec "$1" ip link set eth0 up; }

site_net_down() {
  local d=${SITE_DIR:-} i ns pid m id
  [ -n "$d" ] && [ -d "$d" ] || return 0
  case $d in /tmp/berth-site.*) ;; *) _sn_log "refusing to remove $d"; return 1;; esac
  id=$(cat "$d/id" 2>/dev/null)
  # processes inside the namespaces first (berthd, podman, conmon, containers)
  for ns in $(cat "$d/namespaces" 2>/dev/null); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for i in "$d"/m*; do
    [ -d "$i/root" ] || continue
    CONTAINERS_CONF=$d/containers.conf timeout 60 podman --root "$i/root" --runroot "$i/runroot" \
      --tmpdir "$i/tmp" rm -fa -t 0 >/dev/null 2>&1 || true
  done
  for pid in $(grep -lsF "$d/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    case $(cat "/proc/$pid/comm" 2>/dev/null) in podman|conmon|runc|berthd) kill -KILL "$pid" 2>/dev/null;; esac
  done
  for m in $(awk -v d="$d/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  for ns in $(cat "$d/namespaces" 2>/dev/null); do ip netns del "$ns" 2>/dev/null || true; done
  [ -n "$id" ] && ip link del "bsb$id" 2>/dev/null || true
  rm -rf "$d" 2>/dev/null || { sleep 0.2; rm -rf "$d"; }
  unset SITE_DIR
}
