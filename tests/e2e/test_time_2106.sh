#!/usr/bin/env bash
# Classic pcap seconds are unsigned 32-bit: a capture dated from 2038-01-19T03:14:08Z up to
# 2106-02-07T06:28:15Z must give those dates in records and the per-host summary,
# in both byte orders and both precisions, and through libpcap's path for odd records too.
# pcaps/demo.pcap is shifted in time (by a script here) and replayed; every record time is
# checked against the shifted capture's own times as tshark reads them.
. "$(dirname "$0")/lib.sh"

# shift SRC DST NEWSTART BE NSEC [SNAP]: demo.pcap's records moved to start at NEWSTART (epoch
# seconds), rewritten in the given byte order and precision; SNAP lowers the header's snapshot
# length so that longer records go through libpcap's reader instead of ours.
cat >"$T/shift.py" <<'PY'
import struct, sys
src, dst, start, be, nsec = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1"
snap = int(sys.argv[6]) if len(sys.argv) > 6 else None
b = open(src, "rb").read()
assert struct.unpack("<I", b[:4])[0] == 0xa1b2c3d4
ver_maj, ver_min, tz, sig, snaplen, dlt = struct.unpack("<HHiIII", b[4:24])
o = ">" if be else "<"
out = [struct.pack(o + "IHHiIII", 0xa1b23c4d if nsec else 0xa1b2c3d4, ver_maj, ver_min, tz, sig,
                   snap or snaplen, dlt)]
off, first = 24, None
while off + 16 <= len(b):
    sec, usec, incl, orig = struct.unpack("<IIII", b[off:off + 16])
    if first is None:
        first = sec
    nsec_v = sec - first + start
    assert nsec_v < 2**32
    out.append(struct.pack(o + "IIII", nsec_v, usec * 1000 if nsec else usec, incl, orig))
    out.append(b[off + 16:off + 16 + incl])
    off += 16 + incl
open(dst, "wb").write(b"".join(out))
PY

# check NAME START: every @timestamp / event.start / event.end of the alerts is in the shifted
# range, the summary is dated there, --names still reads the names, and the first alert's time is the DNS query's shifted
# time (demo.pcap: its first packet is at 12:00:00.000150, the query at 12:00:02.482330;
# the shift keeps the fractions, so the query comes 2.482330 s after START).
check() {
    local name=$1 start=$2 f=$T/$1.pcap
    "$TW_BIN" -r "$f" -R "$TW_SRC/conf/rules" --redis none --alerts "$T/$name.json" \
        --summary "$T/$name.summary.json" -q 2>"$T/$name.err" || { cat "$T/$name.err" >&2; fail "$name: replay failed"; }
    "$TW_BIN" -r "$f" --names --redis none -q >"$T/$name.names" 2>>"$T/$name.err" || fail "$name: --names failed"
    $PY - "$T/$name.json" "$T/$name.summary.json" "$T/$name.names" "$start" "$name" <<'PY'
import json, sys, datetime
alerts, summary, names, start, name = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
lo = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
hi = datetime.datetime.fromtimestamp(start + 4, datetime.timezone.utc)
def iso(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
recs = [json.loads(l) for l in open(alerts)]
assert recs, f"{name}: no records"
n = 0
for r in recs:
    for k in ("@timestamp", "event.start", "event.end"):
        if k in r:
            t = iso(r[k]); n += 1
            assert lo <= t <= hi, f"{name}: {k} {r[k]} outside {lo}..{hi}"
first = [r for r in recs if r.get("event.kind") == "alert"][0]
want = lo + datetime.timedelta(microseconds=2482330)
assert iso(first["@timestamp"]) == want, f"{name}: first alert at {first['@timestamp']}, want {want}"
text = open(summary).read()
years = {str(lo.year), str(hi.year)}
assert any(y in text for y in years), f"{name}: summary shows none of {years}: {text[:300]}"
assert "1970-" not in text and "1969-" not in text, f"{name}: summary has a 1970 date"
rows = [l.split("\t") for l in open(names) if l.strip() and not l.startswith("#")]
assert rows, f"{name}: no --names rows"
print(f"{name}: {n} record times and {len(rows)} names rows in {lo:%Y-%m-%d}")
PY
    ok "$name: records dated $(date -u -d @"$start" +%FT%TZ) onwards"
}

demo=$TW_SRC/pcaps/demo.pcap
t2038=2147483648                # 2038-01-19T03:14:08Z, the first second past int32
t2106=$((4294967295 - 10))      # ten seconds before the format's last second
for v in "le 0 0" "be 1 0" "ns 0 1" "bens 1 1"; do
    set -- $v
    $PY "$T/shift.py" "$demo" "$T/y2038_$1.pcap" "$t2038" "$2" "$3"
    check "y2038_$1" "$t2038"
    $PY "$T/shift.py" "$demo" "$T/y2106_$1.pcap" "$t2106" "$2" "$3"
    check "y2106_$1" "$t2106"
done
# Odd records (longer than the snapshot length) are read by libpcap, which reads the seconds
# signed: they must come out unsigned all the same.
$PY "$T/shift.py" "$demo" "$T/y2106_snap.pcap" "$t2106" 0 0 200
check y2106_snap "$t2106"
