/* publish.c - Redis publisher thread with a bounded queue and an on-disk outage spool.
 *
 * Trade-offs. The capture thread only ever allocates, copies and links a record under a mutex
 * held for O(1) list operations; every disk and network operation happens on the publisher
 * thread, so a paused or dead Redis, or a slow disk, cannot stall capture. The price is a
 * second memory list (spill) between the queue and the spool: the publisher thread drains it
 * between Redis round trips, each bounded by timeout_ms, and past spill_max records are
 * dropped (counted). Delivery is pipelined (one command per record and mode, then all replies)
 * and a record is released only when every configured mode acknowledged it, so a failure
 * mid-batch re-sends the unacknowledged tail: at-least-once, never at-most-once. Ordering:
 * once the queue overflows, its content and all newer records go through the spool until the
 * spool is empty again, so Redis sees records in enqueue order, across restarts too.
 * pub_opts_from_cfg() maps the configuration's redis section to pub_opts, so that the sensor
 * and the tests build the publisher the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tunnelwatch/cfg.h"
#include "tunnelwatch/publish.h"
#include "tunnelwatch/rcluster.h"
#include "tunnelwatch/spool.h"
#include "tunnelwatch/tw.h"

#define HB_FIELDS_MAX    256 /* heartbeat lines taken from pub_set_heartbeat */
#define DROP_LOG_MS      10000
#define IDLE_WAIT_MAX_MS 1000
#define PUB_LINGER_MS    5    /* an idle publisher woken by a record waits this long ... */
#define PUB_LINGER_RECS  256  /* ... unless this many are queued already */
#define GIVE_BACK_MIN    1024 /* a queue this long since the last give_back: a backlog */

struct qrec {
    struct qrec *next;
    size_t len;
    char data[];
};

struct rlist {
    struct qrec *head, *tail;
    size_t n;
};

/* A value waiting for SET (pub_put_blob). */
struct pblob {
    struct pblob *next;
    char *key; /* owned */
    uint32_t ttl_s;
    size_t n;
    uint8_t data[];
};

struct pub {
    struct pub_opts o;        /* strings point into the copies below */
    struct hostport *sent;    /* Sentinel: the sentinels (owned), n_sent of them */
    size_t n_sent, sent_next; /* sent_next: the one that answered last */
    char *s_master;
    struct hostport master;      /* the master the sentinels named last ("" before) */
    int64_t next_check_ms;       /* when to ask the sentinels again while connected */
    struct hostport cur;         /* the server p->c reaches ("" for a unix socket) */
    bool cluster_known, cluster; /* Redis Cluster: asked once (INFO cluster) */
    struct rc_map *map;          /* the last CLUSTER SLOTS, while in a cluster (owned) */
    uint16_t data_slot, hb_slot; /* slots of the records' key and of the heartbeat's */
    char *s_url, *s_stream, *s_channel, *s_list, *s_spool, *s_sensor, *s_hbprefix;
    struct pub_url url;
    char where[200]; /* URL without credentials, for messages */
    struct spool *spool;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu: */
    struct rlist q, spill;
    bool spilling; /* newer records go to the spool until it has drained */
    bool stopping;
    int64_t stop_deadline_ms;
    char *hb_fields;
    struct pub_stats st;
    uint64_t spool_dropped;
    uint64_t queued_hw;  /* most records held at once since the last give_back */
    bool trim_due;       /* reconnected since the last give_back */
    struct pblob *blobs; /* pub_put_blob's, newest first */
    size_t n_blobs;

    pthread_t th;
    bool started;

    /* publisher thread only: */
    redisContext *c;
    bool ever_connected;
    int backoff_ms;
    int64_t retry_at_ms;
    unsigned rnd;
    char last_err[512];
    int64_t next_hb_ms;
    int64_t drop_log_ms;
    uint64_t drop_logged;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- URL ---------------------------------------------------------------------------- */

static int parse_int(const char *s, size_t n, long lo, long hi, long *out)
{
    char buf[24];
    if (n == 0 || n >= sizeof(buf))
        return TW_EBAD;
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return TW_EBAD;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return TW_EBAD;
    *out = v;
    return TW_OK;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Copies s[0..n) into out, decoding %XX (RFC 3986 section 2.1). */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return TW_EBAD;
            ch = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        }
        if (o + 1 >= outlen)
            return TW_ELIMIT;
        out[o++] = ch;
    }
    out[o] = '\0';
    return TW_OK;
}

/* unix:///path.sock[?db=N] (url still has its unix:// prefix, for messages). */
static int parse_unix_url(const char *url, struct pub_url *u, char *err, size_t errlen)
{
    const char *path = url + 7, *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    long v;
    if (plen == 0 || path[0] != '/') {
        snprintf(err, errlen, "Redis URL %s: unix:// needs an absolute path (unix:///x.sock)", url);
        return TW_ECONF;
    }
    /* sun_path is 108 bytes with its NUL: a longer path cannot be connected to. */
    if (plen >= sizeof(u->path)) {
        snprintf(err, errlen, "Redis URL: socket path longer than %zu bytes", sizeof(u->path) - 1);
        return TW_ECONF;
    }
    memcpy(u->path, path, plen);
    u->is_unix = true;
    if (q) {
        if (strncmp(q, "?db=", 4) != 0 || parse_int(q + 4, strlen(q + 4), 0, INT_MAX, &v)) {
            snprintf(err, errlen, "Redis URL %s: only ?db=N is understood after the path", url);
            return TW_ECONF;
        }
        u->db = (int)v;
    }
    return TW_OK;
}

/* The userinfo rest[0..at): user:password, :password, or (older Redis habit) just the
 * password. */
static int parse_userinfo(const char *rest, const char *at, struct pub_url *u, char *err,
                          size_t errlen)
{
    const char *colon = memchr(rest, ':', (size_t)(at - rest));
    const char *pw = colon ? colon + 1 : rest;
    if (colon && pct_decode(rest, (size_t)(colon - rest), u->user, sizeof(u->user))) {
        snprintf(err, errlen, "Redis URL: bad or too long user name");
        return TW_ECONF;
    }
    if (pct_decode(pw, (size_t)(at - pw), u->password, sizeof(u->password))) {
        snprintf(err, errlen, "Redis URL: bad or too long password"); /* never echo it */
        return TW_ECONF;
    }
    return TW_OK;
}

/* The host (a [v6] loses its brackets). Returns what follows it, or NULL after a problem. */
static const char *parse_host(const char *hs, struct pub_url *u, char *err, size_t errlen)
{
    const char *he, *rest;
    if (*hs == '[') {
        he = strchr(hs, ']');
        if (!he) {
            snprintf(err, errlen, "Redis URL: unclosed [ in host");
            return NULL;
        }
        hs++;
        rest = he + 1;
    } else {
        he = hs + strcspn(hs, ":/");
        rest = he;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof(u->host)) {
        snprintf(err, errlen, "Redis URL: missing or too long host");
        return NULL;
    }
    memcpy(u->host, hs, (size_t)(he - hs));
    return rest;
}

/* What may follow the host: [:port][/[db]]. */
static int parse_port_db(const char *rest, struct pub_url *u, char *err, size_t errlen)
{
    long v;
    if (*rest == ':') {
        rest++;
        size_t n = strcspn(rest, "/");
        if (parse_int(rest, n, 1, 65535, &v)) {
            snprintf(err, errlen, "Redis URL: port must be 1..65535");
            return TW_ECONF;
        }
        u->port = (int)v;
        rest += n;
    }
    if (*rest == '/') {
        rest++;
        if (*rest) {
            if (parse_int(rest, strlen(rest), 0, INT_MAX, &v)) {
                snprintf(err, errlen, "Redis URL: database after / must be a number");
                return TW_ECONF;
            }
            u->db = (int)v;
        }
    } else if (*rest) {
        snprintf(err, errlen, "Redis URL: unexpected text after host");
        return TW_ECONF;
    }
    return TW_OK;
}

