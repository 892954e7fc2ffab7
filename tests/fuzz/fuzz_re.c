/* fuzz_re.c - the |re compiler on arbitrary patterns (up to the first NUL), then a search of
 * the rest of the input and of the pattern's own sample, which must match. */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/re.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t pl = nul ? (size_t)(nul - data) : size;
    struct re *re = NULL;
    char err[128];
    if (re_compile((const char *)data, pl, size & 1, &re, err, sizeof(err)) != TW_OK)
        return 0;
    const uint8_t *rest = nul ? nul + 1 : data + size;
    size_t rn = (size_t)(data + size - rest);
    if (re_search(re, rest, rn) != re_search_nfa(re, rest, rn))
        abort(); /* the bit-parallel form and the Pike VM disagree */
    size_t sl;
    const char *s = re_sample(re, &sl);
    if (!memchr(data, '^', pl) && !memchr(data, '$', pl) && sl < 1000 &&
        !re_search(re, (const uint8_t *)s, sl))
        abort(); /* the sample is built to match (unless it was cut at 1023 bytes) */
    re_free(re);
    return 0;
}
