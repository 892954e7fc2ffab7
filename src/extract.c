/* extract.c - per-flow name extraction (see extract.h).
 *
 * TCP: the client's bytes (and both directions of DNS) go into a bounded reassembly buffer;
 * the first bytes decide the parser (TLS ClientHello, HTTP request line, DNS by port), and a
 * flow that is none of them after 8 bytes is done. UDP: DNS by port; otherwise client
 * long-header packets are tried as QUIC Initials (a 0-RTT packet may come first) until one
 * decrypts, the handshake is over or QUIC_MAX_PKTS went by.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/dns.h"
#include "tunnelwatch/extract.h"
#include "tunnelwatch/http.h"
#include "tunnelwatch/quic.h"

#define QUIC_MAX_PKTS  16             /* client datagrams fed before giving up on a QUIC flow */
#define TLS_RECORD_MAX (16384 + 2048) /* as tls_hello_from_records: a longer record is not TLS */

static const char *const kind_names[NK__COUNT] = {"dns_query", "tls_sni",    "quic_sni",
                                                  "http_host", "dns_answer", "proxy_target"};

const char *name_kind_str(enum name_kind k)
{
    return (unsigned)k < NK__COUNT ? kind_names[k] : k == NK_FLOW ? "flow" : "?";
}

/* The pool takes a stalled QUIC Initial state back: the flow gives up on QUIC. */
static void quic_reclaimed(void *ud, struct reasm_hold *h)
{
    struct xflow *xf = (struct xflow *)(void *)((uint8_t *)h - offsetof(struct xflow, qh));
    (void)ud;
    quic_initial_free(xf->quic);
    xf->quic = NULL;
    xf->done = true;
}

int extract_init(struct extractor *x, const struct extract_ops *ops, uint32_t reasm_bytes,
                 uint64_t reasm_total_mib, uint32_t stall_ms, uint32_t src_pct)
{
    memset(x, 0, sizeof(*x));
    x->ops = *ops;
    x->reasm_bytes = reasm_bytes;
    if (reasm_pool_init(&x->pool, reasm_total_mib << 20, stall_ms, src_pct) != TW_OK)
        return TW_ENOMEM;
    x->pool.reclaim_other = quic_reclaimed;
    x->hello_buf = malloc(TLS_HELLO_MAX);
    return x->hello_buf ? TW_OK : TW_ENOMEM;
}

void extract_fini(struct extractor *x)
{
    free(x->hello_buf);
    x->hello_buf = NULL;
    reasm_pool_fini(&x->pool);
}

const char *extract_label(const struct xflow *xf)
{
    switch (xf->app) {
    case XAPP_TLS:
        return "TLS";
    case XAPP_HTTP:
        return "HTTP";
    case XAPP_DNS:
        return "DNS";
    case XAPP_QUIC:
        return "QUIC";
    default:
        return NULL;
    }
}

static void name(struct extractor *x, const struct obs *ob)
{
    x->ops.on_name(x->ops.ud, ob);
}

/* ---------- TCP ---------- */

static void pend_free(struct extractor *x, struct xflow *xf);

static void finish(struct extractor *x, struct xflow *xf)
{
    pend_free(x, xf);
    xf->done = true;
    xf->app = xf->app ? xf->app : XAPP_NONE;
    stream_reset(&xf->st[0], &x->pool);
    stream_reset(&xf->st[1], &x->pool);
}

/* DNS over TCP: 2-byte length prefix, several messages per segment, or one split. */
static void tcp_dns(struct extractor *x, struct xflow *xf, const struct dec_pkt *p, struct flow *f,
                    int dir)
{
    struct stream *s = &xf->st[dir];
    while (s->len >= 2) {
        uint32_t mlen = (uint32_t)s->buf[0] << 8 | s->buf[1];
        if (mlen + 2 > s->max) {
            x->st.reasm_limit++; /* a message larger than we buffer: stop this direction */
            stream_reset(s, &x->pool);
            xf->done = true;
            return;
        }
        if (s->len < mlen + 2)
            return;
        if (mlen)
            x->ops.on_dns(x->ops.ud, p, f, s->buf + 2, mlen);
        stream_consume(s, mlen + 2);
    }
}

