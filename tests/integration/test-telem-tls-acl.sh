#!/usr/bin/env bash
# mTLS + per-device ACL (the setup of docs/security.md): berthd connects with its
# own client certificate and works; a client holding another device's
# certificate can neither read this device's telemetry nor command it; the
# console certificate can do both.
source "$(dirname "$0")/lib-telem.sh"
telem_setup
DEV=gw-a
PKI=$T/pki
mkdir -p "$PKI"

# --- a throwaway CA, a server certificate and three client certificates --------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=berth-test-ca" \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null || fail "CA"
mkcert() { # NAME CN [extfile]
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
    ${3:+-extfile "$3"} -out "$PKI/$1.crt" 2>/dev/null || fail "cert $1"
}
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$PKI/san.ext"
mkcert server localhost "$PKI/san.ext"
mkcert gw-a gw-a
mkcert gw-b gw-b
mkcert console console
chmod 644 "$PKI"/*
chmod 600 "$PKI/gw-a.key" # berthd's own key: berthd refuses a TLS key others can read

# --- broker: TLS only, client certificate required, CN is the user name --------
cat > "$T/broker/acl" <<'EOF'
# The console sees and commands every device.
user console
topic readwrite berth/#

# Every device: only its own prefix (%u is the certificate's CN).
pattern readwrite berth/v1/%u/#
EOF
BROKER_LISTENER="listener $BROKER_PORT 127.0.0.1
cafile $PKI/ca.crt
certfile $PKI/server.crt
keyfile $PKI/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
acl_file $T/broker/acl"
broker_conf
broker_up

tls() { echo --cafile "$PKI/ca.crt" --cert "$PKI/$1.crt" --key "$PKI/$1.key"; }
BROKER_JSON=", \"tls\": { \"enabled\": true, \"ca_file\": \"$PKI/ca.crt\", \"cert_file\": \"$PKI/gw-a.crt\", \"key_file\": \"$PKI/gw-a.key\" }"
INTERVAL_MS=300
berthd_config

# Subscribers: the console and the intruder (gw-b) on gw-a's telemetry and replies.
mosquitto_sub -V mqttv5 -p "$BROKER_PORT" $(tls console) -i console-sub -q 1 -F '%j' -t "berth/v1/gw-a/#" > "$T/console.out" 2>&1 &
TELEM_PIDS+=($!)
mosquitto_sub -V mqttv5 -p "$BROKER_PORT" $(tls gw-b) -i intruder-sub -q 1 -F '%j' -t "berth/v1/gw-a/#" -t "berth/#" > "$T/intruder.out" 2>&1 &
TELEM_PIDS+=($!)
subscribed console-sub "berth/v1/gw-a/#"
subscribed intruder-sub "berth/#"
berthd_up
wait_until 10 "event=connected.*tls=1 in berthd.log" grep -q 'event=connected.*tls=1' "$T/berthd.log" || fail "berthd did not connect over TLS: $(tail -5 "$T/berthd.log")"
wait_until 10 "\"topic\":\"berth/v1/gw-a/telemetry\" in console.out" grep -q '"topic":"berth/v1/gw-a/telemetry"' "$T/console.out" || fail "console sees no telemetry"

# The intruder tries to command gw-a, with a reply topic it could read.
mosquitto_pub -V mqttv5 -p "$BROKER_PORT" $(tls gw-b) -q 1 -t "berth/v1/gw-a/cmd/ping" \
  -D publish response-topic "berth/v1/gw-b/stolen" -m '{"id":"evil-1","verb":"ping"}' 2>/dev/null
# The console commands gw-a.
mosquitto_pub -V mqttv5 -p "$BROKER_PORT" $(tls console) -q 1 -t "berth/v1/gw-a/cmd/ping" \
  -m "$(sign_msg command gw-a <<< '{"id":"good-1","verb":"ping"}')" || fail "console publish"
wait_until 10 "good-1 in console.out" grep -q 'good-1' "$T/console.out" || fail "console command not answered"
wait_until 10 "event=command_applied id=good-1 in berthd.log" grep -q 'event=command_applied id=good-1' "$T/berthd.log" || fail "console command not applied"
# Positive control: the intruder is connected and reads its own prefix.
mosquitto_pub -p "$BROKER_PORT" $(tls gw-b) -q 1 -t "berth/v1/gw-b/self" -m '{"mine":true}' || fail "gw-b cannot publish at all"
wait_until 5 "\"topic\":\"berth/v1/gw-b/self\" in intruder.out" grep -q '"topic":"berth/v1/gw-b/self"' "$T/intruder.out" || fail "intruder not connected (control failed)"
sleep 1  # a window of 3 telemetry intervals in which nothing of gw-a reaches the intruder
grep -q 'evil-1' "$T/berthd.log" && fail "intruder's command reached berthd"
grep -q '"topic":"berth/v1/gw-a/' "$T/intruder.out" && fail "intruder read gw-a's topics"
# Wrong CA / no certificate: refused outright.
mosquitto_pub -p "$BROKER_PORT" --cafile "$PKI/ca.crt" -t "berth/v1/gw-a/cmd/ping" -m x 2>/dev/null \
  && fail "a client without a certificate was accepted"
echo "ok: mTLS + ACL: own device works, another device's certificate reads and commands nothing"
