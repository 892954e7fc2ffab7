/* rules.c - Sigma rules (libyaml) and indicator lists compiled into one matcher.
 *
 * Design: a Sigma rule becomes selections (OR of groups), groups (AND of field items) and
 * items (one field, one modifier, OR - or with |all AND - of values). Each value is stored
 * as a folded glob over the whole name (contains 'x' is '*x*', endswith 'x' is '*x') and its
 * longest literal run goes into one Aho-Corasick automaton shared by every rule. A hit is
 * verified (end offset for plain values, the glob otherwise), recorded in a small
 * stack-held list, and only the rules it touched get their condition evaluated, from a
 * postfix program. When a pathological name touches more values or rules than the lists
 * hold, matching falls back to evaluating every rule directly: slower, never wrong.
 * Indicator lists (.txt) mean "this domain or any subdomain"; they live in a hash set keyed
 * by the domain, and a name is looked up once per label boundary, right to left, so a
 * million domains cost one hash probe per label. Everything is built once, then read-only;
 * matching allocates nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "tunnelwatch/ac.h"
#include "tunnelwatch/rules.h"

#define MAX_FILE_SIZE   (512u << 20) /* a rule file or indicator list larger than this is refused */
#define MAX_DIR_DEPTH   8            /* folder recursion (symlink loops) */
#define MAX_VALUE_LEN   4096         /* longest Sigma value / AC anchor */
#define COND_MAX_STACK  64           /* evaluation stack of a condition program */
#define COND_MAX_NEST   32           /* parentheses / not nesting while parsing */
#define MATCH_MAX_VALS  256          /* verified values remembered per observation */
#define MATCH_MAX_RULES 64           /* rules touched per observation before the fallback */

enum val_mod { MOD_EQ, MOD_CONTAINS, MOD_STARTS, MOD_ENDS };

struct rval {
    const char *raw;     /* as written, NUL-terminated: reported as rule_hit.pattern */
    const uint8_t *pat;  /* folded glob over the whole name */
    const uint8_t *wild; /* per byte of pat: 0 literal, '*' or '?' */
    uint32_t len;        /* of pat */
    uint32_t item;
    uint32_t alen; /* anchor (longest literal run) length; 0: checked on every name */
    uint8_t mod;
    uint8_t plain; /* the value had no wildcard: its anchor is the whole value */
};

struct ritem {
    uint32_t first_val, n_vals;
    uint32_t rule;
    uint8_t fields;
    uint8_t all;
};

struct rgroup {
    uint32_t first_item, n_items; /* AND */
};

struct rsel {
    const char *name;
    uint32_t first_group, n_groups; /* OR */
};

/* Condition program, postfix: OP_SEL | local selection index pushes, the others pop. */
#define OP_SEL 0x00000000u
#define OP_NOT 0x80000001u
#define OP_AND 0x80000002u
#define OP_OR  0x80000003u

struct rrule {
    struct rule pub;
    uint32_t first_sel, n_sels;
    uint32_t first_op, n_ops;
    uint8_t indicator; /* an indicator list: true when a listed domain matched */
    uint8_t always;    /* condition holds with no selection true: evaluate on every name */
};

struct dom {
    uint32_t off; /* into dpool, NUL-terminated */
    uint32_t rule;
    uint32_t hash;
    uint16_t len;
};

struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct ruleset {
    atomic_uint refs; /* ruleset_new's reference plus one per holder (rules.h) */
    enum rule_policy policy;
    int built;
    struct chunk *arena;
    struct rrule *rules;
    size_t n_rules, cap_rules;
    struct rsel *sels;
    size_t n_sels, cap_sels;
    struct rgroup *groups;
    size_t n_groups, cap_groups;
    struct ritem *items;
    size_t n_items, cap_items;
    struct rval *vals;
    size_t n_vals, cap_vals;
    uint32_t *ops;
    size_t n_ops, cap_ops;
    struct dom *doms;
    size_t n_doms, cap_doms;
    char *dpool;
    size_t dpool_len, dpool_cap;
    /* built */
    struct ac *ac;
    uint32_t *dtab; /* open addressing over doms, index + 1, 0 = empty */
    size_t dtab_mask;
    uint32_t *anchorless; /* values without a literal anchor */
    size_t n_anchorless;
    uint32_t *always; /* rules to evaluate on every name */
    size_t n_always;
    size_t files, skipped;
};

static inline uint8_t fold(uint8_t c)
{
    return (uint8_t)(c | ((unsigned)((unsigned)(c - 'A') < 26u) << 5));
}

/* ---- memory ---------------------------------------------------------------------------- */

