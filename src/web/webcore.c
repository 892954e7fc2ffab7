/* webcore.c - tunnelwatch-web's data model: the strict JSON reader, record parsing, the
 * bounded window, per-host aggregation, the JSON/HTML renderers and the sensors table.
 *
 * Trade-offs: views are recomputed per request from the window (O(window) with small hash
 * tables) instead of maintaining incremental aggregates, so eviction and filters need no
 * bookkeeping; at the default 20000 records this costs about a millisecond per poll. The JSON
 * parser is a strict validator with a callback per top-level member: records are flat, and
 * anything nested (tags, technique ids) is only kept as raw text inside the record. Output is
 * written with tw_core's JSON writer (json.h) in its html_safe mode, so the web carries no
 * buffer, escaper or UTF-8 code of its own; only the HTML escaper for /record lives here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnelwatch/cursor.h"
#include "webcore.h"

/* ---- output: tw_core's JSON writer, plus HTML escaping ---- */

void web_out_init(struct jw *out, size_t max)
{
    jw_init(out, max);
    /* why <, >, &: the JSON must stay inert even if someone serves it as HTML */
    out->html_safe = true;
}

static void out_puts(struct jw *out, const char *s)
{
    jw_append(out, s, strlen(s));
}

void web_html_escape(struct jw *b, const char *s, size_t n)
{
    static const char *const ent[] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;"};
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n && !b->err;) {
        if (u[i] < TW_ARRAY_LEN(ent) && ent[u[i]]) {
            out_puts(b, ent[u[i]]);
            i++;
            continue;
        }
        size_t l = jw_utf8_len(u + i, n - i);
        if (l == 0 || (u[i] < 0x20 && u[i] != '\t' && u[i] != '\n')) {
            jw_append(b, "\xef\xbf\xbd", 3);
            i++;
        } else {
            jw_append(b, s + i, l);
            i += l;
        }
    }
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

int web_json_walk(const char *s, size_t n, web_json_cb cb, void *ctx)
{
    /* why: the scratch buffers are sized from n; refuse absurd inputs before allocating */
    return json_walk(s, n, WEB_REC_MAX * 16, 0, cb, ctx);
}

/* ---- records ---- */

static void copy_field(char *dst, size_t dsz, const char *src, size_t n)
{
    if (n >= dsz)
        n = dsz - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int64_t parse_i64(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    /* why: a fraction or exponent is not a count we can use */
    if (end == s || *end != '\0')
        return -1;
    return (int64_t)v;
}

static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((uint8_t)s[i]))
            return TW_EBAD;
        *v = *v * 10 + (s[i] - '0');
    }
    return TW_OK;
}

/* RFC 3339 section 5.6: date-time = full-date "T" full-time */
int web_parse_time(const char *s, int64_t *us)
{
    int Y, M, D, h, m, sec;
    size_t n = strlen(s);
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return TW_EBAD;
    if (digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) || digits(s + 11, 2, &h) ||
        digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
        return TW_EBAD;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return TW_EBAD;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        int nd = 0;
        p++;
        while (is_digit((uint8_t)*p)) {
            if (nd < 6) {
                frac = frac * 10 + (*p - '0');
                nd++;
            }
            p++;
        }
        if (nd == 0)
            return TW_EBAD;
        while (nd++ < 6)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || digits(p + 4, 2, &om))
            return TW_EBAD;
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return TW_EBAD;
    }
    if (*p)
        return TW_EBAD;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    *us = ((int64_t)t - off) * 1000000 + frac;
    return TW_OK;
}

void web_fmt_time(int64_t us, char *buf, size_t n)
{
    tw_time_rfc3339((struct tw_time){us / 1000000, (int32_t)(us % 1000000)}, buf, n);
}

/* The strings of a record while it is parsed, each truncated to its field's size; packed
 * into one allocation afterwards (rec_pack), so a record costs what its strings need. */
struct rec_fields {
    char event_id[96], incident_id[96], rule_id[96], rule_name[192], level[16];
    char host[WEB_HOST_MAX], dst_ip[64], domain[256], ev_kind[24], ev_name[256], sensor[128],
        proto[32];
};

struct rec_ctx {
    struct web_rec *r;
    struct rec_fields f;
    char kind[16], action[24];
};

#define FIELD(name, member)                                                                        \
    {                                                                                              \
        name, offsetof(struct rec_fields, member), sizeof(((struct rec_fields *)0)->member),       \
            offsetof(struct web_rec, member)                                                       \
    }

