#!/usr/bin/env bash
# tests/bench/bench-scale.sh BUILD_DIR - autoscaling on the simulated gateway (berth-sim --autoscale: the
# scheduler and autoscaler berthd runs): static min, static max, reactive and reactive+predictive on a
# synthetic daily trace with bursts, the same with long bursts, and the shared trace; the forecaster on a
# flat trace. SEED=N picks the generator's seed (default 1). Prints a table and ends with
#   RESULT bench=scale mase=.. mase_flat=.. violation_s_reactive=.. violation_s_predictive=.. replica_s_ratio=..
#          mase_shared=.. violation_s_reactive_shared=.. violation_s_predictive_shared=.. replica_s_ratio_shared=..
set -euo pipefail
BUILD=${1:-build}
SIM="$BUILD/berth-sim"
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED="$HERE/../fixtures/traces/azure-code-1h.csv"
SEED=${SEED:-1}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
[ -x "$SIM" ] || { echo "bench-scale: $SIM not built" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Four days compressed 96x (a day is 900 s), fixed seed.
SPEEDUP=${SPEEDUP:-96}
DAYS=${DAYS:-4}
DAY_S=$((86400 / SPEEDUP))
"$PY" "$HERE/gen_scale_trace.py" --kind synthetic --days "$DAYS" --speedup "$SPEEDUP" --seed "$SEED" \
	--bursts-per-day 8 --burst-factor 2.0 --burst-s 2 6 --out "$TMP/synthetic.csv"
"$PY" "$HERE/gen_scale_trace.py" --kind synthetic --days "$DAYS" --speedup "$SPEEDUP" --seed "$SEED" \
	--bursts-per-day 3 --burst-factor 1.8 --burst-s 20 40 --out "$TMP/long-bursts.csv"
"$PY" "$HERE/gen_scale_trace.py" --kind flat --days 2 --speedup "$SPEEDUP" --seed "$SEED" --out "$TMP/flat.csv"

# A 4-slot gateway with 3 GiB; replicas of 300 MiB start in 4 s; the autoscaler evaluates every 5 s
# on 10 s forecast buckets, cool-down 60 s.
COMMON=(--slots 4 --replicas-min 1 --replicas-max 4 --startup-ms 4000 --replica-mem-mb 300
	--node-mem-mb 3072 --base-mem-mb 300 --interval-s 5 --cooldown-s 60 --bucket-s 10 --day-s "$DAY_S")

# The shared trace (one hour, three models, no daily pattern) at bench-sched's load 0.5 on 2 slots:
# compressed 15.223x it lasts 236 s, so the forecaster counts 5 s buckets.
SHARED_SPEEDUP=15.223
SHARED_COMMON=(--slots 2 --speedup "$SHARED_SPEEDUP" --replicas-min 1 --replicas-max 2 --startup-ms 4000
	--replica-mem-mb 300 --node-mem-mb 3072 --base-mem-mb 300 --interval-s 5 --cooldown-s 60 --bucket-s 5
	--day-s 5675)

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

run() { # trace label args...
	local trace=$1 label=$2; shift 2
	local out common=("${COMMON[@]}")
	[ "$trace" = "$SHARED" ] && common=("${SHARED_COMMON[@]}")
	out=$("$SIM" --trace "$trace" "${common[@]}" "$@" | tail -1)
	printf '%-22s %-14s %12s %12s %16s %8s\n' "$(basename "$trace" .csv)" "$label" \
		"$(field violation_s "$out")" "$(field replica_s "$out")" "$(field urgent_miss_pct "$out")" \
		"$(field mase "$out")" >&2
	echo "$out"
}

printf '%-22s %-14s %12s %12s %16s %8s\n' trace mode violation_s replica_s urgent_miss_pct mase >&2
for t in synthetic long-bursts; do
	r_min=$(run "$TMP/$t.csv" static-min --autoscale off --replicas 1)
	r_max=$(run "$TMP/$t.csv" static-max --autoscale off --replicas 4)
	r_re=$(run "$TMP/$t.csv" reactive --autoscale reactive --replicas-csv "$TMP/$t-reactive.csv")
	r_pr=$(run "$TMP/$t.csv" predictive --autoscale predictive --replicas-csv "$TMP/$t-predictive.csv")
	if [ "$t" = synthetic ]; then
		S_RE=$r_re; S_PR=$r_pr
	fi
done
r_flat=$(run "$TMP/flat.csv" predictive --autoscale predictive)
run "$SHARED" static-min --autoscale off --replicas 1 >/dev/null
run "$SHARED" static-max --autoscale off --replicas 2 >/dev/null
H_RE=$(run "$SHARED" reactive --autoscale reactive)
H_PR=$(run "$SHARED" predictive --autoscale predictive)
[ -n "${KEEP_CSV:-}" ] && cp "$TMP"/*-reactive.csv "$TMP"/*-predictive.csv "$KEEP_CSV"/

v_re=$(field violation_s "$S_RE"); v_pr=$(field violation_s "$S_PR")
rs_re=$(field replica_s "$S_RE"); rs_pr=$(field replica_s "$S_PR")
mase=$(field mase "$S_PR"); mase_flat=$(field mase "$r_flat")
ratio=$(awk -v a="$rs_pr" -v b="$rs_re" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
ratio_h=$(awk -v a="$(field replica_s "$H_PR")" -v b="$(field replica_s "$H_RE")" \
	'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
gain=$(awk -v a="$v_re" -v b="$v_pr" 'BEGIN { printf "%.2f", (b > 0 ? a / b : (a > 0 ? 99 : 1)) }')
ok() { awk "BEGIN { exit !($1) }" && echo yes || echo no; }
echo "targets: mase<=0.8 $(ok "$mase <= 0.8") mase_flat<=1.05 $(ok "$mase_flat <= 1.05")" \
	"violation_gain>=2 $(ok "$gain >= 2") (${gain}x) replica_s_ratio<=1.2 $(ok "$ratio <= 1.2")" >&2
echo "RESULT bench=scale mase=$mase mase_flat=$mase_flat violation_s_reactive=$v_re" \
	"violation_s_predictive=$v_pr replica_s_ratio=$ratio mase_shared=$(field mase "$H_PR")" \
	"violation_s_reactive_shared=$(field violation_s "$H_RE")" \
	"violation_s_predictive_shared=$(field violation_s "$H_PR") replica_s_ratio_shared=$ratio_h seed=$SEED"
