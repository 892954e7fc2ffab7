/* cfg.c - libconfig file and --set KEY=VALUE overrides -> struct tw_cfg, with checks.
 *
 * One table (keys[]) describes every scalar and list key: its dotted path, type, where it
 * lives in struct tw_cfg and its allowed range. Loading, --set, printing and the
 * unknown-key suggestions all walk that table, so a new key is one line here plus its
 * documentation in conf/tunnelwatch.conf. The allowlist (a list of groups) is the one key
 * with its own reader. Values travel through a small neutral form (struct val) so that a
 * file value and a --set text go through the same range and syntax checks; only the type
 * check differs (a file says "1500" vs 1500, a command line cannot). Problems are never
 * fatal on the spot: each is reported as "FILE:LINE: KEY: problem" and the walk goes on, so
 * one run shows them all. The config file is trusted input (root writes it), but it is
 * still parsed defensively: every list is capped at CFG_MAX_LIST and every path buffer is
 * bounded, because a typo must give a message, never a crash.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tunnelwatch/cfg.h"

enum ktype {
    K_STR,     /* char *, "" kept as "" */
    K_OSTR,    /* optional char *, "" -> NULL */
    K_INT,     /* int */
    K_U32,     /* uint32_t */
    K_U64,     /* uint64_t */
    K_LONG,    /* long */
    K_BOOL,    /* bool */
    K_STRS,    /* char *[CFG_MAX_LIST] + size_t count; rules.paths only resolve relative */
    K_CIDRS,   /* struct cfg_cidr[] + count */
    K_ADDRS,   /* struct tw_addr[] + count */
    K_UNSUP,   /* "error" | "skip" -> rules.skip_unsupported */
    K_FILTERS, /* "skip" | "drop" -> rules.drop_process_filters */
    K_MODES,   /* ["stream","channel","list"] -> redis.mode_* */
    K_ALLOW,   /* allowlist: own reader, not settable with --set */
};

/* A string check: NULL when fine, else the problem. */
typedef const char *(*str_check_fn)(const char *s);

struct key {
    const char *path;
    enum ktype type;
    size_t off;   /* offsetof the field */
    size_t n_off; /* offsetof the count, lists only */
    long long min, max;
    str_check_fn check;
};

static const char *check_name(const char *s);
static const char *check_schema(const char *s);
static const char *check_external(const char *s);
static const char *check_external(const char *s)
{
    return strcmp(s, "event") == 0 || strcmp(s, "alert") == 0
               ? NULL
               : "unknown value (use \"event\" or \"alert\")";
}

static const char *check_url(const char *s);
static const char *check_listen(const char *s);
static const char *check_rkey(const char *s);
static const char *check_hostport(const char *s);

#define OFF(f) offsetof(struct tw_cfg, f)
#define KS(p, f, c)                                                                                \
    {                                                                                              \
        p, K_STR, OFF(f), 0, 0, 0, c                                                               \
    }
#define KO(p, f, c)                                                                                \
    {                                                                                              \
        p, K_OSTR, OFF(f), 0, 0, 0, c                                                              \
    }
#define KN(p, t, f, lo, hi)                                                                        \
    {                                                                                              \
        p, t, OFF(f), 0, lo, hi, NULL                                                              \
    }
#define KB(p, f)                                                                                   \
    {                                                                                              \
        p, K_BOOL, OFF(f), 0, 0, 1, NULL                                                           \
    }
#define KL(p, t, f, n)                                                                             \
    {                                                                                              \
        p, t, OFF(f), OFF(n), 0, CFG_MAX_LIST, NULL                                                \
    }
/* A string list whose items are checked (not paths: never resolved against the file's folder) */
#define KLC(p, f, n, c)                                                                            \
    {                                                                                              \
        p, K_STRS, OFF(f), OFF(n), 0, CFG_MAX_LIST, c                                              \
    }

/* Order = print order; a group's keys stay together, a subgroup's keys come last. */
static const struct key keys[] = {
    KS("sensor.name", sensor_name, check_name),
    KO("capture.interface", capture.interface, NULL),
    KO("capture.bpf", capture.bpf, NULL),
    KN("capture.snaplen", K_INT, capture.snaplen, 96, 262144),
    KN("capture.buffer_mib", K_INT, capture.buffer_mib, 1, 4096),
    KB("capture.promiscuous", capture.promisc),
    KB("capture.immediate", capture.immediate),
    KN("capture.workers", K_INT, capture.workers, 1, 64),
    KL("networks.internal", K_CIDRS, internal, n_internal),
    KL("networks.resolvers", K_ADDRS, resolvers, n_resolvers),
    KL("rules.paths", K_STRS, rules.paths, rules.n_paths),
    {"rules.on_unsupported", K_UNSUP, OFF(rules.skip_unsupported), 0, 0, 0, NULL},
    KB("rules.dns_query_as_destination", rules.dns_query_as_destination),
    {"rules.unobservable_filters", K_FILTERS, OFF(rules.drop_process_filters), 0, 0, 0, NULL},
    {"allowlist", K_ALLOW, OFF(allow), OFF(n_allow), 0, CFG_MAX_LIST, NULL},
    KN("flow.max_flows", K_U32, flow.max_flows, 1024, 1 << 26),
    KN("flow.idle_timeout_s", K_U32, flow.idle_timeout_s, 1, 86400),
    KN("flow.tcp_close_timeout_s", K_U32, flow.tcp_close_timeout_s, 1, 3600),
    KN("flow.udp_timeout_s", K_U32, flow.udp_timeout_s, 1, 86400),
    KN("flow.reasm_bytes", K_U32, flow.reasm_bytes, 512, 1 << 20),
    KN("flow.reasm_total_mib", K_U64, flow.reasm_total_mib, 1, 65536),
    KN("flow.reasm_source_pct", K_U32, flow.reasm_source_pct, 1, 100),
    KN("flow.stall_ms", K_U32, flow.stall_ms, 0, 600000),
    KN("flow.frag_max", K_U32, flow.frag_max, 1, 1 << 20),
    KN("flow.frag_timeout_s", K_U32, flow.frag_timeout_s, 1, 300),
    KB("flow.ndpi", flow.ndpi),
    KN("flow.ndpi_packets", K_U32, flow.ndpi_packets, 1, 255),
    KN("flow.ndpi_max_flows", K_U32, flow.ndpi_max_flows, 1, 1 << 24),
    KN("alert.dedup_window_s", K_U32, alert.dedup_window_s, 0, 30 * 86400),
    KN("alert.dedup_max", K_U32, alert.dedup_max, 1, 1 << 24),
    KN("alert.update_interval_s", K_U32, alert.update_interval_s, 0, 86400),
    KN("alert.health_interval_s", K_U32, alert.health_interval_s, 1, 86400),
    KN("alert.dns_map_max", K_U32, alert.dns_map_max, 1, 1 << 26),
    KN("alert.dns_ttl_cap_s", K_U32, alert.dns_ttl_cap_s, 1, 7 * 86400),
    KN("alert.dns_ttl_min_s", K_U32, alert.dns_ttl_min_s, 0, 86400),
    KS("alert.external", alert.external, check_external),
    KB("alert.log_suppressed", log_suppressed),
    KB("alert.publish_suppressed", publish_suppressed),
    KO("output.alerts_file", output.alerts_file, NULL),
    KN("output.alerts_queue_kib", K_U32, output.alerts_queue_kib, 64, 1048576),
    KS("output.schema", output.schema, check_schema),
    KO("output.summary_file", output.summary_file, NULL),
    KO("output.evidence_file", output.evidence_file, NULL),
    KO("evidence.dir", evidence.dir, NULL),
    KN("evidence.max_total_mib", K_U64, evidence.max_total_mib, 1, 1 << 24),
    KN("evidence.max_flow_mib", K_U64, evidence.max_flow_mib, 1, 1 << 20),
    KN("evidence.early_packets", K_U32, evidence.early_packets, 0, 1024),
    KN("evidence.early_kib", K_U32, evidence.early_kib, 1, 65536),
    KN("evidence.early_total_mib", K_U64, evidence.early_total_mib, 1, 65536),
    KN("evidence.queue_mib", K_U32, evidence.queue_mib, 1, 65536),
    KN("evidence.redis_max_kib", K_U32, evidence.redis_max_kib, 0, 512 * 1024),
    KS("evidence.redis_prefix", evidence.redis_prefix, check_rkey),
    KN("evidence.redis_ttl_s", K_U32, evidence.redis_ttl_s, 1, 365 * 86400),
    KS("redis.url", redis.url, check_url),
    KO("redis.user", redis.user, NULL),
    KO("redis.password", redis.password, NULL),
    KO("redis.password_env", redis.password_env, NULL),
    {"redis.modes", K_MODES, 0, 0, 0, 0, NULL},
    KS("redis.stream_key", redis.stream_key, check_rkey),
    KS("redis.channel_key", redis.channel_key, check_rkey),
    KS("redis.list_key", redis.list_key, check_rkey),
    KS("redis.heartbeat_prefix", redis.heartbeat_prefix, check_rkey),
    KN("redis.stream_maxlen", K_LONG, redis.stream_maxlen, 1, 1000000000),
    KN("redis.queue_max", K_U32, redis.queue_max, 1, 10000000),
    KN("redis.timeout_ms", K_U32, redis.timeout_ms, 10, 600000),
    KN("redis.heartbeat_s", K_U32, redis.heartbeat_s, 1, 3600),
    KN("redis.stop_flush_ms", K_U32, redis.stop_flush_ms, 0, 600000),
    KLC("redis.sentinels", redis.sentinels, redis.n_sentinels, check_hostport),
    KO("redis.master_name", redis.master_name, check_rkey),
    KN("redis.wait_replicas", K_U32, redis.wait_replicas, 0, 64),
    KN("redis.wait_timeout_ms", K_U32, redis.wait_timeout_ms, 1, 600000),
    KS("redis.spool.dir", redis.spool_dir, NULL),
    KN("redis.spool.max_mib", K_U64, redis.spool_max_mib, 1, 1 << 20),
    KB("fleet.enabled", fleet.enabled),
    KO("fleet.url", fleet.url, check_url),
    KS("fleet.bind_prefix", fleet.bind_prefix, check_rkey),
    KS("fleet.channel", fleet.channel, check_rkey),
    KS("fleet.incident_prefix", fleet.incident_prefix, check_rkey),
    KB("fleet.dedup", fleet.dedup),
    KN("fleet.queue_max", K_U32, fleet.queue_max, 16, 1 << 20),
    KN("fleet.sync_timeout_ms", K_U32, fleet.sync_timeout_ms, 0, 60000),
    KN("log.verbosity", K_INT, log.verbosity, -1, 3),
    KB("log.syslog", log.syslog),
    KN("log.stats_interval_s", K_U32, log.stats_interval_s, 0, 86400),
    KO("metrics.listen", metrics.listen, check_listen),
    KB("metrics.allow_remote", metrics.allow_remote),
};
#define N_KEYS TW_ARRAY_LEN(keys)
_Static_assert(TW_ARRAY_LEN(keys) <= CFG_KEY_SLOTS, "raise CFG_KEY_SLOTS in cfg.h");

