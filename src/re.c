/* re.c - regular expressions for Sigma's |re, in linear time (see re.h).
 *
 * Design: the pattern is parsed into a small tree (byte sets, concatenation, alternation,
 * repetition, anchors), then compiled into a Thompson program whose counted repetitions are
 * expanded (a{2,4} is a a a? a?), capped at RE_MAX_PROG instructions. The search is a Pike
 * VM without captures: the set of live program counters advances one byte at a time and a
 * new thread starts at every position, so each byte costs at most one visit per instruction
 * and nothing ever backtracks: a hostile pattern or text cannot make it slow. Search state
 * lives on the caller's stack (the program cap bounds it), so matching allocates nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/re.h"

#define RE_INF       0xFFFFu
#define RE_MAX_NODES 4096
#define RE_MAX_DEPTH 64
#define RE_SAMPLE    1024

enum node_kind { N_SET, N_CAT, N_ALT, N_REP, N_BOL, N_EOL, N_EMPTY };

struct node {
    uint8_t kind;
    uint16_t min, max; /* N_REP; max RE_INF: unbounded */
    int32_t a, b;      /* children (N_CAT, N_ALT: both; N_REP: a) */
    uint32_t set;      /* N_SET: index into sets */
};

enum { I_SET, I_SPLIT, I_JMP, I_BOL, I_EOL, I_MATCH };

struct inst {
    uint8_t op;
    uint32_t x, y;
};

/* Programs with at most 64 byte sets and no anchors also run bit-parallel: one bit per set
 * instruction, a byte advances every live thread at once (the same automaton, faster). */
struct bitnfa {
    bool on;
    bool start_match;    /* the empty text matches */
    uint64_t start;      /* sets live at any position (a match may start anywhere) */
    uint64_t follow[64]; /* sets live after set i consumed a byte */
    uint64_t matchm;     /* sets after which the program can reach MATCH */
    uint64_t bytes[256]; /* sets that accept byte c */
};

struct re {
    struct inst *prog;
    uint32_t n;
    uint8_t (*sets)[32];
    char sample[RE_SAMPLE];
    size_t sample_len;
    size_t minlen; /* no shorter text matches: '.{150}' rejects a host name at once */
    struct bitnfa bp;
};

/* Parser state: the pattern, the tree being built, the first error. */
struct rp {
    const char *p, *end;
    struct node *nodes;
    uint32_t n_nodes;
    uint8_t (*sets)[32];
    uint32_t n_sets, cap_sets;
    int depth;
    bool icase;
    int err;
    const char *why;
};

static int fail(struct rp *r, int err, const char *why)
{
    if (!r->err) {
        r->err = err;
        r->why = why;
    }
    return -1;
}

static int32_t new_node(struct rp *r, uint8_t kind, int32_t a, int32_t b)
{
    if (r->err)
        return -1;
    if (r->n_nodes >= RE_MAX_NODES)
        return fail(r, TW_ELIMIT, "pattern too complex");
    struct node *nd = &r->nodes[r->n_nodes];
    memset(nd, 0, sizeof(*nd));
    nd->kind = kind;
    nd->a = a;
    nd->b = b;
    return (int32_t)r->n_nodes++;
}

static void set_add(uint8_t *set, unsigned c, bool icase)
{
    set[c >> 3] |= (uint8_t)(1u << (c & 7));
    if (icase && ((c | 32) >= 'a' && (c | 32) <= 'z')) {
        unsigned o = c ^ 32;
        set[o >> 3] |= (uint8_t)(1u << (o & 7));
    }
}

static bool set_has(const uint8_t *set, unsigned c)
{
    return (set[c >> 3] >> (c & 7)) & 1;
}

/* A new empty set node; its bitmap through *set. */
static int32_t set_node(struct rp *r, uint8_t **set)
{
    if (r->n_sets == r->cap_sets) {
        uint32_t nc = r->cap_sets ? r->cap_sets * 2 : 32;
        void *ns = realloc(r->sets, (size_t)nc * 32);
        if (!ns)
            return fail(r, TW_ENOMEM, "out of memory");
        r->sets = ns;
        r->cap_sets = nc;
    }
    int32_t nd = new_node(r, N_SET, -1, -1);
    if (nd < 0)
        return -1;
    r->nodes[nd].set = r->n_sets;
    *set = r->sets[r->n_sets++];
    memset(*set, 0, 32);
    return nd;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 32);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* \d \w \s and their negations into set; false when e is no class letter. */
