/* webcore.h - tunnelwatch-web's data model: records, the bounded window, the aggregation and the
 * JSON / HTML it renders. No I/O, no threads: main.c holds one lock around all of it.
 *
 * The window keeps the parsed records read from the alert stream, oldest first, bounded by a
 * count and by age. Age is measured against a reference time: the wall clock, unless every
 * record is older than the window (a replay of an old capture), in which case the newest record's
 * own time is used, so a replayed incident is still shown. Views (alerts, hosts, timeline) are
 * computed on each request from the window with the filter applied: the window is small (at
 * most tens of thousands of records) and this keeps eviction trivially consistent.
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

/* JSON walker over one object: calls cb for each top-level member. type is 's' (val is the
 * decoded string), 'n' number, 'b' true/false, 'z' null, 'a' array, 'o' object (val is the raw
 * text). cb returns 0 to go on. The whole text is validated (RFC 8259), nesting capped at
 * WEB_JSON_DEPTH. Returns TW_OK, TW_EBAD, TW_ELIMIT, TW_ENOMEM or cb's non-zero value. */
#define WEB_JSON_DEPTH 16
typedef int (*web_json_cb)(void *ctx, const char *key, size_t klen, char type, const char *val,
                           size_t vlen);
int web_json_walk(const char *s, size_t n, web_json_cb cb, void *ctx) TW_WUR;

enum web_kind {
    WEB_OTHER = 0,
    WEB_ALERT,      /* event.kind alert, event.action raised: a new incident */
    WEB_UPDATE,     /* event.action update: event.count of an incident grew */
    WEB_FLOW_END,   /* event.action flow_end: bytes each way of a flagged flow */
    WEB_SUPPRESSED, /* event.action suppressed: an allowlisted hit */
};

/* One record. The strings are NUL-terminated, truncated copies; raw is the whole JSON text. */
struct web_rec {
    uint64_t seq;  /* order of arrival in this process, from 1 */
    char sid[32];  /* Redis stream entry id, "" when not from a stream */
    int64_t ts_us; /* @timestamp, microseconds since the epoch; 0 when missing */
    enum web_kind kind;
    char event_id[96], incident_id[96], rule_id[96], rule_name[192], level[16];
    char host[64], dst_ip[64], domain[256], ev_kind[24], ev_name[256], sensor[128], proto[32];
    int64_t dst_port, count, src_bytes, dst_bytes; /* -1 when missing */
    char *raw;
    size_t raw_len;
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
    uint64_t added, bad, duplicates, evicted_count, evicted_age;
};

/* max_entries >= 1; max_age_us > 0. NULL when out of memory. */
struct web_win *web_win_new(size_t max_entries, int64_t max_age_us);
void web_win_free(struct web_win *w);
/* Adds one record read from the stream entry sid (NULL or "" for none). An entry whose id is
 * not above the last one added is a duplicate (re-delivery after a reconnect) and returns 1.
 * Returns 0 when added, TW_EBAD (counted) when the JSON is not a record. */
int web_win_add(struct web_win *w, const char *sid, const char *json, size_t n, int64_t now_us);
size_t web_win_len(const struct web_win *w);
/* The last stream id added ("" before the first). */
const char *web_win_last_sid(const struct web_win *w);
void web_win_stats(const struct web_win *w, struct web_win_stats *st);
/* The reference time described in the header comment. */
int64_t web_win_ref_us(const struct web_win *w, int64_t now_us);
/* Record with this event.id, NULL when not in the window. */
const struct web_rec *web_win_find(const struct web_win *w, const char *event_id);

/* Empty or NULL members match everything. rule matches rule.id or rule.name. */
struct web_filter {
    const char *rule, *level, *sensor, *host;
};
bool web_filter_match(const struct web_filter *f, const struct web_rec *r);

/* Timeline shape: buckets of bucket_s seconds ending at the reference time. */
struct web_timeline {
    unsigned buckets;  /* 1..WEB_TL_MAX */
    unsigned bucket_s; /* >= 1 */
};
#define WEB_TL_MAX 120

/* Renderers: each appends one JSON value to out; TW_OK or out->err.
 * alerts: array of the newest `limit` raised alerts (newest first) matching f, each with the
 *   incident's current hit count.
 * hosts: {"ref":..,"timeline":{..},"hosts":[..]} internal hosts ranked by hits, with first/last
 *   seen, rules, names, bytes sent/received through flagged flows, and hits per bucket.
 * facets: {"rules":[{id,name}],"levels":[],"sensors":[],"hosts":[]} over the whole window.
 * record: the record's raw JSON, or null when not found. */
int web_json_alerts(const struct web_win *w, const struct web_filter *f, size_t limit,
                    int64_t now_us, struct jw *out);
int web_json_hosts(const struct web_win *w, const struct web_filter *f,
                   const struct web_timeline *tl, int64_t now_us, struct jw *out);
int web_json_facets(const struct web_win *w, struct jw *out);
int web_json_record(const struct web_win *w, const char *event_id, struct jw *out);
/* A standalone HTML page listing the record's fields, every value escaped; TW_EBAD when the
 * record is not in the window. */
int web_html_record(const struct web_win *w, const char *event_id, struct jw *out);

/* Sensors, from the heartbeat hashes. A sensor whose hash expired is kept (shown down) until
 * forget_s after its last heartbeat. */
struct web_sensors;
struct web_sensors *web_sensors_new(size_t max, int64_t down_after_s, int64_t forget_s);
void web_sensors_free(struct web_sensors *s);
/* Records one HGETALL of sensor name (keys[i] = vals[i]) read at now_s. TW_ELIMIT past max. */
int web_sensors_update(struct web_sensors *s, const char *name, const char *const *keys,
                       const char *const *vals, size_t n, int64_t now_s);
/* [{"name","up","age_s","packets","pps","kernel_drops","alerts_raised","alerts_queued",
 *   "alerts_spooled","alerts_dropped","redis_connected","version","uptime_s"}] by name. */
int web_json_sensors(const struct web_sensors *s, int64_t now_s, struct jw *out);

#endif /* TW_WEBCORE_H */
