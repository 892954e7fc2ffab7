/* check_alert.c - unit tests for src/alert.c: Community ID v1 against the spec's published
 * vectors, ECS and ASIM records checked field by field by a real JSON parser (python3),
 * hostile hostnames, unique event ids, and the incident dedup table (window, cap/LRU,
 * name folding, periodic updates). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tunnelwatch/alert.h"
#include "tw_check.h"

static struct tw_addr ip(const char *s)
{
    struct tw_addr a;
    ck_assert_int_eq(tw_addr_parse(s, &a), TW_OK);
    return a;
}

static void cid(const char *src, uint16_t sp, const char *dst, uint16_t dp, uint8_t proto,
                const char *want)
{
    struct tw_addr a = ip(src), b = ip(dst);
    char out[64];
    community_id_v1(&a, &b, sp, dp, proto, 0, out);
    ck_assert_str_eq(out, want);
    /* the reverse direction is the same flow */
    community_id_v1(&b, &a, dp, sp, proto, 0, out);
    ck_assert_str_eq(out, want);
}

START_TEST(community_id_vectors)
{
    /* corelight/community-id-spec baseline outputs, seed 0 */
    cid("128.232.110.120", 34855, "66.35.250.204", 80, 6, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    cid("192.168.1.52", 54585, "8.8.8.8", 53, 17, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");
    cid("2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25, 6,
        "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=");
    cid("192.168.170.8", 7, "192.168.170.56", 80, 132, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ=");
    /* another seed changes the hash */
    struct tw_addr a = ip("192.168.1.52"), b = ip("8.8.8.8");
    char out[64];
    community_id_v1(&a, &b, 54585, 53, 17, 1, out);
    ck_assert_str_ne(out, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=");
    ck_assert_int_eq(strncmp(out, "1:", 2), 0);
    ck_assert_uint_eq(strlen(out), 30);
}
END_TEST

/* Runs python3 on json with the check `expr` (d is the parsed object); true when it holds. */
static bool py_check(const char *json, const char *expr)
{
    setenv("TW_EXPR", expr, 1);
    FILE *p = popen("/usr/bin/python3 -c 'import json,sys,os\n"
                    "d=json.loads(sys.stdin.buffer.read().decode(\"utf-8\",\"strict\"))\n"
                    "ok=eval(os.environ[\"TW_EXPR\"])\n"
                    "ok or print(\"failed:\", os.environ[\"TW_EXPR\"], file=sys.stderr)\n"
                    "sys.exit(0 if ok else 1)'",
                    "w");
    ck_assert_ptr_nonnull(p);
    fputs(json, p);
    int st = pclose(p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static char tag0[] = "attack.command-and-control", tag1[] = "attack.t1572", tech0[] = "T1572";
static char rid[] = "19bf6fdb-7721-4f3d-867f-53467f6a5db6";
static char rtitle[] = "Communication To Ngrok Tunneling Service - Linux";
static char rlevel[] = "high", rfile[] = "conf/rules/net_connection_lnx_ngrok_tunnel.yml";
static char *tags[] = {tag0, tag1};
static char *techs[] = {tech0};
static struct rule seed_rule = {
    .id = rid,
    .title = rtitle,
    .level = rlevel,
    .file = rfile,
    .tags = tags,
    .n_tags = 2,
    .techniques = techs,
    .n_techniques = 1,
};

static struct alert_rec sample(const uint8_t *name, size_t n)
{
    struct alert_rec r;
    memset(&r, 0, sizeof(r));
    r.type = ALERT_RAISED;
    r.ts = (struct tw_time){1700000000, 123456};
    r.event_id = "0123456789abcdef-0000000000000001";
    r.rule = &seed_rule;
    r.pattern = "tunnel.us.ngrok.com";
    r.kind = "tls_sni";
    r.name = name;
    r.name_len = n;
    r.frame = 42;
    r.file = "case/a.pcapng";
    r.cli = ip("10.1.2.3");
    r.srv = ip("3.134.39.220");
    r.cport = 51000;
    r.sport = 443;
    r.proto = 6;
    r.app_proto = "TLS";
    r.attribution = "client";
    r.host = r.cli;
    r.count = 1;
    r.observer = "sensor-1";
    return r;
}

#define NAME "tunnel.us.ngrok.com"

START_TEST(ecs_fields)
{
    struct jw w;
    jw_init(&w, 1 << 16);
    struct alert_rec r = sample((const uint8_t *)NAME, strlen(NAME));
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ECS), TW_OK);
    char cidbuf[64];
    community_id_v1(&r.cli, &r.srv, r.cport, r.sport, 6, 0, cidbuf);
    const char *checks[] = {
        "d['@timestamp'] == '2023-11-14T22:13:20.123456Z'",
        "d['event.kind'] == 'alert'",
        "d['event.id'] == '0123456789abcdef-0000000000000001'",
        "d['event.dataset'] == 'tunnelwatch.alert'",
        "d['rule.id'] == '19bf6fdb-7721-4f3d-867f-53467f6a5db6'",
        "d['rule.name'] == 'Communication To Ngrok Tunneling Service - Linux'",
        "d['rule.level'] == 'high'",
        "d['tags'] == ['attack.command-and-control', 'attack.t1572']",
        "d['threat.technique.id'] == ['T1572']",
        "d['source.ip'] == '10.1.2.3' and d['source.port'] == 51000",
        "d['destination.ip'] == '3.134.39.220' and d['destination.port'] == 443",
        "d['destination.domain'] == 'tunnel.us.ngrok.com'",
        "d['network.transport'] == 'tcp'",
        "d['network.protocol'] == 'tls'",
        "d['ecs.version'] == '8.11.0'",
        "d['event.category'] == ['network', 'intrusion_detection']",
        "d['event.type'] == ['info']",
        "d['observer.name'] == 'sensor-1'",
        "d['tunnelwatch.evidence.kind'] == 'tls_sni'",
        "d['tunnelwatch.evidence.name'] == 'tunnel.us.ngrok.com'",
        "d['tunnelwatch.evidence.frame'] == 42",
        "d['tunnelwatch.evidence.file'] == 'case/a.pcapng'",
        "d['tunnelwatch.matched'] == 'tunnel.us.ngrok.com'",
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(checks); i++)
        ck_assert_msg(py_check(w.buf, checks[i]), "%s in %s", checks[i], w.buf);
    char expr[128];
    snprintf(expr, sizeof(expr), "d['network.community_id'] == '%s'", cidbuf);
    ck_assert(py_check(w.buf, expr));
    /* attributed to the server side (inbound): source is the host, destination the peer */
    r.host = r.srv;
    r.attribution = "inbound";
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ECS), TW_OK);
    ck_assert(py_check(w.buf, "d['source.ip'] == '3.134.39.220' and d['source.port'] == 443 and "
                              "d['destination.ip'] == '10.1.2.3' and "
                              "d['network.direction'] == 'inbound'"));
    jw_free(&w);
}
END_TEST

/* A rule's ECS fields rendered once (alert_prepare_rules) give every record type the bytes
 * written field by field, escapes included; the html-safe writer still writes them itself. */
START_TEST(prepared_rule_fields)
{
    static const char yaml[] =
        "title: Quote \" and \\\\ and caf\xc3\xa9 <b>\n"
        "id: 00000000-0000-4000-8000-0000000000aa\nlevel: critical\n"
        "tags:\n    - attack.command-and-control\n    - attack.t1572\n    - attack.t1090.003\n"
        "logsource:\n    category: dns\ndetection:\n    selection:\n"
        "        query|endswith: '.example'\n    condition: selection\n";
    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    ck_assert_ptr_nonnull(rs);
    ck_assert_int_eq(
        ruleset_load_mem(rs, "dir/r\"1.yml", (const uint8_t *)yaml, strlen(yaml), stderr), 1);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    const struct rule *ru = ruleset_rule(rs, 0);
    enum alert_type types[] = {ALERT_RAISED, ALERT_UPDATE, ALERT_FLOW_END, ALERT_SUPPRESSED};
    char *before[TW_ARRAY_LEN(types)][2];
    struct jw w;
    jw_init(&w, 1 << 16);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            ck_assert_ptr_null(ru->ecs_json);
            alert_prepare_rules(rs);
            ck_assert_ptr_nonnull(ru->ecs_json);
            ck_assert_uint_eq(strlen(ru->ecs_json), ru->ecs_json_len);
        }
        for (size_t t = 0; t < TW_ARRAY_LEN(types); t++) {
            for (int html = 0; html < 2; html++) {
                struct alert_rec r = sample((const uint8_t *)NAME, strlen(NAME));
                r.rule = ru;
                r.type = types[t];
                r.incident_id = "0123456789abcdef-0000000000000001";
                w.html_safe = html;
                ck_assert_int_eq(alert_format(&w, &r, ALERT_ECS), TW_OK);
                if (pass == 0) {
                    before[t][html] = strdup(w.buf);
                    continue;
                }
                ck_assert_str_eq(w.buf, before[t][html]);
                free(before[t][html]);
            }
        }
    }
    w.html_safe = false;
    struct alert_rec r = sample((const uint8_t *)NAME, strlen(NAME));
    r.rule = ru;
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ECS), TW_OK);
    ck_assert(py_check(w.buf, "d['rule.name'] == 'Quote \" and \\\\\\\\ and caf\\u00e9 <b>' and "
                              "d['rule.reference'] == 'dir/r\"1.yml' and d['event.severity'] == 5 "
                              "and d['threat.technique.id'] == ['T1572', 'T1090.003']"));
    jw_free(&w);
    ruleset_free(rs);
}
END_TEST

