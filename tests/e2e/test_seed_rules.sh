#!/usr/bin/env bash
# Each of the seven seed hostnames raises the seed rule's alert, with its id, title, level and
# ATT&CK techniques, when seen in DNS, in a TLS ClientHello, in a QUIC Initial and in an HTTP
# Host header (each kind isolated with a BPF filter, so no other evidence stands in for it);
# connect.ngrok-agent.com raises the local ngrok-agent rule; benign look-alikes raise nothing.
. "$(dirname "$0")/lib.sh"
check() { # kind bpf capture
    "$TW_BIN" -q -r "$TW_SRC/pcaps/$3" -R "$TW_SRC/conf/rules" --redis none --alerts "$T/$1.jsonl" $2 ||
        fail "sensor failed on $3 ($1)"
    $PY - "$T/$1.jsonl" "$1" <<'PYEOF' || exit 1
import json, sys
kind = sys.argv[2]
seed = {f"tunnel.{r}.ngrok.com" for r in ("us", "eu", "ap", "au", "sa", "jp", "in")}
alerts = [r for r in map(json.loads, open(sys.argv[1])) if r["event.kind"] == "alert"]
seen = set()
for a in alerts:
    name = a["tunnelwatch.evidence.name"]
    assert a["tunnelwatch.evidence.kind"] == kind, (kind, a["tunnelwatch.evidence.kind"], name)
    if name in seed:
        assert a["rule.id"] == "19bf6fdb-7721-4f3d-867f-53467f6a5db6", a
        assert a["rule.name"] == "Communication To Ngrok Tunneling Service - Linux"
        assert a["rule.level"] == "high"
        assert set(a["threat.technique.id"]) == {"T1567", "T1568.002", "T1572", "T1090", "T1102"}
        assert "attack.s0508" in a["tags"]
        seen.add(name)
    elif "ngrok-agent.com" in name:
        assert a["rule.name"].startswith("Communication To Ngrok Agent"), a["rule.name"]
        assert a["rule.id"] != "19bf6fdb-7721-4f3d-867f-53467f6a5db6"
    else:
        sys.exit(f"{kind}: unexpected alert for {name} ({a['rule.name']})")
if kind in ("dns_query", "tls_sni"):
    agents = {a["tunnelwatch.evidence.name"] for a in alerts if "ngrok-agent" in a["tunnelwatch.evidence.name"]}
    assert agents == {"connect.ngrok-agent.com", "connect.us.ngrok-agent.com"}, agents
missing = seed - seen
assert not missing, f"{kind}: no alert for {sorted(missing)}"
print(f"{kind}: {len(seen)} seed names alerted, {len(alerts)} alerts in all")
PYEOF
}
# --check-config loads the seed and the shipped local rules and prints the summary
"$TW_BIN" -T -R "$TW_SRC/conf/rules" >"$T/check.txt" || fail "--check-config exit $?"
nfiles=$(ls "$TW_SRC"/conf/rules/*.yml | wc -l)
grep -qE "^# rules: $nfiles rules, [0-9]+ patterns, $nfiles files, 0 skipped; fields: DestinationHostname" "$T/check.txt" ||
    { tail -3 "$T/check.txt"; fail "--check-config summary"; }
grep -q "19bf6fdb-7721-4f3d-867f-53467f6a5db6  high     Communication To Ngrok Tunneling Service - Linux" "$T/check.txt" ||
    fail "--check-config does not list the seed rule"
printf 'title: Bad\nid: 11111111-2222-4333-8444-555555555555\nlogsource: {category: network_connection}\ndetection:\n  sel:\n    DestinationHostname|windash: x\n  condition: sel\n' >"$T/bad.yml"
set +e
"$TW_BIN" -T -R "$T/bad.yml" >/dev/null 2>"$T/bad.err"
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "bad.yml.*Bad.*|windash" "$T/bad.err" || { cat "$T/bad.err"; fail "an unsupported modifier must fail --check-config with exit 2 naming file, rule and construct"; }
check dns_query "udp port 53" seed_names.pcap
check tls_sni "tcp port 443" seed_names.pcap
check http_host "tcp port 80" seed_names.pcap
check quic_sni "udp port 443" seed_quic.pcap
# benign traffic raises nothing
"$TW_BIN" -q -r "$TW_SRC/pcaps/benign_mix.pcap" -R "$TW_SRC/conf/rules" --redis none --alerts "$T/benign.jsonl"
[ ! -s "$T/benign.jsonl" ] || { head -3 "$T/benign.jsonl"; fail "benign_mix.pcap raised alerts"; }
ok "seed rule on every kind, agent rule, no alert on benign traffic"
