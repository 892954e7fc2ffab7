/* check_extract.c - the extractor's TCP ClientHello paths: a hello whole in one segment is
 * read in place (no reassembly buffer), one split over segments is buffered; both must give
 * the same name and leave the flow in the same state. */
#include <string.h>

#include "tunnelwatch/extract.h"
#include "tw_check.h"

struct seen {
    char name[64];
    size_t len;
    int n;
};

static void on_name(void *ud, const struct obs *ob)
{
    struct seen *s = ud;
    s->n++;
    s->len = ob->len < sizeof(s->name) - 1 ? ob->len : sizeof(s->name) - 1;
    memcpy(s->name, ob->name, s->len);
    s->name[s->len] = '\0';
}

static void on_dns(void *ud, const struct dec_pkt *p, struct flow *f, const uint8_t *msg,
                   size_t len)
{
    (void)ud, (void)p, (void)f, (void)msg, (void)len;
}

static void put16(uint8_t *b, size_t v)
{
    b[0] = (uint8_t)(v >> 8);
    b[1] = (uint8_t)v;
}

/* One handshake record holding a ClientHello (RFC 8446 4.1.2) with one cipher suite and a
 * server_name extension naming sni. Returns its length. */
static size_t make_hello(uint8_t *b, const char *sni)
{
    size_t n = strlen(sni), k = 9;
    b[k++] = 3, b[k++] = 3;
    memset(b + k, 0x11, 32);
    k += 32;
    b[k++] = 0;                                        /* session id */
    b[k++] = 0, b[k++] = 2, b[k++] = 0x13, b[k++] = 1; /* cipher_suites */
    b[k++] = 1, b[k++] = 0;                            /* compression: null */
    put16(b + k, n + 9);                               /* extensions */
    put16(b + k + 2, 0);                               /* server_name */
    put16(b + k + 4, n + 5);
    put16(b + k + 6, n + 3); /* ServerNameList */
    b[k + 8] = 0;            /* host_name */
    put16(b + k + 9, n);
    memcpy(b + k + 11, sni, n);
    k += 11 + n;
    b[0] = 0x16, b[1] = 3, b[2] = 1;
    put16(b + 3, k - 5);
    b[5] = 1, b[6] = 0;
    put16(b + 7, k - 9);
    return k;
}

struct rig {
    struct extractor x;
    struct xflow xf;
    struct flow f;
    struct seen s;
};

static void rig_init(struct rig *r)
{
    memset(r, 0, sizeof(*r));
    struct extract_ops ops = {on_name, on_dns, &r->s, NULL};
    ck_assert_int_eq(extract_init(&r->x, &ops, 16384, 4, 0, 100), TW_OK);
    r->f.proto = 6;
    r->f.cport = 40000;
    r->f.sport = 443;
    r->f.cli.family = r->f.srv.family = 4;
}

/* A client segment at seq (flags TW_TH_SYN for the handshake's first packet). */
static void seg(struct rig *r, uint32_t seq, uint8_t flags, const uint8_t *d, uint32_t n)
{
    struct dec_pkt p;
    memset(&p, 0, sizeof(p));
    p.proto = 6;
    p.sport = 40000;
    p.dport = 443;
    p.seq = seq;
    p.tcp_flags = flags;
    p.payload = d;
    p.payload_len = p.payload_wire_len = n;
    extract_packet(&r->x, &r->xf, &p, &r->f, 0);
}