START_TEST(ecs_flow_end)
{
    struct jw w;
    jw_init(&w, 1 << 16);
    struct alert_rec r = sample((const uint8_t *)NAME, strlen(NAME));
    r.type = ALERT_FLOW_END;
    r.incident_id = "0123456789abcdef-0000000000000001";
    r.event_id = "0123456789abcdef-0000000000000002";
    r.pkts[0] = 10;
    r.pkts[1] = 20;
    r.bytes[0] = 1000;
    r.bytes[1] = 50000;
    r.flow_start = (struct tw_time){1700000000, 0};
    r.flow_end = (struct tw_time){1700000010, 500000};
    r.end_reason = "closed";
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ECS), TW_OK);
    ck_assert(py_check(w.buf, "d['source.bytes'] == 1000 and d['destination.bytes'] == 50000 "
                              "and d['source.packets'] == 10 and d['network.bytes'] == 51000 "
                              "and d['event.duration'] == 10500000000 "
                              "and d['tunnelwatch.incident_id'].endswith('01') "
                              "and d['event.kind'] != 'alert'"));
    ck_assert(py_check(w.buf, "d['event.category'] == ['network'] and "
                              "d['event.type'] == ['connection', 'end']"));
    /* ECS types network.vlan.id as a keyword */
    r.vlan = 100;
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ECS), TW_OK);
    ck_assert(py_check(w.buf, "d['network.vlan.id'] == '100'"));
    jw_free(&w);
}
END_TEST