static void *arena_alloc(struct ruleset *rs, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct chunk *c = rs->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = rs->arena;
        rs->arena = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

static char *arena_strndup(struct ruleset *rs, const char *s, size_t n)
{
    char *d = arena_alloc(rs, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Makes room for one more element of a growable array. */
static int grow(void *pp, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return TW_OK;
    if (n >= UINT32_MAX - 1)
        return TW_ELIMIT; /* indices are 32-bit */
    size_t nc = *cap ? *cap * 2 : 16;
    void *np = realloc(*(void **)pp, nc * elem);
    if (!np)
        return TW_ENOMEM;
    *(void **)pp = np;
    *cap = nc;
    return TW_OK;
}

#define GROW(rs, what) grow(&(rs)->what, &(rs)->cap_##what, (rs)->n_##what, sizeof(*(rs)->what))

struct ruleset *ruleset_new(enum rule_policy policy)
{
    struct ruleset *rs = calloc(1, sizeof(*rs));
    if (rs) {
        atomic_init(&rs->refs, 1);
        rs->policy = policy;
    }
    return rs;
}

/* The count is the one mutable part of a built set: holders see the set as const. */
struct ruleset *ruleset_hold(const struct ruleset *rs)
{
    struct ruleset *m = (struct ruleset *)(uintptr_t)rs;
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void ruleset_release(const struct ruleset *rs)
{
    ruleset_free((struct ruleset *)(uintptr_t)rs);
}

const struct rule *rule_hold(const struct rule *r)
{
    if (r)
        ruleset_hold(r->set);
    return r;
}

void rule_release(const struct rule *r)
{
    if (r)
        ruleset_free(r->set);
}

void ruleset_free(struct ruleset *rs)
{
    /* acq_rel: every holder's reads of the set happen before the last one frees it */
    if (!rs || atomic_fetch_sub_explicit(&rs->refs, 1, memory_order_acq_rel) != 1)
        return;
    while (rs->arena) {
        struct chunk *n = rs->arena->next;
        free(rs->arena);
        rs->arena = n;
    }
    free(rs->rules);
    free(rs->sels);
    free(rs->groups);
    free(rs->items);
    free(rs->vals);
    free(rs->ops);
    free(rs->doms);
    free(rs->dpool);
    ac_free(rs->ac);
    free(rs->dtab);
    free(rs->anchorless);
    free(rs->always);
    free(rs);
}

/* ---- glob ------------------------------------------------------------------------------ */

/* Sigma wildcard match of a folded glob against a name (any case). Greedy with one
 * backtrack point: O(len(pat) * len(name)) at worst, and both are short. */
static bool glob_match(const uint8_t *p, const uint8_t *w, size_t pn, const uint8_t *s, size_t sn)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
    while (si < sn) {
        if (pi < pn && w[pi] == '*') {
            star_p = pi++;
            star_s = si;
        } else if (pi < pn && (w[pi] == '?' || p[pi] == fold(s[si]))) {
            pi++;
            si++;
        } else if (star_p != SIZE_MAX) {
            pi = star_p + 1;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (pi < pn && w[pi] == '*')
        pi++;
    return pi == pn;
}

/* Whether value v holds for the name, given an anchor hit ending at end (0: no hit known). */
static bool val_check(const struct rval *v, const uint8_t *name, size_t len, size_t end)
{
    if (v->plain && end) {
        switch (v->mod) {
        case MOD_CONTAINS:
            return true;
        case MOD_STARTS:
            return end == v->alen;
        case MOD_ENDS:
            return end == len;
        default:
            return end == len && len == v->alen;
        }
    }
    return glob_match(v->pat, v->wild, v->len, name, len);
}

/* ---- diagnostics ----------------------------------------------------------------------- */

struct loader {
    struct ruleset *rs;
    const char *file;
    FILE *err;
    const char *title, *id; /* of the rule being loaded, for messages */
    size_t line;            /* of the construct, 1-based; 0 unknown */
    int failed;             /* a rule error under RULE_POLICY_ERROR */
};

/* One line per problem: file:line, the rule, the construct. Applies the policy. */
__attribute__((format(printf, 2, 3))) static void rule_problem(struct loader *ld, const char *fmt,
                                                               ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ld->err) {
        const char *what = ld->rs->policy == RULE_POLICY_SKIP ? "warning" : "error";
        fprintf(ld->err, "%s:%zu: %s: rule '%s' (%s)%s: %s\n", ld->file, ld->line, what,
                ld->title ? ld->title : "?", ld->id ? ld->id : "no id",
                ld->rs->policy == RULE_POLICY_SKIP ? " skipped" : "", msg);
    }
    if (ld->rs->policy == RULE_POLICY_SKIP)
        ld->rs->skipped++;
    else
        ld->failed = 1;
}

/* ---- Sigma: YAML helpers --------------------------------------------------------------- */

static const char *scalar(yaml_node_t *n, size_t *len)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return NULL;
    if (len)
        *len = n->data.scalar.length;
    return (const char *)n->data.scalar.value;
}

static bool scalar_is(yaml_node_t *n, const char *s)
{
    size_t len;
    const char *v = scalar(n, &len);
    return v && len == strlen(s) && memcmp(v, s, len) == 0;
}

static bool scalar_is_null(yaml_node_t *n)
{
    size_t len;
    const char *v = scalar(n, &len);
    if (!v || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return len == 0 || scalar_is(n, "null") || scalar_is(n, "Null") || scalar_is(n, "NULL") ||
           scalar_is(n, "~");
}

static size_t node_line(yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 0;
}

static char *dup_scalar(struct ruleset *rs, yaml_node_t *n)
{
    size_t len;
    const char *v = scalar(n, &len);
    return v ? arena_strndup(rs, v, len) : NULL;
}

/* A scalar or a sequence of scalars as an arena array. Returns TW_OK or TW_EBAD/TW_ENOMEM. */
static int str_list(struct ruleset *rs, yaml_document_t *doc, yaml_node_t *n, char ***out,
                    size_t *count)
{
    *out = NULL;
    *count = 0;
    if (n->type == YAML_SCALAR_NODE) {
        if (scalar_is_null(n))
            return TW_OK;
        char **a = arena_alloc(rs, sizeof(char *));
        if (!a || !(a[0] = dup_scalar(rs, n)))
            return TW_ENOMEM;
        *out = a;
        *count = 1;
        return TW_OK;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return TW_EBAD;
    size_t k = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    char **a = arena_alloc(rs, (k ? k : 1) * sizeof(char *));
    if (!a)
        return TW_ENOMEM;
    for (size_t i = 0; i < k; i++) {
        yaml_node_t *e = yaml_document_get_node(doc, n->data.sequence.items.start[i]);
        if (!scalar(e, NULL))
            return TW_EBAD;
        if (!(a[i] = dup_scalar(rs, e)))
            return TW_ENOMEM;
    }
    *out = a;
    *count = k;
    return TW_OK;
}

/* attack.t1568.002 -> T1568.002; NULL when the tag is not a technique. */
static char *technique(struct ruleset *rs, const char *tag)
{
    if (strncasecmp(tag, "attack.t", 8) != 0)
        return NULL;
    const char *t = tag + 8;
    size_t n = strlen(t);
    if (n != 4 && n != 8)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool ok = (n == 8 && i == 4) ? t[i] == '.' : (t[i] >= '0' && t[i] <= '9');
        if (!ok)
            return NULL;
    }
    char *d = arena_alloc(rs, n + 2);
    if (d) {
        d[0] = 'T';
        memcpy(d + 1, t, n + 1);
    }
    return d;
}

static int set_techniques(struct ruleset *rs, struct rule *r)
{
    r->techniques = arena_alloc(rs, (r->n_tags ? r->n_tags : 1) * sizeof(char *));
    if (!r->techniques)
        return TW_ENOMEM;
    r->n_techniques = 0;
    for (size_t i = 0; i < r->n_tags; i++) {
        char *t = technique(rs, r->tags[i]);
        if (t)
            r->techniques[r->n_techniques++] = t;
    }
    return TW_OK;
}

/* ---- Sigma: fields, modifiers, values --------------------------------------------------- */

/* Sigma / ECS / ASIM field names the wire can show. */
static unsigned field_bits(const char *f, size_t n)
{
    static const char *const dest[] = {
        "DestinationHostname", "DestinationHost",      "dst_host",        "dst_hostname",
        "destination.domain",  "destination.hostname", "DstHostname",     "DstFQDN",
        "DstDomain",           "ServerName",           "tls.server_name", "url.domain",
    };
    static const char *const query[] = {"QueryName", "query", "dns.question.name", "DnsQuery"};
    for (size_t i = 0; i < TW_ARRAY_LEN(dest); i++)
        if (strlen(dest[i]) == n && strncasecmp(dest[i], f, n) == 0)
            return RF_DEST_HOST;
    for (size_t i = 0; i < TW_ARRAY_LEN(query); i++)
        if (strlen(query[i]) == n && strncasecmp(query[i], f, n) == 0)
            return RF_QUERY;
    return 0;
}

/* Compiles one value into a folded glob over the whole name (see the file comment). */
static int add_value(struct loader *ld, const char *raw, size_t rlen, enum val_mod mod,
                     uint32_t item)
{
    struct ruleset *rs = ld->rs;
    if (rlen > MAX_VALUE_LEN) {
        rule_problem(ld, "value longer than %d bytes", MAX_VALUE_LEN);
        return TW_ECONF;
    }
    int rc = GROW(rs, vals);
    if (rc)
        return rc;
    size_t cap = rlen + 2;
    uint8_t *pat = arena_alloc(rs, cap), *wild = arena_alloc(rs, cap);
    char *rawc = arena_strndup(rs, raw, rlen);
    if (!pat || !wild || !rawc)
        return TW_ENOMEM;
    size_t n = 0;
    bool plain = true;
    if (mod == MOD_CONTAINS || mod == MOD_ENDS) {
        pat[n] = '*';
        wild[n++] = '*';
    }
    size_t best_len = 0, run_len = 0;
    for (size_t i = 0; i < rlen; i++) {
        uint8_t c = (uint8_t)raw[i];
        uint8_t w = 0;
        /* Sigma escapes: \* \? \\ are literal; any other backslash is itself */
        if (c == '\\' && i + 1 < rlen &&
            (raw[i + 1] == '*' || raw[i + 1] == '?' || raw[i + 1] == '\\')) {
            c = (uint8_t)raw[++i];
        } else if (c == '*' || c == '?') {
            w = c;
            plain = false;
        }
        pat[n] = w ? c : fold(c);
        wild[n] = w;
        if (w)
            run_len = 0;
        else if (++run_len > best_len)
            best_len = run_len;
        n++;
    }
    if (mod == MOD_CONTAINS || mod == MOD_STARTS) {
        pat[n] = '*';
        wild[n++] = '*';
    }
    struct rval *v = &rs->vals[rs->n_vals];
    v->raw = rawc;
    v->pat = pat;
    v->wild = wild;
    v->len = (uint32_t)n;
    v->item = item;
    v->mod = (uint8_t)mod;
    v->plain = plain;
    v->alen = (uint32_t)best_len; /* where it starts is recomputed by anchor_of() */
    rs->n_vals++;
    return TW_OK;
}

/* The anchor of v: its longest literal run (recomputed; cheap, used at build time only). */
static const uint8_t *anchor_of(const struct rval *v)
{
    size_t best_off = 0, best_len = 0, run_off = 0, run_len = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->wild[i]) {
            run_len = 0;
            run_off = i + 1;
        } else if (++run_len > best_len) {
            best_len = run_len;
            best_off = run_off;
        }
    }
    return v->pat + best_off;
}

/* The modifiers after the field name: k[flen..klen) is "|mod|mod...". At most one matching
 * modifier (contains, startswith, endswith), plus |all. */
static int parse_modifiers(struct loader *ld, const char *k, size_t flen, size_t klen,
                           enum val_mod *mod, bool *all)
{
    bool have_mod = false;
    for (size_t p = flen; p < klen;) {
        size_t s = ++p;
        while (p < klen && k[p] != '|')
            p++;
        size_t ml = p - s;
        const char *m = k + s;
        if (ml == 3 && memcmp(m, "all", 3) == 0) {
            *all = true;
            continue;
        }
        enum val_mod nm;
        if (ml == 8 && memcmp(m, "contains", 8) == 0)
            nm = MOD_CONTAINS;
        else if (ml == 10 && memcmp(m, "startswith", 10) == 0)
            nm = MOD_STARTS;
        else if (ml == 8 && memcmp(m, "endswith", 8) == 0)
            nm = MOD_ENDS;
        else {
            rule_problem(ld, "modifier '|%.*s' is not supported", (int)ml, m);
            return TW_ECONF;
        }
        if (have_mod) {
            rule_problem(ld, "two matching modifiers on '%.*s'", (int)klen, k);
            return TW_ECONF;
        }
        *mod = nm;
        have_mod = true;
    }
    return TW_OK;
}

/* The value or value list of the item keyed k[0..klen), each added as a value of item. */
static int parse_item_values(struct loader *ld, yaml_document_t *doc, yaml_node_t *val,
                             const char *k, size_t klen, enum val_mod mod, uint32_t item)
{
    int rc;
    if (val->type == YAML_SCALAR_NODE) {
        if (scalar_is_null(val)) {
            rule_problem(ld, "null value (field absence) for '%.*s'", (int)klen, k);
            return TW_ECONF;
        }
        size_t vl;
        const char *v = scalar(val, &vl);
        return add_value(ld, v, vl, mod, item);
    }
    if (val->type != YAML_SEQUENCE_NODE) {
        rule_problem(ld, "value of '%.*s' is a map", (int)klen, k);
        return TW_ECONF;
    }
    for (yaml_node_item_t *i = val->data.sequence.items.start; i < val->data.sequence.items.top;
         i++) {
        yaml_node_t *e = yaml_document_get_node(doc, *i);
        size_t vl;
        const char *v = scalar(e, &vl);
        ld->line = node_line(e);
        if (!v || scalar_is_null(e)) {
            rule_problem(ld, "value list of '%.*s' holds a non-string", (int)klen, k);
            return TW_ECONF;
        }
        if ((rc = add_value(ld, v, vl, mod, item)))
            return rc;
    }
    return TW_OK;
}

/* One "Field|mod|mod: value(s)" entry of a selection map. */
static int parse_item(struct loader *ld, yaml_document_t *doc, yaml_node_t *key, yaml_node_t *val,
                      uint32_t rule)
{
    struct ruleset *rs = ld->rs;
    size_t klen;
    const char *k = scalar(key, &klen);
    ld->line = node_line(key);
    if (!k) {
        rule_problem(ld, "selection key is not a field name");
        return TW_ECONF;
    }
    size_t flen = 0;
    while (flen < klen && k[flen] != '|')
        flen++;
    unsigned fields = field_bits(k, flen);
    if (!fields) {
        rule_problem(ld, "field '%.*s' is not observable on the wire", (int)flen, k);
        return TW_ECONF;
    }
    enum val_mod mod = MOD_EQ;
    bool all = false;
    int rc = parse_modifiers(ld, k, flen, klen, &mod, &all);
    if (rc || (rc = GROW(rs, items)))
        return rc;
    uint32_t item = (uint32_t)rs->n_items;
    struct ritem it = {(uint32_t)rs->n_vals, 0, rule, (uint8_t)fields, all};
    if ((rc = parse_item_values(ld, doc, val, k, klen, mod, item)))
        return rc;
    it.n_vals = (uint32_t)rs->n_vals - it.first_val;
    if (it.n_vals == 0) {
        rule_problem(ld, "empty value list for '%.*s'", (int)klen, k);
        return TW_ECONF;
    }
    rs->items[rs->n_items++] = it;
    return TW_OK;
}

/* One map of a selection: AND of its entries. */
static int parse_group(struct loader *ld, yaml_document_t *doc, yaml_node_t *map, uint32_t rule)
{
    struct ruleset *rs = ld->rs;
    int rc = GROW(rs, groups);
    if (rc)
        return rc;
    struct rgroup g = {(uint32_t)rs->n_items, 0};
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        rc = parse_item(ld, doc, yaml_document_get_node(doc, p->key),
                        yaml_document_get_node(doc, p->value), rule);
        if (rc)
            return rc;
    }
    g.n_items = (uint32_t)rs->n_items - g.first_item;
    if (g.n_items == 0) {
        ld->line = node_line(map);
        rule_problem(ld, "empty selection map");
        return TW_ECONF;
    }
    if ((rc = GROW(rs, groups)))
        return rc;
    rs->groups[rs->n_groups++] = g;
    return TW_OK;
}

static int parse_selection(struct loader *ld, yaml_document_t *doc, yaml_node_t *name,
                           yaml_node_t *val, uint32_t rule)
{
    struct ruleset *rs = ld->rs;
    int rc = GROW(rs, sels);
    if (rc)
        return rc;
    struct rsel s = {dup_scalar(rs, name), (uint32_t)rs->n_groups, 0};
    if (!s.name)
        return TW_ENOMEM;
    ld->line = node_line(val);
    if (val->type == YAML_MAPPING_NODE) {
        if ((rc = parse_group(ld, doc, val, rule)))
            return rc;
    } else if (val->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = val->data.sequence.items.start; i < val->data.sequence.items.top;
             i++) {
            yaml_node_t *e = yaml_document_get_node(doc, *i);
            if (!e || e->type != YAML_MAPPING_NODE) {
                ld->line = node_line(e);
                rule_problem(ld, "keyword search (a value without a field) in '%s'", s.name);
                return TW_ECONF;
            }
            if ((rc = parse_group(ld, doc, e, rule)))
                return rc;
        }
    } else {
        rule_problem(ld, "keyword search (a value without a field) in '%s'", s.name);
        return TW_ECONF;
    }
    s.n_groups = (uint32_t)rs->n_groups - s.first_group;
    if (s.n_groups == 0) {
        rule_problem(ld, "empty selection '%s'", s.name);
        return TW_ECONF;
    }
    if ((rc = GROW(rs, sels)))
        return rc;
    rs->sels[rs->n_sels++] = s;
    return TW_OK;
}

