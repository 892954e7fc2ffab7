/* fuzz_stream.c - libFuzzer target for stream_add/stream_consume/stream_reset. Byte 0 picks
 * the cap and whether a SYN fixed the base; then each 4-byte record is one operation:
 * op (add 3/4, consume, reset), a signed 16-bit sequence offset from an ISN just below the
 * 2^32 wrap, and a length; segment bytes come from the input itself. Invariants: len and cap
 * never exceed max, the shared budget never goes negative and comes back whole at reset. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUDGET (1 << 20)

static void check(const struct stream *s, int64_t budget)
{
    if (s->len > s->max || s->cap > s->max || budget < 0 || budget + s->cap != BUDGET)
        abort();
    if (s->n_isl > STREAM_MAX_GAPS)
        abort();
    for (int i = 0; i < s->n_isl; i++)
        if (s->isl[i].s <= s->len || s->isl[i].e <= s->isl[i].s || s->isl[i].e > s->max)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct stream s;
    memset(&s, 0, sizeof(s));
    s.max = 256u << (data[0] & 7); /* 256 .. 32768 */
    const uint32_t isn = 0xFFFFF000u + (data[0] >> 4);
    if (data[0] & 8)
        stream_set_base(&s, isn);
    int64_t budget = BUDGET;
    for (size_t i = 1; i + 4 <= size; i += 4) {
        const uint8_t *r = data + i;
        uint32_t seq = isn + (uint32_t)(int32_t)(int16_t)(r[1] << 8 | r[2]);
        uint32_t n = (uint32_t)r[3] * 8;
        if ((r[0] & 3) == 2) {
            stream_consume(&s, r[3]);
        } else if ((r[0] & 3) == 3 && r[0] > 0xf0) {
            stream_reset(&s, &budget);
            if (budget != BUDGET)
                abort();
        } else {
            /* segment bytes: the input from i on, repeated as needed */
            uint8_t seg[255 * 8];
            for (uint32_t k = 0; k < n; k++)
                seg[k] = data[(i + k) % size];
            int rc = stream_add(&s, seq, seg, n, &budget);
            if (rc < 0 && rc != TW_ELIMIT && rc != TW_ENOMEM)
                abort();
        }
        check(&s, budget);
    }
    stream_reset(&s, &budget);
    if (budget != BUDGET)
        abort();
    return 0;
}