START_TEST(asim_fields)
{
    struct jw w;
    jw_init(&w, 1 << 16);
    struct alert_rec r = sample((const uint8_t *)NAME ".", strlen(NAME) + 1);
    r.count = 7;
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ASIM), TW_OK);
    const char *checks[] = {
        "d['EventType'] == 'IDS'",
        "d['EventUid'] == '0123456789abcdef-0000000000000001'",
        "d['EventCount'] == 7",
        "d['EventStartTime'].startswith('2023-11-14T22:13:20')",
        "d['EventSeverity'] == 'High'",
        "d['SrcIpAddr'] == '10.1.2.3' and d['SrcPortNumber'] == 51000",
        "d['DstIpAddr'] == '3.134.39.220' and d['DstPortNumber'] == 443",
        "d['DstFQDN'] == 'tunnel.us.ngrok.com'",
        "d['DstDomain'] == 'ngrok.com'",
        /* the full name, so the seed's KQL `DstHostname contains ...` finds it */
        "d['DstHostname'] == 'tunnel.us.ngrok.com'",
        "'tunnel.us.ngrok.com' in d['DstHostname']",
        "d['NetworkProtocol'] == 'TCP'",
        "d['NetworkApplicationProtocol'] == 'TLS'",
        "d['NetworkRuleName'] == 'Communication To Ngrok Tunneling Service - Linux'",
        "d['ThreatId'] == 'T1572'",
        "d['Dvc'] == 'sensor-1'",
        "d['NetworkSessionId'].startswith('1:')",
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(checks); i++)
        ck_assert_msg(py_check(w.buf, checks[i]), "%s in %s", checks[i], w.buf);
    jw_free(&w);
}
END_TEST

/* A sensor-health record, ECS and ASIM: the resource, its figures and the top sources with
 * their guaranteed counts and shares. */
