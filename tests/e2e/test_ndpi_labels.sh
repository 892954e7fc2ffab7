#!/usr/bin/env bash
# network.protocol of alert and flow-end records: our parsers label the flows they name (dns,
# tls, quic, http); nDPI labels only what they cannot, above all a flow to an address a flagged
# DNS answer named (the SSH tunnel of resolver_attrib: ssh) and flows behind a proxy or
# STARTTLS preamble (socks, smtp, http_connect). With nDPI off those labels are gone, so the
# ssh label is nDPI's. nDPI does not run for unflagged flows our parsers named or gave up
# (ndpi_flows of benign_mix: 0).
. "$(dirname "$0")/lib.sh"
labels() { # labels CAPTURE [ARGS...]: action kind transport server.port protocol, sorted unique
    local c=$1
    shift
    rm -f "$T/a.jsonl"
    "$TW_BIN" -q -r "$TW_SRC/pcaps/$c" -R "$TW_SRC/tests/e2e/data/every_name.yml" -R "$TW_SRC/conf/rules" \
        --redis none --alerts "$T/a.jsonl" "$@" 2>"$T/err" || { cat "$T/err"; fail "$c: replay"; }
    $PY - "$T/a.jsonl" <<'PYEOF'
import json, sys
rows = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event.action"] in ("raised", "flow_end"):
        rows.add("%s %s %s %s %s" % (r["event.action"], r.get("tunnelwatch.evidence.kind"),
                                     r["network.transport"], r.get("server.port"),
                                     r.get("network.protocol", "-")))
print("\n".join(sorted(rows)))
PYEOF
}
expect() { # expect CAPTURE ROWS [ARGS...]: every row (one per line) is among the labels
    local c=$1 want=$2
    shift 2
    labels "$c" "$@" >"$T/got"
    while IFS= read -r row; do
        grep -qxF "$row" "$T/got" || { cat "$T/got" >&2; fail "$c ${*:-}: no record '$row'"; }
    done <<<"$want"
}
expect resolver_attrib.pcap "raised dns_query udp 53 dns
raised dns_answer tcp 22 -
flow_end dns_answer tcp 22 ssh
flow_end dns_answer tcp 443 tls"
ok "resolver_attrib: dns and tls ours, the SSH flow to the flagged answer's address nDPI's (ssh)"
expect resolver_attrib.pcap "flow_end dns_answer tcp 22 -" --set flow.ndpi=false
grep -q "ssh" "$T/got" && fail "resolver_attrib without nDPI: an ssh label"
ok "resolver_attrib, nDPI off: the SSH flow has no label"
expect dns_cname_chain.pcap "flow_end dns_answer tcp 22 ssh"
expect socks5_tls.pcap "raised proxy_target tcp 1080 socks
flow_end proxy_target tcp 1080 socks"
expect smtp_starttls.pcap "raised tls_sni tcp 25 smtp
flow_end tls_sni tcp 25 smtp"
expect proxy_connect_tls.pcap "flow_end http_host tcp 3128 http_connect"
ok "preamble flows: nDPI's label (socks, smtp, http_connect) kept"
expect quic_greased.pcap "raised quic_sni udp 443 quic
flow_end quic_sni udp 443 quic"
expect http_pipelined.pcap "raised http_host tcp 80 http
flow_end http_host tcp 80 http"
ok "quic and http: our labels"
# nDPI runs only for flows whose label someone reads: none in benign_mix (every flow named by
# our parsers or given up, none flagged), one in resolver_attrib (the SSH flow)
n=$("$TW_BIN" -v -r "$TW_SRC/pcaps/benign_mix.pcap" --redis none --alerts /dev/null 2>&1 |
    awk '$1 == "ndpi_flows" {print $2}')
[ -z "$n" ] || fail "benign_mix: nDPI ran for $n flows"
n=$("$TW_BIN" -v -r "$TW_SRC/pcaps/resolver_attrib.pcap" -R "$TW_SRC/conf/rules" --redis none \
    --alerts /dev/null 2>&1 | awk '$1 == "ndpi_flows" {print $2}')
[ "$n" = 1 ] || fail "resolver_attrib: nDPI ran for ${n:-0} flows, not 1"
ok "nDPI ran for no benign_mix flow, for the one flagged SSH flow of resolver_attrib"
# the bench's nDPI-hard profile, small: unflagged, nDPI may run only for TCP flows seen from
# their SYN whose server spoke first (SSH, half the unknown binary protocols); not for long UDP
# flows, mid-stream flows, or flows our parsers named or gave up (main: 50 of 100 flows)
/usr/bin/python3 "$TW_SRC/scripts/gen_bench.py" ndpi-hard "$T/hard.pcap" --mib 2 2>/dev/null
"$TW_BIN" -r "$T/hard.pcap" --redis none --names -R "$TW_SRC/conf/rules" >"$T/hard.names" 2>/dev/null
/usr/bin/python3 "$TW_SRC/scripts/gen_bench.py" check "$T/hard.pcap" --names "$T/hard.names" ||
    fail "ndpi-hard: names differ from the truth"
n=$("$TW_BIN" -v -r "$T/hard.pcap" --redis none --alerts /dev/null 2>&1 | awk '$1 == "ndpi_flows" {print $2}')
max=$(awk -F= '$1 == "flows_ssh" || $1 == "flows_tcp_unknown" {s += $2} END {print s}' "$T/hard.pcap.meta")
[ "${n:-0}" -gt 0 ] && [ "${n:-0}" -le "$max" ] || fail "ndpi-hard: nDPI ran for ${n:-0} flows (want 1..$max)"
ok "ndpi-hard: nDPI ran for $n flows (at most $max: server-first TCP flows from their SYN)"
