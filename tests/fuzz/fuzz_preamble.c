/* fuzz_preamble.c - libFuzzer target for pre_scan(): the input is the client side of a TCP
 * stream. It is scanned twice, whole and fed in growing pieces (sizes from the first byte),
 * the way the engine calls it as segments arrive: both must end alike, every view must stay
 * inside the buffer, and PRE_TLS_AT must point at a real ClientHello record header. Seeds:
 * tests/fuzz/corpus/preamble/, client streams cut from the shared captures. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/preamble.h"
#include "tunnelwatch/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    int verdict;
    size_t at, skips, named;
};

/* Scans data[done..n) until a verdict other than PRE_SKIP. */
static int scan(struct pre_state *st, const uint8_t *data, size_t n, size_t *done, struct run *o)
{
    for (;;) {
        struct pre_result r;
        size_t left = n - *done;
        const uint8_t *b = data + *done;
        int v = pre_scan(st, b, left, &r);
        if (v < PRE_NEED_MORE || v > PRE_NONE)
            abort();
        if (r.authority && (r.authority < b || r.authority + r.authority_len > b + left))
            abort();
        if (r.host && (r.host < b || r.host + r.host_len > b + left))
            abort();
        if (v == PRE_SKIP) {
            if (r.off == 0 || r.off > left)
                abort(); /* each skip makes progress inside the buffer */
            o->skips++;
            o->named += r.authority != NULL;
            *done += r.off;
            continue;
        }
        if (v == PRE_TLS_AT && (r.off + 6 > left || !tls_looks_like_hello(b + r.off, left - r.off)))
            abort(); /* never a guess */
        if (v == PRE_TLS_AT || v == PRE_HTTP_AT) {
            if (r.off >= left)
                abort();
            o->at = *done + r.off;
        }
        return v;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    data++;
    size--;

    struct pre_state st;
    struct run whole = {0}, parts = {0};
    size_t done = 0;
    memset(&st, 0, sizeof(st));
    whole.verdict = scan(&st, data, size, &done, &whole);

    memset(&st, 0, sizeof(st));
    done = 0;
    size_t have = 0;
    do {
        have = have + step < size ? have + step : size;
        parts.verdict = scan(&st, data, have, &done, &parts);
    } while (parts.verdict == PRE_NEED_MORE && have < size);
    /* how the bytes arrive must not change what they are */
    if (parts.verdict != whole.verdict || parts.at != whole.at || parts.named != whole.named)
        abort();
    return 0;
}
