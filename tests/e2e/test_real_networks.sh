#!/usr/bin/env bash
# test_real_networks.sh: what real networks do that a lab capture rarely shows, replayed from the
# captures scripts/gen_pcaps.py makes (pcaps/README.md describes each):
#   tcp_fastopen_tls   ClientHello in the SYN (TCP Fast Open), and the same hello sent again after
#                      the server refused the SYN data: one tls_sni at the SYN, one alert each
#   dns_cname_chain    benign name -> CNAME -> CNAME tunnel.us.ngrok.com -> A, then SSH (no name) to
#                      that address: one dns_answer alert and its flow_end; the flagged name in the
#                      middle of a chain works too; a chain that ends in a benign name raises nothing
#   tls_hrr            HelloRetryRequest: the second ClientHello on the stream is read (also when the
#                      first one named something benign)
#   http_retrans       a retransmitted request is one observation; a keep-alive request is another
#   transit_external   hits between two external hosts: events by default (and a hint on stderr),
#                      alerts with alert.external=alert
#   dns_udp_port5300, dns_tcp_port8053   DNS to a non-DNS port, UDP and TCP with a length prefix
# For every capture the --names rows must equal its truth file, and the alert records are checked
# field by field. Every check runs (a failure does not hide the next ones); the exit status is 1
# if any failed.
. "$(dirname "$0")/lib.sh"
P=$TW_SRC/pcaps
nfail=0
bad() { echo "FAIL: $*" >&2; nfail=$((nfail + 1)); }

# replay OUT CAPTURE [args]: alert records to $T/OUT.jsonl, stderr to $T/OUT.err
replay() {
    local out=$1 cap=$2
    shift 2
    if ! "$TW_BIN" -R "$TW_SRC/conf/rules" --redis none --alerts "$T/$out.jsonl" -r "$P/$cap" "$@" \
        2>"$T/$out.err"; then
        cat "$T/$out.err" >&2
        bad "sensor failed on $cap"
        return 1
    fi
    json_lines_valid "$T/$out.jsonl" >/dev/null || bad "$out: alert file is not JSON lines"
}

# names CAPTURE: --names must print exactly the capture's truth file
names() {
    "$TW_BIN" --names -q -R "$TW_SRC/conf/rules" --redis none -r "$P/$1" >"$T/$1.names" 2>"$T/$1.names.err" ||
        bad "--names failed on $1"
    if diff "$P/$1.truth.tsv" "$T/$1.names" >"$T/$1.diff"; then
        ok "$1: --names equals the truth ($(wc -l <"$P/$1.truth.tsv") rows)"
    else
        bad "$1: --names differs from the truth (< truth, > sensor):"
        cat "$T/$1.diff" >&2
    fi
}

cat >"$T/chk.py" <<'PYEOF'
import json, sys

section, path = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(path)]
alerts = [r for r in recs if r["event.kind"] == "alert"]
ends = [r for r in recs if r.get("event.action") == "flow_end"]


def fail(msg):
    sys.exit(f"{section}: {msg}\nrecords:\n" + "\n".join(
        f"  {r['event.kind']} {r['event.action']} {r.get('source.ip')} -> {r.get('destination.ip')}:"
        f"{r.get('destination.port')} {r.get('tunnelwatch.evidence.kind')} {r.get('tunnelwatch.evidence.name')} "
        f"frame={r.get('tunnelwatch.evidence.frame')} count={r.get('event.count')} "
        f"attribution={r.get('tunnelwatch.attribution')}" for r in recs))


def check(cond, msg):
    if not cond:
        fail(msg)


def one_alert(host, **want):
    """The single alert of host, with the given fields (dots written as __ in the keywords)."""
    mine = [a for a in alerts if a["source.ip"] == host]
    check(len(mine) == 1, f"{host}: {len(mine)} alerts, want exactly 1")
    a = mine[0]
    for k, v in want.items():
        k = k.replace("__", ".")
        check(a.get(k) == v, f"{host}: {k} is {a.get(k)!r}, want {v!r}")
    return a


def final_count(a):
    """An incident's count after its updates (update records carry its id as incident_id)."""
    counts = [a["event.count"]] + [r["event.count"] for r in recs
                                   if r.get("tunnelwatch.incident_id") == a["event.id"] and "event.count" in r]
    return max(counts)


