/* floor.c - the benchmark floor: a bare libpcap read loop over capture files.
 *
 * scripts/bench runs this and the sensor alternately over the same file, so that the ratio
 * sensor/floor cancels the disk, the page cache and the machine's speed. The callback only
 * counts packets and captured bytes: any less work would not be reading the file at all.
 * pcap_dispatch() with cnt -1 hands over a whole buffer per call, the cheapest way libpcap
 * offers. Output: one line "packets=N bytes=N seconds=S pps=N" on stdout.
 *
 * Usage: floor FILE...
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct counts {
    uint64_t pkts, bytes;
};

static void count_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    struct counts *c = (struct counts *)(void *)user;
    (void)data;
    c->pkts++;
    c->bytes += h->caplen;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct counts c = {0, 0};
    char errbuf[PCAP_ERRBUF_SIZE];
    if (argc < 2) {
        fprintf(stderr, "usage: floor FILE...\n");
        return 2;
    }
    double t0 = now_s();
    for (int i = 1; i < argc; i++) {
        pcap_t *p = pcap_open_offline(argv[i], errbuf);
        if (!p) {
            fprintf(stderr, "floor: %s\n", errbuf);
            return 1;
        }
        int n;
        /* 0 = end of file; -1 = read error (a cut last record counts here too) */
        while ((n = pcap_dispatch(p, -1, count_cb, (u_char *)&c)) > 0)
            ;
        if (n == -1)
            fprintf(stderr, "floor: %s: %s\n", argv[i], pcap_geterr(p));
        pcap_close(p);
    }
    double dt = now_s() - t0;
    printf("packets=%llu bytes=%llu seconds=%.6f pps=%.0f\n", (unsigned long long)c.pkts,
           (unsigned long long)c.bytes, dt, dt > 0 ? (double)c.pkts / dt : 0.0);
    return 0;
}
