#!/usr/bin/env bash
# Scheduling policies on the shared Azure trace (with its size column) and on
# a synthetic bursty trace with sizes (tests/bench/gen-synth-trace.py, fixed
# seed), 2 slots, 2 replicas per model, at the speedups that give an offered
# load of about 0.5, 0.9 and 1.5. Prints one markdown table per trace (fifo,
# edf, edf-admit, edf-reserve, edf-preempt, edf-mc, and for the admitting
# policies the --oracle-cost, --ignore-size and --only-class urgent
# references), with refusals after acceptance and the error of the wait
# predicted at arrival; then the target checks (a)-(g) per admitting policy
# and a RESULT line naming the best policy per trace.
# Usage: tests/bench/bench-sched.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${1:-build}
SIM=$O/berth-sim
[ -x "$SIM" ] || { echo "bench-sched: $SIM missing (run make)" >&2; exit 1; }
SHARED=${BERTH_TRACE:-tests/fixtures/traces/azure-code-1h.csv}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 tests/bench/gen-synth-trace.py --seed 42 > "$tmp/synth.csv"

SLOTS=2; REPLICAS=2
POLICIES="fifo edf edf-admit edf-reserve edf-preempt edf-mc"
ADMITTING="edf-admit edf-reserve edf-preempt edf-mc"
: > "$tmp/results"
for trace in shared synth; do
  f=$SHARED; [ $trace = synth ] && f=$tmp/synth.csv
  [ -f "$f" ] || { echo "bench-sched: trace $f missing" >&2; exit 1; }
  # offered load at speedup 1: work / (slots * span of arrivals)
  load1=$(awk -F, -v s=$SLOTS 'NR==1 {next} NR==2 {t0=$1} {w+=$5; t=$1} END {printf "%.6f", w/(s*(t-t0))}' "$f")
  for target in 0.5 0.9 1.5; do
    k=$(awk -v l="$target" -v b="$load1" 'BEGIN {printf "%.3f", l/b}')
    run() { # policy variant extra-args...
      local p=$1 v=$2; shift 2
      local r; r=$("$SIM" --trace "$f" --policy "$p" --slots $SLOTS --replicas $REPLICAS --speedup "$k" "$@" | tail -1)
      echo "trace=$trace target=$target speedup=$k variant=$v ${r#RESULT }" >> "$tmp/results"
    }
    for p in $POLICIES; do run "$p" all; done
    for p in $ADMITTING; do
      run "$p" oracle --oracle-cost
      run "$p" nosize --ignore-size
      run "$p" only-urgent --only-class urgent
    done
  done
done

/usr/bin/python3 - "$tmp/results" "$SHARED" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    rows.append(dict(kv.split("=", 1) for kv in line.split()))
def get(trace, target, policy, variant="all"):
    for r in rows:
        if (r["trace"], r["target"], r["policy"], r["variant"]) == (trace, target, policy, variant):
            return r
    raise KeyError((trace, target, policy, variant))
