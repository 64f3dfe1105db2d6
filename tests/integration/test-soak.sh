#!/usr/bin/env bash
# Soak: berthd serves a replayed trace (tests/fixtures/traces/azure-code-1h.csv, compressed
# SOAK_SPEEDUP times, looped) through its local API to a deployment of two worker replicas on
# the real engine, with telemetry to the real broker, for SOAK_S seconds (default 120; `make
# soak` runs 1800), while every 60 s the broker is cut for 5 s, a replica's container is killed
# and the engine (podman's API service) is restarted. Every 10 s it samples berthd's RSS, open
# fds, SQLite pages, the outbox size and the engine's containers of this run; the samples go to
# BUILD/soak/soak.csv and, plotted with gnuplot, BUILD/soak/soak.png. Fails on growth after
# the warm-up (the first third, at least one 60 s cycle of faults): RSS by more than SOAK_RSS_KB
# (256), fds or containers above their warm-up level (containers at most the 2 desired; fds
# within +2 at the end, when every fault has healed). RSS swings by 500-700 KiB from sample to
# sample with the requests and connections in flight (each connection's 16 KiB pool and each
# transfer's buffer are mappings of their own), so RSS growth compares like with like: the
# highest sample after the warm-up against the highest of the warm-up's second half (the same
# looped load and faults), not against one sample; the lowest samples are printed beside it.
TEST=soak
WITH_BROKER=1
source "$(dirname "$0")/lib-infer.sh"
source "$repo/scripts/test-services.sh"
SOAK_S=${SOAK_S:-120}
SPEEDUP=${SOAK_SPEEDUP:-5}
RSS_MAX_KB=${SOAK_RSS_KB:-256}
OUT=$build/soak
mkdir -p "$OUT"
: > "$OUT/soak.csv"

# A replica killed once a minute and ready in between is no crash loop: ready for 30 s forgets
# the earlier kill (restart.reset_after_ms), else the same replica, killed ten times, waits out
# a back-off of minutes at the end (a 600 s run failed on exactly that)
echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 2 normal 2000 |
  sed 's/"liveness":{/"restart":{"reset_after_ms":30000},"liveness":{/')]}" > "$WORK/deployments.json"
berthd_start
wait_until 30 "the condition" http_is 200 "$API/v2/models/w/ready" || bad "model w never ready"
wait_until 20 "the condition" ready_is w 2 || bad "w never got 2 ready replicas"
[ "$FAILS" -eq 0 ] || exit 1

# the replay: trace arrivals, compressed, looped until the file stop exists
$PY - "$API" "$repo/tests/fixtures/traces/azure-code-1h.csv" "$SPEEDUP" "$WORK/stop" "$WORK/replay.out" <<'EOP' &
import csv, json, sys, threading, time, os, urllib.request, urllib.error
api, trace, k, stop, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [(float(r["t_ms"]) / k, float(r["cost_ms"])) for r in csv.DictReader(open(trace))]
sem = threading.Semaphore(32); n = {"ok": 0, "other": 0, "sent": 0}
def one(cost):
    try:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}],
                           "parameters": {"cost_ms": min(cost, 50)}}).encode()
        rq = urllib.request.Request(api + "/v2/models/w/infer", data=body, method="POST",
                                    headers={"Content-Type": "application/json", "X-Berth-Deadline-Ms": "2000"})
        with urllib.request.urlopen(rq, timeout=10) as r:
            n["ok"] += r.status == 200
    except urllib.error.HTTPError as e:
        n["other"] += 1
        k = "http_%d" % e.code
        n[k] = n.get(k, 0) + 1
    except Exception as e:
        n["other"] += 1
        k = type(e).__name__
        n[k] = n.get(k, 0) + 1
    finally:
        sem.release()
t0 = time.monotonic()
while not os.path.exists(stop):
    base = time.monotonic()
    for t, cost in rows:
        if os.path.exists(stop):
            break
        d = base + t / 1000 - time.monotonic()
        if d > 0:
            time.sleep(d)
        if sem.acquire(timeout=1):
            n["sent"] += 1
            threading.Thread(target=one, args=(cost,), daemon=True).start()
