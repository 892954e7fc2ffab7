/* ac.c - Aho-Corasick multi-pattern matcher, case-insensitive over bytes.
 *
 * Design: patterns are folded to lower case and sorted; the trie is then built breadth-first
 * from the sorted order, one node per distinct prefix. Because nodes are numbered in BFS
 * order and a node's children are created together, the children of node n are exactly the
 * ids first[n] .. first[n+1]-1 and their labels are sorted: a node costs a label byte, a
 * first-child index, a failure link, an output index and a dictionary-suffix link (17 bytes),
 * with no per-node edge table. Child lookup is a binary search over at most 256 labels; the
 * root keeps a direct 256-entry table because almost every failure ends there. This trades a
 * little search speed for memory: a million domain-like patterns fit in a few hundred MB
 * where a full 256-way table would need gigabytes.
 *
 * Small automata (the Sigma rules' value lists: hundreds to tens of thousands of nodes) also
 * get a full DFA with alphabet compression, because there the binary searches and failure
 * walks cost ~30 instructions a byte (callgrind, Sigma rules; the DFA loop ~6) on every DNS
 * name, SNI and Host, and a 1 MiB table is cheap next to that. Bytes are mapped to
 * classes (0 for any byte that labels no edge, 1..K for the distinct folded labels; the map
 * already folds case), and delta[node][class] is the node the compact path would reach, so
 * a search step is one table load. Up to DFA16_NODES nodes (every Sigma automaton) an entry
 * is 16 bits, the target node with the top bit set when it has an output (half the table, so
 * more of the rows a search walks stay in the first-level cache, for a multiply per byte);
 * above, 32 bits, the target's row offset (node * width) and the same bit. The loop branches
 * to report() only on that bit and only for a node some of whose patterns' tags the search's
 * mask asks for; the tags of patterns anchored at the text's end (ac_add_anchored) count only
 * at its last byte, and report() skips an anchored pattern found elsewhere. The table is built
 * only while it stays under AC_DFA_MAX_BYTES;
 * larger sets (a million domains) keep the compact path unchanged. Both paths share
 * report(), so hits, their order and the stop rules are identical. ac_build_compact() skips
 * the DFA so tests can compare the two. After ac_build the automaton is read-only, so any
 * number of threads may search it; after ac_build_background its DFA is published later
 * (release/acquire on the table pointer) and searches take the compact path until then.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tunnelwatch/ac.h"

#define AC_NONE UINT32_MAX
/* Patterns longer than this are refused: hostnames are <= 255 bytes, and the BFS build
 * keeps each node's depth in 16 bits. */
#define AC_MAX_PATLEN 4096u
/* The pattern pool is addressed with 32-bit offsets. */
#define AC_MAX_POOL (UINT32_MAX - AC_MAX_PATLEN)
/* The DFA is built only while n_nodes * classes * 4 stays within this: the Sigma value
 * automata take 0.9-1.2 MB each (~6 000 nodes, 39-58 classes) and fit many times over, while
 * a big indicator list would need gigabytes and keeps the compact path. (10 000 generated
 * domains, 114 000 nodes over 38 classes, are just over: 17 MB.) */
#define AC_DFA_MAX_BYTES ((size_t)16 << 20)
/* DFA tables from this size on are mapped and populated at once (dfa_alloc). */
#define DFA_MAP_MIN ((size_t)64 << 10)
/* Automata of up to this many nodes keep 16-bit DFA entries (node index and output bit): half
 * the table, so more of the rows a search walks stay in the first-level cache; the row is
 * then found by a multiply. */
#define DFA16_NODES 32768u
#define DFA16_OUT   0x8000u
/* Top bit of a DFA entry: the target node has an output (its own or a dictionary suffix). */
#define AC_DFA_OUT 0x80000000u

struct ac_pat {
    uint32_t off; /* into pool */
    uint32_t id;  /* caller id */
    uint16_t len;
    uint8_t tag; /* caller bits (ac_add_tagged); a search reports it when they meet its mask */
    uint8_t at;  /* AC_AT_START, AC_AT_END (ac_add_anchored) */
};

