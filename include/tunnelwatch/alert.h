/* alert.h - alert records: ECS (default) or ASIM JSON, Community ID, incident dedup.
 *
 * An observation that a rule flags becomes an incident keyed by (internal host, rule, name).
 * The first hit of an incident is an alert record; repeats within the dedup window only
 * count, and an update record carrying the count goes out at most every update interval.
 * When a flagged flow ends, a flow-end record gives its duration and bytes/packets each way.
 * The dedup table is bounded (LRU); an incident pushed out early is counted.
 */
#ifndef TW_ALERT_H
#define TW_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/json.h"
#include "tunnelwatch/rules.h"
#include "tunnelwatch/tw.h"

enum alert_schema { ALERT_ECS = 0, ALERT_ASIM = 1 };

/* Community ID v1 (corelight/community-id-spec) of a flow, "1:<base64 sha1>". */
void community_id_v1(const struct tw_addr *src, const struct tw_addr *dst, uint16_t sport,
                     uint16_t dport, uint8_t proto, uint16_t seed, char out[64]);

enum alert_type {
    ALERT_RAISED,
    ALERT_UPDATE,
    ALERT_FLOW_END,
    ALERT_SUPPRESSED,
    ALERT_EXTERNAL,
    ALERT_HEALTH /* sensor health: a bounded resource had to refuse or reclaim (health) */
};

#define ALERT_HEALTH_TOP 3

/* A sensor-health record's content (ALERT_HEALTH); strings borrowed for the call. */
struct alert_health {
    const char *resource;        /* reassembly | quic_state | flow_table | fragments | ndpi |
                                  * dns_map | dedup */
    const char *config_key;      /* the cap's configuration key */
    uint64_t limit;              /* its configured value */
    uint64_t refused, reclaimed; /* since the resource's previous record */
    uint64_t noted;              /* of those, with a known source address */
    int n_top;
    struct {
        struct tw_addr addr;
        uint64_t count; /* may over-count by err (space-saving summary) */
        uint64_t err;
    } top[ALERT_HEALTH_TOP]; /* the sources behind them, most first */
};

/* Everything a record can carry; strings are borrowed for the call. */
struct alert_rec {
    enum alert_type type;
    struct tw_time ts;
    const char *event_id;    /* this record's id */
    const char *incident_id; /* the incident's first alert id (updates, flow ends) */
    const struct rule *rule;
    const char *pattern;
    const char *kind; /* dns_query | tls_sni | quic_sni | http_host | dns_answer */
    const uint8_t *name;
    size_t name_len;
    uint64_t frame;
    const char *file; /* capture file of a replay, NULL live */
    /* the flow: client -> server */
    struct tw_addr cli, srv;
    uint16_t cport, sport;
    uint8_t proto;
    uint16_t vlan;
    const char *app_proto; /* nDPI's label, NULL if unknown */
    const char *ja4;
    const char *alpn;
    bool ech;
    /* attribution */
    const char *attribution; /* client | resolver | dns_answer | inbound | external */
    struct tw_addr host;     /* the internal host it is attributed to */
    struct tw_addr resolver; /* dns_answer: who resolved the name */
    uint64_t resolver_frame;
    const char *binding_sensor; /* dns_answer: the sensor that saw the answer, if another */
    /* counters */
    uint64_t count; /* hits in the incident so far */
    struct tw_time first_seen, last_seen;
    /* flow end */
    uint64_t pkts[2], bytes[2];
    struct tw_time flow_start, flow_end;
    const char *end_reason;
    /* suppression */
    const char *allow_name, *allow_reason;
    const char *observer;              /* sensor name */
    const struct alert_health *health; /* ALERT_HEALTH only */
    /* what the rule matched on (raised alerts only; NULL otherwise) */
    const struct rule_obs *obs;
    unsigned matched; /* enum rule_field bits of obs the rule used */
    bool relaxed;     /* the rule runs without its process filters */
    /* the incident's pcap (evidence.h), NULL when it has none */
    const char *ev_pcap;
    uint64_t ev_pcap_bytes, ev_pcap_packets;
    const char *ev_redis_key; /* its Redis copy, NULL without one */
};

/* Writes one record as a JSON object (no newline) into w (reset first). */
int alert_format(struct jw *w, const struct alert_rec *r, enum alert_schema schema);
/* Renders each rule's ECS fields once, for alert_format to copy into every record of the
 * rule (the rule's metadata is a third of a record's cost otherwise). After ruleset_build,
 * before the set is shared; a rule it cannot render is written field by field. */
void alert_prepare_rules(struct ruleset *rs);
/* A copy of r with every string and byte run it points to (its observation and health record
 * included), in one block: alert_rec_copy_size(r) bytes at mem (aligned as malloc aligns),
 * owned by the caller. The rule is not copied (the caller holds it). */
size_t alert_rec_copy_size(const struct alert_rec *r);
struct alert_rec *alert_rec_copy_to(void *mem, const struct alert_rec *r);

/* Event ids: "<16 hex random boot id>-<16 hex counter>", unique across restarts. */
struct alert_ids {
    uint64_t boot, next;
};
void alert_ids_init(struct alert_ids *ids);
void alert_ids_next(struct alert_ids *ids, char out[40]);

/* --- dedup table --- */

struct incident {
    struct tw_addr host;
    const struct rule *rule; /* compared by id string across reloads; holds a reference to its
                              * set (rule_hold), moved to the newest hit's rule */
    char id[40];             /* event id of the raising alert */
    uint64_t count, reported_count;
    struct tw_time first, last, last_update;
    /* internal */
    uint64_t hash;
    struct incident *hnext; /* hash chain */
    struct incident_link {
        struct incident *prev, *next;
    } link[3];    /* on the table's lists (alert.c): by last hit, unreported, by first hit */
    uint64_t seq; /* position by last hit: larger is more recent */
    bool dirty;   /* on the list of incidents with unreported hits */
    char name[];  /* folded, at most 255 bytes and a NUL: allocated to its length (a table of
                   * incidents is mostly short names) */
};

struct dedup;

struct dedup *dedup_new(uint32_t max, uint32_t window_s);
void dedup_free(struct dedup *d);
/* Finds the live incident (within the window) or creates one; *is_new says which. */
struct incident *dedup_hit(struct dedup *d, const struct tw_addr *host, const struct rule *rule,
                           const uint8_t *name, size_t name_len, struct tw_time now, bool *is_new);
/* Calls fn for every incident with unreported hits whose last update is older than
 * interval_s (or all of them when interval_s == 0). */
void dedup_each_due(struct dedup *d, struct tw_time now, uint32_t interval_s,
                    void (*fn)(void *ud, struct incident *in), void *ud);
/* Removes the incidents whose window is over (their unreported hits flushed first), so that
 * an incident never hit again does not stay, and keep its rule set, until the LRU pushes it
 * out. */
void dedup_expire(struct dedup *d, struct tw_time now);
/* Called for an incident with unreported hits just before it leaves the table. */
void dedup_set_flush(struct dedup *d, void (*fn)(void *ud, struct incident *in), void *ud);
uint64_t dedup_evictions(const struct dedup *d);
size_t dedup_size(const struct dedup *d);

#endif /* TW_ALERT_H */
