/* webwin.c - tunnelwatch-web's window: the records, their incremental aggregates, and the
 * JSON views rendered from them.
 *
 * Trade-offs: every aggregate (hosts, incidents, rule/level/sensor facets, names, the event-id
 * index, the per-host and global timelines) is updated when a record enters or leaves the
 * window, so a request costs the page it shows: a top-N scan of the host table with a small
 * heap, or a walk of the newest records until a page is full (of one host's records when the
 * filter names a host). Counts leave with their record exactly; the small per-host sets (rules,
 * names, sensors, levels: at most WEB_SET_MAX each) only grow while the host has records, and a
 * host's first-seen moves to its oldest remaining record. Timelines use buckets aligned on the
 * epoch (bucket = time / bucket_s), kept in a per-host ring that a newer bucket rolls forward,
 * so nothing is recomputed when the reference time moves. Every table is open addressing keyed
 * by SipHash with a random key per window: the tables live as long as the process and their
 * keys come off the wire, so a fixed key would let crafted names collide. Duplicated event.ids
 * are found in a bounded set of 64-bit keyed hashes (oldest forgotten first, counted): with a
 * secret key, a false duplicate needs a 64-bit collision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "webcore.h"

/* ---- keyed hash table: linear probing, deletion by backward shift ---- */

struct hent {
    uint64_t h;
    void *v; /* NULL: empty slot */
};

/* key(v) is the string v is filed under; NULL for a set of hashes only. */
struct htab {
    struct hent *e;
    size_t cap, n;
    const char *(*key)(const void *v);
};

static int ht_init(struct htab *t, const char *(*key)(const void *v))
{
    t->cap = 64;
    t->n = 0;
    t->key = key;
    t->e = calloc(t->cap, sizeof(*t->e));
    return t->e ? TW_OK : TW_ENOMEM;
}

static size_t ht_pos(const struct htab *t, uint64_t h, const char *s, bool *found)
{
    size_t m = t->cap - 1, i = (size_t)h & m;
    while (t->e[i].v) {
        if (t->e[i].h == h && (!t->key || strcmp(t->key(t->e[i].v), s) == 0)) {
            *found = true;
            return i;
        }
        i = (i + 1) & m;
    }
    *found = false;
    return i;
}

static void *ht_get(const struct htab *t, uint64_t h, const char *s)
{
    bool found;
    size_t i = ht_pos(t, h, s, &found);
    return found ? t->e[i].v : NULL;
}

/* Files v under (h, its key), which must not be present. Grows at half full. */
static int ht_put(struct htab *t, uint64_t h, void *v)
{
    if (2 * (t->n + 1) > t->cap) {
        size_t ncap = t->cap * 2;
        struct hent *ne = calloc(ncap, sizeof(*ne));
        if (!ne)
            return TW_ENOMEM;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->e[i].v)
                continue;
            size_t j = (size_t)t->e[i].h & (ncap - 1);
            while (ne[j].v)
                j = (j + 1) & (ncap - 1);
            ne[j] = t->e[i];
        }
        free(t->e);
        t->e = ne;
        t->cap = ncap;
    }
    size_t i = (size_t)h & (t->cap - 1);
    while (t->e[i].v)
        i = (i + 1) & (t->cap - 1);
    t->e[i] = (struct hent){h, v};
    t->n++;
    return TW_OK;
}

/* Removes the entry at i and shifts the cluster behind it back (Knuth 6.4, algorithm R). */
static void ht_del_at(struct htab *t, size_t i)
{
    size_t m = t->cap - 1, j = i;
    t->e[i].v = NULL;
    t->n--;
    for (;;) {
        j = (j + 1) & m;
        if (!t->e[j].v)
            return;
        size_t home = (size_t)t->e[j].h & m;
        /* the entry at j may move to i when its home is not cyclically in (i, j] */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            t->e[i] = t->e[j];
            t->e[j].v = NULL;
            i = j;
        }
    }
}

/* Removes the entry holding v filed under h (a set of hashes holds the same v everywhere: h
 * is what tells its entries apart). */
static void ht_del(struct htab *t, uint64_t h, const void *v)
{
    size_t m = t->cap - 1;
    for (size_t i = (size_t)h & m; t->e[i].v; i = (i + 1) & m) {
        if (t->e[i].v == v && t->e[i].h == h) {
            ht_del_at(t, i);
            return;
        }
    }
}

/* ---- structures ---- */

/* A counted string: a facet value (rule, level, sensor) or a name a host set holds. */
struct web_istr {
    uint64_t h;
    size_t refs;
    char *aux; /* rules: the rule's name; else NULL */
    char s[];
};

#define WEB_SET_MAX 8

struct web_host {
    uint64_t h;
    size_t nrec;
    uint64_t hits, alerts, flows, suppressed;
    int64_t bytes_out, bytes_in, first_us, last_us;
    struct web_istr *rules[WEB_SET_MAX], *names[WEB_SET_MAX], *sensors[WEB_SET_MAX],
        *levels[WEB_SET_MAX];
    size_t nrules, nnames, nsensors, nlevels;
    struct web_rec *oldest, *newest;
    int64_t tl_last; /* absolute bucket of the ring's newest slot; -1 before any */
    char host[WEB_HOST_MAX];
    uint32_t tl[]; /* tl_buckets slots, bucket b at b % tl_buckets */
};

struct web_incident {
    uint64_t h;
    size_t refs;
    int64_t count;
    char id[96];
};

