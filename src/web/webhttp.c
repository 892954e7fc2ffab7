/* webhttp.c - tunnelwatch-web's HTTP side (libmicrohttpd, one internal polling thread).
 *
 * Serves the embedded page (index.html, app.js, app.css) and JSON endpoints rendered by
 * webcore.c under the app lock. GET/HEAD only; every response carries no-store, nosniff and a
 * Content-Security-Policy that allows only this origin's script and style, so even a value that
 * slipped past escaping could not run inline script. Optional basic auth compares in constant
 * time. Binding to a non-loopback address is possible only through the listen setting.
 *
 * Connections are limited before anything is read: http.per_ip per client address (8), and
 * http.max_connections in all (256), so one client cannot hold every slot; a connection whose
 * request headers have not arrived within http.header_timeout_s (5 s) of its opening, or within
 * http.idle_timeout_s (30 s) of its previous request, is shut down by web_http_sweep (a client
 * sending a byte a second defeats an idle timeout, not this deadline). /api/state carries a
 * version: a poll that sends back the version it last got, with nothing new since, gets only the
 * status (well under 2 KB).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <microhttpd.h>

#include "web_int.h"
#include "webassets.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

#define WEB_RESP_MAX  (32u * 1024 * 1024) /* one response, at most */
#define WEB_PAGE_DEFL 50                  /* rows in a page unless the query says */

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                          "form-action 'self'; frame-ancestors 'none'";

static const char *mime_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    return "application/octet-stream";
}

static MHD_Result_t respond(struct MHD_Connection *conn, unsigned status, const char *mime,
                            struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", mime);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_Result_t rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static MHD_Result_t send_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
                                                             MHD_RESPMEM_PERSISTENT);
    return respond(conn, status, "text/plain; charset=utf-8", r);
}

/* Hands b's memory to libmicrohttpd. */
static MHD_Result_t send_buf(struct MHD_Connection *conn, unsigned status, const char *mime,
                             struct jw *b)
{
    if (b->err) {
        jw_free(b);
        return send_text(conn, 500, "response too large or out of memory\n");
    }
    if (!b->buf)
        jw_append(b, "", 0);
    struct MHD_Response *r = MHD_create_response_from_buffer(b->len, b->buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        jw_free(b);
        return MHD_NO;
    }
    b->buf = NULL;
    return respond(conn, status, mime, r);
}

static bool ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0;
}

static bool authorized(struct web_app *app, struct MHD_Connection *conn)
{
    if (!app->cfg.auth_user[0])
        return true;
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(conn, &pass);
    /* both comparisons always run (no early exit that would time which part was wrong) */
    bool ok =
        user && pass &&
        ((int)ct_equal(user, app->cfg.auth_user) & (int)ct_equal(pass, app->cfg.auth_password));
    if (user)
        MHD_free(user);
    if (pass)
        MHD_free(pass);
    return ok;
}

static const char *arg(struct MHD_Connection *conn, const char *name)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    return v ? v : "";
}

static uint64_t web_http_timed_out(struct web_app *app);

static size_t num_arg(struct MHD_Connection *conn, const char *name, size_t defl)
{
    const char *v = arg(conn, name);
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!v[0] || *end || n < 0)
        return defl;
    return n > WEB_SKIP_MAX ? WEB_SKIP_MAX : (size_t)n;
}

static enum web_sort sort_arg(struct MHD_Connection *conn, const char *name)
{
    const char *v = arg(conn, name);
    if (strcmp(v, "hits") == 0)
        return WEB_SORT_HITS;
    if (strcmp(v, "last") == 0)
        return WEB_SORT_LAST;
    if (strcmp(v, "host") == 0)
        return WEB_SORT_HOST;
    return WEB_SORT_DEFAULT;
}

/* The filter and the two pages (alerts: offset/limit/sort; hosts: hoffset/hlimit/hsort). */
static void query_from(struct MHD_Connection *conn, struct web_query *qa, struct web_query *qh)
{
    memset(qa, 0, sizeof(*qa));
    qa->f.rule = arg(conn, "rule");
    qa->f.level = arg(conn, "level");
    qa->f.sensor = arg(conn, "sensor");
    qa->f.host = arg(conn, "host");
    qa->f.q = arg(conn, "q");
    *qh = *qa;
    qa->offset = num_arg(conn, "offset", 0);
    qa->limit = num_arg(conn, "limit", WEB_PAGE_DEFL);
    qa->sort = sort_arg(conn, "sort");
    qh->offset = num_arg(conn, "hoffset", 0);
    qh->limit = num_arg(conn, "hlimit", WEB_PAGE_DEFL);
    qh->sort = sort_arg(conn, "hsort");
}

