/* fleet.c - shared attribution and dedup across sensors and capture workers (see fleet.h).
 *
 * Trade-offs. The fleet thread owns two hiredis connections: one for commands (SET, PUBLISH,
 * SCAN/GET at start, the claims) and one subscribed to the bindings channel, read with poll()
 * so that the thread also serves its outbound queue every 50 ms at most. Bindings are small
 * and idempotent, so a full queue drops them (counted): the alert is then raised by the
 * sensor that saw the answer, as before. Claims and relays carry alerts, so a full queue
 * hands them back to the recorder, which sends them itself: a record is never lost to the
 * fleet, at worst deduplicated only locally. The incident key is the readable triple
 * host|rule|name rather than a hash of it: no crafted name can collide with another incident
 * and hide it. Event ids are 33 characters ("%016x-%016x"), so putting the winner's id in
 * place of the local one is an in-place rewrite of the formatted record. The map from local
 * to winning ids is direct-mapped (bounded; a collision forgets the older loss, whose later
 * records then name the local incident: counted nowhere, harmless).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/fleet.h"
#include "tunnelwatch/tw.h"

#define ID_LEN      33   /* alert_ids_next: 16 hex, '-', 16 hex */
#define IDMAP_SLOTS 8192 /* lost incidents remembered */
#define LOAD_BATCH  256  /* keys per SCAN step at start */
#define OUT_STEP    64   /* outbound items per loop turn */

/* ---------- the binding's JSON ---------- */

/* A string member's value into out[cap]: it must be valid UTF-8 without NUL (the fields are
 * C strings, and a binding must format back to what was read) and fit. */
static int take_str(char *out, size_t cap, const char *v, size_t n)
{
    if (n >= cap || memchr(v, 0, n))
        return TW_EBAD;
    for (size_t i = 0, k; i < n; i += k)
        if ((k = (uint8_t)v[i] < 0x80 ? 1 : jw_utf8_len((const uint8_t *)v + i, n - i)) == 0)
            return TW_EBAD;
    memcpy(out, v, n);
    out[n] = '\0';
    return TW_OK;
}

/* ttl: a plain unsigned integer that fits 32 bits. */
static int take_ttl(uint32_t *out, const char *v, size_t n)
{
    uint64_t x = 0;
    if (n == 0 || n > 10)
        return TW_EBAD;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return TW_EBAD;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > UINT32_MAX)
        return TW_EBAD;
    *out = (uint32_t)x;
    return TW_OK;
}

struct bind_ctx {
    struct fleet_binding *b;
    unsigned seen; /* 1 ip, 2 name, 4 ttl */
};

/* One member of a binding (json_walk's callback); unknown members are skipped. */
static int bind_member(void *ctx, const char *key, size_t klen, char type, const char *v, size_t n)
{
    struct bind_ctx *bc = ctx;
    struct fleet_binding *b = bc->b;
#define KEY(s) (klen == sizeof(s) - 1 && !memcmp(key, s, klen))
    struct tw_addr *a = KEY("ip")         ? &b->ip
                        : KEY("client")   ? &b->client
                        : KEY("resolver") ? &b->resolver
                                          : NULL;
    char *f = KEY("name")     ? b->name
              : KEY("rule")   ? b->rule
              : KEY("sensor") ? b->sensor
              : KEY("origin") ? b->origin
                              : NULL;
    bool ttl = KEY("ttl");
#undef KEY
    if (type == 'a' || type == 'o')
        return TW_EBAD; /* a binding has no nested value: not one of ours */
    if (!a && !f && !ttl)
        return TW_OK;
    if (ttl) {
        bc->seen |= 4u;
        return type == 'n' ? take_ttl(&b->ttl_s, v, n) : TW_EBAD;
    }
    char s[TW_ADDR_STRLEN];
    if (type != 's')
        return TW_EBAD;
    if (f) {
        bc->seen |= f == b->name ? 2u : 0u;
        size_t cap = f == b->name     ? sizeof(b->name)
                     : f == b->rule   ? sizeof(b->rule)
                     : f == b->sensor ? sizeof(b->sensor)
                                      : sizeof(b->origin);
        return take_str(f, cap, v, n);
    }
    if (take_str(s, sizeof(s), v, n) != TW_OK ||
        (s[0] ? tw_addr_parse(s, a) != TW_OK : a == &b->ip))
        return TW_EBAD;
    bc->seen |= a == &b->ip ? 1u : 0u;
    return TW_OK;
}

