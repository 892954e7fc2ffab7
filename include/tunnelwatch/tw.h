/* tw.h - project-wide error codes, addresses and small helpers.
 *
 * Every function that can fail returns 0 (TW_OK) or a negative TW_E* code; a count is >= 0.
 * Constructors return NULL and leave nothing allocated. Addresses are kept in one fixed-size
 * form (family + 16 bytes) so flows, maps and alerts never allocate for them.
 */
#ifndef TW_TW_H
#define TW_TW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tw_err {
    TW_OK = 0,
    TW_ETRUNC = -1, /* need more bytes */
    TW_EBAD = -2,   /* malformed */
    TW_ENOMEM = -3,
    TW_ELIMIT = -4, /* a configured cap was hit */
    TW_EIO = -5,
    TW_ECONF = -6,
};

const char *tw_strerror(int err);

#define TW_WUR          __attribute__((warn_unused_result))
#define TW_UNUSED       __attribute__((unused))
#define TW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define TW_VERSION "0.1.0"

/* An IPv4 or IPv6 address. IPv4 lives in a[0..3], the rest zero. */
struct tw_addr {
    uint8_t family; /* 4 or 6; 0 = unset */
    uint8_t a[16];
};

/* Longest text form of an address, with NUL. */
#define TW_ADDR_STRLEN 46

/* Writes the canonical text form (inet_ntop) into buf; returns buf ("?" when unset). */
const char *tw_addr_str(const struct tw_addr *addr, char *buf, size_t n);
/* Parses text into addr; returns TW_OK or TW_EBAD. */
int tw_addr_parse(const char *s, struct tw_addr *addr) TW_WUR;
bool tw_addr_eq(const struct tw_addr *x, const struct tw_addr *y);
/* memcmp-like order, family first. */
int tw_addr_cmp(const struct tw_addr *x, const struct tw_addr *y);

/* Packet timestamp with microsecond resolution. */
struct tw_time {
    int64_t sec;
    int32_t usec;
};

/* Microseconds since the epoch. */
static inline int64_t tw_time_us(struct tw_time t)
{
    return t.sec * 1000000 + t.usec;
}

/* RFC 3339 UTC with microseconds, e.g. 2024-01-02T03:04:05.000006Z. buf >= 32 bytes. */
const char *tw_time_rfc3339(struct tw_time t, char *buf, size_t n);

/* SipHash-2-4 of data under a 16-byte key (flow.c): hash-flooding resistant table keys. */
uint64_t tw_siphash(const uint8_t key[16], const uint8_t *data, size_t len);

/* Starts fn(arg) on a new thread with every signal blocked in it (a thread inherits its
 * creator's mask), so that signals reach the sensor's own threads; a detached thread is never
 * joined. name (at most 15 bytes, "tw-..."), when not NULL, is the thread's name as top -H,
 * ps -T and perf show it. Returns pthread_create's result: 0 when the thread runs. */
int tw_thread_start(pthread_t *th, const char *name, void *(*fn)(void *), void *arg, bool detached);

#endif /* TW_TW_H */
