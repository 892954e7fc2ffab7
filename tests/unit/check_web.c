/* check_web.c - unit tests of tunnelwatch-web's core (src/web/webcore.c, library tw_web):
 * strict JSON walking, record parsing, the bounded window, host aggregation, the JSON
 * endpoints' bodies, sensors' health and the escaping of names that came off the wire. The
 * output buffer is tw_core's JSON writer; its cap is tested in check_json.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/alert.h"
#include "tw_check.h"
#include "webcore.h"

/* An alert as the sensor publishes it (pcaps/demo.pcap, frame 220), trimmed. */
static const char ALERT1[] =
    "{\"@timestamp\":\"2024-03-01T12:00:02.482330Z\",\"event.kind\":\"alert\","
    "\"event.id\":\"e1\",\"event.action\":\"raised\",\"event.count\":1,"
    "\"rule.id\":\"19bf6fdb\",\"rule.name\":\"Communication To Ngrok Tunneling Service - Linux\","
    "\"rule.level\":\"high\",\"tags\":[\"attack.t1572\",\"attack.t1090\"],"
    "\"source.ip\":\"10.1.0.23\",\"destination.ip\":\"10.1.0.53\",\"destination.port\":53,"
    "\"destination.domain\":\"tunnel.us.ngrok.com\",\"network.protocol\":\"DNS\","
    "\"observer.name\":\"demo-sensor\",\"tunnelwatch.evidence.kind\":\"dns_query\","
    "\"tunnelwatch.evidence.name\":\"tunnel.us.ngrok.com\",\"tunnelwatch.evidence.frame\":220}";
/* The incident grew to 3 hits. */
static const char UPDATE1[] =
    "{\"@timestamp\":\"2024-03-01T12:00:02.576400Z\",\"event.kind\":\"event\","
    "\"event.action\":\"update\",\"event.id\":\"e3\",\"tunnelwatch.incident_id\":\"e1\","
    "\"event.count\":3,\"rule.id\":\"19bf6fdb\","
    "\"rule.name\":\"Communication To Ngrok Tunneling Service - Linux\",\"rule.level\":\"high\","
    "\"source.ip\":\"10.1.0.23\",\"observer.name\":\"demo-sensor\"}";
/* The flagged TLS flow ended: 214753 bytes sent by the internal host. */
static const char FLOW1[] =
    "{\"@timestamp\":\"2024-03-01T12:00:02.576400Z\",\"event.kind\":\"event\","
    "\"event.action\":\"flow_end\",\"event.id\":\"e2\",\"tunnelwatch.incident_id\":\"e1\","
    "\"rule.id\":\"19bf6fdb\",\"rule.name\":\"Communication To Ngrok Tunneling Service - Linux\","
    "\"rule.level\":\"high\",\"source.ip\":\"10.1.0.23\",\"destination.ip\":\"3.134.39.220\","
    "\"destination.domain\":\"tunnel.us.ngrok.com\",\"observer.name\":\"demo-sensor\","
    "\"source.bytes\":214753,\"destination.bytes\":8528}";
/* A second host, another sensor and rule level. */
static const char ALERT2[] =
    "{\"@timestamp\":\"2024-03-01T12:00:01.000000Z\",\"event.kind\":\"alert\","
    "\"event.id\":\"f1\",\"rule.id\":\"zrok\",\"rule.name\":\"zrok\",\"rule.level\":\"medium\","
    "\"source.ip\":\"10.1.0.77\",\"observer.name\":\"edge-2\","
    "\"tunnelwatch.evidence.kind\":\"tls_sni\",\"tunnelwatch.evidence.name\":\"x.zrok.io\"}";
/* A hostile name, as a crafted packet would carry it. */
static const char EVIL[] =
    "{\"@timestamp\":\"2024-03-01T12:00:03Z\",\"event.kind\":\"alert\",\"event.id\":\"x1\","
    "\"rule.id\":\"r\",\"rule.level\":\"high\",\"source.ip\":\"10.6.6.6\","
    "\"tunnelwatch.evidence.name\":\"<script>alert(1)</script>.ngrok.io\","
    "\"observer.name\":\"s\\u003cimg\"}";

static const int64_t T0 = 1709294402482330; /* 2024-03-01T12:00:02.482330Z */
static const int64_t NOW = 1790000000000000;
static const int64_t HOUR = 3600000000;

static int count_cb(void *ctx, const char *key, size_t klen, char type, const char *val,
                    size_t vlen)
{
    (void)key, (void)klen, (void)type, (void)val, (void)vlen;
    (*(int *)ctx)++;
    return 0;
}

static int walk(const char *s)
{
    int n = 0;
    return web_json_walk(s, strlen(s), count_cb, &n);
}

/* Wraps a rendered value in an object so the strict walker can validate it. */
static void assert_valid_json(const struct jw *b)
{
    size_t n = b->len + 8;
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    snprintf(s, n, "{\"v\":%s}", b->buf);
    ck_assert_int_eq(walk(s), TW_OK);
    free(s);
}

START_TEST(test_walk_valid)
{
    int n = 0;
    ck_assert_int_eq(web_json_walk(ALERT1, strlen(ALERT1), count_cb, &n), TW_OK);
    ck_assert_int_eq(n, 18);
    ck_assert_int_eq(walk("{}"), TW_OK);
    ck_assert_int_eq(walk(" {\"a\" : [1, -2.5e3, {\"b\":null}, true] } \n"), TW_OK);
}
END_TEST

struct one {
    char val[64];
    char type;
};