struct ac {
    /* patterns, in ac_add order until ac_build sorts them */
    struct ac_pat *pats;
    size_t n_pats, cap_pats;
    uint8_t *pool;
    size_t pool_len, pool_cap;
    /* automaton (after ac_build) */
    uint32_t n_nodes;
    uint8_t *label;     /* label of the edge into node */
    uint32_t *first;    /* n_nodes + 1: first child id */
    uint32_t *fail;     /* failure link */
    uint32_t *out;      /* first pattern (sorted position) ending here, or AC_NONE */
    uint32_t *dict;     /* nearest proper suffix node with an output, or AC_NONE */
    uint8_t *same_next; /* same_next[p]: sorted pattern p+1 ends at the same node */
    uint8_t *ntag;      /* union of the tags of the patterns a visit of the node reports */
    uint8_t *etag;      /* ... of those that match only at the text's end (AC_AT_END) */
    uint32_t root_next[256];
    uint32_t *d1; /* dense 256-entry rows for the depth-1 nodes (ids 1 .. first[1]-1) */
    /* DFA (NULL when over AC_DFA_MAX_BYTES): delta[n * width + cls[byte]] = the next node's
     * row offset | AC_DFA_OUT when it has an output */
    uint32_t *delta;
    uint16_t *delta16;   /* or, up to DFA16_NODES nodes: the next node's index | DFA16_OUT */
    size_t delta_mapped; /* bytes, when the table was mapped (dfa_alloc); 0: from malloc */
    uint32_t width;      /* classes, K + 1 */
    uint8_t cls[256];
    int built;
    struct dfa_job *job; /* ac_build_background: the thread building its DFA (ac_free joins) */
};

/* One thread building the DFAs of a set of automata, in order; each automaton holds a
 * reference, and the first ac_free joins the thread. */
struct dfa_job {
    pthread_mutex_t mu;
    pthread_t th;
    bool joined;
    unsigned refs;
    size_t n;
    struct ac *acs[];
};

/* ASCII lower-casing without a branch: bit 5 set for 'A'..'Z' only. */
static inline uint8_t fold(uint8_t c)
{
    return (uint8_t)(c | ((unsigned)((unsigned)(c - 'A') < 26u) << 5));
}

struct ac *ac_new(void)
{
    struct ac *ac = calloc(1, sizeof(*ac));
    return ac;
}

static void job_release(struct dfa_job *j)
{
    pthread_mutex_lock(&j->mu);
    if (!j->joined) {
        pthread_join(j->th, NULL);
        j->joined = true;
    }
    bool last = --j->refs == 0;
    pthread_mutex_unlock(&j->mu);
    if (last) {
        pthread_mutex_destroy(&j->mu);
        free(j);
    }
}

void ac_free(struct ac *ac)
{
    if (!ac)
        return;
    if (ac->job)
        job_release(ac->job);
    free(ac->pats);
    free(ac->pool);
    free(ac->label);
    free(ac->first);
    free(ac->fail);
    free(ac->out);
    free(ac->dict);
    free(ac->same_next);
    free(ac->ntag);
    free(ac->etag);
    free(ac->d1);
    void *table = ac->delta ? (void *)ac->delta : (void *)ac->delta16;
    if (ac->delta_mapped)
        munmap(table, ac->delta_mapped);
    else
        free(table);
    free(ac);
}

int ac_add(struct ac *ac, const uint8_t *pat, size_t len, uint32_t id)
{
    return ac_add_tagged(ac, pat, len, id, 0xff);
}

int ac_add_tagged(struct ac *ac, const uint8_t *pat, size_t len, uint32_t id, uint8_t tag)
{
    return ac_add_anchored(ac, pat, len, id, tag, 0);
}

