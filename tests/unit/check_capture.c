/* check_capture.c - unit tests for the file side of src/capture.c: libpcap files (nanosecond,
 * truncated, not a capture, missing), our pcapng reader on the shared multi-interface file
 * and on hand-built blocks (byte order, if_tsresol, simple packet blocks, corrupt lengths,
 * unknown interfaces, every truncation), and cap_expand_inputs on a folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tunnelwatch/capture.h"
#include "tw_check.h"

struct rd {
    int n;  /* packets read */
    int rc; /* last cap_next result (0 or < 0) */
    bool dlt_seen[300];
    struct timeval first_ts;
    uint32_t last_caplen, last_len;
    uint8_t last[256];
    char err[256];
};

/* Opens path and reads it to the end. Returns the cap_open_file result. */
static int read_all(const char *path, struct rd *r)
{
    memset(r, 0, sizeof(*r));
    struct cap_src s;
    int rc = cap_open_file(&s, path, r->err, sizeof(r->err));
    if (rc != TW_OK)
        return rc;
    for (int guard = 0; guard < 1000000; guard++) {
        struct pcap_pkthdr h;
        const uint8_t *data;
        int dlt = -1;
        int k = cap_next(&s, &h, &data, &dlt, r->err, sizeof(r->err));
        if (k != 1) {
            r->rc = k;
            break;
        }
        ck_assert_int_ge(dlt, 0);
        ck_assert_int_lt(dlt, 300);
        ck_assert_int_lt(h.ts.tv_usec, 1000000);
        ck_assert_int_ge(h.ts.tv_usec, 0);
        ck_assert_uint_le(h.caplen, h.len);
        r->dlt_seen[dlt] = true;
        if (r->n == 0)
            r->first_ts = h.ts;
        r->last_caplen = h.caplen;
        r->last_len = h.len;
        memcpy(r->last, data, h.caplen < sizeof(r->last) ? h.caplen : sizeof(r->last));
        r->n++;
    }
    cap_close(&s);
    return TW_OK;
}

START_TEST(multi_if_pcapng)
{
    struct rd r;
    ck_assert_int_eq(read_all(tw_src_path("pcaps/multi_if.pcapng"), &r), TW_OK);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 19);
    ck_assert(r.dlt_seen[1]);
    ck_assert(r.dlt_seen[101]);
    ck_assert_int_eq(r.first_ts.tv_sec, 1709294400);
    ck_assert_int_eq(r.first_ts.tv_usec, 150);
}
END_TEST

START_TEST(nanosec_pcap)
{
    struct rd r;
    ck_assert_int_eq(read_all(tw_src_path("pcaps/nanosec.pcap"), &r), TW_OK);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 19);
    ck_assert(r.dlt_seen[1]);
    /* 1709294400.000150123 read with microsecond precision */
    ck_assert_int_eq(r.first_ts.tv_sec, 1709294400);
    ck_assert_int_eq(r.first_ts.tv_usec, 150);
}
END_TEST

START_TEST(truncated_pcap)
{
    struct rd r;
    ck_assert_int_eq(read_all(tw_src_path("pcaps/truncated.pcap"), &r), TW_OK);
    ck_assert_int_eq(r.n, 20);
    ck_assert_int_eq(r.rc, TW_EIO);
    ck_assert_uint_gt(strlen(r.err), 0);
}
END_TEST

START_TEST(not_capture_missing_folder)
{
    struct rd r;
    ck_assert_int_eq(read_all(tw_src_path("pcaps/README.md"), &r), TW_EIO);
    ck_assert_ptr_nonnull(strstr(r.err, "README.md"));
    ck_assert_int_eq(read_all(tw_src_path("pcaps/no_such_file.pcap"), &r), TW_EIO);
    ck_assert_ptr_nonnull(strstr(r.err, "no_such_file.pcap"));
    ck_assert_int_eq(read_all(tw_src_path("pcaps"), &r), TW_EIO);
    ck_assert_ptr_nonnull(strstr(r.err, "folder"));
}
END_TEST

/* --- hand-built pcapng --- */

struct ng {
    uint8_t b[8192];
    size_t n;
    bool be;
};

static void u8(struct ng *g, uint8_t v)
{
    ck_assert_uint_lt(g->n, sizeof(g->b));
    g->b[g->n++] = v;
}

