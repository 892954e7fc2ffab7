/* siphash_int.h - SipHash (Aumasson and Bernstein, 2012) rounds, private to src/: tw.c
 * builds the general SipHash-2-4 on them (tw_siphash), flow.c the per-packet SipHash-1-3 over
 * whole words, attrib.c and summary.c that of an address. */
#ifndef TW_SIPHASH_INT_H
#define TW_SIPHASH_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* A little-endian 64-bit word. */
static inline uint64_t tw_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* SipHash-1-3 over whole 64-bit words, for the per-packet flow key: the same keyed
 * construction as above with fewer rounds, as hash tables commonly use it (still no way to
 * aim collisions without the key), without the byte loops of the general form. */
static inline uint64_t tw_siphash13_words(const uint64_t k[2], const uint64_t *m, size_t nw)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
    for (size_t i = 0; i < nw; i++) {
        v3 ^= m[i];
        SIPROUND;
        v0 ^= m[i];
    }
    uint64_t b = (uint64_t)(nw * 8) << 56;
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* SipHash-1-3 of an address (a struct tw_addr: family, then 16 bytes, IPv4 in the first 4),
 * for tables keyed by addresses from the wire: an IPv4 address is one word with its family,
 * an IPv6 one three. The words are read in host order: the hash is the process's own. */
static inline uint64_t tw_siphash13_addr(const uint64_t k[2], uint8_t family, const uint8_t a[16])
{
    uint64_t w[3];
    memcpy(&w[1], a, 8);
    memcpy(&w[2], a + 8, 8);
    if (family == 4) {
        w[0] = (w[1] & 0xffffffffu) | (uint64_t)4 << 32;
        return tw_siphash13_words(k, w, 1);
    }
    w[0] = family;
    return tw_siphash13_words(k, w, 3);
}

#endif /* TW_SIPHASH_INT_H */
