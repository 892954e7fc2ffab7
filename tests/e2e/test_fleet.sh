#!/usr/bin/env bash
# A fleet that acts as one sensor (issue 18), with a real redis-server:
#  1. Split capture: demo.pcap and resolver_attrib.pcap cut by BPF into a DNS-only part
#     (sensor A) and a flows-only part (sensor B), replayed one after the other against one
#     Redis: the stream holds the alerts of one sensor reading the whole capture (same hosts,
#     rules, names, one raised record each, same evidence kinds), and B's dns_answer records
#     name A and the resolver as where the binding came from.
#  2. Dedup: three sensors replay the same capture at once: one raised record per (host, rule,
#     name) in the stream, every other record of it carries the winner's id, and the counts
#     (each sensor's last) sum to three times one sensor's.
#  3. Degrade: the fleet's Redis is down: the replay alerts as one sensor alone, says
#     local-only once, and the heartbeat shows fleet local-only (ok when it is up).
. "$(dirname "$0")/lib.sh"
redis_start r
SOCK=$T/r.sock
RUL=(-q -R "$TW_SRC/conf/rules")
FLEET=(--redis "unix://$SOCK" --set fleet.enabled=true --set redis.spool.dir= --set redis.heartbeat_s=1)

# alerts of one sensor reading the whole capture (no Redis)
reference() { rm -f "$T/ref.jsonl"; "$TW_BIN" "${RUL[@]}" --redis none --alerts "$T/ref.jsonl" -r "$TW_SRC/pcaps/$1" "${@:2}" ||
              fail "reference run on $1"; }

check_split() { # CAPTURE: the stream against ref.jsonl
    stream_json "$SOCK" >"$T/stream.jsonl"
    $PY - "$T/ref.jsonl" "$T/stream.jsonl" "$1" <<'PYEOF'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
key = lambda r: (r.get("source.ip"), r.get("rule.id"), r.get("tunnelwatch.evidence.name"))
def raised(recs):
    out = {}
    for r in recs:
        if r.get("event.action") == "raised":
            if key(r) in out:
                sys.exit(f"{sys.argv[3]}: two raised records for {key(r)}")
            out[key(r)] = r
    return out
def kinds(recs):
    return {key(r) + (r["tunnelwatch.evidence.kind"],) for r in recs
            if r.get("tunnelwatch.evidence.kind") and r.get("event.action") != "resource_pressure"}
rr, gr = raised(ref), raised(got)
if set(rr) != set(gr):
    sys.exit(f"{sys.argv[3]}: raised {sorted(gr)} != one sensor's {sorted(rr)}")
if kinds(ref) != kinds(got):
    sys.exit(f"{sys.argv[3]}: evidence {sorted(kinds(got))} != one sensor's {sorted(kinds(ref))}")
ids = {r["event.id"] for r in gr.values()}
for r in got:
    inc = r.get("tunnelwatch.incident_id")
    if inc and inc not in ids:
        sys.exit(f"{sys.argv[3]}: {r['event.action']} names incident {inc}, not raised in the stream")
ans = [r for r in got if r.get("tunnelwatch.evidence.kind") == "dns_answer" and r["observer.name"] == "B"
       and r.get("event.action") in ("raised", "update")]
for r in ans:
    if r.get("tunnelwatch.binding.sensor") != "A" or not r.get("tunnelwatch.binding.resolver"):
        sys.exit(f"{sys.argv[3]}: B's dns_answer record without the binding's sensor/resolver: {r}")
print(len(gr), "incidents,", len(kinds(got)), "evidence kinds,", len(ans), "from A's bindings")
PYEOF
}

# --- 1. split capture
for cap in demo.pcap resolver_attrib.pcap; do
    extra=()
    [ "$cap" = resolver_attrib.pcap ] && extra=(--set networks.resolvers=10.1.0.53)
    redis-cli -s "$SOCK" flushall >/dev/null
    rm -f "$T/A.jsonl" "$T/B.jsonl"
    reference "$cap" "${extra[@]}"
    "$TW_BIN" "${RUL[@]}" "${FLEET[@]}" "${extra[@]}" --set sensor.name=A --alerts "$T/A.jsonl" \
        -r "$TW_SRC/pcaps/$cap" 'udp port 53' 2>"$T/eA" || { cat "$T/eA"; fail "1: sensor A on $cap"; }
    "$TW_BIN" "${RUL[@]}" "${FLEET[@]}" "${extra[@]}" --set sensor.name=B --alerts "$T/B.jsonl" \
        -r "$TW_SRC/pcaps/$cap" 'not udp port 53' 2>"$T/eB" || { cat "$T/eB"; fail "1: sensor B on $cap"; }
    grep -q '"tunnelwatch.evidence.kind":"dns_query"' "$T/B.jsonl" && fail "1: B saw DNS"
    res=$(check_split "$cap") || fail "1: $res"
    [ "$(redis-cli -s "$SOCK" hget tunnelwatch:sensor:B fleet)" = ok ] || fail "1: B's heartbeat fleet not ok"
    ok "1. split $cap: $res"
done
# without the fleet, B alone misses the SSH flow the answer named
"$TW_BIN" "${RUL[@]}" --redis none --set networks.resolvers=10.1.0.53 --alerts "$T/alone.jsonl" \
    -r "$TW_SRC/pcaps/resolver_attrib.pcap" 'not udp port 53' || fail "1: B alone"
