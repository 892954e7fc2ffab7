/* check_evidence.c - unit tests for the incident pcap writer (evw.c) and a capture thread's
 * part (evflow.c), on real files: one pcap per incident with the packets' own bytes and
 * timestamps in order from two threads, the directory bound (oldest incident first, an
 * earlier run's files included, an incident alone over the bound), the queue cap, a write
 * error counted and said once, the early buffer's caps and budget, the per-flow cap, the DNS
 * store once per incident, and the Redis copy cut at a packet boundary; --write-evidence's
 * merge (evw_merge, evidence_merge): this run's incident files only, in time order, a packet
 * two incidents hold once, a repeat the capture has kept, another link type and a missing
 * file counted; a replay's writer that waits rather than drop. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tunnelwatch/evidence.h"
#include "tw_check.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tw_evidence.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static struct evw *writer(uint64_t max_total, size_t queue)
{
    struct evw_opts o;
    char err[256];
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.max_total_bytes = max_total;
    o.queue_bytes = queue;
    o.log = stderr;
    struct evw *w = evw_new(&o, err, sizeof(err));
    ck_assert_msg(w != NULL, "%s", err);
    return w;
}

/* Packet i of a stream: caplen 60 + i % 50, bytes derived from (tag, i), ts 1000 + i. */
static void pkt(int tag, int i, struct pcap_pkthdr *h, uint8_t *d)
{
    h->ts.tv_sec = 1000 + i;
    h->ts.tv_usec = tag * 1000 + i % 1000;
    h->caplen = 60 + (uint32_t)(i % 50);
    h->len = h->caplen + 4;
    for (uint32_t k = 0; k < h->caplen; k++)
        d[k] = (uint8_t)(tag * 31 + i * 7 + k);
}

