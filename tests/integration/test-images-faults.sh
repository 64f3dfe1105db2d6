#!/usr/bin/env bash
# Images under faults, on the real engine and registry: a registry with basic auth reached over a
# slow link (tests/integration/throttle.py); wrong credentials and an unknown digest are refused
# and reported while the old version keeps serving; the registry killed in the middle of a large
# pull and restarted, the pull completing without duplicate containers; a disk budget that keeps
# the current and last-known-good images only; an offline restart (registry gone, berthd killed)
# serving again from the local images within 5 s, the deployment whose image is absent reported
# as waiting for it; a world-readable credentials file refused with its path named.
TEST=images-faults
source "$(dirname "$0")/lib-supervise.sh"
source "$repo/scripts/test-registry.sh"
registry_start berth s3cret >/dev/null || { bad "registry did not start"; finish; }
REAL=$BERTH_REGISTRY
registry_push berth-worker:v1 >/dev/null && registry_push berth-worker:v2 >/dev/null &&
  registry_push berth-worker:v3 >/dev/null && registry_push berth-big:v1 --big 24 >/dev/null ||
  { bad "push failed"; finish; }
# a slow link: 2 MB/s, so the 24 MB layer takes about 12 s
SLOW_PORT=$(free_port)
$PY "$repo/tests/integration/throttle.py" "$SLOW_PORT" "${REAL#*:}" 2000000 > "$WORK/throttle.log" 2>&1 &
THROTTLE=$!
trap 'kill $THROTTLE 2>/dev/null || true; cleanup' EXIT
wait_until 5 "the slow link listens" grep -q ready "$WORK/throttle.log" || { bad "throttle"; finish; }
REG=127.0.0.1:$SLOW_PORT
ok "registry with basic auth at $REAL, reached over a 2 MB/s link at $REG"

P=$(pick_ports)
printf '{"registries":{"%s":{"username":"berth","password":"wrong"}}}\n' "$REG" > "$WORK/auth.json"
chmod 600 "$WORK/auth.json"
EXTRA_CONFIG=", \"images\": { \"registries\": \"$REG\", \"credentials_file\": \"$WORK/auth.json\", \"lkg_stable_s\": 2, \"budget_mb\": 9, \"gc_interval_s\": 10, \"pull_stall_s\": 10 }"
deployments() { # VERSION then NAME=IMAGE pairs, each on its own port
  local v=$1 i=0 first=1; shift
  { echo "{\"version\":$v,\"deployments\":["
    for d in "$@"; do
      [ $first -eq 1 ] || echo ","; first=0
      echo "{\"name\":\"${d%%=*}\",\"image\":\"${d#*=}\",\"replicas\":1,\"inference\":{\"port\":$((P + 4 * i))},
        \"readiness\":{\"type\":\"http\",\"path\":\"/v2/health/ready\",\"period_ms\":100}}"
      i=$((i + 1))
    done
    echo "]}"; } > "$WORK/deployments.json"
}
running_image() { owned_json | $PY -c 'import sys,json; print(",".join(sorted(c["Image"] for c in json.load(sys.stdin) if c["State"]=="running" and c["Labels"].get("io.berth.deployment")==sys.argv[1])))' "$1"; }
runs() { [ "$(running_image "$1")" = "$2" ] && ready_is "$1" 1; }
images_in_engine() { "$BERTH_PODMAN" images --format '{{.Repository}}:{{.Tag}}' | grep -c "^$REG/" || true; }

# 1. wrong credentials: nothing runs, the reason is reported
deployments 1 "a=$REG/berth-worker:v1"
berthd_start
wait_until 45 "an unauthorized pull failure" log_has "event=image_pull_failed .*\"image\":\"$REG/berth-worker:v1\".*unauthorized" &&
  ok "wrong credentials: the pull fails with 'unauthorized', reported, retried with back-off" || bad "no unauthorized failure"
log_has "s3cret|wrong" && bad "a registry password appears in berthd's log" || ok "no password in berthd's log"
berthd_kill -TERM
printf '{"registries":{"%s":{"username":"berth","password":"s3cret"}}}\n' "$REG" > "$WORK/auth.json"
berthd_start
wait_until 30 "a runs v1" runs a "$REG/berth-worker:v1" && ok "right credentials: v1 pulled and serving" || bad "v1 not running: $(running_image a)"
wait_until 20 "v1 last-known-good" log_has "event=last_known_good .*berth-worker:v1" || bad "v1 not recorded"

