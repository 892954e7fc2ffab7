#!/usr/bin/env python3
"""reload_drive.py - helpers of test_reload.sh and scripts/soak (not a test by itself).

  reload_drive.py pcap OUT SECONDS SPACING_MS
      a capture of DNS queries for tunnel.ap.ngrok.com from 10.1.0.5 (one flow), one every SPACING_MS,
      SECONDS long: a paced replay (--realtime) of it keeps a real sensor busy that long.
  reload_drive.py list OUT N
      an indicator list of N domains.
  reload_drive.py reloads PID ERRFILE RULEFILE N
      N times: rewrites RULEFILE (a rule set of 1 to 3 rules, the first always the same id,
      ending with a bare '---'), sends SIGHUP and waits for the sensor's
      "rules reloaded (K rules)" line with the expected K; fails on any other outcome. Prints
      VmRSS after the first 100 and after all, and the reload rate.
"""
import os
import signal
import struct
import sys
import time


def dns_query(name, qid):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", 1, 1)


def ip_csum(h):
    s = sum(struct.unpack(">10H", h))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(payload, sport):
    udp = struct.pack(">HHHH", sport, 53, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([10, 1, 0, 5]), bytes([10, 1, 0, 53]))
    ip = ip[:10] + struct.pack(">H", ip_csum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + udp


def make_pcap(out, seconds, spacing_ms):
    n = int(seconds * 1000 / spacing_ms)
    t0 = 1700000000 * 1000000
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            t = t0 + int(i * spacing_ms * 1000)
            # one flow: new flows would allocate flow-table chunks (huge pages, whose faults
            # may compact memory for 100 ms), a stall that is not the reload's
            fr = frame(dns_query("tunnel.ap.ngrok.com", i & 0xFFFF), 40000)
            f.write(struct.pack("<IIII", t // 1000000, t % 1000000, len(fr), len(fr)) + fr)


def make_list(out, n):
    with open(out, "w") as f:
        f.write("# id: 33333333-3333-4333-8333-333333333333\n# title: big feed\n# level: high\n")
        for i in range(n):
            f.write("d%07d.feed%d.example.net\n" % (i, i % 97))


RULE = """title: {title}
id: {rid}
status: test
description: reload test rule{pad}
logsource:
    category: dns
detection:
    selection:
        QueryName|endswith: '{pattern}'
    condition: selection
level: high
"""


def write_rules(path, i):
    k = i % 3 + 1  # 1..3 rules: the count in "rules reloaded (K rules)" shows this set is in force
    docs = []
    for r in range(k):
        docs.append(RULE.format(title="reload %d rule %d" % (i, r),
                                rid="4444%04d-4444-4444-8444-%012d" % (r, r),
                                pad="." * (i % 2),  # consecutive files differ in size
                                pattern="ngrok.com" if r == 0 else ".r%d.invalid" % r))
    with open(path + ".tmp", "w") as f:
        f.write("---\n".join(docs) + "---\n")
    os.rename(path + ".tmp", path)
    return k


def rss_kb(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise SystemExit("no %s for %d" % (field, pid))


def reloads(pid, errfile, rulefile, n):
    err = open(errfile, "rb")
    err.seek(0, 2)
    buf = b""
    rss_warm = None
    t0 = time.monotonic()
    for i in range(1, n + 1):
        k = write_rules(rulefile, i)
        os.kill(pid, signal.SIGHUP)
        want = b"tunnelwatch: rules reloaded (%d rules)" % k
        end = time.monotonic() + 30
        while True:
            chunk = err.read()
            if chunk:
                buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if b"reload failed" in line or b"unchanged" in line:
                    raise SystemExit("reload %d: %s" % (i, line.decode(errors="replace")))
                if line.startswith(b"tunnelwatch: rules reloaded"):
                    if not line.startswith(want):
                        raise SystemExit("reload %d: %r, want %r" % (i, line, want))
                    break
            else:
                if time.monotonic() > end:
                    raise SystemExit("reload %d: no 'rules reloaded' line within 30 s" % i)
                try:
                    os.kill(pid, 0)
                except OSError:
                    raise SystemExit("reload %d: the sensor exited" % i)
                time.sleep(0.0005)
                continue
            break
        if i == 100:
            time.sleep(0.2)
            rss_warm = rss_kb(pid)
    time.sleep(0.2)
    rss_end = rss_kb(pid)
    secs = time.monotonic() - t0
    print("reloads %d rss_warm_kb %d rss_end_kb %d seconds %.1f" % (n, rss_warm or 0, rss_end, secs))


def main():
    cmd = sys.argv[1]
    if cmd == "pcap":
        make_pcap(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "list":
        make_list(sys.argv[2], int(sys.argv[3]))
    elif cmd == "rules":
        write_rules(sys.argv[2], int(sys.argv[3]))
    elif cmd == "reloads":
        reloads(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
