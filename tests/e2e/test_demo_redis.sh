#!/usr/bin/env bash
# The demo capture through the sensor into a real redis-server: the ngrok flow raises the seed
# rule's alert attributed to 10.1.0.23, read back from the stream and the channel; the
# flow-end record gives the bytes the host sent; the heartbeat hash exists with an expiry.
. "$(dirname "$0")/lib.sh"
redis_start r
sock=$T/r.sock
redis-cli -s "$sock" SUBSCRIBE tunnelwatch:alerts >"$T/sub.txt" 2>&1 &
TW_PIDS+=($!)
sleep 0.3
"$TW_BIN" -r "$TW_SRC/pcaps/demo.pcap" -R "$TW_SRC/conf/rules" --redis "unix://$sock" \
    --set redis.spool_dir="$T/spool" --set sensor.name=e2e-demo --alerts "$T/alerts.jsonl" \
    2>"$T/err.txt" || { cat "$T/err.txt"; fail "sensor exited $?"; }
stream_json "$sock" >"$T/stream.jsonl"
n=$(json_lines_valid "$T/stream.jsonl")
[ "$n" -ge 2 ] || fail "expected an alert and a flow-end record in the stream, got $n records"
cmp -s <(sort "$T/stream.jsonl") <(sort "$T/alerts.jsonl") || fail "stream and alerts file differ"
$PY - "$T/stream.jsonl" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
alerts = [r for r in recs if r["event.kind"] == "alert"]
assert len(alerts) == 1, f"one incident expected, got {len(alerts)}"
a = alerts[0]
assert a["rule.id"] == "19bf6fdb-7721-4f3d-867f-53467f6a5db6", a["rule.id"]
assert a["rule.name"] == "Communication To Ngrok Tunneling Service - Linux"
assert a["rule.level"] == "high"
assert a["source.ip"] == "10.1.0.23", a["source.ip"]
assert a["tunnelwatch.evidence.name"] == "tunnel.us.ngrok.com"
assert set(a["threat.technique.id"]) == {"T1567", "T1568.002", "T1572", "T1090", "T1102"}
assert a["observer.name"] == "e2e-demo"
assert a["network.community_id"].startswith("1:")
ends = [r for r in recs if r.get("event.action") == "flow_end"]
tls = [r for r in ends if r.get("destination.port") == 443]
assert tls, "no flow-end record for the TLS flow"
print("alert ok; TLS flow sent", tls[0]["source.bytes"], "bytes")
PYEOF
# the flow-end record gives the totals tshark's conversation statistics give (frames, bytes)
$PY - "$T/stream.jsonl" "$TW_SRC/pcaps/demo.expect" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
end = [r for r in recs if r.get("event.action") == "flow_end" and r.get("destination.port") == 443][0]
flow = [l.split("\t") for l in open(sys.argv[2]) if l.startswith("flow\t")][0]
kv = dict(x.split("=") for x in flow[3:])
got = (end["source.packets"], end["source.bytes"], end["destination.packets"], end["destination.bytes"])
want = tuple(int(kv[k]) for k in ("c2s_frames", "c2s_bytes", "s2c_frames", "s2c_bytes"))
assert got == want, f"flow-end {got} != expected {want}"
print("flow-end totals match:", got)
PYEOF
grep -q '"rule.id":"19bf6fdb-7721-4f3d-867f-53467f6a5db6"' "$T/sub.txt" || fail "nothing published on the channel"
ttl=$(redis-cli -s "$sock" TTL tunnelwatch:sensor:e2e-demo)
[ "$ttl" -gt 0 ] || fail "heartbeat hash missing or without expiry (ttl $ttl)"
[ "$(redis-cli -s "$sock" HGET tunnelwatch:sensor:e2e-demo alerts_raised)" = 1 ] || fail "heartbeat alerts_raised"
ok "demo alert delivered to stream, channel and heartbeat"
