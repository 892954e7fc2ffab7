/* check_spool.c - unit tests for the on-disk outage spool: CRC, order across segment rotation,
 * persistence across reopen, torn tails, the size cap (oldest dropped, counted exactly) and
 * the one-process-per-directory lock. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tunnelwatch/spool.h"
#include "tw_check.h"

static char dir[64];

static void mk_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tw_spool.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int count_segs(void)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

static struct spool *open_sp(uint64_t max, uint64_t seg)
{
    char err[256] = "";
    struct spool_opts o = {.dir = dir, .max_bytes = max, .seg_bytes = seg};
    struct spool *s = spool_open(&o, err, sizeof(err));
    ck_assert_msg(s != NULL, "spool_open: %s", err);
    return s;
}

static void put(struct spool *s, int i)
{
    char rec[64];
    int n = snprintf(rec, sizeof(rec), "{\"event.id\":\"r%06d\"}", i);
    ck_assert_int_eq(spool_append(s, rec, (size_t)n), TW_OK);
}

/* Reads everything left, committing `step` at a time; checks ids first..first+count-1. */
static void drain_expect(struct spool *s, int first, int count, size_t step)
{
    struct spool_rec r[64];
    int next = first;
    for (;;) {
        int n = spool_peek(s, r, step);
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            char want[64];
            snprintf(want, sizeof(want), "{\"event.id\":\"r%06d\"}", next++);
            ck_assert_uint_eq(r[i].len, strlen(want));
            ck_assert(memcmp(r[i].data, want, r[i].len) == 0);
        }
        ck_assert_int_eq(spool_commit(s, (size_t)n), TW_OK);
    }
    ck_assert_int_eq(next - first, count);
    ck_assert_uint_eq(spool_pending(s), 0);
}

START_TEST(test_crc32)
{
    /* the standard check value of CRC-32/ISO-HDLC */
    ck_assert_uint_eq(spool_crc32("123456789", 9), 0xCBF43926u);
    ck_assert_uint_eq(spool_crc32("", 0), 0);
}
END_TEST

START_TEST(test_rotation_order)
{
    mk_dir();
    struct spool *s = open_sp(1 << 20, 256); /* ~8 records per segment */
    for (int i = 0; i < 100; i++)
        put(s, i);
    struct spool_stats st;
    spool_get_stats(s, &st);
    ck_assert_uint_eq(st.records, 100);
    ck_assert_uint_ge(st.segments, 10);
    ck_assert_int_eq(count_segs(), (int)st.segments);
    /* partial commit: peek 5, commit 2, the next peek starts at record 2 */
    struct spool_rec r[8];
    ck_assert_int_eq(spool_peek(s, r, 5), 5);
    ck_assert_int_eq(spool_commit(s, 2), TW_OK);
    ck_assert_int_eq(spool_peek(s, r, 1), 1);
    ck_assert(memcmp(r[0].data, "{\"event.id\":\"r000002\"}", r[0].len) == 0);
    ck_assert_int_eq(spool_commit(s, 0), TW_OK);
    /* committing more than was peeked is refused */
    ck_assert_int_eq(spool_peek(s, r, 1), 1);
    ck_assert_int_eq(spool_commit(s, 2), TW_EBAD);
    drain_expect(s, 2, 98, 7);
    /* consumed segments are deleted from disk */
    ck_assert_int_eq(count_segs(), 0);
    /* the spool keeps working after it emptied */
    put(s, 500);
    drain_expect(s, 500, 1, 4);
    spool_get_stats(s, &st);
    ck_assert_uint_eq(st.dropped, 0);
    spool_close(s);
    rm_dir();
}
END_TEST

START_TEST(test_reopen)
{
    mk_dir();
    struct spool *s = open_sp(1 << 20, 512);
    for (int i = 0; i < 50; i++)
        put(s, i);
    spool_close(s);
    s = open_sp(1 << 20, 512);
    ck_assert_uint_eq(spool_pending(s), 50);
    /* new appends go after the old ones */
    for (int i = 50; i < 60; i++)
        put(s, i);
    drain_expect(s, 0, 60, 16);
    spool_close(s);
    rm_dir();
}
END_TEST

/* Appends raw bytes to the newest segment file, as a crash in the middle of write() would. */
static void damage_last_segment(const void *bytes, size_t n, int flip_last_byte)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    char last[256] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "seg-", 4) == 0 && strcmp(de->d_name, last) > 0)
            snprintf(last, sizeof(last), "%s", de->d_name);
    closedir(d);
    ck_assert(last[0]);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, last);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    if (flip_last_byte) {
        off_t end = lseek(fd, 0, SEEK_END);
        unsigned char b;
        ck_assert_int_eq(pread(fd, &b, 1, end - 1), 1);
        b ^= 0x20;
        ck_assert_int_eq(pwrite(fd, &b, 1, end - 1), 1);
    }
    if (n) {
        ck_assert_int_ge(lseek(fd, 0, SEEK_END), 0);
        ck_assert_int_eq(write(fd, bytes, n), (ssize_t)n);
    }
    close(fd);
}