/* A complete ClientHello (TLS or QUIC): its SNI is an observation. TW_ELIMIT (too many
 * extensions or ciphers for JA4) keeps the SNI; TW_EBAD with a name means an extension after a
 * whole server_name is malformed: the name was on the wire all the same (tshark shows it too),
 * so it is reported and the malformation counted. JA4 waits until a rule hits. */
static void hello(struct extractor *x, enum name_kind kind, const uint8_t *msg, size_t n,
                  const struct dec_pkt *p, struct flow *f)
{
    struct tls_hello h;
    bool quic = kind == NK_QUIC_SNI;
    int pr = tls_parse_hello_opt(msg, n, quic, false, &h);
    if (pr != TW_OK && pr != TW_ELIMIT) {
        if (quic)
            x->st.err_quic++;
        else
            x->st.err_tls++;
    }
    if (!(pr == TW_OK || pr == TW_ELIMIT || (pr == TW_EBAD && h.sni)) || !h.sni || !h.sni_len)
        return;
    struct obs ob = {.kind = kind,
                     .name = h.sni,
                     .len = h.sni_len,
                     .p = p,
                     .f = f,
                     .hello = &h,
                     .hello_msg = msg,
                     .hello_len = n};
    name(x, &ob);
}

#define TLS_MAX_HELLOS 3 /* a ClientHello, its retry after a HelloRetryRequest, a duplicate */

/* Everything buffered was parsed: the buffer is freed, and bytes before the next sequence
 * number are known (a retransmission of them is not new data). */
static void parsed_all(struct extractor *x, struct xflow *xf, struct stream *s)
{
    xf->seen_seq = s->base_seq + s->len;
    xf->seen_set = true;
    stream_reset(s, &x->pool);
}

/* Stream bytes taken by the handshake records that carry the first msg_len handshake bytes;
 * 0 when they are not all there. */
static uint32_t records_span(const uint8_t *b, uint32_t len, size_t msg_len)
{
    struct cur c = cur_init(b, len);
    size_t got = 0;
    while (got < msg_len && cur_left(&c) >= 5 && c.p[0] == 0x16) {
        cur_skip(&c, 3);
        uint16_t rl = cur_u16be(&c);
        if (!cur_need(&c, rl))
            return 0;
        cur_skip(&c, rl);
        got += rl;
    }
    return got >= msg_len ? (uint32_t)(c.p - b) : 0;
}

/* After a ClientHello, what the client sends next: the length of the whole ChangeCipherSpec
 * records at the start of d (a HelloRetryRequest's compatibility CCS), and in *hello whether
 * what follows them may still be another ClientHello (too short to tell, or a handshake record
 * whose message is a ClientHello). A CCS record cut at the end of d ends the walk there. */
static uint32_t tls_after_hello(const uint8_t *d, uint32_t len, bool *hello)
{
    struct cur c = cur_init(d, len);
    uint32_t skipped = 0;
    while (cur_left(&c) >= 5 && c.p[0] == 0x14) {
        uint32_t rl = (uint32_t)c.p[3] << 8 | c.p[4];
        if (!cur_need(&c, 5 + (size_t)rl)) {
            *hello = true; /* the rest of the CCS is still to come */
            return skipped;
        }
        cur_skip(&c, 5 + rl);
        skipped += 5 + rl;
    }
    size_t n = cur_left(&c);
    *hello = n < 6 ? (n == 0 || c.p[0] == 0x16) : c.p[0] == 0x16 && c.p[5] == 0x01;
    return skipped;
}

