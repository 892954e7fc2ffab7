/* cfg.h - configuration: libconfig file + --set KEY=VALUE overrides -> struct tw_cfg.
 *
 * cfg_defaults() fills every field with its documented default; cfg_load() reads a file
 * over it; cfg_set() applies one override (any key, dotted path, e.g. redis.spool_dir).
 * cfg_load() and cfg_set() check what they read (unknown keys, types, ranges, CIDRs, IPs,
 * allowlist entries); cfg_validate() adds the cross-checks (timeout ordering, rule paths
 * readable, BPF compiles, modes/keys). Each problem is one line "FILE:LINE: KEY: problem".
 * To report ALL problems in one run, the caller sums the three and stops only at the end:
 *
 *     int n = cfg_load(&cfg, path, stderr);          // TW_EIO: file unreadable
 *     for (each --set) n += cfg_set(&cfg, arg, stderr);
 *     n += cfg_validate(&cfg, stderr);
 *     if (n) exit(2);
 *
 * cfg_load_table() reads another program's file (a caller-supplied key table) the same way.
 *
 * Strings in the struct are owned by it (cfg_free); replace them with free()+strdup().
 * A NULL optional string means "not set" (the file writes it as "").
 */
#ifndef TW_CFG_H
#define TW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/tw.h"

#define CFG_MAX_LIST 64
/* Slots of tw_cfg.key_line: at least the number of keys in cfg.c's table. */
#define CFG_KEY_SLOTS 96
/* tw_cfg.key_line value for a key set by cfg_set (the command line). */
#define CFG_LINE_SET UINT32_MAX

struct cfg_cidr {
    struct tw_addr addr;
    uint8_t bits;
};

/* One allowlist entry: every non-empty criterion must hold for a hit to be suppressed. */
struct cfg_allow {
    char *name;                        /* short label, shown in logs and counters */
    char *reason;                      /* required */
    struct cfg_cidr src[CFG_MAX_LIST]; /* source CIDRs (internal host) */
    size_t n_src;
    char *dst_names[CFG_MAX_LIST]; /* destination names: domain or any subdomain */
    size_t n_dst_names;
    char *rules[CFG_MAX_LIST]; /* rule ids or titles */
    size_t n_rules;
    char *ja4[CFG_MAX_LIST]; /* JA4 fingerprints */
    size_t n_ja4;
    char *window; /* "HH:MM-HH:MM" local time, optional; may wrap midnight */
    char *days;   /* "mon,tue,..." or ranges "mon-fri", optional */
    /* Parsed forms of window/days, filled by cfg_load: */
    int16_t from_min, to_min; /* minutes since local midnight; -1/-1 when no window */
    uint8_t days_mask;        /* bit tm_wday (0 = Sunday); 0x7f when days is unset */
    uint32_t line;            /* line of the entry in the config file */
};

struct tw_cfg {
    char *file; /* config file path, NULL when defaults only */
    /* Where each key was last set, indexed by cfg.c's key table: line in `file`,
     * 0 = default, CFG_LINE_SET = cfg_set. Used for cfg_validate's messages. */
    uint32_t key_line[CFG_KEY_SLOTS];

    char *sensor_name; /* default: hostname */

    struct {
        char *interface;
        char *bpf;
        int snaplen;    /* 262144 */
        int buffer_mib; /* 64 */
        bool promisc;   /* true */
        bool immediate; /* false */
        int workers;    /* 1 */
    } capture;

    struct cfg_cidr internal[CFG_MAX_LIST]; /* default RFC 1918 + fd00::/8 */
    size_t n_internal;
    struct tw_addr resolvers[CFG_MAX_LIST];
    size_t n_resolvers;

    struct {
        char *paths[CFG_MAX_LIST]; /* default: conf/rules beside the config, else ./conf/rules */
        size_t n_paths;
        bool skip_unsupported;         /* false: an unsupported rule is an error */
        bool dns_query_as_destination; /* true: DNS query names also match DestinationHostname */
        bool drop_process_filters;     /* rules.unobservable_filters = "drop" (see rules.h) */
    } rules;

