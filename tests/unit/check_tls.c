/* check_tls.c - unit tests for the ClientHello path: record reassembly (a hello over several
 * records and segments), truncation, SNI/ALPN/versions, the ECH flag, GREASE, JA4 against
 * published values, and every prefix of every valid fixture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/tls.h"
#include "tw_check.h"

/* A small writer for building hellos; lengths are patched when a vector closes. */
struct wr {
    uint8_t b[4096];
    size_t n;
    size_t open[8];
    int depth;
};

static void u8(struct wr *w, unsigned v)
{
    w->b[w->n++] = (uint8_t)v;
}

static void u16(struct wr *w, unsigned v)
{
    u8(w, v >> 8);
    u8(w, v & 0xff);
}

static void raw(struct wr *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

/* opens a vector with a len_bytes-byte length (1, 2 or 3) */
static void vec(struct wr *w, int len_bytes)
{
    w->open[w->depth++] = w->n | (size_t)len_bytes << 24;
    for (int i = 0; i < len_bytes; i++)
        u8(w, 0);
}

static void end(struct wr *w)
{
    size_t o = w->open[--w->depth];
    int lb = (int)(o >> 24);
    o &= 0xffffff;
    size_t len = w->n - o - (size_t)lb;
    for (int i = lb - 1; i >= 0; i--, len >>= 8)
        w->b[o + (size_t)i] = (uint8_t)(len & 0xff);
}

static void ext_begin(struct wr *w, unsigned type)
{
    u16(w, type);
    vec(w, 2);
}

/* The Chrome 143 hello published by tls.browserleaks.com with its JA4 (ja4_ro gives the
 * original order; GREASE values added as Chrome sends them):
 *   handshake ClientHello, legacy_version 0x0303, random 32 x 0x11, session id 32 x 0x22
 *   ciphers: GREASE 0a0a, 1301 1302 1303 c02b c02f c02c c030 cca9 cca8 c013 c014 009c 009d
 *            002f 0035
 *   compression: null
 *   extensions: GREASE 1a1a, 002d psk_modes, 0033 key_share, 0010 ALPN "h2" "http/1.1",
 *     fe0d ECH, 0017 ems, 44cd ALPS, 0000 SNI "tls-outer.browserleaks.com", 000b, 000a,
 *     002b supported_versions (GREASE 2a2a, 0304, 0303), ff01, 0023, 0012, 0005,
 *     000d sigalgs 0403 0804 0401 0503 0805 0501 0806 0601, 001b, GREASE 3a3a
 *   published JA4: t13d1516h2_8daaf6152771_d8a2da3f94cd */
static size_t chrome_hello(uint8_t *out, bool grease, bool ech)
{
    static const unsigned ciphers[] = {0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f,
                                       0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                                       0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
    static const unsigned sigalgs[] = {0x0403, 0x0804, 0x0401, 0x0503,
                                       0x0805, 0x0501, 0x0806, 0x0601};
    static struct wr w;
    memset(&w, 0, sizeof(w));
    u8(&w, 1);
    vec(&w, 3);
    u16(&w, 0x0303);
    for (int i = 0; i < 32; i++)
        u8(&w, 0x11);
    vec(&w, 1);
    for (int i = 0; i < 32; i++)
        u8(&w, 0x22);
    end(&w);
    vec(&w, 2);
    if (grease)
        u16(&w, 0x0a0a);
    for (size_t i = 0; i < TW_ARRAY_LEN(ciphers); i++)
        u16(&w, ciphers[i]);
    end(&w);
    u8(&w, 1);
    u8(&w, 0);
    vec(&w, 2);
    if (grease) {
        ext_begin(&w, 0x1a1a);
        end(&w);
    }
    ext_begin(&w, 0x002d);
    raw(&w, "\x01\x01", 2);
    end(&w);
    ext_begin(&w, 0x0033);
    raw(&w, "\x00\x00", 2);
    end(&w);
    ext_begin(&w, 0x0010);
    raw(&w, "\x00\x0c\x02h2\x08http/1.1", 14);
    end(&w);
    if (ech) {
        ext_begin(&w, 0xfe0d);
        raw(&w, "\x00\x00\x01\x00\x01\x42\x00\x00\x00\x00", 10);
        end(&w);
    }
    ext_begin(&w, 0x0017);
    end(&w);
    ext_begin(&w, 0x44cd);
    raw(&w, "\x00\x03\x02h2", 5);
    end(&w);
    ext_begin(&w, 0x0000);
    vec(&w, 2);
    u8(&w, 0);
    vec(&w, 2);
    raw(&w, "tls-outer.browserleaks.com", 26);
    end(&w);
    end(&w);
    end(&w);
    ext_begin(&w, 0x000b);
    raw(&w, "\x01\x00", 2);
    end(&w);
    ext_begin(&w, 0x000a);
    raw(&w, "\x00\x04\x00\x1d\x00\x17", 6);
    end(&w);
    ext_begin(&w, 0x002b);
    vec(&w, 1);
    if (grease)
        u16(&w, 0x2a2a);
    u16(&w, 0x0304);
    u16(&w, 0x0303);
    end(&w);
    end(&w);
    ext_begin(&w, 0xff01);
    u8(&w, 0);
    end(&w);
    ext_begin(&w, 0x0023);
    end(&w);
    ext_begin(&w, 0x0012);
    end(&w);
    ext_begin(&w, 0x0005);
    raw(&w, "\x01\x00\x00\x00\x00", 5);
    end(&w);
    ext_begin(&w, 0x000d);
    vec(&w, 2);
    for (size_t i = 0; i < TW_ARRAY_LEN(sigalgs); i++)
        u16(&w, sigalgs[i]);
    end(&w);
    end(&w);
    ext_begin(&w, 0x001b);
    raw(&w, "\x02\x00\x02", 3);
    end(&w);
    if (grease) {
        ext_begin(&w, 0x3a3a);
        u8(&w, 0);
        end(&w);
    }
    end(&w); /* extensions */
    end(&w); /* handshake body */
    memcpy(out, w.b, w.n);
    return w.n;
}

/* Wraps msg into TLS records of at most frag bytes each. */
static size_t records(const uint8_t *msg, size_t n, size_t frag, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += frag) {
        size_t k = n - i < frag ? n - i : frag;
        out[o++] = 22;
        out[o++] = 3;
        out[o++] = 1;
        out[o++] = (uint8_t)(k >> 8);
        out[o++] = (uint8_t)k;
        memcpy(out + o, msg + i, k);
        o += k;
    }
    return o;
}

static uint8_t hello[4096], stream[8192], buf[TLS_HELLO_MAX];

START_TEST(test_ja4_published)
{
    size_t n = chrome_hello(hello, true, true);
    struct tls_hello h;
    ck_assert_int_eq(tls_parse_hello(hello, n, false, &h), TW_OK);
    ck_assert_str_eq(h.ja4, "t13d1516h2_8daaf6152771_d8a2da3f94cd");
    ck_assert_uint_eq(h.sni_len, 26);
    ck_assert_mem_eq(h.sni, "tls-outer.browserleaks.com", 26);
    ck_assert_str_eq(h.alpn, "h2");
    ck_assert_uint_eq(h.legacy_version, 0x0303);
    ck_assert_uint_eq(h.max_version, 0x0304); /* GREASE 2a2a skipped */
    ck_assert(h.has_ech);
    /* QUIC only changes the first letter */
    ck_assert_int_eq(tls_parse_hello(hello, n, true, &h), TW_OK);
    ck_assert_str_eq(h.ja4, "q13d1516h2_8daaf6152771_d8a2da3f94cd");
}
END_TEST

START_TEST(test_grease_ignored)
{
    struct tls_hello a, b;
    size_t n = chrome_hello(hello, true, true);
    ck_assert_int_eq(tls_parse_hello(hello, n, false, &a), TW_OK);
    n = chrome_hello(hello, false, true);
    ck_assert_int_eq(tls_parse_hello(hello, n, false, &b), TW_OK);
    ck_assert_str_eq(a.ja4, b.ja4);
    ck_assert_uint_eq(b.max_version, 0x0304);
}
END_TEST

START_TEST(test_no_ech)
{
    struct tls_hello h;
    size_t n = chrome_hello(hello, true, false);
    ck_assert_int_eq(tls_parse_hello(hello, n, false, &h), TW_OK);
    ck_assert(!h.has_ech);
    /* one extension fewer, and a different extension hash */
    ck_assert_int_eq(strncmp(h.ja4, "t13d1515h2_8daaf6152771_", 24), 0);
    ck_assert_str_ne(h.ja4 + 24, "d8a2da3f94cd");
}
END_TEST

START_TEST(test_record_fragmentation)
{
    size_t n = chrome_hello(hello, true, true);
    struct tls_hello h;
    /* 1 record, then records of 100 bytes, then of 1 byte */
    const size_t frags[] = {16384, 100, 7, 1};
    for (size_t f = 0; f < TW_ARRAY_LEN(frags); f++) {
        size_t sn = records(hello, n, frags[f], stream);
        long r = tls_hello_from_records(stream, sn, buf, sizeof(buf));
        ck_assert_int_eq(r, (long)n);
        ck_assert_mem_eq(buf, hello, n);
        ck_assert_int_eq(tls_parse_hello(buf, (size_t)r, false, &h), TW_OK);
        ck_assert_str_eq(h.ja4, "t13d1516h2_8daaf6152771_d8a2da3f94cd");
        /* every shorter stream (any TCP segmentation) says "need more" */
        for (size_t k = 0; k < sn; k++)
            ck_assert_int_eq(tls_hello_from_records(stream, k, buf, sizeof(buf)), TW_ETRUNC);
    }
    ck_assert(tls_looks_like_hello(stream, 6));
    ck_assert(tls_looks_like_hello(stream, 1));
    /* bytes after the hello (e.g. a following record) do not matter */
    size_t sn = records(hello, n, 300, stream);
    memcpy(stream + sn, "\x17\x03\x03\x00\x01\x00", 6);
    ck_assert_int_eq(tls_hello_from_records(stream, sn + 6, buf, sizeof(buf)), (long)n);
    /* a small buffer is TW_ELIMIT, not an overflow */
    ck_assert_int_eq(tls_hello_from_records(stream, sn, buf, 100), TW_ELIMIT);
}
END_TEST

START_TEST(test_not_hello)
{
    static const uint8_t appdata[] = {0x17, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00};
    ck_assert_int_eq(tls_hello_from_records(appdata, sizeof(appdata), buf, sizeof(buf)), TW_EBAD);
    ck_assert(!tls_looks_like_hello(appdata, sizeof(appdata)));
    /* ServerHello (type 2) in a handshake record */
    static const uint8_t sh[] = {0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00};
    ck_assert_int_eq(tls_hello_from_records(sh, sizeof(sh), buf, sizeof(buf)), TW_EBAD);
    ck_assert(!tls_looks_like_hello(sh, sizeof(sh)));
    static const char http[] = "GET / HTTP/1.1\r\n";
    ck_assert(!tls_looks_like_hello((const uint8_t *)http, sizeof(http) - 1));
    struct tls_hello h;
    ck_assert_int_eq(tls_parse_hello(sh + 5, 4, false, &h), TW_EBAD);
}
END_TEST

START_TEST(test_every_prefix)
{
    size_t n = chrome_hello(hello, true, true);
    struct tls_hello h;
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, hello, k);
        int rc = tls_parse_hello(copy, k, false, &h);
        free(copy);
        /* the handshake length says more is coming: always TW_ETRUNC, never a name */
        ck_assert_int_eq(rc, TW_ETRUNC);
        ck_assert_ptr_null(h.sni);
    }
}
END_TEST

