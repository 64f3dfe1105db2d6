#!/usr/bin/env bash
# Builds the reference worker (static) and the root filesystem tarballs of the two test images.
# Usage: scripts/build-worker-image.sh [BUILD_DIR]   (default build/)
# Outputs, rebuilt only when their inputs changed:
#   BUILD_DIR/worker                      static reference inference worker
#   BUILD_DIR/images/berth-busybox.tar    /bin/busybox (static) and its applets
#   BUILD_DIR/images/berth-worker.tar     the same plus /worker
# Import them with: podman import --change 'CMD=["/worker"]' BUILD_DIR/images/berth-worker.tar NAME
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
mkdir -p "$build/images"
build=$(cd "$build" && pwd)
src=$here/tests/fixtures/worker/worker.c
busybox=${BUSYBOX:-/bin/busybox}
HOSTCC=${HOSTCC:-gcc}

[ -x "$busybox" ] || { echo "build-worker-image: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
file_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; }
file_static "$busybox" || { echo "build-worker-image: $busybox is not static (install busybox-static)" >&2; exit 1; }

# Concurrent runs sharing a build dir take turns.
exec 9>"$build/images/.lock"
flock -w 120 9 || { echo "build-worker-image: lock timeout on $build/images/.lock" >&2; exit 1; }

newer() { # newer OUT IN...: true when OUT is missing or older than an IN
  local out=$1; shift
  [ -e "$out" ] || return 0
  local f; for f in "$@"; do [ "$f" -nt "$out" ] && return 0; done
  return 1
}

if newer "$build/worker" "$src" "$0"; then
  echo "  HOSTCC  $build/worker"
  $HOSTCC -static -O2 -s -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wformat=2 \
    -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wundef -Werror -pthread \
    -o "$build/worker.tmp" "$src" -lm
  mv "$build/worker.tmp" "$build/worker"
fi

mkrootfs() { # mkrootfs DIR: busybox, applet links, the few files a shell expects
  local d=$1
  mkdir -p "$d"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root,var/tmp}
  chmod 1777 "$d/tmp" "$d/var/tmp"
  cp "$busybox" "$d/bin/busybox"
  local a
  for a in $("$busybox" --list-full); do
    [ -e "$d/$a" ] || ln -s /bin/busybox "$d/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$d/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$d/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost\n' > "$d/etc/hosts"
}

mktar() { # mktar DIR OUT
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf "$2.tmp" .
  mv "$2.tmp" "$2"
}

tmp=$(mktemp -d "$build/images/rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if newer "$build/images/berth-busybox.tar" "$busybox" "$0"; then
  echo "  ROOTFS  $build/images/berth-busybox.tar"
  mkrootfs "$tmp/busybox"
  mktar "$tmp/busybox" "$build/images/berth-busybox.tar"
fi
if newer "$build/images/berth-worker.tar" "$busybox" "$build/worker" "$0"; then
  echo "  ROOTFS  $build/images/berth-worker.tar"
  mkrootfs "$tmp/worker"
  cp "$build/worker" "$tmp/worker/worker"
  mktar "$tmp/worker" "$build/images/berth-worker.tar"
fi
