#!/usr/bin/python3
"""Writes a synthetic replay trace (t_ms,model,deadline_ms,class,cost_ms,size) to stdout.

Arrivals: a two-state Markov-modulated Poisson process - a calm state and a
burst state with 20x the rate (mean burst 2 s, mean calm spell 60 s) - with a
fixed seed, so the file is the same on every machine. One hour at the shared
trace's mean rate (2.45 requests/s). Models, classes and deadlines follow the
shared trace's mapping: detector/urgent/100 ms (75 %), classifier/normal/1000 ms
(3.3 %), summarizer/batch/10000 ms (21.7 %). Each request has a size known at
arrival (input tokens, log-normal, clipped to the class's range) and a cost
that follows it plus a hidden part the gateway cannot know (exponential, like
the generated tokens of the shared trace): cost = floor + size / per_ms +
hidden, capped, with the shared trace's class means (16.5, 24.7, 57.2 ms).
The hidden part is larger than in the shared trace (where the size explains
99% of the urgent cost), so the size explains only part of the cost:
correlation of size and cost 0.84 (urgent), 0.75 (normal), 0.90 (batch) at seed 42.
usage: gen-synth-trace.py [--seed S] [--duration-s N]
"""
import argparse
import math
import random

CLASSES = [  # model, class, deadline_ms, share, floor ms, size median, size min, size max,
    #         tokens per ms, mean hidden ms, cap ms
    ("detector", "urgent", 100, 0.750, 4.0, 750, 1, 3000, 100.0, 3.5, 40.0),
    ("classifier", "normal", 1000, 0.033, 8.0, 1000, 1, 3000, 100.0, 5.5, 90.0),
    ("summarizer", "batch", 10000, 0.217, 8.0, 4900, 3001, 8000, 125.0, 7.5, 120.0),
]
SIZE_SIGMA = 0.6  # log-normal spread of the sizes
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
    print("t_ms,model,deadline_ms,class,cost_ms,size")
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
        for model, cls, dl, share, floor, med, lo, hi, per_ms, hidden, cap in CLASSES:
            acc += share
            if u < acc:
                break
        size = int(min(hi, max(lo, round(rnd.lognormvariate(math.log(med), SIZE_SIGMA)))))
        cost = min(cap, floor + size / per_ms + rnd.expovariate(1 / hidden))
        print(f"{t * 1000:.1f},{model},{dl},{cls},{cost:.1f},{size}")


if __name__ == "__main__":
    main()
