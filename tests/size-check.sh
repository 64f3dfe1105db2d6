#!/usr/bin/env bash
# Fails when the stripped berthd grows past its budget (default 300 KB, the
# footprint promised to gateway operators). Usage: size-check.sh BINARY [STRIP]
set -eu
bin=$1; strip=${2:-strip}; budget=${BERTHD_SIZE_BUDGET:-307200}
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
"$strip" -o "$tmp" "$bin"
size=$(stat -c %s "$tmp")
echo "size: stripped $(basename "$bin") is $size bytes (budget $budget)"
[ "$size" -le "$budget" ] || { echo "size: over budget by $((size - budget)) bytes"; exit 1; }
