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
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "tunnelwatch/ac.h"
#include "tunnelwatch/re.h"
#include "tunnelwatch/rules.h"
#include "tunnelwatch/yml.h"

#define MAX_FILE_SIZE   (512u << 20) /* a rule file or indicator list larger than this is refused */
#define MAX_DIR_DEPTH   8            /* folder recursion (symlink loops) */
#define MAX_VALUE_LEN   4096         /* longest Sigma value / AC anchor */
#define COND_MAX_STACK  64           /* evaluation stack of a condition program */
#define COND_MAX_NEST   32           /* parentheses / not nesting while parsing */
#define MATCH_MAX_VALS  256          /* verified values remembered per observation */
#define MATCH_MAX_RULES 64           /* rules touched per observation before the fallback */
#define MAX_REASONS     64           /* distinct skip reasons tallied for -T */
#define AGATE_MAX       256          /* addresses an address gate holds (struct agate) */

enum val_mod {
    MOD_EQ,
    MOD_CONTAINS,
    MOD_STARTS,
    MOD_ENDS,
    MOD_LT,
    MOD_LTE,
    MOD_GT,
    MOD_GTE,
    MOD_CIDR,
    MOD_RE,
    MOD_RE_I /* |re|i */
};

/* How a field's values compare: strings (globs), numbers, addresses (text globs or cidr),
 * booleans. */
enum fkind { FK_STR, FK_NUM, FK_ADDR, FK_BOOL };

struct rval {
    const char *raw;     /* as written, NUL-terminated: reported as rule_hit.pattern */
    const uint8_t *pat;  /* glob over the whole field (folded unless cased); NULL: no glob */
    const uint8_t *wild; /* per byte of pat: 0 literal, '*' or '?' */
    uint32_t len;        /* of pat */
    uint32_t item;
    uint32_t alen; /* anchor (longest literal run) length; 0: checked on every name */
    uint8_t mod;
    uint8_t plain;      /* the value had no wildcard: its anchor is the whole value */
    uint8_t cased;      /* |cased: the glob compares bytes as they are */
    uint8_t prefix;     /* MOD_CIDR: prefix length */
    int64_t num;        /* FK_NUM value, FK_BOOL 0/1 */
    struct tw_addr net; /* MOD_CIDR */
    struct re *re;      /* MOD_RE: owned (freed with the set, or when its rule is skipped) */
};

struct ritem {
    uint32_t first_val, n_vals;
    uint32_t rule;
    uint32_t fields; /* the one enum rule_field bit of its field */
    uint8_t all;
    uint8_t kind;   /* enum fkind */
    uint8_t isnull; /* 'field: null': holds when the field is absent or empty */
    uint8_t scalar; /* numbers, booleans, cidr: compared directly, never AC anchors */
};

struct rgroup {
    uint32_t first_item, n_items; /* AND */
};

struct rsel {
    const char *name;
    uint32_t first_group, n_groups; /* OR */
    const char *proc; /* a process field one of its items uses (items on it not stored) */
    uint8_t ref_pos;  /* the condition uses it un-negated */
    uint8_t ref_neg;  /* ... or negated */
    uint8_t dropped;  /* a process filter dropped: always false */
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
    uint8_t indicator;    /* an indicator list: true when a listed domain matched */
    uint8_t always;       /* may hold with no string value matched: evaluate on every name */
    uint8_t kinds;        /* bits 1 << enum rule_obs_kind it is evaluated on */
    uint8_t all_kinds;    /* those that carry every field it uses (the self-test's) */
    int32_t need;         /* a local selection the condition cannot hold without, or -1: checked
                           * first, so most observations skip the whole program */
    const uint16_t *gate; /* when every group of the needed selection asks for a server port
                           * among fixed values: their union, sorted (n_gate of them); a flow
                           * to another port cannot satisfy the rule */
    uint32_t n_gate;
    const struct agate *agate; /* else when every group asks for a client or server address
                                * among fixed ones (cidr): their union (n_agate of them) */
    uint32_t n_agate;
};

