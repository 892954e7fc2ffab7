/* check_summary.c - unit tests for src/summary.c: one row per internal host however many
 * hosts hit (IPv4 and IPv6 alike, the hashed index finds each again), counts added to the
 * right row, and the table bounded at SUMMARY_HOSTS hosts. */
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

/* The JSON lines summary_print writes, whole. */
static char *json_of(const struct summary *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    summary_print(s, NULL, f);
    fclose(f);
    return buf;
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

Suite *tw_suite(void)
{
    Suite *s = suite_create("summary");
    TCase *tc = tcase_create("summary");
    tcase_add_test(tc, rows_per_host_and_bound);
    tcase_add_test(tc, long_names_all_kept);
    suite_add_tcase(s, tc);
    return s;
}
