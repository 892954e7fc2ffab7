/* flow.c - bounded bidirectional flow table (see flow.h).
 *
 * Trade-offs: a chained hash with one bucket per allowed flow keeps lookups O(1) on average;
 * SipHash with a per-process random key keeps an attacker from aiming collisions at one
 * chain. Records come from chunks of FLOW_CHUNK allocated on demand up to max_flows and are
 * recycled through a free list, so steady state allocates nothing and memory is bounded by
 * max_flows * sizeof(struct flow) plus the buckets.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tunnelwatch/flow.h"

#define FLOW_CHUNK 4096

struct flow_list_head {
    struct flow *head, *tail;
};

struct flow_table {
    struct flow_opts o;
    flow_end_fn end;
    void *ud;
    uint8_t key[16];
    struct flow **buckets;
    size_t nbuckets; /* power of two */
    size_t stride;   /* sizeof(struct flow) + ext, aligned */
    uint8_t **chunks;
    size_t nchunks, chunk_cap;
    struct flow *free;
    size_t allocated; /* records carved from chunks */
    struct flow_list_head lists[FLOW_L__N];
    uint64_t next_id;
    struct flow_stats st;
    struct flow *last; /* flow of the previous lookup, NULL once it leaves the table */
};

/* --- SipHash-2-4 (Aumasson and Bernstein, 2012) --- */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t siphash_rounds(const uint8_t key[16], const uint8_t *data, size_t len, int c, int d)
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = le64(data + i);
        v3 ^= m;
        for (int r = 0; r < c; r++)
            SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)data[full + i] << (8 * i);
    v3 ^= b;
    for (int r = 0; r < c; r++)
        SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int r = 0; r < d; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t tw_siphash(const uint8_t key[16], const uint8_t *data, size_t len)
{
    return siphash_rounds(key, data, len, 2, 4);
}

/* SipHash-1-3 for the per-packet flow key: the same keyed construction with fewer rounds, as
 * hash tables commonly use it (still no way to aim collisions without the key). */
static uint64_t siphash13(const uint8_t key[16], const uint8_t *data, size_t len)
{
    return siphash_rounds(key, data, len, 1, 3);
}

/* Canonical key bytes: the smaller (addr, port) endpoint first, so both directions hash
 * alike; IPv4 addresses take 4 bytes, so the common key is 2 SipHash blocks, not 5. */
static uint64_t hash_tuple(const struct flow_table *t, const struct tw_addr *s, uint16_t sp,
                           const struct tw_addr *d, uint16_t dp, uint8_t proto, uint16_t vlan)
{
    uint8_t k[2 * 16 + 8];
    size_t alen = s->family == 6 ? 16 : 4, n = 0;
    int c = memcmp(s->a, d->a, alen);
    bool swap = c > 0 || (c == 0 && sp > dp);
    const struct tw_addr *a = swap ? d : s, *b = swap ? s : d;
    uint16_t pa = swap ? dp : sp, pb = swap ? sp : dp;
    memcpy(k, a->a, alen);
    memcpy(k + alen, b->a, alen);
    n = 2 * alen;
    k[n++] = (uint8_t)(pa >> 8);
    k[n++] = (uint8_t)pa;
    k[n++] = (uint8_t)(pb >> 8);
    k[n++] = (uint8_t)pb;
    k[n++] = proto;
    k[n++] = s->family;
    k[n++] = (uint8_t)(vlan >> 8);
    k[n++] = (uint8_t)vlan;
    return siphash13(t->key, k, n);
}

struct flow_table *flow_table_new(const struct flow_opts *o, flow_end_fn end, void *ud)
{
    if (o->max_flows == 0)
        return NULL;
    struct flow_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->o = *o;
    t->end = end;
    t->ud = ud;
    if (getrandom(t->key, sizeof(t->key), 0) != (ssize_t)sizeof(t->key)) {
        /* no entropy source: fall back to addresses and time, still per process */
        uint64_t x = (uint64_t)(uintptr_t)t ^ (uint64_t)(uintptr_t)&t;
        memcpy(t->key, &x, 8);
    }
    t->stride = (sizeof(struct flow) + o->ext_size + 15) & ~(size_t)15;
    t->nbuckets = 1024;
    while (t->nbuckets < (size_t)o->max_flows * 2) /* load <= 0.5 even at the cap */
        t->nbuckets <<= 1;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    t->chunk_cap = (o->max_flows + FLOW_CHUNK - 1) / FLOW_CHUNK;
    t->chunks = calloc(t->chunk_cap, sizeof(*t->chunks));
    if (!t->buckets || !t->chunks) {
        free(t->buckets);
        free(t->chunks);
        free(t);
        return NULL;
    }
    return t;
}

