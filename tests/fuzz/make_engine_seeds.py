#!/usr/bin/python3
"""make_engine_seeds.py: writes the seed corpus of tests/fuzz/fuzz_engine.c.

    /usr/bin/python3 tests/fuzz/make_engine_seeds.py [OUT]     (default tests/fuzz/corpus/engine)

Each seed is a sequence of records [len u16 BE][flags u8][payload] (the format is described at
the top of fuzz_engine.c). Most records use template mode: the payload is a TCP or UDP payload
that the harness wraps between 10.1.0.23:40000 and 3.134.39.220:PORT, carrying sequence numbers
per port and direction. Everything is built byte by byte with the standard library only, from
fixed values, so the output is byte-identical from run to run. The QUIC seed reuses the RFC 9001
Appendix A.2 client Initial of the quic fuzz corpus (encrypting one here would need AES).
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# record flags (fuzz_engine.c)
TPL, UDP, SYN, SRV, CTL, BATCH = 0x01, 0x02, 0x04, 0x08, 0x40, 0x80
T_1MS, T_2S, T_15S, T_150S = 0x00, 0x10, 0x20, 0x30
# control byte: port index in the harness's ports[], then FIN/RST/gap, retransmission, no ACK
PORTS = [443, 80, 8080, 3128, 1080, 25, 587, 110, 143, 21, 5222, 389, 53, 5300, 3389, 4433]
FIN, RST, GAP, RETX = 0x10, 0x20, 0x30, 0x40  # GAP: the next byte B puts the segment 16*B ahead


def rec(payload, flags=TPL, ctl=None):
    if ctl is not None:
        payload = bytes([ctl]) + payload
        flags |= CTL
    return struct.pack(">HB", len(payload), flags) + payload


def port(p, extra=0):
    return PORTS.index(p) | extra


def handshake(p):
    """SYN, SYN+ACK, ACK on port p (the control byte selects the port)."""
    return (rec(b"", TPL | SYN, port(p)) + rec(b"", TPL | SYN | SRV) + rec(b""))


def close(p):
    return rec(b"", TPL, port(p, FIN)) + rec(b"", TPL | SRV, port(p, FIN)) + rec(b"")


# ---- TLS ----

def u8v(b):
    return bytes([len(b)]) + b


def u16v(b):
    return struct.pack(">H", len(b)) + b


def ext(t, body):
    return struct.pack(">H", t) + u16v(body)


def client_hello(sni, random=b"\x11" * 32, key_share=True):
    exts = b""
    if sni:
        exts += ext(0x0000, u16v(b"\x00" + u16v(sni.encode())))
    exts += ext(0x000a, u16v(b"\x00\x1d\x00\x17"))            # supported_groups
    exts += ext(0x000b, b"\x01\x00")                          # ec_point_formats
    exts += ext(0x000d, u16v(b"\x04\x03\x08\x04\x04\x01"))    # signature_algorithms
    exts += ext(0x0010, u16v(u8v(b"h2") + u8v(b"http/1.1")))  # ALPN
    exts += ext(0x002b, u8v(b"\x03\x04\x03\x03"))             # supported_versions
    if key_share:
        exts += ext(0x0033, u16v(b"\x00\x1d" + u16v(b"\x42" * 32)))
    else:
        exts += ext(0x0033, u16v(b""))
    body = (b"\x03\x03" + random + u8v(b"\x22" * 32) + u16v(b"\x13\x01\x13\x02\xc0\x2f")
            + b"\x01\x00" + u16v(exts))
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + u16v(hs)


HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def hello_retry_request():
    exts = ext(0x002b, b"\x03\x04") + ext(0x0033, b"\x00\x17")
    body = b"\x03\x03" + HRR_RANDOM + u8v(b"\x22" * 32) + b"\x13\x01\x00" + u16v(exts)
    hs = b"\x02" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x03" + u16v(hs)


def server_hello():
    exts = ext(0x002b, b"\x03\x04") + ext(0x0033, b"\x00\x1d" + u16v(b"\x55" * 32))
    body = b"\x03\x03" + b"\x33" * 32 + u8v(b"\x22" * 32) + b"\x13\x01\x00" + u16v(exts)
    hs = b"\x02" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x03" + u16v(hs) + b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03" + u16v(b"\x99" * 40)


# ---- DNS ----

def dns_name(name):
    return b"".join(u8v(l.encode()) for l in name.split(".")) + b"\x00"


def dns_query(qid, name):
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + dns_name(name) + b"\x00\x01\x00\x01"


def dns_answer(qid, name, ip):
    q = dns_name(name) + b"\x00\x01\x00\x01"
    a = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack(">IH", 300, 4) + bytes(ip)
    return struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + a


NGROK = "tunnel.us.ngrok.com"
SERVER_IP = (3, 134, 39, 220)


def seed_tls_split():
    ch = client_hello(NGROK)
    cut = 70  # inside the SNI's extension block
    return (handshake(443) + rec(ch[:cut], TPL, port(443)) + rec(ch[cut:], TPL | T_2S)
            + rec(server_hello(), TPL | SRV) + close(443))


def seed_connect_tls():
    req = ("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\nUser-Agent: curl/8.5\r\n"
           "Proxy-Connection: Keep-Alive\r\n\r\n" % (NGROK, NGROK)).encode()
    return (handshake(3128) + rec(req) + rec(b"HTTP/1.1 200 Connection established\r\n\r\n", TPL | SRV)
            + rec(client_hello(NGROK)) + rec(server_hello(), TPL | SRV) + close(3128))


def seed_socks5_tls():
    name = NGROK.encode()
    return (handshake(1080) + rec(b"\x05\x01\x00") + rec(b"\x05\x00", TPL | SRV)
            + rec(b"\x05\x01\x00\x03" + u8v(name) + b"\x01\xbb")
            + rec(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00", TPL | SRV)
            + rec(client_hello(NGROK)) + close(1080))


def seed_smtp_starttls():
    return (handshake(587) + rec(b"220 mail.example.com ESMTP\r\n", TPL | SRV)
            + rec(b"EHLO client.example\r\n")
            + rec(b"250-mail.example.com\r\n250-STARTTLS\r\n250 8BITMIME\r\n", TPL | SRV)
            + rec(b"STARTTLS\r\n") + rec(b"220 2.0.0 Ready to start TLS\r\n", TPL | SRV)
            + rec(client_hello("a1b2.ngrok-free.app")) + close(587))


def seed_http_pipelined():
    r1 = b"GET / HTTP/1.1\r\nHost: a1b2.ngrok-free.app\r\nAccept: */*\r\n\r\n"
    r2 = (b"POST /x HTTP/1.1\r\nHost: swift-fox.trycloudflare.com\r\nContent-Length: 5\r\n\r\n"
          b"hello")
    r3 = b"GET /y HTTP/1.1\r\nHost: ok.example.loca.lt\r\n\r\n"
    return (handshake(80) + rec(r1 + r2[:30]) + rec(r2[30:] + r3, TPL | T_2S)
            + rec(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", TPL | SRV) + close(80))


def seed_dns_udp_5300():
    q = dns_query(0x1234, NGROK)
    # the answer binds 3.134.39.220 to the name; the TLS flow after it has no SNI
    return (rec(q, TPL | UDP, port(5300)) + rec(dns_answer(0x1234, NGROK, SERVER_IP), TPL | UDP | SRV)
            + handshake(443) + rec(client_hello(None)) + close(443))


def seed_dns_tcp():
    q = dns_query(0x4321, "x.tunnel.eu.ngrok.com")
    a = dns_answer(0x4321, "x.tunnel.eu.ngrok.com", SERVER_IP)
    m = u16v(q) + u16v(dns_query(0x4322, "ngrok.io"))
    return (handshake(53) + rec(m[:7]) + rec(m[7:]) + rec(u16v(a), TPL | SRV) + close(53))


def seed_hrr():
    return (handshake(443) + rec(client_hello(NGROK, key_share=False), TPL, port(443))
            + rec(hello_retry_request(), TPL | SRV)
            + rec(client_hello(NGROK, key_share=True)) + rec(server_hello(), TPL | SRV)
            + close(443))


def seed_quic():
    with open(os.path.join(HERE, "corpus", "quic", "rfc9001_a2"), "rb") as f:
        dgram = f.read()[2:]  # past the quic fuzzer's split prefix
    return rec(dgram, TPL | UDP, port(443)) + rec(dgram, TPL | UDP | T_150S)


def seed_reorder_expiry():
    """A ClientHello in three segments, the last one sent first (128 bytes ahead, the sequence
    kept), then the first twice (a retransmission) and the middle one, in one batch; then
    150 s of silence (idle expiry runs at the tick) and a RST."""
    ch = client_hello("b.tunnel.eu.ngrok.com")
    a, b, c = ch[:48], ch[48:128], ch[128:]
    return (handshake(8080)
            + rec(b"\x08" + c, TPL | BATCH, port(8080, GAP | RETX))
            + rec(a, TPL | BATCH, port(8080, RETX)) + rec(a, TPL | BATCH) + rec(b, TPL)
            + rec(b"", TPL | T_150S) + rec(b"", TPL | T_15S, port(8080, RST)))


def ip4(src, dst, proto, l4):
    h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 7, 0, 64, proto, 0, bytes(src), bytes(dst))
    return h + l4


def seed_raw():
    """Raw IPv4 packets (not template mode): a DNS query over UDP, its two fragments, and an
    IPv6 UDP query, on link types 101 and 12."""
    q = dns_query(0x0101, "edge.tunnel.us.ngrok.com")
    udp = struct.pack(">HHHH", 40001, 53, 8 + len(q), 0) + q
    whole = ip4((192, 168, 1, 5), (8, 8, 8, 8), 17, udp)
    f0 = bytearray(ip4((192, 168, 1, 5), (8, 8, 8, 8), 17, udp[:24]))
    f0[6] = 0x20  # MF, offset 0
    f1 = bytearray(ip4((192, 168, 1, 5), (8, 8, 8, 8), 17, udp[24:]))
    f1[6:8] = struct.pack(">H", 3)  # offset 24 bytes
    src6 = bytes.fromhex("fd000000000000000000000000000005")
    dst6 = bytes.fromhex("20014860486000000000000000008888")
    v6 = struct.pack(">IHBB", 0x60000000, len(udp), 17, 64) + src6 + dst6 + udp
    return rec(whole, 0) + rec(bytes(f0), UDP) + rec(bytes(f1), UDP) + rec(v6, 0)


SEEDS = {
    "tls_sni_split": seed_tls_split,
    "connect_tls": seed_connect_tls,
    "socks5_tls": seed_socks5_tls,
    "smtp_starttls": seed_smtp_starttls,
    "http_pipelined": seed_http_pipelined,
    "dns_udp_5300": seed_dns_udp_5300,
    "dns_tcp": seed_dns_tcp,
    "tls_hrr": seed_hrr,
    "quic_initial": seed_quic,
    "reorder_expiry": seed_reorder_expiry,
    "raw_ip": seed_raw,
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "engine")
    os.makedirs(out, exist_ok=True)
    for name, fn in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(fn())


if __name__ == "__main__":
    main()
