/* metrics.c - Prometheus text endpoint in its own thread, and the stats-lines formatter.
 *
 * Trade-offs. The served text is an immutable, reference-counted snapshot: the capture thread
 * builds a new one outside any lock and swaps one pointer under the mutex; the listener takes
 * a reference under the same mutex and writes from it without the lock. Neither side ever
 * holds the mutex across a copy or a system call, so publishing costs one malloc + memcpy per
 * second and never waits for a client. The listener is a single poll() loop over
 * non-blocking sockets rather than a thread per client: a fixed number of client slots, each
 * with a request-size cap and a deadline, so slow or hostile clients are dropped instead of
 * accumulating. It speaks just enough HTTP/1.0 for Prometheus and curl: GET/HEAD, one
 * request per connection, no keep-alive, no request bodies.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/metrics.h"
#include "tunnelwatch/publish.h"

#define MAX_CLIENTS       16
#define REQ_MAX           4096 /* request line + headers; Prometheus sends a few hundred bytes */
#define CLIENT_TIMEOUT_MS 5000
#define FMT_MAX_LINES     1024
#define FMT_NAME_MAX      128
#define FMT_LABELS_MAX    384

struct snap {
    size_t refs; /* under metrics.mu */
    size_t len;
    char text[];
};

struct client {
    int fd; /* -1: free slot */
    int64_t deadline_ms;
    size_t req_len;
    bool writing;
    char req[REQ_MAX];
    char hdr[320];
    size_t hdr_len, hdr_off;
    struct snap *body; /* referenced while writing; NULL for bodyless answers */
    const char *static_body;
    size_t body_len, body_off;
};

struct metrics {
    int lfd;
    int wake[2];
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    struct snap *cur; /* under mu */
    struct client clients[MAX_CLIENTS];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void snap_unref(struct metrics *m, struct snap *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&m->mu);
    size_t left = --s->refs;
    pthread_mutex_unlock(&m->mu);
    if (left == 0)
        free(s);
}

/* ---- address ---------------------------------------------------------------------------- */

/* "HOST:PORT", "[V6]:PORT", "localhost:PORT", "*:PORT" -> sockaddr. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl, bool *loopback,
                        char *err, size_t errlen)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || colon[1] == '\0') {
        snprintf(err, errlen, "metrics.listen \"%s\": use HOST:PORT, e.g. 127.0.0.1:9917", s);
        return TW_ECONF;
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || !isdigit((unsigned char)colon[1]) || port < 0 || port > 65535) {
        snprintf(err, errlen, "metrics.listen \"%s\": bad port (0..65535)", s);
        return TW_ECONF;
    }
    char host[64];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host)) {
        snprintf(err, errlen, "metrics.listen \"%s\": bad host", s);
        return TW_ECONF;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1) {
            snprintf(err, errlen, "metrics.listen \"%s\": bad IPv6 address", s);
            return TW_ECONF;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*a6);
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
        return TW_OK;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *sl = sizeof(*a4);
    if (strcmp(host, "localhost") == 0) {
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* no resolver: it may be remote */
    } else if (strcmp(host, "*") == 0) {
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
        snprintf(err, errlen,
                 "metrics.listen \"%s\": bad host: use an IPv4 address, [IPv6], "
                 "localhost or *",
                 s);
        return TW_ECONF;
    }
    *loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    return TW_OK;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static void client_close(struct metrics *m, struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    snap_unref(m, c->body);
    c->fd = -1;
    c->body = NULL;
}

static void respond(struct client *c, const char *status, const char *ctype, size_t body_len,
                    const char *extra)
{
    int w = snprintf(c->hdr, sizeof(c->hdr),
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-cache\r\nConnection: close\r\n%s\r\n",
                     status, ctype, body_len, extra ? extra : "");
    c->hdr_len = w > 0 && (size_t)w < sizeof(c->hdr) ? (size_t)w : 0;
    c->hdr_off = 0;
    c->body_off = 0;
    c->writing = true;
}

static void respond_text(struct client *c, const char *status, const char *text, bool head,
                         const char *extra)
{
    respond(c, status, "text/plain; charset=utf-8", strlen(text), extra);
    c->static_body = head ? NULL : text;
    c->body_len = head ? 0 : strlen(text);
}

