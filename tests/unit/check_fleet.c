/* check_fleet.c - the fleet's binding JSON (untrusted: read from Redis) and its in-process
 * queues: what one capture worker learns reaches the others, never itself, and a full queue
 * drops (counted) instead of waiting. */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/fleet.h"
#include "tw_check.h"

static int parse(const char *s, struct fleet_binding *b)
{
    return fleet_binding_parse(s, strlen(s), b);
}

START_TEST(binding_parse)
{
    struct fleet_binding b;
    const char *ok = "{\"ip\":\"3.125.209.94\",\"name\":\"tunnel.eu.ngrok.com\",\"rule\":\"r1\","
                     "\"client\":\"10.1.0.77\",\"resolver\":\"10.1.0.53\",\"sensor\":\"A\","
                     "\"origin\":\"0123456789abcdef\",\"ttl\":300,\"future\":{\"x\":1}}";
    /* a nested value is refused: bindings have none */
    ck_assert_int_eq(parse(ok, &b), TW_EBAD);
    ok = " { \"ip\" : \"3.125.209.94\" , \"name\":\"tunnel.eu.ngrok.com\",\"rule\":\"r1\","
         "\"client\":\"10.1.0.77\",\"resolver\":\"10.1.0.53\",\"sensor\":\"A\","
         "\"origin\":\"0123456789abcdef\",\"ttl\":300,\"future\":1.5e3,\"f2\":null} ";
    ck_assert_int_eq(parse(ok, &b), TW_OK);
    char s[TW_ADDR_STRLEN];
    ck_assert_str_eq(tw_addr_str(&b.ip, s, sizeof(s)), "3.125.209.94");
    ck_assert_str_eq(tw_addr_str(&b.client, s, sizeof(s)), "10.1.0.77");
    ck_assert_str_eq(tw_addr_str(&b.resolver, s, sizeof(s)), "10.1.0.53");
    ck_assert_str_eq(b.name, "tunnel.eu.ngrok.com");
    ck_assert_str_eq(b.rule, "r1");
    ck_assert_str_eq(b.sensor, "A");
    ck_assert_str_eq(b.origin, "0123456789abcdef");
    ck_assert_uint_eq(b.ttl_s, 300);
    /* escapes: \u00e9 as UTF-8, a surrogate pair, \\ and \" */
    ck_assert_int_eq(
        parse("{\"ip\":\"::1\",\"name\":\"a\\u00e9\\ud83d\\ude00\\\\\\\"\",\"ttl\":0}", &b), TW_OK);
    ck_assert_str_eq(b.name, "a\xc3\xa9\xf0\x9f\x98\x80\\\"");
    ck_assert_uint_eq(b.ip.family, 6);
}
END_TEST

START_TEST(binding_refused)
{
    struct fleet_binding b;
    const char *bad[] = {
        "",
        "{",
        "[]",
        "{}",                                           /* required fields missing */
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\"}",          /* no ttl */
        "{\"ip\":\"1.2.3.4\",\"ttl\":1}",               /* no name */
        "{\"ip\":\"1.2.3.4\",\"name\":\"\",\"ttl\":1}", /* empty name */
        "{\"ip\":\"1.2.3.400\",\"name\":\"x\",\"ttl\":1}",
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\",\"ttl\":4294967296}",
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\",\"ttl\":-1}",
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\",\"ttl\":1.5}",
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\\u0000y\",\"ttl\":1}", /* NUL in a C string */
        "{\"ip\":\"1.2.3.4\",\"name\":\"\\ud800\",\"ttl\":1}",   /* lone surrogate */
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\\q\",\"ttl\":1}",
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\n\",\"ttl\":1}", /* raw control byte */
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\",\"ttl\":1}x",  /* trailing bytes */
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\",\"ttl\":1,}",
        "{\"ip\":\"1.2.3.4\",\"name\":5,\"ttl\":1}",
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\",\"rule\":\"\xce"
        "4\",\"ttl\":1}", /* not UTF-8 */
        "{\"ip\":\"1.2.3.4\",\"name\":\"x\",\"ttl\":1,\"sensor\":\"0123456789012345678901234567890"
        "12345678901234567890123456789012345\"}", /* 65 bytes: too long for the field */
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++)
        ck_assert_msg(parse(bad[i], &b) != TW_OK, "%s", bad[i]);
    /* a name of 255 bytes fits, 256 do not */
    char big[400];
    snprintf(big, sizeof(big), "{\"ip\":\"1.2.3.4\",\"ttl\":1,\"name\":\"%0255d\"}", 0);
    ck_assert_int_eq(parse(big, &b), TW_OK);
    snprintf(big, sizeof(big), "{\"ip\":\"1.2.3.4\",\"ttl\":1,\"name\":\"%0256d\"}", 0);
    ck_assert_int_eq(parse(big, &b), TW_EBAD);
    char *huge = calloc(1, FLEET_BINDING_MAX + 2);
    memset(huge, ' ', FLEET_BINDING_MAX + 1);
    ck_assert_int_eq(fleet_binding_parse(huge, FLEET_BINDING_MAX + 1, &b), TW_ELIMIT);
    free(huge);
}
END_TEST

