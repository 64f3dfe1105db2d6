#!/usr/bin/env bash
# Inference end to end on supervised replicas: berthd runs two worker replicas from its deployments
# file and serves the local API with them. Requests are answered by both replicas (200, X-Berth-*
# headers); a replica failing readiness gets no request until it is ready again; a replica SIGKILLed
# mid-request leads to a retry or a refusal within the deadline, and its replacement gets requests
# again; with no ready replica the answer is an immediate 503 no_ready_replica; /metrics counts
# exactly what was sent.
TEST=infer-serve
source "$(dirname "$0")/lib-infer.sh"
echo "{\"version\":1,\"deployments\":[$(worker_deployment w "$P" 2 normal 2000)]}" > "$WORK/deployments.json"
berthd_start
wait_until 20 "HTTP 200 from $API/v2/models/w/ready" http_is 200 "$API/v2/models/w/ready" || bad "model w never ready through the API"
wait_until 10 "ready replicas of w = 2" ready_is w 2 || bad "w never got 2 ready replicas"
wait_until 5 "w replica 1 ready in the dispatcher" disp_ready w 1 || bad "replica 1 not ready in the dispatcher"
sent=0; on_time=0; no_ready=0; other=0
tally() { # counts the outcome of the last infer
  sent=$((sent + 1))
  if [ "$st" = 200 ]; then on_time=$((on_time + 1));
  elif [ "$reason" = no_ready_replica ]; then no_ready=$((no_ready + 1));
  else other=$((other + 1)); fi
}
# pairs N COST: N rounds of two requests at once (both replicas busy); fails unless all are 200
pairs() {
  local i bad_st=0
  for i in $(seq "$1"); do
    ( infer w "$2"; echo "$st" > "$WORK/p.a" ) & local a=$!
    ( infer w "$2"; echo "$st" > "$WORK/p.b" ) & local b=$!
    wait "$a" "$b"
    for f in "$WORK/p.a" "$WORK/p.b"; do
      st=$(cat "$f"); reason=""; [ "$st" = 200 ] || { bad_st=1; reason=x; }; tally
    done
  done
  return $bad_st
}

# --- served by the supervised replicas, with berth's headers
infer w 5 -H 'X-Berth-Deadline-Ms: 2000'; tally
if [ "$st" = 200 ] && grep -qi '^X-Berth-Queue-Ms: [0-9.]*$' <<<"$hdr" && grep -qi '^X-Berth-Service-Ms: [0-9.]*$' <<<"$hdr" \
   && [ "$(jget 'd["model_name"]' <<<"$out")" = w ]; then
  ok "request served by a supervised replica: 200 with X-Berth-Queue-Ms and X-Berth-Service-Ms"
else bad "first request: $st $hdr $out"; fi
pairs 10 50 && ok "20 requests in pairs all 200" || bad "pairs: not all 200"
s0=$(wstat "$P" served); s1=$(wstat $((P + 1)) served)
[ "${s0:-0}" -ge 1 ] && [ "${s1:-0}" -ge 1 ] && [ $((s0 + s1)) -eq $sent ] \
  && ok "both replicas served (replica 0: $s0, replica 1: $s1 of $sent)" || bad "served 0:$s0 1:$s1 of $sent"
addr=$(curl -s -m 5 "$API/v1/state" | jget '",".join(r["address"] for r in d["dispatch"]["deployments"][0]["replicas"])')
[ "$addr" = "127.0.0.1:$P,127.0.0.1:$((P + 1))" ] && ok "/v1/state lists the replicas at port_base+index" || bad "replicas $addr"

# --- readiness failure: no requests until ready again
wfault $((P + 1)) unready
wait_until 5 "w replica 1 unready in the dispatcher" disp_unready w 1 && ok "replica 1 unready in the dispatcher after its probe failed" || bad "replica 1 still ready"
s1=$(wstat $((P + 1)) served)
pairs 5 50 || bad "requests failed while replica 1 was unready"
[ "$(wstat $((P + 1)) served)" = "$s1" ] && ok "unready replica 1 got none of 10 requests" || bad "unready replica served $(( $(wstat $((P + 1)) served) - s1 ))"
wfault $((P + 1)) ok
wait_until 5 "w replica 1 ready in the dispatcher" disp_ready w 1 || bad "replica 1 not ready again"
pairs 5 50 || bad "requests failed after replica 1 was ready again"
[ "$(wstat $((P + 1)) served)" -gt "$s1" ] && ok "replica 1 serves again once ready" || bad "replica 1 not used after ready"

