#!/usr/bin/env bash
# 2 million distinct flows (SYN, ClientHello, FIN each) through the default flow cap: peak
# RSS stays within the configured bound (the flow table's bound plus a fixed allowance for
# the rest of the sensor) and the ngrok flow at the very end is still seen and alerted.
# Skipped in sanitizer builds, where RSS and time say nothing about the real sensor.
. "$(dirname "$0")/lib.sh"
if [ -n "${TW_BUILD:-}" ] && grep -q '^TW_SANITIZE:STRING=.\+' "$TW_BUILD/CMakeCache.txt" 2>/dev/null; then
    skip "sanitizer build: peak RSS is not meaningful under ASan"
fi
[ -x /usr/bin/time ] || skip "/usr/bin/time not installed"
$PY "$TW_SRC/scripts/gen_pcaps.py" --flows 2000000 "$T/flows.pcap"
/usr/bin/time -v "$TW_BIN" -v -r "$T/flows.pcap" -R "$TW_SRC/conf/rules" --redis none \
    --alerts "$T/alerts.jsonl" 2>"$T/err" >/dev/null || { tail "$T/err"; fail "sensor failed"; }
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$T/err")
bound=$(awk '$1 == "flow_table_bound_bytes" {print $2}' "$T/err")
evicted=$(awk '$1 == "flows_evicted" {print $2}' "$T/err")
[ -n "$bound" ] || { tail -40 "$T/err"; fail "no flow_table_bound_bytes in the statistics"; }
# fixed allowance: rules, nDPI, reassembly budget in use, libraries (measured ~25 MiB)
allow_kb=$((bound / 1024 + 64 * 1024))
echo "peak RSS ${rss_kb} KiB, flow table bound $((bound / 1024)) KiB, allowed ${allow_kb} KiB, ${evicted} flows evicted"
[ "$rss_kb" -le "$allow_kb" ] || fail "peak RSS ${rss_kb} KiB over the bound ${allow_kb} KiB"
[ "$rss_kb" -le $((256 * 1024)) ] || fail "peak RSS ${rss_kb} KiB over 256 MiB with the default flow cap"
[ "${evicted:-0}" -gt 1000000 ] || fail "the cap was not exercised (evicted ${evicted})"
grep -q '"event.kind":"alert".*"tunnelwatch.evidence.name":"tunnel.us.ngrok.com"' "$T/alerts.jsonl" ||
    fail "the ngrok flow at the end of the capture was not alerted"
ok "2M flows: peak RSS ${rss_kb} KiB within the bound, ngrok flow at the end alerted"