START_TEST(binding_round_trip)
{
    struct fleet_binding b, b2;
    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(tw_addr_parse("2001:db8::7", &b.ip), TW_OK);
    ck_assert_int_eq(tw_addr_parse("10.0.0.9", &b.client), TW_OK);
    snprintf(b.name, sizeof(b.name), "%s", "we\"ird\\name.ngrok.io");
    snprintf(b.rule, sizeof(b.rule), "%s", "rule-1");
    snprintf(b.sensor, sizeof(b.sensor), "%s", "tap-3");
    snprintf(b.origin, sizeof(b.origin), "%s", "00ff00ff00ff00ff");
    b.ttl_s = 86400;
    struct jw w;
    jw_init(&w, FLEET_BINDING_MAX);
    fleet_binding_format(&w, &b);
    ck_assert_int_eq(fleet_binding_parse(w.buf, w.len, &b2), TW_OK);
    jw_free(&w);
    ck_assert(tw_addr_eq(&b.ip, &b2.ip));
    ck_assert(tw_addr_eq(&b.client, &b2.client));
    ck_assert_uint_eq(b2.resolver.family, 0);
    ck_assert_str_eq(b2.name, b.name);
    ck_assert_str_eq(b2.sensor, "tap-3");
    ck_assert_uint_eq(b2.ttl_s, 86400);
}
END_TEST

static void collect(void *ud, const struct fleet_binding *b)
{
    int *n = ud;
    ck_assert_str_eq(b->name, "x.ngrok.io");
    ck_assert_str_eq(b->sensor, ""); /* in process: no other sensor to name */
    (*n)++;
}

/* Three capture workers, no Redis: a binding learned by one reaches the two others. */
START_TEST(in_process)
{
    char err[256];
    struct fleet_opts o = {.n_slots = 3, .queue_max = 16, .sensor_name = "s"};
    struct fleet *f = fleet_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fleet_start(f), TW_OK);
    ck_assert_str_eq(fleet_state(f), "in-process");
    struct fleet_binding b;
    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(tw_addr_parse("1.2.3.4", &b.ip), TW_OK);
    snprintf(b.name, sizeof(b.name), "%s", "x.ngrok.io");
    b.ttl_s = 60;
    fleet_share(f, 1, &b);
    ck_assert(!fleet_pending(f, 1));
    ck_assert(fleet_pending(f, 0) && fleet_pending(f, 2));
    int n = 0;
    ck_assert_uint_eq(fleet_drain(f, 0, collect, &n), 1);
    ck_assert_uint_eq(fleet_drain(f, 2, collect, &n), 1);
    ck_assert_uint_eq(fleet_drain(f, 1, collect, &n), 0);
    ck_assert_int_eq(n, 2);
    /* a full queue drops, counted */
    for (int i = 0; i < 20; i++)
        fleet_share(f, 1, &b);
    struct fleet_stats st;
    fleet_get_stats(f, &st);
    ck_assert_uint_eq(st.shared, 21);
    ck_assert_uint_eq(st.dropped, 2 * 4);
    ck_assert_uint_eq(st.applied, 2);
    n = 0;
    ck_assert_uint_eq(fleet_drain(f, 2, collect, &n), 16);
    /* no Redis: nothing is claimed fleet-wide, the recorder publishes itself */
    ck_assert(!fleet_dedups(f));
    ck_assert_int_eq(fleet_relay(f, "x", "{}", 2), TW_ELIMIT);
    fleet_free(f);
}
END_TEST

/* Capture workers claim incidents: the first owns it for the dedup window; a single engine
 * (a replay) always owns its own. */
START_TEST(local_claims)
{
    char err[256], owner[40];
    struct fleet_opts o = {.n_slots = 2, .queue_max = 16, .sensor_name = "s", .dedup_window_s = 60};
    struct fleet *f = fleet_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(f);
    const char *key = "10.1.0.23|19bf6fdb-7721-4f3d-867f-53467f6a5db6|tunnel.us.ngrok.com";
    ck_assert(fleet_claim_local(f, key, "w1-1", 1000000, owner));
    ck_assert(!fleet_claim_local(f, key, "w2-1", 2000000, owner));
    ck_assert_str_eq(owner, "w1-1");
    ck_assert(fleet_claim_local(f, "10.1.0.24|r|x", "w2-2", 2000000, owner));
    /* past the window the next worker to raise it owns it */
    ck_assert(fleet_claim_local(f, key, "w2-3", 1000000 + 61000000, owner));
    ck_assert(!fleet_claim_local(f, key, "w1-9", 1000000 + 62000000, owner));
    ck_assert_str_eq(owner, "w2-3");
    fleet_free(f);
    o.n_slots = 1;
    f = fleet_new(&o, err, sizeof(err));
    ck_assert(fleet_claim_local(f, key, "a", 1, owner));
    ck_assert(fleet_claim_local(f, key, "b", 2, owner));
    fleet_free(f);
    ck_assert(fleet_claim_local(NULL, key, "c", 3, owner));
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("fleet");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, binding_parse);
    tcase_add_test(tc, binding_refused);
    tcase_add_test(tc, binding_round_trip);
    tcase_add_test(tc, in_process);
    tcase_add_test(tc, local_claims);
    suite_add_tcase(s, tc);
    return s;
}
