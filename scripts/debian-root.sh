#!/usr/bin/env bash
# A fresh Debian 12 (bookworm) root for the package install tests, built once and kept.
# Usage: scripts/debian-root.sh ARCH DIR [PACKAGES [BASE]]
#   PACKAGES: more packages for the root, comma-separated (e.g. systemd,systemd-sysv,dbus for a
#   root that boots systemd); berth's runtime libraries are then included too. BASE: a finished
#   root of the same architecture to start from (copied, then apt-get installs PACKAGES in it:
#   about 30 s instead of a debootstrap), used when it is ready.
#   ARCH: amd64 (native), arm64 or armhf (foreign: debootstrap --foreign, then the second stage
#   runs inside the root through qemu-user-static and binfmt_misc, registered here if needed)
# DIR/.berth-root-ready marks a finished root; a later call returns at once. The mirror is the
# one this machine's apt uses. Foreign roots also get berth's runtime libraries, so that the
# package installs there with dpkg alone (apt under emulation is slow).
set -euo pipefail
arch=$1; dir=$2; extra=${3:-}; base=${4:-}
[ -f "$dir/.berth-root-ready" ] && { echo "debian-root: $dir ready (cached)"; exit 0; }
[ "$(id -u)" -eq 0 ] || { echo "debian-root: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-root: debootstrap missing (scripts/install-deps.sh)" >&2; exit 1; }
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { echo "debian-root: no Debian mirror in this machine's apt sources" >&2; exit 1; }
native=$(dpkg --print-architecture)
libs=adduser,libmosquitto1,libsqlite3-0,libcjson1,libcurl4,libmicrohttpd12
rm -rf "$dir"; mkdir -p "$(dirname "$dir")"
start=$(date +%s)
if [ -n "$extra" ] && [ -n "$base" ] && [ -f "$base/.berth-root-ready" ]; then
  cp -a "$base" "$dir" && rm -f "$dir/.berth-root-ready"
  cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
  mount -t proc proc "$dir/proc"
  env -u TMPDIR LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$dir" sh -c \
    "apt-get update -q && apt-get install -y -q --no-install-recommends $(echo "$extra,$libs" | tr , ' ') && apt-get clean" \
    > "$dir.log" 2>&1; rc=$?
  umount "$dir/proc"
  [ $rc -eq 0 ] || { tail -20 "$dir.log" >&2; exit 1; }
elif [ "$arch" = "$native" ]; then
  debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives --include="ca-certificates${extra:+,$extra,$libs}" \
    bookworm "$dir" "$mirror" > "$dir.log" 2>&1 \
    || { tail -20 "$dir.log" >&2; exit 1; }
else
  case "$arch" in arm64) q=qemu-aarch64-static; fmt=qemu-aarch64 ;; armhf) q=qemu-arm-static; fmt=qemu-arm ;;
    *) echo "debian-root: unknown architecture $arch" >&2; exit 2 ;; esac
  command -v "$q" >/dev/null || { echo "debian-root: $q missing (qemu-user-static)" >&2; exit 1; }
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e "/proc/sys/fs/binfmt_misc/$fmt" ]; then
    update-binfmts --enable "$fmt" >/dev/null 2>&1 || true
    [ -e "/proc/sys/fs/binfmt_misc/$fmt" ] || { echo "debian-root: could not register $fmt with binfmt_misc" >&2; exit 1; }
  fi
  debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives --foreign --arch="$arch" --include="$libs" bookworm "$dir" "$mirror" \
    > "$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; exit 1; }
  cp "$(command -v "$q")" "$dir/usr/bin/"
  chroot "$dir" /debootstrap/debootstrap --second-stage >> "$dir.log" 2>&1 \
    || { tail -20 "$dir.log" >&2; exit 1; }
fi
cp /etc/apt/sources.list.d/debian.sources "$dir/etc/apt/sources.list.d/" 2>/dev/null || true
touch "$dir/.berth-root-ready"
echo "debian-root: $arch root at $dir in $(( $(date +%s) - start ))s"