/* In the stream: CCS records dropped; true while another ClientHello may follow. */
static bool tls_more(struct stream *s)
{
    bool hello;
    uint32_t ccs = tls_after_hello(s->buf, s->len, &hello);
    if (ccs)
        stream_consume(s, ccs);
    return hello;
}

/* TLS: each ClientHello of the stream (the first, and one after a HelloRetryRequest). */
static void tcp_tls(struct extractor *x, struct xflow *xf, const struct dec_pkt *p, struct flow *f)
{
    struct stream *s = &xf->st[0];
    while (xf->hellos < TLS_MAX_HELLOS && tls_more(s)) {
        long n = tls_hello_from_records(s->buf, s->len, x->hello_buf, TLS_HELLO_MAX);
        if (n == TW_ETRUNC && s->len < s->max)
            return; /* more to come */
        if (n <= 0) {
            if (xf->hellos == 0)
                x->st.err_tls++;
            if (n == TW_ETRUNC && xf->hellos == 0)
                x->st.reasm_limit++; /* a hello larger than the buffer: give up, free it */
            break;
        }
        hello(x, NK_TLS_SNI, x->hello_buf, (size_t)n, p, f);
        xf->hellos++;
        uint32_t span = records_span(s->buf, s->len, (size_t)n);
        if (!span)
            break;
        stream_consume(s, span);
        if (s->len == 0 && s->n_isl == 0) {
            parsed_all(x, xf, s); /* wait for what the client sends next */
            return;
        }
    }
    finish(x, xf);
}

static bool tcp_preamble(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                         struct flow *f);

/* A CONNECT: the request's Host is reported by the HTTP parser; what follows the head is the
 * tunnel, handed back to the preamble scanner (which reads the CONNECT head itself). */
static void tcp_connect(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                        struct flow *f);

/* HTTP: every request of the buffer (pipelining), each Host an observation. */
/* ---------- HTTP responses: the status of requests the rules want it for ---------- */

/* A flow's requests awaiting their responses, oldest first (a ring of request-head copies).
 * Responses answer requests in order (RFC 9112 9.3.2); an interim 1xx answers none. */
struct http_pend {
    uint8_t n, first;
    bool gave_up;      /* a cap, an unparsable response or an unknown body length: the order
                        * of what follows cannot be trusted, so the flow is not followed */
    bool seen_set;     /* seen_seq is valid */
    uint32_t seen_seq; /* server bytes before this were parsed (or are a known body) */
    struct {
        uint8_t *head;
        uint32_t len;
        bool to_head; /* a HEAD request: its response has no body */
    } q[HTTP_PEND_MAX];
};

/* Drops every queued request (each counted as lost). */
static void pend_drop(struct extractor *x, struct http_pend *hp)
{
    for (; hp->n; hp->n--, hp->first = (uint8_t)((hp->first + 1) % HTTP_PEND_MAX)) {
        x->pend_bytes -= hp->q[hp->first].len;
        free(hp->q[hp->first].head);
        hp->q[hp->first].head = NULL;
        x->st.http_pend_lost++;
    }
}

static void pend_free(struct extractor *x, struct xflow *xf)
{
    if (xf->app != XAPP_HTTP || !xf->pend)
        return; /* the union holds a QUIC state, or nothing */
    pend_drop(x, xf->pend);
    free(xf->pend);
    xf->pend = NULL;
}

static void pend_give_up(struct extractor *x, struct xflow *xf)
{
    pend_drop(x, xf->pend);
    xf->pend->gave_up = true;
    stream_reset(&xf->st[1], &x->pool);
}

