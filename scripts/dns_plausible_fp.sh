#!/bin/sh
# dns_plausible_fp.sh - false-positive rate of dns_plausible() over the shared corpora:
# every UDP payload on ports other than 53, 5353 and 5355, split by whether tshark dissects it
# as DNS. Usage: scripts/dns_plausible_fp.sh [BUILD_DIR] [PCAP_DIR...] (needs tshark, cc).
# DUMP=FILE keeps tshark's listing; REUSE=FILE reads such a listing instead of running tshark.
set -eu
B=${1:-build}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- ../shared/pcaps ../shared/pcaps-wide
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cc -O2 -Iinclude scripts/dns_plausible_fp.c "$B/libtw_core.a" -o "$T/fp"
if [ -n "${REUSE:-}" ]; then
    "$T/fp" <"$REUSE"
    exit 0
fi
for d in "$@"; do
    for f in "$d"/*.pcap "$d"/*.pcapng; do
        [ -e "$f" ] || continue
        tshark -r "$f" -n -Y 'udp && !(udp.port==53) && !(udp.port==5353) && !(udp.port==5355)' \
            -T fields -E separator=' ' -E occurrence=f -e frame.number -e udp.srcport \
            -e udp.dstport -e dns.flags.response -e udp.payload 2>/dev/null |
            sed "s|^|$(basename "$f") |"
    done
done | tee "${DUMP:-/dev/null}" | "$T/fp"
