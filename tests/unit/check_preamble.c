/* check_preamble.c - unit tests for pre_scan(): every preamble whole, fed one byte more per
 * call (so every split point is seen) and in two pieces cut at every offset; malformed
 * variants that must give PRE_NONE and never PRE_TLS_AT; the caps; and the real captures of
 * the shared corpus, replayed through TCP reassembly the way the engine does it. */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/http.h"
#include "tunnelwatch/preamble.h"
#include "tunnelwatch/stream.h"
#include "tunnelwatch/tls.h"
#include "tw_check.h"

/* A ClientHello record header and the start of its body: handshake 22, TLS 1.0 record,
 * length 0x2a, ClientHello (1), length 0x26, version 3.3 */
#define HELLO     "\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03"
#define HELLO_LEN 11

struct outcome {
    int verdict;   /* the last verdict: PRE_TLS_AT, PRE_HTTP_AT, PRE_NONE or PRE_NEED_MORE */
    size_t at;     /* absolute stream offset of the TLS/HTTP start */
    char log[512]; /* "kind[authority:port|host]," per skipped message that carried a name */
    int skips;
};

/* One scan loop as the engine runs it: scan, drop what was skipped, scan again. The buffer is
 * copied at exactly the size given so that ASan sees any overread. */
static int scan_loop(struct pre_state *st, const uint8_t *b, size_t n, size_t *done,
                     struct outcome *o)
{
    for (;;) {
        size_t left = n - *done;
        uint8_t *copy = malloc(left ? left : 1);
        memcpy(copy, b + *done, left);
        struct pre_result r;
        int v = pre_scan(st, copy, left, &r);
        ck_assert_int_ge(v, PRE_NEED_MORE);
        ck_assert_int_le(v, PRE_NONE);
        if (v == PRE_SKIP) {
            ck_assert_uint_gt(r.off, 0);
            ck_assert_uint_le(r.off, left);
            if (r.authority || r.host) {
                char item[300];
                snprintf(item, sizeof(item), "%s[%.*s:%u|%.*s],", pre_kind_name(r.kind),
                         (int)r.authority_len, r.authority ? (const char *)r.authority : "", r.port,
                         (int)r.host_len, r.host ? (const char *)r.host : "");
                ck_assert(!r.authority ||
                          (r.authority >= copy && r.authority + r.authority_len <= copy + left));
                ck_assert(!r.host || (r.host >= copy && r.host + r.host_len <= copy + left));
                strncat(o->log, item, sizeof(o->log) - strlen(o->log) - 1);
            }
            o->skips++;
            *done += r.off;
            free(copy);
            continue;
        }
        if (v == PRE_TLS_AT || v == PRE_HTTP_AT) {
            ck_assert_uint_lt(r.off, left);
            o->at = *done + r.off;
        } else {
            ck_assert(r.authority == NULL && r.host == NULL);
        }
        free(copy);
        return v;
    }
}

/* Feeds b[0..n) with the given first-call size (0: all at once), then everything. */
static struct outcome feed_two(const uint8_t *b, size_t n, size_t first)
{
    struct outcome o;
    memset(&o, 0, sizeof(o));
    struct pre_state st;
    memset(&st, 0, sizeof(st));
    size_t done = 0;
    if (first && first < n) {
        o.verdict = scan_loop(&st, b, first, &done, &o);
        if (o.verdict != PRE_NEED_MORE)
            return o; /* decided on a prefix: the caller compares with the whole */
    }
    o.verdict = scan_loop(&st, b, n, &done, &o);
    return o;
}

/* Feeds one more byte per call: every split point in a row, as a byte-per-segment stream. */
static struct outcome feed_bytes(const uint8_t *b, size_t n)
{
    struct outcome o;
    memset(&o, 0, sizeof(o));
    struct pre_state st;
    memset(&st, 0, sizeof(st));
    size_t done = 0;
    for (size_t k = 1; k <= n; k++) {
        o.verdict = scan_loop(&st, b, k, &done, &o);
        if (o.verdict != PRE_NEED_MORE)
            break;
    }
    return o;
}

