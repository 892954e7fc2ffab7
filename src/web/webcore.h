/* webcore.h - tunnelwatch-web's data model: records, the bounded window, the aggregation and the
 * JSON / HTML it renders. No I/O, no threads: main.c holds one lock around all of it.
 *
 * The window keeps the parsed records read from the alert stream, oldest first, bounded by a
 * count and by age (see web_win_ref_us for the anchor the age is measured from). Aggregates
 * (hosts, incidents, facets, the timelines, the event-id index) are kept incrementally as
 * records arrive and leave (webwin.c), so a request costs what it shows, not the window's size:
 * the page asks for the top-N hosts and one page of alerts, and a poll whose version did not
 * change gets almost nothing back. Duplicates are dropped by stream id and by event.id (a
 * bounded seen-id set, keyed SipHash, oldest forgotten first and counted).
 *
 * Everything in a record came from Redis, and its names came off the wire: strings are copied
 * truncated into fixed fields, the JSON is parsed strictly (depth and size capped), and every
 * renderer escapes: JSON strings escape <, >, & as \u00XX and replace invalid UTF-8 by U+FFFD,
 * HTML escapes the five markup characters.
 */
#ifndef TW_WEBCORE_H
#define TW_WEBCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/json.h"
#include "tunnelwatch/tw.h"

/* Output goes to tw_core's JSON writer (tunnelwatch/json.h): one capped buffer whose error
 * latches. Renderers write through it with html_safe set (web_out_init), so JSON strings
 * escape <, > and & as described above. */
void web_out_init(struct jw *out, size_t max);
/* Appends s HTML-escaped (& < > " '); invalid UTF-8 and control characters other than tab and
 * newline become U+FFFD. */
void web_html_escape(struct jw *out, const char *s, size_t n);

/* json_walk (json.h) over one record, its size capped for the window. */
#define WEB_JSON_DEPTH JSON_WALK_DEPTH
typedef json_member_cb web_json_cb;
int web_json_walk(const char *s, size_t n, web_json_cb cb, void *ctx) TW_WUR;

enum web_kind {
    WEB_OTHER = 0,
    WEB_ALERT,      /* event.kind alert, event.action raised: a new incident */
    WEB_UPDATE,     /* event.action update: event.count of an incident grew */
    WEB_FLOW_END,   /* event.action flow_end: bytes each way of a flagged flow */
    WEB_SUPPRESSED, /* event.action suppressed: an allowlisted hit */
};

/* One record. raw is the whole JSON text, owned; the strings are NUL-terminated copies,
 * truncated (host to WEB_HOST_MAX - 1 bytes, names to 255, ids to 95), that live in raw's
 * allocation after the text ("" when missing, never NULL), so they last until web_rec_clear. */
#define WEB_HOST_MAX 64
struct web_rec {
    uint64_t seq;  /* order of arrival in this process, from 1 */
    char sid[32];  /* Redis stream entry id, "" when not from a stream */
    int64_t ts_us; /* @timestamp, microseconds since the epoch; 0 when missing */
    enum web_kind kind;
    const char *event_id, *incident_id, *rule_id, *rule_name, *level;
    const char *host, *dst_ip, *domain, *ev_kind, *ev_name, *sensor, *proto;
    int64_t dst_port, count, src_bytes, dst_bytes; /* -1 when missing */
    char *raw;
    size_t raw_len;
    /* Window bookkeeping (webwin.c), zero outside a window: the time the window files the
     * record under (ts_us, or the arrival time when ts_us is missing or skewed), the hits it
     * added to its host, and its links into the aggregates, which it holds a reference on. */
    int64_t eff_us, delta;
    struct web_host *hagg;
    struct web_incident *inc;
    struct web_rec *hprev, *hnext; /* the host's records, in arrival order */
    struct web_istr *frule, *flevel, *fsensor;
};

/* Parses one alert record (JSON object). On TW_OK r->raw is a malloc'd copy; web_rec_clear
 * frees it. A record without a timestamp or kind is still accepted (kind WEB_OTHER). */
int web_rec_parse(const char *json, size_t n, struct web_rec *r) TW_WUR;
void web_rec_clear(struct web_rec *r);
/* RFC 3339 "2024-03-01T12:00:02.482330Z" (or +hh:mm) to microseconds; TW_EBAD when not. */
int web_parse_time(const char *s, int64_t *us) TW_WUR;
/* Formats us as RFC 3339 UTC with microseconds into buf (>= 32 bytes), via tw_time_rfc3339. */
void web_fmt_time(int64_t us, char *buf, size_t n);

