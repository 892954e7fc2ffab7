/* rules.h - detection rules: Sigma YAML (libyaml) and local indicator lists, compiled into
 * one Aho-Corasick automaton plus a label-boundary suffix set, evaluated per observation.
 *
 * Ownership: a struct ruleset owns every rule, string and automaton it loads. It is built
 * once (ruleset_load... ruleset_build) and read-only afterwards, so a reload builds a new
 * set and swaps the pointer. Matching allocates nothing; the caller owns the hit array.
 *
 * Semantics are Sigma's: case-insensitive (unless `|cased`); one trailing dot of the observed
 * name ignored; `contains` is a substring match, `startswith`/`endswith` prefix/suffix, no
 * modifier is equality; `*` and `?` are wildcards; `|all` requires every value; a value list
 * is OR; numbers take `lt`/`lte`/`gt`/`gte`, addresses `cidr`; `null` holds when the field is
 * absent or empty, and a field the observation does not carry matches no value; conditions:
 * and, or, not, parentheses, `1 of X*`, `all of X*`, `1 of them`, `all of them`.
 *
 * Fields come from a per-logsource map (ruleset_field_map); a rule whose fields are not all in
 * the map of its logsource is not loaded (skipped with the first such field named). Each rule
 * runs on the observation kinds that carry all of its fields; string values go through the
 * shared automaton (tagged with their field), numbers, booleans and cidr are compared when
 * their rule is evaluated.
 */
#ifndef TW_RULES_H
#define TW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/tw.h"

/* What the wire shows, as Sigma fields (see README "Field mapping"; `tunnelwatch -T` prints
 * which Sigma name maps to which bit per logsource). The first two are the name fields every
 * logsource accepts; the others come with the observation (struct rule_obs). */
enum rule_field {
    RF_DEST_HOST = 1 << 0, /* DestinationHostname, dst_host, ...: SNI, QUIC SNI, HTTP Host,
                            * a DNS name bound to the destination IP, a DNS query name */
    RF_QUERY = 1 << 1,     /* QueryName, query, dns.question.name: DNS query names */
    RF_SRC_IP = 1 << 2,    /* the flow's client address (SourceIp, id.orig_h, src_ip) */
    RF_DST_IP = 1 << 3,    /* the flow's server address */
    RF_SRC_PORT = 1 << 4,
    RF_DST_PORT = 1 << 5,
    RF_PROTO = 1 << 6,      /* "tcp" | "udp" */
    RF_INITIATED = 1 << 7,  /* true: the observed client opened the flow */
    RF_SRC_V6 = 1 << 8,     /* SourceIsIpv6 */
    RF_DST_V6 = 1 << 9,     /* DestinationIsIpv6 */
    RF_QTYPE = 1 << 10,     /* DNS query type by name: "A", "TXT", ... */
    RF_EVENT_ID = 1 << 11,  /* Windows dns-client EventID: 3008 on every DNS query */
    RF_METHOD = 1 << 12,    /* HTTP request method */
    RF_URL = 1 << 13,       /* c-uri: the request URL, "http://" Host target for origin-form */
    RF_URI = 1 << 14,       /* zeek uri: the request-target as sent */
    RF_URI_STEM = 1 << 15,  /* the target's path (before '?') */
    RF_URI_QUERY = 1 << 16, /* the target's query (after '?', without it) */
    RF_URI_EXT = 1 << 17,   /* the extension of the path's last segment, without the dot */
    RF_UA = 1 << 18,        /* User-Agent header */
    RF_HTTP_HOST = 1 << 19, /* cs-host: HTTP Host header, or the SNI of a TLS/QUIC hello */
    RF_COOKIE = 1 << 20,
    RF_REFERER = 1 << 21,
    RF_STATUS = 1 << 22, /* HTTP response status (ROK_HTTP_RESPONSE only) */
};
#define RF__BITS 23

/* What one observation is: a name the parsers saw (in the order of extract.h's enum
 * name_kind, so the engine may convert by value), or the first packet of a flow. */
enum rule_obs_kind {
    ROK_DNS_QUERY,
    ROK_TLS_SNI,
    ROK_QUIC_SNI,
    ROK_HTTP_REQUEST,
    ROK_DNS_ANSWER, /* a flow to an address a flagged DNS answer named */
    ROK_PROXY_TARGET,
    ROK_FLOW,          /* a new flow (no name) */
    ROK_HTTP_RESPONSE, /* an HTTP request again, when its response head (status) arrives */
    ROK__COUNT
};