struct web_win {
    struct web_rec **ring; /* oldest at head */
    size_t cap, head, len;
    struct web_win_opts o;
    int64_t newest_us;  /* newest plausible record's time; 0 before any */
    int64_t newest_arr; /* the wall clock when it arrived */
    uint64_t next_seq, version, n_alerts;
    uint64_t last_ms, last_n; /* last stream id added */
    char last_sid[32];
    uint8_t key[16];
    struct htab hosts, incidents, ids, rules, levels, sensors, names, seen;
    uint64_t *seen_ring; /* hashes in the seen set, oldest at seen_head */
    size_t seen_head, seen_n;
    uint64_t *gtl; /* the timeline of all hosts, as struct web_host's */
    int64_t gtl_last;
    struct web_win_stats st;
};

static const char *istr_key(const void *v)
{
    return ((const struct web_istr *)v)->s;
}

static const char *host_key(const void *v)
{
    return ((const struct web_host *)v)->host;
}

static const char *inc_key(const void *v)
{
    return ((const struct web_incident *)v)->id;
}

static const char *rec_key(const void *v)
{
    return ((const struct web_rec *)v)->event_id;
}

static uint64_t hash(const struct web_win *w, const char *s)
{
    return tw_siphash(w->key, (const uint8_t *)s, strlen(s));
}

/* ---- counted strings ---- */

/* A reference on s in t (made when new, with aux copied); NULL when s is empty or no memory. */
static struct web_istr *istr_ref(struct web_win *w, struct htab *t, const char *s, const char *aux)
{
    if (!s[0])
        return NULL;
    uint64_t h = hash(w, s);
    struct web_istr *x = ht_get(t, h, s);
    if (x) {
        x->refs++;
        return x;
    }
    size_t n = strlen(s), an = aux ? strlen(aux) : 0;
    x = malloc(sizeof(*x) + n + 1 + (aux ? an + 1 : 0));
    if (!x)
        return NULL;
    x->h = h;
    x->refs = 1;
    memcpy(x->s, s, n + 1);
    x->aux = NULL;
    if (aux) {
        x->aux = x->s + n + 1;
        memcpy(x->aux, aux, an + 1);
    }
    if (ht_put(t, h, x)) {
        free(x);
        return NULL;
    }
    return x;
}

static void istr_unref(struct htab *t, struct web_istr *x)
{
    if (!x || --x->refs)
        return;
    ht_del(t, x->h, x);
    free(x);
}

/* Adds s to a host's set (a reference) unless present or the set is full. */
static void set_add(struct web_win *w, struct htab *t, struct web_istr **set, size_t *n,
                    const char *s, const char *aux)
{
    if (!s[0] || *n >= WEB_SET_MAX)
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(set[i]->s, s) == 0)
            return;
    struct web_istr *x = istr_ref(w, t, s, aux);
    if (x)
        set[(*n)++] = x;
}

/* ---- timelines: absolute buckets in a ring of nb slots ---- */

/* Moves the ring (nb slots of elem bytes, newest bucket *last) on to bucket b, clearing the
 * slots it skips; b's slot, or -1 when b is older than the ring holds. */
static int64_t tl_slot(void *tl, size_t elem, int64_t *last, unsigned nb, int64_t b)
{
    if (b > *last) {
        int64_t gap = *last < 0 ? (int64_t)nb : b - *last;
        for (int64_t k = 1; k <= gap && k <= (int64_t)nb; k++)
            memset((char *)tl + (uint64_t)(b - k + 1) % nb * elem, 0, elem);
        *last = b;
    }
    if (b <= *last - (int64_t)nb || b < 0)
        return -1;
    return (int64_t)((uint64_t)b % nb);
}

static void tl_add(uint32_t *tl, int64_t *last, unsigned nb, int64_t b, int64_t n)
{
    int64_t i = tl_slot(tl, sizeof(*tl), last, nb, b);
    if (i < 0)
        return;
    uint32_t *c = &tl[i];
    if (n >= 0)
        *c = *c + (uint32_t)n < *c ? UINT32_MAX : *c + (uint32_t)n;
    else
        *c = (uint32_t)-n > *c ? 0 : *c - (uint32_t)-n;
}

static void gtl_add(uint64_t *tl, int64_t *last, unsigned nb, int64_t b, int64_t n)
{
    int64_t i = tl_slot(tl, sizeof(*tl), last, nb, b);
    if (i < 0)
        return;
    uint64_t *c = &tl[i];
    *c = n >= 0 ? *c + (uint64_t)n : ((uint64_t)-n > *c ? 0 : *c - (uint64_t)-n);
}

static int64_t bucket_of(const struct web_win *w, int64_t us)
{
    return us / ((int64_t)w->o.tl_bucket_s * 1000000);
}

/* ---- the window ---- */

static int win_tables(struct web_win *w)
{
    if (ht_init(&w->hosts, host_key) || ht_init(&w->incidents, inc_key) ||
        ht_init(&w->ids, rec_key) || ht_init(&w->rules, istr_key) ||
        ht_init(&w->levels, istr_key) || ht_init(&w->sensors, istr_key) ||
        ht_init(&w->names, istr_key) || ht_init(&w->seen, NULL))
        return TW_ENOMEM;
    return TW_OK;
}

