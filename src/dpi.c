/* dpi.c - nDPI per flow, started late and stopped early (see dpi.h). */
#include <ndpi/ndpi_api.h>
#include <stdlib.h>

#include "tunnelwatch/dpi.h"

struct dpi {
    struct ndpi_detection_module_struct *m;
    uint32_t max_flows, max_packets;
    uint32_t live;
    struct dpi_stats st;
};

struct dpi *dpi_new(uint32_t max_flows, uint32_t max_packets)
{
    struct dpi *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->m = ndpi_init_detection_module(ndpi_no_prefs);
    if (!d->m) {
        free(d);
        return NULL;
    }
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(d->m, &all);
    ndpi_finalize_initialization(d->m);
    d->max_flows = max_flows;
    d->max_packets = max_packets;
    return d;
}

void dpi_free(struct dpi *d)
{
    if (!d)
        return;
    ndpi_exit_detection_module(d->m);
    free(d);
}

void dpi_release(struct dpi *d, struct dpi_flow *f)
{
    if (f->nf) {
        ndpi_free_flow(f->nf);
        f->nf = NULL;
        d->live--;
    }
}

/* Allocates the flow's nDPI state; false (and the flow done) at the cap or out of memory. */
static bool start(struct dpi *d, struct dpi_flow *f)
{
    if (d->live >= d->max_flows) {
        d->st.skipped++;
        f->done = true;
        return false;
    }
    f->nf = calloc(1, SIZEOF_FLOW_STRUCT);
    if (!f->nf) {
        f->done = true;
        return false;
    }
    d->live++;
    d->st.flows++;
    return true;
}

void dpi_step(struct dpi *d, struct dpi_flow *f, const uint8_t *l3, uint32_t len,
              uint32_t payload_len, int64_t now_us, bool known)
{
    if (!d || f->done || !l3 || len == 0)
        return;
    if (known) {
        /* our parsers recognised the flow (TLS, HTTP, DNS, QUIC): nDPI would only repeat the
         * work (its TLS dissector is the costliest part of the packet path) */
        dpi_release(d, f);
        f->done = true;
        return;
    }
    /* start at the first payload: our parsers may recognise the flow there */
    if (!f->nf && (payload_len == 0 || !start(d, f)))
        return;
    uint16_t n = len > 65535 ? 65535 : (uint16_t)len;
    ndpi_protocol pr = ndpi_detection_process_packet(d->m, f->nf, l3, n, (uint64_t)(now_us / 1000));
    bool decided =
        pr.app_protocol != NDPI_PROTOCOL_UNKNOWN || pr.master_protocol != NDPI_PROTOCOL_UNKNOWN;
    if (!decided && ++f->pkts >= d->max_packets) {
        uint8_t guessed = 0;
        pr = ndpi_detection_giveup(d->m, f->nf, 1, &guessed);
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
        st->flows = st->skipped = 0;
}
