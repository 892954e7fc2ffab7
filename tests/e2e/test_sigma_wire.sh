#!/usr/bin/env bash
# SigmaHQ network rules on the wire (pcaps/sigma_network.pcap, see its MANIFEST line): the
# LocaltoNet (Windows and Linux), Cloudflared and DevTunnels network_connection rules
# (Initiated), the rclone proxy User-Agent rule, the Linux malware-callback DestinationPort rule
# and the Zeek NKN DNS rule raise exactly these alerts with the fields they matched on; the
# benign look-alikes raise nothing. With rules.unobservable_filters = "drop", two more rules run
# relaxed (one level lower, tunnelwatch.rule_relaxed). The sc-status rule on
# pcaps/sigma_http_status.pcap fires at the response.
. "$(dirname "$0")/lib.sh"
SIGMA="$TW_SHARED/sigma"
[ -d "$SIGMA" ] || skip "$SIGMA not present"
run() { # policy schema out
    "$TW_BIN" -q -r "$TW_SRC/pcaps/sigma_network.pcap" -R "$SIGMA" --set rules.on_unsupported=skip \
        --set rules.unobservable_filters=$1 --redis none --schema $2 --alerts "$T/$3" 2>"$T/$3.err" ||
        fail "sensor exit $? ($1 $2)"
}
run skip ecs skip.jsonl
run drop ecs drop.jsonl
run skip asim asim.jsonl
$PY - "$T/skip.jsonl" "$T/drop.jsonl" "$T/asim.jsonl" <<'PYEOF' || exit 1
import json, sys
def alerts(p):
    return [a for a in map(json.loads, open(p)) if a.get("event.kind", "alert") == "alert" and
            a.get("EventSubType", "raised") == "raised"]
want = {
    ("c4568f5d-131f-4e78-83d4-45b2da0ec4f1", "tls_sni", "app1.localto.net"),
    ("3ab65069-d82a-4d44-a759-466661a082d1", "tls_sni", "app1.localto.net"),
    ("7cd1dcdc-6edf-4896-86dc-d1f19ad64903", "tls_sni", "demo-x.trycloudflare.com"),
    ("9501f8e6-8e3d-48fc-a8a6-1089dd5d7ef4", "tls_sni", "abcd1234-8080.euw.devtunnels.ms"),
    ("2c03648b-e081-41a5-b9fb-7d854a915091", "http_host", "files.example.net"),
    ("dbfc7c98-04ab-4ab7-aa94-c74d22aa7376", "flow", "198.51.100.88"),
    ("fa7703d6-0ee8-4949-889c-48c84bc15b6f", "dns_query", "mainnet-seed-0001.nkn.org"),
}
a = alerts(sys.argv[1])
got = {(x["rule.id"], x["tunnelwatch.evidence.kind"], x["tunnelwatch.evidence.name"]) for x in a}
assert got == want and len(a) == len(want), (sorted(got ^ want), len(a))
by = {x["rule.id"][:8]: x for x in a}
assert by["2c03648b"]["user_agent.original"] == "rclone/v1.66.0", by["2c03648b"]
assert by["2c03648b"]["destination.port"] == 80
assert by["dbfc7c98"]["destination.port"] == 4444 and by["dbfc7c98"]["destination.ip"] == "198.51.100.88"
assert by["dbfc7c98"]["source.ip"] == "10.1.0.194"
assert by["c4568f5d"]["tls.client.server_name"] == "app1.localto.net"
assert by["fa7703d6"]["tunnelwatch.matched"] in ("seed", ".nkn.org")
assert not any("tunnelwatch.rule_relaxed" in x for x in a)
d = alerts(sys.argv[2])
relaxed = {(x["rule.id"], x["tunnelwatch.evidence.name"], x["rule.level"]) for x in d
           if x.get("tunnelwatch.rule_relaxed")}
assert relaxed == {("297ae038-edc2-4b2e-bb3e-7c5fc94dd5c7", "demo-x.trycloudflare.com", "medium"),
                   ("4b89abaa-99fe-4232-afdd-8f9aa4d20382", "198.51.100.88", "medium")}, relaxed
assert {(x["rule.id"], x["tunnelwatch.evidence.kind"], x["tunnelwatch.evidence.name"]) for x in d
        if not x.get("tunnelwatch.rule_relaxed")} == want
s = alerts(sys.argv[3])
assert {x["RuleId"] for x in s} == {w[0] for w in want}, s
assert [x["HttpUserAgent"] for x in s if x["RuleId"].startswith("2c03648b")] == ["rclone/v1.66.0"]
print(f"{len(a)} alerts as expected; {len(relaxed)} relaxed with drop; ASIM {len(s)}")
PYEOF

# sc-status (pcaps/sigma_http_status.pcap): the CVE-2023-4966 proxy rule fires at the 200
# response only, for the right request of a pipelined pair (100 Continue and 403 before it);
# the 404, /index.html and POST look-alikes raise nothing.
"$TW_BIN" -q -r "$TW_SRC/pcaps/sigma_http_status.pcap" -R "$SIGMA" --set rules.on_unsupported=skip \
    --redis none --alerts "$T/status.jsonl" 2>"$T/status.err" || fail "sensor exit $? (status)"
$PY - "$T/status.jsonl" <<'PYEOF' || exit 1
import json, sys
a = [x for x in map(json.loads, open(sys.argv[1])) if x.get("event.action") == "raised"]
got = sorted((x["rule.id"], x["source.ip"], x["http.response.status_code"], x["url.original"],
              x["http.request.method"], x["tunnelwatch.evidence.name"]) for x in a)
path = "/oauth/idp/.well-known/openid-configuration"
want = [("ff349b81-617f-4af4-924f-dbe8ea9bab41", "10.1.0.210", 200, path, "GET", "gw.example.net"),
        ("ff349b81-617f-4af4-924f-dbe8ea9bab41", "10.1.0.212", 200, path + "?x=1", "GET",
         "gw.example.net")]
assert got == want, got
print(f"{len(a)} sc-status alerts as expected")
PYEOF
ok "sigma rules on the wire"