static int one_cb(void *ctx, const char *key, size_t klen, char type, const char *val, size_t vlen)
{
    struct one *o = ctx;
    (void)key, (void)klen;
    ck_assert_uint_lt(vlen, sizeof(o->val));
    memcpy(o->val, val, vlen + 1);
    o->type = type;
    return 0;
}

START_TEST(test_walk_unescape)
{
    struct one o;
    /* "A\u00e9\ud83d\ude00\n" -> A, U+00E9, U+1F600 (surrogate pair), newline */
    const char *s = "{\"k\":\"A\\u00e9\\ud83d\\ude00\\n\"}";
    ck_assert_int_eq(web_json_walk(s, strlen(s), one_cb, &o), TW_OK);
    ck_assert_int_eq(o.type, 's');
    ck_assert_str_eq(o.val, "A\xc3\xa9\xf0\x9f\x98\x80\n");
    /* a lone surrogate becomes U+FFFD */
    s = "{\"k\":\"\\udc00\"}";
    ck_assert_int_eq(web_json_walk(s, strlen(s), one_cb, &o), TW_OK);
    ck_assert_str_eq(o.val, "\xef\xbf\xbd");
    s = "{\"k\":[1,2]}";
    ck_assert_int_eq(web_json_walk(s, strlen(s), one_cb, &o), TW_OK);
    ck_assert_int_eq(o.type, 'a');
    ck_assert_str_eq(o.val, "[1,2]");
}
END_TEST

START_TEST(test_walk_invalid)
{
    ck_assert_int_eq(walk(""), TW_EBAD);
    ck_assert_int_eq(walk("[1]"), TW_EBAD);
    ck_assert_int_eq(walk("{\"a\":1} x"), TW_EBAD);
    ck_assert_int_eq(walk("{\"a\":01}"), TW_EBAD);
    ck_assert_int_eq(walk("{\"a\":1,}"), TW_EBAD);
    ck_assert_int_eq(walk("{\"a\":\"x\ty\"}"), TW_EBAD); /* raw control character */
    ck_assert_int_eq(walk("{\"a\":\"\\x\"}"), TW_EBAD);
    ck_assert_int_eq(walk("{\"a\":tru}"), TW_EBAD);
    ck_assert_int_eq(walk("{a:1}"), TW_EBAD);
    /* nesting past WEB_JSON_DEPTH is refused, not recursed into */
    char deep[256] = "{\"a\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    ck_assert_int_eq(walk(deep), TW_ELIMIT);
}
END_TEST

START_TEST(test_walk_prefixes)
{
    /* every strict prefix of a valid record is refused, never read past */
    size_t n = strlen(ALERT1);
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(i ? i : 1); /* exact size: ASan catches an overread */
        memcpy(p, ALERT1, i);
        int rc = web_json_walk(p, i, NULL, NULL);
        ck_assert_msg(rc == TW_EBAD || rc == TW_ETRUNC, "prefix %zu: %d", i, rc);
        free(p);
    }
}
END_TEST

START_TEST(test_rec_parse)
{
    struct web_rec r;
    ck_assert_int_eq(web_rec_parse(ALERT1, strlen(ALERT1), &r), TW_OK);
    ck_assert_int_eq(r.kind, WEB_ALERT);
    ck_assert_int_eq(r.ts_us, T0);
    ck_assert_str_eq(r.host, "10.1.0.23");
    ck_assert_str_eq(r.ev_name, "tunnel.us.ngrok.com");
    ck_assert_str_eq(r.ev_kind, "dns_query");
    ck_assert_str_eq(r.level, "high");
    ck_assert_str_eq(r.sensor, "demo-sensor");
    ck_assert_str_eq(r.incident_id, "e1");
    ck_assert_int_eq(r.dst_port, 53);
    ck_assert_int_eq(r.count, 1);
    ck_assert_str_eq(r.raw, ALERT1);
    web_rec_clear(&r);
    ck_assert_int_eq(web_rec_parse(FLOW1, strlen(FLOW1), &r), TW_OK);
    ck_assert_int_eq(r.kind, WEB_FLOW_END);
    ck_assert_int_eq(r.src_bytes, 214753);
    ck_assert_int_eq(r.dst_bytes, 8528);
    web_rec_clear(&r);
    ck_assert_int_eq(web_rec_parse(UPDATE1, strlen(UPDATE1), &r), TW_OK);
    ck_assert_int_eq(r.kind, WEB_UPDATE);
    ck_assert_int_eq(r.count, 3);
    web_rec_clear(&r);
    ck_assert_int_eq(web_rec_parse("{\"x\":", 5, &r), TW_EBAD);
    web_rec_clear(&r);
}
END_TEST

