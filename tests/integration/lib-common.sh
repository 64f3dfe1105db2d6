# tests/integration/lib-common.sh - small helpers shared by the standalone integration scripts and
# benchmarks: time, free ports, polling with a deadline, HTTP status, JSON fields, Engine API calls.
# Source it. engine_call needs $tmp (a scratch directory) and BERTH_ENGINE_SOCK.
# shellcheck shell=bash

now_ms() { date +%s%3N; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for MS CMD...: polls CMD (every $WAIT_STEP s, default 0.05) until it succeeds; 1 when MS pass first.
wait_for() {
  local deadline=$(( $(now_ms) + $1 )); shift
  until "$@"; do [ "$(now_ms)" -lt $deadline ] || return 1; sleep "${WAIT_STEP:-0.05}"; done
}

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
