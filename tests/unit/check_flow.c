/* check_flow.c - unit tests for the bounded flow table in src/flow.c: direction lookup,
 * client choice (SYN, SYN-ACK, low port, internal networks), counters, eviction at the cap,
 * per-list expiry, a 2-million-flow churn through a 10000 cap, VLAN keys, and SipHash-2-4
 * against the reference test vectors. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/flow.h"
#include "tw_check.h"

struct ends {
    int n[4];
    int total;
    uint64_t last_id;
    enum flow_end_reason last_why;
};

static void on_end(void *ud, struct flow *f, enum flow_end_reason why)
{
    struct ends *e = ud;
    e->n[why]++;
    e->total++;
    e->last_id = f->id;
    e->last_why = why;
}

static struct tw_addr ip(const char *s)
{
    struct tw_addr a;
    ck_assert_int_eq(tw_addr_parse(s, &a), TW_OK);
    return a;
}

static struct dec_pkt pkt(const char *src, uint16_t sp, const char *dst, uint16_t dp, uint8_t proto,
                          uint8_t flags)
{
    struct dec_pkt p;
    memset(&p, 0, sizeof(p));
    p.src = ip(src);
    p.dst = ip(dst);
    p.sport = sp;
    p.dport = dp;
    p.proto = proto;
    p.tcp_flags = flags;
    p.ip_len = 100;
    return p;
}

/* flow_update with the packet's own ip_len as the frame length */
static void upd(struct flow_table *t, struct flow *f, const struct dec_pkt *p, int dir,
                struct tw_time now)
{
    flow_update(t, f, p, dir, p->ip_len, now);
}

static struct tw_time at(int64_t s)
{
    return (struct tw_time){s, 0};
}

static struct flow_opts opts(uint32_t max)
{
    struct flow_opts o = {max, 100, 30, 5, 0, false};
    return o;
}

START_TEST(both_directions)
{
    struct ends e = {0};
    struct flow_opts o = opts(100);
    struct flow_table *t = flow_table_new(&o, on_end, &e);
    ck_assert_ptr_nonnull(t);
    struct dec_pkt a = pkt("10.0.0.1", 40000, "192.0.2.7", 443, 6, TW_TH_SYN);
    struct dec_pkt b = pkt("192.0.2.7", 443, "10.0.0.1", 40000, 6, TW_TH_SYN | TW_TH_ACK);
    int da = -1, db = -1;
    struct flow *fa = flow_lookup(t, &a, at(1), &da, NULL, NULL);
    ck_assert_ptr_nonnull(fa);
    uint64_t id = fa->id;
    struct flow *fb = flow_lookup(t, &b, at(1), &db, NULL, NULL);
    ck_assert_ptr_eq(fa, fb);
    ck_assert_uint_eq(fb->id, id);
    ck_assert_int_eq(da, 0);
    ck_assert_int_eq(db, 1);
    /* another port is another flow */
    struct dec_pkt c = pkt("10.0.0.1", 40001, "192.0.2.7", 443, 6, TW_TH_SYN);
    int dc;
    struct flow *fc = flow_lookup(t, &c, at(1), &dc, NULL, NULL);
    ck_assert_uint_ne(fc->id, id);
    struct flow_stats st;
    flow_stats(t, &st);
    ck_assert_uint_eq(st.created, 2);
    ck_assert_uint_eq(st.active, 2);
    flow_table_free(t);
    ck_assert_int_eq(e.n[FLOW_END_SHUTDOWN], 2);
}
END_TEST

