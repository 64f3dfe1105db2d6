#!/usr/bin/env bash
# The berth .deb under a real systemd: a Debian 12 root with systemd booted as PID 1 in a podman
# container (podman run --rootfs ROOT --systemd=always /sbin/init), the package installed there,
# berthd.service started by systemd against the run's real broker and engine.
# Usage: tests/deb-systemd.sh BUILD_DIR        (after `make deb-amd64`; native architecture only)
# Checks: Type=notify reaches active; the watchdog (WatchdogSec lowered to 3 s by a drop-in) keeps
# berthd alive over 10 s and kills and restarts it when its loop stops (SIGSTOP); a SIGKILL'd
# berthd is restarted; `systemd-analyze security berthd.service` <= 3.0 under the running
# manager; a normal run - a deploy command from berthctl through the broker, the container
# started through the engine socket, an inference request, telemetry, `systemctl reload` - is
# never stopped by the system call filter (no restart, same MainPID, no EPERM in the journal).
# The root (make deb-test's root plus systemd, or a debootstrap with systemd when that one is not
# there) is kept in BUILD_DIR/debroot/bookworm-amd64-systemd.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
arch=$(dpkg --print-architecture)
FAILS=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
t0=$(date +%s)

version=$(sed -n 's/^#define BERTH_VERSION "\(.*\)"$/\1/p' "$repo/agent/base/version.h")
deb=$build/debs/berth_${version}-1_${arch}.deb
[ -f "$deb" ] || { echo "deb-systemd: $deb missing (make deb-$arch first)"; exit 1; }
command -v podman >/dev/null || { echo "deb-systemd: podman missing (scripts/install-deps.sh)"; exit 1; }
cache=$build/debroot/bookworm-$arch-systemd
"$repo/scripts/debian-root.sh" "$arch" "$cache" systemd,systemd-sysv,dbus "$build/debroot/bookworm-$arch" \
  || { echo "deb-systemd: no Debian root"; exit 1; }
t_root=$(date +%s)

W=$build/debroot/systemd-run
R=$W/root
NAME=berth-systemd-$$
# shellcheck source=scripts/test-services.sh
source "$repo/scripts/test-services.sh"
export BERTH_BUILD=$build
# podman refuses a runroot path longer than 50 characters (a clone in a deep directory has one):
# the runroot gets a short directory of its own.
RR=$(mktemp -d /tmp/berth-sd.XXXXXX)
P() { CONTAINERS_CONF=$W/containers.conf podman --root "$W/proot" --runroot "$RR" --tmpdir "$W/ptmp" "$@"; }
cleanup() {
  P rm -f -t 5 "$NAME" >/dev/null 2>&1
  declare -F services_stop >/dev/null && services_stop
  # podman can leave its storage's overlay directory mounted on itself: unmount what is left
  # under the work directories, deepest first, or rm -rf stops at a busy mount.
  local m
  for m in $(awk -v w="$W/" -v r="$RR/" 'index($2, w) == 1 || index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$W" "$RR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$W"; mkdir -p "$W"; cp -a "$cache" "$R"
cat > "$W/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
services_start >/dev/null 2>&1 || { echo "deb-systemd: services failed to start"; exit 1; }

# The engine's socket as a Docker host has it: root:docker 0660, the group there before berth.
chroot "$R" groupadd --system docker
gid=$(chroot "$R" getent group docker | cut -d: -f3)
chgrp "$gid" "$BERTH_ENGINE_SOCK" && chmod 0660 "$BERTH_ENGINE_SOCK"
cp "$deb" "$R/root/"
api_port=$(_ts_free_port)

# systemd as PID 1: host network (the broker and the API on loopback), the engine socket mounted.
if ! P run -d --name "$NAME" --systemd=always --network host \
     -v "$BERTH_ENGINE_SOCK:/run/docker.sock" --rootfs "$R" /sbin/init > "$W/run.log" 2>&1; then
  echo "deb-systemd: podman run --systemd=always failed: $(cat "$W/run.log")"; exit 1
fi
X() { P exec "$NAME" "$@"; }
state=
for _ in $(seq 60); do
  state=$(X systemctl is-system-running 2>/dev/null); case $state in running|degraded) break ;; esac; sleep 0.5
done
case $state in running|degraded) ok "systemd booted as PID 1 in the container ($state)" ;;
  *) bad "systemd did not boot: '$state'"; P logs "$NAME" 2>&1 | tail -20; exit 1 ;; esac

