/* spool.c - on-disk FIFO of alert records (see include/tunnelwatch/spool.h).
 *
 * Trade-offs. Segments are append-only and only ever deleted whole, so the cap is enforced at
 * segment granularity (the oldest segment goes first) and dropping needs no rewrite; the cost
 * is that up to one segment of already-read records stays on disk until its last record is
 * consumed. The read position is kept in memory only: after a restart the head segment is
 * re-delivered from its start, bounded by seg_bytes (at-least-once, consumers de-duplicate on
 * event.id). Appends are synced in batches rather than per record to keep a burst cheap.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/spool.h"

#define HDR_LEN     8u
#define PEEK_CHUNK  (256u * 1024u)
#define SEG_NAMELEN 32 /* "seg-" + 16 hex + ".log" + NUL = 25 */

struct seg {
    uint64_t seq;
    uint64_t bytes;    /* file size */
    uint64_t records;  /* valid records in the file */
    uint64_t consumed; /* records committed (only the head segment has any) */
    uint64_t rd_off;   /* file offset of the first unconsumed record */
};

struct spool {
    char *dir;
    int lock_fd;
    uint64_t max_bytes, seg_bytes;
    unsigned sync_every;
    int sync_ms;

    struct seg *segs; /* oldest first */
    size_t nsegs, cap_segs;
    uint64_t next_seq;
    int wfd;          /* active segment (segs[nsegs - 1]) open for append, or -1 */
    int rfd;          /* head segment open for reading, or -1 */
    uint64_t rfd_seq; /* which segment rfd is */

    unsigned unsynced;
    int64_t unsynced_since_ms;

    char *buf; /* peek buffer */
    size_t buf_cap;
    uint64_t *peek_end; /* file offset after each peeked record */
    size_t peek_cap, peek_n;

    uint64_t total_bytes, total_records;
    struct spool_stats st;
};

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t spool_crc32(const void *buf, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    const uint8_t *p = buf;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void seg_path(const struct spool *s, uint64_t seq, char *out, size_t n)
{
    snprintf(out, n, "%s/seg-%016" PRIx64 ".log", s->dir, seq);
}

static int fsync_dir(const struct spool *s)
{
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return TW_EIO;
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? TW_OK : TW_EIO;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return TW_OK;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *np = realloc(*p, n * elem);
    if (!np)
        return TW_ENOMEM;
    *p = np;
    *cap = n;
    return TW_OK;
}

/* Reads exactly n bytes at off; false on a short read or error. */
static bool pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return true;
}

/* Checks the segment record by record; truncates the file at the first record that is short
 * or fails its CRC (a write torn by a crash or power loss) and counts it. */
static int scan_segment(struct spool *s, struct seg *g)
{
    char path[4096];
    seg_path(s, g->seq, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return TW_EIO;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return TW_EIO;
    }
    uint64_t size = (uint64_t)sb.st_size, off = 0;
    while (off < size) {
        uint8_t hdr[HDR_LEN];
        if (size - off < HDR_LEN || !pread_full(fd, hdr, HDR_LEN, off))
            break;
        uint32_t len = get_le32(hdr), crc = get_le32(hdr + 4);
        /* A corrupt length must not make us allocate or read past the file. */
        if (len > SPOOL_REC_MAX || len > size - off - HDR_LEN)
            break;
        if (grow((void **)&s->buf, &s->buf_cap, len ? len : 1, 1) != TW_OK) {
            close(fd);
            return TW_ENOMEM;
        }
        if (!pread_full(fd, s->buf, len, off + HDR_LEN) || spool_crc32(s->buf, len) != crc)
            break;
        off += HDR_LEN + len;
        g->records++;
    }
    if (off < size) {
        s->st.torn++;
        if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0) {
            close(fd);
            return TW_EIO;
        }
    }
    close(fd);
    g->bytes = off;
    return TW_OK;
}

