/* check_dns.c - unit tests for dns_parse(): questions, answers, compression pointer attacks,
 * name length limits, tshark-compatible rendering of odd bytes, every prefix of every valid
 * fixture, and a comparison with the tshark truth files of the shared DNS captures. */
#include <pcap/pcap.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/dns.h"
#include "tw_check.h"

static struct dns_msg m; /* 70 KiB: not on the stack */

/* Query id 0x1234, RD, 1 question: www.example.com IN A
 *   12 34 01 00 | 00 01 00 00 00 00 00 00 | 03 www 07 example 03 com 00 | 00 01 | 00 01 */
static const uint8_t q_simple[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 3,    'w',  'w',  'w',  7,    'e',
                                   'x',  'a',  'm',  'p',  'l',  'e',  3,    'c',  'o',
                                   'm',  0,    0x00, 0x01, 0x00, 0x01};

/* Query, 3 questions: a.example IN A; b.<ptr to example at 14> IN AAAA; <ptr to 12> IN TXT
 *   hdr(qd=3) | 01 a 07 example 00 0001 0001 | 01 b c0 0e 001c 0001 | c0 0c 0010 0001 */
static const uint8_t q_multi[] = {0xab, 0xcd, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 1,    'a',  7,    'e',  'x',  'a',  'm',  'p',  'l',  'e',
                                  0,    0x00, 0x01, 0x00, 0x01, 1,    'b',  0xc0, 0x0e, 0x00, 0x1c,
                                  0x00, 0x01, 0xc0, 0x0c, 0x00, 0x10, 0x00, 0x01};

/* Response (QR, RD, RA), 1 question, 3 answers: a CNAME chain then the address.
 *   hdr 0x4242 8180 qd=1 an=3
 *   q:  @12 03 www 07 example 03 com 00 | A IN
 *   an: c0 0c CNAME IN ttl 300 rdlen 9: 03 cdn 03 net 00            (@45 cdn.net)
 *   an: c0 2d CNAME IN ttl 60  rdlen 7: 04 edge c0 2d               (@66 edge.cdn.net)
 *   an: c0 42 A     IN ttl 20  rdlen 4: 93.184.216.34 */
static const uint8_t r_cname[] = {
    0x42, 0x42, 0x81, 0x80, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 3,    'w',  'w',
    'w',  7,    'e',  'x',  'a',  'm',  'p',  'l',  'e',  3,    'c',  'o',  'm',  0,    0x00,
    0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x09,
    3,    'c',  'd',  'n',  3,    'n',  'e',  't',  0,    0xc0, 0x2d, 0x00, 0x05, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x3c, 0x00, 0x07, 4,    'e',  'd',  'g',  'e',  0xc0, 0x2d, 0xc0, 0x42,
    0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x04, 93,   184,  216,  34};

/* Header of a query with one question; the name follows. */
static size_t query_with_name(uint8_t *buf, const uint8_t *name, size_t n)
{
    static const uint8_t hdr[12] = {0x00, 0x07, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
    memcpy(buf, hdr, 12);
    memcpy(buf + 12, name, n);
    memcpy(buf + 12 + n, "\x00\x01\x00\x01", 4);
    return 16 + n;
}

/* Every strict prefix of a valid message must fail cleanly: TW_ETRUNC, or TW_EBAD where a
 * cut makes a pointer target or length inconsistent. */
static void all_prefixes(const uint8_t *msg, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact size, so ASan sees overreads */
        memcpy(copy, msg, k);
        int rc = dns_parse(copy, k, &m);
        free(copy);
        /* answers are best effort: once the questions are complete, TW_OK is right */
        ck_assert_msg(rc == TW_ETRUNC || rc == TW_EBAD || rc == TW_OK, "prefix %zu: %d", k, rc);
        if (k < 12)
            ck_assert_int_eq(rc, TW_ETRUNC);
    }
}

START_TEST(test_simple)
{
    ck_assert_int_eq(dns_parse(q_simple, sizeof(q_simple), &m), TW_OK);
    ck_assert_uint_eq(m.id, 0x1234);
    ck_assert_uint_eq(m.qr, 0);
    ck_assert_uint_eq(m.opcode, 0);
    ck_assert_uint_eq(m.n_q, 1);
    ck_assert_str_eq(m.q[0].name, "www.example.com");
    ck_assert_uint_eq(m.q[0].qtype, DNS_T_A);
    ck_assert_uint_eq(m.q[0].qclass, 1);
    all_prefixes(q_simple, sizeof(q_simple));
    /* a cut inside the question is TW_ETRUNC, not a name */
    ck_assert_int_eq(dns_parse(q_simple, 20, &m), TW_ETRUNC);
    ck_assert_uint_eq(m.n_q, 0);
}
END_TEST

