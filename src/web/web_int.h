/* web_int.h - state shared by tunnelwatch-web's main, Redis reader and HTTP server.
 *
 * One struct web_app, built by main.c. The Redis reader thread writes the window, the sensor
 * table and the Redis status; the HTTP server's thread reads them to render. Both hold app->mu
 * for the whole of a write or a render, which is short (a render costs the page it shows).
 */
#ifndef TW_WEB_INT_H
#define TW_WEB_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "tunnelwatch/publish.h"
#include "tunnelwatch/rcluster.h"
#include "webcore.h"

struct web_cfg {
    char listen[300];           /* "127.0.0.1:8080"; "[::1]:8080"; port 0 = any free port */
    char redis_url[512];        /* redis://host:port/db or unix:///path.sock */
    char stream_key[256];       /* tunnelwatch:alerts */
    char heartbeat_prefix[256]; /* tunnelwatch:sensor: */
    char group[128];            /* consumer group, one per tunnelwatch-web deployment */
    char consumer[128];         /* "" = hostname-pid */
    int64_t window_hours;       /* 24 */
    int64_t window_entries;     /* 20000 */
    int64_t timeline_hours;     /* 6 */
    int64_t timeline_buckets;   /* 36 */
    int64_t max_skew_s;         /* 300: records dated further ahead count as clock skew */
    int64_t seen_ids;           /* 0 = 2 x window_entries: event ids remembered for dedup */
    int64_t down_after_s;       /* 30: a heartbeat older than this shows the sensor down */
    int64_t forget_s;           /* 3600: a sensor silent this long leaves the table */
    int64_t max_sensors;        /* 256 */
    int64_t poll_sensors_ms;    /* 2000 */
    int64_t http_per_ip;        /* 8 connections per client address */
    int64_t http_max_conn;      /* 256 connections in all */
    int64_t http_header_s;      /* 5: a request's headers must arrive within this */
    int64_t http_idle_s;        /* 30: an idle keep-alive connection is closed after this */
    char auth_user[128], auth_password[256]; /* basic auth when user is set */
    int verbose;
};

struct web_app {
    struct web_cfg cfg;
    struct pub_url url;
    pthread_mutex_t mu;
    struct web_win *win;
    struct web_sensors *sensors;
    /* Redis status, under mu */
    bool redis_ok;
    char redis_err[256];
    uint64_t reconnects, acked;
    volatile sig_atomic_t *stop;
    struct web_conns *conns; /* webhttp.c's connection table */
    /* reader thread only: Redis Cluster (the URL's server said cluster_enabled) */
    bool cluster;
    struct rc_map map;
};

int64_t web_now_us(void);

/* webredis.c: the reader thread (XREADGROUP/XACK, heartbeat SCAN), until *app->stop. */
void *web_redis_main(void *app);

/* webhttp.c: starts the libmicrohttpd daemon on cfg.listen; NULL with a message on stderr. The
 * bound port is written to *port. */
struct MHD_Daemon;
struct MHD_Daemon *web_http_start(struct web_app *app, int *port, char *host, size_t hostlen);
/* Closes connections whose request headers did not arrive within cfg.http_header_s (a slow
 * client holding a slot before authentication). Called by main every 200 ms; returns how many. */
size_t web_http_sweep(struct web_app *app);
/* Frees what web_http_start made, once the daemon is stopped. */
void web_http_free(struct web_app *app);

#endif /* TW_WEB_INT_H */
