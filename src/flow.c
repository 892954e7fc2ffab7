/* flow.c - bounded bidirectional flow table (see flow.h).
 *
 * Trade-offs: an open-addressing table (linear probing, two slots per allowed flow, so the
 * load stays <= 0.5) keeps lookups O(1) on average. A slot holds the flow's full hash beside
 * its pointer: probing, inserting and deleting (backward shift, no tombstones) touch only the
 * slot array, never the records of other flows, so a lookup costs one slot line and the
 * record it finds;
 * SipHash with a per-process random key keeps an attacker from aiming collisions at one
 * probe run. Records come from chunks of FLOW_CHUNK_BYTES allocated on demand up to max_flows and
 * are recycled through a free list, so steady state allocates nothing and memory is bounded by
 * max_flows * sizeof(struct flow) plus the slots. A record is only the hot part (three cache
 * lines); the owner's larger per-flow state is an extension from a second pool of the same
 * kind, held only by the flows that need it, so memory follows those flows, not all of them.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tunnelwatch/flow.h"
#include "tunnelwatch/mem.h"

#define FLOW_CHUNK_BYTES ((size_t)4 << 20) /* two huge pages of records */

struct slot {
    uint64_t hash;
    struct flow *f; /* NULL: empty */
};

struct flow_list_head {
    struct flow *head, *tail;
};

/* Fixed-size elements carved from chunks allocated on demand, at most cap of them, recycled
 * through a free list kept in their first word. With ahead, the chunk after the one being
 * carved is allocated and faulted in early, off the capture thread. */
struct slab {
    size_t stride, per_chunk, cap;
    uint8_t **chunks;
    size_t nchunks, chunk_cap; /* nchunks: allocated, chunks[0 .. nchunks) */
    size_t carved;             /* elements carved from chunks */
    void *free;
    bool ahead;
    struct tw_prefaulter pf;
};

struct flow_table {
    struct flow_opts o;
    flow_end_fn end;
    void *ud;
    uint8_t key[16];
    uint64_t k[2]; /* key as SipHash words */
    struct slot *slots;
    size_t nslots;    /* power of two */
    struct slab recs; /* struct flow, max_flows of them */
    struct slab exts; /* the owner's extensions, max_flows of them at most */
    struct flow_list_head lists[FLOW_L__N];
    uint64_t next_id;
    struct flow_stats st;
    struct flow *last; /* flow of the previous lookup, NULL once it leaves the table */
    struct pressure pr;
    struct tw_prefaulter pf; /* the slot array's */
};

#include "siphash_int.h"

/* Both directions of a flow hash alike: the smaller (address, port) endpoint goes first. An
 * IPv4 key is 2 words, an IPv6 key 5. */
static uint64_t hash_tuple(const struct flow_table *t, const struct tw_addr *s, uint16_t sp,
                           const struct tw_addr *d, uint16_t dp, uint8_t proto, uint16_t vlan)
{
    uint64_t m[5];
    size_t nw;
    bool swap;
    if (s->family != 6) {
        uint32_t a, b;
        memcpy(&a, s->a, 4);
        memcpy(&b, d->a, 4);
        swap = a > b || (a == b && sp > dp);
        m[0] = swap ? (uint64_t)b | (uint64_t)a << 32 : (uint64_t)a | (uint64_t)b << 32;
        nw = 1;
    } else {
        int c = memcmp(s->a, d->a, 16);
        swap = c > 0 || (c == 0 && sp > dp);
        const uint8_t *x = swap ? d->a : s->a, *y = swap ? s->a : d->a;
        memcpy(&m[0], x, 8);
        memcpy(&m[1], x + 8, 8);
        memcpy(&m[2], y, 8);
        memcpy(&m[3], y + 8, 8);
        nw = 4;
    }
    uint16_t pa = swap ? dp : sp, pb = swap ? sp : dp;
    m[nw++] = (uint64_t)pa | (uint64_t)pb << 16 | (uint64_t)proto << 32 |
              (uint64_t)s->family << 40 | (uint64_t)vlan << 48;
    return tw_siphash13_words(t->k, m, nw);
}

#define CACHE_LINE 64

/* Before each extension: the pool's free-list link, then the owning flow (NULL when free). */
#define EXT_HDR 16

_Static_assert(sizeof(struct flow) <= 3 * CACHE_LINE, "a flow record is three cache lines");

/* align: CACHE_LINE for the records (each starts a line: the lookup's fields share one), 16
 * for the extensions (memory: they are larger and touched less often) */
