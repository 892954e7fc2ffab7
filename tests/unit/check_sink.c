/* check_sink.c - unit tests for the alerts file's writer (sink.c), on real files, FIFOs and
 * pipes: lossless order without torn lines from several threads, a FIFO without a reader
 * (open does not block, the queue caps, a late reader gets whole lines), a stalled reader
 * (puts never wait, the exit deadline holds), a reader that goes away (counted, said once, a
 * new reader gets whole lines), a full disk, a closed standard output, and SIGHUP's reopen. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tunnelwatch/sink.h"
#include "tw_check.h"

static char dir[64], path[128];

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the sensor does from the start */
    snprintf(dir, sizeof(dir), "/tmp/tw_sink.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/alerts", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sink *open_sink(const char *p, size_t cap, bool lossless, FILE *log)
{
    char err[256];
    struct sink_opts o = {p, cap, lossless, log};
    struct sink *s = sink_open(&o, err, sizeof(err));
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(sink_start(s), TW_OK);
    return s;
}

/* A record of thread t, number i: its length varies, its content says who and which. */
static size_t record(char *b, size_t n, int t, int i)
{
    int pad = (i * 37 + t * 11) % 900;
    int k = snprintf(b, n, "{\"t\":%d,\"i\":%d,\"pad\":\"%*s\"}", t, i, pad, "");
    return (size_t)k;
}

/* Every line of buf is whole and thread t's numbers rise (by one when strict) from next[t]
 * (any first number when next[t] < 0); returns the number of lines. */
static int check_lines_(const char *buf, size_t len, int threads, int *next, bool strict)
{
    int n = 0;
    for (const char *p = buf, *e = buf + len; p < e; n++) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        ck_assert_msg(nl != NULL, "a torn last line");
        int t, i;
        ck_assert_int_eq(sscanf(p, "{\"t\":%d,\"i\":%d,", &t, &i), 2);
        ck_assert(t >= 0 && t < threads);
        char want[1024];
        size_t wl = record(want, sizeof(want), t, i);
        ck_assert_msg(wl == (size_t)(nl - p) && memcmp(want, p, wl) == 0, "torn line %d", n);
        if (next[t] >= 0 && strict)
            ck_assert_int_eq(i, next[t]);
        ck_assert_int_ge(i, next[t]);
        next[t] = i + 1;
        p = nl + 1;
    }
    return n;
}

static int check_lines(const char *buf, size_t len, int threads, int *next)
{
    return check_lines_(buf, len, threads, next, true);
}

struct producer {
    struct sink *s;
    int t, n, refused;
};

static void *produce(void *arg)
{
    struct producer *pr = arg;
    char b[1024];
    for (int i = 0; i < pr->n; i++)
        if (sink_put(pr->s, b, record(b, sizeof(b), pr->t, i)) != TW_OK)
            pr->refused++;
    return NULL;
}

