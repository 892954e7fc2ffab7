/* check_frag.c - unit tests for frag.c: reassembly in order, out of order, with overlaps and
 * duplicates, timeouts, caps, inconsistent fragments and key separation.
 *
 * Fragments are described directly as struct dec_pkt (what dec_packet() fills for DEC_FRAG);
 * check_decode.c covers the path from real frames. The datagram used is 40 bytes whose byte
 * i is i (0x00..0x27), cut into 16 + 16 + 8.
 */
#include <string.h>

#include "tunnelwatch/frag.h"
#include "tw_check.h"

static uint8_t dgram[64];

static void setup(void)
{
    for (size_t i = 0; i < sizeof(dgram); i++)
        dgram[i] = (uint8_t)i;
}

/* Fragment of dgram [off, off+len) from 192.0.2.<host> (or 2001:db8::<host> for v6). */
static struct dec_pkt frag_pkt(uint8_t family, uint8_t host, uint32_t id, uint32_t off,
                               uint32_t len, bool more)
{
    struct dec_pkt p;
    memset(&p, 0, sizeof(p));
    p.src.family = p.dst.family = family;
    if (family == 4) {
        p.src.a[0] = 192, p.src.a[2] = 2, p.src.a[3] = host;
        p.dst.a[0] = 198, p.dst.a[1] = 51, p.dst.a[2] = 100, p.dst.a[3] = 2;
    } else {
        p.src.a[0] = 0x20, p.src.a[1] = 0x01, p.src.a[15] = host;
        p.dst.a[0] = 0x20, p.dst.a[1] = 0x01, p.dst.a[15] = 0x99;
    }
    p.proto = 17;
    p.frag_id = id;
    p.frag_off = off;
    p.frag_more = more;
    p.frag_data = dgram + off;
    p.frag_len = p.frag_wire_len = len;
    return p;
}

static struct tw_time at(int64_t sec)
{
    struct tw_time t = {sec, 0};
    return t;
}

static int add(struct frag *f, struct dec_pkt p, int64_t sec, const uint8_t **d, uint32_t *n)
{
    return frag_add(f, &p, at(sec), d, n);
}

static void assert_whole(const uint8_t *d, uint32_t n)
{
    ck_assert_uint_eq(n, 40);
    ck_assert_ptr_nonnull(d);
    ck_assert(memcmp(d, dgram, 40) == 0);
}

START_TEST(test_in_order)
{
    struct frag *f = frag_new(8, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 7, 0, 16, true), 0, &d, &n), 0);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 7, 16, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 7, 32, 8, false), 0, &d, &n), 1);
    assert_whole(d, n);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.fragments, 3);
    ck_assert_uint_eq(st.reassembled, 1);
    ck_assert_uint_eq(st.in_progress, 0);
    frag_free(f);
}
END_TEST

START_TEST(test_out_of_order_v6)
{
    struct frag *f = frag_new(8, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    ck_assert_int_eq(add(f, frag_pkt(6, 1, 0xabcdef01, 32, 8, false), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(6, 1, 0xabcdef01, 0, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(6, 1, 0xabcdef01, 16, 16, true), 1, &d, &n), 1);
    assert_whole(d, n);
    frag_free(f);
}
END_TEST

START_TEST(test_overlap_first_wins)
{
    static uint8_t other[64];
    memset(other, 0xee, sizeof(other));
    struct frag *f = frag_new(8, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 9, 0, 24, true), 0, &d, &n), 0);
    /* [8, 32) of different bytes: [8, 24) is held already and must not change */
    struct dec_pkt p = frag_pkt(4, 1, 9, 8, 24, true);
    p.frag_data = other;
    ck_assert_int_eq(frag_add(f, &p, at(0), &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 9, 32, 8, false), 0, &d, &n), 1);
    ck_assert_uint_eq(n, 40);
    ck_assert(memcmp(d, dgram, 24) == 0);
    for (int i = 24; i < 32; i++)
        ck_assert_uint_eq(d[i], 0xee);
    ck_assert(memcmp(d + 32, dgram + 32, 8) == 0);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.overlaps, 1);
    frag_free(f);
}
END_TEST

