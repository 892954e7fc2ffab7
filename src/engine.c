/* engine.c - the packet path (see engine.h).
 *
 * Per packet, top to bottom (packet_decoded): decode (no allocation), IP fragments through
 * the bounded reassembler, the flow lookup, the flow's first-packet check against the DNS
 * answer map, extraction (extract.c: DNS, TLS, QUIC, HTTP parsers), nDPI for flows our
 * parsers cannot name (dpi.c), and the evidence writer. Every name the parsers observe is
 * matched against the rules (observe); a hit is attributed (attrib.c), checked against the
 * allowlist, turned into an incident and its records (record.c), noted in the per-host
 * summary (summary.c), and its flow is flagged for its flow-end record and the evidence.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnelwatch/allow.h"
#include "tunnelwatch/attrib.h"
#include "tunnelwatch/dns.h"
#include "tunnelwatch/dpi.h"
#include "tunnelwatch/engine.h"
#include "tunnelwatch/evidence.h"
#include "tunnelwatch/extract.h"
#include "tunnelwatch/fleet.h"
#include "tunnelwatch/flow.h"
#include "tunnelwatch/frag.h"
#include "tunnelwatch/http.h"
#include "tunnelwatch/record.h"
#include "tunnelwatch/summary.h"

#define MAX_HITS 16

/* What a flagged flow remembers for its flow-end record. Owned by its fstate (freed at flow
 * end); rule holds a reference to its rule set (rule_hold), dropped with the flag. */
struct flag {
    const struct rule *rule;
    char incident[40];
    char kind[16];
    char name[256];
    struct tw_addr host;
    char attribution[12];
    uint64_t frame;
    const char *file; /* capture file of the evidence frame (inputs live until exit) */
};

/* Engine state of a flow that needs more than its counters: the flow's extension
 * (flow_ext), made at its first packet and given back once the flow is settled (fs_settle);
 * what outlives it is kept in the record's owner bytes (struct fhot). */
struct fstate {
    struct xflow x;
    struct dpi_flow dpi;
    char *ja4; /* owned; computed once a rule hits (rare), so not kept inline */
    struct flag *flag;
    struct evflow *ev; /* evidence.dir: the flow's packets (evidence.h), NULL otherwise */
};

/* What a flow keeps without its extension: enough to label it, to know that a packet has
 * nothing more for the parsers, and to make the extension again as it was (fs_get). */
struct fhot {
    uint8_t bits;       /* FH_* */
    uint8_t xapp;       /* the extractor's enum xapp, ClientHellos read << 4 */
    uint16_t dpi_proto; /* nDPI's verdict */
    uint32_t seq;       /* the extractor's seen_seq (FH_SEEN), or its client stream's base
                         * sequence number from the SYN (FH_BASE) */
};

enum {
    FH_STARTED = 1,  /* first-packet work done */
    FH_SETTLED = 2,  /* the extension was given back: the fields below say what it held */
    FH_XDONE = 4,    /* the extractor is done with the flow */
    FH_DPI_DONE = 8, /* nDPI will not run for it again */
    FH_SEEN = 16,    /* seq is seen_seq */
    FH_BASE = 32     /* seq is the client stream's base (a flow not yet named) */
};

_Static_assert(sizeof(struct fhot) <= sizeof(((struct flow *)0)->owner), "fhot fits the record");

static struct fhot *fhot(struct flow *f)
{
    return (struct fhot *)(void *)f->owner;
}

static struct fstate *fs_get(struct engine *e, struct flow *f);

/* Counters of the packet path itself; the modules keep their own. */
struct engine_counts {
    uint64_t packets, bytes;
    uint64_t dec[DEC__COUNT];
    uint64_t names[NK__COUNT];
    uint64_t dns_answers_mapped, err_dns;
    uint64_t frag_limit, flow_alloc_fail;
    uint64_t hits;
    uint64_t time_jumps; /* packets a day or more ahead of the clock: time not advanced */
};

enum { RES_REASM, RES_QUIC, RES_FLOWS, RES_FRAG, RES_NDPI, RES_DNSMAP, RES_DEDUP, RES__N };

struct engine {
    struct engine_opts o;
    const struct tw_cfg *cfg;
    const struct ruleset *rules;
    struct flow_table *flows;
    struct frag *frag;
    struct attrib *attrib;
    struct recorder *rec;
    struct summary *sum;
    struct evpool *evp;              /* NULL without evidence.dir or --write-evidence */
    const struct pcap_pkthdr *cur_h; /* the packet being handled (evidence) */
    const uint8_t *cur_data;
    struct flow *hit_flow;         /* the flow a hit may flag, while rec_hit runs (evidence) */
    const struct rule_obs *hit_ro; /* and its observation: names the hit's own records */
    char ev_path[4200];            /* a record's evidence fields, valid while it is formatted */
    char ev_key[300];
    struct dpi *dpi; /* NULL with flow.ndpi off */
    struct extractor x;
    struct engine_counts st;
    uint64_t *allow_counts; /* per allowlist entry, sized once for the largest list */
    int dlt;
    const char *file;
    uint64_t frame;
    struct tw_time now;
    int64_t last_tick_us;
    /* updates posted by the main thread to a capture worker, applied between batches */
    const struct ruleset *pending_rules;
    const struct tw_cfg *pending_cfg;
    int pending;                   /* __atomic: 1 when the two above are set */
    struct flow_stats final_flows; /* the table's figures when engine_finish freed it */
    size_t final_bound;
    int64_t health_at[RES__N]; /* packet time of each resource's last health record, 0 none */
};

/* ---------- observations ---------- */

/* TSV-safe rendering as the truth files write it: tab, newline and carriage return as \t,
 * \n, \r, other control bytes and DEL as \xNN. A backslash stays as it is: DNS names come
 * already rendered the way tshark shows them (\004, \.), and must not be escaped twice. A
 * NUL ends a Host or SNI value there, as tshark's string fields show it. */
