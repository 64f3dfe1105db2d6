#!/usr/bin/env bash
# The engine client and replica calls against the real engine (podman's Docker
# API) and the reference worker: every hal_engine call, the event stream across
# an engine restart, and keep-alive replica calls with their error mapping.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BERTH_BUILD:-$here/build}
: "${BERTH_ENGINE_SOCK:?engine not started (run through scripts/integration.sh)}"
busybox=${BERTH_BUSYBOX_IMAGE:-localhost/berth-busybox:latest}
worker=${BERTH_WORKER_IMAGE:-localhost/berth-worker:latest}
if ! declare -F engine_stop >/dev/null; then
  # shellcheck source=/dev/null
  source "$here/scripts/test-services.sh"
fi

work=$(mktemp -d)
watch_pid=
cleanup() {
  [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
# expect FILE REGEX: a line of the probe's output must match
expect() { grep -Eq "$2" "$1" || { echo "--- $1"; cat "$1"; fail "expected /$2/"; }; }

# The probe links the core and the linux port as berthd does.
probe=$work/engine_probe
${CC:-cc} -std=c11 -D_GNU_SOURCE -I"$here" -I"$build/include" -imacros "$build/include/generated/autoconf.h" \
  -include "$here/agent/base/kconfig.h" -O1 -g -o "$probe" "$here/tests/integration/engine_probe.c" \
  -Wl,--start-group "$build/lib/libberth-core.a" "$build/lib/libberth-linux.a" -Wl,--end-group \
  -lcurl -lcjson -lm

# shellcheck source=tests/integration/lib-common.sh
source "$here/tests/integration/lib-common.sh"

echo "== container lifecycle"
out=$work/lifecycle.txt
timeout 120 "$probe" "$BERTH_ENGINE_SOCK" lifecycle "$busybox" > "$out" 2>&1 || { cat "$out"; fail "probe lifecycle"; }
cat "$out"
expect "$out" '^event=up '
expect "$out" '^ping err=0$'
expect "$out" '^create err=0$'
expect "$out" '^create_dup err=-17$'                  # -EEXIST
expect "$out" '^start err=0$'
expect "$out" '^start_again err=0$'                  # 304 is success
expect "$out" '^inspect err=0 state=2 pid=[1-9][0-9]* name=berth-probe-[0-9]+ image=.*label_owner=probe-'
expect "$out" '^list err=0 n=1 match=1$'
expect "$out" '^exec err=0 code=3$'
expect "$out" '^exec0 err=0 code=0$'
expect "$out" '^pause err=0$'
expect "$out" '^inspect_paused state=3$'
expect "$out" '^pause_again err=-16$'                # -EBUSY
expect "$out" '^unpause err=0$'
expect "$out" '^kill err=0$'
expect "$out" '^event=die id=[0-9a-f]{12} exit_code=137$'
expect "$out" '^inspect_dead state=5 pid=0 exit_code=137$'
expect "$out" '^kill_stopped err=-16$'
expect "$out" '^stop err=0$'
expect "$out" '^stop_again err=0$'
expect "$out" '^remove err=0$'
expect "$out" '^event=(pause|unpause|start|destroy) '
expect "$out" '^inspect_gone err=-2$'                # -ENOENT
expect "$out" '^remove_gone err=-2 msg_set=1$'
expect "$out" "^inflight accepted=[0-9]+ busy=1$"

echo "== event stream survives an engine restart"
out=$work/watch.txt
"$probe" "$BERTH_ENGINE_SOCK" watch 60 2 > "$out" 2>&1 &
watch_pid=$!
wait_until 15 "event=up from the probe" grep -q '^event=up' "$out" || fail "stream never up"
engine_stop
wait_until 15 "event=lost from the probe" grep -q '^event=lost' "$out" || fail "loss not reported"
engine_start
wait "$watch_pid" || true
watch_pid=
cat "$out"
expect "$out" '^watch ups=2 losts=1$'

echo "== replica calls to the reference worker"
port=$(free_port); dead=$(free_port)
out=$work/invoke.txt
timeout 120 "$probe" "$BERTH_ENGINE_SOCK" worker "$worker" "$port" "$dead" > "$out" 2>&1 || { cat "$out"; fail "probe worker"; }
cat "$out"
expect "$out" '^worker_create err=0 '
expect "$out" '^worker_start err=0$'
expect "$out" '^ready err=0$'
expect "$out" '^infer ok=20 of=20 conns_opened=[01] '  # one kept-alive connection
expect "$out" '^infer_body has_outputs=1$'
expect "$out" '^timeout err=-110$'                    # -ETIMEDOUT
expect "$out" '^refused err=-111$'                    # -ECONNREFUSED
expect "$out" '^tcp_probe err=0$'
expect "$out" '^tcp_probe_dead err=-111$'
expect "$out" '^cancel handle_ok=1 called=0$'
expect "$out" '^worker_remove err=0$'
echo "test-engine: ok"