START_TEST(test_multi_questions)
{
    ck_assert_int_eq(dns_parse(q_multi, sizeof(q_multi), &m), TW_OK);
    ck_assert_uint_eq(m.n_q, 3);
    ck_assert_str_eq(m.q[0].name, "a.example");
    ck_assert_str_eq(m.q[1].name, "b.example");
    ck_assert_uint_eq(m.q[1].qtype, DNS_T_AAAA);
    ck_assert_str_eq(m.q[2].name, "a.example");
    ck_assert_uint_eq(m.q[2].qtype, 16);
    all_prefixes(q_multi, sizeof(q_multi));
    /* cut in the third question: the two complete ones stay readable */
    ck_assert_int_eq(dns_parse(q_multi, sizeof(q_multi) - 3, &m), TW_ETRUNC);
    ck_assert_uint_eq(m.n_q, 2);
    ck_assert_str_eq(m.q[1].name, "b.example");
}
END_TEST

START_TEST(test_more_questions_than_kept)
{
    /* DNS_MAX_Q + 2 questions "x" IN A: all parsed, DNS_MAX_Q kept, 2 counted */
    uint8_t buf[12 + 7 * (DNS_MAX_Q + 2)];
    memset(buf, 0, 12);
    buf[5] = DNS_MAX_Q + 2;
    for (int i = 0; i < DNS_MAX_Q + 2; i++)
        memcpy(buf + 12 + 7 * i, "\x01x\x00\x00\x01\x00\x01", 7);
    ck_assert_int_eq(dns_parse(buf, sizeof(buf), &m), TW_OK);
    ck_assert_uint_eq(m.n_q, DNS_MAX_Q);
    ck_assert_uint_eq(m.q_trunc, 2);
}
END_TEST

START_TEST(test_cname_chain)
{
    ck_assert_int_eq(dns_parse(r_cname, sizeof(r_cname), &m), TW_OK);
    ck_assert_uint_eq(m.qr, 1);
    ck_assert_uint_eq(m.rcode, 0);
    ck_assert_uint_eq(m.ancount, 3);
    ck_assert_uint_eq(m.n_an, 3);
    ck_assert_str_eq(m.an[0].name, "www.example.com");
    ck_assert_uint_eq(m.an[0].type, DNS_T_CNAME);
    ck_assert_uint_eq(m.an[0].ttl, 300);
    ck_assert_str_eq(m.an[0].target, "cdn.net");
    ck_assert_str_eq(m.an[1].name, "cdn.net");
    ck_assert_str_eq(m.an[1].target, "edge.cdn.net");
    ck_assert_uint_eq(m.an[1].ttl, 60);
    ck_assert_str_eq(m.an[2].name, "edge.cdn.net");
    ck_assert_uint_eq(m.an[2].type, DNS_T_A);
    ck_assert_uint_eq(m.an[2].ttl, 20);
    ck_assert_uint_eq(m.an[2].addr.family, 4);
    ck_assert_mem_eq(m.an[2].addr.a, "\x5d\xb8\xd8\x22", 4);
    all_prefixes(r_cname, sizeof(r_cname));
    /* a cut in the last answer keeps the question and the first two answers */
    ck_assert_int_eq(dns_parse(r_cname, sizeof(r_cname) - 2, &m), TW_OK);
    ck_assert_uint_eq(m.n_an, 2);
}
END_TEST

