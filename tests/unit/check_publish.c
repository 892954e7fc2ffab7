/* check_publish.c - the Redis publisher against a REAL redis-server (no mocks).
 *
 * Each test starts its own redis-server on a unix socket in a temp dir (fork/exec, killed at
 * the end, PR_SET_PDEATHSIG so a failing test cannot leak it) and checks what a SOC engineer
 * would check: every record id arrives across an outage, a kill -9 of Redis, a CLIENT PAUSE,
 * a spool overflow, configuration errors and a crash of the sensor itself. Without
 * redis-server installed only the tests that need no server run (URL parsing, option
 * validation, options from the configuration) and the suite exits 77: ctest shows it skipped,
 * not passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tunnelwatch/cfg.h"
#include "tunnelwatch/publish.h"
#include "tw_check.h"

#define KEY "tunnelwatch:alerts"

struct rsrv {
    pid_t pid;
    char dir[64];
    char sock[128];
    char url[160];
    char spool[128];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool have_redis(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

static void rs_init(struct rsrv *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "/tmp/tw_pub.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(r->dir));
    snprintf(r->sock, sizeof(r->sock), "%s/redis.sock", r->dir);
    snprintf(r->url, sizeof(r->url), "unix://%s", r->sock);
    snprintf(r->spool, sizeof(r->spool), "%s/spool", r->dir);
}

static redisContext *rs_conn(const struct rsrv *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

/* Starts redis-server on r->sock; extra is a NULL-terminated list of more arguments. */
static void rs_start(struct rsrv *r, const char *const *extra)
{
    const char *argv[40] = {"redis-server", "--port",      "0",  "--unixsocket",
                            r->sock,        "--save",      "",   "--appendonly",
                            "no",           "--daemonize", "no", "--dir",
                            r->dir,         "--logfile",   "",   "--unixsocketperm",
                            "700"};
    int argc = 17;
    for (int i = 0; extra && extra[i] && argc < 38; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failing test must not leak the server */
        char log[160];
        snprintf(log, sizeof(log), "%s/redis.log", r->dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char *cargv[40];
        for (int i = 0; i <= argc; i++)
            cargv[i] = argv[i] ? strdup(argv[i]) : NULL; /* exec wants non-const strings */
        execvp("redis-server", cargv);
        _exit(127);
    }
    r->pid = pid;
    /* bounded poll for the socket to answer */
    for (int64_t end = now_ms() + 10000; now_ms() < end; sleep_ms(20)) {
        redisContext *c = rs_conn(r);
        if (c) {
            redisReply *rep = redisCommand(c, "PING");
            bool up = rep != NULL; /* PONG, or NOAUTH with requirepass: either way it is up */
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (up)
                return;
        }
        ck_assert_msg(waitpid(pid, NULL, WNOHANG) == 0, "redis-server exited at start");
    }
    ck_abort_msg("redis-server did not come up on %s", r->sock);
}

static void rs_kill(struct rsrv *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
}

static void rs_cleanup(struct rsrv *r)
{
    rs_kill(r);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void cmd_ok(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *rep = redisCommand(c, fmt, arg);
    ck_assert_ptr_nonnull(rep);
    ck_assert_msg(rep->type != REDIS_REPLY_ERROR, "%s: %s", fmt, rep->str);
    freeReplyObject(rep);
}

static int make_rec(char *buf, size_t n, int i)
{
    return snprintf(buf, n,
                    "{\"event.kind\":\"alert\",\"event.id\":\"t-%06d\",\"seq\":%d,"
                    "\"destination.domain\":\"x.tunnel.us.ngrok.com\"}",
                    i, i);
}

static void enqueue_range(struct pub *p, int from, int to)
{
    char rec[256];
    for (int i = from; i < to; i++) {
        int n = make_rec(rec, sizeof(rec), i);
        ck_assert_int_eq(pub_enqueue(p, rec, (size_t)n), TW_OK);
    }
}

/* Reads the whole stream; counts[seq]++ for each record, order[] gets the seqs in stream
 * order. Returns the entry count. */
static long read_stream(const struct rsrv *r, int *counts, int ncounts, int *order, int nord)
{
    redisContext *c = rs_conn(r);
    ck_assert_ptr_nonnull(c);
    redisReply *rep = redisCommand(c, "XRANGE %s - +", KEY);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
    long n = (long)rep->elements;
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        ck_assert_int_eq(e->elements, 2);
        redisReply *kv = e->element[1];
        ck_assert_int_eq(kv->elements, 2);
        ck_assert_str_eq(kv->element[0]->str, "alert");
        const char *s = strstr(kv->element[1]->str, "\"seq\":");
        ck_assert_ptr_nonnull(s);
        int seq = (int)strtol(s + 6, NULL, 10);
        ck_assert(seq >= 0 && seq < ncounts);
        counts[seq]++;
        if ((long)i < nord)
            order[i] = seq;
    }
    freeReplyObject(rep);
    redisFree(c);
    return n;
}

static struct pub_opts base_opts(const struct rsrv *r)
{
    struct pub_opts o = {.url = r->url,
                         .modes = PUB_MODE_STREAM,
                         .spool_dir = r->spool,
                         .timeout_ms = 500,
                         .batch = 64,
                         .sensor_name = "t1",
                         .heartbeat_s = 0,
                         .backoff_min_ms = 50,
                         .backoff_max_ms = 400};
    return o;
}

static struct pub *new_pub(const struct pub_opts *o)
{
    char err[256] = "";
    struct pub *p = pub_new(o, err, sizeof(err));
    ck_assert_msg(p != NULL, "pub_new: %s", err);
    return p;
}

static struct pub_stats stats(struct pub *p)
{
    struct pub_stats s;
    pub_get_stats(p, &s);
    return s;
}

/* Waits until every enqueued record was delivered or dropped and nothing is left waiting. */
static bool wait_drained(struct pub *p, int timeout_ms)
{
    for (int64_t end = now_ms() + timeout_ms; now_ms() < end; sleep_ms(20)) {
        struct pub_stats s = stats(p);
        if (s.queued == 0 && s.spool_records == 0 && s.delivered + s.dropped >= s.enqueued)
            return true;
    }
    return false;
}

/* ---- URL parsing ---------------------------------------------------------------------- */

START_TEST(test_url)
{
    struct pub_url u;
    char err[256];
    ck_assert_int_eq(pub_parse_url("redis://10.0.0.5:6380/3", &u, err, sizeof(err)), TW_OK);
    ck_assert(!u.is_unix);
    ck_assert_str_eq(u.host, "10.0.0.5");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 3);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "");

    ck_assert_int_eq(pub_parse_url("redis://soc:p%40ss:w@redis.lan", &u, err, sizeof(err)), TW_OK);
    ck_assert_str_eq(u.user, "soc");
    ck_assert_str_eq(u.password, "p@ss:w");
    ck_assert_str_eq(u.host, "redis.lan");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);

    ck_assert_int_eq(pub_parse_url("redis://:secret@[::1]:7000/", &u, err, sizeof(err)), TW_OK);
    ck_assert_str_eq(u.user, "");
    ck_assert_str_eq(u.password, "secret");
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 7000);

    ck_assert_int_eq(pub_parse_url("unix:///run/redis/redis.sock?db=2", &u, err, sizeof(err)),
                     TW_OK);
    ck_assert(u.is_unix);
    ck_assert_str_eq(u.path, "/run/redis/redis.sock");
    ck_assert_int_eq(u.db, 2);
    ck_assert_int_eq(pub_parse_url("unix:///tmp/r.sock", &u, err, sizeof(err)), TW_OK);
    ck_assert_int_eq(u.db, 0);

    const char *bad[] = {"",
                         "http://x",
                         "redis://",
                         "redis://h:0",
                         "redis://h:65536",
                         "redis://h:12x",
                         "redis://h/x",
                         "redis://h/1/2",
                         "redis://[::1",
                         "redis://u:%zz@h",
                         "unix://relative.sock",
                         "unix:///x.sock?db=a",
                         "unix:///x.sock?foo=1",
                         "rediss://h"};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        ck_assert_msg(pub_parse_url(bad[i], &u, err, sizeof(err)) == TW_ECONF, "accepted %s",
                      bad[i]);
        ck_assert_msg(err[0] != '\0', "no message for %s", bad[i]);
    }
    /* the password never appears in an error message */
    ck_assert_int_eq(pub_parse_url("redis://u:topsecret%G@h", &u, err, sizeof(err)), TW_ECONF);
    ck_assert_ptr_null(strstr(err, "topsecret"));
    /* a socket path longer than sun_path */
    char longp[300] = "unix:///";
    memset(longp + 8, 'a', 200);
    longp[208] = '\0';
    ck_assert_int_eq(pub_parse_url(longp, &u, err, sizeof(err)), TW_ECONF);
}
END_TEST