static void u16(struct ng *g, uint16_t v)
{
    u8(g, (uint8_t)(g->be ? v >> 8 : v));
    u8(g, (uint8_t)(g->be ? v : v >> 8));
}

static void u32(struct ng *g, uint32_t v)
{
    u16(g, (uint16_t)(g->be ? v >> 16 : v));
    u16(g, (uint16_t)(g->be ? v : v >> 16));
}

static void pad4(struct ng *g)
{
    while (g->n % 4)
        u8(g, 0);
}

/* Section Header Block: type, length 28, byte-order magic, version 1.0, section length -1. */
static void shb(struct ng *g)
{
    u32(g, 0x0a0d0d0a);
    u32(g, 28);
    u32(g, 0x1a2b3c4d);
    u16(g, 1);
    u16(g, 0);
    u32(g, 0xffffffff);
    u32(g, 0xffffffff);
    u32(g, 28);
}

/* Interface Description Block with an optional if_tsresol (code 9) option. */
static void idb(struct ng *g, uint16_t linktype, int tsresol)
{
    uint32_t len = 20 + (tsresol >= 0 ? 12 : 0);
    u32(g, 1);
    u32(g, len);
    u16(g, linktype);
    u16(g, 0);
    u32(g, 65535);
    if (tsresol >= 0) {
        u16(g, 9);
        u16(g, 1);
        u8(g, (uint8_t)tsresol);
        pad4(g);
        u16(g, 0); /* opt_endofopt */
        u16(g, 0);
    }
    u32(g, len);
}

/* Enhanced Packet Block. */
static void epb(struct ng *g, uint32_t ifc, uint64_t ts, const uint8_t *d, uint32_t n)
{
    uint32_t len = 32 + ((n + 3) & ~3u);
    u32(g, 6);
    u32(g, len);
    u32(g, ifc);
    u32(g, (uint32_t)(ts >> 32));
    u32(g, (uint32_t)ts);
    u32(g, n);
    u32(g, n);
    for (uint32_t i = 0; i < n; i++)
        u8(g, d[i]);
    pad4(g);
    u32(g, len);
}

/* Simple Packet Block: original length, then the data. */
static void spb(struct ng *g, uint32_t origlen, const uint8_t *d, uint32_t n)
{
    uint32_t len = 16 + ((n + 3) & ~3u);
    u32(g, 3);
    u32(g, len);
    u32(g, origlen);
    for (uint32_t i = 0; i < n; i++)
        u8(g, d[i]);
    pad4(g);
    u32(g, len);
}

static char tmp_path[64];

static const char *write_tmp(const uint8_t *b, size_t n)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/tw_cap_XXXXXX");
    int fd = mkstemp(tmp_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
    return tmp_path;
}

static int read_bytes(const uint8_t *b, size_t n, struct rd *r)
{
    int rc = read_all(write_tmp(b, n), r);
    unlink(tmp_path);
    return rc;
}

static const uint8_t pkt1[] = "packet one: 21 bytes";
static const uint8_t pkt2[] = {0x45, 0, 0, 20, 1, 2, 3};

START_TEST(ng_little_and_big_endian)
{
    for (int be = 0; be < 2; be++) {
        struct ng g = {.be = be};
        shb(&g);
        idb(&g, 1, -1);
        epb(&g, 0, 1709294400ULL * 1000000 + 42, pkt1, sizeof(pkt1));
        epb(&g, 0, 1709294401ULL * 1000000, pkt2, sizeof(pkt2));
        struct rd r;
        ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
        ck_assert_int_eq(r.rc, 0);
        ck_assert_int_eq(r.n, 2);
        ck_assert(r.dlt_seen[1]);
        ck_assert_int_eq(r.first_ts.tv_sec, 1709294400);
        ck_assert_int_eq(r.first_ts.tv_usec, 42);
        ck_assert_uint_eq(r.last_caplen, sizeof(pkt2));
        ck_assert_int_eq(memcmp(r.last, pkt2, sizeof(pkt2)), 0);
    }
}
END_TEST

