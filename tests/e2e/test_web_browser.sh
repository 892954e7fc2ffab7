#!/usr/bin/env bash
# tunnelwatch-web in a real browser: Debian's headless chromium, driven over the DevTools
# protocol (--remote-debugging-pipe, no network), opens the page while Redis is still empty;
# the sensor then replays pcaps/demo.pcap and pcaps/resolver_attrib.pcap at --realtime pace into
# a redis-server on a unix socket. Without a reload the page must show the four internal hosts
# with their hit counts and bytes, the sensor's heartbeat row, and a crafted alert whose names
# carry markup rendered as text (no element injected). A screenshot goes to
# $TW_BUILD/web-screenshot.png. Then Redis is stopped: the page must say "Redis unreachable".
# Also checked with curl: the server-rendered record page escapes, basic auth guards the page.
. "$(dirname "$0")/lib.sh"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip "chromium is not installed (apt-get install chromium; scripts/test does)"
web_bin

redis_start r
sock=$T/r.sock

web_start web
ok "tunnelwatch-web serves $WEB_URL"

# The replay, started by the browser script once the page is up (so the page is live before
# any alert exists). The crafted alert follows the replay.
cat >"$T/feed.sh" <<EOF
set -e
"$TW_BIN" -r "$TW_SRC/pcaps/demo.pcap" -r "$TW_SRC/pcaps/resolver_attrib.pcap" \
    -R "$TW_SRC/conf/rules" --realtime --redis "unix://$sock" --set redis.spool_dir="$T/spool" \
    --set sensor.name=e2e-web -q >"$T/sensor.out" 2>"$T/sensor.err"
redis-cli -s "$sock" XADD tunnelwatch:alerts '*' alert '{"@timestamp":"2024-03-01T12:00:03.000000Z","event.kind":"alert","event.action":"raised","event.id":"crafted-1","rule.id":"crafted-rule","rule.name":"Crafted <b>rule</b>","rule.level":"critical","source.ip":"10.66.6.6","destination.domain":"<script>alert(1)</script>.ngrok.io","tunnelwatch.evidence.kind":"tls_sni","tunnelwatch.evidence.name":"<script>alert(1)</script>.ngrok.io","observer.name":"evil<img src=x onerror=window.__xss=1>"}' >/dev/null
EOF
echo "kill $REDIS_PID" >"$T/redis_stop.sh"

SHOT=$TW_BUILD/web-screenshot.png
rm -f "$SHOT" "$TW_BUILD/web-screenshot-redis-down.png"
PYTHONPATH="$TW_SRC/tests/e2e" $PY - "$CHROMIUM" "$WEB_URL" "$T" "$SHOT" <<'PYEOF'
import base64, json, os, subprocess, sys, time
chromium, url, tmp, shot = sys.argv[1:5]

import cdp
b = cdp.Browser(chromium, tmp)
send, js, proc = b.send, b.js, b.proc

def wait_for(expr, what, timeout=40, step=0.25):
    return b.wait_for(expr, what, timeout, step)

