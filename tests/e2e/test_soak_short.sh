#!/usr/bin/env bash
# A short soak (scripts/soak): 4 simulated hours in about 50 s at --realtime=300, a SIGHUP with
# changed rules and a Redis restart (SHUTDOWN, append-only file) every simulated hour:
# every reload takes, RSS at the end within 5% of RSS after the first hour, the alerts
# file and the Redis stream hold the same event.ids, and the alerts file every raised alert.
# The full day is scripts/soak (about 10 minutes). Skipped in sanitizer builds (RSS).
. "$(dirname "$0")/lib.sh"
[ -x "$TW_BIN" ] || fail "sensor binary $TW_BIN missing (build it first)"
if [ -n "${TW_BUILD:-}" ] && grep -q '^TW_SANITIZE:STRING=.\+' "$TW_BUILD/CMakeCache.txt" 2>/dev/null; then
    skip "sanitizer build: RSS says nothing about the real sensor"
fi
command -v redis-server >/dev/null || skip "redis-server not installed"
$PY "$TW_SRC/scripts/soak" --bin "$TW_BIN" --hours 4 --minutes 0.8 --redis-every 1 --keep "$T/soak" ||
    { tail -5 "$T/soak/err" >&2; fail "short soak"; }
ok "short soak: 4 simulated hours, reloads, a Redis restart, no alert lost, RSS flat"
