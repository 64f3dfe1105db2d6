#!/usr/bin/python3
"""scripts/demo-tool.py - the demo's sampler (live progress line) and its report (summary table, chart).

  demo-tool.py monitor DIR   samples every 0.5 s until DIR/stop exists (or SIGTERM):
                             replicas ready per deployment (GET /v1/state), broker up,
                             telemetry backlog (rows in the store's outbox), the load
                             generator's counters; writes DIR/samples.csv and prints
                             one updating progress line, with the story's steps
                             (DIR/story.log) printed above it as they happen.
  demo-tool.py report DIR    reads what the run recorded in DIR and prints the summary
                             table and a RESULT line; writes DIR/demo.png with gnuplot.

Everything is read from DIR/facts (KEY=VALUE lines written by scripts/demo.sh):
T0_MS (wall ms at the start of the story), API_PORT, DB, BROKER_PID_FILE,
DEPLOYMENTS (name:class:deadline_ms,...) and, for the report, what was measured.
Standard library only (Debian's /usr/bin/python3).
"""
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request

CLASSES = ("urgent", "normal", "batch")


def read_facts(d):
    facts = {}
    try:
        with open(os.path.join(d, "facts")) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    facts[k] = v
    except OSError:
        pass
    return facts


def deployments(facts):
    out = []
    for item in facts.get("DEPLOYMENTS", "").split(","):
        if item:
            name, cls, deadline = item.split(":")
            out.append((name, cls, int(deadline)))
    return out


def now_ms():
    return time.time() * 1000.0


# --- monitor -----------------------------------------------------------------


