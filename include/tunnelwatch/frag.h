/* frag.h - bounded IPv4/IPv6 fragment reassembly.
 *
 * The caller feeds every packet dec_packet() classified DEC_FRAG to frag_add(). Datagrams
 * are keyed by (family, src, dst, id, protocol). When the last hole closes, frag_add()
 * hands back the reassembled IP payload (transport header included); the caller decodes it
 * with dec_transport(pkt.proto, data, len, len, &pkt), pkt still holding the addresses.
 *
 * Bounds: at most max_datagrams in progress (slots allocated by frag_new), at most
 * max_bytes of reassembly buffers in total, 65535 bytes per datagram, and a datagram older
 * than timeout_s seconds of packet time is dropped. At a cap the oldest datagram in progress
 * gives way to the newcomer (counted in limit and evicted, noted in frag_pressure); only a
 * datagram that cannot fit even alone is refused with TW_ELIMIT. Overlaps are resolved first-wins
 * (the bytes already held are kept, the newcomer's overlapping bytes ignored, counted), which
 * defeats the classic overlap tricks used to show an IDS different bytes than the host. Buffers are
 * kept for reuse, so steady state allocates nothing.
 */
#ifndef TW_FRAG_H
#define TW_FRAG_H

#include <stdint.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/pressure.h"
#include "tunnelwatch/tw.h"

struct frag;

struct frag_stats {
    uint64_t fragments;   /* fragments offered to frag_add */
    uint64_t reassembled; /* datagrams completed */
    uint64_t expired;     /* datagrams dropped on timeout */
    uint64_t limit;       /* fragments/datagrams dropped at a cap (evicted or TW_ELIMIT) */
    uint64_t evicted;     /* of those, older datagrams dropped to make room */
    uint64_t bad;         /* inconsistent fragments (TW_EBAD) */
    uint64_t overlaps;    /* fragments that overlapped held bytes (first wins) */
    uint32_t in_progress; /* datagrams currently held */
    uint64_t bytes_alloc; /* bytes of reassembly buffers currently allocated */
};

/* max_datagrams 1..65536, max_bytes >= 1, timeout_s >= 1. NULL on bad arguments or no memory. */
struct frag *frag_new(uint32_t max_datagrams, uint64_t max_bytes, uint32_t timeout_s);
void frag_free(struct frag *f);

/* Adds one fragment (pkt as filled by dec_packet() with DEC_FRAG) seen at packet time now.
 * Returns 1 when the datagram is complete: *data and *len hold the reassembled IP payload,
 * valid until the next frag_add() or frag_free(). Returns 0 when the fragment was stored
 * (or was a pure duplicate), TW_ELIMIT when a cap dropped it, TW_EBAD when it contradicts
 * the datagram (end past 65535, misaligned middle fragment, conflicting last fragment). */
int frag_add(struct frag *f, const struct dec_pkt *pkt, struct tw_time now, const uint8_t **data,
             uint32_t *len) TW_WUR;

/* Drops datagrams whose first fragment is older than the timeout at packet time now.
 * Returns how many were dropped. */
uint32_t frag_expire(struct frag *f, struct tw_time now);

void frag_stats(const struct frag *f, struct frag_stats *st);
/* Drops and refusals since the engine's last health record (owned by f). */
struct pressure *frag_pressure(struct frag *f);

#endif /* TW_FRAG_H */
