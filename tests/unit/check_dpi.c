/* check_dpi.c - unit tests for src/dpi.c with the real nDPI: what the engine's need does to
 * a flow's nDPI state (run until a label, idle frees and may run again, stop for good and a
 * label given before stays), no state before the first payload, and the cap (a newcomer
 * skipped, a stalled state reclaimed and its flow done). */
#include <string.h>

#include "tunnelwatch/dpi.h"
#include "tw_check.h"

/* An IPv4/TCP packet of flow k (10.0.0.k:40000 <-> 192.0.2.1:22), from the client or not,
 * with payload p. Returns its length. */
static uint32_t pkt(uint8_t *b, int k, bool from_cli, const char *p)
{
    size_t n = strlen(p);
    memset(b, 0, 40);
    uint8_t cli[4] = {10, 0, 0, (uint8_t)k}, srv[4] = {192, 0, 2, 1};
    b[0] = 0x45;
    b[2] = (uint8_t)((40 + n) >> 8);
    b[3] = (uint8_t)(40 + n);
    b[8] = 64;
    b[9] = 6;
    memcpy(b + 12, from_cli ? cli : srv, 4);
    memcpy(b + 16, from_cli ? srv : cli, 4);
    uint16_t sp = from_cli ? 40000 : 22, dp = from_cli ? 22 : 40000;
    b[20] = (uint8_t)(sp >> 8);
    b[21] = (uint8_t)sp;
    b[22] = (uint8_t)(dp >> 8);
    b[23] = (uint8_t)dp;
    b[32] = 5 << 4;
    b[33] = 0x18; /* PSH ACK */
    memcpy(b + 40, p, n);
    return (uint32_t)(40 + n);
}

static const char *SRV_BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
static const char *CLI_BANNER = "SSH-2.0-OpenSSH_9.6\r\n";
static const char *OPAQUE = "\x7f\x13\x37\x42 opaque bytes no dissector names"; /* undecided */

/* Both banners of flow k through dpi_step with need; packet times from t. */
static void banners(struct dpi *d, struct dpi_flow *f, int k, enum dpi_need need, int64_t t)
{
    uint8_t b[128];
    uint32_t n = pkt(b, k, false, SRV_BANNER);
    dpi_step(d, f, b, n, n - 40, t, need);
    n = pkt(b, k, true, CLI_BANNER);
    dpi_step(d, f, b, n, n - 40, t + 1000, need);
}

START_TEST(run_until_label)
{
    struct dpi *d = dpi_new(16, 12, 0);
    ck_assert_ptr_nonnull(d);
    struct dpi_flow f;
    memset(&f, 0, sizeof(f));
    uint8_t b[128];
    uint32_t n = pkt(b, 1, true, "");
    dpi_step(d, &f, b, n, 0, 1000, DPI_RUN); /* no payload yet: no state */
    ck_assert_ptr_null(f.live);
    banners(d, &f, 1, DPI_RUN, 2000);
    ck_assert(f.done);
    ck_assert_ptr_null(f.live); /* freed at the label */
    ck_assert_ptr_nonnull(dpi_label(d, &f));
    ck_assert_str_eq(dpi_label(d, &f), "SSH");
    struct dpi_stats st;
    dpi_stats(d, &st);
    ck_assert_uint_eq(st.flows, 1);
    dpi_free(d);
}
END_TEST

START_TEST(idle_frees_and_may_run_again)
{
    struct dpi *d = dpi_new(16, 12, 0);
    struct dpi_flow f;
    memset(&f, 0, sizeof(f));
    uint8_t b[128];
    uint32_t n = pkt(b, 1, false, OPAQUE);
    dpi_step(d, &f, b, n, n - 40, 1000, DPI_RUN);
    ck_assert_ptr_nonnull(f.live);
    dpi_step(d, &f, b, n, n - 40, 2000, DPI_IDLE);
    ck_assert_ptr_null(f.live);
    ck_assert(!f.done);
    ck_assert_ptr_null(dpi_label(d, &f));
    banners(d, &f, 1, DPI_RUN, 3000); /* flagged later: nDPI starts again */
    ck_assert(f.done);
    ck_assert_str_eq(dpi_label(d, &f), "SSH");
    struct dpi_stats st;
    dpi_stats(d, &st);
    ck_assert_uint_eq(st.flows, 2);
    dpi_free(d);
}
END_TEST