/* One address (or network) a rule's needed selection asks the client or server to be in. */
struct agate {
    struct tw_addr net;
    uint8_t prefix;
    uint8_t client; /* SourceIp (the client), else DestinationIp (the server) */
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

/* The automata: a scan of a name reads only the values of the fields it fills. A DNS query's
 * name is DestinationHostname and QueryName, a TLS, QUIC or HTTP name DestinationHostname and
 * cs-host; the other text fields (URL, User-Agent, ...) are scanned apart. DestinationHostname
 * values sit in both name automata. (One automaton for all three name fields was tried: its
 * table is smaller than the two, but a scan then meets the values of the field it does not
 * fill, which the kind tags cannot tell apart: on the 50 MB bench mix with all of SigmaHQ,
 * 11,147 values reported against 722, and 1.1 M more capture-path instructions for 1% fewer
 * first-level data-cache misses; callgrind.) */
enum ac_set {
    AC_QUERY, /* RF_QUERY, RF_DEST_HOST */
    AC_HOST,  /* RF_DEST_HOST, RF_HTTP_HOST */
    AC_OTHER, /* every other text field */
    AC__COUNT
};

struct ruleset {
    atomic_uint refs; /* ruleset_new's reference plus one per holder (rules.h) */
    enum rule_policy policy;
    int built;
    bool drop_filters;
    uint8_t kinds;              /* union of the rules' kinds */
    unsigned uses;              /* union of the rules' field bits */
    unsigned kuses[ROK__COUNT]; /* per kind: bits that rules of that kind compare as text */
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
    struct ac *ac[AC__COUNT]; /* by the fields their values are on (enum ac_set) */
    uint32_t *dtab;           /* open addressing over doms, index + 1, 0 = empty */
    size_t dtab_mask;
    uint32_t *anchorless; /* values without a literal anchor */
    size_t n_anchorless;
    uint32_t *always; /* rules to evaluate on every name */
    size_t n_always;
    bool flow_gated;      /* every rule run on new flows is an always rule with a port or address
                           * gate: a flow no gate lets in is done without preparing anything */
    uint64_t *flow_ports; /* then: the union of the port gates, a bit per port */
    const struct agate *flow_addrs; /* and of the address gates (arena), except for */
    size_t n_flow_addrs;
    const uint32_t *flow_v4[2]; /* single IPv4 addresses ([0] server, [1] client side), kept */
    size_t n_flow_v4[2];        /* as words to compare at once (most gates are such lists) */
    uint8_t always_kinds;       /* union of the always rules' kinds: other kinds skip the list */
    unsigned anchorless_bits;   /* fields of the values without an anchor */
    unsigned anchorless_kbits[ROK__COUNT]; /* ... of those whose rule runs on the kind */
    size_t files, skipped;
    struct reason {
        char *text; /* arena */
        size_t count;
    } reasons[MAX_REASONS]; /* distinct skip reasons; the rest counted in the last one */
    size_t n_reasons;
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

void ruleset_set_drop_filters(struct ruleset *rs, bool drop)
{
    if (rs)
        rs->drop_filters = drop;
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
    for (size_t i = 0; i < rs->n_vals; i++)
        re_free(rs->vals[i].re);
    for (size_t i = 0; i < rs->n_rules; i++)
        free(rs->rules[i].pub.ecs_json);
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
    for (unsigned i = 0; i < AC__COUNT; i++)
        ac_free(rs->ac[i]);
    free(rs->dtab);
    free(rs->anchorless);
    free(rs->always);
    free(rs);
}

/* ---- glob ------------------------------------------------------------------------------ */

/* Sigma wildcard match of a folded glob against a name (any case). Greedy with one
 * backtrack point: O(len(pat) * len(name)) at worst, and both are short. */
static bool glob_match(const uint8_t *p, const uint8_t *w, size_t pn, const uint8_t *s, size_t sn,
                       bool cased)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
    while (si < sn) {
        if (pi < pn && w[pi] == '*') {
            star_p = pi++;
            star_s = si;
        } else if (pi < pn && (w[pi] == '?' || p[pi] == (cased ? s[si] : fold(s[si])))) {
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
    if (v->re)
        return re_search(v->re, name, len);
    if (v->plain && end && !v->cased) {
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
    return glob_match(v->pat, v->wild, v->len, name, len, v->cased);
}

/* ---- diagnostics ----------------------------------------------------------------------- */

struct loader {
    struct ruleset *rs;
    const char *file;
    FILE *err;
    const char *title, *id; /* of the rule being loaded, for messages */
    size_t line;            /* of the construct, 1-based; 0 unknown */
    int failed;             /* a rule error under RULE_POLICY_ERROR */
    unsigned ls;            /* LS_* of the rule's logsource */
    const char *sel_proc;   /* the selection being parsed uses this process field */
};

/* Counts a skip under its reason; a filter's own name is left out so that one reason
 * gathers every rule it applies to. */
static void tally_reason(struct ruleset *rs, const char *msg)
{
    char key[512];
    const char *q = strncmp(msg, "filter '", 8) == 0 ? strchr(msg + 8, '\'') : NULL;
    if (q)
        snprintf(key, sizeof(key), "filter%s", q + 1);
    else
        snprintf(key, sizeof(key), "%s", msg);
    for (size_t i = 0; i < rs->n_reasons; i++)
        if (!strcmp(rs->reasons[i].text, key)) {
            rs->reasons[i].count++;
            return;
        }
    if (rs->n_reasons == MAX_REASONS) {
        rs->reasons[MAX_REASONS - 1].count++;
        return;
    }
    char *t = rs->n_reasons == MAX_REASONS - 1 ? arena_strndup(rs, "other reasons", 13)
                                               : arena_strndup(rs, key, strlen(key));
    if (!t)
        return;
    rs->reasons[rs->n_reasons].text = t;
    rs->reasons[rs->n_reasons++].count = 1;
}

bool ruleset_skip_reason(const struct ruleset *rs, size_t i, const char **reason, size_t *count)
{
    if (!rs || i >= rs->n_reasons)
        return false;
    *reason = rs->reasons[i].text;
    *count = rs->reasons[i].count;
    return true;
}

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
    if (ld->rs->policy == RULE_POLICY_SKIP) {
        ld->rs->skipped++;
        tally_reason(ld->rs, msg);
    } else {
        ld->failed = 1;
    }
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

/* Logsources, as the field map knows them (a rule's logsource picks its column). */
enum {
    LS_NETCONN = 1 << 0,  /* category network_connection */
    LS_FIREWALL = 1 << 1, /* category firewall */
    LS_DNS = 1 << 2,      /* category dns_query, dns; service dns-client */
    LS_PROXY = 1 << 3,    /* category proxy, webserver */
    LS_ZDNS = 1 << 4,     /* product zeek, service dns */
    LS_ZHTTP = 1 << 5,
    LS_ZCONN = 1 << 6,
    LS_ZSSL = 1 << 7,
    LS_OTHER = 1 << 8, /* anything else, or no logsource */
    LS_ALL = (1 << 9) - 1,
    LS_ZEEK = LS_ZDNS | LS_ZHTTP | LS_ZCONN | LS_ZSSL,
};

static const char *const ls_names[] = {
    "network_connection", "firewall", "dns_query/dns/dns-client",
    "proxy/webserver",    "zeek/dns", "zeek/http",
    "zeek/conn",          "zeek/ssl", "other",
};

/* The field map: Sigma (and ECS / ASIM / Zeek) names per logsource. */
static const struct fmap {
    const char *name;
    unsigned bit;
    unsigned ls;
} fmap[] = {
    {"DestinationHostname", RF_DEST_HOST, LS_ALL},
    {"DestinationHost", RF_DEST_HOST, LS_ALL},
    {"dst_host", RF_DEST_HOST, LS_ALL},
    {"dst_hostname", RF_DEST_HOST, LS_ALL},
    {"destination.domain", RF_DEST_HOST, LS_ALL},
    {"destination.hostname", RF_DEST_HOST, LS_ALL},
    {"DstHostname", RF_DEST_HOST, LS_ALL},
    {"DstFQDN", RF_DEST_HOST, LS_ALL},
    {"DstDomain", RF_DEST_HOST, LS_ALL},
    {"ServerName", RF_DEST_HOST, LS_ALL},
    {"tls.server_name", RF_DEST_HOST, LS_ALL},
    {"url.domain", RF_DEST_HOST, LS_ALL},
    {"QueryName", RF_QUERY, LS_ALL},
    {"query", RF_QUERY, LS_ALL},
    {"dns.question.name", RF_QUERY, LS_ALL},
    {"DnsQuery", RF_QUERY, LS_ALL},
    {"r-dns", RF_DEST_HOST, LS_PROXY},
    {"server_name", RF_DEST_HOST, LS_ZSSL},
    {"DestinationIp", RF_DST_IP, LS_NETCONN},
    {"DestinationPort", RF_DST_PORT, LS_NETCONN},
    {"SourceIp", RF_SRC_IP, LS_NETCONN},
    {"SourcePort", RF_SRC_PORT, LS_NETCONN},
    {"Protocol", RF_PROTO, LS_NETCONN},
    {"Initiated", RF_INITIATED, LS_NETCONN},
    {"DestinationIsIpv6", RF_DST_V6, LS_NETCONN},
    {"SourceIsIpv6", RF_SRC_V6, LS_NETCONN},
    {"dst_ip", RF_DST_IP, LS_FIREWALL | LS_PROXY},
    {"src_ip", RF_SRC_IP, LS_FIREWALL | LS_PROXY},
    {"dst_port", RF_DST_PORT, LS_FIREWALL},
    {"src_port", RF_SRC_PORT, LS_FIREWALL},
    {"record_type", RF_QTYPE, LS_DNS},
    {"EventID", RF_EVENT_ID, LS_DNS},
    {"c-useragent", RF_UA, LS_PROXY},
    {"cs-user-agent", RF_UA, LS_PROXY},
    {"cs-method", RF_METHOD, LS_PROXY},
    {"c-uri", RF_URL, LS_PROXY},
    {"cs-uri", RF_URI, LS_PROXY},
    {"c-uri-stem", RF_URI_STEM, LS_PROXY},
    {"cs-uri-stem", RF_URI_STEM, LS_PROXY},
    {"c-uri-query", RF_URI_QUERY, LS_PROXY},
    {"cs-uri-query", RF_URI_QUERY, LS_PROXY},
    {"c-uri-extension", RF_URI_EXT, LS_PROXY},
    {"cs-host", RF_HTTP_HOST, LS_PROXY},
    {"cs-cookie", RF_COOKIE, LS_PROXY},
    {"cs-referrer", RF_REFERER, LS_PROXY},
    {"sc-status", RF_STATUS, LS_PROXY},
    {"id.orig_h", RF_SRC_IP, LS_ZEEK},
    {"id.orig_p", RF_SRC_PORT, LS_ZEEK},
    {"id.resp_h", RF_DST_IP, LS_ZEEK},
    {"id.resp_p", RF_DST_PORT, LS_ZEEK},
    {"proto", RF_PROTO, LS_ZCONN},
    {"qtype_name", RF_QTYPE, LS_ZDNS},
    {"host", RF_HTTP_HOST, LS_ZHTTP},
    {"uri", RF_URI, LS_ZHTTP},
    {"user_agent", RF_UA, LS_ZHTTP},
    {"method", RF_METHOD, LS_ZHTTP},
    {"referrer", RF_REFERER, LS_ZHTTP},
    {"status_code", RF_STATUS, LS_ZHTTP},
};

/* What each bit is on the wire (index: bit number), and how its values compare. */
static const struct fdoc {
    const char *doc;
    uint8_t kind;
} fdocs[RF__BITS] = {
    {"TLS SNI, QUIC SNI, HTTP Host, CONNECT/SOCKS target, flagged DNS answer, DNS query", FK_STR},
    {"DNS query name", FK_STR},
    {"flow client address (cidr or text)", FK_ADDR},
    {"flow server address (cidr or text)", FK_ADDR},
    {"flow client port", FK_NUM},
    {"flow server port", FK_NUM},
    {"IP protocol: tcp, udp", FK_STR},
    {"'true' on every observation (the client opened the flow)", FK_BOOL},
    {"client address is IPv6", FK_BOOL},
    {"server address is IPv6", FK_BOOL},
    {"DNS query type: A, AAAA, TXT, ...", FK_STR},
    {"3008 on every DNS query", FK_NUM},
    {"HTTP/1.x request method", FK_STR},
    {"request URL (http://Host + target for origin-form)", FK_STR},
    {"request-target as sent", FK_STR},
    {"request path (target before '?')", FK_STR},
    {"request query (after '?')", FK_STR},
    {"extension of the path's last segment", FK_STR},
    {"User-Agent header", FK_STR},
    {"HTTP Host header, TLS/QUIC SNI", FK_STR},
    {"Cookie header", FK_STR},
    {"Referer header", FK_STR},
    {"HTTP/1.x response status (evaluated when the response head arrives)", FK_NUM},
};

/* Process fields: no packet shows them (see rules.unobservable_filters). */
static bool process_field(const char *f, size_t n)
{
    static const char *const proc[] = {
        "Image",         "ParentImage",       "CommandLine",      "User",
        "ParentUser",    "ParentCommandLine", "OriginalFileName", "CurrentDirectory",
        "IntegrityLevel"};
    for (size_t i = 0; i < TW_ARRAY_LEN(proc); i++)
        if (strlen(proc[i]) == n && strncasecmp(proc[i], f, n) == 0)
            return true;
    return false;
}

static unsigned bit_index(unsigned bit)
{
    unsigned i = 0;
    while (i < RF__BITS && !(bit & (1u << i)))
        i++;
    return i;
}

/* The rule_field bit of a field name under logsource ls; 0: not in the map. */
static unsigned field_bits(unsigned ls, const char *f, size_t n)
{
    for (size_t i = 0; i < TW_ARRAY_LEN(fmap); i++)
        if ((fmap[i].ls & ls) && strlen(fmap[i].name) == n && strncasecmp(fmap[i].name, f, n) == 0)
            return fmap[i].bit;
    return 0;
}

bool ruleset_field_map(size_t i, const char **name, char *ls, size_t lsn, unsigned *bit)
{
    if (i >= TW_ARRAY_LEN(fmap) || lsn == 0)
        return false;
    *name = fmap[i].name;
    *bit = fmap[i].bit;
    snprintf(ls, lsn, "any");
    if (fmap[i].ls == LS_ALL)
        return true;
    size_t n = 0;
    ls[0] = '\0';
    for (unsigned k = 0; k < TW_ARRAY_LEN(ls_names); k++)
        if ((fmap[i].ls & (1u << k)) && n < lsn) {
            int w = snprintf(ls + n, lsn - n, "%s%s", n ? "," : "", ls_names[k]);
            n += w > 0 ? (size_t)w : 0;
        }
    return true;
}

const char *ruleset_field_doc(unsigned bit)
{
    unsigned i = bit_index(bit);
    return i < RF__BITS ? fdocs[i].doc : "?";
}

static bool yaml_str_is(yaml_node_t *n, const char *s)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
           strncasecmp((const char *)n->data.scalar.value, s, n->data.scalar.length) == 0;
}

/* The LS_* class of a logsource map (category / product / service). */
static unsigned logsource_class(yaml_document_t *doc, yaml_node_t *m)
{
    yaml_node_t *cat = NULL, *prod = NULL, *svc = NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (yaml_str_is(k, "category"))
            cat = v;
        else if (yaml_str_is(k, "product"))
            prod = v;
        else if (yaml_str_is(k, "service"))
            svc = v;
    }
    if (yaml_str_is(prod, "zeek")) {
        static const char *const z[] = {"dns", "http", "conn", "ssl"};
        for (unsigned i = 0; i < 4; i++)
            if (yaml_str_is(svc, z[i]))
                return (unsigned)LS_ZDNS << i;
        return LS_OTHER;
    }
    if (yaml_str_is(cat, "network_connection"))
        return LS_NETCONN;
    if (yaml_str_is(cat, "firewall"))
        return LS_FIREWALL;
    if (yaml_str_is(cat, "dns_query") || yaml_str_is(cat, "dns") || yaml_str_is(svc, "dns-client"))
        return LS_DNS;
    if (yaml_str_is(cat, "proxy") || yaml_str_is(cat, "webserver"))
        return LS_PROXY;
    return LS_OTHER;
}

/* Compiles one value into a folded glob over the whole name (see the file comment). */
static int add_value(struct loader *ld, const char *raw, size_t rlen, enum val_mod mod,
                     uint32_t item, bool cased)
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
        pat[n] = w || cased ? c : fold(c);
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
    v->cased = cased;
    v->re = NULL;
    v->prefix = 0;
    v->num = 0;
    memset(&v->net, 0, sizeof(v->net));
    v->alen = (uint32_t)best_len; /* where it starts is recomputed by anchor_of() */
    rs->n_vals++;
    return TW_OK;
}

/* "a.b.c.d/n", "v6/n" or a bare address; false when it is neither. */
static bool parse_cidr(const char *raw, size_t rlen, struct tw_addr *net, uint8_t *prefix)
{
    char buf[TW_ADDR_STRLEN + 8];
    if (rlen >= sizeof(buf))
        return false;
    memcpy(buf, raw, rlen);
    buf[rlen] = '\0';
    char *slash = strchr(buf, '/');
    long pl = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        pl = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || pl < 0)
            return false;
    }
    if (tw_addr_parse(buf, net) != TW_OK)
        return false;
    long max = net->family == 4 ? 32 : 128;
    if (pl > max)
        return false;
    *prefix = (uint8_t)(pl < 0 ? max : pl);
    return true;
}

