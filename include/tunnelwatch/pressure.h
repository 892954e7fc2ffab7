/* pressure.h - what a bounded resource had to give up, and at whose behest.
 *
 * Each bounded resource (reassembly bytes, QUIC state, the flow table, IP fragments, nDPI
 * state, the IP -> name map, dedup incidents) owns one struct pressure. It counts refusals
 * (a newcomer turned away) and reclaims (a holder pushed out to make room) since the last
 * sensor-health record, and keeps the source addresses behind them in a space-saving
 * summary (Metwally et al., 2005) of PRESSURE_TOPK counters: a fixed few bytes however many
 * addresses an attacker uses, and any address with more than 1/PRESSURE_TOPK of the notes
 * is certain to be in it. The engine reads and clears it when it writes the health record
 * (rate-limited, see engine.c); the resource's Prometheus counters are kept apart.
 */
#ifndef TW_PRESSURE_H
#define TW_PRESSURE_H

#include <stdbool.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define PRESSURE_TOPK 8

struct pressure_src {
    struct tw_addr addr;
    uint64_t count; /* an over-estimate by at most err */
    uint64_t err;
};

struct pressure {
    uint64_t refused, reclaimed; /* since the last record */
    uint64_t noted;              /* notes with an address since the last record */
    uint8_t n;
    struct pressure_src top[PRESSURE_TOPK];
};

/* One refusal (reclaim false) or reclaim (true); src the address behind it, NULL unknown. */
void pressure_note(struct pressure *p, const struct tw_addr *src, bool reclaim);
/* True when something was noted since the last pressure_clear. */
bool pressure_pending(const struct pressure *p);
/* Up to k addresses, largest count first, into out; returns how many. */
int pressure_top(const struct pressure *p, struct pressure_src *out, int k);
void pressure_clear(struct pressure *p);

#endif /* TW_PRESSURE_H */
