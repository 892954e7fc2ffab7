/* attrib.c - attribution (see attrib.h): the decision, resolver learning, the
 * internal-network set and the IP -> flagged-name map.
 *
 * The network set is a plain binary trie (one node per prefix bit): a few dozen CIDRs
 * cost a few thousand nodes, a lookup is at most 128 steps with no allocation. The DNS map
 * is an open-addressing table sized at twice its cap, with linear probing and tombstone-free
 * deletion by backward shift; at the cap the entry nearest to expiry in the probe window is
 * replaced, so memory never grows past the configured size. One that the same host received
 * is replaced first: a host that floods the map with answers pushes out its own entries, not
 * another host's (evictions noted with the asker, dnsmap_pressure).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "siphash_int.h"
#include "tunnelwatch/attrib.h"

struct node {
    uint32_t child[2]; /* index into nodes, 0 = none */
    bool term;
};

struct netset {
    struct node *nodes;
    uint32_t n, cap;
    uint32_t root[2]; /* v4, v6 */
    size_t count;
};

static uint32_t new_node(struct netset *s)
{
    if (s->n == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 256;
        struct node *nn = realloc(s->nodes, ncap * sizeof(*nn));
        if (!nn)
            return 0;
        s->nodes = nn;
        s->cap = ncap;
    }
    memset(&s->nodes[s->n], 0, sizeof(s->nodes[0]));
    return s->n++;
}

struct netset *netset_new(void)
{
    struct netset *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    /* node 0 is the "none" sentinel; roots are 1 and 2 */
    if (new_node(s) != 0 || (s->root[0] = new_node(s)) == 0 || (s->root[1] = new_node(s)) == 0) {
        netset_free(s);
        return NULL;
    }
    return s;
}

void netset_free(struct netset *s)
{
    if (!s)
        return;
    free(s->nodes);
    free(s);
}

static unsigned bit_at(const uint8_t *a, unsigned i)
{
    return (unsigned)(a[i / 8] >> (7 - i % 8)) & 1u;
}

int netset_add(struct netset *s, const struct tw_addr *addr, unsigned bits)
{
    unsigned maxbits = addr->family == 4 ? 32 : 128;
    if ((addr->family != 4 && addr->family != 6) || bits > maxbits)
        return TW_EBAD;
    uint32_t cur = s->root[addr->family == 6];
    for (unsigned i = 0; i < bits; i++) {
        unsigned b = bit_at(addr->a, i);
        if (!s->nodes[cur].child[b]) {
            uint32_t nn = new_node(s);
            if (!nn)
                return TW_ENOMEM;
            s->nodes[cur].child[b] = nn;
        }
        cur = s->nodes[cur].child[b];
    }
    if (!s->nodes[cur].term)
        s->count++;
    s->nodes[cur].term = true;
    return TW_OK;
}

bool netset_contains(const struct netset *s, const struct tw_addr *a)
{
    if (!s || (a->family != 4 && a->family != 6))
        return false;
    unsigned maxbits = a->family == 4 ? 32 : 128;
    uint32_t cur = s->root[a->family == 6];
    for (unsigned i = 0;; i++) {
        if (s->nodes[cur].term)
            return true;
        if (i == maxbits)
            return false;
        cur = s->nodes[cur].child[bit_at(a->a, i)];
        if (!cur)
            return false;
    }
}

size_t netset_count(const struct netset *s)
{
    return s->count;
}

/* --- DNS map --- */

#define PROBE_MAX 16

struct dnsmap {
    struct dnsmap_entry *slots;
    uint8_t *used;
    size_t nslots; /* power of two */
    uint32_t max, size;
    uint64_t evictions;
    uint8_t key[16];
    uint64_t k[2]; /* key as SipHash words */
    struct pressure pr;
};

struct dnsmap *dnsmap_new(uint32_t max_entries)
{
    struct dnsmap *m = calloc(1, sizeof(*m));
    if (!m || max_entries == 0) {
        free(m);
        return NULL;
    }
    m->nslots = 64;
    while (m->nslots < (size_t)max_entries * 2)
        m->nslots <<= 1;
    m->max = max_entries;
    if (getrandom(m->key, sizeof(m->key), 0) != (ssize_t)sizeof(m->key))
        memset(m->key, 0x3c, sizeof(m->key));
    m->k[0] = tw_le64(m->key);
    m->k[1] = tw_le64(m->key + 8);
    m->slots = calloc(m->nslots, sizeof(*m->slots));
    m->used = calloc(m->nslots, 1);
    if (!m->slots || !m->used) {
        dnsmap_free(m);
        return NULL;
    }
    return m;
}

