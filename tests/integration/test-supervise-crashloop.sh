#!/usr/bin/env bash
# A crash-looping image on the real engine: the restart delays follow the back-off policy
# (immediate, then initial doubling to the cap, each within +-10% jitter), then the circuit
# opens and the retries come half-open at the cap; the healthy deployment beside it is untouched.
TEST=crashloop
source "$(dirname "$0")/lib-supervise.sh"
P=$(pick_ports)
cat > "$WORK/deployments.json" <<EOF
{"version":1,"deployments":[
 {"name":"loop","image":"$BERTH_WORKER_IMAGE","env":{"WORKER_FAULT":"crash"},"replicas":1,"inference":{"port":$P},
  "restart":{"policy":"always","backoff_initial_ms":300,"backoff_max_ms":1200,"reset_after_ms":60000}},
 {"name":"calm","image":"$BERTH_WORKER_IMAGE","replicas":1,"inference":{"port":$((P + 10))},
  "readiness":{"type":"http","path":"/v2/health/ready","period_ms":100}}]}
EOF
EXTRA_CONFIG=', "supervisor": { "migrate_after_failures": 4 }'
berthd_start
circuit_opened() { log_has "event=circuit_open deployment=loop"; }
wait_until 30 "circuit_open for the crash-looping deployment" circuit_opened && ok "circuit opened for the crash-looping deployment" || bad "circuit never opened"
# wait for one half-open retry after the open
half_open2() { [ "$(log_count "event=circuit_half_open_try deployment=loop")" -ge 2 ]; }
wait_until 10 "a second half-open retry" half_open2 && ok "half-open retries at the cap, and the circuit opens again" || bad "no second half-open retry"

# delays: from each exit to the restart that follows it
$PY - "$WORK/berthd.log" > "$WORK/gaps" <<'EOP'
import re, sys
exited = None
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"event=replica_(exited|restart) deployment=loop replica=0 .*wall_ms=(\d+)", line)
    if not m: continue
    if m.group(1) == "exited": exited = int(m.group(2))
    elif exited is not None:
        print(int(m.group(2)) - exited); exited = None
EOP
gaps=$(tr '\n' ' ' < "$WORK/gaps")
echo "     restart delays (ms): $gaps"
# policy: 0, 300, 600, 1200 (cap: circuit opens), 1200 (half-open) ... each +-10% (+30 ms of timer slack)
nominal=(0 300 600 1200 1200)
i=0; good=0
for g in $gaps; do
  [ $i -ge ${#nominal[@]} ] && break
  n=${nominal[$i]}
  lo=$(( n * 9 / 10 )); hi=$(( n * 11 / 10 + 30 ))
  if [ "$g" -ge "$lo" ] && [ "$g" -le "$hi" ]; then good=$((good + 1)); else bad "delay $((i + 1)) was $g ms, want $lo..$hi"; fi
  i=$((i + 1))
done
[ $good -eq ${#nominal[@]} ] && ok "restart delays follow 0/300/600/1200/1200 ms within +-10%" || bad "only $good delays checked"
# the cap was reached on the 4th failure: the circuit opened then, not before
opened_after=$(grep -E "event=replica_backoff deployment=loop .*circuit=open" "$WORK/berthd.log" | head -1 | sed -E 's/.*failures=([0-9]+).*/\1/')
[ "$opened_after" = 4 ] && ok "circuit opened on the 4th consecutive failure (delay at the cap)" ||
  bad "circuit opened after failure '$opened_after'"
migration() { log_has "event=migration_needed deployment=loop"; }
wait_until 5 "migration_needed" migration && ok "migration_needed raised after 4 failed recoveries" ||
  bad "no migration_needed"
log_has 'event=migration_needed seq=[0-9]+ detail=\{"deployment":"loop".*"spec":\{"name":"loop"' &&
  ok "migration_needed carries the spec" || bad "migration_needed without the spec"
ready_is calm 1 && ok "the other deployment stays ready" || bad "calm not ready"
[ "$(ctr_count loop)" -eq 1 ] && ok "one container for the crash loop (restarted in place)" || bad "$(ctr_count loop) containers"
finish