struct web_win *web_win_new(const struct web_win_opts *o)
{
    if (o->max_entries < 1 || o->max_age_us <= 0 || o->max_skew_us < 0 ||
        o->tl_buckets > WEB_TL_MAX)
        return NULL;
    struct web_win *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->o = *o;
    if (!w->o.seen_max)
        w->o.seen_max = 2 * o->max_entries;
    if (!w->o.tl_buckets)
        w->o.tl_buckets = 36;
    if (!w->o.tl_bucket_s)
        w->o.tl_bucket_s = 600;
    w->cap = o->max_entries;
    w->next_seq = 1;
    w->gtl_last = -1;
    /* why random: see the header comment; without entropy a clock-derived key still differs
     * per run (getrandom on Linux >= 3.17 does not fail for 16 bytes once seeded) */
    if (getrandom(w->key, sizeof(w->key), 0) != (ssize_t)sizeof(w->key)) {
        int64_t t = (int64_t)time(NULL) ^ (int64_t)(uintptr_t)w;
        memcpy(w->key, &t, sizeof(t));
    }
    w->ring = calloc(w->cap, sizeof(*w->ring));
    w->seen_ring = calloc(w->o.seen_max, sizeof(*w->seen_ring));
    w->gtl = calloc(w->o.tl_buckets, sizeof(*w->gtl));
    if (!w->ring || !w->seen_ring || !w->gtl || win_tables(w)) {
        web_win_free(w);
        return NULL;
    }
    return w;
}

static struct web_rec *win_at(const struct web_win *w, size_t i)
{
    return w->ring[(w->head + i) % w->cap];
}

/* The host of r, made when new. NULL when out of memory. */
static struct web_host *host_ref(struct web_win *w, const struct web_rec *r)
{
    uint64_t h = hash(w, r->host);
    struct web_host *x = ht_get(&w->hosts, h, r->host);
    if (x)
        return x;
    x = calloc(1, sizeof(*x) + w->o.tl_buckets * sizeof(uint32_t));
    if (!x)
        return NULL;
    x->h = h;
    x->first_us = INT64_MAX;
    x->tl_last = -1;
    snprintf(x->host, sizeof(x->host), "%s", r->host);
    if (ht_put(&w->hosts, h, x)) {
        free(x);
        return NULL;
    }
    return x;
}

static void host_free(struct web_win *w, struct web_host *x)
{
    for (size_t i = 0; i < x->nrules; i++)
        istr_unref(&w->rules, x->rules[i]);
    for (size_t i = 0; i < x->nnames; i++)
        istr_unref(&w->names, x->names[i]);
    for (size_t i = 0; i < x->nsensors; i++)
        istr_unref(&w->sensors, x->sensors[i]);
    for (size_t i = 0; i < x->nlevels; i++)
        istr_unref(&w->levels, x->levels[i]);
    ht_del(&w->hosts, x->h, x);
    free(x);
}

static struct web_incident *inc_ref(struct web_win *w, const char *id)
{
    uint64_t h = hash(w, id);
    struct web_incident *x = ht_get(&w->incidents, h, id);
    if (!x) {
        x = calloc(1, sizeof(*x));
        if (!x)
            return NULL;
        x->h = h;
        snprintf(x->id, sizeof(x->id), "%s", id);
        if (ht_put(&w->incidents, h, x)) {
            free(x);
            return NULL;
        }
    }
    x->refs++;
    return x;
}

static void inc_unref(struct web_win *w, struct web_incident *x)
{
    if (!x || --x->refs)
        return;
    ht_del(&w->incidents, x->h, x);
    free(x);
}

/* An alert or an update: the incident's count may grow; what it grows by is r's hits. */
static void link_hit(struct web_win *w, struct web_rec *r, struct web_host *x)
{
    const char *iid = r->incident_id[0] ? r->incident_id : r->event_id;
    r->inc = iid[0] ? inc_ref(w, iid) : NULL;
    int64_t cnt = r->count > 0 ? r->count : 1;
    if (r->inc && cnt > r->inc->count) {
        r->delta = cnt - r->inc->count;
        r->inc->count = cnt;
    } else if (!r->inc) {
        r->delta = cnt;
    }
    if (r->kind == WEB_ALERT) {
        x->alerts++;
        w->n_alerts++;
    }
    x->hits += (uint64_t)r->delta;
    if (r->eff_us < x->first_us)
        x->first_us = r->eff_us;
    if (r->eff_us > x->last_us)
        x->last_us = r->eff_us;
    set_add(w, &w->rules, x->rules, &x->nrules, r->rule_id, r->rule_name);
    set_add(w, &w->names, x->names, &x->nnames, r->ev_name[0] ? r->ev_name : r->domain, NULL);
    set_add(w, &w->sensors, x->sensors, &x->nsensors, r->sensor, NULL);
    set_add(w, &w->levels, x->levels, &x->nlevels, r->level, NULL);
    int64_t b = bucket_of(w, r->eff_us);
    tl_add(x->tl, &x->tl_last, w->o.tl_buckets, b, r->delta);
    gtl_add(w->gtl, &w->gtl_last, w->o.tl_buckets, b, r->delta);
}

/* Files r in every aggregate. */
static void link_rec(struct web_win *w, struct web_rec *r)
{
    if (r->event_id[0]) {
        /* an id the seen set forgot may come again: the index names the newest record */
        uint64_t h = hash(w, r->event_id);
        const struct web_rec *old = ht_get(&w->ids, h, r->event_id);
        if (old)
            ht_del(&w->ids, h, old);
        (void)ht_put(&w->ids, h, r);
    }
    if (r->kind == WEB_OTHER || !r->host[0])
        return;
    r->frule = istr_ref(w, &w->rules, r->rule_id, r->rule_name);
    r->flevel = istr_ref(w, &w->levels, r->level, NULL);
    r->fsensor = istr_ref(w, &w->sensors, r->sensor, NULL);
    struct web_host *x = host_ref(w, r);
    if (!x)
        return; /* out of memory: the record is listed, not aggregated */
    r->hagg = x;
    r->hprev = x->newest;
    if (x->newest)
        x->newest->hnext = r;
    else
        x->oldest = r;
    x->newest = r;
    x->nrec++;
    switch (r->kind) {
    case WEB_ALERT:
    case WEB_UPDATE:
        link_hit(w, r, x);
        break;
    case WEB_FLOW_END:
        x->flows++;
        x->bytes_out += r->src_bytes > 0 ? r->src_bytes : 0;
        x->bytes_in += r->dst_bytes > 0 ? r->dst_bytes : 0;
        set_add(w, &w->names, x->names, &x->nnames, r->domain, NULL);
        break;
    case WEB_SUPPRESSED:
        x->suppressed++;
        break;
    case WEB_OTHER:
        break;
    }
}