static const char *const groups[] = {"sensor", "capture", "networks", "rules", "flow",
                                     "alert",  "output",  "evidence", "redis", "redis.spool",
                                     "fleet",  "log",     "metrics"};

/* Older or shorter spellings accepted in the file and by --set. */
static const struct {
    const char *alias, *path;
} aliases[] = {
    {"redis.spool_dir", "redis.spool.dir"},
    {"redis.spool_max_mib", "redis.spool.max_mib"},
    {"capture.promisc", "capture.promiscuous"},
    {"sensor_name", "sensor.name"},
};

static const char *const allow_keys[] = {"name",  "reason", "src",    "dst",
                                         "rules", "ja4",    "window", "days"};

#define PATH_MAX_KEY 160
#define MASK         "********"

/* ---- problem reporting ---- */

struct rep {
    FILE *err;
    const char *file; /* NULL: defaults */
    bool set;         /* from cfg_set: "--set KEY: problem" */
    int n;
};

__attribute__((format(printf, 4, 5))) static void problem(struct rep *r, uint32_t line,
                                                          const char *key, const char *fmt, ...)
{
    r->n++;
    if (!r->err)
        return;
    if (r->set || line == CFG_LINE_SET)
        fprintf(r->err, "--set %s: ", key);
    else if (r->file && line > 0)
        fprintf(r->err, "%s:%u: %s: ", r->file, line, key);
    else if (r->file)
        fprintf(r->err, "%s: %s: (default value) ", r->file, key);
    else
        fprintf(r->err, "%s: (default value) ", key);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->err, fmt, ap);
    va_end(ap);
    fputc('\n', r->err);
}

/* ---- small helpers ---- */

static void *field(struct tw_cfg *cfg, size_t off)
{
    return (char *)cfg + off;
}

static const void *cfield(const struct tw_cfg *cfg, size_t off)
{
    return (const char *)cfg + off;
}

static int set_str(char **dst, const char *s)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        return TW_ENOMEM;
    free(*dst);
    *dst = d;
    return TW_OK;
}

static void free_strs(char **v, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free(v[i]);
        v[i] = NULL;
    }
    *n = 0;
}

static void free_allow(struct cfg_allow *a)
{
    free(a->name);
    free(a->reason);
    free(a->window);
    free(a->days);
    free_strs(a->dst_names, &a->n_dst_names);
    free_strs(a->rules, &a->n_rules);
    free_strs(a->ja4, &a->n_ja4);
    memset(a, 0, sizeof(*a));
}

static const struct key *find_key(const char *path)
{
    for (size_t i = 0; i < TW_ARRAY_LEN(aliases); i++)
        if (strcmp(path, aliases[i].alias) == 0)
            path = aliases[i].path;
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(path, keys[i].path) == 0)
            return &keys[i];
    return NULL;
}

static bool is_group(const char *path)
{
    for (size_t i = 0; i < TW_ARRAY_LEN(groups); i++)
        if (strcmp(path, groups[i]) == 0)
            return true;
    return false;
}

static size_t key_index(const struct key *k)
{
    return (size_t)(k - keys);
}

/* Edit distance, for "did you mean". Names longer than 63 bytes are not worth a guess. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *leaf(const char *path)
{
    const char *d = strrchr(path, '.');
    return d ? d + 1 : path;
}

/* Closest known name to `path` among `cands`, or NULL when nothing is close. */
static const char *closest(const char *path, const char *const *cands, size_t n, const char *best,
                           size_t *best_d)
{
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(path, cands[i]);
        if (strcasecmp(leaf(path), leaf(cands[i])) == 0)
            d = 1; /* right name, wrong group */
        if (d < *best_d) {
            *best_d = d;
            best = cands[i];
        }
    }
    return best;
}

/* A guess is shown only when it is this close: a quarter of the name, at least 2 edits. */
static bool close_enough(const char *path, size_t d)
{
    size_t limit = strlen(path) / 4;
    return d <= (limit > 2 ? limit : 2);
}

static const char *suggest(const char *path)
{
    const char *cands[N_KEYS + TW_ARRAY_LEN(groups)];
    size_t n = 0;
    for (size_t i = 0; i < N_KEYS; i++)
        cands[n++] = keys[i].path;
    for (size_t i = 0; i < TW_ARRAY_LEN(groups); i++)
        cands[n++] = groups[i];
    size_t d = SIZE_MAX;
    const char *best = closest(path, cands, n, NULL, &d);
    return close_enough(path, d) ? best : NULL;
}

static void unknown_key(struct rep *r, uint32_t line, const char *path, const char *best)
{
    if (best)
        problem(r, line, path, "unknown key (did you mean %s?)", best);
    else
        problem(r, line, path, "unknown key");
}

/* "a string", "an integer", ...: the article goes with the name in messages. */
static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    default:
        return "a value";
    }
}

/* ---- CIDR ---- */

/* Parses "ADDR/BITS" or a bare address (a host: /32 or /128) without the host-bit check;
 * returns TW_OK, TW_EBAD. */
static int parse_cidr_loose(const char *s, struct cfg_cidr *out)
{
    char buf[TW_ADDR_STRLEN + 8];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof(buf))
        return TW_EBAD;
    memcpy(buf, s, len + 1);
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        const char *b = slash + 1;
        /* digits only: strtol would take " +8" or "0x8" */
        if (*b == '\0' || strlen(b) > 3)
            return TW_EBAD;
        for (const char *p = b; *p; p++)
            if (!isdigit((unsigned char)*p))
                return TW_EBAD;
        bits = strtol(b, NULL, 10);
    }
    memset(out, 0, sizeof(*out));
    if (tw_addr_parse(buf, &out->addr) != TW_OK)
        return TW_EBAD;
    long max = out->addr.family == 4 ? 32 : 128;
    if (bits < 0)
        bits = max;
    if (bits > max)
        return TW_EBAD;
    out->bits = (uint8_t)bits;
    return TW_OK;
}

/* Clears the host bits; returns true when some were set. */
static bool mask_host_bits(struct cfg_cidr *c)
{
    bool had = false;
    size_t nbytes = c->addr.family == 4 ? 4 : 16;
    for (size_t i = 0; i < nbytes; i++) {
        size_t first = i * 8;
        uint8_t keep;
        if (first + 8 <= c->bits)
            keep = 0xff;
        else if (first >= c->bits)
            keep = 0;
        else
            keep = (uint8_t)(0xff << (8 - (c->bits - first)));
        if (c->addr.a[i] & (uint8_t)~keep)
            had = true;
        c->addr.a[i] &= keep;
    }
    return had;
}