START_TEST(health_record)
{
    struct jw w;
    jw_init(&w, 1 << 16);
    struct alert_health h;
    memset(&h, 0, sizeof(h));
    h.resource = "reassembly";
    h.config_key = "flow.reasm_total_mib";
    h.limit = 64;
    h.refused = 5;
    h.reclaimed = 95;
    h.noted = 100;
    h.n_top = 2;
    ck_assert_int_eq(tw_addr_parse("10.9.0.66", &h.top[0].addr), TW_OK);
    h.top[0].count = 92;
    h.top[0].err = 2;
    ck_assert_int_eq(tw_addr_parse("2001:db8::1", &h.top[1].addr), TW_OK);
    h.top[1].count = 3;
    struct alert_rec r;
    memset(&r, 0, sizeof(r));
    r.type = ALERT_HEALTH;
    r.ts.sec = 1700000000;
    r.event_id = "0123456789abcdef-0000000000000009";
    r.observer = "sensor-1";
    r.health = &h;
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ECS), TW_OK);
    const char *ecs[] = {
        "d['event.kind'] == 'event'",
        "d['event.action'] == 'resource_pressure'",
        "d['event.dataset'] == 'tunnelwatch.health'",
        "d['event.id'] == '0123456789abcdef-0000000000000009'",
        "d['observer.name'] == 'sensor-1'",
        "d['tunnelwatch.resource.name'] == 'reassembly'",
        "d['tunnelwatch.resource.config_key'] == 'flow.reasm_total_mib'",
        "d['tunnelwatch.resource.limit'] == 64",
        "d['tunnelwatch.resource.refused'] == 5 and d['tunnelwatch.resource.reclaimed'] == 95",
        "d['tunnelwatch.resource.top_sources'] == [{'ip': '10.9.0.66', 'count': 90, "
        "'share_pct': 90}, {'ip': '2001:db8::1', 'count': 3, 'share_pct': 3}]",
        "'rule.id' not in d and 'source.ip' not in d",
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(ecs); i++)
        ck_assert_msg(py_check(w.buf, ecs[i]), "%s in %s", ecs[i], w.buf);
    ck_assert_int_eq(alert_format(&w, &r, ALERT_ASIM), TW_OK);
    const char *asim[] = {
        "d['EventType'] == 'Health' and d['EventSubType'] == 'resource_pressure'",
        "d['AdditionalFields']['Resource'] == 'reassembly'",
        "d['AdditionalFields']['Reclaimed'] == 95",
        "d['AdditionalFields']['TopSources'][0]['ip'] == '10.9.0.66'",
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(asim); i++)
        ck_assert_msg(py_check(w.buf, asim[i]), "%s in %s", asim[i], w.buf);
    jw_free(&w);
}
END_TEST

START_TEST(hostile_name)
{
    static const uint8_t evil[] = "a\"b<script>alert(1)</script>\\\x01\x1b[31m\x7f\xc0\xaf\xed\xa0"
                                  "\x80\xff.ngrok.io\n";
    struct jw w;
    jw_init(&w, 1 << 16);
    for (int schema = 0; schema < 2; schema++) {
        struct alert_rec r = sample(evil, sizeof(evil) - 1);
        ck_assert_int_eq(alert_format(&w, &r, (enum alert_schema)schema), TW_OK);
        ck_assert_ptr_null(memchr(w.buf, '\n', w.len));
        ck_assert_ptr_null(memchr(w.buf, 0x1b, w.len));
        const char *expr = schema == ALERT_ECS
                               ? "'<script>' in d['tunnelwatch.evidence.name'] and "
                                 "d['tunnelwatch.evidence.name'].startswith('a\"b<') and "
                                 "'\\ufffd' in d['destination.domain']"
                               : "'<script>' in d['DstHostname'] and "
                                 "d['DstHostname'].endswith('.ngrok.io\\n')";
        ck_assert_msg(py_check(w.buf, expr), "%s", w.buf);
    }
    /* a record larger than the writer's cap fails cleanly */
    struct jw small;
    jw_init(&small, 128);
    struct alert_rec r = sample((const uint8_t *)NAME, strlen(NAME));
    ck_assert_int_eq(alert_format(&small, &r, ALERT_ECS), TW_ELIMIT);
    jw_free(&small);
    jw_free(&w);
}
END_TEST

static int cmp40(const void *a, const void *b)
{
    return memcmp(a, b, 40);
}