START_TEST(test_pointer_attacks)
{
    uint8_t buf[64];
    /* self pointer: the name at 12 is c0 0c; the hop cap ends it */
    size_t n = query_with_name(buf, (const uint8_t *)"\xc0\x0c", 2);
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_ELIMIT);
    ck_assert_uint_eq(m.n_q, 0);
    /* forward pointer (accepted, as tshark and resolvers do): 01 a c0 20, and a valid name
     * "b" at 0x20 */
    n = query_with_name(buf,
                        (const uint8_t *)"\x01"
                                         "a\xc0\x20",
                        4);
    memset(buf + n, 0, 0x20 - n);
    memcpy(buf + 0x20,
           "\x01"
           "b\x00",
           3);
    ck_assert_int_eq(dns_parse(buf, 0x23, &m), TW_OK);
    ck_assert_uint_eq(m.n_q, 1);
    ck_assert_str_eq(m.q[0].name, "a.b");
    /* a pointer past the end of the message */
    ck_assert_int_eq(dns_parse(buf, 0x20, &m), TW_EBAD);
    /* loop: q1 (at 12) is 01 a c0 12 and q2 (at 18) is c0 0c: 12 -> 18 -> 12 ... with a label
     * on each turn: the 255-byte name cap or the hop cap ends it */
    static const uint8_t loop[] = {0, 1,   1,    0,  0, 2, 0,    0,  0, 0, 0, 0,
                                   1, 'a', 0xc0, 18, 0, 1, 0xc0, 12, 0, 1, 0, 1};
    int r = dns_parse(loop, sizeof(loop), &m);
    ck_assert(r == TW_EBAD || r == TW_ELIMIT);
    ck_assert_uint_eq(m.n_q, 0);
    /* pointer into the middle of the same label run it came from: b.b.b... */
    n = query_with_name(buf,
                        (const uint8_t *)"\x01"
                                         "a\x01"
                                         "b\xc0\x0e",
                        6);
    r = dns_parse(buf, n, &m);
    ck_assert(r == TW_EBAD || r == TW_ELIMIT);
    /* two pointers that point at each other, no labels: only the hop cap stops them */
    n = query_with_name(buf, (const uint8_t *)"\xc0\x0e\xc0\x0c", 4);
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_ELIMIT);
    /* extended (01) and reserved (10) label types */
    n = query_with_name(buf, (const uint8_t *)"\x41\x00", 2);
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_EBAD);
    n = query_with_name(buf, (const uint8_t *)"\x81\x00", 2);
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_EBAD);
    /* a good backward pointer still works */
    ck_assert_int_eq(dns_parse(q_multi, sizeof(q_multi), &m), TW_OK);
}
END_TEST

/* Writes labels of the given lengths (letters 'a', 'b', ...) at p; returns the length.
 * ptr >= 0 ends the name with a pointer to ptr, else with the root octet. */
static size_t labels(uint8_t *p, const int *lens, int n, int ptr)
{
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        p[k++] = (uint8_t)lens[i];
        memset(p + k, 'a' + i, (size_t)lens[i]);
        k += (size_t)lens[i];
    }
    if (ptr >= 0) {
        p[k++] = 0xc0;
        p[k++] = (uint8_t)ptr;
    } else {
        p[k++] = 0;
    }
    return k;
}

START_TEST(test_name_length)
{
    uint8_t name[300], buf[400];
    /* 63+63+63+61 letters + 3 dots = 253 characters, 255 wire octets: accepted */
    static const int ok[4] = {63, 63, 63, 61}, too_long[4] = {63, 63, 63, 62};
    size_t n = query_with_name(buf, name, labels(name, ok, 4, -1));
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_OK);
    ck_assert_uint_eq(strlen(m.q[0].name), 253);
    ck_assert_int_eq(m.q[0].name[252], 'd');
    /* one more letter: 256 wire octets, refused (tshark: "<Name too long>") */
    n = query_with_name(buf, name, labels(name, too_long, 4, -1));
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_EBAD);

    /* the limit holds across a pointer. q1 at 12: 3 x 59 letters = 181 wire octets */
    static const int q1[3] = {59, 59, 59}, q2ok[1] = {63}, q2long[2] = {63, 63};
    memset(buf, 0, 12);
    buf[5] = 2;
    size_t o = 12 + labels(buf + 12, q1, 3, -1);
    memcpy(buf + o, "\x00\x01\x00\x01", 4);
    o += 4;
    size_t q2 = o;
    /* q2: 63 letters + pointer to q1: 64 + 181 = 245 octets, fine */
    o += labels(buf + o, q2ok, 1, 12);
    memcpy(buf + o, "\x00\x01\x00\x01", 4);
    ck_assert_int_eq(dns_parse(buf, o + 4, &m), TW_OK);
    ck_assert_uint_eq(strlen(m.q[1].name), 63 + 1 + 179);
    /* q2: 2 x 63 letters + pointer: 128 + 181 = 309 octets, refused */
    o = q2 + labels(buf + q2, q2long, 2, 12);
    memcpy(buf + o, "\x00\x01\x00\x01", 4);
    ck_assert_int_eq(dns_parse(buf, o + 4, &m), TW_EBAD);
    ck_assert_uint_eq(m.n_q, 1); /* q1 still there */
}
END_TEST

/* One label per case, rendered like tshark 4.0's dns.qry.name (checked with tshark on
 * crafted captures). */
