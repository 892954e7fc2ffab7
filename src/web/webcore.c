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

/* ---- strict JSON (RFC 8259) ---- */

struct jp {
    struct cur c;
    int depth;
    char *scratch; /* decoded string goes here; sized for the whole input */
    size_t slen;
};

static uint8_t jp_peek(const struct jp *p)
{
    return cur_left(&p->c) ? *p->c.p : 0;
}

static void jp_ws(struct jp *p)
{
    while (cur_left(&p->c)) {
        uint8_t c = *p->c.p;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->c.p++;
    }
}

static int hex4(struct cur *c, uint32_t *v)
{
    const uint8_t *h = cur_bytes(c, 4);
    if (!h)
        return TW_EBAD;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t d = h[i];
        uint32_t x;
        if (d >= '0' && d <= '9')
            x = (uint32_t)(d - '0');
        else if (d >= 'a' && d <= 'f')
            x = (uint32_t)(d - 'a' + 10);
        else if (d >= 'A' && d <= 'F')
            x = (uint32_t)(d - 'A' + 10);
        else
            return TW_EBAD;
        *v = *v << 4 | x;
    }
    return TW_OK;
}

/* RFC 8259 section 7: string = quotation-mark *char quotation-mark. Decodes into out (when not
 * NULL; the decoded form is never longer than the encoded one). */
static int jp_string(struct jp *p, char *out, size_t *outlen)
{
    size_t o = 0;
    if (cur_u8(&p->c) != '"')
        return TW_EBAD;
    for (;;) {
        uint8_t c = cur_u8(&p->c);
        if (p->c.err)
            return TW_EBAD;
        if (c == '"')
            break;
        /* why: raw control characters are not allowed inside a JSON string */
        if (c < 0x20)
            return TW_EBAD;
        if (c != '\\') {
            if (out)
                out[o] = (char)c;
            o++;
            continue;
        }
        uint8_t e = cur_u8(&p->c);
        char ch;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            ch = (char)e;
            break;
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (hex4(&p->c, &cp))
                return TW_EBAD;
            if (cp >= 0xd800 && cp <= 0xdbff && cur_left(&p->c) >= 6 && p->c.p[0] == '\\' &&
                p->c.p[1] == 'u') {
                struct cur save = p->c;
                uint32_t lo;
                cur_skip(&p->c, 2);
                if (hex4(&p->c, &lo) == TW_OK && lo >= 0xdc00 && lo <= 0xdfff)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else
                    p->c = save;
            }
            /* why: a lone surrogate has no UTF-8 form; show it as U+FFFD */
            if (cp >= 0xd800 && cp <= 0xdfff)
                cp = 0xfffd;
            char tmp[4];
            size_t l = jw_utf8_put(cp, tmp);
            if (out)
                memcpy(out + o, tmp, l);
            o += l;
            continue;
        }
        default:
            return TW_EBAD;
        }
        if (out)
            out[o] = ch;
        o++;
    }
    if (out)
        out[o] = '\0';
    if (outlen)
        *outlen = o;
    return TW_OK;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 section 6: number = [ minus ] int [ frac ] [ exp ] */
static int jp_number(struct jp *p)
{
    if (jp_peek(p) == '-')
        p->c.p++;
    if (jp_peek(p) == '0') {
        p->c.p++;
    } else if (is_digit(jp_peek(p))) {
        while (is_digit(jp_peek(p)))
            p->c.p++;
    } else {
        return TW_EBAD;
    }
    if (jp_peek(p) == '.') {
        p->c.p++;
        if (!is_digit(jp_peek(p)))
            return TW_EBAD;
        while (is_digit(jp_peek(p)))
            p->c.p++;
    }
    if (jp_peek(p) == 'e' || jp_peek(p) == 'E') {
        p->c.p++;
        if (jp_peek(p) == '+' || jp_peek(p) == '-')
            p->c.p++;
        if (!is_digit(jp_peek(p)))
            return TW_EBAD;
        while (is_digit(jp_peek(p)))
            p->c.p++;
    }
    return TW_OK;
}

static int jp_lit(struct jp *p, const char *lit)
{
    size_t n = strlen(lit);
    const uint8_t *b = cur_bytes(&p->c, n);
    return b && memcmp(b, lit, n) == 0 ? TW_OK : TW_EBAD;
}

