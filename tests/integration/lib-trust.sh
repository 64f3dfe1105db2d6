# tests/integration/lib-trust.sh - a console signing key for a test: berthd trusts it, berthctl signs with it.
# berthd refuses every unsigned command by default; tests sign theirs instead of weakening that.

# trust_keys DIR BUILD: makes the key in DIR (once) with `berthctl keygen` and the key list berthd
# trusts; exports BERTH_SIGN_KEY (berthctl and sign_msg sign with it) and TRUST_JSON (the config
# member naming the key list, to put in berthd's config).
trust_keys() {
  local dir=$1 build=$2
  mkdir -p "$dir"
  if [ ! -f "$dir/console.key" ]; then
    "$build/berthctl" keygen test-console "$dir/console.key" > "$dir/keys.json" || return 1
  fi
  BERTH_SIGN_KEY=$dir/console.key
  TRUST_JSON="\"trust\": { \"keys_file\": \"$dir/keys.json\" }"
  TRUST_BUILD=$build
  export BERTH_SIGN_KEY TRUST_JSON TRUST_BUILD
}

# sign_msg KIND DEVICE [FILE]: the JSON message in FILE (or stdin) signed for DEVICE on stdout;
# KIND is command, desired, policy or keys.
sign_msg() {
  "$TRUST_BUILD/berthctl" sign "$1" "$2" "${3:--}"
}
