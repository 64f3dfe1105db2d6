#!/usr/bin/env bash
# The berth .deb in a fresh Debian 12 root, as an operator would meet it.
# Usage: tests/deb-install.sh BUILD_DIR ARCH      (ARCH: amd64, arm64 or armhf; after `make deb`)
#   native (amd64): install with apt (dependencies from the mirror), upgrade from the previous
#   build (the same tree packaged as revision 0), a direct start as the berth user against a real
#   broker and engine (the engine socket reached through the docker group), remove, purge, and
#   `systemd-analyze security` on the installed unit (exposure at most 3.0).
#   foreign (arm64, armhf): the root runs through qemu-user binfmt; dpkg -i, then berthd
#   --version, --check-config and berthctl --help run inside it.
# The debootstrap root is kept in BUILD_DIR/debroot/bookworm-ARCH (scripts/debian-root.sh); each
# run works on a copy of it.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd); arch=$2
native=$(dpkg --print-architecture)
FAILS=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
t0=$(date +%s)

version=$(sed -n 's/^#define BERTH_VERSION "\(.*\)"$/\1/p' "$repo/agent/base/version.h")
deb=$build/debs/berth_${version}-1_${arch}.deb
[ -f "$deb" ] || { echo "deb-install: $deb missing (make deb first)"; exit 1; }
cache=$build/debroot/bookworm-$arch
"$repo/scripts/debian-root.sh" "$arch" "$cache" || { echo "deb-install: no Debian root"; exit 1; }
t_root=$(date +%s)

