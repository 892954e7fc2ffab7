#!/usr/bin/env bash
# Signals against paced replays (--realtime), as an operator uses them on a running sensor:
#  A. SIGUSR1 prints statistics mid-replay; SIGHUP with a broken rule file keeps the running
#     rules; SIGHUP with a new rule file swaps the matcher between two packets (no alert for a
#     frame before the swap, an alert for every matching frame after it: none lost, none
#     twice) and reopens the alerts file (logrotate: mv, then HUP); the replay ends with 0.
#  B. SIGHUP reloads the configuration file (-c): an allowlist entry removed takes effect; a
#     configuration with a syntax error is reported and the running one kept.
#  C. SIGTERM mid-replay with Redis up: exit 0, the open flagged flow's flow-end record
#     written, and everything in the alerts file also in the Redis stream (queue flushed).
#  D. SIGINT mid-replay with Redis down: exit 0, the records left in the spool.
# Every wait is bounded; a step that does not happen fails with its name.
. "$(dirname "$0")/lib.sh"
[ -x "$TW_BIN" ] || fail "sensor binary $TW_BIN missing (build it first)"
DEDUP=$TW_SRC/pcaps/dedup_1000.pcap # one query for tunnel.ap.ngrok.com a second, 1000 s

# wait_for SECONDS PID WHAT 'SHELL CONDITION': evaluates the condition every 0.1 s while PID is
# alive (single-quoted, so $(...) inside it is re-run each time).
wait_for() {
    local secs=$1 pid=$2 what=$3 cond=$4
    local end=$((SECONDS + secs))
    until eval "$cond"; do
        kill -0 "$pid" 2>/dev/null || { show_err; fail "sensor exited while waiting for: $what"; }
        [ "$SECONDS" -lt "$end" ] || { show_err; fail "no $what within ${secs}s"; }
        sleep 0.1
    done
}
# wait_exit PID SECONDS WHAT: waits for PID to exit; sets RC; kills it and fails on timeout.
wait_exit() {
    local pid=$1 secs=$2 what=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            RC=0
            wait "$pid" || RC=$?
            return 0
        fi
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    fail "sensor still running ${secs}s after $what"
}
ERRF= # stderr of the sensor under test, shown when a step fails
show_err() { [ -z "$ERRF" ] || { echo "--- last lines of $ERRF:"; tail -n 15 "$ERRF"; } >&2; }
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
# last_packets ERRFILE: the packets counter of the last statistics block
last_packets() { awk '/tunnelwatch: statistics/ {p = 0} $1 == "packets" {p = $2} END {print p + 0}' "$1"; }

rule() { # FILE ID TITLE PATTERN
    cat >"$1.tmp" <<YAML
title: $3
id: $2
status: test
description: e2e reload test rule
logsource:
    category: network_connection
detection:
    selection:
        DestinationHostname|contains:
            - '$4'
    condition: selection
level: high
YAML
    mv "$1.tmp" "$1"
}
broken() { printf 'title: broken\ndetection: [ selection\n  condition: {\n' >"$1.tmp" && mv "$1.tmp" "$1"; }
V1=11111111-1111-4111-8111-111111111111
V2=22222222-2222-4222-8222-222222222222

# ---- A: rules reload, alerts file reopen, statistics ---------------------------------------
mkdir -p "$T/a"
rule "$T/a/test.yml" $V1 "never matches" ".never-seen.invalid"
"$TW_BIN" -r "$DEDUP" -R "$T/a/test.yml" --realtime=40 --redis none --alerts "$T/a/alerts.json" \
    --set alert.dedup_window_s=0 2>"$T/a/err" &
A=$!
ERRF=$T/a/err
TW_PIDS+=("$A")
sleep 1
kill -USR1 "$A"
wait_for 5 "$A" "\"tunnelwatch: statistics\" on stderr after SIGUSR1 mid-replay" \
    'grep -q "tunnelwatch: statistics" "$T/a/err"'
