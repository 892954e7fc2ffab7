/* sensor.c - the running sensor (see sensor.h).
 *
 * One thread reads replays and single-threaded live capture; with capture.workers > 1 each
 * worker thread has its own PACKET_FANOUT socket and engine, and this thread keeps the
 * heartbeat, metrics, signals and reloads. Signals only set flags; everything they ask for
 * happens between batches of packets (housekeeping).
 *
 * Reload: SIGHUP starts a loader thread that reads and builds the configuration and the rules
 * (a million-domain list or a pathological YAML file takes seconds); the capture loop only
 * notices that a result is ready and swaps pointers between two batches. Rule sets are
 * reference-counted (rules.h): the engines, flagged flows and incidents hold the set they
 * point into, and the last one to let go frees it. A replaced configuration is used by
 * engines only: with capture workers it is retired and freed once every worker took the update
 * that replaced it. The alerts file is the sink's (sink.h): SIGHUP has its writer reopen it. The
 * start-up configuration stays until exit (the capture handles, the evidence writer and the metrics
 * listener borrow its strings).
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/capture.h"
#include "tunnelwatch/engine.h"
#include "tunnelwatch/fleet.h"
#include "tunnelwatch/metrics.h"
#include "tunnelwatch/publish.h"
#include "tunnelwatch/sensor.h"
#include "tunnelwatch/sink.h"

#define MAX_WORKERS 64

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

/* A reload in progress on its own thread (SIGHUP), and its result. The main thread starts it
 * and reads the result once done is set; the thread touches nothing else of the sensor. */
struct loader {
    pthread_t th;
    bool running;     /* a thread to join */
    bool again;       /* a SIGHUP came while it ran: load once more afterwards */
    atomic_bool done; /* set by the thread when the fields below are final */
    /* in: */
    const struct cli_args *a;
    const struct tw_cfg *cur; /* the configuration in force (its rule paths when no -c) */
    uint64_t cur_sig;
    /* out: */
    uint64_t sig;
    bool unchanged, cfg_failed;
    struct tw_cfg *cfg;    /* with -c: the new configuration (owned), else NULL */
    struct ruleset *rules; /* NULL when the reload failed */
    char *msgs;            /* what the loading said (malloc'd, may be NULL) */
    char reason[512];      /* why it failed, one line */
};

/* Replaced while capture workers may still use it: freed once every worker has taken the
 * update that replaced it. */
struct retired {
    void **cfgs; /* struct tw_cfg * */
    size_t n_cfgs, cap_cfgs;
};

struct sensor {
    const struct cli_args *a;
    struct tw_cfg *cfg; /* the configuration in force */
    struct ruleset *rules;
    char **inputs; /* NULL live */
    size_t n_inputs;
    struct sink *alerts; /* the alerts file's writer thread */
    struct pub *pub;
    struct fleet *fleet; /* shared bindings and dedup (fleet.h), or NULL */
    struct metrics *metrics;
    struct evw *evw; /* evidence.dir's (or --write-evidence's) writer (evidence.h), or NULL */
    char *ev_tmp;    /* --write-evidence without evidence.dir: the private directory, or NULL */
    struct engine *e;
    struct engine_opts eo;
    struct cap_src live;
    struct cap_src *src; /* the input being read */
    struct worker *workers;
    int n_workers;
    struct tw_cfg *cfg0; /* the start-up configuration, kept until exit */
    struct loader ld;    /* SIGHUP's loader thread */
    struct retired retired;
    uint64_t reloads, reload_failures;
    uint64_t config_sig;                 /* config_signature() of what is running */
    struct sensor_sig *sig;              /* its first value, until sensor_start takes it */
    uint64_t seen;                       /* packets handed to the engine */
    int64_t first_pkt_us, start_wall_us; /* --realtime pacing */
    int64_t pace_late_max_us; /* the latest a paced packet was processed after its due time
                               * (a stall of the capture loop), since the last statistics */
    time_t started, last_hb;
    int64_t loop_us; /* wall time spent in the packet loop of replays */
    int64_t last_metrics_us;
    bool progress; /* stderr is a terminal: show a progress line for replays */
    int64_t progress_start_us, progress_last_us;
    uint64_t progress_done;  /* bytes of the files already finished */
    uint64_t progress_total; /* bytes of all the input files */
    bool progress_shown;
};

/* Appends p to a growable array of pointers. */
static int push_ptr(void ***a, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        void **np = realloc(*a, nc * sizeof(*np));
        if (!np)
            return TW_ENOMEM;
        *a = np;
        *cap = nc;
    }
    (*a)[(*n)++] = p;
    return TW_OK;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *link_name(int dlt)
{
    const char *n = pcap_datalink_val_to_name(dlt);
    return n ? n : "?";
}

/* ---------- statistics ---------- */

/* The alerts file's writer: what it lost is added to the engines' output_errors. */
static void alerts_stats(struct sensor *s, struct tw_stats *st)
{
    static struct tw_stats one;
    struct sink_stats ks = {0};
    if (s->alerts)
        sink_get_stats(s->alerts, &ks);
    one.n = 0;
    stats_put(&one, "output_errors", false, ks.output_errors);
    stats_put(&one, "alerts_file_dropped", false, ks.dropped);
    stats_put(&one, "alerts_file_queued_bytes", true, ks.queued_bytes);
    stats_add(st, &one);
}

/* The incident pcap writer's counters (evidence.h), with evidence.dir. */
static void evidence_stats(struct sensor *s, struct tw_stats *st)
{
    struct evw_stats es;
    if (!s->evw)
        return;
    evw_get_stats(s->evw, &es);
    stats_put(st, "evidence_packets", false, es.packets);
    stats_put(st, "evidence_files", false, es.files);
    stats_put(st, "evidence_removed", false, es.removed);
    stats_put(st, "evidence_dropped_queue", false, es.dropped_queue);
    stats_put(st, "evidence_dropped_disk", false, es.dropped_disk);
    stats_put(st, "evidence_write_errors", false, es.write_errors);
    stats_put(st, "evidence_dropped_linktype", false, es.dropped_linktype);
    stats_put(st, "evidence_dns_stored", false, es.dns_stored);
    stats_put(st, "evidence_redis_copies", false, es.redis_copies);
    stats_put(st, "evidence_redis_dropped", false, es.redis_dropped);
    if (s->pub) {
        struct pub_stats ps;
        pub_get_stats(s->pub, &ps);
        stats_put(st, "evidence_redis_sent", false, ps.blobs_sent);
        stats_put(st, "evidence_redis_failed", false, ps.blobs_failed);
    }
    stats_put(st, "evidence_dir_bytes", true, es.dir_bytes);
    stats_put(st, "evidence_queued_bytes", true, es.queued_bytes);
}

/* Every counter of the sensor: the engine's (summed over capture workers), kernel and
 * interface drops when live, uptime and version. */