START_TEST(test_new_validates)
{
    char err[256] = "";
    struct pub_opts o = {.url = "redis://h:99999"};
    ck_assert_ptr_null(pub_new(&o, err, sizeof(err)));
    ck_assert_msg(strstr(err, "port") != NULL, "err: %s", err);
    /* two publishers on one spool dir: the second fails clearly */
    struct rsrv r;
    rs_init(&r);
    struct pub_opts a = base_opts(&r);
    struct pub *p = new_pub(&a);
    ck_assert_ptr_null(pub_new(&a, err, sizeof(err)));
    ck_assert_msg(strstr(err, "in use by another process") != NULL, "err: %s", err);
    pub_free(p);
    pub_free(NULL);
    rs_cleanup(&r);
}
END_TEST

/* ---- 1. Redis absent at start ---------------------------------------------------------- */

static void absent_then_started(size_t queue_max)
{
    enum { N = 1000 };
    struct rsrv r;
    rs_init(&r);
    struct pub_opts o = base_opts(&r);
    o.queue_max = queue_max;
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    enqueue_range(p, 0, N);
    sleep_ms(300);
    struct pub_stats s = stats(p);
    ck_assert(!s.connected);
    ck_assert_uint_eq(s.delivered, 0);
    ck_assert_uint_eq(s.enqueued, N);
    rs_start(&r, NULL);
    ck_assert_msg(wait_drained(p, 15000), "not delivered");
    s = stats(p);
    ck_assert_uint_eq(s.delivered, N);
    ck_assert_uint_eq(s.dropped, 0);
    static int counts[N], order[N];
    memset(counts, 0, sizeof(counts));
    ck_assert_int_eq(read_stream(&r, counts, N, order, N), N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(counts[i], 1);
        ck_assert_int_eq(order[i], i); /* in enqueue order */
    }
    if (queue_max < N)
        ck_assert_uint_ge(s.spooled, N - queue_max);
    pub_stop(p, 1000);
    pub_free(p);
    rs_cleanup(&r);
}