# 2. an unknown digest: refused by the registry, reported, v1 keeps serving
deployments 2 "a=$REG/berth-worker@sha256:$(printf '0%.0s' $(seq 64))"
kill -HUP "$BERTHD_PID"
wait_until 20 "a manifest-unknown failure" log_has "event=image_pull_failed .*manifest unknown" &&
  ok "a digest the registry does not have: refused as manifest unknown" || bad "no failure for the unknown digest"
runs a "$REG/berth-worker:v1" && ok "v1 kept serving meanwhile" || bad "v1 stopped: $(running_image a)"

# 3. the registry killed in the middle of a large pull over the slow link, then back
deployments 3 "a=$REG/berth-big:v1"
mark=$(wc -l < "$WORK/berthd.log")
kill -HUP "$BERTHD_PID"
wait_until 20 "the pull of berth-big started" log_has "event=image_pull_started .*berth-big" || true
sleep 2 # a window: two seconds of the 12 s transfer, then the registry dies in the middle of it
registry_stop
ok "registry killed during the pull of berth-big (24 MB)"
wait_until 30 "the interrupted pull reported" log_has "event=image_pull_failed .*berth-big" &&
  ok "the interrupted pull is reported and retried" || bad "no failure of the interrupted pull"
runs a "$REG/berth-worker:v1" && ok "v1 keeps serving while the new image cannot be pulled" || bad "v1 gone: $(running_image a)"
registry_restart
wait_until 90 "a runs berth-big" runs a "$REG/berth-big:v1" && ok "the pull completed after the registry returned; the new version serves" ||
  bad "berth-big not running: $(running_image a)"
# the old replica goes once the new one is ready (a rolling update): then exactly one remains
wait_until 15 "exactly one container for a" count_is a 1 && ok "no duplicate containers (1 for a)" || bad "$(ctr_count a) containers for a"
wait_until 20 "berth-big last-known-good" log_has "event=last_known_good .*berth-big" || bad "berth-big not recorded"

# 4. the budget (9 MB): versions come and go; the current and last-known-good images stay
for v in 2 3; do
  deployments $((3 + v)) "a=$REG/berth-worker:v$v"
  kill -HUP "$BERTHD_PID"
  wait_until 40 "a runs v$v" runs a "$REG/berth-worker:v$v" || bad "v$v not running"
  wait_until 20 "v$v last-known-good" log_has "event=last_known_good .*berth-worker:v$v" || bad "v$v not recorded"
done
wait_until 30 "the budget removed older images" log_has "event=image_removed .*\"reason\":\"budget\"" &&
  ok "over the budget the oldest unused images were removed" || bad "nothing removed"
"$BERTH_PODMAN" image exists "$REG/berth-worker:v3" && "$BERTH_PODMAN" image exists "$REG/berth-worker:v2" &&
  ok "the current (v3) and last-known-good (v2) images are still there" || bad "a kept image was removed"
"$BERTH_PODMAN" image exists "$REG/berth-big:v1" && bad "the 24 MB image is still there (over budget)" ||
  ok "the large unused image went first"
"$BERTH_PODMAN" image exists "$BERTH_WORKER_IMAGE" && ok "an image berth did not pull was left alone" || bad "a foreign image was removed"

# 5. offline restart: registry gone, berthd killed; b's image was never pulled
registry_stop
kill $THROTTLE 2>/dev/null || true
berthd_kill -KILL
deployments 7 "a=$REG/berth-worker:v3" "b=$REG/berth-worker:v9"
t0=$(now_ms)
berthd_start
wait_until 5 "a serving after the offline restart" runs a "$REG/berth-worker:v3" &&
  ok "offline restart: a serves from its local image after $(( $(now_ms) - t0 )) ms" || bad "a not serving within 5 s"
wait_until 10 "b reported waiting for its image" log_has "event=image_pull_failed .*berth-worker:v9" &&
  ok "b, whose image is not on disk, waits for it (pull failing while offline)" || bad "b: no pull attempt reported"
[ "$(ctr_count b)" -eq 0 ] && ok "no container for b without its image" || bad "b has containers"

# 6. a credentials file others can read is refused with its path named
berthd_kill -TERM
chmod 644 "$WORK/auth.json"
"$build/berthd" -c "$WORK/config.json" > "$WORK/refused.log" 2>&1 & pid=$!
wait_until 10 "berthd exits" bash -c "! kill -0 $pid 2>/dev/null"
grep -q "$WORK/auth.json.*readable by others" "$WORK/refused.log" &&
  ok "a world-readable credentials file is refused, naming $WORK/auth.json" || bad "not refused: $(tail -2 "$WORK/refused.log")"
finish
