/* fuzz_ac.c - Aho-Corasick against a naive matcher, and the DFA path against the compact one.
 * Input: patterns separated by '\n', a NUL, then the text. Aborts when the hit multiset differs
 * from the naive matcher's, or when ac_build (DFA) and ac_build_compact differ in any hit, its
 * order or the returned count, with and without a callback that stops early. */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/ac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Hits in order: an order-independent digest against the naive matcher, and a fixed log of
 * the first LOG_MAX (id, end) pairs plus an order-dependent digest of all of them for the
 * path comparison. */
#define LOG_MAX 4096
struct acc {
    uint64_t sum, n, chain;
    uint64_t stop_after; /* 0: never stop */
    uint32_t id[LOG_MAX];
    uint32_t end[LOG_MAX];
};

static int add(void *ud, uint32_t id, size_t end)
{
    struct acc *a = ud;
    uint64_t h = ((uint64_t)id * 2654435761u) ^ ((uint64_t)end * 40503u + 7u);
    a->sum += h;
    a->chain = a->chain * 0x100000001b3ull ^ h;
    if (a->n < LOG_MAX) {
        a->id[a->n] = id;
        a->end[a->n] = (uint32_t)end;
    }
    a->n++;
    return a->stop_after && a->n >= a->stop_after;
}

static uint8_t lc(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Both paths over the text must agree exactly; returns the hit count. */
static uint64_t compare(const struct ac *dfa, const struct ac *cmp, const uint8_t *text,
                        size_t tlen, uint8_t mask, uint64_t stop_after, struct acc *a,
                        struct acc *b)
{
    memset(a, 0, sizeof(*a));
    memset(b, 0, sizeof(*b));
    a->stop_after = b->stop_after = stop_after;
    int ra = ac_search_tagged(dfa, text, tlen, mask, add, a);
    int rb = ac_search_tagged(cmp, text, tlen, mask, add, b);
    size_t logged = a->n < LOG_MAX ? (size_t)a->n : LOG_MAX;
    if (ra != rb || ra < 0 || (uint64_t)ra != a->n || a->n != b->n || a->chain != b->chain ||
        memcmp(a->id, b->id, logged * sizeof(uint32_t)) ||
        memcmp(a->end, b->end, logged * sizeof(uint32_t)))
        abort();
    return a->n;
}

/* Patterns to both automata, and the naive matcher's digest of their hits into want. */
static void add_patterns(struct ac *dfa, struct ac *cmp, const uint8_t *data, size_t plen,
                         const uint8_t *text, size_t tlen, struct acc *want)
{
    uint32_t id = 0;
    for (size_t s = 0; s < plen && id < 256;) {
        const uint8_t *nl = memchr(data + s, '\n', plen - s);
        size_t e = nl ? (size_t)(nl - data) : plen, n = e - s;
        uint8_t tag = (uint8_t)(1u << (id % 8));
        unsigned at = (id / 8) % 4; /* 0, AC_AT_START, AC_AT_END or both: three in four anchored */
        int rd = ac_add_anchored(dfa, data + s, n, id, tag, at);
        int rc = ac_add_anchored(cmp, data + s, n, id, tag, at);
        if (rd != rc)
            abort();
        if (rd == TW_OK) {
            for (size_t end = n; end <= tlen; end++) {
                size_t k = 0;
                while (k < n && lc(text[end - n + k]) == lc(data[s + k]))
                    k++;
                if (k == n && (!(at & AC_AT_START) || end == n) &&
                    (!(at & AC_AT_END) || end == tlen))
                    add(want, id, end);
            }
            id++;
        }
        s = e + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    const uint8_t *text = nul ? nul + 1 : data + size;
    size_t tlen = size - plen - (nul ? 1 : 0);
    if (tlen > 512)
        tlen = 512; /* keep the naive side fast */
    struct ac *dfa = ac_new(), *cmp = ac_new();
    struct acc *want = calloc(3, sizeof(*want));
    if (!dfa || !cmp || !want)
        abort();
    add_patterns(dfa, cmp, data, plen, text, tlen, want);
    if (ac_build(dfa) != TW_OK || ac_build_compact(cmp) != TW_OK)
        abort();
    uint64_t n = compare(dfa, cmp, text, tlen, 0xff, 0, want + 1, want + 2);
    if (n != want->n || want[1].sum != want->sum)
        abort();
    /* a callback that stops half-way: both paths stop at the same hit */
    if (n > 1)
        compare(dfa, cmp, text, tlen, 0xff, n / 2, want + 1, want + 2);
    /* a mask: pattern id's tag is bit id % 8; exactly the hits of the tags it meets */
    uint8_t mask = (uint8_t)(tlen * 131u + plen);
    uint64_t in_mask = 0;
    if (n <= LOG_MAX) {
        compare(dfa, cmp, text, tlen, 0xff, 0, want + 1, want + 2);
        for (uint64_t k = 0; k < n; k++)
            in_mask += (mask >> (want[1].id[k] % 8)) & 1;
        if (compare(dfa, cmp, text, tlen, mask, 0, want + 1, want + 2) != in_mask)
            abort();
    }
    free(want);
    ac_free(dfa);
    ac_free(cmp);
    return 0;
}
