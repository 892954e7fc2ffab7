/* engine.c - the packet path (see engine.h).
 *
 * Per packet: decode (no allocation), fragments through the bounded reassembler, the flow
 * lookup, then at most one parser per flow direction: DNS on port 53 (UDP, or TCP with its
 * length prefix), a QUIC Initial on other UDP ports, a TLS ClientHello or an HTTP request
 * head on TCP. Parsers see the contiguous prefix of a bounded reassembly buffer; once the
 * name is out the buffer is freed, so a long flow costs only its counters afterwards.
 *
 * Every observed name is matched against the rules. A hit is attributed (the flow's
 * internal client; the resolver for a resolver's own query; the connecting host for a flow to
 * an address a flagged DNS answer named), checked against the allowlist, then deduplicated
 * into incidents. Records go to the alerts file and the Redis publisher's queue, which never
 * blocks.
 */
#include <inttypes.h>
#include <ndpi/ndpi_api.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnelwatch/allow.h"
#include "tunnelwatch/capture.h"
#include "tunnelwatch/attrib.h"
#include "tunnelwatch/dns.h"
#include "tunnelwatch/engine.h"
#include "tunnelwatch/flow.h"
#include "tunnelwatch/frag.h"
#include "tunnelwatch/http.h"
#include "tunnelwatch/json.h"
#include "tunnelwatch/quic.h"
#include "tunnelwatch/stream.h"
#include "tunnelwatch/tls.h"

#define MAX_HITS        16
#define QUIC_MAX_PKTS   16   /* client datagrams fed before giving up on a QUIC flow */
#define SUMMARY_HOSTS   4096 /* internal hosts kept for the investigation summary */
#define SUMMARY_ITEMS   8
#define DNS_SERVERS_MAX 1024 /* internal hosts seen acting as DNS servers */
#define DNS_CANDIDATES  64   /* hosts seen serving DNS fewer than 3 times */
#define RECORD_MAX      65536

static const char *const kind_names[NK__COUNT] = {"dns_query", "tls_sni", "quic_sni", "http_host",
                                                  "dns_answer"};

enum app { APP_UNKNOWN = 0, APP_TLS, APP_HTTP, APP_DNS, APP_QUIC, APP_NONE };

/* What a flagged flow remembers for its flow-end record. */
struct flag {
    const struct rule *rule;
    char incident[40];
    char kind[12];
    char name[256];
    struct tw_addr host;
    char attribution[12];
    uint64_t frame;
    const char *file; /* capture file of the evidence frame (inputs live until exit) */
};

/* Engine state kept in each flow's slab record (flow_opts.ext_size). */
struct fstate {
    uint8_t app;
    bool done;    /* nothing more to extract */
    bool started; /* first-packet work done */
    uint8_t quic_pkts;
    bool quic_ok; /* an Initial of this flow decrypted */
    struct stream st[2];
    struct quic_initial *quic;
    struct ndpi_flow_struct *ndpi;
    uint16_t ndpi_proto;
    uint8_t ndpi_pkts;
    bool ndpi_done;
    char ja4[40];
    struct flag *flag;
};

struct host_sum {
    struct tw_addr host;
    uint64_t hits, alerts, flows, bytes_out, bytes_in;
    struct tw_time first, last;
    char rules[SUMMARY_ITEMS][64];
    char names[SUMMARY_ITEMS][128];
    uint64_t frames[SUMMARY_ITEMS];
    uint8_t n_rules, n_names, n_frames;
};

struct engine {
    struct engine_opts o;
    const struct tw_cfg *cfg;
    const struct ruleset *rules;
    struct flow_table *flows;
    struct frag *frag;
    struct dnsmap *dnsmap;
    struct dedup *dedup;
    struct netset *internal;
    struct alert_ids ids;
    struct jw jw;
    struct engine_stats st;
    int dlt;
    const char *file;
    uint64_t frame;
    struct tw_time now;
    int64_t last_tick_us;
    int64_t reasm_budget;
    uint8_t *hello_buf;
    /* internal hosts seen serving DNS (resolvers), a small open-addressed set */
    struct tw_addr dns_servers[DNS_SERVERS_MAX];
    uint32_t n_dns_servers;
    struct {
        struct tw_addr addr;
        uint32_t n;
    } cand[DNS_CANDIDATES];
    int next_cand;
    uint64_t *allow_counts;
    struct host_sum *hosts;
    uint32_t n_hosts;
    struct ndpi_detection_module_struct *ndpi;
    uint32_t ndpi_live;
    pcap_t *ev_pcap;
    pcap_dumper_t *ev_dump;
    struct evkey *evkeys; /* flagged flows, for --write-evidence's second pass (replays) */
    uint32_t n_evkeys;
    uint64_t evkeys_over;
    /* updates posted by the main thread to a capture worker, applied between batches */
    const struct ruleset *pending_rules;
    const struct tw_cfg *pending_cfg;
    FILE *pending_alerts;
    int pending;                   /* __atomic: 1 when the two above are set */
    struct flow_stats final_flows; /* the table's figures when engine_finish freed it */
    size_t final_bound;
};

/* ---------- helpers ---------- */

#define EVKEYS_MAX 65536

/* A flagged flow's 5-tuple + VLAN, client side first. */
struct evkey {
    uint8_t cli[16], srv[16];
    uint16_t cport, sport, vlan;
    uint8_t fam, proto;
};

static int evkey_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct evkey));
}

static void evkey_of(struct evkey *k, const struct tw_addr *cli, const struct tw_addr *srv,
                     uint16_t cport, uint16_t sport, uint8_t proto, uint16_t vlan)
{
    memset(k, 0, sizeof(*k));
    memcpy(k->cli, cli->a, 16);
    memcpy(k->srv, srv->a, 16);
    k->cport = cport;
    k->sport = sport;
    k->vlan = vlan;
    k->fam = cli->family;
    k->proto = proto;
}

static bool is_internal(void *ud, const struct tw_addr *a)
{
    const struct engine *e = ud;
    return netset_contains(e->internal, a);
}

static bool is_dns_server(const struct engine *e, const struct tw_addr *a)
{
    for (size_t i = 0; i < e->cfg->n_resolvers; i++)
        if (tw_addr_eq(&e->cfg->resolvers[i], a))
            return true;
    for (uint32_t i = 0; i < e->n_dns_servers; i++)
        if (tw_addr_eq(&e->dns_servers[i], a))
            return true;
    return false;
}

/* An internal host counts as a resolver once it has answered DNS 3 times (from port 53):
 * one forged response must not let a host relabel its own queries as a resolver's. The
 * candidates wait in a small table that recycles its oldest slot. */