/* Checks one fixture: whole, byte by byte, and cut in two at every offset, all agree. */
static void expect(const char *what, const void *data, size_t n, int verdict, size_t at,
                   const char *log)
{
    const uint8_t *b = data;
    struct outcome w = feed_two(b, n, 0);
    if (w.verdict != verdict || (verdict <= PRE_HTTP_AT && verdict >= PRE_TLS_AT && w.at != at) ||
        strcmp(w.log, log) != 0)
        ck_abort_msg("%s: verdict %d at %zu log '%s', want %d at %zu log '%s'", what, w.verdict,
                     w.at, w.log, verdict, at, log);
    struct outcome bb = feed_bytes(b, n);
    ck_assert_msg(bb.verdict == w.verdict && bb.at == w.at && strcmp(bb.log, w.log) == 0,
                  "%s byte by byte: verdict %d at %zu log '%s'", what, bb.verdict, bb.at, bb.log);
    for (size_t k = 1; k < n; k++) {
        struct outcome t = feed_two(b, n, k);
        ck_assert_msg(t.verdict == w.verdict && t.at == w.at && strcmp(t.log, w.log) == 0,
                      "%s cut at %zu: verdict %d at %zu log '%s'", what, k, t.verdict, t.at, t.log);
    }
}

#define EXPECT(what, lit, v, at, log) expect(what, lit, sizeof(lit) - 1, v, at, log)

