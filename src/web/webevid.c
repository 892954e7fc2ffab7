/* webevid.c - tunnelwatch-web's evidence fetcher: an incident's pcap, from Redis or a directory.
 *
 * GET /api/evidence/<incident id>.pcap (webhttp.c) hands a job to this module's one thread and
 * suspends its connection; the thread reads the pcap and resumes it. So a slow or unreachable
 * Redis, or a 64 MiB copy crossing the network, holds only that request, never the HTTP thread
 * that serves every other client. The job reads one key, <evidence.redis_prefix><id>, with one
 * GETRANGE key 0 CAP: atomic against the sensor overwriting the key as the incident grows, and
 * never more than CAP + 1 bytes however large the value became. The id was checked by
 * web_evidence_id_ok, so the key is always under the prefix. In a Redis Cluster the job goes to
 * the master of the key's slot (CLUSTER SLOTS) and follows one MOVED or ASK.
 *
 * When Redis has no copy and evidence.dir is set (tunnelwatch-web on the sensor's machine), the
 * job reads DIR/<id>.pcap: opened O_NOFOLLOW and O_NONBLOCK, a regular file only, its size
 * capped, and cut to its whole records (the sensor may be appending to it).
 *
 * Memory: at most evidence.max_downloads downloads are in progress (queued, fetching or being
 * sent), each holding one pcap of at most evidence.max_mib; the slot is given back when its
 * response is freed (web_ev_release). One Redis connection per job, closed after it: a
 * download is rare, and a fresh connection never carries a stale cluster route.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "web_int.h"

struct web_ev {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct web_evjob *head, *tail; /* queued, not yet fetched */
    size_t active;                 /* downloads holding a slot */
    bool stop, started;
    pthread_t th;
    uint64_t served, missing, refused, failed, busy;
    struct rc_map map; /* the fetch thread's scratch */
};

static size_t cap_bytes(const struct web_app *app)
{
    return (size_t)app->cfg.evidence_max_mib * 1024 * 1024;
}