/* Keeps a copy of a parsed request head (every one, Host or not, to keep the order). */
static void pend_request(struct extractor *x, struct xflow *xf, const uint8_t *head,
                         const struct http_req *rq)
{
    if (!x->ops.want_responses || !x->ops.want_responses(x->ops.ud))
        return;
    if (!xf->pend && !(xf->pend = calloc(1, sizeof(*xf->pend)))) {
        x->st.http_pend_lost++;
        return;
    }
    struct http_pend *hp = xf->pend;
    uint8_t *c = NULL;
    if (hp->gave_up || hp->n == HTTP_PEND_MAX || x->pend_bytes + rq->head_len > HTTP_PEND_BYTES ||
        !(c = malloc(rq->head_len))) {
        if (!hp->gave_up)
            pend_give_up(x, xf);
        x->st.http_pend_lost++;
        return;
    }
    memcpy(c, head, rq->head_len);
    unsigned i = (hp->first + hp->n) % HTTP_PEND_MAX;
    hp->q[i].head = c;
    hp->q[i].len = (uint32_t)rq->head_len;
    hp->q[i].to_head = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
    hp->n++;
    x->pend_bytes += rq->head_len;
}

/* The oldest request's final response came: its head parsed again, seen with the status. */
static void pend_answer(struct extractor *x, struct http_pend *hp, const struct dec_pkt *p,
                        struct flow *f, uint16_t status)
{
    uint8_t *head = hp->q[hp->first].head;
    uint32_t len = hp->q[hp->first].len;
    struct http_req rq;
    if (http_parse_request(head, len, &rq) == TW_OK && rq.host_len) {
        struct obs ob = {.kind = NK_HTTP_HOST,
                         .name = rq.host,
                         .len = rq.host_len,
                         .p = p,
                         .f = f,
                         .http = &rq,
                         .status = status};
        x->ops.on_name(x->ops.ud, &ob);
    }
    free(head);
    hp->q[hp->first].head = NULL;
    x->pend_bytes -= len;
    hp->first = (uint8_t)((hp->first + 1) % HTTP_PEND_MAX);
    hp->n--;
}

/* The server's bytes from seen_seq on (a retransmission, or the rest of a known body, is not
 * a new response); NULL when none is new or no response can start here. */
static const uint8_t *resp_bytes(const struct http_pend *hp, const struct stream *s,
                                 const struct dec_pkt *p, uint32_t *seq, uint32_t *len)
{
    *seq = p->seq + ((p->tcp_flags & TW_TH_SYN) ? 1u : 0u);
    *len = p->payload_len;
    const uint8_t *d = p->payload;
    if (s->len || s->n_isl)
        return d;
    if (hp->seen_set) {
        int32_t old = (int32_t)(hp->seen_seq - *seq);
        if (old > 0 && (uint32_t)old >= *len)
            return NULL;
        if (old > 0) {
            d += old;
            *len -= (uint32_t)old;
            *seq = hp->seen_seq;
        }
    }
    size_t k = *len < 5 ? *len : 5;
    return memcmp(d, "HTTP/", k) == 0 ? d : NULL; /* a new buffer starts at a status line */
}

/* Server bytes of an HTTP flow with requests pending: status lines, in order. */
static void tcp_http_response(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                              struct flow *f)
{
    struct http_pend *hp = xf->pend;
    struct stream *s = &xf->st[1];
    uint32_t seq, len;
    const uint8_t *data = hp->gave_up || !hp->n ? NULL : resp_bytes(hp, s, p, &seq, &len);
    if (!data)
        return;
    int r = stream_add(s, seq, data, len, &x->pool);
    if (r < 0) {
        x->st.reasm_limit++;
        pend_give_up(x, xf);
        return;
    }
    if (r == 0 || s->len == 0)
        return; /* a gap: wait for the bytes before it */
    struct http_resp rs = {0};
    while (hp->n) {
        int rc = http_parse_response(s->buf, s->len, hp->q[hp->first].to_head, &rs);
        if (rc == TW_ETRUNC && s->len < HTTP_HEAD_MAX && s->len < s->max)
            return;
        if (rc != TW_OK || !rs.next_known || rs.status == 101) {
            if (rc == TW_OK) /* the status counts; what follows cannot be placed */
                pend_answer(x, hp, p, f, rs.status);
            pend_give_up(x, xf);
            return;
        }
        if (rs.status >= 200)
            pend_answer(x, hp, p, f, rs.status);
        if (rs.next >= s->len)
            break;
        stream_consume(s, (uint32_t)rs.next);
    }
    hp->seen_seq = s->base_seq + (uint32_t)(rs.next > s->len ? rs.next : s->len);
    hp->seen_set = true;
    stream_reset(s, &x->pool);
}

