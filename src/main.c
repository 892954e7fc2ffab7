/* main.c - command line, signals, start-up and shutdown of the sensor. No parsing here.
 *
 * Start-up order: arguments, configuration (file, then --set, then flags), validation,
 * rules, outputs, capture sources (opened as root), privilege drop (-Z), Redis publisher,
 * then the capture loop. Exit codes: 0 ok, 1 runtime failure (unreadable or truncated
 * capture, alerts that could not be delivered in a replay), 2 usage, configuration or rule
 * error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/capture.h"
#include "tunnelwatch/cfg.h"
#include "tunnelwatch/engine.h"
#include "tunnelwatch/metrics.h"
#include "tunnelwatch/publish.h"
#include "tunnelwatch/rules.h"

static volatile sig_atomic_t stop, terminated, reload, dump_stats;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload = 1;
    else if (sig == SIGUSR1)
        dump_stats = 1;
    else
        stop = terminated = 1;
}

static void usage(FILE *out)
{
    fputs("usage: tunnelwatch [-i IFACE | -r FILE...] [options] [BPF expression]\n"
          "Passive sensor: flags DNS, TLS/QUIC SNI and HTTP Host names matched by Sigma rules.\n"
          "  -i IFACE            capture live on IFACE        -D, --list-interfaces\n"
          "  -r FILE             read a pcap/pcapng (repeatable, - = stdin, a folder = its "
          "captures)\n"
          "  -c CONF             configuration file           -R RULES  rule file or folder "
          "(repeatable)\n"
          "  -F FILE             BPF expression from FILE     -B MiB    kernel buffer size\n"
          "  -s SNAPLEN          snapshot length              -Z USER   drop privileges to USER\n"
          "  -T, --check-config  validate, print the effective configuration, exit\n"
          "  --set KEY=VALUE     override any configuration key (repeatable)\n"
          "  --names             print every hostname observation as TSV (investigation)\n"
          "  --alerts FILE|-     write alert records (JSON lines)\n"
          "  --schema ecs|asim   alert field names (default ecs)\n"
          "  --summary FILE      per-host summary as JSON at the end of a replay\n"
          "  --write-evidence F  write the packets of flagged flows to pcap F\n"
          "  --redis URL|none    redis://[user:pass@]host:port/db or unix:///path.sock\n"
          "  --realtime[=SPEED]  replay at the recorded pace (SPEED times faster)\n"
          "  --workers N         live capture threads (PACKET_FANOUT)\n"
          "  --max-packets N     stop after N packets        --pidfile FILE\n"
          "  -v, -q              more / less output           -V, --version   -h, --help\n"
          "Exit status: 0 ok, 1 runtime failure, 2 usage/configuration/rule error.\n",
          out);
}

enum {
    OPT_SET = 256,
    OPT_NAMES,
    OPT_ALERTS,
    OPT_SCHEMA,
    OPT_SUMMARY,
    OPT_EVIDENCE,
    OPT_REDIS,
    OPT_REALTIME,
    OPT_MAXPKT,
    OPT_PIDFILE,
    OPT_WORKERS,
};

struct args {
    const char *iface;
    char *reads[256];
    size_t n_reads;
    const char *conf;
    char *rules[CFG_MAX_LIST];
    size_t n_rules;
    char *sets[256];
    size_t n_sets;
    const char *bpf_file;
    char *bpf;
    int buffer_mib, snaplen, workers;
    const char *user, *pidfile;
    bool names, check, list, realtime;
    double speed;
    const char *alerts, *schema, *summary, *evidence, *redis;
    uint64_t max_packets;
    int verbosity;
};

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option lo[] = {
        {"interface", required_argument, NULL, 'i'},
        {"read", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"rules", required_argument, NULL, 'R'},
        {"list-interfaces", no_argument, NULL, 'D'},
        {"check-config", no_argument, NULL, 'T'},
        {"set", required_argument, NULL, OPT_SET},
        {"names", no_argument, NULL, OPT_NAMES},
        {"alerts", required_argument, NULL, OPT_ALERTS},
        {"schema", required_argument, NULL, OPT_SCHEMA},
        {"summary", required_argument, NULL, OPT_SUMMARY},
        {"write-evidence", required_argument, NULL, OPT_EVIDENCE},
        {"redis", required_argument, NULL, OPT_REDIS},
        {"realtime", optional_argument, NULL, OPT_REALTIME},
        {"max-packets", required_argument, NULL, OPT_MAXPKT},
        {"pidfile", required_argument, NULL, OPT_PIDFILE},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "i:r:c:R:F:B:s:Z:DTvqVh", lo, NULL)) != -1) {
        switch (c) {
        case 'i':
            a->iface = optarg;
            break;
        case 'r':
            if (a->n_reads == TW_ARRAY_LEN(a->reads))
                goto toomany;
            a->reads[a->n_reads++] = optarg;
            break;
        case 'c':
            a->conf = optarg;
            break;
        case 'R':
            if (a->n_rules == TW_ARRAY_LEN(a->rules))
                goto toomany;
            a->rules[a->n_rules++] = optarg;
            break;
        case 'F':
            a->bpf_file = optarg;
            break;
        case 'B':
            if (parse_u64(optarg, &v) || v == 0 || v > 65536) {
                fprintf(stderr, "tunnelwatch: -B: expected MiB between 1 and 65536\n");
                return 2;
            }
            a->buffer_mib = (int)v;
            break;
        case 's':
            if (parse_u64(optarg, &v) || v > 262144) {
                fprintf(stderr, "tunnelwatch: -s: expected a snaplen up to 262144\n");
                return 2;
            }
            a->snaplen = v ? (int)v : 262144;
            break;
        case 'Z':
            a->user = optarg;
            break;
        case 'D':
            a->list = true;
            break;
        case 'T':
            a->check = true;
            break;
        case OPT_SET:
            if (a->n_sets == TW_ARRAY_LEN(a->sets))
                goto toomany;
            a->sets[a->n_sets++] = optarg;
            break;
        case OPT_NAMES:
            a->names = true;
            break;
        case OPT_ALERTS:
            a->alerts = optarg;
            break;
        case OPT_SCHEMA:
            a->schema = optarg;
            break;
        case OPT_SUMMARY:
            a->summary = optarg;
            break;
        case OPT_EVIDENCE:
            a->evidence = optarg;
            break;
        case OPT_REDIS:
            a->redis = optarg;
            break;
        case OPT_REALTIME:
            a->realtime = true;
            a->speed = 1.0;
            if (optarg) {
                char *end;
                a->speed = strtod(optarg, &end);
                if (*end || !(a->speed > 0)) {
                    fprintf(stderr, "tunnelwatch: --realtime: SPEED must be a positive number\n");
                    return 2;
                }
            }
            break;
        case OPT_MAXPKT:
            if (parse_u64(optarg, &a->max_packets)) {
                fprintf(stderr, "tunnelwatch: --max-packets: expected a number\n");
                return 2;
            }
            break;
        case OPT_PIDFILE:
            a->pidfile = optarg;
            break;
        case OPT_WORKERS:
            if (parse_u64(optarg, &v) || v == 0 || v > 64) {
                fprintf(stderr, "tunnelwatch: --workers: expected 1 to 64\n");
                return 2;
            }
            a->workers = (int)v;
            break;
        case 'v':
            a->verbosity++;
            break;
        case 'q':
            a->verbosity--;
            break;
        case 'V':
            printf("tunnelwatch %s (%s)\n", TW_VERSION, pcap_lib_version());
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "tunnelwatch: try 'tunnelwatch -h'\n");
            return 2;
        }
    }
    /* trailing words form the BPF expression, as with tcpdump */
    size_t len = 0;
    for (int i = optind; i < argc; i++)
        len += strlen(argv[i]) + 1;
    if (len) {
        a->bpf = calloc(1, len);
        if (!a->bpf)
            return 1;
        size_t o = 0;
        for (int i = optind; i < argc; i++) {
            size_t w = strlen(argv[i]);
            if (i > optind)
                a->bpf[o++] = ' ';
            memcpy(a->bpf + o, argv[i], w); /* len counts every word and separator */
            o += w;
        }
    }
    return 0;
