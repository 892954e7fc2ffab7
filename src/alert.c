/* alert.c - alert records (ECS / ASIM JSON), Community ID, event ids and incident dedup.
 *
 * Records are flat dotted ECS keys, one object per line, written with the escaping writer
 * in json.c. The dedup table is a chained hash over (host, rule id, name) with an LRU list
 * and a hard cap; an incident that falls out of the window or off the cap simply starts a
 * new alert on its next hit, so a cap hit can repeat an alert but never lose one.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tunnelwatch/alert.h"

/* --- Community ID v1 --- */

static void b64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* SHA-1 (RFC 3174, FIPS 180-4) of a short message (the Community ID input is at most 40
 * bytes). Ours rather than OpenSSL's EVP_Digest, which fetches the algorithm from its
 * provider on every call: about 25,000 instructions per alert record for 40 bytes. */
static uint32_t rol32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[80];
    for (unsigned i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (unsigned i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (unsigned i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* n < 56 * 2: the message and its padding fit in two blocks. */
static void sha1_short(const uint8_t *msg, size_t n, uint8_t md[20])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    uint8_t buf[128];
    size_t total = n + 9 <= 64 ? 64 : 128;
    memset(buf, 0, sizeof(buf));
    memcpy(buf, msg, n);
    buf[n] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (unsigned i = 0; i < 8; i++)
        buf[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64)
        sha1_block(h, buf + off);
    for (unsigned i = 0; i < 5; i++) {
        md[4 * i] = (uint8_t)(h[i] >> 24);
        md[4 * i + 1] = (uint8_t)(h[i] >> 16);
        md[4 * i + 2] = (uint8_t)(h[i] >> 8);
        md[4 * i + 3] = (uint8_t)h[i];
    }
}

void community_id_v1(const struct tw_addr *src, const struct tw_addr *dst, uint16_t sport,
                     uint16_t dport, uint8_t proto, uint16_t seed, char out[64])
{
    size_t alen = src->family == 4 ? 4 : 16;
    const struct tw_addr *a = src, *b = dst;
    uint16_t pa = sport, pb = dport;
    int c = memcmp(src->a, dst->a, alen);
    if (c > 0 || (c == 0 && sport > dport)) {
        a = dst;
        b = src;
        pa = dport;
        pb = sport;
    }
    uint8_t buf[2 + 16 + 16 + 2 + 4];
    size_t n = 0;
    buf[n++] = (uint8_t)(seed >> 8);
    buf[n++] = (uint8_t)seed;
    memcpy(buf + n, a->a, alen);
    n += alen;
    memcpy(buf + n, b->a, alen);
    n += alen;
    buf[n++] = proto;
    buf[n++] = 0;
    buf[n++] = (uint8_t)(pa >> 8);
    buf[n++] = (uint8_t)pa;
    buf[n++] = (uint8_t)(pb >> 8);
    buf[n++] = (uint8_t)pb;
    uint8_t md[20];
    sha1_short(buf, n, md);
    memcpy(out, "1:", 2);
    b64(md, 20, out + 2);
}

/* --- event ids --- */

void alert_ids_init(struct alert_ids *ids)
{
    ids->next = 0;
    if (getrandom(&ids->boot, sizeof(ids->boot), 0) != (ssize_t)sizeof(ids->boot))
        ids->boot = (uint64_t)(uintptr_t)ids ^ 0x9e3779b97f4a7c15ULL;
}

void alert_ids_next(struct alert_ids *ids, char out[40])
{
    /* a record formatter thread (record.c) takes ids too */
    uint64_t n = __atomic_add_fetch(&ids->next, 1, __ATOMIC_RELAXED);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[15 - i] = hex[(ids->boot >> (4 * i)) & 15];
        out[32 - i] = hex[(n >> (4 * i)) & 15];
    }
    out[16] = '-';
    out[33] = '\0';
}

/* --- formatting --- */

static const char *transport(uint8_t proto)
{
    return proto == 6 ? "tcp" : proto == 17 ? "udp" : "other";
}

static int severity(const char *level)
{
    if (!level)
        return 3;
    if (!strcmp(level, "informational"))
        return 1;
    if (!strcmp(level, "low"))
        return 2;
    if (!strcmp(level, "medium"))
        return 3;
    if (!strcmp(level, "high"))
        return 4;
    if (!strcmp(level, "critical"))
        return 5;
    return 3;
}

static const char *asim_severity(const char *level)
{
    switch (severity(level)) {
    case 1:
        return "Informational";
    case 2:
        return "Low";
    case 3:
        return "Medium";
    default:
        return "High";
    }
}

static const char *type_action(enum alert_type t)
{
    switch (t) {
    case ALERT_RAISED:
        return "raised";
    case ALERT_UPDATE:
        return "update";
    case ALERT_FLOW_END:
        return "flow_end";
    case ALERT_EXTERNAL:
        return "external";
    default:
        return "suppressed";
    }
}

/* ECS network.direction (asim: ASIM NetworkDirection) of an attribution: traffic between
 * two external hosts is "external" in both. */
static const char *direction(const char *attribution, bool asim)
{
    if (attribution && !strcmp(attribution, "inbound"))
        return asim ? "Inbound" : "inbound";
    if (attribution && !strcmp(attribution, "external"))
        return asim ? "External" : "external";
    return asim ? "Outbound" : "outbound";
}

static void fmt_time(struct jw *w, const char *key, struct tw_time t)
{
    char b[40];
    jw_str(w, key, tw_time_rfc3339(t, b, sizeof(b)));
}

/* The registered-domain guess used for ASIM DstDomain: the last two labels. */
static size_t last_labels(const uint8_t *n, size_t len, int labels)
{
    size_t i = len;
    while (i > 0) {
        i--;
        if (n[i] == '.' && --labels == 0)
            return i + 1;
    }
    return 0;
}

static size_t trim_dot(const uint8_t *n, size_t len)
{
    return len > 1 && n[len - 1] == '.' ? len - 1 : len;
}

#define ECS_VERSION   "8.11.0"   /* the ECS release our field names and types are checked against */
#define RULE_JSON_MAX (1u << 20) /* a rule whose fields render longer is written one by one */

/* ECS categorization (event.category, event.type), as SIEM views filter on it: a flow-end
 * record is a network connection that ended; every other record is about a detection. */
static void ecs_categories(struct jw *w, const struct alert_rec *r)
{
    if (r->type == ALERT_FLOW_END) {
        jw_raw(w, "event.category", "[\"network\"]");
        jw_raw(w, "event.type", "[\"connection\",\"end\"]");
    } else {
        jw_raw(w, "event.category", "[\"network\",\"intrusion_detection\"]");
        jw_raw(w, "event.type", "[\"info\"]");
    }
}

/* ECS network.protocol must be lowercase ("dns", "tls.cloudflare"); labels are short. */
static void ecs_protocol(struct jw *w, const char *label)
{
    uint8_t b[64];
    size_t n = strlen(label);
    if (n > sizeof(b))
        n = sizeof(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)tolower((unsigned char)label[i]);
    jw_strn(w, "network.protocol", b, n);
}

/* ECS: event.* and the incident. */
static void ecs_event(struct jw *w, const struct alert_rec *r)
{
    fmt_time(w, "@timestamp", r->ts);
    jw_str(w, "ecs.version", ECS_VERSION);
    bool is_alert = r->type == ALERT_RAISED;
    jw_str(w, "event.kind", is_alert ? "alert" : "event");
    jw_str(w, "event.id", r->event_id);
    jw_str(w, "event.dataset",
           r->type == ALERT_RAISED     ? "tunnelwatch.alert"
           : r->type == ALERT_UPDATE   ? "tunnelwatch.update"
           : r->type == ALERT_FLOW_END ? "tunnelwatch.flow"
           : r->type == ALERT_EXTERNAL ? "tunnelwatch.external"
                                       : "tunnelwatch.suppressed");
    jw_str(w, "event.action", type_action(r->type));
    jw_str(w, "event.module", "tunnelwatch");
    ecs_categories(w, r);
    if (r->incident_id)
        jw_str(w, "tunnelwatch.incident_id", r->incident_id);
    if (r->count)
        jw_u64(w, "event.count", r->count);
}

/* ECS: the Sigma rule's fields, the same in every record of the rule. */
static void ecs_rule_fields(struct jw *w, const struct rule *rule)
{
    jw_u64(w, "event.severity", (uint64_t)severity(rule->level));
    jw_str(w, "rule.id", rule->id);
    jw_str(w, "rule.name", rule->title);
    jw_str(w, "rule.level", rule->level);
    jw_str(w, "rule.ruleset", "sigma");
    jw_str(w, "rule.reference", rule->file);
    jw_strv(w, "tags", rule->tags, rule->n_tags);
    if (rule->n_techniques) {
        jw_str(w, "threat.framework", "MITRE ATT&CK");
        jw_strv(w, "threat.technique.id", rule->techniques, rule->n_techniques);
    }
}

/* ECS: the Sigma rule, from its pre-rendered fragment when it has one (it follows the event
 * fields, so the fragment starts with their comma). */
static void ecs_rule(struct jw *w, const struct rule *rule)
{
    if (!rule)
        return;
    if (rule->ecs_json && w->need_comma && !w->html_safe)
        jw_append(w, rule->ecs_json, rule->ecs_json_len);
    else
        ecs_rule_fields(w, rule);
}

void alert_prepare_rules(struct ruleset *rs)
{
    struct jw w;
    jw_init(&w, RULE_JSON_MAX);
    for (size_t i = 0; i < ruleset_rule_count(rs); i++) {
        jw_reset(&w);
        w.need_comma = true;
        ecs_rule_fields(&w, ruleset_rule(rs, i));
        char *json = w.err ? NULL : malloc(w.len + 1);
        if (!json)
            continue; /* written one by one in each record */
        memcpy(json, w.buf, w.len + 1);
        ruleset_set_ecs_json(rs, i, json, w.len);
    }
    jw_free(&w);
}

/* ECS: source (the attributed host), destination (the other end), client and server. */
static void ecs_endpoints(struct jw *w, const struct alert_rec *r, bool host_is_cli)
{
    jw_addr(w, "source.ip", &r->host);
    if (r->host.family && host_is_cli && r->cport)
        jw_u64(w, "source.port", r->cport);
    if (r->host.family && !host_is_cli && tw_addr_eq(&r->host, &r->srv) && r->sport)
        jw_u64(w, "source.port", r->sport);
    const struct tw_addr *peer = host_is_cli || !r->host.family ? &r->srv : &r->cli;
    uint16_t peer_port = host_is_cli || !r->host.family ? r->sport : r->cport;
    jw_addr(w, "destination.ip", peer);
    if (peer_port)
        jw_u64(w, "destination.port", peer_port);
    if (r->name && r->name_len)
        jw_strn(w, "destination.domain", r->name, trim_dot(r->name, r->name_len));
    jw_addr(w, "client.ip", &r->cli);
    if (r->cport)
        jw_u64(w, "client.port", r->cport);
    jw_addr(w, "server.ip", &r->srv);
    if (r->sport)
        jw_u64(w, "server.port", r->sport);
}

/* ECS: network.*, observer.*, tls.*. */
static void ecs_network(struct jw *w, const struct alert_rec *r)
{
    char cid[64];
    jw_str(w, "network.transport", transport(r->proto));
    if (r->app_proto)
        ecs_protocol(w, r->app_proto);
    if (r->vlan) {
        char v[8]; /* ECS types network.vlan.id as a keyword: a string */
        snprintf(v, sizeof(v), "%u", (unsigned)r->vlan);
        jw_str(w, "network.vlan.id", v);
    }
    if (r->cli.family && (r->proto == 6 || r->proto == 17)) {
        community_id_v1(&r->cli, &r->srv, r->cport, r->sport, r->proto, 0, cid);
        jw_str(w, "network.community_id", cid);
    }
    jw_str(w, "network.direction", direction(r->attribution, false));
    jw_str(w, "observer.name", r->observer);
    jw_str(w, "observer.type", "sensor");
    jw_str(w, "observer.product", "tunnelwatch");
    if (r->ja4 && r->ja4[0])
        jw_str(w, "tls.client.ja4", r->ja4);
    if (r->kind && (!strcmp(r->kind, "tls_sni") || !strcmp(r->kind, "quic_sni")) && r->name)
        jw_strn(w, "tls.client.server_name", r->name, r->name_len);
}

/* The incident's pcap on the sensor and its Redis copy (evidence.h). */
static void ecs_pcap(struct jw *w, const struct alert_rec *r)
{
    if (!r->ev_pcap)
        return;
    jw_str(w, "tunnelwatch.evidence.pcap", r->ev_pcap);
    jw_u64(w, "tunnelwatch.evidence.pcap_bytes", r->ev_pcap_bytes);
    jw_u64(w, "tunnelwatch.evidence.pcap_packets", r->ev_pcap_packets);
    if (r->ev_redis_key)
        jw_str(w, "tunnelwatch.evidence.redis_key", r->ev_redis_key);
}

/* Our own fields: the evidence, the match, the attribution. */
static void ecs_evidence(struct jw *w, const struct alert_rec *r)
{
    if (r->ech)
        jw_bool(w, "tunnelwatch.tls.ech", true);
    if (r->alpn && r->alpn[0])
        jw_str(w, "tunnelwatch.tls.alpn", r->alpn);
    if (r->kind) {
        jw_str(w, "tunnelwatch.evidence.kind", r->kind);
        if (r->name)
            jw_strn(w, "tunnelwatch.evidence.name", r->name, r->name_len);
        if (r->frame)
            jw_u64(w, "tunnelwatch.evidence.frame", r->frame);
        if (r->file)
            jw_str(w, "tunnelwatch.evidence.file", r->file);
    }
    ecs_pcap(w, r);
    if (r->pattern)
        jw_str(w, "tunnelwatch.matched", r->pattern);
    if (r->attribution)
        jw_str(w, "tunnelwatch.attribution", r->attribution);
    if (r->resolver.family) {
        jw_addr(w, "tunnelwatch.resolver", &r->resolver);
        if (r->resolver_frame)
            jw_u64(w, "tunnelwatch.resolver_frame", r->resolver_frame);
    }
    if (r->binding_sensor) { /* the binding came from another sensor (fleet.h) */
        jw_str(w, "tunnelwatch.binding.sensor", r->binding_sensor);
        jw_addr(w, "tunnelwatch.binding.resolver", &r->resolver);
    }
}

/* A flow-end record: its span and what each side sent. */
static void ecs_flow_end(struct jw *w, const struct alert_rec *r, bool host_is_cli)
{
    fmt_time(w, "event.start", r->flow_start);
    fmt_time(w, "event.end", r->flow_end);
    int64_t dur = tw_time_us(r->flow_end) - tw_time_us(r->flow_start);
    jw_i64(w, "event.duration", dur > 0 ? dur * 1000 : 0);
    /* ECS: source.* is the attributed host, so its bytes are what it sent */
    int out = host_is_cli || !r->host.family ? 0 : 1;
    jw_u64(w, "source.bytes", r->bytes[out]);
    jw_u64(w, "source.packets", r->pkts[out]);
    jw_u64(w, "destination.bytes", r->bytes[1 - out]);
    jw_u64(w, "destination.packets", r->pkts[1 - out]);
    jw_u64(w, "network.bytes", r->bytes[0] + r->bytes[1]);
    jw_u64(w, "network.packets", r->pkts[0] + r->pkts[1]);
    jw_u64(w, "client.bytes", r->bytes[0]);
    jw_u64(w, "client.packets", r->pkts[0]);
    jw_u64(w, "server.bytes", r->bytes[1]);
    jw_u64(w, "server.packets", r->pkts[1]);
    if (r->end_reason)
        jw_str(w, "tunnelwatch.flow.end_reason", r->end_reason);
}

/* The observation's fields the rule matched on (raised alerts), in ECS or ASIM names. The
 * flow's addresses and ports are written with the endpoints already. */
static void matched_fields(struct jw *w, const struct alert_rec *r, bool asim)
{
    const struct rule_obs *o = r->obs;
    if (r->relaxed)
        jw_bool(w, asim ? "RuleRelaxed" : "tunnelwatch.rule_relaxed", true);
    if (!o)
        return;
    unsigned m = r->matched;
    if ((m & (RF_URL | RF_URI | RF_URI_STEM | RF_URI_QUERY | RF_URI_EXT)) && o->target.p)
        jw_strn(w, asim ? "Url" : "url.original", o->target.p, o->target.n);
    if ((m & RF_UA) && o->user_agent.p)
        jw_strn(w, asim ? "HttpUserAgent" : "user_agent.original", o->user_agent.p,
                o->user_agent.n);
    if ((m & RF_METHOD) && o->method.p)
        jw_strn(w, asim ? "HttpRequestMethod" : "http.request.method", o->method.p, o->method.n);
    if ((m & RF_REFERER) && o->referer.p)
        jw_strn(w, asim ? "HttpReferrer" : "http.request.referrer", o->referer.p, o->referer.n);
    if ((m & RF_HTTP_HOST) && o->host.p)
        jw_strn(w, asim ? "HttpHost" : "url.domain", o->host.p, o->host.n);
    if ((m & RF_STATUS) && o->status > 0)
        jw_u64(w, asim ? "HttpStatusCode" : "http.response.status_code", (uint64_t)o->status);
    if ((m & RF_QTYPE) && o->qtype) {
        const char *qt = rule_qtype_name(o->qtype);
        if (qt)
            jw_str(w, asim ? "DnsQueryTypeName" : "dns.question.type", qt);
        else if (asim)
            jw_u64(w, "DnsQueryType", o->qtype);
    }
}

static void format_ecs(struct jw *w, const struct alert_rec *r)
{
    bool host_is_cli = tw_addr_eq(&r->host, &r->cli);
    jw_begin(w);
    ecs_event(w, r);
    ecs_rule(w, r->rule);
    ecs_endpoints(w, r, host_is_cli);
    ecs_network(w, r);
    ecs_evidence(w, r);
    matched_fields(w, r, false);
    if (r->type == ALERT_UPDATE || r->type == ALERT_RAISED) {
        if (r->first_seen.sec)
            fmt_time(w, "event.start", r->first_seen);
        if (r->last_seen.sec)
            fmt_time(w, "event.end", r->last_seen);
    }
    if (r->type == ALERT_FLOW_END)
        ecs_flow_end(w, r, host_is_cli);
    if (r->type == ALERT_SUPPRESSED) {
        jw_str(w, "tunnelwatch.allowlist.name", r->allow_name);
        jw_str(w, "tunnelwatch.allowlist.reason", r->allow_reason);
    }
    jw_end(w);
}

/* ASIM: the Event* and Dvc fields, and the rule. */
static void asim_event(struct jw *w, const struct alert_rec *r)
{
    fmt_time(w, "TimeGenerated", r->ts);
    jw_str(w, "EventType", r->type == ALERT_FLOW_END ? "EndofStream" : "IDS");
    jw_str(w, "EventSubType", type_action(r->type));
    jw_str(w, "EventResult", "NA");
    jw_str(w, "EventUid", r->event_id);
    if (r->incident_id)
        jw_str(w, "EventOriginalUid", r->incident_id);
    jw_u64(w, "EventCount", r->count ? r->count : 1);
    fmt_time(w, "EventStartTime",
             r->type == ALERT_FLOW_END ? r->flow_start
             : r->first_seen.sec       ? r->first_seen
                                       : r->ts);
    fmt_time(w, "EventEndTime",
             r->type == ALERT_FLOW_END ? r->flow_end
             : r->last_seen.sec        ? r->last_seen
                                       : r->ts);
    jw_str(w, "EventProduct", "tunnelwatch");
    jw_str(w, "EventVendor", "tunnelwatch");
    jw_str(w, "EventSchema", "NetworkSession");
    jw_str(w, "EventSchemaVersion", "0.2.6");
    jw_str(w, "Dvc", r->observer);
    jw_str(w, "DvcAction", r->type == ALERT_SUPPRESSED ? "Allow" : "Alert");
    if (r->rule) {
        jw_str(w, "EventSeverity", asim_severity(r->rule->level));
        jw_str(w, "NetworkRuleName", r->rule->title);
        jw_str(w, "RuleId", r->rule->id);
        if (r->rule->n_techniques) {
            jw_str(w, "ThreatId", r->rule->techniques[0]);
            jw_strv(w, "ThreatTechniques", r->rule->techniques, r->rule->n_techniques);
        }
        jw_str(w, "ThreatName", r->rule->title);
    }
}

/* ASIM: Src* (the attributed host), Dst*, Network*. */
static void asim_session(struct jw *w, const struct alert_rec *r, bool host_is_cli)
{
    char cid[64];
    jw_addr(w, "SrcIpAddr", host_is_cli ? &r->cli : &r->host);
    if (host_is_cli && r->cport)
        jw_u64(w, "SrcPortNumber", r->cport);
    jw_addr(w, "DstIpAddr", host_is_cli ? &r->srv : &r->cli);
    if (host_is_cli && r->sport)
        jw_u64(w, "DstPortNumber", r->sport);
    if (r->name && r->name_len) {
        size_t n = trim_dot(r->name, r->name_len);
        /* DstHostname carries the full name (not ASIM's host part alone) so that the seed's
         * KQL, `DstHostname contains "tunnel.us.ngrok.com"`, finds these records unchanged. */
        jw_strn(w, "DstHostname", r->name, n);
        jw_strn(w, "DstFQDN", r->name, n);
        size_t d = last_labels(r->name, n, 2);
        jw_strn(w, "DstDomain", r->name + d, n - d);
        jw_str(w, "DstDomainType", "FQDN");
    }
    jw_str(w, "NetworkProtocol", r->proto == 6 ? "TCP" : r->proto == 17 ? "UDP" : "Other");
    if (r->app_proto)
        jw_str(w, "NetworkApplicationProtocol", r->app_proto);
    jw_str(w, "NetworkDirection", direction(r->attribution, true));
    if (r->cli.family && (r->proto == 6 || r->proto == 17)) {
        community_id_v1(&r->cli, &r->srv, r->cport, r->sport, r->proto, 0, cid);
        jw_str(w, "NetworkSessionId", cid);
    }
    if (r->type == ALERT_FLOW_END) {
        int out = host_is_cli ? 0 : 1;
        jw_u64(w, "SrcBytes", r->bytes[out]);
        jw_u64(w, "SrcPackets", r->pkts[out]);
        jw_u64(w, "DstBytes", r->bytes[1 - out]);
        jw_u64(w, "DstPackets", r->pkts[1 - out]);
        jw_u64(w, "NetworkBytes", r->bytes[0] + r->bytes[1]);
        int64_t dur = tw_time_us(r->flow_end) - tw_time_us(r->flow_start);
        jw_i64(w, "NetworkDuration", dur > 0 ? dur / 1000 : 0);
    }
}

/* Our own evidence, in an AdditionalFields object as ASIM suggests. */
static void asim_additional(struct jw *w, const struct alert_rec *r)
{
    jw_key(w, "AdditionalFields");
    jw_begin(w);
    if (r->kind)
        jw_str(w, "EvidenceKind", r->kind);
    if (r->name)
        jw_strn(w, "EvidenceName", r->name, r->name_len);
    if (r->frame)
        jw_u64(w, "EvidenceFrame", r->frame);
    jw_str(w, "EvidenceFile", r->file);
    if (r->ev_pcap) {
        jw_str(w, "EvidencePcap", r->ev_pcap);
        jw_u64(w, "EvidencePcapBytes", r->ev_pcap_bytes);
        jw_u64(w, "EvidencePcapPackets", r->ev_pcap_packets);
        jw_str(w, "EvidenceRedisKey", r->ev_redis_key);
    }
    jw_str(w, "Matched", r->pattern);
    jw_str(w, "Attribution", r->attribution);
    jw_addr(w, "Resolver", &r->resolver);
    if (r->ja4 && r->ja4[0])
        jw_str(w, "JA4", r->ja4);
    jw_str(w, "AllowlistName", r->allow_name);
    jw_str(w, "AllowlistReason", r->allow_reason);
    jw_end(w);
}

static void format_asim(struct jw *w, const struct alert_rec *r)
{
    bool host_is_cli = tw_addr_eq(&r->host, &r->cli) || !r->host.family;
    jw_begin(w);
    asim_event(w, r);
    asim_session(w, r, host_is_cli);
    matched_fields(w, r, true);
    asim_additional(w, r);
    jw_end(w);
}

/* The top sources of a health record as a JSON array of {ip, count, share_pct}: count is
 * what the space-saving summary guarantees (its estimate less its error), so a flood spread
 * over many addresses shows small shares and one loud host a large one. */
static void health_top(struct jw *w, const char *key, const struct alert_health *h)
{
    char buf[ALERT_HEALTH_TOP * 96 + 4], a[TW_ADDR_STRLEN];
    size_t n = 0;
    buf[n++] = '[';
    for (int i = 0; i < h->n_top && i < ALERT_HEALTH_TOP; i++) {
        uint64_t c = h->top[i].count - h->top[i].err;
        uint64_t pct = h->noted ? c * 100 / h->noted : 0;
        int k = snprintf(buf + n, sizeof(buf) - n,
                         "%s{\"ip\":\"%s\",\"count\":%" PRIu64 ",\"share_pct\":%" PRIu64 "}",
                         i ? "," : "", tw_addr_str(&h->top[i].addr, a, sizeof(a)), c,
                         pct > 100 ? 100 : pct);
        if (k < 0 || (size_t)k >= sizeof(buf) - n - 1)
            break;
        n += (size_t)k;
    }
    buf[n++] = ']';
    buf[n] = '\0';
    jw_raw(w, key, buf);
}

/* A sensor-health record: which resource gave way, how often, and at whose behest. */
static void format_health(struct jw *w, const struct alert_rec *r, bool asim)
{
    const struct alert_health *h = r->health;
    jw_begin(w);
    fmt_time(w, asim ? "TimeGenerated" : "@timestamp", r->ts);
    if (asim) {
        jw_str(w, "EventType", "Health");
        jw_str(w, "EventSubType", "resource_pressure");
        jw_str(w, "EventUid", r->event_id);
        jw_str(w, "EventProduct", "tunnelwatch");
        jw_str(w, "EventVendor", "tunnelwatch");
        jw_str(w, "Dvc", r->observer);
        jw_key(w, "AdditionalFields");
        jw_begin(w);
    } else {
        jw_str(w, "ecs.version", ECS_VERSION);
        jw_str(w, "event.kind", "event");
        /* the sensor's own state: ECS's "host" category, an informational event */
        jw_raw(w, "event.category", "[\"host\"]");
        jw_raw(w, "event.type", "[\"info\"]");
        jw_str(w, "event.id", r->event_id);
        jw_str(w, "event.dataset", "tunnelwatch.health");
        jw_str(w, "event.action", "resource_pressure");
        jw_str(w, "event.module", "tunnelwatch");
        jw_str(w, "observer.name", r->observer);
    }
    jw_str(w, asim ? "Resource" : "tunnelwatch.resource.name", h->resource);
    jw_str(w, asim ? "ConfigKey" : "tunnelwatch.resource.config_key", h->config_key);
    jw_u64(w, asim ? "Limit" : "tunnelwatch.resource.limit", h->limit);
    jw_u64(w, asim ? "Refused" : "tunnelwatch.resource.refused", h->refused);
    jw_u64(w, asim ? "Reclaimed" : "tunnelwatch.resource.reclaimed", h->reclaimed);
    health_top(w, asim ? "TopSources" : "tunnelwatch.resource.top_sources", h);
    if (asim)
        jw_end(w);
    jw_end(w);
}

int alert_format(struct jw *w, const struct alert_rec *r, enum alert_schema schema)
{
    jw_reset(w);
    if (r->type == ALERT_HEALTH && r->health)
        format_health(w, r, schema == ALERT_ASIM);
    else if (schema == ALERT_ASIM)
        format_asim(w, r);
    else
        format_ecs(w, r);
    return w->err;
}

/* --- copies --- */

/* One pass of alert_rec_copy_size (base NULL: sizes) or alert_rec_copy_to (copies into base). */
struct packer {
    char *base;
    size_t at;
};

static const void *pack(struct packer *k, const void *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = k->base ? k->base + k->at : NULL;
    k->at += n;
    if (d && n)
        memcpy(d, s, n);
    return d;
}

static const char *pack_str(struct packer *k, const char *s)
{
    return s ? pack(k, s, strlen(s) + 1) : NULL;
}

static struct rule_span pack_span(struct packer *k, struct rule_span sp)
{
    sp.p = pack(k, sp.p, sp.n);
    return sp;
}

/* What an observation points to (the name and the HTTP request's fields). */
static void pack_obs(struct packer *k, struct rule_obs *c, const struct rule_obs *o)
{
    c->name = pack(k, o->name, o->name_len);
    c->method = pack_span(k, o->method);
    c->target = pack_span(k, o->target);
    c->user_agent = pack_span(k, o->user_agent);
    c->host = pack_span(k, o->host);
    c->cookie = pack_span(k, o->cookie);
    c->referer = pack_span(k, o->referer);
}

/* Every string and byte run r points to, into c (whose other fields are r's). */
static void pack_rec(struct packer *k, struct alert_rec *c, const struct alert_rec *r)
{
    c->event_id = pack_str(k, r->event_id);
    c->incident_id = pack_str(k, r->incident_id);
    c->pattern = pack_str(k, r->pattern);
    c->kind = pack_str(k, r->kind);
    c->name = pack(k, r->name, r->name_len);
    c->file = pack_str(k, r->file);
    c->app_proto = pack_str(k, r->app_proto);
    c->ja4 = pack_str(k, r->ja4);
    c->alpn = pack_str(k, r->alpn);
    c->attribution = pack_str(k, r->attribution);
    c->binding_sensor = pack_str(k, r->binding_sensor);
    c->end_reason = pack_str(k, r->end_reason);
    c->allow_name = pack_str(k, r->allow_name);
    c->allow_reason = pack_str(k, r->allow_reason);
    c->observer = pack_str(k, r->observer);
    c->ev_pcap = pack_str(k, r->ev_pcap);
    c->ev_redis_key = pack_str(k, r->ev_redis_key);
}

struct rec_copy {
    struct alert_rec rec;
    struct rule_obs obs;
    struct alert_health health;
    max_align_t data[]; /* what they point to */
};

size_t alert_rec_copy_size(const struct alert_rec *r)
{
    struct rec_copy sizing = {.rec = *r};
    struct packer k = {NULL, 0};
    pack_rec(&k, &sizing.rec, r);
    if (r->obs)
        pack_obs(&k, &sizing.obs, r->obs);
    if (r->health) {
        pack_str(&k, r->health->resource);
        pack_str(&k, r->health->config_key);
    }
    return sizeof(struct rec_copy) + k.at;
}

struct alert_rec *alert_rec_copy_to(void *mem, const struct alert_rec *r)
{
    struct rec_copy *c = mem;
    c->rec = *r;
    struct packer k = {(char *)c->data, 0};
    pack_rec(&k, &c->rec, r);
    if (r->obs) {
        c->obs = *r->obs;
        pack_obs(&k, &c->obs, r->obs);
        c->rec.obs = &c->obs;
    }
    if (r->health) {
        c->health = *r->health;
        c->health.resource = pack_str(&k, r->health->resource);
        c->health.config_key = pack_str(&k, r->health->config_key);
        c->rec.health = &c->health;
    }
    return &c->rec;
}

/* --- dedup --- */

enum { L_LRU, L_UNREPORTED, L_FIRST }; /* struct incident's links, struct dedup's lists */

struct dedup {
    void (*flush)(void *ud, struct incident *in); /* reports unreported hits on removal */
    void *flush_ud;
    struct incident **buckets;
    size_t nbuckets;
    /* L_LRU: every incident, head least recently hit. The ticks' lists: L_UNREPORTED, those
     * with hits not yet in an update record (LRU order, as the updates have always come), and
     * L_FIRST, every incident by first hit, the order they expire in; a tick visits those, not
     * every incident. */
    struct incident_list {
        struct incident *head, *tail;
    } list[3];
    uint64_t seq;
    uint32_t max, size, window_s;
    uint64_t evictions;
    uint8_t key[16];
};

struct dedup *dedup_new(uint32_t max, uint32_t window_s)
{
    struct dedup *d = calloc(1, sizeof(*d));
    if (!d || max == 0) {
        free(d);
        return NULL;
    }
    d->nbuckets = 256;
    while (d->nbuckets < max)
        d->nbuckets <<= 1;
    d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
    if (!d->buckets) {
        free(d);
        return NULL;
    }
    d->max = max;
    d->window_s = window_s;
    if (getrandom(d->key, sizeof(d->key), 0) != (ssize_t)sizeof(d->key))
        memset(d->key, 0x5a, sizeof(d->key));
    return d;
}

void dedup_set_flush(struct dedup *d, void (*fn)(void *ud, struct incident *in), void *ud)
{
    d->flush = fn;
    d->flush_ud = ud;
}

/* An incident leaving the table (window over, cap) first reports hits not yet in an update,
 * so none is lost. */
static void flush_one(struct dedup *d, struct incident *in)
{
    if (d->flush && in->count > in->reported_count) {
        d->flush(d->flush_ud, in);
        in->reported_count = in->count;
    }
}

/* The incident's dedup window is over. */
static bool expired(const struct dedup *d, const struct incident *in, struct tw_time now)
{
    return tw_time_us(now) - tw_time_us(in->first) > (int64_t)d->window_s * 1000000;
}

static void list_unlink(struct dedup *d, int l, struct incident *in)
{
    struct incident_link *k = &in->link[l];
    if (k->prev)
        k->prev->link[l].next = k->next;
    else
        d->list[l].head = k->next;
    if (k->next)
        k->next->link[l].prev = k->prev;
    else
        d->list[l].tail = k->prev;
    k->prev = k->next = NULL;
}

static void list_append(struct dedup *d, int l, struct incident *in)
{
    struct incident_link *k = &in->link[l];
    k->prev = d->list[l].tail;
    k->next = NULL;
    if (k->prev)
        k->prev->link[l].next = in;
    else
        d->list[l].head = in;
    d->list[l].tail = in;
}

static void dirty_unlink(struct dedup *d, struct incident *in)
{
    if (in->dirty)
        list_unlink(d, L_UNREPORTED, in);
    in->dirty = false;
}

/* A hit: the incident goes to the end of the LRU list (seq numbers its place there). */
static void lru_append(struct dedup *d, struct incident *in)
{
    in->seq = ++d->seq;
    list_append(d, L_LRU, in);
}

/* A repeat hit, not reported yet: to the end of the unreported list, kept in LRU order. */
static void dirty_touch(struct dedup *d, struct incident *in)
{
    dirty_unlink(d, in);
    list_append(d, L_UNREPORTED, in);
    in->dirty = true;
}

static void incident_remove(struct dedup *d, struct incident *in)
{
    struct incident **pp = &d->buckets[in->hash & (d->nbuckets - 1)];
    while (*pp && *pp != in)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = in->hnext;
    list_unlink(d, L_LRU, in);
    dirty_unlink(d, in);
    list_unlink(d, L_FIRST, in);
    d->size--;
    rule_release(in->rule);
    free(in);
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    while (d->list[L_LRU].head)
        incident_remove(d, d->list[L_LRU].head);
    free(d->buckets);
    free(d);
}

static uint64_t incident_hash(const struct dedup *d, const struct tw_addr *host,
                              const char *rule_id, const uint8_t *name, size_t n)
{
    uint8_t buf[17 + 64 + 256];
    size_t k = 0;
    buf[k++] = host->family;
    memcpy(buf + k, host->a, 16);
    k += 16;
    size_t rl = strnlen(rule_id, 63);
    memcpy(buf + k, rule_id, rl);
    k += rl;
    buf[k++] = 0;
    if (n > 255)
        n = 255;
    for (size_t i = 0; i < n; i++)
        buf[k++] = (uint8_t)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    return tw_siphash(d->key, buf, k);
}

static void copy_name(char *dst, const uint8_t *name, size_t n)
{
    n = trim_dot(name, n);
    if (n > 255)
        n = 255;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    dst[n] = '\0';
}

struct incident *dedup_hit(struct dedup *d, const struct tw_addr *host, const struct rule *rule,
                           const uint8_t *name, size_t name_len, struct tw_time now, bool *is_new)
{
    char lname[256];
    copy_name(lname, name, name_len);
    const char *rid = rule->id ? rule->id : "";
    uint64_t h = incident_hash(d, host, rid, (const uint8_t *)lname, strlen(lname));
    for (struct incident *in = d->buckets[h & (d->nbuckets - 1)]; in; in = in->hnext) {
        const char *in_rid = in->rule && in->rule->id ? in->rule->id : "";
        if (in->hash != h || !tw_addr_eq(&in->host, host) || strcmp(in_rid, rid) ||
            strcmp(in->name, lname))
            continue;
        if (expired(d, in, now)) {
            flush_one(d, in);
            incident_remove(d, in); /* window over: the next hit is a new incident */
            break;
        }
        in->count++;
        dirty_touch(d, in);
        if (in->rule != rule) { /* a reloaded set: follow it, let the old one go */
            rule_release(in->rule);
            in->rule = rule_hold(rule);
        }
        if (tw_time_us(now) > tw_time_us(in->last))
            in->last = now;
        list_unlink(d, L_LRU, in);
        lru_append(d, in);
        *is_new = false;
        return in;
    }
    struct incident *oldest = d->list[L_LRU].head;
    if (d->size >= d->max && oldest) {
        d->evictions++;
        flush_one(d, oldest);
        incident_remove(d, oldest);
    }
    size_t nl = strlen(lname);
    struct incident *in = calloc(1, sizeof(*in) + nl + 1);
    if (!in)
        return NULL;
    in->host = *host;
    in->rule = rule_hold(rule);
    memcpy(in->name, lname, nl + 1);
    in->count = 1;
    in->reported_count = 1;
    in->first = in->last = in->last_update = now;
    in->hash = h;
    in->hnext = d->buckets[h & (d->nbuckets - 1)];
    d->buckets[h & (d->nbuckets - 1)] = in;
    lru_append(d, in);
    list_append(d, L_FIRST, in);
    d->size++;
    *is_new = true;
    return in;
}

void dedup_each_due(struct dedup *d, struct tw_time now, uint32_t interval_s,
                    void (*fn)(void *ud, struct incident *in), void *ud)
{
    struct incident *next;
    for (struct incident *in = d->list[L_UNREPORTED].head; in; in = next) {
        next = in->link[L_UNREPORTED].next;
        if (interval_s &&
            tw_time_us(now) - tw_time_us(in->last_update) < (int64_t)interval_s * 1000000)
            continue;
        fn(ud, in);
        in->reported_count = in->count;
        in->last_update = now;
        dirty_unlink(d, in);
    }
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = (*(struct incident *const *)a)->seq, y = (*(struct incident *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Incidents whose window is over, oldest first hit first: the head of L_FIRST, as packet time
 * only goes forward. They leave in LRU order, as the walk of every incident had them. Out of
 * memory to order them, they wait for a later tick (a hit still finds its window over). */
void dedup_expire(struct dedup *d, struct tw_time now)
{
    size_t n = 0;
    for (struct incident *in = d->list[L_FIRST].head; in && expired(d, in, now);
         in = in->link[L_FIRST].next)
        n++;
    struct incident **v = n ? malloc(n * sizeof(*v)) : NULL;
    if (!v)
        return;
    struct incident *in = d->list[L_FIRST].head;
    for (size_t i = 0; i < n; i++, in = in->link[L_FIRST].next)
        v[i] = in;
    qsort(v, n, sizeof(*v), by_seq);
    for (size_t i = 0; i < n; i++) {
        flush_one(d, v[i]);
        incident_remove(d, v[i]); /* as dedup_hit does at the next hit: nothing changes there */
    }
    free(v);
}

uint64_t dedup_evictions(const struct dedup *d)
{
    return d->evictions;
}

size_t dedup_size(const struct dedup *d)
{
    return d->size;
}
