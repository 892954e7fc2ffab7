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

# web_bin: sets WEB to the tunnelwatch-web binary ($TW_WEB_BIN, else $TW_BUILD's); fails when
# it is missing.
web_bin() {
    : "${TW_BUILD:=$TW_SRC/build}"
    WEB=${TW_WEB_BIN:-$TW_BUILD/tunnelwatch-web}
    [ -x "$WEB" ] || fail "$WEB is missing: build the tunnelwatch-web target"
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

# veth_ns PREFIX: (root) a private network namespace $ns holding a veth pair $a <-> $b, both up
# without IPv6 (no router solicitations among the replayed frames); in_ns runs a command in it;
# removed at exit. Skips (exit 77) without root, ip or namespaces.
veth_ns() {
    [ "$(id -u)" -eq 0 ] || skip "live capture needs root (CAP_NET_RAW/CAP_NET_ADMIN)"
    command -v ip >/dev/null || skip "iproute2 (ip) not installed"
    command -v tcpreplay >/dev/null || skip "tcpreplay not installed"
    ns=$1$$
    a=${1}a$$
    b=${1}b$$
    ip netns add "$ns" 2>"$T/ns.err" || skip "cannot create a network namespace: $(cat "$T/ns.err")"
    trap 'ip netns del "$ns" 2>/dev/null || true; tw_cleanup' EXIT
    in_ns ip link add "$a" type veth peer name "$b"
    for i in "$a" "$b"; do
        in_ns sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1" || true
        in_ns ip link set "$i" up
    done
}
in_ns() { ip netns exec "$ns" "$@"; }

# wait_until SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds (its output dropped)
wait_until() {
    local n=$(($1 * 10)) what=$2; shift 2
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    fail "timed out waiting for $what"
}

# free_port: a free loopback port whose cluster bus port (port + 10000) is free too
free_port() { $PY -c '
import random, socket
while True:
    p = random.randrange(20000, 40000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'; }
cli() { local port=$1; shift; redis-cli -h 127.0.0.1 -p "$port" "$@"; }

# redis_cluster_start: three real cluster masters on free loopback ports (P, their ports),
# slots spread by redis-cli --cluster create; returns once every node says cluster_state:ok.
redis_cluster_start() {
    command -v redis-server >/dev/null || skip "redis-server not installed"
    P=()
    local i p n
    for i in 1 2 3; do
        p=$(free_port)
        P+=("$p")
        mkdir -p "$T/n$i"
        redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-config-file nodes.conf --cluster-node-timeout 2000 --save "" \
            --appendonly no --dir "$T/n$i" --daemonize no >"$T/n$i.log" 2>&1 &
        TW_PIDS+=($!)
        for n in $(seq 200); do cli "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
        cli "$p" ping >/dev/null 2>&1 || { cat "$T/n$i.log" >&2; fail "cluster node $i did not start"; }
    done
    redis-cli --cluster create "127.0.0.1:${P[0]}" "127.0.0.1:${P[1]}" "127.0.0.1:${P[2]}" \
        --cluster-replicas 0 --cluster-yes >"$T/create.log" 2>&1 ||
        { cat "$T/create.log" >&2; fail "cluster create"; }
    for n in $(seq 300); do cluster_ok && return 0; sleep 0.1; done
    fail "cluster_state:ok never came on every node"
}
cluster_ok() {
    local p
    for p in "${P[@]}"; do cli "$p" cluster info | grep -q 'cluster_state:ok' || return 1; done
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