int cfg_parse_cidr(const char *s, struct cfg_cidr *out)
{
    if (!s || parse_cidr_loose(s, out) != TW_OK)
        return TW_EBAD;
    struct cfg_cidr c = *out;
    /* "10.1.2.3/8" is almost always a typo for a host or for 10.0.0.0/8: refuse it */
    if (mask_host_bits(&c))
        return TW_EBAD;
    return TW_OK;
}

bool cfg_cidr_contains(const struct cfg_cidr *c, const struct tw_addr *a)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *bytes = a->a;
    if (c->addr.family == 4 && a->family == 6 && memcmp(a->a, v4mapped, 12) == 0)
        bytes = a->a + 12; /* ::ffff:10.1.2.3 is the IPv4 host 10.1.2.3 */
    else if (c->addr.family != a->family || a->family == 0)
        return false;
    size_t full = c->bits / 8u;
    if (memcmp(c->addr.a, bytes, full) != 0)
        return false;
    unsigned rest = c->bits % 8u;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr.a[full] & mask) == (bytes[full] & mask);
}

static void cidr_str(const struct cfg_cidr *c, char *buf, size_t n)
{
    char a[TW_ADDR_STRLEN];
    snprintf(buf, n, "%s/%u", tw_addr_str(&c->addr, a, sizeof(a)), c->bits);
}

/* ---- string checks ---- */

static const char *check_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0)
        return "empty";
    if (n > 64)
        return "longer than 64 characters";
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
            return "use letters, digits, '.', '_' and '-' only (it becomes part of Redis keys)";
    return NULL;
}

static const char *check_schema(const char *s)
{
    return strcmp(s, "ecs") == 0 || strcmp(s, "asim") == 0
               ? NULL
               : "unknown schema (use \"ecs\" or \"asim\")";
}

/* "host:port" or "[v6]:port", port 1..65535. */
static const char *check_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return "not host:port";
    if (s[0] == '[' && colon[-1] != ']')
        return "an IPv6 address goes in brackets: [addr]:port";
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return "bad port";
    return NULL;
}

static const char *check_url(const char *s)
{
    if (strcmp(s, "none") == 0)
        return NULL;
    if (strncmp(s, "redis://", 8) == 0 && s[8] != '\0')
        return NULL;
    if (strncmp(s, "unix://", 7) == 0 && s[7] == '/')
        return NULL;
    if (strncmp(s, "unix:", 5) == 0 && s[5] == '/')
        return NULL;
    return "use redis://[USER:PASS@]HOST[:PORT][/DB], unix:///PATH or \"none\"";
}

/* "HOST:PORT": HOST an IPv4 address, [IPv6] or localhost. */
static const char *check_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return "use HOST:PORT, e.g. \"127.0.0.1:9917\"";
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || colon[1] == '\0' || !isdigit((unsigned char)colon[1]) || port < 1 ||
        port > 65535)
        return "bad port (1..65535)";
    char host[TW_ADDR_STRLEN + 2];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host))
        return "bad host";
    memcpy(host, s, hl);
    host[hl] = '\0';
    struct tw_addr a;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (tw_addr_parse(host + 1, &a) == TW_OK && a.family == 6)
            return NULL;
        return "bad IPv6 address";
    }
    if (strcmp(host, "localhost") == 0 || strcmp(host, "*") == 0)
        return NULL;
    if (tw_addr_parse(host, &a) == TW_OK && a.family == 4)
        return NULL;
    return "bad host: use an IPv4 address, [IPv6], localhost or *";
}

static const char *check_rkey(const char *s)
{
    if (*s == '\0')
        return "empty";
    for (const char *p = s; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return "contains white space or control characters";
    return NULL;
}

/* ---- values: one neutral form for file values and --set text ---- */

struct val {
    int ctype;     /* CONFIG_TYPE_* of what was given */
    long long i;   /* INT/INT64/BOOL */
    const char *s; /* STRING */
    const char *items[CFG_MAX_LIST];
    uint32_t item_line[CFG_MAX_LIST];
    size_t n;       /* list items kept */
    size_t n_given; /* list items given (may exceed CFG_MAX_LIST) */
};

/* A list of strings from the file: array, list, or a single string. Bad items are reported
 * and skipped; returns false when the value is not a list at all. */
static bool list_from_setting(struct rep *r, const char *path, const config_setting_t *s,
                              struct val *v)
{
    v->n = v->n_given = 0;
    if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        v->items[0] = config_setting_get_string(s);
        v->item_line[0] = config_setting_source_line(s);
        v->n = v->n_given = 1;
        return true;
    }
    if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
        problem(r, config_setting_source_line(s), path,
                "expected a list of strings [ \"...\", ... ], got %s",
                type_name(config_setting_type(s)));
        return false;
    }
    int len = config_setting_length(s);
    for (int i = 0; i < len; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!e)
            break;
        v->n_given++;
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            problem(r, config_setting_source_line(e), path, "item %d: expected a string, got %s",
                    i + 1, type_name(config_setting_type(e)));
            continue;
        }
        if (v->n < CFG_MAX_LIST) {
            v->items[v->n] = config_setting_get_string(e);
            v->item_line[v->n] = config_setting_source_line(e);
            v->n++;
        }
    }
    if (v->n_given > CFG_MAX_LIST)
        problem(r, config_setting_source_line(s), path, "too many items (%zu, at most %d)",
                v->n_given, CFG_MAX_LIST);
    return true;
}

static bool is_list_type(enum ktype t)
{
    return t == K_STRS || t == K_CIDRS || t == K_ADDRS || t == K_MODES;
}

static bool is_num_type(enum ktype t)
{
    return t == K_INT || t == K_U32 || t == K_U64 || t == K_LONG;
}

/* Fills v from a file setting; type mismatches are reported here. */
static bool val_from_setting(struct rep *r, const struct key *k, const config_setting_t *s,
                             struct val *v)
{
    int t = config_setting_type(s);
    uint32_t line = config_setting_source_line(s);
    memset(v, 0, sizeof(*v));
    v->ctype = t;
    if (is_list_type(k->type))
        return list_from_setting(r, k->path, s, v);
    if (is_num_type(k->type)) {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
            problem(r, line, k->path, "expected an integer, got %s", type_name(t));
            return false;
        }
        v->i = config_setting_get_int64(s);
        return true;
    }
    if (k->type == K_BOOL) {
        if (t != CONFIG_TYPE_BOOL) {
            problem(r, line, k->path, "expected true or false, got %s", type_name(t));
            return false;
        }
        v->i = config_setting_get_bool(s);
        return true;
    }
    if (t != CONFIG_TYPE_STRING) {
        problem(r, line, k->path, "expected a string, got %s", type_name(t));
        return false;
    }
    v->s = config_setting_get_string(s);
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < TW_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Fills v from --set text; `text` is a private copy that list items may point into. */
static bool val_from_text(struct rep *r, const struct key *k, char *text, struct val *v)
{
    memset(v, 0, sizeof(*v));
    if (is_list_type(k->type)) {
        v->ctype = CONFIG_TYPE_ARRAY;
        char *save = NULL;
        for (char *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            tok = trim(tok);
            if (*tok == '\0')
                continue;
            v->n_given++;
            if (v->n < CFG_MAX_LIST) {
                v->item_line[v->n] = CFG_LINE_SET;
                v->items[v->n++] = tok;
            }
        }
        if (v->n_given > CFG_MAX_LIST) {
            problem(r, CFG_LINE_SET, k->path, "too many items (%zu, at most %d)", v->n_given,
                    CFG_MAX_LIST);
            return false;
        }
        return true;
    }
    if (is_num_type(k->type)) {
        v->ctype = CONFIG_TYPE_INT64;
        char *end;
        errno = 0;
        const char *t = trim(text);
        v->i = strtoll(t, &end, 0);
        if (errno || end == t || *end) {
            problem(r, CFG_LINE_SET, k->path, "expected an integer, got \"%s\"", t);
            return false;
        }
        return true;
    }
    if (k->type == K_BOOL) {
        v->ctype = CONFIG_TYPE_BOOL;
        bool b;
        if (!parse_bool(trim(text), &b)) {
            problem(r, CFG_LINE_SET, k->path, "expected true or false, got \"%s\"", text);
            return false;
        }
        v->i = b;
        return true;
    }
    v->ctype = CONFIG_TYPE_STRING;
    v->s = text;
    return true;
}

/* Joins a relative path to base ("" or NULL base: unchanged). */
static char *resolve_path(const char *base, const char *p)
{
    if (!base || !*base || p[0] == '/')
        return strdup(p);
    size_t n = strlen(base) + strlen(p) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", base, p);
    return out;
}

/* Replaces a string list; base_dir resolves relative items of a path list (rules.paths from
 * a file); a list with a check (k->check) takes its items as they are, checked. */