/* Largest accepted record: anything bigger is counted as bad and skipped. */
#define WEB_REC_MAX (64 * 1024)

struct web_win;
struct web_win_stats {
    uint64_t added, bad;
    uint64_t duplicates;   /* stream id not above the last one (re-delivery after a reconnect) */
    uint64_t dup_ids;      /* event.id already seen: at-least-once delivery gave it twice */
    uint64_t seen_evicted; /* event ids forgotten because the seen-id set was full */
    uint64_t skewed;       /* records dated more than max_skew into the future */
    uint64_t evicted_count, evicted_age;
};

/* The window's shape. max_entries >= 1, max_age_us > 0; seen_max 0 = 2 x max_entries;
 * tl_buckets 1..WEB_TL_MAX (0 = 36), tl_bucket_s >= 1 (0 = 600). */
struct web_win_opts {
    size_t max_entries, seen_max;
    int64_t max_age_us, max_skew_us;
    unsigned tl_buckets, tl_bucket_s;
};
#define WEB_TL_MAX 120

/* NULL when out of memory or when the options are out of range. */
struct web_win *web_win_new(const struct web_win_opts *o);
void web_win_free(struct web_win *w);
/* Adds one record read from the stream entry sid (NULL or "" for none). An entry whose id is
 * not above the last one added (re-delivery after a reconnect), or whose event.id was already
 * added (at-least-once delivery), is a duplicate and returns 1. Returns 0 when added, TW_EBAD
 * (counted) when the JSON is not a record, TW_ENOMEM. */
int web_win_add(struct web_win *w, const char *sid, const char *json, size_t n, int64_t now_us);
/* Evicts what has aged out at now_us (renderers call it first; it changes the version). */
void web_win_expire(struct web_win *w, int64_t now_us);
size_t web_win_len(const struct web_win *w);
/* Hosts in the window, raised alerts in the window. */
size_t web_win_hosts(const struct web_win *w);
uint64_t web_win_alerts(const struct web_win *w);
/* Bumped on every change of the window's content: a poll that brings the same version back
 * has nothing new to fetch. */
uint64_t web_win_version(const struct web_win *w);
/* The last stream id added ("" before the first). */
const char *web_win_last_sid(const struct web_win *w);
void web_win_stats(const struct web_win *w, struct web_win_stats *st);
/* The window's anchor. The newest plausible record is the newest one dated at most max_skew
 * after the wall clock at its arrival; records dated later count as skewed and are placed at
 * their arrival time. ref = now when no plausible record exists; the newest plausible record
 * when it was already older than the window when it arrived (a replay of an old capture: its
 * incidents stay on the page); else max(now, newest plausible), at most now + max_skew, so live
 * records age out with the wall clock even when nothing new arrives. */
int64_t web_win_ref_us(const struct web_win *w, int64_t now_us);
/* Checks every aggregate against the records (O(window), for tests and fuzzing): TW_OK, or
 * TW_EBAD when a count, a chain or an index disagrees with the records. */
int web_win_check(const struct web_win *w) TW_WUR;
/* Record with this event.id, NULL when not in the window. */
const struct web_rec *web_win_find(const struct web_win *w, const char *event_id);

/* Empty or NULL members match everything. rule matches rule.id or rule.name; q is a
 * case-insensitive substring of the host, the rule (id or name) or the name. */
struct web_filter {
    const char *rule, *level, *sensor, *host, *q;
};
bool web_filter_match(const struct web_filter *f, const struct web_rec *r);

/* One page of a sorted, filtered list. */
enum web_sort { WEB_SORT_DEFAULT = 0, WEB_SORT_HITS, WEB_SORT_LAST, WEB_SORT_HOST };
#define WEB_PAGE_MAX 500   /* rows in one page, at most */
#define WEB_SKIP_MAX 10000 /* offset + limit, at most */
struct web_query {
    struct web_filter f;
    size_t offset, limit; /* limit clamped to 1..WEB_PAGE_MAX, offset + limit to WEB_SKIP_MAX */
    enum web_sort sort;
};

/* Renderers: each appends one JSON value to out; TW_OK or out->err. Each first expires what
 * aged out at now_us.
 * alerts: {"total","offset","items":[..]} raised alerts matching q, newest first (or by hits
 *   with WEB_SORT_HITS), each with its incident's current hit count.
 * hosts: {"ref","replay","timeline":{buckets,bucket_s,start,tl:[all hosts]},"total","offset",
 *   "hosts":[..]}: internal hosts matching q ranked by hits (or last seen, or address), each
 *   with first/last seen, rules, names, bytes sent/received through flagged flows and hits per
 *   bucket. A host matches a rule/level/sensor filter when one of its records did; its figures
 *   are over all its records in the window.
 * facets: {"rules":[{id,name}],"levels":[],"sensors":[]} over the whole window, sorted.
 * record: the record's raw JSON, or null when not found. */
