/* capture.c - libpcap sources (see capture.h).
 *
 * Live capture uses pcap_create/pcap_activate so the ring buffer size, snaplen and
 * promiscuous mode are set before activation (libpcap then uses TPACKET_V3 on Linux, with
 * immediate mode off by default so the kernel fills blocks). Files are opened with microsecond
 * precision whatever their own, so nanosecond captures read the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tunnelwatch/capture.h"

/* --- our buffered reader (see struct cap_src) --- */

#define RB_CHUNK     (256u << 10) /* read(2) size */
#define PCAP_REC_MAX 262144u      /* longer classic pcap records are libpcap's to judge */

/* Makes n bytes available at s->rb + s->rb_off if the file has them. Returns how many are:
 * fewer than n only at the end of the file, after a read error (rb_errno) or when the buffer
 * cannot grow (rb_errno = ENOMEM). Earlier pointers into the buffer are invalid after it. */
static size_t rd_need(struct cap_src *s, size_t n)
{
    size_t have = s->rb_len - s->rb_off;
    if (have >= n || s->rb_eof || s->rb_errno)
        return have;
    if (s->rb_off) {
        memmove(s->rb, s->rb + s->rb_off, have);
        s->rb_base += s->rb_off;
        s->rb_off = 0;
        s->rb_len = have;
    }
    if (n > s->rb_cap) {
        uint8_t *nb = realloc(s->rb, n);
        if (!nb) {
            s->rb_errno = ENOMEM;
            return have;
        }
        s->rb = nb;
        s->rb_cap = n;
    }
    while (s->rb_len < n) {
        ssize_t r = read(s->fd, s->rb + s->rb_len, s->rb_cap - s->rb_len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            s->rb_errno = errno;
            break;
        }
        if (r == 0) {
            s->rb_eof = true;
            break;
        }
        s->rb_len += (size_t)r;
    }
    return s->rb_len - s->rb_off;
}

/* Drops the buffer and continues reading at file offset off (after libpcap read a record). */
static int rd_seek(struct cap_src *s, uint64_t off)
{
    s->rb_off = s->rb_len = 0;
    s->rb_base = off;
    s->rb_eof = false;
    return lseek(s->fd, (off_t)off, SEEK_SET) == (off_t)off ? TW_OK : TW_EIO;
}

/* A pipe holding a classic pcap: libpcap reads it through this FILE, which first hands out
 * the bytes we looked at to tell pcap from pcapng. */
static ssize_t cookie_read(void *c, char *buf, size_t n)
{
    struct cap_src *s = c;
    size_t have = rd_need(s, 1);
    if (have == 0)
        return s->rb_errno ? -1 : 0;
    size_t k = have < n ? have : n;
    memcpy(buf, s->rb + s->rb_off, k);
    s->rb_off += k;
    return (ssize_t)k;
}

static int cookie_close(void *c)
{
    (void)c; /* the fd and buffer are cap_close's */
    return 0;
}

/* File fields: little-endian, or big-endian when swap (the writer's byte order differs). */
static uint32_t get32(bool swap, const uint8_t *p)
{
    return swap ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint16_t get16(bool swap, const uint8_t *p)
{
    return (uint16_t)(swap ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0]);
}

/* Link types whose packet bytes libpcap leaves alone in a file of the other byte order (it
 * rewrites the pseudo-headers of a few others, USB and NFLOG among them). Radiotap and PPI
 * are little-endian by definition and the Prism header is read in either order. */
static bool swap_safe_dlt(int dlt)
{
    switch (dlt) {
    case DLT_EN10MB:
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_PPP:
    case DLT_PPP_SERIAL:
    case DLT_PPP_ETHER:
    case DLT_C_HDLC:
    case DLT_IEEE802_11:
    case DLT_IEEE802_11_RADIO:
    case DLT_IEEE802_11_RADIO_AVS:
    case DLT_PRISM_HEADER:
    case DLT_PPI:
    case DLT_IPNET:
        return true;
    default:
        return false;
    }
}

