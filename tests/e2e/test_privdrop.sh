#!/usr/bin/env bash
# -Z USER on a live capture (root only): the sensor opens a veth inside network namespaces of
# its own, drops to nobody, and from then on runs with Uid/Gid 65534, no supplementary groups
# and no capabilities (checked in /proc/PID/status) - while still capturing: a DNS query for
# an ngrok tunnel sent over the veth after the drop raises an alert. Only loopback and veth
# addresses are used; the namespaces are removed at exit.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, live capture, -Z)"
[ -x "$TW_BIN" ] || fail "sensor binary $TW_BIN missing (build it first)"
command -v ip >/dev/null || skip "iproute2 (ip) not installed"
getent passwd nobody >/dev/null || skip "no user nobody"
NS_CAP=twcap$$
NS_CLI=twcli$$
ip netns add "$NS_CAP" 2>/dev/null || skip "cannot create network namespaces here"
cleanup_ns() { ip netns del "$NS_CAP" 2>/dev/null || true; ip netns del "$NS_CLI" 2>/dev/null || true; }
trap 'cleanup_ns; tw_cleanup' EXIT
ip netns add "$NS_CLI"
ip link add tw0 netns "$NS_CAP" type veth peer name tw1 netns "$NS_CLI" ||
    skip "cannot create a veth pair here"
ip -n "$NS_CAP" addr add 10.99.0.1/24 dev tw0
ip -n "$NS_CLI" addr add 10.99.0.2/24 dev tw1
ip -n "$NS_CAP" link set tw0 up
ip -n "$NS_CLI" link set tw1 up
ip -n "$NS_CAP" link set lo up
ip -n "$NS_CLI" link set lo up
chmod 755 "$T" # nobody must not need it, but the alerts file is opened before the drop

ip netns exec "$NS_CAP" "$TW_BIN" -i tw0 -Z nobody -R "$TW_SRC/conf/rules" --redis none \
    --alerts "$T/alerts.json" --pidfile "$T/tw.pid" 2>"$T/err" &
S=$!
TW_PIDS+=("$S")
# the pid file is written once the capture is open, just before the drop
for i in $(seq 100); do
    [ -s "$T/tw.pid" ] && break
    kill -0 "$S" 2>/dev/null || { cat "$T/err" >&2; fail "sensor exited at start-up"; }
    [ "$i" = 100 ] && fail "no pid file within 10 s"
    sleep 0.1
done
PID=$(cat "$T/tw.pid")
status_ok() {
    grep -q "^Uid:[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534[[:space:]]*65534$" \
        "/proc/$PID/status" &&
        grep -q "^CapEff:[[:space:]]*0000000000000000$" "/proc/$PID/status"
}
for i in $(seq 50); do
    status_ok && break
    kill -0 "$S" 2>/dev/null || { cat "$T/err" >&2; fail "sensor exited after -Z nobody"; }
    [ "$i" = 50 ] && { grep -E "^(Uid|Gid|Groups|Cap|NoNewPrivs)" "/proc/$PID/status" >&2; fail "not Uid 65534 with CapEff 0 within 5 s"; }
    sleep 0.1
done
st=/proc/$PID/status
gid=$(id -g nobody)
grep -q "^Gid:[[:space:]]*$gid[[:space:]]*$gid[[:space:]]*$gid[[:space:]]*$gid$" "$st" ||
    fail "group not dropped to $gid: $(grep ^Gid "$st")"
grep -Eq "^Groups:[[:space:]]*($gid)?[[:space:]]*$" "$st" || fail "supplementary groups kept: $(grep ^Groups "$st")"
for c in CapPrm CapEff CapAmb; do
    grep -q "^$c:[[:space:]]*0000000000000000$" "$st" || fail "$c not empty: $(grep "^$c" "$st")"
done
grep -q "^NoNewPrivs:[[:space:]]*1$" "$st" || fail "NoNewPrivs not set: $(grep ^NoNewPrivs "$st")"
# every thread, not only the main one (a short-lived thread, such as nDPI's set-up, may end
# between the listing and the read: one that is gone is not judged; the main one always is)
n=0
for t in /proc/$PID/task/*/status; do
    st_t=$(cat "$t" 2>/dev/null) || continue
    [ -n "$st_t" ] || continue
    n=$((n + 1))
    grep -q "^Uid:[[:space:]]*65534" <<<"$st_t" || fail "thread $t still has $(grep ^Uid <<<"$st_t")"
    grep -q "^CapEff:[[:space:]]*0000000000000000$" <<<"$st_t" || fail "thread $t keeps capabilities"
done
[ "$n" -ge 1 ] || fail "no thread status could be read"
ok "-Z nobody: Uid/Gid $gid, no groups, CapPrm/CapEff/CapAmb 0, NoNewPrivs 1 (all threads)"

# still capturing after the drop: a DNS query over the veth raises the seed rule's alert
send_query() {
    ip netns exec "$NS_CLI" $PY - <<'PYEOF'
import socket, struct
name = b"".join(bytes([len(p)]) + p for p in b"tunnel.us.ngrok.com".split(b".")) + b"\0"
msg = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(msg, ("10.99.0.1", 53))
PYEOF
}
for i in $(seq 50); do
    send_query
    grep -q '"tunnelwatch.evidence.name":"tunnel.us.ngrok.com"' "$T/alerts.json" 2>/dev/null && break
    kill -0 "$S" 2>/dev/null || { cat "$T/err" >&2; fail "sensor died while capturing as nobody"; }
    [ "$i" = 50 ] && { cat "$T/err" >&2; fail "no alert for the query sent over the veth within 10 s"; }
    sleep 0.2
done
grep -q '"source.ip":"10.99.0.2"' "$T/alerts.json" || fail "alert not attributed to 10.99.0.2"
ok "capture goes on as nobody: alert for 10.99.0.2"

kill -TERM "$S"
for i in $(seq 100); do kill -0 "$S" 2>/dev/null || break; sleep 0.1; done
kill -0 "$S" 2>/dev/null && fail "sensor still running 10 s after SIGTERM"
rc=0
wait "$S" || rc=$?
[ "$rc" = 0 ] || { cat "$T/err" >&2; fail "exit status $rc after SIGTERM, expected 0"; }
ok "SIGTERM as nobody: exit 0"
