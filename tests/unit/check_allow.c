/* check_allow.c - unit tests for src/allow.c: domain matching on label boundaries, each
 * allowlist criterion alone and combined, time windows (one wrapping midnight) and days.
 * Times are evaluated in local time; the tests pin TZ=UTC. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnelwatch/allow.h"
#include "tw_check.h"

#define DM(name, dom) tw_domain_match((const uint8_t *)(name), strlen(name), dom)

START_TEST(domain_match)
{
    ck_assert(DM("michigan.org", "michigan.org"));
    ck_assert(DM("sub.michigan.org", "michigan.org"));
    ck_assert(DM("a.b.michigan.org", "michigan.org"));
    ck_assert(DM("michigan.org.", "michigan.org"));
    ck_assert(DM("michigan.org", "michigan.org."));
    ck_assert(DM("MICHIGAN.Org", "michigan.ORG"));
    /* label boundary: a suffix that is not a whole label does not match */
    ck_assert(!DM("michigan.org", "higan.org"));
    ck_assert(!DM("xmichigan.org", "michigan.org"));
    ck_assert(!DM("michigan.org.evil.com", "michigan.org"));
    ck_assert(!DM("org", "michigan.org"));
    ck_assert(DM("michigan.org", "org"));
    ck_assert(!DM("michigan.org", ""));
    ck_assert(!DM("michigan.org", "."));
    ck_assert(!DM("", "michigan.org"));
    ck_assert(!tw_domain_match(NULL, 0, "michigan.org"));
}
END_TEST

START_TEST(parse_window)
{
    int f, t;
    ck_assert_int_eq(allow_parse_window("09:00-17:30", &f, &t), TW_OK);
    ck_assert_int_eq(f, 540);
    ck_assert_int_eq(t, 1050);
    ck_assert_int_eq(allow_parse_window("22:00-06:00", &f, &t), TW_OK);
    ck_assert_int_eq(f, 1320);
    ck_assert_int_eq(t, 360);
    ck_assert_int_eq(allow_parse_window("00:00-24:00", &f, &t), TW_OK);
    ck_assert_int_eq(t, 1440);
    ck_assert_int_eq(allow_parse_window("24:00-01:00", &f, &t), TW_EBAD);
    ck_assert_int_eq(allow_parse_window("10:60-11:00", &f, &t), TW_EBAD);
    ck_assert_int_eq(allow_parse_window("10:00-24:01", &f, &t), TW_EBAD);
    ck_assert_int_eq(allow_parse_window("10:00", &f, &t), TW_EBAD);
    ck_assert_int_eq(allow_parse_window("10:00-11:00x", &f, &t), TW_EBAD);
    ck_assert_int_eq(allow_parse_window("", &f, &t), TW_EBAD);
}
END_TEST

static char rid[] = "19bf6fdb-7721-4f3d-867f-53467f6a5db6";
static char rtitle[] = "Communication To Ngrok Tunneling Service - Linux";
static struct rule rule = {.id = rid, .title = rtitle};

/* 2024-01-01 is a Monday. */
#define MON_0000 1704067200LL

static struct tw_addr host;

static struct allow_query query(const char *name, const char *ja4, int64_t ts)
{
    struct allow_query q;
    memset(&q, 0, sizeof(q));
    q.host = &host;
    q.name = (const uint8_t *)name;
    q.name_len = strlen(name);
    q.rule = &rule;
    q.ja4 = ja4;
    q.ts = (struct tw_time){ts, 0};
    return q;
}

/* An entry as cfg_load leaves it with no criterion: no window, every day. */
static struct cfg_allow blank(void)
{
    struct cfg_allow e;
    memset(&e, 0, sizeof(e));
    e.from_min = e.to_min = -1;
    e.days_mask = 0x7f;
    return e;
}

static void setup(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    ck_assert_int_eq(tw_addr_parse("10.1.2.3", &host), TW_OK);
}

static char n_ngrok[] = "ngrok.io", n_other[] = "example.com";
static char ja4_a[] = "t13d1516h2_8daaf6152771_02713d6af862";
static char r_title_lc[] = "communication to ngrok tunneling service - linux";
static char r_other[] = "some-other-rule";