START_TEST(test_absent_then_started_queue)
{
    absent_then_started(100000);
}
END_TEST

START_TEST(test_absent_then_started_spool)
{
    absent_then_started(50);
}
END_TEST

/* ---- 2. kill -9 of Redis in the middle --------------------------------------------------- */

START_TEST(test_redis_killed)
{
    enum { N = 6000 };
    struct rsrv r;
    rs_init(&r);
    /* What Redis acknowledged must survive its kill -9, or "every id arrives" is
     * meaningless: AOF with fsync always. */
    const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    rs_start(&r, aof);
    struct pub_opts o = base_opts(&r);
    o.queue_max = 1000;
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    char rec[256];
    uint64_t at_kill = 0;
    for (int i = 0; i < N; i++) {
        int n = make_rec(rec, sizeof(rec), i);
        ck_assert_int_eq(pub_enqueue(p, rec, (size_t)n), TW_OK);
        if (i % 10 == 9)
            sleep_ms(1);
        if (i == N / 3) {
            at_kill = stats(p).delivered;
            rs_kill(&r);
        }
        if (i == 2 * N / 3)
            rs_start(&r, aof);
    }
    ck_assert_msg(wait_drained(p, 30000), "not delivered");
    struct pub_stats s = stats(p);
    static int counts[N];
    long total = read_stream(&r, counts, N, NULL, 0);
    long distinct = 0, dups = 0;
    for (int i = 0; i < N; i++) {
        distinct += counts[i] > 0;
        dups += counts[i] > 1 ? counts[i] - 1 : 0;
    }
    printf("test_redis_killed: enqueued %d, delivered-before-kill %llu, stream entries %ld, "
           "distinct %ld, duplicates %ld, spooled %llu, reconnects %llu, dropped %llu\n",
           N, (unsigned long long)at_kill, total, distinct, dups, (unsigned long long)s.spooled,
           (unsigned long long)s.reconnects, (unsigned long long)s.dropped);
    ck_assert_uint_gt(at_kill, 0); /* the kill really happened mid-publishing */
    ck_assert_uint_lt(at_kill, N);
    ck_assert_int_eq(distinct, N);
    ck_assert_uint_eq(s.dropped, 0);
    ck_assert_uint_ge(s.reconnects, 1);
    pub_stop(p, 1000);
    pub_free(p);
    rs_cleanup(&r);
}
END_TEST

