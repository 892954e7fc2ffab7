/* frag.c - bounded IPv4/IPv6 fragment reassembly (RFC 791 sec. 3.2, RFC 8200 sec. 4.5).
 *
 * Design: a fixed array of datagram slots allocated by frag_new(), searched linearly (a
 * sensor sees few datagrams in reassembly at once; max_datagrams is capped at 4096 so the
 * scan stays cheap). Each slot tracks which 8-byte blocks it holds in a 1 KiB bitmap
 * (65536 / 8 bits): fragment offsets are multiples of 8 and every fragment but the last is a
 * multiple of 8 long, so blocks describe coverage exactly and holes need no list. A block
 * already held is never rewritten (first wins). Slot buffers grow to the highest offset
 * seen, are accounted against max_bytes, and are kept when the slot is released so that
 * steady state reuses them; under pressure idle buffers are freed first.
 *
 * What gives way at a cap: a new datagram is never refused for a full table or byte budget
 * while older datagrams are in progress. The oldest one (by first fragment) is dropped to make
 * room: a real datagram's fragments arrive back to back, a flood's never-completed first
 * fragments sit and age, so junk that came first cannot keep a later query out. Each drop is
 * counted (limit) and noted with the dropped datagram's source (pressure.h).
 */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/frag.h"

#define FRAG_DGRAM_MAX 65535u
#define FRAG_BLOCKS    (65536u / 8)
#define FRAG_MAP_WORDS (FRAG_BLOCKS / 64)
#define FRAG_SLOTS_MAX 4096u
#define FRAG_BUF_MIN   2048u

struct fslot {
    bool used;
    bool have_last; /* the MF=0 fragment was seen: total is known */
    uint8_t family;
    uint8_t proto;
    uint32_t id;
    uint8_t src[16], dst[16];
    int64_t first_us;    /* packet time of the first fragment */
    uint32_t total;      /* datagram payload length, valid when have_last */
    uint32_t hi;         /* highest byte end stored so far */
    uint32_t blocks_set; /* bits set in map */
    uint8_t *buf;
    uint32_t cap;
    uint64_t map[FRAG_MAP_WORDS];
};

struct frag {
    struct fslot *slots;
    uint32_t nslots;
    uint64_t max_bytes;
    int64_t timeout_us;
    struct frag_stats st;
    struct pressure pr;
};

struct frag *frag_new(uint32_t max_datagrams, uint64_t max_bytes, uint32_t timeout_s)
{
    if (max_datagrams == 0 || max_datagrams > FRAG_SLOTS_MAX || max_bytes == 0 || timeout_s == 0)
        return NULL;
    struct frag *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->slots = calloc(max_datagrams, sizeof(*f->slots));
    if (!f->slots) {
        free(f);
        return NULL;
    }
    f->nslots = max_datagrams;
    f->max_bytes = max_bytes;
    f->timeout_us = (int64_t)timeout_s * 1000000;
    return f;
}

void frag_free(struct frag *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->nslots; i++)
        free(f->slots[i].buf);
    free(f->slots);
    free(f);
}

void frag_stats(const struct frag *f, struct frag_stats *st)
{
    *st = f->st;
}

struct pressure *frag_pressure(struct frag *f)
{
    return &f->pr;
}

/* Releases a slot but keeps its buffer for the next datagram. */
static void slot_release(struct frag *f, struct fslot *s)
{
    s->used = false;
    f->st.in_progress--;
}

static void slot_drop_buf(struct frag *f, struct fslot *s)
{
    free(s->buf);
    f->st.bytes_alloc -= s->cap;
    s->buf = NULL;
    s->cap = 0;
}

uint32_t frag_expire(struct frag *f, struct tw_time now)
{
    int64_t t = tw_time_us(now);
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->nslots; i++) {
        struct fslot *s = &f->slots[i];
        if (s->used && t - s->first_us > f->timeout_us) {
            slot_release(f, s);
            n++;
        }
    }
    f->st.expired += n;
    return n;
}

/* The datagram in progress with the oldest first fragment, other than keep; NULL if none. */
static struct fslot *oldest(struct frag *f, const struct fslot *keep)
{
    struct fslot *o = NULL;
    for (uint32_t i = 0; i < f->nslots; i++) {
        struct fslot *s = &f->slots[i];
        if (s->used && s != keep && (!o || s->first_us < o->first_us))
            o = s;
    }
    return o;
}

/* Drops a datagram in progress to make room (its buffer too when drop_buf): counted. */
static void evict(struct frag *f, struct fslot *o, bool drop_buf)
{
    struct tw_addr a = {.family = o->family};
    memcpy(a.a, o->src, o->family == 4 ? 4 : 16);
    pressure_note(&f->pr, &a, true);
    f->st.limit++;
    f->st.evicted++;
    slot_release(f, o);
    if (drop_buf)
        slot_drop_buf(f, o);
}

/* Makes s->buf hold at least need bytes within max_bytes. false when the cap forbids it. */
static bool slot_grow(struct frag *f, struct fslot *s, uint32_t need)
{
    if (need <= s->cap)
        return true;
    uint32_t want = s->cap ? s->cap * 2 : FRAG_BUF_MIN;
    if (want < need)
        want = need;
    if (want > FRAG_DGRAM_MAX)
        want = FRAG_DGRAM_MAX;
    uint64_t others = f->st.bytes_alloc - s->cap;
    if (others + want > f->max_bytes) {
        /* reclaim idle buffers before refusing: memory held must stay under max_bytes */
        for (uint32_t i = 0; i < f->nslots && others + want > f->max_bytes; i++) {
            struct fslot *o = &f->slots[i];
            if (!o->used && o->buf) {
                slot_drop_buf(f, o);
                others = f->st.bytes_alloc - s->cap;
            }
        }
        if (others + want > f->max_bytes)
            want = need;
        /* then the oldest datagrams in progress, with their buffers */
        struct fslot *o;
        while (others + want > f->max_bytes && (o = oldest(f, s)) != NULL) {
            evict(f, o, true);
            others = f->st.bytes_alloc - s->cap;
        }
        if (others + want > f->max_bytes)
            return false;
    }
    uint8_t *nb = realloc(s->buf, want);
    if (!nb)
        return false;
    f->st.bytes_alloc = others + want;
    s->buf = nb;
    s->cap = want;
    return true;
}