/* The fleet's counters (fleet.h), when there is one. */
static void fleet_stats_put(struct fleet *f, struct tw_stats *st)
{
    struct fleet_stats fs;
    if (!f)
        return;
    fleet_get_stats(f, &fs);
    stats_put(st, "fleet_bindings_shared", false, fs.shared);
    stats_put(st, "fleet_bindings_published", false, fs.published);
    stats_put(st, "fleet_bindings_received", false, fs.received);
    stats_put(st, "fleet_bindings_bad", false, fs.bad);
    stats_put(st, "fleet_bindings_applied", false, fs.applied);
    stats_put(st, "fleet_bindings_dropped", false, fs.dropped);
    stats_put(st, "fleet_claims_won", false, fs.claims_won);
    stats_put(st, "fleet_claims_lost", false, fs.claims_lost);
    stats_put(st, "fleet_bypassed", false, fs.bypassed);
    stats_put(st, "fleet_errors", false, fs.errors);
}

static void sensor_stats(struct sensor *s, struct tw_stats *st)
{
    static struct tw_stats one;
    uint64_t drop = 0, ifdrop = 0;
    bool live = s->n_workers > 0 || (s->src && s->src->live);
    st->n = 0;
    if (s->n_workers > 0) {
        engine_stats(s->workers[0].e, st);
        for (int i = 1; i < s->n_workers; i++) {
            one.n = 0;
            engine_stats(s->workers[i].e, &one);
            stats_add(st, &one);
        }
        for (int i = 0; i < s->n_workers; i++) {
            cap_live_stats(&s->workers[i].src);
            drop += s->workers[i].src.drop;
            ifdrop += s->workers[i].src.ifdrop;
        }
    } else {
        engine_stats(s->e, st);
        if (live) {
            cap_live_stats(s->src);
            drop = s->src->drop;
            ifdrop = s->src->ifdrop;
        }
    }
    alerts_stats(s, st);
    if (live) {
        stats_put(st, "kernel_drops", false, drop);
        stats_put(st, "interface_drops", false, ifdrop);
    }
    evidence_stats(s, st);
    stats_put(st, "reloads", false, s->reloads);
    stats_put(st, "reload_failures", false, s->reload_failures);
    stats_put(st, "uptime_s", true, (uint64_t)(time(NULL) - s->started));
    fleet_stats_put(s->fleet, st);
}

/* The stats lines of the heartbeat and the metrics endpoint. */
static size_t stats_lines(struct sensor *s, char *buf, size_t len)
{
    static struct tw_stats st;
    sensor_stats(s, &st);
    size_t n = stats_text(&st, buf, len);
    if (n < len)
        n += (size_t)snprintf(buf + n, len - n, "version\t%s\n", TW_VERSION);
    return n < len ? n : len - 1;
}

static void heartbeat(struct sensor *s)
{
    static char buf[16384];
    if (!s->pub)
        return;
    size_t n = stats_lines(s, buf, sizeof(buf));
    if (s->fleet && n < sizeof(buf)) /* "ok", "local-only" or "in-process" (fleet.h) */
        snprintf(buf + n, sizeof(buf) - n, "fleet\t%s\n", fleet_state(s->fleet));
    pub_set_heartbeat(s->pub, buf);
}

static void print_stats(struct sensor *s, FILE *out)
{
    static struct tw_stats st;
    sensor_stats(s, &st);
    fputs("tunnelwatch: statistics\n", out);
    for (size_t i = 0; i < st.n; i++)
        if (st.s[i].v)
            fprintf(out, "  %-28s %" PRIu64 "\n", st.s[i].name, st.s[i].v);
    if (s->loop_us)
        fprintf(out, "  %-28s %lld\n", "replay_ms", (long long)(s->loop_us / 1000));
    if (s->a->realtime) /* since the previous statistics: a window the user chooses */
        fprintf(out, "  %-28s %lld\n", "pace_late_max_us", (long long)s->pace_late_max_us);
    s->pace_late_max_us = 0;
    if (s->pub) {
        struct pub_stats ps;
        pub_get_stats(s->pub, &ps);
        fprintf(out,
                "  redis: delivered %" PRIu64 ", queued %" PRIu64 ", spooled %" PRIu64
                ", dropped %" PRIu64 ", reconnects %" PRIu64 "%s\n",
                ps.delivered, ps.queued, ps.spool_records, ps.dropped, ps.reconnects,
                ps.connected ? "" : " (not connected)");
    }
}

/* The Prometheus snapshot: the heartbeat's numbers, refreshed at most once a second. */
static void refresh_metrics(struct sensor *s)
{
    static char lines[20480], prom[65536];
    int64_t now = wall_us();
    if (!s->metrics || now - s->last_metrics_us < 1000000)
        return;
    s->last_metrics_us = now;
    size_t n = stats_lines(s, lines, sizeof(lines) - 4096);
    if (s->pub) {
        struct pub_stats ps;
        pub_get_stats(s->pub, &ps);
        metrics_pub_lines(&ps, lines + n, sizeof(lines) - n);
    }
    metrics_format(lines, prom, sizeof(prom));
    metrics_publish(s->metrics, prom);
}

/* A replay longer than a few seconds shows where it is, on a terminal only. */
static void show_progress(struct sensor *s, bool final)
{
    if (!s->progress || !s->src || s->src->live)
        return;
    int64_t now = wall_us();
    if (!final && (now - s->progress_start_us < 2000000 || now - s->progress_last_us < 500000))
        return;
    if (final) {
        if (s->progress_shown)
            fputs("\r\033[K", stderr);
        return;
    }
    s->progress_last_us = now;
    s->progress_shown = true;
    uint64_t done = s->progress_done + cap_file_pos(s->src);
    double secs = (double)(now - s->progress_start_us) / 1e6;
    double pct = s->progress_total ? 100.0 * (double)done / (double)s->progress_total : 0;
    fprintf(stderr, "\r\033[K[%5.1f%%] %.0f MB of %.0f MB, %.2f Mpkt/s, %llu alerts", pct,
            (double)done / 1e6, (double)s->progress_total / 1e6, (double)s->seen / secs / 1e6,
            (unsigned long long)engine_alerts(s->e));
}

/* ---------- SIGHUP ---------- */

/* Reopens the alerts file (logrotate moved it; a FIFO's reader went away). The writer
 * thread does it between two writes; capture workers keep queueing meanwhile. */
static void reopen_alerts(struct sensor *s)
{
    if (s->alerts)
        sink_reopen(s->alerts);
}

static uint64_t fnv_add(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* A file's or folder's identity on disk: name, size, mtime, inode, folders recursively. */
static uint64_t file_signature(uint64_t h, const char *path, int depth)
{
    struct stat st;
    h = fnv_add(h, path, strlen(path));
    if (stat(path, &st) != 0)
        return fnv_add(h, "missing", 7);
    h = fnv_add(h, &st.st_mtim, sizeof(st.st_mtim));
    h = fnv_add(h, &st.st_size, sizeof(st.st_size));
    h = fnv_add(h, &st.st_ino, sizeof(st.st_ino));
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
        h ^= file_signature(1469598103934665603ULL, full, depth + 1);
    }
    closedir(d);
    return h;
}

