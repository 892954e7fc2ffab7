#!/usr/bin/env bash
# tunnelwatch-web's evidence download (issue 19), against a real redis-server on a unix socket:
#   - the sensor's records of pcaps/demo.pcap (raised alert, flow end), given the evidence
#     fields as the sensor writes them (tunnelwatch.evidence.pcap, pcap_bytes, pcap_packets,
#     redis_key), go to the stream; the key tunnelwatch:evidence:<incident id> holds
#     pcaps/demo.pcap (redis-cli -x SET, with a TTL);
#   - headless chromium (DevTools over a pipe, basic auth as an extra header) opens the record
#     panel: it offers "Download packets (pcap)" with the packet count and size; a record with
#     no evidence says "evidence not kept"; one whose pcap stays on the sensor says so, its
#     path (markup in it) rendered as text;
#   - curl with the link from the page's DOM downloads a file cmp-equal to pcaps/demo.pcap,
#     as application/vnd.tcpdump.pcap with Content-Disposition and Content-Length;
#   - 401 without (or with wrong) credentials; 404 for a missing or expired key; 400 for a bad
#     id (../x, %2e%2e, too long, *, upper case, no .pcap); 413 over evidence.max_mib; 502 for
#     a key that holds no pcap or no string; 503 past evidence.max_downloads;
#   - while Redis is paused (CLIENT PAUSE) a download waits but /api/state answers at once;
#   - evidence.dir: DIR/<id>.pcap is served when Redis has no copy, cut to its whole records;
#     a symbolic link or a FIFO there is not followed (404).
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip "curl is not installed"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip "chromium is not installed (apt-get install chromium; scripts/test does)"
web_bin
DEMO=$TW_SRC/pcaps/demo.pcap

redis_start r
sock=$T/r.sock
rcli() { redis-cli -s "$sock" "$@"; }


# The sensor's own records of the demo capture, given the evidence fields of the contract.
"$TW_BIN" -r "$DEMO" -R "$TW_SRC/conf/rules" --alerts - --redis none -q >"$T/records.json" \
    2>"$T/sensor.err" || fail "sensor replay: $(cat "$T/sensor.err")"
$PY - "$T" "$DEMO" <<'PYEOF' || fail "cannot prepare the records"
import json, struct, sys
tmp, demo = sys.argv[1:3]
recs = [json.loads(l) for l in open(tmp + "/records.json")]
raised = next(r for r in recs if r.get("event.action") == "raised")
inc = raised["event.id"]
data = open(demo, "rb").read()
npk, off = 0, 24
while off + 16 <= len(data):
    off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    npk += 1
assert off == len(data), "demo.pcap is not whole"
out = []
for r in recs:
    if r.get("event.action") == "raised" or r.get("tunnelwatch.incident_id") == inc:
        r["tunnelwatch.incident_id"] = inc
        r["tunnelwatch.evidence.pcap"] = "/var/lib/tunnelwatch/evidence/" + inc + ".pcap"
        r["tunnelwatch.evidence.pcap_bytes"] = len(data)
        r["tunnelwatch.evidence.pcap_packets"] = npk
        r["tunnelwatch.evidence.redis_key"] = "tunnelwatch:evidence:" + inc
    out.append(r)
# a raised alert with no evidence, one whose pcap stayed on the sensor (markup in its path)
bare = dict(raised, **{"event.id": "bare-1", "source.ip": "10.66.6.1"})
for k in list(bare):
    if k.startswith("tunnelwatch.evidence.") and k not in ("tunnelwatch.evidence.kind",
                                                            "tunnelwatch.evidence.name"):
        del bare[k]
bare.pop("tunnelwatch.incident_id", None)
local = dict(bare, **{"event.id": "local-1", "source.ip": "10.66.6.2",
                      "tunnelwatch.evidence.pcap": "/srv/<img src=x onerror=window.__xss=1>.pcap",
                      "tunnelwatch.evidence.pcap_bytes": 4242,
                      "tunnelwatch.evidence.pcap_packets": 7})