/* Takes r out of every aggregate: the exact inverse of link_rec's counts. */
static void unlink_rec(struct web_win *w, struct web_rec *r)
{
    if (r->event_id[0] && ht_get(&w->ids, hash(w, r->event_id), r->event_id) == r)
        ht_del(&w->ids, hash(w, r->event_id), r);
    istr_unref(&w->rules, r->frule);
    istr_unref(&w->levels, r->flevel);
    istr_unref(&w->sensors, r->fsensor);
    struct web_host *x = r->hagg;
    if (!x)
        return;
    if (r->kind == WEB_ALERT) {
        x->alerts--;
        w->n_alerts--;
    }
    x->hits -= (uint64_t)r->delta;
    int64_t b = bucket_of(w, r->eff_us);
    tl_add(x->tl, &x->tl_last, w->o.tl_buckets, b, -r->delta);
    gtl_add(w->gtl, &w->gtl_last, w->o.tl_buckets, b, -r->delta);
    inc_unref(w, r->inc);
    if (r->kind == WEB_FLOW_END) {
        x->flows--;
        x->bytes_out -= r->src_bytes > 0 ? r->src_bytes : 0;
        x->bytes_in -= r->dst_bytes > 0 ? r->dst_bytes : 0;
    } else if (r->kind == WEB_SUPPRESSED) {
        x->suppressed--;
    }
    if (r->hprev)
        r->hprev->hnext = r->hnext;
    else
        x->oldest = r->hnext;
    if (r->hnext)
        r->hnext->hprev = r->hprev;
    else
        x->newest = r->hprev;
    if (--x->nrec == 0)
        host_free(w, x);
    else if (x->oldest->eff_us > x->first_us)
        x->first_us = x->oldest->eff_us;
}

static void win_pop(struct web_win *w)
{
    struct web_rec *r = w->ring[w->head];
    unlink_rec(w, r);
    web_rec_clear(r);
    free(r);
    w->ring[w->head] = NULL;
    w->head = (w->head + 1) % w->cap;
    w->len--;
    w->version++;
}

static void free_table(struct htab *t)
{
    if (t->key)
        for (size_t i = 0; i < t->cap && t->e; i++)
            if (t->e[i].v)
                free(t->e[i].v);
    free(t->e);
}

void web_win_free(struct web_win *w)
{
    if (!w)
        return;
    while (w->len)
        win_pop(w);
    free(w->ids.e); /* the records it pointed to are gone */
    w->ids.e = NULL;
    w->ids.key = NULL;
    free_table(&w->hosts);
    free_table(&w->incidents);
    free_table(&w->rules);
    free_table(&w->levels);
    free_table(&w->sensors);
    free_table(&w->names);
    free(w->seen.e);
    free(w->seen_ring);
    free(w->gtl);
    free(w->ring);
    free(w);
}

