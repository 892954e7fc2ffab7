/* fuzz_stream.c - libFuzzer target for stream_add/stream_consume/stream_reset and the shared
 * reassembly pool. Byte 0 picks the cap and whether a SYN fixed the base; then each 4-byte
 * record is one operation on one of two streams sharing a pool small enough to be spent:
 * op (add 3/4, consume, reset, advance packet time so a stream stalls), a signed 16-bit
 * sequence offset from an ISN just below the 2^32 wrap, and a length; segment bytes come from
 * the input itself. Invariants: len and cap never exceed max, the pool never goes negative,
 * what the streams hold plus what is left is the whole pool, and it comes back whole at
 * reset; a stream the pool reclaimed holds nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUDGET (1 << 14)

static void check(const struct stream *s, const struct reasm_pool *p)
{
    if (s->len > s->max || s->cap > s->max || p->budget < 0 || s->h.bytes != s->cap)
        abort();
    if (s->h.lost && (s->buf || s->cap))
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
    struct reasm_pool pool;
    if (reasm_pool_init(&pool, BUDGET, 10, (data[0] & 0x80) ? 50 : 100) != TW_OK)
        return 0;
    struct stream st[2];
    struct tw_addr src[2] = {{.family = 4, .a = {10, 0, 0, 1}}, {.family = 4, .a = {10, 0, 0, 2}}};
    memset(st, 0, sizeof(st));
    const uint32_t isn = 0xFFFFF000u + (data[0] >> 4);
    for (int k = 0; k < 2; k++) {
        st[k].max = 256u << (data[0] & 7); /* 256 .. 32768 */
        reasm_set_source(&pool, &st[k].h, &src[(data[0] >> 6) & k & 1], REASM_STREAM);
        if (data[0] & 8)
            stream_set_base(&st[k], isn);
    }
    for (size_t i = 1; i + 4 <= size; i += 4) {
        const uint8_t *r = data + i;
        struct stream *s = &st[r[0] >> 7];
        uint32_t seq = isn + (uint32_t)(int32_t)(int16_t)(r[1] << 8 | r[2]);
        uint32_t n = (uint32_t)r[3] * 8;
        if ((r[0] & 3) == 2) {
            stream_consume(s, r[3]);
        } else if ((r[0] & 3) == 3 && (r[0] & 0x70) == 0x70) {
            stream_reset(s, &pool);
        } else if ((r[0] & 3) == 3 && (r[0] & 0x70) == 0x60) {
            pool.now_us += r[3] * 1000; /* up to 255 ms: the other stream may stall */
        } else {
            /* segment bytes: the input from i on, repeated as needed */
            uint8_t seg[255 * 8];
            for (uint32_t k = 0; k < n; k++)
                seg[k] = data[(i + k) % size];
            int rc = stream_add(s, seq, seg, n, &pool);
            if (rc < 0 && rc != TW_ELIMIT && rc != TW_ENOMEM)
                abort();
        }
        check(&st[0], &pool);
        check(&st[1], &pool);
        if (pool.budget + st[0].cap + st[1].cap != BUDGET)
            abort();
    }
    stream_reset(&st[0], &pool);
    stream_reset(&st[1], &pool);
    if (pool.budget != BUDGET || pool.head)
        abort();
    reasm_pool_fini(&pool);
    return 0;
}