int fleet_binding_parse(const char *s, size_t n, struct fleet_binding *b)
{
    memset(b, 0, sizeof(*b));
    struct bind_ctx bc = {b, 0};
    int rc = json_walk(s, n, FLEET_BINDING_MAX, JSON_WALK_STRICT, bind_member, &bc);
    if (rc == TW_ELIMIT || rc == TW_ENOMEM)
        return rc;
    if (rc != TW_OK || bc.seen != 7u || !b->name[0])
        return TW_EBAD;
    return TW_OK;
}

void fleet_binding_format(struct jw *w, const struct fleet_binding *b)
{
    jw_reset(w);
    jw_begin(w);
    jw_addr(w, "ip", &b->ip);
    jw_str(w, "name", b->name);
    jw_str(w, "rule", b->rule);
    jw_addr(w, "client", &b->client);
    jw_addr(w, "resolver", &b->resolver);
    jw_str(w, "sensor", b->sensor);
    jw_str(w, "origin", b->origin);
    jw_u64(w, "ttl", b->ttl_s);
    jw_end(w);
}

/* ---------- queues ---------- */

/* One engine's inbound bindings: a ring under a mutex, its fill also kept atomically so the
 * packet path can look without locking. */
struct inq {
    pthread_mutex_t mu;
    struct fleet_binding *ring;
    size_t head, n;
    size_t pending; /* __atomic copy of n */
};

enum out_type { OUT_BIND, OUT_CLAIM, OUT_RELAY };

/* One outbound item; key, a and b are owned (NULL for a binding). */
struct out {
    enum out_type type;
    struct fleet_binding b;
    char id[40];
    char *key, *a, *ub;
    size_t alen, blen;
};

struct idmap {
    char local[40], winner[40];
};

struct fleet {
    struct fleet_opts o;
    char *s_url, *s_user, *s_pass, *s_name, *s_bind, *s_chan, *s_inc;
    struct pub_url url;
    bool has_url;
    char nonce[17];
    struct inq *in; /* n_slots */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct out *ring; /* queue_max */
    size_t head, n;
    bool stopping, synced, started;
    pthread_t th;
    /* thread-owned */
    redisContext *cmd, *sub;
    int64_t next_try_ms, backoff_ms;
    int said; /* 0 nothing yet, 1 said ok, 2 said local-only */
    struct idmap *idmap;
    struct jw jw;
    struct fleet_stats st; /* __atomic fields */
    /* incidents claimed by the capture workers of this process (fleet_claim_local) */
    pthread_mutex_t claim_mu;
    struct claim *claims; /* CLAIM_SLOTS, when there is more than one engine */
    uint8_t claim_key[16];
};

#define ADD(f, field) __atomic_add_fetch(&(f)->st.field, 1, __ATOMIC_RELAXED)

/* The workers' claim table: open addressing over the key's hash, CLAIM_PROBE slots looked at;
 * an expired slot is reused, and when none is, the one expiring first gives way (counted).
 * A lost slot only means two workers may each raise that incident once: never a lost alert. */
#define CLAIM_SLOTS (1u << 16)
#define CLAIM_PROBE 16
struct claim {
    uint64_t hash;      /* 0: free */
    int64_t expires_us; /* packet time */
    char id[40];        /* the owner's event id */
};