START_TEST(each_criterion)
{
    setup();
    int64_t ts = MON_0000 + 12 * 3600;
    struct cfg_allow e = blank();
    /* source CIDR alone */
    ck_assert_int_eq(cfg_parse_cidr("10.1.0.0/16", &e.src[0]), TW_OK);
    e.n_src = 1;
    struct allow_query q = query("x.ngrok.io", NULL, ts);
    ck_assert_int_eq(allow_match(&e, 1, &q), 0);
    struct tw_addr other;
    ck_assert_int_eq(tw_addr_parse("10.2.0.1", &other), TW_OK);
    q.host = &other;
    ck_assert_int_eq(allow_match(&e, 1, &q), -1);
    /* a second CIDR in the same entry is an OR */
    ck_assert_int_eq(cfg_parse_cidr("10.2.0.0/24", &e.src[1]), TW_OK);
    e.n_src = 2;
    ck_assert_int_eq(allow_match(&e, 1, &q), 0);
    /* destination name alone */
    e = blank();
    e.dst_names[0] = n_other;
    e.n_dst_names = 1;
    q = query("x.ngrok.io", NULL, ts);
    ck_assert_int_eq(allow_match(&e, 1, &q), -1);
    e.dst_names[1] = n_ngrok;
    e.n_dst_names = 2;
    ck_assert_int_eq(allow_match(&e, 1, &q), 0);
    q = query("ngrok.io.evil.com", NULL, ts);
    ck_assert_int_eq(allow_match(&e, 1, &q), -1);
    /* rule alone, by id or by title (case-insensitive) */
    e = blank();
    e.rules[0] = r_other;
    e.n_rules = 1;
    q = query("x.ngrok.io", NULL, ts);
    ck_assert_int_eq(allow_match(&e, 1, &q), -1);
    e.rules[0] = rid;
    ck_assert_int_eq(allow_match(&e, 1, &q), 0);
    e.rules[0] = r_title_lc;
    ck_assert_int_eq(allow_match(&e, 1, &q), 0);
    q.rule = NULL; /* no rule: a rule criterion cannot hold */
    ck_assert_int_eq(allow_match(&e, 1, &q), -1);
    /* JA4 alone: an observation without one never matches */
    e = blank();
    e.ja4[0] = ja4_a;
    e.n_ja4 = 1;
    q = query("x.ngrok.io", NULL, ts);
    ck_assert_int_eq(allow_match(&e, 1, &q), -1);
    q.ja4 = "t13d1516h2_8daaf6152771_000000000000";
    ck_assert_int_eq(allow_match(&e, 1, &q), -1);
    q.ja4 = ja4_a;
    ck_assert_int_eq(allow_match(&e, 1, &q), 0);
    /* an entry with no criterion suppresses everything */
    e = blank();
    ck_assert_int_eq(allow_match(&e, 1, &q), 0);
    ck_assert_int_eq(allow_match(&e, 0, &q), -1);
}
END_TEST

START_TEST(combined)
{
    setup();
    int64_t ts = MON_0000 + 12 * 3600;
    struct cfg_allow e[2];
    e[0] = blank();
    ck_assert_int_eq(cfg_parse_cidr("10.1.2.0/24", &e[0].src[0]), TW_OK);
    e[0].n_src = 1;
    e[0].dst_names[0] = n_ngrok;
    e[0].n_dst_names = 1;
    e[0].rules[0] = rid;
    e[0].n_rules = 1;
    e[0].ja4[0] = ja4_a;
    e[0].n_ja4 = 1;
    e[1] = blank();
    e[1].dst_names[0] = n_other;
    e[1].n_dst_names = 1;
    struct allow_query q = query("a.ngrok.io", ja4_a, ts);
    ck_assert_int_eq(allow_match(e, 2, &q), 0);
    /* each criterion failing alone makes the entry fail */
    q.ja4 = NULL;
    ck_assert_int_eq(allow_match(e, 2, &q), -1);
    q = query("a.ngrok.com", ja4_a, ts);
    ck_assert_int_eq(allow_match(e, 2, &q), -1);
    q = query("a.ngrok.io", ja4_a, ts);
    struct rule other = {.id = r_other, .title = r_other};
    q.rule = &other;
    ck_assert_int_eq(allow_match(e, 2, &q), -1);
    q = query("a.ngrok.io", ja4_a, ts);
    struct tw_addr out;
    ck_assert_int_eq(tw_addr_parse("10.1.3.3", &out), TW_OK);
    q.host = &out;
    ck_assert_int_eq(allow_match(e, 2, &q), -1);
    /* the second entry matches its own case: the index says which */
    q = query("www.example.com", NULL, ts);
    ck_assert_int_eq(allow_match(e, 2, &q), 1);
}
END_TEST