/* Request line "METHOD SP TARGET SP HTTP/x.y" (RFC 1945 section 5.1); headers are ignored. */
static void handle_request(struct metrics *m, struct client *c, bool too_big)
{
    if (too_big) {
        respond_text(c, "431 Request Header Fields Too Large", "request too large\n", false, NULL);
        return;
    }
    char *eol = memchr(c->req, '\n', c->req_len);
    size_t ll = eol ? (size_t)(eol - c->req) : 0;
    char line[256];
    if (ll == 0 || ll >= sizeof(line)) {
        respond_text(c, "400 Bad Request", "bad request\n", false, NULL);
        return;
    }
    memcpy(line, c->req, ll);
    line[ll] = '\0';
    if (ll && line[ll - 1] == '\r')
        line[ll - 1] = '\0';
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/", 5) != 0) {
        respond_text(c, "400 Bad Request", "bad request\n", false, NULL);
        return;
    }
    *sp1 = *sp2 = '\0';
    const char *method = line, *target = sp1 + 1;
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        respond_text(c, "405 Method Not Allowed", "only GET and HEAD\n", false,
                     "Allow: GET, HEAD\r\n");
        return;
    }
    size_t tl = strcspn(target, "?");
    if (tl == 1 && target[0] == '/') {
        respond_text(c, "200 OK", "tunnelwatch: metrics at /metrics\n", head, NULL);
        return;
    }
    if (tl != 8 || strncmp(target, "/metrics", 8) != 0) {
        respond_text(c, "404 Not Found", "not found; try /metrics\n", head, NULL);
        return;
    }
    pthread_mutex_lock(&m->mu);
    struct snap *s = m->cur;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&m->mu);
    if (!s) {
        respond_text(c, "503 Service Unavailable", "no statistics yet\n", head, NULL);
        return;
    }
    respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", s->len, NULL);
    if (head) {
        snap_unref(m, s);
        c->body_len = 0;
    } else {
        c->body = s;
        c->body_len = s->len;
    }
    c->static_body = NULL;
}

static void client_read(struct metrics *m, struct client *c)
{
    for (;;) {
        if (c->req_len == sizeof(c->req)) {
            /* why: the cap bounds memory per client; a request this large is not Prometheus */
            handle_request(m, c, true);
            return;
        }
        ssize_t r = recv(c->fd, c->req + c->req_len, sizeof(c->req) - c->req_len, 0);
        if (r == 0) {
            client_close(m, c);
            return;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_close(m, c);
            return;
        }
        size_t from = c->req_len >= 3 ? c->req_len - 3 : 0;
        c->req_len += (size_t)r;
        for (size_t i = from; i + 1 < c->req_len; i++) {
            bool crlf = i + 3 < c->req_len && memcmp(c->req + i, "\r\n\r\n", 4) == 0;
            if (crlf || memcmp(c->req + i, "\n\n", 2) == 0) {
                handle_request(m, c, false);
                return;
            }
        }
    }
}

static void client_write(struct metrics *m, struct client *c)
{
    for (;;) {
        const char *p;
        size_t left;
        if (c->hdr_off < c->hdr_len) {
            p = c->hdr + c->hdr_off;
            left = c->hdr_len - c->hdr_off;
        } else if (c->body_off < c->body_len) {
            p = (c->body ? c->body->text : c->static_body) + c->body_off;
            left = c->body_len - c->body_off;
        } else {
            shutdown(c->fd, SHUT_WR);
            client_close(m, c);
            return;
        }
        ssize_t w = send(c->fd, p, left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_close(m, c);
            return;
        }
        if (c->hdr_off < c->hdr_len)
            c->hdr_off += (size_t)w;
        else
            c->body_off += (size_t)w;
    }
}

static void accept_clients(struct metrics *m)
{
    /* at most a slot's worth per wake-up, so a connection flood cannot starve the others */
    for (int k = 0; k < MAX_CLIENTS; k++) {
        int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct client *c = NULL;
        for (int i = 0; i < MAX_CLIENTS && !c; i++)
            if (m->clients[i].fd < 0)
                c = &m->clients[i];
        if (!c) {
            /* why: every slot is busy (slow clients); refusing keeps the memory bounded */
            close(fd);
            continue;
        }
        c->fd = fd;
        c->deadline_ms = now_ms() + CLIENT_TIMEOUT_MS;
        c->req_len = 0;
        c->writing = false;
        c->body = NULL;
        c->static_body = NULL;
        c->hdr_len = c->hdr_off = c->body_len = c->body_off = 0;
    }
}

