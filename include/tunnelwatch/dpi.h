/* dpi.h - nDPI, for the label of flows our own parsers cannot name.
 *
 * struct dpi owns the nDPI detection module; struct dpi_flow (embedded in the engine's
 * per-flow state) owns one flow's nDPI state from its first payload until nDPI decides or
 * gives up after flow.ndpi_packets packets, at most flow.ndpi_max_flows at once (skips
 * counted). A flow that our parsers recognised (TLS, HTTP, DNS, QUIC) never reaches nDPI:
 * its label is ours.
 */
#ifndef TW_DPI_H
#define TW_DPI_H

#include <stdbool.h>
#include <stdint.h>

struct ndpi_flow_struct;

struct dpi_flow {
    struct ndpi_flow_struct *nf; /* owned; NULL when idle */
    uint16_t proto;              /* nDPI's verdict, 0 = unknown */
    uint8_t pkts;
    bool done;
};

struct dpi_stats {
    uint64_t flows, skipped;
};

struct dpi;

/* NULL when nDPI cannot start (the sensor then runs without labels). */
struct dpi *dpi_new(uint32_t max_flows, uint32_t max_packets);
void dpi_free(struct dpi *d);
/* One packet of a flow (l3: its innermost IP header, len captured bytes from it);
 * payload_len 0 packets are skipped until the first payload. known: our parsers named the
 * flow, so nDPI stops (and frees) at once. */
void dpi_step(struct dpi *d, struct dpi_flow *f, const uint8_t *l3, uint32_t len,
              uint32_t payload_len, int64_t now_us, bool known);
/* Frees the flow's nDPI state, if any (flow end). */
void dpi_release(struct dpi *d, struct dpi_flow *f);
/* nDPI's protocol name for the flow, NULL when it has none. */
const char *dpi_label(struct dpi *d, const struct dpi_flow *f);
void dpi_stats(const struct dpi *d, struct dpi_stats *st);

#endif /* TW_DPI_H */
