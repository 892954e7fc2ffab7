/* stream.c - bounded TCP reassembly of a flow direction's first bytes.
 *
 * Offsets are computed with 32-bit modular arithmetic from base_seq, so sequence wrap is
 * handled. Islands beyond the contiguous prefix are few (STREAM_MAX_GAPS): a ClientHello
 * rarely spans more than a dozen segments, and an attacker who sprays islands only loses
 * his own flow's extraction (TW_ELIMIT, counted by the caller).
 *
 * The pool (stream.h) is a doubly linked list of holders in order of last progress, so the
 * reclaim candidate is always its head (O(1)); per-source bytes sit in a fixed array of
 * keyed-hash buckets (an attacker cannot aim his flows at a victim's bucket).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tunnelwatch/stream.h"

#include "siphash_int.h"

static int grow(struct stream *s, uint32_t need, struct reasm_pool *pool);

/* ---------- the pool ---------- */

int reasm_pool_init(struct reasm_pool *p, uint64_t total, uint32_t stall_ms, uint32_t src_pct)
{
    memset(p, 0, sizeof(*p));
    p->budget = p->total = (int64_t)total;
    p->stall_us = (int64_t)stall_ms * 1000;
    if (src_pct == 0 || src_pct > 100)
        src_pct = 100;
    p->src_cap = total / 100 * src_pct + total % 100 * src_pct / 100;
    if (getrandom(p->key, sizeof(p->key), 0) != (ssize_t)sizeof(p->key))
        memset(p->key, 0x6b, sizeof(p->key));
    p->src_held = calloc(REASM_SRC_BUCKETS, sizeof(*p->src_held));
    return p->src_held ? TW_OK : TW_ENOMEM;
}

void reasm_pool_fini(struct reasm_pool *p)
{
    free(p->src_held);
    p->src_held = NULL;
}

void reasm_set_source(struct reasm_pool *p, struct reasm_hold *h, const struct tw_addr *src,
                      enum reasm_kind kind)
{
    (void)p;
    h->src = src;
    h->kind = (uint8_t)kind;
    h->bucket_set = false;
}

/* h's source bucket, computed when h first takes bytes: the keyed SipHash-1-3 over whole
 * words that the flow table uses (an attacker cannot aim his sources at one bucket without the
 * key), a fraction of the general form's cost on a path taken once per ClientHello. */
static void hold_bucket(const struct reasm_pool *p, struct reasm_hold *h)
{
    uint64_t m[3] = {0, 0, 0}, k[2] = {tw_le64(p->key), tw_le64(p->key + 8)};
    if (h->src) {
        memcpy(&m[0], h->src->a, 8);
        memcpy(&m[1], h->src->a + 8, 8);
        m[2] = h->src->family;
    }
    h->bucket = (uint16_t)(tw_siphash13_words(k, m, 3) % REASM_SRC_BUCKETS);
    h->bucket_set = true;
}

static void unlink_hold(struct reasm_pool *p, struct reasm_hold *h)
{
    if (!h->linked)
        return;
    if (h->prev)
        h->prev->next = h->next;
    else
        p->head = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        p->tail = h->prev;
    h->prev = h->next = NULL;
    h->linked = false;
}

void reasm_touch(struct reasm_pool *p, struct reasm_hold *h)
{
    if (!p || !h->bytes)
        return;
    h->last_us = p->now_us;
    unlink_hold(p, h);
    h->prev = p->tail;
    if (p->tail)
        p->tail->next = h;
    else
        p->head = h;
    p->tail = h;
    h->linked = true;
}

/* Returns n of h's bytes (n <= h->bytes). */
static void give(struct reasm_pool *p, struct reasm_hold *h, uint32_t n)
{
    p->budget += n;
    h->bytes -= n;
    if (p->src_held)
        p->src_held[h->bucket] -= n;
    if (!h->bytes)
        unlink_hold(p, h);
}

void reasm_release(struct reasm_pool *p, struct reasm_hold *h)
{
    if (p && h->bytes)
        give(p, h, h->bytes);
}

static void stream_reclaim(struct reasm_pool *p, struct stream *s);

/* Pushes v out: its memory freed and its bytes returned; v is lost to its owner. */
static void reclaim(struct reasm_pool *p, struct reasm_hold *v)
{
    uint8_t kind = v->kind & 1;
    p->reclaimed[kind]++;
    pressure_note(&p->pr[kind], v->src, true);
    if (v->kind == REASM_STREAM)
        stream_reclaim(p, (struct stream *)(void *)v);
    else if (p->reclaim_other)
        p->reclaim_other(p->ud, v);
    reasm_release(p, v); /* whatever the owner did not return */
    v->lost = true;
}