static int cmp_seg(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int load_segments(struct spool *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "spool dir %s: %s", s->dir, strerror(errno));
        return TW_EIO;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        /* Only our exact name shape: anything else in the dir is left alone. */
        if (strlen(n) != 24 || strncmp(n, "seg-", 4) != 0 || strcmp(n + 20, ".log") != 0)
            continue;
        uint64_t seq = 0;
        bool ok = true;
        for (int i = 4; i < 20; i++) {
            char ch = n[i];
            int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (v < 0) {
                ok = false;
                break;
            }
            seq = seq << 4 | (uint64_t)v;
        }
        if (!ok)
            continue;
        if (grow((void **)&s->segs, &s->cap_segs, s->nsegs + 1, sizeof(*s->segs)) != TW_OK) {
            closedir(d);
            snprintf(err, errlen, "out of memory");
            return TW_ENOMEM;
        }
        s->segs[s->nsegs++] = (struct seg){.seq = seq};
    }
    closedir(d);
    if (s->nsegs > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(s->segs, s->nsegs, sizeof(*s->segs), cmp_seg);
    size_t kept = 0;
    for (size_t i = 0; i < s->nsegs; i++) {
        struct seg g = s->segs[i];
        int rc = scan_segment(s, &g);
        if (rc != TW_OK) {
            snprintf(err, errlen, "spool dir %s: cannot read segment %016" PRIx64 ": %s", s->dir,
                     g.seq, strerror(errno));
            return rc;
        }
        if (g.seq >= s->next_seq)
            s->next_seq = g.seq + 1;
        if (g.records == 0) {
            char path[4096];
            seg_path(s, g.seq, path, sizeof(path));
            unlink(path);
            continue;
        }
        s->segs[kept++] = g;
        s->total_bytes += g.bytes;
        s->total_records += g.records;
    }
    s->nsegs = kept;
    return TW_OK;
}

struct spool *spool_open(const struct spool_opts *o, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (!o || !o->dir || !*o->dir) {
        snprintf(err, errlen, "spool: no directory given");
        return NULL;
    }
    struct spool *s = calloc(1, sizeof(*s));
    if (!s || !(s->dir = strdup(o->dir))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->lock_fd = s->wfd = s->rfd = -1;
    s->max_bytes = o->max_bytes ? o->max_bytes : 256ull << 20;
    s->seg_bytes = o->seg_bytes ? o->seg_bytes : s->max_bytes / 8;
    if (!o->seg_bytes) {
        if (s->seg_bytes < 4096)
            s->seg_bytes = 4096;
        if (s->seg_bytes > 64ull << 20)
            s->seg_bytes = 64ull << 20;
    }
    /* A segment larger than the cap could never be dropped to make room. */
    if (s->seg_bytes > s->max_bytes)
        s->seg_bytes = s->max_bytes;
    s->sync_every = o->sync_every ? o->sync_every : 64;
    s->sync_ms = o->sync_ms > 0 ? o->sync_ms : 1000;

    if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "spool dir %s: cannot create: %s", s->dir, strerror(errno));
        goto fail;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/lock", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        snprintf(err, errlen, "spool dir %s: cannot open lock file %s: %s", s->dir, path,
                 strerror(errno));
        goto fail;
    }
    /* Two sensors appending to one spool would interleave and delete each other's
     * segments: the second one must refuse to start. */
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            snprintf(err, errlen,
                     "spool dir %s is in use by another process (lock %s held): give each "
                     "sensor its own spool_dir",
                     s->dir, path);
        else
            snprintf(err, errlen, "spool dir %s: flock %s: %s", s->dir, path, strerror(errno));
        goto fail;
    }
    if (access(s->dir, W_OK) != 0) {
        snprintf(err, errlen, "spool dir %s is not writable: %s", s->dir, strerror(errno));
        goto fail;
    }
    if (load_segments(s, err, errlen) != TW_OK)
        goto fail;
    return s;