/* Checks file path holds packets first..first+n-1 of tag in order; returns its size. */
static long check_file(const char *id, int tag, int first, int n)
{
    char path[256], err[PCAP_ERRBUF_SIZE];
    snprintf(path, sizeof(path), "%s/%s.pcap", dir, id);
    pcap_t *p = pcap_open_offline(path, err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(pcap_datalink(p), DLT_EN10MB);
    struct pcap_pkthdr *h, want;
    const u_char *d;
    uint8_t wd[128];
    int i = first;
    while (pcap_next_ex(p, &h, &d) == 1) {
        pkt(tag, i, &want, wd);
        ck_assert_int_eq(h->caplen, want.caplen);
        ck_assert_int_eq(h->len, want.len);
        ck_assert_int_eq(h->ts.tv_sec, want.ts.tv_sec);
        ck_assert_int_eq(h->ts.tv_usec, want.ts.tv_usec);
        ck_assert(memcmp(d, wd, h->caplen) == 0);
        i++;
    }
    pcap_close(p);
    ck_assert_int_eq(i, first + n);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

struct feeder {
    struct evw *w;
    int tag, n;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    char id[40];
    snprintf(id, sizeof(id), "inc-%d", f->tag);
    for (int i = 0; i < f->n; i++) {
        struct pcap_pkthdr h;
        uint8_t d[128];
        pkt(f->tag, i, &h, d);
        ck_assert_int_eq(evw_put(f->w, id, DLT_EN10MB, &h, d), TW_OK);
    }
    return NULL;
}

START_TEST(two_threads_two_incidents)
{
    struct evw *w = writer(1 << 30, 1 << 24);
    ck_assert_int_eq(evw_start(w), TW_OK);
    struct feeder f[2] = {{w, 1, 3000}, {w, 2, 2000}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, feed, &f[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    evw_stop(w);
    long s1 = check_file("inc-1", 1, 0, 3000);
    check_file("inc-2", 2, 0, 2000);
    char path[256], key[64];
    uint64_t bytes, pkts;
    ck_assert(evw_info(w, "inc-1", path, sizeof(path), &bytes, &pkts, key, sizeof(key)));
    ck_assert_uint_eq(bytes, (uint64_t)s1);
    ck_assert_uint_eq(pkts, 3000);
    ck_assert_str_eq(key, "");
    ck_assert(!evw_info(w, "inc-3", path, sizeof(path), &bytes, &pkts, key, sizeof(key)));
    struct evw_stats st;
    evw_get_stats(w, &st);
    ck_assert_uint_eq(st.packets, 5000);
    ck_assert_uint_eq(st.files, 2);
    ck_assert_uint_eq(st.removed + st.dropped_queue + st.dropped_disk + st.write_errors, 0);
    evw_free(w);
}
END_TEST

static uint64_t dir_bytes(int *files)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "find '%s' -name '*.pcap' -printf '%%s\\n'", dir);
    FILE *f = popen(cmd, "r");
    uint64_t total = 0, n;
    *files = 0;
    while (fscanf(f, "%lu", &n) == 1) {
        total += n;
        (*files)++;
    }
    pclose(f);
    return total;
}

/* Ten incidents of about 8 KB each, one after another, in a 30000-byte directory; a file
 * an earlier run left goes first. */
START_TEST(oldest_incident_goes_first)
{
    char old[128];
    snprintf(old, sizeof(old), "%s/earlier.pcap", dir);
    FILE *f = fopen(old, "w");
    ck_assert_int_eq(fputs("0123456789", f) >= 0, 1);
    fclose(f);
    struct evw *w = writer(30000, 1 << 24);
    ck_assert_int_eq(evw_start(w), TW_OK);
    for (int t = 1; t <= 10; t++) {
        struct feeder fd = {w, t, 80};
        feed(&fd);
        usleep(20000);
    }
    evw_stop(w);
    int files;
    uint64_t total = dir_bytes(&files);
    ck_assert_uint_le(total, 30000);
    ck_assert_int_eq(access(old, F_OK), -1);
    ck_assert_int_ge(files, 3);
    check_file("inc-10", 10, 0, 80); /* the newest stays whole */
    ck_assert_int_eq(access("inc-1.pcap", F_OK), -1);
    struct evw_stats st;
    evw_get_stats(w, &st);
    ck_assert_uint_eq(st.removed, (uint64_t)(11 - files));
    ck_assert_uint_eq(st.dir_bytes, total);
    evw_free(w);
}
END_TEST

/* One incident alone larger than the directory: its packets past the bound are dropped. */
START_TEST(incident_over_the_bound)
{
    struct evw *w = writer(5000, 1 << 24);
    ck_assert_int_eq(evw_start(w), TW_OK);
    struct feeder fd = {w, 1, 200};
    feed(&fd);
    evw_stop(w);
    int files;
    ck_assert_uint_le(dir_bytes(&files), 5000);
    struct evw_stats st;
    evw_get_stats(w, &st);
    ck_assert_uint_gt(st.dropped_disk, 0);
    ck_assert_uint_eq(st.packets + st.dropped_disk, 200);
    check_file("inc-1", 1, 0, (int)st.packets); /* a prefix, whole packets */
    evw_free(w);
}
END_TEST

START_TEST(queue_cap)
{
    struct evw *w = writer(1 << 30, 4096); /* not started: nothing leaves the queue */
    struct pcap_pkthdr h;
    uint8_t d[128];
    int ok = 0;
    for (int i = 0; i < 100; i++) {
        pkt(1, i, &h, d);
        ok += evw_put(w, "q", DLT_EN10MB, &h, d) == TW_OK;
    }
    struct evw_stats st;
    evw_get_stats(w, &st);
    ck_assert_int_gt(ok, 0);
    ck_assert_int_lt(ok, 100);
    ck_assert_uint_eq(st.dropped_queue, (uint64_t)(100 - ok));
    ck_assert_uint_le(st.queued_bytes, 4096);
    evw_free(w);
}
END_TEST

/* A file that cannot be created (a directory in its place): counted, said once. */
START_TEST(write_error_counted)
{
    char bad[128];
    snprintf(bad, sizeof(bad), "%s/inc-1.pcap", dir);
    ck_assert_int_eq(mkdir(bad, 0700), 0);
    struct evw *w = writer(1 << 30, 1 << 24);
    ck_assert_int_eq(evw_start(w), TW_OK);
    struct feeder fd = {w, 1, 50};
    feed(&fd);
    evw_stop(w);
    struct evw_stats st;
    evw_get_stats(w, &st);
    ck_assert_uint_eq(st.write_errors, 50);
    ck_assert_uint_eq(st.packets, 0);
    evw_free(w);
}
END_TEST

/* Early buffer: at most 3 packets kept before the flag; later packets follow the flag; the
 * flow cap stops the rest; a decided flow's buffer is kept as one spare, the flagged flow's freed.
 */
START_TEST(early_packets_and_caps)
{
    struct evw *w = writer(1 << 30, 1 << 24);
    ck_assert_int_eq(evw_start(w), TW_OK);
    struct evpool_opts po = {3, 1 << 16, 1 << 20, 10 * (16 + 100)};
    struct evpool *p = evpool_new(w, &po);
    evpool_set_dlt(p, DLT_EN10MB);
    struct evflow *a = NULL, *b = NULL;
    struct pcap_pkthdr h;
    uint8_t d[128];
    for (int i = 0; i < 5; i++) { /* 3 kept, 2 over the early cap */
        pkt(1, i, &h, d);
        evflow_packet(p, &a, &h, d);
        evflow_packet(p, &b, &h, d);
    }
    struct evpool_stats ps;
    evpool_get_stats(p, &ps);
    ck_assert_uint_eq(ps.early_overflow, 4);
    ck_assert_uint_gt(ps.early_bytes, 0);
    evflow_decided(p, &b);
    evflow_packet(p, &b, &h, d); /* decided: ignored */
    evflow_flag(p, &a, "inc-1", NULL, 0);
    ck_assert(evflow_flagged(a));
    for (int i = 5; i < 20; i++) {
        pkt(1, i, &h, d);
        evflow_packet(p, &a, &h, d);
    }
    evpool_get_stats(p, &ps);
    ck_assert_uint_eq(ps.early_bytes, 2048); /* b's buffer only, a spare for the next flow */
    ck_assert_uint_gt(ps.flow_capped, 0);
    evflow_end(p, &a);
    evflow_end(p, &b);
    ck_assert_ptr_null(a);
    evw_stop(w);
    char path[256], key[8];
    uint64_t bytes, pkts;
    ck_assert(evw_info(w, "inc-1", path, sizeof(path), &bytes, &pkts, key, sizeof(key)));
    ck_assert_uint_eq(pkts + ps.flow_capped, 3 + 15);
    ck_assert_uint_le(bytes - 24, po.max_flow_bytes);
    ck_assert_uint_gt(bytes - 24 + 16 + 100, po.max_flow_bytes);
    evpool_free(p);
    evw_free(w);
}
END_TEST

/* The DNS packets that named an address reach each incident once, in capture order. */
START_TEST(dns_once_per_incident)
{
    struct evw *w = writer(1 << 30, 1 << 24);
    ck_assert_int_eq(evw_start(w), TW_OK);
    struct tw_addr srv = {0};
    srv.family = 4;
    srv.a[15] = 7;
    struct pcap_pkthdr qh, ah;
    uint8_t q[128], a[128];
    pkt(1, 0, &qh, q);
    pkt(1, 1, &ah, a);
    evw_dns_keep(w, &srv, DLT_EN10MB, &qh, q, &ah, a);
    evw_dns_keep(w, &srv, DLT_EN10MB, &qh, q, &ah, a); /* the same answer again: kept once */
    evw_dns_attach(w, "inc-1", &srv, 5000000000LL);
    evw_dns_attach(w, "inc-1", &srv, 5000000000LL);
    evw_stop(w);
    check_file("inc-1", 1, 0, 2);
    evw_free(w);
}
END_TEST

static uint8_t *copy_blob;
static size_t copy_n;
static char copy_key[64];

static bool put_copy(void *ud, const char *key, const uint8_t *blob, size_t n, uint32_t ttl)
{
    (void)ud;
    ck_assert_uint_eq(ttl, 60);
    free(copy_blob);
    copy_blob = malloc(n);
    memcpy(copy_blob, blob, n);
    copy_n = n;
    snprintf(copy_key, sizeof(copy_key), "%s", key);
    return true;
}

/* The Redis copy: a whole pcap (header and whole packets) of at most redis_max_bytes. */
START_TEST(redis_copy_whole_packets)
{
    struct evw_opts o;
    char err[256];
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.max_total_bytes = 1 << 30;
    o.queue_bytes = 1 << 24;
    o.redis_max_bytes = 1000;
    o.redis_prefix = "tw:ev:";
    o.redis_ttl_s = 60;
    o.redis_put = put_copy;
    struct evw *w = evw_new(&o, err, sizeof(err));
    ck_assert_int_eq(evw_start(w), TW_OK);
    struct feeder fd = {w, 1, 40};
    feed(&fd);
    evw_sync(w, "inc-1");
    evw_stop(w);
    ck_assert_str_eq(copy_key, "tw:ev:inc-1");
    ck_assert_uint_le(copy_n, 1000);
    size_t off = 24;
    int i = 0;
    while (off < copy_n) {
        struct pcap_pkthdr want;
        uint8_t wd[128];
        uint32_t incl;
        pkt(1, i++, &want, wd);
        memcpy(&incl, copy_blob + off + 8, 4);
        ck_assert_uint_eq(incl, want.caplen);
        ck_assert(memcmp(copy_blob + off + 16, wd, incl) == 0);
        off += 16 + incl;
    }
    ck_assert_uint_eq(off, copy_n);
    ck_assert_int_gt(i, 5);
    char path[256], key[64];
    uint64_t bytes, pkts;
    ck_assert(evw_info(w, "inc-1", path, sizeof(path), &bytes, &pkts, key, sizeof(key)));
    ck_assert_str_eq(key, "tw:ev:inc-1");
    struct evw_stats st;
    evw_get_stats(w, &st);
    ck_assert_uint_ge(st.redis_copies, 1);
    evw_free(w);
    free(copy_blob);
}
END_TEST

static void put1(struct evw *w, const char *id, int tag, int i)
{
    struct pcap_pkthdr h;
    uint8_t d[128];
    pkt(tag, i, &h, d);
    ck_assert_int_eq(evw_put(w, id, DLT_EN10MB, &h, d), TW_OK);
}

/* A pcap at path of link type dlt with packets first..first+n-1 of tag. */
static void make_pcap(const char *path, int dlt, int tag, int first, int n)
{
    pcap_t *dead = pcap_open_dead(dlt, 262144);
    pcap_dumper_t *dump = pcap_dump_open(dead, path);
    ck_assert_ptr_nonnull(dump);
    for (int i = first; i < first + n; i++) {
        struct pcap_pkthdr h;
        uint8_t d[128];
        pkt(tag, i, &h, d);
        pcap_dump((u_char *)dump, &h, d);
    }
    pcap_dump_close(dump);
    pcap_close(dead);
}

/* How often packet i of tag is in the pcap at path; *total gets its packet count, and the
 * timestamps must not go back. */
static int count_in(const char *path, int tag, int i, int *total)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, err);
    ck_assert_msg(p != NULL, "%s", err);
    ck_assert_int_eq(pcap_datalink(p), DLT_EN10MB);
    struct pcap_pkthdr *h, want;
    const u_char *d;
    uint8_t wd[128];
    struct timeval last = {0, 0};
    int n = 0;
    pkt(tag, i, &want, wd);
    *total = 0;
    while (pcap_next_ex(p, &h, &d) == 1) {
        ck_assert(!timercmp(&h->ts, &last, <));
        last = h->ts;
        (*total)++;
        n += h->caplen == want.caplen && !timercmp(&h->ts, &want.ts, !=) &&
             !memcmp(d, wd, want.caplen);
    }
    pcap_close(p);
    return n;
}