void dnsmap_free(struct dnsmap *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m->used);
    free(m);
}

static size_t addr_hash(const struct dnsmap *m, const struct tw_addr *a)
{
    /* keyed (random per map): answers are partly attacker-chosen addresses, and a chosen
     * cluster of collisions would turn every insert into evictions and shifts. Every new flow
     * looks its server up here once any answer is mapped, so the hash is the short form. */
    return (size_t)tw_siphash13_addr(m->k, a->family, a->a);
}

static void remove_at(struct dnsmap *m, size_t i)
{
    /* backward-shift deletion keeps probe chains intact without tombstones */
    size_t mask = m->nslots - 1;
    m->used[i] = 0;
    m->size--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->used[j])
            return;
        size_t home = addr_hash(m, &m->slots[j].ip) & mask;
        /* can the entry at j move to the hole at i? only if i lies cyclically in [home, j) */
        bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            m->used[i] = 1;
            m->used[j] = 0;
            i = j;
        }
    }
}

/* One insertion attempt: TW_OK when stored, else the slot to evict (as a negative-free
 * out parameter) and TW_ELIMIT. */
static int try_put(struct dnsmap *m, const struct dnsmap_entry *e, size_t *victim_out)
{
    size_t mask = m->nslots - 1, h = addr_hash(m, &e->ip) & mask;
    size_t victim = (size_t)-1, own = (size_t)-1;
    for (size_t k = 0; k < PROBE_MAX; k++) {
        size_t i = (h + k) & mask;
        if (!m->used[i]) {
            if (m->size >= m->max)
                break;
            m->slots[i] = *e;
            m->used[i] = 1;
            m->size++;
            return TW_OK;
        }
        if (tw_addr_eq(&m->slots[i].ip, &e->ip)) {
            m->slots[i] = *e;
            return TW_OK;
        }
        if (victim == (size_t)-1 || m->slots[i].expires_us < m->slots[victim].expires_us)
            victim = i;
        if (tw_addr_eq(&m->slots[i].asker, &e->asker) &&
            (own == (size_t)-1 || m->slots[i].expires_us < m->slots[own].expires_us))
            own = i;
    }
    if (own != (size_t)-1)
        victim = own;
    if (victim == (size_t)-1) {
        /* at the cap with an empty home slot, so no candidate in the probe window: take the
         * next entry after it. Dropping the new answer instead would lose the freshest
         * evidence, silently (about half of all inserts once the map is full). */
        for (size_t k = 1; k < m->nslots && victim == (size_t)-1; k++)
            if (m->used[(h + k) & mask])
                victim = (h + k) & mask;
    }
    *victim_out = victim;
    return TW_ELIMIT;
}

void dnsmap_put(struct dnsmap *m, const struct dnsmap_entry *e)
{
    /* a few evictions at most: each one frees a slot in or before the probe window */
    for (int attempt = 0; attempt < 4; attempt++) {
        size_t victim = (size_t)-1;
        if (try_put(m, e, &victim) == TW_OK || victim == (size_t)-1)
            return;
        m->evictions++;
        pressure_note(&m->pr, &m->slots[victim].asker, true);
        remove_at(m, victim);
    }
    m->evictions++; /* still no room: the new answer is the one dropped, and counted */
    pressure_note(&m->pr, &e->asker, false);
}

struct pressure *dnsmap_pressure(struct dnsmap *m)
{
    return &m->pr;
}

const struct dnsmap_entry *dnsmap_get(struct dnsmap *m, const struct tw_addr *ip, int64_t now_us)
{
    if (!m->size)
        return NULL; /* no flagged answer yet: the keyed hash is not worth computing */
    size_t mask = m->nslots - 1, h = addr_hash(m, ip) & mask;
    for (size_t k = 0; k < PROBE_MAX; k++) {
        size_t i = (h + k) & mask;
        if (!m->used[i])
            return NULL;
        if (tw_addr_eq(&m->slots[i].ip, ip)) {
            if (m->slots[i].expires_us < now_us) {
                remove_at(m, i);
                return NULL;
            }
            return &m->slots[i];
        }
    }
    return NULL;
}

