/* webhttp.c - tunnelwatch-web's HTTP side (libmicrohttpd, one internal polling thread).
 *
 * Serves the embedded page (index.html, app.js, app.css) and JSON endpoints rendered by
 * webcore.c under the app lock. GET/HEAD only; every response carries no-store, nosniff and a
 * Content-Security-Policy that allows only this origin's script and style, so even a value that
 * slipped past escaping could not run inline script. Optional basic auth compares in constant
 * time. Binding to a non-loopback address is possible only through the listen setting.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "web_int.h"
#include "webassets.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

#define WEB_RESP_MAX    (32u * 1024 * 1024) /* one response, at most */
#define WEB_ALERTS_MAX  500                 /* rows in the live alerts list */
#define WEB_ALERTS_DEFL 200

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

static void filter_from(struct MHD_Connection *conn, struct web_filter *f)
{
    f->rule = arg(conn, "rule");
    f->level = arg(conn, "level");
    f->sensor = arg(conn, "sensor");
    f->host = arg(conn, "host");
}

static size_t limit_from(struct MHD_Connection *conn)
{
    const char *v = arg(conn, "limit");
    char *end;
    long n = strtol(v, &end, 10);
    if (!v[0] || *end || n < 1)
        return WEB_ALERTS_DEFL;
    return n > WEB_ALERTS_MAX ? WEB_ALERTS_MAX : (size_t)n;
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
    jw_key(b, "window");
    jw_begin(b);
    jw_u64(b, "records", web_win_len(app->win));
    jw_i64(b, "max_entries", app->cfg.window_entries);
    jw_i64(b, "hours", app->cfg.window_hours);
    jw_u64(b, "added", st.added);
    jw_u64(b, "bad", st.bad);
    jw_u64(b, "duplicates", st.duplicates);
    jw_u64(b, "evicted", st.evicted_age + st.evicted_count);
    jw_end(b);
    jw_u64(b, "acked", app->acked);
    jw_u64(b, "reconnects", app->reconnects);
    jw_str(b, "version", TW_VERSION);
    jw_end(b);
}

static struct web_timeline timeline_of(const struct web_app *app)
{
    struct web_timeline tl = {.buckets = (unsigned)app->cfg.timeline_buckets};
    tl.bucket_s = (unsigned)(app->cfg.timeline_hours * 3600 / app->cfg.timeline_buckets);
    return tl;
}

/* Renders one API endpoint under the lock; false when path is not one. */
static bool api(struct web_app *app, struct MHD_Connection *conn, const char *path, struct jw *b,
                unsigned *status)
{
    struct web_filter f;
    filter_from(conn, &f);
    struct web_timeline tl = timeline_of(app);
    int64_t now = web_now_us();
    bool found = true;
    pthread_mutex_lock(&app->mu);
    if (strcmp(path, "/api/state") == 0) {
        jw_begin(b);
        jw_key(b, "status");
        status_json(app, now, b);
        jw_key(b, "sensors");
        web_json_sensors(app->sensors, now / 1000000, b);
        jw_key(b, "alerts");
        web_json_alerts(app->win, &f, limit_from(conn), now, b);
        jw_key(b, "hosts");
        web_json_hosts(app->win, &f, &tl, now, b);
        jw_key(b, "facets");
        web_json_facets(app->win, b);
        jw_end(b);
    } else if (strcmp(path, "/api/status") == 0) {
        status_json(app, now, b);
    } else if (strcmp(path, "/api/sensors") == 0) {
        web_json_sensors(app->sensors, now / 1000000, b);
    } else if (strcmp(path, "/api/alerts") == 0) {
        web_json_alerts(app->win, &f, limit_from(conn), now, b);
    } else if (strcmp(path, "/api/hosts") == 0) {
        web_json_hosts(app->win, &f, &tl, now, b);
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

static MHD_Result_t handle(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_size, void **con_cls)
{
    struct web_app *app = cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
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
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, (uint16_t)*port, NULL, NULL, handle, app, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64u,
                         MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "tunnelwatch-web: cannot listen on %s\n", app->cfg.listen);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info)
        *port = info->port;
    return d;
}
