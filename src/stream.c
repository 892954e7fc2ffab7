/* stream.c - bounded TCP reassembly of a flow direction's first bytes.
 *
 * Offsets are computed with 32-bit modular arithmetic from base_seq, so sequence wrap is
 * handled. Islands beyond the contiguous prefix are few (STREAM_MAX_GAPS): a ClientHello
 * rarely spans more than a dozen segments, and an attacker who sprays islands only loses
 * his own flow's extraction (TW_ELIMIT, counted by the caller).
 */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/stream.h"

static int grow(struct stream *s, uint32_t need, int64_t *budget);

void stream_set_base(struct stream *s, uint32_t seq)
{
    if (s->len == 0 && s->n_isl == 0) {
        s->base_seq = seq;
        s->base_set = true;
        s->base_fixed = true;
    }
}

/* Moves the base k bytes back: existing bytes shift right, becoming an island. */
static int rebase(struct stream *s, uint32_t k, int64_t *budget)
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

static int grow(struct stream *s, uint32_t need, int64_t *budget)
{
    if (need <= s->cap)
        return TW_OK;
    uint32_t ncap = s->cap ? s->cap : 2048;
    while (ncap < need)
        ncap *= 2;
    if (ncap > s->max)
        ncap = s->max;
    if (budget && *budget < (int64_t)(ncap - s->cap))
        return TW_ELIMIT;
    uint8_t *nb = realloc(s->buf, ncap);
    if (!nb)
        return TW_ENOMEM;
    if (budget)
        *budget -= (int64_t)(ncap - s->cap);
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

int stream_add(struct stream *s, uint32_t seq, const uint8_t *data, uint32_t n, int64_t *budget)
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

void stream_reset(struct stream *s, int64_t *budget)
{
    if (budget)
        *budget += s->cap;
    free(s->buf);
    uint32_t max = s->max;
    memset(s, 0, sizeof(*s));
    s->max = max;
}