START_TEST(stop_for_good)
{
    struct dpi *d = dpi_new(16, 12, 0);
    struct dpi_flow f, g;
    memset(&f, 0, sizeof(f));
    memset(&g, 0, sizeof(g));
    uint8_t b[128];
    uint32_t n = pkt(b, 1, false, OPAQUE);
    dpi_step(d, &f, b, n, n - 40, 1000, DPI_RUN);
    dpi_step(d, &f, b, n, n - 40, 2000, DPI_STOP);
    ck_assert(f.done);
    ck_assert_ptr_null(f.live);
    banners(d, &f, 1, DPI_RUN, 3000); /* done: nothing runs */
    ck_assert_ptr_null(f.live);
    ck_assert_ptr_null(dpi_label(d, &f));
    /* a label given before the stop stays */
    banners(d, &g, 2, DPI_RUN, 4000);
    dpi_step(d, &g, b, n, n - 40, 5000, DPI_STOP);
    ck_assert_str_eq(dpi_label(d, &g), "SSH");
    dpi_free(d);
}
END_TEST

START_TEST(cap_skip_and_reclaim)
{
    struct dpi *d = dpi_new(1, 12, 1000); /* one state; a stall of 1 s gives way */
    struct dpi_flow a, b2, c;
    memset(&a, 0, sizeof(a));
    memset(&b2, 0, sizeof(b2));
    memset(&c, 0, sizeof(c));
    uint8_t b[128];
    uint32_t n = pkt(b, 1, false, OPAQUE);
    dpi_step(d, &a, b, n, n - 40, 1000000, DPI_RUN);
    ck_assert_ptr_nonnull(a.live);
    n = pkt(b, 2, false, OPAQUE);
    dpi_step(d, &b2, b, n, n - 40, 1500000, DPI_RUN); /* a waited 0.5 s: b2 skipped */
    ck_assert(b2.done);
    ck_assert_ptr_null(b2.live);
    n = pkt(b, 3, false, OPAQUE);
    dpi_step(d, &c, b, n, n - 40, 2500000, DPI_RUN); /* a waited 1.5 s: reclaimed */
    ck_assert(a.done);
    ck_assert_ptr_null(a.live);
    ck_assert_ptr_nonnull(c.live);
    struct dpi_stats st;
    dpi_stats(d, &st);
    ck_assert_uint_eq(st.flows, 2);
    ck_assert_uint_eq(st.skipped, 1);
    ck_assert_uint_eq(st.reclaimed, 1);
    ck_assert_uint_eq(dpi_pressure(d)->refused, 1);
    ck_assert_uint_eq(dpi_pressure(d)->reclaimed, 1);
    dpi_release(d, &c);
    ck_assert_ptr_null(c.live);
    dpi_free(d);
}
END_TEST

START_TEST(prepare_once)
{
    struct dpi *d = dpi_new(16, 12, 0);
    ck_assert(dpi_prepare(d));
    ck_assert(dpi_prepare(d)); /* set up once, then kept */
    dpi_free(d);
    dpi_free(dpi_new(16, 12, 0)); /* never set up: nothing to tear down */
}
END_TEST

START_TEST(compact_record_part)
{
    ck_assert_uint_le(sizeof(struct dpi_flow), 16);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("dpi");
    TCase *tc = tcase_create("dpi");
    tcase_add_test(tc, run_until_label);
    tcase_add_test(tc, idle_frees_and_may_run_again);
    tcase_add_test(tc, stop_for_good);
    tcase_add_test(tc, cap_skip_and_reclaim);
    tcase_add_test(tc, prepare_once);
    tcase_add_test(tc, compact_record_part);
    suite_add_tcase(s, tc);
    return s;
}