START_TEST(client_choice)
{
    struct flow_opts o = opts(100);
    struct flow_table *t = flow_table_new(&o, NULL, NULL);
    struct tw_addr ten = ip("10.0.0.5"), out = ip("198.51.100.9");
    int d;
    /* SYN: the sender is the client even towards a high port from a low one */
    struct dec_pkt p = pkt("198.51.100.9", 80, "10.0.0.5", 50000, 6, TW_TH_SYN);
    struct flow *f = flow_lookup(t, &p, at(1), &d, NULL, NULL);
    ck_assert_int_eq(d, 0);
    ck_assert(tw_addr_eq(&f->cli, &out));
    ck_assert_uint_eq(f->cport, 80);
    /* SYN-ACK seen first: the receiver is the client */
    p = pkt("198.51.100.9", 50001, "10.0.0.5", 40001, 6, TW_TH_SYN | TW_TH_ACK);
    f = flow_lookup(t, &p, at(1), &d, NULL, NULL);
    ck_assert_int_eq(d, 1);
    ck_assert(tw_addr_eq(&f->cli, &ten));
    ck_assert_uint_eq(f->cport, 40001);
    ck_assert_uint_eq(f->sport, 50001);
    /* mid-stream TCP or UDP: the low port is the server's */
    p = pkt("8.8.8.8", 53, "10.0.0.5", 5353, 17, 0);
    f = flow_lookup(t, &p, at(1), &d, NULL, NULL);
    ck_assert_int_eq(d, 1);
    ck_assert(tw_addr_eq(&f->cli, &ten));
    ck_assert_uint_eq(f->sport, 53);
    p = pkt("198.51.100.9", 443, "10.0.0.5", 40002, 6, TW_TH_ACK);
    f = flow_lookup(t, &p, at(1), &d, NULL, NULL);
    ck_assert_int_eq(d, 1);
    ck_assert(tw_addr_eq(&f->cli, &ten));
    /* no port hint: no callback -> the first sender */
    p = pkt("198.51.100.9", 40003, "10.0.0.5", 50003, 17, 0);
    f = flow_lookup(t, &p, at(1), &d, NULL, NULL);
    ck_assert_int_eq(d, 0);
    ck_assert(tw_addr_eq(&f->cli, &out));
    flow_table_free(t);
}
END_TEST

static bool is_ten(void *ud, const struct tw_addr *a)
{
    int *calls = ud;
    (*calls)++;
    return a->family == 4 && a->a[0] == 10;
}

START_TEST(client_by_internal)
{
    struct flow_opts o = opts(100);
    struct flow_table *t = flow_table_new(&o, NULL, NULL);
    struct tw_addr ten = ip("10.0.0.5");
    int d, calls = 0;
    struct dec_pkt p = pkt("198.51.100.9", 40000, "10.0.0.5", 50000, 17, 0);
    struct flow *f = flow_lookup(t, &p, at(1), &d, is_ten, &calls);
    ck_assert_int_gt(calls, 0);
    ck_assert_int_eq(d, 1);
    ck_assert(tw_addr_eq(&f->cli, &ten));
    ck_assert_uint_eq(f->cport, 50000);
    /* both internal: the first sender */
    p = pkt("10.0.0.6", 40000, "10.0.0.5", 50000, 17, 0);
    f = flow_lookup(t, &p, at(1), &d, is_ten, &calls);
    ck_assert_int_eq(d, 0);
    ck_assert_uint_eq(f->cli.a[3], 6);
    /* the port hint comes before the callback */
    p = pkt("10.0.0.7", 53, "198.51.100.9", 40000, 17, 0);
    f = flow_lookup(t, &p, at(1), &d, is_ten, &calls);
    ck_assert_int_eq(d, 1);
    ck_assert_uint_eq(f->cli.a[0], 198);
    flow_table_free(t);
}
END_TEST

START_TEST(counters)
{
    struct flow_opts o = opts(100);
    struct flow_table *t = flow_table_new(&o, NULL, NULL);
    struct dec_pkt c2s = pkt("10.0.0.1", 40000, "192.0.2.7", 443, 6, TW_TH_ACK);
    struct dec_pkt s2c = pkt("192.0.2.7", 443, "10.0.0.1", 40000, 6, TW_TH_ACK);
    c2s.ip_len = 60;
    s2c.ip_len = 1500;
    int d;
    for (int i = 0; i < 3; i++) {
        struct flow *f = flow_lookup(t, &c2s, at(10 + i), &d, NULL, NULL);
        upd(t, f, &c2s, d, at(10 + i));
    }
    struct flow *f = NULL;
    for (int i = 0; i < 5; i++) {
        f = flow_lookup(t, &s2c, at(20 + i), &d, NULL, NULL);
        ck_assert_int_eq(d, 1);
        upd(t, f, &s2c, d, at(20 + i));
    }
    ck_assert_uint_eq(f->pkts[0], 3);
    ck_assert_uint_eq(f->pkts[1], 5);
    ck_assert_uint_eq(f->bytes[0], 180);
    ck_assert_uint_eq(f->bytes[1], 7500);
    ck_assert_int_eq(f->first.sec, 10);
    ck_assert_int_eq(f->last.sec, 24);
    /* an older timestamp does not move last back */
    upd(t, f, &s2c, 1, at(5));
    ck_assert_int_eq(f->last.sec, 24);
    flow_table_free(t);
}
END_TEST

