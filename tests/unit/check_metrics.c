/* check_metrics.c - unit tests for the Prometheus endpoint: stats lines -> exposition text
 * (families, labels, escaping, grouping, truncation, the real engine's counters), and a real
 * listener on an ephemeral 127.0.0.1 port scraped with a plain socket client, including
 * clients that send nothing, send 1 MB of headers or hold every slot: metrics_publish() must
 * stay fast and other scrapes must still be answered. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/cfg.h"
#include "tunnelwatch/engine.h"
#include "tunnelwatch/metrics.h"
#include "tunnelwatch/publish.h"
#include "tunnelwatch/rules.h"
#include "tw_check.h"

static char out[65536];

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

/* Structural check of exposition text: every line is a comment or "name[{labels}] value";
 * each family has exactly one HELP and one TYPE, before its samples; a family's samples are
 * contiguous; counters end in _total. Returns the number of samples. */
static int check_exposition(const char *text)
{
    char fams[256][160];
    int nf = 0, samples = 0;
    char cur[160] = "";
    char *copy = strdup(text), *save = NULL;
    ck_assert_ptr_nonnull(copy);
    ck_assert_msg(text[0] == '\0' || text[strlen(text) - 1] == '\n', "text must end in newline");
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char name[160];
        if (strncmp(l, "# HELP ", 7) == 0) {
            ck_assert_int_eq(sscanf(l + 7, "%159s", name), 1);
            for (int i = 0; i < nf; i++)
                ck_assert_msg(strcmp(fams[i], name) != 0, "family %s seen twice", name);
            ck_assert_int_lt(nf, 256);
            snprintf(fams[nf++], sizeof(fams[0]), "%s", name);
            snprintf(cur, sizeof(cur), "%s", name);
            continue;
        }
        if (strncmp(l, "# TYPE ", 7) == 0) {
            char type[32];
            ck_assert_int_eq(sscanf(l + 7, "%159s %31s", name, type), 2);
            ck_assert_str_eq(name, cur);
            ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0, "%s", l);
            if (strcmp(type, "counter") == 0)
                ck_assert_msg(strlen(name) > 6 && !strcmp(name + strlen(name) - 6, "_total"),
                              "counter %s without _total", name);
            continue;
        }
        ck_assert_msg(l[0] != '#', "unexpected comment %s", l);
        size_t nl = strcspn(l, "{ ");
        ck_assert_msg(nl > 0 && nl < sizeof(name), "%s", l);
        memcpy(name, l, nl);
        name[nl] = '\0';
        ck_assert_msg(strncmp(name, "tunnelwatch_", 12) == 0, "%s", l);
        for (size_t i = 0; i < nl; i++)
            ck_assert_msg(name[i] == '_' || (name[i] >= 'a' && name[i] <= 'z') ||
                              (name[i] >= 'A' && name[i] <= 'Z') ||
                              (name[i] >= '0' && name[i] <= '9'),
                          "bad metric name %s", name);
        ck_assert_msg(strcmp(name, cur) == 0, "sample %s outside its family block (%s)", l, cur);
        const char *v = l[nl] == '{' ? strstr(l, "} ") : l + nl;
        ck_assert_msg(v != NULL, "%s", l);
        v += l[nl] == '{' ? 2 : 1;
        char *end;
        (void)strtod(v, &end);
        ck_assert_msg(end != v && *end == '\0', "bad value in %s", l);
        samples++;
    }
    free(copy);
    return samples;
}

/* ---- metrics_format ---------------------------------------------------------------------- */

