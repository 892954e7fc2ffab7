/* check_ac.c - Aho-Corasick matcher: known answers, case folding, edge cases, and a
 * differential test against a naive matcher over thousands of random patterns and texts. */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/ac.h"
#include "tw_check.h"

struct hit {
    uint32_t id;
    size_t end;
};

struct hits {
    struct hit *h;
    size_t n, cap;
    size_t stop_after; /* 0: never stop */
};

static int collect(void *ud, uint32_t id, size_t end)
{
    struct hits *hs = ud;
    if (hs->n == hs->cap) {
        hs->cap = hs->cap ? hs->cap * 2 : 64;
        hs->h = realloc(hs->h, hs->cap * sizeof(*hs->h));
        ck_assert_ptr_nonnull(hs->h);
    }
    hs->h[hs->n].id = id;
    hs->h[hs->n].end = end;
    hs->n++;
    return hs->stop_after && hs->n >= hs->stop_after;
}

static int hit_cmp(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static struct ac *build(const char *const *pats, size_t n)
{
    struct ac *ac = ac_new();
    ck_assert_ptr_nonnull(ac);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(ac_add(ac, (const uint8_t *)pats[i], strlen(pats[i]), (uint32_t)i), TW_OK);
    ck_assert_int_eq(ac_build(ac), TW_OK);
    return ac;
}

START_TEST(test_classic)
{
    /* the textbook example: he, she, his, hers in "ushers" */
    const char *pats[] = {"he", "she", "his", "hers"};
    struct ac *ac = build(pats, 4);
    struct hits hs = {0};
    int n = ac_search(ac, (const uint8_t *)"ushers", 6, collect, &hs);
    ck_assert_int_eq(n, 3);
    qsort(hs.h, hs.n, sizeof(*hs.h), hit_cmp);
    /* she and he end at 4, hers at 6 */
    ck_assert_uint_eq(hs.h[0].id, 0);
    ck_assert_uint_eq(hs.h[0].end, 4);
    ck_assert_uint_eq(hs.h[1].id, 1);
    ck_assert_uint_eq(hs.h[1].end, 4);
    ck_assert_uint_eq(hs.h[2].id, 3);
    ck_assert_uint_eq(hs.h[2].end, 6);
    ck_assert_uint_eq(ac_pattern_count(ac), 4);
    ck_assert_uint_gt(ac_memory(ac), 0);
    free(hs.h);
    ac_free(ac);
}
END_TEST

START_TEST(test_overlap_and_duplicates)
{
    /* nested and overlapping patterns, and the same text under two ids */
    const char *pats[] = {"a", "aa", "aaa", "ngrok.com", "ngrok.com", "k.co"};
    struct ac *ac = build(pats, 6);
    struct hits hs = {0};
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"aaaa", 4, collect, &hs), 4 + 3 + 2);
    hs.n = 0;
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"tunnel.ngrok.com", 16, collect, &hs), 3);
    qsort(hs.h, hs.n, sizeof(*hs.h), hit_cmp);
    ck_assert_uint_eq(hs.h[0].id, 5); /* k.co ends at 15 */
    ck_assert_uint_eq(hs.h[0].end, 15);
    ck_assert_uint_eq(hs.h[1].id, 3);
    ck_assert_uint_eq(hs.h[2].id, 4);
    ck_assert_uint_eq(hs.h[2].end, 16);
    free(hs.h);
    ac_free(ac);
}
END_TEST

START_TEST(test_case_folding)
{
    const char *pats[] = {"NgRoK.iO"};
    struct ac *ac = build(pats, 1);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"X.NGROK.IO", 10, NULL, NULL), 1);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"x.ngrok.io", 10, NULL, NULL), 1);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"x.ngrok-io", 10, NULL, NULL), 0);
    ac_free(ac);
    /* only ASCII folds: 0xC0 and 0xE0 (Latin-1 A-grave cases) stay distinct bytes, and
     * '@' / '[' (just outside 'A'..'Z') do not fold to '`' / '{' */
    const char *p2[] = {"\xc0", "@["};
    ac = build(p2, 2);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"\xe0", 1, NULL, NULL), 0);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"\xc0", 1, NULL, NULL), 1);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"`{", 2, NULL, NULL), 0);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"@[", 2, NULL, NULL), 1);
    ac_free(ac);
}
END_TEST