static int apply_strs(struct rep *r, const struct key *k, const struct val *v, char **dst,
                      size_t *n_dst, const char *base_dir)
{
    char *tmp[CFG_MAX_LIST];
    size_t n = 0;
    int bad = 0;
    const char *path = k->path, *why;
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i][0] == '\0') {
            problem(r, v->item_line[i], path, "item %zu: empty", i + 1);
            bad++;
            continue;
        }
        if (k->check && (why = k->check(v->items[i])) != NULL) {
            problem(r, v->item_line[i], path, "item %zu \"%s\": %s", i + 1, v->items[i], why);
            bad++;
            continue;
        }
        tmp[n] = k->check ? strdup(v->items[i]) : resolve_path(base_dir, v->items[i]);
        if (!tmp[n]) {
            problem(r, v->item_line[i], path, "out of memory");
            bad++;
            continue;
        }
        n++;
    }
    if (bad) {
        free_strs(tmp, &n);
        return -1;
    }
    free_strs(dst, n_dst);
    memcpy(dst, tmp, n * sizeof(*tmp));
    *n_dst = n;
    return 0;
}

static bool cidr_item(struct rep *r, const char *path, const char *s, uint32_t line,
                      struct cfg_cidr *out)
{
    if (parse_cidr_loose(s, out) != TW_OK) {
        problem(r, line, path, "\"%s\" is not a CIDR (ADDR/BITS, e.g. 10.0.0.0/8) or address", s);
        return false;
    }
    struct cfg_cidr m = *out;
    if (mask_host_bits(&m)) {
        char buf[TW_ADDR_STRLEN + 8];
        cidr_str(&m, buf, sizeof(buf));
        problem(r, line, path, "\"%s\" has host bits set (did you mean %s?)", s, buf);
        return false;
    }
    return true;
}

/* The apply_* helpers below each take one kind of key (enum ktype): range and syntax checks,
 * then assignment to f, the key's field. 0 when assigned; -1 (reported) leaves it unchanged. */

static int apply_num(struct rep *r, const struct key *k, const struct val *v, uint32_t line,
                     void *f)
{
    if (v->i < k->min || v->i > k->max) {
        problem(r, line, k->path, "%lld is out of range (%lld..%lld)", v->i, k->min, k->max);
        return -1;
    }
    if (k->type == K_INT)
        *(int *)f = (int)v->i;
    else if (k->type == K_U32)
        *(uint32_t *)f = (uint32_t)v->i;
    else if (k->type == K_U64)
        *(uint64_t *)f = (uint64_t)v->i;
    else
        *(long *)f = (long)v->i;
    return 0;
}

static int apply_str(struct rep *r, const struct key *k, const struct val *v, uint32_t line,
                     void *f)
{
    const char *s = v->s;
    if (k->type == K_OSTR && *s == '\0')
        s = NULL;
    const char *why = s && k->check ? k->check(s) : NULL;
    if (why) {
        problem(r, line, k->path, "\"%s\": %s", s, why);
        return -1;
    }
    if (set_str((char **)f, s) != TW_OK) {
        problem(r, line, k->path, "out of memory");
        return -1;
    }
    return 0;
}

/* redis.modes: a list of "stream", "channel", "list". */
static int apply_modes(struct tw_cfg *cfg, struct rep *r, const struct key *k, const struct val *v)
{
    bool m[3] = {false, false, false};
    static const char *const names[] = {"stream", "channel", "list"};
    int bad = 0;
    for (size_t i = 0; i < v->n; i++) {
        size_t j = 0;
        while (j < 3 && strcmp(v->items[i], names[j]) != 0)
            j++;
        if (j == 3) {
            problem(r, v->item_line[i], k->path,
                    "unknown mode \"%s\" (use \"stream\", \"channel\", \"list\")", v->items[i]);
            bad++;
        } else {
            m[j] = true;
        }
    }
    if (bad)
        return -1;
    cfg->redis.mode_stream = m[0];
    cfg->redis.mode_channel = m[1];
    cfg->redis.mode_list = m[2];
    return 0;
}

/* A list of CIDRs into f, its count into *n; all or nothing. */
static int apply_cidrs(struct rep *r, const struct key *k, const struct val *v, void *f, size_t *n)
{
    struct cfg_cidr tmp[CFG_MAX_LIST];
    int bad = 0;
    for (size_t i = 0; i < v->n; i++)
        bad += !cidr_item(r, k->path, v->items[i], v->item_line[i], &tmp[i]);
    if (bad)
        return -1;
    memcpy(f, tmp, v->n * sizeof(*tmp));
    *n = v->n;
    return 0;
}

/* A list of IP addresses into f, its count into *n; all or nothing. */
static int apply_addrs(struct rep *r, const struct key *k, const struct val *v, void *f, size_t *n)
{
    struct tw_addr tmp[CFG_MAX_LIST];
    int bad = 0;
    for (size_t i = 0; i < v->n; i++) {
        if (tw_addr_parse(v->items[i], &tmp[i]) != TW_OK) {
            problem(r, v->item_line[i], k->path, "\"%s\" is not an IP address", v->items[i]);
            bad++;
        }
    }
    if (bad)
        return -1;
    memcpy(f, tmp, v->n * sizeof(*tmp));
    *n = v->n;
    return 0;
}

/* Applies one value to one key: range and syntax checks, then assignment. Returns 0 when
 * assigned; the key keeps its old value otherwise. */
static int apply(struct tw_cfg *cfg, struct rep *r, const struct key *k, const struct val *v,
                 uint32_t line, const char *base_dir)
{
    void *f = field(cfg, k->off);
    switch (k->type) {
    case K_INT:
    case K_U32:
    case K_U64:
    case K_LONG:
        return apply_num(r, k, v, line, f);
    case K_BOOL:
        *(bool *)f = v->i != 0;
        return 0;
    case K_STR:
    case K_OSTR:
        return apply_str(r, k, v, line, f);
    case K_UNSUP:
        if (strcmp(v->s, "error") == 0 || strcmp(v->s, "skip") == 0) {
            cfg->rules.skip_unsupported = strcmp(v->s, "skip") == 0;
            return 0;
        }
        problem(r, line, k->path, "\"%s\": use \"error\" or \"skip\"", v->s);
        return -1;
    case K_FILTERS:
        if (strcmp(v->s, "skip") == 0 || strcmp(v->s, "drop") == 0) {
            cfg->rules.drop_process_filters = strcmp(v->s, "drop") == 0;
            return 0;
        }
        problem(r, line, k->path, "\"%s\": use \"skip\" or \"drop\"", v->s);
        return -1;
    case K_MODES:
        return apply_modes(cfg, r, k, v);
    case K_STRS:
        return apply_strs(r, k, v, (char **)f, (size_t *)field(cfg, k->n_off), base_dir);
    case K_CIDRS:
        return apply_cidrs(r, k, v, f, (size_t *)field(cfg, k->n_off));
    case K_ADDRS:
        return apply_addrs(r, k, v, f, (size_t *)field(cfg, k->n_off));
    case K_ALLOW:
        problem(r, line, k->path, "cannot be set with --set: edit the config file");
        return -1;
    }
    return -1;
}

/* ---- allowlist ---- */

static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int day_index(const char *s, size_t n)
{
    for (int i = 0; i < 7; i++)
        if (n == 3 && strncasecmp(s, day_names[i], 3) == 0)
            return i;
    return -1;
}

/* "sat,sun", "mon-fri", "fri-mon" (wraps); returns the tm_wday mask or -1. */
static int parse_days(const char *s)
{
    int mask = 0;
    const char *p = s;
    for (int items = 0; items < 16; items++) {
        while (*p == ' ')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *dash = memchr(p, '-', (size_t)(end - p));
        size_t tl = (size_t)(end - p);
        while (tl > 0 && p[tl - 1] == ' ')
            tl--;
        int a, b;
        if (dash) {
            a = day_index(p, (size_t)(dash - p));
            b = day_index(dash + 1, (size_t)(p + tl - dash - 1));
        } else {
            a = b = day_index(p, tl);
        }
        if (a < 0 || b < 0)
            return -1;
        for (int d = a;; d = (d + 1) % 7) {
            mask |= 1 << d;
            if (d == b)
                break;
        }
        if (*end == '\0')
            return mask;
        p = end + 1;
    }
    return -1; /* more items than days in a week, with ranges: not a day list */
}

static int hhmm(const char *s, bool end_ok)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end_ok)))
        return -1;
    return h * 60 + m;
}

/* "HH:MM-HH:MM" (end may be 24:00; a window may wrap midnight). */
static bool parse_window(const char *s, int16_t *from, int16_t *to)
{
    if (strlen(s) != 11 || s[5] != '-')
        return false;
    int a = hhmm(s, false), b = hhmm(s + 6, true);
    if (a < 0 || b < 0 || a == b)
        return false;
    *from = (int16_t)a;
    *to = (int16_t)b;
    return true;
}

