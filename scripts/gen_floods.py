#!/usr/bin/python3
"""gen_floods.py: flood captures for tests/e2e/test_floods.sh (generated at test time, not kept).

    /usr/bin/python3 scripts/gen_floods.py CASE OUT.pcap [--scale N] [--budget B] [--pace-us U]

Each capture is a flood aimed at one bounded resource of the sensor, with one ngrok event in its
middle (host 10.1.0.41) and one at its end (host 10.1.0.42); the test checks both are alerted.
CASE (B = the resource's budget in its own unit, the flood is scale * B of them; default 4):
  repro     the issue's reproducer: B TCP flows from one laptop (10.9.0.66) that each send the
            first 1,400 bytes of a post-quantum ClientHello and stall; ngrok PQ ClientHellos split
            over three segments (B defaults to 60000 and --scale does not apply)
  reasm     B*scale stalled partial ClientHellos (B = 2048-byte buffers) from 256 spoofed sources;
            ngrok events: PQ ClientHellos split over three segments
  quic      B*scale QUIC Initials each carrying the first half of a ClientHello and no more
            (B = 32 KiB QUIC states), 256 sources; ngrok events: a QUIC Initial over two packets
  frags     B*scale first IPv4 fragments that never complete (B = datagrams);
            ngrok events: a DNS query for tunnel.us.ngrok.com in two IPv4 fragments
  dnsmap    B*scale DNS answers for flagged names (*.ngrok-free.app) to one host, each a new
            address (B = map entries); ngrok events: an answer for tunnel.eu.ngrok.com, then SSH
            to its address
  flows     B*scale flows (SYN + 48 opaque bytes, no more) from 256 sources (B = flows, or nDPI
            states: the same flood serves both); ngrok events: TLS to tunnel.us.ngrok.com
  banners   B*scale server-first flows (SYN, SYN-ACK, 48 opaque bytes from the server, the
            client silent) from 256 sources: nDPI is asked to name them (our parsers still wait
            for the client's bytes), so they fill nDPI's flow states; ngrok events: TLS
  dedup     B*scale distinct flagged DNS queries (f<i>.ngrok-free.app) from one host (B = dedup
            incidents); ngrok events: TLS to tunnel.us.ngrok.com

Frames are assembled as scripts/gen_pcaps.py does (its builders are reused for the ngrok events;
the flood frames use the same layouts with precomputed checksum sums so 10^5 frames take a few
seconds). The output is deterministic: seeds from the case name, timestamps from 2024-03-01 on.
--pace-us spaces flood items (default: 1.25 * 500 ms / B, so the budget fills more slowly than
flow.stall_ms and the first of them are stalled by the time it is spent).
"""
import argparse
import ipaddress
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_pcaps as g  # noqa: E402

MID_HOST, END_HOST = "10.1.0.41", "10.1.0.42"
ETH = bytes.fromhex("00005e0001fe") + g.mac_of("10.2.0.1") + b"\x08\x00"


def a2i(a):
    return int(ipaddress.IPv4Address(a))


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