fail:
    spool_close(s);
    return NULL;
}

int spool_sync(struct spool *s)
{
    if (!s || s->wfd < 0 || s->unsynced == 0)
        return TW_OK;
    s->unsynced = 0;
    s->st.syncs++;
    return fdatasync(s->wfd) == 0 ? TW_OK : TW_EIO;
}

void spool_tick(struct spool *s, int64_t now_ms)
{
    if (s && s->unsynced > 0 && now_ms - s->unsynced_since_ms >= s->sync_ms)
        (void)spool_sync(s);
}

static void close_active(struct spool *s)
{
    if (s->wfd >= 0) {
        (void)spool_sync(s);
        close(s->wfd);
        s->wfd = -1;
    }
}

/* Deletes the head segment; its unconsumed records are counted as dropped. */
static void drop_head(struct spool *s)
{
    struct seg *g = &s->segs[0];
    if (s->nsegs == 1)
        close_active(s);
    if (s->rfd >= 0 && s->rfd_seq == g->seq) {
        close(s->rfd);
        s->rfd = -1;
    }
    uint64_t lost = g->records - g->consumed;
    s->st.dropped += lost;
    s->total_records -= lost;
    s->total_bytes -= g->bytes;
    char path[4096];
    seg_path(s, g->seq, path, sizeof(path));
    unlink(path);
    memmove(&s->segs[0], &s->segs[1], (s->nsegs - 1) * sizeof(*s->segs));
    s->nsegs--;
    s->peek_n = 0;
}

static int open_active(struct spool *s)
{
    if (grow((void **)&s->segs, &s->cap_segs, s->nsegs + 1, sizeof(*s->segs)) != TW_OK)
        return TW_ENOMEM;
    uint64_t seq = s->next_seq++;
    char path[4096];
    seg_path(s, seq, path, sizeof(path));
    s->wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (s->wfd < 0)
        return TW_EIO;
    s->segs[s->nsegs++] = (struct seg){.seq = seq};
    /* The new name must survive a crash too, or its synced records would be lost. */
    return fsync_dir(s);
}

int spool_append(struct spool *s, const void *rec, size_t len)
{
    uint64_t need = HDR_LEN + (uint64_t)len;
    if (len > SPOOL_REC_MAX || need > s->seg_bytes) {
        s->st.dropped++;
        return TW_ELIMIT;
    }
    struct seg *act = s->wfd >= 0 ? &s->segs[s->nsegs - 1] : NULL;
    if (act && act->bytes + need > s->seg_bytes)
        close_active(s);
    while (s->total_bytes + need > s->max_bytes && s->nsegs > 0)
        drop_head(s);
    if (s->wfd < 0) {
        int rc = open_active(s);
        if (rc != TW_OK)
            return rc;
    }
    act = &s->segs[s->nsegs - 1];
    uint8_t hdr[HDR_LEN];
    put_le32(hdr, (uint32_t)len);
    put_le32(hdr + 4, spool_crc32(rec, len));
    struct iovec iov[2] = {{hdr, HDR_LEN}, {(void *)(uintptr_t)rec, len}};
    size_t done = 0;
    while (done < need) {
        ssize_t w;
        if (done < HDR_LEN) {
            struct iovec v[2] = {{hdr + done, HDR_LEN - done}, iov[1]};
            w = writev(s->wfd, v, 2);
        } else {
            w = write(s->wfd, (const char *)rec + (done - HDR_LEN), need - done);
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            /* Cut a partial record off so the next append does not follow garbage. */
            if (ftruncate(s->wfd, (off_t)act->bytes) != 0)
                close_active(s);
            return TW_EIO;
        }
        done += (size_t)w;
    }
    act->bytes += need;
    act->records++;
    s->total_bytes += need;
    s->total_records++;
    s->st.appended++;
    if (s->unsynced++ == 0)
        s->unsynced_since_ms = mono_ms();
    if (s->unsynced >= s->sync_every)
        return spool_sync(s);
    return TW_OK;
}