out += [bare, local]
with open(tmp + "/feed.json", "w") as f:
    for r in out:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
open(tmp + "/incident", "w").write(inc)
open(tmp + "/facts", "w").write(f"{npk} {len(data)}\n")
PYEOF
INC=$(cat "$T/incident")
read -r NPK NBYTES <"$T/facts"
while IFS= read -r line; do
    rcli XADD tunnelwatch:alerts '*' alert "$line" >/dev/null
done <"$T/feed.json"
# (redis-cli -x puts stdin last: the TTL is a second command)
[ "$(rcli -x SET "tunnelwatch:evidence:$INC" <"$DEMO")" = OK ] || fail "SET evidence"
[ "$(rcli EXPIRE "tunnelwatch:evidence:$INC" 3600)" = 1 ] || fail "EXPIRE evidence"
ok "stream has the demo records with evidence of incident $INC ($NPK packets, $NBYTES bytes)"

cat >"$T/auth.conf" <<'EOF'
auth = { user = "analyst"; password = "s3cret"; };
evidence = { max_mib = 1; max_downloads = 2; };
EOF
web_start web -c "$T/auth.conf"
U=$WEB_URL
CRED=(-u analyst:s3cret)
for _ in $(seq 100); do
    curl -sf "${CRED[@]}" "${U}api/record?id=local-1" >/dev/null && break
    sleep 0.1
done
curl -sf "${CRED[@]}" "${U}api/status" | grep -q '"evidence":{"redis_prefix":"tunnelwatch:evidence:","dir":false,"max_mib":1' ||
    fail "status lacks the evidence settings: $(curl -s "${CRED[@]}" "${U}api/status")"

# --- the page: the record panel's link, read from the DOM in chromium ---
PYTHONPATH="$TW_SRC/tests/e2e" $PY - "$CHROMIUM" "$U" "$T" "$INC" "$NPK" <<'PYEOF'
import base64, json, os, subprocess, sys, time
chromium, url, tmp, inc, npk = sys.argv[1:6]
import cdp
b = cdp.Browser(chromium, tmp)
send, js, proc = b.send, b.js, b.proc

def wait_for(expr, what, timeout=30, step=0.2):
    return b.wait_for(expr, what, timeout, step)

def panel(event_id):
    send("Page.navigate", {"url": url + "?open=" + event_id}, session)
    wait_for("document.body && document.body.dataset.loaded === 'yes' && "
             f"document.getElementById('record-title').textContent === 'Record {event_id}' && "
             "!document.getElementById('record').hidden && "
             "document.getElementById('record-body').rows.length > 5", f"the panel of {event_id}")
    return js("document.getElementById('record-evidence').textContent")