START_TEST(test_edges)
{
    struct ac *ac = ac_new();
    ck_assert_int_eq(ac_add(ac, (const uint8_t *)"", 0, 1), TW_EBAD);
    ck_assert_int_eq(ac_build(ac), TW_OK);
    /* an empty automaton and an empty text find nothing */
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"abc", 3, NULL, NULL), 0);
    ck_assert_int_eq(ac_add(ac, (const uint8_t *)"x", 1, 1), TW_EBAD); /* read-only now */
    ac_free(ac);
    const char *pats[] = {"ab"};
    ac = build(pats, 1);
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"", 0, NULL, NULL), 0);
    /* a callback returning non-zero stops the search */
    struct hits hs = {0};
    hs.stop_after = 2;
    ck_assert_int_eq(ac_search(ac, (const uint8_t *)"ababababab", 10, collect, &hs), 2);
    ck_assert_uint_eq(hs.n, 2);
    free(hs.h);
    ac_free(ac);
    ac_free(NULL);
}
END_TEST

static uint32_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static uint8_t lc(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static size_t naive(const uint8_t *const *pats, const size_t *plen, size_t np, const uint8_t *t,
                    size_t n, struct hits *out)
{
    size_t c = 0;
    for (size_t e = 1; e <= n; e++)
        for (size_t p = 0; p < np; p++) {
            if (plen[p] > e)
                continue;
            size_t k = 0, s = e - plen[p];
            while (k < plen[p] && lc(t[s + k]) == lc(pats[p][k]))
                k++;
            if (k == plen[p]) {
                collect(out, (uint32_t)p, e);
                c++;
            }
        }
    return c;
}

/* Frees np patterns made by a test and their length array. */
static void pats_free(uint8_t **pats, size_t *plen, size_t np)
{
    for (size_t i = 0; i < np; i++)
        free(pats[i]);
    free(pats);
    free(plen);
}

START_TEST(test_differential)
{
    /* a small alphabet (with both cases) makes overlaps, shared prefixes and failure chains
     * common; fixed seed so a failure reproduces */
    static const char alpha[] = "abAB.c-";
    rng_state = 20240611u + (uint32_t)_i;
    size_t np = 500 + rnd() % 1500;
    uint8_t **pats = calloc(np, sizeof(*pats));
    size_t *plen = calloc(np, sizeof(*plen));
    struct ac *ac = ac_new();
    for (size_t i = 0; i < np; i++) {
        plen[i] = 1 + rnd() % 8;
        pats[i] = malloc(plen[i]);
        for (size_t k = 0; k < plen[i]; k++)
            pats[i][k] = (uint8_t)alpha[rnd() % (sizeof(alpha) - 1)];
        ck_assert_int_eq(ac_add(ac, pats[i], plen[i], (uint32_t)i), TW_OK);
    }
    ck_assert_int_eq(ac_build(ac), TW_OK);
    for (int t = 0; t < 1000; t++) {
        uint8_t text[64];
        size_t n = rnd() % sizeof(text);
        for (size_t k = 0; k < n; k++)
            text[k] = (uint8_t)alpha[rnd() % (sizeof(alpha) - 1)];
        struct hits a = {0}, b = {0};
        int na = ac_search(ac, text, n, collect, &a);
        size_t nb = naive((const uint8_t *const *)pats, plen, np, text, n, &b);
        ck_assert_int_eq(na, (int)nb);
        ck_assert_uint_eq(a.n, b.n);
        if (a.n) {
            qsort(a.h, a.n, sizeof(*a.h), hit_cmp);
            qsort(b.h, b.n, sizeof(*b.h), hit_cmp);
            /* the first differing hit, or a.n: one assertion per text, as each ck_assert writes to
             * Check's pipe */
            size_t k = 0;
            while (k < a.n && a.h[k].id == b.h[k].id && a.h[k].end == b.h[k].end)
                k++;
            ck_assert_uint_eq(k, a.n);
        }
        free(a.h);
        free(b.h);
    }
    pats_free(pats, plen, np);
    ac_free(ac);
}
END_TEST

/* DFA against compact path: the same patterns built twice (ac_build, ac_build_compact). */
struct pair {
    struct ac *dfa, *cmp;
};

static struct pair pair_build(const uint8_t *const *pats, const size_t *plen, size_t np)
{
    struct pair p = {ac_new(), ac_new()};
    ck_assert_ptr_nonnull(p.dfa);
    ck_assert_ptr_nonnull(p.cmp);
    for (size_t i = 0; i < np; i++) {
        ck_assert_int_eq(ac_add(p.dfa, pats[i], plen[i], (uint32_t)i), TW_OK);
        ck_assert_int_eq(ac_add(p.cmp, pats[i], plen[i], (uint32_t)i), TW_OK);
    }
    ck_assert_int_eq(ac_build(p.dfa), TW_OK);
    ck_assert_int_eq(ac_build_compact(p.cmp), TW_OK);
    return p;
}

static void pair_free(struct pair *p)
{
    ac_free(p->dfa);
    ac_free(p->cmp);
}

/* Both paths over text, with the callback stopping after stop_after hits (0: never): the
 * returned counts and every hit (id, end) in order must agree. Returns the hit count. */
static size_t pair_compare(const struct pair *p, const uint8_t *text, size_t n, size_t stop_after)
{
    struct hits a = {0}, b = {0};
    a.stop_after = b.stop_after = stop_after;
    int na = ac_search(p->dfa, text, n, collect, &a);
    int nb = ac_search(p->cmp, text, n, collect, &b);
    ck_assert_int_eq(na, nb);
    ck_assert_int_eq(na, (int)a.n);
    ck_assert_uint_eq(a.n, b.n);
    /* the first differing hit, or a.n; one assertion per text (each ck_assert is a write to
     * Check's pipe, and a text can have thousands of hits) */
    size_t k = 0;
    while (k < a.n && a.h[k].id == b.h[k].id && a.h[k].end == b.h[k].end)
        k++;
    ck_assert_uint_eq(k, a.n);
    free(a.h);
    free(b.h);
    return (size_t)na;
}

START_TEST(test_dfa_classic)
{
    /* he, she, his, hers: 10 nodes over 5 labels (h e s i r), so the DFA is 10 rows of 6
     * classes (2 bytes each: a small automaton's entries are 16-bit), and the two depth-1
     * rows of the direct table (h, s; 1 KiB each) are given back */
    const uint8_t *pats[] = {(const uint8_t *)"he", (const uint8_t *)"she", (const uint8_t *)"his",
                             (const uint8_t *)"hers"};
    size_t plen[] = {2, 3, 3, 4};
    struct pair p = pair_build(pats, plen, 4);
    ck_assert_uint_eq(ac_memory(p.dfa) + 2 * 256 * 4, ac_memory(p.cmp) + 10 * 6 * 2);
    ck_assert_uint_eq(pair_compare(&p, (const uint8_t *)"ushers", 6, 0), 3);
    ck_assert_uint_eq(pair_compare(&p, (const uint8_t *)"USHERS", 6, 0), 3);
    ck_assert_uint_eq(pair_compare(&p, (const uint8_t *)"uSheRsHiShe", 11, 0), 6);
    ck_assert_uint_eq(pair_compare(&p, (const uint8_t *)"uSheRsHiShe", 11, 2), 2);
    ck_assert_uint_eq(pair_compare(&p, (const uint8_t *)"", 0, 0), 0);
    ck_assert_uint_eq(pair_compare(&p, (const uint8_t *)"xyz\x80\xff", 5, 0), 0);
    pair_free(&p);
}
END_TEST

/* A random pattern over alpha, or (one in three) a prefix or suffix of an earlier one, so
 * that outputs nest and dictionary chains are long. */
static size_t dfa_pattern(uint8_t *out, uint8_t *const *pats, const size_t *plen, size_t i,
                          const uint8_t *alpha, size_t na)
{
    if (i > 0 && rnd() % 3 == 0) {
        size_t j = rnd() % i, k = 1 + rnd() % plen[j];
        int suffix = (int)(rnd() % 2);
        memcpy(out, pats[j] + (suffix ? plen[j] - k : 0), k);
        for (size_t x = 0; x < k; x++)
            if (rnd() % 4 == 0) /* the other case, where there is one */
                out[x] = (uint8_t)(out[x] ^ (lc(out[x]) >= 'a' && lc(out[x]) <= 'z' ? 32 : 0));
        return k;
    }
    size_t n = 1 + rnd() % 10;
    for (size_t x = 0; x < n; x++)
        out[x] = alpha[rnd() % na];
    return n;
}

/* A text: random bytes over alpha, or pieces of patterns glued together in random case. */
static size_t dfa_text(uint8_t *t, size_t cap, uint8_t *const *pats, const size_t *plen, size_t np,
                       const uint8_t *alpha, size_t na)
{
    size_t n = rnd() % cap;
    for (size_t k = 0; k < n;) {
        if (rnd() % 2) {
            t[k++] = alpha[rnd() % na];
            continue;
        }
        size_t j = rnd() % np;
        for (size_t x = 0; x < plen[j] && k < n; x++)
            t[k++] = rnd() % 2 ? pats[j][x] : (uint8_t)(pats[j][x] ^ 32);
    }
    return n;
}

/* np patterns from dfa_pattern (16 bytes each at most) into *pats, their lengths into *plen. */
static void dfa_patterns(size_t np, const uint8_t *alpha, size_t na, uint8_t ***pats, size_t **plen)
{
    *pats = calloc(np, sizeof(**pats));
    *plen = calloc(np, sizeof(**plen));
    ck_assert(*pats && *plen);
    for (size_t i = 0; i < np; i++) {
        (*pats)[i] = malloc(16);
        (*plen)[i] = dfa_pattern((*pats)[i], *pats, *plen, i, alpha, na);
    }
}

START_TEST(test_dfa_differential)
{
    /* letters of both cases, '.', '-' and bytes >= 0x80 (0xc1 and 0xe1 differ by the case
     * bit but must not fold); a fixed seed so a failure reproduces */
    static const uint8_t alpha[] = "abcAB.-\x80\xc1\xe1\xff";
    const size_t na = sizeof(alpha) - 1;
    rng_state = 0xdfa0u + (uint32_t)_i;
    size_t np = 1 + rnd() % (_i < 4 ? 40 : 3000);
    uint8_t **pats;
    size_t *plen;
    dfa_patterns(np, alpha, na, &pats, &plen);
    struct pair p = pair_build((const uint8_t *const *)pats, plen, np);
    /* the DFA was built: the two automata differ in size */
    ck_assert_uint_ne(ac_memory(p.dfa), ac_memory(p.cmp));
    size_t total = 0;
    for (int t = 0; t < 2000; t++) {
        uint8_t text[96];
        size_t n = dfa_text(text, sizeof(text), pats, plen, np, alpha, na);
        total += pair_compare(&p, text, n, t % 5 == 0 ? 1 + rnd() % 4 : 0);
    }
    ck_assert_uint_gt(total, 0);
    pats_free(pats, plen, np);
    pair_free(&p);
}
END_TEST

/* Tagged patterns, half of them anchored (AC_AT_START, AC_AT_END or both): a search with a
 * mask reports exactly the hits of the patterns whose tag meets it and whose anchoring holds
 * (the naive matcher's, filtered), on the DFA and the compact path alike; a mask no tag meets
 * reports nothing, and ac_search (all bits) every anchored-right hit. */
START_TEST(test_tags_differential)
{
    static const uint8_t alpha[] = "abcAB.-\xc1";
    rng_state = 0x7a95u + (uint32_t)_i;
    size_t np = 1 + rnd() % (_i < 2 ? 30 : 2000);
    uint8_t **pats;
    size_t *plen;
    dfa_patterns(np, alpha, sizeof(alpha) - 1, &pats, &plen);
    uint8_t *tag = calloc(np, 1), *at = calloc(np, 1);
    struct ac *dfa = ac_new(), *cmp = ac_new();
    for (size_t i = 0; i < np; i++) {
        tag[i] = (uint8_t)(1u << (rnd() % 7)) | (rnd() % 5 == 0 ? 0x40 : 0);
        at[i] = rnd() % 6 < 3 ? (uint8_t)(1 + rnd() % 3) : 0;
        ck_assert_int_eq(ac_add_anchored(dfa, pats[i], plen[i], (uint32_t)i, tag[i], at[i]), TW_OK);
        ck_assert_int_eq(ac_add_anchored(cmp, pats[i], plen[i], (uint32_t)i, tag[i], at[i]), TW_OK);
    }
    ck_assert_int_eq(ac_build(dfa), TW_OK);
    ck_assert_int_eq(ac_build_compact(cmp), TW_OK);
    size_t total = 0;
    for (int t = 0; t < 1000; t++) {
        uint8_t text[80];
        size_t n = dfa_text(text, sizeof(text), pats, plen, np, alpha, sizeof(alpha) - 1);
        uint8_t mask = t % 7 == 0 ? 0x80 : t % 7 == 1 ? 0xff : (uint8_t)(rnd() & 0x7f);
        struct hits a = {0}, b = {0}, want = {0}, all = {0};
        int na = ac_search_tagged(dfa, text, n, mask, collect, &a);
        int nb = ac_search_tagged(cmp, text, n, mask, collect, &b);
        naive((const uint8_t *const *)pats, plen, np, text, n, &all);
        size_t placed = 0; /* the naive hits whose anchoring holds */
        for (size_t k = 0; k < all.n; k++) {
            uint32_t id = all.h[k].id;
            size_t end = all.h[k].end;
            if (((at[id] & AC_AT_START) && end != plen[id]) || ((at[id] & AC_AT_END) && end != n))
                continue;
            placed++;
            if (tag[id] & mask)
                (void)collect(&want, id, end);
        }
        ck_assert_int_eq(na, (int)want.n);
        ck_assert_int_eq(nb, (int)want.n);
        if (mask == 0x80)
            ck_assert_int_eq(na, 0);
        if (mask == 0xff)
            ck_assert_int_eq(ac_search(dfa, text, n, NULL, NULL), (int)placed);
        if (want.n) {
            qsort(a.h, a.n, sizeof(*a.h), hit_cmp);
            qsort(b.h, b.n, sizeof(*b.h), hit_cmp);
            qsort(want.h, want.n, sizeof(*want.h), hit_cmp);
            size_t k = 0;
            while (k < want.n && a.h[k].id == want.h[k].id && a.h[k].end == want.h[k].end &&
                   b.h[k].id == want.h[k].id && b.h[k].end == want.h[k].end)
                k++;
            ck_assert_uint_eq(k, want.n);
        }
        total += want.n;
        free(a.h);
        free(b.h);
        free(want.h);
        free(all.h);
    }
    ck_assert_uint_gt(total, 0);
    pats_free(pats, plen, np);
    free(tag);
    free(at);
    ac_free(dfa);
    ac_free(cmp);
}
END_TEST

/* ac_build_background: searches agree with the compact path hit by hit from the first call
 * (while the DFA may still be building) to after the DFA is taken; freeing a set at once (a
 * -T run), in any order, waits for its thread. */
START_TEST(test_dfa_background)
{
    static const uint8_t alpha[] = "abcAB.-\xc1";
    rng_state = 0xb6u;
    size_t np = 3000;
    uint8_t **pats;
    size_t *plen;
    dfa_patterns(np, alpha, sizeof(alpha) - 1, &pats, &plen);
    struct pair p = {ac_new(), ac_new()};
    struct ac *quick = ac_new(), *quick2 = ac_new();
    for (size_t i = 0; i < np; i++) {
        ck_assert_int_eq(ac_add(p.dfa, pats[i], plen[i], (uint32_t)i), TW_OK);
        ck_assert_int_eq(ac_add(p.cmp, pats[i], plen[i], (uint32_t)i), TW_OK);
        ck_assert_int_eq(ac_add(quick, pats[i], plen[i], (uint32_t)i), TW_OK);
        ck_assert_int_eq(ac_add(quick2, pats[i], plen[i], (uint32_t)i), TW_OK);
    }
    ck_assert_int_eq(ac_build_background(&p.dfa, 1), TW_OK);
    ck_assert_int_eq(ac_build_compact(p.cmp), TW_OK);
    struct ac *two[] = {quick, quick2};
    ck_assert_int_eq(ac_build_background(two, 2), TW_OK);
    ac_free(quick2); /* the second of a set first: it waits for the thread */
    ac_free(quick);
    size_t total = 0;
    for (int spins = 0; ac_memory(p.dfa) == ac_memory(p.cmp); spins++) {
        ck_assert_int_lt(spins, 1000000); /* the DFA comes */
        uint8_t text[96];
        size_t n = dfa_text(text, sizeof(text), pats, plen, np, alpha, sizeof(alpha) - 1);
        total += pair_compare(&p, text, n, 0);
    }
    ck_assert_uint_gt(ac_memory(p.dfa), ac_memory(p.cmp)); /* the DFA, and the kept rows */
    for (int k = 0; k < 500; k++) {
        uint8_t text[96];
        size_t n = dfa_text(text, sizeof(text), pats, plen, np, alpha, sizeof(alpha) - 1);
        total += pair_compare(&p, text, n, k % 7 == 0 ? 1 : 0);
    }
    ck_assert_uint_gt(total, 0);
    pats_free(pats, plen, np);
    pair_free(&p);
}
END_TEST

/* Over 32 768 nodes the DFA keeps 32-bit entries (row offsets): 5000 random 12-byte patterns
 * over 8 letters, ~40 000 nodes over 9 classes (1.4 MB), searched hit for hit as the compact
 * path does. */
START_TEST(test_dfa_wide)
{
    static const uint8_t alpha[] = "abcdefgh";
    rng_state = 4242u;
    size_t np = 5000;
    uint8_t **pats = calloc(np, sizeof(*pats));
    size_t *plen = calloc(np, sizeof(*plen));
    for (size_t i = 0; i < np; i++) {
        plen[i] = i % 10 == 0 ? 1 + rnd() % 4 : 12;
        pats[i] = malloc(12);
        for (size_t k = 0; k < plen[i]; k++)
            pats[i][k] = alpha[(rnd() >> 16) % 8]; /* the high bits: the LCG's low ones cycle */
    }
    struct pair p = pair_build((const uint8_t *const *)pats, plen, np);
    /* the table, less the depth-1 rows given back */
    ck_assert_uint_ge(ac_memory(p.dfa) + 8 * 256 * 4, ac_memory(p.cmp) + (size_t)32769 * 9 * 4);
    size_t total = 0;
    for (int t = 0; t < 300; t++) {
        uint8_t text[64];
        size_t n = dfa_text(text, sizeof(text), pats, plen, np, alpha, 8);
        total += pair_compare(&p, text, n, t % 9 == 0 ? 2 : 0);
    }
    ck_assert_uint_gt(total, 0);
    pats_free(pats, plen, np);
    pair_free(&p);
}
END_TEST

START_TEST(test_dfa_cap)
{
    /* 3000 random 12-byte patterns over 200 byte values (174 classes once 'A'..'Z' fold):
     * ~33 000 nodes, a ~23 MB table, over the 16 MiB cap, so ac_build keeps the compact
     * path (same size) */
    rng_state = 777u;
    size_t np = 3000;
    uint8_t **pats = calloc(np, sizeof(*pats));
    size_t *plen = calloc(np, sizeof(*plen));
    for (size_t i = 0; i < np; i++) {
        plen[i] = 12;
        pats[i] = malloc(12);
        for (size_t k = 0; k < 12; k++)
            pats[i][k] = (uint8_t)(0x38 + rnd() % 200);
    }
    struct pair p = pair_build((const uint8_t *const *)pats, plen, np);
    ck_assert_uint_eq(ac_memory(p.dfa), ac_memory(p.cmp));
    uint8_t text[40];
    memcpy(text + 3, pats[5], 12);
    memcpy(text + 20, pats[7], 12);
    ck_assert_uint_eq(pair_compare(&p, text, sizeof(text), 0), 2);
    pats_free(pats, plen, np);
    pair_free(&p);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("ac");
    TCase *tc = tcase_create("search");
    tcase_add_test(tc, test_classic);
    tcase_add_test(tc, test_overlap_and_duplicates);
    tcase_add_test(tc, test_case_folding);
    tcase_add_test(tc, test_edges);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("differential");
    tcase_set_timeout(td, 120);
    tcase_add_loop_test(td, test_differential, 0, 5);
    suite_add_tcase(s, td);
    TCase *tf = tcase_create("dfa");
    tcase_set_timeout(tf, 120);
    tcase_add_test(tf, test_dfa_classic);
    tcase_add_loop_test(tf, test_dfa_differential, 0, 8);
    tcase_add_test(tf, test_dfa_cap);
    tcase_add_test(tf, test_dfa_wide);
    tcase_add_test(tf, test_dfa_background);
    tcase_add_loop_test(tf, test_tags_differential, 0, 6);
    suite_add_tcase(s, tf);
    return s;
}
