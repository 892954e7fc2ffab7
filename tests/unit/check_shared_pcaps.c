/* check_shared_pcaps.c - decodes every frame of every real capture we have.
 *
 * Opens each .pcap/.pcapng in $TW_SHARED/pcaps (public captures from nDPI and tcpdump, with
 * tshark truth files) and $TW_SRC/pcaps (our own), runs dec_packet() on every frame, feeds
 * fragments to the reassembler and decodes what it completes. It asserts no crash (ASan/UBSan
 * builds make that strict), that supported link types decode some frames, and that every
 * dst_port in a truth file is among the TCP/UDP ports we decoded: a port missing means we lost
 * the frames carrying a name (bad tunnel, link type or reassembly). Per-file reason counts go
 * to stdout for the curious. A missing folder leaves its test out and makes the suite exit 77
 * (skipped, see tw_check.h) once the remaining tests have passed.
 */
#include <dirent.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/frag.h"
#include "tw_check.h"

struct file_result {
    unsigned long reasons[DEC__COUNT];
    unsigned long frames, reassembled, frag_err;
    uint8_t ports[65536 / 8];
    int dlt;
};

static void port_mark(struct file_result *r, uint16_t port)
{
    r->ports[port / 8] |= (uint8_t)(1u << (port % 8));
}

static int port_seen(const struct file_result *r, unsigned port)
{
    return port < 65536 && (r->ports[port / 8] >> (port % 8)) & 1;
}

static void note_ports(struct file_result *r, const struct dec_pkt *p)
{
    if (p->proto == 6 || p->proto == 17) {
        port_mark(r, p->sport);
        port_mark(r, p->dport);
    }
}

/* Decodes a whole capture into r. Returns 0, or -1 when libpcap could not open it. */
static int decode_file(const char *path, struct file_result *r, char *err)
{
    memset(r, 0, sizeof(*r));
    pcap_t *pc = pcap_open_offline(path, err);
    if (!pc)
        return -1;
    r->dlt = pcap_datalink(pc);
    struct frag *fr = frag_new(64, 1 << 20, 30);
    ck_assert_ptr_nonnull(fr);
    struct pcap_pkthdr *h;
    const u_char *d;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &d)) == 1) {
        r->frames++;
        struct dec_pkt p;
        int reason = dec_packet(r->dlt, d, h->caplen, &p);
        ck_assert_int_ge(reason, 0);
        ck_assert_int_lt(reason, DEC__COUNT);
        r->reasons[reason]++;
        if (reason == DEC_OK) {
            ck_assert_uint_le(p.payload_len, p.payload_wire_len);
            if (p.payload_len)
                ck_assert(p.payload >= d && p.payload + p.payload_len <= d + h->caplen);
            note_ports(r, &p);
        } else if (reason == DEC_FRAG) {
            ck_assert(p.frag_len == 0 ||
                      (p.frag_data >= d && p.frag_data + p.frag_len <= d + h->caplen));
            struct tw_time now = {h->ts.tv_sec, (int32_t)h->ts.tv_usec};
            const uint8_t *data;
            uint32_t len;
            int fr_rc = frag_add(fr, &p, now, &data, &len);
            if (fr_rc < 0)
                r->frag_err++;
            if (fr_rc == 1) {
                r->reassembled++;
                if (dec_transport(p.proto, data, len, len, &p) == DEC_OK)
                    note_ports(r, &p);
            }
        }
    }
    if (rc == PCAP_ERROR)
        snprintf(err, PCAP_ERRBUF_SIZE, "%s", pcap_geterr(pc));
    else
        err[0] = '\0';
    frag_free(fr);
    pcap_close(pc);
    return 0;
}

static int is_capture(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && strcmp(name + n - 5, ".pcap") == 0) ||
           (n > 7 && strcmp(name + n - 7, ".pcapng") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks every truth dst_port of path.truth.tsv against the ports decoded; returns rows. */
static int check_truth(const char *path, const struct file_result *r)
{
    char tpath[4096];
    int w = snprintf(tpath, sizeof(tpath), "%s.truth.tsv", path);
    FILE *f = w > 0 && (size_t)w < sizeof(tpath) ? fopen(tpath, "r") : NULL;
    if (!f)
        return 0;
    char line[2048];
    int rows = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        /* frame kind name src dst dst_port: the port is the sixth field */
        char *save = NULL, *tok = strtok_r(line, "\t\n", &save);
        for (int i = 1; tok && i < 6; i++)
            tok = strtok_r(NULL, "\t\n", &save);
        if (!tok)
            continue;
        char *end;
        long port = strtol(tok, &end, 10);
        ck_assert_msg(end != tok && port >= 0 && port < 65536, "%s: bad port '%s'", tpath, tok);
        ck_assert_msg(port_seen(r, (unsigned)port), "%s: truth dst port %ld never decoded", path,
                      port);
        rows++;
    }
    fclose(f);
    return rows;
}

