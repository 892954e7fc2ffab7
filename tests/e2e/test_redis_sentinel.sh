#!/usr/bin/env bash
# Redis Sentinel, with real processes on loopback: a master, a replica and three sentinels
# (redis-server --sentinel). The sensor is given only the sentinels and the master's name,
# with redis.wait_replicas = 1 (a record counts as delivered once WAIT says a replica has it).
# During a paced replay raising 3000 alerts the master is killed with SIGKILL; the sentinels
# promote the replica; the old master is started again and becomes the new master's replica
# (so WAIT 1 can be met again). After the replay every event id of the alerts file must be in
# the new master's stream, and the sensor must have said that the master moved.
# Also: a sentinel list naming nobody who answers gives one clear line and a spool, no crash.
# Takes about 40 s.
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || skip "redis-server not installed"
command -v redis-cli >/dev/null || skip "redis-cli not installed"

server() { # server NAME PORT [args]: a redis-server on 127.0.0.1:PORT; sets SPID
    local name=$1 port=$2; shift 2
    mkdir -p "$T/$name"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$T/$name" \
        --daemonize no "$@" >>"$T/$name.log" 2>&1 &
    SPID=$!
    TW_PIDS+=("$SPID")
    wait_until 20 "redis $name on $port" cli "$port" ping
}

M=$(free_port); R=$(free_port)
server master "$M"; MPID=$SPID
server replica "$R" --replicaof 127.0.0.1 "$M"
SP=()
for i in 1 2 3; do
    p=$(free_port); SP+=("$p")
    cat >"$T/s$i.conf" <<CONF
port $p
bind 127.0.0.1
dir $T
sentinel monitor tw 127.0.0.1 $M 2
sentinel down-after-milliseconds tw 1000
sentinel failover-timeout tw 4000
sentinel parallel-syncs tw 1
CONF
    redis-server "$T/s$i.conf" --sentinel >"$T/s$i.log" 2>&1 &
    TW_PIDS+=($!)
    wait_until 20 "sentinel $i" cli "$p" ping
done
# the sentinels must know the replica and each other before a failover can happen
knows_all() { for p in "${SP[@]}"; do
    [ "$(cli "$p" sentinel replicas tw | grep -c '^ip$')" -ge 1 ] || return 1
    [ "$(cli "$p" sentinel sentinels tw | grep -c '^ip$')" -ge 2 ] || return 1; done; }
wait_until 30 "the sentinels to discover the replica and each other" knows_all
ok "master :$M, replica :$R, sentinels ${SP[*]}"

$PY "$TW_SRC/scripts/gen_pcaps.py" --flows 3000 "$T/flows.pcap" >/dev/null
printf '# id: 7d0c3c1e-5a2f-4c59-9d7e-0e5e1a000001\n# title: Test: every example.net name\n# level: low\nexample.net\n' >"$T/all.txt"
sentinels=$(printf '127.0.0.1:%s,' "${SP[@]}"); sentinels=${sentinels%,}
S=(-R "$T/all.txt" --redis redis://127.0.0.1:1/0 --set redis.sentinels="$sentinels"
   --set redis.master_name=tw --set redis.wait_replicas=1 --set redis.wait_timeout_ms=300
   --set redis.timeout_ms=500 --set redis.heartbeat_s=1 --set redis.stop_flush_ms=40000)

# --- failover during a paced replay (about 12 s)
"$TW_BIN" -q -r "$T/flows.pcap" "${S[@]}" --realtime=0.006 --set redis.spool_dir="$T/spool" \
    --alerts "$T/a.jsonl" 2>"$T/e" &
pid=$!
TW_PIDS+=($pid)
sleep 3
before=$(cli "$M" xlen tunnelwatch:alerts)
[ "$before" -gt 0 ] || { cat "$T/e"; fail "nothing reached the master before the kill"; }
kill -9 "$MPID"
new_master() { cli "${SP[0]}" sentinel get-master-addr-by-name tw | sed -n 2p; }
promoted() { [ "$(new_master)" = "$R" ]; }
wait_until 30 "the sentinels to promote the replica" promoted
ok "master killed after $before stream entries; the sentinels promoted :$R"
# the old master comes back; the sentinels make it the new master's replica
server master "$M"
is_replica() { cli "$M" role | head -1 | grep -qx slave && [ "$(cli "$R" role | sed -n 3p)" != "" ]; }
# (the sentinels convert it after seeing it report itself master for a while, and refresh a
# replica's INFO every 10 s: on a loaded machine, as in the suite's parallel ASan run, that
# once took over 30 s)
wait_until 90 "the old master to rejoin as a replica" is_replica
wait $pid || { cat "$T/e"; fail "sensor exit $?"; }
grep -q "master 'tw' moved from 127.0.0.1:$M to 127.0.0.1:$R" "$T/e" ||
    { cat "$T/e"; fail "the sensor did not say that the master moved"; }
ids_in_file() { $PY -c 'import json,sys; [print(json.loads(l)["event.id"]) for l in open(sys.argv[1])]' "$1" | sort -u; }
ids_in_stream() {
    redis-cli -h 127.0.0.1 -p "$1" --raw XRANGE tunnelwatch:alerts - + | grep '^{' |
        $PY -c 'import json,sys; [print(json.loads(l)["event.id"]) for l in sys.stdin]' | sort -u
}
want=$(ids_in_file "$T/a.jsonl" | wc -l)
got=$(ids_in_stream "$R" | wc -l)
missing=$(comm -23 <(ids_in_file "$T/a.jsonl") <(ids_in_stream "$R") | wc -l)
[ "$want" -ge 3000 ] || fail "only $want records raised"
[ "$missing" -eq 0 ] || { tail -5 "$T/e"; fail "$missing of $want event ids are not in the new master's stream"; }
ok "after the failover all $want records raised are in the new master's stream ($got distinct)"
grep -q "WAIT 1 300" "$T/e" && ok "the sensor said when WAIT found too few replicas (the records went again)"

# --- no sentinel answers: one line per condition, spooled, and a replay that could not
# deliver exits 1 (as with an unreachable server)
rc=0
"$TW_BIN" -q -r "$TW_SRC/pcaps/demo.pcap" -R "$TW_SRC/conf/rules" --redis redis://127.0.0.1:1/0 \
    --set redis.sentinels=127.0.0.1:1,127.0.0.1:2 --set redis.master_name=tw \
    --set redis.stop_flush_ms=500 --set redis.spool_dir="$T/spool2" 2>"$T/e2" || rc=$?
[ "$rc" -eq 1 ] || { cat "$T/e2"; fail "sentinels down: exit $rc, want 1"; }
grep -q "redis master 'tw' (Sentinel) unreachable: 3 of 3 records not delivered" "$T/e2" ||
    { cat "$T/e2"; fail "the undelivered records were not reported"; }
grep -q "no sentinel answered for master 'tw'" "$T/e2" || { cat "$T/e2"; fail "no clear line when no sentinel answers"; }
[ "$(grep -c "no sentinel answered" "$T/e2")" -eq 1 ] || fail "the sentinel error was repeated"
ls "$T/spool2"/* >/dev/null 2>&1 || fail "nothing spooled while no sentinel answered"
ok "no sentinel answering: one clear line, records spooled"