/* Classic pcap, version 2.4, microsecond or nanosecond magic in either byte order: the
 * records are ours to read. Anything else (Kuznetzov's and Navtel's variants, old versions
 * with swapped lengths) stays with libpcap. */
static void own_classic(struct cap_src *s, const uint8_t *h, size_t have)
{
    if (have < 24)
        return;
    uint32_t m = get32(false, h);
    bool swap, nsec;
    if (m == 0xa1b2c3d4 || m == 0xa1b23c4d) {
        swap = false;
        nsec = m == 0xa1b23c4d;
    } else if (m == 0xd4c3b2a1 || m == 0x4d3cb2a1) {
        swap = true;
        nsec = m == 0x4d3cb2a1;
    } else {
        return;
    }
    if (get16(swap, h + 4) != 2 || get16(swap, h + 6) != 4 || (swap && !swap_safe_dlt(s->dlt)) ||
        pcap_snapshot(s->p) <= 0)
        return;
    s->own = true;
    s->swap = swap;
    s->nsec = nsec;
    s->snap = (uint32_t)pcap_snapshot(s->p);
    if (s->snap > PCAP_REC_MAX)
        s->snap = PCAP_REC_MAX;
    s->rb_off = 24;
}

int cap_open_file(struct cap_src *s, const char *path, char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    memset(s, 0, sizeof(*s));
    s->name = path;
    if (strcmp(path, "-") == 0) {
        s->p = pcap_fopen_offline_with_tstamp_precision(stdin, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
    } else {
        struct stat st;
        if (stat(path, &st) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return TW_EIO;
        }
        if (S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s: is a folder", path);
            return TW_EIO;
        }
        s->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return TW_EIO;
        }
        s->fd_open = true;
        s->rb = malloc(RB_CHUNK);
        if (!s->rb) {
            snprintf(err, errlen, "%s: out of memory", path);
            cap_close(s);
            return TW_EIO;
        }
        s->rb_cap = RB_CHUNK;
        (void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        size_t have = rd_need(s, 24);
        const uint8_t *m = s->rb;
        if (have >= 4 && m[0] == 0x0a && m[1] == 0x0d && m[2] == 0x0d && m[3] == 0x0a) {
            s->ng = true;
            s->dlt = -1;
            return TW_OK;
        }
        if (S_ISREG(st.st_mode)) {
            /* libpcap checks the header and maps the link type; we read the records */
            s->p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
            if (s->p) {
                s->dlt = pcap_datalink(s->p);
                own_classic(s, m, have);
            }
        } else {
            cookie_io_functions_t io = {.read = cookie_read, .close = cookie_close};
            s->fp = fopencookie(s, "r", io);
            if (s->fp)
                s->p = pcap_fopen_offline_with_tstamp_precision(s->fp, PCAP_TSTAMP_PRECISION_MICRO,
                                                                ebuf);
            else
                snprintf(ebuf, sizeof(ebuf), "%s", strerror(errno));
        }
    }
    if (!s->p) {
        snprintf(err, errlen, "%s: not a readable capture (%s)", path, ebuf);
        cap_close(s);
        return TW_EIO;
    }
    s->dlt = pcap_datalink(s->p);
    if (!s->own && s->fp == NULL && s->fd_open) {
        close(s->fd); /* libpcap reads this one whole */
        s->fd_open = false;
        free(s->rb);
        s->rb = NULL;
    }
    return TW_OK;
}

uint64_t cap_file_pos(const struct cap_src *s)
{
    if (s->fd_open && (s->own || s->ng))
        return s->rb_base + s->rb_off;
    FILE *fp = s->fp ? s->fp : (s->p && !s->live ? pcap_file(s->p) : NULL);
    long pos = fp ? ftell(fp) : -1;
    return pos > 0 ? (uint64_t)pos : 0;
}

int cap_open_live(struct cap_src *s, const char *iface, const struct cap_live_opts *o, FILE *log,
                  char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    memset(s, 0, sizeof(*s));
    s->name = iface;
    s->live = true;
    s->p = pcap_create(iface, ebuf);
    if (!s->p) {
        snprintf(err, errlen, "%s: %s", iface, ebuf);
        return TW_EIO;
    }
    pcap_set_snaplen(s->p, o->snaplen);
    pcap_set_promisc(s->p, o->promisc);
    pcap_set_timeout(s->p, 100);
    pcap_set_buffer_size(s->p, o->buffer_mib * 1024 * 1024);
    pcap_set_immediate_mode(s->p, o->immediate);
    int r = pcap_activate(s->p);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s (%s)", iface, pcap_statustostr(r), pcap_geterr(s->p));
        pcap_close(s->p);
        s->p = NULL;
        return TW_EIO;
    }
    if (r > 0 && log)
        fprintf(log, "tunnelwatch: %s: warning: %s\n", iface, pcap_statustostr(r));
    s->dlt = pcap_datalink(s->p);
    /* the caller polls the selectable fd with a timeout (see main.c wait_readable) */
    if (pcap_setnonblock(s->p, 1, ebuf) != 0 && log)
        fprintf(log, "tunnelwatch: %s: warning: cannot set non-blocking mode: %s\n", iface, ebuf);
    if (log)
        fprintf(log, "tunnelwatch: capturing on %s, link type %s, snaplen %d, buffer %d MiB%s\n",
                iface, pcap_datalink_val_to_name(s->dlt) ? pcap_datalink_val_to_name(s->dlt) : "?",
                pcap_snapshot(s->p), o->buffer_mib, o->promisc ? ", promiscuous" : "");
    if (o->bpf && o->bpf[0])
        return cap_set_filter(s, o->bpf, err, errlen);
    return TW_OK;
}

