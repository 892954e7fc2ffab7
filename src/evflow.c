/* evflow.c - one capture thread's evidence: early packets of young flows, flagged flows'
 * packets to the writer, the DNS query ring (see evidence.h).
 *
 * A young flow's early packets are copied into one buffer per flow (grown by doubling up to
 * evidence.early_kib), each a struct evpkt header and the frame's captured bytes; the pool
 * accounts every buffer's capacity against evidence.early_total_mib. The buffer lives only
 * while the flow may still be flagged: the engine calls evflow_decided() as soon as our
 * parsers are done with a flow that no rule flagged, so on the common path a flow costs a
 * copy of its first few packets. The state of a decided flow goes back to a short list of
 * spares with its buffer (still accounted as early bytes), for the next young flow: no
 * malloc/free per flow. A decided flow keeps a static marker instead of its state.
 */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/evidence.h"

#define QRING     64
#define QMAX      1024 /* a query frame longer than this is not kept */
#define SPARES    64   /* decided flows' states kept for reuse */
#define SPARE_CAP 8192 /* ... with a buffer no larger than this */

struct evpkt {
    struct pcap_pkthdr h;
};

struct evflow {
    char incident[40]; /* "" until flagged */
    uint64_t written;  /* bytes of this flow queued to its incident */
    uint32_t n, len, cap;
    uint8_t *buf; /* early packets until flagged */
};

static struct evflow decided_marker; /* a flow decided not flagged: no state */

struct qslot {
    struct dec_pkt key; /* addresses, ports */
    uint16_t txid;
    struct pcap_pkthdr h;
    uint8_t data[QMAX];
};

struct evpool {
    struct evw *w;
    struct evpool_opts o;
    int dlt;
    uint64_t used;
    struct evpool_stats st;
    struct qslot *q; /* QRING, allocated on the first query */
    size_t q_next;
    struct evflow *spare[SPARES]; /* owned, with their buffers */
    uint32_t n_spare;
};

struct evpool *evpool_new(struct evw *w, const struct evpool_opts *o)
{
    struct evpool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->w = w;
    p->o = *o;
    return p;
}

void evpool_free(struct evpool *p)
{
    if (!p)
        return;
    free(p->q);
    for (uint32_t i = 0; i < p->n_spare; i++) {
        free(p->spare[i]->buf);
        free(p->spare[i]);
    }
    free(p);
}

void evpool_get_stats(const struct evpool *p, struct evpool_stats *st)
{
    *st = p->st;
    st->early_bytes = p->used;
}

void evpool_set_dlt(struct evpool *p, int dlt)
{
    p->dlt = dlt;
}

/* A flow's state: a spare (its buffer kept, empty) or a new one. NULL when out of memory. */
static struct evflow *ev_take(struct evpool *p)
{
    if (!p->n_spare)
        return calloc(1, sizeof(struct evflow));
    return p->spare[--p->n_spare];
}

static void early_free(struct evpool *p, struct evflow *f);

/* A decided or ended flow's state back to the spares, or freed. */
static void ev_give(struct evpool *p, struct evflow *f)
{
    if (p->n_spare < SPARES && f->cap <= SPARE_CAP && !f->incident[0]) {
        f->n = f->len = 0;
        f->written = 0;
        p->spare[p->n_spare++] = f;
        return;
    }
    early_free(p, f);
    free(f);
}

bool evflow_flagged(const struct evflow *f)
{
    return f && f->incident[0];
}

static void early_free(struct evpool *p, struct evflow *f)
{
    p->used -= f->cap;
    free(f->buf);
    f->buf = NULL;
    f->n = f->len = f->cap = 0;
}

/* The flagged flow's packet to its incident, within evidence.max_flow_mib. */
static void flow_send(struct evpool *p, struct evflow *f, const struct pcap_pkthdr *h,
                      const uint8_t *data)
{
    if (f->written + 16 + h->caplen > p->o.max_flow_bytes) {
        p->st.flow_capped++;
        return;
    }
    f->written += 16 + h->caplen;
    (void)evw_put(p->w, f->incident, p->dlt, h, data);
}