START_TEST(test_time)
{
    int64_t us;
    char buf[40];
    ck_assert_int_eq(web_parse_time("2024-03-01T12:00:02.482330Z", &us), TW_OK);
    ck_assert_int_eq(us, T0);
    ck_assert_int_eq(web_parse_time("2024-03-01T13:00:02.48233+01:00", &us), TW_OK);
    ck_assert_int_eq(us, T0);
    ck_assert_int_eq(web_parse_time("2024-03-01 12:00", &us), TW_EBAD);
    ck_assert_int_eq(web_parse_time("2024-13-01T12:00:02Z", &us), TW_EBAD);
    web_fmt_time(T0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2024-03-01T12:00:02.482330Z");
}
END_TEST

static struct web_win *win_new(size_t entries, int64_t age_us)
{
    struct web_win_opts o = {.max_entries = entries,
                             .max_age_us = age_us,
                             .max_skew_us = 300 * 1000000LL,
                             .tl_buckets = 6,
                             .tl_bucket_s = 600};
    struct web_win *w = web_win_new(&o);
    ck_assert_ptr_nonnull(w);
    return w;
}

static struct web_win *demo_window(void)
{
    struct web_win *w = win_new(100, 24 * HOUR);
    ck_assert_int_eq(web_win_add(w, "1-0", ALERT2, strlen(ALERT2), NOW), 0);
    ck_assert_int_eq(web_win_add(w, "2-0", ALERT1, strlen(ALERT1), NOW), 0);
    ck_assert_int_eq(web_win_add(w, "3-0", FLOW1, strlen(FLOW1), NOW), 0);
    ck_assert_int_eq(web_win_add(w, "4-0", UPDATE1, strlen(UPDATE1), NOW), 0);
    return w;
}

/* An alert for host HOST with event.id ID at TIME (RFC 3339), rule RULE. */
static size_t mk_alert(char *buf, size_t n, const char *id, const char *host, const char *time,
                       const char *rule)
{
    int l = snprintf(buf, n,
                     "{\"@timestamp\":\"%s\",\"event.kind\":\"alert\",\"event.action\":\"raised\","
                     "\"event.id\":\"%s\",\"rule.id\":\"%s\",\"rule.name\":\"Rule %s\","
                     "\"rule.level\":\"high\",\"source.ip\":\"%s\",\"observer.name\":\"s1\","
                     "\"tunnelwatch.evidence.name\":\"n-%s.ngrok.io\"}",
                     time, id, rule, rule, host, id);
    ck_assert_int_lt(l, (int)n);
    return (size_t)l;
}

static void render(struct jw *b, struct web_win *w, int which, const struct web_query *q,
                   int64_t now)
{
    web_out_init(b, 1 << 22);
    int rc = which == 'a' ? web_json_alerts(w, q, now, b) : web_json_hosts(w, q, now, b);
    ck_assert_int_eq(rc, TW_OK);
    assert_valid_json(b);
}

START_TEST(test_window_dedup_and_caps)
{
    struct web_win *w = demo_window();
    struct web_win_stats st;
    ck_assert_uint_eq(web_win_len(w), 4);
    /* a re-delivered entry (same or older id) is skipped */
    ck_assert_int_eq(web_win_add(w, "4-0", UPDATE1, strlen(UPDATE1), NOW), 1);
    ck_assert_int_eq(web_win_add(w, "3-5", UPDATE1, strlen(UPDATE1), NOW), 1);
    ck_assert_int_eq(web_win_add(w, "5-0", "not json", 8, NOW), TW_EBAD);
    /* the same event.id under a new stream id (at-least-once delivery): dropped */
    uint64_t v = web_win_version(w);
    ck_assert_int_eq(web_win_add(w, "6-0", ALERT1, strlen(ALERT1), NOW), 1);
    ck_assert_uint_eq(web_win_version(w), v);
    web_win_stats(w, &st);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(st.dup_ids, 1);
    ck_assert_uint_eq(st.bad, 1);
    ck_assert_str_eq(web_win_last_sid(w), "6-0");
    ck_assert_uint_eq(web_win_len(w), 4);
    ck_assert_uint_eq(web_win_alerts(w), 2);
    /* only 2024 records, now is 2026: the window is anchored on the newest record */
    ck_assert_int_eq(web_win_ref_us(w, NOW), 1709294402576400);
    ck_assert_ptr_nonnull(web_win_find(w, "e1"));
    ck_assert_ptr_null(web_win_find(w, "nope"));
    web_win_free(w);

    /* count cap: the oldest go first, and their host with them */
    w = win_new(2, 24 * HOUR);
    ck_assert_int_eq(web_win_add(w, NULL, ALERT2, strlen(ALERT2), NOW), 0);
    ck_assert_int_eq(web_win_add(w, NULL, ALERT1, strlen(ALERT1), NOW), 0);
    ck_assert_uint_eq(web_win_hosts(w), 2);
    ck_assert_int_eq(web_win_add(w, NULL, FLOW1, strlen(FLOW1), NOW), 0);
    ck_assert_uint_eq(web_win_len(w), 2);
    ck_assert_uint_eq(web_win_hosts(w), 1);
    ck_assert_int_eq(web_win_check(w), TW_OK);
    ck_assert_ptr_null(web_win_find(w, "f1"));
    web_win_free(w);

    /* age cap: a record more than max_age older than the newest is evicted */
    char late[sizeof(ALERT1) + 8];
    snprintf(late, sizeof(late), "%s", ALERT1);
    memcpy(strstr(late, "12:00:02"), "15:00:02", 8);
    memcpy(strstr(late, "\"e1\""), "\"e9\"", 4);
    w = win_new(10, HOUR);
    ck_assert_int_eq(web_win_add(w, NULL, ALERT1, strlen(ALERT1), NOW), 0);
    ck_assert_int_eq(web_win_add(w, NULL, late, strlen(late), NOW), 0);
    ck_assert_uint_eq(web_win_len(w), 1);
    web_win_free(w);
}
END_TEST

START_TEST(test_seen_cap)
{
    /* the seen-id set is bounded: past its cap the oldest id is forgotten, and counted */
    struct web_win_opts o = {.max_entries = 100, .seen_max = 3, .max_age_us = 24 * HOUR};
    struct web_win *w = web_win_new(&o);
    char buf[1024], id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "id%d", i);
        size_t n = mk_alert(buf, sizeof(buf), id, "10.0.0.1", "2024-03-01T12:00:00Z", "r");
        ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 0);
    }
    struct web_win_stats st;
    web_win_stats(w, &st);
    ck_assert_uint_eq(st.seen_evicted, 2);
    size_t n = mk_alert(buf, sizeof(buf), "id4", "10.0.0.1", "2024-03-01T12:00:00Z", "r");
    ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 1); /* still remembered */
    n = mk_alert(buf, sizeof(buf), "id0", "10.0.0.1", "2024-03-01T12:00:00Z", "r");
    ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 0); /* forgotten: taken again */
    web_win_free(w);

    /* many ids through a set of 50: exactly the newest 50 are remembered */
    o = (struct web_win_opts){.max_entries = 10, .seen_max = 50, .max_age_us = 24 * HOUR};
    w = web_win_new(&o);
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        n = mk_alert(buf, sizeof(buf), id, "10.0.0.1", "2024-03-01T12:00:00Z", "r");
        ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 0);
    }
    ck_assert_int_eq(web_win_check(w), TW_OK);
    for (int i = 1950; i < 2000; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        n = mk_alert(buf, sizeof(buf), id, "10.0.0.1", "2024-03-01T12:00:00Z", "r");
        ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 1);
    }
    n = mk_alert(buf, sizeof(buf), "m1949", "10.0.0.1", "2024-03-01T12:00:00Z", "r");
    ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 0);
    web_win_stats(w, &st);
    ck_assert_uint_eq(st.seen_evicted, 1951);
    ck_assert_int_eq(web_win_check(w), TW_OK);
    web_win_free(w);
}
END_TEST