/* --write-evidence: the union of this run's incident pcaps (an earlier run's file in the
 * directory stays out), in time order; the packet both incidents hold once, the packet the
 * capture itself repeats twice. */
START_TEST(merge_this_runs_incidents)
{
    char path[128], out[128], err[512];
    snprintf(path, sizeof(path), "%s/old-run.pcap", dir);
    make_pcap(path, DLT_EN10MB, 9, 0, 3);
    struct evw *w = writer(1 << 30, 1 << 24);
    ck_assert_int_eq(evw_start(w), TW_OK);
    for (int i = 0; i < 10; i++) {
        put1(w, "inc-1", 1, i);
        put1(w, "inc-2", 2, i);
    }
    put1(w, "inc-2", 1, 3); /* the DNS packet both incidents hold */
    put1(w, "inc-2", 2, 5); /* a repeat in the capture */
    evw_stop(w);
    snprintf(out, sizeof(out), "%s/merged.out", dir);
    ck_assert_int_eq(evw_merge(w, out, err, sizeof(err)), 21);
    ck_assert_msg(strstr(err, "21 packets of 2 incidents") && strstr(err, "(1 two incidents held"),
                  "%s", err);
    ck_assert_msg(!strstr(err, "lost"), "%s", err);
    int total;
    ck_assert_int_eq(count_in(out, 1, 3, &total), 1);
    ck_assert_int_eq(total, 21);
    ck_assert_int_eq(count_in(out, 2, 5, &total), 2);
    ck_assert_int_eq(count_in(out, 9, 0, &total), 0);
    ck_assert_int_eq(count_in(out, 1, 9, &total), 1);
    evw_free(w);
}
END_TEST

