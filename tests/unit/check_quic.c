/* check_quic.c - unit tests for quic.c: RFC 9001 / RFC 9369 Appendix A vectors, CRYPTO
 * reassembly over sealed packets (split, out of order, overlapping, coalesced, DCID changes)
 * and client datagrams cut from the shared pcaps (tests/unit/data/quic/, see README there).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/quic.h"
#include "tw_check.h"

/* RFC 9001 A: the client-chosen Destination Connection ID of every Appendix A sample. */
static const uint8_t rfc_dcid[8] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};

/* RFC 9001 A.2: the CRYPTO frame of the client Initial, a 241-byte ClientHello for
 * "example.com": 06 (CRYPTO) 00 (offset 0) 40f1 (length 241) 01 0000ed 0303 ... */
static const char rfc_crypto_frame_hex[] =
    "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
    "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
    "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
    "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
    "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
    "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
    "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
    "75300901100f088394c8f03e51570806048000ffff";

/* Decodes hex, skipping whitespace; returns the byte count. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            ck_assert_uint_lt(n, cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

/* A fixture from tests/unit/data/quic/ (binary, or hex text when the name ends in .hex). */
static uint8_t *fixture(const char *name, size_t *len)
{
    char rel[256];
    snprintf(rel, sizeof(rel), "tests/unit/data/quic/%s", name);
    uint8_t *b = tw_read_file(tw_src_path(rel), len);
    ck_assert_msg(b != NULL, "missing fixture %s", rel);
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".hex") == 0) {
        char *txt = malloc(*len + 1);
        memcpy(txt, b, *len);
        txt[*len] = 0;
        *len = unhex(txt, b, *len);
        free(txt);
    }
    return b;
}

/* The RFC's ClientHello: the CRYPTO frame's data (after its 4-byte frame header). */
static size_t rfc_hello(uint8_t *out)
{
    uint8_t frame[300];
    size_t n = unhex(rfc_crypto_frame_hex, frame, sizeof(frame));
    ck_assert_uint_eq(n, 245);
    memcpy(out, frame + 4, n - 4);
    return n - 4;
}

/* True when the ClientHello carries host_name `name` in a server_name list entry
 * (RFC 6066 3: NameType 0, uint16 length, name). */