/* JA4: a_b_c, a = 10 chars (proto, version, sni, counts, alpn), b and c 12 hex digits. */
static bool valid_ja4(const char *s)
{
    if (strlen(s) != 36 || s[10] != '_' || s[23] != '_' || !strchr("tqd", s[0]))
        return false;
    for (int i = 1; i < 10; i++)
        if (!isalnum((unsigned char)s[i]))
            return false;
    for (int i = 11; i < 36; i++)
        if (i != 23 && !isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* A destination name: a domain (matches itself and its subdomains). "*." and one trailing
 * dot are dropped. NULL when the text cannot be a hostname. */
static char *dst_name(const char *s)
{
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_", s[i]))
            return NULL;
    return strndup(s, n);
}

static int allow_strs(struct rep *r, const char *path, const config_setting_t *s, char **dst,
                      size_t *n_dst, int kind)
{
    struct val v;
    memset(&v, 0, sizeof(v));
    if (!list_from_setting(r, path, s, &v))
        return -1;
    int bad = 0;
    for (size_t i = 0; i < v.n; i++) {
        const char *it = v.items[i];
        char *copy = NULL;
        if (kind == 'd') {
            copy = dst_name(it);
            if (!copy) {
                problem(r, v.item_line[i], path, "\"%s\" is not a host or domain name", it);
                bad++;
                continue;
            }
        } else if (kind == 'j' && !valid_ja4(it)) {
            problem(r, v.item_line[i], path,
                    "\"%s\" is not a JA4 fingerprint (e.g. t13d1516h2_8daaf6152771_e5627efa2ab1)",
                    it);
            bad++;
            continue;
        } else if (*it == '\0') {
            problem(r, v.item_line[i], path, "item %zu: empty", i + 1);
            bad++;
            continue;
        }
        if (!copy)
            copy = strdup(it);
        if (!copy) {
            problem(r, v.item_line[i], path, "out of memory");
            bad++;
            continue;
        }
        dst[(*n_dst)++] = copy;
    }
    return bad ? -1 : 0;
}

/* allowlist[i].window = "HH:MM-HH:MM". */
static void allow_window(struct rep *r, uint32_t line, const char *path, const char *sv,
                         struct cfg_allow *a)
{
    if (!parse_window(sv, &a->from_min, &a->to_min))
        problem(r, line, path, "\"%s\": use \"HH:MM-HH:MM\" (local time, e.g. 01:00-03:00)", sv);
    else if (set_str(&a->window, sv) != TW_OK)
        problem(r, line, path, "out of memory");
}

/* allowlist[i].days = "sat,sun" or "mon-fri". */
static void allow_days(struct rep *r, uint32_t line, const char *path, const char *sv,
                       struct cfg_allow *a)
{
    int m = parse_days(sv);
    if (m <= 0)
        problem(r, line, path,
                "\"%s\": use day names sun..sat, e.g. \"sat,sun\" or "
                "\"mon-fri\"",
                sv);
    else if (set_str(&a->days, sv) != TW_OK)
        problem(r, line, path, "out of memory");
    else
        a->days_mask = (uint8_t)m;
}

/* allowlist[i].src = [ CIDR, ... ]: the good items are kept, each bad one reported. */
static void allow_src(struct rep *r, const char *path, const config_setting_t *s,
                      struct cfg_allow *a)
{
    struct val v;
    memset(&v, 0, sizeof(v));
    if (!list_from_setting(r, path, s, &v))
        return;
    for (size_t j = 0; j < v.n; j++)
        if (cidr_item(r, path, v.items[j], v.item_line[j], &a->src[a->n_src]))
            a->n_src++;
}

static void allow_unknown(struct rep *r, uint32_t line, const char *path, const char *name)
{
    size_t d = SIZE_MAX;
    const char *best = closest(name, allow_keys, TW_ARRAY_LEN(allow_keys), NULL, &d);
    if (best && d <= 2)
        problem(r, line, path, "unknown key (did you mean %s?)", best);
    else
        problem(r, line, path,
                "unknown key (known: name, reason, src, dst, rules, ja4, window, days)");
}

/* One member s of allowlist entry base ("allowlist[N]"): the keys and their readers. */
static void allow_member(struct rep *r, const char *base, const config_setting_t *s,
                         struct cfg_allow *a)
{
    char path[PATH_MAX_KEY];
    const char *name = config_setting_name(s);
    uint32_t line = config_setting_source_line(s);
    snprintf(path, sizeof(path), "%s.%s", base, name ? name : "?");
    int t = config_setting_type(s);
    bool scalar = name && (strcmp(name, "name") == 0 || strcmp(name, "reason") == 0 ||
                           strcmp(name, "window") == 0 || strcmp(name, "days") == 0);
    if (scalar && t != CONFIG_TYPE_STRING) {
        problem(r, line, path, "expected a string, got %s", type_name(t));
        return;
    }
    const char *sv = scalar ? config_setting_get_string(s) : NULL;
    if (!name)
        return;
    if (strcmp(name, "name") == 0) {
        if (set_str(&a->name, sv) != TW_OK)
            problem(r, line, path, "out of memory");
    } else if (strcmp(name, "reason") == 0) {
        if (set_str(&a->reason, sv) != TW_OK)
            problem(r, line, path, "out of memory");
    } else if (strcmp(name, "window") == 0) {
        allow_window(r, line, path, sv, a);
    } else if (strcmp(name, "days") == 0) {
        allow_days(r, line, path, sv, a);
    } else if (strcmp(name, "src") == 0) {
        allow_src(r, path, s, a);
    } else if (strcmp(name, "dst") == 0) {
        allow_strs(r, path, s, a->dst_names, &a->n_dst_names, 'd');
    } else if (strcmp(name, "rules") == 0) {
        allow_strs(r, path, s, a->rules, &a->n_rules, 'r');
    } else if (strcmp(name, "ja4") == 0) {
        allow_strs(r, path, s, a->ja4, &a->n_ja4, 'j');
    } else {
        allow_unknown(r, line, path, name);
    }
}

static void load_allow_entry(struct rep *r, const config_setting_t *g, size_t idx,
                             struct cfg_allow *a)
{
    char base[48];
    snprintf(base, sizeof(base), "allowlist[%zu]", idx);
    uint32_t gline = config_setting_source_line(g);
    memset(a, 0, sizeof(*a));
    a->from_min = a->to_min = -1;
    a->days_mask = 0x7f;
    a->line = gline;
    if (!config_setting_is_group(g)) {
        problem(r, gline, base, "expected a group { name = ...; reason = ...; ... }, got %s",
                type_name(config_setting_type(g)));
        return;
    }
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        if (!s)
            break;
        allow_member(r, base, s, a);
    }
    /* an entry must say why it exists, and must narrow something down: an entry with
     * only a time window would silence every detection during that window */
    if (!a->reason || !*a->reason)
        problem(r, gline, base, "missing reason: say why this traffic is allowed");
    if (!config_setting_get_member(g, "src") && !config_setting_get_member(g, "dst") &&
        !config_setting_get_member(g, "rules") && !config_setting_get_member(g, "ja4"))
        problem(r, gline, base, "no criterion: give at least one of src, dst, rules, ja4");
}

static void clear_allowlist(struct tw_cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_allow; i++)
        free_allow(&cfg->allow[i]);
    cfg->n_allow = 0;
}

static void load_allowlist(struct tw_cfg *cfg, struct rep *r, const config_setting_t *s)
{
    uint32_t line = config_setting_source_line(s);
    if (!config_setting_is_list(s) &&
        !(config_setting_is_array(s) && config_setting_length(s) == 0)) {
        problem(r, line, "allowlist", "expected a list ( { ... }, { ... } ), got %s",
                type_name(config_setting_type(s)));
        return;
    }
    clear_allowlist(cfg);
    int n = config_setting_length(s);
    if (n > CFG_MAX_LIST)
        problem(r, line, "allowlist", "too many entries (%d, at most %d)", n, CFG_MAX_LIST);
    for (int i = 0; i < n && i < CFG_MAX_LIST; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (!e)
            break;
        load_allow_entry(r, e, (size_t)i, &cfg->allow[cfg->n_allow]);
        cfg->n_allow++;
    }
}

/* ---- defaults, free ---- */

static void default_internal(struct tw_cfg *cfg)
{
    static const char *const nets[] = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8"};
    cfg->n_internal = 0;
    for (size_t i = 0; i < TW_ARRAY_LEN(nets); i++)
        if (cfg_parse_cidr(nets[i], &cfg->internal[cfg->n_internal]) == TW_OK)
            cfg->n_internal++;
}

/* cfg_defaults' evidence and fleet groups. */
static void defaults_evidence_fleet(struct tw_cfg *cfg)
{
    cfg->evidence.max_total_mib = 1024;
    cfg->evidence.max_flow_mib = 64;
    cfg->evidence.early_packets = 16;
    cfg->evidence.early_kib = 32;
    cfg->evidence.early_total_mib = 32;
    cfg->evidence.queue_mib = 16;
    cfg->evidence.redis_prefix = strdup("tunnelwatch:evidence:");
    cfg->evidence.redis_ttl_s = 86400;
    cfg->fleet.bind_prefix = strdup("tunnelwatch:bind:");
    cfg->fleet.channel = strdup("tunnelwatch:bindings");
    cfg->fleet.incident_prefix = strdup("tunnelwatch:incident:");
    cfg->fleet.dedup = true;
    cfg->fleet.queue_max = 4096;
    cfg->fleet.sync_timeout_ms = 3000;
}