/* Runs every capture of dir; returns how many files were decoded. */
static int run_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        printf("shared_pcaps: %s absent, skipped\n", dir);
        return -1;
    }
    char *names[512];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) && n < TW_ARRAY_LEN(names))
        if (is_capture(de->d_name))
            names[n++] = strdup(de->d_name);
    closedir(dp);
    qsort(names, n, sizeof(names[0]), cmp_str);
    int decoded = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096], err[PCAP_ERRBUF_SIZE];
        int w = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        ck_assert(w > 0 && (size_t)w < sizeof(path));
        static struct file_result r;
        int rc = decode_file(path, &r, err);
        ck_assert_msg(rc == 0, "%s: %s", path, err);
        if (err[0])
            printf("  %s: libpcap stopped: %s\n", names[i], err);
        printf("%-50s dlt %3d frames %5lu", names[i], r.dlt, r.frames);
        for (int k = 0; k < DEC__COUNT; k++)
            if (r.reasons[k])
                printf(" %s=%lu", dec_reason_name(k), r.reasons[k]);
        if (r.reassembled || r.frag_err)
            printf(" reassembled=%lu frag_err=%lu", r.reassembled, r.frag_err);
        printf("\n");
        if (dec_linktype_supported(r.dlt)) {
            ck_assert_msg(r.reasons[DEC_UNSUP_LINK] == 0, "%s", path);
            /* ARP-only files exist (QinQ): "understood" includes not-IP and other L4, and a
             * frame recognised as cut short (zeek's one-frame trunc/ip4-trunc) */
            ck_assert_msg(r.frames == 0 || r.reasons[DEC_OK] + r.reasons[DEC_FRAG] +
                                                   r.reasons[DEC_NOT_IP] + r.reasons[DEC_OTHER_L4] +
                                                   r.reasons[DEC_TRUNC] >
                                               0,
                          "%s: not one frame decoded", path);
        } else {
            printf("  unsupported link type %d\n", r.dlt);
        }
        if (err[0] && r.frames == 0)
            /* libpcap cannot read it at all (a pcapng mixing link types): the frames
             * never reach us, the capture layer's problem, reported above */
            printf("  truth check skipped: libpcap error\n");
        else
            check_truth(path, &r);
        decoded++;
        free(names[i]);
    }
    return decoded;
}

/* $TW_SHARED/pcaps (static buffer). */
static const char *shared_pcaps_dir(void)
{
    static char dir[4096];
    const char *shared = getenv("TW_SHARED");
    snprintf(dir, sizeof(dir), "%s/pcaps", shared ? shared : "../shared");
    return dir;
}

static bool dir_exists(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp)
        closedir(dp);
    return dp != NULL;
}

/* Only added when the folder exists (tw_suite): absent now, it vanished mid-run. */
START_TEST(test_shared_pcaps)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* keep the per-file lines when a check fails */
    ck_assert_int_gt(run_dir(shared_pcaps_dir()), 0);
}
END_TEST

START_TEST(test_src_pcaps)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    ck_assert_int_gt(run_dir(tw_src_path("pcaps")), 0);
}
END_TEST

/* A pcapng with two interfaces (pcapng sec. 4.2, one IDB each) of the same link type, and a
 * variant whose second interface is LINKTYPE_RAW: libpcap reports only the first interface's
 * type through pcap_datalink() and refuses a capture mixing types, which the capture layer
 * has to handle itself. Each holds 2 frames of UDP 192.0.2.1:1234 -> 192.0.2.2:53. */
static void put32(uint8_t *b, size_t *n, uint32_t v)
{
    memcpy(b + *n, &v, 4);
    *n += 4;
}

