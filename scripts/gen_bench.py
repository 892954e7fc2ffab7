#!/usr/bin/python3
"""gen_bench.py: deterministic benchmark captures for scripts/bench, with their truth.

    /usr/bin/python3 scripts/gen_bench.py mix OUT.pcap [--mib N] [--flows N] [--hits N]
    /usr/bin/python3 scripts/gen_bench.py stress OUT.pcap [--flows N] [--hits N] [--gap N]
    /usr/bin/python3 scripts/gen_bench.py ndpi-hard OUT.pcap [--mib N] [--flows N] [--hits N]
    /usr/bin/python3 scripts/gen_bench.py check OUT.pcap [--names FILE] [--alerts FILE]

mix     an enterprise uplink: TCP/443 flows (handshake, Chrome-like ClientHello with shuffled
        extensions, about 30% post-quantum sized and so split over two segments, server flight,
        bulk 1400-byte data with ACKs, FIN), DNS queries and answers over UDP before about a third
        of them (~5% of packets), 10% IPv6 flows, 10% 802.1Q tagged flows, thousands of benign
        names and a few ngrok names (each from its own internal host). Flows are interleaved
        (a fixed pool of concurrent flows, picked by the seeded RNG) so that the flow table and
        the reassembly see a realistic mix, not one flow at a time.
stress  many short flows: SYN, ClientHello, FIN (70%) or SYN, RST (30%), every ClientHello with
        its own name; ngrok flows are spread over the capture, half of them with their hello
        delayed by --gap flows (more than the default flow cap), so an eviction of the flow
        between its SYN and its hello would show as a lost hit.
ndpi-hard  an uplink where nDPI cannot decide early, mixed as an enterprise capture would be:
        about 35% TLS/443 flows as in mix (with DNS before a third of them, 10% IPv6, 10%
        802.1Q), 10% TLS on odd ports (a ClientHello with its SNI, then bulk), 20% unknown
        binary TCP protocols on random ports (length-prefixed messages both ways, no SYN seen
        for a quarter of them), 10% TCP flows that start mid-stream (server data and client
        ACKs only), 10% SSH on random ports, 15% long UDP flows on random ports (RTP-like
        media and length-prefixed game/VPN-like datagrams, 40 to 400 packets each). Only TLS
        SNIs and DNS queries are names; the ngrok hits are TLS flows as in mix.

Output beside OUT.pcap: OUT.pcap.truth.tsv (the shape of `tunnelwatch --names`: frame, kind,
name, src_ip, dst_ip, dst_port, in frame order), OUT.pcap.hits.tsv (the ngrok observations:
the same columns; each (src_ip, name) pair is one expected incident) and OUT.pcap.meta (key=value
counts: frames, bytes, flows, dns_queries, snis, split_hellos, ngrok_hits, ...).

Deterministic: every random choice comes from random.Random seeded with a fixed string and the
arguments, timestamps start at 2024-03-01T12:00:00Z and advance by fixed steps, and the capture
is written as it is generated (memory stays small whatever the size). The frame builders here
are a fast path (packed addresses, checksums summed once per payload) over the helpers of
gen_pcaps.py (ClientHello, DNS messages, checksums), which it imports and does not change.
"""
import argparse
import ipaddress
import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_pcaps as gp  # noqa: E402

SEEDS = gp.SEEDS
RESOLVER4 = "10.1.0.53"
RESOLVER6 = "fd00:10:1::53"
T0_US = gp.T0 * 1_000_000

WORDS = ("alpha", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
         "kestrel", "lumen", "meadow", "nimbus", "orchid", "pylon", "quartz", "raven", "sierra",
         "tundra", "umber", "vertex", "willow", "xenon", "yonder", "zephyr", "acme", "contoso",
         "fabrikam", "northwind", "tailspin", "woodgrove", "litware", "proseware", "adatum")
TLDS = ("com", "org", "net", "io", "example", "cloud", "dev")
PREFIX = ("www", "api", "cdn", "static", "login", "mail", "update", "assets", "img", "edge")


def benign_names(rng, n):
    """n distinct plausible hostnames that no rule in conf/rules matches (no tunnel suffix)."""
    out, seen = [], set()
    for name, _ in gp.BENIGN:
        out.append(name)
        seen.add(name)
    while len(out) < n:
        name = "%s.%s%d.%s" % (rng.choice(PREFIX), rng.choice(WORDS), rng.randrange(1, 999),
                               rng.choice(TLDS))
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(data):
    return gp.csum_add(data)