START_TEST(test_skew_anchor)
{
    /* live data: a record dated a year ahead neither anchors the window nor evicts others */
    struct web_win *w = win_new(100, HOUR);
    char buf[1024], t[40];
    web_fmt_time(NOW - 60 * 1000000LL, t, sizeof(t));
    size_t n = mk_alert(buf, sizeof(buf), "live1", "10.0.0.1", t, "r");
    ck_assert_int_eq(web_win_add(w, "1-0", buf, n, NOW), 0);
    n = mk_alert(buf, sizeof(buf), "future", "10.0.0.2", "2030-01-01T00:00:00Z", "r");
    ck_assert_int_eq(web_win_add(w, "2-0", buf, n, NOW), 0);
    web_fmt_time(NOW + 5 * 1000000LL, t, sizeof(t));
    n = mk_alert(buf, sizeof(buf), "live2", "10.0.0.3", t, "r");
    ck_assert_int_eq(web_win_add(w, "3-0", buf, n, NOW + 5 * 1000000LL), 0);
    struct web_win_stats st;
    web_win_stats(w, &st);
    ck_assert_uint_eq(st.skewed, 1);
    ck_assert_uint_eq(st.evicted_age, 0);
    ck_assert_int_eq(web_win_check(w), TW_OK);
    ck_assert_uint_eq(web_win_len(w), 3);
    ck_assert_int_eq(web_win_ref_us(w, NOW + 5 * 1000000LL), NOW + 5 * 1000000LL);
    struct jw b;
    render(&b, w, 'a', NULL, NOW + 6 * 1000000LL);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":3"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"live2\""));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"live1\""));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"future\""));
    ck_assert_ptr_nonnull(strstr(strstr(b.buf, "\"id\":\"future\""), "\"skewed\":true"));
    jw_free(&b);
    /* within the skew a record dated ahead is plausible and anchors the window */
    web_fmt_time(NOW + 200 * 1000000LL, t, sizeof(t));
    n = mk_alert(buf, sizeof(buf), "ahead", "10.0.0.4", t, "r");
    ck_assert_int_eq(web_win_add(w, "4-0", buf, n, NOW + 10 * 1000000LL), 0);
    ck_assert_int_eq(web_win_ref_us(w, NOW + 10 * 1000000LL), NOW + 200 * 1000000LL);
    /* the skewed record is filed at its arrival: it ages out with its neighbours */
    web_win_expire(w, NOW + 2 * HOUR);
    ck_assert_uint_eq(web_win_len(w), 0);
    ck_assert_uint_eq(web_win_hosts(w), 0);
    ck_assert_int_eq(web_win_check(w), TW_OK);
    web_win_free(w);
}
END_TEST

