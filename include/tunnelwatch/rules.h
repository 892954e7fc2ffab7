/* rules.h - detection rules: Sigma YAML (libyaml) and local indicator lists, compiled into
 * one Aho-Corasick automaton plus a label-boundary suffix set, evaluated per observation.
 *
 * Ownership: a struct ruleset owns every rule, string and automaton it loads. It is built
 * once (ruleset_load... ruleset_build) and read-only afterwards, so a reload builds a new
 * set and swaps the pointer. Matching allocates nothing; the caller owns the hit array.
 *
 * Semantics are Sigma's: case-insensitive; one trailing dot of the observed name ignored;
 * `contains` is a substring match, `startswith`/`endswith` prefix/suffix, no modifier is
 * equality; `*` and `?` are wildcards; `|all` requires every value; a value list is OR;
 * conditions: and, or, not, parentheses, `1 of X*`, `all of X*`, `1 of them`, `all of them`.
 */
#ifndef TW_RULES_H
#define TW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/tw.h"

/* What the wire shows, as Sigma fields (see README "Field mapping"). */
enum rule_field {
    RF_DEST_HOST = 1 << 0, /* DestinationHostname, dst_host, ...: SNI, QUIC SNI, HTTP Host,
                            * a DNS name bound to the destination IP, a DNS query name */
    RF_QUERY = 1 << 1,     /* QueryName, query, dns.question.name: DNS query names */
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
    struct ruleset *set; /* the set it belongs to, once built (rule_hold); NULL before */
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
size_t ruleset_rule_count(const struct ruleset *rs);
const struct rule *ruleset_rule(const struct ruleset *rs, size_t i);

/* A hit points into the rule set: valid while the set lives. To keep it longer than the
 * matching call, hold a reference (rule_hold(hit.rule)) and drop it when done. */
struct rule_hit {
    const struct rule *rule;
    const char *pattern; /* the value (as written) or listed domain that matched, the first one
                          * for a multi-selection rule; "" when the condition held without
                          * any value matching (e.g. 'not filter') */
};

/* Matches one observed name (raw bytes off the wire, any case, maybe a trailing dot) seen
 * in the given field(s). Fills up to max hits, one per rule whose condition holds; returns
 * the number of hits (>= 0). Thread-safe on a built set. */
int ruleset_match(const struct ruleset *rs, unsigned fields, const uint8_t *name, size_t len,
                  struct rule_hit *hits, size_t max);

#endif /* TW_RULES_H */
