/* main.c - tunnelwatch-web: the analyst's live page over the tunnelwatch alert stream.
 *
 * Reads the configuration (libconfig, conf/tunnelwatch-web.conf), builds one struct web_app,
 * starts the Redis reader thread and the HTTP daemon, and waits for SIGINT/SIGTERM. Listens on
 * 127.0.0.1:8080 unless `listen` says otherwise; a non-loopback listen without basic auth is
 * allowed (the operator asked for it) but warned about.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libconfig.h>
#include <microhttpd.h>

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
          "Live page over the tunnelwatch alert stream: sensors, alerts, hosts.\n"
          "  -c CONF            configuration file (libconfig; see conf/tunnelwatch-web.conf)\n"
          "  -l, --listen ADDR  HOST:PORT or [V6]:PORT to serve on (default 127.0.0.1:8080;\n"
          "                     port 0 picks a free one, printed at start)\n"
          "  --redis URL        redis://[user:pass@]host:port/db or unix:///path.sock\n"
          "  --stream KEY       alert stream key (default tunnelwatch:alerts)\n"
          "  --group NAME       consumer group (default tunnelwatch-web)\n"
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
    c->down_after_s = 30;
    c->poll_sensors_ms = 2000;
}

static int cfg_str(config_t *cf, const char *path, char *dst, size_t n, const char *file)
{
    const char *v;
    if (!config_lookup_string(cf, path, &v)) {
        if (config_lookup(cf, path)) {
            fprintf(stderr, "%s: %s must be a string\n", file, path);
            return TW_ECONF;
        }
        return TW_OK;
    }
    if (strlen(v) >= n) {
        fprintf(stderr, "%s: %s is too long (at most %zu bytes)\n", file, path, n - 1);
        return TW_ECONF;
    }
    memcpy(dst, v, strlen(v) + 1);
    return TW_OK;
}

static int cfg_int(config_t *cf, const char *path, int64_t *dst, int64_t lo, int64_t hi,
                   const char *file)
{
    long long v;
    if (!config_lookup_int64(cf, path, &v)) {
        if (config_lookup(cf, path)) {
            fprintf(stderr, "%s: %s must be an integer\n", file, path);
            return TW_ECONF;
        }
        return TW_OK;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "%s: %s = %lld is outside %lld..%lld\n", file, path, v, (long long)lo,
                (long long)hi);
        return TW_ECONF;
    }
    *dst = (int64_t)v;
    return TW_OK;
}

static int load_config(const char *file, struct web_cfg *c)
{
    config_t cf;
    config_init(&cf);
    if (!config_read_file(&cf, file)) {
        fprintf(stderr, "%s:%d: %s\n", config_error_file(&cf) ? config_error_file(&cf) : file,
                config_error_line(&cf), config_error_text(&cf));
        config_destroy(&cf);
        return TW_ECONF;
    }
    int rc = cfg_str(&cf, "listen", c->listen, sizeof(c->listen), file) ||
             cfg_str(&cf, "redis.url", c->redis_url, sizeof(c->redis_url), file) ||
             cfg_str(&cf, "redis.stream_key", c->stream_key, sizeof(c->stream_key), file) ||
             cfg_str(&cf, "redis.heartbeat_prefix", c->heartbeat_prefix,
                     sizeof(c->heartbeat_prefix), file) ||
             cfg_str(&cf, "redis.group", c->group, sizeof(c->group), file) ||
             cfg_str(&cf, "redis.consumer", c->consumer, sizeof(c->consumer), file) ||
             cfg_int(&cf, "window.hours", &c->window_hours, 1, 24 * 90, file) ||
             cfg_int(&cf, "window.entries", &c->window_entries, 10, 1000000, file) ||
             cfg_int(&cf, "timeline.hours", &c->timeline_hours, 1, 24 * 90, file) ||
             cfg_int(&cf, "timeline.buckets", &c->timeline_buckets, 1, WEB_TL_MAX, file) ||
             cfg_int(&cf, "sensors.down_after_s", &c->down_after_s, 1, 86400, file) ||
             cfg_int(&cf, "sensors.poll_ms", &c->poll_sensors_ms, 100, 600000, file) ||
             cfg_str(&cf, "auth.user", c->auth_user, sizeof(c->auth_user), file) ||
             cfg_str(&cf, "auth.password", c->auth_password, sizeof(c->auth_password), file);
    config_destroy(&cf);
    return rc ? TW_ECONF : TW_OK;
}

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

int main(int argc, char **argv)
{
    static struct web_app app;
    const char *conf = NULL, *listen = NULL, *redis = NULL, *stream = NULL, *group = NULL;
    int verbose = 0;
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"redis", required_argument, NULL, 'r'},
                                             {"stream", required_argument, NULL, 's'},
                                             {"group", required_argument, NULL, 'g'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:l:vVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'r':
            redis = optarg;
            break;
        case 's':
            stream = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'v':
            verbose++;
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
    struct web_cfg *c = &app.cfg;
    defaults(c);
    if (conf && load_config(conf, c))
        return 2;
    if ((listen && set_opt(c->listen, sizeof(c->listen), listen, "--listen")) ||
        (redis && set_opt(c->redis_url, sizeof(c->redis_url), redis, "--redis")) ||
        (stream && set_opt(c->stream_key, sizeof(c->stream_key), stream, "--stream")) ||
        (group && set_opt(c->group, sizeof(c->group), group, "--group")))
        return 2;
    c->verbose = verbose;
    if (!c->stream_key[0] || !c->group[0]) {
        fprintf(stderr, "tunnelwatch-web: stream key and group must not be empty\n");
        return 2;
    }
    if (!c->consumer[0]) {
        char hn[64] = "web";
        gethostname(hn, sizeof(hn) - 1);
        hn[sizeof(hn) - 1] = '\0';
        snprintf(c->consumer, sizeof(c->consumer), "%.64s-%ld", hn, (long)getpid());
    }
    if (c->auth_user[0] && !c->auth_password[0]) {
        fprintf(stderr, "tunnelwatch-web: auth.user is set but auth.password is empty\n");
        return 2;
    }
    char err[256];
    if (pub_parse_url(c->redis_url, &app.url, err, sizeof(err))) {
        fprintf(stderr, "tunnelwatch-web: %s\n", err);
        return 2;
    }

    pthread_mutex_init(&app.mu, NULL);
    app.stop = &stop;
    snprintf(app.redis_err, sizeof(app.redis_err), "not connected yet");
    app.win = web_win_new((size_t)c->window_entries, c->window_hours * 3600 * 1000000);
    app.sensors = web_sensors_new(256, c->down_after_s, c->window_hours * 3600);
    if (!app.win || !app.sensors) {
        fprintf(stderr, "tunnelwatch-web: out of memory\n");
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char host[256];
    int port = 0;
    struct MHD_Daemon *d = web_http_start(&app, &port, host, sizeof(host));
    if (!d)
        return 1;
    if (!is_loopback(host))
        fprintf(stderr, "tunnelwatch-web: warning: serving on %s, not loopback%s\n", host,
                c->auth_user[0] ? "" : ", and without basic auth");
    pthread_t rt;
    if (pthread_create(&rt, NULL, web_redis_main, &app)) {
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
    }

    MHD_stop_daemon(d);
    pthread_join(rt, NULL);
    web_win_free(app.win);
    web_sensors_free(app.sensors);
    explicit_bzero(app.url.password, sizeof(app.url.password));
    explicit_bzero(c->auth_password, sizeof(c->auth_password));
    pthread_mutex_destroy(&app.mu);
    return 0;
}