START_TEST(test_aggregates_incremental)
{
    /* 50 hosts x 4 alerts through a window of 60: what leaves is taken out of every count */
    struct web_win *w = win_new(60, 24 * HOUR);
    char buf[1024], id[32], host[32];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "a%d", i);
        snprintf(host, sizeof(host), "10.0.%d.%d", i % 50 / 10, i % 50);
        size_t n = mk_alert(buf, sizeof(buf), id, host, "2024-03-01T12:00:00Z", i % 2 ? "x" : "y");
        ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 0);
    }
    ck_assert_uint_eq(web_win_len(w), 60);
    ck_assert_uint_eq(web_win_alerts(w), 60);
    ck_assert_uint_eq(web_win_hosts(w), 50);
    ck_assert_int_eq(web_win_check(w), TW_OK);
    /* the top host (hosts 40..49 have 2 alerts in the window: ids 140..149 and 190..199) */
    struct web_query q = {.limit = 3};
    struct jw b;
    render(&b, w, 'h', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":50"));
    ck_assert_ptr_nonnull(
        strstr(b.buf, "\"hosts\":[{\"host\":\"10.0.4.40\",\"hits\":2,\"alerts\":2"));
    ck_assert_ptr_null(strstr(b.buf, "10.0.1.1"));
    jw_free(&b);
    /* one page of alerts, newest first, and the next page */
    q = (struct web_query){.limit = 2, .offset = 1};
    render(&b, w, 'a', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":60"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"items\":[{\"seq\":199,"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"a197\""));
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"a196\""));
    jw_free(&b);
    /* server-side search: any host of the window, by a substring */
    q = (struct web_query){.f = {.q = "10.0.3.37"}};
    render(&b, w, 'h', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":1,"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"host\":\"10.0.3.37\""));
    jw_free(&b);
    render(&b, w, 'a', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":1,"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"a187\""));
    jw_free(&b);
    /* exact host filter: that host's chain */
    q = (struct web_query){.f = {.host = "10.0.4.45"}};
    render(&b, w, 'a', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":2,"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"a145\""));
    ck_assert(strstr(b.buf, "\"id\":\"a195\"") < strstr(b.buf, "\"id\":\"a145\""));
    jw_free(&b);
    /* by rule name, case-insensitive search */
    q = (struct web_query){.f = {.q = "rule X"}};
    render(&b, w, 'a', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":30,"));
    jw_free(&b);
    /* a replay: nothing ages out with the wall clock, the anchor is the newest record */
    web_win_expire(w, NOW + 48 * HOUR);
    ck_assert_uint_eq(web_win_len(w), 60);
    /* a record a day later: everything else ages out, every aggregate follows */
    size_t n = mk_alert(buf, sizeof(buf), "late", "10.9.9.9", "2024-03-02T12:00:01Z", "z");
    ck_assert_int_eq(web_win_add(w, NULL, buf, n, NOW), 0);
    ck_assert_uint_eq(web_win_len(w), 1);
    ck_assert_uint_eq(web_win_hosts(w), 1);
    ck_assert_uint_eq(web_win_alerts(w), 1);
    ck_assert_int_eq(web_win_check(w), TW_OK);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_facets(w, &b), TW_OK);
    ck_assert_str_eq(b.buf, "{\"rules\":[{\"id\":\"z\",\"name\":\"Rule z\"}],"
                            "\"levels\":[\"high\"],\"sensors\":[\"s1\"]}");
    jw_free(&b);
    web_win_free(w);
}
END_TEST

START_TEST(test_hosts)
{
    struct web_win *w = demo_window();
    struct jw b;
    render(&b, w, 'h', NULL, NOW);
    /* 10.1.0.23 ranks first: one incident grown to 3 hits, 214753 bytes sent */
    const char *h23 = strstr(b.buf, "\"host\":\"10.1.0.23\"");
    const char *h77 = strstr(b.buf, "\"host\":\"10.1.0.77\"");
    ck_assert_ptr_nonnull(h23);
    ck_assert_ptr_nonnull(h77);
    ck_assert(h23 < h77);
    ck_assert_ptr_nonnull(strstr(h23, "\"hits\":3,\"alerts\":1,\"flows\":1,\"suppressed\":0,"
                                      "\"bytes_out\":214753,\"bytes_in\":8528,"
                                      "\"first\":\"2024-03-01T12:00:02.482330Z\","
                                      "\"last\":\"2024-03-01T12:00:02.576400Z\""));
    ck_assert_ptr_nonnull(strstr(h23, "\"names\":[\"tunnel.us.ngrok.com\"]"));
    /* all three hits in the last bucket (the timeline ends at the newest record) */
    ck_assert_ptr_nonnull(strstr(h23, "\"tl\":[0,0,0,0,0,3]"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"replay\":true"));
    /* the timeline of all hosts: 4 hits */
    ck_assert_ptr_nonnull(strstr(b.buf, "\"tl\":[0,0,0,0,0,4]}"));
    jw_free(&b);

    /* filters: by sensor, by level, by rule name */
    struct web_query q = {.f = {.sensor = "edge-2"}};
    render(&b, w, 'h', &q, NOW);
    ck_assert_ptr_null(strstr(b.buf, "10.1.0.23"));
    ck_assert_ptr_nonnull(strstr(b.buf, "10.1.0.77"));
    jw_free(&b);
    q = (struct web_query){
        .f = {.level = "high", .rule = "Communication To Ngrok Tunneling Service - Linux"}};
    render(&b, w, 'h', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "10.1.0.23"));
    ck_assert_ptr_null(strstr(b.buf, "10.1.0.77"));
    jw_free(&b);
    /* sorted by address */
    q = (struct web_query){.sort = WEB_SORT_HOST};
    render(&b, w, 'h', &q, NOW);
    ck_assert(strstr(b.buf, "10.1.0.77") > strstr(b.buf, "10.1.0.23"));
    jw_free(&b);
    web_win_free(w);
}
END_TEST