toomany:
    fprintf(stderr, "tunnelwatch: too many -%c/--set arguments\n", c < 256 ? c : 's');
    return 2;
}

static char *read_text_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++) /* comments after '#' are allowed, as in tcpdump -F */
        if (buf[i] == '#')
            while (i < n && buf[i] != '\n')
                buf[i++] = ' ';
    return buf;
}

/* Applies the command-line flags over the configuration, as --set lines. */
static int apply_flags(struct tw_cfg *cfg, const struct args *a)
{
    int problems = 0;
    char line[PATH_MAX + 64];
    for (size_t i = 0; i < a->n_sets; i++)
        problems += cfg_set(cfg, a->sets[i], stderr);
#define SETF(...)                                                                                  \
    do {                                                                                           \
        snprintf(line, sizeof(line), __VA_ARGS__);                                                 \
        problems += cfg_set(cfg, line, stderr);                                                    \
    } while (0)
    if (a->iface)
        SETF("capture.interface=%s", a->iface);
    if (a->snaplen)
        SETF("capture.snaplen=%d", a->snaplen);
    if (a->buffer_mib)
        SETF("capture.buffer_mib=%d", a->buffer_mib);
    if (a->workers)
        SETF("capture.workers=%d", a->workers);
    if (a->alerts)
        SETF("output.alerts_file=%s", a->alerts);
    if (a->schema)
        SETF("output.schema=%s", a->schema);
    if (a->summary)
        SETF("output.summary_file=%s", a->summary);
    if (a->evidence)
        SETF("output.evidence_file=%s", a->evidence);
    if (a->redis)
        SETF("redis.url=%s", a->redis);
#undef SETF
    if (a->n_rules) {
        for (size_t i = 0; i < cfg->rules.n_paths; i++)
            free(cfg->rules.paths[i]);
        cfg->rules.n_paths = 0;
        for (size_t i = 0; i < a->n_rules; i++) {
            cfg->rules.paths[cfg->rules.n_paths] = realpath(a->rules[i], NULL);
            if (!cfg->rules.paths[cfg->rules.n_paths])
                cfg->rules.paths[cfg->rules.n_paths] = strdup(a->rules[i]);
            cfg->rules.n_paths++;
        }
    }
    if (a->bpf) {
        free(cfg->capture.bpf);
        cfg->capture.bpf = strdup(a->bpf);
    }
    cfg->log.verbosity += a->verbosity;
    return problems;
}

/* When neither -c nor -R names rules, use conf/rules beside the binary's source tree or the
 * installed /etc/tunnelwatch/rules, whichever exists. */
static void default_rules(struct tw_cfg *cfg)
{
    for (size_t i = 0; i < cfg->rules.n_paths; i++)
        if (access(cfg->rules.paths[i], R_OK) == 0)
            return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *cands[4] = {"/etc/tunnelwatch/rules", NULL, NULL, NULL};
    char c1[PATH_MAX + 32], c2[PATH_MAX + 32];
    if (n > 0) {
        exe[n] = '\0';
        char *dir = dirname(exe);
        snprintf(c1, sizeof(c1), "%s/../conf/rules", dir);
        snprintf(c2, sizeof(c2), "%s/../../conf/rules", dir);
        cands[1] = c1;
        cands[2] = c2;
    }
    for (int i = 0; i < 3; i++) {
        if (cands[i] && access(cands[i], R_OK) == 0) {
            for (size_t k = 0; k < cfg->rules.n_paths; k++)
                free(cfg->rules.paths[k]);
            cfg->rules.paths[0] = realpath(cands[i], NULL);
            cfg->rules.n_paths = cfg->rules.paths[0] ? 1 : 0;
            return;
        }
    }
}

static struct ruleset *load_rules(const struct tw_cfg *cfg, FILE *err, int *status)
{
    struct ruleset *rs =
        ruleset_new(cfg->rules.skip_unsupported ? RULE_POLICY_SKIP : RULE_POLICY_ERROR);
    if (!rs) {
        *status = 1;
        return NULL;
    }
    for (size_t i = 0; i < cfg->rules.n_paths; i++) {
        if (ruleset_load(rs, cfg->rules.paths[i], err) < 0) {
            ruleset_free(rs);
            *status = 2;
            return NULL;
        }
    }
    if (ruleset_build(rs) != TW_OK) {
        fprintf(err, "tunnelwatch: cannot build the rule matcher\n");
        ruleset_free(rs);
        *status = 1;
        return NULL;
    }
    return rs;
}

static int drop_privileges(const char *user)
{
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        fprintf(stderr, "tunnelwatch: -Z %s: no such user\n", user);
        return -1;
    }
    if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        fprintf(stderr, "tunnelwatch: -Z %s: cannot drop privileges: %s\n", user, strerror(errno));
        return -1;
    }
    /* setuid() away from root clears the permitted and effective capability sets; refuse to
     * go on if anything could bring them back */
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (setuid(0) == 0) {
        fprintf(stderr, "tunnelwatch: -Z %s: root could be regained, refusing to run\n", user);
        return -1;
    }
    return 0;
}