try:
    session = b.open_page()
    send("Network.enable", {}, session)
    # basic auth for the page and everything it fetches (credentials in the URL would keep
    # the page's own fetch() calls from working)
    auth = base64.b64encode(b"analyst:s3cret").decode()
    send("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + auth}}, session)

    text = panel(inc)
    link = js("(a => a && [a.href, a.textContent, a.getAttribute('download')])"
              "(document.getElementById('evidence-link'))")
    assert link, f"no download link in the panel of {inc}: {text!r}"
    assert link[1] == "Download packets (pcap)", link
    assert link[0] == url + "api/evidence/" + inc + ".pcap", link
    assert link[2] == inc + ".pcap", link
    assert f"{int(npk):,} packet(s)" in text and "300.8 KiB" in text, text
    open(tmp + "/link", "w").write(link[0])
    print("ok - the record panel offers", link[0], "-", text)

    text = panel("bare-1")
    assert js("document.getElementById('evidence-link')") is None, "a link without evidence"
    assert "evidence not kept" in text, text
    text = panel("local-1")
    assert js("document.getElementById('evidence-link')") is None, "a link with no Redis copy"
    assert "packets kept on the sensor (7 packet(s), 4.1 KiB (4,242 bytes))" in text, text
    assert "/srv/<img src=x onerror=window.__xss=1>.pcap" in text, text
    assert js("document.querySelectorAll('img').length") == 0, "markup from a record became an element"
    assert js("window.__xss === undefined"), "injected handler ran"
    print("ok - no evidence: 'evidence not kept'; pcap on the sensor only: said, as text")
finally:
    b.close()
PYEOF
LINK=$(cat "$T/link")

# --- the download, with the page's link ---
curl -sS "${CRED[@]}" -D "$T/h" -o "$T/got.pcap" "$LINK" || fail "download failed"
cmp "$T/got.pcap" "$DEMO" || fail "the download differs from pcaps/demo.pcap"
tr -d '\r' <"$T/h" >"$T/hdr"
grep -qx 'Content-Type: application/vnd.tcpdump.pcap' "$T/hdr" || fail "content type: $(cat "$T/hdr")"
grep -qx "Content-Disposition: attachment; filename=\"$INC.pcap\"" "$T/hdr" ||
    fail "content disposition: $(cat "$T/hdr")"
grep -qx "Content-Length: $NBYTES" "$T/hdr" || fail "content length: $(cat "$T/hdr")"
code=$(curl -s "${CRED[@]}" -I -o /dev/null -w '%{http_code}' "$LINK")
[ "$code" = 200 ] || fail "HEAD: HTTP $code"
ok "the page's link downloads a file cmp-equal to pcaps/demo.pcap ($NBYTES bytes, pcap type, attachment)"

# code EXPECTED URL [curl args]: the status, and the body kept in $T/body
code() {
    local want=$1 url=$2 got
    shift 2
    got=$(curl -s --path-as-is -o "$T/body" -w '%{http_code}' "$@" "$url")
    [ "$got" = "$want" ] || fail "$url: HTTP $got, expected $want: $(head -c 300 "$T/body")"
}
code 401 "$LINK"
code 401 "$LINK" -u analyst:wrong
code 401 "${U}api/evidence/../x" # refused before the id is even looked at
ok "basic auth guards the download: 401 without or with a wrong password"

E=${U}api/evidence
for bad in '../x' '../x.pcap' '%2e%2e.pcap' '%2e%2e%2fx.pcap' '..%2f..%2fetc%2fpasswd' '*.pcap' \
    'a*.pcap' "$(printf 'a%.0s' $(seq 65)).pcap" "$(echo "$INC" | tr a-f A-F).pcap" "$INC" \
    "$INC.pcapx" '.pcap' "$INC%00.pcap" 'tunnelwatch:alerts.pcap' "%7b$INC%7d.pcap" "-$INC.pcap"; do
    code 400 "$E/$bad" "${CRED[@]}"
    grep -q '^bad incident id' "$T/body" || fail "$bad: $(cat "$T/body")"
done
ok "bad ids: 400 (../x, %2e%2e, too long, *, upper case, no .pcap, NUL, key names, braces)"

missing=0123456789abcdef-0000000000000009
code 404 "$E/$missing.pcap" "${CRED[@]}"
grep -q "^no evidence pcap for incident $missing in Redis" "$T/body" || fail "404 text: $(cat "$T/body")"
rcli -x SET "tunnelwatch:evidence:$missing" <"$DEMO" >/dev/null
rcli PEXPIRE "tunnelwatch:evidence:$missing" 300 >/dev/null
code 200 "$E/$missing.pcap" "${CRED[@]}"
sleep 0.6
code 404 "$E/$missing.pcap" "${CRED[@]}"
ok "missing key: 404 with a clear message; an expired copy too"

# over the cap: a whole pcap of about 1.5 MiB (demo.pcap's packets five times) with max_mib 1
$PY - "$DEMO" "$T/big.pcap" <<'PYEOF'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d + d[24:] * 4)
PYEOF
big=0123456789abcdef-00000000000000b1
rcli -x SET "tunnelwatch:evidence:$big" <"$T/big.pcap" >/dev/null
code 413 "$E/$big.pcap" "${CRED[@]}"
grep -q "^the evidence pcap of incident $big is $(stat -c %s "$T/big.pcap") bytes, over evidence.max_mib (1 MiB)" "$T/body" ||
    fail "413 text: $(cat "$T/body")"