/* A value of a number, boolean or cidr item: stored without a glob (never an AC anchor). */
static int add_scalar_value(struct loader *ld, const struct ritem *it, const char *raw, size_t rlen,
                            enum val_mod mod, uint32_t item)
{
    struct ruleset *rs = ld->rs;
    int rc = GROW(rs, vals);
    if (rc)
        return rc;
    struct rval v;
    memset(&v, 0, sizeof(v));
    v.item = item;
    v.mod = (uint8_t)mod;
    if (!(v.raw = arena_strndup(rs, raw, rlen)))
        return TW_ENOMEM;
    bool ok = true;
    if (mod == MOD_CIDR) {
        ok = parse_cidr(raw, rlen, &v.net, &v.prefix);
    } else if (it->kind == FK_BOOL) {
        ok = !strcasecmp(v.raw, "true") || !strcasecmp(v.raw, "false");
        v.num = !strcasecmp(v.raw, "true");
        if (ok && it->fields == RF_INITIATED && !v.num) {
            rule_problem(ld, "field 'Initiated' with value 'false' (an inbound connection) is "
                             "not observable on the wire");
            return TW_ECONF;
        }
    } else {
        char *end;
        errno = 0;
        v.num = strtoll(v.raw, &end, 10);
        ok = rlen > 0 && !*end && errno == 0;
        if (ok && it->fields == RF_EVENT_ID && v.num != 3008) {
            rule_problem(ld, "EventID %s is not a DNS query (3008)", v.raw);
            return TW_ECONF;
        }
    }
    if (!ok) {
        rule_problem(ld, "value '%.*s' is not a %s", (int)(rlen > 80 ? 80 : rlen), raw,
                     mod == MOD_CIDR       ? "cidr"
                     : it->kind == FK_BOOL ? "boolean"
                                           : "number");
        return TW_ECONF;
    }
    rs->vals[rs->n_vals++] = v;
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
                           enum val_mod *mod, bool *all, bool *cased)
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
        if (ml == 5 && memcmp(m, "cased", 5) == 0) {
            *cased = true;
            continue;
        }
        if (ml == 1 && m[0] == 'i' && *mod == MOD_RE) {
            *mod = MOD_RE_I; /* |re|i: ignore case */
            continue;
        }
        static const char *const names[] = {"",    "contains", "startswith", "endswith", "lt",
                                            "lte", "gt",       "gte",        "cidr",     "re"};
        enum val_mod nm = MOD_EQ;
        for (size_t i = 1; i < TW_ARRAY_LEN(names); i++)
            if (strlen(names[i]) == ml && memcmp(m, names[i], ml) == 0)
                nm = (enum val_mod)i;
        if (nm == MOD_EQ) {
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

/* A |re value: compiled (linear-time, re.h), checked on every observation carrying its field
 * (no automaton anchor). */
static int add_re_value(struct loader *ld, const char *raw, size_t rlen, bool icase, uint32_t item)
{
    struct ruleset *rs = ld->rs;
    int rc = GROW(rs, vals);
    if (rc)
        return rc;
    struct rval v;
    memset(&v, 0, sizeof(v));
    v.item = item;
    v.mod = icase ? MOD_RE_I : MOD_RE;
    char why[128];
    if (!(v.raw = arena_strndup(rs, raw, rlen)))
        return TW_ENOMEM;
    rc = re_compile(raw, rlen, icase, &v.re, why, sizeof(why));
    if (rc == TW_ENOMEM)
        return rc;
    if (rc) {
        rule_problem(ld, "regular expression '%.*s': %s", (int)(rlen > 80 ? 80 : rlen), raw, why);
        return TW_ECONF;
    }
    rs->vals[rs->n_vals++] = v;
    return TW_OK;
}

/* One value of the item: a glob for strings (and address text), a scalar otherwise. */
static int item_value(struct loader *ld, const struct ritem *it, const char *v, size_t vl,
                      enum val_mod mod, bool cased, uint32_t item)
{
    if (mod == MOD_RE || mod == MOD_RE_I)
        return add_re_value(ld, v, vl, mod == MOD_RE_I, item);
    if (it->kind == FK_STR || (it->kind == FK_ADDR && mod != MOD_CIDR))
        return add_value(ld, v, vl, mod, item, cased);
    return add_scalar_value(ld, it, v, vl, mod, item);
}

/* The value or value list of the item keyed k[0..klen), each added as a value of item. */
static int parse_item_values(struct loader *ld, yaml_document_t *doc, yaml_node_t *val,
                             const char *k, size_t klen, enum val_mod mod, bool cased,
                             struct ritem *it)
{
    int rc;
    uint32_t item = (uint32_t)ld->rs->n_items;
    if (val->type == YAML_SCALAR_NODE) {
        if (scalar_is_null(val)) {
            it->isnull = 1; /* Sigma: the field is absent (or empty) */
            return TW_OK;
        }
        size_t vl;
        const char *v = scalar(val, &vl);
        return item_value(ld, it, v, vl, mod, cased, item);
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
        if ((rc = item_value(ld, it, v, vl, mod, cased, item)))
            return rc;
    }
    return TW_OK;
}

/* Whether modifier mod applies to a field of this kind. */
static bool mod_fits(enum fkind kind, enum val_mod mod, bool cased)
{
    switch (kind) {
    case FK_STR:
        return mod <= MOD_ENDS || ((mod == MOD_RE || mod == MOD_RE_I) && !cased);
    case FK_ADDR:
        return (mod <= MOD_ENDS || mod == MOD_CIDR || mod == MOD_RE || mod == MOD_RE_I) &&
               !(cased && mod >= MOD_CIDR);
    case FK_NUM:
        return (mod == MOD_EQ || (mod >= MOD_LT && mod <= MOD_GTE)) && !cased;
    default:
        return mod == MOD_EQ && !cased;
    }
}

/* Whether the value (list) holds only literal IPv4/IPv6 addresses. */
static bool all_addresses(yaml_document_t *doc, yaml_node_t *val)
{
    yaml_node_item_t *i = NULL, *end = NULL;
    if (val->type == YAML_SEQUENCE_NODE) {
        i = val->data.sequence.items.start;
        end = val->data.sequence.items.top;
    }
    for (yaml_node_t *e = i ? (i < end ? yaml_document_get_node(doc, *i) : NULL) : val; e;
         e = (i && ++i < end) ? yaml_document_get_node(doc, *i) : NULL) {
        size_t n;
        const char *v = scalar(e, &n);
        struct tw_addr a;
        uint8_t pl;
        if (!v || scalar_is_null(e) || memchr(v, '/', n) || !parse_cidr(v, n, &a, &pl))
            return false;
    }
    return true;
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
    unsigned fields = field_bits(ld->ls, k, flen);
    if (!fields && process_field(k, flen)) {
        /* decided once the condition says whether this selection is a filter */
        if (!ld->sel_proc && !(ld->sel_proc = arena_strndup(rs, k, flen)))
            return TW_ENOMEM;
        return TW_OK;
    }
    if (!fields) {
        rule_problem(ld, "field '%.*s' is not observable on the wire", (int)flen, k);
        return TW_ECONF;
    }
    enum val_mod mod = MOD_EQ;
    bool all = false, cased = false;
    int rc = parse_modifiers(ld, k, flen, klen, &mod, &all, &cased);
    if (rc || (rc = GROW(rs, items)))
        return rc;
    struct ritem it = {(uint32_t)rs->n_vals,          0, rule, fields, all,
                       fdocs[bit_index(fields)].kind, 0, 0};
    if (it.kind == FK_ADDR && mod == MOD_EQ && !cased && all_addresses(doc, val))
        mod = MOD_CIDR; /* plain addresses compare as addresses: no text form needed */
    it.scalar = it.kind == FK_NUM || it.kind == FK_BOOL || mod == MOD_CIDR;
    if (!mod_fits((enum fkind)it.kind, mod, cased)) {
        rule_problem(ld, "a modifier of '%.*s' does not apply to its values", (int)klen, k);
        return TW_ECONF;
    }
    if ((rc = parse_item_values(ld, doc, val, k, klen, mod, cased, &it)))
        return rc;
    it.n_vals = (uint32_t)rs->n_vals - it.first_val;
    if (it.n_vals == 0 && !it.isnull) {
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
    if (g.n_items == 0 && !ld->sel_proc) {
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
    struct rsel s = {dup_scalar(rs, name), (uint32_t)rs->n_groups, 0, NULL, 0, 0, 0};
    if (!s.name)
        return TW_ENOMEM;
    ld->sel_proc = NULL;
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
    s.proc = ld->sel_proc;
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
    int neg; /* inside an odd number of 'not' */
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
    if (!(op & 0x80000000u)) {
        struct rsel *s = &rs->sels[c->first_sel + op];
        if (c->neg)
            s->ref_neg = 1;
        else
            s->ref_pos = 1;
    }
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
        c->neg = !c->neg;
        if ((rc = cnot(c)) || (rc = emit(c, OP_NOT)))
            return rc;
        c->neg = !c->neg;
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
    struct cparse c = {ld, s, s + n, NULL, 0, first_sel, n_sels, 0, 0, 0, 0, 0};
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

#define URL_MAX 8200 /* "http://" + Host + target: both lie within one 8 KiB request head */
#define FLOW_RF                                                                                    \
    (RF_SRC_IP | RF_DST_IP | RF_SRC_PORT | RF_DST_PORT | RF_PROTO | RF_INITIATED | RF_SRC_V6 |     \
     RF_DST_V6)
#define NAME_KINDS ((1u << ROK_FLOW) - 1u)

struct mstate {
    const struct ruleset *rs;
    const struct rule_obs *ob;
    unsigned fields; /* enum rule_field bits the observation carries */
    unsigned kmask;  /* 1 << kind (all name kinds for ruleset_match) */
    unsigned suses;  /* bits the rules of these kinds compare as text: the only ones scanned */
    const uint8_t *name;
    size_t len;
    const uint8_t *text; /* being scanned by the automaton, and the bits it fills */
    size_t tlen;
    unsigned scan;
    struct rule_span stem, query, ext, url;
    const char *proto, *qtype;
    char src_txt[TW_ADDR_STRLEN], dst_txt[TW_ADDR_STRLEN], qbuf[12];
    uint32_t vals[MATCH_MAX_VALS]; /* verified values, deduplicated */
    size_t n_vals;
    struct touched {
        uint32_t rule;
        const char *pat; /* first value or domain that touched it */
    } touched[MATCH_MAX_RULES];
    size_t n_touched;
    int overflow;
    int direct; /* evaluate values directly (the fallback), not from vals[] */
    uint8_t urlbuf[URL_MAX];
};

static const char *qtype_name(uint16_t t)
{
    static const struct {
        uint16_t t;
        const char *n;
    } q[] = {{1, "A"},     {2, "NS"},    {5, "CNAME"}, {6, "SOA"},    {12, "PTR"},  {15, "MX"},
             {16, "TXT"},  {28, "AAAA"}, {33, "SRV"},  {35, "NAPTR"}, {64, "SVCB"}, {65, "HTTPS"},
             {10, "NULL"}, {255, "ANY"}, {99, "SPF"},  {257, "CAA"}};
    for (size_t i = 0; i < TW_ARRAY_LEN(q); i++)
        if (q[i].t == t)
            return q[i].n;
    return NULL;
}

const char *rule_qtype_name(uint16_t qtype)
{
    return qtype_name(qtype);
}

static uint16_t qtype_code(const char *name)
{
    for (unsigned t = 1; t < 300; t++) {
        const char *n = qtype_name((uint16_t)t);
        if (n && !strcasecmp(n, name))
            return (uint16_t)t;
    }
    return 0;
}

/* Path, query and extension of the request-target; the URL a proxy would log. */
static void obs_http(struct mstate *m, const struct rule_obs *ob)
{
    const uint8_t *t = ob->target.p;
    size_t n = ob->target.n;
    const uint8_t *q = memchr(t, '?', n);
    size_t pl = q ? (size_t)(q - t) : n;
    m->stem = (struct rule_span){t, pl};
    m->query = (struct rule_span){q ? q + 1 : NULL, q ? n - pl - 1 : 0};
    for (size_t i = pl; i-- > 0 && t[i] != '/';)
        if (t[i] == '.') {
            m->ext = (struct rule_span){t + i + 1, pl - i - 1};
            break;
        }
    bool absolute = n >= 7 && (!strncasecmp((const char *)t, "http://", 7) ||
                               (n >= 8 && !strncasecmp((const char *)t, "https://", 8)));
    const struct rule_span *h = &ob->host;
    if (absolute || !h->p || 7 + h->n + n > sizeof(m->urlbuf)) {
        m->url = ob->target; /* already a URL, or no Host to make one */
        return;
    }
    memcpy(m->urlbuf, "http://", 7);
    memcpy(m->urlbuf + 7, h->p, h->n);
    memcpy(m->urlbuf + 7 + h->n, t, n);
    m->url = (struct rule_span){m->urlbuf, 7 + h->n + n};
}

/* A request, or a request again with its response. */
static bool http_kind(unsigned k)
{
    return k == ROK_HTTP_REQUEST || k == ROK_HTTP_RESPONSE;
}

/* Which fields the observation carries, and the text forms of the non-text ones. */
static void obs_prepare(struct mstate *m, const struct rule_obs *ob)
{
    m->ob = ob;
    m->fields = m->len ? ob->name_fields & (RF_DEST_HOST | RF_QUERY) : 0u;
    m->stem = m->query = m->ext = m->url = (struct rule_span){NULL, 0};
    m->proto = m->qtype = NULL;
    m->src_txt[0] = m->dst_txt[0] = '\0';
    if (ob->has_flow) {
        m->fields |= FLOW_RF & ~RF_PROTO;
        /* text forms only for the rules that compare them as text (inet_ntop is not free) */
        if (m->suses & RF_SRC_IP)
            tw_addr_str(&ob->src, m->src_txt, sizeof(m->src_txt));
        if (m->suses & RF_DST_IP)
            tw_addr_str(&ob->dst, m->dst_txt, sizeof(m->dst_txt));
        m->proto = ob->proto == 6 ? "tcp" : ob->proto == 17 ? "udp" : NULL;
        m->fields |= m->proto ? RF_PROTO : 0u;
    }
    if (ob->qtype) {
        m->qtype = qtype_name(ob->qtype);
        if (!m->qtype) {
            snprintf(m->qbuf, sizeof(m->qbuf), "TYPE%u", ob->qtype);
            m->qtype = m->qbuf;
        }
        m->fields |= RF_QTYPE;
    }
    if (ob->kind == ROK_DNS_QUERY)
        m->fields |= RF_EVENT_ID;
    if (ob->target.p && (m->suses & (RF_URL | RF_URI | RF_URI_STEM | RF_URI_QUERY | RF_URI_EXT))) {
        obs_http(m, ob);
        m->fields |= RF_URL | RF_URI | RF_URI_STEM;
        m->fields |= (m->query.p ? RF_URI_QUERY : 0u) | (m->ext.p ? RF_URI_EXT : 0u);
    }
    m->fields |= (ob->method.p ? RF_METHOD : 0u) | (ob->user_agent.p ? RF_UA : 0u) |
                 (ob->cookie.p ? RF_COOKIE : 0u) | (ob->referer.p ? RF_REFERER : 0u) |
                 (ob->status > 0 ? RF_STATUS : 0u);
    if ((http_kind(ob->kind) && ob->host.p) ||
        ((ob->kind == ROK_TLS_SNI || ob->kind == ROK_QUIC_SNI) && m->len))
        m->fields |= RF_HTTP_HOST;
}

static struct rule_span span_of(const char *s)
{
    return (struct rule_span){(const uint8_t *)s, strlen(s)};
}

/* The text of a string (or address) field; false when the observation lacks it. */
static bool obs_str(const struct mstate *m, unsigned bit, struct rule_span *out)
{
    if (!(m->fields & bit))
        return false;
    const struct rule_obs *ob = m->ob;
    switch (bit) {
    case RF_DEST_HOST:
    case RF_QUERY:
        *out = (struct rule_span){m->name, m->len};
        return true;
    case RF_SRC_IP:
        *out = span_of(m->src_txt);
        return true;
    case RF_DST_IP:
        *out = span_of(m->dst_txt);
        return true;
    case RF_PROTO:
        *out = span_of(m->proto);
        return true;
    case RF_QTYPE:
        *out = span_of(m->qtype);
        return true;
    case RF_HTTP_HOST:
        *out = http_kind(ob->kind) ? ob->host : (struct rule_span){m->name, m->len};
        return true;
    default:
        break;
    }
    const struct rule_span *sp = bit == RF_METHOD      ? &ob->method
                                 : bit == RF_URL       ? &m->url
                                 : bit == RF_URI       ? &ob->target
                                 : bit == RF_URI_STEM  ? &m->stem
                                 : bit == RF_URI_QUERY ? &m->query
                                 : bit == RF_URI_EXT   ? &m->ext
                                 : bit == RF_UA        ? &ob->user_agent
                                 : bit == RF_COOKIE    ? &ob->cookie
                                 : bit == RF_REFERER   ? &ob->referer
                                                       : NULL;
    if (!sp || !sp->p)
        return false;
    *out = *sp;
    return true;
}

static int64_t obs_num(const struct mstate *m, unsigned bit)
{
    const struct rule_obs *ob = m->ob;
    switch (bit) {
    case RF_SRC_PORT:
        return ob->sport;
    case RF_DST_PORT:
        return ob->dport;
    case RF_EVENT_ID:
        return 3008;
    case RF_STATUS:
        return ob->status;
    case RF_INITIATED:
        return ob->initiated;
    case RF_SRC_V6:
        return ob->src.family == 6;
    case RF_DST_V6:
        return ob->dst.family == 6;
    default:
        return -1;
    }
}

static inline bool addr_in(const struct tw_addr *a, const struct tw_addr *net, unsigned prefix)
{
    if (a->family != net->family)
        return false;
    if (prefix == 32 && a->family == 4) { /* a listed IPv4 address: one compare */
        uint32_t x, y;
        memcpy(&x, a->a, 4);
        memcpy(&y, net->a, 4);
        return x == y;
    }
    unsigned full = prefix / 8, rest = prefix % 8;
    for (unsigned i = 0; i < full; i++) /* a few bytes: a libc call costs more */
        if (a->a[i] != net->a[i])
            return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a->a[full] & mask) == (net->a[full] & mask);
}

static bool val_scalar(const struct mstate *m, const struct ritem *it, const struct rval *v)
{
    if (v->mod == MOD_CIDR)
        return addr_in(it->fields == RF_SRC_IP ? &m->ob->src : &m->ob->dst, &v->net, v->prefix);
    int64_t x = obs_num(m, it->fields);
    switch (v->mod) {
    case MOD_LT:
        return x < v->num;
    case MOD_LTE:
        return x <= v->num;
    case MOD_GT:
        return x > v->num;
    case MOD_GTE:
        return x >= v->num;
    default:
        return x == v->num;
    }
}

/* Value i of item it holds (direct evaluation, no automaton). */
static bool val_holds(const struct mstate *m, const struct ritem *it, uint32_t i)
{
    const struct rval *v = &m->rs->vals[it->first_val + i];
    if (it->scalar)
        return val_scalar(m, it, v);
    struct rule_span t;
    return obs_str(m, it->fields, &t) && val_check(v, t.p, t.n, 0);
}

/* A number, boolean or cidr item: the observed value read once, then each rule value. */
static bool item_scalar(const struct mstate *m, const struct ritem *it)
{
    const struct rval *v = &m->rs->vals[it->first_val];
    const struct tw_addr *a = it->fields == RF_SRC_IP ? &m->ob->src : &m->ob->dst;
    int64_t x = v->mod == MOD_CIDR ? 0 : obs_num(m, it->fields);
    uint32_t hits = 0;
    for (uint32_t i = 0; i < it->n_vals; i++, v++) {
        bool ok;
        switch (v->mod) {
        case MOD_CIDR:
            ok = addr_in(a, &v->net, v->prefix);
            break;
        case MOD_LT:
            ok = x < v->num;
            break;
        case MOD_LTE:
            ok = x <= v->num;
            break;
        case MOD_GT:
            ok = x > v->num;
            break;
        case MOD_GTE:
            ok = x >= v->num;
            break;
        default:
            ok = x == v->num;
        }
        if (ok && !it->all)
            return true;
        if (!ok && it->all)
            return false;
        hits += ok;
    }
    return it->all && hits == it->n_vals;
}

static bool item_true(const struct mstate *m, const struct ritem *it)
{
    if (it->isnull) {
        struct rule_span t;
        return !(it->fields & m->fields) || (!it->scalar && obs_str(m, it->fields, &t) && !t.n);
    }
    if (!(it->fields & m->fields))
        return false; /* the observation does not carry this field */
    if (it->scalar)
        return item_scalar(m, it);
    size_t hits = 0;
    if (m->direct) {
        for (uint32_t i = 0; i < it->n_vals; i++) {
            if (val_holds(m, it, i)) {
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
    if (s->dropped)
        return false; /* a process filter, dropped: it never excludes */
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

/* Three-valued (0 false, 1 true, 2 unknown) value of a selection when no string value
 * matched: string items are false, the others unknown. */
static int sel_gate(const struct ruleset *rs, const struct rsel *s)
{
    if (s->dropped)
        return 0;
    int any = 0;
    for (uint32_t g = 0; g < s->n_groups; g++) {
        const struct rgroup *gr = &rs->groups[s->first_group + g];
        int v = 1;
        for (uint32_t i = 0; i < gr->n_items && v; i++) {
            const struct ritem *it = &rs->items[gr->first_item + i];
            v = (it->scalar || it->isnull) ? 2 : 0;
        }
        if (v == 1)
            return 1;
        if (v == 2)
            any = 2;
    }
    return any;
}

/* The rule's condition in Kleene logic (0 false, 1 true, 2 unknown), each selection's value
 * given by leaf(ctx, index); -1 for a program that does not leave one value. */
static int kleene(const struct ruleset *rs, const struct rrule *r,
                  int (*leaf)(const struct ruleset *, const struct rrule *, uint32_t, const void *),
                  const void *ctx)
{
    int st[COND_MAX_STACK];
    int sp = 0;
    for (uint32_t i = 0; i < r->n_ops; i++) {
        uint32_t op = rs->ops[r->first_op + i];
        if (op == OP_NOT) {
            st[sp - 1] = st[sp - 1] == 2 ? 2 : !st[sp - 1];
        } else if (op == OP_AND || op == OP_OR) {
            sp--;
            int a = st[sp - 1], b = st[sp];
            if (op == OP_AND)
                st[sp - 1] = (a == 0 || b == 0) ? 0 : (a == 1 && b == 1) ? 1 : 2;
            else
                st[sp - 1] = (a == 1 || b == 1) ? 1 : (a == 0 && b == 0) ? 0 : 2;
        } else {
            st[sp++] = leaf(rs, r, op, ctx);
        }
    }
    return sp == 1 ? st[0] : -1;
}

static int leaf_forced(const struct ruleset *rs, const struct rrule *r, uint32_t op,
                       const void *ctx)
{
    return op == *(const uint32_t *)ctx || rs->sels[r->first_sel + op].dropped ? 0 : 2;
}

/* Selection `forced` false, every other one unknown: can the condition still hold? */
static bool holds_without(const struct ruleset *rs, const struct rrule *r, uint32_t forced)
{
    return kleene(rs, r, leaf_forced, &forced) != 0;
}

/* The first selection the condition needs (see struct rrule), or -1. */
static int32_t needed_selection(const struct ruleset *rs, const struct rrule *r)
{
    for (uint32_t i = 0; i < r->n_sels; i++)
        if (rs->sels[r->first_sel + i].ref_pos && !holds_without(rs, r, i))
            return (int32_t)i;
    return -1;
}

/* The rule holds on the observation: its needed selection first, then its program. */
static bool rule_holds(const struct mstate *m, const struct rrule *r)
{
    if (r->need >= 0 && !sel_true(m, &m->rs->sels[r->first_sel + (uint32_t)r->need]))
        return false;
    return rule_true(m, r);
}

static int leaf_gate(const struct ruleset *rs, const struct rrule *r, uint32_t op, const void *ctx)
{
    (void)ctx;
    return sel_gate(rs, &rs->sels[r->first_sel + op]);
}

/* Whether the rule may hold with no string value matched (Kleene logic: sound). */
static bool rule_gate_open(const struct ruleset *rs, const struct rrule *r)
{
    return kleene(rs, r, leaf_gate, NULL) > 0;
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
        } else if (scalar_is(k, "logsource")) {
            ld->ls = logsource_class(doc, v);
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

/* Selections that use process fields: a filter (only negated in the condition) is dropped
 * under rules.unobservable_filters = "drop" (the rule relaxed, one level lower), skipped
 * otherwise; a selection the condition requires is never observable. */
static int process_policy(struct loader *ld, struct rrule *rr)
{
    static const char *const levels[] = {"informational", "low", "medium", "high", "critical"};
    struct ruleset *rs = ld->rs;
    for (uint32_t i = 0; i < rr->n_sels; i++) {
        struct rsel *s = &rs->sels[rr->first_sel + i];
        if (!s->proc || (!s->ref_pos && !s->ref_neg))
            continue;
        if (s->ref_pos) {
            rule_problem(ld, "field '%s' is not observable on the wire", s->proc);
            return TW_ECONF;
        }
        if (!rs->drop_filters) {
            rule_problem(ld,
                         "filter '%s' uses process field '%s' (rules.unobservable_filters = "
                         "\"drop\" evaluates the rule without it)",
                         s->name, s->proc);
            return TW_ECONF;
        }
        s->dropped = 1;
        rr->pub.relaxed = true;
    }
    if (rr->pub.relaxed && rr->pub.level) {
        for (size_t l = 1; l < TW_ARRAY_LEN(levels); l++)
            if (!strcasecmp(rr->pub.level, levels[l]))
                rr->pub.level = (char *)(uintptr_t)levels[l - 1];
    }
    return TW_OK;
}

/* Which fields each observation kind may carry. */
static unsigned kind_fields(unsigned k)
{
    unsigned name = RF_DEST_HOST | FLOW_RF;
    switch (k) {
    case ROK_DNS_QUERY:
        return name | RF_QUERY | RF_QTYPE | RF_EVENT_ID;
    case ROK_TLS_SNI:
    case ROK_QUIC_SNI:
        return name | RF_HTTP_HOST;
    case ROK_HTTP_REQUEST:
        return name | RF_HTTP_HOST | RF_METHOD | RF_URL | RF_URI | RF_URI_STEM | RF_URI_QUERY |
               RF_URI_EXT | RF_UA | RF_COOKIE | RF_REFERER;
    case ROK_HTTP_RESPONSE:
        return kind_fields(ROK_HTTP_REQUEST) | RF_STATUS;
    case ROK_FLOW:
        return FLOW_RF;
    default:
        return name;
    }
}

/* The rule's fields (of the selections its condition uses, dropped ones aside) and the
 * observation kinds it runs on: every kind that carries one of its fields other than the
 * flow's (a field an observation lacks matches nothing, as Sigma says of a missing field, so
 * 'DestinationHostname: x or QueryName: y' still runs on a TLS name); a rule on flow facts
 * only runs once per flow. Some kind must carry them all (else it is refused). */
static int rule_kinds(struct loader *ld, struct rrule *rr)
{
    struct ruleset *rs = ld->rs;
    unsigned bits = 0;
    for (uint32_t i = 0; i < rr->n_sels; i++) {
        const struct rsel *s = &rs->sels[rr->first_sel + i];
        if (s->dropped || (!s->ref_pos && !s->ref_neg))
            continue;
        const struct rgroup *g0 = &rs->groups[s->first_group];
        const struct rgroup *gl = &rs->groups[s->first_group + s->n_groups - 1];
        for (uint32_t it = g0->first_item; it < gl->first_item + gl->n_items; it++)
            bits |= rs->items[it].fields;
    }
    unsigned all = 0, some = 0;
    for (unsigned k = 0; k < ROK__COUNT; k++) {
        if ((bits & ~kind_fields(k)) == 0)
            all |= 1u << k;
        if (k != ROK_FLOW && (bits & kind_fields(k) & ~(unsigned)FLOW_RF))
            some |= 1u << k;
    }
    if (all & (1u << ROK_FLOW))
        all = some = 1u << ROK_FLOW;
    /* a rule on the response status runs when the response comes, every other rule at the
     * request only (the response repeats the request's fields) */
    unsigned resp = 1u << ROK_HTTP_RESPONSE;
    if (bits & RF_STATUS)
        all &= resp, some &= resp;
    else
        all &= ~resp, some &= ~resp;
    if (!all) {
        rule_problem(ld, "its fields never appear in one observation");
        return TW_ECONF;
    }
    rr->pub.fields = bits;
    rr->kinds = (uint8_t)(all | some);
    rr->all_kinds = (uint8_t)all;
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
    if ((rc = rule_condition(ld, doc, cond, &rr)) || (rc = process_policy(ld, &rr)) ||
        (rc = rule_kinds(ld, &rr)))
        return rc;
    r->file = arena_strndup(rs, ld->file, strlen(ld->file));
    if (!r->file || set_techniques(rs, r))
        return TW_ENOMEM;
    (void)first_item;
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
    ld->ls = LS_OTHER;
    ld->sel_proc = NULL;
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
    for (size_t i = m_vals; i < rs->n_vals; i++)
        re_free(rs->vals[i].re);
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
        unsigned c = data[i] | 0x20u; /* '[' and '{' fold to '{', ']' and '}' to '}' */
        if (c < '{')
            continue;
        if (c == '{') {
            if (++depth > MAX_FLOW_DEPTH)
                return i;
        } else if (c == '}' && depth) {
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
    struct yml_doc fast;
    int f = yml_load(&fast, data, len); /* the plain subset of one document (yml.h) */
    if (f == YML_ENOMEM)
        return TW_ENOMEM;
    if (f == YML_OK) {
        size_t before = ld->rs->n_rules;
        int r = load_sigma_doc(ld, &fast.doc);
        yml_free(&fast);
        if (r == TW_ENOMEM || r == TW_ELIMIT)
            return r;
        return (int)(ld->rs->n_rules - before);
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

static bool domain_char(uint8_t c)
{
    return (unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u || c == '-' ||
           c == '_' || c == '.';
}

/* tab[c]: c folded when a domain name may hold it, else 0 (one lookup per byte of a list) */
static void domain_table(uint8_t tab[256])
{
    for (unsigned c = 0; c < 256; c++)
        tab[c] = domain_char((uint8_t)c) ? fold((uint8_t)c) : 0;
}

/* Adds d[0..n) folded (tab: domain_table), checked in the same pass (a million-domain list
 * is read once): TW_EBAD, nothing added, when it holds a character no domain name has or an
 * empty label. */
static int add_domain(struct ruleset *rs, const char *d, size_t n, uint32_t rule,
                      const uint8_t tab[256])
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
        uint8_t c = tab[(uint8_t)d[i]];
        if (!c || (c == '.' && (i == 0 || d[i - 1] == '.')))
            return TW_EBAD;
        dst[i] = (char)c;
        h = (h ^ c) * DH_PRIME;
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
        const char *le = nl ? nl : end, *te, *t = p;
        while (t < le && (*t == ' ' || *t == '\t' || *t == '\r'))
            t++; /* most lines are domains: only a header is trimmed at its end */
        p = nl ? nl + 1 : end;
        if (t == le || *t != '#')
            continue;
        t = trim(t, le, &te);
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
    return *dl > 0 && *dl <= 253; /* its characters: add_domain */
}

#define HUGE_PAGE ((uintptr_t)2 << 20)

/* Asks for transparent huge pages on the huge-page-aligned part of a large block (a
 * million-domain list's file, arrays and hash set, tens of MiB): a few page faults instead of
 * one per 4 KiB. The kernel may refuse; no effect on results. */
static void huge_hint(void *p, size_t n)
{
    uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(HUGE_PAGE - 1);
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* Room for a list of len bytes in lines lines at once: a million-domain feed would otherwise
 * grow the domain array and the name pool by doubling, copying and faulting in each twice. */
static int list_reserve(struct ruleset *rs, size_t len, size_t lines)
{
    if (rs->n_doms + lines > rs->cap_doms) {
        if (rs->n_doms + lines >= UINT32_MAX - 1)
            return TW_ELIMIT;
        struct dom *nd = realloc(rs->doms, (rs->n_doms + lines) * sizeof(*nd));
        if (!nd)
            return TW_ENOMEM;
        rs->doms = nd;
        rs->cap_doms = rs->n_doms + lines;
        huge_hint(nd, rs->cap_doms * sizeof(*nd));
    }
    size_t need = rs->dpool_len + len + lines; /* each name at most its line, and a NUL */
    if (need > rs->dpool_cap && need <= UINT32_MAX) {
        char *np = realloc(rs->dpool, need);
        if (!np)
            return TW_ENOMEM;
        rs->dpool = np;
        rs->dpool_cap = need;
        huge_hint(np, need);
    }
    return TW_OK;
}

/* Pass 2: one domain per line. TW_ECONF (reported, domains of this list rolled back) at the
 * first line that is no domain name. */
static int list_domains(struct loader *ld, const char *s, const char *end, uint32_t rule_idx)
{
    struct ruleset *rs = ld->rs;
    size_t m_doms = rs->n_doms, m_dpool = rs->dpool_len, line = 0, lines = 1;
    for (const char *p = s; p < end && (p = memchr(p, '\n', (size_t)(end - p))); p++)
        lines++;
    int rc = list_reserve(rs, (size_t)(end - s), lines);
    if (rc)
        return rc;
    uint8_t tab[256];
    domain_table(tab);
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
        rc = list_domain(t, te, &t, &dl) ? add_domain(rs, t, dl, rule_idx, tab) : TW_EBAD;
        if (rc == TW_EBAD) {
            ld->line = line;
            rule_problem(ld, "line is not a domain name: '%.*s'", (int)(dl > 80 ? 80 : dl), t);
            rs->n_doms = m_doms;
            rs->dpool_len = m_dpool;
            return TW_ECONF;
        }
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
    rr.kinds = rr.all_kinds = NAME_KINDS;
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
    struct loader ld = {rs, name, err, NULL, NULL, 0, 0, LS_OTHER, NULL};
    rs->files++;
    int rc = has_ext(name, ".txt") ? load_list_mem(&ld, data, len) : load_sigma_mem(&ld, data, len);
    return rc >= 0 && ld.failed ? TW_ECONF : rc;
}

/* One file's bytes, then ruleset_load_mem. Plain open/read: a rule folder is hundreds of small
 * files, and stdio's extra fstat and end-of-file read were two more system calls each (about
 * a microsecond apiece here; more under a hypervisor). */
static int load_file(struct ruleset *rs, const char *path, FILE *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err)
            fprintf(err, "%s: error: cannot open: %s\n", path, strerror(errno));
        return TW_ECONF;
    }
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, size = 0; /* size: a regular file's, read up to it */
    int rc = TW_OK;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size < MAX_FILE_SIZE) {
        /* a regular file is read in one go, up to its size, rather than through doubling
         * buffers: large indicator lists load faster */
        size = (size_t)st.st_size;
        cap = size;
        if (!(buf = malloc(cap)))
            rc = TW_ENOMEM;
        else
            huge_hint(buf, cap);
    }
    while (rc == TW_OK && (size == 0 || n < size)) { /* a file that grew is read to its size */
        if (n == cap) {
            if (cap >= MAX_FILE_SIZE) {
                if (err)
                    fprintf(err, "%s: error: larger than %u MiB\n", path, MAX_FILE_SIZE >> 20);
                rc = TW_ECONF;
                break;
            }
            cap = cap ? cap * 2 : 65536;
            cap = cap < MAX_FILE_SIZE ? cap : MAX_FILE_SIZE;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                rc = TW_ENOMEM;
                break;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (err)
                fprintf(err, "%s: error: read failed: %s\n", path, strerror(errno));
            rc = TW_ECONF;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
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
                /* the entry's type from the folder itself; a link or a file system that
                 * does not say is asked (stat follows links) */
                unsigned char t = list[i]->d_type;
                struct stat ss;
                if (t == DT_DIR || (t != DT_REG && stat(sub, &ss) == 0 && S_ISDIR(ss.st_mode)))
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

/* The item of group g that holds only for a server port equal to one of its values, or NULL. */
static const struct ritem *port_item(const struct ruleset *rs, const struct rgroup *g)
{
    for (uint32_t i = 0; i < g->n_items; i++) {
        const struct ritem *it = &rs->items[g->first_item + i];
        if (it->fields != RF_DST_PORT || !it->scalar || it->isnull || it->all || !it->n_vals)
            continue;
        bool eq = true;
        for (uint32_t v = 0; v < it->n_vals && eq; v++) {
            const struct rval *rv = &rs->vals[it->first_val + v];
            eq = rv->mod == MOD_EQ && rv->num >= 0 && rv->num <= 65535;
        }
        if (eq)
            return it;
    }
    return NULL;
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* The item of group g that holds only for a client or server address in one of its networks
 * (an address field compared as an address is always cidr), or NULL. */
static const struct ritem *addr_item(const struct ruleset *rs, const struct rgroup *g)
{
    for (uint32_t i = 0; i < g->n_items; i++) {
        const struct ritem *it = &rs->items[g->first_item + i];
        if ((it->fields == RF_SRC_IP || it->fields == RF_DST_IP) && it->scalar && !it->isnull &&
            !it->all && it->n_vals)
            return it;
    }
    return NULL;
}

static int set_port_gate(struct ruleset *rs, struct rrule *rr, const struct rsel *s, size_t n)
{
    uint16_t *p = arena_alloc(rs, n * sizeof(uint16_t));
    if (!p)
        return TW_ENOMEM;
    size_t k = 0;
    for (uint32_t g = 0; g < s->n_groups; g++) {
        const struct ritem *it = port_item(rs, &rs->groups[s->first_group + g]);
        for (uint32_t v = 0; v < it->n_vals; v++)
            p[k++] = (uint16_t)rs->vals[it->first_val + v].num;
    }
    qsort(p, n, sizeof(uint16_t), cmp_u16);
    rr->gate = p;
    rr->n_gate = (uint32_t)n;
    return TW_OK;
}

static int set_addr_gate(struct ruleset *rs, struct rrule *rr, const struct rsel *s, size_t n)
{
    struct agate *a = arena_alloc(rs, n * sizeof(*a));
    if (!a)
        return TW_ENOMEM;
    size_t k = 0;
    for (uint32_t g = 0; g < s->n_groups; g++) {
        const struct ritem *it = addr_item(rs, &rs->groups[s->first_group + g]);
        for (uint32_t v = 0; v < it->n_vals; v++, k++) {
            const struct rval *rv = &rs->vals[it->first_val + v];
            a[k].net = rv->net;
            a[k].prefix = rv->prefix;
            a[k].client = it->fields == RF_SRC_IP;
        }
    }
    rr->agate = a;
    rr->n_agate = (uint32_t)n;
    return TW_OK;
}

/* Sets rr->gate or rr->agate (see struct rrule) when its needed selection allows it: every
 * group of it has an item on the server port (or on an address) among fixed values. */
static int rule_gate(struct ruleset *rs, struct rrule *rr)
{
    if (rr->need < 0)
        return TW_OK;
    const struct rsel *s = &rs->sels[rr->first_sel + (uint32_t)rr->need];
    if (s->dropped || !s->n_groups)
        return TW_OK;
    size_t np = 0, na = 0;
    for (uint32_t g = 0; g < s->n_groups; g++) {
        const struct rgroup *gr = &rs->groups[s->first_group + g];
        const struct ritem *p = port_item(rs, gr), *a = addr_item(rs, gr);
        np = p && np != SIZE_MAX ? np + p->n_vals : SIZE_MAX;
        na = a && na != SIZE_MAX ? na + a->n_vals : SIZE_MAX;
    }
    if (np <= 65536)
        return set_port_gate(rs, rr, s, np);
    if (na <= AGATE_MAX)
        return set_addr_gate(rs, rr, s, na);
    return TW_OK;
}

static bool port_in(const struct rrule *rr, uint16_t x)
{
    size_t lo = 0, hi = rr->n_gate;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rr->gate[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < rr->n_gate && rr->gate[lo] == x;
}

/* The flow's client or server is in one of the n gate addresses. */
static bool agate_any(const struct agate *g, size_t n, const struct tw_addr *src,
                      const struct tw_addr *dst)
{
    for (size_t i = 0; i < n; i++)
        if (addr_in(g[i].client ? src : dst, &g[i].net, g[i].prefix))
            return true;
    return false;
}

/* False when the rule's gate shuts the observation out (exactly: its needed selection is
 * false there). */
static bool gate_open(const struct rrule *rr, const struct rule_obs *ob)
{
    if (rr->n_gate)
        return ob->has_flow && port_in(rr, ob->dport);
    return !rr->n_agate || (ob->has_flow && agate_any(rr->agate, rr->n_agate, &ob->src, &ob->dst));
}

/* A new flow some rule may hold on (only asked when rs->flow_gated): the union of the rules'
 * gates, a bit test and a few address compares, where each rule's gate is a search. */
static bool flow_gate_open(const struct ruleset *rs, const struct tw_addr *src,
                           const struct tw_addr *dst, uint16_t dport)
{
    if ((rs->flow_ports[dport >> 6] >> (dport & 63)) & 1)
        return true;
    const struct tw_addr *side[2] = {dst, src};
    for (unsigned k = 0; k < 2; k++) {
        if (side[k]->family != 4)
            continue;
        uint32_t x;
        memcpy(&x, side[k]->a, 4);
        for (size_t i = 0; i < rs->n_flow_v4[k]; i++)
            if (rs->flow_v4[k][i] == x)
                return true;
    }
    return agate_any(rs->flow_addrs, rs->n_flow_addrs, src, dst);
}

bool ruleset_flow_may(const struct ruleset *rs, const struct tw_addr *src,
                      const struct tw_addr *dst, uint16_t dport)
{
    return rs && rs->built && (rs->kinds & (1u << ROK_FLOW)) &&
           (!rs->flow_gated || flow_gate_open(rs, src, dst, dport));
}

/* Builds the union flow_gate_open reads; a set whose flow rules are not all gated, or with
 * more addresses than AGATE_MAX, keeps flow_gated false. */
static int flow_gate_build(struct ruleset *rs)
{
    size_t na = 0;
    for (size_t i = 0; i < rs->n_rules && rs->flow_gated; i++) {
        const struct rrule *rr = &rs->rules[i];
        if (rr->kinds & (1u << ROK_FLOW))
            na += rr->n_agate;
    }
    if (!rs->flow_gated || na > AGATE_MAX) {
        rs->flow_gated = false;
        return TW_OK;
    }
    uint64_t *ports = arena_alloc(rs, 1024 * sizeof(uint64_t));
    struct agate *addrs = arena_alloc(rs, (na ? na : 1) * sizeof(*addrs));
    uint32_t *v4[2] = {arena_alloc(rs, (na ? na : 1) * sizeof(uint32_t)),
                       arena_alloc(rs, (na ? na : 1) * sizeof(uint32_t))};
    if (!ports || !addrs || !v4[0] || !v4[1])
        return TW_ENOMEM;
    memset(ports, 0, 1024 * sizeof(uint64_t));
    size_t k = 0, n4[2] = {0, 0};
    for (size_t i = 0; i < rs->n_rules; i++) {
        const struct rrule *rr = &rs->rules[i];
        if (!(rr->kinds & (1u << ROK_FLOW)))
            continue;
        for (uint32_t j = 0; j < rr->n_gate; j++)
            ports[rr->gate[j] >> 6] |= (uint64_t)1 << (rr->gate[j] & 63);
        for (uint32_t j = 0; j < rr->n_agate; j++) {
            const struct agate *g = &rr->agate[j];
            if (g->net.family == 4 && g->prefix == 32)
                memcpy(&v4[g->client][n4[g->client]++], g->net.a, 4);
            else
                addrs[k++] = *g;
        }
    }
    rs->flow_ports = ports;
    rs->flow_addrs = addrs;
    rs->n_flow_addrs = k;
    for (unsigned s = 0; s < 2; s++) {
        rs->flow_v4[s] = v4[s];
        rs->n_flow_v4[s] = n4[s];
    }
    return TW_OK;
}

/* The kinds of r whose observations can satisfy its needed selection: one of its groups
 * holds only where the kind carries every field it compares ('field: null' aside), as a
 * missing field matches nothing. A filter's value on a field of another kind no longer
 * makes the rule evaluated there (a proxy rule's 'not cs-host|endswith .com' on TLS names). */
static uint8_t need_kinds(const struct ruleset *rs, const struct rrule *r)
{
    if (r->need < 0 || rs->sels[r->first_sel + (uint32_t)r->need].dropped)
        return r->kinds;
    const struct rsel *s = &rs->sels[r->first_sel + (uint32_t)r->need];
    uint8_t out = 0;
    for (unsigned k = 0; k < ROK__COUNT; k++) {
        for (uint32_t g = 0; g < s->n_groups && (r->kinds & ~out & (1u << k)); g++) {
            const struct rgroup *gr = &rs->groups[s->first_group + g];
            bool ok = true;
            for (uint32_t i = 0; i < gr->n_items && ok; i++) {
                const struct ritem *it = &rs->items[gr->first_item + i];
                ok = it->isnull || (it->fields & kind_fields(k));
            }
            if (ok)
                out |= (uint8_t)(1u << k);
        }
    }
    return out;
}

_Static_assert(ROK__COUNT <= 8, "rule kinds tag automaton values in 8 bits");

/* Where a value's anchor may match for val_check to take it: a plain value (the anchor is the
 * whole value) with |startswith only at the start of the text, |endswith only at its end, an
 * exact one only as the whole text. The automaton then does not report the other matches
 * (a '.pro' of the eTLD rule inside 'api.proseware.cloud'), which cost a visit of the
 * value, its item and its rule each. */
static unsigned anchor_at(const struct rval *v)
{
    if (v->re || !v->plain || v->cased)
        return 0; /* val_check's own fast path, the same condition */
    switch (v->mod) {
    case MOD_CONTAINS:
        return 0;
    case MOD_STARTS:
        return AC_AT_START;
    case MOD_ENDS:
        return AC_AT_END;
    default:
        return AC_AT_START | AC_AT_END;
    }
}

/* A value's anchor goes into the automata of its field, tagged with the kinds its rule runs
 * on: a scan reports it only to observations of those kinds (match_obs). */
static int add_anchor(struct ruleset *rs, const struct rval *v, uint32_t id)
{
    unsigned f = rs->items[v->item].fields;
    uint8_t tag = rs->rules[rs->items[v->item].rule].kinds;
    int rc = TW_OK;
    unsigned at = anchor_at(v);
    if (f & (RF_QUERY | RF_DEST_HOST))
        rc = ac_add_anchored(rs->ac[AC_QUERY], anchor_of(v), v->alen, id, tag, at);
    if (!rc && (f & (RF_DEST_HOST | RF_HTTP_HOST)))
        rc = ac_add_anchored(rs->ac[AC_HOST], anchor_of(v), v->alen, id, tag, at);
    if (!rc && !(f & (RF_QUERY | RF_DEST_HOST | RF_HTTP_HOST)))
        rc = ac_add_anchored(rs->ac[AC_OTHER], anchor_of(v), v->alen, id, tag, at);
    return rc;
}

static int build_automata(struct ruleset *rs)
{
    for (unsigned i = 0; i < AC__COUNT; i++)
        if (!(rs->ac[i] = ac_new()))
            return TW_ENOMEM;
    for (size_t i = 0; i < rs->n_vals; i++) {
        const struct rval *v = &rs->vals[i];
        if (rs->items[v->item].scalar)
            continue; /* compared directly when its rule is evaluated */
        if (v->alen == 0) {
            unsigned f = rs->items[v->item].fields;
            uint8_t kinds = rs->rules[rs->items[v->item].rule].kinds;
            rs->anchorless[rs->n_anchorless++] = (uint32_t)i;
            rs->anchorless_bits |= f;
            for (unsigned k = 0; k < ROK__COUNT; k++)
                rs->anchorless_kbits[k] |= (kinds >> k) & 1 ? f : 0u;
            continue;
        }
        int rc = add_anchor(rs, v, (uint32_t)i);
        if (rc)
            return rc;
    }
    return ac_build_background(rs->ac, AC__COUNT);
}

int ruleset_build(struct ruleset *rs)
{
    if (!rs || rs->built)
        return TW_EBAD;
    for (size_t i = 0; i < rs->n_rules; i++)
        rs->rules[i].pub.set = rs; /* the array does not move any more */
    rs->anchorless = malloc((rs->n_vals ? rs->n_vals : 1) * sizeof(uint32_t));
    rs->always = malloc((rs->n_rules ? rs->n_rules : 1) * sizeof(uint32_t));
    if (!rs->anchorless || !rs->always)
        return TW_ENOMEM;
    for (size_t i = 0; i < rs->n_rules; i++) {
        struct rrule *rr = &rs->rules[i];
        rr->need = rr->indicator ? -1 : needed_selection(rs, rr);
        rr->kinds = need_kinds(rs, rr);
        rs->kinds |= rr->kinds;
        rs->uses |= rr->pub.fields;
    }
    int rc = build_automata(rs); /* after the kinds: they tag the values */
    if (rc)
        return rc;
    /* text fields each kind's rules compare (the only ones scanned) */
    for (size_t i = 0; i < rs->n_items; i++) {
        const struct ritem *it = &rs->items[i];
        if (it->scalar && !it->isnull)
            continue;
        for (unsigned k = 0; k < ROK__COUNT; k++)
            if (rs->rules[it->rule].kinds & (1u << k))
                rs->kuses[k] |= it->fields;
    }
    /* rules that may hold when no string value matched (e.g. 'not filter', ports only) */
    rs->flow_gated = true;
    for (size_t i = 0; i < rs->n_rules; i++) {
        struct rrule *rr = &rs->rules[i];
        if (!rr->indicator && rule_gate_open(rs, rr)) {
            rr->always = 1;
            rs->always[rs->n_always++] = (uint32_t)i;
            rs->always_kinds |= rr->kinds;
            if (rule_gate(rs, rr))
                return TW_ENOMEM;
        }
        if ((rr->kinds & (1u << ROK_FLOW)) && (!rr->always || (!rr->n_gate && !rr->n_agate)))
            rs->flow_gated = false;
    }
    if (flow_gate_build(rs))
        return TW_ENOMEM;
    /* domain hash set, load factor <= 1/2 */
    size_t cap = 16;
    while (cap < rs->n_doms * 2)
        cap *= 2;
    rs->dtab = calloc(cap, sizeof(uint32_t));
    if (!rs->dtab)
        return TW_ENOMEM;
    huge_hint(rs->dtab, cap * sizeof(uint32_t));
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

void ruleset_set_ecs_json(struct ruleset *rs, size_t i, char *json, size_t n)
{
    if (!rs || i >= rs->n_rules) {
        free(json);
        return;
    }
    free(rs->rules[i].pub.ecs_json);
    rs->rules[i].pub.ecs_json = json;
    rs->rules[i].pub.ecs_json_len = json ? n : 0;
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
    const struct ritem *it = &m->rs->items[v->item];
    if (!(it->fields & m->scan) || !(m->rs->rules[it->rule].kinds & m->kmask))
        return 0; /* another field, or a rule that does not run on this kind */
    if (!val_check(v, m->text, m->tlen, end))
        return 0;
    return add_val(m, id);
}

/* Indicator domains: the name and each suffix that starts after a dot. */
static void domain_walk(struct mstate *m, uint32_t only_rule, const char **found)
{
    const struct ruleset *rs = m->rs;
    if (!rs->n_doms || !m->len)
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

/* One text through the automata that hold the values of its fields (enum ac_set). */
static void scan_text(struct mstate *m, const uint8_t *t, size_t n, unsigned bits)
{
    struct ac *const *ac = m->rs->ac;
    uint8_t tags = (uint8_t)m->kmask; /* values of rules that run on these kinds */
    m->text = t;
    m->tlen = n;
    m->scan = bits;
    if (!(bits & (RF_QUERY | RF_DEST_HOST | RF_HTTP_HOST))) {
        ac_search_tagged(ac[AC_OTHER], t, n, tags, on_hit, m);
    } else if (!(bits & RF_HTTP_HOST)) {
        ac_search_tagged(ac[AC_QUERY], t, n, tags, on_hit, m);
    } else if (!(bits & RF_QUERY)) {
        ac_search_tagged(ac[AC_HOST], t, n, tags, on_hit, m);
    } else { /* both name automata; a value found twice is kept once (add_val) */
        m->scan = bits & ~(unsigned)RF_HTTP_HOST;
        ac_search_tagged(ac[AC_QUERY], t, n, tags, on_hit, m);
        m->scan = RF_HTTP_HOST;
        ac_search_tagged(ac[AC_HOST], t, n, tags, on_hit, m);
    }
}

/* Runs the automaton over every string field the observation carries (the name once for
 * both name fields), then checks the values without an anchor. */
static void scan_fields(struct mstate *m)
{
    const struct ruleset *rs = m->rs;
    m->text = m->name;
    m->tlen = m->len;
    m->scan = m->fields & m->suses & (RF_DEST_HOST | RF_QUERY);
    unsigned more = m->fields & m->suses & ~(unsigned)(RF_DEST_HOST | RF_QUERY);
    struct rule_span h;
    if ((more & RF_HTTP_HOST) && obs_str(m, RF_HTTP_HOST, &h) && h.p == m->name && h.n == m->len) {
        m->scan |= RF_HTTP_HOST; /* the same text: one scan for both */
        more &= ~(unsigned)RF_HTTP_HOST;
    }
    if (m->scan)
        scan_text(m, m->text, m->tlen, m->scan);
    for (unsigned b = 2; b < RF__BITS && more && !m->overflow; b++) {
        struct rule_span t;
        unsigned bit = 1u << b;
        if (!(more & bit) || fdocs[b].kind == FK_NUM || fdocs[b].kind == FK_BOOL ||
            !obs_str(m, bit, &t))
            continue;
        scan_text(m, t.p, t.n, bit);
    }
    unsigned abits = m->kmask & (m->kmask - 1) ? rs->anchorless_bits
                                               : rs->anchorless_kbits[__builtin_ctz(m->kmask)];
    if (!(abits & m->suses & m->fields))
        return; /* no value without an anchor is on a field this observation carries */
    for (size_t i = 0; i < rs->n_anchorless && !m->overflow; i++) {
        const struct rval *v = &rs->vals[rs->anchorless[i]];
        const struct ritem *it = &rs->items[v->item];
        struct rule_span t;
        if ((it->fields & m->suses) && (rs->rules[it->rule].kinds & m->kmask) &&
            obs_str(m, it->fields, &t) && val_check(v, t.p, t.n, 0))
            add_val(m, rs->anchorless[i]);
    }
}

/* The first string value of rule r that holds (the fallback's rule_hit.pattern). */
static const char *first_value(const struct mstate *m, size_t r)
{
    const struct ruleset *rs = m->rs;
    for (size_t v = 0; v < rs->n_vals; v++) {
        const struct ritem *it = &rs->items[rs->vals[v].item];
        struct rule_span t;
        if (it->rule == r && !it->scalar && obs_str(m, it->fields, &t) &&
            val_check(&rs->vals[v], t.p, t.n, 0))
            return rs->vals[v].raw;
    }
    return NULL;
}

static void put_hit(const struct mstate *m, const struct rrule *rr, const char *pat,
                    struct rule_hit *h)
{
    h->rule = &rr->pub;
    h->pattern = pat ? pat : "";
    h->fields = rr->pub.fields & m->fields;
    h->relaxed = rr->pub.relaxed;
}

/* More values or rules than the scratch holds: every rule evaluated directly. */
static size_t match_direct(struct mstate *m, struct rule_hit *hits, size_t max)
{
    const struct ruleset *rs = m->rs;
    size_t nh = 0;
    m->direct = 1;
    for (size_t r = 0; r < rs->n_rules && nh < max; r++) {
        const struct rrule *rr = &rs->rules[r];
        const char *pat = NULL;
        if (!(rr->kinds & m->kmask))
            continue;
        if (rr->indicator) {
            domain_walk(m, (uint32_t)r, &pat);
            if (!pat)
                continue;
        } else {
            if (!rule_true(m, rr))
                continue;
            pat = first_value(m, r);
        }
        put_hit(m, rr, pat, &hits[nh++]);
    }
    return nh;
}

static int match(struct mstate *m, struct rule_hit *hits, size_t max)
{
    const struct ruleset *rs = m->rs;
    m->n_vals = m->n_touched = 0;
    m->overflow = m->direct = 0;
    scan_fields(m);
    if (!m->overflow)
        domain_walk(m, 0, NULL);
    if (m->overflow)
        return (int)match_direct(m, hits, max);
    /* touched rules and the always-evaluated ones, in rule order */
    for (size_t i = 1; i < m->n_touched; i++) { /* in rule order; a few at most */
        struct touched t = m->touched[i];
        size_t j = i;
        for (; j > 0 && m->touched[j - 1].rule > t.rule; j--)
            m->touched[j] = m->touched[j - 1];
        m->touched[j] = t;
    }
    size_t ti = 0, ai = 0, nh = 0;
    size_t n_always = (rs->always_kinds & m->kmask) ? rs->n_always : 0;
    while ((ti < m->n_touched || ai < n_always) && nh < max) {
        uint32_t r;
        const char *pat = "";
        if (ai >= n_always || (ti < m->n_touched && m->touched[ti].rule <= rs->always[ai])) {
            r = m->touched[ti].rule;
            pat = m->touched[ti].pat;
            if (ai < n_always && rs->always[ai] == r)
                ai++;
            ti++;
        } else {
            r = rs->always[ai++];
        }
        const struct rrule *rr = &rs->rules[r];
        if ((rr->kinds & m->kmask) &&
            (rr->indicator || (gate_open(rr, m->ob) && rule_holds(m, rr))))
            put_hit(m, rr, pat, &hits[nh++]);
    }
    return (int)nh;
}

static int match_obs(const struct ruleset *rs, const struct rule_obs *ob, unsigned kmask,
                     struct rule_hit *hits, size_t max)
{
    if (!rs || !rs->built || !ob || max == 0 || !(rs->kinds & kmask))
        return 0;
    if (kmask == 1u << ROK_FLOW && rs->flow_gated &&
        (!ob->has_flow || !flow_gate_open(rs, &ob->src, &ob->dst, ob->dport)))
        return 0; /* most new flows: no rule on flow facts can hold */
    struct mstate ms, *m = &ms;
    m->rs = rs;
    m->kmask = kmask;
    m->suses = 0;
    if (!(kmask & (kmask - 1)))
        m->suses = rs->kuses[__builtin_ctz(kmask)]; /* one kind */
    else
        for (unsigned k = 0; k < ROK__COUNT; k++)
            if (kmask & (1u << k))
                m->suses |= rs->kuses[k];
    m->name = ob->name;
    m->len = ob->name ? ob->name_len : 0;
    if (m->len > 0 && m->name[m->len - 1] == '.')
        m->len--; /* one trailing dot: the root label */
    obs_prepare(m, ob);
    if (!m->fields)
        return 0;
    return match(m, hits, max);
}

int ruleset_match_obs(const struct ruleset *rs, const struct rule_obs *ob, struct rule_hit *hits,
                      size_t max)
{
    if (!ob || ob->kind >= ROK__COUNT)
        return 0;
    return match_obs(rs, ob, 1u << ob->kind, hits, max);
}

int ruleset_match(const struct ruleset *rs, unsigned fields, const uint8_t *name, size_t len,
                  struct rule_hit *hits, size_t max)
{
    if (!name)
        return 0;
    struct rule_obs ob;
    memset(&ob, 0, sizeof(ob));
    ob.kind = ROK_PROXY_TARGET; /* a kind that carries the name only */
    ob.name_fields = fields & (RF_DEST_HOST | RF_QUERY);
    ob.name = name;
    ob.name_len = len;
    return match_obs(rs, &ob, NAME_KINDS, hits, max);
}

bool ruleset_wants(const struct ruleset *rs, enum rule_obs_kind kind)
{
    return rs && rs->built && kind < ROK__COUNT && (rs->kinds & (1u << kind));
}

/* ---- self-test ------------------------------------------------------------------------- */

/* A literal address of ours (always valid). */
static void set_addr(const char *text, struct tw_addr *a)
{
    if (tw_addr_parse(text, a) != TW_OK)
        memset(a, 0, sizeof(*a));
}

/* An observation synthesized from a rule's own values: per field, an exact text or the
 * parts (startswith, contains..., endswith) it must show, or a number / address. */
#define SYN_TEXT 1024

struct synth {
    struct rule_obs ob;
    unsigned set; /* bits given a value */
    char pre[RF__BITS][SYN_TEXT], mid[RF__BITS][SYN_TEXT], suf[RF__BITS][SYN_TEXT];
    char exact[RF__BITS][SYN_TEXT];
    uint8_t has_exact[RF__BITS];
    int64_t num[RF__BITS];
    struct tw_addr addr[RF__BITS];
    char text[RF__BITS][4 * SYN_TEXT]; /* the joined strings the observation points to */
    char target[4 * SYN_TEXT + 8];
};

static void cat(char *dst, const char *src)
{
    size_t n = strlen(dst), k = strlen(src);
    if (n + k < SYN_TEXT) {
        memcpy(dst + n, src, k + 1);
    }
}

/* A string the glob of v accepts: wildcards dropped, '?' as 'a'. */
static void sample(const struct rval *v, char *out, size_t n)
{
    size_t k = 0;
    for (uint32_t i = 0; i < v->len && k + 1 < n; i++) {
        if (v->wild[i] == '*')
            continue;
        out[k++] = v->wild[i] == '?' ? 'a' : (char)v->pat[i];
    }
    out[k] = '\0';
}

/* Adds value i of item it to the synthesized observation. */
static void syn_value(struct synth *s, const struct ruleset *rs, const struct ritem *it, uint32_t i)
{
    const struct rval *v = &rs->vals[it->first_val + i];
    unsigned b = bit_index(it->fields);
    s->set |= it->fields;
    if (v->mod == MOD_CIDR) {
        s->addr[b] = v->net;
        return;
    }
    if (it->scalar) {
        int64_t d = v->mod == MOD_LT ? -1 : v->mod == MOD_GT ? 1 : 0;
        s->num[b] = v->num + d;
        return;
    }
    char t[SYN_TEXT];
    if (v->re)
        snprintf(t, sizeof(t), "%s", re_sample(v->re, &(size_t){0}));
    else
        sample(v, t, sizeof(t));
    switch (v->mod) {
    case MOD_STARTS:
        cat(s->pre[b], t);
        break;
    case MOD_RE:
    case MOD_RE_I:
    case MOD_CONTAINS:
        cat(s->mid[b], t);
        break;
    case MOD_ENDS:
        cat(s->suf[b], t);
        break;
    default:
        if (!s->has_exact[b])
            memcpy(s->exact[b], t, strlen(t) + 1);
        s->has_exact[b] = 1;
    }
}

static void syn_group(struct synth *s, const struct ruleset *rs, const struct rgroup *g)
{
    for (uint32_t i = 0; i < g->n_items; i++) {
        const struct ritem *it = &rs->items[g->first_item + i];
        if (it->isnull)
            continue; /* absent satisfies it */
        for (uint32_t k = 0; k < (it->all ? it->n_vals : 1u); k++)
            syn_value(s, rs, it, k);
    }
}

/* Where a string bit's text goes in the observation. */
static struct rule_span *syn_span(struct rule_obs *ob, unsigned bit)
{
    switch (bit) {
    case RF_METHOD:
        return &ob->method;
    case RF_UA:
        return &ob->user_agent;
    case RF_HTTP_HOST:
        return &ob->host;
    case RF_COOKIE:
        return &ob->cookie;
    case RF_REFERER:
        return &ob->referer;
    default:
        return NULL;
    }
}

/* An address whose text the glob parts give ("10." -> 10.0.0.1), or a default. */
static void syn_addr_text(const char *t, struct tw_addr *a)
{
    static const char *const pad[] = {"", "1", "0.1", "0.0.1", "1.1.1"};
    char buf[SYN_TEXT + 8];
    for (size_t i = 0; i < TW_ARRAY_LEN(pad); i++) {
        snprintf(buf, sizeof(buf), "%s%s", t, pad[i]);
        if (tw_addr_parse(buf, a) == TW_OK)
            return;
    }
}

/* The request-target from the URL-ish fields: URL or URI, else stem + extension + query. */
static void syn_target(struct synth *s)
{
    static const unsigned order[] = {RF_URL, RF_URI, RF_URI_STEM};
    s->target[0] = '\0';
    for (size_t i = 0; i < TW_ARRAY_LEN(order) && !s->target[0]; i++)
        if (s->set & order[i])
            snprintf(s->target, sizeof(s->target), "%s", s->text[bit_index(order[i])]);
    if (!s->target[0])
        snprintf(s->target, sizeof(s->target), "/index");
    size_t n = strlen(s->target);
    if (s->set & RF_URI_EXT)
        snprintf(s->target + n, sizeof(s->target) - n, ".%s", s->text[bit_index(RF_URI_EXT)]);
    n = strlen(s->target);
    if (s->set & RF_URI_QUERY)
        snprintf(s->target + n, sizeof(s->target) - n, "?%s", s->text[bit_index(RF_URI_QUERY)]);
    s->ob.target = span_of(s->target);
}

static void syn_defaults(struct rule_obs *ob, unsigned kind)
{
    memset(ob, 0, sizeof(*ob));
    ob->kind = (enum rule_obs_kind)kind;
    ob->has_flow = ob->initiated = true;
    set_addr("10.1.2.3", &ob->src);
    set_addr("203.0.113.10", &ob->dst);
    ob->sport = 49152;
    ob->dport = http_kind(kind) ? 80 : kind == ROK_DNS_QUERY ? 53 : 443;
    ob->proto = kind == ROK_DNS_QUERY || kind == ROK_QUIC_SNI ? 17 : 6;
    if (http_kind(kind)) {
        ob->method = span_of("GET");
        ob->host = span_of("tw-selftest.example.zz");
        ob->target = span_of("/index");
    }
}

static void syn_scalars(struct synth *s)
{
    struct rule_obs *ob = &s->ob;
    const int64_t *n = s->num;
    if (s->set & RF_SRC_V6)
        set_addr(n[bit_index(RF_SRC_V6)] ? "2001:db8::5" : "10.1.2.3", &ob->src);
    if (s->set & RF_DST_V6)
        set_addr(n[bit_index(RF_DST_V6)] ? "2001:db8::10" : "203.0.113.10", &ob->dst);
    if (s->set & RF_SRC_IP)
        ob->src = s->addr[bit_index(RF_SRC_IP)];
    if (s->set & RF_DST_IP)
        ob->dst = s->addr[bit_index(RF_DST_IP)];
    if (s->set & RF_SRC_PORT)
        ob->sport = (uint16_t)n[bit_index(RF_SRC_PORT)];
    if (s->set & RF_DST_PORT)
        ob->dport = (uint16_t)n[bit_index(RF_DST_PORT)];
    if (s->set & RF_PROTO)
        ob->proto = strcasecmp(s->text[bit_index(RF_PROTO)], "udp") ? 6 : 17;
    if (s->set & RF_INITIATED)
        ob->initiated = n[bit_index(RF_INITIATED)] != 0;
    if (s->set & RF_QTYPE)
        ob->qtype = qtype_code(s->text[bit_index(RF_QTYPE)]);
    if (s->set & RF_STATUS)
        ob->status = (int)n[bit_index(RF_STATUS)];
}

/* Joins the parts into texts and points the observation at them. */
static void syn_finish(struct synth *s, unsigned kind)
{
    syn_defaults(&s->ob, kind);
    for (unsigned b = 0; b < RF__BITS; b++) {
        if (!(s->set & (1u << b)) || (fdocs[b].kind != FK_STR && fdocs[b].kind != FK_ADDR))
            continue;
        if (s->has_exact[b])
            snprintf(s->text[b], sizeof(s->text[b]), "%s", s->exact[b]);
        else
            snprintf(s->text[b], sizeof(s->text[b]), "%s%s%s%s%s", s->pre[b],
                     s->mid[b][0] ? "x" : "", s->mid[b], s->mid[b][0] ? "x" : "", s->suf[b]);
        size_t n = strlen(s->text[b]);
        if ((1u << b) & (RF_DEST_HOST | RF_QUERY | RF_HTTP_HOST) && n && s->text[b][n - 1] == '.')
            cat(s->text[b], "x"); /* a name's trailing dot is the root, never compared */
        if (fdocs[b].kind == FK_ADDR && !s->addr[b].family)
            syn_addr_text(s->text[b], &s->addr[b]);
    }
    struct rule_obs *ob = &s->ob;
    for (unsigned b = 0; b < 2; b++)
        if (s->set & (1u << b)) {
            ob->name = (const uint8_t *)s->text[b];
            ob->name_len = strlen(s->text[b]);
            ob->name_fields |= 1u << b;
        }
    if (!ob->name && kind != ROK_FLOW) {
        ob->name = (const uint8_t *)"tw-selftest.example.zz";
        ob->name_len = 22;
        ob->name_fields = RF_DEST_HOST | (kind == ROK_DNS_QUERY ? RF_QUERY : 0u);
    }
    if (s->set & RF_HTTP_HOST && !http_kind(kind)) {
        ob->name = (const uint8_t *)s->text[bit_index(RF_HTTP_HOST)];
        ob->name_len = strlen(s->text[bit_index(RF_HTTP_HOST)]);
    }
    syn_scalars(s);
    for (unsigned b = 0; b < RF__BITS; b++) {
        struct rule_span *sp = syn_span(ob, 1u << b);
        if (sp && (s->set & (1u << b)))
            *sp = span_of(s->text[b]);
    }
    if (http_kind(kind))
        syn_target(s);
}

static bool st_fires(const struct ruleset *rs, const struct rule_obs *ob, const struct rule *r)
{
    struct rule_hit h[256];
    int n = ruleset_match_obs(rs, ob, h, TW_ARRAY_LEN(h));
    for (int i = 0; i < n; i++)
        if (h[i].rule == r)
            return true;
    return false;
}

/* The rule's selections (sel < 0: group 0 of every one the condition requires; else group g
 * of that selection alone) as an observation of the rule's first kind. */
static void syn_build(struct synth *s, const struct ruleset *rs, const struct rrule *rr, int sel,
                      uint32_t g)
{
    memset(s, 0, offsetof(struct synth, text));
    for (uint32_t i = 0; i < rr->n_sels; i++) {
        const struct rsel *se = &rs->sels[rr->first_sel + i];
        if (sel < 0 && se->ref_pos && !se->dropped)
            syn_group(s, rs, &rs->groups[se->first_group]);
        else if (sel == (int)i)
            syn_group(s, rs, &rs->groups[se->first_group + g]);
    }
}

static unsigned first_kind(const struct rrule *rr)
{
    unsigned k = 0;
    while (k < ROK__COUNT && !(rr->all_kinds & (1u << k)))
        k++;
    return k;
}

/* Changes field b so that the rule's value for it no longer holds. */
static void syn_mutate(struct synth *s, unsigned b, int variant)
{
    static const char *const v4[] = {"192.0.2.77", "100.64.9.9"};
    static const char *const v6[] = {"2001:db8::77", "fd00::77"};
    s->has_exact[b] = 1;
    snprintf(s->exact[b], SYN_TEXT, "twselftestno%d", variant);
    if (fdocs[b].kind == FK_ADDR) {
        bool six = s->addr[b].family == 6;
        set_addr(six ? v6[variant & 1] : v4[variant & 1], &s->addr[b]);
        snprintf(s->exact[b], SYN_TEXT, "%s", six ? v6[variant & 1] : v4[variant & 1]);
    } else if (fdocs[b].kind == FK_BOOL) {
        s->num[b] = !s->num[b];
    } else if (fdocs[b].kind == FK_NUM) {
        s->num[b] = variant ? 0 : (s->num[b] + 7777) % 65536;
    }
}

/* A look-alike of the positive observation that must not fire: each of its fields changed
 * in turn, or (for a rule that holds on a blank observation) one of its filters satisfied. */
static bool st_negative(const struct ruleset *rs, const struct rrule *rr, const struct synth *pos,
                        struct synth *s)
{
    unsigned kind = first_kind(rr);
    for (unsigned b = 0; b < RF__BITS; b++) {
        for (int variant = 0; variant < 2 && (pos->set & (1u << b)); variant++) {
            memcpy(s, pos, offsetof(struct synth, text));
            syn_mutate(s, b, variant);
            syn_finish(s, kind);
            if (!st_fires(rs, &s->ob, &rr->pub))
                return true;
        }
    }
    for (uint32_t i = 0; i < rr->n_sels; i++) {
        const struct rsel *se = &rs->sels[rr->first_sel + i];
        if (!se->ref_neg || se->dropped)
            continue;
        syn_build(s, rs, rr, (int)i, 0);
        syn_finish(s, kind);
        if (!st_fires(rs, &s->ob, &rr->pub))
            return true;
    }
    return false;
}

/* Positive candidates in turn: every required selection together, each group of each
 * selection alone, a blank observation. True with *pos filled when one fires. */
static bool st_positive(const struct ruleset *rs, const struct rrule *rr, struct synth *pos)
{
    unsigned kind = first_kind(rr);
    syn_build(pos, rs, rr, -1, 0);
    syn_finish(pos, kind);
    if (st_fires(rs, &pos->ob, &rr->pub))
        return true;
    for (uint32_t i = 0; i < rr->n_sels; i++) {
        const struct rsel *se = &rs->sels[rr->first_sel + i];
        for (uint32_t g = 0; g < se->n_groups && !se->dropped; g++) {
            syn_build(pos, rs, rr, (int)i, g);
            syn_finish(pos, kind);
            if (st_fires(rs, &pos->ob, &rr->pub))
                return true;
        }
    }
    syn_build(pos, rs, rr, (int)rr->n_sels, 0);
    syn_finish(pos, kind);
    return st_fires(rs, &pos->ob, &rr->pub);
}

/* An indicator list: its first domain fires, a name outside it does not. */
static int st_list(const struct ruleset *rs, const struct rrule *rr, uint32_t ri)
{
    for (size_t d = 0; d < rs->n_doms; d++) {
        if (rs->doms[d].rule != ri)
            continue;
        struct rule_obs ob;
        syn_defaults(&ob, ROK_TLS_SNI);
        ob.name = (const uint8_t *)(rs->dpool + rs->doms[d].off);
        ob.name_len = rs->doms[d].len;
        ob.name_fields = rr->pub.fields;
        if (!st_fires(rs, &ob, &rr->pub))
            return 1;
        ob.name = (const uint8_t *)"twselftestno.invalid";
        ob.name_len = 20;
        return st_fires(rs, &ob, &rr->pub) ? 2 : 0;
    }
    return 1;
}

int ruleset_selftest(const struct ruleset *rs, FILE *out)
{
    if (!rs || !rs->built)
        return 0;
    struct synth *pos = malloc(sizeof(*pos)), *neg = malloc(sizeof(*neg));
    if (!pos || !neg) {
        free(pos);
        free(neg);
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < rs->n_rules; i++) {
        const struct rrule *rr = &rs->rules[i];
        int why = rr->indicator                    ? st_list(rs, rr, (uint32_t)i)
                  : !st_positive(rs, rr, pos)      ? 1
                  : !st_negative(rs, rr, pos, neg) ? 2
                                                   : 0;
        if (why) {
            failed++;
            fprintf(out, "selftest: FAIL %s '%s' (%s): %s\n", rr->pub.id, rr->pub.title,
                    rr->pub.file,
                    why == 1 ? "does not fire on an observation built from its values"
                             : "fires on every look-alike");
        }
    }
    fprintf(out, "selftest: %zu rules, %zu passed, %d failed\n", rs->n_rules,
            rs->n_rules - (size_t)failed, failed);
    free(pos);
    free(neg);
    return failed;
}