static struct flow *add_flow(struct flow_table *t, int n, uint8_t proto, int64_t when)
{
    char src[32];
    snprintf(src, sizeof(src), "10.0.%d.%d", n / 250, n % 250 + 1);
    struct dec_pkt p = pkt(src, 40000, "192.0.2.1", 443, proto, 0);
    int d;
    struct flow *f = flow_lookup(t, &p, at(when), &d, NULL, NULL);
    ck_assert_ptr_nonnull(f);
    upd(t, f, &p, d, at(when));
    return f;
}

START_TEST(evict_oldest_closed_first)
{
    struct ends e = {0};
    struct flow_opts o = opts(3);
    o.ext_size = 32;
    struct flow_table *t = flow_table_new(&o, on_end, &e);
    struct flow *f1 = add_flow(t, 1, 6, 10);
    uint64_t id1 = f1->id;
    ck_assert_ptr_null(f1->ext); /* made on demand only */
    ck_assert_ptr_eq(flow_ext(t, f1), f1->ext);
    memset(flow_ext(t, f1), 0xAB, 32);
    struct flow *f2 = add_flow(t, 2, 17, 11);
    uint64_t id2 = f2->id;
    (void)id2;
    struct flow *f3 = add_flow(t, 3, 6, 12);
    uint64_t id3 = f3->id;
    /* close flow 3 with a RST: closed flows go first although 3 is the newest */
    struct dec_pkt rst = pkt("10.0.0.4", 40000, "192.0.2.1", 443, 6, TW_TH_RST);
    upd(t, f3, &rst, 0, at(13));
    ck_assert_uint_eq(f3->list, FLOW_L_CLOSED);
    add_flow(t, 4, 6, 14);
    ck_assert_int_eq(e.n[FLOW_END_EVICTED], 1);
    ck_assert_uint_eq(e.last_id, id3);
    /* next: the oldest idle across the TCP and UDP lists (flow 1, t=10) */
    struct flow *f5 = add_flow(t, 5, 17, 15);
    ck_assert_int_eq(e.n[FLOW_END_EVICTED], 2);
    ck_assert_uint_eq(e.last_id, id1);
    /* the recycled extension is zeroed, and given back with its flow */
    struct flow_stats st;
    flow_stats(t, &st);
    ck_assert_uint_eq(st.ext_active, 0);
    uint8_t *x5 = flow_ext(t, f5);
    ck_assert_ptr_nonnull(x5);
    for (int i = 0; i < 32; i++)
        ck_assert_uint_eq(x5[i], 0);
    flow_stats(t, &st);
    ck_assert_uint_eq(st.ext_active, 1);
    ck_assert_uint_eq(st.ext_peak, 1);
    flow_ext_drop(t, f5);
    ck_assert_ptr_null(f5->ext);
    flow_stats(t, &st);
    ck_assert_uint_eq(st.ext_active, 0);
    ck_assert_uint_eq(st.evicted, 2);
    ck_assert_uint_eq(st.active, 3);
    ck_assert_uint_eq(st.peak, 3);
    ck_assert_uint_eq(st.created, 5);
    /* flow 1 is gone: looking it up creates a new flow */
    struct flow *again = add_flow(t, 1, 6, 16);
    ck_assert_uint_ne(again->id, id1);
    flow_table_free(t);
    ck_assert_int_eq(e.n[FLOW_END_SHUTDOWN], 3);
}
END_TEST