int spool_peek(struct spool *s, struct spool_rec *out, size_t max)
{
    s->peek_n = 0;
    if (s->nsegs == 0 || max == 0)
        return 0;
    struct seg *g = &s->segs[0];
    uint64_t avail = g->records - g->consumed;
    if (avail == 0)
        return 0;
    if (max > avail)
        max = (size_t)avail;
    if (s->rfd < 0 || s->rfd_seq != g->seq) {
        if (s->rfd >= 0)
            close(s->rfd);
        char path[4096];
        seg_path(s, g->seq, path, sizeof(path));
        s->rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->rfd < 0)
            return TW_EIO;
        s->rfd_seq = g->seq;
    }
    if (grow((void **)&s->peek_end, &s->peek_cap, max, sizeof(*s->peek_end)) != TW_OK)
        return TW_ENOMEM;
    uint64_t left = g->bytes - g->rd_off;
    size_t chunk = left < PEEK_CHUNK ? (size_t)left : PEEK_CHUNK;
    if (chunk < HDR_LEN)
        goto corrupt;
    if (grow((void **)&s->buf, &s->buf_cap, chunk, 1) != TW_OK)
        return TW_ENOMEM;
    if (!pread_full(s->rfd, s->buf, chunk, g->rd_off))
        return TW_EIO;
    size_t pos = 0, n = 0;
    while (n < max && chunk - pos >= HDR_LEN) {
        uint32_t len = get_le32((uint8_t *)s->buf + pos);
        if (len > SPOOL_REC_MAX || len > left - pos - HDR_LEN)
            goto corrupt;
        if (len > chunk - pos - HDR_LEN) {
            if (n > 0)
                break;
            /* A single record larger than the chunk: read exactly it. */
            chunk = HDR_LEN + len;
            if (grow((void **)&s->buf, &s->buf_cap, chunk, 1) != TW_OK)
                return TW_ENOMEM;
            if (!pread_full(s->rfd, s->buf, chunk, g->rd_off))
                return TW_EIO;
        }
        const char *data = s->buf + pos + HDR_LEN;
        if (spool_crc32(data, len) != get_le32((uint8_t *)s->buf + pos + 4))
            goto corrupt;
        out[n].data = data;
        out[n].len = len;
        pos += HDR_LEN + len;
        s->peek_end[n] = g->rd_off + pos;
        n++;
    }
    s->peek_n = n;
    return (int)n;
corrupt:
    /* Our own segment changed under us (disk error, someone else's write): whatever
     * follows the damage is unreadable; count it lost rather than loop on it. */
    s->st.torn++;
    {
        uint64_t lost = g->records - g->consumed;
        s->st.dropped += lost;
        s->total_records -= lost;
        g->records = g->consumed;
    }
    drop_head(s);
    return 0;
}

int spool_commit(struct spool *s, size_t n)
{
    if (n == 0)
        return TW_OK;
    if (n > s->peek_n || s->nsegs == 0)
        return TW_EBAD;
    struct seg *g = &s->segs[0];
    g->rd_off = s->peek_end[n - 1];
    g->consumed += n;
    s->total_records -= n;
    s->peek_n = 0;
    if (g->consumed == g->records)
        drop_head(s); /* nothing unread in it: counts no drop */
    return TW_OK;
}

uint64_t spool_pending(const struct spool *s)
{
    return s ? s->total_records : 0;
}

void spool_get_stats(const struct spool *s, struct spool_stats *out)
{
    *out = s->st;
    out->records = s->total_records;
    out->bytes = s->total_bytes;
    out->segments = s->nsegs;
}

void spool_close(struct spool *s)
{
    if (!s)
        return;
    close_active(s);
    if (s->rfd >= 0)
        close(s->rfd);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    free(s->segs);
    free(s->buf);
    free(s->peek_end);
    free(s->dir);
    free(s);
}
