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

#include "tunnelwatch/pressure.h"
#include "tunnelwatch/tw.h"

#define STREAM_MAX_GAPS 8 /* out-of-order islands tracked beyond the contiguous prefix */

/* ---------- the shared reassembly budget ----------
 *
 * Every reassembly buffer and every QUIC Initial state (a "holder") takes its bytes from one
 * pool. Under pressure the pool does not simply refuse the newcomer, which would let junk
 * that arrived first and stalled hold the budget hostage: a holder that made no progress for
 * stall_us (packet time) is reclaimed first, least recent progress first; and one source
 * address (a keyed hash bucket of the flow's client) may hold at most src_cap bytes, so one
 * host's flood is what gives way, not everyone else's handshakes. Only when no stalled holder
 * is left is a request refused. Reclaims and refusals are counted and noted with their
 * source (pressure.h), per kind of holder. */

#define REASM_SRC_BUCKETS 4096

enum reasm_kind { REASM_STREAM = 0, REASM_OTHER = 1 };

/* One holder of pool bytes, embedded in what it accounts for (which must not move while it
 * holds bytes). Zeroed = holds nothing. */
struct reasm_hold {
    struct reasm_hold *prev, *next; /* the pool's list, least recent progress first */
    int64_t last_us;                /* packet time of its last progress */
    uint32_t bytes;                 /* bytes taken from the pool */
    uint16_t bucket;                /* source bucket (reasm_set_source) */
    uint8_t kind;                   /* enum reasm_kind */
    bool linked;
    bool lost;                 /* reclaimed by the pool: the holder's data is gone */
    bool bucket_set;           /* bucket computed (at the first reasm_take: most holders never
                                * take, and a keyed hash per holder per flow is not free) */
    const struct tw_addr *src; /* borrowed: the flow's client, lives as long as the holder */
};

struct reasm_pool {
    int64_t budget;   /* bytes left */
    int64_t total;    /* bytes in all */
    int64_t stall_us; /* a holder without progress this long may be reclaimed */
    int64_t now_us;   /* packet time, set by the owner before each packet */
    uint64_t src_cap; /* bytes one source bucket may hold */
    uint64_t *src_held;
    uint8_t key[16];
    struct reasm_hold *head, *tail;
    /* frees a REASM_OTHER holder's memory (the pool then returns its bytes) */
    void (*reclaim_other)(void *ud, struct reasm_hold *h);
    void *ud;
    uint64_t reclaimed[2], refused[2], refused_src[2]; /* totals by kind, for the counters */
    struct pressure pr[2];                             /* by kind, since the last record */
};

/* total bytes; stall_ms 0 = never reclaim; src_pct 1..100 = share one source may hold.
 * TW_OK or TW_ENOMEM. */
int reasm_pool_init(struct reasm_pool *p, uint64_t total, uint32_t stall_ms, uint32_t src_pct);
void reasm_pool_fini(struct reasm_pool *p);
/* Names the holder's source (its flow's client, borrowed) and kind before it takes bytes. */
void reasm_set_source(struct reasm_pool *p, struct reasm_hold *h, const struct tw_addr *src,
                      enum reasm_kind kind);
/* Takes n more bytes for h: TW_OK, or TW_ELIMIT (its source is at its share, or the pool is
 * spent and nothing stalled could be reclaimed; counted). Counts as progress. */
int reasm_take(struct reasm_pool *p, struct reasm_hold *h, uint32_t n);
/* h made progress (new bytes): it goes to the end of the reclaim order. */
void reasm_touch(struct reasm_pool *p, struct reasm_hold *h);
/* Returns all of h's bytes. */
void reasm_release(struct reasm_pool *p, struct reasm_hold *h);

struct stream {
    struct reasm_hold h; /* first: the pool reclaims a stream through it */
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
 * segment lies past max or too many islands, when the pool refused the growth, or when the
 * pool reclaimed this stream's buffer earlier (h.lost: the stream is given up), TW_ENOMEM.
 * pool: the shared budget its buffer grows from, NULL for none. */
int stream_add(struct stream *s, uint32_t seq, const uint8_t *data, uint32_t n,
               struct reasm_pool *pool);

/* Drops the first n contiguous bytes (a parsed DNS message), shifting the rest. */
void stream_consume(struct stream *s, uint32_t n);

/* Frees the buffer, returning its bytes to the pool. The struct can be reused (max, the
 * source and kind are kept; a reclaimed stream is usable again). */
void stream_reset(struct stream *s, struct reasm_pool *pool);

#endif /* TW_STREAM_H */
