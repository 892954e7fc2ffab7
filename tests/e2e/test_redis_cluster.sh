#!/usr/bin/env bash
# Redis Cluster, with real processes on loopback: three masters joined by
# `redis-cli --cluster create`. Three sensors, each given a different node as redis.url, replay
# paced captures at once; during the replay the slot of the alerts stream is moved to another
# master by hand (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), so the
# publishers meet ASK and MOVED replies. Afterwards every event id of the three alerts files is
# in the stream on its new master, each sensor's heartbeat hash is on the master of its own
# slot, the sensors said which redirections they followed, and tunnelwatch-web (pointed at
# the third node) shows the three sensors and holds every record. Takes about 30 s.
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || skip "redis-server not installed"
command -v redis-cli >/dev/null || skip "redis-cli not installed"
command -v curl >/dev/null || skip "curl not installed"

redis_cluster_start
ok "cluster of three masters: ${P[*]}"

KEY=tunnelwatch:alerts
slot=$(cli "${P[0]}" cluster keyslot "$KEY")
owner_port() { cli "${P[0]}" cluster slots | $PY -c '
import sys
lines = [l.strip() for l in sys.stdin]
slot = int(sys.argv[1])
i = 0
# redis-cli prints the nested reply flat: lo, hi, host, port, id[, replicas...]
while i + 4 < len(lines):
    if lines[i].isdigit() and lines[i + 1].isdigit() and int(lines[i]) <= slot <= int(lines[i + 1]):
        print(lines[i + 3]); break
    i += 1' "$1"; }
src=$(owner_port "$slot")
for p in "${P[@]}"; do [ "$p" != "$src" ] && { dst=$p; break; }; done
node_id() { cli "$1" cluster myid; }
ok "stream slot $slot lives on :$src; it will move to :$dst"

# the SOC page, pointed at the node that never holds the stream
web_bin
printf 'sensors = { poll_ms = 300; };\n' >"$T/web.conf"
for p in "${P[@]}"; do [ "$p" != "$src" ] && [ "$p" != "$dst" ] && third=$p; done
"$WEB" -c "$T/web.conf" -l 127.0.0.1:0 --redis "redis://127.0.0.1:$third/0" >"$T/web.log" 2>&1 &
TW_PIDS+=($!)
URL=
for _ in $(seq 200); do
    URL=$(grep -so 'http://127\.0\.0\.1:[0-9]*/' "$T/web.log" || true)
    [ -n "$URL" ] && break
    sleep 0.05
done
[ -n "$URL" ] || { cat "$T/web.log" >&2; fail "tunnelwatch-web did not start"; }
api() { curl -sf "${URL}$1"; }

$PY "$TW_SRC/scripts/gen_pcaps.py" --flows 2000 "$T/flows.pcap" >/dev/null
printf '# id: 7d0c3c1e-5a2f-4c59-9d7e-0e5e1a000001\n# title: Test: every example.net name\n# level: low\nexample.net\n' >"$T/all.txt"
pids=()
for i in 1 2 3; do
    "$TW_BIN" -q -r "$T/flows.pcap" -R "$T/all.txt" --realtime=0.008 \
        --redis "redis://127.0.0.1:${P[$((i - 1))]}/0" --set sensor.name="cluster-s$i" \
        --set redis.timeout_ms=500 --set redis.heartbeat_s=1 --set redis.stop_flush_ms=30000 \
        --set redis.spool_dir="$T/spool$i" --alerts "$T/a$i.jsonl" 2>"$T/e$i" &
    pids+=($!); TW_PIDS+=($!)
done
sleep 3
# while they run: every heartbeat hash is on the master of its slot (readable there, not a
# MOVED); the hashes expire 3 s after a sensor stops
for i in 1 2 3; do
    hb=tunnelwatch:sensor:cluster-s$i
    hs=$(cli "${P[0]}" cluster keyslot "$hb")
    hp=$(owner_port "$hs")
    [ "$(cli "$hp" hget "$hb" heartbeat_unix_s)" -gt 0 ] 2>/dev/null ||
        fail "heartbeat $hb (slot $hs) not on :$hp: $(cli "$hp" hget "$hb" heartbeat_unix_s)"
done
ok "each sensor's heartbeat is on the master of its own slot"
three_sensors() { api api/sensors | $PY -c 'import json,sys; n=sorted(s["name"] for s in json.load(sys.stdin)); sys.exit(0 if n == ["cluster-s1","cluster-s2","cluster-s3"] else 1)'; }
wait_until 10 "the SOC page to show the three sensors" three_sensors
ok "the SOC page shows the three sensors (heartbeats scanned on every master)"
# move the slot by hand, as redis-cli --cluster reshard does
sid=$(node_id "$src"); did=$(node_id "$dst")
cli "$dst" cluster setslot "$slot" importing "$sid" >/dev/null
cli "$src" cluster setslot "$slot" migrating "$did" >/dev/null
sleep 1 # a moment with the slot half-moved: new writes to a migrated key get ASK
for k in $(cli "$src" cluster getkeysinslot "$slot" 100); do
    cli "$src" migrate 127.0.0.1 "$dst" "$k" 0 5000 >/dev/null
done
sleep 0.5
for p in "${P[@]}"; do cli "$p" cluster setslot "$slot" node "$did" >/dev/null; done
ok "slot $slot moved from :$src to :$dst during the replay"
for i in 1 2 3; do
    wait "${pids[$((i - 1))]}" || { cat "$T/e$i"; fail "sensor $i exit $?"; }
done
[ "$(owner_port "$slot")" = "$dst" ] || fail "the slot did not end on :$dst"
ids_in_file() { $PY -c 'import json,sys; [print(json.loads(l)["event.id"]) for a in sys.argv[1:] for l in open(a)]' "$@" | sort -u; }
ids_in_stream() { cli "$dst" --raw XRANGE "$KEY" - + | grep '^{' |
    $PY -c 'import json,sys; [print(json.loads(l)["event.id"]) for l in sys.stdin]' | sort -u; }
want=$(ids_in_file "$T"/a[123].jsonl | wc -l)
got=$(ids_in_stream | wc -l)
missing=$(comm -23 <(ids_in_file "$T"/a[123].jsonl) <(ids_in_stream) | wc -l)
[ "$want" -ge 6000 ] || fail "only $want records raised by the three sensors"
[ "$missing" -eq 0 ] || { tail -3 "$T"/e[123]; fail "$missing of $want event ids are not in the stream on :$dst"; }
ok "all $want records of the three sensors are in the stream on its new master ($got distinct)"
# grep reads the files itself: with pipefail, cat | grep -q fails when grep stops at its first
# match before cat has written everything (SIGPIPE), although the line is there
grep -q "slot $slot moved to 127.0.0.1:$dst\|slot $slot is moving to 127.0.0.1:$dst" "$T"/e[123] ||
    { cat "$T"/e[123]; fail "no sensor said that it followed the slot"; }
ok "the sensors followed the redirections: $(cat "$T"/e[123] | grep -c "slot $slot") said"
# the SOC page followed the stream to its new master and holds every record once
web_all() { api api/status | $PY -c "import json,sys; w=json.load(sys.stdin)['window']; sys.exit(0 if w['added'] == $got else 1)"; }
wait_until 30 "the SOC page to hold the $got records" web_all
ok "the SOC page holds all $got records of the three sensors"

# evidence pcaps (evidence.redis_max_kib): each incident's copy lands on the master of its own
# key's slot, whichever node the sensor was pointed at, and equals the pcap on disk
"$TW_BIN" -q -r "$TW_SRC/pcaps/resolver_attrib.pcap" -R "$TW_SRC/conf/rules" \
    --redis "redis://127.0.0.1:${P[2]}/0" --set sensor.name=cluster-ev --set redis.timeout_ms=500 \
    --set redis.spool_dir="$T/spool-ev" --set evidence.dir="$T/ev" \
    --set evidence.redis_max_kib=4096 --alerts /dev/null 2>"$T/e-ev" || fail "evidence replay"
n=0
for f in "$T"/ev/*.pcap; do
    key=tunnelwatch:evidence:$(basename "$f" .pcap)
    kp=$(owner_port "$(cli "${P[0]}" cluster keyslot "$key")")
    wait_until 10 "$key on :$kp" sh -c "[ \"\$(redis-cli -h 127.0.0.1 -p $kp exists $key)\" = 1 ]"
    cli "$kp" --raw GET "$key" | head -c -1 >"$T/key.bin"
    cmp -s "$T/key.bin" "$f" || fail "$key on :$kp differs from $f"
    n=$((n + 1))
done
[ "$n" -ge 2 ] || fail "only $n evidence pcaps"
ok "$n evidence copies on their slots' masters, equal to the pcaps on disk"
