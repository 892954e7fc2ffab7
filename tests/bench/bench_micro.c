/* bench_micro.c - micro-benchmarks of the packet path's parsers and flow table.
 *
 * Measures, in one process and with fixed inputs built here byte by byte: dns_parse() of a
 * query and of a response (CNAME + 2 A records, EDNS); tls_hello_from_records() plus
 * tls_parse_hello() (SNI, ALPN, JA4) of a Chrome-like ClientHello, classic and post-quantum
 * sized (1216-byte ML-KEM key share); flow_lookup() + flow_update() over a working set of
 * distinct flows that fits the table, and over one four times the flow cap (every lookup
 * creates a flow and evicts the oldest). Each figure is the best of 3 timed rounds, to keep
 * a noisy neighbour out of it. Output: one "name<TAB>ops/s<TAB>ns/op" line per measurement.
 *
 * Usage: bench_micro [ITERATIONS]   (default 2000000 per round)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/dns.h"
#include "tunnelwatch/flow.h"
#include "tunnelwatch/tls.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- a tiny byte builder (fixed buffers; inputs are ours, sizes are known) --- */
struct buf {
    uint8_t b[4096];
    size_t n;
};

static void put(struct buf *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void u8(struct buf *w, unsigned v)
{
    w->b[w->n++] = (uint8_t)v;
}

static void u16(struct buf *w, unsigned v)
{
    u8(w, v >> 8);
    u8(w, v & 0xff);
}

/* patches a 16-bit (or 24-bit) length at off with the bytes written after it */
static void len16(struct buf *w, size_t off)
{
    size_t n = w->n - off - 2;
    w->b[off] = (uint8_t)(n >> 8);
    w->b[off + 1] = (uint8_t)n;
}

static void dns_qname(struct buf *w, const char *name)
{
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        u8(w, (unsigned)n);
        put(w, p, n);
        p += n + (dot ? 1 : 0);
    }
    u8(w, 0);
}

/* RFC 1035 4.1: header, question; response: CNAME (compressed owner) + 2 A, then OPT */
static void build_dns(struct buf *w, bool response)
{
    w->n = 0;
    u16(w, 0x1234);
    u16(w, response ? 0x8180 : 0x0100);
    u16(w, 1);
    u16(w, response ? 3 : 0);
    u16(w, 0);
    u16(w, 1);
    dns_qname(w, "login.microsoftonline.com");
    u16(w, 1);
    u16(w, 1);
    if (response) {
        u16(w, 0xc00c); /* owner: the question name */
        u16(w, 5);
        u16(w, 1);
        u16(w, 0);
        u16(w, 300);
        size_t rd = w->n;
        u16(w, 0);
        dns_qname(w, "login.mso.msidentity.com");
        len16(w, rd);
        for (unsigned i = 0; i < 2; i++) {
            u16(w, 0xc000 | (unsigned)(rd + 2)); /* owner: the CNAME target */
            u16(w, 1);
            u16(w, 1);
            u16(w, 0);
            u16(w, 60);
            u16(w, 4);
            u8(w, 20);
            u8(w, 190);
            u8(w, 160);
            u8(w, 10 + i);
        }
    }
    u8(w, 0); /* OPT: root owner, type 41, 1232-byte payload */
    u16(w, 41);
    u16(w, 1232);
    u16(w, 0);
    u16(w, 0);
    u16(w, 0);
}

static void ext_begin(struct buf *w, unsigned type, size_t *off)
{
    u16(w, type);
    *off = w->n;
    u16(w, 0);
}

/* RFC 8446 4.1.2 ClientHello in one handshake record, Chrome's extension set (GREASE,
 * SNI, ALPN, groups, key_share, supported_versions, signature algorithms...). */