#define MAX_WORKERS 64

/* A capture worker (--workers / capture.workers > 1): its own PACKET_FANOUT socket and its own
 * engine (flow table, dedup), so both directions of a flow meet in one worker. */
struct worker {
    pthread_t th;
    struct cap_src src;
    struct engine *e;
    struct tw_cfg cfgs[2]; /* shallow copies (this worker's share of flow.max_flows); a reload
                            * fills the one the worker is not using */
    int cur;
    int rc;
    bool started;
    bool exited; /* __atomic: the thread left its loop */
};

/* Clears every capability of this thread (and the threads created after it): the capture is
 * open, nothing else needs privilege. capset(2) directly, so no libcap dependency. */
static void drop_capabilities(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (syscall(SYS_capset, &hdr, data) != 0)
        fprintf(stderr, "tunnelwatch: warning: cannot clear capabilities: %s\n", strerror(errno));
}

struct loop {
    struct engine *e;
    struct pub *pub;
    struct tw_cfg *cfg;
    const struct args *args;
    struct tw_cfg *old_cfgs[64];
    size_t n_old_cfg;
    bool realtime;
    double speed;
    int64_t first_pkt_us, start_wall_us;
    uint64_t max_packets, seen;
    struct cap_src *src;
    /* housekeeping state */
    struct ruleset **rules;
    struct ruleset *old_rules[64];
    size_t n_old;
    FILE **alerts;
    time_t started, last_hb;
    int64_t loop_us; /* wall time spent in the packet loop of replays */
    struct metrics *metrics;
    int64_t last_metrics_us;
    bool progress; /* stderr is a terminal: show a progress line for replays */
    int64_t progress_start_us, progress_last_us;
    uint64_t progress_done;  /* bytes of the files already finished */
    uint64_t progress_total; /* bytes of all the input files */
    bool progress_shown;
    struct worker *workers; /* live capture with capture.workers > 1 */
    int n_workers;
    FILE *old_alerts[64]; /* alerts streams replaced while workers ran */
    size_t n_old_alerts;
    uint64_t config_sig; /* config_signature() of what is running */
};

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    struct loop *l = (struct loop *)(void *)user;
    if (l->realtime) {
        int64_t t = (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec;
        if (!l->first_pkt_us) {
            l->first_pkt_us = t;
            l->start_wall_us = wall_us();
        }
        int64_t due = l->start_wall_us + (int64_t)((double)(t - l->first_pkt_us) / l->speed);
        int64_t now = wall_us();
        while (due > now && !stop) {
            int64_t d = due - now > 200000 ? 200000 : due - now;
            struct timespec ts = {0, (long)d * 1000};
            nanosleep(&ts, NULL);
            now = wall_us();
        }
    }
    engine_packet(l->e, h, data);
    l->seen++;
    if (l->max_packets && l->seen >= l->max_packets) {
        stop = 1;
        if (l->src->p)
            pcap_breakloop(l->src->p);
    }
}

/* Adds the "field\tvalue" lines of src into the same lines of acc (workers' engines print the
 * same fields in the same order). */
static void sum_stats(char *acc, const char *src)
{
    char out[16384];
    size_t o = 0;
    const char *a = acc, *b = src;
    while (*a && o < sizeof(out) - 64) {
        const char *ae = strchr(a, '\n'), *be = strchr(b, '\n');
        const char *at = strchr(a, '\t'), *bt = strchr(b, '\t');
        if (!ae || !at || at > ae)
            break;
        uint64_t v = strtoull(at + 1, NULL, 10);
        if (be && bt && bt < be && bt - b == at - a && memcmp(a, b, (size_t)(at - a)) == 0)
            v += strtoull(bt + 1, NULL, 10);
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%.*s\t%" PRIu64 "\n", (int)(at - a), a, v);
        a = ae + 1;
        b = be ? be + 1 : b + strlen(b);
    }
    memcpy(acc, out, o);
    acc[o] = '\0';
}

/* Every counter of the sensor as "field\tvalue" lines: the engine's (summed over capture
 * workers), kernel and interface drops when live, uptime and version. */
static size_t sensor_stats(struct loop *l, char *buf, size_t len)
{
    size_t n;
    uint64_t drop = 0, ifdrop = 0;
    bool live = false;
    if (l->n_workers > 0) {
        static char one[16384];
        n = engine_stats_text(l->workers[0].e, buf, len);
        for (int i = 1; i < l->n_workers; i++) {
            engine_stats_text(l->workers[i].e, one, sizeof(one));
            sum_stats(buf, one);
        }
        n = strlen(buf);
        for (int i = 0; i < l->n_workers; i++) {
            cap_live_stats(&l->workers[i].src);
            drop += l->workers[i].src.drop;
            ifdrop += l->workers[i].src.ifdrop;
        }
        live = true;
    } else {
        n = engine_stats_text(l->e, buf, len);
        if (l->src && l->src->live) {
            cap_live_stats(l->src);
            drop = l->src->drop;
            ifdrop = l->src->ifdrop;
            live = true;
        }
    }
    if (live && n < len)
        n += (size_t)snprintf(buf + n, len - n,
                              "kernel_drops\t%" PRIu64 "\ninterface_drops\t%" PRIu64 "\n", drop,
                              ifdrop);
    if (n < len)
        n += (size_t)snprintf(buf + n, len - n, "uptime_s\t%lld\nversion\t%s\n",
                              (long long)(time(NULL) - l->started), TW_VERSION);
    return n < len ? n : len - 1;
}

static void heartbeat(struct loop *l)
{
    if (!l->pub)
        return;
    static char buf[16384];
    sensor_stats(l, buf, sizeof(buf));
    pub_set_heartbeat(l->pub, buf);
}

static void print_stats(struct loop *l, FILE *out)
{
    static char buf[16384];
    sensor_stats(l, buf, sizeof(buf));
    fputs("tunnelwatch: statistics\n", out);
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (tab && strcmp(tab + 1, "0") != 0 && strcmp(line, "version\t" TW_VERSION) != 0) {
            *tab = '\0';
            fprintf(out, "  %-28s %s\n", line, tab + 1);
        }
    }
    if (l->loop_us)
        fprintf(out, "  %-28s %lld\n", "replay_ms", (long long)(l->loop_us / 1000));
    if (l->pub) {
        struct pub_stats ps;
        pub_get_stats(l->pub, &ps);
        fprintf(out,
                "  redis: delivered %" PRIu64 ", queued %" PRIu64 ", spooled %" PRIu64
                ", dropped %" PRIu64 ", reconnects %" PRIu64 "%s\n",
                ps.delivered, ps.queued, ps.spool_records, ps.dropped, ps.reconnects,
                ps.connected ? "" : " (not connected)");
    }
}

