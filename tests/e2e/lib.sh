# tests/e2e/lib.sh - shared helpers for the end-to-end suites (sourced).
# Environment from ctest: TW_BIN (the sensor), TW_SRC (source root), TW_SHARED (../shared).
set -euo pipefail
: "${TW_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${TW_BIN:=$TW_SRC/build/tunnelwatch}"
: "${TW_SHARED:=$TW_SRC/../shared}"
PY=/usr/bin/python3
T=$(mktemp -d /tmp/tw-e2e.XXXXXX)
TW_PIDS=()
tw_cleanup() {
    # only this shell's jobs that still run (-r): the pid of a job that already ended, even
    # one bash has not reported yet, may belong to someone else by now (pid_max is small here
    # and parallel suites spawn a lot; a stale kill -9 once took another suite's redis-server)
    for p in $(jobs -rp); do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap tw_cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
ok() { echo "ok - $*"; }

# redis_start NAME: a private redis-server on a unix socket $T/NAME.sock; sets REDIS_PID.
redis_start() {
    local name=$1; shift
    command -v redis-server >/dev/null || skip "redis-server not installed"
    redis-server --port 0 --unixsocket "$T/$name.sock" --save "" --appendonly no --dir "$T" \
        --daemonize no "$@" >"$T/$name.log" 2>&1 &
    REDIS_PID=$!
    TW_PIDS+=("$REDIS_PID")
    for _ in $(seq 400); do # up to 20 s on a loaded machine
        redis-cli -s "$T/$name.sock" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    cat "$T/$name.log" >&2
    fail "redis-server $name did not start"
}

# web_start NAME [args]: tunnelwatch-web ($WEB) on a free loopback port, reading the Redis at
# $WEB_REDIS (default: redis_start r's socket); sets WEB_PID and WEB_URL.
web_start() {
    local name=$1; shift
    "$WEB" -l 127.0.0.1:0 --redis "${WEB_REDIS:-unix://$T/r.sock}" "$@" >"$T/$name.log" 2>&1 &
    WEB_PID=$!
    TW_PIDS+=("$WEB_PID")
    WEB_URL=
    for _ in $(seq 200); do
        WEB_URL=$(grep -so 'http://127\.0\.0\.1:[0-9]*/' "$T/$name.log" || true)
        [ -n "$WEB_URL" ] && return 0
        kill -0 "$WEB_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$T/$name.log" >&2
    fail "tunnelwatch-web $name did not start"
}

# stream_json SOCK [KEY]: every alert JSON of the stream, one per line
stream_json() {
    redis-cli -s "$1" --raw XRANGE "${2:-tunnelwatch:alerts}" - + | grep '^{' || true
}

# Fails unless every line of the file is a JSON object.
json_lines_valid() {
    $PY - "$1" <<'PYEOF'
import json, sys
n = 0
with open(sys.argv[1], "rb") as f:
    for i, line in enumerate(f, 1):
        try:
            obj = json.loads(line.decode("utf-8"))
        except Exception as e:
            sys.exit(f"{sys.argv[1]}:{i}: not JSON: {e}: {line[:200]!r}")
        if not isinstance(obj, dict):
            sys.exit(f"{sys.argv[1]}:{i}: not an object")
        n += 1
print(n)
PYEOF
}