static bool class_escape(char e, uint8_t *set)
{
    uint8_t tmp[32] = {0};
    char lo = (char)(e | 32);
    if (lo != 'd' && lo != 'w' && lo != 's')
        return false;
    for (unsigned c = 0; c < 256; c++) {
        bool in = lo == 'd' ? (c >= '0' && c <= '9')
                  : lo == 's'
                      ? (c == ' ' || (c >= '\t' && c <= '\r'))
                      : ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (in)
            set_add(tmp, c, false);
    }
    for (int i = 0; i < 32; i++)
        set[i] |= (uint8_t)(e == lo ? tmp[i] : ~tmp[i]);
    return true;
}

/* One escaped byte after '\' (not a class); -1 on a bad \x. */
static int escaped_byte(struct rp *r)
{
    char e = *r->p++;
    if (e == 'x') {
        if (r->end - r->p < 2 || hexval(r->p[0]) < 0 || hexval(r->p[1]) < 0)
            return fail(r, TW_EBAD, "bad \\x escape");
        int v = hexval(r->p[0]) * 16 + hexval(r->p[1]);
        r->p += 2;
        return v;
    }
    if (e == 'n')
        return '\n';
    if (e == 't')
        return '\t';
    if (e == 'r')
        return '\r';
    if ((e >= '0' && e <= '9') || e == 'b' || e == 'B' || e == 'A' || e == 'z' || e == 'Z')
        return fail(r, TW_EBAD, "backreferences and word boundaries are not supported");
    return (unsigned char)e;
}

/* [...] after the '['. */
static int32_t parse_class(struct rp *r)
{
    uint8_t *set;
    int32_t nd = set_node(r, &set);
    if (nd < 0)
        return -1;
    bool neg = r->p < r->end && *r->p == '^';
    r->p += neg;
    bool first = true;
    while (r->p < r->end && (*r->p != ']' || first)) {
        first = false;
        int lo;
        if (*r->p == '\\' && r->end - r->p >= 2) {
            r->p++;
            if (class_escape(*r->p, set)) {
                r->p++;
                continue;
            }
            if ((lo = escaped_byte(r)) < 0)
                return -1;
        } else {
            lo = (unsigned char)*r->p++;
        }
        int hi = lo;
        if (r->end - r->p >= 2 && r->p[0] == '-' && r->p[1] != ']') {
            r->p++;
            if (*r->p == '\\' && r->end - r->p >= 2) {
                r->p++;
                if ((hi = escaped_byte(r)) < 0)
                    return -1;
            } else {
                hi = (unsigned char)*r->p++;
            }
            if (hi < lo)
                return fail(r, TW_EBAD, "class range out of order");
        }
        for (int c = lo; c <= hi; c++)
            set_add(set, (unsigned)c, r->icase);
    }
    if (r->p >= r->end)
        return fail(r, TW_EBAD, "missing ']'");
    r->p++;
    if (neg)
        for (int i = 0; i < 32; i++)
            set[i] = (uint8_t)~set[i];
    return nd;
}

static int32_t parse_alt(struct rp *r);
static bool parse_braces(struct rp *r, unsigned *min, unsigned *max);

/* A byte set for '.', an escape or a literal byte. */
static int32_t parse_single(struct rp *r)
{
    uint8_t *set;
    int32_t nd = set_node(r, &set);
    if (nd < 0)
        return -1;
    char c = *r->p++;
    if (c == '.') {
        memset(set, 0xFF, 32);
        set['\n' >> 3] &= (uint8_t) ~(1u << ('\n' & 7));
    } else if (c == '\\') {
        if (r->p >= r->end)
            return fail(r, TW_EBAD, "trailing '\\'");
        if (class_escape(*r->p, set)) {
            r->p++;
        } else {
            int b = escaped_byte(r);
            if (b < 0)
                return -1;
            set_add(set, (unsigned)b, r->icase);
        }
    } else {
        set_add(set, (unsigned char)c, r->icase);
    }
    return nd;
}