/* ---- Sigma: condition ------------------------------------------------------------------ */

struct cparse {
    struct loader *ld;
    const char *s, *end;
    const char *tok; /* current token */
    size_t tlen;
    uint32_t first_sel, n_sels;
    int depth, stack, max_stack;
    int bad;
};

static void cnext(struct cparse *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
    c->tok = c->s;
    if (c->s == c->end) {
        c->tlen = 0;
        return;
    }
    if (*c->s == '(' || *c->s == ')' || *c->s == '|') {
        c->s++;
    } else {
        while (c->s < c->end && !strchr(" \t\r\n()|", *c->s))
            c->s++;
    }
    c->tlen = (size_t)(c->s - c->tok);
}

static bool cis(const struct cparse *c, const char *w)
{
    return c->tlen == strlen(w) && strncasecmp(c->tok, w, c->tlen) == 0;
}

static int emit(struct cparse *c, uint32_t op)
{
    struct ruleset *rs = c->ld->rs;
    int rc = GROW(rs, ops);
    if (rc)
        return rc;
    rs->ops[rs->n_ops++] = op;
    c->stack += op == OP_NOT ? 0 : (op & 0x80000000u) ? -1 : 1;
    if (c->stack > c->max_stack)
        c->max_stack = c->stack;
    return TW_OK;
}