static int jp_value(struct jp *p, char *type);

/* RFC 8259 section 4 (object) and 5 (array), skipped with validation. */
static int jp_container(struct jp *p, uint8_t close)
{
    /* why: nesting depth is attacker-controlled; recursion must stay shallow */
    if (++p->depth > WEB_JSON_DEPTH)
        return TW_ELIMIT;
    p->c.p++;
    jp_ws(p);
    if (jp_peek(p) == close) {
        p->c.p++;
        p->depth--;
        return TW_OK;
    }
    for (;;) {
        char t;
        jp_ws(p);
        if (close == '}') {
            if (jp_string(p, NULL, NULL))
                return TW_EBAD;
            jp_ws(p);
            if (cur_u8(&p->c) != ':')
                return TW_EBAD;
            jp_ws(p);
        }
        int rc = jp_value(p, &t);
        if (rc)
            return rc;
        jp_ws(p);
        uint8_t c = cur_u8(&p->c);
        if (p->c.err)
            return TW_EBAD;
        if (c == close)
            break;
        if (c != ',')
            return TW_EBAD;
    }
    p->depth--;
    return TW_OK;
}

static int jp_value(struct jp *p, char *type)
{
    switch (jp_peek(p)) {
    case '"':
        *type = 's';
        return jp_string(p, NULL, NULL);
    case '{':
        *type = 'o';
        return jp_container(p, '}');
    case '[':
        *type = 'a';
        return jp_container(p, ']');
    case 't':
        *type = 'b';
        return jp_lit(p, "true");
    case 'f':
        *type = 'b';
        return jp_lit(p, "false");
    case 'n':
        *type = 'z';
        return jp_lit(p, "null");
    default:
        *type = 'n';
        return jp_number(p);
    }
}