static bool has_sni(const uint8_t *h, size_t n, const char *name)
{
    size_t l = strlen(name);
    uint8_t pat[260] = {0x00, (uint8_t)(l >> 8), (uint8_t)l};
    memcpy(pat + 3, name, l);
    return memmem(h, n, pat, l + 3) != NULL;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    if (v < 64) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v < 16384) {
        p[0] = (uint8_t)(0x40 | v >> 8);
        p[1] = (uint8_t)v;
        return 2;
    }
    ck_assert(v < (1u << 30));
    p[0] = (uint8_t)(0x80 | v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* Appends CRYPTO frame (offset, data[off, off + n)) to out at *k. */
static void put_crypto(uint8_t *out, size_t *k, const uint8_t *stream, size_t off, size_t n)
{
    out[(*k)++] = 0x06;
    *k += put_varint(out + *k, off);
    *k += put_varint(out + *k, n);
    memcpy(out + *k, stream + off, n);
    *k += n;
}

/* A synthetic ClientHello of `len` bytes (handshake header included) naming `sni`. */
static void make_hello(uint8_t *h, size_t len, const char *sni)
{
    for (size_t i = 0; i < len; i++)
        h[i] = (uint8_t)(i * 7 + 3);
    h[0] = 1;
    h[1] = (uint8_t)((len - 4) >> 16);
    h[2] = (uint8_t)((len - 4) >> 8);
    h[3] = (uint8_t)(len - 4);
    size_t l = strlen(sni);
    h[100] = 0;
    h[101] = 0;
    h[102] = (uint8_t)l;
    memcpy(h + 103, sni, l);
}

/* Seals an Initial whose header names the DCID its keys derive from. */
static long seal(uint32_t version, const uint8_t *dcid, size_t dl, uint32_t pn,
                 const uint8_t *frames, size_t n, uint8_t *out)
{
    struct quic_seal ss = {version, dcid, dl, dcid, dl, pn, 0};
    long r = quic_initial_seal(&ss, frames, n, out, 2048);
    ck_assert_int_gt(r, 0);
    return r;
}

/* ---- keys ---- */

START_TEST(test_keys_v1)
{
    /* RFC 9001 A.1: client key, iv and hp from DCID 0x8394c8f03e515708 */
    uint8_t key[16], iv[12], hp[16], want[16];
    ck_assert_int_eq(quic_derive_client_keys(QUIC_VERSION_1, rfc_dcid, 8, key, iv, hp), TW_OK);
    unhex("1f369613dd76d5467730efcbe3b1a22d", want, 16);
    ck_assert_mem_eq(key, want, 16);
    unhex("fa044b2f42a3fd3b46fb255c", want, 12);
    ck_assert_mem_eq(iv, want, 12);
    unhex("9f50449e04a0e810283a1e9933adedd2", want, 16);
    ck_assert_mem_eq(hp, want, 16);
}
END_TEST

START_TEST(test_keys_v2)
{
    /* RFC 9369 A.1: the same DCID with the v2 salt and "quicv2 " labels */
    uint8_t key[16], iv[12], hp[16], want[16];
    ck_assert_int_eq(quic_derive_client_keys(QUIC_VERSION_2, rfc_dcid, 8, key, iv, hp), TW_OK);
    unhex("8b1a0bc121284290a29e0971b5cd045d", want, 16);
    ck_assert_mem_eq(key, want, 16);
    unhex("91f73e2351d8fa91660e909f", want, 12);
    ck_assert_mem_eq(iv, want, 12);
    unhex("45b95e15235d6f45a6b19cbcb0294ba9", want, 16);
    ck_assert_mem_eq(hp, want, 16);
}
END_TEST

START_TEST(test_keys_refused)
{
    uint8_t key[16], iv[12], hp[16], cid[21] = {0};
    ck_assert_int_eq(quic_derive_client_keys(0x12345678u, rfc_dcid, 8, key, iv, hp), TW_EBAD);
    ck_assert_int_eq(quic_derive_client_keys(0, rfc_dcid, 8, key, iv, hp), TW_EBAD);
    ck_assert_int_eq(quic_derive_client_keys(QUIC_VERSION_1, cid, 21, key, iv, hp), TW_EBAD);
    /* a zero-length DCID is legal after some Retries: keys still derive */
    ck_assert_int_eq(quic_derive_client_keys(QUIC_VERSION_1, cid, 0, key, iv, hp), TW_OK);
    /* draft-29 keys differ from v1's (another salt) */
    uint8_t k1[16];
    ck_assert_int_eq(quic_derive_client_keys(QUIC_VERSION_1, rfc_dcid, 8, k1, iv, hp), TW_OK);
    ck_assert_int_eq(quic_derive_client_keys(QUIC_DRAFT_29, rfc_dcid, 8, key, iv, hp), TW_OK);
    ck_assert(memcmp(k1, key, 16) != 0);
}
END_TEST

/* ---- the RFC sample packets ---- */

static void check_rfc_packet(const char *fixture_name)
{
    size_t n;
    uint8_t *pkt = fixture(fixture_name, &n);
    ck_assert_uint_eq(n, 1200);
    ck_assert(quic_looks_like_initial(pkt, n));
    uint8_t want[256];
    size_t wl = rfc_hello(want);
    struct quic_initial *q = quic_initial_new();
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(quic_initial_feed(q, pkt, n), (long)wl);
    ck_assert_mem_eq(quic_initial_hello(q), want, wl);
    ck_assert(has_sni(quic_initial_hello(q), wl, "example.com"));
    /* the same datagram again completes nothing new */
    ck_assert_int_eq(quic_initial_feed(q, pkt, n), TW_ETRUNC);
    quic_initial_free(q);
    free(pkt);
}

START_TEST(test_rfc9001_a2_opens)
{
    check_rfc_packet("rfc9001_a2_client_initial.hex");
}
END_TEST

START_TEST(test_rfc9369_a2_opens)
{
    check_rfc_packet("rfc9369_a2_client_initial.hex");
}
END_TEST

/* Sealing the A.2 plaintext (CRYPTO frame + PADDING to 1162 bytes, pn 2) must give the
 * RFC's protected packet byte for byte: this pins the test helper the other cases use. */
static void check_rfc_seal(uint32_t version, const char *fixture_name)
{
    uint8_t frames[1162] = {0}, out[2048];
    unhex(rfc_crypto_frame_hex, frames, sizeof(frames));
    size_t n;
    uint8_t *pkt = fixture(fixture_name, &n);
    struct quic_seal ss = {version, rfc_dcid, 8, rfc_dcid, 8, 2, 0};
    long r = quic_initial_seal(&ss, frames, sizeof(frames), out, sizeof(out));
    ck_assert_int_eq(r, 1200);
    ck_assert_mem_eq(out, pkt, 1200);
    ck_assert_int_eq(quic_initial_seal(&ss, frames, sizeof(frames), out, 1199), TW_ELIMIT);
    ss.version = 0x0a0a0a0a; /* a reserved (greasing) version: nothing to seal with */
    ck_assert_int_eq(quic_initial_seal(&ss, frames, sizeof(frames), out, sizeof(out)), TW_EBAD);
    free(pkt);
}

START_TEST(test_seal_matches_rfc)
{
    check_rfc_seal(QUIC_VERSION_1, "rfc9001_a2_client_initial.hex");
    check_rfc_seal(QUIC_VERSION_2, "rfc9369_a2_client_initial.hex");
}
END_TEST

START_TEST(test_tampered)
{
    size_t n;
    uint8_t *pkt = fixture("rfc9001_a2_client_initial.hex", &n);
    struct quic_initial *q = quic_initial_new();
    /* one flipped ciphertext bit, then one header bit (AAD): the AEAD must refuse both */
    pkt[600] ^= 1;
    ck_assert_int_eq(quic_initial_feed(q, pkt, n), TW_EBAD);
    pkt[600] ^= 1;
    pkt[7] ^= 1;
    ck_assert_int_eq(quic_initial_feed(q, pkt, n), TW_EBAD);
    pkt[7] ^= 1;
    /* the failures left no state behind: the genuine packet still opens */
    ck_assert_int_eq(quic_initial_feed(q, pkt, n), 241);
    quic_initial_free(q);
    free(pkt);
}
END_TEST

START_TEST(test_not_initial)
{
    uint8_t short_hdr[64] = {0x40, 1, 2, 3};
    uint8_t vneg[64] = {0xc0, 0, 0, 0, 0, 8};
    uint8_t unknown[64] = {0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8};
    struct quic_initial *q = quic_initial_new();
    ck_assert(!quic_looks_like_initial(short_hdr, sizeof(short_hdr)));
    ck_assert(!quic_looks_like_initial(vneg, sizeof(vneg)));
    ck_assert(!quic_looks_like_initial(unknown, sizeof(unknown)));
    ck_assert(!quic_looks_like_initial(vneg, 3));
    ck_assert_int_eq(quic_initial_feed(q, short_hdr, sizeof(short_hdr)), TW_EBAD);
    ck_assert_int_eq(quic_initial_feed(q, vneg, sizeof(vneg)), TW_EBAD);
    ck_assert_int_eq(quic_initial_feed(q, unknown, sizeof(unknown)), TW_EBAD);
    ck_assert_int_eq(quic_initial_feed(q, NULL, 0), TW_EBAD);
    /* a v1 Handshake packet (type 2) is no Initial; a v2 packet with v1's Initial bits is
     * v2's Retry */
    uint8_t hs[] = {0xe0, 0, 0, 0, 1, 0, 0, 0};
    uint8_t v2retry[] = {0xc0, 0x6b, 0x33, 0x43, 0xcf, 0, 0};
    ck_assert(!quic_looks_like_initial(hs, sizeof(hs)));
    ck_assert(!quic_looks_like_initial(v2retry, sizeof(v2retry)));
    quic_initial_free(q);
}
END_TEST

/* ---- reassembly over sealed packets ---- */

static const uint8_t cid_a[8] = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
static const uint8_t cid_b[5] = {0xb1, 0xb2, 0xb3, 0xb4, 0xb5};

START_TEST(test_split_in_order)
{
    static uint8_t h[1500], f[1600], p1[2048], p2[2048];
    make_hello(h, sizeof(h), "split.example");
    struct quic_initial *q = quic_initial_new();
    size_t k = 0;
    put_crypto(f, &k, h, 0, 1000);
    long n1 = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p1);
    k = 0;
    put_crypto(f, &k, h, 1000, 500);
    long n2 = seal(QUIC_VERSION_1, cid_a, 8, 1, f, k, p2);
    ck_assert_int_eq(quic_initial_feed(q, p1, (size_t)n1), TW_ETRUNC);
    ck_assert_ptr_null(quic_initial_hello(q));
    ck_assert_int_eq(quic_initial_feed(q, p2, (size_t)n2), 1500);
    ck_assert_mem_eq(quic_initial_hello(q), h, 1500);
    ck_assert(has_sni(quic_initial_hello(q), 1500, "split.example"));
    quic_initial_free(q);
}
END_TEST