static const struct {
    const char *label;
    size_t len;
    const char *text;
} render_cases[] = {
    {"a b", 3, "a b.com"},
    {"a.b", 3, "a.b.com"},   /* dot inside a label: not escaped */
    {"a\\b", 3, "a\\b.com"}, /* nor is a backslash */
    {"a\x01"
     "b",
     3, "a\\001b.com"},
    {"a\0b", 3, "a\\000b.com"},
    {"a\tb", 3, "a\\tb.com"},
    {"a\x7f"
     "b",
     3, "a\\177b.com"},
    {"a\xe4\xbe\xbd"
     "b",
     5,
     "a\xe4\xbe\xbd"
     "b.com"}, /* valid UTF-8 kept */
    {"a\xe4\xbe"
     "Ab",
     5,
     "a\xef\xbf\xbd"
     "Ab.com"}, /* cut sequence: one U+FFFD, 'A' read again */
    {"a\xff"
     "b",
     3,
     "a\xef\xbf\xbd"
     "b.com"},
    {"\x80\x81", 2, "\xef\xbf\xbd\xef\xbf\xbd.com"},
    {"a\xc0\x80"
     "b",
     4, "a\\u0000b.com"}, /* overlong NUL decoded, then escaped */
    {"a\xc2\x80"
     "b",
     4, "a\\u0080b.com"},
    {"a\xef\xbb\xbf"
     "b",
     5, "a\\uFEFFb.com"}, /* format character */
    {"a\xf3\xa0\x80\x81"
     "b",
     6, "a\\U000E0001b.com"},
    {"a\xed\xa0\x80"
     "b",
     5,
     "a\xef\xbf\xbd"
     "b.com"}, /* surrogate */
    {"a\xe0\x9f\xbf"
     "b",
     5,
     "a\xdf\xbf"
     "b.com"}, /* overlong, re-encoded short */
};

START_TEST(test_render)
{
    uint8_t name[80], buf[120];
    for (size_t i = 0; i < TW_ARRAY_LEN(render_cases); i++) {
        size_t l = render_cases[i].len;
        name[0] = (uint8_t)l;
        memcpy(name + 1, render_cases[i].label, l);
        memcpy(name + 1 + l,
               "\x03"
               "com\x00",
               5);
        size_t n = query_with_name(buf, name, l + 6);
        ck_assert_int_eq(dns_parse(buf, n, &m), TW_OK);
        ck_assert_msg(strcmp(m.q[0].name, render_cases[i].text) == 0, "case %zu: got %s", i,
                      m.q[0].name);
    }
    /* the root is "" */
    size_t n = query_with_name(buf, (const uint8_t *)"", 1);
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_OK);
    ck_assert_str_eq(m.q[0].name, "");
}
END_TEST

/* --- Comparison with tshark's truth on the shared captures ----------------------------- */

/* Minimal L2-L4 decode, enough for the DNS captures: Ethernet (+802.1Q/QinQ, PPPoE), IPv4
 * (unfragmented),
 * IPv6 (UDP right after the fixed header), UDP port 53. */
static const uint8_t *udp53(const uint8_t *p, size_t n, size_t *len)
{
    if (n < 14)
        return NULL;
    size_t o = 12;
    unsigned et = (unsigned)p[o] << 8 | p[o + 1];
    o += 2;
    while (et == 0x8100 && n >= o + 4) {
        et = (unsigned)p[o + 2] << 8 | p[o + 3];
        o += 4;
    }
    if (et == 0x8864 && n >= o + 8) { /* PPPoE session, then the PPP protocol */
        unsigned ppp = (unsigned)p[o + 6] << 8 | p[o + 7];
        et = ppp == 0x0021 ? 0x0800 : ppp == 0x0057 ? 0x86DD : 0;
        o += 8;
    }
    unsigned proto;
    if (et == 0x0800 && n >= o + 20) {
        size_t ihl = (size_t)(p[o] & 0xF) * 4;
        unsigned fo = ((unsigned)p[o + 6] << 8 | p[o + 7]) & 0x3FFF;
        if (fo != 0)
            return NULL;
        proto = p[o + 9];
        o += ihl;
    } else if (et == 0x86DD && n >= o + 40) {
        proto = p[o + 6];
        o += 40;
    } else {
        return NULL;
    }
    if (proto != 17 || n < o + 8)
        return NULL;
    unsigned sp = (unsigned)p[o] << 8 | p[o + 1], dp = (unsigned)p[o + 2] << 8 | p[o + 3];
    if (sp != 53 && dp != 53)
        return NULL;
    *len = n - o - 8;
    return p + o + 8;
}

