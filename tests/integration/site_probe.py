#!/usr/bin/env python3
"""tests/integration/site_probe.py - one look (or a timed watch) at every gateway of a test site:
its reported site view (local API, reached on the host side of the bridge) and what its engine
runs (Engine API on its unix socket). One process per look, so polling stays cheap.

Env: SITE_APIS="1=10.78.0.1:8480,..." SITE_SOCKS="1=/path/engine.sock,...", SITE_API_TOKEN (api.token).
  snap DEP              one line per gateway: I lease leader assigned ready running
                        (assigned as seen by that gateway; "-" when it does not answer)
  watch DEP A B MS T0   polls every 20 ms for at most MS: prints t_stop_ms (A runs no DEP
                        container), t_start_ms (B runs one), t_ready_ms (B reports it ready), in ms
                        since T0 (epoch ms, the fault); -1 for what did not happen
  leader X MS T0        polls until every gateway but X names the same leader, not gwX (X=0:
                        every gateway, any leader): prints t_leader_ms since T0, -1 after MS
"""
import http.client, json, os, socket, sys, time

def members(var):
    out = {}
    for e in os.environ.get(var, "").split(","):
        if "=" in e:
            k, v = e.split("=", 1)
            out[int(k)] = v
    return out

class UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)

def get(conn, path, headers=None):
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return json.loads(r.read())
    except Exception:
        return None
    finally:
        conn.close()

def running(sock, dep):
    l = get(UnixConn(sock, 3), "/v1.41/containers/json")
    if l is None:
        return None
    return sum(1 for c in l if c.get("Labels", {}).get("io.berth.deployment") == dep and c.get("State") == "running")

def view(api, timeout=1.0):
    host, port = api.rsplit(":", 1)
    token = os.environ.get("SITE_API_TOKEN", "")
    return get(http.client.HTTPConnection(host, int(port), timeout=timeout), "/v1/state",
               {"Authorization": "Bearer " + token} if token else None)

def row(i, api, sock, dep):
    s = view(api)
    r = running(sock, dep)
    if not s or "site" not in s:
        return "%d - - - - %s" % (i, "-" if r is None else r)
    v = s["site"]
    a = sum(1 for d in v["deployments"] if d["name"] == dep for m in d["assigned"] if m == "gw%d" % i)
    rd = sum(d.get("replicas_ready", 0) for d in s.get("deployments", []) if d["name"] == dep)
    return "%d %s %s %d %d %s" % (i, "yes" if v["lease"] else "no", v["leader"] or "-", a, rd, "-" if r is None else r)

def main():
    apis, socks = members("SITE_APIS"), members("SITE_SOCKS")
    cmd = sys.argv[1]
    if cmd == "snap":
        for i in sorted(apis):
            print(row(i, apis[i], socks[i], sys.argv[2]))
    elif cmd == "watch":
        dep, a, b, ms, t0 = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        since = lambda: int(time.time() * 1000) - t0
        t_stop = t_start = t_ready = -1
        while since() < ms and (t_stop < 0 or t_start < 0 or t_ready < 0):
            now = since()
            if t_stop < 0 and running(socks[a], dep) == 0:
                t_stop = now
            if t_start < 0 and (running(socks[b], dep) or 0) >= 1:
                t_start = now
            if t_start >= 0 and t_ready < 0:
                s = view(apis[b], 0.5)
                if s and sum(d.get("replicas_ready", 0) for d in s.get("deployments", []) if d["name"] == dep) >= 1:
                    t_ready = since()
            time.sleep(0.02)
        print("t_stop_ms=%d t_start_ms=%d t_ready_ms=%d" % (t_stop, t_start, t_ready))
    elif cmd == "leader":
        x, ms, t0 = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        since = lambda: int(time.time() * 1000) - t0
        t = -1
        while since() < ms and t < 0:
            seen = set()
            for i in sorted(apis):
                if i == x:
                    continue
                s = view(apis[i], 0.5)
                seen.add(s["site"]["leader"] if s and "site" in s else None)
            if len(seen) == 1 and None not in seen and seen != {"gw%d" % x}:
                t = since()
            else:
                time.sleep(0.02)
        print("t_leader_ms=%d" % t)
    else:
        sys.exit("usage: site_probe.py snap DEP | watch DEP A B MS T0 | leader X MS T0")

main()
