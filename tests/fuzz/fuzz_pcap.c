/* fuzz_pcap.c - differential libFuzzer target for our classic pcap reader: the input's first
 * byte picks the header (byte order, precision, snapshot length), the rest are the records.
 * The file is read with cap_next and with libpcap's pcap_next_ex side by side; any difference
 * in records (time, lengths, bytes; seconds read unsigned as the format says) or in how the file
 * ends aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tunnelwatch/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put32(uint8_t *b, int be, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(be ? v >> (24 - 8 * i) : v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t snaps[4] = {65535, 64, 262144, 0};
    static const int dlts[4] = {1, 101, 113, 147}; /* Ethernet, raw IP, SLL, user 0 */
    int be = data[0] & 1, nsec = data[0] >> 1 & 1;
    uint8_t hdr[24];
    put32(hdr, be, nsec ? 0xa1b23c4d : 0xa1b2c3d4);
    put32(hdr + 4, be, be ? 0x00020004 : 0x00040002);
    put32(hdr + 8, be, 0);
    put32(hdr + 12, be, 0);
    put32(hdr + 16, be, snaps[data[0] >> 2 & 3]);
    put32(hdr + 20, be, (uint32_t)dlts[data[0] >> 4 & 3]);
    int fd = memfd_create("fuzz_pcap", 0);
    if (fd < 0)
        return 0;
    if (write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
        write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
        close(fd);
        return 0;
    }
    char path[64], err[512], ebuf[PCAP_ERRBUF_SIZE];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    pcap_t *pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
    struct cap_src s;
    int rc = cap_open_file(&s, path, err, sizeof(err));
    if (!pc || rc != TW_OK) {
        if (!pc != (rc != TW_OK)) /* both open, or neither */
            abort();
        if (pc)
            pcap_close(pc);
        close(fd);
        return 0;
    }
    for (;;) {
        struct pcap_pkthdr *lh, h;
        const u_char *ld, *d;
        int dlt;
        int lr = pcap_next_ex(pc, &lh, &ld);
        int r = cap_next(&s, &h, &d, &dlt, err, sizeof(err));
        if (lr != 1) {
            if (r == 1 || (lr == PCAP_ERROR_BREAK) != (r == 0) ||
                (r != 0 && strcmp(err, pcap_geterr(pc)) != 0))
                abort();
            break;
        }
        struct timeval lt = lh->ts;
        if (lt.tv_sec < 0) /* libpcap reads the seconds signed; the format's are unsigned */
            lt.tv_sec += (time_t)1 << 32;
        cap_fold_usec(&lt);
        if (r != 1 || h.ts.tv_sec != lt.tv_sec || h.ts.tv_usec != lt.tv_usec ||
            h.caplen != lh->caplen || h.len != lh->len || dlt != pcap_datalink(pc) ||
            memcmp(d, ld, h.caplen) != 0)
            abort();
    }
    pcap_close(pc);
    cap_close(&s);
    close(fd);
    return 0;
}