/* ---- 3. CLIENT PAUSE: enqueue never waits ----------------------------------------------- */

START_TEST(test_redis_paused)
{
    enum { N = 3000 };
    struct rsrv r;
    rs_init(&r);
    rs_start(&r, NULL);
    struct pub_opts o = base_opts(&r);
    o.queue_max = 500;
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    for (int64_t end = now_ms() + 5000; !stats(p).connected && now_ms() < end; sleep_ms(10))
        ;
    ck_assert(stats(p).connected);
    redisContext *admin = rs_conn(&r);
    ck_assert_ptr_nonnull(admin);
    cmd_ok(admin, "CLIENT PAUSE %s", "10000");
    int64_t t0 = now_ms();
    char rec[256];
    double max_us = 0;
    for (int i = 0; i < N; i++) {
        int n = make_rec(rec, sizeof(rec), i);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        ck_assert_int_eq(pub_enqueue(p, rec, (size_t)n), TW_OK);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double us = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
        if (us > max_us)
            max_us = us;
        if (i % 100 == 99)
            sleep_ms(2); /* spread the enqueues over the pause */
    }
    int64_t t_enq = now_ms() - t0;
    struct pub_stats mid = stats(p);
    printf("test_redis_paused: %d enqueues in %lld ms during CLIENT PAUSE, max enqueue latency "
           "%.1f us, delivered during pause %llu\n",
           N, (long long)t_enq, max_us, (unsigned long long)mid.delivered);
    ck_assert_int_lt(t_enq, 10000); /* all of it happened while paused */
    ck_assert_msg(max_us < 50000.0, "pub_enqueue waited %.1f us", max_us);
    ck_assert_uint_eq(mid.delivered, 0);
    ck_assert_msg(wait_drained(p, 40000), "not delivered after the pause");
    static int counts[N];
    read_stream(&r, counts, N, NULL, 0);
    for (int i = 0; i < N; i++)
        ck_assert_msg(counts[i] >= 1, "record %d missing", i);
    ck_assert_uint_eq(stats(p).delivered, N);
    redisFree(admin);
    pub_stop(p, 1000);
    pub_free(p);
    rs_cleanup(&r);
}
END_TEST

/* ---- 4. spool cap: oldest dropped, counted exactly -------------------------------------- */

START_TEST(test_spool_cap)
{
    enum { N = 3000 };
    struct rsrv r;
    rs_init(&r);
    struct pub_opts o = base_opts(&r);
    o.queue_max = 20;
    o.spool_max_bytes = 16 * 1024;
    o.spool_segment_bytes = 2048;
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    char rec[256];
    for (int i = 0; i < N; i++) {
        int n = make_rec(rec, sizeof(rec), i);
        ck_assert_int_eq(pub_enqueue(p, rec, (size_t)n), TW_OK);
        /* a realistic alert rate: never let the hand-off list fill (that would drop the
         * newest, and this test is about the spool dropping the oldest) */
        while (stats(p).queued > 200)
            sleep_ms(1);
    }
    for (int64_t end = now_ms() + 5000; stats(p).queued > 0 && now_ms() < end; sleep_ms(10))
        ;
    struct pub_stats s = stats(p);
    ck_assert_uint_eq(s.queued, 0);
    ck_assert_uint_le(s.spool_bytes, 16 * 1024);
    ck_assert_uint_gt(s.dropped, 0);
    ck_assert_uint_eq(s.spool_records + s.dropped, N);
    rs_start(&r, NULL);
    ck_assert_msg(wait_drained(p, 15000), "not delivered");
    s = stats(p);
    printf("test_spool_cap: enqueued %llu delivered %llu dropped %llu\n",
           (unsigned long long)s.enqueued, (unsigned long long)s.delivered,
           (unsigned long long)s.dropped);
    ck_assert_uint_eq(s.enqueued, N);
    ck_assert_uint_eq(s.delivered + s.dropped, N);
    static int counts[N], order[N];
    long got = read_stream(&r, counts, N, order, N);
    ck_assert_int_eq(got, (long)s.delivered);
    /* the survivors are the newest records, in order */
    int first = N - (int)s.delivered;
    for (long i = 0; i < got; i++)
        ck_assert_int_eq(order[i], first + (int)i);
    pub_stop(p, 1000);
    pub_free(p);
    rs_cleanup(&r);
}
END_TEST