void cfg_defaults(struct tw_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char host[256];
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "tunnelwatch");
    host[sizeof(host) - 1] = '\0';
    cfg->sensor_name = strdup(host);

    cfg->capture.snaplen = 262144;
    cfg->capture.buffer_mib = 64;
    cfg->capture.promisc = true;
    cfg->capture.immediate = false;
    cfg->capture.workers = 1;

    default_internal(cfg);

    cfg->rules.paths[0] = strdup("conf/rules");
    cfg->rules.n_paths = cfg->rules.paths[0] ? 1 : 0;
    cfg->rules.skip_unsupported = false;
    cfg->rules.dns_query_as_destination = true;

    cfg->log_suppressed = true;
    cfg->publish_suppressed = false;

    cfg->flow.max_flows = 262144;
    cfg->flow.idle_timeout_s = 120;
    cfg->flow.tcp_close_timeout_s = 10;
    cfg->flow.udp_timeout_s = 60;
    cfg->flow.reasm_bytes = 16384;
    cfg->flow.reasm_total_mib = 64;
    cfg->flow.reasm_source_pct = 25;
    cfg->flow.stall_ms = 500;
    cfg->flow.frag_max = 1024;
    cfg->flow.frag_timeout_s = 30;
    cfg->flow.ndpi = true;
    cfg->flow.ndpi_packets = 12;
    cfg->flow.ndpi_max_flows = 65536;

    cfg->alert.dedup_window_s = 3600;
    cfg->alert.dedup_max = 65536;
    cfg->alert.update_interval_s = 300;
    cfg->alert.health_interval_s = 10;
    cfg->redis.stop_flush_ms = 5000;
    cfg->alert.dns_map_max = 262144;
    cfg->alert.dns_ttl_cap_s = 86400;
    cfg->alert.dns_ttl_min_s = 300;

    cfg->output.schema = strdup("ecs");
    cfg->output.alerts_queue_kib = 4096;
    cfg->alert.external = strdup("event");

    defaults_evidence_fleet(cfg);

    cfg->redis.url = strdup("redis://127.0.0.1:6379/0");
    cfg->redis.mode_stream = true;
    cfg->redis.mode_channel = true;
    cfg->redis.mode_list = false;
    cfg->redis.stream_key = strdup("tunnelwatch:alerts");
    cfg->redis.channel_key = strdup("tunnelwatch:alerts");
    cfg->redis.list_key = strdup("tunnelwatch:alerts:list");
    cfg->redis.heartbeat_prefix = strdup("tunnelwatch:sensor:");
    cfg->redis.stream_maxlen = 100000;
    cfg->redis.queue_max = 10000;
    cfg->redis.spool_dir = strdup("/var/spool/tunnelwatch");
    cfg->redis.spool_max_mib = 256;
    cfg->redis.timeout_ms = 2000;
    cfg->redis.heartbeat_s = 10;
    cfg->redis.wait_timeout_ms = 1000;

    cfg->log.verbosity = 0;
    cfg->log.syslog = false;
    cfg->log.stats_interval_s = 0;
}

void cfg_free(struct tw_cfg *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        if (k->type == K_STR || k->type == K_OSTR) {
            char **p = field(cfg, k->off);
            free(*p);
            *p = NULL;
        } else if (k->type == K_STRS) {
            free_strs(field(cfg, k->off), field(cfg, k->n_off));
        }
    }
    clear_allowlist(cfg);
    free(cfg->file);
    cfg->file = NULL;
}

/* ---- load ---- */

struct load {
    struct tw_cfg *cfg;
    struct rep *r;
    const char *base_dir;
    int depth;
};

/* Calls fn for every member of group g with its dotted key path and source line; recursion
 * through fn is capped at 4 levels (groups nest two deep, redis.spool; deeper nesting is
 * already an unknown key, but the cap keeps a pathological file from recursing far). */
typedef void (*member_fn)(void *ud, const config_setting_t *s, const char *path, uint32_t line);

static void walk_members(const config_setting_t *g, const char *prefix, int *depth, member_fn fn,
                         void *ud)
{
    if (++*depth > 4) {
        --*depth;
        return;
    }
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        if (!s)
            break;
        const char *name = config_setting_name(s);
        char path[PATH_MAX_KEY];
        snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name ? name : "?");
        fn(ud, s, path, config_setting_source_line(s));
    }
    --*depth;
}

/* One member of the sensor's configuration file. */
static void load_member(void *ud, const config_setting_t *s, const char *path, uint32_t line)
{
    struct load *L = ud;
    if (is_group(path)) {
        if (!config_setting_is_group(s))
            problem(L->r, line, path, "expected a group { ... }, got %s",
                    type_name(config_setting_type(s)));
        else
            walk_members(s, path, &L->depth, load_member, L);
        return;
    }
    const struct key *k = find_key(path);
    if (!k) {
        unknown_key(L->r, line, path, suggest(path));
        return;
    }
    if (k->type == K_ALLOW) {
        load_allowlist(L->cfg, L->r, s);
        L->cfg->key_line[key_index(k)] = line;
        return;
    }
    struct val v;
    if (!val_from_setting(L->r, k, s, &v))
        return;
    if (v.n_given > CFG_MAX_LIST)
        return; /* reported; a truncated list would silently change meaning */
    const char *base = strcmp(k->path, "rules.paths") == 0 ? L->base_dir : NULL;
    if (apply(L->cfg, L->r, k, &v, line, base) == 0)
        L->cfg->key_line[key_index(k)] = line;
}

/* Absolute folder of the config file ("" when unknown); caller frees. */
static char *config_dir(const char *path)
{
    char *real = realpath(path, NULL);
    const char *p = real ? real : path;
    const char *slash = strrchr(p, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == p)
        dir = strdup("/");
    else
        dir = strndup(p, (size_t)(slash - p));
    free(real);
    return dir;
}

static void read_password_env(struct tw_cfg *cfg, struct rep *r, uint32_t line)
{
    if (!cfg->redis.password_env)
        return;
    const char *v = getenv(cfg->redis.password_env);
    if (!v || !*v) {
        problem(r, line, "redis.password_env", "environment variable %s is not set",
                cfg->redis.password_env);
        return;
    }
    if (set_str(&cfg->redis.password, v) != TW_OK)
        problem(r, line, "redis.password_env", "out of memory");
}

/* TW_OK when path can be opened; else TW_EIO with the reason written to err. */
static int check_readable(const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (err)
            fprintf(err, "%s: cannot read: %s\n", path, strerror(errno));
        return TW_EIO;
    }
    fclose(f);
    return TW_OK;
}

/* Parses path into c (@include relative to dir). Returns TW_OK (destroy c when done), or
 * TW_EIO / 1 (one syntax error) with the message written and c already destroyed. */
static int read_config(config_t *c, const char *path, const char *dir, FILE *err)
{
    config_init(c);
    config_set_include_dir(c, dir);
    if (config_read_file(c, path) == CONFIG_TRUE)
        return TW_OK;
    int rc = 1;
    if (config_error_type(c) == CONFIG_ERR_FILE_IO) {
        if (err)
            fprintf(err, "%s: cannot read\n", path);
        rc = TW_EIO;
    } else if (err) {
        const char *ef = config_error_file(c);
        fprintf(err, "%s:%d: syntax error: %s\n", ef ? ef : path, config_error_line(c),
                config_error_text(c) ? config_error_text(c) : "?");
    }
    config_destroy(c);
    return rc;
}

int cfg_load(struct tw_cfg *cfg, const char *path, FILE *err)
{
    struct rep r = {err, path, false, 0};
    if (check_readable(path, err))
        return TW_EIO;
    if (set_str(&cfg->file, path) != TW_OK)
        return TW_ENOMEM;
    char *dir = config_dir(path);
    const struct key *kp = find_key("rules.paths");
    if (cfg->key_line[key_index(kp)] == 0 && dir) {
        /* rules.paths still the built-in default: the rules folder beside the config file
         * (before parsing, so that even a file with a syntax error validates sensibly) */
        struct val v = {.ctype = CONFIG_TYPE_STRING, .items = {"rules"}, .n = 1, .n_given = 1};
        apply(cfg, &r, kp, &v, 0, dir);
    }
    config_t c;
    int rc = read_config(&c, path, dir, err);
    if (rc) {
        free(dir);
        return rc;
    }
    struct load L = {cfg, &r, dir, 0};
    walk_members(config_root_setting(&c), "", &L.depth, load_member, &L);
    const config_setting_t *pw = config_lookup(&c, "redis.password");
    const config_setting_t *pwe = config_lookup(&c, "redis.password_env");
    const char *pws = pw ? config_setting_get_string(pw) : NULL;
    if (pws && *pws && pwe && cfg->redis.password_env)
        problem(&r, config_setting_source_line(pwe), "redis.password_env",
                "give redis.password or redis.password_env, not both");
    else if (pwe)
        read_password_env(cfg, &r, config_setting_source_line(pwe));
    config_destroy(&c);
    free(dir);
    return r.n;
}

