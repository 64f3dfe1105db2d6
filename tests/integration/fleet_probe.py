#!/usr/bin/env python3
"""tests/integration/fleet_probe.py - figures of a fleet run from what the console side saw.

Reads the central consumer's output (mosquitto_sub -F '%U %t %p': receive time in s, topic,
payload, one message a line) and the brokers' logs. Subcommands (each prints one line):
  online FILE N SINCE_MS        seconds from SINCE_MS until every one of N devices published
                                status online:true with ts >= SINCE_MS (from the status' ts);
                                "-1 K" when only K did
  replies FILE ID T0_MS         "count p50_ms p99_ms max_ms devices_ok pub_ms" of the replies
                                to command ID: each reply's receive time minus the time the
                                consumer received the command itself (a group command, on
                                berth/v1/group/G/cmd/VERB), or minus T0_MS when it did not;
                                pub_ms: command received - T0_MS (the publisher's own start and
                                connect), -1 when not received; device ids from the replies
  telemetry FILE                "devices rows unique lost dup" over telemetry and event batches:
                                lost = seqs missing in 1..max seen of each device (rows a device
                                numbered and the consumer never got), dup = rows seen twice
  peak SINCE_S LOG...           "peak_per_s connects" : the most "New client connected ... as
                                fleet-" lines of the broker logs in one second at or after SINCE_S
"""
import json
import re
import sys
from collections import Counter, defaultdict


def messages(path, suffixes, cmds=False):
    """(time, topic, payload) of the lines whose topic ends with one of suffixes (the others are
    not parsed: the telemetry makes most of a fleet's file); with cmds, also every command topic."""
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) < 3 or not parts[1].endswith(suffixes) and not (cmds and "/cmd/" in parts[1]):
                continue
            try:
                yield float(parts[0]), parts[1], json.loads(parts[2])
            except ValueError:
                continue


def online(path, n, since_ms):
    first = {}
    for _, topic, p in messages(path, ("/status",)):
        if topic.endswith("/status") and isinstance(p, dict) and p.get("online") is True:
            ts = p.get("ts", 0)
            dev = p.get("device")
            if ts >= since_ms and dev not in first:
                first[dev] = ts
    if len(first) < n:
        return "-1 %d" % len(first)
    return "%.1f %d" % ((max(first.values()) - since_ms) / 1000.0, len(first))


def pct(v, q):
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else -1


def replies(path, cid, t0_ms):
    got, devs, sent_ms = [], set(), None
    for t, topic, p in messages(path, ("/reply",), cmds=True):
        if not isinstance(p, dict) or p.get("id") != cid:
            continue
        if not topic.endswith("/reply"):
            if topic.startswith("berth/v1/group/") and sent_ms is None:
                sent_ms = t * 1000.0
        elif p.get("device") not in devs:
            devs.add(p.get("device"))
            if p.get("ok"):
                got.append(t * 1000.0)
    base = sent_ms if sent_ms is not None else t0_ms
    lat = sorted(x - base for x in got)
    pub = sent_ms - t0_ms if sent_ms is not None else -1
    return "%d %.0f %.0f %.0f %d %.0f" % (len(devs), pct(lat, 0.5), pct(lat, 0.99), lat[-1] if lat else -1,
                                         len(lat), pub)


def telemetry(path):
    seen = defaultdict(Counter)
    for _, topic, p in messages(path, ("/telemetry", "/events")):
        if not (topic.endswith("/telemetry") or topic.endswith("/events")) or not isinstance(p, dict):
            continue
        for r in p.get("rows", []):
            if r.get("seq", 0) > 0:
                seen[p.get("device")][r["seq"]] += 1
    rows = unique = lost = dup = 0
    for c in seen.values():
        rows += sum(c.values())
        unique += len(c)
        dup += sum(v - 1 for v in c.values())
        lost += max(c) - len(c)
    return "%d %d %d %d %d" % (len(seen), rows, unique, lost, dup)


def peak(since_s, logs):
    per = Counter()
    pat = re.compile(r"^(\d+): New client connected from \S+ as fleet-")
    for log in logs:
        with open(log, errors="replace") as f:
            for line in f:
                m = pat.match(line)
                if m and int(m.group(1)) >= since_s:
                    per[int(m.group(1))] += 1
    return "%d %d" % (max(per.values()) if per else 0, sum(per.values()))


def main(a):
    if a[0] == "online":
        print(online(a[1], int(a[2]), int(a[3])))
    elif a[0] == "replies":
        print(replies(a[1], a[2], float(a[3])))
    elif a[0] == "telemetry":
        print(telemetry(a[1]))
    elif a[0] == "peak":
        print(peak(int(a[1]), a[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:] or ["help"])