/* Room for need more bytes in f's buffer, within the flow's and the pool's caps. */
static bool early_room(struct evpool *p, struct evflow *f, uint32_t need)
{
    if (f->n >= p->o.early_packets || f->len + need > p->o.early_bytes) {
        p->st.early_overflow++;
        return false;
    }
    if (f->len + need <= f->cap)
        return true;
    uint32_t nc = f->cap ? f->cap : 2048;
    while (nc < f->len + need)
        nc *= 2;
    if (nc > p->o.early_bytes)
        nc = p->o.early_bytes;
    if (p->used - f->cap + nc > p->o.early_total) {
        p->st.early_refused++;
        return false;
    }
    uint8_t *nb = realloc(f->buf, nc);
    if (!nb) {
        p->st.early_refused++;
        return false;
    }
    p->used = p->used - f->cap + nc;
    f->buf = nb;
    f->cap = nc;
    return true;
}

void evflow_packet(struct evpool *p, struct evflow **slot, const struct pcap_pkthdr *h,
                   const uint8_t *data)
{
    struct evflow *f = *slot;
    if (f == &decided_marker)
        return;
    if (!f) {
        if (p->o.early_packets == 0)
            return;
        f = *slot = ev_take(p);
        if (!f) {
            p->st.early_refused++;
            return;
        }
    }
    if (f->incident[0]) {
        flow_send(p, f, h, data);
        return;
    }
    uint32_t need = (uint32_t)sizeof(struct evpkt) + h->caplen;
    if (!early_room(p, f, need))
        return;
    struct evpkt k = {*h};
    memcpy(f->buf + f->len, &k, sizeof(k));
    memcpy(f->buf + f->len + sizeof(k), data, h->caplen);
    f->len += need;
    f->n++;
}

void evflow_flag(struct evpool *p, struct evflow **slot, const char *incident,
                 const struct tw_addr *srv, int64_t since_us)
{
    struct evflow *f = *slot;
    if (f && f->incident[0])
        return;
    if (!f || f == &decided_marker) {
        f = *slot = ev_take(p);
        if (!f) {
            *slot = &decided_marker;
            return;
        }
    }
    snprintf(f->incident, sizeof(f->incident), "%s", incident);
    if (srv)
        evw_dns_attach(p->w, incident, srv, since_us);
    for (uint32_t off = 0; off < f->len;) {
        struct evpkt k;
        memcpy(&k, f->buf + off, sizeof(k));
        flow_send(p, f, &k.h, f->buf + off + sizeof(k));
        off += (uint32_t)sizeof(k) + k.h.caplen;
    }
    early_free(p, f);
}

void evflow_decided(struct evpool *p, struct evflow **slot)
{
    struct evflow *f = *slot;
    if (!f || f == &decided_marker || f->incident[0])
        return;
    ev_give(p, f);
    *slot = &decided_marker;
}

void evflow_settled(struct evflow **slot)
{
    *slot = &decided_marker;
}

void evflow_end(struct evpool *p, struct evflow **slot)
{
    struct evflow *f = *slot;
    *slot = NULL;
    if (!f || f == &decided_marker)
        return;
    if (f->incident[0])
        evw_sync(p->w, f->incident);
    ev_give(p, f);
}

/* ---------- DNS queries and answers ---------- */

static uint16_t txid_of(const struct dec_pkt *d)
{
    if (d->payload_len < 2)
        return 0;
    return (uint16_t)(d->payload[0] << 8 | d->payload[1]);
}

void evpool_dns_query(struct evpool *p, const struct dec_pkt *d, const struct pcap_pkthdr *h,
                      const uint8_t *data)
{
    if (d->proto != 17 || h->caplen > QMAX)
        return;
    if (!p->q && !(p->q = calloc(QRING, sizeof(*p->q))))
        return;
    struct qslot *s = &p->q[p->q_next];
    p->q_next = (p->q_next + 1) % QRING;
    s->key.src = d->src;
    s->key.dst = d->dst;
    s->key.sport = d->sport;
    s->key.dport = d->dport;
    s->txid = txid_of(d);
    s->h = *h;
    memcpy(s->data, data, h->caplen);
}

void evpool_dns_answer(struct evpool *p, const struct dec_pkt *d, const struct tw_addr *addr,
                       const struct pcap_pkthdr *h, const uint8_t *data)
{
    const struct qslot *q = NULL;
    for (size_t i = 0; p->q && d->proto == 17 && i < QRING; i++) {
        const struct qslot *s = &p->q[(p->q_next + QRING - 1 - i) % QRING];
        if (s->h.caplen && s->txid == txid_of(d) && s->key.sport == d->dport &&
            s->key.dport == d->sport && tw_addr_eq(&s->key.src, &d->dst) &&
            tw_addr_eq(&s->key.dst, &d->src)) {
            q = s;
            break;
        }
    }
    evw_dns_keep(p->w, addr, p->dlt, q ? &q->h : NULL, q ? q->data : NULL, h, data);
}