static void note_dns_server(struct engine *e, const struct tw_addr *a)
{
    if (!netset_contains(e->internal, a) || is_dns_server(e, a) ||
        e->n_dns_servers == DNS_SERVERS_MAX)
        return;
    for (int i = 0; i < DNS_CANDIDATES; i++) {
        if (e->cand[i].n && tw_addr_eq(&e->cand[i].addr, a)) {
            if (++e->cand[i].n >= 3) {
                e->dns_servers[e->n_dns_servers++] = *a;
                e->cand[i].n = 0;
            }
            return;
        }
    }
    e->cand[e->next_cand].addr = *a;
    e->cand[e->next_cand].n = 1;
    e->next_cand = (e->next_cand + 1) % DNS_CANDIDATES;
}

/* TSV-safe rendering: control bytes, backslash and DEL as \xNN. */
static void put_name(FILE *out, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
}

static struct host_sum *host_sum(struct engine *e, const struct tw_addr *h)
{
    for (uint32_t i = 0; i < e->n_hosts; i++)
        if (tw_addr_eq(&e->hosts[i].host, h))
            return &e->hosts[i];
    if (e->n_hosts == SUMMARY_HOSTS)
        return NULL;
    struct host_sum *s = &e->hosts[e->n_hosts++];
    memset(s, 0, sizeof(*s));
    s->host = *h;
    return s;
}

/* Adds v to a list of at most SUMMARY_ITEMS distinct strings of width bytes each. */
static void add_distinct(char *items, size_t width, uint8_t *n, const char *v)
{
    for (uint8_t i = 0; i < *n; i++)
        if (!strncmp(items + i * width, v, width - 1))
            return;
    if (*n < SUMMARY_ITEMS)
        snprintf(items + (*n)++ * width, width, "%s", v);
}

/* ---------- output ---------- */

static void emit(struct engine *e, const struct alert_rec *r, bool to_redis)
{
    if (alert_format(&e->jw, r, e->o.schema) != TW_OK) {
        e->st.records_dropped++;
        return;
    }
    if (e->o.alerts_out) {
        /* one locked write per record: capture workers share the file */
        flockfile(e->o.alerts_out);
        fwrite(e->jw.buf, 1, e->jw.len, e->o.alerts_out);
        fputc('\n', e->o.alerts_out);
        fflush(e->o.alerts_out);
        funlockfile(e->o.alerts_out);
    }
    if (to_redis && e->o.pub)
        (void)pub_enqueue(e->o.pub, e->jw.buf, e->jw.len);
}

/* Our own parsers' verdict, used instead of nDPI's once they recognised the flow. */
static const char *app_label(uint8_t app)
{
    switch (app) {
    case APP_TLS:
        return "TLS";
    case APP_HTTP:
        return "HTTP";
    case APP_DNS:
        return "DNS";
    case APP_QUIC:
        return "QUIC";
    default:
        return NULL;
    }
}

static void fill_flow(struct alert_rec *r, const struct flow *f, const struct fstate *fs,
                      const struct engine *e)
{
    if (!f)
        return;
    r->cli = f->cli;
    r->srv = f->srv;
    r->cport = f->cport;
    r->sport = f->sport;
    r->proto = f->proto;
    r->vlan = f->vlan;
    if (fs && fs->ndpi_proto && e->ndpi)
        r->app_proto = ndpi_get_proto_name(e->ndpi, fs->ndpi_proto);
    else if (fs)
        r->app_proto = app_label(fs->app);
    if (fs && fs->ja4[0])
        r->ja4 = fs->ja4;
}

/* ---------- hits ---------- */

struct obs {
    enum name_kind kind;
    const uint8_t *name;
    size_t len;
    const struct dec_pkt *p; /* the packet that completed the name */
    struct flow *f;
    struct fstate *fs;
    const char *alpn;
    bool ech;
    const struct dnsmap_entry *dns; /* NK_DNS_ANSWER */
    const uint8_t *hello;           /* the ClientHello, for JA4 once a rule hits */
    size_t hello_len;
    bool quic;
};

static void handle_hit(struct engine *e, const struct obs *ob, const struct rule_hit *hit)
{
    struct alert_rec r;
    memset(&r, 0, sizeof(r));
    e->st.hits++;
    if (ob->hello && ob->fs && !ob->fs->ja4[0]) {
        /* JA4 only now that a rule hit: the allowlist and the alert need it */
        struct tls_hello h;
        if (tls_parse_hello_opt(ob->hello, ob->hello_len, ob->quic, true, &h) != TW_EBAD)
            snprintf(ob->fs->ja4, sizeof(ob->fs->ja4), "%s", h.ja4);
    }
    /* attribution */
    const char *attr = "client";
    struct tw_addr host;
    if (ob->kind == NK_DNS_QUERY) {
        host = ob->p->src;
        if (is_dns_server(e, &host))
            attr = "resolver";
        else if (!netset_contains(e->internal, &host) &&
                 netset_contains(e->internal, &ob->p->dst)) {
            attr = "inbound";
            host = ob->p->dst;
        } else if (!netset_contains(e->internal, &host))
            attr = "external";
    } else if (ob->kind == NK_DNS_ANSWER) {
        host = ob->f->cli;
        attr = "dns_answer";
        r.resolver = ob->dns->resolver;
        r.resolver_frame = ob->dns->frame;
    } else {
        host = ob->f->cli;
        if (!netset_contains(e->internal, &host)) {
            if (netset_contains(e->internal, &ob->f->srv)) {
                host = ob->f->srv;
                attr = "inbound";
            } else {
                attr = "external";
            }
        }
    }
    r.ts = e->now;
    r.rule = hit->rule;
    r.pattern = hit->pattern;
    r.kind = kind_names[ob->kind];
    r.name = ob->name;
    r.name_len = ob->len;
    r.frame = e->frame;
    r.file = e->file;
    r.attribution = attr;
    r.host = host;
    r.observer = e->cfg->sensor_name;
    r.alpn = ob->alpn;
    r.ech = ob->ech;
    if (ob->f) {
        fill_flow(&r, ob->f, ob->fs, e);
    } else {
        r.cli = ob->p->src;
        r.srv = ob->p->dst;
        r.cport = ob->p->sport;
        r.sport = ob->p->dport;
        r.proto = ob->p->proto;
        r.vlan = ob->p->vlan;
    }
    /* allowlist */
    struct allow_query q = {&host, ob->name, ob->len, hit->rule, r.ja4, e->now};
    int ai = allow_match(e->cfg->allow, e->cfg->n_allow, &q);
    if (ai >= 0) {
        char id[40];
        e->st.suppressed++;
        e->allow_counts[ai]++;
        alert_ids_next(&e->ids, id);
        r.type = ALERT_SUPPRESSED;
        r.event_id = id;
        r.allow_name = e->cfg->allow[ai].name;
        r.allow_reason = e->cfg->allow[ai].reason;
        if (e->cfg->log_suppressed || e->cfg->publish_suppressed) {
            FILE *keep = e->o.alerts_out;
            if (!e->cfg->log_suppressed)
                e->o.alerts_out = NULL;
            emit(e, &r, e->cfg->publish_suppressed);
            e->o.alerts_out = keep;
        }
        return;
    }
    bool is_new = false;
    struct incident *in = dedup_hit(e->dedup, &host, hit->rule, ob->name, ob->len, e->now, &is_new);
    struct host_sum *hs = host_sum(e, &host);
    if (hs) {
        hs->hits++;
        if (!hs->first.sec)
            hs->first = e->now;
        hs->last = e->now;
        add_distinct(hs->rules[0], sizeof(hs->rules[0]), &hs->n_rules,
                     hit->rule->id ? hit->rule->id : "?");
        char nm[128];
        size_t n = ob->len < sizeof(nm) - 1 ? ob->len : sizeof(nm) - 1;
        memcpy(nm, ob->name, n);
        nm[n] = '\0';
        add_distinct(hs->names[0], sizeof(hs->names[0]), &hs->n_names, nm);
        if (hs->n_frames < SUMMARY_ITEMS)
            hs->frames[hs->n_frames++] = e->frame;
    }
    if (in && is_new) {
        e->st.alerts++;
        if (hs)
            hs->alerts++;
        r.type = ALERT_RAISED;
        alert_ids_next(&e->ids, in->id);
        r.event_id = in->id;
        r.count = 1;
        r.first_seen = r.last_seen = e->now;
        emit(e, &r, true);
        if (e->o.verbosity > 0 && e->o.log) {
            char a[TW_ADDR_STRLEN], b[TW_ADDR_STRLEN];
            fprintf(e->o.log,
                    "tunnelwatch: ALERT %s [%s] %s -> %s %s %.*s (%s, frame %" PRIu64 ")\n",
                    hit->rule->level ? hit->rule->level : "?", hit->rule->title,
                    tw_addr_str(&host, a, sizeof(a)), tw_addr_str(&r.srv, b, sizeof(b)), r.kind,
                    (int)(ob->len > 255 ? 255 : ob->len), (const char *)ob->name, attr, e->frame);
        }
    }
    /* remember the flag on the flow for its end record (first incident wins); a DNS
     * query's own flow carries no exfiltration, the connection that follows does */
    if (in && ob->fs && !ob->fs->flag && ob->kind != NK_DNS_QUERY) {
        struct flag *fl = calloc(1, sizeof(*fl));
        if (fl) {
            fl->rule = hit->rule;
            memcpy(fl->incident, in->id, sizeof(fl->incident));
            snprintf(fl->kind, sizeof(fl->kind), "%s", kind_names[ob->kind]);
            snprintf(fl->name, sizeof(fl->name), "%s", in->name);
            fl->host = host;
            snprintf(fl->attribution, sizeof(fl->attribution), "%s", attr);
            fl->frame = e->frame;
            fl->file = e->file;
            ob->fs->flag = fl;
            if (e->o.evidence_path && e->file) {
                if (!e->evkeys)
                    e->evkeys = calloc(EVKEYS_MAX, sizeof(*e->evkeys));
                if (e->evkeys && e->n_evkeys < EVKEYS_MAX)
                    evkey_of(&e->evkeys[e->n_evkeys++], &ob->f->cli, &ob->f->srv, ob->f->cport,
                             ob->f->sport, ob->f->proto, ob->f->vlan);
                else
                    e->evkeys_over++;
            }
            if (hs)
                hs->flows++;
        }
    }
}

