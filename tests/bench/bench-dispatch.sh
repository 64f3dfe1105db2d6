#!/usr/bin/env bash
# The real inference path: berthd with two reference-worker replicas on the real engine, a slice
# of the Azure trace replayed through the local API with keep-alive (tests/bench/loadgen.c),
# against the same slice sent straight to the two workers in the same run (the client balancing
# over them by itself). Overhead = berth latency - direct latency, matched by percentile.
# Then CPU per proxied request against nginx: BENCH_CPU_REQUESTS (4000) zero-cost requests over 16
# keep-alive connections, 2 per ms, through berthd and through Debian's nginx-light (installed by
# scripts/install-deps.sh when missing; a private config on a free loopback port, one worker
# process, the two workers as an upstream with keep-alive), in the order berth, nginx, nginx, berth;
# each side's CPU time (utime + stime of its processes, /proc/PID/stat) divided by its requests.
# Then scheduling on the real path (tests/bench/dispatch-sched.sh): a slice of the trace with its
# sizes through berthd supervising the three models as deployments, edf-mc against edf-preempt in
# the same run; its urgent misses and on-time shares join the RESULT line.
# Usage: tests/bench/bench-dispatch.sh [BUILD_DIR]
# Env: BENCH_LIMIT (requests, default 300), BENCH_SPEEDUP (default 3), BENCH_COST_SCALE (0.25);
# BENCH_CPU_REQUESTS (4000);
# BENCH_SCHED_* (dispatch-sched.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
export BERTH_BUILD=$build
TRACE=${BERTH_TRACE:-$here/tests/fixtures/traces/azure-code-1h.csv}
[ -f "$TRACE" ] || TRACE=/work/shared/traces/azure-code-1h.csv
LIMIT=${BENCH_LIMIT:-300}
SPEEDUP=${BENCH_SPEEDUP:-3}
COST_SCALE=${BENCH_COST_SCALE:-0.25}
[ -x "$build/berthd" ] || { echo "bench-dispatch: $build/berthd missing (run make)" >&2; exit 1; }

# shellcheck source=scripts/test-services.sh
source "$here/scripts/test-services.sh"
own=""
if [ -z "${SERVICES_DIR:-}" ]; then own=1; services_start; fi

# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"
tmp=$(mktemp -d)
containers=()
berthd_pid=""
nginx_pid=""
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
  scratch_cleanup
}
trap cleanup EXIT
command -v nginx > /dev/null || "$here/scripts/install-deps.sh" > /dev/null \
  || { echo "bench-dispatch: nginx missing and scripts/install-deps.sh failed" >&2; exit 1; }
is200() { [ "$(T=2 code "$1")" = 200 ]; }

${CC:-cc} -O2 -o "$tmp/loadgen" "$here/tests/bench/loadgen.c"

ports=()
for i in 0 1; do
  p=$(free_port); ports+=("$p")
  worker_run "berth-bench-dispatch-$$-$i" "bench-dispatch-$$" "$i" "$p" WORKER_CONCURRENCY=1 || exit 1
done
for p in "${ports[@]}"; do wait_until 15 "worker $p ready" is200 "http://127.0.0.1:$p/v2/health/ready" || { echo "worker $p not ready" >&2; exit 1; }; done

api_port=$(free_port)
cat > "$tmp/config.json" <<EOF
{ "device_id": "bench-dispatch", "data_dir": "$tmp", "log_level": "wrn",
  "engine": { "socket": "$BERTH_ENGINE_SOCK" }, "broker": { "enabled": false },
  "api": { "port": $api_port, "static_replicas": "m=127.0.0.1:${ports[0]},m=127.0.0.1:${ports[1]}" },
  "scheduler": { "slots": 2, "policy": "edf-admit" } }
EOF
"$build/berthd" -c "$tmp/config.json" > "$tmp/berthd.log" 2>&1 &
berthd_pid=$!
wait_until 10 "berthd's /v2/health/ready" is200 "http://127.0.0.1:$api_port/v2/health/ready" || { cat "$tmp/berthd.log" >&2; exit 1; }

half=$(( (LIMIT + 1) / 2 ))
args=(--trace "$TRACE" --model m --limit "$half" --speedup "$SPEEDUP" --cost-scale "$COST_SCALE" --conns 64)
echo "bench-dispatch: first $half requests of $(basename "$TRACE") replayed 4 times (direct, berth, berth, direct), speedup $SPEEDUP, costs x$COST_SCALE, 2 replicas, 2 slots, edf-admit"
# ABBA order, so that a drift in the machine's load (it is shared) falls on both sides alike.
run() { # run NAME N TARGETS
  "$tmp/loadgen" "${args[@]}" --target "$3" --raw "$tmp/$1.$2.csv" > "$tmp/$1.$2.out"
  echo "  $1 run $2: $(tail -1 "$tmp/$1.$2.out" | sed 's/^LOADGEN //')"
}
direct_t="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}"
berth_t="127.0.0.1:$api_port"
run direct 1 "$direct_t"; run berth 1 "$berth_t"; run berth 2 "$berth_t"; run direct 2 "$direct_t"

# pct FILE... P: percentile P of the latencies of requests answered 200
pct() { local p=${*: -1}; cat "${@:1:$#-1}" | awk -F, '$3 == 200 {print $1}' | sort -n \
  | awk -v p="$p" '{a[NR]=$1} END {i=int(p/100*(NR-1)+0.5)+1; printf "%.3f", a[i]}'; }