START_TEST(test_alerts_and_facets)
{
    struct web_win *w = demo_window();
    struct jw b;
    render(&b, w, 'a', NULL, NOW);
    /* only raised alerts, newest arrival first, with the incident's hit count */
    const char *e1 = strstr(b.buf, "\"id\":\"e1\"");
    const char *f1 = strstr(b.buf, "\"id\":\"f1\"");
    ck_assert_ptr_nonnull(e1);
    ck_assert_ptr_nonnull(f1);
    ck_assert(e1 < f1);
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"e2\""));
    ck_assert_ptr_nonnull(strstr(e1, "\"hits\":3}"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"total\":2,"));
    jw_free(&b);

    struct web_query q = {.limit = 1};
    render(&b, w, 'a', &q, NOW);
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"f1\""));
    jw_free(&b);
    /* by hits: e1's incident (3) before f1's (1) whatever the order */
    q = (struct web_query){.limit = 1, .offset = 1, .sort = WEB_SORT_HITS};
    render(&b, w, 'a', &q, NOW);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"f1\""));
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"e1\""));
    jw_free(&b);

    q = (struct web_query){.f = {.host = "10.1.0.77"}};
    render(&b, w, 'a', &q, NOW);
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"e1\""));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"f1\""));
    jw_free(&b);

    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_facets(w, &b), TW_OK);
    assert_valid_json(&b);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"levels\":[\"high\",\"medium\"]"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"sensors\":[\"demo-sensor\",\"edge-2\"]"));
    ck_assert_ptr_nonnull(strstr(b.buf, "{\"id\":\"zrok\",\"name\":\"zrok\"}"));
    jw_free(&b);

    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_record(w, "e2", &b), TW_OK);
    ck_assert_str_eq(b.buf, FLOW1);
    jw_free(&b);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_record(w, "gone", &b), TW_OK);
    ck_assert_str_eq(b.buf, "null");
    jw_free(&b);
    web_win_free(w);
}
END_TEST

START_TEST(test_escaping)
{
    struct jw b;
    web_out_init(&b, 4096);
    jw_quote(&b, (const uint8_t *)"<script>\"&\x01\xff", 12);
    ck_assert_str_eq(b.buf, "\"\\u003cscript\\u003e\\\"\\u0026\\u0001\\ufffd\"");
    jw_free(&b);
    web_out_init(&b, 4096);
    web_html_escape(&b, "<b a='1'>&\"", 11);
    ck_assert_str_eq(b.buf, "&lt;b a=&#39;1&#39;&gt;&amp;&quot;");
    jw_free(&b);

    /* a hostname carrying markup renders as text in every output */
    struct web_win *w = win_new(10, HOUR);
    ck_assert_int_eq(web_win_add(w, NULL, EVIL, strlen(EVIL), NOW), 0);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_alerts(w, NULL, NOW, &b), TW_OK);
    ck_assert_ptr_null(strchr(b.buf, '<'));
    ck_assert_ptr_nonnull(
        strstr(b.buf, "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e.ngrok.io"));
    jw_free(&b);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_hosts(w, NULL, NOW, &b), TW_OK);
    ck_assert_ptr_null(strchr(b.buf, '<'));
    jw_free(&b);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_facets(w, &b), TW_OK);
    ck_assert_ptr_null(strchr(b.buf, '<'));
    jw_free(&b);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_html_record(w, "x1", &b), TW_OK);
    ck_assert_ptr_nonnull(strstr(b.buf, "&lt;script&gt;alert(1)&lt;/script&gt;.ngrok.io"));
    ck_assert_ptr_nonnull(strstr(b.buf, "s&lt;img")); /* decoded \u003c, then escaped */
    ck_assert_ptr_null(strstr(b.buf, "<script"));
    ck_assert_ptr_null(strstr(b.buf, "<img"));
    jw_free(&b);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_html_record(w, "missing", &b), TW_EBAD);
    jw_free(&b);
    web_win_free(w);
}
END_TEST

START_TEST(test_sensors)
{
    struct web_sensors *s = web_sensors_new(2, 30, 3600);
    const char *k[] = {"packets", "heartbeat_unix_s", "alerts_queued", "version", "kernel_drops"};
    const char *v1[] = {"1000", "100", "5", "0.1.0", "7"};
    const char *v2[] = {"3000", "110", "0", "0.1.0", "7"};
    ck_assert_int_eq(web_sensors_update(s, "a", k, v1, 5, 100), TW_OK);
    ck_assert_int_eq(web_sensors_update(s, "a", k, v2, 5, 110), TW_OK);
    ck_assert_int_eq(web_sensors_update(s, "b", k, v1, 3, 110), TW_OK);
    ck_assert_int_eq(web_sensors_update(s, "c", k, v1, 3, 110), TW_ELIMIT);
    ck_assert_uint_eq(web_sensors_refused(s), 1);
    struct jw b;
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_sensors(s, 115, &b), TW_OK);
    assert_valid_json(&b);
    /* a: 2000 packets in 10 s; heartbeat 5 s old: up */
    ck_assert_ptr_nonnull(strstr(b.buf, "{\"name\":\"a\",\"version\":\"0.1.0\",\"up\":true,"
                                        "\"state\":\"up\",\"hb_s\":110,\"age_s\":5,"
                                        "\"pps\":200.0,\"packets\":3000,\"kernel_drops\":7,"));
    /* b: last heartbeat at 100, 15 s ago: still up; at 131 it is down */
    ck_assert_ptr_nonnull(strstr(b.buf, "\"name\":\"b\",\"version\":\"\",\"up\":true"));
    jw_free(&b);
    uint64_t v = web_sensors_version(s, 115);
    ck_assert_uint_eq(web_sensors_version(s, 116), v);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_sensors(s, 141, &b), TW_OK);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"name\":\"a\",\"version\":\"0.1.0\",\"up\":false"));
    jw_free(&b);
    /* the state changed with no new heartbeat: the version says so */
    ck_assert_uint_ne(web_sensors_version(s, 141), v);
    /* a hash whose heartbeat is older than forget_s is not shown, and takes its row away */
    const char *v3[] = {"3000", "50", "0", "0.1.0", "7"};
    ck_assert_int_eq(web_sensors_update(s, "b", k, v3, 2, 3700), TW_OK);
    ck_assert_int_eq(web_sensors_update(s, "old", k, v3, 2, 3700), TW_OK);
    ck_assert_uint_eq(web_sensors_len(s), 1);
    /* stale sensors leave after forget_s, which makes room for a new one */
    ck_assert_uint_eq(web_sensors_expire(s, 110 + 3601), 1);
    ck_assert_uint_eq(web_sensors_len(s), 0);
    web_sensors_free(s);
}
END_TEST