static int slab_init(struct slab *s, size_t size, size_t align, size_t cap)
{
    s->stride = (size + align - 1) & ~(align - 1);
    s->cap = cap;
    s->per_chunk = FLOW_CHUNK_BYTES / s->stride;
    if (s->per_chunk > cap)
        s->per_chunk = cap;
    s->chunk_cap = (cap + s->per_chunk - 1) / s->per_chunk;
    s->chunks = calloc(s->chunk_cap, sizeof(*s->chunks));
    return s->chunks ? TW_OK : TW_ENOMEM;
}

/* Bytes of chunk ci: the last one holds only what is left of cap. */
static size_t chunk_bytes(const struct slab *s, size_t ci)
{
    size_t left = s->cap - ci * s->per_chunk;
    return (left < s->per_chunk ? left : s->per_chunk) * s->stride;
}

static void slab_fini(struct slab *s)
{
    tw_prefault_join(&s->pf);
    for (size_t i = 0; i < s->nchunks; i++)
        tw_big_free(s->chunks[i], chunk_bytes(s, i));
    free(s->chunks);
    s->chunks = NULL;
}

/* Allocates the next chunk; false when out of memory. */
static bool slab_grow(struct slab *s)
{
    uint8_t *c = tw_big_alloc(chunk_bytes(s, s->nchunks));
    if (!c)
        return false;
    s->chunks[s->nchunks++] = c;
    return true;
}

/* An element (not zeroed), NULL when all cap are in use or out of memory. */
static void *slab_get(struct slab *s)
{
    if (s->free) {
        void *e = s->free;
        memcpy(&s->free, e, sizeof(void *));
        return e;
    }
    if (s->carved >= s->cap)
        return NULL;
    size_t ci = s->carved / s->per_chunk, idx = s->carved % s->per_chunk;
    if (idx == 0) {
        if (ci == s->nchunks && !slab_grow(s))
            return NULL;
        if (s->ahead && ci + 1 == s->nchunks && s->nchunks < s->chunk_cap && slab_grow(s))
            tw_prefault_start(&s->pf, s->chunks[ci + 1], chunk_bytes(s, ci + 1));
    }
    s->carved++;
    return s->chunks[ci] + idx * s->stride;
}

static void slab_put(struct slab *s, void *e)
{
    memcpy(e, &s->free, sizeof(void *));
    s->free = e;
}

static size_t slab_bound(const struct slab *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->chunk_cap; i++)
        n += tw_big_footprint(chunk_bytes(s, i));
    return n;
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
    t->k[0] = tw_le64(t->key);
    t->k[1] = tw_le64(t->key + 8);
    t->nslots = 1024;
    while (t->nslots < (size_t)o->max_flows * 2) /* load <= 0.5 even at the cap */
        t->nslots <<= 1;
    t->slots = tw_big_alloc(t->nslots * sizeof(*t->slots));
    int r = slab_init(&t->recs, sizeof(struct flow), CACHE_LINE, o->max_flows);
    if (r == TW_OK && o->ext_size)
        r = slab_init(&t->exts, EXT_HDR + o->ext_size, 16, o->max_flows);
    if (!t->slots || r != TW_OK) {
        tw_big_free(t->slots, t->nslots * sizeof(*t->slots));
        slab_fini(&t->recs);
        slab_fini(&t->exts);
        free(t);
        return NULL;
    }
    t->recs.ahead = true; /* the slot array is faulted in at the first flow (alloc_flow): by
                           * then privileges are dropped, so the thread runs without them */
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

static void slot_insert(struct flow_table *t, struct flow *f)
{
    size_t mask = t->nslots - 1, i = f->hash & mask;
    while (t->slots[i].f)
        i = (i + 1) & mask;
    t->slots[i].hash = f->hash;
    t->slots[i].f = f;
}

/* Deletes f's slot and shifts later entries of the probe run back (Knuth's algorithm R), so
 * every entry stays reachable from its home slot without tombstones. */
static void slot_remove(struct flow_table *t, const struct flow *f)
{
    size_t mask = t->nslots - 1, i = f->hash & mask;
    while (t->slots[i].f != f) {
        if (!t->slots[i].f)
            return; /* not in the table: cannot happen */
        i = (i + 1) & mask;
    }
    for (;;) {
        t->slots[i].f = NULL;
        size_t k = i;
        for (;;) {
            k = (k + 1) & mask;
            if (!t->slots[k].f)
                return;
            size_t home = t->slots[k].hash & mask;
            /* the entry at k may fill the hole at i unless its home lies cyclically in (i, k] */
            bool stays = i <= k ? (i < home && home <= k) : (i < home || home <= k);
            if (!stays)
                break;
        }
        t->slots[i] = t->slots[k];
        i = k;
    }
}