int cap_set_filter(struct cap_src *s, const char *bpf, char *err, size_t errlen)
{
    struct bpf_program prog;
    if (pcap_compile(s->p, &prog, bpf, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "bad filter expression \"%s\": %s", bpf, pcap_geterr(s->p));
        return TW_ECONF;
    }
    int r = pcap_setfilter(s->p, &prog);
    pcap_freecode(&prog);
    if (r != 0) {
        snprintf(err, errlen, "cannot set filter: %s", pcap_geterr(s->p));
        return TW_EIO;
    }
    return TW_OK;
}

void cap_close(struct cap_src *s)
{
    if (s->p)
        pcap_close(s->p); /* also closes s->fp when libpcap took it */
    else if (s->fp)
        fclose(s->fp);
    s->p = NULL;
    s->fp = NULL;
    if (s->fd_open)
        close(s->fd);
    s->fd_open = false;
    free(s->rb);
    s->rb = NULL;
    s->own = false;
}

/* --- pcapng (draft-ietf-opsawg-pcapng): SHB, IDB, EPB, SPB, obsolete PB; others skipped --- */

#define NG_BLOCK_MAX (16u << 20) /* a block larger than this is treated as corruption */

static uint32_t ng32(const struct cap_src *s, const uint8_t *p)
{
    return get32(s->ng_swap, p);
}

static uint16_t ng16(const struct cap_src *s, const uint8_t *p)
{
    return get16(s->ng_swap, p);
}

static int ng_idb(struct cap_src *s, const uint8_t *b, uint32_t len)
{
    if (len < 8 || s->n_if == TW_ARRAY_LEN(s->ifs))
        return TW_EBAD;
    uint32_t i = s->n_if++;
    s->ifs[i].dlt = ng16(s, b);
    s->ifs[i].units = 1000000;
    /* options: code(2) len(2) value padded to 4 */
    for (uint32_t o = 8; o + 4 <= len;) {
        uint16_t code = ng16(s, b + o), olen = ng16(s, b + o + 2);
        if (code == 0 || olen > len - o - 4)
            break;
        if (code == 9 && olen >= 1) { /* if_tsresol */
            uint8_t v = b[o + 4];
            uint64_t u = 1;
            unsigned e = v & 0x7f;
            if (e > ((v & 0x80) ? 63u : 19u))
                return TW_EBAD;
            for (unsigned k = 0; k < e; k++)
                u *= (v & 0x80) ? 2 : 10;
            s->ifs[i].units = u;
        }
        o += 4 + ((olen + 3u) & ~3u);
    }
    return TW_OK;
}