static void status_json(struct web_app *app, int64_t now, struct jw *b)
{
    struct web_win_stats st;
    char t[40];
    web_win_stats(app->win, &st);
    web_fmt_time(now, t, sizeof(t));
    jw_begin(b);
    jw_bool(b, "redis_ok", app->redis_ok);
    jw_str(b, "redis_error", app->redis_err);
    jw_str(b, "stream", app->cfg.stream_key);
    jw_str(b, "group", app->cfg.group);
    jw_str(b, "now", t);
    jw_i64(b, "now_s", now / 1000000);
    jw_key(b, "window");
    jw_begin(b);
    jw_u64(b, "records", web_win_len(app->win));
    jw_i64(b, "max_entries", app->cfg.window_entries);
    jw_i64(b, "hours", app->cfg.window_hours);
    jw_u64(b, "hosts", web_win_hosts(app->win));
    jw_u64(b, "alerts", web_win_alerts(app->win));
    jw_u64(b, "added", st.added);
    jw_u64(b, "bad", st.bad);
    jw_u64(b, "duplicates", st.dup_ids);     /* an event.id delivered again */
    jw_u64(b, "redelivered", st.duplicates); /* a stream entry read again (backfill, group) */
    jw_u64(b, "seen_evicted", st.seen_evicted);
    jw_u64(b, "skewed", st.skewed);
    jw_i64(b, "max_skew_s", app->cfg.max_skew_s);
    jw_u64(b, "evicted", st.evicted_age + st.evicted_count);
    jw_end(b);
    jw_u64(b, "sensors_refused", web_sensors_refused(app->sensors));
    jw_u64(b, "http_timed_out", web_http_timed_out(app));
    jw_u64(b, "acked", app->acked);
    jw_u64(b, "reconnects", app->reconnects);
    struct web_ev_stats es;
    web_ev_stats(app, &es);
    jw_key(b, "evidence");
    jw_begin(b);
    jw_str(b, "redis_prefix", app->cfg.evidence_prefix);
    jw_bool(b, "dir", app->cfg.evidence_dir[0] != '\0'); /* the path itself is not shown */
    jw_i64(b, "max_mib", app->cfg.evidence_max_mib);
    jw_u64(b, "served", es.served);
    jw_u64(b, "missing", es.missing);
    jw_u64(b, "too_large", es.refused);
    jw_u64(b, "failed", es.failed);
    jw_u64(b, "busy", es.busy);
    jw_u64(b, "active", es.active);
    jw_end(b);
    jw_str(b, "version", TW_VERSION);
    jw_end(b);
}

/* The view's version: the window's, and the timeline bucket the reference time is in (the
 * bars move with the clock even when no record arrives). */
static void view_version(struct web_app *app, int64_t now, char *buf, size_t n)
{
    int64_t bs = app->cfg.timeline_hours * 3600 / app->cfg.timeline_buckets;
    int64_t rb = web_win_ref_us(app->win, now) / 1000000 / (bs > 0 ? bs : 1);
    snprintf(buf, n, "%llu.%lld", (unsigned long long)web_win_version(app->win), (long long)rb);
}

/* /api/state: the status always; the sensors when their version differs from sv; the views
 * when the window's version differs from since. Caller holds the lock. */
static void state_json(struct web_app *app, struct MHD_Connection *conn, int64_t now, struct jw *b)
{
    struct web_query qa, qh;
    query_from(conn, &qa, &qh);
    web_win_expire(app->win, now);
    char ver[48], sv[24];
    view_version(app, now, ver, sizeof(ver));
    snprintf(sv, sizeof(sv), "%llu",
             (unsigned long long)web_sensors_version(app->sensors, now / 1000000));
    bool data = strcmp(arg(conn, "since"), ver) != 0, sens = strcmp(arg(conn, "sv"), sv) != 0;
    jw_begin(b);
    jw_str(b, "version", ver);
    jw_raw(b, "sv", sv);
    jw_key(b, "status");
    status_json(app, now, b);
    if (sens) {
        jw_key(b, "sensors");
        web_json_sensors(app->sensors, now / 1000000, b);
    }
    if (data) {
        jw_key(b, "alerts");
        web_json_alerts(app->win, &qa, now, b);
        jw_key(b, "hosts");
        web_json_hosts(app->win, &qh, now, b);
        jw_key(b, "facets");
        web_json_facets(app->win, b);
    }
    jw_end(b);
}