int web_json_walk(const char *s, size_t n, web_json_cb cb, void *ctx)
{
    /* why: the scratch buffer is sized from n; refuse absurd inputs before allocating */
    if (n > WEB_REC_MAX * 16)
        return TW_ELIMIT;
    struct jp p = {.c = cur_init((const uint8_t *)s, n), .depth = 1};
    char *key = malloc(n + 1), *val = malloc(n + 1);
    int rc = TW_EBAD;
    if (!key || !val) {
        rc = TW_ENOMEM;
        goto out;
    }
    jp_ws(&p);
    if (cur_u8(&p.c) != '{')
        goto out;
    jp_ws(&p);
    if (jp_peek(&p) == '}') {
        p.c.p++;
    } else {
        for (;;) {
            size_t klen, vlen;
            char t;
            jp_ws(&p);
            if (jp_string(&p, key, &klen))
                goto out;
            jp_ws(&p);
            if (cur_u8(&p.c) != ':')
                goto out;
            jp_ws(&p);
            const uint8_t *start = p.c.p;
            if (jp_peek(&p) == '"') {
                t = 's';
                if (jp_string(&p, val, &vlen))
                    goto out;
            } else {
                rc = jp_value(&p, &t);
                if (rc)
                    goto out;
                rc = TW_EBAD;
                vlen = (size_t)(p.c.p - start);
                memcpy(val, start, vlen);
                val[vlen] = '\0';
            }
            int crc = cb ? cb(ctx, key, klen, t, val, vlen) : 0;
            if (crc) {
                rc = crc;
                goto out;
            }
            jp_ws(&p);
            uint8_t c = cur_u8(&p.c);
            if (p.c.err)
                goto out;
            if (c == '}')
                break;
            if (c != ',')
                goto out;
        }
    }
    jp_ws(&p);
    rc = cur_left(&p.c) == 0 ? TW_OK : TW_EBAD; /* nothing after the object */
out:
    free(key);
    free(val);
    return rc;
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

struct rec_ctx {
    struct web_rec *r;
    char kind[16], action[24];
};

#define FIELD(name, member)                                                                        \
    {                                                                                              \
        name, offsetof(struct web_rec, member), sizeof(((struct web_rec *)0)->member)              \
    }

static const struct {
    const char *key;
    size_t off, size;
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
                copy_field((char *)r + str_fields[i].off, str_fields[i].size, val, vlen);
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

int web_rec_parse(const char *json, size_t n, struct web_rec *r)
{
    memset(r, 0, sizeof(*r));
    r->dst_port = r->count = r->src_bytes = r->dst_bytes = -1;
    /* why: one record is a few kB; a huge one is garbage or an attack on our memory */
    if (n > WEB_REC_MAX)
        return TW_ELIMIT;
    struct rec_ctx x = {.r = r};
    int rc = web_json_walk(json, n, rec_cb, &x);
    if (rc)
        return rc;
    if (strcmp(x.kind, "alert") == 0 && (x.action[0] == '\0' || strcmp(x.action, "raised") == 0)) {
        r->kind = WEB_ALERT;
        if (!r->incident_id[0])
            memcpy(r->incident_id, r->event_id, sizeof(r->incident_id));
        if (r->count < 1)
            r->count = 1;
    } else if (strcmp(x.action, "update") == 0) {
        r->kind = WEB_UPDATE;
    } else if (strcmp(x.action, "flow_end") == 0) {
        r->kind = WEB_FLOW_END;
    } else if (strcmp(x.action, "suppressed") == 0) {
        r->kind = WEB_SUPPRESSED;
    }
    r->raw = malloc(n + 1);
    if (!r->raw)
        return TW_ENOMEM;
    memcpy(r->raw, json, n);
    r->raw[n] = '\0';
    r->raw_len = n;
    return TW_OK;
}

void web_rec_clear(struct web_rec *r)
{
    free(r->raw);
    r->raw = NULL;
    r->raw_len = 0;
}

/* ---- window ---- */

struct web_win {
    struct web_rec **ring; /* oldest at head */
    size_t cap, head, len;
    int64_t max_age_us, newest_us;
    uint64_t next_seq;
    uint64_t last_ms, last_n; /* last stream id added */
    char last_sid[32];
    struct web_win_stats st;
};

struct web_win *web_win_new(size_t max_entries, int64_t max_age_us)
{
    if (max_entries < 1 || max_age_us <= 0)
        return NULL;
    struct web_win *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->ring = calloc(max_entries, sizeof(*w->ring));
    if (!w->ring) {
        free(w);
        return NULL;
    }
    w->cap = max_entries;
    w->max_age_us = max_age_us;
    w->next_seq = 1;
    return w;
}

static struct web_rec *win_at(const struct web_win *w, size_t i)
{
    return w->ring[(w->head + i) % w->cap];
}

static void win_pop(struct web_win *w)
{
    struct web_rec *r = w->ring[w->head];
    web_rec_clear(r);
    free(r);
    w->ring[w->head] = NULL;
    w->head = (w->head + 1) % w->cap;
    w->len--;
}

void web_win_free(struct web_win *w)
{
    if (!w)
        return;
    while (w->len)
        win_pop(w);
    free(w->ring);
    free(w);
}

/* Stream ids are "<ms>-<seq>" (Redis streams intro, "Entry IDs"). */
static int parse_sid(const char *sid, uint64_t *ms, uint64_t *n)
{
    char *end;
    if (!is_digit((uint8_t)sid[0]))
        return TW_EBAD;
    *ms = strtoull(sid, &end, 10);
    if (*end != '-' || !is_digit((uint8_t)end[1]))
        return TW_EBAD;
    const char *s2 = end + 1;
    *n = strtoull(s2, &end, 10);
    return *end == '\0' ? TW_OK : TW_EBAD;
}

int64_t web_win_ref_us(const struct web_win *w, int64_t now_us)
{
    if (w->newest_us == 0)
        return now_us;
    if (w->newest_us < now_us - w->max_age_us)
        return w->newest_us; /* only old records: a replay of an old capture */
    return w->newest_us > now_us ? w->newest_us : now_us;
}

int web_win_add(struct web_win *w, const char *sid, const char *json, size_t n, int64_t now_us)
{
    uint64_t ms = 0, sq = 0;
    bool have_sid = sid && sid[0] && parse_sid(sid, &ms, &sq) == TW_OK;
    /* why: after a reconnect the group may hand back entries we already hold */
    if (have_sid && w->last_sid[0] && (ms < w->last_ms || (ms == w->last_ms && sq <= w->last_n))) {
        w->st.duplicates++;
        return 1;
    }
    struct web_rec *r = malloc(sizeof(*r));
    if (!r)
        return TW_ENOMEM;
    int rc = web_rec_parse(json, n, r);
    if (rc) {
        web_rec_clear(r);
        free(r);
        w->st.bad++;
        /* the entry is consumed all the same: never retry a record we cannot read */
        if (have_sid) {
            w->last_ms = ms, w->last_n = sq;
            copy_field(w->last_sid, sizeof(w->last_sid), sid, strlen(sid));
        }
        return rc == TW_ENOMEM ? rc : TW_EBAD;
    }
    if (have_sid) {
        w->last_ms = ms, w->last_n = sq;
        copy_field(w->last_sid, sizeof(w->last_sid), sid, strlen(sid));
        memcpy(r->sid, w->last_sid, sizeof(r->sid));
    }
    r->seq = w->next_seq++;
    if (w->len == w->cap) {
        win_pop(w);
        w->st.evicted_count++;
    }
    w->ring[(w->head + w->len) % w->cap] = r;
    w->len++;
    w->st.added++;
    if (r->ts_us > w->newest_us)
        w->newest_us = r->ts_us;
    int64_t oldest = web_win_ref_us(w, now_us) - w->max_age_us;
    while (w->len > 1 && win_at(w, 0)->ts_us < oldest) {
        win_pop(w);
        w->st.evicted_age++;
    }
    return 0;
}

size_t web_win_len(const struct web_win *w)
{
    return w->len;
}

const char *web_win_last_sid(const struct web_win *w)
{
    return w->last_sid;
}

void web_win_stats(const struct web_win *w, struct web_win_stats *st)
{
    *st = w->st;
}

const struct web_rec *web_win_find(const struct web_win *w, const char *event_id)
{
    if (!event_id || !event_id[0])
        return NULL;
    for (size_t i = w->len; i-- > 0;) {
        const struct web_rec *r = win_at(w, i);
        if (strcmp(r->event_id, event_id) == 0)
            return r;
    }
    return NULL;
}

static bool fmatch(const char *want, const char *have)
{
    return !want || !want[0] || strcmp(want, have) == 0;
}

bool web_filter_match(const struct web_filter *f, const struct web_rec *r)
{
    if (!f)
        return true;
    if (f->rule && f->rule[0] && strcmp(f->rule, r->rule_id) != 0 &&
        strcmp(f->rule, r->rule_name) != 0)
        return false;
    return fmatch(f->level, r->level) && fmatch(f->sensor, r->sensor) && fmatch(f->host, r->host);
}

/* ---- aggregation ---- */

/* Open-addressing string -> index table, sized for n keys at build time. */
struct smap {
    const char **keys;
    size_t *vals;
    size_t cap;
};

static int smap_init(struct smap *m, size_t n)
{
    m->cap = 16;
    while (m->cap < 2 * n + 2)
        m->cap *= 2;
    m->keys = calloc(m->cap, sizeof(*m->keys));
    m->vals = calloc(m->cap, sizeof(*m->vals));
    if (!m->keys || !m->vals) {
        free(m->keys);
        free(m->vals);
        return TW_ENOMEM;
    }
    return TW_OK;
}

static void smap_free(struct smap *m)
{
    free(m->keys);
    free(m->vals);
}

/* The project's table hash (tw.h). A fixed key: the table lives for one request, and its
 * size is bounded by the window, so a crafted collision costs at most that request. */
static size_t smap_hash(const char *s)
{
    static const uint8_t key[16] = {0};
    return (size_t)tw_siphash(key, (const uint8_t *)s, strlen(s));
}

/* Slot of key: its own when present (*found), else the empty slot to insert at. */
static size_t smap_slot(const struct smap *m, const char *key, bool *found)
{
    size_t i = smap_hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    *found = m->keys[i] != NULL;
    return i;
}

#define WEB_SET_MAX 8

struct host_agg {
    const char *host;
    uint64_t hits, alerts, flows, suppressed;
    int64_t bytes_out, bytes_in, first_us, last_us;
    const char *rules[WEB_SET_MAX], *names[WEB_SET_MAX], *sensors[WEB_SET_MAX];
    size_t nrules, nnames, nsensors;
    uint32_t tl[WEB_TL_MAX];
};

struct web_incident {
    size_t host;
    int64_t count;
};

struct agg {
    struct host_agg *hosts;
    size_t nhosts;
    struct smap hmap, imap;
    struct web_incident *inc;
    size_t ninc;
};

static void set_add(const char **set, size_t *n, const char *v)
{
    if (!v[0])
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(set[i], v) == 0)
            return;
    if (*n < WEB_SET_MAX)
        set[(*n)++] = v;
}

static void agg_free(struct agg *a)
{
    free(a->hosts);
    free(a->inc);
    smap_free(&a->hmap);
    smap_free(&a->imap);
}

static void tl_add(struct host_agg *h, const struct web_timeline *tl, int64_t ref, int64_t ts,
                   int64_t n)
{
    if (!tl || n <= 0)
        return;
    int64_t span = (int64_t)tl->buckets * tl->bucket_s * 1000000;
    int64_t start = ref - span;
    if (ts < start || ts > ref)
        return;
    int64_t b = (ts - start) / ((int64_t)tl->bucket_s * 1000000);
    if (b >= (int64_t)tl->buckets)
        b = (int64_t)tl->buckets - 1;
    h->tl[b] += (uint32_t)n;
}

static int agg_build(const struct web_win *w, const struct web_filter *f,
                     const struct web_timeline *tl, int64_t now_us, struct agg *a)
{
    memset(a, 0, sizeof(*a));
    if (smap_init(&a->hmap, w->len) || smap_init(&a->imap, w->len))
        goto nomem;
    a->hosts = calloc(w->len + 1, sizeof(*a->hosts));
    a->inc = calloc(w->len + 1, sizeof(*a->inc));
    if (!a->hosts || !a->inc)
        goto nomem;
    int64_t ref = web_win_ref_us(w, now_us), oldest = ref - w->max_age_us;
    for (size_t i = 0; i < w->len; i++) {
        const struct web_rec *r = win_at(w, i);
        if (r->kind == WEB_OTHER || !r->host[0] || r->ts_us < oldest || !web_filter_match(f, r))
            continue;
        bool found;
        size_t slot = smap_slot(&a->hmap, r->host, &found);
        if (!found) {
            a->hmap.keys[slot] = r->host;
            a->hmap.vals[slot] = a->nhosts;
            a->hosts[a->nhosts].host = r->host;
            a->hosts[a->nhosts].first_us = INT64_MAX;
            a->nhosts++;
        }
        size_t hi = a->hmap.vals[slot];
        struct host_agg *h = &a->hosts[hi];
        int64_t delta = 0;
        if (r->kind == WEB_ALERT || r->kind == WEB_UPDATE) {
            const char *iid = r->incident_id[0] ? r->incident_id : r->event_id;
            size_t is = smap_slot(&a->imap, iid, &found);
            if (!found) {
                a->imap.keys[is] = iid;
                a->imap.vals[is] = a->ninc;
                a->inc[a->ninc].host = hi;
                a->ninc++;
            }
            struct web_incident *inc = &a->inc[a->imap.vals[is]];
            int64_t cnt = r->count > 0 ? r->count : 1;
            if (cnt > inc->count) {
                delta = cnt - inc->count;
                inc->count = cnt;
            }
            if (r->kind == WEB_ALERT)
                h->alerts++;
        }
        switch (r->kind) {
        case WEB_ALERT:
        case WEB_UPDATE:
            h->hits += (uint64_t)delta;
            if (r->ts_us < h->first_us)
                h->first_us = r->ts_us;
            if (r->ts_us > h->last_us)
                h->last_us = r->ts_us;
            set_add(h->rules, &h->nrules, r->rule_name[0] ? r->rule_name : r->rule_id);
            set_add(h->names, &h->nnames, r->ev_name[0] ? r->ev_name : r->domain);
            set_add(h->sensors, &h->nsensors, r->sensor);
            tl_add(h, tl, ref, r->ts_us, delta);
            break;
        case WEB_FLOW_END:
            h->flows++;
            if (r->src_bytes > 0)
                h->bytes_out += r->src_bytes;
            if (r->dst_bytes > 0)
                h->bytes_in += r->dst_bytes;
            set_add(h->names, &h->nnames, r->domain);
            break;
        case WEB_SUPPRESSED:
            h->suppressed++;
            break;
        case WEB_OTHER:
            break;
        }
    }
    return TW_OK;
nomem:
    agg_free(a);
    return TW_ENOMEM;
}

static int64_t agg_incident_count(const struct agg *a, const char *iid)
{
    bool found;
    size_t s = smap_slot(&a->imap, iid, &found);
    return found ? a->inc[a->imap.vals[s]].count : 0;
}

/* "key":"time" in RFC 3339, or "key":null when unknown */
static void json_time(struct jw *b, const char *key, int64_t us)
{
    char t[40];
    if (us <= 0 || us == INT64_MAX) {
        jw_raw(b, key, "null");
        return;
    }
    web_fmt_time(us, t, sizeof(t));
    jw_str(b, key, t);
}

/* "key":["a","b"] from a set of borrowed strings */
static void json_strset(struct jw *b, const char *key, const char *const *v, size_t n)
{
    jw_key(b, key);
    jw_append(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            jw_append(b, ",", 1);
        jw_quote(b, (const uint8_t *)v[i], strlen(v[i]));
    }
    jw_append(b, "]", 1);
}

static void json_alert(struct jw *out, const struct web_rec *r, int64_t hits)
{
    jw_begin(out);
    jw_u64(out, "seq", r->seq);
    json_time(out, "time", r->ts_us);
    jw_str(out, "id", r->event_id);
    jw_str(out, "host", r->host);
    jw_str(out, "rule_id", r->rule_id);
    jw_str(out, "rule", r->rule_name);
    jw_str(out, "level", r->level);
    jw_str(out, "name", r->ev_name[0] ? r->ev_name : r->domain);
    jw_str(out, "evidence", r->ev_kind);
    jw_str(out, "sensor", r->sensor);
    jw_str(out, "dst", r->dst_ip);
    jw_i64(out, "port", r->dst_port);
    jw_i64(out, "hits", hits);
    jw_end(out);
}

int web_json_alerts(const struct web_win *w, const struct web_filter *f, size_t limit,
                    int64_t now_us, struct jw *out)
{
    struct agg a;
    if (agg_build(w, f, NULL, now_us, &a))
        return TW_ENOMEM;
    out->html_safe = true;
    int64_t oldest = web_win_ref_us(w, now_us) - w->max_age_us;
    size_t n = 0;
    jw_append(out, "[", 1);
    for (size_t i = w->len; i-- > 0 && n < limit;) {
        const struct web_rec *r = win_at(w, i);
        if (r->kind != WEB_ALERT || r->ts_us < oldest || !web_filter_match(f, r))
            continue;
        if (n++)
            jw_append(out, ",", 1);
        json_alert(out, r, agg_incident_count(&a, r->incident_id));
    }
    jw_append(out, "]", 1);
    agg_free(&a);
    return out->err;
}

static int host_cmp(const void *x, const void *y)
{
    const struct host_agg *a = x, *b = y;
    if (a->hits != b->hits)
        return a->hits > b->hits ? -1 : 1;
    if (a->last_us != b->last_us)
        return a->last_us > b->last_us ? -1 : 1;
    return strcmp(a->host, b->host);
}

static void json_host(struct jw *out, const struct host_agg *h, unsigned buckets)
{
    uint64_t tl[WEB_TL_MAX];
    for (unsigned k = 0; k < buckets; k++)
        tl[k] = h->tl[k];
    jw_begin(out);
    jw_str(out, "host", h->host);
    jw_u64(out, "hits", h->hits);
    jw_u64(out, "alerts", h->alerts);
    jw_u64(out, "flows", h->flows);
    jw_u64(out, "suppressed", h->suppressed);
    jw_i64(out, "bytes_out", h->bytes_out);
    jw_i64(out, "bytes_in", h->bytes_in);
    json_time(out, "first", h->first_us);
    json_time(out, "last", h->last_us);
    json_strset(out, "rules", h->rules, h->nrules);
    json_strset(out, "names", h->names, h->nnames);
    json_strset(out, "sensors", h->sensors, h->nsensors);
    jw_u64v(out, "tl", tl, buckets);
    jw_end(out);
}

int web_json_hosts(const struct web_win *w, const struct web_filter *f,
                   const struct web_timeline *tl, int64_t now_us, struct jw *out)
{
    struct web_timeline t = *tl;
    if (t.buckets < 1)
        t.buckets = 1;
    if (t.buckets > WEB_TL_MAX)
        t.buckets = WEB_TL_MAX;
    if (t.bucket_s < 1)
        t.bucket_s = 1;
    struct agg a;
    if (agg_build(w, f, &t, now_us, &a))
        return TW_ENOMEM;
    qsort(a.hosts, a.nhosts, sizeof(*a.hosts), host_cmp);
    out->html_safe = true;
    int64_t ref = web_win_ref_us(w, now_us);
    jw_begin(out);
    json_time(out, "ref", ref);
    jw_bool(out, "replay", ref != now_us && ref < now_us);
    jw_key(out, "timeline");
    jw_begin(out);
    jw_u64(out, "buckets", t.buckets);
    jw_u64(out, "bucket_s", t.bucket_s);
    json_time(out, "start", ref - (int64_t)t.buckets * t.bucket_s * 1000000);
    jw_end(out);
    jw_key(out, "hosts");
    jw_append(out, "[", 1);
    size_t shown = 0;
    for (size_t i = 0; i < a.nhosts; i++) {
        const struct host_agg *h = &a.hosts[i];
        if (h->hits == 0 && h->alerts == 0 && h->flows == 0)
            continue; /* only suppressed hits: not a host that reached a tunnel */
        if (shown++)
            jw_append(out, ",", 1);
        json_host(out, h, t.buckets);
    }
    jw_append(out, "]", 1);
    jw_end(out);
    agg_free(&a);
    return out->err;
}

#define WEB_FACET_MAX 200

static void facet(struct jw *out, const struct web_win *w, size_t off, bool with_id)
{
    struct smap seen;
    size_t n = 0;
    if (smap_init(&seen, w->len)) {
        out->err = TW_ENOMEM;
        return;
    }
    jw_append(out, "[", 1);
    for (size_t i = 0; i < w->len && n < WEB_FACET_MAX; i++) {
        const struct web_rec *r = win_at(w, i);
        const char *v = (const char *)r + off;
        bool found;
        if (r->kind == WEB_OTHER || !v[0])
            continue;
        size_t s = smap_slot(&seen, v, &found);
        if (found)
            continue;
        seen.keys[s] = v;
        if (n++)
            jw_append(out, ",", 1);
        if (with_id) {
            jw_begin(out);
            jw_str(out, "id", r->rule_id);
            jw_str(out, "name", r->rule_name);
            jw_end(out);
        } else {
            jw_quote(out, (const uint8_t *)v, strlen(v));
        }
    }
    jw_append(out, "]", 1);
    smap_free(&seen);
}

int web_json_facets(const struct web_win *w, struct jw *out)
{
    out->html_safe = true;
    jw_begin(out);
    jw_key(out, "rules");
    facet(out, w, offsetof(struct web_rec, rule_id), true);
    jw_key(out, "levels");
    facet(out, w, offsetof(struct web_rec, level), false);
    jw_key(out, "sensors");
    facet(out, w, offsetof(struct web_rec, sensor), false);
    jw_key(out, "hosts");
    facet(out, w, offsetof(struct web_rec, host), false);
    jw_end(out);
    return out->err;
}

int web_json_record(const struct web_win *w, const char *event_id, struct jw *out)
{
    const struct web_rec *r = web_win_find(w, event_id);
    if (!r)
        out_puts(out, "null");
    else
        jw_append(out, r->raw, r->raw_len); /* validated by web_rec_parse */
    return out->err;
}

static int html_row_cb(void *ctx, const char *key, size_t klen, char type, const char *val,
                       size_t vlen)
{
    struct jw *b = ctx;
    (void)type;
    out_puts(b, "<tr><th>");
    web_html_escape(b, key, klen);
    out_puts(b, "</th><td>");
    web_html_escape(b, val, vlen);
    out_puts(b, "</td></tr>\n");
    return b->err;
}

int web_html_record(const struct web_win *w, const char *event_id, struct jw *out)
{
    const struct web_rec *r = web_win_find(w, event_id);
    if (!r)
        return TW_EBAD;
    out_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<title>tunnelwatch record ");
    web_html_escape(out, r->event_id, strlen(r->event_id));
    out_puts(out, "</title><link rel=\"stylesheet\" href=\"/app.css\"></head>\n"
                  "<body class=\"record\"><h1>Record ");
    web_html_escape(out, r->event_id, strlen(r->event_id));
    out_puts(out, "</h1>\n<table class=\"kv\">\n");
    int rc = web_json_walk(r->raw, r->raw_len, html_row_cb, out);
    out_puts(out, "</table>\n<p><a href=\"/\">back to the live page</a></p></body></html>\n");
    return rc ? rc : out->err;
}

/* ---- sensors ---- */

#define WEB_SENSOR_FIELDS 16
static const char *const sensor_fields[WEB_SENSOR_FIELDS] = {
    "packets",        "kernel_drops",   "alerts_raised",   "alerts_queued",
    "alerts_spooled", "alerts_dropped", "redis_connected", "uptime_s",
    "bytes",          "rule_hits",      "records_dropped", "alerts_delivered",
};

struct sensor {
    char name[128];
    char version[32];
    int64_t hb_s; /* heartbeat_unix_s, else the time we read it */
    int64_t vals[WEB_SENSOR_FIELDS];
    bool has[WEB_SENSOR_FIELDS];
    int64_t prev_packets, prev_hb_s;
    double pps;
};

struct web_sensors {
    struct sensor *s;
    size_t n, max;
    int64_t down_after_s, forget_s;
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
    free(s->s);
    free(s);
}

int web_sensors_update(struct web_sensors *s, const char *name, const char *const *keys,
                       const char *const *vals, size_t n, int64_t now_s)
{
    struct sensor *x = NULL;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->s[i].name, name) == 0)
            x = &s->s[i];
    if (!x) {
        /* forget sensors long gone before refusing a new one */
        for (size_t i = 0; i < s->n;) {
            if (now_s - s->s[i].hb_s > s->forget_s)
                s->s[i] = s->s[--s->n];
            else
                i++;
        }
        /* why: sensor names come from Redis keys; a flood of them must not grow memory */
        if (s->n == s->max)
            return TW_ELIMIT;
        x = &s->s[s->n++];
        memset(x, 0, sizeof(*x));
        copy_field(x->name, sizeof(x->name), name, strlen(name));
        x->prev_packets = -1;
    }
    int64_t hb = now_s;
    memset(x->has, 0, sizeof(x->has));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i], "heartbeat_unix_s") == 0) {
            int64_t v = parse_i64(vals[i]);
            if (v > 0)
                hb = v;
        } else if (strcmp(keys[i], "version") == 0) {
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
        if (x->prev_packets >= 0 && x->vals[0] >= x->prev_packets)
            x->pps = (double)(x->vals[0] - x->prev_packets) / (double)(hb - x->prev_hb_s);
        else
            x->pps = 0;
        x->prev_packets = x->vals[0];
        x->prev_hb_s = hb;
    }
    x->hb_s = hb;
    return TW_OK;
}

static int sensor_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sensor *)a)->name, ((const struct sensor *)b)->name);
}

static void json_sensor(struct jw *out, const struct sensor *x, int64_t now_s, int64_t down_after_s)
{
    int64_t age = now_s - x->hb_s;
    char pps[32];
    snprintf(pps, sizeof(pps), "%.1f", x->pps);
    jw_begin(out);
    jw_str(out, "name", x->name);
    jw_str(out, "version", x->version);
    jw_bool(out, "up", age <= down_after_s);
    jw_i64(out, "age_s", age);
    jw_raw(out, "pps", pps);
    for (size_t k = 0; k < WEB_SENSOR_FIELDS && sensor_fields[k]; k++) {
        if (x->has[k])
            jw_i64(out, sensor_fields[k], x->vals[k]);
        else
            jw_raw(out, sensor_fields[k], "null");
    }
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
        json_sensor(out, &v[i], now_s, s->down_after_s);
    }
    jw_append(out, "]", 1);
    free(v);
    return out->err;
}