static int at_time(struct cfg_allow *e, int64_t ts)
{
    struct allow_query q = query("x.ngrok.io", NULL, ts);
    return allow_match(e, 1, &q);
}

START_TEST(windows_and_days)
{
    setup();
    struct cfg_allow e = blank();
    /* 09:00-17:00 */
    e.from_min = 540;
    e.to_min = 1020;
    ck_assert_int_eq(at_time(&e, MON_0000 + 8 * 3600 + 59 * 60), -1);
    ck_assert_int_eq(at_time(&e, MON_0000 + 9 * 3600), 0);
    ck_assert_int_eq(at_time(&e, MON_0000 + 16 * 3600 + 59 * 60 + 59), 0);
    ck_assert_int_eq(at_time(&e, MON_0000 + 17 * 3600), -1);
    /* 22:00-06:00 wraps midnight */
    e.from_min = 1320;
    e.to_min = 360;
    ck_assert_int_eq(at_time(&e, MON_0000 + 21 * 3600 + 59 * 60), -1);
    ck_assert_int_eq(at_time(&e, MON_0000 + 22 * 3600), 0);
    ck_assert_int_eq(at_time(&e, MON_0000 + 23 * 3600 + 30 * 60), 0);
    ck_assert_int_eq(at_time(&e, MON_0000 + 0), 0);
    ck_assert_int_eq(at_time(&e, MON_0000 + 5 * 3600 + 59 * 60), 0);
    ck_assert_int_eq(at_time(&e, MON_0000 + 6 * 3600), -1);
    ck_assert_int_eq(at_time(&e, MON_0000 + 12 * 3600), -1);
    /* days: mon-fri (what cfg_load makes of "mon-fri") */
    e = blank();
    static char wd[] = "mon-fri";
    e.days = wd;
    e.days_mask = 0x3e;
    for (int d = 0; d < 7; d++) {
        int64_t ts = MON_0000 + d * 86400 + 3600; /* d = 0 is Monday */
        bool weekday = d < 5;
        ck_assert_int_eq(at_time(&e, ts), weekday ? 0 : -1);
    }
    /* days and a window together: weekend nights only */
    static char we[] = "sat,sun";
    e.days = we;
    e.days_mask = 0x41;
    e.from_min = 1320;
    e.to_min = 360;
    ck_assert_int_eq(at_time(&e, MON_0000 + 5 * 86400 + 23 * 3600), 0);  /* Sat 23:00 */
    ck_assert_int_eq(at_time(&e, MON_0000 + 5 * 86400 + 12 * 3600), -1); /* Sat noon */
    ck_assert_int_eq(at_time(&e, MON_0000 + 4 * 86400 + 23 * 3600), -1); /* Fri 23:00 */
    ck_assert_int_eq(at_time(&e, MON_0000 + 7 * 86400 + 1 * 3600), -1);  /* Mon 01:00 */
    ck_assert_int_eq(at_time(&e, MON_0000 + 6 * 86400 + 1 * 3600), 0);   /* Sun 01:00 */
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("allow");
    TCase *tc = tcase_create("tw_domain_match");
    tcase_add_test(tc, domain_match);
    suite_add_tcase(s, tc);
    tc = tcase_create("allow_parse_window");
    tcase_add_test(tc, parse_window);
    suite_add_tcase(s, tc);
    tc = tcase_create("allow_match");
    tcase_add_test(tc, each_criterion);
    tcase_add_test(tc, combined);
    tcase_add_test(tc, windows_and_days);
    suite_add_tcase(s, tc);
    return s;
}