START_TEST(event_ids_unique)
{
    enum { N = 100000 };
    char(*ids)[40] = calloc(N, 40);
    ck_assert_ptr_nonnull(ids);
    struct alert_ids g;
    alert_ids_init(&g);
    for (int i = 0; i < N; i++) {
        alert_ids_next(&g, ids[i]);
        ck_assert_uint_eq(strlen(ids[i]), 33);
    }
    qsort(ids, N, 40, cmp40);
    for (int i = 1; i < N; i++)
        ck_assert_int_ne(memcmp(ids[i - 1], ids[i], 40), 0);
    /* a second generator (another boot) does not repeat the first one's ids */
    struct alert_ids g2;
    alert_ids_init(&g2);
    char first[40];
    alert_ids_next(&g2, first);
    ck_assert_ptr_null(bsearch(first, ids, N, 40, cmp40));
    free(ids);
}
END_TEST

static char ida[] = "rule-a", idb[] = "rule-b";
static struct rule rule_a = {.id = ida};
static struct rule rule_b = {.id = idb};

static struct incident *hit(struct dedup *d, const char *host, const struct rule *r,
                            const char *name, int64_t sec, bool *is_new)
{
    struct tw_addr h = ip(host);
    return dedup_hit(d, &h, r, (const uint8_t *)name, strlen(name), (struct tw_time){sec, 0},
                     is_new);
}

START_TEST(dedup_window)
{
    struct dedup *d = dedup_new(100, 300);
    ck_assert_ptr_nonnull(d);
    bool is_new;
    int news = 0;
    struct incident *in = NULL;
    for (int i = 0; i < 1000; i++) {
        in = hit(d, "10.0.0.1", &rule_a, "x.ngrok.io", 1000 + i / 10, &is_new);
        news += is_new;
    }
    ck_assert_int_eq(news, 1);
    ck_assert_uint_eq(in->count, 1000);
    ck_assert_uint_eq(dedup_size(d), 1);
    ck_assert_int_eq(in->first.sec, 1000);
    ck_assert_int_eq(in->last.sec, 1099);
    /* after the window: a new incident */
    in = hit(d, "10.0.0.1", &rule_a, "x.ngrok.io", 1000 + 301, &is_new);
    ck_assert(is_new);
    ck_assert_uint_eq(in->count, 1);
    ck_assert_uint_eq(dedup_size(d), 1);
    /* another host, rule or name: separate incidents */
    hit(d, "10.0.0.2", &rule_a, "x.ngrok.io", 1302, &is_new);
    ck_assert(is_new);
    hit(d, "10.0.0.1", &rule_b, "x.ngrok.io", 1302, &is_new);
    ck_assert(is_new);
    hit(d, "10.0.0.1", &rule_a, "y.ngrok.io", 1302, &is_new);
    ck_assert(is_new);
    hit(d, "fd00::1", &rule_a, "x.ngrok.io", 1302, &is_new);
    ck_assert(is_new);
    ck_assert_uint_eq(dedup_size(d), 5);
    /* case and one trailing dot fold */
    in = hit(d, "10.0.0.1", &rule_a, "X.NGROK.IO.", 1303, &is_new);
    ck_assert(!is_new);
    ck_assert_uint_eq(in->count, 2);
    ck_assert_str_eq(in->name, "x.ngrok.io");
    ck_assert_uint_eq(dedup_evictions(d), 0);
    dedup_free(d);
}
END_TEST

START_TEST(dedup_cap_lru)
{
    struct dedup *d = dedup_new(3, 3600);
    bool is_new;
    hit(d, "10.0.0.1", &rule_a, "a.ngrok.io", 10, &is_new);
    hit(d, "10.0.0.1", &rule_a, "b.ngrok.io", 11, &is_new);
    hit(d, "10.0.0.1", &rule_a, "c.ngrok.io", 12, &is_new);
    hit(d, "10.0.0.1", &rule_a, "a.ngrok.io", 13, &is_new); /* a is now the most recent */
    ck_assert(!is_new);
    hit(d, "10.0.0.1", &rule_a, "d.ngrok.io", 14, &is_new);
    ck_assert(is_new);
    ck_assert_uint_eq(dedup_size(d), 3);
    ck_assert_uint_eq(dedup_evictions(d), 1);
    /* b was the least recently hit: it went */
    hit(d, "10.0.0.1", &rule_a, "a.ngrok.io", 15, &is_new);
    ck_assert(!is_new);
    hit(d, "10.0.0.1", &rule_a, "b.ngrok.io", 16, &is_new);
    ck_assert(is_new);
    ck_assert_uint_eq(dedup_evictions(d), 2);
    ck_assert_uint_eq(dedup_size(d), 3);
    /* a flood of distinct names never grows it */
    for (int i = 0; i < 5000; i++) {
        char n[32];
        snprintf(n, sizeof(n), "h%d.ngrok.io", i);
        hit(d, "10.0.0.9", &rule_a, n, 20, &is_new);
        ck_assert(is_new);
    }
    ck_assert_uint_eq(dedup_size(d), 3);
    ck_assert_uint_eq(dedup_evictions(d), 5002);
    dedup_free(d);
    dedup_free(NULL);
}
END_TEST