/* Selection-name pattern with '*' only (the X of '1 of X*'). */
static bool name_match(const char *pat, size_t pn, const char *s)
{
    size_t sn = strlen(s), pi = 0, si = 0, sp = SIZE_MAX, ss = 0;
    while (si < sn) {
        if (pi < pn && pat[pi] == '*') {
            sp = pi++;
            ss = si;
        } else if (pi < pn && pat[pi] == s[si]) {
            pi++;
            si++;
        } else if (sp != SIZE_MAX) {
            pi = sp + 1;
            si = ++ss;
        } else {
            return false;
        }
    }
    while (pi < pn && pat[pi] == '*')
        pi++;
    return pi == pn;
}

static int cexpr_or(struct cparse *c);

__attribute__((format(printf, 2, 3))) static int cfail(struct cparse *c, const char *fmt, ...)
{
    if (!c->bad) {
        char buf[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        rule_problem(c->ld, "%s", buf);
    }
    c->bad = 1;
    return TW_ECONF;
}

static int cprimary(struct cparse *c)
{
    int rc;
    if (c->tlen == 0)
        return cfail(c, "condition ends early");
    if (cis(c, "|"))
        return cfail(c, "aggregation '|%.*s' in condition is not supported",
                     (int)((size_t)(c->end - c->s)), c->s);
    if (cis(c, "near"))
        return cfail(c, "'%.*s' (temporal correlation) is not supported", (int)(c->tlen), c->tok);
    if (cis(c, "(")) {
        if (++c->depth > COND_MAX_NEST)
            return cfail(c, "condition nested too deeply");
        cnext(c);
        if ((rc = cexpr_or(c)))
            return rc;
        if (!cis(c, ")"))
            return cfail(c, "condition: expected ')' at '%.*s'", (int)(c->tlen), c->tok);
        c->depth--;
        cnext(c);
        return TW_OK;
    }
    const char *qt = c->tok;
    size_t ql = c->tlen;
    bool one = cis(c, "1") || cis(c, "any"), all = cis(c, "all");
    if (one || all || (c->tlen > 0 && c->tok[0] >= '0' && c->tok[0] <= '9')) {
        cnext(c);
        if (!cis(c, "of"))
            return cfail(c, "condition: unknown word '%.*s'", (int)(ql), qt);
        if (!one && !all)
            return cfail(c, "quantifier '%.*s of' is not supported", (int)(ql), qt);
        cnext(c);
        if (c->tlen == 0 || cis(c, "(") || cis(c, ")") || cis(c, "|"))
            return cfail(c, "condition: '%.*s of' without a target", (int)(ql), qt);
        bool them = cis(c, "them");
        int k = 0;
        for (uint32_t i = 0; i < c->n_sels; i++) {
            const char *nm = c->ld->rs->sels[c->first_sel + i].name;
            bool m = them ? nm[0] != '_' : name_match(c->tok, c->tlen, nm);
            if (!m)
                continue;
            if ((rc = emit(c, OP_SEL | i)))
                return rc;
            if (k++ > 0 && (rc = emit(c, one ? OP_OR : OP_AND)))
                return rc;
        }
        if (k == 0)
            return cfail(c, "condition: no selection matches '%.*s'", (int)(c->tlen), c->tok);
        cnext(c);
        return TW_OK;
    }
    if (cis(c, ")") || cis(c, "and") || cis(c, "or") || cis(c, "of") || cis(c, "them"))
        return cfail(c, "condition: unexpected '%.*s'", (int)(c->tlen), c->tok);
    for (uint32_t i = 0; i < c->n_sels; i++) {
        const char *nm = c->ld->rs->sels[c->first_sel + i].name;
        if (strlen(nm) == c->tlen && memcmp(nm, c->tok, c->tlen) == 0) {
            if ((rc = emit(c, OP_SEL | i)))
                return rc;
            cnext(c);
            return TW_OK;
        }
    }
    return cfail(c, "condition references unknown selection '%.*s'", (int)(c->tlen), c->tok);
}

static int cnot(struct cparse *c)
{
    int rc;
    if (cis(c, "not")) {
        if (++c->depth > COND_MAX_NEST)
            return cfail(c, "condition nested too deeply");
        cnext(c);
        if ((rc = cnot(c)) || (rc = emit(c, OP_NOT)))
            return rc;
        c->depth--;
        return TW_OK;
    }
    return cprimary(c);
}

static int cand(struct cparse *c)
{
    int rc = cnot(c);
    while (!rc && cis(c, "and")) {
        cnext(c);
        if (!(rc = cnot(c)))
            rc = emit(c, OP_AND);
    }
    return rc;
}

static int cexpr_or(struct cparse *c)
{
    int rc = cand(c);
    while (!rc && cis(c, "or")) {
        cnext(c);
        if (!(rc = cand(c)))
            rc = emit(c, OP_OR);
    }
    return rc;
}

static int parse_condition(struct loader *ld, const char *s, size_t n, uint32_t first_sel,
                           uint32_t n_sels, int *max_stack)
{
    struct cparse c = {ld, s, s + n, NULL, 0, first_sel, n_sels, 0, 0, 0, 0};
    cnext(&c);
    int rc = cexpr_or(&c);
    if (!rc && c.tlen != 0) {
        if (cis(&c, "|"))
            rc = cfail(&c, "aggregation '|%.*s' in condition is not supported",
                       (int)((size_t)(c.end - c.s)), c.s);
        else
            rc = cfail(&c, "condition: unexpected '%.*s'", (int)(c.tlen), c.tok);
    }
    if (c.max_stack > *max_stack)
        *max_stack = c.max_stack;
    return rc;
}

/* ---- evaluation ------------------------------------------------------------------------ */

struct mstate {
    const struct ruleset *rs;
    unsigned fields;
    const uint8_t *name;
    size_t len;
    uint32_t vals[MATCH_MAX_VALS]; /* verified values, deduplicated */
    size_t n_vals;
    struct touched {
        uint32_t rule;
        const char *pat; /* first value or domain that touched it */
    } touched[MATCH_MAX_RULES];
    size_t n_touched;
    int overflow;
    int direct; /* evaluate values directly (the fallback), not from vals[] */
};

static bool item_true(const struct mstate *m, const struct ritem *it)
{
    if (!(it->fields & m->fields))
        return false; /* the observation does not carry this field */
    size_t hits = 0;
    if (m->direct) {
        for (uint32_t i = 0; i < it->n_vals; i++) {
            if (val_check(&m->rs->vals[it->first_val + i], m->name, m->len, 0)) {
                if (!it->all)
                    return true;
                hits++;
            } else if (it->all) {
                return false;
            }
        }
    } else {
        for (size_t i = 0; i < m->n_vals; i++)
            if (m->vals[i] - it->first_val < it->n_vals)
                hits++;
    }
    return it->all ? hits == it->n_vals : hits > 0;
}

static bool sel_true(const struct mstate *m, const struct rsel *s)
{
    for (uint32_t g = 0; g < s->n_groups; g++) {
        const struct rgroup *gr = &m->rs->groups[s->first_group + g];
        bool ok = true;
        for (uint32_t i = 0; i < gr->n_items && ok; i++)
            ok = item_true(m, &m->rs->items[gr->first_item + i]);
        if (ok)
            return true;
    }
    return false;
}

/* Runs the rule's postfix program. The stack depth was bounded when it was compiled. */
static bool rule_true(const struct mstate *m, const struct rrule *r)
{
    bool st[COND_MAX_STACK];
    int sp = 0;
    for (uint32_t i = 0; i < r->n_ops; i++) {
        uint32_t op = m->rs->ops[r->first_op + i];
        if (op == OP_NOT) {
            st[sp - 1] = !st[sp - 1];
        } else if (op == OP_AND || op == OP_OR) {
            sp--;
            st[sp - 1] = op == OP_AND ? (st[sp - 1] && st[sp]) : (st[sp - 1] || st[sp]);
        } else {
            st[sp++] = sel_true(m, &m->rs->sels[r->first_sel + op]);
        }
    }
    return sp == 1 && st[0];
}

/* ---- Sigma: a rule document ------------------------------------------------------------ */

/* Where a one-string metadata key of a Sigma rule goes; NULL for any other key. */
static char **meta_slot(struct rule *r, yaml_node_t *k)
{
    if (scalar_is(k, "title"))
        return &r->title;
    if (scalar_is(k, "id"))
        return &r->id;
    if (scalar_is(k, "level"))
        return &r->level;
    if (scalar_is(k, "status"))
        return &r->status;
    if (scalar_is(k, "description"))
        return &r->description;
    if (scalar_is(k, "author"))
        return &r->author;
    return NULL;
}

/* The one-string metadata (title, id, level, ...), read first so that messages about the
 * rest of the rule can name it. */
static int rule_metadata(struct loader *ld, yaml_document_t *doc, yaml_node_t *root, struct rule *r)
{
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        char **one = meta_slot(r, k);
        if (!one)
            continue;
        if (!scalar(v, NULL)) {
            ld->line = node_line(v);
            rule_problem(ld, "'%s' is not a string", scalar(k, NULL));
            return TW_ECONF;
        }
        if (!(*one = dup_scalar(ld->rs, v)))
            return TW_ENOMEM;
    }
    return TW_OK;
}

