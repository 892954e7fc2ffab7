#!/usr/bin/env bash
# test_tw_tail.sh - scripts/tw-tail against a real redis-server on a unix socket: stream tail
# from the start, consumer group with XACK, --ids, --count, heartbeat listing. Exit 77 = skip.
set -euo pipefail
SRC=${TW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
TAIL="$SRC/scripts/tw-tail"
command -v redis-server >/dev/null || { echo "SKIP: redis-server not found"; exit 77; }
command -v redis-cli >/dev/null || { echo "SKIP: redis-cli not found"; exit 77; }

tmp=$(mktemp -d /tmp/tw_tail.XXXXXX)
sock=$tmp/r.sock
redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --daemonize no \
    --dir "$tmp" --requirepass s3cret >"$tmp/redis.log" 2>&1 &
rpid=$!
trap 'kill -9 $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$tmp"' EXIT
export REDISCLI_AUTH=s3cret
for _ in $(seq 400); do # up to 20 s: ctest runs suites in parallel on a loaded machine
    [ "$(redis-cli -s "$sock" PING 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
[ "$(redis-cli -s "$sock" PING 2>/dev/null)" = PONG ] || { cat "$tmp/redis.log"; echo "FAIL: redis-server did not start"; exit 1; }
r() { redis-cli -s "$sock" "$@"; }
for i in 1 2 3; do
    r XADD tunnelwatch:alerts '*' alert "{\"event.id\":\"e$i\",\"n\":$i}" >/dev/null
done
r HSET tunnelwatch:sensor:edge-1 alerts_delivered 3 >/dev/null
unset REDISCLI_AUTH
fail() { echo "FAIL: $*"; exit 1; }

# 1. without the password: a clear failure; with it (REDISCLI_AUTH): the stream from the start,
#    and --count stops it
if out=$(timeout 10 "$TAIL" -u "unix://$sock" -f -n 3 2>&1); then fail "no password: $out"; fi
[[ $out == *NOAUTH* ]] || fail "no password: unclear error [$out]"
export REDISCLI_AUTH=s3cret
out=$(timeout 10 "$TAIL" -u "unix://$sock" -f -n 3)
want=$'{"event.id":"e1","n":1}\n{"event.id":"e2","n":2}\n{"event.id":"e3","n":3}'
[ "$out" = "$want" ] || fail "stream: got [$out]"

# 2. --ids prefixes the entry id
out=$(timeout 10 "$TAIL" -u "unix://$sock" -f -n 1 -i)
[[ $out =~ ^[0-9]+-[0-9]+$'\t'\{\"event.id\":\"e1\" ]] || fail "ids: got [$out]"

# 3. consumer group: reads all 3, acknowledges them (nothing left pending)
out=$(timeout 10 "$TAIL" -u "unix://$sock" -f -g soc -c c1 -n 3)
[ "$out" = "$want" ] || fail "group: got [$out]"
pending=$(r XPENDING tunnelwatch:alerts soc | head -n 1)
[ "$pending" = 0 ] || fail "group: $pending entries left pending"

# 4. new entries only (no -f): starts after the existing ones
#    (e4 added again every 0.3 s: on a loaded machine the tail may start reading late)
( for _ in $(seq 30); do sleep 0.3; r XADD tunnelwatch:alerts '*' alert '{"event.id":"e4"}' >/dev/null; done ) &
adder=$!
out=$(timeout 10 "$TAIL" -u "unix://$sock" -n 1)
[ "$out" = '{"event.id":"e4"}' ] || fail "tail new: got [$out]"
kill "$adder" 2>/dev/null || true
wait "$adder" 2>/dev/null || true

# 5. pub/sub channel
# publish once, as soon as the subscriber is there (PUBLISH returns the receiver count)
( for _ in $(seq 100); do
    [ "$(r PUBLISH tunnelwatch:alerts '{"event.id":"c1"}')" -ge 1 ] && break
    sleep 0.1
  done ) &
adder=$!
out=$(timeout 10 "$TAIL" -u "unix://$sock" -s -n 1)
[ "$out" = '{"event.id":"c1"}' ] || fail "subscribe: got [$out]"
wait "$adder"

# 6. heartbeat listing
out=$(timeout 10 "$TAIL" -u "unix://$sock" -H)
[[ $out == *$'tunnelwatch:sensor:edge-1\talerts_delivered\t3'* ]] || fail "heartbeat: got [$out]"

# 7. usage errors exit 2
set +e
"$TAIL" --bogus >/dev/null 2>&1; [ $? = 2 ] || fail "usage exit"
"$TAIL" -u http://x >/dev/null 2>&1; [ $? = 2 ] || fail "bad url exit"
echo "PASS: tw-tail"
