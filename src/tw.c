/* tw.c - error strings, address and time formatting, and keyed SipHash-2-4, shared by every
 * module. */
#include <arpa/inet.h>
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

const char *tw_addr_str(const struct tw_addr *addr, char *buf, size_t n)
{
    if (n == 0)
        return buf;
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

const char *tw_time_rfc3339(struct tw_time t, char *buf, size_t n)
{
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