static void build_hello(struct buf *w, bool pq)
{
    static const uint16_t ciphers[] = {0x5a5a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f,
                                       0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
                                       0x009c, 0x009d, 0x002f, 0x0035};
    size_t rec, hs, exts, e, l;
    w->n = 0;
    u8(w, 0x16);
    u16(w, 0x0301);
    rec = w->n;
    u16(w, 0);
    u8(w, 1);
    hs = w->n;
    u8(w, 0);
    u16(w, 0);
    u16(w, 0x0303);
    for (unsigned i = 0; i < 32; i++)
        u8(w, i * 7);
    u8(w, 32);
    for (unsigned i = 0; i < 32; i++)
        u8(w, i * 13);
    u16(w, sizeof(ciphers));
    for (size_t i = 0; i < sizeof(ciphers) / 2; i++)
        u16(w, ciphers[i]);
    u8(w, 1);
    u8(w, 0);
    exts = w->n;
    u16(w, 0);
    ext_begin(w, 0x2a2a, &e); /* GREASE */
    len16(w, e);
    ext_begin(w, 0x0000, &e); /* server_name */
    l = w->n;
    u16(w, 0);
    u8(w, 0);
    u16(w, 19);
    put(w, "tunnel.us.ngrok.com", 19);
    len16(w, l);
    len16(w, e);
    ext_begin(w, 0x0017, &e);
    len16(w, e);
    ext_begin(w, 0xff01, &e);
    u8(w, 0);
    len16(w, e);
    ext_begin(w, 0x000a, &e); /* supported_groups */
    u16(w, pq ? 10 : 8);
    u16(w, 0x4a4a);
    if (pq)
        u16(w, 0x11ec);
    u16(w, 0x001d);
    u16(w, 0x0017);
    u16(w, 0x0018);
    len16(w, e);
    ext_begin(w, 0x000b, &e);
    u8(w, 1);
    u8(w, 0);
    len16(w, e);
    ext_begin(w, 0x0023, &e);
    len16(w, e);
    ext_begin(w, 0x0010, &e); /* ALPN */
    l = w->n;
    u16(w, 0);
    u8(w, 2);
    put(w, "h2", 2);
    u8(w, 8);
    put(w, "http/1.1", 8);
    len16(w, l);
    len16(w, e);
    ext_begin(w, 0x0005, &e);
    put(w, "\x01\0\0\0\0", 5);
    len16(w, e);
    ext_begin(w, 0x000d, &e); /* signature_algorithms */
    put(w, "\x00\x10\x04\x03\x08\x04\x04\x01\x05\x03\x08\x05\x05\x01\x08\x06\x06\x01", 18);
    len16(w, e);
    ext_begin(w, 0x0012, &e);
    len16(w, e);
    ext_begin(w, 0x0033, &e); /* key_share */
    l = w->n;
    u16(w, 0);
    u16(w, 0x4a4a);
    u16(w, 1);
    u8(w, 0);
    if (pq) {
        u16(w, 0x11ec);
        u16(w, 1216);
        for (unsigned i = 0; i < 1216; i++)
            u8(w, (i * 31) & 0xff);
    }
    u16(w, 0x001d);
    u16(w, 32);
    for (unsigned i = 0; i < 32; i++)
        u8(w, i * 3);
    len16(w, l);
    len16(w, e);
    ext_begin(w, 0x002d, &e);
    put(w, "\x01\x01", 2);
    len16(w, e);
    ext_begin(w, 0x002b, &e); /* supported_versions */
    put(w, "\x06\x6a\x6a\x03\x04\x03\x03", 7);
    len16(w, e);
    ext_begin(w, 0x1a1a, &e);
    u8(w, 0);
    len16(w, e);
    len16(w, exts);
    size_t n = w->n - hs - 3;
    w->b[hs] = (uint8_t)(n >> 16);
    w->b[hs + 1] = (uint8_t)(n >> 8);
    w->b[hs + 2] = (uint8_t)n;
    len16(w, rec);
}

static void report(const char *name, double best, long iters)
{
    printf("%s\t%.0f\t%.1f\n", name, (double)iters / best, best * 1e9 / (double)iters);
}

static volatile size_t sink;