START_TEST(lossless_threads_in_order)
{
    /* 4 threads, 64 KiB of queue for about 4 MB of records: the writer falls behind often */
    struct sink *s = open_sink(path, 64 * 1024, true, stderr);
    struct producer pr[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        pr[t] = (struct producer){s, t, 2000, 0};
        pthread_create(&th[t], NULL, produce, &pr[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(pr[t].refused, 0);
    }
    sink_close(s);
    struct sink_stats st;
    sink_get_stats(s, &st);
    ck_assert_uint_eq(st.records, 8000);
    ck_assert_uint_eq(st.dropped + st.output_errors, 0);
    sink_free(s);
    size_t len;
    char *buf = (char *)tw_read_file(path, &len);
    int next[4] = {0, 0, 0, 0};
    ck_assert_int_eq(check_lines(buf, len, 4, next), 8000);
    for (int t = 0; t < 4; t++)
        ck_assert_int_eq(next[t], 2000);
    free(buf);
}
END_TEST

/* Reads what is there now from a non-blocking descriptor, for up to secs. */
static size_t drain(int fd, char *buf, size_t cap, double secs)
{
    size_t n = 0;
    double end = now_s() + secs;
    while (now_s() < end && n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r > 0)
            n += (size_t)r;
        else
            usleep(10000);
    }
    return n;
}

START_TEST(fifo_without_reader)
{
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    double t0 = now_s();
    struct sink *s = open_sink(path, 64 * 1024, true, stderr); /* lossless is ignored */
    ck_assert(now_s() - t0 < 1.0);
    char b[1024];
    int ok = 0, refused = 0;
    for (int i = 0; i < 1000; i++) /* ~0.5 MB against a 64 KiB queue */
        *(sink_put(s, b, record(b, sizeof(b), 0, i)) == TW_OK ? &ok : &refused) += 1;
    ck_assert(now_s() - t0 < 2.0); /* never waited */
    ck_assert_int_gt(ok, 50);
    ck_assert_int_gt(refused, 0);
    struct sink_stats st;
    sink_get_stats(s, &st);
    ck_assert_uint_eq(st.dropped, (uint64_t)refused);
    ck_assert(!st.connected);
    /* a reader comes: the queued records arrive whole, the first ones first */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(fd, 0);
    static char in[1 << 20];
    size_t n = drain(fd, in, sizeof(in), 1.5);
    int next[1] = {0};
    /* a shorter record may fit where a longer one just did not: numbers rise, with gaps */
    ck_assert_int_eq(check_lines_(in, n, 1, next, false), ok);
    sink_close(s);
    sink_free(s);
    close(fd);
}
END_TEST

START_TEST(fifo_stalled_reader)
{
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    int fd = open(path, O_RDONLY | O_NONBLOCK); /* opens, never reads */
    ck_assert_int_ge(fd, 0);
    struct sink *s = open_sink(path, 64 * 1024, false, stderr);
    char b[1024];
    double t0 = now_s();
    for (int i = 0; i < 20000; i++)
        (void)sink_put(s, b, record(b, sizeof(b), 0, i));
    ck_assert_msg(now_s() - t0 < 2.0, "sink_put waited on a stalled reader");
    struct sink_stats st;
    sink_get_stats(s, &st);
    ck_assert_uint_gt(st.dropped, 10000);
    uint64_t before = st.dropped;
    t0 = now_s();
    sink_stop(s, 300);
    sink_close(s);
    double took = now_s() - t0;
    ck_assert_msg(took >= 0.25 && took < 0.8, "close took %.2f s for a 300 ms deadline", took);
    sink_get_stats(s, &st);
    ck_assert_uint_eq(st.queued_bytes, 0);
    ck_assert_uint_gt(st.dropped, before); /* what was still queued at the deadline */
    sink_free(s);
    close(fd);
}
END_TEST

static FILE *log_open(char **buf, size_t *len)
{
    FILE *f = open_memstream(buf, len);
    ck_assert_ptr_nonnull(f);
    return f;
}

static int count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

START_TEST(fifo_reader_goes_away)
{
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    char *lb = NULL;
    size_t ll = 0;
    FILE *log = log_open(&lb, &ll);
    struct sink *s = open_sink(path, 64 * 1024, false, log);
    char b[1024];
    static char in[1 << 20];
    int i = 0;
    for (; i < 10; i++)
        ck_assert_int_eq(sink_put(s, b, record(b, sizeof(b), 0, i)), TW_OK);
    int next[1] = {0};
    ck_assert_int_eq(check_lines(in, drain(fd, in, sizeof(in), 0.5), 1, next), 10);
    close(fd); /* the reader exits */
    for (; i < 20; i++) {
        ck_assert_int_eq(sink_put(s, b, record(b, sizeof(b), 0, i)), TW_OK);
        usleep(20000);
    }
    struct sink_stats st;
    sink_get_stats(s, &st);
    ck_assert_uint_ge(st.output_errors, 1);
    /* a new reader: whole lines again, numbered on from where the losses stopped */
    fd = open(path, O_RDONLY | O_NONBLOCK);
    usleep(300000); /* the writer finds the reader within its retry period */
    for (; i < 30; i++)
        ck_assert_int_eq(sink_put(s, b, record(b, sizeof(b), 0, i)), TW_OK);
    next[0] = -1;
    int got = check_lines(in, drain(fd, in, sizeof(in), 1.0), 1, next);
    ck_assert_int_ge(got, 10);
    ck_assert_int_eq(next[0], 30);
    sink_close(s);
    sink_get_stats(s, &st);
    ck_assert_uint_eq(st.records, 30);
    ck_assert_uint_eq((uint64_t)(10 + got) + st.output_errors + st.dropped, 30);
    sink_free(s);
    fclose(log);
    ck_assert_int_eq(count_str(lb, "the reader went away"), 1);
    free(lb);
    close(fd);
}
END_TEST

START_TEST(full_disk)
{
    char *lb = NULL;
    size_t ll = 0;
    FILE *log = log_open(&lb, &ll);
    struct sink *s = open_sink("/dev/full", 64 * 1024, true, log);
    char b[1024];
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(sink_put(s, b, record(b, sizeof(b), 0, i)), TW_OK);
    sink_close(s);
    struct sink_stats st;
    sink_get_stats(s, &st);
    ck_assert_uint_eq(st.output_errors, 50);
    sink_free(s);
    fclose(log);
    ck_assert_int_eq(count_str(lb, "No space left"), 1);
    free(lb);
}
END_TEST

START_TEST(closed_stdout)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    ck_assert_int_eq(dup2(p[1], STDOUT_FILENO), STDOUT_FILENO); /* this test's own process */
    char *lb = NULL;
    size_t ll = 0;
    FILE *log = log_open(&lb, &ll);
    struct sink *s = open_sink("-", 64 * 1024, true, log);
    char b[1024];
    for (int i = 0; i < 5; i++)
        (void)sink_put(s, b, record(b, sizeof(b), 0, i));
    sink_close(s);
    struct sink_stats st;
    sink_get_stats(s, &st);
    ck_assert_uint_eq(st.output_errors, 5);
    sink_free(s);
    fclose(log);
    ck_assert_int_eq(count_str(lb, "Broken pipe"), 1);
    free(lb);
}
END_TEST

