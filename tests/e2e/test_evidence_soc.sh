#!/usr/bin/env bash
# The evidence of an incident, from the sensor to the analyst's download (issue 19), with a real
# redis-server and the real sensor and tunnelwatch-web:
#   - the sensor replays pcaps/demo.pcap and pcaps/resolver_attrib.pcap with evidence.dir and
#     a Redis copy on; every incident pcap in the directory is named by its records in the
#     stream (with its size, packet count and Redis key), and an alert raised by a connection
#     names it at once;
#   - the key holds the same bytes as the file on disk;
#   - tunnelwatch-web, behind basic auth, serves at the link its record panel offers
#     (api/evidence/<incident id>.pcap, as test_web_evidence.sh reads it from the DOM) a file
#     cmp-equal to the sensor's pcap on disk; without credentials it refuses (401);
#   - with evidence.redis_max_kib smaller than the pcap, the copy is a whole-packet prefix of the
#     file, no larger than the bound, and still a pcap the web serves.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip "curl is not installed"
web_bin

redis_start r
sock=$T/r.sock
rcli() { redis-cli -s "$sock" "$@"; }

# replay NAME CAPTURE KIB: the sensor's run into Redis with evidence.dir=$T/NAME
replay() {
    "$TW_BIN" -q -R "$TW_SRC/conf/rules" -r "$2" --redis "unix://$sock" --alerts "$T/$1.jsonl" \
        --set evidence.dir="$T/$1" --set evidence.redis_max_kib="$3" \
        --set redis.stream_key="tw:$1" --set redis.channel_key="tw:$1" ||
        fail "sensor replay of $2"
}
replay demo "$TW_SRC/pcaps/demo.pcap" 4096
replay attrib "$TW_SRC/pcaps/resolver_attrib.pcap" 4096
replay small "$TW_SRC/pcaps/demo.pcap" 64

# Every record of the stream that names a pcap: incident, path, bytes, packets, key (TSV).
stream_json "$sock" tw:demo >"$T/demo.stream"
stream_json "$sock" tw:attrib >"$T/attrib.stream"
stream_json "$sock" tw:small >"$T/small.stream"
$PY - "$T" <<'PYEOF' || fail "records"
import json, os, sys
tmp = sys.argv[1]
out = open(tmp + "/incidents.tsv", "w")
for run in ("demo", "attrib", "small"):
    recs = [json.loads(l) for l in open(f"{tmp}/{run}.stream")]
    assert recs, f"{run}: the stream is empty"
    seen = {}
    for r in recs:
        if "tunnelwatch.evidence.pcap" not in r:
            continue
        inc = r.get("tunnelwatch.incident_id") or r["event.id"]
        path = r["tunnelwatch.evidence.pcap"]
        assert path == f"{tmp}/{run}/{inc}.pcap", (run, path, inc)
        assert r["tunnelwatch.evidence.redis_key"] == "tunnelwatch:evidence:" + inc, r
        assert r["tunnelwatch.evidence.pcap_packets"] > 0 and r["tunnelwatch.evidence.pcap_bytes"] > 24
        seen.setdefault(inc, []).append(r["event.action"] if "event.action" in r else r["event.kind"])
    # an alert raised by a connection names its pcap at once (a DNS query alone has none)
    for r in recs:
        if r.get("event.action") == "raised" and r["tunnelwatch.evidence.kind"] != "dns_query":
            assert r["event.id"] in seen, f"{run}: the raised alert {r['event.id']} names no pcap"
    files = sorted(f[:-5] for f in os.listdir(f"{tmp}/{run}") if f.endswith(".pcap"))
    assert files and files == sorted(seen), f"{run}: pcaps {files}, named by records {sorted(seen)}"
    for inc, acts in sorted(seen.items()):
        size = os.path.getsize(f"{tmp}/{run}/{inc}.pcap")
        out.write(f"{run}\t{inc}\t{size}\n")
    print(f"{run}: {len(seen)} incident(s) with a pcap, records: {sum(map(len, seen.values()))}")
PYEOF
ok "the records name each incident's pcap and Redis key"

cat >"$T/web.conf" <<'EOF'
auth = { user = "analyst"; password = "s3cret"; };
EOF
WEB_REDIS="unix://$sock" web_start web -c "$T/web.conf"
U=$WEB_URL
n=0
while IFS=$'\t' read -r run inc size; do
    file=$T/$run/$inc.pcap
    key=tunnelwatch:evidence:$inc
    rcli --raw GET "$key" | head -c -1 >"$T/key.bin" # --raw adds a newline
    [ "$(rcli TTL "$key")" -gt 0 ] || fail "$key has no TTL"
    code=$(curl -s -o "$T/dl.pcap" -w '%{http_code}' -u analyst:s3cret "${U}api/evidence/$inc.pcap")
    [ "$code" = 200 ] || fail "$run $inc: download answered $code: $(head -c 300 "$T/dl.pcap")"
    cmp -s "$T/dl.pcap" "$T/key.bin" || fail "$run $inc: the download differs from the Redis copy"
    if [ "$run" = small ]; then
        $PY - "$T/dl.pcap" "$file" 65536 <<'PYEOF' || fail "$run $inc: the bounded copy"
import struct, sys
part, whole, cap = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), int(sys.argv[3])
assert len(part) <= cap, f"copy of {len(part)} bytes over the {cap} bound"
assert whole.startswith(part), "the copy is not a prefix of the file"
off = 24
while off < len(part):
    off += 16 + struct.unpack_from("<I", part, off + 8)[0]
assert off == len(part), "the copy ends inside a packet"
if len(whole) > cap:
    assert len(part) + 16 + struct.unpack_from("<I", whole, len(part) + 8)[0] > cap, "copy cut short"
print(f"bounded copy: {len(part)} of {len(whole)} bytes, whole packets")
PYEOF
    else
        cmp -s "$T/dl.pcap" "$file" || fail "$run $inc: the download differs from $file"
    fi
    n=$((n + 1))
done <"$T/incidents.tsv"
[ "$n" -ge 3 ] || fail "only $n incident pcaps"
ok "$n downloads equal to the sensor's pcaps (or their bounded copies)"

first=$(head -1 "$T/incidents.tsv" | cut -f2)
code=$(curl -s -o /dev/null -w '%{http_code}' "${U}api/evidence/$first.pcap")
[ "$code" = 401 ] || fail "download without credentials answered $code"
ok "no download without credentials"
echo "PASS: evidence from the sensor to the SOC page"
