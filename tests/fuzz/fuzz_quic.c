/* fuzz_quic.c - libFuzzer target: quic_initial_feed() over one or two client datagrams.
 * The first two bytes (big-endian) give where the rest splits into two datagrams fed to
 * one state; 0xffff feeds it whole. Random bytes rarely pass the AEAD, so the seeds are
 * real Initials (the header, varint and coalescing paths) and fuzz_quic_frames.c covers
 * the frame parser and reassembly behind the AEAD. */
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/quic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void feed(struct quic_initial *q, const uint8_t *d, size_t n)
{
    long r = quic_initial_feed(q, d, n);
    if (r > 0) {
        const uint8_t *h = quic_initial_hello(q);
        volatile uint8_t sink = 0;
        for (long i = 0; i < r; i++) /* the whole hello must be readable (ASan) */
            sink = (uint8_t)(sink ^ h[i]);
        (void)sink;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t split = (size_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    if (split > size)
        split = size;
    struct quic_initial *q = quic_initial_new();
    if (!q)
        return 0;
    feed(q, data, split);
    if (split < size)
        feed(q, data + split, size - split);
    quic_initial_free(q);
    return 0;
}