/* The other top-level keys: tags and falsepositives lists, the detection map (returned in
 * *detection, checked by the caller), and the Sigma features we refuse. */
static int rule_sections(struct loader *ld, yaml_document_t *doc, yaml_node_t *root, struct rule *r,
                         yaml_node_t **detection)
{
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        ld->line = node_line(k);
        if (scalar_is(k, "tags") || scalar_is(k, "falsepositives")) {
            bool tags = scalar_is(k, "tags");
            int rc = str_list(ld->rs, doc, v, tags ? &r->tags : &r->falsepositives,
                              tags ? &r->n_tags : &r->n_falsepositives);
            if (rc == TW_EBAD) {
                rule_problem(ld, "'%s' is not a list of strings", scalar(k, NULL));
                rc = TW_ECONF;
            }
            if (rc)
                return rc;
        } else if (scalar_is(k, "detection")) {
            *detection = v;
        } else if (scalar_is(k, "action")) {
            rule_problem(ld, "rule collection ('action') is not supported");
            return TW_ECONF;
        } else if (scalar_is(k, "correlation")) {
            rule_problem(ld, "correlation rule is not supported");
            return TW_ECONF;
        } else if (scalar_is(k, "logsource") && v->type != YAML_MAPPING_NODE) {
            rule_problem(ld, "'logsource' is not a map");
            return TW_ECONF;
        }
    }
    return TW_OK;
}

/* The detection map: every selection, and the condition node (*cond, NULL when missing). */
static int rule_detection(struct loader *ld, yaml_document_t *doc, yaml_node_t *detection,
                          uint32_t rule_idx, yaml_node_t **cond)
{
    for (yaml_node_pair_t *p = detection->data.mapping.pairs.start;
         p < detection->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        ld->line = node_line(k);
        if (scalar_is(k, "condition")) {
            *cond = v;
        } else if (scalar_is(k, "timeframe")) {
            rule_problem(ld, "'timeframe' (aggregation) is not supported");
            return TW_ECONF;
        } else if (!scalar(k, NULL)) {
            rule_problem(ld, "selection name is not a string");
            return TW_ECONF;
        } else {
            int rc = parse_selection(ld, doc, k, v, rule_idx);
            if (rc)
                return rc;
        }
    }
    return TW_OK;
}

/* A list of conditions is their OR (older Sigma). */
static int condition_list(struct loader *ld, yaml_document_t *doc, yaml_node_t *cond,
                          const struct rrule *rr, int *max_stack)
{
    struct ruleset *rs = ld->rs;
    int rc = TW_OK, k = 0;
    for (yaml_node_item_t *i = cond->data.sequence.items.start;
         !rc && i < cond->data.sequence.items.top; i++) {
        yaml_node_t *e = yaml_document_get_node(doc, *i);
        size_t cl;
        const char *cs = scalar(e, &cl);
        ld->line = node_line(e);
        if (!cs) {
            rule_problem(ld, "'condition' list holds a non-string");
            return TW_ECONF;
        }
        rc = parse_condition(ld, cs, cl, rr->first_sel, rr->n_sels, max_stack);
        if (!rc && k++ > 0) {
            if (!(rc = GROW(rs, ops)))
                rs->ops[rs->n_ops++] = OP_OR;
        }
    }
    if (!rc && k == 0) {
        rule_problem(ld, "empty 'condition' list");
        rc = TW_ECONF;
    }
    return rc;
}

/* Compiles the condition (a string or a list of strings) into rr's postfix program. */
static int rule_condition(struct loader *ld, yaml_document_t *doc, yaml_node_t *cond,
                          struct rrule *rr)
{
    struct ruleset *rs = ld->rs;
    rr->first_op = (uint32_t)rs->n_ops;
    int max_stack = 0, rc;
    ld->line = node_line(cond);
    if (cond->type == YAML_SCALAR_NODE) {
        size_t cl;
        const char *cs = scalar(cond, &cl);
        rc = parse_condition(ld, cs, cl, rr->first_sel, rr->n_sels, &max_stack);
    } else if (cond->type == YAML_SEQUENCE_NODE) {
        rc = condition_list(ld, doc, cond, rr, &max_stack);
    } else {
        rule_problem(ld, "'condition' is not a string");
        rc = TW_ECONF;
    }
    if (rc)
        return rc;
    if (max_stack + 1 > COND_MAX_STACK) {
        rule_problem(ld, "condition too complex");
        return TW_ECONF;
    }
    rr->n_ops = (uint32_t)rs->n_ops - rr->first_op;
    return TW_OK;
}

/* The rule itself: metadata, detection, condition; appended to rs->rules on success. */
static int load_sigma_rule(struct loader *ld, yaml_document_t *doc, yaml_node_t *root,
                           size_t first_item)
{
    struct ruleset *rs = ld->rs;
    struct rrule rr;
    memset(&rr, 0, sizeof(rr));
    struct rule *r = &rr.pub;
    yaml_node_t *detection = NULL, *cond = NULL;
    int rc = rule_metadata(ld, doc, root, r);
    if (rc)
        return rc;
    ld->title = r->title;
    ld->id = r->id;
    if ((rc = rule_sections(ld, doc, root, r, &detection)))
        return rc;
    if (!r->title || !r->id) {
        ld->line = node_line(root);
        rule_problem(ld, "missing '%s'", r->title ? "id" : "title");
        return TW_ECONF;
    }
    if (!detection || detection->type != YAML_MAPPING_NODE) {
        ld->line = node_line(detection ? detection : root);
        rule_problem(ld, "missing or malformed 'detection' map");
        return TW_ECONF;
    }
    rr.first_sel = (uint32_t)rs->n_sels;
    if ((rc = rule_detection(ld, doc, detection, (uint32_t)rs->n_rules, &cond)))
        return rc;
    rr.n_sels = (uint32_t)rs->n_sels - rr.first_sel;
    if (!cond) {
        ld->line = node_line(detection);
        rule_problem(ld, "missing 'condition'");
        return TW_ECONF;
    }
    if ((rc = rule_condition(ld, doc, cond, &rr)))
        return rc;
    r->file = arena_strndup(rs, ld->file, strlen(ld->file));
    if (!r->file || set_techniques(rs, r))
        return TW_ENOMEM;
    for (size_t i = first_item; i < rs->n_items; i++)
        r->fields |= rs->items[i].fields;
    rs->rules[rs->n_rules++] = rr;
    return TW_OK;
}

static int load_sigma_doc(struct loader *ld, yaml_document_t *doc)
{
    struct ruleset *rs = ld->rs;
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root)
        return TW_OK;
    ld->title = ld->id = NULL;
    ld->line = node_line(root);
    /* marks to roll back a skipped rule */
    size_t m_sels = rs->n_sels, m_groups = rs->n_groups, m_items = rs->n_items, m_vals = rs->n_vals,
           m_ops = rs->n_ops;
    int rc = GROW(rs, rules);
    if (rc)
        return rc;
    if (root->type != YAML_MAPPING_NODE) {
        rule_problem(ld, "not a Sigma rule (the document is not a map)");
        rc = TW_ECONF;
    } else {
        rc = load_sigma_rule(ld, doc, root, m_items);
    }
    if (rc == TW_OK)
        return TW_OK;
    /* a skipped or failed rule leaves nothing behind but arena strings */
    rs->n_sels = m_sels;
    rs->n_groups = m_groups;
    rs->n_items = m_items;
    rs->n_vals = m_vals;
    rs->n_ops = m_ops;
    return rc;
}