struct due {
    int calls;
    uint64_t counts[8];
};

static void on_due(void *ud, struct incident *in)
{
    struct due *u = ud;
    if (u->calls < 8)
        u->counts[u->calls] = in->count;
    u->calls++;
}

START_TEST(dedup_due)
{
    struct dedup *d = dedup_new(10, 3600);
    bool is_new;
    hit(d, "10.0.0.1", &rule_a, "a.ngrok.io", 100, &is_new);
    hit(d, "10.0.0.1", &rule_a, "b.ngrok.io", 100, &is_new);
    struct due u = {0};
    /* nothing unreported yet: the raising alert covered the first hit */
    dedup_each_due(d, (struct tw_time){1000, 0}, 60, on_due, &u);
    ck_assert_int_eq(u.calls, 0);
    for (int i = 0; i < 4; i++)
        hit(d, "10.0.0.1", &rule_a, "a.ngrok.io", 110, &is_new);
    /* within the interval of the last update (t=100): not yet */
    dedup_each_due(d, (struct tw_time){150, 0}, 60, on_due, &u);
    ck_assert_int_eq(u.calls, 0);
    dedup_each_due(d, (struct tw_time){161, 0}, 60, on_due, &u);
    ck_assert_int_eq(u.calls, 1);
    ck_assert_uint_eq(u.counts[0], 5);
    /* reported: not again until new hits, and then only after the interval */
    dedup_each_due(d, (struct tw_time){500, 0}, 60, on_due, &u);
    ck_assert_int_eq(u.calls, 1);
    hit(d, "10.0.0.1", &rule_a, "a.ngrok.io", 170, &is_new);
    dedup_each_due(d, (struct tw_time){200, 0}, 60, on_due, &u);
    ck_assert_int_eq(u.calls, 1);
    dedup_each_due(d, (struct tw_time){222, 0}, 60, on_due, &u);
    ck_assert_int_eq(u.calls, 2);
    ck_assert_uint_eq(u.counts[1], 6);
    /* interval 0 (shutdown flush): every incident with unreported hits, now */
    hit(d, "10.0.0.1", &rule_a, "a.ngrok.io", 223, &is_new);
    hit(d, "10.0.0.1", &rule_a, "b.ngrok.io", 223, &is_new);
    dedup_each_due(d, (struct tw_time){223, 0}, 0, on_due, &u);
    ck_assert_int_eq(u.calls, 4);
    dedup_free(d);
}
END_TEST

/* The ticks visit only the incidents with unreported hits and expire from the oldest first
 * hit; a reference that walks every incident in LRU order, as the table once did, gives the
 * same updates and removals in the same order over a random run of hits, ticks and expiry. */
static uint32_t rng;

static uint32_t next_rand(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 16;
}

struct ref_inc {
    int key;
    int64_t first, last_update;
    uint64_t count, reported;
};

struct ref {
    struct ref_inc v[64]; /* LRU order: v[0] oldest */
    int n, max;
    int64_t window;
    char log[8192];
    size_t len;
};

static void ref_log(struct ref *r, char what, int key, uint64_t count)
{
    r->len += (size_t)snprintf(r->log + r->len, sizeof(r->log) - r->len, "%c%d:%llu ", what, key,
                               (unsigned long long)count);
    ck_assert_uint_lt(r->len, sizeof(r->log) - 64);
}

static void ref_remove(struct ref *r, int i, bool flush)
{
    if (flush && r->v[i].count > r->v[i].reported)
        ref_log(r, 'f', r->v[i].key, r->v[i].count);
    memmove(&r->v[i], &r->v[i + 1], (size_t)(r->n - i - 1) * sizeof(r->v[0]));
    r->n--;
}