static void *listener(void *arg)
{
    struct metrics *m = arg;
    struct pollfd pf[2 + MAX_CLIENTS];
    int slot[2 + MAX_CLIENTS];
    for (;;) {
        int64_t now = now_ms(), next = -1;
        nfds_t n = 0;
        pf[n++] = (struct pollfd){.fd = m->wake[0], .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = m->lfd, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &m->clients[i];
            if (c->fd < 0)
                continue;
            if (now >= c->deadline_ms) {
                /* why: a client that sends nothing or reads nothing must not keep its slot */
                client_close(m, c);
                continue;
            }
            if (next < 0 || c->deadline_ms < next)
                next = c->deadline_ms;
            slot[n] = i;
            pf[n++] = (struct pollfd){.fd = c->fd, .events = c->writing ? POLLOUT : POLLIN};
        }
        int timeout = next < 0 ? -1 : (int)(next - now);
        int r = poll(pf, n, timeout);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[0].revents)
            break;
        if (pf[1].revents & POLLIN)
            accept_clients(m);
        for (nfds_t k = 2; k < n; k++) {
            struct client *c = &m->clients[slot[k]];
            if (c->fd < 0 || !pf[k].revents)
                continue;
            if (pf[k].revents & (POLLERR | POLLNVAL)) {
                client_close(m, c);
                continue;
            }
            if (!c->writing)
                client_read(m, c);
            if (c->fd >= 0 && c->writing)
                client_write(m, c);
        }
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(m, &m->clients[i]);
    return NULL;
}