/* Offset of the first '[' or '{' nested deeper than MAX_FLOW_DEPTH, or len. libyaml takes
 * time quadratic in flow nesting (200 KB of '[' held a reload for 40 s) and no Sigma rule nests
 * more than a few levels; quotes and comments are not skipped (only an overcount can refuse,
 * and no rule holds hundreds of unclosed brackets). */
#define MAX_FLOW_DEPTH 256
static size_t flow_too_deep(const uint8_t *data, size_t len)
{
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '[' || data[i] == '{') {
            if (++depth > MAX_FLOW_DEPTH)
                return i;
        } else if ((data[i] == ']' || data[i] == '}') && depth) {
            depth--;
        }
    }
    return len;
}

static int load_sigma_mem(struct loader *ld, const uint8_t *data, size_t len)
{
    size_t deep = flow_too_deep(data, len);
    if (deep < len) {
        if (ld->err)
            fprintf(ld->err, "%s: error: YAML nested deeper than %d levels (byte %zu)\n", ld->file,
                    MAX_FLOW_DEPTH, deep);
        return TW_ECONF;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return TW_ENOMEM;
    yaml_parser_set_input_string(&parser, data, len);
    int rc = TW_OK, loaded = 0;
    /* documents in a file are bounded by its size: each needs at least a few bytes */
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            if (ld->err)
                fprintf(ld->err, "%s:%zu:%zu: error: YAML syntax: %s%s%s\n", ld->file,
                        parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                        parser.problem ? parser.problem : "malformed", parser.context ? " " : "",
                        parser.context ? parser.context : "");
            rc = TW_ECONF;
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {
            yaml_document_delete(&doc);
            break;
        }
        if (scalar_is_null(root)) { /* an empty document ('---' alone): YAML readers skip it */
            yaml_document_delete(&doc);
            continue;
        }
        size_t before = ld->rs->n_rules;
        int r = load_sigma_doc(ld, &doc);
        yaml_document_delete(&doc);
        if (r == TW_ENOMEM || r == TW_ELIMIT) {
            rc = r;
            break;
        }
        loaded += (int)(ld->rs->n_rules - before);
    }
    yaml_parser_delete(&parser);
    return rc ? rc : loaded;
}

/* ---- indicator lists ------------------------------------------------------------------- */

/* FNV-1a over folded bytes, right to left, so every suffix's hash falls out of one pass. */
#define DH_INIT  2166136261u
#define DH_PRIME 16777619u

static int add_domain(struct ruleset *rs, const char *d, size_t n, uint32_t rule)
{
    int rc = GROW(rs, doms);
    if (rc)
        return rc;
    if (rs->dpool_len + n + 1 > UINT32_MAX)
        return TW_ELIMIT;
    if (rs->dpool_len + n + 1 > rs->dpool_cap) {
        size_t nc = rs->dpool_cap ? rs->dpool_cap * 2 : 4096;
        while (nc < rs->dpool_len + n + 1)
            nc *= 2;
        char *np = realloc(rs->dpool, nc);
        if (!np)
            return TW_ENOMEM;
        rs->dpool = np;
        rs->dpool_cap = nc;
    }
    uint32_t h = DH_INIT;
    char *dst = rs->dpool + rs->dpool_len;
    for (size_t i = n; i-- > 0;) {
        dst[i] = (char)fold((uint8_t)d[i]);
        h = (h ^ (uint8_t)dst[i]) * DH_PRIME;
    }
    dst[n] = '\0';
    struct dom *e = &rs->doms[rs->n_doms++];
    e->off = (uint32_t)rs->dpool_len;
    e->len = (uint16_t)n;
    e->rule = rule;
    e->hash = h;
    rs->dpool_len += n + 1;
    return TW_OK;
}

static bool domain_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

static const char *trim(const char *s, const char *e, const char **end)
{
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    *end = e;
    return s;
}

/* Where a one-string header key of an indicator list goes; NULL for any other key. */
static char **list_meta_slot(struct rule *r, const char *ks, size_t kl)
{
    if (kl == 2 && !strncasecmp(ks, "id", 2))
        return &r->id;
    if (kl == 5 && !strncasecmp(ks, "title", 5))
        return &r->title;
    if (kl == 5 && !strncasecmp(ks, "level", 5))
        return &r->level;
    if (kl == 6 && !strncasecmp(ks, "status", 6))
        return &r->status;
    if (kl == 6 && !strncasecmp(ks, "author", 6))
        return &r->author;
    if (kl == 11 && !strncasecmp(ks, "description", 11))
        return &r->description;
    return NULL;
}

/* "# tags: a, b, c": the comma-separated tags, blanks dropped. */
static int list_tags(struct ruleset *rs, struct rule *r, const char *vs, const char *ve)
{
    size_t k = 0;
    for (const char *q = vs; q < ve; q++)
        k += *q == ',';
    r->tags = arena_alloc(rs, (k + 1) * sizeof(char *));
    if (!r->tags)
        return TW_ENOMEM;
    for (const char *q = vs; q < ve;) {
        const char *c = memchr(q, ',', (size_t)(ve - q));
        const char *te2, *ts = trim(q, c ? c : ve, &te2);
        q = c ? c + 1 : ve;
        if (ts == te2)
            continue;
        if (!(r->tags[r->n_tags++] = arena_strndup(rs, ts, (size_t)(te2 - ts))))
            return TW_ENOMEM;
    }
    return TW_OK;
}

/* One "key: value" header, text t[0..te) after the '#'. TW_ECONF (reported) for a field
 * the list cannot mean; lines that are no known key are comments. */
static int list_header(struct loader *ld, struct rule *r, const char *t, const char *te)
{
    struct ruleset *rs = ld->rs;
    const char *colon = memchr(t, ':', (size_t)(te - t));
    if (!colon)
        return TW_OK;
    const char *ke, *vs, *ve;
    const char *ks = trim(t, colon, &ke);
    vs = trim(colon + 1, te, &ve);
    size_t kl = (size_t)(ke - ks), vl = (size_t)(ve - vs);
    char **one = list_meta_slot(r, ks, kl);
    if (one) {
        if (!*one && !(*one = arena_strndup(rs, vs, vl)))
            return TW_ENOMEM;
    } else if (kl == 5 && !strncasecmp(ks, "field", 5)) {
        if (vl == 9 && !strncasecmp(vs, "dest_host", 9))
            r->fields = RF_DEST_HOST;
        else if (vl == 5 && !strncasecmp(vs, "query", 5))
            r->fields = RF_QUERY;
        else if (vl == 3 && !strncasecmp(vs, "any", 3))
            r->fields = RF_DEST_HOST | RF_QUERY;
        else {
            ld->title = r->title;
            ld->id = r->id;
            ld->line = 0;
            rule_problem(ld, "field '%.*s' is not dest_host, query or any", (int)vl, vs);
            return TW_ECONF;
        }
    } else if (kl == 4 && !strncasecmp(ks, "tags", 4) && !r->tags) {
        return list_tags(rs, r, vs, ve);
    } else if (kl == 14 && !strncasecmp(ks, "falsepositives", 14) && !r->falsepositives) {
        r->falsepositives = arena_alloc(rs, sizeof(char *));
        if (!r->falsepositives || !(r->falsepositives[0] = arena_strndup(rs, vs, vl)))
            return TW_ENOMEM;
        r->n_falsepositives = 1;
    }
    return TW_OK;
}

/* Pass 1 over the list: the '#' header lines, then the defaults of what they left unset
 * (id: the file name, title: "Indicator list FILE", level: medium). */