START_TEST(test_duplicate)
{
    struct frag *f = frag_new(8, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 0, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 0, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 32, 8, false), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 32, 8, false), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 16, 16, true), 0, &d, &n), 1);
    assert_whole(d, n);
    /* a late duplicate after completion starts a new datagram, which never completes alone */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 16, 16, true), 0, &d, &n), 0);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.reassembled, 1);
    ck_assert_uint_eq(st.overlaps, 2);
    ck_assert_uint_eq(st.in_progress, 1);
    frag_free(f);
}
END_TEST

START_TEST(test_timeout)
{
    struct frag *f = frag_new(8, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 5, 0, 16, true), 100, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 5, 16, 16, true), 110, &d, &n), 0);
    ck_assert_uint_eq(frag_expire(f, at(130)), 0); /* 30 s after the first: not yet */
    /* 31 s after the first fragment: the old datagram is gone, the new one lacks [0, 32) */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 5, 32, 8, false), 131, &d, &n), 0);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.expired, 1);
    ck_assert_uint_eq(st.reassembled, 0);
    ck_assert_uint_eq(frag_expire(f, at(200)), 1);
    frag_stats(f, &st);
    ck_assert_uint_eq(st.expired, 2);
    ck_assert_uint_eq(st.in_progress, 0);
    frag_free(f);
}
END_TEST

START_TEST(test_datagram_cap)
{
    struct frag *f = frag_new(2, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 0, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 0, 16, true), 0, &d, &n), 0);
    /* the table is full: the oldest datagram (id 1) gives way to the newcomer */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 0, 16, true), 1, &d, &n), 0);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.limit, 1);
    ck_assert_uint_eq(st.evicted, 1);
    ck_assert_uint_eq(st.in_progress, 2);
    ck_assert_uint_eq(frag_pressure(f)->reclaimed, 1);
    ck_assert_uint_eq(frag_pressure(f)->n, 1);
    /* the newcomer completes; so does id 2, which was kept */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 16, 16, true), 1, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 32, 8, false), 1, &d, &n), 1);
    assert_whole(d, n);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 16, 16, true), 1, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 32, 8, false), 1, &d, &n), 1);
    assert_whole(d, n);
    /* id 1's rest starts a new datagram that cannot complete: its head was dropped */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 16, 16, true), 2, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 32, 8, false), 2, &d, &n), 0);
    frag_free(f);
}
END_TEST

START_TEST(test_byte_cap)
{
    /* 4096 bytes in all: a fragment at offset 60000 cannot get a buffer */
    struct frag *f = frag_new(4, 4096, 30);
    const uint8_t *d;
    uint32_t n;
    struct dec_pkt p = frag_pkt(4, 1, 1, 0, 16, true);
    p.frag_off = 60000;
    ck_assert_int_eq(frag_add(f, &p, at(0), &d, &n), TW_ELIMIT);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.limit, 1);
    ck_assert_uint_eq(st.in_progress, 0);
    ck_assert_uint_le(st.bytes_alloc, 4096);
    /* two small datagrams fit (2048-byte buffers); a third one's buffer takes the oldest's */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 0, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 0, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 4, 0, 16, true), 0, &d, &n), 0);
    frag_stats(f, &st);
    ck_assert_uint_le(st.bytes_alloc, 4096);
    ck_assert_uint_eq(st.evicted, 1);
    ck_assert_uint_eq(st.in_progress, 2);
    /* completing one frees its slot; its buffer is reused without new memory */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 16, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 32, 8, false), 0, &d, &n), 1);
    assert_whole(d, n);
    uint64_t before = st.bytes_alloc;
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 5, 0, 16, true), 0, &d, &n), 0);
    frag_stats(f, &st);
    ck_assert_uint_eq(st.bytes_alloc, before);
    frag_free(f);
}
END_TEST

