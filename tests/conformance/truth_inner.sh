#!/bin/bash
# truth_inner.sh CAPTURE: tshark's hostname observations in the --names TSV shape
# (frame, kind, name, src, dst, dst_port), like ../shared/tools/truth.sh, but with the addresses
# of the innermost IP header as ../shared/pcaps/README.md states.
#
# truth.sh reads ip.src/ip.dst and only uses ipv6.src/ipv6.dst when the frame has no IPv4
# header, so IPv6 carried in IPv4 (6in4) gets the outer tunnel endpoints. Here the frame's
# protocol path (frame.protocols, e.g. eth:ethertype:ip:ipv6:udp:dns) decides: whichever of
# "ip" and "ipv6" is the last IP layer in it supplies the addresses, taken from that field's
# last occurrence. Everything else (display filter, options, name and port mapping, dropping
# of "<...>" placeholders) is the same as in truth.sh, so captures without IPv6-in-IPv4 give
# byte-identical output. Used to produce tests/conformance/overrides/ (see README.md there).
# No pipefail: tshark exits non-zero on a file cut mid-record, yet the frames before the cut
# are the truth (as with truth.sh, whose status is that of awk).
[ $# -eq 1 ] || { echo "usage: $0 CAPTURE" >&2; exit 2; }
[ -r "$1" ] || { echo "$0: cannot read $1" >&2; exit 2; }

# Fields 1-11 as in truth.sh; field 12 is the protocol path.
tshark -r "$1" -n -o tcp.desegment_tcp_streams:TRUE -o tcp.reassemble_out_of_order:TRUE \
  -Y '(dns && dns.flags.response==0) || tls.handshake.type==1 || http.host' \
  -T fields -E separator='|' -E occurrence=a -E aggregator=',' \
  -e frame.number -e dns.qry.name -e tls.handshake.extensions_server_name -e http.host \
  -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e tcp.dstport -e udp.dstport -e quic.version \
  -e frame.protocols 2>/dev/null |
awk -F'|' -v OFS='\t' '
# last element of a comma-aggregated field ("" stays "")
function last(s,   parts, k) { k = split(s, parts, ","); return k ? parts[k] : "" }
{
  # which IP family is innermost: scan the protocol path, remember the last ip/ipv6 layer
  inner = ""
  nl = split($12, layer, ":")
  for (j = 1; j <= nl; j++)
    if (layer[j] == "ip" || layer[j] == "ipv6") inner = layer[j]

  v4s = last($5); v4d = last($7); v6s = last($6); v6d = last($8)
  # the other family only stands in where the preferred one is absent
  if (inner == "ipv6") { s = (v6s != "") ? v6s : v4s; d = (v6d != "") ? v6d : v4d }
  else                 { s = (v4s != "") ? v4s : v6s; d = (v4d != "") ? v4d : v6d }

  p = ($9 != "") ? last($9) : last($10)

  if ($2 != "") { nq = split($2, q, ","); for (j = 1; j <= nq; j++) if (q[j] !~ /^</) print $1, "dns_query", q[j], s, d, p }
  if ($3 != "") { kind = ($11 != "") ? "quic_sni" : "tls_sni"
                  nq = split($3, q, ","); for (j = 1; j <= nq; j++) print $1, kind, q[j], s, d, p }
  if ($4 != "") { nq = split($4, q, ","); for (j = 1; j <= nq; j++) print $1, "http_host", q[j], s, d, p }
}'