static int list_metadata(struct loader *ld, struct rule *r, const char *s, const char *end,
                         const char *base)
{
    struct ruleset *rs = ld->rs;
    for (const char *p = s; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *te;
        const char *t = trim(p, le, &te);
        p = nl ? nl + 1 : end;
        if (t == te || *t != '#')
            continue;
        t++;
        t = trim(t, te, &te);
        int rc = list_header(ld, r, t, te);
        if (rc)
            return rc;
    }
    if (!r->id && !(r->id = arena_strndup(rs, base, strlen(base))))
        return TW_ENOMEM;
    if (!r->title) {
        size_t tl = strlen(base) + 16;
        if (!(r->title = arena_alloc(rs, tl)))
            return TW_ENOMEM;
        snprintf(r->title, tl, "Indicator list %s", base);
    }
    if (!r->level && !(r->level = arena_strndup(rs, "medium", 6)))
        return TW_ENOMEM;
    return TW_OK;
}

/* The domain of one line t[0..te) without its comment: "*." or a leading dot and one
 * trailing dot dropped. Returns its start, length in *dl; false when it is no domain name. */
static bool list_domain(const char *t, const char *te, const char **dom, size_t *dl)
{
    if (te - t >= 2 && t[0] == '*' && t[1] == '.')
        t += 2; /* '*.example.com' says the same as 'example.com' here */
    else if (t[0] == '.')
        t++;
    if (te > t && te[-1] == '.')
        te--;
    *dom = t;
    *dl = (size_t)(te - t);
    bool ok = *dl > 0 && *dl <= 253;
    for (size_t i = 0; ok && i < *dl; i++)
        ok = domain_char(t[i]) && !(t[i] == '.' && (i == 0 || t[i - 1] == '.'));
    return ok;
}

/* Pass 2: one domain per line. TW_ECONF (reported, domains of this list rolled back) at the
 * first line that is no domain name. */
static int list_domains(struct loader *ld, const char *s, const char *end, uint32_t rule_idx)
{
    struct ruleset *rs = ld->rs;
    size_t m_doms = rs->n_doms, m_dpool = rs->dpool_len, line = 0;
    for (const char *p = s; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *ls = p, *le = nl ? nl : end, *te;
        p = nl ? nl + 1 : end;
        line++;
        const char *cm = memchr(ls, '#', (size_t)(le - ls));
        const char *t = trim(ls, cm ? cm : le, &te);
        if (t == te)
            continue;
        size_t dl;
        if (!list_domain(t, te, &t, &dl)) {
            ld->line = line;
            rule_problem(ld, "line is not a domain name: '%.*s'", (int)(dl > 80 ? 80 : dl), t);
            rs->n_doms = m_doms;
            rs->dpool_len = m_dpool;
            return TW_ECONF;
        }
        int rc = add_domain(rs, t, dl, rule_idx);
        if (rc)
            return rc;
    }
    return TW_OK;
}

/* '# key: value' header lines give the rule's metadata; each other line is one domain.
 * Returns 1 (one rule), 0 when the list was skipped under RULE_POLICY_SKIP, or < 0. */
static int load_list_mem(struct loader *ld, const uint8_t *data, size_t len)
{
    struct ruleset *rs = ld->rs;
    int rc = GROW(rs, rules);
    if (rc)
        return rc;
    struct rrule rr;
    memset(&rr, 0, sizeof(rr));
    rr.indicator = 1;
    struct rule *r = &rr.pub;
    r->fields = RF_DEST_HOST | RF_QUERY;
    const char *base = strrchr(ld->file, '/');
    base = base ? base + 1 : ld->file;
    const char *s = (const char *)data, *end = s + len;
    ld->title = ld->id = NULL;
    /* headers first, so errors about domains can name the rule */
    rc = list_metadata(ld, r, s, end, base);
    if (rc == TW_OK) {
        ld->title = r->title;
        ld->id = r->id;
        rc = list_domains(ld, s, end, (uint32_t)rs->n_rules);
    }
    if (rc == TW_ECONF)
        return rs->policy == RULE_POLICY_SKIP ? 0 : TW_ECONF;
    if (rc)
        return rc;
    r->file = arena_strndup(rs, ld->file, strlen(ld->file));
    if (!r->file || set_techniques(rs, r))
        return TW_ENOMEM;
    rs->rules[rs->n_rules++] = rr;
    return 1;
}

/* ---- files and folders ----------------------------------------------------------------- */

static bool has_ext(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    return n > e && strcasecmp(name + n - e, ext) == 0;
}

int ruleset_load_mem(struct ruleset *rs, const char *name, const uint8_t *data, size_t len,
                     FILE *err)
{
    if (!rs || rs->built || !name)
        return TW_EBAD;
    struct loader ld = {rs, name, err, NULL, NULL, 0, 0};
    rs->files++;
    int rc = has_ext(name, ".txt") ? load_list_mem(&ld, data, len) : load_sigma_mem(&ld, data, len);
    return rc >= 0 && ld.failed ? TW_ECONF : rc;
}

static int load_file(struct ruleset *rs, const char *path, FILE *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err)
            fprintf(err, "%s: error: cannot open: %s\n", path, strerror(errno));
        return TW_ECONF;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = TW_OK;
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE_SIZE) {
                if (err)
                    fprintf(err, "%s: error: larger than %u MiB\n", path, MAX_FILE_SIZE >> 20);
                rc = TW_ECONF;
                break;
            }
            cap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                rc = TW_ENOMEM;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    if (!rc && ferror(f)) {
        if (err)
            fprintf(err, "%s: error: read failed\n", path);
        rc = TW_ECONF;
    }
    fclose(f);
    if (!rc)
        rc = ruleset_load_mem(rs, path, buf, n, err);
    free(buf);
    return rc;
}

static int load_path(struct ruleset *rs, const char *path, FILE *err, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (err)
            fprintf(err, "%s: error: %s\n", path, strerror(errno));
        return TW_ECONF;
    }
    if (!S_ISDIR(st.st_mode))
        return load_file(rs, path, err);
    /* why: a symlink loop would otherwise recurse forever */
    if (depth >= MAX_DIR_DEPTH) {
        if (err)
            fprintf(err, "%s: error: folders nested deeper than %d\n", path, MAX_DIR_DEPTH);
        return TW_ECONF;
    }
    struct dirent **list = NULL;
    int n = scandir(path, &list, NULL, alphasort);
    if (n < 0) {
        if (err)
            fprintf(err, "%s: error: %s\n", path, strerror(errno));
        return TW_ECONF;
    }
    int total = 0, first_err = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = list[i]->d_name;
        int rc = 0;
        if (nm[0] != '.') {
            size_t pl = strlen(path) + strlen(nm) + 2;
            char *sub = malloc(pl);
            if (!sub) {
                rc = TW_ENOMEM;
            } else {
                snprintf(sub, pl, "%s/%s", path, nm);
                struct stat ss;
                if (stat(sub, &ss) == 0 && S_ISDIR(ss.st_mode))
                    rc = load_path(rs, sub, err, depth + 1);
                else if (has_ext(nm, ".yml") || has_ext(nm, ".yaml") || has_ext(nm, ".txt"))
                    rc = load_file(rs, sub, err);
                free(sub);
            }
        }
        /* keep going after a bad file so one run reports every problem */
        if (rc < 0 && !first_err)
            first_err = rc;
        else if (rc > 0)
            total += rc;
        free(list[i]);
    }
    free(list);
    return first_err ? first_err : total;
}

int ruleset_load(struct ruleset *rs, const char *path, FILE *err)
{
    if (!rs || !path)
        return TW_EBAD;
    if (rs->built)
        return TW_EBAD;
    return load_path(rs, path, err, 0);
}

/* ---- build ----------------------------------------------------------------------------- */