/* (...) or (?:...) after the '('. */
static int32_t parse_group(struct rp *r)
{
    if (r->end - r->p >= 2 && r->p[0] == '?') {
        if (r->p[1] != ':')
            return fail(r, TW_EBAD, "'(?' form other than (?: and a leading (?i)");
        r->p += 2;
    }
    if (++r->depth > RE_MAX_DEPTH)
        return fail(r, TW_ELIMIT, "groups nested too deeply");
    int32_t nd = parse_alt(r);
    r->depth--;
    if (nd < 0)
        return -1;
    if (r->p >= r->end || *r->p != ')')
        return fail(r, TW_EBAD, "missing ')'");
    r->p++;
    return nd;
}

static int32_t parse_atom(struct rp *r)
{
    char c = *r->p;
    if (c == '(') {
        r->p++;
        return parse_group(r);
    }
    if (c == '[') {
        r->p++;
        return parse_class(r);
    }
    if (c == '^' || c == '$') {
        r->p++;
        return new_node(r, c == '^' ? N_BOL : N_EOL, -1, -1);
    }
    if (c == '*' || c == '+' || c == '?')
        return fail(r, TW_EBAD, "quantifier without an operand");
    if (c == '{') {
        const char *at = r->p++;
        unsigned lo, hi;
        bool bound = parse_braces(r, &lo, &hi);
        r->p = at;
        if (bound)
            return fail(r, TW_EBAD, "quantifier without an operand");
    }
    return parse_single(r); /* a '{' that is no bound is a literal */
}

/* {m}, {m,}, {m,n} after the '{'; false (nothing consumed) when it is not one (a literal). */
static bool parse_braces(struct rp *r, unsigned *min, unsigned *max)
{
    const char *q = r->p;
    unsigned a = 0, b;
    int digits = 0;
    while (q < r->end && *q >= '0' && *q <= '9' && digits < 5) {
        a = a * 10 + (unsigned)(*q++ - '0');
        digits++;
    }
    if (!digits || q >= r->end)
        return false;
    b = a;
    if (*q == ',') {
        q++;
        b = RE_INF;
        if (q < r->end && *q >= '0' && *q <= '9') {
            b = 0;
            for (digits = 0; q < r->end && *q >= '0' && *q <= '9' && digits < 5; digits++)
                b = b * 10 + (unsigned)(*q++ - '0');
        }
    }
    if (q >= r->end || *q != '}')
        return false;
    r->p = q + 1;
    *min = a;
    *max = b;
    return true;
}

/* An atom and its quantifiers. */
static int32_t parse_rep(struct rp *r)
{
    int32_t nd = parse_atom(r);
    while (nd >= 0 && r->p < r->end) {
        unsigned min, max;
        char c = *r->p;
        if (c == '*' || c == '+' || c == '?') {
            r->p++;
            min = c == '+';
            max = c == '?' ? 1 : RE_INF;
        } else if (c == '{') {
            r->p++;
            if (!parse_braces(r, &min, &max)) {
                r->p--;
                break; /* a literal '{' follows: the next atom */
            }
        } else {
            break;
        }
        if (min > RE_MAX_REPEAT || (max != RE_INF && (max > RE_MAX_REPEAT || max < min)))
            return fail(r, TW_ELIMIT, "repetition bound out of range");
        if (r->p < r->end && (*r->p == '?' || *r->p == '+'))
            r->p++; /* lazy or possessive: the same yes/no answer here */
        int32_t rep = new_node(r, N_REP, nd, -1);
        if (rep < 0)
            return -1;
        r->nodes[rep].min = (uint16_t)min;
        r->nodes[rep].max = (uint16_t)max;
        nd = rep;
    }
    return nd;
}

static int32_t parse_cat(struct rp *r)
{
    int32_t nd = new_node(r, N_EMPTY, -1, -1);
    while (nd >= 0 && r->p < r->end && *r->p != '|' && *r->p != ')') {
        int32_t next = parse_rep(r);
        if (next < 0)
            return -1;
        nd = new_node(r, N_CAT, nd, next);
    }
    return nd;
}