static void tcp_http(struct extractor *x, struct xflow *xf, const struct dec_pkt *p, struct flow *f)
{
    struct stream *s = &xf->st[0];
    for (;;) {
        struct http_req rq;
        int r = http_parse_request(s->buf, s->len, &rq);
        if (r == TW_ETRUNC && s->len < HTTP_HEAD_MAX && s->len < s->max)
            return;
        if (r == TW_OK && rq.connect) {
            pend_free(x, xf); /* a tunnel follows: its responses are not ours */
            tcp_connect(x, xf, p, f);
            return;
        }
        if (r == TW_OK)
            pend_request(x, xf, s->buf, &rq);
        if (r == TW_OK && rq.host_len) {
            struct obs ob = {.kind = NK_HTTP_HOST,
                             .name = rq.host,
                             .len = rq.host_len,
                             .p = p,
                             .f = f,
                             .http = &rq};
            name(x, &ob);
        } else if (r != TW_OK) {
            x->st.err_http++;
        }
        if (r == TW_OK && rq.next_known && rq.next < s->len) {
            stream_consume(s, (uint32_t)rq.next); /* pipelined: the next request is here */
            continue;
        }
        /* wait for the next request of a keep-alive connection: the buffer restarts at the
         * next segment that begins with a request line; a retransmission is not one */
        parsed_all(x, xf, s);
        return;
    }
}

static void tcp_connect(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                        struct flow *f)
{
    xf->app = XAPP_UNKNOWN;
    if (!tcp_preamble(x, xf, p, f))
        return;
    if (xf->app == XAPP_TLS)
        tcp_tls(x, xf, p, f);
    else if (xf->app == XAPP_HTTP)
        tcp_http(x, xf, p, f); /* depth bounded by PRE_MAX_LAYERS */
}

/* The part of a segment that was not parsed before: all of it, unless the stream restarted
 * after a parsed message and the segment repeats some of it (NULL when it is all old). */
static const uint8_t *new_bytes(const struct xflow *xf, const struct stream *s,
                                const struct dec_pkt *p, uint32_t *seq, uint32_t *len)
{
    /* data in a SYN (TCP Fast Open) starts after the SYN's own sequence number */
    *seq = p->seq + ((p->tcp_flags & TW_TH_SYN) ? 1u : 0u);
    *len = p->payload_len;
    if (!xf->seen_set || s->len || s->n_isl)
        return p->payload;
    int32_t old = (int32_t)(xf->seen_seq - *seq);
    if (old <= 0)
        return p->payload;
    if ((uint32_t)old >= *len)
        return NULL;
    *seq = xf->seen_seq;
    *len -= (uint32_t)old;
    return p->payload + old;
}

/* The names a proxy handshake carries: a CONNECT's Host header is an http_host as tshark
 * reports it; the tunnel's target (CONNECT authority, SOCKS4a/5 domain, PROXY v2 authority)
 * is matched against the rules as proxy_target when no Host header named it already. */
static void preamble_names(struct extractor *x, const struct pre_result *r, const struct dec_pkt *p,
                           struct flow *f)
{
    if (r->host && r->host_len) {
        struct obs ob = {.kind = NK_HTTP_HOST, .name = r->host, .len = r->host_len, .p = p, .f = f};
        name(x, &ob);
    }
    if (r->authority && r->authority_len &&
        !(r->host && r->host_len == r->authority_len &&
          !strncasecmp((const char *)r->host, (const char *)r->authority, r->host_len))) {
        struct obs ob = {
            .kind = NK_PROXY_TARGET, .name = r->authority, .len = r->authority_len, .p = p, .f = f};
        name(x, &ob);
    }
}