/* A view of bytes off the wire; p NULL: the field is absent. */
struct rule_span {
    const uint8_t *p;
    size_t n;
};

/* What the wire shows at one observation. Everything is borrowed for the call. */
struct rule_obs {
    enum rule_obs_kind kind;
    unsigned name_fields; /* RF_DEST_HOST and/or RF_QUERY: which fields the name fills */
    const uint8_t *name;  /* any case, maybe a trailing dot; NULL/0 for ROK_FLOW */
    size_t name_len;
    bool has_flow;  /* the 5-tuple below is known (client -> server) */
    bool initiated; /* the client is the host that opened the flow (every client-side obs) */
    struct tw_addr src, dst;
    uint16_t sport, dport;
    uint8_t proto;  /* IP protocol number */
    uint16_t qtype; /* DNS query type, 0 unknown */
    struct rule_span method, target, user_agent, host, cookie, referer; /* HTTP request */
    int status; /* HTTP response status, 0 unknown */
};

/* What to do with a rule the sensor cannot apply (unsupported construct, unknown field). */
enum rule_policy {
    RULE_POLICY_ERROR = 0, /* loading fails (exit 2 under --check-config) */
    RULE_POLICY_SKIP = 1,  /* a warning naming file, rule and construct; rule skipped */
};

struct rule {
    char *id; /* Sigma id (UUID) */
    char *title;
    char *level; /* informational | low | medium | high | critical */
    char *status;
    char *description;
    char *author;
    char *file;  /* path it was loaded from */
    char **tags; /* as written, e.g. attack.t1572 */
    size_t n_tags;
    char **techniques; /* from attack.tNNNN[.NNN] tags, upper-cased: T1572, T1568.002 */
    size_t n_techniques;
    char **falsepositives;
    size_t n_falsepositives;
    unsigned fields;     /* enum rule_field bits the rule looks at */
    bool relaxed;        /* filters on process fields were dropped (rules.unobservable_filters =
                          * "drop"); level is already one step lower than written */
    struct ruleset *set; /* the set it belongs to, once built (rule_hold); NULL before */
    char *ecs_json;      /* its ECS rule fields as one JSON fragment, rendered once by
                          * alert_prepare_rules (owned by the set); NULL: written one by one */
    size_t ecs_json_len;
};

struct ruleset; /* opaque */

struct ruleset_summary {
    size_t rules, patterns, files, skipped;
    unsigned fields; /* union of rule_field bits */
};

/* Reference-counted: ruleset_new returns a set with one reference, ruleset_free drops one and
 * frees the set with the last. Anything that keeps a set, or a rule or hit pointer into it,
 * past the call that gave it (an engine, a flagged flow, an incident) holds a reference, so a
 * replaced set lives exactly as long as something still points into it. The count is atomic:
 * capture workers take and drop references on their own threads. */
struct ruleset *ruleset_new(enum rule_policy policy);
/* rules.unobservable_filters = "drop": a rule whose filters (selections only negated in its
 * condition) use process fields (Image, ParentImage, CommandLine, User, ...) loads without
 * those filters, relaxed, one level lower. Default (false): such a rule is skipped. Call
 * before loading. */
void ruleset_set_drop_filters(struct ruleset *rs, bool drop);
void ruleset_free(struct ruleset *rs);
/* One more reference (NULL: nothing); returns rs. */
struct ruleset *ruleset_hold(const struct ruleset *rs);
/* ruleset_free through a const pointer (a holder's view of the set). */
void ruleset_release(const struct ruleset *rs);
/* A reference to the built set r belongs to (r may be NULL, or a rule outside any built set:
 * nothing), returns r; rule_release drops it. */
const struct rule *rule_hold(const struct rule *r);
void rule_release(const struct rule *r);

/* Loads a Sigma .yml/.yaml file, an indicator list (.txt: one domain per line, matched as
 * that domain or any subdomain; header comments give its id/title/level/tags), or every
 * such file in a folder (name order, not recursive into hidden entries). Errors and warnings
 * go to err as one line each, naming the file, the rule and the construct. Returns the number
 * of rules loaded (>= 0) or a negative TW_E* code (TW_ECONF under RULE_POLICY_ERROR). */