static const struct {
    const char *key;
    size_t off, size, roff; /* in struct rec_fields; in struct web_rec */
} str_fields[] = {
    FIELD("event.id", event_id),
    FIELD("tunnelwatch.incident_id", incident_id),
    FIELD("rule.id", rule_id),
    FIELD("rule.name", rule_name),
    FIELD("rule.level", level),
    FIELD("source.ip", host),
    FIELD("destination.ip", dst_ip),
    FIELD("destination.domain", domain),
    FIELD("tunnelwatch.evidence.kind", ev_kind),
    FIELD("tunnelwatch.evidence.name", ev_name),
    FIELD("observer.name", sensor),
    FIELD("network.protocol", proto),
};

static int rec_cb(void *ctx, const char *key, size_t klen, char type, const char *val, size_t vlen)
{
    struct rec_ctx *x = ctx;
    struct web_rec *r = x->r;
    (void)klen;
    if (type == 's') {
        for (size_t i = 0; i < TW_ARRAY_LEN(str_fields); i++) {
            if (strcmp(key, str_fields[i].key) == 0) {
                copy_field((char *)&x->f + str_fields[i].off, str_fields[i].size, val, vlen);
                return 0;
            }
        }
        if (strcmp(key, "@timestamp") == 0) {
            if (web_parse_time(val, &r->ts_us))
                r->ts_us = 0;
        } else if (strcmp(key, "event.kind") == 0) {
            copy_field(x->kind, sizeof(x->kind), val, vlen);
        } else if (strcmp(key, "event.action") == 0) {
            copy_field(x->action, sizeof(x->action), val, vlen);
        }
    } else if (type == 'n') {
        if (strcmp(key, "destination.port") == 0)
            r->dst_port = parse_i64(val);
        else if (strcmp(key, "event.count") == 0)
            r->count = parse_i64(val);
        else if (strcmp(key, "source.bytes") == 0)
            r->src_bytes = parse_i64(val);
        else if (strcmp(key, "destination.bytes") == 0)
            r->dst_bytes = parse_i64(val);
    }
    return 0;
}

/* Points every string of r at "" (a record that failed to parse stays readable). */
static void rec_blank(struct web_rec *r)
{
    for (size_t i = 0; i < TW_ARRAY_LEN(str_fields); i++)
        *(const char **)(void *)((char *)r + str_fields[i].roff) = "";
}

/* One allocation: the raw JSON, then each string of f; r's pointers are set into it. */
static int rec_pack(struct web_rec *r, const struct rec_fields *f, const char *json, size_t n)
{
    size_t total = n + 1;
    for (size_t i = 0; i < TW_ARRAY_LEN(str_fields); i++)
        total += strlen((const char *)f + str_fields[i].off) + 1;
    char *p = malloc(total);
    if (!p)
        return TW_ENOMEM;
    memcpy(p, json, n);
    p[n] = '\0';
    r->raw = p;
    r->raw_len = n;
    p += n + 1;
    for (size_t i = 0; i < TW_ARRAY_LEN(str_fields); i++) {
        const char *src = (const char *)f + str_fields[i].off;
        size_t l = strlen(src) + 1;
        memcpy(p, src, l);
        *(const char **)(void *)((char *)r + str_fields[i].roff) = p;
        p += l;
    }
    return TW_OK;
}

int web_rec_parse(const char *json, size_t n, struct web_rec *r)
{
    memset(r, 0, sizeof(*r));
    rec_blank(r);
    r->dst_port = r->count = r->src_bytes = r->dst_bytes = -1;
    /* why: one record is a few kB; a huge one is garbage or an attack on our memory */
    if (n > WEB_REC_MAX)
        return TW_ELIMIT;
    struct rec_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return TW_ENOMEM;
    x->r = r;
    int rc = web_json_walk(json, n, rec_cb, x);
    if (rc == TW_OK) {
        if (strcmp(x->kind, "alert") == 0 &&
            (x->action[0] == '\0' || strcmp(x->action, "raised") == 0)) {
            r->kind = WEB_ALERT;
            if (!x->f.incident_id[0])
                memcpy(x->f.incident_id, x->f.event_id, sizeof(x->f.incident_id));
            if (r->count < 1)
                r->count = 1;
        } else if (strcmp(x->action, "update") == 0) {
            r->kind = WEB_UPDATE;
        } else if (strcmp(x->action, "flow_end") == 0) {
            r->kind = WEB_FLOW_END;
        } else if (strcmp(x->action, "suppressed") == 0) {
            r->kind = WEB_SUPPRESSED;
        }
        rc = rec_pack(r, &x->f, json, n);
    }
    free(x);
    return rc;
}

