/* fuzz_http.c - libFuzzer target for http_parse_host(): the input is the client side of a
 * TCP stream. Seeds: tests/fuzz/corpus/http/, request heads cut from the shared captures. */
#include <stdint.h>
#include <stdlib.h>

#include "tunnelwatch/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *host = NULL;
    size_t n = 0;
    (void)http_looks_like_request(data, size);
    int rc = http_parse_host(data, size, &host, &n);
    if (rc == TW_OK && n > 0 && (host < data || host + n > data + size))
        abort(); /* the view must stay inside the input */
    if (rc != TW_OK && (host || n))
        abort();
    return 0;
}