START_TEST(ng_tsresol)
{
    struct ng g = {0};
    shb(&g);
    idb(&g, 1, 9);           /* 10^-9 */
    idb(&g, 101, 0x80 | 20); /* 2^-20 */
    idb(&g, 1, 3);           /* 10^-3 */
    epb(&g, 0, 1709294400123456789ULL, pkt1, 4);
    epb(&g, 1, (5ULL << 20) + (1ULL << 19), pkt1, 4);     /* 5.5 s */
    epb(&g, 1, (7ULL << 20) + (1ULL << 20) - 1, pkt1, 4); /* 7.999999046 s */
    epb(&g, 2, 1709294400123ULL, pkt1, 4);
    /* read the timestamps one by one */
    const char *p = write_tmp(g.b, g.n);
    struct cap_src s;
    char err[256];
    ck_assert_int_eq(cap_open_file(&s, p, err, sizeof(err)), TW_OK);
    struct pcap_pkthdr h;
    const uint8_t *d;
    int dlt;
    ck_assert_int_eq(cap_next(&s, &h, &d, &dlt, err, sizeof(err)), 1);
    ck_assert_int_eq(h.ts.tv_sec, 1709294400);
    ck_assert_int_eq(h.ts.tv_usec, 123456);
    ck_assert_int_eq(cap_next(&s, &h, &d, &dlt, err, sizeof(err)), 1);
    ck_assert_int_eq(dlt, 101);
    ck_assert_int_eq(h.ts.tv_sec, 5);
    ck_assert_int_eq(h.ts.tv_usec, 500000);
    ck_assert_int_eq(cap_next(&s, &h, &d, &dlt, err, sizeof(err)), 1);
    ck_assert_int_eq(h.ts.tv_sec, 7);
    ck_assert_int_eq(h.ts.tv_usec, 999999);
    ck_assert_int_eq(cap_next(&s, &h, &d, &dlt, err, sizeof(err)), 1);
    ck_assert_int_eq(h.ts.tv_sec, 1709294400);
    ck_assert_int_eq(h.ts.tv_usec, 123000);
    ck_assert_int_eq(cap_next(&s, &h, &d, &dlt, err, sizeof(err)), 0);
    cap_close(&s);
    unlink(p);
}
END_TEST

START_TEST(ng_simple_packet_block)
{
    struct ng g = {0};
    shb(&g);
    idb(&g, 101, -1);
    spb(&g, sizeof(pkt2), pkt2, sizeof(pkt2));
    spb(&g, 1500, pkt1, sizeof(pkt1)); /* snapped: original length larger than the data */
    struct rd r;
    ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 2);
    ck_assert(r.dlt_seen[101]);
    ck_assert_uint_eq(r.last_len, 1500);
    ck_assert_uint_ge(r.last_caplen, sizeof(pkt1));
    ck_assert_int_eq(memcmp(r.last, pkt1, sizeof(pkt1)), 0);
}
END_TEST

/* A valid file with the second packet block's length field replaced by v. */
static size_t with_bad_len(struct ng *g, uint32_t v)
{
    memset(g, 0, sizeof(*g));
    shb(g);
    idb(g, 1, -1);
    epb(g, 0, 1, pkt1, sizeof(pkt1));
    size_t at = g->n;
    epb(g, 0, 2, pkt2, sizeof(pkt2));
    size_t end = g->n;
    g->n = at + 4;
    u32(g, v);
    g->n = end;
    return end;
}

START_TEST(ng_bad_lengths)
{
    struct ng g;
    struct rd r;
    static const uint32_t bad[] = {30, 8, 0, 0x7ffffff0, 4000, 0xffffffff, 36};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++) {
        size_t n = with_bad_len(&g, bad[i]);
        ck_assert_int_eq(read_bytes(g.b, n, &r), TW_OK);
        ck_assert_msg(r.n == 1 && r.rc == TW_EIO, "length %u: %d packets, rc %d", bad[i], r.n,
                      r.rc);
        ck_assert_uint_gt(strlen(r.err), 0);
    }
    /* section header with a length past the file */
    memset(&g, 0, sizeof(g));
    shb(&g);
    g.n = 4;
    u32(&g, 4096);
    g.n = 28;
    ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
    ck_assert_int_eq(r.rc, TW_EIO);
    /* byte-order magic that is neither order */
    memset(&g, 0, sizeof(g));
    shb(&g);
    g.b[8] = 0x11;
    g.b[9] = 0x22;
    ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
    ck_assert_int_eq(r.rc, TW_EIO);
}
END_TEST