static void observe(struct engine *e, const struct obs *ob)
{
    e->st.names[ob->kind]++;
    if (e->o.names_out && ob->kind != NK_DNS_ANSWER) {
        char a[TW_ADDR_STRLEN], b[TW_ADDR_STRLEN];
        flockfile(e->o.names_out); /* one row at a time when capture workers share stdout */
        fprintf(e->o.names_out, "%" PRIu64 "\t%s\t", e->frame, kind_names[ob->kind]);
        put_name(e->o.names_out, ob->name, ob->len);
        fprintf(e->o.names_out, "\t%s\t%s\t%u\n", tw_addr_str(&ob->p->src, a, sizeof(a)),
                tw_addr_str(&ob->p->dst, b, sizeof(b)), ob->p->dport);
        funlockfile(e->o.names_out);
    }
    if (!e->rules || ob->len == 0)
        return;
    unsigned fields = RF_DEST_HOST;
    if (ob->kind == NK_DNS_QUERY)
        fields = RF_QUERY | (e->cfg->rules.dns_query_as_destination ? RF_DEST_HOST : 0u);
    struct rule_hit hits[MAX_HITS];
    int n = ruleset_match(e->rules, fields, ob->name, ob->len, hits, MAX_HITS);
    for (int i = 0; i < n; i++)
        handle_hit(e, ob, &hits[i]);
}

/* ---------- DNS ---------- */

static void dns_message(struct engine *e, const struct dec_pkt *p, struct flow *f,
                        struct fstate *fs, const uint8_t *msg, size_t len)
{
    static __thread struct dns_msg m; /* 40 KiB: too big for the stack of a callback */
    int r = dns_parse(msg, len, &m);
    if (r != TW_OK) {
        e->st.err_dns++;
        return;
    }
    if (!m.qr) {
        if (p->dport == 53)
            note_dns_server(e, &p->dst);
        for (uint16_t i = 0; i < m.n_q; i++) {
            if (!m.q[i].name[0])
                continue; /* the root: tshark shows <Root>, nothing to match */
            struct obs ob = {.kind = NK_DNS_QUERY,
                             .name = (const uint8_t *)m.q[i].name,
                             .len = strlen(m.q[i].name),
                             .p = p,
                             .f = f,
                             .fs = fs};
            observe(e, &ob);
        }
        return;
    }
    if (p->sport == 53)
        note_dns_server(e, &p->src);
    if (!e->rules || m.n_q == 0 || m.n_an == 0)
        return;
    /* Map the answer addresses of a flagged question name (CNAME chains lead to the A/AAAA
     * records; we bind the addresses to the name that was asked). */
    const char *qn = m.q[0].name;
    struct rule_hit hits[MAX_HITS];
    int n = ruleset_match(e->rules, RF_DEST_HOST, (const uint8_t *)qn, strlen(qn), hits, MAX_HITS);
    if (n <= 0)
        return;
    for (uint16_t i = 0; i < m.n_an; i++) {
        if (m.an[i].type != DNS_T_A && m.an[i].type != DNS_T_AAAA)
            continue;
        struct dnsmap_entry de;
        memset(&de, 0, sizeof(de));
        de.ip = m.an[i].addr;
        size_t ql = strnlen(qn, sizeof(de.name) - 1);
        memcpy(de.name, qn, ql); /* a longer (escaped) name is cut: it only labels the map */
        de.name[ql] = '\0';
        de.resolver = p->src;
        de.asker = p->dst;
        uint32_t ttl = m.an[i].ttl;
        if (ttl < e->cfg->alert.dns_ttl_min_s)
            ttl = e->cfg->alert.dns_ttl_min_s;
        if (ttl > e->cfg->alert.dns_ttl_cap_s)
            ttl = e->cfg->alert.dns_ttl_cap_s;
        de.expires_us = tw_time_us(e->now) + (int64_t)ttl * 1000000;
        de.frame = e->frame;
        dnsmap_put(e->dnsmap, &de);
        e->st.dns_answers_mapped++;
    }
}

