/* check_engine.c - the packet path's decisions, fed with hand-built packets:
 * attribution (client, inbound, resolver, external, dns_answer), resolver learning at the
 * third answer, transit hits as events (alert.external), and the flow flagged through a DNS
 * answer. Packets are raw IPv4 (LINKTYPE_RAW); records are read back from the alerts file. */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/attrib.h"
#include "tunnelwatch/engine.h"
#include "tw_check.h"

static struct tw_addr ip(const char *s)
{
    struct tw_addr a;
    ck_assert_int_eq(tw_addr_parse(s, &a), TW_OK);
    return a;
}

/* ---- attrib_decide and resolver learning, directly ---- */

static struct attrib *attrib_with_defaults(struct tw_cfg *cfg)
{
    cfg_defaults(cfg);
    struct attrib *a = attrib_new(64);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(attrib_configure(a, cfg), TW_OK);
    return a;
}

START_TEST(decide_branches)
{
    struct tw_cfg cfg;
    struct attrib *a = attrib_with_defaults(&cfg);
    struct tw_addr in1 = ip("10.1.0.23"), in2 = ip("192.168.1.5"), ext = ip("3.134.39.220"),
                   ext2 = ip("8.8.8.8");
    struct attrib_verdict v = attrib_decide(a, &in1, &ext, false);
    ck_assert_str_eq(v.attribution, "client");
    ck_assert(tw_addr_eq(&v.host, &in1));
    v = attrib_decide(a, &ext, &in2, false);
    ck_assert_str_eq(v.attribution, "inbound");
    ck_assert(tw_addr_eq(&v.host, &in2));
    v = attrib_decide(a, &ext, &ext2, false);
    ck_assert_str_eq(v.attribution, "external");
    ck_assert(tw_addr_eq(&v.host, &ext));
    v = attrib_decide(a, &in1, &in2, true); /* a query between internal hosts: the asker */
    ck_assert_str_eq(v.attribution, "client");
    ck_assert(tw_addr_eq(&v.host, &in1));
    attrib_free(a);
    cfg_free(&cfg);
}
END_TEST

START_TEST(resolver_learned_at_third_answer)
{
    struct tw_cfg cfg;
    struct attrib *a = attrib_with_defaults(&cfg);
    struct tw_addr res = ip("10.1.0.53"), ext = ip("3.134.39.220");
    for (int i = 0; i < 2; i++) {
        attrib_note_dns_server(a, &res);
        ck_assert(!attrib_is_resolver(a, &res));
        ck_assert_str_eq(attrib_decide(a, &res, &ext, true).attribution, "client");
    }
    attrib_note_dns_server(a, &res);
    ck_assert(attrib_is_resolver(a, &res));
    ck_assert_str_eq(attrib_decide(a, &res, &ext, true).attribution, "resolver");
    /* only for DNS queries: the resolver's own TLS flow is still its own */
    ck_assert_str_eq(attrib_decide(a, &res, &ext, false).attribution, "client");
    /* an external host answering DNS never becomes a resolver */
    for (int i = 0; i < 5; i++)
        attrib_note_dns_server(a, &ext);
    ck_assert(!attrib_is_resolver(a, &ext));
    attrib_free(a);
    cfg_free(&cfg);
}
END_TEST

START_TEST(configured_resolver_and_reload)
{
    struct tw_cfg cfg;
    struct attrib *a = attrib_with_defaults(&cfg);
    struct tw_addr res = ip("10.9.9.9"), pub = ip("100.64.0.7"), ext = ip("3.134.39.220");
    ck_assert_int_eq(cfg_set(&cfg, "networks.resolvers=10.9.9.9", stderr), 0);
    ck_assert_int_eq(cfg_set(&cfg, "networks.internal=100.64.0.0/10", stderr), 0);
    ck_assert_int_eq(attrib_configure(a, &cfg), TW_OK);
    ck_assert_str_eq(attrib_decide(a, &res, &ext, true).attribution, "resolver");
    ck_assert(attrib_is_internal(a, &pub));
    ck_assert(!attrib_is_internal(a, &res)); /* 10/8 no longer internal after the reload */
    ck_assert_str_eq(attrib_decide(a, &pub, &ext, false).attribution, "client");
    attrib_free(a);
    cfg_free(&cfg);
}
END_TEST