static void ng_time(const struct cap_src *s, uint32_t ifc, uint32_t hi, uint32_t lo,
                    struct timeval *tv)
{
    uint64_t t = (uint64_t)hi << 32 | lo, u = s->ifs[ifc].units;
    tv->tv_sec = (time_t)(t / u);
    uint64_t frac = t % u;
    /* frac * 10^6 / u in 128 bits: with a binary resolution (2^-20) u is no multiple of
     * 10^6, and frac * 10^6 overflows 64 bits once u exceeds 2^44 */
    tv->tv_usec = (suseconds_t)(uint64_t)((unsigned __int128)frac * 1000000u / u);
}

void cap_fold_usec(struct timeval *ts)
{
    if (ts->tv_usec < 0 || ts->tv_usec >= 1000000) {
        ts->tv_sec += ts->tv_usec / 1000000;
        ts->tv_usec %= 1000000;
        if (ts->tv_usec < 0) {
            ts->tv_usec += 1000000;
            ts->tv_sec--;
        }
    }
}

static int pcap_lib_next(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, char *err,
                         size_t errlen)
{
    struct pcap_pkthdr *ph;
    const u_char *d;
    int r = pcap_next_ex(s->p, &ph, &d);
    if (r == 1) {
        *h = *ph;
        /* libpcap reads a classic file's seconds as signed 32 bits (1901-2038); the format's
         * are unsigned (1970-2106), so a negative second can only be a date past 2038. */
        if (!s->live && h->ts.tv_sec < 0)
            h->ts.tv_sec += (time_t)1 << 32;
        cap_fold_usec(&h->ts);
        *data = d;
        return 1;
    }
    if (r == PCAP_ERROR_BREAK)
        return 0;
    snprintf(err, errlen, "%s", pcap_geterr(s->p));
    return TW_EIO;
}

/* Hands out the whole record at the read position (caplen checked by the caller). */
static void own_record(struct cap_src *s, uint32_t caplen, struct pcap_pkthdr *h,
                       const uint8_t **data)
{
    const uint8_t *r = s->rb + s->rb_off;
    uint32_t sec = get32(s->swap, r), frac = get32(s->swap, r + 4);
    /* The format's seconds are unsigned: 2038-01-19T03:14:08Z and on, up to 2106. An
     * out-of-range fraction is read as libpcap reads it (signed unless byte-swapped). */
    h->ts.tv_sec = (time_t)sec;
    if (!s->swap)
        h->ts.tv_usec = s->nsec ? (int32_t)frac / 1000 : (int32_t)frac;
    else
        h->ts.tv_usec = (suseconds_t)(s->nsec ? frac / 1000 : frac);
    cap_fold_usec(&h->ts);
    h->caplen = caplen;
    h->len = get32(s->swap, r + 12);
    *data = r + 16;
    s->rb_off += 16 + (size_t)caplen;
}

/* A classic pcap record: ours when it is whole and within the snapshot length (s->snap,
 * capped at PCAP_REC_MAX; the same
 * fields libpcap 1.10 fills: 32-bit seconds and fraction, signed in the host's byte order
 * and unsigned once swapped, the fraction scaled down from nanoseconds; the unit test
 * holds both readers to the same output).
 * Any other record is read by libpcap from the same offset, so truncation errors and the
 * salvage of over-long records are libpcap's own. */