static int32_t parse_alt(struct rp *r)
{
    int32_t nd = parse_cat(r);
    while (nd >= 0 && r->p < r->end && *r->p == '|') {
        r->p++;
        int32_t b = parse_cat(r);
        if (b < 0)
            return -1;
        nd = new_node(r, N_ALT, nd, b);
    }
    return nd;
}

/* ---- compile ---------------------------------------------------------------------------- */

struct rc {
    const struct rp *r;
    struct inst *prog;
    uint32_t n;
    int err;
};

static uint32_t add(struct rc *c, uint8_t op, uint32_t x, uint32_t y)
{
    if (c->n >= RE_MAX_PROG) {
        c->err = TW_ELIMIT;
        return 0;
    }
    c->prog[c->n] = (struct inst){op, x, y};
    return c->n++;
}

/* Emits node nd. Depth is bounded by the parser's nesting and node caps. */
static void emit(struct rc *c, int32_t nd)
{
    const struct node *n = &c->r->nodes[nd];
    if (c->err)
        return;
    switch (n->kind) {
    case N_SET:
        add(c, I_SET, n->set, 0);
        break;
    case N_CAT:
        emit(c, n->a);
        emit(c, n->b);
        break;
    case N_ALT: {
        uint32_t s = add(c, I_SPLIT, c->n + 1, 0);
        emit(c, n->a);
        uint32_t j = add(c, I_JMP, 0, 0);
        c->prog[s].y = c->n;
        emit(c, n->b);
        c->prog[j].x = c->n;
        break;
    }
    case N_REP:
        for (unsigned i = 0; i < n->min && !c->err; i++)
            emit(c, n->a);
        if (n->max == RE_INF) {
            uint32_t l = add(c, I_SPLIT, c->n + 1, 0);
            emit(c, n->a);
            add(c, I_JMP, l, 0);
            c->prog[l].y = c->n;
        } else {
            for (unsigned i = n->min; i < n->max && !c->err; i++) {
                uint32_t s = add(c, I_SPLIT, c->n + 1, 0);
                emit(c, n->a);
                c->prog[s].y = c->n;
            }
        }
        break;
    case N_BOL:
    case N_EOL:
        add(c, n->kind == N_BOL ? I_BOL : I_EOL, 0, 0);
        break;
    default:
        break;
    }
}

/* The length of the shortest text node nd matches (capped: it only rejects short texts). */
static size_t min_len(const struct rp *r, int32_t nd)
{
    const struct node *n = &r->nodes[nd];
    size_t a, b;
    switch (n->kind) {
    case N_SET:
        return 1;
    case N_CAT:
        a = min_len(r, n->a) + min_len(r, n->b);
        return a > RE_MAX_PATTERN * RE_MAX_REPEAT ? RE_MAX_PATTERN * RE_MAX_REPEAT : a;
    case N_ALT:
        a = min_len(r, n->a);
        b = min_len(r, n->b);
        return a < b ? a : b;
    case N_REP:
        a = min_len(r, n->a) * n->min;
        return a > RE_MAX_PATTERN * RE_MAX_REPEAT ? RE_MAX_PATTERN * RE_MAX_REPEAT : a;
    default:
        return 0;
    }
}