f = float
TODAY = ("fifo", "edf", "edf-admit", "edf-reserve", "edf-preempt")  # the policies before edf-mc
ADMITTING = ("edf-admit", "edf-reserve", "edf-preempt", "edf-mc")
names = {"shared": "shared trace (%s)" % sys.argv[2], "synth": "synthetic trace (gen-synth-trace.py --seed 42)"}
refs = {"all": "", "oracle": "--oracle-cost", "nosize": "--ignore-size", "only-urgent": "--only-class urgent"}
summary = {}
for trace in ("shared", "synth"):
    print("\n### %s\n" % names[trace])
    print("| load | speedup | policy | reference | urgent miss % | normal miss % | batch miss % | goodput/s | useful util | on time | refused | after acceptance | wait error p50 / p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["trace"] != trace:
            continue
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s%%) | %s / %s |" % (
            r["load"], r["speedup"], r["policy"], refs[r["variant"]], r["urgent_miss_pct"], r["normal_miss_pct"],
            r["batch_miss_pct"], r["goodput_per_s"], r["useful_util"], r["ontime"], r["refused"], r["refused_late"],
            r["late_refusal_pct"], r["wait_err_p50_ms"], r["wait_err_p95_ms"]))
    print("\nTargets (each admitting policy; fifo and the references measured above):\n")
    print("| policy | (a) urgent miss <= 0.2x fifo at 0.9 / 1.5 | (a) goodput >= 2x fifo at 1.5 | (b) useful util 1.5 >= 0.9 "
          "| (c) on time >= 0.9x oracle at 0.5 / 0.9 / 1.5 | (d) urgent miss <= only-urgent + 2 at 0.5 / 0.9 / 1.5 "
          "| (e) at 1.5: urgent miss <= only-urgent + 1; on time >= 0.95x best of today's | (f) on time >= 0.97x oracle at 0.5 / 0.9 / 1.5 (size ignored) "
          "| (g) refusals after acceptance <= 10% at 0.5 / 0.9 / 1.5 | held |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    best = None
    for p in ADMITTING:
        ok = []
        cells = []
        a = []
        for t in ("0.9", "1.5"):
            mine, ff = f(get(trace, t, p)["urgent_miss_pct"]), f(get(trace, t, "fifo")["urgent_miss_pct"])
            a.append("%.1f vs %.1f" % (mine, 0.2 * ff)); ok.append(mine <= 0.2 * ff)
        cells.append(" / ".join(a))
        g, gf = f(get(trace, "1.5", p)["goodput_per_s"]), f(get(trace, "1.5", "fifo")["goodput_per_s"])
        cells.append("%.1f vs %.1f" % (g, 2 * gf)); ok.append(g >= 2 * gf)
        u15, u09 = f(get(trace, "1.5", p)["useful_util"]), f(get(trace, "0.9", p)["useful_util"])
        cells.append("%.3f vs %.3f" % (u15, u09)); ok.append(u15 >= u09)
        c = []
        for t in ("0.5", "0.9", "1.5"):
            on, oo = f(get(trace, t, p)["ontime"]), f(get(trace, t, p, "oracle")["ontime"])
            c.append("%.2f" % (on / oo)); ok.append(on >= 0.9 * oo)
        cells.append(" / ".join(c))
        d = []
        for t in ("0.5", "0.9", "1.5"):
            um, uo = f(get(trace, t, p)["urgent_miss_pct"]), f(get(trace, t, p, "only-urgent")["urgent_miss_pct"])
            d.append("%+.2f" % (um - uo)); ok.append(um <= uo + 2)
        cells.append(" / ".join(d))
        um, uo = f(get(trace, "1.5", p)["urgent_miss_pct"]), f(get(trace, "1.5", p, "only-urgent")["urgent_miss_pct"])
        on = f(get(trace, "1.5", p)["ontime"])
        besttoday = max(f(get(trace, "1.5", q)["ontime"]) for q in TODAY)
        cells.append("%+.2f; %.3f" % (um - uo, on / besttoday)); ok.append(um <= uo + 1); ok.append(on >= 0.95 * besttoday)
        fc = []
        for t in ("0.5", "0.9", "1.5"):
            on, oo, ns = (f(get(trace, t, p, v)["ontime"]) for v in ("all", "oracle", "nosize"))
            fc.append("%.3f (%.3f)" % (on / oo, ns / oo)); ok.append(on >= 0.97 * oo)
        cells.append(" / ".join(fc))
        gc = []
        for t in ("0.5", "0.9", "1.5"):
            lp = f(get(trace, t, p)["late_refusal_pct"])
            gc.append("%.1f%%" % lp); ok.append(lp <= 10)
        cells.append(" / ".join(gc))
        print("| %s | %s | %s/%d |" % (p, " | ".join(cells), sum(ok), len(ok)))
        if best is None or sum(ok) > best[1]:
            best = (p, sum(ok), len(ok), ok)
    summary[trace] = best
    print("\nbest policy on the %s trace: %s (%d of %d checks hold)" % (trace, best[0], best[1], best[2]))
def flags(ok):
    groups = {"a": ok[0:3], "b": ok[3:4], "c": ok[4:7], "d": ok[7:10], "e": ok[10:12], "f": ok[12:15], "g": ok[15:18]}
    return " ".join("%s=%s" % (k, "pass" if all(v) else "fail") for k, v in groups.items())
s, y = summary["shared"], summary["synth"]
print("\nRESULT bench=sched best_shared=%s shared_checks=%d/%d %s best_synth=%s synth_checks=%d/%d %s" % (
    s[0], s[1], s[2], " ".join("shared_" + x for x in flags(s[3]).split()),
    y[0], y[1], y[2], " ".join("synth_" + x for x in flags(y[3]).split())))
PY