    struct cfg_allow allow[CFG_MAX_LIST];
    size_t n_allow;
    /* keys alert.log_suppressed / alert.publish_suppressed */
    bool log_suppressed;     /* true: suppressed hits go to the alerts file */
    bool publish_suppressed; /* false: not to Redis */

    struct {
        uint32_t max_flows;           /* 262144 */
        uint32_t idle_timeout_s;      /* 120 */
        uint32_t tcp_close_timeout_s; /* 10 */
        uint32_t udp_timeout_s;       /* 60 */
        uint32_t reasm_bytes;         /* 16384: client bytes buffered per flow */
        uint64_t reasm_total_mib;     /* 64: all reassembly buffers together */
        uint32_t reasm_source_pct;    /* 25: share of it one client address may hold */
        uint32_t stall_ms;            /* 500: reassembly, QUIC or nDPI state without progress
                                       * this long gives way under pressure; 0 never */
        uint32_t frag_max;            /* 1024 datagrams in reassembly */
        uint32_t frag_timeout_s;      /* 30 */
        bool ndpi;                    /* true */
        uint32_t ndpi_packets;        /* 12: packets per flow given to nDPI at most */
        uint32_t ndpi_max_flows;      /* 65536: flows with live nDPI state at once */
    } flow;

    struct {
        uint32_t dedup_window_s;    /* 3600; 0: no dedup, every hit alerts */
        uint32_t dedup_max;         /* 65536 entries */
        uint32_t update_interval_s; /* 300: periodic update of a deduplicated incident; 0 off */
        uint32_t health_interval_s; /* 10: at most one resource_pressure record per resource
                                     * this often (packet time) */
        uint32_t dns_map_max;       /* 262144 IP->name entries */
        uint32_t dns_ttl_cap_s;     /* 86400 */
        uint32_t dns_ttl_min_s;     /* 300: short TTLs are stretched to this */
        char *external;             /* "event" (default): a hit where neither side is
                                     * internal is an event record; "alert": an alert */
    } alert;

    struct {
        char *alerts_file;         /* NULL: none; "-" stdout */
        uint32_t alerts_queue_kib; /* the writer thread's queue (sink.h); 4096 */
        char *schema;              /* "ecs" | "asim" */
        char *summary_file;
        char *evidence_file;
    } output;

    struct {
        char *dir;                /* evidence.dir: per-incident pcaps DIR/<incident id>.pcap;
                                   * NULL (default): off */
        uint64_t max_total_mib;   /* 1024: the directory's pcaps together; oldest go first */
        uint64_t max_flow_mib;    /* 64: one flow's packets in its incident's pcap */
        uint32_t early_packets;   /* 16: first packets kept per undecided young flow */
        uint32_t early_kib;       /* 32: their bytes per flow */
        uint64_t early_total_mib; /* 32: every flow's early packets together */
        uint32_t queue_mib;       /* 16: the writer thread's queue */
        uint32_t redis_max_kib;   /* 0 (off): bounded copy of each incident pcap in Redis */
        char *redis_prefix;       /* "tunnelwatch:evidence:" */
        uint32_t redis_ttl_s;     /* 86400 */
    } evidence;

    struct {
        char *url; /* redis://127.0.0.1:6379/0 ; "none" disables */
        char *user;
        char *password;
        char *password_env;
        bool mode_stream, mode_channel, mode_list; /* key redis.modes: true, true, false */
        char *stream_key, *channel_key, *list_key, *heartbeat_prefix;
        long stream_maxlen;     /* 100000 */
        uint32_t queue_max;     /* 10000 */
        char *spool_dir;        /* redis.spool.dir: /var/spool/tunnelwatch ; "" disables */
        uint64_t spool_max_mib; /* redis.spool.max_mib: 256 */
        uint32_t timeout_ms;    /* 2000 */
        uint32_t heartbeat_s;   /* 10 */
        uint32_t stop_flush_ms; /* 5000: time given to deliver the queue at exit */
        /* Redis Sentinel: "host:port" items; when set, the master named master_name is asked
         * of them (redis.url then gives only the db and credentials) */
        char *sentinels[CFG_MAX_LIST];
        size_t n_sentinels;
        char *master_name;        /* NULL: not set (required with sentinels) */
        uint32_t wait_replicas;   /* 0: a write counts once the master took it */
        uint32_t wait_timeout_ms; /* 1000: WAIT's timeout */
    } redis;

