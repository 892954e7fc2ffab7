/* main.c - tunnelwatch-web's entry point: command line, configuration, start, wait, stop.
 *
 * main() is a list of named phases: parse_args, load_config, app_init, serve, app_free. The
 * configuration (conf/tunnelwatch-web.conf, every key in web_keys[] below) is read by tw_core's
 * cfg_load_table, so a problem in it is reported "FILE:LINE: KEY: problem" exactly like the
 * sensor's; the command-line flags then override the file. serve() starts the HTTP daemon and
 * the Redis reader thread and waits for SIGINT/SIGTERM. Listens on 127.0.0.1:8080 unless
 * `listen` says otherwise; a non-loopback listen without basic auth is allowed (the operator
 * asked for it) but warned about.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "tunnelwatch/cfg.h"
#include "web_int.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *f)
{
    fputs("usage: tunnelwatch-web [-c CONF] [-l HOST:PORT] [--redis URL] [-v]\n"
          "Live page over the tunnelwatch alert stream: sensors, alerts, hosts, and each\n"
          "incident's evidence pcap (GET /api/evidence/INCIDENT_ID.pcap).\n"
          "  -c CONF            configuration file (libconfig; see conf/tunnelwatch-web.conf)\n"
          "  -l, --listen ADDR  HOST:PORT or [V6]:PORT to serve on (default 127.0.0.1:8080;\n"
          "                     port 0 picks a free one, printed at start)\n"
          "  --redis URL        redis://[user:pass@]host:port/db or unix:///path.sock\n"
          "  --stream KEY       alert stream key (default tunnelwatch:alerts)\n"
          "  --group NAME       consumer group (default tunnelwatch-web)\n"
          "  --max-skew-s N     records dated more than N s ahead are clock skew (default 300)\n"
          "  --sensor-forget-s N  a sensor silent N s leaves the table (default 3600)\n"
          "  -v                 log every Redis status change   -V  version   -h  help\n"
          "Exit status: 0 ok, 1 runtime failure, 2 usage/configuration error.\n",
          f);
}

static void defaults(struct web_cfg *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8080");
    snprintf(c->redis_url, sizeof(c->redis_url), "redis://127.0.0.1:6379/0");
    snprintf(c->stream_key, sizeof(c->stream_key), "tunnelwatch:alerts");
    snprintf(c->heartbeat_prefix, sizeof(c->heartbeat_prefix), "tunnelwatch:sensor:");
    snprintf(c->group, sizeof(c->group), "tunnelwatch-web");
    c->window_hours = 24;
    c->window_entries = 20000;
    c->timeline_hours = 6;
    c->timeline_buckets = 36;
    c->max_skew_s = 300;
    c->down_after_s = 30;
    c->forget_s = 3600;
    c->max_sensors = 256;
    c->poll_sensors_ms = 2000;
    c->http_per_ip = 8;
    c->http_max_conn = 256;
    c->http_header_s = 5;
    c->http_idle_s = 30;
    snprintf(c->evidence_prefix, sizeof(c->evidence_prefix), "tunnelwatch:evidence:");
    c->evidence_max_mib = 64;
    c->evidence_downloads = 4;
}

#define WS(p, f)                                                                                   \
    {                                                                                              \
        p, CFG_T_STR, offsetof(struct web_cfg, f), sizeof(((struct web_cfg *)0)->f), 0, 0          \
    }
#define WI(p, f, lo, hi)                                                                           \
    {                                                                                              \
        p, CFG_T_I64, offsetof(struct web_cfg, f), sizeof(int64_t), lo, hi                         \
    }

/* Every key of conf/tunnelwatch-web.conf, read by tw_core's cfg_load_table. */
static const struct cfg_tkey web_keys[] = {
    WS("listen", listen),
    WS("redis.url", redis_url),
    WS("redis.stream_key", stream_key),
    WS("redis.heartbeat_prefix", heartbeat_prefix),
    WS("redis.group", group),
    WS("redis.consumer", consumer),
    WI("window.hours", window_hours, 1, 24 * 90),
    WI("window.entries", window_entries, 10, 1000000),
    WI("timeline.hours", timeline_hours, 1, 24 * 90),
    WI("timeline.buckets", timeline_buckets, 1, WEB_TL_MAX),
    WI("window.max_skew_s", max_skew_s, 0, 86400 * 365),
    WI("window.seen_ids", seen_ids, 0, 10000000),
    WI("sensors.down_after_s", down_after_s, 1, 86400),
    WI("sensors.forget_s", forget_s, 1, 86400 * 90),
    WI("sensors.max", max_sensors, 1, 65536),
    WI("sensors.poll_ms", poll_sensors_ms, 100, 600000),
    WI("http.per_ip", http_per_ip, 1, 1024),
    WI("http.max_connections", http_max_conn, 2, 4096),
    WI("http.header_timeout_s", http_header_s, 1, 600),
    WI("http.idle_timeout_s", http_idle_s, 1, 3600),
    WS("auth.user", auth_user),
    WS("auth.password", auth_password),
    WS("evidence.redis_prefix", evidence_prefix),
    WS("evidence.dir", evidence_dir),
    WI("evidence.max_mib", evidence_max_mib, 1, 1024),
    WI("evidence.max_downloads", evidence_downloads, 1, 64),
};