/* What a reload would read: the configuration file and every rule file. */
static uint64_t config_signature(const struct cli_args *a, const struct tw_cfg *cfg)
{
    uint64_t h = 1469598103934665603ULL;
    if (a->conf)
        h = file_signature(h, a->conf, 0);
    for (size_t i = 0; i < cfg->rules.n_paths; i++)
        h = file_signature(h, cfg->rules.paths[i], 0);
    return h;
}

struct sensor_sig {
    pthread_t th;
    const struct cli_args *a;
    const struct tw_cfg *cfg;
    uint64_t value;
};

static void *sig_main(void *arg)
{
    struct sensor_sig *g = arg;
    g->value = config_signature(g->a, g->cfg);
    return NULL;
}

struct sensor_sig *sensor_sig_begin(const struct cli_args *a, const struct tw_cfg *cfg)
{
    if (a->user)
        return NULL; /* -Z: taken after the drop, as the reload's loader will see the files */
    struct sensor_sig *g = malloc(sizeof(*g));
    if (!g)
        return NULL;
    g->a = a;
    g->cfg = cfg;
    g->value = 0;
    if (tw_thread_start(&g->th, "tw-config-sig", sig_main, g, false) != 0) {
        free(g);
        return NULL;
    }
    return g;
}

/* Waits for the signature; 0 and nothing else without one. */
static uint64_t sig_end(struct sensor_sig *g)
{
    if (!g)
        return 0;
    pthread_join(g->th, NULL);
    uint64_t v = g->value;
    free(g);
    return v;
}

void sensor_sig_free(struct sensor_sig *sig)
{
    (void)sig_end(sig);
}

static void free_cfg(struct tw_cfg *c)
{
    if (c) {
        cfg_free(c);
        free(c);
    }
}

/* Hands the new rules (and configuration, when not NULL) to every capture worker. */
static void post_to_workers(struct sensor *s, struct ruleset *nr, const struct tw_cfg *nc)
{
    for (int i = 0; i < s->n_workers; i++) {
        struct worker *w = &s->workers[i];
        if (!engine_update_idle(w->e, 2000))
            continue; /* a stopped worker: the main loop shuts the sensor down */
        if (nc) {
            w->cur ^= 1;
            w->cfgs[w->cur] = *nc;
            w->cfgs[w->cur].flow.max_flows = w->cfgs[w->cur ^ 1].flow.max_flows;
        }
        engine_post_update(w->e, nr, nc ? &w->cfgs[w->cur] : NULL);
    }
}

/* ---------- SIGHUP: the loader thread ---------- */

/* The reason of a failed reload: the first line of what the loading said that reports an
 * error (the file, the rule and the construct), else its first line. */
static void first_error(const char *msgs, char *out, size_t n)
{
    const char *pick = NULL;
    for (const char *p = msgs; p && *p && !pick;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *hit = memmem(p, len, "error", 5);
        if (hit || memmem(p, len, "problem", 7) || memmem(p, len, "cannot", 6))
            pick = p;
        p = e ? e + 1 : p + len;
    }
    if (!pick)
        pick = msgs && *msgs ? msgs : "no reason given";
    size_t len = strcspn(pick, "\n");
    if (!strncmp(pick, "tunnelwatch: ", 13)) {
        pick += 13;
        len -= 13;
    }
    snprintf(out, n, "%.*s", (int)len, pick);
}

/* The new configuration (with -c) and rules, messages to ld->msgs. */
static void load_new(struct loader *ld)
{
    size_t len = 0;
    FILE *msg = open_memstream(&ld->msgs, &len);
    FILE *err = msg ? msg : stderr;
    struct tw_cfg *nc = NULL;
    if (ld->a->conf) {
        nc = calloc(1, sizeof(*nc));
        if (!nc || cli_load_config(ld->a, nc, err) != 0) {
            free_cfg(nc);
            nc = NULL;
            ld->cfg_failed = true;
        }
    }
    int st = 0;
    if (!ld->cfg_failed)
        ld->rules = cli_load_rules(nc ? nc : ld->cur, err, &st);
    if (ld->rules)
        ld->cfg = nc;
    else
        free_cfg(nc);
    if (msg)
        fclose(msg);
    if (!ld->rules)
        first_error(ld->msgs, ld->reason, sizeof(ld->reason));
}