miss() { cat "$@" | awk -F, '$2 == "urgent" {n++; if ($3 != 200 || $1 < 0 || $1 > $4) m++} END {printf "%.2f", n ? 100*m/n : 0}'; }
d50=$(pct "$tmp"/direct.*.csv 50); d99=$(pct "$tmp"/direct.*.csv 99)
b50=$(pct "$tmp"/berth.*.csv 50); b99=$(pct "$tmp"/berth.*.csv 99)
o50=$(awk -v a="$b50" -v b="$d50" 'BEGIN {printf "%.3f", a-b}')
o99=$(awk -v a="$b99" -v b="$d99" 'BEGIN {printf "%.3f", a-b}')
own50=$(tail -qn1 "$tmp"/berth.*.out | tr ' ' '\n' | sed -n 's/^overhead_p50_ms=//p' | sort -n | tail -1)
own99=$(tail -qn1 "$tmp"/berth.*.out | tr ' ' '\n' | sed -n 's/^overhead_p99_ms=//p' | sort -n | tail -1)
echo "latency ms: direct p50 $d50 p99 $d99 | berth p50 $b50 p99 $b99"
echo "berth's own time per request (latency - X-Berth-Queue-Ms - X-Berth-Service-Ms, worse run): p50 $own50 ms, p99 $own99 ms"
echo "targets: overhead p50 <= 0.5 ms: $(awk -v x="$o50" 'BEGIN {print (x <= 0.5) ? "met" : "MISSED"}'), p99 <= 2 ms: $(awk -v x="$o99" 'BEGIN {print (x <= 2) ? "met" : "MISSED"}')"

# CPU per proxied request: berthd against nginx on the same two workers.
CPU_N=${BENCH_CPU_REQUESTS:-4000}
nginx_port=$(free_port)
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx/nginx.conf" <<EOF
daemon off; worker_processes 1; pid $tmp/nginx/pid; error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  upstream workers { server 127.0.0.1:${ports[0]}; server 127.0.0.1:${ports[1]}; keepalive 32; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://workers; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
nginx -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
nginx_pid=$!
nginx_up() { [ "$(T=1 code "http://127.0.0.1:$nginx_port/v2/health/ready")" = 200 ]; }
wait_until 10 "nginx on port $nginx_port" nginx_up || { cat "$tmp/nginx/error.log" >&2; exit 1; }
awk -v n="$CPU_N" 'BEGIN {print "t_ms,model,deadline_ms,class,cost_ms"; for (i = 0; i < n; i++) printf "%.1f,m,1000,normal,0\n", i / 2}' > "$tmp/zero.csv"
ticks() { # CPU ticks of PID and its children
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
declare -A cpu_ticks=([berth]=0 [nginx]=0) cpu_n=([berth]=0 [nginx]=0)
cpu_run() { # NAME PID PORT
  local c0 c1
  c0=$(ticks "$2")
  "$tmp/loadgen" --trace "$tmp/zero.csv" --model m --target "127.0.0.1:$3" --conns 16 > "$tmp/cpu.$1.out"
  c1=$(ticks "$2")
  cpu_ticks[$1]=$(( ${cpu_ticks[$1]} + c1 - c0 ))
  cpu_n[$1]=$(( ${cpu_n[$1]} + $(tail -1 "$tmp/cpu.$1.out" | tr ' ' '\n' | sed -n 's/^ok=//p') ))
  echo "  $1: $((c1 - c0)) ticks for $CPU_N requests ($(tail -1 "$tmp/cpu.$1.out" | cut -d' ' -f2-6)), load average $(cut -d' ' -f1 /proc/loadavg)"
}
echo "CPU per proxied request: $CPU_N zero-cost requests, 16 connections, berth, nginx, nginx, berth"
"$tmp/loadgen" --trace "$tmp/zero.csv" --model m --target "127.0.0.1:$nginx_port" --limit 200 --conns 16 > /dev/null
cpu_run berth "$berthd_pid" "$api_port"; cpu_run nginx "$nginx_pid" "$nginx_port"
cpu_run nginx "$nginx_pid" "$nginx_port"; cpu_run berth "$berthd_pid" "$api_port"
hz=$(getconf CLK_TCK)
cpu_us() { awk -v t="${cpu_ticks[$1]}" -v n="${cpu_n[$1]}" -v hz="$hz" 'BEGIN {printf "%.1f", n ? t * 1e6 / hz / n : -1}'; }
berth_cpu=$(cpu_us berth); nginx_cpu=$(cpu_us nginx)
cpu_ratio=$(awk -v a="$berth_cpu" -v b="$nginx_cpu" 'BEGIN {printf "%.2f", (b > 0 ? a / b : -1)}')
echo "CPU per request: berthd $berth_cpu us, nginx $nginx_cpu us, ratio $cpu_ratio (target <= 1.0: $(awk -v x="$cpu_ratio" 'BEGIN {print (x <= 1.0) ? "met" : "MISSED"}'))"
kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=""
kill "$berthd_pid" 2>/dev/null || true; wait "$berthd_pid" 2>/dev/null || true; berthd_pid=""
sched_line=$(bash "$here/tests/bench/dispatch-sched.sh" | tee /dev/stderr | sed -n 's/^DISPATCH_SCHED //p')
[ -n "$sched_line" ] || { echo "bench-dispatch: the scheduling part failed" >&2; exit 1; }
echo "RESULT bench=dispatch $sched_line overhead_p50_ms=$o50 overhead_p99_ms=$o99 urgent_miss_pct=$(miss "$tmp"/berth.*.csv) direct_urgent_miss_pct=$(miss "$tmp"/direct.*.csv) own_p50_ms=$own50 own_p99_ms=$own99 requests=$(( 2 * half )) cpu_us_per_request=$berth_cpu nginx_cpu_us_per_request=$nginx_cpu cpu_ratio=$cpu_ratio load_average_end=$(cut -d' ' -f1 /proc/loadavg)"
