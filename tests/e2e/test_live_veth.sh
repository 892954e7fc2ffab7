#!/usr/bin/env bash
# Live capture (root only): a veth pair inside a private network namespace; tcpreplay sends
# project captures into one end at a modest rate, tunnelwatch captures on the other end and
# must report the same names as the offline replay of the same files, with zero kernel drops.
# Both ends live in the namespace: the replayed frames never reach any other network.
. "$(dirname "$0")/lib.sh"
veth_ns tw
caps=("$TW_SRC/pcaps/seed_names.pcap" "$TW_SRC/pcaps/demo.pcap" "$TW_SRC/pcaps/benign_mix.pcap"
      "$TW_SRC/pcaps/resolver_attrib.pcap")
for c in "${caps[@]}"; do "$TW_BIN" -q --names -r "$c"; done >"$T/offline.tsv"
key() { grep -v '^#' "$1" | cut -f2- | sort; }

# live_run WORKERS: capture while tcpreplay sends the captures; compare with the offline replay
live_run() {
    local w=$1 out=$T/live$1
    ip netns exec "$ns" "$TW_BIN" -i "$b" --names --redis none -R "$TW_SRC/conf/rules" \
        --set capture.workers="$w" --alerts "$out-alerts.jsonl" >"$out.tsv" 2>"$out.err" &
    local pid=$!
    TW_PIDS+=($pid)
    for _ in $(seq 100); do grep -q "capturing on" "$out.err" && break; sleep 0.05; done
    grep -q "capturing on" "$out.err" || { cat "$out.err"; fail "sensor did not start capturing"; }
    sleep 0.2
    for c in "${caps[@]}"; do
        in_ns tcpreplay -q -i "$a" --pps=2000 "$c" >"$T/replay.out" 2>&1 || { cat "$T/replay.out"; fail "tcpreplay $c"; }
        # SIGHUP (logrotate) and SIGUSR1 (statistics) mid-capture must not end the capture:
        # the names of the captures replayed after them must still arrive
        kill -HUP $pid
        kill -USR1 $pid
        sleep 0.3
    done
    sleep 1
    kill -TERM $pid
    for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    kill -0 $pid 2>/dev/null && { kill -9 $pid; fail "sensor still running 10 s after SIGTERM"; }
    wait $pid || { cat "$out.err"; fail "sensor exited $? after SIGTERM"; }
    diff <(key "$T/offline.tsv") <(key "$out.tsv") >"$T/diff" || { head -20 "$T/diff"; fail "workers=$w: live names differ from the offline replay"; }
    n=$(grep -vc '^#' "$out.tsv")
    [ "$n" -gt 50 ] || fail "only $n names captured live"
    line=$(grep "dropped by kernel" "$out.err") || { cat "$out.err"; fail "no capture statistics"; }
    drops=$(echo "$line" | sed -E 's/.* ([0-9]+) dropped by kernel.*/\1/')
    [ "$drops" -eq 0 ] || fail "kernel drops: $line"
    grep -q '"tunnelwatch.evidence.name":"tunnel.us.ngrok.com"' "$out-alerts.jsonl" || fail "no live alert"
    grep -q "configuration and rules unchanged" "$out.err" || fail "SIGHUP not handled"
    grep -q "tunnelwatch: statistics" "$out.err" || fail "SIGUSR1 not handled"
    ok "live capture on a veth, $w worker(s), SIGHUP and SIGUSR1 mid-capture: $n names identical to the offline replay; $line"
}
live_run 1
live_run 2
# the alerts of two workers are those of one: a DNS answer seen by one worker attributes the
# flow another worker sees (bindings shared in process), one incident per host, rule and name
# (which worker's hit raises it, and so its first evidence, depends on timing: not compared)
alerts() { $PY -c '
import collections, json, sys
rows = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["event.action"] == "raised":
        rows[(r.get("source.ip"), r["rule.id"], r.get("destination.domain"))] += 1
for row, n in sorted(rows.items(), key=str):
    print(*row, "raised %d times" % n if n > 1 else "")' "$1"; }
diff <(alerts "$T/live1-alerts.jsonl") <(alerts "$T/live2-alerts.jsonl") >"$T/adiff" ||
    { cat "$T/adiff"; fail "workers=2: the alerts differ from one worker's"; }
grep -q '"tunnelwatch.attribution":"dns_answer"' "$T/live2-alerts.jsonl" ||
    fail "workers=2: no alert attributed through a DNS answer"
ok "two workers raise the alerts of one ($(alerts "$T/live1-alerts.jsonl" | wc -l) incidents, the DNS-answer attribution included)"