ok "evidence.max_mib: a $(stat -c %s "$T/big.pcap")-byte pcap is refused (413, its size said)"

notpcap=0123456789abcdef-00000000000000c1
rcli SET "tunnelwatch:evidence:$notpcap" "<html>not a capture, but long enough to be one</html>" >/dev/null
code 502 "$E/$notpcap.pcap" "${CRED[@]}"
grep -q "does not hold a pcap file" "$T/body" || fail "502 text: $(cat "$T/body")"
rcli DEL "tunnelwatch:evidence:$notpcap" >/dev/null
rcli RPUSH "tunnelwatch:evidence:$notpcap" x >/dev/null
code 502 "$E/$notpcap.pcap" "${CRED[@]}"
grep -q "WRONGTYPE" "$T/body" || fail "502 text: $(cat "$T/body")"
ok "a key holding no pcap, or no string: 502, never served"

# Redis paused: downloads wait (two of them, evidence.max_downloads), a third is refused at
# once, and the page's poll is answered without waiting.
rcli CLIENT PAUSE 2500 ALL >/dev/null
t0=$(date +%s%N)
curl -s "${CRED[@]}" -o "$T/p1.pcap" -w '%{http_code}' "$LINK" >"$T/p1.code" &
p1=$!
curl -s "${CRED[@]}" -o "$T/p2.pcap" -w '%{http_code}' "$LINK" >"$T/p2.code" &
p2=$!
sleep 0.4
code 503 "$LINK" "${CRED[@]}"
grep -q "too many evidence downloads" "$T/body" || fail "503 text: $(cat "$T/body")"
st=$(curl -s "${CRED[@]}" -o /dev/null -w '%{http_code} %{time_total}' "${U}api/state")
wait "$p1" "$p2"
t1=$(date +%s%N)
[ "${st% *}" = 200 ] || fail "/api/state during the pause: $st"
$PY -c "import sys; sys.exit(0 if float('${st#* }') < 0.5 else 1)" ||
    fail "/api/state waited ${st#* } s for a download"
[ "$(cat "$T/p1.code") $(cat "$T/p2.code")" = "200 200" ] || fail "paused downloads: $(cat "$T/p1.code" "$T/p2.code")"
cmp "$T/p1.pcap" "$DEMO" && cmp "$T/p2.pcap" "$DEMO" || fail "paused downloads differ"
[ $(((t1 - t0) / 1000000)) -ge 1500 ] || fail "Redis was not paused: $(((t1 - t0) / 1000000)) ms"
ok "Redis paused: /api/state answered in ${st#* } s; 2 downloads waited and completed; a 3rd got 503"
curl -sf "${CRED[@]}" "${U}api/status" | grep -q '"served":[1-9][0-9]*,"missing":2,"too_large":1,"failed":2,"busy":1,"active":0' ||
    fail "evidence counters: $(curl -s "${CRED[@]}" "${U}api/status")"
ok "status counts served, missing, too large, failed and refused downloads"