static void list_unlink(struct flow_table *t, struct flow *f)
{
    struct flow_list_head *l = &t->lists[f->list];
    if (f->prev)
        f->prev->next = f->next;
    else
        l->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        l->tail = f->prev;
    f->prev = f->next = NULL;
}

static void list_append(struct flow_table *t, struct flow *f, uint8_t list)
{
    struct flow_list_head *l = &t->lists[list];
    f->list = list;
    f->next = NULL;
    f->prev = l->tail;
    if (l->tail)
        l->tail->next = f;
    else
        l->head = f;
    l->tail = f;
}

static void remove_flow(struct flow_table *t, struct flow *f, enum flow_end_reason why)
{
    if (t->last == f)
        t->last = NULL;
    if (t->end)
        t->end(t->ud, f, why);
    *f->hpprev = f->hnext;
    if (f->hnext)
        f->hnext->hpprev = f->hpprev;
    list_unlink(t, f);
    f->hnext = t->free;
    t->free = f;
    t->st.active--;
}

void flow_table_free(struct flow_table *t)
{
    if (!t)
        return;
    for (int l = 0; l < FLOW_L__N; l++)
        while (t->lists[l].head)
            remove_flow(t, t->lists[l].head, FLOW_END_SHUTDOWN);
    for (size_t i = 0; i < t->nchunks; i++)
        free(t->chunks[i]);
    free(t->chunks);
    free(t->buckets);
    free(t);
}

static struct flow *alloc_flow(struct flow_table *t)
{
    if (t->free) {
        struct flow *f = t->free;
        t->free = f->hnext;
        return f;
    }
    if (t->allocated < t->o.max_flows) {
        size_t ci = t->allocated / FLOW_CHUNK, idx = t->allocated % FLOW_CHUNK;
        if (idx == 0) {
            t->chunks[ci] = malloc(FLOW_CHUNK * t->stride);
            if (!t->chunks[ci])
                return NULL;
            t->nchunks++;
        }
        t->allocated++;
        return (struct flow *)(void *)(t->chunks[ci] + idx * t->stride);
    }
    /* at the cap: evict the oldest idle flow, closed ones first */
    struct flow *victim = t->lists[FLOW_L_CLOSED].head;
    if (!victim) {
        struct flow *a = t->lists[FLOW_L_TCP].head, *b = t->lists[FLOW_L_UDP].head;
        victim = !a ? b : !b ? a : (tw_time_us(a->last) <= tw_time_us(b->last) ? a : b);
    }
    if (!victim)
        return NULL;
    t->st.evicted++;
    remove_flow(t, victim, FLOW_END_EVICTED);
    struct flow *f = t->free;
    t->free = f->hnext;
    return f;
}

/* 0: p goes client->server in f, 1: server->client, -1: not f's packet. */
static int match_dir(const struct flow *f, const struct dec_pkt *p)
{
    if (f->proto != p->proto || f->vlan != p->vlan)
        return -1;
    if (f->cport == p->sport && f->sport == p->dport && tw_addr_eq(&f->cli, &p->src) &&
        tw_addr_eq(&f->srv, &p->dst))
        return 0;
    if (f->cport == p->dport && f->sport == p->sport && tw_addr_eq(&f->cli, &p->dst) &&
        tw_addr_eq(&f->srv, &p->src))
        return 1;
    return -1;
}

static bool low_port(uint16_t p)
{
    return p != 0 && p < 1024;
}