/* Renders one API endpoint under the lock; false when path is not one. */
static bool api(struct web_app *app, struct MHD_Connection *conn, const char *path, struct jw *b,
                unsigned *status)
{
    struct web_query qa, qh;
    query_from(conn, &qa, &qh);
    int64_t now = web_now_us();
    bool found = true;
    pthread_mutex_lock(&app->mu);
    if (strcmp(path, "/api/state") == 0) {
        state_json(app, conn, now, b);
    } else if (strcmp(path, "/api/status") == 0) {
        status_json(app, now, b);
    } else if (strcmp(path, "/api/sensors") == 0) {
        web_json_sensors(app->sensors, now / 1000000, b);
    } else if (strcmp(path, "/api/alerts") == 0) {
        web_json_alerts(app->win, &qa, now, b);
    } else if (strcmp(path, "/api/hosts") == 0) {
        web_json_hosts(app->win, &qh, now, b);
    } else if (strcmp(path, "/api/facets") == 0) {
        web_json_facets(app->win, b);
    } else if (strcmp(path, "/api/record") == 0) {
        web_json_record(app->win, arg(conn, "id"), b);
        if (strcmp(b->buf ? b->buf : "", "null") == 0)
            *status = 404;
    } else {
        found = false;
    }
    pthread_mutex_unlock(&app->mu);
    return found;
}

/* ---- connection table: the header deadline ---- */

struct web_conn {
    int fd;
    bool used, waiting; /* waiting: for a request's headers, since t0_ms */
    int64_t t0_ms, limit_ms;
};

struct web_conns {
    pthread_mutex_t mu;
    size_t n;
    uint64_t timed_out;
    struct web_conn c[];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    struct web_app *app = cls;
    struct web_conns *t = app->conns;
    pthread_mutex_lock(&t->mu);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        for (size_t i = 0; i < t->n && ci; i++) {
            if (!t->c[i].used) {
                t->c[i] = (struct web_conn){ci->connect_fd, true, true, mono_ms(),
                                            app->cfg.http_header_s * 1000};
                *socket_context = &t->c[i];
                break;
            }
        }
    } else if (*socket_context) {
        ((struct web_conn *)*socket_context)->used = false;
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&t->mu);
}

static void ev_req_free(struct web_app *app, void **con_cls);

/* A request completed: the next one's headers are awaited from now, idle time included. */
static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct web_app *app = cls;
    (void)toe;
    ev_req_free(app, con_cls);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!ci || !ci->socket_context)
        return;
    pthread_mutex_lock(&app->conns->mu);
    struct web_conn *c = ci->socket_context;
    c->waiting = true;
    c->t0_ms = mono_ms();
    c->limit_ms = app->cfg.http_idle_s * 1000;
    pthread_mutex_unlock(&app->conns->mu);
}

/* The access handler runs once a request's headers are in: the deadline is met. */
static void headers_in(struct web_app *app, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!ci || !ci->socket_context)
        return;
    pthread_mutex_lock(&app->conns->mu);
    ((struct web_conn *)ci->socket_context)->waiting = false;
    pthread_mutex_unlock(&app->conns->mu);
}

size_t web_http_sweep(struct web_app *app)
{
    struct web_conns *t = app->conns;
    size_t n = 0;
    if (!t)
        return 0;
    int64_t now = mono_ms();
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n; i++) {
        struct web_conn *c = &t->c[i];
        if (c->used && c->waiting && now - c->t0_ms > c->limit_ms) {
            /* libmicrohttpd reads EOF on its next poll and closes the connection itself */
            shutdown(c->fd, SHUT_RDWR);
            c->waiting = false;
            n++;
        }
    }
    t->timed_out += n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

static uint64_t web_http_timed_out(struct web_app *app)
{
    if (!app->conns)
        return 0;
    pthread_mutex_lock(&app->conns->mu);
    uint64_t n = app->conns->timed_out;
    pthread_mutex_unlock(&app->conns->mu);
    return n;
}