# --- SIGKILL mid-request: retried on the other replica, or refused, within the deadline
busy=""
find_busy() { for i in 0 1; do [ "$(wstat $((P + i)) inflight)" = 1 ] && { busy=$i; return 0; }; done; return 1; }
( infer w 600 -H 'X-Berth-Deadline-Ms: 3000'; echo "$st $ms $reason" > "$WORK/kill.res"; echo "$out" > "$WORK/kill.out" ) &
kpid=$!
wait_until 3 "a replica busy with the slow request" find_busy || bad "no replica busy with the slow request"
gen0=$(log_count "event=replica_ready deployment=w replica=$busy ")
kill -KILL "$(ctr_pid "$(ctr_field w "$busy" Id)")"
wait "$kpid"
read -r st ms reason < "$WORK/kill.res"; tally
if [ "$st" = 200 ] && [ "$ms" -lt 3000 ]; then
  [ "$(jget 'd["parameters"]["replica"]' < "$WORK/kill.out")" != "$busy" ] \
    && ok "replica $busy SIGKILLed mid-request: retried on the other, 200 in $ms ms (deadline 3000)" \
    || bad "answer came from the killed replica"
elif [ "$st" = 503 ] || [ "$st" = 502 ] || [ "$st" = 504 ]; then
  [ "$ms" -lt 3100 ] && ok "replica $busy SIGKILLed mid-request: $st ($reason) in $ms ms, within the deadline" \
    || bad "refusal after the deadline: $ms ms"
else bad "killed mid-request: $st in $ms ms"; fi
replaced() { [ "$(log_count "event=replica_ready deployment=w replica=$busy ")" -gt "$gen0" ]; }
wait_until 15 "the killed replica ready again" replaced && ok "killed replica $busy replaced and ready again" || bad "replica $busy not ready again"
wait_until 5 "w replica $busy ready in the dispatcher" disp_ready w "$busy" || bad "replica $busy not ready in the dispatcher"
pairs 5 50 || bad "requests failed after the replacement"
[ "$(wstat $((P + busy)) served)" -ge 1 ] && ok "the replacement of replica $busy gets requests again" \
  || bad "replacement of replica $busy got no request"

# --- no ready replica: immediate 503
wfault "$P" unready; wfault $((P + 1)) unready
wait_until 5 "w replica 0 unready in the dispatcher" disp_unready w 0 || bad "replica 0 still ready"
wait_until 5 "w replica 1 unready in the dispatcher" disp_unready w 1 || bad "replica 1 still ready"
infer w 5; tally
if [ "$st" = 503 ] && [ "$reason" = no_ready_replica ] && grep -qi '^Retry-After: [0-9]' <<<"$hdr" && [ "$ms" -lt 200 ]; then
  ok "no ready replica: 503 no_ready_replica with Retry-After in $ms ms"
else bad "no ready replica: $st $reason in $ms ms ($hdr)"; fi
[ "$(code_of "$API/v2/models/w/ready")" = 503 ] && ok "model ready answers 503" || bad "model still ready"
wfault "$P" ok; wfault $((P + 1)) ok
wait_until 5 "w replica 0 ready in the dispatcher" disp_ready w 0 || bad "replica 0 not ready again"

# --- /metrics counts what was sent
m_total=$(metric 'berth_requests_total{model="w",class="normal"}')
m_on=$(metric 'berth_requests_on_time_total{model="w",class="normal"}')
m_nr=$(metric 'berth_requests_refused_total{model="w",class="normal",reason="no_ready_replica"}')
if [ "$m_total" = "$sent" ] && [ "$m_on" = "$on_time" ] && [ "$m_nr" = "$no_ready" ]; then
  ok "/metrics: $m_total requests, $m_on on time, $m_nr refused no_ready_replica - as sent"
else bad "/metrics total=$m_total on_time=$m_on no_ready=$m_nr; sent $sent, 200: $on_time, no_ready: $no_ready, other: $other"; fi
finish