void web_rec_clear(struct web_rec *r)
{
    free(r->raw); /* the strings live in the same allocation */
    r->raw = NULL;
    r->raw_len = 0;
    rec_blank(r);
}

/* ---- sensors ---- */

#define WEB_SENSOR_FIELDS 16
static const char *const sensor_fields[WEB_SENSOR_FIELDS] = {
    "packets",        "kernel_drops",   "alerts_raised",   "alerts_queued",
    "alerts_spooled", "alerts_dropped", "redis_connected", "uptime_s",
    "bytes",          "rule_hits",      "records_dropped", "alerts_delivered",
};

struct sensor {
    char *name; /* the whole key after the prefix, owned */
    char version[32];
    int64_t hb_s;   /* heartbeat_unix_s; 0 when the hash has none (state unknown) */
    int64_t seen_s; /* when its hash was last read */
    int64_t vals[WEB_SENSOR_FIELDS];
    bool has[WEB_SENSOR_FIELDS];
    int64_t prev_packets, prev_hb_s;
    double pps;
    char pressure[160]; /* the newest resource_pressure, as shown; "" none */
    int64_t pressure_s;
};

struct web_sensors {
    struct sensor *s;
    size_t n, max;
    int64_t down_after_s, forget_s;
    uint64_t version, refused;
};

struct web_sensors *web_sensors_new(size_t max, int64_t down_after_s, int64_t forget_s)
{
    struct web_sensors *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->s = calloc(max ? max : 1, sizeof(*s->s));
    if (!s->s) {
        free(s);
        return NULL;
    }
    s->max = max ? max : 1;
    s->down_after_s = down_after_s;
    s->forget_s = forget_s;
    return s;
}

void web_sensors_free(struct web_sensors *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->s[i].name);
    free(s->s);
    free(s);
}

static bool sensor_stale(const struct web_sensors *s, const struct sensor *x, int64_t now_s)
{
    return now_s - (x->hb_s ? x->hb_s : x->seen_s) > s->forget_s;
}

size_t web_sensors_expire(struct web_sensors *s, int64_t now_s)
{
    size_t gone = 0;
    for (size_t i = 0; i < s->n;) {
        if (sensor_stale(s, &s->s[i], now_s)) {
            free(s->s[i].name);
            s->s[i] = s->s[--s->n];
            gone++;
        } else {
            i++;
        }
    }
    s->version += gone;
    return gone;
}

/* The row of name, made when new. NULL when refused (counted). */
static struct sensor *sensor_row(struct web_sensors *s, const char *name, int64_t now_s)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->s[i].name, name) == 0)
            return &s->s[i];
    size_t nl = strlen(name);
    web_sensors_expire(s, now_s); /* forget sensors long gone before refusing a new one */
    /* why: names come from Redis keys; a flood of them, or a huge one, must not grow memory */
    if (s->n == s->max || nl > WEB_SENSOR_NAME_MAX) {
        s->refused++;
        return NULL;
    }
    struct sensor *x = &s->s[s->n];
    memset(x, 0, sizeof(*x));
    x->name = malloc(nl + 1);
    if (!x->name)
        return NULL;
    memcpy(x->name, name, nl + 1);
    x->prev_packets = -1;
    s->n++;
    return x;
}

/* Takes the row of name out of the table, if it is there. */
static void sensor_drop(struct web_sensors *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->s[i].name, name) == 0) {
            free(s->s[i].name);
            s->s[i] = s->s[--s->n];
            s->version++;
            return;
        }
    }
}

int web_sensors_update(struct web_sensors *s, const char *name, const char *const *keys,
                       const char *const *vals, size_t n, int64_t now_s)
{
    int64_t hb = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], "heartbeat_unix_s") == 0) {
            int64_t v = parse_i64(vals[i]);
            hb = v > 0 ? v : 0;
        }
    }
    /* why: a hash left without a TTL keeps its last heartbeat forever; past forget_s it is gone */
    if (hb && now_s - hb > s->forget_s) {
        sensor_drop(s, name);
        return TW_OK;
    }
    struct sensor *x = sensor_row(s, name, now_s);
    if (!x)
        return TW_ELIMIT;
    memset(x->has, 0, sizeof(x->has));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], "version") == 0) {
            copy_field(x->version, sizeof(x->version), vals[i], strlen(vals[i]));
        }
        for (size_t k = 0; k < WEB_SENSOR_FIELDS && sensor_fields[k]; k++) {
            if (strcmp(keys[i], sensor_fields[k]) == 0) {
                x->vals[k] = parse_i64(vals[i]);
                x->has[k] = x->vals[k] >= 0;
            }
        }
    }
    /* packets/s from two successive heartbeats (field 0 is packets) */
    if (x->has[0] && hb > x->prev_hb_s) {
        if (x->prev_packets >= 0 && x->vals[0] >= x->prev_packets && x->prev_hb_s > 0)
            x->pps = (double)(x->vals[0] - x->prev_packets) / (double)(hb - x->prev_hb_s);
        else
            x->pps = 0;
        x->prev_packets = x->vals[0];
        x->prev_hb_s = hb;
    }
    if (hb != x->hb_s)
        s->version++;
    x->hb_s = hb;
    x->seen_s = now_s;
    return TW_OK;
}

