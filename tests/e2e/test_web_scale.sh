#!/usr/bin/env bash
# tunnelwatch-web under a storm: a stream seeded with 100,000 alerts over 50,000 hosts (a RESP
# file through redis-cli --pipe, a few seconds), read into a window of 120,000 entries. In
# headless chromium, over the DevTools protocol (--remote-debugging-pipe):
#   - first render, from Page.navigate to the hosts and alerts tables holding rows, under 2 s;
#   - a poll with nothing new (the page's own, measured by the Resource Timing API, headers
#     included) under 2 KB; the same poll again with curl, headers counted;
#   - the DOM (document.documentElement.outerHTML) under 1 MB;
#   - a random host found by the host filter and another by the search box, both answered by
#     the server over all 50,000 hosts;
#   - a record dated 2099 is shown as clock skew, and a live alert written after it still comes
#     first, with nothing evicted.
# Figures are printed as "measure NAME VALUE" lines.
. "$(dirname "$0")/lib.sh"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip "chromium is not installed (apt-get install chromium; scripts/test does)"
command -v redis-server >/dev/null || skip "redis-server not installed"
web_bin

redis_start r
sock=$T/r.sock
ALERTS=100000
HOSTS=50000

# The seed: XADD commands in RESP, live timestamps over the last 50 minutes.
t0=$(date +%s.%N)
$PY - "$T/seed.resp" "$ALERTS" "$HOSTS" <<'PYEOF'
import sys, time, json
out, n, hosts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
now = time.time()
def resp(*args):
    b = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        b.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(b)
with open(out, "wb") as f:
    for j in range(n):
        h = j % hosts
        host = "10.%d.%d.%d" % (h >> 16, (h >> 8) & 255, h & 255)
        ts = now - 3000 + 3000.0 * j / n
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%06dZ" % int((ts % 1) * 1e6)
        rule = j % 23
        rec = {"@timestamp": t, "event.kind": "alert", "event.action": "raised",
               "event.id": "storm-%d" % j, "event.count": 1, "rule.id": "rule-%d" % rule,
               "rule.name": "Storm rule %d" % rule, "rule.level": "high", "source.ip": host,
               "destination.ip": "203.0.113.%d" % (j % 250), "destination.port": 443,
               "destination.domain": "t%d.ngrok.io" % j, "network.protocol": "TLS",
               "observer.name": "storm-sensor", "tunnelwatch.evidence.kind": "tls_sni",
               "tunnelwatch.evidence.name": "t%d.ngrok.io" % j}
        f.write(resp("XADD", "tunnelwatch:alerts", "*", "alert", json.dumps(rec)))
PYEOF
redis-cli -s "$sock" --pipe <"$T/seed.resp" >"$T/pipe.out" 2>&1 || { cat "$T/pipe.out"; fail "redis-cli --pipe"; }
len=$(redis-cli -s "$sock" XLEN tunnelwatch:alerts)
[ "$len" = "$ALERTS" ] || fail "the stream holds $len entries, expected $ALERTS"
ok "seeded $ALERTS alerts over $HOSTS hosts in $($PY -c "import time;print(round(time.time()-$t0,1))") s"

cat >"$T/web.conf" <<'EOF'
window = { entries = 120000; };
EOF
"$WEB" -c "$T/web.conf" -l 127.0.0.1:0 --redis "unix://$sock" >"$T/web.log" 2>&1 &
TW_PIDS+=("$!")
WEB_URL=
for _ in $(seq 200); do
    WEB_URL=$(grep -so 'http://127\.0\.0\.1:[0-9]*/' "$T/web.log" || true)
    [ -n "$WEB_URL" ] && break
    sleep 0.05
done
[ -n "$WEB_URL" ] || { cat "$T/web.log" >&2; fail "tunnelwatch-web did not start"; }
t0=$(date +%s.%N)
for _ in $(seq 600); do
    curl -sf "${WEB_URL}api/status" | grep -q "\"records\":$ALERTS," && break
    sleep 0.1
