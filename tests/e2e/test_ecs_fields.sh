#!/usr/bin/env bash
# Every field of every ECS record the sensor writes for the captures of pcaps/ (alerts,
# updates, flow ends, external events, and, with an allowlist taking every host, suppressed
# records, and a sensor-health record) has the name and JSON type ECS's field reference gives it
# (tests/unit/data/ecs_fields.tsv; tunnelwatch.* custom fields are exempt; the few non-ECS
# names we keep are listed in tests/unit/data/ecs_not_in_ecs.tsv). Each record is
# categorized as Elastic Security reads it: event.category, event.type, ecs.version, and a
# lowercase network.protocol.
. "$(dirname "$0")/lib.sh"
cat >"$T/allow-all.conf" <<'CONF'
allowlist = ( { name = "everyone"; reason = "e2e: suppressed records"; src = [ "0.0.0.0/0", "::/0" ]; } );
CONF
: >"$T/all.jsonl"
for c in "$TW_SRC"/pcaps/*.pcap "$TW_SRC"/pcaps/*.pcapng; do
    for extra in "" "-c $T/allow-all.conf"; do
        set +e
        # shellcheck disable=SC2086
        "$TW_BIN" -q -r "$c" $extra -R "$TW_SRC/tests/e2e/data/every_name.yml" -R "$TW_SRC/conf/rules" --redis none \
            --set alert.log_suppressed=true --alerts "$T/one.jsonl" 2>"$T/err"
        rc=$?
        set -e
        [ $rc -le 1 ] || { cat "$T/err"; fail "$(basename "$c"): exit $rc"; }
        cat "$T/one.jsonl" >>"$T/all.jsonl"
        rm -f "$T/one.jsonl"
    done
done
# a sensor-health record: a dedup table of one incident under every name of the demo
"$TW_BIN" -q -r "$TW_SRC/pcaps/demo.pcap" -R "$TW_SRC/tests/e2e/data/every_name.yml" --redis none \
    --set alert.dedup_max=1 --alerts "$T/one.jsonl" 2>"$T/err" || { cat "$T/err"; fail "health replay"; }
cat "$T/one.jsonl" >>"$T/all.jsonl"
$PY - "$T/all.jsonl" "$TW_SRC/tests/unit/data/ecs_fields.tsv" \
    "$TW_SRC/tests/unit/data/ecs_not_in_ecs.tsv" <<'PYEOF'
import collections, ipaddress, json, re, sys

def table(path):
    rows = {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        f = line.rstrip("\n").split("\t")
        rows[f[0]] = f[1:]
    return rows

ecs, extra = table(sys.argv[2]), table(sys.argv[3])
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

def ok_value(typ, v):
    if typ == "keyword":
        return isinstance(v, str)
    if typ == "long":
        return isinstance(v, int) and not isinstance(v, bool)
    if typ == "date":
        return isinstance(v, str) and DATE.match(v) is not None
    if typ == "ip":
        try:
            ipaddress.ip_address(v)
            return True
        except (TypeError, ValueError):
            return False
    if typ == "boolean":
        return isinstance(v, bool)
    sys.exit(f"ecs_fields.tsv: unknown type {typ}")

JSON_TYPES = {"string": str, "integer": int}
bad, seen, actions = [], collections.Counter(), collections.Counter()
CATS = {"flow_end": (["network"], ["connection", "end"]), "resource_pressure": (["host"], ["info"])}
for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
    d = json.loads(line)
    actions[d["event.action"]] += 1
    for k, v in d.items():
        seen[k] += 1
        if k.startswith("tunnelwatch."):
            continue
        if k in ecs:
            typ, shape = ecs[k]
            vals = v if shape == "array" else [v]
            if shape == "array" and not isinstance(v, list):
                bad.append(f"record {n}: {k} should be an array: {v!r}")
            elif not all(ok_value(typ, x) for x in vals):
                bad.append(f"record {n}: {k} is not an ECS {typ}: {v!r}")
        elif k in extra:
            if not isinstance(v, JSON_TYPES[extra[k][0]]):
                bad.append(f"record {n}: {k} is not a JSON {extra[k][0]}: {v!r}")
        else:
            bad.append(f"record {n}: {k} is not an ECS field (nor listed as a known exception)")
    want = CATS.get(d["event.action"], (["network", "intrusion_detection"], ["info"]))
    if (d.get("event.category"), d.get("event.type")) != want:
        bad.append(f"record {n} ({d['event.action']}): category/type "
                   f"{d.get('event.category')}/{d.get('event.type')}, wanted {want}")
    if d.get("ecs.version") != "8.11.0":
        bad.append(f"record {n}: ecs.version {d.get('ecs.version')!r}")
    p = d.get("network.protocol")
    if p is not None and p != p.lower():
        bad.append(f"record {n}: network.protocol {p!r} is not lowercase")
for msg in bad[:20]:
    print(msg)
if bad:
    sys.exit(f"{len(bad)} problems")
# the check ran over every kind of record, and the table lists nothing we do not emit
for a in ("raised", "update", "flow_end", "suppressed", "external", "resource_pressure"):
    if not actions[a]:
        sys.exit(f"no {a} record: the replay no longer covers it")
unused = [k for k in list(ecs) + list(extra) if not seen[k]]
if unused:
    sys.exit(f"listed but never emitted (stale table?): {unused}")
print(f"{sum(actions.values())} records, {len(seen)} distinct fields: {dict(actions)}")
PYEOF
ok "every emitted ECS field has ECS's name and type"
