/* webredis.c - tunnelwatch-web's Redis reader thread.
 *
 * Reads the alert stream through its own consumer group (XREADGROUP ... >, then XACK), so a
 * restart of tunnelwatch-web resumes where its group stopped and several sensors' records
 * arrive in one order. On every (re)connect it first backfills the window from the stream's tail
 * (XREVRANGE, at most the window's size): the group only hands out entries it never delivered,
 * and the page should show the recent past after a restart too. The window drops entries whose
 * id is not above the last one it holds, so the overlap between backfill and group is harmless.
 * Redis going away never ends the thread: it records the error for the page and reconnects with
 * a capped backoff. Heartbeat hashes are read with SCAN + HGETALL every poll_sensors_ms.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "web_int.h"

#define WEB_READ_COUNT  500  /* entries per XREADGROUP */
#define WEB_SCAN_ROUNDS 100  /* SCAN calls per sensor poll */
#define WEB_HASH_FIELDS 256  /* fields read from one heartbeat hash */
#define WEB_BACKOFF_MAX 5000 /* ms between reconnect attempts, at most */

int64_t web_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_status(struct web_app *app, bool ok, const char *msg)
{
    pthread_mutex_lock(&app->mu);
    /* logged on a change only: a Redis that stays down must not flood the log */
    bool changed = app->redis_ok != ok || (!ok && strcmp(app->redis_err, msg ? msg : "?") != 0);
    app->redis_ok = ok;
    if (ok)
        app->redis_err[0] = '\0';
    else
        snprintf(app->redis_err, sizeof(app->redis_err), "%s", msg ? msg : "?");
    pthread_mutex_unlock(&app->mu);
    if (changed || app->cfg.verbose)
        fprintf(stderr, "tunnelwatch-web: redis %s%s\n", ok ? "connected" : "unreachable: ",
                ok    ? ""
                : msg ? msg
                      : "?");
}

static void sleep_ms(struct web_app *app, int64_t ms)
{
    /* sliced so a stop request is honoured within 100 ms */
    while (ms > 0 && !*app->stop) {
        int64_t s = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)s * 1000000};
        nanosleep(&ts, NULL);
        ms -= s;
    }
}

static redisReply *cmd(redisContext *c, int argc, const char **argv)
{
    return redisCommandArgv(c, argc, argv, NULL);
}

/* A failed reply's text into err: NULL means the connection is gone (c->errstr says why). */
static bool reply_err(redisContext *c, redisReply *r, const char *what, char *err, size_t n)
{
    if (!r)
        snprintf(err, n, "%s", c->errstr[0] ? c->errstr : what);
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, n, "%s: %.150s", what, r->str);
    else
        return true;
    return false;
}

/* Checks a reply: NULL means the connection is gone (c->errstr says why). */
static bool reply_ok(redisContext *c, redisReply *r, struct web_app *app, const char *what)
{
    char msg[200];
    if (reply_err(c, r, what, msg, sizeof(msg)))
        return true;
    set_status(app, false, msg);
    return false;
}

/* AUTH and SELECT as the URL says; false (err written) on failure. */
static bool login(redisContext *c, struct web_app *app, char *err, size_t n)
{
    /* why: XREADGROUP BLOCK is 1 s; a server that stops answering must not hang us */
    struct timeval rt = {5, 0};
    redisSetTimeout(c, rt);
    if (app->url.password[0]) {
        const char *a[3] = {"AUTH", app->url.user, app->url.password};
        redisReply *r = app->url.user[0] ? cmd(c, 3, a) : cmd(c, 2, (const char *[]){"AUTH", a[2]});
        bool ok = reply_err(c, r, "AUTH", err, n);
        if (r)
            freeReplyObject(r);
        if (!ok)
            return false;
    }
    if (app->url.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", app->url.db);
        redisReply *r = cmd(c, 2, (const char *[]){"SELECT", db});
        bool ok = reply_err(c, r, "SELECT", err, n);
        if (r)
            freeReplyObject(r);
        if (!ok)
            return false;
    }
    return true;
}