START_TEST(test_split_out_of_order)
{
    static uint8_t h[1500], f[1600], p1[2048], p2[2048];
    make_hello(h, sizeof(h), "ooo.example");
    struct quic_initial *q = quic_initial_new();
    size_t k = 0;
    put_crypto(f, &k, h, 0, 700);
    long n1 = seal(QUIC_VERSION_2, cid_a, 8, 0, f, k, p1);
    k = 0;
    put_crypto(f, &k, h, 700, 800);
    long n2 = seal(QUIC_VERSION_2, cid_a, 8, 1, f, k, p2);
    /* the tail first: no handshake header yet */
    ck_assert_int_eq(quic_initial_feed(q, p2, (size_t)n2), TW_ETRUNC);
    ck_assert_int_eq(quic_initial_feed(q, p1, (size_t)n1), 1500);
    ck_assert_mem_eq(quic_initial_hello(q), h, 1500);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_overlaps_and_duplicates)
{
    /* Within one packet: pieces in a scrambled order, overlapping, repeated, with PING,
     * ACK (with ECN), PADDING and a CONNECTION_CLOSE between them. */
    static uint8_t h[600], f[2000], p[2048];
    make_hello(h, sizeof(h), "overlap.example");
    size_t k = 0;
    static const size_t pieces[][2] = {{300, 200}, {250, 100}, {500, 100}, {0, 10},
                                       {5, 100},   {300, 200}, {100, 160}, {590, 10}};
    f[k++] = 0x01;                                                 /* PING */
    memcpy(f + k, "\x03\x05\x00\x01\x00\x01\x01\x01\x02\x03", 10); /* ACK-ECN, 1 range */
    k += 10;
    for (size_t i = 0; i < TW_ARRAY_LEN(pieces); i++) {
        put_crypto(f, &k, h, pieces[i][0], pieces[i][1]);
        if (i == 3)
            f[k++] = 0x00, f[k++] = 0x00; /* PADDING */
    }
    memcpy(f + k, "\x1c\x00\x06\x02ok", 6); /* CONNECTION_CLOSE code 0, type 6, "ok" */
    k += 6;
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    struct quic_initial *q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 600);
    ck_assert_mem_eq(quic_initial_hello(q), h, 600);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_first_copy_wins)
{
    /* A retransmission that disagrees with what is stored does not overwrite it. */
    static uint8_t h[400], bad[400], f[1000], p[2048];
    make_hello(h, sizeof(h), "first.example");
    memcpy(bad, h, sizeof(bad));
    memset(bad + 50, 0xee, 100);
    struct quic_initial *q = quic_initial_new();
    size_t k = 0;
    put_crypto(f, &k, h, 0, 200);
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
    k = 0;
    put_crypto(f, &k, bad, 0, 400);
    n = seal(QUIC_VERSION_1, cid_a, 8, 1, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 400);
    ck_assert_mem_eq(quic_initial_hello(q), h, 400);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_coalesced)
{
    /* 0-RTT, then Initial, then Handshake, then a short-header packet, in one datagram
     * (RFC 9000 12.2): the Initial is found between the packets it must skip. */
    static uint8_t h[300], f[400], d[2048];
    make_hello(h, sizeof(h), "coalesced.example");
    size_t k = 0;
    put_crypto(f, &k, h, 0, 300);
    size_t dl = 0;
    const uint8_t zrtt[] = {0xd1, 0,    0,    0,    1,    8, 0xa1, 0xa2, 0xa3,
                            0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0, 0x40, 30};
    memcpy(d, zrtt, sizeof(zrtt));
    dl = sizeof(zrtt);
    memset(d + dl, 0x5a, 30);
    dl += 30;
    dl += (size_t)seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, d + dl);
    const uint8_t hs[] = {0xe2, 0,    0,    0,    1,    8,    0xa1, 0xa2,
                          0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0,    20};
    memcpy(d + dl, hs, sizeof(hs));
    dl += sizeof(hs);
    memset(d + dl, 0x77, 20);
    dl += 20;
    memset(d + dl, 0x41, 40); /* short header: 0x41 ... */
    dl += 40;
    struct quic_initial *q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, d, dl), 300);
    ck_assert(has_sni(quic_initial_hello(q), 300, "coalesced.example"));
    quic_initial_free(q);

    /* every prefix: the cut Initial never opens, nothing crashes */
    for (size_t i = 0; i < dl; i++) {
        q = quic_initial_new();
        long r = quic_initial_feed(q, d, i);
        ck_assert_msg(r == TW_EBAD || r == 300, "prefix %zu: %ld", i, r);
        quic_initial_free(q);
    }
}
END_TEST