/* ---- 5. configuration errors: one line each, retry, recover ----------------------------- */

struct errcap {
    int saved;
    char path[160];
};

static void cap_begin(struct errcap *e, const struct rsrv *r)
{
    snprintf(e->path, sizeof(e->path), "%s/stderr.txt", r->dir);
    fflush(stderr);
    e->saved = dup(2);
    int fd = open(e->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
}

/* Restores stderr and returns what was written (static buffer), echoed for the log. */
static const char *cap_end(struct errcap *e)
{
    static char buf[8192];
    fflush(stderr);
    dup2(e->saved, 2);
    close(e->saved);
    size_t n = 0;
    uint8_t *d = tw_read_file(e->path, &n);
    ck_assert_ptr_nonnull(d);
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    memcpy(buf, d, n);
    buf[n] = '\0';
    free(d);
    fprintf(stderr, "--- captured stderr ---\n%s---\n", buf);
    return buf;
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(len < 1000 ? len : 1000), l);
        n += strstr(line, needle) != NULL;
        l += len + (nl != NULL);
    }
    return n;
}

static bool wait_delivered(struct pub *p, uint64_t n, int timeout_ms)
{
    for (int64_t end = now_ms() + timeout_ms; now_ms() < end; sleep_ms(20))
        if (stats(p).delivered >= n)
            return true;
    return false;
}

START_TEST(test_wrong_password)
{
    struct rsrv r;
    rs_init(&r);
    const char *const pw[] = {"--requirepass", "good-pass", NULL};
    rs_start(&r, pw);
    struct errcap e;
    cap_begin(&e, &r);
    struct pub_opts o = base_opts(&r);
    o.password = "Wr0ngPa55";
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    enqueue_range(p, 0, 20);
    sleep_ms(1500);
    struct pub_stats s = stats(p);
    ck_assert_uint_eq(s.delivered, 0);
    ck_assert_uint_ge(s.errors, 4); /* it kept retrying */
    /* the admin fixes the server side: the publisher's password becomes the right one */
    redisContext *admin = rs_conn(&r);
    ck_assert_ptr_nonnull(admin);
    cmd_ok(admin, "AUTH %s", "good-pass");
    cmd_ok(admin, "CONFIG SET requirepass %s", "Wr0ngPa55");
    redisFree(admin);
    bool ok = wait_delivered(p, 20, 10000);
    pub_stop(p, 1000);
    pub_free(p);
    const char *err = cap_end(&e);
    ck_assert(ok);
    ck_assert_int_eq(count_lines_with(err, "AUTH"), 1);
    ck_assert_int_eq(count_lines_with(err, "WRONGPASS"), 1);
    ck_assert_ptr_null(strstr(err, "Wr0ngPa55"));
    ck_assert_ptr_null(strstr(err, "good-pass"));
    ck_assert_int_eq(count_lines_with(err, "again"), 1);
    rs_cleanup(&r);
}
END_TEST

START_TEST(test_wrong_db)
{
    struct rsrv r;
    rs_init(&r);
    rs_start(&r, NULL);
    struct errcap e;
    cap_begin(&e, &r);
    char url[200];
    snprintf(url, sizeof(url), "%s?db=99", r.url);
    struct pub_opts o = base_opts(&r);
    o.url = url;
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    enqueue_range(p, 0, 20);
    sleep_ms(1500);
    struct pub_stats s = stats(p);
    pub_stop(p, 200);
    struct pub_stats after = stats(p);
    pub_free(p);
    const char *err = cap_end(&e);
    ck_assert_uint_eq(s.delivered, 0);
    ck_assert_uint_ge(s.errors, 4);
    ck_assert_int_eq(count_lines_with(err, "SELECT 99"), 1);
    ck_assert_int_eq(count_lines_with(err, "tunnelwatch: redis:"), 1);
    /* nothing lost: the undelivered records went to the spool at stop */
    ck_assert_uint_eq(after.spool_records, 20);
    ck_assert_uint_eq(after.dropped, 0);
    rs_cleanup(&r);
}
END_TEST