static int own_next(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, char *err,
                    size_t errlen)
{
    size_t have = rd_need(s, 16);
    if (have == 0 && s->rb_eof)
        return 0;
    if (have >= 16) {
        uint32_t caplen = get32(s->swap, s->rb + s->rb_off + 8);
        if (caplen <= s->snap && rd_need(s, 16 + (size_t)caplen) >= 16 + (size_t)caplen) {
            own_record(s, caplen, h, data);
            return 1;
        }
    }
    if (s->rb_errno) {
        snprintf(err, errlen, "error reading dump file: %s", strerror(s->rb_errno));
        return TW_EIO;
    }
    FILE *fp = pcap_file(s->p);
    uint64_t at = s->rb_base + s->rb_off;
    if (!fp || fseeko(fp, (off_t)at, SEEK_SET) != 0) {
        snprintf(err, errlen, "cannot seek to offset %llu: %s", (unsigned long long)at,
                 strerror(errno));
        return TW_EIO;
    }
    int r = pcap_lib_next(s, h, data, err, errlen);
    if (r == 1) {
        off_t next = ftello(fp);
        if (next < 0 || rd_seek(s, (uint64_t)next) != TW_OK) {
            snprintf(err, errlen, "cannot seek: %s", strerror(errno));
            return TW_EIO;
        }
    }
    return r;
}

/* Section header block (pcapng section 4.1) at the read position: learns the byte order from
 * its magic, forgets the previous section's interfaces and moves past the block. TW_OK, or
 * TW_EIO with the reason in err. */
static int ng_section(struct cap_src *s, char *err, size_t errlen)
{
    if (rd_need(s, 12) < 12) {
        snprintf(err, errlen, "truncated pcapng section header");
        return TW_EIO;
    }
    const uint8_t *hdr = s->rb + s->rb_off;
    const uint8_t *bom = hdr + 8;
    if (bom[0] == 0x4d && bom[1] == 0x3c)
        s->ng_swap = false;
    else if (bom[0] == 0x1a && bom[1] == 0x2b)
        s->ng_swap = true;
    else {
        snprintf(err, errlen, "bad pcapng byte-order magic");
        return TW_EIO;
    }
    s->n_if = 0;
    uint32_t blen = ng32(s, hdr + 4);
    if (blen < 28 || blen % 4 || blen > NG_BLOCK_MAX) {
        snprintf(err, errlen, "bad pcapng section header length");
        return TW_EIO;
    }
    /* the whole block must be there: a cut section header is no clean end of file */
    if (rd_need(s, blen) < blen) {
        snprintf(err, errlen, "truncated pcapng section header");
        return TW_EIO;
    }
    s->rb_off += blen;
    return TW_OK;
}

/* Any other block, its 8-byte header at hdr (the read position): type(4) length(4) body
 * length(4 again). Sets its type and body b[0..body) and moves the read position past it;
 * b stays valid until the next rd_need. TW_OK, or TW_EIO with the reason in err. */
static inline int ng_block(struct cap_src *s, const uint8_t *hdr, uint32_t *type, const uint8_t **b,
                           uint32_t *body, char *err, size_t errlen)
{
    uint32_t blen = ng32(s, hdr + 4);
    *type = ng32(s, hdr);
    if (blen < 12 || blen % 4 || blen > NG_BLOCK_MAX) {
        snprintf(err, errlen, "corrupt pcapng block (length %u)", blen);
        return TW_EIO;
    }
    *body = blen - 12;
    if (rd_need(s, blen) < blen) {
        snprintf(err, errlen, "truncated pcapng block");
        return TW_EIO;
    }
    *b = s->rb + s->rb_off + 8;
    s->rb_off += blen;
    /* the length is repeated after the body; a mismatch means we lost block framing */
    if (ng32(s, *b + *body) != blen) {
        snprintf(err, errlen, "corrupt pcapng block (trailing length %u, expected %u)",
                 ng32(s, *b + *body), blen);
        return TW_EIO;
    }
    return TW_OK;
}

