# tests/integration/lib-common.sh - small helpers shared by the standalone integration scripts and
# benchmarks: time, free ports, the one wait (wait_until), HTTP status, JSON fields, Engine API calls,
# worker containers and the cleanup trap.
# Source it. engine_call needs $tmp (a scratch directory) and BERTH_ENGINE_SOCK.
# shellcheck shell=bash

now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $(( 10#$t / 1000 )); }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_until TIMEOUT_S DESCRIPTION CMD...: the one wait of the tests. Runs CMD in this shell (so a
# condition may keep figures in variables), its output kept aside, every $WAIT_STEP s (default 0.1)
# until it succeeds: 0. When TIMEOUT_S seconds (decimals allowed) pass first: prints on stderr what
# it waited for, the command and the last output of CMD, and returns 1. Readiness is always waited
# for this way, on a condition; a fixed sleep is only for a window in which a test shows that
# nothing happens, and says so.
wait_until() {
  local secs=$1 what=$2 whole frac out rc end
  shift 2
  whole=${secs%%.*}; frac=; [[ $secs == *.* ]] && frac=${secs#*.}; frac=${frac}000
  end=$(( $(now_ms) + 10#${whole:-0} * 1000 + 10#${frac:0:3} ))
  out=${TMPDIR:-/tmp}/wait_until.$$.$BASHPID
  while :; do
    rc=0; "$@" > "$out" 2>&1 || rc=$?
    [ $rc -ne 0 ] || { rm -f "$out"; return 0; }
    [ "$(now_ms)" -lt $end ] || break
    sleep "${WAIT_STEP:-0.1}"
  done
  {
    echo "wait_until: gave up after ${secs} s waiting for $what"
    echo "  condition: $* (exit $rc)"
    [ -s "$out" ] && { echo "  last output:"; tail -c 1500 "$out" | tail -n 20 | sed 's/^/  | /'; }
  } >&2
  rm -f "$out"
  return 1
}

# mqtt_subscribed LOG CLIENT TOPIC [AFTER]: whether the broker whose log is LOG (log_type subscribe)
# logged CLIENT's subscription to TOPIC after its line AFTER (default 0): a subscriber is ready.
mqtt_subscribed() {
  awk -v c="$2" -v t="$3" -v a="${4:-0}" 'NR > a && $2 == c && $4 == t { f = 1 } END { exit !f }' "$1" 2>/dev/null
}
# log_lines FILE: its line count (0 when it does not exist yet).
log_lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }

# code [CURL ARGS...] URL: the HTTP status of the answer (000 when none came within $T s, default 5).
code() { curl -s -m "${T:-5}" -o /dev/null -w '%{http_code}' "$@" || true; }

# json EXPR: prints the Python expression EXPR over d, the JSON document read from stdin.
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {"d": d}))' "$1"; }

# engine_call METHOD PATH [JSON]: one Engine API call (v1.41) on BERTH_ENGINE_SOCK; sets $status
# (the HTTP status, 000 when it failed) and $body.
# shellcheck disable=SC2034 # status and body are for the caller
engine_call() {
  local args=(-s -m 30 -X "$1" --unix-socket "$BERTH_ENGINE_SOCK" -o "$tmp/engine-body" -w '%{http_code}')
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' -d "$3")
  : > "$tmp/engine-body"
  status=$(curl "${args[@]}" "http://localhost/v1.41$2") || status=000
  body=$(cat "$tmp/engine-body")
}

# engine_rm ID...: removes containers with force, ignoring errors (for cleanup traps).
engine_rm() {
  local c
  for c in "$@"; do
    curl -s -m 10 -X DELETE --unix-socket "$BERTH_ENGINE_SOCK" \
      "http://localhost/v1.41/containers/$c?force=true" >/dev/null || true
  done
}

# scratch_cleanup: for EXIT traps of scripts that run berthd and worker containers: stops
# $berthd_pid, removes the containers in the containers array and $tmp, and stops the test services
# when $own is set (the script started them).
scratch_cleanup() {
  [ -n "${berthd_pid:-}" ] && kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null || true
  engine_rm "${containers[@]}"
  rm -rf "$tmp"
  [ -z "${own:-}" ] || services_stop
}

# worker_run NAME OWNER INDEX PORT [ENV...]: creates and starts a reference-worker container named
# NAME with host networking, BERTH_PORT=PORT, BERTH_REPLICA=INDEX and the extra ENV entries, labelled
# io.berth.owner=OWNER and io.berth.replica=INDEX; appends its id to the caller's containers array.
# 1 with a message on stderr when the engine refuses either call.
worker_run() {
  local name=$1 owner=$2 i=$3 port=$4 env e cid; shift 4
  env="\"BERTH_PORT=$port\",\"BERTH_REPLICA=$i\""
  for e in "$@"; do env+=",\"$e\""; done
  engine_call POST "/containers/create?name=$name" \
    "{\"Image\":\"$BERTH_WORKER_IMAGE\",\"Env\":[$env],
      \"Labels\":{\"io.berth.owner\":\"$owner\",\"io.berth.replica\":\"$i\"},
      \"HostConfig\":{\"NetworkMode\":\"host\"}}"
  [ "$status" = 201 ] || { echo "create worker $i: $status $body" >&2; return 1; }
  cid=$(echo "$body" | json 'd["Id"]'); containers+=("$cid")
  engine_call POST "/containers/$cid/start"
  [ "$status" = 204 ] || { echo "start worker $i: $status" >&2; return 1; }
}