/* A flagged (pinned) flow is not the one a flood evicts although it is the oldest, and the
 * eviction is noted with the evicted flow's client. */
START_TEST(pinned_survives_flood)
{
    struct ends e = {0};
    struct flow_opts o = opts(4);
    struct flow_table *t = flow_table_new(&o, on_end, &e);
    struct flow *tunnel = add_flow(t, 1, 6, 10);
    uint64_t id = tunnel->id;
    tunnel->pinned = true;
    for (int i = 0; i < 40; i++)
        add_flow(t, 100 + i, 6, 20 + i);
    ck_assert_int_eq(e.n[FLOW_END_EVICTED], 37);
    struct dec_pkt p = pkt("10.0.0.2", 40000, "192.0.2.1", 443, 6, 0);
    int d;
    struct flow *f = flow_lookup(t, &p, at(70), &d, NULL, NULL);
    ck_assert_uint_eq(f->id, id); /* still the same flow */
    struct pressure *pr = flow_pressure(t);
    ck_assert_uint_eq(pr->reclaimed, 37);
    ck_assert_uint_eq(pr->noted, 37);
    /* all pinned: the oldest goes after all */
    struct flow_table *t2 = flow_table_new(&o, on_end, &e);
    for (int i = 0; i < 4; i++)
        add_flow(t2, i, 6, i)->pinned = true;
    ck_assert_ptr_nonnull(add_flow(t2, 9, 6, 9));
    flow_table_free(t2);
    flow_table_free(t);
}
END_TEST

START_TEST(expiry_per_list)
{
    struct ends e = {0};
    struct flow_opts o = opts(100); /* tcp 100 s, udp 30 s, closed 5 s */
    struct flow_table *t = flow_table_new(&o, on_end, &e);
    add_flow(t, 1, 6, 1000);
    add_flow(t, 2, 17, 1000);
    struct flow *c = add_flow(t, 3, 6, 1000);
    struct dec_pkt fin = pkt("10.0.0.4", 40000, "192.0.2.1", 443, 6, TW_TH_FIN | TW_TH_ACK);
    upd(t, c, &fin, 0, at(1000));
    ck_assert_uint_ne(c->list, FLOW_L_CLOSED); /* one FIN is a half close */
    upd(t, c, &fin, 1, at(1000));
    ck_assert_uint_eq(c->list, FLOW_L_CLOSED);
    ck_assert_uint_eq(flow_expire(t, at(1005), 0), 0); /* exactly the timeout: not yet */
    ck_assert_uint_eq(flow_expire(t, at(1006), 0), 1);
    ck_assert_int_eq(e.n[FLOW_END_CLOSED], 1);
    ck_assert_uint_eq(flow_expire(t, at(1030), 0), 0);
    ck_assert_uint_eq(flow_expire(t, at(1031), 0), 1);
    ck_assert_int_eq(e.n[FLOW_END_IDLE], 1);
    ck_assert_uint_eq(flow_expire(t, at(1100), 0), 0);
    ck_assert_uint_eq(flow_expire(t, at(1101), 0), 1);
    ck_assert_int_eq(e.n[FLOW_END_IDLE], 2);
    struct flow_stats st;
    flow_stats(t, &st);
    ck_assert_uint_eq(st.closed, 1);
    ck_assert_uint_eq(st.expired, 2);
    ck_assert_uint_eq(st.active, 0);
    /* activity keeps a flow alive; budget caps the work per call */
    for (int i = 0; i < 10; i++)
        add_flow(t, 10 + i, 17, 2000);
    add_flow(t, 10, 17, 2020);
    ck_assert_uint_eq(flow_expire(t, at(2040), 4), 4);
    ck_assert_uint_eq(flow_expire(t, at(2040), 0), 5);
    ck_assert_uint_eq(flow_expire(t, at(2051), 0), 1);
    flow_table_free(t);
    ck_assert_int_eq(e.n[FLOW_END_SHUTDOWN], 0);
}
END_TEST