redisContext *web_redis_dial(struct web_app *app, const char *host, int port, char *err, size_t n)
{
    struct timeval tv = {2, 0};
    bool unix_sock = !host && app->url.is_unix;
    if (!host) {
        host = app->url.host;
        port = app->url.port;
    }
    redisContext *c = unix_sock ? redisConnectUnixWithTimeout(app->url.path, tv)
                                : redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        if (unix_sock)
            snprintf(err, n, "cannot connect to unix://%.108s: %.150s", app->url.path,
                     c ? c->errstr : "out of memory");
        else
            snprintf(err, n, "cannot connect to %.100s:%d: %.150s", host, port,
                     c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    if (!login(c, app, err, n)) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* dial for the reader thread: a failure becomes the page's Redis status. */
static redisContext *connect_to(struct web_app *app, const char *host, int port)
{
    char err[300];
    redisContext *c = web_redis_dial(app, host, port, err, sizeof(err));
    if (!c)
        set_status(app, false, err);
    return c;
}

/* Is c's server a Redis Cluster node? Then *map gets the slot map, and the connection returned
 * is to the master of key's slot (c itself when that is c's server, else c is freed). NULL with
 * err written when no node serves the slot or it cannot be reached. */
static redisContext *route_key(struct web_app *app, redisContext *c, const char *key, bool *cluster,
                               struct rc_map *map, char *err, size_t n)
{
    redisReply *r = cmd(c, 2, (const char *[]){"INFO", "cluster"});
    *cluster = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_enabled:1");
    if (r)
        freeReplyObject(r);
    if (!*cluster)
        return c;
    r = cmd(c, 2, (const char *[]){"CLUSTER", "SLOTS"});
    const struct hostport *o =
        rc_map_from_reply(r, map) == TW_OK ? rc_owner(map, rc_key_slot(key, strlen(key))) : NULL;
    if (r)
        freeReplyObject(r);
    if (!o) {
        snprintf(err, n, "cluster: no node serves the slot of %.100s", key);
        redisFree(c);
        return NULL;
    }
    if (!app->url.is_unix && o->port == app->url.port && strcmp(o->host, app->url.host) == 0)
        return c;
    redisFree(c);
    return web_redis_dial(app, o->host, o->port, err, n);
}

redisContext *web_redis_connect_key(struct web_app *app, const char *key, struct rc_map *map,
                                    char *err, size_t n)
{
    bool cluster;
    redisContext *c = web_redis_dial(app, NULL, 0, err, n);
    return c ? route_key(app, c, key, &cluster, map, err, n) : NULL;
}

/* Redis Cluster: is the URL's server a cluster node? Then app->map gets the slot map, and the
 * stream is read on the master of its slot (every sensor writes that one stream key; a MOVED
 * reply drops the connection, and the reconnect asks for the map again). */
static redisContext *connect_redis(struct web_app *app)
{
    char err[300];
    redisContext *c = connect_to(app, NULL, 0);
    if (c &&
        !(c = route_key(app, c, app->cfg.stream_key, &app->cluster, &app->map, err, sizeof(err))))
        set_status(app, false, err);
    return c;
}

/* XGROUP CREATE ... 0 MKSTREAM: a new group starts at the stream's beginning (the window caps
 * what is kept); BUSYGROUP means it exists and keeps its position. */
static bool ensure_group(redisContext *c, struct web_app *app)
{
    const char *a[6] = {"XGROUP", "CREATE", app->cfg.stream_key, app->cfg.group, "0", "MKSTREAM"};
    redisReply *r = cmd(c, 6, a);
    bool ok = r && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0);
    if (!ok)
        reply_ok(c, r, app, "XGROUP CREATE");
    if (r)
        freeReplyObject(r);
    return ok;
}

/* Adds one stream entry [id, [field, value, ...]] to the window (caller holds mu). */
static void add_entry(struct web_app *app, const redisReply *e, int64_t now)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *f = e->element[1];
    if (f->type != REDIS_REPLY_ARRAY)
        return; /* a deleted entry still pending: nothing to show */
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, "alert") == 0) {
            struct web_pressure pr;
            if (memmem(v->str, v->len, "resource_pressure", 17) &&
                web_pressure_parse(v->str, v->len, &pr) == TW_OK)
                (void)web_sensors_pressure(app->sensors, &pr, web_now_us() / 1000000);
            (void)web_win_add(app->win, e->element[0]->str, v->str, v->len, now);
            return;
        }
    }
}