START_TEST(test_wrong_type)
{
    struct rsrv r;
    rs_init(&r);
    rs_start(&r, NULL);
    redisContext *admin = rs_conn(&r);
    ck_assert_ptr_nonnull(admin);
    cmd_ok(admin, "SET " KEY " %s", "not-a-stream");
    struct errcap e;
    cap_begin(&e, &r);
    struct pub_opts o = base_opts(&r);
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    enqueue_range(p, 0, 20);
    sleep_ms(1500);
    struct pub_stats s = stats(p);
    cmd_ok(admin, "DEL %s", KEY);
    bool ok = wait_delivered(p, 20, 10000);
    pub_stop(p, 1000);
    pub_free(p);
    const char *err = cap_end(&e);
    ck_assert_uint_eq(s.delivered, 0);
    ck_assert_uint_ge(s.errors, 4);
    ck_assert(ok);
    ck_assert_int_eq(count_lines_with(err, "WRONGTYPE"), 1);
    static int counts[20], order[20];
    ck_assert_int_eq(read_stream(&r, counts, 20, order, 20), 20);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(order[i], i);
    redisFree(admin);
    rs_cleanup(&r);
}
END_TEST

/* ---- 6. the sensor itself killed: its spool is delivered by the next run --------------- */

START_TEST(test_publisher_killed)
{
    enum { N = 300 };
    struct rsrv r;
    rs_init(&r);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(fds[0]);
        struct pub_opts o = base_opts(&r);
        o.queue_max = 10;
        char err[256];
        struct pub *p = pub_new(&o, err, sizeof(err));
        if (!p || pub_start(p) != TW_OK)
            _exit(2);
        char rec[256];
        for (int i = 0; i < N; i++) {
            int n = make_rec(rec, sizeof(rec), i);
            if (pub_enqueue(p, rec, (size_t)n) != TW_OK)
                _exit(3);
        }
        for (int64_t end = now_ms() + 5000; now_ms() < end; sleep_ms(10)) {
            struct pub_stats s;
            pub_get_stats(p, &s);
            if (s.spooled == N)
                break;
        }
        sleep_ms(1500); /* the batch fsync (1 s) has happened */
        if (write(fds[1], "R", 1) != 1)
            _exit(4);
        for (;;)
            pause(); /* killed here, with the publisher thread still running */
    }
    close(fds[1]);
    struct pollfd pf = {fds[0], POLLIN, 0};
    ck_assert_int_eq(poll(&pf, 1, 15000), 1);
    char ch = 0;
    ck_assert_int_eq(read(fds[0], &ch, 1), 1);
    ck_assert_int_eq(ch, 'R');
    close(fds[0]);
    kill(child, SIGKILL);
    int st = 0;
    waitpid(child, &st, 0);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    rs_start(&r, NULL);
    struct pub_opts o = base_opts(&r);
    struct pub *p = new_pub(&o); /* the dead process's lock is gone with it */
    ck_assert_uint_eq(stats(p).spool_records, N);
    ck_assert_int_eq(pub_start(p), TW_OK);
    ck_assert(wait_drained(p, 15000));
    ck_assert_uint_eq(stats(p).delivered, N);
    static int counts[N], order[N];
    ck_assert_int_eq(read_stream(&r, counts, N, order, N), N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(order[i], i);
    pub_stop(p, 1000);
    pub_free(p);
    rs_cleanup(&r);
}
END_TEST

/* ---- restart: records left in memory at stop are spooled and delivered next run -------- */

START_TEST(test_stop_spools_then_restart_in_order)
{
    struct rsrv r;
    rs_init(&r);
    struct pub_opts o = base_opts(&r);
    o.queue_max = 30;
    struct pub *p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    enqueue_range(p, 0, 100); /* 30 fill the queue, then everything goes to the spool */
    sleep_ms(200);
    pub_stop(p, 300); /* Redis down: nothing can be flushed */
    ck_assert_uint_eq(stats(p).spool_records, 100);
    pub_free(p);
    rs_start(&r, NULL);
    p = new_pub(&o);
    ck_assert_int_eq(pub_start(p), TW_OK);
    enqueue_range(p, 100, 150); /* newer than the spool: must come after it */
    ck_assert(wait_drained(p, 15000));
    static int counts[150], order[150];
    ck_assert_int_eq(read_stream(&r, counts, 150, order, 150), 150);
    for (int i = 0; i < 150; i++)
        ck_assert_int_eq(order[i], i);
    pub_stop(p, 1000);
    pub_free(p);
    rs_cleanup(&r);
}
END_TEST