size_t dnsmap_size(const struct dnsmap *m)
{
    return m->size;
}

uint64_t dnsmap_evictions(const struct dnsmap *m)
{
    return m->evictions;
}

/* ---------- the decision ---------- */

#define SERVERS_MAX    1024 /* internal hosts seen acting as DNS servers */
#define CANDIDATES_MAX 64   /* hosts seen serving DNS fewer than 3 times */

struct attrib {
    struct netset *internal;
    const struct tw_addr *resolvers; /* configured (borrowed from the configuration) */
    size_t n_resolvers;
    struct tw_addr servers[SERVERS_MAX]; /* learned */
    uint32_t n_servers;
    struct {
        struct tw_addr addr;
        uint32_t n;
    } cand[CANDIDATES_MAX];
    int next_cand;
    struct dnsmap *dnsmap;
};

struct attrib *attrib_new(uint32_t dns_map_max)
{
    struct attrib *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->internal = netset_new();
    a->dnsmap = dnsmap_new(dns_map_max);
    if (!a->internal || !a->dnsmap) {
        attrib_free(a);
        return NULL;
    }
    return a;
}

void attrib_free(struct attrib *a)
{
    if (!a)
        return;
    netset_free(a->internal);
    dnsmap_free(a->dnsmap);
    free(a);
}

int attrib_configure(struct attrib *a, const struct tw_cfg *cfg)
{
    struct netset *ns = netset_new();
    if (!ns)
        return TW_ENOMEM;
    for (size_t i = 0; i < cfg->n_internal; i++) {
        int r = netset_add(ns, &cfg->internal[i].addr, cfg->internal[i].bits);
        if (r != TW_OK) {
            netset_free(ns);
            return r;
        }
    }
    netset_free(a->internal);
    a->internal = ns;
    a->resolvers = cfg->resolvers;
    a->n_resolvers = cfg->n_resolvers;
    return TW_OK;
}

bool attrib_is_internal(const struct attrib *a, const struct tw_addr *ip)
{
    return netset_contains(a->internal, ip);
}

bool attrib_is_resolver(const struct attrib *a, const struct tw_addr *ip)
{
    for (size_t i = 0; i < a->n_resolvers; i++)
        if (tw_addr_eq(&a->resolvers[i], ip))
            return true;
    for (uint32_t i = 0; i < a->n_servers; i++)
        if (tw_addr_eq(&a->servers[i], ip))
            return true;
    return false;
}

/* The candidates wait in a small table that recycles its oldest slot. */
void attrib_note_dns_server(struct attrib *a, const struct tw_addr *ip)
{
    if (!netset_contains(a->internal, ip) || attrib_is_resolver(a, ip) ||
        a->n_servers == SERVERS_MAX)
        return;
    for (int i = 0; i < CANDIDATES_MAX; i++) {
        if (a->cand[i].n && tw_addr_eq(&a->cand[i].addr, ip)) {
            if (++a->cand[i].n >= 3) {
                a->servers[a->n_servers++] = *ip;
                a->cand[i].n = 0;
            }
            return;
        }
    }
    a->cand[a->next_cand].addr = *ip;
    a->cand[a->next_cand].n = 1;
    a->next_cand = (a->next_cand + 1) % CANDIDATES_MAX;
}

struct attrib_verdict attrib_decide(const struct attrib *a, const struct tw_addr *from,
                                    const struct tw_addr *to, bool dns_query)
{
    struct attrib_verdict v = {*from, "client"};
    if (dns_query && attrib_is_resolver(a, from))
        v.attribution = "resolver";
    else if (netset_contains(a->internal, from))
        v.attribution = "client";
    else if (netset_contains(a->internal, to)) {
        v.host = *to;
        v.attribution = "inbound";
    } else
        v.attribution = "external";
    return v;
}

struct dnsmap *attrib_dnsmap(struct attrib *a)
{
    return a->dnsmap;
}