/* Returns how many truth rows were not produced (and rows produced that tshark lacks). */
static int compare_capture(const char *shared, const char *file, int *rows)
{
    char path[512], line[8192];
    snprintf(path, sizeof(path), "%s/pcaps/%s.truth.tsv", shared, file);
    FILE *t = fopen(path, "r");
    ck_assert_msg(t != NULL, "missing %s", path);
    /* truth rows as "frame\tname" strings */
    char **want = NULL;
    size_t nw = 0;
    while (fgets(line, sizeof(line), t)) {
        char *k = strchr(line, '\t');
        if (!k || strncmp(k + 1, "dns_query\t", 10) != 0)
            continue;
        char *name = k + 11, *end = strchr(name, '\t');
        *end = '\0';
        want = realloc(want, (nw + 1) * sizeof(*want));
        size_t fl = (size_t)(k - line);
        want[nw] = malloc(fl + 1 + strlen(name) + 1);
        snprintf(want[nw], fl + 1 + strlen(name) + 1, "%.*s\t%s", (int)fl, line, name);
        nw++;
    }
    fclose(t);
    *rows = (int)nw;

    snprintf(path, sizeof(path), "%s/pcaps/%s", shared, file);
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(path, err);
    ck_assert_msg(pc != NULL, "%s", err);
    ck_assert_int_eq(pcap_datalink(pc), DLT_EN10MB);
    struct pcap_pkthdr *h;
    const u_char *d;
    int frame = 0, bad = 0;
    while (pcap_next_ex(pc, &h, &d) == 1) {
        frame++;
        size_t len;
        const uint8_t *p = udp53(d, h->caplen, &len);
        if (!p)
            continue;
        /* like tshark, the complete questions of a cut or malformed message count */
        int rc = dns_parse(p, len, &m);
        if (len < 12 || m.qr || (rc != TW_OK && m.n_q == 0))
            continue;
        for (unsigned i = 0; i < m.n_q; i++) {
            /* truth.sh splits tshark's aggregate on ',' and drops <...> placeholders */
            char *save = NULL, *copy = strdup(m.q[i].name);
            for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
                if (part[0] == '<')
                    continue;
                char row[DNS_NAME_TEXT + 16];
                snprintf(row, sizeof(row), "%d\t%s", frame, part);
                size_t j;
                for (j = 0; j < nw; j++)
                    if (want[j] && strcmp(want[j], row) == 0)
                        break;
                if (j < nw) {
                    free(want[j]);
                    want[j] = NULL;
                } else {
                    fprintf(stderr, "%s: extra %s\n", file, row);
                    bad++;
                }
            }
            free(copy);
        }
    }
    pcap_close(pc);
    for (size_t j = 0; j < nw; j++)
        if (want[j]) {
            fprintf(stderr, "%s: missing %s\n", file, want[j]);
            free(want[j]);
            bad++;
        }
    free(want);
    return bad;
}

START_TEST(test_tshark_truth)
{
    static const char *const files[] = {
        "ndpi__bad-dns-traffic.pcap",
        "ndpi__dns-tunnel-iodine.pcap",
        "ndpi__dns_exfiltration.pcap",
        "ndpi__malformed_dns.pcap",
        "tcpdump__dns-badlabel.pcap",
        "ndpi__dns_long_domainname.pcap",
        "ndpi__dns.pcap",
        "tcpdump__dns_udp.pcap",
        "tcpdump__edns-opts.pcap",
        "tcpdump__dnssec.pcap",
        "tcpdump__dns-zlip-1.pcap",
    };
    const char *shared = getenv("TW_SHARED");
    char probe[512];
    snprintf(probe, sizeof(probe), "%s/pcaps", shared ? shared : "");
    if (!shared || access(probe, R_OK) != 0) {
        fprintf(stderr, "SKIP: %s absent: tshark truth comparison not run\n", probe);
        return;
    }
    int total = 0;
    for (size_t i = 0; i < TW_ARRAY_LEN(files); i++) {
        int rows = 0;
        int bad = compare_capture(shared, files[i], &rows);
        ck_assert_msg(bad == 0, "%s: %d differences with tshark", files[i], bad);
        total += rows;
    }
    ck_assert_int_ge(total, 600); /* the comparison really ran over the tunnel captures */
}
END_TEST

/* A response (QR, RD, RA) whose question and n_an answers are all named by a pointer to a
 * chain of `hops` - 1 forward pointers ending in the name "x", which is the RDATA of a TXT
 * record in the additional section: each name costs `hops` pointer hops. Returns the
 * message length. */