START_TEST(whole_and_split_hello_agree)
{
    uint8_t h[256];
    size_t n = make_hello(h, "tunnel.us.ngrok.com");
    struct rig a, b;
    rig_init(&a);
    rig_init(&b);
    seg(&a, 1000, TW_TH_SYN, NULL, 0);
    seg(&b, 1000, TW_TH_SYN, NULL, 0);
    seg(&a, 1001, TW_TH_ACK, h, (uint32_t)n); /* whole: read in place */
    ck_assert_ptr_null(a.xf.st[0].buf);
    seg(&b, 1001, TW_TH_ACK, h, 10); /* split: buffered, then read */
    ck_assert_int_eq(b.s.n, 0);
    seg(&b, 1011, TW_TH_ACK, h + 10, (uint32_t)n - 10);
    ck_assert_int_eq(a.s.n, 1);
    ck_assert_int_eq(b.s.n, 1);
    ck_assert_str_eq(a.s.name, "tunnel.us.ngrok.com");
    ck_assert_str_eq(b.s.name, a.s.name);
    ck_assert_int_eq(a.xf.app, XAPP_TLS);
    ck_assert_int_eq(b.xf.app, XAPP_TLS);
    ck_assert_int_eq(a.xf.hellos, b.xf.hellos);
    ck_assert(a.xf.seen_set && b.xf.seen_set);
    ck_assert_uint_eq(a.xf.seen_seq, 1001 + n);
    ck_assert_uint_eq(b.xf.seen_seq, a.xf.seen_seq);
    ck_assert(!a.xf.done && !b.xf.done);
    ck_assert_uint_eq(a.xf.st[0].len, 0);
    ck_assert_uint_eq(b.xf.st[0].len, 0);
    ck_assert(!a.xf.st[0].base_set && !b.xf.st[0].base_set);
    ck_assert_int_eq(a.x.pool.budget, a.x.pool.total); /* nothing held */
    ck_assert_int_eq(b.x.pool.budget, b.x.pool.total);
    /* a retransmission of the hello is old: no second name on either path */
    seg(&a, 1001, TW_TH_ACK, h, (uint32_t)n);
    seg(&b, 1001, TW_TH_ACK, h, (uint32_t)n);
    ck_assert_int_eq(a.s.n, 1);
    ck_assert_int_eq(b.s.n, 1);
    extract_release(&a.x, &a.xf);
    extract_release(&b.x, &b.xf);
    extract_fini(&a.x);
    extract_fini(&b.x);
}
END_TEST

/* What the in-place path leaves to the buffered one: a segment with more than the hello's
 * record, a segment that is not where the stream starts, a record cut by the segment. */
START_TEST(not_whole_goes_buffered)
{
    uint8_t h[300];
    size_t n = make_hello(h, "a.example");
    memcpy(h + n, "\x14\x03\x03\x00\x01\x01", 6); /* a ChangeCipherSpec record after it */
    struct rig a;
    rig_init(&a);
    seg(&a, 5000, TW_TH_ACK, h, (uint32_t)n + 6);
    ck_assert_int_eq(a.s.n, 1);
    ck_assert_str_eq(a.s.name, "a.example");
    extract_release(&a.x, &a.xf);
    extract_fini(&a.x);

    rig_init(&a);
    seg(&a, 1000, TW_TH_SYN, NULL, 0);
    seg(&a, 1011, TW_TH_ACK, h + 10, (uint32_t)n - 10); /* out of order: an island */
    ck_assert_int_eq(a.s.n, 0);
    seg(&a, 1001, TW_TH_ACK, h, 10);
    ck_assert_int_eq(a.s.n, 1);
    extract_release(&a.x, &a.xf);
    extract_fini(&a.x);

    rig_init(&a);
    seg(&a, 1, TW_TH_ACK, h, (uint32_t)n - 1); /* the record's last byte still to come */
    ck_assert_int_eq(a.s.n, 0);
    ck_assert_ptr_nonnull(a.xf.st[0].buf);
    seg(&a, (uint32_t)n, TW_TH_ACK, h + n - 1, 1);
    ck_assert_int_eq(a.s.n, 1);
    extract_release(&a.x, &a.xf);
    extract_fini(&a.x);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("extract");
    TCase *tc = tcase_create("tls_hello");
    tcase_add_test(tc, whole_and_split_hello_agree);
    tcase_add_test(tc, not_whole_goes_buffered);
    suite_add_tcase(s, tc);
    return s;
}
