#!/usr/bin/env bash
# Installs, idempotently, every Debian package berth needs to build, test and cross-compile.
# Usage: scripts/install-deps.sh [--check]   (--check: list what is missing, install nothing)
set -euo pipefail

HOST_PKGS=(
  gcc make pkg-config git python3 python3-kconfiglib
  libmosquitto-dev libsqlite3-dev libcjson-dev libcurl4-openssl-dev libmicrohttpd-dev
  mosquitto mosquitto-clients sqlite3 curl
  podman runc busybox-static
  libcmocka-dev valgrind clang libclang-rt-14-dev iproute2 gnuplot-nox procps
)
ARM64_PKGS=(
  gcc-aarch64-linux-gnu libc6-dev:arm64 libsqlite3-dev:arm64 libcjson-dev:arm64
  libmosquitto-dev:arm64 libcurl4-openssl-dev:arm64 libmicrohttpd-dev:arm64
  libcmocka-dev:arm64 qemu-user-static
)

missing=()
for p in "${HOST_PKGS[@]}" "${ARM64_PKGS[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all $(( ${#HOST_PKGS[@]} + ${#ARM64_PKGS[@]} )) packages present"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"
[ "${1:-}" = "--check" ] && exit 1

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "install-deps: adding the arm64 architecture for the cross build"
  $SUDO dpkg --add-architecture arm64
fi
echo "install-deps: apt-get update"
$SUDO apt-get update -qq
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