START_TEST(format_families)
{
    const char *in = "packets\t10\n"
                     "bytes\t1500\n"
                     "decode_truncated\t2\n"
                     "flows_active\t4\n"
                     "flows_evicted\t1\n"
                     "names_dns_query\t3\n"
                     "names_tls_sni\t2\n"
                     "parse_errors_dns\t1\n"
                     "parse_errors_tls\t0\n"
                     "alerts_raised\t2\n"
                     "alerts_suppressed\t1\n"
                     "dns_map_entries\t7\n"
                     "kernel_drops\t5\n"
                     "interface_drops\t6\n"
                     "uptime_s\t5\n"
                     "version\t0.1.0\n"
                     "heartbeat_unix_s\t1700000000\n";
    size_t n = metrics_format(in, out, sizeof(out));
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_msg(has_line(out, "# TYPE tunnelwatch_packets_total counter"), "%s", out);
    ck_assert(has_line(out, "tunnelwatch_packets_total 10"));
    ck_assert(has_line(out, "tunnelwatch_bytes_total 1500"));
    ck_assert(has_line(out, "tunnelwatch_decode_skipped_total{reason=\"truncated\"} 2"));
    ck_assert(has_line(out, "# TYPE tunnelwatch_flows_active gauge"));
    ck_assert(has_line(out, "tunnelwatch_flows_active 4"));
    ck_assert(has_line(out, "tunnelwatch_flows_evicted_total 1"));
    ck_assert(has_line(out, "tunnelwatch_names_total{kind=\"dns_query\"} 3"));
    ck_assert(has_line(out, "tunnelwatch_names_total{kind=\"tls_sni\"} 2"));
    ck_assert(has_line(out, "tunnelwatch_parse_errors_total{protocol=\"dns\"} 1"));
    ck_assert(has_line(out, "tunnelwatch_parse_errors_total{protocol=\"tls\"} 0"));
    ck_assert(has_line(out, "tunnelwatch_alerts_total{outcome=\"raised\"} 2"));
    ck_assert(has_line(out, "tunnelwatch_alerts_total{outcome=\"suppressed\"} 1"));
    ck_assert(has_line(out, "tunnelwatch_dns_map_entries 7"));
    ck_assert(has_line(out, "tunnelwatch_kernel_drops_total 5"));
    ck_assert(has_line(out, "tunnelwatch_interface_drops_total 6"));
    ck_assert(has_line(out, "# TYPE tunnelwatch_uptime_seconds gauge"));
    ck_assert(has_line(out, "tunnelwatch_uptime_seconds 5"));
    ck_assert(has_line(out, "tunnelwatch_build_info{version=\"0.1.0\"} 1"));
    ck_assert_ptr_null(strstr(out, "heartbeat_unix"));
    ck_assert_int_eq(check_exposition(out), 16);
}
END_TEST

/* names_* interleaved with other fields still come out as one contiguous family block */
START_TEST(format_groups_families)
{
    metrics_format("names_dns_query\t1\npackets\t2\nnames_tls_sni\t3\nflows_active\t0\n"
                   "names_quic_sni\t4\n",
                   out, sizeof(out));
    ck_assert_int_eq(check_exposition(out), 5);
    const char *a = strstr(out, "tunnelwatch_names_total{kind=\"dns_query\"} 1\n");
    const char *b = strstr(out, "tunnelwatch_names_total{kind=\"tls_sni\"} 3\n");
    const char *c = strstr(out, "tunnelwatch_names_total{kind=\"quic_sni\"} 4\n");
    ck_assert(a && b && c && a < b && b < c);
    ck_assert_ptr_null(strstr(a, "# TYPE tunnelwatch_names_total")); /* one header, before */
}
END_TEST

START_TEST(format_labels_and_escaping)
{
    metrics_format("allowlist_ci\"x\\y\t4\n"
                   "allowlist_staging-deploy\t1\n"
                   "alerts{rule=19bf6fdb,outcome=raised}\t3\n"
                   "foo_total\t9\n"
                   "odd-name.x\t1\n",
                   out, sizeof(out));
    ck_assert_msg(has_line(out, "tunnelwatch_allowlist_suppressed_total{entry=\"ci\\\"x\\\\y\"} 4"),
                  "%s", out);
    ck_assert(has_line(out, "tunnelwatch_allowlist_suppressed_total{entry=\"staging-deploy\"} 1"));
    ck_assert(has_line(out, "tunnelwatch_alerts_total{rule=\"19bf6fdb\",outcome=\"raised\"} 3"));
    ck_assert(has_line(out, "tunnelwatch_foo_total 9")); /* no _total_total */
    ck_assert(has_line(out, "tunnelwatch_odd_name_x_total 1"));
    ck_assert_int_eq(check_exposition(out), 5);
}
END_TEST

