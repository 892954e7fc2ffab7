#!/usr/bin/env bash
# The Prometheus endpoint (metrics.listen) on a paced replay: scraped with curl and parsed as
# exposition text; counters refresh (every second) and never go back; the families the
# operators graph are there; every numeric field of the Redis heartbeat has its metric; a client
# that connects and sends nothing, or floods headers, does not stall the capture or other
# scrapes; a non-loopback address is refused (exit 2) without metrics.allow_remote; SIGTERM
# closes the endpoint. Every wait is bounded.
. "$(dirname "$0")/lib.sh"
[ -x "$TW_BIN" ] || fail "sensor binary $TW_BIN missing (build it first)"
command -v curl >/dev/null || skip "curl not installed"
DEDUP=$TW_SRC/pcaps/dedup_1000.pcap
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT/metrics

# 1. a non-loopback listen address is a configuration error unless explicitly allowed
rc=0
timeout 20 "$TW_BIN" -r "$TW_SRC/pcaps/demo.pcap" --redis none --set metrics.listen="0.0.0.0:$PORT" \
    >/dev/null 2>"$T/remote.err" || rc=$?
[ "$rc" = 2 ] || fail "metrics.listen=0.0.0.0:$PORT: exit $rc, expected 2 (refused without metrics.allow_remote)"
grep -q "allow_remote" "$T/remote.err" || fail "the refusal does not mention metrics.allow_remote: $(cat "$T/remote.err")"
ok "non-loopback metrics.listen refused (exit 2)"

# 2. a paced replay with the endpoint and a heartbeat every second
redis_start r
"$TW_BIN" -r "$DEDUP" --realtime=40 --redis "unix://$T/r.sock" --set redis.spool_dir="$T/spool" \
    --set redis.heartbeat_s=1 --set sensor.name=e2e-metrics --set metrics.listen="127.0.0.1:$PORT" \
    2>"$T/err" &
S=$!
TW_PIDS+=("$S")
scrape() { curl -sf --max-time 2 "$URL" -o "$1"; }
for i in $(seq 50); do
    scrape "$T/m1.txt" && break
    kill -0 "$S" 2>/dev/null || { tail "$T/err" >&2; fail "sensor exited before serving $URL"; }
    [ "$i" = 50 ] && { tail "$T/err" >&2; fail "no answer from $URL within 10 s"; }
    sleep 0.2
done
ok "endpoint answers on $URL"
sleep 2.5
t0=$(date +%s.%N)
scrape "$T/m2.txt" || fail "second scrape failed"
hdr=$(curl -s --max-time 2 -D - -o /dev/null "$URL")
grep -qi "^content-type: text/plain; version=0.0.4" <<<"$hdr" || fail "content type: $hdr"
curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/nope" | grep -q 404 ||
    fail "unknown path not answered 404"

# 3. hostile clients: one silent, one flooding headers; the capture and other scrapes go on
$PY - "$PORT" <<'PYEOF' &
import socket, sys, time
port = int(sys.argv[1])
silent = socket.create_connection(("127.0.0.1", port))
flood = socket.create_connection(("127.0.0.1", port))
flood.settimeout(2)
try:
    flood.sendall(b"GET /metrics HTTP/1.0\r\n" + b"X-A: " + b"a" * (1 << 20))
except OSError:
    pass
time.sleep(8)
PYEOF
HOSTILE=$!
TW_PIDS+=("$HOSTILE")
sleep 1.5
start=$(date +%s%N)
scrape "$T/m3.txt" || fail "scrape failed while a silent and a flooding client are connected"
ms=$((($(date +%s%N) - start) / 1000000))
[ "$ms" -lt 1500 ] || fail "scrape took $ms ms with hostile clients connected"
ok "hostile clients do not stall scrapes ($ms ms)"

$PY - "$T/m1.txt" "$T/m2.txt" "$T/m3.txt" <<'PYEOF'
import re, sys
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                  r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)\})? (\S+)$')
def parse(path):
    types, samples, helps, order = {}, {}, set(), []
    for n, l in enumerate(open(path), 1):
        l = l.rstrip("\n")
        if l.startswith("# HELP "):
            name = l.split()[2]
            assert name not in helps, f"{path}:{n}: second HELP for {name}"
            helps.add(name)
            continue
        if l.startswith("# TYPE "):
            _, _, name, t = l.split()
            assert t in ("counter", "gauge"), f"{path}:{n}: type {t}"
            assert name not in types, f"{path}:{n}: second TYPE for {name}"
            types[name] = t
            order.append(name)
            continue
        m = LINE.match(l)
        assert m, f"{path}:{n}: not exposition text: {l!r}"
        name = m.group(1)
        assert name.startswith("tunnelwatch_"), f"{path}:{n}: {name}"
        assert name in types and order[-1] == name, f"{path}:{n}: {name} outside its TYPE block"
        if types[name] == "counter":
            assert name.endswith("_total"), f"{path}:{n}: counter {name} without _total"
        samples[name + (m.group(2) or "")] = float(m.group(4))
    return types, samples