/* Another link type than the first file's and a file that cannot be read: counted, left out;
 * no readable file: nothing written. */
START_TEST(merge_link_type_and_missing)
{
    char a[128], b[128], missing[128], out[128], err[512];
    snprintf(a, sizeof(a), "%s/a.pcap", dir);
    snprintf(b, sizeof(b), "%s/b.pcap", dir);
    snprintf(missing, sizeof(missing), "%s/missing.pcap", dir);
    snprintf(out, sizeof(out), "%s/merged.out", dir);
    make_pcap(a, DLT_EN10MB, 1, 0, 2);
    make_pcap(b, DLT_RAW, 2, 0, 3);
    const char *paths[] = {a, missing, b};
    struct evidence_merge_stats st;
    ck_assert_int_eq(evidence_merge(paths, 3, out, &st, err, sizeof(err)), TW_OK);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(st.packets, 2);
    ck_assert_uint_eq(st.other_dlt, 3);
    ck_assert_uint_eq(st.unreadable, 1);
    int total;
    ck_assert_int_eq(count_in(out, 1, 1, &total), 1);
    ck_assert_int_eq(total, 2);
    ck_assert_int_eq(unlink(out), 0);
    ck_assert_int_eq(evidence_merge(paths + 1, 1, out, &st, err, sizeof(err)), TW_OK);
    ck_assert_msg(strstr(err, "not written") != NULL, "%s", err);
    ck_assert_int_ne(access(out, F_OK), 0);
}
END_TEST

