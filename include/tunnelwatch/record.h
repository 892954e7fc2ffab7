/* record.h - incidents and record output: dedup, event ids, the alerts file and Redis.
 *
 * struct recorder turns attributed hits into records: a suppressed record for an
 * allowlisted hit, an alert for the first hit of an incident (internal host, rule, name)
 * within the dedup window, update records carrying the count of later hits, and flow-end
 * records. Each record is formatted once (ECS or ASIM) and written to the alerts file (queued
 * to its writer thread, sink.h, which never blocks capture; or, in tests, one locked write to
 * a stream) and enqueued to the Redis publisher, which never blocks. It owns the dedup table, the
 * JSON buffer and the id generator; it borrows the configuration, the alerts stream and the
 * publisher.
 */
#ifndef TW_RECORD_H
#define TW_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/alert.h"
#include "tunnelwatch/cfg.h"
#include "tunnelwatch/fleet.h"
#include "tunnelwatch/pressure.h"
#include "tunnelwatch/publish.h"
#include "tunnelwatch/sink.h"

struct recorder_opts {
    const struct tw_cfg *cfg; /* borrowed; replaced by rec_set_cfg */
    FILE *alerts_out;         /* JSON lines, or NULL */
    struct pub *pub;          /* Redis, or NULL */
    enum alert_schema schema;
    FILE *log; /* one line per new alert when verbosity > 0 */
    int verbosity;
    struct sink *alerts_sink; /* the sensor's alerts file writer (sink.h), or NULL; when set,
                               * records go there instead of alerts_out (borrowed) */
    struct fleet *fleet;      /* fleet-wide dedup (fleet.h), or NULL (borrowed) */
    /* Called for each alert, update and flow-end record before it is formatted, to fill its
     * ev_* fields (the incident's pcap: evidence.h); NULL: none. The id is the incident's. */
    void (*evidence)(void *ud, struct alert_rec *rec, const char *incident_id);
    void *evidence_ud;
    /* Format and write records on a thread of the recorder's own: the caller's thread only
     * copies each record (see record.c); rec_drain waits for them. Off: written inline. */
    bool defer;
};

struct recorder_stats {
    uint64_t alerts, updates, suppressed, flow_ends, dropped;
    uint64_t external;      /* event records of external (transit) hits */
    uint64_t output_errors; /* records the alerts file did not take */
    uint64_t health;        /* sensor-health (resource_pressure) records */
};

struct recorder;

/* NULL when out of memory. */
struct recorder *rec_new(const struct recorder_opts *o);
void rec_free(struct recorder *r);
void rec_set_cfg(struct recorder *r, const struct tw_cfg *cfg);
/* The file name of the capture being read (NULL live), named by update records. */
void rec_set_file(struct recorder *r, const char *file);

/* An allowlisted hit: r (filled by the caller but for type and ids) goes out as a
 * suppressed record where alert.log_suppressed / alert.publish_suppressed say. */
void rec_suppressed(struct recorder *r, struct alert_rec *rec);
/* A hit: the incident it belongs to (NULL when the dedup table could not take it). The first
 * hit of an incident is written as an alert (*is_new); in->id is its event id. external: a
 * hit between two external hosts (alert.external = "event"), written as an event record
 * (event.action "external") instead of an alert, deduplicated the same way. */
struct incident *rec_hit(struct recorder *r, struct alert_rec *rec, bool external, bool *is_new);
/* A flagged flow ended: rec is written as a flow-end record with a new event id. */
void rec_flow_end(struct recorder *r, struct alert_rec *rec);
/* Update records for incidents with hits not yet reported, at most every
 * alert.update_interval_s (every one of them when final). */
void rec_tick(struct recorder *r, struct tw_time now, bool final);
void rec_stats(const struct recorder *r, struct recorder_stats *st);
/* Returns once every record handed over so far is written (to the alerts file's queue and the
 * publisher's); at once without recorder_opts.defer. */
void rec_drain(struct recorder *r);
uint64_t rec_dedup_evictions(const struct recorder *r);
/* Dedup incidents pushed out at the cap since the last health record, noted with the host
 * whose new incident pushed (owned by r). */
struct pressure *rec_dedup_pressure(struct recorder *r);
/* A sensor-health record (event.action "resource_pressure") at packet time now, to the
 * alerts file and Redis; the caller rate-limits. */
void rec_health(struct recorder *r, const struct alert_health *h, struct tw_time now);

#endif /* TW_RECORD_H */