static size_t hop_heavy(uint8_t *msg, int hops, int n_an)
{
    size_t chain = 12 + 6 + (size_t)n_an * 16 + 11, k = 12;
    static const uint8_t hdr[12] = {0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 1};
    memcpy(msg, hdr, 12);
    msg[7] = (uint8_t)n_an;
    msg[6] = (uint8_t)(n_an >> 8);
    msg[k++] = (uint8_t)(0xc0 | chain >> 8);
    msg[k++] = (uint8_t)chain;
    memcpy(msg + k, "\x00\x01\x00\x01", 4);
    k += 4;
    for (int i = 0; i < n_an; i++) {
        msg[k++] = (uint8_t)(0xc0 | chain >> 8);
        msg[k++] = (uint8_t)chain;
        memcpy(msg + k, "\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x01\x02\x03\x04", 14);
        k += 14;
    }
    size_t rdlen = (size_t)(hops - 1) * 2 + 3;
    memcpy(msg + k, "\x00\x00\x10\x00\x01\x00\x00\x00\x3c", 9); /* root TXT IN 60 */
    k += 9;
    msg[k++] = (uint8_t)(rdlen >> 8);
    msg[k++] = (uint8_t)rdlen;
    ck_assert_uint_eq(k, chain);
    for (int i = 0; i < hops - 1; i++) {
        size_t next = k + 2;
        msg[k++] = (uint8_t)(0xc0 | next >> 8);
        msg[k++] = (uint8_t)next;
    }
    memcpy(msg + k, "\x01x\x00", 3);
    return k + 3;
}

/* The per-message hop budget (DNS_MSG_HOPS_MAX) ends the walk of a message whose many names
 * each hop through a long pointer chain, even though each name stays under the per-name
 * cap. */
START_TEST(test_pointer_budget_per_message)
{
    static uint8_t msg[8192];
    /* 64 hops a name (the per-name cap): the question and 31 answers use 2048 hops */
    size_t n = hop_heavy(msg, 64, 40);
    ck_assert_int_eq(dns_parse(msg, n, &m), TW_OK);
    ck_assert_str_eq(m.q[0].name, "x");
    ck_assert_uint_eq(m.n_an, 31);
    ck_assert(!dns_plausible(msg, n, NULL));
    /* control: 10 hops a name, 40 answers: all 32 stored and plausible */
    n = hop_heavy(msg, 10, 40);
    ck_assert_int_eq(dns_parse(msg, n, &m), TW_OK);
    ck_assert_uint_eq(m.n_an, 32);
    ck_assert(dns_plausible(msg, n, NULL));
    /* 65 hops: over the per-name cap */
    n = hop_heavy(msg, 65, 1);
    ck_assert_int_eq(dns_parse(msg, n, &m), TW_ELIMIT);
    /* 200 answers at 60 hops: plausible stops at the budget */
    n = hop_heavy(msg, 60, 200);
    ck_assert(!dns_plausible(msg, n, NULL));
}
END_TEST

START_TEST(test_forward_pointer_answer)
{
    /* a CNAME target that points forward into the next record's owner name:
     *   q: @12 03 www 07 example 03 com 00 A IN
     *   an1 @33: c0 0c CNAME IN ttl rdlen 2: c0 2f          (-> @47)
     *   an2 @47: 06 tunnel 02 us 05 ngrok 03 com 00 A IN ttl rdlen 4 */
    static const uint8_t r[] = {
        0x42, 0x42, 0x81, 0x80, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 3,    'w',
        'w',  'w',  7,    'e',  'x',  'a',  'm',  'p',  'l',  'e',  3,    'c',  'o',  'm',
        0,    0x00, 0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x3c, 0x00, 0x02, 0xc0, 0x2f, 6,    't',  'u',  'n',  'n',  'e',  'l',  2,    'u',
        's',  5,    'n',  'g',  'r',  'o',  'k',  3,    'c',  'o',  'm',  0,    0x00, 0x01,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 3,    134,  39,   220};
    ck_assert_int_eq(dns_parse(r, sizeof(r), &m), TW_OK);
    ck_assert_uint_eq(m.n_an, 2);
    ck_assert_str_eq(m.an[0].target, "tunnel.us.ngrok.com");
    ck_assert_str_eq(m.an[1].name, "tunnel.us.ngrok.com");
    uint16_t chain[DNS_MAX_AN];
    ck_assert_int_eq(dns_answer_chain(&m, 1, chain), 2);
    ck_assert_uint_eq(chain[0], 0);
    ck_assert_uint_eq(chain[1], 1);
    bool q = true;
    ck_assert(dns_plausible(r, sizeof(r), &q));
    ck_assert(!q);
}
END_TEST