START_TEST(test_new_dcid_keeps_original_keys)
{
    /* After the server's first flight the client may name the server's CID as DCID, but
     * its Initial keys still derive from the original DCID (RFC 9001 5.2). */
    static uint8_t h[900], f[1000], p[2048];
    make_hello(h, sizeof(h), "newcid.example");
    struct quic_initial *q = quic_initial_new();
    size_t k = 0;
    put_crypto(f, &k, h, 0, 450);
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
    k = 0;
    put_crypto(f, &k, h, 450, 450);
    struct quic_seal ss = {QUIC_VERSION_1, cid_a, 8, cid_b, 5, 1, 0};
    n = quic_initial_seal(&ss, f, k, p, sizeof(p));
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 900);
    ck_assert_mem_eq(quic_initial_hello(q), h, 900);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_retry_dcid_own_keys)
{
    /* After a Retry the client's Initials use the Retry's SCID as DCID and derive their
     * keys from it (RFC 9001 5.2): the packet's own DCID is tried when the original's
     * keys fail, and a later DCID switch keeps those keys. */
    static uint8_t h[900], f[1000], p[2048];
    static const uint8_t cid_c[4] = {0xc1, 0xc2, 0xc3, 0xc4};
    make_hello(h, sizeof(h), "retry.example");
    struct quic_initial *q = quic_initial_new();
    size_t k = 0;
    put_crypto(f, &k, h, 0, 300);
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
    k = 0;
    put_crypto(f, &k, h, 300, 300);
    n = seal(QUIC_VERSION_1, cid_b, 5, 1, f, k, p); /* post-Retry: B's own keys */
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
    k = 0;
    put_crypto(f, &k, h, 600, 300);
    struct quic_seal ss = {QUIC_VERSION_1, cid_b, 5, cid_c, 4, 2, 0}; /* C named, B's keys */
    n = quic_initial_seal(&ss, f, k, p, sizeof(p));
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 900);
    ck_assert_mem_eq(quic_initial_hello(q), h, 900);
    /* keys from a DCID nobody used are refused */
    struct quic_seal bogus = {QUIC_VERSION_1, cid_c, 4, cid_a, 8, 3, 0};
    n = quic_initial_seal(&bogus, f, k, p, sizeof(p));
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_EBAD);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_forged_high_pn)
{
    /* A packet numbered 0xfffffff0 makes RFC 9000 A.3 decode the next "1" as 2^32 + 1;
     * the number as sent is tried too, so the flow stays readable. */
    static uint8_t h[200], f[300], p[2048];
    make_hello(h, sizeof(h), "pn.example");
    struct quic_initial *q = quic_initial_new();
    size_t k = 0;
    f[k++] = 0x01; /* PING */
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0xfffffff0u, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
    k = 0;
    put_crypto(f, &k, h, 0, 200);
    n = seal(QUIC_VERSION_1, cid_a, 8, 1, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 200);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_one_derivation_per_datagram)
{
    /* Two coalesced Initials under two unknown DCIDs: only the first gets keys derived in
     * this datagram; the second opens when it comes again on its own. */
    static uint8_t h[200], f[300], d[2048], p2[2048];
    make_hello(h, sizeof(h), "derive.example");
    size_t k = 0;
    put_crypto(f, &k, h, 0, 100);
    long n1 = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, d);
    k = 0;
    put_crypto(f, &k, h, 100, 100);
    long n2 = seal(QUIC_VERSION_1, cid_b, 5, 1, f, k, p2);
    memcpy(d + n1, p2, (size_t)n2);
    struct quic_initial *q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, d, (size_t)(n1 + n2)), TW_ETRUNC);
    ck_assert_int_eq(quic_initial_feed(q, p2, (size_t)n2), 200);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_second_hello)
{
    /* After a HelloRetryRequest the client sends a second ClientHello at the next stream
     * offset; it is returned once complete, the first one once only. */
    static uint8_t s[700], f[800], p[2048];
    make_hello(s, 300, "one.example");
    make_hello(s + 300, 400, "two.example");
    struct quic_initial *q = quic_initial_new();
    size_t k = 0;
    put_crypto(f, &k, s, 0, 300);
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 300);
    ck_assert(has_sni(quic_initial_hello(q), 300, "one.example"));
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
    k = 0;
    put_crypto(f, &k, s, 300, 400);
    n = seal(QUIC_VERSION_1, cid_a, 8, 2, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 400);
    ck_assert(has_sni(quic_initial_hello(q), 400, "two.example"));
    quic_initial_free(q);
}
END_TEST