done
curl -sf "${WEB_URL}api/status" | grep -q "\"records\":$ALERTS,\"max_entries\":120000,\"hours\":24,\"hosts\":$HOSTS,\"alerts\":$ALERTS," ||
    fail "the window did not fill: $(curl -sf "${WEB_URL}api/status")"
ok "the window holds $ALERTS alerts over $HOSTS hosts, loaded in $($PY -c "import time;print(round(time.time()-$t0,1))") s"
for q in "" "q=10.0.1" "rule=rule-3" "sort=hits&hsort=last"; do
    echo "measure state_ms[$q] $(curl -s -o /dev/null -w '%{time_total}' "${WEB_URL}api/state?$q" | $PY -c 'import sys; print(round(float(sys.stdin.read()) * 1000))')"
done
echo "measure rss_kib $(awk '/VmRSS/ {print $2}' /proc/$(jobs -p | tail -1)/status 2>/dev/null || echo '?')"

PYTHONPATH="$TW_SRC/tests/e2e" $PY - "$CHROMIUM" "$WEB_URL" "$T" "$HOSTS" "$sock" <<'PYEOF'
import json, os, random, subprocess, sys, time, urllib.request
chromium, url, tmp, nhosts, sock = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]

import cdp
b = cdp.Browser(chromium, tmp)
send, js, proc = b.send, b.js, b.proc

def wait_for(expr, what, timeout=30, step=0.02):
    return b.wait_for(expr, what, timeout, step)

def host(i):
    return "10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255)

def set_input(id_, value):
    js("(e => { e.value = %s; e.dispatchEvent(new Event('change')); })(document.getElementById(%s))"
       % (json.dumps(value), json.dumps(id_)))

POPULATED = ("document.querySelectorAll('#hosts tr[data-host]').length > 0 && "
             "document.querySelectorAll('#alerts tr.alert-row').length > 0")