START_TEST(test_bad_fragments)
{
    struct frag *f = frag_new(4, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    /* a middle fragment of 12 bytes: not a multiple of 8 (RFC 791) */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 0, 12, true), 0, &d, &n), TW_EBAD);
    /* ends past 65535 */
    struct dec_pkt p = frag_pkt(4, 1, 1, 0, 16, false);
    p.frag_off = 65528;
    ck_assert_int_eq(frag_add(f, &p, at(0), &d, &n), TW_EBAD);
    /* unknown family */
    p = frag_pkt(4, 1, 1, 0, 16, true);
    p.src.family = 0;
    ck_assert_int_eq(frag_add(f, &p, at(0), &d, &n), TW_EBAD);
    /* two different last fragments: the first one's end stands */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 32, 8, false), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 32, 4, false), 0, &d, &n), TW_EBAD);
    /* a middle fragment past the known end */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 40, 8, true), 0, &d, &n), TW_EBAD);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 2, 0, 32, true), 0, &d, &n), 1);
    assert_whole(d, n);
    /* a last fragment ending before data already held */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 16, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 3, 16, 8, false), 0, &d, &n), TW_EBAD);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.bad, 6);
    frag_free(f);
}
END_TEST

START_TEST(test_keys_separate)
{
    struct frag *f = frag_new(8, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 0, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 16, 16, true), 0, &d, &n), 0);
    /* same id, other source; same id, IPv6; same id, other protocol: none completes it */
    ck_assert_int_eq(add(f, frag_pkt(4, 2, 1, 32, 8, false), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(6, 1, 1, 32, 8, false), 0, &d, &n), 0);
    struct dec_pkt p = frag_pkt(4, 1, 1, 32, 8, false);
    p.proto = 6;
    ck_assert_int_eq(frag_add(f, &p, at(0), &d, &n), 0);
    struct frag_stats st;
    frag_stats(f, &st);
    ck_assert_uint_eq(st.in_progress, 4);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 32, 8, false), 0, &d, &n), 1);
    assert_whole(d, n);
    frag_free(f);
}
END_TEST

START_TEST(test_snaplen_cut_fragment)
{
    struct frag *f = frag_new(4, 1 << 20, 30);
    const uint8_t *d;
    uint32_t n;
    /* 16 bytes on the wire, 13 captured: a hole remains, the datagram never completes */
    struct dec_pkt p = frag_pkt(4, 1, 1, 0, 16, true);
    p.frag_len = 13;
    ck_assert_int_eq(frag_add(f, &p, at(0), &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 16, 16, true), 0, &d, &n), 0);
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 32, 8, false), 0, &d, &n), 0);
    /* the whole first fragment arriving again fills the hole */
    ck_assert_int_eq(add(f, frag_pkt(4, 1, 1, 0, 16, true), 0, &d, &n), 1);
    assert_whole(d, n);
    frag_free(f);
}
END_TEST

START_TEST(test_constructor)
{
    ck_assert_ptr_null(frag_new(0, 1 << 20, 30));
    ck_assert_ptr_null(frag_new(8, 0, 30));
    ck_assert_ptr_null(frag_new(8, 1 << 20, 0));
    ck_assert_ptr_null(frag_new(100000, 1 << 20, 30));
    frag_free(NULL);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("frag");
    TCase *tc = tcase_create("frag_add");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_in_order);
    tcase_add_test(tc, test_out_of_order_v6);
    tcase_add_test(tc, test_overlap_first_wins);
    tcase_add_test(tc, test_duplicate);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_datagram_cap);
    tcase_add_test(tc, test_byte_cap);
    tcase_add_test(tc, test_bad_fragments);
    tcase_add_test(tc, test_keys_separate);
    tcase_add_test(tc, test_snaplen_cut_fragment);
    tcase_add_test(tc, test_constructor);
    suite_add_tcase(s, tc);
    return s;
}
