#!/usr/bin/env bash
# Per-incident evidence pcaps on the live sensor (root only): a veth pair in a private network
# namespace, tcpreplay --topspeed of demo.pcap and resolver_attrib.pcap into one end, the
# sensor with evidence.dir on the other, with one and with two capture workers. Each
# incident's pcap must hold exactly the packets of its flagged flows and the DNS packets that
# named their servers, the same bytes, caplen and len as the packets tshark selects from the
# original captures (live timestamps differ from the files', so they are not compared).
# --write-evidence in the same runs is the union of that run's incident pcaps (timestamps
# included), and the two workers' file holds the same packets as the one worker's.
. "$(dirname "$0")/lib.sh"
command -v tshark >/dev/null || skip "tshark not installed"
veth_ns twe
caps=("$TW_SRC/pcaps/demo.pcap" "$TW_SRC/pcaps/resolver_attrib.pcap")

# live_run WORKERS [private]: private = --write-evidence alone (its own private directory)
live_run() {
    local w=$1 mode=${2:-} out=$T/live$1 dir=(--set evidence.dir="$T/ev/w$1")
    mkdir -p "$T/ev"
    [ "$mode" = private ] && mkdir -p "$T/wev" && dir=() && out=$T/wev/live$1
    ip netns exec "$ns" "$TW_BIN" -i "$b" --redis none -R "$TW_SRC/conf/rules" --set capture.workers="$w" \
        "${dir[@]}" --write-evidence "$out.pcap" --alerts "$out.jsonl" 2>"$out.err" &
    local pid=$!
    TW_PIDS+=($pid)
    for _ in $(seq 100); do grep -q "capturing on" "$out.err" && break; sleep 0.05; done
    grep -q "capturing on" "$out.err" || { cat "$out.err"; fail "sensor did not start capturing"; }
    sleep 0.2
    for c in "${caps[@]}"; do
        in_ns tcpreplay -q -i "$a" --topspeed "$c" >"$T/replay.out" 2>&1 || { cat "$T/replay.out"; fail "tcpreplay $c"; }
    done
    sleep 1
    kill -TERM $pid
    for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    kill -0 $pid 2>/dev/null && { kill -9 $pid; fail "sensor still running 10 s after SIGTERM"; }
    local rc=0
    wait $pid || rc=$?
    [ $rc -eq 0 ] || { cat "$out.err"; fail "sensor exited $rc after SIGTERM"; }
    line=$(grep "dropped by kernel" "$out.err") || { cat "$out.err"; fail "no capture statistics"; }
    grep -q "tunnelwatch: evidence: .* packets of .* incidents written to $out.pcap" "$out.err" ||
        { cat "$out.err"; fail "workers=$w: no --write-evidence report"; }
    [ "$mode" = private ] && return
    $PY "$TW_SRC/tests/e2e/evidence_check.py" "$out.jsonl" live "${caps[@]}" >"$out.check" ||
        { cat "$out.check"; fail "workers=$w: incident pcaps differ from the captures' packets ($line)"; }
    $PY "$TW_SRC/tests/e2e/evidence_union.py" "$out.pcap" --union "$T/ev/w$w"/*.pcap ||
        fail "workers=$w: --write-evidence is not the union of the incident pcaps"
    n=$(grep -c '^ok' "$out.check")
    [ "$n" -ge 3 ] || { cat "$out.check"; fail "workers=$w: only $n incident pcaps"; }
    ok "live, $w worker(s), tcpreplay --topspeed: $n incident pcaps equal the flagged flows and their DNS packets; $line"
}
live_run 1
live_run 2
live_run 2 private
$PY "$TW_SRC/tests/e2e/evidence_union.py" "$T/live2.pcap" --same "$T/live1.pcap" ||
    fail "--write-evidence with 2 workers differs from 1 worker's"
$PY "$TW_SRC/tests/e2e/evidence_union.py" "$T/wev/live2.pcap" --same "$T/live1.pcap" ||
    fail "--write-evidence alone (private directory) with 2 workers differs from 1 worker's"
[ "$(ls -A "$T/wev")" = "$(printf 'live2.err\nlive2.jsonl\nlive2.pcap')" ] ||
    fail "the private directory stayed: $(ls -A "$T/wev")"
ok "--write-evidence: 2 workers give the same packets as 1, also without evidence.dir"
