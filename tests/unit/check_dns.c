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
    /* self pointer: the name at 12 is c0 0c */
    size_t n = query_with_name(buf, (const uint8_t *)"\xc0\x0c", 2);
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_EBAD);
    /* forward pointer: 01 a c0 20, and a valid name "b" at 0x20 */
    n = query_with_name(buf,
                        (const uint8_t *)"\x01"
                                         "a\xc0\x20",
                        4);
    memset(buf + n, 0, 0x20 - n);
    memcpy(buf + 0x20,
           "\x01"
           "b\x00",
           3);
    ck_assert_int_eq(dns_parse(buf, 0x23, &m), TW_EBAD);
    /* loop: q1 (at 12) is 01 a c0 12 and q2 (at 18) is c0 0c: 12 -> 18 -> 12 ... The jump
     * from 18 to 12 is backwards, but 12's pointer to 18 is forward, so refused */
    static const uint8_t loop[] = {0, 1,   1,    0,  0, 2, 0,    0,  0, 0, 0, 0,
                                   1, 'a', 0xc0, 18, 0, 1, 0xc0, 12, 0, 1, 0, 1};
    ck_assert_int_eq(dns_parse(loop, sizeof(loop), &m), TW_EBAD);
    /* pointer into the middle of the same label run it came from */
    n = query_with_name(buf,
                        (const uint8_t *)"\x01"
                                         "a\x01"
                                         "b\xc0\x0e",
                        6);
    ck_assert_int_eq(dns_parse(buf, n, &m), TW_EBAD);
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
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("tshark_truth");
    tcase_set_timeout(tt, 120);
    tcase_add_test(tt, test_tshark_truth);
    suite_add_tcase(s, tt);
    return s;
}