int ruleset_load(struct ruleset *rs, const char *path, FILE *err) TW_WUR;

/* As ruleset_load, from memory: name is used in messages and picks the format (a name
 * ending in .txt is an indicator list, anything else Sigma YAML). For tests and fuzzers. */
int ruleset_load_mem(struct ruleset *rs, const char *name, const uint8_t *data, size_t len,
                     FILE *err) TW_WUR;

/* Builds the automaton. No more loads afterwards. */
int ruleset_build(struct ruleset *rs) TW_WUR;

void ruleset_summary(const struct ruleset *rs, struct ruleset_summary *out);
/* The distinct reasons rules were skipped for (RULE_POLICY_SKIP), in first-seen order, with
 * how many rules each: one per call, i from 0; false past the end. */
bool ruleset_skip_reason(const struct ruleset *rs, size_t i, const char **reason, size_t *count);
size_t ruleset_rule_count(const struct ruleset *rs);
const struct rule *ruleset_rule(const struct ruleset *rs, size_t i);
/* Gives rule i its pre-rendered ECS fields (json: malloc'd, n bytes, NUL-terminated; the set
 * owns it from here). Only before the set is shared with other threads. */
void ruleset_set_ecs_json(struct ruleset *rs, size_t i, char *json, size_t n);

/* A hit points into the rule set: valid while the set lives. To keep it longer than the
 * matching call, hold a reference (rule_hold(hit.rule)) and drop it when done. */
struct rule_hit {
    const struct rule *rule;
    const char *pattern; /* the value (as written) or listed domain that matched, the first one
                          * for a multi-selection rule; "" when the condition held without
                          * any value matching (e.g. 'not filter') */
    unsigned fields;     /* enum rule_field bits of the items that held (what the alert shows) */
    bool relaxed;        /* rule->relaxed: the alert says tunnelwatch.rule_relaxed */
};

/* Matches one observed name (raw bytes off the wire, any case, maybe a trailing dot) seen
 * in the given field(s). Fills up to max hits, one per rule whose condition holds; returns
 * the number of hits (>= 0). Thread-safe on a built set. */
int ruleset_match(const struct ruleset *rs, unsigned fields, const uint8_t *name, size_t len,
                  struct rule_hit *hits, size_t max);

/* Matches one observation: every rule whose logsource allows its kind and whose condition
 * holds on what it carries. ruleset_match is this with a name-only observation of any name
 * kind. Returns the number of hits (>= 0). Thread-safe on a built set. */
int ruleset_match_obs(const struct ruleset *rs, const struct rule_obs *ob, struct rule_hit *hits,
                      size_t max);

/* True when some rule is evaluated on observations of this kind (ROK_FLOW: lets the engine
 * skip building flow observations when no rule wants them). */
bool ruleset_wants(const struct ruleset *rs, enum rule_obs_kind kind);
/* Whether a rule on flow facts may hold on a new flow from src to dst, port dport: false when
 * the union of the flow rules' port and address gates shuts it out (most flows, when every
 * such rule is gated), so that the caller need not build an observation (ROK_FLOW) for it;
 * ruleset_match_obs decides the rest. False without rules on flows. */
bool ruleset_flow_may(const struct ruleset *rs, const struct tw_addr *src,
                      const struct tw_addr *dst, uint16_t dport);

/* The field map: Sigma name, logsources (written to ls: "any" or a comma-separated list such
 * as "network_connection", "zeek/dns,zeek/http") and the bit it maps to, one row per call
 * (i from 0; false past the end). */
bool ruleset_field_map(size_t i, const char **name, char *ls, size_t lsn, unsigned *bit);
/* A bit's wire fact in words ("TLS SNI, ...", "the flow's server port"). */
const char *ruleset_field_doc(unsigned bit);

/* "A", "TXT", ... for a DNS query type; NULL when it has no name here. */
const char *rule_qtype_name(uint16_t qtype);

/* --selftest-rules: for each rule, synthesizes an observation that satisfies it and one that
 * must not, from the rule's own values and modifiers, and matches both. Writes one line per
 * failing rule (and a summary) to out. Returns the number of failing rules (>= 0). */
int ruleset_selftest(const struct ruleset *rs, FILE *out);

#endif /* TW_RULES_H */