    struct {
        bool enabled;             /* false: each sensor alone (workers still share bindings) */
        char *url;                /* NULL: redis.url */
        char *bind_prefix;        /* tunnelwatch:bind: (+ IP: a binding, expiring with its TTL) */
        char *channel;            /* tunnelwatch:bindings: bindings as they are learned */
        char *incident_prefix;    /* tunnelwatch:incident: (+ host|rule|name: the winner's id) */
        bool dedup;               /* true: one incident per host, rule and name fleet-wide */
        uint32_t queue_max;       /* 4096: each fleet queue's capacity */
        uint32_t sync_timeout_ms; /* 3000: start-up wait for the fleet's bindings */
    } fleet;

    struct {
        int verbosity;             /* 0 normal, 1 -v, -1 -q */
        bool syslog;               /* false */
        uint32_t stats_interval_s; /* 0: off */
    } log;

    struct {
        char *listen;      /* NULL: off; e.g. "127.0.0.1:9917" */
        bool allow_remote; /* false: only loopback addresses may be used */
    } metrics;
};

void cfg_defaults(struct tw_cfg *cfg);
void cfg_free(struct tw_cfg *cfg);
/* Reads path over the current values (a list in the file replaces the list). Every problem
 * is written to err as one line "PATH:LINE: KEY: problem" (a libconfig syntax error as
 * "PATH:LINE: syntax error: TEXT"); returns the number of problems (0 = ok) or TW_EIO
 * (message written too). Relative rule paths resolve against the file's folder; without
 * rules.paths the rules are <folder of the file>/rules. redis.password_env is read here. */
int cfg_load(struct tw_cfg *cfg, const char *path, FILE *err);
/* Applies "KEY=VALUE" (value parsed by the key's type; lists comma-separated).
 * Returns 0 or 1 problem written to err as "--set KEY: problem". */
int cfg_set(struct tw_cfg *cfg, const char *assignment, FILE *err);
/* Cross-checks (limits, paths, CIDRs); returns the number of problems written to err. */
int cfg_validate(const struct tw_cfg *cfg, FILE *err);
/* Prints the effective configuration in libconfig syntax (passwords masked as "********");
 * cfg_load() of the output gives the same values. */
void cfg_print(const struct tw_cfg *cfg, FILE *out);

/* A separate key table: another program's configuration file (tunnelwatch-web's) read with
 * the same machinery and messages as the sensor's, into the caller's own struct. */
enum cfg_tkind {
    CFG_T_STR, /* char[size] at off; a value of size bytes or more is a problem */
    CFG_T_I64, /* int64_t at off, within min..max */
};
struct cfg_tkey {
    const char *path; /* dotted, e.g. "redis.url"; its prefixes ("redis") are the groups */
    enum cfg_tkind kind;
    size_t off, size; /* offsetof / sizeof the field in the caller's struct */
    int64_t min, max; /* CFG_T_I64 only */
};
/* Reads path over the values already in obj (keys the file does not name keep them). Each
 * problem is one line "PATH:LINE: KEY: problem" as in cfg_load: unknown key (with a
 * suggestion), wrong type, out of range, string too long, syntax error. Returns the number
 * of problems (0 = ok) or TW_EIO (message written). */
int cfg_load_table(const struct cfg_tkey *table, size_t n, void *obj, const char *path, FILE *err);

/* CIDR helpers used by attribution and the allowlist. */
int cfg_parse_cidr(const char *s, struct cfg_cidr *out) TW_WUR;
bool cfg_cidr_contains(const struct cfg_cidr *c, const struct tw_addr *a);

#endif /* TW_CFG_H */