START_TEST(churn_two_million)
{
    struct ends e = {0};
    const uint32_t cap = 10000;
    struct flow_opts o = opts(cap);
    o.ext_size = 64;
    struct flow_table *t = flow_table_new(&o, on_end, &e);
    size_t bound = flow_table_bound(t);
    ck_assert_uint_lt(bound, 16u << 20);
    struct mallinfo2 m0 = mallinfo2();
    const uint32_t n = 2000000;
    struct dec_pkt p = pkt("10.0.0.1", 1, "203.0.113.1", 443, 6, TW_TH_SYN);
    for (uint32_t i = 0; i < n; i++) {
        p.src.a[1] = (uint8_t)(i >> 16);
        p.src.a[2] = (uint8_t)(i >> 8);
        p.src.a[3] = (uint8_t)i;
        p.sport = (uint16_t)(1024 + i % 50000);
        p.proto = i % 3 ? 6 : 17;
        int d;
        struct tw_time now = {1000 + i / 1000, (int32_t)(i % 1000)};
        struct flow *f = flow_lookup(t, &p, now, &d, NULL, NULL);
        ck_assert_ptr_nonnull(f);
        upd(t, f, &p, d, now);
        if (i % 4 == 0) /* some flows hold an extension: evictions give them back */
            ck_assert_ptr_nonnull(flow_ext(t, f));
        if ((i & 0xffff) == 0) {
            struct flow_stats st;
            flow_stats(t, &st);
            ck_assert_uint_le(st.active, cap);
            ck_assert_uint_le(st.ext_active, st.active);
        }
    }
    struct mallinfo2 m1 = mallinfo2();
    struct flow_stats st;
    flow_stats(t, &st);
    ck_assert_uint_eq(st.created, n);
    ck_assert_uint_le(st.active, cap);
    ck_assert_uint_le(st.peak, cap);
    ck_assert_uint_eq(st.active, cap);
    ck_assert_uint_eq(st.evicted, n - cap);
    ck_assert_int_eq(e.n[FLOW_END_EVICTED], (int)(n - cap));
    ck_assert_uint_eq(flow_table_bound(t), bound);
    /* heap growth over the run stays within the table's own bound (mallinfo2 reads 0
     * under ASan, where this check is vacuous; the counters above still hold) */
    if (m1.uordblks > m0.uordblks)
        ck_assert_uint_le(m1.uordblks - m0.uordblks, bound);
    flow_table_free(t);
    ck_assert_int_eq(e.n[FLOW_END_SHUTDOWN], (int)cap);
}
END_TEST

/* The open-addressing slots under churn: flows come, close (RST) and get evicted in a random
 * order through a small table (long probe runs, many backward shifts); after every step each
 * flow the table still holds must be found again, by flow_lookup and by flow_lookup_hashed,
 * as the same record, and nothing ended may be found. */
struct shadow {
    uint64_t id[2048]; /* by source port - 1: id of the live flow, 0 none */
};

static void on_end_shadow(void *ud, struct flow *f, enum flow_end_reason why)
{
    struct shadow *sh = ud;
    (void)why;
    ck_assert_uint_eq(sh->id[f->cport - 1], f->id);
    sh->id[f->cport - 1] = 0;
}

