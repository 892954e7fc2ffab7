/* check_web.c - unit tests of tunnelwatch-web's core (src/web/webcore.c, library tw_web):
 * strict JSON walking, record parsing, the bounded window, host aggregation, the JSON
 * endpoints' bodies, sensors' health and the escaping of names that came off the wire. The
 * output buffer is tw_core's JSON writer; its cap is tested in check_json.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static struct web_win *demo_window(void)
{
    struct web_win *w = web_win_new(100, 24 * HOUR);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(web_win_add(w, "1-0", ALERT2, strlen(ALERT2), NOW), 0);
    ck_assert_int_eq(web_win_add(w, "2-0", ALERT1, strlen(ALERT1), NOW), 0);
    ck_assert_int_eq(web_win_add(w, "3-0", FLOW1, strlen(FLOW1), NOW), 0);
    ck_assert_int_eq(web_win_add(w, "4-0", UPDATE1, strlen(UPDATE1), NOW), 0);
    return w;
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
    web_win_stats(w, &st);
    ck_assert_uint_eq(st.duplicates, 2);
    ck_assert_uint_eq(st.bad, 1);
    ck_assert_str_eq(web_win_last_sid(w), "5-0");
    ck_assert_uint_eq(web_win_len(w), 4);
    /* only 2024 records, now is 2026: the window is anchored on the newest record */
    ck_assert_int_eq(web_win_ref_us(w, NOW), 1709294402576400);
    ck_assert_ptr_nonnull(web_win_find(w, "e1"));
    ck_assert_ptr_null(web_win_find(w, "nope"));
    web_win_free(w);

    /* count cap: the oldest go first */
    w = web_win_new(2, 24 * HOUR);
    ck_assert_int_eq(web_win_add(w, NULL, ALERT2, strlen(ALERT2), NOW), 0);
    ck_assert_int_eq(web_win_add(w, NULL, ALERT1, strlen(ALERT1), NOW), 0);
    ck_assert_int_eq(web_win_add(w, NULL, FLOW1, strlen(FLOW1), NOW), 0);
    ck_assert_uint_eq(web_win_len(w), 2);
    ck_assert_ptr_null(web_win_find(w, "f1"));
    web_win_free(w);

    /* age cap: a record more than max_age older than the newest is evicted */
    char late[sizeof(ALERT1) + 8];
    snprintf(late, sizeof(late), "%s", ALERT1);
    memcpy(strstr(late, "12:00:02"), "15:00:02", 8);
    w = web_win_new(10, HOUR);
    ck_assert_int_eq(web_win_add(w, NULL, ALERT1, strlen(ALERT1), NOW), 0);
    ck_assert_int_eq(web_win_add(w, NULL, late, strlen(late), NOW), 0);
    ck_assert_uint_eq(web_win_len(w), 1);
    web_win_free(w);
}
END_TEST

START_TEST(test_hosts)
{
    struct web_win *w = demo_window();
    struct web_timeline tl = {.buckets = 6, .bucket_s = 600};
    struct jw b;
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_hosts(w, NULL, &tl, NOW, &b), TW_OK);
    assert_valid_json(&b);
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
    jw_free(&b);

    /* filters: by sensor, by level, by rule name */
    struct web_filter f = {.sensor = "edge-2"};
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_hosts(w, &f, &tl, NOW, &b), TW_OK);
    ck_assert_ptr_null(strstr(b.buf, "10.1.0.23"));
    ck_assert_ptr_nonnull(strstr(b.buf, "10.1.0.77"));
    jw_free(&b);
    f = (struct web_filter){.level = "high",
                            .rule = "Communication To Ngrok Tunneling Service - Linux"};
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_hosts(w, &f, &tl, NOW, &b), TW_OK);
    ck_assert_ptr_nonnull(strstr(b.buf, "10.1.0.23"));
    ck_assert_ptr_null(strstr(b.buf, "10.1.0.77"));
    jw_free(&b);
    web_win_free(w);
}
END_TEST

START_TEST(test_alerts_and_facets)
{
    struct web_win *w = demo_window();
    struct jw b;
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_alerts(w, NULL, 10, NOW, &b), TW_OK);
    assert_valid_json(&b);
    /* only raised alerts, newest arrival first, with the incident's hit count */
    const char *e1 = strstr(b.buf, "\"id\":\"e1\"");
    const char *f1 = strstr(b.buf, "\"id\":\"f1\"");
    ck_assert_ptr_nonnull(e1);
    ck_assert_ptr_nonnull(f1);
    ck_assert(e1 < f1);
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"e2\""));
    ck_assert_ptr_nonnull(strstr(e1, "\"hits\":3}"));
    jw_free(&b);

    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_alerts(w, NULL, 1, NOW, &b), TW_OK);
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"f1\""));
    jw_free(&b);

    struct web_filter f = {.host = "10.1.0.77"};
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_alerts(w, &f, 10, NOW, &b), TW_OK);
    ck_assert_ptr_null(strstr(b.buf, "\"id\":\"e1\""));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"id\":\"f1\""));
    jw_free(&b);

    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_facets(w, &b), TW_OK);
    assert_valid_json(&b);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"levels\":[\"medium\",\"high\"]"));
    ck_assert_ptr_nonnull(strstr(b.buf, "\"sensors\":[\"edge-2\",\"demo-sensor\"]"));
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
    struct web_win *w = web_win_new(10, HOUR);
    ck_assert_int_eq(web_win_add(w, NULL, EVIL, strlen(EVIL), NOW), 0);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_alerts(w, NULL, 10, NOW, &b), TW_OK);
    ck_assert_ptr_null(strchr(b.buf, '<'));
    ck_assert_ptr_nonnull(
        strstr(b.buf, "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e.ngrok.io"));
    jw_free(&b);
    web_out_init(&b, 1 << 20);
    struct web_timeline tl = {.buckets = 4, .bucket_s = 60};
    ck_assert_int_eq(web_json_hosts(w, NULL, &tl, NOW, &b), TW_OK);
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
    struct jw b;
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_sensors(s, 115, &b), TW_OK);
    assert_valid_json(&b);
    /* a: 2000 packets in 10 s; heartbeat 5 s old: up */
    ck_assert_ptr_nonnull(strstr(b.buf, "{\"name\":\"a\",\"version\":\"0.1.0\",\"up\":true,"
                                        "\"age_s\":5,\"pps\":200.0,\"packets\":3000,"
                                        "\"kernel_drops\":7,"));
    /* b: last heartbeat at 100, 15 s ago: still up; at 131 it is down */
    ck_assert_ptr_nonnull(strstr(b.buf, "\"name\":\"b\",\"version\":\"\",\"up\":true"));
    jw_free(&b);
    web_out_init(&b, 1 << 20);
    ck_assert_int_eq(web_json_sensors(s, 141, &b), TW_OK);
    ck_assert_ptr_nonnull(strstr(b.buf, "\"name\":\"a\",\"version\":\"0.1.0\",\"up\":false"));
    jw_free(&b);
    web_sensors_free(s);
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
    suite_add_tcase(s, tc);
    tc = tcase_create("render");
    tcase_add_test(tc, test_hosts);
    tcase_add_test(tc, test_alerts_and_facets);
    tcase_add_test(tc, test_escaping);
    suite_add_tcase(s, tc);
    tc = tcase_create("sensors");
    tcase_add_test(tc, test_sensors);
    suite_add_tcase(s, tc);
    return s;
}
