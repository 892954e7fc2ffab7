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
