/* evidence.c - --write-evidence: the union of incident pcaps in one file (see evidence.h).
 *
 * Two passes. The first reads every file once and keeps an index entry per packet (timestamp,
 * lengths, a hash of its bytes, file and offset; about 48 bytes a packet, not the packet). The
 * index sorted by (timestamp, lengths, hash, file) puts the copies of one packet next to each
 * other: within such a run the file holding the most copies keeps them, the others' copies are
 * compared byte for byte with it and left out (a multiset union: a packet two incidents both
 * hold is written once, a packet the capture itself repeats stays repeated). The index sorted
 * by (timestamp, file, position) then drives the copy, reading each packet at its offset, so
 * the memory does not grow with the evidence's bytes and the order is stable. At most
 * MERGE_OPEN files are open at once (an incident per file, possibly thousands).
 */
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "tunnelwatch/evidence.h"

#define MERGE_OPEN    64
#define MERGE_SNAPLEN 262144

struct ment {
    int64_t ts; /* microseconds */
    uint64_t hash, off;
    uint32_t file, seq, caplen, len;
    bool drop;
};

struct merge {
    const char *const *paths;
    size_t n_files;
    FILE **fp; /* n_files handles for the copy, NULL when closed */
    size_t n_open, victim;
    struct ment *e;
    size_t n, cap;
    int dlt;
    uint8_t *a, *b; /* MERGE_SNAPLEN each */
    struct evidence_merge_stats st;
};

/* FNV-1a: only to bring equal packets together; equality is checked on the bytes. */
static uint64_t fnv(const uint8_t *d, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 0x100000001b3ULL;
    return h;
}

static int add_entry(struct merge *m, const struct ment *x)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 4096;
        struct ment *ne = realloc(m->e, nc * sizeof(*ne));
        if (!ne)
            return TW_ENOMEM;
        m->e = ne;
        m->cap = nc;
    }
    m->e[m->n++] = *x;
    return TW_OK;
}

/* Indexes file i. A file that cannot be read, or is cut short, costs its (remaining) packets,
 * counted; one of another link type than the first file's is counted and left out. */
static int index_file(struct merge *m, uint32_t i)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(m->paths[i], ebuf);
    if (!p) {
        m->st.unreadable++;
        return TW_OK;
    }
    if (m->dlt < 0)
        m->dlt = pcap_datalink(p);
    bool other = pcap_datalink(p) != m->dlt;
    struct pcap_pkthdr *h;
    const u_char *d;
    int r = 0, rc = TW_OK;
    uint32_t seq = 0;
    while (rc == TW_OK && (r = pcap_next_ex(p, &h, &d)) == 1) {
        off_t end = ftello(pcap_file(p)); /* just past this packet's bytes */
        if (other || h->caplen > MERGE_SNAPLEN || end < (off_t)h->caplen) {
            m->st.other_dlt += other; /* a pcap file has one link type */
            m->st.unreadable += !other;
            continue;
        }
        struct ment x = {(int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec,
                         fnv(d, h->caplen),
                         (uint64_t)end - h->caplen,
                         i,
                         seq++,
                         h->caplen,
                         h->len,
                         false};
        rc = add_entry(m, &x);
    }
    if (rc == TW_OK && r == -1)
        m->st.unreadable++; /* cut short (a write the disk refused) */
    pcap_close(p);
    return rc;
}

