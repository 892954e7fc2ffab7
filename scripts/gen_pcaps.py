#!/usr/bin/python3
"""gen_pcaps.py: the deterministic generator of tunnelwatch's own test captures.

    /usr/bin/python3 scripts/gen_pcaps.py [--out DIR]      all captures + truth (default pcaps/)
    /usr/bin/python3 scripts/gen_pcaps.py --flows N OUT    N short TLS flows, the last one to ngrok

Every frame is assembled byte by byte here (Ethernet and the other link layers, IPv4/IPv6 with
options, extension headers and fragments, TCP, UDP, DNS, TLS 1.3 ClientHello, HTTP/1.1, QUIC v1/v2
Initial packets encrypted per RFC 9001 / RFC 9369), so that every field is under control and the
output is byte-identical from run to run: seeds come from the capture name (sha256, never hash()),
timestamps start at 2024-03-01T12:00:00Z and advance by fixed steps, nothing reads the wall clock,
and the pcap/pcapng writers below emit no timestamps or host strings of their own.

Each capture comes with CAPTURE.truth.tsv written from the generator's own knowledge, in the
shape of `tunnelwatch --names`: frame, kind, name, src_ip, dst_ip, dst_port, where frame is the
1-based frame holding the last byte the name needed. MANIFEST.tsv lists every capture, its link
type, frame count, whether tshark 4.0 sees all of its names (tests/e2e/test_pcaps_regen.sh then
checks tshark's view against the truth) and what it exercises.

Needs python3-cryptography (Debian package) for the QUIC captures (AES-128-GCM, AES-ECB).
"""
import argparse
import hashlib
import hmac
import ipaddress
import os
import random
import struct
import sys
import time

T0 = 1709294400  # 2024-03-01T12:00:00Z
NS = 1_000_000_000

LINKTYPE_NULL = 0
LINKTYPE_EN10MB = 1
LINKTYPE_PPP = 9
LINKTYPE_C_HDLC = 104
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276

RESOLVER = "10.1.0.53"
SEEDS = [f"tunnel.{r}.ngrok.com" for r in ("us", "eu", "ap", "au", "sa", "jp", "in")]
# Plausible public edge addresses (tunnel.us and tunnel.eu as given in the test plan).
SEED_IP = {
    "tunnel.us.ngrok.com": "3.134.39.220",
    "tunnel.eu.ngrok.com": "3.125.209.94",
    "tunnel.ap.ngrok.com": "13.251.42.7",
    "tunnel.au.ngrok.com": "13.54.93.152",
    "tunnel.sa.ngrok.com": "18.229.84.41",
    "tunnel.jp.ngrok.com": "52.196.202.12",
    "tunnel.in.ngrok.com": "13.232.102.85",
}
BENIGN = [
    ("www.example.com", "93.184.216.34"),
    ("www.wikipedia.org", "198.51.100.10"),
    ("github.com", "198.51.100.11"),
    ("api.github.com", "198.51.100.12"),
    ("deb.debian.org", "198.51.100.13"),
    ("security.debian.org", "198.51.100.14"),
    ("www.google.com", "203.0.113.20"),
    ("fonts.gstatic.com", "203.0.113.21"),
    ("cdn.jsdelivr.net", "203.0.113.22"),
    ("login.microsoftonline.com", "203.0.113.23"),
    ("update.mozilla.org", "203.0.113.24"),
    ("ntp.ubuntu.com", "203.0.113.25"),
    ("www.cloudflare.com", "192.0.2.80"),
    ("docs.python.org", "192.0.2.81"),
]


