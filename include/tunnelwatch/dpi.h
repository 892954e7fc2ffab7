/* dpi.h - nDPI, for the label of flows our own parsers cannot name.
 *
 * struct dpi owns the nDPI detection module; struct dpi_flow (embedded in the engine's
 * per-flow state) owns one flow's nDPI state from its first payload until nDPI decides or
 * gives up after flow.ndpi_packets packets, at most flow.ndpi_max_flows at once. At that cap
 * the state of the flow that has waited longest for its next packet gives way when it waited
 * flow.stall_ms or more (a flood of flows that send one packet and stop cannot keep later
 * flows from being labelled); otherwise the newcomer is skipped. Both counted and noted
 * (dpi_pressure). The engine decides per packet whether a flow needs nDPI (enum dpi_need):
 * a flow that our parsers recognised (TLS, HTTP, DNS, QUIC) never reaches nDPI, its label is
 * ours; nor does a flow nobody reads a label of (unflagged, our parsers done with it or not
 * reading it from its start). The per-flow part kept in every flow record is small (struct
 * dpi_flow); the rest lives only while nDPI runs (struct dpi_live).
 */
#ifndef TW_DPI_H
#define TW_DPI_H

#include <stdbool.h>
#include <stdint.h>

#include "tunnelwatch/pressure.h"

struct ndpi_flow_struct;

struct dpi_live;

/* In every flow record: 16 bytes. */
struct dpi_flow {
    struct dpi_live *live; /* owned; NULL when idle */
    uint16_t proto;        /* nDPI's verdict, 0 = unknown */
    bool done;             /* nDPI will not run for this flow again */
};

struct dpi_stats {
    uint64_t flows, skipped;
    uint64_t reclaimed; /* stalled states dropped for a newcomer */
};

struct dpi;

/* NULL when out of memory (the sensor then runs without labels). nDPI's detection module
 * (about 50 ms of CPU and 7 MiB to set up) is made at once on a background thread, so that
 * the first flow that needs it does not wait for it inline; without a thread, it is made when
 * a flow first needs it. */
struct dpi *dpi_new(uint32_t max_flows, uint32_t max_packets, uint32_t stall_ms);
/* Sets the detection module up now, or waits for the background thread to have done it (a
 * live capture calls it before its first packet, so that the set-up never delays one); false
 * when nDPI cannot start (flows go unlabelled). */
bool dpi_prepare(struct dpi *d);
void dpi_free(struct dpi *d);
/* What the engine wants of nDPI for a flow, packet by packet. */
enum dpi_need {
    DPI_RUN,  /* a label may be read (flagged flow, a preamble being read): feed nDPI */
    DPI_IDLE, /* no label is read now: nDPI's state (if any) is freed, it may run later */
    DPI_STOP  /* never again: our parsers named the flow or are done with it; a label nDPI
               * gave before stays */
};

/* One packet of a flow (l3: its innermost IP header, len captured bytes from it);
 * payload_len 0 packets are skipped until the first payload. */
void dpi_step(struct dpi *d, struct dpi_flow *f, const uint8_t *l3, uint32_t len,
              uint32_t payload_len, int64_t now_us, enum dpi_need need);
/* Frees the flow's nDPI state, if any (flow end). */
void dpi_release(struct dpi *d, struct dpi_flow *f);
/* nDPI's protocol name for the flow, NULL when it has none. */
const char *dpi_label(struct dpi *d, const struct dpi_flow *f);
void dpi_stats(const struct dpi *d, struct dpi_stats *st);
/* Reclaims and skips since the engine's last health record; NULL when d is NULL. */
struct pressure *dpi_pressure(struct dpi *d);

#endif /* TW_DPI_H */
