#!/usr/bin/env bash
# The alerts file as a FIFO, against paced replays (--realtime) that live like a live sensor:
#  A. a reader that opens the FIFO and never reads: capture goes on (the packets counter of
#     SIGUSR1's statistics keeps rising), what does not fit in the queue is counted
#     (alerts_file_dropped) and said once, and SIGTERM ends the sensor within redis.stop_flush_ms
#     + 1 s;
#  B. a reader that exits: said once, counted (output_errors), the sensor goes on, and a new
#     reader after SIGHUP gets whole records again;
#  C. no reader at all: start-up does not hang; the replay runs to its end, says what it lost
#     and exits 1.
# (A full disk is in test_errors.sh.) Every wait is bounded.
. "$(dirname "$0")/lib.sh"
[ -x "$TW_BIN" ] || fail "sensor binary $TW_BIN missing (build it first)"
DEDUP=$TW_SRC/pcaps/dedup_1000.pcap # one query for tunnel.ap.ngrok.com a second, 1000 s
# an alert for every query (no dedup window), 100 queries a second: ~100 KB/s of records
RUN=(-r "$DEDUP" -R "$TW_SRC/conf/rules" --realtime=100 --redis none
    --set alert.dedup_window_s=0 --set output.alerts_queue_kib=64 --set redis.stop_flush_ms=1000)

wait_for() { # SECONDS PID WHAT 'CONDITION'
    local end=$((SECONDS + $1))
    until eval "$4"; do
        kill -0 "$2" 2>/dev/null || { tail "$ERRF" >&2; fail "sensor exited while waiting for: $3"; }
        [ "$SECONDS" -lt "$end" ] || { tail "$ERRF" >&2; fail "no $3 within $1 s"; }
        sleep 0.1
    done
}
count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
stat_of() { # ERRFILE NAME: the value in the last statistics block
    awk -v n="$2" '/tunnelwatch: statistics/ {v = 0} $1 == n {v = $2} END {print v + 0}' "$1"
}
stats_now() { # PID ERRFILE: asks for statistics and waits for the new block
    local before
    before=$(count "$2" "tunnelwatch: statistics")
    kill -USR1 "$1"
    wait_for 5 "$1" "statistics after SIGUSR1" \
        "test \"\$(count '$2' 'tunnelwatch: statistics')\" -gt $before"
}
# reader FIFO LINES OUT: opens the FIFO, reads LINES records into OUT (within 20 s) and exits;
# LINES 0: never reads
reader() {
    $PY - "$@" <<'PYEOF' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
want = int(sys.argv[2])
if want == 0:
    time.sleep(600)
end, got = time.time() + 20, b""
while time.time() < end and got.count(b"\n") < want:
    try:
        b = os.read(fd, 65536)
    except BlockingIOError:
        b = b""
    got += b
    if not b:
        time.sleep(0.05)
# a reader that leaves mid-record loses that record: keep the whole lines
with open(sys.argv[3], "wb") as out:
    out.write(got[: got.rfind(b"\n") + 1])
PYEOF
    READER=$!
}

# ---- A: a stalled reader ---------------------------------------------------------------------
mkfifo "$T/a.fifo"
reader "$T/a.fifo" 0 /dev/null
sleep 0.3
ERRF=$T/a.err
"$TW_BIN" "${RUN[@]}" --alerts "$T/a.fifo" 2>"$ERRF" &
A=$!
wait_for 20 "$A" "\"alerts queue full\" with a stalled reader" 'grep -q "alerts queue full" "$ERRF"'
stats_now "$A" "$ERRF"
p1=$(stat_of "$ERRF" packets)
sleep 1
stats_now "$A" "$ERRF"
p2=$(stat_of "$ERRF" packets)
[ "$p2" -gt "$p1" ] || fail "capture stalled behind the FIFO: packets $p1 then $p2"
[ "$(stat_of "$ERRF" alerts_file_dropped)" -gt 0 ] || fail "no alerts_file_dropped in the statistics"
[ "$(count "$ERRF" "alerts queue full")" -eq 1 ] || fail "the full queue was said more than once"
ok "stalled FIFO reader: capture goes on ($p1 then $p2 packets), drops counted and said once"
t0=$(date +%s%N)
kill -TERM "$A"
set +e
wait "$A"
rc=$?
set -e
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" -lt 128 ] || fail "SIGTERM: killed by signal $((rc - 128))"
[ "$ms" -le 2000 ] || fail "SIGTERM took $ms ms (redis.stop_flush_ms 1000 + 1 s)"
grep -q "records not written" "$ERRF" || { tail "$ERRF"; fail "lost records not reported at exit"; }
ok "SIGTERM with a stalled FIFO reader: exit $rc in $ms ms"
kill "$READER" 2>/dev/null || true

# ---- B: the reader exits -------------------------------------------------------------------
mkfifo "$T/b.fifo"
reader "$T/b.fifo" 20 "$T/b.first"
sleep 0.3
ERRF=$T/b.err
"$TW_BIN" "${RUN[@]}" --alerts "$T/b.fifo" 2>"$ERRF" &
B=$!
wait_for 20 "$B" "\"the reader went away\" once the reader exits" \
    'grep -q "the reader went away" "$ERRF"'
stats_now "$B" "$ERRF"
p1=$(stat_of "$ERRF" packets)
[ "$(stat_of "$ERRF" output_errors)" -gt 0 ] || fail "the records lost with the reader not counted"
sleep 1
kill -0 "$B" || fail "the sensor died with its reader"
stats_now "$B" "$ERRF"
p2=$(stat_of "$ERRF" packets)
[ "$p2" -gt "$p1" ] || fail "capture stopped after the reader went away: $p1 then $p2"
n1=$(json_lines_valid "$T/b.first") || fail "the first reader got a broken record"
[ "$n1" -ge 20 ] || fail "the first reader got $n1 records"
[ "$(count "$ERRF" "the reader went away")" -eq 1 ] || fail "the reader's exit said more than once"
reader "$T/b.fifo" 20 "$T/b.second"
R2=$READER
kill -HUP "$B"
wait "$R2" || fail "the second reader failed"
n2=$(json_lines_valid "$T/b.second") || fail "the reader after SIGHUP got a broken record"
[ "$n2" -ge 20 ] || fail "the reader after SIGHUP got $n2 records"
kill -TERM "$B"
set +e
wait "$B"
rc=$?
set -e
[ "$rc" -lt 128 ] || fail "killed by signal $((rc - 128)) after the reader went away"
ok "FIFO reader exits: said once, counted, the sensor went on ($p1 then $p2 packets); $n1 then $n2 whole records"

# ---- C: no reader at all --------------------------------------------------------------------
mkfifo "$T/c.fifo"
ERRF=$T/c.err
set +e
timeout 30 "$TW_BIN" -q -r "$TW_SRC/pcaps/demo.pcap" -R "$TW_SRC/conf/rules" --redis none \
    --alerts "$T/c.fifo" --set redis.stop_flush_ms=300 2>"$ERRF"
rc=$?
set -e
[ "$rc" -ne 124 ] || fail "a FIFO without a reader hung the sensor"
[ "$rc" -eq 1 ] || { cat "$ERRF"; fail "FIFO without a reader: exit $rc (wanted 1: records lost)"; }
grep -q "has no reader yet" "$ERRF" || { cat "$ERRF"; fail "no reader: not said"; }
grep -q "records not written" "$ERRF" || { cat "$ERRF"; fail "no reader: losses not reported"; }
ok "FIFO without a reader: the replay ran to its end and said what it lost"