/* The Prometheus snapshot: the heartbeat's numbers, refreshed at most once a second. */
static void refresh_metrics(struct loop *l)
{
    int64_t now = wall_us();
    if (!l->metrics || now - l->last_metrics_us < 1000000)
        return;
    l->last_metrics_us = now;
    static char lines[20480], prom[65536];
    size_t n = sensor_stats(l, lines, sizeof(lines) - 4096);
    if (l->pub) {
        struct pub_stats ps;
        pub_get_stats(l->pub, &ps);
        metrics_pub_lines(&ps, lines + n, sizeof(lines) - n);
    }
    metrics_format(lines, prom, sizeof(prom));
    metrics_publish(l->metrics, prom);
}

/* A replay longer than a few seconds shows where it is, on a terminal only. */
static void show_progress(struct loop *l, bool final)
{
    if (!l->progress || !l->src || l->src->live)
        return;
    int64_t now = wall_us();
    if (!final && (now - l->progress_start_us < 2000000 || now - l->progress_last_us < 500000))
        return;
    if (final) {
        if (l->progress_shown)
            fputs("\r\033[K", stderr);
        return;
    }
    l->progress_last_us = now;
    l->progress_shown = true;
    uint64_t done = l->progress_done + cap_file_pos(l->src);
    double secs = (double)(now - l->progress_start_us) / 1e6;
    double pct = l->progress_total ? 100.0 * (double)done / (double)l->progress_total : 0;
    fprintf(stderr, "\r\033[K[%5.1f%%] %.0f MB of %.0f MB, %.2f Mpkt/s, %llu alerts", pct,
            (double)done / 1e6, (double)l->progress_total / 1e6, (double)l->seen / secs / 1e6,
            (unsigned long long)engine_alerts(l->e));
}

/* SIGHUP: reopen the alerts file (logrotate moved it). Capture workers may be writing to the
 * old stream, so they are handed the new one and the old is closed at exit. */
static void reopen_alerts(struct loop *l)
{
    if (!*l->alerts || *l->alerts == stdout || !l->cfg->output.alerts_file)
        return;
    if (l->n_workers > 0 && l->n_old_alerts == TW_ARRAY_LEN(l->old_alerts)) {
        fprintf(stderr, "tunnelwatch: too many alerts file reopens with workers, restart\n");
        return;
    }
    FILE *na = fopen(l->cfg->output.alerts_file, "a");
    if (!na) {
        fprintf(stderr, "tunnelwatch: cannot reopen %s: %s (still writing the old file)\n",
                l->cfg->output.alerts_file, strerror(errno));
        return;
    }
    if (l->n_workers == 0) {
        fclose(*l->alerts);
        engine_set_alerts_out(l->e, na);
    } else {
        for (int i = 0; i < l->n_workers; i++)
            (void)engine_post_update(l->workers[i].e, NULL, NULL, na);
        fflush(*l->alerts);
        l->old_alerts[l->n_old_alerts++] = *l->alerts;
    }
    *l->alerts = na;
}

static uint64_t sig_add(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static uint64_t sig_path(uint64_t h, const char *path, int depth)
{
    struct stat st;
    h = sig_add(h, path, strlen(path));
    if (stat(path, &st) != 0)
        return sig_add(h, "missing", 7);
    h = sig_add(h, &st.st_mtim, sizeof(st.st_mtim));
    h = sig_add(h, &st.st_size, sizeof(st.st_size));
    h = sig_add(h, &st.st_ino, sizeof(st.st_ino));
    if (!S_ISDIR(st.st_mode) || depth > 4)
        return h;
    DIR *d = opendir(path);
    if (!d)
        return h;
    struct dirent *e;
    while ((e = readdir(d))) { /* order does not matter: entries are xor-folded */
        if (e->d_name[0] == '.')
            continue;
        char full[PATH_MAX];
        snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
        h ^= sig_path(1469598103934665603ULL, full, depth + 1);
    }
    closedir(d);
    return h;
}

/* What a reload would read: the configuration file and every rule file (name, size, mtime). */
static uint64_t config_signature(const struct loop *l)
{
    uint64_t h = 1469598103934665603ULL;
    if (l->args->conf)
        h = sig_path(h, l->args->conf, 0);
    for (size_t i = 0; i < l->cfg->rules.n_paths; i++)
        h = sig_path(h, l->cfg->rules.paths[i], 0);
    return h;
}

/* Between batches of packets: heartbeat, metrics, SIGUSR1 statistics, SIGHUP reload. */
static void housekeeping(struct loop *l)
{
    refresh_metrics(l);
    show_progress(l, false);
    time_t t = time(NULL);
    if (l->pub && l->cfg->redis.heartbeat_s &&
        t - l->last_hb >= (time_t)l->cfg->redis.heartbeat_s) {
        heartbeat(l);
        l->last_hb = t;
    }
    if (dump_stats) {
        dump_stats = 0;
        print_stats(l, stderr);
    }
    if (!reload)
        return;
    reload = 0;
    reopen_alerts(l); /* logrotate's SIGHUP: whatever happens to the reload below */
    uint64_t sig = config_signature(l);
    if (sig == l->config_sig) {
        /* nothing changed on disk (the nightly logrotate HUP): keep the running rules */
        fprintf(stderr, "tunnelwatch: configuration and rules unchanged (%zu rules)\n",
                ruleset_rule_count(*l->rules));
        return;
    }
    /* a new configuration (when there is a file) and new rules; any problem keeps the old */
    struct tw_cfg *nc = NULL;
    if (l->args->conf) {
        nc = calloc(1, sizeof(*nc));
        if (!nc)
            return;
        cfg_defaults(nc);
        int problems = cfg_load(nc, l->args->conf, stderr);
        if (problems >= 0) {
            problems += apply_flags(nc, l->args);
            problems += cfg_validate(nc, stderr);
        }
        if (problems != 0 || l->n_old_cfg == TW_ARRAY_LEN(l->old_cfgs)) {
            fprintf(stderr,
                    "tunnelwatch: reload failed, keeping the running configuration and rules\n");
            cfg_free(nc);
            free(nc);
            return;
        }
    }
    int st = 0;
    struct ruleset *nr = load_rules(nc ? nc : l->cfg, stderr, &st);
    if (!nr || l->n_old == TW_ARRAY_LEN(l->old_rules) ||
        (nc && engine_set_cfg(l->e, nc) != TW_OK)) {
        fprintf(stderr, "tunnelwatch: reload failed, keeping the running rules\n");
        ruleset_free(nr);
        if (nc) {
            cfg_free(nc);
            free(nc);
        }
        return;
    }
    /* flows flagged under the old rules point at them: keep them until exit */
    l->old_rules[l->n_old++] = *l->rules;
    *l->rules = nr;
    engine_set_rules(l->e, nr);
    for (int i = 0; i < l->n_workers; i++) {
        struct worker *w = &l->workers[i];
        if (!engine_update_idle(w->e, 2000))
            continue; /* a stopped worker: the main loop shuts the sensor down */
        if (nc) {
            w->cur ^= 1;
            w->cfgs[w->cur] = *nc;
            w->cfgs[w->cur].flow.max_flows = w->cfgs[w->cur ^ 1].flow.max_flows;
        }
        engine_post_update(w->e, nr, nc ? &w->cfgs[w->cur] : NULL, NULL);
    }
    if (nc) {
        l->old_cfgs[l->n_old_cfg++] = l->cfg;
        l->cfg = nc;
    }
    l->config_sig = sig;
    fprintf(stderr, "tunnelwatch: rules reloaded (%zu rules)\n", ruleset_rule_count(nr));
}

/* Waits up to 200 ms for the live handle to become readable. libpcap's own blocking read
 * retries poll() after a signal and, with TPACKET_V3, does not return on a quiet link, so the
 * handle is non-blocking and we poll: signals, the heartbeat and flow expiry keep running on a
 * quiet interface. */
static void wait_readable(pcap_t *p)
{
    struct pollfd pfd = {pcap_get_selectable_fd(p), POLLIN, 0};
    if (pfd.fd >= 0)
        (void)poll(&pfd, 1, 200);
}

/* A quiet live link: expiry and dedup updates run on the wall clock. */
static void tick_idle(struct engine *e)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tw_time now = {ts.tv_sec, (int32_t)(ts.tv_nsec / 1000)};
    engine_tick(e, now);
}

