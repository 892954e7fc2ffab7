/* fuzz_ac.c - Aho-Corasick against a naive matcher. Input: patterns separated by '\n', a NUL,
 * then the text. Any difference in the hit multiset aborts. */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/ac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
    uint64_t sum, n; /* order-independent digest of (id, end) pairs */
};

static int add(void *ud, uint32_t id, size_t end)
{
    struct acc *a = ud;
    a->sum += ((uint64_t)id * 2654435761u) ^ ((uint64_t)end * 40503u + 7u);
    a->n++;
    return 0;
}

static uint8_t lc(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    const uint8_t *text = nul ? nul + 1 : data + size;
    size_t tlen = size - plen - (nul ? 1 : 0);
    if (tlen > 512)
        tlen = 512; /* keep the naive side fast */
    struct ac *ac = ac_new();
    struct acc want = {0, 0}, got = {0, 0};
    uint32_t id = 0;
    for (size_t s = 0; s < plen && id < 256;) {
        const uint8_t *nl = memchr(data + s, '\n', plen - s);
        size_t e = nl ? (size_t)(nl - data) : plen, n = e - s;
        if (ac_add(ac, data + s, n, id) == TW_OK) {
            for (size_t end = n; end <= tlen; end++) {
                size_t k = 0;
                while (k < n && lc(text[end - n + k]) == lc(data[s + k]))
                    k++;
                if (k == n)
                    add(&want, id, end);
            }
            id++;
        }
        s = e + 1;
    }
    if (ac_build(ac) != TW_OK)
        abort();
    int r = ac_search(ac, text, tlen, add, &got);
    if (r < 0 || (uint64_t)r != got.n || got.n != want.n || got.sum != want.sum)
        abort();
    ac_free(ac);
    return 0;
}