X dpkg -i "/root/$(basename "$deb")" > "$W/dpkg.log" 2>&1 && ok "dpkg -i $(basename "$deb")" \
  || { tail -20 "$W/dpkg.log"; bad "dpkg -i"; }
X systemctl stop berthd 2>/dev/null
# The console's signing key: berthd refuses unsigned commands; it trusts this key list.
"$build/berthctl" keygen sd-console "$W/console.key" > "$R/etc/berth/keys.json" || bad "berthctl keygen"
chroot "$R" chgrp berth /etc/berth/keys.json && chmod 0640 "$R/etc/berth/keys.json"
export BERTH_SIGN_KEY=$W/console.key
python3 - "$R/etc/berth/config.json" "$BERTH_BROKER_PORT" "$api_port" <<'EOF'
import json, sys
p, bport, aport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = json.load(open(p))
c["device_id"] = "sd-test"; c["engine"]["socket"] = "/run/docker.sock"; c["engine"]["timeout_ms"] = 20000
c["trust"] = {"keys_file": "/etc/berth/keys.json"}
c["broker"]["port"] = bport; c["api"]["port"] = aport; c["telemetry"]["interval_ms"] = 1000
open(p, "w").write(json.dumps(c, indent=2) + "\n")
EOF
echo '{"version":1,"deployments":[]}' > "$R/etc/berth/deployments.json"
mkdir -p "$R/etc/systemd/system/berthd.service.d"
printf '[Service]\nWatchdogSec=3\n' > "$R/etc/systemd/system/berthd.service.d/watchdog.conf"
X systemctl daemon-reload
show() { X systemctl show -p "$1" --value berthd 2>/dev/null; }

# --- Type=notify: active only once berthd said READY=1
t_start=$(date +%s%N)
X systemctl start berthd > "$W/start.log" 2>&1; rc=$?
t_ready=$(( ($(date +%s%N) - t_start) / 1000000 ))
[ $rc -eq 0 ] && [ "$(show ActiveState)" = active ] && [ "$(show Type)" = notify ] \
  && ok "Type=notify: systemctl start returned active after READY=1 (${t_ready} ms)" \
  || bad "start rc=$rc state=$(show ActiveState): $(cat "$W/start.log"; X journalctl -u berthd --no-pager | tail -5)"
pid0=$(show MainPID)
[ "$(X stat -c %U "/proc/$pid0" 2>&1)" = berth ] && ok "berthd (pid $pid0 in the container) runs as berth" \
  || bad "berthd user: $(X stat -c %U "/proc/$pid0" 2>&1)"
live() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/v2/health/live")" = 200 ]; }
live && ok "the local API answers on $api_port" || bad "local API not live"

# --- the watchdog: WATCHDOG=1 from the loop keeps it alive...
sleep 10
[ "$(show MainPID)" = "$pid0" ] && [ "$(show NRestarts)" = 0 ] && [ "$(show ActiveState)" = active ] \
  && ok "watchdog 3 s: still the same berthd after 10 s ($(show WatchdogUSec))" \
  || bad "watchdog: pid $(show MainPID) restarts $(show NRestarts) state $(show ActiveState)"

# --- a normal run under the system call filter: a command, a container, a request, telemetry, reload
CTL=("$build/berthctl" -b "127.0.0.1:$BERTH_BROKER_PORT" --timeout 30)
wport=$(_ts_free_port)
cat > "$W/deploy.json" <<EOF
{"version":2,"deployments":[{"name":"w","image":"$BERTH_WORKER_IMAGE","replicas":{"min":1,"max":1,"desired":1},
 "inference":{"port":$wport},"readiness":{"type":"http","path":"/v2/health/ready","period_ms":200,"timeout_ms":1000}}]}
EOF
"${CTL[@]}" deploy sd-test "$W/deploy.json" > "$W/deploy.out" 2>&1 && ok "berthctl deploy through the broker: $(tail -1 "$W/deploy.out")" \
  || bad "deploy: $(cat "$W/deploy.out")"
