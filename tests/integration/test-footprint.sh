#!/usr/bin/env bash
# berthd's memory stays within its budget: a short bench-footprint run (three deployments, the
# broker connected, 3 s idle, 2,000 requests) fails when idle private dirty memory grows past
# FOOTPRINT_MAX_DIRTY_KB or the requests leave more than FOOTPRINT_MAX_GROWTH_KB behind.
# Limits are the figures of docs/footprint.md plus headroom for a loaded machine's noise.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
export FOOTPRINT_IDLE_S=${FOOTPRINT_IDLE_S:-3}
export FOOTPRINT_REQUESTS=${FOOTPRINT_REQUESTS:-2000}
export FOOTPRINT_MAX_DIRTY_KB=${FOOTPRINT_MAX_DIRTY_KB:-3328}
export FOOTPRINT_MAX_GROWTH_KB=${FOOTPRINT_MAX_GROWTH_KB:-384}
exec "$here/tests/bench/bench-footprint.sh" "${BERTH_BUILD:-$here/build}"