START_TEST(test_unknown_frame_stops)
{
    /* A STREAM frame (0x08) is not allowed in Initial and its layout ends parsing: the
     * CRYPTO frame after it is not stored. */
    static uint8_t h[200], f[400], p[2048];
    make_hello(h, sizeof(h), "stop.example");
    size_t k = 0;
    put_crypto(f, &k, h, 0, 100);
    f[k++] = 0x08;
    put_crypto(f, &k, h, 100, 100);
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    struct quic_initial *q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
    k = 0;
    put_crypto(f, &k, h, 100, 100);
    n = seal(QUIC_VERSION_1, cid_a, 8, 1, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), 200);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_limits)
{
    static uint8_t f[64], p[2048], h[8] = {1, 0, 0x80, 0x00}; /* declares 32768 bytes */
    struct quic_initial *q = quic_initial_new();
    /* CRYPTO data past QUIC_CRYPTO_MAX */
    size_t k = 0;
    f[k++] = 0x06;
    k += put_varint(f + k, QUIC_CRYPTO_MAX + 10);
    f[k++] = 4;
    memcpy(f + k, "abcd", 4);
    k += 4;
    long n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ELIMIT);
    /* a ClientHello longer than the buffer */
    k = 0;
    put_crypto(f, &k, h, 0, 8);
    n = seal(QUIC_VERSION_1, cid_a, 8, 1, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ELIMIT);
    quic_initial_free(q);

    /* a stream that does not start with a ClientHello (type 2 = ServerHello) */
    static uint8_t sh[8] = {2, 0, 0, 4, 1, 2, 3, 4};
    q = quic_initial_new();
    k = 0;
    put_crypto(f, &k, sh, 0, 8);
    n = seal(QUIC_VERSION_1, cid_a, 8, 0, f, k, p);
    ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_EBAD);
    quic_initial_free(q);

    /* CRYPTO whose offset + length passes 2^62 - 1, and a frame length past the packet */
    static const uint8_t evil[][12] = {
        {0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x40, 0x20},
        {0x06, 0x00, 0x80, 0x10, 0x00, 0x00},
        {0x02, 0x00, 0x00, 0xbf, 0xff, 0xff, 0xff, 0x00}, /* ACK, huge range count */
        {0x1c, 0x00, 0x00, 0x80, 0x10, 0x00, 0x00},       /* reason length past end */
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(evil); i++) {
        q = quic_initial_new();
        uint8_t fr[64] = {0};
        memcpy(fr, evil[i], sizeof(evil[i]));
        n = seal(QUIC_VERSION_1, cid_a, 8, 0, fr, 48, p);
        ck_assert_int_eq(quic_initial_feed(q, p, (size_t)n), TW_ETRUNC);
        quic_initial_free(q);
    }
}
END_TEST