R=$build/debroot/run-$arch
cleanup() {
  [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null
  [ "$arch" = "$native" ] && declare -F services_stop >/dev/null && services_stop
  umount -R "$R" 2>/dev/null || umount -lR "$R" 2>/dev/null
  rm -rf "$R"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$R"; cp -a "$cache" "$R"
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"; mount --rbind /dev "$R/dev"; mount -t tmpfs tmpfs "$R/tmp"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
in_root() { env -u TMPDIR -u LD_PRELOAD LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$R" "$@"; }
cp "$deb" "$R/tmp/"
pkg=/tmp/$(basename "$deb")

if [ "$arch" != "$native" ]; then
  in_root dpkg -i "$pkg" > "$build/deb-install-$arch.log" 2>&1 \
    && ok "dpkg -i $(basename "$deb") in a bookworm $arch root" || { cat "$build/deb-install-$arch.log"; bad "dpkg -i"; }
  out=$(in_root berthd --version 2>&1) && ok "berthd --version: $out" || bad "berthd --version: $out"
  out=$(in_root berthd --check-config /etc/berth/config.json 2>&1) && ok "berthd --check-config: $out" \
    || bad "berthd --check-config: $out"
  out=$(in_root berthctl --help 2>&1) && echo "$out" | grep -q '^usage: berthctl' && ok "berthctl --help" \
    || bad "berthctl --help: $out"
  in_root getent passwd berth >/dev/null && ok "berth user created" || bad "no berth user"
  [ "$(in_root stat -c '%U %a' /var/lib/berth 2>&1)" = "berth 700" ] && ok "/var/lib/berth berth 0700" \
    || bad "/var/lib/berth: $(in_root stat -c '%U %a' /var/lib/berth 2>&1)"
  echo "deb-install: $arch root $((t_root - t0))s, tests $(( $(date +%s) - t_root ))s"
  [ "$FAILS" -eq 0 ] && { echo "deb-install $arch: all passed"; exit 0; }
  echo "deb-install $arch: $FAILS failed"; exit 1
fi

# --- native: the previous build, a real broker and engine ----------------------------------
prev=$build/debs-prev/berth_${version}-0_${arch}.deb
DEB_REVISION=0 "$repo/scripts/mkdeb.sh" "$build" "$arch" "$build/debs-prev" >/dev/null || bad "previous build"
cp "$prev" "$R/tmp/"
# shellcheck source=scripts/test-services.sh
source "$repo/scripts/test-services.sh"
export BERTH_BUILD=$build
services_start >/dev/null 2>&1 || { echo "deb-install: services failed to start"; exit 1; }

# The engine's socket as a Docker host has it: root:docker 0660, the docker group existing
# before berth is installed (postinst adds berth to it).
in_root groupadd --system docker
gid=$(in_root getent group docker | cut -d: -f3)
chgrp "$gid" "$BERTH_ENGINE_SOCK" && chmod 0660 "$BERTH_ENGINE_SOCK"
touch "$R/run/docker.sock" && mount --bind "$BERTH_ENGINE_SOCK" "$R/run/docker.sock"

in_root apt-get install -y -q "/tmp/$(basename "$prev")" > "$build/deb-install-$arch.log" 2>&1 \
  && ok "apt-get install $(basename "$prev") (dependencies from the mirror)" \
  || { tail -20 "$build/deb-install-$arch.log"; bad "apt-get install"; }
u=$(in_root getent passwd berth)
uid=$(echo "$u" | cut -d: -f3)
[ -n "$u" ] && [ "$uid" -lt 1000 ] && ok "berth system user (uid $uid, shell $(echo "$u" | cut -d: -f7))" \
  || bad "berth user: '$u'"
in_root id -nG berth | grep -qw docker && ok "berth is in the docker group" || bad "berth not in docker: $(in_root id -nG berth)"
[ "$(in_root stat -c '%U:%G %a' /var/lib/berth 2>&1)" = "berth:berth 700" ] && ok "/var/lib/berth berth:berth 0700" \
  || bad "/var/lib/berth: $(in_root stat -c '%U:%G %a' /var/lib/berth 2>&1)"
[ "$(in_root stat -c '%U:%G %a' /etc/berth/config.json 2>&1)" = "root:berth 640" ] \
  && ok "/etc/berth/config.json root:berth 0640" || bad "config: $(in_root stat -c '%U:%G %a' /etc/berth/config.json)"
in_root sh -c 'dpkg-query -W -f="\${Conffiles}\n" berth' | grep -q /etc/berth/config.json \
  && ok "/etc/berth/*.json are conffiles" || bad "no conffiles"
out=$(in_root runuser -u berth -- berthd --check-config /etc/berth/config.json 2>&1) \
  && ok "berthd --check-config (as berth) on the shipped config: $out" || bad "check-config: $out"

# The operator's edits: a device id, the engine socket, the test broker, an empty deployments file.
api_port=$(free_port 2>/dev/null || python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$R/etc/berth/config.json" "$BERTH_BROKER_PORT" "$api_port" <<'EOF'
import json, sys
p, bport, aport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = json.load(open(p))
c["device_id"] = "deb-test"; c["engine"]["socket"] = "/run/docker.sock"
c["broker"]["port"] = bport; c["api"]["port"] = aport
open(p, "w").write(json.dumps(c, indent=2) + "\n")
EOF
echo '{"version":1,"deployments":[]}' > "$R/etc/berth/deployments.json"

in_root apt-get install -y -q "$pkg" >> "$build/deb-install-$arch.log" 2>&1 </dev/null \
  && ok "upgrade to $(basename "$deb") without a conffile prompt" \
  || { tail -20 "$build/deb-install-$arch.log"; bad "upgrade"; }
v=$(in_root dpkg-query -W -f='${Version}' berth)
[ "$v" = "${version}-1" ] && ok "installed version $v" || bad "installed version '$v'"
grep -q '"deb-test"' "$R/etc/berth/config.json" && ok "the edited config.json kept on upgrade" || bad "config replaced on upgrade"
[ "$(in_root stat -c '%U:%G %a' /etc/berth/config.json 2>&1)" = "root:berth 640" ] \
  && ok "edited config still root:berth 0640" || bad "config after upgrade: $(in_root stat -c '%U:%G %a' /etc/berth/config.json)"

# A direct start as the unit would (no service manager in a chroot): berth user, its groups; a
# umask of 0022 around it, so berth.db 0600 shows berthd's own umask.
in_root sh -c 'echo $$ > /tmp/berthd.pid; umask 0022; exec setpriv --reuid=berth --regid=berth --init-groups berthd -c /etc/berth/config.json' \
  > "$build/deb-install-berthd.log" 2>&1 &
wpid=$!
for _ in $(seq 50); do [ -s "$R/tmp/berthd.pid" ] && break; sleep 0.1; done
bpid=$(cat "$R/tmp/berthd.pid")
live() { [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$api_port/v2/health/live")" = 200 ]; }
deadline=$(( $(date +%s) + 20 ))
until live || [ "$(date +%s)" -ge $deadline ]; do sleep 0.2; done
live && ok "berthd started as berth: /v2/health/live 200" || bad "berthd not live; log: $(tail -5 "$build/deb-install-berthd.log")"
until grep -q 'event=engine_connected' "$build/deb-install-berthd.log" || [ "$(date +%s)" -ge $deadline ]; do sleep 0.2; done
grep -q 'event=engine_connected' "$build/deb-install-berthd.log" && ok "engine reached through the docker group" \
  || bad "engine not reached: $(grep engine "$build/deb-install-berthd.log" | tail -2)"
st=$(mosquitto_sub -h 127.0.0.1 -p "$BERTH_BROKER_PORT" -t berth/v1/deb-test/status -C 1 -W 10 2>/dev/null)
echo "$st" | grep -q online && ok "broker: status online" || bad "broker status: '$st'"
[ "$(stat -c %u "/proc/$bpid" 2>&1)" = "$uid" ] && ok "berthd runs as uid $uid (berth)" \
  || bad "berthd runs as uid $(stat -c %u "/proc/$bpid" 2>&1)"
[ "$(stat -c %a "$R/var/lib/berth/berth.db" 2>&1)" = 600 ] && ok "berth.db 0600" \
  || bad "berth.db mode $(stat -c %a "$R/var/lib/berth/berth.db" 2>&1)"
kill -TERM "$bpid" 2>/dev/null; wait "$wpid" 2>/dev/null; bpid=
grep -q 'event=exit code=0' "$build/deb-install-berthd.log" && ok "berthd stopped cleanly on TERM" \
  || bad "no clean exit: $(tail -3 "$build/deb-install-berthd.log")"

# The unit as installed: its exposure score is at most 3.0 (test-install runs systemd-analyze verify).
U=$R/lib/systemd/system/berthd.service
if command -v systemd-analyze >/dev/null; then
  score=$(systemd-analyze security --offline=yes "$U" 2>/dev/null | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] && awk "BEGIN { exit !($score <= 3.0) }" && ok "systemd-analyze security: exposure $score (<= 3.0)" \
    || bad "systemd-analyze security: exposure '$score'"
fi

in_root apt-get remove -y -q berth >> "$build/deb-install-$arch.log" 2>&1 && ok "apt-get remove" || bad "remove"
[ ! -e "$R/usr/bin/berthd" ] && ok "remove: binaries gone" || bad "remove left /usr/bin/berthd"
[ -f "$R/var/lib/berth/berth.db" ] && ok "remove: /var/lib/berth kept (berth.db)" || bad "remove deleted the data dir"
grep -q '"deb-test"' "$R/etc/berth/config.json" 2>/dev/null && ok "remove: edited config kept" || bad "remove deleted the config"
in_root apt-get purge -y -q berth >> "$build/deb-install-$arch.log" 2>&1 && ok "apt-get purge" || bad "purge"
[ ! -e "$R/var/lib/berth" ] && ok "purge: /var/lib/berth gone" || bad "purge left /var/lib/berth"
[ ! -e "$R/etc/berth" ] && ok "purge: /etc/berth gone" || bad "purge left $(ls "$R/etc/berth")"

echo "deb-install: $arch root $((t_root - t0))s, tests $(( $(date +%s) - t_root ))s"
[ "$FAILS" -eq 0 ] && { echo "deb-install $arch: all passed"; exit 0; }
echo "deb-install $arch: $FAILS failed"; exit 1