/* Stream ids are "<ms>-<seq>" (Redis streams intro, "Entry IDs"). */
static int parse_sid(const char *sid, uint64_t *ms, uint64_t *n)
{
    char *end;
    if (sid[0] < '0' || sid[0] > '9')
        return TW_EBAD;
    *ms = strtoull(sid, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9')
        return TW_EBAD;
    const char *s2 = end + 1;
    *n = strtoull(s2, &end, 10);
    return *end == '\0' ? TW_OK : TW_EBAD;
}

int64_t web_win_ref_us(const struct web_win *w, int64_t now_us)
{
    if (w->newest_us == 0)
        return now_us;
    /* a replay of an old capture: its newest record was already older than the window when it
     * arrived; live records age with the wall clock even when nothing new arrives */
    if (w->newest_us < w->newest_arr - w->o.max_age_us)
        return w->newest_us;
    return w->newest_us > now_us ? w->newest_us : now_us;
}

/* True when event.id h was seen; else remembers it, forgetting the oldest when full. */
static bool seen_check(struct web_win *w, const char *event_id)
{
    uint64_t h = hash(w, event_id);
    if (ht_get(&w->seen, h, NULL))
        return true;
    if (w->seen_n == w->o.seen_max) {
        uint64_t old = w->seen_ring[w->seen_head];
        ht_del(&w->seen, old, (void *)1);
        w->seen_head = (w->seen_head + 1) % w->o.seen_max;
        w->seen_n--;
        w->st.seen_evicted++;
    }
    if (ht_put(&w->seen, h, (void *)1) == TW_OK) {
        w->seen_ring[(w->seen_head + w->seen_n) % w->o.seen_max] = h;
        w->seen_n++;
    }
    return false;
}

/* The stream-id check; remembers sid as the last one. 1 when sid is not above the last. */
static int sid_check(struct web_win *w, const char *sid)
{
    uint64_t ms = 0, sq = 0;
    if (!sid || !sid[0] || parse_sid(sid, &ms, &sq) != TW_OK)
        return 0;
    /* why: after a reconnect the group may hand back entries we already hold */
    if (w->last_sid[0] && (ms < w->last_ms || (ms == w->last_ms && sq <= w->last_n))) {
        w->st.duplicates++;
        return 1;
    }
    w->last_ms = ms, w->last_n = sq;
    snprintf(w->last_sid, sizeof(w->last_sid), "%s", sid);
    return 0;
}

void web_win_expire(struct web_win *w, int64_t now_us)
{
    int64_t oldest = web_win_ref_us(w, now_us) - w->o.max_age_us;
    while (w->len > 0 && win_at(w, 0)->eff_us < oldest) {
        win_pop(w);
        w->st.evicted_age++;
    }
}

int web_win_add(struct web_win *w, const char *sid, const char *json, size_t n, int64_t now_us)
{
    if (sid_check(w, sid))
        return 1;
    struct web_rec *r = malloc(sizeof(*r));
    if (!r)
        return TW_ENOMEM;
    int rc = web_rec_parse(json, n, r);
    if (rc || (r->event_id[0] && seen_check(w, r->event_id))) {
        web_rec_clear(r);
        free(r);
        /* the entry is consumed all the same: never retry a record we cannot read */
        if (rc)
            w->st.bad++;
        else
            w->st.dup_ids++;
        return rc == TW_ENOMEM ? rc : rc ? TW_EBAD : 1;
    }
    if (sid && sid[0])
        snprintf(r->sid, sizeof(r->sid), "%s", sid);
    r->seq = w->next_seq++;
    /* why: a record from a bad clock must not become the anchor and age everything else out */
    bool skewed = r->ts_us > now_us + w->o.max_skew_us;
    w->st.skewed += skewed;
    r->eff_us = r->ts_us > 0 && !skewed ? r->ts_us : now_us;
    if (w->len == w->cap) {
        win_pop(w);
        w->st.evicted_count++;
    }
    w->ring[(w->head + w->len) % w->cap] = r;
    w->len++;
    w->st.added++;
    w->version++;
    link_rec(w, r);
    if (r->ts_us > 0 && !skewed && r->ts_us > w->newest_us) {
        w->newest_us = r->ts_us;
        w->newest_arr = now_us;
    }
    web_win_expire(w, now_us);
    return 0;
}

size_t web_win_len(const struct web_win *w)
{
    return w->len;
}

size_t web_win_hosts(const struct web_win *w)
{
    return w->hosts.n;
}

uint64_t web_win_alerts(const struct web_win *w)
{
    return w->n_alerts;
}

uint64_t web_win_version(const struct web_win *w)
{
    return w->version;
}

const char *web_win_last_sid(const struct web_win *w)
{
    return w->last_sid;
}

void web_win_stats(const struct web_win *w, struct web_win_stats *st)
{
    *st = w->st;
}

const struct web_rec *web_win_find(const struct web_win *w, const char *event_id)
{
    if (!event_id || !event_id[0])
        return NULL;
    return ht_get(&w->ids, hash(w, event_id), event_id);
}

/* One host's counters against its chain of records. */
static bool host_consistent(const struct web_host *x)
{
    size_t n = 0;
    uint64_t alerts = 0, flows = 0, hits = 0;
    for (const struct web_rec *r = x->oldest; r; r = r->hnext) {
        if (r->hagg != x || n > x->nrec)
            return false;
        n++;
        alerts += r->kind == WEB_ALERT;
        flows += r->kind == WEB_FLOW_END;
        hits += (uint64_t)r->delta;
    }
    return n == x->nrec && n > 0 && alerts == x->alerts && flows == x->flows && hits == x->hits;
}

int web_win_check(const struct web_win *w)
{
    uint64_t alerts = 0;
    size_t hosted = 0, nhosts = 0, sum = 0;
    for (size_t i = 0; i < w->len; i++) {
        const struct web_rec *r = win_at(w, i);
        if (r->hagg) {
            hosted++;
            alerts += r->kind == WEB_ALERT;
        }
        const struct web_rec *f = r->event_id[0] ? web_win_find(w, r->event_id) : NULL;
        if (r->event_id[0] && (!f || f->seq < r->seq || strcmp(f->event_id, r->event_id) != 0))
            return TW_EBAD;
    }
    for (size_t i = 0; i < w->hosts.cap; i++) {
        const struct web_host *x = w->hosts.e[i].v;
        if (!x)
            continue;
        if (!host_consistent(x) || ht_get(&w->hosts, x->h, x->host) != x)
            return TW_EBAD;
        nhosts++;
        sum += x->nrec;
    }
    for (size_t i = 0; i < w->seen_n; i++)
        if (!ht_get(&w->seen, w->seen_ring[(w->seen_head + i) % w->o.seen_max], NULL))
            return TW_EBAD;
    bool ok = alerts == w->n_alerts && sum == hosted && nhosts == w->hosts.n &&
              w->ids.n <= w->len && w->seen.n == w->seen_n && w->seen_n <= w->o.seen_max;
    return ok ? TW_OK : TW_EBAD;
}

/* ---- filters ---- */

/* Case-insensitive (ASCII) substring; an empty needle matches. */
static bool icontains(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    if (!nl)
        return true;
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < nl && p[i]) {
            char a = p[i], b = needle[i];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z')
                b = (char)(b - 'A' + 'a');
            if (a != b)
                break;
            i++;
        }
        if (i == nl)
            return true;
    }
    return false;
}

static bool fmatch(const char *want, const char *have)
{
    return !want || !want[0] || strcmp(want, have) == 0;
}

bool web_filter_match(const struct web_filter *f, const struct web_rec *r)
{
    if (!f)
        return true;
    if (f->rule && f->rule[0] && strcmp(f->rule, r->rule_id) != 0 &&
        strcmp(f->rule, r->rule_name) != 0)
        return false;
    if (f->q && f->q[0] && !icontains(r->host, f->q) && !icontains(r->rule_id, f->q) &&
        !icontains(r->rule_name, f->q) && !icontains(r->ev_name, f->q) &&
        !icontains(r->domain, f->q))
        return false;
    return fmatch(f->level, r->level) && fmatch(f->sensor, r->sensor) && fmatch(f->host, r->host);
}