static size_t make_pcapng(uint8_t *b, uint16_t second_linktype)
{
    /* IPv4 20 + UDP 8, no payload */
    static const uint8_t ip[] = {0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11,
                                 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02,
                                 0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00};
    /* Ethernet: dst 02:00:00:00:00:01, src 02:00:00:00:00:02, type IPv4 */
    static const uint8_t eth[] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00};
    size_t n = 0;
    /* SHB: type, len 28, byte-order magic, version 1.0, section length -1 */
    put32(b, &n, 0x0A0D0D0A);
    put32(b, &n, 28);
    put32(b, &n, 0x1A2B3C4D);
    put32(b, &n, 1);
    put32(b, &n, 0xffffffff);
    put32(b, &n, 0xffffffff);
    put32(b, &n, 28);
    for (int i = 0; i < 2; i++) { /* IDB: linktype(16) reserved(16) snaplen(32) */
        put32(b, &n, 1);
        put32(b, &n, 20);
        put32(b, &n, i == 0 ? 1u : second_linktype);
        put32(b, &n, 65535);
        put32(b, &n, 20);
    }
    for (uint32_t i = 0; i < 2; i++) { /* EPB: iface, ts hi/lo, caplen, len, data, pad */
        size_t plen = (i == 0 || second_linktype == 1) ? sizeof(eth) + sizeof(ip) : sizeof(ip);
        size_t padded = (plen + 3) & ~(size_t)3;
        uint32_t blen = (uint32_t)(32 + padded);
        put32(b, &n, 6);
        put32(b, &n, blen);
        put32(b, &n, i);
        put32(b, &n, 0);
        put32(b, &n, 0);
        put32(b, &n, (uint32_t)plen);
        put32(b, &n, (uint32_t)plen);
        memset(b + n, 0, padded);
        if (plen > sizeof(ip)) {
            memcpy(b + n, eth, sizeof(eth));
            memcpy(b + n + sizeof(eth), ip, sizeof(ip));
        } else {
            memcpy(b + n, ip, sizeof(ip));
        }
        n += padded;
        put32(b, &n, blen);
    }
    return n;
}

static int decode_bytes(const uint8_t *b, size_t n, struct file_result *r, char *err)
{
    char path[] = "/tmp/tw_multi_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
    int rc = decode_file(path, r, err);
    remove(path);
    return rc;
}

START_TEST(test_pcapng_two_interfaces)
{
    static uint8_t b[512];
    static struct file_result r;
    char err[PCAP_ERRBUF_SIZE];
    size_t n = make_pcapng(b, 1);
    ck_assert_int_eq(decode_bytes(b, n, &r, err), 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(r.dlt, TW_DLT_EN10MB);
    ck_assert_uint_eq(r.frames, 2);
    ck_assert_uint_eq(r.reasons[DEC_OK], 2);
    ck_assert(port_seen(&r, 53) && port_seen(&r, 1234));

    n = make_pcapng(b, 101);
    ck_assert_int_eq(decode_bytes(b, n, &r, err), 0);
    ck_assert_int_eq(r.dlt, TW_DLT_EN10MB);
    /* libpcap 1.10 fails at the second IDB; a newer one may deliver the frames, in which
     * case the RAW frame decoded as Ethernet must not pass as good IP */
    printf("pcapng EN10MB+RAW: pcap_datalink %d, frames %lu, ok %lu, libpcap: %s\n", r.dlt,
           r.frames, r.reasons[DEC_OK], err[0] ? err : "no error");
    ck_assert_uint_le(r.reasons[DEC_OK], 1);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("shared_pcaps");
    TCase *tc = tcase_create("pcaps");
    tcase_set_timeout(tc, 300);
    /* decided here, in the parent: a test's own skip could not change the exit status */
    char why[4200];
    if (dir_exists(shared_pcaps_dir())) {
        tcase_add_test(tc, test_shared_pcaps);
    } else {
        snprintf(why, sizeof(why), "%s absent: the shared captures were not decoded",
                 shared_pcaps_dir());
        tw_skip_partly(why);
    }
    if (dir_exists(tw_src_path("pcaps"))) {
        tcase_add_test(tc, test_src_pcaps);
    } else {
        snprintf(why, sizeof(why), "%s absent: our captures were not decoded",
                 tw_src_path("pcaps"));
        tw_skip_partly(why);
    }
    tcase_add_test(tc, test_pcapng_two_interfaces);
    suite_add_tcase(s, tc);
    return s;
}