static void ref_hit(struct ref *r, int key, int64_t now)
{
    for (int i = 0; i < r->n; i++) {
        if (r->v[i].key != key)
            continue;
        if (now - r->v[i].first > r->window) {
            ref_remove(r, i, true);
            break;
        }
        struct ref_inc x = r->v[i];
        x.count++;
        memmove(&r->v[i], &r->v[i + 1], (size_t)(r->n - i - 1) * sizeof(r->v[0]));
        r->v[r->n - 1] = x;
        return;
    }
    if (r->n >= r->max)
        ref_remove(r, 0, true);
    r->v[r->n++] = (struct ref_inc){key, now, now, 1, 1};
}

static void ref_tick(struct ref *r, int64_t now, int64_t interval)
{
    for (int i = 0; i < r->n; i++) {
        struct ref_inc *x = &r->v[i];
        if (x->count == x->reported || (interval && now - x->last_update < interval))
            continue;
        ref_log(r, 'u', x->key, x->count);
        x->reported = x->count;
        x->last_update = now;
    }
    for (int i = 0; i < r->n;)
        if (now - r->v[i].first > r->window)
            ref_remove(r, i, true);
        else
            i++;
}

struct tab_log {
    char log[8192];
    size_t len;
};

static void tab_flush(void *ud, struct incident *in)
{
    struct tab_log *t = ud;
    t->len += (size_t)snprintf(t->log + t->len, sizeof(t->log) - t->len, "%c%d:%llu ",
                               in->count > in->reported_count ? 'f' : '?', atoi(in->name + 1),
                               (unsigned long long)in->count);
}

static void tab_due(void *ud, struct incident *in)
{
    struct tab_log *t = ud;
    t->len += (size_t)snprintf(t->log + t->len, sizeof(t->log) - t->len, "u%d:%llu ",
                               atoi(in->name + 1), (unsigned long long)in->count);
}

START_TEST(dedup_ticks_like_full_walk)
{
    rng = 0x5eed0000u + (uint32_t)_i;
    struct ref r = {.max = 12, .window = 40};
    struct dedup *d = dedup_new(12, 40);
    struct tab_log t = {0};
    dedup_set_flush(d, tab_flush, &t);
    int64_t now = 1000;
    for (int step = 0; step < 400 && r.len < 7000 && t.len < 7000; step++) {
        now += (int64_t)(next_rand() % 4);
        if (next_rand() % 8 == 0) {
            int64_t interval = next_rand() % 5 == 0 ? 0 : 30;
            ref_tick(&r, now, interval);
            dedup_each_due(d, (struct tw_time){now, 0}, (uint32_t)interval, tab_due, &t);
            dedup_expire(d, (struct tw_time){now, 0});
        } else {
            int key = (int)(next_rand() % 20);
            char name[16];
            snprintf(name, sizeof(name), "k%d", key);
            bool is_new;
            ref_hit(&r, key, now);
            hit(d, "10.0.0.1", &rule_a, name, now, &is_new);
        }
        ck_assert_uint_eq(dedup_size(d), (size_t)r.n);
    }
    ck_assert_msg(r.len > 0, "the run made no updates");
    ck_assert_str_eq(t.log, r.log);
    dedup_free(d);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("alert");
    TCase *tc = tcase_create("community_id");
    tcase_add_test(tc, community_id_vectors);
    suite_add_tcase(s, tc);
    tc = tcase_create("alert_format");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ecs_fields);
    tcase_add_test(tc, ecs_flow_end);
    tcase_add_test(tc, prepared_rule_fields);
    tcase_add_test(tc, asim_fields);
    tcase_add_test(tc, health_record);
    tcase_add_test(tc, hostile_name);
    suite_add_tcase(s, tc);
    tc = tcase_create("alert_ids");
    tcase_add_test(tc, event_ids_unique);
    suite_add_tcase(s, tc);
    tc = tcase_create("dedup");
    tcase_add_test(tc, dedup_window);
    tcase_add_test(tc, dedup_cap_lru);
    tcase_add_test(tc, dedup_due);
    tcase_add_loop_test(tc, dedup_ticks_like_full_walk, 0, 8);
    suite_add_tcase(s, tc);
    return s;
}