START_TEST(test_torn_tail_short)
{
    mk_dir();
    struct spool *s = open_sp(1 << 20, 1 << 16);
    for (int i = 0; i < 10; i++)
        put(s, i);
    spool_close(s);
    /* a header announcing 30 bytes, followed by only 5 of them */
    const unsigned char torn[] = {30, 0, 0, 0, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'};
    damage_last_segment(torn, sizeof(torn), 0);
    s = open_sp(1 << 20, 1 << 16);
    struct spool_stats st;
    spool_get_stats(s, &st);
    ck_assert_uint_eq(st.torn, 1);
    ck_assert_uint_eq(st.records, 10);
    put(s, 10);
    drain_expect(s, 0, 11, 3);
    spool_close(s);
    rm_dir();
}
END_TEST

START_TEST(test_torn_tail_bad_crc)
{
    mk_dir();
    struct spool *s = open_sp(1 << 20, 1 << 16);
    for (int i = 0; i < 10; i++)
        put(s, i);
    spool_close(s);
    /* last record complete in length but one payload byte changed: its CRC fails */
    damage_last_segment(NULL, 0, 1);
    s = open_sp(1 << 20, 1 << 16);
    struct spool_stats st;
    spool_get_stats(s, &st);
    ck_assert_uint_eq(st.torn, 1);
    ck_assert_uint_eq(st.records, 9);
    drain_expect(s, 0, 9, 4);
    spool_close(s);
    rm_dir();
}
END_TEST

START_TEST(test_cap_drops_oldest)
{
    mk_dir();
    /* records are 8 + 22 = 30 bytes: 8 per 256-byte segment, the cap holds 4 segments */
    struct spool *s = open_sp(1024, 256);
    const int total = 200;
    for (int i = 0; i < total; i++)
        put(s, i);
    struct spool_stats st;
    spool_get_stats(s, &st);
    ck_assert_uint_le(st.bytes, 1024);
    ck_assert_uint_gt(st.dropped, 0);
    ck_assert_uint_eq(st.dropped + st.records, (uint64_t)total);
    /* the survivors are exactly the newest records, in order */
    int kept = (int)st.records;
    drain_expect(s, total - kept, kept, 5);
    /* a record larger than a segment can never fit: refused and counted */
    char big[300];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(spool_append(s, big, sizeof(big)), TW_ELIMIT);
    spool_get_stats(s, &st);
    ck_assert_uint_eq(st.dropped, (uint64_t)(total - kept) + 1);
    spool_close(s);
    rm_dir();
}
END_TEST

START_TEST(test_cap_with_partial_read)
{
    mk_dir();
    struct spool *s = open_sp(1024, 256);
    for (int i = 0; i < 20; i++)
        put(s, i);
    /* consume 3 of the head segment, then force it out: only its 5 unread records count */
    struct spool_rec r[4];
    ck_assert_int_eq(spool_peek(s, r, 3), 3);
    ck_assert_int_eq(spool_commit(s, 3), TW_OK);
    for (int i = 20; i < 200; i++)
        put(s, i);
    struct spool_stats st;
    spool_get_stats(s, &st);
    ck_assert_uint_eq(st.dropped + st.records + 3, 200);
    drain_expect(s, 200 - (int)st.records, (int)st.records, 8);
    spool_close(s);
    rm_dir();
}
END_TEST

START_TEST(test_lock)
{
    mk_dir();
    struct spool *a = open_sp(1 << 20, 0);
    char err[256] = "";
    struct spool_opts o = {.dir = dir};
    struct spool *b = spool_open(&o, err, sizeof(err));
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(err, "in use by another process") != NULL, "err: %s", err);
    spool_close(a);
    b = spool_open(&o, err, sizeof(err));
    ck_assert_ptr_nonnull(b);
    spool_close(b);
    spool_close(NULL);
    rm_dir();
}
END_TEST

START_TEST(test_foreign_files_ignored)
{
    mk_dir();
    char path[128];
    snprintf(path, sizeof(path), "%s/seg-zzzzzzzzzzzzzzzz.log", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("garbage", f);
    fclose(f);
    struct spool *s = open_sp(1 << 20, 0);
    ck_assert_uint_eq(spool_pending(s), 0);
    spool_close(s);
    ck_assert_int_eq(access(path, F_OK), 0);
    rm_dir();
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("spool");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_crc32);
    tcase_add_test(tc, test_rotation_order);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_torn_tail_short);
    tcase_add_test(tc, test_torn_tail_bad_crc);
    tcase_add_test(tc, test_cap_drops_oldest);
    tcase_add_test(tc, test_cap_with_partial_read);
    tcase_add_test(tc, test_lock);
    tcase_add_test(tc, test_foreign_files_ignored);
    suite_add_tcase(s, tc);
    return s;
}