/* DNS over TCP: 2-byte length prefix, several messages per segment, or one split. */
static void dns_tcp(struct engine *e, const struct dec_pkt *p, struct flow *f, struct fstate *fs,
                    int dir)
{
    struct stream *s = &fs->st[dir];
    while (s->len >= 2) {
        uint32_t mlen = (uint32_t)s->buf[0] << 8 | s->buf[1];
        if (mlen + 2 > s->max) {
            e->st.reasm_limit++; /* a message larger than we buffer: stop this direction */
            stream_reset(s, &e->reasm_budget);
            fs->done = true;
            return;
        }
        if (s->len < mlen + 2)
            return;
        if (mlen)
            dns_message(e, p, f, fs, s->buf + 2, mlen);
        stream_consume(s, mlen + 2);
    }
}

/* ---------- TCP ---------- */

static void finish_extraction(struct engine *e, struct fstate *fs)
{
    fs->done = true;
    fs->app = fs->app ? fs->app : APP_NONE;
    stream_reset(&fs->st[0], &e->reasm_budget);
    stream_reset(&fs->st[1], &e->reasm_budget);
}

/* A complete ClientHello (TLS or QUIC): its SNI is an observation. TW_ELIMIT (too many
 * extensions or ciphers for JA4) keeps the SNI; TW_EBAD with a name means an extension after a
 * whole server_name is malformed: the name was on the wire all the same (tshark shows it too),
 * so it is reported and the malformation counted. JA4 waits until a rule hits. */
static void observe_hello(struct engine *e, enum name_kind kind, const uint8_t *hello, size_t n,
                          const struct dec_pkt *p, struct flow *f, struct fstate *fs)
{
    struct tls_hello h;
    bool quic = kind == NK_QUIC_SNI;
    int pr = tls_parse_hello_opt(hello, n, quic, false, &h);
    if (pr != TW_OK && pr != TW_ELIMIT) {
        if (quic)
            e->st.err_quic++;
        else
            e->st.err_tls++;
    }
    if (!(pr == TW_OK || pr == TW_ELIMIT || (pr == TW_EBAD && h.sni)) || !h.sni || !h.sni_len)
        return;
    struct obs ob = {.kind = kind,
                     .name = h.sni,
                     .len = h.sni_len,
                     .p = p,
                     .f = f,
                     .fs = fs,
                     .alpn = h.alpn,
                     .ech = h.has_ech,
                     .hello = hello,
                     .hello_len = n,
                     .quic = quic};
    observe(e, &ob);
}

static void tcp_tls(struct engine *e, const struct dec_pkt *p, struct flow *f, struct fstate *fs)
{
    struct stream *s = &fs->st[0];
    long n = tls_hello_from_records(s->buf, s->len, e->hello_buf, TLS_HELLO_MAX);
    if (n == TW_ETRUNC && s->len < s->max)
        return;
    if (n == TW_ETRUNC)
        e->st.reasm_limit++; /* a hello larger than the buffer: give up, free it */
    if (n > 0) {
        observe_hello(e, NK_TLS_SNI, e->hello_buf, (size_t)n, p, f, fs);
    } else {
        e->st.err_tls++;
    }
    finish_extraction(e, fs);
}

static void tcp_http(struct engine *e, const struct dec_pkt *p, struct flow *f, struct fstate *fs)
{
    struct stream *s = &fs->st[0];
    const uint8_t *host = NULL;
    size_t hl = 0;
    int r = http_parse_host(s->buf, s->len, &host, &hl);
    if (r == TW_ETRUNC && s->len < HTTP_HEAD_MAX && s->len < s->max)
        return;
    if (r == TW_OK && hl) {
        struct obs ob = {.kind = NK_HTTP_HOST, .name = host, .len = hl, .p = p, .f = f, .fs = fs};
        observe(e, &ob);
    } else if (r != TW_OK) {
        e->st.err_http++;
    }
    /* wait for the next request of a keep-alive connection: the buffer restarts at the next
     * segment that begins with a request line */
    stream_reset(s, &e->reasm_budget);
}

static void handle_tcp(struct engine *e, const struct dec_pkt *p, struct flow *f, struct fstate *fs,
                       int dir)
{
    if ((p->tcp_flags & TW_TH_SYN) && !fs->done)
        stream_set_base(&fs->st[dir], p->seq + 1);
    if (fs->done || p->payload_len == 0)
        return;
    bool dns = f->sport == 53 || f->cport == 53;
    if (dir == 1 && !dns)
        return; /* only the client's bytes carry the names we want (DNS answers aside) */
    struct stream *s = &fs->st[dir];
    /* keep-alive: after a request the buffer was reset (no base), so the next segment that
     * starts a request line becomes its base */
    if (fs->app == APP_HTTP && s->len == 0 && s->n_isl == 0 &&
        !http_looks_like_request(p->payload, p->payload_len))
        return;
    int r = stream_add(s, p->seq, p->payload, p->payload_len, &e->reasm_budget);
    if (r < 0) {
        e->st.reasm_limit++;
        if (r != TW_ELIMIT || s->len == 0) {
            finish_extraction(e, fs);
            return;
        }
    }
    if (r == 0 || s->len == 0)
        return;
    if (fs->app == APP_UNKNOWN) {
        if (dns)
            fs->app = APP_DNS;
        else if (s->len >= 3 && tls_looks_like_hello(s->buf, s->len))
            fs->app = APP_TLS;
        else if (http_looks_like_request(s->buf, s->len))
            fs->app = APP_HTTP;
        else if (s->len >= 8) {
            finish_extraction(e, fs);
            return;
        } else {
            return;
        }
    }
    switch (fs->app) {
    case APP_DNS:
        dns_tcp(e, p, f, fs, dir);
        break;
    case APP_TLS:
        tcp_tls(e, p, f, fs);
        break;
    case APP_HTTP:
        tcp_http(e, p, f, fs);
        break;
    default:
        break;
    }
}

/* ---------- UDP ---------- */

static void quic_stop(struct engine *e, struct fstate *fs)
{
    if (fs->quic) {
        quic_initial_free(fs->quic);
        fs->quic = NULL;
        e->reasm_budget += QUIC_CRYPTO_MAX * 2;
    }
    if (fs->app == APP_UNKNOWN)
        fs->app = APP_NONE;
    fs->done = true;
}

