# tests/integration/lib-site.sh - three (or N) berthd gateways in network namespaces forming a site:
# their configs, start/kill, the site view each reports, and what each engine runs.
# Source it; set TEST first. Uses scripts/site-net.sh (root). The broker is never reachable: the
# site must work without the cloud.
# shellcheck shell=bash
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BERTH_BUILD:-$here/build}
# the site preset's build (make site-build) when there is one: the default preset has no site
[ -x "$build/site/berthd" ] && build=$build/site
source "$here/scripts/site-net.sh"
source "$here/tests/integration/lib-common.sh"
FAILS=0
T_START=$(date +%s%3N)
_t() { printf '%5.1fs' "$(( $(date +%s%3N) - T_START ))e-3"; }
ok() { echo "  ok   [$(_t)] $*"; }
bad() { echo "  FAIL [$(_t)] $*"; FAILS=$((FAILS + 1)); }
finish() {
  if [ "$FAILS" -eq 0 ]; then echo "$TEST: all passed"; exit 0; fi
  for i in $(seq 1 "$SITE_N"); do echo "--- gw$i log (last 25 lines)"; tail -25 "$SITE_DIR/m$i/berthd.log"; done
  echo "$TEST: $FAILS failed"; exit 1
}
trap 'echo "  [$(_t)] cleaning up"; site_net_down; echo "  [$(_t)] done"' EXIT
trap 'exit 130' INT TERM

FAILOVER_MS=${FAILOVER_MS:-3000}
LEASE_MS=${LEASE_MS:-2000}
declare -a BPID

# site_up N: the network, engines and the probe's view of them
site_up() {
  local i
  [ -x "$build/berthd" ] || { echo "$TEST: no $build/berthd" >&2; return 1; }
  if "$build/berthd" --check-config /dev/stdin <<< '{"device_id":"gw1","data_dir":"/tmp/x","site":{"enabled":true,"members":"gw1=10.77.0.1:7400,gw2=10.77.0.2:7400"}}' 2>&1 |
      grep -q CONFIG_SITE; then
    echo "$TEST: $build/berthd is built without CONFIG_SITE: run make site-build (site_defconfig)" >&2
    return 1
  fi
  site_net_up "$1" || return 1
  SITE_APIS=""; SITE_SOCKS=""
  for i in $(seq 1 "$1"); do
    SITE_APIS+="${SITE_APIS:+,}$i=$SITE_HOST_SUBNET.$i:8480"; SITE_SOCKS+="${SITE_SOCKS:+,}$i=${SITE_SOCK[$i]}"
  done
  export SITE_APIS SITE_SOCKS
}
# the local API listens on the site's LAN, so it needs a token (api.token)
SITE_API_TOKEN=site-test-token
export SITE_API_TOKEN
PROBE="$here/tests/integration/site_probe.py"
# snap DEP: reads every gateway once into LEASE[i] LEADER[i] ASSIGNED[i] READY[i] RUNNING[i]
declare -a LEASE LEADER ASSIGNED READY RUNNING
snap() {
  local i l ld a r n
  while read -r i l ld a r n; do
    LEASE[$i]=$l; LEADER[$i]=$ld; ASSIGNED[$i]=$a; READY[$i]=$r; RUNNING[$i]=$n
  done < <(python3 "$PROBE" snap "$1")
}

# the founding members: gw1..gwSITE_FOUNDERS (default all); the others join by command (site.address)
site_members() {
  local i s=""
  for i in $(seq 1 "${SITE_FOUNDERS:-$SITE_N}"); do s+="${s:+,}gw$i=${SITE_IP[$i]}:7400"; done
  echo "$s"
}

