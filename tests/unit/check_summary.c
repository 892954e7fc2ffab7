/* check_summary.c - unit tests for src/summary.c: one row per internal host however many
 * hosts hit (IPv4 and IPv6 alike, the hashed index finds each again), counts added to the
 * right row, and the table bounded at SUMMARY_HOSTS hosts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/summary.h"
#include "tw_check.h"

static struct tw_addr host(uint32_t x, bool v6)
{
    struct tw_addr a = {.family = v6 ? 6 : 4};
    int at = v6 ? 12 : 0;
    if (v6) {
        a.a[0] = 0xfd;
        a.a[1] = 0x10;
    }
    a.a[at] = (uint8_t)(x >> 24);
    a.a[at + 1] = (uint8_t)(x >> 16);
    a.a[at + 2] = (uint8_t)(x >> 8);
    a.a[at + 3] = (uint8_t)x;
    return a;
}

/* What summary_print writes, whole: the table (table) or the JSON lines. */
static char *printed(const struct summary *s, bool table)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    summary_print(s, table ? f : NULL, table ? NULL : f);
    fclose(f);
    return buf;
}

static char *json_of(const struct summary *s)
{
    return printed(s, false);
}

static size_t lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(rows_per_host_and_bound)
{
    struct summary *s = summary_new();
    ck_assert_ptr_nonnull(s);
    struct tw_time ts = {.sec = 1700000000};
    static const uint8_t name[] = "a.ngrok.io";
    /* 3000 IPv4 and 3000 IPv6 hosts, with addresses that differ in one byte only: the table
     * keeps the first 4096, each once */
    for (int round = 0; round < 2; round++)
        for (uint32_t i = 0; i < 3000; i++)
            for (int v6 = 0; v6 < 2; v6++) {
                struct tw_addr a = host(0x0a000000u + i, v6);
                summary_hit(s, &a, "r1", name, sizeof(name) - 1, i, ts, round == 0);
                summary_flow(s, &a);
                summary_bytes(s, &a, 100, 200);
            }
    char *j = json_of(s);
    ck_assert_uint_eq(lines(j), 4096);
    free(j);
    summary_free(s);

    /* a few hosts: every count lands on its own row */
    s = summary_new();
    for (uint32_t i = 0; i < 5; i++)
        for (uint32_t k = 0; k <= i; k++) {
            struct tw_addr a = host(0xc0a80001u + i * 256, i & 1);
            summary_hit(s, &a, "r1", name, sizeof(name) - 1, k, ts, k == 0);
            summary_bytes(s, &a, 10, 1);
        }
    j = json_of(s);
    ck_assert_uint_eq(lines(j), 5);
    ck_assert_ptr_nonnull(strstr(j, "\"hits\":5"));
    ck_assert_ptr_nonnull(strstr(j, "\"hits\":1"));
    ck_assert_ptr_nonnull(strstr(j, "\"bytes_out\":50"));
    ck_assert_ptr_nonnull(strstr(j, "fd10::c0a8:301")); /* the fourth host is IPv6 */
    free(j);
    summary_free(s);
}
END_TEST

/* Names are kept to 127 bytes, eight per host; the table's names all fit however long they
 * are (4096 hosts with eight 127-byte names each: more than 4 MiB of text). */
START_TEST(long_names_all_kept)
{
    struct summary *s = summary_new();
    ck_assert_ptr_nonnull(s);
    struct tw_time ts = {.sec = 1700000000};
    char name[200];
    for (uint32_t i = 0; i < 4096; i++)
        for (int k = 0; k < 9; k++) {
            struct tw_addr a = host(0x0a000000u + i, false);
            memset(name, 'a' + k, sizeof(name));
            snprintf(name, 16, "%08x-%d", i, k);
            name[10] = 'y'; /* over snprintf's NUL: a name stops at its first NUL */
            summary_hit(s, &a, "r1", (const uint8_t *)name, sizeof(name), i, ts, k == 0);
        }
    char *j = json_of(s);
    ck_assert_uint_eq(lines(j), 4096);
    const char *last = strstr(j, "\"host\":\"10.0.15.255\"");
    ck_assert_ptr_nonnull(last);
    const char *names = strstr(last, "\"names\":[");
    ck_assert_ptr_nonnull(names);
    int count = 0;
    for (const char *p = names; *p && *p != ']'; p++)
        count += *p == ',';
    ck_assert_int_eq(count + 1, 8); /* the ninth is not kept */
    const char *n7 = strstr(names, "\"00000fff-7yhhhh");
    ck_assert_ptr_nonnull(n7);
    ck_assert_ptr_eq(strchr(n7 + 1, '"'), n7 + 1 + 127); /* 127 bytes of it */
    free(j);
    summary_free(s);
}
END_TEST

/* A row as the table printed it with fprintf ("%-39s %6lu %6lu %5lu %12lu %-20s %-20s  "
 * then the lists), appended to *buf. */