static bool is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

static int set_opt(char *dst, size_t n, const char *v, const char *what)
{
    if (strlen(v) >= n) {
        fprintf(stderr, "tunnelwatch-web: %s is too long\n", what);
        return TW_ECONF;
    }
    memcpy(dst, v, strlen(v) + 1);
    return TW_OK;
}

static int num_opt(int64_t *dst, const char *v, int64_t lo, int64_t hi, const char *what)
{
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!v[0] || *end || n < lo || n > hi) {
        fprintf(stderr, "tunnelwatch-web: %s: expected a number in %lld..%lld, got '%s'\n", what,
                (long long)lo, (long long)hi, v);
        return TW_ECONF;
    }
    *dst = n;
    return TW_OK;
}

/* The command line: what it names overrides the file. */
struct args {
    const char *conf, *listen, *redis, *stream, *group, *skew, *forget;
    int verbose;
};

/* Phase 1: the command line. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"redis", required_argument, NULL, 'r'},
                                             {"stream", required_argument, NULL, 's'},
                                             {"group", required_argument, NULL, 'g'},
                                             {"max-skew-s", required_argument, NULL, 'k'},
                                             {"sensor-forget-s", required_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    memset(a, 0, sizeof(*a));
    while ((opt = getopt_long(argc, argv, "c:l:vVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            a->conf = optarg;
            break;
        case 'l':
            a->listen = optarg;
            break;
        case 'r':
            a->redis = optarg;
            break;
        case 's':
            a->stream = optarg;
            break;
        case 'g':
            a->group = optarg;
            break;
        case 'k':
            a->skew = optarg;
            break;
        case 'f':
            a->forget = optarg;
            break;
        case 'v':
            a->verbose++;
            break;
        case 'V':
            printf("tunnelwatch-web %s\n", TW_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Phase 2: defaults, the file (problems as FILE:LINE: KEY: problem), the command line, the
 * cross-checks and the Redis URL. TW_OK or TW_ECONF (message written). */
static int load_config(const struct args *a, struct web_app *app)
{
    struct web_cfg *c = &app->cfg;
    defaults(c);
    if (a->conf && cfg_load_table(web_keys, TW_ARRAY_LEN(web_keys), c, a->conf, stderr) != 0)
        return TW_ECONF;
    if ((a->listen && set_opt(c->listen, sizeof(c->listen), a->listen, "--listen")) ||
        (a->redis && set_opt(c->redis_url, sizeof(c->redis_url), a->redis, "--redis")) ||
        (a->stream && set_opt(c->stream_key, sizeof(c->stream_key), a->stream, "--stream")) ||
        (a->group && set_opt(c->group, sizeof(c->group), a->group, "--group")))
        return TW_ECONF;
    if ((a->skew && num_opt(&c->max_skew_s, a->skew, 0, 86400 * 365, "--max-skew-s")) ||
        (a->forget && num_opt(&c->forget_s, a->forget, 1, 86400 * 90, "--sensor-forget-s")))
        return TW_ECONF;
    c->verbose = a->verbose;
    if (!c->stream_key[0] || !c->group[0]) {
        fprintf(stderr, "tunnelwatch-web: stream key and group must not be empty\n");
        return TW_ECONF;
    }
    if (!c->consumer[0]) {
        char hn[64] = "web";
        gethostname(hn, sizeof(hn) - 1);
        hn[sizeof(hn) - 1] = '\0';
        snprintf(c->consumer, sizeof(c->consumer), "%.64s-%ld", hn, (long)getpid());
    }
    if (!c->evidence_prefix[0]) {
        /* why: the prefix is what keeps a download to the evidence keys */
        fprintf(stderr, "tunnelwatch-web: evidence.redis_prefix must not be empty\n");
        return TW_ECONF;
    }
    if (c->auth_user[0] && !c->auth_password[0]) {
        fprintf(stderr, "tunnelwatch-web: auth.user is set but auth.password is empty\n");
        return TW_ECONF;
    }
    char err[256];
    if (pub_parse_url(c->redis_url, &app->url, err, sizeof(err))) {
        fprintf(stderr, "tunnelwatch-web: %s\n", err);
        return TW_ECONF;
    }
    return TW_OK;
}