try:
    session = b.open_page()
    # a first visit warms chromium up (its own start-up is not the page's render)
    send("Page.navigate", {"url": url + "healthz"}, session)
    time.sleep(0.5)
    t0 = time.time()
    send("Page.navigate", {"url": url}, session)
    wait_for(POPULATED, "the hosts and alerts tables populated")
    first_ms = (time.time() - t0) * 1000
    print(f"measure first_render_ms {first_ms:.0f}")
    parts = js("(n => (s => [Math.round(n.responseEnd), Math.round(n.domContentLoadedEventEnd), Math.round(s.startTime), Math.round(s.responseEnd)])"
               "(performance.getEntriesByType('resource').filter(e => e.name.indexOf('/api/state') >= 0)[0]))"
               "(performance.getEntriesByType('navigation')[0])")
    print(f"measure first_render_parts_ms page {parts[0]} domready {parts[1]} state_fetch {parts[2]}..{parts[3]}")
    rows = js("[document.querySelectorAll('#hosts tr[data-host]').length, document.querySelectorAll('#alerts tr.alert-row').length]")
    summary = js("document.getElementById('summary').textContent")
    assert "100,000 alert(s), 50,000 host(s)" in summary, summary
    assert first_ms < 2000, f"first render took {first_ms:.0f} ms"
    print(f"ok - first render in {first_ms:.0f} ms: {rows[0]} host rows and {rows[1]} alert rows of {summary!r}")

    # idle: wait for two polls after the first, then read the last poll's size
    js("performance.setResourceTimingBufferSize(10000)")
    n0 = js("performance.getEntriesByType('resource').filter(e => e.name.indexOf('/api/state') >= 0).length")
    wait_for(f"performance.getEntriesByType('resource').filter(e => e.name.indexOf('/api/state') >= 0).length >= {n0 + 2}",
             "two more polls", timeout=10, step=0.2)
    last = js("(l => ({name: l.name, transfer: l.transferSize, body: l.encodedBodySize}))("
              "performance.getEntriesByType('resource').filter(e => e.name.indexOf('/api/state') >= 0).pop())")
    print(f"measure idle_poll_bytes {last['transfer']} (body {last['body']})")
    assert 0 < last["transfer"] < 2048, f"an idle poll transferred {last}"
    print(f"ok - an idle poll transfers {last['transfer']} bytes, headers included (body {last['body']})")
    # the same poll from outside: status line and headers counted
    path = last["name"][last["name"].index("/api/"):]
    with urllib.request.urlopen(url.rstrip("/") + path) as r:
        body = r.read()
        head = sum(len(k) + len(v) + 4 for k, v in r.getheaders()) + len("HTTP/1.1 200 OK\r\n\r\n")
    assert b'"items"' not in body and head + len(body) < 2048, (head, body)
    print(f"measure idle_poll_curl_bytes {head + len(body)}")

    dom = js("document.documentElement.outerHTML.length")
    print(f"measure dom_bytes {dom}")
    assert dom < 1 << 20, f"the DOM is {dom} bytes"
    print(f"ok - the DOM is {dom} bytes")

    rnd = random.Random(os.getpid())
    h1 = host(rnd.randrange(nhosts))
    t0 = time.time()
    set_input("f-host", h1)
    wait_for(f"(r => r.length === 1 && r[0].dataset.host === {json.dumps(h1)})(document.querySelectorAll('#hosts tr[data-host]')) && "
             f"(a => a.length === 2 && Array.from(a).every(x => x.querySelector('.host').textContent === {json.dumps(h1)}))"
             f"(document.querySelectorAll('#alerts tr.alert-row'))", f"host {h1} by the host filter")
    print(f"ok - the host filter finds {h1} and its 2 alerts in {(time.time() - t0) * 1000:.0f} ms")
    set_input("f-host", "")
    wait_for("document.querySelectorAll('#hosts tr[data-host]').length > 1", "all hosts again")
    # the search box: a host whose last octet has three digits is a unique substring
    while True:
        i = rnd.randrange(nhosts)
        if i & 255 >= 100:
            break
    h2 = host(i)
    t0 = time.time()
    set_input("f-q", h2)
    wait_for(f"(r => r.length === 1 && r[0].dataset.host === {json.dumps(h2)})(document.querySelectorAll('#hosts tr[data-host]')) && "
             f"document.querySelectorAll('#alerts tr.alert-row').length === 2", f"host {h2} by the search box")
    assert "q=" + h2 in js("location.search"), js("location.search")
    print(f"ok - the search box finds {h2} in {(time.time() - t0) * 1000:.0f} ms")

    # a record from a bad clock (2099), then a live one: the page goes on showing live alerts
    def xadd(rec):
        subprocess.run(["redis-cli", "-s", sock, "XADD", "tunnelwatch:alerts", "*", "alert",
                        json.dumps(rec)], check=True, stdout=subprocess.DEVNULL)
    def rec(i, host, t):
        return {"@timestamp": t, "event.kind": "alert", "event.action": "raised", "event.id": i,
                "rule.id": "rule-late", "rule.name": "Late rule", "rule.level": "critical",
                "source.ip": host, "observer.name": "storm-sensor",
                "tunnelwatch.evidence.kind": "tls_sni", "tunnelwatch.evidence.name": i + ".ngrok.io"}
    js("document.getElementById('f-clear').click()")
    wait_for("document.querySelectorAll('#hosts tr[data-host]').length > 1", "all hosts again")
    xadd(rec("future-1", "10.250.0.1", "2099-01-01T00:00:00.000000Z"))
    wait_for("(e => !e.hidden && e.textContent.indexOf('1 record(s) dated more than 300 s ahead') === 0)(document.getElementById('skew'))",
             "the clock skew count")
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    xadd(rec("live-after-future", "10.250.0.2", now))
    wait_for("(r => r !== null && r.rowIndex === 1)(document.querySelector('#alerts tr[data-id=\"live-after-future\"]'))",
             "the live alert written after the 2099 one, first in the list")
    assert js("document.querySelector('#alerts tr[data-id=\"future-1\"] td.skew') !== null"), "the 2099 row is not marked"
    assert "100,002 alert(s)" in js("document.getElementById('summary').textContent"), js("document.getElementById('summary').textContent")
    print("ok - after a 2099 record (counted as clock skew) a new live alert is shown first; nothing evicted")
finally:
    b.close()
PYEOF
echo "PASS: tunnelwatch-web with $ALERTS alerts over $HOSTS hosts"