START_TEST(test_answer_chain)
{
    /* r_cname: www.example.com -> cdn.net -> edge.cdn.net A */
    uint16_t chain[DNS_MAX_AN];
    ck_assert_int_eq(dns_parse(r_cname, sizeof(r_cname), &m), TW_OK);
    ck_assert_int_eq(dns_answer_chain(&m, 2, chain), 3);
    ck_assert_uint_eq(chain[0], 0);
    ck_assert_uint_eq(chain[1], 1);
    ck_assert_uint_eq(chain[2], 2);
    ck_assert_int_eq(dns_answer_chain(&m, 1, chain), 2);
    ck_assert_int_eq(dns_answer_chain(&m, 3, chain), 0); /* no such record */
    /* case does not matter; an unrelated owner name is not reached */
    m.an[0].name[0] = 'W';
    ck_assert_int_eq(dns_answer_chain(&m, 2, chain), 3);
    strcpy(m.an[1].name, "other.net");
    ck_assert_int_eq(dns_answer_chain(&m, 2, chain), 0);
    /* a CNAME cycle (a -> b -> a) among records never reaching the question ends */
    ck_assert_int_eq(dns_parse(r_cname, sizeof(r_cname), &m), TW_OK);
    strcpy(m.an[0].name, "edge.cdn.net");
    strcpy(m.an[0].target, "cdn.net");
    strcpy(m.an[1].name, "cdn.net");
    strcpy(m.an[1].target, "edge.cdn.net");
    ck_assert_int_eq(dns_answer_chain(&m, 2, chain), 0);
}
END_TEST

START_TEST(test_plausible)
{
    bool q = false;
    ck_assert(dns_plausible(q_simple, sizeof(q_simple), &q));
    ck_assert(q);
    ck_assert(dns_plausible(q_multi, sizeof(q_multi), &q));
    ck_assert(dns_plausible(r_cname, sizeof(r_cname), &q));
    ck_assert(!q);
    /* a dnscrypt certificate query (ndpi__dnscrypt-v1-and-resolver-pings.pcap, UDP/443):
     * 2.dnscrypt-cert.quad9.net TXT IN, with an EDNS OPT record */
    static const uint8_t dnscrypt[] = {
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 1,    '2',
        13,   'd',  'n',  's',  'c',  'r',  'y',  'p',  't',  '-',  'c',  'e',  'r',  't',
        5,    'q',  'u',  'a',  'd',  '9',  3,    'n',  'e',  't',  0,    0x00, 0x10, 0x00,
        0x01, 0x00, 0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    ck_assert(dns_plausible(dnscrypt, sizeof(dnscrypt), &q));
    ck_assert(q);
    /* every strict prefix and every extension by a byte is refused: the sections must end
     * exactly at the message's end */
    uint8_t buf[128];
    for (size_t k = 0; k < sizeof(dnscrypt); k++)
        ck_assert_msg(!dns_plausible(dnscrypt, k, NULL), "prefix %zu", k);
    memcpy(buf, dnscrypt, sizeof(dnscrypt));
    buf[sizeof(dnscrypt)] = 0;
    ck_assert(!dns_plausible(buf, sizeof(dnscrypt) + 1, NULL));
    /* header fields: opcode 1, Z set, no question, 5 questions, a query with an answer or
     * with RCODE 3, QTYPE 0, QCLASS 2 */
    static const struct {
        size_t off;
        uint8_t val;
    } bad[] = {{2, 0x09}, {3, 0x40}, {5, 0}, {5, 5}, {7, 1}, {3, 0x03}, {39, 0}, {42, 2}};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++) {
        memcpy(buf, dnscrypt, sizeof(dnscrypt));
        if (bad[i].off == 39) /* QTYPE 0x0010 -> 0 */
            buf[40] = 0;
        else
            buf[bad[i].off] = bad[i].val;
        ck_assert_msg(!dns_plausible(buf, sizeof(dnscrypt), NULL), "case %zu", i);
    }
    /* dnscrypt pads certificate queries with an additional record of type 0, class 0
     * (root, ttl 0, 8 zero bytes here): accepted; the same record as an answer is not */
    memcpy(buf, dnscrypt, sizeof(dnscrypt));
    memcpy(buf + sizeof(dnscrypt) - 11, "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08", 11);
    memset(buf + sizeof(dnscrypt), 0, 8);
    ck_assert(dns_plausible(buf, sizeof(dnscrypt) + 8, &q));
    buf[2] = 0x81; /* a response (QR, RD, RA) */
    buf[3] = 0x80;
    ck_assert(dns_plausible(buf, sizeof(dnscrypt) + 8, &q));
    ck_assert(!q);
    buf[7] = 1;  /* ancount 1 */
    buf[11] = 0; /* arcount 0 */
    ck_assert(!dns_plausible(buf, sizeof(dnscrypt) + 8, NULL));
    /* a question name with a space or a control byte, or the root */
    memcpy(buf, dnscrypt, sizeof(dnscrypt));
    buf[13] = ' ';
    ck_assert(!dns_plausible(buf, sizeof(dnscrypt), NULL));
    buf[13] = 0x01;
    ck_assert(!dns_plausible(buf, sizeof(dnscrypt), NULL));
    size_t n = query_with_name(buf, (const uint8_t *)"", 1);
    ck_assert(!dns_plausible(buf, n, NULL));
    ck_assert(!dns_plausible(NULL, 0, NULL));
}
END_TEST