START_TEST(ng_unknown_interface)
{
    struct ng g = {0};
    shb(&g);
    idb(&g, 1, -1);
    epb(&g, 0, 1, pkt1, sizeof(pkt1));
    epb(&g, 1, 2, pkt1, sizeof(pkt1));
    struct rd r;
    ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rc, TW_EIO);
    ck_assert_ptr_nonnull(strstr(r.err, "interface"));
    /* a packet before any interface description */
    memset(&g, 0, sizeof(g));
    shb(&g);
    spb(&g, 4, pkt1, 4);
    ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(r.rc, TW_EIO);
    /* a new section forgets the interfaces of the previous one */
    memset(&g, 0, sizeof(g));
    shb(&g);
    idb(&g, 1, -1);
    shb(&g);
    epb(&g, 0, 1, pkt1, 4);
    ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(r.rc, TW_EIO);
}
END_TEST

/* A nanosecond pcap whose sub-second field is out of range (1.5e9 ns): libpcap passes it
 * through; cap_next folds it into the seconds. */
START_TEST(pcap_subsecond_overflow)
{
    static const uint8_t f[] = {
        0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0,
        /* ts 100 s + 1500000000 ns, caplen 4, len 4, 4 bytes */
        100, 0, 0, 0, 0x00, 0x2f, 0x68, 0x59, 4, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4};
    struct rd r;
    ck_assert_int_eq(read_bytes(f, sizeof(f), &r), TW_OK);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.first_ts.tv_sec, 101);
    ck_assert_int_eq(r.first_ts.tv_usec, 500000);
}
END_TEST

START_TEST(ng_every_truncation)
{
    struct ng g = {0};
    shb(&g);
    idb(&g, 1, 6);
    size_t after_idb = g.n;
    epb(&g, 0, 1, pkt1, sizeof(pkt1));
    size_t after1 = g.n;
    /* an unknown block type in between is skipped */
    u32(&g, 0x0BAD);
    u32(&g, 16);
    u32(&g, 0xdeadbeef);
    u32(&g, 16);
    epb(&g, 0, 2, pkt2, sizeof(pkt2));
    struct rd r;
    ck_assert_int_eq(read_bytes(g.b, g.n, &r), TW_OK);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(r.n, 2);
    for (size_t k = 0; k < g.n; k++) {
        int rc = read_bytes(g.b, k, &r);
        if (rc != TW_OK) {
            /* too short to recognize: libpcap refuses it */
            ck_assert_int_eq(rc, TW_EIO);
            ck_assert_uint_lt(k, 28);
            continue;
        }
        ck_assert_msg(r.rc == 0 || r.rc == TW_EIO, "prefix %zu: rc %d", k, r.rc);
        ck_assert_int_le(r.n, 2);
        ck_assert_int_eq(r.n, k >= after1 ? 1 : 0);
        /* a cut inside a block is an error, never a quiet end */
        bool on_boundary = k == 0 || k == 28 || k == after_idb || k == after1 || k == after1 + 16;
        if (!on_boundary)
            ck_assert_msg(r.rc == TW_EIO, "prefix %zu ends quietly", k);
    }
}
END_TEST

/* --- our classic pcap reader against libpcap's --- */

/* Reads path with cap_next and with libpcap's pcap_next_ex side by side: the same records
 * (time, lengths, bytes) in the same order, and the same end (clean, or the same error).
 * Returns the number of records, or -1 when libpcap cannot open the file. own: whether our
 * reader took the records. */
