/* check_attrib.c - unit tests for src/attrib.c: the internal-network set (RFC 1918,
 * fd00::/8, /0, /32, /128, v4 and v6 apart) and the bounded IP -> name map (put, get,
 * expiry, refresh, cap with eviction counting, and a randomized run against a reference
 * model that exercises backward-shift deletion). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/attrib.h"
#include "tw_check.h"

static struct tw_addr ip(const char *s)
{
    struct tw_addr a;
    ck_assert_int_eq(tw_addr_parse(s, &a), TW_OK);
    return a;
}

static void add(struct netset *n, const char *s, unsigned bits)
{
    struct tw_addr a = ip(s);
    ck_assert_int_eq(netset_add(n, &a, bits), TW_OK);
}

static bool has(const struct netset *n, const char *s)
{
    struct tw_addr a = ip(s);
    return netset_contains(n, &a);
}

START_TEST(netset_private)
{
    struct netset *n = netset_new();
    ck_assert_ptr_nonnull(n);
    add(n, "10.0.0.0", 8);
    add(n, "172.16.0.0", 12);
    add(n, "192.168.0.0", 16);
    add(n, "fd00::", 8);
    ck_assert_uint_eq(netset_count(n), 4);
    ck_assert(has(n, "10.0.0.0"));
    ck_assert(has(n, "10.255.255.255"));
    ck_assert(!has(n, "11.0.0.0"));
    ck_assert(!has(n, "9.255.255.255"));
    ck_assert(has(n, "172.16.0.1"));
    ck_assert(has(n, "172.31.255.255"));
    ck_assert(!has(n, "172.32.0.0"));
    ck_assert(!has(n, "172.15.255.255"));
    ck_assert(has(n, "192.168.1.1"));
    ck_assert(!has(n, "192.169.0.1"));
    ck_assert(!has(n, "8.8.8.8"));
    ck_assert(has(n, "fd12:3456::1"));
    ck_assert(has(n, "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    ck_assert(!has(n, "fc00::1"));
    ck_assert(!has(n, "fe80::1"));
    ck_assert(!has(n, "2001:db8::1"));
    /* v4 and v6 are apart: 0a00::/8 is not 10/8, ::ffff:10.0.0.1 is a v6 address */
    ck_assert(!has(n, "a00::1"));
    ck_assert(!has(n, "::ffff:10.0.0.1"));
    /* adding the same prefix twice counts once; unset addresses never match */
    add(n, "10.0.0.0", 8);
    ck_assert_uint_eq(netset_count(n), 4);
    struct tw_addr unset;
    memset(&unset, 0, sizeof(unset));
    ck_assert(!netset_contains(n, &unset));
    netset_free(n);
    netset_free(NULL);
}
END_TEST

START_TEST(netset_edges)
{
    struct netset *n = netset_new();
    add(n, "203.0.113.7", 32);
    add(n, "2001:db8::42", 128);
    ck_assert(has(n, "203.0.113.7"));
    ck_assert(!has(n, "203.0.113.6"));
    ck_assert(!has(n, "203.0.113.8"));
    ck_assert(has(n, "2001:db8::42"));
    ck_assert(!has(n, "2001:db8::43"));
    ck_assert(!has(n, "2001:db8::"));
    ck_assert(!has(n, "1.2.3.4"));
    struct tw_addr a = ip("1.2.3.4");
    ck_assert_int_eq(netset_add(n, &a, 33), TW_EBAD);
    a = ip("::1");
    ck_assert_int_eq(netset_add(n, &a, 129), TW_EBAD);
    /* /0 of v4 is every v4 address and no v6 one */
    add(n, "0.0.0.0", 0);
    ck_assert(has(n, "1.2.3.4"));
    ck_assert(has(n, "255.255.255.255"));
    ck_assert(!has(n, "2001:db8::43"));
    add(n, "::", 0);
    ck_assert(has(n, "2001:db8::43"));
    netset_free(n);
    /* a contains query on a NULL set is false (no networks configured) */
    a = ip("10.0.0.1");
    ck_assert(!netset_contains(NULL, &a));
}
END_TEST

static struct dnsmap_entry ent(const struct tw_addr *a, const char *name, int64_t exp)
{
    struct dnsmap_entry e;
    memset(&e, 0, sizeof(e));
    e.ip = *a;
    snprintf(e.name, sizeof(e.name), "%s", name);
    e.expires_us = exp;
    e.frame = 1;
    return e;
}