class Out:
    """Streaming classic pcap writer (microseconds), frames in time order."""

    def __init__(self, path):
        self.f = open(path, "wb", buffering=1 << 20)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, g.LINKTYPE_EN10MB))
        self.t_us = g.T0 * 1_000_000
        self.frames = 0
        self.ident = 1

    def add(self, frame, dt_us=0):
        self.t_us += dt_us
        self.f.write(struct.pack("<IIII", self.t_us // 1_000_000, self.t_us % 1_000_000, len(frame),
                                 len(frame)) + frame)
        self.frames += 1

    def ip4(self, src, dst, proto, l4, dt_us=0, frag_off=0, mf=False, ident=None):
        """src, dst as ints; l4 already carries its checksum."""
        ident = self.ident if ident is None else ident
        self.ident = (self.ident + 1) & 0xFFFF
        flags = (0x2000 if mf else 0) | (frag_off // 8) | (0x4000 if not mf and not frag_off else 0)
        hdr = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(l4), ident, flags, 64, proto, 0, src, dst)
        c = ~fold(sum(struct.unpack("!10H", hdr))) & 0xFFFF
        self.add(ETH + hdr[:10] + struct.pack("!H", c) + hdr[12:] + l4, dt_us)

    def events(self, cap):
        """Appends a gen_pcaps Capture's frames, its clock continuing ours."""
        for ts, _, frame in cap.frames:
            self.add(frame, max(0, ts // 1000 - self.t_us))

    def close(self):
        self.f.close()


def pseudo(src, dst, proto, n):
    return (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + proto + n


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", psum=None):
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 64240, 0, 0)
    s = pseudo(src, dst, 6, 20 + len(payload)) + sum(struct.unpack("!10H", hdr))
    s += g.csum_add(payload) if psum is None else psum
    return hdr[:16] + struct.pack("!H", ~fold(s) & 0xFFFF) + hdr[18:] + payload


def udp(src, dst, sport, dport, payload, psum=None):
    n = 8 + len(payload)
    s = pseudo(src, dst, 17, n) + sport + dport + n + (g.csum_add(payload) if psum is None else psum)
    return struct.pack("!HHHH", sport, dport, n, (~fold(s) & 0xFFFF) or 0xFFFF) + payload


def spoofed(i, nsrc=256):
    return a2i("198.18.0.0") + 1 + i % nsrc  # RFC 2544 benchmark addresses: external, spoofed


def event_cap(out, name):
    cap = g.Capture(name)
    cap.t = out.t_us * 1000
    return cap


# ---------------------------------------------------------------- the ngrok events

def ev_tls_split3(out, host, tag):
    cap = event_cap(out, tag)
    hello = g.tls_records(g.client_hello(cap.rng, "tunnel.us.ngrok.com", pq=True))
    third = len(hello) // 3
    g.tls_session(cap, host, g.SEED_IP["tunnel.us.ngrok.com"], "tunnel.us.ngrok.com", hello=hello,
                  sizes=[third, third], s2c=600, c2s=200)
    out.events(cap)


def ev_tls(out, host, tag):
    cap = event_cap(out, tag)
    g.tls_session(cap, host, g.SEED_IP["tunnel.us.ngrok.com"], "tunnel.us.ngrok.com", s2c=600, c2s=200)
    out.events(cap)


def ev_quic2(out, host, tag):
    cap = event_cap(out, tag)
    g.quic_session(cap, host, g.SEED_IP["tunnel.eu.ngrok.com"], "tunnel.eu.ngrok.com", split=True)
    out.events(cap)


def ev_frag_dns(out, host, tag):
    cap = event_cap(out, tag)
    u = g.udp_seg(host, g.RESOLVER, 41041 if host == MID_HOST else 41042, 53,
                  g.dns_query(0x4141, ["tunnel.us.ngrok.com"], 1, edns=True))
    ident = 0x5150 if host == MID_HOST else 0x5151
    for off, mf in ((0, True), (24, False)):
        chunk = u[off:24] if mf else u[24:]
        l3 = g.ipv4_hdr(host, g.RESOLVER, 17, len(chunk), ident, df=False, frag=off, mf=mf) + chunk
        cap.add(g.wrap_eth(l3, host, g.RESOLVER), 30)
    out.events(cap)


def ev_dns_ssh(out, host, tag):
    cap = event_cap(out, tag)
    ip = g.SEED_IP["tunnel.eu.ngrok.com"]
    g.dns_exchange(cap, host, g.RESOLVER, "tunnel.eu.ngrok.com", [ip], ttl=300)
    cap.wait(0.01)
    fl = g.TcpFlow(cap, host, ip, 40022, 22)
    fl.open()
    fl.send(True, b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    fl.send(False, b"SSH-2.0-OpenSSH_9.2p1\r\n")
    fl.close()
    out.events(cap)


# ---------------------------------------------------------------- the floods (item i of n)

def partial_hello(rng):
    return g.tls_records(g.client_hello(rng, "www.example.com", pq=True))[:1400]


def flood_tcp_hello(out, i, pay, psum, src, dst):
    sport = 1024 + (i * 7) % 60000
    seq = (i * 2654435761) & 0xFFFFFFFF
    out.ip4(src, dst, 6, tcp(src, dst, sport, 443, seq, 0, g.TCP_SYN))
    out.ip4(src, dst, 6, tcp(src, dst, sport, 443, seq + 1, 1, g.TCP_ACK | g.TCP_PSH, pay, psum), 5)


def make_flood(case, rng):
    """Returns (per-item writer, budget default, events function)."""
    dst = a2i("93.184.216.34")
    if case in ("repro", "reasm"):
        pay = partial_hello(rng)
        psum = g.csum_add(pay)
        laptop = a2i("10.9.0.66")

        def item(out, i):
            flood_tcp_hello(out, i, pay, psum, laptop if case == "repro" else spoofed(i), dst)
        return item, 60000 if case == "repro" else 1024, ev_tls_split3
    if case == "quic":
        tp = [(0x01, g.varint(30000)), (0x03, g.varint(1472))]
        ch = g.client_hello(rng, "www.example.com", quic=tp, alpn=(b"h3",))
        half = ch[:len(ch) // 2]
        pkt = g.quic_initial(g.QUIC_V1, rng.randbytes(8), rng.randbytes(8), 0,
                             b"\x06" + g.varint(0) + g.varint(len(half)) + half)
        psum = g.csum_add(pkt)

        def item(out, i):
            s = spoofed(i)
            out.ip4(s, dst, 17, udp(s, dst, 1024 + i % 60000, 443, pkt, psum))
        return item, 128, ev_quic2
    if case == "frags":
        body = bytes(1200)
        psum = g.csum_add(body)
        res = a2i(g.RESOLVER)

        def item(out, i):
            s = spoofed(i)
            u = udp(s, res, 1024 + i % 60000, 53, body, psum)
            out.ip4(s, res, 17, u[:1200], mf=True, ident=i & 0xFFFF)
        return item, 1024, ev_frag_dns
    if case == "dnsmap":
        res, victim = a2i(g.RESOLVER), a2i("10.1.0.66")

        def item(out, i):
            name = f"f{i}.ngrok-free.app"
            ip = str(ipaddress.IPv4Address(a2i("100.64.0.0") + i))
            out.ip4(res, victim, 17, udp(res, victim, 53, 33000 + i % 20000,
                                         g.dns_response(i & 0xFFFF, name, 1, [ip], 300, edns=True)))
        return item, 1024, ev_dns_ssh
    if case == "flows":
        pay = bytes(rng.getrandbits(8) for _ in range(48))
        psum = g.csum_add(pay)

        def item(out, i):
            s = spoofed(i)
            sport, seq = 1024 + (i * 7) % 60000, (i * 2654435761) & 0xFFFFFFFF
            out.ip4(s, dst, 6, tcp(s, dst, sport, 7777, seq, 0, g.TCP_SYN))
            out.ip4(s, dst, 6, tcp(s, dst, sport, 7777, seq + 1, 1, g.TCP_ACK | g.TCP_PSH, pay, psum), 5)
        return item, 4096, ev_tls
    if case == "banners":
        pay = bytes(rng.getrandbits(8) for _ in range(48))
        psum = g.csum_add(pay)

        def item(out, i):
            s = spoofed(i)
            sport, seq = 1024 + (i * 7) % 60000, (i * 2654435761) & 0xFFFFFFFF
            out.ip4(s, dst, 6, tcp(s, dst, sport, 7777, seq, 0, g.TCP_SYN))
            out.ip4(dst, s, 6, tcp(dst, s, 7777, sport, 1000, seq + 1, g.TCP_SYN | g.TCP_ACK), 5)
            out.ip4(dst, s, 6, tcp(dst, s, 7777, sport, 1001, seq + 1, g.TCP_ACK | g.TCP_PSH, pay, psum), 5)
        return item, 4096, ev_tls
    if case == "dedup":
        host, res = a2i("10.1.0.66"), a2i(g.RESOLVER)

        def item(out, i):
            q = g.dns_query(i & 0xFFFF, [f"f{i}.ngrok-free.app"], 1)
            out.ip4(host, res, 17, udp(host, res, 33000 + i % 20000, 53, q))
        return item, 256, ev_tls
    raise SystemExit(f"gen_floods.py: unknown case {case}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case")
    ap.add_argument("out")
    ap.add_argument("--scale", type=float, default=4.0, help="flood size in budgets (default 4)")
    ap.add_argument("--budget", type=int, help="the resource's budget in its unit (see above)")
    ap.add_argument("--pace-us", type=int, help="microseconds between flood items")
    ap.add_argument("--stall-ms", type=int, default=500, help="the sensor's flow.stall_ms")
    a = ap.parse_args()
    rng = random.Random(g.seed_of("floods-" + a.case))
    item, budget, events = make_flood(a.case, rng)
    budget = a.budget or budget
    n = budget if a.case == "repro" else int(budget * a.scale)
    pace = a.pace_us or max(1, a.stall_ms * 1250 // budget)
    out = Out(a.out)
    for i in range(n):
        if i == n // 2:
            events(out, MID_HOST, "mid")
        item(out, i)
        out.t_us += pace
    events(out, END_HOST, "end")
    out.close()
    print(f"{a.out}: {a.case}, {n} flood items, {out.frames} frames, pace {pace} us", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