/* ---- datagrams from the shared pcaps (tshark's truth in /work/shared/pcaps/) ---- */

static long feed_fixture(struct quic_initial *q, const char *name)
{
    size_t n;
    uint8_t *d = fixture(name, &n);
    long r = quic_initial_feed(q, d, n);
    /* every prefix, in a state of its own: no crash, and no hello but the whole one (a
     * prefix may hold a whole first packet of several coalesced ones) */
    for (size_t i = 0; i < n; i++) {
        struct quic_initial *p = quic_initial_new();
        long pr = quic_initial_feed(p, d, i);
        ck_assert_msg(pr == TW_EBAD || pr == TW_ETRUNC || (pr > 0 && pr == r), "%s prefix %zu: %ld",
                      name, i, pr);
        if (pr > 0)
            ck_assert_mem_eq(quic_initial_hello(p), quic_initial_hello(q), (size_t)pr);
        quic_initial_free(p);
    }
    free(d);
    return r;
}

START_TEST(test_pcap_v2)
{
    /* ndpi__quic-v2.pcapng frame 1: QUIC v2, SNI "test" */
    struct quic_initial *q = quic_initial_new();
    long r = feed_fixture(q, "v2_f1.bin");
    ck_assert_int_gt(r, 0);
    ck_assert(has_sni(quic_initial_hello(q), (size_t)r, "test"));
    quic_initial_free(q);
}
END_TEST

START_TEST(test_pcap_frags)
{
    /* ndpi__quic_frags_ch_in_multiple_packets.pcapng frames 1-2: a 1578-byte ClientHello
     * over two Initials (tshark: 1182 + 396 bytes, handshake length 1574, no SNI, ALPN
     * h3-34 first) */
    struct quic_initial *q = quic_initial_new();
    ck_assert_int_eq(feed_fixture(q, "frags_f1.bin"), TW_ETRUNC);
    ck_assert_int_eq(feed_fixture(q, "frags_f2.bin"), 1578);
    const uint8_t *h = quic_initial_hello(q);
    ck_assert_uint_eq(h[0], 1);
    ck_assert_ptr_nonnull(memmem(h, 1578, "\x05h3-34", 6));
    quic_initial_free(q);
}
END_TEST

START_TEST(test_pcap_0rtt)
{
    /* ndpi__quic_0RTT.pcap: frame 1 is draft-28 with SNI "abcd"; frames 3-4 are v1 0-RTT
     * packets that arrived before their Initial (frame 5, SNI "ssl.gstatic.com", CRYPTO
     * frames scattered out of order through the packet) */
    struct quic_initial *q = quic_initial_new();
    long r = feed_fixture(q, "draft28_0rtt_f1.bin");
    ck_assert_int_gt(r, 0);
    ck_assert(has_sni(quic_initial_hello(q), (size_t)r, "abcd"));
    quic_initial_free(q);

    q = quic_initial_new();
    ck_assert_int_eq(feed_fixture(q, "v1_0rtt_f3.bin"), TW_EBAD);
    ck_assert_int_eq(feed_fixture(q, "v1_0rtt_f4.bin"), TW_EBAD);
    r = feed_fixture(q, "v1_0rtt_f5.bin");
    ck_assert_int_eq(r, 611); /* tshark: handshake length 607 */
    ck_assert(has_sni(quic_initial_hello(q), (size_t)r, "ssl.gstatic.com"));
    quic_initial_free(q);
}
END_TEST

START_TEST(test_pcap_draft29_retry)
{
    /* ndpi__quic-29.pcap: frame 1 (SNI localhost), Retry, frame 3 resends the ClientHello
     * under the Retry's CID (its own keys), frame 5 carries a second ClientHello after a
     * HelloRetryRequest, under a new DCID but frame 3's keys. tshark: SNI at 1 and 5. */
    struct quic_initial *q = quic_initial_new();
    long r = feed_fixture(q, "draft29_f1.bin");
    ck_assert_int_eq(r, 301);
    ck_assert(has_sni(quic_initial_hello(q), (size_t)r, "localhost"));
    ck_assert_int_eq(feed_fixture(q, "draft29_f3.bin"), TW_ETRUNC);
    r = feed_fixture(q, "draft29_f5.bin");
    ck_assert_int_eq(r, 268);
    ck_assert(has_sni(quic_initial_hello(q), (size_t)r, "localhost"));
    quic_initial_free(q);
}
END_TEST

START_TEST(test_pcap_handshake)
{
    /* tcpdump__quic_handshake.pcap: frame 1 (SNI localhost); frame 5 is the client's
     * second Initial, an ACK only */
    struct quic_initial *q = quic_initial_new();
    long r = feed_fixture(q, "hs_f1.bin");
    ck_assert_int_gt(r, 0);
    ck_assert(has_sni(quic_initial_hello(q), (size_t)r, "localhost"));
    ck_assert_int_eq(feed_fixture(q, "hs_f5.bin"), TW_ETRUNC);
    quic_initial_free(q);
}
END_TEST