START_TEST(dnsmap_basic)
{
    struct dnsmap *m = dnsmap_new(100);
    ck_assert_ptr_nonnull(m);
    struct tw_addr a = ip("3.134.39.220"), b = ip("2600:1f16::1"), c = ip("3.134.39.221");
    struct dnsmap_entry e = ent(&a, "tunnel.us.ngrok.com", 1000);
    dnsmap_put(m, &e);
    e = ent(&b, "v6.ngrok.io", 2000);
    dnsmap_put(m, &e);
    ck_assert_uint_eq(dnsmap_size(m), 2);
    const struct dnsmap_entry *g = dnsmap_get(m, &a, 500);
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(g->name, "tunnel.us.ngrok.com");
    ck_assert_ptr_null(dnsmap_get(m, &c, 500));
    ck_assert_ptr_nonnull(dnsmap_get(m, &a, 1000)); /* expires at 1000: still live */
    /* refresh: same ip, later expiry and a new name */
    e = ent(&a, "x.ngrok.io", 3000);
    dnsmap_put(m, &e);
    ck_assert_uint_eq(dnsmap_size(m), 2);
    g = dnsmap_get(m, &a, 2500);
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(g->name, "x.ngrok.io");
    /* expiry: past it the entry is gone, and removed */
    ck_assert_ptr_null(dnsmap_get(m, &b, 2001));
    ck_assert_uint_eq(dnsmap_size(m), 1);
    ck_assert_ptr_nonnull(dnsmap_get(m, &a, 2001));
    ck_assert_uint_eq(dnsmap_evictions(m), 0);
    dnsmap_free(m);
    dnsmap_free(NULL);
    ck_assert_ptr_null(dnsmap_new(0));
}
END_TEST

static struct tw_addr nth(uint32_t i)
{
    struct tw_addr a;
    memset(&a, 0, sizeof(a));
    a.family = 4;
    a.a[0] = 100;
    a.a[1] = (uint8_t)(i >> 16);
    a.a[2] = (uint8_t)(i >> 8);
    a.a[3] = (uint8_t)i;
    return a;
}

START_TEST(dnsmap_cap)
{
    /* at the cap, every new answer is kept (it is the freshest evidence) and one older
     * entry is evicted and counted */
    for (uint32_t max = 1; max <= 64; max *= 4) {
        struct dnsmap *m = dnsmap_new(max);
        for (uint32_t i = 0; i < 1000; i++) {
            struct tw_addr a = nth(i);
            struct dnsmap_entry e = ent(&a, "n.ngrok.io", 1000000 + i);
            dnsmap_put(m, &e);
            ck_assert_uint_le(dnsmap_size(m), max);
            ck_assert_ptr_nonnull(dnsmap_get(m, &a, 0));
        }
        ck_assert_uint_eq(dnsmap_size(m), max);
        ck_assert_uint_eq(dnsmap_evictions(m), 1000 - max);
        dnsmap_free(m);
    }
}
END_TEST

/* Reference model: a plain array of (ip, name, expiry). */
struct model {
    struct dnsmap_entry e[512];
    bool live[512];
};

START_TEST(dnsmap_random_vs_model)
{
    enum { KEYS = 400, OPS = 200000 };
    struct dnsmap *m = dnsmap_new(512); /* 1024 slots: clusters form, no cap evictions */
    struct model *ref = calloc(1, sizeof(*ref));
    ck_assert_ptr_nonnull(ref);
    srand(4242);
    int64_t now = 0;
    uint64_t ev = 0;
    for (int op = 0; op < OPS; op++) {
        uint32_t k = (uint32_t)rand() % KEYS;
        struct tw_addr a = nth(k * 7919u);
        now += rand() % 3;
        if (rand() % 2) {
            char name[32];
            snprintf(name, sizeof(name), "k%u-%d.ngrok.io", k, op);
            struct dnsmap_entry e = ent(&a, name, now + rand() % 2000);
            dnsmap_put(m, &e);
            ref->e[k] = e;
            ref->live[k] = true;
            if (dnsmap_evictions(m) != ev) {
                /* a full probe window evicted someone: drop from the model whoever the
                 * map no longer has (a query with an old clock removes nothing) */
                uint64_t gone = 0;
                for (uint32_t j = 0; j < KEYS; j++)
                    if (ref->live[j] && !dnsmap_get(m, &ref->e[j].ip, INT64_MIN)) {
                        ref->live[j] = false;
                        gone++;
                    }
                ck_assert_uint_eq(gone, dnsmap_evictions(m) - ev);
                ev = dnsmap_evictions(m);
            }
        } else {
            const struct dnsmap_entry *g = dnsmap_get(m, &a, now);
            if (ref->live[k] && ref->e[k].expires_us >= now) {
                ck_assert_ptr_nonnull(g);
                ck_assert_str_eq(g->name, ref->e[k].name);
                ck_assert(tw_addr_eq(&g->ip, &a));
            } else {
                ck_assert_ptr_null(g);
                ref->live[k] = false;
            }
        }
        size_t live = 0;
        for (uint32_t j = 0; j < KEYS; j++)
            live += ref->live[j];
        ck_assert_uint_eq(dnsmap_size(m), live);
    }
    /* everything the model holds is still findable (deletions kept chains intact) */
    for (uint32_t j = 0; j < KEYS; j++)
        if (ref->live[j])
            ck_assert_ptr_nonnull(dnsmap_get(m, &ref->e[j].ip, INT64_MIN));
    free(ref);
    dnsmap_free(m);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("attrib");
    TCase *tc = tcase_create("netset");
    tcase_add_test(tc, netset_private);
    tcase_add_test(tc, netset_edges);
    suite_add_tcase(s, tc);
    tc = tcase_create("dnsmap");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dnsmap_basic);
    tcase_add_test(tc, dnsmap_cap);
    tcase_add_test(tc, dnsmap_random_vs_model);
    suite_add_tcase(s, tc);
    return s;
}