wait_for 5 "$A" "non-zero packets counter in the SIGUSR1 statistics" \
    'test "$(last_packets "$T/a/err")" -gt 0'
ok "SIGUSR1 prints statistics mid-replay ($(last_packets "$T/a/err") packets so far)"

broken "$T/a/test.yml"
kill -HUP "$A"
wait_for 5 "$A" "\"reload failed, keeping the running rules\" after SIGHUP with a broken rule file" \
    'grep -q "tunnelwatch: reload failed, keeping the running rules" "$T/a/err"'
[ "$(lines "$T/a/alerts.json")" = 0 ] || fail "alerts raised before any matching rule was loaded"
ok "SIGHUP with a broken rule file: reported, sensor keeps running"

kill -USR1 "$A"
wait_for 5 "$A" "second statistics block" \
    'test "$(count "$T/a/err" "tunnelwatch: statistics")" -ge 2'
P1=$(last_packets "$T/a/err")
rule "$T/a/test.yml" $V2 "ngrok ap" "tunnel.ap.ngrok.com"
kill -HUP "$A"
wait_for 5 "$A" "\"rules reloaded (1 rules)\" after SIGHUP with a good rule file" \
    'grep -q "tunnelwatch: rules reloaded (1 rules)" "$T/a/err"'
wait_for 10 "$A" "alerts from the reloaded rule" \
    'test "$(lines "$T/a/alerts.json")" -ge 3'
ok "SIGHUP swaps in the new rule (alerts after frame $P1)"

mv "$T/a/alerts.json" "$T/a/alerts.json.1"
kill -HUP "$A"
wait_for 5 "$A" "\"rules unchanged\" (nothing changed on disk) after mv + SIGHUP" \
    'test "$(count "$T/a/err" "rules unchanged")" -ge 1'
wait_for 10 "$A" "alerts in the reopened alerts file after mv + SIGHUP" \
    'test "$(lines "$T/a/alerts.json")" -ge 2'
ok "SIGHUP reopens the alerts file (logrotate)"

broken "$T/a/test.yml"
kill -HUP "$A"
wait_for 5 "$A" "a second \"reload failed\"" \
    'test "$(count "$T/a/err" "reload failed")" -ge 2'
n=$(lines "$T/a/alerts.json")
wait_for 10 "$A" "alerts still raised by the running rule after a failed reload" \
    'test "$(lines "$T/a/alerts.json")" -ge $((n + 2))'
ok "a failed reload keeps the running rule in force"

wait_exit "$A" 60 "the end of the paced replay"
[ "$RC" = 0 ] || { tail -5 "$T/a/err" >&2; fail "replay after reloads exited $RC, expected 0"; }
$PY - "$T/a/alerts.json.1" "$T/a/alerts.json" "$DEDUP.truth.tsv" "$P1" "$V2" <<'PYEOF'
import json, sys
old = [json.loads(l) for l in open(sys.argv[1])]
new = [json.loads(l) for l in open(sys.argv[2])]
p1, v2 = int(sys.argv[4]), sys.argv[5]
queries = sorted(int(l.split("\t")[0]) for l in open(sys.argv[3]) if l[0].isdigit())
alerts = [r for r in old + new if r["event.kind"] == "alert"]
assert all(r["rule.id"] == v2 for r in alerts), "an alert from the old or a broken rule set"
frames = [r["tunnelwatch.evidence.frame"] for r in alerts]
assert len(frames) == len(set(frames)), "a frame alerted twice"
assert min(frames) > p1, f"alert for frame {min(frames)} before the swap (packet {p1})"
want = [f for f in queries if f >= min(frames)]
missing = sorted(set(want) - set(frames))
assert not missing, f"{len(missing)} matching frames after the swap without alert: {missing[:10]}"
o = [r["tunnelwatch.evidence.frame"] for r in old if r["event.kind"] == "alert"]
n = [r["tunnelwatch.evidence.frame"] for r in new if r["event.kind"] == "alert"]
assert max(o) < min(n), "the reopened file holds alerts older than the rotated one"
print(f"{len(frames)} alerts, frames {min(frames)}..{max(frames)}, swap after packet {p1}")
PYEOF
ok "A: no alert before the swap, none lost after it, exit 0"