START_TEST(slots_stay_reachable)
{
    struct shadow sh = {0};
    struct flow_opts o = opts(300);
    struct flow_table *t = flow_table_new(&o, on_end_shadow, &sh);
    ck_assert_ptr_nonnull(t);
    uint32_t rng = 12345;
    int resets = 0;
    for (int step = 0; step < 20000; step++) {
        rng = rng * 1103515245u + 12345u;
        uint16_t port = (uint16_t)(1 + (rng >> 8) % 2048);
        bool close = (rng >> 24) % 4 == 0;
        struct dec_pkt p = pkt("10.0.0.1", port, "203.0.113.1", 443, 6, TW_TH_SYN);
        struct tw_time now = {1000 + step / 100, 0};
        int d;
        if (sh.id[port - 1] && close) {
            p.tcp_flags = TW_TH_RST | TW_TH_ACK;
            resets++;
        } else if (sh.id[port - 1])
            p.tcp_flags = TW_TH_ACK;
        struct flow *f = (step & 1)
                             ? flow_lookup(t, &p, now, &d, NULL, NULL)
                             : flow_lookup_hashed(t, &p, flow_hash(t, &p), now, &d, NULL, NULL);
        ck_assert_ptr_nonnull(f);
        if (sh.id[port - 1])
            ck_assert_uint_eq(f->id, sh.id[port - 1]);
        sh.id[port - 1] = f->id;
        upd(t, f, &p, d, now);
        if (step % 97 == 0) {
            size_t live = 0;
            for (uint16_t q = 1; q <= 2048; q++) {
                if (!sh.id[q - 1])
                    continue;
                live++;
                struct dec_pkt a = pkt("203.0.113.1", 443, "10.0.0.1", q, 6, TW_TH_ACK);
                struct flow_stats before, after;
                flow_stats(t, &before);
                struct flow *g = flow_lookup_hashed(t, &a, flow_hash(t, &a), now, &d, NULL, NULL);
                flow_stats(t, &after);
                ck_assert_uint_eq(after.created, before.created); /* found, not made */
                ck_assert_uint_eq(g->id, sh.id[q - 1]);
                ck_assert_int_eq(d, 1);
            }
            struct flow_stats st;
            flow_stats(t, &st);
            ck_assert_uint_eq(st.active, live);
        }
    }
    struct flow_stats st;
    flow_stats(t, &st);
    ck_assert_uint_gt(st.evicted, 1000);
    ck_assert_int_gt(resets, 500); /* closed flows: evicted first, so many removals */
    flow_table_free(t);
    for (int q = 0; q < 2048; q++)
        ck_assert_uint_eq(sh.id[q], 0);
}
END_TEST

START_TEST(vlan_separates)
{
    struct flow_opts o = opts(100);
    struct flow_table *t = flow_table_new(&o, NULL, NULL);
    struct dec_pkt a = pkt("10.0.0.1", 5000, "10.0.0.2", 53, 17, 0);
    struct dec_pkt b = a;
    b.vlan = 20;
    int d;
    struct flow *fa = flow_lookup(t, &a, at(1), &d, NULL, NULL);
    uint64_t ida = fa->id;
    struct flow *fb = flow_lookup(t, &b, at(1), &d, NULL, NULL);
    ck_assert_uint_ne(fb->id, ida);
    ck_assert_uint_eq(fb->vlan, 20);
    struct dec_pkt br = pkt("10.0.0.2", 53, "10.0.0.1", 5000, 17, 0);
    br.vlan = 20;
    struct flow *fbr = flow_lookup(t, &br, at(1), &d, NULL, NULL);
    ck_assert_ptr_eq(fbr, fb);
    ck_assert_int_eq(d, 1);
    /* v4 and v6 and protocols are apart too */
    struct dec_pkt tcp = a;
    tcp.proto = 6;
    ck_assert_uint_ne(flow_lookup(t, &tcp, at(1), &d, NULL, NULL)->id, ida);
    struct flow_stats st;
    flow_stats(t, &st);
    ck_assert_uint_eq(st.active, 3);
    flow_table_free(t);
}
END_TEST

/* SipHash-2-4 reference vectors (Aumasson and Bernstein, vectors.h): key 00..0f, message
 * 00..(len-1). */
START_TEST(siphash_vectors)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    ck_assert_uint_eq(tw_siphash(key, msg, 0), 0x726fdb47dd0e0e31ULL);
    ck_assert_uint_eq(tw_siphash(key, msg, 15), 0xa129ca6149be45e5ULL);
    /* length 8 and 63 of the same table: one full word, and 7 words + 7 bytes */
    ck_assert_uint_eq(tw_siphash(key, msg, 8), 0x93f5f5799a932462ULL);
    ck_assert_uint_eq(tw_siphash(key, msg, 63), 0x958a324ceb064572ULL);
    /* a different key gives a different hash */
    key[0] ^= 1;
    ck_assert_uint_ne(tw_siphash(key, msg, 15), 0xa129ca6149be45e5ULL);
}
END_TEST