int pub_parse_url(const char *url, struct pub_url *u, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (!url || !*url) {
        snprintf(err, errlen, "empty Redis URL");
        return TW_ECONF;
    }
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix_url(url, u, err, errlen);
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen,
                 "Redis URL: rediss:// (TLS) is not supported; use redis:// or unix://");
        return TW_ECONF;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen,
                 "Redis URL must start with redis:// or unix:// "
                 "(redis://[user:password@]host:port/db, unix:///path.sock?db=N)");
        return TW_ECONF;
    }
    const char *rest = url + 8, *at = strrchr(rest, '@');
    if (at) {
        if (parse_userinfo(rest, at, u, err, errlen) != TW_OK)
            return TW_ECONF;
        rest = at + 1;
    }
    rest = parse_host(rest, u, err, errlen);
    if (!rest)
        return TW_ECONF;
    return parse_port_db(rest, u, err, errlen);
}

/* ---- lists ---------------------------------------------------------------------------- */

static void list_push(struct rlist *l, struct qrec *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

/* Appends all of b to a; b becomes empty. O(1). */
static void list_cat(struct rlist *a, struct rlist *b)
{
    if (!b->head)
        return;
    if (a->tail)
        a->tail->next = b->head;
    else
        a->head = b->head;
    a->tail = b->tail;
    a->n += b->n;
    *b = (struct rlist){0};
}

static void list_free(struct rlist *l)
{
    for (struct qrec *r = l->head, *nx; r; r = nx) {
        nx = r->next;
        free(r);
    }
    *l = (struct rlist){0};
}

/* ---- construction --------------------------------------------------------------------- */

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && *s ? s : dflt);
}

/* Applies the per-run overrides of the URL's credentials and names the target for
 * messages (never with its credentials). */
static void set_target(struct pub *p, const struct pub_opts *opts)
{
    if (opts->user)
        snprintf(p->url.user, sizeof(p->url.user), "%s", opts->user);
    if (opts->password)
        snprintf(p->url.password, sizeof(p->url.password), "%s", opts->password);
    if (p->url.is_unix)
        snprintf(p->where, sizeof(p->where), "unix:%.150s db %d", p->url.path, p->url.db);
    else
        snprintf(p->where, sizeof(p->where), "%.150s:%d db %d", p->url.host, p->url.port,
                 p->url.db);
}

/* Copies every string option (defaults for the unset names) and points p->o at the copies;
 * the credentials stay in p->url only. TW_OK or TW_ENOMEM. */
static int copy_strings(struct pub *p, const struct pub_opts *opts)
{
    p->s_url = strdup(opts->url);
    p->s_stream = dup_or(opts->stream_key, "tunnelwatch:alerts");
    p->s_channel = dup_or(opts->channel_key, "tunnelwatch:alerts");
    p->s_list = dup_or(opts->list_key, "tunnelwatch:alerts:list");
    p->s_sensor = dup_or(opts->sensor_name, "sensor");
    p->s_hbprefix = dup_or(opts->heartbeat_prefix, "tunnelwatch:sensor:");
    p->s_spool = opts->spool_dir && *opts->spool_dir ? strdup(opts->spool_dir) : NULL;
    if (!p->s_url || !p->s_stream || !p->s_channel || !p->s_list || !p->s_sensor ||
        !p->s_hbprefix || (opts->spool_dir && *opts->spool_dir && !p->s_spool))
        return TW_ENOMEM;
    p->o.url = p->s_url;
    p->o.stream_key = p->s_stream;
    p->o.channel_key = p->s_channel;
    p->o.list_key = p->s_list;
    p->o.sensor_name = p->s_sensor;
    p->o.heartbeat_prefix = p->s_hbprefix;
    p->o.spool_dir = p->s_spool;
    p->o.user = p->o.password = NULL; /* kept in p->url only */
    return TW_OK;
}

/* The defaults documented in struct pub_opts, for every numeric option left at 0. */
static void apply_defaults(struct pub_opts *o)
{
    if (!o->modes)
        o->modes = PUB_MODE_STREAM;
    if (o->stream_maxlen <= 0)
        o->stream_maxlen = 100000;
    if (!o->queue_max)
        o->queue_max = 10000;
    if (!o->spill_max)
        o->spill_max = o->queue_max > 16384 ? o->queue_max : 16384;
    if (!o->spool_max_bytes)
        o->spool_max_bytes = 256ull << 20;
    if (o->timeout_ms <= 0)
        o->timeout_ms = 2000;
    if (o->batch <= 0)
        o->batch = 256;
    if (o->heartbeat_s < 0)
        o->heartbeat_s = 0;
    if (o->backoff_min_ms <= 0)
        o->backoff_min_ms = 1000;
    if (o->backoff_max_ms <= 0)
        o->backoff_max_ms = 60000;
    if (o->backoff_max_ms < o->backoff_min_ms)
        o->backoff_max_ms = o->backoff_min_ms;
}

/* "host:port" or "[v6]:port" into hp. TW_OK or TW_ECONF. */
static int parse_hostport(const char *s, struct hostport *hp)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return TW_ECONF;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (s[0] == '[') {
        if (n < 3 || colon[-1] != ']')
            return TW_ECONF;
        h++;
        n -= 2;
    }
    long port;
    if (n >= sizeof(hp->host) || parse_int(colon + 1, strlen(colon + 1), 1, 65535, &port) != TW_OK)
        return TW_ECONF;
    memcpy(hp->host, h, n);
    hp->host[n] = '\0';
    hp->port = (int)port;
    return TW_OK;
}

/* The sentinels and the master's name, copied; the URL's host is then only a fallback name
 * in messages. TW_OK, TW_ECONF (bad item, no name) or TW_ENOMEM, with the reason in err. */
static int copy_sentinels(struct pub *p, const struct pub_opts *opts, char *err, size_t errlen)
{
    p->o.sentinels = NULL;
    p->o.master_name = NULL;
    if (!opts->n_sentinels)
        return TW_OK;
    if (!opts->sentinels || !opts->master_name || !*opts->master_name) {
        snprintf(err, errlen, "redis: sentinels need a master name");
        return TW_ECONF;
    }
    p->sent = calloc(opts->n_sentinels, sizeof(*p->sent));
    p->s_master = strdup(opts->master_name);
    if (!p->sent || !p->s_master) {
        snprintf(err, errlen, "out of memory");
        return TW_ENOMEM;
    }
    for (size_t i = 0; i < opts->n_sentinels; i++)
        if (!opts->sentinels[i] || parse_hostport(opts->sentinels[i], &p->sent[i]) != TW_OK) {
            snprintf(err, errlen, "redis: sentinel \"%.200s\": not host:port",
                     opts->sentinels[i] ? opts->sentinels[i] : "");
            return TW_ECONF;
        }
    p->n_sent = opts->n_sentinels;
    p->o.master_name = p->s_master;
    p->o.n_sentinels = p->n_sent;
    if (p->o.wait_timeout_ms <= 0)
        p->o.wait_timeout_ms = 1000;
    snprintf(p->where, sizeof(p->where), "master '%.100s' (via %zu sentinels)", p->s_master,
             p->n_sent);
    return TW_OK;
}

/* Opens the spool, if configured, and takes over what an earlier run left in it. */
static int open_spool(struct pub *p, char *err, size_t errlen)
{
    if (!p->s_spool)
        return TW_OK;
    struct spool_opts so = {.dir = p->s_spool,
                            .max_bytes = p->o.spool_max_bytes,
                            .seg_bytes = p->o.spool_segment_bytes};
    p->spool = spool_open(&so, err, errlen);
    if (!p->spool)
        return TW_EIO;
    /* A spool left by an earlier run is older than anything we will enqueue. */
    p->spilling = spool_pending(p->spool) > 0;
    struct spool_stats ss;
    spool_get_stats(p->spool, &ss);
    p->st.spool_records = ss.records;
    p->st.spool_bytes = ss.bytes;
    p->st.spool_torn = ss.torn;
    return TW_OK;
}

