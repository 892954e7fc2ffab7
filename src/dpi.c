/* dpi.c - nDPI per flow, started late and stopped early (see dpi.h). */
#include <ndpi/ndpi_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/dpi.h"

/* A flow's nDPI state while nDPI runs for it (allocated at its first payload, freed when
 * nDPI decides, gives up or is stopped, or the flow ends). */
struct dpi_live {
    struct ndpi_flow_struct *nf;  /* owned */
    struct dpi_flow *owner;       /* the flow record's part (records do not move) */
    struct dpi_live *prev, *next; /* live states, least recent packet first */
    int64_t last_us;              /* packet time of its last packet */
    struct tw_addr src;           /* its first payload's source */
    uint8_t pkts;
};

struct dpi {
    struct ndpi_detection_module_struct *m; /* NULL until a flow first needs it (dpi_prepare) */
    bool broken;                            /* nDPI could not start: flows go unlabelled */
    bool building;                          /* th is making bg: join it before using m */
    pthread_t th;
    struct ndpi_detection_module_struct *bg; /* th's result, read only after the join */
    uint32_t max_flows, max_packets;
    uint32_t live;
    int64_t stall_us;
    struct dpi_live *head, *tail; /* live states, least recent packet first */
    struct dpi_stats st;
    struct pressure pr;
};

/* One module set up at a time in the process (workers' engines start together); nDPI's
 * set-up is not documented as safe to run concurrently. */
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

static struct ndpi_detection_module_struct *build_module(void)
{
    pthread_mutex_lock(&build_lock);
    struct ndpi_detection_module_struct *m = ndpi_init_detection_module(ndpi_no_prefs);
    if (m) {
        NDPI_PROTOCOL_BITMASK all;
        NDPI_BITMASK_SET_ALL(all);
        ndpi_set_protocol_detection_bitmask2(m, &all);
        ndpi_finalize_initialization(m);
    }
    pthread_mutex_unlock(&build_lock);
    return m;
}

static void *build_thread(void *arg)
{
    struct dpi *d = arg;
    d->bg = build_module();
    return NULL;
}

/* The module is made on a thread of its own from the start (about 50 ms of CPU), so that the
 * first flow that needs it, often within the first milliseconds of a replay, finds it ready
 * instead of waiting inline. Signals stay with the other threads. Without a thread, the
 * module is made at the first need, as before. */
static void build_in_background(struct dpi *d)
{
    d->building = tw_thread_start(&d->th, "tw-ndpi-init", build_thread, d, false) == 0;
}

struct dpi *dpi_new(uint32_t max_flows, uint32_t max_packets, uint32_t stall_ms)
{
    struct dpi *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->max_flows = max_flows;
    d->max_packets = max_packets;
    d->stall_us = (int64_t)stall_ms * 1000;
    build_in_background(d);
    return d;
}

/* Takes the background thread's module (waiting for it), once. */
static void join_build(struct dpi *d)
{
    if (!d->building)
        return;
    (void)pthread_join(d->th, NULL);
    d->building = false;
    d->m = d->bg;
    d->broken = !d->m;
}

bool dpi_prepare(struct dpi *d)
{
    join_build(d);
    if (d->m || d->broken)
        return d->m != NULL;
    d->m = build_module();
    d->broken = !d->m;
    return d->m != NULL;
}

static void lru_unlink(struct dpi *d, struct dpi_live *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else if (d->head == f)
        d->head = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else if (d->tail == f)
        d->tail = f->prev;
    f->prev = f->next = NULL;
}

static void lru_append(struct dpi *d, struct dpi_live *f, int64_t now_us)
{
    f->last_us = now_us;
    f->prev = d->tail;
    f->next = NULL;
    if (d->tail)
        d->tail->next = f;
    else
        d->head = f;
    d->tail = f;
}

void dpi_free(struct dpi *d)
{
    if (!d)
        return;
    join_build(d);
    if (d->m)
        ndpi_exit_detection_module(d->m);
    free(d);
}

void dpi_release(struct dpi *d, struct dpi_flow *f)
{
    struct dpi_live *l = f->live;
    if (l) {
        lru_unlink(d, l);
        ndpi_free_flow(l->nf);
        free(l);
        f->live = NULL;
        d->live--;
    }
}

