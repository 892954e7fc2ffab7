#!/usr/bin/env bash
# Attribution: the resolver's query is labelled as the resolver's; the SNI-less TLS flow and the
# SSH flow to the address the flagged answer named are attributed to the clients that made
# them (evidence dns_answer), never to the resolver, also when the sensor sees only the
# resolver's upstream query (uplink view). Flow-end records give tshark's conversation totals.
# Dedup: 1000 queries for the same name from one host are one alert with a count of 1000.
# Inbound: an internal host serving a ngrok name is labelled inbound, not the external client.
. "$(dirname "$0")/lib.sh"
run() { "$TW_BIN" -q -R "$TW_SRC/conf/rules" --redis none --alerts "$T/$1.jsonl" -r "$TW_SRC/pcaps/$2" "${@:3}" ||
        fail "sensor failed on $2"; json_lines_valid "$T/$1.jsonl" >/dev/null; }

run full resolver_attrib.pcap --set networks.resolvers=10.1.0.53
$PY - "$T/full.jsonl" "$TW_SRC/pcaps/resolver_attrib.expect" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
alerts = [r for r in recs if r["event.kind"] == "alert"]
by = {(a["source.ip"], a["tunnelwatch.evidence.kind"]): a for a in alerts}
assert ("10.1.0.77", "dns_query") in by, by.keys()
assert by[("10.1.0.77", "dns_query")]["tunnelwatch.attribution"] == "client"
ssh = by.get(("10.1.0.78", "dns_answer"))
assert ssh and ssh["destination.port"] == 22 and ssh["tunnelwatch.resolver"] == "10.1.0.53", ssh
res = by.get(("10.1.0.53", "dns_query"))
assert res and res["tunnelwatch.attribution"] == "resolver", res
for r in recs:  # no flow is pinned on the resolver
    if r.get("destination.port") in (22, 443):
        assert r["source.ip"] != "10.1.0.53", r
flows = {l.split("\t")[2]: dict(x.split("=") for x in l.strip().split("\t")[3:])
         for l in open(sys.argv[2]) if l.startswith("flow\t")}
ends = {r["server.ip"] + ":" + str(r["server.port"]): r for r in recs if r.get("event.action") == "flow_end"}
for srv, kv in flows.items():
    e = ends[srv]
    got = (e["client.packets"], e["client.bytes"], e["server.packets"], e["server.bytes"])
    want = tuple(int(kv[k]) for k in ("c2s_frames", "c2s_bytes", "s2c_frames", "s2c_bytes"))
    assert got == want, (srv, got, want)
tls_end = ends["3.125.209.94:443"]
assert tls_end["source.ip"] == "10.1.0.77" and tls_end["tunnelwatch.evidence.kind"] == "dns_answer"
print("full view ok:", len(alerts), "alerts")
PYEOF

# uplink view: the client's own query and the resolver's answer to it are not visible
run uplink resolver_attrib.pcap --set networks.resolvers=10.1.0.53 'not (udp port 53 and host 10.1.0.77)'
$PY - "$T/uplink.jsonl" <<'PYEOF'
import json, sys
alerts = [r for r in map(json.loads, open(sys.argv[1])) if r["event.kind"] == "alert"]
hosts = {(a["source.ip"], a["tunnelwatch.evidence.kind"], a.get("destination.port")) for a in alerts}
assert ("10.1.0.77", "dns_answer", 443) in hosts, hosts
assert ("10.1.0.78", "dns_answer", 22) in hosts, hosts
assert ("10.1.0.53", "dns_query", 53) in hosts, hosts
print("uplink view ok:", sorted(hosts))
PYEOF

run dedup dedup_1000.pcap
$PY - "$T/dedup.jsonl" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
alerts = [r for r in recs if r["event.kind"] == "alert" and r["tunnelwatch.evidence.kind"] == "dns_query"]
assert len(alerts) == 1, f"{len(alerts)} alerts for 1000 repeats"
counts = [r["event.count"] for r in recs if r.get("tunnelwatch.incident_id") == alerts[0]["event.id"]]
assert counts and max(counts) == 1000, counts
print("dedup ok: 1 alert, final count", max(counts), "after", len(counts), "updates")
PYEOF

run inbound inbound_server.pcap
$PY - "$T/inbound.jsonl" <<'PYEOF'
import json, sys
alerts = [r for r in map(json.loads, open(sys.argv[1])) if r["event.kind"] == "alert"]
assert alerts, "no alert for the inbound ngrok name"
for a in alerts:
    assert a["tunnelwatch.attribution"] == "inbound" and a["network.direction"] == "inbound", a
    assert a["source.ip"] == "10.1.0.90" and a["server.ip"] == "10.1.0.90", a
print("inbound ok")
PYEOF
ok "attribution, dedup and inbound labelling"

# --write-evidence (no evidence.dir: a private directory beside the file, removed at exit):
# every packet of the flagged flows from their SYN on (the two flows of the expect file), the
# DNS query and answer packets that named their server (selected with tshark), nothing else
command -v tshark >/dev/null || { ok "evidence pcap: skipped (tshark not installed)"; exit 0; }
mkdir -p "$T/wev"
"$TW_BIN" -R "$TW_SRC/conf/rules" --redis none -r "$TW_SRC/pcaps/resolver_attrib.pcap" \
    --alerts /dev/null --write-evidence "$T/wev/evidence.pcap" 2>"$T/wev.err" || { cat "$T/wev.err"; fail "evidence run"; }
grep -q "tunnelwatch: evidence: .* packets of 2 incidents written to" "$T/wev.err" || { cat "$T/wev.err"; fail "no evidence report"; }
[ "$(ls -A "$T/wev")" = "evidence.pcap" ] || fail "the private directory stayed: $(ls -A "$T/wev")"
$PY - "$T/wev/evidence.pcap" "$TW_SRC/pcaps/resolver_attrib.pcap" "$TW_SRC/pcaps/resolver_attrib.expect" \
    "$TW_SRC/tests/e2e" <<'PYEOF' || fail "the evidence pcap is not the flagged flows and their DNS packets"
import collections, sys
sys.path.insert(0, sys.argv[4])
from evidence_check import read_pcap, frames, dns_queries
merged, cap, expect = sys.argv[1:4]
flows = [l.rstrip("\n").split("\t") for l in open(expect) if l.startswith("flow\t")]
flt, n_flow = [], 0
for f in flows:
    (c, cp), (s, sp) = f[1].rsplit(":", 1), f[2].rsplit(":", 1)
    flt.append("(ip.addr==%s && ip.addr==%s && tcp.port==%s && tcp.port==%s)" % (c, s, cp, sp))
    kv = dict(x.split("=") for x in f[3:])
    n_flow += int(kv["c2s_frames"]) + int(kv["s2c_frames"])
sel = set(frames(cap, " || ".join(flt)))
assert len(sel) == n_flow, (len(sel), n_flow)
ans = frames(cap, " || ".join("(dns.flags.response==1 && dns.a==%s)" % f[2].rsplit(":", 1)[0] for f in flows))
dns = set(ans) | set(dns_queries(cap, ans))
pk = read_pcap(cap)
want = collections.Counter(pk[n - 1] for n in sel | dns)
got = collections.Counter(read_pcap(merged))
assert got == want, ("%d packets, want %d: %d missing, %d extra" % (
    sum(got.values()), sum(want.values()), sum((want - got).values()), sum((got - want).values())))
print("evidence pcap: %d packets = %d of the flagged flows + %d DNS packets" % (len(sel | dns), len(sel), len(dns)))
PYEOF
ok "evidence pcap: the whole of both flagged flows and the DNS packets that named their server"