static int bench_dns(const char *name, bool response, long iters)
{
    struct buf w;
    static struct dns_msg m; /* ~70 KB: not on the stack */
    build_dns(&w, response);
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t = now_s();
        for (long i = 0; i < iters; i++) {
            if (dns_parse(w.b, w.n, &m) != TW_OK)
                return 1;
            sink += m.n_q + m.n_an;
        }
        t = now_s() - t;
        best = t < best ? t : best;
    }
    report(name, best, iters);
    return 0;
}

static int bench_tls(const char *name, bool pq, long iters)
{
    struct buf w;
    static uint8_t hello[TLS_HELLO_MAX];
    struct tls_hello h;
    build_hello(&w, pq);
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t = now_s();
        for (long i = 0; i < iters; i++) {
            long n = tls_hello_from_records(w.b, w.n, hello, sizeof(hello));
            if (n <= 0 || tls_parse_hello(hello, (size_t)n, false, &h) != TW_OK)
                return 1;
            sink += h.sni_len;
        }
        t = now_s() - t;
        best = t < best ? t : best;
    }
    report(name, best, iters);
    return 0;
}

static void end_cb(void *ud, struct flow *f, enum flow_end_reason why)
{
    (void)f;
    (void)why;
    ++*(uint64_t *)ud;
}

static bool internal_cb(void *ud, const struct tw_addr *a)
{
    (void)ud;
    return a->family == 4 && a->a[0] == 10;
}

/* distinct flows i = 0..set-1: 10.x.y.z:port -> 198.18.0.1:443, visited in a scrambled
 * order (a multiplicative step modulo the set) so the table sees no locality */
static int bench_flow(const char *name, uint32_t max_flows, uint32_t set, long iters)
{
    struct flow_opts o = {max_flows, 120, 60, 10, 64, false};
    uint64_t ended = 0;
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        struct flow_table *t = flow_table_new(&o, end_cb, &ended);
        if (!t)
            return 1;
        struct dec_pkt p;
        memset(&p, 0, sizeof(p));
        p.proto = 6;
        p.dst.family = 4;
        memcpy(p.dst.a, "\xc6\x12\x00\x01", 4);
        p.dport = 443;
        p.src.family = 4;
        p.src.a[0] = 10;
        p.tcp_flags = TW_TH_ACK;
        struct tw_time now = {1709294400, 0};
        double t0 = now_s();
        for (long i = 0; i < iters; i++) {
            uint32_t k = (uint32_t)(((uint64_t)i * 2654435761u) % set);
            p.src.a[1] = (uint8_t)(k >> 16);
            p.src.a[2] = (uint8_t)(k >> 8);
            p.src.a[3] = (uint8_t)k;
            p.sport = (uint16_t)(10000 + (k & 0x3ff));
            int dir;
            struct flow *f = flow_lookup(t, &p, now, &dir, internal_cb, NULL);
            if (!f)
                return 1;
            flow_update(t, f, &p, dir, 60, now);
            now.usec = (int32_t)((now.usec + 1) % 1000000);
        }
        double dt = now_s() - t0;
        best = dt < best ? dt : best;
        flow_table_free(t);
    }
    report(name, best, iters);
    return 0;
}

int main(int argc, char **argv)
{
    long iters = 2000000;
    if (argc > 1) {
        char *end;
        iters = strtol(argv[1], &end, 10);
        if (*end || iters <= 0) {
            fprintf(stderr, "usage: bench_micro [ITERATIONS]\n");
            return 2;
        }
    }
    printf("# benchmark\tops/s\tns/op\n");
    int bad = 0;
    bad |= bench_dns("dns_parse_query", false, iters);
    bad |= bench_dns("dns_parse_response", true, iters);
    bad |= bench_tls("tls_hello_parse", false, iters);
    bad |= bench_tls("tls_hello_parse_pq", true, iters);
    bad |= bench_flow("flow_lookup_hot_64k", 262144, 65536, iters);
    bad |= bench_flow("flow_lookup_evict_1m", 262144, 1048576, iters);
    if (bad)
        fprintf(stderr, "bench_micro: a fixture did not parse\n");
    return bad ? 1 : 0;
}