/* The source address of an IP header (for the pressure note), family 0 when too short. */
static struct tw_addr l3_src(const uint8_t *l3, uint32_t len)
{
    struct tw_addr a;
    memset(&a, 0, sizeof(a));
    if (len >= 20 && l3[0] >> 4 == 4) {
        a.family = 4;
        memcpy(a.a, l3 + 12, 4);
    } else if (len >= 40 && l3[0] >> 4 == 6) {
        a.family = 6;
        memcpy(a.a, l3 + 8, 16);
    }
    return a;
}

/* Allocates the flow's nDPI state; false (and the flow done) at the cap, unless a stalled
 * state gives way, or out of memory. */
static bool start(struct dpi *d, struct dpi_flow *f, const struct tw_addr *src, int64_t now_us)
{
    if (!dpi_prepare(d)) {
        f->done = true;
        return false;
    }
    struct dpi_live *v = d->head;
    if (d->live >= d->max_flows && v && d->stall_us > 0 && now_us - v->last_us >= d->stall_us) {
        struct dpi_flow *vf = v->owner;
        d->st.reclaimed++;
        pressure_note(&d->pr, &v->src, true);
        dpi_release(d, vf);
        vf->done = true; /* unlabelled: it stopped talking long ago */
    }
    if (d->live >= d->max_flows) {
        d->st.skipped++;
        pressure_note(&d->pr, src, false);
        f->done = true;
        return false;
    }
    struct dpi_live *l = calloc(1, sizeof(*l));
    if (l)
        l->nf = calloc(1, SIZEOF_FLOW_STRUCT);
    if (!l || !l->nf) {
        free(l);
        f->done = true;
        return false;
    }
    l->owner = f;
    l->src = *src;
    f->live = l;
    d->live++;
    d->st.flows++;
    lru_append(d, l, now_us);
    return true;
}

void dpi_step(struct dpi *d, struct dpi_flow *f, const uint8_t *l3, uint32_t len,
              uint32_t payload_len, int64_t now_us, enum dpi_need need)
{
    if (!d || f->done || !l3 || len == 0)
        return;
    if (need != DPI_RUN) {
        /* our parsers recognised the flow (TLS, HTTP, DNS, QUIC; nDPI would only repeat the
         * work, its TLS dissector being the costliest part of the packet path), or nobody
         * reads its label */
        dpi_release(d, f);
        f->done = need == DPI_STOP;
        return;
    }
    /* start at the first payload: our parsers may recognise the flow there */
    struct dpi_live *l = f->live;
    if (!l && payload_len == 0)
        return;
    if (!l) {
        struct tw_addr src = l3_src(l3, len);
        if (!start(d, f, &src, now_us))
            return;
        l = f->live;
    } else if (now_us != l->last_us) {
        lru_unlink(d, l);
        lru_append(d, l, now_us);
    }
    uint16_t n = len > 65535 ? 65535 : (uint16_t)len;
    ndpi_protocol pr = ndpi_detection_process_packet(d->m, l->nf, l3, n, (uint64_t)(now_us / 1000));
    bool decided =
        pr.app_protocol != NDPI_PROTOCOL_UNKNOWN || pr.master_protocol != NDPI_PROTOCOL_UNKNOWN;
    if (!decided && ++l->pkts >= d->max_packets) {
        uint8_t guessed = 0;
        pr = ndpi_detection_giveup(d->m, l->nf, 1, &guessed);
        decided = true;
    }
    if (decided) {
        f->proto =
            pr.master_protocol != NDPI_PROTOCOL_UNKNOWN ? pr.master_protocol : pr.app_protocol;
        dpi_release(d, f);
        f->done = true;
    }
}

const char *dpi_label(struct dpi *d, const struct dpi_flow *f)
{
    return d && f->proto ? ndpi_get_proto_name(d->m, f->proto) : NULL;
}

void dpi_stats(const struct dpi *d, struct dpi_stats *st)
{
    if (d)
        *st = d->st;
    else
        memset(st, 0, sizeof(*st));
}

struct pressure *dpi_pressure(struct dpi *d)
{
    return d ? &d->pr : NULL;
}