START_TEST(test_sensors_identity)
{
    struct web_sensors *s = web_sensors_new(4, 30, 600);
    /* a 200-character name is one sensor however often it is read */
    char name[201];
    memset(name, 'n', 200);
    name[200] = '\0';
    const char *k[] = {"packets", "heartbeat_unix_s"};
    const char *v[] = {"10", "1000"};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(web_sensors_update(s, name, k, v, 2, 1000 + i), TW_OK);
    /* the same 199 first characters: another sensor, not a collision */
    name[199] = 'm';
    ck_assert_int_eq(web_sensors_update(s, name, k, v, 2, 1000), TW_OK);
    ck_assert_uint_eq(web_sensors_len(s), 2);
    /* a hash without heartbeat_unix_s is unknown, never up */
    const char *k2[] = {"packets"};
    const char *v2[] = {"5"};
    ck_assert_int_eq(web_sensors_update(s, "nots", k2, v2, 1, 1000), TW_OK);
    struct jw b;
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_sensors(s, 1001, &b), TW_OK);
    assert_valid_json(&b);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"name\":\"nots\",\"version\":\"\",\"up\":null,"
                                        "\"state\":\"unknown\""));
    jw_free(&b);
    /* a name past WEB_SENSOR_NAME_MAX is refused, not truncated */
    char *huge = malloc(WEB_SENSOR_NAME_MAX + 2);
    memset(huge, 'h', WEB_SENSOR_NAME_MAX + 1);
    huge[WEB_SENSOR_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(web_sensors_update(s, huge, k, v, 2, 1000), TW_ELIMIT);
    free(huge);
    ck_assert_uint_eq(web_sensors_len(s), 3);
    /* the unknown one stays while its hash is read; it goes forget_s after the last read */
    ck_assert_uint_eq(web_sensors_expire(s, 1500), 0);
    ck_assert_uint_eq(web_sensors_expire(s, 1611), 3);
    web_sensors_free(s);
}
END_TEST

/* A sensor-health record shows on its sensor's row; other records and malformed ones do not. */
START_TEST(test_sensors_pressure)
{
    struct web_sensors *s = web_sensors_new(4, 30, 600);
    const char *k[] = {"packets", "heartbeat_unix_s"};
    const char *v[] = {"10", "1000"};
    ck_assert_int_eq(web_sensors_update(s, "edge-1", k, v, 2, 1000), TW_OK);
    const char *rec =
        "{\"@timestamp\":\"2026-12-05T09:00:00.000000Z\",\"event.kind\":\"event\","
        "\"event.action\":\"resource_pressure\",\"observer.name\":\"edge-1\","
        "\"tunnelwatch.resource.name\":\"reassembly\",\"tunnelwatch.resource.refused\":5394,"
        "\"tunnelwatch.resource.reclaimed\":46414,\"tunnelwatch.resource.top_sources\":"
        "[{\"ip\":\"10.9.9.9\",\"count\":51808,\"share_pct\":100}]}";
    struct web_pressure p;
    ck_assert_int_eq(web_pressure_parse(rec, strlen(rec), &p), TW_OK);
    ck_assert_str_eq(p.sensor, "edge-1");
    ck_assert_int_eq(p.refused, 5394);
    ck_assert_int_eq(web_sensors_pressure(s, &p, 1005), TW_OK);
    uint64_t ver = web_sensors_version(s, 1005);
    struct jw b;
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_sensors(s, 1010, &b), TW_OK);
    assert_valid_json(&b);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"pressure\":\"reassembly: 5394 refused, 46414 "
                                        "reclaimed; top 10.9.9.9 (100%)\",\"pressure_age_s\":5"));
    jw_free(&b);
    /* a sensor without a row yet, an alert, a malformed record: nothing changes */
    snprintf(p.sensor, sizeof(p.sensor), "edge-2");
    ck_assert_int_eq(web_sensors_pressure(s, &p, 1006), TW_ELIMIT);
    const char *alert = "{\"event.action\":\"raised\",\"observer.name\":\"edge-1\"}";
    ck_assert_int_eq(web_pressure_parse(alert, strlen(alert), &p), TW_EBAD);
    ck_assert_int_eq(web_pressure_parse(rec, strlen(rec) - 1, &p), TW_EBAD);
    ck_assert_uint_eq(web_sensors_version(s, 1005), ver);
    web_sensors_free(s);
}
END_TEST

/* Incident ids: what the sensor makes (alert_ids_next) passes; anything that could leave the
 * evidence key prefix or the evidence directory does not. */