/* A replay's writer (wait): a queue far smaller than the packets loses none. */
START_TEST(replay_waits_for_room)
{
    struct evw_opts o;
    char err[256];
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.max_total_bytes = 1 << 30;
    o.queue_bytes = 2048;
    o.wait = true;
    o.unnamed = true;
    struct evw *w = evw_new(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(evw_start(w), TW_OK);
    struct feeder fd = {w, 1, 500};
    feed(&fd);
    evw_stop(w);
    struct evw_stats st;
    evw_get_stats(w, &st);
    ck_assert_uint_eq(st.dropped_queue, 0);
    ck_assert_uint_eq(st.packets, 500);
    check_file("inc-1", 1, 0, 500);
    char path[256], key[64];
    uint64_t bytes, pkts;
    ck_assert(!evw_info(w, "inc-1", path, sizeof(path), &bytes, &pkts, key, sizeof(key)));
    evw_free(w);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("evidence");
    TCase *tc = tcase_create("evw");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, two_threads_two_incidents);
    tcase_add_test(tc, oldest_incident_goes_first);
    tcase_add_test(tc, incident_over_the_bound);
    tcase_add_test(tc, queue_cap);
    tcase_add_test(tc, write_error_counted);
    tcase_add_test(tc, early_packets_and_caps);
    tcase_add_test(tc, dns_once_per_incident);
    tcase_add_test(tc, redis_copy_whole_packets);
    tcase_add_test(tc, merge_this_runs_incidents);
    tcase_add_test(tc, merge_link_type_and_missing);
    tcase_add_test(tc, replay_waits_for_room);
    suite_add_tcase(s, tc);
    return s;
}