try:
    session = b.open_page()
    send("Page.navigate", {"url": url}, session)
    wait_for("document.body && document.body.dataset.loaded === 'yes'", "its first data")
    assert js("document.querySelectorAll('#alerts tr.alert-row').length") == 0, "alerts before the replay"
    js("window.__same_page = 42")  # gone if the page reloads
    print("ok - the page is up, no alert yet")

    feed = subprocess.Popen(["bash", tmp + "/feed.sh"])
    # live: the replay's hosts arrive while it runs, without reload
    wait_for("document.querySelectorAll('#alerts tr.alert-row').length >= 1", "a first live alert")
    print("ok - a live alert arrived while the replay ran")
    if feed.wait(timeout=120) != 0:
        sys.exit("FAIL: the replay failed: " + open(tmp + "/sensor.err").read())
    rows_js = """JSON.stringify(Array.from(document.querySelectorAll('#hosts tr[data-host]')).map(
        r => [r.dataset.host, r.querySelector('.hits').textContent,
              r.querySelector('.bytes').title, r.querySelector('.names').textContent]))"""
    wait_for("document.querySelector('#hosts tr[data-host=\"10.66.6.6\"]') !== null &&"
             "document.querySelectorAll('#hosts tr[data-host]').length === 5", "all five hosts")
    time.sleep(2.5)  # one more poll: update and flow-end records of the last incident
    rows = json.loads(js(rows_js))
    hosts = {h: (int(hits), b.split(" ")[0], names) for h, hits, b, names in rows}
    want = {"10.1.0.23": (3, "214753"), "10.1.0.77": (2, "54243"), "10.1.0.53": (1, "0"),
            "10.1.0.78": (1, "10308"), "10.66.6.6": (1, "0")}
    for h, (hits, sent) in want.items():
        assert h in hosts, f"host {h} missing: {hosts}"
        assert hosts[h][:2] == (hits, sent), f"{h}: hits/bytes {hosts[h][:2]}, expected {(hits, sent)}"
    assert rows[0][0] == "10.1.0.23", f"hosts not ranked by hits: {rows}"
    assert hosts["10.1.0.23"][2] == "tunnel.us.ngrok.com", hosts["10.1.0.23"]
    print("ok - hosts ranked by hits with bytes sent:", ", ".join(f"{h} {v[0]} hits {v[1]} B" for h, v in hosts.items()))
    n_alerts = js("document.querySelectorAll('#alerts tr.alert-row').length")
    assert n_alerts == 5, f"5 alerts expected, the page lists {n_alerts}"
    assert js("window.__same_page") == 42, "the page was reloaded"
    sensor = js("(r => r && [r.cells[0].textContent, r.cells[1].textContent])(document.querySelector('#sensors tr[data-sensor=\"e2e-web\"]'))")
    assert sensor == ["e2e-web", "up"], f"sensor row: {sensor}"
    assert js("document.querySelectorAll('#hosts svg.tl rect.bar').length") >= 5, "timeline bars missing"
    print("ok - 5 live alerts, sensor e2e-web up, timelines drawn")

    # escaping: markup from the wire is text, nothing was injected
    name = js("document.querySelector('#alerts tr[data-id=\"crafted-1\"] .name').textContent")
    assert name == "<script>alert(1)</script>.ngrok.io", name
    html = js("document.querySelector('#alerts tr[data-id=\"crafted-1\"]').innerHTML")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.ngrok.io" in html and "<script" not in html, html
    assert "evil&lt;img src=x" in html and "<img" not in html, html
    assert js("document.querySelectorAll('script').length") == 1, "a script element was injected"
    assert js("document.querySelectorAll('img, b').length") == 0, "markup from an alert became elements"
    assert js("window.__xss === undefined"), "injected handler ran"
    print("ok - the crafted <script> hostname renders as text; no element injected")

    # the full record opens on click, and the URL keeps the view
    js("document.querySelector('#alerts tr[data-id=\"crafted-1\"]').click()")
    wait_for("!document.getElementById('record').hidden && document.getElementById('record-body').rows.length > 5", "the record panel")
    assert "open=crafted-1" in js("location.search"), js("location.search")
    js("document.getElementById('record-close').click()")
    js("(s => { s.value = '10.1.0.77'; s.dispatchEvent(new Event('change')); })(document.getElementById('f-host'))")
    wait_for("document.querySelectorAll('#alerts tr.alert-row').length === 1", "the host filter applied")
    assert js("location.search") == "?host=10.1.0.77", js("location.search")
    js("document.getElementById('f-clear').click()")
    wait_for("document.querySelectorAll('#alerts tr.alert-row').length === 5", "the filter cleared")
    print("ok - record panel, host filter in the URL")

    time.sleep(0.5)
    png = send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
    with open(shot, "wb") as f:
        f.write(base64.b64decode(png["data"]))
    print("ok - screenshot", shot)

    subprocess.run(["bash", tmp + "/redis_stop.sh"], check=True)
    wait_for("(b => !b.hidden && b.textContent.indexOf('Redis unreachable') === 0)(document.getElementById('banner'))",
             "the Redis unreachable banner", timeout=20)
    assert js("document.querySelectorAll('#hosts tr[data-host]').length") == 5, "data vanished with Redis"
    png = send("Page.captureScreenshot", {"format": "png"}, session)
    with open(shot.replace(".png", "-redis-down.png"), "wb") as f:
        f.write(base64.b64decode(png["data"]))
    print("ok - Redis down: the page says 'Redis unreachable' and keeps the last data")
finally:
    b.close()
PYEOF
[ -s "$SHOT" ] || fail "no screenshot"

# Server-rendered record page: escaped too. (Redis is down now; the window is kept.)
curl -sf "${WEB_URL}record?id=crafted-1" >"$T/record.html" || fail "record page"
grep -q '&lt;script&gt;alert(1)&lt;/script&gt;.ngrok.io' "$T/record.html" || fail "record page not escaped"
! grep -q '<script' "$T/record.html" || fail "record page carries a script element"
curl -sf "${WEB_URL}api/status" | grep -q '"redis_ok":false' || fail "status does not report Redis down"
ok "record page escaped; /api/status reports Redis down"

# Basic auth from the configuration.
cat >"$T/auth.conf" <<'EOF'
auth = { user = "analyst"; password = "s3cret"; };
EOF
web_start webauth -c "$T/auth.conf"
code=$(curl -s -o /dev/null -w '%{http_code}' "${WEB_URL}api/status")
[ "$code" = 401 ] || fail "no credentials: HTTP $code, expected 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -u analyst:wrong "${WEB_URL}")
[ "$code" = 401 ] || fail "wrong password: HTTP $code, expected 401"
code=$(curl -s -o /dev/null -w '%{http_code}' -u analyst:s3cret "${WEB_URL}")
[ "$code" = 200 ] || fail "right password: HTTP $code, expected 200"
ok "basic auth: 401 without or with a wrong password, 200 with it"
echo "PASS: tunnelwatch-web in chromium (screenshot $SHOT)"
