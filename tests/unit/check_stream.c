/* check_stream.c - unit tests for the bounded TCP reassembly in src/stream.c: order,
 * retransmissions, first-wins overlaps, SYN base trimming, rebasing without a SYN,
 * sequence wrap, the max cap, the island cap, budget accounting and stream_consume. */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/stream.h"
#include "tw_check.h"

#define MSG_LEN 517 /* a typical ClientHello record: 5-byte header + 512 */

static uint8_t msg[MSG_LEN];

static void fill_msg(void)
{
    for (size_t i = 0; i < MSG_LEN; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
}

static struct stream mk(uint32_t max)
{
    struct stream s;
    memset(&s, 0, sizeof(s));
    s.max = max;
    return s;
}

START_TEST(in_order)
{
    fill_msg();
    struct stream s = mk(16384);
    stream_set_base(&s, 1000);
    ck_assert_int_eq(stream_add(&s, 1000, msg, 100, NULL), 100);
    ck_assert_int_eq(stream_add(&s, 1100, msg + 100, 200, NULL), 200);
    ck_assert_int_eq(stream_add(&s, 1300, msg + 300, MSG_LEN - 300, NULL), MSG_LEN - 300);
    ck_assert_uint_eq(s.len, MSG_LEN);
    ck_assert_int_eq(memcmp(s.buf, msg, MSG_LEN), 0);
    /* zero-length segment (pure ACK) changes nothing */
    ck_assert_int_eq(stream_add(&s, 1517, msg, 0, NULL), 0);
    ck_assert_uint_eq(s.len, MSG_LEN);
    stream_reset(&s, NULL);
    ck_assert_ptr_null(s.buf);
    ck_assert_uint_eq(s.max, 16384);
}
END_TEST

START_TEST(split2_out_of_order)
{
    fill_msg();
    struct stream s = mk(16384);
    stream_set_base(&s, 77);
    /* the second half first: nothing contiguous yet */
    ck_assert_int_eq(stream_add(&s, 77 + 300, msg + 300, MSG_LEN - 300, NULL), 0);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_uint_eq(s.n_isl, 1);
    ck_assert_int_eq(stream_add(&s, 77, msg, 300, NULL), MSG_LEN);
    ck_assert_uint_eq(s.len, MSG_LEN);
    ck_assert_uint_eq(s.n_isl, 0);
    ck_assert_int_eq(memcmp(s.buf, msg, MSG_LEN), 0);
    stream_reset(&s, NULL);
}
END_TEST

/* 7 segments delivered 5,1,3,0,1(retransmitted),overlap(different bytes),6,2,4 */
START_TEST(split7_ooo_retrans_overlap)
{
    fill_msg();
    struct stream s = mk(16384);
    const uint32_t isn1 = 0x12345678;
    uint32_t cut[8];
    for (int i = 0; i <= 7; i++)
        cut[i] = (uint32_t)(MSG_LEN * i / 7);
    stream_set_base(&s, isn1);
#define SEG(k) stream_add(&s, isn1 + cut[k], msg + cut[k], cut[(k) + 1] - cut[k], NULL)
    ck_assert_int_eq(SEG(5), 0);
    ck_assert_int_eq(SEG(1), 0);
    ck_assert_int_eq(SEG(3), 0);
    ck_assert_int_eq(SEG(0), (int)cut[2]); /* 0 and the island 1 join */
    ck_assert_int_eq(SEG(1), 0);           /* plain retransmission */
    /* overlapping retransmission of [cut1-10, cut2+5) with different bytes: the bytes
     * up to cut2 are present and stay; the 5 bytes after cut2 are new and are taken */
    uint8_t bad[200];
    memset(bad, 0xEE, sizeof(bad));
    uint32_t a = cut[1] - 10, b = cut[2] + 5;
    ck_assert_int_eq(stream_add(&s, isn1 + a, bad, b - a, NULL), 5);
    ck_assert_int_eq(memcmp(s.buf, msg, cut[2]), 0);
    ck_assert_uint_eq(s.buf[cut[2]], 0xEE);
    ck_assert_int_eq(SEG(6), 0);
    ck_assert_int_eq(SEG(2), (int)(cut[4] - cut[2] - 5)); /* 2 and island 3 join */
    ck_assert_int_eq(SEG(4), (int)(MSG_LEN - cut[4]));
#undef SEG
    ck_assert_uint_eq(s.len, MSG_LEN);
    ck_assert_uint_eq(s.n_isl, 0);
    /* first wins: the 5 bytes the overlap brought first are kept, the rest is the message */
    ck_assert_int_eq(memcmp(s.buf, msg, cut[2]), 0);
    for (uint32_t i = cut[2]; i < cut[2] + 5; i++)
        ck_assert_uint_eq(s.buf[i], 0xEE);
    ck_assert_int_eq(memcmp(s.buf + cut[2] + 5, msg + cut[2] + 5, MSG_LEN - cut[2] - 5), 0);
    stream_reset(&s, NULL);
}
END_TEST

START_TEST(overlap_different_bytes_first_wins)
{
    fill_msg();
    struct stream s = mk(16384);
    stream_set_base(&s, 0);
    ck_assert_int_eq(stream_add(&s, 0, msg, MSG_LEN, NULL), MSG_LEN);
    uint8_t evil[MSG_LEN + 50];
    memset(evil, 'X', sizeof(evil));
    /* the whole message again with other bytes, plus 50 new ones */
    ck_assert_int_eq(stream_add(&s, 0, evil, sizeof(evil), NULL), 50);
    ck_assert_int_eq(memcmp(s.buf, msg, MSG_LEN), 0);
    ck_assert_uint_eq(s.buf[MSG_LEN], 'X');
    ck_assert_uint_eq(s.len, MSG_LEN + 50);
    /* an island rewritten by a later overlapping segment keeps its first bytes */
    ck_assert_int_eq(stream_add(&s, 1000, msg, 100, NULL), 0);
    ck_assert_int_eq(stream_add(&s, 990, evil, 120, NULL), 0);
    ck_assert_int_eq(memcmp(s.buf + 1000, msg, 100), 0);
    ck_assert_uint_eq(s.buf[990], 'X');
    ck_assert_uint_eq(s.buf[1100], 'X');
    stream_reset(&s, NULL);
}
END_TEST

START_TEST(before_syn_trimmed)
{
    fill_msg();
    struct stream s = mk(16384);
    stream_set_base(&s, 1000);
    /* entirely before the base: ignored */
    ck_assert_int_eq(stream_add(&s, 900, msg, 100, NULL), 0);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_uint_eq(s.base_seq, 1000);
    /* straddling the base: only the part from the base on is kept */
    ck_assert_int_eq(stream_add(&s, 990, msg, 30, NULL), 20);
    ck_assert_uint_eq(s.base_seq, 1000);
    ck_assert_int_eq(memcmp(s.buf, msg + 10, 20), 0);
    stream_reset(&s, NULL);
}
END_TEST

START_TEST(no_syn_rebase)
{
    fill_msg();
    struct stream s = mk(16384);
    /* no SYN: the first segment seen sets the base */
    ck_assert_int_eq(stream_add(&s, 5100, msg + 100, 200, NULL), 200);
    ck_assert_uint_eq(s.base_seq, 5100);
    /* an earlier segment arriving later moves the base back */
    int r = stream_add(&s, 5000, msg, 100, NULL);
    ck_assert_int_gt(r, 0);
    ck_assert_uint_eq(s.base_seq, 5000);
    ck_assert_uint_eq(s.len, 300);
    ck_assert_int_eq(memcmp(s.buf, msg, 300), 0);
    /* with a gap between them the old bytes become an island */
    struct stream t = mk(16384);
    ck_assert_int_eq(stream_add(&t, 5200, msg + 200, 100, NULL), 100);
    ck_assert_int_eq(stream_add(&t, 5000, msg, 100, NULL), 100);
    ck_assert_uint_eq(t.base_seq, 5000);
    ck_assert_uint_eq(t.len, 100);
    ck_assert_uint_eq(t.n_isl, 1);
    ck_assert_int_eq(stream_add(&t, 5100, msg + 100, 100, NULL), 200);
    ck_assert_uint_eq(t.len, 300);
    ck_assert_int_eq(memcmp(t.buf, msg, 300), 0);
    /* a move back that would not fit in max is refused */
    struct stream u = mk(4096);
    ck_assert_int_eq(stream_add(&u, 100000, msg, 100, NULL), 100);
    ck_assert_int_eq(stream_add(&u, 100000 - 4050, msg, 10, NULL), TW_ELIMIT);
    ck_assert_uint_eq(u.base_seq, 100000);
    ck_assert_int_eq(memcmp(u.buf, msg, 100), 0);
    stream_reset(&s, NULL);
    stream_reset(&t, NULL);
    stream_reset(&u, NULL);
}
END_TEST

/* DNS over TCP picked up mid-stream: a message that was consumed (parsed) and is then
 * retransmitted must not come back, or the same query would be reported twice. */
START_TEST(no_syn_consumed_not_replayed)
{
    fill_msg();
    struct stream s = mk(16384);
    ck_assert_int_eq(stream_add(&s, 7000, msg, 40, NULL), 40);
    stream_consume(&s, 40);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_uint_eq(s.base_seq, 7040);
    ck_assert_int_eq(stream_add(&s, 7000, msg, 40, NULL), 0);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_uint_eq(s.base_seq, 7040);
    ck_assert_int_eq(stream_add(&s, 7040, msg + 40, 10, NULL), 10);
    ck_assert_int_eq(memcmp(s.buf, msg + 40, 10), 0);
    stream_reset(&s, NULL);
}
END_TEST

START_TEST(seq_wrap)
{
    fill_msg();
    struct stream s = mk(16384);
    uint32_t base = 0xFFFFFF00u;
    stream_set_base(&s, base);
    /* the segment after the wrap first */
    ck_assert_int_eq(stream_add(&s, 0x00000010u, msg + 0x110, 100, NULL), 0);
    ck_assert_int_eq(stream_add(&s, base, msg, 0x110, NULL), 0x110 + 100);
    ck_assert_int_eq(memcmp(s.buf, msg, 0x110 + 100), 0);
    /* a segment straddling the wrap, before the base side trimmed */
    struct stream t = mk(16384);
    stream_set_base(&t, 2);
    ck_assert_int_eq(stream_add(&t, 0xFFFFFFFEu, msg, 10, NULL), 6);
    ck_assert_int_eq(memcmp(t.buf, msg + 4, 6), 0);
    /* without a SYN, the rebase goes back across the wrap */
    struct stream u = mk(16384);
    ck_assert_int_eq(stream_add(&u, 8, msg + 16, 16, NULL), 16);
    ck_assert_int_gt(stream_add(&u, 0xFFFFFFF8u, msg, 16, NULL), 0);
    ck_assert_uint_eq(u.base_seq, 0xFFFFFFF8u);
    ck_assert_uint_eq(u.len, 32);
    ck_assert_int_eq(memcmp(u.buf, msg, 32), 0);
    stream_reset(&s, NULL);
    stream_reset(&t, NULL);
    stream_reset(&u, NULL);
}
END_TEST

START_TEST(max_cap)
{
    uint8_t big[6000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i ^ (i >> 8));
    struct stream s = mk(4096);
    stream_set_base(&s, 0);
    ck_assert_int_eq(stream_add(&s, 4096, big, 10, NULL), TW_ELIMIT);
    ck_assert_int_eq(stream_add(&s, 9000, big, 10, NULL), TW_ELIMIT);
    /* straddling max: cut at max */
    ck_assert_int_eq(stream_add(&s, 4000, big + 4000, 500, NULL), 0);
    ck_assert_uint_le(s.cap, 4096);
    ck_assert_int_eq(stream_add(&s, 0, big, 4000, NULL), 4096);
    ck_assert_uint_eq(s.len, 4096);
    ck_assert_uint_eq(s.cap, 4096);
    ck_assert_int_eq(memcmp(s.buf, big, 4096), 0);
    /* one segment larger than max */
    struct stream t = mk(4096);
    stream_set_base(&t, 0);
    ck_assert_int_eq(stream_add(&t, 0, big, sizeof(big), NULL), 4096);
    ck_assert_uint_eq(t.len, 4096);
    ck_assert_int_eq(stream_add(&t, 4096, big, 1, NULL), TW_ELIMIT);
    stream_reset(&s, NULL);
    stream_reset(&t, NULL);
}
END_TEST

START_TEST(island_cap)
{
    fill_msg();
    struct stream s = mk(16384);
    stream_set_base(&s, 0);
    for (uint32_t i = 1; i <= STREAM_MAX_GAPS; i++)
        ck_assert_int_eq(stream_add(&s, i * 100, msg, 10, NULL), 0);
    ck_assert_uint_eq(s.n_isl, STREAM_MAX_GAPS);
    /* one more separate island: refused */
    ck_assert_int_eq(stream_add(&s, 5000, msg, 10, NULL), TW_ELIMIT);
    ck_assert_uint_eq(s.n_isl, STREAM_MAX_GAPS);
    /* touching an existing island merges, so it is accepted */
    ck_assert_int_eq(stream_add(&s, 110, msg + 10, 10, NULL), 0);
    ck_assert_uint_eq(s.n_isl, STREAM_MAX_GAPS);
    /* one segment bridging two islands merges them */
    ck_assert_int_eq(stream_add(&s, 205, msg, 100, NULL), 0);
    ck_assert_uint_eq(s.n_isl, STREAM_MAX_GAPS - 1);
    /* the prefix swallows the first islands */
    ck_assert_int_eq(stream_add(&s, 0, msg, 200, NULL), 310);
    ck_assert_uint_eq(s.len, 310);
    ck_assert_uint_eq(s.n_isl, STREAM_MAX_GAPS - 3);
    stream_reset(&s, NULL);
}
END_TEST

START_TEST(budget_accounting)
{
    uint8_t big[10000];
    memset(big, 'a', sizeof(big));
    const int64_t init = 1 << 20;
    struct reasm_pool pool;
    ck_assert_int_eq(reasm_pool_init(&pool, init, 0, 100), TW_OK);
    struct stream s = mk(65536);
    stream_set_base(&s, 0);
    ck_assert_int_eq(stream_add(&s, 0, big, 100, &pool), 100);
    ck_assert_int_eq(pool.budget, init - (int64_t)s.cap);
    ck_assert_int_eq(stream_add(&s, 100, big, sizeof(big), &pool), (int)sizeof(big));
    ck_assert_int_eq(stream_add(&s, 30000, big, sizeof(big), &pool), 0);
    ck_assert_int_eq(pool.budget, init - (int64_t)s.cap);
    ck_assert_int_ge(pool.budget, 0);
    stream_reset(&s, &pool);
    ck_assert_int_eq(pool.budget, init);
    reasm_pool_fini(&pool);
    /* a budget too small for the first allocation: TW_ELIMIT, nothing taken */
    struct reasm_pool small;
    ck_assert_int_eq(reasm_pool_init(&small, 100, 0, 100), TW_OK);
    struct stream t = mk(65536);
    stream_set_base(&t, 0);
    ck_assert_int_eq(stream_add(&t, 0, big, 50, &small), TW_ELIMIT);
    ck_assert_int_eq(small.budget, 100);
    ck_assert_uint_eq(small.refused[REASM_STREAM], 1);
    ck_assert_uint_eq(t.len, 0);
    stream_reset(&t, &small);
    ck_assert_int_eq(small.budget, 100);
    reasm_pool_fini(&small);
    /* two streams share one budget, both return it */
    ck_assert_int_eq(reasm_pool_init(&pool, init, 0, 100), TW_OK);
    struct stream a = mk(65536), b = mk(65536);
    ck_assert_int_eq(stream_add(&a, 1, big, 5000, &pool), 5000);
    ck_assert_int_eq(stream_add(&b, 1, big, 9000, &pool), 9000);
    ck_assert_int_eq(pool.budget, init - (int64_t)a.cap - (int64_t)b.cap);
    stream_reset(&a, &pool);
    stream_reset(&b, &pool);
    ck_assert_int_eq(pool.budget, init);
    ck_assert_ptr_null(pool.head);
    reasm_pool_fini(&pool);
}
END_TEST

static struct tw_addr addr4(uint8_t last)
{
    struct tw_addr x = {.family = 4};
    x.a[0] = 10;
    x.a[3] = last;
    return x;
}

/* Room for two 2048-byte buffers. Two stalled streams hold it; a third gets in by reclaiming
 * the one with the least recent progress, which is then given up (TW_ELIMIT); a stream that
 * progressed recently is not reclaimed: the newcomer is refused instead. */
START_TEST(pool_reclaims_stalled)
{
    uint8_t d[1400];
    memset(d, 'x', sizeof(d));
    struct reasm_pool pool;
    ck_assert_int_eq(reasm_pool_init(&pool, 4096, 500, 100), TW_OK);
    struct tw_addr src[3] = {addr4(1), addr4(2), addr4(3)};
    struct stream s[3] = {mk(16384), mk(16384), mk(16384)};
    for (int i = 0; i < 3; i++)
        reasm_set_source(&pool, &s[i].h, &src[i], REASM_STREAM);
    pool.now_us = 1000000;
    ck_assert_int_eq(stream_add(&s[0], 1, d, sizeof(d), &pool), (int)sizeof(d));
    pool.now_us += 100000;
    ck_assert_int_eq(stream_add(&s[1], 1, d, sizeof(d), &pool), (int)sizeof(d));
    /* 200 ms later nothing is stalled: refused */
    pool.now_us += 100000;
    ck_assert_int_eq(stream_add(&s[2], 1, d, sizeof(d), &pool), TW_ELIMIT);
    ck_assert_uint_eq(pool.refused[REASM_STREAM], 1);
    ck_assert_uint_eq(pool.reclaimed[REASM_STREAM], 0);
    /* s[1] makes progress; 550 ms after s[0]'s last bytes, s[0] is stalled and gives way */
    pool.now_us = 1000000 + 450000;
    ck_assert_int_eq(stream_add(&s[1], 1401, d, 100, &pool), 100);
    pool.now_us = 1000000 + 550000;
    stream_reset(&s[2], &pool);
    ck_assert_int_eq(stream_add(&s[2], 1, d, sizeof(d), &pool), (int)sizeof(d));
    ck_assert_uint_eq(pool.reclaimed[REASM_STREAM], 1);
    ck_assert(s[0].h.lost);
    ck_assert_ptr_null(s[0].buf);
    ck_assert_int_eq(stream_add(&s[0], 1401, d, 100, &pool), TW_ELIMIT);
    ck_assert_int_eq(pool.budget, 0);
    /* the note names the reclaimed stream's source */
    struct pressure_src top[3];
    ck_assert_int_eq(pressure_top(&pool.pr[REASM_STREAM], top, 3), 2);
    ck_assert(tw_addr_eq(&top[0].addr, &src[0]) || tw_addr_eq(&top[1].addr, &src[0]));
    for (int i = 0; i < 3; i++)
        stream_reset(&s[i], &pool);
    ck_assert_int_eq(pool.budget, 4096);
    reasm_pool_fini(&pool);
}
END_TEST

/* One source may hold a quarter of the pool: its fifth buffer is refused while others still
 * get in; once its own buffers stall, they make room for its newcomers. */
START_TEST(pool_source_share)
{
    uint8_t d[100];
    memset(d, 'y', sizeof(d));
    struct reasm_pool pool;
    ck_assert_int_eq(reasm_pool_init(&pool, 32768, 500, 25), TW_OK);
    struct tw_addr loud = addr4(9), quiet = addr4(10);
    struct stream s[6];
    memset(pool.key, 1, sizeof(pool.key)); /* fixed buckets: the two sources apart */
    for (int i = 0; i < 6; i++) {
        s[i] = mk(16384);
        reasm_set_source(&pool, &s[i].h, i < 5 ? &loud : &quiet, REASM_STREAM);
    }
    pool.now_us = 1;
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(stream_add(&s[i], 1, d, sizeof(d), &pool), (int)sizeof(d));
    ck_assert_int_eq(stream_add(&s[4], 1, d, sizeof(d), &pool), TW_ELIMIT);
    ck_assert_uint_eq(pool.refused_src[REASM_STREAM], 1);
    ck_assert_int_eq(stream_add(&s[5], 1, d, sizeof(d), &pool), (int)sizeof(d));
    /* buckets are computed at a holder's first take */
    ck_assert(s[0].h.bucket_set && s[5].h.bucket_set);
    ck_assert_uint_ne(s[0].h.bucket, s[5].h.bucket);
    pool.now_us += 600000;
    stream_reset(&s[4], &pool);
    ck_assert_int_eq(stream_add(&s[4], 1, d, sizeof(d), &pool), (int)sizeof(d));
    ck_assert(s[0].h.lost);
    ck_assert(!s[5].h.lost);
    for (int i = 0; i < 6; i++)
        stream_reset(&s[i], &pool);
    ck_assert_int_eq(pool.budget, 32768);
    reasm_pool_fini(&pool);
}
END_TEST

START_TEST(consume_shifts)
{
    fill_msg();
    struct stream s = mk(16384);
    stream_set_base(&s, 100);
    ck_assert_int_eq(stream_add(&s, 100, msg, 300, NULL), 300);
    ck_assert_int_eq(stream_add(&s, 500, msg + 400, 50, NULL), 0);
    stream_consume(&s, 100);
    ck_assert_uint_eq(s.len, 200);
    ck_assert_uint_eq(s.base_seq, 200);
    ck_assert_int_eq(memcmp(s.buf, msg + 100, 200), 0);
    ck_assert_uint_eq(s.n_isl, 1);
    ck_assert_uint_eq(s.isl[0].s, 300);
    ck_assert_uint_eq(s.isl[0].e, 350);
    /* the island is still placed right after consuming */
    ck_assert_int_eq(stream_add(&s, 400, msg + 300, 100, NULL), 150);
    ck_assert_uint_eq(s.len, 350);
    ck_assert_int_eq(memcmp(s.buf, msg + 100, 350), 0);
    /* consuming more than is contiguous stops at len */
    stream_consume(&s, 10000);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_uint_eq(s.base_seq, 550);
    stream_consume(&s, 5);
    ck_assert_uint_eq(s.base_seq, 550);
    stream_reset(&s, NULL);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("stream_add");
    tcase_add_test(tc, in_order);
    tcase_add_test(tc, split2_out_of_order);
    tcase_add_test(tc, split7_ooo_retrans_overlap);
    tcase_add_test(tc, overlap_different_bytes_first_wins);
    tcase_add_test(tc, before_syn_trimmed);
    tcase_add_test(tc, no_syn_rebase);
    tcase_add_test(tc, seq_wrap);
    tcase_add_test(tc, max_cap);
    tcase_add_test(tc, island_cap);
    suite_add_tcase(s, tc);
    tc = tcase_create("stream_reset");
    tcase_add_test(tc, budget_accounting);
    tcase_add_test(tc, pool_reclaims_stalled);
    tcase_add_test(tc, pool_source_share);
    suite_add_tcase(s, tc);
    tc = tcase_create("stream_consume");
    tcase_add_test(tc, consume_shifts);
    tcase_add_test(tc, no_syn_consumed_not_replayed);
    suite_add_tcase(s, tc);
    return s;
}