/* ---- a separate key table (cfg_load_table) ---- */

struct tload {
    const struct cfg_tkey *keys;
    size_t n;
    void *obj;
    struct rep *r;
    int depth;
};

static const struct cfg_tkey *tkey_find(const struct tload *T, const char *path)
{
    for (size_t i = 0; i < T->n; i++)
        if (strcmp(path, T->keys[i].path) == 0)
            return &T->keys[i];
    return NULL;
}

/* A group is any proper prefix of a key's path ("redis" for "redis.url"). */
static bool tkey_is_group(const struct tload *T, const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < T->n; i++)
        if (strncmp(T->keys[i].path, path, n) == 0 && T->keys[i].path[n] == '.')
            return true;
    return false;
}

static const char *tkey_suggest(const struct tload *T, const char *path)
{
    size_t d = SIZE_MAX;
    const char *best = NULL;
    for (size_t i = 0; i < T->n; i++)
        best = closest(path, &T->keys[i].path, 1, best, &d);
    return best && close_enough(path, d) ? best : NULL;
}

/* Type, range and length checks, then the assignment; the field is unchanged on a problem. */
static void tkey_apply(const struct tload *T, const struct cfg_tkey *k, const config_setting_t *s)
{
    uint32_t line = config_setting_source_line(s);
    struct key as = {k->path, k->kind == CFG_T_STR ? K_STR : K_LONG, 0, 0, 0, 0, NULL};
    struct val v;
    if (!val_from_setting(T->r, &as, s, &v))
        return;
    char *f = (char *)T->obj + k->off;
    if (k->kind == CFG_T_I64) {
        if (v.i < k->min || v.i > k->max) {
            problem(T->r, line, k->path, "%lld is out of range (%lld..%lld)", v.i,
                    (long long)k->min, (long long)k->max);
            return;
        }
        int64_t i = (int64_t)v.i;
        memcpy(f, &i, sizeof(i));
        return;
    }
    size_t len = strlen(v.s);
    /* why: the field is a fixed array; a silently cut URL or password would be worse */
    if (len >= k->size) {
        problem(T->r, line, k->path, "too long (%zu bytes, at most %zu)", len, k->size - 1);
        return;
    }
    memcpy(f, v.s, len + 1);
}

/* One member of a table-driven file (cfg_load_table). */
static void table_member(void *ud, const config_setting_t *s, const char *path, uint32_t line)
{
    struct tload *T = ud;
    const struct cfg_tkey *k = tkey_find(T, path);
    if (k)
        tkey_apply(T, k, s);
    else if (!tkey_is_group(T, path))
        unknown_key(T->r, line, path, tkey_suggest(T, path));
    else if (!config_setting_is_group(s))
        problem(T->r, line, path, "expected a group { ... }, got %s",
                type_name(config_setting_type(s)));
    else
        walk_members(s, path, &T->depth, table_member, T);
}

int cfg_load_table(const struct cfg_tkey *table, size_t n, void *obj, const char *path, FILE *err)
{
    struct rep r = {err, path, false, 0};
    if (check_readable(path, err))
        return TW_EIO;
    char *dir = config_dir(path);
    config_t c;
    int rc = read_config(&c, path, dir, err);
    free(dir);
    if (rc)
        return rc;
    struct tload T = {table, n, obj, &r, 0};
    walk_members(config_root_setting(&c), "", &T.depth, table_member, &T);
    config_destroy(&c);
    return r.n;
}

/* ---- set ---- */

int cfg_set(struct tw_cfg *cfg, const char *assignment, FILE *err)
{
    struct rep r = {err, NULL, true, 0};
    const char *eq = strchr(assignment, '=');
    if (!eq) {
        problem(&r, CFG_LINE_SET, assignment, "expected KEY=VALUE");
        return r.n;
    }
    char path[PATH_MAX_KEY];
    size_t kl = (size_t)(eq - assignment);
    if (kl >= sizeof(path))
        kl = sizeof(path) - 1;
    memcpy(path, assignment, kl);
    path[kl] = '\0';
    char *p = trim(path);
    const struct key *k = find_key(p);
    if (!k) {
        unknown_key(&r, CFG_LINE_SET, p, suggest(p));
        return r.n;
    }
    char *text = strdup(eq + 1);
    if (!text) {
        problem(&r, CFG_LINE_SET, k->path, "out of memory");
        return r.n;
    }
    struct val v;
    if (val_from_text(&r, k, text, &v) && apply(cfg, &r, k, &v, CFG_LINE_SET, NULL) == 0) {
        cfg->key_line[key_index(k)] = CFG_LINE_SET;
        if (strcmp(k->path, "redis.password_env") == 0)
            read_password_env(cfg, &r, CFG_LINE_SET);
    }
    free(text);
    return r.n;
}

/* ---- validate ---- */

static uint32_t line_of(const struct tw_cfg *cfg, const char *path)
{
    const struct key *k = find_key(path);
    return k ? cfg->key_line[key_index(k)] : 0;
}

/* Redis Sentinel's keys go together. */
static void validate_sentinel(const struct tw_cfg *cfg, struct rep *r)
{
    if (cfg->redis.n_sentinels && !cfg->redis.master_name)
        problem(r, line_of(cfg, "redis.sentinels"), "redis.sentinels",
                "set redis.master_name too (the name the sentinels monitor)");
    if (!cfg->redis.n_sentinels && cfg->redis.master_name)
        problem(r, line_of(cfg, "redis.master_name"), "redis.master_name",
                "needs redis.sentinels (\"host:port\" of each sentinel)");
}

int cfg_validate(const struct tw_cfg *cfg, FILE *err)
{
    struct rep r = {err, cfg->file, false, 0};
    validate_sentinel(cfg, &r);
    if (cfg->flow.tcp_close_timeout_s > cfg->flow.idle_timeout_s)
        problem(&r, line_of(cfg, "flow.tcp_close_timeout_s"), "flow.tcp_close_timeout_s",
                "%u is longer than flow.idle_timeout_s (%u): a closing flow would outlive an "
                "idle one",
                cfg->flow.tcp_close_timeout_s, cfg->flow.idle_timeout_s);
    if (cfg->alert.dns_ttl_min_s > cfg->alert.dns_ttl_cap_s)
        problem(&r, line_of(cfg, "alert.dns_ttl_min_s"), "alert.dns_ttl_min_s",
                "%u is above alert.dns_ttl_cap_s (%u)", cfg->alert.dns_ttl_min_s,
                cfg->alert.dns_ttl_cap_s);
    if ((uint64_t)cfg->flow.reasm_bytes > cfg->flow.reasm_total_mib << 20)
        problem(&r, line_of(cfg, "flow.reasm_bytes"), "flow.reasm_bytes",
                "%u is above flow.reasm_total_mib", cfg->flow.reasm_bytes);
    if (cfg->n_internal == 0)
        problem(&r, line_of(cfg, "networks.internal"), "networks.internal",
                "empty: hits cannot be attributed to an internal host");
    if (cfg->rules.n_paths == 0)
        problem(&r, line_of(cfg, "rules.paths"), "rules.paths", "empty: no rule to match");
    for (size_t i = 0; i < cfg->rules.n_paths; i++)
        if (access(cfg->rules.paths[i], R_OK) != 0)
            problem(&r, line_of(cfg, "rules.paths"), "rules.paths", "%s: not readable: %s",
                    cfg->rules.paths[i], strerror(errno));
    bool redis_on = cfg->redis.url && strcmp(cfg->redis.url, "none") != 0;
    uint32_t ml = line_of(cfg, "redis.modes");
    if (redis_on && !cfg->redis.mode_stream && !cfg->redis.mode_channel && !cfg->redis.mode_list)
        problem(&r, ml, "redis.modes",
                "empty: give at least one of \"stream\", \"channel\", \"list\" (or redis.url = "
                "\"none\")");
    if (cfg->capture.bpf && *cfg->capture.bpf) {
        /* compile against Ethernet now, so a filter typo stops the start, not the capture */
        pcap_t *p = pcap_open_dead(DLT_EN10MB, cfg->capture.snaplen);
        if (p) {
            struct bpf_program prog;
            if (pcap_compile(p, &prog, cfg->capture.bpf, 1, PCAP_NETMASK_UNKNOWN) != 0)
                problem(&r, line_of(cfg, "capture.bpf"), "capture.bpf", "bad filter: %s",
                        pcap_geterr(p));
            else
                pcap_freecode(&prog);
            pcap_close(p);
        }
    }
    /* cfg_set can bypass nothing, but a caller may assign fields directly: recheck ranges */
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        long long v;
        const void *f = cfield(cfg, k->off);
        if (k->type == K_INT)
            v = *(const int *)f;
        else if (k->type == K_U32)
            v = *(const uint32_t *)f;
        else if (k->type == K_U64)
            v = *(const uint64_t *)f > (uint64_t)LLONG_MAX ? LLONG_MAX
                                                           : (long long)*(const uint64_t *)f;
        else if (k->type == K_LONG)
            v = *(const long *)f;
        else if (k->type == K_STR || k->type == K_OSTR) {
            const char *s = *(char *const *)f;
            const char *why = s && k->check ? k->check(s) : NULL;
            if (k->type == K_STR && !s)
                problem(&r, cfg->key_line[i], k->path, "not set");
            else if (why)
                problem(&r, cfg->key_line[i], k->path, "\"%s\": %s", s, why);
            continue;
        } else {
            continue;
        }
        if (v < k->min || v > k->max)
            problem(&r, cfg->key_line[i], k->path, "%lld is out of range (%lld..%lld)", v, k->min,
                    k->max);
    }
    return r.n;
}

