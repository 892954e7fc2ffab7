/* evidence.h - the packets of incidents: per-incident pcaps (evidence.dir) and
 * --write-evidence.
 *
 * Per-incident pcaps (evidence.dir), live and in replays. Three parts:
 * - struct evw, the writer (one per sensor, shared by every capture worker): a bounded queue
 *   of packet copies (evw_put never waits: what does not fit is dropped, counted) and a thread
 *   that appends them to DIR/<incident id>.pcap with the capture's link type and the
 *   original timestamps and bytes. The directory's pcaps together stay under max_total
 *   (accounted when queued; the oldest incident's file is removed first, counted; files left
 *   by an earlier run count and go first). A write error (full disk) is counted, said once
 *   and costs that packet, never a stall. It also keeps the DNS store: the query and answer
 *   packets of answers that named a flagged name, by answer address (bounded, shared by the
 *   workers), written once into each incident whose flow connects to that address.
 * - struct evflow, one flow's part (a pointer in the engine's per-flow state, NULL until
 *   evidence is on and the flow has packets): the flow's first packets (early buffer, bounded
 *   per flow and by struct evpool's budget) until the flow is flagged (they are queued to the
 *   incident, and every later packet up to max_flow) or decided not to be (freed).
 * - struct evpool, one capture thread's: the early budget, the query ring (recent DNS
 *   queries, to pair an answer with its query) and the counters.
 * Threads: evw_* may be called from any thread; an evpool and its flows belong to one engine.
 *
 * --write-evidence FILE is built on them: the sensor runs the writer (on evidence.dir, or on
 * a private directory beside FILE, unbounded and removed at exit, whose files no record names)
 * and at exit, after evw_stop, evw_merge() writes the union of this run's incident pcaps to
 * FILE (evidence_merge), in replays, live and with capture workers alike.
 */
#ifndef TW_EVIDENCE_H
#define TW_EVIDENCE_H

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/tw.h"

struct evidence_merge_stats {
    uint64_t packets;    /* written */
    uint64_t duplicates; /* packets another file also held, written once */
    uint64_t other_dlt;  /* packets of another link type than the first file's, left out */
    uint64_t unreadable; /* files that cannot be opened or are cut short, packets unreadable */
};

/* The union of the pcaps paths[0..n) (files evw wrote, microsecond timestamps) into out, with
 * the first readable file's link type: packets in timestamp order (ties: file order, then
 * position in the file); a packet (timestamp, lengths and bytes) that several files hold is
 * written as often as the file holding it most often has it. TW_OK with st filled (err ""
 * when out was written; when no file could be read, out is left untouched and err says so),
 * or TW_EIO / TW_ENOMEM with a one-line reason in err. */
int evidence_merge(const char *const *paths, size_t n, const char *out,
                   struct evidence_merge_stats *st, char *err, size_t errlen);

/* ---------- per-incident pcaps ---------- */

struct evw_opts {
    const char *dir;          /* created if missing (0750); made absolute */
    uint64_t max_total_bytes; /* every pcap in dir together */
    size_t queue_bytes;       /* packets waiting for the thread */
    FILE *log;                /* one line per condition, or NULL */
    /* Redis copy (0: off): at most redis_max_bytes of the pcap, whole packets, under
     * redis_prefix + incident id with a TTL; put must not block (it queues; false: dropped). */
    size_t redis_max_bytes;
    const char *redis_prefix;
    uint32_t redis_ttl_s;
    bool (*redis_put)(void *ud, const char *key, const uint8_t *blob, size_t n, uint32_t ttl_s);
    void *redis_ud;
    bool wait;    /* replays: evw_put waits for room in the queue rather than drop */
    bool unnamed; /* --write-evidence's private directory: evw_info says nothing (records name
                   * no file that is removed at exit) */
};

struct evw_stats {
    uint64_t packets, bytes;   /* written to incident pcaps */
    uint64_t files;            /* incident pcaps created */
    uint64_t removed;          /* incident pcaps removed to stay under max_total */
    uint64_t dropped_queue;    /* packets the full queue did not take */
    uint64_t dropped_disk;     /* packets that alone would exceed max_total */
    uint64_t write_errors;     /* packets a write refused (full disk, ...) */
    uint64_t dropped_linktype; /* packets of another link type than their incident's file */
    uint64_t redis_copies;     /* Redis copies handed over */
    uint64_t redis_dropped;    /* Redis copies the hand-over refused */
    uint64_t dir_bytes;        /* gauge: the pcaps' bytes (queued included) */
    uint64_t queued_bytes;     /* gauge */
    uint64_t dns_stored;       /* DNS answer packets kept for attribution */
};

struct evw;