START_TEST(test_snaplen_cut)
{
    /* the hello record as captured with a short snaplen: the SNI bytes are there but the
     * message is not complete, so no name is reported */
    size_t n = chrome_hello(hello, true, true);
    size_t sn = records(hello, n, 16384, stream);
    size_t cut = sn - 40; /* the SNI is earlier than the last 40 bytes */
    ck_assert_int_eq(tls_hello_from_records(stream, cut, buf, sizeof(buf)), TW_ETRUNC);
    struct tls_hello h;
    ck_assert_int_eq(tls_parse_hello(stream + 5, cut - 5, false, &h), TW_ETRUNC);
    ck_assert_ptr_null(h.sni);
}
END_TEST

START_TEST(test_capture_ech)
{
    /* client stream of ndpi__tls_ech.pcapng (frame 4): Chrome with ECH to Cloudflare.
     * nDPI's published result for this capture: JA4 t13d1516h2_8daaf6152771_02713d6af862 */
    size_t len;
    uint8_t *s = tw_read_file(tw_src_path("tests/fuzz/corpus/tls/ndpi__tls_ech_f4.bin"), &len);
    ck_assert_ptr_nonnull(s);
    long r = tls_hello_from_records(s, len, buf, sizeof(buf));
    ck_assert_int_gt(r, 0);
    struct tls_hello h;
    ck_assert_int_eq(tls_parse_hello(buf, (size_t)r, false, &h), TW_OK);
    ck_assert_uint_eq(h.sni_len, strlen("performance.radar.cloudflare.com"));
    ck_assert_mem_eq(h.sni, "performance.radar.cloudflare.com", h.sni_len);
    ck_assert(h.has_ech);
    ck_assert_str_eq(h.ja4, "t13d1516h2_8daaf6152771_02713d6af862");
    for (size_t k = 0; k < (size_t)r; k++)
        ck_assert_int_eq(tls_parse_hello(buf, k, false, &h), TW_ETRUNC);
    free(s);
}
END_TEST