t1, s1 = parse(sys.argv[1])
t2, s2 = parse(sys.argv[2])
t3, s3 = parse(sys.argv[3])
need = ["tunnelwatch_packets_total", "tunnelwatch_bytes_total", "tunnelwatch_flows_active",
        "tunnelwatch_flows_evicted_total", 'tunnelwatch_names_total{kind="dns_query"}',
        'tunnelwatch_parse_errors_total{protocol="dns"}', "tunnelwatch_redis_reconnects_total",
        "tunnelwatch_spool_bytes"]
for k in need:
    assert k in s2, f"missing {k}; have {sorted(s2)[:40]}"
assert any(k.startswith("tunnelwatch_alerts_total{") for k in s2), "no tunnelwatch_alerts_total"
assert t2["tunnelwatch_flows_active"] == "gauge"
assert s2["tunnelwatch_packets_total"] > s1["tunnelwatch_packets_total"], \
    "packets_total did not move between scrapes 2.5 s apart (snapshot not refreshed)"
assert s3["tunnelwatch_packets_total"] > s2["tunnelwatch_packets_total"], \
    "packets_total stopped while hostile clients were connected: capture stalled"
assert s2['tunnelwatch_names_total{kind="dns_query"}'] > 0
for k, v in s1.items():
    if t1.get(k.split("{")[0]) == "counter" and k in s2:
        assert s2[k] >= v, f"counter {k} went back: {v} -> {s2[k]}"
print(f"{len(s2)} samples, packets {s1['tunnelwatch_packets_total']:.0f} -> "
      f"{s2['tunnelwatch_packets_total']:.0f} -> {s3['tunnelwatch_packets_total']:.0f}")
PYEOF
ok "exposition text valid, families present, counters refresh and are monotonic"

# 4. the same numbers as the Redis heartbeat: every numeric heartbeat field has its metric
redis-cli -s "$T/r.sock" --raw HGETALL tunnelwatch:sensor:e2e-metrics >"$T/hb.txt"
[ -s "$T/hb.txt" ] || fail "no heartbeat hash tunnelwatch:sensor:e2e-metrics"
$PY - "$T/hb.txt" "$T/m3.txt" <<'PYEOF'
import re, sys
raw = open(sys.argv[1]).read().split("\n")
hb = dict(zip(raw[0::2], raw[1::2]))
names = set()
for l in open(sys.argv[2]):
    if not l.startswith("#"):
        names.add(l.split(" ")[0])
def metric(f):
    special = {"alerts_raised": 'tunnelwatch_alerts_total{outcome="raised"}',
               "alerts_updates": 'tunnelwatch_alerts_total{outcome="update"}',
               "alerts_suppressed": 'tunnelwatch_alerts_total{outcome="suppressed"}',
               "alerts_queued": "tunnelwatch_redis_queue_records",
               "uptime_s": "tunnelwatch_uptime_seconds"}
    if f in special:
        return special[f]
    for o in ("enqueued", "delivered", "spooled", "dropped"):
        if f == "alerts_" + o:
            return f'tunnelwatch_redis_records_total{{outcome="{o}"}}'
    for pre, fam, lab in (("names_", "names", "kind"), ("parse_errors_", "parse_errors", "protocol"),
                          ("decode_", "decode_skipped", "reason"),
                          ("allowlist_", "allowlist_suppressed", "entry")):
        if f.startswith(pre):
            return f'tunnelwatch_{fam}_total{{{lab}="{f[len(pre):]}"}}'
    if re.search(r"(_active|_queued|_connected|_entries|_peak)$", f) or f in ("spool_bytes", "spool_records"):
        return "tunnelwatch_" + f
    return "tunnelwatch_" + f + "_total"
missing = [f"{f} -> {metric(f)}" for f, v in hb.items()
           if re.fullmatch(r"[0-9]+(\.[0-9]+)?", v) and f not in ("heartbeat_unix_s", "version")
           and metric(f) not in names]
if "version" in hb:
    assert any(n.startswith("tunnelwatch_build_info{") for n in names), "version in the heartbeat, no tunnelwatch_build_info"
assert not missing, "heartbeat fields without a metric: " + "; ".join(missing)
print(f"{len(hb)} heartbeat fields, all numeric ones exported")
PYEOF
ok "every heartbeat counter is a metric"

# 5. SIGTERM: exit 0, endpoint closed
kill -TERM "$S"
for i in $(seq 150); do kill -0 "$S" 2>/dev/null || break; sleep 0.1; done
kill -0 "$S" 2>/dev/null && fail "sensor still running 15 s after SIGTERM"
rc=0
wait "$S" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM exit status $rc, expected 0"
curl -s --max-time 2 "$URL" >/dev/null && fail "endpoint still answering after exit"
ok "SIGTERM: exit 0, endpoint closed"