int ac_add_anchored(struct ac *ac, const uint8_t *pat, size_t len, uint32_t id, uint8_t tag,
                    unsigned at)
{
    if (!ac || ac->built || at > (AC_AT_START | AC_AT_END))
        return TW_EBAD;
    if (len == 0 || len > AC_MAX_PATLEN)
        return TW_EBAD;
    if (ac->n_pats >= UINT32_MAX - 1 || ac->pool_len > AC_MAX_POOL - len)
        return TW_ELIMIT;
    if (ac->n_pats == ac->cap_pats) {
        size_t nc = ac->cap_pats ? ac->cap_pats * 2 : 64;
        struct ac_pat *np = realloc(ac->pats, nc * sizeof(*np));
        if (!np)
            return TW_ENOMEM;
        ac->pats = np;
        ac->cap_pats = nc;
    }
    if (ac->pool_len + len > ac->pool_cap) {
        size_t nc = ac->pool_cap ? ac->pool_cap * 2 : 1024;
        while (nc < ac->pool_len + len)
            nc *= 2;
        uint8_t *np = realloc(ac->pool, nc);
        if (!np)
            return TW_ENOMEM;
        ac->pool = np;
        ac->pool_cap = nc;
    }
    uint8_t *dst = ac->pool + ac->pool_len;
    for (size_t i = 0; i < len; i++)
        dst[i] = fold(pat[i]);
    ac->pats[ac->n_pats].off = (uint32_t)ac->pool_len;
    ac->pats[ac->n_pats].len = (uint16_t)len;
    ac->pats[ac->n_pats].id = id;
    ac->pats[ac->n_pats].tag = tag;
    ac->pats[ac->n_pats].at = (uint8_t)at;
    ac->n_pats++;
    ac->pool_len += len;
    return TW_OK;
}

/* Folded bytes, then length, then id. qsort has no context argument in C11, so a small
 * merge sort takes the pool explicitly (stable, O(n log n) on any input). */