START_TEST(test_capture_chrome)
{
    /* ndpi__chrome.pcap frame 4: the JA4 is the example in FoxIO's JA4 documentation */
    size_t len;
    uint8_t *s = tw_read_file(tw_src_path("tests/fuzz/corpus/tls/ndpi__chrome_f4.bin"), &len);
    ck_assert_ptr_nonnull(s);
    long r = tls_hello_from_records(s, len, buf, sizeof(buf));
    ck_assert_int_gt(r, 0);
    struct tls_hello h;
    ck_assert_int_eq(tls_parse_hello(buf, (size_t)r, false, &h), TW_OK);
    ck_assert_mem_eq(h.sni, "www.iit.cnr.it", h.sni_len);
    ck_assert(!h.has_ech);
    ck_assert_str_eq(h.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    free(s);
}
END_TEST

START_TEST(test_no_extensions)
{
    /* SSL 3.0-style hello without an extensions block:
     *   01 000029 | 0300 | random 32 x 00 | sid 00 | 0002 000a | 01 00 */
    uint8_t m[45] = {1, 0, 0, 41, 3, 0};
    m[38] = 0;
    m[39] = 0;
    m[40] = 2;
    m[41] = 0;
    m[42] = 0x0a;
    m[43] = 1;
    m[44] = 0;
    struct tls_hello h;
    ck_assert_int_eq(tls_parse_hello(m, sizeof(m), false, &h), TW_OK);
    ck_assert_ptr_null(h.sni);
    ck_assert_str_eq(h.alpn, "");
    ck_assert_str_eq(h.ja4, "ts3i010000_a8f3e973773c_000000000000");
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls_parse_hello");
    tcase_add_test(tc, test_ja4_published);
    tcase_add_test(tc, test_grease_ignored);
    tcase_add_test(tc, test_no_ech);
    tcase_add_test(tc, test_every_prefix);
    tcase_add_test(tc, test_snaplen_cut);
    tcase_add_test(tc, test_capture_ech);
    tcase_add_test(tc, test_capture_chrome);
    tcase_add_test(tc, test_no_extensions);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("tls_hello_from_records");
    tcase_add_test(tr, test_record_fragmentation);
    tcase_add_test(tr, test_not_hello);
    suite_add_tcase(s, tr);
    return s;
}