def replicas(port, names):
    """{name: (ready, desired)} from berthd's reported state (GET /v1/state), or None."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/v1/state" % port, timeout=0.4) as r:
            st = json.load(r)
    except Exception:
        return None
    counts = {n: (0, 0) for n in names}
    for dep in st.get("deployments", []):
        if dep.get("name") in counts:
            counts[dep["name"]] = (int(dep.get("replicas_ready", 0)), int(dep.get("replicas_desired", 0)))
    return counts


def backlog_rows(db):
    try:
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=0.3)
        try:
            return con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        finally:
            con.close()
    except Exception:
        return None


def broker_up(pid_file):
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return True
    except Exception:
        return False


def loadgen_progress(path):
    out = {}
    try:
        with open(path) as f:
            for tok in f.read().split():
                k, _, v = tok.partition("=")
                out[k] = int(v)
    except Exception:
        pass
    return out


def monitor(d):
    facts = read_facts(d)
    deps = deployments(facts)
    names = [n for n, _, _ in deps]
    t0 = float(facts["T0_MS"])
    stop = os.path.join(d, "stop")
    tty = sys.stdout.isatty()
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    signal.signal(signal.SIGINT, lambda *_: running.__setitem__(0, False))
    story_pos = 0
    last_plain = -10.0
    last = {n: (0, 0) for n in names}
    with open(os.path.join(d, "samples.csv"), "w") as out:
        out.write("t_s,broker_up,backlog,sent,ok,refused,failed," + ",".join(names) + "," +
                  ",".join(n + "_desired" for n in names) + "\n")
        while running[0] and not os.path.exists(stop):
            tick = time.time()
            t = (now_ms() - t0) / 1000.0
            reps = replicas(facts["API_PORT"], names)
            if reps is not None:
                last = reps
            up = broker_up(facts["BROKER_PID_FILE"])
            bl = backlog_rows(facts["DB"])
            pg = loadgen_progress(os.path.join(d, "progress"))
            out.write("%.2f,%d,%s,%d,%d,%d,%d,%s,%s\n" % (
                t, up, "" if bl is None else bl, pg.get("sent", 0), pg.get("ok", 0), pg.get("refused", 0),
                pg.get("failed", 0), ",".join(str(last[n][0]) for n in names),
                ",".join(str(last[n][1]) for n in names)))
            out.flush()
            # New story lines go above the progress line.
            try:
                with open(os.path.join(d, "story.log")) as f:
                    f.seek(story_pos)
                    new = f.read()
                    story_pos = f.tell()
            except OSError:
                new = ""
            for line in new.splitlines():
                parts = line.split("|", 2)
                if len(parts) == 3:
                    msg = "  %6.1f s  %s" % (float(parts[0]), parts[2])
                    sys.stdout.write(("\r\033[K" if tty else "") + msg + "\n")
            line = "  %6.1f s | sent %5d  ok %5d  refused %5d | replicas %s | broker %-4s | backlog %s rows" % (
                t, pg.get("sent", 0), pg.get("ok", 0), pg.get("refused", 0) + pg.get("failed", 0),
                " ".join("%s %d/%d" % (n[:3], last[n][0], last[n][1]) for n in names), "up" if up else "DOWN",
                "-" if bl is None else bl)
            if tty:
                sys.stdout.write("\r\033[K" + line)
            elif t - last_plain >= 5.0:
                sys.stdout.write(line + "\n")
                last_plain = t
            sys.stdout.flush()
            time.sleep(max(0.0, 0.5 - (time.time() - tick)))
    if tty:
        sys.stdout.write("\r\033[K")
        sys.stdout.flush()


# --- report ------------------------------------------------------------------


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * (len(v) - 1) + 0.5))]


def read_raw(path):
    rows = []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split(",")
            if len(p) < 6:
                continue
            rows.append({"lat": float(p[0]), "cls": p[1], "status": int(p[2]), "deadline": float(p[3]),
                         "sent_s": float(p[4]) / 1000.0, "model": p[5],
                         "reason": p[8] if len(p) > 8 and p[8] else str(p[2])})
    return rows


def read_samples(path):
    rows = []
    with open(path) as f:
        header = f.readline().strip().split(",")
        for line in f:
            p = line.strip().split(",")
            if len(p) != len(header):
                continue
            rows.append(dict(zip(header, p)))
    return header, rows


def seq_report(path, last_db):
    """(first, last, received, unique, duplicates, missing, unique within 1..last_db) over
    telemetry and event rows."""
    seqs = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    m = json.loads(line)
                    p = m["payload"]
                    p = json.loads(p) if isinstance(p, str) else p
                except Exception:
                    continue
                if isinstance(p, dict):
                    seqs += [r["seq"] for r in p.get("rows", []) if "seq" in r]
    except OSError:
        pass
    u = sorted(set(seqs))
    if not u:
        return 0, 0, 0, 0, 0, 0, 0
    upto = sum(1 for s in u if 1 <= s <= last_db)
    return u[0], u[-1], len(seqs), len(u), len(seqs) - len(u), (u[-1] - u[0] + 1) - len(u), upto


def read_story(path):
    marks = []
    try:
        with open(path) as f:
            for line in f:
                p = line.rstrip("\n").split("|", 2)
                if len(p) == 3:
                    marks.append((float(p[0]), p[1], p[2]))
    except OSError:
        pass
    return marks


def show_path(p):
    """p relative to the working directory when it lies below it, else absolute."""
    rel = os.path.relpath(p)
    return os.path.abspath(p) if rel.startswith("..") else rel


def fmt_ms(v):
    return "-" if v is None else ("%.0f" % v if v >= 100 else "%.1f" % v)


def report(d):
    facts = read_facts(d)
    deps = deployments(facts)
    raw = read_raw(os.path.join(d, "raw.csv"))
    header, samples = read_samples(os.path.join(d, "samples.csv"))
    marks = read_story(os.path.join(d, "story.log"))
    lines = []
    say = lines.append

    say("")
    say("berth demo: %s s of load, %s (%s requests, %sx real time), %s CPU cores (1-min load average %s"
        " as the load started), policy %s" % (
        facts.get("STORY_S", "?"), facts.get("SLICE", "?"), len(raw), facts.get("SPEEDUP", "?"),
        facts.get("NCPU", "?"), facts.get("LOADAVG", "?"), facts.get("POLICY", "?")))
    say("")
    say("requests (measured by the producer, through the local API)")
    say("  %-7s %-11s %8s %8s %6s %8s %7s %9s %12s" % ("CLASS", "MODEL", "REQUESTS", "ON TIME", "LATE", "REFUSED",
                                                       "FAILED", "P99 MS", "DEADLINE MS"))
    result = {}
    for name, cls, deadline in deps:
        rs = [r for r in raw if r["model"] == name]
        ok = [r for r in rs if r["status"] == 200 and r["lat"] >= 0]
        on_time = sum(1 for r in ok if r["lat"] <= r["deadline"])
        refused = sum(1 for r in rs if r["status"] == 503)
        failed = len(rs) - len(ok) - refused
        p99 = pct([r["lat"] for r in ok], 99)
        say("  %-7s %-11s %8d %8d %6d %8d %7d %9s %12d" % (cls, name, len(rs), on_time, len(ok) - on_time, refused,
                                                          failed, fmt_ms(p99), deadline))
        result["%s_requests" % cls] = len(rs)
        result["%s_on_time" % cls] = on_time
        result["%s_refused" % cls] = refused
        result["%s_p99_ms" % cls] = fmt_ms(p99)
    say("  (on time: answered 200 within the deadline; refused: 503 at once, never run late;"
        " failed: 502/504 or no answer)")
    reasons = {}
    for r in raw:
        if r["status"] != 200:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    if reasons:
        say("  refused or failed, by reason: " + ", ".join(
            "%s %d" % (k, v) for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])))

    # Self-healing: kills and measured kill -> ready.
    kills = []
    try:
        with open(os.path.join(d, "kills.csv")) as f:
            for line in f:
                p = line.strip().split(",")
                if len(p) == 4:
                    kills.append((p[0], p[1], p[2], p[3]))
    except OSError:
        pass
    replaced = [int(k[3]) for k in kills if k[3] not in ("", "-1")]
    say("")
    say("self-healing (container SIGKILLed through the engine, as a crash)")
    for dep, slot, t_s, ms in kills:
        say("  %-11s replica %s killed at %5.1f s: %s" % (
            dep, slot, float(t_s), "replaced and ready in %s ms" % ms if ms not in ("", "-1") else "NOT replaced"))
    mean = sum(replaced) / len(replaced) if replaced else None
    say("  kills %d, replaced %d, mean time to replacement %s ms" % (len(kills), len(replaced),
                                                                   "-" if mean is None else "%.0f" % mean))
    result.update(kills=len(kills), replaced=len(replaced), mean_replace_ms="-" if mean is None else "%.0f" % mean)

    # Autoscaling: ready replicas over time.
    say("")
    say("autoscaling (replicas per deployment from berthd's reported state, sampled every 0.5 s)")
    steps = 0
    for name, _, _ in deps:
        series = [(float(s["t_s"]), int(s[name]), int(s[name + "_desired"])) for s in samples
                  if s.get(name, "") != "" and s.get(name + "_desired", "") != ""]
        if not series:
            continue
        ups, top = [], series[0][2]   # a step up: more replicas desired than before
        for t, _, want in series:
            if want > top:
                ups.append((t, want))
                top = want
        ready_at = []
        for t_up, want in ups:
            r = next((t for t, ready, _ in series if t >= t_up and ready >= want), None)
            ready_at.append("%d at %.1f s (ready %s)" % (want, t_up, "at %.1f s" % r if r is not None else "not yet"))
        steps += len(ups)
        say("  %-11s desired %d at the start, peak %d, %d at the end; ready peak %d; scaled up: %s" % (
            name, series[0][2], max(w for _, _, w in series), series[-1][2], max(r for _, r, _ in series),
            ", ".join(ready_at) or "never"))
    result["replica_steps_up"] = steps

    # Telemetry: outage, buffered rows, forwarding, loss from seq gaps.
    first, last, received, unique, dups, missing, upto = seq_report(os.path.join(d, "telemetry.jsonl"),
                                                                   int(facts.get("LAST_SEQ", "0") or 0))
    last_db = int(facts.get("LAST_SEQ", "0") or 0)
    # Lost: sequence numbers berthd gave out (1..its last) that never arrived.
    lost = last_db - upto
    say("")
    say("telemetry (a QoS 1 consumer on berth/v1/%s/telemetry and /events counts every seq)" % facts.get("DEVICE", "?"))
    if facts.get("OUTAGE_S"):
        say("  broker down %s s; rows buffered in the outbox at reconnection %s; backlog drained %s s after it" % (
            facts["OUTAGE_S"], facts.get("BUFFERED", "?"), facts.get("DRAIN_S", "?")))
    say("  rows forwarded %d (seq %d..%d, berthd's last %d), duplicates %d, lost %d" % (
        unique, first, last, last_db, dups, lost))
    result.update(rows_buffered=facts.get("BUFFERED", "0"), rows_forwarded=unique, duplicates=dups, lost=lost)

    png = os.path.join(d, "demo.png")
    chart(d, deps, raw, header, samples, marks, png)
    say("")
    say("chart: %s" % (show_path(png) if os.path.exists(png) else "NOT written (gnuplot failed)"))
    result["chart"] = show_path(png)
    say("RESULT demo " + " ".join("%s=%s" % (k, v) for k, v in result.items()))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(d, "summary.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


def chart(d, deps, raw, header, samples, marks, png):
    data = os.path.join(d, "chart")
    os.makedirs(data, exist_ok=True)
    colors = {"urgent": "#d62728", "normal": "#1f77b4", "batch": "#2ca02c"}
    for name, cls, _ in deps:
        with open(os.path.join(data, "ok-%s.dat" % name), "w") as f:
            for r in raw:
                if r["model"] == name and r["status"] == 200 and r["lat"] >= 0:
                    f.write("%.3f %.3f\n" % (r["sent_s"], max(r["lat"], 0.1)))
        with open(os.path.join(data, "refused-%s.dat" % name), "w") as f:
            for r in raw:
                if r["model"] == name and r["status"] != 200 and r["sent_s"] >= 0:
                    f.write("%.3f\n" % r["sent_s"])
    # Share of requests on time per 5 s window of sending, per class (refusals are misses).
    win = 5.0
    with open(os.path.join(data, "ontime.dat"), "w") as f:
        nwin = int(max([r["sent_s"] for r in raw] + [0.0]) // win) + 1
        for k in range(nwin):
            cols = []
            for name, _, _ in deps:
                rs = [r for r in raw if r["model"] == name and k * win <= r["sent_s"] < (k + 1) * win]
                ok = sum(1 for r in rs if r["status"] == 200 and 0 <= r["lat"] <= r["deadline"])
                cols.append("%.1f" % (100.0 * ok / len(rs)) if len(rs) >= 5 else "NaN")
            f.write("%.1f %s\n" % ((k + 0.5) * win, " ".join(cols)))
    with open(os.path.join(data, "samples.dat"), "w") as f:
        for s in samples:
            f.write(" ".join(s[h] if s[h] != "" else "NaN" for h in header) + "\n")
    t_end = max([float(s["t_s"]) for s in samples] + [r["sent_s"] for r in raw] + [1.0])
    outages, start = [], None
    for t, k, _ in marks:
        if k == "broker_down":
            start = t
        elif k == "broker_up" and start is not None:
            outages.append((start, t))
            start = None
    if start is not None:
        outages.append((start, t_end))
    kills = [(t, txt) for t, k, txt in marks if k == "kill"]
    col = {h: i + 1 for i, h in enumerate(header)}
    maxrep = max([int(s[k]) for s in samples for n, _, _ in deps for k in (n, n + "_desired") if s.get(k, "") != ""]
                 + [1])

    gp = []
    w = gp.append
    w("set terminal pngcairo size 1200,1250 font 'DejaVu Sans,10'")
    w("set output '%s'" % png)
    w("set multiplot layout 4,1 title 'berth demo: %s' font ',13'" % "latency against deadline, replicas and telemetry over time")
    w("set xrange [0:%.1f]" % (math.ceil(t_end)))
    w("set grid ytics lc rgb '#dddddd'")
    w("set key outside right top vertical Left reverse")
    w("set lmargin 12; set rmargin 32")
    shade = []
    for i, (a, b) in enumerate(outages):
        shade.append("set object %d rect from %.2f, graph 0 to %.2f, graph 1 behind fc rgb '#eeeeee' fs solid noborder"
                     % (50 + i, a, b))
    for i, (t, txt) in enumerate(kills):
        shade.append("set arrow %d from %.2f, graph 0 to %.2f, graph 1 nohead dt 2 lc rgb '#555555'" % (60 + i, t, t))
        shade.append("set label %d '%s' at %.2f, graph 0.97 left offset 0.5,0 font ',8' tc rgb '#555555'"
                     % (60 + i, txt.replace("'", ""), t))
    # 1: latency against deadline
    w("set title 'latency of answered requests (points) against each class deadline (lines); refused at the bottom'")
    w("set ylabel 'latency (ms, log)'")
    w("set logscale y")
    w("set yrange [0.3:30000]")
    w("set format x ''")
    w("\n".join(shade))
    if outages:
        w("set label 90 'broker down' at %.2f, graph 0.90 left offset 0.5,0 font ',8' tc rgb '#777777'" % outages[0][0])
    plots = []
    for name, cls, deadline in deps:
        c = colors.get(cls, "#000000")
        plots.append("'%s/ok-%s.dat' u 1:2 w p pt 7 ps 0.45 lc rgb '%s' t '%s (%s)'" % (data, name, c, name, cls))
        plots.append("%d w l lw 2 dt 2 lc rgb '%s' t '%s deadline %d ms'" % (deadline, c, cls, deadline))
    for i, (name, cls, _) in enumerate(deps):
        c = colors.get(cls, "#000000")
        plots.append("'%s/refused-%s.dat' u 1:(0.45*%.2f) w p pt 2 ps 0.4 lc rgb '%s' t '%s refused'"
                     % (data, name, 1.0 + 0.35 * i, c, name))
    w("plot " + ", \\\n  ".join(plots))
    w("unset label 90")
    # 2: on time per window
    w("set title 'requests answered within their deadline, per 5 s window (refused and failed count as missed)'")
    w("unset logscale y")
    w("set ylabel 'on time (%)'")
    w("set yrange [0:105]")
    plots = []
    for i, (name, cls, _) in enumerate(deps):
        plots.append("'%s/ontime.dat' u 1:%d w lp pt 7 ps 0.6 lw 2 lc rgb '%s' t '%s (%s)'"
                     % (data, i + 2, colors.get(cls, "#000"), name, cls))
    w("plot " + ", \\\n  ".join(plots))
    # 3: replicas
    w("set title 'replicas per deployment: ready (solid), desired (dashed)'")
    w("set ylabel 'replicas'")
    w("set yrange [0:%d]" % (maxrep + 1))
    w("set ytics 1")
    plots = []
    for name, cls, _ in deps:
        c = colors.get(cls, "#000")
        plots.append("'%s/samples.dat' u 1:%d w steps lw 2 lc rgb '%s' t '%s ready'" % (data, col[name], c, name))
        plots.append("'%s/samples.dat' u 1:(column(%d)+0.06) w steps lw 1 dt 2 lc rgb '%s' t '%s desired'"
                     % (data, col[name + "_desired"], c, name))
    w("plot " + ", \\\n  ".join(plots))
    # 4: telemetry backlog and producer counters
    w("set title 'telemetry rows buffered in the outbox (backlog); grey: broker down'")
    w("set ylabel 'rows'")
    w("set autoscale y; set yrange [0:*]")
    w("set ytics autofreq")
    w("set format x '%g'")
    w("set xlabel 'time since the load started (s)'")
    w("plot '%s/samples.dat' u 1:%d w steps lw 2 lc rgb '#9467bd' t 'backlog'" % (data, col["backlog"]))
    w("unset multiplot")
    script = os.path.join(data, "demo.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    try:
        subprocess.run(["gnuplot", script], check=True, stdout=subprocess.DEVNULL,
                       stderr=open(os.path.join(data, "gnuplot.log"), "w"), timeout=60)
    except Exception:
        try:
            os.unlink(png)
        except OSError:
            pass


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("monitor", "report"):
        sys.stderr.write("usage: demo-tool.py monitor|report DIR\n")
        return 2
    if sys.argv[1] == "monitor":
        monitor(sys.argv[2])
    else:
        report(sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