/* ---- modes and heartbeat ---------------------------------------------------------------- */

START_TEST(test_modes_and_heartbeat)
{
    struct rsrv r;
    rs_init(&r);
    rs_start(&r, NULL);
    struct pub_opts o = base_opts(&r);
    o.modes = PUB_MODE_STREAM | PUB_MODE_CHANNEL | PUB_MODE_LIST;
    o.heartbeat_s = 1;
    o.sensor_name = "edge-1";
    struct pub *p = new_pub(&o);
    pub_set_heartbeat(p, "pcap_drops\t5\nflows_active\t7\nbroken line\n");
    ck_assert_int_eq(pub_start(p), TW_OK);
    enqueue_range(p, 0, 10);
    ck_assert(wait_drained(p, 10000));
    struct pub_stats s = stats(p);
    ck_assert_uint_eq(s.delivered, 10);
    ck_assert_uint_eq(s.no_subscribers, 10); /* nobody subscribed to the channel */
    sleep_ms(1300);                          /* at least one heartbeat after delivery */
    redisContext *c = rs_conn(&r);
    ck_assert_ptr_nonnull(c);
    redisReply *rep = redisCommand(c, "LLEN %s", "tunnelwatch:alerts:list");
    ck_assert_int_eq(rep->integer, 10);
    freeReplyObject(rep);
    rep = redisCommand(c, "XLEN %s", KEY);
    ck_assert_int_eq(rep->integer, 10);
    freeReplyObject(rep);
    const char *hk = "tunnelwatch:sensor:edge-1";
    rep = redisCommand(c, "HGET %s pcap_drops", hk);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, "5");
    freeReplyObject(rep);
    rep = redisCommand(c, "HGET %s alerts_delivered", hk);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(rep->str, "10");
    freeReplyObject(rep);
    rep = redisCommand(c, "HGET %s redis_connected", hk);
    ck_assert_str_eq(rep->str, "1");
    freeReplyObject(rep);
    rep = redisCommand(c, "TTL %s", hk);
    ck_assert_int_ge(rep->integer, 1);
    ck_assert_int_le(rep->integer, 3);
    freeReplyObject(rep);
    redisFree(c);
    pub_stop(p, 1000);
    pub_free(p);
    rs_cleanup(&r);
}
END_TEST

/* ---- options from the configuration (no server needed) --------------------------------- */

static void set_ok(struct tw_cfg *cfg, const char *assignment)
{
    ck_assert_msg(cfg_set(cfg, assignment, stderr) == 0, "--set %s refused", assignment);
}