# site_config I: gateway I's config.json (by default the broker address answers nothing; SITE_BROKER
# HOST:PORT gives one, TRUST_JSON the console key berthd trusts).
site_config() {
  local i=$1 d=$SITE_DIR/m$1 b=${SITE_BROKER:-10.77.0.250:1883} addr="" rmin=5000
  [ -z "${SITE_BROKER:-}" ] || rmin=1000
  [ "$i" -le "${SITE_FOUNDERS:-$SITE_N}" ] || addr=",\"address\":\"${SITE_IP[$i]}:7400\""
  cat > "$d/config.json" <<EOF2
{"device_id":"gw$i","data_dir":"$d/data","deployments_file":"$SITE_DIR/deployments.json",
 "log_level":"info",${TRUST_JSON:+
 $TRUST_JSON,}
 "engine":{"socket":"${SITE_SOCK[$i]}","timeout_ms":15000},
 "broker":{"enabled":true,"host":"${b%:*}","port":${b##*:},"reconnect_min_ms":$rmin,"reconnect_max_ms":30000},
 "api":{"listen":"0.0.0.0","port":8480,"token":"$SITE_API_TOKEN"},
 "autoscale":{"enabled":false},
 "supervisor":{"migrate_after_failures":2},
 "site":{"enabled":true,"members":"$(site_members)"$addr,"failover_ms":$FAILOVER_MS,"lease_ms":$LEASE_MS}}
EOF2
}

gw_start() {
  local i=$1
  site_config "$i"
  # nsenter execs berthd: $! is berthd itself
  nsenter --net="/run/netns/${SITE_NS[$i]}" "$build/berthd" -c "$SITE_DIR/m$i/config.json" \
    >> "$SITE_DIR/m$i/berthd.log" 2>&1 &
  BPID[$i]=$!
}
gw_kill() { kill -KILL "${BPID[$1]}" 2>/dev/null; wait "${BPID[$1]}" 2>/dev/null; BPID[$1]=""; }
gw_alive() { [ -n "${BPID[$1]:-}" ] && kill -0 "${BPID[$1]}" 2>/dev/null; }
gw_hup() { kill -HUP "${BPID[$1]}"; }

# site_view I EXPR: EXPR over gateway I's reported site view (v = the "site" object, s = the state).
site_view() {
  site_exec "$1" curl -s -m 2 -H "Authorization: Bearer $SITE_API_TOKEN" http://127.0.0.1:8480/v1/state 2>/dev/null |
    python3 -c 'import json,sys
try: s=json.load(sys.stdin); v=s["site"]
except Exception: print(""); sys.exit(0)
print(eval(sys.argv[1]))' "$2"
}
leader_of() { site_view "$1" 'v["leader"] or ""'; }
lease_of() { site_view "$1" 'v["lease"]'; }
# assigned_to I DEP [VIEW_FROM]: replicas of DEP the site view of VIEW_FROM (default I) gives gw I.
assigned_to() {
  site_view "${3:-$1}" "sum(1 for d in v['deployments'] if d['name']=='$2' for m in d['assigned'] if m=='gw$1')"
}
# ready_on I DEP: ready replicas of DEP gateway I reports.
ready_on() {
  site_view "$1" "sum(d['replicas_ready'] for d in s.get('deployments',[]) if d['name']=='$2')"
}
# running_on I DEP: running containers of DEP in gateway I's engine (the engine's word, not berthd's).
running_on() {
  local out
  out=$(curl -s -m 5 --unix-socket "${SITE_SOCK[$1]}" 'http://localhost/v1.41/containers/json' 2>/dev/null)
  python3 -c 'import json,sys
try: l=json.loads(sys.argv[2])
except Exception: l=[]
print(sum(1 for c in l if c.get("Labels",{}).get("io.berth.deployment")==sys.argv[1] and c.get("State")=="running"))' "$2" "$out"
}
# gw_kill_containers I: the whole gateway's containers killed (power gone).
gw_kill_containers() { site_podman "$1" kill -a >/dev/null 2>&1 || true; }

# a leader every member agrees on
one_leader() {
  local i l first=""
  for i in "$@"; do
    l=$(leader_of "$i"); [ -n "$l" ] || return 1
    [ -z "$first" ] && first=$l
    [ "$l" = "$first" ] || return 1
  done
  LEADER=${first#gw}
}
