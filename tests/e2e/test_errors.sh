#!/usr/bin/env bash
# Hostile or broken surroundings: a missing pcap, a file that is not a capture, a truncated
# capture, a bad BPF expression, an unreachable Redis, a missing rules folder, a missing build
# dependency. Each gives a clear one-line error and the documented exit code, never a crash.
. "$(dirname "$0")/lib.sh"
expect() { # want_rc pattern -- command...
    local want=$1 pat=$2; shift 3
    set +e
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    set -e
    [ $rc -eq "$want" ] || { cat "$T/err"; fail "exit $rc (wanted $want): $*"; }
    [ $rc -lt 128 ] || fail "killed by a signal: $*"
    grep -qE "$pat" "$T/err" || { cat "$T/err"; fail "no message matching '$pat': $*"; }
    [ "$(grep -cE "$pat" "$T/err")" -eq 1 ] || { cat "$T/err"; fail "more than one line for '$pat'"; }
}
R=(-R "$TW_SRC/conf/rules" --redis none)
expect 1 "nope.pcap: No such file" -- "$TW_BIN" "${R[@]}" -r "$T/nope.pcap"
printf 'hello, not a capture\n' >"$T/text.pcap"
expect 1 "not a readable capture" -- "$TW_BIN" "${R[@]}" -r "$T/text.pcap"
expect 1 "truncated dump file.*processed" -- "$TW_BIN" "${R[@]}" --names -r "$TW_SRC/pcaps/truncated.pcap"
# what came before the cut was processed
[ "$(grep -c . "$T/out")" -eq "$(grep -c . "$TW_SRC/pcaps/truncated.pcap.truth.tsv")" ] || fail "truncated: names before the cut"
expect 2 "bad filter" -- "$TW_BIN" "${R[@]}" -r "$TW_SRC/pcaps/demo.pcap" 'tcp port banana'
expect 2 "rules" -- "$TW_BIN" -R "$T/no-such-rules" --redis none -r "$TW_SRC/pcaps/demo.pcap"
expect 2 "nothing to read" -- "$TW_BIN" "${R[@]}"
expect 2 "try 'tunnelwatch -h'" -- "$TW_BIN" --no-such-flag
# Redis unreachable: alerts are spooled (or counted lost), the replay exits 1 and says so
expect 1 "redis.*unreachable.*spooled" -- "$TW_BIN" -R "$TW_SRC/conf/rules" -r "$TW_SRC/pcaps/demo.pcap" \
    --redis redis://127.0.0.1:1 --set redis.spool_dir="$T/spool" --set redis.timeout_ms=200
ls "$T/spool" | grep -q . || fail "nothing spooled while Redis was unreachable"
expect 2 "redis" -- "$TW_BIN" -R "$TW_SRC/conf/rules" -r "$TW_SRC/pcaps/demo.pcap" --redis 'http://nonsense'
# a missing build dependency stops configure with the package to install
if command -v cmake >/dev/null; then
    mkdir -p "$T/emptypc"
    set +e
    PKG_CONFIG_LIBDIR=$T/emptypc PKG_CONFIG_PATH= cmake -S "$TW_SRC" -B "$T/cfgtest" >"$T/cm.out" 2>&1
    rc=$?
    set -e
    [ $rc -ne 0 ] || fail "configure succeeded without any pkg-config module"
    grep -q "missing dependency libpcap: install libpcap-dev" "$T/cm.out" || { tail "$T/cm.out"; fail "configure message"; }
fi
ok "every error is one clear line with the documented exit code"