static const char *link_name(int dlt)
{
    const char *n = pcap_datalink_val_to_name(dlt);
    return n ? n : "?";
}

/* Live: pcap_dispatch in batches; idle periods still tick flow expiry and the heartbeat. */
static int run_live(struct loop *l, struct cap_src *src)
{
    while (!stop) {
        wait_readable(src->p);
        int n = pcap_dispatch(src->p, 512, on_packet, (u_char *)l);
        if (n == PCAP_ERROR) {
            fprintf(stderr, "tunnelwatch: %s: %s\n", src->name, pcap_geterr(src->p));
            return 1;
        }
        if (stop)
            break;
        if (n <= 0)
            tick_idle(l->e);
        housekeeping(l);
    }
    return 0;
}

struct filt {
    int dlt;
    struct bpf_program prog;
};

/* A pcap file libpcap reads (a pipe, stdin, an unusual pcap variant) without a filter:
 * libpcap's own batch loop, the cheapest way through it. */
static int run_pcap_dispatch(struct loop *l, struct cap_src *src)
{
    int rc = 0;
    int64_t t0 = wall_us();
    engine_set_dlt(l->e, src->dlt);
    while (!stop) {
        int n = pcap_dispatch(src->p, 4096, on_packet, (u_char *)l);
        if (n == PCAP_ERROR) {
            fprintf(stderr, "tunnelwatch: %s: %s (the packets before it were processed)\n",
                    src->name, pcap_geterr(src->p));
            rc = 1;
            break;
        }
        if (n <= 0)
            break; /* end of file, or pcap_breakloop */
        housekeeping(l);
    }
    l->loop_us += wall_us() - t0;
    return rc;
}

/* A classic pcap our reader takes, without a filter: batches of records straight from the read
 * buffer into engine_packets (see there). */
static int run_batches(struct loop *l, struct cap_src *src)
{
    struct pcap_pkthdr h[ENGINE_BATCH];
    const uint8_t *d[ENGINE_BATCH];
    char err[512];
    int rc = 0;
    int64_t t0 = wall_us();
    engine_set_dlt(l->e, src->dlt);
    while (!stop) {
        int max = ENGINE_BATCH;
        if (l->max_packets && l->max_packets - l->seen < (uint64_t)max)
            max = (int)(l->max_packets - l->seen);
        int n = cap_next_batch(src, h, d, max, err, sizeof(err));
        if (n < 0) {
            fprintf(stderr, "tunnelwatch: %s: %s (the packets before it were processed)\n",
                    src->name, err);
            rc = 1;
            break;
        }
        if (n == 0)
            break;
        engine_packets(l->e, h, d, (size_t)n);
        uint64_t before = l->seen;
        l->seen += (uint64_t)n;
        if (l->max_packets && l->seen >= l->max_packets)
            stop = 1;
        /* signals and timers: every 4096 packets, as in run_file */
        if ((before >> 12) != (l->seen >> 12) || reload || dump_stats)
            housekeeping(l);
    }
    l->loop_us += wall_us() - t0;
    return rc;
}

/* Files: packet by packet, so pcapng interfaces of different link types each get theirs. */
static int run_file(struct loop *l, struct cap_src *src, const char *bpf)
{
    if (!src->ng && !(bpf && bpf[0]) && !l->realtime) {
        if (!dec_linktype_supported(src->dlt)) {
            fprintf(stderr, "tunnelwatch: %s: unsupported link type %d (%s)\n", src->name, src->dlt,
                    link_name(src->dlt));
            return 1;
        }
        return src->own ? run_batches(l, src) : run_pcap_dispatch(l, src);
    }
    char err[512];
    struct filt filters[8];
    int n_filt = 0, rc = 0, cur_dlt = -2;
    uint64_t unsupported = 0;
    struct pcap_pkthdr h;
    const uint8_t *data;
    int dlt;
    int r;
    int64_t t0 = wall_us();
    while (!stop && (r = cap_next(src, &h, &data, &dlt, err, sizeof(err))) == 1) {
        if (dlt != cur_dlt) {
            cur_dlt = dlt;
            engine_set_dlt(l->e, dlt);
        }
        if (!dec_linktype_supported(dlt)) {
            if (unsupported++ == 0)
                fprintf(stderr, "tunnelwatch: %s: unsupported link type %d (%s), frames skipped\n",
                        src->name, dlt, link_name(dlt));
            engine_skip_frame(l->e); /* numbered, not decoded */
            continue;
        }
        if (bpf && bpf[0]) {
            int k;
            for (k = 0; k < n_filt && filters[k].dlt != dlt; k++)
                ;
            if (k == n_filt) {
                pcap_t *dead = pcap_open_dead(dlt, 262144);
                if (!dead || n_filt == 8 ||
                    pcap_compile(dead, &filters[k].prog, bpf, 1, PCAP_NETMASK_UNKNOWN) != 0) {
                    fprintf(stderr, "tunnelwatch: bad filter expression \"%s\"%s%s\n", bpf,
                            dead ? ": " : "", dead ? pcap_geterr(dead) : "");
                    if (dead)
                        pcap_close(dead);
                    rc = 2;
                    break;
                }
                pcap_close(dead);
                filters[k].dlt = dlt;
                n_filt++;
            }
            if (!pcap_offline_filter(&filters[k].prog, &h, data)) {
                engine_skip_frame(l->e); /* frame numbers still count it, as tshark's do */
                continue;
            }
        }
        on_packet((u_char *)l, &h, data);
        /* signals and timers are looked at every 4096 packets, and at every packet of a
         * paced replay (slow by design) */
        if ((l->seen & 4095) == 0 || l->realtime || reload || dump_stats)
            housekeeping(l);
    }
    l->loop_us += wall_us() - t0;
    if (!stop && r < 0 && rc == 0) {
        fprintf(stderr, "tunnelwatch: %s: %s (the packets before it were processed)\n", src->name,
                err);
        rc = 1;
    }
    for (int k = 0; k < n_filt; k++)
        pcap_freecode(&filters[k].prog);
    return rc;
}