static bool map_test(const struct fslot *s, uint32_t b)
{
    return (s->map[b / 64] >> (b % 64)) & 1;
}

static void map_set(struct fslot *s, uint32_t b)
{
    s->map[b / 64] |= (uint64_t)1 << (b % 64);
}

static struct fslot *slot_find(struct frag *f, const struct dec_pkt *p, size_t alen)
{
    for (uint32_t i = 0; i < f->nslots; i++) {
        struct fslot *s = &f->slots[i];
        if (s->used && s->id == p->frag_id && s->proto == p->proto && s->family == p->src.family &&
            memcmp(s->src, p->src.a, alen) == 0 && memcmp(s->dst, p->dst.a, alen) == 0)
            return s;
    }
    return NULL;
}

static struct fslot *slot_alloc(struct frag *f, const struct dec_pkt *p, size_t alen, int64_t t)
{
    struct fslot *s = NULL;
    for (uint32_t i = 0; i < f->nslots && !s; i++)
        if (!f->slots[i].used)
            s = &f->slots[i];
    if (!s)
        return NULL;
    uint8_t *buf = s->buf;
    uint32_t cap = s->cap;
    memset(s, 0, sizeof(*s));
    s->buf = buf;
    s->cap = cap;
    s->used = true;
    s->family = p->src.family;
    s->proto = p->proto;
    s->id = p->frag_id;
    memcpy(s->src, p->src.a, alen);
    memcpy(s->dst, p->dst.a, alen);
    s->first_us = t;
    f->st.in_progress++;
    return s;
}

/* The datagram p belongs to, or a new slot for it: a stale datagram reusing its id is dropped
 * first, and with every slot taken the expired ones go, then the oldest. NULL: no room. */
static struct fslot *slot_for(struct frag *f, const struct dec_pkt *p, size_t alen,
                              struct tw_time now)
{
    int64_t t = tw_time_us(now);
    struct fslot *s = slot_find(f, p, alen);
    if (s && t - s->first_us > f->timeout_us) {
        /* a stale datagram must not absorb fragments of a new one reusing its id */
        slot_release(f, s);
        f->st.expired++;
        s = NULL;
    }
    if (s)
        return s;
    s = slot_alloc(f, p, alen, t);
    if (!s && frag_expire(f, now) > 0)
        s = slot_alloc(f, p, alen, t);
    struct fslot *o;
    if (!s && (o = oldest(f, NULL)) != NULL) {
        evict(f, o, false); /* every slot taken: the oldest datagram gives way */
        s = slot_alloc(f, p, alen, t);
    }
    return s;
}

int frag_add(struct frag *f, const struct dec_pkt *p, struct tw_time now, const uint8_t **data,
             uint32_t *len)
{
    f->st.fragments++;
    *data = NULL;
    *len = 0;
    uint32_t off = p->frag_off, wlen = p->frag_wire_len;
    size_t alen = p->src.family == 4 ? 4 : 16;
    /* RFC 791: offsets count 8-byte units and a datagram is at most 65535 bytes; a middle
     * fragment whose length is not a multiple of 8 would leave a gap no later one can fill */
    if ((p->src.family != 4 && p->src.family != 6) || off % 8 != 0 || off > FRAG_DGRAM_MAX ||
        wlen > FRAG_DGRAM_MAX - off || (p->frag_more && (wlen == 0 || wlen % 8 != 0)) ||
        (!p->frag_data && p->frag_len)) {
        f->st.bad++;
        return TW_EBAD;
    }
    struct fslot *s = slot_for(f, p, alen, now);
    if (!s) {
        f->st.limit++;
        return TW_ELIMIT;
    }
    uint32_t end = off + wlen;
    if (p->frag_more ? (s->have_last && end > s->total)
                     : (s->have_last ? end != s->total : end < s->hi)) {
        /* two different ends, or data past the end: keep what we hold (first wins) */
        f->st.bad++;
        return TW_EBAD;
    }
    if (!p->frag_more) {
        s->have_last = true;
        s->total = end;
    }
    /* a snaplen cut leaves a partial fragment: keep only whole blocks, the hole stays */
    uint32_t stored = p->frag_len < wlen ? p->frag_len & ~7u : wlen;
    if (stored > 0) {
        if (!slot_grow(f, s, off + stored)) {
            struct tw_addr a = p->src;
            pressure_note(&f->pr, &a, false);
            slot_release(f, s);
            f->st.limit++;
            return TW_ELIMIT;
        }
        bool overlap = false;
        for (uint32_t b = off / 8; b * 8 < off + stored; b++) {
            if (map_test(s, b)) {
                overlap = true;
                continue;
            }
            uint32_t from = b * 8, n = off + stored - from;
            if (n > 8)
                n = 8;
            memcpy(s->buf + from, p->frag_data + (from - off), n);
            map_set(s, b);
            s->blocks_set++;
        }
        if (overlap)
            f->st.overlaps++;
        if (off + stored > s->hi)
            s->hi = off + stored;
    }
    if (s->have_last && s->blocks_set == (s->total + 7) / 8) {
        f->st.reassembled++;
        slot_release(f, s);
        *data = s->buf;
        *len = s->total;
        return 1;
    }
    return 0;
}
