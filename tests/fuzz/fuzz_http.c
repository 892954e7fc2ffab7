/* fuzz_http.c - libFuzzer target for http_parse_host() and http_parse_request(): the input is
 * the client side of a TCP stream, walked request by request as a pipelining engine would.
 * Seeds: tests/fuzz/corpus/http/, request heads cut from the shared captures. */
#include <stdint.h>
#include <stdlib.h>

#include "tunnelwatch/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *v, size_t n, const uint8_t *b, size_t len)
{
    if (v && (v < b || v + n > b + len))
        abort(); /* every view must stay inside the input */
    if (!v && n)
        abort();
}

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

    /* pipelining: each request's next offset moves forward, so the walk ends */
    size_t off = 0;
    for (;;) {
        struct http_req r;
        const uint8_t *b = data + off;
        size_t left = size - off;
        int e = http_parse_request(b, left, &r);
        if (off == 0 && (e != rc || r.host != host || r.host_len != n))
            abort(); /* http_parse_host is the first request's Host */
        if (e != TW_OK) {
            if (r.host || r.head_len || r.connect || r.authority)
                abort(); /* nothing from a failed head */
            break;
        }
        inside(r.host, r.host_len, b, left);
        inside(r.target, r.target_len, b, left);
        inside(r.authority, r.authority_len, b, left);
        if (r.head_len == 0 || r.head_len > left || (r.authority && !r.connect))
            abort();
        if (r.next_known && r.next < r.head_len)
            abort();
        if (r.connect || !r.next_known || r.next > left)
            break;
        off += r.next;
    }
    return 0;
}