static int by_content(const void *pa, const void *pb)
{
    const struct ment *a = pa, *b = pb;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    if (a->caplen != b->caplen)
        return a->caplen < b->caplen ? -1 : 1;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int by_time(const void *pa, const void *pb)
{
    const struct ment *a = pa, *b = pb;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    if (a->file != b->file)
        return a->file < b->file ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static FILE *open_file(struct merge *m, uint32_t i)
{
    if (m->fp[i])
        return m->fp[i];
    while (m->n_open >= MERGE_OPEN) { /* round robin: any open file goes */
        m->victim = (m->victim + 1) % m->n_files;
        if (m->fp[m->victim]) {
            fclose(m->fp[m->victim]);
            m->fp[m->victim] = NULL;
            m->n_open--;
        }
    }
    m->fp[i] = fopen(m->paths[i], "rb");
    m->n_open += m->fp[i] != NULL;
    return m->fp[i];
}

/* The bytes of x into buf; false when they cannot be read (counted by the caller). */
static bool read_at(struct merge *m, const struct ment *x, uint8_t *buf)
{
    FILE *f = open_file(m, x->file);
    return f && fseeko(f, (off_t)x->off, SEEK_SET) == 0 && fread(buf, 1, x->caplen, f) == x->caplen;
}

static bool same_key(const struct ment *a, const struct ment *b)
{
    return a->ts == b->ts && a->caplen == b->caplen && a->len == b->len && a->hash == b->hash;
}

/* One run of equal keys, [lo, hi), sorted by file: the file with the most copies keeps its
 * copies; another file's copy equal in bytes to them is dropped. */
static void dedup_run(struct merge *m, size_t lo, size_t hi)
{
    size_t best = lo, best_n = 0;
    for (size_t i = lo; i < hi;) {
        size_t j = i;
        while (j < hi && m->e[j].file == m->e[i].file)
            j++;
        if (j - i > best_n) {
            best = i;
            best_n = j - i;
        }
        i = j;
    }
    if (best_n == hi - lo || !read_at(m, &m->e[best], m->a))
        return;
    for (size_t i = lo; i < hi; i++) {
        struct ment *x = &m->e[i];
        if (x->file == m->e[best].file || !read_at(m, x, m->b) || memcmp(m->a, m->b, x->caplen))
            continue;
        x->drop = true;
        m->st.duplicates++;
    }
}

static void dedup(struct merge *m)
{
    qsort(m->e, m->n, sizeof(*m->e), by_content);
    for (size_t i = 0; i < m->n;) {
        size_t j = i + 1;
        while (j < m->n && same_key(&m->e[i], &m->e[j]))
            j++;
        if (j - i > 1)
            dedup_run(m, i, j);
        i = j;
    }
    qsort(m->e, m->n, sizeof(*m->e), by_time);
}

/* The copy, in time order. */
static int write_out(struct merge *m, const char *out, char *err, size_t errlen)
{
    pcap_t *dead = pcap_open_dead(m->dlt, MERGE_SNAPLEN);
    pcap_dumper_t *dump = dead ? pcap_dump_open(dead, out) : NULL;
    if (!dump) {
        snprintf(err, errlen, "cannot write %s: %s", out,
                 dead ? pcap_geterr(dead) : "out of memory");
        if (dead)
            pcap_close(dead);
        return TW_EIO;
    }
    for (size_t i = 0; i < m->n; i++) {
        const struct ment *x = &m->e[i];
        if (x->drop)
            continue;
        if (!read_at(m, x, m->a)) {
            m->st.unreadable++;
            continue;
        }
        struct pcap_pkthdr h = {
            {(time_t)(x->ts / 1000000), (suseconds_t)(x->ts % 1000000)}, x->caplen, x->len};
        pcap_dump((u_char *)dump, &h, m->a);
        m->st.packets++;
    }
    int rc = pcap_dump_flush(dump) == 0 && !ferror(pcap_dump_file(dump)) ? TW_OK : TW_EIO;
    pcap_dump_close(dump);
    pcap_close(dead);
    if (rc != TW_OK)
        snprintf(err, errlen, "cannot write %s: a write failed (full disk?)", out);
    return rc;
}

int evidence_merge(const char *const *paths, size_t n, const char *out,
                   struct evidence_merge_stats *st, char *err, size_t errlen)
{
    struct merge m = {.paths = paths, .n_files = n, .dlt = -1};
    int rc = TW_ENOMEM;
    m.fp = calloc(n ? n : 1, sizeof(*m.fp));
    m.a = malloc(MERGE_SNAPLEN);
    m.b = malloc(MERGE_SNAPLEN);
    snprintf(err, errlen, "out of memory");
    if (m.fp && m.a && m.b) {
        rc = TW_OK;
        for (uint32_t i = 0; i < n && rc == TW_OK; i++)
            rc = index_file(&m, i);
    }
    if (rc == TW_OK && m.dlt < 0)
        snprintf(err, errlen, "no incident pcap: %s not written", out);
    else if (rc == TW_OK) {
        dedup(&m);
        rc = write_out(&m, out, err, errlen);
        if (rc == TW_OK && errlen)
            err[0] = '\0';
    }
    for (size_t i = 0; m.fp && i < n; i++)
        if (m.fp[i])
            fclose(m.fp[i]);
    free(m.fp);
    free(m.e);
    free(m.a);
    free(m.b);
    *st = m.st;
    return rc;
}
