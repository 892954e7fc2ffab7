/* sink.c - the alerts file's writer thread and its byte ring (see sink.h).
 *
 * Trade-offs. One ring of bytes, allocated once at the cap, holds whole lines: sink_put()
 * copies under the mutex (O(record), no allocation), so a line is either queued entirely or
 * not at all, and lines keep their order. The writer takes the contiguous run at the ring's
 * tail and writes it with the lock released; producers only ever write into the free part, so
 * the run stays valid. Every write waits at most 100 ms for POLLOUT and writes at most
 * PIPE_BUF bytes to anything but a regular file, so a stalled reader can never hold the
 * thread longer than that and the exit deadline is kept. After a failed write the whole queue
 * is dropped and counted: a full disk fails every record anyway, and a new FIFO reader must
 * start at a line boundary. Lines are counted by their newlines.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/sink.h"
#include "tunnelwatch/tw.h"

#define RETRY_MS          100        /* a FIFO without a reader is tried again this often */
#define SINK_LINGER_MS    5          /* a writer woken after the ring ran dry waits this long ... */
#define SINK_LINGER_BYTES (64 << 10) /* ... unless this much is queued already */

struct sink {
    struct sink_opts o;
    char *path; /* NULL: standard output */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* data queued, room made, reopen or stop asked */
    /* under mu: */
    char *ring;
    size_t tail, len; /* queued bytes start at tail, wrapping at o.cap */
    int fd;           /* -1: none (a FIFO waiting for a reader, or gone for good) */
    bool fifo, regular, lossless, broken;
    bool reopen, stopping;
    uint64_t in_total, out_total; /* bytes queued / taken from the queue since the start */
    uint64_t reopen_mark; /* in_total when the reopen was asked: what goes to the old file */
    int64_t deadline_ms;  /* when stopping: drop what is left after it; < 0 never */
    struct sink_stats st;
    bool failing, drop_said; /* said once until it clears */
    uint64_t drop_seen;      /* st.dropped when drop_said was last cleared */
    pthread_t th;
    bool started;
    bool linger; /* the ring ran dry: the next line waits SINK_LINGER_MS for company */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_ms(struct sink *s, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static const char *name(const struct sink *s)
{
    return s->path ? s->path : "standard output";
}

/* Opens the path (again): a FIFO without blocking (ENXIO: no reader yet, fd stays -1).
 * Returns 0 or an errno. */
static int open_path(struct sink *s, int *fd, bool *fifo, bool *regular)
{
    struct stat st;
    *fifo = stat(s->path, &st) == 0 && S_ISFIFO(st.st_mode);
    *fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (*fifo ? O_NONBLOCK : 0), 0666);
    if (*fd < 0)
        return *fifo && errno == ENXIO ? 0 : errno;
    *regular = fstat(*fd, &st) == 0 && S_ISREG(st.st_mode);
    return 0;
}

struct sink *sink_open(const struct sink_opts *o, char *err, size_t errlen)
{
    struct sink *s = calloc(1, sizeof(*s));
    if (!s || !(s->ring = malloc(o->cap ? o->cap : 1))) {
        free(s);
        snprintf(err, errlen, "alerts queue: out of memory");
        return NULL;
    }
    s->o = *o;
    s->fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    int e = 0;
    if (strcmp(o->path, "-") != 0) {
        s->path = strdup(o->path);
        e = s->path ? open_path(s, &s->fd, &s->fifo, &s->regular) : ENOMEM;
    } else {
        struct stat st;
        s->fd = STDOUT_FILENO;
        s->regular = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
    }
    if (e) {
        snprintf(err, errlen, "--alerts %s: %s", o->path, strerror(e));
        sink_free(s);
        return NULL;
    }
    s->lossless = o->lossless && !s->fifo;
    s->st.connected = s->fd >= 0;
    return s;
}

/* Lines in n queued bytes from the tail (a cut-off line counts: its newline is there). */
static uint64_t lines_at_tail(const struct sink *s, size_t n)
{
    uint64_t k = 0;
    size_t first = s->o.cap - s->tail < n ? s->o.cap - s->tail : n;
    for (const char *p = s->ring + s->tail, *e = p + first; (p = memchr(p, '\n', (size_t)(e - p)));
         p++)
        k++;
    for (const char *p = s->ring, *e = p + (n - first); (p = memchr(p, '\n', (size_t)(e - p))); p++)
        k++;
    return k;
}

/* Drops everything queued; returns the number of lines. */
static uint64_t drop_all(struct sink *s)
{
    uint64_t k = lines_at_tail(s, s->len);
    s->tail = s->len = 0;
    s->out_total = s->in_total;
    pthread_cond_broadcast(&s->cv);
    return k;
}

int sink_put(struct sink *s, const char *line, size_t len)
{
    size_t need = len + 1;
    pthread_mutex_lock(&s->mu);
    while (s->lossless && !s->stopping && need <= s->o.cap && s->o.cap - s->len < need)
        pthread_cond_wait(&s->cv, &s->mu);
    if (s->stopping || s->broken || s->o.cap - s->len < need) {
        if (s->broken)
            s->st.output_errors++; /* standard output's reader is gone for good */
        else
            s->st.dropped++;
        pthread_mutex_unlock(&s->mu);
        return TW_ELIMIT;
    }
    size_t head = (s->tail + s->len) % s->o.cap;
    size_t first = s->o.cap - head < len ? s->o.cap - head : len;
    memcpy(s->ring + head, line, first);
    memcpy(s->ring, line + first, len - first);
    s->ring[(head + len) % s->o.cap] = '\n';
    s->len += need;
    s->in_total += need;
    s->st.records++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return TW_OK;
}

/* Waits up to RETRY_MS for room, then writes: bytes written, 0 (not ready) or -errno. */
static ssize_t write_some(int fd, bool regular, const char *p, size_t n)
{
    struct pollfd pfd = {fd, POLLOUT, 0};
    int r = poll(&pfd, 1, RETRY_MS);
    if (r <= 0)
        return r < 0 && errno != EINTR ? -errno : 0;
    /* PIPE_BUF: POLLOUT on a pipe promises that much room, so a blocking descriptor (standard
     * output) cannot block the thread past the exit deadline */
    ssize_t w = write(fd, p, regular || n < PIPE_BUF ? n : PIPE_BUF);
    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    return w;
}

/* Under mu: a write failed with err. The queue is dropped and counted; a FIFO whose reader
 * went away waits for a new one, standard output's is gone for good. */
static void write_failed(struct sink *s, int err)
{
    s->st.output_errors += drop_all(s);
    bool gone = err == EPIPE && s->fifo && s->path;
    if (!s->failing && s->o.log) {
        if (gone)
            fprintf(s->o.log,
                    "tunnelwatch: alerts FIFO %s: the reader went away (%s); records lost are "
                    "counted as output_errors, the next reader (or SIGHUP) gets the new ones\n",
                    s->path, strerror(err));
        else
            fprintf(s->o.log,
                    "tunnelwatch: cannot write the alerts file: %s (records lost until it "
                    "takes them again; counted as output_errors)\n",
                    strerror(err));
    }
    s->failing = true;
    if (gone) {
        close(s->fd);
        s->fd = -1;
    } else if (err == EPIPE) {
        s->broken = true; /* nobody can open standard output again */
    }
    s->st.connected = s->fd >= 0;
}

/* Under mu, lock released around the write: the contiguous run at the tail. */
static void write_run(struct sink *s)
{
    size_t n = s->o.cap - s->tail < s->len ? s->o.cap - s->tail : s->len;
    if (s->reopen && s->reopen_mark - s->out_total < n)
        n = (size_t)(s->reopen_mark - s->out_total); /* the rest goes to the new file */
    const char *p = s->ring + s->tail;
    int fd = s->fd;
    pthread_mutex_unlock(&s->mu);
    ssize_t w = write_some(fd, s->regular, p, n);
    pthread_mutex_lock(&s->mu);
    if (w < 0) {
        write_failed(s, (int)-w);
        return;
    }
    if (w == 0)
        return;
    s->tail = (s->tail + (size_t)w) % s->o.cap;
    s->len -= (size_t)w;
    s->out_total += (uint64_t)w;
    s->failing = false;
    if (!s->len)
        s->tail = 0; /* keep runs long */
    pthread_cond_broadcast(&s->cv);
}

/* Under mu: the path again (SIGHUP, or a FIFO waiting for a reader). A regular file that cannot
 * be opened keeps the old descriptor. */
static void reopen_path(struct sink *s, bool asked)
{
    int fd;
    bool fifo, regular = false;
    pthread_mutex_unlock(&s->mu);
    int e = open_path(s, &fd, &fifo, &regular);
    pthread_mutex_lock(&s->mu);
    if (e) {
        if (asked && s->o.log)
            fprintf(s->o.log, "tunnelwatch: cannot reopen %s: %s (still writing the old file)\n",
                    s->path, strerror(e));
        return;
    }
    if (fd < 0 && !asked)
        return; /* still no reader */
    if (s->fd >= 0)
        close(s->fd);
    s->fd = fd;
    s->fifo = fifo;
    s->regular = regular;
    s->lossless = s->o.lossless && !fifo;
    s->failing = s->drop_said = false;
    s->drop_seen = s->st.dropped;
    s->st.connected = fd >= 0;
}

/* Under mu: the things said once, from the writer thread (capture threads only count). */
static void say(struct sink *s)
{
    if (s->st.dropped > s->drop_seen && !s->drop_said && s->o.log)
        fprintf(s->o.log,
                "tunnelwatch: alerts queue full (%zu KiB; %s is not taking records): records "
                "dropped, counted as alerts_file_dropped\n",
                s->o.cap / 1024, name(s));
    if (s->st.dropped > s->drop_seen)
        s->drop_said = true;
}

static bool past_deadline(const struct sink *s)
{
    return s->stopping && s->deadline_ms >= 0 && now_ms() >= s->deadline_ms;
}

static void *writer_main(void *arg)
{
    struct sink *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        say(s);
        if (s->reopen && (s->out_total >= s->reopen_mark || s->fd < 0)) {
            s->reopen = false;
            reopen_path(s, true);
            continue;
        }
        if (past_deadline(s)) {
            s->st.dropped += drop_all(s);
            break;
        }
        if (!s->len) {
            if (s->stopping)
                break;
            wait_ms(s, 1000);
        } else if (s->broken) {
            s->st.output_errors += drop_all(s);
        } else if (s->fd < 0) {
            reopen_path(s, false); /* a FIFO: has a reader come? */
            if (s->fd < 0)
                wait_ms(s, RETRY_MS);
        } else if (s->linger && !s->stopping && s->len < SINK_LINGER_BYTES) {
            /* woken by a line after the ring ran dry: let the next lines join it (one
             * wake-up and one write for a burst, not one per record) */
            s->linger = false;
            pthread_mutex_unlock(&s->mu);
            nanosleep(&(struct timespec){0, SINK_LINGER_MS * 1000000L}, NULL);
            pthread_mutex_lock(&s->mu);
        } else {
            write_run(s);
            s->linger = !s->len;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int sink_start(struct sink *s)
{
    if (s->fifo && s->fd < 0 && s->o.log) {
        fprintf(s->o.log,
                "tunnelwatch: alerts FIFO %s has no reader yet: records queue (up to %zu KiB) "
                "until one opens it; what does not fit is dropped (alerts_file_dropped)\n",
                s->path, s->o.cap / 1024);
    }
    if (tw_thread_start(&s->th, "tw-alerts-file", writer_main, s, false) != 0)
        return TW_ENOMEM;
    s->started = true;
    return TW_OK;
}

void sink_reopen(struct sink *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->path && !s->reopen) {
        s->reopen = true;
        s->reopen_mark = s->in_total; /* what was queued before the signal: the old file */
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sink_stop(struct sink *s, int wait_ms_)
{
    pthread_mutex_lock(&s->mu);
    if (!s->stopping) {
        s->stopping = true;
        s->deadline_ms = wait_ms_ < 0 || s->lossless ? -1 : now_ms() + wait_ms_;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sink_close(struct sink *s)
{
    if (!s)
        return;
    sink_stop(s, -1);
    if (s->started)
        pthread_join(s->th, NULL);
    s->started = false;
    pthread_mutex_lock(&s->mu);
    s->st.dropped += drop_all(s); /* a writer that never started */
    pthread_mutex_unlock(&s->mu);
}

void sink_free(struct sink *s)
{
    if (!s)
        return;
    if (s->started)
        sink_close(s);
    if (s->fd >= 0 && s->path)
        close(s->fd);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s->ring);
    free(s);
}

void sink_get_stats(struct sink *s, struct sink_stats *st)
{
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    st->queued_bytes = s->len;
    pthread_mutex_unlock(&s->mu);
}