/* First choices, minimum repetitions: a text the pattern matches (anchors aside). */
static void sample(const struct rp *r, int32_t nd, char *out, size_t *k)
{
    const struct node *n = &r->nodes[nd];
    if (n->kind == N_SET) {
        const uint8_t *set = r->sets[n->set];
        int pick = -1;
        for (unsigned c = 0; c < 256 && pick < 0; c++)
            if (set_has(set, c) && (((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9')))
                pick = (int)c;
        for (unsigned c = 33; c < 127 && pick < 0; c++)
            if (set_has(set, c))
                pick = (int)c;
        for (unsigned c = 0; c < 256 && pick < 0; c++)
            if (set_has(set, c))
                pick = (int)c;
        if (pick >= 0 && *k + 1 < RE_SAMPLE)
            out[(*k)++] = (char)pick;
    } else if (n->kind == N_CAT) {
        sample(r, n->a, out, k);
        sample(r, n->b, out, k);
    } else if (n->kind == N_ALT) {
        sample(r, n->a, out, k);
    } else if (n->kind == N_REP) {
        for (unsigned i = 0; i < n->min; i++)
            sample(r, n->a, out, k);
    }
}

/* The sets (bit per set instruction) and MATCH reachable from pc without reading a byte. */
static uint64_t closure(const struct re *re, const int *bit, uint32_t pc, bool *match)
{
    uint32_t stack[2 * RE_MAX_PROG + 2], sp = 0;
    uint8_t seen[RE_MAX_PROG];
    memset(seen, 0, re->n);
    uint64_t m = 0;
    stack[sp++] = pc;
    while (sp) {
        pc = stack[--sp];
        if (seen[pc])
            continue;
        seen[pc] = 1;
        const struct inst *in = &re->prog[pc];
        if (in->op == I_JMP) {
            stack[sp++] = in->x;
        } else if (in->op == I_SPLIT) {
            stack[sp++] = in->x;
            stack[sp++] = in->y;
        } else if (in->op == I_SET) {
            m |= 1ull << bit[pc];
        } else if (in->op == I_MATCH) {
            *match = true;
        }
    }
    return m;
}

/* Builds the bit-parallel form when the program is small enough and has no anchors. */
static void bit_build(struct re *re)
{
    static _Thread_local int bit[RE_MAX_PROG]; /* compile time only; only set pcs are read */
    memset(bit, 0, sizeof(bit));
    uint32_t pcs[64];
    int k = 0;
    for (uint32_t pc = 0; pc < re->n; pc++) {
        const struct inst *in = &re->prog[pc];
        if (in->op == I_BOL || in->op == I_EOL || (in->op == I_SET && k == 64))
            return;
        if (in->op == I_SET) {
            pcs[k] = pc;
            bit[pc] = k++;
        }
    }
    struct bitnfa *b = &re->bp;
    memset(b, 0, sizeof(*b));
    b->start = closure(re, bit, 0, &b->start_match);
    for (int i = 0; i < k; i++) {
        bool m = false;
        b->follow[i] = closure(re, bit, pcs[i] + 1, &m);
        if (m)
            b->matchm |= 1ull << i;
        for (unsigned c = 0; c < 256; c++)
            if (set_has(re->sets[re->prog[pcs[i]].x], c))
                b->bytes[c] |= 1ull << i;
    }
    b->on = true;
}

static bool bit_search(const struct bitnfa *b, const uint8_t *s, size_t n)
{
    if (b->start_match)
        return true;
    uint64_t st = b->start;
    for (size_t i = 0; i < n; i++) {
        uint64_t act = st & b->bytes[s[i]];
        if (act & b->matchm)
            return true;
        st = b->start;
        while (act) {
            st |= b->follow[__builtin_ctzll(act)];
            act &= act - 1;
        }
    }
    return false;
}

static int finish(struct rp *r, int32_t root, struct re **out)
{
    struct re *re = calloc(1, sizeof(*re));
    struct rc c = {r, malloc(RE_MAX_PROG * sizeof(struct inst)), 0, TW_OK};
    if (!re || !c.prog) {
        free(re);
        free(c.prog);
        return fail(r, TW_ENOMEM, "out of memory"), TW_ENOMEM;
    }
    emit(&c, root);
    add(&c, I_MATCH, 0, 0);
    if (c.err) {
        free(re);
        free(c.prog);
        return fail(r, c.err, "program too large"), c.err;
    }
    re->prog = c.prog;
    re->n = c.n;
    size_t k = 0;
    sample(r, root, re->sample, &k);
    re->sample[k] = '\0';
    re->sample_len = k;
    re->minlen = min_len(r, root);
    re->sets = r->sets; /* the program owns the sets from here */
    r->sets = NULL;
    bit_build(re);
    *out = re;
    return TW_OK;
}

int re_compile(const char *pat, size_t n, bool icase, struct re **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n > RE_MAX_PATTERN) {
        snprintf(err, errlen, "pattern longer than %d bytes", RE_MAX_PATTERN);
        return TW_ELIMIT;
    }
    struct rp r;
    memset(&r, 0, sizeof(r));
    r.p = pat;
    r.end = pat + n;
    r.icase = icase;
    if (r.end - r.p >= 4 && !memcmp(r.p, "(?i)", 4)) {
        r.icase = true;
        r.p += 4;
    }
    r.nodes = malloc(RE_MAX_NODES * sizeof(struct node));
    int rc = TW_OK;
    if (!r.nodes) {
        rc = TW_ENOMEM;
        r.why = "out of memory";
    } else {
        int32_t root = parse_alt(&r);
        if (root >= 0 && r.p < r.end)
            fail(&r, TW_EBAD, "unbalanced ')'");
        rc = r.err ? r.err : finish(&r, root, out);
    }
    if (rc && err)
        snprintf(err, errlen, "%s", r.why ? r.why : "bad pattern");
    free(r.nodes);
    free(r.sets);
    return rc;
}

void re_free(struct re *re)
{
    if (!re)
        return;
    free(re->prog);
    free(re->sets);
    free(re);
}

const char *re_sample(const struct re *re, size_t *len)
{
    *len = re ? re->sample_len : 0;
    return re ? re->sample : "";
}

/* ---- search ----------------------------------------------------------------------------- */

struct vm {
    const struct re *re;
    uint32_t mark[RE_MAX_PROG]; /* generation an instruction was added in */
    uint32_t stack[2 * RE_MAX_PROG + 2];
    uint32_t list[2][RE_MAX_PROG];
    uint32_t cnt[2];
    uint32_t gen;
};

/* Adds pc and what it leads to without reading a byte (jumps, splits, anchors). Each
 * instruction enters a list once per position: the bound of the whole search. */
static void addthread(struct vm *v, int li, uint32_t pc, size_t pos, size_t n)
{
    uint32_t sp = 0;
    v->stack[sp++] = pc;
    while (sp) {
        pc = v->stack[--sp];
        if (v->mark[pc] == v->gen)
            continue;
        v->mark[pc] = v->gen;
        const struct inst *in = &v->re->prog[pc];
        switch (in->op) {
        case I_JMP:
            v->stack[sp++] = in->x;
            break;
        case I_SPLIT:
            v->stack[sp++] = in->y;
            v->stack[sp++] = in->x;
            break;
        case I_BOL:
        case I_EOL:
            if (in->op == I_BOL ? pos == 0 : pos == n)
                v->stack[sp++] = pc + 1;
            break;
        default:
            v->list[li][v->cnt[li]++] = pc;
        }
    }
}

bool re_search(const struct re *re, const uint8_t *s, size_t n)
{
    if (n < re->minlen)
        return false;
    if (re->bp.on)
        return bit_search(&re->bp, s, n);
    return re_search_nfa(re, s, n);
}

bool re_search_nfa(const struct re *re, const uint8_t *s, size_t n)
{
    static _Thread_local struct vm v; /* 80 KB: too big for the matcher's stack */
    v.re = re;
    memset(v.mark, 0, re->n * sizeof(uint32_t));
    v.gen = 1;
    v.cnt[0] = 0;
    addthread(&v, 0, 0, 0, n);
    int cur = 0;
    for (size_t pos = 0;; pos++) {
        for (uint32_t i = 0; i < v.cnt[cur]; i++)
            if (re->prog[v.list[cur][i]].op == I_MATCH)
                return true;
        if (pos == n)
            return false;
        int nx = 1 - cur;
        v.cnt[nx] = 0;
        v.gen++;
        for (uint32_t i = 0; i < v.cnt[cur]; i++) {
            const struct inst *in = &re->prog[v.list[cur][i]];
            if (in->op == I_SET && set_has(re->sets[in->x], s[pos]))
                addthread(&v, nx, v.list[cur][i] + 1, pos + 1, n);
        }
        addthread(&v, nx, 0, pos + 1, n); /* a match may start at any position */
        cur = nx;
    }
}