void web_http_free(struct web_app *app)
{
    if (!app->conns)
        return;
    pthread_mutex_destroy(&app->conns->mu);
    free(app->conns);
    app->conns = NULL;
}

/* ---- evidence downloads: GET /api/evidence/<incident id>.pcap ---- */

#define EV_PATH  "/api/evidence/"
#define EV_BLOCK (64 * 1024) /* bytes handed to libmicrohttpd per read */

/* One download's state (the request's con_cls) from the handler's first call until the request
 * completes (request_done). slot: it still holds one of evidence.max_downloads. */
struct ev_req {
    struct web_evjob job;
    struct web_app *app;
    struct MHD_Connection *conn;
    bool slot;
};

/* A pcap being sent; owns the data and the slot until libmicrohttpd frees the response. */
struct ev_body {
    uint8_t *data;
    size_t len;
    struct web_app *app;
};

static ssize_t ev_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    const struct ev_body *b = cls;
    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = b->len - (size_t)pos < max ? b->len - (size_t)pos : max;
    memcpy(buf, b->data + pos, n);
    return (ssize_t)n;
}

static void ev_body_free(void *cls)
{
    struct ev_body *b = cls;
    free(b->data);
    web_ev_release(b->app);
    free(b);
#ifdef __GLIBC__
    malloc_trim(0); /* why: up to max_mib just went back; do not keep it for the process */
#endif
}

/* Called from the fetch thread once the job has its result. */
static void ev_resume(struct web_evjob *j)
{
    MHD_resume_connection(((struct ev_req *)j->cls)->conn);
}

static void ev_req_free(struct web_app *app, void **con_cls)
{
    struct ev_req *q = *con_cls;
    if (!q)
        return;
    if (q->slot)
        web_ev_release(app);
    free(q->job.data);
    free(q);
    *con_cls = NULL;
}

/* The fetch is done: the pcap as an attachment, or the error as text. */
static MHD_Result_t ev_answer(struct ev_req *q)
{
    struct web_evjob *j = &q->job;
    if (j->status != 200) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(j->msg), j->msg, MHD_RESPMEM_MUST_COPY);
        return respond(q->conn, j->status, "text/plain; charset=utf-8", r);
    }
    struct ev_body *b = malloc(sizeof(*b));
    if (!b)
        return send_text(q->conn, 500, "out of memory\n");
    *b = (struct ev_body){j->data, j->len, q->app};
    struct MHD_Response *r =
        MHD_create_response_from_callback(b->len, EV_BLOCK, ev_body_read, b, ev_body_free);
    if (!r) {
        free(b);
        return MHD_NO;
    }
    j->data = NULL; /* the body has the data and the slot now */
    q->slot = false;
    char disp[WEB_EVID_MAX + 48];
    /* the id is [0-9a-f-] only (web_evidence_id_ok): nothing to quote inside the name */
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s.pcap\"", j->id);
    MHD_add_response_header(r, "Content-Disposition", disp);
    MHD_add_response_header(r, "X-Tunnelwatch-Evidence-Source", j->source);
    return respond(q->conn, 200, "application/vnd.tcpdump.pcap", r);
}

static MHD_Result_t evidence(struct web_app *app, struct MHD_Connection *conn, const char *rest,
                             void **con_cls)
{
    if (*con_cls)
        return ev_answer(*con_cls); /* resumed: the job is done */
    size_t n = strlen(rest);
    /* rest was %-decoded by libmicrohttpd: "%2e%2e" arrives as "..", which fails the check */
    if (n < 6 || strcmp(rest + n - 5, ".pcap") != 0 || !web_evidence_id_ok(rest, n - 5))
        return send_text(conn, 400,
                         "bad incident id: expected " EV_PATH "<incident id>.pcap, the id being "
                         "1 to 64 characters of 0-9, a-f and '-'\n");
    if (!web_ev_reserve(app))
        return send_text(conn, 503, "too many evidence downloads in progress; retry shortly\n");
    struct ev_req *q = calloc(1, sizeof(*q));
    if (!q) {
        web_ev_release(app);
        return send_text(conn, 500, "out of memory\n");
    }
    memcpy(q->job.id, rest, n - 5);
    q->job.done = ev_resume;
    q->job.cls = q;
    q->app = app;
    q->conn = conn;
    q->slot = true;
    *con_cls = q;
    /* suspended first: the thread may finish and resume before this handler returns, which
     * libmicrohttpd handles (the resume is acted on in its next round) */
    MHD_suspend_connection(conn);
    web_ev_submit(app, &q->job);
    return MHD_YES;
}