static void job_set(struct web_evjob *j, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_set(struct web_evjob *j, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    j->status = status;
    vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
    va_end(ap);
}

/* One command on c, following one MOVED or ASK (a cluster slot that moved since CLUSTER
 * SLOTS). *c may be replaced by a connection to the node that serves the key now. */
static redisReply *cmd_routed(struct web_app *app, redisContext **c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(*c, argc, argv, NULL);
    bool ask;
    uint16_t slot;
    struct hostport to;
    if (!r || r->type != REDIS_REPLY_ERROR || !rc_redirect(r->str, &ask, &slot, &to))
        return r;
    freeReplyObject(r);
    char err[300];
    redisContext *n = web_redis_dial(app, to.host, to.port, err, sizeof(err));
    if (!n)
        return NULL; /* (*c)->errstr is empty: the caller reports a generic failure */
    redisFree(*c);
    *c = n;
    if (ask) {
        r = redisCommand(n, "ASKING");
        if (r)
            freeReplyObject(r);
    }
    return redisCommandArgv(n, argc, argv, NULL);
}

/* The copy in Redis. 404 when the key is absent (or empty), 413 over the cap. */
static void from_redis(struct web_app *app, struct web_ev *ev, struct web_evjob *j)
{
    char key[sizeof(app->cfg.evidence_prefix) + WEB_EVID_MAX + 1], err[300], end[24];
    snprintf(key, sizeof(key), "%s%s", app->cfg.evidence_prefix, j->id);
    redisContext *c = web_redis_connect_key(app, key, &ev->map, err, sizeof(err));
    if (!c) {
        job_set(j, 503, "Redis unreachable: %s\n", err);
        return;
    }
    size_t cap = cap_bytes(app);
    snprintf(end, sizeof(end), "%zu", cap); /* inclusive: at most cap + 1 bytes come back */
    redisReply *r = cmd_routed(app, &c, 4, (const char *[]){"GETRANGE", key, "0", end});
    if (!r) {
        job_set(j, 503, "Redis: %s\n", c->errstr[0] ? c->errstr : "no answer");
    } else if (r->type == REDIS_REPLY_ERROR) {
        job_set(j, 502, "Redis: %.200s\n", r->str);
    } else if (r->type != REDIS_REPLY_STRING || r->len == 0) {
        job_set(j, 404,
                "no evidence pcap for incident %s in Redis (never copied, expired, or "
                "too large for the sensor's copy)\n",
                j->id);
    } else if (r->len > cap) {
        freeReplyObject(r);
        r = cmd_routed(app, &c, 2, (const char *[]){"STRLEN", key});
        unsigned long long n = r && r->type == REDIS_REPLY_INTEGER ? (unsigned long long)r->integer
                                                                   : (unsigned long long)cap + 1;
        job_set(
            j, 413,
            "the evidence pcap of incident %s is %llu bytes, over evidence.max_mib (%lld MiB)\n",
            j->id, n, (long long)app->cfg.evidence_max_mib);
    } else if (web_pcap_whole((const uint8_t *)r->str, r->len) == 0) {
        job_set(j, 502, "Redis key %s does not hold a pcap file\n", key);
    } else {
        /* hiredis (0.14 and 1.x with its default allocator) made r->str with malloc: keep it
         * rather than copy up to max_mib; freeReplyObject frees NULL harmlessly */
        j->data = (uint8_t *)r->str;
        j->len = r->len;
        r->str = NULL;
        j->status = 200;
        j->source = "redis";
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
}

/* Reads up to want bytes of fd into a new buffer; the bytes read, or -1 (errno set). */
static long long read_all(int fd, size_t want, uint8_t **out)
{
    uint8_t *b = malloc(want ? want : 1);
    size_t got = 0;
    if (!b)
        return -1;
    while (got < want) {
        ssize_t k = read(fd, b + got, want - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            free(b);
            return -1;
        }
        if (k == 0)
            break; /* the file shrank meanwhile: what is there */
        got += (size_t)k;
    }
    *out = b;
    return (long long)got;
}

/* DIR/<id>.pcap, when evidence.dir is set. Leaves j alone (and returns false) when there is no
 * such file, so the Redis answer stands. */
static bool from_dir(struct web_app *app, struct web_evjob *j)
{
    char name[WEB_EVID_MAX + 8];
    snprintf(name, sizeof(name), "%s.pcap", j->id);
    int dfd = open(app->cfg.evidence_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return false;
    /* why O_NOFOLLOW: a link planted in the directory must not serve another file; O_NONBLOCK:
     * a FIFO must not hold the thread (fstat refuses it next) */
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        return false;
    struct stat st;
    bool found = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (found && (unsigned long long)st.st_size > cap_bytes(app)) {
        job_set(j, 413,
                "the evidence pcap of incident %s is %llu bytes, over evidence.max_mib "
                "(%lld MiB)\n",
                j->id, (unsigned long long)st.st_size, (long long)app->cfg.evidence_max_mib);
    } else if (found) {
        uint8_t *b = NULL;
        long long got = read_all(fd, (size_t)st.st_size, &b);
        size_t whole = got > 0 ? web_pcap_whole(b, (size_t)got) : 0;
        if (got < 0) {
            job_set(j, 500, "cannot read %s: %s\n", name, strerror(errno));
        } else if (!whole) {
            job_set(j, 502, "%s in evidence.dir is not a pcap file\n", name);
        } else {
            free(j->data);
            j->data = b;
            j->len = whole; /* a record the sensor is still writing is left out */
            b = NULL;
            j->status = 200;
            j->source = "dir";
        }
        free(b);
    }
    close(fd);
    return found;
}

static void fetch(struct web_app *app, struct web_ev *ev, struct web_evjob *j)
{
    from_redis(app, ev, j);
    if ((j->status == 404 || j->status == 503) && app->cfg.evidence_dir[0] && !from_dir(app, j) &&
        j->status == 404)
        job_set(j, 404,
                "no evidence pcap for incident %s in Redis (never copied, expired, or "
                "too large for the sensor's copy) nor in evidence.dir\n",
                j->id);
    pthread_mutex_lock(&ev->mu);
    if (j->status == 200)
        ev->served++;
    else if (j->status == 404)
        ev->missing++;
    else if (j->status == 413)
        ev->refused++;
    else
        ev->failed++;
    pthread_mutex_unlock(&ev->mu);
}

static void *ev_main(void *arg)
{
    struct web_app *app = arg;
    struct web_ev *ev = app->ev;
    pthread_mutex_lock(&ev->mu);
    for (;;) {
        while (!ev->head && !ev->stop)
            pthread_cond_wait(&ev->cv, &ev->mu);
        struct web_evjob *j = ev->head;
        if (!j)
            break;
        ev->head = j->next;
        if (!ev->head)
            ev->tail = NULL;
        bool stopping = ev->stop;
        pthread_mutex_unlock(&ev->mu);
        if (stopping)
            job_set(j, 503, "tunnelwatch-web is stopping\n");
        else
            fetch(app, ev, j);
        j->done(j); /* after this the job belongs to the HTTP side again */
        pthread_mutex_lock(&ev->mu);
    }
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

int web_ev_start(struct web_app *app)
{
    struct web_ev *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return TW_ENOMEM;
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    app->ev = ev;
    if (pthread_create(&ev->th, NULL, ev_main, app) != 0) {
        web_ev_free(app);
        return TW_ENOMEM;
    }
    ev->started = true;
    return TW_OK;
}

bool web_ev_reserve(struct web_app *app)
{
    struct web_ev *ev = app->ev;
    pthread_mutex_lock(&ev->mu);
    bool ok = !ev->stop && ev->active < (size_t)app->cfg.evidence_downloads;
    if (ok)
        ev->active++;
    else
        ev->busy++;
    pthread_mutex_unlock(&ev->mu);
    return ok;
}

void web_ev_release(struct web_app *app)
{
    struct web_ev *ev = app->ev;
    pthread_mutex_lock(&ev->mu);
    ev->active--;
    pthread_mutex_unlock(&ev->mu);
}

void web_ev_submit(struct web_app *app, struct web_evjob *j)
{
    struct web_ev *ev = app->ev;
    j->next = NULL;
    j->status = 0;
    pthread_mutex_lock(&ev->mu);
    if (ev->tail)
        ev->tail->next = j;
    else
        ev->head = j;
    ev->tail = j;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

void web_ev_stats(struct web_app *app, struct web_ev_stats *st)
{
    struct web_ev *ev = app->ev;
    memset(st, 0, sizeof(*st));
    if (!ev)
        return;
    pthread_mutex_lock(&ev->mu);
    st->served = ev->served;
    st->missing = ev->missing;
    st->refused = ev->refused;
    st->failed = ev->failed;
    st->busy = ev->busy;
    st->active = ev->active;
    pthread_mutex_unlock(&ev->mu);
}

void web_ev_stop(struct web_app *app)
{
    struct web_ev *ev = app->ev;
    if (!ev || !ev->started)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->stop = true;
    pthread_cond_signal(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    pthread_join(ev->th, NULL);
    ev->started = false;
}

void web_ev_free(struct web_app *app)
{
    struct web_ev *ev = app->ev;
    if (!ev)
        return;
    web_ev_stop(app);
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
    app->ev = NULL;
}
