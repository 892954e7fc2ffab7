/* capture.h - packet sources: live interfaces (libpcap, TPACKET_V3) and capture files
 * (pcap, pcapng, stdin, folders of captures in name order).
 *
 * A struct cap_src wraps one pcap_t. Kernel and interface drop counters from pcap_stats()
 * are 32-bit and wrap; cap_live_stats() accumulates them into 64-bit totals.
 */
#ifndef TW_CAPTURE_H
#define TW_CAPTURE_H

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/tw.h"

struct cap_live_opts {
    int snaplen;
    int buffer_mib;
    bool promisc;
    bool immediate;
    const char *bpf; /* NULL or "" for none */
};

struct cap_src {
    pcap_t *p;
    int dlt;
    const char *name; /* file path, "-" or interface (borrowed) */
    bool live;
    uint64_t size; /* file size for progress, 0 unknown */
    FILE *fp;      /* a FILE libpcap reads through our buffer (pipes), see cap_open_file */
    /* Files are read by our own buffered reader (read(2) into one buffer, records handed out
     * in place): pcapng always (libpcap refuses interfaces of different link types in one
     * file), and the records of classic pcap files that libpcap opened (libpcap's reader does
     * two stdio calls and a copy per record, which costs more than the rest of the sensor's
     * reading). Odd records (longer than the snapshot length, cut short) go back to libpcap,
     * so errors and salvage stay libpcap's. */
    int fd;
    bool fd_open;
    uint8_t *rb; /* read buffer (owned) */
    size_t rb_cap, rb_off, rb_len;
    uint64_t rb_base; /* file offset of rb[0] */
    bool rb_eof;
    int rb_errno;
    bool own;  /* classic pcap records by our reader */
    bool swap; /* classic pcap: other byte order */
    bool nsec; /* classic pcap: nanosecond timestamps */
    uint32_t snap;
    bool ng;
    bool ng_swap;
    uint32_t n_if;
    struct {
        int dlt;
        uint64_t units; /* timestamp units per second */
    } ifs[64];
    /* live drop accounting */
    uint32_t last_recv, last_drop, last_ifdrop;
    uint64_t recv, drop, ifdrop;
};

/* Opens a capture file ("-" = stdin). On failure returns TW_EIO with a one-line reason. The
 * struct must stay where it is until cap_close (a pipe's FILE points back to it). */
int cap_open_file(struct cap_src *s, const char *path, char *err, size_t errlen) TW_WUR;
/* Opens a live interface; logs the effective buffer size at verbosity >= 0 to log. */
int cap_open_live(struct cap_src *s, const char *iface, const struct cap_live_opts *o, FILE *log,
                  char *err, size_t errlen) TW_WUR;
/* Compiles and sets a BPF filter. */
int cap_set_filter(struct cap_src *s, const char *bpf, char *err, size_t errlen) TW_WUR;
void cap_close(struct cap_src *s);
/* Reads the next packet of a file source. Returns 1 with *h, *data (valid until the next
 * call) and *dlt set; 0 at the end; TW_EIO on a truncated or corrupt file (err says why). */
int cap_next(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, int *dlt, char *err,
             size_t errlen);
/* Up to max records of a file source at once, all valid until the next call (one link type,
 * s->dlt; for pcapng and libpcap-read files, one record). Returns the count, 0 at the end,
 * TW_EIO as cap_next. */
int cap_next_batch(struct cap_src *s, struct pcap_pkthdr *h, const uint8_t **data, int max,
                   char *err, size_t errlen);
/* libpcap passes a file's sub-second field through unchecked (a nanosecond file can hold 10^9
 * or more, which comes out negative): folds it into the seconds, so that every record cap_next
 * hands out has 0 <= tv_usec < 10^6. */
void cap_fold_usec(struct timeval *ts);
/* Bytes of the file consumed so far (progress); 0 when unknown. */
uint64_t cap_file_pos(const struct cap_src *s);
/* Updates the 64-bit drop totals from pcap_stats (live only). */
void cap_live_stats(struct cap_src *s);
/* Prints interfaces like tcpdump -D. Returns 0 or TW_EIO. */
int cap_list_interfaces(FILE *out, char *err, size_t errlen);

/* Expands inputs: a folder becomes its capture files (.pcap .pcapng .cap, and files whose
 * magic says capture) in name order. Returns a NULL-terminated malloc'd array of malloc'd
 * strings, or NULL with err set. */
char **cap_expand_inputs(char *const *paths, size_t n, char *err, size_t errlen);
void cap_free_inputs(char **list);

#endif /* TW_CAPTURE_H */