/* Opens one PACKET_FANOUT socket per worker on the interface (hash fanout: both directions of
 * a flow land in the same worker; fragments are defragmented by the kernel first). */
static int open_workers(struct loop *l, const struct tw_cfg *cfg, const struct cap_live_opts *lo,
                        char *err, size_t errlen)
{
    int n = cfg->capture.workers > MAX_WORKERS ? MAX_WORKERS : cfg->capture.workers;
    l->workers = calloc((size_t)n, sizeof(*l->workers));
    if (!l->workers) {
        snprintf(err, errlen, "out of memory");
        return TW_ENOMEM;
    }
    int group = (int)(getpid() & 0xffff);
    for (int i = 0; i < n; i++) {
        struct worker *w = &l->workers[i];
        l->n_workers = i + 1;
        if (cap_open_live(&w->src, cfg->capture.interface, lo,
                          i == 0 && cfg->log.verbosity >= 0 ? stderr : NULL, err, errlen))
            return TW_EIO;
        uint32_t v = (uint32_t)group | (uint32_t)(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG)
                                           << 16;
        if (setsockopt(pcap_fileno(w->src.p), SOL_PACKET, PACKET_FANOUT, &v, sizeof(v)) != 0) {
            snprintf(err, errlen, "%s: PACKET_FANOUT: %s", cfg->capture.interface, strerror(errno));
            return TW_EIO;
        }
    }
    if (cfg->log.verbosity >= 0)
        fprintf(stderr, "tunnelwatch: %d capture workers (PACKET_FANOUT hash group %d)\n", n,
                group);
    return TW_OK;
}

static void on_worker_packet(u_char *u, const struct pcap_pkthdr *h, const u_char *d)
{
    struct worker *w = (struct worker *)(void *)u;
    engine_packet(w->e, h, d);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!stop) {
        wait_readable(w->src.p);
        int n = pcap_dispatch(w->src.p, 512, on_worker_packet, (u_char *)w);
        if (n == PCAP_ERROR) {
            fprintf(stderr, "tunnelwatch: %s: %s\n", w->src.name, pcap_geterr(w->src.p));
            w->rc = 1;
            break;
        }
        engine_apply_update(w->e);
        if (n <= 0)
            tick_idle(w->e);
    }
    __atomic_store_n(&w->exited, true, __ATOMIC_RELEASE);
    return NULL;
}