struct flow *flow_lookup(struct flow_table *t, const struct dec_pkt *p, struct tw_time now,
                         int *dir, flow_is_internal_fn internal, void *iud)
{
    /* consecutive packets of one flow are the common case (bulk transfers): try the last
     * flow before hashing */
    struct flow *f = t->last;
    int d = f ? match_dir(f, p) : -1;
    uint64_t h = 0;
    if (d < 0) {
        h = hash_tuple(t, &p->src, p->sport, &p->dst, p->dport, p->proto, p->vlan);
        for (f = t->buckets[h & (t->nbuckets - 1)]; f; f = f->hnext)
            if (f->hash == h && (d = match_dir(f, p)) >= 0)
                break;
    }
    if (f && d >= 0) {
        /* a new connection reusing the 5-tuple of a closed one (SYN without ACK) is a new
         * flow: its ClientHello must be read again */
        if (!(f->list == FLOW_L_CLOSED && p->proto == 6 && (p->tcp_flags & TW_TH_SYN) &&
              !(p->tcp_flags & TW_TH_ACK))) {
            *dir = d;
            t->last = f;
            return f;
        }
        h = f->hash;
        t->st.closed++;
        remove_flow(t, f, FLOW_END_CLOSED);
    }
    if (!h)
        h = hash_tuple(t, &p->src, p->sport, &p->dst, p->dport, p->proto, p->vlan);
    f = alloc_flow(t);
    if (!f)
        return NULL;
    memset(f, 0, t->stride);
    f->ext = t->o.ext_size ? (uint8_t *)f + sizeof(struct flow) : NULL;
    /* Who is the client: the SYN says; otherwise the well-known port is the server's, then
     * the internal side is the client, then the first sender. */
    bool sender_is_client = true;
    if (p->proto == 6 && (p->tcp_flags & TW_TH_SYN))
        sender_is_client = !(p->tcp_flags & TW_TH_ACK);
    else if (low_port(p->dport) != low_port(p->sport))
        sender_is_client = low_port(p->dport);
    else if (internal && internal(iud, &p->src) != internal(iud, &p->dst))
        sender_is_client = internal(iud, &p->src);
    if (sender_is_client) {
        f->cli = p->src;
        f->srv = p->dst;
        f->cport = p->sport;
        f->sport = p->dport;
        *dir = 0;
    } else {
        f->cli = p->dst;
        f->srv = p->src;
        f->cport = p->dport;
        f->sport = p->sport;
        *dir = 1;
    }
    f->proto = p->proto;
    f->vlan = p->vlan;
    f->first = f->last = now;
    f->hash = h;
    f->id = ++t->next_id;
    struct flow **head = &t->buckets[h & (t->nbuckets - 1)];
    f->hnext = *head;
    f->hpprev = head;
    if (*head)
        (*head)->hpprev = &f->hnext;
    *head = f;
    list_append(t, f, p->proto == 6 ? FLOW_L_TCP : FLOW_L_UDP);
    t->st.created++;
    t->st.active++;
    if (t->st.active > t->st.peak)
        t->st.peak = t->st.active;
    return f;
}

void flow_update(struct flow_table *t, struct flow *f, const struct dec_pkt *p, int dir,
                 uint32_t frame_len, struct tw_time now)
{
    f->pkts[dir]++;
    f->bytes[dir] += frame_len;
    if (tw_time_us(now) > tw_time_us(f->last))
        f->last = now;
    uint8_t list = f->list;
    if (p->proto == 6) {
        if (p->tcp_flags & TW_TH_SYN)
            f->syn_seen = true;
        if (p->tcp_flags & TW_TH_FIN)
            f->fin_seen |= (uint8_t)(1u << dir);
        if (p->tcp_flags & TW_TH_RST)
            f->rst_seen = true;
        if (f->rst_seen || f->fin_seen == 3)
            list = FLOW_L_CLOSED;
    }
    /* keep the lists ordered by last activity, to the second: relinking on every packet would
     * touch two more flows' cache lines per packet for no gain in expiry precision */
    if (list != f->list || now.sec != f->moved_sec) {
        f->moved_sec = now.sec;
        list_unlink(t, f);
        list_append(t, f, list);
    }
}

static uint32_t timeout_of(const struct flow_table *t, int list)
{
    switch (list) {
    case FLOW_L_TCP:
        return t->o.idle_timeout_s;
    case FLOW_L_UDP:
        return t->o.udp_timeout_s;
    default:
        return t->o.tcp_close_timeout_s;
    }
}

size_t flow_expire(struct flow_table *t, struct tw_time now, size_t budget)
{
    size_t n = 0;
    int64_t now_us = tw_time_us(now);
    for (int l = 0; l < FLOW_L__N; l++) {
        int64_t limit = (int64_t)timeout_of(t, l) * 1000000;
        struct flow *f;
        while ((f = t->lists[l].head) && now_us - tw_time_us(f->last) > limit) {
            if (budget && n >= budget)
                return n;
            if (l == FLOW_L_CLOSED)
                t->st.closed++;
            else
                t->st.expired++;
            remove_flow(t, f, l == FLOW_L_CLOSED ? FLOW_END_CLOSED : FLOW_END_IDLE);
            n++;
        }
    }
    return n;
}

void flow_stats(const struct flow_table *t, struct flow_stats *out)
{
    *out = t->st;
}

size_t flow_table_bound(const struct flow_table *t)
{
    return t->nbuckets * sizeof(struct flow *) + ((size_t)t->o.max_flows + FLOW_CHUNK) * t->stride;
}