static void handle_udp(struct engine *e, const struct dec_pkt *p, struct flow *f, struct fstate *fs,
                       int dir)
{
    if (p->payload_len == 0)
        return;
    if (p->sport == 53 || p->dport == 53) {
        fs->app = APP_DNS;
        dns_message(e, p, f, fs, p->payload, p->payload_len);
        return;
    }
    if (p->sport == 5353 || p->dport == 5353 || p->sport == 5355 || p->dport == 5355)
        return; /* mDNS and LLMNR: link-local name resolution, not tunnelling; ignored */
    if (fs->done || dir != 0)
        return;
    /* QUIC: client long-header packets (0-RTT may come before the Initial); a short-header
     * client packet means the handshake is over */
    if (p->payload_len < 7 || (p->payload[0] & 0xc0) != 0xc0) {
        quic_stop(e, fs);
        return;
    }
    if (!fs->quic) {
        if (!quic_looks_like_initial(p->payload, p->payload_len)) {
            if (++fs->quic_pkts >= 3)
                quic_stop(e, fs);
            return; /* a 0-RTT packet ahead of its Initial: wait a little */
        }
        if (e->reasm_budget < QUIC_CRYPTO_MAX * 2) {
            e->st.reasm_limit++;
            quic_stop(e, fs);
            return;
        }
        fs->quic = quic_initial_new();
        if (!fs->quic) {
            quic_stop(e, fs);
            return;
        }
        e->reasm_budget -= QUIC_CRYPTO_MAX * 2;
        fs->app = APP_QUIC;
    }
    long n = quic_initial_feed(fs->quic, p->payload, p->payload_len);
    if (n == TW_EBAD && !fs->quic_ok) {
        /* nothing of this flow ever decrypted: do not hold 32 KiB of the shared reassembly
         * budget for a flow of junk or spoofed Initials */
        e->st.err_quic++;
        quic_stop(e, fs);
        return;
    }
    if (n > 0 || n == TW_ETRUNC)
        fs->quic_ok = true;
    if (n > 0) {
        observe_hello(e, NK_QUIC_SNI, quic_initial_hello(fs->quic), (size_t)n, p, f, fs);
        /* keep listening: after a HelloRetryRequest the client sends a second ClientHello */
    } else if (n != TW_ETRUNC) {
        e->st.err_quic++;
    }
    if (++fs->quic_pkts >= QUIC_MAX_PKTS)
        quic_stop(e, fs);
}

/* ---------- nDPI ---------- */

static void ndpi_release(struct engine *e, struct fstate *fs)
{
    if (fs->ndpi) {
        ndpi_free_flow(fs->ndpi);
        fs->ndpi = NULL;
        e->ndpi_live--;
    }
}

static void ndpi_step(struct engine *e, struct fstate *fs, const struct dec_pkt *p, int64_t now_us)
{
    if (!e->ndpi || fs->ndpi_done || !p->l3 || p->l3_len == 0)
        return;
    if (app_label(fs->app)) {
        /* our parsers recognised the flow (TLS, HTTP, DNS, QUIC): nDPI would only repeat the
         * work (its TLS dissector is the costliest part of the packet path) */
        ndpi_release(e, fs);
        fs->ndpi_done = true;
        return;
    }
    if (!fs->ndpi) {
        if (p->payload_len == 0)
            return; /* start at the first payload: our parsers may recognise the flow there */
        if (e->ndpi_live >= e->cfg->flow.ndpi_max_flows) {
            e->st.ndpi_skipped++;
            fs->ndpi_done = true;
            return;
        }
        fs->ndpi = calloc(1, SIZEOF_FLOW_STRUCT);
        if (!fs->ndpi) {
            fs->ndpi_done = true;
            return;
        }
        e->ndpi_live++;
        e->st.ndpi_flows++;
    }
    uint16_t len = p->l3_len > 65535 ? 65535 : (uint16_t)p->l3_len;
    ndpi_protocol pr =
        ndpi_detection_process_packet(e->ndpi, fs->ndpi, p->l3, len, (uint64_t)(now_us / 1000));
    bool decided =
        pr.app_protocol != NDPI_PROTOCOL_UNKNOWN || pr.master_protocol != NDPI_PROTOCOL_UNKNOWN;
    if (!decided && ++fs->ndpi_pkts >= e->cfg->flow.ndpi_packets) {
        uint8_t guessed = 0;
        pr = ndpi_detection_giveup(e->ndpi, fs->ndpi, 1, &guessed);
        decided = true;
    }
    if (decided) {
        fs->ndpi_proto =
            pr.master_protocol != NDPI_PROTOCOL_UNKNOWN ? pr.master_protocol : pr.app_protocol;
        ndpi_release(e, fs);
        fs->ndpi_done = true;
    }
}

/* ---------- flow lifecycle ---------- */

static const char *end_reason_name(enum flow_end_reason why)
{
    switch (why) {
    case FLOW_END_IDLE:
        return "idle";
    case FLOW_END_CLOSED:
        return "closed";
    case FLOW_END_EVICTED:
        return "evicted";
    default:
        return "shutdown";
    }
}

static void flow_end(void *ud, struct flow *f, enum flow_end_reason why)
{
    struct engine *e = ud;
    struct fstate *fs = f->ext;
    if (fs->flag) {
        struct alert_rec r;
        char id[40];
        memset(&r, 0, sizeof(r));
        alert_ids_next(&e->ids, id);
        r.type = ALERT_FLOW_END;
        r.ts = f->last;
        r.event_id = id;
        r.incident_id = fs->flag->incident;
        r.rule = fs->flag->rule;
        r.kind = fs->flag->kind;
        r.name = (const uint8_t *)fs->flag->name;
        r.name_len = strlen(fs->flag->name);
        r.frame = fs->flag->frame;
        r.file = fs->flag->file;
        r.attribution = fs->flag->attribution;
        r.host = fs->flag->host;
        r.observer = e->cfg->sensor_name;
        fill_flow(&r, f, fs, e);
        memcpy(r.pkts, f->pkts, sizeof(r.pkts));
        memcpy(r.bytes, f->bytes, sizeof(r.bytes));
        r.flow_start = f->first;
        r.flow_end = f->last;
        r.end_reason = end_reason_name(why);
        emit(e, &r, true);
        e->st.flow_ends++;
        struct host_sum *hs = host_sum(e, &fs->flag->host);
        if (hs) {
            bool cli = tw_addr_eq(&fs->flag->host, &f->cli);
            hs->bytes_out += f->bytes[cli ? 0 : 1];
            hs->bytes_in += f->bytes[cli ? 1 : 0];
        }
        free(fs->flag);
        fs->flag = NULL;
    }
    finish_extraction(e, fs); /* reassembly buffers */
    quic_stop(e, fs);
    ndpi_release(e, fs);
}

/* First packet of a flow: a connection to an address a flagged DNS answer named. */
static void flow_start(struct engine *e, struct flow *f, struct fstate *fs, const struct dec_pkt *p)
{
    fs->started = true;
    fs->st[0].max = fs->st[1].max = e->cfg->flow.reasm_bytes;
    if (!e->rules || f->sport == 53 || f->cport == 53)
        return;
    const struct dnsmap_entry *de = dnsmap_get(e->dnsmap, &f->srv, tw_time_us(e->now));
    if (!de || !netset_contains(e->internal, &f->cli))
        return;
    struct obs ob = {.kind = NK_DNS_ANSWER,
                     .name = (const uint8_t *)de->name,
                     .len = strlen(de->name),
                     .p = p,
                     .f = f,
                     .fs = fs,
                     .dns = de};
    observe(e, &ob);
}