/* ---- the engine on hand-built packets ---- */

static size_t dns_name(uint8_t *b, const char *name)
{
    size_t o = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        b[o++] = (uint8_t)l;
        memcpy(b + o, name, l);
        o += l;
        name += l + (dot ? 1 : 0);
    }
    b[o++] = 0;
    return o;
}

/* A DNS message: a query for name, or (answer_ip) its response with one A record. */
static size_t dns_msg(uint8_t *b, const char *name, const char *answer_ip)
{
    memset(b, 0, 12);
    b[0] = 0x12;
    b[1] = 0x34;
    b[2] = answer_ip ? 0x81 : 0x01;
    b[3] = answer_ip ? 0x80 : 0x00;
    b[5] = 1;
    b[7] = answer_ip ? 1 : 0;
    size_t o = 12 + dns_name(b + 12, name);
    memcpy(b + o, "\x00\x01\x00\x01", 4);
    o += 4;
    if (answer_ip) {
        struct tw_addr a = ip(answer_ip);
        memcpy(b + o, "\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04", 12);
        memcpy(b + o + 12, a.a, 4);
        o += 16;
    }
    return o;
}

/* Raw IPv4 + UDP or TCP (flags) carrying payload. */
static size_t ip4(uint8_t *b, const char *src, const char *dst, uint8_t proto, uint16_t sport,
                  uint16_t dport, uint8_t flags, const uint8_t *pl, size_t n)
{
    struct tw_addr s = ip(src), d = ip(dst);
    size_t l4 = proto == 17 ? 8 : 20, tot = 20 + l4 + n;
    memset(b, 0, 20 + l4);
    b[0] = 0x45;
    b[2] = (uint8_t)(tot >> 8);
    b[3] = (uint8_t)tot;
    b[8] = 64;
    b[9] = proto;
    memcpy(b + 12, s.a, 4);
    memcpy(b + 16, d.a, 4);
    uint8_t *t = b + 20;
    t[0] = (uint8_t)(sport >> 8);
    t[1] = (uint8_t)sport;
    t[2] = (uint8_t)(dport >> 8);
    t[3] = (uint8_t)dport;
    if (proto == 17) {
        t[4] = (uint8_t)((8 + n) >> 8);
        t[5] = (uint8_t)(8 + n);
    } else {
        t[7] = 1; /* seq 1 */
        t[12] = 0x50;
        t[13] = flags;
        t[15] = 0xff;
    }
    if (n)
        memcpy(b + 20 + l4, pl, n);
    return tot;
}

struct run {
    struct tw_cfg cfg;
    struct ruleset *rs;
    struct engine *e;
    FILE *alerts;
    char *buf;
    size_t len;
    int sec;
};

static void run_start(struct run *r, const char *set)
{
    memset(r, 0, sizeof(*r));
    cfg_defaults(&r->cfg);
    if (set)
        ck_assert_int_eq(cfg_set(&r->cfg, set, stderr), 0);
    r->rs = ruleset_new(RULE_POLICY_ERROR);
    ck_assert_int_ge(ruleset_load(r->rs, tw_src_path("conf/rules"), stderr), 1);
    ck_assert_int_eq(ruleset_build(r->rs), TW_OK);
    r->alerts = open_memstream(&r->buf, &r->len);
    struct engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.cfg = &r->cfg;
    eo.alerts_out = r->alerts;
    eo.verbosity = -1;
    char err[256];
    r->e = engine_new(&eo, r->rs, err, sizeof(err));
    ck_assert_msg(r->e != NULL, "%s", err);
    engine_begin_input(r->e, "hand-built", DLT_RAW, false);
    r->sec = 1700000000;
}

static void feed(struct run *r, const uint8_t *pkt, size_t n)
{
    struct pcap_pkthdr h = {{r->sec++, 0}, (bpf_u_int32)n, (bpf_u_int32)n};
    engine_packet(r->e, &h, pkt);
}

static void run_end(struct run *r)
{
    engine_finish(r->e);
    fflush(r->alerts);
}