def seed_of(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


# ---------------------------------------------------------------- checksums, IP, TCP, UDP

def csum_add(data, s=0):
    if len(data) % 2:
        data += b"\0"
    return s + sum(struct.unpack("!%dH" % (len(data) // 2), data))


def csum_fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def is_v6(addr):
    return ":" in addr


def pseudo_header(src, dst, proto, length):
    if is_v6(src):
        return (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
                + struct.pack("!IxxxB", length, proto))
    return (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
            + struct.pack("!xBH", proto, length))


def udp_seg(src, dst, sport, dport, payload, zero_csum=False):
    hdr = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    if zero_csum and not is_v6(src):
        return hdr + payload
    c = csum_fold(csum_add(hdr + payload, csum_add(pseudo_header(src, dst, 17, 8 + len(payload)))))
    return hdr[:6] + struct.pack("!H", c or 0xFFFF) + payload


TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def tcp_seg(src, dst, sport, dport, seq, ack, flags, payload=b"", win=64240, opts=b""):
    doff = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      doff << 4, flags, win, 0, 0) + opts
    seg = hdr + payload
    c = csum_fold(csum_add(seg, csum_add(pseudo_header(src, dst, 6, len(seg)))))
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ipv4_hdr(src, dst, proto, plen, ident, ttl=64, df=True, options=b"", frag=0, mf=False):
    ihl = 5 + len(options) // 4
    fl = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + plen, ident, fl, ttl, proto, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + options
    c = csum_fold(csum_add(hdr))
    return hdr[:10] + struct.pack("!H", c) + hdr[12:]


def ipv6_hdr(src, dst, nh, plen, hlim=64, flow=0):
    return (struct.pack("!IHBB", 0x60000000 | flow, plen, nh, hlim)
            + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed)


def ipv6_ext_chain(exts, final_nh):
    """exts: list of (type, body-without-next-header-byte). Returns (first nh, bytes)."""
    out = b""
    types = [t for t, _ in exts] + [final_nh]
    for i, (_, body) in enumerate(exts):
        out += bytes([types[i + 1]]) + body
    return types[0], out


# ---------------------------------------------------------------- link layers

def mac_of(ip, router=False):
    if router:
        return bytes.fromhex("00005e0001fe")
    return b"\x02\x42" + hashlib.sha256(ip.encode()).digest()[:4]


def internal(ip):
    if is_v6(ip):
        return ip.startswith("fd00:")
    return ip.startswith("10.")


def eth_hdr(src_ip, dst_ip, ethertype, vlans=()):
    dmac = mac_of(dst_ip, router=not internal(dst_ip))
    smac = mac_of(src_ip, router=not internal(src_ip))
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return dmac + smac + tags + struct.pack("!H", ethertype)


def l3_ethertype(l3):
    return 0x86DD if l3[0] >> 4 == 6 else 0x0800


def wrap_eth(l3, src, dst):
    return eth_hdr(src, dst, l3_ethertype(l3)) + l3


def wrap_vlan(l3, src, dst):
    return eth_hdr(src, dst, l3_ethertype(l3), vlans=[(0x8100, 0x0064)]) + l3


def wrap_qinq(l3, src, dst):
    return eth_hdr(src, dst, l3_ethertype(l3), vlans=[(0x88A8, 0x00C8), (0x8100, 0x0064)]) + l3


def wrap_mpls(l3, src, dst):
    # RFC 3032 label stack entries: label(20) TC(3) S(1) TTL(8); two labels, S set on the second.
    stack = struct.pack("!II", (16004 << 12) | 64, (299 << 12) | (1 << 8) | 63)
    return eth_hdr(src, dst, 0x8847) + stack + l3


def wrap_raw(l3, src, dst):
    return l3


def wrap_null(l3, src, dst):
    return struct.pack("<I", 30 if l3[0] >> 4 == 6 else 2) + l3  # host order (little-endian)


def wrap_loop(l3, src, dst):
    return struct.pack("!I", 30 if l3[0] >> 4 == 6 else 2) + l3  # network order


def wrap_sll(l3, src, dst):
    pkttype = 4 if internal(src) else 0  # outgoing / to us
    return struct.pack("!HHH", pkttype, 1, 6) + mac_of(src) + b"\0\0" + struct.pack("!H", l3_ethertype(l3)) + l3


def wrap_sll2(l3, src, dst):
    pkttype = 4 if internal(src) else 0
    return (struct.pack("!HHIHBB", l3_ethertype(l3), 0, 2, 1, pkttype, 6) + mac_of(src) + b"\0\0") + l3


def wrap_ppp(l3, src, dst):
    # RFC 1661/1662: IPv4 in HDLC-like framing (ff 03, protocol 0x0021); IPv6 with address/control
    # and protocol field compressed (ACFC + PFC: the single byte 0x57), as a link may negotiate.
    if l3[0] >> 4 == 6:
        return b"\x57" + l3
    return b"\xff\x03\x00\x21" + l3


def wrap_chdlc(l3, src, dst):
    # Cisco HDLC: address 0x0f (unicast), control 0, EtherType.
    return struct.pack("!BBH", 0x0F, 0, l3_ethertype(l3)) + l3


def wrap_radiotap(l3, src, dst):
    # Radiotap (TSFT, flags 0x10 = FCS at end, rate 24 Mb/s, antenna signal) + an 802.11 data frame:
    # a client sends to the AP (ToDS: BSSID, SA, DA), the AP delivers (FromDS: DA, BSSID, SA).
    # IPv6 rides in QoS data frames (QoS control, TID 5), IPv4 in plain data frames. LLC/SNAP, then
    # the packet, then the CRC-32 FCS.
    import zlib
    fields = struct.pack("<QBBb", 0, 0x10, 48, -42)  # present bits 0, 1, 2, 5
    rt = struct.pack("<BBHI", 0, 0, 8 + len(fields), 0x00000027) + fields
    bssid = bytes.fromhex("02000a0100fe")
    qos = l3[0] >> 4 == 6
    fc0 = 0x88 if qos else 0x08
    if internal(src):
        fc1, a1, a2, a3 = 0x01, bssid, mac_of(src), mac_of(dst, router=not internal(dst))
    else:
        fc1, a1, a2, a3 = 0x02, mac_of(dst), bssid, mac_of(src, router=True)
    hdr = struct.pack("<BBH", fc0, fc1, 44) + a1 + a2 + a3 + struct.pack("<H", 0)
    if qos:
        hdr += struct.pack("<H", 5)
    frame = hdr + b"\xaa\xaa\x03\0\0\0" + struct.pack("!H", l3_ethertype(l3)) + l3
    return rt + frame + struct.pack("<I", zlib.crc32(frame))


class Outer:
    """Tunnel encapsulations: the outer headers get their own IP ident counter."""

    def __init__(self, kind):
        self.kind = kind
        self.ident = 0x2000
        self.seq = 0

    def __call__(self, l3, src, dst):
        self.ident += 1
        self.seq += 1
        if self.kind == "gre":
            osrc, odst = "192.0.2.1", "198.51.100.1"
            body = struct.pack("!HH", 0, l3_ethertype(l3)) + l3  # RFC 2784, no options
            return eth_hdr("10.1.0.1", odst, 0x0800) + ipv4_hdr(osrc, odst, 47, len(body), self.ident) + body
        if self.kind in ("erspan2", "erspan3"):
            osrc, odst = "10.255.0.1", "10.255.0.2"
            inner = wrap_eth(l3, src, dst)
            if self.kind == "erspan2":
                # ERSPAN type II: GRE with S bit, proto 0x88be; ver=1, VLAN 0, COS 0, En 0, T 0,
                # session 42, index 0.
                gre = struct.pack("!HHI", 0x1000, 0x88BE, self.seq)
                hdr = struct.pack("!HHI", (1 << 12) | 0, 42, 0)
            else:
                # ERSPAN type III: proto 0x22eb; ver=2, VLAN 0, COS 0, BSO 0, T 0, session 43,
                # 32-bit timestamp, SGT 0, P/FT/HW ID/D/Gra/O all zero (no optional subheader).
                gre = struct.pack("!HHI", 0x1000, 0x22EB, self.seq)
                hdr = struct.pack("!HHIHH", (2 << 12) | 0, 43, self.seq * 1000, 0, 0)
            body = gre + hdr + inner
            return (eth_hdr("10.1.0.1", odst, 0x0800, ) + ipv4_hdr(osrc, odst, 47, len(body), self.ident)
                    + body)
        if self.kind == "vxlan":
            osrc, odst = "10.255.1.1", "10.255.1.2"
            inner = wrap_eth(l3, src, dst)
            vx = struct.pack("!II", 0x08000000, 5001 << 8) + inner  # RFC 7348: I flag, VNI 5001
            u = udp_seg(osrc, odst, 49152 + (self.seq % 4096), 4789, vx, zero_csum=True)
            return eth_hdr("10.1.0.1", odst, 0x0800) + ipv4_hdr(osrc, odst, 17, len(u), self.ident) + u
        if self.kind == "gre_udp":
            # RFC 8086 GRE-in-UDP: UDP to port 4754, source port an entropy value from the
            # ephemeral range, then a plain RFC 2784 GRE header.
            osrc, odst = "10.255.2.1", "10.255.2.2"
            body = struct.pack("!HH", 0, l3_ethertype(l3)) + l3
            u = udp_seg(osrc, odst, 49152 + (self.seq * 7919) % 16384, 4754, body)
            return eth_hdr("10.1.0.1", odst, 0x0800) + ipv4_hdr(osrc, odst, 17, len(u), self.ident) + u
        raise ValueError(self.kind)


# ---------------------------------------------------------------- capture model

class Capture:
    def __init__(self, name, wrap=wrap_eth, linktypes=(LINKTYPE_EN10MB,), snaplen=262144, nano=False,
                 fmt="pcap", tshark=True, desc=""):
        self.name = name
        self.wraps = [wrap] if not isinstance(wrap, list) else wrap
        self.linktypes = list(linktypes)
        self.snaplen = snaplen
        self.nano = nano
        self.fmt = fmt
        self.tshark = tshark
        self.desc = desc
        self.frames = []  # (ts_ns, iface, bytes)
        self.truth = []
        self.t = T0 * NS
        self.idents = {}
        self.rng = random.Random(seed_of(name))
        self.iface = 0
        self.extra_files = {}
        self.cut_bytes = None

    def wait(self, seconds):
        self.t += int(round(seconds * NS))

    def add(self, frame, dt_us=150):
        self.t += dt_us * 1000
        self.frames.append((self.t, self.iface, frame))
        return len(self.frames)

    def ident(self, src):
        v = self.idents.get(src, (seed_of(src) & 0x7FFF) + 1)
        self.idents[src] = (v + 1) & 0xFFFF
        return v

    def ip(self, src, dst, proto, l4, dt_us=150, ttl=64, options=b"", exts=()):
        if is_v6(src):
            nh, chain = ipv6_ext_chain(list(exts), proto)
            l3 = ipv6_hdr(src, dst, nh, len(chain) + len(l4), hlim=ttl) + chain + l4
        else:
            l3 = ipv4_hdr(src, dst, proto, len(l4), self.ident(src), ttl=ttl, options=options) + l4
        return self.add(self.wraps[self.iface](l3, src, dst), dt_us)

    def udp(self, src, dst, sport, dport, payload, dt_us=150, **kw):
        return self.ip(src, dst, 17, udp_seg(src, dst, sport, dport, payload), dt_us, **kw)

    def note(self, frame, kind, name, src, dst, dport):
        self.truth.append((frame, kind, name, str(ipaddress.ip_address(src)),
                           str(ipaddress.ip_address(dst)), dport))


# ---------------------------------------------------------------- DNS (RFC 1035)

def dns_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_query(qid, names, qtype=1, edns=False):
    if isinstance(names, str):
        names = [names]
    msg = struct.pack("!HHHHHH", qid, 0x0100, len(names), 0, 0, 1 if edns else 0)
    for n in names:
        msg += dns_name(n) + struct.pack("!HH", qtype, 1)
    if edns:
        msg += b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return msg


def dns_response(qid, name, qtype, answers, ttl=300, edns=False, cname=None):
    """answers: list of IP strings (A or AAAA by qtype); optional CNAME chain head."""
    an = []
    owner = b"\xc0\x0c"
    if cname:
        an.append(owner + struct.pack("!HHIH", 5, 1, ttl, len(dns_name(cname))) + dns_name(cname))
        owner = dns_name(cname)
    for ip in answers:
        rd = ipaddress.ip_address(ip).packed
        an.append(owner + struct.pack("!HHIH", 28 if len(rd) == 16 else 1, 1, ttl, len(rd)) + rd)
    msg = struct.pack("!HHHHHH", qid, 0x8180, 1, len(an), 0, 1 if edns else 0)
    msg += dns_name(name) + struct.pack("!HH", qtype, 1) + b"".join(an)
    if edns:
        msg += b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)
    return msg


def dns_exchange(cap, client, server, name, answers, ttl=300, qtype=None, sport=None, cname=None,
                 rtt_us=12000):
    rng = cap.rng
    if qtype is None:
        qtype = 28 if answers and is_v6(answers[0]) else 1
    qid = rng.getrandbits(16)
    sport = sport or rng.randrange(32768, 61000)
    f = cap.udp(client, server, sport, 53, dns_query(qid, name, qtype, edns=True))
    cap.note(f, "dns_query", name, client, server, 53)
    cap.udp(server, client, 53, sport, dns_response(qid, name, qtype, answers, ttl, edns=True, cname=cname),
            dt_us=rtt_us)
    return f


# ---------------------------------------------------------------- TLS 1.3 ClientHello (RFC 8446)

GREASE = [0x0A0A + 0x1010 * i for i in range(16)]


def ext(t, body):
    return struct.pack("!HH", t, len(body)) + body


def u8v(b):
    return bytes([len(b)]) + b


def u16v(b):
    return struct.pack("!H", len(b)) + b


def varint(v):
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack("!H", 0x4000 | v)
    if v < 0x40000000:
        return struct.pack("!I", 0x80000000 | v)
    return struct.pack("!Q", 0xC000000000000000 | v)


def client_hello(rng, sni, pq=False, quic=None, alpn=(b"h2", b"http/1.1"), ech_grease=True, extra_exts=()):
    """A Chrome-like ClientHello handshake message (type 1 + length + body).

    quic: None for TLS over TCP, else a dict of transport parameters (bytes by id).
    extra_exts: whole extensions (type, length, body) added before the shuffle (a cookie echoed
    after a HelloRetryRequest); none by default, which leaves every older capture as it was."""
    g = rng.sample(GREASE, 4)
    ciphers = [g[0], 0x1301, 0x1302, 0x1303]
    if quic is None:
        ciphers += [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C, 0x009D,
                    0x002F, 0x0035]
    groups = [g[1]] + ([0x11EC] if pq else []) + [0x001D, 0x0017, 0x0018]
    shares = struct.pack("!HH", g[1], 1) + b"\0"
    if pq:
        shares += struct.pack("!HH", 0x11EC, 1216) + rng.randbytes(1216)  # ML-KEM-768 ek + X25519
    shares += struct.pack("!HH", 0x001D, 32) + rng.randbytes(32)
    exts = []
    if sni is not None:
        exts.append(ext(0x0000, u16v(b"\0" + u16v(sni.encode()))))
    exts += [
        ext(0x0017, b""),
        ext(0x000A, u16v(b"".join(struct.pack("!H", x) for x in groups))),
        ext(0x0010, u16v(b"".join(u8v(a) for a in alpn))),
        ext(0x0005, b"\x01\0\0\0\0"),
        ext(0x000D, u16v(bytes.fromhex("04030804040105030805050108060601"))),
        ext(0x0012, b""),
        ext(0x0033, u16v(shares)),
        ext(0x002D, b"\x01\x01"),
        ext(0x001B, b"\x02\x00\x02"),
        ext(0x4469, u16v(u8v(alpn[0]))),  # ALPS (application_settings)
    ]
    if quic is None:
        exts += [ext(0xFF01, b"\0"), ext(0x000B, b"\x01\x00"), ext(0x0023, b""),
                 ext(0x002B, u8v(struct.pack("!HHH", g[2], 0x0304, 0x0303)))]
    else:
        exts += [ext(0x002B, u8v(struct.pack("!H", 0x0304))),
                 ext(0x0039, b"".join(varint(k) + varint(len(v)) + v for k, v in quic))]
    exts += list(extra_exts)
    if ech_grease:
        exts.append(ext(0xFE0D, b"\x00\x00\x01\x00\x01" + bytes([rng.getrandbits(8)]) + u16v(rng.randbytes(32))
                        + u16v(rng.randbytes(rng.choice([144, 176, 208, 240])))))
    rng.shuffle(exts)  # Chrome permutes extensions; GREASE stays first and last
    exts = [ext(g[2], b"")] + exts + [ext(g[3], b"\0")]
    body = (struct.pack("!H", 0x0303) + rng.randbytes(32)
            + u8v(b"" if quic is not None else rng.randbytes(32))
            + u16v(b"".join(struct.pack("!H", c) for c in ciphers)) + b"\x01\x00"
            + u16v(b"".join(exts)))
    return b"\x01" + struct.pack("!I", len(body))[1:] + body


def tls_records(hs, ctype=0x16, sizes=None, version=0x0301):
    """Wrap bytes in TLS records; sizes splits the handshake over several records."""
    out, off = b"", 0
    sizes = list(sizes or []) + [len(hs)]
    for s in sizes:
        chunk = hs[off:off + s]
        if not chunk:
            break
        out += struct.pack("!BHH", ctype, version, len(chunk)) + chunk
        off += len(chunk)
    return out


def server_flight(rng):
    sh_body = (struct.pack("!H", 0x0303) + rng.randbytes(32) + u8v(rng.randbytes(32)) + b"\x13\x01\x00"
               + u16v(ext(0x002B, b"\x03\x04") + ext(0x0033, struct.pack("!HH", 0x1D, 32) + rng.randbytes(32))))
    sh = b"\x02" + struct.pack("!I", len(sh_body))[1:] + sh_body
    out = tls_records(sh, version=0x0303) + b"\x14\x03\x03\x00\x01\x01"
    for n in (rng.randrange(2400, 3400), 281, 69):  # encrypted extensions+certificate, verify, finished
        out += struct.pack("!BHH", 0x17, 0x0303, n) + rng.randbytes(n)
    return out


def app_data(rng, total, rec=16401):
    out = b""
    while len(out) < total:
        n = min(rec, total - len(out) - 5)
        if n <= 0:
            break
        out += struct.pack("!BHH", 0x17, 0x0303, n) + rng.randbytes(n)
    return out


# ---------------------------------------------------------------- TCP flows

class TcpFlow:
    def __init__(self, cap, c, s, cport, sport, mss=1460):
        self.cap, self.c, self.s, self.cport, self.sport, self.mss = cap, c, s, cport, sport, mss
        self.cseq = cap.rng.getrandbits(32)
        self.sseq = cap.rng.getrandbits(32)
        self.frames_c = self.frames_s = self.bytes_c = self.bytes_s = 0
        self.payload_c = self.payload_s = 0

    def seg(self, from_c, flags, payload=b"", seq=None, opts=b"", dt_us=150):
        cap = self.cap
        if from_c:
            src, dst, sp, dp, sq, ak = self.c, self.s, self.cport, self.sport, self.cseq, self.sseq
        else:
            src, dst, sp, dp, sq, ak = self.s, self.c, self.sport, self.cport, self.sseq, self.cseq
        if seq is not None:
            sq = seq
        if not flags & TCP_ACK:
            ak = 0
        f = cap.ip(src, dst, 6, tcp_seg(src, dst, sp, dp, sq, ak, flags, payload,
                                         win=64240 if from_c else 65160, opts=opts), dt_us)
        n = len(cap.frames[-1][2])
        if from_c:
            self.frames_c += 1
            self.bytes_c += n
            self.payload_c += len(payload)
        else:
            self.frames_s += 1
            self.bytes_s += n
            self.payload_s += len(payload)
        return f

    def open(self, rtt_us=20000):
        syn_opts = struct.pack("!BBH", 2, 4, self.mss) + b"\x01\x01\x04\x02" + b"\x01\x03\x03\x07"
        self.seg(True, TCP_SYN, opts=syn_opts)
        self.cseq += 1
        self.seg(False, TCP_SYN | TCP_ACK, opts=syn_opts, dt_us=rtt_us)
        self.sseq += 1
        self.seg(True, TCP_ACK, dt_us=rtt_us // 20)

    def send(self, from_c, data, sizes=None, ack_every=2, dt_us=120):
        """Send data in MSS-sized (or given) segments; the peer ACKs every ack_every segments."""
        chunks, off = [], 0
        for s in (sizes or []):
            chunks.append(data[off:off + s])
            off += s
        while off < len(data):
            chunks.append(data[off:off + self.mss])
            off += self.mss
        frames = []
        for i, ch in enumerate(chunks):
            last = i == len(chunks) - 1
            frames.append(self.seg(from_c, TCP_ACK | (TCP_PSH if last else 0), ch, dt_us=dt_us))
            if from_c:
                self.cseq += len(ch)
            else:
                self.sseq += len(ch)
            if ack_every and ((i + 1) % ack_every == 0 or last):
                self.seg(not from_c, TCP_ACK, dt_us=40)
        return frames

    def close(self, from_c=True):
        self.seg(from_c, TCP_FIN | TCP_ACK, dt_us=2000)
        if from_c:
            self.cseq += 1
        else:
            self.sseq += 1
        self.seg(not from_c, TCP_FIN | TCP_ACK, dt_us=15000)
        if from_c:
            self.sseq += 1
        else:
            self.cseq += 1
        self.seg(from_c, TCP_ACK, dt_us=500)


def tls_session(cap, client, server, sni, pq=False, port=443, c2s=600, s2c=2000, hello=None, sizes=None,
                note=True, close=True):
    rng = cap.rng
    fl = TcpFlow(cap, client, server, rng.randrange(40000, 60999), port)
    fl.open()
    hello = hello if hello is not None else tls_records(client_hello(rng, sni, pq=pq))
    frames = fl.send(True, hello, sizes=sizes, ack_every=0)
    if note and sni is not None:
        cap.note(frames[-1], "tls_sni", sni, client, server, port)
    fl.seg(False, TCP_ACK, dt_us=20000)
    fl.send(False, server_flight(rng), dt_us=60)
    fl.send(True, b"\x14\x03\x03\x00\x01\x01" + app_data(rng, 74) + app_data(rng, c2s))
    if s2c:
        fl.send(False, app_data(rng, s2c))
    if close:
        fl.close()
    return fl, frames[-1]


def http_session(cap, client, server, host, path="/", port=80, body=512):
    rng = cap.rng
    fl = TcpFlow(cap, client, server, rng.randrange(40000, 60999), port)
    fl.open()
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n").encode()
    f = fl.send(True, req, ack_every=0)[-1]
    cap.note(f, "http_host", host, client, server, port)
    fl.seg(False, TCP_ACK, dt_us=20000)
    b = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz \n") for _ in range(body))
    resp = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(b)}\r\n\r\n").encode() + b
    fl.send(False, resp)
    fl.close()
    return fl, f


def visit(cap, client, name, ip, proto="tls", pq=False):
    dns_exchange(cap, client, RESOLVER if not is_v6(client) else "fd00:10:1::53", name, [ip])
    cap.wait(0.002)
    if proto == "tls":
        tls_session(cap, client, ip, name, pq=pq)
    elif proto == "http":
        http_session(cap, client, ip, name)
    elif proto == "quic":
        quic_session(cap, client, ip, name)
    cap.wait(0.05)


# ---------------------------------------------------------------- QUIC Initial (RFC 9000/9001/9369)

QUIC_V1, QUIC_V2 = 0x00000001, 0x6B3343CF
QUIC_DRAFT29 = 0xFF00001D
QUIC_SALT = {QUIC_V1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
             QUIC_V2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
             QUIC_DRAFT29: bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")}


def hkdf_expand_label(secret, label, length):
    full = b"tls13 " + label
    info = struct.pack("!H", length) + u8v(full) + b"\0"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def quic_client_keys(version, dcid):
    initial = hmac.new(QUIC_SALT[version], dcid, hashlib.sha256).digest()
    secret = hkdf_expand_label(initial, b"client in", 32)
    p = b"quicv2 " if version == QUIC_V2 else b"quic "
    return (hkdf_expand_label(secret, p + b"key", 16), hkdf_expand_label(secret, p + b"iv", 12),
            hkdf_expand_label(secret, p + b"hp", 16))


def _aes():
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        sys.exit("gen_pcaps.py: QUIC captures need python3-cryptography (apt-get install python3-cryptography)")
    return Cipher, algorithms, modes, AESGCM


def quic_initial(version, dcid, scid, pn, frames, min_size=1250, salt_version=None):
    """One client Initial packet, padded so that the UDP payload is at least min_size bytes.
    salt_version: the version whose salt and labels protect a packet whose header says version
    (a reserved 0x?a?a?a?a version, which tshark reads with the draft-29 salt)."""
    Cipher, algorithms, modes, AESGCM = _aes()
    key, iv, hp = quic_client_keys(salt_version or version, dcid)
    pn_len = 2
    ptype = 1 if version == QUIC_V2 else 0  # RFC 9369 section 3.2: v2 Initial is type 0b01
    first = 0xC0 | (ptype << 4) | (pn_len - 1)
    head = bytes([first]) + struct.pack("!I", version) + u8v(dcid) + u8v(scid) + varint(0)
    pad = max(0, min_size - (len(head) + 2 + pn_len + len(frames) + 16))
    payload = frames + b"\0" * pad
    hdr = head + struct.pack("!H", 0x4000 | (pn_len + len(payload) + 16)) + pn.to_bytes(pn_len, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ct = AESGCM(key).encrypt(nonce, payload, hdr)
    pn_off = len(hdr) - pn_len
    sample = ct[4 - pn_len:4 - pn_len + 16]
    enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = enc.update(sample) + enc.finalize()
    out = bytearray(hdr)
    out[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        out[pn_off + i] ^= mask[1 + i]
    return bytes(out) + ct


def quic_self_test():
    # RFC 9001 appendix A.1 and RFC 9369 appendix A.1 client Initial keys for DCID 8394c8f03e515708.
    dcid = bytes.fromhex("8394c8f03e515708")
    assert quic_client_keys(QUIC_V1, dcid) == (bytes.fromhex("1f369613dd76d5467730efcbe3b1a22d"),
                                               bytes.fromhex("fa044b2f42a3fd3b46fb255c"),
                                               bytes.fromhex("9f50449e04a0e810283a1e9933adedd2"))
    assert quic_client_keys(QUIC_V2, dcid) == (bytes.fromhex("8b1a0bc121284290a29e0971b5cd045d"),
                                               bytes.fromhex("91f73e2351d8fa91660e909f"),
                                               bytes.fromhex("45b95e15235d6f45a6b19cbcb0294ba9"))


def quic_session(cap, client, server, sni, version=QUIC_V1, split=False, pq=False, short=2, salt_version=None):
    rng = cap.rng
    dcid, scid = rng.randbytes(8), rng.randbytes(8)
    tp = [(0x01, varint(30000)), (0x03, varint(1472)), (0x04, varint(15728640)),
          (0x05, varint(6291456)), (0x06, varint(6291456)), (0x07, varint(6291456)),
          (0x08, varint(100)), (0x09, varint(103)), (0x0F, scid)]
    if version == QUIC_V2:
        tp.append((0x11, struct.pack("!III", QUIC_V2, QUIC_V2, QUIC_V1)))  # RFC 9368 version_information
    ch = client_hello(rng, sni, pq=pq, quic=tp, alpn=(b"h3",))
    sport = rng.randrange(40000, 60999)
    pieces = [ch] if not split else [ch[:len(ch) // 2], ch[len(ch) // 2:]]
    off, f = 0, None
    for pn, piece in enumerate(pieces):
        frame = b"\x06" + varint(off) + varint(len(piece)) + piece
        f = cap.udp(client, server, sport, 443, quic_initial(version, dcid, scid, pn, frame, salt_version=salt_version),
                    dt_us=100)
        off += len(piece)
    cap.note(f, "quic_sni", sni, client, server, 443)
    # A few opaque short-header packets each way stand for the rest of the connection.
    for i in range(short):
        cap.udp(server, client, 443, sport, bytes([0x40 | rng.getrandbits(5)]) + scid + rng.randbytes(rng.randrange(40, 1200)),
                dt_us=15000 if i == 0 else 200)
        cap.udp(client, server, sport, 443, bytes([0x40 | rng.getrandbits(5)]) + dcid + rng.randbytes(rng.randrange(30, 80)),
                dt_us=300)
    return f


# ---------------------------------------------------------------- writers

def write_pcap(path, cap):
    magic = 0xA1B23C4D if cap.nano else 0xA1B2C3D4
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, cap.snaplen, cap.linktypes[0])]
    for ts, _, data in cap.frames:
        sec, frac = divmod(ts, NS)
        if not cap.nano:
            frac //= 1000
        cl = min(len(data), cap.snaplen)
        out.append(struct.pack("<IIII", sec, frac, cl, len(data)) + data[:cl])
    blob = b"".join(out)
    if cap.cut_bytes is not None:
        blob = blob[:cap.cut_bytes]
    with open(path, "wb") as f:
        f.write(blob)


def pcapng_block(btype, body):
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_opt(code, val):
    return struct.pack("<HH", code, len(val)) + val + b"\0" * (-len(val) % 4)


def write_pcapng(path, cap, ifnames):
    # Section header: no options at all (no shb_hardware/os/userappl strings, no time).
    out = [pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for lt, nm in zip(cap.linktypes, ifnames):
        opts = pcapng_opt(2, nm.encode()) + pcapng_opt(9, b"\x06") + struct.pack("<HH", 0, 0)
        out.append(pcapng_block(1, struct.pack("<HHI", lt, 0, cap.snaplen) + opts))
    for ts, iface, data in cap.frames:
        us = ts // 1000
        out.append(pcapng_block(6, struct.pack("<IIIII", iface, us >> 32, us & 0xFFFFFFFF, len(data), len(data)) + data))
    with open(path, "wb") as f:
        f.write(b"".join(out))


# ---------------------------------------------------------------- the captures

def cap_demo():
    cap = Capture("demo.pcap", desc="benign DNS/TLS/HTTP to a dozen names, then 10.1.0.23 resolves "
                  "tunnel.us.ngrok.com and sends ~200 KB over TLS to 3.134.39.220:443 (exfiltration)")
    clients = ["10.1.0.21", "10.1.0.22", "10.1.0.24", "10.1.0.25"]
    for i, (name, ip) in enumerate(BENIGN[:12]):
        visit(cap, clients[i % 4], name, ip, proto="http" if i % 4 == 3 else "tls", pq=i % 3 == 0)
    cap.wait(1.0)
    host, edge, name = "10.1.0.23", SEED_IP["tunnel.us.ngrok.com"], "tunnel.us.ngrok.com"
    dns_exchange(cap, host, RESOLVER, name, [edge], ttl=60)
    cap.wait(0.003)
    fl, _ = tls_session(cap, host, edge, name, pq=True, c2s=200 * 1024, s2c=1200)
    cap.extra_files["demo.expect"] = flow_expect(
        "demo.pcap: expected alerts (rule: Communication To Ngrok Tunneling Service - Linux)",
        [("dns_query", host, name, RESOLVER, 53), ("tls_sni", host, name, edge, 443)],
        [(host, edge, 443, fl)])
    return cap


def flow_expect(title, evid, flows):
    lines = [f"# {title}", "# evidence: kind<TAB>client<TAB>name<TAB>dst<TAB>dport",
             "# flows: client:port -> server:port, then per direction frames and bytes (whole frames, as "
             "tshark -z conv,tcp counts them; tshark 4.0 rounds large values to kB) and TCP payload bytes"]
    for e in evid:
        lines.append("evidence\t" + "\t".join(str(x) for x in e))
    for c, s, port, fl in flows:
        lines.append(f"flow\t{c}:{fl.cport}\t{s}:{port}\tc2s_frames={fl.frames_c}\tc2s_bytes={fl.bytes_c}"
                     f"\ts2c_frames={fl.frames_s}\ts2c_bytes={fl.bytes_s}"
                     f"\tc2s_payload={fl.payload_c}\ts2c_payload={fl.payload_s}")
    return "\n".join(lines) + "\n"


def cap_seed_names():
    cap = Capture("seed_names.pcap", desc="each of the 7 seed names by DNS query+answer, TLS SNI and HTTP Host "
                  "from different internal hosts; connect.ngrok-agent.com and connect.us.ngrok-agent.com over "
                  "TLS; benign look-alikes ngrok.com, tunnel.us.ngrok.co, example.com")
    for i, name in enumerate(SEEDS):
        a, b = f"10.1.0.{101 + i}", f"10.1.1.{101 + i}"
        ip = SEED_IP[name]
        dns_exchange(cap, a, RESOLVER, name, [ip], ttl=60)
        tls_session(cap, a, ip, name, pq=i % 2 == 0)
        http_session(cap, b, ip, name)
        cap.wait(0.5)
    for j, (name, ip) in enumerate([("connect.ngrok-agent.com", "3.20.27.198"),
                                    ("connect.us.ngrok-agent.com", "3.20.27.199")]):
        visit(cap, f"10.1.0.{120 + j}", name, ip, "tls")
    visit(cap, "10.1.0.130", "ngrok.com", "198.51.100.99", "tls")
    visit(cap, "10.1.0.131", "tunnel.us.ngrok.co", "198.51.100.98", "tls")
    visit(cap, "10.1.0.132", "example.com", "93.184.216.34", "http")
    return cap


def cap_seed_quic():
    quic_self_test()
    cap = Capture("seed_quic.pcap", desc="QUIC v1 client Initials (RFC 9001 encryption) with SNI for the 7 "
                  "seed names; tunnel.au's ClientHello (post-quantum key share) spans two Initial packets "
                  "(CRYPTO offsets); tunnel.in uses QUIC v2 (RFC 9369)")
    for i, name in enumerate(SEEDS):
        client, ip = f"10.1.0.{140 + i}", SEED_IP[name]
        dns_exchange(cap, client, RESOLVER, name, [ip], ttl=60)
        quic_session(cap, client, ip, name, version=QUIC_V2 if name.startswith("tunnel.in") else QUIC_V1,
                     split=name.startswith("tunnel.au"), pq=name.startswith("tunnel.au"))
        cap.wait(0.3)
    return cap


def cap_tls_split():
    cap = Capture("tls_split.pcap", desc="ClientHello with an X25519MLKEM768 key share (1216 bytes) spanning "
                  "two TCP segments")
    tls_session(cap, "10.1.0.41", SEED_IP["tunnel.eu.ngrok.com"], "tunnel.eu.ngrok.com", pq=True)
    return cap


def cap_tls_split7_ooo():
    cap = Capture("tls_split7_ooo.pcap", desc="ClientHello in 7 TCP segments sent out of order "
                  "(1,3,2,5,4,3,7,6: segment 3 sent twice, the second time as a retransmission)")
    rng = cap.rng
    c, s, name = "10.1.0.42", SEED_IP["tunnel.ap.ngrok.com"], "tunnel.ap.ngrok.com"
    fl = TcpFlow(cap, c, s, 51515, 443)
    fl.open()
    hello = tls_records(client_hello(rng, name, pq=True))
    n = 7
    bounds = [len(hello) * k // n for k in range(n + 1)]
    base = fl.cseq
    order = [0, 2, 1, 4, 3, 2, 6, 5]  # segment index 2 (the third) is sent twice
    have, done = set(), None
    for k in order:
        f = fl.seg(True, TCP_ACK | (TCP_PSH if k == n - 1 else 0), hello[bounds[k]:bounds[k + 1]],
                   seq=base + bounds[k], dt_us=80)
        have.add(k)
        if done is None and len(have) == n:
            done = f
    fl.cseq = base + len(hello)
    cap.note(done, "tls_sni", name, c, s, 443)
    fl.seg(False, TCP_ACK, dt_us=20000)
    fl.send(False, server_flight(rng))
    fl.close()
    return cap


def cap_tls_record_frag():
    cap = Capture("tls_record_frag.pcap", desc="ClientHello fragmented over 3 TLS records: once inside one "
                  "TCP segment, once with each record in its own segment")
    rng = cap.rng
    hs = client_hello(rng, "tunnel.sa.ngrok.com")
    tls_session(cap, "10.1.0.43", SEED_IP["tunnel.sa.ngrok.com"], "tunnel.sa.ngrok.com",
                hello=tls_records(hs, sizes=[60, 200]))
    cap.wait(0.5)
    hs2 = client_hello(rng, "tunnel.jp.ngrok.com")
    recs = tls_records(hs2, sizes=[100, 150])
    tls_session(cap, "10.1.0.44", SEED_IP["tunnel.jp.ngrok.com"], "tunnel.jp.ngrok.com", hello=recs,
                sizes=[105, 155])
    return cap


def cap_tls_snaplen_cut():
    cap = Capture("tls_snaplen_cut.pcap", snaplen=128, desc="written with snaplen 128: the ClientHello frame "
                  "(SNI tunnel.us.ngrok.com) is cut before its extensions; no name may be reported")
    tls_session(cap, "10.1.0.45", SEED_IP["tunnel.us.ngrok.com"], "tunnel.us.ngrok.com", note=False)
    return cap


def cap_dns_tcp_split():
    cap = Capture("dns_tcp_split.pcap", desc="DNS over TCP (RFC 7766): two length-prefixed queries in one "
                  "segment, then one query split across two segments; answers likewise")
    c = "10.1.0.46"
    fl = TcpFlow(cap, c, RESOLVER, 45353, 53)
    fl.open(rtt_us=300)
    q1 = dns_query(0x1111, "tunnel.us.ngrok.com")
    q2 = dns_query(0x2222, "www.example.com", qtype=28)
    f = fl.send(True, u16v(q1) + u16v(q2), ack_every=0)[-1]
    cap.note(f, "dns_query", "tunnel.us.ngrok.com", c, RESOLVER, 53)
    cap.note(f, "dns_query", "www.example.com", c, RESOLVER, 53)
    r1 = dns_response(0x1111, "tunnel.us.ngrok.com", 1, [SEED_IP["tunnel.us.ngrok.com"]], 60)
    r2 = dns_response(0x2222, "www.example.com", 28, ["2001:db8:5::34"], 300)
    fl.send(False, u16v(r1) + u16v(r2))
    q3 = u16v(dns_query(0x3333, "tunnel.in.ngrok.com", edns=True))
    f = fl.send(True, q3, sizes=[9], ack_every=0)[-1]
    cap.note(f, "dns_query", "tunnel.in.ngrok.com", c, RESOLVER, 53)
    r3 = u16v(dns_response(0x3333, "tunnel.in.ngrok.com", 1, [SEED_IP["tunnel.in.ngrok.com"]], 60, edns=True))
    fl.send(False, r3, sizes=[30])
    fl.close()
    return cap


def simple_dns_tls(cap, client="10.1.0.50", tls=True, name="tunnel.us.ngrok.com", v6_also=False):
    ip = SEED_IP.get(name, "93.184.216.34")
    dns_exchange(cap, client, RESOLVER, name, [ip], ttl=60)
    if tls:
        cap.wait(0.002)
        tls_session(cap, client, ip, name, c2s=300, s2c=300)
    if v6_also:
        cap.wait(0.01)
        dns_exchange(cap, "fd00:10:1::50", "fd00:10:1::53", "tunnel.eu.ngrok.com", ["2001:db8:3::94"], ttl=60)


def encap_capture(fname, wrap, desc, tls=True, v6_also=True, linktype=LINKTYPE_EN10MB, **kw):
    if isinstance(wrap, Outer) and v6_also:
        # truth.sh prefers ip.src over ipv6.src, so an IPv6 packet inside an IPv4 tunnel shows the
        # outer IPv4 addresses in tshark's view: only frame, kind, name and port can be compared.
        kw["tshark"] = "names"
    cap = Capture(fname, wrap=wrap, linktypes=(linktype,), desc=desc, **kw)
    simple_dns_tls(cap, tls=tls, v6_also=v6_also)
    return cap


def cap_ipv4_options():
    cap = Capture("ipv4_options_dns.pcap", desc="DNS query/answer in IPv4 with options (Router Alert, NOP, "
                  "Record Route): IHL 8")
    opts = b"\x94\x04\x00\x00" + b"\x01" + b"\x07\x07\x04" + b"\0\0\0\0"
    c, name, ip = "10.1.0.51", "tunnel.us.ngrok.com", SEED_IP["tunnel.us.ngrok.com"]
    f = cap.udp(c, RESOLVER, 40001, 53, dns_query(0x4444, name), options=opts)
    cap.note(f, "dns_query", name, c, RESOLVER, 53)
    cap.udp(RESOLVER, c, 53, 40001, dns_response(0x4444, name, 1, [ip], 60), options=opts)
    return cap


def cap_ipv6_ext():
    cap = Capture("ipv6_ext_dns.pcap", desc="DNS over IPv6 behind a hop-by-hop and a destination options "
                  "header (PadN options)")
    hbh = (0, b"\x00" + b"\x01\x04\0\0\0\0")  # hdr ext len 0, PadN(4)
    dst = (60, b"\x00" + b"\x01\x02\0\0" + b"\x00\x00")  # PadN(2), Pad1, Pad1
    c, r = "fd00:10:1::52", "fd00:10:1::53"
    for qid, name, ans in ((0x5555, "tunnel.eu.ngrok.com", "2001:db8:3::94"),
                           (0x5556, "www.example.com", "2001:db8:5::34")):
        f = cap.udp(c, r, 40002 + qid % 16, 53, dns_query(qid, name, 28), exts=[hbh, dst])
        cap.note(f, "dns_query", name, c, r, 53)
        cap.udp(r, c, 53, 40002 + qid % 16, dns_response(qid, name, 28, [ans], 60), exts=[dst])
    return cap


def cap_ip_frag():
    cap = Capture("ip_frag_dns.pcap", desc="a 2 KB DNS answer (120 A records) fragmented in IPv4, and a "
                  "DNS query over IPv6 split in two fragments (fragment header)")
    c, name = "10.1.0.55", "pool.cdn.example.net"
    f = cap.udp(c, RESOLVER, 41000, 53, dns_query(0x6666, name, edns=True))
    cap.note(f, "dns_query", name, c, RESOLVER, 53)
    answers = [f"198.51.100.{i}" for i in range(1, 121)]
    udp = udp_seg(RESOLVER, c, 53, 41000, dns_response(0x6666, name, 1, answers, 300, edns=True))
    ident = 0x7777
    off = 0
    while off < len(udp):
        chunk = udp[off:off + 1480]
        mf = off + len(chunk) < len(udp)
        l3 = ipv4_hdr(RESOLVER, c, 17, len(chunk), ident, df=False, frag=off, mf=mf) + chunk
        cap.add(wrap_eth(l3, RESOLVER, c), 30)
        off += len(chunk)
    # IPv6: the fragmentable part (UDP header + query) in two fragments (RFC 8200 section 4.5).
    c6, r6, name6 = "fd00:10:1::54", "fd00:10:1::53", "tunnel.in.ngrok.com"
    q = dns_query(0x6767, [name6], 28, edns=True)
    u = udp_seg(c6, r6, 41001, 53, q)
    parts = [u[:24], u[24:]]
    off = 0
    f = None
    for i, p in enumerate(parts):
        mf = i < len(parts) - 1
        fh = struct.pack("!BBHI", 17, 0, (off // 8) << 3 | (1 if mf else 0), 0x12345678)
        l3 = ipv6_hdr(c6, r6, 44, len(fh) + len(p)) + fh + p
        f = cap.add(wrap_eth(l3, c6, r6), 20)
        off += len(p)
    cap.note(f, "dns_query", name6, c6, r6, 53)
    cap.udp(r6, c6, 53, 41001, dns_response(0x6767, name6, 28, ["2001:db8:7::85"], 60, edns=True))
    return cap


def cap_multi_if():
    cap = Capture("multi_if.pcapng", wrap=[wrap_eth, wrap_raw], linktypes=(LINKTYPE_EN10MB, LINKTYPE_RAW),
                  fmt="pcapng", desc="pcapng with two interfaces: eth0 (EN10MB) carries a DNS query for "
                  "tunnel.us.ngrok.com, tun0 (RAW) a TLS ClientHello for tunnel.eu.ngrok.com")
    cap.iface = 0
    dns_exchange(cap, "10.1.0.60", RESOLVER, "tunnel.us.ngrok.com", [SEED_IP["tunnel.us.ngrok.com"]], ttl=60)
    cap.iface = 1
    tls_session(cap, "10.8.0.2", SEED_IP["tunnel.eu.ngrok.com"], "tunnel.eu.ngrok.com", c2s=200, s2c=0)
    cap.iface = 0
    dns_exchange(cap, "10.1.0.60", RESOLVER, "www.example.com", ["93.184.216.34"])
    return cap


def cap_nanosec():
    cap = Capture("nanosec.pcap", nano=True, desc="pcap with the nanosecond magic a1b23c4d; DNS + TLS")
    cap.t += 123  # a timestamp that only nanosecond resolution can hold
    simple_dns_tls(cap, client="10.1.0.61", name="tunnel.au.ngrok.com")
    return cap


def cap_truncated():
    cap = Capture("truncated.pcap", desc="file cut in the middle of a record: names in the frames before the "
                  "cut only")
    simple_dns_tls(cap, client="10.1.0.62", name="tunnel.sa.ngrok.com")
    dns_exchange(cap, "10.1.0.62", RESOLVER, "tunnel.us.ngrok.com", [SEED_IP["tunnel.us.ngrok.com"]], ttl=60)
    # Cut inside the last frame's data (the answer to the tunnel.us query).
    size = 24 + sum(16 + len(d) for _, _, d in cap.frames[:-1])
    cap.cut_bytes = size + 16 + 30
    return cap


def cap_resolver_attrib():
    cap = Capture("resolver_attrib.pcap", desc="attribution through DNS answers: 10.1.0.77 asks the resolver "
                  "10.1.0.53, which asks 9.9.9.9; then TLS without SNI (50 KB up) from 10.1.0.77 and SSH "
                  "from 10.1.0.78 to the answered address 3.125.209.94")
    rng = cap.rng
    name, edge, up, c1, c2 = "tunnel.eu.ngrok.com", "3.125.209.94", "9.9.9.9", "10.1.0.77", "10.1.0.78"
    qid, uqid = 0x7A7A, 0x9C9C
    f = cap.udp(c1, RESOLVER, 50077, 53, dns_query(qid, name, edns=True))
    cap.note(f, "dns_query", name, c1, RESOLVER, 53)
    f2 = cap.udp(RESOLVER, up, 31053, 53, dns_query(uqid, name, edns=True), dt_us=300)
    cap.note(f2, "dns_query", name, RESOLVER, up, 53)
    cap.udp(up, RESOLVER, 53, 31053, dns_response(uqid, name, 1, [edge], 60, edns=True), dt_us=9000)
    cap.udp(RESOLVER, c1, 53, 50077, dns_response(qid, name, 1, [edge], 60, edns=True), dt_us=200)
    cap.wait(0.01)
    fl1, _ = tls_session(cap, c1, edge, None, c2s=50 * 1024, s2c=900)
    cap.wait(2.0)
    fl2 = TcpFlow(cap, c2, edge, 52022, 22)
    fl2.open()
    fl2.send(True, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", ack_every=0)
    fl2.send(False, b"SSH-2.0-OpenSSH_9.2\r\n", ack_every=0)
    fl2.send(True, rng.randbytes(1500), ack_every=1)
    fl2.send(False, rng.randbytes(1100), ack_every=1)
    fl2.send(True, rng.randbytes(8000))
    fl2.close()
    cap.extra_files["resolver_attrib.expect"] = flow_expect(
        "resolver_attrib.pcap: expected alerts. tunnel.eu.ngrok.com resolved to 3.125.209.94 (TTL 60) via "
        "10.1.0.53 (resolver) <- 9.9.9.9 (upstream).\n"
        "# 10.1.0.77 alerts on its query and (evidence dns_answer) on its TLS flow without SNI; 10.1.0.78 never "
        "queried but connects to the answered address, so the IP->name map attributes its SSH flow too.\n"
        "# The resolver's own upstream query (10.1.0.53 -> 9.9.9.9) is the resolver forwarding, not a culprit: "
        "it must not be the host an analyst is pointed at when 10.1.0.53 is configured as a resolver",
        [("dns_query", c1, name, RESOLVER, 53), ("dns_answer", c1, name, edge, 443),
         ("dns_answer", c2, name, edge, 22)],
        [(c1, edge, 443, fl1), (c2, edge, 22, fl2)])
    return cap


def cap_dedup_1000():
    cap = Capture("dedup_1000.pcap", desc="10.1.0.31 queries tunnel.ap.ngrok.com 1000 times, once a second "
                  "(answers too): alert dedup/throttling")
    name, ip = "tunnel.ap.ngrok.com", SEED_IP["tunnel.ap.ngrok.com"]
    for _ in range(1000):
        dns_exchange(cap, "10.1.0.31", RESOLVER, name, [ip], ttl=60)
        cap.t = T0 * NS + ((cap.t - T0 * NS) // NS + 1) * NS
    return cap


def cap_inbound_server():
    cap = Capture("inbound_server.pcap", desc="an external client 198.51.100.7 connects to the internal "
                  "10.1.0.90:443 with SNI tunnel.jp.ngrok.com (internal host is the server)")
    tls_session(cap, "198.51.100.7", "10.1.0.90", "tunnel.jp.ngrok.com", c2s=2000, s2c=20000)
    return cap


def cap_quic_greased():
    cap = Capture("quic_greased.pcap", desc="QUIC client Initials of reserved versions (RFC 9000 15, "
                  "0x?a?a?a?a) protected with the draft-29 salt, which tshark uses for them: "
                  "tunnel.eu.ngrok.com in version 0x1a2a3a4a, tunnel.sa.ngrok.com in 0xfafafafa with its "
                  "ClientHello over two Initials")
    for i, (name, version) in enumerate([("tunnel.eu.ngrok.com", 0x1A2A3A4A), ("tunnel.sa.ngrok.com", 0xFAFAFAFA)]):
        quic_session(cap, f"10.1.0.{150 + i}", SEED_IP[name], name, version=version, salt_version=QUIC_DRAFT29,
                     split=i == 1, short=1)
        cap.wait(0.2)
    return cap


def cap_dns_forward_ptr():
    cap = Capture("dns_forward_ptr.pcap", desc="DNS with forward compression pointers (RFC 1035 4.1.4 says "
                  "\"prior\"; tshark and resolvers follow them): a query for tunnel.ap.ngrok.com whose "
                  "question name is 'tunnel' + a pointer to ap.ngrok.com, the owner of a TXT record in the "
                  "additional section; its answer: a CNAME from a benign name whose target points forward "
                  "into the A record's owner tunnel.ap.ngrok.com; then queries whose labels hold a space, "
                  "'.', UTF-8 and a stray 0xff (U+FFFD), as tshark 4.0 renders them")
    client, name, ip = "10.1.0.160", "tunnel.ap.ngrok.com", SEED_IP["tunnel.ap.ngrok.com"]
    rng = cap.rng
    # query: @12 06 tunnel c0 <off> | 0001 0001 | additional: 02 ap 05 ngrok 03 com 00 TXT IN ttl 0 rdlen 1: 00
    suffix_off = 12 + 1 + 6 + 2 + 4
    q = struct.pack("!HHHHHH", 0x5a5a, 0x0100, 1, 0, 0, 1)
    q += b"\x06tunnel" + struct.pack("!H", 0xC000 | suffix_off) + struct.pack("!HH", 1, 1)
    assert len(q) == suffix_off
    q += dns_name("ap.ngrok.com") + struct.pack("!HHIH", 16, 1, 0, 1) + b"\0"
    sport = rng.randrange(32768, 61000)
    f = cap.udp(client, RESOLVER, sport, 53, q)
    cap.note(f, "dns_query", name, client, RESOLVER, 53)
    # answer: question cdn.example.org A; CNAME rdata c0 <owner of the A record, further on>
    r = struct.pack("!HHHHHH", 0x5a5b, 0x8180, 1, 2, 0, 0) + dns_name("cdn.example.org") + struct.pack("!HH", 1, 1)
    a_off = len(r) + 2 + 10 + 2
    r += b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2) + struct.pack("!H", 0xC000 | a_off)
    assert len(r) == a_off
    r += dns_name(name) + struct.pack("!HHIH", 1, 1, 60, 4) + ipaddress.ip_address(ip).packed
    f = cap.udp(client, RESOLVER, sport + 1, 53, dns_query(0x5a5b, "cdn.example.org"))
    cap.note(f, "dns_query", "cdn.example.org", client, RESOLVER, 53)
    cap.udp(RESOLVER, client, 53, sport + 1, r, dt_us=9000)
    # odd bytes inside labels, each rendered by tshark's format_text()
    # (a '\\' or a byte tshark escapes as \ooo is left out: --names writes '\\' as \x5c, which the
    # truth does not; check_dns.c's render cases hold those)
    for i, (raw, text) in enumerate([(b"a b", "a b"), (b"a.b", "a.b"), ("caf\u00e9".encode(), "caf\u00e9"),
                                     (b"a\xffb", "a\ufffdb")]):
        msg = struct.pack("!HHHHHH", 0x6000 + i, 0x0100, 1, 0, 0, 0) + bytes([len(raw)]) + raw
        msg += dns_name("ngrok.com") + struct.pack("!HH", 1, 1)
        f = cap.udp(client, RESOLVER, sport + 2 + i, 53, msg)
        cap.note(f, "dns_query", text + ".ngrok.com", client, RESOLVER, 53)
    return cap


def cap_benign_mix():
    cap = Capture("benign_mix.pcap", desc="about 300 frames of DNS/TLS/HTTP/QUIC to benign names over IPv4 "
                  "and IPv6, no ngrok name")
    v6ip = {n: f"2001:db8:{10 + i:x}::{i + 1:x}" for i, (n, _) in enumerate(BENIGN)}
    plan = [("tls", False), ("quic", False), ("http", False), ("tls", True), ("quic", True), ("tls", False)]
    for i, (name, ip) in enumerate(BENIGN + BENIGN[:8]):
        proto, v6 = plan[(i + i // len(BENIGN)) % len(plan)]
        if v6:
            visit(cap, f"fd00:10:1::{0x70 + i:x}", name, v6ip[name], proto)
        else:
            visit(cap, f"10.1.0.{70 + i}", name, ip, proto)
    # A few lookups without a connection, including AAAA and a CNAME answer.
    dns_exchange(cap, "10.1.0.75", RESOLVER, "time.cloudflare.com", ["192.0.2.123"])
    dns_exchange(cap, "10.1.0.75", RESOLVER, "www.debian.org", ["2001:db8:20::80"])
    dns_exchange(cap, "10.1.0.76", RESOLVER, "static.example.org", ["203.0.113.99"], cname="edge.example.net")
    return cap


# ---------------------------------------------------------------- preambles before the ClientHello

def preamble_tls_session(cap, client, server, port, exchange, sni, cport=None):
    """A TCP flow whose ClientHello follows a preamble: exchange is a list of (from_client, bytes,
    note) sent in turn (note: (kind, name) observed in that message, or None); then the hello, the
    server's flight and a little application data. Returns the hello frame."""
    rng = cap.rng
    fl = TcpFlow(cap, client, server, cport or rng.randrange(40000, 60999), port)
    fl.open()
    for from_c, data, note in exchange:
        f = fl.send(from_c, data, ack_every=0)[-1]
        if note:
            cap.note(f, note[0], note[1], client, server, port)
        fl.seg(not from_c, TCP_ACK, dt_us=300)
    frames = fl.send(True, tls_records(client_hello(rng, sni)), ack_every=0)
    cap.note(frames[-1], "tls_sni", sni, client, server, port)
    fl.seg(False, TCP_ACK, dt_us=20000)
    fl.send(False, server_flight(rng), dt_us=60)
    fl.send(True, b"\x14\x03\x03\x00\x01\x01" + app_data(rng, 74) + app_data(rng, 400))
    fl.send(False, app_data(rng, 900))
    fl.close()
    return frames[-1]


def cap_proxy_connect_tls():
    cap = Capture("proxy_connect_tls.pcap", desc="HTTP CONNECT tunnel through a proxy on port 3128 "
                  "(Host carries the target tunnel.eu.ngrok.com:443), then the ClientHello inside the tunnel")
    name = "tunnel.eu.ngrok.com"
    req = (f"CONNECT {name}:443 HTTP/1.1\r\nHost: {name}:443\r\nUser-Agent: curl/7.88.1\r\n"
           "Proxy-Connection: Keep-Alive\r\n\r\n").encode()
    preamble_tls_session(cap, "10.1.0.61", "10.1.0.3", 3128, [
        (True, req, ("http_host", f"{name}:443")),
        (False, b"HTTP/1.1 200 Connection established\r\n\r\n", None),
    ], name)
    return cap


def cap_socks5_tls():
    cap = Capture("socks5_tls.pcap", desc="SOCKS5 on port 1080 (RFC 1928: no-auth greeting, CONNECT to "
                  "the domain tunnel.ap.ngrok.com:443), then the ClientHello through the proxy")
    name = "tunnel.ap.ngrok.com"
    req = b"\x05\x01\x00\x03" + bytes([len(name)]) + name.encode() + struct.pack("!H", 443)
    preamble_tls_session(cap, "10.1.0.62", "10.1.0.4", 1080, [
        (True, b"\x05\x01\x00", None),
        (False, b"\x05\x00", None),
        (True, req, None),
        (False, b"\x05\x00\x00\x01\x0a\x01\x00\x04\xc3\x51", None),
    ], name)
    return cap


def cap_smtp_starttls():
    cap = Capture("smtp_starttls.pcap", desc="SMTP on port 25: banner, EHLO, STARTTLS (RFC 3207), "
                  "then the ClientHello with SNI tunnel.au.ngrok.com")
    preamble_tls_session(cap, "10.1.0.63", "198.51.100.25", 25, [
        (False, b"220 mx.example.net ESMTP\r\n", None),
        (True, b"EHLO client.example\r\n", None),
        (False, b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250 STARTTLS\r\n", None),
        (True, b"STARTTLS\r\n", None),
        (False, b"220 2.0.0 Ready to start TLS\r\n", None),
    ], "tunnel.au.ngrok.com")
    return cap


def cap_proxy_v2_tls():
    cap = Capture("proxy_v2_tls.pcap", tshark=False,
                  desc="a load balancer 10.1.0.5 forwards a client to 10.1.0.90:443 "
                  "with a PROXY protocol v2 header (TCP over IPv4, AUTHORITY TLV) in the same segment as "
                  "the ClientHello (SNI tunnel.sa.ngrok.com). tshark 4.0 does not see the name: it dissects "
                  "the PROXY v2 header only with -o tcp.try_heuristic_first:TRUE, and even then does not hand "
                  "the bytes after it to TLS, so the truth row is the generator's")
    rng = cap.rng
    name = "tunnel.sa.ngrok.com"
    tlv = b"\x02" + struct.pack("!H", len(name)) + name.encode()
    addrs = (ipaddress.ip_address("198.51.100.7").packed + ipaddress.ip_address("10.1.0.90").packed
             + struct.pack("!HH", 51000, 443))
    hdr = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", len(addrs) + len(tlv)) + addrs + tlv)
    hello = tls_records(client_hello(rng, name))
    tls_session(cap, "10.1.0.5", "10.1.0.90", name, hello=hdr + hello, c2s=400, s2c=900)
    return cap


def cap_http_pipelined():
    cap = Capture("http_pipelined.pcap", desc="HTTP/1.1 pipelining: one segment holds a POST to "
                  "www.example.com with an 11-byte body and a GET whose Host is tunnel.us.ngrok.com")
    rng = cap.rng
    client, server, port = "10.1.0.64", SEED_IP["tunnel.us.ngrok.com"], 80
    fl = TcpFlow(cap, client, server, rng.randrange(40000, 60999), port)
    fl.open()
    reqs = (b"POST /api HTTP/1.1\r\nHost: www.example.com\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nContent-Length: 11\r\n\r\nhello=world"
            b"GET / HTTP/1.1\r\nHost: tunnel.us.ngrok.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
    f = fl.send(True, reqs, ack_every=0)[-1]
    cap.note(f, "http_host", "www.example.com", client, server, port)
    cap.note(f, "http_host", "tunnel.us.ngrok.com", client, server, port)
    fl.seg(False, TCP_ACK, dt_us=20000)
    for n in (2, 300):
        b = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(n))
        fl.send(False, (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {n}\r\n\r\n").encode() + b)
    fl.close()
    return cap


# ---------------------------------------------------------------- real-network behaviours (TFO, CNAME
# chains, HelloRetryRequest, retransmissions, transit traffic, DNS on other ports)

def ssh_exchange(cap, client, server, cport):
    """An SSH session's opening: banners both ways, some key-exchange-sized data, FIN (no name)."""
    rng = cap.rng
    fl = TcpFlow(cap, client, server, cport, 22)
    fl.open()
    fl.send(True, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", ack_every=0)
    fl.send(False, b"SSH-2.0-OpenSSH_9.2\r\n", ack_every=0)
    fl.send(True, rng.randbytes(1200), ack_every=1)  # key exchange init, then encrypted packets
    fl.send(False, rng.randbytes(900), ack_every=1)
    fl.send(True, rng.randbytes(700))
    fl.close()
    return fl


def cap_tcp_fastopen_tls():
    cap = Capture("tcp_fastopen_tls.pcap", desc="TCP Fast Open (RFC 7413): 10.1.0.170's SYN to 3.134.39.220:443 "
                  "carries a Fast Open cookie option and the whole ClientHello (SNI tunnel.us.ngrok.com) as "
                  "data starting at ISN+1; the SYN-ACK acknowledges ISN+1+data. 10.1.0.179: the server refuses the "
                  "data (its SYN-ACK acknowledges the SYN only) and the client sends the ClientHello again after "
                  "the handshake: one name, at the SYN")
    rng = cap.rng
    c, s, name = "10.1.0.170", SEED_IP["tunnel.us.ngrok.com"], "tunnel.us.ngrok.com"
    fl = TcpFlow(cap, c, s, 47170, 443)
    hello = tls_records(client_hello(rng, name))
    # MSS 1460, NOP NOP SACK-permitted, NOP window scale 7, TFO cookie (kind 34, 8 bytes) NOP NOP
    tfo = struct.pack("!BB", 34, 10) + rng.randbytes(8)
    syn_opts = (struct.pack("!BBH", 2, 4, 1460) + b"\x01\x01\x04\x02" + b"\x01\x03\x03\x07" + tfo + b"\x01\x01")
    f = fl.seg(True, TCP_SYN, hello, opts=syn_opts)
    cap.note(f, "tls_sni", name, c, s, 443)
    fl.cseq += 1 + len(hello)
    syn_ack = struct.pack("!BBH", 2, 4, 1460) + b"\x01\x01\x04\x02" + b"\x01\x03\x03\x07"
    fl.seg(False, TCP_SYN | TCP_ACK, opts=syn_ack, dt_us=20000)
    fl.sseq += 1
    fl.send(False, server_flight(rng), dt_us=60)
    fl.send(True, b"\x14\x03\x03\x00\x01\x01" + app_data(rng, 74) + app_data(rng, 900))
    fl.send(False, app_data(rng, 1500))
    fl.close()
    cap.wait(0.5)
    # 10.1.0.179: the server does not take the cookie (its SYN-ACK acknowledges the SYN only), so the
    # client sends the same ClientHello again at ISN+1 after the handshake: still one name, at the SYN.
    c = "10.1.0.179"
    fl = TcpFlow(cap, c, s, 47179, 443)
    hello = tls_records(client_hello(rng, name))
    tfo = struct.pack("!BB", 34, 10) + rng.randbytes(8)
    syn_opts = (struct.pack("!BBH", 2, 4, 1460) + b"\x01\x01\x04\x02" + b"\x01\x03\x03\x07" + tfo + b"\x01\x01")
    f = fl.seg(True, TCP_SYN, hello, opts=syn_opts)
    cap.note(f, "tls_sni", name, c, s, 443)
    fl.cseq += 1
    fl.seg(False, TCP_SYN | TCP_ACK, opts=syn_ack, dt_us=20000)
    fl.sseq += 1
    fl.send(True, hello, ack_every=0)
    fl.seg(False, TCP_ACK, dt_us=20000)
    fl.send(False, server_flight(rng), dt_us=60)
    fl.send(True, b"\x14\x03\x03\x00\x01\x01" + app_data(rng, 74) + app_data(rng, 900))
    fl.close()
    return cap


def dns_cname_answer(qid, qname, chain, ip, ttls):
    """An answer for qname: CNAME records along chain (qname -> chain[0] -> ...), the last name's A
    record; each owner is a compression pointer to the previous record's target, as resolvers write."""
    msg = struct.pack("!HHHHHH", qid, 0x8180, 1, len(chain) + 1, 0, 0) + dns_name(qname) + struct.pack("!HH", 1, 1)
    owner = 12
    for i, target in enumerate(chain):
        msg += struct.pack("!HHHIH", 0xC000 | owner, 5, 1, ttls[i], len(dns_name(target)))
        owner = len(msg)
        msg += dns_name(target)
    rd = ipaddress.ip_address(ip).packed
    return msg + struct.pack("!HHHIH", 0xC000 | owner, 1, 1, ttls[-1], len(rd)) + rd


def cap_dns_cname_chain():
    cap = Capture("dns_cname_chain.pcap", desc="a CNAME chain to ngrok: 10.1.0.171 asks 10.1.0.53 for "
                  "assets.example-cdn.com, answered CNAME edge.example-cdn.net, CNAME tunnel.us.ngrok.com, "
                  "A 3.134.39.220; then SSH (banners, no name) from 10.1.0.171 to 3.134.39.220:22. Look-alike: "
                  "10.1.0.172 asks static.example-cdn.com, CNAME edge2.example-cdn.net, CNAME www.example.org, "
                  "A 203.0.113.77, then SSH to 203.0.113.77:22. Flagged name inside the chain: 10.1.0.173 asks "
                  "media.example-cdn.com, CNAME tunnel.au.ngrok.com, CNAME lb.example-cdn.net, A 13.54.93.152, "
                  "then SSH to 13.54.93.152:22")
    rng = cap.rng
    for client, qname, chain, ip, cport in [
            ("10.1.0.171", "assets.example-cdn.com", ["edge.example-cdn.net", "tunnel.us.ngrok.com"],
             SEED_IP["tunnel.us.ngrok.com"], 51171),
            ("10.1.0.172", "static.example-cdn.com", ["edge2.example-cdn.net", "www.example.org"],
             "203.0.113.77", 51172),
            ("10.1.0.173", "media.example-cdn.com", ["tunnel.au.ngrok.com", "lb.example-cdn.net"],
             SEED_IP["tunnel.au.ngrok.com"], 51173)]:
        qid, sport = rng.getrandbits(16), rng.randrange(32768, 61000)
        f = cap.udp(client, RESOLVER, sport, 53, dns_query(qid, qname))
        cap.note(f, "dns_query", qname, client, RESOLVER, 53)
        cap.udp(RESOLVER, client, 53, sport, dns_cname_answer(qid, qname, chain, ip, [300, 60, 60]), dt_us=14000)
        cap.wait(0.5)
        ssh_exchange(cap, client, ip, cport)
        cap.wait(1.0)
    return cap


HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()  # RFC 8446 4.1.3


def cap_tls_hrr():
    cap = Capture("tls_hrr.pcap", desc="TLS 1.3 HelloRetryRequest: ClientHello, HRR (ServerHello with the "
                  "special random, a cookie), server CCS; client CCS + second ClientHello echoing the cookie on "
                  "the same TCP stream. 10.1.0.176: both hellos name tunnel.eu.ngrok.com (RFC 8446 4.1.2); "
                  "10.1.0.177: the first names www.example.com, the retry tunnel.eu.ngrok.com")
    rng = cap.rng
    s, name = SEED_IP["tunnel.eu.ngrok.com"], "tunnel.eu.ngrok.com"
    for c, first_sni, cport in [("10.1.0.176", name, 43176), ("10.1.0.177", "www.example.com", 43177)]:
        fl = TcpFlow(cap, c, s, cport, 443)
        fl.open()
        f1 = fl.send(True, tls_records(client_hello(rng, first_sni)), ack_every=0)[-1]
        cap.note(f1, "tls_sni", first_sni, c, s, 443)
        fl.seg(False, TCP_ACK, dt_us=20000)
        cookie = rng.randbytes(48)
        hrr_body = (struct.pack("!H", 0x0303) + HRR_RANDOM + u8v(rng.randbytes(32)) + b"\x13\x01\x00"
                    + u16v(ext(0x002B, b"\x03\x04") + ext(0x002C, u16v(cookie))))
        hrr = b"\x02" + struct.pack("!I", len(hrr_body))[1:] + hrr_body
        fl.send(False, tls_records(hrr, version=0x0303) + b"\x14\x03\x03\x00\x01\x01", ack_every=0, dt_us=60)
        ch2 = client_hello(rng, name, extra_exts=[ext(0x002C, u16v(cookie))])
        f2 = fl.send(True, b"\x14\x03\x03\x00\x01\x01" + tls_records(ch2, version=0x0303), ack_every=0)[-1]
        cap.note(f2, "tls_sni", name, c, s, 443)
        sh_body = (struct.pack("!H", 0x0303) + rng.randbytes(32) + u8v(rng.randbytes(32)) + b"\x13\x01\x00"
                   + u16v(ext(0x002B, b"\x03\x04") + ext(0x0033, struct.pack("!HH", 0x1D, 32) + rng.randbytes(32))))
        sh = b"\x02" + struct.pack("!I", len(sh_body))[1:] + sh_body
        fl.send(False, tls_records(sh, version=0x0303) + app_data(rng, 2900), dt_us=20000)
        fl.send(True, app_data(rng, 74) + app_data(rng, 600))
        fl.send(False, app_data(rng, 1200))
        fl.close()
        cap.wait(0.5)
    return cap


def http_req(host, path):
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n").encode()


def http_resp(rng, n):
    b = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz \n") for _ in range(n))
    return (f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(b)}\r\n\r\n").encode() + b


def cap_http_retrans():
    cap = Capture("http_retrans.pcap", desc="HTTP/1.1 to tunnel.ap.ngrok.com: 10.1.0.174 sends its GET, "
                  "gets no ACK and sends the same bytes again with the same sequence number (a TCP "
                  "retransmission, 200 ms later): one name; 10.1.0.175 sends two requests on one keep-alive "
                  "connection (the second after the first response, at a new sequence number): two names")
    rng = cap.rng
    name, s = "tunnel.ap.ngrok.com", SEED_IP["tunnel.ap.ngrok.com"]
    c = "10.1.0.174"
    fl = TcpFlow(cap, c, s, 45174, 80)
    fl.open()
    req = http_req(name, "/upload")
    seq0 = fl.cseq
    f = fl.seg(True, TCP_ACK | TCP_PSH, req)
    cap.note(f, "http_host", name, c, s, 80)
    fl.seg(True, TCP_ACK | TCP_PSH, req, seq=seq0, dt_us=200000)  # retransmission
    fl.cseq += len(req)
    fl.seg(False, TCP_ACK, dt_us=20000)
    fl.send(False, http_resp(rng, 700))
    fl.close()
    cap.wait(0.5)
    c = "10.1.0.175"
    fl = TcpFlow(cap, c, s, 45175, 80)
    fl.open()
    for path in ("/", "/api/status"):
        f = fl.send(True, http_req(name, path), ack_every=0)[-1]
        cap.note(f, "http_host", name, c, s, 80)
        fl.seg(False, TCP_ACK, dt_us=20000)
        fl.send(False, http_resp(rng, 400))
        cap.wait(0.2)
    fl.close()
    return cap


def cap_transit_external():
    cap = Capture("transit_external.pcap", desc="transit traffic, neither side internal: 198.51.100.9 asks "
                  "203.0.113.53 for tunnel.us.ngrok.com (answer A 3.134.39.220), then 198.51.100.9 opens TLS "
                  "to 3.125.209.94:443 with SNI tunnel.eu.ngrok.com")
    c = "198.51.100.9"
    dns_exchange(cap, c, "203.0.113.53", "tunnel.us.ngrok.com", [SEED_IP["tunnel.us.ngrok.com"]], ttl=60)
    cap.wait(0.2)
    tls_session(cap, c, SEED_IP["tunnel.eu.ngrok.com"], "tunnel.eu.ngrok.com", c2s=800, s2c=1500)
    return cap


def cap_dns_udp_port5300():
    cap = Capture("dns_udp_port5300.pcap", desc="DNS over UDP to port 5300 (no DNS port): 10.1.0.180 asks "
                  "192.0.2.53 for tunnel.us.ngrok.com (answered); tshark 4.0 decodes it through its UDP DNS "
                  "heuristic")
    rng = cap.rng
    srv, c = "192.0.2.53", "10.1.0.180"
    name, ip = "tunnel.us.ngrok.com", SEED_IP["tunnel.us.ngrok.com"]
    qid = rng.getrandbits(16)
    f = cap.udp(c, srv, 40180, 5300, dns_query(qid, name, edns=True))
    cap.note(f, "dns_query", name, c, srv, 5300)
    cap.udp(srv, c, 5300, 40180, dns_response(qid, name, 1, [ip], 60, edns=True), dt_us=15000)
    return cap


def cap_dns_tcp_port8053():
    cap = Capture("dns_tcp_port8053.pcap", tshark=False,
                  desc="DNS over TCP to port 8053 (RFC 7766 2-byte length prefix): 10.1.0.181 asks 192.0.2.53 "
                  "for tunnel.eu.ngrok.com (answered). tshark 4.0 has no TCP heuristic for DNS and shows only "
                  "TCP payload: the truth is the generator's own")
    rng = cap.rng
    srv, c = "192.0.2.53", "10.1.0.181"
    name, ip = "tunnel.eu.ngrok.com", SEED_IP["tunnel.eu.ngrok.com"]
    fl = TcpFlow(cap, c, srv, 40181, 8053)
    fl.open()
    qid = rng.getrandbits(16)
    f = fl.send(True, u16v(dns_query(qid, name, edns=True)), ack_every=0)[-1]
    cap.note(f, "dns_query", name, c, srv, 8053)
    fl.send(False, u16v(dns_response(qid, name, 1, [ip], 60, edns=True)), dt_us=15000)
    fl.close()
    return cap


def http_ua_request(cap, client, server, host, ua, path="/"):
    rng = cap.rng
    fl = TcpFlow(cap, client, server, rng.randrange(40000, 60999), 80)
    fl.open()
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\r\n").encode()
    f = fl.send(True, req, ack_every=0)[-1]
    cap.note(f, "http_host", host, client, server, 80)
    fl.seg(False, TCP_ACK, dt_us=20000)
    fl.send(False, http_resp(rng, 100))
    fl.close()


def tls_hello_only(cap, client, server, sni):
    fl = TcpFlow(cap, client, server, cap.rng.randrange(40000, 60999), 443)
    fl.open()
    f = fl.send(True, tls_records(client_hello(cap.rng, sni)), ack_every=0)[-1]
    cap.note(f, "tls_sni", sni, client, server, 443)
    fl.seg(False, TCP_ACK, dt_us=20000)
    fl.close()


def cap_sigma_network():
    cap = Capture("sigma_network.pcap", desc="SigmaHQ network rules on the wire: TLS SNI app1.localto.net, "
                  "demo-x.trycloudflare.com, abcd1234-8080.euw.devtunnels.ms (LocaltoNet, Cloudflared, "
                  "DevTunnels network_connection rules, Initiated); HTTP User-Agent rclone/v1.66.0 (proxy rule); "
                  "a TCP connection to 198.51.100.88:4444 (DestinationPort rule); DNS query "
                  "mainnet-seed-0001.nkn.org (Zeek DNS rule); then benign look-alikes of each: "
                  "localto.net.example.org, trycloudflare.co, devtunnels.ms.example.org, User-Agents "
                  "rclone-helper/1.0 and Mozilla/5.0 rclone/v1, port 4445, 4444 to 10.20.30.40, www.nkn.org, "
                  "seed.nkn.com")
    for i, sni in enumerate(("app1.localto.net", "demo-x.trycloudflare.com", "abcd1234-8080.euw.devtunnels.ms")):
        tls_hello_only(cap, f"10.1.0.{190 + i}", f"203.0.113.{41 + i}", sni)
        cap.wait(0.1)
    http_ua_request(cap, "10.1.0.193", "198.51.100.77", "files.example.net", "rclone/v1.66.0", "/upload")
    cap.wait(0.1)
    fl = TcpFlow(cap, "10.1.0.194", "198.51.100.88", 45194, 4444)
    fl.open()
    fl.send(True, b"\x00\x01hello")
    fl.close()
    cap.wait(0.1)
    dns_exchange(cap, "10.1.0.195", "192.0.2.53", "mainnet-seed-0001.nkn.org", ["198.51.100.99"], ttl=60)
    cap.wait(0.5)
    for i, sni in enumerate(("localto.net.example.org", "trycloudflare.co", "devtunnels.ms.example.org")):
        tls_hello_only(cap, f"10.1.0.{196 + i}", f"203.0.113.{51 + i}", sni)
        cap.wait(0.1)
    http_ua_request(cap, "10.1.0.199", "198.51.100.78", "files.example.net", "rclone-helper/1.0")
    http_ua_request(cap, "10.1.0.199", "198.51.100.78", "files.example.net", "Mozilla/5.0 rclone/v1")
    for dst, port in (("198.51.100.89", 4445), ("10.20.30.40", 4444)):
        fl = TcpFlow(cap, "10.1.0.200", dst, 45200 + port % 7, port)
        fl.open()
        fl.send(True, b"\x00\x01hello")
        fl.close()
    for name in ("www.nkn.org", "seed.nkn.com"):
        dns_exchange(cap, "10.1.0.201", "192.0.2.53", name, ["198.51.100.98"], ttl=60)
    return cap


def cap_sigma_http_status():
    cap = Capture("sigma_http_status.pcap", desc="SigmaHQ proxy rule on the response status (sc-status): GET "
                  "/oauth/idp/.well-known/openid-configuration answered 200 (CVE-2023-4966 rule: one alert, at "
                  "the response); the same answered 404 (none); on one keep-alive connection two such GETs "
                  "(separate segments) answered in one segment by 100 Continue, 403 and 200 (one alert, for the "
                  "second request); look-alikes: GET /index.html 200, POST to the path 200 (none)")
    rng = cap.rng
    path = "/oauth/idp/.well-known/openid-configuration"

    def exchange(client, server, reqs, resps, host="gw.example.net"):
        fl = TcpFlow(cap, client, server, rng.randrange(40000, 60999), 80)
        fl.open()
        for method, target in reqs:
            req = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
            f = fl.send(True, req, ack_every=0)[-1]
            cap.note(f, "http_host", host, client, server, 80)
        fl.seg(False, TCP_ACK, dt_us=20000)
        fl.send(False, b"".join(resps))
        fl.close()
        cap.wait(0.1)

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    exchange("10.1.0.210", "198.51.100.120", [("GET", path)], [ok])
    exchange("10.1.0.211", "198.51.100.121", [("GET", path)],
             [b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"])
    exchange("10.1.0.212", "198.51.100.122", [("GET", path), ("GET", path + "?x=1")],
             [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!", ok])
    exchange("10.1.0.213", "198.51.100.123", [("GET", "/index.html")], [ok])
    exchange("10.1.0.214", "198.51.100.124", [("POST", path)], [ok])
    return cap


def all_captures():
    return [
        cap_demo(), cap_seed_names(), cap_seed_quic(), cap_tls_split(), cap_tls_split7_ooo(),
        cap_tls_record_frag(), cap_tls_snaplen_cut(), cap_dns_tcp_split(),
        encap_capture("vlan_dns.pcap", wrap_vlan, "802.1Q VLAN 100: DNS v4/v6 + TLS"),
        encap_capture("qinq_dns.pcap", wrap_qinq, "QinQ 802.1ad 0x88a8 (S-VLAN 200) + 802.1Q (C-VLAN 100): "
                      "DNS v4/v6 + TLS"),
        encap_capture("mpls_dns.pcap", wrap_mpls, "MPLS two-label stack over Ethernet: DNS v4/v6 + TLS"),
        encap_capture("gre_tls.pcap", Outer("gre"), "GRE (RFC 2784) over IPv4 carrying IPv4/IPv6: DNS + TLS"),
        encap_capture("erspan2_dns.pcap", Outer("erspan2"), "ERSPAN type II (GRE 0x88be, sequence number) "
                      "carrying Ethernet: DNS v4/v6 + TLS"),
        encap_capture("erspan3_dns.pcap", Outer("erspan3"), "ERSPAN type III (GRE 0x22eb) carrying Ethernet: "
                      "DNS v4/v6 + TLS"),
        encap_capture("vxlan_dns.pcap", Outer("vxlan"), "VXLAN (UDP 4789, VNI 5001) carrying Ethernet: DNS "
                      "v4/v6 + TLS"),
        cap_ipv4_options(), cap_ipv6_ext(), cap_ip_frag(),
        encap_capture("sll_dns.pcap", wrap_sll, "LINUX_SLL (113) link type: DNS v4/v6 + TLS",
                      linktype=LINKTYPE_LINUX_SLL),
        encap_capture("sll2_dns.pcap", wrap_sll2, "LINUX_SLL2 (276) link type: DNS v4/v6 + TLS",
                      linktype=LINKTYPE_LINUX_SLL2),
        encap_capture("raw_dns.pcap", wrap_raw, "LINKTYPE_RAW (101): DNS v4/v6 + TLS", linktype=LINKTYPE_RAW),
        encap_capture("ipv4_dns.pcap", wrap_raw, "LINKTYPE_IPV4 (228): DNS + TLS", v6_also=False,
                      linktype=LINKTYPE_IPV4),
        encap_capture("null_dns.pcap", wrap_null, "NULL (0, host-order family; AF_INET6 as 30): DNS v4/v6 + TLS",
                      linktype=LINKTYPE_NULL),
        encap_capture("loop_dns.pcap", wrap_loop, "LOOP (108, network-order family; AF_INET6 as 30): DNS v4/v6 "
                      "+ TLS", linktype=LINKTYPE_LOOP),
        cap_multi_if(), cap_nanosec(), cap_truncated(), cap_resolver_attrib(), cap_dedup_1000(),
        cap_inbound_server(), cap_benign_mix(),
        encap_capture("ppp_dns.pcap", wrap_ppp, "PPP (9) link type: IPv4 with ff 03 0021, IPv6 with address/"
                      "control and protocol compressed (0x57): DNS v4/v6 + TLS", linktype=LINKTYPE_PPP),
        encap_capture("chdlc_dns.pcap", wrap_chdlc, "Cisco HDLC (104) link type: DNS v4/v6 + TLS",
                      linktype=LINKTYPE_C_HDLC),
        encap_capture("radiotap_dns.pcap", wrap_radiotap, "IEEE 802.11 with radiotap (127): data frames (IPv4) "
                      "and QoS data frames (IPv6), ToDS/FromDS, LLC/SNAP, FCS flagged in radiotap: DNS v4/v6 + "
                      "TLS", linktype=LINKTYPE_IEEE802_11_RADIOTAP),
        encap_capture("gre_udp_dns.pcap", Outer("gre_udp"), "GRE-in-UDP (RFC 8086, UDP 4754) carrying IPv4/IPv6: "
                      "DNS + TLS"),
        cap_quic_greased(), cap_dns_forward_ptr(),
        cap_proxy_connect_tls(), cap_socks5_tls(), cap_smtp_starttls(), cap_proxy_v2_tls(), cap_http_pipelined(),
        cap_tcp_fastopen_tls(), cap_dns_cname_chain(), cap_tls_hrr(), cap_http_retrans(),
        cap_transit_external(), cap_dns_udp_port5300(), cap_dns_tcp_port8053(),
        cap_sigma_network(), cap_sigma_http_status(),
    ]


def write_capture(cap, out):
    path = os.path.join(out, cap.name)
    if cap.fmt == "pcapng":
        write_pcapng(path, cap, ["eth0", "tun0"])
    else:
        write_pcap(path, cap)
    rows = cap.truth
    if cap.cut_bytes is not None:
        # Frames wholly before the cut survive.
        pos, keep = 24, 0
        for _, _, d in cap.frames:
            pos += 16 + len(d)
            if pos > cap.cut_bytes:
                break
            keep += 1
        rows = [r for r in rows if r[0] <= keep]
    rows = sorted(rows, key=lambda r: r[0])  # stable: insertion order within a frame
    with open(path + ".truth.tsv", "w", encoding="utf-8", newline="\n") as f:  # names may hold UTF-8
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    for fname, text in cap.extra_files.items():
        with open(os.path.join(out, fname), "w", encoding="ascii", newline="\n") as f:
            f.write(text)
    return len(cap.frames), len(rows)


def generate_all(out):
    os.makedirs(out, exist_ok=True)
    manifest = ["# capture\tlinktype\tframes\ttruth_rows\ttshark_visible\twhat it exercises"]
    for cap in all_captures():
        nframes, nrows = write_capture(cap, out)
        lt = ",".join(str(x) for x in cap.linktypes)
        manifest.append(f"{cap.name}\t{lt}\t{nframes}\t{nrows}\t{cap.tshark if isinstance(cap.tshark, str) else ('yes' if cap.tshark else 'no')}\t{cap.desc}")
    with open(os.path.join(out, "MANIFEST.tsv"), "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(manifest) + "\n")


# ---------------------------------------------------------------- --flows N: streaming stress capture

def gen_flows(n, out_path):
    """N distinct short flows (SYN, ClientHello, FIN), the last one to tunnel.us.ngrok.com.

    Records are packed directly (big-endian pcap, every header field in one struct call) with
    checksums computed incrementally from precomputed sums, so 2M flows take well under a minute."""
    rng = random.Random(seed_of("flows"))
    rec = struct.Struct("!IIII12sHBBHHHBBHIIHHIIBBHHH")
    eth = bytes.fromhex("00005e0001fe") + mac_of("10.2.0.1")
    dsts = [int(ipaddress.IPv4Address(a)) for a in ("93.184.216.34", "198.51.100.10", "203.0.113.20",
                                                    "192.0.2.80")]
    template = "h00000000.example.net"
    hello = tls_records(client_hello(rng, template))
    dig = hello.index(b"h00000000") + 1  # offset of the 8 digits in the TCP payload
    zero_sum = csum_add(hello)
    # contributions of 4 digits at positions dig..dig+3 and dig+4..dig+7 (same parity: 4 is even)
    w = [256 if (dig + k) % 2 == 0 else 1 for k in range(4)]
    zero4 = sum(48 * x for x in w)
    table = [sum(ord(ch) * x for ch, x in zip("%04d" % v, w)) - zero4 for v in range(10000)]
    pre, post = hello[:dig], hello[dig + 8:]
    plen = len(hello)
    t0 = T0 * 1_000_000
    with open(out_path, "wb", buffering=1 << 20) as f:
        f.write(struct.pack("!IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_EN10MB))
        batch = []
        for i in range(n - 1):
            sip = (10 << 24) | (2 << 16) | ((i // 50000) + 1)
            dip = dsts[i & 3]
            sport = 10000 + i % 50000
            seq = (i * 2654435761) & 0xFFFFFFFF
            ack = (seq ^ 0x5A5A5A5A) & 0xFFFFFFFF
            ident = i & 0xFFFF
            ipw = (sip >> 16) + (sip & 0xFFFF) + (dip >> 16) + (dip & 0xFFFF)
            t = t0 + i * 25
            num = i % 100000000
            hi, lo = divmod(num, 10000)
            base_tcp = ipw + 6 + sport + 443 + 64240
            # SYN
            s = base_tcp + 20 + (seq >> 16) + (seq & 0xFFFF) + 0x5002
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
            ic = 0x4500 + 40 + ident + 0x4000 + 0x4006 + ipw
            ic = (ic & 0xFFFF) + (ic >> 16)
            ic = (ic & 0xFFFF) + (ic >> 16)
            batch.append(rec.pack(t // 1000000, t % 1000000, 54, 54, eth, 0x0800, 0x45, 0, 40, ident, 0x4000,
                                  64, 6, ~ic & 0xFFFF, sip, dip, sport, 443, seq, 0, 0x50, 0x02, 64240,
                                  ~s & 0xFFFF, 0))
            # ClientHello
            seq1 = (seq + 1) & 0xFFFFFFFF
            s = (base_tcp + 20 + plen + (seq1 >> 16) + (seq1 & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + 0x5018
                 + zero_sum + table[hi] + table[lo])
            while s >> 16:
                s = (s & 0xFFFF) + (s >> 16)
            ic = 0x4500 + 40 + plen + ((ident + 1) & 0xFFFF) + 0x4000 + 0x4006 + ipw
            ic = (ic & 0xFFFF) + (ic >> 16)
            ic = (ic & 0xFFFF) + (ic >> 16)
            batch.append(rec.pack(t // 1000000, t % 1000000 + 5, 54 + plen, 54 + plen, eth, 0x0800, 0x45, 0,
                                  40 + plen, (ident + 1) & 0xFFFF, 0x4000, 64, 6, ~ic & 0xFFFF, sip, dip, sport,
                                  443, seq1, ack, 0x50, 0x18, 64240, ~s & 0xFFFF, 0))
            batch.append(pre + b"%04d%04d" % (hi, lo) + post)
            # FIN
            seq2 = (seq1 + plen) & 0xFFFFFFFF
            s = base_tcp + 20 + (seq2 >> 16) + (seq2 & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + 0x5011
            while s >> 16:
                s = (s & 0xFFFF) + (s >> 16)
            ic = 0x4500 + 40 + ((ident + 2) & 0xFFFF) + 0x4000 + 0x4006 + ipw
            ic = (ic & 0xFFFF) + (ic >> 16)
            ic = (ic & 0xFFFF) + (ic >> 16)
            batch.append(rec.pack(t // 1000000, t % 1000000 + 10, 54, 54, eth, 0x0800, 0x45, 0, 40,
                                  (ident + 2) & 0xFFFF, 0x4000, 64, 6, ~ic & 0xFFFF, sip, dip, sport, 443, seq2,
                                  ack, 0x50, 0x11, 64240, ~s & 0xFFFF, 0))
            if len(batch) >= 40000:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))
        # The last flow: 10.1.0.23 -> tunnel.us.ngrok.com, built with the general (slow) path.
        cap = Capture("flows-tail")
        cap.t = (t0 + n * 25) * 1000
        c, s_ip = "10.1.0.23", SEED_IP["tunnel.us.ngrok.com"]
        fl = TcpFlow(cap, c, s_ip, 40023, 443)
        fl.seg(True, TCP_SYN)
        fl.cseq += 1
        fl.send(True, tls_records(client_hello(cap.rng, "tunnel.us.ngrok.com")), ack_every=0)
        fl.seg(True, TCP_FIN | TCP_ACK)
        for ts, _, d in cap.frames:
            us = ts // 1000
            f.write(struct.pack("!IIII", us // 1000000, us % 1000000, len(d), len(d)) + d)
    return 3 * n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pcaps"))
    ap.add_argument("--flows", type=int, metavar="N", help="write N short flows to OUT.pcap (streamed)")
    ap.add_argument("path", nargs="?", help="output file for --flows")
    a = ap.parse_args()
    if a.flows is not None:
        if not a.path or a.flows < 1:
            ap.error("--flows N needs N >= 1 and an output file")
        t = time.monotonic()
        frames = gen_flows(a.flows, a.path)
        print(f"{a.path}: {a.flows} flows, {frames} frames, {time.monotonic() - t:.1f} s", file=sys.stderr)
        return 0
    generate_all(os.path.normpath(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
