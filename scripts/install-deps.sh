#!/usr/bin/env bash
# Installs, idempotently, every Debian package berth needs to build, test and cross-compile.
# Usage: scripts/install-deps.sh [--check] [--armhf]
#   --check  list what is missing, install nothing (exit 1 when something is)
#   --armhf  accepted for older instructions: the armhf (32-bit ARM) cross toolchain and
#            libraries are always installed now (make check cross-builds and tests armhf)
set -euo pipefail

CHECK_ONLY=0; WANT_ARMHF=0
for a in "$@"; do
  case "$a" in
    --check) CHECK_ONLY=1 ;;
    --armhf) WANT_ARMHF=1 ;;
    *) echo "usage: $0 [--check] [--armhf]" >&2; exit 2 ;;
  esac
done

HOST_PKGS=(
  gcc make pkg-config git python3 python3-kconfiglib
  libmosquitto-dev libsqlite3-dev libcjson-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev
  libraft-dev libuv1-dev iptables
  mosquitto mosquitto-clients sqlite3 curl
  podman runc busybox-static
  libcmocka-dev valgrind clang libclang-rt-14-dev iproute2 gnuplot-nox procps nginx-light strace
  docker-registry apache2-utils
  lintian debootstrap binfmt-support prometheus systemd
)
ARM64_PKGS=(
  gcc-aarch64-linux-gnu libc6-dev:arm64 libsqlite3-dev:arm64 libcjson-dev:arm64
  libmosquitto-dev:arm64 libcurl4-openssl-dev:arm64 libmicrohttpd-dev:arm64 libssl-dev:arm64
  libraft-dev:arm64 libuv1-dev:arm64 libcmocka-dev:arm64 qemu-user-static
)

ARMHF_PKGS=(
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross libc6-dev:armhf libsqlite3-dev:armhf
  libcjson-dev:armhf libmosquitto-dev:armhf libcurl4-openssl-dev:armhf
  libmicrohttpd-dev:armhf libssl-dev:armhf libcmocka-dev:armhf
)
WANT_ARMHF=1
WANTED=("${HOST_PKGS[@]}" "${ARM64_PKGS[@]}" "${ARMHF_PKGS[@]}")

# A package installed for several architectures (libfoo-dev and libfoo-dev:arm64)
# answers once per architecture: an unqualified name means the native one (or all).
NATIVE=$(dpkg --print-architecture)
installed() {
  local name=${1%%:*} arch=${1#*:}
  [ "$arch" = "$1" ] && arch="$NATIVE|all"
  dpkg-query -W -f='${Status} ${Architecture}\n' "$name" 2>/dev/null | grep -qE "^install ok installed ($arch)\$"
}
missing=()
for p in "${WANTED[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#WANTED[@]} packages present"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"
[ $CHECK_ONLY -eq 1 ] && exit 1

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "install-deps: adding the arm64 architecture for the cross build"
  $SUDO dpkg --add-architecture arm64
fi
added_armhf=0
if [ $WANT_ARMHF -eq 1 ] && ! dpkg --print-foreign-architectures | grep -qx armhf; then
  echo "install-deps: adding the armhf architecture for the 32-bit ARM cross build"
  $SUDO dpkg --add-architecture armhf
  added_armhf=1
fi
# Undo a half-working armhf set-up: an architecture whose package index cannot be
# fetched makes every later `apt-get update` fail, for everyone on the machine.
armhf_failed() {
  echo "install-deps: the armhf packages could not be installed (see apt's message above)." >&2
  if [ $added_armhf -eq 1 ] && ! dpkg-query -W -f='${Architecture}\n' 2>/dev/null | grep -qx armhf; then
    echo "install-deps: removing the armhf architecture again" >&2
    $SUDO dpkg --remove-architecture armhf
    $SUDO apt-get update -qq || true
  fi
  exit 1
}
echo "install-deps: apt-get update"
if ! $SUDO apt-get update -qq; then
  [ $WANT_ARMHF -eq 1 ] && armhf_failed
  exit 1
fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  [ $WANT_ARMHF -eq 1 ] && armhf_failed
  exit 1
fi
echo "install-deps: done"
