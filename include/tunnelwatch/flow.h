/* flow.h - bounded bidirectional flow table.
 *
 * Flows are keyed by the 5-tuple plus VLAN, in either direction, in an open-addressing table
 * (linear probing, load at most 0.5, the hash beside each slot's pointer) keyed with
 * SipHash-1-3 and a per-process random key (hash flooding cannot aim collisions at one probe
 * run). Flow records come from chunks allocated on demand up to max_flows (on transparent
 * huge pages when the kernel grants them), the owner's extensions from a second pool of the
 * same kind, only for the flows that need one; at the cap the oldest idle flow is evicted
 * (counted, its end reported first, noted in flow_pressure), closed flows first and a pinned
 * flow (one a rule flagged: a tunnel that is quiet for a while) only when the few oldest of
 * its list are all pinned, so a flood of new flows cannot push a flagged tunnel out and let
 * its later traffic pass as a new, unflagged flow. Three FIFO lists ordered by last
 * activity (open TCP, UDP, closed TCP) make expiry O(expired) with per-state timeouts.
 *
 * Ownership: the table owns every struct flow. A pointer returned by flow_lookup() is valid
 * until the next flow_lookup() or flow_expire() call (either may evict). The end callback is
 * called for every flow that leaves the table (timeout, eviction, flow_table_free), before
 * its memory is reused; it frees what the engine attached (ext), and the table then takes
 * the extension back.
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

/* A flow's record is its hot part: what every packet of the flow reads or writes, in three
 * cache lines (the lookup reads the first, the counters the second). What only some flows
 * need (reassembly, QUIC, nDPI, a flag) is the owner's extension, made on demand from a
 * bounded pool (flow_ext) and given back when the flow no longer needs it (flow_ext_drop). */
struct flow {
    /* line 1: the key and its hash (the lookup), TCP state, the owner's hot bytes */
    uint64_t hash;
    struct tw_addr cli, srv; /* client / server as decided at creation */
    uint16_t cport, sport;
    uint16_t vlan;
    uint8_t proto;
    uint8_t list;     /* enum flow_list */
    uint8_t fin_seen; /* bit 0 client FIN, bit 1 server FIN */
    bool rst_seen;
    bool syn_seen;
    bool pinned; /* set by the owner: evicted only after the unpinned (see above) */
    /* the owner's few bytes of per-flow state that must outlive its extension (zeroed at
     * creation) */
    _Alignas(8) uint8_t owner[8];
    /* line 2: what each packet updates */
    struct tw_time last;
    uint64_t pkts[2], bytes[2]; /* [0] client->server, [1] server->client; frame bytes on
                                 * the wire, as tshark's conversation statistics count them */
    int64_t moved_sec;          /* when it was last moved to its list's tail */
    void *ext; /* the owner's extension (ext_size bytes, flow_ext), NULL when it has none;
                * what it points to is freed by the end callback */
    /* line 3: the rest */
    struct tw_time first;
    uint64_t id;              /* creation order, unique per table */
    struct flow *prev, *next; /* its list, by last activity */
};

struct flow_opts {
    uint32_t max_flows;
    uint32_t idle_timeout_s, udp_timeout_s, tcp_close_timeout_s;
    size_t ext_size; /* bytes of the owner's extension (flow_ext), 0 for none */
    /* The end callback does nothing for a flow without an extension: flow_table_free then
     * ends only the flows that hold one (found through the extension pool, a few in steady
     * state) instead of walking every flow, a cache miss each. They end by list, then by
     * last activity, then by creation, as the walk would order them. */
    bool end_ext_only;
};

struct flow_stats {
    uint64_t created, active, evicted, expired, closed, peak;
    uint64_t ext_active, ext_peak; /* extensions in use, at most */
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

/* f's extension: ext_size bytes, zeroed when made, from a pool of at most max_flows
 * extensions (chunks allocated on demand, so memory follows the flows that hold one). Made
 * at the first call; stays until flow_ext_drop or the flow's end (freed after the end
 * callback). NULL when out of memory or ext_size is 0. */
void *flow_ext(struct flow_table *t, struct flow *f);
/* Gives f's extension back to the pool (f->ext becomes NULL); the owner has freed what it
 * pointed to. */
void flow_ext_drop(struct flow_table *t, struct flow *f);

void flow_stats(const struct flow_table *t, struct flow_stats *out);
/* Evictions since the engine's last health record (owned by t). */
struct pressure *flow_pressure(struct flow_table *t);
/* Bytes the table can use at most (records, extensions, slots), for the memory bound. */
size_t flow_table_bound(const struct flow_table *t);

#endif /* TW_FLOW_H */