static bool set_has(struct web_istr *const *set, size_t n, const char *want, bool aux)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i]->s, want) == 0 || (aux && set[i]->aux && strcmp(set[i]->aux, want) == 0))
            return true;
    return false;
}

static bool set_search(struct web_istr *const *set, size_t n, const char *q)
{
    for (size_t i = 0; i < n; i++)
        if (icontains(set[i]->s, q) || (set[i]->aux && icontains(set[i]->aux, q)))
            return true;
    return false;
}

/* The host-level filter described at web_json_hosts. */
static bool host_match(const struct web_filter *f, const struct web_host *x)
{
    if (x->hits == 0 && x->alerts == 0 && x->flows == 0)
        return false; /* only suppressed hits: not a host that reached a tunnel */
    if (!f)
        return true;
    if ((f->host && f->host[0] && strcmp(f->host, x->host) != 0) ||
        (f->rule && f->rule[0] && !set_has(x->rules, x->nrules, f->rule, true)) ||
        (f->level && f->level[0] && !set_has(x->levels, x->nlevels, f->level, false)) ||
        (f->sensor && f->sensor[0] && !set_has(x->sensors, x->nsensors, f->sensor, false)))
        return false;
    if (f->q && f->q[0] && !icontains(x->host, f->q) && !set_search(x->rules, x->nrules, f->q) &&
        !set_search(x->names, x->nnames, f->q))
        return false;
    return true;
}

/* ---- top-k: a heap whose root is the worst of the k best seen so far ---- */

typedef int (*rank_fn)(const void *a, const void *b); /* < 0: a ranks before b */

struct topk {
    const void **v;
    size_t n, k;
    rank_fn rank;
};

static void topk_sift(struct topk *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < t->n && t->rank(t->v[l], t->v[worst]) > 0)
            worst = l;
        if (r < t->n && t->rank(t->v[r], t->v[worst]) > 0)
            worst = r;
        if (worst == i)
            return;
        const void *tmp = t->v[i];
        t->v[i] = t->v[worst];
        t->v[worst] = tmp;
        i = worst;
    }
}

