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
#include <sys/stat.h>

#include "tunnelwatch/capture.h"

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
        s->size = (uint64_t)st.st_size;
        FILE *fp = fopen(path, "rb");
        uint8_t magic[4] = {0};
        if (fp && fread(magic, 1, 4, fp) == 4 && magic[0] == 0x0a && magic[1] == 0x0d &&
            magic[2] == 0x0d && magic[3] == 0x0a) {
            rewind(fp);
            s->fp = fp;
            s->ng = true;
            s->dlt = -1;
            return TW_OK;
        }
        if (fp)
            fclose(fp);
        s->p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
    }
    if (!s->p) {
        snprintf(err, errlen, "%s: not a readable capture (%s)", path, ebuf);
        return TW_EIO;
    }
    s->dlt = pcap_datalink(s->p);
    return TW_OK;
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
        pcap_close(s->p);
    s->p = NULL;
    if (s->fp)
        fclose(s->fp);
    s->fp = NULL;
    free(s->blk);
    s->blk = NULL;
}

/* --- pcapng (draft-ietf-opsawg-pcapng): SHB, IDB, EPB, SPB, obsolete PB; others skipped --- */

#define NG_BLOCK_MAX (16u << 20) /* a block larger than this is treated as corruption */

static uint32_t ng32(const struct cap_src *s, const uint8_t *p)
{
    return s->ng_swap ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint16_t ng16(const struct cap_src *s, const uint8_t *p)
{
    unsigned v = s->ng_swap ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
    return (uint16_t)v;
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

int cap_next(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, int *dlt, char *err,
             size_t errlen)
{
    if (!s->ng) {
        struct pcap_pkthdr *ph;
        const u_char *d;
        int r = pcap_next_ex(s->p, &ph, &d);
        if (r == 1) {
            *h = *ph;
            /* libpcap passes a file's sub-second field through unchecked (a nanosecond file
             * can hold 10^9 or more, which comes out negative); fold it into the seconds so
             * that every consumer sees 0 <= tv_usec < 10^6 */
            if (h->ts.tv_usec < 0 || h->ts.tv_usec >= 1000000) {
                h->ts.tv_sec += h->ts.tv_usec / 1000000;
                h->ts.tv_usec %= 1000000;
                if (h->ts.tv_usec < 0) {
                    h->ts.tv_usec += 1000000;
                    h->ts.tv_sec--;
                }
            }
            *data = d;
            *dlt = s->dlt;
            return 1;
        }
        if (r == PCAP_ERROR_BREAK)
            return 0;
        snprintf(err, errlen, "%s", pcap_geterr(s->p));
        return TW_EIO;
    }
    for (;;) {
        uint8_t hdr[8];
        size_t got = fread(hdr, 1, 8, s->fp);
        if (got == 0)
            return 0;
        if (got < 8) {
            snprintf(err, errlen, "truncated pcapng block header");
            return TW_EIO;
        }
        uint32_t type = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 |
                        (uint32_t)hdr[3] << 24;
        if (type == 0x0a0d0d0a) { /* section header: learn the byte order first */
            uint8_t bom[4];
            if (fread(bom, 1, 4, s->fp) != 4) {
                snprintf(err, errlen, "truncated pcapng section header");
                return TW_EIO;
            }
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
            /* read the rest rather than fseek past it: a seek beyond the end succeeds, and a
             * cut section header would then pass for a clean end of file */
            if (blen - 12 > s->blkcap) {
                uint8_t *nb = realloc(s->blk, blen - 12);
                if (!nb) {
                    snprintf(err, errlen, "out of memory");
                    return TW_EIO;
                }
                s->blk = nb;
                s->blkcap = blen - 12;
            }
            if (fread(s->blk, 1, blen - 12, s->fp) != blen - 12) {
                snprintf(err, errlen, "truncated pcapng section header");
                return TW_EIO;
            }
            continue;
        }
        uint32_t blen = ng32(s, hdr + 4);
        type = ng32(s, hdr);
        if (blen < 12 || blen % 4 || blen > NG_BLOCK_MAX) {
            snprintf(err, errlen, "corrupt pcapng block (length %u)", blen);
            return TW_EIO;
        }
        uint32_t body = blen - 12;
        if (body + 4 > s->blkcap) {
            uint8_t *nb = realloc(s->blk, body + 4);
            if (!nb) {
                snprintf(err, errlen, "out of memory");
                return TW_EIO;
            }
            s->blk = nb;
            s->blkcap = body + 4;
        }
        if (fread(s->blk, 1, body + 4, s->fp) != body + 4) {
            snprintf(err, errlen, "truncated pcapng block");
            return TW_EIO;
        }
        const uint8_t *b = s->blk;
        /* the length is repeated after the body; a mismatch means we lost block framing */
        if (ng32(s, b + body) != blen) {
            snprintf(err, errlen, "corrupt pcapng block (trailing length %u, expected %u)",
                     ng32(s, b + body), blen);
            return TW_EIO;
        }
        if (type == 1) {
            if (ng_idb(s, b, body)) {
                snprintf(err, errlen, "bad pcapng interface description");
                return TW_EIO;
            }
            continue;
        }
        uint32_t ifc = 0, caplen, origlen, hi = 0, lo = 0, off;
        if (type == 6 && body >= 20) { /* enhanced packet block */
            ifc = ng32(s, b);
            hi = ng32(s, b + 4);
            lo = ng32(s, b + 8);
            caplen = ng32(s, b + 12);
            origlen = ng32(s, b + 16);
            off = 20;
        } else if (type == 3 && body >= 4) { /* simple packet block */
            origlen = ng32(s, b);
            caplen = body - 4 < origlen ? body - 4 : origlen;
            off = 4;
        } else if (type == 2 && body >= 20) { /* obsolete packet block */
            ifc = ng16(s, b);
            hi = ng32(s, b + 4);
            lo = ng32(s, b + 8);
            caplen = ng32(s, b + 12);
            origlen = ng32(s, b + 16);
            off = 20;
        } else {
            continue; /* name resolution, statistics, custom...: not packets */
        }
        if (ifc >= s->n_if || caplen > body - off) {
            snprintf(err, errlen, "corrupt pcapng packet block (interface %u, length %u)", ifc,
                     caplen);
            return TW_EIO;
        }
        memset(h, 0, sizeof(*h));
        ng_time(s, ifc, hi, lo, &h->ts);
        h->caplen = caplen;
        h->len = origlen < caplen ? caplen : origlen;
        *data = b + off;
        *dlt = s->ifs[ifc].dlt;
        return 1;
    }
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