def flow_end_of(a, server, port):
    e = [r for r in ends if r.get("tunnelwatch.incident_id") == a["event.id"]]
    check(len(e) == 1, f"{a['source.ip']}: {len(e)} flow_end records for its incident, want 1")
    e = e[0]
    check((e["source.ip"], e["server.ip"], e["server.port"]) == (a["source.ip"], server, port),
          f"flow_end is {e['source.ip']} -> {e['server.ip']}:{e['server.port']}")
    check(e["client.packets"] > 0 and e["server.packets"] > 0, "flow_end without packets both ways")
    return e


if section == "tfo":
    check(len(alerts) == 2, f"{len(alerts)} alerts, want 2")
    for host, frame in (("10.1.0.170", 1), ("10.1.0.179", 16)):
        a = one_alert(host, tunnelwatch__evidence__kind="tls_sni", tunnelwatch__evidence__name="tunnel.us.ngrok.com",
                      tunnelwatch__evidence__frame=frame, destination__ip="3.134.39.220", destination__port=443,
                      tunnelwatch__attribution="client")
        # the refused SYN data sent again is the same hello, not a second observation
        check(final_count(a) == 1, f"{host}: count {final_count(a)}, want 1")
        flow_end_of(a, "3.134.39.220", 443)

elif section == "cname":
    check(len(alerts) == 2, f"{len(alerts)} alerts, want 2 (10.1.0.171 and 10.1.0.173)")
    for host, name, ip, frame in (("10.1.0.171", "tunnel.us.ngrok.com", "3.134.39.220", 2),
                                  ("10.1.0.173", "tunnel.au.ngrok.com", "13.54.93.152", 34)):
        a = one_alert(host, tunnelwatch__evidence__kind="dns_answer", tunnelwatch__evidence__name=name,
                      destination__domain=name, destination__ip=ip, destination__port=22,
                      network__transport="tcp", tunnelwatch__attribution="dns_answer",
                      tunnelwatch__resolver="10.1.0.53", tunnelwatch__resolver_frame=frame)
        e = flow_end_of(a, ip, 22)
        check(e.get("network.protocol") == "ssh", f"{host}: flow_end protocol {e.get('network.protocol')}")
    # the look-alike chain (ends in www.example.org) and the benign questions raise nothing
    for r in recs:
        check("10.1.0.172" not in (r.get("source.ip"), r.get("client.ip")), "a record for the look-alike host")
        check(r.get("destination.ip") != "203.0.113.77", "a record for the look-alike address")
        check(r.get("tunnelwatch.evidence.kind") != "dns_query", "a question of a benign name alerted")

elif section == "hrr":
    check(len(alerts) == 2, f"{len(alerts)} alerts, want 2")
    a = one_alert("10.1.0.176", tunnelwatch__evidence__kind="tls_sni", tunnelwatch__evidence__frame=4,
                  tunnelwatch__evidence__name="tunnel.eu.ngrok.com", destination__port=443)
    check(final_count(a) == 2, f"10.1.0.176: count {final_count(a)}, want 2 (both hellos)")
    # only the retry names ngrok: it must be read
    a = one_alert("10.1.0.177", tunnelwatch__evidence__kind="tls_sni", tunnelwatch__evidence__frame=26,
                  tunnelwatch__evidence__name="tunnel.eu.ngrok.com", destination__ip="3.125.209.94",
                  destination__port=443)
    check(final_count(a) == 1, f"10.1.0.177: count {final_count(a)}, want 1")

elif section == "http":
    check(len(alerts) == 2, f"{len(alerts)} alerts, want 2")
    a = one_alert("10.1.0.174", tunnelwatch__evidence__kind="http_host", tunnelwatch__evidence__frame=4,
                  tunnelwatch__evidence__name="tunnel.ap.ngrok.com", destination__port=80)
    check(final_count(a) == 1, f"10.1.0.174: count {final_count(a)}, want 1 (a retransmission is no new request)")
    a = one_alert("10.1.0.175", tunnelwatch__evidence__kind="http_host", tunnelwatch__evidence__frame=15,
                  tunnelwatch__evidence__name="tunnel.ap.ngrok.com", destination__port=80)
    check(final_count(a) == 2, f"10.1.0.175: count {final_count(a)}, want 2 (two keep-alive requests)")