static int pat_cmp(const uint8_t *pool, const struct ac_pat *a, const struct ac_pat *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(pool + a->off, pool + b->off, n);
    if (c)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void merge_sort(const uint8_t *pool, struct ac_pat *a, struct ac_pat *tmp, size_t n)
{
    if (n < 16) {
        for (size_t i = 1; i < n; i++) {
            struct ac_pat x = a[i];
            size_t j = i;
            while (j > 0 && pat_cmp(pool, &a[j - 1], &x) > 0) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    merge_sort(pool, a, tmp, h);
    merge_sort(pool, a + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = pat_cmp(pool, &a[i], &a[j]) <= 0 ? a[i++] : a[j++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(*a));
}

/* Child of node n labelled c, or AC_NONE. Labels of n's children are sorted. */
static uint32_t child(const struct ac *ac, uint32_t n, uint8_t c)
{
    if (n == 0)
        return ac->root_next[c];
    if (n < ac->first[1] && ac->d1)
        return ac->d1[(size_t)(n - 1) * 256 + c];
    uint32_t lo = ac->first[n], hi = ac->first[n + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint8_t l = ac->label[mid];
        if (l == c)
            return mid;
        if (l < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return AC_NONE;
}

/* Sorts the patterns (see pat_cmp), so that the trie can be built from their order. */
static int sort_patterns(struct ac *ac)
{
    size_t np = ac->n_pats;
    if (np > 1) {
        struct ac_pat *tmp = malloc(np * sizeof(*tmp));
        if (!tmp)
            return TW_ENOMEM;
        merge_sort(ac->pool, ac->pats, tmp, np);
        free(tmp);
    }
    return TW_OK;
}

/* The per-node arrays at their upper bound of nodes; what is allocated stays with ac (ac_free
 * releases it) even on failure. */
static int alloc_nodes(struct ac *ac, size_t bound)
{
    size_t np = ac->n_pats;
    ac->label = malloc(bound);
    ac->first = malloc((bound + 1) * sizeof(uint32_t));
    ac->fail = malloc(bound * sizeof(uint32_t));
    ac->out = malloc(bound * sizeof(uint32_t));
    ac->dict = malloc(bound * sizeof(uint32_t));
    ac->same_next = calloc(np ? np : 1, 1);
    if (!ac->label || !ac->first || !ac->fail || !ac->out || !ac->dict || !ac->same_next)
        return TW_ENOMEM;
    return TW_OK;
}

/* BFS build of the trie from the sorted patterns: node n covers the patterns rlo[n] ..
 * rhi[n]-1, which share its first depth[n] bytes. While building, fail[] holds rlo and
 * dict[] rhi; both are rewritten by the failure pass. Returns the node count. */
static uint32_t build_trie(struct ac *ac, uint16_t *depth)
{
    uint32_t *rlo = ac->fail, *rhi = ac->dict;
    uint32_t count = 1;
    ac->label[0] = 0;
    rlo[0] = 0;
    rhi[0] = (uint32_t)ac->n_pats;
    depth[0] = 0;
    for (uint32_t n = 0; n < count; n++) {
        uint32_t lo = rlo[n], hi = rhi[n];
        uint16_t d = depth[n];
        ac->out[n] = AC_NONE;
        ac->first[n] = count;
        uint32_t p = lo;
        /* patterns that end here sort first (shorter before longer with the same prefix) */
        while (p < hi && ac->pats[p].len == d) {
            if (ac->out[n] == AC_NONE)
                ac->out[n] = p;
            else
                ac->same_next[p - 1] = 1;
            p++;
        }
        while (p < hi) {
            uint8_t c = ac->pool[ac->pats[p].off + d];
            uint32_t q = p + 1;
            while (q < hi && ac->pool[ac->pats[q].off + d] == c)
                q++;
            ac->label[count] = c;
            rlo[count] = p;
            rhi[count] = q;
            depth[count] = (uint16_t)(d + 1);
            count++;
            p = q;
        }
    }
    ac->first[count] = count;
    return count;
}

/* Direct child tables for the root and its children, where a search spends most steps
 * (every mismatch falls back towards them): at most 256 rows of 1 KiB. */
static int build_direct_tables(struct ac *ac)
{
    for (unsigned c = 0; c < 256; c++)
        ac->root_next[c] = AC_NONE;
    for (uint32_t v = ac->first[0]; v < ac->first[1]; v++)
        ac->root_next[ac->label[v]] = v;
    uint32_t n1 = ac->first[1] - 1;
    if (n1 == 0)
        return TW_OK;
    ac->d1 = malloc((size_t)n1 * 256 * sizeof(uint32_t));
    if (!ac->d1)
        return TW_ENOMEM;
    for (size_t i = 0; i < (size_t)n1 * 256; i++)
        ac->d1[i] = AC_NONE;
    for (uint32_t n = 1; n <= n1; n++)
        for (uint32_t v = ac->first[n]; v < ac->first[n + 1]; v++)
            ac->d1[(size_t)(n - 1) * 256 + ac->label[v]] = v;
    return TW_OK;
}

/* Failure and dictionary-suffix links, BFS order: a node's link is final before its
 * children need it. */
static void build_links(struct ac *ac, uint32_t count)
{
    ac->fail[0] = 0;
    ac->dict[0] = AC_NONE;
    for (uint32_t n = 0; n < count; n++) {
        for (uint32_t v = ac->first[n]; v < ac->first[n + 1]; v++) {
            uint32_t f = AC_NONE;
            if (n != 0) {
                uint32_t s = ac->fail[n];
                for (;;) {
                    f = child(ac, s, ac->label[v]);
                    if (f != AC_NONE || s == 0)
                        break;
                    s = ac->fail[s];
                }
            }
            ac->fail[v] = f == AC_NONE ? 0 : f;
            uint32_t fv = ac->fail[v];
            ac->dict[v] = fv != 0 && ac->out[fv] != AC_NONE ? fv : ac->dict[fv];
        }
    }
}

/* Node tags, BFS order: a node's own patterns' tags and those of its dictionary suffix,
 * which is shallower and so already done; those of patterns that match only at the text's
 * end apart (etag), as a visit before the end cannot report them. */
static int build_tags(struct ac *ac, uint32_t count)
{
    ac->ntag = malloc(count ? count : 1);
    ac->etag = malloc(count ? count : 1);
    if (!ac->ntag || !ac->etag)
        return TW_ENOMEM;
    for (uint32_t n = 0; n < count; n++) {
        uint8_t t = 0, e = 0;
        for (uint32_t p = ac->out[n]; p != AC_NONE; p++) {
            if (ac->pats[p].at & AC_AT_END)
                e |= ac->pats[p].tag;
            else
                t |= ac->pats[p].tag;
            if (!ac->same_next[p])
                break;
        }
        if (ac->dict[n] != AC_NONE) {
            t |= ac->ntag[ac->dict[n]];
            e |= ac->etag[ac->dict[n]];
        }
        ac->ntag[n] = t;
        ac->etag[n] = e;
    }
    return TW_OK;
}

/* Gives back the unused tail of the bound-sized arrays (a failed shrink keeps the larger
 * block). */
static void shrink_nodes(struct ac *ac, uint32_t count)
{
    uint8_t *l2 = realloc(ac->label, count);
    if (l2)
        ac->label = l2;
    uint32_t *u;
    if ((u = realloc(ac->first, (count + 1u) * sizeof(uint32_t))))
        ac->first = u;
    if ((u = realloc(ac->fail, count * sizeof(uint32_t))))
        ac->fail = u;
    if ((u = realloc(ac->out, count * sizeof(uint32_t))))
        ac->out = u;
    if ((u = realloc(ac->dict, count * sizeof(uint32_t))))
        ac->dict = u;
}

/* Byte classes: class 0 for bytes that label no edge, 1..K for the distinct labels in byte
 * order. Labels are already folded, so cls[] maps both cases of a letter to one class and
 * the search needs no fold(). Returns the width K + 1. */
static uint32_t build_classes(struct ac *ac)
{
    uint8_t of_label[256] = {0};
    for (uint32_t v = 1; v < ac->n_nodes; v++)
        of_label[ac->label[v]] = 1;
    uint32_t k = 0;
    for (unsigned c = 0; c < 256; c++)
        if (of_label[c])
            of_label[c] = (uint8_t)++k; /* k <= 255: fold() leaves 'A'..'Z' unused */
    for (unsigned c = 0; c < 256; c++)
        ac->cls[c] = of_label[fold((uint8_t)c)];
    return k + 1;
}

/* The DFA table. A big one is mapped with its pages faulted in by one call: page faults
 * one at a time cost more than the build itself on a virtual machine (a Sigma automaton's
 * 1 MB: 3.5 ms faulted page by page, 1.6 ms populated at once). */
static void *dfa_alloc(struct ac *ac, size_t n)
{
    if (n >= DFA_MAP_MIN) {
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                       -1, 0);
        if (p != MAP_FAILED) {
            ac->delta_mapped = n;
            return p;
        }
    }
    ac->delta_mapped = 0;
    return malloc(n);
}

/* The DFA, when small enough (see AC_DFA_MAX_BYTES; above it this does nothing). Row n is
 * row fail[n] with n's own children written over it: a missing edge follows the failure
 * link, as the compact search would. Nodes are in BFS order and fail[n] < n, so one pass
 * in node order finds every row it copies already filled. */
static int build_dfa(struct ac *ac, bool keep_d1)
{
    /* an empty automaton is never searched; and when even two classes would be over the
     * cap, a big list skips the class pass as well */
    if (ac->n_nodes <= 1 || ac->n_nodes > AC_DFA_MAX_BYTES / (2 * sizeof(uint32_t)))
        return TW_OK;
    uint32_t w = build_classes(ac);
    if (ac->n_nodes > AC_DFA_MAX_BYTES / ((size_t)w * sizeof(uint32_t)))
        return TW_OK;
    bool narrow = ac->n_nodes <= DFA16_NODES;
    size_t esz = narrow ? sizeof(uint16_t) : sizeof(uint32_t);
    uint8_t *d = dfa_alloc(ac, (size_t)ac->n_nodes * w * esz);
    if (!d)
        return TW_ENOMEM;
    uint16_t *d16 = (uint16_t *)(void *)d;
    uint32_t *d32 = (uint32_t *)(void *)d;
    for (uint32_t n = 0; n < ac->n_nodes; n++) {
        size_t row = (size_t)n * w;
        if (n == 0)
            memset(d, 0, w * esz);
        else
            memcpy(d + row * esz, d + (size_t)ac->fail[n] * w * esz, w * esz);
        for (uint32_t v = ac->first[n]; v < ac->first[n + 1]; v++) {
            bool out = ac->out[v] != AC_NONE || ac->dict[v] != AC_NONE;
            size_t at = row + ac->cls[ac->label[v]];
            /* the row offset fits in 31 bits: the table is under AC_DFA_MAX_BYTES */
            if (narrow)
                d16[at] = (uint16_t)(v | (out ? DFA16_OUT : 0));
            else
                d32[at] = v * w | (out ? AC_DFA_OUT : 0);
        }
    }
    ac->width = w;
    /* release: a search that sees the table sees width and cls */
    if (narrow)
        __atomic_store_n(&ac->delta16, d16, __ATOMIC_RELEASE);
    else
        __atomic_store_n(&ac->delta, d32, __ATOMIC_RELEASE);
    if (!keep_d1) {
        /* the direct tables served child() while the links were built; search uses delta */
        free(ac->d1);
        ac->d1 = NULL;
    }
    return TW_OK;
}

static void *dfa_main(void *arg)
{
    struct dfa_job *j = arg;
    for (size_t i = 0; i < j->n; i++)
        (void)build_dfa(j->acs[i], true); /* out of memory: the compact path stays, exact */
    return NULL;
}

/* The DFAs on one thread (a thread costs its start, and its TLS pages, on the caller):
 * searches take the compact path until each DFA is published (the direct tables stay, as
 * they may be in use). Without a thread they are built here. */
static void start_dfa_job(struct ac *const *acs, size_t n)
{
    struct dfa_job *j = malloc(sizeof(*j) + n * sizeof(j->acs[0]));
    bool ok = j && pthread_mutex_init(&j->mu, NULL) == 0;
    if (ok) {
        j->joined = false;
        j->refs = (unsigned)n;
        j->n = n;
        memcpy(j->acs, acs, n * sizeof(j->acs[0]));
        ok = tw_thread_start(&j->th, "tw-dfa-build", dfa_main, j, false) == 0;
        if (!ok)
            pthread_mutex_destroy(&j->mu);
    }
    if (!ok) {
        free(j);
        for (size_t i = 0; i < n; i++)
            (void)build_dfa(acs[i], true);
        return;
    }
    for (size_t i = 0; i < n; i++)
        acs[i]->job = j;
}

/* dfa: 0 none (compact only, ac_build_background's first step), 1 the DFA built here. */
static int build(struct ac *ac, int dfa)
{
    if (!ac || ac->built)
        return TW_EBAD;
    int rc = sort_patterns(ac);
    if (rc)
        return rc;
    /* Upper bound on nodes: the root plus one per pattern byte. */
    size_t bound = 1 + ac->pool_len;
    if (bound >= UINT32_MAX)
        return TW_ELIMIT;
    rc = alloc_nodes(ac, bound);
    uint16_t *depth = malloc(bound * sizeof(uint16_t));
    if (rc || !depth) {
        free(depth);
        return TW_ENOMEM;
    }
    uint32_t count = build_trie(ac, depth);
    free(depth);
    ac->n_nodes = count;
    if ((rc = build_direct_tables(ac)))
        return rc;
    build_links(ac, count);
    shrink_nodes(ac, count);
    if ((rc = build_tags(ac, count)))
        return rc;
    if (dfa && (rc = build_dfa(ac, false)))
        return rc;
    ac->built = 1;
    return TW_OK;
}

int ac_build(struct ac *ac)
{
    return build(ac, 1);
}

int ac_build_background(struct ac *const *acs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = build(acs[i], 0);
        if (rc)
            return rc;
    }
    if (n)
        start_dfa_job(acs, n);
    return TW_OK;
}

int ac_build_compact(struct ac *ac)
{
    return build(ac, 0);
}

size_t ac_pattern_count(const struct ac *ac)
{
    return ac ? ac->n_pats : 0;
}

size_t ac_memory(const struct ac *ac)
{
    if (!ac)
        return 0;
    size_t m = sizeof(*ac) + ac->cap_pats * sizeof(struct ac_pat) + ac->pool_cap;
    if (ac->built)
        m += (size_t)ac->n_nodes * (3 + 4 * 4) + 4 + ac->n_pats;
    if (ac->d1)
        m += (size_t)(ac->first[1] - 1) * 256 * sizeof(uint32_t);
    if (__atomic_load_n(&ac->delta, __ATOMIC_ACQUIRE))
        m += (size_t)ac->n_nodes * ac->width * sizeof(uint32_t);
    else if (__atomic_load_n(&ac->delta16, __ATOMIC_ACQUIRE))
        m += (size_t)ac->n_nodes * ac->width * sizeof(uint16_t);
    return m;
}

/* The tags a visit of node s can report with end bytes of len searched (want()). */
static inline uint8_t node_tags(const struct ac *ac, uint32_t s, size_t end, size_t len)
{
    return end == len ? (uint8_t)(ac->ntag[s] | ac->etag[s]) : ac->ntag[s];
}

/* Whether pattern p, ending at end of a text of len bytes, is reported to mask. */
static inline bool want(const struct ac_pat *p, size_t end, size_t len, uint8_t mask)
{
    return (p->tag & mask) && (!(p->at & AC_AT_END) || end == len) &&
           (!(p->at & AC_AT_START) || end == p->len);
}

/* Reports every pattern ending at node s (the node's own, then its dictionary chain). The
 * callers test first that some of them is asked for (node_tags & mask): the common case is
 * that none is, and then no call is made. */
static int report(const struct ac *ac, uint32_t s, size_t end, size_t len, uint8_t mask,
                  ac_hit_fn fn, void *ud, int *hits)
{
    if (ac->out[s] == AC_NONE)
        s = ac->dict[s];
    for (; s != AC_NONE; s = ac->dict[s]) {
        for (uint32_t p = ac->out[s];; p++) {
            if (want(&ac->pats[p], end, len, mask)) {
                /* the count must stay representable as int: stop reporting at the cap */
                if (*hits >= INT32_MAX)
                    return 1;
                (*hits)++;
                if (fn && fn(ud, ac->pats[p].id, end))
                    return 1;
            }
            if (!ac->same_next[p])
                break;
        }
    }
    return 0;
}

/* The DFA search: one load per byte; report() only where the entry's output bit is set,
 * which marks exactly the nodes the compact loop below reports at. */
static int search_dfa(const struct ac *ac, const uint32_t *d, const uint8_t *text, size_t len,
                      uint8_t mask, ac_hit_fn fn, void *ud)
{
    const uint8_t *cls = ac->cls;
    uint32_t off = 0;
    int hits = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t e = d[off + cls[text[i]]];
        off = e & ~AC_DFA_OUT;
        if (e & AC_DFA_OUT) {
            uint32_t node = off / ac->width;
            if ((node_tags(ac, node, i + 1, len) & mask) &&
                report(ac, node, i + 1, len, mask, fn, ud, &hits))
                break;
        }
    }
    return hits;
}

/* The same over 16-bit entries: the next row is the entry's node times the width. */
static int search_dfa16(const struct ac *ac, const uint16_t *d, const uint8_t *text, size_t len,
                        uint8_t mask, ac_hit_fn fn, void *ud)
{
    const uint8_t *cls = ac->cls;
    const uint32_t w = ac->width;
    uint32_t off = 0;
    int hits = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t e = d[off + cls[text[i]]];
        uint32_t node = e & (DFA16_OUT - 1);
        off = node * w;
        if ((e & DFA16_OUT) && (node_tags(ac, node, i + 1, len) & mask) &&
            report(ac, node, i + 1, len, mask, fn, ud, &hits))
            break;
    }
    return hits;
}

int ac_search(const struct ac *ac, const uint8_t *text, size_t len, ac_hit_fn fn, void *ud)
{
    return ac_search_tagged(ac, text, len, 0xff, fn, ud);
}

int ac_search_tagged(const struct ac *ac, const uint8_t *text, size_t len, uint8_t mask,
                     ac_hit_fn fn, void *ud)
{
    if (!ac || !ac->built || ac->n_nodes <= 1 || !text)
        return 0;
    const uint16_t *d16 = __atomic_load_n(&ac->delta16, __ATOMIC_ACQUIRE); /* see build_dfa */
    if (d16)
        return search_dfa16(ac, d16, text, len, mask, fn, ud);
    const uint32_t *d = __atomic_load_n(&ac->delta, __ATOMIC_ACQUIRE);
    if (d)
        return search_dfa(ac, d, text, len, mask, fn, ud);
    uint32_t s = 0;
    int hits = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = fold(text[i]);
        uint32_t t;
        while ((t = child(ac, s, c)) == AC_NONE && s != 0)
            s = ac->fail[s];
        s = t == AC_NONE ? 0 : t;
        if (s != 0 && (ac->out[s] != AC_NONE || ac->dict[s] != AC_NONE) &&
            (node_tags(ac, s, i + 1, len) & mask) && report(ac, s, i + 1, len, mask, fn, ud, &hits))
            break;
    }
    return hits;
}