/* ---------- public ---------- */

static void tick_update(void *ud, struct incident *in);

struct engine *engine_new(const struct engine_opts *o, const struct ruleset *rules, char *err,
                          size_t errlen)
{
    const struct tw_cfg *c = o->cfg;
    struct engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->o = *o;
    e->cfg = c;
    e->rules = rules;
    struct flow_opts fo = {c->flow.max_flows, c->flow.idle_timeout_s, c->flow.udp_timeout_s,
                           c->flow.tcp_close_timeout_s, sizeof(struct fstate)};
    e->flows = flow_table_new(&fo, flow_end, e);
    e->frag = frag_new(c->flow.frag_max, (uint64_t)c->flow.frag_max * 4096, c->flow.frag_timeout_s);
    e->dnsmap = dnsmap_new(c->alert.dns_map_max);
    e->dedup = dedup_new(c->alert.dedup_max, c->alert.dedup_window_s);
    e->internal = netset_new();
    e->hello_buf = malloc(TLS_HELLO_MAX);
    e->hosts = calloc(SUMMARY_HOSTS, sizeof(*e->hosts));
    e->allow_counts = calloc(CFG_MAX_LIST + 1, sizeof(uint64_t));
    if (!e->flows || !e->frag || !e->dnsmap || !e->dedup || !e->internal || !e->hello_buf ||
        !e->hosts || !e->allow_counts) {
        snprintf(err, errlen, "cannot allocate the flow table and maps (check flow.max_flows)");
        engine_free(e);
        return NULL;
    }
    for (size_t i = 0; i < c->n_internal; i++)
        if (netset_add(e->internal, &c->internal[i].addr, c->internal[i].bits) != TW_OK) {
            snprintf(err, errlen, "bad internal network #%zu", i + 1);
            engine_free(e);
            return NULL;
        }
    e->reasm_budget = (int64_t)c->flow.reasm_total_mib * 1024 * 1024;
    jw_init(&e->jw, RECORD_MAX);
    alert_ids_init(&e->ids);
    dedup_set_flush(e->dedup, tick_update, e);
    if (c->flow.ndpi) {
        e->ndpi = ndpi_init_detection_module(ndpi_no_prefs);
        if (e->ndpi) {
            NDPI_PROTOCOL_BITMASK all;
            NDPI_BITMASK_SET_ALL(all);
            ndpi_set_protocol_detection_bitmask2(e->ndpi, &all);
            ndpi_finalize_initialization(e->ndpi);
        }
    }
    return e;
}

void engine_begin_input(struct engine *e, const char *file, int dlt, bool print_header)
{
    e->file = file;
    e->dlt = dlt;
    e->frame = 0;
    if (print_header && e->o.names_out)
        fprintf(e->o.names_out, "# file\t%s\n", file ? file : "-");
    if (e->o.evidence_path && !e->ev_dump && !file) { /* replays: second pass, see below */
        e->ev_pcap = pcap_open_dead(dlt, 262144);
        if (e->ev_pcap)
            e->ev_dump = pcap_dump_open(e->ev_pcap, e->o.evidence_path);
        if (!e->ev_dump && e->o.log)
            fprintf(e->o.log, "tunnelwatch: cannot write evidence to %s\n", e->o.evidence_path);
    }
}

static void tick_update(void *ud, struct incident *in)
{
    struct engine *e = ud;
    struct alert_rec r;
    char id[40];
    memset(&r, 0, sizeof(r));
    alert_ids_next(&e->ids, id);
    r.type = ALERT_UPDATE;
    r.ts = e->now;
    r.event_id = id;
    r.incident_id = in->id;
    r.rule = in->rule;
    r.name = (const uint8_t *)in->name;
    r.name_len = strlen(in->name);
    r.host = in->host;
    r.count = in->count;
    r.first_seen = in->first;
    r.last_seen = in->last;
    r.observer = e->cfg->sensor_name;
    r.file = e->file;
    emit(e, &r, true);
    e->st.updates++;
}

void engine_tick(struct engine *e, struct tw_time now)
{
    if (tw_time_us(now) > tw_time_us(e->now))
        e->now = now;
    flow_expire(e->flows, e->now, 0);
    frag_expire(e->frag, e->now);
    dedup_each_due(e->dedup, e->now, e->cfg->alert.update_interval_s, tick_update, e);
    e->last_tick_us = tw_time_us(e->now);
}

/* One packet in order, already decoded into p (r: dec_packet's verdict); hp: its flow hash
 * when the caller computed it. */
static void packet_decoded(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *data,
                           int r, struct dec_pkt *p, const uint64_t *hp)
{
    e->frame++;
    e->st.packets++;
    e->st.bytes += h->len;
    struct tw_time ts = {h->ts.tv_sec, (int32_t)h->ts.tv_usec};
    /* packet time drives expiry; one bogus far-future timestamp (a day ahead) must not stop
     * every later expiry, so such a jump is ignored and counted */
    if (tw_time_us(ts) > tw_time_us(e->now)) {
        if (e->now.sec && ts.sec - e->now.sec > 86400)
            e->st.time_jumps++;
        else
            e->now = ts;
    }
    if (tw_time_us(e->now) - e->last_tick_us >= 1000000)
        engine_tick(e, e->now);

    if (r == DEC_FRAG) {
        const uint8_t *d;
        uint32_t len;
        int fr = frag_add(e->frag, p, e->now, &d, &len);
        if (fr != 1) {
            if (fr == TW_ELIMIT)
                e->st.frag_limit++;
            e->st.dec[DEC_FRAG]++;
            return;
        }
        r = dec_transport(p->proto, d, len, len, p);
        hp = NULL;
    }
    e->st.dec[r]++;
    if (r != DEC_OK || (p->proto != 6 && p->proto != 17))
        return;
    int dir = 0;
    struct flow *f = hp ? flow_lookup_hashed(e->flows, p, *hp, e->now, &dir, is_internal, e)
                        : flow_lookup(e->flows, p, e->now, &dir, is_internal, e);
    if (!f) {
        e->st.flow_alloc_fail++;
        return;
    }
    flow_update(e->flows, f, p, dir, h->len, e->now);
    struct fstate *fs = f->ext;
    if (!fs->started)
        flow_start(e, f, fs, p);
    if (p->proto == 6)
        handle_tcp(e, p, f, fs, dir);
    else
        handle_udp(e, p, f, fs, dir);
    if (!fs->ndpi_done)
        ndpi_step(e, fs, p, tw_time_us(e->now));
    if (e->ev_dump && fs->flag)
        pcap_dump((u_char *)e->ev_dump, h, data);
}

void engine_packet(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *data)
{
    struct dec_pkt p;
    int r = dec_packet(e->dlt, data, h->caplen, &p);
    packet_decoded(e, h, data, r, &p, NULL);
}