START_TEST(test_plain)
{
    EXPECT("tls", HELLO, PRE_TLS_AT, 0, "");
    EXPECT("http", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", PRE_HTTP_AT, 0, "");
    EXPECT("http head cut", "POST /x HTT", PRE_HTTP_AT, 0, "");
    /* not enough to decide yet */
    EXPECT("tls 5 bytes", "\x16\x03\x01\x00\x2a", PRE_NEED_MORE, 0, "");
    EXPECT("one letter", "C", PRE_NEED_MORE, 0, "");
    EXPECT("empty", "", PRE_NEED_MORE, 0, "");
}
END_TEST

START_TEST(test_connect)
{
    /* CONNECT t.ngrok.io:443 HTTP/1.1 CRLF Host: t.ngrok.io:443 CRLF CRLF, then the hello */
    EXPECT("connect", "CONNECT t.ngrok.io:443 HTTP/1.1\r\nHost: t.ngrok.io:443\r\n\r\n" HELLO,
           PRE_TLS_AT, 57, "connect[t.ngrok.io:443|t.ngrok.io],");
    /* no Host header: the authority alone; port 8443; IPv6 literal target */
    EXPECT("connect no host", "CONNECT a.b:8443 HTTP/1.0\r\n\r\n" HELLO, PRE_TLS_AT, 29,
           "connect[a.b:8443|],");
    EXPECT("connect v6", "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n" HELLO, PRE_TLS_AT,
           47, "connect[[::1]:443|[::1]],");
    /* plain HTTP inside the tunnel */
    EXPECT("connect http", "CONNECT h:80 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
           PRE_HTTP_AT, 25, "connect[h:80|],");
    /* a 407 and a second CONNECT with credentials, then TLS */
    EXPECT("connect twice",
           "CONNECT x:443 HTTP/1.1\r\n\r\nCONNECT x:443 HTTP/1.1\r\nProxy-Authorization: Basic "
           "YTpi\r\n\r\n" HELLO,
           PRE_TLS_AT, 85, "connect[x:443|],connect[x:443|],");
    /* the head is incomplete: nothing reported yet */
    EXPECT("connect cut", "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n", PRE_NEED_MORE, 0, "");
}
END_TEST

START_TEST(test_socks)
{
    /* SOCKS4: 04 01, port 443, 93.184.216.34, user "u" NUL */
    EXPECT("socks4", "\x04\x01\x01\xbb\x5d\xb8\xd8\x22u\x00" HELLO, PRE_TLS_AT, 10, "");
    /* SOCKS4a: 0.0.0.1, empty user, "ex.com" NUL */
    EXPECT("socks4a",
           "\x04\x01\x01\xbb\x00\x00\x00\x01\x00"
           "ex.com\x00" HELLO,
           PRE_TLS_AT, 16, "socks4[ex.com:443|],");
    /* SOCKS5: greeting (no auth), request domain "t.ngrok.io" port 443 */
    EXPECT("socks5 domain",
           "\x05\x01\x00"
           "\x05\x01\x00\x03\x0at.ngrok.io\x01\xbb" HELLO,
           PRE_TLS_AT, 20, "socks5[t.ngrok.io:443|],");
    /* SOCKS5: greeting offering no-auth and user/pass, RFC 1929 "bob"/"pw", IPv4 request */
    EXPECT("socks5 userpass",
           "\x05\x02\x00\x02"
           "\x01\x03"
           "bob\x02"
           "pw"
           "\x05\x01\x00\x01\x0a\x00\x00\x01\x01\xbb" HELLO,
           PRE_TLS_AT, 22, "");
    /* SOCKS5 IPv6 request, then HTTP */
    EXPECT("socks5 v6",
           "\x05\x01\x00"
           "\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
           "\x00\x50"
           "GET / HTTP/1.1\r\n",
           PRE_HTTP_AT, 25, "");
    /* SOCKS5 and then a CONNECT through a second proxy */
    EXPECT("socks5 connect",
           "\x05\x01\x00\x05\x01\x00\x03\x01p\x0c\x38"
           "CONNECT q:443 HTTP/1.1\r\n\r\n" HELLO,
           PRE_TLS_AT, 37, "socks5[p:3128|],connect[q:443|],");
}
END_TEST

START_TEST(test_proxy_protocol)
{
    EXPECT("proxy v1", "PROXY TCP4 192.0.2.1 192.0.2.2 51000 443\r\n" HELLO, PRE_TLS_AT, 42, "");
    EXPECT("proxy v1 unknown", "PROXY UNKNOWN\r\n" HELLO, PRE_TLS_AT, 15, "");
    /* v2 signature, PROXY command, TCP over IPv4, 12 + 16 bytes: addresses 10.0.0.1 ->
     * 10.0.0.2, ports 40000 -> 443, TLV AUTHORITY (2) "ex.org" and TLV NOOP (4) of 4 bytes */
    EXPECT("proxy v2",
           "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x11\x00\x1c"
           "\x0a\x00\x00\x01\x0a\x00\x00\x02\x9c\x40\x01\xbb"
           "\x02\x00\x06"
           "ex.org"
           "\x04\x00\x04\x00\x00\x00\x00" HELLO,
           PRE_TLS_AT, 44, "proxy_v2[ex.org:443|],");
    /* v2 LOCAL with no addresses (a health check), then HTTP */
    EXPECT("proxy v2 local",
           "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x20\x00\x00\x00"
           "GET / HTTP/1.1\r\n",
           PRE_HTTP_AT, 16, "");
    /* PROXY v1 then SMTP STARTTLS, as a load balancer in front of a mail server */
    EXPECT("proxy v1 smtp",
           "PROXY TCP6 2001:db8::1 2001:db8::2 40000 25\r\nEHLO a\r\nSTARTTLS\r\n" HELLO,
           PRE_TLS_AT, 63, "");
}
END_TEST

START_TEST(test_starttls)
{
    EXPECT("smtp", "EHLO client.example\r\nSTARTTLS\r\n" HELLO, PRE_TLS_AT, 31, "");
    EXPECT("smtp lower case, LF only", "ehlo x\nstarttls\n" HELLO, PRE_TLS_AT, 16, "");
    EXPECT("pop3", "AUTH\r\nCAPA\r\nSTLS\r\n" HELLO, PRE_TLS_AT, 18, "");
    EXPECT("imap", ". CAPABILITY\r\n. STARTTLS\r\n" HELLO, PRE_TLS_AT, 26, "");
    EXPECT("imap tag", "a001 STARTTLS\r\n" HELLO, PRE_TLS_AT, 15, "");
    EXPECT("ftp", "AUTH TLS\r\n" HELLO, PRE_TLS_AT, 10, "");
    EXPECT("ftp ssl", "FEAT\r\nAUTH SSL\r\n" HELLO, PRE_TLS_AT, 16, "");
    /* STARTTLS refused (454): the client goes on in plaintext and later tries again */
    EXPECT("smtp refused", "EHLO a\r\nSTARTTLS\r\nNOOP\r\nSTARTTLS\r\n" HELLO, PRE_TLS_AT, 34, "");
    EXPECT("xmpp",
           "<?xml version='1.0'?><stream:stream to='jabber.example' version='1.0' "
           "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
           "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" HELLO,
           PRE_TLS_AT, 191, "xmpp[jabber.example:0|],");
    EXPECT("xmpp close tag",
           "<stream:stream to=\"j.example\">\n <starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\">"
           "</starttls>" HELLO,
           PRE_TLS_AT, 93, "xmpp[j.example:0|],");
    /* LDAP StartTLS: 30 1d, messageID 1, [APPLICATION 23] { [0] "1.3.6.1.4.1.1466.20037" } */
    EXPECT("ldap",
           "\x30\x1d\x02\x01\x01\x77\x18\x80\x16"
           "1.3.6.1.4.1.1466.20037" HELLO,
           PRE_TLS_AT, 31, "");
    /* the same with 4-byte BER lengths, as Windows clients send them */
    EXPECT("ldap long lengths",
           "\x30\x84\x00\x00\x00\x23\x02\x01\x07\x77\x84\x00\x00\x00\x18\x80\x16"
           "1.3.6.1.4.1.1466.20037"
           "\xa0\x00" HELLO,
           PRE_TLS_AT, 41, "");
    EXPECT("pgsql", "\x00\x00\x00\x08\x04\xd2\x16\x2f" HELLO, PRE_TLS_AT, 8, "");
    /* RDP: TPKT 19 bytes, X.224 CR (LI 14), RDP_NEG_REQ asking for TLS|CredSSP */
    EXPECT("rdp",
           "\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x0b\x00\x00\x00" HELLO,
           PRE_TLS_AT, 19, "");
}
END_TEST

/* Malformed or merely similar streams: PRE_NONE, whichever way they are cut. */
START_TEST(test_malformed)
{
    static const struct {
        const char *what, *s;
        size_t n;
    } bad[] = {
#define B(w, s) {w, s, sizeof(s) - 1}
        B("ssh", "SSH-2.0-OpenSSH_9.2\r\n" HELLO),
        B("tls server hello", "\x16\x03\x03\x00\x2a\x02\x00\x00\x26"),
        B("tls bad version", "\x16\x05\x01\x00\x2a\x01"),
        B("tls zero length", "\x16\x03\x01\x00\x00\x01"),
        B("socks5 no methods", "\x05\x00" HELLO),
        B("socks5 udp associate", "\x05\x01\x00\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00" HELLO),
        B("socks5 bad atyp", "\x05\x01\x00\x05\x01\x00\x02\x00\x00\x00\x00\x01\xbb" HELLO),
        B("socks5 userpass not offered", "\x05\x01\x00\x01\x01u\x01p" HELLO),
        B("socks5 domain with space", "\x05\x01\x00\x05\x01\x00\x03\x03\x61 b\x01\xbb" HELLO),
        B("socks4 bind", "\x04\x02\x01\xbb\x5d\xb8\xd8\x22\x00" HELLO),
        B("socks4 port 0", "\x04\x01\x00\x00\x5d\xb8\xd8\x22\x00" HELLO),
        B("socks4 user with control", "\x04\x01\x01\xbb\x5d\xb8\xd8\x22\x01\x00" HELLO),
        B("no starttls", "EHLO a\r\nMAIL FROM:<a@b>\r\n" HELLO),
        B("starttls then server hello", "EHLO a\r\nSTARTTLS\r\n\x16\x03\x03\x00\x2a\x02\x00"),
        B("starttls then binary", "EHLO a\r\nSTARTTLS\r\n\x17\x03\x03\x00\x2a\x01\x00"),
        B("unknown command", "HELP\r\nSTARTTLS\r\n" HELLO),
        B("imap unknown command", "a1 SELECT inbox\r\na2 STARTTLS\r\n" HELLO),
        B("imap tag too long", "a123456789abcdefg STARTTLS\r\n" HELLO),
        B("pgsql gssenc", "\x00\x00\x00\x08\x04\xd2\x16\x30" HELLO),
        B("pgsql refused", "\x00\x00\x00\x08\x04\xd2\x16\x2f\x00\x00\x00\x50\x00\x03\x00\x00"),
        B("proxy v1 tcp5", "PROXY TCP5 1 2 3 4\r\n" HELLO),
        B("proxy v1 bare lf", "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n" HELLO),
        B("proxy v2 version 1", "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x11\x11\x00\x0c"
                                "\x0a\x00\x00\x01\x0a\x00\x00\x02\x9c\x40\x01\xbb" HELLO),
        B("proxy v2 short addresses",
          "\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a\x21\x21\x00\x0c"
          "\x0a\x00\x00\x01\x0a\x00\x00\x02\x9c\x40\x01\xbb" HELLO),
        B("ldap bind", "\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00" HELLO),
        B("ldap other oid", "\x30\x1d\x02\x01\x01\x77\x18\x80\x16"
                            "1.3.6.1.4.1.4203.1.11.3" HELLO),
        B("rdp li mismatch",
          "\x03\x00\x00\x13\x0d\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x0b\x00\x00\x00" HELLO),
        B("rdp then mcs",
          "\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x00\x00\x00\x00"
          "\x03\x00\x01\x9c\x02\xf0\x80"),
        B("connect then ssh", "CONNECT a:22 HTTP/1.1\r\n\r\nSSH-2.0-x\r\n"),
        B("connect bad version", "CONNECT a:443 HTTP/2.0\r\n\r\n" HELLO),
        B("xmpp binary", "<stream:stream to='a'>\x01<starttls/>" HELLO),
        B("xmpp no starttls", "<stream:stream to='a'><auth/>" HELLO),
        B("hello before the trigger line ends", "EHLO a\r\nSTARTTLS" HELLO),
#undef B
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++) {
        const uint8_t *b = (const uint8_t *)bad[i].s;
        struct outcome w = feed_two(b, bad[i].n, 0);
        ck_assert_msg(w.verdict == PRE_NONE, "%s: verdict %d, want NONE", bad[i].what, w.verdict);
        struct outcome bb = feed_bytes(b, bad[i].n);
        ck_assert_msg(bb.verdict == PRE_NONE, "%s byte by byte: %d", bad[i].what, bb.verdict);
        for (size_t k = 1; k < bad[i].n; k++) {
            struct outcome t = feed_two(b, bad[i].n, k);
            ck_assert_msg(t.verdict == PRE_NONE, "%s cut at %zu: %d", bad[i].what, k, t.verdict);
        }
    }
}
END_TEST

START_TEST(test_caps)
{
    /* PRE_MAX_MSGS command lines and no STARTTLS: given up */
    size_t n = (PRE_MAX_MSGS + 1) * 6 + 6 + HELLO_LEN;
    char *s = malloc(n);
    size_t o = 0;
    memcpy(s, "EHLO a\r\n", 8);
    o = 8;
    while (o + 6 <= (PRE_MAX_MSGS + 1) * 6)
        memcpy(s + o, "NOOP\r\n", 6), o += 6;
    memcpy(s + o, "STARTTLS\r\n", 10);
    o += 10;
    memcpy(s + o, HELLO, HELLO_LEN);
    o += HELLO_LEN;
    ck_assert_int_eq(feed_two((uint8_t *)s, o, 0).verdict, PRE_NONE);
    free(s);
    /* a command line longer than PRE_MAX_LINE */
    s = malloc(PRE_MAX_LINE + 16);
    memcpy(s, "EHLO ", 5);
    memset(s + 5, 'a', PRE_MAX_LINE + 11);
    ck_assert_int_eq(feed_two((uint8_t *)s, PRE_MAX_LINE + 16, 0).verdict, PRE_NONE);
    ck_assert_int_eq(feed_two((uint8_t *)s, PRE_MAX_LINE - 1, 0).verdict, PRE_NEED_MORE);
    free(s);
    /* tunnels stacked deeper than PRE_MAX_LAYERS */
    static const char one[] = "PROXY UNKNOWN\r\n";
    size_t l1 = sizeof(one) - 1;
    s = malloc(l1 * (PRE_MAX_LAYERS + 1) + HELLO_LEN);
    for (int i = 0; i <= PRE_MAX_LAYERS; i++)
        memcpy(s + (size_t)i * l1, one, l1);
    memcpy(s + l1 * (PRE_MAX_LAYERS + 1), HELLO, HELLO_LEN);
    ck_assert_int_eq(feed_two((uint8_t *)s, l1 * (PRE_MAX_LAYERS + 1) + HELLO_LEN, 0).verdict,
                     PRE_NONE);
    struct outcome ok = feed_two((uint8_t *)s + l1, l1 * PRE_MAX_LAYERS + HELLO_LEN, 0);
    ck_assert_int_eq(ok.verdict, PRE_TLS_AT);
    free(s);
    /* after PRE_NONE the state stays dead */
    struct pre_state st;
    memset(&st, 0, sizeof(st));
    struct pre_result r;
    ck_assert_int_eq(pre_scan(&st, (const uint8_t *)"SSH-2.0-x\r\n", 11, &r), PRE_NONE);
    ck_assert_int_eq(pre_scan(&st, (const uint8_t *)HELLO, HELLO_LEN, &r), PRE_NONE);
    ck_assert_str_eq(pre_kind_name(PRE_K_SOCKS5), "socks5");
    ck_assert_str_eq(pre_kind_name(99), "none");
}
END_TEST

/* ---------- real captures, reassembled as the engine does ---------- */

#define SIM_FLOWS 64

struct sim_flow {
    struct tw_addr c, s;
    uint16_t cport, sport;
    struct stream st;
    struct pre_state pre;
    int state; /* 0 scanning, 1 done */
};

/* Appends "tls:NAME," / "http:HOST," / "KIND[AUTH:PORT|HOST]," for one stream. */
static void sim_scan(struct sim_flow *f, char *log, size_t cap)
{
    char item[400];
    for (;;) {
        struct pre_result r;
        int v = pre_scan(&f->pre, f->st.buf, f->st.len, &r);
        item[0] = '\0';
        if (v == PRE_SKIP) {
            if (r.authority || r.host)
                snprintf(item, sizeof(item), "%s[%.*s:%u|%.*s],", pre_kind_name(r.kind),
                         (int)r.authority_len, r.authority ? (const char *)r.authority : "", r.port,
                         (int)r.host_len, r.host ? (const char *)r.host : "");
            strncat(log, item, cap - strlen(log) - 1);
            stream_consume(&f->st, (uint32_t)r.off);
            continue;
        }
        if (v == PRE_NEED_MORE)
            return;
        if (v == PRE_TLS_AT) {
            static uint8_t hello[TLS_HELLO_MAX];
            long n =
                tls_hello_from_records(f->st.buf + r.off, f->st.len - r.off, hello, sizeof(hello));
            if (n == TW_ETRUNC)
                return; /* the rest of the hello is still to come */
            struct tls_hello h;
            int pr = n > 0 ? tls_parse_hello_opt(hello, (size_t)n, false, false, &h) : TW_EBAD;
            snprintf(item, sizeof(item), "tls:%.*s,", pr == TW_OK && h.sni ? (int)h.sni_len : 1,
                     pr == TW_OK && h.sni ? (const char *)h.sni : "?");
        } else if (v == PRE_HTTP_AT) {
            struct http_req rq;
            int pr = http_parse_request(f->st.buf + r.off, f->st.len - r.off, &rq);
            if (pr == TW_ETRUNC)
                return;
            snprintf(item, sizeof(item), "http:%.*s,", pr == TW_OK ? (int)rq.host_len : 1,
                     pr == TW_OK && rq.host ? (const char *)rq.host : "?");
        } else {
            snprintf(item, sizeof(item), "none,");
        }
        strncat(log, item, cap - strlen(log) - 1);
        f->state = 1;
        return;
    }
}

/* Replays the client side of every TCP flow of a capture through stream + pre_scan. */
static int sim_file(const char *rel, char *log, size_t cap)
{
    char path[1024], err[PCAP_ERRBUF_SIZE];
    /* "@x": x under the source tree, else under the shared corpus */
    const char *shared = getenv("TW_SHARED");
    if (rel[0] == '@')
        snprintf(path, sizeof(path), "%s", tw_src_path(rel + 1));
    else
        snprintf(path, sizeof(path), "%s/%s", shared ? shared : "../shared", rel);
    pcap_t *pc = pcap_open_offline(path, err);
    if (!pc)
        return -1;
    int dlt = pcap_datalink(pc);
    static struct sim_flow fl[SIM_FLOWS];
    memset(fl, 0, sizeof(fl));
    int nfl = 0;
    struct pcap_pkthdr *h;
    const u_char *d;
    log[0] = '\0';
    while (pcap_next_ex(pc, &h, &d) == 1) {
        struct dec_pkt p;
        if (dec_packet(dlt, d, h->caplen, &p) != DEC_OK || p.proto != 6)
            continue;
        struct sim_flow *f = NULL;
        for (int i = 0; i < nfl && !f; i++)
            if (tw_addr_eq(&fl[i].c, &p.src) && tw_addr_eq(&fl[i].s, &p.dst) &&
                fl[i].cport == p.sport && fl[i].sport == p.dport)
                f = &fl[i];
        bool reverse = false;
        for (int i = 0; i < nfl && !f && !reverse; i++)
            reverse = tw_addr_eq(&fl[i].s, &p.src) && tw_addr_eq(&fl[i].c, &p.dst) &&
                      fl[i].sport == p.sport && fl[i].cport == p.dport;
        if (reverse)
            continue; /* the server's bytes are never needed */
        if (!f) {
            if (nfl == SIM_FLOWS || (p.tcp_flags & TW_TH_ACK && p.tcp_flags & TW_TH_SYN))
                continue;
            f = &fl[nfl++];
            f->c = p.src;
            f->s = p.dst;
            f->cport = p.sport;
            f->sport = p.dport;
            f->st.max = 65536;
        }
        if (p.tcp_flags & TW_TH_SYN)
            stream_set_base(&f->st, p.seq + 1);
        if (f->state || p.payload_len == 0)
            continue;
        if (stream_add(&f->st, p.seq, p.payload, p.payload_len, NULL) > 0)
            sim_scan(f, log, cap);
    }
    for (int i = 0; i < nfl; i++)
        stream_reset(&fl[i].st, NULL);
    pcap_close(pc);
    return 0;
}

START_TEST(test_captures)
{
    static const struct {
        const char *file, *want;
    } caps[] = {
        /* SOCKS5 (methods no-auth and GSSAPI offered) to a local trojan client, IPv4 target */
        {"pcaps/ndpi__tls_heur__trojan-tcp-tls.pcapng", "tls:www.youtube.com,tls:test.lan,"},
        {"pcaps/zeek__http__connect-with-header.pcap",
         "connect[secure.newegg.com:443|secure.newegg.com],tls:secure.newegg.com,"},
        {"pcaps-wide/ndpi__haproxy.pcap", "tls:aaaaaaaaaaaaaaaa.xx,"},
        {"pcaps-wide/ndpi__pop3_stls.pcap", "tls:pop.lavabit.com,"},
        {"pcaps-wide/ndpi__imap-starttls.pcap", "tls:,"},
        {"pcaps-wide/ndpi__ftp-start-tls.pcap", "tls:,"},
        {"pcaps-wide/ndpi__smtp-starttls.pcap", "tls:,tls:dovecot.weberlab.de,"},
        {"pcaps-wide/ndpi__socks.pcap",
         "socks5[www.google.com:80|],http:www.google.com,socks4[www.example.com:80|],"
         "http:www.example.com,"},
        {"pcaps-wide/ndpi__shadowsocks.pcap", "http:www.washington.edu,none,"},
        {"pcaps-wide/ndpi__pgsql2.pcapng", "tls:,"},
        {"pcaps-wide/ndpi__rdp.pcap", "tls:,"},
        {"pcaps-wide/ndpi__rdp_over_tls.pcap", "tls:,"},
        {"pcaps-wide/ndpi__rdp3.pcap", "none,"},
        /* our own (scripts/gen_pcaps.py) */
        {"@pcaps/proxy_connect_tls.pcap",
         "connect[tunnel.eu.ngrok.com:443|tunnel.eu.ngrok.com],tls:tunnel.eu.ngrok.com,"},
        {"@pcaps/socks5_tls.pcap", "socks5[tunnel.ap.ngrok.com:443|],tls:tunnel.ap.ngrok.com,"},
        {"@pcaps/smtp_starttls.pcap", "tls:tunnel.au.ngrok.com,"},
        {"@pcaps/proxy_v2_tls.pcap", "proxy_v2[tunnel.sa.ngrok.com:443|],tls:tunnel.sa.ngrok.com,"},
        {"@pcaps/http_pipelined.pcap", "http:www.example.com,"},
    };
    int found = 0;
    for (size_t i = 0; i < TW_ARRAY_LEN(caps); i++) {
        char log[2048];
        if (sim_file(caps[i].file, log, sizeof(log)) < 0) {
            printf("check_preamble: %s missing, skipped\n", caps[i].file);
            continue;
        }
        found++;
        printf("%s: %s\n", caps[i].file, log);
        /* every item wanted, in any order (flows complete in their own order) */
        char want[512], *save = NULL;
        snprintf(want, sizeof(want), "%s", caps[i].want);
        for (char *w = strtok_r(want, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            char item[300];
            /* "tls:" alone: a ClientHello found, whatever its name */
            snprintf(item, sizeof(item), "%s%s", w, w[strlen(w) - 1] == ':' ? "" : ",");
            ck_assert_msg(strstr(log, item) != NULL, "%s: got '%s', want '%s'", caps[i].file, log,
                          item);
        }
    }
    if (!found)
        printf("check_preamble: no shared captures ($TW_SHARED), capture test skipped\n");
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("preamble");
    TCase *tc = tcase_create("pre_scan");
    tcase_add_test(tc, test_plain);
    tcase_add_test(tc, test_connect);
    tcase_add_test(tc, test_socks);
    tcase_add_test(tc, test_proxy_protocol);
    tcase_add_test(tc, test_starttls);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_caps);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("captures");
    tcase_add_test(tr, test_captures);
    suite_add_tcase(s, tr);
    return s;
}