START_TEST(test_plausible_rejects_other_protocols)
{
    /* a QUIC v1 long header, a TLS ClientHello record, an HTTP request, an NTP client
     * packet, a STUN binding request */
    static const uint8_t quic[] = {0xc3, 0x00, 0x00, 0x00, 0x01, 0x08, 0x83, 0x94, 0xc8, 0xf0,
                                   0x3e, 0x51, 0x57, 0x08, 0x00, 0x00, 0x44, 0x9e, 0x7b, 0x9a,
                                   0xec, 0x34, 0xd1, 0xb1, 0xc9, 0x8d, 0xd7, 0x68, 0x9f, 0xb8};
    static const uint8_t tls[] = {0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03,
                                  0x03, 0x5b, 0x1c, 0x3a, 0x27, 0x8e, 0x4f, 0x22, 0xaa, 0x01,
                                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    static const char http[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    static const uint8_t ntp[48] = {0xe3, 0x00, 0x06, 0xec};
    static const uint8_t stun[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1,  2,
                                     3,    4,    5,    6,    7,    8,    9,    10,   11, 12};
    ck_assert(!dns_plausible(quic, sizeof(quic), NULL));
    ck_assert(!dns_plausible(tls, sizeof(tls), NULL));
    ck_assert(!dns_plausible((const uint8_t *)http, sizeof(http) - 1, NULL));
    ck_assert(!dns_plausible(ntp, sizeof(ntp), NULL));
    ck_assert(!dns_plausible(stun, sizeof(stun), NULL));
    /* a NetBIOS name query (UDP 137, RFC 1002 4.2.12): DNS's layout, but the name is the
     * 32-byte first-level encoding of "WORKGROUP<1d>", type NB (0x20), class IN */
    uint8_t nb[50] = {0x80, 0x01, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 32};
    memcpy(nb + 13, "FHEPFCELEHFCEPFFFACACACACACACABN", 32);
    memcpy(nb + 45, "\x00\x00\x20\x00\x01", 5);
    ck_assert(!dns_plausible(nb, sizeof(nb), NULL));
    nb[13] = 'Z'; /* the same shape with a letter past 'P' is an ordinary DNS label */
    ck_assert(dns_plausible(nb, sizeof(nb), NULL));
    /* random payloads: a fixed xorshift stream, 20000 payloads of 17..600 bytes, with a
     * header that passes the count checks half of the time */
    uint64_t x = 0x9e3779b97f4a7c15u;
    static uint8_t buf[600];
    int accepted = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = 17 + (size_t)(x % 584);
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[k] = (uint8_t)x;
        }
        if (i & 1) {
            memcpy(buf + 2, "\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 10);
            buf[12] = (uint8_t)(x % 40);
        }
        accepted += dns_plausible(buf, n, NULL);
    }
    ck_assert_int_eq(accepted, 0);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("dns");
    TCase *tc = tcase_create("dns_parse");
    tcase_add_test(tc, test_simple);
    tcase_add_test(tc, test_multi_questions);
    tcase_add_test(tc, test_more_questions_than_kept);
    tcase_add_test(tc, test_cname_chain);
    tcase_add_test(tc, test_pointer_attacks);
    tcase_add_test(tc, test_name_length);
    tcase_add_test(tc, test_render);
    tcase_add_test(tc, test_pointer_budget_per_message);
    tcase_add_test(tc, test_forward_pointer_answer);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("dns_plausible");
    tcase_add_test(tp, test_plausible);
    tcase_add_test(tp, test_plausible_rejects_other_protocols);
    suite_add_tcase(s, tp);
    TCase *tch = tcase_create("dns_answer_chain");
    tcase_add_test(tch, test_answer_chain);
    suite_add_tcase(s, tch);
    TCase *tt = tcase_create("tshark_truth");
    tcase_set_timeout(tt, 120);
    tcase_add_test(tt, test_tshark_truth);
    suite_add_tcase(s, tt);
    return s;
}