/* A batch: decoding has no state, so every packet is decoded and hashed first and its
 * home slot fetched; then, in order, each packet is handled while the flow in the home slot
 * of the packet FLOW_AHEAD later is fetched. The two cache misses of a flow lookup (slot,
 * record) overlap the work on earlier packets instead of stalling it. */
#define FLOW_AHEAD 4

void engine_packets(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *const *data,
                    size_t n)
{
    while (n > 0) {
        size_t k = n < ENGINE_BATCH ? n : ENGINE_BATCH;
        struct dec_pkt p[ENGINE_BATCH];
        int r[ENGINE_BATCH];
        uint64_t hs[ENGINE_BATCH];
        bool hv[ENGINE_BATCH];
        for (size_t i = 0; i < k; i++) {
            r[i] = dec_packet(e->dlt, data[i], h[i].caplen, &p[i]);
            hv[i] = r[i] == DEC_OK && (p[i].proto == 6 || p[i].proto == 17);
            if (hv[i]) {
                hs[i] = flow_hash(e->flows, &p[i]);
                flow_prefetch(e->flows, hs[i], 0);
            }
        }
        for (size_t i = 0; i < k; i++) {
            if (i + FLOW_AHEAD < k && hv[i + FLOW_AHEAD])
                flow_prefetch(e->flows, hs[i + FLOW_AHEAD], 1);
            packet_decoded(e, &h[i], data[i], r[i], &p[i], hv[i] ? &hs[i] : NULL);
        }
        h += k;
        data += k;
        n -= k;
    }
}

void engine_skip_frame(struct engine *e)
{
    e->frame++;
}

int engine_write_evidence(struct engine *e, char *const *inputs, const char *path, char *err,
                          size_t errlen)
{
    if (e->n_evkeys == 0) {
        snprintf(err, errlen, "no flagged flow: %s not written", path);
        return 0;
    }
    qsort(e->evkeys, e->n_evkeys, sizeof(*e->evkeys), evkey_cmp);
    pcap_t *dead = NULL;
    pcap_dumper_t *dump = NULL;
    int out_dlt = -1, written = 0;
    uint64_t other_dlt = 0;
    for (size_t i = 0; inputs[i]; i++) {
        struct cap_src src;
        if (cap_open_file(&src, inputs[i], err, errlen) != TW_OK)
            continue;
        struct pcap_pkthdr h;
        const uint8_t *data;
        int dlt, r;
        while ((r = cap_next(&src, &h, &data, &dlt, err, errlen)) == 1) {
            struct dec_pkt p;
            if (!dec_linktype_supported(dlt) || dec_packet(dlt, data, h.caplen, &p) != DEC_OK ||
                (p.proto != 6 && p.proto != 17))
                continue;
            struct evkey k;
            evkey_of(&k, &p.src, &p.dst, p.sport, p.dport, p.proto, p.vlan);
            bool hit = bsearch(&k, e->evkeys, e->n_evkeys, sizeof(k), evkey_cmp) != NULL;
            if (!hit) {
                evkey_of(&k, &p.dst, &p.src, p.dport, p.sport, p.proto, p.vlan);
                hit = bsearch(&k, e->evkeys, e->n_evkeys, sizeof(k), evkey_cmp) != NULL;
            }
            if (!hit)
                continue;
            if (!dump) {
                out_dlt = dlt;
                dead = pcap_open_dead(dlt, 262144);
                dump = dead ? pcap_dump_open(dead, path) : NULL;
                if (!dump) {
                    snprintf(err, errlen, "cannot write %s: %s", path,
                             dead ? pcap_geterr(dead) : "out of memory");
                    if (dead)
                        pcap_close(dead);
                    cap_close(&src);
                    return TW_EIO;
                }
            }
            if (dlt != out_dlt) {
                other_dlt++; /* a pcap file has one link type */
                continue;
            }
            pcap_dump((u_char *)dump, &h, data);
            written++;
        }
        cap_close(&src);
    }
    if (dump)
        pcap_dump_close(dump);
    if (dead)
        pcap_close(dead);
    snprintf(err, errlen, "%d packets of %u flagged flows written to %s%s%s", written, e->n_evkeys,
             path, other_dlt ? " (packets of another link type left out)" : "",
             e->evkeys_over ? " (more flagged flows than the evidence cap)" : "");
    return written;
}