# ---- B: configuration reload (allowlist) -----------------------------------------------------
mkdir -p "$T/b/rules"
rule "$T/b/rules/ap.yml" $V2 "ngrok ap" "tunnel.ap.ngrok.com"
conf() { # FILE WITH_ALLOWLIST
    {
        echo 'rules = { paths = [ "rules" ]; };'
        echo 'alert = { dedup_window_s = 0; log_suppressed = false; };'
        echo 'redis = { url = "none"; };'
        if [ "$2" = yes ]; then
            echo 'allowlist = ( { name = "quiet"; reason = "e2e"; src = [ "10.1.0.31" ]; } );'
        fi
    } >"$1.tmp"
    mv "$1.tmp" "$1"
}
conf "$T/b/tw.conf" yes
"$TW_BIN" -c "$T/b/tw.conf" -r "$DEDUP" --realtime=40 --alerts "$T/b/alerts.json" 2>"$T/b/err" &
B=$!
ERRF=$T/b/err
TW_PIDS+=("$B")
sleep 2
[ "$(lines "$T/b/alerts.json")" = 0 ] || fail "allowlisted host alerted"
printf 'alert = { dedup_window_s = 0;\n' >"$T/b/tw.conf" # syntax error
kill -HUP "$B"
wait_for 5 "$B" "\"reload failed\" after SIGHUP with a configuration syntax error" \
    'grep -q "reload failed" "$T/b/err"'
grep -q "tw.conf:[0-9]" "$T/b/err" || fail "the failed configuration reload does not name file:line"
sleep 1
[ "$(lines "$T/b/alerts.json")" = 0 ] || fail "a failed configuration reload dropped the allowlist"
ok "SIGHUP with a broken configuration: reported with file:line, running one kept"
conf "$T/b/tw.conf" no
kill -HUP "$B"
wait_for 5 "$B" "\"rules reloaded\" after SIGHUP with a new configuration" \
    'grep -q "rules reloaded" "$T/b/err"'
wait_for 10 "$B" "alerts once the allowlist entry is removed by a reload" \
    'test "$(lines "$T/b/alerts.json")" -ge 2'
ok "SIGHUP reloads the allowlist"
kill -TERM "$B"
wait_exit "$B" 15 "SIGTERM"
[ "$RC" = 0 ] || fail "B: SIGTERM exit status $RC, expected 0"
ok "B: configuration reload"

# ---- C/D: SIGTERM / SIGINT mid-replay --------------------------------------------------------
# 60 s of one HTTP upload to tunnel.us.ngrok.com (resolved first) that never ends.
$PY - "$T/long.pcap" <<'PYEOF' || skip "scapy not available for /usr/bin/python3"
import sys
from scapy.all import Ether, IP, UDP, TCP, DNS, DNSQR, DNSRR, Raw, wrpcap
C, R, S = "10.1.0.40", "10.1.0.53", "3.134.39.220"
pk = []
def add(p, t):
    f = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p
    f.time = 1709294400.0 + t  # set on the whole frame: '/' makes a new packet
    pk.append(f)
q = DNSQR(qname="tunnel.us.ngrok.com")
add(IP(src=C, dst=R) / UDP(sport=40001, dport=53) / DNS(id=1, rd=1, qd=q), 0.0)
add(IP(src=R, dst=C) / UDP(sport=53, dport=40001) /
    DNS(id=1, qr=1, rd=1, ra=1, qd=q, an=DNSRR(rrname="tunnel.us.ngrok.com", ttl=60, rdata=S)), 0.01)