static bool stalled(const struct reasm_pool *p, const struct reasm_hold *v)
{
    return v && p->stall_us > 0 && p->now_us - v->last_us >= p->stall_us;
}

#define SRC_SCAN 64 /* holders looked at for a stalled one of an over-share source */

/* h's source is at its share: one of its own stalled holders (among the least recent few)
 * makes room, or false. */
static bool reclaim_own(struct reasm_pool *p, const struct reasm_hold *h)
{
    struct reasm_hold *v = p->head;
    for (int i = 0; v && i < SRC_SCAN && stalled(p, v); i++, v = v->next) {
        if (v != h && v->bucket == h->bucket) {
            reclaim(p, v);
            return true;
        }
    }
    return false;
}

static int refuse(struct reasm_pool *p, const struct reasm_hold *h, uint64_t *count)
{
    uint8_t kind = h->kind & 1;
    count[kind]++;
    pressure_note(&p->pr[kind], h->src, false);
    return TW_ELIMIT;
}

int reasm_take(struct reasm_pool *p, struct reasm_hold *h, uint32_t n)
{
    if (!h->bucket_set)
        hold_bucket(p, h);
    while (p->src_cap < (uint64_t)p->total && p->src_held[h->bucket] + n > p->src_cap)
        if (!reclaim_own(p, h))
            return refuse(p, h, p->refused_src);
    while (p->budget < (int64_t)n) {
        struct reasm_hold *v = p->head == h ? h->next : p->head;
        if (!stalled(p, v))
            return refuse(p, h, p->refused);
        reclaim(p, v);
    }
    p->budget -= n;
    h->bytes += n;
    p->src_held[h->bucket] += n;
    h->lost = false;
    reasm_touch(p, h);
    return TW_OK;
}

/* ---------- one stream ---------- */

static void stream_reclaim(struct reasm_pool *p, struct stream *s)
{
    (void)p;
    free(s->buf);
    struct reasm_hold h = s->h;
    uint32_t max = s->max;
    memset(s, 0, sizeof(*s));
    s->h = h;
    s->max = max;
}

void stream_set_base(struct stream *s, uint32_t seq)
{
    if (s->len == 0 && s->n_isl == 0) {
        s->base_seq = seq;
        s->base_set = true;
        s->base_fixed = true;
    }
}

/* Moves the base k bytes back: existing bytes shift right, becoming an island. */
static int rebase(struct stream *s, uint32_t k, struct reasm_pool *budget)
{
    uint32_t hi = s->len;
    for (int i = 0; i < s->n_isl; i++)
        if (s->isl[i].e > hi)
            hi = s->isl[i].e;
    if (k > s->max || hi > s->max - k || s->n_isl == STREAM_MAX_GAPS)
        return TW_ELIMIT;
    int r = grow(s, hi + k, budget);
    if (r)
        return r;
    memmove(s->buf + k, s->buf, hi);
    for (int i = 0; i < s->n_isl; i++) {
        s->isl[i].s += k;
        s->isl[i].e += k;
    }
    if (s->len) {
        s->isl[s->n_isl].s = k;
        s->isl[s->n_isl].e = k + s->len;
        s->n_isl++;
    }
    s->len = 0;
    s->base_seq -= k;
    return TW_OK;
}

static int grow(struct stream *s, uint32_t need, struct reasm_pool *pool)
{
    if (need <= s->cap)
        return TW_OK;
    uint32_t ncap = s->cap ? s->cap : 2048;
    while (ncap < need)
        ncap *= 2;
    if (ncap > s->max)
        ncap = s->max;
    int r = pool ? reasm_take(pool, &s->h, ncap - s->cap) : TW_OK;
    if (r)
        return r;
    uint8_t *nb = realloc(s->buf, ncap);
    if (!nb) {
        if (pool)
            give(pool, &s->h, ncap - s->cap);
        return TW_ENOMEM;
    }
    s->buf = nb;
    s->cap = ncap;
    return TW_OK;
}

