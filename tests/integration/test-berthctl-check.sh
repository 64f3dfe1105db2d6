#!/usr/bin/env bash
# berthctl on the gateway: `check` reports config, data dir, engine (its version), broker, TLS
# certificate expiry, clock, disk and memory as ok/warn/fail with a fix and exits with the worst
# (0 all ok, 1 a warning, 2 a failure); `state --local` reads berthd's state from its local API
# without a broker; -V/--version print the version while `deploy --version N` keeps its meaning;
# check-deployments works with global options; an unreachable broker fails at once with a hint.
TEST=berthctl-check
WITH_BROKER=1
source "$(dirname "$0")/lib-infer.sh"
: "${BERTH_BROKER_PORT:?needs the test broker (scripts/test-services.sh)}"
CTL=$build/berthctl
echo '{"version":1,"deployments":[]}' > "$WORK/deployments.json"
mkdir -m 0700 -p "$WORK/data"
berthd_start
wait_until 10 "the condition below" http_is 200 "$API/v2/health/live" || bad "berthd not live"
chmod 0600 "$WORK/config.json"

rc=0; "$CTL" -t 20 -c "$WORK/config.json" check > "$WORK/check.out" 2>&1 || rc=$?
sed 's/^/    /' "$WORK/check.out"
for line in '^ok   config .* is valid' '^ok   data dir ' '^ok   engine .*Podman Engine [0-9.]+ \(API' \
            "^ok   broker +127.0.0.1:$BERTH_BROKER_PORT reachable" '^ok   clock ' '^(ok|warn) +disk ' '^(ok|warn) +memory '; do
  grep -Eq "$line" "$WORK/check.out" && ok "check: $line" || bad "check lacks $line"
done
worst=0; grep -q '^warn' "$WORK/check.out" && worst=1
[ $rc -eq $worst ] && ok "check exit $rc (the worst line)" || bad "check exit $rc, expected $worst"

# --- what goes wrong, and its fix
cp "$WORK/config.json" "$WORK/bad.json"
sed -i "s/\"port\": $BERTH_BROKER_PORT/\"port\": 1/" "$WORK/bad.json"
chmod 0755 "$WORK/data"
rc=0; "$CTL" -t 20 -c "$WORK/bad.json" check > "$WORK/bad.out" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -Eq '^fail broker +127.0.0.1:1: Connection refused' "$WORK/bad.out" \
  && grep -q 'fix: nothing listens there' "$WORK/bad.out" && ok "closed broker port: fail with the fix, exit 2" \
  || bad "closed broker port (rc=$rc): $(cat "$WORK/bad.out")"
grep -Eq "^warn data dir .*mode 0755" "$WORK/bad.out" && grep -q "fix: chmod 0700 $WORK/data" "$WORK/bad.out" \
  && ok "data dir 0755: warn, fix chmod 0700" || bad "data dir mode not flagged"
chmod 0700 "$WORK/data"
sed -i 's/"broker": {/"broker": { "password": "s3cret",/' "$WORK/bad.json"; chmod 0644 "$WORK/bad.json"
"$CTL" -t 20 -c "$WORK/bad.json" check > "$WORK/bad.out" 2>&1 || true
grep -Eq "^fail config .*bad.json holds broker.password and is readable by others" "$WORK/bad.out" \
  && ok "a world-readable config with a password: fail, the file named" || bad "secret: $(head -3 "$WORK/bad.out")"

# --- TLS certificates: expiry in days
if command -v openssl >/dev/null; then
  for d in 10 400; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/k$d.pem" -out "$WORK/c$d.pem" -days "$d" -subj /CN=t >/dev/null 2>&1
  done
  python3 - "$WORK/config.json" "$WORK/tls.json" "$WORK" <<'EOP'
import json, sys
c = json.load(open(sys.argv[1])); w = sys.argv[3]
c["broker"]["tls"] = {"enabled": True, "ca_file": w + "/c400.pem", "cert_file": w + "/c10.pem", "key_file": w + "/k10.pem"}
open(sys.argv[2], "w").write(json.dumps(c))
EOP
  chmod 0600 "$WORK/tls.json" "$WORK"/k*.pem
  "$CTL" -t 20 -c "$WORK/tls.json" check > "$WORK/tls.out" 2>&1 || true
  grep -Eq "^ok   broker tls +broker.tls.ca_file .*expires in (399|400) days" "$WORK/tls.out" \
    && grep -Eq "^warn broker tls +broker.tls.cert_file .*expires in (9|10) days" "$WORK/tls.out" \
    && ok "certificate expiry: CA ok (400 days), client cert warn (10 days)" || bad "tls: $(grep tls "$WORK/tls.out")"
fi

# --- state --local: the local API, no broker
out=$("$CTL" -t 10 -c "$WORK/config.json" state --local 2>&1) && echo "$out" | grep -q "$DEV" \
  && ok "state --local: $(echo "$out" | head -1)" || bad "state --local: $out"
"$CTL" -c "$WORK/config.json" state --local --json | jget 'd["device"]' | grep -qx "$DEV" \
  && ok "state --local --json names the device" || bad "state --local --json"

# --- arguments
[ "$("$CTL" --version)" = "$("$CTL" -V)" ] && "$CTL" --version | grep -q '^berthctl ' && ok "--version and -V: $("$CTL" -V)" \
  || bad "--version: $("$CTL" --version 2>&1)"
"$CTL" -t 2 -c "$WORK/config.json" check-deployments "$WORK/deployments.json" >/dev/null \
  && ok "check-deployments with global options" || bad "check-deployments with global options"
"$CTL" --help | grep -q 'check-deployments FILE' && "$CTL" --help | grep -q '^  check ' \
  && ok "--help lists check and check-deployments" || bad "--help lacks them"
start=$(date +%s%N)
rc=0; "$CTL" -b 127.0.0.1:1 -t 10 devices > "$WORK/unreach.out" 2>&1 || rc=$?
el=$(( ($(date +%s%N) - start) / 1000000 ))
[ $rc -eq 4 ] && [ $el -lt 5000 ] && grep -q 'hint: name the broker with -b' "$WORK/unreach.out" \
  && ok "unreachable broker: exit 4 after ${el} ms (timeout 10 s) with a hint" || bad "unreachable (rc=$rc, ${el} ms): $(cat "$WORK/unreach.out")"
finish