/* Flows go oldest first (expiry, eviction: the oldest unpinned, behind the pinned ones at the
 * head), and the oldest are out of the cache: while f is removed, the slot of the flow after
 * it, the next to go, and the record of the one after that are fetched (that record's hash
 * and links were fetched the same way one removal earlier), so that neither removal waits for
 * memory. In the function itself: GCC takes a static function that only loads and prefetches
 * for pure and drops the call. */
static void remove_flow(struct flow_table *t, struct flow *f, enum flow_end_reason why)
{
    const struct flow *g = f->next;
    if (g) {
        __builtin_prefetch(&t->slots[g->hash & (t->nslots - 1)]);
        const char *n = (const char *)g->next;
        if (n) {
            __builtin_prefetch(n);
            __builtin_prefetch(n + 64);
            __builtin_prefetch(n + 128);
        }
    }
    if (t->last == f)
        t->last = NULL;
    if (t->end)
        t->end(t->ud, f, why);
    flow_ext_drop(t, f);
    slot_remove(t, f);
    list_unlink(t, f);
    slab_put(&t->recs, f);
    t->st.active--;
}

/* The order flow_table_free's list walk ends flows in: list, last move, creation. */
static int cmp_end_order(const void *a, const void *b)
{
    const struct flow *x = *(struct flow *const *)a, *y = *(struct flow *const *)b;
    if (x->list != y->list)
        return x->list < y->list ? -1 : 1;
    if (x->moved_sec != y->moved_sec)
        return x->moved_sec < y->moved_sec ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* end_ext_only: ends the flows that hold an extension, found in the extension pool. False
 * when out of memory (the caller walks the lists). */
static bool end_ext_flows(struct flow_table *t)
{
    struct slab *s = &t->exts;
    size_t n = 0;
    struct flow **v = malloc((t->st.ext_active ? t->st.ext_active : 1) * sizeof(*v));
    if (!v)
        return false;
    for (size_t i = 0; i < s->carved && n < t->st.ext_active; i++) {
        uint8_t *e = s->chunks[i / s->per_chunk] + (i % s->per_chunk) * s->stride;
        struct flow *owner;
        memcpy(&owner, e + sizeof(void *), sizeof(owner));
        if (owner)
            v[n++] = owner;
    }
    qsort(v, n, sizeof(*v), cmp_end_order);
    for (size_t i = 0; i < n; i++) {
        t->end(t->ud, v[i], FLOW_END_SHUTDOWN);
        flow_ext_drop(t, v[i]);
    }
    free(v);
    return true;
}

void flow_table_free(struct flow_table *t)
{
    if (!t)
        return;
    /* each flow ends (its callback, its extension); the slots and records go with the
     * table, so the probe runs are not repaired one flow at a time (a cache miss each) */
    t->last = NULL;
    if (t->o.end_ext_only && t->end && end_ext_flows(t))
        for (int l = 0; l < FLOW_L__N; l++)
            t->lists[l].head = NULL; /* the rest have nothing to end */
    for (int l = 0; l < FLOW_L__N; l++) {
        struct flow *f;
        while ((f = t->lists[l].head)) {
            if (f->next)
                __builtin_prefetch(f->next);
            if (t->end)
                t->end(t->ud, f, FLOW_END_SHUTDOWN);
            flow_ext_drop(t, f);
            list_unlink(t, f);
            t->st.active--;
        }
    }
    slab_fini(&t->recs);
    slab_fini(&t->exts);
    tw_prefault_join(&t->pf);
    tw_big_free(t->slots, t->nslots * sizeof(*t->slots));
    free(t);
}

#define PIN_SCAN 16 /* oldest flows of a list looked at for one that is not pinned */

/* The oldest of list l that is not pinned among its first few, else its head. */
static struct flow *list_victim(const struct flow_table *t, int l)
{
    struct flow *f = t->lists[l].head;
    for (int i = 0; f && i < PIN_SCAN; i++, f = f->next)
        if (!f->pinned)
            return f;
    return t->lists[l].head;
}

/* At the cap: the oldest idle flow gives way, closed ones first (a closed flagged flow has
 * said all it will), open pinned ones last. */
static struct flow *pick_victim(const struct flow_table *t)
{
    if (t->lists[FLOW_L_CLOSED].head)
        return t->lists[FLOW_L_CLOSED].head;
    struct flow *a = list_victim(t, FLOW_L_TCP), *b = list_victim(t, FLOW_L_UDP);
    if (a && b && a->pinned != b->pinned)
        return a->pinned ? b : a;
    return !a ? b : !b ? a : (tw_time_us(a->last) <= tw_time_us(b->last) ? a : b);
}

static struct flow *alloc_flow(struct flow_table *t)
{
    /* The slot array is touched at random from the first packets on, and record chunks as
     * they are carved: each of their pages would first be faulted in by the capture thread,
     * at a cost a virtual machine makes large. A prefaulter (mem.h) takes the slot array at
     * the first flow (capture has begun, privileges are dropped), and each record chunk
     * before the carving reaches it (slab_get). */
    if (__builtin_expect(t->recs.carved == 0, 0))
        tw_prefault_start(&t->pf, t->slots, t->nslots * sizeof(*t->slots));
    struct flow *f = slab_get(&t->recs);
    if (f || t->recs.carved < t->recs.cap)
        return f; /* a record, or out of memory below the cap */
    struct flow *victim = pick_victim(t);
    if (!victim)
        return NULL;
    t->st.evicted++;
    pressure_note(&t->pr, &victim->cli, true);
    remove_flow(t, victim, FLOW_END_EVICTED);
    return slab_get(&t->recs);
}

void *flow_ext(struct flow_table *t, struct flow *f)
{
    if (f->ext || !t->o.ext_size)
        return f->ext;
    /* at most one extension per flow and max_flows flows: the pool is never exhausted, only
     * memory can run out */
    uint8_t *e = slab_get(&t->exts);
    if (!e)
        return NULL;
    memcpy(e + sizeof(void *), &f, sizeof(f)); /* the owner, for end_ext_flows */
    f->ext = e + EXT_HDR;
    memset(f->ext, 0, t->o.ext_size);
    if (++t->st.ext_active > t->st.ext_peak)
        t->st.ext_peak = t->st.ext_active;
    return f->ext;
}

void flow_ext_drop(struct flow_table *t, struct flow *f)
{
    if (!f->ext)
        return;
    uint8_t *e = (uint8_t *)f->ext - EXT_HDR;
    memset(e + sizeof(void *), 0, sizeof(void *)); /* no owner: free */
    slab_put(&t->exts, e);
    f->ext = NULL;
    t->st.ext_active--;
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

uint64_t flow_hash(const struct flow_table *t, const struct dec_pkt *p)
{
    return hash_tuple(t, &p->src, p->sport, &p->dst, p->dport, p->proto, p->vlan);
}

void flow_prefetch(const struct flow_table *t, uint64_t h, int stage)
{
    const struct slot *sl = &t->slots[h & (t->nslots - 1)];
    if (stage == 0) {
        __builtin_prefetch(sl);
        return;
    }
    if (sl->f && sl->hash == h) {
        __builtin_prefetch(sl->f);                               /* key */
        __builtin_prefetch((const uint8_t *)sl->f + CACHE_LINE); /* counters */
    }
}

static struct flow *lookup(struct flow_table *t, const struct dec_pkt *p, uint64_t h, bool have_h,
                           struct tw_time now, int *dir, flow_is_internal_fn internal, void *iud);

struct flow *flow_lookup(struct flow_table *t, const struct dec_pkt *p, struct tw_time now,
                         int *dir, flow_is_internal_fn internal, void *iud)
{
    return lookup(t, p, 0, false, now, dir, internal, iud);
}

struct flow *flow_lookup_hashed(struct flow_table *t, const struct dec_pkt *p, uint64_t h,
                                struct tw_time now, int *dir, flow_is_internal_fn internal,
                                void *iud)
{
    return lookup(t, p, h, true, now, dir, internal, iud);
}

static struct flow *lookup(struct flow_table *t, const struct dec_pkt *p, uint64_t h, bool have_h,
                           struct tw_time now, int *dir, flow_is_internal_fn internal, void *iud)
{
    /* consecutive packets of one flow are the common case (bulk transfers): try the last
     * flow before hashing */
    struct flow *f = t->last;
    int d = f ? match_dir(f, p) : -1;
    if (d < 0) {
        if (!have_h) {
            h = hash_tuple(t, &p->src, p->sport, &p->dst, p->dport, p->proto, p->vlan);
            have_h = true;
        }
        size_t mask = t->nslots - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
            f = t->slots[i].f;
            if (!f || (t->slots[i].hash == h && (d = match_dir(f, p)) >= 0))
                break;
        }
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
        have_h = true;
        t->st.closed++;
        remove_flow(t, f, FLOW_END_CLOSED);
    }
    if (!have_h)
        h = hash_tuple(t, &p->src, p->sport, &p->dst, p->dport, p->proto, p->vlan);
    f = alloc_flow(t);
    if (!f)
        return NULL;
    memset(f, 0, sizeof(*f));
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
    slot_insert(t, f);
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

struct pressure *flow_pressure(struct flow_table *t)
{
    return &t->pr;
}

size_t flow_table_bound(const struct flow_table *t)
{
    return tw_big_footprint(t->nslots * sizeof(struct slot)) + slab_bound(&t->recs) +
           (t->o.ext_size ? slab_bound(&t->exts) : 0);
}
