#!/usr/bin/env bash
# Every record the sensor writes for every capture of ../shared/pcaps and pcaps/ is one valid
# JSON object per line, in both schemas. A test rule flags every observed name (Sigma '*'), so
# the hostile names of the shared captures (control bytes, invalid UTF-8, quotes, escapes)
# all pass through the writer. The sensor must also never crash on any of the captures.
. "$(dirname "$0")/lib.sh"
caps=("$TW_SRC"/pcaps/*.pcap "$TW_SRC"/pcaps/*.pcapng)
[ -d "$TW_SHARED/pcaps" ] && caps+=("$TW_SHARED"/pcaps/*.pcap "$TW_SHARED"/pcaps/*.pcapng)
total=0
for schema in ecs asim; do
    : >"$T/all-$schema.jsonl"
    for c in "${caps[@]}"; do
        set +e
        "$TW_BIN" -q -r "$c" -R "$TW_SRC/tests/e2e/data/every_name.yml" -R "$TW_SRC/conf/rules" --redis none \
            --schema "$schema" --alerts "$T/one.jsonl" 2>"$T/err"
        rc=$?
        set -e
        [ $rc -le 1 ] || { cat "$T/err"; fail "$(basename "$c"): exit $rc"; }
        cat "$T/one.jsonl" >>"$T/all-$schema.jsonl"
        rm -f "$T/one.jsonl"
    done
    n=$(json_lines_valid "$T/all-$schema.jsonl") || fail "$schema: invalid JSON line"
    min=300
    [ -d "$TW_SHARED/pcaps" ] && min=1000
    [ "$n" -gt "$min" ] || fail "$schema: only $n records"
    total=$((total + n))
    echo "$schema: $n records from ${#caps[@]} captures, all valid JSON"
done
ok "$total JSON records valid"
