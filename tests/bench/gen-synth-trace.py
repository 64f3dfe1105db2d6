#!/usr/bin/python3
"""Writes a synthetic replay trace (t_ms,model,deadline_ms,class,cost_ms) to stdout.

Arrivals: a two-state Markov-modulated Poisson process - a calm state and a
burst state with 20x the rate (mean burst 2 s, mean calm spell 60 s) - with a
fixed seed, so the file is the same on every machine. One hour at the shared
trace's mean rate (2.45 requests/s). Models, classes and deadlines follow the
shared trace's mapping: detector/urgent/100 ms (75 %), classifier/normal/1000 ms
(3.3 %), summarizer/batch/10000 ms (21.7 %); costs are shifted exponentials
with the shared trace's class means (16.5, 24.7, 57.2 ms), capped.
usage: gen-synth-trace.py [--seed S] [--duration-s N]
"""
import argparse
import random

CLASSES = [  # model, class, deadline_ms, share, cost floor ms, mean extra ms, cap ms
    ("detector", "urgent", 100, 0.750, 4.0, 12.5, 40.0),
    ("classifier", "normal", 1000, 0.033, 8.0, 16.7, 90.0),
    ("summarizer", "batch", 10000, 0.217, 34.0, 23.2, 120.0),
]
MEAN_RATE = 8819 / 3600.0
BURST_FACTOR = 20.0
BURST_S, CALM_S = 2.0, 60.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--duration-s", type=float, default=3600.0)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    burst_share = BURST_S / (BURST_S + CALM_S)
    calm_rate = MEAN_RATE / ((1 - burst_share) + BURST_FACTOR * burst_share)
    t, burst = 0.0, False
    switch = rnd.expovariate(1 / CALM_S)
    print("t_ms,model,deadline_ms,class,cost_ms")
    while True:
        rate = calm_rate * (BURST_FACTOR if burst else 1.0)
        t_next = t + rnd.expovariate(rate)
        if t_next >= switch:  # memoryless: restart the draw at the switch
            t = switch
            burst = not burst
            switch = t + rnd.expovariate(1 / (BURST_S if burst else CALM_S))
            continue
        t = t_next
        if t >= a.duration_s:
            break
        u, acc = rnd.random(), 0.0
        for model, cls, dl, share, floor, extra, cap in CLASSES:
            acc += share
            if u < acc:
                break
        cost = min(cap, floor + rnd.expovariate(1 / extra))
        print(f"{t * 1000:.1f},{model},{dl},{cls},{cost:.1f}")


if __name__ == "__main__":
    main()
