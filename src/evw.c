/* evw.c - the incident pcap writer (see evidence.h).
 *
 * Capture threads copy each packet into a malloc'd message and link it to a FIFO under one
 * mutex; the thread takes the whole list at once and writes it without the lock. Accounting
 * happens when a packet is queued, so the directory bound is kept before anything reaches the
 * disk: the thread removes the oldest incidents' files before writing a packet that would take
 * the total past max_total. The incident table is a creation-ordered array of pointers (oldest
 * first; capture threads append, only the thread removes). At most EVW_OPEN_MAX files are open
 * at once; a file pushed out is reopened for appending. A message names its incident by id, so
 * an incident removed while its packets were queued simply drops them (counted as removed).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/evidence.h"
#include "tunnelwatch/tw.h"

#define EVW_OPEN_MAX      32
#define EVW_WAKE_MS       100
#define EVW_INCIDENTS_MAX 65536
#define EVW_HDR           24u /* pcap file header */
#define EVW_REC           16u /* pcap record header */
#define EVDNS_MAX         1024
#define EVDNS_PKTS        8  /* packets kept per address: four query/answer pairs */
#define EVDNS_SENT        16 /* incidents remembered per address (each gets the packets once) */

struct evmsg {
    struct evmsg *next;
    char id[40];
    bool sync; /* no packet: refresh the Redis copy */
    int dlt;
    struct pcap_pkthdr h;
    uint8_t data[];
};

struct evinc {
    char id[40];
    int dlt;
    pcap_t *dead;
    pcap_dumper_t *dump;     /* NULL: closed (or not yet created) */
    uint64_t bytes, packets; /* queued or written */
    uint64_t written;        /* on disk */
    uint64_t used;           /* LRU tick of the open file */
    int64_t redis_us;        /* last Redis copy (monotonic), 0 none */
    bool dirty, failed, old; /* old: left by an earlier run (bytes only) */
    bool flush;              /* written to since the last flush */
    bool full;               /* hit the directory bound alone: later packets dropped (a prefix
                              * without gaps) */
};

struct evdns_pkt {
    int dlt;
    struct pcap_pkthdr h;
    uint8_t *data;
};

struct evdns {
    struct tw_addr addr;
    int n;
    struct evdns_pkt p[EVDNS_PKTS];
    char sent[EVDNS_SENT][40];
    int n_sent;
};

/* A flagged flow's server, for DNS packets that another worker keeps after the flag. */
struct evreg {
    struct tw_addr addr;
    char id[40];
    int64_t since_us;
};
#define EVREG_MAX 256