/* What a packet block says about its packet; data starts at body offset off. */
struct ng_pkt {
    uint32_t ifc, caplen, origlen, hi, lo, off;
};

/* Reads the fields of a packet block (enhanced 4.3, simple 4.4, obsolete packet block);
 * false for the blocks that carry no packet (name resolution, statistics, custom...). */
static inline bool ng_packet(const struct cap_src *s, uint32_t type, const uint8_t *b,
                             uint32_t body, struct ng_pkt *pk)
{
    if (type == 6 && body >= 20) { /* enhanced packet block */
        pk->ifc = ng32(s, b);
        pk->hi = ng32(s, b + 4);
        pk->lo = ng32(s, b + 8);
        pk->caplen = ng32(s, b + 12);
        pk->origlen = ng32(s, b + 16);
        pk->off = 20;
    } else if (type == 3 && body >= 4) { /* simple packet block: no interface, no time */
        pk->ifc = pk->hi = pk->lo = 0;
        pk->origlen = ng32(s, b);
        pk->caplen = body - 4 < pk->origlen ? body - 4 : pk->origlen;
        pk->off = 4;
    } else if (type == 2 && body >= 20) { /* obsolete packet block */
        pk->ifc = ng16(s, b);
        pk->hi = ng32(s, b + 4);
        pk->lo = ng32(s, b + 8);
        pk->caplen = ng32(s, b + 12);
        pk->origlen = ng32(s, b + 16);
        pk->off = 20;
    } else {
        return false;
    }
    return true;
}

/* pcapng: the next packet, reading section headers and interface descriptions on the way. */
static int ng_next(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, int *dlt,
                   char *err, size_t errlen)
{
    for (;;) {
        size_t got = rd_need(s, 8);
        if (got == 0 && !s->rb_errno)
            return 0;
        if (got < 8) {
            snprintf(err, errlen, "%s",
                     s->rb_errno ? strerror(s->rb_errno) : "truncated pcapng block header");
            return TW_EIO;
        }
        const uint8_t *hdr = s->rb + s->rb_off;
        /* the section header's type reads alike both ways; it tells the byte order */
        if (get32(false, hdr) == 0x0a0d0d0a) {
            if (ng_section(s, err, errlen) != TW_OK)
                return TW_EIO;
            continue;
        }
        uint32_t type, body;
        const uint8_t *b;
        if (ng_block(s, hdr, &type, &b, &body, err, errlen) != TW_OK)
            return TW_EIO;
        if (type == 1) {
            if (ng_idb(s, b, body)) {
                snprintf(err, errlen, "bad pcapng interface description");
                return TW_EIO;
            }
            continue;
        }
        struct ng_pkt pk;
        if (!ng_packet(s, type, b, body, &pk))
            continue;
        if (pk.ifc >= s->n_if || pk.caplen > body - pk.off) {
            snprintf(err, errlen, "corrupt pcapng packet block (interface %u, length %u)", pk.ifc,
                     pk.caplen);
            return TW_EIO;
        }
        memset(h, 0, sizeof(*h));
        ng_time(s, pk.ifc, pk.hi, pk.lo, &h->ts);
        h->caplen = pk.caplen;
        h->len = pk.origlen < pk.caplen ? pk.caplen : pk.origlen;
        *data = b + pk.off;
        *dlt = s->ifs[pk.ifc].dlt;
        return 1;
    }
}

int cap_next(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, int *dlt, char *err,
             size_t errlen)
{
    if (s->ng)
        return ng_next(s, h, data, dlt, err, errlen);
    *dlt = s->dlt;
    return s->own ? own_next(s, h, data, err, errlen) : pcap_lib_next(s, h, data, err, errlen);
}