/* The ends at flow_table_free, with an extension or not. */
struct end_log {
    uint64_t ids[64];
    int n, without_ext;
};

static void log_end(void *ud, struct flow *f, enum flow_end_reason why)
{
    struct end_log *l = ud;
    ck_assert_int_eq(why, FLOW_END_SHUTDOWN);
    if (!f->ext) {
        l->without_ext++;
        return;
    }
    ck_assert_int_lt(l->n, 64);
    l->ids[l->n++] = f->id;
    memset(f->ext, 0, 32);
}

/* Forty TCP and UDP flows over time, every third with an extension (some given back, some
 * taken again); at the end: which flows ended, in which order. */
static void ext_scenario(bool ext_only, struct end_log *l)
{
    struct flow_opts o = {100, 100, 30, 5, 32, ext_only};
    struct flow_table *t = flow_table_new(&o, log_end, l);
    ck_assert_ptr_nonnull(t);
    struct flow *fl[40];
    for (int i = 0; i < 40; i++) {
        char src[32];
        snprintf(src, sizeof(src), "10.0.%d.%d", i / 7, i % 7 + 1);
        struct dec_pkt p = pkt(src, (uint16_t)(40000 + i), "192.0.2.7", i % 2 ? 53 : 443,
                               i % 2 ? 17 : 6, i % 2 ? 0 : TW_TH_SYN);
        int d;
        fl[i] = flow_lookup(t, &p, at(1 + i / 4), &d, NULL, NULL);
        ck_assert_ptr_nonnull(fl[i]);
        upd(t, fl[i], &p, d, at(1 + i / 4));
        if (i % 3 == 0)
            ck_assert_ptr_nonnull(flow_ext(t, fl[i]));
        if (i % 9 == 0)
            flow_ext_drop(t, fl[i]);
    }
    ck_assert_ptr_nonnull(flow_ext(t, fl[9])); /* a pool element used twice */
    for (int i = 39; i >= 30; i--) {           /* later activity moves them to their lists' tails */
        struct dec_pkt p = pkt("10.0.0.1", 1, "192.0.2.7", 1, 6, 0);
        p.src = fl[i]->cli;
        p.sport = fl[i]->cport;
        p.dst = fl[i]->srv;
        p.dport = fl[i]->sport;
        p.proto = fl[i]->proto;
        upd(t, fl[i], &p, 0, at(20 + (39 - i)));
    }
    flow_table_free(t);
}

START_TEST(end_ext_only_same_ends)
{
    struct end_log all = {0}, only = {0};
    ext_scenario(false, &all);
    ext_scenario(true, &only);
    ck_assert_int_eq(all.without_ext, 40 - 10);
    ck_assert_int_eq(only.without_ext, 0); /* not visited */
    ck_assert_int_eq(all.n, 10);
    ck_assert_int_eq(only.n, all.n);
    for (int i = 0; i < all.n; i++)
        ck_assert_uint_eq(only.ids[i], all.ids[i]);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("flow_lookup");
    tcase_add_test(tc, both_directions);
    tcase_add_test(tc, end_ext_only_same_ends);
    tcase_add_test(tc, client_choice);
    tcase_add_test(tc, client_by_internal);
    tcase_add_test(tc, vlan_separates);
    suite_add_tcase(s, tc);
    tc = tcase_create("flow_update");
    tcase_add_test(tc, counters);
    suite_add_tcase(s, tc);
    tc = tcase_create("flow_cap");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, evict_oldest_closed_first);
    tcase_add_test(tc, pinned_survives_flood);
    tcase_add_test(tc, churn_two_million);
    tcase_add_test(tc, slots_stay_reachable);
    suite_add_tcase(s, tc);
    tc = tcase_create("flow_expire");
    tcase_add_test(tc, expiry_per_list);
    suite_add_tcase(s, tc);
    tc = tcase_create("tw_siphash");
    tcase_add_test(tc, siphash_vectors);
    suite_add_tcase(s, tc);
    return s;
}
