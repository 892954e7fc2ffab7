/* fuzz_pcapng.c - libFuzzer target for the capture file readers: the input is written to a
 * memfd and read through cap_open_file/cap_next to the end (our pcapng reader, or libpcap
 * for anything else). No crash, no leak, and each packet's bytes lie within its caplen. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tunnelwatch/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_pcapng", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64], err[256];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct cap_src s;
    if (cap_open_file(&s, path, err, sizeof(err)) == TW_OK) {
        struct pcap_pkthdr h;
        const uint8_t *d;
        int dlt, rc;
        volatile uint8_t sink = 0;
        while ((rc = cap_next(&s, &h, &d, &dlt, err, sizeof(err))) == 1) {
            if (h.caplen)
                sink ^= d[0] ^ d[h.caplen - 1]; /* ASan checks the packet's bounds */
            if (h.ts.tv_usec < 0 || h.ts.tv_usec >= 1000000)
                abort();
        }
        if (rc != 0 && rc != TW_EIO)
            abort();
        (void)sink;
        cap_close(&s);
    }
    close(fd);
    return 0;
}