static int same_as_libpcap(const char *path, const char *feed, bool *own)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
    if (!pc)
        return -1;
    struct cap_src s;
    char err[512] = "";
    ck_assert_msg(cap_open_file(&s, feed ? feed : path, err, sizeof(err)) == TW_OK, "%s: %s", path,
                  err);
    if (own)
        *own = s.own;
    int n = 0;
    for (;;) {
        struct pcap_pkthdr *lh, h;
        const u_char *ld, *d;
        int dlt;
        int lr = pcap_next_ex(pc, &lh, &ld);
        int r = cap_next(&s, &h, &d, &dlt, err, sizeof(err));
        if (lr != 1) {
            ck_assert_msg(r != 1, "%s: record %d past libpcap's end", path, n);
            if (lr == PCAP_ERROR_BREAK)
                ck_assert_msg(r == 0, "%s: after %d records: %s", path, n, err);
            else
                ck_assert_msg(r == TW_EIO && strcmp(err, pcap_geterr(pc)) == 0,
                              "%s: after %d records: ours %d \"%s\", libpcap \"%s\"", path, n, r,
                              err, pcap_geterr(pc));
            break;
        }
        ck_assert_msg(r == 1, "%s: record %d: ours ended (%d, %s)", path, n, r, err);
        struct timeval lt = lh->ts;
        if (lt.tv_sec < 0) /* libpcap reads the seconds signed; the format's are unsigned */
            lt.tv_sec += (time_t)1 << 32;
        cap_fold_usec(&lt);
        ck_assert_msg(h.ts.tv_sec == lt.tv_sec && h.ts.tv_usec == lt.tv_usec,
                      "%s: record %d: time %ld.%06ld, libpcap %ld.%06ld (raw %ld.%ld)", path, n,
                      (long)h.ts.tv_sec, (long)h.ts.tv_usec, (long)lt.tv_sec, (long)lt.tv_usec,
                      (long)lh->ts.tv_sec, (long)lh->ts.tv_usec);
        ck_assert_msg(h.caplen == lh->caplen && h.len == lh->len,
                      "%s: record %d: lengths %u/%u, "
                      "libpcap %u/%u",
                      path, n, h.caplen, h.len, lh->caplen, lh->len);
        ck_assert_int_eq(dlt, pcap_datalink(pc));
        ck_assert_msg(memcmp(d, ld, h.caplen) == 0, "%s: record %d: bytes", path, n);
        n++;
    }
    pcap_close(pc);
    cap_close(&s);
    return n;
}

static void diff_folder(const char *dir, int *files, int *own_files)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *dot = strrchr(de->d_name, '.');
        if (!dot || (strcmp(dot, ".pcap") && strcmp(dot, ".cap")))
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        bool own = false;
        if (same_as_libpcap(path, NULL, &own) >= 0) {
            (*files)++;
            *own_files += own;
        }
    }
    closedir(d);
}

START_TEST(pcap_reader_matches_libpcap_on_real_captures)
{
    int files = 0, own = 0;
    diff_folder(tw_src_path("pcaps"), &files, &own);
    int ours = files;
    const char *shared = getenv("TW_SHARED");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/pcaps", shared ? shared : tw_src_path("../shared"));
    diff_folder(dir, &files, &own);
    printf("pcap reader: %d classic captures (%d ours, %d shared) read alike, %d by our reader\n",
           files, ours, files - ours, own);
    ck_assert_int_gt(ours, 20);
    ck_assert_int_gt(own, 20);
}
END_TEST

/* A classic pcap: header (snaplen 64, Ethernet) then records; be: big-endian, nsec: ns. */
struct pc {
    uint8_t b[4096];
    size_t n;
    bool be;
};

static void pc32(struct pc *g, uint32_t v)
{
    ck_assert_uint_le(g->n + 4, sizeof(g->b));
    for (int i = 0; i < 4; i++)
        g->b[g->n++] = (uint8_t)(g->be ? v >> (24 - 8 * i) : v >> (8 * i));
}

static void pc_header(struct pc *g, bool nsec, uint32_t snaplen)
{
    pc32(g, nsec ? 0xa1b23c4d : 0xa1b2c3d4);
    pc32(g, g->be ? 0x00020004 : 0x00040002); /* version 2.4, two 16-bit fields */
    pc32(g, 0);
    pc32(g, 0);
    pc32(g, snaplen);
    pc32(g, 1);
}

static void pc_rec(struct pc *g, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len)
{
    pc32(g, sec);
    pc32(g, frac);
    pc32(g, caplen);
    pc32(g, len);
    for (uint32_t i = 0; i < caplen && g->n < sizeof(g->b); i++)
        g->b[g->n++] = (uint8_t)(i * 7 + caplen);
}

/* Both byte orders and both precisions; odd records (longer than the snapshot length, longer
 * than any sane length, negative and out-of-range time fields) and every cut of the file
 * read exactly as libpcap reads them. */