static bool backfill(redisContext *c, struct web_app *app)
{
    char count[24];
    snprintf(count, sizeof(count), "%lld", (long long)app->cfg.window_entries);
    const char *a[6] = {"XREVRANGE", app->cfg.stream_key, "+", "-", "COUNT", count};
    redisReply *r = cmd(c, 6, a);
    bool ok = reply_ok(c, r, app, "XREVRANGE");
    if (ok && r->type == REDIS_REPLY_ARRAY) {
        int64_t now = web_now_us();
        pthread_mutex_lock(&app->mu);
        for (size_t i = r->elements; i-- > 0;)
            add_entry(app, r->element[i], now);
        pthread_mutex_unlock(&app->mu);
    }
    if (r)
        freeReplyObject(r);
#ifdef __GLIBC__
    /* why: the backfill reply (up to the window's size, tens of MB) is freed in small pieces
     * the allocator keeps; give them back rather than hold them for the process's life */
    malloc_trim(0);
#endif
    return ok;
}

/* One XREADGROUP from id (">" new entries, "0" our pending ones); adds and acknowledges them.
 * Returns the number of entries, or -1 when the connection must be dropped. */
static long read_group(redisContext *c, struct web_app *app, const char *id, bool block)
{
    char count[16];
    snprintf(count, sizeof(count), "%d", WEB_READ_COUNT);
    const char *argv[11] = {"XREADGROUP",      "GROUP", app->cfg.group,
                            app->cfg.consumer, "COUNT", count};
    int argc = 6;
    if (block) {
        argv[argc++] = "BLOCK";
        argv[argc++] = "1000";
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = app->cfg.stream_key;
    argv[argc++] = id;
    redisReply *r = cmd(c, argc, argv);
    if (!r) {
        set_status(app, false, c->errstr[0] ? c->errstr : "XREADGROUP");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: Redis restarted empty or the stream was deleted; make the group again */
        bool nogroup = strncmp(r->str, "NOGROUP", 7) == 0;
        reply_ok(c, r, app, "XREADGROUP");
        freeReplyObject(r);
        if (nogroup && ensure_group(c, app))
            return 0;
        return -1;
    }
    long n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        const redisReply *entries = r->element[0]->element[1];
        if (entries->type == REDIS_REPLY_ARRAY && entries->elements) {
            int64_t now = web_now_us();
            size_t ne = entries->elements;
            const char **ack = calloc(ne + 3, sizeof(*ack));
            size_t na = 0;
            pthread_mutex_lock(&app->mu);
            for (size_t i = 0; i < ne; i++) {
                const redisReply *e = entries->element[i];
                add_entry(app, e, now);
                if (ack && e->type == REDIS_REPLY_ARRAY && e->elements >= 1 &&
                    e->element[0]->type == REDIS_REPLY_STRING)
                    ack[3 + na++] = e->element[0]->str;
            }
            pthread_mutex_unlock(&app->mu);
            n = (long)ne;
            if (ack && na) {
                ack[0] = "XACK";
                ack[1] = app->cfg.stream_key;
                ack[2] = app->cfg.group;
                redisReply *ar = cmd(c, (int)(na + 3), ack);
                bool ok = reply_ok(c, ar, app, "XACK");
                if (ar)
                    freeReplyObject(ar);
                if (!ok) {
                    free(ack);
                    freeReplyObject(r);
                    return -1;
                }
                pthread_mutex_lock(&app->mu);
                app->acked += na;
                pthread_mutex_unlock(&app->mu);
            }
            free(ack);
        }
    }
    freeReplyObject(r);
    return n;
}

