/* fuzz_quic_frames.c - libFuzzer target: the fuzzer's bytes are the plaintext frames of two
 * client Initials, sealed with quic_initial_seal() so that they pass the AEAD and reach the
 * frame parser and CRYPTO reassembly. Byte 0: bits 0-1 version (v1, v2, draft-29, or with
 * bit 5: T051 with Google frame types, a greased version sealed with the draft-29 salt,
 * mvfst 0xfaceb002, T050), bit 2 feeds the packets in reverse order, bit 3 coalesces them
 * into one datagram, bit 4 names another DCID in the second packet (same keys). Byte 1:
 * where the frames split. The first packet is padded to 1200 bytes (PADDING frames), as a
 * greased version is only tried on a packet shaped like a first Initial. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tunnelwatch/quic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds one datagram; a hello it returns must be readable to its end (ASan). */
static void feed(struct quic_initial *q, const uint8_t *d, size_t n)
{
    long r = quic_initial_feed(q, d, n);
    if (r > 0) {
        volatile uint8_t last = quic_initial_hello(q)[r - 1];
        (void)last;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t vers[8] = {
        QUIC_VERSION_1,    QUIC_VERSION_2, QUIC_DRAFT_29, 1,
        QUIC_VERSION_T051, 0x1a2a3a4au,    0xfaceb002u,   QUIC_VERSION_T050};
    uint8_t first[1200 + 4002];
    static const uint8_t cid[8] = {1, 2, 3, 4, 5, 6, 7, 8}, cid2[4] = {9, 9, 9, 9};
    uint8_t pkt[2][4200], dgram[8400];
    if (size < 2 || size > 4002)
        return 0;
    uint8_t flags = data[0];
    size_t split = data[1] * (size - 2) / 255;
    uint32_t v = vers[(flags & 3) | (flags >> 3 & 4)];
    uint32_t salt = v == 0x1a2a3a4au ? QUIC_DRAFT_29 : 0;
    struct quic_seal s[2] = {{v, cid, 8, cid, 8, 0, salt}, {v, cid, 8, cid, 8, 1, salt}};
    size_t flen = split < 1200 - 40 ? 1200 - 40 : split; /* zero bytes are PADDING frames */
    memset(first, 0, flen);
    memcpy(first, data + 2, split);
    if (flags & 16) {
        s[1].dcid = cid2;
        s[1].dcid_len = sizeof(cid2);
    }
    long n[2] = {
        quic_initial_seal(&s[0], first, flen, pkt[0], sizeof(pkt[0])),
        quic_initial_seal(&s[1], data + 2 + split, size - 2 - split, pkt[1], sizeof(pkt[1]))};
    struct quic_initial *q = quic_initial_new();
    if (q && n[0] > 0 && n[1] > 0) {
        int a = (flags >> 2) & 1, b = !a;
        if (flags & 8) {
            memcpy(dgram, pkt[a], (size_t)n[a]);
            memcpy(dgram + n[a], pkt[b], (size_t)n[b]);
            feed(q, dgram, (size_t)(n[a] + n[b]));
        } else {
            feed(q, pkt[a], (size_t)n[a]);
            feed(q, pkt[b], (size_t)n[b]);
        }
    }
    quic_initial_free(q);
    return 0;
}