static MHD_Result_t handle(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_size, void **con_cls)
{
    struct web_app *app = cls;
    (void)version;
    (void)upload_data;
    headers_in(app, conn);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(conn, 405, "only GET and HEAD\n");
    if (*upload_size)
        return send_text(conn, 400, "no body expected\n");
    if (!authorized(app, conn)) {
        static const char denied[] = "authentication required\n";
        struct MHD_Response *r = MHD_create_response_from_buffer(
            sizeof(denied) - 1, (void *)(uintptr_t)denied, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_Result_t rc = MHD_queue_basic_auth_fail_response(conn, "tunnelwatch", r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strncmp(url, EV_PATH, strlen(EV_PATH)) == 0)
        return evidence(app, conn, url + strlen(EV_PATH), con_cls);
    struct jw b;
    web_out_init(&b, WEB_RESP_MAX);
    unsigned status = 200;
    if (strncmp(url, "/api/", 5) == 0) {
        if (api(app, conn, url, &b, &status))
            return send_buf(conn, status, "application/json", &b);
        jw_free(&b);
        return send_text(conn, 404, "no such endpoint\n");
    }
    if (strcmp(url, "/record") == 0) {
        pthread_mutex_lock(&app->mu);
        int rc = web_html_record(app->win, arg(conn, "id"), &b);
        pthread_mutex_unlock(&app->mu);
        if (rc) {
            jw_free(&b);
            return send_text(conn, 404, "record not in the window\n");
        }
        return send_buf(conn, 200, "text/html; charset=utf-8", &b);
    }
    jw_free(&b);
    if (strcmp(url, "/healthz") == 0)
        return send_text(conn, 200, "ok\n");
    const char *path = strcmp(url, "/") == 0 ? "/index.html" : url;
    for (const struct web_asset *a = web_assets; a->path; a++) {
        if (strcmp(a->path, path) == 0) {
            struct MHD_Response *r = MHD_create_response_from_buffer(
                a->len, (void *)(uintptr_t)a->data, MHD_RESPMEM_PERSISTENT);
            return respond(conn, 200, mime_of(a->path), r);
        }
    }
    return send_text(conn, 404, "not found\n");
}

static int split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return TW_ECONF;
        hl = (size_t)(close - listen - 1);
        listen++;
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return TW_ECONF;
        hl = (size_t)(colon - listen);
    }
    if (hl == 0 || hl >= hostlen)
        return TW_ECONF;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535)
        return TW_ECONF;
    *port = (int)p;
    return TW_OK;
}

struct MHD_Daemon *web_http_start(struct web_app *app, int *port, char *host, size_t hostlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    /* suspend/resume: an evidence download waits for webevid.c's thread, not in this one */
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (split_listen(app->cfg.listen, host, hostlen, port)) {
        fprintf(stderr, "tunnelwatch-web: listen: expected HOST:PORT or [V6]:PORT, got '%s'\n",
                app->cfg.listen);
        return NULL;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)*port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)*port);
        flags |= MHD_USE_IPv6;
    } else {
        fprintf(stderr, "tunnelwatch-web: listen: '%s' is not an IP address\n", host);
        return NULL;
    }
    size_t nc = (size_t)app->cfg.http_max_conn;
    app->conns = calloc(1, sizeof(*app->conns) + nc * sizeof(app->conns->c[0]));
    if (!app->conns) {
        fprintf(stderr, "tunnelwatch-web: out of memory\n");
        return NULL;
    }
    app->conns->n = nc;
    pthread_mutex_init(&app->conns->mu, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)*port, NULL, NULL, handle, app, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)nc,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)app->cfg.http_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)app->cfg.http_idle_s, MHD_OPTION_NOTIFY_CONNECTION,
        notify_conn, app, MHD_OPTION_NOTIFY_COMPLETED, request_done, app, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "tunnelwatch-web: cannot listen on %s\n", app->cfg.listen);
        web_http_free(app);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info)
        *port = info->port;
    return d;
}