static void poll_sensor(redisContext *c, struct web_app *app, const char *key)
{
    redisReply *r = cmd(c, 2, (const char *[]){"HGETALL", key});
    if (r && r->type == REDIS_REPLY_ARRAY) {
        const char *keys[WEB_HASH_FIELDS], *vals[WEB_HASH_FIELDS];
        size_t n = 0;
        for (size_t i = 0; i + 1 < r->elements && n < WEB_HASH_FIELDS; i += 2) {
            if (r->element[i]->type != REDIS_REPLY_STRING ||
                r->element[i + 1]->type != REDIS_REPLY_STRING)
                continue;
            keys[n] = r->element[i]->str;
            vals[n] = r->element[i + 1]->str;
            n++;
        }
        if (n) {
            pthread_mutex_lock(&app->mu);
            (void)web_sensors_update(app->sensors, key + strlen(app->cfg.heartbeat_prefix), keys,
                                     vals, n, web_now_us() / 1000000);
            pthread_mutex_unlock(&app->mu);
        }
    }
    if (r)
        freeReplyObject(r);
}

static bool scan_sensors(redisContext *c, struct web_app *app)
{
    char match[300], cursor[32] = "0";
    snprintf(match, sizeof(match), "%s*", app->cfg.heartbeat_prefix);
    /* why: SCAN is driven by how many keys exist; cap the rounds per poll */
    for (int round = 0; round < WEB_SCAN_ROUNDS; round++) {
        const char *a[6] = {"SCAN", cursor, "MATCH", match, "COUNT", "200"};
        redisReply *r = cmd(c, 6, a);
        if (!reply_ok(c, r, app, "SCAN")) {
            if (r)
                freeReplyObject(r);
            return false;
        }
        bool done = true;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY) {
            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
            done = strcmp(cursor, "0") == 0;
            for (size_t i = 0; i < r->element[1]->elements; i++) {
                const redisReply *k = r->element[1]->element[i];
                if (k->type == REDIS_REPLY_STRING)
                    poll_sensor(c, app, k->str);
            }
        }
        freeReplyObject(r);
        if (done)
            break;
    }
    return true;
}

/* Heartbeat hashes: SCAN on the server, or in a cluster on every master (each key lives on
 * the master of its slot; an unreachable master is skipped this round). */
static bool poll_sensors(redisContext *c, struct web_app *app)
{
    if (!app->cluster) {
        if (!scan_sensors(c, app))
            return false;
    } else {
        for (size_t i = 0; i < app->map.n_nodes; i++) {
            redisContext *n = connect_to(app, app->map.nodes[i].host, app->map.nodes[i].port);
            if (n) {
                (void)scan_sensors(n, app);
                redisFree(n);
            }
        }
    }
    pthread_mutex_lock(&app->mu);
    web_sensors_expire(app->sensors, web_now_us() / 1000000);
    pthread_mutex_unlock(&app->mu);
    return true;
}

void *web_redis_main(void *arg)
{
    struct web_app *app = arg;
    redisContext *c = NULL;
    int64_t backoff = 250, next_sensors = 0;
    while (!*app->stop) {
        if (!c) {
            c = connect_redis(app);
            if (c && (!ensure_group(c, app) || !backfill(c, app) ||
                      read_group(c, app, "0", false) < 0)) {
                redisFree(c);
                c = NULL;
            }
            if (!c) {
                sleep_ms(app, backoff);
                backoff = backoff * 2 > WEB_BACKOFF_MAX ? WEB_BACKOFF_MAX : backoff * 2;
                continue;
            }
            backoff = 250;
            pthread_mutex_lock(&app->mu);
            app->reconnects++;
            pthread_mutex_unlock(&app->mu);
            set_status(app, true, NULL);
            next_sensors = 0;
        }
        if (mono_ms() >= next_sensors) {
            next_sensors = mono_ms() + app->cfg.poll_sensors_ms;
            if (!poll_sensors(c, app)) {
                redisFree(c);
                c = NULL;
                continue;
            }
        }
        if (read_group(c, app, ">", true) < 0) {
            redisFree(c);
            c = NULL;
            continue;
        }
        pthread_mutex_lock(&app->mu);
        bool ok = app->redis_ok;
        pthread_mutex_unlock(&app->mu);
        if (!ok)
            set_status(app, true, NULL);
    }
    if (c)
        redisFree(c);
    return NULL;
}