int cap_next_batch(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, int max,
                   char *err, size_t errlen)
{
    int dlt;
    int r = cap_next(s, &h[0], &data[0], &dlt, err, errlen);
    if (r != 1 || !s->own)
        return r;
    /* then the records already whole in the buffer: no read, so nothing handed out moves */
    int n = 1;
    while (n < max) {
        size_t have = s->rb_len - s->rb_off;
        if (have < 16)
            break;
        uint32_t caplen = get32(s->swap, s->rb + s->rb_off + 8);
        if (caplen > s->snap || have - 16 < caplen)
            break;
        own_record(s, caplen, &h[n], &data[n]);
        n++;
    }
    return n;
}

void cap_live_stats(struct cap_src *s)
{
    struct pcap_stat st;
    if (!s->live || !s->p || pcap_stats(s->p, &st) != 0)
        return;
    /* the kernel counters are u_int and wrap: add the modular difference */
    s->recv += (uint32_t)(st.ps_recv - s->last_recv);
    s->drop += (uint32_t)(st.ps_drop - s->last_drop);
    s->ifdrop += (uint32_t)(st.ps_ifdrop - s->last_ifdrop);
    s->last_recv = st.ps_recv;
    s->last_drop = st.ps_drop;
    s->last_ifdrop = st.ps_ifdrop;
}

int cap_list_interfaces(FILE *out, char *err, size_t errlen)
{
    pcap_if_t *all = NULL;
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    if (pcap_findalldevs(&all, ebuf) != 0) {
        snprintf(err, errlen, "cannot list interfaces: %s", ebuf);
        return TW_EIO;
    }
    int i = 1;
    for (pcap_if_t *d = all; d; d = d->next, i++) {
        fprintf(out, "%d.%s", i, d->name);
        if (d->description)
            fprintf(out, " (%s)", d->description);
        fprintf(out, " [%s%s%s]\n", d->flags & PCAP_IF_UP ? "Up" : "Down",
                d->flags & PCAP_IF_RUNNING ? ", Running" : "",
                d->flags & PCAP_IF_LOOPBACK ? ", Loopback" : "");
    }
    pcap_freealldevs(all);
    return TW_OK;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool looks_like_capture(const char *path)
{
    size_t n = strlen(path);
    static const char *const ext[] = {".pcap", ".pcapng", ".cap", ".pcap.gz"};
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        size_t l = strlen(ext[i]);
        if (n > l && strcmp(path + n - l, ext[i]) == 0)
            return true;
    }
    return false;
}

static int push(char ***list, size_t *n, size_t *cap, const char *s)
{
    if (*n + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **nl = realloc(*list, nc * sizeof(char *));
        if (!nl)
            return TW_ENOMEM;
        *list = nl;
        *cap = nc;
    }
    (*list)[*n] = strdup(s);
    if (!(*list)[*n])
        return TW_ENOMEM;
    (*n)++;
    (*list)[*n] = NULL;
    return TW_OK;
}

char **cap_expand_inputs(char *const *paths, size_t n, char *err, size_t errlen)
{
    char **list = NULL;
    size_t cnt = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (strcmp(paths[i], "-") != 0 && stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(paths[i]);
            if (!d) {
                snprintf(err, errlen, "%s: %s", paths[i], strerror(errno));
                cap_free_inputs(list);
                return NULL;
            }
            size_t start = cnt;
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                char full[4096];
                snprintf(full, sizeof(full), "%s/%s", paths[i], e->d_name);
                if (!looks_like_capture(full))
                    continue;
                if (push(&list, &cnt, &cap, full)) {
                    closedir(d);
                    cap_free_inputs(list);
                    snprintf(err, errlen, "out of memory");
                    return NULL;
                }
            }
            closedir(d);
            qsort(list + start, cnt - start, sizeof(char *), cmpstr);
        } else if (push(&list, &cnt, &cap, paths[i])) {
            cap_free_inputs(list);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
    if (!list && push(&list, &cnt, &cap, "") == TW_OK)
        list[0] = (free(list[0]), NULL);
    return list;
}

void cap_free_inputs(char **list)
{
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}