/* Phase 3: the window, the sensors table and the lock. TW_ENOMEM (message written). */
static int app_init(struct web_app *app)
{
    const struct web_cfg *c = &app->cfg;
    pthread_mutex_init(&app->mu, NULL);
    app->stop = &stop;
    snprintf(app->redis_err, sizeof(app->redis_err), "not connected yet");
    struct web_win_opts o = {.max_entries = (size_t)c->window_entries,
                             .seen_max = (size_t)c->seen_ids,
                             .max_age_us = c->window_hours * 3600 * 1000000,
                             .max_skew_us = c->max_skew_s * 1000000,
                             .tl_buckets = (unsigned)c->timeline_buckets,
                             .tl_bucket_s =
                                 (unsigned)(c->timeline_hours * 3600 / c->timeline_buckets)};
    app->win = web_win_new(&o);
    app->sensors = web_sensors_new((size_t)c->max_sensors, c->down_after_s, c->forget_s);
    if (!app->win || !app->sensors || web_ev_start(app) != TW_OK) {
        fprintf(stderr, "tunnelwatch-web: out of memory\n");
        return TW_ENOMEM;
    }
    return TW_OK;
}

static void on_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Phase 4: the HTTP daemon and the Redis thread, until SIGINT/SIGTERM. The exit status. */
static int serve(struct web_app *app)
{
    char host[256];
    int port = 0;
    struct MHD_Daemon *d = web_http_start(app, &port, host, sizeof(host));
    if (!d)
        return 1;
    fprintf(stderr,
            "tunnelwatch-web: connections: %lld per client address, %lld in all; headers within "
            "%lld s\n",
            (long long)app->cfg.http_per_ip, (long long)app->cfg.http_max_conn,
            (long long)app->cfg.http_header_s);
    if (!is_loopback(host))
        fprintf(stderr, "tunnelwatch-web: warning: serving on %s, not loopback%s\n", host,
                app->cfg.auth_user[0] ? "" : ", and without basic auth");
    pthread_t rt;
    if (pthread_create(&rt, NULL, web_redis_main, app)) {
        fprintf(stderr, "tunnelwatch-web: cannot start the Redis thread\n");
        MHD_stop_daemon(d);
        return 1;
    }
    fprintf(stderr, "tunnelwatch-web: listening on http://%s%s%s:%d/\n",
            strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    fflush(stderr);

    /* polled: the signal may be delivered to any thread, so pause() here could miss it */
    while (!stop) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        web_http_sweep(app);
    }

    web_ev_stop(app); /* resumes the downloads it held, before the daemon goes */
    MHD_stop_daemon(d);
    web_http_free(app);
    pthread_join(rt, NULL);
    return 0;
}

/* Phase 5: free what app_init made and wipe the secrets. */
static void app_free(struct web_app *app)
{
    web_win_free(app->win);
    web_sensors_free(app->sensors);
    web_ev_free(app);
    explicit_bzero(app->url.password, sizeof(app->url.password));
    explicit_bzero(app->cfg.auth_password, sizeof(app->cfg.auth_password));
    pthread_mutex_destroy(&app->mu);
}

int main(int argc, char **argv)
{
    static struct web_app app;
    struct args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (load_config(&a, &app))
        return 2;
    if (app_init(&app))
        return 1;
    on_signals();
    rc = serve(&app);
    if (rc == 0)
        app_free(&app);
    return rc;
}
