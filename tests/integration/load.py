#!/usr/bin/env python3
"""tests/integration/load.py - open-loop inference load through berthd's local API, in phases.

usage: load.py URL MODEL OUT PHASE...
  PHASE = NAME:RATE:SECONDS:DEADLINE_MS:COST_MS   (SECONDS 0: until the file OUT.stop-NAME exists)
Each request is POST URL/v2/models/MODEL/infer with X-Berth-Deadline-Ms and the worker's cost
in the body; sends follow the schedule whatever the answers (threads, 64 at most in flight).
Writes one line per request to OUT: "NAME STATUS REASON" (STATUS 0: no answer), and the file
OUT.phase holding the phase now running.
"""
import concurrent.futures
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

url, model, out = sys.argv[1], sys.argv[2], sys.argv[3]
phases = [p.split(":") for p in sys.argv[4:]]
lock = threading.Lock()
lines = open(out, "a", buffering=1)


def one(name, deadline_ms, cost_ms):
    body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}],
                       "parameters": {"cost_ms": cost_ms}}).encode()
    req = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-Berth-Deadline-Ms": str(deadline_ms)})
    status, reason = 0, "-"
    try:
        with urllib.request.urlopen(req, timeout=deadline_ms / 1000.0 + 10) as r:
            status = r.status
            r.read()
    except urllib.error.HTTPError as e:
        status = e.code
        try:
            reason = json.loads(e.read() or b"{}").get("reason", "-")
        except ValueError:
            pass
    except Exception as e:  # no answer at all
        reason = type(e).__name__
    with lock:
        lines.write(f"{name} {status} {reason}\n")


with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
    for name, rate, secs, deadline_ms, cost_ms in phases:
        with open(out + ".phase", "w") as f:
            f.write(name + "\n")
        rate, secs = float(rate), float(secs)
        start = time.monotonic()
        n = 0
        while True:
            now = time.monotonic()
            if secs > 0 and now - start >= secs:
                break
            if secs == 0 and os.path.exists(f"{out}.stop-{name}"):
                break
            due = start + n / rate
            if due > now:
                time.sleep(min(due - now, 0.05))
                continue
            pool.submit(one, name, int(deadline_ms), int(cost_ms))
            n += 1
with open(out + ".phase", "w") as f:
    f.write("done\n")