bool engine_update_idle(struct engine *e, int wait_ms)
{
    /* a worker picks an update up within one batch (200 ms when the link is quiet) */
    for (int i = 0; __atomic_load_n(&e->pending, __ATOMIC_ACQUIRE); i++) {
        if (i >= wait_ms)
            return false;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

int engine_post_update(struct engine *e, const struct ruleset *rules, const struct tw_cfg *cfg,
                       FILE *alerts)
{
    if (!engine_update_idle(e, 2000))
        return TW_ELIMIT; /* the worker is not taking updates (stopped?) */
    e->pending_rules = rules;
    e->pending_cfg = cfg;
    e->pending_alerts = alerts;
    __atomic_store_n(&e->pending, 1, __ATOMIC_RELEASE);
    return TW_OK;
}

void engine_apply_update(struct engine *e)
{
    if (!__atomic_load_n(&e->pending, __ATOMIC_ACQUIRE))
        return;
    if (e->pending_cfg && engine_set_cfg(e, e->pending_cfg) != TW_OK && e->o.log)
        fprintf(e->o.log, "tunnelwatch: worker kept its configuration (out of memory)\n");
    if (e->pending_rules)
        e->rules = e->pending_rules;
    if (e->pending_alerts)
        e->o.alerts_out = e->pending_alerts;
    __atomic_store_n(&e->pending, 0, __ATOMIC_RELEASE);
}

void engine_set_dlt(struct engine *e, int dlt)
{
    e->dlt = dlt;
}

void engine_set_rules(struct engine *e, const struct ruleset *rules)
{
    e->rules = rules;
}

int engine_set_cfg(struct engine *e, const struct tw_cfg *cfg)
{
    struct netset *ns = netset_new();
    if (!ns)
        return TW_ENOMEM;
    for (size_t i = 0; i < cfg->n_internal; i++)
        if (netset_add(ns, &cfg->internal[i].addr, cfg->internal[i].bits) != TW_OK) {
            netset_free(ns);
            return TW_ENOMEM;
        }
    struct netset *old = e->internal;
    e->internal = ns;
    /* the allowlist counters start again for the new entries (the array is sized for the
     * largest allowlist once, so a stats reader never sees it reallocated) */
    memset(e->allow_counts, 0, (CFG_MAX_LIST + 1) * sizeof(uint64_t));
    e->cfg = cfg;
    netset_free(old);
    return TW_OK;
}

void engine_set_alerts_out(struct engine *e, FILE *f)
{
    e->o.alerts_out = f;
}

void engine_finish(struct engine *e)
{
    if (!e || !e->flows)
        return;
    e->final_bound = flow_table_bound(e->flows);
    flow_stats(e->flows, &e->final_flows);
    flow_table_free(e->flows); /* ends every flow: flow-end records */
    e->flows = NULL;
    dedup_each_due(e->dedup, e->now, 0, tick_update, e);
    if (e->ev_dump) {
        pcap_dump_close(e->ev_dump);
        e->ev_dump = NULL;
    }
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    flow_table_free(e->flows);
    frag_free(e->frag);
    dnsmap_free(e->dnsmap);
    dedup_free(e->dedup);
    netset_free(e->internal);
    free(e->hello_buf);
    free(e->hosts);
    free(e->allow_counts);
    free(e->evkeys);
    jw_free(&e->jw);
    if (e->ev_dump)
        pcap_dump_close(e->ev_dump);
    if (e->ev_pcap)
        pcap_close(e->ev_pcap);
    if (e->ndpi)
        ndpi_exit_detection_module(e->ndpi);
    free(e);
}

uint64_t engine_alerts(const struct engine *e)
{
    return e->st.alerts;
}

size_t engine_stats_text(const struct engine *e, char *buf, size_t n)
{
    size_t o = 0;
#define PUT(name, val)                                                                             \
    do {                                                                                           \
        int w_ = snprintf(buf + o, o < n ? n - o : 0, "%s\t%" PRIu64 "\n", name, (uint64_t)(val)); \
        if (w_ > 0)                                                                                \
            o += (size_t)w_;                                                                       \
    } while (0)
    struct flow_stats fst = e->final_flows;
    if (e->flows)
        flow_stats(e->flows, &fst);
    struct frag_stats frs;
    frag_stats(e->frag, &frs);
    PUT("packets", e->st.packets);
    PUT("bytes", e->st.bytes);
    for (int i = 1; i < DEC__COUNT; i++) {
        char k[64];
        snprintf(k, sizeof(k), "decode_%s", dec_reason_name(i));
        PUT(k, e->st.dec[i]);
    }
    PUT("fragments", frs.fragments);
    PUT("fragments_reassembled", frs.reassembled);
    PUT("fragments_limit", frs.limit);
    PUT("flows_active", fst.active);
    PUT("flows_created", fst.created);
    PUT("flows_evicted", fst.evicted);
    PUT("flows_expired", fst.expired + fst.closed);
    PUT("flows_peak", fst.peak);
    PUT("flow_table_bound_bytes", e->flows ? flow_table_bound(e->flows) : e->final_bound);
    for (int i = 0; i < NK__COUNT; i++) {
        char k[64];
        snprintf(k, sizeof(k), "names_%s", kind_names[i]);
        PUT(k, e->st.names[i]);
    }
    PUT("parse_errors_dns", e->st.err_dns);
    PUT("parse_errors_tls", e->st.err_tls);
    PUT("parse_errors_quic", e->st.err_quic);
    PUT("parse_errors_http", e->st.err_http);
    PUT("reassembly_limit", e->st.reasm_limit);
    PUT("dns_answers_mapped", e->st.dns_answers_mapped);
    PUT("dns_map_entries", dnsmap_size(e->dnsmap));
    PUT("rule_hits", e->st.hits);
    PUT("alerts_raised", e->st.alerts);
    PUT("alerts_updates", e->st.updates);
    PUT("alerts_suppressed", e->st.suppressed);
    PUT("flow_end_records", e->st.flow_ends);
    PUT("records_dropped", e->st.records_dropped);
    PUT("timestamp_jumps_ignored", e->st.time_jumps);
    PUT("dedup_evictions", dedup_evictions(e->dedup));
    PUT("ndpi_flows", e->st.ndpi_flows);
    PUT("ndpi_skipped", e->st.ndpi_skipped);
    for (size_t i = 0; i < e->cfg->n_allow; i++) {
        char k[160];
        snprintf(k, sizeof(k), "allowlist_%s", e->cfg->allow[i].name ? e->cfg->allow[i].name : "?");
        PUT(k, e->allow_counts[i]);
    }
#undef PUT
    return o;
}

void engine_summary(const struct engine *e, FILE *out, FILE *json_out)
{
    if (out) {
        fprintf(out, "\n%-39s %6s %6s %5s %12s %-20s %-20s  %s\n", "internal host", "alerts",
                "hits", "flows", "bytes out", "first seen", "last seen", "names / rules / frames");
        for (uint32_t i = 0; i < e->n_hosts; i++) {
            const struct host_sum *h = &e->hosts[i];
            char a[TW_ADDR_STRLEN], t1[40], t2[40];
            tw_time_rfc3339(h->first, t1, sizeof(t1));
            tw_time_rfc3339(h->last, t2, sizeof(t2));
            t1[19] = t2[19] = '\0';
            fprintf(out, "%-39s %6" PRIu64 " %6" PRIu64 " %5" PRIu64 " %12" PRIu64 " %-20s %-20s  ",
                    tw_addr_str(&h->host, a, sizeof(a)), h->alerts, h->hits, h->flows, h->bytes_out,
                    t1, t2);
            for (uint8_t k = 0; k < h->n_names; k++)
                fprintf(out, "%s%s", k ? "," : "", h->names[k]);
            fprintf(out, " / ");
            for (uint8_t k = 0; k < h->n_rules; k++)
                fprintf(out, "%s%s", k ? "," : "", h->rules[k]);
            fprintf(out, " / ");
            for (uint8_t k = 0; k < h->n_frames; k++)
                fprintf(out, "%s%" PRIu64, k ? "," : "", h->frames[k]);
            fprintf(out, "\n");
        }
        if (e->n_hosts == 0)
            fprintf(out, "(no internal host reached a flagged name)\n");
    }
    if (json_out) {
        struct jw w;
        jw_init(&w, 0);
        for (uint32_t i = 0; i < e->n_hosts; i++) {
            const struct host_sum *h = &e->hosts[i];
            jw_reset(&w);
            jw_begin(&w);
            jw_addr(&w, "host", &h->host);
            jw_u64(&w, "alerts", h->alerts);
            jw_u64(&w, "hits", h->hits);
            jw_u64(&w, "flows", h->flows);
            jw_u64(&w, "bytes_out", h->bytes_out);
            jw_u64(&w, "bytes_in", h->bytes_in);
            char t[40];
            jw_str(&w, "first_seen", tw_time_rfc3339(h->first, t, sizeof(t)));
            jw_str(&w, "last_seen", tw_time_rfc3339(h->last, t, sizeof(t)));
            char *v[SUMMARY_ITEMS];
            for (uint8_t k = 0; k < h->n_rules; k++)
                v[k] = (char *)(uintptr_t)h->rules[k];
            jw_strv(&w, "rules", v, h->n_rules);
            for (uint8_t k = 0; k < h->n_names; k++)
                v[k] = (char *)(uintptr_t)h->names[k];
            jw_strv(&w, "names", v, h->n_names);
            jw_u64v(&w, "frames", h->frames, h->n_frames);
            jw_end(&w);
            fputs(w.buf, json_out);
            fputc('\n', json_out);
        }
        jw_free(&w);
    }
}