START_TEST(reopen_after_rename)
{
    struct sink *s = open_sink(path, 64 * 1024, true, stderr);
    char b[1024], old[160];
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(sink_put(s, b, record(b, sizeof(b), 0, i)), TW_OK);
    snprintf(old, sizeof(old), "%s.1", path);
    ck_assert_int_eq(rename(path, old), 0); /* logrotate, then SIGHUP */
    sink_reopen(s);
    for (int i = 100; i < 200; i++)
        ck_assert_int_eq(sink_put(s, b, record(b, sizeof(b), 0, i)), TW_OK);
    sink_close(s);
    sink_free(s);
    size_t l1, l2;
    char *b1 = (char *)tw_read_file(old, &l1), *b2 = (char *)tw_read_file(path, &l2);
    ck_assert(b1 && b2);
    int next[1] = {0};
    ck_assert_int_eq(check_lines(b1, l1, 1, next), 100); /* queued before: the old file */
    ck_assert_int_eq(check_lines(b2, l2, 1, next), 100);
    free(b1);
    free(b2);
}
END_TEST

START_TEST(record_longer_than_queue)
{
    struct sink *s = open_sink(path, 1024, true, NULL);
    static char big[4096];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(sink_put(s, big, sizeof(big)), TW_ELIMIT); /* refused, never waits */
    ck_assert_int_eq(sink_put(s, "{}", 2), TW_OK);
    sink_close(s);
    struct sink_stats st;
    sink_get_stats(s, &st);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.records, 1);
    sink_free(s);
    size_t len;
    char *buf = (char *)tw_read_file(path, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(buf, "{}\n", 3) == 0);
    free(buf);
}
END_TEST

START_TEST(open_errors)
{
    char err[256];
    struct sink_opts o = {"/nonexistent-dir/alerts", 4096, false, NULL};
    ck_assert_ptr_null(sink_open(&o, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("sink");
    TCase *tc = tcase_create("sink");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, lossless_threads_in_order);
    tcase_add_test(tc, fifo_without_reader);
    tcase_add_test(tc, fifo_stalled_reader);
    tcase_add_test(tc, fifo_reader_goes_away);
    tcase_add_test(tc, full_disk);
    tcase_add_test(tc, closed_stdout);
    tcase_add_test(tc, reopen_after_rename);
    tcase_add_test(tc, record_longer_than_queue);
    tcase_add_test(tc, open_errors);
    suite_add_tcase(s, tc);
    return s;
}