/* The client's bytes up to a ClientHello or an HTTP request: proxy handshakes and STARTTLS
 * upgrades are walked through (preamble.h). True when xf->app is decided and the stream starts
 * at it; false while undecided, or when the flow was given up (done). */
static bool tcp_preamble(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                         struct flow *f)
{
    struct stream *s = &xf->st[0];
    for (;;) {
        struct pre_result r;
        int v = pre_scan(&xf->pre, s->buf, s->len, &r);
        if (v == PRE_SKIP) {
            preamble_names(x, &r, p, f);
            stream_consume(s, (uint32_t)r.off);
            continue;
        }
        if (v == PRE_TLS_AT || v == PRE_HTTP_AT) {
            stream_consume(s, (uint32_t)r.off);
            xf->app = v == PRE_TLS_AT ? XAPP_TLS : XAPP_HTTP;
            return true;
        }
        if (v == PRE_NEED_MORE && s->len < s->max)
            return false;
        if (v == PRE_NEED_MORE)
            x->st.reasm_limit++; /* a preamble message larger than the buffer */
        finish(x, xf);
        return false;
    }
}

#define TCP_DNS_QUERY_MAX 1024 /* a DNS query on another port is waited for up to this size */

/* DNS over TCP on another port: 1 a query (length prefix and a plausible message), 0 not
 * sure yet, -1 not DNS. */
static int tcp_dns_query(const struct stream *s)
{
    if (s->len < 2)
        return 0;
    uint32_t mlen = (uint32_t)s->buf[0] << 8 | s->buf[1];
    if (mlen < 17 || mlen > TCP_DNS_QUERY_MAX || mlen + 2 > s->max)
        return -1;
    if (s->len < mlen + 2)
        return 0;
    bool is_query;
    return dns_plausible(s->buf + 2, mlen, &is_query) && is_query ? 1 : -1;
}

/* The flow's first bytes decide its parser: DNS by port, a ClientHello or a request at once
 * (the common case), a DNS query by structure, else whatever a known preamble leads to. False
 * while undecided, or when the flow has nothing for us (done). */
static bool tcp_classify(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                         struct flow *f, bool dns)
{
    const struct stream *s = &xf->st[0];
    if (dns)
        xf->app = XAPP_DNS;
    else if (s->len >= 3 && tls_looks_like_hello(s->buf, s->len))
        xf->app = XAPP_TLS;
    else if (s->len >= 8 && http_looks_like_request(s->buf, s->len) &&
             memcmp(s->buf, "CONNECT ", 8) != 0)
        xf->app = XAPP_HTTP;
    else if (tcp_dns_query(s) > 0)
        xf->app = XAPP_DNS;
    else
        return tcp_preamble(x, xf, p, f);
    return true;
}

/* The common case of a TLS flow: its first segment holds one handshake record that holds
 * the whole ClientHello, and nothing else. That hello is read in place, as the buffered path
 * would read it (same name, same counters, same state after: the stream empty, the bytes
 * before the next sequence number known), but without a reassembly buffer, a pool share or a
 * copy. True when the segment was taken; false leaves everything to the buffered path. */
