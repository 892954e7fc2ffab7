/* stream.h - bounded TCP reassembly of the first bytes of one direction of a flow.
 *
 * Only what a parser needs (a ClientHello, an HTTP request head, DNS-over-TCP messages) is
 * kept: at most `max` bytes from the stream's base sequence number. Segments may arrive in
 * order, out of order, overlapping or retransmitted; bytes already present are kept (first
 * wins, so a later overlapping segment cannot rewrite what a parser may have seen). The
 * contiguous prefix is what parsers read. The buffer grows on demand up to max and is freed
 * with the stream.
 */
#ifndef TW_STREAM_H
#define TW_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define STREAM_MAX_GAPS 8 /* out-of-order islands tracked beyond the contiguous prefix */

struct stream {
    uint8_t *buf;
    uint32_t cap;      /* allocated */
    uint32_t max;      /* cap on cap */
    uint32_t base_seq; /* sequence number of buf[0] */
    uint32_t len;      /* contiguous bytes from buf[0] */
    bool base_set;
    bool base_fixed; /* base from a SYN: nothing before it belongs to the stream */
    uint8_t n_isl;
    struct {
        uint32_t s, e; /* offsets [s, e) present beyond len */
    } isl[STREAM_MAX_GAPS];
};

/* Sets the base (ISN + 1 from a SYN). Later segments are placed relative to it. Without a
 * SYN the first segment seen sets the base, and an earlier segment arriving later (out of
 * order) moves the base back as long as everything still fits in max. */
void stream_set_base(struct stream *s, uint32_t seq);

/* Adds a segment. Returns the number of new contiguous bytes (>= 0), TW_ELIMIT when the
 * segment lies past max or too many islands, TW_ENOMEM. *budget is the remaining shared
 * allocation budget in bytes (decremented by growth), NULL for no budget. */
int stream_add(struct stream *s, uint32_t seq, const uint8_t *data, uint32_t n, int64_t *budget);

/* Drops the first n contiguous bytes (a parsed DNS message), shifting the rest. */
void stream_consume(struct stream *s, uint32_t n);

/* Frees the buffer, returning its bytes to *budget. The struct can be reused. */
void stream_reset(struct stream *s, int64_t *budget);

#endif /* TW_STREAM_H */