static void topk_push(struct topk *t, const void *x)
{
    if (t->n < t->k) {
        size_t i = t->n++;
        t->v[i] = x;
        while (i > 0 && t->rank(t->v[(i - 1) / 2], t->v[i]) < 0) {
            const void *tmp = t->v[i];
            t->v[i] = t->v[(i - 1) / 2];
            t->v[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
    } else if (t->k && t->rank(x, t->v[0]) < 0) {
        t->v[0] = x;
        topk_sift(t, 0);
    }
}

/* Sorts the kept items best first (heap sort on the worst-at-root heap). */
static void topk_sort(struct topk *t)
{
    size_t n = t->n;
    while (t->n > 1) {
        const void *tmp = t->v[0];
        t->v[0] = t->v[t->n - 1];
        t->v[t->n - 1] = tmp;
        t->n--;
        topk_sift(t, 0);
    }
    t->n = n;
}

static void page_of(const struct web_query *q, size_t *offset, size_t *limit)
{
    *limit = q && q->limit ? q->limit : 50;
    if (*limit > WEB_PAGE_MAX)
        *limit = WEB_PAGE_MAX;
    *offset = q ? q->offset : 0;
    if (*offset > WEB_SKIP_MAX - *limit)
        *offset = WEB_SKIP_MAX - *limit;
}

/* ---- renderers ---- */

/* "key":"time" in RFC 3339, or "key":null when unknown */
static void json_time(struct jw *b, const char *key, int64_t us)
{
    char t[40];
    if (us <= 0 || us == INT64_MAX) {
        jw_raw(b, key, "null");
        return;
    }
    web_fmt_time(us, t, sizeof(t));
    jw_str(b, key, t);
}

static void json_alert(struct jw *out, const struct web_rec *r)
{
    jw_begin(out);
    jw_u64(out, "seq", r->seq);
    json_time(out, "time", r->ts_us);
    jw_str(out, "id", r->event_id);
    jw_str(out, "host", r->host);
    jw_str(out, "rule_id", r->rule_id);
    jw_str(out, "rule", r->rule_name);
    jw_str(out, "level", r->level);
    jw_str(out, "name", r->ev_name[0] ? r->ev_name : r->domain);
    jw_str(out, "evidence", r->ev_kind);
    jw_str(out, "sensor", r->sensor);
    jw_str(out, "dst", r->dst_ip);
    jw_i64(out, "port", r->dst_port);
    jw_bool(out, "skewed", r->eff_us != r->ts_us);
    jw_i64(out, "hits", r->inc ? r->inc->count : r->count);
    jw_end(out);
}

static int64_t rec_hits(const struct web_rec *r)
{
    return r->inc ? r->inc->count : r->count;
}

static int rank_alert_hits(const void *a, const void *b)
{
    const struct web_rec *x = a, *y = b;
    if (rec_hits(x) != rec_hits(y))
        return rec_hits(x) > rec_hits(y) ? -1 : 1;
    return x->seq > y->seq ? -1 : x->seq < y->seq;
}

/* The i-th newest candidate record: one host's chain when the filter names a host. */
static const struct web_rec *alert_next(const struct web_win *w, const struct web_host *x,
                                        const struct web_rec *prev, size_t *i)
{
    if (x)
        return prev ? prev->hprev : x->newest;
    return *i < w->len ? win_at(w, w->len - 1 - (*i)++) : NULL;
}

static bool empty(const char *s)
{
    return !s || !s[0];
}

/* Appends the page's alerts to out; *total is how many match. TW_ENOMEM or TW_OK. */
static int alerts_items(const struct web_win *w, const struct web_query *q, struct jw *out,
                        size_t *total)
{
    size_t offset, limit, i = 0, shown = 0, matched = 0;
    page_of(q, &offset, &limit);
    const struct web_filter *f = q ? &q->f : NULL;
    const struct web_host *x = NULL;
    if (f && !empty(f->host) && !(x = ht_get(&w->hosts, hash(w, f->host), f->host)))
        return TW_OK;
    bool by_hits = q && q->sort == WEB_SORT_HITS;
    struct topk t = {NULL, 0, by_hits ? offset + limit : 0, rank_alert_hits};
    if (by_hits && !(t.v = malloc(t.k * sizeof(*t.v))))
        return TW_ENOMEM;
    /* why: unfiltered, the total is known and a newest-first walk stops at the page's end */
    bool counted =
        !x && (!f || (empty(f->rule) && empty(f->level) && empty(f->sensor) && empty(f->q)));
    for (const struct web_rec *r = alert_next(w, x, NULL, &i); r; r = alert_next(w, x, r, &i)) {
        if (r->kind != WEB_ALERT || !web_filter_match(f, r))
            continue;
        matched++;
        if (by_hits) {
            topk_push(&t, r);
        } else if (matched > offset && shown < limit) {
            if (shown++)
                jw_append(out, ",", 1);
            json_alert(out, r);
        } else if (counted && shown == limit) {
            break;
        }
    }
    *total = counted ? (size_t)w->n_alerts : matched;
    if (by_hits) {
        topk_sort(&t);
        for (size_t k = offset; k < t.n; k++) {
            if (k > offset)
                jw_append(out, ",", 1);
            json_alert(out, t.v[k]);
        }
        free(t.v);
    }
    return TW_OK;
}

int web_json_alerts(struct web_win *w, const struct web_query *q, int64_t now_us, struct jw *out)
{
    web_win_expire(w, now_us);
    out->html_safe = true;
    struct jw items;
    web_out_init(&items, out->max ? out->max : 0);
    size_t total = 0, offset, limit;
    page_of(q, &offset, &limit);
    if (alerts_items(w, q, &items, &total))
        items.err = TW_ENOMEM;
    jw_begin(out);
    jw_u64(out, "total", total);
    jw_u64(out, "offset", offset);
    jw_key(out, "items");
    jw_append(out, "[", 1);
    if (items.err)
        out->err = items.err;
    else if (items.len)
        jw_append(out, items.buf, items.len);
    jw_append(out, "]", 1);
    jw_end(out);
    jw_free(&items);
    return out->err;
}

static int rank_host(const struct web_host *a, const struct web_host *b, enum web_sort s)
{
    if (s == WEB_SORT_HOST)
        return strcmp(a->host, b->host);
    if (s == WEB_SORT_LAST && a->last_us != b->last_us)
        return a->last_us > b->last_us ? -1 : 1;
    if (a->hits != b->hits)
        return a->hits > b->hits ? -1 : 1;
    if (a->last_us != b->last_us)
        return a->last_us > b->last_us ? -1 : 1;
    return strcmp(a->host, b->host);
}

static int rank_hits(const void *a, const void *b)
{
    return rank_host(a, b, WEB_SORT_HITS);
}

static int rank_last(const void *a, const void *b)
{
    return rank_host(a, b, WEB_SORT_LAST);
}

static int rank_name(const void *a, const void *b)
{
    return rank_host(a, b, WEB_SORT_HOST);
}

/* The host's hits per bucket of the timeline that ends with the reference time's bucket. */
static void json_tl(struct jw *out, const char *key, const uint32_t *tl32, const uint64_t *tl64,
                    int64_t last, unsigned nb, int64_t rb)
{
    uint64_t v[WEB_TL_MAX];
    for (unsigned k = 0; k < nb; k++) {
        int64_t b = rb - (int64_t)nb + 1 + (int64_t)k;
        bool held = b >= 0 && b <= last && b > last - (int64_t)nb;
        v[k] = !held ? 0 : tl32 ? tl32[(uint64_t)b % nb] : tl64[(uint64_t)b % nb];
    }
    jw_u64v(out, key, v, nb);
}

/* "key":["a","b"] from a host's set (a rule shows its name when it has one) */
static void json_set(struct jw *b, const char *key, struct web_istr *const *v, size_t n)
{
    jw_key(b, key);
    jw_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            jw_append(b, ",", 1);
        const char *s = v[i]->aux && v[i]->aux[0] ? v[i]->aux : v[i]->s;
        jw_quote(b, (const uint8_t *)s, strlen(s));
    }
    jw_append(b, "]", 1);
}

static void json_host(const struct web_win *w, struct jw *out, const struct web_host *h, int64_t rb)
{
    jw_begin(out);
    jw_str(out, "host", h->host);
    jw_u64(out, "hits", h->hits);
    jw_u64(out, "alerts", h->alerts);
    jw_u64(out, "flows", h->flows);
    jw_u64(out, "suppressed", h->suppressed);
    jw_i64(out, "bytes_out", h->bytes_out);
    jw_i64(out, "bytes_in", h->bytes_in);
    json_time(out, "first", h->first_us);
    json_time(out, "last", h->last_us);
    json_set(out, "rules", h->rules, h->nrules);
    json_set(out, "names", h->names, h->nnames);
    json_set(out, "sensors", h->sensors, h->nsensors);
    json_tl(out, "tl", h->tl, NULL, h->tl_last, w->o.tl_buckets, rb);
    jw_end(out);
}

/* The page of hosts matching q into t (sorted), the count of matches into *total. */
static int hosts_page(const struct web_win *w, const struct web_query *q, struct topk *t,
                      size_t *total)
{
    size_t offset, limit;
    page_of(q, &offset, &limit);
    enum web_sort s = q ? q->sort : WEB_SORT_DEFAULT;
    t->rank = s == WEB_SORT_LAST ? rank_last : s == WEB_SORT_HOST ? rank_name : rank_hits;
    t->k = offset + limit;
    t->n = 0;
    t->v = malloc(t->k * sizeof(*t->v));
    if (!t->v)
        return TW_ENOMEM;
    const struct web_filter *f = q ? &q->f : NULL;
    *total = 0;
    if (f && !empty(f->host)) {
        /* why: a named host is one lookup, not a scan */
        const struct web_host *x = ht_get(&w->hosts, hash(w, f->host), f->host);
        if (x && host_match(f, x)) {
            topk_push(t, x);
            *total = 1;
        }
        return TW_OK;
    }
    for (size_t i = 0; i < w->hosts.cap; i++) {
        const struct web_host *x = w->hosts.e[i].v;
        if (x && host_match(f, x)) {
            (*total)++;
            topk_push(t, x);
        }
    }
    topk_sort(t);
    return TW_OK;
}

int web_json_hosts(struct web_win *w, const struct web_query *q, int64_t now_us, struct jw *out)
{
    web_win_expire(w, now_us);
    size_t total, offset, limit;
    page_of(q, &offset, &limit);
    struct topk t;
    if (hosts_page(w, q, &t, &total))
        return out->err = TW_ENOMEM;
    out->html_safe = true;
    int64_t ref = web_win_ref_us(w, now_us), rb = bucket_of(w, ref);
    int64_t bus = (int64_t)w->o.tl_bucket_s * 1000000;
    jw_begin(out);
    json_time(out, "ref", ref);
    jw_bool(out, "replay", ref < now_us);
    jw_key(out, "timeline");
    jw_begin(out);
    jw_u64(out, "buckets", w->o.tl_buckets);
    jw_u64(out, "bucket_s", w->o.tl_bucket_s);
    json_time(out, "start", (rb - (int64_t)w->o.tl_buckets + 1) * bus);
    json_tl(out, "tl", NULL, w->gtl, w->gtl_last, w->o.tl_buckets, rb);
    jw_end(out);
    jw_u64(out, "total", total);
    jw_u64(out, "offset", offset);
    jw_key(out, "hosts");
    jw_append(out, "[", 1);
    for (size_t i = offset; i < t.n; i++) {
        if (i > offset)
            jw_append(out, ",", 1);
        json_host(w, out, t.v[i], rb);
    }
    jw_append(out, "]", 1);
    jw_end(out);
    free(t.v);
    return out->err;
}

#define WEB_FACET_MAX 200

static int istr_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct web_istr *const *)a)->s, (*(const struct web_istr *const *)b)->s);
}