static void *loader_main(void *arg)
{
    struct loader *ld = arg;
    /* out of a real-time class the sensor may run in (the capture thread comes first), but
     * not niced: a niced loader holding a lock the capture thread needs (the address
     * space's, malloc's) made it wait 100 ms on a busy machine */
    struct sched_param sp = {0};
    (void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
    ld->sig = config_signature(ld->a, ld->cur);
    ld->unchanged = ld->sig == ld->cur_sig; /* the nightly logrotate HUP */
    if (!ld->unchanged)
        load_new(ld);
    atomic_store_explicit(&ld->done, true, memory_order_release);
    return NULL;
}

/* True when the loader thread has a result for the capture loop to take. */
static bool load_ready(struct sensor *s)
{
    return s->ld.running && atomic_load_explicit(&s->ld.done, memory_order_acquire);
}

/* SIGHUP: a loader thread reads and builds; one at a time, a HUP during a load asks again. */
static void start_load(struct sensor *s)
{
    struct loader *ld = &s->ld;
    if (ld->running) {
        ld->again = true;
        return;
    }
    ld->a = s->a;
    ld->cur = s->cfg;
    ld->cur_sig = s->config_sig;
    ld->unchanged = ld->cfg_failed = false;
    ld->cfg = NULL;
    ld->rules = NULL;
    ld->msgs = NULL;
    ld->reason[0] = '\0';
    atomic_store_explicit(&ld->done, false, memory_order_relaxed);
    /* signals stay with the capture thread */
    int r = tw_thread_start(&ld->th, "tw-reload", loader_main, ld, false);
    if (r != 0) {
        s->reload_failures++;
        fprintf(stderr,
                "tunnelwatch: reload failed, keeping the running configuration and rules: "
                "cannot start the loader thread: %s\n",
                strerror(r));
        return;
    }
    ld->running = true;
}

/* A replaced configuration: freed now when no capture worker can use it, else retired. */
static void retire_cfg(struct sensor *s, struct tw_cfg *old)
{
    if (old == s->cfg0)
        return; /* borrowed from by the capture handles: freed at exit */
    if (s->n_workers == 0 ||
        push_ptr(&s->retired.cfgs, &s->retired.n_cfgs, &s->retired.cap_cfgs, old) != TW_OK) {
        if (s->n_workers == 0)
            free_cfg(old);
        return; /* out of memory: leaked rather than freed under a worker */
    }
}

/* Frees what was retired once every capture worker took the updates that replaced it. */
static void release_retired(struct sensor *s, bool force)
{
    struct retired *r = &s->retired;
    if (!r->n_cfgs)
        return;
    for (int i = 0; i < s->n_workers && !force; i++)
        if (!engine_update_idle(s->workers[i].e, 0))
            return;
    for (size_t i = 0; i < r->n_cfgs; i++)
        free_cfg(r->cfgs[i]);
    r->n_cfgs = 0;
}

/* Puts the loaded configuration (may be NULL: unchanged) and rules in force. */
static int swap_in(struct sensor *s, struct tw_cfg *nc, struct ruleset *nr)
{
    if (nc && engine_set_cfg(s->e, nc) != TW_OK) {
        snprintf(s->ld.reason, sizeof(s->ld.reason), "out of memory applying the configuration");
        ruleset_free(nr);
        free_cfg(nc);
        return TW_ENOMEM;
    }
    engine_set_rules(s->e, nr);
    post_to_workers(s, nr, nc);
    ruleset_free(s->rules); /* the sensor's reference; flows and incidents hold their own */
    s->rules = nr;
    if (nc) {
        retire_cfg(s, s->cfg);
        s->cfg = nc;
    }
    return TW_OK;
}

/* What the loading said, as before the loader thread; a flood of warnings is cut short. */
static void print_msgs(const char *msgs)
{
    size_t n = msgs ? strlen(msgs) : 0;
    if (n <= 8192) {
        if (n)
            fputs(msgs, stderr);
        return;
    }
    fprintf(stderr, "%.*s\ntunnelwatch: (%zu more bytes of rule messages not shown)\n", 8192, msgs,
            n - 8192);
}

/* Between batches: the loader's result goes in force (a pointer swap), or its failure is said. */
static void finish_load(struct sensor *s)
{
    struct loader *ld = &s->ld;
    pthread_join(ld->th, NULL);
    ld->running = false;
    print_msgs(ld->msgs);
    free(ld->msgs);
    ld->msgs = NULL;
    if (ld->unchanged) {
        fprintf(stderr, "tunnelwatch: configuration and rules unchanged (%zu rules)\n",
                ruleset_rule_count(s->rules));
    } else if (!ld->rules || swap_in(s, ld->cfg, ld->rules) != TW_OK) {
        s->reload_failures++;
        fprintf(stderr, "tunnelwatch: reload failed, keeping the running %s: %s\n",
                ld->cfg_failed ? "configuration and rules" : "rules", ld->reason);
    } else {
        s->reloads++;
        s->config_sig = ld->sig;
        fprintf(stderr, "tunnelwatch: rules reloaded (%zu rules)\n", ruleset_rule_count(s->rules));
    }
    ld->cfg = NULL;
    ld->rules = NULL;
    if (ld->again) {
        ld->again = false;
        start_load(s);
    }
}

/* Between batches of packets: heartbeat, metrics, SIGUSR1 statistics, SIGHUP reload. */
static void housekeeping(struct sensor *s)
{
    refresh_metrics(s);
    show_progress(s, false);
    time_t t = time(NULL);
    if (s->pub && s->cfg->redis.heartbeat_s &&
        t - s->last_hb >= (time_t)s->cfg->redis.heartbeat_s) {
        heartbeat(s);
        s->last_hb = t;
    }
    if (dump_stats) {
        dump_stats = 0;
        print_stats(s, stderr);
    }
    if (reload) {
        reload = 0;
        reopen_alerts(s); /* logrotate's SIGHUP: whatever happens to the reload */
        start_load(s);
    }
    if (load_ready(s))
        finish_load(s);
    release_retired(s, false);
}

/* ---------- reading ---------- */

/* --realtime: waits until the packet's time (scaled) has come on the wall clock. */
static void pace(struct sensor *s, const struct pcap_pkthdr *h)
{
    int64_t t = (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec;
    if (!s->first_pkt_us) {
        s->first_pkt_us = t;
        s->start_wall_us = wall_us();
    }
    int64_t due = s->start_wall_us + (int64_t)((double)(t - s->first_pkt_us) / s->a->speed);
    int64_t now = wall_us();
    while (due > now && !stop) {
        /* a SIGHUP ends the sleep; a load in progress is looked at every 2 ms */
        int64_t nap = s->ld.running ? 2000 : 200000;
        int64_t d = due - now > nap ? nap : due - now;
        struct timespec ts = {0, (long)d * 1000};
        nanosleep(&ts, NULL);
        if (reload || load_ready(s))
            housekeeping(s);
        now = wall_us();
    }
    if (now - due > s->pace_late_max_us)
        s->pace_late_max_us = now - due;
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    struct sensor *s = (struct sensor *)(void *)user;
    if (s->a->realtime)
        pace(s, h);
    engine_packet(s->e, h, data);
    s->seen++;
    if (s->a->max_packets && s->seen >= s->a->max_packets) {
        stop = 1;
        if (s->src->p)
            pcap_breakloop(s->src->p);
    }
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

/* Live: pcap_dispatch in batches; idle periods still tick flow expiry and the heartbeat. */
static int run_live(struct sensor *s, struct cap_src *src)
{
    engine_prepare(s->e); /* not at the first flow that needs nDPI */
    while (!stop) {
        wait_readable(src->p);
        int n = pcap_dispatch(src->p, 512, on_packet, (u_char *)s);
        if (n == PCAP_ERROR) {
            fprintf(stderr, "tunnelwatch: %s: %s\n", src->name, pcap_geterr(src->p));
            return 1;
        }
        if (stop)
            break;
        if (n <= 0)
            tick_idle(s->e);
        housekeeping(s);
    }
    return 0;
}

/* A pcap file libpcap reads (a pipe, stdin, an unusual pcap variant) without a filter:
 * libpcap's own batch loop, the cheapest way through it. */
static int run_pcap_dispatch(struct sensor *s, struct cap_src *src)
{
    int rc = 0;
    engine_set_dlt(s->e, src->dlt);
    while (!stop) {
        int n = pcap_dispatch(src->p, 4096, on_packet, (u_char *)s);
        if (n == PCAP_ERROR) {
            fprintf(stderr, "tunnelwatch: %s: %s (the packets before it were processed)\n",
                    src->name, pcap_geterr(src->p));
            rc = 1;
            break;
        }
        if (n <= 0)
            break; /* end of file, or pcap_breakloop */
        housekeeping(s);
    }
    return rc;
}

/* A classic pcap our reader takes, without a filter: batches of records straight from the read
 * buffer into engine_packets (see there). */
static int run_batches(struct sensor *s, struct cap_src *src)
{
    struct pcap_pkthdr h[ENGINE_BATCH];
    const uint8_t *d[ENGINE_BATCH];
    char err[512];
    uint64_t max_packets = s->a->max_packets;
    engine_set_dlt(s->e, src->dlt);
    while (!stop) {
        int max = ENGINE_BATCH;
        if (max_packets && max_packets - s->seen < (uint64_t)max)
            max = (int)(max_packets - s->seen);
        int n = cap_next_batch(src, h, d, max, err, sizeof(err));
        if (n < 0) {
            fprintf(stderr, "tunnelwatch: %s: %s (the packets before it were processed)\n",
                    src->name, err);
            return 1;
        }
        if (n == 0)
            break;
        engine_packets(s->e, h, d, (size_t)n);
        uint64_t before = s->seen;
        s->seen += (uint64_t)n;
        if (max_packets && s->seen >= max_packets)
            stop = 1;
        /* signals and timers: every 4096 packets, as in run_frames */
        if ((before >> 12) != (s->seen >> 12) || reload || dump_stats || load_ready(s))
            housekeeping(s);
    }
    return 0;
}

/* BPF programs of a file whose interfaces may have different link types: one per type. */
struct filters {
    const char *expr;
    int n;
    struct {
        int dlt;
        struct bpf_program prog;
    } f[8];
};

/* True when the frame passes the filter (compiled for its link type on first use); -1 when the
 * expression does not compile. */
static int filter_pass(struct filters *fl, int dlt, const struct pcap_pkthdr *h,
                       const uint8_t *data)
{
    int k;
    for (k = 0; k < fl->n && fl->f[k].dlt != dlt; k++)
        ;
    if (k == fl->n) {
        pcap_t *dead = pcap_open_dead(dlt, 262144);
        if (!dead || fl->n == 8 ||
            pcap_compile(dead, &fl->f[k].prog, fl->expr, 1, PCAP_NETMASK_UNKNOWN) != 0) {
            fprintf(stderr, "tunnelwatch: bad filter expression \"%s\"%s%s\n", fl->expr,
                    dead ? ": " : "", dead ? pcap_geterr(dead) : "");
            if (dead)
                pcap_close(dead);
            return -1;
        }
        pcap_close(dead);
        fl->f[k].dlt = dlt;
        fl->n++;
    }
    return pcap_offline_filter(&fl->f[k].prog, h, data) != 0;
}

/* One frame of run_frames: 1 processed, 0 skipped (numbered, not decoded), -1 bad filter. */
static int one_frame(struct sensor *s, struct cap_src *src, struct filters *fl, int *cur_dlt,
                     uint64_t *unsupported, const struct pcap_pkthdr *h, const uint8_t *data,
                     int dlt)
{
    if (dlt != *cur_dlt) {
        *cur_dlt = dlt;
        engine_set_dlt(s->e, dlt);
    }
    if (!dec_linktype_supported(dlt)) {
        if ((*unsupported)++ == 0)
            fprintf(stderr, "tunnelwatch: %s: unsupported link type %d (%s), frames skipped\n",
                    src->name, dlt, link_name(dlt));
        engine_skip_frame(s->e);
        return 0;
    }
    if (fl->expr && fl->expr[0]) {
        int pass = filter_pass(fl, dlt, h, data);
        if (pass <= 0) {
            if (pass == 0)
                engine_skip_frame(s->e); /* frame numbers still count it, as tshark's do */
            return pass;
        }
    }
    on_packet((u_char *)s, h, data);
    return 1;
}

/* Files packet by packet, so pcapng interfaces of different link types each get theirs. */
static int run_frames(struct sensor *s, struct cap_src *src, const char *bpf)
{
    char err[512];
    struct filters fl = {.expr = bpf};
    int rc = 0, cur_dlt = -2, dlt, r;
    uint64_t unsupported = 0;
    struct pcap_pkthdr h;
    const uint8_t *data;
    while (!stop && (r = cap_next(src, &h, &data, &dlt, err, sizeof(err))) == 1) {
        if (one_frame(s, src, &fl, &cur_dlt, &unsupported, &h, data, dlt) < 0) {
            rc = 2;
            break;
        }
        /* signals and timers are looked at every 4096 packets, and at every packet of a
         * paced replay (slow by design) */
        if ((s->seen & 4095) == 0 || s->a->realtime || reload || dump_stats || load_ready(s))
            housekeeping(s);
    }
    if (!stop && r < 0 && rc == 0) {
        fprintf(stderr, "tunnelwatch: %s: %s (the packets before it were processed)\n", src->name,
                err);
        rc = 1;
    }
    for (int k = 0; k < fl.n; k++)
        pcap_freecode(&fl.f[k].prog);
    return rc;
}

/* A capture file: the fastest loop that can read it. */
static int run_file(struct sensor *s, struct cap_src *src, const char *bpf)
{
    int64_t t0 = wall_us();
    int rc;
    if (!src->ng && !(bpf && bpf[0]) && !s->a->realtime) {
        if (!dec_linktype_supported(src->dlt)) {
            fprintf(stderr, "tunnelwatch: %s: unsupported link type %d (%s)\n", src->name, src->dlt,
                    link_name(src->dlt));
            return 1;
        }
        rc = src->own ? run_batches(s, src) : run_pcap_dispatch(s, src);
    } else {
        rc = run_frames(s, src, bpf);
    }
    s->loop_us += wall_us() - t0;
    return rc;
}

/* ---------- capture workers ---------- */

/* Opens one PACKET_FANOUT socket per worker on the interface (hash fanout: both directions of
 * a flow land in the same worker; fragments are defragmented by the kernel first). */
static int open_workers(struct sensor *s, const struct cap_live_opts *lo, char *err, size_t errlen)
{
    const struct tw_cfg *cfg = s->cfg;
    int n = cfg->capture.workers > MAX_WORKERS ? MAX_WORKERS : cfg->capture.workers;
    s->workers = calloc((size_t)n, sizeof(*s->workers));
    if (!s->workers) {
        snprintf(err, errlen, "out of memory");
        return TW_ENOMEM;
    }
    int group = (int)(getpid() & 0xffff);
    for (int i = 0; i < n; i++) {
        struct worker *w = &s->workers[i];
        s->n_workers = i + 1;
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

/* Each worker's engine, with its share of flow.max_flows (evidence: the shared writer). */
static int worker_engines(struct sensor *s)
{
    for (int i = 0; i < s->n_workers; i++) {
        struct worker *w = &s->workers[i];
        w->cfgs[0] = *s->cfg; /* strings stay owned by the main configuration */
        w->cfgs[0].flow.max_flows = s->cfg->flow.max_flows / (uint32_t)s->n_workers;
        if (w->cfgs[0].flow.max_flows == 0)
            w->cfgs[0].flow.max_flows = 1;
        struct engine_opts o = s->eo;
        o.cfg = &w->cfgs[0];
        o.fleet_slot = i + 1; /* slot 0 is the main engine's */
        char err[256];
        w->e = engine_new(&o, s->rules, err, sizeof(err));
        if (!w->e) {
            fprintf(stderr, "tunnelwatch: worker %d: %s\n", i, err);
            return 1;
        }
        engine_begin_input(w->e, NULL, w->src.dlt, false);
        engine_prepare(w->e);
    }
    return 0;
}

/* Workers capture; this thread keeps the heartbeat, metrics, signals and reloads. */
static int run_workers(struct sensor *s)
{
    if (worker_engines(s))
        return 1;
    for (int i = 0; i < s->n_workers; i++) { /* signals go to this thread only */
        char name[16];
        snprintf(name, sizeof(name), "tw-worker-%u", (unsigned)i % 100000u);
        s->workers[i].started =
            tw_thread_start(&s->workers[i].th, name, worker_main, &s->workers[i], false) == 0;
    }
    while (!stop) {
        struct timespec ts = {0, (s->ld.running ? 5 : 200) * 1000 * 1000};
        nanosleep(&ts, NULL);
        for (int i = 0; i < s->n_workers; i++)
            if (__atomic_load_n(&s->workers[i].exited, __ATOMIC_ACQUIRE)) {
                fprintf(stderr, "tunnelwatch: capture worker %d stopped: shutting down\n", i);
                stop = 1; /* the other workers' share of the traffic would go unread */
            }
        if (!stop)
            housekeeping(s);
    }
    int rc = 0;
    for (int i = 0; i < s->n_workers; i++) {
        struct worker *w = &s->workers[i];
        if (w->started)
            pthread_join(w->th, NULL);
        engine_finish(w->e);
        rc |= w->rc;
    }
    return rc;
}

/* ---------- start ---------- */

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

struct sensor *sensor_new(const struct cli_args *a, struct tw_cfg *cfg, struct ruleset *rules,
                          struct sensor_sig *sig)
{
    struct sensor *s = calloc(1, sizeof(*s));
    if (!s) {
        sensor_sig_free(sig); /* before cfg: it reads it */
        cfg_free(cfg);
        free(cfg);
        ruleset_free(rules);
        return NULL;
    }
    s->sig = sig;
    s->a = a;
    s->cfg = s->cfg0 = cfg;
    s->rules = rules;
    s->started = time(NULL);
    return s;
}

/* The capture files (-r, folders expanded), and their total size for the progress line. */
static int open_inputs(struct sensor *s)
{
    char err[1024];
    if (!s->cfg->capture.interface && s->a->n_reads == 0) {
        fprintf(stderr, "tunnelwatch: nothing to read: give -i IFACE or -r FILE (see -h)\n");
        return 2;
    }
    if (!s->a->n_reads)
        return 0;
    s->inputs = cap_expand_inputs(s->a->reads, s->a->n_reads, err, sizeof(err));
    if (!s->inputs) {
        fprintf(stderr, "tunnelwatch: %s\n", err);
        return 1;
    }
    if (!s->inputs[0]) {
        fprintf(stderr, "tunnelwatch: no capture files in %s\n", s->a->reads[0]);
        return 1;
    }
    while (s->inputs[s->n_inputs])
        s->n_inputs++;
    s->progress = isatty(STDERR_FILENO) && s->cfg->log.verbosity >= 0;
    s->progress_start_us = wall_us();
    for (size_t i = 0; s->progress && i < s->n_inputs; i++) {
        struct stat st;
        if (stat(s->inputs[i], &st) == 0)
            s->progress_total += (uint64_t)st.st_size;
    }
    return 0;
}

/* Opened before the privilege drop, as it always was; a FIFO never blocks here. A replay
 * (not --realtime) waits for the writer rather than lose records; live capture never waits. */
static int open_alerts(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    char err[1024];
    if (!cfg->output.alerts_file)
        return 0;
    struct sink_opts ko = {cfg->output.alerts_file, (size_t)cfg->output.alerts_queue_kib * 1024,
                           s->inputs && !s->a->realtime, stderr};
    s->alerts = sink_open(&ko, err, sizeof(err));
    if (s->alerts)
        return 0;
    fprintf(stderr, "tunnelwatch: %s\n", err);
    return 1;
}

/* The live source first: it needs root or CAP_NET_RAW, dropped right after. */
static int open_live(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    char err[1024];
    if (!cfg->capture.interface || s->a->n_reads)
        return 0;
    struct cap_live_opts lo = {cfg->capture.snaplen, cfg->capture.buffer_mib, cfg->capture.promisc,
                               cfg->capture.immediate, cfg->capture.bpf};
    int r = cfg->capture.workers > 1
                ? open_workers(s, &lo, err, sizeof(err))
                : cap_open_live(&s->live, cfg->capture.interface, &lo,
                                cfg->log.verbosity >= 0 ? stderr : NULL, err, sizeof(err));
    if (r == 0)
        return 0;
    fprintf(stderr, "tunnelwatch: %s\n", err);
    return 1;
}

static int write_pidfile(const char *path)
{
    FILE *pf = fopen(path, "w");
    if (!pf) {
        fprintf(stderr, "tunnelwatch: --pidfile %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(pf, "%d\n", (int)getpid());
    fclose(pf);
    return 0;
}

/* Nothing after the capture is open needs privilege: -Z, or clear the capabilities. */
static int drop_privilege(struct sensor *s)
{
    if (s->a->user)
        return drop_privileges(s->a->user) ? 1 : 0;
    if (getuid() != 0)
        drop_capabilities(); /* a service given CAP_NET_RAW needs it only to open the port */
    return 0;
}

/* After the privilege drop: the listener thread must not keep any. */
static int start_metrics(struct sensor *s)
{
    char err[256];
    if (!s->cfg->metrics.listen || !s->cfg->metrics.listen[0])
        return 0;
    s->metrics =
        metrics_new(s->cfg->metrics.listen, s->cfg->metrics.allow_remote, err, sizeof(err));
    if (s->metrics)
        return 0;
    fprintf(stderr, "tunnelwatch: metrics: %s\n", err);
    return 2;
}

/* Redis: a replay without -c or --redis is an investigation on an analyst's machine, with
 * no Redis unless asked for; --names alone never publishes. */
static int start_publisher(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    const struct cli_args *a = s->a;
    bool on = cfg->redis.url && strcmp(cfg->redis.url, "none") != 0 &&
              (a->redis || (!a->names && (a->conf || !s->inputs)));
    if (!on)
        return 0;
    char err[1024];
    struct pub_opts po;
    pub_opts_from_cfg(cfg, &po);
    s->pub = pub_new(&po, err, sizeof(err));
    if (!s->pub) {
        fprintf(stderr, "tunnelwatch: redis: %s\n", err);
        return 2;
    }
    if (pub_start(s->pub) != TW_OK) {
        fprintf(stderr, "tunnelwatch: redis: cannot start the publisher\n");
        return 1;
    }
    return 0;
}

/* The fleet (fleet.h): over Redis with fleet.enabled, in process between capture workers. */
static int start_fleet(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    if (!cfg->fleet.enabled && s->n_workers < 2)
        return 0;
    struct pub_opts po;
    pub_opts_from_cfg(cfg, &po);
    struct fleet_opts fo = {.url = !cfg->fleet.enabled ? NULL
                                   : cfg->fleet.url    ? cfg->fleet.url
                                                       : cfg->redis.url,
                            .user = po.user,
                            .password = po.password,
                            .sensor_name = cfg->sensor_name,
                            .bind_prefix = cfg->fleet.bind_prefix,
                            .channel = cfg->fleet.channel,
                            .incident_prefix = cfg->fleet.incident_prefix,
                            .dedup = cfg->fleet.dedup,
                            .dedup_window_s = cfg->alert.dedup_window_s,
                            .ttl_cap_s = cfg->alert.dns_ttl_cap_s,
                            .queue_max = cfg->fleet.queue_max,
                            .timeout_ms =
                                (int)(cfg->redis.timeout_ms < 1000 ? cfg->redis.timeout_ms : 1000),
                            .sync_timeout_ms = (int)cfg->fleet.sync_timeout_ms,
                            .n_slots = s->n_workers + 1,
                            .pub = s->pub,
                            .log = stderr};
    char err[512];
    s->fleet = fleet_new(&fo, err, sizeof(err));
    if (!s->fleet) {
        fprintf(stderr, "tunnelwatch: %s\n", err);
        return 2;
    }
    s->eo.fleet = s->fleet;
    return fleet_start(s->fleet) == TW_OK ? 0 : 1;
}

static bool evidence_to_redis(void *ud, const char *key, const uint8_t *blob, size_t n,
                              uint32_t ttl_s)
{
    return pub_put_blob(ud, key, blob, n, ttl_s);
}

/* --write-evidence without evidence.dir: a private directory beside FILE (the same file
 * system, the same user), unbounded: FILE holds as much anyway, and a full disk is counted. */
static int private_evidence_dir(struct sensor *s, struct evw_opts *o)
{
    const char *file = s->cfg->output.evidence_file;
    const char *slash = strrchr(file, '/');
    int n = slash ? (int)(slash - file) + 1 : 0;
    if (asprintf(&s->ev_tmp, "%.*s.tunnelwatch-evidence.XXXXXX", n, file) < 0) {
        s->ev_tmp = NULL;
        return 1;
    }
    if (!mkdtemp(s->ev_tmp)) {
        fprintf(stderr, "tunnelwatch: --write-evidence %s: cannot make %s: %s\n", file, s->ev_tmp,
                strerror(errno));
        free(s->ev_tmp);
        s->ev_tmp = NULL;
        return 1;
    }
    o->dir = s->ev_tmp;
    o->max_total_bytes = UINT64_MAX / 2;
    o->unnamed = true;
    return 0;
}

/* Removes the private directory and the pcaps in it. */
static void remove_private_dir(struct sensor *s)
{
    if (!s->ev_tmp)
        return;
    DIR *d = opendir(s->ev_tmp);
    struct dirent *de;
    char path[PATH_MAX + 300];
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(path, sizeof(path), "%s/%s", s->ev_tmp, de->d_name);
            (void)unlink(path);
        }
    if (d)
        closedir(d);
    if (rmdir(s->ev_tmp) != 0)
        fprintf(stderr, "tunnelwatch: cannot remove %s: %s\n", s->ev_tmp, strerror(errno));
    free(s->ev_tmp);
    s->ev_tmp = NULL;
}

/* evidence.dir's writer thread (also --write-evidence's), after the privilege drop: the files
 * belong to the user the sensor runs as. A replay waits for it rather than lose packets. */
static int start_evidence(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    char err[1024];
    bool dir = cfg->evidence.dir && cfg->evidence.dir[0];
    if (!dir && !cfg->output.evidence_file)
        return 0;
    struct evw_opts o;
    memset(&o, 0, sizeof(o));
    o.dir = cfg->evidence.dir;
    o.max_total_bytes = cfg->evidence.max_total_mib << 20;
    if (!dir && private_evidence_dir(s, &o) != 0)
        return 1;
    o.wait = s->inputs && !s->a->realtime;
    o.queue_bytes = (size_t)cfg->evidence.queue_mib << 20;
    o.log = stderr;
    o.redis_max_bytes = dir ? (size_t)cfg->evidence.redis_max_kib * 1024 : 0;
    o.redis_prefix = cfg->evidence.redis_prefix;
    o.redis_ttl_s = cfg->evidence.redis_ttl_s;
    if (s->pub) { /* the publisher's connection, which follows Sentinel and Cluster */
        o.redis_put = evidence_to_redis;
        o.redis_ud = s->pub;
    }
    s->evw = evw_new(&o, err, sizeof(err));
    if (s->evw && evw_start(s->evw) == TW_OK)
        return 0;
    fprintf(stderr, "tunnelwatch: %s\n", s->evw ? "cannot start the evidence writer" : err);
    return 1;
}

static int start_engine(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    char err[1024];
    struct engine_opts *eo = &s->eo;
    eo->cfg = cfg;
    eo->names_out = s->a->names ? stdout : NULL;
    eo->alerts_sink = s->alerts;
    eo->log = stderr;
    eo->schema = cfg->output.schema && !strcmp(cfg->output.schema, "asim") ? ALERT_ASIM : ALERT_ECS;
    eo->pub = s->pub;
    eo->verbosity = cfg->log.verbosity;
    if (start_evidence(s) != 0)
        return 1;
    eo->evw = s->evw;
    s->e = engine_new(eo, s->rules, err, sizeof(err));
    if (s->e)
        return 0;
    fprintf(stderr, "tunnelwatch: %s\n", err);
    return 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int sensor_start(struct sensor *s)
{
    /* from the start: a reader of the alerts FIFO or of stdout that goes away is an output
     * error (counted, reported), not the end of the sensor */
    signal(SIGPIPE, SIG_IGN);
    int r = open_inputs(s);
    if (!r)
        r = open_alerts(s);
    if (!r)
        r = open_live(s);
    if (!r && s->a->pidfile)
        r = write_pidfile(s->a->pidfile);
    if (!r)
        r = drop_privilege(s);
    if (!r && s->alerts && sink_start(s->alerts) != TW_OK) {
        fprintf(stderr, "tunnelwatch: cannot start the alerts file writer\n");
        r = 1;
    }
    if (!r)
        r = start_metrics(s);
    if (!r)
        r = start_publisher(s);
    if (!r)
        r = start_fleet(s);
    if (!r)
        r = start_engine(s);
    if (r)
        return r;
    install_signals();
    if (s->sig) {
        s->config_sig = sig_end(s->sig); /* taken while the rules loaded */
        s->sig = NULL;
    } else {
        s->config_sig = config_signature(s->a, s->cfg);
    }
    return 0;
}

/* ---------- run ---------- */

/* One input: a capture file, or the live interface (file NULL). */
static int run_input(struct sensor *s, const char *file)
{
    char err[1024];
    struct cap_src fsrc;
    struct cap_src *src = &s->live;
    if (file) {
        if (cap_open_file(&fsrc, file, err, sizeof(err))) {
            fprintf(stderr, "tunnelwatch: %s\n", err);
            return 1;
        }
        src = &fsrc;
    }
    s->src = src;
    engine_begin_input(s->e, file, src->dlt, s->n_inputs > 1);
    /* a copy: a reload may replace (and free) the configuration while the file is read */
    char *bpf = s->cfg->capture.bpf ? strdup(s->cfg->capture.bpf) : NULL;
    int r = src->live ? run_live(s, src) : run_file(s, src, bpf);
    free(bpf);
    if (src->live)
        cap_live_stats(src);
    if (file) {
        show_progress(s, true);
        s->progress_done += src->size;
        cap_close(src);
        s->src = NULL; /* fsrc lives in this call only */
    }
    return r;
}

int sensor_run(struct sensor *s)
{
    if (s->n_workers > 0)
        return run_workers(s) ? 1 : 0;
    int status = 0;
    size_t n = s->inputs ? s->n_inputs : 1;
    for (size_t i = 0; i < n && !stop; i++) {
        int r = run_input(s, s->inputs ? s->inputs[i] : NULL);
        if (r == 2)
            return 2;
        if (r)
            status = 1;
    }
    return status;
}

/* ---------- stop ---------- */

/* A replay that ran to its end reports undelivered alerts as a failure; a stop on
 * SIGTERM/SIGINT has flushed or spooled them as asked and exits 0. */
static int stop_publisher(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    pub_stop(s->pub, (int)cfg->redis.stop_flush_ms);
    struct pub_stats ps;
    pub_get_stats(s->pub, &ps);
    if (ps.enqueued <= ps.delivered || !s->inputs || terminated)
        return 0;
    char where[160];
    snprintf(where, sizeof(where), cfg->redis.n_sentinels ? "master '%.100s' (Sentinel)" : "%.150s",
             cfg->redis.n_sentinels ? cfg->redis.master_name : cfg->redis.url);
    fprintf(stderr,
            "tunnelwatch: redis %s unreachable: %" PRIu64 " of %" PRIu64
            " records not delivered (%" PRIu64 " spooled%s%s, %" PRIu64 " dropped)\n",
            where, ps.enqueued - ps.delivered, ps.enqueued, ps.spool_records,
            cfg->redis.spool_dir ? " in " : "", cfg->redis.spool_dir ? cfg->redis.spool_dir : "",
            ps.dropped);
    return 1;
}

/* Hits between two external hosts went out as events: say so, the user may have meant them. */
static void report_external(struct sensor *s)
{
    struct recorder_stats rs;
    engine_record_stats(s->e, &rs);
    uint64_t n = rs.external;
    if (n)
        fprintf(stderr,
                "tunnelwatch: %" PRIu64 " incident%s between hosts outside networks.internal "
                "written as events (event.action \"external\"), not alerts: if that was your own "
                "network, set networks.internal (or alert.external = \"alert\")\n",
                n, n > 1 ? "s" : "");
}

/* A replay whose alerts file lost records failed (exit 1), as one whose Redis did. */
static int output_status(struct sensor *s)
{
    static struct tw_stats st;
    st.n = 0;
    alerts_stats(s, &st);
    uint64_t n = stats_get(&st, "output_errors") + stats_get(&st, "alerts_file_dropped");
    if (!n || !s->inputs)
        return 0;
    fprintf(stderr, "tunnelwatch: %s: %" PRIu64 " record%s not written\n",
            s->cfg->output.alerts_file ? s->cfg->output.alerts_file : "alerts file", n,
            n > 1 ? "s" : "");
    return 1;
}

/* The investigation outputs: the per-host table (replays), --write-evidence, --summary. */
static int write_outputs(struct sensor *s)
{
    const struct tw_cfg *cfg = s->cfg;
    int status = 0;
    char err[1024];
    if (s->inputs && cfg->log.verbosity >= 0 && !s->a->names)
        engine_summary(s->e, stderr, NULL);
    if (s->inputs)
        report_external(s); /* a configuration warning: also under -q */
    if (s->evw && cfg->output.evidence_file) {
        int w = evw_merge(s->evw, cfg->output.evidence_file, err, sizeof(err));
        if (w < 0)
            status = 1;
        if (w < 0 || cfg->log.verbosity >= 0)
            fprintf(stderr, "tunnelwatch: evidence: %s\n", err);
    }
    if (!cfg->output.summary_file)
        return status;
    FILE *sf = fopen(cfg->output.summary_file, "w");
    if (!sf) {
        fprintf(stderr, "tunnelwatch: --summary %s: %s\n", cfg->output.summary_file,
                strerror(errno));
        return 1;
    }
    engine_summary(s->e, NULL, sf);
    fclose(sf);
    return status;
}

/* Live: what the kernel and the interface dropped, as tcpdump reports it. */
static void report_capture(struct sensor *s)
{
    struct cap_src *live = &s->live;
    for (int i = 0; i < s->n_workers; i++) {
        live->recv += s->workers[i].src.recv;
        live->drop += s->workers[i].src.drop;
        live->ifdrop += s->workers[i].src.ifdrop;
    }
    fprintf(stderr,
            "tunnelwatch: %" PRIu64 " packets received by filter, %" PRIu64
            " dropped by kernel, %" PRIu64 " dropped by interface\n",
            live->recv, live->drop, live->ifdrop);
}

int sensor_stop(struct sensor *s, int status)
{
    if (status == 2 || !s->e)
        return status; /* a bad filter, or start-up failed: nothing ran */
    engine_finish(s->e);
    evw_stop(s->evw);     /* the flows' last packets are written */
    fleet_stop(s->fleet); /* its claims and relays go to the publisher before it stops */
    if (s->pub)
        heartbeat(s);
    status |= write_outputs(s);
    if (s->alerts) /* drains while the publisher does: both within redis.stop_flush_ms */
        sink_stop(s->alerts, (int)s->cfg->redis.stop_flush_ms);
    if (s->pub)
        status |= stop_publisher(s);
    sink_close(s->alerts);
    status |= output_status(s);
    bool live = s->live.p || s->n_workers;
    if (s->cfg->log.verbosity > 0 || (live && s->cfg->log.verbosity >= 0))
        print_stats(s, stderr);
    if (live)
        report_capture(s);
    return status;
}

/* The loader (joined: a load in progress is waited for), what it made, what was retired. */
static void free_reload(struct sensor *s)
{
    if (s->ld.running) {
        pthread_join(s->ld.th, NULL);
        free(s->ld.msgs);
        ruleset_free(s->ld.rules);
        free_cfg(s->ld.cfg);
    }
    release_retired(s, true); /* the workers are joined */
    free(s->retired.cfgs);
}

void sensor_free(struct sensor *s)
{
    if (!s)
        return;
    sensor_sig_free(s->sig); /* a start that failed before it took the signature */
    for (int i = 0; i < s->n_workers; i++) {
        engine_free(s->workers[i].e);
        cap_close(&s->workers[i].src);
    }
    free(s->workers);
    cap_close(&s->live);
    metrics_free(s->metrics);
    engine_free(s->e);
    fleet_free(s->fleet);
    pub_free(s->pub);
    ruleset_free(s->rules);
    free_reload(s);
    sink_free(s->alerts); /* after the engines: they queue to it */
    evw_free(s->evw);
    remove_private_dir(s);
    cap_free_inputs(s->inputs);
    if (s->a->pidfile)
        unlink(s->a->pidfile);
    if (s->cfg != s->cfg0)
        free_cfg(s->cfg0);
    free_cfg(s->cfg);
    free(s);
}
