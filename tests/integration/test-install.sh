#!/usr/bin/env bash
# `make install DESTDIR= PREFIX=` lays out a gateway: stripped berthd (under 300 KB) and berthctl in
# PREFIX/bin, a systemd unit that systemd accepts (Type=notify, a watchdog, Restart=always and no
# start-rate limit), a valid example config and deployments file in /etc/berth, the data dir
# /var/lib/berth (0700) and the docs; a second install keeps the operator's edited config.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${BERTH_BUILD:-$repo/build}
D=$(mktemp -d /tmp/berth-install.XXXXXX)
trap 'rm -rf "$D"' EXIT INT TERM
FAILS=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

make -s -C "$repo" O="$build" install DESTDIR="$D/root" PREFIX=/usr > "$D/install.log" 2>&1 \
  && ok "make install DESTDIR=... PREFIX=/usr" || { cat "$D/install.log"; bad "make install failed"; }
R=$D/root
for b in berthd berthctl; do
  if [ -x "$R/usr/bin/$b" ]; then
    readelf -S "$R/usr/bin/$b" | grep -q '\.symtab' && bad "$b is not stripped" || ok "$b installed, stripped"
  else
    bad "$R/usr/bin/$b missing"
  fi
done
size=$(stat -c %s "$R/usr/bin/berthd" 2>/dev/null || echo 0)
[ "$size" -gt 0 ] && [ "$size" -le "${BERTHD_SIZE_BUDGET:-327680}" ] && ok "berthd is $size bytes (within the size budget, tests/size-check.sh)" || bad "berthd is $size bytes"
"$R/usr/bin/berthd" --version > "$D/version" 2>&1 && ok "installed berthd runs: $(head -1 "$D/version")" || bad "berthd --version"

U=$R/lib/systemd/system/berthd.service
if [ -f "$U" ]; then
  for want in '^Type=notify$' '^WatchdogSec=[1-9]' '^Restart=always$' '^StartLimitIntervalSec=0$' \
              '^ExecStart=/usr/bin/berthd -c /etc/berth/config.json$' '^ExecReload=.*-HUP'; do
    grep -Eq "$want" "$U" && ok "unit: $want" || bad "unit lacks $want"
  done
  grep -q '@[A-Z]*@' "$U" && bad "unit has unfilled placeholders: $(grep '@[A-Z]*@' "$U")" || ok "unit placeholders filled"
  if command -v systemd-analyze > /dev/null; then
    # systemd's own check, with the binary's path moved under DESTDIR
    sed "s|=/usr/bin/|=$R/usr/bin/|" "$U" > "$D/berthd.service"
    out=$(systemd-analyze verify "$D/berthd.service" 2>&1)
    [ -z "$out" ] && ok "systemd-analyze verify: no complaint" || bad "systemd-analyze verify: $out"
  fi
else
  bad "no systemd unit at $U"
fi

"$R/usr/bin/berthd" --check-config "$R/etc/berth/config.json" > "$D/check" 2>&1 \
  && ok "/etc/berth/config.json passes --check-config" || bad "installed config: $(cat "$D/check")"
"$R/usr/bin/berthctl" check-deployments "$R/etc/berth/deployments.json" > "$D/check" 2>&1 \
  && ok "/etc/berth/deployments.json is valid" || bad "installed deployments: $(cat "$D/check")"
[ "$(stat -c %a "$R/var/lib/berth" 2>/dev/null)" = 700 ] && ok "/var/lib/berth 0700" || bad "/var/lib/berth: $(stat -c %a "$R/var/lib/berth" 2>&1)"
[ -f "$R/usr/share/doc/berth/configuration.md" ] && ok "docs installed" || bad "docs not installed"

# a second install never overwrites the operator's files
echo '{"device_id":"edited","data_dir":"/var/lib/berth"}' > "$R/etc/berth/config.json"
make -s -C "$repo" O="$build" install DESTDIR="$R" PREFIX=/usr > "$D/install.log" 2>&1 || bad "second install failed"
grep -q edited "$R/etc/berth/config.json" && ok "a second install keeps /etc/berth/config.json" || bad "config overwritten"

[ "$FAILS" -eq 0 ] && { echo "install: all passed"; exit 0; }
echo "install: $FAILS failed"; exit 1