/* ---- print ---- */

static void print_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void print_strs(FILE *out, char *const *v, size_t n)
{
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ", " : " ", out);
        print_str(out, v[i]);
    }
    fputs(n ? " ]" : "]", out);
}

static void print_allow(FILE *out, const struct tw_cfg *cfg, const char *ind)
{
    if (cfg->n_allow == 0) {
        fputs("allowlist = ();\n", out);
        return;
    }
    fputs("allowlist = (\n", out);
    for (size_t i = 0; i < cfg->n_allow; i++) {
        const struct cfg_allow *a = &cfg->allow[i];
        fprintf(out, "%s{\n", ind);
        fprintf(out, "%s%sname = ", ind, ind);
        print_str(out, a->name);
        fprintf(out, ";\n%s%sreason = ", ind, ind);
        print_str(out, a->reason);
        fputs(";\n", out);
        if (a->n_src) {
            fprintf(out, "%s%ssrc = [", ind, ind);
            for (size_t j = 0; j < a->n_src; j++) {
                char buf[TW_ADDR_STRLEN + 8];
                cidr_str(&a->src[j], buf, sizeof(buf));
                fprintf(out, "%s\"%s\"", j ? ", " : " ", buf);
            }
            fputs(" ];\n", out);
        }
        struct {
            const char *name;
            char *const *v;
            size_t n;
        } lists[] = {{"dst", a->dst_names, a->n_dst_names},
                     {"rules", a->rules, a->n_rules},
                     {"ja4", a->ja4, a->n_ja4}};
        for (size_t j = 0; j < TW_ARRAY_LEN(lists); j++) {
            if (!lists[j].n)
                continue;
            fprintf(out, "%s%s%s = ", ind, ind, lists[j].name);
            print_strs(out, lists[j].v, lists[j].n);
            fputs(";\n", out);
        }
        if (a->window) {
            fprintf(out, "%s%swindow = ", ind, ind);
            print_str(out, a->window);
            fputs(";\n", out);
        }
        if (a->days) {
            fprintf(out, "%s%sdays = ", ind, ind);
            print_str(out, a->days);
            fputs(";\n", out);
        }
        fprintf(out, "%s}%s\n", ind, i + 1 < cfg->n_allow ? "," : "");
    }
    fputs(");\n", out);
}

static size_t group_len(const char *path)
{
    const char *d = strrchr(path, '.');
    return d ? (size_t)(d - path) : 0;
}

static void print_value(FILE *out, const struct tw_cfg *cfg, const struct key *k)
{
    const void *f = cfield(cfg, k->off);
    switch (k->type) {
    case K_STR:
    case K_OSTR:
        if (strcmp(k->path, "redis.password") == 0) {
            /* never print a secret; a password from the environment is not printed at all */
            print_str(out, cfg->redis.password && !cfg->redis.password_env ? MASK : "");
            break;
        }
        print_str(out, *(char *const *)f);
        break;
    case K_INT:
        fprintf(out, "%d", *(const int *)f);
        break;
    case K_U32:
        fprintf(out, "%u%s", *(const uint32_t *)f, *(const uint32_t *)f > INT_MAX ? "L" : "");
        break;
    case K_U64:
        fprintf(out, "%llu%s", (unsigned long long)*(const uint64_t *)f,
                *(const uint64_t *)f > INT_MAX ? "L" : "");
        break;
    case K_LONG:
        fprintf(out, "%ld%s", *(const long *)f,
                *(const long *)f > INT_MAX || *(const long *)f < INT_MIN ? "L" : "");
        break;
    case K_BOOL:
        fputs(*(const bool *)f ? "true" : "false", out);
        break;
    case K_STRS:
        print_strs(out, (char *const *)f, *(const size_t *)cfield(cfg, k->n_off));
        break;
    case K_CIDRS: {
        const struct cfg_cidr *c = f;
        size_t n = *(const size_t *)cfield(cfg, k->n_off);
        fputc('[', out);
        for (size_t i = 0; i < n; i++) {
            char buf[TW_ADDR_STRLEN + 8];
            cidr_str(&c[i], buf, sizeof(buf));
            fprintf(out, "%s\"%s\"", i ? ", " : " ", buf);
        }
        fputs(n ? " ]" : "]", out);
        break;
    }
    case K_ADDRS: {
        const struct tw_addr *a = f;
        size_t n = *(const size_t *)cfield(cfg, k->n_off);
        fputc('[', out);
        for (size_t i = 0; i < n; i++) {
            char buf[TW_ADDR_STRLEN];
            fprintf(out, "%s\"%s\"", i ? ", " : " ", tw_addr_str(&a[i], buf, sizeof(buf)));
        }
        fputs(n ? " ]" : "]", out);
        break;
    }
    case K_UNSUP:
        fputs(cfg->rules.skip_unsupported ? "\"skip\"" : "\"error\"", out);
        break;
    case K_FILTERS:
        fputs(cfg->rules.drop_process_filters ? "\"drop\"" : "\"skip\"", out);
        break;
    case K_MODES: {
        const char *sep = " ";
        fputc('[', out);
        if (cfg->redis.mode_stream) {
            fprintf(out, "%s\"stream\"", sep);
            sep = ", ";
        }
        if (cfg->redis.mode_channel) {
            fprintf(out, "%s\"channel\"", sep);
            sep = ", ";
        }
        if (cfg->redis.mode_list)
            fprintf(out, "%s\"list\"", sep);
        fputs(cfg->redis.mode_stream || cfg->redis.mode_channel || cfg->redis.mode_list ? " ]"
                                                                                        : "]",
              out);
        break;
    }
    case K_ALLOW:
        break;
    }
}

void cfg_print(const struct tw_cfg *cfg, FILE *out)
{
    fprintf(out, "# tunnelwatch %s effective configuration%s%s\n", TW_VERSION,
            cfg->file ? " from " : "", cfg->file ? cfg->file : " (defaults)");
    char open[PATH_MAX_KEY] = ""; /* currently open group path */
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key *k = &keys[i];
        size_t gl = group_len(k->path);
        char grp[PATH_MAX_KEY];
        snprintf(grp, sizeof(grp), "%.*s", (int)gl, k->path);
        /* close groups that are not a prefix of this key's group */
        while (*open && !(strncmp(grp, open, strlen(open)) == 0 &&
                          (grp[strlen(open)] == '.' || grp[strlen(open)] == '\0'))) {
            char *d = strrchr(open, '.');
            size_t depth = 0;
            for (const char *p = open; *p; p++)
                depth += *p == '.';
            fprintf(out, "%*s};\n", (int)(depth * 2), "");
            if (d)
                *d = '\0';
            else
                open[0] = '\0';
        }
        /* open the missing levels */
        while (strcmp(open, grp) != 0) {
            size_t ol = strlen(open);
            const char *next = grp + ol + (ol ? 1 : 0);
            const char *dot = strchr(next, '.');
            size_t nl = dot ? (size_t)(dot - next) : strlen(next);
            size_t depth = 0;
            for (const char *p = open; *p; p++)
                depth += *p == '.';
            if (ol)
                depth++;
            fprintf(out, "%*s%.*s = {\n", (int)(depth * 2), "", (int)nl, next);
            snprintf(open + ol, sizeof(open) - ol, "%s%.*s", ol ? "." : "", (int)nl, next);
        }
        if (k->type == K_ALLOW) {
            print_allow(out, cfg, "  ");
            continue;
        }
        size_t depth = 1;
        for (const char *p = grp; *p; p++)
            depth += *p == '.';
        fprintf(out, "%*s%s = ", (int)(depth * 2), "", leaf(k->path));
        print_value(out, cfg, k);
        fputs(";\n", out);
    }
    while (*open) {
        char *d = strrchr(open, '.');
        size_t depth = 0;
        for (const char *p = open; *p; p++)
            depth += *p == '.';
        fprintf(out, "%*s};\n", (int)(depth * 2), "");
        if (d)
            *d = '\0';
        else
            open[0] = '\0';
    }
}