START_TEST(test_opts_from_cfg)
{
    struct tw_cfg cfg;
    cfg_defaults(&cfg);
    const char *sets[] = {"redis.url=unix:///tmp/tw-none.sock?db=3",
                          "redis.user=soc",
                          "redis.password=from-file",
                          "redis.modes=stream,list",
                          "redis.stream_key=s:alerts",
                          "redis.channel_key=c:alerts",
                          "redis.list_key=l:alerts",
                          "redis.heartbeat_prefix=hb:",
                          "redis.stream_maxlen=500",
                          "redis.queue_max=77",
                          "redis.spool.dir=/var/spool/tw-test",
                          "redis.spool.max_mib=3",
                          "redis.timeout_ms=1500",
                          "redis.heartbeat_s=7",
                          "sensor.name=edge-9"};
    for (size_t i = 0; i < TW_ARRAY_LEN(sets); i++)
        set_ok(&cfg, sets[i]);
    struct pub_opts po;
    memset(&po, 0xa5, sizeof(po)); /* every field not taken from cfg must come back 0 */
    ck_assert_int_eq(pub_opts_from_cfg(&cfg, &po), TW_OK);
    ck_assert_str_eq(po.url, "unix:///tmp/tw-none.sock?db=3");
    ck_assert_str_eq(po.user, "soc");
    ck_assert_str_eq(po.password, "from-file");
    ck_assert_uint_eq(po.modes, PUB_MODE_STREAM | PUB_MODE_LIST);
    ck_assert_str_eq(po.stream_key, "s:alerts");
    ck_assert_str_eq(po.channel_key, "c:alerts");
    ck_assert_str_eq(po.list_key, "l:alerts");
    ck_assert_str_eq(po.heartbeat_prefix, "hb:");
    ck_assert_int_eq(po.stream_maxlen, 500);
    ck_assert_uint_eq(po.queue_max, 77);
    ck_assert_str_eq(po.spool_dir, "/var/spool/tw-test");
    ck_assert_uint_eq(po.spool_max_bytes, 3u << 20);
    ck_assert_int_eq(po.timeout_ms, 1500);
    ck_assert_int_eq(po.heartbeat_s, 7);
    ck_assert_str_eq(po.sensor_name, "edge-9");
    ck_assert_int_eq(po.batch, 0);
    ck_assert_int_eq(po.backoff_min_ms, 0);
    ck_assert_int_eq(po.backoff_max_ms, 0);
    ck_assert_uint_eq(po.spool_segment_bytes, 0);
    ck_assert_uint_eq(po.spill_max, 0);

    /* redis.password_env: the configuration copies the variable when the key is set; the
     * variable as it is when the options are made wins, and once it is gone the copy stays */
    ck_assert_int_eq(setenv("TW_TEST_PUB_PASSWORD", "from-env", 1), 0);
    set_ok(&cfg, "redis.password_env=TW_TEST_PUB_PASSWORD");
    ck_assert_str_eq(cfg.redis.password, "from-env");
    ck_assert_int_eq(setenv("TW_TEST_PUB_PASSWORD", "rotated", 1), 0);
    ck_assert_int_eq(pub_opts_from_cfg(&cfg, &po), TW_OK);
    ck_assert_str_eq(po.password, "rotated");
    ck_assert_int_eq(unsetenv("TW_TEST_PUB_PASSWORD"), 0);
    ck_assert_int_eq(pub_opts_from_cfg(&cfg, &po), TW_OK);
    ck_assert_str_eq(po.password, "from-env");

    /* an empty spool dir means no spool; the other two modes map to their bits */
    set_ok(&cfg, "redis.spool.dir=");
    set_ok(&cfg, "redis.modes=channel");
    ck_assert_int_eq(pub_opts_from_cfg(&cfg, &po), TW_OK);
    ck_assert_ptr_null(po.spool_dir);
    ck_assert_uint_eq(po.modes, PUB_MODE_CHANNEL);

    /* the defaults of a fresh configuration give options pub_new accepts as they are */
    struct tw_cfg dflt;
    cfg_defaults(&dflt);
    ck_assert_int_eq(pub_opts_from_cfg(&dflt, &po), TW_OK);
    ck_assert_str_eq(po.url, dflt.redis.url);
    ck_assert_uint_eq(po.modes, PUB_MODE_STREAM | PUB_MODE_CHANNEL);
    po.spool_dir = NULL; /* the default /var/spool path is not ours to create here */
    char err[256] = "";
    struct pub *p = pub_new(&po, err, sizeof(err));
    ck_assert_msg(p != NULL, "pub_new: %s", err);
    pub_free(p);
    cfg_free(&dflt);

    ck_assert_int_eq(pub_opts_from_cfg(NULL, &po), TW_EBAD);
    ck_assert_int_eq(pub_opts_from_cfg(&cfg, NULL), TW_EBAD);
    cfg_free(&cfg);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("publish");
    TCase *u = tcase_create("url");
    tcase_add_test(u, test_url);
    tcase_add_test(u, test_new_validates);
    tcase_add_test(u, test_opts_from_cfg);
    suite_add_tcase(s, u);
    /* decided here, in the parent: a test's own skip could not change the exit status */
    if (!have_redis()) {
        tw_skip_partly("redis-server not found: the Redis tests did not run");
        return s;
    }
    TCase *tc = tcase_create("redis");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_absent_then_started_queue);
    tcase_add_test(tc, test_absent_then_started_spool);
    tcase_add_test(tc, test_redis_killed);
    tcase_add_test(tc, test_redis_paused);
    tcase_add_test(tc, test_spool_cap);
    tcase_add_test(tc, test_wrong_password);
    tcase_add_test(tc, test_wrong_db);
    tcase_add_test(tc, test_wrong_type);
    tcase_add_test(tc, test_publisher_killed);
    tcase_add_test(tc, test_stop_spools_then_restart_in_order);
    tcase_add_test(tc, test_modes_and_heartbeat);
    suite_add_tcase(s, tc);
    return s;
}