/* A zeroed publisher with its mutex and its condition variable (on the monotonic clock, as
 * every deadline here is). */
static struct pub *pub_alloc(void)
{
    struct pub *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

struct pub *pub_new(const struct pub_opts *opts, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (!opts) {
        snprintf(err, errlen, "publisher: no options");
        return NULL;
    }
    struct pub *p = pub_alloc();
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->o = *opts;
    if (pub_parse_url(opts->url, &p->url, err, errlen) != TW_OK) {
        pub_free(p);
        return NULL;
    }
    set_target(p, opts);
    if (copy_strings(p, opts) != TW_OK) {
        snprintf(err, errlen, "out of memory");
        pub_free(p);
        return NULL;
    }
    apply_defaults(&p->o);
    if (copy_sentinels(p, opts, err, errlen) != TW_OK) {
        pub_free(p);
        return NULL;
    }
    p->backoff_ms = p->o.backoff_min_ms;
    p->rnd = (unsigned)getpid() ^ (unsigned)mono_ms();
    p->drop_log_ms = INT64_MIN / 2;
    if (open_spool(p, err, errlen) != TW_OK) {
        pub_free(p);
        return NULL;
    }
    return p;
}

int pub_opts_from_cfg(const struct tw_cfg *cfg, struct pub_opts *po)
{
    if (!cfg || !po)
        return TW_EBAD;
    const char *pw = cfg->redis.password;
    if (cfg->redis.password_env && getenv(cfg->redis.password_env))
        pw = getenv(cfg->redis.password_env);
    memset(po, 0, sizeof(*po));
    po->url = cfg->redis.url;
    po->user = cfg->redis.user;
    po->password = pw;
    po->modes = (cfg->redis.mode_stream ? PUB_MODE_STREAM : 0u) |
                (cfg->redis.mode_channel ? PUB_MODE_CHANNEL : 0u) |
                (cfg->redis.mode_list ? PUB_MODE_LIST : 0u);
    po->stream_key = cfg->redis.stream_key;
    po->channel_key = cfg->redis.channel_key;
    po->list_key = cfg->redis.list_key;
    po->stream_maxlen = cfg->redis.stream_maxlen;
    po->queue_max = cfg->redis.queue_max;
    po->spool_dir = cfg->redis.spool_dir && cfg->redis.spool_dir[0] ? cfg->redis.spool_dir : NULL;
    po->spool_max_bytes = cfg->redis.spool_max_mib * 1024 * 1024;
    po->timeout_ms = (int)cfg->redis.timeout_ms;
    po->sensor_name = cfg->sensor_name;
    po->heartbeat_prefix = cfg->redis.heartbeat_prefix;
    po->heartbeat_s = (int)cfg->redis.heartbeat_s;
    po->sentinels = (const char *const *)cfg->redis.sentinels;
    po->n_sentinels = cfg->redis.n_sentinels;
    po->master_name = cfg->redis.master_name;
    po->wait_replicas = (int)cfg->redis.wait_replicas;
    po->wait_timeout_ms = (int)cfg->redis.wait_timeout_ms;
    return TW_OK;
}

/* ---- capture side --------------------------------------------------------------------- */

int pub_enqueue(struct pub *p, const char *rec, size_t len)
{
    if (!p || !rec)
        return TW_EBAD;
    /* The spool refuses larger records; refuse them here so both paths agree. */
    struct qrec *r = len <= SPOOL_REC_MAX ? malloc(sizeof(*r) + len + 1) : NULL;
    if (r) {
        memcpy(r->data, rec, len);
        r->data[len] = '\0';
        r->len = len;
    }
    int rc = TW_OK;
    pthread_mutex_lock(&p->mu);
    p->st.enqueued++;
    if (!r) {
        p->st.dropped++;
        rc = TW_ELIMIT;
    } else if (!p->spilling && p->q.n < p->o.queue_max) {
        list_push(&p->q, r);
    } else if (p->spool && p->spill.n < p->o.spill_max) {
        p->spilling = true;
        list_push(&p->spill, r);
    } else {
        p->st.dropped++;
        rc = TW_ELIMIT;
    }
    p->st.queued = p->q.n + p->spill.n;
    if (p->st.queued > p->queued_hw)
        p->queued_hw = p->st.queued;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (rc != TW_OK)
        free(r);
    return rc;
}

void pub_set_heartbeat(struct pub *p, const char *fields)
{
    if (!p)
        return;
    char *copy = fields ? strdup(fields) : NULL;
    pthread_mutex_lock(&p->mu);
    char *old = p->hb_fields;
    p->hb_fields = copy;
    pthread_mutex_unlock(&p->mu);
    free(old);
}

void pub_get_stats(struct pub *p, struct pub_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->dropped += p->spool_dropped;
    pthread_mutex_unlock(&p->mu);
}

/* ---- publisher thread ----------------------------------------------------------------- */

/* One stderr line per distinct error state, not per retry. */
__attribute__((format(printf, 2, 3))) static void report(struct pub *p, const char *fmt, ...)
{
    char msg[sizeof(p->last_err)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&p->mu);
    p->st.errors++;
    pthread_mutex_unlock(&p->mu);
    if (strcmp(msg, p->last_err) != 0) {
        fprintf(stderr, "tunnelwatch: redis: %s (retrying)\n", msg);
        memcpy(p->last_err, msg, sizeof(msg));
    }
}

static void recovered(struct pub *p)
{
    if (p->last_err[0]) {
        fprintf(stderr, "tunnelwatch: redis: delivering to %s again\n", p->where);
        p->last_err[0] = '\0';
    }
    p->backoff_ms = p->o.backoff_min_ms;
}

static void schedule_retry(struct pub *p)
{
    int d = p->backoff_ms;
    /* Jitter to [d/2, d] so that many sensors do not reconnect in lockstep. */
    int j = d / 2 + (int)((unsigned)rand_r(&p->rnd) % (unsigned)(d / 2 + 1));
    p->retry_at_ms = mono_ms() + j;
    p->backoff_ms = d > p->o.backoff_max_ms / 2 ? p->o.backoff_max_ms : d * 2;
}

static void set_connected(struct pub *p, bool on)
{
    pthread_mutex_lock(&p->mu);
    p->st.connected = on;
    pthread_mutex_unlock(&p->mu);
}

static void disconnect(struct pub *p)
{
    if (p->c) {
        redisFree(p->c);
        p->c = NULL;
        set_connected(p, false);
    }
}

static const char *io_reason(const redisContext *c, char *buf, size_t n)
{
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
        snprintf(buf, n, "no reply within the timeout (server paused or overloaded)");
    else if (c->err == REDIS_ERR_EOF)
        snprintf(buf, n, "server closed the connection");
    else
        snprintf(buf, n, "%s", c->errstr);
    return buf;
}

/* Runs one command; on failure reports and returns false (the reply text is the server's,
 * which never contains our password). */
static bool simple_cmd(struct pub *p, const char *what, int argc, const char **argv)
{
    char why[160];
    redisReply *r = redisCommandArgv(p->c, argc, argv, NULL);
    if (!r) {
        report(p, "%s on %s failed: %s", what, p->where, io_reason(p->c, why, sizeof(why)));
        return false;
    }
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (!ok)
        report(p, "%s on %s failed: %s", what, p->where, r->str);
    freeReplyObject(r);
    return ok;
}

/* Asks one sentinel for the master's address; true with it in *out. */
static bool ask_sentinel(struct pub *p, const struct hostport *sn, struct hostport *out, char *why,
                         size_t whylen)
{
    struct timeval tv = {p->o.timeout_ms / 1000, (p->o.timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(sn->host, sn->port, tv);
    if (!c || c->err) {
        snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
        redisFree(c);
        return false;
    }
    redisReply *r = NULL;
    if (redisSetTimeout(c, tv) == REDIS_OK)
        r = redisCommandArgv(
            c, 3, (const char *[]){"SENTINEL", "get-master-addr-by-name", p->s_master}, NULL);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof(out->host);
    long port = 0;
    if (ok)
        ok = parse_int(r->element[1]->str, r->element[1]->len, 1, 65535, &port) == TW_OK;
    if (ok) {
        memcpy(out->host, r->element[0]->str, r->element[0]->len);
        out->host[r->element[0]->len] = '\0';
        out->port = (int)port;
    } else {
        snprintf(why, whylen, "%s",
                 !r                             ? (c->err ? c->errstr : "no reply")
                 : r->type == REDIS_REPLY_ERROR ? r->str
                 : r->type == REDIS_REPLY_NIL   ? "does not know that master"
                                                : "unexpected reply");
    }
    freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* The master's address from the first sentinel that knows it, starting with the one that
 * answered last. False (reported) when none does. */
static bool ask_sentinels(struct pub *p, struct hostport *out)
{
    char why[200] = "", last[300] = "";
    for (size_t k = 0; k < p->n_sent; k++) {
        size_t i = (p->sent_next + k) % p->n_sent;
        if (ask_sentinel(p, &p->sent[i], out, why, sizeof(why))) {
            p->sent_next = i;
            return true;
        }
        snprintf(last, sizeof(last), "%.100s:%d: %.180s", p->sent[i].host, p->sent[i].port, why);
    }
    report(p, "no sentinel answered for master '%s' (last: %s)", p->s_master, last);
    return false;
}

/* With Sentinel: the server must say it is the master (a failed-over old master comes back as
 * a replica, and a sentinel may still name it for a moment). */
static bool is_master(struct pub *p)
{
    redisReply *r = redisCommand(p->c, "ROLE");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              strcmp(r->element[0]->str, "master") == 0;
    if (!ok)
        report(p, "%s is not the master (%s): asking the sentinels again", p->where,
               r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                       r->element[0]->type == REDIS_REPLY_STRING
                   ? r->element[0]->str
                   : "no ROLE reply");
    freeReplyObject(r);
    return ok;
}

static void name_node(struct pub *p, const struct hostport *hp)
{
    snprintf(p->where, sizeof(p->where), "%.150s:%d (cluster) db %d", hp->host, hp->port,
             p->url.db);
}

/* In a cluster whose seed (the URL's node) is down: any master of the last slot map. */
static redisContext *connect_known_node(struct pub *p, struct timeval tv)
{
    for (size_t i = 0; p->cluster && p->map && i < p->map->n_nodes; i++) {
        const struct hostport *hp = &p->map->nodes[i];
        redisContext *c = redisConnectWithTimeout(hp->host, hp->port, tv);
        if (c && !c->err) {
            p->cur = *hp;
            name_node(p, hp);
            return c;
        }
        redisFree(c);
    }
    return NULL;
}

/* Connects to the URL's server, or to the master the sentinels name. NULL after a report. */
static redisContext *open_target(struct pub *p, struct timeval tv)
{
    if (p->n_sent) {
        struct hostport m;
        if (!ask_sentinels(p, &m))
            return NULL;
        if (p->master.host[0] &&
            (strcmp(m.host, p->master.host) != 0 || m.port != p->master.port)) {
            fprintf(stderr, "tunnelwatch: redis: master '%s' moved from %s:%d to %s:%d\n",
                    p->s_master, p->master.host, p->master.port, m.host, m.port);
            pthread_mutex_lock(&p->mu);
            p->st.failovers++;
            pthread_mutex_unlock(&p->mu);
        }
        p->master = m;
        snprintf(p->where, sizeof(p->where), "%.150s:%d (master '%.30s') db %d", m.host, m.port,
                 p->s_master, p->url.db);
    }
    const struct hostport *hp = p->n_sent ? &p->master : NULL;
    struct hostport u = {"", p->url.port};
    if (!hp && !p->url.is_unix) {
        snprintf(u.host, sizeof(u.host), "%s", p->url.host);
        hp = &u;
    }
    redisContext *c = hp ? redisConnectWithTimeout(hp->host, hp->port, tv)
                         : redisConnectUnixWithTimeout(p->url.path, tv);
    if (c && !c->err) {
        p->cur = hp ? *hp : (struct hostport){"", 0};
        return c;
    }
    char why[200];
    snprintf(why, sizeof(why), "%s", c ? c->errstr : "out of memory");
    redisFree(c);
    if ((c = connect_known_node(p, tv)) != NULL)
        return c;
    report(p, "cannot connect to %s: %s", p->where, why);
    return NULL;
}

/* AUTH and SELECT as the URL says. */
static bool login(struct pub *p)
{
    if (p->url.password[0]) {
        const char *a[3] = {"AUTH", p->url.user, p->url.password};
        bool acl = p->url.user[0] != '\0';
        char what[180];
        snprintf(what, sizeof(what), acl ? "AUTH as user '%.128s'" : "AUTH", p->url.user);
        if (!simple_cmd(p, what, acl ? 3 : 2, acl ? a : (const char *[]){"AUTH", a[2]}))
            return false;
    }
    if (p->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", p->url.db);
        char what[40];
        snprintf(what, sizeof(what), "SELECT %d", p->url.db);
        if (!simple_cmd(p, what, 2, (const char *[]){"SELECT", db}))
            return false;
    }
    return true;
}

/* Once, on the first server reached: is it a cluster node? Then the keys of one record must
 * share a slot (PUBLISH goes to any node). False (reported) when that cannot be told. */
static bool cluster_probe(struct pub *p)
{
    redisReply *r = redisCommand(p->c, "INFO cluster");
    if (!r || r->type != REDIS_REPLY_STRING) {
        char why[160];
        report(p, "INFO cluster on %s failed: %s", p->where,
               r && r->type == REDIS_REPLY_ERROR ? r->str : io_reason(p->c, why, sizeof(why)));
        freeReplyObject(r);
        return false;
    }
    p->cluster = strstr(r->str, "cluster_enabled:1") != NULL;
    freeReplyObject(r);
    p->cluster_known = true;
    if (!p->cluster)
        return true;
    const char *k = p->o.modes & PUB_MODE_STREAM ? p->s_stream : p->s_list;
    p->data_slot = rc_key_slot(k, strlen(k));
    char hb[512];
    int n = snprintf(hb, sizeof(hb), "%s%s", p->s_hbprefix, p->s_sensor);
    p->hb_slot = rc_key_slot(hb, n > 0 && (size_t)n < sizeof(hb) ? (size_t)n : strlen(hb));
    if ((p->o.modes & PUB_MODE_STREAM) && (p->o.modes & PUB_MODE_LIST) &&
        rc_key_slot(p->s_list, strlen(p->s_list)) != p->data_slot)
        fprintf(stderr,
                "tunnelwatch: redis: in a cluster the list '%s' is written where the "
                "stream '%s' lives: give both one hash tag, e.g. {tw}:alerts\n",
                p->s_list, p->s_stream);
    p->map = p->map ? p->map : calloc(1, sizeof(*p->map));
    fprintf(stderr,
            "tunnelwatch: redis: %s is a cluster node: records go to the master of slot %u\n",
            p->where, p->data_slot);
    return p->map != NULL;
}

/* Redis Cluster: the records go to the master serving their key's slot; when the node
 * reached is another, move there (CLUSTER SLOTS asked on every connect, so a MOVED reply,
 * which disconnects, refreshes the map). False (reported) on failure. */
static bool cluster_route(struct pub *p)
{
    if (p->n_sent || (!p->cluster_known && !cluster_probe(p)))
        return p->n_sent != 0;
    if (!p->cluster)
        return true;
    redisReply *r = redisCommand(p->c, "CLUSTER SLOTS");
    int rc = rc_map_from_reply(r, p->map);
    freeReplyObject(r);
    const struct hostport *o = rc == TW_OK ? rc_owner(p->map, p->data_slot) : NULL;
    if (!o) {
        report(p, "%s: no cluster node serves slot %u", p->where, p->data_slot);
        return false;
    }
    if (o->port == p->cur.port && strcmp(o->host, p->cur.host) == 0)
        return true;
    struct timeval tv = {p->o.timeout_ms / 1000, (p->o.timeout_ms % 1000) * 1000};
    struct hostport to = *o;
    redisFree(p->c);
    p->c = redisConnectWithTimeout(to.host, to.port, tv);
    name_node(p, &to);
    if (!p->c || p->c->err) {
        report(p, "cannot connect to %s: %s", p->where, p->c ? p->c->errstr : "out of memory");
        return false;
    }
    p->cur = to;
    return redisSetTimeout(p->c, tv) == REDIS_OK && login(p);
}

static void try_connect(struct pub *p)
{
    struct timeval tv = {p->o.timeout_ms / 1000, (p->o.timeout_ms % 1000) * 1000};
    p->c = open_target(p, tv);
    if (!p->c) {
        schedule_retry(p);
        return;
    }
    /* hiredis 0.14 otherwise blocks forever on a paused or wedged server; WAIT may take its
     * own timeout on top of the command's. */
    int cmd_ms = p->o.timeout_ms + (p->o.wait_replicas > 0 ? p->o.wait_timeout_ms : 0);
    struct timeval ctv = {cmd_ms / 1000, (cmd_ms % 1000) * 1000};
    if (redisSetTimeout(p->c, ctv) != REDIS_OK) {
        report(p, "cannot set socket timeouts on %s", p->where);
        goto fail;
    }
    if (!login(p) || (p->n_sent && !is_master(p)) || !cluster_route(p) ||
        redisSetTimeout(p->c, ctv) != REDIS_OK)
        goto fail;
    pthread_mutex_lock(&p->mu);
    if (p->ever_connected)
        p->st.reconnects++, p->trim_due = true;
    p->st.connected = true;
    pthread_mutex_unlock(&p->mu);
    if (!p->ever_connected && !p->last_err[0])
        fprintf(stderr, "tunnelwatch: redis: connected to %s\n", p->where);
    p->ever_connected = true;
    p->next_check_ms = mono_ms() + (p->o.heartbeat_s > 0 ? p->o.heartbeat_s * 1000 : 10000);
    return;
fail:
    redisFree(p->c);
    p->c = NULL;
    schedule_retry(p);
}

/* With Sentinel, while connected: a failover the connection did not notice (the old master
 * still up, cut off) moves the publisher to the new master. */
static void check_master(struct pub *p, int64_t now)
{
    if (!p->n_sent || !p->c || now < p->next_check_ms)
        return;
    p->next_check_ms = now + (p->o.heartbeat_s > 0 ? p->o.heartbeat_s * 1000 : 10000);
    struct hostport m;
    char why[200];
    for (size_t k = 0; k < p->n_sent; k++) {
        size_t i = (p->sent_next + k) % p->n_sent;
        if (!ask_sentinel(p, &p->sent[i], &m, why, sizeof(why)))
            continue;
        p->sent_next = i;
        if (strcmp(m.host, p->master.host) != 0 || m.port != p->master.port)
            disconnect(p); /* the next step connects to the new one */
        return;
    }
}

/* Updates the spool figures the capture side reads through pub_get_stats(). */
static void sync_spool_stats(struct pub *p)
{
    if (!p->spool)
        return;
    struct spool_stats ss;
    spool_get_stats(p->spool, &ss);
    pthread_mutex_lock(&p->mu);
    p->st.spool_records = ss.records;
    p->st.spool_bytes = ss.bytes;
    p->st.spool_torn = ss.torn;
    p->spool_dropped = ss.dropped;
    pthread_mutex_unlock(&p->mu);
}

/* While spilling, moves the queue and then the spill list to the spool (queue first: it is
 * older). Ends spilling once the spool has drained. */
static void spill_to_spool(struct pub *p)
{
    if (!p->spool)
        return;
    struct rlist todo = {0};
    pthread_mutex_lock(&p->mu);
    if (p->spilling) {
        list_cat(&todo, &p->q);
        list_cat(&todo, &p->spill);
        if (todo.n == 0 && spool_pending(p->spool) == 0)
            p->spilling = false;
    }
    p->st.queued = p->q.n + p->spill.n + todo.n; /* in transit still counts as queued */
    pthread_mutex_unlock(&p->mu);
    if (todo.n == 0)
        return;
    uint64_t ok = 0, lost = 0;
    for (struct qrec *r = todo.head; r; r = r->next) {
        int rc = spool_append(p->spool, r->data, r->len);
        if (rc == TW_OK) {
            ok++;
        } else if (rc != TW_ELIMIT) { /* TW_ELIMIT is counted by the spool itself */
            lost++;
            report(p, "spool write in %s failed: %s; alerts are being lost", p->s_spool,
                   strerror(errno));
        }
    }
    list_free(&todo);
    sync_spool_stats(p);
    pthread_mutex_lock(&p->mu);
    p->st.spooled += ok;
    p->st.dropped += lost;
    p->st.queued = p->q.n + p->spill.n;
    pthread_mutex_unlock(&p->mu);
}

static void log_drops(struct pub *p, int64_t now)
{
    pthread_mutex_lock(&p->mu);
    uint64_t d = p->st.dropped + p->spool_dropped;
    pthread_mutex_unlock(&p->mu);
    if (d > p->drop_logged && now - p->drop_log_ms >= DROP_LOG_MS) {
        fprintf(stderr,
                "tunnelwatch: publisher: dropped %" PRIu64 " alerts (oldest first; spool cap "
                "%" PRIu64 " bytes or memory limits reached), %" PRIu64 " in total\n",
                d - p->drop_logged, p->o.spool_max_bytes, d);
        p->drop_logged = d;
        p->drop_log_ms = now;
    }
}

/* Appends the commands for one record, one per mode, in a fixed order. Returns how many. */
static int append_record(struct pub *p, const char *data, size_t len)
{
    int n = 0;
    if (p->o.modes & PUB_MODE_STREAM) {
        char maxlen[24];
        snprintf(maxlen, sizeof(maxlen), "%ld", p->o.stream_maxlen);
        const char *a[8] = {"XADD", p->s_stream, "MAXLEN", "~", maxlen, "*", "alert", data};
        size_t l[8] = {4, strlen(p->s_stream), 6, 1, strlen(maxlen), 1, 5, len};
        redisAppendCommandArgv(p->c, 8, a, l);
        n++;
    }
    if (p->o.modes & PUB_MODE_CHANNEL) {
        const char *a[3] = {"PUBLISH", p->s_channel, data};
        size_t l[3] = {7, strlen(p->s_channel), len};
        redisAppendCommandArgv(p->c, 3, a, l);
        n++;
    }
    if (p->o.modes & PUB_MODE_LIST) {
        const char *a[3] = {"RPUSH", p->s_list, data};
        size_t l[3] = {5, strlen(p->s_list), len};
        redisAppendCommandArgv(p->c, 3, a, l);
        n++;
    }
    return n;
}

static const char *mode_cmd(const struct pub *p, int k, const char **key)
{
    static const unsigned bits[3] = {PUB_MODE_STREAM, PUB_MODE_CHANNEL, PUB_MODE_LIST};
    static const char *const names[3] = {"XADD", "PUBLISH", "RPUSH"};
    const char *keys[3] = {p->s_stream, p->s_channel, p->s_list};
    for (int i = 0, seen = 0; i < 3; i++) {
        if (!(p->o.modes & bits[i]))
            continue;
        if (seen++ == k) {
            *key = keys[i];
            return names[i];
        }
    }
    *key = "?";
    return "?";
}

/* Points recs at the next batch: the spool's oldest records while it holds any, else the
 * queue's head. Sets *n (0: nothing to send); -1 after a spool read error (reported, retry
 * scheduled). */
static int collect_batch(struct pub *p, struct spool_rec *recs, bool from_spool, size_t *n)
{
    size_t max = (size_t)p->o.batch;
    if (from_spool) {
        int rc = spool_peek(p->spool, recs, max);
        if (rc < 0) {
            report(p, "cannot read spool %s: %s", p->s_spool, tw_strerror(rc));
            schedule_retry(p);
            return -1;
        }
        *n = (size_t)rc;
        sync_spool_stats(p); /* a corrupt segment may have been dropped */
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    struct qrec *r = p->q.head;
    *n = p->q.n < max ? p->q.n : max;
    pthread_mutex_unlock(&p->mu);
    /* Only this thread removes records, and the first n links were written under the
     * mutex before we read q.n, so walking them unlocked is safe. */
    for (size_t i = 0; i < *n; i++, r = i < *n ? r->next : r) {
        recs[i].data = r->data;
        recs[i].len = r->len;
    }
    return 0;
}

/* Position of PUBLISH among a record's commands, or -1 without the channel mode. */
static int channel_index(const struct pub *p)
{
    int chan_idx = -1;
    for (int k = 0; k < 3; k++) {
        const char *key;
        if (strcmp(mode_cmd(p, k, &key), "PUBLISH") == 0)
            chan_idx = k;
    }
    return chan_idx;
}

/* What the replies to one pipelined batch said. */
struct batch_acks {
    size_t acked;       /* records at the head of the batch that every mode acknowledged */
    bool io_err;        /* the connection failed: the replies stop there */
    uint64_t nosub;     /* PUBLISH replies of 0 */
    char errmsg[300];   /* the first error reply, "" when none */
    char redirect[300]; /* the first MOVED/ASK error reply (Redis Cluster), "" when none */
};

/* Reads the replies of n records with per commands each. */
static void read_replies(struct pub *p, size_t n, int per, struct batch_acks *ba)
{
    int chan_idx = channel_index(p);
    bool prefix = true;
    for (size_t i = 0; i < n && !ba->io_err; i++) {
        bool ok = true;
        for (int k = 0; k < per; k++) {
            redisReply *r = NULL;
            if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r) {
                ba->io_err = true;
                ok = false;
                break;
            }
            if (r->type == REDIS_REPLY_ERROR) {
                ok = false;
                if (!ba->redirect[0] &&
                    (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0))
                    snprintf(ba->redirect, sizeof(ba->redirect), "%s", r->str);
                if (!ba->errmsg[0]) {
                    const char *key, *cmd = mode_cmd(p, k, &key);
                    snprintf(ba->errmsg, sizeof(ba->errmsg), "%s to '%.100s' failed: %.150s", cmd,
                             key, r->str);
                }
            } else if (r->type == REDIS_REPLY_INTEGER && r->integer == 0 && k == chan_idx) {
                ba->nosub++; /* PUBLISH reached no subscriber: delivered, but counted */
            }
            freeReplyObject(r);
        }
        if (ok && prefix)
            ba->acked++;
        else
            prefix = false;
    }
}

static void append_wait(struct pub *p)
{
    char n[16], ms[16];
    snprintf(n, sizeof(n), "%d", p->o.wait_replicas);
    snprintf(ms, sizeof(ms), "%d", p->o.wait_timeout_ms);
    redisAppendCommandArgv(p->c, 3, (const char *[]){"WAIT", n, ms}, NULL);
}

/* WAIT's reply: fewer replicas than asked take back every acknowledgement of the batch (the
 * records stay queued, to be sent again once the replicas keep up). */
static void read_wait(struct pub *p, struct batch_acks *ba)
{
    if (ba->io_err)
        return;
    redisReply *r = NULL;
    if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r) {
        ba->io_err = true;
        ba->acked = 0;
        return;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer < p->o.wait_replicas) {
        if (ba->acked) {
            pthread_mutex_lock(&p->mu);
            p->st.wait_short++;
            pthread_mutex_unlock(&p->mu);
        }
        if (!ba->errmsg[0])
            snprintf(ba->errmsg, sizeof(ba->errmsg),
                     "WAIT %d %d: %s%lld of %d replicas have the records (they will be sent again)",
                     p->o.wait_replicas, p->o.wait_timeout_ms,
                     r->type == REDIS_REPLY_INTEGER ? "only " : "error, ",
                     r->type == REDIS_REPLY_INTEGER ? r->integer : 0LL, p->o.wait_replicas);
        ba->acked = 0;
    }
    freeReplyObject(r);
}

/* Releases the first acked records of the spool or of the queue. */
static void release_acked(struct pub *p, bool from_spool, size_t acked)
{
    if (from_spool) {
        if (spool_commit(p->spool, acked) != TW_OK)
            report(p, "spool commit failed");
        sync_spool_stats(p);
        return;
    }
    if (!acked)
        return;
    struct rlist done = {0};
    pthread_mutex_lock(&p->mu);
    done.head = p->q.head;
    struct qrec *last = p->q.head;
    for (size_t i = 1; i < acked; i++)
        last = last->next;
    p->q.head = last->next;
    if (!p->q.head)
        p->q.tail = NULL;
    p->q.n -= acked;
    p->st.queued = p->q.n + p->spill.n;
    pthread_mutex_unlock(&p->mu);
    last->next = NULL;
    list_free(&done);
}

/* After an outage the queue held up to queue_max records (many small blocks, freed by this
 * thread: another malloc arena than the one that made them) and the spool's read buffers were
 * used; once the queue and the spool are empty again, hand the freed memory back to the system,
 * so a sensor's size after a Redis restart is its size before (glibc keeps freed heap).
 * malloc_trim() empties the free pages of every arena, the capture thread's too: its next
 * allocations fault the pages in again (and wait for the arena while it is trimmed). So it
 * runs only after a backlog (GIVE_BACK_MIN records) or a reconnect, never after the bursts
 * of normal work: a batch is at most PUB_LINGER_RECS records ahead of Redis, and all of
 * SigmaHQ on the 1 GB bench mix (5,484 records) trimmed after almost every batch, with 50
 * waits and 900 page faults more on the capture thread (--redis none: 5 and none). */
static void give_back(struct pub *p)
{
    pthread_mutex_lock(&p->mu);
    bool trim = p->q.n + p->spill.n == 0 && (p->queued_hw >= GIVE_BACK_MIN || p->trim_due) &&
                !(p->spool && spool_pending(p->spool) > 0);
    if (trim)
        p->queued_hw = 0, p->trim_due = false;
    pthread_mutex_unlock(&p->mu);
    if (trim)
        malloc_trim(0);
}

/* Redis Cluster moved the records' slot (MOVED: reconnect at once, which asks for the slot
 * map again) or is moving it (ASK: the slot's keys are on their way; send again shortly, the
 * slot ends up MOVED). The unacknowledged records stay queued. True when it was one. */
static bool follow_redirect(struct pub *p, const char *err)
{
    bool ask;
    uint16_t slot;
    struct hostport to;
    if (!p->cluster || !rc_redirect(err, &ask, &slot, &to))
        return false;
    pthread_mutex_lock(&p->mu);
    p->st.redirects++;
    pthread_mutex_unlock(&p->mu);
    report(p, "slot %u %s to %s:%d", slot, ask ? "is moving" : "moved", to.host, to.port);
    if (!ask)
        disconnect(p);
    p->retry_at_ms = mono_ms() + (ask ? 100 : 0);
    return true;
}

/* Sends one pipelined batch (spool first, else queue) and releases the acknowledged prefix.
 * Returns records delivered (> 0), 0 when there was nothing to send, < 0 after an error
 * (already reported, retry scheduled). */
static int deliver_batch(struct pub *p, struct spool_rec *recs)
{
    size_t n = 0;
    bool from_spool = p->spool && spool_pending(p->spool) > 0;
    if (collect_batch(p, recs, from_spool, &n) < 0)
        return -1;
    if (n == 0)
        return 0;
    int per = 0;
    for (size_t i = 0; i < n; i++)
        per = append_record(p, recs[i].data, recs[i].len);
    if (p->o.wait_replicas > 0)
        append_wait(p);
    struct batch_acks ba = {0};
    read_replies(p, n, per, &ba);
    if (p->o.wait_replicas > 0)
        read_wait(p, &ba);
    release_acked(p, from_spool, ba.acked);
    pthread_mutex_lock(&p->mu);
    p->st.delivered += ba.acked;
    p->st.no_subscribers += ba.nosub;
    pthread_mutex_unlock(&p->mu);
    if (ba.io_err) {
        char why[160];
        report(p, "connection to %s lost: %s", p->where, io_reason(p->c, why, sizeof(why)));
        disconnect(p);
        schedule_retry(p);
        return -1;
    }
    if (ba.redirect[0] && follow_redirect(p, ba.redirect))
        return -1;
    if (ba.errmsg[0]) {
        report(p, "%s", ba.errmsg);
        if (p->n_sent) /* READONLY from a demoted master: ask the sentinels again */
            disconnect(p);
        schedule_retry(p);
        return -1;
    }
    recovered(p);
    give_back(p);
    return (int)ba.acked;
}

static redisContext *slot_conn(struct pub *p, uint16_t slot);

/* The heartbeat's connection: the records' one, or in a cluster whose heartbeat key lives on
 * another master a short one to it (the caller frees it). NULL after a report. */
static redisContext *hb_conn(struct pub *p)
{
    return slot_conn(p, p->hb_slot);
}

/* The connection to the master of slot: hb_conn's, for any key. */
static redisContext *slot_conn(struct pub *p, uint16_t slot)
{
    const struct hostport *o = p->cluster && p->map ? rc_owner(p->map, slot) : NULL;
    if (!o || (o->port == p->cur.port && strcmp(o->host, p->cur.host) == 0))
        return p->c;
    struct timeval tv = {p->o.timeout_ms / 1000, (p->o.timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(o->host, o->port, tv), *keep = p->c;
    if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        report(p, "heartbeat: cannot connect to %s:%d: %s", o->host, o->port,
               c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    p->c = c; /* login() talks to p->c */
    bool ok = login(p);
    p->c = keep;
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static void send_heartbeat(struct pub *p)
{
    char key[512];
    snprintf(key, sizeof(key), "%s%s", p->s_hbprefix, p->s_sensor);
    struct pub_stats st;
    pub_get_stats(p, &st);
    pthread_mutex_lock(&p->mu);
    char *fields = p->hb_fields ? strdup(p->hb_fields) : NULL;
    pthread_mutex_unlock(&p->mu);

    enum { OWN = 13 };
    const char *argv[2 + 2 * (HB_FIELDS_MAX + OWN)];
    int argc = 0;
    argv[argc++] = "HSET";
    argv[argc++] = key;
    char *save = NULL;
    int lines = 0;
    for (char *line = fields ? strtok_r(fields, "\n", &save) : NULL; line && lines < HB_FIELDS_MAX;
         line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (!tab || tab == line) /* not "field<TAB>value": skip, do not guess */
            continue;
        *tab = '\0';
        argv[argc++] = line;
        argv[argc++] = tab + 1;
        lines++;
    }
    char v[OWN][24];
    const char *names[OWN] = {
        "alerts_enqueued", "alerts_queued",    "alerts_spooled",         "spool_records",
        "spool_bytes",     "alerts_delivered", "alerts_dropped",         "redis_reconnects",
        "redis_connected", "redis_errors",     "publish_no_subscribers", "spool_torn",
        "heartbeat_unix_s"};
    uint64_t vals[OWN] = {st.enqueued,         st.queued,         st.spooled,
                          st.spool_records,    st.spool_bytes,    st.delivered,
                          st.dropped,          st.reconnects,     1,
                          st.errors,           st.no_subscribers, st.spool_torn,
                          (uint64_t)time(NULL)};
    for (int i = 0; i < OWN; i++) {
        snprintf(v[i], sizeof(v[i]), "%" PRIu64, vals[i]);
        argv[argc++] = names[i];
        argv[argc++] = v[i];
    }
    redisContext *c = hb_conn(p);
    if (!c) {
        free(fields);
        return;
    }
    redisAppendCommandArgv(c, argc, argv, NULL);
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%d", 3 * p->o.heartbeat_s);
    redisAppendCommandArgv(c, 3, (const char *[]){"EXPIRE", key, ttl}, NULL);
    free(fields);
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            char why[160];
            report(p, "heartbeat: connection to %s lost: %s", c == p->c ? p->where : "its node",
                   io_reason(c, why, sizeof(why)));
            if (c != p->c) {
                redisFree(c);
                return;
            }
            disconnect(p);
            schedule_retry(p);
            return;
        }
        if (r->type == REDIS_REPLY_ERROR)
            report(p, "heartbeat %s to '%.200s' failed: %.150s", i ? "EXPIRE" : "HSET", key,
                   r->str);
        freeReplyObject(r);
    }
    if (c != p->c)
        redisFree(c);
}

bool pub_put_blob(struct pub *p, const char *key, const uint8_t *data, size_t n, uint32_t ttl_s)
{
    struct pblob *b = malloc(sizeof(*b) + n);
    if (!b || !(b->key = strdup(key))) {
        free(b);
        return false;
    }
    memcpy(b->data, data, n);
    b->n = n;
    b->ttl_s = ttl_s;
    pthread_mutex_lock(&p->mu);
    struct pblob **pp = &p->blobs;
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    struct pblob *old = *pp;
    bool ok = !p->stopping && (old || p->n_blobs < PUB_BLOBS_MAX);
    if (ok && old) { /* the newer value replaces the waiting one */
        *pp = old->next;
        p->n_blobs--;
    }
    if (ok) {
        b->next = p->blobs;
        p->blobs = b;
        p->n_blobs++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    if (old && ok) {
        free(old->key);
        free(old);
    }
    if (!ok) {
        free(b->key);
        free(b);
    }
    return ok;
}

/* One SET key value EX ttl; false when the connection failed (then dropped). */
static bool send_blob(struct pub *p, const struct pblob *b)
{
    redisContext *c = slot_conn(p, rc_key_slot(b->key, strlen(b->key)));
    if (!c)
        return true;
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%u", b->ttl_s);
    const char *argv[5] = {"SET", b->key, (const char *)b->data, "EX", ttl};
    size_t lens[5] = {3, strlen(b->key), b->n, 2, strlen(ttl)};
    redisReply *r = redisCommandArgv(c, 5, argv, lens);
    bool io_ok = r != NULL;
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (c != p->c)
        redisFree(c);
    pthread_mutex_lock(&p->mu);
    if (ok)
        p->st.blobs_sent++;
    else
        p->st.blobs_failed++;
    pthread_mutex_unlock(&p->mu);
    if (!io_ok && c == p->c) {
        char why[160];
        report(p, "evidence copy: connection to %s lost: %s", p->where,
               io_reason(p->c, why, sizeof(why)));
        disconnect(p);
        schedule_retry(p);
        return false;
    }
    return true;
}

/* The waiting blobs, oldest first; what a lost connection leaves is dropped (counted). */
static void send_blobs(struct pub *p)
{
    pthread_mutex_lock(&p->mu);
    struct pblob *b = p->blobs, *rev = NULL;
    p->blobs = NULL;
    p->n_blobs = 0;
    pthread_mutex_unlock(&p->mu);
    while (b) { /* newest first -> oldest first */
        struct pblob *next = b->next;
        b->next = rev;
        rev = b;
        b = next;
    }
    bool up = true;
    while (rev) {
        struct pblob *next = rev->next;
        if (up && p->c)
            up = send_blob(p, rev);
        else {
            pthread_mutex_lock(&p->mu);
            p->st.blobs_failed++;
            pthread_mutex_unlock(&p->mu);
        }
        free(rev->key);
        free(rev);
        rev = next;
    }
}

static struct timespec abs_time(int64_t ms)
{
    return (struct timespec){(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
}

/* One step of the flush at stop: deliver within the deadline, reconnecting if need be
 * (Redis may come back while we stop); what is left at the deadline is spooled later. */
static void flush_step(struct pub *p, struct spool_rec *recs, int64_t now, int64_t deadline)
{
    if (!p->c && now >= p->retry_at_ms)
        try_connect(p);
    if (p->c && now >= p->retry_at_ms) {
        if (deliver_batch(p, recs) > 0)
            return;
    }
    int64_t wake = p->retry_at_ms > now ? p->retry_at_ms : now + 50;
    if (wake > deadline)
        wake = deadline;
    struct timespec ts = abs_time(wake);
    pthread_mutex_lock(&p->mu);
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    pthread_mutex_unlock(&p->mu);
}

/* One step of normal running: connect when due, heartbeat when due, deliver a batch.
 * Returns true when records were delivered (more may be waiting: no sleep). */
static bool run_step(struct pub *p, struct spool_rec *recs, int64_t now, bool pending)
{
    if (!p->c && now >= p->retry_at_ms)
        try_connect(p);
    check_master(p, now);
    if (p->c && p->o.heartbeat_s > 0 && now >= p->next_hb_ms) {
        p->next_hb_ms = now + (int64_t)p->o.heartbeat_s * 1000;
        send_heartbeat(p);
    }
    pthread_mutex_lock(&p->mu);
    bool blobs = p->n_blobs > 0;
    pthread_mutex_unlock(&p->mu);
    if (p->c && blobs)
        send_blobs(p);
    return p->c && pending && mono_ms() >= p->retry_at_ms && deliver_batch(p, recs) > 0;
}

/* Sleeps until there is something to do: a record, a retry, a heartbeat, a sync. */
static void idle_wait(struct pub *p)
{
    int64_t now = mono_ms();
    int64_t wake = now + IDLE_WAIT_MAX_MS;
    if (p->retry_at_ms > now && p->retry_at_ms < wake)
        wake = p->retry_at_ms;
    if (p->c && p->o.heartbeat_s > 0 && p->next_hb_ms < wake)
        wake = p->next_hb_ms;
    bool can_send = p->c && now >= p->retry_at_ms;
    bool spool_work = can_send && p->spool && spool_pending(p->spool) > 0;
    struct timespec ts = abs_time(wake);
    bool linger = false;
    pthread_mutex_lock(&p->mu);
    if (!p->stopping && p->spill.n == 0 && !spool_work && !(can_send && p->q.n > 0) &&
        !(p->spilling && p->q.n > 0) && !(can_send && p->n_blobs > 0)) {
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        linger = !p->stopping && p->q.n > 0 && p->q.n < PUB_LINGER_RECS;
    }
    pthread_mutex_unlock(&p->mu);
    if (linger) /* woken by a record: let the next few join its batch (one wake-up, one round
                 * trip for a burst, not one per record) */
        nanosleep(&(struct timespec){0, PUB_LINGER_MS * 1000000L}, NULL);
}

/* Without a spool, what was not delivered at stop is lost: counted and said once. */
static void drop_undelivered(struct pub *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t lost = p->q.n + p->spill.n;
    p->st.dropped += lost;
    list_free(&p->q);
    list_free(&p->spill);
    p->st.queued = 0;
    pthread_mutex_unlock(&p->mu);
    if (lost)
        fprintf(stderr,
                "tunnelwatch: publisher: %" PRIu64 " undelivered alerts lost at shutdown "
                "(no spool_dir configured)\n",
                lost);
}

/* After the last step: final heartbeat, then the undelivered records to the spool. */
static void finish(struct pub *p)
{
    /* A last heartbeat, so the dashboard shows the final counters of a finished replay. */
    if (p->c && p->o.heartbeat_s > 0)
        send_heartbeat(p);
    send_blobs(p); /* the evidence copies of the last flows (dropped, counted, if down) */
    /* Whatever was not delivered goes to the spool (queue first: it is older). */
    pthread_mutex_lock(&p->mu);
    if (p->spool)
        p->spilling = true;
    pthread_mutex_unlock(&p->mu);
    spill_to_spool(p);
    if (p->spool)
        (void)spool_sync(p->spool);
    else
        drop_undelivered(p);
    log_drops(p, INT64_MAX / 2);
    disconnect(p);
}

static void *thread_main(void *arg)
{
    struct pub *p = arg;
    struct spool_rec *recs = calloc((size_t)p->o.batch, sizeof(*recs));
    if (!recs) {
        fprintf(stderr, "tunnelwatch: publisher: out of memory\n");
        return NULL;
    }
    p->next_hb_ms = mono_ms();
    for (;;) {
        spill_to_spool(p);
        int64_t now = mono_ms();
        if (p->spool)
            spool_tick(p->spool, now);
        log_drops(p, now);
        pthread_mutex_lock(&p->mu);
        bool stopping = p->stopping;
        int64_t deadline = p->stop_deadline_ms;
        bool queued = p->q.n > 0;
        pthread_mutex_unlock(&p->mu);
        bool pending = queued || (p->spool && spool_pending(p->spool) > 0);
        if (stopping) {
            if (!pending || now >= deadline)
                break;
            flush_step(p, recs, now, deadline);
        } else if (!run_step(p, recs, now, pending)) {
            idle_wait(p);
        }
    }
    finish(p);
    free(recs);
    return NULL;
}

int pub_start(struct pub *p)
{
    if (!p || p->started)
        return TW_EBAD;
    /* A peer reset would otherwise kill the whole sensor on the next write. */
    signal(SIGPIPE, SIG_IGN);
    p->stopping = false;
    if (tw_thread_start(&p->th, "tw-publish", thread_main, p, false) != 0)
        return TW_ENOMEM;
    p->started = true;
    return TW_OK;
}

void pub_stop(struct pub *p, int flush_ms)
{
    if (!p || !p->started)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    p->stop_deadline_ms = mono_ms() + (flush_ms > 0 ? flush_ms : 0);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
    p->started = false;
}

void pub_free(struct pub *p)
{
    if (!p)
        return;
    if (p->started)
        pub_stop(p, 0);
    list_free(&p->q);
    list_free(&p->spill);
    while (p->blobs) {
        struct pblob *b = p->blobs;
        p->blobs = b->next;
        free(b->key);
        free(b);
    }
    disconnect(p);
    spool_close(p->spool);
    /* the password is wiped before the memory goes back to the allocator */
    explicit_bzero(p->url.password, sizeof(p->url.password));
    free(p->hb_fields);
    free(p->s_url);
    free(p->s_stream);
    free(p->s_channel);
    free(p->s_list);
    free(p->s_spool);
    free(p->s_sensor);
    free(p->s_hbprefix);
    free(p->s_master);
    free(p->sent);
    free(p->map);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