struct pressure_ctx {
    struct web_pressure *p;
    bool is_pressure;
};

/* The first "ip" and "share_pct" of top_sources' raw text (validated JSON already). */
static void first_top(struct web_pressure *p, const char *raw, size_t n)
{
    const char *k = memmem(raw, n, "\"ip\":\"", 6);
    if (k) {
        const char *v = k + 6, *end = memchr(v, '"', n - (size_t)(v - raw));
        size_t len = end ? (size_t)(end - v) : 0;
        if (len && len < sizeof(p->top_ip) && strspn(v, "0123456789abcdefABCDEF:.") >= len)
            copy_field(p->top_ip, sizeof(p->top_ip), v, len);
    }
    const char *s = memmem(raw, n, "\"share_pct\":", 12);
    if (s && p->top_ip[0]) {
        char *end;
        long long v = strtoll(s + 12, &end, 10);
        p->top_pct = end > s + 12 && v >= 0 && v <= 100 ? v : -1;
    }
}

static int pressure_member(void *ctx, const char *key, size_t klen, char type, const char *val,
                           size_t vlen)
{
    struct pressure_ctx *c = ctx;
    struct web_pressure *p = c->p;
#define KEY(s) (klen == sizeof(s) - 1 && memcmp(key, s, klen) == 0)
    if (KEY("event.action") && type == 's')
        c->is_pressure = vlen == 17 && memcmp(val, "resource_pressure", 17) == 0;
    else if (KEY("observer.name") && type == 's' && vlen <= WEB_SENSOR_NAME_MAX)
        copy_field(p->sensor, sizeof(p->sensor), val, vlen);
    else if (KEY("tunnelwatch.resource.name") && type == 's')
        copy_field(p->resource, sizeof(p->resource), val, vlen);
    else if (KEY("tunnelwatch.resource.refused") && type == 'n')
        p->refused = strtoll(val, NULL, 10);
    else if (KEY("tunnelwatch.resource.reclaimed") && type == 'n')
        p->reclaimed = strtoll(val, NULL, 10);
    else if (KEY("tunnelwatch.resource.top_sources") && type == 'a')
        first_top(p, val, vlen);
#undef KEY
    return 0;
}

int web_pressure_parse(const char *json, size_t n, struct web_pressure *p)
{
    memset(p, 0, sizeof(*p));
    p->top_pct = -1;
    struct pressure_ctx c = {p, false};
    if (web_json_walk(json, n, pressure_member, &c) != TW_OK || !c.is_pressure || !p->sensor[0] ||
        !p->resource[0])
        return TW_EBAD;
    return TW_OK;
}

int web_sensors_pressure(struct web_sensors *s, const struct web_pressure *p, int64_t now_s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct sensor *x = &s->s[i];
        if (strcmp(x->name, p->sensor) != 0)
            continue;
        int n = snprintf(x->pressure, sizeof(x->pressure), "%s: %lld refused, %lld reclaimed",
                         p->resource, (long long)p->refused, (long long)p->reclaimed);
        if (p->top_ip[0] && n > 0 && (size_t)n < sizeof(x->pressure))
            snprintf(x->pressure + n, sizeof(x->pressure) - (size_t)n, "; top %s (%lld%%)",
                     p->top_ip, (long long)(p->top_pct < 0 ? 0 : p->top_pct));
        x->pressure_s = now_s;
        s->version++;
        return TW_OK;
    }
    return TW_ELIMIT;
}

size_t web_sensors_len(const struct web_sensors *s)
{
    return s->n;
}

uint64_t web_sensors_refused(const struct web_sensors *s)
{
    return s->refused;
}

/* 'u' up, 'd' down, '?' unknown (no heartbeat_unix_s in its hash) */
static char sensor_state(const struct web_sensors *s, const struct sensor *x, int64_t now_s)
{
    if (!x->hb_s)
        return '?';
    return now_s - x->hb_s <= s->down_after_s ? 'u' : 'd';
}