cs, ss = 1000, 5000
add(IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="S", seq=cs), 0.1)
add(IP(src=S, dst=C) / TCP(sport=80, dport=40000, flags="SA", seq=ss, ack=cs + 1), 0.12)
add(IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="A", seq=cs + 1, ack=ss + 1), 0.13)
req = b"POST /upload HTTP/1.1\r\nHost: tunnel.us.ngrok.com\r\nContent-Length: 1000000\r\n\r\n"
add(IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="PA", seq=cs + 1, ack=ss + 1) / Raw(req), 0.14)
seq, t = cs + 1 + len(req), 0.5
while t < 60:
    add(IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="PA", seq=seq, ack=ss + 1) / Raw(b"x" * 1000), t)
    seq += 1000
    add(IP(src=S, dst=C) / TCP(sport=80, dport=40000, flags="A", seq=ss + 1, ack=seq), t + 0.01)
    t += 0.5
wrpcap(sys.argv[1], pk)
PYEOF

redis_start r
"$TW_BIN" -r "$T/long.pcap" -R "$TW_SRC/conf/rules" --realtime=1 --redis "unix://$T/r.sock" --set redis.spool_dir="$T/spool-c" \
    --alerts "$T/c.json" 2>"$T/c.err" &
C=$!
ERRF=$T/c.err
TW_PIDS+=("$C")
wait_for 10 "$C" "the alert for the DNS query before SIGTERM" \
    'test "$(lines "$T/c.json")" -ge 1'
sleep 2
kill -TERM "$C"
wait_exit "$C" 15 "SIGTERM (bounded shutdown)"
[ "$RC" = 0 ] || { cat "$T/c.err" >&2; fail "SIGTERM during a replay exited $RC, expected 0"; }
grep -q '"event.action":"flow_end"' "$T/c.json" ||
    fail "no flow-end record for the open flagged flow after SIGTERM"
stream_json "$T/r.sock" >"$T/c.stream"
cmp -s <(sort "$T/c.stream") <(sort "$T/c.json") ||
    fail "Redis stream ($(lines "$T/c.stream") records) differs from the alerts file ($(lines "$T/c.json")): queue not flushed"
$PY - "$T/c.json" <<'PYEOF'
import json, sys
end = [r for r in map(json.loads, open(sys.argv[1])) if r.get("event.action") == "flow_end"][0]
assert end["destination.port"] == 80 and end["source.bytes"] > 1000, end
print("flow-end after SIGTERM:", end["source.bytes"], "bytes sent")
PYEOF
ok "C: SIGTERM mid-replay: exit 0, flow-end record written, Redis queue flushed"

"$TW_BIN" -r "$T/long.pcap" -R "$TW_SRC/conf/rules" --realtime=1 --redis "unix://$T/absent.sock" \
    --set redis.spool_dir="$T/spool-d" --set redis.timeout_ms=200 --alerts "$T/d.json" 2>"$T/d.err" &
D=$!
ERRF=$T/d.err
TW_PIDS+=("$D")
wait_for 10 "$D" "the alert before SIGINT" \
    'test "$(lines "$T/d.json")" -ge 1'
sleep 2
kill -INT "$D"
wait_exit "$D" 15 "SIGINT with Redis down (bounded shutdown)"
[ "$RC" = 0 ] || { cat "$T/d.err" >&2; fail "SIGINT during a replay with Redis down exited $RC, expected 0 (records spooled)"; }
n_file=$(lines "$T/d.json")
n_spool=$(cat "$T"/spool-d/seg-*.log 2>/dev/null | grep -a -o '"event.id"' | wc -l)
[ "$n_spool" -ge "$n_file" ] ||
    fail "spool holds $n_spool records, the alerts file $n_file: records lost at SIGINT"
grep -a -q '"event.action":"flow_end"' "$T"/spool-d/seg-*.log || fail "flow-end record not spooled"
ok "D: SIGINT mid-replay with Redis down: exit 0, $n_spool records spooled"