struct evw {
    struct evw_opts o;
    struct evreg reg[EVREG_MAX];
    size_t reg_next;
    char dir[PATH_MAX];
    char *prefix; /* owned copy of o.redis_prefix */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t room; /* o.wait: the thread took the queue */
    pthread_t th;
    bool started, stopping;
    struct evmsg *head, *tail;
    size_t queued;
    struct evinc **inc;
    size_t n_inc, cap_inc;
    uint64_t total, tick; /* total: queued or written; disk (the thread's): on disk */
    uint64_t disk;
    int n_open;
    bool failing;
    struct evw_stats st;
    uint64_t run_removed, run_removed_packets; /* this run's incident files removed */
    struct evdns **dns; /* EVDNS_MAX slots, each allocated on first use; round robin */
    size_t dns_next;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* An incident id as a file name: ours are hex and '-'; anything else (an id another sensor
 * chose, through the fleet) becomes '_', so no id can name a path outside dir. */
static void safe_id(char out[40], const char *id)
{
    size_t i = 0;
    for (; id[i] && i < 39; i++) {
        char c = id[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '_';
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

static void path_of(const struct evw *w, const char *id, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.pcap", w->dir, id);
}

/* ---------- incident table (under mu) ---------- */

static struct evinc *inc_find(struct evw *w, const char *id, size_t *at)
{
    for (size_t i = w->n_inc; i-- > 0;)
        if (!strcmp(w->inc[i]->id, id)) {
            if (at)
                *at = i;
            return w->inc[i];
        }
    return NULL;
}

static struct evinc *inc_add(struct evw *w, const char *id, int dlt, uint64_t bytes, bool old)
{
    if (w->n_inc == w->cap_inc) {
        size_t nc = w->cap_inc ? w->cap_inc * 2 : 64;
        struct evinc **ni = realloc(w->inc, nc * sizeof(*ni));
        if (!ni)
            return NULL;
        w->inc = ni;
        w->cap_inc = nc;
    }
    struct evinc *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    snprintf(in->id, sizeof(in->id), "%s", id);
    in->dlt = dlt;
    in->bytes = bytes;
    in->old = old;
    w->inc[w->n_inc++] = in;
    w->total += bytes;
    return in;
}

/* Takes entry i out of the table (under mu); the caller closes and unlinks it. */
static struct evinc *inc_take(struct evw *w, size_t i)
{
    struct evinc *in = w->inc[i];
    memmove(&w->inc[i], &w->inc[i + 1], (w->n_inc - i - 1) * sizeof(*w->inc));
    w->n_inc--;
    w->total -= in->bytes;
    w->disk -= in->written;
    return in;
}

static void inc_close(struct evw *w, struct evinc *in)
{
    if (in->dump) {
        pcap_dump_close(in->dump);
        w->n_open--;
    }
    if (in->dead)
        pcap_close(in->dead);
    in->dump = NULL;
    in->dead = NULL;
}

/* ---------- queue ---------- */

static int enqueue(struct evw *w, struct evmsg *m, size_t cost, uint64_t file_bytes)
{
    pthread_mutex_lock(&w->mu);
    struct evinc *in = NULL;
    /* a replay waits for the thread (an empty queue takes any packet: no wait forever) */
    while (w->o.wait && w->started && !w->stopping && w->queued &&
           w->queued + cost > w->o.queue_bytes) {
        pthread_cond_signal(&w->cv);
        pthread_cond_wait(&w->room, &w->mu);
    }
    if (w->stopping || w->queued + cost > w->o.queue_bytes) {
        w->st.dropped_queue += !m->sync;
        pthread_mutex_unlock(&w->mu);
        free(m);
        return TW_ELIMIT;
    }
    if (!m->sync) {
        in = inc_find(w, m->id, NULL); /* past EVW_INCIDENTS_MAX the thread removes the oldest */
        if (in && in->old && in->dlt < 0)
            in->dlt = m->dlt;
        if (!in)
            in = inc_add(w, m->id, m->dlt, EVW_HDR, false);
        if (!in) {
            w->st.dropped_queue++;
            pthread_mutex_unlock(&w->mu);
            free(m);
            return TW_ELIMIT;
        }
        in->bytes += file_bytes;
        in->packets++;
        w->total += file_bytes;
    }
    m->next = NULL;
    if (w->tail)
        w->tail->next = m;
    else
        w->head = m;
    w->tail = m;
    w->queued += cost;
    /* the thread wakes every EVW_WAKE_MS by itself: a signal per packet would cost a context
     * switch per packet on the capture core */
    if (m->sync || w->queued > w->o.queue_bytes / 4)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return TW_OK;
}

int evw_put(struct evw *w, const char *incident, int dlt, const struct pcap_pkthdr *h,
            const uint8_t *data)
{
    struct evmsg *m = malloc(sizeof(*m) + h->caplen);
    if (!m) {
        pthread_mutex_lock(&w->mu);
        w->st.dropped_queue++;
        pthread_mutex_unlock(&w->mu);
        return TW_ELIMIT;
    }
    safe_id(m->id, incident);
    m->sync = false;
    m->dlt = dlt;
    m->h = *h;
    memcpy(m->data, data, h->caplen);
    return enqueue(w, m, sizeof(*m) + h->caplen, EVW_REC + h->caplen);
}

void evw_sync(struct evw *w, const char *incident)
{
    if (!w->o.redis_max_bytes || !w->o.redis_put)
        return;
    struct evmsg *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    safe_id(m->id, incident);
    m->sync = true;
    (void)enqueue(w, m, sizeof(*m), 0);
}

/* ---------- the thread ---------- */

/* Makes room for the packet of in (under mu): the oldest other incidents' files go, their
 * paths collected in gone (unlinked by the caller without the lock). false: in alone is over
 * the bound, the packet is dropped. */
static bool make_room(struct evw *w, struct evinc *in, uint64_t cost, struct evinc **gone,
                      int *n_gone, int max)
{
    while (w->disk + cost > w->o.max_total_bytes || w->n_inc > EVW_INCIDENTS_MAX) {
        size_t i = 0;
        while (i < w->n_inc && w->inc[i] == in)
            i++;
        if (i >= w->n_inc || *n_gone >= max)
            return w->disk + cost <= w->o.max_total_bytes;
        struct evinc *g = inc_take(w, i);
        gone[(*n_gone)++] = g;
        w->st.removed++;
        w->run_removed += !g->old;
        w->run_removed_packets += g->old ? 0 : g->packets;
    }
    return true;
}

static void remove_files(struct evw *w, struct evinc **gone, int n)
{
    char path[PATH_MAX + 48];
    for (int i = 0; i < n; i++) {
        inc_close(w, gone[i]);
        path_of(w, gone[i]->id, path, sizeof(path));
        (void)unlink(path);
        free(gone[i]);
    }
}

/* The least recently written open file is closed when EVW_OPEN_MAX are open. */
static void close_lru(struct evw *w)
{
    struct evinc *lru = NULL;
    for (size_t i = 0; i < w->n_inc; i++)
        if (w->inc[i]->dump && (!lru || w->inc[i]->used < lru->used))
            lru = w->inc[i];
    if (lru)
        inc_close(w, lru);
}

static void write_failed(struct evw *w, struct evinc *in, const char *what)
{
    w->st.write_errors++;
    if (!w->failing && w->o.log)
        fprintf(w->o.log,
                "tunnelwatch: evidence: cannot write %s/%s.pcap: %s (packets lost until writes "
                "succeed again; counted as evidence_write_errors)\n",
                w->dir, in->id, what);
    w->failing = true;
}

/* Opens in's file: created with its header on its first packet, appended to afterwards. */
static bool inc_open(struct evw *w, struct evinc *in)
{
    char path[PATH_MAX + 48];
    if (in->dump)
        return true;
    if (w->n_open >= EVW_OPEN_MAX)
        close_lru(w);
    path_of(w, in->id, path, sizeof(path));
    in->dead = pcap_open_dead(in->dlt, 262144);
    if (in->dead)
        in->dump =
            in->written ? pcap_dump_open_append(in->dead, path) : pcap_dump_open(in->dead, path);
    if (!in->dump) {
        write_failed(w, in, in->dead ? pcap_geterr(in->dead) : "out of memory");
        if (in->dead)
            pcap_close(in->dead);
        in->dead = NULL;
        return false;
    }
    if (!in->written) {
        in->written = EVW_HDR;
        w->disk += EVW_HDR;
        w->st.files++;
    }
    w->n_open++;
    return true;
}

static void write_packet(struct evw *w, struct evinc *in, const struct evmsg *m)
{
    in->used = ++w->tick;
    if (!inc_open(w, in))
        return;
    pcap_dump((u_char *)in->dump, &m->h, m->data);
    in->flush = true; /* flushed after the batch (flush_all): one write per file and batch */
    in->written += EVW_REC + m->h.caplen;
    w->disk += EVW_REC + m->h.caplen;
    in->dirty = true;
    w->st.packets++;
    w->st.bytes += m->h.caplen;
}

/* The batch's writes reach the files; a failed flush (full disk) is counted and said once, and
 * the file is closed (reopened for appending later). */
static void flush_all(struct evw *w)
{
    for (size_t i = 0; i < w->n_inc; i++) {
        struct evinc *in = w->inc[i];
        if (!in->flush || !in->dump)
            continue;
        in->flush = false;
        if (pcap_dump_flush(in->dump) != 0 || ferror(pcap_dump_file(in->dump))) {
            write_failed(w, in, strerror(errno));
            inc_close(w, in);
        } else {
            w->failing = false;
        }
    }
}

/* One message, taken off the queue. */
static void handle(struct evw *w, struct evmsg *m)
{
    struct evinc *gone[64];
    int n_gone = 0;
    pthread_mutex_lock(&w->mu);
    struct evinc *in = inc_find(w, m->id, NULL);
    bool ok = in != NULL;
    if (in && !m->sync && m->dlt != in->dlt) { /* a pcap file has one link type */
        in->bytes -= EVW_REC + m->h.caplen;
        in->packets--;
        w->total -= EVW_REC + m->h.caplen;
        w->st.dropped_linktype++;
        pthread_mutex_unlock(&w->mu);
        return;
    }
    uint64_t cost = EVW_REC + m->h.caplen;
    if (in && !m->sync &&
        (in->full || !make_room(w, in, cost + (in->written ? 0 : EVW_HDR), gone, &n_gone, 64))) {
        in->full = true;
        in->bytes -= cost;
        in->packets--;
        w->total -= cost;
        w->st.dropped_disk++;
        ok = false;
    }
    pthread_mutex_unlock(&w->mu);
    remove_files(w, gone, n_gone);
    if (!in && !m->sync) {
        pthread_mutex_lock(&w->mu);
        w->st.dropped_disk++; /* its incident was removed while it waited */
        pthread_mutex_unlock(&w->mu);
    }
    if (ok && m->sync)
        in->redis_us = 0; /* due now */
    else if (ok)
        write_packet(w, in, m);
}

/* Reads at most max bytes of in's pcap, cut after its last whole packet. */
static uint8_t *read_copy(struct evw *w, struct evinc *in, size_t max, size_t *n)
{
    char path[PATH_MAX + 48];
    path_of(w, in->id, path, sizeof(path));
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *b = malloc(max);
    size_t got = b ? fread(b, 1, max, f) : 0;
    fclose(f);
    size_t off = EVW_HDR;
    while (got >= off && off + EVW_REC <= got) {
        uint32_t incl;
        memcpy(&incl, b + off + 8, 4); /* written in our own byte order */
        if (incl > got - off - EVW_REC)
            break;
        off += EVW_REC + incl;
    }
    if (!b || got < EVW_HDR) {
        free(b);
        return NULL;
    }
    *n = off;
    return b;
}

/* The Redis copies that are due: a changed pcap, at most once a second each. */
static void redis_copies(struct evw *w, bool all)
{
    if (!w->o.redis_max_bytes || !w->o.redis_put)
        return;
    int64_t now = mono_us();
    for (size_t i = 0; i < w->n_inc; i++) {
        struct evinc *in = w->inc[i]; /* only this thread removes entries */
        if (!in->dirty || (!all && in->redis_us && now - in->redis_us < 1000000))
            continue;
        if (in->dump)
            (void)pcap_dump_flush(in->dump);
        size_t n = 0;
        uint8_t *b = read_copy(w, in, w->o.redis_max_bytes, &n);
        char key[256];
        snprintf(key, sizeof(key), "%s%s", w->prefix, in->id);
        bool ok = b && w->o.redis_put(w->o.redis_ud, key, b, n, w->o.redis_ttl_s);
        free(b);
        pthread_mutex_lock(&w->mu);
        if (ok)
            w->st.redis_copies++;
        else
            w->st.redis_dropped++;
        pthread_mutex_unlock(&w->mu);
        in->dirty = false;
        in->redis_us = now;
    }
}

static void *run(void *arg)
{
    struct evw *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += EVW_WAKE_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            if (!w->head)
                break;
        }
        struct evmsg *m = w->head;
        bool stopping = w->stopping;
        w->head = w->tail = NULL;
        w->queued = 0;
        pthread_cond_broadcast(&w->room);
        pthread_mutex_unlock(&w->mu);
        while (m) {
            struct evmsg *next = m->next;
            handle(w, m);
            free(m);
            m = next;
        }
        flush_all(w);
        redis_copies(w, stopping);
        pthread_mutex_lock(&w->mu);
        if (stopping && !w->head)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---------- life cycle ---------- */

static int old_cmp(const void *a, const void *b)
{
    const struct evinc *x = *(struct evinc *const *)a, *y = *(struct evinc *const *)b;
    return x->used < y->used ? -1 : x->used > y->used;
}

/* The pcaps an earlier run left in dir count against max_total, oldest (mtime) first. */
static void scan_old(struct evw *w)
{
    DIR *d = opendir(w->dir);
    struct dirent *de;
    char path[PATH_MAX + 300];
    while (d && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        struct stat st;
        if (n < 6 || n - 5 >= 40 || strcmp(de->d_name + n - 5, ".pcap"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", w->dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        char id[40];
        snprintf(id, sizeof(id), "%.*s", (int)(n - 5), de->d_name);
        struct evinc *in = inc_add(w, id, -1, (uint64_t)st.st_size, true);
        if (!in)
            break;
        in->written = (uint64_t)st.st_size;
        w->disk += in->written;
        in->used = (uint64_t)st.st_mtime;
    }
    if (d)
        closedir(d);
    if (w->n_inc > 1)
        qsort(w->inc, w->n_inc, sizeof(*w->inc), old_cmp);
    for (size_t i = 0; i < w->n_inc; i++)
        w->inc[i]->used = 0;
}

struct evw *evw_new(const struct evw_opts *o, char *err, size_t errlen)
{
    if (mkdir(o->dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "evidence.dir %s: %s", o->dir, strerror(errno));
        return NULL;
    }
    struct evw *w = calloc(1, sizeof(*w));
    if (!w || !realpath(o->dir, w->dir) || access(w->dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "evidence.dir %s: %s", o->dir, w ? strerror(errno) : "out of memory");
        free(w);
        return NULL;
    }
    w->o = *o;
    w->prefix = strdup(o->redis_prefix ? o->redis_prefix : "tunnelwatch:evidence:");
    w->dns = calloc(EVDNS_MAX, sizeof(*w->dns));
    if (!w->prefix || !w->dns) {
        snprintf(err, errlen, "out of memory");
        evw_free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->room, NULL);
    scan_old(w);
    return w;
}

int evw_start(struct evw *w)
{
    if (tw_thread_start(&w->th, "tw-evidence", run, w, false) != 0)
        return TW_ENOMEM;
    w->started = true;
    return TW_OK;
}

void evw_stop(struct evw *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_cond_broadcast(&w->room);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->th, NULL);
    w->started = false;
    for (size_t i = 0; i < w->n_inc; i++)
        inc_close(w, w->inc[i]);
}

void evw_free(struct evw *w)
{
    if (!w)
        return;
    if (w->prefix) { /* fully built */
        evw_stop(w);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        pthread_cond_destroy(&w->room);
    }
    while (w->head) {
        struct evmsg *m = w->head;
        w->head = m->next;
        free(m);
    }
    for (size_t i = 0; i < w->n_inc; i++)
        free(w->inc[i]);
    free(w->inc);
    for (size_t i = 0; w->dns && i < EVDNS_MAX; i++) {
        for (int k = 0; w->dns[i] && k < w->dns[i]->n; k++)
            free(w->dns[i]->p[k].data);
        free(w->dns[i]);
    }
    free(w->dns);
    free(w->prefix);
    free(w);
}

void evw_get_stats(struct evw *w, struct evw_stats *st)
{
    pthread_mutex_lock(&w->mu);
    *st = w->st;
    st->dir_bytes = w->total;
    st->queued_bytes = w->queued;
    pthread_mutex_unlock(&w->mu);
}

bool evw_info(struct evw *w, const char *incident0, char *path, size_t pathlen, uint64_t *bytes,
              uint64_t *packets, char *key, size_t keylen)
{
    char incident[40];
    if (w->o.unnamed)
        return false;
    safe_id(incident, incident0);
    pthread_mutex_lock(&w->mu);
    struct evinc *in = inc_find(w, incident, NULL);
    if (in) {
        *bytes = in->bytes;
        *packets = in->packets;
    }
    pthread_mutex_unlock(&w->mu);
    if (!in)
        return false;
    path_of(w, incident, path, pathlen);
    if (w->o.redis_max_bytes && w->o.redis_put)
        snprintf(key, keylen, "%s%s", w->prefix, incident);
    else if (keylen)
        key[0] = '\0';
    return true;
}

/* ---------- --write-evidence ---------- */

/* The losses of this run's evidence, for evw_merge's report ("" when none). */
static void losses(struct evw *w, char *out, size_t n)
{
    const struct evw_stats *st = &w->st;
    uint64_t lost = st->dropped_queue + st->dropped_disk + st->write_errors + st->dropped_linktype +
                    w->run_removed_packets;
    out[0] = '\0';
    if (lost)
        snprintf(out, n,
                 "; %" PRIu64 " packets lost (%" PRIu64 " queue full, %" PRIu64 " over "
                 "evidence.max_total_mib, %" PRIu64 " write errors, %" PRIu64 " another link "
                 "type, %" PRIu64 " in %" PRIu64 " incident files removed)",
                 lost, st->dropped_queue, st->dropped_disk, st->write_errors, st->dropped_linktype,
                 w->run_removed_packets, w->run_removed);
}

int evw_merge(struct evw *w, const char *path, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu); /* the thread is stopped: nothing changes the table now */
    size_t n = 0;
    char **paths = calloc(w->n_inc ? w->n_inc : 1, sizeof(*paths));
    for (size_t i = 0; paths && i < w->n_inc; i++)
        if (!w->inc[i]->old && w->inc[i]->written && (paths[n] = malloc(PATH_MAX + 48)) != NULL)
            path_of(w, w->inc[i]->id, paths[n++], PATH_MAX + 48);
    char lost[400];
    losses(w, lost, sizeof(lost));
    pthread_mutex_unlock(&w->mu);
    struct evidence_merge_stats ms;
    int rc =
        paths ? evidence_merge((const char *const *)paths, n, path, &ms, err, errlen) : TW_ENOMEM;
    if (!paths)
        snprintf(err, errlen, "out of memory");
    else if (rc == TW_OK && !err[0]) {
        int k = snprintf(err, errlen, "%" PRIu64 " packets of %zu incidents written to %s",
                         ms.packets, n, path);
        if (ms.duplicates && k >= 0 && (size_t)k < errlen)
            k += snprintf(err + k, errlen - (size_t)k, " (%" PRIu64 " two incidents held, once)",
                          ms.duplicates);
        if (k >= 0 && (size_t)k < errlen)
            snprintf(err + k, errlen - (size_t)k, "%s%s%s",
                     ms.other_dlt ? "; packets of another link type left out" : "",
                     ms.unreadable ? "; unreadable packets left out" : "", lost);
    } else if (rc == TW_OK)
        snprintf(err + strlen(err), errlen - strlen(err), "%s", lost);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    if (rc != TW_OK)
        return rc;
    return ms.packets > INT_MAX ? INT_MAX : (int)ms.packets;
}

/* ---------- DNS store ---------- */

static struct evdns *dns_find(struct evw *w, const struct tw_addr *addr)
{
    for (size_t i = 0; i < EVDNS_MAX; i++)
        if (w->dns[i] && tw_addr_eq(&w->dns[i]->addr, addr))
            return w->dns[i];
    return NULL;
}

static void dns_add(struct evw *w, struct evdns *e, int dlt, const struct pcap_pkthdr *h,
                    const uint8_t *d)
{
    if (!h)
        return;
    uint8_t *c = malloc(h->caplen ? h->caplen : 1);
    if (!c)
        return;
    memcpy(c, d, h->caplen);
    if (e->n == EVDNS_PKTS) { /* the oldest goes */
        free(e->p[0].data);
        memmove(&e->p[0], &e->p[1], (EVDNS_PKTS - 1) * sizeof(e->p[0]));
        e->n--;
    }
    e->p[e->n].dlt = dlt;
    e->p[e->n].h = *h;
    e->p[e->n].data = c;
    e->n++;
    w->st.dns_stored++;
}

static bool kept(const struct evdns *e, const struct pcap_pkthdr *h, const uint8_t *d)
{
    for (int k = 0; k < e->n; k++)
        if (e->p[k].h.caplen == h->caplen && !memcmp(&e->p[k].h.ts, &h->ts, sizeof(h->ts)) &&
            !memcmp(e->p[k].data, d, h->caplen))
            return true;
    return false;
}

/* Incidents whose flagged flow to e's address started after this answer was captured but was
 * flagged before it was kept (under mu); each is marked as having e's packets. */
static int late_incidents(struct evw *w, struct evdns *e, const struct pcap_pkthdr *ah,
                          char (*late)[40], int max)
{
    int n = 0;
    int64_t at = (int64_t)ah->ts.tv_sec * 1000000 + ah->ts.tv_usec;
    for (size_t i = 0; i < EVREG_MAX && n < max; i++) {
        struct evreg *rg = &w->reg[i];
        if (!rg->id[0] || rg->since_us < at || !tw_addr_eq(&rg->addr, &e->addr))
            continue;
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup = dup || !strcmp(late[k], rg->id);
        if (dup)
            continue;
        snprintf(late[n++], 40, "%s", rg->id);
        snprintf(e->sent[e->n_sent % EVDNS_SENT], 40, "%s", rg->id);
        e->n_sent++;
    }
    return n;
}

void evw_dns_keep(struct evw *w, const struct tw_addr *addr, int dlt, const struct pcap_pkthdr *qh,
                  const uint8_t *q, const struct pcap_pkthdr *ah, const uint8_t *a)
{
    pthread_mutex_lock(&w->mu);
    struct evdns *e = dns_find(w, addr);
    if (!e) {
        struct evdns **slot = &w->dns[w->dns_next];
        for (int k = 0; *slot && k < (*slot)->n; k++)
            free((*slot)->p[k].data); /* the slot's previous address goes */
        if (!*slot && !(*slot = malloc(sizeof(**slot)))) {
            pthread_mutex_unlock(&w->mu);
            return;
        }
        e = *slot;
        memset(e, 0, sizeof(*e));
        e->addr = *addr;
        w->dns_next = (w->dns_next + 1) % EVDNS_MAX;
    }
    /* a query that two answers share, an answer with two records for addr: kept once */
    if (qh && kept(e, qh, q))
        qh = NULL;
    if (kept(e, ah, a)) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    dns_add(w, e, dlt, qh, q);
    dns_add(w, e, dlt, ah, a);
    char late[8][40];
    int n_late = late_incidents(w, e, ah, late, 8);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < n_late; i++) { /* no lock held: evw_put takes it */
        if (qh)
            (void)evw_put(w, late[i], dlt, qh, q);
        (void)evw_put(w, late[i], dlt, ah, a);
    }
}

void evw_dns_attach(struct evw *w, const char *incident, const struct tw_addr *addr,
                    int64_t since_us)
{
    struct evdns_pkt copy[EVDNS_PKTS];
    int n = 0;
    pthread_mutex_lock(&w->mu);
    struct evreg *rg = &w->reg[w->reg_next];
    w->reg_next = (w->reg_next + 1) % EVREG_MAX;
    rg->addr = *addr;
    snprintf(rg->id, sizeof(rg->id), "%s", incident);
    rg->since_us = since_us;
    struct evdns *e = dns_find(w, addr);
    for (int k = 0; e && k < e->n_sent && k < EVDNS_SENT; k++)
        if (!strcmp(e->sent[k], incident))
            e = NULL; /* this incident has them */
    if (e) {
        snprintf(e->sent[e->n_sent % EVDNS_SENT], 40, "%s", incident);
        e->n_sent++;
        for (int k = 0; k < e->n; k++) {
            copy[n] = e->p[k];
            copy[n].data = malloc(e->p[k].h.caplen ? e->p[k].h.caplen : 1);
            if (copy[n].data)
                memcpy(copy[n++].data, e->p[k].data, e->p[k].h.caplen);
        }
    }
    pthread_mutex_unlock(&w->mu);
    for (int k = 1; k < n; k++) /* in capture order (insertion sort of at most 8) */
        for (int j = k; j > 0 && timercmp(&copy[j].h.ts, &copy[j - 1].h.ts, <); j--) {
            struct evdns_pkt t = copy[j];
            copy[j] = copy[j - 1];
            copy[j - 1] = t;
        }
    for (int k = 0; k < n; k++) {
        (void)evw_put(w, incident, copy[k].dlt, &copy[k].h, copy[k].data);
        free(copy[k].data);
    }
}
