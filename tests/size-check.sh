#!/usr/bin/env bash
# Fails when the stripped berthd grows past its budget (default 320 KiB: it was 300 KiB for the
# four-flow agent; images, trust, the flood guard, the durable reply queue and the operability
# work of the second round took it past that - docs/footprint.md). Usage: size-check.sh BINARY [STRIP]
set -eu
bin=$1; strip=${2:-strip}; budget=${BERTHD_SIZE_BUDGET:-327680}
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
"$strip" -o "$tmp" "$bin"
size=$(stat -c %s "$tmp")
echo "size: stripped $(basename "$bin") is $size bytes (budget $budget)"
[ "$size" -le "$budget" ] || { echo "size: over budget by $((size - budget)) bytes"; exit 1; }