grep -q '"source.ip":"10.1.0.78"' "$T/alone.jsonl" && fail "1: B alone attributed 10.1.0.78 (the test proves nothing)"
ok "1. B alone misses 10.1.0.78's SSH flow"

# --- 2. dedup: three sensors at once
redis-cli -s "$SOCK" flushall >/dev/null
reference resolver_attrib.pcap --set networks.resolvers=10.1.0.53
pids=()
for n in S1 S2 S3; do
    "$TW_BIN" "${RUL[@]}" "${FLEET[@]}" --set networks.resolvers=10.1.0.53 --set sensor.name=$n \
        --alerts "$T/$n.jsonl" -r "$TW_SRC/pcaps/resolver_attrib.pcap" 2>"$T/e$n" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "2: a sensor failed"; done
stream_json "$SOCK" >"$T/stream.jsonl"
res=$($PY - "$T/ref.jsonl" "$T/stream.jsonl" <<'PYEOF'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
key = lambda r: (r.get("source.ip"), r.get("rule.id"), r.get("tunnelwatch.evidence.name"))
def counts(recs):
    """per incident key: {observer: its last count}, and the raised records"""
    raised = {}
    for r in recs:
        if r.get("event.action") == "raised":
            if key(r) in raised:
                sys.exit(f"two raised records for {key(r)}: {raised[key(r)]['observer.name']}, {r['observer.name']}")
            raised[key(r)] = r
    by_id = {r["event.id"]: k for k, r in raised.items()}
    c = {}
    for r in recs:
        if r.get("event.action") not in ("raised", "update"):
            continue
        k = key(r) if r["event.action"] == "raised" else by_id.get(r.get("tunnelwatch.incident_id"))
        if k is None:
            sys.exit(f"update of an incident not raised in the stream: {r}")
        o = c.setdefault(k, {})
        o[r["observer.name"]] = max(o.get(r["observer.name"], 0), r["event.count"])
    return raised, c
rr, rc = counts(ref)
gr, gc = counts(got)
if set(rr) != set(gr):
    sys.exit(f"raised {sorted(gr)} != one sensor's {sorted(rr)}")
for k in rr:
    one = sum(rc[k].values())
    if sorted(gc[k]) != ["S1", "S2", "S3"] or sum(gc[k].values()) != 3 * one:
        sys.exit(f"{k}: counts {gc[k]}, want 3 x {one}")
for r in got:
    inc = r.get("tunnelwatch.incident_id")
    if inc and inc not in {x["event.id"] for x in gr.values()}:
        sys.exit(f"{r['event.action']} of incident {inc} not raised in the stream")
print(f"{len(gr)} incidents, counts {sorted((k[0], sum(v.values())) for k, v in gc.items())}")
PYEOF
) || fail "2: $res"
ok "2. three sensors, one incident each: $res"

# --- 3. degrade: the fleet's Redis is down, the publisher's is up
redis-cli -s "$SOCK" flushall >/dev/null
reference resolver_attrib.pcap --set networks.resolvers=10.1.0.53
"$TW_BIN" "${RUL[@]}" "${FLEET[@]}" --set fleet.url="unix://$T/down.sock" --set sensor.name=D \
    --set networks.resolvers=10.1.0.53 --alerts "$T/D.jsonl" -r "$TW_SRC/pcaps/resolver_attrib.pcap" \
    2>"$T/eD" || { cat "$T/eD"; fail "3: sensor failed with the fleet down"; }
[ "$(grep -c 'local-only' "$T/eD")" -eq 1 ] || { cat "$T/eD"; fail "3: local-only not said once"; }
[ "$(redis-cli -s "$SOCK" hget tunnelwatch:sensor:D fleet)" = local-only ] || fail "3: heartbeat fleet not local-only"
alerts() { $PY -c 'import json,sys
print(sorted((r["source.ip"], r["tunnelwatch.evidence.kind"]) for r in map(json.loads, open(sys.argv[1])) if r.get("event.action") == "raised"))' "$1"; }
[ "$(alerts "$T/D.jsonl")" = "$(alerts "$T/ref.jsonl")" ] || fail "3: local alerts differ: $(alerts "$T/D.jsonl")"
[ "$(stream_json "$SOCK" | grep -c '"event.action":"raised"')" -eq "$(grep -c '"event.action":"raised"' "$T/ref.jsonl")" ] ||
    fail "3: the stream lacks alerts"
# Redis down altogether: the replay still alerts, without waiting
"$TW_BIN" "${RUL[@]}" --redis "unix://$T/down.sock" --set fleet.enabled=true --set redis.spool.dir= \
    --set redis.stop_flush_ms=0 --set networks.resolvers=10.1.0.53 --alerts "$T/D2.jsonl" \
    -r "$TW_SRC/pcaps/resolver_attrib.pcap" 2>"$T/eD2" || true
[ "$(alerts "$T/D2.jsonl")" = "$(alerts "$T/ref.jsonl")" ] || { cat "$T/eD2"; fail "3: alerts differ with Redis down"; }
grep -q 'local-only' "$T/eD2" || fail "3: local-only not said"
ok "3. fleet Redis down: local alerts, local-only said once and in the heartbeat"