bool fleet_claim_local(struct fleet *f, const char *key, const char *id, int64_t now_us,
                       char owner[40])
{
    if (!f || !f->claims)
        return true;
    uint64_t h = tw_siphash(f->claim_key, (const uint8_t *)key, strlen(key)) | 1;
    int64_t window = (int64_t)f->o.dedup_window_s * 1000000;
    pthread_mutex_lock(&f->claim_mu);
    struct claim *victim = NULL;
    bool won = true;
    for (uint32_t i = 0; i < CLAIM_PROBE; i++) {
        struct claim *c = &f->claims[(h + i) & (CLAIM_SLOTS - 1)];
        if (c->hash == h && c->expires_us > now_us) {
            memcpy(owner, c->id, 40);
            won = false;
            break;
        }
        if (!victim || c->hash == 0 || c->expires_us < victim->expires_us)
            victim = c;
    }
    if (won) {
        if (victim->hash && victim->expires_us > now_us)
            ADD(f, claims_evicted);
        victim->hash = h;
        victim->expires_us = now_us + window;
        snprintf(victim->id, sizeof(victim->id), "%s", id);
    }
    pthread_mutex_unlock(&f->claim_mu);
    return won;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool inq_push(struct fleet *f, int slot, const struct fleet_binding *b)
{
    struct inq *q = &f->in[slot];
    bool ok = false;
    pthread_mutex_lock(&q->mu);
    if (q->n < f->o.queue_max) {
        q->ring[(q->head + q->n) % f->o.queue_max] = *b;
        q->n++;
        __atomic_store_n(&q->pending, q->n, __ATOMIC_RELEASE);
        ok = true;
    }
    pthread_mutex_unlock(&q->mu);
    if (!ok)
        ADD(f, dropped);
    return ok;
}

/* A binding for every engine but `except` (-1: all of them). */
static void push_all(struct fleet *f, const struct fleet_binding *b, int except)
{
    for (int i = 0; i < f->o.n_slots; i++)
        if (i != except)
            (void)inq_push(f, i, b);
}

static int out_push(struct fleet *f, const struct out *o)
{
    int rc = TW_ELIMIT;
    pthread_mutex_lock(&f->mu);
    if (f->n < f->o.queue_max && !f->stopping) {
        f->ring[(f->head + f->n) % f->o.queue_max] = *o;
        f->n++;
        rc = TW_OK;
        pthread_cond_signal(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static bool out_pop(struct fleet *f, struct out *o)
{
    bool ok = false;
    pthread_mutex_lock(&f->mu);
    if (f->n) {
        *o = f->ring[f->head];
        f->head = (f->head + 1) % f->o.queue_max;
        f->n--;
        ok = true;
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

/* ---------- engine side ---------- */

void fleet_share(struct fleet *f, int slot, const struct fleet_binding *b)
{
    if (!f || slot < 0 || slot >= f->o.n_slots)
        return;
    ADD(f, shared);
    push_all(f, b, slot); /* the other capture workers: at once, without Redis */
    if (!f->has_url)
        return;
    struct out o;
    memset(&o, 0, sizeof(o));
    o.type = OUT_BIND;
    o.b = *b;
    snprintf(o.b.sensor, sizeof(o.b.sensor), "%s", f->o.sensor_name);
    memcpy(o.b.origin, f->nonce, sizeof(o.b.origin));
    if (out_push(f, &o) != TW_OK)
        ADD(f, dropped);
}

bool fleet_pending(struct fleet *f, int slot)
{
    return f && slot >= 0 && slot < f->o.n_slots &&
           __atomic_load_n(&f->in[slot].pending, __ATOMIC_ACQUIRE) > 0;
}

size_t fleet_drain(struct fleet *f, int slot, void (*fn)(void *ud, const struct fleet_binding *b),
                   void *ud)
{
    if (!fleet_pending(f, slot))
        return 0;
    struct inq *q = &f->in[slot];
    size_t done = 0;
    static __thread struct fleet_binding b;
    for (size_t k = 0; k < f->o.queue_max; k++) {
        pthread_mutex_lock(&q->mu);
        bool got = q->n > 0;
        if (got) {
            b = q->ring[q->head];
            q->head = (q->head + 1) % f->o.queue_max;
            q->n--;
            __atomic_store_n(&q->pending, q->n, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&q->mu);
        if (!got)
            break;
        fn(ud, &b);
        done++;
    }
    __atomic_add_fetch(&f->st.applied, done, __ATOMIC_RELAXED);
    return done;
}

/* ---------- recorder side ---------- */

bool fleet_dedups(const struct fleet *f)
{
    return f && f->has_url && f->o.dedup && f->o.pub;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void out_free(struct out *o)
{
    free(o->key);
    free(o->a);
    free(o->ub);
}

int fleet_claim(struct fleet *f, const char *key, const char *local_id, const char *raised,
                size_t rlen, const char *update, size_t ulen)
{
    if (!fleet_dedups(f))
        return TW_ELIMIT;
    struct out o;
    memset(&o, 0, sizeof(o));
    o.type = OUT_CLAIM;
    snprintf(o.id, sizeof(o.id), "%s", local_id);
    o.key = dup_n(key, strlen(key));
    o.a = dup_n(raised, rlen);
    o.alen = rlen;
    o.ub = dup_n(update, ulen);
    o.blen = ulen;
    if (!o.key || !o.a || !o.ub || out_push(f, &o) != TW_OK) {
        out_free(&o);
        ADD(f, bypassed);
        return TW_ELIMIT;
    }
    return TW_OK;
}

int fleet_relay(struct fleet *f, const char *local_id, const char *rec, size_t len)
{
    if (!fleet_dedups(f))
        return TW_ELIMIT;
    struct out o;
    memset(&o, 0, sizeof(o));
    o.type = OUT_RELAY;
    snprintf(o.id, sizeof(o.id), "%s", local_id);
    o.a = dup_n(rec, len);
    o.alen = len;
    if (!o.a || out_push(f, &o) != TW_OK) {
        out_free(&o);
        ADD(f, bypassed);
        return TW_ELIMIT;
    }
    return TW_OK;
}

/* ---------- lost incidents ---------- */

static size_t id_slot(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < ID_LEN && id[i]; i++)
        h = (h ^ (uint8_t)id[i]) * 1099511628211ull;
    return (size_t)(h % IDMAP_SLOTS);
}

static const char *winner_of(struct fleet *f, const char *local)
{
    struct idmap *m = &f->idmap[id_slot(local)];
    return !strcmp(m->local, local) ? m->winner : NULL;
}

/* An id as alert_ids_next writes it: only such an id may replace one in place. */
static bool id_ok(const char *s, size_t n)
{
    if (n != ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (i == 16 ? s[i] != '-' : !strchr("0123456789abcdef", s[i]) || !s[i])
            return false;
    return true;
}

/* Every occurrence of id `from` in rec becomes `to` (both ID_LEN long). */
static void swap_id(char *rec, size_t len, const char *from, const char *to)
{
    char *p = rec, *end = rec + len;
    while ((p = memmem(p, (size_t)(end - p), from, ID_LEN)) != NULL) {
        memcpy(p, to, ID_LEN);
        p += ID_LEN;
    }
}

/* ---------- Redis ---------- */

static void say(struct fleet *f, bool ok, const char *why)
{
    int now = ok ? 1 : 2;
    if (f->said == now || !f->o.log)
        return;
    f->said = now;
    char where[300];
    if (f->url.is_unix)
        snprintf(where, sizeof(where), "%s", f->url.path);
    else
        snprintf(where, sizeof(where), "%s:%d", f->url.host, f->url.port);
    if (ok)
        fprintf(f->o.log, "tunnelwatch: fleet: connected to redis at %s (shared attribution%s)\n",
                where, fleet_dedups(f) ? " and dedup" : "");
    else
        fprintf(f->o.log,
                "tunnelwatch: fleet: redis at %s unreachable (%s): local-only (attribution and "
                "dedup within this sensor) until it is back\n",
                where, why);
}

static void drop_conns(struct fleet *f, const char *why)
{
    if (f->cmd || f->sub)
        ADD(f, errors);
    redisFree(f->cmd);
    redisFree(f->sub);
    f->cmd = f->sub = NULL;
    __atomic_store_n(&f->st.ok, false, __ATOMIC_RELEASE);
    f->next_try_ms = mono_ms() + f->backoff_ms;
    f->backoff_ms = f->backoff_ms * 2 > 30000 ? 30000 : f->backoff_ms * 2;
    say(f, false, why);
}

/* A command whose reply must not be an error. */
static bool cmd_ok(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        freeReplyObject(r);
    return ok;
}

static redisContext *open_conn(struct fleet *f, const char **why)
{
    struct timeval tv = {f->o.timeout_ms / 1000, (f->o.timeout_ms % 1000) * 1000};
    redisContext *c = f->url.is_unix ? redisConnectUnixWithTimeout(f->url.path, tv)
                                     : redisConnectWithTimeout(f->url.host, f->url.port, tv);
    if (!c || c->err) {
        *why = c ? strerror(c->err == REDIS_ERR_IO ? errno : ECONNREFUSED) : "out of memory";
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    char db[16];
    snprintf(db, sizeof(db), "%d", f->url.db);
    const char *auth[3] = {"AUTH", f->url.user, f->url.password};
    bool ok =
        !f->url.password[0] ||
        (f->url.user[0] ? cmd_ok(c, 3, auth) : cmd_ok(c, 2, (const char *[]){"AUTH", auth[2]}));
    if (ok && f->url.db)
        ok = cmd_ok(c, 2, (const char *[]){"SELECT", db});
    if (!ok) {
        *why = "AUTH or SELECT refused";
        redisFree(c);
        return NULL;
    }
    return c;
}

/* A binding received from Redis: refused, ignored (ours) or handed to every engine. */
static void received(struct fleet *f, const char *s, size_t n, int64_t pttl_ms)
{
    struct fleet_binding b;
    ADD(f, received);
    if (fleet_binding_parse(s, n, &b) != TW_OK) {
        ADD(f, bad);
        return;
    }
    if (!strcmp(b.origin, f->nonce)) {
        ADD(f, own);
        return;
    }
    if (pttl_ms > 0 && (uint64_t)(pttl_ms + 999) / 1000 < b.ttl_s)
        b.ttl_s = (uint32_t)((pttl_ms + 999) / 1000); /* what is left of it */
    if (b.ttl_s > f->o.ttl_cap_s)
        b.ttl_s = f->o.ttl_cap_s;
    if (!b.sensor[0])
        snprintf(b.sensor, sizeof(b.sensor), "?"); /* "" means this process */
    push_all(f, &b, -1);
}

/* The values of one SCAN step's keys, each with its remaining time to live. */
static bool load_keys(struct fleet *f, const redisReply *keys)
{
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        redisAppendCommand(f->cmd, "GET %b", k->str, (size_t)k->len);
        redisAppendCommand(f->cmd, "PTTL %b", k->str, (size_t)k->len);
    }
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *v = NULL, *t = NULL;
        if (redisGetReply(f->cmd, (void **)&v) != REDIS_OK ||
            redisGetReply(f->cmd, (void **)&t) != REDIS_OK) {
            if (v)
                freeReplyObject(v);
            return false;
        }
        if (v->type == REDIS_REPLY_STRING && t->type == REDIS_REPLY_INTEGER && t->integer > 0)
            received(f, v->str, (size_t)v->len, t->integer);
        freeReplyObject(v);
        freeReplyObject(t);
    }
    return true;
}

/* The bindings already in Redis, at most queue_max of them (the engines' queues' size). */
static bool load_all(struct fleet *f)
{
    char cursor[32] = "0", match[300];
    snprintf(match, sizeof(match), "%s*", f->o.bind_prefix);
    size_t loaded = 0;
    do {
        redisReply *r =
            redisCommand(f->cmd, "SCAN %s MATCH %s COUNT %d", cursor, match, LOAD_BATCH);
        bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                  r->element[0]->type == REDIS_REPLY_STRING &&
                  r->element[0]->len < (int)sizeof(cursor) &&
                  r->element[1]->type == REDIS_REPLY_ARRAY;
        for (size_t i = 0; ok && i < r->element[1]->elements; i++)
            ok = r->element[1]->element[i]->type == REDIS_REPLY_STRING;
        if (ok) {
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            loaded += r->element[1]->elements;
            ok = load_keys(f, r->element[1]);
        }
        if (r)
            freeReplyObject(r);
        if (!ok)
            return false;
    } while (strcmp(cursor, "0") && loaded < f->o.queue_max);
    return true;
}

static void try_connect(struct fleet *f)
{
    const char *why = "";
    f->cmd = open_conn(f, &why);
    f->sub = f->cmd ? open_conn(f, &why) : NULL;
    bool ok = f->sub && cmd_ok(f->sub, 2, (const char *[]){"SUBSCRIBE", f->o.channel});
    if (ok && !load_all(f)) {
        ok = false;
        why = "loading the bindings failed";
    }
    if (!ok) {
        drop_conns(f, f->cmd && f->sub ? "SUBSCRIBE refused" : why);
    } else {
        f->backoff_ms = 1000;
        __atomic_store_n(&f->st.ok, true, __ATOMIC_RELEASE);
        say(f, true, NULL);
    }
    pthread_mutex_lock(&f->mu);
    f->synced = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void publish_binding(struct fleet *f, const struct fleet_binding *b)
{
    if (!f->cmd)
        return;
    char ip[TW_ADDR_STRLEN], ex[16];
    fleet_binding_format(&f->jw, b);
    if (f->jw.err)
        return;
    tw_addr_str(&b->ip, ip, sizeof(ip));
    snprintf(ex, sizeof(ex), "%u", b->ttl_s ? b->ttl_s : 1);
    redisAppendCommand(f->cmd, "SET %s%s %b EX %s", f->o.bind_prefix, ip, f->jw.buf, f->jw.len, ex);
    redisAppendCommand(f->cmd, "PUBLISH %s %b", f->o.channel, f->jw.buf, f->jw.len);
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(f->cmd, (void **)&r) != REDIS_OK) {
            drop_conns(f, "connection lost");
            return;
        }
        if (r->type == REDIS_REPLY_ERROR)
            ADD(f, errors);
        else if (i == 0)
            ADD(f, published);
        freeReplyObject(r);
    }
}

/* SET NX of the incident key: NULL when this sensor's alert stands (won, or Redis could not
 * say), else the winner's id (into winner). */
static const char *claim(struct fleet *f, const struct out *o, char winner[40])
{
    if (!f->cmd)
        return NULL;
    char ex[16];
    snprintf(ex, sizeof(ex), "%u", f->o.dedup_window_s ? f->o.dedup_window_s : 1);
    for (int attempt = 0; attempt < 2; attempt++) {
        redisReply *r =
            redisCommand(f->cmd, "SET %s%s %s NX EX %s", f->o.incident_prefix, o->key, o->id, ex);
        if (!r) {
            drop_conns(f, "connection lost");
            return NULL;
        }
        bool won = r->type != REDIS_REPLY_NIL;
        freeReplyObject(r);
        if (won)
            return NULL; /* OK, or an error reply: the local alert stands */
        r = redisCommand(f->cmd, "GET %s%s", f->o.incident_prefix, o->key);
        if (!r) {
            drop_conns(f, "connection lost");
            return NULL;
        }
        bool got = r->type == REDIS_REPLY_STRING && id_ok(r->str, (size_t)r->len);
        if (got)
            memcpy(winner, r->str, ID_LEN + 1);
        int type = r->type;
        freeReplyObject(r);
        if (got)
            return strcmp(winner, o->id) ? winner : NULL;
        if (type != REDIS_REPLY_NIL)
            return NULL; /* not an id we can put in place: keep ours */
        /* expired between the two commands: try once more */
    }
    return NULL;
}

static void serve(struct fleet *f, struct out *o)
{
    char winner[40];
    const char *w;
    switch (o->type) {
    case OUT_BIND:
        publish_binding(f, &o->b);
        break;
    case OUT_CLAIM:
        if ((w = claim(f, o, winner)) != NULL) {
            struct idmap *m = &f->idmap[id_slot(o->id)];
            memcpy(m->local, o->id, sizeof(m->local));
            memcpy(m->winner, w, sizeof(m->winner));
            swap_id(o->ub, o->blen, o->id, w);
            ADD(f, claims_lost);
            (void)pub_enqueue(f->o.pub, o->ub, o->blen);
        } else {
            ADD(f, claims_won);
            (void)pub_enqueue(f->o.pub, o->a, o->alen);
        }
        break;
    case OUT_RELAY:
        if ((w = winner_of(f, o->id)) != NULL)
            swap_id(o->a, o->alen, o->id, w);
        (void)pub_enqueue(f->o.pub, o->a, o->alen);
        break;
    }
    out_free(o);
}

/* Up to max outbound items; returns how many. */
static size_t run_out(struct fleet *f, size_t max)
{
    size_t k = 0;
    struct out o;
    while (k < max && out_pop(f, &o)) {
        serve(f, &o);
        k++;
    }
    return k;
}

/* Messages already read from the subscription, then at most wait_ms for more. */
static void read_sub(struct fleet *f, int wait_ms)
{
    for (int round = 0; round < 2 && f->sub; round++) {
        for (int k = 0; k < 1024; k++) {
            redisReply *r = NULL;
            if (redisGetReplyFromReader(f->sub, (void **)&r) != REDIS_OK) {
                drop_conns(f, "subscription lost");
                return;
            }
            if (!r)
                break;
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                r->element[0]->type == REDIS_REPLY_STRING &&
                !strcmp(r->element[0]->str, "message") && r->element[2]->type == REDIS_REPLY_STRING)
                received(f, r->element[2]->str, (size_t)r->element[2]->len, 0);
            freeReplyObject(r);
        }
        if (round == 1)
            break;
        struct pollfd pfd = {f->sub->fd, POLLIN, 0};
        if (poll(&pfd, 1, wait_ms) <= 0)
            return;
        if (redisBufferRead(f->sub) != REDIS_OK) {
            drop_conns(f, "subscription lost");
            return;
        }
    }
}

static void wait_out(struct fleet *f, int wait_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)wait_ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&f->mu);
    if (!f->n && !f->stopping)
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    pthread_mutex_unlock(&f->mu);
}

static void *fleet_main(void *arg)
{
    struct fleet *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stopping = f->stopping;
        pthread_mutex_unlock(&f->mu);
        if (stopping)
            break;
        if (!f->cmd && mono_ms() >= f->next_try_ms)
            try_connect(f);
        size_t did = run_out(f, OUT_STEP);
        if (f->sub)
            read_sub(f, did ? 0 : 50);
        else if (!did)
            wait_out(f, 50);
    }
    run_out(f, SIZE_MAX); /* what is left goes out (over Redis while it answers) */
    redisFree(f->cmd);
    redisFree(f->sub);
    f->cmd = f->sub = NULL;
    return NULL;
}

/* ---------- lifecycle ---------- */

static char *dup_or(const char *s, const char *def)
{
    return strdup(s && s[0] ? s : def);
}

static bool copy_opts(struct fleet *f, const struct fleet_opts *o)
{
    f->o = *o;
    f->s_name = dup_or(o->sensor_name, "sensor");
    f->s_bind = dup_or(o->bind_prefix, "tunnelwatch:bind:");
    f->s_chan = dup_or(o->channel, "tunnelwatch:bindings");
    f->s_inc = dup_or(o->incident_prefix, "tunnelwatch:incident:");
    f->o.sensor_name = f->s_name;
    f->o.bind_prefix = f->s_bind;
    f->o.channel = f->s_chan;
    f->o.incident_prefix = f->s_inc;
    f->o.url = f->o.user = f->o.password = NULL; /* parsed into f->url */
    if (!f->o.queue_max)
        f->o.queue_max = 4096;
    if (f->o.timeout_ms <= 0)
        f->o.timeout_ms = 1000;
    if (f->o.n_slots < 1)
        f->o.n_slots = 1;
    if (!f->o.ttl_cap_s)
        f->o.ttl_cap_s = 86400;
    return f->s_name && f->s_bind && f->s_chan && f->s_inc;
}

static bool alloc_queues(struct fleet *f)
{
    f->in = calloc((size_t)f->o.n_slots, sizeof(*f->in));
    f->ring = calloc(f->o.queue_max, sizeof(*f->ring));
    f->idmap = f->has_url ? calloc(IDMAP_SLOTS, sizeof(*f->idmap)) : NULL;
    f->claims = f->o.n_slots > 1 ? calloc(CLAIM_SLOTS, sizeof(*f->claims)) : NULL;
    if (!f->in || !f->ring || (f->has_url && !f->idmap) || (f->o.n_slots > 1 && !f->claims))
        return false;
    for (int i = 0; i < f->o.n_slots; i++) {
        pthread_mutex_init(&f->in[i].mu, NULL);
        f->in[i].ring = calloc(f->o.queue_max, sizeof(*f->in[i].ring));
        if (!f->in[i].ring)
            return false;
    }
    return true;
}

static bool parse_url(struct fleet *f, const struct fleet_opts *o, char *err, size_t errlen)
{
    f->has_url = o->url && o->url[0] && strcmp(o->url, "none");
    if (!f->has_url)
        return true;
    if (pub_parse_url(o->url, &f->url, err, errlen) != TW_OK)
        return false;
    if (o->user)
        snprintf(f->url.user, sizeof(f->url.user), "%s", o->user);
    if (o->password)
        snprintf(f->url.password, sizeof(f->url.password), "%s", o->password);
    return true;
}

struct fleet *fleet_new(const struct fleet_opts *o, char *err, size_t errlen)
{
    struct fleet *f = calloc(1, sizeof(*f));
    if (errlen)
        err[0] = '\0';
    if (!f) {
        snprintf(err, errlen, "fleet: out of memory");
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->claim_mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    jw_init(&f->jw, FLEET_BINDING_MAX);
    if (getrandom(f->claim_key, sizeof(f->claim_key), 0) != (ssize_t)sizeof(f->claim_key))
        memset(f->claim_key, 0x5a, sizeof(f->claim_key)); /* a worse hash, still correct */
    f->backoff_ms = 1000;
    uint8_t r[8];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        memcpy(r, &(uint64_t){(uint64_t)mono_ms() ^ (uint64_t)(uintptr_t)f}, sizeof(r));
    for (int i = 0; i < 8; i++)
        snprintf(f->nonce + 2 * i, 3, "%02x", r[i]);
    if (!parse_url(f, o, err, errlen) || !copy_opts(f, o) || !alloc_queues(f)) {
        if (!err[0])
            snprintf(err, errlen, "fleet: out of memory");
        fleet_free(f);
        return NULL;
    }
    return f;
}

int fleet_start(struct fleet *f)
{
    if (!f || !f->has_url)
        return TW_OK;
    if (tw_thread_start(&f->th, "tw-fleet", fleet_main, f, false) != 0)
        return TW_ENOMEM;
    f->started = true;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns =
        ts.tv_nsec + (int64_t)(f->o.sync_timeout_ms > 0 ? f->o.sync_timeout_ms : 0) * 1000000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&f->mu);
    while (!f->synced)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&f->mu);
    return TW_OK;
}

void fleet_stop(struct fleet *f)
{
    if (!f || !f->started)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL);
    f->started = false;
}

void fleet_free(struct fleet *f)
{
    if (!f)
        return;
    fleet_stop(f);
    struct out o;
    while (f->ring && out_pop(f, &o))
        out_free(&o);
    for (int i = 0; f->in && i < f->o.n_slots; i++) {
        free(f->in[i].ring);
        pthread_mutex_destroy(&f->in[i].mu);
    }
    free(f->in);
    free(f->ring);
    free(f->idmap);
    free(f->claims);
    pthread_mutex_destroy(&f->claim_mu);
    jw_free(&f->jw);
    free(f->s_name);
    free(f->s_bind);
    free(f->s_chan);
    free(f->s_inc);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

const char *fleet_state(struct fleet *f)
{
    if (!f || !f->has_url)
        return "in-process";
    return __atomic_load_n(&f->st.ok, __ATOMIC_ACQUIRE) ? "ok" : "local-only";
}

void fleet_get_stats(struct fleet *f, struct fleet_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!f)
        return;
    uint64_t *dst = &st->shared;
    const uint64_t *src = &f->st.shared;
    for (size_t i = 0; i < (offsetof(struct fleet_stats, ok) / sizeof(uint64_t)); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    st->ok = __atomic_load_n(&f->st.ok, __ATOMIC_ACQUIRE);
}