elif section in ("transit_event", "transit_alert"):
    kind = "event" if section == "transit_event" else "alert"
    hits = [r for r in recs if r.get("tunnelwatch.evidence.kind") in ("dns_query", "tls_sni")
            and r.get("event.action") != "flow_end"]
    got = sorted((r["event.kind"], r["source.ip"], r["destination.ip"], r["destination.port"],
                  r["tunnelwatch.evidence.kind"], r["tunnelwatch.evidence.name"], r["tunnelwatch.attribution"])
                 for r in hits)
    want = sorted([(kind, "198.51.100.9", "203.0.113.53", 53, "dns_query", "tunnel.us.ngrok.com", "external"),
                   (kind, "198.51.100.9", "3.125.209.94", 443, "tls_sni", "tunnel.eu.ngrok.com", "external")])
    check(got == want, f"hits {got}, want {want}")
    if kind == "event":
        check(not alerts, f"{len(alerts)} alerts for transit traffic, want none by default")
        check(all(r["event.action"] == "external" for r in hits), "an event whose action is not 'external'")
    else:
        check(all(r["event.action"] == "raised" for r in hits), "an alert whose action is not 'raised'")

elif section == "dnsport":
    check(len(alerts) == 2, f"{len(alerts)} alerts, want 2")
    one_alert("10.1.0.180", tunnelwatch__evidence__kind="dns_query", tunnelwatch__evidence__name="tunnel.us.ngrok.com",
              destination__ip="192.0.2.53", destination__port=5300, network__transport="udp",
              tunnelwatch__evidence__frame=1)
    one_alert("10.1.0.181", tunnelwatch__evidence__kind="dns_query", tunnelwatch__evidence__name="tunnel.eu.ngrok.com",
              destination__ip="192.0.2.53", destination__port=8053, network__transport="tcp",
              tunnelwatch__evidence__frame=4)
else:
    fail("unknown section")
print(f"{section}: {len(alerts)} alerts, {len(recs)} records")
PYEOF

# chk SECTION OUT...: the section's checks on the concatenated records of the OUT runs
chk() {
    local section=$1
    shift
    for o in "$@"; do cat "$T/$o.jsonl"; done >"$T/$section.all.jsonl"
    if "$PY" "$T/chk.py" "$section" "$T/$section.all.jsonl"; then ok "$section"; else bad "$section"; fi
}

for c in tcp_fastopen_tls dns_cname_chain tls_hrr http_retrans transit_external dns_udp_port5300 \
    dns_tcp_port8053; do
    names "$c.pcap"
done

replay tfo tcp_fastopen_tls.pcap -q && chk tfo tfo
replay cname dns_cname_chain.pcap -q && chk cname cname
# also with the resolver configured: the same single alert per host
replay cname_res dns_cname_chain.pcap -q --set networks.resolvers=10.1.0.53 && chk cname cname_res
replay hrr tls_hrr.pcap -q && chk hrr hrr
replay http http_retrans.pcap -q && chk http http
replay dns5300 dns_udp_port5300.pcap -q && replay dns8053 dns_tcp_port8053.pcap -q && chk dnsport dns5300 dns8053

# Transit: default configuration. Without -q (which silences the end-of-replay report) stderr
# ends with a hint to set networks.internal.
if replay transit transit_external.pcap; then
    chk transit_event transit
    if grep -q 'set networks.internal' "$T/transit.err"; then
        ok "transit: stderr tells the user to set networks.internal"
    else
        bad "transit: no networks.internal hint on stderr:"
        cat "$T/transit.err" >&2
    fi
fi
replay transit_alert transit_external.pcap -q --set alert.external=alert && chk transit_alert transit_alert
# an internal hit gives no such hint
if replay tfo_loud tcp_fastopen_tls.pcap && grep -q 'networks.internal' "$T/tfo_loud.err"; then
    bad "the networks.internal hint printed for a replay without transit hits"
fi

[ "$nfail" -eq 0 ] || { echo "FAIL: $nfail checks failed" >&2; exit 1; }
ok "real-network behaviours: TFO, CNAME chains, HRR, retransmissions, transit, DNS on other ports"
