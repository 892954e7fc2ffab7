#!/usr/bin/env python3
"""evidence_check.py ALERTS.jsonl MODE CAPTURE... - each incident pcap the records name holds
exactly the packets of the incident's flagged flows and the DNS packets that named their
servers (answers with an A/AAAA record for the server address, and their queries), selected
from the original captures with tshark: the same multiset of (bytes, caplen, len), and with
MODE=replay the same timestamps. Prints one line per incident."""
import collections, json, struct, subprocess, sys


def read_pcap(path):
    d = open(path, "rb").read()
    magic = struct.unpack("<I", d[:4])[0]
    e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    off, out = 24, []
    while off + 16 <= len(d):
        sec, frac, incl, orig = struct.unpack(e + "IIII", d[off:off + 16])
        usec = frac // 1000 if nano else frac
        out.append((sec, usec, incl, orig, d[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def frames(cap, flt):
    r = subprocess.run(["tshark", "-r", cap, "-Y", flt, "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True, check=True)
    return [int(x) for x in r.stdout.split()]


def dns_queries(cap, answer_frames):
    """The queries answered by these frames: same id, reversed addresses and ports."""
    if not answer_frames:
        return []
    r = subprocess.run(["tshark", "-r", cap, "-Y", " || ".join("frame.number==%d" % f for f in answer_frames),
                        "-T", "fields", "-e", "dns.id", "-e", "ip.src", "-e", "ip.dst",
                        "-e", "udp.srcport", "-e", "udp.dstport"], capture_output=True, text=True, check=True)
    flts = []
    for line in r.stdout.splitlines():
        i, s, d, sp, dp = line.split("\t")
        flts.append("(dns.flags.response==0 && dns.id==%s && ip.src==%s && ip.dst==%s && udp.srcport==%s && udp.dstport==%s)" % (i, d, s, dp, sp))
    return frames(cap, " || ".join(flts))


def main():
    alerts, mode, caps = sys.argv[1], sys.argv[2], sys.argv[3:]
    inc_pcap, flows = {}, collections.defaultdict(set)
    for line in open(alerts):
        r = json.loads(line)
        inc = r.get("tunnelwatch.incident_id") or r.get("event.id")
        if r.get("tunnelwatch.evidence.pcap"):
            inc_pcap[inc] = r["tunnelwatch.evidence.pcap"]
        if r["event.action"] == "flow_end":
            flows[inc].add((r["source.ip"], r["source.port"], r["destination.ip"], r["destination.port"],
                            r["network.transport"]))
    if not inc_pcap:
        sys.exit("no record names an incident pcap")
    packets = {cap: read_pcap(cap) for cap in caps}
    bad = 0
    for inc, path in sorted(inc_pcap.items()):
        if not flows[inc]:
            sys.exit("incident %s has a pcap but no flow-end record" % inc)
        want = collections.Counter()
        for cap in caps:
            fl = ["(ip.addr==%s && ip.addr==%s && %s.port==%d && %s.port==%d)" % (c, s, t, cp, t, sp)
                  for c, cp, s, sp, t in flows[inc]]
            sel = set(frames(cap, " || ".join(fl)))
            ans = frames(cap, " || ".join("(dns.flags.response==1 && dns.a==%s)" % s for _, _, s, _, _ in flows[inc]))
            sel |= set(ans) | set(dns_queries(cap, ans))
            for n in sel:
                p = packets[cap][n - 1]
                want[(p[0], p[1], p[2], p[3], p[4]) if mode == "replay" else p[2:]] += 1
        got = collections.Counter((p if mode == "replay" else p[2:]) for p in read_pcap(path))
        if got != want:
            bad += 1
            print("FAIL %s: %d packets, want %d (%d missing, %d extra)" % (
                path, sum(got.values()), sum(want.values()), sum((want - got).values()),
                sum((got - want).values())))
        else:
            print("ok %s: %d packets (%d flows and their DNS packets)" % (path, sum(got.values()), len(flows[inc])))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
