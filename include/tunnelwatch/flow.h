/* flow.h - bounded bidirectional flow table.
 *
 * Flows are keyed by the 5-tuple plus VLAN, in either direction, in an open-addressing table
 * (linear probing, load at most 0.5, the hash beside each slot's pointer) keyed with
 * SipHash-1-3 and a per-process random key (hash flooding cannot aim collisions at one probe
 * run). Flow records come from chunks allocated on demand up to max_flows (on transparent
 * huge pages when the kernel grants them); at the cap the oldest idle flow is evicted
 * (counted, its end reported first, noted in flow_pressure), closed flows first and a pinned
 * flow (one a rule flagged: a tunnel that is quiet for a while) only when the few oldest of
 * its list are all pinned, so a flood of new flows cannot push a flagged tunnel out and let
 * its later traffic pass as a new, unflagged flow. Three FIFO lists ordered by last
 * activity (open TCP, UDP, closed TCP) make expiry O(expired) with per-state timeouts.
 *
 * Ownership: the table owns every struct flow. A pointer returned by flow_lookup() is valid
 * until the next flow_lookup() or flow_expire() call (either may evict). The end callback is
 * called for every flow that leaves the table (timeout, eviction, flow_table_free), before
 * its memory is reused; it frees what the engine attached (ext).
 */
#ifndef TW_FLOW_H
#define TW_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/pressure.h"
#include "tunnelwatch/tw.h"

enum flow_list { FLOW_L_TCP = 0, FLOW_L_UDP = 1, FLOW_L_CLOSED = 2, FLOW_L__N };

enum flow_end_reason { FLOW_END_IDLE, FLOW_END_CLOSED, FLOW_END_EVICTED, FLOW_END_SHUTDOWN };

struct flow {
    /* key */
    struct tw_addr cli, srv; /* client / server as decided at creation */
    uint16_t cport, sport;
    uint8_t proto;
    uint16_t vlan;
    /* state */
    struct tw_time first, last;
    uint64_t pkts[2], bytes[2]; /* [0] client->server, [1] server->client; frame bytes on
                                 * the wire, as tshark's conversation statistics count them */
    uint64_t id;                /* creation order, unique per table */
    uint8_t fin_seen;           /* bit 0 client FIN, bit 1 server FIN */
    bool rst_seen;
    bool syn_seen;
    bool pinned;       /* set by the owner: evicted only after the unpinned (see above) */
    uint8_t list;      /* enum flow_list */
    int64_t moved_sec; /* when it was last moved to its list's tail */
    void *ext;         /* ext_size bytes of engine state in the same slab record;
                        * what it points to is freed by the end callback */
    /* table links */
    struct flow *hnext; /* free list */
    struct flow *prev, *next;
    uint64_t hash;
};

struct flow_opts {
    uint32_t max_flows;
    uint32_t idle_timeout_s, udp_timeout_s, tcp_close_timeout_s;
    size_t ext_size; /* bytes of engine state kept with each flow (zeroed at creation) */
};

struct flow_stats {
    uint64_t created, active, evicted, expired, closed, peak;
};

typedef void (*flow_end_fn)(void *ud, struct flow *f, enum flow_end_reason why);

/* Decides which side is the client for a new flow (SYN, ports, internal networks). */
typedef bool (*flow_is_internal_fn)(void *ud, const struct tw_addr *a);

struct flow_table;

struct flow_table *flow_table_new(const struct flow_opts *o, flow_end_fn end, void *ud);
/* Ends every flow (FLOW_END_SHUTDOWN) and frees the table. */
void flow_table_free(struct flow_table *t);

/* Finds or creates the flow of p. *dir is 0 when p goes client->server, 1 otherwise.
 * Returns NULL only when the flow cannot be created (never at the cap: it evicts). */
struct flow *flow_lookup(struct flow_table *t, const struct dec_pkt *p, struct tw_time now,
                         int *dir, flow_is_internal_fn internal, void *iud);

/* The same with p's key hash already computed by flow_hash (a batch computes the hashes of
 * the packets ahead and prefetches their slots and flows while it works on this one). */
uint64_t flow_hash(const struct flow_table *t, const struct dec_pkt *p);
struct flow *flow_lookup_hashed(struct flow_table *t, const struct dec_pkt *p, uint64_t h,
                                struct tw_time now, int *dir, flow_is_internal_fn internal,
                                void *iud);
/* Cache hints, no effect on results: stage 0 fetches the home slot of hash h, stage 1 reads it
 * (fetched by stage 0 earlier) and fetches the flow there when its hash is h. */
void flow_prefetch(const struct flow_table *t, uint64_t h, int stage);

/* Updates counters (frame_len bytes), TCP state and list position for a packet of f in
 * direction dir. */
void flow_update(struct flow_table *t, struct flow *f, const struct dec_pkt *p, int dir,
                 uint32_t frame_len, struct tw_time now);

/* Ends flows idle past their timeout at packet time now. At most budget flows per call
 * (0 = no limit). Returns the number ended. */
size_t flow_expire(struct flow_table *t, struct tw_time now, size_t budget);

void flow_stats(const struct flow_table *t, struct flow_stats *out);
/* Evictions since the engine's last health record (owned by t). */
struct pressure *flow_pressure(struct flow_table *t);
/* Bytes the table can use at most (records + slots), for the memory bound. */
size_t flow_table_bound(const struct flow_table *t);

#endif /* TW_FLOW_H */
