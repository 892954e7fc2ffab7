/* check_pressure.c - unit tests for src/pressure.c: refusal/reclaim counts and the
 * space-saving summary of their sources (a heavy hitter is always kept, counts only grow,
 * the table stays at PRESSURE_TOPK entries whatever the number of addresses). */
#include <string.h>

#include "tunnelwatch/pressure.h"
#include "tw_check.h"

static struct tw_addr v4(uint32_t x)
{
    struct tw_addr a = {.family = 4};
    a.a[0] = (uint8_t)(x >> 24);
    a.a[1] = (uint8_t)(x >> 16);
    a.a[2] = (uint8_t)(x >> 8);
    a.a[3] = (uint8_t)x;
    return a;
}

START_TEST(counts_and_clear)
{
    struct pressure p;
    memset(&p, 0, sizeof(p));
    ck_assert(!pressure_pending(&p));
    struct tw_addr a = v4(0x0a000001);
    pressure_note(&p, &a, true);
    pressure_note(&p, &a, false);
    pressure_note(&p, NULL, false); /* no address: counted, not in the summary */
    ck_assert(pressure_pending(&p));
    ck_assert_uint_eq(p.reclaimed, 1);
    ck_assert_uint_eq(p.refused, 2);
    ck_assert_uint_eq(p.noted, 2);
    struct pressure_src top[3];
    ck_assert_int_eq(pressure_top(&p, top, 3), 1);
    ck_assert(tw_addr_eq(&top[0].addr, &a));
    ck_assert_uint_eq(top[0].count, 2);
    ck_assert_uint_eq(top[0].err, 0);
    pressure_clear(&p);
    ck_assert(!pressure_pending(&p));
    ck_assert_int_eq(pressure_top(&p, top, 3), 0);
}
END_TEST

/* One loud address among 10,000 quiet ones, interleaved: it comes out first, with a
 * guaranteed count (count - err) close to its true 5,000. */
START_TEST(heavy_hitter_kept)
{
    struct pressure p;
    memset(&p, 0, sizeof(p));
    struct tw_addr loud = v4(0x0a090042);
    for (uint32_t i = 0; i < 10000; i++) {
        struct tw_addr q = v4(0xc6120000 + i);
        pressure_note(&p, &q, true);
        if (i % 2 == 0)
            pressure_note(&p, &loud, true);
    }
    ck_assert_uint_le(p.n, PRESSURE_TOPK);
    struct pressure_src top[3];
    ck_assert_int_eq(pressure_top(&p, top, 3), 3);
    ck_assert(tw_addr_eq(&top[0].addr, &loud));
    ck_assert_uint_ge(top[0].count, 5000);
    ck_assert_uint_le(top[0].count - top[0].err, 5000);
    ck_assert_uint_ge(top[0].count - top[0].err, 5000 - 15000 / PRESSURE_TOPK);
    ck_assert_uint_ge(top[0].count, top[1].count);
    ck_assert_uint_ge(top[1].count, top[2].count);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("pressure");
    TCase *tc = tcase_create("pressure");
    tcase_add_test(tc, counts_and_clear);
    tcase_add_test(tc, heavy_hitter_kept);
    suite_add_tcase(s, tc);
    return s;
}
