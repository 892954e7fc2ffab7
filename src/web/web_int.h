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
    char evidence_prefix[256];  /* tunnelwatch:evidence: (the sensor's evidence key prefix) */
    char evidence_dir[4096];    /* "": none; else DIR/<incident id>.pcap when Redis has none */
    int64_t evidence_max_mib;   /* 64: a larger pcap is refused (413) */
    int64_t evidence_downloads; /* 4: downloads in progress at once, each <= max_mib */
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
    struct web_ev *ev;       /* webevid.c's fetch thread and its queue */
    /* reader thread only: Redis Cluster (the URL's server said cluster_enabled) */
    bool cluster;
    struct rc_map map;
};

int64_t web_now_us(void);

/* webredis.c: the reader thread (XREADGROUP/XACK, heartbeat SCAN), until *app->stop. */
void *web_redis_main(void *app);

/* webredis.c, for any thread (the page's Redis status is left alone): a logged-in connection
 * to host:port (NULL host: the URL's server), or to the server that holds key: the URL's, or in
 * a Redis Cluster the master of key's slot (map is the caller's scratch for the slot map).
 * NULL with a message in err. */
struct redisContext;
struct redisContext *web_redis_dial(struct web_app *app, const char *host, int port, char *err,
                                    size_t n);
struct redisContext *web_redis_connect_key(struct web_app *app, const char *key, struct rc_map *map,
                                           char *err, size_t n);

/* webevid.c: evidence pcaps, fetched by one thread so the HTTP thread never waits on Redis or
 * a disk. The HTTP side reserves a slot (false: evidence.max_downloads are in progress, or the
 * thread is stopping), suspends its connection and submits a job; the thread fills the job's
 * result and calls done (from the fetch thread), after which the job is the HTTP side's again.
 * The slot is given back by web_ev_release once the response holding the data is freed (or
 * when none was made). */
struct web_evjob {
    char id[WEB_EVID_MAX + 1]; /* checked by web_evidence_id_ok */
    void (*done)(struct web_evjob *j);
    void *cls; /* the HTTP side's */
    /* result: status 200 with data (malloc'd, len bytes, a pcap) from source "redis" or "dir";
     * else an HTTP error status and msg, a line of text for the client */
    unsigned status;
    char msg[400];
    uint8_t *data;
    size_t len;
    const char *source;
    struct web_evjob *next; /* queue link, the thread's */
};
struct web_ev_stats {
    uint64_t served, missing, refused, failed, busy, active;
};
int web_ev_start(struct web_app *app);
bool web_ev_reserve(struct web_app *app);
void web_ev_submit(struct web_app *app, struct web_evjob *j);
void web_ev_release(struct web_app *app);
void web_ev_stats(struct web_app *app, struct web_ev_stats *st);
/* Stops the thread: queued jobs finish with 503. Call before stopping the HTTP daemon; then
 * web_ev_free after it (responses still being freed give their slots back). */
void web_ev_stop(struct web_app *app);
void web_ev_free(struct web_app *app);

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