code=000
for _ in $(seq 100); do
  code=$(curl -s -m 5 -o "$W/infer.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}' "http://127.0.0.1:$api_port/v2/models/w/infer")
  [ "$code" = 200 ] && break; sleep 0.3
done
[ "$code" = 200 ] && ok "an inference request through berthd to the worker it started: 200" || bad "infer: $code $(cat "$W/infer.out")"
"${CTL[@]}" telemetry sd-test > "$W/telem.out" 2>&1 && [ -s "$W/telem.out" ] && ok "telemetry arrives on the broker" \
  || bad "telemetry: $(head -3 "$W/telem.out")"
sed -i 's/"interval_ms": 1000/"interval_ms": 2000/; s/"migrate_after_failures": 10/"migrate_after_failures": 11/' "$R/etc/berth/config.json"
X systemctl reload berthd && sleep 1
X journalctl -u berthd --no-pager -o cat | grep -c >/dev/null 'event=reloaded changed=telemetry.interval_ms,supervisor.migrate_after_failures applied=telemetry.interval_ms needs_restart=supervisor.migrate_after_failures' \
  && ok "systemctl reload: $(X journalctl -u berthd --no-pager -o cat | grep 'event=reloaded' | tail -1)" \
  || bad "reload: $(X journalctl -u berthd --no-pager -o cat | tail -3)"
jr=$(X journalctl -u berthd --no-pager -o cat)
[ "$(show MainPID)" = "$pid0" ] && [ "$(show NRestarts)" = 0 ] \
  && ! echo "$jr" | grep -ciE >/dev/null 'operation not permitted|status=31/SYS|seccomp' \
  && ok "the system call filter let the whole run through (same pid, no restart, no EPERM in the journal)" \
  || bad "filter: pid $(show MainPID) restarts $(show NRestarts): $(echo "$jr" | grep -iE 'not permitted|SYS' | head -3)"
warn=$(X journalctl -u berthd --no-pager -o cat -p warning)
echo "$warn" | grep -c >/dev/null 'event=reload_keys_refused' && ! echo "$warn" | grep -c >/dev/null 'event=reloaded ' && ! echo "$jr" | grep -c >/dev/null '^<[0-7]>' \
  && ok "journald files each line at its priority (-p warning: the wrn line, not the inf ones; no raw <N>)" \
  || bad "priorities: $(echo "$warn" | tail -3)"

# --- ...and kills a stalled loop
X /bin/sh -c "kill -STOP $pid0"
pid1=$pid0
for _ in $(seq 40); do pid1=$(show MainPID); [ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] && break; sleep 0.5; done
[ "$pid1" != "$pid0" ] && X journalctl -u berthd --no-pager | grep -c >/dev/null 'Watchdog timeout' \
  && ok "a stopped loop: systemd's watchdog killed berthd and started pid $pid1" \
  || bad "watchdog did not fire: pid $pid1 $(X journalctl -u berthd --no-pager | tail -3)"

# --- a SIGKILL'd berthd is restarted
for _ in $(seq 40); do [ "$(show ActiveState)" = active ] && break; sleep 0.5; done
n0=$(show NRestarts)
X /bin/sh -c "kill -KILL $pid1"
pid2=$pid1
for _ in $(seq 40); do pid2=$(show MainPID); [ "$pid2" != "$pid1" ] && [ "$pid2" != 0 ] && [ "$(show ActiveState)" = active ] && break; sleep 0.5; done
[ "$pid2" != "$pid1" ] && [ "$(show NRestarts)" -gt "$n0" ] && ok "SIGKILL: restarted as pid $pid2 (NRestarts $(show NRestarts))" \
  || bad "no restart after SIGKILL: pid $pid2 state $(show ActiveState)"
for _ in $(seq 40); do live && break; sleep 0.5; done
live && ok "the restarted berthd answers" || bad "restarted berthd not live"

# --- the exposure score under the running manager
score=$(X systemd-analyze security berthd.service 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] && awk "BEGIN { exit !($score <= 3.0) }" && ok "systemd-analyze security berthd.service: $score (<= 3.0)" \
  || bad "systemd-analyze security: '$score'"
X systemctl stop berthd
exited() { X journalctl -u berthd --no-pager -o cat | grep 'event=exit code=0' >/dev/null; } # whole input read: no SIGPIPE under pipefail
for _ in $(seq 20); do exited && break; sleep 0.5; done # the journal takes the last line a moment later
[ "$(show ActiveState)" = inactive ] && exited && ok "systemctl stop: clean exit" \
  || bad "stop: $(show ActiveState); last lines: $(X journalctl -u berthd --no-pager -o cat | tail -n 4 | tr '\n' '|')"

echo "deb-systemd: root $((t_root - t0))s, tests $(( $(date +%s) - t_root ))s"
[ "$FAILS" -eq 0 ] && { echo "deb-systemd: all passed"; exit 0; }
echo "deb-systemd: $FAILS failed"; exit 1