static bool tls_whole_segment(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                              struct flow *f, uint32_t seq, const uint8_t *d, uint32_t len)
{
    struct stream *s = &xf->st[0];
    if (xf->app != XAPP_UNKNOWN || s->len || s->n_isl || s->buf || s->h.lost ||
        (s->base_set && seq != s->base_seq) || len > s->max)
        return false;
    struct cur c = cur_init(d, len);
    uint8_t type = cur_u8(&c), major = cur_u8(&c), minor = cur_u8(&c);
    uint32_t rlen = cur_u16be(&c);
    uint8_t msg = cur_u8(&c);
    uint32_t mlen = 4 + cur_u24be(&c);
    /* a handshake record that is the segment, a ClientHello that fits it and the hello buffer */
    if (c.err || type != 0x16 || major != 3 || minor > 4 || msg != 0x01 || rlen + 5 != len ||
        rlen > TLS_RECORD_MAX || mlen > rlen || mlen > TLS_HELLO_MAX)
        return false;
    xf->app = XAPP_TLS;
    hello(x, NK_TLS_SNI, d + 5, mlen, p, f);
    xf->hellos++;
    stream_reset(s, &x->pool);
    xf->seen_seq = seq + len;
    xf->seen_set = true;
    return true;
}

static void tcp_packet(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                       struct flow *f, int dir)
{
    if ((p->tcp_flags & TW_TH_SYN) && !xf->done)
        stream_set_base(&xf->st[dir], p->seq + 1);
    if (xf->done || p->payload_len == 0)
        return;
    bool dns = f->sport == 53 || f->cport == 53 || xf->app == XAPP_DNS;
    if (dir == 1 && !dns) {
        if (xf->app == XAPP_HTTP && xf->pend)
            tcp_http_response(x, xf, p, f); /* the status of requests the rules want it for */
        return; /* only the client's bytes carry the names we want (DNS answers aside) */
    }
    struct stream *s = &xf->st[dir];
    uint32_t seq, len;
    const uint8_t *data = new_bytes(xf, s, p, &seq, &len);
    /* keep-alive: after a request the buffer was reset (no base), so the next segment that
     * starts a request line becomes its base */
    if (!data || (xf->app == XAPP_HTTP && s->len == 0 && s->n_isl == 0 &&
                  !http_looks_like_request(data, len)))
        return;
    /* a segment after a read ClientHello that cannot start another: done, not buffered again */
    bool rehello = true;
    if (xf->app == XAPP_TLS && xf->hellos && s->len == 0 && s->n_isl == 0)
        (void)tls_after_hello(data, len, &rehello);
    if (!rehello) {
        finish(x, xf);
        return;
    }
    if (dir == 0 && !dns && tls_whole_segment(x, xf, p, f, seq, data, len))
        return;
    int r = stream_add(s, seq, data, len, &x->pool);
    if (r < 0) {
        x->st.reasm_limit++;
        if (r != TW_ELIMIT || s->len == 0) {
            finish(x, xf);
            return;
        }
    }
    if (r == 0 || s->len == 0)
        return;
    if (xf->app == XAPP_UNKNOWN && !tcp_classify(x, xf, p, f, dns))
        return;
    if (xf->app == XAPP_DNS)
        tcp_dns(x, xf, p, f, dir);
    else if (xf->app == XAPP_TLS)
        tcp_tls(x, xf, p, f);
    else if (xf->app == XAPP_HTTP)
        tcp_http(x, xf, p, f);
}

/* ---------- UDP ---------- */

static void quic_stop(struct extractor *x, struct xflow *xf)
{
    if (xf->quic) {
        quic_initial_free(xf->quic);
        xf->quic = NULL;
    }
    reasm_release(&x->pool, &xf->qh);
    if (xf->app == XAPP_UNKNOWN)
        xf->app = XAPP_NONE;
    xf->done = true;
}

/* QUIC state for a flow whose client packet looks like an Initial; false when the flow is
 * not (or no longer) worth it. */