/* ---- unknown and greased versions, Google QUIC T050/T051, mvfst ---- */

/* Seals a client Initial of header version `version` with the salt (and layout) of the
 * known version salt_version, frames padded with PADDING to make a datagram of `pad_to`
 * bytes at least. */
static long seal_as(uint32_t version, uint32_t salt_version, const uint8_t *dcid, size_t dl,
                    uint32_t pn, const uint8_t *frames, size_t n, size_t pad_to, uint8_t *out,
                    size_t cap)
{
    static uint8_t padded[4096];
    ck_assert_uint_le(n, sizeof(padded));
    memset(padded, 0, sizeof(padded));
    memcpy(padded, frames, n);
    /* header: 1 + 4 + 1 + dl + 1 (SCID len) + 1 (token) + 2 (Length) + 4 (pn); tag 16 */
    size_t over = 14 + dl + 16;
    size_t fl = pad_to > n + over ? pad_to - over : n;
    struct quic_seal ss = {version, dcid, dl, dcid, dl, pn, salt_version};
    long r = quic_initial_seal(&ss, padded, fl, out, cap);
    ck_assert_int_gt(r, 0);
    return r;
}

/* A ClientHello for sni in one CRYPTO frame of type ftype (0x06 IETF, 0x08 Google QUIC). */
static size_t hello_frame(uint8_t *out, uint8_t ftype, const char *sni, size_t hlen)
{
    uint8_t h[600];
    ck_assert_uint_le(hlen, sizeof(h));
    make_hello(h, hlen, sni);
    size_t k = 0;
    put_crypto(out, &k, h, 0, hlen);
    out[0] = ftype;
    return k;
}

static const uint8_t cid8[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

START_TEST(test_greased_version_trial)
{
    /* a reserved version 0x1a2a3a4a (RFC 9000 15) sealed with the draft-29 salt, as tshark
     * reads it, and an mvfst version we have no entry for sealed with v1's salt */
    static const struct {
        uint32_t version, salt;
    } cases[] = {{0x1a2a3a4au, QUIC_DRAFT_29},
                 {0xfaceb010u, QUIC_VERSION_1},
                 {0xdadadadau, 0xff00001bu /* draft-27 */},
                 {0x0a0a0a0au, QUIC_VERSION_T051}};
    for (size_t i = 0; i < TW_ARRAY_LEN(cases); i++) {
        uint8_t fr[700], pkt[2048], stream[500];
        make_hello(stream, sizeof(stream), "greased.example");
        size_t k = 0;
        put_crypto(fr, &k, stream, 0, 300);
        if (cases[i].salt == QUIC_VERSION_T051)
            fr[0] = 0x08; /* Google QUIC's CRYPTO frame */
        long n =
            seal_as(cases[i].version, cases[i].salt, cid8, 8, 0, fr, k, 1200, pkt, sizeof(pkt));
        ck_assert(quic_looks_like_initial(pkt, (size_t)n));
        struct quic_initial *q = quic_initial_new();
        ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), TW_ETRUNC);
        /* the second packet (not shaped like a first Initial: short, no trial) opens with
         * the salt that the first one found */
        k = 0;
        put_crypto(fr, &k, stream, 300, 200);
        if (cases[i].salt == QUIC_VERSION_T051)
            fr[0] = 0x08;
        n = seal_as(cases[i].version, cases[i].salt, cid8, 8, 1, fr, k, 0, pkt, sizeof(pkt));
        ck_assert_uint_lt((size_t)n, 1200);
        ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), 500);
        ck_assert(has_sni(quic_initial_hello(q), 500, "greased.example"));
        quic_initial_free(q);
    }
}
END_TEST

START_TEST(test_greased_junk_rejected)
{
    /* 1200 bytes shaped like a client Initial of a greased version, but no salt opens it */
    uint8_t junk[1200];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    static const uint8_t head[] = {
        0xc3,       0x3a, 0x4a, 0x5a, 0x6a, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x40 | (1180 >> 8),
        1180 & 0xff};
    memcpy(junk, head, sizeof(head));
    ck_assert(quic_looks_like_initial(junk, sizeof(junk)));
    struct quic_initial *q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, junk, sizeof(junk)), TW_EBAD);
    /* the flow has spent its trial: even a genuine greased Initial is no longer tried */
    uint8_t fr[400], pkt[2048];
    size_t k = hello_frame(fr, 0x06, "late.example", 300);
    long n = seal_as(0x3a4a5a6au, QUIC_DRAFT_29, cid8, 8, 0, fr, k, 1200, pkt, sizeof(pkt));
    ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), TW_EBAD);
    quic_initial_free(q);
    /* while a fresh flow reads that same packet */
    q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), 300);
    quic_initial_free(q);

    /* not shaped like a first Initial: under 1200 bytes, a DCID under 8 bytes, version 0 */
    n = seal_as(0x3a4a5a6au, QUIC_DRAFT_29, cid8, 8, 0, fr, k, 0, pkt, sizeof(pkt));
    ck_assert(!quic_looks_like_initial(pkt, (size_t)n));
    q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), TW_EBAD);
    quic_initial_free(q);
    n = seal_as(0x3a4a5a6au, QUIC_DRAFT_29, cid8, 7, 0, fr, k, 1200, pkt, sizeof(pkt));
    ck_assert(!quic_looks_like_initial(pkt, (size_t)n));
    q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), TW_EBAD);
    quic_initial_free(q);
    memcpy(junk + 1, "\0\0\0\0", 4);
    ck_assert(!quic_looks_like_initial(junk, sizeof(junk)));
}
END_TEST

