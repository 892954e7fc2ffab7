#!/usr/bin/env bash
# Per-incident evidence pcaps in replays (evidence.dir): each incident's pcap holds exactly the
# packets of its flagged flows and the DNS packets that named their servers, byte-identical
# to the same packets selected from the original capture with tshark, timestamps included;
# the records name the file; the directory stays under evidence.max_total_mib, the oldest
# incident files removed first and counted. --write-evidence in the same run is the union of
# those incident pcaps, timestamps included, in time order.
. "$(dirname "$0")/lib.sh"
command -v tshark >/dev/null || skip "tshark not installed"
caps=("$TW_SRC/pcaps/demo.pcap" "$TW_SRC/pcaps/resolver_attrib.pcap")
for c in "${caps[@]}"; do
    n=$(basename "$c" .pcap)
    mkdir -p "$T/ev"
    "$TW_BIN" -q -R "$TW_SRC/conf/rules" --redis none -r "$c" --alerts "$T/$n.jsonl" \
        --set evidence.dir="$T/ev/$n" --write-evidence "$T/$n.merged.pcap" || fail "replay $n"
    $PY "$TW_SRC/tests/e2e/evidence_check.py" "$T/$n.jsonl" replay "$c" || fail "$n: incident pcaps differ"
    $PY "$TW_SRC/tests/e2e/evidence_union.py" "$T/$n.merged.pcap" --union "$T/ev/$n"/*.pcap ||
        fail "$n: --write-evidence is not the union of the incident pcaps"
done
grep -q '"tunnelwatch.evidence.pcap":"/' "$T/resolver_attrib.jsonl" || fail "no absolute pcap path"
grep '"event.action":"raised"' "$T/resolver_attrib.jsonl" | grep -q '"tunnelwatch.evidence.pcap_packets":5' ||
    fail "the attributed alert does not name its pcap (4 DNS packets and the SYN)"
ok "replay: every incident pcap equals the flagged flows and their DNS packets of the capture, --write-evidence their union"

# the same in ASIM: AdditionalFields.EvidencePcap
"$TW_BIN" -q -R "$TW_SRC/conf/rules" --redis none -r "${caps[1]}" --schema asim --alerts "$T/asim.jsonl" \
    --set evidence.dir="$T/ev/asim" || fail "asim replay"
grep -q '"EvidencePcap":"/' "$T/asim.jsonl" || fail "no EvidencePcap in ASIM records"
ok "ASIM records carry AdditionalFields.EvidencePcap"

# disk bound: six copies of demo.pcap 600 s apart, every hit its own incident (dedup off):
# about 1.3 MiB of evidence for a 1 MiB directory
$PY - "${caps[0]}" "$T/demo6.pcap" <<'PYEOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
out, off, recs = bytearray(d[:24]), 24, []
while off + 16 <= len(d):
    s, u, i, o = struct.unpack("<IIII", d[off:off + 16])
    recs.append((s, u, i, o, d[off + 16:off + 16 + i]))
    off += 16 + i
for k in range(6):
    for s, u, i, o, b in recs:
        out += struct.pack("<IIII", s + k * 600, u, i, o) + b
open(sys.argv[2], "wb").write(out)
PYEOF
mkdir -p "$T/ev/old"
head -c 300000 /dev/zero >"$T/ev/old/0000000000000000-0000000000000000.pcap" # an earlier run's
"$TW_BIN" -v -R "$TW_SRC/conf/rules" --redis none -r "$T/demo6.pcap" --alerts "$T/d6.jsonl" \
    --set evidence.dir="$T/ev/old" --set evidence.max_total_mib=1 --set alert.dedup_window_s=0 \
    2>"$T/d6.err" || { cat "$T/d6.err"; fail "disk-bound replay"; }
total=$(du -b --apparent-size -s "$T/ev/old" | cut -f1)
dirsz=$(stat -c %s "$T/ev/old")
[ $((total - dirsz)) -le 1048576 ] || fail "evidence directory holds $total bytes, over 1 MiB"
removed=$(awk '$1 == "evidence_removed" { print $2 }' "$T/d6.err")
[ "${removed:-0}" -ge 2 ] || { grep evidence "$T/d6.err"; fail "removals not counted ($removed)"; }
[ ! -e "$T/ev/old/0000000000000000-0000000000000000.pcap" ] || fail "the earlier run's file stayed"
n=$(ls "$T/ev/old" | wc -l)
[ "$n" -ge 3 ] || fail "only $n incident files left"
ok "disk bound: $((total - dirsz)) bytes in $n files under 1 MiB, $removed removals counted (the earlier run's first)"

# Redis copy: SET tunnelwatch:evidence:<incident> <pcap> EX ttl through the publisher; the
# records name the key; a copy under the cap equals the file, one over it is a whole-packet
# prefix of the file, itself a valid pcap
if command -v redis-server >/dev/null; then
    redis_start ev
    "$TW_BIN" -q -R "$TW_SRC/conf/rules" --redis "unix://$T/ev.sock" -r "${caps[1]}" \
        --alerts "$T/rc.jsonl" --set evidence.dir="$T/ev/rc" --set evidence.redis_max_kib=16 \
        --set evidence.redis_ttl_s=600 2>"$T/rc.err" || { cat "$T/rc.err"; fail "redis copy run"; }
    $PY - "$T/rc.jsonl" "$T/ev.sock" <<'PYEOF' || fail "redis copies differ from the files"
import json, subprocess, sys
keys = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("tunnelwatch.evidence.redis_key"):
        keys[r["tunnelwatch.evidence.redis_key"]] = r["tunnelwatch.evidence.pcap"]
assert len(keys) == 2, keys
for key, path in keys.items():
    assert key.startswith("tunnelwatch:evidence:"), key
    blob = subprocess.run(["redis-cli", "-s", sys.argv[2], "--raw", "GET", key], capture_output=True).stdout[:-1]
    ttl = int(subprocess.run(["redis-cli", "-s", sys.argv[2], "TTL", key], capture_output=True, text=True).stdout)
    assert 0 < ttl <= 600, ttl
    f = open(path, "rb").read()
    assert len(blob) <= 16 * 1024 and f.startswith(blob), (key, len(blob), len(f))
    off = 24
    while off < len(blob):
        off += 16 + int.from_bytes(blob[off + 8:off + 12], "little")
    assert off == len(blob), "not cut at a packet boundary"
    print("ok", key, len(blob), "of", len(f), "bytes")
PYEOF
    ok "Redis copies: whole-packet prefixes of the incident pcaps under evidence.redis_max_kib, with their TTL"
fi