/* Workers capture; this thread keeps the heartbeat, metrics, signals and reloads. */
static int run_workers(struct loop *l, const struct engine_opts *eo)
{
    for (int i = 0; i < l->n_workers; i++) {
        struct worker *w = &l->workers[i];
        w->cfgs[0] = *l->cfg; /* strings stay owned by the main configuration */
        w->cfgs[0].flow.max_flows = l->cfg->flow.max_flows / (uint32_t)l->n_workers;
        if (w->cfgs[0].flow.max_flows == 0)
            w->cfgs[0].flow.max_flows = 1;
        struct engine_opts o = *eo;
        o.cfg = &w->cfgs[0];
        o.evidence_path = NULL; /* one evidence file cannot take several writers */
        char err[256];
        w->e = engine_new(&o, *l->rules, err, sizeof(err));
        if (!w->e) {
            fprintf(stderr, "tunnelwatch: worker %d: %s\n", i, err);
            return 1;
        }
        engine_begin_input(w->e, NULL, w->src.dlt, false);
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals go to this thread only */
    for (int i = 0; i < l->n_workers; i++) {
        l->workers[i].started =
            pthread_create(&l->workers[i].th, NULL, worker_main, &l->workers[i]) == 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    while (!stop) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        for (int i = 0; i < l->n_workers; i++)
            if (__atomic_load_n(&l->workers[i].exited, __ATOMIC_ACQUIRE)) {
                fprintf(stderr, "tunnelwatch: capture worker %d stopped: shutting down\n", i);
                stop = 1; /* the other workers' share of the traffic would go unread */
            }
        if (!stop)
            housekeeping(l);
    }
    int rc = 0;
    for (int i = 0; i < l->n_workers; i++) {
        struct worker *w = &l->workers[i];
        if (w->started)
            pthread_join(w->th, NULL);
        engine_finish(w->e);
        rc |= w->rc;
    }
    return rc;
}

int main(int argc, char **argv)
{
    struct args a;
    memset(&a, 0, sizeof(a));
    int r = parse_args(argc, argv, &a);
    if (r)
        return r;
    char err[1024] = "";
    /* every resource, so that each exit path can release what exists (ASan checks leaks) */
    struct tw_cfg *cfg = NULL;
    struct ruleset *rules = NULL;
    char **inputs = NULL;
    FILE *alerts = NULL;
    struct pub *pub = NULL;
    int exit_code = 0;
    struct cap_src live;
    memset(&live, 0, sizeof(live));
    struct metrics *metrics = NULL;
    struct engine *e = NULL;
    struct loop l;
    memset(&l, 0, sizeof(l));
    if (a.list) {
        if (cap_list_interfaces(stdout, err, sizeof(err))) {
            fprintf(stderr, "tunnelwatch: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (a.bpf_file) {
        free(a.bpf);
        a.bpf = read_text_file(a.bpf_file, err, sizeof(err));
        if (!a.bpf) {
            fprintf(stderr, "tunnelwatch: -F %s\n", err);
            return 2; /* nothing allocated yet */
        }
    }

    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        free(a.bpf);
        return 1;
    }
    cfg_defaults(cfg);
    int problems = 0;
    if (a.conf) {
        int lr = cfg_load(cfg, a.conf, stderr); /* prints its own reason when unreadable */
        if (lr < 0) {
            exit_code = 2;
            goto out;
        }
        problems += lr;
    }
    problems += apply_flags(cfg, &a);
    if (!a.conf && !a.n_rules)
        default_rules(cfg);
    problems += cfg_validate(cfg, stderr); /* every problem in one run */
    if (problems) {
        fprintf(stderr, "tunnelwatch: %d configuration problem%s\n", problems,
                problems > 1 ? "s" : "");
        {
            exit_code = 2;
            goto out;
        }
    }

    int status = 0;
    rules = load_rules(cfg, stderr, &status);
    if (!rules) {
        exit_code = status;
        goto out;
    }
    if (a.check) {
        struct ruleset_summary rsum;
        ruleset_summary(rules, &rsum);
        cfg_print(cfg, stdout);
        printf("# rules: %zu rules, %zu patterns, %zu files, %zu skipped; fields:%s%s\n",
               rsum.rules, rsum.patterns, rsum.files, rsum.skipped,
               rsum.fields & RF_DEST_HOST ? " DestinationHostname" : "",
               rsum.fields & RF_QUERY ? " QueryName" : "");
        for (size_t i = 0; i < ruleset_rule_count(rules); i++) {
            const struct rule *ru = ruleset_rule(rules, i);
            printf("#   %s  %-8s %s\n", ru->id, ru->level ? ru->level : "-", ru->title);
        }
        goto out;
    }

    if (!cfg->capture.interface && a.n_reads == 0) {
        fprintf(stderr, "tunnelwatch: nothing to read: give -i IFACE or -r FILE (see -h)\n");
        {
            exit_code = 2;
            goto out;
        }
    }
    if (a.n_reads) {
        inputs = cap_expand_inputs(a.reads, a.n_reads, err, sizeof(err));
        if (!inputs) {
            fprintf(stderr, "tunnelwatch: %s\n", err);
            {
                exit_code = 1;
                goto out;
            }
        }
        if (!inputs[0]) {
            fprintf(stderr, "tunnelwatch: no capture files in %s\n", a.reads[0]);
            {
                exit_code = 1;
                goto out;
            }
        }
    }

    /* outputs */
    if (cfg->output.alerts_file) {
        if (!strcmp(cfg->output.alerts_file, "-"))
            alerts = stdout;
        else if (!(alerts = fopen(cfg->output.alerts_file, "a"))) {
            fprintf(stderr, "tunnelwatch: --alerts %s: %s\n", cfg->output.alerts_file,
                    strerror(errno));
            {
                exit_code = 1;
                goto out;
            }
        }
    }

    /* live source first: it needs root or CAP_NET_RAW, dropped right after */
    if (cfg->capture.interface && a.n_reads == 0) {
        struct cap_live_opts lo = {cfg->capture.snaplen, cfg->capture.buffer_mib,
                                   cfg->capture.promisc, cfg->capture.immediate, cfg->capture.bpf};
        if (cfg->capture.workers > 1) {
            if (open_workers(&l, cfg, &lo, err, sizeof(err))) {
                fprintf(stderr, "tunnelwatch: %s\n", err);
                exit_code = 1;
                goto out;
            }
        } else if (cap_open_live(&live, cfg->capture.interface, &lo,
                                 cfg->log.verbosity >= 0 ? stderr : NULL, err, sizeof(err))) {
            fprintf(stderr, "tunnelwatch: %s\n", err);
            {
                exit_code = 1;
                goto out;
            }
        }
    }
    if (a.pidfile) {
        FILE *pf = fopen(a.pidfile, "w");
        if (!pf) {
            fprintf(stderr, "tunnelwatch: --pidfile %s: %s\n", a.pidfile, strerror(errno));
            {
                exit_code = 1;
                goto out;
            }
        }
        fprintf(pf, "%d\n", (int)getpid());
        fclose(pf);
    }
    if (a.user && drop_privileges(a.user)) {
        exit_code = 1;
        goto out;
    }
    if (!a.user && getuid() != 0)
        drop_capabilities(); /* a service given CAP_NET_RAW needs it only to open the port */
    /* after the privilege drop: the listener thread must not keep any */
    if (cfg->metrics.listen && cfg->metrics.listen[0]) {
        metrics = metrics_new(cfg->metrics.listen, cfg->metrics.allow_remote, err, sizeof(err));
        if (!metrics) {
            fprintf(stderr, "tunnelwatch: metrics: %s\n", err);
            {
                exit_code = 2;
                goto out;
            }
        }
    }

    /* Redis: off in --names mode unless asked for */
    /* A replay without -c or --redis is an investigation on an analyst's machine: no Redis
     * unless asked for. --names alone never publishes. */
    bool redis_on = cfg->redis.url && strcmp(cfg->redis.url, "none") != 0 &&
                    (a.redis || (!a.names && (a.conf || !inputs)));
    if (redis_on) {
        const char *pw = cfg->redis.password;
        if (cfg->redis.password_env && getenv(cfg->redis.password_env))
            pw = getenv(cfg->redis.password_env);
        struct pub_opts po;
        memset(&po, 0, sizeof(po));
        po.url = cfg->redis.url;
        po.user = cfg->redis.user;
        po.password = pw;
        po.modes = (cfg->redis.mode_stream ? PUB_MODE_STREAM : 0u) |
                   (cfg->redis.mode_channel ? PUB_MODE_CHANNEL : 0u) |
                   (cfg->redis.mode_list ? PUB_MODE_LIST : 0u);
        po.stream_key = cfg->redis.stream_key;
        po.channel_key = cfg->redis.channel_key;
        po.list_key = cfg->redis.list_key;
        po.stream_maxlen = cfg->redis.stream_maxlen;
        po.queue_max = cfg->redis.queue_max;
        po.spool_dir =
            cfg->redis.spool_dir && cfg->redis.spool_dir[0] ? cfg->redis.spool_dir : NULL;
        po.spool_max_bytes = cfg->redis.spool_max_mib * 1024 * 1024;
        po.timeout_ms = (int)cfg->redis.timeout_ms;
        po.sensor_name = cfg->sensor_name;
        po.heartbeat_prefix = cfg->redis.heartbeat_prefix;
        po.heartbeat_s = (int)cfg->redis.heartbeat_s;
        pub = pub_new(&po, err, sizeof(err));
        if (!pub) {
            fprintf(stderr, "tunnelwatch: redis: %s\n", err);
            {
                exit_code = 2;
                goto out;
            }
        }
        if (pub_start(pub) != TW_OK) {
            fprintf(stderr, "tunnelwatch: redis: cannot start the publisher\n");
            {
                exit_code = 1;
                goto out;
            }
        }
    }

    struct engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.cfg = cfg;
    eo.names_out = a.names ? stdout : NULL;
    eo.alerts_out = alerts;
    eo.log = stderr;
    eo.schema = cfg->output.schema && !strcmp(cfg->output.schema, "asim") ? ALERT_ASIM : ALERT_ECS;
    eo.pub = pub;
    eo.verbosity = cfg->log.verbosity;
    eo.evidence_path = cfg->output.evidence_file;
    e = engine_new(&eo, rules, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "tunnelwatch: %s\n", err);
        {
            exit_code = 1;
            goto out;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    l.e = e;
    l.pub = pub;
    l.cfg = cfg;
    l.args = &a;
    l.config_sig = config_signature(&l);
    l.metrics = metrics;
    l.realtime = a.realtime;
    l.speed = a.speed;
    l.max_packets = a.max_packets;
    l.started = time(NULL);
    l.rules = &rules;
    l.alerts = &alerts;
    size_t n_inputs = 0;
    if (inputs)
        while (inputs[n_inputs])
            n_inputs++;
    l.progress = inputs && isatty(STDERR_FILENO) && cfg->log.verbosity >= 0;
    l.progress_start_us = wall_us();
    for (size_t i = 0; l.progress && i < n_inputs; i++) {
        struct stat st;
        if (stat(inputs[i], &st) == 0)
            l.progress_total += (uint64_t)st.st_size;
    }
    if (l.n_workers > 0 && run_workers(&l, &eo))
        exit_code = 1;
    for (size_t i = 0; l.n_workers == 0 && (inputs ? i < n_inputs : i < 1) && !stop; i++) {
        struct cap_src file;
        struct cap_src *src = &live;
        if (inputs) {
            if (cap_open_file(&file, inputs[i], err, sizeof(err))) {
                fprintf(stderr, "tunnelwatch: %s\n", err);
                exit_code = 1;
                continue;
            }
            src = &file;
        }
        l.src = src;
        engine_begin_input(e, inputs ? inputs[i] : NULL, src->dlt, inputs && n_inputs > 1);
        r = src->live ? run_live(&l, src) : run_file(&l, src, cfg->capture.bpf);
        if (r == 2) {
            exit_code = 2;
            goto out;
        }
        if (r)
            exit_code = 1;
        if (src->live)
            cap_live_stats(src);
        if (inputs) {
            show_progress(&l, true);
            l.progress_done += src->size;
            cap_close(src);
            l.src = NULL; /* file lives in this loop's scope only */
        }
    }
    cfg = l.cfg; /* the configuration in force (a SIGHUP may have replaced it) */
    engine_finish(e);
    if (pub)
        heartbeat(&l);
    if (inputs && cfg->log.verbosity >= 0 && !a.names)
        engine_summary(e, stderr, NULL);
    if (inputs && cfg->output.evidence_file) {
        int w = engine_write_evidence(e, inputs, cfg->output.evidence_file, err, sizeof(err));
        if (w < 0)
            exit_code = 1;
        if (w < 0 || cfg->log.verbosity >= 0)
            fprintf(stderr, "tunnelwatch: evidence: %s\n", err);
    }
    if (cfg->output.summary_file) {
        FILE *sf = fopen(cfg->output.summary_file, "w");
        if (sf) {
            engine_summary(e, NULL, sf);
            fclose(sf);
        } else {
            fprintf(stderr, "tunnelwatch: --summary %s: %s\n", cfg->output.summary_file,
                    strerror(errno));
            exit_code = 1;
        }
    }
    if (pub) {
        pub_stop(pub, (int)cfg->redis.stop_flush_ms);
        struct pub_stats ps;
        pub_get_stats(pub, &ps);
        /* a replay that ran to its end reports undelivered alerts as a failure; a stop on
         * SIGTERM/SIGINT has flushed or spooled them as asked and exits 0 */
        if (ps.enqueued > ps.delivered && inputs && !terminated) {
            fprintf(stderr,
                    "tunnelwatch: redis %s unreachable: %" PRIu64 " of %" PRIu64
                    " records not delivered (%" PRIu64 " spooled%s%s, %" PRIu64 " dropped)\n",
                    cfg->redis.url, ps.enqueued - ps.delivered, ps.enqueued, ps.spool_records,
                    cfg->redis.spool_dir ? " in " : "",
                    cfg->redis.spool_dir ? cfg->redis.spool_dir : "", ps.dropped);
            exit_code = 1;
        }
    }
    if (cfg->log.verbosity > 0 || ((live.p || l.n_workers) && cfg->log.verbosity >= 0))
        print_stats(&l, stderr);
    for (int i = 0; i < l.n_workers; i++) {
        live.recv += l.workers[i].src.recv;
        live.drop += l.workers[i].src.drop;
        live.ifdrop += l.workers[i].src.ifdrop;
    }
    if (live.p || l.n_workers)
        fprintf(stderr,
                "tunnelwatch: %" PRIu64 " packets received by filter, %" PRIu64
                " dropped by kernel, %" PRIu64 " dropped by interface\n",
                live.recv, live.drop, live.ifdrop);
out:
    for (int i = 0; i < l.n_workers; i++) {
        engine_free(l.workers[i].e);
        cap_close(&l.workers[i].src);
    }
    free(l.workers);
    for (size_t i = 0; i < l.n_old_alerts; i++)
        fclose(l.old_alerts[i]);
    if (l.cfg)
        cfg = l.cfg;
    cap_close(&live);
    metrics_free(metrics);
    engine_free(e);
    pub_free(pub);
    ruleset_free(rules);
    for (size_t i = 0; i < l.n_old; i++)
        ruleset_free(l.old_rules[i]);
    for (size_t i = 0; i < l.n_old_cfg; i++) {
        cfg_free(l.old_cfgs[i]);
        free(l.old_cfgs[i]);
    }
    if (alerts && alerts != stdout)
        fclose(alerts);
    cap_free_inputs(inputs);
    if (a.pidfile)
        unlink(a.pidfile);
    cfg_free(cfg);
    free(cfg);
    free(a.bpf);
    return exit_code;
}