/* NULL with a one-line reason in err (dir cannot be created or read). */
struct evw *evw_new(const struct evw_opts *o, char *err, size_t errlen);
/* Starts the thread (after the privilege drop). TW_OK or TW_ENOMEM. */
int evw_start(struct evw *w);
/* Queues one packet of incident (a copy). TW_OK, or TW_ELIMIT (dropped, counted). */
int evw_put(struct evw *w, const char *incident, int dlt, const struct pcap_pkthdr *h,
            const uint8_t *data);
/* The incident's flow ended: its Redis copy is refreshed now rather than within a second. */
void evw_sync(struct evw *w, const char *incident);
/* Drains the queue, then stops and joins the thread (writes from then on are dropped). */
void evw_stop(struct evw *w);
void evw_free(struct evw *w);
void evw_get_stats(struct evw *w, struct evw_stats *st);
/* --write-evidence: after evw_stop, the union of the incident pcaps this run wrote (not an
 * earlier run's files in dir) into path (evidence_merge). Returns the packets written (>= 0)
 * with a one-line report in err that also counts every packet the writer lost (queue, disk
 * bound, write errors, link type, incident files removed for max_total), or TW_EIO /
 * TW_ENOMEM with the reason in err. */
int evw_merge(struct evw *w, const char *path, char *err, size_t errlen);
/* What a record says of the incident: its pcap path (into path), bytes and packets queued or
 * written, the Redis key (into key, "" without a copy). false: the incident has no pcap. */
bool evw_info(struct evw *w, const char *incident, char *path, size_t pathlen, uint64_t *bytes,
              uint64_t *packets, char *key, size_t keylen);
/* An answer that mapped addr to a flagged name: pkt (and the query paired with it, NULL if
 * none) are kept for connections to addr. */
void evw_dns_keep(struct evw *w, const struct tw_addr *addr, int dlt, const struct pcap_pkthdr *qh,
                  const uint8_t *q, const struct pcap_pkthdr *ah, const uint8_t *a);
/* Queues to incident the kept DNS packets that named addr, once per incident; an answer kept
 * later (another capture worker's, which can lag) but captured before since_us (the flow's
 * first packet) still goes to it. */
void evw_dns_attach(struct evw *w, const char *incident, const struct tw_addr *addr,
                    int64_t since_us);

/* ---------- one capture thread's part ---------- */

struct evpool_opts {
    uint32_t early_packets;  /* per flow */
    uint32_t early_bytes;    /* per flow */
    uint64_t early_total;    /* every flow's early packets together */
    uint64_t max_flow_bytes; /* one flow's packets in its incident's pcap */
};

struct evpool_stats {
    uint64_t early_refused;  /* packets the early budget did not take */
    uint64_t early_overflow; /* packets past a flow's early cap, before its flag */
    uint64_t flow_capped;    /* packets past evidence.max_flow_mib */
    uint64_t early_bytes;    /* gauge */
};

struct evpool;
struct evflow;

/* w borrowed (outlives the pool). NULL when out of memory. */
struct evpool *evpool_new(struct evw *w, const struct evpool_opts *o);
void evpool_free(struct evpool *p);
void evpool_get_stats(const struct evpool *p, struct evpool_stats *st);
/* The link type of the packets that follow. */
void evpool_set_dlt(struct evpool *p, int dlt);
/* A packet of the flow whose state is *slot: kept (young, undecided), queued (flagged) or
 * ignored (decided). */
void evflow_packet(struct evpool *p, struct evflow **slot, const struct pcap_pkthdr *h,
                   const uint8_t *data);
/* The flow (first packet at since_us) was flagged for incident: the DNS packets that named
 * srv, then its early packets
 * are queued, and its later packets follow. A flow already flagged keeps its incident. */
void evflow_flag(struct evpool *p, struct evflow **slot, const char *incident,
                 const struct tw_addr *srv, int64_t since_us);
/* True once the flow is flagged. */
bool evflow_flagged(const struct evflow *f);
/* No name can flag the flow any more: its early packets are freed. */
void evflow_decided(struct evpool *p, struct evflow **slot);
/* The flow's engine state is made again after it settled (decided, nothing buffered): later
 * packets are not kept until a flag, as after evflow_decided. */
void evflow_settled(struct evflow **slot);
/* Flow end: everything freed; a flagged flow's incident gets its Redis copy refreshed. */
void evflow_end(struct evpool *p, struct evflow **slot);
/* A DNS query packet (UDP), remembered a little while to pair it with its answer. */
void evpool_dns_query(struct evpool *p, const struct dec_pkt *d, const struct pcap_pkthdr *h,
                      const uint8_t *data);
/* A DNS answer packet that mapped addr to a flagged name (evw_dns_keep, with its query). */
void evpool_dns_answer(struct evpool *p, const struct dec_pkt *d, const struct tw_addr *addr,
                       const struct pcap_pkthdr *h, const uint8_t *data);

#endif /* TW_EVIDENCE_H */