/* Adds [a, b) to the island set, merging, then folds islands touching len into it. */
static int mark(struct stream *s, uint32_t a, uint32_t b)
{
    if (a <= s->len) {
        if (b > s->len)
            s->len = b;
    } else {
        /* merge with overlapping or adjacent islands */
        for (int i = 0; i < s->n_isl; i++) {
            if (a <= s->isl[i].e && b >= s->isl[i].s) {
                if (s->isl[i].s < a)
                    a = s->isl[i].s;
                if (s->isl[i].e > b)
                    b = s->isl[i].e;
                s->isl[i] = s->isl[--s->n_isl];
                i = -1;
            }
        }
        if (s->n_isl == STREAM_MAX_GAPS)
            return TW_ELIMIT;
        s->isl[s->n_isl].s = a;
        s->isl[s->n_isl].e = b;
        s->n_isl++;
    }
    bool changed = true;
    while (changed) {
        changed = false;
        for (int i = 0; i < s->n_isl; i++) {
            if (s->isl[i].s <= s->len) {
                if (s->isl[i].e > s->len)
                    s->len = s->isl[i].e;
                s->isl[i] = s->isl[--s->n_isl];
                changed = true;
                break;
            }
        }
    }
    return TW_OK;
}

static bool present(const struct stream *s, uint32_t off)
{
    if (off < s->len)
        return true;
    for (int i = 0; i < s->n_isl; i++)
        if (off >= s->isl[i].s && off < s->isl[i].e)
            return true;
    return false;
}

static int add(struct stream *s, uint32_t seq, const uint8_t *data, uint32_t n,
               struct reasm_pool *budget);

int stream_add(struct stream *s, uint32_t seq, const uint8_t *data, uint32_t n,
               struct reasm_pool *pool)
{
    if (s->h.lost)
        return TW_ELIMIT; /* the pool took this stream's buffer back: it is given up */
    int r = add(s, seq, data, n, pool);
    if (r > 0)
        reasm_touch(pool, &s->h);
    return r;
}

static int add(struct stream *s, uint32_t seq, const uint8_t *data, uint32_t n,
               struct reasm_pool *budget)
{
    if (n == 0)
        return 0;
    if (!s->base_set) {
        s->base_seq = seq;
        s->base_set = true;
    }
    int32_t rel = (int32_t)(seq - s->base_seq);
    if (rel < 0 && !s->base_fixed && (uint32_t)(-(int64_t)rel) < s->max) {
        /* no SYN seen: this earlier segment was delivered out of order */
        int r = rebase(s, (uint32_t)(-(int64_t)rel), budget);
        if (r)
            return r;
        rel = 0;
    }
    if (rel < 0) {
        /* starts before the base: keep only the part at or after it */
        uint32_t skip = (uint32_t)(-(int64_t)rel);
        if (skip >= n)
            return 0;
        data += skip;
        n -= skip;
        rel = 0;
    }
    uint32_t off = (uint32_t)rel;
    if (off >= s->max)
        return TW_ELIMIT;
    if (n > s->max - off)
        n = s->max - off; /* keep what fits; the rest is beyond what any parser needs */
    int r = grow(s, off + n, budget);
    if (r)
        return r;
    uint32_t before = s->len;
    if (s->n_isl == 0 && off <= s->len) {
        /* the common case, in order (or a retransmission overlapping the end): no islands,
         * so everything past len is new */
        if (off + n > s->len) {
            memcpy(s->buf + s->len, data + (s->len - off), off + n - s->len);
            s->len = off + n;
        }
        return (int)(s->len - before);
    }
    /* first wins: copy only bytes not yet present */
    for (uint32_t i = 0; i < n;) {
        if (off + i < s->len) {
            i = s->len - off; /* retransmitted prefix: skip it whole */
            continue;
        }
        if (present(s, off + i)) {
            i++;
            continue;
        }
        uint32_t j = i;
        while (j < n && !present(s, off + j))
            j++;
        memcpy(s->buf + off + i, data + i, j - i);
        i = j;
    }
    r = mark(s, off, off + n);
    if (r)
        return r;
    return (int)(s->len - before);
}

void stream_consume(struct stream *s, uint32_t n)
{
    if (n > s->len)
        n = s->len;
    if (n == 0)
        return;
    memmove(s->buf, s->buf + n, s->cap - n);
    s->len -= n;
    s->base_seq += n;
    /* consumed bytes were parsed: a late retransmission of them must not rebase the stream
     * (without a SYN it would) and bring them back to be parsed twice */
    s->base_fixed = true;
    for (int i = 0; i < s->n_isl; i++) {
        s->isl[i].s -= n;
        s->isl[i].e -= n;
    }
}

void stream_reset(struct stream *s, struct reasm_pool *pool)
{
    reasm_release(pool, &s->h);
    free(s->buf);
    struct reasm_hold h = s->h;
    uint32_t max = s->max;
    memset(s, 0, sizeof(*s));
    s->max = max;
    s->h.src = h.src;
    s->h.bucket = h.bucket;
    s->h.bucket_set = h.bucket_set;
    s->h.kind = h.kind;
}