# --- evidence.dir: the sensor's directory, read when Redis has no copy ---
mkdir -p "$T/evdir"
ondisk=0123456789abcdef-00000000000000d1
$PY - "$DEMO" "$T/evdir/$ondisk.pcap" <<'PYEOF'
import sys
d = open(sys.argv[1], "rb").read()
# a record the sensor is still writing: its header and half its bytes
open(sys.argv[2], "wb").write(d + d[24:24 + 16] + b"\0" * 10)
PYEOF
ln -s "$DEMO" "$T/evdir/0123456789abcdef-00000000000000d2.pcap"
mkfifo "$T/evdir/0123456789abcdef-00000000000000d3.pcap"
cat >"$T/dir.conf" <<EOF
evidence = { dir = "$T/evdir"; };
EOF
web_start webdir -c "$T/dir.conf"
code 200 "${WEB_URL}api/evidence/$ondisk.pcap"
cmp "$T/body" "$DEMO" || fail "evidence.dir: not the whole records of the file"
code 200 "${WEB_URL}api/evidence/$INC.pcap"
cmp "$T/body" "$DEMO" || fail "Redis copy with evidence.dir set"
code 404 "${WEB_URL}api/evidence/0123456789abcdef-00000000000000d2.pcap"
code 404 "${WEB_URL}api/evidence/0123456789abcdef-00000000000000d3.pcap"
grep -q "nor in evidence.dir" "$T/body" || fail "404 text: $(cat "$T/body")"
curl -sf "${WEB_URL}api/status" | grep -q '"dir":true' || fail "status does not say evidence.dir"
ok "evidence.dir: served when Redis has none, cut to whole records; a symlink and a FIFO: 404"

# --- Redis Cluster: the key is read on the master of its slot; ASK while the slot moves ---
redis_cluster_start
ckey=tunnelwatch:evidence:$INC
slot=$(cli "${P[0]}" cluster keyslot "$ckey")
owner_of() { # the port of the master serving slot $1, from CLUSTER SHARDS-free CLUSTER NODES
    cli "${P[0]}" cluster nodes | $PY -c '
import sys
slot = int(sys.argv[1])
for line in sys.stdin:
    f = line.split()
    for r in f[8:]:
        lo, _, hi = r.partition("-")
        if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
            print(f[1].split(":")[1].split("@")[0])' "$1"; }
src=$(owner_of "$slot")
[ "$(redis-cli -c -h 127.0.0.1 -p "$src" -x SET "$ckey" <"$DEMO")" = OK ] || fail "cluster SET"
other=()
for p in "${P[@]}"; do [ "$p" != "$src" ] && other+=("$p"); done
# the web asks a node that does not hold the key
"$WEB" -l 127.0.0.1:0 --redis "redis://127.0.0.1:${other[0]}/0" >"$T/webc.log" 2>&1 &
TW_PIDS+=("$!")
CU=
for _ in $(seq 200); do
    CU=$(grep -so 'http://127\.0\.0\.1:[0-9]*/' "$T/webc.log" || true)
    [ -n "$CU" ] && break
    sleep 0.05
done
[ -n "$CU" ] || fail "tunnelwatch-web (cluster) did not start: $(cat "$T/webc.log")"
code 200 "${CU}api/evidence/$INC.pcap"
cmp "$T/body" "$DEMO" || fail "cluster: the download differs"
# half-moved slot: CLUSTER SLOTS still names the source, the key is on the target already
dst=${other[1]}
sid=$(cli "$src" cluster myid)
did=$(cli "$dst" cluster myid)
cli "$dst" cluster setslot "$slot" importing "$sid" >/dev/null
cli "$src" cluster setslot "$slot" migrating "$did" >/dev/null
m=$(cli "$src" migrate 127.0.0.1 "$dst" "$ckey" 0 5000)
[ "$m" = OK ] || fail "MIGRATE: $m"
ask=$(cli "$src" exists "$ckey" 2>&1)
[[ "$ask" == *"ASK $slot 127.0.0.1:$dst"* ]] || fail "the source does not redirect with ASK: $ask"
code 200 "${CU}api/evidence/$INC.pcap"
cmp "$T/body" "$DEMO" || fail "cluster (ASK): the download differs"
for p in "${P[@]}"; do cli "$p" cluster setslot "$slot" node "$did" >/dev/null; done
code 200 "${CU}api/evidence/$INC.pcap"
cmp "$T/body" "$DEMO" || fail "cluster (moved): the download differs"
code 404 "${CU}api/evidence/$missing.pcap"
ok "Redis Cluster: the key read on its slot's master (:$src) via :${other[0]}, through an ASK while the slot moved, and on :$dst after"
echo "PASS: evidence downloads from tunnelwatch-web"