START_TEST(test_t051_frames)
{
    /* T051 numbers CRYPTO 0x08; its 0x06 is another frame (STOP_WAITING), not read */
    uint8_t fr[400], pkt[2048];
    size_t k = hello_frame(fr, 0x08, "t51.example", 300);
    long n = seal_as(QUIC_VERSION_T051, 0, cid8, 8, 1, fr, k, 1350, pkt, sizeof(pkt));
    ck_assert(quic_looks_like_initial(pkt, (size_t)n));
    struct quic_initial *q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), 300);
    ck_assert(has_sni(quic_initial_hello(q), 300, "t51.example"));
    quic_initial_free(q);
    k = hello_frame(fr, 0x06, "t51.example", 300);
    n = seal_as(QUIC_VERSION_T051, 0, cid8, 8, 1, fr, k, 1350, pkt, sizeof(pkt));
    q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), TW_ETRUNC);
    quic_initial_free(q);
    /* PING (0x07) and PADDING before the CRYPTO frame */
    uint8_t fr2[400] = {0x07, 0x00, 0x00};
    k = 3 + hello_frame(fr2 + 3, 0x08, "t51.example", 300);
    n = seal_as(QUIC_VERSION_T051, 0, cid8, 8, 1, fr2, k, 1350, pkt, sizeof(pkt));
    q = quic_initial_new();
    ck_assert_int_eq(quic_initial_feed(q, pkt, (size_t)n), 300);
    quic_initial_free(q);
}
END_TEST

START_TEST(test_pcap_gquic_mvfst)
{
    static const struct {
        const char *file, *sni;
    } cases[] = {{"t51_f1.bin", "www.google.com"},
                 {"t50_f1.bin", "fonts.googleapis.com"},
                 {"mvfst22_f1.bin", "graph.facebook.com"},
                 {"mvfst_exp_f1.bin", "video.fmct2-3.fna.fbcdn.net"}};
    for (size_t i = 0; i < TW_ARRAY_LEN(cases); i++) {
        size_t n;
        uint8_t *b = fixture(cases[i].file, &n);
        ck_assert(quic_looks_like_initial(b, n));
        free(b);
        struct quic_initial *q = quic_initial_new();
        long r = feed_fixture(q, cases[i].file); /* and every prefix of it */
        ck_assert_msg(r > 0, "%s: %ld", cases[i].file, r);
        ck_assert(has_sni(quic_initial_hello(q), (size_t)r, cases[i].sni));
        quic_initial_free(q);
    }
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("quic");
    TCase *t = tcase_create("quic_derive_client_keys");
    tcase_add_test(t, test_keys_v1);
    tcase_add_test(t, test_keys_v2);
    tcase_add_test(t, test_keys_refused);
    suite_add_tcase(s, t);

    t = tcase_create("rfc_packets");
    tcase_add_test(t, test_rfc9001_a2_opens);
    tcase_add_test(t, test_rfc9369_a2_opens);
    tcase_add_test(t, test_seal_matches_rfc);
    tcase_add_test(t, test_tampered);
    tcase_add_test(t, test_not_initial);
    suite_add_tcase(s, t);

    t = tcase_create("quic_initial_feed");
    tcase_add_test(t, test_split_in_order);
    tcase_add_test(t, test_split_out_of_order);
    tcase_add_test(t, test_overlaps_and_duplicates);
    tcase_add_test(t, test_first_copy_wins);
    tcase_add_test(t, test_coalesced);
    tcase_add_test(t, test_new_dcid_keeps_original_keys);
    tcase_add_test(t, test_retry_dcid_own_keys);
    tcase_add_test(t, test_forged_high_pn);
    tcase_add_test(t, test_one_derivation_per_datagram);
    tcase_add_test(t, test_second_hello);
    tcase_add_test(t, test_unknown_frame_stops);
    tcase_add_test(t, test_limits);
    suite_add_tcase(s, t);

    t = tcase_create("pcap_datagrams");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_pcap_v2);
    tcase_add_test(t, test_pcap_frags);
    tcase_add_test(t, test_pcap_0rtt);
    tcase_add_test(t, test_pcap_draft29_retry);
    tcase_add_test(t, test_pcap_handshake);
    tcase_add_test(t, test_pcap_gquic_mvfst);
    suite_add_tcase(s, t);

    t = tcase_create("versions");
    tcase_add_test(t, test_greased_version_trial);
    tcase_add_test(t, test_greased_junk_rejected);
    tcase_add_test(t, test_t051_frames);
    suite_add_tcase(s, t);
    return s;
}
