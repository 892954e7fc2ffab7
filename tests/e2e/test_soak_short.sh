#!/usr/bin/env bash
# A short soak (scripts/soak): 3 simulated hours in about 40 s at --realtime=270, a SIGHUP with
# changed rules every simulated hour, a Redis restart (SHUTDOWN, append-only file) after the
# second: every reload takes, RSS at the end within 5% of RSS after the first hour, the alerts
# file and the Redis stream hold the same event.ids, and the alerts file every raised alert.
# The full day is scripts/soak (about 10 minutes). Skipped in sanitizer builds (RSS).
. "$(dirname "$0")/lib.sh"
[ -x "$TW_BIN" ] || fail "sensor binary $TW_BIN missing (build it first)"
if [ -n "${TW_BUILD:-}" ] && grep -q '^TW_SANITIZE:STRING=.\+' "$TW_BUILD/CMakeCache.txt" 2>/dev/null; then
    skip "sanitizer build: RSS says nothing about the real sensor"
fi
command -v redis-server >/dev/null || skip "redis-server not installed"
$PY "$TW_SRC/scripts/soak" --bin "$TW_BIN" --hours 3 --minutes 0.67 --redis-every 2 --keep "$T/soak" ||
    { tail -5 "$T/soak/err" >&2; fail "short soak"; }
ok "short soak: 3 simulated hours, reloads, a Redis restart, no alert lost, RSS flat"