static int count(const struct run *r, const char *needle)
{
    int n = 0;
    for (const char *p = r->buf; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void run_free(struct run *r)
{
    engine_free(r->e);
    fclose(r->alerts);
    free(r->buf);
    ruleset_free(r->rs);
    cfg_free(&r->cfg);
}

static void query(struct run *r, const char *src, const char *dst, const char *name)
{
    uint8_t m[512], pkt[600];
    size_t n = dns_msg(m, name, NULL);
    feed(r, pkt, ip4(pkt, src, dst, 17, 40000, 53, 0, m, n));
}

START_TEST(transit_is_an_event)
{
    struct run r;
    run_start(&r, NULL);
    query(&r, "8.8.4.4", "1.1.1.1", "tunnel.us.ngrok.com");
    run_end(&r);
    ck_assert_int_eq(count(&r, "\"event.action\":\"external\""), 1);
    ck_assert_int_eq(count(&r, "\"event.kind\":\"alert\""), 0);
    ck_assert_int_eq(engine_alerts(r.e), 0);
    static struct tw_stats st;
    engine_stats(r.e, &st);
    ck_assert_uint_eq(stats_get(&st, "external_events"), 1);
    run_free(&r);

    run_start(&r, "alert.external=alert");
    query(&r, "8.8.4.4", "1.1.1.1", "tunnel.us.ngrok.com");
    run_end(&r);
    ck_assert_int_eq(count(&r, "\"event.kind\":\"alert\""), 1);
    ck_assert_int_eq(count(&r, "\"tunnelwatch.attribution\":\"external\""), 1);
    run_free(&r);
}
END_TEST

START_TEST(resolver_query_after_three_answers)
{
    struct run r;
    run_start(&r, NULL);
    uint8_t m[512], pkt[600];
    for (int i = 0; i < 3; i++) { /* 10.1.0.53 serves 3 answers to 10.1.0.7 */
        size_t n = dns_msg(m, "example.org", "93.184.216.34");
        feed(&r, pkt, ip4(pkt, "10.1.0.53", "10.1.0.7", 17, 53, (uint16_t)(41000 + i), 0, m, n));
    }
    query(&r, "10.1.0.53", "8.8.8.8", "tunnel.us.ngrok.com");
    run_end(&r);
    ck_assert_int_eq(count(&r, "\"tunnelwatch.attribution\":\"resolver\""), 1);
    run_free(&r);

    run_start(&r, NULL); /* two answers are not enough: the host is blamed as a client */
    for (int i = 0; i < 2; i++) {
        size_t n = dns_msg(m, "example.org", "93.184.216.34");
        feed(&r, pkt, ip4(pkt, "10.1.0.53", "10.1.0.7", 17, 53, (uint16_t)(41000 + i), 0, m, n));
    }
    query(&r, "10.1.0.53", "8.8.8.8", "tunnel.us.ngrok.com");
    run_end(&r);
    ck_assert_int_eq(count(&r, "\"tunnelwatch.attribution\":\"client\""), 1);
    run_free(&r);
}
END_TEST

START_TEST(flow_to_answered_address)
{
    struct run r;
    run_start(&r, NULL);
    uint8_t m[512], pkt[600];
    size_t n = dns_msg(m, "tunnel.us.ngrok.com", "3.134.39.220");
    feed(&r, pkt, ip4(pkt, "10.1.0.53", "10.1.0.23", 17, 53, 40000, 0, m, n));
    /* an SSH-like flow by IP: no name of its own */
    feed(&r, pkt, ip4(pkt, "10.1.0.23", "3.134.39.220", 6, 50000, 22, 0x02, NULL, 0));
    run_end(&r);
    ck_assert_int_eq(count(&r, "\"tunnelwatch.attribution\":\"dns_answer\""), 2); /* + flow end */
    ck_assert_int_eq(count(&r, "\"event.kind\":\"alert\""), 1);
    ck_assert_int_eq(count(&r, "\"event.action\":\"flow_end\""), 1);
    ck_assert_int_eq(count(&r, "\"source.ip\":\"10.1.0.23\""), 2);
    run_free(&r);
}
END_TEST

/* TCP with its sequence number (ip4 sends seq 1). */
static size_t tcp4(uint8_t *b, const char *src, const char *dst, uint16_t sport, uint16_t dport,
                   uint8_t flags, uint32_t seq, const char *pl)
{
    size_t n = pl ? strlen(pl) : 0;
    size_t tot = ip4(b, src, dst, 6, sport, dport, flags, (const uint8_t *)pl, n);
    b[24] = (uint8_t)(seq >> 24);
    b[25] = (uint8_t)(seq >> 16);
    b[26] = (uint8_t)(seq >> 8);
    b[27] = (uint8_t)seq;
    return tot;
}

static uint64_t stat(struct run *r, const char *key)
{
    static struct tw_stats st;
    memset(&st, 0, sizeof(st)); /* stats_put appends */
    engine_stats(r->e, &st);
    return stats_get(&st, key);
}

/* A flow gives its per-flow extension back once settled (a DNS flow after its first message,
 * an HTTP flow between requests) and gets it back as it was: a later query on the DNS flow
 * and a later request on the HTTP connection are still read, a retransmitted request is
 * still known as old, and a flagged flow keeps its extension to its end record. */
START_TEST(settled_flows)
{
    struct run r;
    run_start(&r, NULL);
    uint8_t m[512], pkt[600];
    size_t n = dns_msg(m, "a.example.org", NULL);
    feed(&r, pkt, ip4(pkt, "10.1.0.7", "10.1.0.53", 17, 40000, 53, 0, m, n));
    ck_assert_uint_eq(stat(&r, "flows_ext_active"), 0);
    n = dns_msg(m, "tunnel.us.ngrok.com", NULL);
    feed(&r, pkt, ip4(pkt, "10.1.0.7", "10.1.0.53", 17, 40000, 53, 0, m, n));
    ck_assert_uint_eq(stat(&r, "names_dns_query"), 2);
    ck_assert_int_eq(engine_alerts(r.e), 1);
    ck_assert_uint_eq(stat(&r, "flows_ext_active"), 0);

    const char *c = "10.1.0.8", *s = "93.184.216.34";
    const char *rq1 = "GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n";
    const char *rq2 = "GET / HTTP/1.1\r\nHost: tunnel.us.ngrok.com\r\n\r\n";
    feed(&r, pkt, tcp4(pkt, c, s, 50000, 80, 0x02, 100, NULL));
    feed(&r, pkt, tcp4(pkt, s, c, 80, 50000, 0x12, 900, NULL));
    feed(&r, pkt, tcp4(pkt, c, s, 50000, 80, 0x18, 101, rq1));
    ck_assert_uint_eq(stat(&r, "names_http_host"), 1);
    ck_assert_uint_eq(stat(&r, "flows_ext_active"), 0); /* between requests: settled */
    feed(&r, pkt, tcp4(pkt, s, c, 80, 50000, 0x18, 901, "HTTP/1.1 200 OK\r\n\r\n"));
    ck_assert_uint_eq(stat(&r, "flows_ext_active"), 0); /* the server's bytes: counters only */
    feed(&r, pkt, tcp4(pkt, c, s, 50000, 80, 0x18, 101, rq1)); /* retransmitted */
    ck_assert_uint_eq(stat(&r, "names_http_host"), 1);
    feed(&r, pkt, tcp4(pkt, c, s, 50000, 80, 0x18, 101 + (uint32_t)strlen(rq1), rq2));
    ck_assert_uint_eq(stat(&r, "names_http_host"), 2);
    ck_assert_int_eq(engine_alerts(r.e), 2);
    ck_assert_uint_eq(stat(&r, "flows_ext_active"), 1); /* flagged: kept for its end record */
    run_end(&r);
    ck_assert_int_eq(count(&r, "\"event.action\":\"flow_end\""), 1);
    ck_assert_int_eq(count(&r, "\"network.protocol\":\"http\""), 2); /* alert + flow end */
    run_free(&r);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("attribution");
    tcase_add_test(tc, decide_branches);
    tcase_add_test(tc, resolver_learned_at_third_answer);
    tcase_add_test(tc, configured_resolver_and_reload);
    tcase_add_test(tc, transit_is_an_event);
    tcase_add_test(tc, resolver_query_after_three_answers);
    tcase_add_test(tc, flow_to_answered_address);
    tcase_add_test(tc, settled_flows);
    suite_add_tcase(s, tc);
    return s;
}
