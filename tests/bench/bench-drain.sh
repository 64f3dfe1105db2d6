#!/usr/bin/env bash
# One hour of buffered 1 Hz telemetry for 20 containers (3600 rows written by
# the real sampler) drained into a real mosquitto on loopback with berthd's
# defaults (synchronous FULL, 16 KiB batches, 8 messages in flight, rows
# deleted on PUBACK), against mosquitto_pub publishing the very same payloads
# (captured from the drain) at QoS 1 to the same broker, in the same run.
# Usage: tests/bench/bench-drain.sh [BUILD_DIR]    (BENCH_TICKS, default 3600)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/integration/lib-common.sh
source tests/integration/lib-common.sh
O=${1:-build}
TICKS=${BENCH_TICKS:-3600}
make --no-print-directory -j2 O="$O" "$O/lib/libberth-core.a" "$O/lib/libberth-linux.a" >/dev/null
${CC:-gcc} -O2 -g -std=c11 -D_GNU_SOURCE -I. -I"$O/include" -imacros "$O/include/generated/autoconf.h" \
  -include agent/base/kconfig.h -Wall -Wextra -o "$O/bench_drain" tests/bench/bench_drain.c \
  -Wl,--start-group "$O/lib/libberth-core.a" "$O/lib/libberth-linux.a" -Wl,--end-group \
  -lmosquitto -lsqlite3 -lcjson -lcurl -lmicrohttpd -lm

dir=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench-drain.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n%s\nlog_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n' \
  "$port" "$([ "$(id -u)" -eq 0 ] && echo 'user root')" "$dir/mq.log" > "$dir/mq.conf"
mosquitto -c "$dir/mq.conf" > "$dir/mq.out" 2>&1 & pids+=($!)
wait_until 5 "the broker listening on $port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || exit 1

# One consumer in both runs, so both pay the same fan-out.
mosquitto_sub -p "$port" -i bench-drain-sub -q 1 -t bench/drain > "$dir/capture" & pids+=($!)
mosquitto_sub -p "$port" -i bench-baseline-sub -q 1 -t bench/baseline > /dev/null & pids+=($!)
wait_until 5 "the consumers subscribed" mqtt_subscribed "$dir/mq.log" bench-baseline-sub bench/baseline || exit 1
wait_until 5 "the consumers subscribed" mqtt_subscribed "$dir/mq.log" bench-drain-sub bench/drain || exit 1

"$O/bench_drain" "$dir" "$port" bench/drain "$TICKS" > "$dir/drain.out" 2> "$dir/drain.err" || { cat "$dir/drain.err" >&2; exit 1; }
cat "$dir/drain.err" >&2
read -r msgs rows drain_s rss0 rss1 < <(sed -n 's/^DRAIN msgs=\([0-9]*\) rows=\([0-9]*\) drain_s=\([0-9.]*\) rss_start_kb=\([0-9]*\) rss_max_kb=\([0-9]*\)/\1 \2 \3 \4 \5/p' "$dir/drain.out")
captured() { [ "$(wc -l < "$dir/capture")" -ge "$msgs" ]; }
wait_until 10 "$msgs messages captured" captured || { echo "capture incomplete" >&2; exit 1; }

t0=$(date +%s.%N)
mosquitto_pub -p "$port" -q 1 -t bench/baseline -l < "$dir/capture"
t1=$(date +%s.%N)
awk -v m="$msgs" -v r="$rows" -v d="$drain_s" -v b0="$t0" -v b1="$t1" -v s0="$rss0" -v s1="$rss1" 'BEGIN {
  mps = m / d; bps = m / (b1 - b0);
  printf "drained %d rows in %d messages in %.2f s; mosquitto_pub sent the same %d payloads in %.2f s\n", r, m, d, m, b1 - b0
  printf "RESULT bench=drain msgs_per_s=%.0f baseline_msgs_per_s=%.0f ratio=%.2f backlog_drain_s=%.2f rss_growth_kb=%d rows=%d\n", mps, bps, mps / bps, d, s1 - s0, r }'