uint64_t web_sensors_version(const struct web_sensors *s, int64_t now_s)
{
    /* what changes without a new heartbeat is the states: fold them in (FNV-1a) */
    uint64_t h = 1469598103934665603u ^ s->version;
    for (size_t i = 0; i < s->n; i++)
        h = (h ^ (uint64_t)sensor_state(s, &s->s[i], now_s) ^ i << 8) * 1099511628211u;
    return h >> 11; /* a JSON number that JavaScript holds exactly */
}

static int sensor_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sensor *)a)->name, ((const struct sensor *)b)->name);
}

static void json_sensor(struct jw *out, const struct web_sensors *s, const struct sensor *x,
                        int64_t now_s)
{
    char st = sensor_state(s, x, now_s);
    char pps[32];
    snprintf(pps, sizeof(pps), "%.1f", x->pps);
    jw_begin(out);
    jw_str(out, "name", x->name);
    jw_str(out, "version", x->version);
    jw_raw(out, "up", st == 'u' ? "true" : st == 'd' ? "false" : "null");
    jw_str(out, "state", st == 'u' ? "up" : st == 'd' ? "down" : "unknown");
    jw_i64(out, "hb_s", x->hb_s);
    jw_i64(out, "age_s", now_s - (x->hb_s ? x->hb_s : x->seen_s));
    jw_raw(out, "pps", pps);
    for (size_t k = 0; k < WEB_SENSOR_FIELDS && sensor_fields[k]; k++) {
        if (x->has[k])
            jw_i64(out, sensor_fields[k], x->vals[k]);
        else
            jw_raw(out, sensor_fields[k], "null");
    }
    jw_str(out, "pressure", x->pressure);
    jw_i64(out, "pressure_age_s", x->pressure[0] ? now_s - x->pressure_s : -1);
    jw_end(out);
}

int web_json_sensors(const struct web_sensors *s, int64_t now_s, struct jw *out)
{
    struct sensor *v = malloc((s->n ? s->n : 1) * sizeof(*v));
    if (!v)
        return TW_ENOMEM;
    memcpy(v, s->s, s->n * sizeof(*v));
    qsort(v, s->n, sizeof(*v), sensor_cmp);
    out->html_safe = true;
    jw_append(out, "[", 1);
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            jw_append(out, ",", 1);
        json_sensor(out, s, &v[i], now_s);
    }
    jw_append(out, "]", 1);
    free(v);
    return out->err;
}

/* ---- evidence: incident ids and pcap files ---- */

bool web_evidence_id_ok(const char *id, size_t n)
{
    /* why so narrow: the id becomes part of a Redis key and of a file name; the sensor's ids
     * (alert_ids_next) are lowercase hex and '-', so nothing else is ever a real incident */
    if (n == 0 || n > WEB_EVID_MAX || id[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'))
            return false;
    }
    return true;
}

/* A pcap field in the file's byte order. */
static uint32_t pcap_u32(struct cur *c, bool le)
{
    const uint8_t *p = cur_bytes(c, 4);
    if (!p)
        return 0;
    if (le)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* libpcap file format (tcpdump.org/manpages/pcap-savefile.5): a 24-byte global header whose
 * magic a1b2c3d4 (microseconds) or a1b23c4d (nanoseconds), in the writer's byte order, also
 * gives the byte order of every later field; then records of a 16-byte header (ts_sec,
 * ts_frac, incl_len, orig_len) followed by incl_len bytes. */
size_t web_pcap_whole(const uint8_t *b, size_t n)
{
    struct cur c = cur_init(b, n);
    uint32_t magic = cur_u32be(&c);
    bool le;
    if (magic == 0xa1b2c3d4u || magic == 0xa1b23c4du)
        le = false;
    else if (magic == 0xd4c3b2a1u || magic == 0x4d3cb2a1u)
        le = true;
    else
        return 0;
    cur_skip(&c, 20); /* version, thiszone, sigfigs, snaplen, linktype */
    if (c.err)
        return 0;
    size_t whole = 24;
    /* each pass consumes at least 16 bytes: the loop ends within n / 16 rounds */
    while (cur_left(&c) >= 16) {
        cur_skip(&c, 8);
        uint32_t incl = pcap_u32(&c, le);
        cur_skip(&c, 4);
        cur_skip(&c, incl);
        if (c.err)
            break;
        whole = n - cur_left(&c);
    }
    return whole;
}