static void put_name(FILE *out, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++) {
        uint8_t c = s[i];
        if (c == '\t' || c == '\n' || c == '\r')
            fprintf(out, "\\%c", c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
}

/* --names: one row per observation. */
static void names_row(struct engine *e, const struct obs *ob)
{
    char a[TW_ADDR_STRLEN], b[TW_ADDR_STRLEN];
    FILE *out = e->o.names_out;
    flockfile(out); /* one row at a time when capture workers share stdout */
    fprintf(out, "%" PRIu64 "\t%s\t", e->frame, name_kind_str(ob->kind));
    put_name(out, ob->name, ob->len);
    fprintf(out, "\t%s\t%s\t%u\n", tw_addr_str(&ob->p->src, a, sizeof(a)),
            tw_addr_str(&ob->p->dst, b, sizeof(b)), ob->p->dport);
    funlockfile(out);
}

/* The flow's label: from its extension while it has one, else from the record. */
static const char *flow_label(const struct engine *e, const struct flow *f)
{
    const struct fstate *fs = f->ext;
    if (!fs) {
        const struct fhot *h = (const struct fhot *)(const void *)f->owner;
        struct dpi_flow d = {.proto = h->dpi_proto};
        struct xflow x = {.app = h->xapp & 15};
        const char *l = dpi_label(e->dpi, &d);
        return l ? l : extract_label(&x);
    }
    const char *l = dpi_label(e->dpi, &fs->dpi);
    return l ? l : extract_label(&fs->x);
}

/* The flow's fields of a record. */
static void fill_flow(struct alert_rec *r, const struct flow *f, const struct engine *e)
{
    const struct fstate *fs = f->ext;
    r->cli = f->cli;
    r->srv = f->srv;
    r->cport = f->cport;
    r->sport = f->sport;
    r->proto = f->proto;
    r->vlan = f->vlan;
    r->app_proto = flow_label(e, f);
    if (fs && fs->ja4)
        r->ja4 = fs->ja4;
}

/* A DNS message's own fields when it has no flow. */
static void fill_packet(struct alert_rec *r, const struct dec_pkt *p)
{
    r->cli = p->src;
    r->srv = p->dst;
    r->cport = p->sport;
    r->sport = p->dport;
    r->proto = p->proto;
    r->vlan = p->vlan;
}

/* JA4 of the flow's ClientHello, once a rule hit (the allowlist and the alert need it). */
static void flow_ja4(const struct obs *ob)
{
    struct fstate *fs = ob->f ? ob->f->ext : NULL;
    if (!ob->hello_msg || !fs || fs->ja4)
        return;
    struct tls_hello h;
    if (tls_parse_hello_opt(ob->hello_msg, ob->hello_len, ob->kind == NK_QUIC_SNI, true, &h) !=
        TW_EBAD)
        fs->ja4 = strdup(h.ja4);
}

/* Who is blamed for ob: a DNS query's sender (or the resolver), a flow's internal side, or
 * the host that connected to an address a flagged answer named. */
static struct attrib_verdict blame(struct engine *e, const struct obs *ob, struct alert_rec *r)
{
    if (ob->kind == NK_DNS_QUERY)
        return attrib_decide(e->attrib, &ob->p->src, &ob->p->dst, true);
    if (ob->kind == NK_DNS_ANSWER) {
        r->resolver = ob->dns->resolver;
        r->resolver_frame = ob->dns->frame;
        r->binding_sensor = ob->dns->sensor[0] ? ob->dns->sensor : NULL; /* another sensor's */
        struct attrib_verdict v = {ob->f->cli, "dns_answer"};
        return v;
    }
    return attrib_decide(e->attrib, &ob->f->cli, &ob->f->srv, false);
}

/* The record of a hit, before the allowlist and dedup decide its type. */
static void hit_record(struct engine *e, const struct obs *ob, const struct rule_obs *ro,
                       const struct rule_hit *hit, struct alert_rec *r)
{
    memset(r, 0, sizeof(*r));
    r->obs = ro;
    r->matched = hit->fields;
    r->relaxed = hit->relaxed;
    struct attrib_verdict v = blame(e, ob, r);
    r->ts = e->now;
    r->rule = hit->rule;
    r->pattern = hit->pattern;
    r->kind = name_kind_str(ob->kind);
    r->name = ob->name;
    r->name_len = ob->len;
    r->frame = e->frame;
    r->file = e->file;
    r->attribution = v.attribution;
    r->host = v.host;
    r->observer = e->cfg->sensor_name;
    if (ob->hello) {
        r->alpn = ob->hello->alpn;
        r->ech = ob->hello->has_ech;
    }
    if (ob->f)
        fill_flow(r, ob->f, e);
    else
        fill_packet(r, ob->p);
}

/* True when an allowlist entry suppresses the hit (its suppressed record is written). */
static bool allowlisted(struct engine *e, struct alert_rec *r)
{
    struct allow_query q = {&r->host, r->name, r->name_len, r->rule, r->ja4, e->now};
    int ai = allow_match(e->cfg->allow, e->cfg->n_allow, &q);
    if (ai < 0)
        return false;
    e->allow_counts[ai]++;
    r->allow_name = e->cfg->allow[ai].name;
    r->allow_reason = e->cfg->allow[ai].reason;
    rec_suppressed(e->rec, r);
    return true;
}

/* Remembers the incident on the flow for its end record (first incident wins); a DNS
 * query's own flow carries no exfiltration, the connection that follows does. */
static void flag_flow(struct engine *e, const struct obs *ob, const struct incident *in,
                      const struct alert_rec *r)
{
    struct fstate *fs = ob->f && ob->kind != NK_DNS_QUERY ? fs_get(e, ob->f) : NULL;
    if (!fs || fs->flag || ob->kind == NK_DNS_QUERY)
        return;
    struct flag *fl = calloc(1, sizeof(*fl));
    if (!fl)
        return;
    fl->rule = rule_hold(r->rule);
    memcpy(fl->incident, in->id, sizeof(fl->incident));
    snprintf(fl->kind, sizeof(fl->kind), "%s", r->kind);
    snprintf(fl->name, sizeof(fl->name), "%s", in->name);
    fl->host = r->host;
    snprintf(fl->attribution, sizeof(fl->attribution), "%s", r->attribution);
    fl->frame = e->frame;
    fl->file = e->file;
    fs->flag = fl;
    ob->f->pinned = true; /* a flood of new flows must not evict the tunnel (flow.h) */
    if (e->evp)
        evflow_flag(e->evp, &fs->ev, in->id, &ob->f->srv, tw_time_us(ob->f->first));
    summary_flow(e->sum, &r->host);
}

/* The record hook (record.h): the flow a new alert flags starts its incident's pcap first,
 * so that the alert already names the file; every record of an incident with a pcap names it. */
static void rec_evidence(void *ud, struct alert_rec *r, const char *incident_id)
{
    struct engine *e = ud;
    if (!e->evp)
        return;
    /* the hit's alert (or update, when another worker raised the incident), not the update of
     * an incident the dedup table pushed out meanwhile */
    if (e->hit_flow && r->type != ALERT_FLOW_END && r->obs && r->obs == e->hit_ro) {
        struct fstate *fs = e->hit_flow->ext;
        evflow_flag(e->evp, &fs->ev, incident_id, &e->hit_flow->srv,
                    tw_time_us(e->hit_flow->first));
    }
    uint64_t bytes, pkts;
    if (!evw_info(e->o.evw, incident_id, e->ev_path, sizeof(e->ev_path), &bytes, &pkts, e->ev_key,
                  sizeof(e->ev_key)))
        return;
    r->ev_pcap = e->ev_path;
    r->ev_pcap_bytes = bytes;
    r->ev_pcap_packets = pkts;
    r->ev_redis_key = e->ev_key[0] ? e->ev_key : NULL;
}

static void handle_hit(struct engine *e, const struct obs *ob, const struct rule_obs *ro,
                       const struct rule_hit *hit)
{
    struct alert_rec r;
    e->st.hits++;
    flow_ja4(ob);
    hit_record(e, ob, ro, hit, &r);
    if (allowlisted(e, &r))
        return;
    /* transit traffic (neither side internal): an event record unless alert.external says
     * "alert", as IDS rules treat traffic outside $HOME_NET */
    bool external = !strcmp(r.attribution, "external") && strcmp(e->cfg->alert.external, "alert");
    bool is_new = false;
    struct fstate *fs = ob->f ? ob->f->ext : NULL;
    if (e->evp && fs && !fs->flag && ob->kind != NK_DNS_QUERY && !external)
        e->hit_flow = ob->f; /* its pcap starts before the alert is written (rec_evidence) */
    e->hit_ro = ro;
    struct incident *in = rec_hit(e->rec, &r, external, &is_new);
    e->hit_flow = NULL;
    if (external)
        return;
    summary_hit(e->sum, &r.host, hit->rule->id, ob->name, ob->len, e->frame, e->now, in && is_new);
    if (in)
        flag_flow(e, ob, in, &r);
}

_Static_assert((int)NK_DNS_QUERY == (int)ROK_DNS_QUERY &&
                   (int)NK_HTTP_HOST == (int)ROK_HTTP_REQUEST &&
                   (int)NK_PROXY_TARGET == (int)ROK_PROXY_TARGET,
               "name kinds and rule observation kinds share their order");

static struct rule_span span(const uint8_t *p, size_t n)
{
    struct rule_span s = {p, n};
    return s;
}

/* The flow's 5-tuple (client -> server), or the packet's when there is no flow. */
static void rule_obs_flow(struct rule_obs *ro, const struct flow *f, const struct dec_pkt *p)
{
    ro->has_flow = ro->initiated = f || p;
    if (f) {
        ro->src = f->cli;
        ro->dst = f->srv;
        ro->sport = f->cport;
        ro->dport = f->sport;
        ro->proto = f->proto;
    } else if (p) {
        ro->src = p->src;
        ro->dst = p->dst;
        ro->sport = p->sport;
        ro->dport = p->dport;
        ro->proto = p->proto;
    }
}

/* What the rules see of an observation: the name, the 5-tuple, DNS and HTTP request facts. */
static void rule_obs_of(const struct engine *e, const struct obs *ob, struct rule_obs *ro)
{
    memset(ro, 0, sizeof(*ro));
    ro->kind = (enum rule_obs_kind)ob->kind;
    ro->name = ob->name;
    ro->name_len = ob->len;
    ro->name_fields = RF_DEST_HOST;
    if (ob->kind == NK_DNS_QUERY)
        ro->name_fields = RF_QUERY | (e->cfg->rules.dns_query_as_destination ? RF_DEST_HOST : 0u);
    rule_obs_flow(ro, ob->f, ob->p);
    ro->qtype = ob->qtype;
    const struct http_req *rq = ob->http;
    if (rq) {
        ro->method = span(rq->method, rq->method_len);
        ro->target = span(rq->target, rq->target_len);
        ro->host = span(rq->host, rq->host_len);
        ro->user_agent = span(rq->user_agent, rq->user_agent_len);
        ro->cookie = span(rq->cookie, rq->cookie_len);
        ro->referer = span(rq->referer, rq->referer_len);
    }
}

/* Whether a rule reads the HTTP response status (extract_ops.want_responses). */
static bool wants_responses(void *ud)
{
    const struct engine *e = ud;
    return e->rules && ruleset_wants(e->rules, ROK_HTTP_RESPONSE);
}

/* A request seen again with its response status: only the rules on the status run (the
 * others ran at the request). */
static void observe_response(struct engine *e, const struct obs *ob)
{
    if (!e->rules)
        return;
    struct rule_obs ro;
    rule_obs_of(e, ob, &ro);
    ro.kind = ROK_HTTP_RESPONSE;
    ro.status = ob->status;
    struct rule_hit hits[MAX_HITS];
    int n = ruleset_match_obs(e->rules, &ro, hits, MAX_HITS);
    for (int i = 0; i < n; i++)
        handle_hit(e, ob, &ro, &hits[i]);
}

/* Every name the parsers observe: counted, printed with --names, matched against the rules. */
static void observe(void *ud, const struct obs *ob)
{
    struct engine *e = ud;
    if (ob->status) {
        observe_response(e, ob);
        return;
    }
    e->st.names[ob->kind]++;
    if (e->o.names_out && ob->kind != NK_DNS_ANSWER && ob->kind != NK_PROXY_TARGET)
        names_row(e, ob);
    if (!e->rules || ob->len == 0)
        return;
    struct rule_obs ro;
    rule_obs_of(e, ob, &ro);
    struct rule_hit hits[MAX_HITS];
    int n = ruleset_match_obs(e->rules, &ro, hits, MAX_HITS);
    for (int i = 0; i < n; i++)
        handle_hit(e, ob, &ro, &hits[i]);
}

/* A new flow against the rules on flow facts alone (ports, addresses, Initiated); a hit's
 * evidence name is the server address. */
static void observe_flow(struct engine *e, struct flow *f, const struct dec_pkt *p)
{
    struct rule_obs ro;
    memset(&ro, 0, sizeof(ro));
    ro.kind = ROK_FLOW;
    rule_obs_flow(&ro, f, p);
    struct rule_hit hits[MAX_HITS];
    int n = ruleset_match_obs(e->rules, &ro, hits, MAX_HITS);
    if (n <= 0)
        return;
    char dst[TW_ADDR_STRLEN];
    tw_addr_str(&f->srv, dst, sizeof(dst));
    struct obs ob = {
        .kind = NK_FLOW, .name = (const uint8_t *)dst, .len = strlen(dst), .p = p, .f = f};
    for (int i = 0; i < n; i++)
        handle_hit(e, &ob, &ro, &hits[i]);
}

/* ---------- DNS messages ---------- */

static bool flagged(struct engine *e, const char *name)
{
    struct rule_hit hits[MAX_HITS];
    return ruleset_match(e->rules, RF_DEST_HOST, (const uint8_t *)name, strlen(name), hits,
                         MAX_HITS) > 0;
}

/* Rule verdicts of one response's names, each name matched at most once however many
 * addresses its chain leads to: 0 not asked yet, 1 flagged, 2 not. */
struct answer_flags {
    uint8_t q;
    uint8_t target[DNS_MAX_AN]; /* CNAME record i's target */
};

static bool flagged_once(struct engine *e, uint8_t *memo, const char *name)
{
    if (!*memo)
        *memo = flagged(e, name) ? 1 : 2;
    return *memo == 1;
}

/* The flagged name an A/AAAA answer record belongs to: the question's name, or a CNAME target
 * on the chain that leads to the record (a benign name -> CNAME -> tunnel.us.ngrok.com). NULL
 * when none is flagged, and for a record no chain from the question leads to: a server may add
 * any record it likes to an answer, and one for a ngrok name must not bind an unrelated
 * address (cache-poisoning style) for the length of its TTL. */
static const char *flagged_owner(struct engine *e, const struct dns_msg *m, uint16_t ai,
                                 struct answer_flags *af)
{
    uint16_t chain[DNS_MAX_AN];
    int n = dns_answer_chain(m, ai, chain);
    if (n == 0)
        return NULL;
    if (flagged_once(e, &af->q, m->q[0].name))
        return m->q[0].name;
    for (int k = 0; k < n; k++) {
        const struct dns_rr *rr = &m->an[chain[k]];
        if (rr->type == DNS_T_CNAME && flagged_once(e, &af->target[chain[k]], rr->target))
            return rr->target;
    }
    return NULL;
}

/* A binding this engine learned, for the other capture workers and the fleet (fleet.h). */
static void share_binding(struct engine *e, const struct dnsmap_entry *de, uint32_t ttl)
{
    struct fleet_binding b;
    struct rule_hit hit;
    memset(&b, 0, sizeof(b));
    b.ip = de->ip;
    b.client = de->asker;
    b.resolver = de->resolver;
    memcpy(b.name, de->name, sizeof(b.name));
    if (ruleset_match(e->rules, RF_DEST_HOST, (const uint8_t *)de->name, strlen(de->name), &hit,
                      1) > 0)
        snprintf(b.rule, sizeof(b.rule), "%s", hit.rule->id);
    b.ttl_s = ttl;
    fleet_share(e->o.fleet, e->o.fleet_slot, &b);
}

/* A binding from another worker or sensor, into the map from now on for its TTL. */
static void apply_binding(void *ud, const struct fleet_binding *b)
{
    struct engine *e = ud;
    struct dnsmap_entry de;
    memset(&de, 0, sizeof(de));
    de.ip = b->ip;
    memcpy(de.name, b->name, sizeof(de.name));
    de.resolver = b->resolver;
    de.asker = b->client;
    memcpy(de.sensor, b->sensor, sizeof(de.sensor));
    uint32_t ttl = b->ttl_s > e->cfg->alert.dns_ttl_cap_s ? e->cfg->alert.dns_ttl_cap_s : b->ttl_s;
    de.expires_us = tw_time_us(e->now) + (int64_t)ttl * 1000000;
    dnsmap_put(attrib_dnsmap(e->attrib), &de);
}

/* Bindings waiting for this engine, once its clock runs (their TTLs count from now). */
static void fleet_apply(struct engine *e)
{
    if (e->o.fleet && e->now.sec && fleet_pending(e->o.fleet, e->o.fleet_slot))
        (void)fleet_drain(e->o.fleet, e->o.fleet_slot, apply_binding, e);
}

/* The A/AAAA records of a flagged name go into the IP -> name map, bound to that name. */
static void map_answers(struct engine *e, const struct dec_pkt *p, const struct dns_msg *m)
{
    struct answer_flags af;
    memset(&af, 0, sizeof(af));
    for (uint16_t i = 0; i < m->n_an; i++) {
        if (m->an[i].type != DNS_T_A && m->an[i].type != DNS_T_AAAA)
            continue;
        const char *owner = flagged_owner(e, m, i, &af);
        if (!owner)
            continue;
        struct dnsmap_entry de;
        memset(&de, 0, sizeof(de));
        de.ip = m->an[i].addr;
        size_t ql = strnlen(owner, sizeof(de.name) - 1);
        memcpy(de.name, owner, ql); /* a longer (escaped) name is cut: it only labels the map */
        de.resolver = p->src;
        de.asker = p->dst;
        uint32_t ttl = m->an[i].ttl;
        if (ttl < e->cfg->alert.dns_ttl_min_s)
            ttl = e->cfg->alert.dns_ttl_min_s;
        if (ttl > e->cfg->alert.dns_ttl_cap_s)
            ttl = e->cfg->alert.dns_ttl_cap_s;
        de.expires_us = tw_time_us(e->now) + (int64_t)ttl * 1000000;
        de.frame = e->frame;
        dnsmap_put(attrib_dnsmap(e->attrib), &de);
        e->st.dns_answers_mapped++;
        if (e->evp && e->cur_h)
            evpool_dns_answer(e->evp, p, &de.ip, e->cur_h, e->cur_data);
        if (e->o.fleet)
            share_binding(e, &de, ttl);
    }
}

/* A whole DNS message: each question of a query is an observation; a response teaches who
 * serves DNS and maps the addresses of flagged names. */
static void dns_message(void *ud, const struct dec_pkt *p, struct flow *f, const uint8_t *msg,
                        size_t len)
{
    struct engine *e = ud;
    static __thread struct dns_msg m; /* about 74 KB: too big for a callback's stack */
    if (dns_parse(msg, len, &m) != TW_OK) {
        e->st.err_dns++;
        return;
    }
    if (m.qr) {
        if (p->sport == 53)
            attrib_note_dns_server(e->attrib, &p->src);
        if (e->rules && m.n_q && m.n_an)
            map_answers(e, p, &m);
        return;
    }
    if (p->dport == 53)
        attrib_note_dns_server(e->attrib, &p->dst);
    if (e->evp && e->cur_h)
        evpool_dns_query(e->evp, p, e->cur_h, e->cur_data);
    for (uint16_t i = 0; i < m.n_q; i++) {
        if (!m.q[i].name[0])
            continue; /* the root: tshark shows <Root>, nothing to match */
        struct obs ob = {.kind = NK_DNS_QUERY,
                         .name = (const uint8_t *)m.q[i].name,
                         .len = strlen(m.q[i].name),
                         .p = p,
                         .f = f,
                         .qtype = m.q[i].qtype};
        observe(e, &ob);
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

/* A flagged flow's end record: what the internal host sent and received through it. */
static void flow_end_record(struct engine *e, const struct flow *f, const struct flag *fl,
                            enum flow_end_reason why)
{
    struct alert_rec r;
    memset(&r, 0, sizeof(r));
    r.ts = f->last;
    r.incident_id = fl->incident;
    r.rule = fl->rule;
    r.kind = fl->kind;
    r.name = (const uint8_t *)fl->name;
    r.name_len = strlen(fl->name);
    r.frame = fl->frame;
    r.file = fl->file;
    r.attribution = fl->attribution;
    r.host = fl->host;
    r.observer = e->cfg->sensor_name;
    fill_flow(&r, f, e);
    memcpy(r.pkts, f->pkts, sizeof(r.pkts));
    memcpy(r.bytes, f->bytes, sizeof(r.bytes));
    r.flow_start = f->first;
    r.flow_end = f->last;
    r.end_reason = end_reason_name(why);
    rec_flow_end(e->rec, &r);
    bool cli = tw_addr_eq(&fl->host, &f->cli);
    summary_bytes(e->sum, &fl->host, f->bytes[cli ? 0 : 1], f->bytes[cli ? 1 : 0]);
}

/* The flow table's end callback: every flow that leaves it (idle, closed, evicted, exit). */
static void flow_end(void *ud, struct flow *f, enum flow_end_reason why)
{
    struct engine *e = ud;
    struct fstate *fs = f->ext;
    if (!fs)
        return; /* settled: nothing attached */
    if (fs->flag) {
        flow_end_record(e, f, fs->flag, why);
        rule_release(fs->flag->rule);
        free(fs->flag);
        fs->flag = NULL;
    }
    if (fs->ev)
        evflow_end(e->evp, &fs->ev);
    extract_release(&e->x, &fs->x);
    free(fs->ja4);
    fs->ja4 = NULL;
    if (e->dpi)
        dpi_release(e->dpi, &fs->dpi);
}

/* First packet of a flow: a connection to an address a flagged DNS answer named. */
static void flow_start(struct engine *e, struct flow *f, const struct dec_pkt *p)
{
    fhot(f)->bits |= FH_STARTED;
    if (e->rules && ruleset_flow_may(e->rules, &f->cli, &f->srv, f->sport))
        observe_flow(e, f, p);
    if (!e->rules || f->sport == 53 || f->cport == 53)
        return;
    const struct dnsmap_entry *de =
        dnsmap_get(attrib_dnsmap(e->attrib), &f->srv, tw_time_us(e->now));
    if (!de || !attrib_is_internal(e->attrib, &f->cli))
        return;
    struct obs ob = {.kind = NK_DNS_ANSWER,
                     .name = (const uint8_t *)de->name,
                     .len = strlen(de->name),
                     .p = p,
                     .f = f,
                     .dns = de};
    observe(e, &ob);
}

static bool is_internal(void *ud, const struct tw_addr *a)
{
    const struct engine *e = ud;
    return attrib_is_internal(e->attrib, a);
}

/* nDPI for a flow only where its label is read and ours is missing: a flagged flow (an
 * alert's, a connection to a flagged answer's address), or a TCP flow whose client bytes our
 * parsers read from its start, a proxy or STARTTLS preamble (there nDPI's label, socks, smtp,
 * says more than ours and a name may flag the flow). Stopped when our parsers name the flow
 * or are done with it (no name can flag it later); idle otherwise (seen from its middle or
 * from its server only) until a flag comes. */
static enum dpi_need dpi_need(const struct flow *f, const struct fstate *fs)
{
    if (extract_label(&fs->x))
        return DPI_STOP;
    if (fs->flag)
        return DPI_RUN;
    if (fs->x.done)
        return DPI_STOP;
    return f->proto == 6 && f->syn_seen ? DPI_RUN : DPI_IDLE;
}

/* ---------- settled flows ---------- */

/* f's extension, made again as it was when the flow settled. NULL when out of memory. */
static struct fstate *fs_get(struct engine *e, struct flow *f)
{
    if (f->ext)
        return f->ext;
    struct fstate *fs = flow_ext(e->flows, f);
    struct fhot *h = fhot(f);
    if (!fs || !(h->bits & FH_SETTLED))
        return fs;
    fs->x.app = h->xapp & 15;
    fs->x.hellos = h->xapp >> 4;
    fs->x.done = h->bits & FH_XDONE;
    fs->x.seen_set = h->bits & FH_SEEN;
    fs->x.seen_seq = h->bits & FH_SEEN ? h->seq : 0;
    if (h->bits & FH_BASE)
        stream_set_base(&fs->x.st[0], h->seq);
    fs->dpi.proto = h->dpi_proto;
    fs->dpi.done = h->bits & FH_DPI_DONE;
    if (e->evp)
        evflow_settled(&fs->ev); /* decided before it settled */
    h->bits &= (uint8_t)~FH_SETTLED;
    return fs;
}

static bool stream_idle(const struct stream *s)
{
    return !s->buf && !s->len && !s->n_isl && !s->h.bytes && !s->h.lost;
}

/* True when fs holds nothing the record cannot say: the extractor is done with the flow, or
 * it waits with empty buffers for a UDP flow's next DNS message, for a TCP flow's next
 * client bytes after a ClientHello or a request, or for a new TCP flow's first bytes (the
 * client stream's base from the SYN at most); nDPI not running; no flag, no JA4. */
static bool can_settle(const struct flow *f, const struct fstate *fs)
{
    static const struct pre_state pre0;
    const struct xflow *x = &fs->x;
    const struct stream *s0 = &x->st[0];
    if (fs->flag || fs->ja4 || fs->dpi.live)
        return false;
    if (f->proto == 6 && x->pend)
        return false; /* requests wait for their responses' status (rules on sc-status) */
    if (x->done)
        return true;
    if (f->proto == 17)
        return x->app == XAPP_DNS && !x->quic && !x->qh.bytes;
    if (f->sport == 53 || f->cport == 53 || !stream_idle(s0) || !stream_idle(&x->st[1]) ||
        memcmp(&x->pre, &pre0, sizeof(pre0)) != 0)
        return false; /* the extractor reads both directions there, or has bytes */
    if (x->app == XAPP_TLS || x->app == XAPP_HTTP)
        return !s0->base_set;
    /* a flow not yet named settles once closed (a SYN answered by a RST: scans, floods),
     * not at every packet of a handshake; the server stream's base would be lost, and it
     * matters if the flow turns out to be DNS */
    return x->app == XAPP_UNKNOWN && (f->rst_seen || f->fin_seen == 3) && !x->seen_set &&
           !x->st[1].base_set && s0->base_set == s0->base_fixed;
}

/* After each packet: a flow that can settle gives its extension back, its few lasting facts
 * copied into the record; most of a flow's packets (bulk data) then cost a lookup and the
 * counters, and the extensions in use follow the flows still being parsed. */
static void fs_settle(struct engine *e, struct flow *f, struct fstate *fs)
{
    if (!can_settle(f, fs))
        return;
    const struct xflow *x = &fs->x;
    struct fhot *h = fhot(f);
    h->xapp = (uint8_t)(x->app | (x->hellos > 3 ? 3 : x->hellos) << 4);
    h->dpi_proto = fs->dpi.proto;
    h->seq = x->seen_set ? x->seen_seq : x->st[0].base_set ? x->st[0].base_seq : 0;
    h->bits = (uint8_t)((h->bits & FH_STARTED) | FH_SETTLED | (x->done ? FH_XDONE : 0) |
                        (fs->dpi.done ? FH_DPI_DONE : 0) | (x->seen_set ? FH_SEEN : 0) |
                        (!x->done && x->st[0].base_set ? FH_BASE : 0));
    if (!stream_idle(&x->st[0]) || !stream_idle(&x->st[1]) || x->quic || x->qh.bytes)
        extract_release(&e->x, &fs->x); /* a done flow's leftovers; nDPI holds nothing */
    if (fs->ev) /* not flagged: its early packets are not wanted (evidence.h) */
        evflow_end(e->evp, &fs->ev);
    flow_ext_drop(e->flows, f);
}

/* A packet of a settled flow without its extension. False when the parsers need the packet
 * (the caller makes the extension again); true when it is handled: a UDP DNS flow's message
 * goes to the DNS handler as the extractor would send it, anything else has nothing for the
 * parsers (the extractor's own early returns for it, tcp_packet and udp_packet). */
static bool settled_packet(struct engine *e, struct flow *f, const struct dec_pkt *p, int dir)
{
    const struct fhot *h = fhot(f);
    if (!(h->bits & FH_SETTLED))
        return false;
    if (p->proto == 17) {
        if ((h->xapp & 15) == XAPP_DNS && p->payload_len)
            dns_message(e, p, f, p->payload, p->payload_len);
        return true;
    }
    if (h->bits & FH_XDONE)
        return true;
    return !(p->tcp_flags & TW_TH_SYN) && (p->payload_len == 0 || dir == 1);
}

/* ---------- the packet path ---------- */

/* No name can flag the flow any more (its evidence need not keep its first packets): our
 * parsers are done, or read the name that decides (a ClientHello's SNI, which a second hello
 * after HelloRetryRequest repeats; an HTTP connection's first request: a keep-alive request flagged
 * later gets its pcap from its flag on); a DNS flow is never flagged (its packets reach incidents
 * through the DNS store, evidence.h). */
static bool ev_decided(const struct flow *f, const struct fstate *fs)
{
    const struct xflow *x = &fs->x;
    return x->done || x->hellos || (x->app == XAPP_HTTP && x->seen_set) || f->sport == 53 ||
           f->cport == 53;
}

/* Packet time drives expiry; one bogus far-future timestamp (a day ahead) must not stop every
 * later expiry, so such a jump is ignored and counted. */
static void advance_clock(struct engine *e, const struct pcap_pkthdr *h)
{
    struct tw_time ts = {h->ts.tv_sec, (int32_t)h->ts.tv_usec};
    if (tw_time_us(ts) > tw_time_us(e->now)) {
        if (e->now.sec && ts.sec - e->now.sec > 86400)
            e->st.time_jumps++;
        else
            e->now = ts;
    }
    e->x.pool.now_us = tw_time_us(e->now); /* stalled reassembly is judged in packet time */
    if (tw_time_us(e->now) - e->last_tick_us >= 1000000)
        engine_tick(e, e->now);
}

/* An IP fragment: false until the reassembler completes the datagram, then p holds its
 * transport. */
static bool defragment(struct engine *e, struct dec_pkt *p, int *r)
{
    const uint8_t *d;
    uint32_t len;
    int fr = frag_add(e->frag, p, e->now, &d, &len);
    if (fr != 1) {
        if (fr == TW_ELIMIT)
            e->st.frag_limit++;
        e->st.dec[DEC_FRAG]++;
        return false;
    }
    *r = dec_transport(p->proto, d, len, len, p);
    return true;
}

/* One packet in order, already decoded into p (r: dec_packet's verdict); hp: its flow hash
 * when the caller computed it. */
static void packet_decoded(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *data,
                           int r, struct dec_pkt *p, const uint64_t *hp)
{
    e->frame++;
    e->cur_h = h;
    e->cur_data = data;
    e->st.packets++;
    e->st.bytes += h->len;
    advance_clock(e, h);
    fleet_apply(e);
    if (r == DEC_FRAG) {
        if (!defragment(e, p, &r))
            return;
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
    if (e->evp && !(fhot(f)->bits & FH_SETTLED)) { /* a settled flow was decided (evidence.h) */
        if (!fs && !(fs = fs_get(e, f))) {
            e->st.flow_alloc_fail++;
            return;
        }
        evflow_packet(e->evp, &fs->ev, h, data); /* before anything can flag the flow */
    }
    if (!(fhot(f)->bits & FH_STARTED)) {
        flow_start(e, f, p);
        fs = f->ext;
    }
    if (!fs && settled_packet(e, f, p, dir)) {
        if (!(fs = f->ext))
            return; /* a settled flow: a lookup and its counters */
    } else {
        if (!fs && !(fs = fs_get(e, f))) {
            e->st.flow_alloc_fail++;
            return;
        }
        extract_packet(&e->x, &fs->x, p, f, dir);
    }
    if (e->dpi && !fs->dpi.done)
        dpi_step(e->dpi, &fs->dpi, p->l3, p->l3_len, p->payload_len, tw_time_us(e->now),
                 dpi_need(f, fs));
    if (fs->ev && !fs->flag && ev_decided(f, fs))
        evflow_decided(e->evp, &fs->ev); /* its early packets are freed */
    fs_settle(e, f, fs);
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

/* True when a and b have one flow key (either direction): b's flow hash is a's. */
static bool same_flow(const struct dec_pkt *a, const struct dec_pkt *b)
{
    if (a->proto != b->proto || a->vlan != b->vlan)
        return false;
    if (a->sport == b->sport && a->dport == b->dport)
        return tw_addr_eq(&a->src, &b->src) && tw_addr_eq(&a->dst, &b->dst);
    return a->sport == b->dport && a->dport == b->sport && tw_addr_eq(&a->src, &b->dst) &&
           tw_addr_eq(&a->dst, &b->src);
}

static void batch(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *const *data,
                  size_t k)
{
    struct dec_pkt p[ENGINE_BATCH];
    int r[ENGINE_BATCH];
    uint64_t hs[ENGINE_BATCH];
    bool hv[ENGINE_BATCH];
    for (size_t i = 0; i < k; i++) {
        r[i] = dec_packet(e->dlt, data[i], h[i].caplen, &p[i]);
        hv[i] = r[i] == DEC_OK && (p[i].proto == 6 || p[i].proto == 17);
        if (!hv[i])
            continue;
        if (i > 0 && hv[i - 1] && same_flow(&p[i], &p[i - 1])) {
            hs[i] = hs[i - 1]; /* a burst of one flow: hashed once, already fetched */
            continue;
        }
        hs[i] = flow_hash(e->flows, &p[i]);
        flow_prefetch(e->flows, hs[i], 0);
    }
    for (size_t i = 0; i < k; i++) {
        if (i + FLOW_AHEAD < k && hv[i + FLOW_AHEAD])
            flow_prefetch(e->flows, hs[i + FLOW_AHEAD], 1);
        packet_decoded(e, &h[i], data[i], r[i], &p[i], hv[i] ? &hs[i] : NULL);
    }
}

void engine_packets(struct engine *e, const struct pcap_pkthdr *h, const uint8_t *const *data,
                    size_t n)
{
    while (n > 0) {
        size_t k = n < ENGINE_BATCH ? n : ENGINE_BATCH;
        batch(e, h, data, k);
        h += k;
        data += k;
        n -= k;
    }
}

void engine_skip_frame(struct engine *e)
{
    e->frame++;
}

/* ---------- sensor health ---------- */

/* Resource i's pressure notes, and what its health record names it by. */
static struct pressure *res_pressure(struct engine *e, int i, struct alert_health *h)
{
    const struct tw_cfg *c = e->cfg;
    static const char *const names[RES__N] = {"reassembly", "quic_state", "flow_table", "fragments",
                                              "ndpi",       "dns_map",    "dedup"};
    static const char *const keys[RES__N] = {
        "flow.reasm_total_mib", "flow.reasm_total_mib", "flow.max_flows", "flow.frag_max",
        "flow.ndpi_max_flows",  "alert.dns_map_max",    "alert.dedup_max"};
    const uint64_t limits[RES__N] = {
        c->flow.reasm_total_mib, c->flow.reasm_total_mib, c->flow.max_flows, c->flow.frag_max,
        c->flow.ndpi_max_flows,  c->alert.dns_map_max,    c->alert.dedup_max};
    h->resource = names[i];
    h->config_key = keys[i];
    h->limit = limits[i];
    switch (i) {
    case RES_REASM:
    case RES_QUIC:
        return &e->x.pool.pr[i == RES_QUIC ? REASM_OTHER : REASM_STREAM];
    case RES_FLOWS:
        return e->flows ? flow_pressure(e->flows) : NULL;
    case RES_FRAG:
        return frag_pressure(e->frag);
    case RES_NDPI:
        return dpi_pressure(e->dpi);
    case RES_DNSMAP:
        return dnsmap_pressure(attrib_dnsmap(e->attrib));
    default:
        return rec_dedup_pressure(e->rec);
    }
}

/* A resource_pressure record for each resource that refused or reclaimed since its last
 * one, at most one per alert.health_interval_s of packet time (every pending one when
 * final). */
static void engine_health(struct engine *e, bool final)
{
    int64_t now = tw_time_us(e->now), every = (int64_t)e->cfg->alert.health_interval_s * 1000000;
    for (int i = 0; i < RES__N; i++) {
        struct alert_health h;
        memset(&h, 0, sizeof(h));
        struct pressure *p = res_pressure(e, i, &h);
        if (!p || !pressure_pending(p) ||
            (!final && e->health_at[i] && now - e->health_at[i] < every))
            continue;
        struct pressure_src top[ALERT_HEALTH_TOP];
        h.refused = p->refused;
        h.reclaimed = p->reclaimed;
        h.noted = p->noted;
        h.n_top = pressure_top(p, top, ALERT_HEALTH_TOP);
        for (int k = 0; k < h.n_top; k++) {
            h.top[k].addr = top[k].addr;
            h.top[k].count = top[k].count;
            h.top[k].err = top[k].err;
        }
        rec_health(e->rec, &h, e->now);
        pressure_clear(p);
        e->health_at[i] = now;
    }
}

void engine_prepare(struct engine *e)
{
    if (e->dpi)
        (void)dpi_prepare(e->dpi);
}

void engine_tick(struct engine *e, struct tw_time now)
{
    if (tw_time_us(now) > tw_time_us(e->now))
        e->now = now;
    flow_expire(e->flows, e->now, 0);
    frag_expire(e->frag, e->now);
    engine_health(e, false);
    rec_tick(e->rec, e->now, false);
    fleet_apply(e);
    e->last_tick_us = tw_time_us(e->now);
}

/* ---------- life cycle ---------- */

/* The capture thread's evidence part (evidence.h), with evidence.dir. */
static int engine_evpool(struct engine *e, const struct tw_cfg *c)
{
    struct evpool_opts eo = {c->evidence.early_packets, c->evidence.early_kib * 1024u,
                             c->evidence.early_total_mib << 20, c->evidence.max_flow_mib << 20};
    e->evp = evpool_new(e->o.evw, &eo);
    return e->evp ? TW_OK : TW_ENOMEM;
}

/* The parts of an engine, each owning its state (see their headers). */
static int engine_parts(struct engine *e, const struct tw_cfg *c)
{
    struct flow_opts fo = {c->flow.max_flows,     c->flow.idle_timeout_s,
                           c->flow.udp_timeout_s, c->flow.tcp_close_timeout_s,
                           sizeof(struct fstate), true};
    struct recorder_opts ro = {c,
                               e->o.alerts_out,
                               e->o.pub,
                               e->o.schema,
                               e->o.log,
                               e->o.verbosity,
                               e->o.alerts_sink,
                               e->o.fleet,
                               rec_evidence,
                               e,
                               true};
    struct extract_ops xo = {observe, dns_message, e, wants_responses};
    e->flows = flow_table_new(&fo, flow_end, e);
    e->frag = frag_new(c->flow.frag_max, (uint64_t)c->flow.frag_max * 4096, c->flow.frag_timeout_s);
    e->attrib = attrib_new(c->alert.dns_map_max);
    e->rec = rec_new(&ro);
    e->sum = summary_new();
    e->allow_counts = calloc(CFG_MAX_LIST + 1, sizeof(uint64_t));
    if (e->o.evw && engine_evpool(e, c) != TW_OK)
        return TW_ENOMEM;
    if (c->flow.ndpi)
        e->dpi = dpi_new(c->flow.ndpi_max_flows, c->flow.ndpi_packets, c->flow.stall_ms);
    if (extract_init(&e->x, &xo, c->flow.reasm_bytes, c->flow.reasm_total_mib, c->flow.stall_ms,
                     c->flow.reasm_source_pct) != TW_OK ||
        !e->flows || !e->frag || !e->attrib || !e->rec || !e->sum || !e->allow_counts)
        return TW_ENOMEM;
    return TW_OK;
}

struct engine *engine_new(const struct engine_opts *o, const struct ruleset *rules, char *err,
                          size_t errlen)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->o = *o;
    e->cfg = o->cfg;
    e->rules = ruleset_hold(rules);
    if (engine_parts(e, o->cfg) != TW_OK) {
        snprintf(err, errlen, "cannot allocate the flow table and maps (check flow.max_flows)");
        engine_free(e);
        return NULL;
    }
    if (attrib_configure(e->attrib, o->cfg) != TW_OK) {
        snprintf(err, errlen, "bad internal network list");
        engine_free(e);
        return NULL;
    }
    return e;
}

void engine_begin_input(struct engine *e, const char *file, int dlt, bool print_header)
{
    e->file = file;
    e->dlt = dlt;
    e->frame = 0;
    rec_set_file(e->rec, file);
    if (print_header && e->o.names_out)
        fprintf(e->o.names_out, "# file\t%s\n", file ? file : "-");
    if (e->evp)
        evpool_set_dlt(e->evp, dlt);
}

void engine_finish(struct engine *e)
{
    if (!e || !e->flows)
        return;
    engine_health(e, true); /* what the last interval gave up, before the flows end */
    e->final_bound = flow_table_bound(e->flows);
    flow_stats(e->flows, &e->final_flows);
    flow_table_free(e->flows); /* ends every flow: flow-end records */
    e->flows = NULL;
    rec_tick(e->rec, e->now, true);
    rec_drain(e->rec); /* every record with the alerts file's writer and the publisher */
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    flow_table_free(e->flows); /* before the parts its end callback uses */
    frag_free(e->frag);
    attrib_free(e->attrib);
    rec_free(e->rec);
    summary_free(e->sum);
    evpool_free(e->evp);
    dpi_free(e->dpi);
    extract_fini(&e->x);
    free(e->allow_counts);
    /* after the flows and incidents that hold rules of these sets */
    if (__atomic_load_n(&e->pending, __ATOMIC_ACQUIRE))
        ruleset_release(e->pending_rules);
    ruleset_release(e->rules);
    free(e);
}

/* ---------- updates from the main thread ---------- */

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

int engine_post_update(struct engine *e, const struct ruleset *rules, const struct tw_cfg *cfg)
{
    if (!engine_update_idle(e, 2000))
        return TW_ELIMIT;                   /* the worker is not taking updates (stopped?) */
    e->pending_rules = ruleset_hold(rules); /* handed over in engine_apply_update */
    e->pending_cfg = cfg;
    __atomic_store_n(&e->pending, 1, __ATOMIC_RELEASE);
    return TW_OK;
}

void engine_apply_update(struct engine *e)
{
    if (!__atomic_load_n(&e->pending, __ATOMIC_ACQUIRE))
        return;
    if (e->pending_cfg && engine_set_cfg(e, e->pending_cfg) != TW_OK && e->o.log)
        fprintf(e->o.log, "tunnelwatch: worker kept its configuration (out of memory)\n");
    if (e->pending_rules) {
        ruleset_release(e->rules);
        e->rules = e->pending_rules;
    }
    __atomic_store_n(&e->pending, 0, __ATOMIC_RELEASE);
}

void engine_set_dlt(struct engine *e, int dlt)
{
    e->dlt = dlt;
    if (e->evp)
        evpool_set_dlt(e->evp, dlt);
}

void engine_set_rules(struct engine *e, const struct ruleset *rules)
{
    ruleset_hold(rules);
    ruleset_release(e->rules);
    e->rules = rules;
}

int engine_set_cfg(struct engine *e, const struct tw_cfg *cfg)
{
    int r = attrib_configure(e->attrib, cfg);
    if (r != TW_OK)
        return r;
    /* the allowlist counters start again for the new entries (the array is sized for the
     * largest allowlist once, so a stats reader never sees it reallocated) */
    memset(e->allow_counts, 0, (CFG_MAX_LIST + 1) * sizeof(uint64_t));
    e->cfg = cfg;
    rec_set_cfg(e->rec, cfg);
    return TW_OK;
}

/* ---------- results ---------- */

uint64_t engine_alerts(const struct engine *e)
{
    struct recorder_stats rs;
    rec_stats(e->rec, &rs);
    return rs.alerts;
}

void engine_record_stats(const struct engine *e, struct recorder_stats *st)
{
    rec_stats(e->rec, st);
}

void engine_summary(const struct engine *e, FILE *out, FILE *json_out)
{
    summary_print(e->sum, out, json_out);
}

static void stats_flows(const struct engine *e, struct tw_stats *st)
{
    struct flow_stats fst = e->final_flows;
    if (e->flows)
        flow_stats(e->flows, &fst);
    struct frag_stats frs;
    frag_stats(e->frag, &frs);
    stats_put(st, "fragments", false, frs.fragments);
    stats_put(st, "fragments_reassembled", false, frs.reassembled);
    stats_put(st, "fragments_limit", false, frs.limit);
    stats_put(st, "fragments_evicted", false, frs.evicted);
    stats_put(st, "flows_active", true, fst.active);
    stats_put(st, "flows_created", false, fst.created);
    stats_put(st, "flows_evicted", false, fst.evicted);
    stats_put(st, "flows_expired", false, fst.expired + fst.closed);
    stats_put(st, "flows_peak", true, fst.peak);
    stats_put(st, "flows_ext_active", true, fst.ext_active);
    stats_put(st, "flows_ext_peak", true, fst.ext_peak);
    stats_put(st, "flow_table_bound_bytes", true,
              e->flows ? flow_table_bound(e->flows) : e->final_bound);
}

static void stats_names(const struct engine *e, struct tw_stats *st)
{
    char k[64];
    for (int i = 0; i < NK__COUNT; i++) {
        snprintf(k, sizeof(k), "names_%s", name_kind_str((enum name_kind)i));
        stats_put(st, k, false, e->st.names[i]);
    }
    stats_put(st, "parse_errors_dns", false, e->st.err_dns);
    stats_put(st, "parse_errors_tls", false, e->x.st.err_tls);
    stats_put(st, "parse_errors_quic", false, e->x.st.err_quic);
    stats_put(st, "parse_errors_http", false, e->x.st.err_http);
    stats_put(st, "reassembly_limit", false, e->x.st.reasm_limit);
    stats_put(st, "http_responses_lost", false, e->x.st.http_pend_lost);
    stats_put(st, "reassembly_reclaimed", false, e->x.pool.reclaimed[REASM_STREAM]);
    stats_put(st, "reassembly_refused_source", false, e->x.pool.refused_src[REASM_STREAM]);
    stats_put(st, "quic_state_reclaimed", false, e->x.pool.reclaimed[REASM_OTHER]);
    stats_put(st, "dns_answers_mapped", false, e->st.dns_answers_mapped);
    stats_put(st, "dns_map_entries", true, dnsmap_size(attrib_dnsmap(e->attrib)));
    stats_put(st, "dns_map_evictions", false, dnsmap_evictions(attrib_dnsmap(e->attrib)));
}

static void stats_records(const struct engine *e, struct tw_stats *st)
{
    struct recorder_stats rs;
    struct dpi_stats ds;
    rec_stats(e->rec, &rs);
    dpi_stats(e->dpi, &ds);
    stats_put(st, "rule_hits", false, e->st.hits);
    stats_put(st, "alerts_raised", false, rs.alerts);
    stats_put(st, "alerts_updates", false, rs.updates);
    stats_put(st, "alerts_suppressed", false, rs.suppressed);
    stats_put(st, "external_events", false, rs.external);
    stats_put(st, "flow_end_records", false, rs.flow_ends);
    stats_put(st, "records_dropped", false, rs.dropped);
    stats_put(st, "output_errors", false, rs.output_errors);
    stats_put(st, "timestamp_jumps_ignored", false, e->st.time_jumps);
    stats_put(st, "dedup_evictions", false, rec_dedup_evictions(e->rec));
    stats_put(st, "ndpi_flows", false, ds.flows);
    stats_put(st, "ndpi_skipped", false, ds.skipped);
    stats_put(st, "ndpi_reclaimed", false, ds.reclaimed);
    stats_put(st, "health_records", false, rs.health);
    if (e->evp) {
        struct evpool_stats es;
        evpool_get_stats(e->evp, &es);
        stats_put(st, "evidence_early_refused", false, es.early_refused);
        stats_put(st, "evidence_early_overflow", false, es.early_overflow);
        stats_put(st, "evidence_flow_capped", false, es.flow_capped);
        stats_put(st, "evidence_early_bytes", true, es.early_bytes);
    }
    for (size_t i = 0; i < e->cfg->n_allow; i++) {
        char k[160];
        snprintf(k, sizeof(k), "allowlist_%s", e->cfg->allow[i].name ? e->cfg->allow[i].name : "?");
        stats_put(st, k, false, e->allow_counts[i]);
    }
}

void engine_stats(const struct engine *e, struct tw_stats *st)
{
    stats_put(st, "packets", false, e->st.packets);
    stats_put(st, "bytes", false, e->st.bytes);
    for (int i = 1; i < DEC__COUNT; i++) {
        char k[64];
        snprintf(k, sizeof(k), "decode_%s", dec_reason_name(i));
        stats_put(st, k, false, e->st.dec[i]);
    }
    stats_flows(e, st);
    stats_names(e, st);
    stats_records(e, st);
}

size_t engine_stats_text(const struct engine *e, char *buf, size_t n)
{
    static __thread struct tw_stats st;
    st.n = 0;
    engine_stats(e, &st);
    return stats_text(&st, buf, n);
}