int web_json_alerts(struct web_win *w, const struct web_query *q, int64_t now_us, struct jw *out);
int web_json_hosts(struct web_win *w, const struct web_query *q, int64_t now_us, struct jw *out);
int web_json_facets(const struct web_win *w, struct jw *out);
int web_json_record(const struct web_win *w, const char *event_id, struct jw *out);
/* A standalone HTML page listing the record's fields, every value escaped; TW_EBAD when the
 * record is not in the window. */
int web_html_record(const struct web_win *w, const char *event_id, struct jw *out);

/* Sensors, from the heartbeat hashes, keyed by the whole name after the prefix (up to
 * WEB_SENSOR_NAME_MAX bytes; a longer key is refused and counted, never truncated). A sensor
 * is "up" while its heartbeat_unix_s is at most down_after_s old, "down" after that, and
 * "unknown" when its hash carries no heartbeat_unix_s. A sensor leaves the table forget_s after
 * its last heartbeat (or, for an unknown one, after its hash was last read). */
#define WEB_SENSOR_NAME_MAX 1024
struct web_sensors;
struct web_sensors *web_sensors_new(size_t max, int64_t down_after_s, int64_t forget_s);
void web_sensors_free(struct web_sensors *s);
/* Records one HGETALL of sensor name (keys[i] = vals[i]) read at now_s. TW_ELIMIT past max or
 * for a name too long (both counted). */
int web_sensors_update(struct web_sensors *s, const char *name, const char *const *keys,
                       const char *const *vals, size_t n, int64_t now_s);
/* Forgets the sensors described above; returns how many. */
size_t web_sensors_expire(struct web_sensors *s, int64_t now_s);
size_t web_sensors_len(const struct web_sensors *s);
/* Changes whenever what web_json_sensors shows (but the ages) would change. */
uint64_t web_sensors_version(const struct web_sensors *s, int64_t now_s);
/* Sensors refused (table full or name too long). */
uint64_t web_sensors_refused(const struct web_sensors *s);
/* A sensor-health record (event.action resource_pressure, written by the sensor when a bounded
 * resource refused or reclaimed): the sensor (observer.name), the resource, the figures since
 * its previous such record and the first of its top sources. */
struct web_pressure {
    char sensor[WEB_SENSOR_NAME_MAX + 1];
    char resource[32];
    int64_t refused, reclaimed;
    char top_ip[48];
    int64_t top_pct; /* -1: none */
};
/* TW_OK when json is such a record; TW_EBAD otherwise (or malformed). */
int web_pressure_parse(const char *json, size_t n, struct web_pressure *p);
/* Shows it on the sensor's row (the newest per sensor, with its time); a sensor with no row
 * yet (no heartbeat read) is skipped: TW_ELIMIT. */
int web_sensors_pressure(struct web_sensors *s, const struct web_pressure *p, int64_t now_s);
/* [{"name","state","up","hb_s","age_s","packets","pps","kernel_drops","alerts_raised",
 *   "alerts_queued","alerts_spooled","alerts_dropped","redis_connected","version",
 *   "uptime_s","pressure","pressure_age_s"}] by name; up is null when the state is unknown;
 * pressure is the newest resource-pressure line ("" when none). */
int web_json_sensors(const struct web_sensors *s, int64_t now_s, struct jw *out);

/* Evidence pcaps (GET /api/evidence/<incident id>.pcap). An incident id as the sensor writes it
 * (alert_ids_next: 16 hex digits, '-', 16 hex digits) is 1..WEB_EVID_MAX characters of
 * [0-9a-f-], not starting with '-'; web_evidence_id_ok refuses anything else, so no '/', '.',
 * '%', '*', '{', space or control character ever reaches a Redis key or a file name. */
#define WEB_EVID_MAX 64
bool web_evidence_id_ok(const char *id, size_t n);
/* The length of the longest prefix of b that is a pcap global header followed by whole
 * records (a file the sensor is still appending to may end inside a record); 0 when b does not
 * start with a pcap global header (either byte order, micro- or nanosecond magic). */
size_t web_pcap_whole(const uint8_t *b, size_t n);

#endif /* TW_WEBCORE_H */