START_TEST(pcap_reader_odd_records_and_every_cut)
{
    for (int v = 0; v < 4; v++) {
        struct pc g = {.be = v & 1};
        bool nsec = v & 2;
        pc_header(&g, nsec, 64);
        pc_rec(&g, 1709294400, 123456, 60, 60);
        pc_rec(&g, 0x80000001u, 0xfffffff0u, 64, 1500); /* negative time fields */
        pc_rec(&g, 1709294401, 2999999999u, 100, 100);  /* over the snaplen: cut to 64 */
        pc_rec(&g, 1709294402, 5, 0, 0);                /* empty record */
        pc_rec(&g, 1709294403, 7, 30, 20);              /* len < caplen, passed through */
        size_t whole = g.n;
        pc_rec(&g, 1709294404, 9, 300000, 300000); /* insane: libpcap's error */
        const char *p = write_tmp(g.b, g.n);
        bool own = false;
        ck_assert_int_eq(same_as_libpcap(p, NULL, &own), 5);
        ck_assert(own);
        unlink(tmp_path);
        for (size_t k = 24; k <= whole; k++) {
            p = write_tmp(g.b, k);
            int n = same_as_libpcap(p, NULL, NULL);
            ck_assert_int_ge(n, 0);
            unlink(tmp_path);
        }
    }
}
END_TEST

/* pcapng blocks larger than the read buffer, between small ones, read whole from a file and
 * from a pipe. */
START_TEST(large_pcapng_blocks)
{
    /* pcapng: blocks of 600,000 and 300,000 bytes (more than the head room), small ones
     * around them */
    static uint8_t big[600000];
    for (size_t k = 0; k < sizeof(big); k++)
        big[k] = (uint8_t)(k * 31 + 7);
    size_t cap = 1u << 21, n = 0;
    uint8_t *f = malloc(cap);
    ck_assert_ptr_nonnull(f);
    struct ng *g = malloc(sizeof(*g));
    ck_assert_ptr_nonnull(g);
    memset(g, 0, sizeof(*g));
    shb(g);
    idb(g, 1, 6);
    epb(g, 0, 1, pkt1, sizeof(pkt1));
    memcpy(f, g->b, g->n);
    n = g->n;
    static const uint32_t lens[] = {600000, 21, 300000, 7};
    for (size_t k = 0; k < TW_ARRAY_LEN(lens); k++) {
        uint32_t len = 32 + ((lens[k] + 3) & ~3u);
        uint32_t hdr[7] = {6, len, 0, 0, (uint32_t)k + 2, lens[k], lens[k]};
        memcpy(f + n, hdr, sizeof(hdr));
        n += sizeof(hdr);
        memcpy(f + n, big, lens[k]);
        n += lens[k];
        while (n % 4)
            f[n++] = 0;
        memcpy(f + n, &len, 4);
        n += 4;
    }
    free(g);
    const char *path = write_tmp(f, n);
    for (size_t i = 0; i < 2; i++) {
        char feed[64], cmd[128];
        FILE *pp = NULL;
        const char *src = path;
        if (i == 1) { /* and through a pipe */
            snprintf(cmd, sizeof(cmd), "cat %s", path);
            pp = popen(cmd, "r");
            ck_assert_ptr_nonnull(pp);
            snprintf(feed, sizeof(feed), "/proc/self/fd/%d", fileno(pp));
            src = feed;
        }
        struct cap_src s;
        char err[256] = "";
        ck_assert_int_eq(cap_open_file(&s, src, err, sizeof(err)), TW_OK);
        struct pcap_pkthdr h;
        const uint8_t *d;
        int dlt;
        ck_assert_int_eq(cap_next(&s, &h, &d, &dlt, err, sizeof(err)), 1);
        ck_assert_uint_eq(h.caplen, sizeof(pkt1));
        for (size_t k = 0; k < TW_ARRAY_LEN(lens); k++) {
            ck_assert_msg(cap_next(&s, &h, &d, &dlt, err, sizeof(err)) == 1, "block %zu: %s", k,
                          err);
            ck_assert_uint_eq(h.caplen, lens[k]);
            ck_assert_int_eq(memcmp(d, big, lens[k]), 0);
        }
        ck_assert_int_eq(cap_next(&s, &h, &d, &dlt, err, sizeof(err)), 0);
        cap_close(&s);
        if (pp)
            pclose(pp);
    }
    unlink(tmp_path);
    free(f);
}
END_TEST

/* A pipe (tunnelwatch -r <(zcat x.pcap.gz)): the bytes looked at to tell pcap from pcapng are
 * not lost; pcapng through a pipe reads too. */
