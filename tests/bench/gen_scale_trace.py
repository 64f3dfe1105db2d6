#!/usr/bin/python3
"""tests/bench/gen_scale_trace.py - writes a request trace for the autoscaling benchmark.

Trace format (docs/autoscaling.md): t_ms,model,deadline_ms,class,cost_ms, one request a line.

  synthetic: two models with a daily pattern (quiet night, one broad peak) plus
             random bursts (x1.8 for 20-40 s), several days, Poisson arrivals.
  flat:      the same models at a constant rate, no bursts.

--speedup K compresses the day to 86400/K seconds (request rates, service
times and deadlines are not scaled). The seed fixes everything.
"""
import argparse
import math
import random

MODELS = [
    # name, class, deadline_ms, cost_ms, night rps, peak rps (synthetic), flat rps, phase shift
    ("cam", "urgent", 150, 25, 8.0, 80.0, 50.0, 0.00),
    ("ocr", "normal", 1000, 50, 2.0, 12.0, 6.0, 0.08),
]


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    l, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= l:
            return k
        k += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=["synthetic", "flat"], default="synthetic")
    ap.add_argument("--days", type=float, default=4)
    ap.add_argument("--speedup", type=float, default=96)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bursts-per-day", type=float, default=3)
    ap.add_argument("--burst-factor", type=float, default=1.8)
    ap.add_argument("--burst-s", type=float, nargs=2, default=[20, 40], metavar=("MIN", "MAX"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    day_s = 86400.0 / a.speedup
    total_s = int(a.days * day_s)
    bursts = {}
    for m in MODELS:
        lst = []
        if a.kind == "synthetic":
            for _ in range(int(a.bursts_per_day * a.days)):
                start = rng.uniform(0, total_s)
                lst.append((start, start + rng.uniform(a.burst_s[0], a.burst_s[1])))
        bursts[m[0]] = lst
    lines = []
    for sec in range(total_s):
        for name, cls, dl, cost, lo, hi, flat, shift in MODELS:
            if a.kind == "flat":
                rate = flat
            else:
                phase = (sec / day_s - shift) % 1.0
                shape = math.sin(math.pi * phase) ** 2
                rate = lo + (hi - lo) * shape
                if any(s <= sec < e for s, e in bursts[name]):
                    rate *= a.burst_factor
            for _ in range(poisson(rng, rate)):
                t_ms = sec * 1000 + rng.randrange(1000)
                c = max(1, int(round(cost * rng.uniform(0.8, 1.2))))
                lines.append((t_ms, name, dl, cls, c))
    lines.sort(key=lambda x: x[0])
    with open(a.out, "w") as f:
        f.write("t_ms,model,deadline_ms,class,cost_ms\n")
        for t, n, d, c, k in lines:
            f.write(f"{t},{n},{d},{c},{k}\n")


if __name__ == "__main__":
    main()