static void expect_row(char **buf, size_t *len, const char *host, uint64_t alerts, uint64_t hits,
                       uint64_t flows, uint64_t bytes, const char *t, const char *names,
                       const char *rules, const char *frames)
{
    char row[2048];
    int n = snprintf(row, sizeof(row),
                     "%-39s %6" PRIu64 " %6" PRIu64 " %5" PRIu64 " %12" PRIu64
                     " %-20s %-20s  %s / %s / %s\n",
                     host, alerts, hits, flows, bytes, t, t, names, rules, frames);
    ck_assert_int_lt(n, (int)sizeof(row));
    *buf = realloc(*buf, *len + (size_t)n + 1);
    memcpy(*buf + *len, row, (size_t)n + 1);
    *len += (size_t)n;
}

static char *table_of(const struct summary *s)
{
    return printed(s, true);
}

/* The table, formatted by hand, is what fprintf's widths made of it: short and over-wide
 * values, IPv4 and a full-length IPv6 address, lists of names, rules and frames, a row with
 * none of them; and a table of many times the 64 KiB written at once. */
START_TEST(table_as_printf)
{
    struct summary *s = summary_new();
    ck_assert_ptr_nonnull(s);
    struct tw_time ts = {.sec = 1700000000, .usec = 250000};
    const char *t = "2023-11-14T22:13:20";
    struct tw_addr a = host(0x0a010203u, false);
    summary_hit(s, &a, "r1", (const uint8_t *)"a.example", 9, 7, ts, true);
    summary_hit(s, &a, "r2", (const uint8_t *)"b.example", 9, UINT64_MAX, ts, true);
    summary_hit(s, &a, "r2", (const uint8_t *)"b.example", 9, UINT64_MAX, ts, false);
    summary_flow(s, &a);
    summary_bytes(s, &a, 123456789012345ull, 1);
    struct tw_addr b = {.family = 6};
    for (int i = 0; i < 16; i++)
        b.a[i] = (uint8_t)(0xf1 + i);
    summary_hit(s, &b, "r3", (const uint8_t *)"c.example", 9, 0, ts, false);
    char *buf = NULL;
    size_t len = 0;
    expect_row(&buf, &len, "10.1.2.3", 2, 3, 1, 123456789012345ull, t, "a.example,b.example",
               "r1,r2", "7,18446744073709551615,18446744073709551615");
    expect_row(&buf, &len, "f1f2:f3f4:f5f6:f7f8:f9fa:fbfc:fdfe:ff00", 0, 1, 0, 0, t, "c.example",
               "r3", "0");
    char *got = table_of(s);
    ck_assert_ptr_nonnull(strstr(got, "internal host"));
    const char *rows = strchr(got + 1, '\n'); /* after the leading newline and the heading */
    ck_assert_ptr_nonnull(rows);
    ck_assert_str_eq(rows + 1, buf);
    free(got);
    free(buf);
    summary_free(s);

    /* 3000 hosts with eight 42-byte names: about 1.4 MB, every row whole and in order */
    s = summary_new();
    buf = NULL;
    len = 0;
    for (uint32_t i = 0; i < 3000; i++) {
        struct tw_addr h = host(0x0a000000u + i, false);
        char names[8 * 48] = "", ip[32];
        for (int k = 0; k < 8; k++) {
            char n[48];
            snprintf(n, sizeof(n), "%08x-%d.long-name-for-the-table.example", i, k);
            summary_hit(s, &h, "rx", (const uint8_t *)n, strlen(n), i, ts, k == 0);
            strcat(names, k ? "," : "");
            strcat(names, n);
        }
        char fr[8 * 12] = ""; /* each hit's frame (frames are kept as they come, eight) */
        for (int k = 0; k < 8; k++)
            snprintf(fr + strlen(fr), sizeof(fr) - strlen(fr), "%s%" PRIu32, k ? "," : "", i);
        snprintf(ip, sizeof(ip), "10.0.%u.%u", (i >> 8) & 255, i & 255);
        expect_row(&buf, &len, ip, 1, 8, 0, 0, t, names, "rx", fr);
    }
    got = table_of(s);
    ck_assert_uint_gt(len, 16u * 64 * 1024);
    rows = strchr(got + 1, '\n');
    ck_assert_ptr_nonnull(rows);
    ck_assert_uint_eq(strlen(rows + 1), len);
    ck_assert_int_eq(memcmp(rows + 1, buf, len), 0);
    free(got);
    free(buf);
    summary_free(s);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("summary");
    TCase *tc = tcase_create("summary");
    tcase_add_test(tc, rows_per_host_and_bound);
    tcase_add_test(tc, long_names_all_kept);
    tcase_add_test(tc, table_as_printf);
    suite_add_tcase(s, tc);
    return s;
}