START_TEST(pcap_reader_from_a_pipe)
{
    const char *files[] = {"pcaps/demo.pcap", "pcaps/multi_if.pcapng"};
    for (size_t i = 0; i < TW_ARRAY_LEN(files); i++) {
        size_t len = 0;
        uint8_t *bytes = tw_read_file(tw_src_path(files[i]), &len);
        ck_assert_ptr_nonnull(bytes);
        struct rd want, got;
        ck_assert_int_eq(read_all(tw_src_path(files[i]), &want), TW_OK);
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            size_t off = 0;
            while (off < len) {
                ssize_t w = write(fds[1], bytes + off, len - off);
                if (w <= 0)
                    _exit(1);
                off += (size_t)w;
            }
            _exit(0);
        }
        close(fds[1]);
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
        ck_assert_int_eq(read_all(path, &got), TW_OK);
        close(fds[0]);
        int status;
        waitpid(pid, &status, 0);
        ck_assert_int_eq(got.rc, 0);
        ck_assert_int_eq(got.n, want.n);
        ck_assert_int_gt(got.n, 10);
        ck_assert_int_eq(got.first_ts.tv_sec, want.first_ts.tv_sec);
        ck_assert_int_eq(got.first_ts.tv_usec, want.first_ts.tv_usec);
        ck_assert_uint_eq(got.last_caplen, want.last_caplen);
        ck_assert_mem_eq(got.last, want.last, got.last_caplen < 256 ? got.last_caplen : 256);
        free(bytes);
    }
}
END_TEST

START_TEST(expand_inputs_folder)
{
    char dir[] = "/tmp/tw_caps_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    static const char *const files[] = {"b.pcap",    "a.pcapng",     "c.cap",
                                        "notes.txt", ".hidden.pcap", "z.pcap"};
    char path[256];
    for (size_t i = 0; i < TW_ARRAY_LEN(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }
    char extra[] = "/some/file.pcap";
    char *in[] = {extra, dir};
    char err[256] = "";
    char **list = cap_expand_inputs(in, 2, err, sizeof(err));
    ck_assert_ptr_nonnull(list);
    static const char *const want[] = {"/some/file.pcap", "a.pcapng", "b.pcap", "c.cap", "z.pcap"};
    size_t n = 0;
    for (; list[n]; n++) {
        ck_assert_uint_lt(n, TW_ARRAY_LEN(want));
        const char *base = n == 0 ? list[n] : strrchr(list[n], '/') + 1;
        ck_assert_str_eq(base, want[n]);
    }
    ck_assert_uint_eq(n, TW_ARRAY_LEN(want));
    cap_free_inputs(list);
    /* an empty input list gives an empty list, not NULL */
    list = cap_expand_inputs(in, 0, err, sizeof(err));
    ck_assert_ptr_nonnull(list);
    ck_assert_ptr_null(list[0]);
    cap_free_inputs(list);
    for (size_t i = 0; i < TW_ARRAY_LEN(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("capture");
    TCase *tc = tcase_create("libpcap_files");
    tcase_add_test(tc, multi_if_pcapng);
    tcase_add_test(tc, nanosec_pcap);
    tcase_add_test(tc, truncated_pcap);
    tcase_add_test(tc, not_capture_missing_folder);
    suite_add_tcase(s, tc);
    tc = tcase_create("pcap_reader");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pcap_reader_matches_libpcap_on_real_captures);
    tcase_add_test(tc, pcap_reader_odd_records_and_every_cut);
    tcase_add_test(tc, pcap_reader_from_a_pipe);
    tcase_add_test(tc, large_pcapng_blocks);
    suite_add_tcase(s, tc);
    tc = tcase_create("pcapng");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ng_little_and_big_endian);
    tcase_add_test(tc, ng_tsresol);
    tcase_add_test(tc, ng_simple_packet_block);
    tcase_add_test(tc, ng_bad_lengths);
    tcase_add_test(tc, ng_unknown_interface);
    tcase_add_test(tc, ng_every_truncation);
    tcase_add_test(tc, pcap_subsecond_overflow);
    suite_add_tcase(s, tc);
    tc = tcase_create("cap_expand_inputs");
    tcase_add_test(tc, expand_inputs_folder);
    suite_add_tcase(s, tc);
    return s;
}