open(out, "w").write(" ".join("%s=%d" % kv for kv in sorted(n.items())) + "\n")
EOP
replay=$!

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$BERTHD_PID/status"; }
fds() { ls "/proc/$BERTHD_PID/fd" | wc -l; }
db() { sqlite3 -readonly "$WORK/data/berth.db" "$1" 2>/dev/null || echo -1; }
# the allocator's figures from /metrics (KiB handed out, KiB kept free): tells growth of what
# berthd holds from memory the allocator keeps
heap_kb() { curl -s -m 2 "$API/metrics" | awk '/^berth_heap_used_bytes/ {u = $2} /^berth_heap_free_bytes/ {f = $2}
  END {printf "%d,%d", u / 1024, f / 1024}'; }
sample() { # T
  local c; c=$(ctr_count w 2>/dev/null || echo -1)
  echo "$1,$(rss_kb),$(fds),$(db 'PRAGMA page_count'),$(db 'SELECT COUNT(*) FROM outbox'),$c,$(heap_kb)" >> "$OUT/soak.csv"
}

t0=$(date +%s)
next=0
faults=0
while :; do
  t=$(( $(date +%s) - t0 ))
  [ "$t" -lt "$SOAK_S" ] || break
  kill -0 "$BERTHD_PID" 2>/dev/null || { bad "berthd died at t=$t s"; break; }
  if [ "$t" -ge "$next" ]; then sample "$t"; next=$((next + 10)); fi
  case $(( t % 60 )) in
    20) broker_stop || true; faults=$((faults + 1)); sleep 5; broker_start || bad "broker did not restart" ;;
    35) id=$(owned_json | $PY -c 'import sys,json; c=[x["Id"] for x in json.load(sys.stdin) if x["State"]=="running"]; print(c[0] if c else "")')
        if [ -n "$id" ]; then (eng POST "/containers/$id/kill?signal=KILL" >/dev/null || true) & fi
        faults=$((faults + 1)); sleep 1 ;;
    50) engine_stop || true; sleep 2; engine_start || bad "engine did not restart"; faults=$((faults + 1)) ;;
    *) sleep 0.5 ;;
  esac
done
touch "$WORK/stop"; wait "$replay" || true
# quiet end: every fault healed (replicas back, outbox drained)
wait_until 60 "the condition" ready_is w 2 || bad "replicas not back after the soak"
wait_until 30 "the condition" bash -c "[ \$(sqlite3 -readonly '$WORK/data/berth.db' 'SELECT COUNT(*) FROM outbox') -le 5 ]" || bad "outbox not drained"
sleep 2
sample "$(( $(date +%s) - t0 ))"
echo "replay: $(cat "$WORK/replay.out" 2>/dev/null); faults: $faults"
echo "t_s,rss_kb,fds,sqlite_pages,outbox_rows,containers,heap_used_kb,heap_free_kb"; cat "$OUT/soak.csv"

if command -v gnuplot >/dev/null; then
  gnuplot <<EOG || echo "gnuplot failed (the check does not depend on it)"
set terminal pngcairo size 1000,700 noenhanced
set output "$OUT/soak.png"
set datafile separator ","
set multiplot layout 3,1 title "berthd soak: ${SOAK_S} s, broker cut / replica kill / engine restart every 60 s"
set xlabel "t (s)"
set ylabel "KiB"; plot "$OUT/soak.csv" using 1:2 with linespoints title "RSS", "" using 1:7 with linespoints title "heap used", "" using 1:8 with linespoints title "heap kept free"
set ylabel "count"; plot "$OUT/soak.csv" using 1:3 with linespoints title "fds", "" using 1:6 with linespoints title "containers"
set ylabel "rows / pages"; plot "$OUT/soak.csv" using 1:4 with linespoints title "SQLite pages", "" using 1:5 with linespoints title "outbox rows"
unset multiplot
EOG
fi

warm=$(( SOAK_S / 3 )); [ "$warm" -ge 60 ] || warm=60 # at least one whole 60 s cycle of faults
$PY - "$OUT/soak.csv" "$warm" "$RSS_MAX_KB" <<'EOP' || bad "growth after the warm-up"
import sys
rows = [list(map(int, l.split(","))) for l in open(sys.argv[1]) if l.strip()]
warm, rss_max = int(sys.argv[2]), int(sys.argv[3])
after = [r for r in rows if r[0] >= warm]
late_warm = [r for r in rows if warm // 2 <= r[0] < warm]
assert len(after) >= 2 and late_warm, "too few samples after the warm-up"
base = after[0]
warm_max = max(r[1] for r in late_warm)
rss_growth = max(r[1] for r in after) - warm_max
fd_growth = after[-1][2] - base[2]
cmax = max(r[5] for r in after)
print("rss: warm-up (second half) max %d KiB, max after %d KiB, growth %d KiB (limit %d); lowest %d -> %d KiB; "
      "fds %d -> %d; containers max %d; pages %d -> %d"
      % (warm_max, max(r[1] for r in after), rss_growth, rss_max, min(r[1] for r in late_warm),
         min(r[1] for r in after), base[2], after[-1][2], cmax, base[3], after[-1][3]))
print("heap: used %d -> %d KiB (max %d), kept free %d -> %d KiB (max %d)" % (base[6], after[-1][6], max(r[6] for r in after),
      base[7], after[-1][7], max(r[7] for r in after)))
ok = True
if rss_growth > rss_max: print("RSS grew by %d KiB" % rss_growth); ok = False
if fd_growth > 2: print("fds grew by %d" % fd_growth); ok = False
if cmax > 3 or after[-1][5] != 2: print("containers: max %d, end %d (desired 2)" % (cmax, after[-1][5])); ok = False
sys.exit(0 if ok else 1)
EOP
finish
