/* tw.c - error strings, address and time formatting, keyed SipHash-2-4 and helper threads,
 * shared by every module. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "siphash_int.h"
#include "tunnelwatch/tw.h"

const char *tw_strerror(int err)
{
    switch (err) {
    case TW_OK:
        return "ok";
    case TW_ETRUNC:
        return "truncated";
    case TW_EBAD:
        return "malformed";
    case TW_ENOMEM:
        return "out of memory";
    case TW_ELIMIT:
        return "limit reached";
    case TW_EIO:
        return "I/O error";
    case TW_ECONF:
        return "configuration error";
    default:
        return "unknown error";
    }
}

/* Dotted quad without inet_ntop, which formats each byte through sprintf. */
static void ip4_str(const uint8_t *a, char *buf)
{
    char *p = buf;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
}

const char *tw_addr_str(const struct tw_addr *addr, char *buf, size_t n)
{
    if (n == 0)
        return buf;
    if (addr->family == 4 && n >= 16) {
        ip4_str(addr->a, buf);
        return buf;
    }
    int af = addr->family == 4 ? AF_INET : addr->family == 6 ? AF_INET6 : 0;
    if (!af || !inet_ntop(af, addr->a, buf, (socklen_t)n))
        snprintf(buf, n, "?");
    return buf;
}

int tw_addr_parse(const char *s, struct tw_addr *addr)
{
    memset(addr, 0, sizeof(*addr));
    if (inet_pton(AF_INET, s, addr->a) == 1) {
        addr->family = 4;
        return TW_OK;
    }
    if (inet_pton(AF_INET6, s, addr->a) == 1) {
        addr->family = 6;
        return TW_OK;
    }
    return TW_EBAD;
}

bool tw_addr_eq(const struct tw_addr *x, const struct tw_addr *y)
{
    return x->family == y->family && memcmp(x->a, y->a, 16) == 0;
}

int tw_addr_cmp(const struct tw_addr *x, const struct tw_addr *y)
{
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return memcmp(x->a, y->a, 16);
}

/* Days since 1970-01-01 to a proleptic Gregorian date (the era arithmetic of Howard
 * Hinnant's "chrono-compatible low-level date algorithms"). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

/* The common case (years 1970..9999, a valid usec) without gmtime_r and snprintf: this runs
 * for every time in every record. */
static bool rfc3339_fast(struct tw_time t, char *buf, size_t n)
{
    if (n < 28 || t.sec < 0 || t.sec >= 253402300800LL || t.usec < 0 || t.usec > 999999)
        return false;
    int64_t y;
    unsigned mo, d, sod = (unsigned)(t.sec % 86400);
    civil_from_days(t.sec / 86400, &y, &mo, &d);
    char *p = put_digits(buf, (unsigned)y, 4);
    *p++ = '-';
    p = put_digits(p, mo, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, (unsigned)t.usec, 6);
    *p++ = 'Z';
    *p = '\0';
    return true;
}

const char *tw_time_rfc3339(struct tw_time t, char *buf, size_t n)
{
    if (rfc3339_fast(t, buf, n))
        return buf;
    struct tm tm;
    time_t sec = (time_t)t.sec;
    if (!gmtime_r(&sec, &tm)) {
        snprintf(buf, n, "1970-01-01T00:00:00.000000Z");
        return buf;
    }
    snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)t.usec);
    return buf;
}

/* --- SipHash-2-4: the dedup and DNS maps, keyed per process (attacker-chosen names) --- */

static uint64_t siphash_rounds(const uint8_t key[16], const uint8_t *data, size_t len, int c, int d)
{
    uint64_t k0 = tw_le64(key), k1 = tw_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = tw_le64(data + i);
        v3 ^= m;
        for (int r = 0; r < c; r++)
            SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)data[full + i] << (8 * i);
    v3 ^= b;
    for (int r = 0; r < c; r++)
        SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int r = 0; r < d; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t tw_siphash(const uint8_t key[16], const uint8_t *data, size_t len)
{
    return siphash_rounds(key, data, len, 2, 4);
}

int tw_thread_start(pthread_t *th, const char *name, void *(*fn)(void *), void *arg, bool detached)
{
    pthread_attr_t at;
    int rc = pthread_attr_init(&at);
    if (rc)
        return rc;
    if (detached)
        (void)pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    rc = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc == 0) {
        rc = pthread_create(th, &at, fn, arg);
        (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
        /* a detached thread may be gone already: its handle is not ours to use */
        if (rc == 0 && name && !detached)
            (void)pthread_setname_np(*th, name);
    }
    pthread_attr_destroy(&at);
    return rc;
}