static void facet(struct jw *out, const struct htab *t, bool with_name)
{
    const struct web_istr **v = malloc((t->n ? t->n : 1) * sizeof(*v));
    size_t n = 0;
    if (!v) {
        out->err = TW_ENOMEM;
        return;
    }
    for (size_t i = 0; i < t->cap; i++)
        if (t->e[i].v)
            v[n++] = t->e[i].v;
    qsort(v, n, sizeof(*v), istr_cmp);
    jw_append(out, "[", 1);
    for (size_t i = 0; i < n && i < WEB_FACET_MAX; i++) {
        if (i)
            jw_append(out, ",", 1);
        if (with_name) {
            jw_begin(out);
            jw_str(out, "id", v[i]->s);
            jw_str(out, "name", v[i]->aux ? v[i]->aux : "");
            jw_end(out);
        } else {
            jw_quote(out, (const uint8_t *)v[i]->s, strlen(v[i]->s));
        }
    }
    jw_append(out, "]", 1);
    free(v);
}

int web_json_facets(const struct web_win *w, struct jw *out)
{
    out->html_safe = true;
    jw_begin(out);
    jw_key(out, "rules");
    facet(out, &w->rules, true);
    jw_key(out, "levels");
    facet(out, &w->levels, false);
    jw_key(out, "sensors");
    facet(out, &w->sensors, false);
    jw_end(out);
    return out->err;
}

int web_json_record(const struct web_win *w, const char *event_id, struct jw *out)
{
    const struct web_rec *r = web_win_find(w, event_id);
    if (!r)
        jw_append(out, "null", 4);
    else
        jw_append(out, r->raw, r->raw_len); /* validated by web_rec_parse */
    return out->err;
}

static void out_puts(struct jw *out, const char *s)
{
    jw_append(out, s, strlen(s));
}

static int html_row_cb(void *ctx, const char *key, size_t klen, char type, const char *val,
                       size_t vlen)
{
    struct jw *b = ctx;
    (void)type;
    out_puts(b, "<tr><th>");
    web_html_escape(b, key, klen);
    out_puts(b, "</th><td>");
    web_html_escape(b, val, vlen);
    out_puts(b, "</td></tr>\n");
    return b->err;
}

int web_html_record(const struct web_win *w, const char *event_id, struct jw *out)
{
    const struct web_rec *r = web_win_find(w, event_id);
    if (!r)
        return TW_EBAD;
    out_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<title>tunnelwatch record ");
    web_html_escape(out, r->event_id, strlen(r->event_id));
    out_puts(out, "</title><link rel=\"stylesheet\" href=\"/app.css\"></head>\n"
                  "<body class=\"record\"><h1>Record ");
    web_html_escape(out, r->event_id, strlen(r->event_id));
    out_puts(out, "</h1>\n<table class=\"kv\">\n");
    int rc = web_json_walk(r->raw, r->raw_len, html_row_cb, out);
    out_puts(out, "</table>\n<p><a href=\"/\">back to the live page</a></p></body></html>\n");
    return rc ? rc : out->err;
}