int ruleset_build(struct ruleset *rs)
{
    if (!rs || rs->built)
        return TW_EBAD;
    rs->ac = ac_new();
    if (!rs->ac)
        return TW_ENOMEM;
    for (size_t i = 0; i < rs->n_rules; i++)
        rs->rules[i].pub.set = rs; /* the array does not move any more */
    rs->anchorless = malloc((rs->n_vals ? rs->n_vals : 1) * sizeof(uint32_t));
    rs->always = malloc((rs->n_rules ? rs->n_rules : 1) * sizeof(uint32_t));
    if (!rs->anchorless || !rs->always)
        return TW_ENOMEM;
    for (size_t i = 0; i < rs->n_vals; i++) {
        const struct rval *v = &rs->vals[i];
        if (v->alen == 0) {
            rs->anchorless[rs->n_anchorless++] = (uint32_t)i;
            continue;
        }
        int rc = ac_add(rs->ac, anchor_of(v), v->alen, (uint32_t)i);
        if (rc)
            return rc;
    }
    int rc = ac_build(rs->ac);
    if (rc)
        return rc;
    /* rules whose condition holds when no selection does (e.g. 'not filter') */
    struct mstate m;
    memset(&m, 0, sizeof(m));
    m.rs = rs;
    m.fields = 0;
    for (size_t i = 0; i < rs->n_rules; i++)
        if (!rs->rules[i].indicator && rule_true(&m, &rs->rules[i])) {
            rs->rules[i].always = 1;
            rs->always[rs->n_always++] = (uint32_t)i;
        }
    /* domain hash set, load factor <= 1/2 */
    size_t cap = 16;
    while (cap < rs->n_doms * 2)
        cap *= 2;
    rs->dtab = calloc(cap, sizeof(uint32_t));
    if (!rs->dtab)
        return TW_ENOMEM;
    rs->dtab_mask = cap - 1;
    for (size_t i = 0; i < rs->n_doms; i++) {
        size_t h = rs->doms[i].hash & rs->dtab_mask;
        while (rs->dtab[h])
            h = (h + 1) & rs->dtab_mask;
        rs->dtab[h] = (uint32_t)i + 1;
    }
    rs->built = 1;
    return TW_OK;
}

void ruleset_summary(const struct ruleset *rs, struct ruleset_summary *out)
{
    memset(out, 0, sizeof(*out));
    if (!rs)
        return;
    out->rules = rs->n_rules;
    out->patterns = rs->n_vals + rs->n_doms;
    out->files = rs->files;
    out->skipped = rs->skipped;
    for (size_t i = 0; i < rs->n_rules; i++)
        out->fields |= rs->rules[i].pub.fields;
}

size_t ruleset_rule_count(const struct ruleset *rs)
{
    return rs ? rs->n_rules : 0;
}

const struct rule *ruleset_rule(const struct ruleset *rs, size_t i)
{
    return rs && i < rs->n_rules ? &rs->rules[i].pub : NULL;
}

/* ---- match ----------------------------------------------------------------------------- */

static int touch(struct mstate *m, uint32_t rule, const char *pat)
{
    for (size_t i = 0; i < m->n_touched; i++)
        if (m->touched[i].rule == rule)
            return 0;
    if (m->n_touched == MATCH_MAX_RULES) {
        m->overflow = 1;
        return 1;
    }
    m->touched[m->n_touched].rule = rule;
    m->touched[m->n_touched].pat = pat;
    m->n_touched++;
    return 0;
}

static int add_val(struct mstate *m, uint32_t vi)
{
    for (size_t i = 0; i < m->n_vals; i++)
        if (m->vals[i] == vi)
            return 0;
    if (m->n_vals == MATCH_MAX_VALS) {
        m->overflow = 1;
        return 1;
    }
    m->vals[m->n_vals++] = vi;
    const struct rval *v = &m->rs->vals[vi];
    return touch(m, m->rs->items[v->item].rule, v->raw);
}

static int on_hit(void *ud, uint32_t id, size_t end)
{
    struct mstate *m = ud;
    const struct rval *v = &m->rs->vals[id];
    if (!(m->rs->items[v->item].fields & m->fields))
        return 0;
    if (!val_check(v, m->name, m->len, end))
        return 0;
    return add_val(m, id);
}

/* Indicator domains: the name and each suffix that starts after a dot. */
static void domain_walk(struct mstate *m, uint32_t only_rule, const char **found)
{
    const struct ruleset *rs = m->rs;
    if (!rs->n_doms)
        return;
    uint32_t h = DH_INIT;
    for (size_t i = m->len; i-- > 0;) {
        h = (h ^ fold(m->name[i])) * DH_PRIME;
        if (i > 0 && m->name[i - 1] != '.')
            continue;
        size_t n = m->len - i;
        for (size_t s = h & rs->dtab_mask; rs->dtab[s]; s = (s + 1) & rs->dtab_mask) {
            const struct dom *d = &rs->doms[rs->dtab[s] - 1];
            if (d->hash != h || d->len != n)
                continue;
            const char *dn = rs->dpool + d->off;
            size_t k = 0;
            while (k < n && (uint8_t)dn[k] == fold(m->name[i + k]))
                k++;
            if (k != n || !(rs->rules[d->rule].pub.fields & m->fields))
                continue;
            if (found) {
                if (d->rule == only_rule && !*found)
                    *found = dn;
            } else if (touch(m, d->rule, dn)) {
                return;
            }
        }
    }
}

static int cmp_touched(const void *a, const void *b)
{
    uint32_t x = ((const struct touched *)a)->rule, y = ((const struct touched *)b)->rule;
    return x < y ? -1 : x > y;
}

int ruleset_match(const struct ruleset *rs, unsigned fields, const uint8_t *name, size_t len,
                  struct rule_hit *hits, size_t max)
{
    if (!rs || !rs->built || !name || max == 0)
        return 0;
    if (len > 0 && name[len - 1] == '.')
        len--; /* one trailing dot: the root label */
    if (len == 0)
        return 0;
    struct mstate m;
    m.rs = rs;
    m.fields = fields;
    m.name = name;
    m.len = len;
    m.n_vals = m.n_touched = 0;
    m.overflow = m.direct = 0;
    ac_search(rs->ac, name, len, on_hit, &m);
    for (size_t i = 0; i < rs->n_anchorless && !m.overflow; i++) {
        const struct rval *v = &rs->vals[rs->anchorless[i]];
        if ((rs->items[v->item].fields & fields) && val_check(v, name, len, 0))
            add_val(&m, rs->anchorless[i]);
    }
    if (!m.overflow)
        domain_walk(&m, 0, NULL);
    size_t nh = 0;
    if (m.overflow) {
        /* more values or rules than the scratch holds: evaluate every rule directly */
        m.direct = 1;
        for (size_t r = 0; r < rs->n_rules && nh < max; r++) {
            const struct rrule *rr = &rs->rules[r];
            const char *pat = NULL;
            if (rr->indicator) {
                domain_walk(&m, (uint32_t)r, &pat);
                if (!pat)
                    continue;
            } else {
                if (!rule_true(&m, rr))
                    continue;
                for (size_t v = 0; v < rs->n_vals && !pat; v++)
                    if (rs->items[rs->vals[v].item].rule == r &&
                        (rs->items[rs->vals[v].item].fields & fields) &&
                        val_check(&rs->vals[v], name, len, 0))
                        pat = rs->vals[v].raw;
            }
            hits[nh].rule = &rr->pub;
            hits[nh].pattern = pat ? pat : "";
            nh++;
        }
        return (int)nh;
    }
    /* touched rules and the always-evaluated ones, in rule order */
    qsort(m.touched, m.n_touched, sizeof(m.touched[0]), cmp_touched);
    size_t ti = 0, ai = 0;
    while ((ti < m.n_touched || ai < rs->n_always) && nh < max) {
        uint32_t r;
        const char *pat = "";
        if (ai >= rs->n_always || (ti < m.n_touched && m.touched[ti].rule <= rs->always[ai])) {
            r = m.touched[ti].rule;
            pat = m.touched[ti].pat;
            if (ai < rs->n_always && rs->always[ai] == r)
                ai++;
            ti++;
        } else {
            r = rs->always[ai++];
        }
        const struct rrule *rr = &rs->rules[r];
        if (rr->indicator || rule_true(&m, rr)) {
            hits[nh].rule = &rr->pub;
            hits[nh].pattern = pat;
            nh++;
        }
    }
    return (int)nh;
}
