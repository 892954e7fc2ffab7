/* fuzz_http.c - libFuzzer target for http_parse_host(), http_parse_request() and
 * http_parse_response(): the input is the client side of a TCP stream, walked request by
 * request as a pipelining engine would, then the same bytes as a server side, walked response
 * by response (the first byte's low bit: answers to HEAD). Seeds: tests/fuzz/corpus/http/,
 * request heads cut from the shared captures, and response heads (synthetic_resp_*). */
#include <stdbool.h>
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

/* Server side: each response's next offset moves forward past its head, so the walk ends. */
static void responses(const uint8_t *data, size_t size, bool to_head)
{
    size_t off = 0;
    for (;;) {
        struct http_resp r;
        size_t left = size - off;
        int e = http_parse_response(data + off, left, to_head, &r);
        if (e != TW_OK) {
            if (r.status || r.head_len || r.next_known)
                abort(); /* nothing from a failed head */
            return;
        }
        if (r.status < 100 || r.status > 599 || r.head_len == 0 || r.head_len > left ||
            r.head_len > HTTP_HEAD_MAX)
            abort();
        if (r.next_known && r.next < r.head_len)
            abort();
        if ((to_head || r.status == 204 || r.status == 304 || r.status < 200) &&
            (!r.next_known || r.next != r.head_len))
            abort(); /* no body whatever the fields say */
        if (!r.next_known || r.next >= left)
            return;
        off += r.next;
    }
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
    responses(data, size, size > 0 && (data[0] & 1));
    return 0;
}