START_TEST(test_evidence_id)
{
    struct alert_ids ids;
    char id[40];
    alert_ids_init(&ids);
    for (int i = 0; i < 3; i++) {
        alert_ids_next(&ids, id);
        ck_assert_msg(web_evidence_id_ok(id, strlen(id)), "sensor id %s refused", id);
    }
    static const char *const good[] = {"6566d9feab2fd553-0000000000000001", "0", "abc-def",
                                       "0123456789abcdef0123456789abcdef0123456789abcdef"
                                       "0123456789abcdef"};
    for (size_t i = 0; i < TW_ARRAY_LEN(good); i++)
        ck_assert_msg(web_evidence_id_ok(good[i], strlen(good[i])), "%s refused", good[i]);
    static const char *const bad[] = {
        "",     "-abc",   "..",
        "../x", "%2e%2e", "a*",
        "*",    "ABCDEF", "a b",
        "a\n",  "a/b",    "a.b",
        "a:b",  "a{b}",   "a\\b",
        "a?",   "a[0]",   "0x1f",
        "é",    "a\r",    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++)
        ck_assert_msg(!web_evidence_id_ok(bad[i], strlen(bad[i])), "'%s' accepted", bad[i]);
    /* the length given is what counts: a NUL inside is refused, not a shorter id */
    ck_assert(!web_evidence_id_ok("ab\0cd", 5));
    ck_assert(web_evidence_id_ok("abcd.pcap", 4));
}
END_TEST

/* A pcap in memory: global header (magic in the given byte order) and records of n bytes. */
static size_t make_pcap(uint8_t *b, bool le, uint32_t magic, const uint32_t *lens, size_t nrec)
{
    size_t o = 0;
    uint32_t hdr[6] = {magic, 0x00040002u, 0, 0, 65535, 1};
    uint32_t vals[4];
    for (size_t i = 0; i <= nrec; i++) {
        const uint32_t *f = i == 0 ? hdr : vals;
        size_t nf = i == 0 ? 6 : 4;
        if (i > 0) {
            vals[0] = (uint32_t)i;
            vals[1] = 0;
            vals[2] = vals[3] = lens[i - 1];
        }
        for (size_t k = 0; k < nf; k++) {
            uint32_t v = f[k];
            if (i == 0 && k == 1) /* two 16-bit fields: major 2, minor 4 */
                v = le ? 0x00040002u : 0x00020004u;
            for (int byte = 0; byte < 4; byte++)
                b[o++] = (uint8_t)(le ? v >> (8 * byte) : v >> (8 * (3 - byte)));
        }
        if (i > 0) {
            memset(b + o, 0xab, lens[i - 1]);
            o += lens[i - 1];
        }
    }
    return o;
}

START_TEST(test_pcap_whole)
{
    static const uint32_t lens[] = {60, 0, 1514};
    uint8_t b[24 + 3 * 16 + 60 + 1514];
    for (int v = 0; v < 4; v++) {
        bool le = v & 1;
        uint32_t magic = v & 2 ? 0xa1b23c4du : 0xa1b2c3d4u;
        size_t n = make_pcap(b, le, magic, lens, 3);
        ck_assert_uint_eq(n, sizeof(b));
        ck_assert_uint_eq(web_pcap_whole(b, n), n);
        /* every prefix: cut back to the last whole record, never past what is there */
        size_t ends[] = {24, 24 + 16 + 60, 24 + 16 + 60 + 16, n};
        for (size_t len = 0; len <= n; len++) {
            size_t want = 0;
            for (size_t e = 0; e < TW_ARRAY_LEN(ends); e++)
                if (ends[e] <= len)
                    want = ends[e];
            ck_assert_uint_eq(web_pcap_whole(b, len), want);
        }
    }
    /* not a pcap: pcapng, text, a swapped half magic */
    static const uint8_t ng[28] = {0x0a, 0x0d, 0x0d, 0x0a};
    ck_assert_uint_eq(web_pcap_whole(ng, sizeof(ng)), 0);
    ck_assert_uint_eq(web_pcap_whole((const uint8_t *)"GIF89a, not a capture at all", 28), 0);
    /* a record claiming 4 GiB: the file stops before it */
    size_t n = make_pcap(b, true, 0xa1b2c3d4u, lens, 1);
    b[24 + 8] = b[24 + 9] = b[24 + 10] = b[24 + 11] = 0xff;
    ck_assert_uint_eq(web_pcap_whole(b, n), 24);
    /* a real capture is whole */
    size_t dn;
    uint8_t *demo = tw_read_file(tw_src_path("pcaps/demo.pcap"), &dn);
    ck_assert_ptr_nonnull(demo);
    ck_assert_uint_eq(web_pcap_whole(demo, dn), dn);
    ck_assert_uint_eq(web_pcap_whole(demo, dn - 1) < dn - 1, true);
    free(demo);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("json_walk");
    tcase_add_test(tc, test_walk_valid);
    tcase_add_test(tc, test_walk_unescape);
    tcase_add_test(tc, test_walk_invalid);
    tcase_add_test(tc, test_walk_prefixes);
    suite_add_tcase(s, tc);
    tc = tcase_create("records");
    tcase_add_test(tc, test_rec_parse);
    tcase_add_test(tc, test_time);
    suite_add_tcase(s, tc);
    tc = tcase_create("window");
    tcase_add_test(tc, test_window_dedup_and_caps);
    tcase_add_test(tc, test_seen_cap);
    tcase_add_test(tc, test_skew_anchor);
    tcase_add_test(tc, test_aggregates_incremental);
    suite_add_tcase(s, tc);
    tc = tcase_create("render");
    tcase_add_test(tc, test_hosts);
    tcase_add_test(tc, test_alerts_and_facets);
    tcase_add_test(tc, test_escaping);
    suite_add_tcase(s, tc);
    tc = tcase_create("sensors");
    tcase_add_test(tc, test_sensors);
    tcase_add_test(tc, test_sensors_identity);
    tcase_add_test(tc, test_sensors_pressure);
    suite_add_tcase(s, tc);
    tc = tcase_create("evidence");
    tcase_add_test(tc, test_evidence_id);
    tcase_add_test(tc, test_pcap_whole);
    suite_add_tcase(s, tc);
    return s;
}