static bool quic_start(struct extractor *x, struct xflow *xf, const struct dec_pkt *p)
{
    if (!quic_looks_like_initial(p->payload, p->payload_len)) {
        if (++xf->quic_pkts >= 3)
            quic_stop(x, xf);
        return false; /* a 0-RTT packet ahead of its Initial: wait a little */
    }
    /* the state's crypto buffers count against the reassembly budget; a stalled holder may
     * be reclaimed to make room (stream.h) */
    if (reasm_take(&x->pool, &xf->qh, QUIC_CRYPTO_MAX * 2) != TW_OK) {
        x->st.reasm_limit++;
        quic_stop(x, xf);
        return false;
    }
    xf->quic = quic_initial_new();
    if (!xf->quic) {
        quic_stop(x, xf);
        return false;
    }
    xf->app = XAPP_QUIC;
    return true;
}

static void udp_quic(struct extractor *x, struct xflow *xf, const struct dec_pkt *p, struct flow *f)
{
    /* client long-header packets (0-RTT may come before the Initial); a short-header client
     * packet means the handshake is over */
    if (p->payload_len < 7 || (p->payload[0] & 0xc0) != 0xc0) {
        quic_stop(x, xf);
        return;
    }
    if (!xf->quic && !quic_start(x, xf, p))
        return;
    long n = quic_initial_feed(xf->quic, p->payload, p->payload_len);
    if (n == TW_EBAD && !xf->quic_ok) {
        /* nothing of this flow ever decrypted: do not hold 32 KiB of the shared reassembly
         * budget for a flow of junk or spoofed Initials */
        x->st.err_quic++;
        quic_stop(x, xf);
        return;
    }
    if (n > 0 || n == TW_ETRUNC) {
        xf->quic_ok = true;
        reasm_touch(&x->pool, &xf->qh); /* progress: not a stalled state */
    }
    if (n > 0)
        hello(x, NK_QUIC_SNI, quic_initial_hello(xf->quic), (size_t)n, p, f);
    /* keep listening: after a HelloRetryRequest the client sends a second ClientHello */
    else if (n != TW_ETRUNC)
        x->st.err_quic++;
    if (++xf->quic_pkts >= QUIC_MAX_PKTS)
        quic_stop(x, xf);
}

static void udp_packet(struct extractor *x, struct xflow *xf, const struct dec_pkt *p,
                       struct flow *f, int dir)
{
    if (p->payload_len == 0)
        return;
    bool is_query;
    if (p->sport == 53 || p->dport == 53 || xf->app == XAPP_DNS) {
        xf->app = XAPP_DNS;
        x->ops.on_dns(x->ops.ud, p, f, p->payload, p->payload_len);
        return;
    }
    if (p->sport == 5353 || p->dport == 5353 || p->sport == 5355 || p->dport == 5355)
        return; /* mDNS and LLMNR: link-local name resolution, not tunnelling; ignored */
    if (xf->done || dir != 0)
        return;
    /* DNS on another port (dnscrypt certificates on 443, a resolver the attacker chose), told
     * by its structure from everything else; a QUIC Initial never passes for a query */
    if (xf->app == XAPP_UNKNOWN && !xf->quic &&
        dns_plausible(p->payload, p->payload_len, &is_query) && is_query) {
        xf->app = XAPP_DNS;
        x->ops.on_dns(x->ops.ud, p, f, p->payload, p->payload_len);
        return;
    }
    udp_quic(x, xf, p, f);
}

void extract_packet(struct extractor *x, struct xflow *xf, const struct dec_pkt *p, struct flow *f,
                    int dir)
{
    if (!xf->st[0].max) {
        xf->st[0].max = xf->st[1].max = x->reasm_bytes;
        reasm_set_source(&x->pool, &xf->st[0].h, &f->cli, REASM_STREAM);
        reasm_set_source(&x->pool, &xf->st[1].h, &f->cli, REASM_STREAM);
        reasm_set_source(&x->pool, &xf->qh, &f->cli, REASM_OTHER);
    }
    if (p->proto == 6)
        tcp_packet(x, xf, p, f, dir);
    else
        udp_packet(x, xf, p, f, dir);
}

void extract_release(struct extractor *x, struct xflow *xf)
{
    finish(x, xf); /* reassembly buffers */
    quic_stop(x, xf);
}
