#!/usr/bin/env bash
# A spec change (new environment, applied with SIGHUP) rolls the replicas one at a time on the
# real engine: a new replica is ready before an old one goes, so the ready count never drops
# below the desired count (and so never below min); the end state is all new, no extra containers.
TEST=roll
source "$(dirname "$0")/lib-supervise.sh"
P=$(pick_ports)
spec() { # VERSION VALUE
  cat > "$WORK/deployments.json" <<EOF
{"version":$1,"deployments":[
 {"name":"delta","image":"$BERTH_WORKER_IMAGE","env":{"ROLL":"$2","WORKER_STARTUP_MS":"200"},
  "replicas":{"min":2,"max":3,"desired":3},"inference":{"port":$P},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100,"timeout_ms":500},
  "liveness":{"type":"http","path":"/v2/health/live","period_ms":500,"timeout_ms":500}}]}
EOF
}
spec 1 one
berthd_start
wait_until 20 "ready replicas of delta = 3" ready_is delta 3 && ok "3 replicas ready" || bad "not 3 ready"
old_hash=$(ctr_field delta 0 hash)
mark=$(wc -l < "$WORK/berthd.log")
spec 2 two
kill -HUP "$BERTHD_PID"
t0=$(now_ms)
max_ctrs=0
done_roll() { [ "$(owned_json | $PY -c '
import sys, json
cs = json.load(sys.stdin)
print(sum(1 for c in cs if c["Labels"]["io.berth.spec-hash"] != sys.argv[1] and c["State"] == "running"))' "$old_hash")" -eq 3 ] &&
  [ "$(ctr_count delta)" -eq 3 ] && ready_is delta 3; }
# polled: the roll's end, and on the way the most containers delta had at once
sampled_done_roll() { local n; n=$(ctr_count delta); [ "$n" -le $max_ctrs ] || max_ctrs=$n; done_roll; }
wait_until 30 "the roll to the new spec (3 new, running, ready)" sampled_done_roll && ok "rolled to the new spec in $(( $(now_ms) - t0 )) ms" || bad "roll did not finish"
# replay berthd's ready/unready transitions during the roll: the minimum ready count
min_ready=$($PY - "$WORK/berthd.log" "$mark" <<'EOP'
import re, sys
ready = set(); low = None
for i, line in enumerate(open(sys.argv[1], errors="replace")):
    m = re.search(r"event=replica_(ready|unready) deployment=delta replica=(\d+)", line)
    if not m: continue
    (ready.add if m.group(1) == "ready" else ready.discard)(m.group(2))
    if i >= int(sys.argv[2]):
        low = len(ready) if low is None else min(low, len(ready))
print(low if low is not None else -1)
EOP
)
[ "$min_ready" -ge 3 ] && ok "ready replicas never below 3 (desired) during the roll (min $min_ready)" ||
  bad "ready dropped to $min_ready during the roll"
[ "$max_ctrs" -le 4 ] && ok "at most one surge replica (max $max_ctrs containers)" || bad "$max_ctrs containers at once"
rolls=$(log_count "event=roll_remove deployment=delta")
[ "$rolls" -eq 3 ] && ok "3 old replicas removed one by one after a new one was ready" || bad "$rolls roll removals"
finish
