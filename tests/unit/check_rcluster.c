/* check_rcluster.c - Redis Cluster helpers: key slots against the values the Redis Cluster
 * specification and a real node (CLUSTER KEYSLOT) give, hash tags, the slot map of a
 * CLUSTER SLOTS reply (built with hiredis' own reply reader) and MOVED/ASK parsing. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/rcluster.h"
#include "tunnelwatch/tw.h"
#include "tw_check.h"

START_TEST(key_slots)
{
    /* CRC16/XMODEM("123456789") = 0x31C3 (the specification's check value) */
    ck_assert_uint_eq(rc_key_slot("123456789", 9), 0x31C3 % 16384);
    ck_assert_uint_eq(rc_key_slot("foo", 3), 12182);                /* CLUSTER KEYSLOT foo */
    ck_assert_uint_eq(rc_key_slot("tunnelwatch:alerts", 18), 9231); /* CLUSTER KEYSLOT */
    /* hash tags: the part in the first {...}, unless empty */
    ck_assert_uint_eq(rc_key_slot("{user1000}.following", 20),
                      rc_key_slot("{user1000}.followers", 20));
    ck_assert_uint_eq(rc_key_slot("{user1000}.following", 20), rc_key_slot("user1000", 8));
    ck_assert_uint_eq(rc_key_slot("foo{}{bar}", 10), rc_key_slot("foo{}{bar}", 10));
    ck_assert_uint_ne(rc_key_slot("foo{}{bar}", 10), rc_key_slot("bar", 3));
    ck_assert_uint_eq(rc_key_slot("foo{{bar}}zap", 13), rc_key_slot("{bar", 4));
    ck_assert_uint_eq(rc_key_slot("foo{bar}{zap}", 13), rc_key_slot("bar", 3));
    ck_assert_uint_eq(rc_key_slot("{", 1), rc_key_slot("{", 1));
}
END_TEST

/* A reply as a server sends it, parsed by hiredis' reader. */
static redisReply *parse(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    void *r = NULL;
    ck_assert_int_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    redisReaderFree(rd);
    ck_assert_ptr_nonnull(r);
    return r;
}

START_TEST(slot_map)
{
    redisReply *r = parse("*2\r\n"
                          "*4\r\n:0\r\n:8191\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
                          "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$3\r\nid4\r\n"
                          "*3\r\n:8192\r\n:16383\r\n*2\r\n$3\r\n::1\r\n:7002\r\n");
    struct rc_map *m = calloc(1, sizeof(*m));
    ck_assert_int_eq(rc_map_from_reply(r, m), TW_OK);
    ck_assert_uint_eq(m->n_ranges, 2);
    ck_assert_uint_eq(m->n_nodes, 2); /* masters only: the replica at 7004 is not a target */
    const struct hostport *o = rc_owner(m, 9450);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(o->host, "::1");
    ck_assert_int_eq(o->port, 7002);
    ck_assert_int_eq(rc_owner(m, 0)->port, 7001);
    ck_assert_int_eq(rc_owner(m, 8191)->port, 7001);
    freeReplyObject(r);
    /* a slot nobody serves; replies of another shape */
    r = parse("*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\na\r\n:1\r\n");
    ck_assert_int_eq(rc_map_from_reply(r, m), TW_OK);
    ck_assert_ptr_null(rc_owner(m, 11));
    freeReplyObject(r);
    const char *bad[] = {"-ERR This instance has cluster support disabled\r\n",
                         "*1\r\n*3\r\n:10\r\n:0\r\n*2\r\n$1\r\na\r\n:1\r\n",
                         "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n",
                         "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n",
                         "*1\r\n*2\r\n:0\r\n:1\r\n",
                         "*1\r\n:5\r\n"};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++) {
        r = parse(bad[i]);
        ck_assert_msg(rc_map_from_reply(r, m) == TW_EBAD, "case %zu", i);
        freeReplyObject(r);
    }
    ck_assert_int_eq(rc_map_from_reply(NULL, m), TW_EBAD);
    free(m);
}
END_TEST

START_TEST(redirects)
{
    bool ask;
    uint16_t slot;
    struct hostport to;
    ck_assert(rc_redirect("MOVED 3999 127.0.0.1:6381", &ask, &slot, &to));
    ck_assert(!ask);
    ck_assert_uint_eq(slot, 3999);
    ck_assert_str_eq(to.host, "127.0.0.1");
    ck_assert_int_eq(to.port, 6381);
    ck_assert(rc_redirect("ASK 9450 ::1:7002", &ask, &slot, &to));
    ck_assert(ask);
    ck_assert_str_eq(to.host, "::1");
    const char *bad[] = {"MOVED",           "MOVED 3999",      "MOVED 16384 a:1",
                         "MOVED x a:1",     "MOVED 1 a:",      "MOVED 1 :1",
                         "MOVED 1 a:70000", "ERR MOVED 1 a:1", "ASK 1 a:1x"};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++)
        ck_assert_msg(!rc_redirect(bad[i], &ask, &slot, &to), "%s", bad[i]);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("rcluster");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, key_slots);
    tcase_add_test(tc, slot_map);
    tcase_add_test(tc, redirects);
    suite_add_tcase(s, tc);
    return s;
}