START_TEST(format_skips_garbage)
{
    size_t n = metrics_format("no tab here\n\tnovalue\nfield\tnot-a-number\nx\t1e5junk\n"
                              "y\t\n\n\n\nz\t42",
                              out, sizeof(out));
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_int_eq(check_exposition(out), 1);
    ck_assert(has_line(out, "tunnelwatch_z_total 42"));
    ck_assert_uint_eq(metrics_format("", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(format_truncates_at_line)
{
    const char *in = "packets\t10\nbytes\t1500\nnames_dns_query\t3\nnames_tls_sni\t2\n";
    char full[4096];
    size_t fl = metrics_format(in, full, sizeof(full));
    ck_assert_uint_lt(fl, sizeof(full));
    for (size_t cap = 1; cap <= fl; cap++) {
        char small[4096];
        memset(small, 'Z', sizeof(small));
        size_t r = metrics_format(in, small, cap);
        ck_assert_uint_eq(r, cap); /* too small: says so */
        size_t l = strlen(small);
        ck_assert_uint_lt(l, cap);
        ck_assert(memcmp(small, full, l) == 0);
        ck_assert(l == 0 || small[l - 1] == '\n');
    }
    ck_assert_uint_eq(metrics_format(in, out, fl + 1), fl);
}
END_TEST

START_TEST(format_pub_lines)
{
    struct pub_stats ps;
    memset(&ps, 0, sizeof(ps));
    ps.enqueued = 11;
    ps.delivered = 9;
    ps.spooled = 2;
    ps.queued = 0;
    ps.spool_bytes = 512;
    ps.spool_records = 2;
    ps.reconnects = 3;
    ps.connected = true;
    char lines[2048];
    size_t n = metrics_pub_lines(&ps, lines, sizeof(lines));
    ck_assert_uint_eq(n, strlen(lines));
    metrics_format(lines, out, sizeof(out));
    ck_assert_msg(has_line(out, "tunnelwatch_redis_records_total{outcome=\"enqueued\"} 11"), "%s",
                  out);
    ck_assert(has_line(out, "tunnelwatch_redis_records_total{outcome=\"delivered\"} 9"));
    ck_assert(has_line(out, "tunnelwatch_redis_records_total{outcome=\"spooled\"} 2"));
    ck_assert(has_line(out, "tunnelwatch_redis_queue_records 0"));
    ck_assert(has_line(out, "# TYPE tunnelwatch_spool_bytes gauge"));
    ck_assert(has_line(out, "tunnelwatch_spool_bytes 512"));
    ck_assert(has_line(out, "tunnelwatch_spool_records 2"));
    ck_assert(has_line(out, "tunnelwatch_redis_reconnects_total 3"));
    ck_assert(has_line(out, "# TYPE tunnelwatch_redis_connected gauge"));
    ck_assert(has_line(out, "tunnelwatch_redis_connected 1"));
    check_exposition(out);
}
END_TEST

/* The real engine's counters after the demo capture: valid text, and the numbers carried. */
START_TEST(format_engine_stats)
{
    struct tw_cfg cfg;
    cfg_defaults(&cfg);
    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    ck_assert_ptr_nonnull(rs);
    ck_assert_int_ge(ruleset_load(rs, tw_src_path("conf/rules"), stderr), 1);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    struct engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.cfg = &cfg;
    eo.log = stderr;
    eo.verbosity = -1;
    char err[256];
    struct engine *e = engine_new(&eo, rs, err, sizeof(err));
    ck_assert_msg(e != NULL, "%s", err);
    char ebuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(tw_src_path("pcaps/demo.pcap"), ebuf);
    ck_assert_msg(p != NULL, "%s", ebuf);
    engine_begin_input(e, "demo.pcap", pcap_datalink(p), false);
    struct pcap_pkthdr *h;
    const u_char *d;
    int packets = 0;
    while (pcap_next_ex(p, &h, &d) == 1) {
        engine_packet(e, h, d);
        packets++;
    }
    pcap_close(p);
    static char stats[16384];
    engine_stats_text(e, stats, sizeof(stats));
    metrics_format(stats, out, sizeof(out));
    int samples = check_exposition(out);
    int lines = 0;
    for (const char *q = stats; *q; q++)
        lines += *q == '\n';
    ck_assert_int_eq(samples, lines); /* every engine counter became a sample */
    char want[64];
    snprintf(want, sizeof(want), "tunnelwatch_packets_total %d", packets);
    ck_assert_msg(has_line(out, want), "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "tunnelwatch_names_total{kind=\"dns_query\"} "));
    ck_assert_ptr_null(strstr(out, "tunnelwatch_names_total{kind=\"dns_query\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(out, "tunnelwatch_parse_errors_total{protocol=\"dns\"} "));
    ck_assert_ptr_nonnull(strstr(out, "# TYPE tunnelwatch_flows_active gauge"));
    ck_assert_ptr_nonnull(strstr(out, "tunnelwatch_alerts_total{outcome=\"raised\"} 1\n"));
    engine_finish(e);
    engine_free(e);
    ruleset_free(rs);
    cfg_free(&cfg);
}
END_TEST

/* ---- listener ---------------------------------------------------------------------------- */

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Sends req, reads until EOF (3 s timeout per read); the answer is malloc'ed. */
static char *http(int port, const char *req)
{
    int fd = connect_port(port);
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        ck_assert_msg(r >= 0, "recv: %s", strerror(errno));
        if (r == 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    ck_assert_ptr_nonnull(b);
    return b + 4;
}

static struct metrics *start(void)
{
    char err[256] = "";
    struct metrics *m = metrics_new("127.0.0.1:0", false, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    ck_assert_int_gt(metrics_port(m), 0);
    return m;
}

START_TEST(listener_serves_snapshot)
{
    struct metrics *m = start();
    int port = metrics_port(m);
    char *r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.0 503 ", 13) == 0, "%s", r);
    free(r);

    ck_assert_int_eq(metrics_publish(m, "tunnelwatch_packets_total 1\n"), TW_OK);
    r = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    ck_assert_ptr_nonnull(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    ck_assert_ptr_nonnull(strstr(r, "Content-Length: 28\r\n"));
    ck_assert_str_eq(body_of(r), "tunnelwatch_packets_total 1\n");
    free(r);

    /* the next snapshot replaces the first */
    ck_assert_int_eq(metrics_publish(m, "tunnelwatch_packets_total 2\n"), TW_OK);
    r = http(port, "GET /metrics?x=1 HTTP/1.0\n\n"); /* bare LF and a query string */
    ck_assert_str_eq(body_of(r), "tunnelwatch_packets_total 2\n");
    free(r);

    r = http(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0, "%s", r);
    ck_assert_str_eq(body_of(r), "");
    free(r);
    r = http(port, "GET /other HTTP/1.0\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.0 404 ", 13) == 0, "%s", r);
    free(r);
    r = http(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.0 405 ", 13) == 0, "%s", r);
    free(r);
    r = http(port, "garbage\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.0 400 ", 13) == 0, "%s", r);
    free(r);
    metrics_free(m);
}
END_TEST

START_TEST(listener_addresses)
{
    char err[256];
    struct metrics *m;
    const char *refused[] = {"0.0.0.0:0", "*:0", "192.0.2.1:0", "[::]:0"};
    for (size_t i = 0; i < TW_ARRAY_LEN(refused); i++) {
        err[0] = '\0';
        ck_assert_ptr_null(metrics_new(refused[i], false, err, sizeof(err)));
        ck_assert_msg(strstr(err, "allow_remote") != NULL, "%s: %s", refused[i], err);
    }
    const char *bad[] = {"127.0.0.1", "127.0.0.1:",  "127.0.0.1:x", "127.0.0.1:70000",
                         ":80",       "1.2.3.4.5:1", "[::1:80",     "example.com:80"};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        ck_assert_ptr_null(metrics_new(bad[i], true, err, sizeof(err)));
        ck_assert_msg(strstr(err, "metrics.listen") != NULL, "%s: %s", bad[i], err);
    }
    m = metrics_new("0.0.0.0:0", true, err, sizeof(err)); /* allowed on request */
    ck_assert_msg(m != NULL, "%s", err);
    metrics_free(m);
    m = metrics_new("localhost:0", false, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    metrics_publish(m, "a 1\n");
    char *r = http(metrics_port(m), "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_str_eq(body_of(r), "a 1\n");
    free(r);
    /* a port in use is a clear error */
    char busy[64];
    snprintf(busy, sizeof(busy), "127.0.0.1:%d", metrics_port(m));
    ck_assert_ptr_null(metrics_new(busy, false, err, sizeof(err)));
    ck_assert_msg(strstr(err, "in use") != NULL, "%s", err);
    metrics_free(m);
    m = metrics_new("[::1]:0", false, err, sizeof(err));
    if (m) /* IPv6 loopback may be missing in a container */
        metrics_free(m);
    else
        ck_assert_msg(strstr(err, "allow_remote") == NULL, "%s", err);
    metrics_free(NULL);
}
END_TEST

/* Publishes n snapshots of ~100 KB; returns the slowest call in seconds. */
static double publish_worst(struct metrics *m, int n)
{
    static char big[100000];
    memset(big, 'x', sizeof(big) - 2);
    big[sizeof(big) - 2] = '\n';
    big[sizeof(big) - 1] = '\0';
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double t = mono_s();
        ck_assert_int_eq(metrics_publish(m, big), TW_OK);
        double d = mono_s() - t;
        if (d > worst)
            worst = d;
    }
    return worst;
}

struct flood {
    int port;
    size_t sent;
    bool ended; /* the server answered 431 or closed the connection */
};

/* 1 MB of header lines without the blank line that ends them. */
static void *flood_headers(void *arg)
{
    struct flood *f = arg;
    int fd = connect_port(f->port);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char chunk[4096];
    memset(chunk, 'a', sizeof(chunk));
    memcpy(chunk, "GET /metrics HTTP/1.0\r\n", 23);
    for (size_t i = 100; i < sizeof(chunk); i += 100)
        memcpy(chunk + i - 2, "\r\n", 2);
    while (f->sent < (1u << 20)) {
        ssize_t w = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the listener refused or closed: what we want */
        f->sent += (size_t)w;
    }
    /* Whatever the kernel buffered, the server must end the exchange: a 431 answer, EOF or a
     * reset, not silence until our 3 s receive timeout. */
    char ans[64] = "";
    ssize_t r = recv(fd, ans, sizeof(ans) - 1, 0);
    f->ended = r == 0 || (r > 0 && strncmp(ans, "HTTP/1.0 431 ", 13) == 0) ||
               (r < 0 && errno == ECONNRESET);
    close(fd);
    return NULL;
}

START_TEST(listener_slow_clients_do_not_stall)
{
    struct metrics *m = start();
    int port = metrics_port(m);
    metrics_publish(m, "tunnelwatch_packets_total 1\n");
    /* connects and sends nothing */
    int idle = connect_port(port);
    /* 1 MB of headers, in a thread */
    struct flood f = {port, 0, false};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, flood_headers, &f), 0);
    double worst = publish_worst(m, 500);
    ck_assert_msg(worst < 0.05, "metrics_publish took %.3f s with slow clients", worst);
    /* a well-behaved scraper is still answered, with the latest snapshot */
    metrics_publish(m, "tunnelwatch_packets_total 2\n");
    double t = mono_s();
    char *r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_msg(mono_s() - t < 1.0, "scrape took %.3f s", mono_s() - t);
    ck_assert_str_eq(body_of(r), "tunnelwatch_packets_total 2\n");
    free(r);
    pthread_join(th, NULL);
    ck_assert_msg(f.ended, "the header flood (%zu bytes sent) was neither refused nor closed",
                  f.sent);
    /* the idle client is dropped at its deadline (5 s), not kept forever */
    struct pollfd pfd = {.fd = idle, .events = POLLIN};
    t = mono_s();
    ck_assert_int_eq(poll(&pfd, 1, 8000), 1);
    char c;
    ck_assert_int_le(recv(idle, &c, 1, 0), 0);
    ck_assert_msg(mono_s() - t < 7.0, "idle client kept %.1f s", mono_s() - t);
    close(idle);
    metrics_free(m);
}
END_TEST

START_TEST(listener_all_slots_busy)
{
    struct metrics *m = start();
    int port = metrics_port(m);
    metrics_publish(m, "x 1\n");
    int fds[40];
    for (int i = 0; i < 40; i++)
        fds[i] = connect_port(port); /* the kernel accepts; the listener drops the excess */
    double worst = publish_worst(m, 200);
    ck_assert_msg(worst < 0.05, "metrics_publish took %.3f s with 40 idle clients", worst);
    for (int i = 0; i < 40; i++)
        close(fds[i]);
    metrics_publish(m, "x 1\n");
    /* once they are gone the endpoint answers again (bounded: the slots free on close) */
    char *r = NULL;
    for (int tries = 0; tries < 50 && !r; tries++) {
        usleep(100000);
        r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
        if (strncmp(r, "HTTP/1.0 200", 12) != 0) {
            free(r);
            r = NULL;
        }
    }
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(body_of(r), "x 1\n");
    free(r);
    /* stopping with a client connected is prompt */
    int idle = connect_port(port);
    double t = mono_s();
    metrics_free(m);
    ck_assert_msg(mono_s() - t < 1.0, "metrics_free took %.3f s", mono_s() - t);
    close(idle);
}
END_TEST

START_TEST(listener_snapshot_cap)
{
    struct metrics *m = start();
    metrics_publish(m, "kept 1\n");
    size_t n = METRICS_SNAPSHOT_MAX + 1;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 'y', n);
    big[n] = '\0';
    ck_assert_int_eq(metrics_publish(m, big), TW_ELIMIT);
    free(big);
    char *r = http(metrics_port(m), "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_str_eq(body_of(r), "kept 1\n");
    free(r);
    metrics_free(m);
}
END_TEST

/* A scraper reading while snapshots change: every answer is one whole snapshot. */
START_TEST(listener_concurrent_publish)
{
    struct metrics *m = start();
    int port = metrics_port(m);
    char text[128];
    for (int i = 0; i < 200; i++) {
        snprintf(text, sizeof(text), "tunnelwatch_packets_total %d\ntunnelwatch_bytes_total %d\n",
                 i, i * 10);
        metrics_publish(m, text);
        if (i % 20 == 0) {
            char *r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
            int a, b;
            ck_assert_int_eq(sscanf(body_of(r),
                                    "tunnelwatch_packets_total %d\ntunnelwatch_bytes_total %d", &a,
                                    &b),
                             2);
            ck_assert_int_eq(b, a * 10);
            free(r);
        }
    }
    metrics_free(m);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tf = tcase_create("metrics_format");
    tcase_add_test(tf, format_families);
    tcase_add_test(tf, format_groups_families);
    tcase_add_test(tf, format_labels_and_escaping);
    tcase_add_test(tf, format_skips_garbage);
    tcase_add_test(tf, format_truncates_at_line);
    tcase_add_test(tf, format_pub_lines);
    tcase_add_test(tf, format_engine_stats);
    tcase_set_timeout(tf, 60);
    suite_add_tcase(s, tf);
    TCase *tl = tcase_create("listener");
    tcase_add_test(tl, listener_serves_snapshot);
    tcase_add_test(tl, listener_addresses);
    tcase_add_test(tl, listener_slow_clients_do_not_stall);
    tcase_add_test(tl, listener_all_slots_busy);
    tcase_add_test(tl, listener_snapshot_cap);
    tcase_add_test(tl, listener_concurrent_publish);
    tcase_set_timeout(tl, 60);
    suite_add_tcase(s, tl);
    return s;
}