struct metrics *metrics_new(const char *listen_addr, bool allow_remote, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    bool loopback = false;
    if (!listen_addr || parse_listen(listen_addr, &ss, &sl, &loopback, err, errlen) != TW_OK) {
        if (!listen_addr)
            snprintf(err, errlen, "metrics.listen not set");
        return NULL;
    }
    if (!loopback && !allow_remote) {
        snprintf(err, errlen,
                 "metrics.listen \"%s\" is not a loopback address; the endpoint has no "
                 "authentication (set metrics.allow_remote = true to allow it)",
                 listen_addr);
        return NULL;
    }
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->wake[0] = m->wake[1] = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        m->clients[i].fd = -1;
    m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (m->lfd < 0 || setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(m->lfd, (struct sockaddr *)&ss, sl) != 0 || listen(m->lfd, 16) != 0) {
        snprintf(err, errlen, "metrics.listen \"%s\": %s", listen_addr, strerror(errno));
        goto fail;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    if (getsockname(m->lfd, (struct sockaddr *)&bound, &bl) == 0)
        m->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    if (pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "metrics: pipe: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&m->mu, NULL);
    /* signals stay with main() */
    int rc = tw_thread_start(&m->thread, "tw-metrics", listener, m, false);
    if (rc != 0) {
        snprintf(err, errlen, "metrics: cannot start the listener thread: %s", strerror(rc));
        pthread_mutex_destroy(&m->mu);
        goto fail;
    }
    return m;
fail:
    if (m->lfd >= 0)
        close(m->lfd);
    if (m->wake[0] >= 0) {
        close(m->wake[0]);
        close(m->wake[1]);
    }
    free(m);
    return NULL;
}

int metrics_port(const struct metrics *m)
{
    return m ? m->port : 0;
}

int metrics_publish(struct metrics *m, const char *prom_text)
{
    size_t len = strlen(prom_text);
    if (len > METRICS_SNAPSHOT_MAX)
        return TW_ELIMIT;
    struct snap *s = malloc(sizeof(*s) + len + 1);
    if (!s)
        return TW_ENOMEM;
    s->refs = 1;
    s->len = len;
    memcpy(s->text, prom_text, len + 1);
    pthread_mutex_lock(&m->mu);
    struct snap *old = m->cur;
    m->cur = s;
    size_t left = old ? --old->refs : 1;
    pthread_mutex_unlock(&m->mu);
    if (left == 0)
        free(old);
    return TW_OK;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    ssize_t w;
    do
        w = write(m->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(m->thread, NULL);
    close(m->lfd);
    close(m->wake[0]);
    close(m->wake[1]);
    free(m->cur); /* the thread is gone: no other reference is left */
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ---- formatting ------------------------------------------------------------------------- */

enum mtype { M_COUNTER, M_GAUGE };

struct sample {
    char family[FMT_NAME_MAX]; /* without tunnelwatch_ and _total */
    char labels[FMT_LABELS_MAX];
    char value[40];
    enum mtype type;
};

/* Fields whose name says nothing of the family they belong to. */
static const struct {
    const char *field, *family, *label, *label_value;
    enum mtype type;
} exact[] = {
    {"alerts_raised", "alerts", "outcome", "raised", M_COUNTER},
    {"alerts_updates", "alerts", "outcome", "update", M_COUNTER},
    {"alerts_suppressed", "alerts", "outcome", "suppressed", M_COUNTER},
    {"alerts_enqueued", "redis_records", "outcome", "enqueued", M_COUNTER},
    {"alerts_delivered", "redis_records", "outcome", "delivered", M_COUNTER},
    {"alerts_spooled", "redis_records", "outcome", "spooled", M_COUNTER},
    {"alerts_dropped", "redis_records", "outcome", "dropped", M_COUNTER},
    {"alerts_queued", "redis_queue_records", NULL, NULL, M_GAUGE},
    {"uptime_s", "uptime_seconds", NULL, NULL, M_GAUGE},
};

/* Families of fields "<prefix><label value>". */
static const struct {
    const char *prefix, *family, *label;
} prefixed[] = {
    {"names_", "names", "kind"},
    {"parse_errors_", "parse_errors", "protocol"},
    {"decode_", "decode_skipped", "reason"},
    {"allowlist_", "allowlist_suppressed", "entry"},
};

static const char *const gauge_suffixes[] = {"_active", "_queued", "_connected", "_entries",
                                             "_peak"};
static const char *const gauge_fields[] = {"spool_bytes", "spool_records", "evidence_dir_bytes",
                                           "evidence_queued_bytes", "evidence_early_bytes"};

static const struct {
    const char *family, *help;
} helps[] = {
    {"packets", "Packets seen (after the BPF filter)."},
    {"bytes", "Bytes of the packets seen (original frame length)."},
    {"kernel_drops", "Packets dropped by the kernel (pcap_stats ps_drop)."},
    {"interface_drops", "Packets dropped by the interface (pcap_stats ps_ifdrop)."},
    {"decode_skipped", "Frames not decoded down to TCP/UDP, by reason."},
    {"names", "Hostname observations, by kind."},
    {"parse_errors", "Malformed or undecodable application messages, by protocol."},
    {"flows_active", "Flows in the flow table now."},
    {"flows_evicted", "Flows evicted from a full flow table."},
    {"alerts", "Alerts, by outcome (raised, update, suppressed by the allowlist)."},
    {"allowlist_suppressed", "Rule hits suppressed by an allowlist entry."},
    {"redis_records", "Records handed to the Redis publisher, by outcome."},
    {"redis_queue_records", "Records waiting in the publisher's memory queue now."},
    {"redis_reconnects", "Reconnections to Redis."},
    {"redis_connected", "1 when connected to Redis."},
    {"redis_failovers", "Moves to another master named by Redis Sentinel."},
    {"redis_wait_short", "Batches sent again because WAIT found too few replicas."},
    {"redis_redirects", "Redis Cluster MOVED/ASK replies followed."},
    {"spool_bytes", "Bytes in the disk spool now."},
    {"spool_records", "Records in the disk spool now."},
    {"evidence_packets", "Packets written to incident pcaps (evidence.dir)."},
    {"evidence_removed", "Incident pcaps removed to stay under evidence.max_total_mib."},
    {"evidence_dir_bytes", "Bytes of the incident pcaps now (queued included)."},
    {"uptime_seconds", "Seconds since the sensor started."},
    {"build_info", "Version of the sensor (value 1)."},
};

static bool ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0;
}

/* Prometheus metric/label name characters: [a-zA-Z0-9_], anything else becomes '_'. */
static void copy_name(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (char)(isalnum(ch) && ch < 0x80 ? ch : '_');
    }
    dst[i] = '\0';
}

/* Appends name="value" (value escaped per the exposition format) to a label list. */
static void add_label(char *labels, size_t cap, const char *name, size_t nl, const char *val,
                      size_t vl)
{
    size_t o = strlen(labels);
    char nm[64];
    copy_name(nm, sizeof(nm), name, nl);
    if (nm[0] == '\0' || isdigit((unsigned char)nm[0]))
        return;
    int w = snprintf(labels + o, cap - o, "%s%s=\"", o ? "," : "", nm);
    if (w < 0 || (size_t)w >= cap - o) {
        labels[o] = '\0';
        return;
    }
    o += (size_t)w;
    for (size_t i = 0; i < vl; i++) {
        const char *esc = val[i] == '\\'   ? "\\\\"
                          : val[i] == '"'  ? "\\\""
                          : val[i] == '\n' ? "\\n"
                                           : NULL;
        size_t el = esc ? strlen(esc) : 1;
        if (o + el + 2 >= cap)
            break;
        if (esc)
            memcpy(labels + o, esc, el);
        else
            labels[o] = val[i];
        o += el;
    }
    labels[o++] = '"';
    labels[o] = '\0';
}

static bool is_number(const char *v)
{
    if (!*v || strlen(v) >= 40)
        return false;
    char *end;
    errno = 0;
    (void)strtod(v, &end);
    return *end == '\0' && !isspace((unsigned char)v[0]);
}

/* Caller-given labels "k=v,k2=v2}" from p to end (a closing brace is dropped). */
static void caller_labels(struct sample *s, const char *p, const char *end)
{
    if (end > p && end[-1] == '}')
        end--;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        if (eq)
            add_label(s->labels, sizeof(s->labels), p, (size_t)(eq - p), eq + 1,
                      (size_t)(item_end - eq - 1));
        p = item_end + 1;
    }
}

/* One stats line "field[{k=v,...}]\tvalue" -> sample; false when skipped. */
static bool classify(const char *line, size_t len, struct sample *s)
{
    const char *tab = memchr(line, '\t', len);
    if (!tab || tab == line)
        return false;
    size_t fl = (size_t)(tab - line);
    char value[64];
    size_t vl = len - fl - 1;
    if (vl >= sizeof(value))
        return false;
    memcpy(value, tab + 1, vl);
    value[vl] = '\0';
    memset(s, 0, sizeof(*s));
    s->type = M_COUNTER;

    const char *brace = memchr(line, '{', fl);
    size_t base = brace ? (size_t)(brace - line) : fl;
    char field[FMT_NAME_MAX];
    copy_name(field, sizeof(field), line, base);
    if (field[0] == '\0' || strcmp(field, "heartbeat_unix_s") == 0)
        return false;
    if (strcmp(field, "version") == 0 && !brace) {
        snprintf(s->family, sizeof(s->family), "build_info");
        add_label(s->labels, sizeof(s->labels), "version", 7, value, vl);
        snprintf(s->value, sizeof(s->value), "1");
        s->type = M_GAUGE;
        return true;
    }
    if (!is_number(value))
        return false;
    memcpy(s->value, value, vl + 1); /* is_number() bounds vl below sizeof(s->value) */

    size_t n = strlen(field);
    bool done = false;
    for (size_t i = 0; i < TW_ARRAY_LEN(exact) && !done; i++) {
        if (strcmp(field, exact[i].field) == 0) {
            snprintf(s->family, sizeof(s->family), "%s", exact[i].family);
            if (exact[i].label)
                add_label(s->labels, sizeof(s->labels), exact[i].label, strlen(exact[i].label),
                          exact[i].label_value, strlen(exact[i].label_value));
            s->type = exact[i].type;
            done = true;
        }
    }
    for (size_t i = 0; i < TW_ARRAY_LEN(gauge_suffixes) && !done; i++)
        if (ends_with(field, n, gauge_suffixes[i]))
            s->type = M_GAUGE;
    for (size_t i = 0; i < TW_ARRAY_LEN(gauge_fields) && !done; i++)
        if (strcmp(field, gauge_fields[i]) == 0)
            s->type = M_GAUGE;
    for (size_t i = 0; i < TW_ARRAY_LEN(prefixed) && !done && s->type == M_COUNTER; i++) {
        size_t pl = strlen(prefixed[i].prefix);
        if (n > pl && strncmp(field, prefixed[i].prefix, pl) == 0) {
            snprintf(s->family, sizeof(s->family), "%s", prefixed[i].family);
            /* the label value is the original text (allowlist names may hold '-' or '.') */
            add_label(s->labels, sizeof(s->labels), prefixed[i].label, strlen(prefixed[i].label),
                      line + pl, base - pl);
            done = true;
        }
    }
    if (!done) {
        if (s->type == M_COUNTER && ends_with(field, n, "_total"))
            field[n - 6] = '\0';
        snprintf(s->family, sizeof(s->family), "%s", field);
    }
    if (brace)
        caller_labels(s, brace + 1, line + fl);
    return true;
}

struct out {
    char *p;
    size_t n, o;
    bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    if (o->full)
        return;
    char line[FMT_NAME_MAX + FMT_LABELS_MAX + 160];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    size_t l = (size_t)w < sizeof(line) ? (size_t)w : sizeof(line) - 1;
    if (o->o + l >= o->n) {
        o->full = true; /* cut at a line boundary: never half a sample */
        return;
    }
    memcpy(o->p + o->o, line, l);
    o->o += l;
    o->p[o->o] = '\0';
}

size_t metrics_format(const char *stats_lines, char *out, size_t n)
{
    if (n)
        out[0] = '\0';
    struct sample *s = calloc(FMT_MAX_LINES, sizeof(*s));
    if (!s)
        return 0;
    size_t ns = 0;
    /* why: capped, so a runaway stats text cannot make this allocate or loop without end */
    for (const char *p = stats_lines; p && *p && ns < FMT_MAX_LINES;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (classify(p, len, &s[ns]))
            ns++;
        p = nl ? nl + 1 : p + len;
    }
    struct out o = {out, n, 0, n == 0};
    for (size_t i = 0; i < ns; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(s[j].family, s[i].family) == 0;
        if (seen)
            continue;
        const char *help = NULL;
        for (size_t k = 0; k < TW_ARRAY_LEN(helps) && !help; k++)
            if (strcmp(helps[k].family, s[i].family) == 0)
                help = helps[k].help;
        const char *suffix = s[i].type == M_COUNTER ? "_total" : "";
        if (help)
            put(&o, "# HELP tunnelwatch_%s%s %s\n", s[i].family, suffix, help);
        else
            put(&o, "# HELP tunnelwatch_%s%s Sensor %s %s.\n", s[i].family, suffix,
                s[i].type == M_COUNTER ? "counter" : "gauge", s[i].family);
        put(&o, "# TYPE tunnelwatch_%s%s %s\n", s[i].family, suffix,
            s[i].type == M_COUNTER ? "counter" : "gauge");
        for (size_t j = i; j < ns; j++) {
            if (strcmp(s[j].family, s[i].family) != 0)
                continue;
            if (s[j].labels[0])
                put(&o, "tunnelwatch_%s%s{%s} %s\n", s[j].family, suffix, s[j].labels, s[j].value);
            else
                put(&o, "tunnelwatch_%s%s %s\n", s[j].family, suffix, s[j].value);
        }
    }
    free(s);
    return o.full ? n : o.o;
}

size_t metrics_pub_lines(const struct pub_stats *ps, char *out, size_t n)
{
    int w = snprintf(out, n,
                     "alerts_enqueued\t%llu\nalerts_queued\t%llu\nalerts_spooled\t%llu\n"
                     "spool_records\t%llu\nspool_bytes\t%llu\nalerts_delivered\t%llu\n"
                     "alerts_dropped\t%llu\nredis_reconnects\t%llu\nredis_connected\t%d\n"
                     "redis_errors\t%llu\npublish_no_subscribers\t%llu\nspool_torn\t%llu\n"
                     "redis_failovers\t%llu\nredis_wait_short\t%llu\nredis_redirects\t%llu\n",
                     (unsigned long long)ps->enqueued, (unsigned long long)ps->queued,
                     (unsigned long long)ps->spooled, (unsigned long long)ps->spool_records,
                     (unsigned long long)ps->spool_bytes, (unsigned long long)ps->delivered,
                     (unsigned long long)ps->dropped, (unsigned long long)ps->reconnects,
                     ps->connected ? 1 : 0, (unsigned long long)ps->errors,
                     (unsigned long long)ps->no_subscribers, (unsigned long long)ps->spool_torn,
                     (unsigned long long)ps->failovers, (unsigned long long)ps->wait_short,
                     (unsigned long long)ps->redirects);
    return w > 0 ? (size_t)w : 0;
}
