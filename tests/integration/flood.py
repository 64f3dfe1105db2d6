#!/usr/bin/env python3
"""Connection flood against berthd's local API, with a health probe measured throughout.

flood.py HOST PORT [--idle N] [--slow N] [--active N] [--secs S] [--probe PATH,...] [--probe-ms MS]
Run the flood and the probe as two processes (the probe alone: no --idle/--slow/--active,
--probe given; the flood alone: --probe ""), so the flood's own load does not delay the probe.
  --idle N   N connections that connect and send nothing (reconnect when closed)
  --slow N   N connections that send a request's headers one byte a second, never ending them
  --active N N connections that send GET /v2/health/live over and over (keep-alive)
  --secs S   how long the flood lasts
  --probe    paths probed on a fresh connection every --probe-ms (default 50) during the flood
Prints one line per probe path: "probe PATH n=.. fail=.. p50_ms=.. p99_ms=.. max_ms=.." and
"flood open_max=.. idle_closed=.. slow_closed=.." (connections the server closed), then
"RESULT probes=.. probe_fail=.. probe_p99_ms=.. probe_max_ms=..".
FLOOD_PROBE_TRACE=FILE: one line per probe, "SECONDS_SINCE_START PATH MS" (or "... PATH FAIL ERROR").
Only loopback. Raises RLIMIT_NOFILE for itself.
"""
import argparse, asyncio, os, resource, time

def pct(v, q):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]

async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host"); ap.add_argument("port", type=int)
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("--slow", type=int, default=0)
    ap.add_argument("--active", type=int, default=0)
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--probe", default="/v2/health/live")
    ap.add_argument("--probe-ms", type=int, default=50)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.idle + a.slow + a.active + 512
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    start = time.monotonic()
    stop = start + a.secs
    trace = open(os.environ["FLOOD_PROBE_TRACE"], "w") if os.environ.get("FLOOD_PROBE_TRACE") else None
    st = {"open": 0, "open_max": 0, "idle_closed": 0, "slow_closed": 0, "active_req": 0}

    async def conn_loop(kind, i):
        while time.monotonic() < stop:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), 5)
            except Exception:
                await asyncio.sleep(0.2)
                continue
            st["open"] += 1; st["open_max"] = max(st["open_max"], st["open"])
            try:
                if kind == "idle":
                    while time.monotonic() < stop:
                        d = await asyncio.wait_for(r.read(1024), max(0.01, stop - time.monotonic()))
                        if not d:
                            st["idle_closed"] += 1
                            break
                elif kind == "slow":
                    req = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100000
                    for b in req:
                        if time.monotonic() >= stop:
                            break
                        w.write(bytes([b])); await w.drain()
                        try:
                            d = await asyncio.wait_for(r.read(1024), 1.0)
                            if not d:
                                st["slow_closed"] += 1
                                break
                        except asyncio.TimeoutError:
                            pass
                else:
                    while time.monotonic() < stop:
                        w.write(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"); await w.drain()
                        d = await asyncio.wait_for(r.read(4096), 5)
                        if not d:
                            break
                        st["active_req"] += 1
            except Exception:
                pass
            finally:
                st["open"] -= 1
                w.close()

    lat = {p: [] for p in a.probe.split(",") if p}
    fails = {p: 0 for p in lat}
    why = {}

    async def probe_loop():
        if not lat:
            return
        await asyncio.sleep(min(2.0, a.secs / 4))   # let the flood build up
        while time.monotonic() < stop:
            for p in lat:
                t0 = time.monotonic()
                try:
                    r, w = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), 2)
                    w.write(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % p).encode())
                    await w.drain()
                    d = await asyncio.wait_for(r.read(4096), 2)
                    w.close()
                    if not d.startswith(b"HTTP/1.1 "):  # an answer (ready may say 503)
                        raise RuntimeError(d[:40])
                    lat[p].append((time.monotonic() - t0) * 1000)
                    if trace:
                        trace.write("%.3f %s %.1f\n" % (t0 - start, p, lat[p][-1]))
                except Exception as e:
                    fails[p] += 1
                    if trace:
                        trace.write("%.3f %s FAIL %s\n" % (t0 - start, p, type(e).__name__))
                    why[type(e).__name__] = why.get(type(e).__name__, 0) + 1
            await asyncio.sleep(a.probe_ms / 1000)

    tasks = [conn_loop("idle", i) for i in range(a.idle)] + [conn_loop("slow", i) for i in range(a.slow)] \
        + [conn_loop("active", i) for i in range(a.active)]
    await asyncio.gather(probe_loop(), *tasks)
    allv, nfail = [], 0
    for p in lat:
        v = lat[p]; allv += v; nfail += fails[p]
        print("probe %s n=%d fail=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f" % (p, len(v), fails[p], pct(v, .5), pct(v, .99), max(v or [0])))
    if tasks:
        print("flood open_max=%d idle_closed=%d slow_closed=%d active_requests=%d" % (st["open_max"], st["idle_closed"], st["slow_closed"], st["active_req"]))
    if why:
        print("probe failures: " + " ".join("%s=%d" % kv for kv in sorted(why.items())))
    if lat:
        print("RESULT probes=%d probe_fail=%d probe_p99_ms=%.1f probe_max_ms=%.1f" % (len(allv), nfail, pct(allv, .99), max(allv or [0])))

asyncio.run(main())
