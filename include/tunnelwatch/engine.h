/* engine.h - the packet path: decode -> flow -> extract -> observe -> hit.
 *
 * One struct engine per capture thread. It owns the flow table, the fragment reassembler and
 * one of each part the path feeds: extraction (extract.h), attribution (attrib.h), incidents
 * and records (record.h), the per-host summary (summary.h), the evidence pcap (evidence.h)
 * and nDPI (dpi.h). It borrows the configuration, the rule set (swappable between packets),
 * the publisher and the output streams. engine_packet() is the pcap callback's body; it
 * allocates only for a flow's reassembly buffers, QUIC or nDPI state, a flagged flow's flag,
 * all capped by the configuration.
 */
#ifndef TW_ENGINE_H
#define TW_ENGINE_H

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/alert.h"
#include "tunnelwatch/cfg.h"
#include "tunnelwatch/decode.h"
#include "tunnelwatch/evidence.h"
#include "tunnelwatch/extract.h"
#include "tunnelwatch/publish.h"
#include "tunnelwatch/record.h"
#include "tunnelwatch/rules.h"
#include "tunnelwatch/stats.h"

struct engine_opts {
    const struct tw_cfg *cfg;
    FILE *names_out;  /* --names TSV, or NULL */
    FILE *alerts_out; /* JSON lines, or NULL */
    FILE *log;        /* stderr */
    enum alert_schema schema;
    struct pub *pub; /* Redis, or NULL */
    int verbosity;
    struct sink *alerts_sink; /* the alerts file's writer (sink.h): used instead of alerts_out */
    struct fleet *fleet;      /* shared bindings and dedup (fleet.h), or NULL (borrowed) */
    int fleet_slot;           /* this engine's inbound queue in fleet */
    struct evw *evw;          /* per-incident pcaps (evidence.h), or NULL (borrowed) */
};

struct engine;

/* NULL with a one-line reason in err. rules may be NULL (names only). The engine holds its own
 * reference to its rule set (rules.h), and its flagged flows and incidents to theirs: the
 * caller may drop its own whenever it likes. */
struct engine *engine_new(const struct engine_opts *o, const struct ruleset *rules, char *err,
                          size_t errlen);
/* Ends every flow (flow-end records, their last evidence packets), flushes pending updates. */
void engine_finish(struct engine *e);
void engine_free(struct engine *e);

/* Starts a new input: frame numbers restart at 1; file is NULL for a live interface. */
void engine_begin_input(struct engine *e, const char *file, int dlt, bool print_header);
void engine_packet(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *data);
/* n packets of the current link type in order, the same as n engine_packet calls but with the
 * flow table's cache misses overlapped (all n packets must stay valid during the call). */
#define ENGINE_BATCH 32
void engine_packets(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *const *data,
                    size_t n);
/* A frame that is not processed (BPF-filtered, unsupported link type) still takes a number. */
void engine_skip_frame(struct engine *e);
/* Link type of the following packets (pcapng files mix interfaces). */
void engine_set_dlt(struct engine *e, int dlt);
/* Periodic work at time now (packet time in replays, wall clock when live and idle). */
/* Sets up what the engine otherwise builds at its first need (nDPI's detection module, about
 * 50 ms and 7 MiB): live capture calls it before the first packet. */
void engine_prepare(struct engine *e);
void engine_tick(struct engine *e, struct tw_time now);
/* The rule set to use from the next packet on (referenced; the old set's reference dropped). */
void engine_set_rules(struct engine *e, const struct ruleset *rules);
/* Switches to a reloaded configuration (internal networks, resolvers, allowlist, alert
 * options); flow table, maps and dedup keep their state and sizes. The caller keeps the old
 * configuration alive until engine_free. Returns TW_OK or TW_ENOMEM (old one kept). */
int engine_set_cfg(struct engine *e, const struct tw_cfg *cfg);
/* Capture workers: the main thread posts new rules and/or configuration (each may be NULL:
 * unchanged) and the worker applies them between batches with engine_apply_update(). Rules
 * are referenced at the post; the caller keeps the posted and the old configuration alive
 * until engine_update_idle() says the worker took the update (a worker that never takes it:
 * until engine_free). The alerts file needs no update: the sink reopens it (sink.h). */
int engine_post_update(struct engine *e, const struct ruleset *rules, const struct tw_cfg *cfg);
/* True once the worker took the last posted update (waits up to wait_ms). TW_ELIMIT from
 * engine_post_update means it did not within 2 s. */
bool engine_update_idle(struct engine *e, int wait_ms);
void engine_apply_update(struct engine *e);

/* Appends every counter of the engine and its parts to st (see stats.h). */
void engine_stats(const struct engine *e, struct tw_stats *st);
/* The same as "field\tvalue\n" lines. */
size_t engine_stats_text(const struct engine *e, char *buf, size_t n);
/* Investigation summary per internal host: a table to out, JSON to json_out (either NULL). */
void engine_summary(const struct engine *e, FILE *out, FILE *json_out);
uint64_t engine_alerts(const struct engine *e);
/* The record counters (alerts, external events, output errors...), read directly. */
void engine_record_stats(const struct engine *e, struct recorder_stats *st);

#endif /* TW_ENGINE_H */