def addr_sum(packed):
    return sum(struct.unpack("!%dH" % (len(packed) // 2), packed))


class Writer:
    """Streams pcap records (little-endian, microseconds) and the truth files."""

    def __init__(self, path, step_us=(2, 9), seed=1):
        self.f = open(path, "wb", buffering=1 << 22)
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.truth = open(path + ".truth.tsv", "w", buffering=1 << 20)
        self.hits = open(path + ".hits.tsv", "w")
        self.frames = 0
        self.bytes = 0
        self.t = T0_US
        self.buf = []
        self.counts = {}

    def emit(self, frame, dt_us):
        self.t += dt_us
        self.frames += 1
        self.bytes += len(frame)
        self.buf.append(struct.pack("<IIII", self.t // 1000000, self.t % 1000000, len(frame), len(frame)))
        self.buf.append(frame)
        if len(self.buf) >= 8192:
            self.f.write(b"".join(self.buf))
            self.buf = []
        return self.frames

    def note(self, frame, kind, name, src, dst, dport, hit=False):
        row = "%d\t%s\t%s\t%s\t%s\t%d\n" % (frame, kind, name, src, dst, dport)
        self.truth.write(row)
        if hit:
            self.hits.write(row)

    def count(self, key, n=1):
        self.counts[key] = self.counts.get(key, 0) + n

    def close(self, meta):
        self.f.write(b"".join(self.buf))
        self.f.close()
        self.truth.close()
        self.hits.close()
        with open(self.f.name + ".meta", "w") as m:
            m.write("frames=%d\nbytes_on_wire=%d\n" % (self.frames, self.bytes))
            for k in sorted(set(self.counts) | set(meta)):
                m.write("%s=%s\n" % (k, meta.get(k, self.counts.get(k))))


class Ends:
    """The two endpoints of one conversation with everything that is per-direction constant:
    link header, packed addresses and the pseudo-header address sum."""

    def __init__(self, c, s, cport, sport, vlan=0):
        # canonical text (RFC 5952 for IPv6), as tunnelwatch prints addresses
        c, s = str(ipaddress.ip_address(c)), str(ipaddress.ip_address(s))
        self.c, self.s, self.cport, self.sport = c, s, cport, sport
        self.v6 = ":" in c
        self.cp = ipaddress.ip_address(c).packed
        self.sp = ipaddress.ip_address(s).packed
        et = 0x86DD if self.v6 else 0x0800
        tags = [(0x8100, vlan)] if vlan else []
        self.l2 = (gp.eth_hdr(s, c, et, tags), gp.eth_hdr(c, s, et, tags))  # [from_c]
        self.asum = addr_sum(self.cp) + addr_sum(self.sp)
        self.ident = [(hash_u16(c) + 1) & 0xFFFF, (hash_u16(s) + 1) & 0xFFFF]

    def ip(self, from_c, proto, l4):
        src, dst = (self.cp, self.sp) if from_c else (self.sp, self.cp)
        if self.v6:
            l3 = struct.pack("!IHBB", 0x60000000, len(l4), proto, 64) + src + dst
        else:
            i = self.ident[from_c]
            self.ident[from_c] = (i + 1) & 0xFFFF
            h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), i, 0x4000, 64, proto, 0, src, dst)
            c = ~fold(csum(h)) & 0xFFFF
            l3 = h[:10] + struct.pack("!H", c) + h[12:]
        return self.l2[from_c] + l3 + l4

    def tcp(self, from_c, seq, ack, flags, payload=b"", psum=None, opts=b""):
        sp, dp = (self.cport, self.sport) if from_c else (self.sport, self.cport)
        doff = (20 + len(opts)) // 4
        h = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF if flags & 0x10 else 0,
                        doff << 4, flags, 64240 if from_c else 65160, 0, 0) + opts
        n = len(h) + len(payload)
        s = self.asum + 6 + n + csum(h) + (csum(payload) if psum is None else psum)
        c = ~fold(s) & 0xFFFF
        return self.ip(from_c, 6, h[:16] + struct.pack("!H", c) + h[18:] + payload)

    def udp(self, from_c, payload):
        sp, dp = (self.cport, self.sport) if from_c else (self.sport, self.cport)
        n = 8 + len(payload)
        h = struct.pack("!HHHH", sp, dp, n, 0)
        c = ~fold(self.asum + 17 + n + csum(h) + csum(payload)) & 0xFFFF
        return self.ip(from_c, 17, h[:6] + struct.pack("!H", c or 0xFFFF) + payload)


def hash_u16(s):
    return gp.seed_of(s) & 0x7FFF


SYN_OPTS = struct.pack("!BBH", 2, 4, 1460) + b"\x01\x01\x04\x02" + b"\x01\x03\x03\x07"


class Pool:
    """Random payload blocks with their checksum sums, reused for bulk data (the sensor never
    looks past the first bytes of a flow, and this keeps generation at ~1 GB/min)."""

    def __init__(self, rng, size=1400, n=256):
        self.blocks = []
        for _ in range(n):
            b = b"\x17\x03\x03" + struct.pack("!H", size - 5) + rng.randbytes(size - 5)
            self.blocks.append((b, csum(b)))


# ------------------------------------------------------------------ mix

def short_flight(rng):
    sh = gp.server_flight(rng)
    n = 5 + struct.unpack("!H", sh[3:5])[0] + 6  # ServerHello record + ChangeCipherSpec
    k = rng.randrange(120, 320)
    return sh[:n] + struct.pack("!BHH", 0x17, 0x0303, k) + rng.randbytes(k)


def mix_flow(w, rng, pool, ends, name, dns, pq, bulk_segs, hit):
    """Generator of (frame, dt_us) for one visit: optional DNS exchange, then a TLS session.
    Truth rows are written when their frame is emitted (frame numbers are global)."""
    if dns is not None:
        q = gp.dns_query(rng.getrandbits(16), name, 28 if ends.v6 else 1, edns=True)
        f = yield dns.udp(True, q), 3
        w.note(f, "dns_query", name, dns.c, dns.s, 53, hit)
        w.count("dns_queries")
        qid = struct.unpack("!H", q[:2])[0]
        r = gp.dns_response(qid, name, 28 if ends.v6 else 1, [ends.s], edns=True)
        yield dns.udp(False, r), 5
    cseq, sseq = rng.getrandbits(32), rng.getrandbits(32)
    yield ends.tcp(True, cseq, 0, gp.TCP_SYN, opts=SYN_OPTS), 4
    cseq += 1
    yield ends.tcp(False, sseq, cseq, gp.TCP_SYN | gp.TCP_ACK, opts=SYN_OPTS), 6
    sseq += 1
    yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 3
    hello = gp.tls_records(gp.client_hello(rng, name, pq=pq))
    segs = [hello[i:i + 1448] for i in range(0, len(hello), 1448)]
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        f = yield ends.tcp(True, cseq, sseq, gp.TCP_ACK | (gp.TCP_PSH if last else 0), seg), 2
        cseq += len(seg)
    w.note(f, "tls_sni", name, ends.c, ends.s, 443, hit)
    w.count("snis")
    if len(segs) > 1:
        w.count("split_hellos")
    yield ends.tcp(False, sseq, cseq, gp.TCP_ACK), 5
    # server flight: ServerHello, CCS, then encrypted extensions + certificate (full
    # handshake) or only a short encrypted flight (resumption, half the flows)
    flight = gp.server_flight(rng) if rng.random() < 0.5 else short_flight(rng)
    for i in range(0, len(flight), 1448):
        seg = flight[i:i + 1448]
        yield ends.tcp(False, sseq, cseq, gp.TCP_ACK, seg), 2
        sseq += len(seg)
    yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 3
    fin = b"\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00\x35" + rng.randbytes(0x35)
    yield ends.tcp(True, cseq, sseq, gp.TCP_ACK | gp.TCP_PSH, fin), 3
    cseq += len(fin)
    # bulk, mostly server to client, ACK every second segment
    down = rng.random() < 0.8
    for i in range(bulk_segs):
        b, s = pool.blocks[rng.randrange(len(pool.blocks))]
        if down:
            yield ends.tcp(False, sseq, cseq, gp.TCP_ACK, b, s), 2
            sseq += len(b)
        else:
            yield ends.tcp(True, cseq, sseq, gp.TCP_ACK, b, s), 2
            cseq += len(b)
        if i % 2 == 1 or i == bulk_segs - 1:
            if down:
                yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 2
            else:
                yield ends.tcp(False, sseq, cseq, gp.TCP_ACK), 2
    yield ends.tcp(True, cseq, sseq, gp.TCP_FIN | gp.TCP_ACK), 4
    cseq += 1
    yield ends.tcp(False, sseq, cseq, gp.TCP_FIN | gp.TCP_ACK), 6
    sseq += 1
    yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 3


def gen_mix(path, mib, nflows, nhits):
    rng = random.Random("tunnelwatch-bench-mix/%d/%d/%d" % (mib, nflows, nhits))
    pool = Pool(rng)
    names = benign_names(rng, 5000)
    ip4 = {n: "198.18.%d.%d" % (i // 250, 1 + i % 250) for i, n in enumerate(names)}
    ip6 = {n: "2001:db8:%x::%x" % (i // 250, 1 + i % 250) for i, n in enumerate(names)}
    hit_ip4 = {n: gp.SEED_IP[n] for n in SEEDS}
    hit_ip6 = {n: "2001:db8:ff::%x" % (i + 1) for i, n in enumerate(SEEDS)}
    target = mib * 1048576
    # hit flows spread evenly; each from its own internal host
    hit_at = {int((k + 0.5) * nflows / nhits): k for k in range(nhits)}
    w = Writer(path)
    active = []
    started = 0
    overhead = 4000.0  # running estimate of the bytes of a flow without bulk

    def new_flow(i):
        nonlocal overhead
        v6 = rng.random() < 0.10
        vlan = 100 + rng.randrange(4) if rng.random() < 0.10 else 0
        k = hit_at.get(i)
        hit = k is not None
        if hit:
            name = SEEDS[k % len(SEEDS)]
            c = "fd00:10:ff::%x" % (k + 1) if v6 else "10.10.255.%d" % (k + 1)
            s = hit_ip6[name] if v6 else hit_ip4[name]
            w.count("ngrok_flows")
        else:
            name = names[int(rng.paretovariate(1.2)) % len(names)] if rng.random() < 0.5 else rng.choice(names)
            h = rng.randrange(4000)
            c = "fd00:10::%x:%x" % (h // 250 + 1, h % 250 + 1) if v6 else "10.10.%d.%d" % (h // 250, h % 250 + 1)
            s = ip6[name] if v6 else ip4[name]
        ends = Ends(c, s, rng.randrange(32768, 61000), 443, vlan)
        dns = None
        if rng.random() < 0.35 or (hit and k % 2 == 0):
            dns = Ends(c, RESOLVER6 if v6 else RESOLVER4, rng.randrange(32768, 61000), 53, vlan)
        pq = rng.random() < 0.30 or (hit and k % 3 == 0)
        # bulk: heavy-tailed around what the byte budget still allows per remaining flow
        left = max(0.0, (target - w.bytes - 16 * w.frames) / max(1, nflows - i) - overhead)
        mean_segs = left / 2150.0  # a 1400-byte segment plus half an ACK, with headers
        segs = int(rng.expovariate(1.0 / mean_segs)) if mean_segs > 0.05 else 0
        segs = min(segs, 20000)
        w.count("flows")
        w.count("flows_v6", v6)
        w.count("flows_vlan", vlan != 0)
        w.count("pq_hellos", pq)
        return mix_flow(w, rng, pool, ends, name, dns, pq, segs, hit), [0, segs]

    CONC = 64
    while started < nflows or active:
        while len(active) < CONC and started < nflows:
            g, info = new_flow(started)
            started += 1
            active.append([g, None, info])
        j = rng.randrange(len(active))
        slot = active[j]
        try:
            frame, dt = slot[0].send(slot[1])
        except StopIteration:
            # learn the bytes of a flow beyond its bulk, to steer the byte budget
            fb, segs = slot[2]
            overhead = 0.99 * overhead + 0.01 * (fb - segs * 2150.0)
            active[j] = active[-1]
            active.pop()
            continue
        slot[1] = w.emit(frame, dt)
        slot[2][0] += len(frame) + 16
    w.close({"kind": "mix", "mib_target": mib, "seed": "tunnelwatch-bench-mix"})
    return w


# ------------------------------------------------------------------ flow stress

def gen_stress(path, nflows, nhits, gap):
    rng = random.Random("tunnelwatch-bench-stress/%d/%d/%d" % (nflows, nhits, gap))
    dsts = ["93.184.216.34", "198.51.100.10", "203.0.113.20", "192.0.2.80"]
    template = "h00000000.example.net"
    hello = gp.tls_records(gp.client_hello(rng, template))
    dig = hello.index(b"h00000000") + 1
    pre, post = hello[:dig], hello[dig + 8:]
    base = csum(pre + b"00000000" + post)
    # The 8 digits start at an even or odd payload offset; their checksum contribution is the
    # digits' bytes weighted 256 (even offset) or 1 (odd), minus that of "00000000".
    wts = [256 if (dig + k) % 2 == 0 else 1 for k in range(8)]
    zero = sum(48 * x for x in wts)
    hits = {}
    for k in range(nhits):
        at = int((k + 0.5) * nflows / nhits)
        hits[at] = k
    w = Writer(path)
    delayed = []  # (emit_at_flow_index, ends, seq, name, host)
    ngrok_hello = {}
    for i in range(nflows):
        while delayed and delayed[0][0] <= i:
            _, e, seq, name = delayed.pop(0)
            f = w.emit(e.tcp(True, seq + 1, 1, gp.TCP_ACK | gp.TCP_PSH, ngrok_hello[name]), 5)
            w.note(f, "tls_sni", name, e.c, e.s, 443, True)
            w.emit(e.tcp(True, seq + 1 + len(ngrok_hello[name]), 1, gp.TCP_FIN | gp.TCP_ACK), 5)
            w.count("snis")
        host = "10.2.%d.%d" % ((i // 50000) // 250, (i // 50000) % 250 + 1)
        e = Ends(host, dsts[i & 3], 10000 + i % 50000, 443) if i < 50000 * 250 else None
        seq = (i * 2654435761) & 0xFFFFFFFF
        k = hits.get(i)
        if k is not None:
            name = SEEDS[k % len(SEEDS)]
            if name not in ngrok_hello:
                ngrok_hello[name] = gp.tls_records(gp.client_hello(rng, name))
            he = Ends("10.3.0.%d" % (k + 1), gp.SEED_IP[name], 40000 + k, 443)
            w.emit(he.tcp(True, seq, 0, gp.TCP_SYN, opts=SYN_OPTS), 5)
            w.count("flows")
            w.count("ngrok_flows")
            if k % 2 == 1 and i + gap < nflows:
                delayed.append((i + gap, he, seq, name))
                delayed.sort(key=lambda d: d[0])
                w.count("ngrok_delayed")
            else:
                f = w.emit(he.tcp(True, seq + 1, 1, gp.TCP_ACK | gp.TCP_PSH, ngrok_hello[name]), 5)
                w.note(f, "tls_sni", name, he.c, he.s, 443, True)
                w.emit(he.tcp(True, seq + 1 + len(ngrok_hello[name]), 1, gp.TCP_FIN | gp.TCP_ACK), 5)
                w.count("snis")
        w.count("flows")
        if rng.random() < 0.30:
            w.emit(e.tcp(True, seq, 0, gp.TCP_SYN, opts=SYN_OPTS), 5)
            w.emit(e.tcp(False, 0, seq + 1, gp.TCP_RST | gp.TCP_ACK), 20)
            w.count("flows_rst")
            continue
        digits = b"%08d" % (i % 100000000)
        dsum = sum(d * x for d, x in zip(digits, wts)) - zero
        w.emit(e.tcp(True, seq, 0, gp.TCP_SYN, opts=SYN_OPTS), 5)
        f = w.emit(e.tcp(True, seq + 1, 1, gp.TCP_ACK | gp.TCP_PSH, pre + digits + post, base + dsum), 5)
        w.note(f, "tls_sni", "h%s.example.net" % digits.decode(), e.c, e.s, 443)
        w.count("snis")
        w.emit(e.tcp(True, seq + 1 + len(hello), 1, gp.TCP_FIN | gp.TCP_ACK), 5)
    for _, e, seq, name in delayed:  # (only when gap runs past the end: not with the defaults)
        f = w.emit(e.tcp(True, seq + 1, 1, gp.TCP_ACK | gp.TCP_PSH, ngrok_hello[name]), 5)
        w.note(f, "tls_sni", name, e.c, e.s, 443, True)
        w.count("snis")
    w.close({"kind": "stress", "gap_flows": gap, "seed": "tunnelwatch-bench-stress"})
    return w


# ------------------------------------------------------------------ nDPI's worst cases

def hard_tcp(w, rng, pool, ends, kind, nmsg):
    """Generator of (frame, dt_us) for a TCP flow nDPI cannot name early: an unknown binary
    protocol (kind "bin", with or without its SYN: "bin-nosyn"), a flow seen from its middle
    ("mid": server data, client ACKs), or SSH ("ssh": banners, then binary packets)."""
    cseq, sseq = rng.getrandbits(32), rng.getrandbits(32)
    if kind in ("bin", "ssh"):
        yield ends.tcp(True, cseq, 0, gp.TCP_SYN, opts=SYN_OPTS), 4
        cseq += 1
        yield ends.tcp(False, sseq, cseq, gp.TCP_SYN | gp.TCP_ACK, opts=SYN_OPTS), 6
        sseq += 1
        yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 3
    if kind == "ssh":
        for from_c, b in ((False, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"),
                          (True, b"SSH-2.0-OpenSSH_9.6\r\n")):
            yield ends.tcp(from_c, cseq if from_c else sseq, sseq if from_c else cseq,
                           gp.TCP_ACK | gp.TCP_PSH, b), 5
            if from_c:
                cseq += len(b)
            else:
                sseq += len(b)
    for i in range(nmsg):
        from_c = kind != "mid" and rng.random() < 0.5
        n = rng.randrange(60, 1400)
        if kind == "ssh":
            b = struct.pack("!IB", n - 4, rng.randrange(4, 12)) + rng.randbytes(n - 5)
        else:
            # length-prefixed messages: the high bytes of the length are zero (not a DNS
            # query's length prefix, not a TLS record, not a text line)
            b = struct.pack("!IH", n - 4, rng.randrange(1, 40)) + rng.randbytes(n - 6)
        if from_c:
            yield ends.tcp(True, cseq, sseq, gp.TCP_ACK | gp.TCP_PSH, b), 3
            cseq += len(b)
            yield ends.tcp(False, sseq, cseq, gp.TCP_ACK), 4
        else:
            yield ends.tcp(False, sseq, cseq, gp.TCP_ACK | gp.TCP_PSH, b), 3
            sseq += len(b)
            if i % 2 == 1:
                yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 4
    if kind != "mid" or rng.random() < 0.5:
        yield ends.tcp(True, cseq, sseq, gp.TCP_FIN | gp.TCP_ACK), 4
        yield ends.tcp(False, sseq, cseq + 1, gp.TCP_FIN | gp.TCP_ACK), 6


def hard_udp(rng, ends, npkts):
    """Generator of a long UDP flow on random ports: RTP-like media (version 2, a dynamic
    payload type, a 32-bit timestamp whose high half is never 0 or 1, so the header is no DNS
    query) or length-prefixed datagrams of a game or VPN-like protocol."""
    rtp = rng.random() < 0.5
    seq, ts, ssrc = rng.getrandbits(16), 0x10000000 | rng.getrandbits(28), rng.getrandbits(32)
    for i in range(npkts):
        from_c = rng.random() < 0.5
        if rtp:
            b = struct.pack("!BBHII", 0x80, 96 + (i == 0) * 128, (seq + i) & 0xFFFF,
                            (ts + 160 * i) & 0xFFFFFFFF, ssrc ^ from_c) + rng.randbytes(160)
        else:
            n = rng.randrange(40, 1200)
            b = struct.pack("!HHI", 0x4000 | n, 0x7e00 | (i & 0xFF), ssrc) + rng.randbytes(n - 8)
        yield ends.udp(from_c, b), 20


def odd_tls(w, rng, pool, ends, name, bulk):
    """TLS on an odd port: a ClientHello with its SNI after the handshake, then bulk."""
    cseq, sseq = rng.getrandbits(32), rng.getrandbits(32)
    yield ends.tcp(True, cseq, 0, gp.TCP_SYN, opts=SYN_OPTS), 4
    cseq += 1
    yield ends.tcp(False, sseq, cseq, gp.TCP_SYN | gp.TCP_ACK, opts=SYN_OPTS), 6
    sseq += 1
    yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 3
    hello = gp.tls_records(gp.client_hello(rng, name))
    f = yield ends.tcp(True, cseq, sseq, gp.TCP_ACK | gp.TCP_PSH, hello), 2
    cseq += len(hello)
    w.note(f, "tls_sni", name, ends.c, ends.s, ends.sport)
    w.count("snis")
    flight = short_flight(rng)
    yield ends.tcp(False, sseq, cseq, gp.TCP_ACK | gp.TCP_PSH, flight), 5
    sseq += len(flight)
    for i in range(bulk):
        b, s = pool.blocks[rng.randrange(len(pool.blocks))]
        yield ends.tcp(False, sseq, cseq, gp.TCP_ACK, b, s), 2
        sseq += len(b)
        if i % 2 == 1:
            yield ends.tcp(True, cseq, sseq, gp.TCP_ACK), 2
    yield ends.tcp(True, cseq, sseq, gp.TCP_FIN | gp.TCP_ACK), 4
    yield ends.tcp(False, sseq, cseq + 1, gp.TCP_FIN | gp.TCP_ACK), 6


def gen_hard(path, mib, nflows, nhits):
    rng = random.Random("tunnelwatch-bench-ndpi-hard/%d/%d/%d" % (mib, nflows, nhits))
    pool = Pool(rng)
    names = benign_names(rng, 5000)
    ip4 = {n: "198.18.%d.%d" % (i // 250, 1 + i % 250) for i, n in enumerate(names)}
    hit_ip4 = {n: gp.SEED_IP[n] for n in SEEDS}
    hit_at = {int((k + 0.5) * nflows / nhits): k for k in range(nhits)}
    target = mib * 1048576
    w = Writer(path)
    active, started = [], 0

    def new_flow(i):
        k = hit_at.get(i)
        v6 = rng.random() < 0.10
        vlan = 100 + rng.randrange(4) if rng.random() < 0.10 else 0
        h = rng.randrange(4000)
        c = "fd00:10::%x:%x" % (h // 250 + 1, h % 250 + 1) if v6 else "10.10.%d.%d" % (h // 250, h % 250 + 1)
        srv = "2001:db8:%x::%x" % (rng.randrange(64), rng.randrange(1, 250)) if v6 else \
            "203.0.%d.%d" % (rng.randrange(113, 114), rng.randrange(1, 250))
        left = max(0.0, (target - w.bytes - 16 * w.frames) / max(1, nflows - i))
        r = rng.random()
        w.count("flows")
        if k is not None or r < 0.35:
            hit = k is not None
            name = SEEDS[k % len(SEEDS)] if hit else rng.choice(names)
            if hit:
                c = "10.10.255.%d" % (k + 1)
                v6 = False
                w.count("ngrok_flows")
            s = hit_ip4[name] if hit else (ip4[name] if not v6 else srv)
            ends = Ends(c, s, rng.randrange(32768, 61000), 443, vlan)
            dns = None
            if rng.random() < 0.33 or (hit and k % 2 == 0):
                dns = Ends(c, RESOLVER6 if v6 else RESOLVER4, rng.randrange(32768, 61000), 53, vlan)
            w.count("flows_tls443")
            segs = min(int(rng.expovariate(2150.0 / max(1.0, left - 4000))), 5000)
            return mix_flow(w, rng, pool, ends, name, dns, rng.random() < 0.30, segs, hit)
        port = rng.randrange(1024, 65000)
        ends = Ends(c, srv, rng.randrange(32768, 61000), port, vlan)
        if r < 0.45:
            w.count("flows_tls_odd_port")
            return odd_tls(w, rng, pool, ends, rng.choice(names), min(int(rng.expovariate(2150.0 / max(1.0, left))), 3000))
        nmsg = max(4, min(int(rng.expovariate(900.0 / max(1.0, left))), 2000))
        if r < 0.65:
            kind = "bin-nosyn" if rng.random() < 0.25 else "bin"
            w.count("flows_tcp_unknown")
            return hard_tcp(w, rng, pool, ends, kind, nmsg)
        if r < 0.75:
            w.count("flows_tcp_midstream")
            return hard_tcp(w, rng, pool, ends, "mid", nmsg)
        if r < 0.85:
            w.count("flows_ssh")
            return hard_tcp(w, rng, pool, ends, "ssh", nmsg)
        w.count("flows_udp_long")
        return hard_udp(rng, ends, max(40, min(400, int(rng.expovariate(500.0 / max(1.0, left))))))

    CONC = 64
    while started < nflows or active:
        while len(active) < CONC and started < nflows:
            active.append([new_flow(started), None])
            started += 1
        j = rng.randrange(len(active))
        slot = active[j]
        try:
            frame, dt = slot[0].send(slot[1])
        except StopIteration:
            active[j] = active[-1]
            active.pop()
            continue
        slot[1] = w.emit(frame, dt)
    w.close({"kind": "ndpi-hard", "mib_target": mib, "seed": "tunnelwatch-bench-ndpi-hard"})
    return w


# ------------------------------------------------------------------ checks against the truth

def read_tsv(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            p = line.rstrip("\n").split("\t")
            rows.append((int(p[0]), p[1], p[2], p[3], p[4], int(p[5])))
    return rows


def check(cap, names=None, alerts=None):
    """Compares tunnelwatch --names output and/or alert records with the truth. Prints one
    line per check ("names ok 123456 rows" or what differs) and returns the number of failures."""
    import json
    bad = 0
    if names:
        truth = sorted(read_tsv(cap + ".truth.tsv"))
        got = sorted(read_tsv(names))
        if truth == got:
            kinds = {}
            for r in truth:
                kinds[r[1]] = kinds.get(r[1], 0) + 1
            print("names ok: %d rows exact (%s)" % (len(truth), ", ".join(
                "%s %d" % kv for kv in sorted(kinds.items()))))
        else:
            ts, gs = set(truth), set(got)
            miss, extra = sorted(ts - gs), sorted(gs - ts)
            print("names FAIL: %d truth rows, %d reported, %d missing, %d extra" % (
                len(truth), len(got), len(miss), len(extra)))
            for r in miss[:5]:
                print("  missing: " + "\t".join(map(str, r)))
            for r in extra[:5]:
                print("  extra:   " + "\t".join(map(str, r)))
            bad += 1
    if alerts:
        first = {}
        for r in read_tsv(cap + ".hits.tsv"):
            k = (r[3], r[2])
            first[k] = min(first.get(k, r[0]), r[0])
        raised = {}
        kinds = {}
        with open(alerts) as f:
            for line in f:
                j = json.loads(line)
                if j.get("event.kind") != "alert":
                    continue
                k = (j.get("source.ip"), j.get("tunnelwatch.evidence.name"))
                raised.setdefault(k, []).append(j.get("tunnelwatch.evidence.frame"))
                ek = j.get("tunnelwatch.evidence.kind")
                kinds[ek] = kinds.get(ek, 0) + 1
        miss = sorted(set(first) - set(raised))
        extra = sorted(set(raised) - set(first))
        dup = sorted(k for k, v in raised.items() if len(v) > 1)
        # The sensor may raise before the truth's first row: a connection to an address that an
        # earlier DNS answer (of any host) bound to the name is a hit at its first packet.
        late = sorted(k for k, v in raised.items() if k in first and min(v) > first[k])
        if miss or extra or dup or late:
            print("alerts FAIL: %d expected incidents, %d raised; missing %s extra %s repeated %s "
                  "late %s" % (len(first), len(raised), miss[:5], extra[:5], dup[:5], late[:5]))
            bad += 1
        else:
            print("alerts ok: %d ngrok incidents, each raised once, at or before its truth frame "
                  "(%s)" % (len(first), ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=("mix", "stress", "ndpi-hard", "check"))
    ap.add_argument("out")
    ap.add_argument("--mib", type=int, default=1000, help="mix: target capture size (MiB)")
    ap.add_argument("--flows", type=int, help="TCP flows (mix: 200 per MiB; ndpi-hard: 50 per MiB; stress: 2200000)")
    ap.add_argument("--hits", type=int, default=14, help="ngrok flows (each its own host)")
    ap.add_argument("--gap", type=int, default=320000, help="stress: flows between a delayed "
                    "ngrok SYN and its hello")
    ap.add_argument("--names", help="check: tunnelwatch --names output")
    ap.add_argument("--alerts", help="check: tunnelwatch --alerts output")
    a = ap.parse_args()
    if a.kind == "check":
        return 1 if check(a.out, a.names, a.alerts) else 0
    t = time.monotonic()
    if a.kind == "mix":
        w = gen_mix(a.out, a.mib, a.flows or a.mib * 200, a.hits)
    elif a.kind == "ndpi-hard":
        w = gen_hard(a.out, a.mib, a.flows or a.mib * 50, a.hits)
    else:
        w = gen_stress(a.out, a.flows or 2200000, a.hits, a.gap)
    print("%s: %d frames, %.1f MiB, %.1f s" % (a.out, w.frames, (w.bytes + 16 * w.frames + 24) / 1048576, time.monotonic() - t),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
